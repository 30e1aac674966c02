// A seeded fuzzer: mutated tars, archives, manifests and references never crash ply with anything but a typed,
// one-line error (PlyError). FUZZ_CASES=N runs longer on demand; FUZZ_SEED picks another sequence.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { Engine } from '../../src/engine.js';
import { PlyError } from '../../src/errors.js';
import { parseReference, parseNormalized } from '../../src/reference/reference.js';
import { readTar } from '../../src/tar/index.js';
import { applyLayer } from '../../src/layer/apply.js';
import { loadArchive } from '../../src/transport/archive-load.js';
import { parseManifestBlob } from '../../src/transport/copy.js';
import { execFileSync } from 'node:child_process';
import { rng, snapshotTree, tempDir } from '../helpers.js';

const CASES = Number(process.env.FUZZ_CASES ?? 60);
const SEED = Number(process.env.FUZZ_SEED ?? 20261126);


function mutate(buf: Buffer, r: () => number): Buffer {
  const out = Buffer.from(buf);
  const kind = Math.floor(r() * 5);
  const at = Math.floor(r() * Math.max(1, out.length));
  switch (kind) {
    case 0: // flip bytes
      for (let i = 0; i < 1 + r() * 16; i++) out[Math.floor(r() * out.length)] = Math.floor(r() * 256);
      return out;
    case 1: // truncate
      return out.subarray(0, at);
    case 2: // header fields: overwrite inside the first blocks (sizes, checksums, names)
      for (let i = 0; i < 8; i++) out[Math.floor(r() * Math.min(out.length, 4096))] = '0123456789 x\0/.'.charCodeAt(Math.floor(r() * 15));
      return out;
    case 3: // duplicate a slice
      return Buffer.concat([out.subarray(0, at), out.subarray(Math.floor(at / 2), at), out.subarray(at)]);
    default: // insert garbage
      return Buffer.concat([out.subarray(0, at), Buffer.from(Array.from({ length: 1 + Math.floor(r() * 600) }, () => Math.floor(r() * 256))), out.subarray(at)]);
  }
}

/** Runs `fn`; any error must be a PlyError with a one-line message. */
async function mustFailCleanly(what: string, fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof PlyError, `${what}: ${(e as Error)?.stack ?? e}`);
    assert.ok(!e.message.includes('\n'), `${what}: multi-line message ${e.message}`);
  }
}

// A small, valid tar to mutate, with entries of every common kind (made by GNU tar).
let seed: Buffer | undefined;
function seedTar(): Buffer {
  if (seed) return seed;
  const dir = tempDir('ply-fuzz-seed-');
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(path.join(tree, 'etc', 'deep', 'er'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  fs.writeFileSync(path.join(tree, 'etc', 'deep', 'er', 'file'), 'x'.repeat(3000));
  fs.symlinkSync('../etc/passwd', path.join(tree, 'etc', 'deep', 'link'));
  fs.linkSync(path.join(tree, 'etc', 'passwd'), path.join(tree, 'etc', 'hard'));
  fs.writeFileSync(path.join(tree, 'etc', `${'n'.repeat(150)}`), 'long name');
  execFileSync('tar', ['--format=pax', '-cf', path.join(dir, 'seed.tar'), '-C', tree, '.']);
  seed = fs.readFileSync(path.join(dir, 'seed.tar'));
  return seed;
}

test('mutated tars: the reader and layer apply fail cleanly and never write outside the root', async () => {
  const r = rng(SEED);
  const base = seedTar();
  const outside = tempDir('ply-fuzz-outside-');
  fs.writeFileSync(path.join(outside, 'keep'), 'x');
  const before = snapshotTree(outside);
  for (let i = 0; i < CASES; i++) {
    const input = mutate(base, r);
    await mustFailCleanly(`readTar case ${i}`, async () => {
      for await (const e of readTar(Readable.from([input]))) for await (const _ of e.body) void _;
    });
    const root = tempDir('ply-fuzz-root-');
    await mustFailCleanly(`applyLayer case ${i}`, () => applyLayer(root, Readable.from([input]), { mode: i % 2 ? 'flat' : 'overlay' }));
    fs.rmSync(root, { recursive: true, force: true });
  }
  assert.deepEqual(snapshotTree(outside), before);
});

test('mutated gzip and archives: import and load fail cleanly and leave no names or images', async () => {
  const r = rng(SEED + 1);
  const engine = Engine.open({ root: tempDir() });
  try {
    const gz = zlib.gzipSync(seedTar());
    // A real archive to mutate: save one image through the engine's own code.
    const img = await engine.images.import(Readable.from([seedTar()]), { reference: 'seed:v1' });
    const { saveImages } = await import('../../src/transport/archive.js');
    const chunks: Buffer[] = [];
    const { Writable } = await import('node:stream');
    const sink = new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c);
        cb();
      },
    });
    await saveImages(engine.stores.images, [{ image: img, names: ['docker.io/library/seed:v1'] }], sink);
    const archive = Buffer.concat(chunks);
    assert.ok(archive.length > 0);
    const names = () => [...engine.stores.images.names().values()].flat().sort().join(',');
    const namesBefore = names();
    for (let i = 0; i < CASES; i++) {
      await mustFailCleanly(`import gzip case ${i}`, () => engine.images.import(Readable.from([mutate(gz, r)]), {}));
      await mustFailCleanly(`load case ${i}`, () => loadArchive(engine.stores.images, Readable.from([mutate(archive, r)])));
    }
    // Failed imports add no names; a load of a mutated archive may still load the intact image (same name).
    assert.equal(names(), namesBefore);
  } finally {
    engine.close();
  }
});

test('mutated manifests and references are refused with typed errors', async () => {
  const r = rng(SEED + 2);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'a'.repeat(64)}`, size: 2 },
      layers: [],
    }),
  );
  for (let i = 0; i < CASES * 4; i++) {
    const bytes = mutate(manifest, r);
    await mustFailCleanly(`manifest case ${i}`, async () =>
      parseManifestBlob({ bytes, mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'b'.repeat(64)}` }),
    );
  }
  const refs = ['ubuntu', 'localhost:5000/a/b:tag', `x@sha256:${'c'.repeat(64)}`, 'quay.io/org/repo:v1.2'];
  for (let i = 0; i < CASES * 8; i++) {
    const s = mutate(Buffer.from(refs[i % refs.length]!), r).toString('latin1');
    await mustFailCleanly(`reference case ${i} ${JSON.stringify(s)}`, async () => {
      parseReference(s);
      parseNormalized(s);
    });
  }
});
