// Read-only views of image filesystems for the builder (COPY's destination checks, --chown names, COPY --from
// sources, WORKDIR): the image's unpacked layers, mounted as a read-only overlay (or used directly when there is
// only one), kept until the build ends; with the vfs storage driver (no overlayfs), a flat copy of the layers.

import path from 'node:path';
import { chainIds } from '../digest/digest.js';
import type { LayerRecord } from '../layer/types.js';
import type { Snapshotter } from '../snapshot/index.js';
import type { Stores } from '../stores.js';

export class RootfsViews {
  private readonly views = new Map<string, string>();
  private readonly made: { snapshotter: Snapshotter; view: string }[] = [];
  private n = 0;

  constructor(
    private readonly stores: Stores,
    /** A directory of this build's own, removed at the end. */
    private readonly dir: string,
  ) {}

  /** The merged filesystem of `layers` (bottom first), read-only. */
  async get(layers: LayerRecord[]): Promise<string> {
    const chains = chainIds(layers.map((l) => l.diffId));
    const key = chains[chains.length - 1] ?? 'empty';
    const known = this.views.get(key);
    if (known) return known;
    // Views follow the store's snapshotter: read-only overlays of the unpacked layers, or flat copies (vfs).
    const snapshotter = this.stores.snapshots.forNew();
    const view = await snapshotter.view(path.join(this.dir, `view-${this.n++}`), layers);
    this.made.push({ snapshotter, view });
    this.views.set(key, view);
    return view;
  }

  release(): void {
    for (const { snapshotter, view } of this.made.splice(0)) snapshotter.releaseView(view);
    this.views.clear();
  }
}
