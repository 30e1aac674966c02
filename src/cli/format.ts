// Human-readable units and times exactly as the docker CLI prints them.
//
// Sizes and durations follow github.com/docker/go-units (size.go, duration.go); times follow Go's
// time.Time.String() and time.RFC3339Nano; truncation follows docker/cli's formatter.Ellipsis.
// Go's number formatting (`%.4g`, `%v` of a float64) is reproduced by formatG / goFloat below,
// including round-half-to-even on the exact binary value, which is where JS's toPrecision differs.

import { readFileSync } from 'node:fs';

// ---------------------------------------------------------------------------------------------
// Go number formatting

/** Exact decimal digits of a finite positive double: value = 0.d1d2d3… × 10^dp (Go's decimal type). */
interface Decimal {
  d: string; // significant digits, no leading/trailing zeros ('' for zero)
  dp: number; // position of the decimal point relative to the start of d
}

function exactDecimal(x: number): Decimal {
  if (x === 0) return { d: '', dp: 0 };
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const biased = (hi >>> 20) & 0x7ff;
  let mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  let e2: number;
  if (biased === 0) {
    e2 = -1074; // subnormal
  } else {
    mant |= 1n << 52n;
    e2 = biased - 1075;
  }
  let digits: string;
  let dp: number;
  if (e2 >= 0) {
    digits = (mant << BigInt(e2)).toString();
    dp = digits.length;
  } else {
    // mant × 2^e2 = mant × 5^-e2 × 10^e2
    digits = (mant * 5n ** BigInt(-e2)).toString();
    dp = digits.length + e2;
  }
  const trimmed = digits.replace(/0+$/, '');
  return { d: trimmed, dp };
}

/** Round to nd significant digits, half to even (Go's decimal.Round). */
function roundDecimal(dec: Decimal, nd: number): Decimal {
  if (nd < 0 || dec.d.length <= nd) return dec;
  const next = dec.d.charCodeAt(nd) - 48;
  let up: boolean;
  if (next > 5) up = true;
  else if (next < 5) up = false;
  else if (dec.d.length > nd + 1) up = true; // more non-zero digits follow (d has no trailing zeros)
  else up = nd > 0 && (dec.d.charCodeAt(nd - 1) - 48) % 2 === 1; // exactly half: round to even
  let d = dec.d.slice(0, nd);
  let dp = dec.dp;
  if (up) {
    let i = d.length - 1;
    while (i >= 0 && d[i] === '9') i--;
    if (i < 0) {
      d = '1';
      dp++;
    } else {
      d = d.slice(0, i) + String.fromCharCode(d.charCodeAt(i) + 1);
    }
  }
  return { d: d.replace(/0+$/, ''), dp };
}

/** Shortest round-tripping digits (what Go's strconv uses for precision -1). */
function shortestDecimal(x: number): Decimal {
  if (x === 0) return { d: '', dp: 0 };
  const [mant, expPart] = x.toExponential().split('e');
  const exp = Number(expPart);
  const d = mant!.replace('.', '').replace(/0+$/, '');
  return { d, dp: exp + 1 };
}

function fmtE(neg: boolean, dec: Decimal, prec: number): string {
  let s = neg ? '-' : '';
  s += dec.d.length > 0 ? dec.d[0] : '0';
  if (prec > 0) {
    s += '.';
    for (let i = 1; i <= prec; i++) s += i < dec.d.length ? dec.d[i] : '0';
  }
  let exp = dec.d.length === 0 ? 0 : dec.dp - 1;
  s += 'e';
  if (exp < 0) {
    s += '-';
    exp = -exp;
  } else {
    s += '+';
  }
  s += exp < 10 ? '0' + exp : String(exp);
  return s;
}

function fmtF(neg: boolean, dec: Decimal, prec: number): string {
  let s = neg ? '-' : '';
  if (dec.dp > 0) {
    let m = Math.min(dec.d.length, dec.dp);
    s += dec.d.slice(0, m);
    for (; m < dec.dp; m++) s += '0';
  } else {
    s += '0';
  }
  if (prec > 0) {
    s += '.';
    for (let i = 0; i < prec; i++) {
      const j = dec.dp + i;
      s += j >= 0 && j < dec.d.length ? dec.d[j] : '0';
    }
  }
  return s;
}

