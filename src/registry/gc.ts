// Registry garbage collection: blobs no manifest references (and their repository links), abandoned uploads.
import fs from 'node:fs';
import path from 'node:path';
import { pidAlive } from '../content/store.js';
import { NotFoundError } from '../errors.js';
import { writeTx } from './db.js';
import { RegistryStorage } from './storage.js';

export interface GcOptions {
  dryRun?: boolean;
  /**
   * Blobs linked or written more recently than this are kept, so a push in progress (blobs first, manifest
   * last) is not undone. Default: 15 minutes while a registry server is running on this root, else 0.
   */
  graceMs?: number;
  /** Upload sessions idle this long are removed (default one day). */
  uploadMaxAgeMs?: number;
}

export interface GcResult {
  blobs: Array<{ digest: string; size: number }>;
  links: Array<{ repository: string; digest: string }>;
  uploads: string[];
  ingests: string[];
  bytes: number;
}

const DAY = 24 * 3600_000;

/** Whether a registry server (another process, or this one) is serving `root`. */
export function serverRunning(root: string): boolean {
  try {
    const pid = Number(fs.readFileSync(path.join(root, 'registry.pid'), 'utf8'));
    return Number.isInteger(pid) && pid > 0 && pidAlive(pid);
  } catch {
    return false;
  }
}

export function gcRegistry(root: string, opts: GcOptions = {}): GcResult {
  if (!fs.existsSync(path.join(root, 'registry.db'))) throw new NotFoundError(`no registry at ${root}`);
  const dryRun = opts.dryRun ?? false;
  const grace = opts.graceMs ?? (serverRunning(root) ? 15 * 60_000 : 0);
  const uploadMaxAge = opts.uploadMaxAgeMs ?? DAY;
  const storage = new RegistryStorage(root);
  const result: GcResult = { blobs: [], links: [], uploads: [], ingests: [], bytes: 0 };
  try {
    const db = storage.db;
    const now = Date.now();
    writeTx(db, () => {
      // Links a manifest of the same repository does not reference.
      const stale = db
        .prepare(
          `SELECT l.repo AS repo, r.name AS repository, l.digest AS digest FROM blob_links l JOIN repositories r ON r.id = l.repo
           WHERE l.created <= ?
             AND NOT EXISTS (SELECT 1 FROM manifest_refs m WHERE m.repo = l.repo AND m.digest = l.digest)
             AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo = l.repo AND m.digest = l.digest)
           ORDER BY r.name, l.digest`,
        )
        .all(now - grace) as Array<{ repo: number; repository: string; digest: string }>;
      const unlink = db.prepare('DELETE FROM blob_links WHERE repo = ? AND digest = ?');
      for (const s of stale) {
        result.links.push({ repository: s.repository, digest: s.digest });
        if (!dryRun) unlink.run(s.repo, s.digest);
      }
      // What stays: every manifest, everything a manifest references, every link not removed above.
      const staleKeys = new Set(stale.map((x) => `${x.repo} ${x.digest}`));
      const keep = new Set<string>();
      for (const sql of ['SELECT digest FROM manifests', 'SELECT digest FROM manifest_refs']) {
        for (const row of db.prepare(sql).all() as Array<{ digest: string }>) keep.add(row.digest);
      }
      for (const row of db.prepare('SELECT repo, digest FROM blob_links').all() as Array<{ repo: number; digest: string }>) {
        if (!staleKeys.has(`${row.repo} ${row.digest}`)) keep.add(row.digest);
      }
      for (const digest of storage.store.list()) {
        if (keep.has(digest)) continue;
        let st: fs.Stats;
        try {
          st = fs.statSync(storage.store.path(digest));
        } catch {
          continue;
        }
        if (st.mtimeMs > now - grace) continue;
        result.blobs.push({ digest, size: st.size });
        result.bytes += st.size;
        if (!dryRun) storage.store.delete(digest);
      }
      const old = db.prepare('SELECT uuid FROM uploads WHERE updated <= ?').all(now - uploadMaxAge) as Array<{ uuid: string }>;
      for (const { uuid } of old) {
        result.uploads.push(uuid);
        if (!dryRun) {
          db.prepare('DELETE FROM uploads WHERE uuid = ?').run(uuid);
          fs.rmSync(path.dirname(storage.ingestDataPath(uuid)), { recursive: true, force: true });
        }
      }
    });
    // Ingest directories no session owns and no live process holds (interrupted pushes, removed sessions).
    const live = new Set((db.prepare('SELECT uuid FROM uploads').all() as Array<{ uuid: string }>).map((r) => RegistryStorage.ingestKey(r.uuid)));
    const removed = new Set(result.uploads.map((u) => RegistryStorage.ingestKey(u)));
    const keep = (key: string) => live.has(key) || removed.has(key);
    for (const { key } of storage.store.removeStaleIngests(Math.min(uploadMaxAge, Math.max(grace, 3600_000)), { dryRun, keep })) {
      result.ingests.push(key);
    }
  } finally {
    storage.close();
  }
  return result;
}
