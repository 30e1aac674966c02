// End-to-end: parallel `ply pull`s of one image into one store all succeed, each layer crosses the network once
// (a pull waits for the process fetching a blob and reuses its result), and the store is consistent after.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startRegistry } from '../../src/registry/server.js';
import { busyboxTar, plyAsync, plyOk, tempDir } from '../helpers.js';

async function ok(root: string, args: string[]): Promise<string> {
  const r = await plyAsync(root, args);
  assert.equal(r.code, 0, `ply ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

// The registry runs in this process: every ply command that reaches it runs asynchronously.
test('parallel pulls of one image into one store: all succeed, each layer is fetched once, the store checks clean', async () => {
  const log: string[] = [];
  const reg = await startRegistry({ root: tempDir(), addr: '127.0.0.1:0', log: (l) => log.push(l) });
  try {
    const host = new URL(reg.url).host;
    const src = tempDir();
    plyOk(src, ['import', busyboxTar(), 'bb']);
    const ctx = tempDir();
    const steps = Array.from({ length: 8 }, (_, i) => `RUN head -c ${(i + 1) * 300000} /dev/urandom > /f${i}`);
    fs.writeFileSync(path.join(ctx, 'Dockerfile'), `FROM bb\n${steps.join('\n')}\n`);
    plyOk(src, ['build', '-q', '-t', `${host}/r/many:v1`, ctx]);
    await ok(src, ['push', `${host}/r/many:v1`]);
    const layers = JSON.parse(plyOk(src, ['image', 'inspect', '--format', '{{json .RootFS.Layers}}', `${host}/r/many:v1`])) as string[];
    assert.equal(layers.length, 9);

    for (let round = 0; round < 4; round++) {
      const dst = tempDir();
      log.length = 0;
      const results = await Promise.all(Array.from({ length: 4 }, () => plyAsync(dst, ['pull', '-q', `${host}/r/many:v1`])));
      for (const r of results) assert.equal(r.code, 0, `round ${round}: ${r.stderr}`);
      const layerGets = log.filter((l) => /^GET \/v2\/r\/many\/blobs\/sha256:\S+ 20[06] /.test(l) && !l.includes(' 200 0 '));
      const perBlob = new Map<string, number>();
      for (const l of layerGets) {
        const d = /blobs\/(sha256:[0-9a-f]+)/.exec(l)![1]!;
        perBlob.set(d, (perBlob.get(d) ?? 0) + 1);
      }
      // Every layer once; the config (read ahead by each pull while layers move, 1 KiB) may be read by each.
      const repeated = [...perBlob].filter(([, n]) => n > 1);
      assert.ok(repeated.length <= 1, `round ${round}: blobs fetched more than once: ${JSON.stringify(repeated)}`);
      const check = plyOk(dst, ['system', 'check']);
      assert.doesNotMatch(check, /ingest|missing|corrupt/i, check);
      assert.deepEqual(fs.readdirSync(path.join(dst, 'ingest')), [], `round ${round}: ingests left behind`);
      assert.equal(plyOk(dst, ['run', '--network', 'none', '--rm', `${host}/r/many:v1`, 'sh', '-c', 'wc -c < /f7']).trim(), '2400000');
    }
  } finally {
    await reg.close();
  }
});
