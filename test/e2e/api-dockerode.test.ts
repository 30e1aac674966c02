// End-to-end: dockerode (the Node.js Docker SDK, over docker-modem) drives ply through the Docker Engine API:
// ping and version, images, a container's create/start/attach (hijacked, demultiplexed)/wait/logs/inspect/remove,
// exec with stdin, archives, volumes and networks, events; and many clients at once.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { PassThrough, Readable } from 'node:stream';
import Docker from 'dockerode';
import { tarBytes } from '../helpers.js';
import { startPlyApi, type PlyApi } from '../api-peer.js';

let api: PlyApi;
let docker: Docker;
before(async () => {
  api = await startPlyApi();
  docker = new Docker({ socketPath: api.sock });
});
after(async () => {
  await api?.stop();
});

/** A stream's text. */
async function text(s: NodeJS.ReadableStream): Promise<string> {
  let out = '';
  for await (const c of s) out += c.toString();
  return out;
}

/** stdout and stderr of a multiplexed stream, split by dockerode's demuxer. */
async function demux(s: NodeJS.ReadableStream): Promise<{ stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  docker.modem.demuxStream(s, stdout, stderr);
  const [o, e] = [text(stdout), text(stderr)];
  await new Promise<void>((r) => s.on('end', () => r()));
  stdout.end();
  stderr.end();
  return { stdout: await o, stderr: await e };
}

test('dockerode: ping, version, images, create/attach/start/wait/logs/inspect/remove', async () => {
  assert.equal((await docker.ping()).toString(), 'OK');
  const v = await docker.version();
  assert.equal(v.ApiVersion, '1.43');
  const images = await docker.listImages({ filters: { reference: ['bb'] } });
  assert.deepEqual(images.map((i) => i.RepoTags), [['bb:latest']]);
  const c = await docker.createContainer({ Image: 'bb', Cmd: ['sh', '-c', 'echo out; echo err >&2; exit 2'], HostConfig: { NetworkMode: 'none' }, Labels: { via: 'dockerode' } });
  const stream = await c.attach({ stream: true, stdout: true, stderr: true });
  const output = demux(stream);
  // As docker's CLI: a created container is already "not-running", so wait for its next exit.
  const waited = c.wait({ condition: 'next-exit' });
  await c.start();
  assert.deepEqual(await output, { stdout: 'out\n', stderr: 'err\n' }, 'attached before the start: nothing missed');
  assert.equal((await waited).StatusCode, 2);
  const info = await c.inspect();
  assert.equal(info.State.ExitCode, 2);
  assert.equal(info.Config.Labels.via, 'dockerode');
  const logs = (await c.logs({ stdout: true, stderr: true, timestamps: true })) as unknown as Buffer;
  // Multiplexed: 8-byte headers (1 stdout, 2 stderr), each line stamped. The two pipes are read apart, so
  // their order between each other is not fixed (as with dockerd).
  const frames: string[] = [];
  for (let at = 0; at < logs.length; at += 8 + logs.readUInt32BE(at + 4)) frames.push(`${logs[at]} ${logs.subarray(at + 8, at + 8 + logs.readUInt32BE(at + 4))}`);
  assert.equal(frames.length, 2);
  assert.ok(frames.some((f) => /^1 \d{4}-\d\d-\d\dT[\d:.]+Z out\n$/.test(f)), frames.join(''));
  assert.ok(frames.some((f) => /^2 \d{4}-\d\d-\d\dT[\d:.]+Z err\n$/.test(f)), frames.join(''));
  const listed = await docker.listContainers({ all: true, filters: { label: ['via=dockerode'] } });
  assert.deepEqual(listed.map((x) => x.Id), [c.id]);
  await c.remove();
  await assert.rejects(c.inspect(), (e: { statusCode?: number }) => e.statusCode === 404);
});

test('dockerode: exec with stdin, archives in and out, volumes, networks, events', async () => {
  const since = Math.floor(Date.now() / 1000) - 1;
  const c = await docker.createContainer({ Image: 'bb', Cmd: ['sleep', '60'], HostConfig: { NetworkMode: 'none' } });
  await c.start();
  try {
    const exec = await c.exec({ Cmd: ['sh', '-c', 'read x; echo "got $x"; exit 3'], AttachStdin: true, AttachStdout: true, AttachStderr: true });
    const duplex = await exec.start({ hijack: true, stdin: true });
    duplex.write('hello\n');
    const out = await demux(duplex);
    assert.equal(out.stdout, 'got hello\n');
    assert.equal((await exec.inspect()).ExitCode, 3);
    const tar = await tarBytes(async (w) => {
      await w.add({ name: 'f.txt', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 6, mtime: 1_700_000_000 }, Buffer.from('in it\n'));
    });
    await c.putArchive(Readable.from([tar]), { path: '/tmp' });
    const back = await c.getArchive({ path: '/tmp/f.txt' });
    const bytes = Buffer.from(await text(back as unknown as NodeJS.ReadableStream), 'latin1');
    assert.ok(bytes.includes('in it\n'));
    // HEAD: the stat is docker's base64 JSON header.
    const head = (await c.infoArchive({ path: '/tmp/f.txt' })) as unknown as IncomingMessage;
    head.resume();
    const st = JSON.parse(Buffer.from(String(head.headers['x-docker-container-path-stat']), 'base64').toString()) as { name: string; size: number };
    assert.deepEqual([st.name, st.size], ['f.txt', 6]);
  } finally {
    await c.remove({ force: true });
  }
  const vol = await docker.createVolume({ Name: 'dockerode-vol', Labels: { k: 'v' } });
  const vi = await vol.inspect();
  assert.deepEqual([vi.Name, vi.Labels, vi.Driver], ['dockerode-vol', { k: 'v' }, 'local']);
  assert.deepEqual((await docker.listVolumes()).Volumes.map((v) => v.Name), ['dockerode-vol']);
  const net = await docker.createNetwork({ Name: 'dockerode-net' });
  assert.equal((await net.inspect()).Name, 'dockerode-net');
  await net.remove();
  await vol.remove();
  const stream = await docker.getEvents({ since, until: Math.ceil(Date.now() / 1000) + 1, filters: { type: ['volume'] } });
  const events = (await text(stream)).trim().split('\n').map((l) => JSON.parse(l) as { Action: string; Actor: { ID: string } });
  assert.deepEqual(events.map((e) => `${e.Action} ${e.Actor.ID}`), ['create dockerode-vol', 'destroy dockerode-vol']);
});

test('dockerode: many clients at once (parallel runs, lists and inspects) all succeed', async () => {
  const runs = Array.from({ length: 8 }, async (_, i) => {
    const c = await docker.createContainer({ Image: 'bb', Cmd: ['sh', '-c', `echo run-${i}`], HostConfig: { NetworkMode: 'none', AutoRemove: true }, Labels: { many: 'yes' } });
    const s = await c.attach({ stream: true, stdout: true, stderr: true });
    const out = demux(s);
    const waited = c.wait({ condition: 'removed' });
    await c.start();
    const [o, w] = await Promise.all([out, waited]);
    return `${o.stdout}${w.StatusCode}`;
  });
  const reads = Array.from({ length: 40 }, (_, i) => (i % 2 ? docker.listContainers({ all: true }) : docker.listImages()));
  const [results] = await Promise.all([Promise.all(runs), Promise.all(reads)]);
  assert.deepEqual(results, Array.from({ length: 8 }, (_, i) => `run-${i}\n0`));
  assert.deepEqual(await docker.listContainers({ all: true, filters: { label: ['many'] } }), [], '--rm through the API removes them');
});
