/**
 * Layer application: unpacks a layer tar into a directory, confined to it.
 *
 * Confinement: entry names are normalised (leading '/' and './' stripped, '.' collapsed) and any '..' component
 * is refused. Parent components are resolved one at a time with lstat, never by the kernel: a symlink met on the
 * way is resolved *inside* the root, chroot-style (an absolute target restarts at the root, '..' stops at the
 * root), like containerd's fs.RootPath; so `etc -> /host/etc` then `etc/passwd` writes `<root>/host/etc/passwd`.
 * The final component is never followed: whatever is there is removed and recreated (files are opened with
 * O_CREAT|O_EXCL|O_NOFOLLOW), except an existing directory where a directory comes. Hardlink targets are resolved
 * by the same rules and must exist inside the root and not be directories.
 */

import fs from 'node:fs';
import path from 'node:path';
import { InvalidArchiveError, PlyError } from '../errors.js';
import { fsetxattr, hasErrno, lsetxattr, mknod, S_IFBLK, S_IFCHR, S_IFIFO } from '../native/index.js';
import { readTar, type TarHeader } from '../tar/index.js';
import { removeTree } from '../util/fs.js';
import { splitEntryPath } from './validate.js';

export interface ApplyOptions {
  /**
   * 'overlay': the directory is one overlayfs layer (lower dirs are separate): whiteouts `.wh.NAME` become
   * overlay whiteouts (char device 0/0 named NAME), `.wh..wh..opq` sets xattr trusted.overlay.opaque="y" on
   * its directory. 'flat': the directory already holds the lower layers' content: `.wh.NAME` deletes NAME
   * (recursively), `.wh..wh..opq` deletes the directory's existing children that were not added by this same layer.
   */
  mode: 'overlay' | 'flat';
}

export interface ApplyResult {
  /** Sum of the regular files' sizes. */
  size: number;
  /** Number of tar entries read (whiteouts included). */
  entries: number;
}

const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_META_PREFIX = '.wh..wh.';
const WHITEOUT_OPAQUE = '.wh..wh..opq';
const OPAQUE_XATTR = 'trusted.overlay.opaque';
/** Most symlinks followed while resolving one path (Linux's own limit is 40 per lookup; Go's is 255). */
const MAX_SYMLINKS = 255;
/** Body chunks at least this large are written asynchronously; smaller ones synchronously (cheaper). */
const ASYNC_WRITE_MIN = 64 * 1024;

const O_CREATE_FILE = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
/** Bytes of asynchronous writes in flight before the reader waits (bounds memory: chunks are held until written). */
const MAX_INFLIGHT_BYTES = 16 << 20;
/** Files whose writes are in flight (each holds a descriptor) before the reader waits. */
const MAX_PENDING_FILES = 64;

function pwrite(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
}

async function pwriteAll(fd: number, buf: Buffer, pos: number): Promise<void> {
  for (let off = 0; off < buf.length; ) off += await pwrite(fd, buf, off, buf.length - off, pos + off);
}

export { normalizeEntryPath } from './validate.js';

