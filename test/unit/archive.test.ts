// Image archives at the library level (src/transport/archive*.ts, oci-layout.ts): save's archive layout (docker 25's
// docker-archive + OCI layout in one tar, every blob once, verified while it streams), load's one-pass ingest and
// its checks (blob names, diffIDs, missing files), and that a refused load records nothing.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import zlib from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../../src/engine.js';
import { tagName } from '../../src/reference/reference.js';
import { DigestMismatchError, InvalidArchiveError } from '../../src/errors.js';
import { hostPlatform } from '../../src/oci/platform.js';
import { readTar, TarWriter, type TarHeader } from '../../src/tar/index.js';
import { ArchiveWriter, resolveSave, saveImages, type ArchiveFormat } from '../../src/transport/archive.js';
import { ingestFile } from '../../src/transport/archive-ingest.js';
import { cleanArchivePath, loadArchive, loadDirectory } from '../../src/transport/archive-load.js';
import { digestOfBlobPath, nameFromAnnotations } from '../../src/transport/oci-layout.js';
import { busyboxTar, tempDir } from '../helpers.js';

/** A stream of one buffer. */
const feed = (b: Buffer): AsyncIterable<Buffer> => Readable.from([b]);
const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function tarOf(entries: { name: string; body?: Buffer; type?: TarHeader['type']; linkname?: string }[]): Promise<Buffer> {
  const w = new TarWriter();
  const chunks: Buffer[] = [];
  w.stream.on('data', (c: Buffer) => chunks.push(c));
  const done = new Promise((r) => w.stream.on('end', r));
  for (const e of entries) {
    const type = e.type ?? 'file';
    await w.add({ name: e.name, type, mode: 0o644, uid: 0, gid: 0, size: type === 'file' ? (e.body?.length ?? 0) : 0, mtime: 0, linkname: e.linkname }, type === 'file' ? (e.body ?? Buffer.alloc(0)) : undefined);
  }
  await w.finish();
  await done;
  return Buffer.concat(chunks);
}

async function filesOf(archive: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for await (const e of readTar(feed(archive))) if (e.header.type === 'file') out.set(e.header.name, await e.buffer());
  return out;
}

async function save(engine: Engine, refs: string[], format?: ArchiveFormat): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  await saveImages(engine.stores.images, resolveSave(engine.stores.images, refs), out, { format });
  return Buffer.concat(chunks);
}

const state = (e: Engine) => JSON.stringify({ images: e.stores.images.list().map((i) => i.digest).sort(), names: [...e.stores.images.names()] });

let layerTar: Buffer;
let src: Engine;
before(async () => {
  layerTar = fs.readFileSync(busyboxTar());
  src = Engine.open({ root: tempDir() });
  // Two images sharing their one layer (the same tar, imported twice), a third with a gzip layer.
  await src.images.import(feed(layerTar), { reference: 'base:latest' });
  await src.images.import(feed(layerTar), { reference: 'base:other', changes: ['ENV X=1'] });
  await src.images.import(feed(zlib.gzipSync(layerTar, { level: 1 })), { reference: 'quay.io/team/gz:v1', changes: ['CMD ["sh"]'] });
});
after(() => src.close());

