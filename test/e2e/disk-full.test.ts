// End-to-end: a full disk never leaves the store unusable. A store on a small tmpfs of its own: a `run --rm`
// whose layer does not fit fails in one line (125) and leaves no container and no half-unpacked layer; a pull
// that fills the disk leaves no partial download behind (or one that `image prune` reclaims), and the store
// works afterwards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startRegistry } from '../../src/registry/server.js';
import { PLY, busyboxTar, ply, plyAsync, plyOk, tempDir } from '../helpers.js';

/** A tmpfs of `size` mounted under a fresh test directory; unmounted by `done`. */
function smallDisk(size: string): { dir: string; done: () => void } {
  const dir = path.join(tempDir(), 'disk');
  fs.mkdirSync(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir]);
  return { dir, done: () => void spawnSync('umount', ['-l', dir]) };
}

/** A docker-archive of `big:ab`: two gzip layers, each one file of `size` zero bytes. */
function twoLayerArchive(dir: string, size: number): string {
  const sha = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');
  const diffIds: string[] = [];
  for (const n of ['a', 'b']) {
    fs.mkdirSync(path.join(dir, n));
    execFileSync('sh', ['-c', `head -c ${size} /dev/zero > ${n}/${n}.zeros && tar -C ${n} -cf ${n}.tar ${n}.zeros && gzip -k ${n}.tar`], { cwd: dir });
    diffIds.push(`sha256:${sha(path.join(dir, `${n}.tar`))}`);
  }
  const config = JSON.stringify({
    architecture: process.arch === 'arm64' ? 'arm64' : 'amd64',
    os: 'linux',
    config: {},
    rootfs: { type: 'layers', diff_ids: diffIds },
  });
  fs.writeFileSync(path.join(dir, 'config.json'), config);
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify([{ Config: 'config.json', RepoTags: ['big:ab'], Layers: ['a.tar.gz', 'b.tar.gz'] }]));
  execFileSync('tar', ['-C', dir, '-cf', 'archive.tar', 'manifest.json', 'config.json', 'a.tar.gz', 'b.tar.gz'], { cwd: dir });
  return path.join(dir, 'archive.tar');
}

const used = (dir: string) => Number(execFileSync('df', ['--output=used', '-B1', dir]).toString().split('\n')[1]);

