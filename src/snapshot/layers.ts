// Image layers unpacked once each, into a read-only directory keyed by its ChainID (snapshots/<16 hex>) and
// shared by every image, container and build view above it: what overlay stacks as lower directories. Records
// (the snapshots table) say which directories are complete; an unpack in progress is a tmp-<pid>-… directory.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { pidAlive, type ContentStore } from '../content/store.js';
import { writeTx, type DB } from '../db/db.js';
import { chainIds } from '../digest/digest.js';
import type { LayerRecord } from '../layer/types.js';
import { applyLayer } from '../layer/apply.js';
import { decompressed } from '../layer/compression.js';
import type { Digest } from '../oci/types.js';
import { removeTree } from '../util/fs.js';

/** Unpacking is I/O and CPU bound; two at once keeps both cores busy. */
const PARALLEL_UNPACK = 2;

export class LayerSnapshots {
  readonly dir: string;

  constructor(
    root: string,
    private readonly db: DB,
    private readonly content: ContentStore,
  ) {
    this.dir = path.join(root, 'snapshots');
    fs.mkdirSync(this.dir, { recursive: true });
  }

  /** Short directory name for a chain: overlay's mount options must fit in one page, so paths stay short. */
  pathFor(chainId: Digest): string {
    return path.join(this.dir, chainId.slice(7, 23));
  }

  isUnpacked(chainId: Digest): boolean {
    return fs.existsSync(this.pathFor(chainId));
  }

  /** Unpacks the layers not yet unpacked (in parallel) and returns every layer's directory, top layer first. */
  async unpack(layers: LayerRecord[]): Promise<string[]> {
    const chains = chainIds(layers.map((l) => l.diffId));
    const todo = layers.map((l, i) => ({ layer: l, chain: chains[i]!, parent: i > 0 ? chains[i - 1]! : null })).filter((t) => !this.isUnpacked(t.chain));
    let next = 0;
    let failed: unknown;
    const worker = async () => {
      while (next < todo.length && failed === undefined) {
        const t = todo[next++]!;
        try {
          await this.unpackOne(t.layer, t.chain, t.parent);
        } catch (e) {
          failed ??= e;
        }
      }
    };
    // Every unpack finishes (and cleans up after itself) before a failure is reported: none is left half-done.
    await Promise.all(Array.from({ length: Math.min(PARALLEL_UNPACK, todo.length) }, worker));
    if (failed !== undefined) throw failed;
    if (chains.length === 0) {
      const empty = path.join(this.dir, 'empty');
      fs.mkdirSync(empty, { recursive: true });
      return [empty];
    }
    return chains.map((c) => this.pathFor(c)).reverse();
  }

  private async unpackOne(layer: LayerRecord, chain: Digest, parent: Digest | null): Promise<void> {
    // The pid in the name tells a concurrent prune whether the unpack is still going on.
    const tmp = path.join(this.dir, `tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    await fsp.mkdir(tmp, { mode: 0o755 });
    try {
      const { size } = await applyLayer(tmp, decompressed(this.content.read(layer.digest)), { mode: 'overlay' });
      try {
        await fsp.rename(tmp, this.pathFor(chain));
      } catch (e) {
        // Another process unpacked the same layer first: theirs is as good as ours.
        if (!['EEXIST', 'ENOTEMPTY'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
        await fsp.rm(tmp, { recursive: true, force: true });
      }
      writeTx(this.db, () => {
        this.db
          .prepare('INSERT OR IGNORE INTO snapshots (chain_id, diff_id, parent, size, created) VALUES (?, ?, ?, ?, ?)')
          .run(chain, layer.diffId, parent, size, Date.now());
      });
    } catch (e) {
      await fsp.rm(tmp, { recursive: true, force: true });
      throw e;
    }
  }

  /** The records of unpacked layers: each ChainID and its parent's. */
  records(): { chain_id: Digest; parent: string | null }[] {
    return this.db.prepare('SELECT chain_id, parent FROM snapshots').all() as { chain_id: Digest; parent: string | null }[];
  }

  /** Drops the record of an unpacked layer whose directory is gone (it is unpacked again on next use). */
  forget(chainId: Digest): void {
    this.db.prepare('DELETE FROM snapshots WHERE chain_id = ?').run(chainId);
  }

  /** Removes unpacked layers no image uses any more. */
  prune(usedChains: Set<string>): number {
    let n = 0;
    const rows = this.db.prepare('SELECT chain_id FROM snapshots').all() as { chain_id: Digest }[];
    for (const r of rows) {
      if (usedChains.has(r.chain_id)) continue;
      removeTree(this.pathFor(r.chain_id));
      this.db.prepare('DELETE FROM snapshots WHERE chain_id = ?').run(r.chain_id);
      n++;
    }
    for (const name of fs.readdirSync(this.dir)) {
      if (isAbandonedUnpack(name)) removeTree(path.join(this.dir, name));
    }
    return n;
  }
}

/** A `tmp-<pid>-…` unpack directory whose process is gone (a live one is still being written). */
export function isAbandonedUnpack(name: string): boolean {
  const m = /^tmp-(\d+)-/.exec(name);
  if (!m) return name.startsWith('tmp-');
  return Number(m[1]) !== process.pid && !pidAlive(Number(m[1]));
}