describe('save', () => {
  it('writes a docker-archive and an OCI layout in one tar, each blob once, names as docker 25 does', async () => {
    const archive = await save(src, ['base:latest', 'base:other', 'quay.io/team/gz:v1']);
    const names: string[] = [];
    for await (const e of readTar(feed(archive))) names.push(e.header.name);
    assert.deepEqual(names.slice(0, 2), ['blobs/', 'blobs/sha256/']);
    assert.deepEqual(names.slice(-4), ['index.json', 'manifest.json', 'oci-layout', 'repositories']);
    const files = await filesOf(archive);
    const blobNames = names.filter((n) => n.startsWith('blobs/sha256/') && n.length > 13);
    assert.equal(new Set(blobNames).size, blobNames.length, 'no blob written twice');
    for (const n of blobNames) assert.equal(sha(files.get(n)!), digestOfBlobPath(n), n);
    // The shared layer is there once; the gzip layer as it is stored (not recompressed).
    assert.ok(files.has(`blobs/sha256/${sha(layerTar).slice(7)}`));
    assert.equal(blobNames.length, 3 * 2 + 2, '3 manifests + 3 configs + 2 layers');
    assert.equal(files.get('oci-layout')!.toString(), '{"imageLayoutVersion":"1.0.0"}');

    const index = JSON.parse(files.get('index.json')!.toString());
    assert.equal(index.schemaVersion, 2);
    assert.deepEqual(
      index.manifests.map((d: any) => d.annotations),
      [
        { 'io.containerd.image.name': 'docker.io/library/base:latest', 'org.opencontainers.image.ref.name': 'latest' },
        { 'io.containerd.image.name': 'docker.io/library/base:other', 'org.opencontainers.image.ref.name': 'other' },
        { 'io.containerd.image.name': 'quay.io/team/gz:v1', 'org.opencontainers.image.ref.name': 'v1' },
      ],
    );
    const rec = src.stores.images.resolve('base:latest');
    assert.deepEqual(index.manifests[0], {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: rec.digest,
      size: files.get(`blobs/sha256/${rec.digest.slice(7)}`)!.length,
      platform: { architecture: hostPlatform().architecture, os: 'linux', ...(hostPlatform().variant ? { variant: hostPlatform().variant } : {}) },
      annotations: index.manifests[0].annotations,
    });

    const manifest = JSON.parse(files.get('manifest.json')!.toString());
    const gz = src.stores.images.resolve('quay.io/team/gz:v1');
    const gzLayer = src.stores.images.manifest(gz).layers[0]!.digest;
    assert.deepEqual(manifest[2], { Config: `blobs/sha256/${gz.id.slice(7)}`, RepoTags: ['quay.io/team/gz:v1'], Layers: [`blobs/sha256/${gzLayer.slice(7)}`] });
    assert.deepEqual(manifest[0].RepoTags, ['base:latest']);
    assert.deepEqual(JSON.parse(files.get('repositories')!.toString()), {
      base: { latest: sha(layerTar).slice(7), other: sha(layerTar).slice(7) },
      'quay.io/team/gz': { v1: gzLayer.slice(7) },
    });
    // Reproducible: the same images give the same bytes.
    assert.deepEqual(await save(src, ['base:latest', 'base:other', 'quay.io/team/gz:v1']), archive);
  });

  it('"repo" alone saves every tag of it; an ID saves the image without a name; --format picks one form', async () => {
    const byRepo = await filesOf(await save(src, ['base']));
    assert.deepEqual(JSON.parse(byRepo.get('manifest.json')!.toString()).map((m: any) => m.RepoTags).flat().sort(), ['base:latest', 'base:other']);
    const id = src.stores.images.resolve('base:latest').id;
    const byId = await filesOf(await save(src, [id.slice(7, 19)]));
    assert.equal(JSON.parse(byId.get('manifest.json')!.toString())[0].RepoTags, null);
    assert.equal(JSON.parse(byId.get('index.json')!.toString()).manifests[0].annotations, undefined);
    assert.ok(!byId.has('repositories'));

    const docker = await filesOf(await save(src, ['base:latest'], 'docker'));
    assert.deepEqual([...docker.keys()].filter((n) => !n.startsWith('blobs/')), ['manifest.json', 'repositories']);
    assert.equal([...docker.keys()].filter((n) => n.startsWith('blobs/')).length, 2, 'config + layer, no manifest');
    const oci = await filesOf(await save(src, ['base:latest'], 'oci'));
    assert.deepEqual([...oci.keys()].filter((n) => !n.startsWith('blobs/')), ['index.json', 'oci-layout']);
    assert.throws(() => resolveSave(src.stores.images, ['nosuch:tag']), /No such image/);
  });

  it('refuses a blob whose bytes do not hash to its digest (the archive is aborted)', async () => {
    const w = new ArchiveWriter();
    w.stream.resume();
    const streamError = new Promise<Error>((r) => w.stream.on('error', r));
    const body = Buffer.from('not the layer');
    await assert.rejects(
      w.putBlob({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha('something else') as `sha256:${string}`, size: body.length }, feed(body)),
      DigestMismatchError,
    );
    assert.ok((await streamError) instanceof DigestMismatchError, 'the output stream fails too');
  });
});

