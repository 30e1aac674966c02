// Unit: docker's --since/--until forms, the event log (order, positions, pruning, followers woken by another
// connection), and docker's event filter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openStores } from '../../src/stores.js';
import { EventLog, type EventMessage } from '../../src/events/log.js';
import { eventFilter } from '../../src/engine/events.js';
import { Filters } from '../../src/engine/filters.js';
import { durationOrUndefined, parseTimestamp } from '../../src/util/timestamp.js';
import { tempDir } from '../helpers.js';

test("timestamps: docker's durations, RFC 3339 forms and Unix seconds", () => {
  const now = Date.UTC(2026, 0, 2, 3, 4, 5, 600);
  const ns = (ms: number) => BigInt(ms) * 1_000_000n;
  assert.equal(parseTimestamp('10m', now), ns(now - 600_000));
  assert.equal(parseTimestamp('1h30m', now), ns(now - 5_400_000));
  assert.equal(parseTimestamp('1.5s', now), ns(now - 1500));
  assert.equal(parseTimestamp('0s', now), ns(now));
  // '0' alone is Unix time 0, not a duration.
  assert.equal(parseTimestamp('0', now), 0n);
  assert.equal(parseTimestamp('1700000000', now), 1_700_000_000_000_000_000n);
  assert.equal(parseTimestamp('1700000000.5', now), 1_700_000_000_500_000_000n);
  assert.equal(parseTimestamp('1700000000.000000001', now), 1_700_000_000_000_000_001n);
  assert.equal(parseTimestamp('2026-01-02T03:04:05Z', now), ns(Date.UTC(2026, 0, 2, 3, 4, 5)));
  assert.equal(parseTimestamp('2026-01-02T03:04:05.123456789Z', now), ns(Date.UTC(2026, 0, 2, 3, 4, 5)) + 123_456_789n);
  assert.equal(parseTimestamp('2026-01-02T03:04:05+02:00', now), ns(Date.UTC(2026, 0, 2, 1, 4, 5)));
  assert.equal(parseTimestamp('2026-01-02T03:04Z', now), ns(Date.UTC(2026, 0, 2, 3, 4)));
  assert.equal(parseTimestamp('2026-01-02Z', now), ns(Date.UTC(2026, 0, 2)));
  // Without a zone: local time.
  assert.equal(parseTimestamp('2026-01-02T03:04:05', now), ns(new Date(2026, 0, 2, 3, 4, 5).getTime()));
  assert.equal(parseTimestamp('2026-01-02', now), ns(new Date(2026, 0, 2).getTime()));
  assert.throws(() => parseTimestamp('bogus', now), /^InvalidArgumentError: failed to parse value as time or duration: "bogus"$/);
  assert.throws(() => parseTimestamp('2020-13-01', now), /parsing time "2020-13-01": month out of range/);
  assert.throws(() => parseTimestamp('2021-02-29', now), /day out of range/);
  assert.equal(durationOrUndefined('1h2m3.5s'), 3_723_500_000_000);
  assert.equal(durationOrUndefined('-5m'), -300e9);
  assert.equal(durationOrUndefined('5'), undefined);
});

