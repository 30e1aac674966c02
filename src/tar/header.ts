/** Tar header types plus the shared encode/decode of ustar/GNU/PAX header fields used by the reader and the writer. */

import { InvalidArchiveError, InvalidArgumentError, UnsupportedError } from '../errors.js';

export type EntryType = 'file' | 'link' | 'symlink' | 'chardev' | 'blockdev' | 'dir' | 'fifo';

export interface TarHeader {
  /** Path as in the archive (after PAX/GNU long-name resolution), no normalisation. */
  name: string;
  type: EntryType;
  /** Permission plus setuid/setgid/sticky bits (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  uname?: string;
  gname?: string;
  /** Body size (0 for non-files). */
  size: number;
  /** Seconds since the epoch, may be fractional (PAX). */
  mtime: number;
  /** Target of a hardlink or symlink. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes, from SCHILY.xattr.* PAX records (values are raw bytes). */
  xattrs?: Map<string, Buffer>;
  /** Other PAX records, as read (for round-tripping unknown keys). */
  pax?: Record<string, string>;
}

export interface HeaderOptions {
  /** Write a PAX mtime record carrying the fractional part of mtime (default false: mtime is floored to whole seconds). */
  fractionalMtime?: boolean;
}

export const BLOCK = 512;
/** Largest PAX extended header body accepted or written (same bound as Go's archive/tar). */
export const MAX_PAX_SIZE = 1 << 20;
/** Largest GNU long name/link or PAX path accepted. */
export const MAX_NAME_SIZE = 64 << 10;

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
const ZERO_BLOCK = Buffer.alloc(BLOCK);

/** Zero padding (a shared read-only buffer) needed after `size` bytes of body. */
export function padding(size: number): Buffer {
  const r = size & (BLOCK - 1);
  return r === 0 ? ZERO_BLOCK.subarray(0, 0) : ZERO_BLOCK.subarray(0, BLOCK - r);
}

/** Number of padding bytes after `size` bytes of body. */
export function padLength(size: number): number {
  const r = size % BLOCK;
  return r === 0 ? 0 : BLOCK - r;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** Typeflag byte -> entry type for the entry kinds we expose. */
export function typeFromFlag(flag: number): EntryType | undefined {
  switch (flag) {
    case 0x30: // '0'
    case 0x00: // '\0' (old regular file)
    case 0x37: // '7' contiguous file, treated as regular
      return 'file';
    case 0x31:
      return 'link';
    case 0x32:
      return 'symlink';
    case 0x33:
      return 'chardev';
    case 0x34:
      return 'blockdev';
    case 0x35:
    case 0x44: // 'D' GNU dumpdir: a directory whose body lists its contents
      return 'dir';
    case 0x36:
      return 'fifo';
    default:
      return undefined;
  }
}

/** True if the block is 512 zero bytes. */
export function isZeroBlock(b: Buffer, off = 0): boolean {
  if (b[off] !== 0) return false;
  for (let i = off; i < off + BLOCK; i++) if (b[i] !== 0) return false;
  return true;
}

/** Parse the octal checksum field; -1 if it is not a valid number. */
function storedChecksum(b: Buffer, off: number): number {
  let i = off + 148;
  const end = off + 156;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  if (i === end) return -1;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = b[i];
    if (c >= 0x30 && c <= 0x37) {
      v = v * 8 + (c - 0x30);
      digits++;
    } else if (c === 0x20 || c === 0) break;
    else return -1;
  }
  for (; i < end; i++) if (b[i] !== 0x20 && b[i] !== 0) return -1;
  return digits === 0 ? -1 : v;
}

/** Verify the header checksum (both the unsigned and the historical signed sum are accepted). */
export function checksumOk(b: Buffer, off = 0): boolean {
  const want = storedChecksum(b, off);
  if (want < 0) return false;
  let u = 0;
  let s = 0;
  for (let i = off; i < off + 148; i++) {
    const c = b[i];
    u += c;
    s += c > 127 ? c - 256 : c;
  }
  for (let i = off + 156; i < off + BLOCK; i++) {
    const c = b[i];
    u += c;
    s += c > 127 ? c - 256 : c;
  }
  u += 8 * 0x20;
  s += 8 * 0x20;
  return want === u || want === s;
}

