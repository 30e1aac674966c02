/**
 * Directory trees to tar: an overlayfs upper dir to a layer tar (`commit`), any tree to a tar (`export` of a
 * mounted rootfs), and a stack of overlay layers merged as their mount would show them (`export` of a stopped
 * container, without mounting it).
 *
 * Entries come depth first, each directory's children sorted by name (byte order), named relative to the tree
 * without './' ('etc/', 'etc/passwd'), like docker's layers. Files that share an inode become a file and then
 * hardlink entries naming the first path. uname/gname are left empty (numeric owners only, as docker does).
 * Sockets are skipped. File contents are read from a descriptor opened with O_NOFOLLOW whose path is checked
 * (through /proc/self/fd) to be the expected one, so a symlink swapped in by a running container cannot make
 * ply read a file outside the tree; the tree should still be quiescent (paused container) for a consistent tar.
 * A caller that knows nothing can change the tree (a stopped container's layers) may skip that check
 * (`quiescent`). Written to a TarFdWriter, file bodies go straight from the file into its output buffer.
 */

import fs from 'node:fs';
import path from 'node:path';
import { PlyError } from '../errors.js';
import { hasErrno, lgetxattr, llistxattr } from '../native/index.js';
import type { TarHeader, TarWriter } from '../tar/index.js';
import { TarFdWriter } from '../tar/writer.js';

/** Where a walk writes its entries: a streaming TarWriter, or a TarFdWriter on a file. */
export type TreeOutput = TarWriter | TarFdWriter;

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
  /** The walker's directories are overlay layers (top first), merged as overlayfs shows them. */
  merge?: boolean;
  /** Clamp mtimes above this (SOURCE_DATE_EPOCH) down to it. */
  clamp?: number;
  skip?: (relPath: string) => boolean;
  /** Nothing changes the tree during the walk: skip the /proc/self/fd check of each opened file. */
  quiescent?: boolean;
}

/**
 * Walks `upperDir` (an overlayfs upper layer) in sorted order and writes a layer tar: overlay whiteouts (char dev
 * 0/0) become `.wh.NAME` empty files, directories with trusted.overlay.opaque=y get a `.wh..wh..opq` entry after
 * their own entry, hardlinks within the tree stay hardlinks, xattrs are kept (except trusted.overlay.*), owners,
 * modes and mtimes (whole seconds; clamped to `clamp`, else to SOURCE_DATE_EPOCH when it is set) too; devices and fifos are kept.
 * Does not finish the writer.
 */
export async function writeUpperDiff(upperDir: string, writer: TreeOutput, clamp?: number): Promise<void> {
  await new TreeWalker(upperDir, writer, { overlay: true, clamp: clamp ?? sourceDateEpoch() }).run();
}

/**
 * Writes a whole directory tree (e.g. a mounted container rootfs) as a tar, no whiteout translation. `skip`
 * gets each path relative to `dir` (no trailing '/'); a skipped directory is skipped with all it holds.
 * `quiescent`: the caller guarantees that nothing changes the tree meanwhile (no process can reach it), so the
 * check that each opened file is the one meant (against symlinks swapped in mid-walk) is skipped.
 * Does not finish the writer.
 */
export async function writeTree(
  dir: string,
  writer: TreeOutput,
  opts: { skip?: (relPath: string) => boolean; quiescent?: boolean } = {},
): Promise<void> {
  await new TreeWalker(dir, writer, { overlay: false, skip: opts.skip, quiescent: opts.quiescent }).run();
}

/**
 * Writes the tree that overlayfs would show for `layers` (top first: e.g. a container's upper dir, its init
 * dir, its image's unpacked layers), as writeTree over the mounted overlay would, byte for byte, without
 * mounting it. The layers are merged as overlayfs (redirect_dir, metacopy and index off) merges them: a name
 * comes from the topmost layer that has it; an overlay whiteout (char device 0/0) hides it from the layers
 * below and is not archived; a directory merges with the same directory of the layers below, down to the first
 * layer where the name is a whiteout or not a directory, or where the directory is opaque
 * (trusted.overlay.opaque=y; the root directories always merge), its metadata and xattrs coming from the
 * topmost one. Hardlinks are files sharing an inode, so only names within one layer can be linked, as in the
 * mounted tree. Layers holding what this does not model (see unmodelledOverlayState) must be mounted instead.
 * `quiescent` as for writeTree. Does not finish the writer.
 */
