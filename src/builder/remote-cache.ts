// The build cache outside the store (--cache-to / --cache-from): in a registry repository (type=registry) or an
// OCI layout directory (type=local), so another store (a CI runner, a colleague's machine) reuses its steps.
//
// Format: one OCI image index, tagged (default `latest` for directories), whose entries are the steps' images,
// each an ordinary image manifest (its config is the step's config, its layers the step's layers, compressed as a
// push compresses them) annotated with the step's cache key:
//
//   { "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
//     "annotations": { "dev.ply.build.cache": "v1" },
//     "manifests": [ { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": …, "size": …,
//                      "annotations": { "dev.ply.build.cache.key": "<step key>",
//                                       "dev.ply.build.cache.step": "RUN make # buildkit" } }, … ] }
//
// Every object is standard, so any registry that takes images takes the cache (distribution checks that an
// index's manifests exist: the steps are pushed first), and each step can be pulled and inspected by any client.
// Steps share layers; the copy pipeline sends each blob once and compresses each layer once (blob-info cache).
// Importing reads the index once; a step's manifest and config are fetched when its key matches, its layers only
// when something needs its filesystem (a later step runs, or it is the result): a fully cached build pulls
// exactly the final image's layers.
import type { ImageRecord, ImageStore } from '../image/store.js';
import { MediaType, type Descriptor, type Digest, type ImageConfig, type Index } from '../oci/types.js';
import { digestOf } from '../digest/digest.js';
import { InvalidArgumentError, NotFoundError, PlyError } from '../errors.js';
import { parseNormalized, repositoryName, type Reference } from '../reference/reference.js';
import { DbBlobInfoCache } from '../transport/blobinfo.js';
import { copyImage, parseManifestBlob } from '../transport/copy.js';
import { ociDirDestination, ociDirSource } from '../transport/oci-dir.js';
import { registryDestination, registrySource } from '../transport/registry.js';
import { StoreDestination, storeSource } from '../transport/store.js';
import type { ImageDestination, ImageSource, ManifestBlob } from '../transport/types.js';

export const CACHE_ANNOTATION = 'dev.ply.build.cache';
export const KEY_ANNOTATION = 'dev.ply.build.cache.key';
export const STEP_ANNOTATION = 'dev.ply.build.cache.step';

/** Where a cache is: a registry repository and tag, or an OCI layout directory and tag. */
export type CacheLocation = { type: 'registry'; ref: string } | { type: 'local'; dir: string; tag?: string };

export interface CacheExportSpec {
  location: CacheLocation;
  /** min: the result's steps only (buildkit's default); max: every step of every stage built. */
  mode: 'min' | 'max';
  /** A failed export is a warning, not a failed build. */
  ignoreError?: boolean;
}

interface Resolved {
  /** Identifies the place (registry/repository or directory), to reuse manifests already there. */
  place: string;
  tag: string;
  source(): ImageSource;
  destination(): ImageDestination;
}

function resolve(loc: CacheLocation): Resolved {
  if (loc.type === 'local') {
    return {
      place: `dir:${loc.dir}`,
      tag: loc.tag ?? 'latest',
      source: () => ociDirSource(loc.dir),
      destination: () => ociDirDestination(loc.dir, { layerCompression: { format: 'gzip' } }),
    };
  }
  let r: Reference;
  try {
    r = parseNormalized(loc.ref);
  } catch (e) {
    throw new InvalidArgumentError(`invalid cache reference "${loc.ref}": ${(e as Error).message}`);
  }
  if (r.digest) throw new InvalidArgumentError(`cache reference "${loc.ref}": name a tag, not a digest`);
  return {
    place: `registry:${repositoryName(r)}`,
    tag: r.tag ?? 'latest',
    source: () => registrySource(r),
    destination: () => registryDestination(r, { compression: { format: 'gzip' } }),
  };
}

