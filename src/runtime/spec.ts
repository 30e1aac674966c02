// Generates an OCI runtime-spec config.json for runc the way docker does (moby oci/defaults.go
// DefaultLinuxSpec + daemon/oci_linux.go createSpec), minus what ply does not do.
//
// Deliberate differences from docker:
//  - No seccomp profile (runc runs fine without one) and no AppArmor/SELinux labels.
//  - noNewPrivileges defaults to TRUE (docker: false) unless the container is privileged.
//  - Capabilities and rlimits are clamped to what this (unprivileged-ish) process can actually grant:
//    runc fails with "unable to apply caps: operation not permitted" for a capability missing from its own
//    bounding set, and "error setting rlimit ... operation not permitted" for a hard limit above its own
//    (we may lack CAP_SYS_RESOURCE). So "all capabilities" (privileged, --cap-add ALL) means all those in our
//    bounding set, an explicit --cap-add of a capability we do not hold is an error, and rlimits are capped
//    at our hard limits.
//  - No cgroup namespace: docker uses the host cgroupns on cgroup v1 (and this machine's runc sees v1/hybrid
//    cgroups); a private cgroupns would only be docker's default on a pure cgroup v2 host.
//  - Bind mounts use plain "ro" rather than docker 25+'s recursive "rro" when the kernel supports it.

import fs from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, UsageError } from '../errors.js';
import type { SpecResources } from './cgroups.js';

// ---------------------------------------------------------------------------------------------------------
// The runtime-spec data model (the subset ply writes).

export interface RuntimeSpecMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface RuntimeSpecRlimit {
  /** 'RLIMIT_NOFILE', ... */
  type: string;
  /** Infinity means RLIM_INFINITY (written by writeBundle as 18446744073709551615). */
  hard: number;
  soft: number;
}

export interface RuntimeSpecCapabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

export interface RuntimeSpecProcess {
  terminal?: boolean;
  /** The terminal's size before the process runs (runc sets it on the console it makes). */
  consoleSize?: { height: number; width: number };
  user: { uid: number; gid: number; umask?: number; additionalGids?: number[] };
  args: string[];
  env?: string[];
  cwd: string;
  capabilities?: RuntimeSpecCapabilities;
  rlimits?: RuntimeSpecRlimit[];
  noNewPrivileges?: boolean;
  oomScoreAdj?: number;
  apparmorProfile?: string;
  selinuxLabel?: string;
}

