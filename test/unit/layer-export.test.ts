// Export without a mount (src/layer/diff.ts writeMergedTree, src/container/commit.ts exportContainer): the merge of
// a stack of overlay layers must give, byte for byte, the tar of the same stack mounted by the kernel's overlayfs,
// for whiteouts, opaque directories, hardlinks, files replaced by directories and back, metadata and xattrs (fixed
// cases and random stacks). Also: the /proc/self/fd check is skipped only for quiescent trees, what the merge
// does not model is detected, and a stopped container's export fails if the container was started meanwhile.
// Needs root (overlay mounts, devices, trusted.* xattrs).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { exportContainer } from '../../src/container/commit.js';
import type { Container } from '../../src/container/store.js';
import type { ContainerManager } from '../../src/container/manager.js';
import type { LayerSnapshots, Parent, Snapshotter } from '../../src/snapshot/index.js';
import { OverlaySnapshotter } from '../../src/snapshot/overlay.js';
import { ConflictError } from '../../src/errors.js';
import { unmodelledOverlayState, writeMergedTree, writeTree, type TreeOutput } from '../../src/layer/diff.js';
import * as native from '../../src/native/index.js';
import { readTar, TarWriter } from '../../src/tar/index.js';
import { TarFdWriter } from '../../src/tar/writer.js';
import { rng, tarBytes, tempDir } from '../helpers.js';

// ---------------------------------------------------------------------------------------------------------
// Helpers

/** The finished archive `fill` writes, through a TarFdWriter (fd: true) or a streaming TarWriter. */
async function tarOf(fill: (w: TreeOutput) => Promise<void>, fd = true): Promise<Buffer> {
  if (fd) {
    const out = path.join(tempDir(), 'out.tar');
    const d = fs.openSync(out, 'w');
    try {
      const w = new TarFdWriter(d);
      await fill(w);
      await w.finish();
    } finally {
      fs.closeSync(d);
    }
    return fs.readFileSync(out);
  }
  return tarBytes(fill as (w: TarWriter) => Promise<void>);
}

async function namesOf(tar: Buffer): Promise<string[]> {
  const names: string[] = [];
  async function* one(): AsyncGenerator<Buffer> {
    yield tar;
  }
  for await (const e of readTar(one())) {
    names.push(e.header.type === 'link' ? `${e.header.name} -> ${e.header.linkname}` : e.header.name);
    await e.buffer();
  }
  return names;
}

/** Mounts `layers` (top first) as overlayfs does for a container: the top one as upperdir. */
function withOverlay<T>(layers: string[], fn: (merged: string) => Promise<T>): Promise<T> {
  const base = tempDir('ply-ovl-');
  const merged = path.join(base, 'merged');
  const work = path.join(base, 'work');
  fs.mkdirSync(merged);
  fs.mkdirSync(work);
  const lowers = layers.slice(1);
  if (lowers.length === 0) {
    lowers.push(path.join(base, 'empty'));
    fs.mkdirSync(lowers[0]!);
  }
  native.mount('overlay', merged, 'overlay', 0, `lowerdir=${lowers.join(':')},upperdir=${layers[0]!},workdir=${work}`);
  return fn(merged).finally(() => native.umount2(merged, native.MNT_DETACH));
}

/** Asserts that merging `layers` gives the tar of their overlay mount, and returns its entry names. */
async function assertSameAsMounted(layers: string[], what: string): Promise<string[]> {
  const mounted = await withOverlay(layers, (merged) => tarOf((w) => writeTree(merged, w), false));
  const ours = await tarOf((w) => writeMergedTree(layers, w, { quiescent: true }));
  const names = await namesOf(mounted);
  if (!ours.equals(mounted)) {
    assert.deepEqual(await namesOf(ours), names, `${what}: same entries`);
    assert.fail(`${what}: same entries, different bytes`);
  }
  return names;
}

const Y = Buffer.from('y');
const whiteout = (p: string) => native.mknod(p, native.S_IFCHR, 0, 0);
const opaque = (p: string) => native.lsetxattr(p, 'trusted.overlay.opaque', Y);
function write(p: string, data: string | Buffer, mode = 0o644, mtime = 1_600_000_000): void {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, data, { mode });
  fs.chmodSync(p, mode);
  fs.utimesSync(p, mtime, mtime);
}
function mkdir(p: string, mode = 0o755, mtime = 1_500_000_000, owner = 0): void {
  fs.mkdirSync(p, { recursive: true });
  fs.chmodSync(p, mode);
  fs.chownSync(p, owner, owner);
  fs.utimesSync(p, mtime, mtime);
}


