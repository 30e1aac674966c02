// docker's local volume driver options (`volume create -o type=tmpfs -o device=tmpfs -o o=size=1m`): a filesystem
// mounted on the volume's _data while a running container uses it, as dockerd's local driver does (mounted on first
// use, counted per container, unmounted when the last one stops). The count lives beside the data under a lock, so
// every ply process (CLI, monitors, the service) shares it.
import fs from 'node:fs';
import path from 'node:path';
import { pidAlive } from '../content/store.js';
import { InvalidArgumentError, PlyError } from '../errors.js';
import * as native from '../native/index.js';
import { isMounted, unmountIfMounted } from '../snapshot/mount.js';

/** The keys dockerd's local driver takes, and what each needs beside it (its `validOpts`, `mandatoryOpts`). */
const VALID = ['type', 'device', 'o', 'size'];
const REQUIRED: Record<string, string[]> = { device: ['type'], type: ['device'], o: ['device', 'type'] };

/** Refuses what dockerd refuses, in its words (the caller prefixes `create NAME: `). */
export function validateLocalOptions(opts: Record<string, string>): void {
  for (const k of Object.keys(opts)) if (!VALID.includes(k)) throw new InvalidArgumentError(`invalid option: ${JSON.stringify(k)}`);
  // `size` is a project quota of the volumes' filesystem (xfs with prjquota); ply's store has none.
  if ('size' in opts) throw new InvalidArgumentError('quota size requested but no quota support');
  for (const [k, needs] of Object.entries(REQUIRED)) {
    if (!(k in opts)) continue;
    for (const n of needs) if (!(n in opts)) throw new InvalidArgumentError(`missing required option: ${JSON.stringify(n)}`);
  }
}

/** Whether a volume's options ask for a mount (dockerd's needsMount). */
export function needsMount(opts: Record<string, string> | undefined): opts is Record<string, string> {
  return !!opts && (!!opts.device || !!opts.type);
}

/** moby/sys/mount's option words: [clears the flag?, flag]; anything else goes to the filesystem as data. */
const FLAGS: Record<string, [boolean, number]> = {
  defaults: [false, 0],
  ro: [false, 0x1],
  rw: [true, 0x1],
  suid: [true, 0x2],
  nosuid: [false, 0x2],
  dev: [true, 0x4],
  nodev: [false, 0x4],
  exec: [true, 0x8],
  noexec: [false, 0x8],
  sync: [false, 0x10],
  async: [true, 0x10],
  remount: [false, 0x20],
  mand: [false, 0x40],
  nomand: [true, 0x40],
  dirsync: [false, 0x80],
  atime: [true, 0x400],
  noatime: [false, 0x400],
  diratime: [true, 0x800],
  nodiratime: [false, 0x800],
  bind: [false, 0x1000],
  rbind: [false, 0x1000 | 0x4000],
  unbindable: [false, 0x20000],
  runbindable: [false, 0x20000 | 0x4000],
  private: [false, 0x40000],
  rprivate: [false, 0x40000 | 0x4000],
  slave: [false, 0x80000],
  rslave: [false, 0x80000 | 0x4000],
  shared: [false, 0x100000],
  rshared: [false, 0x100000 | 0x4000],
  relatime: [false, 0x200000],
  norelatime: [true, 0x200000],
  strictatime: [false, 0x1000000],
  nostrictatime: [true, 0x1000000],
};
const PROPAGATION = 0x20000 | 0x40000 | 0x80000 | 0x100000;

export function parseMountOptions(o: string): { flags: number; data: string } {
  let flags = 0;
  const data: string[] = [];
  for (const word of o.split(',')) {
    const f = FLAGS[word];
    if (f) flags = f[0] ? flags & ~f[1] : flags | f[1];
    else if (word !== '') data.push(word);
  }
  return { flags, data: data.join(',') };
}

