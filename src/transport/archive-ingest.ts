// One pass over one file of an image archive (load): the raw bytes are hashed and stored, and when they look like a
// tar (plain, gzip or zstd) the decompressed side is hashed (the diffID) and parsed as tar in the same pass, so a
// layer is never read twice. Unlike ingestLayer this is tolerant: a file that looks like a tar but is not one is
// still stored, marked as "not a layer" with the reason; only a digest mismatch with its `blobs/<alg>/<hex>` name
// is fatal.
import type { Duplex, Transform } from 'node:stream';
import type { ContentStore, IngestWriter } from '../content/store.js';
import { Digester, splitDigest } from '../digest/digest.js';
import { DigestMismatchError, InvalidArchiveError } from '../errors.js';
import type { LayerRecord } from '../layer/types.js';
import type { Lease } from '../content/lease.js';
import { decompressor, detectCompression } from '../layer/compression.js';
import { checkUnpackable } from '../layer/validate.js';
import { MediaType, type Digest } from '../oci/types.js';
import { isTarHeaderBlock, readTar } from '../tar/index.js';

/** Files up to this size that are not tars are kept in memory (JSON documents: manifests, configs, indexes). */
export const MEMORY_FILE_MAX = 16 << 20;
/** Other small files (VERSION, signatures) are kept in memory too rather than becoming stray blobs. */
const SMALL_FILE_MAX = 64 << 10;

export type LayerCompression = 'none' | 'gzip' | 'zstd';

export const LAYER_MEDIA_TYPE: Record<LayerCompression, string> = {
  none: MediaType.OciLayer,
  gzip: MediaType.OciLayerGzip,
  zstd: MediaType.OciLayerZstd,
};

export interface IngestedFile {
  digest: Digest;
  size: number;
  /** Set when the bytes are a well-formed tar, plain or compressed. */
  layer?: { diffId: Digest; unpackedSize: number; compression: LayerCompression };
  /** Why a file that looked like a (compressed) tar is not a layer. */
  layerError?: string;
  /** The bytes, for a file kept in memory (then it is not in the content store). */
  bytes?: Buffer;
}

export interface IngestFileOptions {
  /** The digest the bytes must have (a `blobs/<alg>/<hex>` entry); a mismatch throws DigestMismatchError. */
  expected?: Digest;
  /** For messages. */
  name: string;
  key: string;
  lease: Lease;
  /** May keep the file in memory when it is small and not a tar (default true). */
  memory?: boolean;
  /** A layer record already in the store for a blob digest: then its bytes are only hashed, not decompressed. */
  knownLayer?: (digest: Digest) => LayerRecord | undefined;
}

function looksLikeJson(head: Buffer): boolean {
  for (const b of head) {
    if (b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d) continue;
    return b === 0x7b || b === 0x5b; // '{' or '['
  }
  return false;
}

function isZeros(b: Buffer): boolean {
  for (const x of b) if (x !== 0) return false;
  return true;
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Parses a (possibly compressed) tar fed chunk by chunk, hashing its decompressed bytes; never throws. */
class TarScanner {
  private readonly decomp: Transform | Duplex;
  private readonly diff: Digester | undefined;
  private failure: unknown;
  private readonly result: Promise<number | undefined>;

  constructor(readonly compression: LayerCompression) {
    this.decomp = decompressor(compression);
    this.decomp.on('error', (e: unknown) => {
      this.failure ??= e;
    });
    this.diff = compression === 'none' ? undefined : new Digester();
    const decIt = (this.decomp as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    // A view whose return() does not end the stream: after the tar's end marker the rest (padding) still
    // belongs to the diffID.
    const tap: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]: () => ({
        next: async () => {
          const r = await decIt.next();
          if (!r.done) this.diff?.update(r.value);
          return r;
        },
        return: async () => ({ done: true, value: undefined }),
      }),
    };
    this.result = (async () => {
      let unpacked = 0;
      for await (const entry of readTar(tap)) {
        checkUnpackable(entry.header);
        unpacked += entry.header.size;
        for await (const _ of entry.body) void _;
      }
      for (let r = await decIt.next(); !r.done; r = await decIt.next()) this.diff?.update(r.value);
      return unpacked;
    })().catch((e: unknown) => {
      this.failure ??= e;
      this.decomp.destroy();
      return undefined;
    });
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failure !== undefined || this.decomp.destroyed) return;
    if (this.decomp.write(chunk)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.decomp.off('drain', done);
        this.decomp.off('close', done);
        resolve();
      };
      this.decomp.on('drain', done);
      this.decomp.on('close', done);
    });
  }

  /** The diffID (`raw` for an uncompressed tar) and unpacked size, or why this is not a tar. */
  async end(raw: () => Digest): Promise<{ diffId: Digest; unpackedSize: number } | { error: string }> {
    if (this.failure === undefined && !this.decomp.destroyed) this.decomp.end();
    const unpacked = await this.result;
    if (this.failure !== undefined || unpacked === undefined) return { error: message(this.failure) };
    return { diffId: this.diff ? this.diff.digest() : raw(), unpackedSize: unpacked };
  }

  abort(): void {
    this.decomp.destroy();
  }
}

