// Every README example marked `tested` runs: the shell blocks in order in one shell, the TypeScript block with tsx.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PLY, REPO, busyboxTar, tempDir } from '../helpers.js';

function blocks(lang: string): string[] {
  const text = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
  const re = new RegExp('```' + lang + ' tested\\n([\\s\\S]*?)```', 'g');
  return [...text.matchAll(re)].map((m) => m[1]!);
}

test('the README shell examples run in order and succeed', () => {
  const shell = blocks('sh');
  assert.ok(shell.length >= 6, 'the README has tested examples');
  const work = tempDir();
  const bin = tempDir();
  fs.symlinkSync(PLY, path.join(bin, 'ply'));
  fs.copyFileSync(busyboxTar(), path.join(work, 'rootfs.tar'));
  const script = `set -euo pipefail\n${shell.join('\n')}`;
  const r = spawnSync('bash', ['-c', script], {
    cwd: work,
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, PLY_ROOT: path.join(work, 'store'), DOCKER_CONFIG: path.join(work, 'docker') },
    encoding: 'utf8',
    timeout: 180_000,
  });
  assert.equal(r.status, 0, `${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`);
  assert.match(r.stdout, /^changed$/m);
  assert.match(r.stdout, /Login Succeeded/);
  assert.match(r.stdout, /hello from a build/);
  assert.equal((r.stdout.match(/^hello from web$/gm) ?? []).length, 2, 'the published port and the name on the user network');
  assert.match(r.stdout, /^container create\ncontainer attach\ncontainer start\ncontainer die\ncontainer destroy$/m);
  assert.match(r.stdout, /^flaky: exited, restarted 2 times$/m);
  assert.match(r.stdout, /^checked: Up .* \(healthy\)$/m);
  assert.match(r.stdout, /^exit code 137$/m);
  assert.match(r.stdout, /^CONTAINER ID +NAME +CPU % +MEM USAGE \/ LIMIT +MEM % +NET I\/O +BLOCK I\/O +PIDS\n[0-9a-f]{12} +capped +[\d.]+% +\S+ \/ 64MiB /m);
  assert.match(r.stdout, /^capped now has \S+ \/ 32MiB$/m);
  assert.match(r.stdout, /^hello through the docker CLI$/m);
  assert.match(r.stdout, /^exec works$/m);
  assert.match(r.stdout, /^api-demo Up /m, 'ply lists the container docker started');
  assert.equal((r.stdout.match(/^hello from compose$/gm) ?? []).length, 2, 'the client reached web by name; the published port answers');
});

test('the README library example runs: import, tag, build and run through the engine', () => {
  const [ts] = blocks('ts');
  assert.ok(ts);
  const work = tempDir();
  fs.copyFileSync(busyboxTar(), path.join(work, 'rootfs.tar'));
  // Inside the package, so `import … from 'ply'` resolves to this checkout (package self-reference).
  const file = path.join(REPO, `.readme-example-${process.pid}.mts`);
  fs.writeFileSync(file, ts);
  try {
    // tsx resolved from this checkout: the example runs in a scratch directory with no node_modules.
    const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), file], { cwd: work, env: { ...process.env, PLY_ROOT: path.join(work, 'store') }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout.replace(/\s+/g, ' '), /^sha256:[0-9a-f]{64} \[ 'docker\.io\/library\/from-library:latest', 'docker\.io\/library\/from-library:v1' \]/);
    // Built and run through the engine: the image the build tagged, its CMD's output read back from the logs.
    assert.match(r.stdout, /^built \[ 'from-library:built' \] sha256:[0-9a-f]{64}$/m);
    assert.match(r.stdout, /^built by the engine\nexit code 0$/m);
  } finally {
    fs.rmSync(file, { force: true });
  }
});
