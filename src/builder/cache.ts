// The build cache: step key → the image that step produced (an untagged intermediate image, as docker's classic
// builder keeps them). The image record holds the step's layers and config blobs against GC; deleting the image
// (rmi, image prune) drops its cache entries with it (ON DELETE CASCADE), so the cache never points at nothing.

import { createHash } from 'node:crypto';
import type { DB } from '../db/db.js';
import { writeTx } from '../db/db.js';

/** A step's cache key: sha256 over its parts, each length-prefixed so no two part lists collide. */
export function stepKey(parts: (string | undefined)[]): string {
  const h = createHash('sha256');
  h.update('ply-build-v1\n');
  for (const p of parts) {
    const s = p ?? '\u0000undefined';
    h.update(`${Buffer.byteLength(s)}:${s}\n`);
  }
  return h.digest('hex');
}

/** What a cache entry's key was made of: the parent image, the instruction, and digests of named parts. */
export interface StepInputRecord {
  parent: string;
  instruction: string;
  parts: Record<string, string>;
}

export class BuildCache {
  constructor(private readonly db: DB) {}

  /** The manifest digest of the image a step with this key produced, if the image still exists. */
  get(key: string): string | undefined {
    const row = this.db.prepare('SELECT c.image AS image FROM build_cache c JOIN images i ON i.digest = c.image WHERE c.key = ?').get(key) as
      | { image: string }
      | undefined;
    return row?.image;
  }

  /** Records that these entries were used now (one transaction for a whole build). */
  touch(keys: string[]): void {
    if (keys.length === 0) return;
    const now = Date.now();
    writeTx(this.db, () => {
      const upd = this.db.prepare('UPDATE build_cache SET last_used = ? WHERE key = ?');
      for (const k of keys) upd.run(now, k);
    });
  }

  /** Records a step's result; `inputs`: what its key was made of (for --explain-cache). */
  put(key: string, image: string, inputs?: StepInputRecord): void {
    const now = Date.now();
    writeTx(this.db, () => {
      this.db
        .prepare('INSERT INTO build_cache (key, image, created, last_used) VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET image = excluded.image, last_used = excluded.last_used')
        .run(key, image, now, now);
      if (inputs) {
        this.db
          .prepare('INSERT OR REPLACE INTO build_cache_inputs (key, parent, instruction, parts) VALUES (?, ?, ?, ?)')
          .run(key, inputs.parent, inputs.instruction, JSON.stringify(inputs.parts));
      }
    });
  }

  /** The inputs of the live entries cached on `parent`, most recently used first. */
  inputsOn(parent: string): StepInputRecord[] {
    const rows = this.db
      .prepare(
        'SELECT i.parent AS parent, i.instruction AS instruction, i.parts AS parts FROM build_cache_inputs i JOIN build_cache c ON c.key = i.key JOIN images m ON m.digest = c.image WHERE i.parent = ? ORDER BY c.last_used DESC LIMIT 50',
      )
      .all(parent) as { parent: string; instruction: string; parts: string }[];
    return rows.map((r) => ({ parent: r.parent, instruction: r.instruction, parts: JSON.parse(r.parts) as Record<string, string> }));
  }

  /** The parents on which a step with this instruction is cached, most recently used first. */
  parentsOf(instruction: string): string[] {
    const rows = this.db
      .prepare('SELECT DISTINCT i.parent AS parent FROM build_cache_inputs i JOIN build_cache c ON c.key = i.key WHERE i.instruction = ? ORDER BY c.last_used DESC LIMIT 10')
      .all(instruction) as { parent: string }[];
    return rows.map((r) => r.parent);
  }

  /** Every image the cache refers to. */
  images(): string[] {
    return (this.db.prepare('SELECT DISTINCT image FROM build_cache').all() as { image: string }[]).map((r) => r.image);
  }

  count(): number {
    return (this.db.prepare('SELECT COUNT(*) AS n FROM build_cache').get() as { n: number }).n;
  }

  /** Removes the entries pointing at these images (all entries when `images` is undefined); returns how many. */
  remove(images?: string[]): number {
    return writeTx(this.db, () => {
      if (!images) return this.db.prepare('DELETE FROM build_cache').run().changes;
      const del = this.db.prepare('DELETE FROM build_cache WHERE image = ?');
      let n = 0;
      for (const i of images) n += del.run(i).changes;
      return n;
    });
  }
}