function joinRel(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

function parentRel(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

function lstatOrNull(p: string): fs.Stats | null {
  return fs.lstatSync(p, { throwIfNoEntry: false }) ?? null;
}

/** Applies one layer into `root` (see the module comment for the confinement rules). */
export async function applyLayer(root: string, source: AsyncIterable<Buffer> | NodeJS.ReadableStream, opts: ApplyOptions): Promise<ApplyResult> {
  const a = new Applier(path.resolve(root), opts.mode);
  try {
    for await (const entry of readTar(source)) {
      a.checkFailure();
      a.entries++;
      await a.apply(entry.header, entry.body);
    }
    await a.settle();
  } catch (e) {
    // Let writes in flight finish (and their descriptors close) before the caller cleans up.
    await a.settle().catch(() => {});
    throw e;
  }
  a.finish();
  return { size: a.size, entries: a.entries };
}

class Applier {
  size = 0;
  entries = 0;
  /** Entry-relative directory path → real relative path (every component a real directory), for parents. */
  private readonly dirCache = new Map<string, string>();
  /** Real relative paths this layer created or wrote (flat mode, for opaque directories). */
  private readonly added = new Set<string>();
  /** Ancestors of `added` paths (flat mode): kept, but searched, by an opaque directory's clean-up. */
  private readonly addedAncestors = new Set<string>();
  /** Directory mtimes, set at the very end (deepest first): adding children changes them. */
  private readonly dirTimes = new Map<string, number>();
  /** Opaque directories (real relative paths) to clean up in flat mode, at the end. */
  private readonly opaque = new Set<string>();
  /** Files whose asynchronous writes (then metadata, then close) are still pending. */
  private readonly pendingFiles = new Set<Promise<void>>();
  private inflightBytes = 0;
  private waiters: Array<() => void> = [];
  private failure: unknown = null;

  constructor(
    private readonly root: string,
    private readonly mode: 'overlay' | 'flat',
  ) {}

  private abs(rel: string): string {
    return rel === '' ? this.root : `${this.root}/${rel}`;
  }

  // ------------------------------------------------------------------------------------------------
  // Resolution inside the root

  /**
   * Resolves directory components inside the root, following symlinks chroot-style. Missing directories are
   * created (0755, 0:0) when `create`, otherwise null is returned. Throws if a component is not a directory.
   */
  private resolveDir(parts: string[], create: boolean, entryName: string): string | null {
    if (parts.length === 0) return '';
    const key = parts.join('/');
    const hit = this.dirCache.get(key);
    if (hit !== undefined) return hit;
    // Start from the longest cached prefix.
    let i = parts.length - 1;
    let cur = '';
    for (; i > 0; i--) {
      const c = this.dirCache.get(parts.slice(0, i).join('/'));
      if (c !== undefined) {
        cur = c;
        break;
      }
    }
    const budget = { left: MAX_SYMLINKS };
    for (; i < parts.length; i++) {
      const next = this.step(cur, parts[i], create, budget, entryName);
      if (next === null) return null;
      cur = next;
      this.dirCache.set(parts.slice(0, i + 1).join('/'), cur);
    }
    return cur;
  }

  /** Resolves one component `name` under the real directory `dir` to a real directory. */
  private step(dir: string, name: string, create: boolean, budget: { left: number }, entryName: string): string | null {
    const rel = joinRel(dir, name);
    const p = this.abs(rel);
    const st = lstatOrNull(p);
    if (st === null) {
      if (!create) return null;
      fs.mkdirSync(p, 0o755);
      fs.lchownSync(p, 0, 0);
      fs.chmodSync(p, 0o755);
      this.markAdded(rel);
      return rel;
    }
    if (st.isDirectory()) return rel;
    if (st.isSymbolicLink()) {
      if (--budget.left < 0) throw new InvalidArchiveError(`tar entry '${entryName}': too many levels of symbolic links`);
      const target = fs.readlinkSync(p);
      let cur = target.startsWith('/') ? '' : dir;
      for (const c of target.split('/')) {
        if (c === '' || c === '.') continue;
        if (c === '..') {
          cur = parentRel(cur); // never above the root: parentRel('') === ''
          continue;
        }
        const next = this.step(cur, c, create, budget, entryName);
        if (next === null) return null;
        cur = next;
      }
      return cur;
    }
    throw new InvalidArchiveError(`tar entry '${entryName}': '${rel}' is not a directory`);
  }

  private markAdded(rel: string): void {
    if (this.mode !== 'flat') return;
    this.added.add(rel);
    for (let p = parentRel(rel); p !== '' && !this.addedAncestors.has(p); p = parentRel(p)) this.addedAncestors.add(p);
  }

  /** Removes whatever is at `rel` (not following symlinks); invalidates cached resolutions when needed. */
  private removeExisting(rel: string, st: fs.Stats): void {
    const p = this.abs(rel);
    if (st.isDirectory()) {
      removeTree(p);
      this.dirCache.clear();
    } else {
      fs.unlinkSync(p);
      if (st.isSymbolicLink()) this.dirCache.clear();
    }
  }

  // ------------------------------------------------------------------------------------------------
  // Entries

  async apply(h: TarHeader, body: AsyncIterable<Buffer>): Promise<void> {
    const parts = splitEntryPath(h.name);
    if (parts.length === 0) return; // the root itself: its metadata belongs to whoever made the directory
    const base = parts[parts.length - 1];

    if (base.startsWith(WHITEOUT_PREFIX)) {
      // Whatever its type (normally an empty file), like docker; a body is skipped by the reader.
      this.whiteout(h, parts.slice(0, -1), base);
      return;
    }

    const dir = this.resolveDir(parts.slice(0, -1), true, h.name)!;
    const rel = joinRel(dir, base);
    const p = this.abs(rel);

    switch (h.type) {
      case 'dir': {
        try {
          fs.mkdirSync(p, 0o700);
        } catch (e) {
          if (!hasErrno(e, 'EEXIST')) throw e;
          const st = fs.lstatSync(p);
          if (!st.isDirectory()) {
            this.removeExisting(rel, st);
            fs.mkdirSync(p, 0o700);
          }
        }
        this.markAdded(rel);
        this.setMeta(p, h, false);
        this.dirTimes.set(rel, h.mtime);
        return;
      }
      case 'file': {
        const fd = this.replace(rel, () => fs.openSync(p, O_CREATE_FILE, 0o600));
        this.markAdded(rel);
        await this.writeFile(fd, h, body);
        this.size += h.size;
        return;
      }
      case 'link': {
        const target = this.resolveLinkTarget(h);
        if (target === rel) return; // a hardlink to itself: nothing to do
        // link(2) does not follow a symlink target: it links the symlink itself.
        this.replace(rel, () => fs.linkSync(this.abs(target), p));
        this.markAdded(rel);
        return;
      }
      case 'symlink': {
        this.replace(rel, () => fs.symlinkSync(h.linkname ?? '', p));
        this.markAdded(rel);
        this.setMeta(p, h, true);
        fs.lutimesSync(p, h.mtime, h.mtime);
        return;
      }
      case 'chardev':
      case 'blockdev':
      case 'fifo': {
        const type = h.type === 'chardev' ? S_IFCHR : h.type === 'blockdev' ? S_IFBLK : S_IFIFO;
        this.replace(rel, () => mknod(p, type | (h.mode & 0o777), h.devmajor ?? 0, h.devminor ?? 0));
        this.markAdded(rel);
        this.setMeta(p, h, false);
        fs.lutimesSync(p, h.mtime, h.mtime);
        return;
      }
      default:
        throw new InvalidArchiveError(`tar entry '${h.name}': unsupported type '${String(h.type)}'`);
    }
  }

  /**
   * Runs `make` (which creates `rel` and fails with EEXIST if something is there: it never follows a final
   * symlink); if something was there, removes it and runs `make` again.
   */
  private replace<T>(rel: string, make: () => T): T {
    try {
      return make();
    } catch (e) {
      if (!hasErrno(e, 'EEXIST')) throw e;
    }
    this.removeExisting(rel, fs.lstatSync(this.abs(rel)));
    return make();
  }

  private whiteout(h: TarHeader, dirParts: string[], base: string): void {
    if (this.mode === 'overlay') {
      const dir = this.resolveDir(dirParts, true, h.name)!;
      if (base === WHITEOUT_OPAQUE) {
        lsetxattr(this.abs(dir), OPAQUE_XATTR, Buffer.from('y'));
        return;
      }
      if (base.startsWith(WHITEOUT_META_PREFIX)) return; // aufs metadata (.wh..wh.plnk, ...): nothing to do
      const name = base.slice(WHITEOUT_PREFIX.length);
      if (name === '' || name === '.' || name === '..') throw new InvalidArchiveError(`tar entry '${h.name}': invalid whiteout`);
      const rel = joinRel(dir, name);
      this.replace(rel, () => mknod(this.abs(rel), S_IFCHR, 0, 0));
      fs.lchownSync(this.abs(rel), h.uid, h.gid);
      return;
    }

    // flat
    const dir = this.resolveDir(dirParts, false, h.name);
    if (base === WHITEOUT_OPAQUE) {
      if (dir !== null) this.opaque.add(dir);
      return;
    }
    if (base.startsWith(WHITEOUT_META_PREFIX)) return;
    const name = base.slice(WHITEOUT_PREFIX.length);
    if (name === '' || name === '.' || name === '..') throw new InvalidArchiveError(`tar entry '${h.name}': invalid whiteout`);
    if (dir === null) return; // nothing below to hide
    const rel = joinRel(dir, name);
    const st = lstatOrNull(this.abs(rel));
    if (st) this.removeExisting(rel, st);
  }

  /** The real relative path of a hardlink's target: inside the root, existing, not a directory. */
  private resolveLinkTarget(h: TarHeader): string {
    const parts = splitEntryPath(h.linkname ?? '', `hardlink '${h.name}' target`);
    if (parts.length === 0) throw new InvalidArchiveError(`tar entry '${h.name}': hardlink to the root directory`);
    const dir = this.resolveDir(parts.slice(0, -1), false, h.name);
    const rel = dir === null ? null : joinRel(dir, parts[parts.length - 1]);
    const st = rel === null ? null : lstatOrNull(this.abs(rel));
    if (rel === null || st === null) {
      throw new InvalidArchiveError(`tar entry '${h.name}': hardlink target '${h.linkname ?? ''}' does not exist`);
    }
    if (st.isDirectory()) throw new InvalidArchiveError(`tar entry '${h.name}': hardlink target '${h.linkname ?? ''}' is a directory`);
    return rel;
  }

  /**
   * Writes a file's body. Large chunks are written asynchronously (positional writes, so they may overlap each
   * other and the next entries); small ones synchronously. The file's metadata is set, and its descriptor closed,
   * once its last write is done: with descriptor-based calls only, so nothing later entries do to paths matters.
   */
  private async writeFile(fd: number, h: TarHeader, body: AsyncIterable<Buffer>): Promise<void> {
    const writes: Promise<void>[] = [];
    let failed: { reason: unknown } | undefined;
    let pos = 0;
    try {
      for await (const chunk of body) {
        if (failed) throw failed.reason; // a write failed (a full disk): stop reading
        if (chunk.length >= ASYNC_WRITE_MIN) {
          while (this.inflightBytes >= MAX_INFLIGHT_BYTES) await this.progress();
          this.inflightBytes += chunk.length;
          const w = pwriteAll(fd, chunk, pos).finally(() => {
            this.inflightBytes -= chunk.length;
            this.wake();
          });
          // Handled at once (it is collected below): a failure before then must not be an unhandled rejection.
          w.catch((reason: unknown) => (failed ??= { reason }));
          writes.push(w);
        } else {
          for (let off = 0; off < chunk.length; ) off += fs.writeSync(fd, chunk, off, chunk.length - off, pos + off);
        }
        pos += chunk.length;
      }
      if (pos !== h.size) throw new InvalidArchiveError(`tar entry '${h.name}': body is ${pos} bytes, expected ${h.size}`);
    } catch (e) {
      await Promise.allSettled(writes); // never close a descriptor a write still uses
      fs.closeSync(fd);
      throw e;
    }
    if (writes.length === 0) {
      try {
        this.fileMeta(fd, h);
      } finally {
        fs.closeSync(fd);
      }
      return;
    }
    const done = Promise.allSettled(writes)
      .then((rs) => {
        for (const r of rs) if (r.status === 'rejected') throw r.reason;
        this.fileMeta(fd, h);
      })
      .finally(() => fs.closeSync(fd));
    this.pendingFiles.add(done);
    done.then(
      () => {
        this.pendingFiles.delete(done);
        this.wake();
      },
      (e: unknown) => {
        this.pendingFiles.delete(done);
        this.failure ??= e;
        this.wake();
      },
    );
    while (this.pendingFiles.size >= MAX_PENDING_FILES) await this.progress();
  }

  /** Owner, mode, xattrs and mtime of a written file, in that order (see setMeta). */
  private fileMeta(fd: number, h: TarHeader): void {
    fs.fchownSync(fd, h.uid, h.gid);
    fs.fchmodSync(fd, h.mode & 0o7777);
    this.setXattrs(h, false, (name, value) => fsetxattr(fd, name, value));
    fs.futimesSync(fd, h.mtime, h.mtime);
  }

  /** Resolves when some pending write or file completes. */
  private progress(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Waits for every pending file; throws the first failure. */
  async settle(): Promise<void> {
    while (this.pendingFiles.size > 0) await Promise.allSettled([...this.pendingFiles]);
    this.checkFailure();
  }

  checkFailure(): void {
    if (this.failure !== null) throw this.failure;
  }

  /**
   * Owner, mode (not for symlinks) and xattrs of a just-made object (not following a final symlink). chown comes
   * before chmod (chown clears setuid/setgid) and before the xattrs (it clears security.capability, as does
   * writing to a file).
   */
  private setMeta(p: string, h: TarHeader, symlink: boolean): void {
    fs.lchownSync(p, h.uid, h.gid);
    if (!symlink) fs.chmodSync(p, h.mode & 0o7777);
    this.setXattrs(h, symlink, (name, value) => lsetxattr(p, name, value));
  }

  private setXattrs(h: TarHeader, symlink: boolean, set: (name: string, value: Buffer) => void): void {
    if (!h.xattrs) return;
    for (const [name, value] of h.xattrs) {
      // Overlay's own attributes (opaque, redirect, metacopy, origin...) are ply's business, never a layer's.
      if (name.startsWith('trusted.overlay.')) continue;
      try {
        set(name, value);
      } catch (e) {
        if (name === 'security.capability') {
          throw new PlyError(`tar entry '${h.name}': cannot set file capabilities: ${(e as Error).message}`, { cause: e });
        }
        // The file system does not do xattrs (or this namespace), or user.* on a symlink/device: skip, like docker.
        if (hasErrno(e, 'ENOTSUP', 'EOPNOTSUPP')) continue;
        if (hasErrno(e, 'EPERM') && name.startsWith('user.') && (symlink || h.type !== 'file')) continue;
        throw new PlyError(`tar entry '${h.name}': cannot set xattr ${name}: ${(e as Error).message}`, { cause: e });
      }
    }
  }

  // ------------------------------------------------------------------------------------------------
  // End of layer

  finish(): void {
    // Directories recorded earlier may since have been replaced (an ancestor by a symlink, even): each is
    // re-checked to still be a real directory reached without following any symlink before it is touched.
    this.dirCache.clear();
    if (this.mode === 'flat') for (const dir of this.opaque) if (this.isRealDir(dir)) this.clearOpaque(dir);
    // Directory mtimes, deepest first.
    const dirs = [...this.dirTimes.keys()].sort((x, y) => depth(y) - depth(x));
    for (const rel of dirs) {
      if (!this.isRealDir(rel)) continue;
      const t = this.dirTimes.get(rel)!;
      fs.lutimesSync(this.abs(rel), t, t);
    }
  }

  /** True if the real relative path `rel` is a directory and no component of it is a symlink. */
  private isRealDir(rel: string): boolean {
    if (rel === '') return true;
    const parts = rel.split('/');
    if (this.resolveDir(parts.slice(0, -1), false, rel) !== parentRel(rel)) return false;
    return lstatOrNull(this.abs(rel))?.isDirectory() ?? false;
  }

  /** Flat mode: removes everything below `dir` that this layer did not add. */
  private clearOpaque(dir: string): void {
    const walk = (d: string): void => {
      for (const name of fs.readdirSync(this.abs(d))) {
        const rel = joinRel(d, name);
        const added = this.added.has(rel);
        if (added || this.addedAncestors.has(rel)) {
          const cst = fs.lstatSync(this.abs(rel));
          if (cst.isDirectory()) walk(rel);
        } else {
          removeTree(this.abs(rel));
        }
      }
    };
    walk(dir);
    this.dirCache.clear();
  }
}

function depth(rel: string): number {
  let n = 0;
  for (let i = 0; i < rel.length; i++) if (rel.charCodeAt(i) === 0x2f) n++;
  return n;
}
