// The functions a template can call: Go's builtins (and, or, len, index, slice, eq, printf, …) and docker's
// (json, split, join, title, lower, upper, pad, truncate), plus the header functions of `table` formats.
import { goJson, goTypeName, isPlainObject, isTrue, sprint, sprintf, sprintln, utf8Bytes } from './values.js';

// ---------------------------------------------------------------------------------------------
// Functions

export type ParamType = 'any' | 'value' | 'string' | 'int' | 'bool' | 'strings';

export interface FuncDef {
  params: ParamType[];
  variadic?: ParamType;
  fn: (...args: any[]) => unknown;
  lazy?: 'and' | 'or';
}

function evalArgsString(args: unknown[]): string {
  if (args.length === 1 && typeof args[0] === 'string') return args[0];
  return sprint(args);
}

function goLen(v: unknown): number {
  if (typeof v === 'string') return Buffer.byteLength(v, 'utf8');
  if (Array.isArray(v) || v instanceof Uint8Array) return v.length;
  if (v instanceof Map || v instanceof Set) return v.size;
  if (isPlainObject(v)) return Object.keys(v).length;
  if (v === undefined || v === null) throw new Error('len of nil pointer');
  throw new Error(`len of type ${goTypeName(v)}`);
}

function zeroLike(values: unknown[]): unknown {
  if (values.length === 0) return '';
  const t = (x: unknown) => (Array.isArray(x) ? 'array' : x === null ? 'null' : typeof x);
  const kind = t(values[0]);
  if (!values.every((x) => t(x) === kind)) return null;
  switch (kind) {
    case 'string':
      return '';
    case 'number':
      return 0;
    case 'boolean':
      return false;
    case 'array':
      return [];
    default:
      return null;
  }
}

function indexArg(v: unknown, cap: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`cannot index slice/array with type ${goTypeName(v)}`);
  if (v < 0 || v >= cap) throw new Error(`index out of range: ${v}`);
  return v;
}

function goIndex(item: unknown, ...indexes: unknown[]): unknown {
  let v = item;
  for (const ix of indexes) {
    if (v === undefined || v === null) throw new Error('index of untyped nil');
    if (typeof v === 'string') {
      const bytes = utf8Bytes(v);
      v = bytes[indexArg(ix, bytes.length)];
    } else if (Array.isArray(v) || v instanceof Uint8Array) {
      v = v[indexArg(ix, v.length)];
    } else if (v instanceof Map) {
      v = v.has(ix) ? v.get(ix) : zeroLike([...v.values()]);
    } else if (isPlainObject(v)) {
      if (typeof ix !== 'string') throw new Error(`value has type ${goTypeName(ix)}; should be string`);
      v = Object.prototype.hasOwnProperty.call(v, ix) ? v[ix] : zeroLike(Object.values(v));
    } else {
      throw new Error(`can't index item of type ${goTypeName(v)}`);
    }
  }
  return v;
}

function goSlice(item: unknown, ...indexes: unknown[]): unknown {
  if (item === undefined || item === null) throw new Error('slice of untyped nil');
  if (indexes.length > 3) throw new Error(`too many slice indexes: ${indexes.length}`);
  let len: number;
  let get: (a: number, b: number) => unknown;
  if (typeof item === 'string') {
    const bytes = utf8Bytes(item);
    len = bytes.length;
    if (indexes.length === 3) throw new Error('cannot 3-index slice a string');
    get = (a, b) => Buffer.from(bytes.subarray(a, b)).toString('utf8');
  } else if (Array.isArray(item)) {
    len = item.length;
    get = (a, b) => item.slice(a, b);
  } else {
    throw new Error(`can't slice item of type ${goTypeName(item)}`);
  }
  const idx = [0, len];
  indexes.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isInteger(x)) throw new Error(`cannot index slice/array with type ${goTypeName(x)}`);
    if (x < 0 || x > len) throw new Error(`index out of range: ${x}`);
    idx[i] = x;
  });
  if (idx[0]! > idx[1]!) throw new Error(`invalid slice index: ${idx[0]} > ${idx[1]}`);
  return get(idx[0]!, idx[1]!);
}

