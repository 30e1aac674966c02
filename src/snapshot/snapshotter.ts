// The snapshotter interface: a container's writable layer over its image's read-only layers, as containerd's
// snapshotters keep it. Two implementations pass one test suite (test/unit/snapshotter-suite.test.ts):
// overlayfs (overlay.ts: the image's layers unpacked once per ChainID and shared, the container's changes in an
// upper dir) and vfs (vfs.ts: where overlayfs cannot be mounted, a plain copy per container and a manifest of
// what it held). A container keeps the snapshotter it was created with (Snapshots.of); new ones get the store's
// (Snapshots.forNew, probed once).
//
// The lifecycle of a container's snapshot, keyed by its directory:
//
//   const s = snapshots.forNew();
//   await s.prepare(key, parent);            // the writable snapshot over parent (vfs: the copy is made now)
//   const rootfs = await s.mount(key, parent); // the tree the container runs in (overlay: mounted here)
//   …the container writes into rootfs…
//   s.unmount(key);
//   s.changes(key, parent);                  // [{ kind: 'A' | 'C' | 'D', path: '/etc/motd' }, …]
//   await commitLayer(s, key, parent, …);    // snapshot/commit.ts: the changes as one new image layer
//   s.usage(key);                            // bytes of the writable layer
//   s.remove(key);                           // unmounted; the caller deletes the directory with its record
import type { LayerRecord } from '../layer/types.js';
import type { TarWriter } from '../tar/index.js';

/** What a container's writable layer sits on: its image's layers (bottom first) and its init layer's directory. */
export interface Parent {
  layers: LayerRecord[];
  /** docker's "-init" layer: mount points and /etc files the runtime needs, below the writable layer. */
  init: string;
}

/** docker diff's entries: A added, C changed, D deleted; `path` absolute in the container. */
export interface Change {
  kind: 'A' | 'C' | 'D';
  path: string;
}

export interface Snapshotter {
  /** docker's driver name: 'overlayfs' or 'vfs'. */
  readonly name: 'overlayfs' | 'vfs';
  /** Makes the writable snapshot `key` over `parent` (idempotent; vfs copies the image here). */
  prepare(key: string, parent: Parent): Promise<void>;
  /** The root filesystem of `key`, ready to run in (overlay mounts it; a mounted one is returned as it is). */
  mount(key: string, parent: Parent): Promise<string>;
  /** Whether `key`'s rootfs is mounted now (never, for vfs). */
  mounted(key: string): boolean;
  unmount(key: string): void;
  /** What the writable layer changed, in docker's order (by path). */
  changes(key: string, parent: Parent): Change[];
  /** Whether the writable layer holds anything (cheaper than `changes`). */
  hasChanges(key: string): boolean;
  /** Writes the writable layer's changes as a layer tar (whiteouts for deletions); does not finish the writer. */
  diff(key: string, writer: TarWriter, opts: { quiescent: boolean; clamp?: number }): Promise<void>;
  /** Bytes of the files in the writable layer (`ps -s`, `system df`). */
  usage(key: string): number;
  /**
   * The directories whose merge (top first) is a stopped container's filesystem, read without mounting
   * (writeMergedTree), or null when the tree must be read from `mount` instead.
   */
  mergeLayers(key: string, parent: Parent): Promise<string[] | null>;
  /** A read-only view of `layers` (bottom first) made under `dir`; its path (it may be a shared directory). */
  view(dir: string, layers: LayerRecord[]): Promise<string>;
  /** Releases a view `view` returned. */
  releaseView(view: string): void;
  /** Unmounts `key`; the caller deletes its directory. Throws when it stays mounted. */
  remove(key: string): void;
  /** docker inspect's GraphDriver.Data for `key`. */
  graphData(key: string): Record<string, string>;
}
