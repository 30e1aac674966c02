// The content-addressed blob store: blobs/<alg>/<hex>, written only through verified, resumable ingests.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Digester, isDigest, splitDigest } from '../digest/digest.js';
import { DigestMismatchError, NotFoundError, PlyError } from '../errors.js';
import type { Digest } from '../oci/types.js';

/** Read streams use 1 MiB chunks: 2-3x faster than the 64 KiB default for hashing and decompression. */
export const READ_CHUNK = 1 << 20;

export class IngestLockedError extends PlyError {
  constructor(readonly key: string) {
    super(`ingest ${key} is in use by another process`);
  }
}

/** Something that keeps a blob from GC between its write and the record that references it. */
export interface BlobHolder {
  add(digest: Digest): void;
}

export interface CommitOptions {
  expected?: Digest;
  size?: number;
  lease?: BlobHolder;
}

export interface BlobInfo {
  digest: Digest;
  size: number;
}

export class ContentStore {
  readonly blobsDir: string;
  readonly ingestDir: string;

  constructor(readonly root: string) {
    this.blobsDir = path.join(root, 'blobs');
    this.ingestDir = path.join(root, 'ingest');
    fs.mkdirSync(path.join(this.blobsDir, 'sha256'), { recursive: true });
    fs.mkdirSync(path.join(this.blobsDir, 'sha512'), { recursive: true });
    fs.mkdirSync(this.ingestDir, { recursive: true });
  }

  path(digest: Digest): string {
    if (!isDigest(digest)) throw new NotFoundError(`invalid digest ${digest}`);
    const { algorithm, hex } = splitDigest(digest);
    return path.join(this.blobsDir, algorithm, hex);
  }

  has(digest: Digest): boolean {
    return fs.existsSync(this.path(digest));
  }

  info(digest: Digest): BlobInfo {
    try {
      return { digest, size: fs.statSync(this.path(digest)).size };
    } catch {
      throw new NotFoundError(`blob ${digest} not found`);
    }
  }

  /** Opens a blob for reading; `start`/`end` (inclusive) select a byte range. */
  read(digest: Digest, range?: { start?: number; end?: number }): Readable {
    const p = this.path(digest);
    if (!fs.existsSync(p)) throw new NotFoundError(`blob ${digest} not found`);
    return fs.createReadStream(p, { highWaterMark: READ_CHUNK, start: range?.start, end: range?.end });
  }

  readBytes(digest: Digest): Buffer {
    try {
      return fs.readFileSync(this.path(digest));
    } catch {
      throw new NotFoundError(`blob ${digest} not found`);
    }
  }

  /** Stores bytes whose digest is computed here (or checked against `expected`). */
  async putBytes(data: Buffer, opts: { expected?: Digest; lease?: BlobHolder } = {}): Promise<BlobInfo> {
    const { expected, lease } = opts;
    const d = new Digester(expected ? splitDigest(expected).algorithm : 'sha256');
    d.update(data);
    const digest = d.digest();
    if (expected && expected !== digest) throw new DigestMismatchError(expected, digest);
    lease?.add(digest);
    if (this.has(digest)) return { digest, size: data.length };
    const w = await this.ingest(`bytes-${digest.replace(':', '-')}-${process.pid}`, { restart: true });
    try {
      await w.write(data);
      return await w.commit({ expected: digest, lease });
    } catch (e) {
      await w.abort();
      throw e;
    }
  }

  /** Streams `source` into the store, verifying `expected` when given. */
  async putStream(
    source: AsyncIterable<Buffer> | Readable,
    key: string,
    opts: { expected?: Digest; size?: number; lease?: BlobHolder } = {},
  ): Promise<BlobInfo> {
    const { expected, lease } = opts;
    if (expected) lease?.add(expected);
    if (expected && this.has(expected)) {
      // Drain so the producer is not left hanging; the bytes are already here.
      for await (const _ of source) void _;
      return this.info(expected);
    }
    const w = await this.ingest(key, { expected, restart: true });
    try {
      for await (const chunk of source) await w.write(chunk as Buffer);
      return await w.commit(opts);
    } catch (e) {
      await w.abort();
      throw e;
    }
  }

  /**
   * Opens (or resumes) the ingest `key`. A resumed ingest re-hashes what is already there and reports its
   * `offset`, so a caller can continue (e.g. with an HTTP Range request). Only one process holds an ingest.
   */
  async ingest(key: string, opts: { expected?: Digest; restart?: boolean } = {}): Promise<IngestWriter> {
    if (!/^[A-Za-z0-9._:-]+$/.test(key) || key.startsWith('.')) throw new PlyError(`invalid ingest key ${key}`);
    const dir = path.join(this.ingestDir, key.replace(/:/g, '-'));
    await fsp.mkdir(dir, { recursive: true });
    const lock = path.join(dir, 'lock');
    await acquireLock(lock, key);
    try {
      const dataPath = path.join(dir, 'data');
      const digester = new Digester(opts.expected ? splitDigest(opts.expected).algorithm : 'sha256');
      if (opts.restart) {
        await fsp.rm(dataPath, { force: true });
      } else if (fs.existsSync(dataPath)) {
        for await (const chunk of fs.createReadStream(dataPath, { highWaterMark: READ_CHUNK })) digester.update(chunk as Buffer);
      }
      await fsp.writeFile(path.join(dir, 'ref'), JSON.stringify({ expected: opts.expected, started: Date.now() }));
      const fh = await fsp.open(dataPath, 'a');
      return new IngestWriter(this, dir, fh, digester, opts.expected);
    } catch (e) {
      await fsp.rm(lock, { force: true });
      throw e;
    }
  }

