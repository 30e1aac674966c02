// The one interface every place images live in implements (local store, registry, docker-archive, OCI layout):
// the copy pipeline moves an image from any source to any destination through it.
import { InvalidArgumentError } from '../errors.js';
import type { Descriptor, Digest, Platform } from '../oci/types.js';
import type { LayerCompression } from '../layer/compression.js';

export type { LayerCompression } from '../layer/compression.js';

/** A manifest or index exactly as stored: `bytes` hash to `digest`. */
export interface ManifestBlob {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

export interface BlobReadOptions {
  /** Resume: start at this byte offset (HTTP Range); the stream then yields only the rest. */
  offset?: number;
  signal?: AbortSignal;
}

/** A repository of a registry: where blobs can be found again (HEAD) or mounted from. */
export interface BlobLocation {
  /** The registry's host[:port] as references name it. */
  registry: string;
  repository: string;
}

/** How a destination wants layers: compressed on the way in `format` (push), instead of as the source has them. */
export interface LayerCompressionRequest {
  format: LayerCompression;
  level?: number;
  /**
   * Also convert layers the source holds in another compressed format (an explicit --compression-format).
   * Without it only uncompressed layers are compressed; gzip or zstd blobs (a pulled layer) go as they are.
   */
  force?: boolean;
}

/** A blob holding a layer's tar in some compression: what a BlobInfoCache remembers per diffID. */
export interface LayerVariant {
  digest: Digest;
  size: number;
  compression: LayerCompression;
  /** How ply made it (`compressionRecipe`), when it did: the same recipe on the same tar gives the same bytes. */
  recipe?: string;
}

/**
 * What copies learn about blobs and keep for later ones (containers/image's BlobInfoCache): which compressed
 * blobs hold a layer (diffID → digest, size, format), and which repositories of which registries have a blob.
 * A push that knows them checks or mounts the known blob instead of compressing the layer again.
 */
export interface BlobInfoCache {
  /** Known blobs of the uncompressed layer `diffId` in `compression`, the most recently seen first. */
  variants(diffId: Digest, compression: LayerCompression): LayerVariant[];
  /** Remembers that `v` decompresses to the layer `diffId` (only once that was verified). */
  recordVariant(diffId: Digest, v: LayerVariant): void;
  /** Repositories of `registry` known to hold `digest`, the most recently seen first. */
  locations(digest: Digest, registry: string): string[];
  recordLocation(digest: Digest, at: BlobLocation): void;
}

export interface ImageSource {
  /** A short name for messages, e.g. 'registry localhost:5000/team/app' or 'docker-archive foo.tar'. */
  readonly description: string;
  /** The registry repository read from (registries only). */
  readonly location?: BlobLocation;
  /** The manifest or index for `ref`: a tag, a digest, or '' for the transport's only/default image. */
  getManifest(ref: string): Promise<ManifestBlob>;
  /** The bytes of a blob; the caller verifies the digest. */
  getBlob(desc: Descriptor, opts?: BlobReadOptions): Promise<AsyncIterable<Buffer>>;
  close?(): Promise<void>;
}

export interface PutBlobOptions {
  /** The data starts at this byte (the destination said it holds the rest from an earlier attempt). */
  offset?: number;
  /** Another repository of the same registry the blob is known to be in (cross-repository mount). */
  mountFrom?: string;
  signal?: AbortSignal;
}

export interface ImageDestination {
  readonly description: string;
  /** The registry repository written to (registries only). */
  readonly location?: BlobLocation;
  /** Set when the destination wants layers compressed on the way (then `putNewBlob` is implemented). */
  readonly layerCompression?: LayerCompressionRequest;
  /** Whether the destination already has the blob (then it is not sent). */
  hasBlob(desc: Descriptor): Promise<boolean>;
  /** Tries a cross-repository mount; true when the blob is now present without sending it. */
  mountBlob?(desc: Descriptor, fromRepository: string): Promise<boolean>;
  /**
   * Called before a blob is fetched: `present` when it arrived meanwhile (another process fetched it; then it is
   * not sent), else the bytes an interrupted earlier attempt left that can be kept (the source sends the rest).
   */
  prepareBlob?(desc: Descriptor): Promise<{ present: true } | { present: false; offset: number }>;
  /** Stores a blob; the destination verifies size and digest and refuses a mismatch. */
  putBlob(desc: Descriptor, data: AsyncIterable<Buffer>, opts?: PutBlobOptions): Promise<void>;
  /**
   * Stores a blob made on the way (a layer being compressed), whose digest and size are known only once all of
   * it is sent: the bytes are streamed while they are produced. Returns the digest and size the destination has.
   */
  putNewBlob?(data: AsyncIterable<Buffer>, opts?: { signal?: AbortSignal }): Promise<{ digest: Digest; size: number }>;
  /** Stores a manifest or index by digest, and under `tag` when given. Child manifests are put before parents. */
  putManifest(manifest: ManifestBlob, tag?: string): Promise<void>;
  /** Finishes the destination (e.g. writes an archive's index). */
  commit?(): Promise<void>;
  close?(): Promise<void>;
}

export type ProgressEvent =
  | { type: 'resolved'; digest: Digest; mediaType: string }
  /** `compressing`: the layer is converted to that format on the way (its digest then changes). */
  | { type: 'blob-start'; digest: Digest; size: number; layer: boolean; compressing?: LayerCompression }
  | { type: 'blob-exists'; digest: Digest; size: number; layer: boolean }
  | { type: 'blob-mounted'; digest: Digest; size: number; from: string }
  | { type: 'blob-progress'; digest: Digest; done: number; size: number }
  | { type: 'blob-verifying'; digest: Digest }
  | { type: 'blob-done'; digest: Digest; size: number; layer: boolean }
  | { type: 'manifest-done'; digest: Digest; size: number; mediaType: string };

export interface CopyOptions {
  /** Which image of an index to copy (default: the host's). Ignored with `all`. */
  platform?: Platform;
  /** Copy every image of an index. */
  all?: boolean;
  /** Blob transfers at once (default 3). */
  parallel?: number;
  onProgress?: (e: ProgressEvent) => void;
  signal?: AbortSignal;
  /** Another repository of the destination registry known to hold this blob (tried as a cross-repository mount). */
  mountFrom?: (desc: Descriptor) => string | undefined;
  /** Known compressed forms of layers and where blobs are: consulted before compressing, updated after a copy. */
  blobInfo?: BlobInfoCache;
}

export interface CopyResult {
  /** Digest of the top-level manifest written (an index when `all`, else the platform's manifest). */
  digest: Digest;
  mediaType: string;
  size: number;
}

/** What `save` writes: docker-archive and OCI layout in one tar (both), or either alone. */
export type ArchiveFormat = 'both' | 'docker' | 'oci';

/** The --format of save: docker, oci, or (empty) both. */
export function parseArchiveFormat(s: string | undefined): ArchiveFormat {
  switch (s) {
    case undefined:
    case '':
      return 'both';
    case 'docker':
    case 'docker-archive':
      return 'docker';
    case 'oci':
    case 'oci-archive':
      return 'oci';
    default:
      throw new InvalidArgumentError(`unsupported format "${s}": use docker or oci`);
  }
}
