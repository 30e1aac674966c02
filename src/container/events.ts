// The events a container's lifecycle logs, in dockerd's shapes: its own, and its networks' and volumes' around a run.
import type { EventLog } from '../events/log.js';
import type { Networks } from '../network/index.js';
import type { Container } from './store.js';

/**
 * Logs a container event as dockerd does: the actor is the container, its attributes `extra`, then its labels,
 * its image (as the user named it) and its name.
 */
export function containerEvent(events: EventLog, c: Container, action: string, extra: Record<string, string> = {}): void {
  events.emit('container', action, c.id, { ...extra, ...c.spec.labels, image: c.imageRef, name: c.name });
}

/** network connect/disconnect events for each network a container is on (docker logs them for host and none too). */
export function networkEvents(events: EventLog, networks: Networks, c: Container, action: 'connect' | 'disconnect'): void {
  if (c.spec.network.startsWith('container:')) return;
  for (const name of Object.keys(c.spec.networks ?? { [c.spec.network]: {} })) {
    const net = networks.store.find(name);
    if (net) events.emit('network', action, net.id, { container: c.id, name: net.name, type: net.driver });
  }
}

/** volume mount/unmount events for the named and anonymous volumes of a container. */
export function volumeEvents(events: EventLog, c: Container, action: 'mount' | 'unmount'): void {
  for (const m of c.spec.mounts) {
    if (m.type !== 'volume' || !m.source) continue;
    const attrs: Record<string, string> = { container: c.id, driver: 'local' };
    if (action === 'mount') Object.assign(attrs, { destination: m.target, propagation: '', 'read/write': String(!m.readonly) });
    events.emit('volume', action, m.source, attrs);
  }
}
