/**
 * `export` without the overlay mount: the flattened filesystem is produced by merging, top to bottom, the
 * container's upper dir, its init layer dir and the image's layer tars (streamed from their blobs, decompressed
 * on the fly), as overlayfs would show them.
 *
 * A path is emitted from the topmost layer that has it, unless a layer above hides it: a whiteout (OCI `.wh.NAME`,
 * or an overlay 0/0 char device), an opaque directory (`.wh..wh..opq`, trusted.overlay.opaque=y) or a non-directory
 * at an ancestor path. Going top to bottom, what a layer hides is known before the layers below it are read, so each
 * blob is decompressed once, and parents always precede their children (a visible entry's parent directory is
 * visible from the same layer or one above). Layers are interpreted as `applyLayer` unpacked them: directories an
 * entry needs but the tar does not hold are created by the unpacking, so their metadata comes from the unpacked
 * snapshot directory; a hardlink whose target is hidden becomes a regular file read from the snapshot.
 *
 * The output is the same tree as `writeTree` over the mounted rootfs gives (not the same entry order). Returns
 * false, having written nothing, when the container's layer holds something this merge does not model (overlay
 * redirects or metacopy files) or a layer is not a tar: the caller then walks the mounted rootfs.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Engine } from '../engine.js';
import { NotFoundError, PlyError } from '../errors.js';
import { normalizeEntryPath } from '../layer/apply.js';
import { decompressed } from '../layer/compression.js';
import { hasErrno, lgetxattr, llistxattr } from '../native/index.js';
import type { TarHeader, TarWriter } from '../tar/index.js';
import { readTar } from '../tar/index.js';
import type { Container } from './store.js';

const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_META_PREFIX = '.wh..wh.';
const WHITEOUT_OPAQUE = '.wh..wh..opq';
const MAX_SYMLINKS = 255;
const CHUNK = 1 << 20;
const O_READ_FILE = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK;
const S_IFMT = 0o170000;
const S_IFIFO = 0o010000;
const S_IFCHR = 0o020000;
const S_IFDIR = 0o040000;
const S_IFBLK = 0o060000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFSOCK = 0o140000;

/** Overlay xattrs that change what a path shows (as opposed to opaque, handled, and origin/impure, harmless). */
const UNMODELLED_XATTRS = ['trusted.overlay.redirect', 'trusted.overlay.metacopy'];

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

function join(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

function devNumbers(rdev: bigint): { major: number; minor: number } {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn & 0xffffffffn));
  return { major, minor };
}

/** What the layers above the one being read leave visible. */
class Shadow {
  /** Paths some layer above has (as anything, whiteouts included). */
  readonly seen = new Set<string>();
  /** Paths below which lower layers are hidden: whiteouts, non-directories, opaque directories. */
  readonly blocked = new Set<string>();

  /** Whether a path of a lower layer shows through. */
  visible(rel: string): boolean {
    if (this.seen.has(rel)) return false;
    if (this.blocked.size === 0) return true;
    for (let p = parentOf(rel); p !== ''; p = parentOf(p)) if (this.blocked.has(p)) return false;
    return !this.blocked.has('');
  }
}

/**
 * The output tar. Entries come in layer order, not depth first, so an extractor that sets a directory's times once
 * it has moved past the directory (GNU tar does) would see them changed by children added later: directories
 * that get entries below them after the archive has left them are written again at the end, deepest first.
 */
class Out {
  /** Directories written whose subtree the archive is still in (a chain of ancestors, outermost first). */
  private readonly open: string[] = [];
  private readonly dirs = new Map<string, TarHeader>();
  private readonly dirty = new Set<string>();

  constructor(private readonly writer: TarWriter) {}

  async add(h: TarHeader, body?: AsyncIterable<Buffer> | Buffer): Promise<void> {
    const isDir = h.type === 'dir';
    const rel = isDir ? h.name.slice(0, -1) : h.name;
    const open = this.open;
    while (open.length > 0 && !rel.startsWith(`${open[open.length - 1]!}/`)) open.pop();
    const top = open.length > 0 ? open[open.length - 1]! : '';
    for (let p = parentOf(rel); p !== '' && p !== top; p = parentOf(p)) if (this.dirs.has(p)) this.dirty.add(p);
    if (isDir) {
      this.dirs.set(rel, h);
      this.dirty.delete(rel);
      open.push(rel);
    }
    await (body === undefined ? this.writer.add(h) : this.writer.add(h, body as AsyncIterable<Buffer>));
  }

