// The layers build steps make: a RUN container's writable layer committed, a COPY/ADD (or WORKDIR) layer written
// as a tar straight into the content store. With SOURCE_DATE_EPOCH (`sde`) newer file times are clamped to it.
import { randomBytes } from 'node:crypto';
import type { Lease } from '../content/lease.js';
import type { LayerRecord } from '../layer/types.js';
import type { Stores } from '../stores.js';
import type { CopyRequest } from './copy.js';

/** The container's writable layer as a layer blob; undefined when it changed nothing. */
export async function commitContainer(stores: Stores, id: string, lease: Lease, sde: number | undefined): Promise<LayerRecord | undefined> {
  const { commitLayer } = await import('../snapshot/commit.js');
  const key = stores.containers.pathOf(id);
  return commitLayer(stores.snapshots.of(key), key, stores.images.content, lease, {
    quiescent: true,
    skipEmpty: true,
    name: 'build',
    ...(sde !== undefined ? { clamp: sde } : {}),
  });
}

/** A COPY/ADD layer: the planned tar, ingested (hashed, stored) as it is written. */
export async function writeCopyLayer(stores: Stores, req: Omit<CopyRequest, 'now' | 'clamp'>, lease: Lease, sde: number | undefined): Promise<LayerRecord> {
  const { CopyWriter } = await import('./copy.js');
  const { TarWriter } = await import('../tar/index.js');
  const { ingestLayer } = await import('../layer/ingest.js');
  const copy = new CopyWriter({ ...req, now: sde ?? Math.floor(Date.now() / 1000), ...(sde !== undefined ? { clamp: sde } : {}) });
  copy.plan();
  const writer = new TarWriter();
  const producing = (async () => {
    await copy.write(writer);
    await writer.finish();
  })();
  producing.catch((e: unknown) => writer.destroy(e as Error));
  const layer = await ingestLayer(stores.images.content, writer.stream, { key: `build-${randomBytes(6).toString('hex')}`, lease });
  await producing;
  return layer;
}
