/**
 * A warm worker of `ply system service`: a Node process that has already started and loaded the CLI, waiting
 * on the service's socket for one command from `ply-client` (native/ply_client.c, which documents the wire
 * format). It takes over the client's stdin/stdout/stderr, environment, working directory and umask, runs the
 * command exactly as `bin/ply` would, reports the exit code and exits: one command per worker, so commands
 * never share process state.
 */

import fs from 'node:fs';
import { dup2, recvFds, setrlimit, unixAccept } from '../native/index.js';
import { callerRlimits } from '../runtime/spec.js';
import { enableSignalProxy } from '../runtime/signals.js';

let served = false;

/** True in a worker that has taken a command from a client (for `ply info`). */
export function servedByService(): boolean {
  return served;
}

export const REPLY_READY = 1;
export const REPLY_EXIT = 2;
const MAX_REQUEST = 1 << 20;
/** How long a connected client may take to send its request or its go-ahead. */
const CLIENT_TIMEOUT_MS = 2000;

export interface Request {
  cwd: string;
  umask: number;
  /** [soft, hard] per resource (RLIMIT_CPU = 0 … RLIMIT_RTTIME = 15); -1 = unlimited. */
  rlimits: [number, number][];
  args: string[];
  env: Record<string, string>;
  /** The client's stdin, stdout and stderr. */
  fds: number[];
}

