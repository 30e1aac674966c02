// The engine's image verbs: import, pull, push, tag, remove, prune, list, inspect, history, save, load.
// Results are docker's API shapes; long work reports docker's progress messages. The transports and the archive
// code load on first use, so listing and inspecting never load them.
import type { Readable, Writable } from 'node:stream';
import type { Credentials } from '../auth/config.js';
import { randomBytes } from 'node:crypto';
import { BuildCache } from '../builder/cache.js';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { rfc3339Nano } from '../gotemplate/gofmt.js';
import { applyChanges } from '../dockerfile/config.js';
import { ImageStore, type ImageRecord } from '../image/store.js';
import { creationTime, writeImage } from '../image/write.js';
import { hostPlatform, parsePlatform } from '../oci/platform.js';
import type { Digest, ImageConfig, Platform } from '../oci/types.js';
import { fullDockerConfig, imageDockerConfig } from '../container/config.js';
import { formatReference, parseNormalized, parseReference, repositoryName, tagName, familiarName, familiarString, type Reference } from '../reference/reference.js';
import type { Stores } from '../stores.js';
import type { LoadProgress } from '../transport/archive-load.js';
import { parseArchiveFormat, type LayerCompression } from '../transport/types.js';
import type { PullResult as TransportPullResult, PushResult } from '../transport/distribution.js';
import { Filters, globMatch, labelsMatch, type FilterInput } from './filters.js';
import { progressMessages } from './progress.js';
import type { ImageDeleteItem, ImageHistoryItem, ImageInspect, ImageSummary, ImagesPruneResponse, ProgressMessage } from './types.js';

export type { LoadProgress, PushResult };
export { parseArchiveFormat };

export interface ImportOptions {
  /** Dockerfile instructions applied to the config (docker import --change). */
  changes?: string[];
  message?: string;
  platform?: string;
  /** Name to give the image (REPOSITORY[:TAG]). */
  reference?: string;
  /** What the input was, for the history comment ('-' for stdin, or the URL). */
  sourceName?: string;
}

export interface PullOptions {
  /** os[/arch[/variant]] of the image to pick from an index (default: the host's). */
  platform?: string;
  tlsVerify?: boolean;
  parallel?: number;
  onProgress?: (m: ProgressMessage) => void;
  /** Credentials for the registry (an API client's X-Registry-Auth); null: anonymous; undefined: the stored login. */
  credentials?: Credentials | null;
}

export interface PullResult extends TransportPullResult {
  /** The full reference pulled ('docker.io/library/busybox:latest'). */
  name: string;
}

export interface PushOptions {
  /**
   * The layers' format at the registry (podman's --compression-format). Default: gzip for uncompressed layers,
   * compressed layers (pulled ones) as they are; given explicitly, every layer is converted to it.
   */
  compressionFormat?: LayerCompression;
  /** gzip 0-9 (default: each block's level adapted to how fast the registry takes them, 1-9), zstd 1-22 (default 3). */
  compressionLevel?: number;
  tlsVerify?: boolean;
  parallel?: number;
  onProgress?: (m: ProgressMessage) => void;
  /** Credentials for the registry (an API client's X-Registry-Auth); null: anonymous; undefined: the stored login. */
  credentials?: Credentials | null;
}

/** When to pull an image a container or a build needs: docker's `--pull` policies. */
export type PullPolicy = 'missing' | 'always' | 'never';

export interface ListImagesOptions {
  /** Intermediate images too (untagged parents of other images). */
  all?: boolean;
  /** reference, dangling, label, before, since. */
  filters?: FilterInput;
}

export interface LoadResult {
  images: { Id: Digest; RepoTags: string[] }[];
  /** Names that pointed at another image before (docker: "renaming the old one … to empty string"). */
  renamed: { name: string; oldId: Digest }[];
}

/** An archive ready to be written: the images are resolved (and the format checked) before any byte is. */
export interface PendingSave {
  writeTo(out: Writable): Promise<void>;
}

