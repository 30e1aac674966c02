// The Docker Engine API server: docker's HTTP API (moby's api/swagger.yaml) over the engine, on unix sockets and
// loopback TCP (or TLS with client certificates), as `ply system service` runs it. It only translates: every
// route calls the same engine verbs as the CLI, and answers in docker's shapes, status codes and error format.
import fs from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Engine } from '../engine.js';
import { API_VERSION, MIN_API_VERSION, VERSION } from '../engine.js';
import { InvalidArgumentError, PlyError } from '../errors.js';
import { ApiError, compareVersions, Request, statusOf, type Headers } from './http.js';
import { match } from './router.js';
import { routes } from './routes.js';

export interface TlsOptions {
  ca: string;
  cert: string;
  key: string;
}

export interface ApiServerOptions {
  engine: Engine;
  /** unix:///path or tcp://HOST:PORT (several allowed). */
  hosts: string[];
  /** --tlsverify: serve TLS and require client certificates signed by `ca` (needed for a non-loopback address). */
  tls?: TlsOptions;
  /** Most connections held at once (per listener). */
  maxConnections?: number;
  log?: (line: string) => void;
}

export interface ApiServer {
  /** What each listener ended up on (a TCP port 0 gets its real port). */
  addresses: string[];
  close(): Promise<void>;
}

/** Parses `-H` values as dockerd does: unix:///path, tcp://host:port (fd:// and npipe:// are not ply's). */
export function parseHost(h: string): { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number } {
  if (h.startsWith('unix://')) {
    const p = h.slice('unix://'.length);
    if (!p.startsWith('/')) throw new InvalidArgumentError(`invalid unix socket address: ${h} (an absolute path is needed)`);
    return { kind: 'unix', path: p };
  }
  if (h.startsWith('/')) return { kind: 'unix', path: h };
  const m = /^tcp:\/\/(\[[0-9a-fA-F:]+\]|[^:/]*):(\d+)\/?$/.exec(h);
  if (m) {
    const port = Number(m[2]);
    if (port > 65535) throw new InvalidArgumentError(`invalid port in ${h}`);
    return { kind: 'tcp', host: m[1]!.replace(/^\[|\]$/g, '') || '0.0.0.0', port };
  }
  throw new InvalidArgumentError(`invalid -H/--host value '${h}': expected unix:///path or tcp://127.0.0.1:PORT`);
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Checks every host before anything listens: non-loopback TCP needs TLS with client certificates. */
export function checkHosts(hosts: string[], tls: TlsOptions | undefined): void {
  for (const h of hosts) {
    const p = parseHost(h);
    if (p.kind === 'tcp' && !isLoopback(p.host) && !tls) {
      throw new InvalidArgumentError(`refusing to listen on ${h} without TLS: the API gives root on this machine to whoever reaches it; use --tlsverify with --tlscacert, --tlscert and --tlskey, or a loopback address`);
    }
  }
}

export async function startApiServer(o: ApiServerOptions): Promise<ApiServer> {
  checkHosts(o.hosts, o.tls);
  const log = o.log ?? (() => undefined);
  const table = routes();
  const common: Headers = {
    'Api-Version': API_VERSION,
    'Docker-Experimental': 'false',
    Ostype: 'linux',
    Server: `Ply/${VERSION} (linux)`,
  };

  const handle = async (r: Request): Promise<void> => {
    try {
      if (compareVersions(r.version, MIN_API_VERSION) < 0) {
        throw new ApiError(400, `client version ${r.version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
      }
      if (compareVersions(r.version, API_VERSION) > 0) throw new ApiError(400, `client version ${r.version} is too new. Maximum supported API version is ${API_VERSION}`);
      const found = match(table, r.method, r.path);
      if (!found) throw new ApiError(404, 'page not found');
      r.params = found.params;
      await found.route.handler(r, o.engine);
    } catch (e) {
      const status = statusOf(e);
      if (status >= 500 && !(e instanceof PlyError)) log(`api: ${r.method} ${r.req.url}: ${(e as Error)?.stack ?? String(e)}`);
      if (!r.responded) {
        try {
          r.error(e);
        } catch {
          r.abort();
        }
      } else {
        // The answer had started: the only way left to report a failure is to cut the stream.
        r.abort();
      }
    }
  };

  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    let r: Request;
    try {
      r = new Request(req, res, undefined, undefined, common, API_VERSION);
    } catch (e) {
      res.writeHead(statusOf(e), { ...common, 'Content-Type': 'application/json' } as Record<string, string | number>);
      res.end(`${JSON.stringify({ message: (e as Error).message })}\n`);
      return;
    }
    void handle(r);
  };
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => undefined);
    let r: Request;
    try {
      r = new Request(req, undefined, socket, head, common, API_VERSION);
    } catch (e) {
      socket.end(`HTTP/1.1 ${statusOf(e)} Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${JSON.stringify({ message: (e as Error).message })}\n`);
      return;
    }
    void handle(r);
  };

  const servers: net.Server[] = [];
  const addresses: string[] = [];
  try {
    for (const h of o.hosts) {
      const p = parseHost(h);
      const server = p.kind === 'tcp' && o.tls
        ? https.createServer({ ca: fs.readFileSync(o.tls.ca), cert: fs.readFileSync(o.tls.cert), key: fs.readFileSync(o.tls.key), requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' })
        : http.createServer();
      server.on('request', onRequest);
      server.on('upgrade', onUpgrade);
      server.on('clientError', (_e, socket) => {
        if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
        else socket.destroy();
      });
      // Streams (logs -f, events, attach) last as long as the client wants; a request's headers must come quickly.
      server.requestTimeout = 0;
      server.headersTimeout = 60_000;
      server.keepAliveTimeout = 5_000;
      server.maxConnections = o.maxConnections ?? 1024;
      servers.push(server);
      if (p.kind === 'unix') {
        await listenUnix(server, p.path);
        addresses.push(`unix://${p.path}`);
      } else {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(p.port, p.host, () => {
            server.off('error', reject);
            resolve();
          });
        });
        const a = server.address() as net.AddressInfo;
        addresses.push(`tcp://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`);
      }
    }
  } catch (e) {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    throw e;
  }
  log(`ply service: Docker Engine API on ${addresses.join(', ')}`);
  return {
    addresses,
    close: async () => {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              (s as http.Server).closeAllConnections?.();
            }),
        ),
      );
      for (const h of o.hosts) {
        const p = parseHost(h);
        if (p.kind === 'unix') fs.rmSync(p.path, { force: true });
      }
    },
  };
}

/**
 * A unix socket as dockerd makes its own: root's, mode 0660 from the start (no moment where others may connect),
 * replacing a stale socket but never a live one.
 */
async function listenUnix(server: net.Server, file: string): Promise<void> {
  if (Buffer.byteLength(file) > 107) throw new InvalidArgumentError(`the socket path is too long for a unix socket: ${file}`);
  if (fs.existsSync(file)) {
    if (!fs.lstatSync(file).isSocket()) throw new InvalidArgumentError(`${file} exists and is not a socket`);
    const live = await new Promise<boolean>((resolve) => {
      const s = net.connect(file);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (live) throw new PlyError(`another server is listening on ${file}`);
    fs.rmSync(file, { force: true });
  }
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  const oldMask = process.umask(0o117);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(file, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(oldMask);
  }
  fs.chmodSync(file, 0o660);
  if (process.getuid?.() === 0) fs.chownSync(file, 0, 0);
}
