// Image archives out (save): a tar that is both a docker-archive (manifest.json, repositories) and an OCI image
// layout (oci-layout, index.json), as docker 25+ writes it, with every blob once under blobs/<alg>/<hex>. The
// archive is an ImageDestination: `ply save` is copyImage(storeSource, image, archive.image(names)).
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Digester, digestOf, splitDigest } from '../digest/digest.js';
import { DigestMismatchError } from '../errors.js';
import type { ImageRecord, ImageStore } from '../image/store.js';
import { isIndexMediaType, isLayerMediaType, type Descriptor, type Digest, type ImageConfig, type Manifest, type Platform } from '../oci/types.js';
import { familiarName, familiarString, formatReference, parseReference, repositoryName } from '../reference/reference.js';
import { TarWriter, type TarHeader } from '../tar/index.js';
import { copyImage, parseManifestBlob } from './copy.js';
import { OCI_INDEX_FILE, OCI_LAYOUT_CONTENT, OCI_LAYOUT_FILE, blobPath, nameAnnotations } from './oci-layout.js';
import { storeSource } from './store.js';
import type { ImageDestination, ManifestBlob } from './types.js';

/** 'both': docker-archive and OCI layout in one tar (docker 25+); 'docker' or 'oci': one form alone. */
import { type ArchiveFormat } from './types.js';
export { type ArchiveFormat, parseArchiveFormat } from './types.js';

export const DOCKER_MANIFEST_FILE = 'manifest.json';
export const DOCKER_REPOSITORIES_FILE = 'repositories';

/** One entry of a docker-archive's manifest.json (moby's tarexport manifestItem, same field order). */
export interface DockerManifestItem {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
  Parent?: string;
  LayerSources?: Record<string, Descriptor>;
}

/** Configs are kept (small) to give index entries their platform. */
const KEEP_BLOB_MAX = 4 << 20;

function isForeignLayer(mediaType: string): boolean {
  return mediaType.includes('.foreign.') || mediaType.includes('.nondistributable.');
}

function fileHeader(name: string, size: number): TarHeader {
  return { name, type: 'file', mode: 0o644, uid: 0, gid: 0, size, mtime: 0 };
}

/**
 * Writes an image archive as a stream. Blobs go out as they are put (verified against their digest while they
 * stream); manifest.json, repositories, oci-layout and index.json are written by finish(). Entries carry mtime 0
 * and owner 0:0, so saving the same images twice gives the same bytes.
 */
export class ArchiveWriter {
  private readonly tar = new TarWriter();
  private readonly written = new Set<string>();
  private readonly dirs = new Set<string>();
  private readonly kept = new Map<string, Buffer>();
  private readonly index: Descriptor[] = [];
  private readonly items: (DockerManifestItem & { id: Digest; parent?: string })[] = [];
  private readonly repositories: Record<string, Record<string, string>> = {};

  constructor(readonly format: ArchiveFormat = 'both') {}

  /** The archive's bytes. */
  get stream(): Readable {
    return this.tar.stream;
  }

  /** A destination for one image, named `names` (full references; none for an image saved by ID). */
  image(names: string[], opts: { parent?: string } = {}): ImageDestination {
    return new ArchiveImageDestination(this, names, opts.parent);
  }

  has(digest: Digest): boolean {
    return this.written.has(digest);
  }

  private async ensureDir(algorithm: string): Promise<void> {
    for (const d of ['blobs/', `blobs/${algorithm}/`]) {
      if (this.dirs.has(d)) continue;
      this.dirs.add(d);
      await this.tar.add({ name: d, type: 'dir', mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0 });
    }
  }

