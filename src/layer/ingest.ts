// Layer ingest: one pass over a (possibly compressed) tar stream that stores the blob, computes its diffID,
// and proves it is a well-formed tar — or stores nothing.
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import type { ContentStore, IngestWriter } from '../content/store.js';
import { Digester } from '../digest/digest.js';
import { DigestMismatchError, InvalidArchiveError, PlyError } from '../errors.js';
import type { Lease, LayerRecord } from '../image/store.js';
import { MediaType, type Digest } from '../oci/types.js';
import { readTar } from '../tar/index.js';
import { decompressor, detectCompression, type Compression } from './compression.js';

const STORED_AS: Partial<Record<Compression, string>> = {
  gzip: MediaType.OciLayerGzip,
  zstd: MediaType.OciLayerZstd,
};

export interface IngestLayerOptions {
  /** Ingest key, e.g. 'import-<pid>-<random>'. */
  key: string;
  lease: Lease;
  /** The digest the stored blob must have (pull, load): implies storing the bytes as they come. */
  expected?: Digest;
  size?: number;
  /**
   * Continue an ingest a killed or failed earlier attempt left: `source` then starts at byte `offset` (what the
   * ingest already holds), the earlier bytes are re-read from disk for the hashes. Requires `expected`.
   */
  resumeFrom?: number;
  /** An ingest the caller already opened (and so holds the lock of); its bytes are the resumed prefix. */
  writer?: IngestWriter;
}

/** Errors that mean the bytes are wrong (keep nothing); anything else (network, kill) keeps them to resume. */
function isBadContent(e: unknown): boolean {
  return e instanceof InvalidArchiveError || e instanceof DigestMismatchError;
}

/**
 * Stores a layer from `source`. gzip and zstd input is kept as it came (no recompression, so it hashes to
 * the same blob a registry would serve); plain, xz and bzip2 input is stored as an uncompressed tar.
 */
export async function ingestLayer(content: ContentStore, source: Readable | AsyncIterable<Buffer>, opts: IngestLayerOptions): Promise<LayerRecord> {
  const resuming = opts.writer !== undefined || (opts.resumeFrom !== undefined && opts.expected !== undefined);
  const writer = opts.writer ?? (await content.ingest(opts.key, { restart: !resuming, expected: opts.expected }));
  if (resuming && opts.resumeFrom !== undefined && writer.offset !== opts.resumeFrom) {
    await writer.suspend();
    throw new IngestChangedError(`ingest ${opts.key} changed under this process (${writer.offset} bytes, expected ${opts.resumeFrom}): retry`);
  }
  // What the ingest already holds is replayed through the decompressor (not written again).
  const prefix = writer.offset;
  async function* all(): AsyncGenerator<[Buffer, boolean]> {
    if (prefix > 0) for await (const c of writer.existing()) yield [c, true];
    for await (const c of source as AsyncIterable<Buffer>) yield [Buffer.isBuffer(c) ? c : Buffer.from(c), false];
  }
  const it = all();
  const firstChunks: [Buffer, boolean][] = [];
  let seen = 0;
  let ended = false;
  while (seen < 6) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    firstChunks.push(r.value);
    seen += r.value[0].length;
  }
  const head = Buffer.concat(firstChunks.map(([c]) => c)).subarray(0, 6);
  if (head.length === 0) {
    await writer.abort();
    throw new InvalidArchiveError('not a tar archive: the input is empty');
  }
  const compression = detectCompression(head);
  // A blob with a known digest is kept byte for byte; otherwise gzip/zstd stay, xz/bzip2 are stored decompressed.
  const keepRaw = compression === 'gzip' || compression === 'zstd' || opts.expected !== undefined;
  const decomp = decompressor(compression);
  let failure: unknown;
  /** Network bytes gathered but not yet written (see feed below). */
  const pending: Buffer[] = [];
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

    // Bytes a resumed ingest already holds only go through the decompressor (their hash is already taken).
    const replay = async (c: Buffer): Promise<void> => {
      if (failure) throw failure;
      if (!decomp.write(c)) await once(decomp, 'drain');
    };
    // Sockets deliver ~64 KiB pieces: gathering them into ~1 MiB writes cuts the per-call cost of the file
    // writes and of the decompressor's thread-pool hand-offs.
    let pendingBytes = 0;
    const flush = async (): Promise<void> => {
      if (pendingBytes === 0) return;
      if (failure) throw failure;
      const c = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      if (keepRaw) await writer.write(c);
      // Only now are these bytes part of the blob's hash: until here a failure still finds them in `pending`.
      pending.length = 0;
      pendingBytes = 0;
      if (!decomp.write(c)) await once(decomp, 'drain');
    };
    const feed = async ([c, stored]: [Buffer, boolean]): Promise<void> => {
      if (stored) return replay(c);
      pending.push(c);
      pendingBytes += c.length;
      if (pendingBytes >= 1 << 20) await flush();
    };
    for (const c of firstChunks) await feed(c);
    if (!ended) {
      for (let r = await it.next(); !r.done; r = await it.next()) await feed(r.value);
    }
    await flush();
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
    let err = failure ?? e;
    // A blob with a known digest that fails to parse is most likely damaged: say so when its digest disagrees.
    if (opts.expected && err instanceof InvalidArchiveError && keepRaw) {
      try {
        const rest = (async function* () {
          yield* pending;
          for (let r = await it.next(); !r.done; r = await it.next()) if (!r.value[1]) yield r.value[0];
        })();
        const actual = await writer.digestOfRest(rest);
        if (actual !== opts.expected) err = new DigestMismatchError(opts.expected, actual, 'layer');
      } catch {
        // keep the parse error
      }
    }
    // A known blob interrupted by the network keeps its bytes for the next try; bad bytes are dropped.
    if (opts.expected && !isBadContent(err)) await writer.suspend();
    else await writer.abort();
    decomp.destroy();
    throw err;
  }
}

export class IngestChangedError extends PlyError {}
