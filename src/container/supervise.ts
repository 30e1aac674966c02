// One run of a container under its supervisor (the attached CLI or the detached monitor): its stdio (ply's
// terminal, pipes, or a pseudo-terminal we hold), its log, the attach socket's clients, health checks while it
// runs, and at its exit the record, docker's events and the restart policy's decision.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { StdioOptions } from 'node:child_process';
import { StartError } from '../errors.js';
import { proxySignals, runtimeSignals } from '../runtime/signals.js';
import { runtimeError, startFailureCode, type Runtime } from '../runtime/runc.js';
import { ContainerCgroup } from '../runtime/cgroups.js';
import type { RestartManager } from '../supervisor/restart.js';
import { HealthMonitor, probeCommand } from '../supervisor/health.js';
import type { Stores } from '../stores.js';
import { FRAME_STDERR, FRAME_STDOUT, type AttachServer } from './attach.js';
import { cgroupsPath, type PreparedRun, type RuntimeExtras } from './bundle.js';
import { containerEvent, networkEvents, volumeEvents } from './events.js';
import type { ProbeResult } from './exec.js';
import { LogWriter } from './logs.js';
import { exitCodeOf, followOwnTerminal, HeldOutput, openTerminal, waitForPid } from './process.js';
import { volumeNames, type Container } from './store.js';

export type AttachMode = 'attached' | 'detached';

/** What a supervisor needs of the container manager. */
export interface SupervisorHost {
  readonly stores: Stores;
  prepare(c: Container, extra?: RuntimeExtras): Promise<PreparedRun>;
  runtime(c: Container): Runtime;
  logPath(c: Container): string;
  removeStopped(c: Container, volumes: boolean): void;
  probe(c: Container, cmd: string[], timeoutMs: number): Promise<ProbeResult>;
}

export interface SuperviseOptions {
  /** Serve the attach socket (detached runs). */
  attach?: boolean;
  /** Attach clients to wait for before the process starts. */
  holdFor?: number;
  onAttachReady?: () => void;
  restart?: RestartManager;
}

/** What the attach socket's clients reach once the process runs. */
interface RunIO {
  stdin?: (d: Buffer) => void;
  closeStdin?: () => void;
  resize?: (rows: number, cols: number) => void;
}

/**
 * Runs the container's process under the runtime and waits for it: the attached CLI and the detached
 * monitor both come here. `onStarted` is called once the process runs (or with the reason it could not).
 * The monitor also serves the container's attach socket (`attach`): output to attached clients, their stdin
 * and terminal sizes in; with `holdFor`, the process starts only once that many clients connected (an API
 * client that attached before the start must see its first byte of output).
 */
export async function supervise(
  host: SupervisorHost,
  c: Container,
  mode: AttachMode,
  onStarted?: (err?: StartError) => void,
  extra?: RuntimeExtras,
  opts: SuperviseOptions = {},
): Promise<number> {
  const dir = host.stores.containers.pathOf(c.id);
  fs.rmSync(path.join(dir, 'pid'), { force: true });
  fs.writeFileSync(path.join(dir, 'runtime.log'), '');
  const s = c.spec;
  const io: RunIO = {};
  let attach: AttachServer | undefined;
  if (opts.attach && mode === 'detached') {
    const { AttachServer } = await import('./attach.js');
    attach = await AttachServer.listen(dir, {
      stdin: (d) => io.stdin?.(d),
      stdinClosed: () => {
        if (s.stdinOnce) io.closeStdin?.();
      },
      resize: (rows, cols) => io.resize?.(rows, cols),
    });
    opts.onAttachReady?.();
  }
  try {
    return await superviseRun(host, c, mode, onStarted, extra, attach, io, opts.holdFor ?? 0, opts.restart);
  } finally {
    attach?.close();
  }
}