export type Magic = 'ustar' | 'gnu' | 'v7' | 'unknown';

/** Classify the magic/version fields of a header block. */
export function magicOf(b: Buffer, off = 0): Magic {
  const m = off + 257;
  // "ustar\0" + "00"
  if (b[m] === 0x75 && b[m + 1] === 0x73 && b[m + 2] === 0x74 && b[m + 3] === 0x61 && b[m + 4] === 0x72) {
    if (b[m + 5] === 0 && b[m + 6] === 0x30 && b[m + 7] === 0x30) return 'ustar';
    if (b[m + 5] === 0x20 && b[m + 6] === 0x20 && b[m + 7] === 0) return 'gnu';
    // Some writers emit "ustar\0" followed by spaces or NULs as version.
    if (b[m + 5] === 0) return 'ustar';
    return 'unknown';
  }
  for (let i = m; i < m + 8; i++) if (b[i] !== 0) return 'unknown';
  return 'v7';
}

/**
 * True if `block` (at least 512 bytes) looks like a tar header: valid checksum, a known magic
 * (ustar, GNU or none for v7) and a non-empty name. Used to sniff whether unknown input is a tar.
 */
export function isTarHeaderBlock(block: Buffer): boolean {
  if (block.length < BLOCK) return false;
  if (block[0] === 0) return false;
  if (magicOf(block) === 'unknown') return false;
  return checksumOk(block);
}

/**
 * Parse a numeric header field: octal (leading spaces/NULs, trailing space/NUL terminated) or
 * GNU base-256 (high bit of the first byte set, two's complement big-endian).
 * Returns NaN if the field is malformed or out of the safe integer range.
 */
export function parseNumeric(b: Buffer, off: number, len: number): number {
  const first = b[off];
  if (first & 0x80) {
    const neg = (first & 0x40) !== 0;
    const inv = neg ? 0xff : 0;
    let v = (first ^ inv) & 0x7f;
    for (let i = off + 1; i < off + len; i++) {
      v = v * 256 + (b[i] ^ inv);
      if (v > MAX_SAFE) return NaN;
    }
    return neg ? -v - 1 : v;
  }
  let i = off;
  const end = off + len;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  let v = 0;
  for (; i < end; i++) {
    const c = b[i];
    if (c >= 0x30 && c <= 0x37) v = v * 8 + (c - 0x30);
    else if (c === 0x20 || c === 0) break;
    else return NaN;
  }
  for (; i < end; i++) if (b[i] !== 0x20 && b[i] !== 0) return NaN;
  return v > MAX_SAFE ? NaN : v;
}

/** Decode a NUL-terminated string field (bytes are interpreted as UTF-8). */
export function parseString(b: Buffer, off: number, len: number): string {
  let end = b.indexOf(0, off);
  if (end < 0 || end > off + len) end = off + len;
  if (end === off) return '';
  return b.toString('utf8', off, end);
}

/** Decode a GNU long name/link body: the bytes up to the first NUL, as UTF-8. */
export function parseLongName(data: Buffer): string {
  const end = data.indexOf(0);
  return data.toString('utf8', 0, end < 0 ? data.length : end);
}

/**
 * Parse a PAX extended header body ("%d %s=%s\n" records) into `into` (values are raw bytes;
 * an empty value means "unset" and is stored as an empty Buffer). Throws on malformed records.
 */
