// One suite every snapshotter passes (as containerd's snapshots testsuite): overlayfs and vfs keep a container's
// writable layer over the same two-layer image and must agree on what it shows, what changed, the layer tar of
// those changes, its size, read-only views, the merge of a stopped container, and clean removal.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { openStores, type Stores } from '../../src/stores.js';
import type { LayerRecord } from '../../src/layer/types.js';
import type { Lease } from '../../src/content/lease.js';
import { ingestLayer } from '../../src/layer/ingest.js';
import { applyLayer } from '../../src/layer/apply.js';
import { writeMergedTree, writeTree } from '../../src/layer/diff.js';
import { commitLayer } from '../../src/snapshot/commit.js';
import type { Parent, Snapshotter } from '../../src/snapshot/index.js';
import { isMounted } from '../../src/snapshot/index.js';
import { decompressed } from '../../src/layer/compression.js';
import { readTar, type TarWriter } from '../../src/tar/index.js';
import { tarBytes, tempDir } from '../helpers.js';

const T = 1_700_000_000;
const dir = (w: TarWriter, name: string) => w.add({ name, type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: T });
const file = (w: TarWriter, name: string, text: string, mode = 0o644) =>
  w.add({ name, type: 'file', mode, uid: 0, gid: 0, size: Buffer.byteLength(text), mtime: T }, Buffer.from(text));

/** path → 'd' | 'l:target' | file content, below `root` (what a tree shows, for comparisons). */
function listing(root: string, skip: (rel: string) => boolean = () => false): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip(r)) continue;
      const p = path.join(root, r);
      const st = fs.lstatSync(p);
      if (st.isDirectory()) {
        out[r] = 'd';
        walk(r);
      } else if (st.isSymbolicLink()) out[r] = `l:${fs.readlinkSync(p)}`;
      else out[r] = fs.readFileSync(p, 'utf8');
    }
  };
  walk('');
  return out;
}

/** The tar's entry names and regular files' contents. */
async function tarListing(tar: Buffer): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const e of readTar(Readable.from([tar]))) {
    const chunks: Buffer[] = [];
    for await (const c of e.body) chunks.push(c);
    out[e.header.name] = e.header.type === 'dir' ? 'd' : Buffer.concat(chunks).toString();
  }
  return out;
}

let stores: Stores & { close(): void };
let lease: Lease;
let layers: LayerRecord[];

before(async () => {
  stores = openStores(tempDir());
  lease = stores.images.lease();
  const l0 = await tarBytes(async (w) => {
    for (const d of ['bin/', 'etc/', 'dir/', 'dir/sub/', 'gone/']) await dir(w, d);
    await file(w, 'bin/tool', '#!/bin/sh\n', 0o755);
    await file(w, 'etc/motd', 'base\n');
    await file(w, 'etc/keep', 'keep\n');
    await file(w, 'dir/sub/file', 'sub\n');
    await file(w, 'gone/file', 'gone\n');
    await w.add({ name: 'etc/link', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, mtime: T, linkname: 'motd' });
  });
  const l1 = await tarBytes(async (w) => {
    await dir(w, 'etc/');
    await file(w, 'etc/motd', 'layer one\n');
    await file(w, '.wh.gone', '');
    await file(w, 'extra', 'extra\n');
  });
  layers = [];
  for (const [i, t] of [l0, l1].entries()) layers.push(await ingestLayer(stores.content, Readable.from([t]), { key: `suite-${i}`, lease }));
});

after(() => {
  lease.release();
  stores.close();
});

/** What the container sees of the image: L1 over L0 (gone/ deleted), the init layer on top. */
const IMAGE = {
  bin: 'd',
  'bin/tool': '#!/bin/sh\n',
  dir: 'd',
  'dir/sub': 'd',
  'dir/sub/file': 'sub\n',
  etc: 'd',
  'etc/keep': 'keep\n',
  'etc/link': 'l:motd',
  'etc/motd': 'layer one\n',
  extra: 'extra\n',
};

