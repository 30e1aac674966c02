// docker's exec instances for the engine: created for a running container, started once (on this process's stdio
// or an API connection's streams, or detached), resized while they run, inspected; kept by this engine.
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { ExecIO } from '../container/exec.js';
import type { ContainerManager } from '../container/manager.js';
import { isRunning } from '../container/store.js';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { ExecInspect } from './types.js';

export interface ExecCreateOptions {
  cmd: string[];
  tty?: boolean;
  /** Keep stdin open (-i). */
  interactive?: boolean;
  env?: string[];
  /** Files of KEY=VALUE lines (--env-file). */
  envFiles?: string[];
  user?: string;
  workdir?: string;
  privileged?: boolean;
  /** The terminal's initial [rows, cols] (with `tty`, over streams). */
  consoleSize?: [number, number];
  /** Which output streams a client attached (docker's AttachStdout/AttachStderr; default both). */
  attachStdout?: boolean;
  attachStderr?: boolean;
}

interface ExecInstance {
  id: string;
  containerId: string;
  opts: ExecCreateOptions;
  running: boolean;
  exitCode: number | null;
  /** While it runs with a TTY over streams: sets the terminal's size. */
  resize?: (rows: number, cols: number) => void;
}

export class ExecInstances {
  private readonly execs = new Map<string, ExecInstance>();

  constructor(private readonly manager: ContainerManager) {}

  /** The IDs of the container's exec instances (docker inspect's ExecIDs). */
  idsOf(containerId: string): string[] {
    return [...this.execs.values()].filter((e) => e.containerId === containerId).map((e) => e.id);
  }

  /** docker exec, step 1: an exec instance (kept by this engine) for a running container. */
  create(ref: string, opts: ExecCreateOptions): { Id: string } {
    const c = this.manager.get(ref);
    if (!isRunning(c)) throw new ConflictError(`container ${c.id} is not running`);
    if (opts.cmd.length === 0) throw new InvalidArgumentError('exec requires at least 1 argument');
    const id = randomBytes(32).toString('hex');
    this.execs.set(id, { id, containerId: c.id, opts, running: false, exitCode: null });
    this.manager.event(c, `exec_create: ${opts.cmd.join(' ')}`, { execID: id });
    return { Id: id };
  }

  /**
   * docker exec, step 2: runs the instance and returns its exit code. Its stdio is this process's, or `io`'s
   * streams (no TTY then); `detach` returns at once.
   */
  async start(id: string, opts: { detach?: boolean; io?: ExecIO } = {}): Promise<number> {
    const e = this.execs.get(id);
    if (!e) throw new NotFoundError(`No such exec instance: ${id}`);
    if (e.running || e.exitCode !== null) throw new ConflictError(`exec ${id} has already run`);
    const { readEnvFile } = await import('../container/create.js');
    const o = e.opts;
    e.running = true;
    try {
      const code = await this.manager.exec(this.manager.get(e.containerId), {
        cmd: o.cmd,
        tty: o.tty,
        interactive: o.interactive,
        env: [...(o.envFiles ?? []).flatMap(readEnvFile), ...(o.env ?? [])],
        user: o.user,
        workdir: o.workdir,
        privileged: o.privileged,
        detach: opts.detach,
        io: opts.io && {
          ...opts.io,
          ...(o.attachStdout === false ? { stdout: discard() } : {}),
          ...(o.attachStderr === false ? { stderr: discard() } : {}),
          consoleSize: opts.io.consoleSize ?? o.consoleSize,
          onResize: (fn) => (e.resize = fn),
        },
        execId: e.id,
      });
      e.exitCode = opts.detach ? null : code;
      return code;
    } finally {
      e.running = false;
      e.resize = undefined;
    }
  }

  /** Sets a running exec's terminal size (docker's exec resize); one without a TTY ignores it. */
  resize(id: string, rows: number, cols: number): void {
    const e = this.execs.get(id);
    if (!e) throw new NotFoundError(`No such exec instance: ${id}`);
    if (!e.running) throw new ConflictError(`exec ${id} is not running`);
    e.resize?.(rows, cols);
  }

  /** `GET /exec/{id}/json`. */
  inspect(id: string): ExecInspect {
    const e = this.execs.get(id);
    if (!e) throw new NotFoundError(`No such exec instance: ${id}`);
    const [entrypoint = '', ...args] = e.opts.cmd;
    return {
      ID: e.id,
      ContainerID: e.containerId,
      Running: e.running,
      ExitCode: e.exitCode,
      Pid: 0,
      OpenStdin: !!e.opts.interactive,
      OpenStdout: e.opts.attachStdout !== false,
      OpenStderr: e.opts.attachStderr !== false,
      CanRemove: false,
      DetachKeys: '',
      ProcessConfig: { privileged: !!e.opts.privileged, user: e.opts.user ?? '', tty: !!e.opts.tty, entrypoint, arguments: args },
    };
  }
}

/** A stream that drops what it is given (an output the exec's client did not attach). */
function discard(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}