export function parsePax(data: Buffer, into: Map<string, Buffer>, offset: number): void {
  let pos = 0;
  const n = data.length;
  while (pos < n) {
    // Trailing NUL padding after the last record is tolerated.
    if (data[pos] === 0) break;
    let len = 0;
    let i = pos;
    for (; i < n && i - pos < 8; i++) {
      const c = data[i];
      if (c >= 0x30 && c <= 0x39) len = len * 10 + (c - 0x30);
      else break;
    }
    if (i === pos || i >= n || data[i] !== 0x20 || len < 5 || pos + len > n || data[pos + len - 1] !== 0x0a) {
      throw new InvalidArchiveError(`invalid PAX extended header at offset ${offset}`);
    }
    const eq = data.indexOf(0x3d, i + 1);
    if (eq < 0 || eq >= pos + len - 1 || eq === i + 1) {
      throw new InvalidArchiveError(`invalid PAX extended header at offset ${offset}`);
    }
    const key = data.toString('utf8', i + 1, eq);
    into.set(key, data.subarray(eq + 1, pos + len - 1));
    pos += len;
  }
}

const DECIMAL = /^[0-9]{1,16}$/;
const TIME = /^-?[0-9]{1,16}(\.[0-9]{0,18})?$/;

/** Parse a PAX decimal integer record (size, uid, gid, ...). */
export function paxInteger(key: string, v: Buffer, offset: number): number {
  const s = v.toString('latin1');
  const n = DECIMAL.test(s) ? Number(s) : NaN;
  if (!(n <= MAX_SAFE)) throw new InvalidArchiveError(`invalid PAX ${key} '${s}' at offset ${offset}`);
  return n;
}

/** Parse a PAX time record (seconds with an optional fraction). */
export function paxTime(key: string, v: Buffer, offset: number): number {
  const s = v.toString('latin1');
  const n = TIME.test(s) ? Number(s) : NaN;
  if (!Number.isFinite(n) || Math.abs(n) > MAX_SAFE) {
    throw new InvalidArchiveError(`invalid PAX ${key} '${s}' at offset ${offset}`);
  }
  return n;
}

// ---------------------------------------------------------------------------------------------
// Encoding

const FLAG: Record<EntryType, number> = {
  file: 0x30,
  link: 0x31,
  symlink: 0x32,
  chardev: 0x33,
  blockdev: 0x34,
  dir: 0x35,
  fifo: 0x36,
};

const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;

function isAscii(s: string): boolean {
  // Equal UTF-8 byte length and UTF-16 length happens only for pure ASCII.
  return Buffer.byteLength(s) === s.length;
}

/** Write `v` as zero-padded octal digits filling len-1 bytes plus a NUL terminator. */
function writeOctal(b: Buffer, off: number, len: number, v: number): void {
  const s = v.toString(8);
  const digits = len - 1;
  let p = off;
  for (let i = s.length; i < digits; i++) b[p++] = 0x30;
  b.write(s, p, 'latin1');
  b[off + digits] = 0;
}

/** Write `v` (non-negative) in GNU base-256 form. */
function writeBase256(b: Buffer, off: number, len: number, v: number): void {
  for (let i = off + len - 1; i > off; i--) {
    b[i] = v % 256;
    v = Math.floor(v / 256);
  }
  b[off] = 0x80;
}

/** Write a string field, truncating to `len` bytes (callers add a PAX record when truncation loses data). */
function writeString(b: Buffer, off: number, len: number, s: string): void {
  if (s.length === 0) return;
  const bytes = Buffer.from(s, 'utf8');
  bytes.copy(b, off, 0, Math.min(len, bytes.length));
}

function writeChecksum(b: Buffer, off: number): void {
  b.fill(0x20, off + 148, off + 156);
  let sum = 0;
  for (let i = off; i < off + BLOCK; i++) sum += b[i];
  writeOctal(b, off + 148, 7, sum);
  b[off + 155] = 0x20;
}

