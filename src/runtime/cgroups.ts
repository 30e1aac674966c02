// A container's cgroups, as the runtime (runc's cgroupfs driver) makes them from the bundle's cgroupsPath: docker's
// resource limits turned into the OCI spec's linux.resources, and read back (usage for `stats`, OOM kills) from the
// files of cgroup v1 (one hierarchy per controller, as here) or v2 (one unified hierarchy).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.js';

/** docker's HostConfig resource fields ply applies (moby api/swagger.yaml Resources), and the same names for `update`. */
export interface Resources {
  /** Bytes; 0 = unlimited. */
  Memory?: number;
  /** Memory plus swap, bytes; -1 = unlimited swap; 0 = twice Memory (docker's default when swap is accounted). */
  MemorySwap?: number;
  /** Soft limit, bytes. */
  MemoryReservation?: number;
  /** 0-100; null = the host's. */
  MemorySwappiness?: number | null;
  /** CPUs in units of 1e-9 (`--cpus 1.5` = 1.5e9). */
  NanoCpus?: number;
  /** Relative weight (default 1024). */
  CpuShares?: number;
  /** CFS period and quota, microseconds (`--cpu-period`, `--cpu-quota`). */
  CpuPeriod?: number;
  CpuQuota?: number;
  /** CPUs and memory nodes allowed: '0-1', '0,2'. */
  CpusetCpus?: string;
  CpusetMems?: string;
  /** Maximum processes; 0 or -1 (null) = unlimited. */
  PidsLimit?: number | null;
  OomKillDisable?: boolean;
}

/** The OCI runtime spec's linux.resources fields ply writes (besides the device rules). */
export interface SpecResources {
  memory?: { limit?: number; reservation?: number; swap?: number; swappiness?: number; disableOOMKiller?: boolean };
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string };
  pids?: { limit: number };
}

/** docker's minimum memory limit (6 MB). */
const MIN_MEMORY = 6 * 1024 * 1024;
const DEFAULT_CPU_PERIOD = 100_000;

/** The CPUs this machine has online, as a set ('0-1' → {0, 1}). */
export function onlineCpus(): Set<number> {
  try {
    return parseCpuList(fs.readFileSync('/sys/devices/system/cpu/online', 'utf8').trim());
  } catch {
    return new Set(os.cpus().map((_, i) => i));
  }
}

