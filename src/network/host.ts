// What ply's stores share on one machine: bridge names, subnets, nftables tables and DNS servers. A small SQLite
// file on /run (gone at reboot, like the bridges) records which store owns what, and its write lock serialises
// every change to them, so parallel stores never pick one subnet or fight over one name. Resources of a store
// whose directory is gone (a removed test store) are reclaimed by the next store that brings a bridge up.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { openSqlite, writeTx, type DB } from '../db/db.js';
import * as native from '../native/index.js';
import { isServerOf } from './dns.js';
import { dropTable } from './firewall.js';
import { DEFAULT_POOLS, freeSubnets, mask, parsePools, parseSubnet, type AddressPool, type Subnet } from './ipv4.js';

export const RUN_DIR = process.env.PLY_NET_RUN_DIR ?? '/run/ply';

const MIGRATIONS = [
  `
  CREATE TABLE stores (tag TEXT PRIMARY KEY, root TEXT NOT NULL, dns_pid INTEGER NOT NULL DEFAULT 0);
  CREATE TABLE bridges (name TEXT PRIMARY KEY, tag TEXT NOT NULL, network TEXT NOT NULL, subnet TEXT NOT NULL);
  `,
];

let hostDb: DB | undefined;

function db(): DB {
  if (!hostDb) {
    fs.mkdirSync(RUN_DIR, { recursive: true, mode: 0o700 });
    hostDb = openSqlite(path.join(RUN_DIR, 'net.db'), MIGRATIONS);
  }
  return hostDb;
}

/** Runs `fn` holding the machine-wide network lock. */
export function withHostLock<T>(fn: (h: HostRegistry) => T): T {
  const d = db();
  return writeTx(d, () => fn(new HostRegistry(d)));
}

/** A store's short tag: names its bridge, namespaces and firewall table. */
export function storeTag(root: string): string {
  return createHash('sha256').update(path.resolve(root)).digest('hex').slice(0, 8);
}

const DEFAULT_ROOT = '/var/lib/ply';

/** Names of the machine resources a store uses (the default store gets docker-like short ones). */
export function storeNames(root: string): { tag: string; defaultBridge: string; table: string } {
  const tag = storeTag(root);
  const isDefault = path.resolve(root) === DEFAULT_ROOT;
  return {
    tag,
    defaultBridge: isDefault ? 'ply0' : `ply-${tag}`,
    table: isDefault ? 'ply' : `ply-${tag}`,
  };
}

export class HostRegistry {
  constructor(private readonly d: DB) {}

  registerStore(root: string): void {
    this.d.prepare('INSERT OR IGNORE INTO stores (tag, root) VALUES (?, ?)').run(storeTag(root), path.resolve(root));
  }

  setDnsPid(root: string, pid: number): void {
    this.registerStore(root);
    this.d.prepare('UPDATE stores SET dns_pid = ? WHERE tag = ?').run(pid, storeTag(root));
  }

  addBridge(name: string, root: string, network: string, subnet: string): void {
    this.registerStore(root);
    this.d.prepare('INSERT OR REPLACE INTO bridges (name, tag, network, subnet) VALUES (?, ?, ?, ?)').run(name, storeTag(root), network, subnet);
  }

  removeBridge(name: string): void {
    this.d.prepare('DELETE FROM bridges WHERE name = ?').run(name);
  }

  /** Subnets other stores' bridges hold (whether or not their bridge is up now). */
  othersSubnets(root: string): Subnet[] {
    return (this.d.prepare('SELECT subnet FROM bridges WHERE tag != ?').all(storeTag(root)) as { subnet: string }[]).map((r) => parseSubnet(r.subnet));
  }

  /**
   * The first subnet of the address pools that overlaps none of `inUse`, the host's routes and other stores'
   * bridges; undefined when all are taken.
   */
  pickSubnet(root: string, inUse: Subnet[], pools = addressPools()): Subnet | undefined {
    const taken = [...inUse, ...hostRoutes(), ...this.othersSubnets(root)];
    return freeSubnets(pools, taken).next().value ?? undefined;
  }

  /** Other stores holding subnets: how many, and their directories (for the message when the pools run out). */
  otherStores(root: string): string[] {
    return (this.d.prepare('SELECT DISTINCT s.root FROM stores s JOIN bridges b ON b.tag = s.tag WHERE s.tag != ?').all(storeTag(root)) as { root: string }[]).map((r) => r.root);
  }

  /**
   * Reclaims what stores whose directory is gone left on the machine: bridges, firewall tables, DNS servers
   * (containers' namespaces and veths go by themselves with their last process). `dropTable` deletes one nftables table.
   */
  reclaimDeadStores(dropTable: (table: string) => void): void {
    const stores = this.d.prepare('SELECT tag, root, dns_pid FROM stores').all() as { tag: string; root: string; dns_pid: number }[];
    for (const s of stores) {
      if (fs.existsSync(path.join(s.root, 'ply.db'))) continue;
      const names = storeNames(s.root);
      for (const b of this.d.prepare('SELECT name FROM bridges WHERE tag = ?').all(s.tag) as { name: string }[]) {
        tryQuietly(() => native.linkDelete(null, b.name));
      }
      tryQuietly(() => dropTable(names.table));
      // Only if that pid is still this store's aardvark: the number may be another process's by now.
      if (s.dns_pid > 0 && isServerOf(s.dns_pid, path.join(s.root, 'network', 'dns'))) tryQuietly(() => process.kill(s.dns_pid, 'SIGKILL'));
      this.d.prepare('DELETE FROM bridges WHERE tag = ?').run(s.tag);
      this.d.prepare('DELETE FROM stores WHERE tag = ?').run(s.tag);
    }
  }
}

function tryQuietly(fn: () => unknown): void {
  try {
    fn();
  } catch {
    // already gone
  }
}

/** The pools new networks get their subnets from: $PLY_ADDRESS_POOLS (dockerd's --default-address-pool syntax) or the defaults. */
export function addressPools(): AddressPool[] {
  const env = process.env.PLY_ADDRESS_POOLS;
  return env ? parsePools(env) : DEFAULT_POOLS;
}

/** The IPv4 routes of the host (other than the default route and those through `except`), as subnets. */
export function hostRoutes(except?: string): Subnet[] {
  let text: string;
  try {
    text = fs.readFileSync('/proc/net/route', 'utf8');
  } catch {
    return [];
  }
  const out: Subnet[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8 || f[0] === except) continue;
    const dest = le32(f[1]!);
    const m = le32(f[7]!);
    if (m === 0) continue;
    let prefix = 0;
    while (prefix < 32 && ((m >>> (31 - prefix)) & 1) === 1) prefix++;
    out.push({ base: (dest & mask(prefix)) >>> 0, prefix });
  }
  return out;
}

/** /proc/net/route prints addresses as little-endian hex. */
function le32(hex: string): number {
  const n = parseInt(hex, 16);
  return (((n & 0xff) << 24) | (((n >>> 8) & 0xff) << 16) | (((n >>> 16) & 0xff) << 8) | ((n >>> 24) & 0xff)) >>> 0;
}

/** Reclaims what stores removed from disk left on the machine (test clean-up, repair). */
export function reclaimRemovedStores(): void {
  withHostLock((h) => h.reclaimDeadStores(dropTable));
}
