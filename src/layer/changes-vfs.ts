/**
 * Changes of a plain directory tree against a manifest of what it held (the vfs storage driver's writable
 * layer, see src/snapshot/vfs.ts): `diff`, the layer tar of `commit` and RUN, and the layer's size.
 *
 * The manifest lists every path below the tree with its inode, ctime, mtime, size, mode (type included), uid
 * and gid, one record per path: `F INO CTIME_NS MTIME_NS SIZE MODE UID GID PATH\0` (F: `i` for a path only the
 * container's init layer has, else `-`). A path that is gone was deleted; one whose inode, ctime (which any
 * write, chmod, chown, link or rename-in changes, and which no one can set), type or other fields differ was
 * changed; one the manifest lacks was added. As docker's diff, the parent directories of every change count as
 * changed, and a deleted directory is one deletion (its contents are not listed). A directory removed and made
 * again is opaque, as overlayfs makes it: what the image had below it is hidden (not listed as deleted), and
 * what it holds now is all part of the layer.
 */

import fs from 'node:fs';
import path from 'node:path';
import { PlyError } from '../errors.js';
import type { TarHeader, TarWriter } from '../tar/index.js';
import { writeTree } from './diff.js';

export interface VfsChange {
  kind: 'A' | 'C' | 'D';
  /** Relative to the tree, no leading '/'. */
  rel: string;
  /** The path's current lstat (A and C). */
  st?: fs.BigIntStats;
  /**
   * A directory that replaced the one the manifest lists (another inode: removed and made again): it hides
   * everything below it in the image, like an opaque overlay directory, and all it holds is part of the layer.
   */
  opaque?: boolean;
}

interface ManifestEntry {
  initOnly: boolean;
  ino: bigint;
  ctime: bigint;
  mtime: bigint;
  size: bigint;
  mode: bigint;
  uid: bigint;
  gid: bigint;
}

const MAGIC = 'ply-vfs-manifest 1\0';

/**
 * Calls `visit` for every path below `tree` (parents before children), with its lstat. Iterative, and each entry
 * is reached from its directory's descriptor: a container may nest directories deeper than PATH_MAX or than a
 * call stack allows.
 */
function walk(tree: string, visit: (rel: string, st: fs.BigIntStats) => void): void {
  const flags = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW;
  const stack: { fd: number; rel: string; names: string[] }[] = [];
  const enter = (p: string, rel: string) => {
    let fd: number;
    try {
      fd = fs.openSync(p, flags);
    } catch (e) {
      if (rel !== '' && ['ENOENT', 'ENOTDIR', 'ELOOP'].includes((e as NodeJS.ErrnoException).code ?? '')) return; // changed meanwhile
      throw e;
    }
    try {
      stack.push({ fd, rel, names: fs.readdirSync(`/proc/self/fd/${fd}`).reverse() });
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  };
  enter(tree, '');
  try {
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const name = top.names.pop();
      if (name === undefined) {
        stack.pop();
        fs.closeSync(top.fd);
        continue;
      }
      const r = top.rel === '' ? name : `${top.rel}/${name}`;
      const st = fs.lstatSync(`/proc/self/fd/${top.fd}/${name}`, { bigint: true, throwIfNoEntry: false });
      if (st === undefined) continue;
      visit(r, st);
      if (st.isDirectory()) enter(`/proc/self/fd/${top.fd}/${name}`, r);
    }
  } finally {
    for (const f of stack) fs.closeSync(f.fd);
  }
}

/** Writes the manifest of `tree` to `file` (atomically). `initOnly`: paths only the init layer has. */
export function writeVfsManifest(tree: string, file: string, initOnly: Set<string>): void {
  const parts: string[] = [MAGIC];
  walk(tree, (rel, st) => {
    parts.push(`${initOnly.has(rel) ? 'i' : '-'} ${st.ino} ${st.ctimeNs} ${st.mtimeNs} ${st.size} ${st.mode} ${st.uid} ${st.gid} ${rel}\0`);
  });
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, parts.join(''));
  fs.renameSync(tmp, file);
}

