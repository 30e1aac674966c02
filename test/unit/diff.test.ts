// Trees to tars (src/layer/diff.ts): an overlay upper dir to a layer (commit) checked by re-applying it, and a
// whole tree (export) checked against GNU tar. Needs root (overlay mounts, devices, trusted.* xattrs).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { applyLayer } from '../../src/layer/apply.js';
import { writeTree, writeUpperDiff } from '../../src/layer/diff.js';
import * as native from '../../src/native/index.js';
import { readTar, TarWriter, type TarHeader } from '../../src/tar/index.js';
import { tarBytes, tempDir } from '../helpers.js';
import { describeTree, type Desc } from '../tree.js';

// ---------------------------------------------------------------------------------------------------------
// Helpers

/** Runs `fill` with a TarWriter and returns the finished archive. */
function tarOf(fill: (w: TarWriter) => Promise<void>): Promise<Buffer> {
  return tarBytes(fill);
}

async function* chunksOf(buf: Buffer): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += 1 << 20) yield buf.subarray(i, i + (1 << 20));
}

async function entriesOf(tar: Buffer): Promise<Array<TarHeader & { body: Buffer }>> {
  const out: Array<TarHeader & { body: Buffer }> = [];
  for await (const e of readTar(chunksOf(tar))) out.push({ ...e.header, body: await e.buffer() });
  return out;
}


/** Gives every object below `dir` a distinct whole-second mtime (directories last, deepest first). */
function settleTimes(dir: string, start: number): void {
  const all: string[] = [];
  const walk = (rel: string): void => {
    for (const n of fs.readdirSync(path.join(dir, rel))) {
      const r = rel ? `${rel}/${n}` : n;
      all.push(r);
      if (fs.lstatSync(path.join(dir, r)).isDirectory()) walk(r);
    }
  };
  walk('');
  let t = start;
  const isDir = (r: string) => fs.lstatSync(path.join(dir, r)).isDirectory();
  for (const r of all.filter((r) => !isDir(r))) fs.lutimesSync(path.join(dir, r), (t += 60), t);
  for (const r of all.filter(isDir).sort((a, b) => b.split('/').length - a.split('/').length)) fs.lutimesSync(path.join(dir, r), (t += 60), t);
}

// ---------------------------------------------------------------------------------------------------------