/** Parses a request body (NUL-terminated fields: cwd, umask in octal, rlimits, argc, argv…, env…). */
export function parseRequest(body: Buffer, fds: number[]): Request {
  const fields = body.toString('utf8').split('\0');
  if (fields.pop() !== '') throw new Error('request does not end with NUL');
  const [cwd, umask, limits, argc] = fields;
  const n = Number(argc);
  if (cwd === undefined || !/^[0-7]{1,4}$/.test(umask ?? '') || !/^-?\d+:-?\d+(,-?\d+:-?\d+)*$/.test(limits ?? '') || !Number.isInteger(n) || n < 0 || 4 + n > fields.length) {
    throw new Error('malformed request');
  }
  const rlimits = limits!.split(',').map((p) => p.split(':').map(Number) as [number, number]);
  const env: Record<string, string> = {};
  for (const kv of fields.slice(4 + n)) {
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return { cwd, umask: parseInt(umask!, 8), rlimits, args: fields.slice(4, 4 + n), env, fds };
}

/**
 * Takes on the client's resource limits, as a command started by the client would have them (containers are
 * never given more than these). A limit above this process's own hard limit cannot be raised: it stays there.
 */
function adoptRlimits(wanted: [number, number][]): void {
  const own = Object.values(callerRlimits());
  wanted.forEach(([soft, hard], resource) => {
    const mine = own[resource];
    if (mine === undefined) return;
    const h = Math.min(hard < 0 ? Infinity : hard, mine.hard);
    const s = Math.min(soft < 0 ? Infinity : soft, h);
    if (s === mine.soft && h === mine.hard) return;
    try {
      setrlimit(resource, s === Infinity ? -1 : s, h === Infinity ? -1 : h);
    } catch {
      // left as it is
    }
  });
}

export function reply(type: number, value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(type, 0);
  b.writeInt32LE(value, 4);
  return b;
}

function closeAll(fds: number[]): void {
  for (const fd of fds) {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
  }
}

/** Reads one whole request from a fresh connection, or null when the client went away or sent garbage. */
function readRequest(conn: number): Request | null {
  const chunks: Buffer[] = [];
  const fds: number[] = [];
  let have = 0;
  let need = 8;
  let bodyLen = -1;
  while (have < need) {
    const got = recvFds(conn, Math.min(need - have, 1 << 16), CLIENT_TIMEOUT_MS);
    if (got) fds.push(...got.fds);
    if (!got || got.data.length === 0) break;
    chunks.push(Buffer.from(got.data));
    have += got.data.length;
    if (bodyLen < 0 && have >= 8) {
      const head = Buffer.concat(chunks);
      if (head.subarray(0, 4).toString('latin1') !== 'PLY1') break;
      bodyLen = head.readUInt32LE(4);
      if (bodyLen > MAX_REQUEST) break;
      need = 8 + bodyLen;
    }
  }
  if (bodyLen < 0 || have !== need || fds.length !== 3) {
    closeAll(fds);
    return null;
  }
  try {
    return parseRequest(Buffer.concat(chunks).subarray(8), fds);
  } catch {
    closeAll(fds);
    return null;
  }
}

/**
 * Waits for a client on `listenFd` (a socket shared with the other warm workers), completes the hand-off and
 * returns the request and its connection. Only clients with this process's uid are served. Returns null when
 * the service is gone (this process was re-parented).
 */
function acceptOne(listenFd: number, service: number): { conn: number; req: Request } | null {
  const uid = process.geteuid?.() ?? 0;
  for (;;) {
    // Blocking is fine: an idle worker has nothing else to do.
    const c = unixAccept(listenFd, 1000);
    if (c === null) {
      if (process.ppid !== service) return null;
      continue;
    }
    if (c.uid !== uid || process.ppid !== service) {
      // Not this user's, or the service is gone (the client then runs the command itself).
      fs.closeSync(c.fd);
      if (process.ppid !== service) return null;
      continue;
    }
    const req = readRequest(c.fd);
    if (req === null) {
      fs.closeSync(c.fd);
      continue;
    }
    try {
      fs.writeSync(c.fd, reply(REPLY_READY, process.pid));
      const go = recvFds(c.fd, 1, CLIENT_TIMEOUT_MS);
      if (go !== null && go.data.length === 1 && go.data[0] === 0x67 /* g */) return { conn: c.fd, req };
    } catch {
      // the client went away: it runs the command itself
    }
    closeAll([...req.fds, c.fd]);
  }
}

/**
 * The worker's life: warm up, serve one command, exit. `run` is the CLI's main(argv); `warm` loads what a
 * command would otherwise load on the critical path.
 */
export async function serveOne(listenFd: number, launcher: string, run: (argv: string[]) => Promise<void>, warm: () => Promise<void>): Promise<void> {
  // The service's pid comes from the service itself: a worker started just before the service died must not take
  // init (or a subreaper) for its service and wait on the socket for ever.
  const service = Number(process.env.PLY_SERVICE_PID) || process.ppid;
  delete process.env.PLY_SERVICE_PID;
  if (process.ppid !== service) process.exit(0);
  await warm();
  // A send to a service that is gone fails (EPIPE) through the callback, not as an 'error' event mid-command.
  if (process.send && process.connected) process.send({ type: 'ready' }, () => undefined);
  const got = acceptOne(listenFd, service);
  if (got === null) process.exit(0);
  const { conn, req } = got;
  fs.closeSync(listenFd);
  served = true;
  // The service starts a replacement; this process belongs to the client from now on.
  if (process.send && process.connected) {
    // The callback also takes a send error (EPIPE: the service is gone), which must not end the command.
    process.send({ type: 'taken' }, () => {
      if (process.connected) process.disconnect();
    });
  }
  for (let i = 0; i < 3; i++) dup2(req.fds[i]!, i);
  closeAll(req.fds);
  for (const k of Object.keys(process.env)) delete process.env[k];
  Object.assign(process.env, req.env);
  process.umask(req.umask);
  adoptRlimits(req.rlimits);
  process.argv = [process.execPath, launcher, ...req.args];
  enableSignalProxy();
  process.on('exit', (code) => {
    try {
      fs.writeSync(conn, reply(REPLY_EXIT, code));
    } catch {
      // the client is gone
    }
  });
  try {
    process.chdir(req.cwd);
  } catch (e) {
    process.stderr.write(`Error: cannot change to the working directory ${req.cwd}: ${(e as Error).message}\n`);
    process.exit(125);
  }
  await run(req.args);
}
