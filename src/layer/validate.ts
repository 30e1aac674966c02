// The rules an entry of a layer must keep to be unpacked at all, checked when the layer is stored (import, load,
// pull, commit), so a layer that could never be unpacked is refused there, in one line, with nothing stored
// (as podman refuses it when it stores it), not at the first `run`. apply.ts unpacks by the same path rules.
import { InvalidArchiveError } from '../errors.js';
import type { TarHeader } from '../tar/index.js';

/** Longest relative path an entry may have (PATH_MAX less the NUL): a longer one cannot be created. */
export const MAX_ENTRY_PATH = 4095;
/** Longest path component (NAME_MAX). */
export const MAX_COMPONENT = 255;
/** Largest uid/gid (uid_t; (uid_t)-1 means "unchanged" to chown). */
const MAX_ID = 0xfffffffe;
/** Device numbers Linux can encode in a dev_t. */
const MAX_MAJOR = 0xfff;
const MAX_MINOR = 0xfffff;

const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_META_PREFIX = '.wh..wh.';

/** An entry name split into components: leading '/' and './' stripped, '.' and empty components dropped; '..' refused. */
export function splitEntryPath(name: string, what = 'tar entry'): string[] {
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') throw new InvalidArchiveError(`${what} '${name}': path contains '..'`);
    out.push(c);
  }
  return out;
}

/**
 * Normalises a tar entry name to a relative path ('a/b/c'): leading '/' and './' are stripped, '.' and empty
 * components dropped. Returns null for the root itself ('.', './', '/'). Throws InvalidArchiveError if a
 * component is '..'.
 */
export function normalizeEntryPath(name: string): string | null {
  const parts = splitEntryPath(name);
  return parts.length === 0 ? null : parts.join('/');
}

const shown = (s: string) => (s.length > 80 ? `${s.slice(0, 40)}…${s.slice(-30)} (${s.length} bytes)` : s);

function checkPath(parts: string[], name: string, what: string): void {
  for (const c of parts) {
    if (Buffer.byteLength(c) > MAX_COMPONENT) throw new InvalidArchiveError(`${what} '${shown(name)}': a path component is longer than ${MAX_COMPONENT} bytes`);
  }
  if (Buffer.byteLength(parts.join('/')) > MAX_ENTRY_PATH) {
    throw new InvalidArchiveError(`${what} '${shown(name)}': path longer than ${MAX_ENTRY_PATH} bytes (${parts.length} levels)`);
  }
}

/** Throws InvalidArchiveError for an entry no unpack could create. */
export function checkUnpackable(h: TarHeader): void {
  const parts = splitEntryPath(h.name);
  checkPath(parts, h.name, 'tar entry');
  if (parts.length === 0 && h.type !== 'dir') throw new InvalidArchiveError(`tar entry '${h.name}': only a directory can be the root`);
  const base = parts[parts.length - 1] ?? '';
  if (base.startsWith(WHITEOUT_PREFIX) && !base.startsWith(WHITEOUT_META_PREFIX)) {
    const hidden = base.slice(WHITEOUT_PREFIX.length);
    if (hidden === '' || hidden === '.' || hidden === '..') throw new InvalidArchiveError(`tar entry '${shown(h.name)}': invalid whiteout`);
  }
  if (h.type === 'link') {
    const target = splitEntryPath(h.linkname ?? '', `hardlink '${shown(h.name)}' target`);
    checkPath(target, h.linkname ?? '', `hardlink '${shown(h.name)}' target`);
    if (target.length === 0) throw new InvalidArchiveError(`hardlink '${shown(h.name)}' has no target`);
    if (target.join('/') === parts.join('/')) throw new InvalidArchiveError(`hardlink '${shown(h.name)}' links to itself`);
  }
  if (h.type === 'symlink' && Buffer.byteLength(h.linkname ?? '') > MAX_ENTRY_PATH) {
    throw new InvalidArchiveError(`symlink '${shown(h.name)}': target longer than ${MAX_ENTRY_PATH} bytes`);
  }
  if (!(h.uid >= 0 && h.uid <= MAX_ID) || !(h.gid >= 0 && h.gid <= MAX_ID)) {
    throw new InvalidArchiveError(`tar entry '${shown(h.name)}': owner ${h.uid}:${h.gid} is out of range`);
  }
  if ((h.type === 'chardev' || h.type === 'blockdev') && (!((h.devmajor ?? 0) <= MAX_MAJOR) || !((h.devminor ?? 0) <= MAX_MINOR))) {
    throw new InvalidArchiveError(`tar entry '${shown(h.name)}': device ${h.devmajor}:${h.devminor} is out of range`);
  }
}
