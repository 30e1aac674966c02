// Processes run in a running container beside its own, with the container's process settings: `exec` (on ply's
// terminal, over an API connection's streams, or detached) and health probes.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { StdioOptions } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import { ConflictError, InvalidArgumentError, PlyError, StartError } from '../errors.js';
import { proxySignals, runtimeSignals } from '../runtime/signals.js';
import type { RuntimeSpec } from '../runtime/spec.js';
import { resolveUser } from '../runtime/user.js';
import { runtimeError, type Runtime } from '../runtime/runc.js';
import { exitCodeOf, exitedOnce, followOwnTerminal, HeldOutput, openTerminal, waitForPid } from './process.js';
import { isRunning, type Container } from './store.js';

/** Streams for an exec's stdio instead of this process's: what an API connection carries. */
export interface ExecIO {
  stdin?: Readable;
  stdout: Writable;
  /** With a TTY, the terminal's output all goes to stdout. */
  stderr: Writable;
  /** With a TTY: its initial [rows, cols]. */
  consoleSize?: [number, number];
  /** With a TTY: called with the function that resizes it while the exec runs. */
  onResize?: (resize: (rows: number, cols: number) => void) => void;
}

export interface ExecOptions {
  cmd: string[];
  tty?: boolean;
  interactive?: boolean;
  env?: string[];
  user?: string;
  workdir?: string;
  detach?: boolean;
  privileged?: boolean;
  io?: ExecIO;
  /** The exec instance's ID, for its exec_start and exec_die events. */
  execId?: string;
}

export interface ProbeResult {
  exitCode: number;
  output: string;
  timedOut: boolean;
}

/** The running container's process settings (its bundle's), the base of every process run beside it. */
async function containerProcess(dir: string): Promise<NonNullable<RuntimeSpec['process']>> {
  const bundle = JSON.parse(await fsp.readFile(path.join(dir, 'config.json'), 'utf8')) as RuntimeSpec;
  return structuredClone(bundle.process!);
}

/**
 * A health probe: `cmd` exec'd in the container (bundle in `dir`) as its process runs (user, env, cwd), stdout and
 * stderr together (the first 8 KiB), killed when it outlasts `timeoutMs`.
 */
export async function probe(rt: Runtime, c: Container, dir: string, cmd: string[], timeoutMs: number): Promise<ProbeResult> {
  const proc = await containerProcess(dir);
  proc.args = cmd;
  proc.terminal = false;
  const base = path.join(dir, `health-${randomBytes(6).toString('hex')}`);
  await fsp.writeFile(`${base}.json`, JSON.stringify(proc));
  try {
    const child = rt.exec(c.id, `${base}.json`, ['ignore', 'pipe', 'pipe'], { tty: false, logFile: `${base}.log`, pidFile: `${base}.pid` });
    const chunks: Buffer[] = [];
    let size = 0;
    const take = (d: Buffer) => {
      if (size >= 8192) return;
      chunks.push(d);
      size += d.length;
    };
    child.stdout!.on('data', take);
    child.stderr!.on('data', take);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      // runc does not pass SIGKILL on: the probe's own process is killed.
      try {
        const pid = Number(fs.readFileSync(`${base}.pid`, 'utf8'));
        if (pid > 0) process.kill(pid, 'SIGKILL');
      } catch {
        // not started yet, or gone
      }
      child.kill('SIGKILL');
    }, timeoutMs);
    const exitCode = await exitCodeOf(child, 126);
    clearTimeout(timer);
    return { exitCode, output: Buffer.concat(chunks).toString(), timedOut };
  } finally {
    for (const ext of ['json', 'log', 'pid']) await fsp.rm(`${base}.${ext}`, { force: true });
  }
}

