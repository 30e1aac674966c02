// The OCI runtime driver: runc (default) or crun, each with its own state root under the store.
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PlyError } from '../errors.js';

export interface RuntimeState {
  id: string;
  pid: number;
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped';
}

export class Runtime {
  readonly stateRoot: string;

  constructor(
    readonly name: string,
    storeRoot: string,
  ) {
    if (!/^[a-z0-9_-]+$/.test(name)) throw new PlyError(`unknown runtime ${name}`);
    this.stateRoot = path.join(storeRoot, 'runtime', name);
    fs.mkdirSync(this.stateRoot, { recursive: true, mode: 0o700 });
  }

  private base(logFile?: string): string[] {
    const a = ['--root', this.stateRoot];
    if (logFile) a.push('--log', logFile, '--log-format', 'json');
    return a;
  }

  /**
   * `runc run` in the foreground: the returned child's exit status is the container's. A TTY container needs a
   * terminal as stdio (the user's, or a pseudo-terminal its monitor holds): runc proxies it to the container's.
   */
  run(id: string, bundle: string, stdio: StdioOptions, opts: { pidFile: string; logFile: string; ownSession?: boolean; keep?: boolean }): ChildProcess {
    const argv = [this.name, ...this.base(opts.logFile), 'run', ...(opts.keep ? ['--keep'] : []), '--bundle', bundle, '--pid-file', opts.pidFile, id];
    return spawn(argv[0]!, argv.slice(1), { stdio, detached: !!opts.ownSession });
  }

  /** Whether `run --keep` exists (runc: the container's state and cgroups stay after it exits, until `delete`). */
  canKeep(): boolean {
    return this.name === 'runc';
  }

  /**
   * `runc update`: new cgroup limits for a running container (the OCI spec's linux.resources, on stdin).
   */
  update(id: string, resources: object): void {
    const r = spawnSync(this.name, [...this.base(), 'update', '--resources', '-', id], { input: JSON.stringify(resources), encoding: 'utf8' });
    if (r.status !== 0) throw new PlyError(`Cannot update container ${id}: ${lastLine(r.stderr)}`);
  }

  /** `runc exec` in the foreground with a process.json. */
  exec(id: string, processFile: string, stdio: StdioOptions, opts: { tty: boolean; logFile: string; detach?: boolean; ownSession?: boolean; pidFile?: string }): ChildProcess {
    const args = [...this.base(opts.logFile), 'exec', '--process', processFile];
    if (opts.pidFile) args.push('--pid-file', opts.pidFile);
    if (opts.tty && !opts.detach) args.push('--tty');
    if (opts.detach) args.push('--detach');
    return spawn(this.name, [...args, id], { stdio, detached: !!opts.ownSession });
  }

  state(id: string): RuntimeState | undefined {
    const r = spawnSync(this.name, [...this.base(), 'state', id], { encoding: 'utf8' });
    if (r.status !== 0) return undefined;
    try {
      return JSON.parse(r.stdout) as RuntimeState;
    } catch {
      return undefined;
    }
  }

  kill(id: string, signal: number | string, all = false): void {
    const args = [...this.base(), 'kill'];
    if (all) args.push('--all');
    const r = spawnSync(this.name, [...args, id, String(signal)], { encoding: 'utf8' });
    if (r.status !== 0) throw new PlyError(`cannot kill container ${id}: ${lastLine(r.stderr)}`);
  }

  /** Whether the runtime still keeps state for `id` (its state directory exists). */
  hasState(id: string): boolean {
    return fs.existsSync(path.join(this.stateRoot, id));
  }

  delete(id: string): void {
    if (!this.hasState(id)) return;
    spawnSync(this.name, [...this.base(), 'delete', '--force', id], { encoding: 'utf8' });
  }

  pause(id: string): void {
    this.simple('pause', id);
  }

  resume(id: string): void {
    this.simple('resume', id);
  }

  /** The host pids of the container's processes. */
  pids(id: string): number[] {
    const r = spawnSync(this.name, [...this.base(), 'ps', '--format', 'json', id], { encoding: 'utf8' });
    if (r.status !== 0) throw new PlyError(`cannot list processes of ${id}: ${lastLine(r.stderr)}`);
    return (JSON.parse(r.stdout || '[]') as number[] | null) ?? [];
  }

  /** `ps <args>` on the host, keeping the header and the container's processes (docker top's way). */
  ps(id: string, psArgs: string[]): string {
    const pids = new Set(this.pids(id));
    const r = spawnSync('ps', psArgs, { encoding: 'utf8' });
    if (r.status !== 0) throw new PlyError(`ps ${psArgs.join(' ')} failed: ${lastLine(r.stderr)}`);
    const lines = r.stdout.split('\n');
    const header = lines[0] ?? '';
    const pidCol = header.trim().split(/\s+/).indexOf('PID');
    if (pidCol < 0) throw new PlyError(`Couldn't find PID field in ps output`);
    const rows = lines.slice(1).filter((l) => l.trim() && pids.has(Number(l.trim().split(/\s+/)[pidCol])));
    return `${[header, ...rows].join('\n')}\n`;
  }

  private simple(cmd: string, id: string): void {
    const r = spawnSync(this.name, [...this.base(), cmd, id], { encoding: 'utf8' });
    if (r.status !== 0) throw new PlyError(`${cmd} of ${id} failed: ${lastLine(r.stderr)}`);
  }
}

function lastLine(s: string): string {
  const lines = s.trim().split('\n');
  const l = lines[lines.length - 1] ?? '';
  try {
    const j = JSON.parse(l) as { msg?: string };
    if (j.msg) return j.msg;
  } catch {
    // plain text
  }
  return l.replace(/^time="[^"]*" level=\w+ msg="?/, '').replace(/"$/, '');
}

/** The runtime's own error for a failed start, read from its JSON log: what docker would print. */
export function runtimeError(logFile: string): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(logFile, 'utf8');
  } catch {
    return undefined;
  }
  const errors: string[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try {
      const j = JSON.parse(line) as { level?: string; msg?: string };
      if ((j.level === 'error' || j.level === 'fatal') && j.msg) errors.push(j.msg);
    } catch {
      errors.push(line);
    }
  }
  return errors.length ? errors[errors.length - 1] : undefined;
}

/** docker's exit codes for a command that could not start: 127 not found, 126 not executable. */
export function startFailureCode(message: string): number {
  if (/executable file not found|no such file or directory/i.test(message)) return 127;
  if (/permission denied|exec format error|is a directory/i.test(message)) return 126;
  return 125;
}
