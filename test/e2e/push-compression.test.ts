// End-to-end: ply push compresses layers (gzip by default, zstd or none on request), names them with the right
// media types, keeps the config's diffIDs, remembers what it compressed (a second push compresses nothing) and
// pushes a pulled layer as the registry's own blob. Registries: two CNCF distribution registries.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import zlib from 'node:zlib';
import { busyboxTar, ply, plyOk, tempDir } from '../helpers.js';
import { startDistribution, type Distribution } from '../registry-peer.js';
import { fetchBlob, fetchManifest, GZIP_MAGIC, ZSTD_MAGIC } from '../push-peer.js';

let one: Distribution;
let two: Distribution;
before(async () => {
  [one, two] = await Promise.all([startDistribution({ accessLog: true }), startDistribution({ accessLog: true })]);
});
after(async () => {
  await Promise.all([one?.stop(), two?.stop()]);
});

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
/** Requests of `method` on blob uploads in the registry's access log (PATCH: bytes sent; POST: sessions and mounts). */
const uploadRequests = (reg: Distribution, method: 'PATCH' | 'POST') =>
  reg.accessLog().split('\n').filter((l) => new RegExp(`"${method} /v2/[^ ]*/blobs/uploads/`).test(l)).length;
const inspect = (root: string, ref: string) => JSON.parse(plyOk(root, ['image', 'inspect', ref]))[0];

