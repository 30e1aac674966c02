// The volume store: named and anonymous volumes (records in the metadata DB, data under volumes/<name>/_data).
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeTx, type DB } from '../db/db.js';
import { InvalidArgumentError, NotFoundError, PlyError } from '../errors.js';
import { isMounted, unmountIfMounted } from '../snapshot/mount.js';
import { removeTree } from '../util/fs.js';
import type { EventLog } from '../events/log.js';
import { needsMount, validateLocalOptions, VolumeMount } from './local.js';

export interface Volume {
  name: string;
  /** ms since the epoch. */
  created: number;
  /** Made for a container (`-v /path`, an image VOLUME): removed with it by `rm -v`. */
  anonymous: boolean;
  labels: Record<string, string>;
  /** The local driver's options (type, device, o): a filesystem mounted while containers use it (local.ts). */
  options?: Record<string, string>;
}

interface Row {
  name: string;
  created: number;
  anonymous: number;
  labels: string;
  options: string | null;
}

const toVolume = (r: Row): Volume => ({
  name: r.name,
  created: r.created,
  anonymous: r.anonymous === 1,
  labels: JSON.parse(r.labels) as Record<string, string>,
  ...(r.options ? { options: JSON.parse(r.options) as Record<string, string> } : {}),
});

/** docker's rule for local volume names. */
export const VOLUME_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export class VolumeStore {
  readonly dir: string;

  constructor(
    root: string,
    private readonly db: DB,
    /** Where volume create/destroy events go (docker logs them with the local driver). */
    private readonly events?: EventLog,
  ) {
    this.dir = path.join(root, 'volumes');
  }

  /** The directory a volume's data lives in (what containers mount). */
  dataPath(name: string): string {
    return path.join(this.dir, name, '_data');
  }

  /**
   * Records a volume unless it exists (a named one given by `-v name:/path` is made on first use, as docker); the
   * local driver's options of a new one are checked as dockerd checks them (an existing one keeps its own).
   */
  ensure(name: string | undefined, opts: { anonymous?: boolean; labels?: Record<string, string>; options?: Record<string, string> } = {}): Volume {
    const n = name ?? randomBytes(32).toString('hex');
    if (!VOLUME_NAME_RE.test(n)) throw new InvalidArgumentError(`invalid volume name: ${n}`);
    let options: string | null = null;
    if (opts.options && Object.keys(opts.options).length && !this.get(n)) {
      try {
        validateLocalOptions(opts.options);
      } catch (e) {
        throw new InvalidArgumentError(`create ${n}: ${(e as Error).message}`);
      }
      // Go prints a map with its keys in order.
      options = JSON.stringify(Object.fromEntries(Object.entries(opts.options).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));
    }
    const added = this.db
      .prepare('INSERT OR IGNORE INTO volumes (name, created, anonymous, labels, options) VALUES (?, ?, ?, ?, ?)')
      .run(n, Date.now(), opts.anonymous ? 1 : 0, JSON.stringify(opts.labels ?? {}), options);
    if (added.changes > 0) this.events?.emit('volume', 'create', n, { driver: 'local' });
    return this.get(n)!;
  }

  get(name: string): Volume | undefined {
    const r = this.db.prepare('SELECT * FROM volumes WHERE name = ?').get(name) as Row | undefined;
    return r && toVolume(r);
  }

  resolve(name: string): Volume {
    const v = this.get(name);
    if (!v) throw new NotFoundError(`get ${name}: no such volume`);
    return v;
  }

  list(): Volume[] {
    return (this.db.prepare('SELECT * FROM volumes ORDER BY name').all() as Row[]).map(toVolume);
  }

  /** Deletes the record, then the data (a crash in between leaves data that `ensure` + first use reuse). */
  remove(name: string): void {
    // A mount left by a crashed run goes first: deleting through it would delete a bind's host files.
    unmountIfMounted(this.dataPath(name));
    if (isMounted(this.dataPath(name))) throw new PlyError(`remove ${name}: its data directory is still mounted`);
    const gone = writeTx(this.db, () => this.db.prepare('DELETE FROM volumes WHERE name = ?').run(name));
    removeTree(path.join(this.dir, name));
    if (gone.changes > 0) this.events?.emit('volume', 'destroy', name, { driver: 'local' });
  }

  /**
   * A container's run starts using these volumes: those with mount options are mounted on their data directory
   * unless another running container holds them (all or none: a failure releases what was taken).
   */
  mountFor(containerId: string, names: string[]): void {
    const done: VolumeMount[] = [];
    try {
      for (const m of this.mountsOf(names)) {
        m.acquire(containerId);
        done.push(m);
      }
    } catch (e) {
      for (const m of done) m.release(containerId);
      throw e;
    }
  }

  /** The container's run ended: a volume no other running container holds is unmounted. */
  unmountFor(containerId: string, names: string[]): void {
    for (const m of this.mountsOf(names)) m.release(containerId);
  }

  /** Volumes still mounted though no container holds them (`system check`); `repair` unmounts them. */
  checkMounts(running: (containerId: string) => boolean, repair: boolean): string[] {
    return this.list()
      .filter((v) => needsMount(v.options) && this.mountsOf([v.name])[0]!.checkLeft(running, repair))
      .map((v) => v.name);
  }

  private mountsOf(names: string[]): VolumeMount[] {
    return [...new Set(names)].flatMap((n) => {
      const o = this.get(n)?.options;
      return needsMount(o) ? [new VolumeMount(path.join(this.dir, n), this.dataPath(n), o)] : [];
    });
  }

  /** Drops the record of an anonymous volume that was never used (its data was never made). */
  forgetAnonymous(name: string): void {
    this.db.prepare('DELETE FROM volumes WHERE name = ? AND anonymous = 1').run(name);
  }
}
