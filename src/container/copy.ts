// `ply cp`: copies between a container's filesystem and the host, with docker's rules for files, directories,
// trailing "/" and "/.". The container's tree is hostile (its processes may swap any path for a symlink while
// the copy runs), so every container path resolves in the kernel as if the rootfs were "/" (openat2
// RESOLVE_IN_ROOT: no symlink, absolute or relative, and no ".." leaves it), and below that every entry is
// reached from its parent's descriptor without following a symlink (O_NOFOLLOW, O_PATH descriptors reopened
// through /proc/self/fd, which names the very inode). A stopped container's rootfs is mounted for the copy.
import fs from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, NotFoundError, PlyError } from '../errors.js';
import { hasErrno, mknod, openat2, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS } from '../native/index.js';
import { withRootfs } from './commit.js';
import type { ContainerManager } from './manager.js';

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
/** O_PATH (Linux, every architecture Node runs on): a descriptor that names an inode without opening it. */
const O_PATH = 0o10000000;

export interface CopyOptions {
  /** Keep the source's owners (docker cp -a); otherwise files land owned by root in a container, by the caller on the host. */
  archive?: boolean;
  /** Follow a symlink named by the source path itself (docker cp -L). */
  followLink?: boolean;
}

function splitContainerPath(arg: string): { container?: string; path: string } {
  // "CONTAINER:PATH"; a leading '/' or '.' means a local path even if it contains ':'.
  if (arg.startsWith('/') || arg.startsWith('.')) return { path: arg };
  const i = arg.indexOf(':');
  if (i <= 0) return { path: arg };
  return { container: arg.slice(0, i), path: arg.slice(i + 1) || '/' };
}

/** `name` in the directory open as `dirfd`: the kernel resolves the descriptor, not a path that could change. */
const at = (dirfd: number, name: string) => `/proc/self/fd/${dirfd}/${name}`;
/** The inode open as `fd` itself. */
const self = (fd: number) => `/proc/self/fd/${fd}`;

/** A source or destination entry: `name` in the directory `dir` (an O_PATH descriptor), or a directory itself. */
interface Entry {
  dir: number;
  name: string;
}

/** An entry's path; name "." is the descriptor's own inode (a source path resolved whole). */
const pathOf = (e: Entry) => (e.name === '.' ? self(e.dir) : at(e.dir, e.name));
/** An entry's own status: never through a final symlink (the descriptor itself is followed, being the inode meant). */
const statOf = (e: Entry, opts?: { throwIfNoEntry: false }) => (e.name === '.' ? fs.statSync(pathOf(e), opts) : fs.lstatSync(pathOf(e), opts));
/** O_NOFOLLOW, except for a descriptor's own inode (its /proc link must be followed to reach it). */
const noFollow = (e: Entry) => (e.name === '.' ? 0 : O_NOFOLLOW);

/** Descriptors opened during one copy, closed at its end. */
class Fds {
  private readonly open: number[] = [];
  add(fd: number): number {
    this.open.push(fd);
    return fd;
  }
  closeAll(): void {
    for (const fd of this.open.splice(0)) fs.closeSync(fd);
  }
}

function isDirSyntax(p: string): boolean {
  return p.endsWith('/') || p.endsWith('/.') || p === '.' || p === '';
}

/** A path inside the container, relative to its root, for openat2 ("." for the root itself). */
function inRoot(p: string): string {
  const rel = path.posix.normalize(`/${p}`).replace(/^\/+/, '');
  return rel === '' ? '.' : rel;
}

/**
 * Opens `p` inside the container as an O_PATH descriptor, resolved as a chroot would (`extra`: O_DIRECTORY,
 * O_NOFOLLOW for the final component). Anything that does not exist there is docker's "Could not find".
 */
