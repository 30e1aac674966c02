// ply's Docker Engine API for tests: `ply system service` on a fresh store, its docker.sock, and the docker
// clients' environment pointed at it (DOCKER_HOST, the classic builder, a config directory of its own).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { PLY, busyboxTar, collect, plyOk, tempDir } from './helpers.js';

export interface PlyApi {
  root: string;
  sock: string;
  /** Environment for docker clients (docker CLI, docker-compose, dockerode's defaults). */
  env: Record<string, string>;
  /** The service's stderr so far. */
  log(): string;
  stop(): Promise<void>;
}

const children: ChildProcess[] = [];
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

/** A store with busybox imported as `bb`, served by `ply system service` (its API on $root/docker.sock). */
export async function startPlyApi(opts: { args?: string[]; image?: boolean; root?: string } = {}): Promise<PlyApi> {
  // `root`: a store served before (a service started again); it is used as it is.
  const root = opts.root ?? tempDir();
  if (!opts.root && opts.image !== false) plyOk(root, ['import', busyboxTar(), 'bb']);
  let log = '';
  const child = spawn(PLY, ['system', 'service', '--workers', '1', ...(opts.args ?? [])], { env: { ...process.env, PLY_ROOT: root }, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  child.stderr!.on('data', (d: Buffer) => (log += d));
  const sock = path.join(root, 'docker.sock');
  for (let i = 0; ; i++) {
    if (fs.existsSync(sock) && (await ping(sock))) break;
    if (child.exitCode !== null || i > 300) {
      child.kill();
      throw new Error(`the API did not come up: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const config = tempDir('ply-docker-config-');
  return {
    root,
    sock,
    env: { DOCKER_HOST: `unix://${sock}`, DOCKER_BUILDKIT: '0', DOCKER_CONFIG: config, DOCKER_CLI_HINTS: 'false', PLY_ROOT: root },
    log: () => log,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

function ping(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request({ socketPath: sock, path: '/_ping', method: 'GET' }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the docker CLI (v28, /usr/local/bin/docker) against the API. */
export function docker(api: PlyApi, args: string[], opts: { input?: string | Buffer; cwd?: string; timeout?: number } = {}): Result {
  const r = spawnSync('docker', args, { env: { ...process.env, ...api.env }, input: opts.input ?? '', cwd: opts.cwd, timeout: opts.timeout ?? 120_000, maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, stdout: r.stdout?.toString() ?? '', stderr: r.stderr?.toString() ?? '' };
}

/** The docker CLI, asynchronously (for commands that wait on another). */
export function dockerAsync(api: PlyApi, args: string[]): Promise<Result> {
  return collect(spawn('docker', args, { env: { ...process.env, ...api.env }, stdio: ['ignore', 'pipe', 'pipe'] }));
}

export function dockerOk(api: PlyApi, args: string[], opts: { input?: string | Buffer; cwd?: string } = {}): string {
  const r = docker(api, args, opts);
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nservice: ${api.log().slice(-2000)}`);
  return r.stdout;
}

/** One raw HTTP request to the API (or another daemon's socket): status, headers and body. */
export function request(api: Pick<PlyApi, 'sock'>, method: string, p: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: api.sock, path: p, method, headers: { ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Whether the docker CLI is on this machine (it ships with it; setup installs docker.io's too). */
export const hasDocker = spawnSync('docker', ['--version']).status === 0;
