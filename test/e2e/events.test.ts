// End-to-end: docker's events through bin/ply: kept in the store, listed between --since and --until, filtered,
// formatted as docker's CLI prints them, and followed live by another process.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { PLY, busyboxTar, ply, plyOk, tempDir } from '../helpers.js';

let root: string;
before(() => {
  root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'bb']);
});

const nowSeconds = () => (Date.now() / 1000).toFixed(6);
/** docker's default line: RFC 3339 time with nanoseconds, type, action, actor ID, (k=v, ...). */
const LINE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}(Z|[+-]\d{2}:\d{2}) (\S+) (.+?) (\S+)(?: \((.*)\))?$/;

test("events --since/--until list a container's create, start and die, in docker's layout", () => {
  const since = nowSeconds();
  const id = plyOk(root, ['create', '--name', 'ev-one', '--network', 'none', '-l', 'tier=web', 'bb', 'sh', '-c', 'exit 3']).trim();
  assert.equal(ply(root, ['start', '-a', 'ev-one']).code, 3);
  plyOk(root, ['rm', 'ev-one']);
  const until = nowSeconds();
  const lines = plyOk(root, ['events', '--since', since, '--until', until, '--filter', 'type=container']).trim().split('\n');
  const parsed = lines.map((l) => {
    const m = LINE.exec(l);
    assert.ok(m, `not docker's layout: ${l}`);
    return { type: m[2], action: m[3], actor: m[4], attrs: m[5] };
  });
  assert.deepEqual(parsed.map((e) => e.action), ['create', 'attach', 'start', 'die', 'destroy']);
  assert.ok(parsed.every((e) => e.type === 'container' && e.actor === id));
  assert.equal(parsed[0]!.attrs, 'image=bb, name=ev-one, tier=web');
  assert.match(parsed[3]!.attrs!, /^execDuration=\d+, exitCode=3, image=bb, name=ev-one, tier=web$/);
  // --until before the events: none of them; relative times (docker's durations) work too.
  assert.equal(plyOk(root, ['events', '--since', since, '--until', since]), '');
  assert.match(plyOk(root, ['events', '--since', '10m', '--until', '0s', '--filter', 'container=ev-one', '--filter', 'event=die']), / container die /);
});

test('events: filters by container, image, label, event and type; json and Go templates', () => {
  const since = nowSeconds();
  plyOk(root, ['run', '--rm', '--name', 'ev-a', '--network', 'none', '-l', 'app=a', 'bb', 'true']);
  plyOk(root, ['run', '--rm', '--name', 'ev-b', '--network', 'none', 'bb', 'true']);
  plyOk(root, ['tag', 'bb', 'bb:other']);
  plyOk(root, ['rmi', 'bb:other']);
  const until = nowSeconds();
  const ev = (...args: string[]) => plyOk(root, ['events', '--since', since, '--until', until, ...args]).trim().split('\n').filter(Boolean);
  // container= matches names (and ID prefixes); only container events carry them.
  assert.ok(ev('--filter', 'container=ev-a').every((l) => / container \S+ \S+ \(.*name=ev-a/.test(l)));
  assert.deepEqual(ev('--filter', 'label=app=a', '--format', '{{.Action}}'), ['create', 'attach', 'start', 'die', 'destroy']);
  assert.deepEqual(ev('--filter', 'type=image', '--format', '{{.Action}} {{.Actor.Attributes.name}}'), ['tag bb:other', 'untag bb:other']);
  // image= matches the image a container was made from, and image events of that image.
  assert.equal(ev('--filter', 'image=bb', '--filter', 'event=start').length, 2);
  assert.equal(ev('--filter', 'event=start', '--filter', 'event=die', '--format', '{{.Action}}').join(','), 'start,die,start,die');
  assert.deepEqual(ev('--filter', 'type=network', '--format', '{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.type}}'), [
    'connect none null', 'disconnect none null', 'connect none null', 'disconnect none null',
  ]);
  // {{json .}}: the API's shape, with docker's legacy status/id/from on container events.
  const json = ev('--filter', 'container=ev-b', '--filter', 'event=start', '--format', 'json').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(json.length, 1);
  const j = json[0]!;
  assert.deepEqual(Object.keys(j), ['status', 'id', 'from', 'Type', 'Action', 'Actor', 'scope', 'time', 'timeNano']);
  assert.equal(j.status, 'start');
  assert.equal(j.from, 'bb');
  assert.equal(j.scope, 'local');
  assert.equal(Math.floor((j.timeNano as number) / 1e9), j.time);
  assert.deepEqual(ev('--filter', 'container=ev-b', '--filter', 'event=start', '--format', '{{.Status}}|{{.From}}|{{.Type}}|{{.Scope}}|{{.Actor.Attributes}}'), [
    'start|bb|container|local|map[image:bb name:ev-b]',
  ]);
  // A template is used as given: docker does not turn \t into a tab here.
  assert.deepEqual(ev('--filter', 'container=ev-b', '--filter', 'event=start', '--format', 'table {{.Type}}\\t{{.Action}}'), ['table container\\tstart']);
});

test('events: bad times and filters fail as docker does', () => {
  const bad = ply(root, ['events', '--since', 'bogus']);
  assert.equal(bad.code, 1);
  assert.equal(bad.stderr, 'failed to parse value as time or duration: "bogus"\n');
  const month = ply(root, ['events', '--since', '2020-13-01']);
  assert.equal(month.code, 1);
  assert.equal(month.stderr, 'parsing time "2020-13-01": month out of range\n');
  const filter = ply(root, ['events', '--filter', 'nonsense']);
  assert.equal(filter.code, 125);
  assert.match(filter.stderr, /bad format of filter \(expected name=value\)/);
  // Unknown keys are ignored, as docker's daemon does.
  assert.equal(ply(root, ['events', '--filter', 'foo=bar', '--since', '1s', '--until', '0s']).code, 0);
});

test('events are followed live across processes and the stream ends at --until', async () => {
  const since = nowSeconds();
  const until = ((Date.now() + 8000) / 1000).toFixed(3);
  const follower = spawn(PLY, ['events', '--since', since, '--until', until, '--filter', 'container=ev-live', '--format', '{{.Action}} {{.Actor.Attributes.name}}'], {
    env: { ...process.env, PLY_ROOT: root },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  follower.stdout.on('data', (d: Buffer) => (out += d));
  const ended = new Promise<number>((r) => follower.on('close', (code) => r(code ?? -1)));
  const waitFor = async (what: string) => {
    for (let i = 0; i < 400 && !out.includes(what); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(out.includes(what), `the follower never printed ${what}: ${out}`);
  };
  // The first container's events may reach the follower from the log or live; once it printed them, it is
  // following, and the second container's events can only arrive live.
  plyOk(root, ['run', '--rm', '--name', 'ev-live-1', '--network', 'none', 'bb', 'true']);
  await waitFor('destroy ev-live-1');
  plyOk(root, ['run', '--rm', '--name', 'ev-live-2', '--network', 'none', 'bb', 'true']);
  const ran = Date.now();
  await waitFor('destroy ev-live-2');
  assert.ok(Date.now() - ran < 1500, `the follower saw the events ${Date.now() - ran} ms late`);
  assert.deepEqual(out.trim().split('\n'), ['create', 'attach', 'start', 'die', 'destroy'].flatMap((a) => [`${a} ev-live-1`]).concat(
    ['create', 'attach', 'start', 'die', 'destroy'].map((a) => `${a} ev-live-2`),
  ));
  assert.equal(await ended, 0);
  assert.ok(Date.now() < Number(until) * 1000 + 3000, 'the stream ended when --until passed');
});