const IMAGE_FILTERS = ['reference', 'dangling', 'label', 'before', 'since'] as const;

/** The display form of a stored name: 'ubuntu:latest', 'localhost:5000/x:v1'. */
const display = (name: string) => ImageStore.display(name);

/** When the image says it was made (ms), else when it was stored. */
function createdMs(rec: ImageRecord): number {
  return rec.created ? Date.parse(rec.created) : rec.added;
}

export class ImageService {
  constructor(private readonly stores: Stores) {}

  private get store(): ImageStore {
    return this.stores.images;
  }

  /** Logs an image event as dockerd does: the image's labels, then `name`, as attributes. */
  private event(action: string, actorId: string, name: string, rec?: ImageRecord): void {
    let labels: Record<string, string> = {};
    try {
      if (rec) labels = this.store.config(rec).config?.Labels ?? {};
    } catch {
      // a config that cannot be read has no labels to report
    }
    this.stores.events.emit('image', action, actorId, { ...labels, name });
  }

  /** An image by name, ID (or prefix) or repo@digest; NotFoundError when there is none. */
  get(ref: string): ImageRecord {
    return this.store.resolve(ref);
  }

  lookup(ref: string): ImageRecord | undefined {
    return this.store.lookup(ref);
  }

  config(rec: ImageRecord): ImageConfig {
    return this.store.config(rec);
  }

  /** Turns a filesystem tar (plain, gzip, zstd, xz, bzip2) into a one-layer image. */
  async import(source: Readable | AsyncIterable<Buffer>, opts: ImportOptions = {}): Promise<ImageRecord> {
    // Validate everything the user typed before reading a byte.
    const name = opts.reference ? tagName(opts.reference) : undefined;
    const platform: Platform = opts.platform ? parsePlatform(opts.platform) : hostPlatform();
    const containerConfig = applyChanges({}, opts.changes ?? []);
    const { ingestLayer } = await import('../layer/ingest.js');
    return this.store.withLease(async (lease) => {
      const layer = await ingestLayer(this.stores.content, source, { key: `import-${process.pid}-${randomBytes(4).toString('hex')}`, lease });
      const created = creationTime();
      const comment = opts.message || `Imported from ${opts.sourceName ?? '-'}`;
      const config: ImageConfig = {
        architecture: platform.architecture,
        ...(platform.variant ? { variant: platform.variant } : {}),
        os: platform.os,
        comment,
        config: containerConfig,
        created,
        history: [{ created, comment }],
        rootfs: { type: 'layers', diff_ids: [layer.diffId] },
      };
      const rec = await writeImage(this.store, lease, { config, layers: [layer] });
      if (name) this.store.setName(name, rec.digest);
      if (name) this.event('tag', rec.id, display(name), rec);
      this.event('import', rec.id, name ? display(name) : rec.id, rec);
      return rec;
    });
  }

  /**
   * Pulls `ref` into the store (pull = copy registry → store), reporting docker's messages: 'Pulling from',
   * each layer's progress, 'Digest: …' and 'Status: …'.
   */
  async pull(ref: string, opts: PullOptions = {}): Promise<PullResult> {
    const r = parseNormalized(ref);
    const emit = opts.onProgress ?? (() => undefined);
    emit({ id: r.digest ?? r.tag, status: `Pulling from ${r.path}` });
    const messages = progressMessages('pull', emit);
    const { pullImage } = await import('../transport/distribution.js');
    const res = await pullImage(this.store, ref, { platform: opts.platform, tlsVerify: opts.tlsVerify, parallel: opts.parallel, onProgress: messages.onEvent, credentials: opts.credentials });
    const shown = familiarString({ ...r, digest: r.tag ? undefined : r.digest });
    this.event('pull', familiarString(r), familiarName(r), res.image);
    emit({ status: `Digest: ${res.digest}` });
    emit({ status: res.updated || messages.fetched() > 0 ? `Status: Downloaded newer image for ${shown}` : `Status: Image is up to date for ${shown}` });
    return { ...res, name: formatReference(r) };
  }

