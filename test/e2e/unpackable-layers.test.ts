// End-to-end: layers that could never be unpacked ('..', over-long components, absurd depth, '.wh..' names,
// hardlinks to themselves, out-of-range PAX ids) are refused by import and load in one line, nothing stored,
// instead of failing at the first run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ply, plyOk, snapshotTree, tempDir } from '../helpers.js';

/** A tar (Python's tarfile, PAX format) with one hostile entry after an ordinary one. */
function layer(file: string, entry: { name: string; kind?: 'file' | 'link'; link?: string; uid?: number }): void {
  const script = `
import io, sys, json, tarfile
e = json.loads(sys.argv[2])
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:
    ok = tarfile.TarInfo('ok'); ok.size = 2; ok.mtime = 1700000000; t.addfile(ok, io.BytesIO(b'ok'))
    ti = tarfile.TarInfo(e['name']); ti.mtime = 1700000000
    if e.get('uid') is not None:
        ti.uid = e['uid']; ti.pax_headers = {'uid': str(e['uid'])}
    if e.get('kind') == 'link':
        ti.type = tarfile.LNKTYPE; ti.linkname = e['link']; t.addfile(ti)
    else:
        ti.size = 5; t.addfile(ti, io.BytesIO(b'pwned'))
`;
  execFileSync('python3', ['-c', script, file, JSON.stringify(entry)]);
}

/** A docker-archive holding `layerTar` as its one layer. */
function archiveOf(dir: string, layerTar: string): string {
  const diffId = `sha256:${createHash('sha256').update(fs.readFileSync(layerTar)).digest('hex')}`;
  fs.copyFileSync(layerTar, path.join(dir, 'layer.tar'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [diffId] } }));
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify([{ Config: 'config.json', RepoTags: ['bad:v1'], Layers: ['layer.tar'] }]));
  execFileSync('tar', ['-C', dir, '-cf', path.join(dir, 'archive.tar'), 'manifest.json', 'config.json', 'layer.tar']);
  return path.join(dir, 'archive.tar');
}

test('import and load refuse layers that could never be unpacked: one line, nothing stored', () => {
  const cases: Record<string, Parameters<typeof layer>[1]> = {
    dotdot: { name: 'a/../../escape' },
    longComponent: { name: `dir/${'n'.repeat(300)}` },
    deep: { name: `${'d/'.repeat(2100)}f` },
    whiteoutDot: { name: 'dir/.wh..' },
    whiteoutDotDot: { name: '.wh...' },
    selfLink: { name: 'loop', kind: 'link', link: './loop' },
    hugeUid: { name: 'owned', uid: 2 ** 40 },
  };
  const root = tempDir();
  plyOk(root, ['images']);
  const before = snapshotTree(root).filter((l) => !l.startsWith('ply.db'));
  for (const [name, entry] of Object.entries(cases)) {
    const dir = tempDir();
    const tar = path.join(dir, `${name}.tar`);
    layer(tar, entry);
    for (const args of [['import', tar, `bad:${name.toLowerCase()}`], ['load', '-i', archiveOf(tempDir(), tar)]]) {
      const r = ply(root, args);
      assert.notEqual(r.code, 0, `${name}: ${args[0]} accepted it`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${name}: ${r.stderr}`);
      assert.match(r.stderr, /^Error: .*(\.\.|longer than|invalid whiteout|links to itself|out of range)/, `${name}: ${r.stderr}`);
    }
  }
  assert.equal(plyOk(root, ['images', '-q']).trim(), '');
  // Nothing stored: no blob, no ingest, no layer (GC of what a refused load wrote is part of the refusal).
  assert.deepEqual(snapshotTree(root).filter((l) => !l.startsWith('ply.db')), before);
  // An ordinary layer with the same shape is still taken.
  const fine = path.join(tempDir(), 'fine.tar');
  layer(fine, { name: 'dir/ordinary', uid: 1000 });
  plyOk(root, ['import', fine, 'fine:v1']);
});
