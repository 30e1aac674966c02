// Compression of layer streams: detection by magic bytes, and decompression/compression transforms.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { Duplex, PassThrough, type Transform } from 'node:stream';
import type { ZlibOptions } from 'node:zlib';
import { createRequire } from 'node:module';
import { InvalidArchiveError, UnsupportedError } from '../errors.js';

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

interface ZstdModule {
  DecompressStream: new () => Transform;
  CompressStream: new (opts?: { compressionLevel?: number }) => Transform;
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

function zstdCompressStream(level: number): Transform {
  return new (zstd().CompressStream)({ compressionLevel: level });
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
  const d = decompressor(c);
  const feed = (async () => {
    try {
      if (!d.write(head)) await once(d, 'drain');
      for (let r = await it.next(); !r.done; r = await it.next()) {
        if (!d.write(r.value)) await once(d, 'drain');
      }
      d.end();
    } catch (e) {
      d.destroy(e as Error);
    }
  })();
  for await (const chunk of d) yield chunk as Buffer;
  await feed;
}
