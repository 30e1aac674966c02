// The registry server under load: 1000 requests from 50 concurrent clients (uploads and pulls of shared
// blobs), no errors and no lost blobs; path tricks in repository names and upload IDs refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { startRegistry } from '../../src/registry/server.js';
import { tempDir } from '../helpers.js';

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function request(base: string, method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, { method, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) }, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}
const agent = new http.Agent({ keepAlive: true, maxSockets: 50 });

test('1000 requests from 50 concurrent clients: uploads and pulls of shared blobs, nothing lost', async () => {
  const reg = await startRegistry({ root: tempDir(), addr: '127.0.0.1:0', log: false });
  try {
    const base = reg.url;
    // 20 distinct blobs, each uploaded by several clients at once (same digest racing), then pulled many times.
    const blobs = Array.from({ length: 20 }, (_, i) => randomBytes(1024 * (1 + (i % 7)) * 37));
    let requests = 0;
    const errors: string[] = [];
    const client = async (n: number) => {
      for (let k = 0; k < 10; k++) {
        const blob = blobs[(n * 7 + k) % blobs.length]!;
        const d = sha256(blob);
        const repo = `stress/r${n % 5}`;
        if (k % 2 === 0) {
          const post = await request(base, 'POST', `/v2/${repo}/blobs/uploads/`);
          requests++;
          if (post.status !== 202) errors.push(`POST ${post.status}`);
          const loc = String(post.headers.location);
          const put = await request(base, 'PUT', `${loc.startsWith('http') ? new URL(loc).pathname + new URL(loc).search : loc}${loc.includes('?') ? '&' : '?'}digest=${d}`, blob, { 'content-type': 'application/octet-stream' });
          requests++;
          if (put.status !== 201) errors.push(`PUT ${put.status} ${put.body}`);
        } else {
          // Pull something this repository already pushed (or get a clean 404 for one it has not).
          const get = await request(base, 'GET', `/v2/${repo}/blobs/${d}`);
          requests++;
          if (get.status === 200 && sha256(get.body) !== d) errors.push(`GET returned wrong bytes for ${d}`);
          if (get.status !== 200 && get.status !== 404) errors.push(`GET ${get.status}`);
        }
      }
    };
    await Promise.all(Array.from({ length: 50 }, (_, n) => client(n)));
    // Then every repository pulls every blob it pushed: all present, all intact.
    for (let n = 0; n < 5; n++) {
      for (let c = n; c < 50; c += 5) {
        for (let k = 0; k < 10; k += 2) {
          const blob = blobs[(c * 7 + k) % blobs.length]!;
          const get = await request(base, 'GET', `/v2/stress/r${n}/blobs/${sha256(blob)}`);
          requests++;
          assert.equal(get.status, 200);
          assert.ok(get.body.equals(blob));
        }
      }
    }
    assert.deepEqual(errors, []);
    assert.ok(requests >= 1000, `${requests} requests`);
  } finally {
    await reg.close();
  }
});

test('path tricks in repository names and upload IDs are refused', async () => {
  const reg = await startRegistry({ root: tempDir(), addr: '127.0.0.1:0', log: false });
  try {
    for (const p of [
      '/v2/../../etc/passwd/blobs/uploads/',
      '/v2/a/../../b/blobs/uploads/',
      '/v2/UPPER/blobs/uploads/',
      '/v2/a//b/blobs/uploads/',
    ]) {
      const r = await request(reg.url, 'POST', p);
      assert.ok(r.status >= 400 && r.status < 500, `${p} → ${r.status}`);
    }
    // Dot segments spelled with percent escapes are resolved by URL parsing first: the request stays inside the
    // namespace (it names repository "b"), never above it.
    const dots = await request(reg.url, 'POST', '/v2/a/%2e%2e/b/blobs/uploads/');
    assert.ok(dots.status >= 400 || String(dots.headers.location).startsWith('/v2/b/blobs/uploads/'), String(dots.headers.location));
    for (const id of ['../../../etc/passwd', '..%2F..%2Fingest', 'x/../../y', '%00']) {
      const r = await request(reg.url, 'PATCH', `/v2/ok/repo/blobs/uploads/${id}`, Buffer.from('data'));
      assert.ok(r.status >= 400 && r.status < 500, `upload id ${id} → ${r.status}`);
    }
  } finally {
    await reg.close();
  }
});
