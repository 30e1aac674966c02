// containerd (ctr) pulls, unpacks and runs ply's gzip and zstd pushes: many gzip members (igzip's and libdeflate's),
// many zstd frames.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { plyOk, tempDir } from '../helpers.js';
import { startDistribution, type Distribution } from '../registry-peer.js';
import { bigLayerImage, fetchBlob, fetchManifest, GZIP_MAGIC, magicCount, startContainerd, ZSTD_MAGIC } from '../push-peer.js';

let reg: Distribution;
let containerd: Awaited<ReturnType<typeof startContainerd>>;
before(async () => {
  [reg, containerd] = await Promise.all([startDistribution(), startContainerd()]);
});
after(async () => {
  await Promise.all([reg?.stop(), containerd?.stop()]);
});

test('ctr pulls and runs ply\'s gzip and zstd pushes, their layers made of many adaptive members and frames', async () => {
  const root = tempDir();
  const sum = bigLayerImage(root, 'app:v1');
  for (const format of ['gzip', 'zstd'] as const) {
    const ref = `${reg.domain}/ctr/${format}:v1`;
    plyOk(root, ['tag', 'app:v1', ref]);
    plyOk(root, ['push', '--compression-format', format, ref]);
    const top = (await fetchManifest(reg.domain, `ctr/${format}`, 'v1')).doc.layers.at(-1)!;
    assert.equal(top.mediaType, `application/vnd.oci.image.layer.v1.tar+${format}`);
    const blob = await fetchBlob(reg.domain, `ctr/${format}`, top.digest);
    assert.ok(magicCount(blob, format === 'gzip' ? GZIP_MAGIC : ZSTD_MAGIC) >= (format === 'gzip' ? 20 : 3), `${format}: many members or frames`);
    containerd.ctr(['image', 'pull', '--plain-http', ref]);
    assert.equal(containerd.ctr(['run', '--rm', '--net-host', ref, `ply-${format}`, 'md5sum', '/big']), sum);
  }
});