async function superviseRun(
  host: SupervisorHost,
  c: Container,
  mode: AttachMode,
  onStarted: ((err?: StartError) => void) | undefined,
  extra: RuntimeExtras | undefined,
  attach: AttachServer | undefined,
  io: RunIO,
  holdFor: number,
  restart?: RestartManager,
): Promise<number> {
  const { containers, snapshots, networks, events } = host.stores;
  const dir = containers.pathOf(c.id);
  const pidFile = path.join(dir, 'pid');
  const runtimeLog = path.join(dir, 'runtime.log');
  if (mode === 'attached') containerEvent(events, c, 'attach');
  let prepared: PreparedRun;
  try {
    [prepared] = await Promise.all([host.prepare(c, extra), holdFor > 0 && attach ? attach.waitForClients(holdFor, 10_000) : undefined]);
  } catch (e) {
    const err = e instanceof StartError ? e : new StartError((e as Error).message, 125);
    // docker records 126/127 for a command that cannot run; any other failed start keeps the last exit code,
    // or 128 in place of 0 (125 is only what `run` exits with).
    const exitCode = err.exitCode === 126 || err.exitCode === 127 ? err.exitCode : (containers.get(c.id) ?? c).exitCode || 128;
    containers.update(c.id, { error: err.message, exitCode });
    onStarted?.(err);
    // run --rm: a container that could not even be prepared (unpack failed, disk full) is not left behind.
    if (c.spec.autoRemove) {
      try {
        host.removeStopped(containers.get(c.id) ?? c, true);
      } catch {
        // reported by the error below; `container prune` removes it
      }
    }
    attach?.finish(err.exitCode);
    throw err;
  }
  const rt = host.runtime(c);
  const s = c.spec;
  // -it on ply's own terminal: runc drives that terminal. Any other TTY container (detached, -t without -i, -t in
  // a pipe) gets a pseudo-terminal its supervisor holds as runc's stdio, as docker gives one whatever the client
  // has (runc proxies it to the container's own console and follows its size on SIGWINCH).
  const ttyDirect = s.tty && mode === 'attached' && s.openStdin && !!process.stdin.isTTY;
  const size = mode === 'attached' && process.stdout.isTTY ? [process.stdout.rows, process.stdout.columns] : s.consoleSize;
  const pty = s.tty && !ttyDirect ? openTerminal(size) : undefined;
  let stdio: StdioOptions;
  if (ttyDirect) stdio = ['inherit', 'inherit', 'inherit'];
  else if (pty) stdio = [pty.slave, pty.slave, pty.slave];
  else if (mode === 'attached') stdio = [s.openStdin ? 'inherit' : 'ignore', 'pipe', 'pipe'];
  else stdio = [s.openStdin ? 'pipe' : 'ignore', 'pipe', 'pipe'];
  // Attached, signals sent to ply reach the container (docker's sig-proxy); see runtimeSignals.
  const sig = runtimeSignals(mode === 'attached' && stdio[0] === 'inherit' && !!process.stdin.isTTY);
  // With a memory limit the runtime keeps the container's cgroups after it exits, so the OOM killer's count can
  // be read (OOMKilled) before they are deleted.
  const keep = !!s.resources?.Memory && rt.canKeep();
  const child = rt.run(c.id, prepared.bundle, stdio, {
    pidFile,
    logFile: runtimeLog,
    ownSession: (mode === 'attached' && sig.ownSession) || !!pty,
    keep,
  });
  const unproxy = mode === 'attached' ? proxySignals(child, sig.proxy) : () => undefined;
  containers.update(c.id, { monitorPid: process.pid });
  const log = ttyDirect ? undefined : new LogWriter(host.logPath(c));
  // Until the process runs, stderr may carry the runtime's own complaint, which ply reports in its own words:
  // hold output back until the start is confirmed.
  const out = new HeldOutput();
  const forward = (to: NodeJS.WriteStream, d: Buffer) => {
    if (mode === 'attached') out.write(to, d);
  };
  const outputDone: Promise<void>[] = [];
  if (pty) {
    const term = pty.term;
    fs.closeSync(pty.slave);
    term.on('data', (d: Buffer) => {
      log?.write('stdout', d);
      attach?.output(FRAME_STDOUT, d);
      forward(process.stdout, d);
    });
    outputDone.push(pty.closed);
    io.stdin = (d) => {
      if (!term.destroyed) term.write(d);
    };
    io.resize = (rows, cols) => pty.resize(child, rows, cols);
    if (mode === 'attached' && process.stdout.isTTY) followOwnTerminal(child, io.resize);
  } else if (log) {
    child.stdout?.on('data', (d: Buffer) => {
      log.write('stdout', d);
      attach?.output(FRAME_STDOUT, d);
      forward(process.stdout, d);
    });
    child.stderr?.on('data', (d: Buffer) => {
      log.write(s.tty ? 'stdout' : 'stderr', d);
      attach?.output(s.tty ? FRAME_STDOUT : FRAME_STDERR, d);
      forward(process.stderr, d);
    });
    if (child.stdout && !child.stdout.readableEnded) outputDone.push(new Promise((r) => child.stdout!.once('close', () => r())));
    if (child.stdin && mode === 'detached') {
      const stdin = child.stdin;
      stdin.on('error', () => undefined);
      io.stdin = (d) => {
        if (!stdin.destroyed && !stdin.writableEnded) stdin.write(d);
      };
      io.closeStdin = () => stdin.end();
    }
  }
  const exited = exitCodeOf(child, 125).finally(unproxy);
  const startedPid = await waitForPid(pidFile, exited);
  // From here the container's processes hold its network namespace (the kernel frees it, and its veths, with them).
  if (prepared.netFd !== undefined) fs.closeSync(prepared.netFd);
  let started = false;
  if (startedPid > 0) {
    started = true;
    containers.update(c.id, { state: 'running', pid: startedPid, startedAt: Date.now(), exitCode: 0, error: '', finishedAt: 0, oomKilled: false });
    containerEvent(events, c, 'start');
    out.release(true);
    onStarted?.();
  }
  const health = started ? startHealth(host, c) : undefined;
  let code = await exited;
  health?.stop();
  // The output still in the pipes (or the terminal) comes before the end; a daemon in the container that kept
  // a descriptor open is not waited for long.
  await Promise.race([Promise.all(outputDone), new Promise((r) => setTimeout(r, 2000).unref())]);
  pty?.term.destroy();
  out.release(started);
  log?.close();
  let error = '';
  if (!started) {
    error = runtimeError(runtimeLog) ?? `the container exited with code ${code} before it started`;
    code = startFailureCode(error);
  }
  let oomKilled = false;
  if (keep) {
    oomKilled = (new ContainerCgroup(cgroupsPath(c.id)).oomKills() ?? 0) > 0;
    rt.delete(c.id);
  }
  snapshots.of(dir).unmount(dir);
  networks.detach(c.id);
  host.stores.volumes.unmountFor(c.id, volumeNames(c));
  // `runc run` removes its own state when it exits; only a killed runtime leaves some (refresh cleans that).
  const now = containers.get(c.id);
  if (now) {
    const finishedAt = Date.now();
    // The policy decides on the record as it is now: `stop` or `kill` may have marked it, `update` changed it.
    restart?.setPolicy(now.spec.restartPolicy);
    const again = started && restart ? restart.shouldRestart(code, now.restartCount, now.manuallyStopped, finishedAt - now.startedAt) : undefined;
    containers.update(c.id, {
      state: again?.restart ? 'restarting' : started ? 'exited' : 'created',
      pid: 0,
      // A restarting container keeps its supervisor (this process, until a monitor takes over).
      monitorPid: again?.restart ? process.pid : 0,
      exitCode: code,
      error,
      finishedAt: started ? finishedAt : 0,
      ...(started ? { oomKilled } : {}),
      ...(again?.restart ? { restartCount: now.restartCount + 1 } : {}),
    });
    if (oomKilled) containerEvent(events, now, 'oom');
    if (started) containerEvent(events, now, 'die', { exitCode: String(code), execDuration: String(Math.floor((finishedAt - now.startedAt) / 1000)) });
    networkEvents(events, networks, now, 'disconnect');
    volumeEvents(events, now, 'unmount');
  }
  if (!started) {
    const err = new StartError(`failed to start container ${c.id.slice(0, 12)}: ${error}`, code);
    onStarted?.(err);
    if (s.autoRemove && now) host.removeStopped(c, true);
    attach?.finish(code);
    throw err;
  }
  if (s.autoRemove && now) host.removeStopped(c, true);
  // Attached clients hear the end last: a `wait` for removal returns once the record is gone.
  attach?.finish(code);
  return code;
}

/** The container's health check while it runs (none when it has no active check). */
function startHealth(host: SupervisorHost, c: Container): HealthMonitor | undefined {
  const { containers, events } = host.stores;
  const h = c.spec.healthcheck;
  const cmd = probeCommand(h);
  if (!h || !cmd) return undefined;
  const current = () => containers.get(c.id) ?? c;
  return new HealthMonitor(
    h,
    cmd,
    current().startedAt || Date.now(),
    {
      // Each probe is an exec, with docker's exec events (dockerd logs them for health checks too).
      probe: async (argv, timeoutMs) => {
        const cur = current();
        const execID = randomBytes(32).toString('hex');
        containerEvent(events, cur, `exec_create: ${argv.join(' ')}`, { execID });
        containerEvent(events, cur, `exec_start: ${argv.join(' ')}`, { execID });
        const r = await host.probe(cur, argv, timeoutMs);
        containerEvent(events, cur, 'exec_die', { execID, exitCode: String(r.timedOut ? -1 : r.exitCode) });
        return r;
      },
      save: (state) => containers.update(c.id, { health: state }),
      changed: (status) => containerEvent(events, current(), `health_status: ${status}`),
    },
    c.health,
  );
}