/** A random layer below `root`: files, directories (some opaque), whiteouts, symlinks, hardlinks, fifos, devices. */
function randomLayer(root: string, rand: () => number, layerNo: number): void {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const files: string[] = [];
  const dirs: Array<{ p: string; mtime: number }> = [];
  const fill = (dir: string, depth: number): void => {
    for (const name of ['a', 'b', 'c', 'd', '.wh.e']) {
      if (rand() < 0.45) continue;
      const p = path.join(dir, name);
      const kinds = ['file', 'file', 'dir', 'dir', 'whiteout', 'symlink', 'hardlink', 'fifo', 'chardev', 'opaque'];
      const kind = depth >= 3 ? pick(kinds.filter((k) => k !== 'dir' && k !== 'opaque')) : pick(kinds);
      const mtime = 1_600_000_000 + Math.floor(rand() * 1e6);
      const owner = pick([0, 0, 1000, 65534]);
      switch (kind) {
        case 'file':
          write(p, `${layerNo}:${p}:${'x'.repeat(Math.floor(rand() * 3000))}`, pick([0o644, 0o600, 0o755, 0o4755]), mtime);
          fs.chownSync(p, owner, owner);
          if (rand() < 0.2) native.lsetxattr(p, 'user.layer', Buffer.from(String(layerNo)));
          files.push(p);
          break;
        case 'dir':
        case 'opaque':
          fs.mkdirSync(p);
          if (kind === 'opaque') opaque(p);
          if (rand() < 0.2) native.lsetxattr(p, 'user.dir', Buffer.from(`${layerNo}${name}`));
          fs.chmodSync(p, pick([0o755, 0o700, 0o1777]));
          fs.chownSync(p, owner, owner);
          fill(p, depth + 1);
          dirs.push({ p, mtime });
          break;
        case 'whiteout':
          whiteout(p);
          break;
        case 'symlink':
          fs.symlinkSync(pick(['a', '../b', '/etc/passwd', 'c/d']), p);
          fs.lchownSync(p, owner, owner);
          fs.lutimesSync(p, mtime, mtime);
          break;
        case 'hardlink':
          if (files.length === 0) continue;
          fs.linkSync(pick(files), p);
          break;
        case 'fifo':
          native.mknod(p, native.S_IFIFO | 0o644, 0, 0);
          fs.utimesSync(p, mtime, mtime);
          break;
        case 'chardev':
          native.mknod(p, native.S_IFCHR | 0o666, 1, 3 + layerNo);
          fs.utimesSync(p, mtime, mtime);
          break;
      }
    }
  };
  fill(root, 0);
  for (const d of dirs.reverse()) fs.utimesSync(d.p, d.mtime, d.mtime);
}

// ---------------------------------------------------------------------------------------------------------

