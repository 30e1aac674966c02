// Layer ingest: one pass over a (possibly compressed) tar stream that stores the blob, computes its diffID,
// and proves it is a well-formed tar — or stores nothing.
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import type { ContentStore } from '../content/store.js';
import { Digester } from '../digest/digest.js';
import { InvalidArchiveError } from '../errors.js';
import type { Lease, LayerRecord } from '../image/store.js';
import { MediaType, type Digest } from '../oci/types.js';
import { readTar } from '../tar/index.js';
import { decompressor, detectCompression, type Compression } from './compression.js';

const STORED_AS: Partial<Record<Compression, string>> = {
  gzip: MediaType.OciLayerGzip,
  zstd: MediaType.OciLayerZstd,
};

/** Reads chunks until at least `n` bytes are seen (or the source ends), without losing any. */
async function peek(it: AsyncIterator<Buffer>, n: number): Promise<{ head: Buffer; chunks: Buffer[]; done: boolean }> {
  const chunks: Buffer[] = [];
  let len = 0;
  while (len < n) {
    const r = await it.next();
    if (r.done) return { head: Buffer.concat(chunks), chunks, done: true };
    const c = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
    chunks.push(c);
    len += c.length;
  }
  return { head: Buffer.concat(chunks).subarray(0, n), chunks, done: false };
}

export interface IngestLayerOptions {
  /** Ingest key, e.g. 'import-<pid>-<random>'. */
  key: string;
  lease: Lease;
  /** The digest the stored blob must have (pull, load): implies storing the bytes as they come. */
  expected?: Digest;
  size?: number;
}

/**
 * Stores a layer from `source`. gzip and zstd input is kept as it came (no recompression, so it hashes to
 * the same blob a registry would serve); plain, xz and bzip2 input is stored as an uncompressed tar.
 */
export async function ingestLayer(content: ContentStore, source: Readable | AsyncIterable<Buffer>, opts: IngestLayerOptions): Promise<LayerRecord> {
  const it = (source as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const first = await peek(it, 6);
  if (first.head.length === 0) throw new InvalidArchiveError('not a tar archive: the input is empty');
  const compression = detectCompression(first.head);
  // A blob with a known digest is kept byte for byte; otherwise gzip/zstd stay, xz/bzip2 are stored decompressed.
  const keepRaw = compression === 'gzip' || compression === 'zstd' || (opts.expected !== undefined && compression !== 'none');
  const decomp = decompressor(compression);
  const writer = await content.ingest(opts.key, { restart: true });
  let failure: unknown;
  try {
    // The decompressed side: hash (when the raw bytes are what is stored) or store, and parse as tar.
    const diff = new Digester();
    const decIt = (decomp as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    const consume = async (c: Buffer): Promise<void> => {
      if (keepRaw) diff.update(c);
      else await writer.write(c);
    };
    // A view of the stream whose return() does not destroy it: after the tar's end marker the rest (padding)
    // still belongs to the diffID.
    const tap: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]: () => ({
        next: async () => {
          const r = await decIt.next();
          if (!r.done) await consume(r.value);
          return r;
        },
        return: async () => ({ done: true, value: undefined }),
      }),
    };
    const validated = (async () => {
      let unpacked = 0;
      for await (const entry of readTar(tap)) {
        unpacked += entry.header.size;
        for await (const _ of entry.body) void _;
      }
      for (let r = await decIt.next(); !r.done; r = await decIt.next()) await consume(r.value);
      return unpacked;
    })();
    validated.catch((e: unknown) => {
      failure = e;
      decomp.destroy(e as Error);
    });

    const feed = async (c: Buffer): Promise<void> => {
      if (failure) throw failure;
      if (keepRaw) await writer.write(c);
      if (!decomp.write(c)) await once(decomp, 'drain');
    };
    for (const c of first.chunks) await feed(c);
    if (!first.done) {
      for (let r = await it.next(); !r.done; r = await it.next()) await feed(Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value));
    }
    decomp.end();
    const unpackedSize = await validated;
    const blob = await writer.commit({ lease: opts.lease, expected: opts.expected, size: opts.size });
    const diffId: Digest = keepRaw ? diff.digest() : blob.digest;
    return {
      digest: blob.digest,
      diffId,
      mediaType: STORED_AS[compression] ?? MediaType.OciLayer,
      size: blob.size,
      unpackedSize,
    };
  } catch (e) {
    await writer.abort();
    decomp.destroy();
    throw failure ?? e;
  }
}
