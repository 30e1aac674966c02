// End-to-end: login, push, pull and logout through bin/ply against the CNCF distribution registry.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { busyboxTar, ply, plyOk, tempDir } from '../helpers.js';
import { startDistribution, type Distribution } from '../registry-peer.js';

let open: Distribution;
let secured: Distribution;
let dockerConfig: string;
before(async () => {
  [open, secured] = await Promise.all([startDistribution({ accessLog: true }), startDistribution({ user: 'alice', password: 's3cret' })]);
  dockerConfig = tempDir('ply-docker-config-');
});
after(async () => {
  await Promise.all([open?.stop(), secured?.stop()]);
});

const env = () => ({ DOCKER_CONFIG: dockerConfig });
/** Blob uploads the registry saw (one POST per blob upload session). */
const uploads = (reg: Distribution) => reg.accessLog().split('\n').filter((l) => /"POST \/v2\/.*\/blobs\/uploads\//.test(l)).length;

test('login fails with a wrong password and saves nothing; succeeds and saves docker\'s format; logout', () => {
  const bad = ply(tempDir(), ['login', '-u', 'alice', '--password-stdin', secured.domain], { input: 'wrong\n', env: env() });
  assert.notEqual(bad.code, 0);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  assert.match(bad.stderr, /unauthorized/i);
  assert.ok(!fs.existsSync(path.join(dockerConfig, 'config.json')) || !fs.readFileSync(path.join(dockerConfig, 'config.json'), 'utf8').includes(secured.domain));
  assert.equal(plyOk(tempDir(), ['login', '-u', 'alice', '--password-stdin', secured.domain], { input: 's3cret\n', env: env() }), 'Login Succeeded\n');
  const cfg = JSON.parse(fs.readFileSync(path.join(dockerConfig, 'config.json'), 'utf8'));
  assert.equal(cfg.auths[secured.domain].auth, Buffer.from('alice:s3cret').toString('base64'));
  assert.equal(fs.statSync(path.join(dockerConfig, 'config.json')).mode & 0o777, 0o600);
  // With the saved login, push and pull work against the secured registry.
  const root = tempDir();
  plyOk(root, ['import', busyboxTar(), `${secured.domain}/alice/bb:v1`]);
  plyOk(root, ['push', `${secured.domain}/alice/bb:v1`], { env: env() });
  const other = tempDir();
  plyOk(other, ['pull', `${secured.domain}/alice/bb:v1`], { env: env() });
  assert.equal(plyOk(other, ['run', '--rm', `${secured.domain}/alice/bb:v1`, 'cat', '/etc/motd']), 'hello from the base image\n');
  assert.equal(plyOk(root, ['logout', secured.domain], { env: env() }), `Removing login credentials for ${secured.domain}\n`);
  const anon = ply(tempDir(), ['pull', `${secured.domain}/alice/bb:v1`], { env: env() });
  assert.notEqual(anon.code, 0);
  assert.match(anon.stderr, /unauthorized|authentication required/i);
});

test('push, re-push of an image sharing its base sends only new blobs; pull skips what the store has; pull by digest', () => {
  const root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'base:v1']);
  plyOk(root, ['run', '--name', 'mk', 'base:v1', 'sh', '-c', 'echo second > /second']);
  plyOk(root, ['commit', 'mk', 'second:v1']);
  const base = `${open.domain}/team/base:v1`;
  const second = `${open.domain}/team/second:v1`;
  plyOk(root, ['tag', 'base:v1', base]);
  plyOk(root, ['tag', 'second:v1', second]);
  const first = plyOk(root, ['push', base]);
  assert.match(first, /Pushed/);
  assert.match(first, new RegExp(`^v1: digest: sha256:[0-9a-f]{64} size: \\d+$`, 'm'));
  const afterBase = uploads(open);
  assert.equal(afterBase, 2, 'layer and config');
  // Same repository: the base layer exists; only the new layer and config are sent.
  plyOk(root, ['tag', 'second:v1', `${open.domain}/team/base:v2`]);
  const again = plyOk(root, ['push', `${open.domain}/team/base:v2`]);
  assert.match(again, /Layer already exists/);
  assert.equal(uploads(open) - afterBase, 2, 'only the new layer and the new config');
  // Another repository of the same registry: the base layer is mounted, not sent.
  const mounted = plyOk(root, ['push', second]);
  assert.match(mounted, /Mounted from team\/base/);
  const before2 = uploads(open);
  assert.match(plyOk(root, ['push', second]), /Layer already exists/);
  assert.equal(uploads(open), before2, 'a second push sends nothing');

  const fresh = tempDir();
  const p1 = plyOk(fresh, ['pull', base]);
  assert.match(p1, /Pull complete/);
  assert.match(p1, new RegExp(`Status: Downloaded newer image for ${open.domain}/team/base:v1`));
  const p2 = plyOk(fresh, ['pull', second]);
  assert.match(p2, /Already exists/);
  assert.equal((p2.match(/Pull complete/g) ?? []).length, 1, 'only the new layer is fetched');
  assert.match(plyOk(fresh, ['pull', second]), /Status: Image is up to date/);
  assert.equal(plyOk(fresh, ['run', '--rm', second, 'cat', '/second']), 'second\n');
  const digest = /Digest: (sha256:[0-9a-f]{64})/.exec(p2)![1];
  const byDigest = tempDir();
  plyOk(byDigest, ['pull', `${open.domain}/team/second@${digest}`]);
  assert.equal(plyOk(byDigest, ['run', '--rm', `${open.domain}/team/second@${digest}`, 'cat', '/second']), 'second\n');
  const inspect = JSON.parse(plyOk(byDigest, ['image', 'inspect', `${open.domain}/team/second@${digest}`]))[0];
  assert.deepEqual(inspect.RepoDigests, [`${open.domain}/team/second@${digest}`]);
});

