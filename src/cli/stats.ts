// `ply stats` / `ply container stats`: docker's live table of CPU %, memory, network, block I/O and PIDs per
// container, made from the engine's stats frames the way docker's CLI computes them (cli/command/container).
import type { Command } from 'commander';
import type { ContainerStats, Engine } from '../engine.js';
import { NotFoundError } from '../errors.js';
import { withEngine, out } from './engine.js';
import { bytesSize, humanSizeWithPrecision } from './format.js';

interface StatsFlags {
  all?: boolean;
  format?: string;
  stream: boolean;
  trunc: boolean;
}

const DEFAULT_FORMAT = 'table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}';
const HEADERS = {
  Container: 'CONTAINER', Name: 'NAME', ID: 'CONTAINER ID', CPUPerc: 'CPU %', MemUsage: 'MEM USAGE / LIMIT', MemPerc: 'MEM %',
  NetIO: 'NET I/O', BlockIO: 'BLOCK I/O', PIDs: 'PIDS',
};

/** One row as docker's statsContext renders it. */
export function statsRow(container: string, s: ContainerStats | undefined, trunc: boolean): Record<string, string> {
  const pct = (v: number) => `${v.toFixed(2)}%`;
  if (!s) {
    return { Container: container, Name: '--', ID: trunc ? container.slice(0, 12) : container, CPUPerc: '--', MemUsage: '-- / --', MemPerc: '--', NetIO: '--', BlockIO: '--', PIDs: '--' };
  }
  // CPU %: the container's share of the host's CPU time between the two samples, times the CPUs.
  const cpuDelta = s.cpu_stats.cpu_usage.total_usage - s.precpu_stats.cpu_usage.total_usage;
  const sysDelta = (s.cpu_stats.system_cpu_usage ?? 0) - (s.precpu_stats.system_cpu_usage ?? 0);
  const ncpu = s.cpu_stats.online_cpus || s.cpu_stats.cpu_usage.percpu_usage?.length || 0;
  const cpu = sysDelta > 0 && cpuDelta > 0 ? (cpuDelta / sysDelta) * ncpu * 100 : 0;
  // Memory without the inactive page cache (v1: total_inactive_file, v2: inactive_file), as docker's CLI.
  const m = s.memory_stats;
  const usage = m.usage ?? 0;
  const inactive = m.stats?.total_inactive_file ?? m.stats?.inactive_file;
  const mem = inactive !== undefined && inactive < usage ? usage - inactive : usage;
  const limit = m.limit ?? 0;
  let rx = 0;
  let tx = 0;
  for (const n of Object.values(s.networks ?? {})) {
    rx += n.rx_bytes;
    tx += n.tx_bytes;
  }
  let read = 0;
  let write = 0;
  for (const e of s.blkio_stats.io_service_bytes_recursive ?? []) {
    const op = e.op[0]?.toLowerCase();
    if (op === 'r') read += e.value;
    else if (op === 'w') write += e.value;
  }
  const size = (n: number) => humanSizeWithPrecision(n, 3);
  return {
    Container: container,
    Name: s.name.length > 1 ? s.name.slice(1) : '--',
    ID: trunc ? s.id.slice(0, 12) : s.id,
    CPUPerc: pct(cpu),
    MemUsage: `${bytesSize(mem)} / ${bytesSize(limit)}`,
    MemPerc: pct(limit ? (mem / limit) * 100 : 0),
    NetIO: `${size(rx)} / ${size(tx)}`,
    BlockIO: `${size(read)} / ${size(write)}`,
    PIDs: String(s.pids_stats.current ?? 0),
  };
}

function formatOf(f: StatsFlags): string {
  if (f.format === 'json') return '{{json .}}';
  if (f.format && f.format !== 'table') return f.format;
  return DEFAULT_FORMAT;
}

/** The containers to show: those named, or every running one (-a: every one). */
function targets(engine: Engine, refs: string[], all: boolean): { label: string; id: string }[] {
  if (refs.length) return refs.map((r) => ({ label: r, id: engine.containers.get(r).id }));
  return engine.containers.list({ all }).map((c) => ({ label: c.Id, id: c.Id }));
}

export function registerStatsCommand(parent: Command, name = 'stats'): void {
  parent
    .command(name)
    .description('Display a live stream of container(s) resource usage statistics')
    .usage('[OPTIONS] [CONTAINER...]')
    .argument('[containers...]')
    .option('-a, --all', 'Show all containers (default shows just running)')
    .option('--format <string>', 'Format output using a custom template')
    .option('--no-stream', 'Disable streaming stats and only pull the first result')
    .option('--no-trunc', 'Do not truncate output')
    .action(async (refs: string[], f: StatsFlags) =>
      withEngine(async (engine) => {
        const { renderTable } = await import('../gotemplate/template.js');
        const format = formatOf(f);
        for (const r of refs) {
          try {
            engine.containers.get(r);
          } catch (e) {
            if (e instanceof NotFoundError) throw new NotFoundError(`No such container: ${r}`);
            throw e;
          }
        }
        if (!f.stream) {
          const list = targets(engine, refs, !!f.all);
          const frames = await Promise.all(
            list.map(async (t) => {
              for await (const s of engine.containers.stats(t.id, { stream: false })) return s;
              return undefined;
            }),
          );
          out(renderTable(format, list.map((t, i) => statsRow(t.label, frames[i], f.trunc)), HEADERS));
          return;
        }
        // Streaming: one follower per container; the screen is redrawn every half second (docker's ticker).
        const latest = new Map<string, ContainerStats>();
        const followers = new Map<string, AbortController>();
        const follow = (id: string) => {
          const ac = new AbortController();
          followers.set(id, ac);
          void (async () => {
            try {
              for await (const s of engine.containers.stats(id, { stream: true, signal: ac.signal })) latest.set(id, s);
            } catch {
              // removed meanwhile
            }
            latest.delete(id);
          })();
        };
        let first = true;
        const began = Date.now();
        for (;;) {
          let list: { label: string; id: string }[];
          try {
            list = targets(engine, refs, !!f.all);
          } catch {
            list = [];
          }
          const ids = new Set(list.map((t) => t.id));
          for (const t of list) if (!followers.has(t.id)) follow(t.id);
          for (const [id, ac] of followers) if (!ids.has(id)) (ac.abort(), followers.delete(id));
          // The first screen waits for every container's first frame (2 s at most), as docker's CLI does.
          if (first && list.some((t) => !latest.has(t.id)) && Date.now() - began < 2000) {
            await new Promise((r) => setTimeout(r, 50));
            continue;
          }
          const text = renderTable(format, list.map((t) => statsRow(t.label, latest.get(t.id), f.trunc)), HEADERS);
          const lines = text.split('\n');
          if (lines[lines.length - 1] === '') lines.pop();
          // Clear once, then redraw from the top-left, erasing what the last frame left (docker's CLI).
          out(`${first ? '\x1b[2J' : ''}\x1b[H${lines.map((l) => `${l}\x1b[K\n`).join('')}\x1b[J`);
          first = false;
          await new Promise((r) => setTimeout(r, 500));
        }
      }),
    );
}