function readManifest(file: string): Map<string, ManifestEntry> {
  const text = fs.readFileSync(file, 'utf8');
  if (!text.startsWith(MAGIC)) throw new PlyError(`${file}: not a ply vfs manifest`);
  const out = new Map<string, ManifestEntry>();
  let pos = MAGIC.length;
  while (pos < text.length) {
    const end = text.indexOf('\0', pos);
    if (end < 0) throw new PlyError(`${file}: truncated`);
    const f: string[] = [];
    let p = pos;
    for (let i = 0; i < 8; i++) {
      const sp = text.indexOf(' ', p);
      if (sp < 0 || sp > end) throw new PlyError(`${file}: bad record at byte ${pos}`);
      f.push(text.slice(p, sp));
      p = sp + 1;
    }
    out.set(text.slice(p, end), {
      initOnly: f[0] === 'i',
      ino: BigInt(f[1]!),
      ctime: BigInt(f[2]!),
      mtime: BigInt(f[3]!),
      size: BigInt(f[4]!),
      mode: BigInt(f[5]!),
      uid: BigInt(f[6]!),
      gid: BigInt(f[7]!),
    });
    pos = end + 1;
  }
  return out;
}

function differs(e: ManifestEntry, st: fs.BigIntStats): boolean {
  return (
    e.ino !== st.ino || e.ctime !== st.ctimeNs || e.mode !== st.mode || e.mtime !== st.mtimeNs || e.size !== st.size || e.uid !== st.uid || e.gid !== st.gid
  );
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/** What changed in `tree` since `manifestFile` was written, sorted by path (as `ply diff` lists them). */
export function vfsChanges(tree: string, manifestFile: string): VfsChange[] {
  const before = readManifest(manifestFile);
  const now = new Map<string, fs.BigIntStats>();
  walk(tree, (rel, st) => now.set(rel, st));
  const kinds = new Map<string, 'A' | 'C' | 'D'>();
  // A path only the init layer had is not the image's: changing it adds it, as overlay's diff says.
  const changedKind = (rel: string) => {
    const e = before.get(rel);
    return e === undefined || e.initOnly ? 'A' : 'C';
  };
  /** Replaced directories (see VfsChange.opaque), and every path below one. */
  const opaque = new Set<string>();
  const belowOpaque = new Set<string>();
  // `now` lists parents before their children.
  for (const [rel, st] of now) {
    const e = before.get(rel);
    const parent = parentOf(rel);
    if (parent !== '' && (opaque.has(parent) || belowOpaque.has(parent))) {
      belowOpaque.add(rel);
      kinds.set(rel, changedKind(rel));
    } else if (e === undefined || differs(e, st)) {
      kinds.set(rel, changedKind(rel));
    }
    if (e !== undefined && st.isDirectory() && (e.mode & 0o170000n) === 0o040000n && e.ino !== st.ino) opaque.add(rel);
  }
  for (const rel of before.keys()) {
    if (now.has(rel)) continue;
    const parent = parentOf(rel);
    // Below a deleted (or no longer a directory) parent, the parent's deletion says it all; below a replaced
    // directory, its opaqueness.
    if (parent === '' || (now.get(parent)?.isDirectory() && !opaque.has(parent) && !belowOpaque.has(parent))) kinds.set(rel, 'D');
  }
  for (const rel of [...kinds.keys()]) {
    for (let p = parentOf(rel); p !== '' && !kinds.has(p); p = parentOf(p)) kinds.set(p, changedKind(p));
  }
  const out: VfsChange[] = [...kinds].map(([rel, kind]) =>
    kind === 'D' ? { kind, rel } : { kind, rel, st: now.get(rel), ...(opaque.has(rel) ? { opaque: true } : {}) },
  );
  return out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}

/** Bytes of the regular files added or changed (hardlinks counted once), as `ps -s` and `system df` show. */
export function vfsLayerSize(tree: string, manifestFile: string): number {
  const seen = new Set<string>();
  let n = 0;
  for (const c of vfsChanges(tree, manifestFile)) {
    if (!c.st?.isFile()) continue;
    const key = `${c.st.dev}:${c.st.ino}`;
    if (seen.has(key)) continue;
    seen.add(key);
    n += Number(c.st.size);
  }
  return n;
}

function sourceDateEpoch(): number | undefined {
  const v = process.env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '' || !/^[0-9]{1,15}$/.test(v)) return undefined; // writeUpperDiff's rules refuse bad values
  return Number(v);
}