/** Runs a command in a running container (bundle in `dir`); returns its exit code. `event` logs its exec events. */
export async function exec(
  rt: Runtime,
  c: Container,
  dir: string,
  o: ExecOptions,
  event: (action: string, extra: Record<string, string>) => void,
): Promise<number> {
  if (!isRunning(c)) throw new ConflictError(`container ${c.id} is not running`);
  if (c.state === 'paused') throw new ConflictError(`container ${c.id} is paused, unpause the container before exec`);
  if (o.cmd.length === 0) throw new InvalidArgumentError('exec requires at least 1 argument');
  const proc = await containerProcess(dir);
  proc.args = o.cmd;
  proc.terminal = !!o.tty && !o.detach;
  // The client's terminal size from the first byte on (docker's ConsoleSize); resizes follow through the pty.
  delete proc.consoleSize;
  const consoleSize = proc.terminal ? o.io?.consoleSize : undefined;
  if (consoleSize && consoleSize[0] > 0 && consoleSize[1] > 0) proc.consoleSize = { height: consoleSize[0], width: consoleSize[1] };
  if (o.workdir) proc.cwd = o.workdir;
  if (o.user) {
    let u: ReturnType<typeof resolveUser>;
    try {
      u = resolveUser(path.join(dir, 'merged'), o.user);
    } catch (e) {
      // docker: the exec could not start (126).
      throw e instanceof PlyError ? new StartError(e.message, 126) : e;
    }
    proc.user = { uid: u.uid, gid: u.gid, additionalGids: u.additionalGids };
  }
  const { mergeEnv } = await import('./create.js');
  proc.env = mergeEnv(proc.env ?? [], o.env ?? []);
  const processFile = path.join(dir, `exec-${randomBytes(6).toString('hex')}.json`);
  await fsp.writeFile(processFile, JSON.stringify(proc));
  const logFile = `${processFile}.log`;
  const pidFile = `${processFile}.pid`;
  try {
    const io = o.detach ? undefined : o.io;
    // -it on ply's own terminal: runc drives it. Any other TTY exec (over streams, in a pipe, -t without -i)
    // gets a pseudo-terminal of ours as runc's stdio (runc proxies it to the process's own), as docker's.
    const ttyDirect = !!o.tty && !o.detach && !io && !!o.interactive && !!process.stdin.isTTY;
    const size: [number, number] | undefined = io ? io.consoleSize : process.stdout.isTTY ? [process.stdout.rows, process.stdout.columns] : undefined;
    const pty = o.tty && !o.detach && !ttyDirect ? openTerminal(size) : undefined;
    let stdio: StdioOptions;
    if (o.detach) stdio = ['ignore', 'ignore', 'ignore'];
    else if (ttyDirect) stdio = ['inherit', 'inherit', 'inherit'];
    else if (pty) stdio = [pty.slave, pty.slave, pty.slave];
    else if (io) stdio = [io.stdin && o.interactive ? 'pipe' : 'ignore', 'pipe', 'pipe'];
    // stderr through ply: the runtime's own complaint is reported once, in ply's words (docker's).
    else stdio = [o.interactive ? 'inherit' : 'ignore', 'inherit', 'pipe'];
    const sig = runtimeSignals(!o.detach && stdio[0] === 'inherit' && !!process.stdin.isTTY);
    const child = rt.exec(c.id, processFile, stdio, { tty: !!o.tty, logFile, pidFile, detach: o.detach, ownSession: (!o.detach && !io && sig.ownSession) || !!pty });
    if (o.execId) event(`exec_start: ${o.cmd.join(' ')}`, { execID: o.execId });
    const unproxy = o.detach || io ? () => undefined : proxySignals(child, sig.proxy);
    const exited = exitCodeOf(child, 126).finally(unproxy);
    // Output waits until the process runs: before that it can only be the runtime's error.
    const out = new HeldOutput();
    const copied: Promise<void>[] = [];
    if (pty) {
      const term = pty.term;
      fs.closeSync(pty.slave);
      term.on('data', (d: Buffer) => out.write(io?.stdout ?? process.stdout, d));
      copied.push(pty.closed);
      if (io?.stdin && o.interactive) {
        io.stdin.on('data', (d: Buffer) => {
          if (!term.destroyed) term.write(d);
        });
      }
      const resize = (rows: number, cols: number) => pty.resize(child, rows, cols);
      if (io) io.onResize?.(resize);
      else if (process.stdout.isTTY) followOwnTerminal(child, resize);
      // The stream owns the master; a process left holding the terminal is not waited for long.
      void exitedOnce(child).then(() => setTimeout(() => term.destroy(), 2000).unref());
    } else {
      if (io?.stdin && child.stdin) io.stdin.pipe(child.stdin).on('error', () => undefined);
      for (const [from, to] of [[child.stdout, io?.stdout ?? process.stdout], [child.stderr, io?.stderr ?? process.stderr]] as const) {
        if (!from) continue;
        from.on('data', (d: Buffer) => out.write(to, d));
        copied.push(new Promise((r) => from.once('close', () => r())));
      }
    }
    const started = o.detach ? (await exited) === 0 : (await waitForPid(pidFile, exited)) > 0;
    if (started) out.release();
    const code = await exited;
    await Promise.all(copied);
    if (o.execId && !o.detach) event('exec_die', { execID: o.execId, exitCode: String(code) });
    const err = runtimeError(logFile);
    const failed = err !== undefined && code !== 0 && !started;
    out.release(!failed);
    // docker's exec: a command that cannot be started exits 126, whatever the reason.
    if (failed) throw new StartError(`OCI runtime exec failed: ${err}`, 126);
    return code;
  } finally {
    await fsp.rm(processFile, { force: true });
    await fsp.rm(logFile, { force: true });
    await fsp.rm(pidFile, { force: true });
  }
}