export interface RuntimeSpecDevice {
  path: string;
  type: 'c' | 'b' | 'u' | 'p';
  major: number;
  minor: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface RuntimeSpecDeviceCgroup {
  allow: boolean;
  type?: 'a' | 'c' | 'b';
  major?: number;
  minor?: number;
  access?: string;
}

export interface RuntimeSpecNamespace {
  type: 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup';
  path?: string;
}

export interface RuntimeSpecLinux {
  namespaces: RuntimeSpecNamespace[];
  devices?: RuntimeSpecDevice[];
  resources?: { devices?: RuntimeSpecDeviceCgroup[] } & SpecResources;
  cgroupsPath?: string;
  sysctl?: Record<string, string>;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  rootfsPropagation?: string;
}

export interface RuntimeSpec {
  ociVersion: string;
  process: RuntimeSpecProcess;
  root: { path: string; readonly?: boolean };
  hostname?: string;
  mounts: RuntimeSpecMount[];
  annotations?: Record<string, string>;
  linux: RuntimeSpecLinux;
}

// ---------------------------------------------------------------------------------------------------------
// Options.

export interface MountSpec {
  type: 'bind' | 'volume' | 'tmpfs';
  /** Absolute host path (bind/volume); ignored for tmpfs. */
  source?: string;
  target: string;
  readonly?: boolean;
  /**
   * tmpfs: mount options merged over docker's defaults (noexec,nosuid,nodev), e.g. size=64m, mode=1777, exec.
   * bind/volume: extra options, e.g. a propagation mode (private, rprivate, shared, rshared, slave, rslave),
   * 'bind' for a non-recursive bind, or nosuid/nodev/noexec.
   */
  options?: string[];
  /** docker's HostConfig.Binds entry, for a mount `-v` gave with a host path or a volume name (SOURCE:TARGET[:MODE]). */
  bind?: string;
  /** volume: the local driver's options for the volume when this mount creates it (`--mount volume-opt=`). */
  volumeOptions?: Record<string, string>;
}

export interface SpecOptions {
  /** Absolute path of the mounted rootfs (the overlay merged dir). */
  rootfs: string;
  readonlyRootfs?: boolean;
  /** Resolved process args (entrypoint + cmd), non-empty. */
  args: string[];
  /** Final env (image Env merged with -e). PATH (if missing), HOSTNAME and, with a tty, TERM=xterm are added before it, docker-style. */
  env: string[];
  /** Default '/'. */
  cwd: string;
  user: { uid: number; gid: number; additionalGids: number[] };
  tty: boolean;
  /** With a TTY: its initial [rows, cols], set before the process runs (a resize after the start would race it). */
  consoleSize?: [number, number];
  hostname: string;
  /** host: the host's network namespace; none: a new one (only lo), or the one at `netnsPath`. */
  network: 'host' | 'none';
  /** A network namespace to join (a bridge network's, or another container's). */
  netnsPath?: string;
  /** User mounts (-v, --mount, --tmpfs), bind/volume sources already absolute host paths. */
  mounts: MountSpec[];
  /** Host paths of files bind-mounted at /etc/hosts, /etc/resolv.conf, /etc/hostname. */
  etcFiles?: { hosts?: string; resolvConf?: string; hostname?: string };
  privileged?: boolean;
  /** 'NET_ADMIN', 'net_admin', 'CAP_NET_ADMIN' or 'ALL'. */
  capAdd?: string[];
  capDrop?: string[];
  /** --init: the caller prepends the init binary to args (and mounts it); nothing changes here. */
  init?: boolean;
  /** Default true unless privileged (docker's default is false). */
  noNewPrivileges?: boolean;
  /** type 'RLIMIT_NOFILE' or 'nofile'; hard/soft -1 or Infinity = unlimited. Capped at this process's hard limits. */
  rlimits?: { type: string; hard: number; soft: number }[];
  /** e.g. 'ply/<id>' (runc cgroupfs driver: relative to runc's own cgroup). */
  cgroupsPath?: string;
  annotations?: Record<string, string>;
  /** Bytes; default 64 MiB. */
  shmSize?: number;
  /** Memory, CPU and pids limits (runtime/cgroups.ts specResources). */
  resources?: SpecResources;
}

// ---------------------------------------------------------------------------------------------------------
// Capabilities.

/** Every Linux capability by number, up to CAP_CHECKPOINT_RESTORE (40). */
export const ALL_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', // 0
  'CAP_DAC_OVERRIDE', // 1
  'CAP_DAC_READ_SEARCH', // 2
  'CAP_FOWNER', // 3
  'CAP_FSETID', // 4
  'CAP_KILL', // 5
  'CAP_SETGID', // 6
  'CAP_SETUID', // 7
  'CAP_SETPCAP', // 8
  'CAP_LINUX_IMMUTABLE', // 9
  'CAP_NET_BIND_SERVICE', // 10
  'CAP_NET_BROADCAST', // 11
  'CAP_NET_ADMIN', // 12
  'CAP_NET_RAW', // 13
  'CAP_IPC_LOCK', // 14
  'CAP_IPC_OWNER', // 15
  'CAP_SYS_MODULE', // 16
  'CAP_SYS_RAWIO', // 17
  'CAP_SYS_CHROOT', // 18
  'CAP_SYS_PTRACE', // 19
  'CAP_SYS_PACCT', // 20
  'CAP_SYS_ADMIN', // 21
  'CAP_SYS_BOOT', // 22
  'CAP_SYS_NICE', // 23
  'CAP_SYS_RESOURCE', // 24
  'CAP_SYS_TIME', // 25
  'CAP_SYS_TTY_CONFIG', // 26
  'CAP_MKNOD', // 27
  'CAP_LEASE', // 28
  'CAP_AUDIT_WRITE', // 29
  'CAP_AUDIT_CONTROL', // 30
  'CAP_SETFCAP', // 31
  'CAP_MAC_OVERRIDE', // 32
  'CAP_MAC_ADMIN', // 33
  'CAP_SYSLOG', // 34
  'CAP_WAKE_ALARM', // 35
  'CAP_BLOCK_SUSPEND', // 36
  'CAP_AUDIT_READ', // 37
  'CAP_PERFMON', // 38
  'CAP_BPF', // 39
  'CAP_CHECKPOINT_RESTORE', // 40
];

