// Human-readable units and times exactly as the docker CLI prints them.
//
// Sizes and durations follow github.com/docker/go-units (size.go, duration.go); times follow Go's
// time.Time.String() and time.RFC3339Nano; truncation follows docker/cli's formatter.Ellipsis.
// Go's number formatting (`%.4g`, `%v` of a float64) is reproduced by formatG / goFloat below,
// including round-half-to-even on the exact binary value, which is where JS's toPrecision differs.


import { formatG } from '../gotemplate/gofmt.js';
export { dockerTime, goTimeString, rfc3339Nano } from '../gotemplate/gofmt.js';
import { humanDuration } from '../util/units.js';
export { humanDuration };

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
 * docker images' CREATED column: `${humanDuration(now - created)} ago`. The engine API reports
 * Created in whole seconds (time.Unix(created, 0)), so the creation time is floored to a second.
 */
export function createdSince(date: Date, now: Date = new Date()): string {
  const created = Math.floor(date.getTime() / 1000) * 1000;
  return `${humanDuration(now.getTime() - created)} ago`;
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
