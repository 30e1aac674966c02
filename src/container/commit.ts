// commit and export: a container's writable layer becomes a new image layer on top of its image's layers;
// its whole filesystem, flattened, becomes a tar.
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Engine } from '../engine.js';
import { NotFoundError } from '../errors.js';
import { applyChanges } from '../image/changes.js';
import type { ImageRecord } from '../image/store.js';
import { creationTime, writeImage } from '../image/write.js';
import { writeTree, writeUpperDiff } from '../layer/diff.js';
import { ingestLayer } from '../layer/ingest.js';
import type { ImageConfig } from '../oci/types.js';
import { TarWriter } from '../tar/index.js';
import type { Container } from './store.js';

export interface CommitOptions {
  author?: string;
  message?: string;
  changes?: string[];
  /** Freeze the container while its layer is read (docker's default). */
  pause?: boolean;
  reference?: string;
}

/** Runs `fn` with the container's rootfs mounted (already mounted while it runs). */
export async function withRootfs<T>(engine: Engine, c: Container, fn: (rootfs: string) => Promise<T>): Promise<T> {
  const dir = engine.containers.pathOf(c.id);
  if (engine.manager.isRunning(c)) return fn(path.join(dir, 'merged'));
  const rec = engine.images.get(c.image);
  if (!rec) throw new NotFoundError(`image of container ${c.name} is gone`);
  const lowers = await engine.snapshots.unpack(engine.images.layers(rec));
  const rootfs = engine.snapshots.mountRootfs([engine.manager.initLayer(c), ...lowers], dir);
  try {
    return await fn(rootfs);
  } finally {
    engine.snapshots.unmountRootfs(dir);
  }
}

export async function commitContainer(engine: Engine, c: Container, o: CommitOptions = {}): Promise<ImageRecord> {
  const name = o.reference ? engine.nameForTag(o.reference) : undefined;
  const base = engine.images.get(c.image);
  if (!base) throw new NotFoundError(`image of container ${c.name} is gone`);
  const baseConfig = engine.images.config(base);
  const containerConfig = applyChanges(baseConfig.config ?? {}, o.changes ?? []);
  const upper = path.join(engine.containers.pathOf(c.id), 'upper');
  const paused = o.pause !== false && c.state === 'running';
  const rt = engine.manager.runtime(c);
  return engine.images.withLease(async (lease) => {
    if (paused) {
      rt.pause(c.id);
      engine.containers.update(c.id, { state: 'paused' });
    }
    let layer;
    try {
      const writer = new TarWriter();
      const produce = (async () => {
        await writeUpperDiff(upper, writer);
        await writer.finish();
      })();
      produce.catch((e: unknown) => writer.destroy(e as Error));
      layer = await ingestLayer(engine.content, writer.stream, { key: `commit-${c.id.slice(0, 12)}-${randomBytes(3).toString('hex')}`, lease });
      await produce;
    } finally {
      if (paused) {
        rt.resume(c.id);
        engine.containers.update(c.id, { state: 'running' });
      }
    }
    const created = creationTime();
    const history = [...(baseConfig.history ?? [])];
    history.push({
      created,
      created_by: [c.spec.path, ...c.spec.args].join(' '),
      ...(o.author ? { author: o.author } : {}),
      ...(o.message ? { comment: o.message } : {}),
    });
    const config: ImageConfig = {
      ...baseConfig,
      created,
      config: containerConfig,
      container: c.id,
      rootfs: { type: 'layers', diff_ids: [...baseConfig.rootfs.diff_ids, layer.diffId] },
      history,
    };
    if (o.author) config.author = o.author;
    else delete config.author;
    if (o.message) config.comment = o.message;
    else delete config.comment;
    const rec = await writeImage(engine.images, lease, { config, layers: [...engine.images.layers(base), layer], parent: base.id });
    if (name) engine.images.setName(name, rec.digest);
    return rec;
  });
}

/** Writes the container's flattened filesystem as a tar to `out`. */
export async function exportContainer(engine: Engine, c: Container, out: Writable): Promise<void> {
  await withRootfs(engine, c, async (rootfs) => {
    const writer = new TarWriter();
    const produce = (async () => {
      await writeTree(rootfs, writer);
      await writer.finish();
    })();
    produce.catch((e: unknown) => writer.destroy(e as Error));
    await pipeline(writer.stream, out);
    await produce;
  });
}
