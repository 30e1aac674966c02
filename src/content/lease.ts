// Leases: what keeps blobs alive while an operation writes them and before an image references them (containerd's
// leases). Garbage collection deletes only blobs no image and no live lease holds; a lease of a dead process, or one
// older than a day, holds nothing. The leases and lease_blobs tables are this module's.
import { randomBytes } from 'node:crypto';
import type { DB } from '../db/db.js';
import type { Digest } from '../oci/types.js';
import { pidAlive } from './store.js';

const LEASE_MAX_AGE_MS = 24 * 3600_000;

/** A lease keeps blobs alive while an operation writes them and before an image references them. */
export class Lease {
  constructor(
    private readonly db: DB,
    readonly id: string,
  ) {}
  /** Call before writing or reusing a blob, so a concurrent GC keeps it. */
  add(digest: Digest): void {
    this.db.prepare('INSERT OR IGNORE INTO lease_blobs (lease, blob) VALUES (?, ?)').run(this.id, digest);
  }
  release(): void {
    this.db.prepare('DELETE FROM leases WHERE id = ?').run(this.id);
  }
}

export class Leases {
  constructor(private readonly db: DB) {}

  /** A new lease, owned by this process. */
  create(): Lease {
    const id = randomBytes(8).toString('hex');
    this.db.prepare('INSERT INTO leases (id, pid, created) VALUES (?, ?, ?)').run(id, process.pid, Date.now());
    return new Lease(this.db, id);
  }

  /** Drops the leases of dead processes and those past their age (call inside the GC's write transaction). */
  expire(): void {
    const leases = this.db.prepare('SELECT id, pid, created FROM leases').all() as { id: string; pid: number; created: number }[];
    for (const l of leases) {
      if ((l.pid !== process.pid && !pidAlive(l.pid)) || Date.now() - l.created > LEASE_MAX_AGE_MS) {
        this.db.prepare('DELETE FROM leases WHERE id = ?').run(l.id);
      }
    }
  }

  /** Every blob a live lease holds. */
  heldBlobs(): Set<Digest> {
    return new Set((this.db.prepare('SELECT DISTINCT blob FROM lease_blobs').all() as { blob: Digest }[]).map((r) => r.blob));
  }
}