describe('writeUpperDiff', () => {
  const lowerTar = (): Promise<Buffer> =>
    tarOf(async (w) => {
      const f = (name: string, body: string, extra: Partial<TarHeader> = {}) =>
        w.add({ name, type: 'file', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 1_000_000, ...extra }, Buffer.from(body));
      const d = (name: string, extra: Partial<TarHeader> = {}) => w.add({ name, type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 1_000_100, ...extra });
      await d('bin/');
      await f('bin/tool', 'tool v1', { mode: 0o755 });
      await d('d/');
      await f('d/old1', 'old1');
      await d('d/sub/');
      await f('d/sub/old2', 'old2');
      await d('etc/');
      await f('etc/group', 'root:x:0:\n');
      await f('etc/keep', 'keep', { mode: 0o600 });
      await f('etc/passwd', 'root:x:0:0::/root:/bin/sh\n');
      await f('mod', 'before');
      await d('rmdir/');
      await f('rmdir/inside', 'x');
      await f('rmfile', 'x');
    });

  it('turns an overlay upper dir into a layer that reproduces the merged view', async () => {
    const base = tempDir();
    const [lower, upper, work, merged, check] = ['lower', 'upper', 'work', 'merged', 'check'].map((n) => path.join(base, n));
    for (const d of [lower, upper, work, merged, check]) fs.mkdirSync(d);
    const lowerLayer = await lowerTar();
    await applyLayer(lower, chunksOf(lowerLayer), { mode: 'flat' });

    native.mount('overlay', merged, 'overlay', 0, `lowerdir=${lower},upperdir=${upper},workdir=${work}`);
    let view: Record<string, Desc>;
    const big = crypto.randomBytes(2 * 1024 * 1024 + 123);
    try {
      const m = (p: string) => path.join(merged, p);
      fs.writeFileSync(m('new.txt'), 'new file');
      fs.chownSync(m('new.txt'), 1000, 1000);
      fs.chmodSync(m('new.txt'), 0o640);
      native.lsetxattr(m('new.txt'), 'user.x', Buffer.from('xattr value'));
      fs.writeFileSync(m('mod'), 'after, longer');
      fs.unlinkSync(m('rmfile'));
      fs.rmSync(m('rmdir'), { recursive: true });
      fs.unlinkSync(m('etc/group'));
      fs.chmodSync(m('etc/keep'), 0o640);
      fs.mkdirSync(m('hl'));
      fs.writeFileSync(m('hl/a'), 'shared');
      fs.linkSync(m('hl/a'), m('hl/b'));
      fs.rmSync(m('d'), { recursive: true });
      fs.mkdirSync(m('d'));
      fs.writeFileSync(m('d/new'), '');
      fs.symlinkSync('etc/passwd', m('ln'));
      native.mknod(m('fifo'), native.S_IFIFO | 0o600, 0, 0);
      fs.mkdirSync(m('dev'));
      native.mknod(m('dev/null'), native.S_IFCHR | 0o666, 1, 3);
      fs.chmodSync(m('dev/null'), 0o666);
      fs.writeFileSync(m('bin/big'), big);
      fs.chmodSync(m('bin/big'), 0o4755);
      view = describeTree(merged);
    } finally {
      native.umount2(merged, 0);
    }

    const diff = await tarOf((w) => writeUpperDiff(upper, w));
    const entries = await entriesOf(diff);
    const names = entries.map((e) => e.name);
    // Sorted by the names in the upper dir (a whiteout sits where the name it hides sorts), as docker does.
    assert.deepEqual(names, [
      'bin/',
      'bin/big',
      'd/',
      'd/.wh..wh..opq',
      'd/new',
      'dev/',
      'dev/null',
      'etc/',
      'etc/.wh.group',
      'etc/keep',
      'fifo',
      'hl/',
      'hl/a',
      'hl/b',
      'ln',
      'mod',
      'new.txt',
      '.wh.rmdir',
      '.wh.rmfile',
    ]);
    const byName = new Map(entries.map((e) => [e.name, e]));
    for (const wh of ['.wh.rmdir', '.wh.rmfile', 'etc/.wh.group', 'd/.wh..wh..opq']) {
      assert.equal(byName.get(wh)!.type, 'file', wh);
      assert.equal(byName.get(wh)!.size, 0, wh);
    }
    assert.equal(byName.get('hl/b')!.type, 'link');
    assert.equal(byName.get('hl/b')!.linkname, 'hl/a');
    assert.equal(byName.get('hl/a')!.type, 'file');
    assert.equal(byName.get('ln')!.linkname, 'etc/passwd');
    assert.equal(byName.get('dev/null')!.type, 'chardev');
    assert.equal(byName.get('dev/null')!.devmajor, 1);
    assert.equal(byName.get('dev/null')!.devminor, 3);
    assert.equal(byName.get('bin/big')!.mode, 0o4755);
    assert.ok(byName.get('bin/big')!.body.equals(big));
    assert.deepEqual(byName.get('new.txt')!.xattrs, new Map([['user.x', Buffer.from('xattr value')]]));
    assert.equal(byName.get('new.txt')!.uid, 1000);
    for (const e of entries) {
      assert.ok(Number.isInteger(e.mtime), `${e.name}: whole-second mtime`);
      for (const k of e.xattrs?.keys() ?? []) assert.ok(!k.startsWith('trusted.overlay.'), `${e.name}: ${k}`);
      assert.equal(e.uname ?? '', '');
    }
    // The upper dir really held overlay's own markers (which must not leak into the layer).
    assert.deepEqual(native.lgetxattr(path.join(upper, 'd'), 'trusted.overlay.opaque'), Buffer.from('y'));

    // lower + diff, applied flat, give the merged view.
    await applyLayer(check, chunksOf(lowerLayer), { mode: 'flat' });
    await applyLayer(check, chunksOf(diff), { mode: 'flat' });
    assert.deepEqual(describeTree(check), view);

    // And applied as overlay layers, mounted again, too.
    const [l1, l2, m2] = ['l1', 'l2', 'm2'].map((n) => path.join(base, n));
    for (const d of [l1, l2, m2]) fs.mkdirSync(d);
    await applyLayer(l1, chunksOf(lowerLayer), { mode: 'overlay' });
    await applyLayer(l2, chunksOf(diff), { mode: 'overlay' });
    native.mount('overlay', m2, 'overlay', native.MS_RDONLY, `lowerdir=${l2}:${l1}`);
    try {
      assert.deepEqual(describeTree(m2), view);
    } finally {
      native.umount2(m2, 0);
    }
  });

  it('clamps mtimes to SOURCE_DATE_EPOCH', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'old'), 'o');
    fs.writeFileSync(path.join(dir, 'new'), 'n');
    fs.mkdirSync(path.join(dir, 'sub'));
    native.mknod(path.join(dir, 'sub', 'gone'), native.S_IFCHR, 0, 0);
    fs.utimesSync(path.join(dir, 'old'), 500_000, 500_000.75);
    const saved = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = '1000000';
    let entries;
    try {
      entries = await entriesOf(await tarOf((w) => writeUpperDiff(dir, w)));
    } finally {
      if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = saved;
    }
    assert.deepEqual(
      entries.map((e) => [e.name, e.mtime]),
      [
        ['new', 1_000_000],
        ['old', 500_000],
        ['sub/', 1_000_000],
        ['sub/.wh.gone', 1_000_000],
      ],
    );
  });

  it('leaves the writer open', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'f'), 'f');
    const entries = await entriesOf(
      await tarOf(async (w) => {
        await writeUpperDiff(dir, w);
        await w.add({ name: 'after', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 });
      }),
    );
    assert.deepEqual(
      entries.map((e) => e.name),
      ['f', 'after'],
    );
  });
});