function oneLine(r: { code: number; stderr: string }, code: number, what: string): void {
  assert.equal(r.code, code, `${what}: ${r.stderr}`);
  assert.equal(r.stderr.trim().split('\n').length, 1, `${what}: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at |node:internal/, what);
}

test('ENOSPC while a run --rm unpacks its layers: one line, exit 125, no container, no partial layer', () => {
  const disk = smallDisk('48m');
  try {
    const root = path.join(disk.dir, 'store');
    plyOk(root, ['import', busyboxTar(), 'bb']);
    // An image of two layers that unpack to 30 MB each (gzip: a few KB each): both cannot fit, and they are
    // unpacked in parallel.
    plyOk(root, ['load', '-i', twoLayerArchive(tempDir(), 30_000_000)]);
    const baseline = used(disk.dir);
    for (const driver of ['overlay', 'vfs']) {
      for (const image of ['big:ab']) {
        const r = ply(root, ['run', '--network', 'none', '--rm', image, '/bin/true'], { env: { PLY_STORAGE_DRIVER: driver } });
        if (r.code === 0) continue;
        oneLine(r, 125, `${driver} run --rm ${image}`);
        assert.match(r.stderr, /no space left on device|disk is full/i, r.stderr);
        assert.equal(plyOk(root, ['ps', '-aq']).trim(), '', `${driver}: run --rm left a container`);
        assert.deepEqual(fs.readdirSync(path.join(root, 'snapshots')).filter((n) => n.startsWith('tmp-')), [], 'half-unpacked layers left');
        assert.deepEqual(fs.readdirSync(path.join(root, 'containers')), [], 'container directories left');
      }
    }
    // Nothing above kept the space: the store still works.
    assert.ok(used(disk.dir) <= baseline + 41_000_000, `space kept: ${used(disk.dir) - baseline}`);
    plyOk(root, ['rmi', 'big:ab']);
    plyOk(root, ['image', 'prune', '-f']);
    assert.equal(plyOk(root, ['run', '--network', 'none', '--rm', 'bb', 'echo', 'ok']).trim(), 'ok');
    const check = plyOk(root, ['system', 'check']);
    assert.doesNotMatch(check, /unfinished|without a record|missing/, check);
  } finally {
    disk.done();
  }
});

test('a pull that fills the disk: one line, and no partial download keeps the space (image prune reclaims any)', async () => {
  const reg = await startRegistry({ root: tempDir(), addr: '127.0.0.1:0', log: false });
  const disk = smallDisk('24m');
  try {
    const host = new URL(reg.url).host;
    const src = tempDir();
    const ok = async (root: string, args: string[]) => {
      const r = await plyAsync(root, args);
      assert.equal(r.code, 0, `ply ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    await ok(src, ['import', busyboxTar(), 'bb']);
    await ok(src, ['run', '--network', 'none', '--name', 'w', 'bb', 'sh', '-c', 'head -c 40000000 /dev/urandom > /big']);
    await ok(src, ['commit', 'w', `${host}/r/big:v1`]);
    await ok(src, ['push', `${host}/r/big:v1`]);
    const root = path.join(disk.dir, 'store');
    await ok(root, ['images']);
    const before = used(disk.dir);
    const r = await plyAsync(root, ['pull', '-q', `${host}/r/big:v1`]);
    // docker pull: a failed pull exits 1.
    oneLine(r, 1, 'pull');
    assert.match(r.stderr, /no space left on device|disk is full/i);
    // The store works at once, and prune leaves it where it was before the pull.
    await ok(root, ['images']);
    await ok(root, ['image', 'prune', '-f']);
    const ingest = fs.readdirSync(path.join(root, 'ingest'));
    assert.deepEqual(ingest, [], 'partial downloads left after prune');
    assert.ok(used(disk.dir) - before < 2_000_000, `space still used: ${used(disk.dir) - before}`);
    await ok(root, ['import', busyboxTar(), 'bb']);
    assert.equal((await ok(root, ['run', '--network', 'none', '--rm', 'bb', 'echo', 'ok'])).trim(), 'ok');
  } finally {
    disk.done();
    await reg.close();
  }
});

test('image prune and system prune reclaim what killed builds and pulls left: RUN containers, work dirs, ingests', async () => {
  const root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'bb']);
  const ctx = tempDir();
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM bb\nRUN echo started > /started; sleep 60\n');
  for (const prune of [['image', 'prune', '-f'], ['system', 'prune', '-f']]) {
    const build = spawn(PLY, ['build', '--no-cache', '-t', 'slow', ctx], { env: { ...process.env, PLY_ROOT: root }, stdio: 'ignore' });
    const exited = new Promise((r) => build.once('exit', r));
    // Killed while its RUN step runs.
    for (let i = 0; i < 200 && plyOk(root, ['ps', '-q']).trim() === ''; i++) await new Promise((r) => setTimeout(r, 50));
    assert.notEqual(plyOk(root, ['ps', '-q']).trim(), '', 'the RUN step started');
    build.kill('SIGKILL');
    await exited;
    // A partial download another killed process left.
    fs.mkdirSync(path.join(root, 'ingest', 'blob-sha256-0000'), { recursive: true });
    fs.writeFileSync(path.join(root, 'ingest', 'blob-sha256-0000', 'data'), Buffer.alloc(1 << 20));
    // And a work dir of a build that is gone (pid 4194305 is above the kernel's PID_MAX_LIMIT).
    fs.mkdirSync(path.join(root, 'build', '4194305-abc', 'views'), { recursive: true });
    plyOk(root, prune);
    assert.equal(plyOk(root, ['ps', '-aq']).trim(), '', `${prune.join(' ')} left the build's container`);
    assert.deepEqual(fs.readdirSync(path.join(root, 'build')), [], `${prune.join(' ')} left a build's work dir`);
    assert.deepEqual(fs.readdirSync(path.join(root, 'ingest')), [], `${prune.join(' ')} left the partial download`);
  }
  assert.equal(plyOk(root, ['run', '--network', 'none', '--rm', 'bb', 'echo', 'ok']).trim(), 'ok');
});
