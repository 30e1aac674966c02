// The local store as a transport: images out of it (push, save) and into it (pull, load), every blob verified
// on its way in, every layer's diffID checked against the config before the image is recorded.
import { digestOf } from '../digest/digest.js';
import { DigestMismatchError, InvalidArchiveError, NotFoundError } from '../errors.js';
import { IngestLockedError, type IngestWriter } from '../content/store.js';
import type { ImageStore } from '../image/store.js';
import type { LayerRecord } from '../layer/types.js';
import type { Lease } from '../content/lease.js';
import { compressed, parseRecipe } from '../layer/compression.js';
import { ingestLayer } from '../layer/ingest.js';
import { DbBlobInfoCache } from './blobinfo.js';
import { isIndexMediaType, isLayerMediaType, MediaType, type Descriptor, type Digest, type ImageConfig, type Manifest } from '../oci/types.js';
import { isDigest } from '../digest/digest.js';
import type { ImageDestination, ImageSource, ManifestBlob, PutBlobOptions } from './types.js';

function detectMediaType(bytes: Buffer): string {
  try {
    const d = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; manifests?: unknown };
    return d.mediaType ?? (Array.isArray(d.manifests) ? MediaType.OciIndex : MediaType.OciManifest);
  } catch {
    return MediaType.OciManifest;
  }
}

/** Images in the local store: `ref` is a name, an image ID, or a manifest digest. */
export function storeSource(images: ImageStore): ImageSource {
  return {
    description: 'local store',
    async getManifest(ref: string): Promise<ManifestBlob> {
      const digest: Digest = isDigest(ref) && images.content.has(ref) ? ref : images.resolve(ref).digest;
      const bytes = images.content.readBytes(digest);
      return { bytes, digest, mediaType: detectMediaType(bytes) };
    },
    async getBlob(desc: Descriptor, opts) {
      if (!images.content.has(desc.digest)) throw new NotFoundError(`blob ${desc.digest} is not in the store`);
      return images.content.read(desc.digest, opts?.offset ? { start: opts.offset } : undefined);
    },
  };
}

export interface StoreDestinationOptions {
  /** Full reference names (docker.io/library/x:tag) to point at the image; `putManifest`'s tag is not used. */
  names?: string[];
  /** repo@digest to record as a RepoDigest (what a registry calls this image). */
  repoDigest?: (digest: Digest) => string | undefined;
}

export class StoreDestination implements ImageDestination {
  readonly description = 'local store';
  private readonly lease: Lease;
  /** Layers ingested by this copy, by blob digest. */
  private readonly layers = new Map<string, LayerRecord>();
  /** The images recorded, in order. */
  readonly recorded: { digest: Digest; id: Digest }[] = [];

  constructor(
    private readonly images: ImageStore,
    private readonly opts: StoreDestinationOptions = {},
  ) {
    this.lease = images.lease();
  }

  private layerRecord(digest: Digest): LayerRecord | undefined {
    return this.images.layerRecord(digest);
  }

  /** Layer records already computed (load hashes and decompresses each layer as the archive streams). */
  addLayerRecords(records: Iterable<LayerRecord>): void {
    for (const r of records) this.layers.set(r.digest, r);
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    this.lease.add(desc.digest);
    if (!this.images.content.has(desc.digest)) return false;
    if (!isLayerMediaType(desc.mediaType)) return true;
    const rec = this.layers.get(desc.digest) ?? this.layerRecord(desc.digest);
    if (rec) this.layers.set(desc.digest, rec);
    return rec !== undefined;
  }

  /** One ingest per blob across processes: a second pull of the same layer waits for the first. */
  private ingestKey(desc: Descriptor): string {
    return `blob-${desc.digest.replace(':', '-')}`;
  }

  /** Ingests this copy claimed in prepareBlob, by digest: holding the lock is what makes a fetch happen once. */
  private readonly claimed = new Map<string, IngestWriter>();

  async prepareBlob(desc: Descriptor): Promise<{ present: true } | { present: false; offset: number }> {
    if (await this.hasBlob(desc)) return { present: true };
    if (!isLayerMediaType(desc.mediaType)) return { present: false, offset: 0 };
    const key = this.ingestKey(desc);
    let rebuild = this.rebuildable(desc);
    for (;;) {
      let writer: IngestWriter;
      try {
        writer = await this.images.content.ingest(key, { expected: desc.digest });
      } catch (e) {
        if (!(e instanceof IngestLockedError)) throw e;
        // Another live process is fetching this very blob: wait for it rather than download it twice.
        await new Promise((r) => setTimeout(r, 50));
        if (await this.hasBlob(desc)) return { present: true };
        continue;
      }
      if (await this.hasBlob(desc)) {
        await writer.abort();
        return { present: true };
      }
      // The blob may have just landed from another process that records its layer a moment after releasing
      // the ingest: give it that moment rather than fetching the blob again.
      if (this.images.content.has(desc.digest)) {
        for (let i = 0; i < 40 && !(await this.hasBlob(desc)); i++) await new Promise((r) => setTimeout(r, 25));
        if (await this.hasBlob(desc)) {
          await writer.abort();
          return { present: true };
        }
      }
      if (writer.offset >= desc.size) {
        // Complete but never committed (killed at the end): cheaper to fetch again than to special-case.
        await writer.abort();
        continue;
      }
      if (rebuild && writer.offset === 0) {
        const from = rebuild;
        rebuild = undefined;
        if (await this.rebuild(desc, from, writer)) return { present: true };
        continue; // the ingest was given up: claim it again and fetch
      }
      this.claimed.set(desc.digest, writer);
      return { present: false, offset: writer.offset };
    }
  }

