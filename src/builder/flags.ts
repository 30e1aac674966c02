// The build's own flags as docker buildx reads them: --secret, --ssh, -o/--output, --cache-from/--cache-to
// (comma-separated key=value fields, CSV quoting). Pure parsing; reading files and sockets is the caller's.
import fs from 'node:fs';
import { InvalidArgumentError } from '../errors.js';
import { csvFields } from '../dockerfile/mounts.js';

function fieldsOf(flag: string, value: string): [string, string | undefined][] {
  let fields: string[];
  try {
    fields = csvFields(value);
  } catch (e) {
    throw new InvalidArgumentError(`invalid argument "${value}" for "--${flag}" flag: ${(e as Error).message}`);
  }
  return fields.map((f) => {
    const eq = f.indexOf('=');
    return eq < 0 ? [f.toLowerCase(), undefined] : [f.slice(0, eq).toLowerCase(), f.slice(eq + 1)];
  });
}

export interface SecretSpec {
  id: string;
  /** Read from this file … */
  file?: string;
  /** … or this environment variable. */
  env?: string;
}

/** `--secret id=ID[,src=FILE|,env=VAR][,type=file|env]` (buildx); with neither, the variable named ID. */
export function parseSecretFlag(value: string): SecretSpec {
  let type: string | undefined;
  const s: Partial<SecretSpec> = {};
  for (const [k, v] of fieldsOf('secret', value)) {
    if (v === undefined) throw new InvalidArgumentError(`invalid field '${k}' must be a key=value pair`);
    switch (k) {
      case 'type':
        if (v !== 'file' && v !== 'env') throw new InvalidArgumentError(`unsupported secret type "${v}"`);
        type = v;
        break;
      case 'id':
        s.id = v;
        break;
      case 'source':
      case 'src':
        s.file = v;
        break;
      case 'env':
        s.env = v;
        break;
      default:
        throw new InvalidArgumentError(`unexpected key '${k}' in '${k}=${v}'`);
    }
  }
  if (type === 'env' && s.env === undefined) {
    s.env = s.file;
    delete s.file;
  }
  if (!s.id) {
    // buildx: the id defaults to the file's or variable's name.
    if (s.file) s.id = s.file.split('/').pop();
    else if (s.env) s.id = s.env;
  }
  if (!s.id) throw new InvalidArgumentError(`invalid secret "${value}": an id is required`);
  return s as SecretSpec;
}

/** The secret's value: from its file, its variable, or (neither given) the variable named like its id. */
export function readSecret(s: SecretSpec, env: NodeJS.ProcessEnv = process.env): Buffer {
  if (s.file !== undefined) {
    try {
      return fs.readFileSync(s.file);
    } catch (e) {
      throw new InvalidArgumentError(`failed to read secret ${s.id}: ${(e as Error).message}`);
    }
  }
  const name = s.env ?? s.id;
  const v = env[name];
  if (v === undefined) throw new InvalidArgumentError(`secret ${s.id}: environment variable ${name} is not set`);
  return Buffer.from(v);
}

/** `--ssh default|ID[=SOCKET]`: an agent socket by id (default: $SSH_AUTH_SOCK). Key files are not read. */
export function parseSshFlag(value: string, env: NodeJS.ProcessEnv = process.env): { id: string; socket: string } {
  const eq = value.indexOf('=');
  const id = eq < 0 ? value : value.slice(0, eq);
  const paths = eq < 0 ? [] : value.slice(eq + 1).split(',');
  if (!id) throw new InvalidArgumentError(`invalid argument "${value}" for "--ssh" flag: an id is required`);
  if (paths.length > 1) throw new InvalidArgumentError(`--ssh ${value}: ply forwards one agent socket per id (key files are not supported)`);
  const socket = paths[0] || env.SSH_AUTH_SOCK;
  if (!socket) throw new InvalidArgumentError(`invalid empty ssh agent socket: make sure SSH_AUTH_SOCK is set`);
  const st = fs.statSync(socket, { throwIfNoEntry: false });
  if (!st) throw new InvalidArgumentError(`--ssh ${id}: ${socket}: no such file or directory`);
  if (!st.isSocket()) throw new InvalidArgumentError(`--ssh ${id}: ${socket} is not an agent socket (ply forwards agents; key files are not supported)`);
  return { id, socket };
}

/** One `-o/--output` as buildx reads it; `dest` '-' is standard output. `names`: type=image|docker|oci `name=`. */
export interface OutputSpec {
  type: 'image' | 'local' | 'tar' | 'docker' | 'oci';
  dest?: string;
  names?: string[];
}

/** Attributes buildkit's exporters take that change nothing here. */
const IGNORED_OUTPUT_ATTRS = new Set(['compression', 'compression-level', 'force-compression', 'oci-mediatypes', 'annotation', 'platform-split']);

