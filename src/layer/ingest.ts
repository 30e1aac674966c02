// Layer ingest: one pass over a (possibly compressed) tar stream that stores the blob, computes its diffID,
// and proves it is a well-formed tar — or stores nothing.
//
// The pass is a pipeline over two threads: the decompressor runs on the libuv thread pool while the main thread
// receives the input, hashes and writes it, and hashes and checks what comes out of the decompressor (TarCheck,
// a synchronous walk over the tar headers). Both sides are buffered so neither waits for the other's turn.
import type { Duplex, Readable, Transform } from 'node:stream';
import type { ContentStore, IngestWriter } from '../content/store.js';
import { Digester } from '../digest/digest.js';
import { DigestMismatchError, InvalidArchiveError, isDiskFull, PlyError, UnsupportedError } from '../errors.js';
import type { LayerRecord } from './types.js';
import type { Lease } from '../content/lease.js';
import { MediaType, type Digest } from '../oci/types.js';
import { BLOCK, MAX_NAME_SIZE, MAX_PAX_SIZE, checksumOk, entryHeader, isZeroBlock, padLength, parseLongName, parseNumeric, parsePax, parseString } from '../tar/header.js';
import type { TarHeader } from '../tar/index.js';
import { decompressor, detectCompression, type Compression } from './compression.js';
import { checkUnpackable } from './validate.js';

const STORED_AS: Partial<Record<Compression, string>> = {
  gzip: MediaType.OciLayerGzip,
  zstd: MediaType.OciLayerZstd,
};

/** Input is gathered into writes of this size (file writes and decompressor jobs). */
const FEED_CHUNK = 1 << 20;
/** Decompressed bytes waiting for the main thread before the decompressor is paused. */
const OUTPUT_QUEUE = 4 << 20;
/** Decompressed bytes handled in one turn of the event loop at most (see Decompressed). */
const TURN = 1 << 20;

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
  // The decompressed side: hashed (when the raw bytes are what is stored) or stored, and checked as a tar.
  const out = new Decompressed(decomp, keepRaw ? undefined : (c) => writer.write(c));
  let failure: unknown;
  out.result.catch((e: unknown) => {
    failure = e;
    decomp.destroy();
  });
  /** Input bytes gathered but not yet written (see flush below). */
  const pending: Buffer[] = [];
  /** The file write in progress: the raw bytes are written while they are being decompressed. */
  let writing: Promise<void> | undefined;
  try {
    // Bytes a resumed ingest already holds only go through the decompressor (their hash is already taken).
    const replay = async (c: Buffer): Promise<void> => {
      if (failure) throw failure;
      if (!decomp.write(c)) await drained(decomp);
    };
    // Sockets deliver ~64 KiB pieces: gathering them into ~1 MiB writes cuts the per-call cost of the file
    // writes and the number of decompressor jobs (each one a hand-off between the thread pool and this thread).
    let pendingBytes = 0;
    const flush = async (): Promise<void> => {
      if (pendingBytes === 0) return;
      if (failure) throw failure;
      const c = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
      if (keepRaw) {
        // One write at a time, in order. write() hashes `c` at once: from here on these bytes are part of the
        // blob's hash, so they leave `pending` (where a failure looks for the bytes not hashed yet).
        await writing;
        writing = writer.write(c);
        writing.catch(() => undefined);
      }
      pending.length = 0;
      pendingBytes = 0;
      if (!decomp.write(c)) await drained(decomp);
    };
    const feed = async ([c, stored]: [Buffer, boolean]): Promise<void> => {
      if (stored) return replay(c);
      pending.push(c);
      pendingBytes += c.length;
      if (pendingBytes >= FEED_CHUNK) await flush();
    };
    for (const c of firstChunks) await feed(c);
    if (!ended) {
      for (let r = await it.next(); !r.done; r = await it.next()) await feed(r.value);
    }
    await flush();
    await writing;
    if (failure) throw failure;
    decomp.end();
    const { unpackedSize, diff } = await out.result;
    const blob = await writer.commit({ lease: opts.lease, expected: opts.expected, size: opts.size });
    const diffId: Digest = keepRaw ? diff : blob.digest;
    return {
      digest: blob.digest,
      diffId,
      mediaType: STORED_AS[compression] ?? MediaType.OciLayer,
      size: blob.size,
      unpackedSize,
    };
  } catch (e) {
    let err = failure ?? e;
    await writing?.catch(() => undefined);
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
    // A known blob interrupted by the network keeps its bytes for the next try; bad bytes are dropped, and so
    // are the bytes of a write that filled the disk (resuming is worth less than a store that works).
    if (opts.expected && !isBadContent(err) && !isDiskFull(err)) await writer.suspend();
    else await writer.abort();
    decomp.destroy();
    throw err;
  }
}