interface UstarFields {
  name: string;
  prefix: string;
  flag: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

function encodeUstar(b: Buffer, off: number, f: UstarFields): void {
  writeString(b, off, 100, f.name);
  writeOctal(b, off + 100, 8, f.mode);
  writeOctal(b, off + 108, 8, f.uid);
  writeOctal(b, off + 116, 8, f.gid);
  writeOctal(b, off + 124, 12, f.size);
  writeOctal(b, off + 136, 12, f.mtime);
  b[off + 156] = f.flag;
  writeString(b, off + 157, 100, f.linkname);
  b.write('ustar\x0000', off + 257, 'latin1');
  writeString(b, off + 265, 32, f.uname);
  writeString(b, off + 297, 32, f.gname);
  if (f.devmajor > MAX_OCTAL_7) writeBase256(b, off + 329, 8, f.devmajor);
  else writeOctal(b, off + 329, 8, f.devmajor);
  if (f.devminor > MAX_OCTAL_7) writeBase256(b, off + 337, 8, f.devminor);
  else writeOctal(b, off + 337, 8, f.devminor);
  writeString(b, off + 345, 155, f.prefix);
  writeChecksum(b, off);
}

/** Split an ASCII path into ustar prefix (<=155) and name (<=100) at a '/', or return undefined. */
function splitPrefix(name: string): [string, string] | undefined {
  const n = name.length;
  if (n > 256) return undefined;
  // Prefer the longest prefix (like Python's tarfile); the name part must be non-empty.
  const start = Math.min(155, n - 2);
  for (let i = start; i >= n - 101 && i > 0; i--) {
    if (name.charCodeAt(i) === 0x2f) return [name.slice(0, i), name.slice(i + 1)];
  }
  return undefined;
}

/** Encode one PAX record "%d key=value\n" where the length counts the whole record. */
function paxRecord(key: string, value: Buffer | string): Buffer {
  const k = Buffer.from(key, 'utf8');
  const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const base = k.length + v.length + 3; // ' ', '=', '\n'
  let len = base + String(base).length;
  if (String(len).length !== String(base).length) len = base + String(len).length;
  const rec = Buffer.allocUnsafe(len);
  let p = rec.write(String(len), 0, 'latin1');
  rec[p++] = 0x20;
  p += k.copy(rec, p);
  rec[p++] = 0x3d;
  p += v.copy(rec, p);
  rec[p] = 0x0a;
  return rec;
}

/** PAX keys the writer derives from header fields (and thus never copies from `header.pax`). */
function isDerivedPaxKey(key: string): boolean {
  return (
    key === 'path' ||
    key === 'linkpath' ||
    key === 'size' ||
    key === 'uid' ||
    key === 'gid' ||
    key === 'uname' ||
    key === 'gname' ||
    key === 'mtime' ||
    key === 'atime' ||
    key === 'ctime' ||
    key.startsWith('SCHILY.xattr.') ||
    key.startsWith('GNU.sparse.')
  );
}

function paxHeaderName(name: string): string {
  // GNU tar's default form: %d/PaxHeaders/%f
  let end = name.length;
  while (end > 1 && name.charCodeAt(end - 1) === 0x2f) end--;
  const trimmed = name.slice(0, end);
  const slash = trimmed.lastIndexOf('/');
  const dir = slash < 0 ? '.' : slash === 0 ? '' : trimmed.slice(0, slash);
  const base = slash < 0 ? trimmed : trimmed.slice(slash + 1);
  return `${dir}/PaxHeaders/${base}`;
}

function checkUint(what: string, name: string, v: number | undefined): number {
  const n = v ?? 0;
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new InvalidArgumentError(`tar entry '${name}': invalid ${what} ${String(v)}`);
  }
  return n;
}

function fmtTime(t: number): string {
  if (Number.isInteger(t)) return String(t);
  // Up to nanosecond precision, without float noise or trailing zeros.
  const neg = t < 0;
  const a = Math.abs(t);
  let sec = Math.floor(a);
  let ns = Math.round((a - sec) * 1e9);
  if (ns >= 1e9) {
    sec += 1;
    ns -= 1e9;
  }
  if (ns === 0) return `${neg ? '-' : ''}${sec}`;
  return `${neg ? '-' : ''}${sec}.${String(ns).padStart(9, '0').replace(/0+$/, '')}`;
}

