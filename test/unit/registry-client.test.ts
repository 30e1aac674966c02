// The registry transport and its HTTP client, against the real CNCF distribution registry (Debian's
// docker-registry: once open, once with htpasswd basic auth), a small bearer-token registry written here, and
// an HTTPS server with a self-signed certificate.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import zlib from 'node:zlib';
import { digestOf } from '../../src/digest/digest.js';
import { DigestMismatchError, UnsupportedError } from '../../src/errors.js';
import { MediaType, type Descriptor, type Digest } from '../../src/oci/types.js';
import { parseReference, type Reference } from '../../src/reference/reference.js';
import { isInsecureRegistry, isLoopbackRegistry, serverDomain } from '../../src/transport/registries-config.js';
import { parseWwwAuthenticate } from '../../src/transport/registry-auth.js';
import { checkLogin, RegistryClient } from '../../src/transport/registry-client.js';
import { RegistryError } from '../../src/oci/distribution-errors.js';
import { registryErrorFrom } from '../../src/transport/registry-errors.js';
import { listTags, registryDestination, registrySource } from '../../src/transport/registry.js';
import type { ManifestBlob } from '../../src/transport/types.js';
import { tempDir } from '../helpers.js';
import { freePort, startDistribution, type Distribution } from '../registry-peer.js';

// ---- fixtures -------------------------------------------------------------------------------------------------

interface TestImage {
  layer: Buffer;
  layerDesc: Descriptor;
  config: Buffer;
  configDesc: Descriptor;
  manifest: ManifestBlob;
}

/** An OCI image: one gzip layer (a tar made by tar(1)), a config with its diffID, a manifest. */
function makeImage(seed: string): TestImage {
  const dir = tempDir('ply-img-');
  fs.mkdirSync(path.join(dir, 'etc'));
  fs.writeFileSync(path.join(dir, 'etc', 'seed'), `${seed}\n`);
  fs.writeFileSync(path.join(dir, 'data.bin'), crypto.randomBytes(50_000));
  const tar = execFileSync('tar', ['-C', dir, '--sort=name', '--owner=0', '--group=0', '--numeric-owner', '-cf', '-', 'etc', 'data.bin']);
  const layer = zlib.gzipSync(tar);
  const layerDesc: Descriptor = { mediaType: MediaType.OciLayerGzip, digest: digestOf(layer), size: layer.length };
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: [digestOf(tar)] },
    }),
  );
  const configDesc: Descriptor = { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.length };
  const bytes = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers: [layerDesc] }),
  );
  return { layer, layerDesc, config, configDesc, manifest: { bytes, mediaType: MediaType.OciManifest, digest: digestOf(bytes) } };
}

