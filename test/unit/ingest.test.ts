// Layer ingest (src/layer/ingest.ts): TarCheck refuses exactly what readTar refuses, with the same errors and the
// same unpacked size; the one-pass pipeline stores the blob byte for byte with the right diffID and size, stops
// reading as soon as the content is known bad, and never reads back what it stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { ContentStore } from '../../src/content/store.js';
import { DigestMismatchError, InvalidArchiveError } from '../../src/errors.js';
import { ingestLayer, TarCheck } from '../../src/layer/ingest.js';
import { decompressor } from '../../src/layer/compression.js';
import { headerBlocks, readTar } from '../../src/tar/index.js';
import type { Digest } from '../../src/oci/types.js';
import { rng, tempDir } from '../helpers.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261127);
const CASES = Number(process.env.FUZZ_CASES ?? 400);


const sha256 = (b: Buffer): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;

/** Tars of one tree in every format GNU tar writes (long names, links, devices-free), plus hand-made oddities. */
function corpus(): { name: string; tar: Buffer }[] {
  const dir = tempDir('ply-ingest-corpus-');
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(path.join(tree, 'etc', 'deep', 'er'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  fs.writeFileSync(path.join(tree, 'etc', 'deep', 'er', 'file'), 'x'.repeat(3000));
  fs.writeFileSync(path.join(tree, 'etc', 'empty'), '');
  fs.writeFileSync(path.join(tree, 'etc', 'block'), randomBytes(5120));
  fs.symlinkSync('../etc/passwd', path.join(tree, 'etc', 'deep', 'link'));
  fs.linkSync(path.join(tree, 'etc', 'passwd'), path.join(tree, 'etc', 'hard'));
  fs.writeFileSync(path.join(tree, 'etc', 'n'.repeat(150)), 'long name');
  fs.symlinkSync('t'.repeat(120), path.join(tree, 'etc', 'longlink'));
  const out: { name: string; tar: Buffer }[] = [];
  for (const format of ['pax', 'gnu', 'oldgnu', 'ustar', 'posix']) {
    const file = path.join(dir, `${format}.tar`);
    try {
      execFileSync('tar', [`--format=${format}`, '--sort=name', '-cf', file, '-C', tree, '.'], { stdio: 'ignore' });
    } catch {
      // ustar cannot hold the long names: GNU tar refuses those members but writes the rest
      if (!fs.existsSync(file)) continue;
    }
    out.push({ name: format, tar: fs.readFileSync(file) });
  }
  const pax = out.find((c) => c.name === 'pax')!.tar;
  // A global PAX header in front (git archive writes one), a v7 directory (flag NUL, trailing slash), a lone
  // end block, an empty archive, trailing garbage after the end, no end blocks at all.
  const globalHdr = paxHeader('g', { comment: 'x'.repeat(40), mtime: '1700000000.5' });
  out.push({ name: 'global', tar: Buffer.concat([globalHdr, pax]) });
  const v7dir = headerBlocks({ name: 'olddir/', type: 'file', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0 });
  v7dir[156] = 0;
  fixChecksum(v7dir);
  out.push({ name: 'v7dir', tar: Buffer.concat([v7dir, pax]) });
  out.push({ name: 'empty', tar: Buffer.alloc(1024) });
  out.push({ name: 'garbage-after-end', tar: Buffer.concat([pax, randomBytes(700)]) });
  out.push({ name: 'no-end', tar: pax.subarray(0, lastEntryEnd(pax)) });
  const sparse = paxHeader('x', { 'GNU.sparse.size': '10' });
  out.push({ name: 'pax-sparse', tar: Buffer.concat([sparse, pax]) });
  const badSize = paxHeader('x', { size: '12x' });
  out.push({ name: 'pax-bad-size', tar: Buffer.concat([badSize, pax]) });
  return out;
}

function paxHeader(flag: 'x' | 'g', records: Record<string, string>): Buffer {
  let body = '';
  for (const [k, v] of Object.entries(records)) {
    const rest = ` ${k}=${v}\n`;
    let len = rest.length + 1;
    while (String(len).length + rest.length !== len) len++;
    body += `${len}${rest}`;
  }
  const data = Buffer.from(body);
  const h = headerBlocks({ name: 'PaxHeaders/x', type: 'file', mode: 0o644, uid: 0, gid: 0, size: data.length, mtime: 0 });
  h[156] = flag.charCodeAt(0);
  fixChecksum(h);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([h.subarray(0, 512), data, pad]);
}

function fixChecksum(h: Buffer): void {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += h[i]!;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
}

/** Offset just past the last entry (before the end-of-archive blocks). */
function lastEntryEnd(tar: Buffer): number {
  let end = tar.length;
  while (end >= 512 && tar.subarray(end - 512, end).every((b) => b === 0)) end -= 512;
  return end;
}

function mutate(buf: Buffer, r: () => number): Buffer {
  const out = Buffer.from(buf);
  const at = Math.floor(r() * Math.max(1, out.length));
  switch (Math.floor(r() * 6)) {
    case 0: // flip bytes
      for (let i = 0; i < 1 + r() * 16; i++) out[Math.floor(r() * out.length)] = Math.floor(r() * 256);
      return out;
    case 1: // truncate
      return out.subarray(0, at);
    case 2: // header fields: overwrite inside the first blocks (sizes, checksums, names, PAX records)
      for (let i = 0; i < 8; i++) out[Math.floor(r() * Math.min(out.length, 4096))] = '0123456789 x\0/.=\n'.charCodeAt(Math.floor(r() * 17));
      return out;
    case 3: {
      // one field of one header, checksum kept valid, so the check goes past the checksum
      const block = 512 * Math.floor((r() * out.length) / 512);
      if (block + 512 > out.length) return out;
      const field = [100, 108, 116, 124, 136, 156, 329, 337][Math.floor(r() * 8)]!;
      out[block + field + Math.floor(r() * 4)] = '0789 x\0\x80'.charCodeAt(Math.floor(r() * 8));
      fixChecksum(out.subarray(block, block + 512));
      return out;
    }
    case 4: // duplicate a slice
      return Buffer.concat([out.subarray(0, at), out.subarray(Math.floor(at / 2), at), out.subarray(at)]);
    default: // insert garbage
      return Buffer.concat([out.subarray(0, at), Buffer.from(Array.from({ length: 1 + Math.floor(r() * 600) }, () => Math.floor(r() * 256))), out.subarray(at)]);
  }
}

/** The input cut into pieces: whole, tiny, odd sizes around the block size, random. */
function split(buf: Buffer, how: number, r: () => number): Buffer[] {
  const sizes = [buf.length || 1, 3, 7, 511, 513, 4096];
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; ) {
    const n = how < sizes.length ? sizes[how]! : 1 + Math.floor(r() * 2000);
    parts.push(buf.subarray(i, i + n));
    i += n;
  }
  return parts;
}

type Outcome = { ok: true; unpacked: number } | { ok: false; error: string };

async function byReadTar(parts: Buffer[]): Promise<Outcome> {
  try {
    let unpacked = 0;
    for await (const e of readTar(Readable.from(parts))) unpacked += e.header.size;
    return { ok: true, unpacked };
  } catch (e) {
    return { ok: false, error: `${(e as Error).constructor.name}: ${(e as Error).message}` };
  }
}

function byTarCheck(parts: Buffer[]): Outcome {
  try {
    const c = new TarCheck();
    for (const p of parts) c.update(p);
    return { ok: true, unpacked: c.end() };
  } catch (e) {
    return { ok: false, error: `${(e as Error).constructor.name}: ${(e as Error).message}` };
  }
}

test('TarCheck accepts and refuses exactly what readTar does, with the same errors and unpacked size', async () => {
  const r = rng(SEED);
  const cases = corpus();
  let refused = 0;
  let accepted = 0;
  const check = async (name: string, tar: Buffer, how: number): Promise<void> => {
    const parts = split(tar, how, r);
    const want = await byReadTar(parts);
    assert.deepEqual(byTarCheck(parts), want, `${name}, split ${how}`);
    if (want.ok) accepted++;
    else refused++;
  };
  for (const { name, tar } of cases) for (let how = 0; how < 7; how++) await check(name, tar, how);
  for (let i = 0; i < CASES; i++) {
    const { name, tar } = cases[Math.floor(r() * cases.length)]!;
    const how = [0, 2, 3, 4, 5, 6][Math.floor(r() * 6)]!; // the tiniest pieces only for the corpus itself (slow)
    await check(`${name} mutation ${i}`, mutate(tar, r), how);
  }
  // The corpus and its mutations exercise both sides.
  assert.ok(accepted > CASES / 10 && refused > CASES / 10, `accepted ${accepted}, refused ${refused}`);
});

/** A tar of `files` files of `size` bytes each (compressible: repeated text with some noise; or random). */
function bigTar(files: number, size: number, random = false): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; i < files; i++) {
    parts.push(headerBlocks({ name: `d/f${i}`, type: 'file', mode: 0o644, uid: 0, gid: 0, size, mtime: 1 }));
    const body = Buffer.alloc(size, `line ${i} of a layer\n`);
    randomBytes(random ? size : size >> 4).copy(body, 0);
    parts.push(body, Buffer.alloc((512 - (size % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

async function* chunks(buf: Buffer, size = 64 * 1024): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

function lease() {
  const held: string[] = [];
  return { held, add: (d: string) => void held.push(d), release() {} } as never;
}

test('a gzip layer is stored byte for byte with its diffID and unpacked size, in one pass', async () => {
  const content = new ContentStore(tempDir());
  const tar = bigTar(40, 300_000); // ~12 MiB: several decompressor jobs, a full output queue
  const gz = zlib.gzipSync(tar, { level: 1 });
  const reads: string[] = [];
  const origRead = fs.createReadStream;
  // One pass: nothing the ingest writes is read back (a resumed ingest is the only reader of its data).
  (fs as { createReadStream: typeof fs.createReadStream }).createReadStream = ((p: fs.PathLike, o?: never) => {
    reads.push(String(p));
    return origRead(p, o);
  }) as typeof fs.createReadStream;
  try {
    const rec = await ingestLayer(content, chunks(gz), { key: 'gz', lease: lease(), expected: sha256(gz), size: gz.length });
    assert.equal(rec.digest, sha256(gz));
    assert.equal(rec.diffId, sha256(tar));
    assert.equal(rec.size, gz.length);
    assert.equal(rec.unpackedSize, 40 * 300_000);
    assert.equal(rec.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
    assert.deepEqual(reads, []);
    // The spy sees the store's reads (so the empty list above means something).
    content.read(rec.digest).destroy();
    assert.deepEqual(reads, [content.path(rec.digest)]);
  } finally {
    (fs as { createReadStream: typeof fs.createReadStream }).createReadStream = origRead;
  }
  assert.ok(content.readBytes(sha256(gz)).equals(gz));
  assert.deepEqual(fs.readdirSync(content.ingestDir), []);
});

test('a highly compressible layer (output far beyond the queues) and a plain tar come out right', async () => {
  const content = new ContentStore(tempDir());
  const files = [headerBlocks({ name: 'zeros', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 48 << 20, mtime: 1 }), Buffer.alloc(48 << 20), Buffer.alloc(1024)];
  const tar = Buffer.concat(files);
  const gz = zlib.gzipSync(tar);
  assert.ok(gz.length < 1 << 20);
  const rec = await ingestLayer(content, chunks(gz, 4096), { key: 'zeros', lease: lease() });
  assert.equal(rec.diffId, sha256(tar));
  assert.equal(rec.unpackedSize, 48 << 20);
  // Import of a plain tar: stored as it is (the decompressed side writes it), diffID = digest.
  const plain = bigTar(10, 100_000);
  const p = await ingestLayer(content, chunks(plain), { key: 'plain', lease: lease() });
  assert.equal(p.digest, sha256(plain));
  assert.equal(p.diffId, sha256(plain));
  assert.equal(p.unpackedSize, 1_000_000);
  assert.ok(content.readBytes(p.digest).equals(plain));
});

test('bad content stops the ingest early; a damaged blob with a known digest is a digest mismatch', async () => {
  const content = new ContentStore(tempDir());
  const tar = bigTar(40, 300_000);
  // A tar whose second header is garbage: refused while the input is still coming in (same pass, no second read).
  const bad = bigTar(80, 300_000, true);
  bad.fill(0x41, 512 + 300_000 + 208, 512 + 300_000 + 208 + 512);
  const gzBad = zlib.gzipSync(bad, { level: 1 });
  let pulled = 0;
  const counted = async function* (): AsyncGenerator<Buffer> {
    for await (const c of chunks(gzBad)) {
      pulled++;
      yield c;
    }
  };
  await assert.rejects(ingestLayer(content, counted(), { key: 'bad', lease: lease() }), InvalidArchiveError);
  const total = Math.ceil(gzBad.length / (64 * 1024));
  assert.ok(pulled < total / 2, `read ${pulled} of ${total} chunks before refusing`);
  assert.deepEqual(fs.readdirSync(content.ingestDir), []);

  // Damaged in transit: gzip's own check fails, the rest is hashed, the digest disagrees.
  const gz = zlib.gzipSync(tar, { level: 1 });
  const damaged = Buffer.from(gz);
  damaged[Math.floor(gz.length / 2)] ^= 0x55;
  await assert.rejects(
    ingestLayer(content, chunks(damaged), { key: 'damaged', lease: lease(), expected: sha256(gz), size: gz.length }),
    DigestMismatchError,
  );
  assert.equal(content.has(sha256(gz)), false);
});

test('gunzip runs in big jobs with buffering on both sides (so it overlaps the main thread)', async () => {
  const d = decompressor('gzip');
  assert.ok(d.readableHighWaterMark >= 4 << 20, `readable buffer ${d.readableHighWaterMark}`);
  assert.ok(d.writableHighWaterMark >= 4 << 20, `writable buffer ${d.writableHighWaterMark}`);
  const tar = bigTar(12, 300_000);
  const sizes: number[] = [];
  const done = new Promise<void>((resolve, reject) => {
    d.on('data', (c: Buffer) => sizes.push(c.length));
    d.on('end', resolve);
    d.on('error', reject);
  });
  d.end(zlib.gzipSync(tar));
  await done;
  assert.equal(sizes.reduce((a, b) => a + b, 0), tar.length);
  assert.equal(Math.max(...sizes), 1 << 20);
});
