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
  /** A fixed level (gzip 0-9, zstd 1-22). Without it (and without `plan`) the format's default, or `adaptive`. */
  level?: number;
  /**
   * Pick each block's codec and level by how fast the output is taken: a slow link gets blocks compressed
   * harder, a fast one faster compression. `onPlan` gets what was used, for the recipe.
   */
  adaptive?: boolean;
  /** The code of each block (one code: every block), as `onPlan` gave it: a recorded compression made again. */
  plan?: string;
  /** Called once the input is all compressed, with each block's code. */
  onPlan?: (plan: string) => void;
  /** Uncompressed bytes per independent gzip member or zstd frame (default 1 MiB for gzip, 8 MiB for zstd). */
  blockSize?: number;
  /** Blocks compressed at once on the thread pool (default 2 × cores); zstd's worker threads with `oneFrame`. */
  parallel?: number;
  /** zstd: one frame made by zstd's own worker threads (what ply made before its binding compressed zstd). */
  oneFrame?: boolean;
}

/**
 * One format compressed block by block on the thread pool: each block an independent gzip member or zstd
 * frame, at a level given by a one-character code, so a compression is recorded as a string of codes.
 */
interface BlockCodec {
  format: 'gzip' | 'zstd';
  blockSize: number;
  /** The adaptive ladder, fastest first (each rung slower and smaller than the one before), and where it starts. */
  ladder: string[];
  start: string;
  /** The code for a fixed level. */
  code(level: number): string;
  /** The level a code stands for, where it is one the user could have asked for. */
  level(code: string): number | undefined;
  compress(block: Buffer, code: string): Promise<Buffer>;
  /** What makes the bytes of `plan` here (part of the recipe); undefined when this build cannot make them. */
  implementation(plan: string): string | undefined;
}

/** Uncompressed bytes per gzip member: with 1 MiB the lost context at each boundary costs about 1% of the size. */
export const GZIP_BLOCK = 1 << 20;
/** Uncompressed bytes per zstd frame: zstd's matches reach further, and 8 MiB frames lose under 1% to one frame. */
export const ZSTD_BLOCK = 8 << 20;

/**
 * gzip codes: '0'-'9' libdeflate's (or zlib's) levels, 'A'-'D' igzip's 0-3. igzip's 2 and 3 are 3x faster than
 * libdeflate's 1 for 2-4% more bytes: the bottom of the ladder, for a destination faster than deflate.
 */
function gzipCodec(): BlockCodec {
  const ld = libdeflate();
  const isal = ld?.igzipBlock ? ld.codecs().igzip : undefined;
  const base = gzipImplementation();
  // On the Debian image, per core here: igzip 2 336 MiB/s to 42.3%, igzip 3 172 to 41.6%, libdeflate 1 126 to 40.7%
  // … 9 24 to 37.6%. libdeflate's 3 and 8 are left out: each is slower than a level that makes fewer bytes.
  const deflate = ['1', '2', '4', '5', '6', '7', '9'];
  return {
    format: 'gzip',
    blockSize: GZIP_BLOCK,
    ladder: isal ? ['C', 'D', ...deflate] : deflate,
    start: '1',
    code: (level) => String(level),
    level: (code) => (/^[0-9]$/.test(code) ? Number(code) : undefined),
    compress: (block, code) => {
      if (code >= 'A' && code <= 'D') return viaPool(ld!.igzipBlock!, block, code.charCodeAt(0) - 65);
      if (ld) return viaPool(ld.gzipBlock, block, Number(code));
      // One thread-pool job per block: the output buffer holds a whole member (deflate's worst case is +0.1%).
      const chunkSize = block.length + (block.length >> 6) + 1024;
      return new Promise((resolve, reject) => zlib().gzip(block, { level: Number(code), chunkSize }, (e, out) => (e ? reject(e) : resolve(out))));
    },
    implementation: (plan) => (!/[A-D]/.test(plan) ? base : isal ? `${base}+${isal}` : undefined),
  };
}

type BlockFn = (input: Buffer, level: number, cb: (err: Error | null, out: Buffer) => void) => void;

function viaPool(fn: BlockFn, block: Buffer, level: number): Promise<Buffer> {
  return new Promise((resolve, reject) => fn(block, level, (e, out) => (e ? reject(e) : resolve(out))));
}

