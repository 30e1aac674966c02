// Reading what a push left in a registry: manifests and blobs over plain HTTP, and the magic bytes of layers.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { busyboxTar, plyOk, tempDir } from './helpers.js';
import type { Manifest } from '../src/oci/types.js';

export const GZIP_MAGIC = [0x1f, 0x8b];
export const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

const ACCEPT = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

export async function fetchManifest(domain: string, repo: string, ref: string): Promise<{ doc: Manifest; digest: string; mediaType: string }> {
  const res = await fetch(`http://${domain}/v2/${repo}/manifests/${ref}`, { headers: { accept: ACCEPT } });
  if (res.status !== 200) throw new Error(`GET manifest ${repo}:${ref}: ${res.status}`);
  const text = await res.text();
  return { doc: JSON.parse(text) as Manifest, digest: res.headers.get('docker-content-digest')!, mediaType: res.headers.get('content-type')! };
}

export async function fetchBlob(domain: string, repo: string, digest: string): Promise<Buffer> {
  const res = await fetch(`http://${domain}/v2/${repo}/blobs/${digest}`);
  if (res.status !== 200) throw new Error(`GET blob ${repo}@${digest}: ${res.status}`);
  return Buffer.from(await res.arrayBuffer());
}

/**
 * An image whose top layer is big enough (~22 MiB) for a push to compress it in many blocks: 22 gzip members,
 * whose level adapts as the push goes (on loopback down to igzip's), and 3 zstd frames. Returns the md5sum line
 * of its file, which a peer that ran the image must print.
 */
export function bigLayerImage(root: string, ref: string): string {
  plyOk(root, ['import', busyboxTar(), ref]);
  const name = `big-${process.pid}-${Date.now()}`;
  const sum = plyOk(root, [
    'run', '--name', name, '--network', 'none', ref, 'sh', '-c',
    'i=0; while [ $i -lt 10 ]; do cat /bin/busybox; seq 1 20000; i=$((i+1)); done > /big && md5sum /big',
  ]);
  plyOk(root, ['commit', name, ref]);
  plyOk(root, ['rm', name]);
  return sum;
}

/** How ply compressed blob `digest` in a push (its blob-info cache's recipe), if it did. */
export function recipeOf(root: string, digest: string): string | undefined {
  const db = new Database(path.join(root, 'ply.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT recipe FROM blob_variants WHERE digest = ?').get(digest) as { recipe: string } | undefined)?.recipe;
  } finally {
    db.close();
  }
}

/** How many zstd frames or gzip members `blob` starts, by their magic bytes (at least the real count). */
export function magicCount(blob: Buffer, magic: number[]): number {
  const m = Buffer.from(magic);
  let n = 0;
  for (let i = blob.indexOf(m); i >= 0; i = blob.indexOf(m, i + 1)) n++;
  return n;
}

// ------------------------------------------------------------------------------------------ peers that pull

const daemons: ChildProcess[] = [];
process.on('exit', () => {
  for (const p of daemons) if (p.exitCode === null) p.kill('SIGKILL');
});

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, maxBuffer: 64 << 20, timeout: 240_000 });
  return { code: r.status ?? -1, stdout: r.stdout?.toString() ?? '', stderr: r.stderr?.toString() ?? String(r.error ?? '') };
}

function ok(cmd: string, args: string[], env: Record<string, string> = {}): string {
  const r = run(cmd, args, env);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
}

async function waitFor(what: string, ready: () => boolean, proc: ChildProcess, log: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!ready()) {
    if (proc.exitCode !== null) throw new Error(`${what} exited: ${fs.readFileSync(log, 'utf8').slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`${what} did not start: ${fs.readFileSync(log, 'utf8').slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopDaemon(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** podman with its own root (vfs), runc and this machine's limits. */
export function podmanPeer(): (args: string[]) => string {
  const d = tempDir('ply-podman-');
  fs.writeFileSync(
    path.join(d, 'containers.conf'),
    '[engine]\nruntime = "runc"\n[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n',
  );
  return (args) =>
    ok('podman', ['--root', `${d}/root`, '--runroot', `${d}/run`, '--storage-driver', 'vfs', ...args], {
      CONTAINERS_CONF: `${d}/containers.conf`,
      TMPDIR: d,
    });
}

/** containerd in its own root, state and socket (no CRI); `ctr` runs against it in namespace "ply-test". */
export async function startContainerd(): Promise<{ ctr: (args: string[]) => string; stop: () => Promise<void> }> {
  const d = tempDir('ply-containerd-');
  fs.writeFileSync(
    path.join(d, 'config.toml'),
    `version = 2
root = "${d}/root"
state = "${d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "${d}/containerd.sock"
[ttrpc]
  address = "${d}/containerd.sock.ttrpc"
`,
  );
  const log = path.join(d, 'containerd.log');
  const proc = spawn('containerd', ['--config', path.join(d, 'config.toml')], { stdio: ['ignore', fs.openSync(log, 'a'), fs.openSync(log, 'a')] });
  daemons.push(proc);
  const ctr = (args: string[]) => ok('ctr', ['--address', `${d}/containerd.sock`, '--namespace', 'ply-test', ...args]);
  await waitFor('containerd', () => run('ctr', ['--address', `${d}/containerd.sock`, 'version']).code === 0, proc, log);
  return { ctr, stop: () => stopDaemon(proc) };
}

/** Debian's dockerd 20.10 in its own directories (no bridge, no iptables); `docker` talks to it, at `sock`. */
export async function startDockerd(): Promise<{ docker: (args: string[]) => string; sock: string; stop: () => Promise<void> }> {
  const d = tempDir('ply-dockerd-');
  const sock = `unix://${d}/docker.sock`;
  const log = path.join(d, 'dockerd.log');
  const proc = spawn(
    'dockerd',
    ['--iptables=false', '--bridge=none', '--data-root', `${d}/data`, '--exec-root', `${d}/exec`, '-H', sock, '--pidfile', `${d}/docker.pid`],
    { stdio: ['ignore', fs.openSync(log, 'a'), fs.openSync(log, 'a')] },
  );
  daemons.push(proc);
  const docker = (args: string[]) => ok('docker', ['-H', sock, ...args], { DOCKER_CONFIG: d });
  await waitFor('dockerd', () => run('docker', ['-H', sock, 'version'], { DOCKER_CONFIG: d }).code === 0, proc, log);
  return { docker, sock: `${d}/docker.sock`, stop: () => stopDaemon(proc) };
}
