// End-to-end: `ply cp` resolves every container path inside the container's root, in both directions, for
// stopped and running containers on overlay and vfs: symlinks (absolute, relative, chains, "..") made by the
// container or shipped in its image never lead to the host, not even when the container swaps them mid-copy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { busyboxTar, ply, plyOk, snapshotTree, tempDir } from '../helpers.js';

test('ply cp never follows a container symlink onto the host (both directions; stopped and running; overlay and vfs)', () => {
  const root = tempDir();
  const outside = tempDir('ply-outside-');
  fs.writeFileSync(path.join(outside, 'secret'), 'host secret\n');
  fs.mkdirSync(path.join(outside, 'dir'));
  fs.writeFileSync(path.join(outside, 'dir', 'secret2'), 'host secret\n');
  const before = snapshotTree(outside);
  const rel = `../../../../../../../../..${outside}`;
  plyOk(root, ['import', busyboxTar(), 'bb']);
  // The links ship in an image layer (commit) and more are made by the container itself.
  const links = `ln -s ${outside} /v && ln -s ${rel} /rel && ln -s /chain2 /chain1 && ln -s ${outside} /chain2 && mkdir -p /d && ln -s ../../../.. /d/up && ln -s /etc /inner && ln -s ${outside}/secret /f`;
  plyOk(root, ['run', '--network', 'none', '--name', 'base', 'bb', 'sh', '-c', links]);
  plyOk(root, ['commit', 'base', 'links']);

  const local = tempDir();
  fs.writeFileSync(path.join(local, 'file'), 'from the host\n');
  fs.mkdirSync(path.join(local, 'dir', 'sub'), { recursive: true });
  fs.writeFileSync(path.join(local, 'dir', 'sub', 'x'), 'x\n');

  const flavours: { name: string; env: Record<string, string>; running: boolean }[] = [
    { name: 'overlay-stopped', env: {}, running: false },
    { name: 'overlay-running', env: {}, running: true },
    { name: 'vfs-stopped', env: { PLY_STORAGE_DRIVER: 'vfs' }, running: false },
    { name: 'vfs-running', env: { PLY_STORAGE_DRIVER: 'vfs' }, running: true },
  ];
  for (const f of flavours) {
    const c = f.name;
    const own = `ln -s ${rel}/dir /own`;
    if (f.running) plyOk(root, ['run', '--network', 'none', '-d', '--name', c, 'links', 'sh', '-c', `${own}; exec sleep 600`], { env: f.env });
    else plyOk(root, ['run', '--network', 'none', '--name', c, 'links', 'sh', '-c', own], { env: f.env });
    // A link is copied out as the link it is; links inside the root resolve inside it.
    const out = tempDir();
    plyOk(root, ['cp', `${c}:/v`, path.join(out, 'v')]);
    assert.equal(fs.readlinkSync(path.join(out, 'v')), outside);
    plyOk(root, ['cp', `${c}:/inner/passwd`, path.join(out, 'passwd')]);
    assert.match(fs.readFileSync(path.join(out, 'passwd'), 'utf8'), /^root:/);
    plyOk(root, ['cp', path.join(local, 'dir'), `${c}:/inner/`]);
    plyOk(root, ['cp', `${c}:/etc/dir/sub/x`, path.join(out, 'x')]);
    assert.equal(fs.readFileSync(path.join(out, 'x'), 'utf8'), 'x\n');

    const escapes = ['/v/', '/rel/', '/chain1/.', `/d/up${outside}/`, '/own/', '/rel/secret', '/chain1/dir'];
    // Out of the container: nothing of the host's is copied out.
    for (const p of [...escapes, '-L /f', '-L /v']) {
      const args = p.split(' ');
      const dest = path.join(tempDir(), 'out');
      const r = ply(root, ['cp', ...args.slice(0, -1), `${c}:${args.at(-1)}`, dest]);
      if (r.code !== 0) {
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.match(r.stderr, /Could not find the file/);
        continue;
      }
      const found = fs.existsSync(dest) ? snapshotTree(path.dirname(dest)).join(' ') : '';
      assert.doesNotMatch(found, /secret/, `${c}: cp ${p} copied host files out: ${found}`);
    }
    // Into it: nothing lands on the host (an error, or a write inside the root).
    const into: [string, string][] = [...escapes.map((p): [string, string] => ['dir', p]), ['file', '/v/'], ['file', '/f'], ['file', '/chain1/new'], ['dir/.', '/own/']];
    for (const [what, p] of into) {
      const r = ply(root, ['cp', path.join(local, what), `${c}:${p}`]);
      assert.ok(r.code === 0 || r.stderr.trim().split('\n').length === 1, `${c} ${what} -> ${p}: ${r.stderr}`);
    }
    assert.deepEqual(snapshotTree(outside), before, `${c}: the host directory changed`);
    assert.equal(fs.readFileSync(path.join(outside, 'secret'), 'utf8'), 'host secret\n');
    if (f.running) plyOk(root, ['rm', '-f', c]);
  }
});

test('ply cp holds while a running container swaps a directory for a symlink to the host', () => {
  const root = tempDir();
  const outside = tempDir('ply-outside-');
  fs.mkdirSync(path.join(outside, 'sub'));
  fs.writeFileSync(path.join(outside, 'sub', 'secret'), 'host secret\n');
  const before = snapshotTree(outside);
  plyOk(root, ['import', busyboxTar(), 'bb']);
  for (const env of [{}, { PLY_STORAGE_DRIVER: 'vfs' }]) {
    const c = `swap${Object.keys(env).length}`;
    const loop = `while :; do rm -rf /s; mkdir -p /s/sub; echo inner > /s/sub/secret; rm -rf /s; ln -s ${outside} /s; done`;
    plyOk(root, ['run', '--network', 'none', '-d', '--name', c, 'bb', 'sh', '-c', loop], { env });
    const local = tempDir();
    fs.writeFileSync(path.join(local, 'secret'), 'planted\n');
    for (let i = 0; i < 6; i++) {
      ply(root, ['cp', path.join(local, 'secret'), `${c}:/s/sub/secret`]);
      ply(root, ['cp', local + '/.', `${c}:/s/sub/`]);
      const out = path.join(tempDir(), 'out');
      ply(root, ['cp', `${c}:/s/sub`, out]);
      ply(root, ['cp', `${c}:/s/`, out + '2']);
      const got = snapshotTree(path.dirname(out)).filter((l) => {
        const p = path.join(path.dirname(out), l.split(' ')[0]!);
        return fs.lstatSync(p).isFile() && fs.readFileSync(p, 'utf8').includes('host');
      });
      assert.deepEqual(got, [], `copied host files out: ${got.join(', ')}`);
    }
    plyOk(root, ['rm', '-f', c]);
    assert.deepEqual(snapshotTree(outside), before, 'the host directory changed');
    assert.equal(fs.readFileSync(path.join(outside, 'sub', 'secret'), 'utf8'), 'host secret\n');
  }
});