/** docker's 14 default capabilities (moby oci/caps/defaults.go), in docker's order. CapEff 0x00000000a80425fb. */
export const DEFAULT_CAPABILITIES: string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** 'net_admin' / 'NET_ADMIN' / 'cap_net_admin' → 'CAP_NET_ADMIN'; 'all' → 'ALL'. Throws InvalidArgumentError for unknown names. */
export function normalizeCapability(c: string): string {
  const up = c.trim().toUpperCase();
  if (up === 'ALL') return 'ALL';
  const name = up.startsWith('CAP_') ? up : `CAP_${up}`;
  if (!ALL_CAPABILITIES.includes(name)) throw new InvalidArgumentError(`unknown capability: "${name}"`);
  return name;
}

/** Capability number of a canonical 'CAP_X' name. */
export function capabilityNumber(name: string): number {
  const i = ALL_CAPABILITIES.indexOf(name);
  if (i < 0) throw new InvalidArgumentError(`unknown capability: "${name}"`);
  return i;
}

/** Bit mask (as /proc/PID/status prints it, 16 hex digits) of a capability list. */
export function capabilityMask(caps: readonly string[]): string {
  let m = 0n;
  for (const c of caps) m |= 1n << BigInt(capabilityNumber(c));
  return m.toString(16).padStart(16, '0');
}

/** The capabilities in this process's bounding set (only those we can pass on to a container). */
export function callerBoundingCapabilities(): string[] {
  let mask: bigint | undefined;
  try {
    const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) mask = BigInt(`0x${m[1]}`);
  } catch {
    /* not Linux? assume everything */
  }
  let lastCap = ALL_CAPABILITIES.length - 1;
  try {
    lastCap = Math.min(lastCap, Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim()));
  } catch {
    /* keep ours */
  }
  return ALL_CAPABILITIES.filter((_, i) => i <= lastCap && (mask === undefined || (mask & (1n << BigInt(i))) !== 0n));
}

/** docker's caps.TweakCapabilities, with "all" meaning all that this process holds. */
function tweakCapabilities(privileged: boolean, adds: string[], drops: string[]): string[] {
  const available = callerBoundingCapabilities();
  if (privileged) return available; // docker ignores --cap-drop with --privileged
  const capAdd = adds.map(normalizeCapability);
  const capDrop = drops.map(normalizeCapability);
  let caps: string[];
  if (capAdd.includes('ALL')) {
    caps = available.filter((c) => !capDrop.includes(c));
  } else {
    caps = capDrop.includes('ALL') ? [...capAdd] : [...DEFAULT_CAPABILITIES.filter((c) => !capDrop.includes(c)), ...capAdd];
    for (const c of caps) {
      if (!available.includes(c)) {
        throw new InvalidArgumentError(`capability ${c} cannot be granted: it is not in ply's own capability bounding set`);
      }
    }
  }
  return [...new Set(caps)];
}

// ---------------------------------------------------------------------------------------------------------
// Rlimits.

export interface Rlimit {
  /** Infinity = unlimited. */
  soft: number;
  hard: number;
}

/** The rlimit short names (docker --ulimit names) and their /proc/PID/limits labels. */
const RLIMIT_LABELS = {
  cpu: 'Max cpu time',
  fsize: 'Max file size',
  data: 'Max data size',
  stack: 'Max stack size',
  core: 'Max core file size',
  rss: 'Max resident set',
  nproc: 'Max processes',
  nofile: 'Max open files',
  memlock: 'Max locked memory',
  as: 'Max address space',
  locks: 'Max file locks',
  sigpending: 'Max pending signals',
  msgqueue: 'Max msgqueue size',
  nice: 'Max nice priority',
  rtprio: 'Max realtime priority',
  rttime: 'Max realtime timeout',
} as const;

export type RlimitName = keyof typeof RLIMIT_LABELS;
export type CallerRlimits = Record<RlimitName, Rlimit>;