  /** The references `pull --all-tags` pulls: every tag the registry lists for the repository. */
  async registryTags(repository: string, opts: { tlsVerify?: boolean } = {}): Promise<string[]> {
    const r = parseNormalized(repository);
    if (r.digest || /:[^/]+$/.test(repository)) throw new InvalidArgumentError("tag can't be used with --all-tags/-a");
    const { listTags } = await import('../transport/registry.js');
    return (await listTags(r, { tlsVerify: opts.tlsVerify })).map((t) => formatReference({ ...r, tag: t }));
  }

  /**
   * The image `ref` names, pulled first when the policy says so: docker's `--pull missing|always|never` for
   * run/create, and the builder's FROM. `onPull` hears of a pull before it starts.
   */
  async ensure(ref: string, opts: { pull?: PullPolicy; platform?: string; onPull?: (why: 'missing' | 'always') => void; onProgress?: (m: ProgressMessage) => void } = {}): Promise<{ image: ImageRecord; pulled?: PullResult }> {
    const policy = opts.pull ?? 'missing';
    const local = policy === 'always' ? undefined : this.store.lookup(ref);
    if (local) return { image: local };
    if (policy === 'never') throw new NotFoundError(`No such image: ${ref}`);
    opts.onPull?.(policy === 'always' ? 'always' : 'missing');
    const pulled = await this.pull(ref, { platform: opts.platform, onProgress: opts.onProgress });
    return { image: pulled.image, pulled };
  }

  /** Pushes a local image to the registry its name says (push = copy store → registry). */
  async push(ref: string, opts: PushOptions = {}): Promise<PushResult> {
    const r = parseNormalized(ref);
    const emit = opts.onProgress ?? (() => undefined);
    if (!r.digest && !this.store.lookup(formatReference(r))) throw new InvalidArgumentError(`An image does not exist locally with the tag: ${ref}`);
    emit({ status: `The push refers to repository [${repositoryName(r)}]` });
    const messages = progressMessages('push', emit);
    const { pushImage } = await import('../transport/distribution.js');
    const res = await pushImage(this.store, ref, {
      tlsVerify: opts.tlsVerify,
      parallel: opts.parallel,
      compressionFormat: opts.compressionFormat,
      compressionLevel: opts.compressionLevel,
      onProgress: messages.onEvent,
      credentials: opts.credentials,
    });
    this.event('push', familiarString(r), familiarName(r), this.store.lookup(ref));
    return res;
  }

  /** The local names `push --all-tags` pushes: every tag of the repository, sorted. */
  localTags(repository: string): string[] {
    const r0 = parseReference(repository);
    if (r0.tag || r0.digest) throw new InvalidArgumentError("tag can't be used with --all-tags/-a");
    const repo = repositoryName(r0);
    const refs = [...this.store.names().values()].flat().filter((n) => n.startsWith(`${repo}:`)).sort();
    if (refs.length === 0) throw new InvalidArgumentError(`An image does not exist locally with the tag: ${repository}`);
    return refs;
  }

  tag(source: string, target: string): void {
    // docker's ParseAnyReference: an image ID (full, or a digest) or a name, checked before the target.
    if (!/^(?:sha256:)?[a-f0-9]{64}$|^sha384:[a-f0-9]{96}$|^sha512:[a-f0-9]{128}$/.test(source)) parseReference(source);
    const name = tagName(target);
    const rec = this.store.resolve(source);
    this.store.setName(name, rec.digest);
    this.event('tag', rec.id, display(name), rec);
  }