/**
 * zstd codes: the level in base 36 ('1'-'9', 'a' = 10 … 'm' = 22). The ladder stops at 9 (8 is slower than 9
 * here and no smaller): above it, frames of 8 MiB shrink by under 1% for twice the time.
 */
function zstdCodec(): BlockCodec | undefined {
  const ld = libdeflate();
  const version = ld?.zstdBlock ? ld.codecs().zstd : undefined;
  if (!version) return undefined;
  return {
    format: 'zstd',
    blockSize: ZSTD_BLOCK,
    // Per core here on the Debian image: 1 472 MiB/s to 38.5% … 3 218 to 32.1% … 9 60 to 28.9%.
    ladder: ['1', '2', '3', '4', '5', '6', '7', '9'],
    start: String(COMPRESSION_LEVELS.zstd.default),
    code: (level) => level.toString(36),
    level: (code) => parseInt(code, 36),
    compress: (block, code) => viaPool(ld!.zstdBlock!, block, parseInt(code, 36)),
    implementation: () => version,
  };
}

let codecs: { gzip: BlockCodec; zstd: BlockCodec | undefined } | undefined;

/** The block codec of `format`, made once: recipes are parsed and made for every layer of a push. */
function codecFor(format: 'gzip' | 'zstd'): BlockCodec | undefined {
  codecs ??= { gzip: gzipCodec(), zstd: zstdCodec() };
  return codecs[format];
}

/**
 * What determines the bytes `compressed` makes, as a string (stored with the blobs pushes make): the same recipe
 * on the same input gives the same output, so a blob can be made again instead of fetched.
 * `format/codes/blockSize/implementation`, codes being one code for every block or `L` and one per block.
 */
export function compressionRecipe(format: LayerCompression, opts: CompressOptions = {}): string {
  if (format === 'none') return 'none';
  const codec = codecFor(format);
  // Without ply's zstd binding, zstd's own multi-threading makes one frame; its output does not depend on the workers.
  if (!codec || opts.oneFrame) return `zstd/${opts.level ?? COMPRESSION_LEVELS.zstd.default}/mt`;
  const plan = opts.plan ?? codec.code(opts.level ?? COMPRESSION_LEVELS[format].default);
  const codes = new Set(plan).size > 1 ? `L${plan}` : plan.slice(0, 1);
  return `${format}/${codes}/${opts.blockSize ?? codec.blockSize}/${codec.implementation(plan)}`;
}

/** The options `compressionRecipe` stands for; undefined for a recipe this build does not make. */
export function parseRecipe(recipe: string): { format: LayerCompression; opts: CompressOptions } | undefined {
  const [format, codes = '', block, impl] = recipe.split('/');
  if (format === 'none') return { format, opts: {} };
  if (format === 'zstd' && block === 'mt' && /^[0-9]+$/.test(codes)) return { format, opts: { level: Number(codes), oneFrame: true } };
  if (format !== 'gzip' && format !== 'zstd') return undefined;
  const codec = codecFor(format);
  const blockSize = Number(block);
  const plan = codes.startsWith('L') ? codes.slice(1) : codes;
  const valid = format === 'gzip' ? /^[0-9A-D]+$/ : /^[1-9a-m]+$/;
  if (!codec || !valid.test(plan) || !Number.isInteger(blockSize) || blockSize < 1 << 12 || blockSize > 64 << 20) return undefined;
  if ((plan.length === 1) === codes.startsWith('L') || codec.implementation(plan) !== impl) return undefined;
  const level = plan.length === 1 ? codec.level(plan) : undefined;
  return { format, opts: { plan, blockSize, ...(level !== undefined ? { level } : {}) } };
}

/** `source` compressed as `format` ('none': as it is), using every core. */
export function compressed(source: AsyncIterable<Buffer>, format: LayerCompression, opts: CompressOptions = {}): AsyncIterable<Buffer> {
  if (format === 'none') return source;
  const codec = codecFor(format);
  if (codec && !opts.oneFrame) return blockParallel(source, codec, opts);
  return piped(source, zstdCompressStream(opts.level ?? COMPRESSION_LEVELS.zstd.default, opts.parallel ?? cores()));
}

function cores(): number {
  return Math.max(1, (requireCjs('node:os') as typeof import('node:os')).availableParallelism());
}