  /**
   * A layer blob this store can make itself: ply compressed it from a tar the store holds (a push), so the same
   * recipe on that tar gives the same bytes. Pulling back what was pushed then fetches nothing, as docker's
   * pull finds a pushed layer by its diffID.
   */
  private rebuildable(desc: Descriptor): { diffId: Digest; recipe: string } | undefined {
    const made = new DbBlobInfoCache(this.images.db).madeFrom(desc.digest);
    if (!made?.variant.recipe || made.variant.size !== desc.size || !parseRecipe(made.variant.recipe)) return undefined;
    const plain = this.layerRecord(made.diffId);
    if (!plain || plain.digest !== plain.diffId || !this.images.content.has(plain.digest)) return undefined;
    return { diffId: made.diffId, recipe: made.variant.recipe };
  }

  /** Makes `desc` from the stored tar and ingests it (verified as any fetched blob); false when that failed. */
  private async rebuild(desc: Descriptor, from: { diffId: Digest; recipe: string }, writer: IngestWriter): Promise<boolean> {
    const recipe = parseRecipe(from.recipe)!;
    this.lease.add(from.diffId);
    try {
      const data = compressed(this.images.content.read(from.diffId), recipe.format, recipe.opts);
      const rec = await ingestLayer(this.images.content, data, { key: this.ingestKey(desc), lease: this.lease, expected: desc.digest, size: desc.size, writer });
      if (rec.diffId !== from.diffId) return false;
      const layer = { ...rec, mediaType: desc.mediaType };
      this.layers.set(desc.digest, layer);
      this.images.recordLayer(layer);
      return true;
    } catch {
      return false;
    }
  }

  async putBlob(desc: Descriptor, data: AsyncIterable<Buffer>, opts: PutBlobOptions = {}): Promise<void> {
    const key = this.ingestKey(desc);
    if (isLayerMediaType(desc.mediaType)) {
      const writer = this.claimed.get(desc.digest);
      this.claimed.delete(desc.digest);
      const rec = await ingestLayer(this.images.content, data, {
        key,
        lease: this.lease,
        expected: desc.digest,
        size: desc.size,
        resumeFrom: opts.offset ?? 0,
        writer,
      });
      const layer = { ...rec, mediaType: desc.mediaType };
      this.layers.set(desc.digest, layer);
      // Recorded now, not with the image: another process waiting for this blob can then use it at once.
      this.images.recordLayer(layer);
      return;
    }
    await this.images.content.putStream(data, key, { expected: desc.digest, size: desc.size, lease: this.lease });
  }

  async putManifest(m: ManifestBlob, tag?: string): Promise<void> {
    void tag;
    if (digestOf(m.bytes, m.digest.startsWith('sha512:') ? 'sha512' : 'sha256') !== m.digest) {
      throw new DigestMismatchError(m.digest, digestOf(m.bytes), 'manifest');
    }
    await this.images.content.putBytes(m.bytes, { expected: m.digest, lease: this.lease });
    if (isIndexMediaType(m.mediaType)) return;
    const manifest = JSON.parse(m.bytes.toString('utf8')) as Manifest;
    const config = JSON.parse(this.images.content.readBytes(manifest.config.digest).toString('utf8')) as ImageConfig;
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== manifest.layers.length) {
      throw new InvalidArchiveError(`image ${m.digest}: the config lists ${diffIds.length} layers, the manifest ${manifest.layers.length}`);
    }
    const layers: LayerRecord[] = manifest.layers.map((d, i) => {
      const rec = this.layers.get(d.digest) ?? this.layerRecord(d.digest);
      if (!rec) throw new NotFoundError(`layer ${d.digest} is missing`);
      if (rec.diffId !== diffIds[i]) throw new DigestMismatchError(diffIds[i]!, rec.diffId, `layer ${d.digest.slice(7, 19)} diffID`);
      return { ...rec, mediaType: d.mediaType };
    });
    const rec = this.images.addImage({ manifestDigest: m.digest, mediaType: m.mediaType, configDigest: manifest.config.digest, config, layers });
    for (const n of this.opts.names ?? []) this.images.setName(n, rec.digest);
    const rd = this.opts.repoDigest?.(m.digest);
    if (rd) this.images.addRepoDigest(rec.digest, rd);
    this.recorded.push({ digest: rec.digest, id: rec.id });
  }

  async close(): Promise<void> {
    for (const w of this.claimed.values()) await w.suspend();
    this.claimed.clear();
    this.lease.release();
  }
}
