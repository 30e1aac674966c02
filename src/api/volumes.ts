// Volume and network routes (moby's volume and network routers).
import type { Engine } from '../engine.js';
import { BODIES } from './bodies.js';
import { badRequest, type Request } from './http.js';
import { route, type Route } from './router.js';

export function volumeAndNetworkRoutes(): Route[] {
  return [
    route('GET', '/volumes', volumeList),
    route('POST', '/volumes/create', volumeCreate),
    route('POST', '/volumes/prune', volumePrune),
    route('GET', '/volumes/{name}', volumeInspect),
    route('DELETE', '/volumes/{name}', volumeRemove),
    route('GET', '/networks', networkList),
    route('POST', '/networks/create', networkCreate),
    route('POST', '/networks/prune', networkPrune),
    route('GET', '/networks/{id}', networkInspect),
    route('DELETE', '/networks/{id}', networkRemove),
    route('POST', '/networks/{id}/connect', networkConnect),
    route('POST', '/networks/{id}/disconnect', networkDisconnect),
  ];
}

const name = (r: Request) => r.params[0]!;
const isEmpty = (v: unknown) => v === undefined || v === null || (typeof v === 'object' && Object.keys(v as object).length === 0);

async function volumeList(r: Request, e: Engine): Promise<void> {
  const res = e.volumes.list({ filters: r.filters() });
  r.json200({ Volumes: res.Volumes, Warnings: res.Warnings.length ? res.Warnings : null });
}

async function volumeCreate(r: Request, e: Engine): Promise<void> {
  const b = (await r.json<{ Name?: string; Driver?: string; DriverOpts?: Record<string, string>; Labels?: Record<string, string> }>(BODIES.volumeCreate)) ?? {};
  r.json200(e.volumes.create({ name: b.Name || undefined, driver: b.Driver || undefined, labels: b.Labels ?? undefined, options: b.DriverOpts ?? undefined }), 201);
}

async function volumePrune(r: Request, e: Engine): Promise<void> {
  r.json200(e.volumes.prune({ filters: r.filters() }));
}

async function volumeInspect(r: Request, e: Engine): Promise<void> {
  r.json200(e.volumes.inspect(name(r)));
}

async function volumeRemove(r: Request, e: Engine): Promise<void> {
  e.volumes.remove(name(r), { force: r.bool('force') });
  r.empty(204);
}

async function networkList(r: Request, e: Engine): Promise<void> {
  r.json200(e.networks.list({ filters: r.filters() }));
}

interface NetworkCreateBody {
  Name?: string;
  Driver?: string;
  Internal?: boolean;
  Attachable?: boolean;
  Ingress?: boolean;
  EnableIPv6?: boolean;
  ConfigOnly?: boolean;
  ConfigFrom?: { Network?: string } | null;
  Scope?: string;
  IPAM?: { Driver?: string; Config?: { Subnet?: string; IPRange?: string; Gateway?: string; AuxiliaryAddresses?: Record<string, string> }[] | null; Options?: Record<string, string> | null } | null;
  Options?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
}

async function networkCreate(r: Request, e: Engine): Promise<void> {
  const b = (await r.json<NetworkCreateBody>(BODIES.networkCreate)) ?? {};
  if (!b.Name) throw badRequest('network name is required');
  if (b.EnableIPv6) throw badRequest('ply does not support IPv6 networks yet');
  if (b.Ingress || b.ConfigOnly || b.ConfigFrom?.Network) throw badRequest('ply does not support swarm networks');
  if (b.Scope && b.Scope !== 'local') throw badRequest(`ply does not support ${b.Scope} networks`);
  if (b.IPAM?.Driver && b.IPAM.Driver !== 'default') throw badRequest(`ply does not support the IPAM driver ${b.IPAM.Driver}`);
  if (!isEmpty(b.IPAM?.Options)) throw badRequest('ply does not support IPAM options');
  const configs = b.IPAM?.Config ?? [];
  if (configs.length > 1) throw badRequest('ply networks take one IPAM config (one IPv4 subnet)');
  const cfg = configs[0] ?? {};
  if (!isEmpty(cfg.AuxiliaryAddresses)) throw badRequest('ply does not support auxiliary addresses');
  const { Id } = e.networks.create({
    name: b.Name,
    driver: b.Driver || undefined,
    subnet: cfg.Subnet || undefined,
    gateway: cfg.Gateway || undefined,
    ipRange: cfg.IPRange || undefined,
    internal: b.Internal ?? undefined,
    labels: b.Labels ?? undefined,
    options: b.Options ?? undefined,
  });
  r.json200({ Id, Warning: '' }, 201);
}

async function networkPrune(r: Request, e: Engine): Promise<void> {
  const res = e.networks.prune({ filters: r.filters() });
  r.json200({ NetworksDeleted: res.NetworksDeleted.length ? res.NetworksDeleted : null });
}

async function networkInspect(r: Request, e: Engine): Promise<void> {
  r.json200(e.networks.inspect(name(r)));
}

async function networkRemove(r: Request, e: Engine): Promise<void> {
  e.networks.remove(name(r));
  r.empty(204);
}

async function networkConnect(r: Request, e: Engine): Promise<void> {
  const b = (await r.json<{ Container?: string; EndpointConfig?: { Aliases?: string[] | null; IPAMConfig?: { IPv4Address?: string; IPv6Address?: string } | null; Links?: string[] | null; MacAddress?: string } | null }>(BODIES.networkConnect)) ?? {};
  if (!b.Container) throw badRequest('a container is required');
  const ep = b.EndpointConfig ?? {};
  if (ep.IPAMConfig?.IPv6Address) throw badRequest('ply does not support IPv6 addresses yet');
  if (ep.Links?.length) throw badRequest('ply does not support links');
  e.networks.inspect(name(r));
  e.containers.connect(b.Container, name(r), { aliases: ep.Aliases ?? undefined, ip: ep.IPAMConfig?.IPv4Address || undefined });
  r.empty(200);
}

async function networkDisconnect(r: Request, e: Engine): Promise<void> {
  const b = (await r.json<{ Container?: string; Force?: boolean }>(BODIES.networkDisconnect)) ?? {};
  if (!b.Container) throw badRequest('a container is required');
  e.networks.inspect(name(r));
  e.containers.disconnect(b.Container, name(r));
  r.empty(200);
}
