// The engine as a library (what the CLI and the Docker Engine API server both call): its verbs return docker's
// shapes and stream logs, attach output, exec I/O and archives, with real containers under runc. Imported from
// dist/ (built by the test command), as a program would: detached containers need the built monitor.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import type * as EngineModule from '../../src/engine.js';
import { REPO, busyboxTar, tarBytes, tempDir } from '../helpers.js';

const { Engine, ConflictError, NotFoundError } = (await import(path.join(REPO, 'dist', 'engine.js'))) as typeof EngineModule;

let engine: EngineModule.Engine;
before(async () => {
  engine = Engine.open({ root: tempDir() });
  await engine.images.import(fs.createReadStream(busyboxTar()), { reference: 'bb:v1', changes: ['LABEL tier=base'] });
});
after(() => engine.close());

const collect = async (it: AsyncIterable<EngineModule.LogEntry>) => {
  const out: EngineModule.LogEntry[] = [];
  for await (const e of it) out.push(e);
  return out;
};

test('images: list with docker filters, inspect, history, tag and remove in docker shapes', async () => {
  engine.images.tag('bb:v1', 'other/bb:v2');
  const [img] = engine.images.list({ filters: ['reference=other/*'] });
  assert.ok(img);
  assert.deepEqual(img.RepoTags, ['other/bb:v2'], 'a reference filter keeps only the matching names');
  assert.equal(img.Labels?.tier, 'base');
  assert.equal(engine.images.list({ filters: { label: ['tier=base'] } }).length, 1);
  assert.equal(engine.images.list({ filters: { label: ['tier=other'] } }).length, 0);
  assert.equal(engine.images.list({ filters: ['dangling=true'] }).length, 0);
  assert.throws(() => engine.images.list({ filters: ['nope=1'] }), /invalid filter 'nope'/);
  const ins = engine.images.inspect('bb:v1');
  assert.equal(ins.Id, img.Id);
  assert.deepEqual(ins.RepoTags, ['bb:v1', 'other/bb:v2']);
  assert.equal((ins.Config as { Labels: Record<string, string> }).Labels.tier, 'base');
  const hist = engine.images.history('bb:v1');
  assert.equal(hist[0]!.Id, img.Id);
  assert.ok(hist[0]!.Created > 0 && hist[0]!.Size > 0);
  assert.deepEqual(engine.images.remove('other/bb:v2'), [{ Untagged: 'other/bb:v2' }]);
  assert.throws(() => engine.images.inspect('other/bb:v2'), NotFoundError);
});

test('containers: create, start, wait, logs (tail, streams), list filters, inspect, changes, remove', async () => {
  const { Id } = await engine.containers.create({ image: 'bb:v1', name: 'lib1', command: ['sh', '-c', 'echo one; echo two >&2; echo three; touch /made; exit 3'] });
  assert.equal(engine.containers.list({ all: true, filters: ['status=created'] })[0]?.Id, Id);
  assert.equal(await engine.containers.start(Id), true);
  assert.deepEqual(await engine.containers.wait('lib1'), { StatusCode: 3 });
  const all = await collect(await engine.containers.logs(Id));
  // The two pipes are read independently: the order within each stream is what counts.
  assert.deepEqual(all.filter((e) => e.stream === 'stdout').map((e) => e.log), ['one\n', 'three\n']);
  assert.deepEqual(all.filter((e) => e.stream === 'stderr').map((e) => e.log), ['two\n']);
  assert.match(all[0]!.time, /^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
  assert.deepEqual((await collect(await engine.containers.logs(Id, { tail: 1 }))).map((e) => e.log), [all[2]!.log]);
  assert.deepEqual((await collect(await engine.containers.logs(Id, { stderr: false }))).map((e) => e.log), ['one\n', 'three\n']);
  await assert.rejects(engine.containers.logs(Id, { since: 'yesterday' }), /invalid value for "since"/);
  const [row] = engine.containers.list({ all: true, filters: { name: ['lib1'], exited: ['3'] } });
  assert.equal(row?.Names[0], '/lib1');
  assert.match(row!.Status, /^Exited \(3\) /);
  assert.equal(engine.containers.list().length, 0, 'running ones only without all');
  const ins = engine.containers.inspect('lib1');
  assert.equal(ins.State.ExitCode, 3);
  assert.equal(ins.State.Status, 'exited');
  assert.deepEqual(ins.Args, ['-c', 'echo one; echo two >&2; echo three; touch /made; exit 3']);
  assert.deepEqual(await engine.containers.changes(Id), [{ Path: '/made', Kind: 1 }]);
  await engine.containers.remove(Id);
  assert.throws(() => engine.containers.inspect(Id), NotFoundError);
});

test('containers: logs follow until the container stops; wait next-exit; attach before start', async () => {
  const { Id } = await engine.containers.create({ image: 'bb:v1', command: ['sh', '-c', 'for i in 1 2 3; do echo line $i; sleep 0.2; done'] });
  const waited = engine.containers.wait(Id, { condition: 'next-exit' });
  const session = await engine.containers.attach(Id);
  const attached = (async () => {
    let text = '';
    for await (const c of session.output) text += `${c.stream}:${c.data.toString()}`;
    return text;
  })();
  await engine.containers.start(Id);
  const followed = await collect(await engine.containers.logs(Id, { follow: true }));
  assert.deepEqual(followed.map((e) => e.log), ['line 1\n', 'line 2\n', 'line 3\n']);
  assert.equal(await attached, 'stdout:line 1\nstdout:line 2\nstdout:line 3\n', 'attached before the start: nothing missed');
  assert.equal((await waited).StatusCode, 0);
  await engine.containers.remove(Id);
});

test('exec instances: create, start with streams, inspect; archives in and out of a container', async () => {
  const { Id } = await engine.containers.create({ image: 'bb:v1', command: ['sleep', '30'] });
  await engine.containers.start(Id);
  try {
    const exec = engine.containers.execCreate(Id, { cmd: ['sh', '-c', 'read x; echo "got $x"; echo oops >&2; exit 5'], interactive: true });
    let stdout = '';
    let stderr = '';
    const sink = (add: (s: string) => void) => new Writable({ write: (c: Buffer, _e, cb) => (add(c.toString()), cb()) });
    const stdin = new PassThrough();
    stdin.end('hello\n');
    const code = await engine.containers.execStart(exec.Id, { io: { stdin, stdout: sink((s) => (stdout += s)), stderr: sink((s) => (stderr += s)) } });
    assert.equal(code, 5);
    assert.equal(stdout, 'got hello\n');
    assert.equal(stderr, 'oops\n');
    const ins = engine.containers.execInspect(exec.Id);
    assert.equal(ins.ExitCode, 5);
    assert.equal(ins.Running, false);
    assert.equal(ins.ContainerID, Id);
    await assert.rejects(engine.containers.execStart(exec.Id), ConflictError);

    const tar = await tarBytes(async (w) => {
      await w.add({ name: 'dir/', type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 1_700_000_000 });
      await w.add({ name: 'dir/file.txt', type: 'file', mode: 0o640, uid: 0, gid: 0, size: 11, mtime: 1_700_000_000 }, Buffer.from('from a tar\n'));
    });
    await engine.containers.archivePut(Id, '/tmp', Readable.from([tar]));
    const st = await engine.containers.archiveStat(Id, '/tmp/dir/file.txt');
    assert.equal(st.name, 'file.txt');
    assert.equal(st.size, 11);
    assert.equal(st.mode & 0o777, 0o640);
    const chunks: Buffer[] = [];
    const got = await engine.containers.archiveGet(Id, '/tmp/dir', new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }));
    assert.equal(got.name, 'dir');
    const { readTar } = await import('../../src/tar/index.js');
    const names: string[] = [];
    for await (const e of readTar(Readable.from([Buffer.concat(chunks)]))) {
      names.push(e.header.name);
      const body: Buffer[] = [];
      for await (const b of e.body) body.push(b as Buffer);
      if (e.header.name === 'dir/file.txt') assert.equal(Buffer.concat(body).toString(), 'from a tar\n');
    }
    assert.deepEqual(names, ['dir/', 'dir/file.txt']);
    await assert.rejects(engine.containers.archiveStat(Id, '/no/such'), NotFoundError);
  } finally {
    await engine.containers.remove(Id, { force: true });
  }
});