export async function writeMergedTree(
  layers: string[],
  writer: TreeOutput,
  opts: { skip?: (relPath: string) => boolean; quiescent?: boolean } = {},
): Promise<void> {
  if (layers.length === 0) throw new PlyError('no layers to merge');
  await new TreeWalker(layers, writer, { overlay: false, merge: true, skip: opts.skip, quiescent: opts.quiescent }).run();
}

/** trusted.overlay.* xattrs that do not change what a merged tree shows (opaque is modelled, when it is "y"). */
const HARMLESS_OVERLAY_XATTRS = new Set(['trusted.overlay.origin', 'trusted.overlay.impure', 'trusted.overlay.protattr', 'trusted.overlay.uuid']);

/**
 * Why the tree overlayfs shows for a container's `upperDir` (over lower layers that ply unpacked, where
 * trusted.overlay.* xattrs never come from a layer) could differ from writeMergedTree's merge, or undefined
 * when it cannot: the kernel left a redirect, metacopy, index, xattr-whiteout or unknown overlay attribute in
 * the upper dir, or an inodes index in `workDir`.
 */
export function unmodelledOverlayState(upperDir: string, workDir: string): string | undefined {
  try {
    if (fs.readdirSync(path.join(workDir, 'index')).length > 0) return `${workDir}/index is not empty`;
  } catch (e) {
    if (!hasErrno(e, 'ENOENT', 'ENOTDIR')) throw e;
  }
  const scan = (abs: string): string | undefined => {
    let names: string[];
    try {
      names = llistxattr(abs);
    } catch (e) {
      if (hasErrno(e, 'ENOTSUP', 'EOPNOTSUPP')) return undefined;
      throw e;
    }
    for (const n of names) {
      if (!n.startsWith('trusted.overlay.') || HARMLESS_OVERLAY_XATTRS.has(n)) continue;
      if (n === 'trusted.overlay.opaque' && isOpaque(abs)) continue;
      return `${abs} has ${n}`;
    }
    return undefined;
  };
  const walk = (dir: string): string | undefined => {
    for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
      const abs = `${dir}/${d.name}`;
      const why = scan(abs) ?? (d.isDirectory() ? walk(abs) : undefined);
      if (why !== undefined) return why;
    }
    return undefined;
  };
  if (!fs.existsSync(upperDir)) return undefined;
  return scan(upperDir) ?? walk(upperDir);
}

function isOpaque(abs: string): boolean {
  const v = lgetxattr(abs, 'trusted.overlay.opaque');
  return v !== null && v.length === 1 && v[0] === 0x79; /* y */
}

