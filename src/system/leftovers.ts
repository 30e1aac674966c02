// What interrupted work leaves in a store, reclaimed by the prune commands: ingests no writer holds (partial
// downloads and imports), work directories and RUN containers of killed builds, and abandoned unpacks.
import path from 'node:path';
import { orphanedBuildContainer, removeStaleWorkDirs } from '../builder/workdirs.js';
import type { Stores } from '../stores.js';
import { dirSize } from '../util/fs.js';

export interface Leftovers {
  ingests: string[];
  buildContainers: string[];
  /** Bytes freed. */
  reclaimed: number;
}

/** `removeContainer` force-removes a container (with its anonymous volumes) by ID. */
export async function reclaimLeftovers(stores: Stores, removeContainer: (id: string) => Promise<void>): Promise<Leftovers> {
  let reclaimed = 0;
  const ingests: string[] = [];
  for (const { key, size } of stores.content.removeStaleIngests(0)) {
    ingests.push(key);
    reclaimed += size;
  }
  reclaimed += removeStaleWorkDirs(path.join(stores.root, 'build'));
  const buildContainers: string[] = [];
  for (const c of stores.containers.list()) {
    if (!orphanedBuildContainer(c.spec.labels)) continue;
    reclaimed += dirSize(stores.containers.pathOf(c.id));
    await removeContainer(c.id);
    buildContainers.push(c.id);
  }
  return { ingests, buildContainers, reclaimed };
}