  /** Writes a blob entry, hashing it on the way: a digest or size that does not match aborts the archive. */
  async putBlob(desc: Descriptor, data: AsyncIterable<Buffer>): Promise<void> {
    if (this.written.has(desc.digest)) {
      for await (const _ of data) void _;
      return;
    }
    this.written.add(desc.digest);
    const { algorithm } = splitDigest(desc.digest);
    await this.ensureDir(algorithm);
    const keep: Buffer[] | undefined = !isLayerMediaType(desc.mediaType) && desc.size <= KEEP_BLOB_MAX ? [] : undefined;
    const digester = new Digester(algorithm);
    const verified = async function* (): AsyncGenerator<Buffer> {
      for await (const chunk of data) {
        if (digester.size + chunk.length > desc.size) {
          throw new DigestMismatchError(`${desc.digest} of ${desc.size} bytes`, `more bytes`, 'size');
        }
        digester.update(chunk);
        keep?.push(chunk);
        yield chunk;
      }
      if (digester.size !== desc.size) throw new DigestMismatchError(`${desc.digest} of ${desc.size} bytes`, `${digester.size} bytes`, 'size');
      const got = digester.digest();
      if (got !== desc.digest) throw new DigestMismatchError(desc.digest, got, `blob`);
    };
    await this.tar.add(fileHeader(blobPath(desc.digest), desc.size), verified());
    if (keep) this.kept.set(desc.digest, Buffer.concat(keep));
  }

  /** Writes a manifest or index blob (OCI layout part). */
  async putManifestBlob(m: ManifestBlob): Promise<void> {
    const got = digestOf(m.bytes, splitDigest(m.digest).algorithm);
    if (got !== m.digest) throw new DigestMismatchError(m.digest, got, 'manifest');
    if (this.written.has(m.digest)) return;
    this.written.add(m.digest);
    await this.ensureDir(splitDigest(m.digest).algorithm);
    await this.tar.add(fileHeader(blobPath(m.digest), m.bytes.length), m.bytes);
  }

  /** Records an image (its top manifest) in index.json, manifest.json and repositories. */
  addImage(top: ManifestBlob, names: string[], parent?: string): void {
    const doc = parseManifestBlob(top);
    const isIndex = isIndexMediaType(top.mediaType) || 'manifests' in doc;
    let platform: Platform | undefined;
    let config: ImageConfig | undefined;
    if (!isIndex) {
      const cfgBytes = this.kept.get((doc as Manifest).config.digest);
      if (cfgBytes) {
        try {
          config = JSON.parse(cfgBytes.toString('utf8')) as ImageConfig;
        } catch {
          config = undefined;
        }
      }
      if (config?.architecture && config.os) {
        platform = { architecture: config.architecture, os: config.os };
        if (config.variant) platform.variant = config.variant;
        if (config['os.version']) platform['os.version'] = config['os.version'];
      }
    }
    const base: Descriptor = { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length };
    if (platform) base.platform = platform;
    if (names.length === 0) this.index.push(base);
    for (const n of names) this.index.push({ ...base, annotations: nameAnnotations(n) });
    if (isIndex) return;

    const m = doc as Manifest;
    const diffIds = config?.rootfs?.diff_ids ?? [];
    let sources: Record<string, Descriptor> | undefined;
    m.layers.forEach((l, i) => {
      if (!isForeignLayer(l.mediaType) || !diffIds[i]) return;
      const src: Descriptor = { mediaType: l.mediaType, size: l.size, digest: l.digest };
      if (l.urls) src.urls = l.urls;
      (sources ??= {})[diffIds[i]!] = src;
    });
    this.items.push({
      Config: blobPath(m.config.digest),
      RepoTags: names.length ? names.map((n) => familiarString(parseReference(n))) : null,
      Layers: m.layers.map((l) => blobPath(l.digest)),
      ...(sources ? { LayerSources: sources } : {}),
      id: m.config.digest,
      parent,
    });
    const topLayer = m.layers[m.layers.length - 1];
    if (topLayer) {
      for (const n of names) {
        const r = parseReference(n);
        (this.repositories[familiarName(r)] ??= {})[r.tag ?? 'latest'] = splitDigest(topLayer.digest).hex;
      }
    }
  }

  /** Writes the index files and ends the archive. */
  async finish(): Promise<void> {
    const files: [string, string][] = [];
    if (this.format !== 'docker') {
      files.push([OCI_INDEX_FILE, JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: this.index })]);
    }
    if (this.format !== 'oci') {
      const ids = new Set(this.items.map((i) => i.id));
      const items: DockerManifestItem[] = this.items.map(({ id, parent, ...item }) => {
        void id;
        return parent && ids.has(parent as Digest) ? { ...item, Parent: parent } : item;
      });
      files.push([DOCKER_MANIFEST_FILE, `${JSON.stringify(items)}\n`]);
    }
    if (this.format !== 'docker') files.push([OCI_LAYOUT_FILE, OCI_LAYOUT_CONTENT]);
    if (this.format !== 'oci' && Object.keys(this.repositories).length > 0) {
      files.push([DOCKER_REPOSITORIES_FILE, `${JSON.stringify(this.repositories)}\n`]);
    }
    for (const [name, text] of files) {
      const b = Buffer.from(text);
      await this.tar.add(fileHeader(name, b.length), b);
    }
    await this.tar.finish();
  }

  destroy(err: Error): void {
    this.tar.destroy(err);
  }
}

