// Read-only views of image filesystems for the builder (COPY's destination checks, --chown names, COPY --from
// sources, WORKDIR): the image's unpacked layers, mounted as a read-only overlay (or used directly when there is
// only one), kept until the build ends; with the vfs storage driver (no overlayfs), a flat copy of the layers.

import fs from 'node:fs';
import path from 'node:path';
import { chainIds } from '../digest/digest.js';
import type { LayerRecord } from '../image/store.js';
import * as native from '../native/index.js';
import { isMounted } from '../snapshot/overlay.js';
import type { Stores } from '../stores.js';

export class RootfsViews {
  private readonly views = new Map<string, string>();
  private readonly mounted: string[] = [];
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
    let view: string;
    if (this.stores.snapshots.driver() === 'vfs') {
      // No overlayfs: a flat copy of the layers.
      const { flattenLayers } = await import('../snapshot/vfs.js');
      view = path.join(this.dir, `view-${this.n++}`);
      await flattenLayers(this.stores.content, layers, view);
      this.views.set(key, view);
      return view;
    }
    const lowers = await this.stores.snapshots.unpack(layers);
    if (lowers.length === 1) {
      view = lowers[0]!;
    } else {
      view = path.join(this.dir, `view-${this.n++}`);
      fs.mkdirSync(view, { recursive: true });
      native.mount('overlay', view, 'overlay', native.MS_RDONLY, `lowerdir=${lowers.join(':')}`);
      this.mounted.push(view);
    }
    this.views.set(key, view);
    return view;
  }

  release(): void {
    for (const m of this.mounted.splice(0)) {
      try {
        native.umount2(m, 0);
      } catch {
        if (isMounted(m)) native.umount2(m, native.MNT_DETACH);
      }
    }
    this.views.clear();
  }
}
