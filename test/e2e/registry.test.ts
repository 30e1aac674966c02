// `ply registry serve` through bin/ply with real clients: skopeo (push, inspect, pull, with credentials, over
// TLS) and podman (pull, push); clean shutdown on SIGTERM with an access log; `ply registry gc`.
// Needs a build (dist/), as every e2e test.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { busyboxTar, ply, PLY, plyOk, tempDir } from '../helpers.js';

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function ok(cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await run(cmd, args, env);
  assert.equal(r.code, 0, `${cmd} ${args.join(' ')}\n${r.stderr}`);
  return r.stdout;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

interface Served {
  host: string;
  proc: ChildProcess;
  log(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts `ply registry serve` on a free port and waits until it listens. */
async function serve(plyRoot: string, args: string[]): Promise<Served> {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const proc = spawn(PLY, ['registry', 'serve', '--addr', host, ...args], { env: { ...process.env, PLY_ROOT: plyRoot }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout!.on('data', (d: Buffer) => (log += d));
  proc.stderr!.on('data', (d: Buffer) => (log += d));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`registry did not start:\n${log}`)), 15_000);
    const check = () => {
      if (log.includes('listening on')) {
        clearTimeout(timer);
        proc.stderr!.off('data', check);
        resolve();
      }
    };
    proc.stderr!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`registry exited ${code}:\n${log}`));
    });
  });
  let stopped: Promise<number | null> | undefined;
  return {
    host,
    proc,
    log: () => log,
    stop: (signal = 'SIGTERM') => {
      if (!stopped) {
        if (proc.exitCode === null) proc.kill(signal);
        stopped = exited;
      }
      return stopped;
    },
  };
}

/** An OCI layout holding a one-layer busybox image tagged `tag` (gzip layer, config, manifest, index). */
function makeLayout(dir: string, tag: string, cmd = 'sh'): { manifest: Buffer; config: Buffer; layer: Buffer } {
  const tar = fs.readFileSync(busyboxTar());
  const layer = zlib.gzipSync(tar, { level: 1 });
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Cmd: [cmd] }, rootfs: { type: 'layers', diff_ids: [sha256(tar)] } }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
    }),
  );
  fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const b of [layer, config, manifest]) fs.writeFileSync(path.join(dir, 'blobs', 'sha256', sha256(b).slice(7)), b);
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return { manifest, config, layer };
}