/** mount(2) as moby/sys/mount does it (propagation and a read-only bind applied after), failures in its words. */
function mountLocal(opts: Record<string, string>, target: string): void {
  const device = opts.device ?? '';
  if (!device) throw new PlyError('missing device in volume options');
  const { flags, data } = parseMountOptions(opts.o ?? '');
  const plain = flags & ~PROPAGATION;
  const call = (src: string, fstype: string | null, f: number, d: string) => {
    try {
      native.mount(src, target, fstype, f, d || null);
    } catch (e) {
      const reason = /: ([^:]*)$/.exec((e as Error).message)?.[1] ?? (e as Error).message;
      let what = `mount ${src ? `${src}:` : ''}${target}`;
      if (f) what += `, flags: 0x${f.toString(16)}`;
      if (d) what += `, data: ${d}`;
      throw new PlyError(`failed to mount local volume: ${what}: ${reason.charAt(0).toLowerCase()}${reason.slice(1)}`);
    }
  };
  if (!(plain & native.MS_REMOUNT) || data) call(device, opts.type || null, plain, data);
  if (flags & PROPAGATION) call('', null, flags & (PROPAGATION | native.MS_REC), '');
  if ((plain & (native.MS_BIND | native.MS_RDONLY)) === (native.MS_BIND | native.MS_RDONLY)) call('', null, plain | native.MS_REMOUNT, '');
}

interface Holder {
  /** The container. */
  id: string;
  /** The process that runs it (its supervisor): a holder whose process is gone no longer counts. */
  pid: number;
}

/**
 * The mounts of one volume with options, counted by container: `acquire` mounts on the first, `release` unmounts
 * after the last. Both take volumes/<name>/mount.lock (flock: the kernel drops it with its holder).
 */
export class VolumeMount {
  private readonly usersFile: string;
  private readonly lockFile: string;

  constructor(
    dir: string,
    private readonly data: string,
    private readonly opts: Record<string, string>,
  ) {
    this.usersFile = path.join(dir, 'mount-users.json');
    this.lockFile = path.join(dir, 'mount.lock');
  }

  acquire(id: string, pid: number = process.pid): void {
    this.locked((users) => {
      if (!users.some((u) => u.id === id)) {
        if (!isMounted(this.data)) {
          fs.mkdirSync(this.data, { recursive: true, mode: 0o755 });
          try {
            mountLocal(this.opts, this.data);
          } catch (e) {
            throw new PlyError(`error while mounting volume '${this.data}': ${(e as Error).message}`);
          }
        }
        users.push({ id, pid });
      }
      return users;
    });
  }

  release(id: string): void {
    this.locked((users) => {
      const left = users.filter((u) => u.id !== id);
      if (left.length === 0) unmountIfMounted(this.data);
      return left;
    });
  }

  /**
   * A mount no container holds any more (its supervisor was killed and the container is not running): reported,
   * and with `repair` unmounted. True when there was one.
   */
  checkLeft(running: (id: string) => boolean, repair: boolean): boolean {
    let left = false;
    this.locked(
      (users) => {
        left = users.length === 0 && isMounted(this.data);
        if (left && repair) unmountIfMounted(this.data);
        return users;
      },
      (u) => pidAlive(u.pid) || running(u.id),
    );
    return left;
  }

  /** Runs `fn` on the holders that still count (by default: whose supervisor lives) under the lock, and keeps its answer. */
  private locked(fn: (users: Holder[]) => Holder[], counts: (u: Holder) => boolean = (u) => pidAlive(u.pid)): void {
    fs.mkdirSync(path.dirname(this.lockFile), { recursive: true });
    const fd = fs.openSync(this.lockFile, 'a', 0o600);
    try {
      native.flock(fd, native.LOCK_EX);
      const users = this.read().filter(counts);
      const next = fn(users);
      const tmp = `${this.usersFile}.${process.pid}`;
      fs.writeFileSync(tmp, JSON.stringify(next));
      fs.renameSync(tmp, this.usersFile);
    } finally {
      fs.closeSync(fd);
    }
  }

  private read(): Holder[] {
    try {
      const v = JSON.parse(fs.readFileSync(this.usersFile, 'utf8')) as unknown;
      return Array.isArray(v) ? v.filter((u): u is Holder => typeof u?.id === 'string' && Number.isInteger(u?.pid)) : [];
    } catch {
      return [];
    }
  }
}
