// A container's place on networks: what network/ needs of it, its namespace for a run, and `network connect` and
// `disconnect` (at once when it runs, and recorded for its next start).
import path from 'node:path';
import fs from 'node:fs';
import { ConflictError, PlyError } from '../errors.js';
import type { ContainerNetSpec, EndpointConfig } from '../network/index.js';
import type { Stores } from '../stores.js';
import type { RunNetwork } from './bundle.js';
import { isRunning, type Container } from './store.js';

type NetStores = Pick<Stores, 'containers' | 'networks' | 'events'>;

/** What the network module needs of a container. */
export function netSpec(c: Container): ContainerNetSpec {
  const s = c.spec;
  return {
    id: c.id,
    name: c.name,
    hostname: s.hostname,
    mode: s.network,
    networks: s.networks ?? {},
    portBindings: s.portBindings ?? {},
    publishAll: s.publishAll ?? false,
    exposed: Object.keys(s.exposedPorts ?? {}),
    dns: s.dns ?? [],
    dnsSearch: s.dnsSearch ?? [],
    dnsOptions: s.dnsOptions ?? [],
    extraHosts: s.extraHosts ?? [],
  };
}

/** docker refuses to create a container on a network (or in a container's namespace) that does not exist. */
export function checkNetworkMode(stores: NetStores, mode: string): void {
  if (mode.startsWith('container:')) {
    stores.containers.resolve(mode.slice('container:'.length));
    return;
  }
  if (!stores.networks.store.find(mode)) throw new PlyError(`network ${mode} not found`);
}

/**
 * The container's network: a namespace plugged into its networks (or the host's, an empty one, another
 * container's) and the text of its /etc/hosts and /etc/resolv.conf. `get` reads a container as it is now.
 */
export async function attachNetwork(stores: NetStores, c: Container, get: (ref: string) => Container): Promise<RunNetwork> {
  const s = c.spec;
  if (s.network.startsWith('container:')) {
    const other = get(s.network.slice('container:'.length));
    if (!isRunning(other)) throw new ConflictError(`cannot join network namespace of a non running container: container ${other.id} is ${other.state}`);
    const dir = stores.containers.pathOf(other.id);
    return {
      mode: other.spec.network === 'host' ? 'host' : 'none',
      netnsPath: other.spec.network === 'host' ? undefined : `/proc/${other.pid}/ns/net`,
      hosts: readOr(path.join(dir, 'hosts'), ''),
      resolvConf: readOr(path.join(dir, 'resolv.conf'), ''),
      hostname: other.spec.hostname,
    };
  }
  const att = await stores.networks.attach(netSpec(c));
  return { mode: s.network === 'host' ? 'host' : 'none', netnsPath: att.netns, fd: att.fd, hosts: att.hosts, resolvConf: att.resolvConf };
}

/** `network connect`: a running container gets an interface at once; any container keeps the network for its next start. */
export function connectNetwork(stores: NetStores, c: Container, network: string, cfg: EndpointConfig): void {
  const net = stores.networks.resolve(network);
  // Disconnected from every network (its mode became none; compose does this to a new container before it
  // connects it again with its aliases): the network it joins becomes its mode, as docker keeps NetworkMode.
  const left = c.spec.network === 'none' && c.spec.networks !== undefined && Object.keys(c.spec.networks).length === 0;
  const s = left && net.driver === 'bridge' ? { ...c.spec, network: net.name } : c.spec;
  if (net.driver !== 'bridge' || s.network === 'host' || s.network === 'none' || s.network.startsWith('container:')) {
    if (s.network.startsWith('container:')) throw new ConflictError('container sharing network namespace with another container or host cannot be connected to any other network');
    throw new ConflictError('container cannot be disconnected from host network or connected to host network');
  }
  const networks = { ...(s.networks ?? { [s.network]: {} }) };
  if (networks[net.name] !== undefined) throw new ConflictError(`endpoint with name ${c.name} already exists in network ${net.name}`);
  if (cfg.ip && !net.ipamUser) throw new ConflictError('user specified IP address is supported only when connecting to networks with user configured subnets');
  const clean: EndpointConfig = { ...(cfg.aliases?.length ? { aliases: cfg.aliases } : {}), ...(cfg.ip ? { ip: cfg.ip } : {}) };
  if (isRunning(c)) {
    stores.networks.connectRunning(netSpec(c), c.pid, net, clean);
    stores.events.emit('network', 'connect', net.id, { container: c.id, name: net.name, type: net.driver });
  }
  networks[net.name] = clean;
  stores.containers.update(c.id, { spec: { ...s, networks } });
}

/** `network disconnect`: the container leaves the network now (if running) and at its next start. */
export function disconnectNetwork(stores: NetStores, c: Container, network: string): void {
  const net = stores.networks.resolve(network);
  const s = c.spec;
  const networks = { ...(s.networks ?? { [s.network]: {} }) };
  if (net.driver === 'host' && s.network === 'host') throw new ConflictError('container cannot be disconnected from host network or connected to host network');
  if (networks[net.name] === undefined && s.network !== net.name) throw new ConflictError(`container ${c.id} is not connected to network ${net.name}`);
  if (isRunning(c)) {
    stores.networks.disconnectRunning(c.id, net);
    stores.events.emit('network', 'disconnect', net.id, { container: c.id, name: net.name, type: net.driver });
  }
  delete networks[net.name];
  // A container left without networks keeps docker's shape: NetworkMode stays, it starts with none of them.
  const rest = Object.keys(networks);
  stores.containers.update(c.id, { spec: { ...s, networks, network: s.network === net.name ? rest[0] ?? 'none' : s.network } });
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}
