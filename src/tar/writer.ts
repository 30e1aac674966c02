/**
 * Tar writers: TarWriter encodes entries (ustar, with PAX extended headers where needed) into a back-pressured
 * Readable; TarFdWriter writes the same bytes straight to a file descriptor with synchronous writes.
 */

import fs from 'node:fs';
import { Readable } from 'node:stream';
import { InvalidArgumentError, PlyError } from '../errors.js';
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
    // The producer reports its own failure; a consumer that already stopped reading must not turn it into an
    // unhandled 'error' event (a crash with a stack trace instead of one line).
    if (this.stream.listenerCount('error') === 0) this.stream.once('error', () => undefined);
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

export interface TarFdWriterOptions extends HeaderOptions {
  /** Size of the output buffer, and so of each write(2) (default 1 MiB). */
  bufferSize?: number;
}

const RESOLVED: Promise<void> = Promise.resolve();

function isStreamed(body: Body | undefined): body is AsyncIterable<Buffer> | NodeJS.ReadableStream {
  return body !== undefined && body !== null && !(body instanceof Uint8Array);
}

/**
 * Writes a tar archive to the file descriptor `fd` (a regular file, or anything else on which write(2) blocks
 * rather than failing with EAGAIN) with synchronous writes: for a local file the event loop's round trips cost
 * more than overlapping reads and writes saves. The archive is byte for byte what TarWriter would produce
 * from the same calls.
 *
 * add() has TarWriter's contract (calls are serialised in call order; a Buffer body of the wrong length is
 * rejected before anything is written; a streamed body of the wrong length destroys the writer). Without a
 * streamed body in progress an entry is written before add() returns. addFile() reads a regular file's body
 * from a descriptor straight into the output buffer, so no buffer per file is allocated or copied. Bytes
 * reach `fd` in writes of `bufferSize` (plus large body chunks of streamed bodies, written as they are) and
 * by finish(). The caller owns `fd`: it is neither closed nor synced.
 */
export class TarFdWriter {
  private readonly opts: HeaderOptions;
  private readonly buf: Buffer;
  private len = 0;
  /** Bytes handed to write(2) so far (tells whether an entry's bytes are all still in `buf`). */
  private written = 0;
  /** The last add() that could not complete synchronously (a streamed body), until it settles. */
  private tail: Promise<void> | null = null;
  private error: Error | null = null;
  private finished = false;

  constructor(
    private readonly fd: number,
    opts: TarFdWriterOptions = {},
  ) {
    this.opts = { fractionalMtime: opts.fractionalMtime };
    const size = opts.bufferSize ?? 1 << 20;
    if (!Number.isSafeInteger(size) || size < BLOCK) throw new InvalidArgumentError(`tar writer: invalid buffer size ${size}`);
    this.buf = Buffer.allocUnsafe(size);
  }

  /** Append one entry (TarWriter.add's contract). */
  add(header: TarHeader, body?: Body): Promise<void> {
    if (this.tail === null && !isStreamed(body)) return this.now(() => this.addBuffered(header, body));
    return this.after(() => this.addStreamed(header, body));
  }

  /**
   * Append a regular file ('file' header) whose header.size bytes are read from the descriptor `src`, from
   * offset 0. If `src` ends early, the promise rejects with a PlyError naming `what` and, when none of the
   * entry has been written to `fd` yet, the entry is dropped and the writer stays usable; otherwise (the body
   * was larger than the output buffer) the writer is destroyed, as the output is corrupt.
   */
  addFile(header: TarHeader, src: number, what: string = header.name): Promise<void> {
    if (this.tail === null) return this.now(() => this.addFileNow(header, src, what));
    return this.after(() => this.addFileNow(header, src, what));
  }

  /** Write the end-of-archive marker (two zero blocks) and everything still buffered. */
  finish(): Promise<void> {
    const done = (): void => {
      this.check();
      if (this.finished) return;
      this.finished = true;
      this.stage(ZEROS);
      this.stage(ZEROS);
      this.flush();
    };
    return this.tail === null ? this.now(done) : this.after(done);
  }

  /** Abort: pending and later calls reject (with `err`, if given). Nothing more is written to `fd`. */
  destroy(err?: Error): void {
    this.error ??= err ?? new Error('tar writer was destroyed');
  }

