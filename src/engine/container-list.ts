// docker ps for the engine: containers newest first in docker's summary shape, with docker's filters validated as
// dockerd does, the published and exposed ports, and dockerd's Status column.
import type { ContainerManager } from '../container/manager.js';
import { isRunning, isUp, type Container } from '../container/store.js';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import { ImageStore } from '../image/store.js';
import type { Stores } from '../stores.js';
import { humanDuration } from '../util/units.js';
import { mountPoints } from './container-inspect.js';
import { Filters, labelsMatch, type FilterInput } from './filters.js';
import type { ContainerSummary } from './types.js';

export interface ListContainersOptions {
  /** Stopped containers too (docker ps -a). */
  all?: boolean;
  /** Only the n most recently created (of every state). */
  limit?: number;
  /** SizeRw: bytes of each writable layer (slow). */
  size?: boolean;
  /** status, name, id, label, ancestor, exited. */
  filters?: FilterInput;
}

const CONTAINER_FILTERS = [
  'ancestor', 'before', 'expose', 'exited', 'health', 'id', 'isolation', 'is-task', 'label', 'name', 'network', 'publish', 'since', 'status', 'volume',
] as const;
/** docker's container states and health states, the values its status and health filters accept. */
const STATES = ['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'];
const HEALTH = ['starting', 'healthy', 'unhealthy', 'none'];

/** A container's health status for the health filter ('none' without a check). */
function healthStatus(c: Container): string {
  return c.health && c.spec.healthcheck ? c.health.Status : 'none';
}

/** Go's filters.Match: the value as a regular expression (one that does not compile matches nothing). */
function goRegexMatch(pattern: string, source: string): boolean {
  try {
    return new RegExp(pattern).test(source);
  } catch {
    return false;
  }
}

/** A publish/expose filter value: PORT[-PORT][/PROTO] (nat.ParsePortSpecs), each port of a range. */
function portFilter(v: string): { port: number; proto: string }[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/.exec(v);
  if (!m) throw new InvalidArgumentError(`invalid port format: ${v}`);
  const lo = Number(m[1]);
  const hi = m[2] !== undefined ? Number(m[2]) : lo;
  if (hi < lo || hi > 65535) throw new InvalidArgumentError(`invalid range specified for port: ${v}`);
  const out: { port: number; proto: string }[] = [];
  for (let p = lo; p <= hi; p++) out.push({ port: p, proto: m[3] ?? 'tcp' });
  return out;
}

/** docker ps: newest first; running ones only unless `all` (or a status/exited filter, or a limit). */
export function listContainers(stores: Stores, manager: ContainerManager, opts: ListContainersOptions = {}): ContainerSummary[] {
  const filters = Filters.parse(opts.filters, CONTAINER_FILTERS);
  let list = stores.containers.list().map((c) => manager.refresh(c));
  const all = opts.all || opts.limit !== undefined || filters.has('status') || filters.has('exited');
  const match = listFilter(stores, filters, list);
  if (!all) list = list.filter(isUp);
  list = list.filter(match);
  if (opts.limit !== undefined && opts.limit >= 0) list = list.slice(0, opts.limit);
  const names = stores.images.names();
  return list.map((c) => {
    const imgNames = names.get(c.image) ?? [];
    const summary: ContainerSummary = {
      Id: c.id,
      Names: [`/${c.name}`],
      Image: c.imageRef || (imgNames[0] ? ImageStore.display(imgNames[0]) : c.image.slice(7, 19)),
      ImageID: stores.images.get(c.image)?.id ?? c.image,
      // dockerd's: arguments with a space in single quotes.
      Command: [c.spec.path, ...c.spec.args.map((a) => (a.includes(' ') ? `'${a}'` : a))].join(' '),
      Created: Math.floor(c.created / 1000),
      Ports: isRunning(c) ? portList(stores, c) : [],
      Labels: c.spec.labels,
      State: c.state,
      Status: statusText(c),
      HostConfig: { NetworkMode: c.spec.network },
      NetworkSettings: { Networks: Object.fromEntries(Object.keys(c.spec.networks ?? { [c.spec.network]: {} }).map((n) => [n, {}])) },
      Mounts: mountPoints(stores, c, true),
    };
    if (opts.size) {
      summary.SizeRw = manager.writableLayerSize(c);
      summary.SizeRootFs = summary.SizeRw + (stores.images.get(c.image)?.size ?? 0);
    }
    return summary;
  });
}

/**
 * docker ps's filters, validated as dockerd does (a bad status, exited or health value is an error): name and id
 * are regular expressions, as Go's filters.Match; before/since a container; volume a name, source or destination;
 * network a name or an ID prefix; publish/expose a port (range) with an optional protocol.
 */
