// The event log: what happened to containers, images, volumes and networks (docker's events), kept in the metadata
// DB for a bounded time and followed live across processes. ply has no daemon: any ply process (a command, a
// container's monitor, the service) appends; followers in other processes read new rows by rowid. A follower
// sleeps on an inotify watch of one file (`events.wake`) that every append touches (one utimes(2), microseconds),
// and polls once a second besides, so an event is seen at once and never missed.
import fs from 'node:fs';
import path from 'node:path';
import type { DB } from '../db/db.js';
import type { Statement } from 'better-sqlite3';

/** docker's event types ply emits. */
export type EventType = 'container' | 'image' | 'volume' | 'network' | 'daemon' | 'builder';

/** One event in docker's shape (`GET /events`, `docker events --format '{{json .}}'`). */
export interface EventMessage {
  /** Legacy fields (docker < 1.22 clients): the action, the actor's ID, a container's image; container and image events only. */
  status?: string;
  id?: string;
  from?: string;
  Type: EventType;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local';
  /** Unix seconds. */
  time: number;
  /** Unix nanoseconds (microsecond precision, so the number is exact where JSON prints it). */
  timeNano: number;
}

/** An event as stored, with its position in the log (followers resume after it). */
export interface StoredEvent {
  seq: number;
  /** Unix nanoseconds, exact. */
  nanos: bigint;
  message: EventMessage;
}

/** How long events are kept, and at most how many (the oldest go first). */
const RETENTION_MS = 7 * 24 * 3600 * 1000;
const MAX_EVENTS = 50_000;
/** Old rows are removed on every this many appends. */
const PRUNE_EVERY = 256;
/** A follower looks for new rows at least this often, whatever the wake-up file says. */
const POLL_MS = 1000;

interface Row {
  id: number;
  time_nano: bigint;
  type: string;
  action: string;
  actor: string;
  attributes: string;
}

let lastMicros = 0;
/** Wall-clock microseconds, strictly increasing within this process (events of one process keep their order). */
function nowMicros(): number {
  const sub = Number(process.hrtime.bigint() / 1000n) % 1000;
  const us = Date.now() * 1000 + sub;
  lastMicros = us > lastMicros ? us : lastMicros + 1;
  return lastMicros;
}

export class EventLog {
  readonly wakeFile: string;
  private insert?: Statement;
  private wakePending = false;

  constructor(
    root: string,
    private readonly db: DB,
  ) {
    this.wakeFile = path.join(root, 'events.wake');
  }

