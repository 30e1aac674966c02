// containerd (ctr) pulls, unpacks and runs ply's gzip and zstd pushes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { busyboxTar, plyOk, tempDir } from '../helpers.js';
import { startDistribution, type Distribution } from '../registry-peer.js';
import { fetchManifest, startContainerd } from '../push-peer.js';

let reg: Distribution;
let containerd: Awaited<ReturnType<typeof startContainerd>>;
before(async () => {
  [reg, containerd] = await Promise.all([startDistribution(), startContainerd()]);
});
after(async () => {
  await Promise.all([reg?.stop(), containerd?.stop()]);
});

test('ctr pulls and runs ply\'s gzip and zstd pushes', async () => {
  const root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'app:v1']);
  for (const format of ['gzip', 'zstd']) {
    const ref = `${reg.domain}/ctr/${format}:v1`;
    plyOk(root, ['tag', 'app:v1', ref]);
    plyOk(root, ['push', '--compression-format', format, ref]);
    assert.equal((await fetchManifest(reg.domain, `ctr/${format}`, 'v1')).doc.layers[0]!.mediaType, `application/vnd.oci.image.layer.v1.tar+${format}`);
    containerd.ctr(['image', 'pull', '--plain-http', ref]);
    assert.equal(containerd.ctr(['run', '--rm', '--net-host', ref, `ply-${format}`, 'cat', '/etc/motd']), 'hello from the base image\n');
  }
});