for (const name of ['overlayfs', 'vfs'] as const) {
  describe(`snapshotter ${name}`, () => {
    let s: Snapshotter;
    let parent: Parent;
    const keys: string[] = [];
    const newKey = () => {
      const k = path.join(stores.containers.dir, `${name}-${keys.length}`);
      fs.mkdirSync(k, { recursive: true });
      keys.push(k);
      const init = path.join(k, 'init');
      fs.mkdirSync(path.join(init, 'etc'), { recursive: true });
      fs.writeFileSync(path.join(init, '.dockerenv'), '');
      fs.writeFileSync(path.join(init, 'etc/hostname'), '');
      parent = { layers, init };
      return k;
    };
    before(() => {
      s = stores.snapshots.driver(name);
      assert.equal(s.name, name);
    });
    after(() => {
      for (const k of keys) s.remove(k);
    });

    it('prepare and mount show the image with the init layer on top; a second mount is the same tree', async () => {
      const key = newKey();
      await s.prepare(key, parent);
      const rootfs = await s.mount(key, parent);
      assert.deepEqual(listing(rootfs), { ...IMAGE, '.dockerenv': '', 'etc/hostname': '' });
      assert.equal(await s.mount(key, parent), rootfs);
      assert.equal(s.hasChanges(key), false);
      assert.deepEqual(s.changes(key, parent), []);
      assert.equal(s.mounted(key), name === 'overlayfs');
      s.unmount(key);
      assert.equal(s.mounted(key), false);
    });

    it('changes, diff and usage agree with what was written, removed and made again', async () => {
      const key = newKey();
      await s.prepare(key, parent);
      const rootfs = await s.mount(key, parent);
      fs.writeFileSync(path.join(rootfs, 'new.txt'), 'new file\n');
      fs.writeFileSync(path.join(rootfs, 'etc/motd'), 'changed by the container\n');
      fs.writeFileSync(path.join(rootfs, 'etc/hostname'), 'box\n');
      fs.rmSync(path.join(rootfs, 'etc/keep'));
      fs.rmSync(path.join(rootfs, 'dir'), { recursive: true });
      fs.rmSync(path.join(rootfs, 'bin'), { recursive: true });
      fs.mkdirSync(path.join(rootfs, 'bin'));
      fs.writeFileSync(path.join(rootfs, 'bin/only'), 'only\n');
      s.unmount(key);
      assert.equal(s.hasChanges(key), true);
      assert.deepEqual(s.changes(key, parent), [
        { kind: 'C', path: '/bin' },
        { kind: 'A', path: '/bin/only' },
        { kind: 'D', path: '/dir' },
        { kind: 'C', path: '/etc' },
        { kind: 'A', path: '/etc/hostname' },
        { kind: 'D', path: '/etc/keep' },
        { kind: 'C', path: '/etc/motd' },
        { kind: 'A', path: '/new.txt' },
      ]);
      const written = ['new file\n', 'changed by the container\n', 'box\n', 'only\n'].reduce((n, t) => n + t.length, 0);
      assert.equal(s.usage(key), written);
      // The layer: the changes with whiteouts; applied over the image it gives the container's tree (init aside).
      const layer = (await commitLayer(s, key, stores.content, lease, { quiescent: true }))!;
      const tar = await new Promise<Buffer>((resolve, reject) => {
        const chunks: Buffer[] = [];
        stores.content.read(layer.digest).on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject);
      });
      const entries = await tarListing(tar);
      assert.equal(entries['.wh.dir'], '');
      assert.equal(entries['etc/.wh.keep'], '');
      assert.equal(entries['bin/.wh..wh..opq'], '');
      assert.equal(entries['etc/motd'], 'changed by the container\n');
      const applied = tempDir();
      for (const l of [...layers, layer]) await applyLayer(applied, decompressed(stores.content.read(l.digest)), { mode: 'flat' });
      const rootfs2 = await s.mount(key, parent);
      const initOnly = new Set(['.dockerenv']);
      assert.deepEqual(listing(applied), listing(rootfs2, (r) => initOnly.has(r)));
      s.unmount(key);
    });

    it('a stopped container read without a mount (when the snapshotter can) shows what the mount shows', async () => {
      const key = newKey();
      await s.prepare(key, parent);
      const rootfs = await s.mount(key, parent);
      fs.writeFileSync(path.join(rootfs, 'etc/motd'), 'merged?\n');
      fs.rmSync(path.join(rootfs, 'extra'));
      const mountedTar = await tarBytes((w) => writeTree(rootfs, w));
      s.unmount(key);
      const merge = await s.mergeLayers(key, parent);
      if (merge === null) return; // read through `mount` instead (vfs: the tree is a plain directory)
      assert.deepEqual(await tarListing(await tarBytes((w) => writeMergedTree(merge, w))), await tarListing(mountedTar));
    });

    it('views: the merged layers, read-only; released without a trace', async () => {
      const base = tempDir();
      const view = await s.view(path.join(base, 'v'), layers);
      assert.deepEqual(listing(view), IMAGE);
      if (name === 'overlayfs') assert.throws(() => fs.writeFileSync(path.join(view, 'x'), ''), /EROFS/);
      s.releaseView(view);
      assert.equal(isMounted(view), false);
      const single = await s.view(path.join(base, 'one'), layers.slice(0, 1));
      assert.equal(fs.readFileSync(path.join(single, 'etc/motd'), 'utf8'), 'base\n');
      s.releaseView(single);
    });

    it('remove leaves nothing mounted; a prepare of a removed key starts afresh', async () => {
      const key = newKey();
      await s.prepare(key, parent);
      const rootfs = await s.mount(key, parent);
      fs.writeFileSync(path.join(rootfs, 'junk'), 'junk');
      s.remove(key);
      assert.equal(isMounted(path.join(key, 'merged')), false);
      fs.rmSync(key, { recursive: true, force: true });
      newKey();
      const again = keys[keys.length - 1]!;
      fs.renameSync(again, key);
      keys.pop();
      parent = { layers, init: path.join(key, 'init') };
      await s.prepare(key, parent);
      assert.deepEqual(listing(await s.mount(key, parent)), { ...IMAGE, '.dockerenv': '', 'etc/hostname': '' });
      s.unmount(key);
    });
  });
}
