// End-to-end reliability: kill -9 at several moments, several processes at once, corruption found by check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PLY, busyboxTar, ply, plyAsync, plyOk, tempDir } from '../helpers.js';
import { startDistribution } from '../registry-peer.js';

/** A tar of incompressible files, big enough that an import takes a while. */
function bigTar(mb: number): string {
  const dir = tempDir('ply-big-');
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(tree);
  for (let i = 0; i < mb / 4; i++) fs.writeFileSync(path.join(tree, `f${i}`), Buffer.alloc(4 << 20, i));
  const tar = path.join(dir, 'big.tar');
  execFileSync('tar', ['-cf', tar, '-C', tree, '.']);
  return tar;
}

/** Starts `ply args…`, SIGKILLs it after `ms`, and waits for it to be gone. */
async function killAfter(root: string, args: string[], ms: number, env: Record<string, string> = {}): Promise<void> {
  const child = spawn(PLY, args, { env: { ...process.env, PLY_ROOT: root, ...env }, stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  await new Promise((r) => setTimeout(r, ms));
  child.kill('SIGKILL');
  await exited;
}

function checkClean(root: string): void {
  const r = ply(root, ['system', 'check']);
  assert.equal(r.code, 0, `system check after a kill: ${r.stdout}${r.stderr}`);
}

test('kill -9 during import, commit and pull leaves a consistent store; the retry succeeds', async () => {
  const root = tempDir();
  const big = bigTar(64);
  for (const ms of [30, 90, 180, 400]) {
    await killAfter(root, ['import', big, `big:${ms}`], ms);
    checkClean(root);
    plyOk(root, ['import', big, `big:${ms}`]);
    checkClean(root);
  }
  plyOk(root, ['import', busyboxTar(), 'bb']);
  plyOk(root, ['run', '--name', 'writer', 'bb', 'sh', '-c', 'head -c 30000000 /dev/urandom > /blob']);
  for (const ms of [40, 120, 300]) {
    await killAfter(root, ['commit', 'writer', `snap:${ms}`], ms);
    checkClean(root);
  }
  plyOk(root, ['commit', 'writer', 'snap:final']);
  assert.equal(plyOk(root, ['run', '--rm', 'snap:final', 'sh', '-c', 'wc -c < /blob']).trim(), '30000000');

  const archive = path.join(tempDir(), 'snap.tar');
  plyOk(root, ['save', '-o', archive, 'snap:final']);
  const loaded = tempDir();
  for (const ms of [40, 120, 300]) {
    await killAfter(loaded, ['load', '-i', archive], ms);
    checkClean(loaded);
  }
  assert.match(plyOk(loaded, ['load', '-i', archive]), /Loaded image: snap:final/);
  checkClean(loaded);

  const reg = await startDistribution();
  try {
    plyOk(root, ['tag', 'snap:final', `${reg.domain}/k/snap:v1`]);
    plyOk(root, ['push', `${reg.domain}/k/snap:v1`]);
    const fresh = tempDir();
    for (const ms of [60, 150, 300]) {
      await killAfter(fresh, ['pull', `${reg.domain}/k/snap:v1`], ms);
      checkClean(fresh);
    }
    plyOk(fresh, ['pull', `${reg.domain}/k/snap:v1`]);
    checkClean(fresh);
    assert.equal(plyOk(fresh, ['run', '--rm', `${reg.domain}/k/snap:v1`, 'sh', '-c', 'wc -c < /blob']).trim(), '30000000');
  } finally {
    await reg.stop();
  }
  plyOk(root, ['rm', 'writer']);
});

test('four processes importing, pulling, running and removing at once never corrupt the store or lose a tag', async () => {
  const root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'keep:me']);
  const reg = await startDistribution();
  const remote = `${reg.domain}/par/shared:v1`;
  plyOk(root, ['tag', 'keep:me', remote]);
  plyOk(root, ['push', remote]);
  plyOk(root, ['rmi', remote]);
  const jobs: Promise<{ code: number; stderr: string }>[] = [];
  for (let i = 0; i < 4; i++) {
    jobs.push(
      (async () => {
        for (let j = 0; j < 3; j++) {
          const tag = `p${i}:${j}`;
          const step = async (args: string[], opts: { inputFile?: string } = {}) => {
            const res = await plyAsync(root, args, opts);
            return { ...res, stderr: `ply ${args.join(' ')}: ${res.stderr}` };
          };
          let r = await step(['import', '-c', `LABEL n=${i}-${j}`, '-', tag], { inputFile: busyboxTar() });
          if (r.code !== 0) return r;
          // Everyone pulls the same image at once, too.
          r = await step(['pull', remote]);
          if (r.code !== 0) return r;
          r = await step(['run', '--rm', tag, 'cat', '/etc/motd']);
          if (r.code !== 0 || r.stdout !== 'hello from the base image\n') return { code: r.code || 1, stderr: r.stderr + r.stdout };
          if (j < 2) {
            r = await step(['rmi', tag]);
            if (r.code !== 0) return r;
          }
        }
        return { code: 0, stderr: '' };
      })(),
    );
  }
  const results = await Promise.all(jobs);
  await reg.stop();
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  const tags = plyOk(root, ['images', '--format', '{{.Repository}}:{{.Tag}}']).trim().split('\n').sort();
  assert.deepEqual(tags, [`${reg.domain}/par/shared:v1`, 'keep:me', 'p0:2', 'p1:2', 'p2:2', 'p3:2'].sort());
  checkClean(root);
  assert.equal(plyOk(root, ['run', '--rm', 'keep:me', 'true']), '');
});

test('system check names a corrupted blob and exits non-zero', () => {
  const root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'victim']);
  assert.equal(plyOk(root, ['system', 'check']), 'no problems found\n');
  const layer = JSON.parse(plyOk(root, ['image', 'inspect', 'victim']))[0];
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'blobs', 'sha256', layer.Descriptor.digest.slice(7)), 'utf8'));
  const blob = path.join(root, 'blobs', 'sha256', manifest.layers[0].digest.slice(7));
  const fd = fs.openSync(blob, 'r+');
  fs.writeSync(fd, Buffer.from('X'), 0, 1, 5000);
  fs.closeSync(fd);
  const r = ply(root, ['system', 'check']);
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`blob ${manifest.layers[0].digest}: content does not match its digest`));
  assert.match(r.stdout, new RegExp(`image ${layer.Id}: uses corrupt blob ${manifest.layers[0].digest}`));
});
