// End-to-end: hostile layers through `ply import` and `ply run` write nothing outside the container's root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { busyboxTar, ply, plyOk, snapshotTree, tempDir } from '../helpers.js';
import { startDistribution } from '../registry-peer.js';

/** Builds a tar with Python's tarfile from a list of [kind, name, arg] entries. */
function hostileTar(file: string, entries: [string, string, string?][]): void {
  const script = `
import io, sys, tarfile, json
entries = json.loads(sys.argv[2])
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:
    for kind, name, arg in entries:
        ti = tarfile.TarInfo(name)
        ti.mtime = 1700000000
        if kind == 'file':
            data = (arg or 'pwned').encode()
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        elif kind == 'dir':
            ti.type = tarfile.DIRTYPE; ti.mode = 0o755; t.addfile(ti)
        elif kind == 'symlink':
            ti.type = tarfile.SYMTYPE; ti.linkname = arg; t.addfile(ti)
        elif kind == 'link':
            ti.type = tarfile.LNKTYPE; ti.linkname = arg; t.addfile(ti)
`;
  execFileSync('python3', ['-c', script, file, JSON.stringify(entries.map(([k, n, a]) => [k, n, a ?? null]))]);
}

test('hostile layers through import, load and pull: .., absolute paths, symlink and hardlink escapes are refused or confined', async () => {
  const root = tempDir();
  const outside = tempDir('ply-outside-');
  fs.writeFileSync(path.join(outside, 'victim'), 'original\n');
  const rel = path.relative('/', outside);
  const hostnameBefore = fs.statSync('/etc/hostname');
  const hostnameText = fs.readFileSync('/etc/hostname', 'utf8');
  const before = snapshotTree(outside);
  const dir = tempDir();
  const reg = await startDistribution();
  const cases: Record<string, [string, string, string?][]> = {
    dotdot: [['file', `../../../../../../${rel}/evil`]],
    nested: [['dir', 'a'], ['file', `a/../../../../../../../${rel}/evil2`]],
    absolute: [['file', `/${rel}/evil3`]],
    symlinkParent: [['symlink', 'esc', outside], ['file', 'esc/evil4']],
    symlinkRelative: [['symlink', 'up', '../../../../../../../..'], ['file', `up/${rel}/evil5`]],
    hardlinkHost: [['link', 'hn', '/etc/hostname'], ['file', 'hn', 'overwritten']],
    hardlinkOut: [['link', 'victim', `../../../../../../${rel}/victim`]],
    symlinkThenFile: [['symlink', 'victim', `${outside}/victim`], ['file', 'victim', 'replaced']],
  };
  for (const [name, entries] of Object.entries(cases)) {
    const tar = path.join(dir, `${name}.tar`);
    hostileTar(tar, entries);
    const imp = ply(root, ['import', tar, `hostile:${name.toLowerCase()}`]);
    if (imp.code !== 0) {
      assert.equal(imp.stderr.trim().split('\n').length, 1, `${name}: ${imp.stderr}`);
      continue;
    }
    const tag = `hostile:${name.toLowerCase()}`;
    const runIn = (store: string, ref: string) => {
      const run = ply(store, ['run', '--rm', ref, '/nonexistent']);
      // The layer has no binaries: the run fails either at unpack (refused) or at exec (127); never outside.
      assert.notEqual(run.code, 0, name);
      assert.equal(run.stderr.trim().split('\n').length, 1, `${name}: ${run.stderr}`);
    };
    runIn(root, tag);
    // The same layer through save → load into another store…
    const archive = path.join(dir, `${name}.archive.tar`);
    plyOk(root, ['save', '-o', archive, tag]);
    const loaded = tempDir();
    plyOk(loaded, ['load', '-i', archive]);
    runIn(loaded, tag);
    // …and through a registry: push, then pull into a fresh store.
    const remote = `${reg.domain}/hostile/${name.toLowerCase()}:v1`;
    plyOk(root, ['tag', tag, remote]);
    plyOk(root, ['push', remote]);
    const pulled = tempDir();
    plyOk(pulled, ['pull', remote]);
    runIn(pulled, remote);
  }
  assert.deepEqual(snapshotTree(outside), before, 'nothing written outside the root');
  assert.equal(fs.readFileSync(path.join(outside, 'victim'), 'utf8'), 'original\n');
  assert.equal(fs.statSync(path.join(outside, 'victim')).nlink, 1);
  assert.equal(fs.readFileSync('/etc/hostname', 'utf8'), hostnameText);
  assert.equal(fs.statSync('/etc/hostname').nlink, hostnameBefore.nlink);
  await reg.stop();
  // The busybox base still works in the same store afterwards.
  plyOk(root, ['import', busyboxTar(), 'bb']);
  assert.equal(plyOk(root, ['run', '--rm', 'bb', 'echo', 'ok']), 'ok\n');
});
