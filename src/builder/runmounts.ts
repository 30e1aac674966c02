// What `RUN --mount` gives a RUN step's container (buildkit's semantics), and what of it enters the step's cache key:
//
//   bind    the context (after .dockerignore) or a stage's/image's filesystem at `source`; read-only unless `rw`,
//           and then writes go to a throw-away copy. Key: the source's content checksum, or the stage's image ID.
//   cache   a directory kept in the store across builds (cachemounts.ts). Key: id, target, sharing, owner, mode;
//           never its content, and never in the image (the container's init layer holds the mount point).
//   tmpfs   a fresh tmpfs. Key: target, size.
//   secret  a file on a private tmpfs (or an environment variable, `env=`) with the value given to the build
//           (`--secret id=…,src=FILE|env=VAR`). Key: id and target only: the value is never in a key, a layer, the
//           history, the container's record or the build's output.
//   ssh     a socket forwarding to an agent given with `--ssh id=SOCKET`, $SSH_AUTH_SOCK set to it. Key: id, target.
//
// A secret or ssh mount whose id was not given is left out, unless `required` (then the build fails).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { RunMount } from '../dockerfile/mounts.js';
import * as native from '../native/index.js';
import type { MountSpec } from '../runtime/spec.js';
import { resolveInRoot } from '../util/rootpath.js';
import { unmountIfMounted } from '../snapshot/mount.js';
import type { CacheMounts } from './cachemounts.js';
import type { SourceTree } from './context.js';
import { BuildError } from './errors.js';

/** A stage or image a mount reads from: its image ID (for the key) and, on demand, its filesystem. */
export interface MountSource {
  id: string;
  rootfs(): Promise<string | null>;
}

export interface RunMountEnv {
  /** The build's private directory (removed when it ends). */
  workDir: string;
  /** The stage's WORKDIR: relative targets are below it. */
  workingDir: string;
  context(): SourceTree;
  /** `from=`: an earlier stage (name or index) or an image. */
  from(name: string): Promise<MountSource>;
  secrets: Record<string, Buffer>;
  /** ssh agent sockets by id. */
  ssh: Record<string, string>;
  cacheMounts: CacheMounts;
  interrupted(): boolean;
}

/** The mounts of one RUN, resolved: what goes into the key, then what the container gets. */
export interface ResolvedMounts {
  keyParts: string[];
  /** Makes what the container mounts; `release` undoes it (after the container is gone). */
  prepare(): Promise<PreparedMounts>;
}

export interface PreparedMounts {
  mounts: MountSpec[];
  /** Environment the container gets (persisted with it: never a secret). */
  env: string[];
  /** Secret environment variables: given to the runtime only, never recorded. */
  secretEnv: string[];
  release(): Promise<void>;
}

interface Item {
  key: string;
  make(p: Preparing): Promise<void>;
}

interface Preparing {
  mounts: MountSpec[];
  env: string[];
  secretEnv: string[];
  cleanups: (() => void | Promise<void>)[];
  n: number;
}

const fail = (msg: string): never => {
  throw new BuildError(msg);
};

function mountTarget(m: RunMount, workingDir: string): string {
  const t = m.target ?? '';
  const target = t.startsWith('/') ? path.posix.normalize(t) : path.posix.join('/', workingDir, t);
  if (target === '/') fail(`invalid mount target "${target}"`);
  return target.replace(/\/+$/, '');
}

export async function resolveMounts(mounts: RunMount[], env: RunMountEnv): Promise<ResolvedMounts> {
  const items: Item[] = [];
  let sshCount = 0;
  const targets = new Set<string>();
  const checkTarget = (t: string) => {
    if (targets.has(t)) fail(`RUN --mount: duplicate mount target ${t}`);
    targets.add(t);
  };
  for (const m of mounts) {
    switch (m.type) {
      case 'bind':
        items.push(await bindItem(m, env, checkTarget));
        break;
      case 'cache':
        items.push(await cacheItem(m, env, checkTarget));
        break;
      case 'tmpfs': {
        const target = mountTarget(m, env.workingDir);
        checkTarget(target);
        items.push({
          key: `tmpfs target=${target} size=${m.sizeLimit ?? 0}`,
          make: async (p) => {
            p.mounts.push({ type: 'tmpfs', target, options: ['exec', ...(m.sizeLimit ? [`size=${m.sizeLimit}`] : [])] });
          },
        });
        break;
      }
      case 'secret':
        items.push(secretItem(m, env, checkTarget));
        break;
      case 'ssh':
        items.push(sshItem(m, env, sshCount++, checkTarget));
        break;
    }
  }
  return {
    keyParts: items.map((i) => i.key),
    prepare: async () => {
      const p: Preparing = { mounts: [], env: [], secretEnv: [], cleanups: [], n: 0 };
      const release = async () => {
        for (const c of p.cleanups.splice(0).reverse()) {
          try {
            await c();
          } catch {
            // best effort: the build's directory goes at the end anyway
          }
        }
      };
      try {
        for (const i of items) await i.make(p);
      } catch (e) {
        await release();
        throw e;
      }
      return { mounts: p.mounts, env: p.env, secretEnv: p.secretEnv, release };
    },
  };
}

