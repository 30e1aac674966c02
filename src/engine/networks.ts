// The engine's network verbs (docker network ls/inspect/create/rm/prune; connect, disconnect and port are
// container verbs), in docker's shapes. The network module underneath owns bridges, addresses, DNS and rules.
import type { CreateNetworkOptions, NetworkInspect, NetworkRecord } from '../network/index.js';
import type { Stores } from '../stores.js';
import { Filters, labelMatches, labelsMatch, type FilterInput } from './filters.js';
import { parseTime } from './filters.js';

export type { CreateNetworkOptions, NetworkInspect };

const BUILTIN = ['bridge', 'host', 'none'];

export class NetworkService {
  constructor(private readonly stores: Stores) {}

  /** docker network ls (by name), with the driver, id, label, name, scope, type and dangling filters. */
  list(opts: { filters?: FilterInput } = {}): NetworkInspect[] {
    const filters = Filters.parse(opts.filters, ['driver', 'id', 'label', 'name', 'scope', 'type', 'dangling']);
    const dangling = filters.bool('dangling');
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
          (dangling === undefined || dangling === this.dangling(n)) &&
          labelsMatch(filters, n.labels),
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

  /**
   * docker's network prune: removes every network no running container is attached to (a created or stopped
   * container configured for it does not keep it: starting that container fails afterwards, as with docker),
   * with the `until`, `label` and `label!` filters; returns their names.
   */
  prune(opts: { filters?: FilterInput } = {}): { NetworksDeleted: string[] } {
    const filters = Filters.parse(opts.filters, ['until', 'label', 'label!']);
    const until = filters.get('until').map((v) => parseTime(v));
    const unlabel = filters.get('label!');
    const deleted: string[] = [];
    for (const n of this.stores.networks.list()) {
      if (!this.dangling(n) || !labelsMatch(filters, n.labels) || until.some((t) => n.created > t)) continue;
      if (unlabel.length && unlabel.every((f) => labelMatches(f, n.labels))) continue;
      this.stores.networks.remove(n.id);
      deleted.push(n.name);
    }
    return { NetworksDeleted: deleted };
  }

  /** docker's dangling network: not predefined, and no container attached (running: only those have endpoints). */
  private dangling(n: NetworkRecord): boolean {
    return !BUILTIN.includes(n.name) && this.stores.networks.store.endpointsOf(n.id).length === 0;
  }
}
