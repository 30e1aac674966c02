// A container's writable layer becoming one new image layer: the snapshotter's diff as a tar, streamed into the
// content store through the layer ingest (diffID and sizes in the same pass). commit and the builder's RUN steps
// both come here.
import { randomBytes } from 'node:crypto';
import type { ContentStore } from '../content/store.js';
import type { LayerRecord } from '../layer/types.js';
import type { Lease } from '../content/lease.js';
import { ingestLayer } from '../layer/ingest.js';
import { TarWriter } from '../tar/index.js';
import type { Snapshotter } from './snapshotter.js';

/**
 * The layer of `key`'s changes, held by `lease`; undefined when `skipEmpty` and nothing changed (a RUN that
 * wrote nothing adds no layer). `quiescent`: nothing writes into the snapshot meanwhile; `clamp`: mtimes above it
 * (a build's SOURCE_DATE_EPOCH) written as it.
 */
export async function commitLayer(
  s: Snapshotter,
  key: string,
  content: ContentStore,
  lease: Lease,
  opts: { quiescent: boolean; skipEmpty?: boolean; name?: string; clamp?: number },
): Promise<LayerRecord | undefined> {
  if (opts.skipEmpty && !s.hasChanges(key)) return undefined;
  const writer = new TarWriter();
  const produce = (async () => {
    await s.diff(key, writer, { quiescent: opts.quiescent, ...(opts.clamp !== undefined ? { clamp: opts.clamp } : {}) });
    await writer.finish();
  })();
  produce.catch((e: unknown) => writer.destroy(e as Error));
  const layer = await ingestLayer(content, writer.stream, { key: `${opts.name ?? 'commit'}-${randomBytes(6).toString('hex')}`, lease });
  await produce;
  return layer;
}
