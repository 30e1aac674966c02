// Image archives in (load): docker-archives (old `<id>/layer.tar` form and docker 25's blobs/ form), OCI archives
// and OCI layout directories, plain or compressed as a whole. One streaming pass ingests every file of the tar
// (hashing it, and for a layer computing its diffID), then the images are resolved from index.json/manifest.json,
// fully checked, and recorded through the copy pipeline into the local store — or, on any error, nothing is.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { writeTx } from '../db/db.js';
import { digestOf, isDigest } from '../digest/digest.js';
import { DigestMismatchError, InvalidArchiveError, InvalidReferenceError, NotFoundError, UnsupportedError } from '../errors.js';
import type { ImageStore } from '../image/store.js';
import type { LayerRecord } from '../layer/types.js';
import type { Lease } from '../content/lease.js';
import { hostPlatform } from '../oci/platform.js';
import { decompressed } from '../layer/compression.js';
import { MediaType, isIndexMediaType, isLayerMediaType, isManifestMediaType, type Descriptor, type Digest, type ImageConfig, type Index, type Manifest } from '../oci/types.js';
import { formatReference, parseNormalized } from '../reference/reference.js';
import { readTar } from '../tar/index.js';
import { DOCKER_MANIFEST_FILE, DOCKER_REPOSITORIES_FILE } from './archive.js';
import { LAYER_MEDIA_TYPE, MEMORY_FILE_MAX, ingestFile, type IngestedFile } from './archive-ingest.js';
import { copyImage, selectPlatform } from './copy.js';
import { OCI_INDEX_FILE, blobPath, digestOfBlobPath, nameFromAnnotations } from './oci-layout.js';
import { StoreDestination } from './store.js';
import type { ImageSource, ManifestBlob } from './types.js';

/** All files kept in memory at once, at most (beyond it small files go to the content store too). */
const MEMORY_TOTAL_MAX = 256 << 20;

export type LoadProgress = { type: 'file'; path: string; size: number; layer: boolean };

export interface LoadOptions {
  onProgress?: (e: LoadProgress) => void;
}

export interface LoadedImage {
  /** Manifest digest. */
  digest: Digest;
  /** Image ID (config digest). */
  id: Digest;
  /** Full references pointed at it. */
  names: string[];
}

export interface LoadResult {
  images: LoadedImage[];
  /** Names that pointed at another image before (docker: "renaming the old one … to empty string"). */
  renamed: { name: string; oldId: Digest }[];
}

/** Normalises a path in an archive ('./blobs//x' → 'blobs/x'); undefined for the root or a path leaving it. */
export function cleanArchivePath(name: string): string | undefined {
  const p = path.posix
    .normalize(name)
    .replace(/^(\.\/)+/, '')
    .replace(/^\/+/, '')
    .replace(/\/+$/, '');
  if (p === '' || p === '.' || p === '..' || p.startsWith('../')) return undefined;
  return p;
}

function layerRecordOf(images: ImageStore, digest: Digest): LayerRecord | undefined {
  return images.layerRecord(digest);
}

/** The files of an archive (a tar already read, or a directory read on demand), each ingested once. */
abstract class ArchiveFiles {
  constructor(protected readonly images: ImageStore) {}

  abstract get(p: string): Promise<IngestedFile | undefined>;

  /** A file's bytes (kept in memory, or read back from the store), for JSON documents. */
  async bytes(p: string): Promise<Buffer | undefined> {
    const f = await this.get(p);
    if (!f) return undefined;
    if (f.bytes) return f.bytes;
    if (f.size > MEMORY_FILE_MAX) throw new InvalidArchiveError(`${p} is too large (${f.size} bytes) for a JSON document`);
    return this.images.content.readBytes(f.digest);
  }
}

class TarFiles extends ArchiveFiles {
  readonly files = new Map<string, IngestedFile>();
  readonly links = new Map<string, string>();

  async get(p: string): Promise<IngestedFile | undefined> {
    let cur = cleanArchivePath(p);
    // docker save (old form) and podman make repeated layers symlinks ('<id>/layer.tar -> ../<other>/layer.tar').
    for (let hops = 0; cur !== undefined && hops < 16; hops++) {
      const f = this.files.get(cur);
      if (f) return f;
      cur = this.links.get(cur);
    }
    return undefined;
  }
}