  /** docker rmi: untag; delete an image when its last name goes (refusing ambiguous deletes unless forced). */
  remove(ref: string, opts: { force?: boolean } = {}): ImageDeleteItem[] {
    const images = this.store;
    const rec = images.resolve(ref);
    const names = images.namesOf(rec.digest);
    let byName: string | undefined;
    try {
      const parsed = parseReference(ref);
      if (!parsed.digest) byName = formatReference(parseNormalized(ref));
    } catch {
      byName = undefined;
    }
    const untag = byName && names.includes(byName) ? [byName] : names;
    if (!(byName && names.includes(byName)) && names.length > 1 && !opts.force) {
      throw new ConflictError(
        `conflict: unable to delete ${rec.id.slice(7, 19)} (must be forced) - image is referenced in multiple repositories`,
      );
    }
    const lastName = untag.length === names.length;
    const users = lastName ? this.stores.containers.usingImage(rec.digest) : [];
    if (users.length > 0 && !opts.force) {
      const what = untag.length === 1 && byName ? `remove repository reference "${ref}"` : `delete ${rec.id.slice(7, 19)}`;
      throw new ConflictError(
        `conflict: unable to ${what} (must force) - container ${users[0]!.id.slice(0, 12)} is using its referenced image ${rec.id.slice(7, 19)}`,
      );
    }
    for (const n of untag) {
      images.removeName(n);
      this.event('untag', rec.id, display(n), rec);
    }
    const untagged: ImageDeleteItem[] = untag.map((n) => ({ Untagged: display(n) }));
    // An image a container still uses stays (dangling) until the container goes, as docker keeps it.
    if (!lastName || users.length > 0) return untagged;
    this.event('delete', rec.id, rec.id, rec);
    const { images: deletedImages, blobs } = images.deleteImages(this.sameIdImages(rec));
    this.stores.snapshots.prune(images.usedChainIds());
    return [...untagged, ...[...deletedImages, ...blobs.filter((b) => b !== rec.id)].map((d) => ({ Deleted: d }))];
  }

  /** Every manifest that shares this image's ID and has no name (docker treats them as one image). */
  private sameIdImages(rec: ImageRecord): string[] {
    return this.store
      .list()
      .filter((i) => i.id === rec.id && this.store.namesOf(i.digest).length === 0)
      .map((i) => i.digest);
  }

  /** docker image prune: dangling images, or with `all` every image no container uses. */
  prune(opts: { all?: boolean; filters?: FilterInput } = {}): ImagesPruneResponse {
    ImageService.checkPruneFilters(opts.filters);
    const images = this.store;
    const untagged: ImageDeleteItem[] = [];
    const names = images.names();
    const candidates: string[] = [];
    const before = this.stores.content.totalSize();
    const inUse = new Set(this.stores.containers.list().map((c) => c.image));
    const cache = this.buildCacheImages();
    for (const img of images.list()) {
      if (inUse.has(img.digest)) continue;
      const n = names.get(img.digest) ?? [];
      // The build cache's intermediate steps are not dangling images: `builder prune` empties the cache. (An
      // untagged build's result is: it has no child, as docker's dangling heads.)
      if (n.length === 0 && cache.has(img.digest) && images.hasChild(img)) continue;
      if (n.length > 0 && !opts.all) continue;
      if (n.length === 0 && images.hasChild(img) && !opts.all) continue;
      for (const name of n) {
        images.removeName(name);
        untagged.push({ Untagged: display(name) });
        this.event('untag', img.id, display(name), img);
      }
      this.event('delete', img.id, img.id, img);
      candidates.push(img.digest);
    }
    const { images: deleted, blobs } = images.deleteImages(candidates);
    this.stores.snapshots.prune(images.usedChainIds());
    const gone = [...deleted, ...blobs.filter((b) => !deleted.includes(b))];
    return { ImagesDeleted: [...untagged, ...gone.map((d) => ({ Deleted: d }))], SpaceReclaimed: before - this.stores.content.totalSize() };
  }

  /** Prune filters are refused until ply has them (checked before a face asks for confirmation). */
  static checkPruneFilters(filters: FilterInput | undefined): void {
    if (filters && hasFilters(filters)) throw new InvalidArgumentError('image prune --filter is not supported yet');
  }

