// Published ports: docker's -p syntax, its PortBindings / Ports shapes, and choosing a free host port.
import net from 'node:net';
import dgram from 'node:dgram';
import { ConflictError, UsageError } from '../errors.js';
import { parseIp } from './ipv4.js';
import type { PortMapping, PortRequest } from './store.js';

/** docker's HostConfig.PortBindings: "80/tcp" → [{HostIp, HostPort}] (HostPort "" = any). */
export type PortBindings = Record<string, { HostIp: string; HostPort: string }[]>;

function parsePort(s: string, what: string, spec: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(s);
  if (!m) throw new UsageError(`invalid ${what}: ${s}`);
  const a = Number(m[1]);
  const b = m[2] !== undefined ? Number(m[2]) : a;
  if (a > 65535 || b > 65535 || b < a || (what === 'containerPort' && a === 0)) {
    throw new UsageError(what === 'hostPort' ? `invalid hostPort: ${s}` : `invalid port format for ${spec}`);
  }
  return [a, b];
}

/**
 * `-p [IP:][HOST:]CTR[/PROTO]` (ports may be ranges of equal length, HOST may be empty) into PortBindings, merged
 * over `into`.
 */
export function parsePublish(specs: string[], into: PortBindings = {}): PortBindings {
  for (const spec of specs) {
    let rest = spec;
    let proto = 'tcp';
    const slash = rest.lastIndexOf('/');
    if (slash >= 0) {
      proto = rest.slice(slash + 1).toLowerCase();
      rest = rest.slice(0, slash);
      if (proto !== 'tcp' && proto !== 'udp' && proto !== 'sctp') throw new UsageError(`invalid proto: ${proto}`);
      if (proto === 'sctp') throw new UsageError(`ply does not publish sctp ports: ${spec}`);
    }
    const parts = rest.split(':');
    let ip = '';
    let host = '';
    let ctr: string;
    if (parts.length === 1) ctr = parts[0]!;
    else if (parts.length === 2) [host, ctr] = parts as [string, string];
    else if (parts.length === 3) [ip, host, ctr] = parts as [string, string, string];
    else throw new UsageError(`invalid port format for ${spec}: IPv6 host addresses are not supported`);
    if (ip !== '' && parseIp(ip) === undefined) throw new UsageError(`invalid IP address: ${ip}`);
    if (ctr === '') throw new UsageError(`no port specified: ${spec}<empty>`);
    const [c0, c1] = parsePort(ctr, 'containerPort', spec);
    let h0 = 0;
    let h1 = 0;
    if (host !== '') [h0, h1] = parsePort(host, 'hostPort', spec);
    if (host !== '' && h1 - h0 !== c1 - c0 && !(h1 > h0 && c0 === c1)) {
      throw new UsageError(`invalid ranges specified for container and host Ports: ${ctr} and ${host}`);
    }
    for (let i = 0; i <= c1 - c0; i++) {
      const key = `${c0 + i}/${proto}`;
      const hp = host === '' ? '' : c0 === c1 && h1 > h0 ? `${h0}-${h1}` : String(h0 + i);
      (into[key] ??= []).push({ HostIp: ip, HostPort: hp });
    }
  }
  return into;
}

/** The requests for a container: its bindings, plus (with -P) every exposed port not bound, on a random port. */
export function portRequests(bindings: PortBindings, publishAll: boolean, exposed: string[]): PortRequest[] {
  const out: PortRequest[] = [];
  const keys = new Set(Object.keys(bindings));
  const all = { ...bindings };
  if (publishAll) for (const e of exposed) if (!keys.has(e)) all[e] = [{ HostIp: '', HostPort: '' }];
  for (const [key, list] of Object.entries(all)) {
    const [port, proto] = splitKey(key);
    for (const b of list) {
      // A host range for one container port (-p 8000-8010:80) takes the first free port of it; ply takes the first.
      const hostPort = b.HostPort === '' ? 0 : Number(b.HostPort.split('-')[0]);
      out.push({ proto, containerPort: port, hostIp: b.HostIp || '0.0.0.0', hostPort });
    }
  }
  return out;
}

export function splitKey(key: string): [number, 'tcp' | 'udp'] {
  const [p, proto] = key.split('/');
  return [Number(p), (proto === 'udp' ? 'udp' : 'tcp') as 'tcp' | 'udp'];
}

/** docker's NetworkSettings.Ports: every exposed or published port, with its bindings in force (null: none). */
export function portsView(exposed: string[], bindings: PortBindings, inForce: PortMapping[] | undefined): Record<string, { HostIp: string; HostPort: string }[] | null> {
  const out: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
  if (!inForce) return out;
  for (const k of [...exposed, ...Object.keys(bindings)]) out[k] = null;
  for (const m of inForce) {
    const k = `${m.containerPort}/${m.proto}`;
    (out[k] ??= []).push({ HostIp: m.hostIp, HostPort: String(m.hostPort) });
  }
  return out;
}

/** Ports the kernel says are free now (binding port 0), as candidates for a random host port. */
export async function freePorts(proto: 'tcp' | 'udp', hostIp: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    out.push(
      await new Promise<number>((resolve) => {
        if (proto === 'udp') {
          const s = dgram.createSocket('udp4');
          s.once('error', () => resolve(0));
          s.bind(0, hostIp, () => {
            const port = s.address().port;
            s.close(() => resolve(port));
          });
        } else {
          const s = net.createServer();
          s.once('error', () => resolve(0));
          s.listen(0, hostIp, () => {
            const port = (s.address() as net.AddressInfo).port;
            s.close(() => resolve(port));
          });
        }
      }),
    );
  }
  return out.filter((p) => p > 0);
}

/** Sockets bound to published host ports, held by a container's supervisor while it runs. */
export interface PortHold {
  close(): void;
}

/**
 * Binds each published host port (as docker's proxy does, without carrying traffic: the DNAT rule takes every
 * connection first), so no other program or ply store can take it while the container runs; the binding goes with
 * the supervisor, even when it is killed.
 */
export async function holdPorts(ports: PortMapping[]): Promise<PortHold> {
  const held: (net.Server | dgram.Socket)[] = [];
  const close = () => {
    for (const h of held) h.close();
  };
  try {
    for (const p of ports) {
      const host = p.hostIp === '' ? '0.0.0.0' : p.hostIp;
      await new Promise<void>((resolve, reject) => {
        const fail = (e: NodeJS.ErrnoException) =>
          reject(new ConflictError(`driver failed programming external connectivity on endpoint: Error starting userland proxy: listen ${p.proto}4 ${host}:${p.hostPort}: bind: ${e.code === 'EADDRINUSE' ? 'address already in use' : e.message}`));
        if (p.proto === 'udp') {
          const s = dgram.createSocket('udp4');
          s.once('error', fail);
          s.bind(p.hostPort, host, () => {
            s.unref();
            held.push(s);
            resolve();
          });
        } else {
          const s = net.createServer();
          s.once('error', fail);
          s.listen({ port: p.hostPort, host, exclusive: true, backlog: 1 }, () => {
            s.unref();
            held.push(s);
            resolve();
          });
        }
      });
    }
  } catch (e) {
    close();
    throw e;
  }
  return { close };
}
