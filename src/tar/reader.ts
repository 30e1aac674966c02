/** Streaming tar reader: parses ustar/PAX/GNU archives chunk by chunk and hands out entry bodies as zero-copy slices of the input. */

import { Readable } from 'node:stream';
import { InvalidArchiveError, UnsupportedError } from '../errors.js';
import {
  BLOCK,
  MAX_NAME_SIZE,
  MAX_PAX_SIZE,
  checksumOk,
  entryHeader,
  isZeroBlock,
  padLength,
  parseLongName,
  parseNumeric,
  parsePax,
  parseString,
  type TarHeader,
} from './header.js';

export interface TarEntry {
  header: TarHeader;
  /**
   * The entry's body as Buffer chunks (slices of the input, not copies). Must be consumed before
   * asking the reader for the next entry; an unconsumed (or partly consumed) body is skipped then.
   */
  body: AsyncIterable<Buffer>;
  /** Convenience: collect the whole body into one Buffer (meant for small entries). */
  buffer(): Promise<Buffer>;
}

const EMPTY = Buffer.alloc(0);
const DONE: IteratorResult<Buffer> = { done: true, value: undefined };
const DONE_P = Promise.resolve(DONE);

function truncated(): InvalidArchiveError {
  return new InvalidArchiveError('unexpected end of tar archive');
}

function toBuffer(c: unknown): Buffer {
  if (Buffer.isBuffer(c)) return c;
  if (typeof c === 'string') return Buffer.from(c, 'utf8');
  if (c instanceof Uint8Array) return Buffer.from(c.buffer, c.byteOffset, c.byteLength);
  throw new TypeError('tar input must be a stream of Buffers');
}

/** The input cursor: the current chunk plus a position in it, refilled from the source iterator. */
class Input {
  buf: Buffer = EMPTY;
  pos = 0;
  /** Absolute offset of buf[0] in the archive. */
  private base = 0;
  eof = false;
  private readonly it: AsyncIterator<unknown>;

  constructor(source: AsyncIterable<unknown>) {
    this.it = source[Symbol.asyncIterator]();
  }

  get offset(): number {
    return this.base + this.pos;
  }

  /** Load the next non-empty chunk (call only when the current one is used up); false at EOF. */
  async more(): Promise<boolean> {
    for (;;) {
      if (this.eof) return false;
      const r = await this.it.next();
      if (r.done) {
        this.eof = true;
        return false;
      }
      const c = toBuffer(r.value);
      if (c.length === 0) continue;
      this.base += this.buf.length;
      this.buf = c;
      this.pos = 0;
      return true;
    }
  }

  /**
   * Read n bytes (a slice of the current chunk, or a copy when they straddle chunks). If the input
   * ends first, `got` tells how many bytes were obtained.
   */
  async read(n: number): Promise<{ data: Buffer; got: number }> {
    if (this.buf.length - this.pos >= n) {
      const data = this.buf.subarray(this.pos, this.pos + n);
      this.pos += n;
      return { data, got: n };
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      if (this.pos >= this.buf.length && !(await this.more())) return { data: out, got };
      const k = Math.min(n - got, this.buf.length - this.pos);
      this.buf.copy(out, got, this.pos, this.pos + k);
      this.pos += k;
      got += k;
    }
    return { data: out, got };
  }

  /** Discard n bytes; throws if the input ends first. */
  async skip(n: number): Promise<void> {
    while (n > 0) {
      if (this.pos >= this.buf.length && !(await this.more())) throw truncated();
      const k = Math.min(n, this.buf.length - this.pos);
      this.pos += k;
      n -= k;
    }
  }

  /** Discard everything left in the source. */
  async drain(): Promise<void> {
    this.pos = this.buf.length;
    while (await this.more()) this.pos = this.buf.length;
  }

  async close(): Promise<void> {
    if (!this.eof) {
      this.eof = true;
      await this.it.return?.();
    }
  }
}

/** Zero-copy iterator over one entry's body. */
class Body implements AsyncIterableIterator<Buffer> {
  remaining: number;
  stale = false;
  private busy: Promise<IteratorResult<Buffer>> | null = null;

  constructor(
    private readonly input: Input,
    size: number,
  ) {
    this.remaining = size;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Buffer>> {
    if (this.stale) return Promise.reject(new Error('tar entry body read after the reader moved to the next entry'));
    if (this.busy) return this.busy.then(() => this.next());
    if (this.remaining === 0) return DONE_P;
    const inp = this.input;
    if (inp.pos < inp.buf.length) return Promise.resolve(this.take());
    const p = this.slow();
    this.busy = p;
    return p;
  }

  private async slow(): Promise<IteratorResult<Buffer>> {
    try {
      if (!(await this.input.more())) throw truncated();
      return this.take();
    } finally {
      this.busy = null;
    }
  }

  private take(): IteratorResult<Buffer> {
    const inp = this.input;
    const n = Math.min(this.remaining, inp.buf.length - inp.pos);
    const value = inp.buf.subarray(inp.pos, inp.pos + n);
    inp.pos += n;
    this.remaining -= n;
    return { done: false, value };
  }

  return(): Promise<IteratorResult<Buffer>> {
    // The reader skips whatever is left when it moves on.
    return DONE_P;
  }

  async toBuffer(): Promise<Buffer> {
    const out = Buffer.allocUnsafe(this.remaining);
    let p = 0;
    for await (const c of this) p += c.copy(out, p);
    return out;
  }
}

class Entry implements TarEntry {
  constructor(
    readonly header: TarHeader,
    readonly body: Body,
  ) {}

