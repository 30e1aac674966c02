// The container store: container records in the metadata DB and their directories under containers/<id>.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeTx, type DB } from '../db/db.js';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { MountSpec } from '../runtime/spec.js';
import type { EndpointConfig } from '../network/index.js';
import type { PortBindings } from '../network/ports.js';
import type { Resources } from '../runtime/cgroups.js';
import type { RestartPolicy } from '../supervisor/restart.js';
import type { HealthConfig, HealthState } from '../supervisor/health.js';
import { removeTree } from '../util/fs.js';

export type ContainerState = 'created' | 'running' | 'paused' | 'restarting' | 'exited' | 'dead' | 'removing';

/** What `create` decided, kept so `start` can (re)build the runtime bundle. */
export interface ContainerSpec {
  path: string;
  args: string[];
  env: string[];
  workingDir: string;
  user: string;
  hostname: string;
  tty: boolean;
  openStdin: boolean;
  /** Close the container's stdin when the first attached client that sent input closes it (docker's StdinOnce). */
  stdinOnce?: boolean;
  /** The terminal's initial [rows, cols] (docker's ConsoleSize). */
  consoleSize?: [number, number];
  /** docker's NetworkMode: bridge (the default network), host, none, container:<id>, or a network's name. */
  network: string;
  /** Networks joined besides the mode's and their settings (aliases, --ip, --mac-address), by name. */
  networks?: Record<string, EndpointConfig>;
  /** -p (docker's HostConfig.PortBindings) and -P. */
  portBindings?: PortBindings;
  publishAll?: boolean;
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
  /** --add-host HOST:IP */
  extraHosts?: string[];
  mounts: MountSpec[];
  readonlyRootfs: boolean;
  privileged: boolean;
  capAdd: string[];
  capDrop: string[];
  /** --security-opt as given (inspect's HostConfig.SecurityOpt), and the no-new-privileges it set. */
  securityOpt?: string[];
  noNewPrivileges?: boolean;
  init: boolean;
  stopSignal: string;
  stopTimeout?: number;
  autoRemove: boolean;
  labels: Record<string, string>;
  entrypoint: string[] | null;
  cmd: string[] | null;
  runtime: string;
  anonymousVolumes: string[];
  exposedPorts?: Record<string, Record<string, never>>;
  /** docker's HostConfig.Ulimits (never above the caller's hard limits when applied). */
  ulimits?: Ulimit[];
  /** docker's HostConfig resources: memory, CPU and pids limits (runtime/cgroups.ts). */
  resources?: Resources;
  /** Size of /dev/shm in bytes (docker's ShmSize; 64 MiB when absent). */
  shmSize?: number;
  /** docker's HostConfig.RestartPolicy. */
  restartPolicy?: RestartPolicy;
  /** docker's Config.Healthcheck (the image's, with the --health-* flags over it). */
  healthcheck?: HealthConfig;
}

export interface Ulimit {
  name: string;
  soft: number;
  hard: number;
}

/** docker's Config.Volumes of a container: the image's VOLUMEs and `-v /path` (anonymous volumes), by target. */
export function configVolumes(s: ContainerSpec): Record<string, Record<string, never>> | null {
  const targets = s.mounts.filter((m) => m.type === 'volume' && m.source !== undefined && s.anonymousVolumes.includes(m.source)).map((m) => m.target);
  return targets.length ? Object.fromEntries(targets.sort().map((t) => [t, {}])) : null;
}

/** A process of the container runs (paused counts: it is still there). */
/** The names of the volumes a container mounts. */
export function volumeNames(c: Pick<Container, 'spec'>): string[] {
  return c.spec.mounts.flatMap((m) => (m.type === 'volume' && m.source ? [m.source] : []));
}

export function isRunning(c: Pick<Container, 'state'>): boolean {
  return c.state === 'running' || c.state === 'paused';
}

/** docker's State.Running: a container waiting to be restarted by its policy counts as running too. */
export function isUp(c: Pick<Container, 'state'>): boolean {
  return isRunning(c) || c.state === 'restarting';
}

export interface Container {
  id: string;
  name: string;
  image: string;
  imageRef: string;
  created: number;
  spec: ContainerSpec;
  state: ContainerState;
  pid: number;
  monitorPid: number;
  exitCode: number;
  error: string;
  startedAt: number;
  finishedAt: number;
  restartCount: number;
  /** The kernel's OOM killer killed a process of the last run. */
  oomKilled: boolean;
  /** Stopped or killed by the user: restart policies leave it down (docker's HasBeenManuallyStopped). */
  manuallyStopped: boolean;
  /** The health check's state (docker's State.Health), when the container has a check. */
  health?: HealthState;
}

interface Row {
  id: string;
  name: string;
  image: string;
  image_ref: string;
  created: number;
  config: string;
  state: string;
  pid: number;
  monitor_pid: number;
  exit_code: number;
  error: string;
  started_at: number;
  finished_at: number;
  restart_count: number;
  oom_killed: number;
  manually_stopped: number;
  health: string | null;
}