describe('ply registry serve with real clients', () => {
  let plyRoot = '';
  let work = '';
  let reg: Served;
  let image: { manifest: Buffer; config: Buffer; layer: Buffer };
  let layout = '';

  before(async () => {
    plyRoot = tempDir('ply-e2e-registry-');
    work = tempDir('ply-e2e-registry-work-');
    layout = path.join(work, 'layout');
    image = makeLayout(layout, 'v1');
    reg = await serve(plyRoot, ['--delete']); // default root: $PLY_ROOT/registry
  });
  after(async () => {
    await reg?.stop('SIGKILL');
  });

  it('skopeo copy pushes an OCI layout; inspect sees it; copy back to dir: gives the same bytes', async () => {
    await ok('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout}:v1`, `docker://${reg.host}/team/app:v1`]);
    assert.ok(fs.existsSync(path.join(plyRoot, 'registry', 'registry.db')));
    const info = JSON.parse(await ok('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/team/app:v1`]));
    assert.equal(info.Digest, sha256(image.manifest));
    assert.deepEqual(info.RepoTags, ['v1']);
    assert.deepEqual(info.Layers, [sha256(image.layer)]);
    const raw = await ok('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.host}/team/app:v1`]);
    assert.equal(raw, image.manifest.toString());
    const out = path.join(work, 'pulled');
    await ok('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/team/app:v1`, `dir:${out}`]);
    assert.ok(fs.readFileSync(path.join(out, 'manifest.json')).equals(image.manifest));
    assert.ok(fs.readFileSync(path.join(out, sha256(image.layer).slice(7))).equals(image.layer));
    assert.ok(fs.readFileSync(path.join(out, sha256(image.config).slice(7))).equals(image.config));
  });

  it('podman pulls from it and pushes to it (cross-repository mount included)', async () => {
    const conf = path.join(work, 'containers.conf');
    fs.writeFileSync(conf, '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n\n[engine]\nruntime = "runc"\n');
    const env = { CONTAINERS_CONF: conf };
    const podman = ['--root', path.join(work, 'podman-root'), '--runroot', path.join(work, 'podman-run'), '--storage-driver', 'vfs'];
    await ok('podman', [...podman, 'pull', '--tls-verify=false', `${reg.host}/team/app:v1`], env);
    const id = (await ok('podman', [...podman, 'images', '--format', '{{.ID}}', `${reg.host}/team/app:v1`], env)).trim();
    assert.ok(sha256(image.config).slice(7).startsWith(id), `${id} vs ${sha256(image.config)}`);
    await ok('podman', [...podman, 'push', '--tls-verify=false', `${reg.host}/team/app:v1`, `docker://${reg.host}/team/copy:v2`], env);
    const tags = await (await fetch(`http://${reg.host}/v2/team/copy/tags/list`)).json();
    assert.deepEqual(tags, { name: 'team/copy', tags: ['v2'] });
    const info = JSON.parse(await ok('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/team/copy:v2`]));
    assert.equal(info.Architecture, 'amd64');
    await run('podman', [...podman, 'rmi', '-a', '-f'], env);
  });

  it('logs one access line per request; stops cleanly on SIGTERM; gc keeps what manifests use', async () => {
    // Something for gc: an image whose manifest is then deleted.
    const other = path.join(work, 'other');
    const tmp = makeLayout(other, 'tmp', 'ls'); // shares its layer with team/app:v1
    await ok('skopeo', ['copy', '--dest-tls-verify=false', `oci:${other}:tmp`, `docker://${reg.host}/team/tmp:tmp`]);
    const digest = (await fetch(`http://${reg.host}/v2/team/tmp/manifests/tmp`, { method: 'HEAD' })).headers.get('docker-content-digest')!;
    assert.equal((await fetch(`http://${reg.host}/v2/team/tmp/manifests/${digest}`, { method: 'DELETE' })).status, 202);
    const log = reg.log();
    assert.match(log, /^PUT \/v2\/team\/app\/manifests\/v1 201 0 \d+(\.\d+)?ms$/m);
    assert.match(log, /^GET \/v2\/team\/app\/blobs\/sha256:[0-9a-f]{64} 200 \d+ \d+(\.\d+)?ms$/m);
    assert.equal(await reg.stop('SIGTERM'), 0);
    assert.match(reg.log(), /SIGTERM, shutting down/);
    const root = path.join(plyRoot, 'registry');
    assert.equal(fs.existsSync(path.join(root, 'registry.pid')), false);
    const dry = ply(plyRoot, ['registry', 'gc', '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, new RegExp(`Would delete blob: ${digest}`));
    assert.match(dry.stdout, new RegExp(`Would delete blob: ${sha256(tmp.config)}`));
    assert.doesNotMatch(dry.stdout, new RegExp(`blob: ${sha256(tmp.layer)}`)); // team/app:v1 uses it
    assert.match(dry.stdout, new RegExp(`Would delete link: team/tmp@${sha256(tmp.layer)}`));
    assert.ok(fs.existsSync(path.join(root, 'blobs', 'sha256', digest.slice(7))));
    const gc = ply(plyRoot, ['registry', 'gc']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stdout, new RegExp(`Deleted blob: ${digest}`));
    assert.match(gc.stdout, /Total reclaimed space: /);
    assert.equal(fs.existsSync(path.join(root, 'blobs', 'sha256', digest.slice(7))), false);
    // The image still tagged stays whole: serve again and pull it.
    reg = await serve(plyRoot, []);
    const out = path.join(work, 'after-gc');
    await ok('skopeo', ['copy', '--src-tls-verify=false', `docker://${reg.host}/team/app:v1`, `dir:${out}`]);
    assert.ok(fs.readFileSync(path.join(out, sha256(image.layer).slice(7))).equals(image.layer));
    assert.equal((await run('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/team/tmp:tmp`])).code !== 0, true);
  });
});

describe('ply registry serve --htpasswd, --tls-cert', () => {
  let plyRoot = '';
  let work = '';
  const servers: Served[] = [];

  before(() => {
    plyRoot = tempDir('ply-e2e-registry-auth-');
    work = tempDir('ply-e2e-registry-auth-work-');
    makeLayout(path.join(work, 'layout'), 'v1');
  });
  after(async () => {
    for (const s of servers) await s.stop('SIGKILL');
  });

  it('ply login (token flow), push, re-push, rmi, pull, run and logout against ply registry serve', async () => {
    const htpasswd = path.join(work, 'htpasswd-ply');
    await ok('htpasswd', ['-cbB', htpasswd, 'bob', 'hunter2']);
    const reg = await serve(plyRoot, ['--root', path.join(work, 'ply-root'), '--htpasswd', htpasswd]);
    servers.push(reg);
    const store = tempDir('ply-e2e-registry-client-');
    const cfg = tempDir('ply-e2e-docker-config-');
    const env = { DOCKER_CONFIG: cfg };
    assert.notEqual(ply(store, ['login', '-u', 'bob', '--password-stdin', reg.host], { input: 'nope\n', env }).code, 0);
    assert.equal(plyOk(store, ['login', '-u', 'bob', '--password-stdin', reg.host], { input: 'hunter2\n', env }), 'Login Succeeded\n');
    const name = `${reg.host}/demo/bb:v1`;
    plyOk(store, ['import', busyboxTar(), name]);
    assert.match(plyOk(store, ['push', name], { env }), /Pushed/);
    assert.match(plyOk(store, ['push', name], { env }), /Layer already exists/);
    plyOk(store, ['rmi', name]);
    assert.match(plyOk(store, ['pull', name], { env }), /Pull complete/);
    assert.equal(plyOk(store, ['run', '--rm', name, 'cat', '/etc/motd']), 'hello from the base image\n');
    // ply went through the token endpoint with the saved login (spawnSync blocked this loop: let the log in).
    await new Promise((r) => setTimeout(r, 200));
    assert.match(reg.log(), /^GET \/token\?.*scope=repository%3Ademo%2Fbb%3Apull%2Cpush.* 200 /m);
    plyOk(store, ['logout', reg.host], { env });
    assert.notEqual(ply(store, ['pull', name], { env }).code, 0);
  });

  it('skopeo logs in with --dest-creds / --creds; no or wrong credentials are refused', async () => {
    const htpasswd = path.join(work, 'htpasswd');
    await ok('htpasswd', ['-cbB', htpasswd, 'alice', 's3cret']);
    const reg = await serve(plyRoot, ['--root', path.join(work, 'auth-root'), '--htpasswd', htpasswd]);
    servers.push(reg);
    const src = `oci:${path.join(work, 'layout')}:v1`;
    const dest = `docker://${reg.host}/private/app:v1`;
    const anon = await run('skopeo', ['copy', '--dest-tls-verify=false', src, dest]);
    assert.notEqual(anon.code, 0);
    assert.match(anon.stderr, /unauthorized|authentication required/i);
    const wrong = await run('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:nope', src, dest]);
    assert.notEqual(wrong.code, 0);
    await ok('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:s3cret', src, dest]);
    const info = JSON.parse(await ok('skopeo', ['inspect', '--tls-verify=false', '--creds', 'alice:s3cret', dest]));
    assert.deepEqual(info.RepoTags, ['v1']);
    assert.notEqual((await run('skopeo', ['inspect', '--tls-verify=false', dest])).code, 0);
    // skopeo went through the token endpoint.
    assert.match(reg.log(), /^GET \/token\?.*scope=repository%3Aprivate%2Fapp%3Apull%2Cpush.* 200 /m);
  });

  it('serves HTTPS with --tls-cert/--tls-key', async () => {
    const cert = path.join(work, 'cert.pem');
    const key = path.join(work, 'key.pem');
    await ok('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
    const reg = await serve(plyRoot, ['--root', path.join(work, 'tls-root'), '--tls-cert', cert, '--tls-key', key]);
    servers.push(reg);
    assert.match(reg.log(), /listening on https:\/\//);
    await ok('skopeo', ['copy', '--dest-tls-verify=false', `oci:${path.join(work, 'layout')}:v1`, `docker://${reg.host}/secure/app:v1`]);
    const info = JSON.parse(await ok('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.host}/secure/app:v1`]));
    assert.deepEqual(info.RepoTags, ['v1']);
    const curl = await ok('curl', ['-sk', `https://${reg.host}/v2/secure/app/tags/list`]);
    assert.deepEqual(JSON.parse(curl), { name: 'secure/app', tags: ['v1'] });
  });

  it('a busy port or a missing htpasswd file is a one-line error', async () => {
    const reg = servers[0]!;
    const busy = ply(plyRoot, ['registry', 'serve', '--addr', reg.host, '--root', path.join(work, 'x')]);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /address already in use/);
    const missing = ply(plyRoot, ['registry', 'serve', '--addr', '127.0.0.1:0', '--root', path.join(work, 'y'), '--htpasswd', path.join(work, 'nope')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^Error: .*nope/m);
  });
});