  buffer(): Promise<Buffer> {
    return this.body.toBuffer();
  }
}

type Source = AsyncIterable<Buffer> | NodeJS.ReadableStream;

function asIterable(source: Source): AsyncIterable<unknown> {
  if (typeof (source as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
    return source as AsyncIterable<unknown>;
  }
  return new Readable().wrap(source as NodeJS.ReadableStream);
}

/**
 * Read a tar archive, yielding one entry per file system object. PAX ('x' and 'g'), GNU long
 * name/link ('L'/'K') and volume label ('V') headers are folded into the entries they describe.
 * Ends at the end-of-archive zero block(s) (the rest of the input is drained) or at a clean EOF on
 * a header boundary. Throws InvalidArchiveError for malformed or truncated archives and
 * UnsupportedError for GNU sparse files.
 */
export async function* readTar(source: Source): AsyncGenerator<TarEntry> {
  const input = new Input(asIterable(source));
  let first = true;
  let globals: Map<string, Buffer> | undefined;
  let local: Map<string, Buffer> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  let finished = false;
  try {
    for (;;) {
      const hdrOffset = input.offset;
      let block: Buffer;
      if (input.buf.length - input.pos >= BLOCK) {
        block = input.buf.subarray(input.pos, input.pos + BLOCK);
        input.pos += BLOCK;
      } else {
        const r = await input.read(BLOCK);
        if (r.got === 0) {
          // Clean EOF at a header boundary (lenient: no end-of-archive blocks).
          if (local || longName !== undefined || longLink !== undefined) throw truncated();
          finished = true;
          return;
        }
        if (r.got < BLOCK) {
          if (first) throw new InvalidArchiveError('not a tar archive');
          throw truncated();
        }
        block = r.data;
      }

      if (isZeroBlock(block)) {
        if (first) {
          // An archive must not start with zeros unless it is an empty archive; check the next block.
          const r = await input.read(BLOCK);
          if (r.got > 0 && (r.got < BLOCK || !isZeroBlock(r.data))) throw new InvalidArchiveError('not a tar archive');
        } else if (local || longName !== undefined || longLink !== undefined) {
          throw new InvalidArchiveError(`invalid tar header at offset ${hdrOffset}`);
        }
        // End of archive (a lone zero block is accepted too, like GNU tar); drain trailing padding.
        await input.drain();
        finished = true;
        return;
      }

      if (!checksumOk(block)) {
        throw new InvalidArchiveError(first ? 'not a tar archive' : `invalid tar header at offset ${hdrOffset}`);
      }
      first = false;

      const flag = block[156];
      let size = parseNumeric(block, 124, 12);
      if (!(size >= 0)) throw new InvalidArchiveError(`invalid size in tar header at offset ${hdrOffset}`);

      // Meta entries that describe the next one.
      switch (flag) {
        case 0x78: // 'x' PAX local
        case 0x67: {
          // 'g' PAX global
          if (size > MAX_PAX_SIZE) {
            throw new InvalidArchiveError(`PAX extended header too large (${size} bytes) at offset ${hdrOffset}`);
          }
          const data = await readMeta(input, size);
          const into = flag === 0x78 ? (local ??= new Map()) : (globals ??= new Map());
          parsePax(data, into, hdrOffset);
          continue;
        }
        case 0x4c: // 'L' GNU long name
        case 0x4b: {
          // 'K' GNU long link
          if (size > MAX_NAME_SIZE) {
            throw new InvalidArchiveError(`GNU long name too long (${size} bytes) at offset ${hdrOffset}`);
          }
          const s = parseLongName(await readMeta(input, size));
          if (flag === 0x4c) longName = s;
          else longLink = s;
          continue;
        }
        case 0x56: // 'V' volume label: not a file system object
          await input.skip(size + padLength(size));
          continue;
        case 0x53: // 'S' GNU sparse
          throw new UnsupportedError(
            `GNU sparse tar entries are not supported ('${longName ?? parseString(block, 0, 100)}' at offset ${hdrOffset})`,
          );
        case 0x4d: // 'M' multi-volume continuation
          throw new UnsupportedError(`multi-volume tar archives are not supported (offset ${hdrOffset})`);
        case 0x4e: // 'N' old GNU long names
          throw new UnsupportedError(`old GNU long-name tar entries are not supported (offset ${hdrOffset})`);
      }

      const { header, dataSize } = entryHeader(block, hdrOffset, { globals, local, longName, longLink });
      size = header.size;

      local = undefined;
      longName = undefined;
      longLink = undefined;

      const body = new Body(input, size);
      yield new Entry(header, body);
      // The consumer moved on: skip what it did not read, plus the padding.
      body.stale = true;
      const skip = body.remaining + (dataSize - size) + padLength(dataSize);
      if (skip > 0) await input.skip(skip);
    }
  } finally {
    if (!finished) await input.close();
  }
}

/** Read a (small) meta entry body plus its padding. */
async function readMeta(input: Input, size: number): Promise<Buffer> {
  const r = await input.read(size);
  if (r.got < size) throw truncated();
  // Copy (it is small) so nothing retains or depends on the input chunk.
  const data = Buffer.from(r.data);
  await input.skip(padLength(size));
  return data;
}
