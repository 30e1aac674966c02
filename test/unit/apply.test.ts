// Layer application (src/layer/apply.ts): fidelity against GNU tar, whiteouts in flat and overlay mode, and a
// hostile-layer corpus that must not change anything outside the target directory. Needs root (as ply does).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { InvalidArchiveError } from '../../src/errors.js';
import { applyLayer, normalizeEntryPath } from '../../src/layer/apply.js';
import * as native from '../../src/native/index.js';
import { TarWriter, type EntryType, type TarHeader } from '../../src/tar/index.js';
import { tempDir } from '../helpers.js';
import { describeTree } from '../tree.js';

// ---------------------------------------------------------------------------------------------------------
// Helpers

type Spec = Partial<Omit<TarHeader, 'name'>> & { name: string; type?: EntryType; body?: Buffer | string };

/** A tar built with our TarWriter (which writes whatever names it is given, '..' included). */
async function makeTar(entries: Spec[]): Promise<Buffer> {
  const w = new TarWriter();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of w.stream) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    const { body: b, ...rest } = e;
    const body = b === undefined ? undefined : Buffer.from(b);
    const h: TarHeader = { type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1_600_000_000, ...rest, size: body?.length ?? 0 };
    await w.add(h, body);
  }
  await w.finish();
  await done;
  return Buffer.concat(chunks);
}

async function* once(buf: Buffer): AsyncGenerator<Buffer> {
  // In odd-sized pieces, to exercise bodies split across chunks.
  for (let i = 0; i < buf.length; i += 100_003) yield buf.subarray(i, i + 100_003);
}

function apply(root: string, tar: Buffer, mode: 'flat' | 'overlay' = 'flat') {
  return applyLayer(root, once(tar), { mode });
}


/** Stat of everything at and below `p` (without following symlinks), contents included. */
function snapshot(p: string): string[] {
  const out: string[] = [];
  const walk = (q: string): void => {
    const st = fs.lstatSync(q);
    let extra = '';
    if (st.isFile()) extra = crypto.createHash('sha256').update(fs.readFileSync(q)).digest('hex');
    if (st.isSymbolicLink()) extra = fs.readlinkSync(q);
    out.push(`${q} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.nlink} ${st.ino} ${st.mtimeMs} ${st.ctimeMs} ${extra}`);
    if (st.isDirectory()) for (const n of fs.readdirSync(q).sort()) walk(path.join(q, n));
  };
  walk(p);
  return out;
}

function setTimes(p: string, t: number): void {
  fs.lutimesSync(p, t, t);
}

// ---------------------------------------------------------------------------------------------------------

describe('normalizeEntryPath', () => {
  it('strips ./ and leading slashes, collapses . and empty components', () => {
    assert.equal(normalizeEntryPath('./etc/passwd'), 'etc/passwd');
    assert.equal(normalizeEntryPath('etc/'), 'etc');
    assert.equal(normalizeEntryPath('/abs/evil'), 'abs/evil');
    assert.equal(normalizeEntryPath('//a//./b/.'), 'a/b');
    assert.equal(normalizeEntryPath('././x'), 'x');
    assert.equal(normalizeEntryPath('...'), '...');
    assert.equal(normalizeEntryPath('a/..b/c..'), 'a/..b/c..');
    assert.equal(normalizeEntryPath('.'), null);
    assert.equal(normalizeEntryPath('./'), null);
    assert.equal(normalizeEntryPath('/'), null);
  });
  it("refuses '..' components", () => {
    for (const n of ['..', '../evil', 'a/../../evil', 'a/..', './..', '/../x']) {
      assert.throws(() => normalizeEntryPath(n), (e: Error) => e instanceof InvalidArchiveError && e.message.includes(`'${n}'`), n);
    }
  });
});

