// Compression of layer streams: detection by magic bytes, and decompression/compression transforms.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Duplex, PassThrough, type Transform } from 'node:stream';
import type { ZlibOptions } from 'node:zlib';
import { createRequire } from 'node:module';
import { InvalidArchiveError, UnsupportedError } from '../errors.js';
import { blocks } from '../util/stream.js';

export type Compression = 'none' | 'gzip' | 'zstd' | 'xz' | 'bzip2';

export function detectCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  if (head.length >= 6 && head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return 'xz';
  if (head.length >= 3 && head.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  return 'none';
}

/** gzip output chunks (compression). */
const GZIP_CHUNK = 64 * 1024;
/**
 * gunzip output chunks. Each chunk is one job on the libuv thread pool followed by a hop back to the main thread
 * to start the next: 1 MiB chunks make those hops rare enough that the decompression keeps its core busy while
 * the main thread hashes and parses what came out (measured 1.3-1.5x faster than 64 KiB chunks, and 64 KiB was
 * 2-3x faster than the 16 KiB default).
 */
export const GUNZIP_CHUNK = 1 << 20;
/**
 * Buffering on both sides of a decompressor: input queued ahead and output waiting to be read let the
 * decompression (on the thread pool) run while the main thread is busy, instead of in turns with it.
 */
export const DECOMPRESS_BUFFER = 4 << 20;

export function decompressor(c: Compression): Transform | Duplex {
  switch (c) {
    case 'none':
      return new PassThrough({ highWaterMark: 1 << 20 });
    case 'gzip':
      return wrapErrors(
        // zlib passes stream options on to its Transform (the typings only list zlib's own).
        zlib().createGunzip({
          chunkSize: GUNZIP_CHUNK,
          readableHighWaterMark: DECOMPRESS_BUFFER,
          writableHighWaterMark: DECOMPRESS_BUFFER,
        } as ZlibOptions),
        'gzip',
      );
    case 'zstd':
      return wrapErrors(zstdDecompressStream(), 'zstd');
    case 'xz':
    case 'bzip2':
      return externalFilter(c === 'xz' ? 'xz' : 'bzip2', ['-dc'], c);
  }
}

export function compressor(c: 'gzip' | 'zstd', level?: number): Transform {
  if (c === 'gzip') return zlib().createGzip({ level: level ?? 1, chunkSize: GZIP_CHUNK });
  return zstdCompressStream(level ?? 3);
}

/** The formats a layer can be pushed in. */
export type LayerCompression = 'none' | 'gzip' | 'zstd';

/** Levels each format accepts (podman's --compression-level ranges). */
export const COMPRESSION_LEVELS: Record<Exclude<LayerCompression, 'none'>, { min: number; max: number; default: number }> = {
  gzip: { min: 0, max: 9, default: 6 },
  zstd: { min: 1, max: 22, default: 3 },
};

export interface CompressOptions {
  level?: number;
  /**
   * gzip: pick each block's level by how fast the output is taken (`level` is where it starts): a slow link gets
   * smaller blocks, a fast one faster compression. `onLevels` gets the levels used, for the recipe.
   */
  adaptive?: boolean;
  /** gzip: the level of each block (a recorded adaptive compression, made again byte for byte). */
  levels?: number[];
  /** Called once the input is all compressed, with the level of each block. */
  onLevels?: (levels: number[]) => void;
  /** gzip: uncompressed bytes per independent member (default 1 MiB). */
  blockSize?: number;
  /** gzip: blocks compressed at once on the thread pool; zstd: worker threads (default: 2 × cores, cores). */
  parallel?: number;
}

/**
 * What determines the bytes `compressed` makes, as a string (stored with the blobs pushes make): the same recipe
 * on the same input gives the same output, so a blob can be made again instead of fetched. zstd's multi-threaded
 * output does not depend on the number of workers.
 */
export function compressionRecipe(format: LayerCompression, opts: CompressOptions = {}): string {
  if (format === 'none') return 'none';
  if (format === 'gzip') {
    const levels = opts.levels && new Set(opts.levels).size > 1 ? `L${opts.levels.join('')}` : String(opts.levels?.[0] ?? opts.level ?? COMPRESSION_LEVELS.gzip.default);
    return `gzip/${levels}/${opts.blockSize ?? GZIP_BLOCK}/${gzipImplementation()}`;
  }
  return `zstd/${opts.level ?? COMPRESSION_LEVELS.zstd.default}/mt`;
}

/** The options `compressionRecipe` stands for; undefined for a recipe this version does not make. */
export function parseRecipe(recipe: string): { format: LayerCompression; opts: CompressOptions } | undefined {
  const [format, level = '', block, impl] = recipe.split('/');
  if (format === 'none') return { format, opts: {} };
  if (format === 'gzip' && impl === gzipImplementation() && Number(block) === GZIP_BLOCK) {
    if (/^L[0-9]+$/.test(level)) return { format, opts: { levels: [...level.slice(1)].map(Number) } };
    if (/^[0-9]$/.test(level)) return { format, opts: { level: Number(level) } };
  }
  if (format === 'zstd' && block === 'mt' && /^[0-9]+$/.test(level)) return { format, opts: { level: Number(level) } };
  return undefined;
}

/** `source` compressed as `format` ('none': as it is), using every core. */
export function compressed(source: AsyncIterable<Buffer>, format: LayerCompression, opts: CompressOptions = {}): AsyncIterable<Buffer> {
  if (format === 'none') return source;
  if (format === 'gzip') return gzipParallel(source, opts);
  const workers = opts.parallel ?? cores();
  return piped(source, zstdCompressStream(opts.level ?? COMPRESSION_LEVELS.zstd.default, workers));
}

function cores(): number {
  return Math.max(1, (requireCjs('node:os') as typeof import('node:os')).availableParallelism());
}

/**
 * gzip over every core, as pigz: the input is cut into blocks that are compressed as independent gzip members
 * at once on the libuv thread pool (libdeflate, else zlib), and the members are concatenated in order. A multi-member stream is valid
 * gzip (RFC 1952 §2.2) that every reader (Go's, zlib's, pigz's) decompresses as one; with 1 MiB blocks the lost
 * context at each boundary costs about 1% of the size. The output is a function of the input, level and block
 * size alone, so the same layer compresses to the same digest every time.
 */
export async function* gzipParallel(source: AsyncIterable<Buffer>, opts: CompressOptions = {}): AsyncGenerator<Buffer> {
  const blockSize = opts.blockSize ?? GZIP_BLOCK;
  const inFlight = Math.max(1, opts.parallel ?? 2 * cores());
  const gzip = gzipBlockFn(blockSize);
  const control = opts.adaptive && !opts.levels ? new LevelControl(opts.level ?? ADAPTIVE_START) : undefined;
  const fixed = opts.level ?? COMPRESSION_LEVELS.gzip.default;
  const levels: number[] = [];
  const queue: { out: Promise<Buffer>; done: boolean }[] = [];
  try {
    for await (const block of blocks(source, blockSize)) {
      const level = opts.levels ? opts.levels[levels.length] : (control?.level ?? fixed);
      if (level === undefined) throw new InvalidArchiveError('the input is longer than the recorded compression');
      levels.push(level);
      const job = { out: gzip(block, level), done: false };
      job.out.then(() => (job.done = true), () => undefined); // awaited in order below; a failure is thrown there
      queue.push(job);
      if (queue.length >= inFlight) {
        const head = queue.shift()!;
        // The reader asked for the next block: was it ready (the reader is the slower side) or not yet?
        control?.observe(head.done);
        yield await head.out;
      }
    }
    while (queue.length > 0) yield await queue.shift()!.out;
    opts.onLevels?.(levels);
  } finally {
    queue.length = 0;
  }
}

/** Where an adaptive gzip starts; it moves between 1 and 9. */
const ADAPTIVE_START = 4;

/**
 * The level of an adaptive gzip. Blocks are compressed a few ahead of the reader (the upload): when the reader
 * keeps finding its next block ready, the link is the bottleneck and the CPU has time to spare, so blocks get a
 * higher level (fewer bytes to send); when it has to wait for blocks, compression is the bottleneck and the level
 * goes down. Decided every few blocks, one step at a time, as zstd's --adapt does.
 */
class LevelControl {
  private ready = 0;
  private seen = 0;
  constructor(public level: number) {}
  observe(ready: boolean): void {
    this.seen++;
    if (ready) this.ready++;
    if (this.seen < 4) return;
    if (this.ready >= 3) this.level = Math.min(9, this.level + 1);
    else if (this.ready <= 1) this.level = Math.max(1, this.level - 1);
    this.ready = 0;
    this.seen = 0;
  }
}

/** Uncompressed bytes per gzip member. */
export const GZIP_BLOCK = 1 << 20;

interface DeflateAddon {
  gzipBlock(input: Buffer, level: number, cb: (err: Error | null, out: Buffer) => void): void;
}
let deflateAddon: DeflateAddon | null | undefined;

/** ply's libdeflate binding (native/deflate.c), or null where it was not built (zlib does the work then). */
function libdeflate(): DeflateAddon | null {
  if (deflateAddon === undefined) {
    try {
      deflateAddon = process.env.PLY_GZIP === 'zlib' ? null : (requireCjs('ply-native/deflate.js') as DeflateAddon);
    } catch {
      deflateAddon = null;
    }
  }
  return deflateAddon;
}

/** Which gzip implementation compresses blocks here: part of the recipe, as each makes other (valid) bytes. */
export function gzipImplementation(): 'libdeflate' | 'zlib' {
  return libdeflate() ? 'libdeflate' : 'zlib';
}

/** Compresses one block as a complete gzip member on the thread pool. */
function gzipBlockFn(blockSize: number): (block: Buffer, level: number) => Promise<Buffer> {
  const ld = libdeflate();
  if (ld) return (block, level) => new Promise((resolve, reject) => ld.gzipBlock(block, level, (e, out) => (e ? reject(e) : resolve(out))));
  const z = zlib();
  // One thread-pool job per block: the output buffer holds a whole member (deflate's worst case is +0.1%).
  const chunkSize = blockSize + (blockSize >> 6) + 1024;
  return (block, level) => new Promise((resolve, reject) => z.gzip(block, { level, chunkSize }, (e, out) => (e ? reject(e) : resolve(out))));
}

interface ZstdModule {
  DecompressStream: new () => Transform;
  CompressStream: new (opts?: { compressionLevel?: number; nbWorkers?: number }) => Transform;
}

const requireCjs = createRequire(import.meta.url);

/** zlib is loaded on first use: most commands never (de)compress, and every module costs start-up time. */
function zlib(): typeof import('node:zlib') {
  return requireCjs('node:zlib') as typeof import('node:zlib');
}
let zstdModule: ZstdModule | undefined;

/** The native addon is loaded on first use: commands that never see zstd do not pay for it at start-up. */
function zstd(): ZstdModule {
  return (zstdModule ??= requireCjs('zstd-napi') as ZstdModule);
}

function zstdDecompressStream(): Transform {
  return new (zstd().DecompressStream)();
}

/** zstd's own multi-threading (nbWorkers > 0): the frame is compressed by background threads, one format. */
function zstdCompressStream(level: number, workers = 0): Transform {
  return new (zstd().CompressStream)({ compressionLevel: level, ...(workers > 0 ? { nbWorkers: workers } : {}) });
}

/** Turns codec errors into one clear line about corrupt input. */
function wrapErrors<T extends Transform>(t: T, what: string): T {
  const origDestroy = t._destroy.bind(t);
  t._destroy = (err, cb) => {
    origDestroy(err ? new InvalidArchiveError(`corrupt ${what} data: ${err.message}`) : null, cb);
  };
  return t;
}

function externalFilter(cmd: string, args: string[], what: string): Duplex {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const duplex = Duplex.from({ writable: child.stdin, readable: child.stdout });
  child.on('error', (e) => duplex.destroy(new UnsupportedError(`${what}-compressed input needs the ${cmd} command: ${e.message}`)));
  child.on('exit', (code) => {
    if (code !== 0) duplex.destroy(new InvalidArchiveError(`corrupt ${what} data: ${stderr.trim().split('\n')[0] ?? ''}`));
  });
  return duplex;
}

/** The decompressed bytes of a layer stream, whatever its compression (detected from its first bytes). */
export async function* decompressed(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) return;
  const head: Buffer = first.value;
  const c = detectCompression(head);
  if (c === 'none') {
    yield head;
    for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    return;
  }
  yield* piped(
    (async function* () {
      yield head;
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    })(),
    decompressor(c),
  );
}

/** `source` through a transform stream, with backpressure both ways. */
export async function* piped(source: AsyncIterable<Buffer>, t: Transform | Duplex): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
  let stopped = false;
  const feed = (async () => {
    try {
      for (let r = await it.next(); !r.done && !stopped; r = await it.next()) {
        if (!t.write(r.value)) await Promise.race([once(t, 'drain'), once(t, 'close')]);
      }
      if (!stopped) t.end();
    } catch (e) {
      t.destroy(e as Error);
    }
  })();
  let done = false;
  try {
    for await (const chunk of t) yield chunk as Buffer;
    await feed;
    done = true;
  } finally {
    if (!done) {
      // The reader stopped early (or failed): stop feeding and release the source.
      stopped = true;
      t.destroy();
      it.return?.()?.catch(() => undefined);
    }
  }
}
