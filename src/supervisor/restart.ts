// Restart policies as dockerd applies them (moby daemon/internal/restartmanager): whether a container that exited
// starts again, and after how long: 100 ms, doubling on each restart up to a minute, back to 100 ms once a run
// lasted 10 s. `no`, `on-failure[:N]` (a non-zero exit, at most N restarts), `always`, `unless-stopped` (as always,
// except after the user stopped it). A container the user stopped or killed is not restarted by any policy.
import { InvalidArgumentError } from '../errors.js';

/** docker's HostConfig.RestartPolicy. */
export interface RestartPolicy {
  Name: '' | 'no' | 'always' | 'unless-stopped' | 'on-failure';
  MaximumRetryCount: number;
}

const NAMES = ['', 'no', 'always', 'unless-stopped', 'on-failure'];

/** `--restart no|always|unless-stopped|on-failure[:N]` as docker's CLI parses it. */
export function parseRestartPolicy(s: string): RestartPolicy {
  const i = s.indexOf(':');
  const name = i < 0 ? s : s.slice(0, i);
  const count = i < 0 ? undefined : s.slice(i + 1);
  if (!NAMES.includes(name)) throw new InvalidArgumentError(`invalid restart policy '${name}'`);
  if (count !== undefined && !/^\d+$/.test(count)) throw new InvalidArgumentError(`invalid restart policy format: maximum retry count must be an integer`);
  return checkRestartPolicy({ Name: name as RestartPolicy['Name'], MaximumRetryCount: count === undefined ? 0 : Number(count) });
}

/** docker's checks of a policy (moby container.ValidateRestartPolicy). */
export function checkRestartPolicy(p: RestartPolicy): RestartPolicy {
  if (!NAMES.includes(p.Name)) throw new InvalidArgumentError(`invalid restart policy '${p.Name}'`);
  if (p.MaximumRetryCount < 0) throw new InvalidArgumentError('maximum retry count cannot be negative');
  if (p.MaximumRetryCount > 0 && p.Name !== 'on-failure') {
    throw new InvalidArgumentError(`maximum retry count cannot be used with restart policy '${p.Name}'`);
  }
  return p;
}

export function isNone(p: RestartPolicy | undefined): boolean {
  return !p || p.Name === '' || p.Name === 'no';
}

const DEFAULT_DELAY_MS = 100;
const MAX_DELAY_MS = 60_000;
/** A run at least this long resets the back-off. */
const RESET_AFTER_MS = 10_000;

/** The decision after one run: restart (after `delayMs`) or stay down. Holds the back-off between runs. */
export class RestartManager {
  private delay: number;

  /** `delayMs`: the back-off so far (a monitor taking over from the attached CLI continues it). */
  constructor(
    private policy: RestartPolicy | undefined,
    delayMs = 0,
  ) {
    this.delay = delayMs;
  }

  /** The back-off of the last decision (what the next one doubles). */
  get lastDelayMs(): number {
    return this.delay;
  }

  setPolicy(p: RestartPolicy | undefined): void {
    this.policy = p;
  }

  /**
   * `restartCount`: restarts so far (on-failure's limit counts them); `manuallyStopped`: the user stopped or
   * killed it; `ranMs`: how long the run lasted.
   */
  shouldRestart(exitCode: number, restartCount: number, manuallyStopped: boolean, ranMs: number): { restart: boolean; delayMs: number } {
    const p = this.policy;
    if (isNone(p) || manuallyStopped) return { restart: false, delayMs: 0 };
    if (ranMs >= RESET_AFTER_MS) this.delay = 0;
    this.delay = this.delay === 0 ? DEFAULT_DELAY_MS : Math.min(this.delay * 2, MAX_DELAY_MS);
    let restart = false;
    if (p!.Name === 'always' || p!.Name === 'unless-stopped') restart = true;
    else if (p!.Name === 'on-failure') restart = exitCode !== 0 && (p!.MaximumRetryCount === 0 || restartCount < p!.MaximumRetryCount);
    return { restart, delayMs: this.delay };
  }
}

/**
 * Whether a container comes back when the service (dockerd's place) starts: `always` does, `unless-stopped` unless
 * the user stopped it, `on-failure` when it was still running as the machine went down (its supervisor vanished).
 */
export function restartsAtBoot(p: RestartPolicy | undefined, manuallyStopped: boolean, wasRunning: boolean): boolean {
  if (isNone(p)) return false;
  if (p!.Name === 'always') return true;
  if (p!.Name === 'unless-stopped') return !manuallyStopped;
  return wasRunning && !manuallyStopped;
}
