// A container's streams for the engine: logs (from its json-file log, following), attach sessions (through its
// monitor's attach socket; made before a start, they are connected before its first byte), terminal resize, and
// wait with docker's conditions.
import fs from 'node:fs';
import { connectAttach, type AttachConnection } from '../container/attach.js';
import type { ContainerManager } from '../container/manager.js';
import { isRunning, isUp, type Container } from '../container/store.js';
import { ConflictError } from '../errors.js';
import { rfc3339Nano } from '../gotemplate/gofmt.js';
import type { Stores } from '../stores.js';
import { parseTime } from './filters.js';
import type { LogEntry, WaitCondition, WaitResponse } from './types.js';

export interface LogsOptions {
  follow?: boolean;
  /** Lines from the end ('all', or a count). */
  tail?: string | number;
  /** Unix seconds, an RFC 3339 time, or a duration before now ('42m'). */
  since?: string | number;
  until?: string | number;
  stdout?: boolean;
  stderr?: boolean;
  /** Ends a follow (the client went away). */
  signal?: AbortSignal;
}

/** A live attachment to a container (docker attach): output as it comes, stdin and terminal size going in. */
export interface AttachSession {
  /** The container has a TTY (its output is one raw stream, reported as stdout). */
  tty: boolean;
  /** Resolves once the session reaches the running container (false: it never will, e.g. its start failed). */
  connected: Promise<boolean>;
  /** Output chunks; ends when the container stops (or the session closes). */
  output: AsyncIterable<{ stream: 'stdout' | 'stderr'; data: Buffer }>;
  /** Input for the container's stdin (once connected). */
  stdin(data: Buffer): void;
  /** The end of this client's input: the container's stdin closes if it was created with StdinOnce. */
  closeStdin(): void;
  resize(rows: number, cols: number): void;
  close(): void;
}

/** A session (attach or wait) made before a start, connected when this engine starts the container. */
export interface PendingAttach {
  connected(conn: AttachConnection | undefined): void;
}

export class ContainerStreams {
  /** Sessions (attach, wait) made on containers not started yet, by container ID. */
  private readonly pending = new Map<string, PendingAttach[]>();

  constructor(
    private readonly stores: Stores,
    private readonly manager: ContainerManager,
  ) {}

  /** The sessions waiting for this container's next start, handed to the start (which connects them). */
  takePending(id: string): PendingAttach[] {
    const pending = this.pending.get(id) ?? [];
    this.pending.delete(id);
    return pending;
  }

  /**
   * Waits for a condition and returns the exit code: 'not-running' (now, if it is not running), 'next-exit'
   * (the end of the next run, even if it has not started yet), 'removed' (the record gone). A running
   * container's end comes from its monitor's attach socket; without one (a container run attached by a CLI),
   * the record is polled.
   */
  async wait(ref: string, opts: { condition?: WaitCondition; signal?: AbortSignal } = {}): Promise<WaitResponse> {
    const condition = opts.condition ?? 'not-running';
    const first = this.manager.get(ref);
    const result = (c: Container, code?: number): WaitResponse => ({ StatusCode: code ?? c.exitCode, ...(c.error ? { Error: { Message: c.error } } : {}) });
    if (condition === 'not-running' && !isRunning(first)) return result(first);
    // The end of a run: the one going on, or (next-exit; removed, for a container not started yet) the next one.
    let conn: AttachConnection | undefined;
    if (isRunning(first)) conn = await connectAttach(this.stores.containers.pathOf(first.id)).catch(() => undefined);
    else if (condition === 'next-exit' || first.state === 'created') conn = await this.nextRun(first, opts.signal);
    let code: number | undefined;
    if (conn) {
      const abort = () => conn.close();
      opts.signal?.addEventListener('abort', abort);
      try {
        for await (const _ of conn.output) void _; // output is not wanted here
        code = await conn.exit;
      } finally {
        opts.signal?.removeEventListener('abort', abort);
        conn.close();
      }
    }
    let last = first;
    for (;;) {
      opts.signal?.throwIfAborted();
      const rec = this.stores.containers.get(first.id);
      const c = rec && this.manager.refresh(rec);
      if (!c) return result(last, code);
      last = c;
      if (condition !== 'removed') {
        if (code !== undefined) return result(c, code);
        // Without the monitor's word, a run counts once it ended after the wait began.
        if (!isRunning(c) && (condition === 'not-running' || c.finishedAt > first.finishedAt)) return result(c);
      }
      await new Promise((r) => setTimeout(r, 15));
    }
  }