test('errors: unknown tag and unknown repository are one line each', () => {
  const root = tempDir();
  const noTag = ply(root, ['pull', `${open.domain}/team/base:nope`]);
  assert.notEqual(noTag.code, 0);
  assert.equal(noTag.stderr.trim().split('\n').length, 1, noTag.stderr);
  assert.match(noTag.stderr, /not found|manifest unknown/);
  const noRepo = ply(root, ['pull', `${open.domain}/no/such:v1`]);
  assert.notEqual(noRepo.code, 0);
  assert.equal(noRepo.stderr.trim().split('\n').length, 1, noRepo.stderr);
  assert.equal(ply(root, ['push', `${open.domain}/never/tagged:v1`]).code !== 0, true);
});

test('skopeo as a peer: an image skopeo pushed is pulled by ply, one ply pushed is read by skopeo', () => {
  const root = tempDir();
  plyOk(root, ['import', busyboxTar(), `${open.domain}/peer/fromply:v1`]);
  plyOk(root, ['push', `${open.domain}/peer/fromply:v1`]);
  const info = JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', `docker://${open.domain}/peer/fromply:v1`], { encoding: 'utf8' }));
  assert.equal(info.Layers.length, 1);
  execFileSync('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${open.domain}/peer/fromply:v1`, `docker://${open.domain}/peer/fromskopeo:v2`], { stdio: 'ignore' });
  const other = tempDir();
  plyOk(other, ['pull', `${open.domain}/peer/fromskopeo:v2`]);
  assert.equal(plyOk(other, ['run', '--rm', `${open.domain}/peer/fromskopeo:v2`, 'cat', '/etc/motd']), 'hello from the base image\n');
});

test('an image index: pull picks the host platform, --platform another; the index digest is the RepoDigest', async () => {
  const root = tempDir();
  for (const arch of ['amd64', 'arm64']) {
    plyOk(root, ['import', '--platform', `linux/${arch}`, '-c', `LABEL arch=${arch}`, busyboxTar(), `${open.domain}/multi/app:${arch}`]);
    plyOk(root, ['push', `${open.domain}/multi/app:${arch}`]);
  }
  const manifests = ['amd64', 'arm64'].map((arch) => {
    const head = execFileSync('curl', ['-sI', '-H', 'Accept: application/vnd.oci.image.manifest.v1+json', `http://${open.domain}/v2/multi/app/manifests/${arch}`], { encoding: 'utf8' });
    const digest = /docker-content-digest: (\S+)/i.exec(head)![1]!;
    const size = Number(/content-length: (\d+)/i.exec(head)![1]);
    return { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size, platform: { os: 'linux', architecture: arch, ...(arch === 'arm64' ? { variant: 'v8' } : {}) } };
  });
  const index = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests });
  execFileSync('curl', ['-sf', '-X', 'PUT', '-H', 'Content-Type: application/vnd.oci.image.index.v1+json', '--data-binary', index, `http://${open.domain}/v2/multi/app/manifests/v1`]);
  const { createHash } = await import('node:crypto');
  const indexDigest = `sha256:${createHash('sha256').update(index).digest('hex')}`;
  const fresh = tempDir();
  const out = plyOk(fresh, ['pull', `${open.domain}/multi/app:v1`]);
  assert.match(out, new RegExp(`Digest: ${indexDigest}`));
  const host = JSON.parse(plyOk(fresh, ['image', 'inspect', `${open.domain}/multi/app:v1`]))[0];
  assert.equal(host.Architecture, process.arch === 'arm64' ? 'arm64' : 'amd64');
  assert.deepEqual(host.RepoDigests, [`${open.domain}/multi/app@${indexDigest}`]);
  plyOk(fresh, ['pull', '--platform', 'linux/arm64', `${open.domain}/multi/app:v1`]);
  assert.equal(JSON.parse(plyOk(fresh, ['image', 'inspect', `${open.domain}/multi/app:v1`]))[0].Architecture, 'arm64');
  const none = ply(fresh, ['pull', '--platform', 'linux/s390x', `${open.domain}/multi/app:v1`]);
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /no matching manifest for linux\/s390x/);
});