async function* chunks(buf: Buffer, size = 64 * 1024): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function readAll(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

function ref(domain: string, repo: string): Reference {
  return parseReference(`${domain}/${repo}`);
}

async function pushImage(domain: string, repo: string, img: TestImage, tag: string, opts = {}): Promise<void> {
  const dest = registryDestination(ref(domain, repo), opts);
  for (const [desc, data] of [
    [img.layerDesc, img.layer],
    [img.configDesc, img.config],
  ] as const) {
    if (!(await dest.hasBlob(desc))) await dest.putBlob(desc, chunks(data));
  }
  await dest.putManifest(img.manifest, tag);
}

/** Counts responses by "METHOD status" for a client. */
function tracer(): { log: { method: string; url: string; status: number }[]; count: (method: string, re?: RegExp) => number; onResponse: (i: { method: string; url: string; status: number }) => void } {
  const log: { method: string; url: string; status: number }[] = [];
  return {
    log,
    onResponse: (i) => log.push(i),
    count: (method, re) => log.filter((l) => l.method === method && (!re || re.test(l.url))).length,
  };
}

const savedEnv = { DOCKER_CONFIG: process.env.DOCKER_CONFIG, PLY_REGISTRIES_CONFIG: process.env.PLY_REGISTRIES_CONFIG };
let open: Distribution;
let secured: Distribution;

before(async () => {
  process.env.DOCKER_CONFIG = tempDir('ply-dockercfg-');
  process.env.PLY_REGISTRIES_CONFIG = path.join(tempDir('ply-regcfg-'), 'registries.json');
  [open, secured] = await Promise.all([startDistribution(), startDistribution({ user: 'user', password: 'pass' })]);
});

after(async () => {
  await Promise.all([open, secured].filter(Boolean).map((r) => r.stop()));
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

// ---- pure helpers ---------------------------------------------------------------------------------------------

describe('http helpers', () => {
  it('parses WWW-Authenticate challenges', () => {
    assert.deepEqual(
      parseWwwAuthenticate('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'),
      [{ scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' } }],
    );
    assert.deepEqual(parseWwwAuthenticate(['Basic realm="x, y"', 'Bearer realm=https://t/x , service=s, error="insufficient_scope"']), [
      { scheme: 'basic', params: { realm: 'x, y' } },
      { scheme: 'bearer', params: { realm: 'https://t/x', service: 's', error: 'insufficient_scope' } },
    ]);
    assert.deepEqual(parseWwwAuthenticate('Basic realm="a \\"q\\"", Bearer realm="r"'), [
      { scheme: 'basic', params: { realm: 'a "q"' } },
      { scheme: 'bearer', params: { realm: 'r' } },
    ]);
  });

  it('maps registry error bodies and statuses to one-line errors', () => {
    const e1 = registryErrorFrom(404, 'Not Found', '{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}');
    assert.equal(e1.code, 'MANIFEST_UNKNOWN');
    assert.equal(e1.message, 'manifest unknown: manifest unknown');
    assert.equal(registryErrorFrom(401, 'Unauthorized', '').message, 'unauthorized: authentication required');
    assert.equal(registryErrorFrom(403, 'Forbidden', undefined).message, 'denied: requested access to the resource is denied');
    const tm = registryErrorFrom(429, '', '{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit.\\nUpgrade."}]}');
    assert.equal(tm.code, 'TOOMANYREQUESTS');
    assert.equal(tm.message, 'toomanyrequests: You have reached your pull rate limit. Upgrade.');
    assert.equal(registryErrorFrom(404, '', '', 'BLOB_UNKNOWN').message, 'blob unknown: blob unknown');
    assert.equal(registryErrorFrom(502, 'Bad Gateway', '<html>').message, 'received unexpected HTTP status: 502 Bad Gateway');
    assert.equal(registryErrorFrom(502, 'Bad Gateway', '<html>').retriable, true);
    assert.equal(registryErrorFrom(401, '', '{"details":"incorrect username or password"}').message, 'unauthorized: incorrect username or password');
    const two = registryErrorFrom(400, '', '{"errors":[{"code":"DIGEST_INVALID","message":"a"},{"code":"SIZE_INVALID","message":"b"}]}');
    assert.equal(two.message, 'digest invalid: a; size invalid: b');
    assert.equal(two.exitCode, 1);
  });

  it('reads back the errors the registry server answers with as the same type: code, status and detail', () => {
    const sent = new RegistryError('BLOB_UPLOAD_INVALID', 'range does not start at 5', { detail: { offset: 5 }, status: 416 });
    const got = registryErrorFrom(sent.status!, '', sent.body());
    assert.ok(got instanceof RegistryError);
    assert.deepEqual([got.code, got.status, got.detail], ['BLOB_UPLOAD_INVALID', 416, { offset: 5 }]);
    assert.equal(got.message, 'blob upload invalid: range does not start at 5');
    const unknown = new RegistryError('MANIFEST_UNKNOWN');
    assert.equal(unknown.status, 404, 'the code says the status when the server gives none');
    assert.equal(registryErrorFrom(unknown.status!, '', unknown.body()).message, 'manifest unknown: manifest unknown to registry');
    assert.equal(new RegistryError('constructor', 'x').status, undefined, 'a code from the network is only looked up as a code');
  });

  it('knows loopback and insecure registries', () => {
    for (const d of ['localhost', 'localhost:5000', '127.0.0.1:5000', '127.3.4.5', '[::1]:5000']) assert.ok(isLoopbackRegistry(d), d);
    for (const d of ['docker.io', '10.0.0.1:5000', 'example.com', '[fe80::1]:5000']) assert.ok(!isLoopbackRegistry(d), d);
    const cfg = { insecure: ['reg.lan:5000', 'other.lan', '10.1.0.0/16'] };
    assert.ok(isInsecureRegistry('reg.lan:5000', cfg));
    assert.ok(!isInsecureRegistry('reg.lan:5001', cfg));
    assert.ok(isInsecureRegistry('other.lan:443', cfg));
    assert.ok(isInsecureRegistry('10.1.200.3:5000', cfg));
    assert.ok(!isInsecureRegistry('10.2.0.1:5000', cfg));
    assert.ok(!isInsecureRegistry('quay.io', cfg));
    // The file given by $PLY_REGISTRIES_CONFIG.
    fs.writeFileSync(process.env.PLY_REGISTRIES_CONFIG!, JSON.stringify({ insecure: ['fromfile.lan:5000'] }));
    try {
      assert.ok(isInsecureRegistry('fromfile.lan:5000'));
    } finally {
      fs.rmSync(process.env.PLY_REGISTRIES_CONFIG!);
    }
    assert.equal(serverDomain('https://index.docker.io/v1/'), 'docker.io');
    assert.equal(serverDomain('http://localhost:5000/v2/'), 'localhost:5000');
    assert.equal(new RegistryClient('docker.io').baseUrl.href, 'https://registry-1.docker.io/');
    assert.equal(new RegistryClient('localhost:5000').baseUrl.href, 'http://localhost:5000/');
    assert.equal(new RegistryClient('localhost:5000', { tlsVerify: true }).baseUrl.href, 'https://localhost:5000/');
  });
});

// ---- the distribution registry --------------------------------------------------------------------------------

describe('registry transport (distribution registry)', () => {
  const img = makeImage('one');

  it('pushes blobs and a manifest, and pulls them back byte for byte', async () => {
    const t = tracer();
    const r = ref(open.domain, 'test/app');
    const dest = registryDestination(r, { onResponse: t.onResponse });
    assert.equal(dest.description, `registry ${open.domain}/test/app`);
    assert.equal(await dest.hasBlob(img.layerDesc), false);
    await dest.putBlob(img.layerDesc, chunks(img.layer));
    await dest.putBlob(img.configDesc, chunks(img.config));
    assert.equal(await dest.hasBlob(img.layerDesc), true);
    assert.equal(await dest.hasBlob(img.configDesc), true);
    await dest.putManifest(img.manifest, 'v1');
    // Small blobs go monolithic: POST + PUT, no PATCH.
    assert.equal(t.count('PATCH'), 0);
    assert.equal(t.count('PUT', /blobs\/uploads/), 2);

    const src = registrySource(r);
    const byTag = await src.getManifest('v1');
    assert.deepEqual(byTag.bytes, img.manifest.bytes);
    assert.equal(byTag.digest, img.manifest.digest);
    assert.equal(byTag.mediaType, MediaType.OciManifest);
    const byDigest = await src.getManifest(img.manifest.digest);
    assert.deepEqual(byDigest.bytes, img.manifest.bytes);
    assert.equal(byDigest.digest, img.manifest.digest);
    assert.deepEqual(await readAll(await src.getBlob(img.layerDesc)), img.layer);
    assert.deepEqual(await readAll(await src.getBlob(img.configDesc)), img.config);
    // '' means the reference's own tag.
    const own = await registrySource(parseReference(`${open.domain}/test/app:v1`)).getManifest('');
    assert.equal(own.digest, img.manifest.digest);
  });

  it('keeps a Docker schema 2 manifest list as its exact bytes', async () => {
    const r = ref(open.domain, 'test/app');
    const list = Buffer.from(
      JSON.stringify(
        {
          schemaVersion: 2,
          mediaType: MediaType.DockerManifestList,
          manifests: [{ ...{ mediaType: MediaType.OciManifest, digest: img.manifest.digest, size: img.manifest.bytes.length }, platform: { architecture: 'amd64', os: 'linux' } }],
        },
        null,
        3,
      ),
    );
    const m: ManifestBlob = { bytes: list, mediaType: MediaType.DockerManifestList, digest: digestOf(list) };
    await registryDestination(r).putManifest(m);
    const got = await registrySource(r).getManifest(m.digest);
    assert.deepEqual(got, m);
  });

  it('resumes a blob read from an offset', async () => {
    const src = registrySource(ref(open.domain, 'test/app'));
    assert.deepEqual(await readAll(await src.getBlob(img.layerDesc, { offset: 1000 })), img.layer.subarray(1000));
    assert.deepEqual(await readAll(await src.getBlob(img.layerDesc, { offset: img.layer.length - 1 })), img.layer.subarray(-1));
    assert.equal((await readAll(await src.getBlob(img.layerDesc, { offset: img.layer.length }))).length, 0);
  });

  it('mounts blobs across repositories', async () => {
    const t = tracer();
    const other = registryDestination(ref(open.domain, 'test/other'), { onResponse: t.onResponse });
    assert.equal(await other.hasBlob(img.layerDesc), false);
    assert.equal(await other.mountBlob!(img.layerDesc, 'test/app'), true);
    assert.equal(await other.hasBlob(img.layerDesc), true);
    // putBlob with mountFrom mounts instead of sending.
    await other.putBlob(img.configDesc, chunks(img.config), { mountFrom: 'test/app' });
    assert.equal(await other.hasBlob(img.configDesc), true);
    assert.equal(t.count('PUT'), 0);
    assert.equal(t.count('PATCH'), 0);
    // A blob the source repository does not have: 202, the session is cancelled, false.
    const missing = Buffer.from('not pushed anywhere');
    const desc: Descriptor = { mediaType: 'application/octet-stream', digest: digestOf(missing), size: missing.length };
    assert.equal(await other.mountBlob!(desc, 'test/app'), false);
    assert.equal(t.count('DELETE'), 1);
    assert.equal(await other.hasBlob(desc), false);
    // Mount failed → putBlob uploads in the session the mount opened.
    await other.putBlob(desc, chunks(missing), { mountFrom: 'test/app' });
    assert.equal(await other.hasBlob(desc), true);
  });

  it('uploads a 20 MiB blob in chunks, and medium blobs in one streaming PATCH', async () => {
    const big = crypto.randomBytes(20 << 20);
    const desc: Descriptor = { mediaType: MediaType.OciLayer, digest: digestOf(big), size: big.length };
    const t = tracer();
    const r = ref(open.domain, 'test/big');
    const dest = registryDestination(r, { chunkThreshold: 1 << 20, chunkSize: 4 << 20, onResponse: t.onResponse });
    await dest.putBlob(desc, chunks(big, 1000_003));
    assert.equal(t.count('PATCH'), 5);
    assert.equal(t.count('PUT'), 1);
    assert.equal(await dest.hasBlob(desc), true);
    const back = await readAll(await registrySource(r).getBlob(desc));
    assert.equal(digestOf(back), desc.digest);

    const medium = crypto.randomBytes(3 << 20);
    const mdesc: Descriptor = { mediaType: MediaType.OciLayer, digest: digestOf(medium), size: medium.length };
    const t2 = tracer();
    await registryDestination(r, { monolithicMax: 1 << 20, onResponse: t2.onResponse }).putBlob(mdesc, chunks(medium));
    assert.equal(t2.count('PATCH'), 1);
    assert.deepEqual(await readAll(await registrySource(r).getBlob(mdesc)), medium);
  });

  it('refuses data that does not match the descriptor, committing nothing', async () => {
    const r = ref(open.domain, 'test/bad');
    const data = Buffer.from('the real bytes');
    const wrong: Descriptor = { mediaType: MediaType.OciLayer, digest: digestOf('other bytes'), size: data.length };
    for (const opts of [{}, { monolithicMax: 0 }, { chunkThreshold: 0, chunkSize: 4 }]) {
      const dest = registryDestination(r, opts);
      await assert.rejects(dest.putBlob(wrong, chunks(data)), DigestMismatchError);
      assert.equal(await dest.hasBlob(wrong), false);
      const short: Descriptor = { ...wrong, digest: digestOf(data), size: data.length + 5 };
      await assert.rejects(dest.putBlob(short, chunks(data)), DigestMismatchError);
      const long: Descriptor = { ...wrong, digest: digestOf(data), size: data.length - 5 };
      await assert.rejects(dest.putBlob(long, chunks(data)), DigestMismatchError);
    }
  });

  it('lists tags', async () => {
    const img2 = makeImage('tags');
    const r = ref(open.domain, 'test/tags');
    for (const tag of ['v1', 'v2', 'latest', 'a', 'b']) await pushImage(open.domain, 'test/tags', img2, tag);
    assert.deepEqual((await listTags(r)).sort(), ['a', 'b', 'latest', 'v1', 'v2']);
    assert.deepEqual((await listTags(r, { pageSize: 2 })).sort(), ['a', 'b', 'latest', 'v1', 'v2']);
  });

  it('reports unknown tags, repositories and blobs in one line', async () => {
    const src = registrySource(ref(open.domain, 'test/app'));
    await assert.rejects(src.getManifest('nope'), (e: RegistryError) => {
      assert.ok(e instanceof RegistryError);
      assert.equal(e.code, 'MANIFEST_UNKNOWN');
      assert.equal(e.message, `manifest for ${open.domain}/test/app:nope not found: manifest unknown: manifest unknown`);
      assert.equal(e.exitCode, 1);
      return true;
    });
    await assert.rejects(registrySource(ref(open.domain, 'no/such')).getManifest('latest'), (e: RegistryError) => {
      assert.match(e.code, /^(MANIFEST_UNKNOWN|NAME_UNKNOWN)$/);
      assert.match(e.message, /^manifest for 127\.0\.0\.1:\d+\/no\/such:latest not found: /);
      return true;
    });
    await assert.rejects(listTags(ref(open.domain, 'no/such')), (e: RegistryError) => {
      assert.equal(e.code, 'NAME_UNKNOWN');
      assert.equal(e.message, `repository ${open.domain}/no/such not found: name unknown: repository name not known to registry`);
      return !e.message.includes('\n');
    });
    const missing: Descriptor = { mediaType: MediaType.OciLayer, digest: digestOf('missing'), size: 7 };
    await assert.rejects(src.getBlob(missing), (e: RegistryError) => e.code === 'BLOB_UNKNOWN' && /^blob unknown: /.test(e.message));
  });

  it('detects a manifest whose bytes do not match the digest asked for (corrupt registry storage)', async () => {
    const img3 = makeImage('corrupt');
    await pushImage(open.domain, 'test/corrupt', img3, 'v1');
    const hex = img3.manifest.digest.slice('sha256:'.length);
    const file = path.join(open.root, 'data/docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
    const original = fs.readFileSync(file);
    // Still valid JSON, other bytes: the registry serves it as is.
    fs.writeFileSync(file, Buffer.concat([original, Buffer.from(' ')]));
    const src = registrySource(ref(open.domain, 'test/corrupt'), { retryDelayMs: 5 });
    await assert.rejects(src.getManifest(img3.manifest.digest), (e: DigestMismatchError) => {
      assert.ok(e instanceof DigestMismatchError);
      assert.equal(e.expected, img3.manifest.digest);
      assert.equal(e.actual, digestOf(Buffer.concat([original, Buffer.from(' ')])));
      assert.match(e.message, /^manifest 127\.0\.0\.1:\d+\/test\/corrupt@sha256:[0-9a-f]{64} digest mismatch: expected sha256:/);
      return true;
    });
    // Not JSON any more: the registry fails with 500; retried three times, then one line.
    fs.writeFileSync(file, original.subarray(0, -1));
    const t = tracer();
    const src2 = registrySource(ref(open.domain, 'test/corrupt'), { retryDelayMs: 5, onResponse: t.onResponse });
    await assert.rejects(src2.getManifest(img3.manifest.digest), (e: RegistryError) => {
      assert.equal(e.status, 500);
      assert.equal(e.message, 'unknown: unknown error');
      return true;
    });
    assert.equal(t.count('GET'), 3, 'three tries');
  });

  it('falls back from HTTPS to plain HTTP with tlsVerify: false', async () => {
    const t = tracer();
    const src = registrySource(ref(open.domain, 'test/app'), { tlsVerify: false, onResponse: t.onResponse });
    const m = await src.getManifest('v1');
    assert.equal(m.digest, img.manifest.digest);
    assert.ok(t.log.every((l) => l.url.startsWith('http://')));
  });
});

describe('registry transport with basic auth (htpasswd)', () => {
  const img = makeImage('secured');
  const creds = { username: 'user', password: 'pass' };

  it('refuses anonymous access and a wrong password with UNAUTHORIZED', async () => {
    const r = ref(secured.domain, 'sec/app');
    await assert.rejects(registrySource(r, { credentials: null }).getManifest('latest'), (e: RegistryError) => {
      assert.equal(e.code, 'UNAUTHORIZED');
      assert.match(e.message, /: unauthorized: authentication required$/);
      return true;
    });
    await assert.rejects(registryDestination(r, { credentials: { username: 'user', password: 'wrong' } }).hasBlob(img.layerDesc), (e: RegistryError) => {
      assert.equal(e.code, 'UNAUTHORIZED');
      assert.equal(e.message, 'unauthorized: authentication required');
      return true;
    });
    await assert.rejects(checkLogin(secured.domain, { username: 'user', password: 'wrong' }), (e: RegistryError) => e.code === 'UNAUTHORIZED');
    assert.deepEqual(await checkLogin(secured.domain, creds), {});
    assert.deepEqual(await checkLogin(`http://${secured.domain}/v2/`, creds), {});
  });

  it('pushes and pulls with explicit credentials, then with the ones in $DOCKER_CONFIG', async () => {
    const t = tracer();
    await pushImage(secured.domain, 'sec/app', img, 'v1', { credentials: creds, onResponse: t.onResponse });
    // Only the first request was challenged; the rest carried Basic up front.
    assert.equal(t.log.filter((l) => l.status === 401).length, 1);
    const got = await registrySource(ref(secured.domain, 'sec/app'), { credentials: creds }).getManifest('v1');
    assert.equal(got.digest, img.manifest.digest);

    fs.writeFileSync(
      path.join(process.env.DOCKER_CONFIG!, 'config.json'),
      JSON.stringify({ auths: { [secured.domain]: { auth: Buffer.from('user:pass').toString('base64') } } }),
    );
    try {
      const src = registrySource(ref(secured.domain, 'sec/app'));
      const m = await src.getManifest('v1');
      assert.deepEqual(m.bytes, img.manifest.bytes);
      assert.deepEqual(await readAll(await src.getBlob(img.layerDesc)), img.layer);
      assert.deepEqual(await listTags(ref(secured.domain, 'sec/app')), ['v1']);
    } finally {
      fs.rmSync(path.join(process.env.DOCKER_CONFIG!, 'config.json'));
    }
  });
});

// ---- a bearer-token registry ----------------------------------------------------------------------------------

interface TokenRegistry {
  domain: string;
  port: number;
  tokenRequests: { auth?: string; method: string; scopes: string[]; body?: string }[];
  registryRequests: { method: string; url: string; auth?: string; status: number }[];
  redirectTargetAuth: (string | undefined)[];
  ttl: number;
  revokeAll(): void;
  close(): Promise<void>;
  manifests: Map<string, { bytes: Buffer; type: string }>;
  blobs: Map<string, Buffer>;
}

async function startTokenRegistry(): Promise<TokenRegistry> {
  const port = await freePort();
  const cdnPort = await freePort();
  const valid = new Map<string, { expires: number; scopes: string[] }>();
  const state: TokenRegistry = {
    domain: `127.0.0.1:${port}`,
    port,
    tokenRequests: [],
    registryRequests: [],
    redirectTargetAuth: [],
    ttl: 300,
    revokeAll: () => valid.clear(),
    close: async () => {},
    manifests: new Map(),
    blobs: new Map(),
  };
  const realm = `http://127.0.0.1:${port}/token`;
  let flaky = 0;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, `http://${req.headers.host}`);
    const send = (status: number, body: string | Buffer, headers: Record<string, string> = {}): void => {
      res.writeHead(status, headers);
      res.end(body);
    };
    if (url.pathname === '/token') {
      let body = '';
      req.on('data', (d: Buffer) => (body += d));
      req.on('end', () => {
        let scopes = url.searchParams.getAll('scope');
        let ok = false;
        if (req.method === 'POST') {
          const form = new URLSearchParams(body);
          scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
          ok = form.get('grant_type') === 'refresh_token' && form.get('refresh_token') === 'the-identity-token';
        } else {
          ok = req.headers.authorization === `Basic ${Buffer.from('tuser:tpass').toString('base64')}`;
        }
        state.tokenRequests.push({ auth: req.headers.authorization, method: req.method!, scopes, body: body || undefined });
        if (!ok) return send(401, JSON.stringify({ details: 'incorrect username or password' }), { 'content-type': 'application/json' });
        const token = crypto.randomBytes(12).toString('hex');
        valid.set(token, { expires: Date.now() + state.ttl * 1000, scopes });
        send(200, JSON.stringify({ token, expires_in: state.ttl, issued_at: new Date().toISOString() }), { 'content-type': 'application/json' });
      });
      return;
    }
    const m = /^\/v2\/(.+?)\/(manifests|blobs|tags)\/(.+)$/.exec(url.pathname);
    const name = m?.[1];
    const auth = req.headers.authorization;
    const tok = auth?.startsWith('Bearer ') ? valid.get(auth.slice(7)) : undefined;
    const authorized = tok !== undefined && tok.expires > Date.now() && (!name || tok.scopes.some((s) => s.startsWith(`repository:${name}:`)));
    const record = (status: number): void => {
      state.registryRequests.push({ method: req.method!, url: url.pathname + url.search, auth, status });
    };
    if (!authorized) {
      record(401);
      const scope = name ? `,scope="repository:${name}:pull"` : '';
      return send(401, JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }), {
        'content-type': 'application/json',
        'www-authenticate': `Bearer realm="${realm}",service="test"${scope}`,
      });
    }
    if (url.pathname === '/v2/') {
      record(200);
      return send(200, '{}');
    }
    if (name === 'flaky/app' && flaky++ === 0) {
      record(503);
      return send(503, 'try later');
    }
    if (m?.[2] === 'manifests') {
      const man = state.manifests.get(`${name}:${m[3]}`);
      if (!man) {
        record(404);
        return send(404, JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] }));
      }
      record(200);
      return send(200, man.bytes, { 'content-type': man.type });
    }
    if (m?.[2] === 'blobs') {
      const blob = state.blobs.get(m[3]!);
      if (!blob) return record(404), send(404, '');
      if (name === 'cdn/app') {
        record(307);
        return send(307, '', { location: `http://localhost:${cdnPort}/data/${m[3]}?sig=1` });
      }
      // This registry ignores Range: it always answers 200 with the whole blob.
      record(200);
      return send(200, blob, { 'content-length': String(blob.length) });
    }
    if (m?.[2] === 'tags') {
      record(200);
      const all = ['t1', 't2', 't3', 't4', 't5'];
      const last = url.searchParams.get('last');
      const start = last ? all.indexOf(last) + 1 : 0;
      const page = all.slice(start, start + 2);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (start + 2 < all.length) headers.link = `</v2/${name}/tags/list?n=2&last=${page[page.length - 1]}>; rel="next"`;
      return send(200, JSON.stringify({ name, tags: page }), headers);
    }
    record(404);
    send(404, '');
  });
  const cdn = http.createServer((req, res) => {
    state.redirectTargetAuth.push(req.headers.authorization);
    const digest = /^\/data\/(.+)$/.exec(new URL(req.url!, 'http://x').pathname)?.[1];
    const blob = digest ? state.blobs.get(digest) : undefined;
    res.writeHead(blob ? 200 : 404);
    res.end(blob ?? '');
  });
  await Promise.all([
    new Promise<void>((r) => server.listen(port, '127.0.0.1', r)),
    new Promise<void>((r) => cdn.listen(cdnPort, '127.0.0.1', r)),
  ]);
  state.close = async () => {
    server.closeAllConnections();
    cdn.closeAllConnections();
    await Promise.all([new Promise((r) => server.close(r)), new Promise((r) => cdn.close(r))]);
  };
  return state;
}

