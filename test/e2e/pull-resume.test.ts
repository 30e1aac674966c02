// Pulls that are interrupted resume their partial blobs (HTTP Range) on the next try; concurrent pulls of
// images sharing a layer download it once. The registry is ply's own, in this process, for its access log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startRegistry } from '../../src/registry/server.js';
import { PLY, busyboxTar, plyAsync, tempDir } from '../helpers.js';

async function ok(root: string, args: string[]): Promise<string> {
  const r = await plyAsync(root, args);
  assert.equal(r.code, 0, `ply ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

test('a killed pull resumes its partial layer with a Range request; concurrent pulls fetch a layer once', async () => {
  const log: string[] = [];
  const reg = await startRegistry({ root: tempDir(), addr: '127.0.0.1:0', log: (l) => log.push(l) });
  try {
    const host = new URL(reg.url).host;
    const src = tempDir();
    await ok(src, ['import', busyboxTar(), 'bb']);
    await ok(src, ['run', '--name', 'w', 'bb', 'sh', '-c', 'head -c 60000000 /dev/urandom > /big']);
    await ok(src, ['commit', 'w', `${host}/r/big:v1`]);
    await ok(src, ['push', `${host}/r/big:v1`]);
    // The manifest as pushed (its layers compressed on the way).
    const pushed = await fetch(`http://${host}/v2/r/big/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    const bigLayer = (JSON.parse(await pushed.text()) as { layers: { digest: string; size: number }[] }).layers[1]!;

    const dst = tempDir();
    // Kill the pull once part of the big layer is on disk.
    const partial = path.join(dst, 'ingest', `blob-${bigLayer.digest.replace(':', '-')}`, 'data');
    const child = spawn(PLY, ['pull', `${host}/r/big:v1`], { env: { ...process.env, PLY_ROOT: dst }, stdio: 'ignore' });
    const exited = new Promise((r) => child.once('exit', r));
    for (let i = 0; i < 2000; i++) {
      if (fs.existsSync(partial) && fs.statSync(partial).size > 8_000_000) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    child.kill('SIGKILL');
    await exited;
    const kept = fs.statSync(partial).size;
    assert.ok(kept > 0 && kept < bigLayer.size, `partial data kept: ${kept}`);
    // The registry logs the killed pull's GET once it sees the connection drop: wait for it before counting.
    const bigGet = (l: string) => l.startsWith(`GET /v2/r/big/blobs/${bigLayer.digest}`);
    for (let i = 0; i < 300 && !log.some(bigGet); i++) await new Promise((r) => setTimeout(r, 10));
    log.length = 0;
    await ok(dst, ['pull', `${host}/r/big:v1`]);
    const gets = log.filter((l) => l.startsWith(`GET /v2/r/big/blobs/${bigLayer.digest}`));
    assert.equal(gets.length, 1, gets.join('\n'));
    assert.match(gets[0]!, / 206 (\d+) /);
    const sent = Number(/ 206 (\d+) /.exec(gets[0]!)![1]);
    assert.ok(sent <= bigLayer.size - kept, `only the rest was sent (${sent} of ${bigLayer.size}, ${kept} kept)`);
    assert.equal((await ok(dst, ['run', '--rm', `${host}/r/big:v1`, 'sh', '-c', 'wc -c < /big'])).trim(), '60000000');

    // Two images sharing the big layer, pulled at once into a fresh store: the layer is downloaded once.
    await ok(src, ['tag', `${host}/r/big:v1`, `${host}/r/twin:v1`]);
    await ok(src, ['run', '--name', 'w2', `${host}/r/big:v1`, 'sh', '-c', 'echo twin > /twin']);
    await ok(src, ['commit', 'w2', `${host}/r/twin:v1`]);
    await ok(src, ['push', `${host}/r/twin:v1`]);
    const fresh = tempDir();
    log.length = 0;
    const [a, b] = await Promise.all([plyAsync(fresh, ['pull', `${host}/r/big:v1`]), plyAsync(fresh, ['pull', `${host}/r/twin:v1`])]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const fetched = log.filter((l) => /^GET \/v2\/r\/(big|twin)\/blobs\//.test(l) && l.includes(bigLayer.digest) && / 20[06] /.test(l));
    assert.equal(fetched.length, 1, fetched.join('\n'));
    assert.equal((await ok(fresh, ['run', '--rm', `${host}/r/twin:v1`, 'cat', '/twin'])).trim(), 'twin');
  } finally {
    await reg.close();
  }
});
