// Go's formatting of numbers (fmt's %g/%e/%f/%v of a float64) and times (time.Time.String, RFC3339Nano),
// reproduced exactly: round-half-to-even on the exact binary value, zone abbreviations from the tz database;
// and Go's time.ParseDuration.
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../errors.js';

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

const DURATION_UNITS: Record<string, number> = {
  ns: 1,
  us: 1e3,
  'µs': 1e3, // U+00B5
  'μs': 1e3, // U+03BC
  ms: 1e6,
  s: 1e9,
  m: 60e9,
  h: 3600e9,
};

/** Go's time.ParseDuration, in nanoseconds. */
export function parseGoDuration(orig: string): number {
  let s = orig;
  let neg = false;
  if (s.startsWith('-') || s.startsWith('+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw new InvalidArgumentError(`time: invalid duration ${JSON.stringify(orig)}`);
  let total = 0;
  while (s !== '') {
    const num = /^(\d*)(?:\.(\d*))?/.exec(s)!;
    const intPart = num[1] ?? '';
    const fracPart = num[2] ?? '';
    if (intPart === '' && fracPart === '') throw new InvalidArgumentError(`time: invalid duration ${JSON.stringify(orig)}`);
    s = s.slice(num[0].length);
    const unitMatch = /^[^\d.]+/.exec(s);
    if (!unitMatch) throw new InvalidArgumentError(`time: missing unit in duration ${JSON.stringify(orig)}`);
    const unit = unitMatch[0];
    const scale = Object.hasOwn(DURATION_UNITS, unit) ? DURATION_UNITS[unit] : undefined;
    if (scale === undefined) throw new InvalidArgumentError(`time: unknown unit ${JSON.stringify(unit)} in duration ${JSON.stringify(orig)}`);
    s = s.slice(unit.length);
    total += Number(`${intPart || '0'}.${fracPart || '0'}`) * scale;
  }
  return Math.round(neg ? -total : total);
}
