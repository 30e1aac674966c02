// The image store: image records (manifest + config + layers), names → manifests, and blob GC (leases: content/lease.ts).
import { Leases, type Lease } from '../content/lease.js';
import type { ContentStore } from '../content/store.js';
import { writeTx, type DB } from '../db/db.js';
import { chainIds } from '../digest/digest.js';
import { ConflictError, NotFoundError } from '../errors.js';
import type { LayerRecord } from '../layer/types.js';
import type { Digest, ImageConfig, Manifest } from '../oci/types.js';
import { familiarString, parseNormalized, parseReference, formatReference, repositoryName } from '../reference/reference.js';

export interface ImageRecord {
  digest: Digest; // manifest digest
  id: Digest; // config digest
  mediaType: string;
  size: number;
  created: string | null;
  parent: string | null;
  added: number;
}


export interface NewImage {
  manifestDigest: Digest;
  mediaType: string;
  configDigest: Digest;
  config: ImageConfig;
  layers: LayerRecord[];
  parent?: string;
}

interface ImageRow {
  digest: string;
  config_digest: string;
  media_type: string;
  size: number;
  created: string | null;
  parent: string | null;
  added: number;
}

function toRecord(r: ImageRow): ImageRecord {
  return {
    digest: r.digest as Digest,
    id: r.config_digest as Digest,
    mediaType: r.media_type,
    size: r.size,
    created: r.created,
    parent: r.parent,
    added: r.added,
  };
}

/** Image records (manifest + config + layers), names → manifests, and blob GC; the images, names, image_blobs,
 * layers and repo_digests tables are this module's. */
/** Parsed image configs by digest (immutable content), oldest dropped first. */
const configCache = new Map<string, ImageConfig>();
const CONFIG_CACHE_MAX = 2000;
/** Familiar forms of full names (a pure function of the name). */
const displayCache = new Map<string, string>();
const DISPLAY_CACHE_MAX = 10000;

interface NameRow {
  name: string;
  image: string;
}

/** Names grouped by the image (manifest digest) they point at, in the rows' order. */
function byImage(rows: NameRow[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const r of rows) {
    const list = out.get(r.image);
    if (list) list.push(r.name);
    else out.set(r.image, [r.name]);
  }
  return out;
}

export class ImageStore {
  private readonly leases: Leases;

  constructor(
    readonly db: DB,
    readonly content: ContentStore,
  ) {
    this.leases = new Leases(db);
  }

  lease(): Lease {
    return this.leases.create();
  }

  async withLease<T>(fn: (lease: Lease) => Promise<T>): Promise<T> {
    const lease = this.lease();
    try {
      return await fn(lease);
    } finally {
      lease.release();
    }
  }

  /** Records an image whose blobs are all in the content store; idempotent. */
  addImage(img: NewImage): ImageRecord {
    const size = img.layers.reduce((n, l) => n + l.unpackedSize, 0);
    return writeTx(this.db, () => {
      for (const l of img.layers) this.recordLayer(l);
      this.db
        .prepare(
          'INSERT OR IGNORE INTO images (digest, config_digest, media_type, size, created, parent, added) VALUES (?, ?, ?, ?, ?, ?, ?)',
        )
        .run(img.manifestDigest, img.configDigest, img.mediaType, size, img.config.created ?? null, img.parent ?? null, Date.now());
      const insBlob = this.db.prepare('INSERT OR IGNORE INTO image_blobs (image, blob) VALUES (?, ?)');
      for (const b of [img.manifestDigest, img.configDigest, ...img.layers.map((l) => l.digest)]) insBlob.run(img.manifestDigest, b);
      return toRecord(this.db.prepare('SELECT * FROM images WHERE digest = ?').get(img.manifestDigest) as ImageRow);
    });
  }

  /** Records what is known of a stored layer blob (its diffID and sizes); idempotent. */
  recordLayer(l: LayerRecord): void {
    this.db
      .prepare('INSERT OR IGNORE INTO layers (digest, diff_id, media_type, size, unpacked_size) VALUES (?, ?, ?, ?, ?)')
      .run(l.digest, l.diffId, l.mediaType, l.size, l.unpackedSize);
  }

  /** What is recorded of a stored layer blob (its diffID and sizes), if anything. */
  layerRecord(digest: Digest): LayerRecord | undefined {
    const r = this.db.prepare('SELECT * FROM layers WHERE digest = ?').get(digest) as
      | { digest: string; diff_id: string; media_type: string; size: number; unpacked_size: number }
      | undefined;
    return r && { digest: r.digest as Digest, diffId: r.diff_id as Digest, mediaType: r.media_type, size: r.size, unpackedSize: r.unpacked_size };
  }

  /** Every blob some image record holds (GC roots, with the leases'). */
  referencedBlobs(): Set<Digest> {
    return new Set((this.db.prepare('SELECT DISTINCT blob FROM image_blobs').all() as { blob: Digest }[]).map((r) => r.blob));
  }

  /** The manifest digest a full name points at, if any. */
  nameTarget(name: string): string | undefined {
    return (this.db.prepare('SELECT digest FROM names WHERE name = ?').get(name) as { digest: string } | undefined)?.digest;
  }