  /** Appends one event (attributes sorted, as Go's JSON prints a map) and wakes followers. */
  emit(type: EventType, action: string, actorId: string, attributes: Record<string, string> = {}): void {
    const attrs = Object.fromEntries(Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    const nanos = BigInt(nowMicros()) * 1000n;
    let id: number;
    try {
      this.insert ??= this.db.prepare('INSERT INTO events (time_nano, type, action, actor, attributes) VALUES (?, ?, ?, ?, ?)');
      id = Number(this.insert.run(nanos, type, action, actorId, JSON.stringify(attrs)).lastInsertRowid);
    } catch {
      // An event is a record of work already done: failing to log it must not fail that work.
      return;
    }
    if (id % PRUNE_EVERY === 0) this.prune(id);
    // Inside a transaction the row is not visible yet: wake followers once it commits.
    if (!this.db.inTransaction) this.wake();
    else if (!this.wakePending) {
      this.wakePending = true;
      setImmediate(() => {
        this.wakePending = false;
        this.wake();
      });
    }
  }

  private wake(): void {
    const now = new Date();
    try {
      fs.utimesSync(this.wakeFile, now, now);
    } catch {
      try {
        fs.writeFileSync(this.wakeFile, '', { mode: 0o600 });
      } catch {
        // the store went away
      }
    }
  }

  private prune(lastId: number): void {
    const cutoff = BigInt(Date.now() - RETENTION_MS) * 1_000_000n;
    try {
      this.db.prepare('DELETE FROM events WHERE id <= ? OR time_nano < ?').run(lastId - MAX_EVENTS, cutoff);
    } catch {
      // busy: the next prune takes them
    }
  }

  /** The last event's position (0 for an empty log): a follower starting now reads after it. */
  lastSeq(): number {
    const r = this.db.prepare('SELECT max(id) AS id FROM events').get() as { id: number | null };
    return r.id ?? 0;
  }

  /** Stored events after position `after`, oldest first, with time in [sinceNanos, untilNanos] when given. */
  read(opts: { after?: number; sinceNanos?: bigint; untilNanos?: bigint; limit?: number } = {}): StoredEvent[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM events WHERE id > ? AND time_nano >= ? AND time_nano <= ? ORDER BY id LIMIT ?`,
      )
      .safeIntegers(true)
      .all(BigInt(opts.after ?? 0), opts.sinceNanos ?? 0n, opts.untilNanos ?? 2n ** 63n - 1n, BigInt(opts.limit ?? 1000)) as unknown as Row[];
    return rows.map(toStored);
  }

  /**
   * Events after position `after` as they are appended, until `signal` aborts or `untilNanos` passes (events
   * stamped later are not yielded). Consumers that stop early should `return()` the iterator (for-await does).
   */
  async *follow(opts: { after: number; untilNanos?: bigint; signal?: AbortSignal }): AsyncGenerator<StoredEvent> {
    let after = opts.after;
    let wakeUp: (() => void) | undefined;
    const poke = () => {
      const w = wakeUp;
      wakeUp = undefined;
      w?.();
    };
    let watcher: fs.FSWatcher | undefined;
    try {
      if (!fs.existsSync(this.wakeFile)) fs.writeFileSync(this.wakeFile, '', { mode: 0o600 });
      watcher = fs.watch(this.wakeFile, { persistent: true }, poke);
      watcher.on('error', () => undefined);
    } catch {
      // no inotify: the poll below still finds every event
    }
    opts.signal?.addEventListener('abort', poke);
    let untilTimer: NodeJS.Timeout | undefined;
    let pastUntil = false;
    if (opts.untilNanos !== undefined) {
      const ms = Number(opts.untilNanos / 1_000_000n) - Date.now();
      if (ms <= 0) pastUntil = true;
      else untilTimer = setTimeout(() => ((pastUntil = true), poke()), Math.min(ms + 1, 2 ** 31 - 1));
    }
    try {
      for (;;) {
        for (;;) {
          const batch = this.read({ after, untilNanos: opts.untilNanos });
          for (const e of batch) {
            after = e.seq;
            yield e;
          }
          if (batch.length < 1000) break;
        }
        if (pastUntil || opts.signal?.aborted) return;
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, POLL_MS);
          wakeUp = () => {
            clearTimeout(t);
            resolve();
          };
        });
        wakeUp = undefined;
        if (opts.signal?.aborted) return;
        // One more read after `until` passed: an event stamped just before it may commit just after.
      }
    } finally {
      clearTimeout(untilTimer);
      opts.signal?.removeEventListener('abort', poke);
      watcher?.close();
    }
  }
}

function toStored(r: Row): StoredEvent {
  const type = r.type as EventType;
  const attributes = JSON.parse(r.attributes) as Record<string, string>;
  const nanos = BigInt(r.time_nano);
  const message: EventMessage = {
    ...(type === 'container' || type === 'image' ? { status: r.action, id: r.actor } : {}),
    ...(type === 'container' && attributes.image !== undefined ? { from: attributes.image } : {}),
    Type: type,
    Action: r.action,
    Actor: { ID: r.actor, Attributes: attributes },
    scope: 'local',
    time: Number(nanos / 1_000_000_000n),
    timeNano: Number(nanos),
  };
  return { seq: Number(r.id), nanos, message };
}