class DirFiles extends ArchiveFiles {
  private readonly cache = new Map<string, IngestedFile | undefined>();
  private n = 0;

  constructor(
    images: ImageStore,
    private readonly root: string,
    private readonly lease: Lease,
    private readonly key: string,
    private readonly opts: LoadOptions,
  ) {
    super(images);
  }

  async get(p: string): Promise<IngestedFile | undefined> {
    const rel = cleanArchivePath(p);
    if (rel === undefined) return undefined;
    if (this.cache.has(rel)) return this.cache.get(rel);
    const full = path.join(this.root, rel);
    let st: fs.Stats;
    try {
      st = fs.statSync(full);
    } catch {
      this.cache.set(rel, undefined);
      return undefined;
    }
    if (!st.isFile()) return undefined;
    const f = await ingestFile(this.images.content, fs.createReadStream(full, { highWaterMark: 1 << 20 }), st.size, {
      expected: digestOfBlobPath(rel),
      name: rel,
      key: `${this.key}-${this.n++}`,
      lease: this.lease,
      knownLayer: (d) => layerRecordOf(this.images, d),
    });
    this.cache.set(rel, f);
    this.opts.onProgress?.({ type: 'file', path: rel, size: f.size, layer: f.layer !== undefined });
    return f;
  }
}

/** One pass over the archive: every regular file is ingested as it streams. */
async function readArchive(images: ImageStore, source: Readable | AsyncIterable<Buffer>, lease: Lease, key: string, opts: LoadOptions): Promise<TarFiles> {
  const files = new TarFiles(images);
  let n = 0;
  let inMemory = 0;
  for await (const entry of readTar(decompressed(source as AsyncIterable<Buffer>))) {
    const h = entry.header;
    const p = cleanArchivePath(h.name);
    if (p === undefined) continue;
    if (h.type === 'file') {
      const f = await ingestFile(images.content, entry.body, h.size, {
        expected: digestOfBlobPath(p),
        name: p,
        key: `${key}-${n++}`,
        lease,
        memory: inMemory + h.size <= MEMORY_TOTAL_MAX,
        knownLayer: (d) => layerRecordOf(images, d),
      });
      if (f.bytes) inMemory += f.size;
      files.files.set(p, f);
      files.links.delete(p);
      opts.onProgress?.({ type: 'file', path: p, size: f.size, layer: f.layer !== undefined });
    } else if (h.type === 'symlink' || h.type === 'link') {
      const target = cleanArchivePath(h.type === 'symlink' ? path.posix.join(path.posix.dirname(p), h.linkname ?? '') : (h.linkname ?? ''));
      if (target !== undefined) {
        files.links.set(p, target);
        files.files.delete(p);
      }
    }
  }
  return files;
}

interface Plan {
  manifest: ManifestBlob;
  configDigest: Digest;
  layers: LayerRecord[];
  names: string[];
}

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (e) {
    throw new InvalidArchiveError(`${what}: invalid JSON: ${(e as Error).message}`);
  }
}

function fullName(s: string, what: string): string {
  const r = parseNormalized(s);
  if (r.tag === undefined) throw new InvalidReferenceError(`${what}: "${s}" has no tag`);
  return formatReference({ domain: r.domain, path: r.path, tag: r.tag });
}

/** Resolves the archive's images and checks every one of them completely, before anything is recorded. */
class Planner {
  readonly plans: Plan[] = [];
  /** Blobs the recorded images need, by digest: their file (stored or in memory). */
  readonly blobs = new Map<string, IngestedFile>();

  constructor(private readonly files: ArchiveFiles) {}

  private add(plan: Plan): void {
    const same = this.plans.find((p) => p.manifest.digest === plan.manifest.digest);
    if (!same) {
      this.plans.push(plan);
      return;
    }
    for (const n of plan.names) if (!same.names.includes(n)) same.names.push(n);
  }

