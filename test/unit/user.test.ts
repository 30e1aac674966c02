import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { resolveUser } from '../../src/runtime/user.js';
import { resolveInRoot } from '../../src/util/rootpath.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { busyboxTar, tempDir } from '../helpers.js';

const PASSWD = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false

# a comment
app:x:1000:1000:app:/home/app:/bin/sh
nohome:x:1001:1001:::/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
`;
const GROUP = `root:x:0:
wheel:x:10:root,app
app:x:1000:
audio:x:29:daemon,app
video:x:44:
nogroup:x:65534:
`;

function makeRoot(files: Record<string, string> = { 'etc/passwd': PASSWD, 'etc/group': GROUP }): string {
  const root = tempDir('ply-user-');
  fs.mkdirSync(path.join(root, 'etc'));
  for (const [rel, content] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), content);
  }
  return root;
}

function invalid(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(err)}`);
    assert.equal(err.message, message);
    assert.equal(err.exitCode, 1); // `run` turns it into 125, `exec` into 126 (docker's codes)
    return true;
  });
}

describe('resolveUser', () => {
  let root = '';
  before(() => {
    root = makeRoot();
  });

  it('empty → root with its supplementary groups', () => {
    const want = { uid: 0, gid: 0, additionalGids: [0, 10], home: '/root' };
    assert.deepEqual(resolveUser(root, ''), want);
    assert.deepEqual(resolveUser(root, undefined), want);
  });

  it('by name and by uid', () => {
    const app = { uid: 1000, gid: 1000, additionalGids: [1000, 10, 29], home: '/home/app' };
    assert.deepEqual(resolveUser(root, 'app'), app);
    assert.deepEqual(resolveUser(root, '1000'), app);
    assert.deepEqual(resolveUser(root, 'daemon'), { uid: 1, gid: 1, additionalGids: [1, 29], home: '/usr/sbin' });
    assert.deepEqual(resolveUser(root, 'nobody'), { uid: 65534, gid: 65534, additionalGids: [65534], home: '/nonexistent' });
    assert.deepEqual(resolveUser(root, 'nohome'), { uid: 1001, gid: 1001, additionalGids: [1001], home: '/' });
  });

  it('a numeric uid without a passwd entry is allowed (gid 0, home /)', () => {
    assert.deepEqual(resolveUser(root, '4242'), { uid: 4242, gid: 0, additionalGids: [0], home: '/' });
  });

  it('explicit group: by name or gid, no supplementary groups', () => {
    assert.deepEqual(resolveUser(root, 'app:audio'), { uid: 1000, gid: 29, additionalGids: [29], home: '/home/app' });
    assert.deepEqual(resolveUser(root, 'app:44'), { uid: 1000, gid: 44, additionalGids: [44], home: '/home/app' });
    assert.deepEqual(resolveUser(root, '1000:4343'), { uid: 1000, gid: 4343, additionalGids: [4343], home: '/home/app' });
    assert.deepEqual(resolveUser(root, '4242:4343'), { uid: 4242, gid: 4343, additionalGids: [4343], home: '/' });
    assert.deepEqual(resolveUser(root, '4242:video'), { uid: 4242, gid: 44, additionalGids: [44], home: '/' });
    assert.deepEqual(resolveUser(root, 'root:root'), { uid: 0, gid: 0, additionalGids: [0], home: '/root' });
  });

  it('unknown names are errors, with docker\'s messages', () => {
    invalid(() => resolveUser(root, 'nosuchuser'), 'unable to find user nosuchuser: no matching entries in passwd file');
    invalid(() => resolveUser(root, 'nosuchuser:app'), 'unable to find user nosuchuser: no matching entries in passwd file');
    invalid(() => resolveUser(root, 'app:nosuchgroup'), 'unable to find group nosuchgroup: no matching entries in group file');
    invalid(() => resolveUser(root, '4242:nosuchgroup'), 'unable to find group nosuchgroup: no matching entries in group file');
  });

  it('ids out of range', () => {
    invalid(() => resolveUser(root, '-1'), 'uids and gids must be in range 0-2147483647');
    invalid(() => resolveUser(root, '2147483648'), 'uids and gids must be in range 0-2147483647');
    invalid(() => resolveUser(root, 'app:-5'), 'uids and gids must be in range 0-2147483647');
  });

  it('missing /etc/passwd and /etc/group', () => {
    const empty = makeRoot({});
    assert.deepEqual(resolveUser(empty, ''), { uid: 0, gid: 0, additionalGids: [0], home: '/' });
    assert.deepEqual(resolveUser(empty, '1000'), { uid: 1000, gid: 0, additionalGids: [0], home: '/' });
    assert.deepEqual(resolveUser(empty, '1000:1000'), { uid: 1000, gid: 1000, additionalGids: [1000], home: '/' });
    invalid(() => resolveUser(empty, 'app'), 'unable to find user app: no matching entries in passwd file');
    const noGroup = makeRoot({ 'etc/passwd': PASSWD });
    assert.deepEqual(resolveUser(noGroup, 'app'), { uid: 1000, gid: 1000, additionalGids: [1000], home: '/home/app' });
    invalid(() => resolveUser(noGroup, 'app:audio'), 'unable to find group audio: no matching entries in group file');
  });

  it('a symlinked /etc/passwd pointing outside the rootfs never reads the host file', () => {
    const outsideDir = tempDir('ply-user-outside-');
    const outside = path.join(outsideDir, 'passwd');
    fs.writeFileSync(outside, 'evil:x:4444:4444:evil:/evil:/bin/sh\n');
    // Absolute target: resolved inside the rootfs, where it does not exist.
    const abs = makeRoot({ 'etc/group': GROUP });
    fs.symlinkSync(outside, path.join(abs, 'etc/passwd'));
    invalid(() => resolveUser(abs, 'evil'), 'unable to find user evil: no matching entries in passwd file');
    assert.deepEqual(resolveUser(abs, ''), { uid: 0, gid: 0, additionalGids: [0], home: '/' });
    // Relative target climbing out with '..': clamped at the rootfs.
    const rel = makeRoot({});
    fs.symlinkSync(path.relative(path.join(rel, 'etc'), outside), path.join(rel, 'etc/passwd'));
    assert.match(fs.readlinkSync(path.join(rel, 'etc/passwd')), /^\.\.\/\.\.\//);
    invalid(() => resolveUser(rel, 'evil'), 'unable to find user evil: no matching entries in passwd file');
    // /etc itself a symlink to a host directory.
    const etcLink = makeRoot({});
    fs.rmSync(path.join(etcLink, 'etc'), { recursive: true, force: true });
    fs.symlinkSync(outsideDir, path.join(etcLink, 'etc'));
    invalid(() => resolveUser(etcLink, 'evil'), 'unable to find user evil: no matching entries in passwd file');
  });

  it('symlinks that stay inside the rootfs are followed chroot-style', () => {
    const r = makeRoot({ 'lib/db/passwd': PASSWD, 'lib/db/group': GROUP });
    fs.symlinkSync('/lib/db/passwd', path.join(r, 'etc/passwd')); // absolute = relative to the rootfs
    fs.symlinkSync('../../../../lib/db/group', path.join(r, 'etc/group')); // '..' clamps at the rootfs
    assert.deepEqual(resolveUser(r, 'app'), { uid: 1000, gid: 1000, additionalGids: [1000, 10, 29], home: '/home/app' });
  });

  it('a directory or a symlink loop at /etc/passwd counts as missing', () => {
    const dir = makeRoot({ 'etc/passwd/x': '' }); // a directory
    invalid(() => resolveUser(dir, 'app'), 'unable to find user app: no matching entries in passwd file');
    const loop = makeRoot({});
    fs.symlinkSync('/etc/passwd', path.join(loop, 'etc/passwd'));
    invalid(() => resolveUser(loop, 'app'), 'unable to find user app: no matching entries in passwd file');
  });

  it('the busybox fixture rootfs', () => {
    const bb = tempDir('ply-user-bb-');
    execFileSync('tar', ['-xf', busyboxTar(), '-C', bb]);
    assert.deepEqual(resolveUser(bb, ''), { uid: 0, gid: 0, additionalGids: [0], home: '/root' });
    assert.deepEqual(resolveUser(bb, 'app'), { uid: 1000, gid: 1000, additionalGids: [1000], home: '/home/app' });
    assert.deepEqual(resolveUser(bb, 'nobody'), { uid: 65534, gid: 65534, additionalGids: [65534], home: '/nonexistent' });
    assert.deepEqual(resolveUser(bb, 'daemon:nogroup'), { uid: 1, gid: 65534, additionalGids: [65534], home: '/usr/sbin' });
  });
});

describe('resolveInRoot', () => {
  it('clamps .. and absolute symlinks to the root', () => {
    const r = tempDir('ply-inroot-');
    fs.mkdirSync(path.join(r, 'a/b'), { recursive: true });
    fs.symlinkSync('/a', path.join(r, 'abs'));
    fs.symlinkSync('../../../..', path.join(r, 'a/up'));
    assert.equal(resolveInRoot(r, '/../../etc/passwd'), path.join(r, 'etc/passwd'));
    assert.equal(resolveInRoot(r, '/abs/b'), path.join(r, 'a/b'));
    assert.equal(resolveInRoot(r, '/a/up/etc'), path.join(r, 'etc'));
    assert.equal(resolveInRoot(r, '/a/missing/../x'), path.join(r, 'a/x'));
    assert.equal(resolveInRoot(r, '/'), r);
  });
});
