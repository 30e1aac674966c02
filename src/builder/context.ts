// The build context and COPY/ADD sources: a directory (or a tar read into one), filtered by .dockerignore;
// source paths and wildcards resolved as docker does; a content checksum of what a COPY would write (paths,
// types, modes, contents, link targets — never mtimes, so `touch` keeps the cache).

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PlyError } from '../errors.js';
import { resolveInRoot } from '../util/rootpath.js';
import { cleanPath, globMatch, hasWildcards, PatternMatcher, readIgnorePatterns, unescapeGlob } from './ignore.js';

/** A COPY/ADD source problem: docker's `COPY failed: …` messages. */
export class SourceError extends PlyError {
  override exitCode = 1;
}

export type EntryType = 'file' | 'dir' | 'symlink';

/** One file, directory or symlink a COPY would write. */
export interface FsEntry {
  /** Path relative to the copied item ('' for a copied directory itself), '/'-separated. */
  rel: string;
  abs: string;
  type: EntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch (whole). */
  mtime: number;
  linkname?: string;
}

/** One match of a source: a directory (its contents are copied) or a single file/symlink. */
export interface SourceMatch {
  /** Path relative to the source root. */
  rel: string;
  abs: string;
  isDir: boolean;
  /** For a directory: every entry below it (parents first, names sorted); for a file: the file itself. */
  entries: FsEntry[];
}

export interface ResolvedSource {
  spec: string;
  wildcard: boolean;
  matches: SourceMatch[];
}

/** A tree COPY can read from: the build context (with its ignore rules) or another image's filesystem. */
export class SourceTree {
  private readonly hashes = new Map<string, string>();

  constructor(
    readonly root: string,
    readonly matcher: PatternMatcher | null = null,
    /** Context files are written as root:root; an image's keep their owners. */
    readonly keepOwners = false,
  ) {}

  excluded(rel: string): boolean {
    return this.matcher !== null && rel !== '' && this.matcher.matches(rel);
  }

  /**
   * Resolves one COPY/ADD source (already variable-expanded). `what` names the instruction for the messages.
   * Non-wildcard sources follow symlinks inside the tree; wildcards match each path component as Go's
   * filepath.Match does.
   */
  resolve(spec: string, what = 'COPY'): ResolvedSource {
    const clean = cleanPath(`/${spec}`).slice(1);
    if (hasWildcards(clean)) {
      const matches: SourceMatch[] = [];
      this.glob(clean.split('/'), '', matches);
      if (matches.length === 0) throw new SourceError(`${what} failed: no source files were specified`);
      return { spec, wildcard: true, matches };
    }
    const rel = unescapeGlob(clean);
    const notFound = () => new SourceError(`${what} failed: file not found in build context or excluded by .dockerignore: stat ${rel || '.'}: file does not exist`);
    const abs = resolveInRoot(this.root, rel);
    const st = fs.statSync(abs, { throwIfNoEntry: false });
    if (!st) throw notFound();
    const realRel = path.relative(this.root, abs).split(path.sep).join('/');
    if (st.isDirectory()) {
      const m = this.matchOf(realRel, abs, st);
      if (m.entries.length === 1 && this.excluded(realRel)) throw notFound();
      return { spec, wildcard: false, matches: [m] };
    }
    if (this.excluded(rel) || this.excluded(realRel)) throw notFound();
    // A symlink source is followed; the copy keeps the name it was asked for.
    return { spec, wildcard: false, matches: [this.matchOf(rel, abs, st)] };
  }

  private glob(parts: string[], dirRel: string, out: SourceMatch[]): void {
    const [part, ...rest] = parts;
    if (part === undefined) return;
    const dirAbs = dirRel === '' ? this.root : path.join(this.root, dirRel);
    let names: string[];
    if (hasWildcards(part)) {
      try {
        names = fs.readdirSync(dirAbs).sort().filter((n) => globMatch(part, n));
      } catch {
        return;
      }
    } else {
      names = [unescapeGlob(part)];
    }
    for (const name of names) {
      const rel = dirRel === '' ? name : `${dirRel}/${name}`;
      let abs = path.join(dirAbs, name);
      let lst = fs.lstatSync(abs, { throwIfNoEntry: false });
      if (!lst) continue;
      if (rest.length > 0) {
        if (lst.isDirectory()) this.glob(rest, rel, out);
        continue;
      }
      if (lst.isSymbolicLink()) {
        // Matched symlinks are followed (inside the tree), as a named source is.
        abs = resolveInRoot(this.root, rel);
        lst = fs.statSync(abs, { throwIfNoEntry: false });
        if (!lst) continue;
      }
      if (this.excluded(rel) && !(lst.isDirectory() && this.matcher?.exclusions)) continue;
      const m = this.matchOf(rel, abs, lst);
      if (m.isDir && m.entries.length === 1 && this.excluded(rel)) continue;
      out.push(m);
    }
  }

