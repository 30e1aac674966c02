// Registry authentication: bcrypt against Apache's htpasswd, the 401 challenge, basic auth, and the token flow
// (tokens scoped to repositories and actions; insufficient scope answered with a new challenge).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Authenticator, parseHtpasswd, parseScope } from '../../src/registry/auth.js';
import { bcryptHash, bcryptVerify, bcryptVerifyAsync } from '../../src/registry/bcrypt.js';
import { startRegistry, type RegistryServer } from '../../src/registry/server.js';
import { tempDir } from '../helpers.js';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const digestOf = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const htpasswdLine = (user: string, password: string, cost = 5) =>
  execFileSync('htpasswd', ['-nbB', '-C', String(cost), user, password], { encoding: 'utf8' }).trim();

interface Reply {
  status: number;
  headers: Headers;
  body: Buffer;
  json<T = any>(): T;
}

async function call(base: string, p: string, init: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<Reply> {
  const res = await fetch(new URL(p, base), { method: init.method ?? 'GET', headers: init.headers, body: init.body as RequestInit['body'] });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) };
}

const basic = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

describe('bcrypt', () => {
  it('verifies hashes made by htpasswd -B (cost 5 and 10), refuses wrong passwords', async () => {
    for (const [password, cost] of [
      ['secret', 5],
      ['pä$$wörd with spaces', 10],
    ] as const) {
      const hash = htpasswdLine('u', password, cost).split(':')[1]!;
      assert.match(hash, /^\$2y\$/);
      assert.equal(bcryptVerify(password, hash), true);
      assert.equal(await bcryptVerifyAsync(password, hash), true);
      assert.equal(bcryptVerify(`${password}x`, hash), false);
      assert.equal(bcryptVerify('', hash), false);
    }
  });

  it('matches the OpenBSD/jBCrypt $2a$ test vectors', () => {
    assert.equal(bcryptVerify('', '$2a$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.'), true);
    assert.equal(bcryptVerify('a', '$2a$06$m0CrhHm10qJ3lXRY.5zDGO3rS2KdeeWLuGmsfGlMfOxih58VYVfxe'), true);
    assert.equal(bcryptVerify('abc', '$2a$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i'), true);
    assert.equal(bcryptVerify('abd', '$2a$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i'), false);
  });

  it('hashes that htpasswd -v accepts; passwords beyond 72 bytes are truncated as bcrypt does', () => {
    const dir = tempDir('ply-bcrypt-');
    const file = path.join(dir, 'htpasswd');
    fs.writeFileSync(file, `carol:${bcryptHash('s3cret pass', 5)}\n`);
    execFileSync('htpasswd', ['-vb', file, 'carol', 's3cret pass'], { stdio: 'ignore' });
    assert.throws(() => execFileSync('htpasswd', ['-vb', file, 'carol', 'wrong'], { stdio: 'ignore' }));
    const long = 'x'.repeat(72);
    const h = bcryptHash(long, 4);
    assert.equal(bcryptVerify(`${long}ignored`, h), true);
    assert.equal(bcryptVerify(long.slice(1), h), false);
  });

  it('$2a$, $2b$ and $2y$ name the same hash: each verifies here and with htpasswd -v', () => {
    const dir = tempDir('ply-bcrypt-');
    const y = htpasswdLine('u', 'pw 2', 5).split(':')[1]!;
    for (const prefix of ['$2a$', '$2b$', '$2y$']) {
      const hash = `${prefix}${y.slice(4)}`;
      assert.equal(bcryptVerify('pw 2', hash), true, prefix);
      assert.equal(bcryptVerify('pw 3', hash), false, prefix);
      const file = path.join(dir, `htpasswd-${prefix.slice(1, 3)}`);
      fs.writeFileSync(file, `u:${hash}\n`);
      execFileSync('htpasswd', ['-vb', file, 'u', 'pw 2'], { stdio: 'ignore' });
    }
  });

  it('refuses what is not a bcrypt hash', () => {
    assert.equal(bcryptVerify('x', '{SHA}C+7Hteo/D9vJXQ3UfzxbwnXaijM='), false);
    assert.equal(bcryptVerify('x', '$apr1$abc$def'), false);
    assert.equal(bcryptVerify('x', '$2y$99$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234'), false);
  });
});

