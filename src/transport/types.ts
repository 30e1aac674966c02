// The one interface every place images live in implements (local store, registry, docker-archive, OCI layout):
// the copy pipeline moves an image from any source to any destination through it.
import type { Descriptor, Digest, Platform } from '../oci/types.js';

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

export interface ImageSource {
  /** A short name for messages, e.g. 'registry localhost:5000/team/app' or 'docker-archive foo.tar'. */
  readonly description: string;
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
  /** Stores a manifest or index by digest, and under `tag` when given. Child manifests are put before parents. */
  putManifest(manifest: ManifestBlob, tag?: string): Promise<void>;
  /** Finishes the destination (e.g. writes an archive's index). */
  commit?(): Promise<void>;
  close?(): Promise<void>;
}

export type ProgressEvent =
  | { type: 'resolved'; digest: Digest; mediaType: string }
  | { type: 'blob-start'; digest: Digest; size: number; layer: boolean }
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
}

export interface CopyResult {
  /** Digest of the top-level manifest written (an index when `all`, else the platform's manifest). */
  digest: Digest;
  mediaType: string;
  size: number;
}
