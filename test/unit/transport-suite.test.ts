// One conformance suite for every transport (ImageSource / ImageDestination), in the manner of
// go-containerregistry's `validate` package and containerd's shared snapshotter/content suites:
// `transportSuite(name, factory)` runs the same checks against each place images live in, and a pair matrix copies
// one random image from every source-capable transport to every destination-capable one.
//
// Reference side: an in-memory source/destination (also a row of the table, so the suite checks itself).
// Random images: 1-3 layers built with our TarWriter (a directory, files incl. an empty one, a symlink, a hardlink,
// non-ASCII names), each plain, gzip or zstd; an OCI config with rootfs.diff_ids and history; manifests serialised
// with odd indentation so that any transport re-encoding them would change their digest.
//
// Seed: SUITE_SEED=<n> reproduces a run (the seed is printed in the first test's name).
import assert from 'node:assert/strict';
import { createHash, randomInt } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { digestOf } from '../../src/digest/digest.js';
import { Engine } from '../../src/engine.js';
import { DigestMismatchError, InvalidArchiveError, NotFoundError, PlyError } from '../../src/errors.js';
import { hostPlatform } from '../../src/oci/platform.js';
import { compressor, decompressed } from '../../src/layer/compression.js';
import { MediaType, type Descriptor, type Digest, type ImageConfig, type Index, type Manifest, type Platform } from '../../src/oci/types.js';
import { parseReference } from '../../src/reference/reference.js';
import { startRegistry, type RegistryServer } from '../../src/registry/server.js';
import { loadArchive, loadDirectory } from '../../src/transport/archive-load.js';
import { ArchiveWriter, type ArchiveFormat } from '../../src/transport/archive.js';
import { copyImage, parseManifestBlob } from '../../src/transport/copy.js';
import { blobPath } from '../../src/transport/oci-layout.js';
import { ociDirDestination, ociDirSource } from '../../src/transport/oci-dir.js';
import { registryDestination, registrySource, RegistryError } from '../../src/transport/registry.js';
import { StoreDestination, storeSource } from '../../src/transport/store.js';
import type { BlobReadOptions, CopyOptions, ImageDestination, ImageSource, ManifestBlob, ProgressEvent } from '../../src/transport/types.js';
import { readTar, TarWriter, type TarHeader } from '../../src/tar/index.js';
import { tempDir } from '../helpers.js';
import { startDistribution, type Distribution } from '../registry-peer.js';

// ---------------------------------------------------------------------------------------------------------------
// Deterministic randomness

const SEED = Number(process.env.SUITE_SEED ?? randomInt(1, 2 ** 31));
let rngState = SEED >>> 0;
function rand(): number {
  // mulberry32
  rngState = (rngState + 0x6d2b79f5) >>> 0;
  let t = rngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const between = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
function randBytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(rand() * 256);
  return b;
}
const randName = () => Math.floor(rand() * 2 ** 32).toString(36);

// ---------------------------------------------------------------------------------------------------------------
// Random images

type Compression = 'none' | 'gzip' | 'zstd';
/** OCI media types, or Docker schema 2 (which has no zstd layers). */
type Flavour = 'oci' | 'docker';
const LAYER_TYPE: Record<Flavour, Record<Compression, string>> = {
  oci: { none: MediaType.OciLayer, gzip: MediaType.OciLayerGzip, zstd: MediaType.OciLayerZstd },
  docker: { none: 'application/vnd.docker.image.rootfs.diff.tar', gzip: MediaType.DockerLayerGzip, zstd: '' },
};
const TYPES: Record<Flavour, { manifest: string; index: string; config: string }> = {
  oci: { manifest: MediaType.OciManifest, index: MediaType.OciIndex, config: MediaType.OciConfig },
  docker: { manifest: MediaType.DockerManifest, index: MediaType.DockerManifestList, config: MediaType.DockerConfig },
};

interface Blob {
  desc: Descriptor;
  bytes: Buffer;
}

interface GenImage {
  manifest: ManifestBlob;
  config: Blob;
  layers: Blob[];
  diffIds: Digest[];
  platform: Platform;
}

/** A generated image (or index of images): every manifest and blob by digest. */
interface Gen {
  top: ManifestBlob;
  images: GenImage[];
  manifests: Map<string, ManifestBlob>;
  blobs: Map<string, Blob>;
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c);
  return Buffer.concat(parts);
}