/** Waits until `s` takes more input, or stops (the caller then finds out why from the consumer). */
function drained(s: Transform | Duplex): Promise<void> {
  if (s.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    s.on('drain', done);
    s.on('close', done);
  });
}

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * The consumer of a decompressor's output: hashes it (or hands it to `store`), checks it is a tar and sums its
 * files' sizes. Chunks are taken as 'data' events (a read() of several buffered chunks would copy them into
 * one) and handled about a MiB per turn of the event loop, so the decompressor's completions, which start its
 * next job on the thread pool, never wait behind a backlog.
 */
class Decompressed {
  readonly result: Promise<{ unpackedSize: number; diff: Digest }>;
  private readonly queue: Buffer[] = [];
  private queued = 0;
  private ended = false;
  private error: unknown;
  private wake: (() => void) | undefined;

  constructor(
    private readonly stream: Transform | Duplex,
    private readonly store?: (c: Buffer) => Promise<void>,
  ) {
    stream.on('data', (c: Buffer) => {
      this.queue.push(c);
      this.queued += c.length;
      if (this.queued >= OUTPUT_QUEUE) stream.pause();
      this.notify();
    });
    stream.once('end', () => {
      this.ended = true;
      this.notify();
    });
    stream.on('error', (e: unknown) => {
      this.error ??= e;
      this.notify();
    });
    stream.once('close', () => {
      if (!this.ended) this.error ??= new InvalidArchiveError('the decompressor stopped');
      this.notify();
    });
    this.result = this.run();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async run(): Promise<{ unpackedSize: number; diff: Digest }> {
    const diff = new Digester();
    const tar = new TarCheck(checkUnpackable);
    let sinceTurn = 0;
    for (;;) {
      if (this.error !== undefined) throw this.error;
      const c = this.queue.shift();
      if (c === undefined) {
        if (this.ended) return { unpackedSize: tar.end(), diff: diff.digest() };
        await new Promise<void>((resolve) => (this.wake = resolve));
        continue;
      }
      this.queued -= c.length;
      if (this.queued < OUTPUT_QUEUE / 2 && this.stream.isPaused()) this.stream.resume();
      if (this.store) await this.store(c);
      else diff.update(c);
      tar.update(c);
      sinceTurn += c.length;
      if (this.queue.length > 0 && sinceTurn >= TURN) {
        sinceTurn = 0;
        await nextTurn();
      }
    }
  }
}

/**
 * Checks that a stream is a well-formed tar as it goes by, chunk by chunk, and sums the sizes of its files.
 * It walks the headers the way readTar (src/tar/reader.ts) reads them and refuses what readTar refuses, with
 * the same errors (a test holds the two to that), without building entries: no names, no per-entry objects or
 * promises. What follows the end-of-archive blocks is ignored (it still belongs to the diffID).
 */
export class TarCheck {
  /** `onEntry` sees each entry's header (a layer being stored checks it can be unpacked: checkUnpackable). */
  constructor(private readonly onEntry?: (h: TarHeader) => void) {}
  private unpacked = 0;
  /** Offset in the archive of the next byte. */
  private offset = 0;
  private first = true;
  private finished = false;
  /** The first block was zeros: the next one must be zeros too (or the input ends). */
  private zeroFirst = false;
  private readonly block = Buffer.allocUnsafe(BLOCK);
  /** Bytes of a header gathered across chunks. */
  private fill = 0;
  /** Body and padding bytes still to pass over. */
  private skip = 0;
  /** A PAX or GNU long-name body being gathered. */
  private meta: { flag: number; data: Buffer; fill: number; at: number } | undefined;
  private globals: Map<string, Buffer> | undefined;
  private local: Map<string, Buffer> | undefined;
  private longName: string | undefined;
  private longLink: string | undefined;

