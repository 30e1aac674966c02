// The engine's volume verbs (docker volume create, ls, inspect, rm, prune), in docker's shapes.
import fs from 'node:fs';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { Stores } from '../stores.js';
import { dirSize } from '../util/fs.js';
import { VOLUME_NAME_RE, type Volume } from '../volume/store.js';
import { Filters, labelsMatch, type FilterInput } from './filters.js';
import type { VolumeInfo, VolumesPruneResponse } from './types.js';

export class VolumeService {
  constructor(private readonly stores: Stores) {}

  /** docker volume create: a named volume (or an anonymous one without a name); an existing name is returned as it is. */
  create(opts: { name?: string; labels?: Record<string, string>; driver?: string; options?: Record<string, string> } = {}): VolumeInfo {
    if (opts.driver && opts.driver !== 'local') throw new NotFoundError(`create ${opts.name ?? ''}: error looking up volume plugin ${opts.driver}: plugin "${opts.driver}" not found`);
    if (opts.name !== undefined && !VOLUME_NAME_RE.test(opts.name)) {
      throw new InvalidArgumentError(`create ${opts.name}: "${opts.name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`);
    }
    // An existing name is returned as it is, whatever options were asked for (dockerd's rule).
    const existing = opts.name !== undefined ? this.stores.volumes.get(opts.name) : undefined;
    if (existing) return this.info(existing);
    const v = this.stores.volumes.ensure(opts.name, { anonymous: opts.name === undefined, labels: opts.labels, options: opts.options });
    fs.mkdirSync(this.stores.volumes.dataPath(v.name), { recursive: true, mode: 0o755 });
    return this.info(v);
  }

  inspect(name: string): VolumeInfo {
    return this.info(this.stores.volumes.resolve(name));
  }

  /** docker volume ls, with the name, label and dangling filters; `usage` adds each one's size and users (system df). */
  list(opts: { filters?: FilterInput; usage?: boolean } = {}): { Volumes: VolumeInfo[]; Warnings: string[] } {
    const filters = Filters.parse(opts.filters, ['name', 'label', 'dangling', 'driver']);
    const dangling = filters.bool('dangling');
    const used = this.usedVolumes();
    const Volumes = this.stores.volumes
      .list()
      .filter((v) => filters.match('name', (n) => v.name.includes(n)) && labelsMatch(filters, v.labels))
      .filter((v) => dangling === undefined || dangling !== used.has(v.name))
      .filter(() => filters.match('driver', (d) => d === 'local'))
      .map((v) => this.info(v));
    if (opts.usage) {
      const counts = new Map<string, number>();
      for (const c of this.stores.containers.list()) for (const m of c.spec.mounts) if (m.type === 'volume') counts.set(m.source!, (counts.get(m.source!) ?? 0) + 1);
      for (const v of Volumes) v.UsageData = { Size: dirSize(v.Mountpoint), RefCount: counts.get(v.Name) ?? 0 };
    }
    return { Volumes, Warnings: [] };
  }

  /** docker volume rm: refused while a container uses the volume, unless forced (docker refuses even then). */
  remove(name: string, opts: { force?: boolean } = {}): void {
    const v = this.stores.volumes.get(name);
    if (!v) {
      if (opts.force) return;
      this.stores.volumes.resolve(name);
      return;
    }
    const users = this.stores.containers.list().filter((c) => c.spec.mounts.some((m) => m.type === 'volume' && m.source === name));
    if (users.length > 0) throw new ConflictError(`remove ${name}: volume is in use - [${users.map((c) => c.id).join(', ')}]`);
    this.stores.volumes.remove(name);
  }

  /** docker volume prune: unused anonymous volumes (with `all`, unused named ones too). */
  prune(opts: { all?: boolean; filters?: FilterInput } = {}): VolumesPruneResponse {
    const filters = Filters.parse(opts.filters, ['label', 'all']);
    const all = opts.all || filters.bool('all') === true;
    const used = this.usedVolumes();
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const v of this.stores.volumes.list()) {
      if (used.has(v.name) || (!v.anonymous && !all) || !labelsMatch(filters, v.labels)) continue;
      reclaimed += dirSize(this.stores.volumes.dataPath(v.name));
      this.stores.volumes.remove(v.name);
      deleted.push(v.name);
    }
    return { VolumesDeleted: deleted, SpaceReclaimed: reclaimed };
  }

  /** Names of volumes some container (running or not) mounts. */
  usedVolumes(): Set<string> {
    return new Set(this.stores.containers.list().flatMap((c) => c.spec.mounts.filter((m) => m.type === 'volume').map((m) => m.source!)));
  }

  private info(v: Volume): VolumeInfo {
    return {
      Name: v.name,
      Driver: 'local',
      Mountpoint: this.stores.volumes.dataPath(v.name),
      // dockerd's: RFC 3339 to the second.
      CreatedAt: new Date(v.created).toISOString().replace(/\.\d+Z$/, 'Z'),
      Labels: v.labels && Object.keys(v.labels).length ? v.labels : null,
      Scope: 'local',
      Options: v.options ?? null,
    };
  }
}

