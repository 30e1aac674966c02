// The network store: networks, sandboxes (a running container's namespace and ports) and endpoints (its
// addresses) in the metadata DB. Every allocation is one write transaction, so parallel runs never share an
// address or a host port.
import { randomBytes } from 'node:crypto';
import { writeTx, type DB } from '../db/db.js';
import { ConflictError, NotFoundError } from '../errors.js';
import { assignable, contains, formatIp, lastAddress, macFromIp, parseIp, parseRange, parseSubnet } from './ipv4.js';

export type NetworkDriverName = 'bridge' | 'host' | 'null';

export interface NetworkRecord {
  id: string;
  name: string;
  driver: NetworkDriverName;
  subnet?: string;
  gateway?: string;
  /** docker's --ip-range as given: containers get addresses only from it. */
  ipRange?: string;
  /** The Linux bridge (bridge driver). */
  bridge?: string;
  internal: boolean;
  /** Containers resolve each other by name (user-defined networks, as docker's embedded DNS). */
  dns: boolean;
  /** The subnet was given by the user (docker shows it as IPAM config). */
  ipamUser: boolean;
  labels: Record<string, string>;
  options: Record<string, string>;
  created: number;
}

/** A published port in force: host side resolved (a random port chosen), as docker's NetworkSettings.Ports. */
export interface PortMapping {
  proto: 'tcp' | 'udp';
  containerPort: number;
  hostIp: string;
  hostPort: number;
}

export interface Endpoint {
  container: string;
  network: string;
  ip: string;
  mac: string;
  ifname: string;
  hostIfname: string;
  id: string;
  name: string;
  aliases: string[];
}

export interface Sandbox {
  container: string;
  netns: string;
  ports: PortMapping[];
  /** The container's --dns servers: on DNS networks, the upstreams of its other queries. */
  dns: string[];
  created: number;
}

/** What a container asks of one network when it starts. */
export interface EndpointRequest {
  network: NetworkRecord;
  aliases: string[];
  ip?: string;
  mac?: string;
}

/** A requested port binding; hostPort 0 = any free port. */
export interface PortRequest {
  proto: 'tcp' | 'udp';
  containerPort: number;
  hostIp: string;
  hostPort: number;
}

interface NetworkRow {
  id: string;
  name: string;
  driver: string;
  subnet: string | null;
  gateway: string | null;
  ip_range: string | null;
  bridge: string | null;
  internal: number;
  dns: number;
  ipam_user: number;
  labels: string;
  options: string;
  created: number;
}

interface EndpointRow {
  container: string;
  network: string;
  ip: string;
  mac: string;
  ifname: string;
  host_ifname: string;
  id: string;
  name: string;
  aliases: string;
}

function toNetwork(r: NetworkRow): NetworkRecord {
  return {
    id: r.id,
    name: r.name,
    driver: r.driver as NetworkDriverName,
    subnet: r.subnet ?? undefined,
    gateway: r.gateway ?? undefined,
    ...(r.ip_range ? { ipRange: r.ip_range } : {}),
    bridge: r.bridge ?? undefined,
    internal: r.internal === 1,
    dns: r.dns === 1,
    ipamUser: r.ipam_user === 1,
    labels: JSON.parse(r.labels) as Record<string, string>,
    options: JSON.parse(r.options) as Record<string, string>,
    created: r.created,
  };
}

function toEndpoint(r: EndpointRow): Endpoint {
  return {
    container: r.container,
    network: r.network,
    ip: r.ip,
    mac: r.mac,
    ifname: r.ifname,
    hostIfname: r.host_ifname,
    id: r.id,
    name: r.name,
    aliases: JSON.parse(r.aliases) as string[],
  };
}

export const PREDEFINED = ['bridge', 'host', 'none'];

export class NetworkStore {
  constructor(readonly db: DB) {}

  list(): NetworkRecord[] {
    return (this.db.prepare('SELECT * FROM networks ORDER BY created, name').all() as NetworkRow[]).map(toNetwork);
  }

  get(id: string): NetworkRecord | undefined {
    const r = this.db.prepare('SELECT * FROM networks WHERE id = ?').get(id) as NetworkRow | undefined;
    return r && toNetwork(r);
  }

  /** By name, full ID or unique ID prefix, as docker resolves networks. */
  find(ref: string): NetworkRecord | undefined {
    const byName = this.db.prepare('SELECT * FROM networks WHERE name = ?').get(ref) as NetworkRow | undefined;
    if (byName) return toNetwork(byName);
    if (!/^[0-9a-f]+$/.test(ref)) return undefined;
    const rows = this.db.prepare('SELECT * FROM networks WHERE id >= ? AND id < ? LIMIT 2').all(ref, `${ref}g`) as NetworkRow[];
    if (rows.length > 1) throw new ConflictError(`network ${ref} is ambiguous (${rows.length} matches found based on ID prefix)`);
    return rows[0] && toNetwork(rows[0]);
  }

