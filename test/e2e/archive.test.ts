// End-to-end: save and load through bin/ply, against real peers both ways: skopeo (docker-archive:, oci-archive:,
// oci:), umoci (unpack of the OCI layout), podman (load of ply's archive; podman save in both formats loaded by ply).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PLY, busyboxTar, ply, plyOk, tempDir } from '../helpers.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let root: string;
let work: string;
let baseId: string;
let twoId: string;
before(() => {
  root = tempDir();
  work = tempDir('ply-archive-');
  baseId = plyOk(root, ['import', busyboxTar(), 'bb']).trim();
  // A second image sharing the base layer: a container's change committed on top of it.
  plyOk(root, ['run', '--name', 'c', 'bb', 'sh', '-c', 'echo x > /x']);
  twoId = plyOk(root, ['commit', 'c', 'two:v1']).trim();
  plyOk(root, ['rm', 'c']);
});

/** Every entry of a tar with its size, from GNU tar. */
function listing(file: string): { name: string; size: number }[] {
  return execFileSync('tar', ['-tvf', file], { encoding: 'utf8' })
    .trim()
    .split('\n')
    .map((l) => {
      const f = l.split(/\s+/);
      return { name: f[5]!, size: Number(f[2]) };
    });
}

const tarFile = (file: string, name: string) => execFileSync('tar', ['-xOf', file, name]);

