// The engine's system verbs: version, info, disk usage, check (and repair) of the store, prune of everything unused.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Problem } from '../system/check.js';
import type { Leftovers } from '../system/leftovers.js';
import type { Stores } from '../stores.js';
import { dirSize } from '../util/fs.js';
import type { ContainerService } from './containers.js';
import type { ImageService } from './images.js';
import type { BuildService } from './build.js';
import type { VolumeService } from './volumes.js';
import type { NetworkService } from './networks.js';
import type { DiskUsage, ImageDeleteItem, SystemInfo, VersionInfo } from './types.js';
import { defaultRuntimeVersion, versionInfo } from './version.js';
import { defaultRuntimeName, type RuntimeVersion } from '../runtime/version.js';
import { streamEvents, type EventsOptions } from './events.js';
import type { EventMessage } from '../events/log.js';

export type { Problem };

export interface SystemPruneResponse {
  ContainersDeleted: string[];
  NetworksDeleted: string[];
  ImagesDeleted: ImageDeleteItem[];
  VolumesDeleted: string[];
  CachesDeleted: string[];
  SpaceReclaimed: number;
}

/** The distribution's name as docker info shows it (os-release's PRETTY_NAME), else the kernel's. */
function osName(): string {
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(fs.readFileSync('/etc/os-release', 'utf8'));
    if (m?.[1]) return m[1];
  } catch {
    // no os-release
  }
  return os.type();
}

export class SystemService {
  constructor(
    private readonly stores: Stores,
    private readonly verbs: { images: ImageService; containers: ContainerService; volumes: VolumeService; networks: NetworkService; builder: BuildService },
  ) {}

  version(): VersionInfo {
    return versionInfo();
  }

  /**
   * A stable identifier of this engine (docker info's ID): made once per store and kept in it, so every face and
   * every restart reports the same one.
   */
  id(): string {
    const file = path.join(this.stores.root, 'engine-id');
    try {
      return fs.readFileSync(file, 'utf8').trim();
    } catch {
      const id = randomUUID();
      fs.writeFileSync(`${file}.tmp`, `${id}\n`, { mode: 0o600 });
      fs.renameSync(`${file}.tmp`, file);
      return fs.readFileSync(file, 'utf8').trim();
    }
  }

  /** The default OCI runtime's own version (`runc --version`), asked once per binary; undefined when it is missing. */
  runtimeVersion(): RuntimeVersion | undefined {
    return defaultRuntimeVersion(this.stores.root);
  }

  /** The storage driver new containers get: overlayfs, or vfs where overlayfs cannot be mounted. */
  storageDriver(): 'overlayfs' | 'vfs' {
    return this.stores.snapshots.forNew().name;
  }

  /** docker info's fields ply has. */
  info(): SystemInfo {
    const containers = this.verbs.containers.all();
    const du = this.diskUsage(containers);
    const v = versionInfo();
    return {
      Containers: containers.length,
      ContainersRunning: containers.filter((c) => c.state === 'running').length,
      ContainersPaused: containers.filter((c) => c.state === 'paused').length,
      ContainersStopped: containers.filter((c) => c.state !== 'running' && c.state !== 'paused').length,
      Images: du.images.total,
      DanglingImages: du.dangling,
      Driver: this.storageDriver(),
      DockerRootDir: this.stores.root,
      DefaultRuntime: defaultRuntimeName(),
      KernelVersion: os.release(),
      OperatingSystem: osName(),
      OSType: 'linux',
      Architecture: v.Arch,
      NCPU: os.cpus().length,
      MemTotal: os.totalmem(),
      Name: os.hostname(),
      ServerVersion: v.Version,
    };
  }