type Kind = 'bool' | 'int' | 'float' | 'string' | 'nil' | 'other';
function basicKind(v: unknown): Kind {
  if (v === undefined || v === null) return 'nil';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'number' || typeof v === 'bigint') return Number.isInteger(Number(v)) ? 'int' : 'float';
  if (typeof v === 'string') return 'string';
  return 'other';
}

function goEq(a: unknown, ...rest: unknown[]): boolean {
  if (rest.length === 0) throw new Error('missing argument for comparison');
  const ka = basicKind(a);
  for (const b of rest) {
    const kb = basicKind(b);
    let truth: boolean;
    if (ka === 'nil' || kb === 'nil') truth = ka === kb;
    else if (ka === 'other' || kb === 'other') {
      if (Array.isArray(a) || Array.isArray(b) || isPlainObject(a) || isPlainObject(b) || a instanceof Map || b instanceof Map) {
        throw new Error('non-comparable types');
      }
      truth = a === b;
    } else {
      const numeric = (k: Kind) => k === 'int' || k === 'float';
      if (ka !== kb && !(numeric(ka) && numeric(kb))) throw new Error('incompatible types for comparison');
      truth = typeof a === typeof b ? a === b : Number(a) === Number(b);
    }
    if (truth) return true;
  }
  return false;
}

function goLt(a: unknown, b: unknown): boolean {
  const ka = basicKind(a);
  const kb = basicKind(b);
  const numeric = (k: Kind) => k === 'int' || k === 'float';
  if (ka === 'bool' || ka === 'nil' || ka === 'other' || kb === 'bool' || kb === 'nil' || kb === 'other') {
    throw new Error('invalid type for comparison');
  }
  if (ka !== kb && !(numeric(ka) && numeric(kb))) throw new Error('incompatible types for comparison');
  if (ka === 'string') return (a as string) < (b as string);
  return Number(a) < Number(b);
}

function htmlEscape(s: string): string {
  return s.replace(/[&'<>"\0]/g, (c) =>
    c === '&' ? '&amp;' : c === '\'' ? '&#39;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&#34;' : '\ufffd',
  );
}

function jsEscape(s: string): string {
  let out = '';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    switch (ch) {
      case '\\':
        out += '\\\\';
        break;
      case '\'':
        out += "\\'";
        break;
      case '"':
        out += '\\"';
        break;
      case '<':
        out += '\\u003C';
        break;
      case '>':
        out += '\\u003E';
        break;
      case '&':
        out += '\\u0026';
        break;
      case '=':
        out += '\\u003D';
        break;
      default:
        if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) out += '\\u' + cp.toString(16).toUpperCase().padStart(4, '0');
        else out += ch;
    }
  }
  return out;
}