function scratchDir(env: RunMountEnv, p: Preparing, what: string): string {
  const dir = path.join(env.workDir, `mount-${what}-${process.hrtime.bigint()}-${p.n++}`);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  p.cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A writable throw-away copy of `src` (rw binds: what the RUN writes there is discarded). */
function writableCopy(src: string, env: RunMountEnv, p: Preparing): string {
  const dir = scratchDir(env, p, 'rw');
  const dest = path.join(dir, 'data');
  execFileSync('cp', ['-a', '--reflink=auto', src, dest], { stdio: ['ignore', 'ignore', 'pipe'] });
  return dest;
}

async function bindItem(m: RunMount, env: RunMountEnv, checkTarget: (t: string) => void): Promise<Item> {
  const target = mountTarget(m, env.workingDir);
  checkTarget(target);
  const source = path.posix.join('/', m.source ?? '/');
  const mode = `target=${target} source=${source} ro=${m.readOnly}`;
  if (m.from === undefined) {
    // The context as COPY sees it: .dockerignore'd paths are not there.
    const tree = env.context();
    let resolved;
    try {
      resolved = tree.resolve(source === '/' ? '.' : source.slice(1), 'RUN --mount');
    } catch {
      return fail(`RUN --mount=type=bind: source "${m.source ?? '/'}" not found in the build context`);
    }
    if (resolved.wildcard) fail(`RUN --mount=type=bind: source "${m.source}" must not contain wildcards`);
    const match = resolved.matches[0]!;
    return {
      key: `bind context ${mode} sum=${tree.checksum([resolved])}`,
      make: async (p) => {
        let src: string;
        if (tree.matcher === null && m.readOnly) {
          src = match.abs;
        } else {
          // Ignored files filtered out (and writes made to a copy): the matched entries copied.
          const dir = scratchDir(env, p, 'ctx');
          src = path.join(dir, 'data');
          copyEntries(match.isDir, match.entries, src);
        }
        p.mounts.push({ type: 'bind', source: src, target, readonly: m.readOnly });
      },
    };
  }
  const from = await env.from(m.from);
  return {
    key: `bind from=${from.id} ${mode}`,
    make: async (p) => {
      const root = (await from.rootfs()) ?? scratchDir(env, p, 'empty');
      const src = resolveInRoot(root, source);
      if (!fs.existsSync(src)) fail(`RUN --mount=type=bind: source "${m.source ?? '/'}" not found in ${m.from}`);
      p.mounts.push({ type: 'bind', source: m.readOnly ? src : writableCopy(src, env, p), target, readonly: m.readOnly });
    },
  };
}

/** Writes a resolved context match (its entries, parents first) at `dest`. */
function copyEntries(isDir: boolean, entries: { rel: string; abs: string; type: string; mode: number; linkname?: string }[], dest: string): void {
  for (const e of entries) {
    const to = isDir ? (e.rel === '' ? dest : path.join(dest, e.rel)) : dest;
    if (e.type === 'dir') fs.mkdirSync(to, { recursive: true, mode: 0o755 });
    else if (e.type === 'symlink') fs.symlinkSync(e.linkname!, to);
    else fs.copyFileSync(e.abs, to);
    if (e.type !== 'symlink') fs.chmodSync(to, e.mode);
  }
}

async function cacheItem(m: RunMount, env: RunMountEnv, checkTarget: (t: string) => void): Promise<Item> {
  const target = mountTarget(m, env.workingDir);
  checkTarget(target);
  const id = m.id || path.posix.normalize(m.target ?? '');
  const sharing = m.sharing ?? 'shared';
  const from = m.from !== undefined ? await env.from(m.from) : undefined;
  const source = path.posix.join('/', m.source ?? '/');
  return {
    key: `cache id=${id} target=${target} sharing=${sharing} ro=${m.readOnly} uid=${m.uid ?? ''} gid=${m.gid ?? ''} mode=${m.mode?.toString(8) ?? ''} from=${from?.id ?? ''} source=${source}`,
    make: async (p) => {
      const lease = await env.cacheMounts.acquire(id, sharing, { uid: m.uid, gid: m.gid, mode: m.mode }, env.interrupted);
      p.cleanups.push(() => lease.release());
      if (lease.fresh && from) {
        // A cache based on a stage: a new cache starts with that stage's files.
        const root = await from.rootfs();
        const src = root ? resolveInRoot(root, source) : undefined;
        if (src && fs.statSync(src, { throwIfNoEntry: false })?.isDirectory()) {
          execFileSync('cp', ['-a', '--reflink=auto', `${src}/.`, lease.dir], { stdio: ['ignore', 'ignore', 'pipe'] });
        }
      }
      p.mounts.push({ type: 'bind', source: lease.dir, target, readonly: m.readOnly });
    },
  };
}

/** A private tmpfs for the build's secrets (never on the store's disk). */
function secretDir(env: RunMountEnv, p: Preparing): string {
  const dir = path.join(env.workDir, `secrets-${process.hrtime.bigint()}-${p.n++}`);
  fs.mkdirSync(dir, { mode: 0o700 });
  native.mount('tmpfs', dir, 'tmpfs', native.MS_NOSUID | native.MS_NODEV | native.MS_NOEXEC, 'size=16m,mode=0700');
  p.cleanups.push(() => {
    unmountIfMounted(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

function secretItem(m: RunMount, env: RunMountEnv, checkTarget: (t: string) => void): Item {
  const id = m.source || m.id || path.posix.basename(m.target ?? '');
  if (!id) fail('one of source, target required');
  const target = m.env !== undefined && !m.target ? undefined : mountTarget({ ...m, target: m.target || `/run/secrets/${path.posix.basename(id)}` }, env.workingDir);
  if (target) checkTarget(target);
  return {
    key: `secret id=${id} target=${target ?? ''} env=${m.env ?? ''} required=${m.required} uid=${m.uid ?? ''} gid=${m.gid ?? ''} mode=${m.mode?.toString(8) ?? ''}`,
    make: async (p) => {
      const value = Object.hasOwn(env.secrets, id) ? env.secrets[id] : undefined;
      if (value === undefined) {
        if (m.required) fail(`secret ${id}: not found`);
        return;
      }
      if (m.env !== undefined) p.secretEnv.push(`${m.env}=${value.toString('utf8')}`);
      if (target) {
        const dir = secretDir(env, p);
        const file = path.join(dir, 'secret');
        fs.writeFileSync(file, value, { mode: 0o400 });
        fs.chmodSync(file, m.mode ?? 0o400);
        fs.chownSync(file, m.uid ?? 0, m.gid ?? 0);
        p.mounts.push({ type: 'bind', source: file, target, readonly: true });
      }
    },
  };
}

function sshItem(m: RunMount, env: RunMountEnv, n: number, checkTarget: (t: string) => void): Item {
  const id = m.id || 'default';
  const target = mountTarget({ ...m, target: m.target || `/run/buildkit/ssh_agent.${n}` }, env.workingDir);
  checkTarget(target);
  return {
    key: `ssh id=${id} target=${target} required=${m.required} uid=${m.uid ?? ''} gid=${m.gid ?? ''} mode=${m.mode?.toString(8) ?? ''}`,
    make: async (p) => {
      const agent = Object.hasOwn(env.ssh, id) ? env.ssh[id] : undefined;
      if (agent === undefined) {
        if (m.required) fail(`no SSH key "${id}" forwarded from the client`);
        return;
      }
      // A socket of our own that forwards to the agent: its owner and mode are the mount's, not the agent's.
      const dir = scratchDir(env, p, 'ssh');
      const sock = path.join(dir, 'agent.sock');
      const open = new Set<net.Socket>();
      const server = net.createServer((conn) => {
        const up = net.connect(agent);
        open.add(conn).add(up);
        conn.on('close', () => open.delete(conn));
        up.on('close', () => open.delete(up));
        conn.pipe(up).pipe(conn);
        const end = () => {
          conn.destroy();
          up.destroy();
        };
        conn.on('error', end);
        up.on('error', end);
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(sock, () => resolve());
      });
      p.cleanups.push(
        () =>
          new Promise<void>((r) => {
            for (const s of open) s.destroy();
            server.close(() => r());
          }),
      );
      fs.chmodSync(sock, m.mode ?? 0o600);
      fs.chownSync(sock, m.uid ?? 0, m.gid ?? 0);
      p.mounts.push({ type: 'bind', source: sock, target, readonly: false });
      if (n === 0 || !p.env.some((e) => e.startsWith('SSH_AUTH_SOCK='))) p.env.push(`SSH_AUTH_SOCK=${target}`);
    },
  };
}