describe('applyLayer: fidelity', () => {
  /** A tree with every kind of file system object a layer holds. */
  function makeFixture(src: string): void {
    const mk = (rel: string, mode: number, uid = 0, gid = 0) => {
      fs.mkdirSync(path.join(src, rel));
      fs.chownSync(path.join(src, rel), uid, gid);
      fs.chmodSync(path.join(src, rel), mode);
    };
    const file = (rel: string, content: string | Buffer, mode: number, uid = 0, gid = 0) => {
      fs.writeFileSync(path.join(src, rel), content);
      fs.chownSync(path.join(src, rel), uid, gid);
      fs.chmodSync(path.join(src, rel), mode);
    };
    mk('bin', 0o755);
    file('bin/tool', '#!/bin/sh\necho tool\n', 0o755, 1000, 1000);
    native.lsetxattr(path.join(src, 'bin/tool'), 'user.x', Buffer.from('tool-xattr'));
    file('bin/suid', 'suid', 0o4755);
    file('bin/sgid', 'sgid', 0o2711, 1000, 1000);
    file('bin/cap', 'cap', 0o755);
    // VFS_CAP_REVISION_2, CAP_NET_BIND_SERVICE permitted.
    native.lsetxattr(path.join(src, 'bin/cap'), 'security.capability', Buffer.from('0000000200040000000000000000000000000000', 'hex'));
    mk('etc', 0o755);
    file('etc/hosts', '127.0.0.1 localhost\n', 0o644, 1000, 1000);
    fs.symlinkSync('/etc/hosts', path.join(src, 'etc/link-abs'));
    fs.lchownSync(path.join(src, 'etc/link-abs'), 1000, 1000);
    fs.symlinkSync('hosts', path.join(src, 'etc/link-rel'));
    fs.symlinkSync('../nowhere/at/all', path.join(src, 'etc/dangling'));
    native.lsetxattr(path.join(src, 'etc/link-rel'), 'trusted.sym', Buffer.from('on-the-link'));
    file('etc/hard1', 'shared inode', 0o640, 1000, 1000);
    fs.linkSync(path.join(src, 'etc/hard1'), path.join(src, 'etc/hard2'));
    fs.linkSync(path.join(src, 'etc/hard1'), path.join(src, 'bin/hard3'));
    mk('dev', 0o755);
    native.mknod(path.join(src, 'dev/null'), native.S_IFCHR | 0o666, 1, 3);
    fs.chmodSync(path.join(src, 'dev/null'), 0o666);
    native.mknod(path.join(src, 'dev/zero0'), native.S_IFCHR | 0o600, 0, 0);
    native.mknod(path.join(src, 'dev/loop0'), native.S_IFBLK | 0o660, 7, 0);
    native.mknod(path.join(src, 'dev/fifo'), native.S_IFIFO | 0o640, 0, 0);
    fs.lchownSync(path.join(src, 'dev/fifo'), 1000, 1000);
    mk('tmp', 0o1777);
    mk('home', 0o755);
    mk('home/user', 0o700, 1000, 1000);
    native.lsetxattr(path.join(src, 'home/user'), 'user.dir', Buffer.from('dir-xattr'));
    file('home/user/.profile', 'export A=1\n', 0o600, 1000, 1000);
    file('big', crypto.randomBytes(3 * 1024 * 1024 + 17), 0o644);
    file('empty', '', 0o400);
    mk('deep', 0o755);
    mk('deep/a', 0o750);
    mk('deep/a/b', 0o700, 1000, 1000);
    file('deep/a/b/file', 'deep', 0o644);
    file('ünï cödé (1).txt', 'unicode', 0o644);
    file(`long-${'x'.repeat(150)}`, 'long name', 0o644);
    // Distinct whole-second mtimes; directories last, deepest first, since adding children changes them.
    const all: string[] = [];
    const walk = (rel: string): void => {
      for (const n of fs.readdirSync(path.join(src, rel))) {
        const r = rel ? `${rel}/${n}` : n;
        all.push(r);
        if (fs.lstatSync(path.join(src, r)).isDirectory()) walk(r);
      }
    };
    walk('');
    let t = 1_500_000_000;
    for (const r of all) if (!fs.lstatSync(path.join(src, r)).isDirectory()) setTimes(path.join(src, r), (t += 1000));
    const dirs = all.filter((r) => fs.lstatSync(path.join(src, r)).isDirectory()).sort((a, b) => b.split('/').length - a.split('/').length);
    for (const r of dirs) setTimes(path.join(src, r), (t += 1000));
  }

  it('reproduces a GNU tar archive of a fixture tree (flat and overlay)', async () => {
    const base = tempDir();
    const src = path.join(base, 'src');
    fs.mkdirSync(src);
    makeFixture(src);
    const tarPath = path.join(base, 'fixture.tar');
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '--format=posix', '-cf', tarPath, '-C', src, '.']);
    const tar = fs.readFileSync(tarPath);
    const want = describeTree(src);
    assert.equal(want['bin/suid'].mode, 0o4755);
    assert.deepEqual(want['etc/hard1'].links, ['bin/hard3', 'etc/hard1', 'etc/hard2']);

    for (const mode of ['flat', 'overlay'] as const) {
      const dst = path.join(base, `dst-${mode}`);
      fs.mkdirSync(dst);
      const r = await applyLayer(dst, fs.createReadStream(tarPath, { highWaterMark: 1 << 20 }), { mode });
      assert.deepEqual(describeTree(dst), want, mode);
      let files = 0;
      for (const d of Object.values(want)) if (d.type === 'file') files += d.size!;
      // Hardlinks count once: their bytes are only in the first entry.
      assert.equal(r.size, files - 2 * 'shared inode'.length);
      assert.equal(r.entries, Object.keys(want).length + 1); // plus './'
    }

    // Applying the same layer again over its own result changes nothing (objects are replaced in place).
    const dst = path.join(base, 'dst-flat');
    await apply(dst, tar);
    assert.deepEqual(describeTree(dst), want);
  });

  it('replaces objects of another type, keeps existing directories (flat)', async () => {
    const root = tempDir();
    await apply(
      root,
      await makeTar([
        { name: 'd1/', type: 'dir', mode: 0o755 },
        { name: 'd1/lower', body: 'lower' },
        { name: 'was-file', body: 'f' },
        { name: 'was-dir/', type: 'dir', mode: 0o755 },
        { name: 'was-dir/child', body: 'c' },
        { name: 'was-link', type: 'symlink', linkname: 'd1' },
        { name: 'linked', body: 'inode' },
        { name: 'linked2', type: 'link', linkname: 'linked' },
      ]),
    );
    await apply(
      root,
      await makeTar([
        { name: 'd1/', type: 'dir', mode: 0o700, uid: 1000, gid: 1000, mtime: 1_234_567_890 },
        { name: 'd1/upper', body: 'upper' },
        { name: 'was-file/', type: 'dir', mode: 0o755 },
        { name: 'was-dir', body: 'now a file', mode: 0o600 },
        { name: 'was-link/', type: 'dir', mode: 0o755 },
        { name: 'was-link/x', body: 'x' },
        { name: 'linked2', body: 'new content' },
      ]),
    );
    const t = describeTree(root);
    assert.equal(t['d1'].mode, 0o700);
    assert.equal(t['d1'].uid, 1000);
    assert.equal(t['d1'].mtime, 1_234_567_890);
    assert.ok(t['d1/lower'] && t['d1/upper'], 'an existing directory keeps its content');
    assert.equal(t['was-file'].type, 'dir');
    assert.equal(t['was-dir'].type, 'file');
    assert.equal(t['was-link'].type, 'dir');
    assert.equal(t['was-link/x'].type, 'file');
    assert.equal(t['d1/x'], undefined, 'nothing was written through the replaced symlink');
    assert.equal(fs.readFileSync(path.join(root, 'linked'), 'utf8'), 'inode', 'replacing one name of a hardlink leaves the other');
    assert.equal(fs.readFileSync(path.join(root, 'linked2'), 'utf8'), 'new content');
    assert.equal(t['linked'].links, undefined);
  });

  it('creates missing parents as 0755 root directories, and sets directory mtimes last', async () => {
    const root = tempDir();
    await apply(
      root,
      await makeTar([
        { name: 'a/', type: 'dir', mode: 0o711, mtime: 1000 },
        { name: 'a/b/c/file', body: 'x', mtime: 2000 },
        { name: 'a/b/', type: 'dir', mode: 0o750, mtime: 3000 },
      ]),
    );
    const t = describeTree(root);
    assert.equal(t['a'].mtime, 1000);
    assert.equal(t['a'].mode, 0o711);
    assert.equal(t['a/b'].mtime, 3000);
    assert.equal(t['a/b'].mode, 0o750);
    assert.equal(t['a/b/c'].mode, 0o755);
    assert.equal(t['a/b/c'].uid, 0);
    assert.equal(t['a/b/c/file'].mtime, 2000);
  });

  it('finishes files written in the background: links to them, replacements, capabilities after the content', async () => {
    const root = tempDir();
    const specs: Spec[] = [];
    const bodies = new Map<string, Buffer>();
    for (let i = 0; i < 90; i++) {
      const body = crypto.randomBytes(70_000 + i * 1000);
      bodies.set(`f${i}`, body);
      specs.push({ name: `f${i}`, body, mode: i % 2 ? 0o4755 : 0o600, uid: 1000 + i, gid: 2000 + i, mtime: 1_000_000 + i });
      if (i % 10 === 0) specs.push({ name: `l${i}`, type: 'link', linkname: `f${i}` });
    }
    const cap = Buffer.from('0000000200040000000000000000000000000000', 'hex');
    specs.push({ name: 'capped', body: crypto.randomBytes(500_000), mode: 0o755, xattrs: new Map([['security.capability', cap]]) });
    bodies.set('capped', specs[specs.length - 1].body as Buffer);
    // Replaced while (possibly) still being written.
    specs.push({ name: 'f5', body: 'replaced', mode: 0o644 });
    bodies.set('f5', Buffer.from('replaced'));
    const r = await apply(root, await makeTar(specs));
    assert.equal(r.entries, specs.length);
    for (const [name, body] of bodies) assert.ok(fs.readFileSync(path.join(root, name)).equals(body), name);
    for (let i = 0; i < 90; i++) {
      if (i === 5) continue;
      const st = fs.lstatSync(path.join(root, `f${i}`));
      assert.equal(st.mode & 0o7777, i % 2 ? 0o4755 : 0o600, `f${i} mode`);
      assert.equal(st.uid, 1000 + i);
      assert.equal(st.gid, 2000 + i);
      assert.equal(st.mtimeMs, (1_000_000 + i) * 1000);
      if (i % 10 === 0) assert.equal(fs.lstatSync(path.join(root, `l${i}`)).ino, st.ino);
    }
    assert.deepEqual(native.lgetxattr(path.join(root, 'capped'), 'security.capability'), cap);
  });

  it('rejects a truncated layer without leaking descriptors', async () => {
    const root = tempDir();
    const tar = await makeTar([
      { name: 'a', body: crypto.randomBytes(300_000) },
      { name: 'b', body: crypto.randomBytes(3_000_000) },
    ]);
    const fds = fs.readdirSync('/proc/self/fd').length;
    await assert.rejects(apply(root, tar.subarray(0, 2_000_000)), InvalidArchiveError);
    assert.equal(fs.readdirSync('/proc/self/fd').length, fds);
  });

  it('skips user.* xattrs where the kernel refuses them, keeps the others', async () => {
    const root = tempDir();
    const xattrs = new Map([
      ['user.a', Buffer.from('1')],
      ['trusted.b', Buffer.from('2')],
      ['trusted.overlay.redirect', Buffer.from('/elsewhere')],
    ]);
    await apply(
      root,
      await makeTar([
        { name: 'link', type: 'symlink', linkname: 'target', xattrs },
        { name: 'fifo', type: 'fifo', xattrs },
        { name: 'file', xattrs },
      ]),
    );
    assert.deepEqual(native.llistxattr(path.join(root, 'link')), ['trusted.b']);
    assert.deepEqual(native.llistxattr(path.join(root, 'fifo')), ['trusted.b']);
    assert.deepEqual(native.llistxattr(path.join(root, 'file')).sort(), ['trusted.b', 'user.a'], 'trusted.overlay.* from a layer is dropped');
  });
});

