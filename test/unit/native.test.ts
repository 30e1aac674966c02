// The ply-native addon: mknod, l*xattr, mount/umount2 (needs root, as ply does).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as native from '../../src/native/index.js';
import { tempDir } from '../helpers.js';

function isMountpoint(dir: string): boolean {
  const real = fs.realpathSync(dir);
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === real);
}

function errCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as NodeJS.ErrnoException).code;
  }
  return undefined;
}

describe('ply-native', () => {
  it('exports constants equal to the addon values', () => {
    const c = native.nativeConstants();
    for (const k of ['MS_RDONLY', 'MS_NOSUID', 'MS_NODEV', 'MS_NOEXEC', 'MS_BIND', 'MS_REC', 'MS_PRIVATE', 'MS_REMOUNT', 'MS_SLAVE', 'MS_SHARED', 'MS_RELATIME', 'MS_STRICTATIME', 'MNT_DETACH', 'MNT_FORCE', 'S_IFCHR', 'S_IFBLK', 'S_IFIFO', 'S_IFREG', 'S_IFSOCK', 'RESOLVE_NO_XDEV', 'RESOLVE_NO_MAGICLINKS', 'RESOLVE_NO_SYMLINKS', 'RESOLVE_BENEATH', 'RESOLVE_IN_ROOT', 'LOCK_SH', 'LOCK_EX', 'LOCK_NB', 'LOCK_UN']) {
      assert.equal((native as unknown as Record<string, number>)[k], c[k], k);
    }
  });

  it('mknod makes char devices, block devices and fifos', () => {
    const d = tempDir();
    native.mknod(path.join(d, 'null0'), native.S_IFCHR | 0o600, 0, 0);
    let st = fs.lstatSync(path.join(d, 'null0'));
    assert.ok(st.isCharacterDevice());
    assert.equal(st.rdev, 0);
    assert.equal(st.mode & 0o7777, 0o600);

    native.mknod(path.join(d, 'null'), native.S_IFCHR | 0o666, 1, 3);
    st = fs.lstatSync(path.join(d, 'null'));
    assert.ok(st.isCharacterDevice());
    assert.equal(st.rdev, (1 << 8) | 3);

    native.mknod(path.join(d, 'loop'), native.S_IFBLK | 0o660, 7, 300);
    st = fs.lstatSync(path.join(d, 'loop'));
    assert.ok(st.isBlockDevice());
    // glibc's makedev: minor's low 8 bits, major's 12 bits, then minor's high bits.
    assert.equal(st.rdev, (300 & 0xff) | (7 << 8) | ((300 & ~0xff) << 12));

    native.mknod(path.join(d, 'fifo'), native.S_IFIFO | 0o640, 0, 0);
    st = fs.lstatSync(path.join(d, 'fifo'));
    assert.ok(st.isFIFO());
    assert.equal(st.mode & 0o7777, 0o640 & ~process.umask());

    assert.throws(() => native.mknod(path.join(d, 'fifo'), native.S_IFIFO | 0o644, 0, 0), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'EEXIST');
      assert.equal(err.message, `mknod ${path.join(d, 'fifo')}: File exists`);
      assert.equal(err.syscall, 'mknod');
      assert.equal(err.errno, -17);
      return true;
    });
    assert.equal(errCode(() => native.mknod(path.join(d, 'no/such'), native.S_IFIFO | 0o644, 0, 0)), 'ENOENT');
  });

  it('l*xattr on files and symlinks', () => {
    const d = tempDir();
    const f = path.join(d, 'file');
    fs.writeFileSync(f, 'x');
    assert.deepEqual(native.llistxattr(f), []);
    assert.equal(native.lgetxattr(f, 'user.x'), null);
    native.lsetxattr(f, 'user.x', Buffer.from('hello'));
    native.lsetxattr(f, 'user.empty', Buffer.alloc(0));
    native.lsetxattr(f, 'trusted.t', new Uint8Array([0, 1, 2, 255]));
    assert.deepEqual(native.lgetxattr(f, 'user.x'), Buffer.from('hello'));
    assert.deepEqual(native.lgetxattr(f, 'user.empty'), Buffer.alloc(0));
    assert.deepEqual(native.lgetxattr(f, 'trusted.t'), Buffer.from([0, 1, 2, 255]));
    assert.deepEqual(native.llistxattr(f).sort(), ['trusted.t', 'user.empty', 'user.x']);
    const big = Buffer.alloc(3000, 7);
    native.lsetxattr(f, 'user.big', big);
    assert.deepEqual(native.lgetxattr(f, 'user.big'), big);
    native.lremovexattr(f, 'user.big');
    assert.equal(native.lgetxattr(f, 'user.big'), null);

    const t = path.join(d, 'target');
    fs.writeFileSync(t, 't');
    const s = path.join(d, 'link');
    fs.symlinkSync('target', s);
    // user.* xattrs are not allowed on symlinks.
    assert.equal(errCode(() => native.lsetxattr(s, 'user.x', Buffer.from('1'))), 'EPERM');
    // trusted.* are (as root), and land on the symlink, not on its target.
    native.lsetxattr(s, 'trusted.sym', Buffer.from('on-link'));
    assert.deepEqual(native.lgetxattr(s, 'trusted.sym'), Buffer.from('on-link'));
    assert.deepEqual(native.llistxattr(s), ['trusted.sym']);
    assert.equal(native.lgetxattr(t, 'trusted.sym'), null);
    assert.deepEqual(native.llistxattr(t), []);
    // A dangling symlink is fine too: nothing is followed.
    const dangling = path.join(d, 'dangling');
    fs.symlinkSync('/nonexistent/x', dangling);
    native.lsetxattr(dangling, 'trusted.a', Buffer.from('b'));
    assert.deepEqual(native.llistxattr(dangling), ['trusted.a']);

    // fsetxattr on an open descriptor.
    const fd = fs.openSync(f, 'r');
    try {
      native.fsetxattr(fd, 'user.fd', Buffer.from('via fd'));
    } finally {
      fs.closeSync(fd);
    }
    assert.deepEqual(native.lgetxattr(f, 'user.fd'), Buffer.from('via fd'));
    assert.equal(errCode(() => native.fsetxattr(987_654, 'user.fd', Buffer.from('x'))), 'EBADF');

    assert.equal(errCode(() => native.llistxattr(path.join(d, 'missing'))), 'ENOENT');
    assert.equal(errCode(() => native.lgetxattr(path.join(d, 'missing'), 'user.x')), 'ENOENT');
    assert.equal(errCode(() => native.lsetxattr(f, 'bogus.x', Buffer.from('1'))), 'EOPNOTSUPP');
  });

  it('mounts a tmpfs and unmounts it', () => {
    const d = tempDir();
    fs.writeFileSync(path.join(d, 'under'), 'hidden');
    native.mount('tmpfs', d, 'tmpfs', native.MS_NOSUID | native.MS_NODEV, 'size=1m,mode=0700');
    try {
      assert.ok(isMountpoint(d));
      assert.deepEqual(fs.readdirSync(d), []);
      assert.equal(fs.statSync(d).mode & 0o777, 0o700);
      fs.writeFileSync(path.join(d, 'on-tmpfs'), 'x');
      // Remount read-only.
      native.mount('tmpfs', d, null, native.MS_REMOUNT | native.MS_RDONLY | native.MS_NOSUID | native.MS_NODEV, null);
      assert.equal(errCode(() => fs.writeFileSync(path.join(d, 'ro'), 'x')), 'EROFS');
    } finally {
      native.umount2(d, 0);
    }
    assert.ok(!isMountpoint(d));
    assert.deepEqual(fs.readdirSync(d), ['under']);
    assert.equal(errCode(() => native.umount2(d, 0)), 'EINVAL');
  });

  it('bind-mounts and detaches', () => {
    const d = tempDir();
    fs.mkdirSync(path.join(d, 'src'));
    fs.mkdirSync(path.join(d, 'dst'));
    fs.writeFileSync(path.join(d, 'src', 'f'), 'bound');
    native.mount(path.join(d, 'src'), path.join(d, 'dst'), null, native.MS_BIND, null);
    try {
      native.mount('none', path.join(d, 'dst'), null, native.MS_PRIVATE, null);
      assert.equal(fs.readFileSync(path.join(d, 'dst', 'f'), 'utf8'), 'bound');
    } finally {
      native.umount2(path.join(d, 'dst'), native.MNT_DETACH);
    }
    assert.deepEqual(fs.readdirSync(path.join(d, 'dst')), []);
  });

  it('mounts an overlay whose writes land in the upper dir', () => {
    const d = tempDir();
    for (const s of ['lower', 'upper', 'work', 'merged']) fs.mkdirSync(path.join(d, s));
    fs.writeFileSync(path.join(d, 'lower', 'a'), 'lower-a');
    fs.writeFileSync(path.join(d, 'lower', 'b'), 'lower-b');
    const m = path.join(d, 'merged');
    native.mount('overlay', m, 'overlay', 0, `lowerdir=${d}/lower,upperdir=${d}/upper,workdir=${d}/work`);
    try {
      assert.deepEqual(fs.readdirSync(m).sort(), ['a', 'b']);
      fs.writeFileSync(path.join(m, 'c'), 'new');
      fs.writeFileSync(path.join(m, 'a'), 'changed');
      fs.unlinkSync(path.join(m, 'b'));
    } finally {
      native.umount2(m, 0);
    }
    assert.equal(fs.readFileSync(path.join(d, 'upper', 'c'), 'utf8'), 'new');
    assert.equal(fs.readFileSync(path.join(d, 'upper', 'a'), 'utf8'), 'changed');
    assert.equal(fs.readFileSync(path.join(d, 'lower', 'a'), 'utf8'), 'lower-a');
    const wh = fs.lstatSync(path.join(d, 'upper', 'b'));
    assert.ok(wh.isCharacterDevice() && wh.rdev === 0, 'deleting a lower file leaves a 0/0 whiteout');
  });

  it('reports errors with .code and validates arguments', () => {
    const d = tempDir();
    assert.throws(
      () => native.mount('tmpfs', path.join(d, 'missing'), 'tmpfs', 0, null),
      (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && e.message === `mount ${path.join(d, 'missing')}: No such file or directory`,
    );
    assert.equal(errCode(() => native.mount('x', d, 'no-such-fs-type', 0, null)), 'ENODEV');
    assert.throws(() => native.mknod(1 as unknown as string, 0, 0, 0), TypeError);
    assert.throws(() => native.mknod('a\0b', native.S_IFIFO, 0, 0), TypeError);
    assert.throws(() => native.mknod(path.join(d, 'x'), -1, 0, 0), RangeError);
    assert.throws(() => native.lsetxattr(path.join(d, 'x'), 'user.x', 'str' as unknown as Buffer), TypeError);
  });
});
