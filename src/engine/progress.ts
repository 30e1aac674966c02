// The copy pipeline's events as docker's progress messages: the statuses dockerd streams for a pull or a push
// ('Pulling fs layer', 'Downloading' with a bar, 'Pull complete', 'Layer already exists', 'Mounted from x'),
// one message per layer change. Config and manifest blobs get none, as in docker.
import type { ProgressEvent } from '../transport/types.js';
import type { ProgressMessage } from './types.js';

const short = (d: string) => d.slice(7, 19);

/** A translator from copy events to messages, for one pull or push; `fetched` counts layers actually moved. */
export function progressMessages(kind: 'pull' | 'push', emit: (m: ProgressMessage) => void): { onEvent: (e: ProgressEvent) => void; fetched: () => number } {
  const layers = new Set<string>();
  let fetched = 0;
  const onEvent = (e: ProgressEvent): void => {
    if ('layer' in e && e.layer) layers.add(e.digest);
    if (e.type === 'blob-mounted') layers.add(e.digest);
    if (e.type === 'resolved' || e.type === 'manifest-done' || !layers.has(e.digest)) return;
    const id = short(e.digest);
    if (e.type === 'blob-start') fetched++;
    if (kind === 'pull') {
      switch (e.type) {
        case 'blob-exists':
          return emit({ id, status: 'Already exists' });
        case 'blob-start':
          return emit({ id, status: 'Pulling fs layer' });
        case 'blob-progress':
          return emit({ id, status: 'Downloading', progressDetail: { current: e.done, total: e.size } });
        case 'blob-verifying':
          return emit({ id, status: 'Verifying Checksum' });
        case 'blob-done':
          emit({ id, status: 'Download complete' });
          return emit({ id, status: 'Pull complete' });
      }
      return;
    }
    switch (e.type) {
      case 'blob-exists':
        return emit({ id, status: 'Layer already exists' });
      case 'blob-mounted':
        return emit({ id, status: `Mounted from ${e.from}` });
      case 'blob-start':
        return emit({ id, status: 'Preparing' });
      case 'blob-progress':
        return emit({ id, status: 'Pushing', progressDetail: { current: e.done, total: e.size } });
      case 'blob-done':
        return emit({ id, status: 'Pushed' });
    }
  };
  return { onEvent, fetched: () => fetched };
}