describe('applyLayer: whiteouts', () => {
  const layer1 = (): Promise<Buffer> =>
    makeTar([
      { name: 'a/', type: 'dir', mode: 0o755, mtime: 100 },
      { name: 'a/file', body: 'gone soon', mtime: 100 },
      { name: 'a/keep', body: 'kept', mtime: 100 },
      { name: 'd/', type: 'dir', mode: 0o755, mtime: 100 },
      { name: 'd/lower1', body: 'l1', mtime: 100 },
      { name: 'd/sub/', type: 'dir', mode: 0o755, mtime: 100 },
      { name: 'd/sub/lower2', body: 'l2', mtime: 100 },
      { name: 'd/link', type: 'symlink', linkname: 'lower1', mtime: 100 },
      { name: 'e/', type: 'dir', mode: 0o755, mtime: 100 },
      { name: 'e/f', body: 'f', mtime: 100 },
      { name: 'x', body: 'old x', mtime: 100 },
    ]);
  const layer2 = (): Promise<Buffer> =>
    makeTar([
      { name: 'a/', type: 'dir', mode: 0o755, mtime: 200 },
      { name: 'a/.wh.file', mtime: 200 },
      { name: 'd/', type: 'dir', mode: 0o750, mtime: 200 },
      { name: 'd/.wh..wh..opq', mtime: 200 },
      { name: 'd/new', body: 'new in layer 2', mtime: 200 },
      { name: 'd/sub/', type: 'dir', mode: 0o755, mtime: 200 },
      { name: 'd/sub/new2', body: 'n2', mtime: 200 },
      { name: '.wh.e', mtime: 200 },
      { name: '.wh.never-existed', mtime: 200 },
      { name: 'x', body: 'new x', mtime: 200 },
    ]);

  it('flat: deletes whited-out paths and empties opaque directories of lower content', async () => {
    const root = tempDir();
    await apply(root, await layer1());
    await apply(root, await layer2());
    const t = describeTree(root);
    assert.deepEqual(Object.keys(t).sort(), ['a', 'a/keep', 'd', 'd/new', 'd/sub', 'd/sub/new2', 'x']);
    assert.equal(fs.readFileSync(path.join(root, 'x'), 'utf8'), 'new x');
    assert.equal(t['d'].mode, 0o750);
    assert.equal(t['d'].mtime, 200);
    assert.equal(t['a'].mtime, 200);
  });

  it('flat: an opaque marker after the new content, and through a missing directory', async () => {
    const root = tempDir();
    await apply(root, await layer1());
    await apply(
      root,
      await makeTar([
        { name: 'd/new', body: 'n' },
        { name: 'd/.wh..wh..opq' },
        { name: 'nodir/.wh..wh..opq' },
        { name: 'nodir2/.wh.x' },
      ]),
    );
    assert.deepEqual(fs.readdirSync(path.join(root, 'd')), ['new']);
    assert.ok(!fs.existsSync(path.join(root, 'nodir')));
    assert.ok(!fs.existsSync(path.join(root, 'nodir2')));
  });

  it('overlay: whiteouts become 0/0 char devices, opaque dirs get the xattr; a real overlay mount shows the flat view', async () => {
    const base = tempDir();
    const flat = path.join(base, 'flat');
    const l1 = path.join(base, 'l1');
    const l2 = path.join(base, 'l2');
    const merged = path.join(base, 'merged');
    for (const d of [flat, l1, l2, merged]) fs.mkdirSync(d);
    await apply(flat, await layer1());
    await apply(flat, await layer2());
    await apply(l1, await layer1(), 'overlay');
    await apply(l2, await layer2(), 'overlay');

    for (const wh of ['a/file', 'e', 'never-existed']) {
      const st = fs.lstatSync(path.join(l2, wh));
      assert.ok(st.isCharacterDevice() && st.rdev === 0, `${wh} is a whiteout`);
    }
    assert.deepEqual(native.lgetxattr(path.join(l2, 'd'), 'trusted.overlay.opaque'), Buffer.from('y'));
    assert.equal(native.lgetxattr(path.join(l2, 'a'), 'trusted.overlay.opaque'), null);
    assert.ok(!fs.existsSync(path.join(l2, 'a/.wh.file')));
    assert.ok(!fs.existsSync(path.join(l2, 'd/.wh..wh..opq')));

    native.mount('overlay', merged, 'overlay', native.MS_RDONLY, `lowerdir=${l2}:${l1}`);
    let view: Record<string, Desc>;
    try {
      view = describeTree(merged);
    } finally {
      native.umount2(merged, native.MNT_DETACH);
    }
    assert.deepEqual(view, describeTree(flat));
  });

  it('overlay: a whiteout and an opaque marker in a directory the layer does not otherwise hold', async () => {
    const root = tempDir();
    await apply(root, await makeTar([{ name: 'p/q/.wh.gone' }, { name: 'r/.wh..wh..opq' }]), 'overlay');
    assert.ok(fs.lstatSync(path.join(root, 'p/q/gone')).isCharacterDevice());
    assert.equal(fs.lstatSync(path.join(root, 'p/q')).mode & 0o7777, 0o755);
    assert.deepEqual(native.lgetxattr(path.join(root, 'r'), 'trusted.overlay.opaque'), Buffer.from('y'));
  });
});