function toContainer(r: Row): Container {
  return {
    id: r.id,
    name: r.name,
    image: r.image,
    imageRef: r.image_ref,
    created: r.created,
    spec: JSON.parse(r.config) as ContainerSpec,
    state: r.state as ContainerState,
    pid: r.pid,
    monitorPid: r.monitor_pid,
    exitCode: r.exit_code,
    error: r.error,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    restartCount: r.restart_count,
    oomKilled: r.oom_killed === 1,
    manuallyStopped: r.manually_stopped === 1,
    ...(r.health ? { health: JSON.parse(r.health) as HealthState } : {}),
  };
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

const ADJECTIVES = ['admiring', 'brave', 'clever', 'dazzling', 'eager', 'focused', 'gallant', 'happy', 'jolly', 'keen', 'lucid', 'modest', 'nifty', 'optimistic', 'peaceful', 'quirky', 'relaxed', 'serene', 'tender', 'upbeat', 'vibrant', 'wizardly', 'youthful', 'zealous'];
const NAMES = ['archimedes', 'babbage', 'curie', 'darwin', 'euler', 'feynman', 'galois', 'hopper', 'idris', 'joliot', 'kepler', 'lovelace', 'meitner', 'noether', 'ohm', 'pascal', 'ramanujan', 'shannon', 'turing', 'volta', 'wiles', 'yalow', 'zuse'];

export class ContainerStore {
  readonly dir: string;

  constructor(
    root: string,
    private readonly db: DB,
  ) {
    this.dir = path.join(root, 'containers');
    fs.mkdirSync(this.dir, { recursive: true });
  }

  pathOf(id: string): string {
    return path.join(this.dir, id);
  }

  create(input: { id?: string; name?: string; image: string; imageRef: string; spec: ContainerSpec }): Container {
    if (input.name !== undefined && !NAME_RE.test(input.name)) {
      throw new InvalidArgumentError(`Invalid container name (${input.name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    }
    const id = input.id ?? randomBytes(32).toString('hex');
    return writeTx(this.db, () => {
      let name = input.name;
      if (name === undefined) {
        do {
          name = `${ADJECTIVES[randomBytes(1)[0]! % ADJECTIVES.length]}_${NAMES[randomBytes(1)[0]! % NAMES.length]}`;
          if (this.byName(name)) name = `${name}${randomBytes(1)[0]! % 10}`;
        } while (this.byName(name));
      } else if (this.byName(name)) {
        const other = this.byName(name)!;
        throw new ConflictError(
          `Conflict. The container name "/${name}" is already in use by container "${other.id}". You have to remove (or rename) that container to be able to reuse that name.`,
        );
      }
      this.db
        .prepare('INSERT INTO containers (id, name, image, image_ref, created, config, state) VALUES (?, ?, ?, ?, ?, ?, ?)')
        .run(id, name, input.image, input.imageRef, Date.now(), JSON.stringify(input.spec), 'created');
      fs.mkdirSync(this.pathOf(id), { recursive: true, mode: 0o700 });
      return this.get(id)!;
    });
  }

  get(id: string): Container | undefined {
    const r = this.db.prepare('SELECT * FROM containers WHERE id = ?').get(id) as Row | undefined;
    return r && toContainer(r);
  }

  private byName(name: string): Container | undefined {
    const r = this.db.prepare('SELECT * FROM containers WHERE name = ?').get(name) as Row | undefined;
    return r && toContainer(r);
  }

  /** By name (with or without the leading '/'), full ID or unique ID prefix, as docker resolves. */
  resolve(ref: string): Container {
    const byName = this.byName(ref.replace(/^\//, ''));
    if (byName) return byName;
    const full = this.get(ref);
    if (full) return full;
    if (/^[0-9a-f]+$/.test(ref)) {
      const rows = this.db.prepare("SELECT * FROM containers WHERE id >= ? AND id < ? LIMIT 2").all(ref, `${ref}g`) as Row[];
      if (rows.length > 1) throw new ConflictError(`multiple IDs found with provided prefix: ${ref}`);
      if (rows.length === 1) return toContainer(rows[0]!);
    }
    throw new NotFoundError(`No such container: ${ref}`);
  }

  list(): Container[] {
    return (this.db.prepare('SELECT * FROM containers ORDER BY created DESC').all() as Row[]).map(toContainer);
  }

  usingImage(imageDigest: string): Container[] {
    return (this.db.prepare('SELECT * FROM containers WHERE image = ?').all(imageDigest) as Row[]).map(toContainer);
  }

  update(
    id: string,
    fields: Partial<Pick<Container, 'state' | 'pid' | 'monitorPid' | 'exitCode' | 'error' | 'startedAt' | 'finishedAt' | 'restartCount' | 'name' | 'spec' | 'oomKilled' | 'manuallyStopped'>> & { health?: HealthState | null },
  ): void {
    const cols: Record<string, string> = {
      state: 'state', pid: 'pid', monitorPid: 'monitor_pid', exitCode: 'exit_code', error: 'error',
      startedAt: 'started_at', finishedAt: 'finished_at', restartCount: 'restart_count', name: 'name', spec: 'config',
      oomKilled: 'oom_killed', manuallyStopped: 'manually_stopped', health: 'health',
    };
    const sets: string[] = [];
    const values: unknown[] = [];
    for (const [k, v] of Object.entries(fields)) {
      sets.push(`${cols[k]} = ?`);
      if (k === 'spec' || k === 'health') values.push(v === null || v === undefined ? null : JSON.stringify(v));
      else values.push(typeof v === 'boolean' ? (v ? 1 : 0) : v);
    }
    if (sets.length === 0) return;
    this.db.prepare(`UPDATE containers SET ${sets.join(', ')} WHERE id = ?`).run(...values, id);
  }

  rename(id: string, name: string): void {
    if (!NAME_RE.test(name)) throw new InvalidArgumentError(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    writeTx(this.db, () => {
      const other = this.byName(name);
      if (other && other.id !== id) {
        throw new ConflictError(`Error when allocating new name: Conflict. The container name "/${name}" is already in use by container "${other.id}". You have to remove (or rename) that container to be able to reuse that name.`);
      }
      this.update(id, { name });
    });
  }

  delete(id: string): void {
    this.db.prepare('DELETE FROM containers WHERE id = ?').run(id);
    removeTree(this.pathOf(id));
  }
}