describe('writeMergedTree', () => {
  it('gives what the overlay mount gives: whiteouts, opaque directories, replaced files and directories, hardlinks, metadata', async () => {
    const base = tempDir();
    const [upper, init, l2, l1] = ['upper', 'init', 'l2', 'l1'].map((n) => path.join(base, n)) as [string, string, string, string];
    // l1, the bottom layer.
    mkdir(l1, 0o755);
    mkdir(path.join(l1, 'etc'), 0o755, 1_500_000_001);
    write(path.join(l1, 'etc/passwd'), 'root:x:0:0\n');
    write(path.join(l1, 'etc/motd'), 'hello\n');
    write(path.join(l1, 'etc/linked'), 'linked\n');
    fs.linkSync(path.join(l1, 'etc/linked'), path.join(l1, 'etc/linked2'));
    fs.linkSync(path.join(l1, 'etc/linked'), path.join(l1, 'etc/linked3'));
    mkdir(path.join(l1, 'var/lib/old'), 0o700, 1_500_000_002);
    write(path.join(l1, 'var/lib/old/data'), 'old');
    write(path.join(l1, 'var/keep'), 'keep');
    write(path.join(l1, 'file-then-dir'), 'a file in l1');
    mkdir(path.join(l1, 'dir-then-file'));
    write(path.join(l1, 'dir-then-file/child'), 'hidden by l2');
    mkdir(path.join(l1, 'dir-then-link'));
    write(path.join(l1, 'dir-then-link/child'), 'hidden by l2');
    write(path.join(l1, 'bin'), 'replaced');
    whiteout(path.join(l1, 'lowest-whiteout'));
    write(path.join(l1, 'stack/below'), 'hidden: l2 has a file at stack');
    native.mknod(path.join(l1, 'null'), native.S_IFCHR | 0o666, 1, 3);
    native.lsetxattr(path.join(l1, 'etc/passwd'), 'user.note', Buffer.from('l1'));
    native.lsetxattr(path.join(l1, 'etc'), 'user.dir', Buffer.from('l1'));
    // l2 above it.
    mkdir(l2, 0o755);
    mkdir(path.join(l2, 'etc'), 0o750, 1_500_000_010, 1000); // merged with l1's etc; its metadata wins
    whiteout(path.join(l2, 'etc/motd'));
    whiteout(path.join(l2, 'etc/linked')); // linked2 and linked3 stay, still one inode
    mkdir(path.join(l2, 'var/lib'), 0o755, 1_500_000_011);
    opaque(path.join(l2, 'var/lib')); // hides var/lib/old
    write(path.join(l2, 'var/lib/new'), 'new');
    mkdir(path.join(l2, 'file-then-dir'));
    write(path.join(l2, 'file-then-dir/inside'), 'dir in l2');
    write(path.join(l2, 'dir-then-file'), 'a file in l2');
    fs.symlinkSync('/elsewhere', path.join(l2, 'dir-then-link'));
    mkdir(path.join(l2, 'bin'));
    fs.symlinkSync('bin', path.join(l2, 'sbin'));
    write(path.join(l2, 'stack'), 'hidden: upper has a directory at stack');
    opaque(l2); // ignored at the root: roots always merge
    // init: ply's mount points.
    mkdir(init);
    mkdir(path.join(init, 'etc'), 0o755, 1_500_000_020);
    write(path.join(init, 'etc/hosts'), '');
    mkdir(path.join(init, 'proc'));
    write(path.join(init, '.dockerenv'), '');
    // upper: what the container did.
    mkdir(upper);
    mkdir(path.join(upper, 'etc'), 0o755, 1_500_000_030);
    write(path.join(upper, 'etc/passwd'), 'root:x:0:0\nuser:x:1000:1000\n', 0o600);
    // cap_net_raw+ep, as setcap writes it (VFS_CAP_REVISION_2).
    native.lsetxattr(path.join(upper, 'etc/passwd'), 'security.capability', Buffer.from([1, 0, 0, 2, 0, 0x20, 0, 0, ...Array(12).fill(0)]));
    write(path.join(upper, 'etc/new'), 'new');
    fs.linkSync(path.join(upper, 'etc/new'), path.join(upper, 'etc/new-link'));
    whiteout(path.join(upper, 'sbin'));
    mkdir(path.join(upper, 'file-then-dir'));
    opaque(path.join(upper, 'file-then-dir')); // empty and opaque: l2's inside is hidden
    write(path.join(upper, 'stack/top'), 'a directory over a file over a directory: only the top one shows');
    mkdir(path.join(upper, 'var'), 0o755, 1_500_000_031);
    whiteout(path.join(upper, 'var/nothing-below')); // a whiteout of nothing
    const layers = [upper, init, l2, l1];
    const names = await assertSameAsMounted(layers, 'fixed stack');
    const shown = ['etc/linked2', 'etc/linked3 -> etc/linked2', 'etc/new', 'etc/new-link -> etc/new', 'var/lib/new', 'var/keep'];
    shown.push('stack/top', 'file-then-dir/', 'dir-then-file', 'dir-then-link', 'bin/', 'null', '.dockerenv');
    for (const n of shown) {
      assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
    }
    const hidden = ['etc/motd', 'etc/linked', 'var/lib/old/', 'stack/below', 'file-then-dir/inside', 'dir-then-file/child'];
    hidden.push('sbin', 'lowest-whiteout', 'var/nothing-below');
    for (const n of hidden) {
      assert.ok(!names.some((x) => x === n || x.startsWith(`${n} `)), `${n} not in ${names.join(', ')}`);
    }
  });

  it('gives what the overlay mount gives for random layer stacks', async () => {
    for (let seed = 1; seed <= 60; seed++) {
      const rand = rng(seed);
      const base = tempDir();
      const n = 2 + Math.floor(rand() * 3);
      const layers: string[] = [];
      for (let i = 0; i < n; i++) {
        const dir = path.join(base, `l${i}`);
        fs.mkdirSync(dir);
        randomLayer(dir, rand, i);
        layers.push(dir);
      }
      await assertSameAsMounted(layers, `seed ${seed}`);
      fs.rmSync(base, { recursive: true, force: true });
    }
  });

  it('checks each opened file against symlinks swapped in, unless the tree is quiescent', async () => {
    const base = tempDir();
    const upper = path.join(base, 'upper');
    const lower = path.join(base, 'lower');
    const outside = path.join(base, 'outside');
    fs.mkdirSync(path.join(upper, 'd'), { recursive: true });
    fs.mkdirSync(lower);
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(upper, 'd', 'f'), 'inside');
    fs.writeFileSync(path.join(outside, 'f'), 'secret');
    const swap = (rel: string) => {
      if (rel === 'd/f') {
        fs.renameSync(path.join(upper, 'd'), path.join(upper, 'd.old'));
        fs.symlinkSync(outside, path.join(upper, 'd'));
      }
      return false;
    };
    await assert.rejects(tarOf((w) => writeMergedTree([upper, lower], w, { skip: swap })), /changed while being archived/);

    // Quiescent: no /proc/self/fd look-ups at all (what `quiescent` is for); checked otherwise.
    const calls: string[] = [];
    const readlink = fs.readlinkSync;
    (fs as { readlinkSync: unknown }).readlinkSync = (p: fs.PathLike, ...rest: unknown[]) => {
      calls.push(String(p));
      return (readlink as (...a: unknown[]) => unknown)(p, ...rest);
    };
    try {
      const tree = tempDir();
      fs.writeFileSync(path.join(tree, 'f'), 'x');
      await tarOf((w) => writeTree(tree, w, { quiescent: true }));
      await tarOf((w) => writeMergedTree([tree, lower], w, { quiescent: true }));
      assert.deepEqual(calls.filter((c) => c.startsWith('/proc/self/fd/')), []);
      await tarOf((w) => writeTree(tree, w));
      await tarOf((w) => writeMergedTree([tree, lower], w));
      assert.equal(calls.filter((c) => c.startsWith('/proc/self/fd/')).length, 2);
    } finally {
      (fs as { readlinkSync: unknown }).readlinkSync = readlink;
    }
  });
});

