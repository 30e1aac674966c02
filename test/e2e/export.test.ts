// End-to-end: `ply export` of a stopped container (its layers merged without a mount, written with synchronous
// writes) gives the same bytes as the export of the same container while it runs (read through its mounted
// rootfs), for a container whose image has several layers with deletions and whose own layer writes, deletes,
// hardlinks, replaces files by directories and sets xattrs; -o, stdout to a file and stdout to a pipe agree; -o
// never leaves a partial or temporary file.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import * as native from '../../src/native/index.js';
import { busyboxTar, ply, plyOk, PLY, tempDir } from '../helpers.js';

let root: string;
before(() => {
  root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'base:v1']);
  // A second layer with deletions (whiteouts), a directory recreated (opaque) and a file that will become a dir.
  const script = [
    'rm /etc/motd; rm -r /var; mkdir -p /var/lib; echo db > /var/lib/db',
    'mkdir -p /opt/app; echo v1 > /opt/app/conf; echo f > /opt/file-then-dir; echo gone > /opt/gone; ln /opt/app/conf /opt/app/conf-link',
  ];
  plyOk(root, ['run', '--name', 'l2', 'base:v1', 'sh', '-c', script.join('; ')]);
  plyOk(root, ['commit', 'l2', 'img:v2']);
  plyOk(root, ['rm', 'l2']);
});

const listing = (file: string) => execFileSync('tar', ['--numeric-owner', '--full-time', '-tvf', file], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });

test("a stopped container's export is byte for byte its export while it ran", () => {
  const id = plyOk(root, ['run', '-d', '--name', 'live', 'img:v2', 'sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done']).trim();
  plyOk(root, ['exec', 'live', 'sh', '-c', [
    'echo new > /etc/new; ln /etc/new /etc/new-link; echo changed > /opt/app/conf',
    'rm /opt/gone; rm /opt/file-then-dir; mkdir /opt/file-then-dir; echo in > /opt/file-then-dir/in',
    'rm -r /opt/app; mkdir /opt/app; echo fresh > /opt/app/only; mkfifo /opt/fifo; ln -s /etc/new /opt/sym',
  ].join('; ')]);
  native.lsetxattr(path.join(root, 'containers', id, 'upper', 'etc', 'new'), 'user.note', Buffer.from('kept'));

  const dir = tempDir();
  const running = path.join(dir, 'running.tar');
  const stopped = path.join(dir, 'stopped.tar');
  plyOk(root, ['export', '-o', running, 'live']);
  plyOk(root, ['stop', '-t', '5', 'live']);
  plyOk(root, ['export', '-o', stopped, 'live']);

  const names = execFileSync('tar', ['-tf', stopped], { encoding: 'utf8' }).split('\n');
  for (const n of ['etc/new', 'etc/new-link', 'opt/app/only', 'opt/file-then-dir/in', 'opt/fifo', 'opt/sym', 'var/lib/db']) {
    assert.ok(names.includes(n), `${n} exported`);
  }
  for (const n of ['etc/motd', 'opt/gone', 'opt/app/conf', 'opt/app/conf-link', 'var/log/']) assert.ok(!names.includes(n), `${n} not exported`);
  assert.ok(!names.some((n) => n.includes('.wh.')), 'no whiteouts');
  assert.match(listing(stopped), /^hrw-r--r-- 0\/0 +0 .* etc\/new-link link to etc\/new$/m);
  assert.equal(listing(stopped), listing(running));
  assert.ok(fs.readFileSync(stopped).equals(fs.readFileSync(running)), 'same bytes');
  const pax = execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-tvvf', stopped], { encoding: 'utf8' });
  assert.match(pax, /x: +4 user\.note/, 'xattr of the container layer exported');

  // stdout redirected to a file (written like -o) and to a pipe (streamed) give the same bytes.
  const viaFile = path.join(dir, 'stdout.tar');
  const fd = fs.openSync(viaFile, 'w');
  const r = spawnSync(PLY, ['export', 'live'], { env: { ...process.env, PLY_ROOT: root }, stdio: ['ignore', fd, 'pipe'] });
  fs.closeSync(fd);
  assert.equal(r.status, 0, r.stderr?.toString());
  assert.ok(fs.readFileSync(viaFile).equals(fs.readFileSync(stopped)), 'stdout to a file');
  const piped = execFileSync(PLY, ['export', 'live'], { env: { ...process.env, PLY_ROOT: root }, maxBuffer: 1 << 28 });
  assert.ok(piped.equals(fs.readFileSync(stopped)), 'stdout to a pipe');
  plyOk(root, ['rm', 'live']);
});

test('export -o replaces the file only once complete and leaves no temporary file; a missing directory is an error', () => {
  plyOk(root, ['create', '--name', 'idle', 'base:v1', 'true']);
  const dir = tempDir();
  const file = path.join(dir, 'fs.tar');
  fs.writeFileSync(file, 'old');
  plyOk(root, ['export', '-o', file, 'idle']);
  assert.deepEqual(fs.readdirSync(dir), ['fs.tar']);
  assert.ok(execFileSync('tar', ['-tf', file], { encoding: 'utf8' }).split('\n').includes('bin/busybox'));

  const missing = ply(root, ['export', '-o', path.join(dir, 'nope', 'fs.tar'), 'idle']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /invalid output path: directory ".*\/nope" does not exist/);
  const gone = ply(root, ['export', '-o', file, 'no-such-container']);
  assert.notEqual(gone.code, 0);
  assert.deepEqual(fs.readdirSync(dir), ['fs.tar']);
  assert.equal(fs.readFileSync(file, 'utf8').length > 3, true, 'the earlier export is still there');
  plyOk(root, ['rm', 'idle']);
});
