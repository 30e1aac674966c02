// The vfs storage driver, for hosts where overlayfs cannot be mounted (docker's "vfs"): a container's rootfs is a
// plain directory, containers/<id>/merged, holding a full copy of its image's layers with its init layer on top,
// built once when the container is created (as docker's vfs driver copies at create), with a manifest of what
// the copy held (containers/<id>/vfs-manifest). What the container changed is found by comparing the tree with
// that manifest (src/layer/changes-vfs.ts). Nothing is mounted: starting, stopping and exec use the directory as
// it is, and `rm` deletes it with the container's directory.
//
// Which snapshotter a container uses is decided when it is created and recorded in containers/<id>/storage-driver
// ("vfs"; absent: overlay, so containers made before this file existed stay overlay containers): index.ts reads it.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ContentStore } from '../content/store.js';
import { InvalidArgumentError } from '../errors.js';
import type { LayerRecord } from '../layer/types.js';
import { applyLayer } from '../layer/apply.js';
import { vfsChanges, vfsLayerSize, writeVfsLayer, writeVfsManifest } from '../layer/changes-vfs.js';
import { decompressed } from '../layer/compression.js';
import { writeTree } from '../layer/diff.js';
import { removeTree } from '../util/fs.js';
import * as native from '../native/index.js';
import { TarWriter } from '../tar/index.js';
import type { Change, Parent, Snapshotter } from './snapshotter.js';

export type StorageDriver = 'overlay' | 'vfs';

const DRIVER_FILE = 'storage-driver';
const VFS_MANIFEST = 'vfs-manifest';

/** The driver chosen for new containers, per store root (probed once per process). */
const chosen = new Map<string, StorageDriver>();

/**
 * The driver for new containers: PLY_STORAGE_DRIVER (overlay or vfs) when set; otherwise overlay if a small
 * overlay mount works under `root`, vfs if it fails as it does without overlayfs or the right to mount it
 * (EPERM, ENODEV, EINVAL).
 */
export function chooseDriver(root: string): StorageDriver {
  const env = process.env.PLY_STORAGE_DRIVER;
  if (env) {
    if (env === 'overlay' || env === 'overlayfs') return 'overlay';
    if (env === 'vfs') return 'vfs';
    throw new InvalidArgumentError(`PLY_STORAGE_DRIVER=${env}: expected overlay or vfs`);
  }
  let d = chosen.get(root);
  if (d === undefined) {
    d = overlayWorks(root) ? 'overlay' : 'vfs';
    chosen.set(root, d);
  }
  return d;
}