describe('bearer-token flow (test token server)', () => {
  let reg: TokenRegistry;
  const creds = { username: 'tuser', password: 'tpass' };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: {}, layers: [] }));
  const blob = crypto.randomBytes(10_000);
  const blobDesc: Descriptor = { mediaType: MediaType.OciLayer, digest: digestOf(blob), size: blob.length };

  before(async () => {
    reg = await startTokenRegistry();
    for (const name of ['tok/app', 'flaky/app', 'cdn/app']) {
      reg.manifests.set(`${name}:v1`, { bytes: manifest, type: MediaType.OciManifest });
      reg.manifests.set(`${name}:${digestOf(manifest)}`, { bytes: manifest, type: MediaType.OciManifest });
    }
    reg.blobs.set(blobDesc.digest, blob);
  });
  after(() => reg.close());

  it('fetches a manifest through the token flow, with one token for several calls', async () => {
    const src = registrySource(ref(reg.domain, 'tok/app'), { credentials: creds });
    const m = await src.getManifest('v1');
    assert.deepEqual(m.bytes, manifest);
    assert.equal(m.digest, digestOf(manifest));
    await src.getManifest('v1');
    await src.getManifest(digestOf(manifest));
    assert.deepEqual(await readAll(await src.getBlob(blobDesc)), blob);
    assert.equal(reg.tokenRequests.length, 1);
    assert.deepEqual(reg.tokenRequests[0]!.scopes, ['repository:tok/app:pull']);
    assert.equal(reg.tokenRequests[0]!.auth, `Basic ${Buffer.from('tuser:tpass').toString('base64')}`);
    assert.equal(reg.registryRequests.filter((r) => r.status === 401).length, 1, 'only the first request is challenged');
  });

  it('skips the first bytes itself when the registry ignores Range', async () => {
    const src = registrySource(ref(reg.domain, 'tok/app'), { credentials: creds });
    assert.deepEqual(await readAll(await src.getBlob(blobDesc, { offset: 4097 })), blob.subarray(4097));
  });

  it('re-authenticates when the registry refuses a cached token, and refreshes expired tokens', async () => {
    const client = new RegistryClient(reg.domain, { credentials: creds });
    const src = registrySource(ref(reg.domain, 'tok/app'), { client });
    await src.getManifest('v1');
    const before = reg.tokenRequests.length;
    reg.revokeAll();
    assert.deepEqual((await src.getManifest('v1')).bytes, manifest);
    assert.equal(reg.tokenRequests.length, before + 1);

    // Tokens that live 1 s: refreshed up front once expired, without a 401.
    reg.ttl = 1;
    try {
      reg.revokeAll();
      await src.getManifest('v1'); // 401, new 1 s token
      const n = reg.tokenRequests.length;
      const refused = reg.registryRequests.filter((r) => r.status === 401).length;
      await src.getManifest('v1');
      assert.equal(reg.tokenRequests.length, n, 'still valid');
      await new Promise((r) => setTimeout(r, 1000));
      await src.getManifest('v1');
      assert.equal(reg.tokenRequests.length, n + 1, 'refreshed after expiry');
      assert.equal(reg.registryRequests.filter((r) => r.status === 401).length, refused, 'no 401 needed');
    } finally {
      reg.ttl = 300;
    }
  });

  it('refuses wrong credentials with UNAUTHORIZED', async () => {
    await assert.rejects(
      registrySource(ref(reg.domain, 'tok/app'), { credentials: { username: 'tuser', password: 'nope' } }).getManifest('v1'),
      (e: RegistryError) => {
        assert.equal(e.code, 'UNAUTHORIZED');
        assert.match(e.message, /unauthorized: incorrect username or password$/);
        return true;
      },
    );
    await assert.rejects(checkLogin(reg.domain, { username: 'tuser', password: 'nope' }), /incorrect username or password/);
    await checkLogin(reg.domain, creds);
  });

  it('uses the OAuth2 form with an identity token', async () => {
    const n = reg.tokenRequests.length;
    const src = registrySource(ref(reg.domain, 'tok/app'), { credentials: { username: '', password: '', identityToken: 'the-identity-token' } });
    assert.deepEqual((await src.getManifest('v1')).bytes, manifest);
    const req = reg.tokenRequests[n]!;
    assert.equal(req.method, 'POST');
    const form = new URLSearchParams(req.body);
    assert.equal(form.get('grant_type'), 'refresh_token');
    assert.equal(form.get('service'), 'test');
    assert.equal(form.get('scope'), 'repository:tok/app:pull');
  });

  it('retries a 5xx', async () => {
    const src = registrySource(ref(reg.domain, 'flaky/app'), { credentials: creds, retryDelayMs: 10 });
    assert.deepEqual((await src.getManifest('v1')).bytes, manifest);
    assert.equal(reg.registryRequests.filter((r) => r.url.startsWith('/v2/flaky/') && r.status === 503).length, 1);
  });

  it('follows blob redirects without sending Authorization to the other host', async () => {
    const src = registrySource(ref(reg.domain, 'cdn/app'), { credentials: creds });
    assert.deepEqual(await readAll(await src.getBlob(blobDesc)), blob);
    assert.deepEqual(reg.redirectTargetAuth, [undefined]);
    assert.ok(reg.registryRequests.some((r) => r.url.startsWith('/v2/cdn/app/blobs/') && r.status === 307 && r.auth?.startsWith('Bearer ')));
  });

  it('follows Link pages of tags', async () => {
    assert.deepEqual(await listTags(ref(reg.domain, 'tok/app'), { credentials: creds, pageSize: 2 }), ['t1', 't2', 't3', 't4', 't5']);
  });

  it('refuses manifests whose bytes do not hash to the digest, and schema 1', async () => {
    const other = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}');
    const claimed = digestOf('something else') as Digest;
    reg.manifests.set(`tok/app:${claimed}`, { bytes: other, type: MediaType.OciManifest });
    const src = registrySource(ref(reg.domain, 'tok/app'), { credentials: creds });
    await assert.rejects(src.getManifest(claimed), (e: Error) => {
      assert.ok(e instanceof DigestMismatchError);
      assert.equal((e as DigestMismatchError).expected, claimed);
      assert.equal((e as DigestMismatchError).actual, digestOf(other));
      return true;
    });
    reg.manifests.set('tok/app:old', {
      bytes: Buffer.from('{"schemaVersion":1,"name":"tok/app","tag":"old","fsLayers":[]}'),
      type: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
    });
    await assert.rejects(src.getManifest('old'), (e: Error) => e instanceof UnsupportedError && /schema 1/.test(e.message));
    // A generic Content-Type: the media type comes from the body.
    reg.manifests.set('tok/app:generic', { bytes: manifest, type: 'application/json' });
    assert.equal((await src.getManifest('generic')).mediaType, MediaType.OciManifest);
  });
});

