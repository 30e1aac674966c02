// A container's resource usage as docker's stats API reports it (moby api/types/container StatsResponse): CPU,
// memory, pids and block I/O from the container's cgroups (runtime/cgroups.ts), network counters from its network
// namespace (/proc/PID/net/dev), each sample paired with the one before it so a client can compute CPU %.
import fs from 'node:fs';
import os from 'node:os';
import { ContainerCgroup, onlineCpus, systemCpuUsage, type CgroupSample } from '../runtime/cgroups.js';
import type { Container } from './store.js';

export interface CpuStats {
  cpu_usage: { total_usage: number; percpu_usage?: number[]; usage_in_kernelmode: number; usage_in_usermode: number };
  system_cpu_usage?: number;
  online_cpus?: number;
  throttling_data: { periods: number; throttled_periods: number; throttled_time: number };
}

export interface NetworkStats {
  rx_bytes: number;
  rx_packets: number;
  rx_errors: number;
  rx_dropped: number;
  tx_bytes: number;
  tx_packets: number;
  tx_errors: number;
  tx_dropped: number;
}

interface BlkioEntry {
  major: number;
  minor: number;
  op: string;
  value: number;
}

/** docker's StatsResponse (GET /containers/{id}/stats). */
export interface ContainerStats {
  name: string;
  id: string;
  read: string;
  preread: string;
  pids_stats: { current?: number; limit?: number };
  blkio_stats: {
    io_service_bytes_recursive: BlkioEntry[] | null;
    io_serviced_recursive: BlkioEntry[] | null;
    io_queue_recursive: BlkioEntry[] | null;
    io_service_time_recursive: BlkioEntry[] | null;
    io_wait_time_recursive: BlkioEntry[] | null;
    io_merged_recursive: BlkioEntry[] | null;
    io_time_recursive: BlkioEntry[] | null;
    sectors_recursive: BlkioEntry[] | null;
  };
  num_procs: number;
  storage_stats: Record<string, never>;
  cpu_stats: CpuStats;
  precpu_stats: CpuStats;
  memory_stats: { usage?: number; max_usage?: number; stats?: Record<string, number>; failcnt?: number; limit?: number };
  networks?: Record<string, NetworkStats>;
}

/** Go's zero time, as docker writes `read` for a container that is not running. */
const ZERO_TIME = '0001-01-01T00:00:00Z';

const emptyCpu = (): CpuStats => ({ cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } });

const emptyBlkio = (): ContainerStats['blkio_stats'] => ({
  io_service_bytes_recursive: null,
  io_serviced_recursive: null,
  io_queue_recursive: null,
  io_service_time_recursive: null,
  io_wait_time_recursive: null,
  io_merged_recursive: null,
  io_time_recursive: null,
  sectors_recursive: null,
});

/** What docker reports for a container that does not run: zeros, Go's zero times. */
export function emptyStats(c: Container): ContainerStats {
  return {
    name: `/${c.name}`,
    id: c.id,
    read: ZERO_TIME,
    preread: ZERO_TIME,
    pids_stats: {},
    blkio_stats: emptyBlkio(),
    num_procs: 0,
    storage_stats: {},
    cpu_stats: emptyCpu(),
    precpu_stats: emptyCpu(),
    memory_stats: {},
  };
}

/** The interfaces of the network namespace of `pid` but its loopback (docker counts the endpoints only). */
export function readNetDev(pid: number): Record<string, NetworkStats> | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/net/dev`, 'utf8');
  } catch {
    return undefined;
  }
  const out: Record<string, NetworkStats> = {};
  // Two header lines, then `name: rx_bytes packets errs drop fifo frame compressed multicast tx_bytes packets errs drop ...`.
  for (const line of text.split('\n').slice(2)) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === 'lo') continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    out[m[1]!] = { rx_bytes: f[0]!, rx_packets: f[1]!, rx_errors: f[2]!, rx_dropped: f[3]!, tx_bytes: f[8]!, tx_packets: f[9]!, tx_errors: f[10]!, tx_dropped: f[11]! };
  }
  return out;
}

/** One sample of a running container (cgroups, the host's CPU time, its network namespace). */
export interface StatsSample {
  time: Date;
  cgroup: CgroupSample;
  systemCpu: number;
  networks?: Record<string, NetworkStats>;
}

export function sampleContainer(c: Container, cgroupsPath: string, ownNetwork: boolean): StatsSample {
  return {
    time: new Date(),
    cgroup: new ContainerCgroup(cgroupsPath).sample(),
    systemCpu: systemCpuUsage(),
    networks: ownNetwork && c.pid > 0 ? readNetDev(c.pid) : undefined,
  };
}

function cpuStats(s: StatsSample, ncpu: number): CpuStats {
  const g = s.cgroup;
  return {
    cpu_usage: {
      total_usage: g.cpuTotal,
      ...(g.cpuPerCpu.length ? { percpu_usage: g.cpuPerCpu } : {}),
      usage_in_kernelmode: g.cpuKernel,
      usage_in_usermode: g.cpuUser,
    },
    system_cpu_usage: s.systemCpu,
    online_cpus: ncpu,
    throttling_data: { periods: g.throttling.periods, throttled_periods: g.throttling.throttledPeriods, throttled_time: g.throttling.throttledTime },
  };
}

/** docker's StatsResponse from a sample and the one before it (none: precpu is zero, as docker's first frame). */
export function toStats(c: Container, cur: StatsSample, prev?: StatsSample): ContainerStats {
  const ncpu = onlineCpus().size;
  const g = cur.cgroup;
  return {
    name: `/${c.name}`,
    id: c.id,
    read: cur.time.toISOString(),
    preread: prev ? prev.time.toISOString() : ZERO_TIME,
    pids_stats: { current: g.pids, ...(g.pidsLimit !== undefined ? { limit: g.pidsLimit } : {}) },
    blkio_stats: { ...emptyBlkio(), io_service_bytes_recursive: g.io },
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpuStats(cur, ncpu),
    precpu_stats: prev ? cpuStats(prev, ncpu) : emptyCpu(),
    memory_stats: {
      usage: g.memoryUsage,
      ...(g.memoryMaxUsage !== undefined ? { max_usage: g.memoryMaxUsage } : {}),
      stats: g.memoryStat,
      ...(g.memoryFailcnt !== undefined ? { failcnt: g.memoryFailcnt } : {}),
      // No limit: the machine's memory, as dockerd reports it.
      limit: g.memoryLimit !== undefined && g.memoryLimit < os.totalmem() ? g.memoryLimit : os.totalmem(),
    },
    ...(cur.networks ? { networks: cur.networks } : {}),
  };
}
