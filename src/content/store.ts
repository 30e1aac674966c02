// The content-addressed blob store: blobs/<alg>/<hex>, written only through verified, resumable ingests.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Digester, isDigest, splitDigest } from '../digest/digest.js';
import { DigestMismatchError, NotFoundError, PlyError } from '../errors.js';
import { flock, LOCK_EX, LOCK_NB } from '../native/index.js';
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
   * `offset`, so a caller can continue (e.g. with an HTTP Range request). One writer holds an ingest at a time:
   * `wait` (the default) waits for another holder to finish, otherwise IngestLockedError. `hashed` is the hash
   * state of the data as this process last left it (saves re-reading it); it is used only if the sizes agree.
   */
  async ingest(key: string, opts: { expected?: Digest; restart?: boolean; wait?: boolean; hashed?: Digester } = {}): Promise<IngestWriter> {
    if (!/^[A-Za-z0-9._:-]+$/.test(key) || key.startsWith('.')) throw new PlyError(`invalid ingest key ${key}`);
    const dir = this.ingestPath(key);
    const lock = await lockIngest(dir, key, opts.wait ?? true);
    let fh: fsp.FileHandle | undefined;
    try {
      const dataPath = path.join(dir, 'data');
      const algorithm = opts.expected ? splitDigest(opts.expected).algorithm : 'sha256';
      if (opts.restart) await fsp.rm(dataPath, { force: true });
      fh = await fsp.open(dataPath, 'a', 0o600);
      const size = (await fh.stat()).size;
      let digester = opts.hashed;
      if (!digester || digester.algorithm !== algorithm || digester.size !== size) {
        digester = new Digester(algorithm);
        if (size > 0) for await (const chunk of fs.createReadStream(dataPath, { highWaterMark: READ_CHUNK })) digester.update(chunk as Buffer);
      }
      await fsp.writeFile(path.join(dir, 'ref'), JSON.stringify({ expected: opts.expected, started: Date.now() }));
      return new IngestWriter(this, dir, lock, fh, digester, opts.expected);
    } catch (e) {
      await fh?.close().catch(() => undefined);
      fs.closeSync(lock);
      throw e;
    }
  }

  /** The directory of the ingest `key`. */
  ingestPath(key: string): string {
    return path.join(this.ingestDir, key.replace(/:/g, '-'));
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

  /** Bytes of every stored blob (what a prune frees is the difference before and after). */
  totalSize(): number {
    let n = 0;
    for (const d of this.list()) {
      try {
        n += fs.statSync(this.path(d)).size;
      } catch {
        // removed concurrently
      }
    }
    return n;
  }

  delete(digest: Digest): boolean {
    try {
      fs.unlinkSync(this.path(digest));
      return true;
    } catch {
      return false;
    }
  }

  /** Size of the data a resumable ingest holds (0 when none, or while another writer holds it). */
  ingestOffset(key: string): number {
    const dir = this.ingestPath(key);
    if (ingestHeld(dir)) return 0;
    try {
      return fs.statSync(path.join(dir, 'data')).size;
    } catch {
      return 0;
    }
  }

  /** Whether a writer (another process, or another writer of this one) holds the ingest `key`. */
  ingestLocked(key: string): boolean {
    return ingestHeld(this.ingestPath(key));
  }

  /** Removes the ingest `key` unless a writer holds it (false then). */
  removeIngest(key: string): boolean {
    const dir = this.ingestPath(key);
    if (!fs.existsSync(dir)) return true;
    const lock = tryLockIngest(dir);
    if (lock === undefined) return false;
    try {
      removeIngestDir(dir);
    } finally {
      fs.closeSync(lock);
    }
    return true;
  }

  /**
   * Removes the ingests no writer holds that were last written `maxAgeMs` ago or earlier (`keep` spares some by
   * key), each under its lock so no writer can take it meanwhile; with `dryRun` only lists them.
   */
  removeStaleIngests(maxAgeMs: number, opts: { dryRun?: boolean; keep?: (key: string) => boolean } = {}): { key: string; size: number }[] {
    const out: { key: string; size: number }[] = [];
    let names: string[] = [];
    try {
      names = fs.readdirSync(this.ingestDir);
    } catch {
      return out;
    }
    for (const key of names) {
      if (opts.keep?.(key)) continue;
      const dir = path.join(this.ingestDir, key);
      const lock = tryLockIngest(dir);
      if (lock === undefined) continue;
      try {
        let newest = 0;
        let size = 0;
        for (const f of [dir, path.join(dir, 'data'), path.join(dir, 'ref')]) {
          const st = fs.statSync(f, { throwIfNoEntry: false });
          if (st) newest = Math.max(newest, st.mtimeMs);
          if (st && f.endsWith('data')) size = st.size;
        }
        if (Date.now() - newest < maxAgeMs) continue;
        out.push({ key, size });
        if (!opts.dryRun) removeIngestDir(dir);
      } finally {
        fs.closeSync(lock);
      }
    }
    return out;
  }
}