function nonFinite(x: number): string | undefined {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return '+Inf';
  if (x === -Infinity) return '-Inf';
  return undefined;
}

/**
 * Go's `%.<prec>g` (prec >= 0) or `%g`/`%v` with the shortest representation (prec < 0):
 * trailing zeros removed, exponent form when exp < -4 || exp >= precision (6 for shortest).
 */
export function formatG(x: number, prec = -1): string {
  const nf = nonFinite(x);
  if (nf !== undefined) return nf;
  const neg = x < 0 || Object.is(x, -0);
  const ax = Math.abs(x);
  const shortest = prec < 0;
  let dec: Decimal;
  if (shortest) {
    dec = shortestDecimal(ax);
  } else {
    if (prec === 0) prec = 1;
    dec = roundDecimal(exactDecimal(ax), prec);
  }
  if (dec.d.length === 0) dec = { d: '', dp: 0 };
  const nd = dec.d.length;
  let eprec = shortest ? nd : prec;
  if (eprec > nd && nd >= dec.dp) eprec = nd;
  if (shortest) eprec = 6;
  const exp = dec.dp - 1;
  if (exp < -4 || exp >= eprec) {
    let p = shortest ? nd : prec;
    if (p > nd) p = nd;
    return fmtE(neg, dec, Math.max(p - 1, 0));
  }
  let p = shortest ? nd : prec;
  if (p > dec.dp) p = nd;
  return fmtF(neg, dec, Math.max(p - dec.dp, 0));
}

/** Go's `%.<prec>f` / `%.<prec>e` (used by printf); round half to even on the exact value. */
export function formatFixed(x: number, prec: number, verb: 'f' | 'e'): string {
  const nf = nonFinite(x);
  if (nf !== undefined) return nf;
  const neg = x < 0 || Object.is(x, -0);
  let dec = exactDecimal(Math.abs(x));
  if (verb === 'e') {
    dec = roundDecimal(dec, prec + 1);
    return fmtE(neg, dec, prec);
  }
  dec = roundDecimal(dec, dec.dp + prec);
  return fmtF(neg, dec.d.length === 0 ? { d: '', dp: 0 } : dec, prec);
}

/** Go's default formatting of a number (`%v`): integers as integers, other floats as shortest %g. */
export function goNumber(x: number): string {
  if (Number.isInteger(x) && Math.abs(x) < 1e21) return Object.is(x, -0) ? '0' : x.toFixed(0);
  return formatG(x, -1);
}

// ---------------------------------------------------------------------------------------------
// Sizes (go-units size.go)

const decimalAbbrs = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];
const binaryAbbrs = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB'];

function sizeAndUnit(size: number, base: number, abbrs: string[]): [number, string] {
  let i = 0;
  const limit = abbrs.length - 1;
  while (size >= base && i < limit) {
    size = size / base;
    i++;
  }
  return [size, abbrs[i]!];
}

/** go-units HumanSizeWithPrecision: decimal (1000) units, `%.<precision>g` + unit. */
export function humanSizeWithPrecision(bytes: number, precision: number): string {
  const [size, unit] = sizeAndUnit(bytes, 1000, decimalAbbrs);
  return formatG(size, precision) + unit;
}

/**
 * go-units HumanSize: decimal units, 4 significant digits ('0B', '1kB', '12.35MB', '1.5GB').
 * docker uses it for `system df`; `docker images`/`ps -s`/`history` use
 * humanSizeWithPrecision(size, 3) instead ('12.3MB').
 */
export function humanSize(bytes: number): string {
  return humanSizeWithPrecision(bytes, 4);
}

/**
 * go-units BytesSize: binary (1024) units, 4 significant digits ('1KiB', '1.5MiB').
 * docker uses it for memory: `stats` MEM USAGE / LIMIT, `info` Total Memory.
 */
