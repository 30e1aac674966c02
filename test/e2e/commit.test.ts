// End-to-end: commit and export through bin/ply, on the real runc and overlayfs.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { busyboxTar, ply, plyOk, tempDir } from '../helpers.js';

let root: string;
before(() => {
  root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'base:v1']);
});

const inspect = (ref: string) => JSON.parse(plyOk(root, ['image', 'inspect', ref]))[0];

test("the seed's flow: change files, commit, run the new image; delete a file, commit, it is gone", () => {
  plyOk(root, ['run', '--name', 'w1', 'base:v1', 'sh', '-c', 'echo custom > /etc/motd; mkdir -p /app; echo hi > /app/hello']);
  const id = plyOk(root, ['container', 'commit', '-a', 'Ann <ann@example.com>', '-m', 'add app', '-c', 'CMD ["cat", "/app/hello"]', '-c', 'ENV MODE=prod', 'w1', 'custom:v1']).trim();
  assert.match(id, /^sha256:[0-9a-f]{64}$/);
  assert.equal(plyOk(root, ['run', '--rm', 'custom:v1']), 'hi\n');
  assert.equal(plyOk(root, ['run', '--rm', 'custom:v1', 'sh', '-c', 'cat /etc/motd; echo $MODE']), 'custom\nprod\n');
  const base = inspect('base:v1');
  const custom = inspect('custom:v1');
  assert.equal(custom.RootFS.Layers.length, 2);
  assert.equal(custom.RootFS.Layers[0], base.RootFS.Layers[0], 'the base layer is shared');
  assert.equal(custom.Author, 'Ann <ann@example.com>');
  assert.equal(custom.Comment, 'add app');
  assert.equal(custom.Parent, base.Id);
  assert.deepEqual(custom.Config.Cmd, ['cat', '/app/hello']);
  assert.match(plyOk(root, ['history', 'custom:v1']), /add app/);

  plyOk(root, ['run', '--name', 'w2', 'custom:v1', 'sh', '-c', 'rm /app/hello /etc/motd; rm -r /var; mkdir /var; echo new > /var/only']);
  plyOk(root, ['commit', 'w2', 'custom:v2']);
  const v2 = plyOk(root, ['run', '--rm', 'custom:v2', 'sh', '-c', 'ls -A /app; ls /etc/motd 2>/dev/null || echo gone; ls -A /var']);
  assert.equal(v2, 'gone\nonly\n', 'app/hello and motd deleted, /var replaced by a directory holding only the new file');
  assert.equal(inspect('custom:v2').RootFS.Layers.length, 3);
  // The layer tar holds whiteouts for the deletions and an opaque marker for the recreated directory.
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'blobs', 'sha256', inspect('custom:v2').Descriptor.digest.slice(7)), 'utf8'));
  const top = path.join(root, 'blobs', 'sha256', manifest.layers[2].digest.slice(7));
  const names = execFileSync('tar', ['-tf', top], { encoding: 'utf8' }).split('\n');
  assert.ok(names.includes('app/.wh.hello'), names.join(','));
  assert.ok(names.includes('etc/.wh.motd'), names.join(','));
  assert.ok(names.includes('var/.wh..wh..opq'), names.join(','));
  plyOk(root, ['rm', 'w1', 'w2']);
});

test('committing an unchanged container twice stores one layer; SOURCE_DATE_EPOCH makes it reproducible', () => {
  plyOk(root, ['run', '--name', 'r1', 'base:v1', 'sh', '-c', 'echo same > /same; touch -d 2024-01-01 /same']);
  const env = { SOURCE_DATE_EPOCH: '1700000000' };
  const a = plyOk(root, ['commit', 'r1', 'rep:a'], { env }).trim();
  const b = plyOk(root, ['commit', 'r1', 'rep:b'], { env }).trim();
  assert.equal(a, b, 'same content, same time: same image ID');
  const la = inspect('rep:a').RootFS.Layers[1];
  assert.equal(inspect('rep:b').RootFS.Layers[1], la);
  plyOk(root, ['rm', 'r1']);
});

test('export flattens the filesystem; import reads it back and it runs', () => {
  plyOk(root, ['run', '--name', 'ex', 'base:v1', 'sh', '-c', 'echo exported > /data.txt; rm /etc/motd']);
  const dir = tempDir();
  const file = path.join(dir, 'fs.tar');
  plyOk(root, ['export', '-o', file, 'ex']);
  const names = execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).split('\n');
  assert.ok(names.includes('data.txt'));
  assert.ok(!names.includes('etc/motd'));
  assert.ok(!names.some((n) => n.includes('.wh.')), 'no whiteouts in an export');
  // stdout form gives the same bytes.
  const viaStdout = ply(root, ['export', 'ex']);
  assert.equal(viaStdout.code, 0);
  const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
  assert.equal(sha(execFileSync(path.join(process.cwd(), 'bin', 'ply'), ['export', 'ex'], { env: { ...process.env, PLY_ROOT: root }, maxBuffer: 1 << 28 })), sha(fs.readFileSync(file)));
  plyOk(root, ['import', file, 'flat:v1']);
  assert.equal(plyOk(root, ['run', '--rm', 'flat:v1', 'sh', '-c', 'cat /data.txt; ls /etc/motd 2>&1 || true']), 'exported\nls: /etc/motd: No such file or directory\n');
  assert.equal(inspect('flat:v1').RootFS.Layers.length, 1);
  plyOk(root, ['rm', 'ex']);
});