async function compress(data: Buffer, c: Compression): Promise<Buffer> {
  if (c === 'none') return data;
  const t = compressor(c);
  const out = collect(t);
  t.end(data);
  return out;
}

function hdr(name: string, type: TarHeader['type'], size = 0, extra: Partial<TarHeader> = {}): TarHeader {
  return { name, type, mode: type === 'dir' ? 0o755 : 0o644, uid: 0, gid: 0, size, mtime: 1_700_000_000, ...extra };
}

/** A random layer tar: a directory, files (one empty), a symlink, a hardlink, non-ASCII names. */
async function randomLayerTar(): Promise<Buffer> {
  const tar = new TarWriter();
  const out = collect(tar.stream);
  const dir = `d-${randName()}`;
  const file = `${dir}/f-${randName()}.bin`;
  const content = randBytes(between(1, 3000));
  await tar.add(hdr(`${dir}/`, 'dir'));
  await tar.add(hdr(file, 'file', content.length), content);
  await tar.add(hdr(`${dir}/empty-${randName()}`, 'file', 0), Buffer.alloc(0));
  const uni = randBytes(between(0, 300));
  await tar.add(hdr(`${dir}/ünïcødé-日本語-${randName()}.txt`, 'file', uni.length), uni);
  await tar.add(hdr(`${dir}/link-${randName()}`, 'symlink', 0, { linkname: file.slice(dir.length + 1), mode: 0o777 }));
  await tar.add(hdr(`hard-${randName()}`, 'link', 0, { linkname: file }));
  await tar.finish();
  return out;
}

async function randomLayer(flavour: Flavour, c?: Compression): Promise<Blob & { diffId: Digest }> {
  c ??= flavour === 'docker' ? pick(['none', 'gzip'] as const) : pick(['none', 'gzip', 'zstd'] as const);
  const raw = await randomLayerTar();
  const bytes = await compress(raw, c);
  return { bytes, diffId: digestOf(raw), desc: { mediaType: LAYER_TYPE[flavour][c], digest: digestOf(bytes), size: bytes.length } };
}

/** JSON with a random indentation: bytes no transport could reproduce by re-serialising. */
function oddJson(doc: unknown): Buffer {
  return Buffer.from(JSON.stringify(doc, null, pick([0, 1, 3, '\t'])) + pick(['', '\n']));
}

function manifestBlob(bytes: Buffer, mediaType: string): ManifestBlob {
  return { bytes, mediaType, digest: digestOf(bytes) };
}

async function genImage(gen: Gen, flavour: Flavour, platform: Platform, shared: (Blob & { diffId: Digest })[] = []): Promise<GenImage> {
  const layers = [...shared];
  const n = between(1, 3) - shared.length;
  for (let i = 0; i < Math.max(n, shared.length ? 0 : 1); i++) layers.push(await randomLayer(flavour));
  const diffIds = layers.map((l) => l.diffId);
  const config: ImageConfig = {
    architecture: platform.architecture,
    os: platform.os,
    created: '2024-01-02T03:04:05Z',
    config: { Env: ['PATH=/usr/bin:/bin'], Labels: { 'suite.seed': String(SEED), 'suite.id': randName() } },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layers.map((_, i) => ({ created: '2024-01-02T03:04:05Z', created_by: `layer ${i} ünï` })),
  } as ImageConfig;
  const cfgBytes = oddJson(config);
  const cfg: Blob = { bytes: cfgBytes, desc: { mediaType: TYPES[flavour].config, digest: digestOf(cfgBytes), size: cfgBytes.length } };
  const manifest: Manifest = { schemaVersion: 2, mediaType: TYPES[flavour].manifest, config: cfg.desc, layers: layers.map((l) => l.desc) };
  const m = manifestBlob(oddJson(manifest), TYPES[flavour].manifest);
  for (const b of [cfg, ...layers]) gen.blobs.set(b.desc.digest, { desc: b.desc, bytes: b.bytes });
  gen.manifests.set(m.digest, m);
  const img: GenImage = { manifest: m, config: cfg, layers, diffIds, platform };
  gen.images.push(img);
  return img;
}

async function randomImage(): Promise<Gen> {
  const gen: Gen = { top: undefined as unknown as ManifestBlob, images: [], manifests: new Map(), blobs: new Map() };
  gen.top = (await genImage(gen, pick(['oci', 'docker'] as const), hostPlatform())).manifest;
  return gen;
}

