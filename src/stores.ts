// The stores of one ply root: the metadata DB, the content store, and the image, snapshot, container and volume
// stores over them. The engine opens them once; modules below the engine take the Stores (or the narrower
// pieces they need) instead of the engine, so nothing below the engine imports it.
import path from 'node:path';
import { ContainerStore } from './container/store.js';
import { ContentStore } from './content/store.js';
import { openDb, type DB } from './db/db.js';
import { ImageStore } from './image/store.js';
import { Snapshots } from './snapshot/index.js';
import { VolumeStore } from './volume/store.js';
import { Networks } from './network/index.js';
import { ensurePrivateRoot } from './util/fs.js';
import { EventLog } from './events/log.js';
import { defaultRoot } from './util/root.js';

export interface Stores {
  /** The store root ($PLY_ROOT). */
  readonly root: string;
  readonly db: DB;
  readonly content: ContentStore;
  readonly images: ImageStore;
  /** Unpacked image layers and the snapshotters of containers' writable layers. */
  readonly snapshots: Snapshots;
  readonly containers: ContainerStore;
  readonly volumes: VolumeStore;
  /** Networks, addresses, published ports (records in the DB, bridges and rules on the host). */
  readonly networks: Networks;
  /** docker's events: appended by the modules that do the work, followed by `ply events` and the API's /events. */
  readonly events: EventLog;
}

export { defaultRoot } from './util/root.js';

/** Opens (creating) the stores under `root`; close() closes the DB. */
export function openStores(root: string = defaultRoot()): Stores & { close(): void } {
  ensurePrivateRoot(root);
  const db = openDb(path.join(root, 'ply.db'));
  const content = new ContentStore(root);
  const events = new EventLog(root, db);
  return {
    root,
    db,
    content,
    images: new ImageStore(db, content),
    snapshots: new Snapshots(root, db, content),
    containers: new ContainerStore(root, db),
    volumes: new VolumeStore(root, db, events),
    networks: new Networks(root, db, events),
    events,
    close: () => db.close(),
  };
}