test('volumes: create, list with filters, inspect, in use refused, prune', async () => {
  const v = engine.volumes.create({ name: 'libvol', labels: { app: 'x' } });
  assert.equal(v.Mountpoint, path.join(engine.root, 'volumes', 'libvol', '_data'));
  assert.deepEqual(engine.volumes.list({ filters: ['label=app=x'] }).Volumes.map((x) => x.Name), ['libvol']);
  const { Id } = await engine.containers.create({ image: 'bb:v1', command: ['true'], volumes: ['libvol:/data'] });
  assert.throws(() => engine.volumes.remove('libvol'), ConflictError);
  assert.deepEqual(engine.volumes.list({ filters: { dangling: ['true'] } }).Volumes.map((x) => x.Name), []);
  await engine.containers.remove(Id);
  const anon = engine.volumes.create();
  assert.deepEqual(engine.volumes.prune().VolumesDeleted, [anon.Name], 'prune takes unused anonymous volumes');
  assert.deepEqual(engine.volumes.prune({ all: true }).VolumesDeleted, ['libvol']);
  assert.throws(() => engine.volumes.inspect('libvol'), NotFoundError);
});

test('build from a tar context with a logger, then prune the cache', async () => {
  const ctx = await tarBytes(async (w) => {
    const file = async (name: string, text: string) => w.add({ name, type: 'file', mode: 0o644, uid: 0, gid: 0, size: Buffer.byteLength(text), mtime: 1_700_000_000 }, Buffer.from(text));
    await file('Dockerfile', 'FROM bb:v1\nCOPY msg /msg\nRUN cat /msg > /copy\n');
    await file('msg', 'built by the engine\n');
  });
  const lines: string[] = [];
  const logger = { step: (n: number, t: number, s: string) => lines.push(`${n}/${t} ${s}`), trigger() {}, cached() {}, running() {}, output() {}, removed() {}, done() {}, info() {}, close() {} };
  const r = await engine.builder.build({ context: Readable.from([ctx]), tags: ['built:lib'], logger });
  assert.deepEqual(r.tags, ['built:lib']);
  assert.deepEqual(lines, ['1/3 FROM bb:v1', '2/3 COPY msg /msg', '3/3 RUN cat /msg > /copy']);
  const { Id } = await engine.containers.create({ image: 'built:lib', command: ['cat', '/copy'] });
  await engine.containers.start(Id);
  await engine.containers.wait(Id);
  assert.deepEqual((await collect(await engine.containers.logs(Id))).map((e) => e.log), ['built by the engine\n']);
  await engine.containers.remove(Id);
  engine.images.remove('built:lib');
  assert.equal((await engine.builder.prune({ all: true })).CachesDeleted.length, 1, 'the COPY step (the RUN step was the image, removed)');
});