/** What the meta entries before an entry said about it: PAX globals and locals, GNU long name and link. */
export interface PendingMeta {
  globals?: Map<string, Buffer>;
  local?: Map<string, Buffer>;
  longName?: string;
  longLink?: string;
}

/**
 * An entry's header from its block (checksum verified; not a meta entry) and the meta entries before it, and the
 * number of body bytes that follow it (padding excluded: regular files', and GNU dumpdir bodies, which are
 * passed over). The one place the rules live for both readers (readTar, and layer ingest's synchronous check).
 */
export function entryHeader(block: Buffer, at: number, meta: PendingMeta): { header: TarHeader; dataSize: number } {
  const flag = block[156]!;
  let size = parseNumeric(block, 124, 12);
  if (!(size >= 0)) throw new InvalidArchiveError(`invalid size in tar header at offset ${at}`);
  let type = typeFromFlag(flag) ?? 'file'; // POSIX: unknown types are read as regular files

  // Name: PAX path > GNU long name > ustar prefix/name.
  let name: string;
  if (meta.longName !== undefined) name = meta.longName;
  else {
    name = parseString(block, 0, 100);
    // Unknown magic with a valid checksum is read as v7, like Go's archive/tar.
    if (magicOf(block) === 'ustar' && block[345] !== 0) {
      // star puts atime/ctime after a 131-byte prefix and "tar\0" at 508.
      const star = block[508] === 0x74 && block[509] === 0x61 && block[510] === 0x72 && block[511] === 0;
      const prefix = parseString(block, 345, star ? 131 : 155);
      if (prefix) name = `${prefix}/${name}`;
    }
  }
  let linkname = meta.longLink ?? parseString(block, 157, 100);
  let uid = parseNumeric(block, 108, 8);
  let gid = parseNumeric(block, 116, 8);
  let mtime = parseNumeric(block, 136, 12);
  const mode = parseNumeric(block, 100, 8);
  let uname = parseString(block, 265, 32);
  let gname = parseString(block, 297, 32);
  if (!(uid >= 0) || !(gid >= 0) || Number.isNaN(mtime) || !(mode >= 0)) {
    throw new InvalidArchiveError(`invalid numeric field in tar header at offset ${at}`);
  }
  let devmajor: number | undefined;
  let devminor: number | undefined;
  if (type === 'chardev' || type === 'blockdev') {
    devmajor = parseNumeric(block, 329, 8);
    devminor = parseNumeric(block, 337, 8);
    if (!(devmajor >= 0) || !(devminor >= 0)) {
      throw new InvalidArchiveError(`invalid device number in tar header at offset ${at}`);
    }
  }

  let xattrs: Map<string, Buffer> | undefined;
  let pax: Record<string, string> | undefined;
  const { globals, local } = meta;
  if (globals || local) {
    const apply = (key: string, v: Buffer, isGlobal: boolean): void => {
      switch (key) {
        case 'path':
          if (v.length > MAX_NAME_SIZE) throw new InvalidArchiveError(`PAX path too long at offset ${at}`);
          if (v.length) name = v.toString('utf8');
          return;
        case 'linkpath':
          if (v.length > MAX_NAME_SIZE) throw new InvalidArchiveError(`PAX linkpath too long at offset ${at}`);
          if (v.length) linkname = v.toString('utf8');
          return;
        case 'size':
          if (v.length) size = paxInteger(key, v, at);
          return;
        case 'uid':
          if (v.length) uid = paxInteger(key, v, at);
          return;
        case 'gid':
          if (v.length) gid = paxInteger(key, v, at);
          return;
        case 'uname':
          if (v.length) uname = v.toString('utf8');
          return;
        case 'gname':
          if (v.length) gname = v.toString('utf8');
          return;
        case 'mtime':
          if (v.length) mtime = paxTime(key, v, at);
          return;
        case 'atime':
        case 'ctime':
          return; // accepted, ignored
        case 'SCHILY.devmajor':
          if (v.length) devmajor = paxInteger(key, v, at);
          return;
        case 'SCHILY.devminor':
          if (v.length) devminor = paxInteger(key, v, at);
          return;
      }
      if (key.startsWith('SCHILY.xattr.')) {
        const xk = key.slice(13);
        if (!xk) return;
        xattrs ??= new Map();
        if (v.length || !isGlobal) xattrs.set(xk, Buffer.from(v)); // own copy per entry (globals are shared)
        else xattrs.delete(xk);
        return;
      }
      if (key.startsWith('GNU.sparse.')) {
        throw new UnsupportedError(`GNU sparse tar entries are not supported ('${name}' at offset ${at})`);
      }
      // Unknown global keys (e.g. git's "comment") are not copied into every entry.
      if (!isGlobal) (pax ??= {})[key] = v.toString('utf8');
    };
    if (globals) for (const [k, v] of globals) if (!local?.has(k)) apply(k, v, true);
    if (local) for (const [k, v] of local) apply(k, v, false);
  }

  // Old (v7/pre-POSIX) archives mark directories only by a trailing slash.
  if (flag === 0 && name.endsWith('/')) type = 'dir';
  const isFile = type === 'file';
  const header: TarHeader = { name, type, mode: mode & 0o7777, uid, gid, size: isFile ? size : 0, mtime };
  if (uname) header.uname = uname;
  if (gname) header.gname = gname;
  if (type === 'link' || type === 'symlink') header.linkname = linkname;
  if (devmajor !== undefined) {
    header.devmajor = devmajor;
    header.devminor = devminor;
  }
  if (xattrs && xattrs.size) header.xattrs = xattrs;
  if (pax) header.pax = pax;
  // Only regular files carry data (GNU dumpdir 'D' bodies are skipped), like Go's archive/tar.
  return { header, dataSize: isFile || flag === 0x44 ? size : 0 };
}

