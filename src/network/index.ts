// Networks: docker's network verbs (create, list, inspect, remove, prune, connect, disconnect) and what a
// container gets when it starts (a namespace plugged into its networks, published ports, names in DNS, its
// /etc/hosts and /etc/resolv.conf) and gives back when it stops. Records live in the metadata DB
// (store.ts); what is on the host is done by drivers (driver.ts), the store's nftables table (firewall.ts) and
// aardvark-dns (dns.ts); machine-wide names and subnets are arbitrated in host.ts.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type { DB } from '../db/db.js';
import type { EventLog } from '../events/log.js';
import { ClientCheckError, ConflictError, InvalidArgumentError, NotFoundError, PlyError } from '../errors.js';
import { BridgeDriver, driverFor, linkExists, type NetworkDriver } from './driver.js';
import { DnsServer } from './dns.js';
import { applyTable, dropTable, hasTable, type FirewallNetwork, type FirewallPort } from './firewall.js';
import { hostRoutes, storeNames, withHostLock, type HostRegistry } from './host.js';
import * as native from '../native/index.js';
import { assignable, contains, formatIp, formatSubnet, lastAddress, overlaps, parseIp, parseRange, parseSubnet } from './ipv4.js';
import { freePorts, holdPorts, portRequests, portsView, type PortBindings, type PortHold } from './ports.js';
import { NetworkStore, PREDEFINED, type Endpoint, type EndpointRequest, type NetworkRecord, type PortMapping, type PortRequest } from './store.js';

export { NetworkStore, type NetworkRecord, type Endpoint, type Sandbox, type PortMapping } from './store.js';
export { parsePublish, portsView, type PortBindings } from './ports.js';

/** What a container asks of one network (docker's EndpointSettings as `run --network-alias --ip --mac-address` set them). */
export interface EndpointConfig {
  aliases?: string[];
  ip?: string;
  mac?: string;
}

/** What the network module needs to know of a container to start it. */
export interface ContainerNetSpec {
  id: string;
  name: string;
  hostname: string;
  /** docker's NetworkMode: bridge, host, none, or a network's name (container:… is the engine's). */
  mode: string;
  /** Networks by name, the mode's first (later ones come from `network connect`). */
  networks: Record<string, EndpointConfig>;
  portBindings: PortBindings;
  publishAll: boolean;
  exposed: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
  extraHosts: string[];
}

/** What a starting container gets: the namespace the runtime joins, and the contents of its /etc files. */
export interface Attachment {
  /**
   * The namespace for the runtime (/proc/<pid>/fd/<fd>), held by `fd` until the container's processes hold it:
   * close it once the runtime started (or failed). undefined = the host's namespace (host) or a new empty one (none).
   */
  netns?: string;
  fd?: number;
  hosts: string;
  resolvConf: string;
}

export interface CreateNetworkOptions {
  name: string;
  driver?: string;
  subnet?: string;
  gateway?: string;
  ipRange?: string;
  internal?: boolean;
  labels?: Record<string, string>;
  options?: Record<string, string>;
}

