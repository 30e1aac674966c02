// COPY and ADD without a container: the layer is a tar written directly from the sources, placed at the
// destination as docker places it (a directory's contents go into the destination; one file to a path that is
// not an existing directory and does not end in '/' names the file; several sources need a directory), with
// the destination's existing parent directories recorded with their own metadata so the layer changes nothing
// else, missing ones created (0755), owners 0:0 (context) or kept (--from) unless --chown, --chmod applied.
// ADD extracts local tar archives (plain, gzip, bzip2, xz) into the destination.

import fs from 'node:fs';
import path from 'node:path';
import { PlyError } from '../errors.js';
import { decompressed, detectCompression } from '../layer/compression.js';
import { normalizeEntryPath } from '../layer/apply.js';
import { isTarHeaderBlock, readTar, type TarHeader, type TarWriter } from '../tar/index.js';
import { resolveInRoot } from '../util/rootpath.js';
import type { FsEntry, SourceMatch } from './context.js';

export type CopyItem =
  | { kind: 'match'; match: SourceMatch }
  | { kind: 'content'; name: string; data: Buffer; mode: number; mtime?: number }
  | { kind: 'archive'; abs: string };

export interface CopyRequest {
  /** The destination image's filesystem, read-only (null: empty, as FROM scratch). */
  rootfs: string | null;
  /** Absolute path in the image (WORKDIR already applied); a trailing '/' means a directory. */
  dest: string;
  items: CopyItem[];
  /** Several sources (or wildcard matches): the destination is a directory. */
  forceDir: boolean;
  owner?: { uid: number; gid: number };
  chmod?: number;
  /** Seconds: the mtime of directories this COPY creates and of heredoc files. */
  now: number;
  /** SOURCE_DATE_EPOCH: later mtimes are clamped down to it. */
  clamp?: number;
}

interface LayerEntry {
  header: TarHeader;
  source?: string;
  data?: Buffer;
}

/** Sorts paths so that a directory comes before everything in it (component-wise byte order). */
function comparePaths(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i]! < pb[i]! ? -1 : 1;
  }
  return pa.length - pb.length;
}