/** Whether a directory entry's type is unknown (DT_UNKNOWN): lstat tells. */
function typeUnknown(d: fs.Dirent): boolean {
  return !(d.isFile() || d.isDirectory() || d.isSymbolicLink() || d.isCharacterDevice() || d.isBlockDevice() || d.isFIFO() || d.isSocket());
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
  /** The tree's directory, or the layers' (top first) when merging. */
  private readonly roots: string[];
  /** "dev:ino" → first tar name of a multiply-linked non-directory. */
  private readonly links = new Map<string, string>();

  constructor(
    dirs: string | string[],
    private readonly writer: TreeOutput,
    private readonly opts: WalkOptions,
  ) {
    // Real paths, so that /proc/self/fd/N of a file opened below them reads back exactly the path we opened.
    this.roots = (typeof dirs === 'string' ? [dirs] : dirs).map((d) => fs.realpathSync(d));
  }

  async run(): Promise<void> {
    for (const root of this.roots) {
      const st = fs.lstatSync(root);
      if (!st.isDirectory()) throw new PlyError(`${root}: not a directory`);
    }
    await (this.opts.merge ? this.walkMerged('', this.roots) : this.walkDir('', this.roots[0]!));
  }

  private mtime(st: fs.BigIntStats): number {
    const t = Number(st.mtimeMs / 1000n);
    return this.opts.clamp !== undefined && t > this.opts.clamp ? this.opts.clamp : t;
  }

  private async walkDir(dirRel: string, root: string): Promise<void> {
    const dirAbs = dirRel === '' ? root : `${root}/${dirRel}`;
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
      await this.entry(rel, abs, name, st, [root]);
    }
  }

  /**
   * One directory of the merged tree: `stack` holds the layers (top first) in which `dirRel` is a directory
   * that takes part in the merge (see writeMergedTree).
   */
  private async walkMerged(dirRel: string, stack: string[]): Promise<void> {
    // One layer (most directories): nothing to merge, walkDir's entries drop its whiteouts (see entry()).
    if (stack.length === 1) return this.walkDir(dirRel, stack[0]!);
    /** name → the layers having it (top first), with its directory entry there. */
    const found = new Map<string, { layer: string; d: fs.Dirent }[]>();
    for (const layer of stack) {
      const dirAbs = dirRel === '' ? layer : `${layer}/${dirRel}`;
      let dirents: fs.Dirent[];
      try {
        dirents = fs.readdirSync(dirAbs, { withFileTypes: true });
      } catch (e) {
        if (dirRel !== '' && hasErrno(e, 'ENOENT')) continue;
        throw e;
      }
      for (const d of dirents) {
        const have = found.get(d.name);
        if (have === undefined) found.set(d.name, [{ layer, d }]);
        else have.push({ layer, d });
      }
    }
    for (const name of sortNames([...found.keys()])) {
      const rel = dirRel === '' ? name : `${dirRel}/${name}`;
      if (this.opts.skip?.(rel)) continue;
      const layers = found.get(name)!;
      const top = layers[0]!;
      const abs = `${top.layer}/${rel}`;
      if (top.d.isFile() && (await this.file(rel, abs))) continue;
      const st = fs.lstatSync(abs, { bigint: true, throwIfNoEntry: false });
      if (st === undefined) continue;
      const inner: string[] = [];
      if (Number(st.mode & 0o170000n) === S_IFDIR) {
        inner.push(top.layer);
        // Lower layers' same directory merges in, down to an opaque directory, a whiteout or a non-directory.
        for (let i = 1; i < layers.length && !isOpaque(`${layers[i - 1]!.layer}/${rel}`); i++) {
          const l = layers[i]!;
          const labs = `${l.layer}/${rel}`;
          if (l.d.isDirectory()) {
            inner.push(l.layer);
            continue;
          }
          if (typeUnknown(l.d) && fs.lstatSync(labs, { throwIfNoEntry: false })?.isDirectory()) {
            inner.push(l.layer);
            continue;
          }
          break;
        }
      }
      await this.entry(rel, abs, name, st, inner);
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

  /** Archives one entry; a directory's own is followed by its children, from `stack` (see walkMerged). */
  private async entry(rel: string, abs: string, name: string, st: fs.BigIntStats, stack: string[]): Promise<void> {
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
      await (this.opts.merge ? this.walkMerged(rel, stack) : this.walkDir(rel, stack[0]!));
      return;
    }

    // Merging layers, a whiteout hides the name in the layers below and shows nothing itself.
    if (this.opts.merge && fmt === S_IFCHR && st.rdev === 0n) return;

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
      if (!this.opts.quiescent) {
        const via = fs.readlinkSync(`/proc/self/fd/${fd}`);
        if (via !== abs && via !== `${abs} (deleted)`) throw new PlyError(`${rel} changed while being archived (opened ${via})`);
      }
      const fst = fs.fstatSync(fd, { bigint: true });
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
      if (this.writer instanceof TarFdWriter) await this.writer.addFile(h, fd, abs);
      else if (size <= CHUNK) await this.writer.add(h, readSyncFull(fd, size, abs));
      else await this.writer.add(h, readChunks(fd, size, abs));
      if (key !== undefined) this.links.set(key, rel);
      return true;
    } finally {
      fs.closeSync(fd);
    }
  }
}
