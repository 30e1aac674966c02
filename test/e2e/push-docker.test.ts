// Debian's docker 20.10 pulls and runs ply's default (gzip) push, as a Docker user would.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { busyboxTar, plyOk, tempDir } from '../helpers.js';
import { startDistribution, type Distribution } from '../registry-peer.js';
import { startDockerd } from '../push-peer.js';

let reg: Distribution;
let dockerd: Awaited<ReturnType<typeof startDockerd>>;
before(async () => {
  [reg, dockerd] = await Promise.all([startDistribution(), startDockerd()]);
});
after(async () => {
  await Promise.all([reg?.stop(), dockerd?.stop()]);
});

test('docker 20.10 pulls and runs a default (gzip) push by ply', () => {
  const root = tempDir();
  const ref = `${reg.domain}/docker/app:v1`;
  plyOk(root, ['import', busyboxTar(), ref]);
  plyOk(root, ['run', '--name', 'w', ref, 'sh', '-c', 'echo second layer > /second']);
  plyOk(root, ['commit', 'w', ref]);
  plyOk(root, ['push', ref]);
  dockerd.docker(['pull', '-q', ref]);
  assert.equal(dockerd.docker(['run', '--rm', '--network', 'none', ref, 'cat', '/etc/motd', '/second']), 'hello from the base image\nsecond layer\n');
});