let podmanDir: string | undefined;
function podman(args: string[], opts: { input?: Buffer } = {}): string {
  if (!podmanDir) {
    podmanDir = tempDir('ply-podman-');
    fs.writeFileSync(
      path.join(podmanDir, 'containers.conf'),
      '[engine]\nruntime = "runc"\n[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n',
    );
  }
  const d = podmanDir;
  const r = spawnSync('podman', ['--root', `${d}/root`, '--runroot', `${d}/run`, '--storage-driver', 'vfs', ...args], {
    env: { ...process.env, CONTAINERS_CONF: `${d}/containers.conf`, TMPDIR: d },
    input: opts.input,
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout.toString();
}

test('save of two images sharing a base layer: one tar, base layer once; skopeo, umoci and podman read it', () => {
  const file = path.join(work, 'two.tar');
  assert.equal(plyOk(root, ['save', '-o', file, 'bb', 'two:v1']), '');
  assert.deepEqual(fs.readdirSync(work), ['two.tar'], 'no temporary file left');
  const entries = listing(file);
  const baseLayer = JSON.parse(tarFile(file, 'manifest.json').toString())[0].Layers[0];
  assert.equal(entries.filter((e) => e.name === baseLayer).length, 1, 'the shared layer is written once');
  assert.deepEqual(
    entries.filter((e) => !e.name.startsWith('blobs/')).map((e) => e.name),
    ['index.json', 'manifest.json', 'oci-layout', 'repositories'],
  );
  const manifest = JSON.parse(tarFile(file, 'manifest.json').toString());
  assert.deepEqual(manifest.map((m: any) => m.RepoTags), [['bb:latest'], ['two:v1']]);
  assert.equal(manifest[1].Layers[0], baseLayer);
  assert.equal(manifest[1].Parent, baseId, 'the parent is in the archive too');

  // skopeo: both readers, choosing an image of several (docker-archive by name, oci-archive by ref.name).
  const viaDocker = JSON.parse(execFileSync('skopeo', ['inspect', `docker-archive:${file}:two:v1`], { encoding: 'utf8' }));
  assert.equal(viaDocker.Layers.length, 2);
  const viaOci = JSON.parse(execFileSync('skopeo', ['inspect', `oci-archive:${file}:v1`], { encoding: 'utf8' }));
  assert.equal(viaOci.Digest, JSON.parse(plyOk(root, ['image', 'inspect', 'two:v1']))[0].Descriptor.digest);
  assert.equal(JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci-archive:${file}:latest`], { encoding: 'utf8' })).rootfs.diff_ids.length, 1);

  // umoci: the extracted tar is an OCI image layout.
  const layout = path.join(work, 'layout');
  fs.mkdirSync(layout);
  execFileSync('tar', ['-xf', file, '-C', layout]);
  execFileSync('umoci', ['unpack', '--image', `${layout}:v1`, path.join(work, 'bundle')], { stdio: 'pipe' });
  assert.equal(fs.readFileSync(path.join(work, 'bundle/rootfs/etc/motd'), 'utf8'), 'hello from the base image\n');
  assert.equal(fs.readFileSync(path.join(work, 'bundle/rootfs/x'), 'utf8'), 'x\n');

  // podman load, then run the loaded image.
  const loaded = podman(['load', '-q', '-i', file]);
  assert.match(loaded, /Loaded image: localhost\/bb:latest/);
  assert.match(loaded, /Loaded image: localhost\/two:v1/);
  assert.match(podman(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']), new RegExp(`localhost/two:v1 ${twoId.slice(7, 19)}`));
  assert.equal(podman(['run', '--rm', 'localhost/two:v1', 'cat', '/etc/motd', '/x']), 'hello from the base image\nx\n');
});

test('podman save (docker-archive and oci-archive) and a skopeo oci: layout, loaded by ply and run', () => {
  const r = tempDir();
  podman(['import', '-q', busyboxTar(), 'localhost/pbb:latest']);
  const da = path.join(work, 'podman-docker.tar');
  const oa = path.join(work, 'podman-oci.tar');
  podman(['save', '-q', '--format', 'docker-archive', '-o', da, 'localhost/pbb:latest']);
  podman(['save', '-q', '--format', 'oci-archive', '-o', oa, 'localhost/pbb:latest']);
  const podmanId = podman(['images', '--no-trunc', '--format', '{{.ID}}', 'localhost/pbb:latest']).trim().replace(/^sha256:/, '');

  assert.equal(plyOk(r, ['load', '-i', da]), 'Loaded image: localhost/pbb:latest\n');
  assert.equal(plyOk(r, ['image', 'inspect', '-f', '{{.Id}}', 'localhost/pbb']).trim(), `sha256:${podmanId}`, 'the image ID is the config digest');
  assert.equal(plyOk(r, ['run', '--rm', 'localhost/pbb', 'cat', '/etc/motd']), 'hello from the base image\n');

  plyOk(r, ['tag', 'localhost/pbb', 'kept:docker']);
  assert.equal(plyOk(r, ['load'], { input: fs.readFileSync(oa) }), 'Loaded image: localhost/pbb:latest\n');
  assert.equal(plyOk(r, ['run', '--rm', 'localhost/pbb:latest', 'cat', '/etc/motd']), 'hello from the base image\n');

  // skopeo's OCI layout directory: a bare tag as ref.name names no repository (untagged), a full name does.
  const dir = path.join(work, 'skopeo-oci');
  execFileSync('skopeo', ['copy', '-q', `docker-archive:${da}`, `oci:${dir}:localhost/sk:v1`]);
  execFileSync('skopeo', ['copy', '-q', `oci-archive:${oa}`, `oci:${dir}:v2`]);
  const out = plyOk(r, ['load', '-i', dir]).trim().split('\n');
  assert.equal(out[0], 'Loaded image: localhost/sk:v1');
  assert.match(out[1]!, /^Loaded image ID: sha256:[0-9a-f]{64}$/);
  assert.equal(plyOk(r, ['run', '--rm', 'localhost/sk:v1', 'cat', '/etc/motd']), 'hello from the base image\n');
});

test('save, rmi, load: same IDs and names, and it runs; gzip-compressed whole archive from stdin', () => {
  const r = tempDir();
  plyOk(r, ['import', busyboxTar(), 'bb']);
  plyOk(r, ['tag', 'bb', 'localhost:5000/team/bb:v2']);
  const before = plyOk(r, ['images', '--no-trunc', '--format', '{{.Repository}}:{{.Tag}} {{.ID}} {{.Digest}}']);
  const file = path.join(work, 'rt.tar');
  plyOk(r, ['image', 'save', '--output', file, 'bb', 'localhost:5000/team/bb:v2']);
  plyOk(r, ['rmi', 'bb', 'localhost:5000/team/bb:v2']);
  assert.equal(plyOk(r, ['images', '-a', '-q']), '');
  assert.equal(plyOk(r, ['image', 'load', '-q', '-i', file]), 'Loaded image: bb:latest\nLoaded image: localhost:5000/team/bb:v2\n');
  assert.equal(plyOk(r, ['images', '--no-trunc', '--format', '{{.Repository}}:{{.Tag}} {{.ID}} {{.Digest}}']), before);
  assert.equal(plyOk(r, ['run', '--rm', 'localhost:5000/team/bb:v2', 'cat', '/etc/motd']), 'hello from the base image\n');

  // ply save | gzip | ply load, into another store; and an untagged image by ID.
  const r2 = tempDir();
  const piped = spawnSync('bash', ['-o', 'pipefail', '-c', `PLY_ROOT=${r} ${PLY} save bb | gzip -1 | PLY_ROOT=${r2} ${PLY} load`], { encoding: 'utf8' });
  assert.equal(piped.status, 0, piped.stderr);
  assert.equal(piped.stdout, 'Loaded image: bb:latest\n');
  const id = plyOk(r, ['image', 'inspect', '-f', '{{.Id}}', 'bb']).trim();
  const byId = path.join(work, 'by-id.tar');
  plyOk(r, ['save', '-o', byId, id.slice(7, 19)]);
  assert.equal(plyOk(tempDir(), ['load', '-i', byId]), `Loaded image ID: ${id}\n`);
  // --format docker alone (no manifest blobs: ply builds the manifest, the ID stays).
  const dockerOnly = path.join(work, 'docker-only.tar');
  plyOk(r, ['save', '--format', 'docker', '-o', dockerOnly, 'bb']);
  assert.ok(!listing(dockerOnly).some((e) => e.name === 'index.json'));
  const r3 = tempDir();
  assert.equal(plyOk(r3, ['load', '-i', dockerOnly]), 'Loaded image: bb:latest\n');
  assert.equal(plyOk(r3, ['image', 'inspect', '-f', '{{.Id}}', 'bb']).trim(), id);
});

test('refusals: truncated, flipped byte in a layer, missing file, garbage; one line, nothing recorded', () => {
  const file = path.join(work, 'good.tar');
  plyOk(root, ['save', '-o', file, 'two:v1']);
  const good = fs.readFileSync(file);
  const r = tempDir();
  plyOk(r, ['import', busyboxTar(), 'keep:me']);
  const state = () => plyOk(r, ['images', '-a', '-q', '--no-trunc']) + plyOk(r, ['images', '--format', '{{.Repository}}:{{.Tag}}']);
  const before = state();

  const flipped = Buffer.from(good);
  const layerPath = JSON.parse(tarFile(file, 'manifest.json').toString())[0].Layers[1];
  const at = good.indexOf(Buffer.from(layerPath)) + 512 + 700; // inside the committed layer's body
  flipped[at]! ^= 0xff;

  const missing = path.join(work, 'missing');
  fs.mkdirSync(missing);
  execFileSync('tar', ['-xf', file, '-C', missing]);
  const m = JSON.parse(fs.readFileSync(path.join(missing, 'manifest.json'), 'utf8'));
  fs.rmSync(path.join(missing, m[0].Layers[1]));
  fs.rmSync(path.join(missing, 'index.json'));
  const missingTar = execFileSync('tar', ['-cf', '-', '-C', missing, '.'], { maxBuffer: 64 << 20 });

  const cases: [string, Buffer, RegExp][] = [
    ['truncated', good.subarray(0, good.length - 5000), /unexpected end/],
    ['flipped byte', flipped, /digest mismatch/],
    ['missing layer file', missingTar, /manifest.json references blobs\/sha256\/[0-9a-f]{64}, which is not in the archive/],
    ['garbage', Buffer.from('garbage '.repeat(1000)), /not a tar archive/],
    ['truncated gzip', execFileSync('gzip', ['-c', file]).subarray(0, 100000), /corrupt gzip data|unexpected end/],
  ];
  for (const [what, input, re] of cases) {
    const res = ply(r, ['load'], { input });
    assert.notEqual(res.code, 0, what);
    assert.equal(res.stdout, '', what);
    assert.equal(res.stderr.trim().split('\n').length, 1, `${what}: ${res.stderr}`);
    assert.match(res.stderr, re, what);
    assert.equal(state(), before, what);
  }
  assert.deepEqual(fs.readdirSync(path.join(r, 'ingest')), []);
  const missingInput = ply(r, ['load', '-i', path.join(work, 'nope.tar')]);
  assert.equal(missingInput.code, 1);
  assert.match(missingInput.stderr, /no such file or directory/);
});

test('save: refuses a terminal; an unknown image writes no file; the output file appears only when complete', () => {
  const res = spawnSync('script', ['-qec', `${PLY} save bb`, '/dev/null'], { env: { ...process.env, PLY_ROOT: root }, encoding: 'utf8', input: '' });
  assert.notEqual(res.status, 0);
  assert.match(res.stdout, /cowardly refusing to save to a terminal\. Use the -o flag or redirect/);
  const dir = tempDir();
  const bad = ply(root, ['save', '-o', path.join(dir, 'x.tar'), 'bb', 'nosuch:image']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /No such image: nosuch:image/);
  assert.deepEqual(fs.readdirSync(dir), []);
  assert.match(ply(root, ['save', '--format', 'zip', 'bb']).stderr, /unsupported format "zip"/);
  // stdout and -o give the same bytes.
  const saved = spawnSync(PLY, ['save', 'bb'], { env: { ...process.env, PLY_ROOT: root }, maxBuffer: 64 << 20 });
  assert.equal(saved.status, 0, saved.stderr.toString());
  const viaStdout = saved.stdout;
  plyOk(root, ['save', '-o', path.join(dir, 'bb.tar'), 'bb']);
  assert.equal(sha(viaStdout), sha(fs.readFileSync(path.join(dir, 'bb.tar'))));
});