  resolve(ref: string): NetworkRecord {
    const n = this.find(ref);
    if (!n) throw new NotFoundError(`network ${ref} not found`);
    return n;
  }

  create(n: Omit<NetworkRecord, 'id' | 'created'>): NetworkRecord {
    return writeTx(this.db, () => {
      if (this.db.prepare('SELECT 1 FROM networks WHERE name = ?').get(n.name)) {
        throw new ConflictError(`network with name ${n.name} already exists`);
      }
      const id = randomBytes(32).toString('hex');
      this.db
        .prepare(
          'INSERT INTO networks (id, name, driver, subnet, gateway, ip_range, bridge, internal, dns, ipam_user, labels, options, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        )
        .run(id, n.name, n.driver, n.subnet ?? null, n.gateway ?? null, n.ipRange ?? null, n.bridge ?? null, n.internal ? 1 : 0, n.dns ? 1 : 0, n.ipamUser ? 1 : 0, JSON.stringify(n.labels), JSON.stringify(n.options), Date.now());
      return this.get(id)!;
    });
  }

  /** Records the address range chosen for a network (the default bridge gets one when first brought up). */
  setAddressing(id: string, subnet: string, gateway: string): void {
    this.db.prepare('UPDATE networks SET subnet = ?, gateway = ? WHERE id = ?').run(subnet, gateway, id);
  }

  setBridge(id: string, bridge: string): void {
    this.db.prepare('UPDATE networks SET bridge = ? WHERE id = ?').run(bridge, id);
  }

  delete(id: string): void {
    writeTx(this.db, () => {
      const users = this.endpointsOf(id);
      if (users.length > 0) throw new ConflictError(`error while removing network: network ${this.get(id)?.name ?? id} id ${id} has active endpoints`);
      this.db.prepare('DELETE FROM networks WHERE id = ?').run(id);
    });
  }

  endpointsOf(network: string): Endpoint[] {
    return (this.db.prepare('SELECT * FROM endpoints WHERE network = ? ORDER BY ip').all(network) as EndpointRow[]).map(toEndpoint);
  }

  endpoints(container: string): Endpoint[] {
    return (this.db.prepare('SELECT * FROM endpoints WHERE container = ? ORDER BY ifname').all(container) as EndpointRow[]).map(toEndpoint);
  }

  sandbox(container: string): Sandbox | undefined {
    const r = this.db.prepare('SELECT * FROM sandboxes WHERE container = ?').get(container) as
      | { container: string; netns: string; ports: string; dns: string; created: number }
      | undefined;
    return r && { container: r.container, netns: r.netns, ports: JSON.parse(r.ports) as PortMapping[], dns: JSON.parse(r.dns) as string[], created: r.created };
  }

  sandboxes(): Sandbox[] {
    return (this.db.prepare('SELECT container FROM sandboxes').all() as { container: string }[]).map((r) => this.sandbox(r.container)!);
  }

  /**
   * Creates a container's sandbox and its endpoints in one transaction: each gets the lowest free address of its
   * network (or the one asked for), and each port request a host port no other sandbox holds (`pickPort` chooses a
   * free one for hostPort 0). Throws before anything is stored when an address or a port is taken.
   */
  allocate(
    container: string,
    name: string,
    netns: string,
    dns: string[],
    requests: EndpointRequest[],
    ports: PortRequest[],
    names: (req: EndpointRequest, index: number) => { ifname: string; hostIfname: string },
    pickPort: (p: PortRequest, taken: (hostIp: string, port: number) => boolean) => number,
  ): { sandbox: Sandbox; endpoints: Endpoint[] } {
    return writeTx(this.db, () => {
      if (this.sandbox(container)) throw new ConflictError(`container ${container} already has a network sandbox`);
      const held = this.sandboxes().flatMap((s) => s.ports);
      const taken = (proto: string, hostIp: string, port: number) =>
        held.some((h) => h.proto === proto && h.hostPort === port && (h.hostIp === hostIp || h.hostIp === '0.0.0.0' || hostIp === '0.0.0.0'));
      const mappings: PortMapping[] = [];
      for (const p of ports) {
        let hostPort = p.hostPort;
        if (hostPort === 0) hostPort = pickPort(p, (ip, port) => taken(p.proto, ip, port));
        else if (taken(p.proto, p.hostIp, hostPort)) {
          throw new ConflictError(`driver failed programming external connectivity on endpoint: Bind for ${p.hostIp}:${hostPort} failed: port is already allocated`);
        }
        const m: PortMapping = { proto: p.proto, containerPort: p.containerPort, hostIp: p.hostIp, hostPort };
        held.push(m);
        mappings.push(m);
      }
      const now = Date.now();
      this.db.prepare('INSERT INTO sandboxes (container, netns, ports, dns, created) VALUES (?, ?, ?, ?, ?)').run(container, netns, JSON.stringify(mappings), JSON.stringify(dns), now);
      const insert = this.db.prepare(
        'INSERT INTO endpoints (container, network, ip, mac, ifname, host_ifname, id, name, aliases) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
      );
      const endpoints: Endpoint[] = [];
      requests.forEach((req, i) => {
        const ip = this.pickAddress(req);
        const { ifname, hostIfname } = names(req, i);
        const e: Endpoint = {
          container,
          network: req.network.id,
          ip: formatIp(ip),
          mac: req.mac ?? macFromIp(ip),
          ifname,
          hostIfname,
          id: randomBytes(32).toString('hex'),
          name,
          aliases: req.aliases,
        };
        insert.run(e.container, e.network, e.ip, e.mac, e.ifname, e.hostIfname, e.id, e.name, JSON.stringify(e.aliases));
        endpoints.push(e);
      });
      return { sandbox: this.sandbox(container)!, endpoints };
    });
  }

  /** Adds one endpoint to an existing sandbox (network connect on a running container). */
  addEndpoint(container: string, name: string, req: EndpointRequest, names: { ifname: string; hostIfname: string }): Endpoint {
    return writeTx(this.db, () => {
      if (this.db.prepare('SELECT 1 FROM endpoints WHERE container = ? AND network = ?').get(container, req.network.id)) {
        throw new ConflictError(`endpoint with name ${container} already exists in network ${req.network.name}`);
      }
      const ip = this.pickAddress(req);
      const e: Endpoint = {
        container,
        network: req.network.id,
        ip: formatIp(ip),
        mac: req.mac ?? macFromIp(ip),
        ...names,
        id: randomBytes(32).toString('hex'),
        name,
        aliases: req.aliases,
      };
      this.db
        .prepare('INSERT INTO endpoints (container, network, ip, mac, ifname, host_ifname, id, name, aliases) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
        .run(e.container, e.network, e.ip, e.mac, e.ifname, e.hostIfname, e.id, e.name, JSON.stringify(e.aliases));
      return e;
    });
  }

  /** A container's new name on its endpoints; returns the networks whose names changed. */
  renameEndpoints(container: string, name: string): string[] {
    return writeTx(this.db, () => {
      const nets = (this.db.prepare('SELECT network FROM endpoints WHERE container = ? AND name != ?').all(container, name) as { network: string }[]).map((r) => r.network);
      this.db.prepare('UPDATE endpoints SET name = ? WHERE container = ?').run(name, container);
      return nets;
    });
  }

  removeEndpoint(container: string, network: string): void {
    this.db.prepare('DELETE FROM endpoints WHERE container = ? AND network = ?').run(container, network);
  }

  /** Forgets a sandbox and its endpoints (their addresses and ports are free again). */
  release(container: string): void {
    this.db.prepare('DELETE FROM sandboxes WHERE container = ?').run(container);
  }

  /** Inside a write transaction: the requested address if free, else the lowest free one after the gateway. */
  private pickAddress(req: EndpointRequest): number {
    const net = req.network;
    if (!net.subnet) throw new ConflictError(`network ${net.name} has no address range`);
    const subnet = parseSubnet(net.subnet);
    const gateway = net.gateway ? parseIp(net.gateway) : undefined;
    const used = new Set((this.db.prepare('SELECT ip FROM endpoints WHERE network = ?').all(net.id) as { ip: string }[]).map((r) => parseIp(r.ip)!));
    if (req.ip) {
      const ip = parseIp(req.ip);
      if (ip === undefined || !contains(subnet, ip)) throw new ConflictError(`Address ${req.ip} does not belong to network ${net.name} (${net.subnet})`);
      if (used.has(ip) || ip === gateway || ip === subnet.base || ip === lastAddress(subnet)) {
        throw new ConflictError(`Address already in use: ${req.ip} on network ${net.name}`);
      }
      return ip;
    }
    const { first, last } = assignable(subnet, net.ipRange ? parseRange(net.ipRange) : undefined);
    for (let ip = first; ip <= last; ip++) {
      if (ip !== gateway && !used.has(ip)) return ip;
    }
    throw new ConflictError(`no available IPv4 addresses on this network's address pools: ${net.name} (${net.id})`);
  }
}
