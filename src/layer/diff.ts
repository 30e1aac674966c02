/**
 * Directory trees to tar: an overlayfs upper dir to a layer tar (`commit`), and any tree to a tar (`export`).
 *
 * Entries come depth first, each directory's children sorted by name (byte order), named relative to the tree
 * without './' ('etc/', 'etc/passwd'), like docker's layers. Files that share an inode become a file and then
 * hardlink entries naming the first path. uname/gname are left empty (numeric owners only, as docker does).
 * Sockets are skipped. File contents are read from a descriptor opened with O_NOFOLLOW whose path is checked
 * (through /proc/self/fd) to be the expected one, so a symlink swapped in by a running container cannot make
 * ply read a file outside the tree; the tree should still be quiescent (paused container) for a consistent tar.
 */

import fs from 'node:fs';
import path from 'node:path';
import { PlyError } from '../errors.js';
import { hasErrno, lgetxattr, llistxattr } from '../native/index.js';
import type { TarHeader, TarWriter } from '../tar/index.js';

const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_OPAQUE = '.wh..wh..opq';
/** Files up to this size are read in one synchronous read; larger ones are streamed in chunks of this size. */
const CHUNK = 1 << 20;
// O_NONBLOCK: a FIFO swapped in for a file between readdir and open must not block the walk.
const O_READ_FILE = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFDIR = 0o040000;
const S_IFBLK = 0o060000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFSOCK = 0o140000;

interface WalkOptions {
  /** Translate overlay whiteouts and opaque directories, drop trusted.overlay.* xattrs. */
  overlay: boolean;
  /** Clamp mtimes above this (SOURCE_DATE_EPOCH) down to it. */
  clamp?: number;
  skip?: (relPath: string) => boolean;
}

/**
 * Walks `upperDir` (an overlayfs upper layer) in sorted order and writes a layer tar: overlay whiteouts (char dev
 * 0/0) become `.wh.NAME` empty files, directories with trusted.overlay.opaque=y get a `.wh..wh..opq` entry after
 * their own entry, hardlinks within the tree stay hardlinks, xattrs are kept (except trusted.overlay.*), owners,
 * modes and mtimes (whole seconds; clamped to SOURCE_DATE_EPOCH when it is set) too; devices and fifos are kept.
 * Does not finish the writer.
 */
export async function writeUpperDiff(upperDir: string, writer: TarWriter): Promise<void> {
  await new TreeWalker(upperDir, writer, { overlay: true, clamp: sourceDateEpoch() }).run();
}

/**
 * Writes a whole directory tree (e.g. a mounted container rootfs) as a tar, no whiteout translation. `skip`
 * gets each path relative to `dir` (no trailing '/'); a skipped directory is skipped with all it holds.
 * Does not finish the writer.
 */
export async function writeTree(dir: string, writer: TarWriter, opts: { skip?: (relPath: string) => boolean } = {}): Promise<void> {
  await new TreeWalker(dir, writer, { overlay: false, skip: opts.skip }).run();
}

function sourceDateEpoch(): number | undefined {
  const v = process.env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return undefined;
  if (!/^[0-9]{1,15}$/.test(v)) throw new PlyError(`invalid SOURCE_DATE_EPOCH '${v}': expected whole seconds since the epoch`);
  return Number(v);
}

/** Byte-order (= code point order) comparison; UTF-16 order differs only when surrogates are involved. */
function sortNames(names: string[]): string[] {
  let simple = true;
  for (const n of names) {
    for (let i = 0; i < n.length; i++) {
      if (n.charCodeAt(i) >= 0xd800) {
        simple = false;
        break;
      }
    }
    if (!simple) break;
  }
  if (simple) return names.sort();
  return names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

function devNumbers(rdev: bigint): { major: number; minor: number } {
  // glibc's gnu_dev_major/minor.
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn & 0xffffffffn));
  return { major, minor };
}

function readSyncFull(fd: number, size: number, abs: string): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let got = 0;
  while (got < size) {
    const n = fs.readSync(fd, buf, got, size - got, got);
    if (n === 0) throw new PlyError(`${abs}: file shrank while being read`);
    got += n;
  }
  return buf;
}