function listFilter(stores: Stores, filters: Filters, all: Container[]): (c: Container) => boolean {
  for (const v of filters.get('status')) if (!STATES.includes(v)) throw new InvalidArgumentError(`invalid filter 'status=${v}'`);
  const exited = filters.get('exited').map((v) => {
    if (!/^[+-]?\d+$/.test(v)) throw new InvalidArgumentError(`strconv.Atoi: parsing ${JSON.stringify(v)}: invalid syntax`);
    return Number(v);
  });
  for (const v of filters.get('health')) if (!HEALTH.includes(v)) throw new InvalidArgumentError(`Unrecognised filter value for health: ${v}`);
  const isTask = filters.get('is-task');
  if (isTask.length && !['true', 'false', '1', '0'].includes(isTask[isTask.length - 1]!)) throw new InvalidArgumentError(`invalid filter 'is-task=[${isTask.join(' ')}]'`);
  const created = (key: 'before' | 'since') => {
    const vs = filters.get(key);
    if (!vs.length) return undefined;
    const ref = vs[vs.length - 1]!;
    const c = all.find((x) => x.id === ref || x.name === ref.replace(/^\//, '')) ?? all.find((x) => x.id.startsWith(ref));
    if (!c) throw new NotFoundError(`no such container ${ref}`);
    return c.created;
  };
  const before = created('before');
  const since = created('since');
  const ports = (key: 'publish' | 'expose') => filters.get(key).flatMap(portFilter);
  const publish = ports('publish');
  const expose = ports('expose');
  const regex = (key: string, source: string) => filters.match(key, (v) => v === source || goRegexMatch(v, source));
  const networks = new Map(stores.networks.list().map((n) => [n.name, n.id]));
  return (c) => {
    const s = c.spec;
    if (!filters.match('status', (v) => c.state === v)) return false;
    if (exited.length && !(c.state === 'exited' && exited.includes(c.exitCode ?? 0))) return false;
    if (!regex('name', `/${c.name}`) || !regex('id', c.id)) return false;
    if (!filters.match('ancestor', (v) => c.imageRef === v || stores.images.lookup(v)?.digest === c.image)) return false;
    if (!labelsMatch(filters, s.labels)) return false;
    if (!filters.match('health', (v) => healthStatus(c) === v)) return false;
    if (isTask.length && ['true', '1'].includes(isTask[isTask.length - 1]!)) return false;
    if (!regex('isolation', '')) return false;
    if (before !== undefined && c.created >= before) return false;
    if (since !== undefined && c.created <= since) return false;
    if (
      !filters.match('volume', (v) =>
        s.mounts.some((m) => m.target === v || m.source === v || (m.type === 'volume' && stores.volumes.dataPath(m.source!) === v)),
      )
    ) {
      return false;
    }
    const joined = Object.keys(s.networks ?? { [s.network]: {} });
    if (!filters.match('network', (v) => joined.includes(v) || joined.some((n) => networks.get(n)?.startsWith(v)))) return false;
    if (publish.length || expose.length) {
      const list = isRunning(c) ? portList(stores, c) : [];
      const hit = list.some(
        (p) => publish.some((f) => f.proto === p.Type && p.PublicPort === f.port) || expose.some((f) => f.proto === p.Type && p.PrivatePort === f.port),
      );
      if (!hit) return false;
    }
    return true;
  };
}

/** The published ports (sorted by container port), then the exposed ones not published, as docker's list shows them. */
function portList(stores: Pick<Stores, 'networks'>, c: Container): ContainerSummary['Ports'] {
  const published = [...stores.networks.ports(c.id)].sort((a, b) => a.containerPort - b.containerPort);
  const seen = new Set(published.map((p) => `${p.containerPort}/${p.proto}`));
  return [
    ...published.map((p) => ({ IP: p.hostIp, PrivatePort: p.containerPort, PublicPort: p.hostPort, Type: p.proto })),
    ...Object.keys(c.spec.exposedPorts ?? {})
      .filter((e) => !seen.has(e))
      .map((e) => ({ PrivatePort: Number(e.split('/')[0]), Type: e.split('/')[1] ?? 'tcp' })),
  ];
}

/** dockerd's Status column. */
function statusText(c: Container): string {
  const now = Date.now();
  switch (c.state) {
    case 'running': {
      const h = c.spec.healthcheck && c.health?.Status;
      const health = h ? ` (${h === 'starting' ? 'health: starting' : h})` : '';
      return `Up ${humanDuration(now - c.startedAt)}${health}`;
    }
    case 'paused':
      return `Up ${humanDuration(now - c.startedAt)} (Paused)`;
    case 'exited':
      return `Exited (${c.exitCode}) ${humanDuration(now - c.finishedAt)} ago`;
    case 'restarting':
      return `Restarting (${c.exitCode}) ${humanDuration(now - c.finishedAt)} ago`;
    case 'removing':
      return 'Removal In Progress';
    case 'dead':
      return 'Dead';
    default:
      return 'Created';
  }
}