/** docker's network inspect JSON (the Engine API's shape). */
export interface NetworkInspect {
  Name: string;
  Id: string;
  Created: string;
  Scope: 'local';
  Driver: string;
  EnableIPv6: boolean;
  IPAM: { Driver: 'default'; Options: Record<string, string> | null; Config: { Subnet: string; IPRange?: string; Gateway?: string }[] };
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  ConfigFrom: { Network: string };
  ConfigOnly: boolean;
  Containers: Record<string, { Name: string; EndpointID: string; MacAddress: string; IPv4Address: string; IPv6Address: string }>;
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

export interface EndpointSettings {
  IPAMConfig: { IPv4Address: string } | null;
  Links: null;
  Aliases: string[] | null;
  MacAddress: string;
  NetworkID: string;
  EndpointID: string;
  Gateway: string;
  IPAddress: string;
  IPPrefixLen: number;
  IPv6Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  DriverOpts: null;
  DNSNames: string[] | null;
}

/** docker's container inspect NetworkSettings. */
export interface NetworkSettings {
  Bridge: string;
  SandboxID: string;
  SandboxKey: string;
  HairpinMode: boolean;
  LinkLocalIPv6Address: string;
  LinkLocalIPv6PrefixLen: number;
  Ports: Record<string, { HostIp: string; HostPort: string }[] | null>;
  SecondaryIPAddresses: null;
  SecondaryIPv6Addresses: null;
  EndpointID: string;
  Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  IPAddress: string;
  IPPrefixLen: number;
  IPv6Gateway: string;
  MacAddress: string;
  Networks: Record<string, EndpointSettings>;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const BASE_HOSTS = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n';

/** Host ports this process holds for the containers it supervises. */
const portHolds = new Map<string, PortHold>();

export class Networks {
  readonly store: NetworkStore;
  readonly dnsServer: DnsServer;
  private readonly bridgeDriver = new BridgeDriver();
  private readonly names: ReturnType<typeof storeNames>;

  constructor(
    readonly root: string,
    db: DB,
    /** Where network create/destroy events go. */
    private readonly events?: EventLog,
  ) {
    this.store = new NetworkStore(db);
    this.dnsServer = new DnsServer(root);
    this.names = storeNames(root);
  }

  driver(net: NetworkRecord): NetworkDriver {
    return driverFor(net, this.bridgeDriver);
  }

  // ------------------------------------------------------------------------------------------------------
  // docker's network verbs

  list(): NetworkRecord[] {
    return this.store.list();
  }

  resolve(ref: string): NetworkRecord {
    return this.store.resolve(ref);
  }