describe('unmodelledOverlayState', () => {
  it('accepts opaque=y, origin and impure, and no upper dir; names redirects, metacopy, other opaque values, an index', () => {
    const base = tempDir();
    const upper = path.join(base, 'upper');
    const work = path.join(base, 'work');
    assert.equal(unmodelledOverlayState(upper, work), undefined, 'no upper dir yet');
    fs.mkdirSync(path.join(upper, 'a/b'), { recursive: true });
    fs.mkdirSync(work);
    fs.writeFileSync(path.join(upper, 'a/b/f'), 'f');
    opaque(path.join(upper, 'a'));
    native.lsetxattr(path.join(upper, 'a/b/f'), 'trusted.overlay.origin', Buffer.from([0, 1]));
    native.lsetxattr(path.join(upper, 'a/b'), 'trusted.overlay.impure', Y);
    native.lsetxattr(path.join(upper, 'a/b/f'), 'user.x', Y);
    assert.equal(unmodelledOverlayState(upper, work), undefined);

    native.lsetxattr(path.join(upper, 'a/b/f'), 'trusted.overlay.metacopy', Buffer.alloc(0));
    assert.match(unmodelledOverlayState(upper, work) ?? '', /a\/b\/f has trusted\.overlay\.metacopy/);
    native.lremovexattr(path.join(upper, 'a/b/f'), 'trusted.overlay.metacopy');
    native.lsetxattr(path.join(upper, 'a/b'), 'trusted.overlay.redirect', Buffer.from('/x'));
    assert.match(unmodelledOverlayState(upper, work) ?? '', /a\/b has trusted\.overlay\.redirect/);
    native.lremovexattr(path.join(upper, 'a/b'), 'trusted.overlay.redirect');
    native.lsetxattr(path.join(upper, 'a'), 'trusted.overlay.opaque', Buffer.from('x'));
    assert.match(unmodelledOverlayState(upper, work) ?? '', /a has trusted\.overlay\.opaque/);
    opaque(path.join(upper, 'a'));
    assert.equal(unmodelledOverlayState(upper, work), undefined);
    fs.mkdirSync(path.join(work, 'index'));
    assert.equal(unmodelledOverlayState(upper, work), undefined, 'an empty index');
    fs.writeFileSync(path.join(work, 'index', '00fb'), '');
    assert.match(unmodelledOverlayState(upper, work) ?? '', /index is not empty/);
  });
});