  /**
   * The attach connection of a container's next run: registered for a start through this engine, or (started
   * elsewhere) taken once it runs; undefined if it could not be had.
   */
  private async nextRun(c: Container, signal?: AbortSignal): Promise<AttachConnection | undefined> {
    const entry: PendingAttach = { connected: () => undefined };
    const mine = () => (this.pending.get(c.id) ?? []).includes(entry);
    const drop = () => {
      const l = (this.pending.get(c.id) ?? []).filter((x) => x !== entry);
      if (l.length) this.pending.set(c.id, l);
      else this.pending.delete(c.id);
    };
    const viaStart = new Promise<AttachConnection | undefined>((resolve) => {
      entry.connected = resolve;
      this.pending.set(c.id, [...(this.pending.get(c.id) ?? []), entry]);
      signal?.addEventListener('abort', () => {
        drop();
        resolve(undefined);
      });
    });
    // Started by another process (the CLI): follow the record until it runs, then connect.
    let stop = false;
    const elsewhere = (async () => {
      while (!stop) {
        await new Promise((r) => setTimeout(r, 50));
        if (stop || !mine()) return new Promise<undefined>(() => undefined); // this engine's start took it
        const rec = this.stores.containers.get(c.id);
        if (!rec || (!isRunning(rec) && rec.finishedAt !== c.finishedAt)) {
          drop();
          return undefined;
        }
        if (isRunning(rec) && rec.startedAt !== c.startedAt) {
          drop();
          return connectAttach(this.stores.containers.pathOf(c.id)).catch(() => undefined);
        }
      }
      return undefined;
    })();
    const conn = await Promise.race([viaStart, elsewhere]);
    stop = true;
    return conn;
  }

  /**
   * The container's output from its json-file log: the last `tail` lines, between `since` and `until`, and
   * with `follow` what it writes until it stops. Errors (no such container, bad arguments) come before the
   * first line, so a face can answer them before streaming.
   */
  async logs(ref: string, opts: LogsOptions = {}): Promise<AsyncIterable<LogEntry>> {
    const c = this.manager.get(ref);
    const since = opts.since !== undefined && opts.since !== '' ? parseTime(String(opts.since), 'since') : undefined;
    const until = opts.until !== undefined && opts.until !== '' ? parseTime(String(opts.until), 'until') : undefined;
    let tail: number | undefined;
    if (opts.tail !== undefined && opts.tail !== 'all') {
      tail = Number(opts.tail);
      // dockerd: a tail that is not a number means all of it.
      if (!Number.isInteger(tail) || String(opts.tail).trim() === '' || tail < 0) tail = undefined;
    }
    const file = this.manager.logPath(c);
    // A TTY container run attached kept no log (its output went to the terminal).
    if (c.spec.tty && c.monitorPid === 0 && c.state === 'exited' && !fs.existsSync(file)) return (async function* () {})();
    const stderr = opts.stderr !== false;
    const stdout = opts.stdout !== false;
    return this.readLog(c, { from: 0, tail, since, until, follow: !!opts.follow, signal: opts.signal, stream: (s) => (s === 'stderr' ? stderr : stdout) });
  }

