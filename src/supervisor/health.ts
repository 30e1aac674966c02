// Health checks as dockerd runs them (moby daemon/health.go): the image's HEALTHCHECK or the --health-* flags, a
// probe exec'd in the container on schedule, its result folded into State.Health (starting → healthy, or
// unhealthy after `Retries` failures in a row outside the start period), the last five results kept.
import { InvalidArgumentError } from '../errors.js';

import type { HealthConfig } from '../oci/types.js';

export type { HealthConfig };

/** docker's State.Health. */
export interface HealthState {
  Status: 'starting' | 'healthy' | 'unhealthy';
  FailingStreak: number;
  /** The last five probes. */
  Log: { Start: string; End: string; ExitCode: number; Output: string }[];
}

export const DEFAULT_INTERVAL_MS = 30_000;
export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_START_INTERVAL_MS = 5_000;
export const DEFAULT_RETRIES = 3;
const MAX_LOG_ENTRIES = 5;
const MAX_OUTPUT = 4096;
/** docker's minimum for intervals and timeouts (1 ms). */
const MIN_DURATION_NS = 1_000_000;

/** The --health-* flags over the image's check (docker: flags replace the image's fields they set). */
export function mergeHealthcheck(image: HealthConfig | undefined, flags: HealthConfig | undefined, disabled: boolean): HealthConfig | undefined {
  if (disabled) return { Test: ['NONE'] };
  if (!image && !flags) return undefined;
  const out: HealthConfig = { ...(image ?? {}) };
  for (const [k, v] of Object.entries(flags ?? {}) as [keyof HealthConfig, HealthConfig[keyof HealthConfig]][]) {
    if (v === undefined) continue;
    if (k === 'Test' && Array.isArray(v) && v.length === 0) continue;
    (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

/** docker's checks of a healthcheck config (moby's createContainer validation). */
export function checkHealthcheck(h: HealthConfig | undefined): void {
  if (!h) return;
  for (const [k, name] of [['Interval', 'Interval'], ['Timeout', 'Timeout'], ['StartPeriod', 'StartPeriod'], ['StartInterval', 'StartInterval']] as const) {
    const v = h[k];
    if (v !== undefined && v !== 0 && v < MIN_DURATION_NS) throw new InvalidArgumentError(`${name} in Healthcheck cannot be less than 1ms`);
  }
  if (h.Retries !== undefined && h.Retries < 0) throw new InvalidArgumentError('Retries in Healthcheck cannot be negative');
}

/** The probe's command, or undefined when the container has no (active) check. */
export function probeCommand(h: HealthConfig | undefined, shell: string[] = ['/bin/sh', '-c']): string[] | undefined {
  const t = h?.Test;
  if (!t || t.length === 0) return undefined;
  if (t[0] === 'CMD') return t.length > 1 ? t.slice(1) : undefined;
  if (t[0] === 'CMD-SHELL') return t.length > 1 ? [...shell, ...t.slice(1)] : undefined;
  return undefined;
}

const ms = (ns: number | undefined, dflt: number) => (ns ? ns / 1e6 : dflt);

export interface ProbeResult {
  start: Date;
  end: Date;
  exitCode: number;
  output: string;
}

/** Bounded output as docker keeps it (4096 bytes, then '...'). */
export function limitOutput(s: string): string {
  const b = Buffer.from(s);
  return b.length > MAX_OUTPUT ? `${b.subarray(0, MAX_OUTPUT).toString()}...` : s;
}

/** docker's handleProbeResult: the new State.Health after one probe of a container started at `startedAt`. */
export function applyProbe(h: HealthConfig, state: HealthState, r: ProbeResult, startedAt: number): HealthState {
  const retries = h.Retries && h.Retries > 0 ? h.Retries : DEFAULT_RETRIES;
  const log = [...state.Log, { Start: r.start.toISOString(), End: r.end.toISOString(), ExitCode: r.exitCode, Output: limitOutput(r.output) }].slice(-MAX_LOG_ENTRIES);
  let { Status, FailingStreak } = state;
  if (r.exitCode === 0) {
    FailingStreak = 0;
    Status = 'healthy';
  } else {
    // While starting (never healthy yet), failures inside the start period do not count.
    const inStartPeriod = Status === 'starting' && r.start.getTime() - startedAt < ms(h.StartPeriod, 0);
    if (!inStartPeriod) {
      FailingStreak++;
      if (FailingStreak >= retries) Status = 'unhealthy';
    }
  }
  return { Status, FailingStreak, Log: log };
}

/** How long to wait before the next probe (docker: the start interval while starting inside the start period). */
export function nextInterval(h: HealthConfig, status: HealthState['Status'], startedAt: number, now = Date.now()): number {
  const interval = ms(h.Interval, DEFAULT_INTERVAL_MS);
  if (now - startedAt >= ms(h.StartPeriod, 0)) return interval;
  return status === 'starting' ? ms(h.StartInterval, DEFAULT_START_INTERVAL_MS) : interval;
}

export function probeTimeout(h: HealthConfig): number {
  return ms(h.Timeout, DEFAULT_TIMEOUT_MS);
}

/** What the health monitor needs from the container's supervisor. */
export interface HealthHooks {
  /** Runs the probe in the container; resolves with its exit code and output, killed after `timeoutMs`. */
  probe(cmd: string[], timeoutMs: number): Promise<{ exitCode: number; output: string; timedOut: boolean }>;
  /** Stores the new State.Health. */
  save(state: HealthState): void;
  /** The status changed (docker's `health_status: <status>` event). */
  changed(status: HealthState['Status']): void;
}

/**
 * Runs a container's health check on schedule while it runs (dockerd's monitor: the first probe after one
 * interval, the start interval while starting inside the start period). `stop` ends it when the container exits.
 */
export class HealthMonitor {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private state: HealthState;

  constructor(
    private readonly config: HealthConfig,
    private readonly cmd: string[],
    private readonly startedAt: number,
    private readonly hooks: HealthHooks,
    previous?: HealthState,
  ) {
    // Each start begins as starting, keeping the earlier probes' log (as dockerd).
    this.state = { Status: 'starting', FailingStreak: 0, Log: previous?.Log ?? [] };
    hooks.save(this.state);
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.run(), nextInterval(this.config, this.state.Status, this.startedAt));
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    const timeout = probeTimeout(this.config);
    const start = new Date();
    let r: { exitCode: number; output: string; timedOut: boolean };
    try {
      r = await this.hooks.probe(this.cmd, timeout);
    } catch (e) {
      r = { exitCode: -1, output: (e as Error).message, timedOut: false };
    }
    if (this.stopped) return;
    const end = new Date();
    const output = r.timedOut ? `Health check exceeded timeout (${goDurationText(timeout)})` : r.output;
    const before = this.state.Status;
    this.state = applyProbe(this.config, this.state, { start, end, exitCode: r.timedOut ? -1 : r.exitCode, output }, this.startedAt);
    this.hooks.save(this.state);
    if (this.state.Status !== before) this.hooks.changed(this.state.Status);
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}

/** Go's Duration.String() for whole milliseconds ('30s', '1.5s', '2m0s'). */
function goDurationText(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`;
}
