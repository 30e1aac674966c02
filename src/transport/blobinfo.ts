// The blob-info cache on the metadata DB: which compressed blobs hold a layer (the store's own layers, and the
// blobs pushes made) and which registry repositories hold a blob, so a layer is compressed once and then found
// (HEAD) or mounted wherever it goes.
import type { DB } from '../db/db.js';
import { layerCompressionOf, type Digest } from '../oci/types.js';
import type { BlobInfoCache, BlobLocation, LayerCompression, LayerVariant } from './types.js';

/** Repositories returned per blob and registry (the most recently seen): each is a mount to try. */
const MAX_LOCATIONS = 8;

export class DbBlobInfoCache implements BlobInfoCache {
  constructor(private readonly db: DB) {}

  variants(diffId: Digest, compression: LayerCompression): LayerVariant[] {
    const made = (
      this.db
        .prepare('SELECT digest, size, recipe FROM blob_variants WHERE diff_id = ? AND compression = ? ORDER BY seen DESC')
        .all(diffId, compression) as { digest: Digest; size: number; recipe: string | null }[]
    ).map((r) => ({ digest: r.digest, size: r.size, recipe: r.recipe ?? undefined }));
    // Layers in the store (pulled or imported): verified against their diffID when they were stored.
    const stored = (this.db.prepare('SELECT digest, size, media_type FROM layers WHERE diff_id = ?').all(diffId) as {
      digest: Digest;
      size: number;
      media_type: string;
    }[]).filter((l) => layerCompressionOf(l.media_type) === compression);
    const out: LayerVariant[] = [];
    for (const v of [...made, ...stored.map((l) => ({ digest: l.digest, size: l.size, recipe: undefined }))]) {
      if (!out.some((o) => o.digest === v.digest)) out.push({ digest: v.digest, size: v.size, compression, ...(v.recipe ? { recipe: v.recipe } : {}) });
    }
    return out;
  }

  recordVariant(diffId: Digest, v: LayerVariant): void {
    this.db
      .prepare(
        `INSERT INTO blob_variants (digest, diff_id, compression, size, recipe, seen) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(digest) DO UPDATE SET seen = excluded.seen, recipe = coalesce(excluded.recipe, recipe)`,
      )
      .run(v.digest, diffId, v.compression, v.size, v.recipe ?? null, Date.now());
  }

  /** A blob ply compressed itself: the tar it holds and how it was made (so it can be made again from the tar). */
  madeFrom(digest: Digest): { diffId: Digest; variant: LayerVariant } | undefined {
    const r = this.db.prepare('SELECT diff_id, compression, size, recipe FROM blob_variants WHERE digest = ? AND recipe IS NOT NULL').get(digest) as
      | { diff_id: Digest; compression: LayerCompression; size: number; recipe: string }
      | undefined;
    return r && { diffId: r.diff_id, variant: { digest, size: r.size, compression: r.compression, recipe: r.recipe } };
  }

  locations(digest: Digest, registry: string): string[] {
    return (
      this.db
        .prepare('SELECT repository FROM blob_locations WHERE digest = ? AND registry = ? ORDER BY seen DESC LIMIT ?')
        .all(digest, registry, MAX_LOCATIONS) as { repository: string }[]
    ).map((r) => r.repository);
  }

  recordLocation(digest: Digest, at: BlobLocation): void {
    this.db
      .prepare(
        `INSERT INTO blob_locations (digest, registry, repository, seen) VALUES (?, ?, ?, ?)
         ON CONFLICT(digest, registry, repository) DO UPDATE SET seen = excluded.seen`,
      )
      .run(digest, at.registry, at.repository, Date.now());
  }
}