  /** Lists every stored blob. */
  *list(): Generator<Digest> {
    for (const alg of ['sha256', 'sha512']) {
      let names: string[] = [];
      try {
        names = fs.readdirSync(path.join(this.blobsDir, alg));
      } catch {
        continue;
      }
      for (const n of names) {
        const d = `${alg}:${n}`;
        if (isDigest(d)) yield d;
      }
    }
  }

  delete(digest: Digest): boolean {
    try {
      fs.unlinkSync(this.path(digest));
      return true;
    } catch {
      return false;
    }
  }

  /** Size of the data a resumable ingest holds (0 when none, or while another live process holds it). */
  ingestOffset(key: string): number {
    const dir = path.join(this.ingestDir, key.replace(/:/g, '-'));
    const holder = lockHolder(path.join(dir, 'lock'));
    if (holder !== undefined && holder !== process.pid && pidAlive(holder)) return 0;
    try {
      return fs.statSync(path.join(dir, 'data')).size;
    } catch {
      return 0;
    }
  }

  /** Whether a live process (other than this one) holds the ingest `key`. */
  ingestLocked(key: string): boolean {
    const holder = lockHolder(path.join(this.ingestDir, key.replace(/:/g, '-'), 'lock'));
    return holder !== undefined && holder !== process.pid && pidAlive(holder);
  }

  /** Ingests not held by a live process and older than `maxAgeMs`. */
  staleIngests(maxAgeMs: number): string[] {
    const out: string[] = [];
    let names: string[] = [];
    try {
      names = fs.readdirSync(this.ingestDir);
    } catch {
      return out;
    }
    for (const n of names) {
      const dir = path.join(this.ingestDir, n);
      const holder = lockHolder(path.join(dir, 'lock'));
      if (holder !== undefined && pidAlive(holder)) continue;
      let mtime = 0;
      try {
        mtime = fs.statSync(dir).mtimeMs;
      } catch {
        continue;
      }
      if (Date.now() - mtime >= maxAgeMs) out.push(dir);
    }
    return out;
  }
}

export class IngestWriter {
  private closed = false;
  constructor(
    private readonly store: ContentStore,
    private readonly dir: string,
    private readonly fh: fsp.FileHandle,
    private readonly digester: Digester,
    private readonly expected?: Digest,
  ) {}

  /** The bytes this ingest already held when it was opened (for a resumed ingest's hashes to be replayed). */
  async *existing(): AsyncGenerator<Buffer> {
    const prefix = this.digester.size;
    if (prefix === 0) return;
    for await (const c of fs.createReadStream(path.join(this.dir, 'data'), { highWaterMark: READ_CHUNK, end: prefix - 1 })) yield c as Buffer;
  }

  /**
   * Hashes the rest of a blob without storing it and returns its digest: when the content turned out bad,
   * this tells "corrupted in transit" (digest mismatch) from "the blob really is like that".
   */
  async digestOfRest(rest: AsyncIterable<Buffer>): Promise<Digest> {
    for await (const c of rest) this.digester.update(c);
    return this.digester.digest();
  }

  /** Bytes already in this ingest (non-zero when resuming). */
  get offset(): number {
    return this.digester.size;
  }

  async write(chunk: Buffer): Promise<void> {
    this.digester.update(chunk);
    let off = 0;
    while (off < chunk.length) {
      const { bytesWritten } = await this.fh.write(chunk, off, chunk.length - off);
      off += bytesWritten;
    }
  }

  /** Verifies, fsyncs and moves the data to its digest's path; the ingest is gone afterwards. */
  async commit(opts: CommitOptions = {}): Promise<BlobInfo> {
    const expected = opts.expected ?? this.expected;
    const expectedSize = opts.size;
    const size = this.digester.size;
    const digest = this.digester.digest();
    try {
      if (expected && expected !== digest) throw new DigestMismatchError(expected, digest);
      if (expectedSize !== undefined && expectedSize !== size) {
        throw new DigestMismatchError(`${expected ?? digest} of ${expectedSize} bytes`, `${size} bytes`, 'size');
      }
      await this.fh.sync();
      await this.fh.close();
      this.closed = true;
      opts.lease?.add(digest);
      const target = this.store.path(digest);
      if (!fs.existsSync(target)) await fsp.rename(path.join(this.dir, 'data'), target);
    } finally {
      await this.abort();
    }
    return { digest, size };
  }

  /** Drops the ingest and its data. */
  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.fh.close().catch(() => undefined);
    }
    await fsp.rm(this.dir, { recursive: true, force: true });
  }

  /** Keeps the partial data for a later resume, releasing the lock. */
  async suspend(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.fh.sync().catch(() => undefined);
      await this.fh.close().catch(() => undefined);
    }
    await fsp.rm(path.join(this.dir, 'lock'), { force: true });
  }
}

function lockHolder(lock: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(lock, 'utf8'));
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function acquireLock(lock: string, key: string): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fsp.writeFile(lock, String(process.pid), { flag: 'wx' });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = lockHolder(lock);
      // A lock written by a process that died (kill -9) is taken over; an empty lock may be mid-write.
      if (holder !== undefined && holder !== process.pid && pidAlive(holder)) throw new IngestLockedError(key);
      if (holder === undefined && attempt === 0) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      await fsp.rm(lock, { force: true });
    }
  }
  throw new IngestLockedError(key);
}