export function bytesSize(bytes: number): string {
  const [size, unit] = sizeAndUnit(bytes, 1024, binaryAbbrs);
  return formatG(size, 4) + unit;
}

// ---------------------------------------------------------------------------------------------
// Durations (go-units duration.go)

/**
 * go-units HumanDuration of a duration in milliseconds: 'Less than a second', '1 second',
 * '45 seconds', 'About a minute', '35 minutes', 'About an hour', '2 hours' … '47 hours',
 * '2 days' … '13 days', '2 weeks' … '8 weeks', '2 months' … '24 months', '2 years'.
 * Hours are rounded (+0.5); days, weeks, months and years are whole hours divided down (floored).
 */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.trunc(ms / 60_000);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.trunc(ms / 3_600_000 + 0.5);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`;
  return `${Math.trunc(Math.trunc(ms / 3_600_000) / 24 / 365)} years`;
}

/**
 * docker images' CREATED column: `${humanDuration(now - created)} ago`. The engine API reports
 * Created in whole seconds (time.Unix(created, 0)), so the creation time is floored to a second.
 */
export function createdSince(date: Date, now: Date = new Date()): string {
  const created = Math.floor(date.getTime() / 1000) * 1000;
  return `${humanDuration(now.getTime() - created)} ago`;
}

// ---------------------------------------------------------------------------------------------
// Times

const pad2 = (n: number): string => String(n).padStart(2, '0');

function localZoneName(): string | undefined {
  const tz = process.env['TZ'];
  if (tz !== undefined) return tz.replace(/^:/, '') || 'UTC';
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

interface ZoneAbbrs {
  /** [utc offset in seconds, abbreviation], most recent first */
  pairs: Array<[number, string]>;
}
const zoneCache = new Map<string, ZoneAbbrs | null>();

/** Parse a POSIX TZ offset ("-1", "5:30", "+3") into seconds east of UTC (POSIX signs are inverted). */
function posixOffset(s: string): number {
  const m = /^([-+]?)(\d+)(?::(\d+))?(?::(\d+))?$/.exec(s);
  if (!m) return 0;
  const secs = Number(m[2]) * 3600 + Number(m[3] ?? 0) * 60 + Number(m[4] ?? 0);
  return m[1] === '-' ? secs : -secs;
}

/** The abbreviations a tzdata (TZif) file defines, as Go's time package reads them. */
function loadZone(file: string): ZoneAbbrs | null {
  const cached = zoneCache.get(file);
  if (cached !== undefined) return cached;
  let result: ZoneAbbrs | null = null;
  try {
    const buf = readFileSync(file);
    if (buf.length >= 44 && buf.toString('latin1', 0, 4) === 'TZif') {
      const parseBlock = (off: number, timeSize: number) => {
        const cnt = (i: number) => buf.readUInt32BE(off + 20 + i * 4);
        const [isut, isstd, leap, time, type, chars] = [cnt(0), cnt(1), cnt(2), cnt(3), cnt(4), cnt(5)];
        let p = off + 44;
        const transTypes: number[] = [];
        p += time * timeSize;
        for (let i = 0; i < time; i++) transTypes.push(buf[p + i]!);
        p += time;
        const types: Array<[number, number]> = [];
        for (let i = 0; i < type; i++) {
          types.push([buf.readInt32BE(p), buf[p + 5]!]);
          p += 6;
        }
        const abbrStart = p;
        p += chars;
        p += leap * (timeSize + 4) + isstd + isut;
        const abbr = (idx: number) => {
          let e = abbrStart + idx;
          while (e < abbrStart + chars && buf[e] !== 0) e++;
          return buf.toString('latin1', abbrStart + idx, e);
        };
        const pairs: Array<[number, string]> = [];
        const order = transTypes.length > 0 ? [...transTypes].reverse() : [0];
        for (const t of [...order, ...types.keys()]) {
          const ty = types[t];
          if (ty) pairs.push([ty[0], abbr(ty[1])]);
        }
        return { pairs, end: p };
      };
      const v1 = parseBlock(0, 4);
      let pairs = v1.pairs;
      if (buf[4]! >= 0x32 && v1.end + 44 <= buf.length) {
        const v2 = parseBlock(v1.end, 8);
        pairs = v2.pairs;
        // Footer: "\n<POSIX TZ string>\n" describes times after the last transition.
        const footer = buf.toString('latin1', v2.end).trim();
        const m = /^(<[^>]*>|[A-Za-z]+)([-+]?\d+(?::\d+){0,2})(?:(<[^>]*>|[A-Za-z]+)([-+]?\d+(?::\d+){0,2})?)?/.exec(footer);
        if (m) {
          const unq = (s: string) => s.replace(/^<|>$/g, '');
          const std = posixOffset(m[2]!);
          const extra: Array<[number, string]> = [[std, unq(m[1]!)]];
          if (m[3]) extra.push([m[4] ? posixOffset(m[4]) : std + 3600, unq(m[3])]);
          pairs = [...extra, ...pairs];
        }
      }
      result = { pairs };
    }
  } catch {
    result = null;
  }
  zoneCache.set(file, result);
  return result;
}

function numericAbbr(offsetSec: number): string {
  const sign = offsetSec < 0 ? '-' : '+';
  const a = Math.abs(offsetSec);
  const h = Math.floor(a / 3600);
  const m = Math.floor((a % 3600) / 60);
  return sign + pad2(h) + (m ? pad2(m) : '');
}

/** Zone abbreviation Go would print ('UTC', 'CET', 'EST', '+04'), best effort. */
function zoneAbbr(zone: string | undefined, offsetSec: number, date: Date): string {
  if (zone === undefined || zone === '' || zone === 'UTC' || zone === 'Etc/UTC' || zone === 'Etc/Unknown') {
    if (offsetSec === 0) return 'UTC';
  }
  const file = zone === undefined || zone === 'Etc/Unknown' ? '/etc/localtime' : zone.startsWith('/') ? zone : `/usr/share/zoneinfo/${zone}`;
  const z = loadZone(file);
  const hit = z?.pairs.find(([off]) => off === offsetSec);
  if (hit) return hit[1];
  try {
    const name = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'short' })
      .formatToParts(date)
      .find((p) => p.type === 'timeZoneName')?.value;
    if (name && /^[A-Z]{2,5}$/.test(name)) return name;
  } catch {
    /* unknown zone */
  }
  return numericAbbr(offsetSec);
}

interface Wall {
  y: number;
  mo: number;
  d: number;
  h: number;
  mi: number;
  s: number;
  offsetSec: number;
}

function wallClock(date: Date, timeZone?: string): Wall {
  if (timeZone === undefined) {
    return {
      y: date.getFullYear(),
      mo: date.getMonth() + 1,
      d: date.getDate(),
      h: date.getHours(),
      mi: date.getMinutes(),
      s: date.getSeconds(),
      offsetSec: -date.getTimezoneOffset() * 60,
    };
  }
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
    era: 'short',
  }).formatToParts(date);
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value ?? 0);
  let y = get('year');
  if (parts.find((p) => p.type === 'era')?.value === 'BC') y = 1 - y;
  const w = { y, mo: get('month'), d: get('day'), h: get('hour') % 24, mi: get('minute'), s: get('second') };
  const wall = new Date(0);
  wall.setUTCFullYear(w.y, w.mo - 1, w.d);
  wall.setUTCHours(w.h, w.mi, w.s, 0);
  const offsetSec = Math.round((wall.getTime() - Math.floor(date.getTime() / 1000) * 1000) / 1000);
  return { ...w, offsetSec };
}

function yearStr(y: number): string {
  return y < 0 ? '-' + String(-y).padStart(4, '0') : String(y).padStart(4, '0');
}

function formatGoTime(date: Date, fraction: boolean, timeZone?: string): string {
  if (Number.isNaN(date.getTime())) throw new RangeError('Invalid time value');
  const w = wallClock(date, timeZone);
  const zone = timeZone ?? localZoneName();
  const off = w.offsetSec;
  const a = Math.abs(off);
  const offStr = (off < 0 ? '-' : '+') + pad2(Math.floor(a / 3600)) + pad2(Math.floor((a % 3600) / 60));
  let frac = '';
  if (fraction) {
    const ms = ((date.getTime() % 1000) + 1000) % 1000;
    if (ms) frac = '.' + String(ms).padStart(3, '0').replace(/0+$/, '');
  }
  return (
    `${yearStr(w.y)}-${pad2(w.mo)}-${pad2(w.d)} ${pad2(w.h)}:${pad2(w.mi)}:${pad2(w.s)}${frac}` +
    ` ${offStr} ${zoneAbbr(zone, off, date)}`
  );
}

/**
 * docker's CreatedAt column: Go's time.Unix(created, 0).String() in the local zone,
 * '2006-01-02 15:04:05 -0700 MST', e.g. '2026-11-26 23:00:52 +0000 UTC'. Sub-second parts are
 * dropped (the API reports whole seconds). timeZone (IANA name) overrides the local zone.
 */
export function dockerTime(date: Date, timeZone?: string): string {
  return formatGoTime(date, false, timeZone);
}

/** Go's time.Time.String() ('2006-01-02 15:04:05.999999999 -0700 MST'), fraction trimmed; local zone. */
export function goTimeString(date: Date, timeZone?: string): string {
  return formatGoTime(date, true, timeZone);
}

const RFC3339_RE = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[-+]\d{2}:\d{2})$/;

/**
 * Go's time.RFC3339Nano as docker inspect prints 'Created': '2024-01-02T03:04:05.123456789Z',
 * fractional zeros trimmed (and the dot dropped when nothing is left), 'Z' for a zero offset.
 * A string already in RFC 3339 form keeps its nanosecond precision and its offset.
 */
export function rfc3339Nano(date: Date | string): string {
  if (typeof date === 'string') {
    const m = RFC3339_RE.exec(date.trim());
    if (m) {
      const frac = (m[3] ?? '').slice(0, 9).replace(/0+$/, '');
      let zone = m[4]!.toUpperCase();
      if (zone === '+00:00' || zone === '-00:00') zone = 'Z';
      return `${m[1]}T${m[2]}${frac ? '.' + frac : ''}${zone}`;
    }
    date = new Date(date);
  }
  if (Number.isNaN(date.getTime())) throw new RangeError('Invalid time value');
  const iso = date.toISOString(); // always UTC with milliseconds
  const m = /^(.*T\d{2}:\d{2}:\d{2})\.(\d{3})Z$/.exec(iso);
  if (!m) return iso;
  const frac = m[2]!.replace(/0+$/, '');
  return `${m[1]}${frac ? '.' + frac : ''}Z`;
}

// ---------------------------------------------------------------------------------------------
// IDs and truncation

/** docker's stringid.TruncateID: drop an 'algo:' prefix, keep the first 12 characters. */
export function shortId(id: string): string {
  const i = id.indexOf(':');
  if (i >= 0) id = id.slice(i + 1);
  return id.length > 12 ? id.slice(0, 12) : id;
}

/** East Asian Wide / Fullwidth code points (what golang.org/x/text/width reports), which take 2 columns. */
const WIDE_RANGES: Array<[number, number]> = [
  [0x1100, 0x115f], [0x231a, 0x231b], [0x2329, 0x232a], [0x23e9, 0x23ec], [0x23f0, 0x23f0],
  [0x23f3, 0x23f3], [0x25fd, 0x25fe], [0x2614, 0x2615], [0x2648, 0x2653], [0x267f, 0x267f],
  [0x2693, 0x2693], [0x26a1, 0x26a1], [0x26aa, 0x26ab], [0x26bd, 0x26be], [0x26c4, 0x26c5],
  [0x26ce, 0x26ce], [0x26d4, 0x26d4], [0x26ea, 0x26ea], [0x26f2, 0x26f3], [0x26f5, 0x26f5],
  [0x26fa, 0x26fa], [0x26fd, 0x26fd], [0x2705, 0x2705], [0x270a, 0x270b], [0x2728, 0x2728],
  [0x274c, 0x274c], [0x274e, 0x274e], [0x2753, 0x2755], [0x2757, 0x2757], [0x2795, 0x2797],
  [0x27b0, 0x27b0], [0x27bf, 0x27bf], [0x2b1b, 0x2b1c], [0x2b50, 0x2b50], [0x2b55, 0x2b55],
  [0x2e80, 0x303e], [0x3041, 0x33ff], [0x3400, 0x4dbf], [0x4e00, 0x9fff], [0xa000, 0xa4cf],
  [0xa960, 0xa97f], [0xac00, 0xd7a3], [0xf900, 0xfaff], [0xfe10, 0xfe19], [0xfe30, 0xfe6f],
  [0xff01, 0xff60], [0xffe0, 0xffe6], [0x16fe0, 0x16fe4], [0x17000, 0x18cd5], [0x1b000, 0x1b2fb],
  [0x1f004, 0x1f004], [0x1f0cf, 0x1f0cf], [0x1f18e, 0x1f18e], [0x1f191, 0x1f19a], [0x1f200, 0x1f202],
  [0x1f210, 0x1f23b], [0x1f240, 0x1f248], [0x1f250, 0x1f251], [0x1f260, 0x1f265], [0x1f300, 0x1f320],
  [0x1f32d, 0x1f335], [0x1f337, 0x1f37c], [0x1f37e, 0x1f393], [0x1f3a0, 0x1f3ca], [0x1f3cf, 0x1f3d3],
  [0x1f3e0, 0x1f3f0], [0x1f3f4, 0x1f3f4], [0x1f3f8, 0x1f43e], [0x1f440, 0x1f440], [0x1f442, 0x1f4fc],
  [0x1f4ff, 0x1f53d], [0x1f54b, 0x1f54e], [0x1f550, 0x1f567], [0x1f57a, 0x1f57a], [0x1f595, 0x1f596],
  [0x1f5a4, 0x1f5a4], [0x1f5fb, 0x1f64f], [0x1f680, 0x1f6c5], [0x1f6cc, 0x1f6cc], [0x1f6d0, 0x1f6d2],
  [0x1f6d5, 0x1f6d7], [0x1f6eb, 0x1f6ec], [0x1f6f4, 0x1f6fc], [0x1f7e0, 0x1f7eb], [0x1f90c, 0x1f93a],
  [0x1f93c, 0x1f945], [0x1f947, 0x1f9ff], [0x1fa70, 0x1faff], [0x20000, 0x2fffd], [0x30000, 0x3fffd],
];

/** Display width of one code point: 2 for East Asian Wide/Fullwidth, else 1 (docker's charWidth). */
export function charWidth(cp: number): number {
  if (cp < 0x1100) return 1;
  let lo = 0;
  let hi = WIDE_RANGES.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const [a, b] = WIDE_RANGES[mid]!;
    if (cp < a) hi = mid - 1;
    else if (cp > b) lo = mid + 1;
    else return 2;
  }
  return 1;
}

/**
 * docker's formatter.Ellipsis: cut s to at most max display columns (wide runes count 2), ending
 * in '…' when cut. max <= 0 gives ''; max 1 gives the first character without an ellipsis.
 */
export function truncateCommand(s: string, max: number): string {
  if (max <= 0) return '';
  const rs = Array.from(s);
  if (max === 1) return rs[0] ?? '';
  // ASCII-only fast path (docker compares byte length with rune count)
  if (/^[\x00-\x7f]*$/.test(s)) {
    if (rs.length <= max) return s;
    return rs.slice(0, max - 1).join('') + '…';
  }
  const display: number[] = [];
  let width = 0;
  for (const r of rs) {
    width += charWidth(r.codePointAt(0)!);
    display.push(width);
  }
  if (width <= max) return s;
  for (let i = 0; i < display.length - 1; i++) {
    if (display[i]! <= max - 1 && display[i + 1]! > max - 1) return rs.slice(0, i + 1).join('') + '…';
  }
  return s; // docker's loop finds no cut when the first rune alone is too wide
}