test('event log: order, positions, reading by time; another connection wakes a follower', async () => {
  const root = tempDir();
  const a = openStores(root);
  const b = openStores(root);
  try {
    const start = a.events.lastSeq();
    a.events.emit('container', 'create', 'c1', { name: 'x', image: 'bb', z: '1', a: '2' });
    a.events.emit('image', 'tag', 'sha256:1', { name: 'bb:latest' });
    const all = b.events.read({ after: start });
    assert.deepEqual(all.map((e) => e.message.Action), ['create', 'tag']);
    const [c, i] = all.map((e) => e.message) as [EventMessage, EventMessage];
    assert.deepEqual(Object.keys(c.Actor.Attributes), ['a', 'image', 'name', 'z']);
    assert.equal(c.status, 'create');
    assert.equal(c.id, 'c1');
    assert.equal(c.from, 'bb');
    assert.equal(i.from, undefined);
    assert.equal(i.status, 'tag');
    assert.ok(all[0]!.nanos < all[1]!.nanos, 'one process stamps its events in order');
    assert.equal(b.events.read({ after: start, sinceNanos: all[1]!.nanos }).length, 1);
    assert.equal(b.events.read({ after: start, untilNanos: all[0]!.nanos }).length, 1);

    // b follows; a (another connection, as another process would be) appends; b sees it well within the poll.
    const it = b.events.follow({ after: b.events.lastSeq() })[Symbol.asyncIterator]();
    const next = it.next();
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    a.events.emit('volume', 'create', 'v1', { driver: 'local' });
    const got = await next;
    assert.equal((got.value as { message: EventMessage }).message.Actor.ID, 'v1');
    assert.ok(Date.now() - t0 < 500, `woken after ${Date.now() - t0} ms`);
    // Inside a transaction the wake-up waits for the commit.
    const next2 = it.next();
    a.db.transaction(() => a.events.emit('volume', 'destroy', 'v1'))();
    assert.equal(((await next2).value as { message: EventMessage }).message.Action, 'destroy');
    await it.return?.();
  } finally {
    a.close();
    b.close();
  }
});

test('event log: a follower stops at until; old events are pruned by count', async () => {
  const root = tempDir();
  const s = openStores(root);
  try {
    const until = BigInt(Date.now() + 200) * 1_000_000n;
    const seen: string[] = [];
    const t0 = Date.now();
    for await (const e of s.events.follow({ after: 0, untilNanos: until })) seen.push(e.message.Action);
    assert.ok(Date.now() - t0 >= 150 && Date.now() - t0 < 1500);
    assert.deepEqual(seen, []);
    // Pruning keeps the newest MAX_EVENTS: fill past it in one transaction and check the oldest went.
    const log = new EventLog(root, s.db);
    s.db.transaction(() => {
      for (let i = 0; i < 50_300; i++) log.emit('container', 'x', String(i));
    })();
    const count = (s.db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n;
    assert.ok(count <= 50_256 && count >= 50_000, `kept ${count}`);
    assert.equal(s.events.read({ after: 0, limit: 1 })[0]!.message.Actor.ID, String(50_300 - count));
  } finally {
    s.close();
  }
});

test("event filter: docker's keys and matching rules", () => {
  const ev = (Type: EventMessage['Type'], Action: string, ID: string, Attributes: Record<string, string>): EventMessage => ({ Type, Action, Actor: { ID, Attributes }, scope: 'local', time: 0, timeNano: 0 });
  const started = ev('container', 'start', 'abcdef', { image: 'busybox:latest', name: 'web', tier: 'front' });
  const health = ev('container', 'health_status: healthy', 'abcdef', { image: 'busybox', name: 'web' });
  const tag = ev('image', 'tag', 'sha256:1234', { name: 'busybox:latest' });
  const net = ev('network', 'connect', 'n1', { container: 'abcdef', name: 'bridge', type: 'bridge' });
  const m = (filters: string[], e: EventMessage) => eventFilter(Filters.parse(filters, 'any'))(e);
  assert.ok(m([], started));
  assert.ok(m(['container=web'], started) && m(['container=abc'], started) && m(['container=we'], started));
  assert.ok(!m(['container=web'], tag) && !m(['container=web'], net));
  assert.ok(m(['image=busybox'], started) && m(['image=busybox:latest'], tag) && m(['image=sha256:1234'], tag));
  assert.ok(!m(['image=other'], started));
  assert.ok(m(['label=tier'], started) && m(['label=tier=front'], started) && !m(['label=tier=back'], started));
  assert.ok(m(['event=start', 'event=die'], started) && !m(['event=stop'], started));
  // health_status (and exec_create, exec_start) match as a prefix.
  assert.ok(m(['event=health_status'], health) && !m(['event=health'], health));
  assert.ok(m(['type=image'], tag) && !m(['type=image'], started));
  assert.ok(m(['network=bridge'], net) && !m(['network=bridge'], started));
  assert.ok(m(['scope=local'], started) && !m(['scope=swarm'], started));
});
