// The engine's network verbs (docker network ls/inspect/create/rm/prune; connect, disconnect and port are
// container verbs), in docker's shapes. The network module underneath owns bridges, addresses, DNS and rules.
import type { CreateNetworkOptions, NetworkInspect } from '../network/index.js';
import type { Stores } from '../stores.js';
import { Filters, type FilterInput } from './filters.js';

export type { CreateNetworkOptions, NetworkInspect };

const BUILTIN = ['bridge', 'host', 'none'];

export class NetworkService {
  constructor(private readonly stores: Stores) {}

  /** docker network ls (by name), with the driver, id, label, name, scope, type and dangling filters. */
  list(opts: { filters?: FilterInput } = {}): NetworkInspect[] {
    const filters = Filters.parse(opts.filters, ['driver', 'id', 'label', 'name', 'scope', 'type', 'dangling']);
    const used = this.used();
    const nets = this.stores.networks;
    return nets
      .list()
      .filter(
        (n) =>
          filters.match('driver', (v) => n.driver === v) &&
          filters.match('id', (v) => n.id.startsWith(v)) &&
          filters.match('name', (v) => n.name.includes(v)) &&
          filters.match('scope', (v) => v === 'local') &&
          filters.match('type', (v) => (v === 'builtin') === BUILTIN.includes(n.name)) &&
          filters.match('dangling', (v) => (v === 'true' || v === '1') === (!BUILTIN.includes(n.name) && !used.has(n.name) && !used.has(n.id))) &&
          filters.match('label', (v) => {
            const j = v.indexOf('=');
            return j < 0 ? v in n.labels : n.labels[v.slice(0, j)] === v.slice(j + 1);
          }),
      )
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((n) => nets.inspect(n));
  }

  /** By name, ID or unique ID prefix; NotFoundError otherwise. */
  inspect(ref: string): NetworkInspect {
    return this.stores.networks.inspect(ref);
  }

  /** The network `ref` names, or undefined (for `inspect` of any kind of object). */
  find(ref: string): NetworkInspect | undefined {
    const net = this.stores.networks.store.find(ref);
    return net && this.stores.networks.inspect(net);
  }

  create(o: CreateNetworkOptions): { Id: string } {
    return { Id: this.stores.networks.create(o).id };
  }

  remove(ref: string): void {
    this.stores.networks.remove(ref);
  }

  /** Removes every network no container is configured for; returns their names. */
  prune(): { NetworksDeleted: string[] } {
    const deleted: string[] = [];
    for (const n of this.stores.networks.unused(this.used())) {
      this.stores.networks.remove(n.id);
      deleted.push(n.name);
    }
    return { NetworksDeleted: deleted };
  }

  /** Names and IDs of the networks some container (running or not) is configured for. */
  private used(): Set<string> {
    const used = new Set<string>();
    for (const c of this.stores.containers.list()) {
      used.add(c.spec.network);
      for (const n of Object.keys(c.spec.networks ?? {})) used.add(n);
    }
    return used;
  }
}