  private now(fn: () => void): Promise<void> {
    try {
      fn();
      return RESOLVED;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private after(fn: () => void | Promise<void>): Promise<void> {
    const p = (this.tail ?? RESOLVED).then(fn);
    const t: Promise<void> = p.then(noop, noop).then(() => {
      if (this.tail === t) this.tail = null;
    });
    this.tail = t;
    return p;
  }

  private check(): void {
    if (this.error) throw this.error;
  }

  private checkAdd(): void {
    this.check();
    if (this.finished) throw new Error('tar writer: add() called after finish()');
  }

  /** Writes all of `b` to fd; a failure destroys the writer (the output is then incomplete). */
  private writeOut(b: Buffer): void {
    let off = 0;
    try {
      while (off < b.length) off += fs.writeSync(this.fd, b, off, b.length - off);
    } catch (e) {
      this.destroy(e as Error);
      throw e;
    } finally {
      this.written += off;
    }
  }

  private flush(): void {
    if (this.len === 0) return;
    const n = this.len;
    this.len = 0;
    this.writeOut(this.buf.subarray(0, n));
  }

  /** Queue bytes: copied into the buffer (written when full); large pieces are written as they are. */
  private stage(b: Buffer): void {
    let n = b.length;
    if (n >= COALESCE_BELOW && n >= this.buf.length - this.len) {
      this.flush();
      this.writeOut(b);
      return;
    }
    let off = 0;
    while (n > 0) {
      if (this.len === this.buf.length) this.flush();
      const k = Math.min(n, this.buf.length - this.len);
      b.copy(this.buf, this.len, off, off + k);
      this.len += k;
      off += k;
      n -= k;
    }
  }

  private pad(size: number): void {
    const pad = padLength(size);
    if (pad) this.stage(ZEROS.subarray(0, pad));
  }

  private addBuffered(header: TarHeader, body: Uint8Array | undefined): void {
    this.checkAdd();
    const hdr = headerBlocks(header, this.opts);
    const size = header.type === 'file' ? header.size : 0;
    const len = body === undefined || body === null ? 0 : body.length;
    if (body === undefined || body === null) {
      if (size !== 0) throw new InvalidArgumentError(`tar entry '${header.name}': no body given for ${size} bytes`);
    } else if (len !== size) {
      throw new InvalidArgumentError(`tar entry '${header.name}': body is ${len} bytes but the header says ${size}`);
    }
    this.stage(hdr);
    if (len > 0) {
      this.stage(toBuffer(body));
      this.pad(size);
    }
  }

  private async addStreamed(header: TarHeader, body: Body | undefined): Promise<void> {
    if (!isStreamed(body)) return this.addBuffered(header, body);
    this.checkAdd();
    const name = header.name;
    const hdr = headerBlocks(header, this.opts);
    if (header.type !== 'file') {
      // Accept an empty stream (e.g. the body of a non-file entry from readTar), nothing else.
      for await (const c of asIterable(body)) {
        if (toBuffer(c).length > 0) throw new InvalidArgumentError(`tar entry '${name}': only regular files have a body`);
      }
      this.checkAdd();
      this.stage(hdr);
      return;
    }
    const size = header.size;
    this.stage(hdr);
    let n = 0;
    try {
      for await (const c of asIterable(body)) {
        this.check();
        const b = toBuffer(c);
        if (b.length === 0) continue;
        if (n + b.length > size) throw new InvalidArgumentError(`tar entry '${name}': body is longer than the header size ${size}`);
        n += b.length;
        this.stage(b);
      }
      if (n !== size) throw new InvalidArgumentError(`tar entry '${name}': body is ${n} bytes but the header says ${size}`);
    } catch (e) {
      this.destroy(e as Error);
      throw e;
    }
    this.pad(size);
  }

  private addFileNow(header: TarHeader, src: number, what: string): void {
    this.checkAdd();
    if (header.type !== 'file') throw new InvalidArgumentError(`tar entry '${header.name}': addFile() takes a regular file`);
    const hdr = headerBlocks(header, this.opts);
    const size = header.size;
    const start = this.len;
    const writtenBefore = this.written;
    this.stage(hdr);
    let pos = 0;
    while (pos < size) {
      if (this.len === this.buf.length) this.flush();
      let n: number;
      try {
        n = fs.readSync(src, this.buf, this.len, Math.min(size - pos, this.buf.length - this.len), pos);
      } catch (e) {
        this.abandon(start, writtenBefore, e as Error);
        throw e;
      }
      if (n === 0) {
        const err = new PlyError(`${what}: file shrank while being read (${pos} of ${size} bytes)`);
        this.abandon(start, writtenBefore, err);
        throw err;
      }
      this.len += n;
      pos += n;
    }
    this.pad(size);
  }

  /** Drops a failed entry if none of it reached fd yet; otherwise the output is corrupt: destroy. */
  private abandon(start: number, writtenBefore: number, err: Error): void {
    if (this.written === writtenBefore) this.len = start;
    else this.destroy(err);
  }
}
