// End-to-end: `ply registry serve` under abuse. One client flooding it with uploads holds no descriptors and
// gets 429 TOOMANYREQUESTS past its cap while another client pushes and pulls; abandoned uploads are purged;
// oversized manifests and escaped slashes in names are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { PLY, busyboxTar, plyAsync, tempDir } from '../helpers.js';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(url: string, method: string, opts: { auth?: string; body?: Buffer | string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    if (opts.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(opts.body));
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function serve(root: string, args: string[]): Promise<{ url: string; child: ChildProcess; stop: () => Promise<void> }> {
  const child = spawn(PLY, ['registry', 'serve', '--addr', '127.0.0.1:0', '--root', root, ...args], {
    env: { ...process.env, PLY_ROOT: tempDir() },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`registry exited ${code}: ${err}`)));
  });
  const exited = new Promise((r) => child.once('exit', r));
  return {
    url,
    child,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const fdCount = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;

async function ok(root: string, args: string[], env?: Record<string, string>): Promise<string> {
  const r = await plyAsync(root, args, { env });
  assert.equal(r.code, 0, `ply ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('an upload flood holds no descriptors and meets 429 at its cap; another client pushes and pulls; manifest and name limits', async () => {
  const dir = tempDir();
  const htpasswd = path.join(dir, 'htpasswd');
  execFileSync('htpasswd', ['-cbB', htpasswd, 'mallory', 'flood']);
  execFileSync('htpasswd', ['-bB', htpasswd, 'alice', 'secret']);
  const reg = await serve(path.join(dir, 'reg'), ['--htpasswd', htpasswd, '--max-uploads-per-client', '60']);
  try {
    const mallory = 'mallory:flood';
    const before = fdCount(reg.child.pid!);
    // 200 uploads, 10 at a time: POST, then one PATCH each, never finished.
    const statuses: number[] = [];
    const codes = new Set<string>();
    for (let i = 0; i < 200; i += 10) {
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          const post = await request(`${reg.url}/v2/mallory/flood/blobs/uploads/`, 'POST', { auth: mallory });
          statuses.push(post.status);
          if (post.status !== 202) {
            codes.add((JSON.parse(post.body) as { errors: { code: string }[] }).errors[0]!.code);
            return;
          }
          const patch = await request(new URL(post.headers.location!, reg.url).href, 'PATCH', {
            auth: mallory,
            body: Buffer.alloc(4096, 1),
            headers: { 'Content-Type': 'application/octet-stream' },
          });
          assert.equal(patch.status, 202, patch.body);
        }),
      );
    }
    const during = fdCount(reg.child.pid!);
    assert.ok(during - before < 20, `descriptors held by the server grew from ${before} to ${during}`);
    assert.equal(statuses.filter((s) => s === 202).length, 60, 'the cap admits 60 uploads');
    assert.equal(statuses.filter((s) => s === 429).length, 140);
    assert.deepEqual([...codes], ['TOOMANYREQUESTS']);

    // Another client is unaffected: alice pushes, and pulls into a fresh store.
    const host = new URL(reg.url).host;
    const store = tempDir();
    const docker = { DOCKER_CONFIG: tempDir() };
    await ok(store, ['import', busyboxTar(), `${host}/alice/app:v1`]);
    await ok(store, ['login', '-u', 'alice', '-p', 'secret', host], docker);
    await ok(store, ['push', `${host}/alice/app:v1`], docker);
    const fresh = tempDir();
    await ok(fresh, ['pull', `${host}/alice/app:v1`], docker);
    // Mallory's cap is hers alone: still 429 for her after alice's push.
    assert.equal((await request(`${reg.url}/v2/mallory/flood/blobs/uploads/`, 'POST', { auth: mallory })).status, 429);
    const alice = 'alice:secret';

    // A manifest over 4 MiB: 400 MANIFEST_INVALID, without reading it all. One of 4 MiB exactly is parsed.
    const big = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', annotations: { pad: 'x'.repeat(4 << 20) } });
    const tooBig = await request(`${reg.url}/v2/alice/app/manifests/big`, 'PUT', {
      auth: alice,
      body: big,
      headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
    });
    assert.equal(tooBig.status, 400, tooBig.body);
    assert.equal((JSON.parse(tooBig.body) as { errors: { code: string }[] }).errors[0]!.code, 'MANIFEST_INVALID');

    // An escaped slash does not name alice/app.
    assert.equal((await request(`${reg.url}/v2/alice/app/manifests/v1`, 'GET', { auth: alice })).status, 200);
    for (const escaped of ['alice%2fapp', 'alice%2Fapp', 'alice%252fapp']) {
      const r = await request(`${reg.url}/v2/${escaped}/manifests/v1`, 'GET', { auth: alice });
      assert.ok(r.status >= 400 && r.status < 500, `${escaped}: ${r.status}`);
      assert.doesNotMatch(r.body, /schemaVersion/);
    }
    const tags = await request(`${reg.url}/v2/alice%2fapp/tags/list`, 'GET', { auth: alice });
    assert.equal(tags.status, 400, tags.body);
    assert.equal((JSON.parse(tags.body) as { errors: { code: string }[] }).errors[0]!.code, 'NAME_INVALID');
  } finally {
    await reg.stop();
  }
});

test('registry serve --upload-ttl purges abandoned uploads at start and while it runs', async () => {
  const root = path.join(tempDir(), 'reg');
  let reg = await serve(root, ['--upload-ttl', '2s']);
  const ingests = () => fs.readdirSync(path.join(root, 'ingest'));
  try {
    const open = async () => {
      const post = await request(`${reg.url}/v2/team/app/blobs/uploads/`, 'POST');
      assert.equal(post.status, 202);
      const loc = new URL(post.headers.location!, reg.url).href;
      assert.equal((await request(loc, 'PATCH', { body: Buffer.alloc(1 << 20, 7) })).status, 202);
      return loc;
    };
    const first = await open();
    assert.equal(ingests().length, 1);
    // An upload still being written to is kept.
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 800));
      assert.equal((await request(first, 'PATCH', { body: 'more' })).status, 202);
    }
    assert.equal((await request(first, 'GET')).status, 204);
    // Abandoned: gone within the TTL plus one sweep.
    await new Promise((r) => setTimeout(r, 4000));
    assert.equal((await request(first, 'GET')).status, 404);
    assert.deepEqual(ingests(), []);
    // One abandoned while the server was down is purged when it starts.
    await open();
    await reg.stop();
    await new Promise((r) => setTimeout(r, 2500));
    reg = await serve(root, ['--upload-ttl', '2s']);
    for (let i = 0; i < 20 && ingests().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(ingests(), []);
  } finally {
    await reg.stop();
  }
  const bad = await plyAsync(tempDir(), ['registry', 'serve', '--root', root, '--upload-ttl', 'soon']);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /invalid --upload-ttl/);
  assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
});