function queryEscape(s: string): string {
  let out = '';
  for (const b of utf8Bytes(s)) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else if (c === ' ') out += '+';
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** strings.Title: upper-case the first letter of each word. */
function goTitle(s: string): string {
  let prev = ' ';
  let out = '';
  for (const ch of s) {
    const sep = (() => {
      const cp = prev.codePointAt(0)!;
      if (cp <= 0x7f) return !/[0-9a-zA-Z_]/.test(prev);
      if (/[\p{L}\p{Nd}]/u.test(prev)) return false;
      return /\s/u.test(prev);
    })();
    out += sep ? ch.toUpperCase() : ch;
    prev = ch;
  }
  return out;
}

export const BUILTINS: Record<string, FuncDef> = {
  and: { params: ['value'], variadic: 'value', fn: () => undefined, lazy: 'and' },
  or: { params: ['value'], variadic: 'value', fn: () => undefined, lazy: 'or' },
  not: { params: ['value'], fn: (v: unknown) => !isTrue(v) },
  len: { params: ['value'], fn: goLen },
  index: { params: ['value'], variadic: 'value', fn: goIndex },
  slice: { params: ['value'], variadic: 'value', fn: goSlice },
  print: { params: [], variadic: 'any', fn: (...a: unknown[]) => sprint(a) },
  println: { params: [], variadic: 'any', fn: (...a: unknown[]) => sprintln(a) },
  printf: { params: ['string'], variadic: 'any', fn: (f: string, ...a: unknown[]) => sprintf(f, a) },
  html: { params: [], variadic: 'any', fn: (...a: unknown[]) => htmlEscape(evalArgsString(a)) },
  js: { params: [], variadic: 'any', fn: (...a: unknown[]) => jsEscape(evalArgsString(a)) },
  urlquery: { params: [], variadic: 'any', fn: (...a: unknown[]) => queryEscape(evalArgsString(a)) },
  eq: { params: ['value'], variadic: 'value', fn: goEq },
  ne: { params: ['value', 'value'], fn: (a: unknown, b: unknown) => !goEq(a, b) },
  lt: { params: ['value', 'value'], fn: goLt },
  le: { params: ['value', 'value'], fn: (a: unknown, b: unknown) => goLt(a, b) || goEq(a, b) },
  gt: { params: ['value', 'value'], fn: (a: unknown, b: unknown) => !goLt(a, b) && !goEq(a, b) },
  ge: { params: ['value', 'value'], fn: (a: unknown, b: unknown) => !goLt(a, b) },
  call: {
    params: ['value'],
    variadic: 'value',
    fn: (f: unknown, ...a: unknown[]) => {
      if (typeof f !== 'function') throw new Error(`non-function of type ${goTypeName(f)}`);
      return f(...a);
    },
  },
};

export function jsonOrEmpty(v: unknown, asMap: boolean): string {
  try {
    return goJson(v, asMap);
  } catch {
    return ''; // docker ignores the encoder's error and prints nothing
  }
}

/** The functions docker's CLI adds (cli/templates/templates.go). */
export const DOCKER_FUNCS: Record<string, FuncDef> = {
  json: { params: ['any'], fn: (v: unknown) => jsonOrEmpty(v, false) },
  split: {
    params: ['string', 'string'],
    fn: (s: string, sep: string) => (sep === '' ? Array.from(s) : s.split(sep)),
  },
  join: { params: ['strings', 'string'], fn: (a: string[], sep: string) => a.join(sep) },
  title: { params: ['string'], fn: goTitle },
  lower: { params: ['string'], fn: (s: string) => s.toLowerCase() },
  upper: { params: ['string'], fn: (s: string) => s.toUpperCase() },
  pad: {
    params: ['string', 'int', 'int'],
    fn: (s: string, prefix: number, suffix: number) => (s === '' ? s : ' '.repeat(Math.max(prefix, 0)) + s + ' '.repeat(Math.max(suffix, 0))),
  },
  truncate: {
    params: ['string', 'int'],
    fn: (s: string, n: number) => {
      const bytes = utf8Bytes(s);
      if (bytes.length < n) return s;
      return Buffer.from(bytes.subarray(0, Math.max(n, 0))).toString('utf8');
    },
  },
};

/** docker's HeaderFunctions: while rendering a table header every docker function passes its first argument through. */
export const HEADER_FUNCS: Record<string, FuncDef> = {
  json: { params: ['string'], fn: (v: string) => v },
  split: { params: ['string', 'string'], fn: (v: string) => v },
  join: { params: ['string', 'string'], fn: (v: string) => v },
  title: { params: ['string'], fn: (v: string) => v },
  lower: { params: ['string'], fn: (v: string) => v },
  upper: { params: ['string'], fn: (v: string) => v },
  pad: { params: ['string', 'int', 'int'], fn: (v: string) => v },
  truncate: { params: ['string', 'int'], fn: (v: string) => v },
};