describe('applyLayer: hostile layers', () => {
  /** A root two levels below a sibling "outside" directory holding a precious file. */
  function setup(): { base: string; root: string; outside: string; tag: string } {
    const base = tempDir();
    const root = path.join(base, 'r1', 'r2');
    fs.mkdirSync(root, { recursive: true });
    const outside = path.join(base, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'file'), 'precious');
    fs.mkdirSync(path.join(outside, 'sub'));
    return { base, root, outside, tag: `evil-${crypto.randomBytes(4).toString('hex')}` };
  }

  /** Applies `tar`, returns the error (or null), and asserts that nothing outside `root` changed. */
  async function hostile(name: string, build: (e: ReturnType<typeof setup>) => Spec[], mode: 'flat' | 'overlay' = 'flat') {
    const env = setup();
    const tar = await makeTar(build(env));
    const watched = [env.outside, '/etc/hostname', path.join(env.base, 'r1')];
    const before = watched.map((w) => (w === path.join(env.base, 'r1') ? fs.readdirSync(w).join(',') : snapshot(w)));
    const shmBefore = fs.readdirSync('/dev/shm').filter((n) => n.startsWith(env.tag));
    let err: Error | null = null;
    try {
      await apply(env.root, tar, mode);
    } catch (e) {
      err = e as Error;
    }
    const after = watched.map((w) => (w === path.join(env.base, 'r1') ? fs.readdirSync(w).join(',') : snapshot(w)));
    assert.deepEqual(after, before, `${name}: something outside the root changed`);
    assert.deepEqual(fs.readdirSync('/dev/shm').filter((n) => n.startsWith(env.tag)), shmBefore, `${name}: wrote to /dev/shm`);
    assert.deepEqual(fs.readdirSync(env.base).sort(), ['outside', 'r1'], `${name}: wrote next to the root`);
    assert.ok(!fs.existsSync('/abs'), `${name}: created /abs`);
    if (err && !(err instanceof InvalidArchiveError)) throw err;
    return { ...env, err };
  }

  it("refuses '..' in names", async () => {
    for (const n of ['../evil', 'a/../../evil', '../../outside/file']) {
      const r = await hostile(n, () => [{ name: n, body: 'pwned' }]);
      assert.ok(r.err instanceof InvalidArchiveError, n);
      assert.equal(r.err.message, `tar entry '${n}': path contains '..'`);
    }
    const r = await hostile('dir ..', () => [{ name: 'ok/', type: 'dir' }, { name: 'ok/../../evil/', type: 'dir' }]);
    assert.ok(r.err instanceof InvalidArchiveError);
  });

  it('keeps absolute names inside the root', async () => {
    const r = await hostile('/abs/evil', (e) => [
      { name: '/abs/evil', body: 'inside' },
      { name: `${e.outside}/file`, body: 'inside too' },
    ]);
    assert.equal(r.err, null);
    assert.equal(fs.readFileSync(path.join(r.root, 'abs/evil'), 'utf8'), 'inside');
    assert.equal(fs.readFileSync(path.join(r.root, r.outside, 'file'), 'utf8'), 'inside too');
  });

  it('resolves symlinked parents inside the root', async () => {
    // Absolute symlink to the outside dir.
    let r = await hostile('s -> outside', (e) => [
      { name: 's', type: 'symlink', linkname: e.outside },
      { name: 's/evil', body: 'pwned' },
      { name: 's/file', body: 'pwned' },
      { name: 's/sub/', type: 'dir', mode: 0o777 },
    ]);
    assert.equal(r.err, null);
    assert.equal(fs.readFileSync(path.join(r.root, r.outside, 'evil'), 'utf8'), 'pwned');
    assert.equal(fs.lstatSync(path.join(r.root, 's')).isSymbolicLink(), true);

    // Relative symlinks climbing above the root stop at the root.
    r = await hostile('s -> ../../..', (e) => [
      { name: 's', type: 'symlink', linkname: '../../..' },
      { name: `s/${e.tag}`, body: 'pwned' },
      { name: 't', type: 'symlink', linkname: '../../outside' },
      { name: 't/file', body: 'pwned' },
    ]);
    assert.equal(r.err, null);
    assert.equal(fs.readFileSync(path.join(r.root, r.tag), 'utf8'), 'pwned');
    assert.equal(fs.readFileSync(path.join(r.root, 'outside/file'), 'utf8'), 'pwned');

    // Chains of symlinks, '..' through them, and a symlink to '/'.
    r = await hostile('chains', (e) => [
      { name: 'a', type: 'symlink', linkname: 'b' },
      { name: 'b', type: 'symlink', linkname: '/' },
      { name: 'c', type: 'symlink', linkname: 'a/../../../' },
      { name: 'c/x1', body: '1' },
      { name: 'a/x2', body: '2' },
      { name: 'dir/', type: 'dir' },
      { name: 'dir/up', type: 'symlink', linkname: '../../../../../../../..' + e.outside },
      { name: 'dir/up/x3', body: '3' },
    ]);
    assert.equal(r.err, null);
    assert.equal(fs.readFileSync(path.join(r.root, 'x1'), 'utf8'), '1');
    assert.equal(fs.readFileSync(path.join(r.root, 'x2'), 'utf8'), '2');
    assert.equal(fs.readFileSync(path.join(r.root, r.outside, 'x3'), 'utf8'), '3');

    // A symlink loop is an error, not a hang.
    r = await hostile('loop', () => [
      { name: 'l1', type: 'symlink', linkname: 'l2/x' },
      { name: 'l2', type: 'symlink', linkname: 'l1' },
      { name: 'l1/evil', body: 'x' },
    ]);
    assert.match(r.err?.message ?? '', /too many levels of symbolic links/);

    // A parent that is a regular file is an error.
    r = await hostile('file parent', () => [{ name: 'f', body: 'x' }, { name: 'f/evil', body: 'x' }]);
    assert.match(r.err?.message ?? '', /'f' is not a directory/);
  });

  it('confines hardlink targets', async () => {
    let r = await hostile('link /etc/hostname', () => [{ name: 'h', type: 'link', linkname: '/etc/hostname' }]);
    assert.match(r.err?.message ?? '', /hardlink target '\/etc\/hostname' does not exist/);

    r = await hostile('link ../../outside/file', () => [{ name: 'h', type: 'link', linkname: '../../outside/file' }]);
    assert.ok(r.err instanceof InvalidArchiveError);

    r = await hostile('link via symlinked parent', (e) => [
      { name: 'p', type: 'symlink', linkname: e.outside },
      { name: 'h', type: 'link', linkname: 'p/file' },
    ]);
    assert.match(r.err?.message ?? '', /does not exist/);

    r = await hostile('link to a directory', () => [{ name: 'd/', type: 'dir' }, { name: 'h', type: 'link', linkname: 'd' }]);
    assert.match(r.err?.message ?? '', /is a directory/);

    // A hardlink to a symlink pointing outside links the symlink itself; writing a file of that name replaces it.
    r = await hostile('link to symlink then write', (e) => [
      { name: 'l', type: 'symlink', linkname: `${e.outside}/file` },
      { name: 'h', type: 'link', linkname: 'l' },
      { name: 'h', body: 'pwned' },
      { name: 'l2', type: 'symlink', linkname: e.outside },
      { name: 'h2', type: 'link', linkname: 'l2' },
      { name: 'h2/evil', body: 'pwned' },
    ]);
    assert.equal(r.err, null);
    assert.equal(fs.readFileSync(path.join(r.root, 'h'), 'utf8'), 'pwned');
    assert.ok(fs.lstatSync(path.join(r.root, 'l')).isSymbolicLink());
    assert.equal(fs.readFileSync(path.join(r.root, r.outside, 'evil'), 'utf8'), 'pwned');
  });

  it('replaces a symlink rather than writing through it', async () => {
    const r = await hostile('symlink then file', (e) => [
      { name: 'f', type: 'symlink', linkname: `${e.outside}/file` },
      { name: 'f', body: 'pwned', mode: 0o4777 },
      { name: 'g', type: 'symlink', linkname: `${e.outside}/file` },
      { name: 'g', type: 'fifo' },
      { name: 'd', type: 'symlink', linkname: e.outside },
      { name: 'd/', type: 'dir', mode: 0o777, uid: 1000 },
      { name: 'n', type: 'symlink', linkname: '../../outside/file' },
      { name: 'n', type: 'link', linkname: 'f' },
      { name: 'y', type: 'symlink', linkname: '../../outside/file', xattrs: new Map([['trusted.evil', Buffer.from('1')]]) },
    ]);
    assert.equal(r.err, null);
    assert.equal(fs.readFileSync(path.join(r.root, 'f'), 'utf8'), 'pwned');
    assert.equal(fs.lstatSync(path.join(r.root, 'f')).mode & 0o7777, 0o4777);
    assert.ok(fs.lstatSync(path.join(r.root, 'g')).isFIFO());
    assert.ok(fs.lstatSync(path.join(r.root, 'd')).isDirectory());
    assert.equal(fs.lstatSync(path.join(r.root, 'n')).ino, fs.lstatSync(path.join(r.root, 'f')).ino);
    assert.equal(native.lgetxattr(path.join(r.outside, 'file'), 'trusted.evil'), null);
  });

  it('keeps whiteouts inside the root (flat and overlay)', async () => {
    for (const mode of ['flat', 'overlay'] as const) {
      const r = await hostile(`whiteouts ${mode}`, (e) => [
        { name: 's', type: 'symlink', linkname: e.outside },
        { name: 's/.wh.file' },
        { name: 's/.wh.sub' },
        { name: 's/.wh..wh..opq' },
        { name: 't', type: 'symlink', linkname: '../..' },
        { name: 't/.wh.outside' },
        { name: '.wh.s' },
      ], mode);
      assert.equal(r.err, null, mode);
      if (mode === 'overlay') {
        assert.ok(fs.lstatSync(path.join(r.root, r.outside, 'file')).isCharacterDevice());
        assert.deepEqual(native.lgetxattr(path.join(r.root, r.outside), 'trusted.overlay.opaque'), Buffer.from('y'));
      } else {
        assert.ok(!fs.existsSync(path.join(r.root, 's')));
      }
    }
    const r = await hostile('whiteout ..', () => [{ name: 'a/.wh...' }]);
    assert.ok(r.err instanceof InvalidArchiveError);
  });

  it('ignores the root entry, whatever its type', async () => {
    const r = await hostile('root entry', (e) => [
      { name: './', type: 'symlink', linkname: e.outside },
      { name: '/', type: 'dir', mode: 0o777, uid: 1000 },
      { name: 'x', body: 'inside' },
    ]);
    assert.equal(r.err, null);
    assert.equal(fs.lstatSync(r.root).mode & 0o7777, 0o755);
    assert.equal(fs.readFileSync(path.join(r.root, 'x'), 'utf8'), 'inside');
  });
});