/** Mounts a one-layer overlay in a temporary directory under `root` and unmounts it. */
function overlayWorks(root: string): boolean {
  const dir = path.join(root, `tmp-overlay-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  const [lower, upper, work, merged] = ['l', 'u', 'w', 'm'].map((n) => path.join(dir, n)) as [string, string, string, string];
  try {
    for (const d of [lower, upper, work, merged]) fs.mkdirSync(d, { recursive: true, mode: 0o700 });
    try {
      native.mount('overlay', merged, 'overlay', 0, `lowerdir=${lower},upperdir=${upper},workdir=${work}`);
    } catch (e) {
      if (native.hasErrno(e, 'EPERM', 'ENODEV', 'EINVAL')) return false;
      return true; // something else: the real mount will say what
    }
    try {
      native.umount2(merged, 0);
    } catch {
      native.umount2(merged, native.MNT_DETACH);
    }
    return true;
  } finally {
    removeTree(dir);
  }
}

/** The driver the container in `containerDir` was created with. */
export function containerDriver(containerDir: string): StorageDriver {
  try {
    return fs.readFileSync(path.join(containerDir, DRIVER_FILE), 'utf8').trim() === 'vfs' ? 'vfs' : 'overlay';
  } catch {
    return 'overlay';
  }
}

/** Where a vfs container's tree and manifest are. */
function vfsLayout(containerDir: string): { tree: string; manifest: string } {
  return { tree: path.join(containerDir, 'merged'), manifest: path.join(containerDir, VFS_MANIFEST) };
}

/** The rootfs of a vfs container, once built. */
function vfsRootfs(containerDir: string): string | undefined {
  return fs.existsSync(path.join(containerDir, VFS_MANIFEST)) ? path.join(containerDir, 'merged') : undefined;
}

/**
 * The vfs snapshotter: KEY/merged is a plain copy of the image with the init layer on top, made at `prepare`;
 * KEY/vfs-manifest says what it held, so changes are the tree against it. Nothing is mounted.
 */
export class VfsSnapshotter implements Snapshotter {
  readonly name = 'vfs' as const;

  constructor(private readonly content: ContentStore) {}

  async prepare(key: string, parent: Parent): Promise<void> {
    // The marker first: a build interrupted half-way is redone (the manifest, written last, says it is done).
    fs.writeFileSync(path.join(key, DRIVER_FILE), 'vfs\n');
    await buildVfsRootfs(this.content, parent.layers, parent.init, key);
  }

  async mount(key: string, parent: Parent): Promise<string> {
    return vfsRootfs(key) ?? buildVfsRootfs(this.content, parent.layers, parent.init, key);
  }

  mounted(): boolean {
    return false;
  }

  unmount(): void {}

  changes(key: string): Change[] {
    const v = vfsLayout(key);
    return vfsRootfs(key) ? vfsChanges(v.tree, v.manifest).map((ch) => ({ kind: ch.kind, path: `/${ch.rel}` })) : [];
  }

  hasChanges(key: string): boolean {
    return this.changes(key).length > 0;
  }

  async diff(key: string, writer: TarWriter, opts: { quiescent: boolean; clamp?: number }): Promise<void> {
    if (!vfsRootfs(key)) return;
    const v = vfsLayout(key);
    await writeVfsLayer(v.tree, v.manifest, writer, { quiescent: opts.quiescent, ...(opts.clamp !== undefined ? { clamp: opts.clamp } : {}) });
  }

  usage(key: string): number {
    const v = vfsLayout(key);
    return vfsRootfs(key) ? vfsLayerSize(v.tree, v.manifest) : 0;
  }

  /** The rootfs is a plain directory: read it as it is. */
  async mergeLayers(): Promise<null> {
    return null;
  }

  /** A flat copy of the layers (there is no read-only overlay without overlayfs). */
  async view(dir: string, layers: LayerRecord[]): Promise<string> {
    await flattenLayers(this.content, layers, dir);
    return dir;
  }

  releaseView(view: string): void {
    removeTree(view);
  }

  remove(): void {}

  graphData(key: string): Record<string, string> {
    return { MergedDir: `${key}/merged` };
  }
}

/**
 * Builds a vfs container's rootfs (unless built): `layers` (bottom first) applied in order from the content
 * store into containerDir/merged, as a flat tree (whiteouts delete), then `initDir` on top, then the manifest.
 * The manifest is written last: without it the directory is an unfinished build and is built again.
 */
async function buildVfsRootfs(content: ContentStore, layers: LayerRecord[], initDir: string, containerDir: string): Promise<string> {
  const built = vfsRootfs(containerDir);
  if (built) return built;
  const merged = path.join(containerDir, 'merged');
  const tmp = `${merged}.tmp`;
  removeTree(tmp);
  fs.mkdirSync(tmp, { mode: 0o755 });
  try {
    return await buildInto(content, layers, initDir, containerDir, tmp);
  } catch (e) {
    // A build that failed (a full disk) gives its space back; the next start builds again.
    removeTree(tmp);
    throw e;
  }
}

async function buildInto(content: ContentStore, layers: LayerRecord[], initDir: string, containerDir: string, tmp: string): Promise<string> {
  const merged = path.join(containerDir, 'merged');
  for (const l of layers) await applyLayer(tmp, decompressed(content.read(l.digest)), { mode: 'flat' });
  // Paths only the init layer has: a write to them shows as an addition, as with overlay (they are not the image's).
  const initOnly = new Set<string>();
  const scan = (rel: string) => {
    for (const d of fs.readdirSync(path.join(initDir, rel), { withFileTypes: true })) {
      const r = rel === '' ? d.name : `${rel}/${d.name}`;
      if (fs.lstatSync(path.join(tmp, r), { throwIfNoEntry: false }) === undefined) initOnly.add(r);
      if (d.isDirectory()) scan(r);
    }
  };
  scan('');
  const writer = new TarWriter();
  const produce = (async () => {
    await writeTree(initDir, writer, { quiescent: true });
    await writer.finish();
  })();
  produce.catch((e: unknown) => writer.destroy(e as Error));
  await applyLayer(tmp, writer.stream, { mode: 'flat' });
  await produce;
  removeTree(merged);
  fs.renameSync(tmp, merged);
  writeVfsManifest(merged, path.join(containerDir, VFS_MANIFEST), initOnly);
  return merged;
}

/** A read-only flat copy of `layers` (bottom first) in the new directory `dir` (the builder's image views). */
async function flattenLayers(content: ContentStore, layers: LayerRecord[], dir: string): Promise<void> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const l of layers) await applyLayer(dir, decompressed(content.read(l.digest)), { mode: 'flat' });
}