describe('load', () => {
  it('round trip: same manifests, IDs and names', async () => {
    const archive = await save(src, ['base:latest', 'base:other', 'quay.io/team/gz:v1']);
    const dst = Engine.open({ root: tempDir() });
    try {
      const r = await loadArchive(dst.stores.images, feed(archive));
      assert.deepEqual(
        r.images.map((i) => [i.digest, i.id, i.names]),
        ['base:latest', 'base:other', 'quay.io/team/gz:v1'].map((n) => {
          const rec = src.stores.images.resolve(n);
          return [rec.digest, rec.id, [tagName(n)]];
        }),
      );
      assert.deepEqual(dst.stores.images.layers(dst.stores.images.resolve('quay.io/team/gz:v1')), src.stores.images.layers(src.stores.images.resolve('quay.io/team/gz:v1')));
      // Loading again (blobs already stored, so only hashed) changes nothing.
      const before = state(dst);
      await loadArchive(dst.stores.images, feed(zlib.gzipSync(archive)));
      assert.equal(state(dst), before);
    } finally {
      dst.close();
    }
  });

  it('docker-archive in the old form (<id>/layer.tar, symlinked duplicates, <id>.json config)', async () => {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layerTar), sha(layerTar)] } }));
    const cfgName = `${sha(config).slice(7)}.json`;
    const archive = await tarOf([
      { name: 'aaaa/', type: 'dir' },
      { name: 'aaaa/VERSION', body: Buffer.from('1.0') },
      { name: 'aaaa/layer.tar', body: layerTar },
      { name: 'bbbb/layer.tar', type: 'symlink', linkname: '../aaaa/layer.tar' },
      { name: cfgName, body: config },
      { name: 'manifest.json', body: Buffer.from(JSON.stringify([{ Config: cfgName, RepoTags: ['old:form'], Layers: ['aaaa/layer.tar', 'bbbb/layer.tar'] }])) },
      { name: 'repositories', body: Buffer.from('{"old":{"form":"bbbb"}}') },
    ]);
    const dst = Engine.open({ root: tempDir() });
    try {
      const r = await loadArchive(dst.stores.images, feed(archive));
      assert.equal(r.images.length, 1);
      assert.equal(r.images[0]!.id, sha(config));
      const rec = dst.stores.images.resolve('old:form');
      assert.equal(rec.id, sha(config));
      assert.deepEqual(dst.stores.images.layers(rec).map((l) => [l.digest, l.diffId, l.mediaType]), [
        [sha(layerTar), sha(layerTar), 'application/vnd.oci.image.layer.v1.tar'],
        [sha(layerTar), sha(layerTar), 'application/vnd.oci.image.layer.v1.tar'],
      ]);
    } finally {
      dst.close();
    }
  });

  it('OCI layout with a nested index: the host platform is loaded; a directory reads only what it needs', async () => {
    const archive = await filesOf(await save(src, ['base:latest'], 'oci'));
    const index = JSON.parse(archive.get('index.json')!.toString());
    const child = index.manifests[0];
    const other = { ...child, digest: sha('missing'), platform: { os: 'linux', architecture: 'mips64' } };
    const nested = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [other, child] }));
    const top = { schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', digest: sha(nested), size: nested.length, annotations: { 'org.opencontainers.image.ref.name': 'localhost/nested:v2' } }] };
    const dir = tempDir();
    fs.mkdirSync(`${dir}/blobs/sha256`, { recursive: true });
    for (const [n, b] of archive) if (n.startsWith('blobs/')) fs.writeFileSync(`${dir}/${n}`, b);
    fs.writeFileSync(`${dir}/blobs/sha256/${sha(nested).slice(7)}`, nested);
    fs.writeFileSync(`${dir}/index.json`, JSON.stringify(top));
    fs.writeFileSync(`${dir}/oci-layout`, '{"imageLayoutVersion":"1.0.0"}');
    fs.writeFileSync(`${dir}/blobs/sha256/${'0'.repeat(64)}`, 'unrelated, never read');
    const dst = Engine.open({ root: tempDir() });
    try {
      const seen: string[] = [];
      const r = await loadDirectory(dst.stores.images, dir, { onProgress: (e) => seen.push(e.path) });
      assert.deepEqual(r.images.map((i) => [i.digest, i.names]), [[child.digest, ['localhost/nested:v2']]]);
      assert.ok(!seen.includes(`blobs/sha256/${'0'.repeat(64)}`));
    } finally {
      dst.close();
    }
  });

  describe('refusals record nothing', () => {
    let dst: Engine;
    let good: Buffer;
    let goodFiles: Map<string, Buffer>;
    before(async () => {
      dst = Engine.open({ root: tempDir() });
      await dst.images.import(feed(layerTar), { reference: 'keep:me' });
      good = await save(src, ['base:latest', 'quay.io/team/gz:v1']);
      goodFiles = await filesOf(good);
    });
    after(() => dst.close());

    const refuse = async (archive: Buffer | AsyncIterable<Buffer>, re: RegExp, type: Function = Error) => {
      const before = state(dst);
      await assert.rejects(loadArchive(dst.stores.images, Buffer.isBuffer(archive) ? feed(archive) : archive), (e: Error) => {
        assert.ok(e instanceof type, `${e.name}: ${e.message}`);
        assert.match(e.message, re);
        return true;
      });
      assert.equal(state(dst), before);
      assert.deepEqual(fs.readdirSync(`${dst.root}/ingest`), [], 'no ingest left behind');
    };
    const rebuild = (change: (files: Map<string, Buffer>) => void) => {
      const files = new Map(goodFiles);
      change(files);
      return tarOf([...files].map(([name, body]) => ({ name, body })));
    };

    it('a truncated archive', () => refuse(good.subarray(0, good.length - 3000), /unexpected end/, InvalidArchiveError));
    it('garbage and empty input', async () => {
      await refuse(Buffer.from('hello, this is not a tar archive at all\n'.repeat(40)), /not a tar archive/);
      await refuse(Buffer.alloc(0), /empty/);
    });
    it('a flipped byte in a layer blob', async () => {
      const bad = Buffer.from(good);
      bad[3 * 512 + 5000] ^= 0xff;
      await refuse(bad, /digest mismatch/, DigestMismatchError);
    });
    it('a corrupt gzip layer under its own digest name', async () => {
      const gzLayer = src.stores.images.manifest(src.stores.images.resolve('quay.io/team/gz:v1')).layers[0]!.digest;
      const corrupt = Buffer.from(goodFiles.get(`blobs/sha256/${gzLayer.slice(7)}`)!);
      corrupt[corrupt.length >> 1] ^= 0xff;
      await refuse(await rebuild((f) => f.set(`blobs/sha256/${gzLayer.slice(7)}`, corrupt)), /digest mismatch/, DigestMismatchError);
    });
    it('a layer whose diffID is not the config\'s', async () => {
      const other = Buffer.concat([layerTar.subarray(0, layerTar.length - 1024), Buffer.alloc(2048)]); // one more zero block
      const cfg = JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layerTar)] } });
      await refuse(
        await tarOf([
          { name: 'l.tar', body: other },
          { name: 'c.json', body: Buffer.from(cfg) },
          { name: 'manifest.json', body: Buffer.from(JSON.stringify([{ Config: 'c.json', RepoTags: ['x:y'], Layers: ['l.tar'] }])) },
        ]),
        /diffID digest mismatch/,
        DigestMismatchError,
      );
    });
    it('manifest.json referencing a missing file; malformed JSON; a layer that is no tar', async () => {
      await refuse(
        await rebuild((f) => {
          f.delete('index.json');
          const m = JSON.parse(f.get('manifest.json')!.toString());
          m[1].Layers[0] = 'blobs/sha256/' + 'f'.repeat(64);
          f.set('manifest.json', Buffer.from(JSON.stringify(m)));
        }),
        /references blobs\/sha256\/f+, which is not in the archive/,
      );
      await refuse(await rebuild((f) => f.set('manifest.json', Buffer.from('[{"Config": '))), /manifest.json: invalid JSON/);
      await refuse(
        await tarOf([
          { name: 'l.tar', body: Buffer.alloc(4096, 7) },
          { name: 'c.json', body: Buffer.from('{"rootfs":{"type":"layers","diff_ids":["sha256:' + '1'.repeat(64) + '"]}}') },
          { name: 'manifest.json', body: Buffer.from(JSON.stringify([{ Config: 'c.json', RepoTags: ['x:y'], Layers: ['l.tar'] }])) },
        ]),
        /layer l.tar is not a valid tar archive/,
      );
    });
    it('an index.json naming a manifest the archive lacks (the other image is fine)', async () => {
      const index = JSON.parse(goodFiles.get('index.json')!.toString());
      const gz = src.stores.images.resolve('quay.io/team/gz:v1');
      await refuse(
        await rebuild((f) => {
          f.delete(`blobs/sha256/${gz.digest.slice(7)}`);
          f.set('index.json', Buffer.from(JSON.stringify(index)));
        }),
        /manifest sha256:[0-9a-f]+ is missing from the archive/,
      );
    });
  });
});