describe('auth helpers', () => {
  it('parses htpasswd files, keeping only bcrypt entries', () => {
    const warnings: string[] = [];
    const users = parseHtpasswd(`# comment\n${htpasswdLine('alice', 'pw')}\nbob:{SHA}abc\n\nbroken\n`, (w) => warnings.push(w));
    assert.deepEqual([...users.keys()], ['alice']);
    assert.equal(warnings.length, 2);
  });

  it('parses scopes, names with slashes included', () => {
    assert.deepEqual(parseScope('repository:team/app:pull,push'), { type: 'repository', name: 'team/app', actions: ['pull', 'push'] });
    assert.deepEqual(parseScope('registry:catalog:*'), { type: 'registry', name: 'catalog', actions: ['*'] });
    assert.equal(parseScope('nonsense'), undefined);
  });

  it('tokens expire and are bound to their signer and service', () => {
    const a = new Authenticator(new Map(), 'svc');
    const { token } = a.issueToken('alice', [{ type: 'repository', name: 'x', actions: ['pull'] }]);
    assert.equal(a.verifyToken(token)?.sub, 'alice');
    assert.equal(new Authenticator(new Map(), 'svc').verifyToken(token), undefined);
    const realNow = Date.now;
    Date.now = () => realNow() + 301_000;
    try {
      assert.equal(a.verifyToken(token), undefined);
    } finally {
      Date.now = realNow;
    }
  });
});

