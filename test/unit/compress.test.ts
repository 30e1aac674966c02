// Layer compression for pushes: parallel gzip (independent members over blocks) and multi-threaded zstd give
// streams that gzip, Python and zstd read back to the same bytes, the same output every time, and release their
// input when the reader stops early.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import zlib from 'node:zlib';
import { compressed, compressionRecipe, decompressed, gzipImplementation, gzipParallel, parseRecipe } from '../../src/layer/compression.js';
import { createRequire } from 'node:module';
import { REPO, rng } from '../helpers.js';

/** Half compressible text, half random bytes, `n` bytes. */
function sample(n: number, seed = 7): Buffer {
  const next = rng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = i % 8192 < 4096 ? 97 + ((i >> 5) % 26) : Math.floor(next() * 256);
  return b;
}

const codecs = (): { igzip?: string; zstd?: string } => (createRequire(import.meta.url)('ply-native/deflate.js') as { codecs(): { igzip?: string; zstd?: string } }).codecs();
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

async function* chunked(b: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

async function all(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

test('parallel gzip: a multi-member stream that zlib, GNU gzip and Python decompress to the input; deterministic', async () => {
  const input = sample(700_000);
  const out = await all(gzipParallel(chunked(input, 50_000), { blockSize: 64 << 10, level: 6, parallel: 3 }));
  assert.deepEqual([...out.subarray(0, 2)], [0x1f, 0x8b]);
  // One member per block: every member starts with the gzip header (magic, deflate, no flags).
  const members = Math.ceil(input.length / (64 << 10));
  let headers = 0;
  for (let i = out.indexOf(Buffer.from([0x1f, 0x8b, 8, 0])); i >= 0; i = out.indexOf(Buffer.from([0x1f, 0x8b, 8, 0]), i + 1)) headers++;
  assert.ok(headers >= members, `${headers} member headers for ${members} blocks`);
  assert.ok(zlib.gunzipSync(out).equals(input));
  assert.ok(execFileSync('gzip', ['-dc'], { input: out, maxBuffer: 16 << 20 }).equals(input));
  const py = execFileSync('python3', ['-c', 'import gzip,sys; sys.stdout.buffer.write(gzip.decompress(sys.stdin.buffer.read()))'], { input: out, maxBuffer: 16 << 20 });
  assert.ok(py.equals(input));
  const again = await all(gzipParallel(chunked(input, 7777), { blockSize: 64 << 10, level: 6, parallel: 1 }));
  assert.ok(again.equals(out), 'same input, level and block size: same bytes, however the input was cut');
  const fast = await all(gzipParallel(chunked(input, 1 << 20), { blockSize: 64 << 10, level: 1 }));
  assert.ok(zlib.gunzipSync(fast).equals(input));
  assert.ok(zlib.gunzipSync(await all(gzipParallel(chunked(input, 1 << 20), { level: 0 }))).equals(input));
  assert.equal((await all(gzipParallel(chunked(Buffer.alloc(0), 1)))).length, 0);
});

test('zstd: zstd reads it back', async () => {
  const input = sample(3_000_000, 11);
  const out = await all(compressed(chunked(input, 100_000), 'zstd', { level: 3, parallel: 2 }));
  assert.deepEqual([...out.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd]);
  assert.ok(out.length < input.length);
  assert.ok(execFileSync('zstd', ['-dc'], { input: out, maxBuffer: 16 << 20 }).equals(input));
  assert.ok((await all(compressed(chunked(input, 100_000), 'none'))).equals(input));
});

test('a reader that stops early releases the input (gzip and zstd)', async () => {
  for (const format of ['gzip', 'zstd'] as const) {
    let released = false;
    const source = (async function* () {
      try {
        for (let i = 0; i < 1000; i++) yield sample(256 << 10, i);
      } finally {
        released = true;
      }
    })();
    for await (const chunk of compressed(source, format, { level: 1 })) {
      assert.ok(chunk.length > 0);
      break;
    }
    for (let i = 0; i < 100 && !released; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(released, `${format}: the source was closed`);
  }
});

test('gzip blocks are compressed by libdeflate (set-up builds it); zlib does it where the binding is missing, to other valid bytes', async () => {
  assert.equal(gzipImplementation(), 'libdeflate');
  const input = sample(300_000, 3);
  const script = `
    import { gzipParallel, gzipImplementation } from './src/layer/compression.ts';
    const parts = [];
    const input = [];
    for await (const c of process.stdin) input.push(c);
    for await (const c of gzipParallel((async function* () { yield Buffer.concat(input); })(), { blockSize: 65536 })) parts.push(c);
    process.stdout.write(gzipImplementation() + ' ' + Buffer.concat(parts).toString('base64'));`;
  const [impl, b64] = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: REPO,
    input,
    env: { ...process.env, PLY_GZIP: 'zlib' },
    encoding: 'utf8',
    maxBuffer: 16 << 20,
  }).split(' ');
  assert.equal(impl, 'zlib');
  const viaZlib = Buffer.from(b64!, 'base64');
  const viaLibdeflate = await all(gzipParallel(chunked(input, 1 << 20), { blockSize: 64 << 10 }));
  assert.ok(zlib.gunzipSync(viaZlib).equals(input));
  assert.ok(zlib.gunzipSync(viaLibdeflate).equals(input));
  assert.ok(!viaZlib.equals(viaLibdeflate), 'the two make different bytes: the recipe names the implementation');
});

test('adaptive gzip: a slow reader (a slow link) gets higher levels; the recorded plan makes the same bytes again', async () => {
  const input = sample(40 << 16, 5);
  const run = async (delayMs: number) => {
    let plan = '';
    const parts: Buffer[] = [];
    for await (const c of gzipParallel(chunked(input, 1 << 16), { blockSize: 1 << 16, adaptive: true, parallel: 2, onPlan: (p) => (plan = p) })) {
      parts.push(c);
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    }
    return { out: Buffer.concat(parts), plan };
  };
  const slow = await run(15);
  assert.equal(slow.plan.length, 40);
  assert.equal(slow.plan.at(-1), '9', `a slow reader: ${slow.plan}`);
  assert.ok(zlib.gunzipSync(slow.out).equals(input));
  const recipe = compressionRecipe('gzip', { plan: slow.plan, blockSize: 1 << 16 });
  assert.match(recipe, /^gzip\/L[0-9A-D]{40}\/65536\/libdeflate/);
  const again = parseRecipe(recipe)!;
  assert.equal(again.opts.plan, slow.plan);
  const replayed = await all(gzipParallel(chunked(input, 3000), again.opts));
  assert.ok(replayed.equals(slow.out), 'replaying the plan gives the same bytes');
  assert.equal(parseRecipe('gzip/6/1048576/libdeflate')!.opts.level, 6);
  assert.equal(parseRecipe('gzip/6/1048576/some-other-deflate'), undefined);
  assert.equal(parseRecipe('gzip/L6/1048576/libdeflate'), undefined, 'one code is written without L');
  assert.equal(parseRecipe('gzip/6/1/libdeflate'), undefined, 'a block size out of bounds');
});

test('adaptive gzip: a reader faster than deflate (loopback) moves down to igzip, whose members every reader takes', async () => {
  assert.ok(codecs().igzip, 'set-up builds the binding with ISA-L');
  const input = sample(48 << 20, 9);
  let plan = '';
  const out = await all(gzipParallel(chunked(input, 1 << 20), { adaptive: true, onPlan: (p) => (plan = p) }));
  assert.equal(plan.length, 48);
  assert.match(plan.slice(-8), /^[CD]+$/, `a fast reader ends on igzip's rungs: ${plan}`);
  assert.ok(zlib.gunzipSync(out).equals(input));
  assert.ok(execFileSync('gzip', ['-dc'], { input: out, maxBuffer: 64 << 20 }).equals(input));
  const recipe = compressionRecipe('gzip', { plan });
  assert.ok(recipe.endsWith(`/1048576/libdeflate+${codecs().igzip}`), recipe);
  const replayed = await all(gzipParallel(chunked(input, 1 << 20), parseRecipe(recipe)!.opts));
  assert.ok(replayed.equals(out), 'the recipe names igzip and its fingerprint, and replays to the same bytes');
  assert.equal(parseRecipe(recipe.replace(/isal-[0-9a-f]+$/, 'isal-00000000')), undefined, 'another igzip build is not trusted to replay');
});

test('zstd in frames of 8 MiB on the thread pool: zstd and zstd-napi read the run of frames back; adaptive levels rise for a slow reader', async () => {
  assert.ok(codecs().zstd, 'set-up builds the binding with libzstd');
  const input = sample(20 << 20, 13);
  const fixed = await all(compressed(chunked(input, 1 << 20), 'zstd', { level: 5 }));
  let frames = 0;
  for (let i = fixed.indexOf(ZSTD_MAGIC); i >= 0; i = fixed.indexOf(ZSTD_MAGIC, i + 1)) frames++;
  assert.ok(frames >= 3, `${frames} frames`);
  assert.ok(execFileSync('zstd', ['-dc'], { input: fixed, maxBuffer: 64 << 20 }).equals(input));
  assert.ok((await all(decompressed(chunked(fixed, 1 << 16)))).equals(input));
  assert.equal(compressionRecipe('zstd', { level: 5 }), `zstd/5/8388608/${codecs().zstd}`);
  let plan = '';
  const slow = [];
  for await (const c of compressed(chunked(input, 1 << 20), 'zstd', { adaptive: true, blockSize: 1 << 20, parallel: 2, onPlan: (p) => (plan = p) })) {
    slow.push(c);
    await new Promise((r) => setTimeout(r, 40));
  }
  assert.equal(plan.length, 20);
  assert.ok(parseInt(plan.at(-1)!, 36) > 3, `a slow reader raises the level: ${plan}`);
  const recipe = compressionRecipe('zstd', { plan, blockSize: 1 << 20 });
  assert.ok((await all(compressed(chunked(input, 1 << 20), 'zstd', parseRecipe(recipe)!.opts))).equals(Buffer.concat(slow)));
});

test('a zstd recipe from before the binding (one frame by zstd-napi worker threads) still replays to the same bytes', async () => {
  const input = sample(3_000_000, 17);
  const old = await all(compressed(chunked(input, 1 << 20), 'zstd', { level: 3, oneFrame: true }));
  assert.equal(compressionRecipe('zstd', { level: 3, oneFrame: true }), 'zstd/3/mt');
  assert.equal(old.indexOf(ZSTD_MAGIC, 1), -1, 'one frame');
  const again = await all(compressed(chunked(input, 1 << 20), 'zstd', parseRecipe('zstd/3/mt')!.opts));
  assert.ok(again.equals(old));
});