class ArchiveImageDestination implements ImageDestination {
  readonly description: string;
  private top: ManifestBlob | undefined;

  constructor(
    private readonly archive: ArchiveWriter,
    private readonly names: string[],
    private readonly parent?: string,
  ) {
    this.description = `${archive.format === 'oci' ? 'oci-archive' : 'docker-archive'}`;
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    return this.archive.has(desc.digest);
  }

  async putBlob(desc: Descriptor, data: AsyncIterable<Buffer>): Promise<void> {
    await this.archive.putBlob(desc, data);
  }

  async putManifest(m: ManifestBlob, tag?: string): Promise<void> {
    if (tag && !this.names.includes(tag)) this.names.push(tag);
    // docker-archive alone has no manifests; the OCI layout keeps each one as it was hashed.
    if (this.archive.format !== 'docker') await this.archive.putManifestBlob(m);
    this.top = m;
  }

  async commit(): Promise<void> {
    if (this.top) this.archive.addImage(this.top, this.names, this.parent);
    this.top = undefined;
  }
}

export interface SaveItem {
  image: ImageRecord;
  /** Full references to save it under (none when named by ID or digest). */
  names: string[];
}

/**
 * Which images `refs` name, as docker save resolves them: 'repo:tag' is that name, 'repo' alone every tag of the
 * repository (or an ID prefix when it has none), an ID or 'repo@digest' the image without a name. Images named
 * several times are saved once, with all their names.
 */
export function resolveSave(images: ImageStore, refs: string[]): SaveItem[] {
  const out = new Map<string, SaveItem>();
  const add = (image: ImageRecord, name?: string) => {
    let item = out.get(image.digest);
    if (!item) out.set(image.digest, (item = { image, names: [] }));
    if (name && !item.names.includes(name)) item.names.push(name);
  };
  for (const ref of refs) {
    if (/^(sha256:)?[0-9a-f]{64}$/.test(ref) || /^sha256:[0-9a-f]+$/.test(ref)) {
      add(images.resolve(ref));
      continue;
    }
    const r = parseReference(ref);
    if (r.digest) {
      add(images.resolve(ref));
    } else if (r.tag === undefined) {
      const repo = `${repositoryName(r)}:`;
      let found = false;
      for (const [digest, names] of images.names()) {
        for (const n of names) {
          if (!n.startsWith(repo)) continue;
          const rec = images.get(digest);
          if (!rec) continue;
          add(rec, n);
          found = true;
        }
      }
      if (!found) add(images.resolve(ref));
    } else {
      add(images.resolve(ref), formatReference(r));
    }
  }
  return [...out.values()];
}

/**
 * Writes the images of `items` as one archive to `out`, each through the copy pipeline from the local store.
 * Their blobs are held by a lease while they are read, so a concurrent rmi/prune cannot delete them mid-save.
 */
export async function saveImages(images: ImageStore, items: SaveItem[], out: Writable, opts: { format?: ArchiveFormat } = {}): Promise<void> {
  const lease = images.lease();
  try {
    for (const { image } of items) {
      lease.add(image.digest);
      lease.add(image.id);
      for (const l of images.manifest(image).layers) lease.add(l.digest);
    }
    const archive = new ArchiveWriter(opts.format ?? 'both');
    const src = storeSource(images);
    const produce = (async () => {
      for (const { image, names } of items) {
        await copyImage(src, image.digest, archive.image([...names], { parent: image.parent ?? undefined }), undefined, { parallel: 1 });
      }
      await archive.finish();
    })();
    produce.catch((e: unknown) => archive.destroy(e as Error));
    await Promise.all([pipeline(archive.stream, out), produce]);
  } finally {
    lease.release();
  }
}