describe('helpers', () => {
  it('ingestFile: tars (plain, gzip, empty) are layers; a corrupt gzip or a non-tar is only a file', async () => {
    const e = Engine.open({ root: tempDir() });
    try {
      const lease = e.stores.images.lease();
      let n = 0;
      const ing = (b: Buffer, expected?: `sha256:${string}`) =>
        ingestFile(e.stores.content, feed(b), b.length, { name: 'x', key: `t-${n++}`, lease, expected });
      const plain = await ing(layerTar);
      assert.deepEqual(plain.layer, { diffId: sha(layerTar), unpackedSize: plain.layer!.unpackedSize, compression: 'none' });
      assert.ok(e.stores.content.has(plain.digest));
      const gz = zlib.gzipSync(layerTar);
      assert.deepEqual((await ing(gz, sha(gz) as `sha256:${string}`)).layer?.diffId, sha(layerTar));
      assert.equal((await ing(Buffer.alloc(1024))).layer?.diffId, sha(Buffer.alloc(1024)));
      const broken = Buffer.from(gz);
      broken[broken.length >> 1] ^= 0xff;
      const b = await ing(broken);
      assert.equal(b.layer, undefined);
      assert.match(b.layerError!, /corrupt gzip|unexpected|invalid/);
      const notTar = await ing(zlib.gzipSync(Buffer.alloc(100000, 'a')));
      assert.equal(notTar.layer, undefined);
      const json = await ing(Buffer.from('{"a":1}'));
      assert.deepEqual(json.bytes, Buffer.from('{"a":1}'));
      assert.ok(!e.stores.content.has(json.digest), 'small JSON stays in memory');
      await assert.rejects(ing(Buffer.from('{"a":2}'), sha('{"a":1}') as `sha256:${string}`), DigestMismatchError);
      await assert.rejects(ing(layerTar, sha('nope') as `sha256:${string}`), DigestMismatchError);
      lease.release();
    } finally {
      e.close();
    }
  });

  it('paths and names', () => {
    assert.equal(cleanArchivePath('./blobs//sha256/x'), 'blobs/sha256/x');
    assert.equal(cleanArchivePath('/manifest.json'), 'manifest.json');
    assert.equal(cleanArchivePath('a/../../etc/passwd'), undefined);
    assert.equal(cleanArchivePath('./'), undefined);
    assert.equal(digestOfBlobPath(`blobs/sha256/${'a'.repeat(64)}`), `sha256:${'a'.repeat(64)}`);
    assert.equal(digestOfBlobPath('blobs/sha256/abc'), undefined);
    assert.equal(nameFromAnnotations({ annotations: { 'io.containerd.image.name': 'docker.io/library/busybox:latest', 'org.opencontainers.image.ref.name': 'latest' } }), 'docker.io/library/busybox:latest');
    assert.equal(nameFromAnnotations({ annotations: { 'org.opencontainers.image.ref.name': 'localhost/bb:latest' } }), 'localhost/bb:latest');
    assert.equal(nameFromAnnotations({ annotations: { 'org.opencontainers.image.ref.name': 'busybox:1' } }), 'docker.io/library/busybox:1');
    assert.equal(nameFromAnnotations({ annotations: { 'org.opencontainers.image.ref.name': 'latest' } }), undefined);
    assert.equal(nameFromAnnotations({}), undefined);
  });
});