/**
 * Encode the header block(s) for one entry: a ustar block, preceded by a PAX 'x' header (and its
 * padded body) when some field does not fit ustar. Deterministic: the same header gives the same bytes.
 */
export function headerBlocks(h: TarHeader, opts: HeaderOptions = {}): Buffer {
  const name = h.name;
  if (typeof name !== 'string' || name.length === 0) throw new InvalidArgumentError('tar entry with an empty name');
  if (name.includes('\0')) throw new InvalidArgumentError(`tar entry '${name}': name contains a NUL byte`);
  if (Buffer.byteLength(name) > MAX_NAME_SIZE) throw new InvalidArgumentError(`tar entry name too long (${name.length} characters)`);
  const flag = FLAG[h.type];
  if (flag === undefined) throw new InvalidArgumentError(`tar entry '${name}': unknown type '${String(h.type)}'`);

  const records: Buffer[] = [];
  const f: UstarFields = {
    name: '',
    prefix: '',
    flag,
    mode: checkUint('mode', name, h.mode) & 0o7777,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: 0,
    linkname: '',
    uname: '',
    gname: '',
    devmajor: 0,
    devminor: 0,
  };

  // path
  if (isAscii(name) && name.length <= 100) f.name = name;
  else {
    const split = isAscii(name) ? splitPrefix(name) : undefined;
    if (split) [f.prefix, f.name] = split;
    else {
      f.name = name;
      records.push(paxRecord('path', name));
    }
  }

  // linkpath
  if (h.type === 'link' || h.type === 'symlink') {
    const ln = h.linkname ?? '';
    if (ln.includes('\0')) throw new InvalidArgumentError(`tar entry '${name}': link target contains a NUL byte`);
    if (Buffer.byteLength(ln) > MAX_NAME_SIZE) throw new InvalidArgumentError(`tar entry '${name}': link target too long`);
    f.linkname = ln;
    if (!(isAscii(ln) && ln.length <= 100)) records.push(paxRecord('linkpath', ln));
  }

  // size
  if (h.type === 'file') {
    const size = checkUint('size', name, h.size);
    if (size > MAX_OCTAL_11) records.push(paxRecord('size', String(size)));
    else f.size = size;
  }

  // uid / gid
  const uid = checkUint('uid', name, h.uid);
  if (uid > MAX_OCTAL_7) records.push(paxRecord('uid', String(uid)));
  else f.uid = uid;
  const gid = checkUint('gid', name, h.gid);
  if (gid > MAX_OCTAL_7) records.push(paxRecord('gid', String(gid)));
  else f.gid = gid;

  // uname / gname
  if (h.uname) {
    f.uname = h.uname;
    if (!(isAscii(h.uname) && h.uname.length <= 32)) records.push(paxRecord('uname', h.uname));
  }
  if (h.gname) {
    f.gname = h.gname;
    if (!(isAscii(h.gname) && h.gname.length <= 32)) records.push(paxRecord('gname', h.gname));
  }

  // mtime
  const mt = h.mtime ?? 0;
  if (!Number.isFinite(mt) || Math.abs(mt) > Number.MAX_SAFE_INTEGER) {
    throw new InvalidArgumentError(`tar entry '${name}': invalid mtime ${String(h.mtime)}`);
  }
  const whole = Math.floor(mt);
  if (opts.fractionalMtime && whole !== mt) {
    records.push(paxRecord('mtime', fmtTime(mt)));
    if (whole >= 0 && whole <= MAX_OCTAL_11) f.mtime = whole;
  } else if (whole < 0 || whole > MAX_OCTAL_11) {
    records.push(paxRecord('mtime', String(whole)));
  } else f.mtime = whole;

  // devices
  if (h.type === 'chardev' || h.type === 'blockdev') {
    f.devmajor = checkUint('devmajor', name, h.devmajor);
    f.devminor = checkUint('devminor', name, h.devminor);
  }

  // xattrs, sorted for determinism
  if (h.xattrs && h.xattrs.size > 0) {
    const keys = [...h.xattrs.keys()].sort();
    for (const k of keys) {
      if (k.length === 0 || k.includes('=') || k.includes('\0')) {
        throw new InvalidArgumentError(`tar entry '${name}': invalid xattr name '${k}'`);
      }
      records.push(paxRecord(`SCHILY.xattr.${k}`, h.xattrs.get(k)!));
    }
  }

  // other PAX records, sorted for determinism
  if (h.pax) {
    const keys = Object.keys(h.pax)
      .filter((k) => !isDerivedPaxKey(k))
      .sort();
    for (const k of keys) {
      if (k.length === 0 || k.includes('=') || k.includes('\0')) {
        throw new InvalidArgumentError(`tar entry '${name}': invalid PAX key '${k}'`);
      }
      records.push(paxRecord(k, h.pax[k]));
    }
  }

  if (records.length === 0) {
    const out = Buffer.alloc(BLOCK);
    encodeUstar(out, 0, f);
    return out;
  }

  let paxSize = 0;
  for (const r of records) paxSize += r.length;
  if (paxSize > MAX_PAX_SIZE) throw new InvalidArgumentError(`tar entry '${name}': PAX extended header too large`);
  const paxBlocks = Math.ceil(paxSize / BLOCK);
  const out = Buffer.alloc(BLOCK * (2 + paxBlocks));
  encodeUstar(out, 0, {
    name: paxHeaderName(name),
    prefix: '',
    flag: 0x78, // 'x'
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: paxSize,
    mtime: f.mtime,
    linkname: '',
    uname: '',
    gname: '',
    devmajor: 0,
    devminor: 0,
  });
  let p = BLOCK;
  for (const r of records) p += r.copy(out, p);
  encodeUstar(out, BLOCK * (1 + paxBlocks), f);
  return out;
}