/** A platform that is not the host's. */
function otherPlatform(): Platform {
  return hostPlatform().architecture === 's390x' ? { os: 'linux', architecture: 'ppc64le' } : { os: 'linux', architecture: 's390x' };
}

/** An index of two platforms (the host's and another) whose images share their first layer. */
async function randomIndex(): Promise<Gen> {
  const gen: Gen = { top: undefined as unknown as ManifestBlob, images: [], manifests: new Map(), blobs: new Map() };
  const flavour = pick(['oci', 'docker'] as const);
  const shared = [await randomLayer(flavour, 'gzip')];
  const a = await genImage(gen, flavour, hostPlatform(), shared);
  const b = await genImage(gen, flavour, otherPlatform(), shared);
  const index: Index = {
    schemaVersion: 2,
    mediaType: TYPES[flavour].index,
    manifests: [a, b].map((i) => ({ mediaType: i.manifest.mediaType, digest: i.manifest.digest, size: i.manifest.bytes.length, platform: i.platform })),
  } as Index;
  gen.top = manifestBlob(oddJson(index), TYPES[flavour].index);
  gen.manifests.set(gen.top.digest, gen.top);
  return gen;
}

// ---------------------------------------------------------------------------------------------------------------
// The in-memory reference transport and source wrappers

async function* chunked(bytes: Buffer, offset = 0): AsyncGenerator<Buffer> {
  const rest = bytes.subarray(offset);
  const cut = Math.floor(rest.length / 2);
  if (cut > 0) yield rest.subarray(0, cut);
  yield rest.subarray(cut);
}

class MemoryStore {
  readonly blobs = new Map<string, Buffer>();
  readonly manifests = new Map<string, ManifestBlob>();
  readonly tags = new Map<string, Digest>();

  static of(gen: Gen, tag: string): MemoryStore {
    const s = new MemoryStore();
    for (const b of gen.blobs.values()) s.blobs.set(b.desc.digest, b.bytes);
    for (const m of gen.manifests.values()) s.manifests.set(m.digest, m);
    s.tags.set(tag, gen.top.digest);
    return s;
  }

  source(): ImageSource {
    return {
      description: 'memory',
      getManifest: async (ref) => {
        const d = this.tags.get(ref) ?? ref;
        const m = this.manifests.get(d);
        if (!m) throw new NotFoundError(`manifest ${ref} not found`);
        return m;
      },
      getBlob: async (desc, opts?: BlobReadOptions) => {
        const b = this.blobs.get(desc.digest);
        if (!b) throw new NotFoundError(`blob ${desc.digest} not found`);
        return chunked(b, opts?.offset ?? 0);
      },
    };
  }

  destination(): ImageDestination {
    return {
      description: 'memory',
      hasBlob: async (desc) => this.blobs.has(desc.digest),
      putBlob: async (desc, data) => {
        const b = await collect(data);
        if (b.length !== desc.size) throw new DigestMismatchError(`${desc.size} bytes`, `${b.length} bytes`, 'size');
        const got = digestOf(b);
        if (got !== desc.digest) throw new DigestMismatchError(desc.digest, got, 'blob');
        this.blobs.set(desc.digest, b);
      },
      putManifest: async (m, tag) => {
        const got = digestOf(m.bytes);
        if (got !== m.digest) throw new DigestMismatchError(m.digest, got, 'manifest');
        this.manifests.set(m.digest, m);
        if (tag) this.tags.set(tag, m.digest);
      },
    };
  }
}