/** A cpuset list ('0-2,4') as a set; throws on a malformed one. */
export function parseCpuList(s: string): Set<number> {
  const out = new Set<number>();
  if (s === '') return out;
  for (const part of s.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new InvalidArgumentError(`invalid cpuset: ${s}`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new InvalidArgumentError(`invalid cpuset: ${s}`);
    for (let i = a; i <= b; i++) out.add(i);
  }
  return out;
}

/**
 * docker's checks of the resource settings (moby daemon verifyPlatformContainerResources) and its defaults:
 * MemorySwap twice Memory when not given. Returns the settings as stored and the warnings docker prints.
 */
export function normalizeResources(r: Resources, opts: { update?: boolean; current?: Resources } = {}): { resources: Resources; warnings: string[] } {
  const out: Resources = { ...r };
  const warnings: string[] = [];
  const cur = opts.current ?? {};
  const memory = out.Memory ?? (opts.update ? cur.Memory : 0) ?? 0;
  if (out.Memory !== undefined && out.Memory !== 0 && out.Memory < MIN_MEMORY) throw new InvalidArgumentError('Minimum memory limit allowed is 6MB');
  if (out.MemorySwap !== undefined && out.MemorySwap !== 0 && out.MemorySwap !== -1) {
    if (memory === 0) throw new InvalidArgumentError('You should always set the Memory limit when using Memoryswap limit, see usage');
    if (out.MemorySwap < memory) throw new InvalidArgumentError('Minimum memoryswap limit should be larger than memory limit, see usage');
  }
  if (opts.update && out.Memory && out.MemorySwap === undefined && cur.MemorySwap && cur.MemorySwap > 0 && out.Memory > cur.MemorySwap) {
    throw new InvalidArgumentError('Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time');
  }
  const reservation = out.MemoryReservation ?? cur.MemoryReservation ?? 0;
  if (memory > 0 && reservation > 0 && memory < reservation) {
    throw new InvalidArgumentError('Minimum memory limit can not be less than memory reservation limit, see usage');
  }
  if (out.MemoryReservation !== undefined && out.MemoryReservation !== 0 && out.MemoryReservation < MIN_MEMORY) {
    throw new InvalidArgumentError('Minimum memory reservation allowed is 6MB');
  }
  if (out.MemorySwappiness !== undefined && out.MemorySwappiness !== null && out.MemorySwappiness !== -1 && (out.MemorySwappiness < 0 || out.MemorySwappiness > 100)) {
    throw new InvalidArgumentError(`Invalid value: ${out.MemorySwappiness}, valid memory swappiness range is 0-100`);
  }
  if (!opts.update && out.Memory && !out.MemorySwap) out.MemorySwap = out.Memory * 2;
  if (out.OomKillDisable && !memory) warnings.push("WARNING: Disabling the OOM killer on containers without setting a '-m/--memory' limit may be dangerous.");
  const ncpu = onlineCpus().size;
  if (out.NanoCpus) {
    if ((out.CpuQuota ?? cur.CpuQuota ?? 0) > 0 || (out.CpuPeriod ?? cur.CpuPeriod ?? 0) > 0) {
      throw new InvalidArgumentError('Conflicting options: Nano CPUs and CPU Period cannot both be set');
    }
    if (out.NanoCpus < 0 || out.NanoCpus > ncpu * 1e9) {
      throw new InvalidArgumentError(`Range of CPUs is from 0.01 to ${ncpu}.00, as there are only ${ncpu} CPUs available`);
    }
  }
  if (out.CpuPeriod && (out.CpuPeriod < 1000 || out.CpuPeriod > 1_000_000)) throw new InvalidArgumentError('CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
  if (out.CpuQuota && out.CpuQuota > 0 && out.CpuQuota < 1000) throw new InvalidArgumentError('CPU cfs quota can not be less than 1ms (i.e. 1000)');
  if (out.CpusetCpus) {
    const want = parseCpuList(out.CpusetCpus);
    const have = onlineCpus();
    if ([...want].some((c) => !have.has(c))) {
      throw new InvalidArgumentError(`Requested CPUs are not available - requested ${out.CpusetCpus}, available: ${formatCpuList(have)}`);
    }
  }
  if (out.CpusetMems) {
    let mems = new Set([0]);
    try {
      mems = parseCpuList(fs.readFileSync('/sys/devices/system/node/online', 'utf8').trim());
    } catch {
      // no NUMA information: node 0 only
    }
    if ([...parseCpuList(out.CpusetMems)].some((m) => !mems.has(m))) {
      throw new InvalidArgumentError(`Requested memory nodes are not available - requested ${out.CpusetMems}, available: ${formatCpuList(mems)}`);
    }
  }
  if (out.PidsLimit !== undefined && out.PidsLimit !== null && out.PidsLimit <= 0) out.PidsLimit = opts.update ? 0 : null;
  return { resources: out, warnings };
}

function formatCpuList(s: Set<number>): string {
  const sorted = [...s].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

/** docker's resources as the OCI spec's linux.resources (what runc writes into the cgroups). */
export function specResources(r: Resources): SpecResources {
  const out: SpecResources = {};
  const memory: NonNullable<SpecResources['memory']> = {};
  if (r.Memory) memory.limit = r.Memory;
  if (r.MemoryReservation) memory.reservation = r.MemoryReservation;
  if (r.MemorySwap) memory.swap = r.MemorySwap;
  if (r.MemorySwappiness !== undefined && r.MemorySwappiness !== null && r.MemorySwappiness >= 0) memory.swappiness = r.MemorySwappiness;
  if (r.OomKillDisable) memory.disableOOMKiller = true;
  if (Object.keys(memory).length) out.memory = memory;
  const cpu: NonNullable<SpecResources['cpu']> = {};
  if (r.CpuShares) cpu.shares = r.CpuShares;
  if (r.NanoCpus) {
    cpu.period = DEFAULT_CPU_PERIOD;
    cpu.quota = Math.round((r.NanoCpus * DEFAULT_CPU_PERIOD) / 1e9);
  } else {
    if (r.CpuPeriod) cpu.period = r.CpuPeriod;
    if (r.CpuQuota) cpu.quota = r.CpuQuota;
  }
  if (r.CpusetCpus) cpu.cpus = r.CpusetCpus;
  if (r.CpusetMems) cpu.mems = r.CpusetMems;
  if (Object.keys(cpu).length) out.cpu = cpu;
  if (r.PidsLimit) out.pids = { limit: r.PidsLimit };
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Reading a container's cgroups.

/** Where each cgroup v1 controller is mounted, or the v2 root; read once per process from mountinfo. */
interface Hierarchies {
  version: 1 | 2;
  /** v1: controller → mount point. v2: '' → the unified mount point. */
  mounts: Map<string, string>;
}

let hierarchies: Hierarchies | undefined;

function findHierarchies(): Hierarchies {
  if (hierarchies) return hierarchies;
  const mounts = new Map<string, string>();
  let unified: string | undefined;
  let text = '';
  try {
    text = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    // not Linux
  }
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const mountPoint = left.split(' ')[4]!;
    const [fstype, , superOpts] = right.split(' ');
    if (fstype === 'cgroup2' && mountPoint === '/sys/fs/cgroup') unified = mountPoint;
    if (fstype !== 'cgroup') continue;
    for (const opt of (superOpts ?? '').split(',')) {
      if (['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'blkio', 'freezer', 'devices'].includes(opt) && !mounts.has(opt)) mounts.set(opt, mountPoint);
    }
  }
  // runc uses v2 only when /sys/fs/cgroup itself is the unified hierarchy (a hybrid host is v1 for it).
  hierarchies = unified ? { version: 2, mounts: new Map([['', unified]]) } : { version: 1, mounts };
  return hierarchies;
}

export function cgroupVersion(): 1 | 2 {
  return findHierarchies().version;
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function readNumber(file: string): number | undefined {
  const t = readText(file)?.trim();
  if (t === undefined || t === '' || t === 'max') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : undefined;
}

/** `key value` lines (memory.stat, cpu.stat) as numbers. */
function readKeyValues(file: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (readText(file) ?? '').split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
  }
  return out;
}

/** Raw figures of one cgroup (docker's stats are made from them). */
export interface CgroupSample {
  /** CPU time in nanoseconds: total, per CPU (v1), in user and kernel mode. */
  cpuTotal: number;
  cpuPerCpu: number[];
  cpuUser: number;
  cpuKernel: number;
  throttling: { periods: number; throttledPeriods: number; throttledTime: number };
  memoryUsage: number;
  memoryMaxUsage?: number;
  memoryFailcnt?: number;
  /** undefined: no limit. */
  memoryLimit?: number;
  memoryStat: Record<string, number>;
  pids: number;
  pidsLimit?: number;
  /** Bytes read and written per device (major:minor). */
  io: { major: number; minor: number; op: string; value: number }[];
}

/** USER_HZ: cpuacct.stat counts in these ticks. */
const CLOCK_TICKS = 100;

/** One container's cgroups, from the bundle's cgroupsPath (runc's cgroupfs driver: below each hierarchy's root). */
export class ContainerCgroup {
  constructor(readonly cgroupsPath: string) {}

  /** The cgroup's directory for a v1 controller (or the v2 directory). */
  dir(controller: string): string | undefined {
    const h = findHierarchies();
    const mount = h.version === 2 ? h.mounts.get('') : h.mounts.get(controller);
    return mount && path.join(mount, this.cgroupsPath);
  }

  exists(): boolean {
    const d = this.dir('memory') ?? this.dir('pids');
    return d !== undefined && fs.existsSync(d);
  }

  /** How many processes the kernel's OOM killer killed in this cgroup (undefined: unknown). */
  oomKills(): number | undefined {
    if (cgroupVersion() === 2) return readKeyValues(path.join(this.dir('memory')!, 'memory.events')).oom_kill;
    const d = this.dir('memory');
    return d ? readKeyValues(path.join(d, 'memory.oom_control')).oom_kill : undefined;
  }

  sample(): CgroupSample {
    return cgroupVersion() === 2 ? this.sampleV2() : this.sampleV1();
  }

  private sampleV1(): CgroupSample {
    const cpuacct = this.dir('cpuacct') ?? '';
    const cpu = this.dir('cpu') ?? '';
    const mem = this.dir('memory') ?? '';
    const pids = this.dir('pids') ?? '';
    const blkio = this.dir('blkio') ?? '';
    const acct = readKeyValues(path.join(cpuacct, 'cpuacct.stat'));
    const throttle = readKeyValues(path.join(cpu, 'cpu.stat'));
    const limit = readNumber(path.join(mem, 'memory.limit_in_bytes'));
    const ioFile = ['blkio.io_service_bytes_recursive', 'blkio.bfq.io_service_bytes_recursive', 'blkio.throttle.io_service_bytes_recursive']
      .map((f) => path.join(blkio, f))
      .find((f) => (readText(f) ?? '').split('\n').some((l) => /^\d+:\d+ /.test(l)));
    return {
      cpuTotal: readNumber(path.join(cpuacct, 'cpuacct.usage')) ?? 0,
      cpuPerCpu: (readText(path.join(cpuacct, 'cpuacct.usage_percpu')) ?? '').trim().split(/\s+/).filter(Boolean).map(Number),
      cpuUser: ((acct.user ?? 0) * 1e9) / CLOCK_TICKS,
      cpuKernel: ((acct.system ?? 0) * 1e9) / CLOCK_TICKS,
      throttling: { periods: throttle.nr_periods ?? 0, throttledPeriods: throttle.nr_throttled ?? 0, throttledTime: throttle.throttled_time ?? 0 },
      memoryUsage: readNumber(path.join(mem, 'memory.usage_in_bytes')) ?? 0,
      memoryMaxUsage: readNumber(path.join(mem, 'memory.max_usage_in_bytes')),
      memoryFailcnt: readNumber(path.join(mem, 'memory.failcnt')),
      // The kernel's "no limit" is a page-rounded 2^63: no limit.
      memoryLimit: limit !== undefined && limit < 2 ** 62 ? limit : undefined,
      memoryStat: readKeyValues(path.join(mem, 'memory.stat')),
      pids: readNumber(path.join(pids, 'pids.current')) ?? 0,
      pidsLimit: readNumber(path.join(pids, 'pids.max')),
      io: ioFile ? parseIoServiceBytes(readText(ioFile) ?? '') : [],
    };
  }

  private sampleV2(): CgroupSample {
    const d = this.dir('') ?? '';
    const cpu = readKeyValues(path.join(d, 'cpu.stat'));
    const io: CgroupSample['io'] = [];
    for (const line of (readText(path.join(d, 'io.stat')) ?? '').split('\n')) {
      const m = /^(\d+):(\d+) (.*)$/.exec(line.trim());
      if (!m) continue;
      const kv = Object.fromEntries(m[3]!.split(' ').map((x) => x.split('=') as [string, string]));
      io.push({ major: Number(m[1]), minor: Number(m[2]), op: 'read', value: Number(kv.rbytes ?? 0) });
      io.push({ major: Number(m[1]), minor: Number(m[2]), op: 'write', value: Number(kv.wbytes ?? 0) });
    }
    return {
      cpuTotal: (cpu.usage_usec ?? 0) * 1000,
      cpuPerCpu: [],
      cpuUser: (cpu.user_usec ?? 0) * 1000,
      cpuKernel: (cpu.system_usec ?? 0) * 1000,
      throttling: { periods: cpu.nr_periods ?? 0, throttledPeriods: cpu.nr_throttled ?? 0, throttledTime: (cpu.throttled_usec ?? 0) * 1000 },
      memoryUsage: readNumber(path.join(d, 'memory.current')) ?? 0,
      memoryMaxUsage: readNumber(path.join(d, 'memory.peak')),
      memoryLimit: readNumber(path.join(d, 'memory.max')),
      memoryStat: readKeyValues(path.join(d, 'memory.stat')),
      pids: readNumber(path.join(d, 'pids.current')) ?? 0,
      pidsLimit: readNumber(path.join(d, 'pids.max')),
      io,
    };
  }
}

/** blkio's `MAJ:MIN Op value` lines (the Total line dropped). */
export function parseIoServiceBytes(text: string): CgroupSample['io'] {
  const out: CgroupSample['io'] = [];
  for (const line of text.split('\n')) {
    const m = /^(\d+):(\d+) (\w+) (\d+)$/.exec(line.trim());
    if (m) out.push({ major: Number(m[1]), minor: Number(m[2]), op: m[3]!, value: Number(m[4]) });
  }
  return out;
}

/** The host's CPU time (all CPUs, nanoseconds) from /proc/stat, as docker's system_cpu_usage. */
export function systemCpuUsage(): number {
  const line = (readText('/proc/stat') ?? '').split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return 0;
  const ticks = line.trim().split(/\s+/).slice(1, 8).map(Number).reduce((a, b) => a + b, 0);
  return (ticks * 1e9) / CLOCK_TICKS;
}
