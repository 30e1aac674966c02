// `RUN --mount=…` specs (buildkit instructions/commands_runmount.go): comma-separated fields (CSV quoting), the
// same keys, defaults and messages. Parsed twice, as buildkit does: once when the Dockerfile is read (values that
// hold variables are left for later), then at build time with the stage's variables expanded.

export type MountType = 'bind' | 'cache' | 'tmpfs' | 'secret' | 'ssh';
export type CacheSharing = 'shared' | 'private' | 'locked';

export interface RunMount {
  type: MountType;
  /** bind/cache: a stage name or index, or an image; none: the build context (bind) or an empty dir (cache). */
  from?: string;
  source?: string;
  target?: string;
  readOnly: boolean;
  /** tmpfs `size=` in bytes. */
  sizeLimit?: number;
  /** `id=`: the cache's, secret's or ssh agent's name. */
  id?: string;
  sharing?: CacheSharing;
  /** secret/ssh: a missing one is an error (else the mount is left out). */
  required: boolean;
  /** secret: exposed as this environment variable instead of a file. */
  env?: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

const MOUNT_TYPES: readonly MountType[] = ['bind', 'cache', 'tmpfs', 'secret', 'ssh'];
const SHARING: readonly CacheSharing[] = ['shared', 'private', 'locked'];
const ALL_KEYS = ['type', 'from', 'source', 'target', 'readonly', 'id', 'sharing', 'required', 'size', 'mode', 'uid', 'gid', 'src', 'dst', 'destination', 'ro', 'rw', 'readwrite', 'env'];

/** Go's encoding/csv for one record (buildkit's csvvalue): fields split on commas, `"…"` quotes a field. */
export function csvFields(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  for (;;) {
    let field = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw new Error(`failed to parse csv mounts: extraneous or missing " in quoted-field`);
        const ch = line[i]!;
        if (ch === '"') {
          if (line[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += ch;
        i++;
      }
      if (i < line.length && line[i] !== ',') throw new Error(`failed to parse csv mounts: extraneous or missing " in quoted-field`);
    } else {
      const end = line.indexOf(',', i);
      field = end < 0 ? line.slice(i) : line.slice(i, end);
      if (field.includes('"')) throw new Error(`failed to parse csv mounts: bare " in non-quoted-field`);
      i = end < 0 ? line.length : end;
    }
    out.push(field);
    if (i >= line.length) break;
    i++; // the comma
  }
  return out;
}

function parseBool(key: string, value: string): boolean {
  if (/^(1|t|true)$/i.test(value)) return true;
  if (/^(0|f|false)$/i.test(value)) return false;
  throw new Error(`invalid value for ${key}: ${value}`);
}

function parseUint(value: string, base: 8 | 10): number | undefined {
  if (!(base === 8 ? /^[0-7]+$/ : /^[0-9]+$/).test(value)) return undefined;
  const n = parseInt(value, base);
  return n <= 0xffffffff ? n : undefined;
}

/** docker's units.RAMInBytes: `64m`, `1.5g`, `100` (bytes); binary multiples. */
export function ramInBytes(value: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$/i.exec(value.trim());
  if (!m) return undefined;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't' | 'p'];
  return Math.floor(Number(m[1]) * mult);
}

/**
 * One `--mount` value. Without `expand` (parse time) values are not interpreted, except that `from` may not
 * use variables; with it (build time) every value is expanded first, then checked.
 */
export function parseRunMount(val: string, expand?: (word: string) => string): RunMount {
  const fields = csvFields(val);
  const m: RunMount = { type: 'bind', readOnly: false, required: false };
  let roAuto = true;
  for (const field of fields) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    let value = eq < 0 ? '' : field.slice(eq + 1);
    if (eq < 0) {
      if (!expand) continue;
      switch (key) {
        case 'readonly':
        case 'ro':
          m.readOnly = true;
          roAuto = false;
          continue;
        case 'readwrite':
        case 'rw':
          m.readOnly = false;
          roAuto = false;
          continue;
        case 'required':
          if (m.type === 'secret' || m.type === 'ssh') {
            m.required = true;
            continue;
          }
          throw new Error(`unexpected key '${key}' for mount type '${m.type}'`);
        default:
          throw new Error(`invalid field '${field}' must be a key=value pair`);
      }
    }
    if (expand) {
      value = expand(value);
    } else if (key === 'from') {
      const i = value.indexOf('$');
      if (i !== -1 && i !== value.length - 1) throw new Error(`'${key}' doesn't support variable expansion, define alias stage instead`);
    } else {
      continue;
    }
    switch (key) {
      case 'type': {
        const t = value.toLowerCase() as MountType;
        if (!MOUNT_TYPES.includes(t)) throw new Error(`unsupported mount type "${value}"`);
        m.type = t;
        break;
      }
      case 'from':
        m.from = value;
        break;
      case 'source':
      case 'src':
        m.source = value;
        break;
      case 'target':
      case 'dst':
      case 'destination':
        m.target = value;
        break;
      case 'readonly':
      case 'ro':
        m.readOnly = parseBool(key, value);
        roAuto = false;
        break;
      case 'readwrite':
      case 'rw':
        m.readOnly = !parseBool(key, value);
        roAuto = false;
        break;
      case 'required':
        if (m.type !== 'secret' && m.type !== 'ssh') throw new Error(`unexpected key '${key}' for mount type '${m.type}'`);
        m.required = parseBool(key, value);
        break;
      case 'size': {
        if (m.type !== 'tmpfs') throw new Error(`unexpected key '${key}' for mount type '${m.type}'`);
        const n = ramInBytes(value);
        if (n === undefined) throw new Error(`invalid value for ${key}: ${value}`);
        m.sizeLimit = n;
        break;
      }
      case 'id':
        m.id = value;
        break;
      case 'sharing': {
        const s = value.toLowerCase() as CacheSharing;
        if (!SHARING.includes(s)) throw new Error(`unsupported sharing value "${value}"`);
        m.sharing = s;
        break;
      }
      case 'mode': {
        const n = parseUint(value, 8);
        if (n === undefined) throw new Error(`invalid value ${value} for mode`);
        m.mode = n;
        break;
      }
      case 'uid':
      case 'gid': {
        const n = parseUint(value, 10);
        if (n === undefined) throw new Error(`invalid value ${value} for ${key}`);
        m[key] = n;
        break;
      }
      case 'env':
        m.env = value;
        break;
      default: {
        const near = ALL_KEYS.find((k) => k.length > 1 && (k.startsWith(key) || key.startsWith(k)));
        throw new Error(`unexpected key '${key}' in '${field}'${near ? ` (did you mean ${near}?)` : ''}`);
      }
    }
  }
  if (!expand) return m;
  const fileInfoAllowed = m.type === 'secret' || m.type === 'ssh' || m.type === 'cache';
  if (!fileInfoAllowed) {
    for (const k of ['mode', 'uid', 'gid'] as const) if (m[k] !== undefined) throw new Error(`${k} not allowed for "${m.type}" type mounts`);
  }
  if (roAuto) m.readOnly = !(m.type === 'cache' || m.type === 'tmpfs');
  if (m.type === 'secret') {
    if (m.from !== undefined) throw new Error('secret mount should not have a from');
    if (m.sharing !== undefined) throw new Error('secret mount should not define sharing');
    if (!m.source && !m.target && !m.id) throw new Error('invalid secret mount. one of source, target required');
    if (m.source && m.id) throw new Error("both source and id can't be set");
  }
  if (m.sharing !== undefined && m.type !== 'cache') throw new Error(`invalid cache sharing set for ${m.type} mount`);
  if (m.type === 'ssh' && m.source) throw new Error('ssh does not support source');
  return m;
}
