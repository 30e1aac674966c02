// Debian's docker 20.10 pulls and runs ply's default (gzip) push, as a Docker user would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { plyOk, tempDir } from '../helpers.js';
import { startDistribution, type Distribution } from '../registry-peer.js';
import { bigLayerImage, fetchManifest, recipeOf, startDockerd } from '../push-peer.js';

let reg: Distribution;
let dockerd: Awaited<ReturnType<typeof startDockerd>>;
before(async () => {
  [reg, dockerd] = await Promise.all([startDistribution(), startDockerd()]);
});
after(async () => {
  await Promise.all([reg?.stop(), dockerd?.stop()]);
});

test('docker 20.10 pulls and runs a default (gzip) push by ply: members by igzip and libdeflate', async () => {
  const root = tempDir();
  const ref = `${reg.domain}/docker/app:v1`;
  const sum = bigLayerImage(root, ref);
  plyOk(root, ['push', ref]);
  const top = (await fetchManifest(reg.domain, 'docker/app', 'v1')).doc.layers.at(-1)!;
  // The level adapted to a loopback registry, faster than deflate: down to igzip's rungs (codes C and D).
  assert.match(recipeOf(root, top.digest) ?? '', /^gzip\/L[0-9]*[CD]/, 'the push used igzip');
  dockerd.docker(['pull', '-q', ref]);
  assert.equal(dockerd.docker(['run', '--rm', '--network', 'none', ref, 'md5sum', '/big']), sum);
  assert.equal(dockerd.docker(['run', '--rm', '--network', 'none', ref, 'cat', '/etc/motd']), 'hello from the base image\n');
});