export class IngestWriter {
  private closed = false;
  constructor(
    private readonly store: ContentStore,
    private readonly dir: string,
    /** The flock'ed lock file: held until commit, abort or suspend. */
    private readonly lock: number,
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
    this.release(true);
  }

  /** Keeps the partial data for a later resume, releasing the lock (`sync: false`: a commit will fsync it). */
  async suspend(opts: { sync?: boolean } = {}): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      if (opts.sync !== false) await this.fh.sync().catch(() => undefined);
      await this.fh.close().catch(() => undefined);
    }
    this.release(false);
  }

  /** The hash state of the data written so far (for a later `ingest(key, { hashed })` of this process). */
  get hashed(): Digester {
    return this.digester;
  }

  private released = false;
  private release(remove: boolean): void {
    if (this.released) return;
    this.released = true;
    try {
      // Removed while the lock is held, so the next writer finds either the whole ingest or none.
      if (remove) removeIngestDir(this.dir);
    } finally {
      fs.closeSync(this.lock);
    }
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A killed process whose parent has not reaped it yet (a zombie) is gone for every purpose here.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

// An ingest's lock is an flock(2) on ingest/<key>/lock: the kernel releases it when its holder exits, however
// it exits, so there is no stale lock to guess about. The lock file is unlinked only by its holder, last, when
// the ingest is removed; a waiter that then gets the lock of the unlinked file starts again.

function openLockFile(dir: string): number | undefined {
  try {
    return fs.openSync(path.join(dir, 'lock'), fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // the directory was just removed
    throw e;
  }
}

/** Whether the locked file `fd` is still the ingest's lock (not unlinked by the holder before us). */
function stillLinked(dir: string, fd: number): boolean {
  const st = fs.fstatSync(fd);
  const now = fs.lstatSync(path.join(dir, 'lock'), { throwIfNoEntry: false });
  return st.nlink > 0 && now !== undefined && now.ino === st.ino && now.dev === st.dev;
}

async function lockIngest(dir: string, key: string, wait: boolean): Promise<number> {
  for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
    try {
      await fsp.mkdir(dir, { mode: 0o700 });
    } catch (e) {
      // EEXIST: another writer's (or a resumable) ingest; ENOENT: ingest/ itself is missing.
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') await fsp.mkdir(path.dirname(dir), { recursive: true });
      else if (code !== 'EEXIST') throw e;
    }
    const fd = openLockFile(dir);
    if (fd !== undefined) {
      if (flock(fd, LOCK_EX | LOCK_NB)) {
        if (stillLinked(dir, fd)) return fd;
        fs.closeSync(fd);
        continue;
      }
      fs.closeSync(fd);
      if (!wait) throw new IngestLockedError(key);
    }
    await new Promise((r) => setTimeout(r, delay));
  }
}

/** The ingest's lock if no one holds it, else undefined (never creates the directory). */
function tryLockIngest(dir: string): number | undefined {
  if (!fs.existsSync(dir)) return undefined;
  const fd = openLockFile(dir);
  if (fd === undefined) return undefined;
  if (flock(fd, LOCK_EX | LOCK_NB) && stillLinked(dir, fd)) return fd;
  fs.closeSync(fd);
  return undefined;
}

function ingestHeld(dir: string): boolean {
  const fd = tryLockIngest(dir);
  if (fd === undefined) return fs.existsSync(path.join(dir, 'lock'));
  fs.closeSync(fd);
  return false;
}

/** Removes an ingest directory whose lock the caller holds: its files first, the lock last, then the directory. */
function removeIngestDir(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const name of fs.readdirSync(dir)) if (name !== 'lock') fs.rmSync(path.join(dir, name), { recursive: true, force: true });
  fs.rmSync(path.join(dir, 'lock'), { force: true });
  try {
    fs.rmdirSync(dir);
  } catch (e) {
    // A new writer already made its lock here (ENOTEMPTY), or the directory is gone: theirs now.
    if (!['ENOTEMPTY', 'ENOENT', 'EEXIST'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
  }
}