  /** `network create`: a bridge network (the only driver ply creates) with its own subnet and DNS. */
  create(o: CreateNetworkOptions): NetworkRecord {
    const driver = o.driver ?? 'bridge';
    if (driver !== 'bridge') {
      if (driver === 'host' || driver === 'null') throw new PlyError(`only one instance of "${driver}" network is allowed`);
      throw new NotFoundError(`plugin "${driver}" not found`);
    }
    if (!NAME_RE.test(o.name)) throw new InvalidArgumentError(`invalid network name "${o.name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    if (PREDEFINED.includes(o.name)) throw new PlyError(`operation is not permitted on predefined ${o.name} network `);
    if (this.store.find(o.name)?.name === o.name) throw new ConflictError(`network with name ${o.name} already exists`);
    if ((o.gateway || o.ipRange) && !o.subnet) throw new ClientCheckError('every ip-range or gateway must have a corresponding subnet');
    let subnet: string | undefined;
    let gateway: string | undefined;
    if (o.subnet) {
      const s = parseSubnet(o.subnet);
      if (formatSubnet(s) !== o.subnet) throw new InvalidArgumentError(`invalid subnet ${o.subnet}: it should be ${formatSubnet(s)}`);
      if (s.prefix > 30) throw new InvalidArgumentError(`invalid subnet ${o.subnet}: too small for a network`);
      subnet = formatSubnet(s);
      // docker's checks: the range's address must be in the subnet (a longer range is cut to the subnet).
      const range = o.ipRange ? parseRange(o.ipRange) : undefined;
      if (range && !contains(s, range.ip)) throw new ClientCheckError(`no matching subnet for range ${o.ipRange}`);
      if (o.gateway) {
        const g = parseIp(o.gateway);
        if (g === undefined || !contains(s, g) || g === s.base || g === lastAddress(s)) throw new ClientCheckError(`no matching subnet for gateway ${o.gateway}`);
        gateway = o.gateway;
      } else {
        // As docker's IPAM: the gateway is the first address containers could get (of the range, with one).
        const { first, last } = assignable(s, range);
        if (first > last) throw new PlyError('failed to allocate gateway (): No available addresses on this pool');
        gateway = formatIp(first);
      }
      for (const n of this.store.list()) {
        if (n.subnet && overlaps(parseSubnet(n.subnet), s)) throw new ConflictError(`Pool overlaps with other one on this address space`);
      }
    }
    const rec = this.store.create({
      name: o.name,
      driver: 'bridge',
      subnet,
      gateway,
      ...(o.ipRange ? { ipRange: o.ipRange } : {}),
      internal: !!o.internal,
      dns: true,
      ipamUser: !!o.subnet,
      labels: o.labels ?? {},
      options: o.options ?? {},
    });
    // The bridge's name follows docker's (br- and 12 hex of the ID). The subnet, given or chosen now, is held
    // machine-wide from here on, so no other store takes it before this network's bridge is up.
    this.store.setBridge(rec.id, o.options?.['com.docker.network.bridge.name'] ?? `br-${rec.id.slice(0, 12)}`);
    try {
      withHostLock((host) => {
        host.reclaimDeadStores(dropTable);
        const cur = this.store.get(rec.id)!;
        if (!subnet) return this.chooseSubnetLocked(cur, host);
        if (this.subnetTaken(cur, host)) throw new ConflictError('Pool overlaps with other one on this address space');
        host.addBridge(cur.bridge!, this.root, cur.id, subnet);
      });
    } catch (e) {
      this.store.delete(rec.id);
      throw e;
    }
    this.events?.emit('network', 'create', rec.id, { name: rec.name, type: 'bridge' });
    return this.store.get(rec.id)!;
  }

  /** `network rm`: refused while a container is connected; the bridge and its rules go. */
  remove(ref: string): NetworkRecord {
    const net = this.store.resolve(ref);
    if (PREDEFINED.includes(net.name)) throw new PlyError(`${net.name} is a pre-defined network and cannot be removed`);
    this.store.delete(net.id);
    this.bringDown(net);
    this.events?.emit('network', 'destroy', net.id, { name: net.name, type: net.driver });
    return net;
  }

  inspect(ref: string | NetworkRecord): NetworkInspect {
    let net = typeof ref === 'string' ? this.store.resolve(ref) : ref;
    if (net.name === 'bridge' && net.driver === 'bridge' && !net.subnet) net = this.reserveDefaultSubnet(net);
    const containers: NetworkInspect['Containers'] = {};
    const prefix = net.subnet ? parseSubnet(net.subnet).prefix : 0;
    for (const e of this.store.endpointsOf(net.id)) {
      containers[e.container] = { Name: e.name, EndpointID: e.id, MacAddress: e.mac, IPv4Address: `${e.ip}/${prefix}`, IPv6Address: '' };
    }
    const isDefault = net.name === 'bridge';
    const options = isDefault
      ? {
          'com.docker.network.bridge.default_bridge': 'true',
          'com.docker.network.bridge.enable_icc': 'true',
          'com.docker.network.bridge.enable_ip_masquerade': 'true',
          'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
          'com.docker.network.bridge.name': net.bridge ?? this.names.defaultBridge,
          'com.docker.network.driver.mtu': '1500',
        }
      : net.options;
    return {
      Name: net.name,
      Id: net.id,
      Created: new Date(net.created).toISOString(),
      Scope: 'local',
      Driver: net.driver,
      EnableIPv6: false,
      IPAM: {
        Driver: 'default',
        Options: net.driver === 'bridge' && !isDefault ? {} : null,
        Config: net.subnet ? [{ Subnet: net.subnet, ...(net.ipRange ? { IPRange: net.ipRange } : {}), ...(net.gateway ? { Gateway: net.gateway } : {}) }] : [],
      },
      Internal: net.internal,
      Attachable: false,
      Ingress: false,
      ConfigFrom: { Network: '' },
      ConfigOnly: false,
      Containers: containers,
      Options: options,
      Labels: net.labels,
    };
  }

  // ------------------------------------------------------------------------------------------------------
  // A container's life on its networks

  /** The networks a container joins, in order (the mode's first), resolved; docker's error for a missing one. */
  networksOf(c: ContainerNetSpec): { net: NetworkRecord; cfg: EndpointConfig }[] {
    const names = Object.keys(c.networks);
    if (!names.includes(c.mode)) names.unshift(c.mode);
    return names.map((n) => ({ net: this.store.resolve(n), cfg: c.networks[n] ?? {} }));
  }

  /**
   * Everything a starting container gets: for host and none nothing on the host (the runtime shares the host's
   * namespace or makes an empty one); for bridge networks a namespace with one interface per network, an address
   * each (one transaction), its published ports, its names in DNS. On failure everything taken is given back.
   */
  async attach(c: ContainerNetSpec): Promise<Attachment> {
    const joined = this.networksOf(c);
    const first = joined[0]!.net;
    if (first.driver !== 'bridge') {
      if (joined.length > 1) throw new ConflictError(`container cannot be connected to multiple networks with one of the networks in ${first.name} mode`);
      return { hosts: this.hostsFile(c, first.driver === 'host' ? undefined : []), resolvConf: this.resolvConf(c, first.driver === 'host' ? 'host' : 'filtered') };
    }
    for (const { net } of joined) {
      if (net.driver !== 'bridge') throw new ConflictError(`container cannot be connected to network ${net.name} and ${first.name}`);
      this.bringUp(net);
    }
    const reqs: EndpointRequest[] = joined.map(({ net, cfg }) => ({
      network: this.store.get(net.id)!,
      aliases: net.dns ? [...(cfg.aliases ?? []), c.id.slice(0, 12)] : cfg.aliases ?? [],
      ip: cfg.ip,
      mac: cfg.mac,
    }));
    const publishTo = reqs.find((r) => !r.network.internal);
    const ports: PortRequest[] = publishTo ? portRequests(c.portBindings, c.publishAll, c.exposed) : [];
    const candidates = new Map<PortRequest, number[]>();
    for (const p of ports) if (p.hostPort === 0) candidates.set(p, await freePorts(p.proto, p.hostIp, 3));
    const fd = native.netnsCreate();
    const netns = `/proc/${process.pid}/fd/${fd}`;
    let allocated;
    try {
      allocated = this.store.allocate(
      c.id,
      c.name,
      netns,
      c.dns,
      reqs,
      ports,
      (req, i) => ({ ifname: `eth${i}`, hostIfname: vethName(c.id, req.network.id) }),
      (p, taken) => {
        const port = (candidates.get(p) ?? []).find((n) => !taken(p.hostIp, n));
        if (port === undefined) throw new ConflictError('no free host port to publish on');
        return port;
      },
      );
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    const { sandbox, endpoints } = allocated;
    try {
      if (sandbox.ports.length > 0) portHolds.set(c.id, await holdPorts(sandbox.ports));
      endpoints.forEach((ep, i) => {
        const net = reqs[i]!.network;
        this.driver(net).join(net, ep, `/proc/self/fd/${fd}`, i === 0);
      });
      if (sandbox.ports.length > 0) this.applyFirewall();
      for (const net of new Set(reqs.filter((r) => r.network.dns).map((r) => r.network))) {
        this.updateDns(net);
        // aardvark reloads on SIGHUP in its own time and answers only containers it knows: the container starts once
        // the server answers it (its own name, asked from inside its namespace).
        this.dnsServer.ensureAnswers(`/proc/self/fd/${fd}`, net.name, net.gateway!, c.name.toLowerCase());
      }
    } catch (e) {
      this.detach(c.id);
      fs.closeSync(fd);
      throw e;
    }
    const dnsNet = reqs.find((r) => r.network.dns)?.network;
    return {
      netns,
      fd,
      hosts: this.hostsFile(c, endpoints, reqs[0]!.network.gateway),
      resolvConf: dnsNet ? this.resolvConf(c, 'dns', dnsNet.gateway) : this.resolvConf(c, 'filtered'),
    };
  }

  /**
   * Gives back everything a stopped container got (idempotent: also for one whose supervisor was killed): its
   * addresses, ports and DNS names. Its namespace, and the veths in it, the kernel frees with its last process.
   */
  detach(container: string): void {
    const sandbox = this.store.sandbox(container);
    if (!sandbox) return;
    const endpoints = this.store.endpoints(container);
    const nets = endpoints.map((e) => this.store.get(e.network)).filter((n): n is NetworkRecord => !!n);
    portHolds.get(container)?.close();
    portHolds.delete(container);
    this.store.release(container);
    if (sandbox.ports.length > 0) this.applyFirewall();
    for (const net of nets) if (net.dns) this.updateDns(net);
  }

  /** `network connect` for a running container (`pid`: its first process): one more interface in its namespace. */
  connectRunning(c: ContainerNetSpec, pid: number, net: NetworkRecord, cfg: EndpointConfig): Endpoint {
    const sandbox = this.store.sandbox(c.id);
    if (!sandbox) throw new ConflictError(`container ${c.name} has no network namespace of ply's to connect (network mode ${c.mode})`);
    if (net.driver !== 'bridge') throw new ConflictError(`container cannot be disconnected from host network or connected to host network`);
    this.bringUp(net);
    const fresh = this.store.get(net.id)!;
    const used = new Set(this.store.endpoints(c.id).map((e) => e.ifname));
    let i = 0;
    while (used.has(`eth${i}`)) i++;
    const ep = this.store.addEndpoint(
      c.id,
      c.name,
      { network: fresh, aliases: fresh.dns ? [...(cfg.aliases ?? []), c.id.slice(0, 12)] : cfg.aliases ?? [], ip: cfg.ip, mac: cfg.mac },
      { ifname: `eth${i}`, hostIfname: vethName(c.id, fresh.id) },
    );
    try {
      this.driver(fresh).join(fresh, ep, `/proc/${pid}/ns/net`, false);
    } catch (e) {
      this.store.removeEndpoint(c.id, fresh.id);
      throw e;
    }
    if (fresh.dns) {
      this.updateDns(fresh);
      this.dnsServer.ensureAnswers(`/proc/${pid}/ns/net`, fresh.name, fresh.gateway!, c.name.toLowerCase());
    }
    return ep;
  }

  disconnectRunning(container: string, net: NetworkRecord): void {
    const ep = this.store.endpoints(container).find((e) => e.network === net.id);
    if (!ep) return;
    this.driver(net).leave(net, ep);
    this.store.removeEndpoint(container, net.id);
    if (net.dns) this.updateDns(net);
  }

  // ------------------------------------------------------------------------------------------------------
  // The host side

  /** The bridge of a network, up with its address; the firewall table written when the bridge was missing. */
  bringUp(net: NetworkRecord): void {
    if (net.driver !== 'bridge') return;
    if (net.bridge && net.subnet && linkExists(net.bridge)) return;
    withHostLock((host) => {
      host.reclaimDeadStores(dropTable);
      let cur = this.store.get(net.id)!;
      if (!cur.bridge) {
        this.store.setBridge(cur.id, cur.name === 'bridge' ? this.names.defaultBridge : `br-${cur.id.slice(0, 12)}`);
        cur = this.store.get(net.id)!;
      }
      if (linkExists(cur.bridge!) && cur.subnet) return;
      // The default bridge takes a new range if its old one is now someone else's (the host's routes changed).
      const clash = !cur.subnet || this.subnetTaken(cur, host);
      if (clash) {
        if (cur.ipamUser) throw new ConflictError(`Pool overlaps with other one on this address space (${cur.subnet})`);
        this.chooseSubnetLocked(cur, host);
        cur = this.store.get(net.id)!;
      }
      this.driver(cur).up(cur);
      try {
        setSysctl(`net/ipv4/conf/${cur.bridge}/route_localnet`, '1');
        setSysctl('net/ipv4/ip_forward', '1');
        host.addBridge(cur.bridge!, this.root, cur.id, cur.subnet!);
        this.applyFirewall();
      } catch (e) {
        this.driver(cur).down(cur);
        throw e;
      }
    });
  }

  /**
   * The default bridge's subnet and gateway, chosen (and held machine-wide) on first sight rather than at its
   * first container: dockerd's bridge has them from the daemon's start, and clients read them from inspect
   * (testcontainers, in a container, takes the gateway as the host that reaches published ports; without one it
   * runs alpine from Docker Hub to find it). With no pool free, inspect shows none, as before.
   */
  private reserveDefaultSubnet(net: NetworkRecord): NetworkRecord {
    try {
      withHostLock((host) => {
        let cur = this.store.get(net.id)!;
        if (cur.subnet) return;
        if (!cur.bridge) {
          this.store.setBridge(cur.id, this.names.defaultBridge);
          cur = this.store.get(net.id)!;
        }
        this.chooseSubnetLocked(cur, host);
      });
    } catch (e) {
      if (!(e instanceof PlyError)) throw e;
    }
    return this.store.get(net.id) ?? net;
  }

  private subnetTaken(net: NetworkRecord, host: HostRegistry): boolean {
    const s = parseSubnet(net.subnet!);
    const routes = hostRoutes(net.bridge!);
    return routes.some((r) => overlaps(r, s)) || host.othersSubnets(this.root).some((r) => overlaps(r, s));
  }

  private chooseSubnetLocked(net: NetworkRecord, host: HostRegistry): void {
    const mine = this.store
      .list()
      .filter((n) => n.id !== net.id && n.subnet)
      .map((n) => parseSubnet(n.subnet!));
    const s = host.pickSubnet(this.root, mine);
    if (!s) {
      const others = host.otherStores(this.root);
      throw new PlyError(
        `could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network: every subnet of the pools${process.env.PLY_ADDRESS_POOLS ? ` in PLY_ADDRESS_POOLS (${process.env.PLY_ADDRESS_POOLS})` : ''} overlaps a route of the host, a network of this store or one held by ${others.length} other ply store${others.length === 1 ? '' : 's'}${others.length ? ` (${others.slice(0, 3).join(', ')}${others.length > 3 ? ', ...' : ''})` : ''}; remove networks or stores no longer used, or give more pools in PLY_ADDRESS_POOLS`,
      );
    }
    this.store.setAddressing(net.id, formatSubnet(s), formatIp(s.base + 1));
    // Held machine-wide from now on, so another store does not pick it before this one's bridge is up.
    host.addBridge(net.bridge!, this.root, net.id, formatSubnet(s));
  }

  private bringDown(net: NetworkRecord): void {
    if (net.driver !== 'bridge' || !net.bridge) return;
    withHostLock((host) => {
      this.driver(net).down(net);
      host.removeBridge(net.bridge!);
      this.applyFirewall();
    });
    if (net.dns && net.gateway) this.dnsServer.update(net.id, net.gateway, [], net.name);
  }

  /** Rewrites the store's firewall table from the DB (or drops it when the store has no bridge up). */
  applyFirewall(): void {
    const nets = this.store.list().filter((n) => n.driver === 'bridge' && n.bridge && n.subnet && linkExists(n.bridge));
    const fwNets: FirewallNetwork[] = nets.map((n) => ({ bridge: n.bridge!, subnet: n.subnet!, internal: n.internal }));
    const ports: FirewallPort[] = [];
    for (const s of this.store.sandboxes()) {
      if (s.ports.length === 0) continue;
      const ep = this.store.endpoints(s.container).find((e) => nets.some((n) => n.id === e.network && !n.internal));
      if (!ep) continue;
      for (const p of s.ports) ports.push({ ...p, containerIp: ep.ip });
    }
    if (fwNets.length === 0) dropTable(this.names.table);
    else applyTable(this.names.table, fwNets, ports);
  }

  /** Rewrites a DNS network's names (each container's name and aliases; its --dns servers as upstreams) and signals the server. */
  private updateDns(net: NetworkRecord): void {
    if (!net.gateway) return;
    const entries = this.store.endpointsOf(net.id).map((e) => ({ container: e.container, ip: e.ip, names: [e.name, ...e.aliases], servers: this.store.sandbox(e.container)?.dns ?? [] }));
    const pid = this.dnsServer.update(net.id, net.gateway, entries, net.name);
    if (pid) withHostLock((h) => h.setDnsPid(this.root, pid));
  }

  /**
   * A running container's new name (rename; `pid`: its first process): its endpoints and the DNS names on its
   * networks follow, as docker's do, and rename returns once the server answers the new name.
   */
  renameContainer(container: string, name: string, pid?: number): void {
    const changed = this.store.renameEndpoints(container, name);
    for (const id of changed) {
      const net = this.store.get(id);
      if (!net?.dns || !net.gateway) continue;
      this.updateDns(net);
      if (pid) this.dnsServer.ensureAnswers(`/proc/${pid}/ns/net`, net.name, net.gateway, name.toLowerCase());
    }
  }

  /** docker's NetworkSettings of a container: its ports and, while it runs, its addresses on each network. */
  settings(c: ContainerNetSpec): NetworkSettings {
    const sandbox = this.store.sandbox(c.id);
    const endpoints = sandbox ? this.store.endpoints(c.id) : [];
    const networks: Record<string, EndpointSettings> = {};
    const names = c.mode.startsWith('container:') ? [] : [...new Set([c.mode, ...Object.keys(c.networks)])];
    for (const name of names) {
      const net = this.store.find(name);
      const ep = net && endpoints.find((e) => e.network === net.id);
      const prefix = net?.subnet ? parseSubnet(net.subnet).prefix : 0;
      const cfg = c.networks[name] ?? {};
      networks[name] = {
        IPAMConfig: cfg.ip ? { IPv4Address: cfg.ip } : null,
        Links: null,
        Aliases: ep && ep.aliases.length ? ep.aliases : cfg.aliases?.length ? cfg.aliases : null,
        MacAddress: ep?.mac ?? '',
        NetworkID: net?.id ?? '',
        EndpointID: ep?.id ?? '',
        Gateway: ep && !net?.internal ? net?.gateway ?? '' : '',
        IPAddress: ep?.ip ?? '',
        IPPrefixLen: ep ? prefix : 0,
        IPv6Gateway: '',
        GlobalIPv6Address: '',
        GlobalIPv6PrefixLen: 0,
        DriverOpts: null,
        DNSNames: ep && net?.dns ? [c.name, ...ep.aliases] : null,
      };
    }
    const primary = c.mode === 'bridge' ? networks['bridge'] : undefined;
    return {
      Bridge: '',
      SandboxID: sandbox ? createHash('sha256').update(sandbox.netns + sandbox.created).digest('hex') : '',
      SandboxKey: sandbox?.netns ?? '',
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      Ports: portsView(c.exposed, c.portBindings, sandbox?.ports),
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      EndpointID: primary?.EndpointID ?? '',
      Gateway: primary?.Gateway ?? '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      IPAddress: primary?.IPAddress ?? '',
      IPPrefixLen: primary?.IPPrefixLen ?? 0,
      IPv6Gateway: '',
      MacAddress: primary?.MacAddress ?? '',
      Networks: networks,
    };
  }

  /** The published ports in force for a running container (docker port). */
  ports(container: string): PortMapping[] {
    return this.store.sandbox(container)?.ports ?? [];
  }

  // ------------------------------------------------------------------------------------------------------
  // /etc files

  /** /etc/hosts: docker's lines, the --add-host entries, and the container's own address (undefined: the host's file). */
  hostsFile(c: ContainerNetSpec, endpoints: Endpoint[] | undefined, gateway?: string): string {
    const extra = c.extraHosts.map((h) => {
      const i = h.indexOf(':');
      const ip = h.slice(i + 1);
      return `${ip === 'host-gateway' ? gateway ?? '127.0.0.1' : ip}\t${h.slice(0, i)}\n`;
    });
    if (endpoints === undefined) return `${readOr('/etc/hosts', BASE_HOSTS)}${extra.join('')}`;
    const own = endpoints.length ? `${endpoints[0]!.ip}\t${c.hostname}\n` : '';
    return `${BASE_HOSTS}${extra.join('')}${own}`;
  }

  /**
   * /etc/resolv.conf: on a DNS network the network's server; otherwise the host's, without loopback servers a
   * namespace of its own cannot reach (docker's defaults when none are left); --dns, --dns-search, --dns-option win.
   */
  resolvConf(c: ContainerNetSpec, kind: 'host' | 'filtered' | 'dns', gateway?: string): string {
    const hostText = readOr('/etc/resolv.conf', '');
    let servers: string[] = [];
    let search: string[] = [];
    let options: string[] = [];
    for (const line of hostText.split('\n')) {
      const f = line.trim().split(/\s+/);
      if (f[0] === 'nameserver' && f[1]) servers.push(f[1]);
      else if ((f[0] === 'search' || f[0] === 'domain') && f.length > 1) search = f.slice(1);
      else if (f[0] === 'options') options.push(...f.slice(1));
    }
    if (kind === 'filtered') servers = servers.filter((s) => !/^127\.|^::1$/.test(s));
    if (c.dns.length) servers = c.dns;
    if (kind === 'dns' && gateway) servers = [gateway];
    if (kind !== 'host' && servers.length === 0) servers = ['8.8.8.8', '8.8.4.4'];
    if (c.dnsSearch.length) search = c.dnsSearch.filter((s) => s !== '.');
    if (c.dnsOptions.length) options = c.dnsOptions;
    const lines = [...(search.length ? [`search ${search.join(' ')}`] : []), ...servers.map((s) => `nameserver ${s}`), ...(options.length ? [`options ${options.join(' ')}`] : [])];
    return `${lines.join('\n')}\n`;
  }

  // ------------------------------------------------------------------------------------------------------
  // Repair

  /**
   * What is left over on the host: sandboxes of containers not running (`isRunning`), namespace files of this
   * store the DB does not know, a missing firewall table. With `repair`, removes or rewrites them.
   */
  check(isRunning: (container: string) => boolean, repair: boolean): string[] {
    const problems: string[] = [];
    for (const s of this.store.sandboxes()) {
      if (isRunning(s.container)) continue;
      problems.push(`network sandbox of stopped container ${s.container.slice(0, 12)} (${s.netns})`);
      if (repair) this.detach(s.container);
    }
    const up = this.store.list().filter((n) => n.driver === 'bridge' && n.bridge && linkExists(n.bridge));
    const known = new Set(this.store.sandboxes().flatMap((s) => this.store.endpoints(s.container).map((e) => e.hostIfname)));
    for (const n of up) {
      for (const port of bridgePorts(n.bridge!)) {
        if (known.has(port)) continue;
        problems.push(`veth ${port} on ${n.bridge} belongs to no running container`);
        if (repair) native.linkDelete(null, port);
      }
    }
    if (up.length > 0 && !hasTable(this.names.table)) {
      problems.push(`firewall table ${this.names.table} is missing`);
      if (repair) this.applyFirewall();
    }
    return problems;
  }
}

/** A veth's host end: 'veth' and 11 hex of container and network (15 characters, the kernel's limit). */
function vethName(container: string, network: string): string {
  return `veth${createHash('sha256').update(`${container}/${network}`).digest('hex').slice(0, 11)}`;
}

/** The interfaces plugged into a bridge. */
function bridgePorts(bridge: string): string[] {
  try {
    return fs.readdirSync(`/sys/class/net/${bridge}/brif`);
  } catch {
    return [];
  }
}

function setSysctl(key: string, value: string): void {
  try {
    fs.writeFileSync(`/proc/sys/${key}`, value);
  } catch {
    // not permitted (a container without /proc/sys write access): publishing on 127.0.0.1 will not work
  }
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}
