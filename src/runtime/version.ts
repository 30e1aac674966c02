// The OCI runtime's own version, as docker's `version` lists it among the Server's components: `runc --version`
// (or crun's) parsed once per binary. Spawning it costs more than the rest of `ply version`, so the answer is kept in
// a small file beside the store, keyed by the binary's identity (path, inode, size, mtime): an upgrade asks again.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface RuntimeVersion {
  /** The binary's name, as docker names the component ("runc", "crun"). */
  name: string;
  version: string;
  commit: string;
}

/** The runtime new containers get unless they ask for another: $PLY_RUNTIME, else runc. */
export function defaultRuntimeName(): string {
  return process.env.PLY_RUNTIME || 'runc';
}

const asked = new Map<string, RuntimeVersion | undefined>();

/**
 * `NAME --version` parsed as moby parses it ("NAME version X" and "commit: Y"); undefined when the binary is
 * missing or says something else. `cacheFile`, when given, keeps answers across processes.
 */
export function runtimeVersion(name: string = defaultRuntimeName(), cacheFile?: string): RuntimeVersion | undefined {
  if (asked.has(name)) return asked.get(name);
  const bin = findExecutable(name);
  let v: RuntimeVersion | undefined;
  if (bin) {
    const st = fs.statSync(bin);
    const key = `${bin}:${st.ino}:${st.size}:${st.mtimeMs}`;
    const cache = readCache(cacheFile);
    const hit = cache[key];
    if (hit && typeof hit.version === 'string' && typeof hit.commit === 'string') v = { name, version: hit.version, commit: hit.commit };
    else {
      v = parseRuntimeVersion(name, spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 5000 }).stdout ?? '');
      if (v && cacheFile) writeCache(cacheFile, { ...dropKeysOf(cache, bin), [key]: { version: v.version, commit: v.commit } });
    }
  }
  asked.set(name, v);
  return v;
}

export function parseRuntimeVersion(name: string, out: string): RuntimeVersion | undefined {
  const version = /^\S+ version (\S+)/m.exec(out)?.[1];
  if (!version) return undefined;
  return { name, version, commit: /^commit: *(\S*)/m.exec(out)?.[1] ?? '' };
}

/** `name` resolved through $PATH as execvp does (a name with a slash is taken as it is). */
function findExecutable(name: string): string | undefined {
  const dirs = name.includes('/') ? [''] : (process.env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':');
  for (const dir of dirs) {
    const p = dir ? path.join(dir, name) : name;
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return path.resolve(p);
    } catch {
      // not here
    }
  }
  return undefined;
}

type Cache = Record<string, { version?: unknown; commit?: unknown }>;

function readCache(file: string | undefined): Cache {
  if (!file) return {};
  try {
    const c = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    return c && typeof c === 'object' && !Array.isArray(c) ? (c as Cache) : {};
  } catch {
    return {};
  }
}

/** Entries of an older binary at the same path go: the file holds one answer per binary. */
function dropKeysOf(cache: Cache, bin: string): Cache {
  return Object.fromEntries(Object.entries(cache).filter(([k]) => !k.startsWith(`${bin}:`)));
}

function writeCache(file: string, cache: Cache): void {
  try {
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(cache), { mode: 0o644 });
    fs.renameSync(tmp, file);
  } catch {
    // a store that is not there or not writable: asked again next time
  }
}