/**
 * `-o type=local,dest=DIR`, `type=tar,dest=FILE|-`, `type=oci|docker,dest=FILE[,name=REF]`, `type=image|docker`
 * (into the store, `name=` tags it); the docker CLI's shorthands: `-o -` (a tar on stdout) and `-o DIR`.
 */
export function parseOutputFlag(value: string): OutputSpec {
  if (value === '-') return { type: 'tar', dest: '-' };
  if (!value.includes('=')) return { type: 'local', dest: value };
  let type: string | undefined;
  let dest: string | undefined;
  const names: string[] = [];
  for (const [k, v] of fieldsOf('output', value)) {
    if (v === undefined) throw new InvalidArgumentError(`invalid value ${k}`);
    if (k === 'type') type = v;
    else if (k === 'dest') dest = v;
    else if (k === 'name' || k === 'names') names.push(...v.split(',').filter(Boolean));
    else if (k === 'push' && /^(1|t|true)$/i.test(v)) throw new InvalidArgumentError(`output push=true is not supported by ply build: build, then ply push`);
    else if (k === 'push' || k.startsWith('annotation') || IGNORED_OUTPUT_ATTRS.has(k)) continue;
    else throw new InvalidArgumentError(`unknown output attribute "${k}" for ${type ?? 'the'} exporter`);
  }
  if (!type) throw new InvalidArgumentError('type is required for output');
  switch (type) {
    case 'local':
    case 'tar':
      if (!dest) throw new InvalidArgumentError(`dest is required for ${type} exporter`);
      return { type, dest };
    case 'oci':
      if (!dest) throw new InvalidArgumentError('dest is required for oci exporter');
      return { type, dest, ...(names.length ? { names } : {}) };
    case 'docker':
      return dest ? { type, dest, ...(names.length ? { names } : {}) } : { type: 'image', ...(names.length ? { names } : {}) };
    case 'image':
      return { type: 'image', ...(names.length ? { names } : {}) };
    case 'registry':
      throw new InvalidArgumentError('output type=registry is not supported by ply build: build, then ply push');
    default:
      throw new InvalidArgumentError(`unsupported output type "${type}": use local, tar, oci, docker or image`);
  }
}

export interface CacheFlag {
  location: { type: 'registry'; ref: string } | { type: 'local'; dir: string; tag?: string };
  mode: 'min' | 'max';
  ignoreError: boolean;
}

const IGNORED_CACHE_ATTRS = new Set(['compression', 'compression-level', 'force-compression', 'oci-mediatypes', 'image-manifest', 'digest']);

/**
 * `--cache-from` / `--cache-to` as buildx reads them: `type=registry,ref=NAME[:TAG]`, `type=local,src=DIR` (from)
 * or `dest=DIR` (to) with `tag=`, `mode=min|max` and `ignore-error=true` (to); a bare NAME is a registry ref.
 */
export function parseCacheFlag(value: string, direction: 'from' | 'to'): CacheFlag {
  const flag = `cache-${direction}`;
  if (!value.includes('=')) return { location: { type: 'registry', ref: value }, mode: 'min', ignoreError: false };
  const f = new Map<string, string>();
  for (const [k, v] of fieldsOf(flag, value)) {
    if (v === undefined) throw new InvalidArgumentError(`invalid value ${k} for --${flag}`);
    f.set(k, v);
  }
  const type = f.get('type') ?? 'registry';
  const mode = f.get('mode') ?? 'min';
  if (mode !== 'min' && mode !== 'max') throw new InvalidArgumentError(`invalid cache mode "${mode}": use min or max`);
  const ignoreError = /^(1|t|true)$/i.test(f.get('ignore-error') ?? '');
  for (const k of f.keys()) {
    if (!['type', 'ref', 'src', 'dest', 'tag', 'mode', 'ignore-error'].includes(k) && !IGNORED_CACHE_ATTRS.has(k)) {
      throw new InvalidArgumentError(`unknown --${flag} attribute "${k}" for cache type ${type}`);
    }
  }
  switch (type) {
    case 'registry': {
      const ref = f.get('ref');
      if (!ref) throw new InvalidArgumentError(`--${flag} type=registry: ref is required`);
      return { location: { type, ref }, mode, ignoreError };
    }
    case 'local': {
      const dir = f.get(direction === 'from' ? 'src' : 'dest');
      if (!dir) throw new InvalidArgumentError(`--${flag} type=local: ${direction === 'from' ? 'src' : 'dest'} is required`);
      const tag = f.get('tag');
      return { location: { type, dir, ...(tag ? { tag } : {}) }, mode, ignoreError };
    }
    default:
      throw new InvalidArgumentError(`unsupported cache type "${type}": ply keeps build caches in a registry (type=registry) or a directory (type=local)`);
  }
}