// ---- TLS ------------------------------------------------------------------------------------------------------

describe('TLS', () => {
  let server: https.Server;
  let domain: string;
  let cert: Buffer;

  before(async () => {
    const dir = tempDir('ply-tls-');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`, '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1',
    ], { stdio: 'ignore' });
    cert = fs.readFileSync(`${dir}/cert.pem`);
    server = https.createServer({ key: fs.readFileSync(`${dir}/key.pem`), cert }, (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    domain = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('names the host when a certificate does not verify', async () => {
    await assert.rejects(new RegistryClient(domain, { tlsVerify: true, credentials: null }).ping(), (e: RegistryError) => {
      assert.equal(e.code, 'TLS');
      assert.equal(e.message, `Get "https://${domain}/v2/": tls: failed to verify certificate: x509: certificate signed by unknown authority`);
      return true;
    });
  });

  it('trusts an extra CA, or skips verification with tlsVerify: false', async () => {
    await new RegistryClient(domain, { tlsVerify: true, ca: cert, credentials: null }).ping();
    const t = tracer();
    await new RegistryClient(domain, { tlsVerify: false, credentials: null, onResponse: t.onResponse }).ping();
    assert.ok(t.log[0]!.url.startsWith('https://'));
  });
});

describe('start-up', () => {
  it('a plain HTTP registry never loads node:https and TLS (they load on the first HTTPS request)', () => {
    const http = new URL('../../src/transport/registry-client.ts', import.meta.url).href;
    const script = `
      import { createServer } from 'node:http';
      const { RegistryClient } = await import(${JSON.stringify(http)});
      const srv = createServer((_req, res) => res.end('{}')).listen(0, '127.0.0.1');
      await new Promise((r) => srv.once('listening', r));
      const c = new RegistryClient('127.0.0.1:' + srv.address().port, { credentials: null });
      (await c.request({ method: 'GET', path: '/v2/', scopes: [], expect: [200] })).discard();
      console.log(JSON.stringify(process.moduleLoadList.filter((m) => /NativeModule (https|tls)$/.test(m))));
      process.exit(0);`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.deepEqual(JSON.parse(out.trim().split('\n').pop()!), []);
  });
});