test('default push: gzip layers with the OCI media type, diffIDs kept; pushed again, to another repository or registry, nothing is compressed twice', async () => {
  const root = tempDir();
  const ref = `${one.domain}/gz/app:v1`;
  plyOk(root, ['import', busyboxTar(), ref]);
  const local = inspect(root, ref);
  const diffId: string = local.RootFS.Layers[0];

  const out = plyOk(root, ['push', ref]);
  assert.match(out, /Pushed/);
  const pushed = /v1: digest: (sha256:[0-9a-f]{64}) size: \d+/.exec(out)![1]!;
  const m = await fetchManifest(one.domain, 'gz/app', 'v1');
  assert.equal(m.digest, pushed);
  assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(m.doc.layers.length, 1);
  const layer = m.doc.layers[0]!;
  assert.equal(layer.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
  const blob = await fetchBlob(one.domain, 'gz/app', layer.digest);
  assert.equal(blob.length, layer.size);
  assert.deepEqual([...blob.subarray(0, 2)], GZIP_MAGIC);
  assert.ok(blob.length < 0.7 * local.Size, `compressed: ${blob.length} of ${local.Size} bytes`);
  assert.equal(sha256(zlib.gunzipSync(blob)), diffId, 'the blob decompresses to the diffID');
  // GNU gzip reads the multi-member stream as one.
  assert.equal(sha256(execFileSync('gzip', ['-dc'], { input: blob, maxBuffer: 64 << 20 })), diffId);
  const config = JSON.parse((await fetchBlob(one.domain, 'gz/app', m.doc.config.digest)).toString());
  assert.deepEqual(config.rootfs.diff_ids, [diffId]);
  assert.equal(m.doc.config.digest, local.Id, 'the image ID (config) is unchanged');

  // The same repository again: the layer is known compressed, found by HEAD; nothing is compressed or sent.
  const patches = uploadRequests(one, 'PATCH');
  const again = plyOk(root, ['push', ref]);
  assert.match(again, /Layer already exists/);
  assert.doesNotMatch(again, /Pushing|Pushed/);
  assert.match(again, new RegExp(`digest: ${pushed}`));
  assert.equal(uploadRequests(one, 'PATCH'), patches, 'no bytes uploaded');
  // Another repository of the registry: mounted from where it is known to be.
  plyOk(root, ['tag', ref, `${one.domain}/gz/other:v1`]);
  const mounted = plyOk(root, ['push', `${one.domain}/gz/other:v1`]);
  assert.match(mounted, /Mounted from gz\/app/);
  assert.match(mounted, new RegExp(`digest: ${pushed}`));
  assert.equal(uploadRequests(one, 'PATCH'), patches, 'no bytes uploaded');
  // Another registry: compressed again (nothing to mount there), to the very same bytes.
  plyOk(root, ['tag', ref, `${two.domain}/gz/app:v1`]);
  assert.match(plyOk(root, ['push', `${two.domain}/gz/app:v1`]), new RegExp(`digest: ${pushed}`));

  const fresh = tempDir();
  plyOk(fresh, ['pull', `${two.domain}/gz/app:v1`]);
  assert.equal(plyOk(fresh, ['run', '--rm', `${two.domain}/gz/app:v1`, 'cat', '/etc/motd']), 'hello from the base image\n');
  assert.equal(inspect(fresh, `${two.domain}/gz/app:v1`).Id, local.Id);

  // Pulled back into the store it was pushed from: the blob is made again from the stored tar, not fetched.
  plyOk(root, ['rmi', `${two.domain}/gz/app:v1`]);
  const layerGets = () => two.accessLog().split('\n').filter((l) => l.includes(`"GET /v2/gz/app/blobs/${layer.digest}`)).length;
  const gets = layerGets();
  const back = plyOk(root, ['pull', `${two.domain}/gz/app:v1`]);
  assert.match(back, /Already exists/);
  assert.equal(layerGets(), gets, 'the layer was not downloaded');
  assert.equal(inspect(root, `${two.domain}/gz/app:v1`).Id, local.Id);
  assert.equal(plyOk(root, ['run', '--rm', `${two.domain}/gz/app:v1`, 'cat', '/etc/motd']), 'hello from the base image\n');
  const check = ply(root, ['system', 'check']);
  assert.equal(check.code, 0, check.stdout + check.stderr);
});

test('--compression-format zstd: zstd layers (OCI zstd media type and magic); a second push compresses nothing; ply pulls and runs it', async () => {
  const root = tempDir();
  const ref = `${one.domain}/zs/app:v1`;
  plyOk(root, ['import', busyboxTar(), ref]);
  const diffId: string = inspect(root, ref).RootFS.Layers[0];
  const out = plyOk(root, ['push', '--compression-format', 'zstd', '--compression-level', '5', ref]);
  assert.match(out, /Pushed/);
  const m = await fetchManifest(one.domain, 'zs/app', 'v1');
  assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  const layer = m.doc.layers[0]!;
  assert.equal(layer.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
  const blob = await fetchBlob(one.domain, 'zs/app', layer.digest);
  assert.deepEqual([...blob.subarray(0, 4)], ZSTD_MAGIC);
  assert.equal(sha256(execFileSync('zstd', ['-dc'], { input: blob, maxBuffer: 64 << 20 })), diffId);

  const patches = uploadRequests(one, 'PATCH');
  const again = plyOk(root, ['push', '--compression-format', 'zstd', ref]);
  assert.match(again, /Layer already exists/);
  assert.equal(uploadRequests(one, 'PATCH'), patches, 'no bytes uploaded');
  assert.equal((await fetchManifest(one.domain, 'zs/app', 'v1')).digest, m.digest);

  const fresh = tempDir();
  plyOk(fresh, ['pull', ref]);
  assert.equal(plyOk(fresh, ['run', '--rm', ref, 'cat', '/etc/motd']), 'hello from the base image\n');
});

test('a pulled layer is pushed as the registry\'s own blob (same digests, nothing compressed); Docker manifests keep Docker media types unless zstd makes them OCI', async () => {
  // A Docker schema 2 image with a gzip layer, as docker pushes them.
  const seed = tempDir();
  plyOk(seed, ['import', busyboxTar(), `${one.domain}/seed/app:v1`]);
  plyOk(seed, ['push', `${one.domain}/seed/app:v1`]);
  execFileSync('skopeo', ['copy', '-q', '--format', 'v2s2', '--src-tls-verify=false', '--dest-tls-verify=false',
    `docker://${one.domain}/seed/app:v1`, `docker://${one.domain}/docker/app:v1`]);
  const src = await fetchManifest(one.domain, 'docker/app', 'v1');
  assert.equal(src.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  assert.equal(src.doc.layers[0]!.mediaType, 'application/vnd.docker.image.rootfs.diff.tar.gzip');

  const root = tempDir();
  plyOk(root, ['pull', `${one.domain}/docker/app:v1`]);
  const diffId: string = inspect(root, `${one.domain}/docker/app:v1`).RootFS.Layers[0];
  // To another registry: the same blob, so the same manifest.
  plyOk(root, ['tag', `${one.domain}/docker/app:v1`, `${two.domain}/docker/copy:v1`]);
  const out = plyOk(root, ['push', `${two.domain}/docker/copy:v1`]);
  assert.match(out, new RegExp(`digest: ${src.digest}`));
  const copy = await fetchManifest(two.domain, 'docker/copy', 'v1');
  assert.equal(copy.digest, src.digest);
  assert.equal(copy.mediaType, src.mediaType);
  // To another repository of the registry it came from: mounted from there.
  plyOk(root, ['tag', `${one.domain}/docker/app:v1`, `${one.domain}/docker/mounted:v1`]);
  assert.match(plyOk(root, ['push', `${one.domain}/docker/mounted:v1`]), /Mounted from docker\/app/);

  // zstd asked for: the gzip layer is converted, and the manifest becomes OCI (Docker has no zstd type).
  plyOk(root, ['tag', `${one.domain}/docker/app:v1`, `${two.domain}/docker/zstd:v1`]);
  plyOk(root, ['push', '--compression-format', 'zstd', `${two.domain}/docker/zstd:v1`]);
  const z = await fetchManifest(two.domain, 'docker/zstd', 'v1');
  assert.equal(z.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  assert.equal(z.doc.config.mediaType, 'application/vnd.oci.image.config.v1+json');
  assert.equal(z.doc.config.digest, src.doc.config.digest);
  assert.equal(z.doc.layers[0]!.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
  assert.deepEqual([...(await fetchBlob(two.domain, 'docker/zstd', z.doc.layers[0]!.digest)).subarray(0, 4)], ZSTD_MAGIC);
  // none: the plain tar, under Docker's uncompressed media type; its digest is the diffID.
  plyOk(root, ['tag', `${one.domain}/docker/app:v1`, `${two.domain}/docker/plain:v1`]);
  plyOk(root, ['push', '--compression-format', 'none', `${two.domain}/docker/plain:v1`]);
  const plain = await fetchManifest(two.domain, 'docker/plain', 'v1');
  assert.equal(plain.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  assert.equal(plain.doc.layers[0]!.mediaType, 'application/vnd.docker.image.rootfs.diff.tar');
  assert.equal(plain.doc.layers[0]!.digest, diffId);
  assert.equal((await fetchBlob(two.domain, 'docker/plain', diffId)).subarray(257, 262).toString(), 'ustar');

  const fresh = tempDir();
  for (const repo of ['docker/zstd', 'docker/plain']) {
    plyOk(fresh, ['pull', `${two.domain}/${repo}:v1`]);
    assert.equal(plyOk(fresh, ['run', '--rm', `${two.domain}/${repo}:v1`, 'cat', '/etc/motd']), 'hello from the base image\n');
  }
});

test('bad compression flags are one line and exit 125, before anything is sent', () => {
  const root = tempDir();
  plyOk(root, ['import', busyboxTar(), `${one.domain}/bad/app:v1`]);
  const posts = uploadRequests(one, 'POST');
  for (const args of [
    ['--compression-format', 'lz4'],
    ['--compression-format', 'zstd', '--compression-level', '23'],
    ['--compression-level', '10'],
    ['--compression-level', 'fast'],
    ['--compression-format', 'none', '--compression-level', '1'],
  ]) {
    const r = ply(root, ['push', ...args, `${one.domain}/bad/app:v1`]);
    assert.equal(r.code, 125, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  assert.equal(uploadRequests(one, 'POST'), posts);
});
