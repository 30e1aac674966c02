// What one run of a container is given on disk: its /etc files, volumes and binds, user, environment and init
// as the OCI runtime bundle (containers/<id>/config.json), and the init layer below its writable layer.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PlyError } from '../errors.js';
import { buildSpec, writeBundle, type MountSpec, type RuntimeSpec } from '../runtime/spec.js';
import { resolveUser } from '../runtime/user.js';
import { specResources } from '../runtime/cgroups.js';
import { resolveInRoot } from '../util/rootpath.js';
import { removeTree } from '../util/fs.js';
import type { Container } from './store.js';

/** The container's cgroup below each hierarchy (runc's cgroupfs driver). */
export const cgroupsPath = (id: string): string => `/ply/${id}`;

const TINI_PATHS = ['/usr/bin/tini-static', '/usr/bin/docker-init', '/usr/libexec/podman/catatonit'];

/** What one run of a container gets besides its spec, never recorded (a build's secret environment variables). */
export interface RuntimeExtras {
  env?: string[];
}

/** The container's network as its run sees it (network/ attached it, or another container's it joins). */
export interface RunNetwork {
  mode: 'host' | 'none';
  netnsPath?: string;
  /** A descriptor holding a new namespace until the container's processes hold it. */
  fd?: number;
  hosts: string;
  resolvConf: string;
  /** Set when the container shares another's namespace, whose hostname it takes. */
  hostname?: string;
}

/** A run ready for the runtime. */
export interface PreparedRun {
  bundle: string;
  rootfs: string;
  spec: RuntimeSpec;
  netFd?: number;
}

/**
 * Writes the bundle of a run into `dir` over the mounted `rootfs`: /etc/hostname, hosts and resolv.conf, the
 * working directory, volumes (a new one gets the image's content first), binds, --init, and config.json.
 */
export async function writeRunBundle(
  c: Container,
  dir: string,
  rootfs: string,
  net: RunNetwork,
  extra: RuntimeExtras,
  volumePath: (name: string) => string,
): Promise<RuntimeSpec> {
  const s = c.spec;
  const etc = {
    hostname: path.join(dir, 'hostname'),
    hosts: path.join(dir, 'hosts'),
    resolvConf: path.join(dir, 'resolv.conf'),
  };
  const hostname = net.hostname ?? s.hostname;
  fs.writeFileSync(etc.hostname, `${hostname}\n`);
  fs.writeFileSync(etc.hosts, net.hosts);
  fs.writeFileSync(etc.resolvConf, net.resolvConf);
  const workdir = resolveInRoot(rootfs, s.workingDir || '/');
  if (!fs.existsSync(workdir)) fs.mkdirSync(workdir, { recursive: true, mode: 0o755 });
  const user = resolveUser(rootfs, s.user);
  const env = [...s.env];
  if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home || '/'}`);
  if (extra.env?.length) env.push(...extra.env);
  const mounts: MountSpec[] = [];
  for (const m of s.mounts) {
    if (m.type === 'volume') {
      const data = volumePath(m.source!);
      if (!fs.existsSync(data)) {
        fs.mkdirSync(data, { recursive: true, mode: 0o755 });
        await copyUp(resolveInRoot(rootfs, m.target), data);
      }
      mounts.push({ ...m, type: 'bind', source: data });
    } else if (m.type === 'bind') {
      if (!fs.existsSync(m.source!)) fs.mkdirSync(m.source!, { recursive: true });
      mounts.push(m);
    } else {
      mounts.push(m);
    }
  }
  let args = [s.path, ...s.args];
  if (s.init) {
    const tini = TINI_PATHS.find((p) => fs.existsSync(p));
    if (!tini) throw new PlyError('--init needs tini (Debian package tini) on the host');
    mounts.push({ type: 'bind', source: tini, target: '/sbin/docker-init', readonly: true });
    args = ['/sbin/docker-init', '--', ...args];
  }
  const spec = buildSpec({
    rootfs,
    readonlyRootfs: s.readonlyRootfs,
    args,
    env,
    cwd: s.workingDir,
    user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
    tty: s.tty,
    ...(s.consoleSize ? { consoleSize: s.consoleSize } : {}),
    hostname,
    network: net.mode,
    netnsPath: net.netnsPath,
    mounts,
    etcFiles: etc,
    privileged: s.privileged,
    capAdd: s.capAdd,
    capDrop: s.capDrop,
    ...(s.noNewPrivileges !== undefined ? { noNewPrivileges: s.noNewPrivileges } : {}),
    ...(s.ulimits?.length ? { rlimits: s.ulimits.map((u) => ({ type: u.name, soft: u.soft, hard: u.hard })) } : {}),
    cgroupsPath: cgroupsPath(c.id),
    ...(s.resources ? { resources: specResources(s.resources) } : {}),
    ...(s.shmSize ? { shmSize: s.shmSize } : {}),
    annotations: { 'org.opencontainers.image.ref.name': c.imageRef },
  });
  writeBundle(dir, spec);
  return spec;
}

/**
 * The container's init layer in `dir`, between the image and its writable layer (as docker's "-init" layer): the
 * mount points the runtime needs, so creating them never shows up in `diff` or `commit`.
 */
export function initLayer(c: Container, dir: string): string {
  const init = path.join(dir, 'init');
  if (fs.existsSync(init)) return init;
  const tmp = `${init}.tmp`;
  removeTree(tmp);
  for (const d of ['proc', 'sys', 'dev/pts', 'dev/shm', 'etc']) fs.mkdirSync(path.join(tmp, d), { recursive: true, mode: 0o755 });
  for (const f of ['etc/hosts', 'etc/hostname', 'etc/resolv.conf', '.dockerenv']) fs.writeFileSync(path.join(tmp, f), '', { mode: 0o644 });
  for (const m of c.spec.mounts) {
    const target = path.join(tmp, m.target);
    const isFile = m.type === 'bind' && fs.existsSync(m.source!) && !fs.statSync(m.source!).isDirectory();
    if (isFile) {
      fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
      fs.writeFileSync(target, '');
    } else {
      fs.mkdirSync(target, { recursive: true, mode: 0o755 });
    }
  }
  fs.renameSync(tmp, init);
  return init;
}

/** A new volume starts with the image's content at its mount point, as docker's do. */
async function copyUp(from: string, to: string): Promise<void> {
  if (!fs.existsSync(from) || !fs.statSync(from).isDirectory()) return;
  await new Promise<void>((resolve, reject) => {
    const cp = spawn('cp', ['-a', `${from}/.`, `${to}/`], { stdio: 'ignore' });
    cp.on('exit', (code) => (code === 0 ? resolve() : reject(new PlyError(`cannot copy image content into volume at ${to}`))));
    cp.on('error', reject);
  });
}