/** Reads chunks until `n` bytes are seen (or the source ends), keeping them. */
async function peek(it: AsyncIterator<Buffer>, n: number): Promise<{ head: Buffer; chunks: Buffer[]; done: boolean }> {
  const chunks: Buffer[] = [];
  let len = 0;
  while (len < n) {
    const r = await it.next();
    if (r.done) return { head: Buffer.concat(chunks), chunks, done: true };
    chunks.push(r.value);
    len += r.value.length;
  }
  const head = chunks.length === 1 ? chunks[0]!.subarray(0, n) : Buffer.concat(chunks).subarray(0, n);
  return { head, chunks, done: false };
}

/**
 * Ingests one file of `size` bytes from `body`. Small non-tar files are kept in memory; everything else goes to
 * the content store as it streams (a blob already there is only hashed). The file's digest is checked against
 * `expected` when given.
 */
export async function ingestFile(content: ContentStore, body: AsyncIterable<Buffer>, size: number, opts: IngestFileOptions): Promise<IngestedFile> {
  const algorithm = opts.expected ? splitDigest(opts.expected).algorithm : 'sha256';
  const it = body[Symbol.asyncIterator]();
  const first = await peek(it, Math.min(512, size));
  const { head } = first;
  const compression = detectCompression(head);
  const tarLike =
    compression === 'gzip' ||
    compression === 'zstd' ||
    (compression === 'none' && head.length === 512 && (isTarHeaderBlock(head) || (isZeros(head) && size >= 1024)));

  const rest = async function* (): AsyncGenerator<Buffer> {
    yield* first.chunks;
    if (first.done) return;
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
  };

  if (!tarLike && opts.memory !== false && size <= MEMORY_FILE_MAX && (size <= SMALL_FILE_MAX || looksLikeJson(head))) {
    const bytes = Buffer.allocUnsafe(size);
    let n = 0;
    for await (const c of rest()) {
      if (n + c.length > size) throw new InvalidArchiveError(`${opts.name}: more bytes than its size`);
      n += c.copy(bytes, n);
    }
    if (n !== size) throw new InvalidArchiveError(`${opts.name}: unexpected end of data`);
    const d = new Digester(algorithm);
    d.update(bytes);
    const digest = d.digest();
    if (opts.expected && digest !== opts.expected) throw new DigestMismatchError(opts.expected, digest, opts.name);
    return { digest, size, bytes };
  }

  if (opts.expected) opts.lease.add(opts.expected);
  const present = opts.expected !== undefined && content.has(opts.expected);
  const known = present && tarLike ? opts.knownLayer?.(opts.expected!) : undefined;
  const scanner = tarLike && !known ? new TarScanner(compression as LayerCompression) : undefined;
  // A blob the store already has is only hashed (to prove the archive's bytes are right), not written again.
  const hashOnly = present ? new Digester(algorithm) : undefined;
  let writer: IngestWriter | undefined;
  try {
    if (!hashOnly) writer = await content.ingest(opts.key, { expected: opts.expected, restart: true });
    let n = 0;
    for await (const c of rest()) {
      n += c.length;
      if (hashOnly) hashOnly.update(c);
      else await writer!.write(c);
      if (scanner) await scanner.write(c);
    }
    if (n !== size) throw new InvalidArchiveError(`${opts.name}: unexpected end of data`);
    let digest: Digest;
    if (hashOnly) {
      digest = hashOnly.digest();
      if (digest !== opts.expected) throw new DigestMismatchError(opts.expected!, digest, opts.name);
    } else {
      try {
        digest = (await writer!.commit({ lease: opts.lease, size })).digest;
      } finally {
        writer = undefined;
      }
      // commit() checked `expected` already; this keeps the entry's name in the message.
      if (opts.expected && digest !== opts.expected) throw new DigestMismatchError(opts.expected, digest, opts.name);
    }
    const out: IngestedFile = { digest, size };
    if (known) {
      out.layer = { diffId: known.diffId, unpackedSize: known.unpackedSize, compression: compression as LayerCompression };
    } else if (scanner) {
      const r = await scanner.end(() => digest);
      if ('error' in r) out.layerError = r.error;
      else out.layer = { ...r, compression: compression as LayerCompression };
    }
    return out;
  } catch (e) {
    scanner?.abort();
    if (e instanceof DigestMismatchError && !e.message.includes(opts.name)) {
      throw new DigestMismatchError(e.expected, e.actual, opts.name);
    }
    throw e;
  } finally {
    await writer?.abort();
  }
}
