// IPv4 addresses and subnets as numbers: parsing, formatting, overlap, docker's MAC-from-IP.
import { ClientCheckError, InvalidArgumentError } from '../errors.js';

export interface Subnet {
  /** Network address as an unsigned 32-bit number. */
  base: number;
  prefix: number;
}

export function parseIp(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** "a.b.c.d/len" (host bits must be zero, as docker insists). */
export function parseSubnet(s: string): Subnet {
  const i = s.indexOf('/');
  const ip = parseIp(i < 0 ? s : s.slice(0, i));
  const prefix = i < 0 ? NaN : Number(s.slice(i + 1));
  if (ip === undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > 32 || s.slice(i + 1) === '') {
    throw new InvalidArgumentError(`Invalid subnet ${s} : invalid CIDR address: ${s}`);
  }
  return { base: (ip & mask(prefix)) >>> 0, prefix };
}

/** docker's --ip-range: "a.b.c.d/len", host bits allowed (the range is the masked one; `ip` the one written). */
export function parseRange(s: string): Subnet & { ip: number } {
  const i = s.indexOf('/');
  const ip = i < 0 ? undefined : parseIp(s.slice(0, i));
  const prefix = i < 0 ? NaN : Number(s.slice(i + 1));
  if (ip === undefined || !/^\d{1,2}$/.test(s.slice(i + 1)) || prefix > 32) throw new ClientCheckError(`invalid CIDR address: ${s}`);
  return { base: (ip & mask(prefix)) >>> 0, prefix, ip };
}

/**
 * The addresses a network gives its containers (and its gateway, when none was given): the subnet's without its
 * network and broadcast addresses, within `range` (--ip-range) when there is one. Empty when first > last.
 */
export function assignable(subnet: Subnet, range?: Subnet): { first: number; last: number } {
  let first = subnet.base + 1;
  let last = lastAddress(subnet) - 1;
  if (range) {
    first = Math.max(first, range.base);
    last = Math.min(last, lastAddress(range));
  }
  return { first, last };
}

export function formatSubnet(s: Subnet): string {
  return `${formatIp(s.base)}/${s.prefix}`;
}

export function contains(s: Subnet, ip: number): boolean {
  return ((ip & mask(s.prefix)) >>> 0) === s.base;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & mask(p)) >>> 0) === ((b.base & mask(p)) >>> 0);
}

/** The last address of the subnet (its broadcast address). */
export function lastAddress(s: Subnet): number {
  return (s.base | (~mask(s.prefix) >>> 0)) >>> 0;
}

/** docker's container MAC: 02:42 followed by the four bytes of the IPv4 address. */
export function macFromIp(ip: number): string {
  return ['02', '42', ...[ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** A range networks get their subnets from: `base` cut into subnets of prefix length `size` (docker's default-address-pools). */
export interface AddressPool {
  base: Subnet;
  size: number;
}

const pool = (base: string, size: number): AddressPool => ({ base: parseSubnet(base), size });

/**
 * Where networks without --subnet get theirs: docker's default pools (172.17-31.0.0/16, then 192.168.0.0/16 in
 * /20s: 31 networks), then, once those are all taken (many stores on one machine), podman's default subnet pools
 * (10.89.0.0 to 10.255.255.0 in /24s).
 */
export const DEFAULT_POOLS: AddressPool[] = [
  ...Array.from({ length: 15 }, (_, i) => pool(`172.${17 + i}.0.0/16`, 16)),
  pool('192.168.0.0/16', 20),
  pool('10.89.0.0/16', 24),
  pool('10.90.0.0/15', 24),
  pool('10.92.0.0/14', 24),
  pool('10.96.0.0/11', 24),
  pool('10.128.0.0/9', 24),
];

/**
 * Pools as dockerd's --default-address-pool takes them, several separated by spaces or semicolons:
 * "base=10.10.0.0/16,size=24 base=10.20.0.0/16,size=24".
 */
export function parsePools(text: string): AddressPool[] {
  const out: AddressPool[] = [];
  for (const spec of text.split(/[\s;]+/).filter(Boolean)) {
    const kv = Object.fromEntries(spec.split(',').map((f) => [f.slice(0, f.indexOf('=')), f.slice(f.indexOf('=') + 1)]));
    const size = Number(kv.size);
    if (!kv.base || !/^\d+$/.test(kv.size ?? '')) throw new InvalidArgumentError(`invalid address pool "${spec}": expected base=a.b.c.d/len,size=N`);
    const base = parseSubnet(kv.base);
    if (size < base.prefix || size > 30) throw new InvalidArgumentError(`invalid address pool "${spec}": size must be between ${base.prefix} and 30`);
    out.push({ base, size });
  }
  if (out.length === 0) throw new InvalidArgumentError('no address pools given');
  return out;
}

/** The subnets of the pools, in order, that overlap none of `taken`. */
export function* freeSubnets(pools: AddressPool[], taken: Subnet[]): Generator<Subnet> {
  for (const p of pools) {
    const step = 2 ** (32 - p.size);
    const end = lastAddress(p.base);
    for (let base = p.base.base; base <= end; base += step) {
      const s = { base, prefix: p.size };
      const clash = taken.find((t) => overlaps(s, t));
      // Skip past a taken range larger than one subnet at once (a /16 route over /24 pools).
      if (clash) {
        if (clash.prefix < p.size) base = lastAddress(clash) + 1 - step;
        continue;
      }
      yield s;
    }
  }
}
