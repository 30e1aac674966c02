// `RUN --mount=type=cache` directories: kept in the store across builds (never in an image), one per cache id,
// under build/cache-mounts/<sha256(id)>/:
//
//   id        the cache's id, for listing and pruning
//   0/        the shared instance: `sharing=shared` takes it with a shared flock, `locked` with an exclusive one
//             (a second locked user waits until the first RUN ends)
//   p<N>/     `sharing=private`: the first instance no other RUN holds (made when all are taken)
//   */lock    the instance's flock; the kernel drops it when its holder exits, so a killed build leaves nothing held
//
// The instance's `data/` is what the RUN sees. uid/gid/mode apply to it when it is made, as buildkit's.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { flock, LOCK_EX, LOCK_NB, LOCK_SH, LOCK_UN } from '../native/index.js';
import type { CacheSharing } from '../dockerfile/mounts.js';

export interface CacheMountLease {
  /** The directory to bind into the container. */
  dir: string;
  /** Whether the directory was made now (empty). */
  fresh: boolean;
  release(): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class CacheMounts {
  constructor(private readonly base: string) {}

  private dirOf(id: string): string {
    return path.join(this.base, createHash('sha256').update(id).digest('hex').slice(0, 32));
  }

  /**
   * The cache directory for `id`, held until `release`. `locked` waits (polling, so the build's event loop keeps
   * running) for the holder; `private` never waits.
   */
  async acquire(id: string, sharing: CacheSharing, init: { uid?: number; gid?: number; mode?: number }, signal?: () => boolean): Promise<CacheMountLease> {
    const dir = this.dirOf(id);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(dir, 'id'), id);
    if (sharing === 'private') {
      for (let n = 1; ; n++) {
        const lease = this.tryInstance(dir, `p${n}`, LOCK_EX, init);
        if (lease) return lease;
      }
    }
    const op = sharing === 'locked' ? LOCK_EX : LOCK_SH;
    for (;;) {
      const lease = this.tryInstance(dir, '0', op, init);
      if (lease) return lease;
      if (signal?.()) throw new Error('interrupted while waiting for a locked cache mount');
      await sleep(50);
    }
  }

  private tryInstance(dir: string, name: string, op: number, init: { uid?: number; gid?: number; mode?: number }): CacheMountLease | undefined {
    const inst = path.join(dir, name);
    fs.mkdirSync(inst, { recursive: true, mode: 0o700 });
    const fd = fs.openSync(path.join(inst, 'lock'), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    if (!flock(fd, op | LOCK_NB)) {
      fs.closeSync(fd);
      return undefined;
    }
    const data = path.join(inst, 'data');
    let fresh = false;
    if (!fs.existsSync(data)) {
      // Made under the lock (exclusive or shared: mkdir of the same name by two shared holders is harmless).
      const tmp = `${data}.${process.pid}.tmp`;
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.mkdirSync(tmp, { mode: 0o755 });
      fs.chmodSync(tmp, init.mode ?? 0o755);
      fs.chownSync(tmp, init.uid ?? 0, init.gid ?? 0);
      try {
        fs.renameSync(tmp, data);
        fresh = true;
      } catch {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    }
    let released = false;
    return {
      dir: data,
      fresh,
      release: () => {
        if (released) return;
        released = true;
        flock(fd, LOCK_UN);
        fs.closeSync(fd);
      },
    };
  }

  /** Every cache id kept, with its size on disk. */
  list(): { id: string; dir: string; size: number }[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.base);
    } catch {
      return [];
    }
    const out: { id: string; dir: string; size: number }[] = [];
    for (const n of names) {
      const dir = path.join(this.base, n);
      let id: string;
      try {
        id = fs.readFileSync(path.join(dir, 'id'), 'utf8');
      } catch {
        id = n;
      }
      out.push({ id, dir, size: duSize(dir) });
    }
    return out;
  }

  /** Removes every cache no build holds now; returns their record ids (sha256 of the cache id) and the bytes freed. */
  prune(): { removed: string[]; reclaimed: number } {
    const removed: string[] = [];
    let reclaimed = 0;
    for (const c of this.list()) {
      let instances: string[];
      try {
        instances = fs.readdirSync(c.dir).filter((n) => n !== 'id');
      } catch {
        continue;
      }
      let busy = false;
      const held: number[] = [];
      for (const inst of instances) {
        let fd: number;
        try {
          fd = fs.openSync(path.join(c.dir, inst, 'lock'), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
        } catch {
          continue;
        }
        if (flock(fd, LOCK_EX | LOCK_NB)) held.push(fd);
        else {
          fs.closeSync(fd);
          busy = true;
        }
      }
      if (!busy) {
        fs.rmSync(c.dir, { recursive: true, force: true });
        removed.push(`sha256:${path.basename(c.dir)}`);
        reclaimed += c.size;
      }
      for (const fd of held) fs.closeSync(fd);
    }
    return { removed, reclaimed };
  }
}

function duSize(dir: string): number {
  let total = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop()!;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else {
        try {
          total += fs.lstatSync(p).size;
        } catch {
          // gone meanwhile
        }
      }
    }
  }
  return total;
}