  update(c: Buffer): void {
    const n = c.length;
    let p = 0;
    while (p < n && !this.finished) {
      if (this.skip > 0) {
        const k = Math.min(this.skip, n - p);
        this.skip -= k;
        p += k;
        this.offset += k;
        if (this.skip === 0 && this.meta) this.metaDone();
        continue;
      }
      const m = this.meta;
      if (m) {
        const k = Math.min(m.data.length - m.fill, n - p);
        c.copy(m.data, m.fill, p, p + k);
        m.fill += k;
        p += k;
        this.offset += k;
        if (m.fill === m.data.length) {
          // Taken in once its padding has gone by too (a truncated archive is reported as such first).
          this.skip = padLength(m.data.length);
          if (this.skip === 0) this.metaDone();
        }
        continue;
      }
      const at = this.offset - this.fill;
      let block: Buffer;
      if (this.fill === 0 && n - p >= BLOCK) {
        block = c.subarray(p, p + BLOCK);
        p += BLOCK;
        this.offset += BLOCK;
      } else {
        const k = Math.min(BLOCK - this.fill, n - p);
        c.copy(this.block, this.fill, p, p + k);
        this.fill += k;
        p += k;
        this.offset += k;
        if (this.fill < BLOCK) return;
        this.fill = 0;
        block = this.block;
      }
      this.header(block, at);
    }
  }

  /** The sum of the files' sizes; throws when the input ended inside the archive. */
  end(): number {
    if (this.finished) return this.unpacked;
    if (this.zeroFirst) {
      if (this.fill > 0) throw new InvalidArchiveError('not a tar archive');
      return this.unpacked;
    }
    if (this.fill > 0 && this.first) throw new InvalidArchiveError('not a tar archive');
    if (this.fill > 0 || this.skip > 0 || this.meta || this.local || this.longName !== undefined || this.longLink !== undefined) {
      throw new InvalidArchiveError('unexpected end of tar archive');
    }
    return this.unpacked;
  }

  private startMeta(flag: number, size: number, at: number): void {
    this.meta = { flag, data: Buffer.allocUnsafe(size), fill: 0, at };
    if (size === 0) this.metaDone();
  }

  /** Takes in a PAX or GNU long-name body, gathered along with its padding. */
  private metaDone(): void {
    const m = this.meta!;
    this.meta = undefined;
    if (m.flag === 0x78) parsePax(m.data, (this.local ??= new Map()), m.at);
    else if (m.flag === 0x67) parsePax(m.data, (this.globals ??= new Map()), m.at);
    else if (m.flag === 0x4c) this.longName = parseLongName(m.data);
    else this.longLink = parseLongName(m.data);
  }

  private header(block: Buffer, at: number): void {
    if (this.zeroFirst) {
      // An archive must not start with zeros unless it is an empty archive.
      if (!isZeroBlock(block)) throw new InvalidArchiveError('not a tar archive');
      this.finished = true;
      return;
    }
    if (isZeroBlock(block)) {
      if (this.first) this.zeroFirst = true;
      else if (this.local || this.longName !== undefined || this.longLink !== undefined) {
        throw new InvalidArchiveError(`invalid tar header at offset ${at}`);
      } else this.finished = true;
      return;
    }
    if (!checksumOk(block)) throw new InvalidArchiveError(this.first ? 'not a tar archive' : `invalid tar header at offset ${at}`);
    this.first = false;
    const flag = block[156]!;
    let size = parseNumeric(block, 124, 12);
    if (!(size >= 0)) throw new InvalidArchiveError(`invalid size in tar header at offset ${at}`);
    switch (flag) {
      case 0x78: // 'x' PAX local
      case 0x67: // 'g' PAX global
        if (size > MAX_PAX_SIZE) throw new InvalidArchiveError(`PAX extended header too large (${size} bytes) at offset ${at}`);
        return this.startMeta(flag, size, at);
      case 0x4c: // 'L' GNU long name
      case 0x4b: // 'K' GNU long link
        if (size > MAX_NAME_SIZE) throw new InvalidArchiveError(`GNU long name too long (${size} bytes) at offset ${at}`);
        return this.startMeta(flag, size, at);
      case 0x56: // 'V' volume label
        this.skip = size + padLength(size);
        return;
      case 0x53: // 'S' GNU sparse
        throw new UnsupportedError(`GNU sparse tar entries are not supported ('${this.longName ?? parseString(block, 0, 100)}' at offset ${at})`);
      case 0x4d: // 'M' multi-volume continuation
        throw new UnsupportedError(`multi-volume tar archives are not supported (offset ${at})`);
      case 0x4e: // 'N' old GNU long names
        throw new UnsupportedError(`old GNU long-name tar entries are not supported (offset ${at})`);
    }
    const { header, dataSize } = entryHeader(block, at, { globals: this.globals, local: this.local, longName: this.longName, longLink: this.longLink });
    this.onEntry?.(header);
    this.unpacked += header.size;
    this.local = undefined;
    this.longName = undefined;
    this.longLink = undefined;
    this.skip = dataSize + padLength(dataSize);
  }
}

export class IngestChangedError extends PlyError {}
