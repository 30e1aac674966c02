// Go values as text/template sees them: type names, truthiness, fmt's printing (%v, %q, Printf verbs) and JSON.
import { formatFixed, formatG, goNumber, goTimeString, rfc3339Nano } from './gofmt.js';

// ---------------------------------------------------------------------------------------------
// Values: Go type names, truthiness, printing, JSON

/** Fields of a 'table' header: each field name maps to its header text. */
export class HeaderContext {
  constructor(private readonly headers: Record<string, string>) {}
  get(name: string): string {
    return Object.prototype.hasOwnProperty.call(this.headers, name) ? this.headers[name]! : deriveHeader(name);
  }
}

/** 'CreatedSince' → 'CREATED SINCE', 'ID' → 'ID', 'IPAddress' → 'IP ADDRESS'. */
export function deriveHeader(field: string): string {
  return field
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toUpperCase();
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

export function goTypeName(v: unknown): string {
  if (v === undefined || v === null) return '<nil>';
  switch (typeof v) {
    case 'string':
      return 'string';
    case 'number':
      return Number.isInteger(v) ? 'int' : 'float64';
    case 'bigint':
      return 'int64';
    case 'boolean':
      return 'bool';
    case 'function':
      return 'func(...) interface {}';
  }
  if (Array.isArray(v)) return v.length > 0 && v.every((x) => typeof x === 'string') ? '[]string' : '[]interface {}';
  if (v instanceof Uint8Array) return '[]uint8';
  if (v instanceof Date) return 'time.Time';
  if (v instanceof Map || isPlainObject(v)) return 'map[string]interface {}';
  const ctor = (v as object).constructor?.name;
  return ctor ? `*${ctor}` : 'struct';
}

export function isTrue(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  switch (typeof v) {
    case 'boolean':
      return v;
    case 'number':
      return v !== 0;
    case 'bigint':
      return v !== 0n;
    case 'string':
      return v.length > 0;
    case 'function':
      return true;
  }
  if (Array.isArray(v) || v instanceof Uint8Array) return v.length > 0;
  if (v instanceof Map || v instanceof Set) return v.size > 0;
  if (isPlainObject(v)) return Object.keys(v).length > 0;
  return true;
}

function compareKeys(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  const sa = String(a);
  const sb = String(b);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

/** Entries of a map-like value in Go's order (sorted keys), skipping methods. */
export function mapEntries(v: Map<unknown, unknown> | Record<string, unknown>): Array<[unknown, unknown]> {
  const entries: Array<[unknown, unknown]> =
    v instanceof Map ? [...v.entries()] : Object.keys(v).map((k) => [k, (v as Record<string, unknown>)[k]]);
  return entries.filter(([, x]) => typeof x !== 'function').sort((a, b) => compareKeys(a[0], b[0]));
}

function hasCustomToString(v: object): boolean {
  const ts = (v as { toString?: unknown }).toString;
  return typeof ts === 'function' && ts !== Object.prototype.toString && ts !== Array.prototype.toString;
}

/** fmt's %v. depth > 0 inside slices and maps. */
export function formatValue(v: unknown, depth = 0): string {
  if (v === undefined) return depth === 0 ? '<no value>' : '<nil>';
  if (v === null) return '<nil>';
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
      return goNumber(v);
    case 'bigint':
    case 'boolean':
      return String(v);
    case 'symbol':
      return v.toString();
    case 'function':
      return '<func>';
  }
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? '<invalid time>' : goTimeString(v);
  if (Array.isArray(v) || v instanceof Uint8Array) {
    return '[' + Array.from(v as ArrayLike<unknown>, (x) => formatValue(x, depth + 1)).join(' ') + ']';
  }
  if (v instanceof Set) return '[' + [...v].map((x) => formatValue(x, depth + 1)).join(' ') + ']';
  if (v instanceof Map || isPlainObject(v)) {
    return (
      'map[' +
      mapEntries(v as Map<unknown, unknown>)
        .map(([k, x]) => `${formatValue(k, depth + 1)}:${formatValue(x, depth + 1)}`)
        .join(' ') +
      ']'
    );
  }
  if (v instanceof Error) return v.message;
  if (hasCustomToString(v)) return String(v);
  const fields = Object.values(v as object).filter((x) => typeof x !== 'function');
  return '{' + fields.map((x) => formatValue(x, depth + 1)).join(' ') + '}';
}

function jsonString(s: string): string {
  return JSON.stringify(s).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/**
 * encoding/json as docker's `json` function uses it (HTML escaping off). Throws on NaN/Inf.
 * Plain objects keep their key order (Go structs) unless asMap, when they are Go maps: sorted keys,
 * and zero-argument methods are called and included (docker's marshalMap of a list context).
 */
export function goJson(v: unknown, asMap = false, seen: Set<object> = new Set()): string {
  if (v === undefined || v === null) return 'null';
  switch (typeof v) {
    case 'string':
      return jsonString(v);
    case 'number':
      if (!Number.isFinite(v)) throw new Error(`json: unsupported value: ${formatG(v)}`);
      return JSON.stringify(v);
    case 'bigint':
      return v.toString();
    case 'boolean':
      return String(v);
    case 'function':
    case 'symbol':
      throw new Error(`json: unsupported type: ${goTypeName(v)}`);
  }
  const obj = v as object;
  if (seen.has(obj)) throw new Error('json: unsupported value: encountered a cycle');
  seen.add(obj);
  try {
    if (obj instanceof Date) return jsonString(rfc3339Nano(obj));
    const toJSON = (obj as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') return goJson(toJSON.call(obj), asMap, seen);
    if (obj instanceof Uint8Array) return jsonString(Buffer.from(obj).toString('base64'));
    if (Array.isArray(obj) || obj instanceof Set) return '[' + [...obj].map((x) => goJson(x, asMap, seen)).join(',') + ']';
    if (obj instanceof Map) {
      const parts = mapEntries(obj).map(([k, x]) => `${jsonString(String(k))}:${goJson(x, asMap, seen)}`);
      return '{' + parts.join(',') + '}';
    }
    const parts: string[] = [];
    const keys = asMap && isPlainObject(obj) ? Object.keys(obj).sort(compareKeys) : Object.keys(obj);
    for (const k of keys) {
      let x = (obj as Record<string, unknown>)[k];
      if (typeof x === 'function') {
        if (!asMap || x.length !== 0) continue;
        x = (x as () => unknown).call(obj);
      }
      if (x === undefined) continue;
      parts.push(`${jsonString(k)}:${goJson(x, asMap, seen)}`);
    }
    return '{' + parts.join(',') + '}';
  } finally {
    seen.delete(obj);
  }
}

// ---------------------------------------------------------------------------------------------
// fmt: Sprint, Sprintln, Sprintf

export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    switch (ch) {
      case '"':
        out += '\\"';
        continue;
      case '\\':
        out += '\\\\';
        continue;
      case '\x07':
        out += '\\a';
        continue;
      case '\b':
        out += '\\b';
        continue;
      case '\f':
        out += '\\f';
        continue;
      case '\n':
        out += '\\n';
        continue;
      case '\r':
        out += '\\r';
        continue;
      case '\t':
        out += '\\t';
        continue;
      case '\v':
        out += '\\v';
        continue;
    }
    if (cp < 0x20 || cp === 0x7f) out += '\\x' + cp.toString(16).padStart(2, '0');
    else if ((cp >= 0x80 && cp < 0xa0) || cp === 0xad || cp === 0x2028 || cp === 0x2029 || (cp >= 0xd800 && cp < 0xe000)) {
      out += '\\u' + cp.toString(16).padStart(4, '0');
    } else out += ch;
  }
  return out + '"';
}

export function sprint(args: unknown[]): string {
  let out = '';
  args.forEach((a, i) => {
    const isStr = typeof a === 'string';
    if (i > 0 && !isStr && typeof args[i - 1] !== 'string') out += ' ';
    out += formatValue(a, 1);
  });
  return out;
}

export function sprintln(args: unknown[]): string {
  return args.map((a) => formatValue(a, 1)).join(' ') + '\n';
}

function badVerb(verb: string, arg: unknown): string {
  if (arg === undefined || arg === null) return `%!${verb}(<nil>)`;
  return `%!${verb}(${goTypeName(arg)}=${formatValue(arg, 1)})`;
}

export function utf8Bytes(s: string): Uint8Array {
  return Buffer.from(s, 'utf8');
}

export function sprintf(format: string, args: unknown[]): string {
  let out = '';
  let argi = 0;
  let i = 0;
  while (i < format.length) {
    const pct = format.indexOf('%', i);
    if (pct < 0) {
      out += format.slice(i);
      break;
    }
    out += format.slice(i, pct);
    i = pct + 1;
    let minus = false;
    let plus = false;
    let sharp = false;
    let space = false;
    let zero = false;
    for (; i < format.length; i++) {
      const c = format[i];
      if (c === '-') minus = true;
      else if (c === '+') plus = true;
      else if (c === '#') sharp = true;
      else if (c === ' ') space = true;
      else if (c === '0') zero = !minus;
      else break;
    }
    const readNum = (): number | undefined => {
      if (format[i] === '*') {
        i++;
        const a = args[argi++];
        if (typeof a === 'number' && Number.isInteger(a)) return a;
        out += '%!(BADWIDTH)';
        return undefined;
      }
      const m = /^\d+/.exec(format.slice(i));
      if (!m) return undefined;
      i += m[0].length;
      return Number(m[0]);
    };
    let width = readNum();
    if (width !== undefined && width < 0) {
      minus = true;
      width = -width;
    }
    let prec: number | undefined;
    if (format[i] === '.') {
      i++;
      prec = readNum() ?? 0;
    }
    if (i >= format.length) {
      out += '%!(NOVERB)';
      break;
    }
    const verbCp = format.codePointAt(i)!;
    const verb = String.fromCodePoint(verbCp);
    i += verb.length;
    if (verb === '%') {
      out += '%';
      continue;
    }
    if (argi >= args.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    const arg = args[argi++];
    let s: string;
    let numeric = false;
    const signed = (n: number, body: string): string => (n < 0 || Object.is(n, -0) ? '-' : plus ? '+' : space ? ' ' : '') + body;
    switch (verb) {
      case 'v':
        s = sharp && typeof arg === 'string' ? goQuote(arg) : formatValue(arg, 1);
        if (typeof arg === 'number') {
          numeric = true;
          if (plus && arg >= 0) s = '+' + s;
        }
        break;
      case 's':
        if (typeof arg === 'string') s = arg;
        else if (arg instanceof Error) s = arg.message;
        else if (Array.isArray(arg) && arg.every((x) => typeof x === 'string')) s = formatValue(arg, 1);
        else if (typeof arg === 'object' && arg !== null && hasCustomToString(arg)) s = String(arg);
        else {
          s = badVerb(verb, arg);
          break;
        }
        if (prec !== undefined) s = Array.from(s).slice(0, prec).join('');
        break;
      case 'q':
        if (typeof arg === 'string') s = sharp && !arg.includes('`') ? '`' + arg + '`' : goQuote(arg);
        else if (typeof arg === 'number' && Number.isInteger(arg)) s = "'" + goQuote(String.fromCodePoint(arg)).slice(1, -1).replace(/\\"/g, '"') + "'";
        else s = badVerb(verb, arg);
        break;
      case 't':
        s = typeof arg === 'boolean' ? String(arg) : badVerb(verb, arg);
        break;
      case 'd':
      case 'b':
      case 'o':
      case 'O':
      case 'x':
      case 'X':
      case 'c':
      case 'U': {
        if ((verb === 'x' || verb === 'X') && typeof arg === 'string') {
          let bytes = utf8Bytes(arg);
          if (prec !== undefined) bytes = bytes.slice(0, prec);
          s = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(space ? ' ' : '');
          if (sharp) s = (space ? Array.from(bytes, (b) => '0x' + b.toString(16).padStart(2, '0')).join(' ') : '0x' + s);
          if (verb === 'X') s = s.toUpperCase();
          break;
        }
        if ((verb === 'x' || verb === 'X') && typeof arg === 'number' && !Number.isInteger(arg)) {
          s = badVerb(verb, arg);
          break;
        }
        if (typeof arg !== 'number' && typeof arg !== 'bigint') {
          s = badVerb(verb, arg);
          break;
        }
        if (typeof arg === 'number' && !Number.isInteger(arg)) {
          s = badVerb(verb, arg);
          break;
        }
        const n = BigInt(arg);
        const abs = n < 0n ? -n : n;
        if (verb === 'c') {
          s = String.fromCodePoint(Number(abs));
          break;
        }
        if (verb === 'U') {
          s = 'U+' + abs.toString(16).toUpperCase().padStart(4, '0');
          break;
        }
        numeric = true;
        const radix = verb === 'd' ? 10 : verb === 'b' ? 2 : verb === 'o' || verb === 'O' ? 8 : 16;
        let digits = abs.toString(radix);
        if (verb === 'X') digits = digits.toUpperCase();
        if (prec !== undefined) digits = digits.padStart(prec, '0');
        let prefix = '';
        if (verb === 'O') prefix = '0o';
        else if (sharp) prefix = verb === 'x' ? '0x' : verb === 'X' ? '0X' : verb === 'o' ? '0' : verb === 'b' ? '0b' : '';
        const sign = n < 0n ? '-' : plus ? '+' : space ? ' ' : '';
        if (zero && !minus && width !== undefined && prec === undefined) {
          digits = digits.padStart(width - sign.length - prefix.length, '0');
        }
        s = sign + prefix + digits;
        width = zero && prec === undefined ? undefined : width;
        break;
      }
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G': {
        if (typeof arg !== 'number') {
          s = badVerb(verb, arg);
          break;
        }
        numeric = true;
        const lower = verb.toLowerCase();
        let body: string;
        if (lower === 'g') body = formatG(Math.abs(arg), prec ?? -1);
        else body = formatFixed(Math.abs(arg), prec ?? 6, lower === 'e' ? 'e' : 'f');
        if (verb === 'E' || verb === 'G') body = body.toUpperCase();
        s = Number.isNaN(arg) ? (plus ? '+NaN' : space ? ' NaN' : 'NaN') : signed(arg, body.replace(/^[-+]/, ''));
        if (zero && !minus && width !== undefined && Number.isFinite(arg)) {
          const sign = /^[-+ ]/.test(s) ? s[0]! : '';
          s = sign + s.slice(sign.length).padStart(width - sign.length, '0');
          width = undefined;
        }
        break;
      }
      case 'T':
        s = goTypeName(arg);
        break;
      default:
        s = `%!${verb}(${goTypeName(arg)}=${formatValue(arg, 1)})`;
    }
    if (width !== undefined) {
      const len = Array.from(s).length;
      if (len < width) {
        const padChar = zero && !minus && numeric ? '0' : ' ';
        s = minus ? s + ' '.repeat(width - len) : padChar.repeat(width - len) + s;
      }
    }
    out += s;
  }
  if (argi < args.length) {
    out += '%!(EXTRA ' + args.slice(argi).map((a) => `${goTypeName(a)}=${formatValue(a, 1)}`).join(', ') + ')';
  }
  return out;
}