  get(digest: string): ImageRecord | undefined {
    const r = this.db.prepare('SELECT * FROM images WHERE digest = ?').get(digest) as ImageRow | undefined;
    return r && toRecord(r);
  }

  list(): ImageRecord[] {
    return (this.db.prepare('SELECT * FROM images ORDER BY added DESC').all() as ImageRow[]).map(toRecord);
  }

  /** All names, as full references, grouped by manifest digest. */
  names(): Map<string, string[]> {
    return byImage(this.db.prepare('SELECT name, digest AS image FROM names ORDER BY name').all() as NameRow[]);
  }

  namesOf(digest: string): string[] {
    return (this.db.prepare('SELECT name FROM names WHERE digest = ? ORDER BY name').all(digest) as { name: string }[]).map((r) => r.name);
  }

  /** All repo@digest names, grouped by image (manifest digest). */
  repoDigests(): Map<string, string[]> {
    return byImage(this.db.prepare('SELECT name, image FROM repo_digests ORDER BY name').all() as NameRow[]);
  }

  repoDigestsOf(digest: string): string[] {
    return (this.db.prepare('SELECT name FROM repo_digests WHERE image = ? ORDER BY name').all(digest) as { name: string }[]).map(
      (r) => r.name,
    );
  }

  /** The repo@digest names of images holding `blob` (where a registry may already have it). */
  repositoriesHolding(blob: Digest): string[] {
    const rows = this.db.prepare('SELECT r.name AS name FROM repo_digests r JOIN image_blobs b ON b.image = r.image WHERE b.blob = ?').all(blob);
    return (rows as { name: string }[]).map((r) => r.name);
  }

  /** The blobs an image record holds (manifest, config, layers). */
  blobsOf(digest: string): Digest[] {
    return (this.db.prepare('SELECT blob FROM image_blobs WHERE image = ?').all(digest) as { blob: Digest }[]).map((r) => r.blob);
  }

  /** Whether another image was built on this one (docker hides such untagged parents without -a). */
  hasChild(img: ImageRecord): boolean {
    return this.db.prepare('SELECT 1 FROM images WHERE parent = ? LIMIT 1').get(img.id) !== undefined;
  }

  /** The ChainIDs of every stored image's layers: the unpacked layers still in use. */
  usedChainIds(): Set<string> {
    const used = new Set<string>();
    for (const { layers } of this.allLayers()) {
      for (const c of chainIds(layers.map((l) => l.diffId))) used.add(c);
    }
    return used;
  }

  addRepoDigest(digest: Digest, repoAtDigest: string): void {
    this.db.prepare('INSERT OR IGNORE INTO repo_digests (image, name) VALUES (?, ?)').run(digest, repoAtDigest);
  }

  lastTagTime(digest: string): number | undefined {
    const r = this.db.prepare('SELECT MAX(updated) AS t FROM names WHERE digest = ?').get(digest) as { t: number | null };
    return r.t ?? undefined;
  }

  /** Points a name (a full reference with a tag) at an image; the image it pointed at before keeps existing. */
  setName(name: string, digest: Digest): void {
    this.db
      .prepare('INSERT INTO names (name, digest, updated) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET digest = excluded.digest, updated = excluded.updated')
      .run(name, digest, Date.now());
  }

  /** Finds an image by name, full or short ID, or repo@digest, as docker does. */
  resolve(ref: string): ImageRecord {
    const found = this.lookup(ref);
    if (!found) throw new NotFoundError(`No such image: ${ref}`);
    return found;
  }

  lookup(ref: string): ImageRecord | undefined {
    let parsed: ReturnType<typeof parseReference> | undefined;
    try {
      parsed = parseReference(ref);
    } catch {
      parsed = undefined;
    }
    if (parsed) {
      if (parsed.digest) {
        const repo = repositoryName(parsed);
        const row = this.db
          .prepare('SELECT i.* FROM images i JOIN repo_digests r ON r.image = i.digest WHERE r.name = ?')
          .get(`${repo}@${parsed.digest}`) as ImageRow | undefined;
        if (row) return toRecord(row);
        const byDigest = this.get(parsed.digest);
        if (byDigest && (!parsed.tag || this.namesOf(byDigest.digest).some((n) => n.startsWith(`${repo}:`)))) return byDigest;
      } else {
        const name = formatReference(parseNormalized(ref));
        const row = this.db.prepare('SELECT i.* FROM images i JOIN names n ON n.digest = i.digest WHERE n.name = ?').get(name) as
          | ImageRow
          | undefined;
        if (row) return toRecord(row);
      }
    }
    const m = /^(?:(sha256):)?([0-9a-f]{1,64})$/.exec(ref);
    if (m) {
      const prefix = `sha256:${m[2]}`;
      const rows = this.db
        .prepare("SELECT * FROM images WHERE config_digest >= ? AND config_digest < ? ORDER BY added DESC")
        .all(prefix, prefix + '\u{10ffff}') as ImageRow[];
      const ids = new Set(rows.map((r) => r.config_digest));
      if (ids.size > 1) throw new ConflictError(`multiple IDs found with provided prefix: ${ref}`);
      if (rows.length > 0) return toRecord(rows[0]!);
      const byManifest = this.db.prepare('SELECT * FROM images WHERE digest = ?').get(prefix) as ImageRow | undefined;
      if (byManifest) return toRecord(byManifest);
    }
    return undefined;
  }