function openInContainer(rootfd: number, p: string, extra: number, container: string, shown = p): number {
  try {
    return openat2(rootfd, inRoot(p), O_PATH | extra, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
  } catch (e) {
    if (hasErrno(e, 'ENOENT', 'ENOTDIR', 'ELOOP', 'EXDEV')) throw new NotFoundError(`Could not find the file ${shown} in container ${container}`);
    throw e;
  }
}

interface Ctx {
  fds: Fds;
  /** Owner given to what is created; undefined = the source's own. */
  owner?: { uid: number; gid: number };
  /** Hard links inside the copied tree: the first copy of each inode, so later ones link to it. */
  links: Map<string, Entry>;
}

export async function copy(manager: ContainerManager, src: string, dest: string, opts: CopyOptions): Promise<void> {
  const s = splitContainerPath(src);
  const d = splitContainerPath(dest);
  if (s.container && d.container) throw new InvalidArgumentError('copying between containers is not supported');
  if (!s.container && !d.container) throw new InvalidArgumentError('must specify at least one container source');
  const fds = new Fds();
  const c = manager.get((s.container ?? d.container)!);
  try {
    if (s.container) {
      const hostDest = path.resolve(dest);
      await withRootfs(manager, c, async (rootfs) => {
        const rootfd = fds.add(fs.openSync(rootfs, O_RDONLY | O_DIRECTORY));
        const from = containerSource(rootfd, s.path, !!opts.followLink, s.container!, fds);
        const owner = opts.archive ? undefined : { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
        copyInto(from, s.path, hostTarget(hostDest, dest, fds), dest, { fds, owner, links: new Map() });
      });
      return;
    }
    const from = hostSource(src, !!opts.followLink, fds);
    await withRootfs(manager, c, async (rootfs) => {
      const rootfd = fds.add(fs.openSync(rootfs, O_RDONLY | O_DIRECTORY));
      const to = containerTarget(rootfd, d.path, d.container!, fds);
      // Files land owned by root in the container unless -a keeps the host's owners, as docker does.
      copyInto(from, src, to, d.path, { fds, owner: opts.archive ? undefined : { uid: 0, gid: 0 }, links: new Map() });
    });
  } finally {
    fds.closeAll();
  }
}

/** What a source path names: an entry (its final symlink kept, unless followed) or, for "/" and "dir/.", a directory. */
type Source = { entry: Entry; contents: boolean };

function containerSource(rootfd: number, p: string, follow: boolean, container: string, fds: Fds): Source {
  const contents = p.endsWith('/.');
  const base = path.posix.basename(p);
  if (follow || isDirSyntax(p) || inRoot(p) === '.' || base === '..') {
    // The whole path resolves (a trailing "/" follows a final symlink, as in POSIX), always inside the root.
    const fd = fds.add(openInContainer(rootfd, p, isDirSyntax(p) ? O_DIRECTORY : 0, container));
    return { entry: { dir: fd, name: '.' }, contents };
  }
  const parent = fds.add(openInContainer(rootfd, path.posix.dirname(p), O_DIRECTORY, container, p));
  if (!fs.lstatSync(at(parent, base), { throwIfNoEntry: false })) throw new NotFoundError(`Could not find the file ${p} in container ${container}`);
  return { entry: { dir: parent, name: base }, contents };
}

function hostSource(p: string, follow: boolean, fds: Fds): Source {
  const contents = p.endsWith('/.');
  const st = (follow || isDirSyntax(p) ? fs.statSync : fs.lstatSync)(p, { throwIfNoEntry: false });
  if (!st) throw new NotFoundError(`lstat ${p}: no such file or directory`);
  if (follow || isDirSyntax(p)) return { entry: { dir: fds.add(fs.openSync(p, O_PATH)), name: '.' }, contents };
  return { entry: { dir: fds.add(fs.openSync(path.dirname(path.resolve(p)), O_PATH | O_DIRECTORY)), name: path.basename(p) }, contents };
}

/** Where a copy goes: into an existing directory (under the source's name), or as `entry` itself. */
type Target = { into: number } | { entry: Entry; mustBeDir: boolean };

function containerTarget(rootfd: number, p: string, container: string, fds: Fds, depth = 0): Target {
  try {
    // An existing directory (a final symlink followed inside the root, as docker resolves the destination).
    return { into: fds.add(openat2(rootfd, inRoot(p), O_PATH | O_DIRECTORY, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)) };
  } catch (e) {
    if (!hasErrno(e, 'ENOENT', 'ENOTDIR', 'ELOOP')) throw e;
  }
  const parentPath = path.posix.dirname(inRoot(p));
  const parent = fds.add(openInContainer(rootfd, parentPath, O_DIRECTORY, container, path.posix.dirname(p)));
  const name = path.posix.basename(inRoot(p));
  const st = fs.lstatSync(at(parent, name), { throwIfNoEntry: false });
  if (st?.isSymbolicLink() && depth < 40) {
    // A final symlink is followed as docker does, its target again resolved inside the root.
    const target = fs.readlinkSync(at(parent, name));
    const next = target.startsWith('/') ? target : path.posix.join('/', parentPath, target);
    return containerTarget(rootfd, isDirSyntax(p) ? `${next}/` : next, container, fds, depth + 1);
  }
  return { entry: { dir: parent, name }, mustBeDir: isDirSyntax(p) };
}

function hostTarget(resolved: string, given: string, fds: Fds): Target {
  const st = fs.statSync(resolved, { throwIfNoEntry: false });
  if (st?.isDirectory()) return { into: fds.add(fs.openSync(resolved, O_PATH | O_DIRECTORY)) };
  const parent = path.dirname(resolved);
  if (!fs.statSync(parent, { throwIfNoEntry: false })?.isDirectory()) throw new NotFoundError(`lstat ${path.dirname(given)}: no such file or directory`);
  return { entry: { dir: fds.add(fs.openSync(parent, O_PATH | O_DIRECTORY)), name: path.basename(resolved) }, mustBeDir: isDirSyntax(given) };
}

/** docker's rules: a directory's contents ("dir/.") or the entry itself, into a directory or onto a path. */
function copyInto(from: Source, srcShown: string, to: Target, destShown: string, ctx: Ctx): void {
  const st = statOf(from.entry)!;
  if ('into' in to) {
    // The name the source was given by ("dir/" and a followed link keep theirs); "/" and "dir/." give their contents.
    const name = from.entry.name === '.' ? path.posix.basename(srcShown.replace(/\/+\.?$/, '')) : from.entry.name;
    if (st.isDirectory() && (from.contents || name === '' || name === '.')) return copyChildren(from.entry, { dir: to.into, name: '.' }, ctx);
    return copyEntry(from.entry, { dir: to.into, name }, ctx);
  }
  if (!st.isDirectory() && to.mustBeDir) throw new PlyError(`destination directory ${destShown} does not exist`);
  if (st.isDirectory() && from.entry.name === '.') {
    // A directory named by its descriptor: the target is made and its contents follow.
    const dp = at(to.entry.dir, to.entry.name);
    replaceNonDir(to.entry, true, () => destShown);
    if (!fs.existsSync(dp)) fs.mkdirSync(dp, { mode: 0o755 });
    const dfd = fs.openSync(dp, O_PATH | O_DIRECTORY | O_NOFOLLOW);
    try {
      return copyChildren(from.entry, { dir: dfd, name: '.' }, ctx);
    } finally {
      fs.closeSync(dfd);
    }
  }
  copyEntry(from.entry, to.entry, ctx);
}

/** Removes a non-directory at `e` (never following it) so something new can take its place. */
function replaceNonDir(e: Entry, srcIsDir: boolean, shown: () => string): void {
  const st = fs.lstatSync(at(e.dir, e.name), { throwIfNoEntry: false });
  if (!st) return;
  if (st.isDirectory()) {
    if (srcIsDir) return;
    throw new PlyError(`cannot overwrite directory ${shown()} with non-directory`);
  }
  if (srcIsDir) throw new PlyError(`cannot overwrite non-directory ${shown()} with directory`);
  fs.unlinkSync(at(e.dir, e.name));
}

function setOwner(p: string, st: fs.Stats, ctx: Ctx): void {
  const o = ctx.owner ?? { uid: st.uid, gid: st.gid };
  fs.lchownSync(p, o.uid, o.gid);
}

/** A directory being copied: its children still to do, then its own metadata. */
interface OpenDir {
  sfd: number;
  dfd: number;
  names: string[];
  /** Whether this directory's metadata is copied when it is done (not for a target that already existed). */
  own: boolean;
}

/**
 * Copies `src` to `dst`. Directories are walked with an explicit stack (any depth), each opened from its parent
 * without following a symlink, so one swapped in meanwhile fails the open instead of leading elsewhere.
 */
function copyEntry(src: Entry, dst: Entry, ctx: Ctx): void {
  const stack: OpenDir[] = [];
  try {
    const top = copyOne(src, dst, ctx);
    if (top) stack.push(top);
    while (stack.length > 0) {
      const d = stack[stack.length - 1]!;
      const name = d.names.pop();
      if (name === undefined) {
        stack.pop();
        finishDir(d, ctx);
        continue;
      }
      const child = copyOne({ dir: d.sfd, name }, { dir: d.dfd, name }, ctx);
      if (child) stack.push(child);
    }
  } finally {
    for (const d of stack) {
      fs.closeSync(d.sfd);
      fs.closeSync(d.dfd);
    }
  }
}

function copyChildren(src: Entry, dst: Entry, ctx: Ctx): void {
  for (const name of fs.readdirSync(self(src.dir))) copyEntry({ dir: src.dir, name }, { dir: dst.dir, name }, ctx);
}

function finishDir(d: OpenDir, ctx: Ctx): void {
  try {
    const st = fs.statSync(self(d.sfd));
    setOwner(self(d.dfd), st, ctx);
    fs.chmodSync(self(d.dfd), st.mode & 0o7777);
    fs.utimesSync(self(d.dfd), st.atime, st.mtime);
  } finally {
    fs.closeSync(d.sfd);
    fs.closeSync(d.dfd);
  }
}

/** Copies one entry; a directory is created and returned open, for its children to follow. */
function copyOne(src: Entry, dst: Entry, ctx: Ctx): OpenDir | undefined {
  const sp = pathOf(src);
  let st: fs.Stats;
  try {
    st = statOf(src)!;
  } catch (e) {
    if (hasErrno(e, 'ENOENT')) return undefined; // removed by a running container meanwhile
    throw e;
  }
  const dp = at(dst.dir, dst.name);
  replaceNonDir(dst, st.isDirectory(), () => dst.name);
  if (st.isDirectory()) {
    const sfd = fs.openSync(sp, O_PATH | O_DIRECTORY | noFollow(src));
    try {
      if (!fs.existsSync(dp)) fs.mkdirSync(dp, { mode: 0o700 });
      const dfd = fs.openSync(dp, O_PATH | O_DIRECTORY | O_NOFOLLOW);
      return { sfd, dfd, names: fs.readdirSync(self(sfd)).reverse(), own: true };
    } catch (e) {
      fs.closeSync(sfd);
      throw e;
    }
  }
  if (st.nlink > 1 && !st.isSymbolicLink()) {
    const key = `${st.dev}:${st.ino}`;
    const first = ctx.links.get(key);
    if (first) {
      fs.linkSync(at(first.dir, first.name), dp);
      return undefined;
    }
    if (ctx.links.size < 256) ctx.links.set(key, { dir: ctx.fds.add(fs.openSync(self(dst.dir), O_PATH | O_DIRECTORY)), name: dst.name });
  }
  if (st.isFile()) {
    // O_NONBLOCK: a FIFO swapped in for the file must not hang the copy (it is then skipped).
    const sfd = fs.openSync(sp, O_RDONLY | noFollow(src) | O_NONBLOCK);
    try {
      const fst = fs.fstatSync(sfd);
      if (!fst.isFile()) return undefined;
      const dfd = fs.openSync(dp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
      try {
        // Between the inodes themselves: a path swapped meanwhile changes neither side.
        fs.copyFileSync(self(sfd), self(dfd));
        const o = ctx.owner ?? { uid: fst.uid, gid: fst.gid };
        fs.fchownSync(dfd, o.uid, o.gid);
        fs.fchmodSync(dfd, fst.mode & 0o7777);
        fs.futimesSync(dfd, fst.atime, fst.mtime);
      } finally {
        fs.closeSync(dfd);
      }
    } finally {
      fs.closeSync(sfd);
    }
    return undefined;
  }
  if (st.isSymbolicLink()) {
    // Copied as the link it is: its target means something only inside the container.
    fs.symlinkSync(fs.readlinkSync(sp), dp);
  } else if (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO()) {
    const rdev = st.rdev;
    mknod(dp, (st.mode & ~0o7777) | 0o600, Math.floor(rdev / 256) & 0xfff, (rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00));
  } else {
    return undefined; // sockets are not copied
  }
  setOwner(dp, st, ctx);
  if (!st.isSymbolicLink()) fs.chmodSync(dp, st.mode & 0o7777);
  fs.lutimesSync(dp, st.atime, st.mtime);
  return undefined;
}