  private async blob(desc: Descriptor, what: string): Promise<IngestedFile> {
    if (!isDigest(desc.digest)) throw new InvalidArchiveError(`${what}: invalid digest ${String(desc.digest)}`);
    const f = await this.files.get(blobPath(desc.digest));
    if (!f) throw new InvalidArchiveError(`${what} ${desc.digest} is missing from the archive`);
    if (typeof desc.size === 'number' && f.size !== desc.size) {
      throw new DigestMismatchError(`${desc.digest} of ${desc.size} bytes`, `${f.size} bytes`, `${what} size`);
    }
    return f;
  }

  private async blobBytes(desc: Descriptor, what: string): Promise<Buffer> {
    await this.blob(desc, what);
    return (await this.files.bytes(blobPath(desc.digest)))!;
  }

  /** The image manifest a descriptor leads to (through nested indexes, by the host's platform). */
  private async resolveManifest(desc: Descriptor, depth: number): Promise<ManifestBlob | undefined> {
    if (depth > 8) throw new InvalidArchiveError('index nesting is too deep');
    if (desc.mediaType && !isIndexMediaType(desc.mediaType) && !isManifestMediaType(desc.mediaType)) return undefined; // an artifact
    const bytes = await this.blobBytes(desc, 'manifest');
    const doc = parseJson(bytes, `manifest ${desc.digest}`) as Partial<Manifest & Index>;
    if (!doc || typeof doc !== 'object') throw new InvalidArchiveError(`manifest ${desc.digest} is not an object`);
    if (isIndexMediaType(desc.mediaType) || isIndexMediaType(doc.mediaType) || Array.isArray(doc.manifests)) {
      if (!Array.isArray(doc.manifests)) throw new InvalidArchiveError(`index ${desc.digest} has no manifests`);
      const index = doc as Index;
      const want = hostPlatform();
      let child = selectPlatform(index, want);
      const images = index.manifests.filter((d) => isManifestMediaType(d.mediaType));
      if (!child && images.length === 1 && !images[0]!.platform) child = images[0];
      if (!child) {
        throw new NotFoundError(`no matching manifest for ${[want.os, want.architecture, want.variant].filter(Boolean).join('/')} in the manifest list entries`);
      }
      return this.resolveManifest(child, depth + 1);
    }
    if (!doc.config || !Array.isArray(doc.layers)) throw new InvalidArchiveError(`manifest ${desc.digest} has no config or layers`);
    return { bytes, digest: desc.digest, mediaType: desc.mediaType ?? doc.mediaType ?? MediaType.OciManifest };
  }

  /** Checks an image: its config parses, every layer is a tar in the archive whose diffID is the config's. */
  private async check(manifest: ManifestBlob, layerFiles: { desc: Descriptor; file: IngestedFile; what: string }[], config: { desc: Descriptor; file: IngestedFile; bytes: Buffer }, names: string[]): Promise<void> {
    const cfg = parseJson(config.bytes, `config ${config.desc.digest}`) as Partial<ImageConfig>;
    const diffIds = cfg?.rootfs?.diff_ids;
    if (!Array.isArray(diffIds)) throw new InvalidArchiveError(`config ${config.desc.digest} has no rootfs.diff_ids`);
    if (diffIds.length !== layerFiles.length) {
      throw new InvalidArchiveError(`image ${config.desc.digest}: the config lists ${diffIds.length} layers, the manifest ${layerFiles.length}`);
    }
    const layers = layerFiles.map(({ desc, file, what }, i): LayerRecord => {
      if (!file.layer) throw new InvalidArchiveError(`${what} is not a valid tar archive${file.layerError ? `: ${file.layerError}` : ''}`);
      if (file.layer.diffId !== diffIds[i]) throw new DigestMismatchError(diffIds[i]!, file.layer.diffId, `layer ${desc.digest.slice(7, 19)} diffID`);
      this.blobs.set(file.digest, file);
      return { digest: file.digest, diffId: file.layer.diffId, mediaType: desc.mediaType, size: file.size, unpackedSize: file.layer.unpackedSize };
    });
    this.blobs.set(config.file.digest, config.file.bytes ? config.file : { ...config.file, bytes: config.bytes });
    this.add({ manifest, configDigest: config.desc.digest, layers, names });
  }