/** gzip over every core, as pigz (see `blockParallel`). */
export function gzipParallel(source: AsyncIterable<Buffer>, opts: CompressOptions = {}): AsyncGenerator<Buffer> {
  return blockParallel(source, codecFor('gzip')!, opts);
}

/**
 * Compression over every core: the input is cut into blocks that are compressed at once on the libuv thread
 * pool, and the results are concatenated in order. A multi-member gzip stream is valid gzip (RFC 1952 §2.2) and
 * a run of zstd frames valid zstd (RFC 8878 §3.1), which every reader (Go's, zlib's, pigz's, zstd's)
 * decompresses as one. The output is a function of the input, block size and codes alone, so a recorded
 * compression gives the same digest every time.
 */
async function* blockParallel(source: AsyncIterable<Buffer>, codec: BlockCodec, opts: CompressOptions): AsyncGenerator<Buffer> {
  const blockSize = opts.blockSize ?? codec.blockSize;
  const inFlight = Math.max(1, opts.parallel ?? 2 * cores());
  const control = opts.adaptive && !opts.plan && opts.level === undefined ? new LevelControl(codec.ladder, codec.start) : undefined;
  const fixed = opts.plan?.length === 1 ? opts.plan : codec.code(opts.level ?? COMPRESSION_LEVELS[codec.format].default);
  let plan = '';
  const queue: { out: Promise<Buffer>; done: boolean }[] = [];
  try {
    for await (const block of blocks(source, blockSize)) {
      const code = opts.plan && opts.plan.length > 1 ? opts.plan[plan.length] : (control?.code ?? fixed);
      if (code === undefined) throw new InvalidArchiveError('the input is longer than the recorded compression');
      plan += code;
      const job = { out: codec.compress(block, code), done: false };
      job.out.then(() => (job.done = true), () => undefined); // awaited in order below; a failure is thrown there
      queue.push(job);
      if (queue.length >= inFlight) {
        const head = queue.shift()!;
        // The reader asked for the next block: was it ready (the reader is the slower side) or not yet, and were
        // the ones behind it (all but the block just started) ready too?
        control?.observe(head.done, queue.every((j, i) => j.done || i === queue.length - 1));
        yield await head.out;
      }
    }
    while (queue.length > 0) yield await queue.shift()!.out;
    opts.onPlan?.(plan);
  } finally {
    queue.length = 0;
  }
}

/**
 * The level of an adaptive compression, as a rung of its codec's ladder. Blocks are compressed a few ahead of
 * the reader (the upload): when the reader finds every block ahead already done, the link is the bottleneck and
 * the CPU has time to spare, so the next block gets a slower, smaller rung; when it has to wait for a block,
 * compression is the bottleneck and the rung goes down one. Decided at each block read, as zstd's --adapt does;
 * climbs that go on gather speed (one rung, then two, …), so that a ladder of few large blocks (zstd) still
 * reaches its level early. The first read only finds the pipeline just started and says nothing.
 */
class LevelControl {
  private rung: number;
  private reads = 0;
  private climb = 0;
  constructor(
    private readonly ladder: string[],
    start: string,
  ) {
    this.rung = Math.max(0, ladder.indexOf(start));
  }
  get code(): string {
    return this.ladder[this.rung]!;
  }
  observe(headReady: boolean, allReady: boolean): void {
    if (this.reads++ === 0) return;
    if (!headReady) {
      this.rung = Math.max(0, this.rung - 1);
      this.climb = 0;
    } else if (allReady) {
      this.climb++;
      this.rung = Math.min(this.ladder.length - 1, this.rung + this.climb);
    } else {
      this.climb = 0;
    }
  }
}

interface DeflateAddon {
  gzipBlock: BlockFn;
  igzipBlock?: BlockFn;
  zstdBlock?: BlockFn;
  codecs(): { igzip?: string; zstd?: string };
}
let deflateAddon: DeflateAddon | null | undefined;

/** ply's compression binding (native/deflate.c), or null where it was not built (zlib and zstd-napi do the work then). */
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

/** Which deflate implementation compresses gzip blocks at levels 0-9: part of the recipe, as each makes other (valid) bytes. */
export function gzipImplementation(): 'libdeflate' | 'zlib' {
  return libdeflate() ? 'libdeflate' : 'zlib';
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