  /**
   * docker images: newest first; untagged parents of other images hidden unless `all`. A reference filter
   * (Go's path.Match on 'repo' or 'repo:tag') keeps only the matching names of an image.
   */
  list(opts: ListImagesOptions = {}): ImageSummary[] {
    const images = this.store;
    const filters = Filters.parse(opts.filters, IMAGE_FILTERS);
    const dangling = filters.bool('dangling');
    const bound = (k: 'before' | 'since') => {
      const v = filters.get(k);
      return v.length ? images.resolve(v[v.length - 1]!) : undefined;
    };
    const before = bound('before');
    const since = bound('since');
    const references = filters.get('reference');
    const allNames = images.names();
    const allRepoDigests = images.repoDigests();
    const records = images.list().sort((a, b) => createdMs(b) - createdMs(a) || b.added - a.added);
    const cache = this.buildCacheImages();
    const out: ImageSummary[] = [];
    for (const rec of records) {
      const names = allNames.get(rec.digest) ?? [];
      const isDangling = names.length === 0;
      // The build cache's untagged intermediate steps are the cache, not images (as BuildKit's): not listed, even with -a
      // or dangling=true, so `rmi $(ply images -qf dangling=true)` leaves the cache alone (system df counts it).
      if (isDangling && cache.has(rec.digest) && images.hasChild(rec)) continue;
      if (dangling !== undefined && dangling !== isDangling) continue;
      if (isDangling && !opts.all && dangling === undefined && images.hasChild(rec)) continue;
      if (before && createdMs(rec) >= createdMs(before)) continue;
      if (since && createdMs(rec) <= createdMs(since)) continue;
      let config: Readonly<ImageConfig> | undefined;
      const labels = () => (config ??= images.configView(rec)).config?.Labels ?? null;
      if (filters.has('label') && !labelsMatch(filters, labels())) continue;
      const content = this.stores.content;
      const descriptor = () => ({ mediaType: rec.mediaType, digest: rec.digest, size: content.info(rec.digest).size });
      let tags = names.map(display);
      if (references.length > 0) {
        if (isDangling) continue;
        tags = tags.filter((t) => {
          const i = t.lastIndexOf(':');
          const repo = i > t.lastIndexOf('/') ? t.slice(0, i) : t;
          return references.some((p) => globMatch(p, repo) || globMatch(p, t));
        });
        if (tags.length === 0) continue;
      }
      out.push({
        Id: rec.id,
        ParentId: rec.parent ?? '',
        RepoTags: tags,
        RepoDigests: (allRepoDigests.get(rec.digest) ?? []).map(display),
        Created: Math.floor(createdMs(rec) / 1000),
        Size: rec.size,
        SharedSize: -1,
        get Labels() {
          return labels();
        },
        Containers: -1,
        get Descriptor() {
          return descriptor();
        },
      });
    }
    return out;
  }

  /** docker image inspect's JSON. */
  inspect(ref: string): ImageInspect {
    const rec = this.store.lookup(ref);
    if (!rec) throw new NotFoundError(`No such image: ${ref}`);
    return this.inspectRecord(rec);
  }

  inspectRecord(rec: ImageRecord): ImageInspect {
    const images = this.store;
    const cfg = images.config(rec);
    const c = cfg.config ?? {};
    const tagTime = images.lastTagTime(rec.digest);
    return {
      Id: rec.id,
      RepoTags: images.namesOf(rec.digest).map(display),
      RepoDigests: images.repoDigestsOf(rec.digest).map(display),
      Parent: rec.parent ?? '',
      Comment: cfg.comment ?? '',
      Created: cfg.created ? rfc3339Nano(cfg.created) : '0001-01-01T00:00:00Z',
      Container: cfg.container ?? '',
      ContainerConfig: fullDockerConfig(cfg.container_config),
      DockerVersion: cfg.docker_version ?? '',
      Author: cfg.author ?? '',
      Config: imageDockerConfig(c),
      Architecture: cfg.architecture,
      ...(cfg.variant ? { Variant: cfg.variant } : {}),
      Os: cfg.os,
      Size: rec.size,
      VirtualSize: rec.size,
      GraphDriver: { Data: null, Name: 'overlayfs' },
      RootFS: { Type: 'layers', Layers: cfg.rootfs.diff_ids },
      Metadata: { LastTagTime: tagTime ? rfc3339Nano(new Date(tagTime)) : '0001-01-01T00:00:00Z' },
      Descriptor: { mediaType: rec.mediaType, digest: rec.digest, size: this.stores.content.info(rec.digest).size },
    };
  }