  async fromIndex(bytes: Buffer): Promise<void> {
    const index = parseJson(bytes, OCI_INDEX_FILE) as Partial<Index>;
    if (!index || !Array.isArray(index.manifests)) throw new InvalidArchiveError(`${OCI_INDEX_FILE} has no manifests`);
    for (const d of index.manifests) {
      if (!d || typeof d !== 'object') throw new InvalidArchiveError(`${OCI_INDEX_FILE}: invalid descriptor`);
      const m = await this.resolveManifest(d, 0);
      if (!m) continue;
      const doc = JSON.parse(m.bytes.toString('utf8')) as Manifest;
      if (!doc.config || !isDigest(doc.config.digest)) throw new InvalidArchiveError(`manifest ${m.digest}: invalid config descriptor`);
      const cfgFile = await this.blob(doc.config, 'config');
      const cfgBytes = (await this.files.bytes(blobPath(doc.config.digest)))!;
      const layers = [];
      for (const l of doc.layers) {
        if (!l || !isDigest(l.digest)) throw new InvalidArchiveError(`manifest ${m.digest}: invalid layer descriptor`);
        if (!isLayerMediaType(l.mediaType ?? '')) throw new UnsupportedError(`manifest ${m.digest}: unsupported layer media type ${String(l.mediaType)}`);
        layers.push({ desc: l, file: await this.blob(l, 'layer'), what: `layer ${l.digest}` });
      }
      const name = nameFromAnnotations(d);
      await this.check(m, layers, { desc: doc.config, file: cfgFile, bytes: cfgBytes }, name ? [name] : []);
      this.blobs.set(m.digest, { digest: m.digest, size: m.bytes.length, bytes: m.bytes });
    }
  }

  async fromDockerManifest(bytes: Buffer): Promise<void> {
    const items = parseJson(bytes, DOCKER_MANIFEST_FILE);
    if (!Array.isArray(items)) throw new InvalidArchiveError(`${DOCKER_MANIFEST_FILE} is not a list`);
    for (const item of items as { Config?: unknown; RepoTags?: unknown; Layers?: unknown }[]) {
      if (!item || typeof item.Config !== 'string' || !Array.isArray(item.Layers) || !item.Layers.every((l) => typeof l === 'string')) {
        throw new InvalidArchiveError(`${DOCKER_MANIFEST_FILE}: an entry lacks Config or Layers`);
      }
      const tags = item.RepoTags ?? [];
      if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string')) throw new InvalidArchiveError(`${DOCKER_MANIFEST_FILE}: invalid RepoTags`);
      const names = (tags as string[]).map((t) => fullName(t, DOCKER_MANIFEST_FILE));
      const cfgFile = await this.files.get(item.Config);
      if (!cfgFile) throw new InvalidArchiveError(`${DOCKER_MANIFEST_FILE} references ${item.Config}, which is not in the archive`);
      // The same image described by index.json (docker 25+, ply): only its names are new.
      const same = this.plans.find((p) => p.configDigest === cfgFile.digest);
      if (same) {
        for (const n of names) if (!same.names.includes(n)) same.names.push(n);
        continue;
      }
      const cfgBytes = (await this.files.bytes(item.Config))!;
      const layers = [];
      for (const lp of item.Layers as string[]) {
        const file = await this.files.get(lp);
        if (!file) throw new InvalidArchiveError(`${DOCKER_MANIFEST_FILE} references ${lp}, which is not in the archive`);
        const mediaType = LAYER_MEDIA_TYPE[file.layer?.compression ?? 'none'];
        layers.push({ desc: { mediaType, digest: file.digest, size: file.size }, file, what: `layer ${lp}` });
      }
      const configDesc: Descriptor = { mediaType: MediaType.OciConfig, digest: cfgFile.digest, size: cfgFile.size };
      const manifest: Manifest = { schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers: layers.map((l) => l.desc) };
      const mbytes = Buffer.from(JSON.stringify(manifest));
      const m: ManifestBlob = { bytes: mbytes, digest: digestOf(mbytes), mediaType: MediaType.OciManifest };
      await this.check(m, layers, { desc: configDesc, file: cfgFile, bytes: cfgBytes }, names);
      this.blobs.set(m.digest, { digest: m.digest, size: mbytes.length, bytes: mbytes });
    }
  }