function readAsync(fd: number, buf: Buffer, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, 0, buf.length, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

async function* readChunks(fd: number, size: number, abs: string): AsyncGenerator<Buffer> {
  let pos = 0;
  while (pos < size) {
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, size - pos));
    const n = await readAsync(fd, buf, pos);
    if (n === 0) throw new PlyError(`${abs}: file shrank while being read`);
    pos += n;
    yield n === buf.length ? buf : buf.subarray(0, n);
  }
}

class TreeWalker {
  private readonly root: string;
  /** "dev:ino" → first tar name of a multiply-linked non-directory. */
  private readonly links = new Map<string, string>();

  constructor(
    dir: string,
    private readonly writer: TarWriter,
    private readonly opts: WalkOptions,
  ) {
    // Real path, so that /proc/self/fd/N of a file opened below it reads back exactly the path we opened.
    this.root = fs.realpathSync(dir);
  }

  async run(): Promise<void> {
    const st = fs.lstatSync(this.root);
    if (!st.isDirectory()) throw new PlyError(`${this.root}: not a directory`);
    await this.walkDir('');
  }

  private mtime(st: fs.BigIntStats): number {
    const t = Number(st.mtimeMs / 1000n);
    return this.opts.clamp !== undefined && t > this.opts.clamp ? this.opts.clamp : t;
  }

  private async walkDir(dirRel: string): Promise<void> {
    const dirAbs = dirRel === '' ? this.root : `${this.root}/${dirRel}`;
    let dirents: fs.Dirent[];
    try {
      dirents = fs.readdirSync(dirAbs, { withFileTypes: true });
    } catch (e) {
      if (dirRel !== '' && hasErrno(e, 'ENOENT')) return; // removed since it was listed
      throw e;
    }
    const types = new Map(dirents.map((d) => [d.name, d]));
    for (const name of sortNames([...types.keys()])) {
      const rel = dirRel === '' ? name : `${dirRel}/${name}`;
      if (this.opts.skip?.(rel)) continue;
      const abs = `${dirAbs}/${name}`;
      // Regular files (most entries) go straight to open + fstat: one syscall fewer than lstat first.
      if (types.get(name)!.isFile() && (await this.file(rel, abs))) continue;
      const st = fs.lstatSync(abs, { bigint: true, throwIfNoEntry: false });
      if (st === undefined) continue; // removed since readdir (a running container): not archived
      await this.entry(rel, abs, name, st);
    }
  }

  private base(st: fs.BigIntStats): Omit<TarHeader, 'name' | 'type'> {
    return {
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: 0,
      mtime: this.mtime(st),
    };
  }

  private xattrs(abs: string, rel: string): Map<string, Buffer> | undefined {
    let names: string[];
    try {
      names = llistxattr(abs);
    } catch (e) {
      if (hasErrno(e, 'ENOTSUP', 'EOPNOTSUPP')) return undefined;
      throw new PlyError(`cannot read the xattrs of ${rel}: ${(e as Error).message}`, { cause: e });
    }
    if (names.length === 0) return undefined;
    const out = new Map<string, Buffer>();
    for (const n of names.sort()) {
      if (n.startsWith('trusted.overlay.')) continue;
      const v = lgetxattr(abs, n);
      if (v !== null) out.set(n, v);
    }
    return out.size > 0 ? out : undefined;
  }

