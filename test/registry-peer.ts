// The CNCF distribution registry (Debian's docker-registry) as a test peer: started on a free loopback port,
// optionally with htpasswd basic auth, killed when the test process exits.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { tempDir } from './helpers.js';

export interface Distribution {
  domain: string;
  port: number;
  root: string;
  /** The access log (one line per request) as text so far. */
  accessLog(): string;
  stop(): Promise<void>;
}

const procs: ChildProcess[] = [];
process.on('exit', () => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
});

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startDistribution(opts: { user?: string; password?: string; accessLog?: boolean } = {}): Promise<Distribution> {
  const dir = tempDir('ply-registry-');
  const port = await freePort();
  let auth = '';
  if (opts.user) {
    fs.writeFileSync(path.join(dir, 'htpasswd'), execFileSync('htpasswd', ['-Bbn', opts.user, opts.password ?? '']));
    auth = `auth:\n  htpasswd:\n    realm: test\n    path: ${dir}/htpasswd\n`;
  }
  fs.writeFileSync(
    path.join(dir, 'config.yml'),
    `version: 0.1
log:
  level: error
  accesslog:
    disabled: ${opts.accessLog ? 'false' : 'true'}
storage:
  filesystem:
    rootdirectory: ${dir}/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
${auth}`,
  );
  const logFile = path.join(dir, 'registry.log');
  const proc = spawn('/usr/bin/docker-registry', ['serve', path.join(dir, 'config.yml')], {
    stdio: ['ignore', fs.openSync(logFile, 'a'), fs.openSync(logFile, 'a')],
  });
  procs.push(proc);
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`docker-registry exited: ${fs.readFileSync(logFile, 'utf8')}`);
    const status = await new Promise<number>((resolve) => {
      const req = http.get(`http://127.0.0.1:${port}/v2/`, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', () => resolve(0));
    });
    if (status === 200 || status === 401) break;
    if (Date.now() > deadline) throw new Error('docker-registry did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    domain: `127.0.0.1:${port}`,
    port,
    root: dir,
    accessLog: () => fs.readFileSync(logFile, 'utf8'),
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

export interface PlyRegistry {
  domain: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * `ply registry serve` in a process of its own on a free loopback port (a registry inside the test process would
 * stall while the test runs ply synchronously).
 */
export async function startPlyRegistry(): Promise<PlyRegistry> {
  const { PLY } = await import('./helpers.js');
  const port = await freePort();
  const domain = `127.0.0.1:${port}`;
  const proc = spawn(PLY, ['registry', 'serve', '--addr', domain, '--root', tempDir('ply-registry-')], { stdio: 'ignore', env: { ...process.env, PLY_ROOT: tempDir() } });
  procs.push(proc);
  for (let i = 0; ; i++) {
    const up = await new Promise<boolean>((resolve) => {
      http.get(`http://${domain}/v2/`, (res) => resolve((res.resume(), res.statusCode === 200))).on('error', () => resolve(false));
    });
    if (up) break;
    if (proc.exitCode !== null || i > 300) throw new Error(`ply registry serve did not start on ${domain}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    domain,
    port,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