  /** Sizes for `system df`: layers shared by several images count once; "active" is what containers use. */
  diskUsage(all = this.verbs.containers.all()): DiskUsage {
    const { images: store } = this.stores;
    const list = store.list();
    const names = store.names();
    const usedImages = new Set(all.map((c) => c.image));
    const cacheImages = this.verbs.images.buildCacheImages();
    const layerSize = new Map<string, number>();
    const usedLayers = new Set<string>();
    const imageLayers = new Set<string>();
    for (const { image: img, layers } of store.allLayers()) {
      const cacheOnly = cacheImages.has(img.digest) && !names.has(img.digest);
      for (const l of layers) {
        layerSize.set(l.digest, l.unpackedSize);
        if (!cacheOnly) imageLayers.add(l.digest);
        if (usedImages.has(img.digest)) usedLayers.add(l.digest);
      }
    }
    const sum = (keys: Iterable<string>) => [...keys].reduce((n, k) => n + (layerSize.get(k) ?? 0), 0);
    const cacheLayers = [...layerSize.keys()].filter((k) => !imageLayers.has(k));
    const volumes = this.stores.volumes.list();
    const usedVolumes = new Set(all.flatMap((c) => c.spec.mounts.filter((m) => m.type === 'volume').map((m) => m.source!)));
    const volumeSize = new Map(volumes.map((v) => [v.name, dirSize(this.stores.volumes.dataPath(v.name))]));
    const upper = new Map(all.map((c) => [c.id, this.verbs.containers.writableLayerSize(c)]));
    const isRunning = (c: (typeof all)[number]) => this.verbs.containers.isRunning(c);
    return {
      images: {
        total: list.filter((i) => !(cacheImages.has(i.digest) && !names.has(i.digest))).length,
        active: usedImages.size,
        size: sum(imageLayers),
        reclaimable: sum([...imageLayers].filter((k) => !usedLayers.has(k))),
      },
      dangling: list.filter((i) => !names.has(i.digest) && !cacheImages.has(i.digest)).length,
      containers: {
        total: all.length,
        active: all.filter(isRunning).length,
        size: [...upper.values()].reduce((a, b) => a + b, 0),
        reclaimable: all.filter((c) => !isRunning(c)).reduce((n, c) => n + (upper.get(c.id) ?? 0), 0),
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

  /**
   * docker events: what happened (containers, images, volumes, networks) between `since` and `until`, then live
   * until `until` passes or `signal` aborts; any ply process's events. Bad times or filters throw here, before
   * the first event.
   */
  events(opts: EventsOptions = {}): AsyncIterable<EventMessage> {
    return streamEvents(this.stores.events, opts);
  }

  /** ply system check: verifies blobs, images, unpacked layers, containers, mounts, ingests; `repair` removes what is broken. */
  async check(opts: { repair?: boolean } = {}): Promise<Problem[]> {
    const { checkStore } = await import('../system/check.js');
    return checkStore(this.stores, opts);
  }

  /**
   * docker system prune: stopped containers, networks no running container is attached to, unused images
   * (dangling, or all), build cache, and with `volumes` unused anonymous volumes.
   */
  async prune(opts: { all?: boolean; volumes?: boolean } = {}): Promise<SystemPruneResponse> {
    // Leftovers of interrupted work first: a killed build's containers no longer keep their images.
    const left = await this.reclaimLeftovers();
    const c = this.verbs.containers.prune();
    const n = this.verbs.networks.prune();
    const v = opts.volumes ? this.verbs.volumes.prune() : { VolumesDeleted: [], SpaceReclaimed: 0 };
    const i = this.verbs.images.prune({ all: opts.all });
    const b = await this.verbs.builder.prune({ all: opts.all });
    return {
      ContainersDeleted: c.ContainersDeleted,
      NetworksDeleted: n.NetworksDeleted,
      ImagesDeleted: i.ImagesDeleted,
      VolumesDeleted: v.VolumesDeleted,
      CachesDeleted: b.CachesDeleted,
      SpaceReclaimed: left.reclaimed + c.SpaceReclaimed + v.SpaceReclaimed + i.SpaceReclaimed + b.SpaceReclaimed,
    };
  }

  /** What interrupted work left (partial downloads, killed builds' work dirs and RUN containers): removed. */
  async reclaimLeftovers(): Promise<Leftovers> {
    const { reclaimLeftovers } = await import('../system/leftovers.js');
    return reclaimLeftovers(this.stores, (id) => this.verbs.containers.remove(id, { force: true, volumes: true }));
  }
}
