// Pull and push between the local image store and registries: both are one copy (registry → store, store →
// registry) through the copy pipeline. The engine's verbs and the builder's FROM call these.
import type { Credentials } from '../auth/config.js';
import { InvalidReferenceError, UsageError } from '../errors.js';
import { COMPRESSION_LEVELS } from '../layer/compression.js';
import type { ImageRecord, ImageStore } from '../image/store.js';
import { parsePlatform } from '../oci/platform.js';
import type { Digest } from '../oci/types.js';
import { formatReference, parseNormalized, parseReference, repositoryName, type Reference } from '../reference/reference.js';
import { copyImage } from './copy.js';
import { registryDestination, registrySource } from './registry.js';
import { storeSource, StoreDestination } from './store.js';
import { DbBlobInfoCache } from './blobinfo.js';
import type { LayerCompression, LayerCompressionRequest, ProgressEvent } from './types.js';

export interface PullOptions {
  /** os[/arch[/variant]] of the image to pick from an index (default: the host's). */
  platform?: string;
  tlsVerify?: boolean;
  parallel?: number;
  onProgress?: (e: ProgressEvent) => void;
  /** Credentials to use (an Engine API client's X-Registry-Auth); null: none; undefined: the stored login. */
  credentials?: Credentials | null;
}

export interface PullResult {
  reference: Reference;
  /** The digest the registry knows the image by (an index's, for multi-platform images). */
  digest: Digest;
  image: ImageRecord;
  /** Whether the name now points at a different image than before. */
  updated: boolean;
}

export interface PushOptions {
  /**
   * The layers' format at the registry (podman's --compression-format). Default: gzip for uncompressed layers,
   * compressed layers (pulled ones) as they are; given explicitly, every layer is converted to it.
   */
  compressionFormat?: LayerCompression;
  /** gzip 0-9 (default: each block's level adapted to how fast the registry takes them, 1-9), zstd 1-22 (default 3). */
  compressionLevel?: number;
  tlsVerify?: boolean;
  parallel?: number;
  onProgress?: (e: ProgressEvent) => void;
  /** Credentials to use (an Engine API client's X-Registry-Auth); null: none; undefined: the stored login. */
  credentials?: Credentials | null;
}

export interface PushResult {
  reference: Reference;
  digest: Digest;
  size: number;
}

/**
 * Pulls `ref` from its registry into the store: blobs the store has are not fetched, every byte is verified,
 * and the name (when the reference has a tag) points at the image.
 */
export async function pullImage(images: ImageStore, ref: string, opts: PullOptions = {}): Promise<PullResult> {
  const r = parseNormalized(ref);
  const name = r.tag ? formatReference({ ...r, digest: undefined }) : undefined;
  const before = name ? images.lookup(name)?.digest : undefined;
  const dst = new StoreDestination(images, { names: name ? [name] : [] });
  try {
    const res = await copyImage(registrySource(r, { tlsVerify: opts.tlsVerify, credentials: opts.credentials }), r.digest ?? r.tag!, dst, r.tag, {
      platform: opts.platform ? parsePlatform(opts.platform) : undefined,
      onProgress: opts.onProgress,
      parallel: opts.parallel,
      blobInfo: new DbBlobInfoCache(images.db),
    });
    images.addRepoDigest(res.manifest.digest, `${repositoryName(r)}@${res.top.digest}`);
    const image = images.get(res.manifest.digest)!;
    return { reference: r, digest: res.top.digest, image, updated: before !== image.digest };
  } finally {
    await dst.close();
  }
}

/** Pushes a local image to the registry its name says. */
export async function pushImage(images: ImageStore, ref: string, opts: PushOptions = {}): Promise<PushResult> {
  const r = parseNormalized(ref);
  if (r.digest) throw new InvalidReferenceError(`cannot push a digest reference: "${ref}"`);
  const compression = pushCompression(opts);
  const rec = images.resolve(formatReference(r));
  const repo = repositoryName(r);
  // A blob another repository of the same registry is known to hold can be mounted instead of sent.
  const mountFrom = (d: { digest: Digest }): string | undefined => {
    for (const name of images.repositoriesHolding(d.digest)) {
      const other = parseReference(name);
      if (other.domain === r.domain && other.path !== r.path) return other.path;
    }
    return undefined;
  };
  const dst = registryDestination(r, { tlsVerify: opts.tlsVerify, credentials: opts.credentials, compression });
  const res = await copyImage(storeSource(images), rec.digest, dst, r.tag, {
    onProgress: opts.onProgress,
    parallel: opts.parallel,
    mountFrom,
    blobInfo: new DbBlobInfoCache(images.db),
  });
  images.addRepoDigest(rec.digest, `${repo}@${res.digest}`);
  return { reference: r, digest: res.digest, size: res.size };
}

/** The push's layer format from podman's flags: an explicit format converts every layer, the default only plain ones. */
function pushCompression(opts: PushOptions): LayerCompressionRequest {
  const format = opts.compressionFormat ?? 'gzip';
  if (!['gzip', 'zstd', 'none'].includes(format)) {
    throw new UsageError(`unsupported compression format "${format}": use gzip, zstd or none`);
  }
  const level = opts.compressionLevel;
  if (level !== undefined) {
    if (format === 'none') throw new UsageError('--compression-level needs a compression format other than none');
    const range = COMPRESSION_LEVELS[format];
    if (!Number.isInteger(level) || level < range.min || level > range.max) {
      throw new UsageError(`invalid ${format} compression level ${level}: use ${range.min} to ${range.max}`);
    }
  }
  return { format, level, force: opts.compressionFormat !== undefined };
}
