// docker events through the engine: the stored events between `since` and `until`, then (unless `until` has passed)
// the new ones as any ply process appends them, matched against docker's event filters (moby daemon/events/filter.go).
import type { EventLog, EventMessage } from '../events/log.js';
import { parseNormalized, familiarName } from '../reference/reference.js';
import { parseTimestamp } from '../util/timestamp.js';
import { Filters, type FilterInput } from './filters.js';

export type { EventMessage };

export interface EventsOptions {
  /** Events from this time: docker's forms ('10m', RFC 3339, Unix seconds '1700000000.5'); a number is Unix seconds. */
  since?: string | number;
  /** Events up to this time; the stream ends when it passes. */
  until?: string | number;
  /** type, container, image, event, label, network, volume, daemon, plugin, scope, ... (docker's keys). */
  filters?: FilterInput;
  /** Ends a live stream. */
  signal?: AbortSignal;
}

function toNanos(v: string | number | undefined, now: number): bigint | undefined {
  if (v === undefined || v === '') return undefined;
  if (typeof v === 'number') return BigInt(Math.round(v * 1e6)) * 1000n;
  return parseTimestamp(v, now);
}

/**
 * Validates the options (bad times and filters throw before anything streams, so a face can answer with an error)
 * and returns the events: stored ones first when `since` or `until` is given, then live ones unless `until` passed.
 */
export function streamEvents(log: EventLog, opts: EventsOptions = {}): AsyncIterable<EventMessage> {
  const now = Date.now();
  const since = toNanos(opts.since, now);
  const until = toNanos(opts.until, now);
  // docker ignores keys its event filter does not know: so does ply.
  const filters = Filters.parse(opts.filters, 'any');
  const match = eventFilter(filters);
  // The log's position now: stored events up to it, live ones after it (none is missed or seen twice).
  const start = log.lastSeq();
  return (async function* () {
    if (since !== undefined || until !== undefined) {
      let after = 0;
      for (;;) {
        const batch = log.read({ after, sinceNanos: since, untilNanos: until });
        for (const e of batch) {
          if (e.seq > start) break;
          after = e.seq;
          if (match(e.message)) yield e.message;
        }
        if (batch.length < 1000 || after >= start) break;
      }
    }
    if (until !== undefined && until <= BigInt(Date.now()) * 1_000_000n) return;
    for await (const e of log.follow({ after: start, untilNanos: until, signal: opts.signal })) {
      if (since !== undefined && e.nanos < since) continue;
      if (match(e.message)) yield e.message;
    }
  })();
}

/** docker's event filter: every key given must match (values of one key are alternatives). */
export function eventFilter(f: Filters): (e: EventMessage) => boolean {
  const exact = (key: string, v: string) => !f.has(key) || f.get(key).includes(v);
  const fuzzy = (key: string, v: string) => !f.has(key) || f.get(key).some((p) => v.startsWith(p));
  const byName = (key: string, e: EventMessage) => fuzzy(key, e.Actor.ID) || fuzzy(key, e.Actor.Attributes.name ?? '');
  const fuzzyEvents = f.get('event').some((v) => ['health_status', 'exec_create', 'exec_start'].includes(v));
  const stripTag = (s: string) => {
    try {
      return familiarName(parseNormalized(s));
    } catch {
      return s;
    }
  };
  return (e) => {
    const imageName = e.Actor.Attributes[e.Type === 'image' ? 'name' : 'image'] ?? '';
    return (
      (fuzzyEvents ? fuzzy('event', e.Action) : exact('event', e.Action)) &&
      exact('type', e.Type) &&
      exact('scope', e.scope) &&
      ['daemon', 'container', 'plugin', 'volume', 'network', 'service', 'node', 'secret', 'config'].every((k) => byName(k, e)) &&
      (!f.has('image') || [e.Actor.ID, imageName, stripTag(e.Actor.ID), stripTag(imageName)].some((v) => exact('image', v))) &&
      f.get('label').every((l) => {
        const i = l.indexOf('=');
        const k = i < 0 ? l : l.slice(0, i);
        return k in e.Actor.Attributes && (i < 0 || e.Actor.Attributes[k] === l.slice(i + 1));
      })
    );
  };
}
