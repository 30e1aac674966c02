// Which registries are reached how: the registries config (`$PLY_REGISTRIES_CONFIG`, else
// `$XDG_CONFIG_HOME/ply/registries.json`: `{"insecure": ["host:port", "host", "10.0.0.0/8", …]}`), loopback
// registries (plain HTTP), and the names docker gives registries (docker.io is served by registry-1.docker.io).
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.js';

export interface RegistriesConfig {
  insecure?: string[];
}

/** Path of the registries config: $PLY_REGISTRIES_CONFIG, else $XDG_CONFIG_HOME/ply/registries.json. */
export function registriesConfigPath(): string {
  if (process.env.PLY_REGISTRIES_CONFIG) return process.env.PLY_REGISTRIES_CONFIG;
  const base = process.env.XDG_CONFIG_HOME || path.join(process.env.HOME || os.homedir(), '.config');
  return path.join(base, 'ply', 'registries.json');
}

export function readRegistriesConfig(): RegistriesConfig {
  const file = registriesConfigPath();
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new InvalidArgumentError(`reading ${file}: ${(e as Error).message}`);
  }
  try {
    const cfg = JSON.parse(text) as RegistriesConfig;
    if (cfg.insecure !== undefined && (!Array.isArray(cfg.insecure) || cfg.insecure.some((s) => typeof s !== 'string'))) {
      throw new Error('"insecure" must be a list of strings');
    }
    return cfg;
  } catch (e) {
    throw new InvalidArgumentError(`${file}: invalid registries config: ${(e as Error).message}`);
  }
}

function splitHostPort(domain: string): { host: string; port?: string } {
  const u = new URL(`http://${domain}`);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return u.port ? { host, port: u.port } : { host };
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
}

/** True for localhost, 127.0.0.0/8 and ::1 (with any port). */
export function isLoopbackRegistry(domain: string): boolean {
  let host: string;
  try {
    host = splitHostPort(domain).host.toLowerCase();
  } catch {
    return false;
  }
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  if (net.isIPv6(host)) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

/** True when the registries config lists `domain` as insecure ('host:port', 'host' for any port, or IPv4 CIDR). */
export function isInsecureRegistry(domain: string, cfg: RegistriesConfig = readRegistriesConfig()): boolean {
  let hp: { host: string; port?: string };
  try {
    hp = splitHostPort(domain);
  } catch {
    return false;
  }
  for (const raw of cfg.insecure ?? []) {
    const entry = raw.trim().replace(/^https?:\/\//, '').replace(/\/+$/, '');
    if (entry === '') continue;
    const cidr = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(entry);
    if (cidr) {
      if (!net.isIPv4(hp.host)) continue;
      const bits = Number(cidr[2]);
      const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
      if (((ipv4ToInt(hp.host) & mask) >>> 0) === ((ipv4ToInt(cidr[1]!) & mask) >>> 0)) return true;
      continue;
    }
    if (entry.toLowerCase() === domain.toLowerCase()) return true;
    try {
      const e = splitHostPort(entry);
      if (e.port === undefined && e.host.toLowerCase() === hp.host.toLowerCase()) return true;
    } catch {
      /* not a host */
    }
  }
  return false;
}

/** The host that serves a registry domain's API: docker.io is served by registry-1.docker.io. */
export function registryEndpoint(domain: string): string {
  return domain === 'docker.io' || domain === 'index.docker.io' ? 'registry-1.docker.io' : domain;
}

/** The registry domain for what `ply login` is given: 'https://index.docker.io/v1/' -> 'docker.io', 'http://h:5000/x' -> 'h:5000'. */
export function serverDomain(server: string): string {
  let s = server.trim().replace(/^https?:\/\//, '');
  const slash = s.indexOf('/');
  if (slash !== -1) s = s.slice(0, slash);
  const lower = s.toLowerCase();
  if (lower === 'index.docker.io' || lower === 'registry-1.docker.io' || lower === 'registry.hub.docker.com') return 'docker.io';
  return s;
}