  async finish(): Promise<void> {
    const depth = (p: string) => p.split('/').length;
    for (const d of [...this.dirty].sort((a, b) => depth(b) - depth(a))) await this.writer.add(this.dirs.get(d)!);
  }
}

/** One directory-tree layer (upper, init) read from the file system. */
interface FsEntry {
  rel: string;
  abs: string;
  st: fs.BigIntStats;
}

function listXattrs(abs: string): Map<string, Buffer> | undefined {
  let names: string[];
  try {
    names = llistxattr(abs);
  } catch (e) {
    if (hasErrno(e, 'ENOTSUP', 'EOPNOTSUPP', 'ENOENT')) return undefined;
    throw e;
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

function isOpaqueDir(abs: string): boolean {
  const v = lgetxattr(abs, 'trusted.overlay.opaque');
  return v !== null && v.length === 1 && v[0] === 0x79;
}

/** Walks a directory layer (sorted, depth first); null if it holds something the merge does not model. */
function walkDirLayer(root: string): FsEntry[] | null {
  const out: FsEntry[] = [];
  if (!fs.existsSync(root)) return out;
  const walk = (dirRel: string): boolean => {
    const dirAbs = dirRel === '' ? root : `${root}/${dirRel}`;
    let names: string[];
    try {
      names = fs.readdirSync(dirAbs);
    } catch (e) {
      if (dirRel !== '' && hasErrno(e, 'ENOENT', 'ENOTDIR')) return true;
      throw e;
    }
    for (const name of names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) {
      const rel = join(dirRel, name);
      const abs = `${dirAbs}/${name}`;
      const st = fs.lstatSync(abs, { bigint: true, throwIfNoEntry: false });
      if (st === undefined) continue;
      for (const x of UNMODELLED_XATTRS) if (lgetxattr(abs, x) !== null) return false;
      out.push({ rel, abs, st });
      if (Number(st.mode & BigInt(S_IFMT)) === S_IFDIR && !walk(rel)) return false;
    }
    return true;
  };
  return walk('') ? out : null;
}

function isWhiteoutStat(st: fs.BigIntStats): boolean {
  return Number(st.mode & BigInt(S_IFMT)) === S_IFCHR && st.rdev === 0n;
}

export interface LayerSource {
  /** The layer's unpacked snapshot directory (for directories the tar implies and hidden hardlink targets). */
  dir: string;
  /** The layer's tar, possibly compressed. */
  blob: () => AsyncIterable<Buffer>;
}

/**
 * Walks `dirLayers` (top first: upper, init) and returns the writer of their merge with `layers` (top first, below
 * them); see the module comment. null when a directory layer holds something not modelled.
 */
export function prepareMerge(dirLayers: string[], layers: LayerSource[]): ((writer: TarWriter) => Promise<void>) | null {
  const walked: FsEntry[][] = [];
  for (const d of dirLayers) {
    const w = walkDirLayer(d);
    if (w === null) return null;
    walked.push(w);
  }
  return async (writer) => {
    const out = new Out(writer);
    const m = new Merger(out);
    for (let i = 0; i < walked.length; i++) await m.dirLayer(dirLayers[i]!, walked[i]!);
    for (const l of layers) await m.tarLayer(l);
    await out.finish();
  };
}

class Merger {
  private readonly shadow = new Shadow();
  /** Hardlink groups across the directory layers: "dev:ino" → first name written. */
  private readonly inodes = new Map<string, string>();

  constructor(private readonly writer: Out) {}

  /** Merges this layer's paths into the shadow once the layer is done. */
  private commit(seen: Iterable<string>, blocked: Iterable<string>): void {
    for (const p of seen) this.shadow.seen.add(p);
    for (const p of blocked) this.shadow.blocked.add(p);
  }

  async dirLayer(root: string, entries: FsEntry[]): Promise<void> {
    const seen: string[] = [];
    const blocked: string[] = [];
    for (const e of entries) {
      seen.push(e.rel);
      const fmt = Number(e.st.mode & BigInt(S_IFMT));
      if (fmt !== S_IFDIR || isOpaqueDir(e.abs)) blocked.push(e.rel);
      if (isWhiteoutStat(e.st)) continue;
      if (!this.shadow.visible(e.rel)) continue;
      await emitFromFs(this.writer, root, e.rel, e.abs, e.st, this.inodes);
    }
    this.commit(seen, blocked);
  }

  async tarLayer(layer: LayerSource): Promise<void> {
    const w = this.writer;
    const shadow = this.shadow;
    /** Paths of this layer (resolved as applyLayer resolves them) → what they are. */
    const kinds = new Map<string, { dir: boolean; symlink?: string }>();
    const blocked = new Set<string>();
    /** Hardlink groups: path → group; group → name written (if any). */
    const group = new Map<string, number>();
    const written = new Map<number, string>();
    let groups = 0;
    /** Directories the unpacking made for entries below them (written from the snapshot: final metadata). */
    const implicit = new Set<string>();

    const emitImplicitDir = async (rel: string): Promise<void> => {
      kinds.set(rel, { dir: true });
      implicit.add(rel);
      if (!shadow.visible(rel)) return;
      const abs = `${layer.dir}/${rel}`;
      const st = fs.lstatSync(abs, { bigint: true });
      await emitFromFs(w, layer.dir, rel, abs, st, new Map());
    };

    /** Resolves directory components as applyLayer does (symlinks of this layer followed inside the root). */
    const resolveDir = async (parts: string[], create: boolean, name: string): Promise<string | null> => {
      if (parts.length === 0) return '';
      const literal = parts.join('/');
      if (kinds.get(literal)?.dir) return literal; // the common case: a directory of this layer, no symlink on the way
      const budget = { left: MAX_SYMLINKS };
      const step = async (dir: string, c: string): Promise<string | null> => {
        const rel = join(dir, c);
        const k = kinds.get(rel);
        if (k === undefined) {
          if (!create) return null;
          await emitImplicitDir(rel);
          return rel;
        }
        if (k.dir) return rel;
        if (k.symlink !== undefined) {
          if (--budget.left < 0) throw new PlyError(`tar entry '${name}': too many levels of symbolic links`);
          let cur = k.symlink.startsWith('/') ? '' : dir;
          for (const s of k.symlink.split('/')) {
            if (s === '' || s === '.') continue;
            if (s === '..') {
              cur = parentOf(cur);
              continue;
            }
            const next = await step(cur, s);
            if (next === null) return null;
            cur = next;
          }
          return cur;
        }
        throw new PlyError(`tar entry '${name}': '${rel}' is not a directory`);
      };
      let cur = '';
      for (const c of parts) {
        const next = await step(cur, c);
        if (next === null) return null;
        cur = next;
      }
      return cur;
    };

    for await (const entry of readTar(decompressed(layer.blob()))) {
      const h = entry.header;
      const norm = normalizeEntryPath(h.name);
      if (norm === null) continue;
      const parts = norm.split('/');
      const base = parts.pop()!;
      const dir = (await resolveDir(parts, true, h.name))!;
      if (base.startsWith(WHITEOUT_PREFIX)) {
        if (base === WHITEOUT_OPAQUE) blocked.add(dir);
        else if (!base.startsWith(WHITEOUT_META_PREFIX)) {
          const rel = join(dir, base.slice(WHITEOUT_PREFIX.length));
          kinds.set(rel, { dir: false });
          blocked.add(rel);
        }
        continue;
      }
      const rel = join(dir, base);
      const prev = kinds.get(rel);
      if (h.type === 'dir') {
        kinds.set(rel, { dir: true });
        // Made earlier for an entry below it: written then, from the snapshot, which has this entry's metadata.
        if (prev?.dir && implicit.has(rel)) continue;
        if (!shadow.visible(rel)) continue;
        await w.add({ name: `${rel}/`, type: 'dir', ...meta(h), xattrs: tarXattrs(h, true) });
        continue;
      }
      if (h.type === 'chardev' && (h.devmajor ?? 0) === 0 && (h.devminor ?? 0) === 0) {
        // An overlay whiteout once unpacked.
        kinds.set(rel, { dir: false });
        blocked.add(rel);
        continue;
      }
      kinds.set(rel, h.type === 'symlink' ? { dir: false, symlink: h.linkname ?? '' } : { dir: false });
      if (h.type === 'link') {
        const tparts = normalizeEntryPath(h.linkname ?? '')?.split('/') ?? [];
        if (tparts.length === 0) throw new PlyError(`tar entry '${h.name}': hardlink to the root directory`);
        const tbase = tparts.pop()!;
        const tdir = await resolveDir(tparts, false, h.name);
        const target = tdir === null ? null : join(tdir, tbase);
        if (target === null || !kinds.has(target)) throw new PlyError(`tar entry '${h.name}': hardlink target '${h.linkname ?? ''}' does not exist`);
        if (target === rel) {
          kinds.set(rel, prev ?? { dir: false });
          continue;
        }
        const tk = kinds.get(target)!;
        kinds.set(rel, tk);
        let g = group.get(target);
        if (g === undefined) group.set(target, (g = ++groups));
        group.set(rel, g);
        if (!shadow.visible(rel)) continue;
        const first = written.get(g);
        if (first !== undefined) {
          await w.add({ name: rel, type: 'link', ...meta(h), linkname: first });
        } else {
          // The target is hidden (or was never written): this path is the inode's first visible name.
          const abs = `${layer.dir}/${rel}`;
          const st = fs.lstatSync(abs, { bigint: true });
          await emitFromFs(w, layer.dir, rel, abs, st, new Map());
          written.set(g, rel);
        }
        continue;
      }
      group.delete(rel);
      if (!shadow.visible(rel)) continue;
      const g = ++groups;
      group.set(rel, g);
      written.set(g, rel);
      switch (h.type) {
        case 'file':
          await w.add({ name: rel, type: 'file', ...meta(h), size: h.size, xattrs: tarXattrs(h, true) }, entry.body);
          break;
        case 'symlink':
          await w.add({ name: rel, type: 'symlink', ...meta(h), mode: 0o777, linkname: h.linkname ?? '', xattrs: tarXattrs(h, false) });
          break;
        case 'chardev':
        case 'blockdev':
          await w.add({ name: rel, type: h.type, ...meta(h), devmajor: h.devmajor ?? 0, devminor: h.devminor ?? 0, xattrs: tarXattrs(h, false) });
          break;
        case 'fifo':
          await w.add({ name: rel, type: 'fifo', ...meta(h), xattrs: tarXattrs(h, false) });
          break;
        default:
          throw new PlyError(`tar entry '${h.name}': unsupported type '${String(h.type)}'`);
      }
    }
    // This layer hides, for the layers below: everything it has, below non-directories, whiteouts and opaque dirs.
    const seen: string[] = [];
    for (const [p, k] of kinds) {
      seen.push(p);
      if (!k.dir) blocked.add(p);
    }
    this.commit(seen, blocked);
  }
}

function meta(h: TarHeader): Omit<TarHeader, 'name' | 'type'> {
  return { mode: h.mode & 0o7777, uid: h.uid, gid: h.gid, size: 0, mtime: Math.trunc(h.mtime) };
}

/** The xattrs an unpacked entry ends up with: no overlay ones, no user.* on what cannot have them. */
function tarXattrs(h: TarHeader, userOk: boolean): Map<string, Buffer> | undefined {
  if (!h.xattrs || h.xattrs.size === 0) return undefined;
  const out = new Map<string, Buffer>();
  for (const n of [...h.xattrs.keys()].sort()) {
    if (n.startsWith('trusted.overlay.')) continue;
    if (!userOk && n.startsWith('user.')) continue;
    out.set(n, h.xattrs.get(n)!);
  }
  return out.size > 0 ? out : undefined;
}

/** Writes one file-system object (as diff.ts's writeTree would), hardlinks grouped through `inodes`. */
async function emitFromFs(w: Out, root: string, rel: string, abs: string, st: fs.BigIntStats, inodes: Map<string, string>): Promise<void> {
  const fmt = Number(st.mode & BigInt(S_IFMT));
  const base = { mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), size: 0, mtime: Number(st.mtimeMs / 1000n) };
  if (fmt === S_IFDIR) {
    await w.add({ name: `${rel}/`, type: 'dir', ...base, xattrs: listXattrs(abs) });
    return;
  }
  if (fmt === S_IFSOCK) return;
  const key = st.nlink > 1n ? `${st.dev}:${st.ino}` : undefined;
  const first = key !== undefined ? inodes.get(key) : undefined;
  if (first !== undefined) {
    await w.add({ name: rel, type: 'link', ...base, linkname: first });
    return;
  }
  switch (fmt) {
    case S_IFREG: {
      let fd: number;
      try {
        fd = fs.openSync(abs, O_READ_FILE);
      } catch (e) {
        if (hasErrno(e, 'ENOENT')) return;
        throw e;
      }
      try {
        const via = fs.readlinkSync(`/proc/self/fd/${fd}`);
        const fst = fs.fstatSync(fd, { bigint: true });
        const real = `${realRoot(root)}/${rel}`;
        if ((via !== real && via !== `${real} (deleted)`) || fst.ino !== st.ino || fst.dev !== st.dev) {
          throw new PlyError(`${rel} changed while being archived`);
        }
        const size = Number(fst.size);
        const h: TarHeader = { name: rel, type: 'file', ...base, mode: Number(fst.mode & 0o7777n), size, mtime: Number(fst.mtimeMs / 1000n), xattrs: listXattrs(abs) };
        await w.add(h, readChunks(fd, size, abs));
      } finally {
        fs.closeSync(fd);
      }
      break;
    }
    case S_IFLNK: {
      let target: string;
      try {
        target = fs.readlinkSync(abs);
      } catch (e) {
        if (hasErrno(e, 'ENOENT')) return;
        throw e;
      }
      await w.add({ name: rel, type: 'symlink', ...base, linkname: target, xattrs: listXattrs(abs) });
      break;
    }
    case S_IFCHR:
    case S_IFBLK: {
      const { major, minor } = devNumbers(st.rdev);
      await w.add({ name: rel, type: fmt === S_IFCHR ? 'chardev' : 'blockdev', ...base, devmajor: major, devminor: minor, xattrs: listXattrs(abs) });
      break;
    }
    case S_IFIFO:
      await w.add({ name: rel, type: 'fifo', ...base, xattrs: listXattrs(abs) });
      break;
    default:
      throw new PlyError(`${rel}: unsupported file type (mode ${st.mode.toString(8)})`);
  }
  if (key !== undefined) inodes.set(key, rel);
}

const realRoots = new Map<string, string>();
function realRoot(root: string): string {
  let r = realRoots.get(root);
  if (r === undefined) realRoots.set(root, (r = fs.realpathSync(root)));
  return r;
}

async function* readChunks(fd: number, size: number, abs: string): AsyncGenerator<Buffer> {
  let pos = 0;
  while (pos < size) {
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, size - pos));
    const n = fs.readSync(fd, buf, 0, buf.length, pos);
    if (n === 0) throw new PlyError(`${abs}: file shrank while being read`);
    pos += n;
    yield n === buf.length ? buf : buf.subarray(0, n);
  }
}

/**
 * The writer of the container's flattened filesystem from its layers (see the module comment); null when this
 * cannot be done (the caller then walks the mounted rootfs).
 */
export async function prepareLayerExport(engine: Engine, c: Container): Promise<((writer: TarWriter) => Promise<void>) | null> {
  const rec = engine.images.get(c.image);
  if (!rec) throw new NotFoundError(`image of container ${c.name} is gone`);
  const layers = engine.images.layers(rec);
  if (layers.some((l) => !/tar/.test(l.mediaType) || /encrypted/.test(l.mediaType))) return null;
  const dirs = layers.length > 0 ? await engine.snapshots.unpack(layers) : [];
  const sources: LayerSource[] = layers
    .map((l, i) => ({ dir: dirs[layers.length - 1 - i]!, blob: () => engine.content.read(l.digest) as AsyncIterable<Buffer> }))
    .reverse();
  const cdir = engine.containers.pathOf(c.id);
  return prepareMerge([path.join(cdir, 'upper'), engine.manager.initLayer(c)], sources);
}