/** This process's resource limits, read from /proc/self/limits (unlimited → Infinity). */
export function callerRlimits(): CallerRlimits {
  const text = fs.readFileSync('/proc/self/limits', 'utf8');
  const out = {} as CallerRlimits;
  const parse = (v: string): number => (v === 'unlimited' ? Infinity : Number(v));
  for (const [name, label] of Object.entries(RLIMIT_LABELS) as [RlimitName, string][]) {
    const line = text.split('\n').find((l) => l.startsWith(label + ' '));
    const [soft, hard] = line ? line.slice(label.length).trim().split(/\s+/) : [];
    // Missing or unparsable → treat as unlimited (nothing to clamp against).
    const s = soft === undefined ? NaN : parse(soft);
    const h = hard === undefined ? NaN : parse(hard);
    out[name] = Number.isNaN(s) || Number.isNaN(h) ? { soft: Infinity, hard: Infinity } : { soft: s, hard: h };
  }
  return out;
}

/** Default RLIMIT_NOFILE for containers (docker's usual 1048576), before capping. */
export const DEFAULT_NOFILE = 1048576;

function normalizeRlimitType(t: string): RlimitName {
  const short = t.toLowerCase().replace(/^rlimit_/, '') as RlimitName;
  if (!(short in RLIMIT_LABELS)) throw new InvalidArgumentError(`invalid ulimit type: ${t}`);
  return short;
}

function rlimitValue(v: number, what: string): number {
  if (v === -1 || v === Infinity) return Infinity;
  if (!Number.isInteger(v) || v < 0) throw new InvalidArgumentError(`invalid ulimit ${what} value: ${v}`);
  return v;
}

