// What the store knows of a layer blob: its digest and media type as stored, the digest of its uncompressed tar
// (diffID) and both sizes. Produced by the layer ingest, recorded by the image store, unpacked by snapshotters.
import type { Digest } from '../oci/types.js';

export interface LayerRecord {
  digest: Digest;
  diffId: Digest;
  mediaType: string;
  size: number;
  unpackedSize: number;
}