  private async entry(rel: string, abs: string, name: string, st: fs.BigIntStats): Promise<void> {
    const w = this.writer;
    const fmt = Number(st.mode & 0o170000n);

    if (fmt === S_IFDIR) {
      const h: TarHeader = { name: `${rel}/`, type: 'dir', ...this.base(st), xattrs: this.xattrs(abs, rel) };
      await w.add(h);
      if (this.opts.overlay) {
        const opq = lgetxattr(abs, 'trusted.overlay.opaque');
        if (opq !== null && opq.length === 1 && opq[0] === 0x79 /* y */) {
          await w.add({ name: `${rel}/${WHITEOUT_OPAQUE}`, type: 'file', mode: h.mode & 0o777, uid: h.uid, gid: h.gid, size: 0, mtime: h.mtime });
        }
      }
      await this.walkDir(rel);
      return;
    }

    if (this.opts.overlay && fmt === S_IFCHR && st.rdev === 0n) {
      // An overlay whiteout (possibly one of many hardlinks to the shared whiteout inode).
      const dir = path.posix.dirname(rel);
      const wh = dir === '.' ? `${WHITEOUT_PREFIX}${name}` : `${dir}/${WHITEOUT_PREFIX}${name}`;
      await w.add({ name: wh, type: 'file', ...this.base(st), mode: 0o600 });
      return;
    }

    if (fmt === S_IFSOCK) return; // sockets are not archived

    // Hardlinks within the tree.
    const key = st.nlink > 1n ? `${st.dev}:${st.ino}` : undefined;
    if (key !== undefined) {
      const first = this.links.get(key);
      if (first !== undefined) {
        await w.add({ name: rel, type: 'link', ...this.base(st), linkname: first });
        return;
      }
    }

    switch (fmt) {
      case S_IFREG:
        await this.file(rel, abs, st);
        return;
      case S_IFLNK: {
        let target: string;
        try {
          target = fs.readlinkSync(abs);
        } catch (e) {
          if (hasErrno(e, 'ENOENT')) return;
          throw e;
        }
        await w.add({ name: rel, type: 'symlink', ...this.base(st), linkname: target, xattrs: this.xattrs(abs, rel) });
        if (key !== undefined) this.links.set(key, rel);
        return;
      }
      case S_IFCHR:
      case S_IFBLK: {
        if (key !== undefined) this.links.set(key, rel);
        const { major, minor } = devNumbers(st.rdev);
        await w.add({
          name: rel,
          type: fmt === S_IFCHR ? 'chardev' : 'blockdev',
          ...this.base(st),
          devmajor: major,
          devminor: minor,
          xattrs: this.xattrs(abs, rel),
        });
        return;
      }
      case S_IFIFO:
        if (key !== undefined) this.links.set(key, rel);
        await w.add({ name: rel, type: 'fifo', ...this.base(st), xattrs: this.xattrs(abs, rel) });
        return;
      default:
        throw new PlyError(`${rel}: unsupported file type (mode ${st.mode.toString(8)})`);
    }
  }

  /**
   * Archives a regular file (or a hardlink to one archived before). Without `st` (from lstat) the file is opened
   * directly; false then means it is not a regular file any more and the caller looks at it again.
   */
  private async file(rel: string, abs: string, st?: fs.BigIntStats): Promise<boolean> {
    let fd: number;
    try {
      fd = fs.openSync(abs, O_READ_FILE);
    } catch (e) {
      if (hasErrno(e, 'ENOENT')) return st !== undefined;
      if (hasErrno(e, 'ELOOP')) {
        if (st === undefined) return false; // now a symlink: archived as one
        throw new PlyError(`${rel} was replaced by a symlink while being archived`, { cause: e });
      }
      throw e;
    }
    try {
      // The descriptor must be the file we meant, reached without following any symlink on the way.
      const via = fs.readlinkSync(`/proc/self/fd/${fd}`);
      const fst = fs.fstatSync(fd, { bigint: true });
      if (via !== abs && via !== `${abs} (deleted)`) throw new PlyError(`${rel} changed while being archived (opened ${via})`);
      if (st !== undefined && (fst.ino !== st.ino || fst.dev !== st.dev)) throw new PlyError(`${rel} changed while being archived`);
      if (Number(fst.mode & 0o170000n) !== S_IFREG) {
        if (st === undefined) return false;
        throw new PlyError(`${rel} changed while being archived`);
      }
      const key = fst.nlink > 1n ? `${fst.dev}:${fst.ino}` : undefined;
      const first = key !== undefined ? this.links.get(key) : undefined;
      if (first !== undefined) {
        await this.writer.add({ name: rel, type: 'link', ...this.base(fst), linkname: first });
        return true;
      }
      const size = Number(fst.size);
      const h: TarHeader = { name: rel, type: 'file', ...this.base(fst), size, xattrs: this.xattrs(abs, rel) };
      if (size <= CHUNK) await this.writer.add(h, readSyncFull(fd, size, abs));
      else await this.writer.add(h, readChunks(fd, size, abs));
      if (key !== undefined) this.links.set(key, rel);
      return true;
    } finally {
      fs.closeSync(fd);
    }
  }
}