describe('writeTree', () => {
  function fixture(dir: string): void {
    const p = (r: string) => path.join(dir, r);
    fs.mkdirSync(p('etc/ssl'), { recursive: true });
    fs.writeFileSync(p('etc/passwd'), 'root:x:0:0::/root:/bin/sh\n');
    fs.writeFileSync(p('etc/ssl/cert.pem'), crypto.randomBytes(1500 * 1024));
    fs.chmodSync(p('etc/ssl'), 0o700);
    fs.writeFileSync(p('etc/a-b'), 'sorts before etc/ssl/ and after etc/a/');
    fs.mkdirSync(p('etc/a'));
    fs.writeFileSync(p('etc/a/z'), 'z');
    fs.mkdirSync(p('home/user'), { recursive: true });
    fs.chownSync(p('home/user'), 1000, 1000);
    fs.writeFileSync(p('home/user/ünïcödé'), 'u');
    fs.linkSync(p('etc/passwd'), p('home/user/passwd-link'));
    fs.symlinkSync('/etc/shadow', p('abs-link'));
    fs.symlinkSync('../..', p('etc/up'));
    fs.mkdirSync(p('tmp'));
    fs.chmodSync(p('tmp'), 0o1777);
    native.mknod(p('fifo'), native.S_IFIFO | 0o644, 0, 0);
    fs.mkdirSync(p('dev'));
    native.mknod(p('dev/tty'), native.S_IFCHR | 0o666, 5, 0);
    native.mknod(p('dev/sda'), native.S_IFBLK | 0o660, 8, 0);
    native.mknod(p('dev/whiteout'), native.S_IFCHR, 0, 0);
    fs.writeFileSync(p('suid'), 's');
    fs.chmodSync(p('suid'), 0o4711);
    native.lsetxattr(p('etc/passwd'), 'user.note', Buffer.from('hi'));
    fs.mkdirSync(p('proc/1'), { recursive: true });
    fs.writeFileSync(p('proc/1/status'), 'skipped');
    settleTimes(dir, 1_600_000_000);
  }

  it('matches GNU tar --sort=name and round-trips through it', async () => {
    const base = tempDir();
    const src = path.join(base, 'src');
    fs.mkdirSync(src);
    fixture(src);
    const ours = path.join(base, 'ours.tar');
    const gnu = path.join(base, 'gnu.tar');
    fs.writeFileSync(ours, await tarOf((w) => writeTree(src, w)));
    execFileSync('tar', ['--sort=name', '--numeric-owner', '--xattrs', '--xattrs-include=*', '--format=posix', '-cf', gnu, '-C', src, '.']);
    const list = (f: string) =>
      execFileSync('tar', ['--numeric-owner', '--full-time', '--xattrs', '--xattrs-include=*', '-tvvf', f], { env: { ...process.env, TZ: 'UTC' } })
        .toString()
        .split('\n')
        .filter((l) => l !== '' && !/ \.\/$/.test(l))
        .map((l) => l.replace(/(\d\d:\d\d:\d\d)\.\d+/, '$1').replace(/ \.\//g, ' ').replace(/ +/g, ' '));
    const theirs = list(gnu);
    assert.ok(theirs.length > 20);
    assert.deepEqual(list(ours), theirs);

    // GNU tar extracts ours into the same tree.
    const out = path.join(base, 'out');
    fs.mkdirSync(out);
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '-xpf', ours, '-C', out]);
    const want = describeTree(src);
    assert.deepEqual(describeTree(out), want);

    // And so does applyLayer.
    const out2 = path.join(base, 'out2');
    fs.mkdirSync(out2);
    await applyLayer(out2, fs.createReadStream(ours), { mode: 'flat' });
    assert.deepEqual(describeTree(out2), want);
  });

  it('does not read a file outside the tree when a directory is swapped for a symlink mid-walk', async () => {
    const base = tempDir();
    const src = path.join(base, 'src');
    const outside = path.join(base, 'outside');
    fs.mkdirSync(path.join(src, 'd'), { recursive: true });
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(src, 'd', 'f'), 'inside');
    fs.writeFileSync(path.join(outside, 'f'), 'secret');
    const chunks: Buffer[] = [];
    const w = new TarWriter();
    const collected = (async () => {
      for await (const c of w.stream) chunks.push(c as Buffer);
    })().catch(() => {});
    await assert.rejects(
      writeTree(src, w, {
        skip: (rel) => {
          if (rel === 'd/f') {
            // What a running container could do between ply's readdir and its open.
            fs.renameSync(path.join(src, 'd'), path.join(src, 'd.old'));
            fs.symlinkSync(outside, path.join(src, 'd'));
          }
          return false;
        },
      }),
      /changed while being archived/,
    );
    w.destroy();
    await collected;
    assert.ok(!Buffer.concat(chunks).includes('secret'));
  });

  it('skips what `skip` says, and its subtree', async () => {
    const src = tempDir();
    fixture(src);
    const seen: string[] = [];
    const entries = await entriesOf(
      await tarOf((w) =>
        writeTree(src, w, {
          skip: (rel) => {
            seen.push(rel);
            return rel === 'proc' || rel === 'etc/ssl';
          },
        }),
      ),
    );
    const names = entries.map((e) => e.name);
    assert.ok(seen.includes('proc') && seen.includes('etc/passwd') && !seen.includes('proc/1'));
    assert.ok(!names.some((n) => n.startsWith('proc') || n.startsWith('etc/ssl')));
    assert.ok(names.includes('etc/') && names.includes('etc/passwd') && names.includes('dev/whiteout'));
    assert.equal(entries.find((e) => e.name === 'dev/whiteout')!.type, 'chardev');
  });
});