function describe(loc: CacheLocation): string {
  return loc.type === 'registry' ? loc.ref : `${loc.dir}${loc.tag ? `:${loc.tag}` : ''}`;
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

/** A step found in an imported cache: its config now, its image (layers pulled) when asked. */
export class RemoteStep {
  private image: Promise<ImageRecord> | undefined;

  constructor(
    private readonly cache: ImportedCache,
    readonly key: string,
    readonly manifest: ManifestBlob,
    readonly config: ImageConfig,
    readonly configDigest: Digest,
  ) {}

  /** The step's image in the store (what it lacks pulled through the copy pipeline), once. */
  materialize(images: ImageStore): Promise<ImageRecord> {
    this.image ??= this.cache.pull(images, this.manifest.digest);
    return this.image;
  }

  /** Where the step's manifest already is (for exports to the same place). */
  get place(): string {
    return this.cache.place;
  }

  copyTo(dst: ImageDestination, images: ImageStore): Promise<{ digest: Digest; mediaType: string; size: number }> {
    return copyImage(this.cache.source, this.manifest.digest, dst, undefined, { blobInfo: new DbBlobInfoCache(images.db) });
  }
}

/** A cache read with --cache-from: its index, looked up by step key. */
export class ImportedCache {
  readonly source: ImageSource;
  readonly place: string;
  private readonly byKey = new Map<string, Descriptor>();

  private constructor(
    readonly location: CacheLocation,
    r: Resolved,
    index: Index,
  ) {
    this.source = this.remembering(r.source());
    this.place = r.place;
    for (const d of index.manifests) {
      const key = d.annotations?.[KEY_ANNOTATION];
      if (key && !this.byKey.has(key)) this.byKey.set(key, d);
    }
  }

  /** Manifests and configs that lookup() read, by digest: pulling the step later does not fetch them again. */
  private readonly manifests = new Map<string, ManifestBlob>();
  private readonly blobs = new Map<string, Buffer>();

  private remembering(raw: ImageSource): ImageSource {
    const { manifests, blobs } = this;
    return {
      description: raw.description,
      ...(raw.location ? { location: raw.location } : {}),
      getManifest: async (ref) => manifests.get(ref) ?? raw.getManifest(ref),
      getBlob: async (desc, opts) => {
        const b = blobs.get(desc.digest);
        if (!b) return raw.getBlob(desc, opts);
        return (async function* () {
          yield b.subarray(opts?.offset ?? 0);
        })();
      },
      ...(raw.close ? { close: () => raw.close!() } : {}),
    };
  }

  /** Reads the cache's index; undefined (and `warn`) when there is none yet or it cannot be read. */
  static async open(location: CacheLocation, warn: (line: string) => void): Promise<ImportedCache | undefined> {
    const r = resolve(location);
    try {
      const top = await r.source().getManifest(r.tag);
      if (digestOf(top.bytes) !== top.digest) throw new PlyError('the cache index does not match its digest');
      const doc = parseManifestBlob(top);
      if (!('manifests' in doc) || doc.annotations?.[CACHE_ANNOTATION] === undefined) {
        throw new PlyError(`${describe(location)} is not a ply build cache`);
      }
      return new ImportedCache(location, r, doc);
    } catch (e) {
      warn(`WARNING: failed to import cache from ${describe(location)}: ${(e as Error).message}`);
      return undefined;
    }
  }

  get size(): number {
    return this.byKey.size;
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** The step cached under `key`: its manifest and config fetched and verified (no layer yet). */
  async lookup(key: string): Promise<RemoteStep | undefined> {
    const desc = this.byKey.get(key);
    if (!desc) return undefined;
    try {
      const manifest = await this.source.getManifest(desc.digest);
      if (digestOf(manifest.bytes) !== desc.digest) throw new PlyError(`manifest ${desc.digest} does not match its digest`);
      const doc = parseManifestBlob(manifest);
      if (!('config' in doc)) throw new PlyError(`${desc.digest} is not an image manifest`);
      const bytes = await collect(await this.source.getBlob(doc.config));
      if (digestOf(bytes) !== doc.config.digest) throw new PlyError(`config ${doc.config.digest} does not match its digest`);
      const config = JSON.parse(bytes.toString('utf8')) as ImageConfig;
      this.manifests.set(desc.digest, manifest);
      this.blobs.set(doc.config.digest, bytes);
      return new RemoteStep(this, key, manifest, config, doc.config.digest);
    } catch (e) {
      if (e instanceof NotFoundError || e instanceof PlyError) {
        // A damaged or partly deleted cache is a miss, not a failed build.
        this.byKey.delete(key);
        return undefined;
      }
      throw e;
    }
  }

  async pull(images: ImageStore, digest: Digest): Promise<ImageRecord> {
    const dst = new StoreDestination(images, {});
    try {
      const res = await copyImage(this.source, digest, dst, undefined, { blobInfo: new DbBlobInfoCache(images.db) });
      const rec = images.get(res.manifest.digest);
      if (!rec) throw new PlyError(`cached step ${digest} was not recorded`);
      return rec;
    } finally {
      await dst.close();
    }
  }
}

/** One step to export: its key, and its image in the store or still only in an imported cache. */
export interface CacheRecord {
  key: string;
  createdBy: string;
  local?: ImageRecord;
  remote?: RemoteStep;
}

/** A destination that remembers the blobs it was told it has (the steps share most of their layers). */
function rememberingBlobs(dst: ImageDestination): ImageDestination {
  const known = new Set<string>();
  return new Proxy(dst, {
    get(target, prop, receiver) {
      if (prop === 'hasBlob') {
        return async (desc: Descriptor) => {
          if (known.has(desc.digest)) return true;
          const has = await target.hasBlob(desc);
          if (has) known.add(desc.digest);
          return has;
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** Writes the steps and the index naming them (--cache-to); returns the index's digest and how many steps. */
export async function exportCache(images: ImageStore, spec: CacheExportSpec, records: CacheRecord[]): Promise<{ digest: Digest; steps: number }> {
  const r = resolve(spec.location);
  const dst = rememberingBlobs(r.destination());
  const blobInfo = new DbBlobInfoCache(images.db);
  const src = storeSource(images);
  const entries: Descriptor[] = [];
  const seen = new Set<string>();
  try {
    for (const rec of records) {
      if (seen.has(rec.key)) continue;
      seen.add(rec.key);
      let desc: { digest: Digest; mediaType: string; size: number };
      if (rec.local) {
        desc = await copyImage(src, rec.local.digest, dst, undefined, { blobInfo });
      } else if (rec.remote) {
        // A step only an imported cache holds: the same place already has it; elsewhere it is copied over.
        desc = rec.remote.place === r.place ? { digest: rec.remote.manifest.digest, mediaType: rec.remote.manifest.mediaType, size: rec.remote.manifest.bytes.length } : await rec.remote.copyTo(dst, images);
      } else continue;
      entries.push({
        mediaType: desc.mediaType,
        digest: desc.digest,
        size: desc.size,
        annotations: { [KEY_ANNOTATION]: rec.key, [STEP_ANNOTATION]: rec.createdBy.slice(0, 1024) },
      });
    }
    const index: Index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: entries, annotations: { [CACHE_ANNOTATION]: 'v1' } };
    const bytes = Buffer.from(JSON.stringify(index));
    const digest = digestOf(bytes);
    await dst.putManifest({ bytes, digest, mediaType: MediaType.OciIndex }, r.tag);
    await dst.commit?.();
    return { digest, steps: entries.length };
  } finally {
    await dst.close?.();
  }
}

export { describe as describeCacheLocation };