  async run(): Promise<Plan[]> {
    const index = await this.files.bytes(OCI_INDEX_FILE);
    const docker = await this.files.bytes(DOCKER_MANIFEST_FILE);
    if (index) await this.fromIndex(index);
    if (docker) await this.fromDockerManifest(docker);
    if (!index && !docker) {
      if (await this.files.get(DOCKER_REPOSITORIES_FILE)) {
        throw new UnsupportedError('legacy docker-archive without manifest.json (docker < 1.10) is not supported');
      }
      throw new InvalidArchiveError('no image found in the archive: it has neither manifest.json nor index.json');
    }
    if (this.plans.length === 0) throw new InvalidArchiveError('no image found in the archive');
    return this.plans;
  }
}

/** The checked images as an ImageSource: manifests and small blobs from memory, the rest from the store. */
function plannedSource(images: ImageStore, planner: Planner): ImageSource {
  return {
    description: 'archive',
    async getManifest(ref: string): Promise<ManifestBlob> {
      const p = planner.plans.find((x) => x.manifest.digest === ref);
      if (!p) throw new NotFoundError(`manifest ${ref} is not in the archive`);
      return p.manifest;
    },
    async getBlob(desc: Descriptor): Promise<AsyncIterable<Buffer>> {
      const f = planner.blobs.get(desc.digest);
      const bytes = f?.bytes;
      if (bytes) return (async function* () { yield bytes; })();
      return images.content.read(desc.digest);
    },
  };
}

/** Records the checked images (through StoreDestination) and then, in one transaction, their names. */
async function record(images: ImageStore, planner: Planner): Promise<LoadResult> {
  const created: Digest[] = [];
  const loaded: LoadedImage[] = [];
  const src = plannedSource(images, planner);
  try {
    for (const plan of planner.plans) {
      const existed = images.get(plan.manifest.digest) !== undefined;
      const dest = new StoreDestination(images);
      dest.addLayerRecords(plan.layers);
      try {
        await copyImage(src, plan.manifest.digest, dest, undefined, { parallel: 1 });
      } finally {
        await dest.close();
      }
      if (!existed) created.push(plan.manifest.digest);
      loaded.push({ digest: plan.manifest.digest, id: plan.configDigest, names: plan.names });
    }
  } catch (e) {
    // Only images this load created, which no name points at yet: the store is as it was.
    images.deleteImages(created);
    throw e;
  }
  const renamed: LoadResult['renamed'] = [];
  writeTx(images.db, () => {
    for (const img of loaded) {
      for (const n of img.names) {
        const old = images.nameTarget(n);
        const oldRec = old && old !== img.digest ? images.get(old) : undefined;
        if (oldRec && oldRec.id !== img.id) renamed.push({ name: n, oldId: oldRec.id });
        images.setName(n, img.digest);
      }
    }
  });
  return { images: loaded, renamed };
}

async function loadFrom(images: ImageStore, files: (lease: Lease, key: string) => Promise<ArchiveFiles>): Promise<LoadResult> {
  const lease = images.lease();
  try {
    const key = `load-${process.pid}-${randomBytes(4).toString('hex')}`;
    const planner = new Planner(await files(lease, key));
    await planner.run();
    const result = await record(images, planner);
    lease.release();
    return result;
  } catch (e) {
    images.abandon(lease); // a refused archive leaves nothing behind
    throw e;
  }
}

/** Loads the images of an archive stream (docker-archive or OCI archive; plain, gzip, zstd, xz or bzip2). */
export async function loadArchive(images: ImageStore, source: Readable | AsyncIterable<Buffer>, opts: LoadOptions = {}): Promise<LoadResult> {
  return loadFrom(images, async (lease, key) => {
    const files = await readArchive(images, source, lease, key, opts);
    if (files.files.size === 0 && files.links.size === 0) throw new InvalidArchiveError('the archive is empty');
    return files;
  });
}

/** Loads the images of an OCI image layout directory (or an unpacked docker-archive); only referenced files are read. */
export async function loadDirectory(images: ImageStore, dir: string, opts: LoadOptions = {}): Promise<LoadResult> {
  return loadFrom(images, async (lease, key) => new DirFiles(images, dir, lease, key, opts));
}