  manifest(rec: ImageRecord): Manifest {
    return JSON.parse(this.content.readBytes(rec.digest).toString('utf8')) as Manifest;
  }

  config(rec: ImageRecord): ImageConfig {
    return structuredClone(this.configView(rec));
  }

  /** The config, shared: never modify it (`config` gives a copy to change). */
  configView(rec: ImageRecord): Readonly<ImageConfig> {
    // Content-addressed, so never stale: a long-lived process (the API's image lists) reads each config once.
    let config = configCache.get(rec.id);
    if (!config) {
      config = JSON.parse(this.content.readBytes(rec.id).toString('utf8')) as ImageConfig;
      if (configCache.size >= CONFIG_CACHE_MAX) configCache.delete(configCache.keys().next().value!);
      configCache.set(rec.id, config);
    }
    return config;
  }

  layers(rec: ImageRecord): LayerRecord[] {
    return this.manifest(rec).layers.map((d) => {
      const r = this.layerRecord(d.digest);
      if (!r) throw new NotFoundError(`layer ${d.digest} of image ${rec.id} is not recorded`);
      return { ...r, digest: d.digest };
    });
  }

  /**
   * The layers of every image, skipping images another process deletes while this reads them (their record
   * was listed, their manifest is already gone): for scans over all images, which take no lock.
   */
  *allLayers(): Generator<{ image: ImageRecord; layers: LayerRecord[] }> {
    for (const image of this.list()) {
      let layers: LayerRecord[];
      try {
        layers = this.layers(image);
      } catch (e) {
        if (e instanceof NotFoundError || (e as { code?: string }).code === 'ENOENT') continue;
        throw e;
      }
      yield { image, layers };
    }
  }

  /** Removes a name; returns whether it existed. */
  removeName(name: string): boolean {
    return this.db.prepare('DELETE FROM names WHERE name = ?').run(name).changes > 0;
  }

  /**
   * Deletes image records that no name holds (those in `digests`), then every blob that no image and no live lease
   * references. Returns the deleted image IDs and blob digests. Runs in one write transaction so a concurrent
   * writer cannot re-reference a blob between the check and the unlink.
   */
  deleteImages(digests: string[]): { images: Digest[]; blobs: Digest[] } {
    return writeTx(this.db, () => {
      const images: Digest[] = [];
      for (const d of digests) {
        if (this.namesOf(d).length > 0) continue;
        const rec = this.get(d);
        if (!rec) continue;
        this.db.prepare('DELETE FROM images WHERE digest = ?').run(d);
        images.push(rec.id);
      }
      return { images, blobs: this.collectGarbageLocked() };
    });
  }

  /** Deletes blobs no image or live lease holds (and expired leases). */
  /**
   * Ends a failed operation's lease and deletes the blobs it wrote that nothing else holds (no image, no other
   * lease): a refused load leaves nothing behind. Returns the deleted blobs.
   */
  abandon(lease: Lease): Digest[] {
    return writeTx(this.db, () => {
      const mine = (this.db.prepare('SELECT blob FROM lease_blobs WHERE lease = ?').all(lease.id) as { blob: Digest }[]).map((r) => r.blob);
      lease.release();
      const held = this.db.prepare('SELECT 1 FROM image_blobs WHERE blob = ? UNION ALL SELECT 1 FROM lease_blobs WHERE blob = ? LIMIT 1');
      const delLayer = this.db.prepare('DELETE FROM layers WHERE digest = ?');
      const deleted: Digest[] = [];
      for (const d of mine) {
        if (held.get(d, d)) continue;
        if (this.content.delete(d)) deleted.push(d);
        delLayer.run(d);
      }
      return deleted;
    });
  }

  collectGarbage(): Digest[] {
    return writeTx(this.db, () => this.collectGarbageLocked());
  }

  private collectGarbageLocked(): Digest[] {
    this.leases.expire();
    const held = new Set<string>([...this.referencedBlobs(), ...this.leases.heldBlobs()]);
    const deleted: Digest[] = [];
    for (const d of this.content.list()) {
      if (held.has(d)) continue;
      if (this.content.delete(d)) deleted.push(d);
    }
    const delLayer = this.db.prepare('DELETE FROM layers WHERE digest = ?');
    for (const d of deleted) delLayer.run(d);
    return deleted;
  }

  /** The display form of a stored name: 'ubuntu:latest', 'localhost:5000/x:v1'. */
  static display(name: string): string {
    let d = displayCache.get(name);
    if (d === undefined) {
      d = familiarString(parseReference(name));
      if (displayCache.size >= DISPLAY_CACHE_MAX) displayCache.delete(displayCache.keys().next().value!);
      displayCache.set(name, d);
    }
    return d;
  }
}
