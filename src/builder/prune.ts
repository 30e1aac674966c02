// `ply builder prune`: empties the build cache and deletes the intermediate images it kept alive.
//   default: the dangling cache — entries whose images are not in the history (parent chain) of a named image;
//   --all:   every entry; intermediate images go unless a name or a container still holds them.

import fs from 'node:fs';
import path from 'node:path';
import type { Digest } from '../oci/types.js';
import type { Stores } from '../stores.js';
import { BuildCache } from './cache.js';
import { CacheMounts } from './cachemounts.js';

export interface PruneResult {
  /** Image IDs of the deleted intermediate images, and the ids of the cache mounts removed. */
  deleted: string[];
  /** Cache entries removed. */
  entries: number;
  reclaimed: number;
}

export function pruneBuildCache(stores: Stores, opts: { all?: boolean } = {}): PruneResult {
  const { images, containers, content } = stores;
  const cache = new BuildCache(stores.db);
  const names = images.names();
  const inUse = new Set(containers.list().map((c) => c.image));
  const all = images.list();
  const byId = new Map<string, (typeof all)[number]>();
  for (const i of all) byId.set(i.id, i);
  // Images in the history of a named image (its parent chain): their cache is not dangling.
  const kept = new Set<string>();
  if (!opts.all) {
    for (const img of all) {
      if (!names.has(img.digest)) continue;
      for (let cur: (typeof all)[number] | undefined = img; cur && !kept.has(cur.digest); cur = cur.parent ? byId.get(cur.parent) : undefined) {
        kept.add(cur.digest);
      }
    }
  }
  const cached = cache.images();
  const dropEntries = cached.filter((d) => !kept.has(d));
  const deletable = dropEntries.filter((d) => !names.has(d) && !inUse.has(d));
  // Blob sizes before deleting (to report what the deletion frees).
  const sizes = new Map<string, number>();
  for (const d of deletable) {
    for (const blob of images.blobsOf(d)) {
      if (sizes.has(blob)) continue;
      try {
        sizes.set(blob, fs.statSync(content.path(blob)).size);
      } catch {
        // already gone
      }
    }
  }
  const entries = cache.remove(opts.all ? undefined : dropEntries);
  const ids = deletable.map((d) => images.get(d)?.id).filter((x): x is Digest => x !== undefined);
  const { blobs } = images.deleteImages(deletable);
  stores.snapshots.prune(images.usedChainIds());
  let reclaimed = 0;
  for (const b of blobs) reclaimed += sizes.get(b) ?? 0;
  // RUN --mount=type=cache directories no build holds now (as buildkit's prune removes exec.cachemount records).
  const mounts = new CacheMounts(path.join(stores.root, 'build', 'cache-mounts')).prune();
  reclaimed += mounts.reclaimed;
  return { deleted: [...new Set(ids), ...mounts.removed], entries: entries + mounts.removed.length, reclaimed };
}