function join(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

/** Whether a local file is a tar archive ADD should extract (plain, gzip, bzip2 or xz). */
export async function isArchive(abs: string): Promise<boolean> {
  const fd = fs.openSync(abs, 'r');
  const head = Buffer.alloc(512);
  let n: number;
  try {
    n = fs.readSync(fd, head, 0, 512, 0);
  } finally {
    fs.closeSync(fd);
  }
  const c = detectCompression(head.subarray(0, n));
  if (c === 'zstd') return false;
  if (c === 'none') return n === 512 && isTarHeaderBlock(head);
  try {
    let got = Buffer.alloc(0);
    const stream = fs.createReadStream(abs, { start: 0, end: 1 << 20 });
    try {
      for await (const chunk of decompressed(stream)) {
        got = Buffer.concat([got, chunk]);
        if (got.length >= 512) break;
      }
    } finally {
      stream.destroy();
    }
    return got.length >= 512 && isTarHeaderBlock(got.subarray(0, 512));
  } catch {
    return false;
  }
}

export class CopyWriter {
  private readonly entries = new Map<string, LayerEntry>();
  private readonly archives: { abs: string; dir: string }[] = [];

  constructor(private readonly req: CopyRequest) {}

  private mtime(t: number): number {
    return this.req.clamp !== undefined && t > this.req.clamp ? this.req.clamp : t;
  }

  /** A path inside the image with its symlinks resolved inside the rootfs, relative ('' for '/'). */
  private real(p: string): string {
    if (!this.req.rootfs) return path.posix.normalize(`/${p}`).slice(1).replace(/\/$/, '');
    return path.relative(this.req.rootfs, resolveInRoot(this.req.rootfs, p)).split(path.sep).join('/');
  }

  private existing(rel: string): fs.Stats | undefined {
    if (!this.req.rootfs || rel === '') return undefined;
    return fs.lstatSync(path.join(this.req.rootfs, rel), { throwIfNoEntry: false });
  }

  /** Records `rel` and its parents as directories: existing ones with their metadata, missing ones created. */
  private ensureDir(rel: string): void {
    if (rel === '') return;
    const parts = rel.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const p = parts.slice(0, i).join('/');
      if (this.entries.has(p)) continue;
      const st = this.existing(p);
      if (st && !st.isDirectory()) throw new PlyError(`cannot copy to non-directory: /${p}`);
      const header: TarHeader = st
        ? { name: `${p}/`, type: 'dir', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: 0, mtime: Math.floor(st.mtimeMs / 1000) }
        : {
            name: `${p}/`,
            type: 'dir',
            mode: 0o755,
            uid: this.req.owner?.uid ?? 0,
            gid: this.req.owner?.gid ?? 0,
            size: 0,
            mtime: this.mtime(this.req.now),
          };
      this.entries.set(p, { header });
    }
  }

  private addEntry(rel: string, e: FsEntry): void {
    if (rel === '') return;
    const owner = this.req.owner ?? { uid: e.uid, gid: e.gid };
    const mode = this.req.chmod !== undefined && e.type !== 'symlink' ? this.req.chmod : e.mode;
    const header: TarHeader = {
      name: e.type === 'dir' ? `${rel}/` : rel,
      type: e.type,
      mode,
      uid: owner.uid,
      gid: owner.gid,
      size: e.type === 'file' ? e.size : 0,
      mtime: this.mtime(e.mtime),
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
    };
    this.entries.delete(rel);
    this.entries.set(rel, { header, ...(e.type === 'file' ? { source: e.abs } : {}) });
  }

  /** Works out every entry (reading the destination's metadata); the archives are read when writing. */
  plan(): void {
    const { dest, items } = this.req;
    const single = items.length === 1 ? items[0]! : undefined;
    const singleFile = single && !this.req.forceDir && !dest.endsWith('/') && (single.kind === 'content' || (single.kind === 'match' && !single.match.isDir));
    let fileTarget: { dir: string; name: string } | undefined;
    if (singleFile) {
      const realDest = this.real(dest);
      const st = this.req.rootfs && realDest !== '' ? fs.statSync(path.join(this.req.rootfs, realDest), { throwIfNoEntry: false }) : undefined;
      if (!(st?.isDirectory() || realDest === '')) {
        const parentReal = this.real(path.posix.dirname(dest));
        fileTarget = { dir: parentReal, name: path.posix.basename(dest) };
      }
    }
    if (fileTarget) {
      this.ensureDir(fileTarget.dir);
      const target = join(fileTarget.dir, fileTarget.name);
      const existing = this.existing(target);
      if (existing?.isDirectory()) throw new PlyError(`cannot replace directory /${target} with a file`);
      this.addItemFile(single!, target);
      return;
    }
    const dir = this.real(dest);
    this.ensureDir(dir);
    for (const item of items) {
      if (item.kind === 'archive') {
        this.archives.push({ abs: item.abs, dir });
      } else if (item.kind === 'content') {
        this.addItemFile(item, join(dir, item.name));
      } else if (item.match.isDir) {
        this.addTree(item.match.entries, dir);
      } else {
        const e = item.match.entries[0]!;
        this.addEntry(join(dir, path.posix.basename(item.match.rel) || e.rel), e);
      }
    }
  }

  /**
   * A directory's contents into `dir`. A subdirectory that exists in the image as a symlink to a directory
   * (`COPY rootfs/ /` onto `/lib -> usr/lib`) is followed, not replaced.
   */
  private addTree(entries: FsEntry[], dir: string): void {
    const dirs = new Map<string, string>([['', dir]]);
    for (const e of entries) {
      if (e.rel === '') continue;
      const slash = e.rel.lastIndexOf('/');
      const parent = dirs.get(slash < 0 ? '' : e.rel.slice(0, slash)) ?? dir;
      const target = join(parent, slash < 0 ? e.rel : e.rel.slice(slash + 1));
      if (e.type === 'dir') {
        const st = this.existing(target);
        if (st?.isSymbolicLink()) {
          const real = this.real(`/${target}`);
          const rst = this.existing(real);
          if (rst?.isDirectory()) {
            this.ensureDir(real);
            dirs.set(e.rel, real);
            continue;
          }
        }
        dirs.set(e.rel, target);
      }
      this.addEntry(target, e);
    }
  }

  private addItemFile(item: CopyItem, target: string): void {
    if (item.kind === 'content') {
      const owner = this.req.owner ?? { uid: 0, gid: 0 };
      this.entries.set(target, {
        header: {
          name: target,
          type: 'file',
          mode: this.req.chmod ?? item.mode,
          uid: owner.uid,
          gid: owner.gid,
          size: item.data.length,
          mtime: this.mtime(item.mtime ?? this.req.now),
        },
        data: item.data,
      });
    } else if (item.kind === 'match') {
      this.addEntry(target, item.match.entries[0]!);
    }
  }

  /** Writes the layer (does not finish the writer). */
  async write(writer: TarWriter): Promise<void> {
    const keys = [...this.entries.keys()].sort(comparePaths);
    for (const k of keys) {
      const e = this.entries.get(k)!;
      if (e.data) await writer.add(e.header, e.data);
      else if (e.source) {
        const size = e.header.size;
        if (size <= 1 << 20) await writer.add(e.header, readExact(e.source, size));
        else await writer.add(e.header, fs.createReadStream(e.source, { highWaterMark: 1 << 20 }));
      } else await writer.add(e.header);
    }
    for (const a of this.archives) await this.extract(a.abs, a.dir, writer);
  }

  private async extract(abs: string, dir: string, writer: TarWriter): Promise<void> {
    const prefix = (name: string): string | null => {
      const n = normalizeEntryPath(name);
      return n === null ? null : join(dir, n);
    };
    for await (const entry of readTar(decompressed(fs.createReadStream(abs, { highWaterMark: 1 << 20 })))) {
      const h = entry.header;
      const name = prefix(h.name);
      if (name === null) {
        for await (const _ of entry.body) void _;
        continue;
      }
      const header: TarHeader = {
        ...h,
        name: h.type === 'dir' ? `${name}/` : name,
        mtime: this.mtime(Math.floor(h.mtime)),
        ...(this.req.owner ? { uid: this.req.owner.uid, gid: this.req.owner.gid } : {}),
      };
      delete header.uname;
      delete header.gname;
      if (h.type === 'link' && h.linkname !== undefined) {
        const target = prefix(h.linkname);
        if (target === null) throw new PlyError(`invalid hardlink ${h.name} -> ${h.linkname} in ${path.basename(abs)}`);
        header.linkname = target;
      }
      await writer.add(header, h.type === 'file' ? entry.body : undefined);
      if (h.type !== 'file') for await (const _ of entry.body) void _;
    }
  }
}

function readExact(file: string, size: number): Buffer {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const buf = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const n = fs.readSync(fd, buf, got, size - got, got);
      if (n === 0) throw new PlyError(`${file} changed while being copied`);
      got += n;
    }
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}