describe('registry with --htpasswd', () => {
  let reg: RegistryServer;
  let host = '';
  const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', size: config.length, digest: digestOf(config) }, layers: [] }));

  before(async () => {
    const dir = tempDir('ply-registry-auth-');
    const file = path.join(dir, 'htpasswd');
    fs.writeFileSync(file, `${htpasswdLine('alice', 'secret')}\n${htpasswdLine('bob', 'hunter2')}\n`);
    reg = await startRegistry({ root: path.join(dir, 'root'), addr: '127.0.0.1:0', htpasswd: file, log: false, delete: true });
    host = new URL(reg.url).host;
  });
  after(() => reg.close());

  async function token(user: string, password: string, ...scopes: string[]): Promise<string> {
    const q = new URLSearchParams({ service: host });
    for (const s of scopes) q.append('scope', s);
    const r = await call(reg.url, `/token?${q}`, { headers: basic(user, password) });
    assert.equal(r.status, 200);
    const body = r.json<{ token: string; access_token: string; expires_in: number; issued_at: string }>();
    assert.equal(body.token, body.access_token);
    assert.equal(body.expires_in, 300);
    assert.ok(!Number.isNaN(Date.parse(body.issued_at)));
    return body.token;
  }

  function assertChallenge(r: Reply, scope?: string, error?: string): void {
    assert.equal(r.status, 401);
    if (r.body.length > 0) assert.equal(r.json().errors[0].code, 'UNAUTHORIZED'); // (HEAD has no body)
    assert.equal(r.headers.get('docker-distribution-api-version'), 'registry/2.0');
    const challenge = r.headers.get('www-authenticate') ?? '';
    let expected = `Bearer realm="http://${host}/token",service="${host}"`;
    if (scope) expected += `,scope="${scope}"`;
    if (error) expected += `,error="${error}"`;
    assert.ok(challenge.startsWith(expected), challenge);
    assert.match(challenge, /Basic realm="ply-registry"/);
  }

  it('anonymous requests get 401 with a challenge naming the scope they need', async () => {
    assertChallenge(await call(reg.url, '/v2/'));
    assertChallenge(await call(reg.url, '/v2/team/app/tags/list'), 'repository:team/app:pull');
    assertChallenge(await call(reg.url, '/v2/team/app/manifests/latest', { method: 'HEAD' }), 'repository:team/app:pull');
    assertChallenge(await call(reg.url, '/v2/team/app/blobs/uploads/', { method: 'POST' }), 'repository:team/app:pull,push');
    assertChallenge(await call(reg.url, `/v2/team/app/blobs/${digestOf('x')}`, { method: 'DELETE' }), 'repository:team/app:delete');
    assertChallenge(await call(reg.url, '/v2/_catalog'), 'registry:catalog:*');
  });

  it('wrong passwords and unknown users are refused, at the registry and at /token', async () => {
    assertChallenge(await call(reg.url, '/v2/', { headers: basic('alice', 'wrong') }));
    assertChallenge(await call(reg.url, '/v2/team/app/tags/list', { headers: basic('mallory', 'secret') }), 'repository:team/app:pull');
    const t = await call(reg.url, `/token?service=${host}&scope=repository:team/app:pull`, { headers: basic('alice', 'wrong') });
    assert.equal(t.status, 401);
    assert.match(t.headers.get('www-authenticate') ?? '', /^Basic /);
    const anon = await call(reg.url, `/token?service=${host}&scope=repository:team/app:pull`);
    assert.equal(anon.status, 401);
    assertChallenge(await call(reg.url, '/v2/', { headers: bearer('not.a.token') }), undefined, 'invalid_token');
  });

  it('basic credentials are accepted directly, for pushes and pulls', async () => {
    const h = basic('alice', 'secret');
    assert.equal((await call(reg.url, '/v2/', { headers: h })).status, 200);
    const r = await call(reg.url, `/v2/team/app/blobs/uploads/?digest=${digestOf(config)}`, { method: 'POST', headers: h, body: config });
    assert.equal(r.status, 201);
    const m = await call(reg.url, '/v2/team/app/manifests/v1', { method: 'PUT', headers: { ...h, 'Content-Type': OCI_MANIFEST }, body: manifest });
    assert.equal(m.status, 201);
    assert.ok((await call(reg.url, '/v2/team/app/manifests/v1', { headers: h })).body.equals(manifest));
    assert.deepEqual((await call(reg.url, '/v2/_catalog', { headers: basic('bob', 'hunter2') })).json().repositories, ['team/app']);
  });

  it('the token flow: a token scoped to pull,push works for that repository only', async () => {
    const t = await token('bob', 'hunter2', 'repository:team/other:pull,push');
    assert.equal((await call(reg.url, '/v2/', { headers: bearer(t) })).status, 200);
    const up = await call(reg.url, `/v2/team/other/blobs/uploads/?digest=${digestOf(config)}`, { method: 'POST', headers: bearer(t), body: config });
    assert.equal(up.status, 201);
    const put = await call(reg.url, '/v2/team/other/manifests/v1', { method: 'PUT', headers: { ...bearer(t), 'Content-Type': OCI_MANIFEST }, body: manifest });
    assert.equal(put.status, 201);
    assert.ok((await call(reg.url, '/v2/team/other/manifests/v1', { headers: bearer(t) })).body.equals(manifest));
    // Outside its scope: another repository, another action, the catalog.
    assertChallenge(await call(reg.url, '/v2/team/app/manifests/v1', { headers: bearer(t) }), 'repository:team/app:pull', 'insufficient_scope');
    assertChallenge(await call(reg.url, '/v2/team/other/manifests/v1', { method: 'DELETE', headers: bearer(t) }), 'repository:team/other:delete', 'insufficient_scope');
    assertChallenge(await call(reg.url, '/v2/_catalog', { headers: bearer(t) }), 'registry:catalog:*', 'insufficient_scope');
    // A tampered token is not one.
    const [h, p, s] = t.split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    claims.access[0].name = 'team/app';
    const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
    assertChallenge(await call(reg.url, '/v2/team/app/manifests/v1', { headers: bearer(forged) }), 'repository:team/app:pull', 'invalid_token');
  });

  it('a pull-only token cannot push; mounting needs pull on the source (else a plain upload session)', async () => {
    const pull = await token('alice', 'secret', 'repository:team/app:pull');
    assert.equal((await call(reg.url, `/v2/team/app/blobs/${digestOf(config)}`, { headers: bearer(pull) })).status, 200);
    assertChallenge(await call(reg.url, '/v2/team/app/blobs/uploads/', { method: 'POST', headers: bearer(pull) }), 'repository:team/app:pull,push', 'insufficient_scope');
    const pushOnly = await token('alice', 'secret', 'repository:team/mounted:pull,push');
    const denied = await call(reg.url, `/v2/team/mounted/blobs/uploads/?mount=${digestOf(config)}&from=team/app`, { method: 'POST', headers: bearer(pushOnly) });
    assert.equal(denied.status, 202);
    const both = await token('alice', 'secret', 'repository:team/mounted:pull,push', 'repository:team/app:pull');
    const mounted = await call(reg.url, `/v2/team/mounted/blobs/uploads/?mount=${digestOf(config)}&from=team/app`, { method: 'POST', headers: bearer(both) });
    assert.equal(mounted.status, 201);
    const cat = await token('alice', 'secret', 'registry:catalog:*');
    assert.ok((await call(reg.url, '/v2/_catalog', { headers: bearer(cat) })).json().repositories.includes('team/mounted'));
  });

  it('POST /token with the OAuth2 password grant', async () => {
    const form = new URLSearchParams({ grant_type: 'password', username: 'alice', password: 'secret', service: host, scope: 'repository:team/app:pull' });
    const r = await call(reg.url, '/token', { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: form.toString() });
    assert.equal(r.status, 200);
    assert.equal((await call(reg.url, '/v2/team/app/tags/list', { headers: bearer(r.json().access_token) })).status, 200);
    const bad = new URLSearchParams({ grant_type: 'password', username: 'alice', password: 'nope' });
    assert.equal((await call(reg.url, '/token', { method: 'POST', body: bad.toString() })).status, 401);
  });

  it('many clients with the same credentials at once: one bcrypt check, all accepted', async () => {
    const h = basic('bob', 'hunter2');
    const replies = await Promise.all(Array.from({ length: 20 }, () => call(reg.url, '/v2/team/app/tags/list', { headers: h })));
    for (const r of replies) assert.equal(r.status, 200);
  });
});