  /** Entries of the container's log from byte `from` (the last `tail` of them), and with `follow` until it stops. */
  private async readLog(
    c: Container,
    o: { from: number; tail?: number; since?: number; until?: number; follow: boolean; signal?: AbortSignal; stream: (s: string) => boolean },
  ): Promise<AsyncIterable<LogEntry>> {
    const { readLog } = await import('../container/logs.js');
    const file = this.manager.logPath(c);
    const manager = this.manager;
    const containers = this.stores.containers;
    return (async function* () {
      let { entries, offset } = readLog(file, o.from);
      if (o.tail !== undefined) entries = o.tail === 0 ? [] : entries.slice(-o.tail);
      const select = function* (list: typeof entries) {
        for (const e of list) {
          const t = Date.parse(e.time);
          if (o.since !== undefined && t < o.since) continue;
          if (o.until !== undefined && t > o.until) continue;
          if (!o.stream(e.stream)) continue;
          yield { stream: e.stream, time: rfc3339Nano(e.time), log: e.log } satisfies LogEntry;
        }
      };
      yield* select(entries);
      if (!o.follow) return;
      while (!o.signal?.aborted) {
        const cur = containers.get(c.id);
        const alive = cur ? isUp(manager.refresh(cur)) : false;
        const next = readLog(file, offset);
        offset = next.offset;
        yield* select(next.entries);
        if (!alive) {
          yield* select(readLog(file, offset).entries);
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
  }

  /**
   * docker attach: the container's output (with `logs`, what it wrote before; with `stream`, what it writes until
   * it stops) and, through the session, its stdin and terminal size. A container not started yet is attached
   * before its first byte when this engine starts it.
   */
  async attach(ref: string, opts: { logs?: boolean; stream?: boolean; signal?: AbortSignal } = {}): Promise<AttachSession> {
    const c = this.manager.get(ref);
    const stream = opts.stream ?? true;
    if (stream && !isRunning(c) && c.state !== 'created') throw new ConflictError('You cannot attach to a stopped container, start it first');
    const past = opts.logs ? await this.readLog(c, { from: 0, follow: false, stream: () => true }) : undefined;
    // Registered now (before the caller answers its client), connected when the container runs.
    const pending: Promise<AttachConnection | undefined> = !stream
      ? Promise.resolve(undefined)
      : isRunning(c)
        ? connectAttach(this.stores.containers.pathOf(c.id)).catch(() => undefined)
        : this.nextRun(c, opts.signal);
    let conn: AttachConnection | undefined;
    let closed = false;
    const connected = pending.then((x) => {
      conn = x;
      if (closed) x?.close();
      return x !== undefined;
    });
    const self = this;
    return {
      tty: c.spec.tty,
      connected,
      output: (async function* () {
        if (past) for await (const e of past) yield { stream: e.stream, data: Buffer.from(e.log) };
        if (!(await connected)) {
          // A container run attached by a CLI has no attach socket: its log is followed instead (output only).
          const now = stream ? self.stores.containers.get(c.id) : undefined;
          if (!now || !isRunning(now) || closed) return;
          const from = fs.statSync(self.manager.logPath(c), { throwIfNoEntry: false })?.size ?? 0;
          for await (const e of await self.readLog(now, { from, follow: true, stream: () => true })) {
            if (closed) return;
            yield { stream: e.stream, data: Buffer.from(e.log) };
          }
          return;
        }
        for await (const f of conn!.output) yield { stream: f.kind === 2 ? 'stderr' : 'stdout', data: f.data } as const;
      })(),
      stdin: (d) => conn?.stdin(d),
      closeStdin: () => conn?.closeStdin(),
      resize: (rows, cols) => conn?.resize(rows, cols),
      close: () => {
        closed = true;
        conn?.close();
      },
    };
  }

  /** Sets the container's terminal size (docker's resize); a container without a TTY ignores it. */
  async resize(ref: string, rows: number, cols: number): Promise<void> {
    const c = this.manager.get(ref);
    if (!isRunning(c)) throw new ConflictError(`Container ${c.id} is not running`);
    if (!c.spec.tty) return;
    const conn = await connectAttach(this.stores.containers.pathOf(c.id)).catch(() => undefined);
    if (!conn) return;
    conn.resize(rows, cols);
    // The frame is written before the connection ends (a half-close keeps the bytes in order).
    await new Promise((r) => setTimeout(r, 5));
    conn.close();
  }
}
