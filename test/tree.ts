// Describing a directory tree the way a layer carries it, to compare trees in tests.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import * as native from '../src/native/index.js';

export interface Desc {
  type: string;
  mode?: number;
  uid: number;
  gid: number;
  mtime: number;
  size?: number;
  sha?: string;
  link?: string;
  rdev?: number;
  xattrs: Record<string, string>;
  /** Other names of the same inode (non-directories with several links). */
  links?: string[];
}

export function typeOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'dir';
  if (st.isFile()) return 'file';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'chardev';
  if (st.isBlockDevice()) return 'blockdev';
  if (st.isFIFO()) return 'fifo';
  return 'other';
}

/** Everything below `dir` (not `dir` itself) that a layer can carry; `dirMtimes: false` zeroes directory mtimes. */
export function describeTree(dir: string, opts: { dirMtimes?: boolean } = {}): Record<string, Desc> {
  const out: Record<string, Desc> = {};
  const inodes = new Map<number, string[]>();
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = path.join(dir, r);
      const st = fs.lstatSync(p);
      const type = typeOf(st);
      const xattrs: Record<string, string> = {};
      for (const x of native.llistxattr(p).sort()) xattrs[x] = native.lgetxattr(p, x)!.toString('hex');
      const d: Desc = { type, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000), xattrs };
      if (type !== 'symlink') d.mode = st.mode & 0o7777;
      if (type === 'dir' && opts.dirMtimes === false) d.mtime = 0;
      if (type === 'file') {
        d.size = st.size;
        d.sha = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
      }
      if (type === 'symlink') d.link = fs.readlinkSync(p);
      if (type === 'chardev' || type === 'blockdev') d.rdev = st.rdev;
      if (type !== 'dir' && st.nlink > 1) {
        const l = inodes.get(st.ino) ?? [];
        l.push(r);
        inodes.set(st.ino, l);
      }
      out[r] = d;
      if (type === 'dir') walk(r);
    }
  };
  walk('');
  for (const names of inodes.values()) for (const n of names) out[n]!.links = names;
  return out;
}