function buildRlimits(requested: SpecOptions['rlimits']): RuntimeSpecRlimit[] {
  const caller = callerRlimits();
  const byName = new Map<RlimitName, Rlimit>();
  const nofileHard = Math.min(DEFAULT_NOFILE, caller.nofile.hard);
  byName.set('nofile', { soft: nofileHard, hard: nofileHard });
  // nproc: what the container would inherit anyway, made explicit (omitted when unlimited).
  if (Number.isFinite(caller.nproc.hard)) byName.set('nproc', { soft: caller.nproc.hard, hard: caller.nproc.hard });
  for (const r of requested ?? []) {
    const name = normalizeRlimitType(r.type);
    const soft = rlimitValue(r.soft, 'soft');
    const hard = rlimitValue(r.hard, 'hard');
    if (soft > hard) throw new UsageError(`ulimit soft limit must be less than or equal to hard limit: ${soft} > ${hard}`);
    byName.set(name, { soft, hard });
  }
  const out: RuntimeSpecRlimit[] = [];
  for (const [name, v] of byName) {
    // Never above our own hard limit: without CAP_SYS_RESOURCE runc could not raise it.
    const hard = Math.min(v.hard, caller[name].hard);
    out.push({ type: `RLIMIT_${name.toUpperCase()}`, hard, soft: Math.min(v.soft, hard) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Defaults (moby oci/defaults.go).

export const DEFAULT_PATH_ENV = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const DEFAULT_SHM_SIZE = 64 << 20;

export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/interrupts',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

export const DEFAULT_READONLY_PATHS: readonly string[] = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/**
 * Device cgroup rules: deny all, then docker's allowed list. (runc itself additionally allows the devices it
 * creates — null, zero, full, random, urandom, tty, /dev/pts/*, ptmx, and mknod of any device.)
 */
function defaultDeviceRules(): RuntimeSpecDeviceCgroup[] {
  const allow = (major: number, minor: number): RuntimeSpecDeviceCgroup => ({ allow: true, type: 'c', major, minor, access: 'rwm' });
  return [
    { allow: false, access: 'rwm' },
    allow(1, 5), // /dev/zero
    allow(1, 3), // /dev/null
    allow(1, 9), // /dev/urandom
    allow(1, 8), // /dev/random
    allow(5, 0), // /dev/tty
    allow(5, 1), // /dev/console
    { allow: false, type: 'c', major: 10, minor: 229, access: 'rwm' }, // /dev/fuse
  ];
}

function defaultMounts(shmSize: number): RuntimeSpecMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${shmSize}`] },
  ];
}

/** All host character/block devices (for --privileged), like containerd's oci.HostDevices. */
export function hostDevices(dir = '/dev'): RuntimeSpecDevice[] {
  const out: RuntimeSpecDevice[] = [];
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (['pts', 'shm', 'fd', 'mqueue', '.lxc', '.lxd-mounts', '.udev'].includes(e.name)) continue;
      out.push(...hostDevices(p));
      continue;
    }
    if (e.name === 'console' || !(e.isCharacterDevice() || e.isBlockDevice())) continue;
    let st: fs.BigIntStats;
    try {
      st = fs.lstatSync(p, { bigint: true });
    } catch {
      continue;
    }
    const rdev = st.rdev;
    const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
    const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
    out.push({
      path: p,
      type: e.isCharacterDevice() ? 'c' : 'b',
      major,
      minor,
      fileMode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Helpers.

/** docker's ReplaceOrAppendEnvValues: overrides replace same-named defaults, `NAME` alone removes one. */
export function mergeEnv(defaults: string[], overrides: string[]): string[] {
  const env = [...defaults];
  const index = new Map<string, number>();
  env.forEach((e, i) => index.set(e.slice(0, e.indexOf('=') < 0 ? e.length : e.indexOf('=')), i));
  const removed = new Set<number>();
  for (const v of overrides) {
    const eq = v.indexOf('=');
    if (eq < 0) {
      const i = index.get(v);
      if (i !== undefined) removed.add(i);
      continue;
    }
    const key = v.slice(0, eq);
    const i = index.get(key);
    if (i !== undefined) {
      env[i] = v;
      removed.delete(i);
    } else {
      index.set(key, env.push(v) - 1);
    }
  }
  return env.filter((_, i) => !removed.has(i));
}

function cleanTarget(t: string): string {
  if (!t.startsWith('/')) throw new InvalidArgumentError(`invalid mount config: mount path must be absolute: ${t}`);
  const c = path.posix.normalize(t).replace(/\/+$/, '');
  if (c === '') throw new InvalidArgumentError(`invalid mount config: destination can't be '/'`);
  return c;
}

/** Options that are flags (the rest are data key=value), keyed by the flag they set; pairs share a key. */
const FLAG_KEYS: Record<string, string> = {
  ro: 'rdonly', rw: 'rdonly',
  suid: 'nosuid', nosuid: 'nosuid',
  dev: 'nodev', nodev: 'nodev',
  exec: 'noexec', noexec: 'noexec',
  sync: 'sync', async: 'sync',
  dirsync: 'dirsync',
  remount: 'remount',
  mand: 'mand', nomand: 'mand',
  atime: 'noatime', noatime: 'noatime',
  diratime: 'nodiratime', nodiratime: 'nodiratime',
  bind: 'bind', rbind: 'bind',
  relatime: 'relatime', norelatime: 'relatime',
  strictatime: 'strictatime', nostrictatime: 'strictatime',
  private: 'propagation', rprivate: 'propagation', shared: 'propagation', rshared: 'propagation',
  slave: 'propagation', rslave: 'propagation', unbindable: 'propagation', runbindable: 'propagation',
};
const TMPFS_DATA_KEYS = new Set(['size', 'mode', 'uid', 'gid', 'nr_inodes', 'nr_blocks', 'mpol']);
const PROPAGATIONS = new Set(['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave']);

/** moby's mount.MergeTmpfsOptions: later options win over earlier conflicting ones; order kept. */
export function mergeTmpfsOptions(options: string[]): string[] {
  const seenFlags = new Set<string>();
  const seenData = new Set<string>();
  const out: string[] = [];
  for (let i = options.length - 1; i >= 0; i--) {
    const o = options[i]!;
    if (o === 'defaults' || o === '') continue;
    const fk = FLAG_KEYS[o];
    if (fk !== undefined) {
      if (seenFlags.has(fk)) continue;
      seenFlags.add(fk);
      out.unshift(o);
      continue;
    }
    const eq = o.indexOf('=');
    const key = eq < 0 ? o : o.slice(0, eq);
    if (eq < 0 || !TMPFS_DATA_KEYS.has(key)) throw new InvalidArgumentError(`invalid tmpfs option "${o}"`);
    if (seenData.has(key)) continue;
    seenData.add(key);
    out.unshift(o);
  }
  return out;
}

function userMount(m: MountSpec, target: string): RuntimeSpecMount {
  if (m.type === 'tmpfs') {
    const opts = ['noexec', 'nosuid', 'nodev', 'rprivate', ...(m.options ?? [])];
    if (m.readonly) opts.push('ro');
    return { destination: target, type: 'tmpfs', source: 'tmpfs', options: mergeTmpfsOptions(opts) };
  }
  if (m.type !== 'bind' && m.type !== 'volume') throw new InvalidArgumentError(`invalid mount type: ${String(m.type)}`);
  if (!m.source || !path.isAbsolute(m.source)) {
    throw new InvalidArgumentError(`invalid mount config for type "${m.type}": source must be an absolute host path: ${m.source ?? ''}`);
  }
  let recursive = true;
  let propagation = 'rprivate';
  const extra: string[] = [];
  for (const o of m.options ?? []) {
    if (o === 'bind') recursive = false;
    else if (o === 'rbind') recursive = true;
    else if (PROPAGATIONS.has(o)) propagation = o;
    else if (o === 'ro' || o === 'readonly') {
      if (!extra.includes('ro')) extra.push('ro');
    } else if (o === 'rw' || o === 'nocopy' || o === 'z' || o === 'Z' || o === '') continue; // docker-only / SELinux relabel
    else extra.push(o);
  }
  if (m.readonly && !extra.includes('ro')) extra.push('ro');
  return { destination: target, type: 'bind', source: m.source, options: [recursive ? 'rbind' : 'bind', ...extra, propagation] };
}

function depth(p: string): number {
  return p.split('/').filter(Boolean).length;
}

// ---------------------------------------------------------------------------------------------------------

export const OCI_VERSION = '1.0.2-dev'; // runc 1.1.5 (Debian 12) implements runtime-spec 1.0.2-dev

export function buildSpec(o: SpecOptions): RuntimeSpec {
  if (!path.isAbsolute(o.rootfs)) throw new InvalidArgumentError(`rootfs must be an absolute path: ${o.rootfs}`);
  if (o.args.length === 0) throw new InvalidArgumentError('no command specified');
  const privileged = o.privileged ?? false;
  const shmSize = o.shmSize ?? DEFAULT_SHM_SIZE;
  if (!Number.isInteger(shmSize) || shmSize <= 0) throw new InvalidArgumentError(`invalid shm size: ${shmSize}`);
  const cwd = o.cwd || '/';
  if (!cwd.startsWith('/')) throw new InvalidArgumentError(`the working directory '${cwd}' is invalid, it needs to be an absolute path`);
  for (const id of [o.user.uid, o.user.gid, ...o.user.additionalGids]) {
    if (!Number.isInteger(id) || id < 0 || id > 2 ** 32 - 2) throw new InvalidArgumentError(`invalid uid/gid: ${id}`);
  }

  // Environment: PATH, HOSTNAME, TERM first, then the container's own env replacing or appending.
  const baseEnv = [`PATH=${DEFAULT_PATH_ENV}`, `HOSTNAME=${o.hostname}`];
  if (o.tty) baseEnv.push('TERM=xterm');
  const env = mergeEnv(baseEnv, o.env);

  // User mounts (plus the /etc files, which docker treats like user mounts), sorted parents first.
  type Pending = { target: string; make: () => RuntimeSpecMount };
  const pending: Pending[] = [];
  const userTargets = new Set<string>();
  for (const m of o.mounts) {
    const target = cleanTarget(m.target);
    if (userTargets.has(target)) throw new InvalidArgumentError(`Duplicate mount point: ${target}`);
    userTargets.add(target);
    pending.push({ target, make: () => userMount(m, target) });
  }
  const etc: [string, string | undefined][] = [
    ['/etc/resolv.conf', o.etcFiles?.resolvConf],
    ['/etc/hostname', o.etcFiles?.hostname],
    ['/etc/hosts', o.etcFiles?.hosts],
  ];
  const etcTargets = new Set<string>();
  for (const [target, source] of etc) {
    if (source === undefined || userTargets.has(target)) continue; // a user mount of the same path wins
    if (!path.isAbsolute(source)) throw new InvalidArgumentError(`${target} source must be an absolute path: ${source}`);
    etcTargets.add(target);
    const opts = ['rbind', 'rprivate'];
    if (o.readonlyRootfs) opts.push('ro');
    pending.push({ target, make: () => ({ destination: target, type: 'bind', source, options: opts }) });
  }
  const sorted = pending.map((p, i) => ({ ...p, i })).sort((a, b) => depth(a.target) - depth(b.target) || a.i - b.i);
  const overridden = new Set([...userTargets, ...etcTargets]);

  // Default mounts, minus those a user mount replaces (and everything under /dev if /dev itself is mounted).
  const mounts: RuntimeSpecMount[] = [];
  for (const m of defaultMounts(shmSize)) {
    if (overridden.has(m.destination)) continue;
    if (userTargets.has('/dev') && m.destination.startsWith('/dev/')) continue;
    if (o.readonlyRootfs && !['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue'].includes(m.destination)) {
      if (!m.options!.includes('ro')) m.options!.push('ro');
    }
    if (privileged && (m.destination === '/sys' || m.type === 'cgroup')) m.options = m.options!.filter((x) => x !== 'ro');
    mounts.push(m);
  }
  let rootfsPropagation: string | undefined;
  for (const p of sorted) {
    const m = p.make();
    mounts.push(m);
    const prop = m.options?.find((x) => PROPAGATIONS.has(x));
    if (prop === 'shared' || prop === 'rshared') rootfsPropagation = 'shared';
    else if ((prop === 'slave' || prop === 'rslave') && rootfsPropagation === undefined) rootfsPropagation = 'rslave';
  }

  const caps = tweakCapabilities(privileged, o.capAdd ?? [], o.capDrop ?? []);

  const namespaces: RuntimeSpecNamespace[] = [{ type: 'mount' }];
  if (o.network !== 'host') namespaces.push(o.netnsPath ? { type: 'network', path: o.netnsPath } : { type: 'network' });
  // docker keeps a private UTS namespace even with --network host (and sets the hostname it was given).
  namespaces.push({ type: 'uts' }, { type: 'pid' }, { type: 'ipc' });

  const sysctl: Record<string, string> = {};
  if (o.network !== 'host') {
    // docker's defaults for a private network namespace: unprivileged ping, any port without CAP_NET_BIND_SERVICE.
    if (fs.existsSync('/proc/sys/net/ipv4/ping_group_range')) sysctl['net.ipv4.ping_group_range'] = '0 2147483647';
    if (fs.existsSync('/proc/sys/net/ipv4/ip_unprivileged_port_start')) sysctl['net.ipv4.ip_unprivileged_port_start'] = '0';
  }

  const linux: RuntimeSpecLinux = {
    namespaces,
    devices: privileged ? hostDevices() : [],
    resources: { devices: privileged ? [{ allow: true, access: 'rwm' }] : defaultDeviceRules(), ...(o.resources ?? {}) },
  };
  if (o.cgroupsPath) linux.cgroupsPath = o.cgroupsPath;
  if (Object.keys(sysctl).length > 0) linux.sysctl = sysctl;
  if (!privileged) {
    linux.maskedPaths = [...DEFAULT_MASKED_PATHS];
    linux.readonlyPaths = [...DEFAULT_READONLY_PATHS];
  }
  if (rootfsPropagation) linux.rootfsPropagation = rootfsPropagation;

  const spec: RuntimeSpec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: o.tty,
      user: { uid: o.user.uid, gid: o.user.gid, additionalGids: [...o.user.additionalGids] },
      args: [...o.args],
      env,
      cwd,
      // Inheritable and ambient stay empty (docker since 20.10.14 / CVE-2022-24769).
      capabilities: { bounding: caps, effective: [...caps], permitted: [...caps] },
      rlimits: buildRlimits(o.rlimits),
      noNewPrivileges: o.noNewPrivileges ?? !privileged,
      oomScoreAdj: 0,
    },
    root: { path: o.rootfs, readonly: o.readonlyRootfs ?? false },
    hostname: o.hostname,
    mounts,
    linux,
  };
  if (o.tty && o.consoleSize && o.consoleSize[0] > 0 && o.consoleSize[1] > 0) spec.process.consoleSize = { height: o.consoleSize[0], width: o.consoleSize[1] };
  if (o.annotations && Object.keys(o.annotations).length > 0) spec.annotations = { ...o.annotations };
  return spec;
}

const RLIM_INFINITY = '18446744073709551615';

/** JSON for config.json: like JSON.stringify, but an Infinity rlimit is written as RLIM_INFINITY (2^64-1). */
export function serializeSpec(spec: RuntimeSpec): string {
  const token = `__ply_rlim_infinity_${Math.random().toString(36).slice(2)}__`;
  const json = JSON.stringify(spec, (_k, v: unknown) => (v === Infinity ? token : v), 2);
  return json.split(JSON.stringify(token)).join(RLIM_INFINITY) + '\n';
}

/** Writes DIR/config.json (atomically: temp file + rename). */
export function writeBundle(dir: string, spec: RuntimeSpec): void {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'config.json');
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, serializeSpec(spec), { mode: 0o600 });
  fs.renameSync(tmp, file);
}
