// Docker's list filters: `--filter key=value` on the command line, `filters={"key":["value"]}` (or the older
// `{"key":{"value":true}}`) in the API. Both become one map, checked against the keys a list accepts.
import { InvalidArgumentError, UsageError } from '../errors.js';

export type FilterInput = string[] | Record<string, string[] | Record<string, boolean>> | Map<string, string[]>;

export class Filters {
  private constructor(private readonly values: Map<string, string[]>) {}

  /** `accepted`: the keys the list knows (others are errors), or 'any'. */
  static parse(input: FilterInput | undefined, accepted: readonly string[] | 'any'): Filters {
    const values = new Map<string, string[]>();
    const add = (k: string, v: string) => {
      if (accepted !== 'any' && !accepted.includes(k)) throw new InvalidArgumentError(`invalid filter '${k}'`);
      values.set(k, [...(values.get(k) ?? []), v]);
    };
    if (Array.isArray(input)) {
      for (const item of input) {
        const i = item.indexOf('=');
        // docker's CLI refuses it as a flag value (125).
        if (i <= 0) throw new UsageError('bad format of filter (expected name=value)');
        add(item.slice(0, i), item.slice(i + 1));
      }
    } else if (input instanceof Map) {
      for (const [k, vs] of input) for (const v of vs) add(k, v);
    } else if (input) {
      for (const [k, vs] of Object.entries(input)) for (const v of Array.isArray(vs) ? vs : Object.keys(vs).filter((x) => vs[x])) add(k, v);
    }
    return new Filters(values);
  }

  has(key: string): boolean {
    return this.values.has(key);
  }

  get(key: string): string[] {
    return this.values.get(key) ?? [];
  }

  /** True when the key is absent or one of its values satisfies `pred` (docker ORs values of one key). */
  match(key: string, pred: (value: string) => boolean): boolean {
    const vs = this.values.get(key);
    return vs === undefined || vs.some(pred);
  }

  /** A boolean filter ('true'/'false'/'1'/'0'); undefined when absent. */
  bool(key: string): boolean | undefined {
    const vs = this.values.get(key);
    if (!vs) return undefined;
    const v = vs[vs.length - 1]!;
    if (!['true', 'false', '1', '0'].includes(v)) throw new InvalidArgumentError(`invalid filter '${key}=${v}'`);
    return v === 'true' || v === '1';
  }
}

/** docker's label filter: `key` (present) or `key=value`, every one required. */
export function labelsMatch(filters: Filters, labels: Record<string, string> | null | undefined): boolean {
  return filters.get('label').every((f) => labelMatches(f, labels));
}

/** One label filter value, `key` (present) or `key=value`. */
export function labelMatches(f: string, labels: Record<string, string> | null | undefined): boolean {
  const l = labels ?? {};
  const j = f.indexOf('=');
  return j < 0 ? f in l : l[f.slice(0, j)] === f.slice(j + 1);
}

/** Go's path.Match as docker's reference filter uses it ('*' does not cross '/'). */
export function globMatch(pattern: string, s: string): boolean {
  const re = pattern.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${re}$`).test(s);
}

/** docker's time arguments: a duration before now ('42m', '1.5h'), unix seconds, or an RFC 3339 time. */
export function parseTime(s: string, what = 'until'): number {
  const rel = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s);
  if (rel) return Date.now() - Number(rel[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[rel[2] as 'ms' | 's' | 'm' | 'h'];
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw new InvalidArgumentError(`invalid value for "${what}": ${s}`);
  return t;
}
