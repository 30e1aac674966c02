/** Streaming tar writer: encodes entries (ustar, with PAX extended headers where needed) into a back-pressured Readable. */

import { Readable } from 'node:stream';
import { InvalidArgumentError } from '../errors.js';
import { BLOCK, headerBlocks, padLength, type HeaderOptions, type TarHeader } from './header.js';

export interface TarWriterOptions extends HeaderOptions {
  /** Buffering of the output stream before add() waits for the consumer (default 256 KiB). */
  highWaterMark?: number;
}

/** Pieces smaller than this are copied into a staging buffer instead of becoming chunks of their own. */
const COALESCE_BELOW = 64 * 1024;
/** Size of the staging buffer (and so of most chunks when entries are small). */
const STAGE_SIZE = 256 * 1024;

type Body = Buffer | Uint8Array | AsyncIterable<Buffer> | NodeJS.ReadableStream;

const noop = (): void => {};
/** Source of padding bytes; only ever copied from (padding is always staged), never pushed. */
const ZEROS = Buffer.alloc(BLOCK);

function toBuffer(c: unknown): Buffer {
  if (Buffer.isBuffer(c)) return c;
  if (typeof c === 'string') return Buffer.from(c, 'utf8');
  if (c instanceof Uint8Array) return Buffer.from(c.buffer, c.byteOffset, c.byteLength);
  throw new TypeError('tar entry body must yield Buffers');
}

function asIterable(body: AsyncIterable<unknown> | NodeJS.ReadableStream): AsyncIterable<unknown> {
  if (typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
    return body as AsyncIterable<unknown>;
  }
  return new Readable().wrap(body as NodeJS.ReadableStream);
}

/**
 * Writes a tar archive to `stream`. Calls to add() are serialised in call order; each resolves once
 * its bytes are queued, waiting for the consumer when the stream's buffer is full. Headers and small
 * bodies are batched into chunks of up to 256 KiB (flushed when full, before a large body chunk, and
 * by finish()); large body chunks pass through without copying.
 */
export class TarWriter {
  readonly stream: Readable;
  private tail: Promise<void> = Promise.resolve();
  private waiter: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private error: Error | null = null;
  private finished = false;
  private readonly opts: HeaderOptions;
  private stage: Buffer | null = null;
  private stageLen = 0;

  constructor(out: TarWriterOptions = {}) {
    this.opts = { fractionalMtime: out.fractionalMtime };
    this.stream = new Readable({
      highWaterMark: out.highWaterMark ?? 256 * 1024,
      read: () => {
        const w = this.waiter;
        this.waiter = null;
        w?.resolve();
      },
      destroy: (err, cb) => {
        this.fail(err ?? new Error('tar writer stream was destroyed'));
        cb(err);
      },
    });
  }

  /**
   * Append one entry. A 'file' body must supply exactly header.size bytes (a Buffer of the wrong
   * length is rejected before anything is written; a streamed body of the wrong length destroys
   * the writer, since the output is then corrupt). Other types take no body (an empty one is accepted).
   */
  add(header: TarHeader, body?: Body): Promise<void> {
    const p = this.tail.then(() => this.addNow(header, body));
    this.tail = p.then(noop, noop);
    return p;
  }

  /** Write the end-of-archive marker (two zero blocks) and end the stream. */
  finish(): Promise<void> {
    const p = this.tail.then(() => {
      if (this.error) throw this.error;
      if (this.finished) return;
      this.finished = true;
      const end = Buffer.alloc(2 * BLOCK);
      if (this.stage && this.stageLen + end.length <= STAGE_SIZE) {
        end.copy(this.stage, this.stageLen);
        this.stageLen += end.length;
        this.stream.push(this.stage.subarray(0, this.stageLen));
      } else {
        if (this.stageLen) this.stream.push(this.stage!.subarray(0, this.stageLen));
        this.stream.push(end);
      }
      this.stage = null;
      this.stageLen = 0;
      this.stream.push(null);
    });
    this.tail = p.then(noop, noop);
    return p;
  }

  /** Abort: destroy the output stream (with `err`, if given); pending and later add() calls reject. */
  destroy(err?: Error): void {
    this.fail(err ?? new Error('tar writer was destroyed'));
    this.stream.destroy(err);
  }

  private fail(err: Error): void {
    this.error ??= err;
    const w = this.waiter;
    this.waiter = null;
    w?.reject(this.error);
  }

  /**
   * Queue bytes for output. Small pieces (headers, small bodies, padding) are copied into a staging
   * buffer so the stream carries few, large chunks; large pieces are pushed as they are (no copy).
   */
  private async write(buf: Buffer): Promise<void> {
    if (this.error) throw this.error;
    const n = buf.length;
    if (n === 0) return;
    if (n < COALESCE_BELOW) {
      if (this.stageLen + n > STAGE_SIZE) await this.flush();
      this.stage ??= Buffer.allocUnsafe(STAGE_SIZE);
      buf.copy(this.stage, this.stageLen);
      this.stageLen += n;
      return;
    }
    await this.flush();
    await this.push(buf);
  }

  /** Push the staged bytes (a fresh staging buffer is allocated for later writes). */
  private async flush(): Promise<void> {
    if (this.stageLen === 0 || !this.stage) return;
    const out = this.stage.subarray(0, this.stageLen);
    this.stage = null;
    this.stageLen = 0;
    await this.push(out);
  }

  private async push(buf: Buffer): Promise<void> {
    if (this.error) throw this.error;
    if (!this.stream.push(buf)) {
      await new Promise<void>((resolve, reject) => {
        this.waiter = { resolve, reject };
      });
    }
  }

  private async addNow(header: TarHeader, body: Body | undefined): Promise<void> {
    if (this.error) throw this.error;
    if (this.finished) throw new Error('tar writer: add() called after finish()');
    const hdr = headerBlocks(header, this.opts);
    const name = header.name;
    const size = header.type === 'file' ? header.size : 0;

    if (body === undefined || body === null) {
      if (size !== 0) throw new InvalidArgumentError(`tar entry '${name}': no body given for ${size} bytes`);
      return this.write(hdr);
    }

    if (body instanceof Uint8Array) {
      if (body.length !== size) {
        throw new InvalidArgumentError(`tar entry '${name}': body is ${body.length} bytes but the header says ${size}`);
      }
      await this.write(hdr);
      await this.write(toBuffer(body));
      const pad = padLength(size);
      if (pad) await this.write(ZEROS.subarray(0, pad));
      return;
    }

    if (header.type !== 'file') {
      // Accept an empty stream (e.g. the body of a non-file entry from readTar), nothing else.
      for await (const c of asIterable(body)) {
        if (toBuffer(c).length > 0) {
          throw new InvalidArgumentError(`tar entry '${name}': only regular files have a body`);
        }
      }
      return this.write(hdr);
    }

    // Streamed body: the header goes out first, so a length mismatch corrupts the output.
    await this.write(hdr);
    let n = 0;
    try {
      for await (const c of asIterable(body)) {
        const b = toBuffer(c);
        if (b.length === 0) continue;
        if (n + b.length > size) {
          throw new InvalidArgumentError(`tar entry '${name}': body is longer than the header size ${size}`);
        }
        n += b.length;
        await this.write(b);
      }
      if (n !== size) {
        throw new InvalidArgumentError(`tar entry '${name}': body is ${n} bytes but the header says ${size}`);
      }
    } catch (e) {
      if (!this.error) this.destroy(e as Error);
      throw e;
    }
    const pad = padLength(size);
    if (pad) await this.write(ZEROS.subarray(0, pad));
  }
}
