// The snapshots of one store: the unpacked image layers (layers.ts) and the two snapshotters over them. Which
// one a container uses is decided once, when it is created (forNew: PLY_STORAGE_DRIVER, else overlayfs when a
// probe mount works, else vfs), and recorded with it (of: what it was created with), so nothing outside this
// module asks which driver a container has.
import path from 'node:path';
import type { ContentStore } from '../content/store.js';
import type { DB } from '../db/db.js';
import { LayerSnapshots } from './layers.js';
import { OverlaySnapshotter } from './overlay.js';
import type { Snapshotter } from './snapshotter.js';
import { chooseDriver, containerDriver, VfsSnapshotter } from './vfs.js';

export type { Change, Parent, Snapshotter } from './snapshotter.js';
export { isAbandonedUnpack, LayerSnapshots } from './layers.js';
export { isMounted } from './mount.js';

export class Snapshots {
  /** The unpacked image layers (snapshots/<ChainID>), shared by the overlay snapshots above them. */
  readonly layers: LayerSnapshots;
  private readonly overlay: OverlaySnapshotter;
  private readonly vfs: VfsSnapshotter;

  constructor(
    private readonly root: string,
    db: DB,
    content: ContentStore,
  ) {
    this.layers = new LayerSnapshots(root, db, content);
    this.overlay = new OverlaySnapshotter(this.layers);
    this.vfs = new VfsSnapshotter(content);
  }

  /** The snapshotter new containers (and build views) get in this store. */
  forNew(): Snapshotter {
    return chooseDriver(this.root) === 'vfs' ? this.vfs : this.overlay;
  }

  /** A snapshotter by its driver name (the shared test suite runs each). */
  driver(name: 'overlayfs' | 'vfs'): Snapshotter {
    return name === 'vfs' ? this.vfs : this.overlay;
  }

  /** The snapshotter the container whose directory is `key` was created with. */
  of(key: string): Snapshotter {
    return containerDriver(key) === 'vfs' ? this.vfs : this.overlay;
  }

  /** Removes unpacked layers no image uses any more; how many. */
  prune(usedChains: Set<string>): number {
    return this.layers.prune(usedChains);
  }

  /** Where the store keeps unpacked layers. */
  get dir(): string {
    return path.join(this.root, 'snapshots');
  }
}
