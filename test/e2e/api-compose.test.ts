// End-to-end: docker-compose 1.29 (Debian's, over docker-py) drives ply through the Docker Engine API: two
// services on their own network, a published port, a named volume and depends_on; up -d, ps, logs, exec, down -v.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { plyOk, tempDir } from '../helpers.js';
import { dockerOk, startPlyApi, type PlyApi } from '../api-peer.js';
import { freePort } from '../registry-peer.js';

let api: PlyApi;
before(async () => {
  api = await startPlyApi();
});
after(async () => {
  await api?.stop();
});

function compose(dir: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('docker-compose', ['-p', 'plyapi', ...args], { cwd: dir, env: { ...process.env, ...api.env }, encoding: 'utf8', timeout: 180_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function composeOk(dir: string, args: string[]): string {
  const r = compose(dir, args);
  if (r.code !== 0) throw new Error(`docker-compose ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}\nservice: ${api.log().slice(-2000)}`);
  return r.stdout;
}

const get = (url: string) =>
  new Promise<string>((resolve, reject) => {
    http.get(url, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => (b += c));
      res.on('end', () => resolve(b));
    }).on('error', reject);
  });

test('compose: up -d, ps, logs, exec, down -v over a network, a published port, a volume and depends_on', async () => {
  const dir = tempDir('ply-compose-');
  const port = await freePort();
  fs.writeFileSync(
    path.join(dir, 'docker-compose.yml'),
    `version: "3.8"
services:
  web:
    image: bb
    command: sh -c 'mkdir -p /www && echo hello-from-web > /www/index.html && httpd -f -p 8080 -h /www'
    ports:
      - "127.0.0.1:${port}:8080"
    networks: [backend]
  client:
    image: bb
    command: sh -c 'while true; do wget -q -O /data/got http://web:8080/ && cat /data/got; sleep 0.5; done'
    depends_on: [web]
    volumes:
      - data:/data
    networks: [backend]
networks:
  backend: {}
volumes:
  data: {}
`,
  );
  try {
    composeOk(dir, ['up', '-d']);
    const ps = composeOk(dir, ['ps']);
    assert.match(ps, /plyapi_web_1 .* Up .*127\.0\.0\.1:\d+->8080\/tcp/);
    assert.match(ps, /plyapi_client_1 .* Up/);
    assert.match(plyOk(api.root, ['ps', '--format', '{{.Names}}']), /plyapi_client_1/, 'ply lists what compose started');
    // httpd may still be starting: retried for up to 30 s (the machine is shared and often loaded).
    let body = '';
    for (let i = 0; i < 120 && body === ''; i++) {
      body = await get(`http://127.0.0.1:${port}/`).catch(() => '');
      if (body === '') await new Promise((r) => setTimeout(r, 250));
    }
    assert.equal(body, 'hello-from-web\n');
    let logs = '';
    for (let i = 0; i < 120 && !/hello-from-web/.test(logs); i++) {
      await new Promise((r) => setTimeout(r, 250));
      logs = composeOk(dir, ['logs', '--no-color', 'client']);
    }
    assert.match(logs, /client_1 +\| hello-from-web/, 'the client reached web by its service name');
    assert.equal(composeOk(dir, ['exec', '-T', 'client', 'cat', '/data/got']), 'hello-from-web\n');
    assert.match(dockerOk(api, ['volume', 'ls', '--format', '{{.Name}}']), /^plyapi_data$/m);
  } finally {
    const down = compose(dir, ['down', '-v']);
    assert.equal(down.code, 0, down.stderr);
  }
  assert.equal(dockerOk(api, ['ps', '-a', '-q']), '');
  assert.doesNotMatch(dockerOk(api, ['volume', 'ls', '--format', '{{.Name}}']), /plyapi_data/);
  assert.doesNotMatch(dockerOk(api, ['network', 'ls', '--format', '{{.Name}}']), /plyapi_backend/);
});