describe('exportContainer of a stopped container', () => {
  /** A container dir with an upper and an init layer over one image layer, and a manager that knows only it. */
  function setup() {
    const base = tempDir();
    const cdir = path.join(base, 'containers', 'c1');
    const lower = path.join(base, 'snapshots', 'l1');
    write(path.join(lower, 'etc/motd'), 'image\n');
    write(path.join(lower, 'bin/sh'), crypto.randomBytes(5000), 0o755);
    write(path.join(cdir, 'upper/etc/motd'), 'container\n');
    fs.mkdirSync(path.join(cdir, 'upper/bin'));
    whiteout(path.join(cdir, 'upper/bin/sh'));
    write(path.join(cdir, 'init/.dockerenv'), '');
    fs.mkdirSync(path.join(cdir, 'work'));
    const c = { id: 'c1', name: 'c1', image: 'sha256:x', state: 'exited', startedAt: 1000 } as unknown as Container;
    const calls: string[] = [];
    let current: Container = c;
    const stores = {
      containers: { pathOf: () => cdir, get: () => current },
      images: { get: () => ({}), layers: () => [] },
    };
    // The real overlay snapshotter over a layer store that knows only `lower`; mounts and unmounts are recorded.
    const layers = { dir: path.join(base, 'snapshots'), unpack: async () => [lower] } as unknown as LayerSnapshots;
    const overlay = new OverlaySnapshotter(layers);
    const snapshotter: Snapshotter = Object.assign(Object.create(overlay) as OverlaySnapshotter, {
      mount: async (key: string, parent: Parent) => {
        calls.push(`mount ${1 + (await layers.unpack([])).length}`);
        return overlay.mount(key, parent);
      },
      unmount: (key: string) => {
        calls.push('umount');
        overlay.unmount(key);
      },
    });
    const manager = {
      stores,
      isRunning: (x: Container) => x.state === 'running' || x.state === 'paused',
      snapshot: () => ({ snapshotter, key: cdir, parent: { layers: [], init: path.join(cdir, 'init') } }),
    } as unknown as ContainerManager;
    return { c, cdir, lower, engine: manager, calls, started: (x: Partial<Container>) => (current = { ...c, ...x }) };
  }

  async function exported(manager: ContainerManager, c: Container): Promise<Buffer> {
    const out = path.join(tempDir(), 'out.tar');
    const fd = fs.openSync(out, 'w');
    try {
      await exportContainer(manager, c, fd);
    } finally {
      fs.closeSync(fd);
    }
    return fs.readFileSync(out);
  }

  it('merges its layers without mounting them, as the mount would show them', async () => {
    const { c, cdir, lower, engine, calls } = setup();
    const tar = await exported(engine, c);
    assert.deepEqual(calls, [], 'no mount');
    const want = await withOverlay([path.join(cdir, 'upper'), path.join(cdir, 'init'), lower], (m) => tarOf((w) => writeTree(m, w)));
    assert.ok(tar.equals(want));
    assert.deepEqual(await namesOf(tar), ['.dockerenv', 'bin/', 'etc/', 'etc/motd']);
  });

  it('mounts the rootfs when the upper dir holds what the merge does not model', async () => {
    const { c, cdir, engine, calls } = setup();
    native.lsetxattr(path.join(cdir, 'upper/etc'), 'trusted.overlay.redirect', Buffer.from('/etc'));
    const tar = await exported(engine, c);
    assert.deepEqual(calls, ['mount 2', 'umount']);
    assert.deepEqual(await namesOf(tar), ['.dockerenv', 'bin/', 'etc/', 'etc/motd']);
  });

  it('fails when the container was started during the export', async () => {
    for (const change of [{ state: 'running' }, { startedAt: 2000 }] as Partial<Container>[]) {
      const { c, engine, started } = setup();
      started(change);
      await assert.rejects(exported(engine, c), (e) => e instanceof ConflictError && /was started while being exported/.test(e.message));
    }
  });
});
