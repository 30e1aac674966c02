// The engine: ply's library API. The CLI is a thin shell over this; TypeScript programs can use it directly.
import fs from 'node:fs';
import type { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { BuildCache } from './builder/cache.js';
import type { ContentStore } from './content/store.js';
import type { DB } from './db/db.js';
import { ConflictError } from './errors.js';
import { applyChanges } from './image/changes.js';
import type { ImageRecord, ImageStore } from './image/store.js';
import type { ContainerStore } from './container/store.js';
import { ContainerManager } from './container/manager.js';
import type { Snapshotter } from './snapshot/overlay.js';
import type { Networks } from './network/index.js';
import { creationTime, hostPlatform, parsePlatform, writeImage } from './image/write.js';
import { ingestLayer } from './layer/ingest.js';
import { dirSize } from './util/fs.js';
import type { Digest, ImageConfig, Platform } from './oci/types.js';
import { formatReference, parseNormalized, parseReference, tagName } from './reference/reference.js';
import { defaultRoot, openStores, type Stores } from './stores.js';
import type { VolumeStore } from './volume/store.js';

export { ImageStore, type ImageRecord } from './image/store.js';
export * from './errors.js';

export const VERSION = '0.1.0';

export interface EngineOptions {
  /** Store root; default $PLY_ROOT, else /var/lib/ply as root, else $XDG_DATA_HOME/ply. */
  root?: string;
}

export { defaultRoot, openStores, type Stores } from './stores.js';

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

export interface UsageRow {
  total: number;
  active: number;
  size: number;
  reclaimable: number;
}

export interface DiskUsage {
  images: UsageRow;
  containers: UsageRow;
  volumes: UsageRow;
  buildCache: UsageRow;
  dangling: number;
}

export type { PullOptions, PullResult, PushOptions, PushResult } from './transport/distribution.js';
import type { PullOptions, PullResult, PushOptions, PushResult } from './transport/distribution.js';

export interface RemoveResult {
  untagged: string[];
  deleted: Digest[];
}

export class Engine {
  readonly root: string;
  readonly db: DB;
  readonly content: ContentStore;
  readonly images: ImageStore;
  readonly snapshots: Snapshotter;
  readonly containers: ContainerStore;
  readonly volumes: VolumeStore;
  readonly manager: ContainerManager;
  readonly networks: Networks;

  private constructor(readonly stores: Stores & { close(): void }) {
    ({ root: this.root, db: this.db, content: this.content, images: this.images, snapshots: this.snapshots, containers: this.containers, volumes: this.volumes, networks: this.networks } = stores);
    this.manager = new ContainerManager(stores);
  }

  static open(opts: EngineOptions = {}): Engine {
    return new Engine(openStores(opts.root ?? defaultRoot()));
  }

  close(): void {
    this.stores.close();
  }

  /** Turns a filesystem tar (plain, gzip, zstd, xz, bzip2) into a one-layer image. */
  async importImage(source: Readable | AsyncIterable<Buffer>, opts: ImportOptions = {}): Promise<ImageRecord> {
    // Validate everything the user typed before reading a byte.
    const name = opts.reference ? this.nameForTag(opts.reference) : undefined;
    const platform: Platform = opts.platform ? parsePlatform(opts.platform) : hostPlatform();
    const containerConfig = applyChanges({}, opts.changes ?? []);
    return this.images.withLease(async (lease) => {
      const layer = await ingestLayer(this.content, source, { key: `import-${process.pid}-${randomBytes(4).toString('hex')}`, lease });
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
      const rec = await writeImage(this.images, lease, { config, layers: [layer] });
      if (name) this.images.setName(name, rec.digest);
      return rec;
    });
  }

  /** Parses a name to tag with (REPOSITORY[:TAG], tag defaults to latest); digests are refused. */
  nameForTag(ref: string): string {
    return tagName(ref);
  }

  resolveImage(ref: string): ImageRecord {
    return this.images.resolve(ref);
  }

  tag(source: string, target: string): void {
    const name = this.nameForTag(target);
    const rec = this.images.resolve(source);
    this.images.setName(name, rec.digest);
  }

  /** docker rmi: untag; delete an image when its last name goes (refusing ambiguous deletes unless forced). */
  removeImage(ref: string, opts: { force?: boolean } = {}): RemoveResult {
    const rec = this.images.resolve(ref);
    const names = this.images.namesOf(rec.digest);
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
    const users = lastName ? this.containers.usingImage(rec.digest) : [];
    if (users.length > 0 && !opts.force) {
      const what = untag.length === 1 && byName ? `remove repository reference "${ref}"` : `delete ${rec.id.slice(7, 19)}`;
      throw new ConflictError(
        `conflict: unable to ${what} (must force) - container ${users[0]!.id.slice(0, 12)} is using its referenced image ${rec.id.slice(7, 19)}`,
      );
    }
    for (const n of untag) this.images.removeName(n);
    // An image a container still uses stays (dangling) until the container goes, as docker keeps it.
    if (!lastName || users.length > 0) return { untagged: untag, deleted: [] };
    const { images, blobs } = this.images.deleteImages(this.sameIdImages(rec));
    this.pruneSnapshots();
    return { untagged: untag, deleted: [...images, ...blobs.filter((b) => b !== rec.id)] };
  }

  /** Removes unpacked layers that no remaining image uses. */
  pruneSnapshots(): number {
    return this.snapshots.prune(this.images.usedChainIds());
  }

  /** Every manifest that shares this image's ID and has no name (docker treats them as one image). */
  private sameIdImages(rec: ImageRecord): string[] {
    return this.images
      .list()
      .filter((i) => i.id === rec.id && this.images.namesOf(i.digest).length === 0)
      .map((i) => i.digest);
  }

  /** docker image prune: dangling images, or with `all` every image no container uses. */
  pruneImages(opts: { all?: boolean } = {}): { untagged: string[]; deleted: Digest[]; reclaimed: number } {
    const untagged: string[] = [];
    const names = this.images.names();
    const candidates: string[] = [];
    const before = this.blobBytes();
    const inUse = new Set(this.containers.list().map((c) => c.image));
    for (const img of this.images.list()) {
      if (inUse.has(img.digest)) continue;
      const n = names.get(img.digest) ?? [];
      if (n.length > 0 && !opts.all) continue;
      if (n.length === 0 && this.hasChild(img) && !opts.all) continue;
      for (const name of n) {
        this.images.removeName(name);
        untagged.push(name);
      }
      candidates.push(img.digest);
    }
    const { images, blobs } = this.images.deleteImages(candidates);
    this.pruneSnapshots();
    return { untagged, deleted: [...images, ...blobs.filter((b) => !images.includes(b))], reclaimed: before - this.blobBytes() };
  }

  /** Whether another image was built on this one (docker hides such untagged parents without -a). */
  hasChild(img: ImageRecord): boolean {
    return this.images.hasChild(img);
  }

  private blobBytes(): number {
    let n = 0;
    for (const d of this.content.list()) {
      try {
        n += fs.statSync(this.content.path(d)).size;
      } catch {
        // removed concurrently
      }
    }
    return n;
  }

  /** Sizes for `system df`: layers shared by several images count once; "active" is what containers use. */
  diskUsage(): DiskUsage {
    const list = this.images.list();
    const names = this.images.names();
    const containers = this.containers.list().map((c) => this.manager.refresh(c));
    const usedImages = new Set(containers.map((c) => c.image));
    const cacheImages = new Set(new BuildCache(this.db).images());
    const layerSize = new Map<string, number>();
    const usedLayers = new Set<string>();
    const imageLayers = new Set<string>();
    for (const { image: img, layers } of this.images.allLayers()) {
      const cacheOnly = cacheImages.has(img.digest) && !names.has(img.digest);
      for (const l of layers) {
        layerSize.set(l.digest, l.unpackedSize);
        if (!cacheOnly) imageLayers.add(l.digest);
        if (usedImages.has(img.digest)) usedLayers.add(l.digest);
      }
    }
    const sum = (keys: Iterable<string>) => [...keys].reduce((n, k) => n + (layerSize.get(k) ?? 0), 0);
    const cacheLayers = [...layerSize.keys()].filter((k) => !imageLayers.has(k));
    const volumes = this.volumes.list();
    const usedVolumes = new Set(containers.flatMap((c) => c.spec.mounts.filter((m) => m.type === 'volume').map((m) => m.source!)));
    const volumeSize = new Map(volumes.map((v) => [v.name, dirSize(this.manager.volumePath(v.name))]));
    const upper = new Map(containers.map((c) => [c.id, this.manager.writableLayerSize(c)]));
    const running = containers.filter((c) => this.manager.isRunning(c));
    return {
      images: {
        total: list.filter((i) => !(cacheImages.has(i.digest) && !names.has(i.digest))).length,
        active: usedImages.size,
        size: sum(imageLayers),
        reclaimable: sum([...imageLayers].filter((k) => !usedLayers.has(k))),
      },
      dangling: list.filter((i) => !names.has(i.digest) && !cacheImages.has(i.digest)).length,
      containers: {
        total: containers.length,
        active: running.length,
        size: [...upper.values()].reduce((a, b) => a + b, 0),
        reclaimable: containers.filter((c) => !this.manager.isRunning(c)).reduce((n, c) => n + (upper.get(c.id) ?? 0), 0),
      },
      volumes: {
        total: volumes.length,
        active: volumes.filter((v) => usedVolumes.has(v.name)).length,
        size: [...volumeSize.values()].reduce((a, b) => a + b, 0),
        reclaimable: volumes.filter((v) => !usedVolumes.has(v.name)).reduce((n, v) => n + (volumeSize.get(v.name) ?? 0), 0),
      },
      buildCache: { total: cacheImages.size, active: 0, size: sum(cacheLayers), reclaimable: sum(cacheLayers) },
    };
  }

  /** Pulls `ref` from its registry into the store (pull = copy registry → store). */
  async pull(ref: string, opts: PullOptions = {}): Promise<PullResult> {
    const { pullImage } = await import('./transport/distribution.js');
    return pullImage(this.images, ref, opts);
  }

  /** Pushes a local image to the registry its name says (push = copy store → registry). */
  async push(ref: string, opts: PushOptions = {}): Promise<PushResult> {
    const { pushImage } = await import('./transport/distribution.js');
    return pushImage(this.images, ref, opts);
  }

  config(rec: ImageRecord): ImageConfig {
    return this.images.config(rec);
  }
}

