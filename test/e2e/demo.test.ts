// The demo's quick form (busybox fixture, offline) runs end to end: every step of the seed's story.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { REPO, tempDir } from '../helpers.js';

test('npm run demo, quick form: import, run, diff, commit, export/import, save/load, registry, build', () => {
  const root = tempDir();
  const r = spawnSync('bash', [path.join(REPO, 'scripts', 'demo.sh'), '--quick'], {
    env: { ...process.env, PLY_ROOT: root, PLY_DEMO_SKIP_SETUP: '1', DOCKER_CONFIG: tempDir(), PLY_DEMO_CACHE: tempDir() },
    encoding: 'utf8',
    timeout: 240_000,
  });
  assert.equal(r.status, 0, `${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`);
  for (const expected of [
    /hello from the custom layer/,
    /Login Succeeded/,
    /Layer already exists/,
    /Already exists/,
    /Loaded image: demo-custom:v1/,
    / ---> Using cache/,
    /Demo finished/,
  ]) {
    assert.match(r.stdout, expected);
  }
});