  private matchOf(rel: string, abs: string, st: fs.Stats): SourceMatch {
    if (st.isDirectory()) {
      const entries: FsEntry[] = [this.entry('', abs, st)!];
      this.walk(abs, rel, '', entries);
      return { rel, abs, isDir: true, entries };
    }
    const e = this.entry(path.posix.basename(rel), abs, st);
    if (!e) throw new SourceError(`cannot copy ${rel}: not a regular file, directory or symlink`);
    return { rel, abs, isDir: false, entries: [e] };
  }

  private entry(rel: string, abs: string, st: fs.Stats): FsEntry | undefined {
    let type: EntryType;
    let linkname: string | undefined;
    if (st.isDirectory()) type = 'dir';
    else if (st.isFile()) type = 'file';
    else if (st.isSymbolicLink()) {
      type = 'symlink';
      linkname = fs.readlinkSync(abs);
    } else return undefined; // sockets, fifos, devices are not copied
    return {
      rel,
      abs,
      type,
      mode: st.mode & 0o7777,
      uid: this.keepOwners ? st.uid : 0,
      gid: this.keepOwners ? st.gid : 0,
      size: type === 'file' ? st.size : 0,
      mtime: Math.floor(st.mtimeMs / 1000),
      ...(linkname !== undefined ? { linkname } : {}),
    };
  }

  /** Entries below a directory, depth first, names sorted; excluded paths left out (and their parents kept). */
  private walk(dirAbs: string, treeRel: string, rel: string, out: FsEntry[]): void {
    let names: string[];
    try {
      names = fs.readdirSync(dirAbs).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const abs = `${dirAbs}/${name}`;
      const childTreeRel = treeRel === '' ? name : `${treeRel}/${name}`;
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const st = fs.lstatSync(abs, { throwIfNoEntry: false });
      if (!st) continue;
      const excluded = this.excluded(childTreeRel);
      if (excluded && !(st.isDirectory() && this.matcher?.exclusions && this.matcher.exceptionsMayMatchInside(childTreeRel))) continue;
      const e = this.entry(childRel, abs, st);
      if (!e) continue;
      if (e.type === 'dir') {
        const at = out.length;
        out.push(e);
        this.walk(abs, childTreeRel, childRel, out);
        // An excluded directory is only kept as the parent of something an exception brought back.
        if (excluded && out.length === at + 1) out.pop();
      } else {
        out.push(e);
      }
    }
  }

  /** sha256 of a file's content (memoised for the build). */
  contentHash(abs: string): string {
    const known = this.hashes.get(abs);
    if (known) return known;
    const h = createHash('sha256');
    const fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        const n = fs.readSync(fd, buf, 0, buf.length, null);
        if (n === 0) break;
        h.update(n === buf.length ? buf : buf.subarray(0, n));
      }
    } finally {
      fs.closeSync(fd);
    }
    const d = h.digest('hex');
    this.hashes.set(abs, d);
    return d;
  }

  /** The checksum of resolved sources: what would be written, without times (and without owners for context files). */
  checksum(sources: ResolvedSource[]): string {
    const h = createHash('sha256');
    for (const s of sources) {
      h.update(`source ${s.spec}\0${s.wildcard}\n`);
      for (const m of s.matches) {
        h.update(`match ${m.rel}\0${m.isDir}\n`);
        for (const e of m.entries) {
          const body = e.type === 'file' ? this.contentHash(e.abs) : (e.linkname ?? '');
          const owner = this.keepOwners ? `${e.uid}:${e.gid}` : '';
          h.update(`${e.rel}\0${e.type}\0${e.mode.toString(8)}\0${owner}\0${e.size}\0${body}\n`);
        }
      }
    }
    return h.digest('hex');
  }
}

/**
 * The context's ignore rules: `<Dockerfile>.dockerignore` next to the Dockerfile wins over the context's
 * `.dockerignore` (buildkit). Returns null when there is neither.
 */
export function loadIgnoreRules(contextDir: string, dockerfilePath?: string): PatternMatcher | null {
  const candidates: string[] = [];
  if (dockerfilePath) candidates.push(`${dockerfilePath}.dockerignore`);
  candidates.push(path.join(contextDir, '.dockerignore'));
  for (const file of candidates) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const m = new PatternMatcher(readIgnorePatterns(text));
    return m.empty ? null : m;
  }
  return null;
}
