// Peers pull and run what ply pushes: podman and skopeo (containers/image) read gzip and zstd pushes, from the
// distribution registry and from ply's own. containerd and docker have files of their own (push-containerd, push-docker)
// so the slow peers run in parallel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { busyboxTar, PLY, plyOk, tempDir } from '../helpers.js';
import { freePort, startDistribution, type Distribution } from '../registry-peer.js';
import { bigLayerImage, fetchBlob, fetchManifest, magicCount, podmanPeer, recipeOf, ZSTD_MAGIC } from '../push-peer.js';

let reg: Distribution;
before(async () => {
  reg = await startDistribution();
});
after(async () => {
  await reg?.stop();
});

test('ply\'s own registry serves gzip and zstd pushes: podman and ply pull and run them', async () => {
  // A process of its own: the ply commands below run synchronously and would block a registry in this process.
  const port = await freePort();
  const own = spawn(PLY, ['registry', 'serve', '--addr', `127.0.0.1:${port}`, '--root', tempDir()], { stdio: 'ignore' });
  try {
    const host = `127.0.0.1:${port}`;
    for (let i = 0; i < 200 && (await fetch(`http://${host}/v2/`).catch(() => undefined))?.status !== 200; i++) await new Promise((r) => setTimeout(r, 50));
    const root = tempDir();
    plyOk(root, ['import', '-c', 'CMD ["cat", "/etc/motd"]', busyboxTar(), 'app:v1']);
    const podman = podmanPeer();
    for (const format of ['gzip', 'zstd']) {
      const ref = `${host}/own/${format}:v1`;
      plyOk(root, ['tag', 'app:v1', ref]);
      plyOk(root, ['push', '--compression-format', format, ref]);
      const m = await fetchManifest(host, `own/${format}`, 'v1');
      assert.equal(m.doc.layers[0]!.mediaType, `application/vnd.oci.image.layer.v1.tar+${format}`);
      podman(['pull', '-q', '--tls-verify=false', ref]);
      assert.equal(podman(['run', '--rm', '--network', 'none', ref]), 'hello from the base image\n');
      const fresh = tempDir();
      plyOk(fresh, ['pull', ref]);
      assert.equal(plyOk(fresh, ['run', '--rm', ref]), 'hello from the base image\n');
    }
  } finally {
    own.kill();
  }
});

test('podman pulls and runs ply\'s gzip and zstd pushes; skopeo copies them', async () => {
  const root = tempDir();
  plyOk(root, ['import', '-c', 'CMD ["cat", "/etc/motd"]', busyboxTar(), 'app:v1']);
  const podman = podmanPeer();
  for (const format of ['gzip', 'zstd']) {
    const ref = `${reg.domain}/peers/${format}:v1`;
    plyOk(root, ['tag', 'app:v1', ref]);
    plyOk(root, ['push', '--compression-format', format, ref]);
    const m = await fetchManifest(reg.domain, `peers/${format}`, 'v1');
    assert.equal(m.doc.layers[0]!.mediaType, `application/vnd.oci.image.layer.v1.tar+${format}`);
    podman(['pull', '-q', '--tls-verify=false', ref]);
    assert.equal(podman(['run', '--rm', '--network', 'none', ref]), 'hello from the base image\n');
    const dir = path.join(tempDir(), 'copy');
    execFileSync('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${ref}`, `dir:${dir}`]);
    assert.ok(fs.existsSync(path.join(dir, m.doc.layers[0]!.digest.slice(7))), 'skopeo verified and kept the layer blob');
  }
});

test('podman pulls and runs a layer pushed in many adaptive gzip members (igzip and libdeflate) and in zstd frames', async () => {
  const root = tempDir();
  const sum = bigLayerImage(root, 'big:v1');
  const podman = podmanPeer();
  for (const format of ['gzip', 'zstd'] as const) {
    const ref = `${reg.domain}/peers/big-${format}:v1`;
    plyOk(root, ['tag', 'big:v1', ref]);
    plyOk(root, ['push', '--compression-format', format, ref]);
    const top = (await fetchManifest(reg.domain, `peers/big-${format}`, 'v1')).doc.layers.at(-1)!;
    const recipe = recipeOf(root, top.digest) ?? '';
    if (format === 'gzip') assert.match(recipe, /^gzip\/L[0-9]*[CD]/, 'down to igzip on loopback');
    else assert.ok(magicCount(await fetchBlob(reg.domain, `peers/big-${format}`, top.digest), ZSTD_MAGIC) >= 3, recipe);
    podman(['pull', '-q', '--tls-verify=false', ref]);
    assert.equal(podman(['run', '--rm', '--network', 'none', ref, 'md5sum', '/big']), sum);
  }
});