/**
 * Writes the layer tar of `tree`'s changes (see vfsChanges) to `writer`: the added and changed entries with
 * their parent directories (writeTree's format: hardlinks, xattrs, owners, modes, mtimes), and an empty
 * `.wh.NAME` file for each deleted path, right after its directory's entry (first, for the root's), and a
 * `.wh..wh..opq` one after each opaque directory's entry (see vfsChanges). Mtimes are
 * clamped to SOURCE_DATE_EPOCH when it is set, as for overlay layers. Returns the number of changes; does not
 * finish the writer. `quiescent` as for writeTree.
 */
export async function writeVfsLayer(
  tree: string,
  manifestFile: string,
  writer: TarWriter,
  opts: { quiescent?: boolean; changes?: VfsChange[]; clamp?: number } = {},
): Promise<number> {
  const changes = opts.changes ?? vfsChanges(tree, manifestFile);
  const wanted = new Set<string>();
  const opaque = new Set<string>();
  const whiteouts = new Map<string, string[]>();
  for (const c of changes) {
    if (c.kind !== 'D') {
      wanted.add(c.rel);
      if (c.opaque) opaque.add(c.rel);
      continue;
    }
    const dir = parentOf(c.rel);
    const list = whiteouts.get(dir) ?? [];
    list.push(c.rel.slice(dir === '' ? 0 : dir.length + 1));
    whiteouts.set(dir, list);
  }
  const clamp = opts.clamp ?? sourceDateEpoch();
  const clamped = (t: number) => (clamp !== undefined && t > clamp ? clamp : t);
  const emit = async (dir: string) => {
    const names = whiteouts.get(dir);
    if (!names) return;
    whiteouts.delete(dir);
    const st = fs.lstatSync(dir === '' ? tree : path.join(tree, dir), { throwIfNoEntry: false });
    const mtime = clamped(st ? Math.floor(st.mtimeMs / 1000) : 0);
    for (const name of names.sort()) {
      const wh = `${dir === '' ? '' : `${dir}/`}.wh.${name}`;
      await writer.add({ name: wh, type: 'file', mode: 0o600, uid: 0, gid: 0, size: 0, mtime });
    }
  };
  let started = false;
  // The tree's entries go through here: the root's whiteouts first, a directory's right after it.
  const add = async (h: TarHeader, body?: Parameters<TarWriter['add']>[1]) => {
    if (!started) {
      started = true;
      await emit('');
    }
    const entry = clamp !== undefined && h.mtime > clamp ? { ...h, mtime: clamp } : h;
    await writer.add(entry, body);
    if (h.type !== 'dir') return;
    const rel = h.name.replace(/\/$/, '');
    if (opaque.has(rel)) {
      // As writeUpperDiff writes an opaque overlay directory's marker.
      await writer.add({ name: `${rel}/.wh..wh..opq`, type: 'file', mode: entry.mode & 0o777, uid: entry.uid, gid: entry.gid, size: 0, mtime: entry.mtime });
    }
    await emit(rel);
  };
  const out = new Proxy(writer, {
    get(target, prop) {
      if (prop === 'add') return add;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  await writeTree(tree, out, { skip: (rel) => !wanted.has(rel), quiescent: opts.quiescent });
  if (!started) await emit('');
  // Whiteouts whose directory went away meanwhile are dropped: that directory is not in the tree any more.
  return changes.length;
}