/** Flips one byte of the blob `digest` as it streams (corruption in transit). */
function flipping(src: ImageSource, digest: string): ImageSource {
  return {
    description: `${src.description} (corrupting ${digest.slice(7, 19)})`,
    getManifest: (ref) => src.getManifest(ref),
    async getBlob(desc, opts) {
      const data = await src.getBlob(desc, opts);
      if (desc.digest !== digest) return data;
      const whole = Buffer.from(await collect(data));
      const at = Math.floor(whole.length / 2);
      whole[at] = whole[at]! ^ 0x01;
      return chunked(whole);
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Transports under test

/** One isolated place images live in (its own repository, store or archive). */
interface Transport {
  /** A destination writing the image to be found under `tag`; null when this transport cannot be written. */
  destination(tag: string): ImageDestination | null;
  /** A source for what was written under `tag` (archives: finished and loaded here); null when not readable. */
  source(tag: string): Promise<{ src: ImageSource; ref: string } | null>;
  /** Whether an image is recorded/tagged under `tag`. */
  exists(tag: string): Promise<boolean>;
  /** Removes a blob of the image under `tag` behind the transport's back (for the missing-blob check). */
  removeBlob(tag: string, digest: Digest): Promise<void>;
  close(): Promise<void>;
}

interface TransportFactory {
  /** Manifests are kept as their exact bytes (docker-archive rebuilds them from manifest.json). */
  verbatim: boolean;
  /**
   * Index support: 'index' (copy with all:true, read back the index), 'host-child' (all:true is written, but
   * reading back resolves the host's platform), or a reason why indexes cannot be held (platform selection instead).
   */
  index: 'index' | 'host-child' | { platformOnly: string };
  /** Whether the transport can be a source / destination (a string says why not). */
  canSource: true | string;
  canDest: true | string;
  /** Starts/stops what the transport needs (a registry server), once per suite. */
  start?(): Promise<void>;
  stop?(): Promise<void>;
  create(): Promise<Transport>;
}

const engines: Engine[] = [];
function freshEngine(): Engine {
  const e = Engine.open({ root: tempDir('ply-suite-') });
  engines.push(e);
  return e;
}

const fullName = (repo: string, tag: string) => `docker.io/library/${repo}:${tag}`;

function memoryFactory(): TransportFactory {
  return {
    verbatim: true,
    index: 'index',
    canSource: true,
    canDest: true,
    async create() {
      const store = new MemoryStore();
      return {
        destination: () => store.destination(),
        source: async (tag) => ({ src: store.source(), ref: tag }),
        exists: async (tag) => store.tags.has(tag),
        removeBlob: async (_tag, d) => void store.blobs.delete(d),
        close: async () => {},
      };
    },
  };
}

function storeFactory(): TransportFactory {
  return {
    verbatim: true,
    index: { platformOnly: 'the local store records images, not indexes (an index copied with all:true is a loose blob no name points at)' },
    canSource: true,
    canDest: true,
    async create() {
      const engine = freshEngine();
      const repo = `suite-${randName()}`;
      return {
        destination: (tag) => new StoreDestination(engine.stores.images, { names: [fullName(repo, tag)] }),
        source: async (tag) => ({ src: storeSource(engine.stores.images), ref: fullName(repo, tag) }),
        exists: async (tag) => engine.stores.images.lookup(fullName(repo, tag)) !== undefined,
        removeBlob: async (_tag, d) => fs.rmSync(path.join(engine.root, blobPath(d))),
        close: async () => {},
      };
    },
  };
}

/** An OCI layout directory read and written in place (transport/oci-dir.ts: the build cache's type=local). */
function ociDirFactory(): TransportFactory {
  return {
    verbatim: true,
    index: 'index',
    canSource: true,
    canDest: true,
    async create() {
      const dir = path.join(tempDir('ply-suite-ocidir-'), 'layout');
      return {
        destination: () => ociDirDestination(dir),
        source: async (tag) => ({ src: ociDirSource(dir), ref: tag }),
        exists: async (tag) => {
          try {
            const index = JSON.parse(fs.readFileSync(path.join(dir, 'index.json'), 'utf8')) as Index;
            return index.manifests.some((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
          } catch {
            return false;
          }
        },
        removeBlob: async (_tag, d) => fs.rmSync(path.join(dir, blobPath(d))),
        close: async () => {},
      };
    },
  };
}

interface RegistryPeer {
  domain: string;
  /** DELETE a blob from a repository. */
  deleteBlob(repo: string, d: Digest): Promise<void>;
}

function registryFactory(startPeer: () => Promise<RegistryPeer & { stop(): Promise<void> }>): TransportFactory {
  let peer: (RegistryPeer & { stop(): Promise<void> }) | undefined;
  return {
    verbatim: true,
    index: 'index',
    canSource: true,
    canDest: true,
    async start() {
      peer = await startPeer();
    },
    async stop() {
      await peer?.stop();
    },
    async create() {
      const p = peer!;
      const repo = `suite/${randName()}`;
      const ref = parseReference(`${p.domain}/${repo}`);
      const opts = { credentials: null, tries: 1 };
      return {
        destination: () => registryDestination(ref, opts),
        source: async (tag) => ({ src: registrySource(ref, opts), ref: tag }),
        async exists(tag) {
          try {
            await registrySource(ref, opts).getManifest(tag);
            return true;
          } catch (e) {
            if (e instanceof RegistryError && /MANIFEST_UNKNOWN|NOT_FOUND|NAME_UNKNOWN/.test(e.code)) return false;
            throw e;
          }
        },
        removeBlob: (_tag, d) => p.deleteBlob(repo, d),
        close: async () => {},
      };
    },
  };
}

async function httpDelete(base: string, repo: string, d: Digest): Promise<void> {
  const res = await fetch(`${base}/v2/${repo}/blobs/${d}`, { method: 'DELETE' });
  await res.arrayBuffer();
  assert.equal(res.status, 202, `DELETE blob: ${res.status}`);
}

const plyRegistry = registryFactory(async () => {
  const server: RegistryServer = await startRegistry({ root: tempDir('ply-suite-reg-'), addr: '127.0.0.1:0', log: false, delete: true });
  const domain = `127.0.0.1:${server.port}`;
  return { domain, deleteBlob: (repo, d) => httpDelete(`http://${domain}`, repo, d), stop: () => server.close() };
});

const distribution = registryFactory(async () => {
  const dist: Distribution = await startDistribution();
  return { domain: dist.domain, deleteBlob: (repo, d) => httpDelete(`http://${dist.domain}`, repo, d), stop: () => dist.stop() };
});

/**
 * An archive written by ArchiveWriter (`format`) and read back by loadArchive into a fresh store — or, with
 * `dir`, unpacked by this test into a directory and read back by loadDirectory (ArchiveWriter writes only tars).
 */
function archiveFactory(format: ArchiveFormat, dir = false): TransportFactory {
  return {
    verbatim: format !== 'docker',
    index:
      format === 'docker'
        ? { platformOnly: "a docker-archive's manifest.json lists images only: an index has no place in it" }
        : 'host-child',
    canSource: true,
    canDest: true,
    async create() {
      const repo = `suite-${randName()}`;
      let writer: ArchiveWriter | undefined;
      let drained: Promise<Buffer> | undefined;
      let bytes: Buffer | undefined;
      let unpacked: string | undefined;
      const finish = async (): Promise<Buffer> => {
        if (writer) {
          const w = writer;
          writer = undefined;
          try {
            await w.finish();
            bytes = await drained!;
          } catch (e) {
            bytes = undefined;
            throw e;
          }
          unpacked = undefined;
        }
        if (!bytes) throw new InvalidArchiveError('nothing was written');
        return bytes;
      };
      const unpack = async (): Promise<string> => {
        if (unpacked) return unpacked;
        const d = tempDir('ply-suite-layout-');
        for await (const e of readTar(Readable.from([await finish()]))) {
          const p = path.join(d, e.header.name);
          if (e.header.type === 'dir') fs.mkdirSync(p, { recursive: true });
          else if (e.header.type === 'file') {
            fs.mkdirSync(path.dirname(p), { recursive: true });
            fs.writeFileSync(p, await e.buffer());
          }
        }
        return (unpacked = d);
      };
      const load = async (): Promise<Engine> => {
        const engine = freshEngine();
        if (dir) await loadDirectory(engine.stores.images, await unpack());
        else await loadArchive(engine.stores.images, Readable.from([await finish()]));
        return engine;
      };
      return {
        destination(tag) {
          if (!writer) {
            writer = new ArchiveWriter(format);
            drained = collect(writer.stream);
            drained.catch(() => {}); // awaited by finish(); a failed copy destroys the stream
          }
          return writer.image([fullName(repo, tag)]);
        },
        async source(tag) {
          const engine = await load();
          return { src: storeSource(engine.stores.images), ref: fullName(repo, tag) };
        },
        async exists(tag) {
          let engine: Engine;
          try {
            engine = await load();
          } catch {
            return false; // no (complete) archive: no image
          }
          return engine.stores.images.lookup(fullName(repo, tag)) !== undefined;
        },
        async removeBlob(_tag, d) {
          if (dir) {
            fs.rmSync(path.join(await unpack(), blobPath(d)));
            return;
          }
          const tar = new TarWriter();
          const out = collect(tar.stream);
          for await (const e of readTar(Readable.from([await finish()]))) {
            if (e.header.name === blobPath(d)) continue;
            await tar.add(e.header, e.header.type === 'file' ? await e.buffer() : undefined);
          }
          await tar.finish();
          bytes = await out;
        },
        close: async () => {},
      };
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Checks (go-containerregistry validate: every manifest and blob read back hashes to its descriptor, and every
// layer's uncompressed digest is the config's diff_id)

interface ReadBack {
  top: ManifestBlob;
  images: { manifest: ManifestBlob; configDigest: Digest; diffIds: Digest[] }[];
}

async function readBlob(src: ImageSource, desc: Descriptor): Promise<Buffer> {
  const b = await collect(await src.getBlob(desc));
  assert.equal(b.length, desc.size, `blob ${desc.digest}: size`);
  assert.equal(digestOf(b), desc.digest, `blob ${desc.digest}: digest of the bytes read back`);
  return b;
}

async function validateManifest(src: ImageSource, m: ManifestBlob): Promise<ReadBack['images'][number]> {
  const doc = parseManifestBlob(m) as Manifest;
  const cfg = JSON.parse((await readBlob(src, doc.config)).toString('utf8')) as ImageConfig;
  const diffIds = cfg.rootfs.diff_ids as Digest[];
  assert.equal(diffIds.length, doc.layers.length, 'config diff_ids vs manifest layers');
  for (const [i, l] of doc.layers.entries()) {
    const raw = await readBlob(src, l);
    const h = createHash('sha256');
    for await (const c of decompressed(chunked(raw))) h.update(c);
    assert.equal(`sha256:${h.digest('hex')}`, diffIds[i], `layer ${i} diffID`);
  }
  return { manifest: m, configDigest: doc.config.digest, diffIds };
}

async function validate(src: ImageSource, ref: string): Promise<ReadBack> {
  const top = await src.getManifest(ref);
  assert.equal(digestOf(top.bytes), top.digest, 'top manifest bytes hash to its digest');
  const doc = parseManifestBlob(top);
  if (!('manifests' in doc)) return { top, images: [await validateManifest(src, top)] };
  const images = [];
  for (const child of doc.manifests) {
    const m = await src.getManifest(child.digest);
    assert.equal(m.digest, child.digest);
    assert.equal(m.bytes.length, child.size);
    assert.equal(digestOf(m.bytes), child.digest);
    images.push(await validateManifest(src, m));
  }
  return { top, images };
}

/** The image read back is `want`: byte for byte where the transport keeps manifests, else by image ID + diffIDs. */
function assertSameImage(got: ReadBack['images'][number], want: GenImage, verbatim: boolean): void {
  if (verbatim) {
    assert.equal(got.manifest.digest, want.manifest.digest, 'manifest digest preserved');
    assert.ok(got.manifest.bytes.equals(want.manifest.bytes), 'manifest bytes preserved');
    assert.equal(got.manifest.mediaType, want.manifest.mediaType, 'manifest media type preserved');
  }
  assert.equal(got.configDigest, want.config.desc.digest, 'image ID (config digest) preserved');
  assert.deepEqual(got.diffIds, want.diffIds, 'layer diffIDs preserved');
}

async function copyInto(t: Transport, src: ImageSource, ref: string, tag: string, opts: CopyOptions = {}) {
  const dest = t.destination(tag);
  assert.ok(dest, 'transport has a destination');
  try {
    return await copyImage(src, ref, dest, tag, opts);
  } finally {
    await dest.close?.();
  }
}

function assertTyped(e: unknown, ...classes: (abstract new (...a: never[]) => Error)[]): true {
  assert.ok(e instanceof PlyError, `expected a typed PlyError, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
  if (classes.length) {
    assert.ok(classes.some((c) => e instanceof c), `expected ${classes.map((c) => c.name).join(' or ')}, got ${e.constructor.name}: ${e.message}`);
  }
  return true;
}

function counter(): { events: ProgressEvent[]; onProgress: (e: ProgressEvent) => void; count(type: ProgressEvent['type']): Map<string, number> } {
  const events: ProgressEvent[] = [];
  return {
    events,
    onProgress: (e) => events.push(e),
    count(type) {
      const m = new Map<string, number>();
      for (const e of events) if (e.type === type && 'digest' in e) m.set(e.digest, (m.get(e.digest) ?? 0) + 1);
      return m;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The suite

const TABLE: [string, TransportFactory][] = [
  ['memory (reference)', memoryFactory()],
  ['local store', storeFactory()],
  ['ply registry (in-process)', plyRegistry],
  ['CNCF distribution registry', distribution],
  ['docker-archive + OCI (docker 25+ "both")', archiveFactory('both')],
  ['docker-archive (manifest.json only: manifests rebuilt)', archiveFactory('docker')],
  ['OCI archive', archiveFactory('oci')],
  ['OCI layout directory (loadDirectory; written as an OCI tar and unpacked by the test)', archiveFactory('oci', true)],
  ['OCI layout directory in place (oci-dir)', ociDirFactory()],
];

function transportSuite(name: string, f: TransportFactory): void {
  describe(`transport: ${name}`, () => {
    before(async () => f.start?.());
    after(async () => f.stop?.());

    it('copies a random image in and reads every manifest and blob back verbatim', async () => {
      const gen = await randomImage();
      const t = await f.create();
      const res = await copyInto(t, MemoryStore.of(gen, 'v1').source(), 'v1', 'v1');
      assert.equal(res.digest, gen.top.digest);
      const s = (await t.source('v1'))!;
      const back = await validate(s.src, s.ref);
      // Where the transport rebuilds manifests (docker-archive), the image ID and the layer diffIDs are checked instead.
      assertSameImage(back.images[0]!, gen.images[0]!, f.verbatim);
    });

    it('serves as a source: a copy out of it verifies at a verifying destination', async () => {
      const gen = await randomImage();
      const t = await f.create();
      await copyInto(t, MemoryStore.of(gen, 'v1').source(), 'v1', 'v1');
      const s = (await t.source('v1'))!;
      const out = new MemoryStore();
      const res = await copyImage(s.src, s.ref, out.destination(), 'out');
      const back = await validate(out.source(), 'out');
      assert.equal(back.top.digest, res.digest);
      assertSameImage(back.images[0]!, gen.images[0]!, f.verbatim);
    });

    it('copying the same image again transfers no blob twice', async () => {
      const gen = await randomImage();
      const t = await f.create();
      const src = MemoryStore.of(gen, 'v1').source();
      const first = counter();
      await copyInto(t, src, 'v1', 'v1', { onProgress: first.onProgress });
      const started = first.count('blob-start');
      assert.equal(started.size, gen.blobs.size, 'every blob sent once the first time');
      for (const [d, n] of started) assert.equal(n, 1, `blob ${d} started ${n} times`);
      const second = counter();
      await copyInto(t, src, 'v1', 'v1', { onProgress: second.onProgress });
      assert.equal(second.count('blob-start').size, 0, 'no blob sent the second time');
      assert.equal(second.count('blob-exists').size, gen.blobs.size, 'every blob found at the destination');
      const s = (await t.source('v1'))!;
      assertSameImage((await validate(s.src, s.ref)).images[0]!, gen.images[0]!, f.verbatim);
    });

    for (const what of ['config', 'layer'] as const) {
      it(`refuses a ${what} blob corrupted in transit with a typed error and records no image/tag`, async (tc) => {
        const gen = await randomImage();
        const img = gen.images[0]!;
        const target = what === 'config' ? img.config.desc.digest : img.layers[img.layers.length - 1]!.desc.digest;
        const t = await f.create();
        let err: unknown;
        await assert.rejects(copyInto(t, flipping(MemoryStore.of(gen, 'v1').source(), target), 'v1', 'v1'), (e) => ((err = e), true));
        // Damage in transit is named as such, whether it breaks the layer's compression or tar or not.
        tc.diagnostic(`${(err as Error).constructor.name}: ${(err as Error).message}`);
        assertTyped(err, DigestMismatchError);
        assert.equal(await t.exists('v1'), false, 'no image or tag left at the destination');
      });
    }

    it('gives a typed error for a blob missing at the source', async (tc) => {
      const gen = await randomImage();
      const t = await f.create();
      await copyInto(t, MemoryStore.of(gen, 'v1').source(), 'v1', 'v1');
      const layer = gen.images[0]!.layers[0]!.desc.digest;
      await t.removeBlob('v1', layer);
      const out = new MemoryStore();
      await assert.rejects(
        (async () => {
          const s = (await t.source('v1'))!; // archives: the loader itself notices
          await copyImage(s.src, s.ref, out.destination(), 'out');
        })(),
        (e) => (tc.diagnostic(`${(e as Error).constructor.name}: ${(e as Error).message}`), assertTyped(e, NotFoundError, RegistryError, InvalidArchiveError)),
      );
      assert.equal(out.tags.size, 0, 'nothing tagged at the destination');
    });

    if (typeof f.index === 'object') {
      const reason = f.index.platformOnly;
      it(`index with two platforms: all:true skipped (${reason}); the platform selection path copies the other platform`, async () => {
        const gen = await randomIndex();
        const t = await f.create();
        const res = await copyInto(t, MemoryStore.of(gen, 'v1').source(), 'v1', 'v1', { platform: otherPlatform() });
        const want = gen.images[1]!;
        assert.equal(res.digest, want.manifest.digest);
        const s = (await t.source('v1'))!;
        assertSameImage((await validate(s.src, s.ref)).images[0]!, want, f.verbatim);
      });
    } else {
      const mode = f.index;
      it(`index with two platforms copies with all:true${mode === 'host-child' ? " (read back: the loader resolves the host's platform)" : ''}`, async () => {
        const gen = await randomIndex();
        const t = await f.create();
        const c = counter();
        const res = await copyInto(t, MemoryStore.of(gen, 'v1').source(), 'v1', 'v1', { all: true, onProgress: c.onProgress });
        assert.equal(res.digest, gen.top.digest);
        for (const [d, n] of c.count('blob-start')) assert.equal(n, 1, `shared blob ${d} sent ${n} times`);
        const s = (await t.source('v1'))!;
        const back = await validate(s.src, s.ref);
        if (mode === 'index') {
          assert.ok(back.top.bytes.equals(gen.top.bytes), 'index bytes preserved');
          assert.equal(back.top.digest, gen.top.digest);
          gen.images.forEach((img, i) => assertSameImage(back.images[i]!, img, f.verbatim));
        } else {
          assertSameImage(back.images[0]!, gen.images[0]!, f.verbatim);
        }
      });
      it('index with two platforms: the platform selection path copies only the other platform', async () => {
        const gen = await randomIndex();
        const t = await f.create();
        const res = await copyInto(t, MemoryStore.of(gen, 'v1').source(), 'v1', 'v1', { platform: otherPlatform() });
        assert.equal(res.digest, gen.images[1]!.manifest.digest);
        const s = (await t.source('v1'))!;
        assertSameImage((await validate(s.src, s.ref)).images[0]!, gen.images[1]!, f.verbatim);
      });
    }
  });
}

describe(`transport conformance (SUITE_SEED=${SEED})`, () => {
  after(() => {
    for (const e of engines) e.close();
  });

  for (const [name, f] of TABLE) transportSuite(name, f);

  // Every source-capable transport to every destination-capable one, with the same checks on what arrives.
  describe('pair matrix (source → destination)', () => {
    const started = TABLE.map(([, f]) => f).filter((f) => f.start);
    before(async () => {
      for (const f of started) await f.start!();
    });
    after(async () => {
      for (const f of started) await f.stop!();
    });
    for (const [an, a] of TABLE) {
      for (const [bn, b] of TABLE) {
        if (a.canSource !== true || b.canDest !== true) continue;
        it(`${an} → ${bn}`, async () => {
          const gen = await randomImage();
          const ta = await a.create();
          await copyInto(ta, MemoryStore.of(gen, 'v1').source(), 'v1', 'v1');
          const sa = (await ta.source('v1'))!;
          const fromA = await validate(sa.src, sa.ref);
          assertSameImage(fromA.images[0]!, gen.images[0]!, a.verbatim);
          const tb = await b.create();
          const res = await copyInto(tb, sa.src, sa.ref, 'w2');
          assert.equal(res.digest, fromA.top.digest);
          const sb = (await tb.source('w2'))!;
          const back = await validate(sb.src, sb.ref);
          // What B holds is what A served (A may have rebuilt the manifest), and still the generated image.
          if (b.verbatim) assert.ok(back.top.bytes.equals(fromA.top.bytes), 'manifest bytes as the source served them');
          assertSameImage(back.images[0]!, gen.images[0]!, a.verbatim && b.verbatim);
          await ta.close();
          await tb.close();
        });
      }
    }
  });
});
