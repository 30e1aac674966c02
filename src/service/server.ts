/**
 * `ply system service`: keeps a few ply processes started and loaded ("warm workers") waiting on
 * $ROOT/service.sock, so that `bin/ply` (through native/ply-client) runs a command without paying for Node's
 * start-up. The service itself runs no commands and holds no store state: each command still runs in its own
 * process (a worker that serves one command and exits), and without the service bin/ply runs as before.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PlyError } from '../errors.js';
import { unixListen } from '../native/index.js';
import { ensurePrivateRoot } from '../util/fs.js';

export const SOCKET_NAME = 'service.sock';

export interface ServiceOptions {
  root: string;
  /** Warm workers kept waiting (default 2). */
  workers?: number;
  /** Seconds without a command after which the service exits; 0 = never. */
  idleSeconds?: number;
  /** The JS launcher a worker runs (bin/ply.cjs). */
  launcher: string;
  log?: (line: string) => void;
  /** More servers run beside the workers (the Engine API), started once the socket is ours; returns their stop. */
  alongside?: () => Promise<() => Promise<void>>;
}

export function socketPath(root: string): string {
  return path.join(root, SOCKET_NAME);
}

/** True if a service answers on `sock`. */
export function answers(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(sock);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** The pid in the service's pid file if that process is alive. */
function servicePid(file: string): number | undefined {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(file, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** Runs the service until SIGINT/SIGTERM or the idle timeout. */
export async function runService(o: ServiceOptions): Promise<void> {
  const want = o.workers ?? 2;
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (!Number.isInteger(want) || want < 1 || want > 64) throw new PlyError(`invalid --workers ${o.workers}: expected 1 to 64`);
  ensurePrivateRoot(o.root);
  const sock = socketPath(o.root);
  if (Buffer.byteLength(sock) > 107) throw new PlyError(`the service socket path is too long for a unix socket: ${sock}`);
  const pidFile = path.join(o.root, 'service.pid');
  if (fs.existsSync(sock)) {
    // Workers of a killed service may still hold the socket for a moment: only a live service counts.
    if (servicePid(pidFile) !== undefined && (await answers(sock))) throw new PlyError(`a ply service is already running for ${o.root}`);
    fs.rmSync(sock, { force: true });
  }
  // Only this user may connect (workers also check each client's uid).
  const oldMask = process.umask(0o177);
  let listenFd: number;
  try {
    listenFd = unixListen(sock, 128);
  } finally {
    process.umask(oldMask);
  }
  const ino = fs.statSync(sock).ino;
  fs.writeFileSync(pidFile, `${process.pid}\n`);

  const spares = new Set<ChildProcess>();
  const busy = new Set<ChildProcess>();
  let stopping = false;
  let quickDeaths = 0;
  let idleTimer: NodeJS.Timeout | undefined;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));

  const resetIdle = (): void => {
    if (!o.idleSeconds) return;
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = setTimeout(() => stop('idle'), o.idleSeconds * 1000);
    idleTimer.unref();
  };

  const startWorker = (): void => {
    const started = Date.now();
    const child = spawn(process.execPath, [o.launcher], {
      env: { ...process.env, PLY_SERVICE_WORKER: '3', PLY_SERVICE_PID: String(process.pid) },
      // fd 3: the listening socket; the worker's stdin/stdout are the client's once it takes a command.
      stdio: ['ignore', 'ignore', 'inherit', listenFd, 'ipc'],
      // Its own session: a Ctrl-C meant for the service must not reach a command it is running for a client.
      detached: true,
    });
    spares.add(child);
    child.on('message', (m: { type?: string }) => {
      if (m?.type !== 'taken' || !spares.delete(child)) return;
      busy.add(child);
      resetIdle();
      if (!stopping) startWorker();
    });
    child.on('exit', (code, signal) => {
      busy.delete(child);
      if (!spares.delete(child) || stopping) return;
      // A worker died before serving anyone: replace it, unless they keep dying at start-up.
      if (Date.now() - started < 5000 && ++quickDeaths >= 5) {
        log(`ply service: workers keep exiting at start-up (last: ${signal ?? `code ${code}`}); stopping`);
        stop('error');
        return;
      }
      startWorker();
    });
    child.unref();
    child.channel?.unref();
  };

  const stop = (why: string): void => {
    if (stopping) return;
    stopping = true;
    if (idleTimer) clearTimeout(idleTimer);
    try {
      if (fs.statSync(sock).ino === ino) fs.rmSync(sock);
    } catch {
      // already gone
    }
    if (servicePid(pidFile) === process.pid) fs.rmSync(pidFile, { force: true });
    fs.closeSync(listenFd);
    for (const c of spares) c.kill('SIGTERM');
    log(`ply service: stopped (${why})`);
    done();
  };

  let stopAlongside: (() => Promise<void>) | undefined;
  if (o.alongside) {
    try {
      stopAlongside = await o.alongside();
    } catch (e) {
      stop('error');
      throw e;
    }
  }
  for (let i = 0; i < want; i++) startWorker();
  resetIdle();
  const onSignal = (): void => stop('signal');
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // Keep the process alive while the service runs (workers and their channels are unref'd).
  const keepAlive = setInterval(() => {
    // The socket was removed or replaced (e.g. the root deleted): nobody can reach this service any more.
    let current: number | undefined;
    try {
      current = fs.statSync(sock).ino;
    } catch {
      current = undefined;
    }
    if (current !== ino) stop('socket removed');
  }, 2000);
  log(`ply service: listening on ${sock} with ${want} warm worker${want === 1 ? '' : 's'}`);
  try {
    await finished;
    await stopAlongside?.();
  } finally {
    clearInterval(keepAlive);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