  /** docker history: one entry per history item, newest first; sizes are the layers' unpacked sizes. */
  history(ref: string): ImageHistoryItem[] {
    const images = this.store;
    const rec = images.resolve(ref);
    const config = images.config(rec);
    const layers = images.layers(rec);
    let layerIndex = 0;
    const items: ImageHistoryItem[] = (config.history ?? []).map((h) => ({
      Id: '<missing>',
      Created: h.created ? Math.floor(Date.parse(h.created) / 1000) : 0,
      CreatedBy: h.created_by ?? '',
      Tags: null,
      Size: h.empty_layer ? 0 : (layers[layerIndex++]?.unpackedSize ?? 0),
      Comment: h.comment ?? '',
    }));
    items.reverse();
    if (items.length === 0) items.push({ Id: '', Created: 0, CreatedBy: '', Tags: null, Size: 0, Comment: '' });
    // As docker's daemon: the rows from the top take the IDs (and tags) of the image and its parents, as far as
    // the parent chain goes; the build cache's untagged images end it, as BuildKit records no parents.
    const cache = this.buildCacheImages();
    let img: ImageRecord | undefined = rec;
    for (const item of items) {
      if (!img) break;
      const names = images.namesOf(img.digest);
      if (img !== rec && names.length === 0 && cache.has(img.digest)) break;
      item.Id = img.id;
      item.Tags = names.map(display);
      img = img.parent ? images.lookup(img.parent) : undefined;
    }
    return items;
  }

  /**
   * docker save: `refs` resolved as docker does ('repo' alone is every tag of it), the images written as one
   * archive (docker-archive and OCI layout in one tar, or `format` 'docker' / 'oci' alone).
   */
  async save(refs: string[], opts: { format?: string } = {}): Promise<PendingSave> {
    const { resolveSave, saveImages } = await import('../transport/archive.js');
    const format = parseArchiveFormat(opts.format);
    const items = resolveSave(this.store, refs);
    return {
      writeTo: async (out) => {
        await saveImages(this.store, items, out, { format });
        for (const rec of new Map(items.map((i) => [i.image.id, i.image])).values()) this.event('save', rec.id, rec.id, rec);
      },
    };
  }

  /** docker load: a docker-archive or OCI layout, as a tar stream or an unpacked layout directory. */
  async load(input: Readable | AsyncIterable<Buffer> | { directory: string }, opts: { onProgress?: (e: LoadProgress) => void } = {}): Promise<LoadResult> {
    const { loadArchive, loadDirectory } = await import('../transport/archive-load.js');
    const r = 'directory' in input ? await loadDirectory(this.store, input.directory, opts) : await loadArchive(this.store, input, opts);
    for (const i of r.images) this.event('load', i.id, i.names[0] ? display(i.names[0]) : i.id, this.store.lookup(i.id));
    return {
      images: r.images.map((i) => ({ Id: i.id, RepoTags: i.names.map(display) })),
      renamed: r.renamed.map((x) => ({ name: display(x.name), oldId: x.oldId })),
    };
  }

  /** Images the build cache keeps (untagged intermediate images are not "dangling" for df). */
  buildCacheImages(): Set<string> {
    return new Set(new BuildCache(this.stores.db).images());
  }
}

function hasFilters(f: FilterInput): boolean {
  if (Array.isArray(f)) return f.length > 0;
  if (f instanceof Map) return f.size > 0;
  return Object.keys(f).length > 0;
}

export type { Reference };
