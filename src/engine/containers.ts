// The engine's container verbs: create, start (detached, or attached to this process), stop, kill, restart,
// pause, rename, remove, prune, wait, list with docker's filters, inspect in docker's shape, logs (following),
// attach (output), top, changes, commit, export, cp (host paths, and tar streams both ways), exec instances.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { CreateOptions } from '../container/create.js';
import { connectAttach, type AttachConnection } from '../container/attach.js';
import { ContainerManager } from '../container/manager.js';
import { cgroupsPath } from '../container/bundle.js';
import type { ExecIO } from '../container/exec.js';
import { emptyStats, sampleContainer, toStats, type ContainerStats, type StatsSample } from '../container/stats.js';
import { dockerConfig } from '../container/config.js';
import { keepMonitorWarm } from '../container/monitor-launch.js';
import type { Container } from '../container/store.js';
import { ConflictError, InvalidArgumentError, NotFoundError, PlyError } from '../errors.js';
import { rfc3339Nano } from '../gotemplate/gofmt.js';
import type { ImageRecord } from '../image/store.js';
import { ImageStore } from '../image/store.js';
import type { Stores } from '../stores.js';
import type { Resources } from '../runtime/cgroups.js';
import { restartsAtBoot, type RestartPolicy } from '../supervisor/restart.js';
import type { HealthConfig } from '../supervisor/health.js';
import { resolveInRoot } from '../util/rootpath.js';
import { humanDuration } from '../util/units.js';
import { Filters, labelsMatch, type FilterInput } from './filters.js';
import type {
  ContainerCreateResponse,
  ContainerInspect,
  ContainerSummary,
  ContainersPruneResponse,
  ContainerTop,
  ExecInspect,
  FilesystemChange,
  LogEntry,
  MountPoint,
  PathStat,
  WaitCondition,
  WaitResponse,
} from './types.js';

export type { Container, CreateOptions, Resources, RestartPolicy, ContainerStats, HealthConfig };
export { parseUlimit } from '../container/create.js';
export { parseRestartPolicy } from '../supervisor/restart.js';

export interface ListContainersOptions {
  /** Stopped containers too (docker ps -a). */
  all?: boolean;
  /** Only the n most recently created (of every state). */
  limit?: number;
  /** SizeRw: bytes of each writable layer (slow). */
  size?: boolean;
  /** status, name, id, label, ancestor, exited. */
  filters?: FilterInput;
}

export interface LogsOptions {
  follow?: boolean;
  /** Lines from the end ('all', or a count). */
  tail?: string | number;
  /** Unix seconds, an RFC 3339 time, or a duration before now ('42m'). */
  since?: string | number;
  until?: string | number;
  stdout?: boolean;
  stderr?: boolean;
  /** Ends a follow (the client went away). */
  signal?: AbortSignal;
}

export interface CommitOptions {
  author?: string;
  message?: string;
  /** Dockerfile instructions applied to the config (commit --change). */
  changes?: string[];
  /** Freeze the container while its layer is read (docker's default). */
  pause?: boolean;
  reference?: string;
}

export interface ExecCreateOptions {
  cmd: string[];
  tty?: boolean;
  /** Keep stdin open (-i). */
  interactive?: boolean;
  env?: string[];
  /** Files of KEY=VALUE lines (--env-file). */
  envFiles?: string[];
  user?: string;
  workdir?: string;
  privileged?: boolean;
  /** The terminal's initial [rows, cols] (with `tty`, over streams). */
  consoleSize?: [number, number];
  /** Which output streams a client attached (docker's AttachStdout/AttachStderr; default both). */
  attachStdout?: boolean;
  attachStderr?: boolean;
}

const CONTAINER_FILTERS = [
  'ancestor', 'before', 'expose', 'exited', 'health', 'id', 'isolation', 'is-task', 'label', 'name', 'network', 'publish', 'since', 'status', 'volume',
] as const;
/** docker's container states and health states, the values its status and health filters accept. */
const STATES = ['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'];
const HEALTH = ['starting', 'healthy', 'unhealthy', 'none'];

/** A container's health status for the health filter ('none' without a check). */
function healthStatus(c: Container): string {
  return c.health && c.spec.healthcheck ? c.health.Status : 'none';
}

/** Go's filters.Match: the value as a regular expression (one that does not compile matches nothing). */
function goRegexMatch(pattern: string, source: string): boolean {
  try {
    return new RegExp(pattern).test(source);
  } catch {
    return false;
  }
}

/** A publish/expose filter value: PORT[-PORT][/PROTO] (nat.ParsePortSpecs), each port of a range. */
function portFilter(v: string): { port: number; proto: string }[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/.exec(v);
  if (!m) throw new InvalidArgumentError(`invalid port format: ${v}`);
  const lo = Number(m[1]);
  const hi = m[2] !== undefined ? Number(m[2]) : lo;
  if (hi < lo || hi > 65535) throw new InvalidArgumentError(`invalid range specified for port: ${v}`);
  const out: { port: number; proto: string }[] = [];
  for (let p = lo; p <= hi; p++) out.push({ port: p, proto: m[3] ?? 'tcp' });
  return out;
}

/** A live attachment to a container (docker attach): output as it comes, stdin and terminal size going in. */
export interface AttachSession {
  /** The container has a TTY (its output is one raw stream, reported as stdout). */
  tty: boolean;
  /** Resolves once the session reaches the running container (false: it never will, e.g. its start failed). */
  connected: Promise<boolean>;
  /** Output chunks; ends when the container stops (or the session closes). */
  output: AsyncIterable<{ stream: 'stdout' | 'stderr'; data: Buffer }>;
  /** Input for the container's stdin (once connected). */
  stdin(data: Buffer): void;
  /** The end of this client's input: the container's stdin closes if it was created with StdinOnce. */
  closeStdin(): void;
  resize(rows: number, cols: number): void;
  close(): void;
}

/** A session (attach or wait) made before a start, connected when this engine starts the container. */
interface PendingAttach {
  connected(conn: AttachConnection | undefined): void;
}

interface ExecInstance {
  id: string;
  containerId: string;
  opts: ExecCreateOptions;
  running: boolean;
  exitCode: number | null;
  /** While it runs with a TTY over streams: sets the terminal's size. */
  resize?: (rows: number, cols: number) => void;
}

/** Go's os.FileMode type bits, as docker's path stat header carries them. */
const GO_MODE_DIR = 2 ** 31;
const GO_MODE_SYMLINK = 2 ** 27;

const running = (c: Container) => c.state === 'running' || c.state === 'paused';
/** docker's State.Running: a container waiting to be restarted by its policy counts as running. */
const up = (c: Container) => running(c) || c.state === 'restarting';

export class ContainerService {
  private readonly manager: ContainerManager;
  private readonly execs = new Map<string, ExecInstance>();
  private readonly pending = new Map<string, PendingAttach[]>();

  constructor(private readonly stores: Stores) {
    this.manager = new ContainerManager(stores);
  }

  /**
   * For a long-lived process (`ply system service`): keep a container monitor started ahead of need, so a
   * detached start does not wait for Node's start-up. `false` stops the spare.
   */
  keepMonitorWarm(on: boolean): void {
    keepMonitorWarm(on);
  }

  /** A container's record (its state reconciled with the runtime), by name, ID or unique ID prefix. */
  get(ref: string): Container {
    return this.manager.get(ref);
  }

  isRunning(c: Container): boolean {
    return running(c);
  }

  /** Creates a container from a local image (NotFoundError when it is not here: see ImageService.ensure). */
  async create(o: CreateOptions): Promise<ContainerCreateResponse> {
    const rec = this.stores.images.lookup(o.image);
    if (!rec) throw new NotFoundError(`No such image: ${o.image}`);
    const warnings: string[] = [];
    const c = await this.manager.create({ ...o, warnings }, rec.digest, o.image);
    return { Id: c.id, Warnings: warnings };
  }

  /**
   * Starts the container under a detached monitor; false when it was running already (docker: 304). Attach
   * sessions and waits made on it before the start (through this engine) are connected before its first byte.
   */
  async start(ref: string): Promise<boolean> {
    let c = this.manager.get(ref);
    if (up(c)) return false;
    c = this.manager.userStarted(c);
    const pending = this.pending.get(c.id) ?? [];
    this.pending.delete(c.id);
    const dir = this.stores.containers.pathOf(c.id);
    const connected = pending.map((p) => ({ p, done: false }));
    try {
      await this.manager.startDetached(c, {
        holdFor: pending.length,
        onAttachReady: () => {
          for (const x of connected) {
            connectAttach(dir).then(
              (conn) => {
                x.done = true;
                x.p.connected(conn);
              },
              () => {
                x.done = true;
                x.p.connected(undefined);
              },
            );
          }
        },
      });
    } finally {
      // A monitor that failed before listening leaves its sessions with nothing to follow.
      for (const x of connected) if (!x.done) x.p.connected(undefined);
    }
    return true;
  }

  /**
   * Runs the container with this process's stdin/stdout/stderr (the CLI's `run`, `start -a`) and returns its
   * exit code; signals this process gets reach the container.
   */
  async runAttached(ref: string): Promise<number> {
    return this.manager.runAttached(this.manager.userStarted(this.manager.get(ref)));
  }

  async stop(ref: string, opts: { timeout?: number; signal?: string } = {}): Promise<void> {
    await this.manager.stop(this.manager.get(ref), opts.timeout, opts.signal);
  }

  kill(ref: string, signal = 'KILL'): void {
    this.manager.kill(this.manager.get(ref), signal);
  }

  async restart(ref: string, opts: { timeout?: number; signal?: string } = {}): Promise<void> {
    const c = this.manager.get(ref);
    try {
      await this.manager.stop(c, opts.timeout, opts.signal);
      // A restart asked for by the user starts counting again, as docker's does (RestartCount counts policy restarts).
      const fresh = this.manager.userStarted(this.manager.get(c.id));
      await this.manager.startDetached(fresh);
      this.manager.event(fresh, 'restart');
    } catch (e) {
      // dockerd's words for a restart that failed once the container was found.
      if (e instanceof PlyError) e.message = `Cannot restart container ${ref}: ${e.message}`;
      throw e;
    }
  }

  /**
   * What dockerd does as it starts, for the service (or the host) starting again: containers whose policy says so
   * come back: `always`, `unless-stopped` unless the user stopped it, `on-failure` when it was running as its
   * supervisor went away. Containers never started and those still supervised are left alone. Returns their IDs.
   */
  async startPolicyContainers(): Promise<string[]> {
    const started: string[] = [];
    for (const rec of this.stores.containers.list()) {
      if (!rec.spec.restartPolicy || rec.startedAt === 0) continue;
      const wasRunning = rec.state === 'running' || rec.state === 'paused' || rec.state === 'restarting';
      const c = this.manager.refresh(rec);
      if (up(c) || c.state === 'removing' || c.state === 'dead' || !restartsAtBoot(c.spec.restartPolicy, c.manuallyStopped, wasRunning)) continue;
      try {
        await this.manager.startDetached(c);
        started.push(c.id);
      } catch {
        // its start failed (recorded on the container, as any start's): the others still come back
      }
    }
    return started;
  }

  /**
   * docker update: new memory/CPU/pids limits (a running container gets them at once, through the runtime) and/or
   * a new restart policy. Fields left out stay as they are.
   */
  update(ref: string, u: { resources?: Resources; restartPolicy?: RestartPolicy }): { Warnings: string[] } {
    return { Warnings: this.manager.update(this.manager.get(ref), u) };
  }

  /** Freezes every process of the container (the freezer cgroup). */
  pause(ref: string): void {
    this.setPaused(ref, true);
  }

  unpause(ref: string): void {
    this.setPaused(ref, false);
  }

  private setPaused(ref: string, pause: boolean): void {
    const c = this.manager.get(ref);
    const from = pause ? 'running' : 'paused';
    if (c.state !== from) throw new PlyError(`container ${c.id} is not ${from}`);
    const rt = this.manager.runtime(c);
    if (pause) rt.pause(c.id);
    else rt.resume(c.id);
    this.stores.containers.update(c.id, { state: pause ? 'paused' : 'running' });
    this.manager.event(c, pause ? 'pause' : 'unpause');
  }

  rename(ref: string, name: string): void {
    const c = this.manager.get(ref);
    const to = name.replace(/^\//, '');
    this.stores.containers.rename(c.id, to);
    // On user networks the new name resolves at once and the old one no more (docker's embedded DNS does the same).
    this.stores.networks.renameContainer(c.id, to, this.manager.isRunning(c) ? c.pid : undefined);
    this.manager.event({ ...c, name: to }, 'rename', { oldName: `/${c.name}` });
  }

  async remove(ref: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    await this.manager.remove(this.manager.get(ref), opts);
  }

  /** Removes every stopped container (matching `label`/`until` filters). */
  prune(opts: { filters?: FilterInput } = {}): ContainersPruneResponse {
    const filters = Filters.parse(opts.filters, ['label', 'until']);
    const until = filters.get('until').map((v) => parseTime(v));
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const c of this.stores.containers.list().map((x) => this.manager.refresh(x))) {
      if (up(c)) continue;
      if (!labelsMatch(filters, c.spec.labels) || until.some((t) => c.created >= t)) continue;
      reclaimed += this.manager.writableLayerSize(c);
      this.manager.removeStopped(c, false);
      deleted.push(c.id);
    }
    return { ContainersDeleted: deleted, SpaceReclaimed: reclaimed };
  }

  /**
   * Waits for a condition and returns the exit code: 'not-running' (now, if it is not running), 'next-exit'
   * (the end of the next run, even if it has not started yet), 'removed' (the record gone). A running
   * container's end comes from its monitor's attach socket; without one (a container run attached by a CLI),
   * the record is polled.
   */
  async wait(ref: string, opts: { condition?: WaitCondition; signal?: AbortSignal } = {}): Promise<WaitResponse> {
    const condition = opts.condition ?? 'not-running';
    const first = this.manager.get(ref);
    const result = (c: Container, code?: number): WaitResponse => ({ StatusCode: code ?? c.exitCode, ...(c.error ? { Error: { Message: c.error } } : {}) });
    if (condition === 'not-running' && !running(first)) return result(first);
    // The end of a run: the one going on, or (next-exit; removed, for a container not started yet) the next one.
    let conn: AttachConnection | undefined;
    if (running(first)) conn = await connectAttach(this.stores.containers.pathOf(first.id)).catch(() => undefined);
    else if (condition === 'next-exit' || first.state === 'created') conn = await this.nextRun(first, opts.signal);
    let code: number | undefined;
    if (conn) {
      const abort = () => conn.close();
      opts.signal?.addEventListener('abort', abort);
      try {
        for await (const _ of conn.output) void _; // output is not wanted here
        code = await conn.exit;
      } finally {
        opts.signal?.removeEventListener('abort', abort);
        conn.close();
      }
    }
    let last = first;
    for (;;) {
      opts.signal?.throwIfAborted();
      const rec = this.stores.containers.get(first.id);
      const c = rec && this.manager.refresh(rec);
      if (!c) return result(last, code);
      last = c;
      if (condition !== 'removed') {
        if (code !== undefined) return result(c, code);
        // Without the monitor's word, a run counts once it ended after the wait began.
        if (!running(c) && (condition === 'not-running' || c.finishedAt > first.finishedAt)) return result(c);
      }
      await new Promise((r) => setTimeout(r, 15));
    }
  }

  /**
   * The attach connection of a container's next run: registered for a start through this engine, or (started
   * elsewhere) taken once it runs; undefined if it could not be had.
   */
  private async nextRun(c: Container, signal?: AbortSignal): Promise<AttachConnection | undefined> {
    const entry: PendingAttach = { connected: () => undefined };
    const mine = () => (this.pending.get(c.id) ?? []).includes(entry);
    const drop = () => {
      const l = (this.pending.get(c.id) ?? []).filter((x) => x !== entry);
      if (l.length) this.pending.set(c.id, l);
      else this.pending.delete(c.id);
    };
    const viaStart = new Promise<AttachConnection | undefined>((resolve) => {
      entry.connected = resolve;
      this.pending.set(c.id, [...(this.pending.get(c.id) ?? []), entry]);
      signal?.addEventListener('abort', () => {
        drop();
        resolve(undefined);
      });
    });
    // Started by another process (the CLI): follow the record until it runs, then connect.
    let stop = false;
    const elsewhere = (async () => {
      while (!stop) {
        await new Promise((r) => setTimeout(r, 50));
        if (stop || !mine()) return new Promise<undefined>(() => undefined); // this engine's start took it
        const rec = this.stores.containers.get(c.id);
        if (!rec || (!running(rec) && rec.finishedAt !== c.finishedAt)) {
          drop();
          return undefined;
        }
        if (running(rec) && rec.startedAt !== c.startedAt) {
          drop();
          return connectAttach(this.stores.containers.pathOf(c.id)).catch(() => undefined);
        }
      }
      return undefined;
    })();
    const conn = await Promise.race([viaStart, elsewhere]);
    stop = true;
    return conn;
  }

  /** docker ps: newest first; running ones only unless `all` (or a status/exited filter, or a limit). */
  list(opts: ListContainersOptions = {}): ContainerSummary[] {
    const filters = Filters.parse(opts.filters, CONTAINER_FILTERS);
    let list = this.stores.containers.list().map((c) => this.manager.refresh(c));
    const all = opts.all || opts.limit !== undefined || filters.has('status') || filters.has('exited');
    const match = this.listFilter(filters, list);
    if (!all) list = list.filter(up);
    list = list.filter(match);
    if (opts.limit !== undefined && opts.limit >= 0) list = list.slice(0, opts.limit);
    const names = this.stores.images.names();
    return list.map((c) => {
      const imgNames = names.get(c.image) ?? [];
      const summary: ContainerSummary = {
        Id: c.id,
        Names: [`/${c.name}`],
        Image: c.imageRef || (imgNames[0] ? ImageStore.display(imgNames[0]) : c.image.slice(7, 19)),
        ImageID: this.stores.images.get(c.image)?.id ?? c.image,
        // dockerd's: arguments with a space in single quotes.
        Command: [c.spec.path, ...c.spec.args.map((a) => (a.includes(' ') ? `'${a}'` : a))].join(' '),
        Created: Math.floor(c.created / 1000),
        Ports: running(c) ? this.portList(c) : [],
        Labels: c.spec.labels,
        State: c.state,
        Status: statusText(c),
        HostConfig: { NetworkMode: c.spec.network },
        NetworkSettings: { Networks: Object.fromEntries(Object.keys(c.spec.networks ?? { [c.spec.network]: {} }).map((n) => [n, {}])) },
        Mounts: this.mountPoints(c, true),
      };
      if (opts.size) {
        summary.SizeRw = this.manager.writableLayerSize(c);
        summary.SizeRootFs = summary.SizeRw + (this.stores.images.get(c.image)?.size ?? 0);
      }
      return summary;
    });
  }

  /**
   * docker ps's filters, validated as dockerd does (a bad status, exited or health value is an error): name and id
   * are regular expressions, as Go's filters.Match; before/since a container; volume a name, source or destination;
   * network a name or an ID prefix; publish/expose a port (range) with an optional protocol.
   */
  private listFilter(filters: Filters, all: Container[]): (c: Container) => boolean {
    for (const v of filters.get('status')) if (!STATES.includes(v)) throw new InvalidArgumentError(`invalid filter 'status=${v}'`);
    const exited = filters.get('exited').map((v) => {
      if (!/^[+-]?\d+$/.test(v)) throw new InvalidArgumentError(`strconv.Atoi: parsing ${JSON.stringify(v)}: invalid syntax`);
      return Number(v);
    });
    for (const v of filters.get('health')) if (!HEALTH.includes(v)) throw new InvalidArgumentError(`Unrecognised filter value for health: ${v}`);
    const isTask = filters.get('is-task');
    if (isTask.length && !['true', 'false', '1', '0'].includes(isTask[isTask.length - 1]!)) throw new InvalidArgumentError(`invalid filter 'is-task=[${isTask.join(' ')}]'`);
    const created = (key: 'before' | 'since') => {
      const vs = filters.get(key);
      if (!vs.length) return undefined;
      const ref = vs[vs.length - 1]!;
      const c = all.find((x) => x.id === ref || x.name === ref.replace(/^\//, '')) ?? all.find((x) => x.id.startsWith(ref));
      if (!c) throw new NotFoundError(`no such container ${ref}`);
      return c.created;
    };
    const before = created('before');
    const since = created('since');
    const ports = (key: 'publish' | 'expose') => filters.get(key).flatMap(portFilter);
    const publish = ports('publish');
    const expose = ports('expose');
    const regex = (key: string, source: string) => filters.match(key, (v) => v === source || goRegexMatch(v, source));
    const networks = new Map(this.stores.networks.list().map((n) => [n.name, n.id]));
    return (c) => {
      const s = c.spec;
      if (!filters.match('status', (v) => c.state === v)) return false;
      if (exited.length && !(c.state === 'exited' && exited.includes(c.exitCode ?? 0))) return false;
      if (!regex('name', `/${c.name}`) || !regex('id', c.id)) return false;
      if (!filters.match('ancestor', (v) => c.imageRef === v || this.stores.images.lookup(v)?.digest === c.image)) return false;
      if (!labelsMatch(filters, s.labels)) return false;
      if (!filters.match('health', (v) => healthStatus(c) === v)) return false;
      if (isTask.length && ['true', '1'].includes(isTask[isTask.length - 1]!)) return false;
      if (!regex('isolation', '')) return false;
      if (before !== undefined && c.created >= before) return false;
      if (since !== undefined && c.created <= since) return false;
      if (
        !filters.match('volume', (v) =>
          s.mounts.some((m) => m.target === v || m.source === v || (m.type === 'volume' && this.stores.volumes.dataPath(m.source!) === v)),
        )
      ) {
        return false;
      }
      const joined = Object.keys(s.networks ?? { [s.network]: {} });
      if (!filters.match('network', (v) => joined.includes(v) || joined.some((n) => networks.get(n)?.startsWith(v)))) return false;
      if (publish.length || expose.length) {
        const list = running(c) ? this.portList(c) : [];
        const hit = list.some(
          (p) => publish.some((f) => f.proto === p.Type && p.PublicPort === f.port) || expose.some((f) => f.proto === p.Type && p.PrivatePort === f.port),
        );
        if (!hit) return false;
      }
      return true;
    };
  }

  /** The published ports (sorted by container port), then the exposed ones not published, as docker's list shows them. */
  private portList(c: Container): ContainerSummary['Ports'] {
    const published = [...this.stores.networks.ports(c.id)].sort((a, b) => a.containerPort - b.containerPort);
    const seen = new Set(published.map((p) => `${p.containerPort}/${p.proto}`));
    return [
      ...published.map((p) => ({ IP: p.hostIp, PrivatePort: p.containerPort, PublicPort: p.hostPort, Type: p.proto })),
      ...Object.keys(c.spec.exposedPorts ?? {})
        .filter((e) => !seen.has(e))
        .map((e) => ({ PrivatePort: Number(e.split('/')[0]), Type: e.split('/')[1] ?? 'tcp' })),
    ];
  }

  private mountPoints(c: Container, withTmpfs: boolean): MountPoint[] {
    return c.spec.mounts
      .filter((m) => withTmpfs || m.type !== 'tmpfs')
      .map((m) => ({
        Type: m.type,
        ...(m.type === 'volume' ? { Name: m.source, Source: this.stores.volumes.dataPath(m.source!), Driver: 'local' } : { Source: m.source ?? '' }),
        Destination: m.target,
        Mode: m.readonly ? 'ro' : '',
        RW: !m.readonly,
        Propagation: m.type === 'bind' ? 'rprivate' : '',
      }));
  }

  /** docker container inspect's JSON. */
  inspect(ref: string, opts: { size?: boolean } = {}): ContainerInspect {
    const c = this.manager.get(ref);
    const dir = this.stores.containers.pathOf(c.id);
    const s = c.spec;
    const rec = this.stores.images.get(c.image);
    const iso = (ms: number) => (ms ? rfc3339Nano(new Date(ms)) : '0001-01-01T00:00:00Z');
    const snapshotter = this.stores.snapshots.of(dir);
    const execIds = [...this.execs.values()].filter((e) => e.containerId === c.id).map((e) => e.id);
    const binds = s.mounts.flatMap((m) => (m.bind ? [m.bind] : []));
    const tmpfs = s.mounts.filter((m) => m.type === 'tmpfs');
    return {
      Id: c.id,
      Created: iso(c.created),
      Path: s.path,
      Args: s.args,
      State: {
        Status: c.state,
        Running: up(c),
        Paused: c.state === 'paused',
        Restarting: c.state === 'restarting',
        OOMKilled: c.oomKilled,
        Dead: c.state === 'dead',
        Pid: c.pid,
        ExitCode: c.exitCode,
        Error: c.error,
        StartedAt: iso(c.startedAt),
        FinishedAt: iso(c.finishedAt),
        ...(c.health ? { Health: c.health } : {}),
      },
      Image: rec?.id ?? c.image,
      ResolvConfPath: `${dir}/resolv.conf`,
      HostnamePath: `${dir}/hostname`,
      HostsPath: `${dir}/hosts`,
      LogPath: this.manager.logPath(c),
      Name: `/${c.name}`,
      RestartCount: c.restartCount,
      Driver: snapshotter.name,
      Platform: 'linux',
      MountLabel: '',
      ProcessLabel: '',
      AppArmorProfile: '',
      ExecIDs: execIds.length ? execIds : null,
      HostConfig: {
        // docker's Binds: the -v host paths and named volumes, as given (anonymous volumes and --mount are not).
        Binds: binds.length ? binds : null,
        ContainerIDFile: '',
        // What ply always does, in docker's words (compose reads the log driver to know logs can be read back).
        LogConfig: { Type: 'json-file', Config: {} },
        NetworkMode: s.network,
        PortBindings: s.portBindings ?? {},
        RestartPolicy: s.restartPolicy ?? { Name: 'no', MaximumRetryCount: 0 },
        AutoRemove: s.autoRemove,
        VolumeDriver: '',
        VolumesFrom: null,
        CapAdd: s.capAdd.length ? s.capAdd : null,
        CapDrop: s.capDrop.length ? s.capDrop : null,
        CgroupnsMode: 'host',
        Dns: s.dns ?? [],
        DnsOptions: s.dnsOptions ?? [],
        DnsSearch: s.dnsSearch ?? [],
        ExtraHosts: s.extraHosts?.length ? s.extraHosts : null,
        GroupAdd: null,
        IpcMode: 'private',
        Cgroup: '',
        Links: null,
        OomScoreAdj: 0,
        PidMode: '',
        Privileged: s.privileged,
        PublishAllPorts: s.publishAll ?? false,
        ReadonlyRootfs: s.readonlyRootfs,
        SecurityOpt: null,
        ...(tmpfs.length ? { Tmpfs: Object.fromEntries(tmpfs.map((m) => [m.target, (m.options ?? []).join(',')])) } : {}),
        UTSMode: '',
        UsernsMode: '',
        ShmSize: s.shmSize ?? 64 * 1024 * 1024,
        Runtime: s.runtime,
        ConsoleSize: s.consoleSize ?? [0, 0],
        ...(s.init ? { Init: true } : {}),
        Isolation: '',
        CgroupParent: '',
        ...hostConfigResources(s.resources ?? {}),
        BlkioWeightDevice: [],
        BlkioDeviceReadBps: [],
        BlkioDeviceWriteBps: [],
        BlkioDeviceReadIOps: [],
        BlkioDeviceWriteIOps: [],
        CpuRealtimePeriod: 0,
        CpuRealtimeRuntime: 0,
        Devices: [],
        DeviceCgroupRules: null,
        DeviceRequests: null,
        KernelMemory: 0,
        KernelMemoryTCP: 0,
        Ulimits: (s.ulimits ?? []).map((u) => ({ Name: u.name, Hard: u.hard, Soft: u.soft })),
        CpuCount: 0,
        CpuPercent: 0,
        IOMaximumIOps: 0,
        IOMaximumBandwidth: 0,
        MaskedPaths: s.privileged ? null : MASKED_PATHS,
        ReadonlyPaths: s.privileged ? null : READONLY_PATHS,
      },
      GraphDriver: { Data: snapshotter.graphData(dir), Name: snapshotter.name },
      ...(opts.size ? { SizeRw: this.manager.writableLayerSize(c), SizeRootFs: this.manager.writableLayerSize(c) + (rec?.size ?? 0) } : {}),
      Mounts: this.mountPoints(c, false),
      Config: dockerConfig(c, rec ? this.stores.images.config(rec).config : undefined),
      NetworkSettings: this.stores.networks.settings(this.manager.netSpec(c)),
    };
  }

  /** docker network connect: the container joins the network now (if running) and at every start. */
  connect(ref: string, network: string, cfg: { aliases?: string[]; ip?: string } = {}): void {
    this.manager.connect(ref, network, cfg);
  }

  /** docker network disconnect. */
  disconnect(ref: string, network: string): void {
    this.manager.disconnect(ref, network);
  }

  /** docker port: the published ports in force for a running container. */
  ports(ref: string): { containerPort: number; proto: string; hostIp: string; hostPort: number }[] {
    return this.stores.networks.ports(this.manager.get(ref).id);
  }

  /**
   * The container's output from its json-file log: the last `tail` lines, between `since` and `until`, and
   * with `follow` what it writes until it stops. Errors (no such container, bad arguments) come before the
   * first line, so a face can answer them before streaming.
   */
  async logs(ref: string, opts: LogsOptions = {}): Promise<AsyncIterable<LogEntry>> {
    const c = this.manager.get(ref);
    const since = opts.since !== undefined && opts.since !== '' ? parseTime(String(opts.since), 'since') : undefined;
    const until = opts.until !== undefined && opts.until !== '' ? parseTime(String(opts.until), 'until') : undefined;
    let tail: number | undefined;
    if (opts.tail !== undefined && opts.tail !== 'all') {
      tail = Number(opts.tail);
      // dockerd: a tail that is not a number means all of it.
      if (!Number.isInteger(tail) || String(opts.tail).trim() === '' || tail < 0) tail = undefined;
    }
    const file = this.manager.logPath(c);
    // A TTY container run attached kept no log (its output went to the terminal).
    if (c.spec.tty && c.monitorPid === 0 && c.state === 'exited' && !fs.existsSync(file)) return (async function* () {})();
    const stderr = opts.stderr !== false;
    const stdout = opts.stdout !== false;
    return this.readLog(c, { from: 0, tail, since, until, follow: !!opts.follow, signal: opts.signal, stream: (s) => (s === 'stderr' ? stderr : stdout) });
  }

  /** Entries of the container's log from byte `from` (the last `tail` of them), and with `follow` until it stops. */
  private async readLog(
    c: Container,
    o: { from: number; tail?: number; since?: number; until?: number; follow: boolean; signal?: AbortSignal; stream: (s: string) => boolean },
  ): Promise<AsyncIterable<LogEntry>> {
    const { readLog } = await import('../container/logs.js');
    const file = this.manager.logPath(c);
    const manager = this.manager;
    const containers = this.stores.containers;
    return (async function* () {
      let { entries, offset } = readLog(file, o.from);
      if (o.tail !== undefined) entries = o.tail === 0 ? [] : entries.slice(-o.tail);
      const select = function* (list: typeof entries) {
        for (const e of list) {
          const t = Date.parse(e.time);
          if (o.since !== undefined && t < o.since) continue;
          if (o.until !== undefined && t > o.until) continue;
          if (!o.stream(e.stream)) continue;
          yield { stream: e.stream, time: rfc3339Nano(e.time), log: e.log } satisfies LogEntry;
        }
      };
      yield* select(entries);
      if (!o.follow) return;
      while (!o.signal?.aborted) {
        const cur = containers.get(c.id);
        const alive = cur ? up(manager.refresh(cur)) : false;
        const next = readLog(file, offset);
        offset = next.offset;
        yield* select(next.entries);
        if (!alive) {
          yield* select(readLog(file, offset).entries);
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
  }

  /**
   * docker attach: the container's output (with `logs`, what it wrote before; with `stream`, what it writes until
   * it stops) and, through the session, its stdin and terminal size. A container not started yet is attached
   * before its first byte when this engine starts it.
   */
  async attach(ref: string, opts: { logs?: boolean; stream?: boolean; signal?: AbortSignal } = {}): Promise<AttachSession> {
    const c = this.manager.get(ref);
    const stream = opts.stream ?? true;
    if (stream && !running(c) && c.state !== 'created') throw new ConflictError('You cannot attach to a stopped container, start it first');
    const past = opts.logs ? await this.readLog(c, { from: 0, follow: false, stream: () => true }) : undefined;
    // Registered now (before the caller answers its client), connected when the container runs.
    const pending: Promise<AttachConnection | undefined> = !stream
      ? Promise.resolve(undefined)
      : running(c)
        ? connectAttach(this.stores.containers.pathOf(c.id)).catch(() => undefined)
        : this.nextRun(c, opts.signal);
    let conn: AttachConnection | undefined;
    let closed = false;
    const connected = pending.then((x) => {
      conn = x;
      if (closed) x?.close();
      return x !== undefined;
    });
    const self = this;
    return {
      tty: c.spec.tty,
      connected,
      output: (async function* () {
        if (past) for await (const e of past) yield { stream: e.stream, data: Buffer.from(e.log) };
        if (!(await connected)) {
          // A container run attached by a CLI has no attach socket: its log is followed instead (output only).
          const now = stream ? self.stores.containers.get(c.id) : undefined;
          if (!now || !running(now) || closed) return;
          const from = fs.statSync(self.manager.logPath(c), { throwIfNoEntry: false })?.size ?? 0;
          for await (const e of await self.readLog(now, { from, follow: true, stream: () => true })) {
            if (closed) return;
            yield { stream: e.stream, data: Buffer.from(e.log) };
          }
          return;
        }
        for await (const f of conn!.output) yield { stream: f.kind === 2 ? 'stderr' : 'stdout', data: f.data } as const;
      })(),
      stdin: (d) => conn?.stdin(d),
      closeStdin: () => conn?.closeStdin(),
      resize: (rows, cols) => conn?.resize(rows, cols),
      close: () => {
        closed = true;
        conn?.close();
      },
    };
  }

  /** Sets the container's terminal size (docker's resize); a container without a TTY ignores it. */
  async resize(ref: string, rows: number, cols: number): Promise<void> {
    const c = this.manager.get(ref);
    if (!running(c)) throw new ConflictError(`Container ${c.id} is not running`);
    if (!c.spec.tty) return;
    const conn = await connectAttach(this.stores.containers.pathOf(c.id)).catch(() => undefined);
    if (!conn) return;
    conn.resize(rows, cols);
    // The frame is written before the connection ends (a half-close keeps the bytes in order).
    await new Promise((r) => setTimeout(r, 5));
    conn.close();
  }

  /**
   * docker's stats: the container's usage from its cgroups, every second while `stream` (the first frame has no
   * previous sample, as docker's); otherwise one frame, after a second's wait so CPU % has a previous sample
   * (docker's one-shot skips the wait). A container that is not running gives docker's zeros.
   */
  async *stats(ref: string, opts: { stream?: boolean; oneShot?: boolean; signal?: AbortSignal } = {}): AsyncGenerator<ContainerStats> {
    const stream = opts.stream ?? true;
    const id = this.manager.get(ref).id;
    let prev: StatsSample | undefined;
    const sample = (): [Container, StatsSample | undefined] | undefined => {
      const c = this.stores.containers.get(id);
      if (!c) return undefined;
      const now = this.manager.refresh(c);
      if (!running(now)) return [now, undefined];
      return [now, sampleContainer(now, cgroupsPath(now.id), now.spec.network !== 'host')];
    };
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        opts.signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
      });
    if (!stream && !opts.oneShot) {
      prev = sample()?.[1];
      if (prev) await sleep(1000);
    }
    for (;;) {
      if (opts.signal?.aborted) return;
      const s = sample();
      if (!s) return;
      const [c, cur] = s;
      yield cur ? toStats(c, cur, prev) : emptyStats(c);
      prev = cur;
      if (!stream) return;
      await sleep(1000);
    }
  }

  /** The container's processes (`ps` columns; default `-ef`). */
  top(ref: string, psArgs: string[] = []): ContainerTop {
    const c = this.manager.get(ref);
    if (!running(c)) throw new PlyError(`container ${c.id} is not running`);
    const lines = this.manager.runtime(c).ps(c.id, psArgs.length ? psArgs : ['-ef']).split('\n').filter((l) => l.trim() !== '');
    const Titles = (lines[0] ?? '').trim().split(/\s+/);
    const Processes = lines.slice(1).map((l) => {
      const fields = l.trim().split(/\s+/);
      // The last column (the command) keeps its spaces.
      return [...fields.slice(0, Titles.length - 1), fields.slice(Titles.length - 1).join(' ')];
    });
    return { Titles, Processes };
  }

  /** What the container changed, in docker's order (by path). */
  async changes(ref: string): Promise<FilesystemChange[]> {
    const kinds = { C: 0, A: 1, D: 2 } as const;
    return this.manager.changes(this.manager.get(ref)).map((ch) => ({ Path: ch.path, Kind: kinds[ch.kind] }));
  }

  /** A new image: the container's image plus its writable layer as one more layer. */
  async commit(ref: string, opts: CommitOptions = {}): Promise<ImageRecord> {
    const { commitContainer } = await import('../container/commit.js');
    const { tagName } = await import('../reference/reference.js');
    if (opts.reference) tagName(opts.reference);
    const c = this.manager.get(ref);
    const rec = await commitContainer(this.manager, c, opts);
    this.manager.event(c, 'commit', { comment: opts.message ?? '' });
    return rec;
  }

  /** The container's filesystem, flattened, as a tar: to a stream, or synchronously to a file descriptor. */
  async export(ref: string, out: Writable | number): Promise<void> {
    const { exportContainer } = await import('../container/commit.js');
    await exportContainer(this.manager, this.manager.get(ref), out);
  }

  /** docker cp between a host path and `CONTAINER:PATH` (either way round). */
  async copy(src: string, dest: string, opts: { archive?: boolean; followLink?: boolean } = {}): Promise<void> {
    const { copy } = await import('../container/copy.js');
    await copy(this.manager, src, dest, opts);
  }

  /** `HEAD /containers/{id}/archive`: what is at `path` in the container (symlinks in parents resolved inside it). */
  async archiveStat(ref: string, p: string): Promise<PathStat> {
    const { withRootfs } = await import('../container/commit.js');
    const c = this.manager.get(ref);
    return withRootfs(this.manager, c, async (rootfs) => statIn(rootfs, p, c.name));
  }

  /**
   * `GET /containers/{id}/archive`: a tar of `path` (its last component the top entry, as docker's) and its
   * stat. The stream is read while the rootfs is available: consume it before anything else of this container.
   */
  async archiveGet(ref: string, p: string, out: Writable): Promise<PathStat> {
    const { withRootfs } = await import('../container/commit.js');
    const { writeTree } = await import('../layer/diff.js');
    const { TarWriter } = await import('../tar/index.js');
    const c = this.manager.get(ref);
    return withRootfs(this.manager, c, async (rootfs) => {
      const stat = statIn(rootfs, p, c.name);
      const parent = resolveInRoot(rootfs, path.posix.dirname(path.posix.join('/', p)));
      const base = path.posix.basename(path.posix.join('/', p));
      const writer = new TarWriter();
      const produce = (async () => {
        if (base === '') await writeTree(rootfs, writer, { quiescent: !running(c) });
        else await writeTree(parent, writer, { skip: (rel) => rel !== base && !rel.startsWith(`${base}/`), quiescent: !running(c) });
        await writer.finish();
      })();
      produce.catch((e: unknown) => writer.destroy(e as Error));
      await Promise.all([pipeline(writer.stream, out), produce]);
      return stat;
    });
  }

  /** `PUT /containers/{id}/archive`: unpacks a tar into the directory `path` of the container (confined to it). */
  async archivePut(ref: string, p: string, tar: Readable | AsyncIterable<Buffer>): Promise<void> {
    const { withRootfs } = await import('../container/commit.js');
    const { applyLayer } = await import('../layer/apply.js');
    const { decompressed } = await import('../layer/compression.js');
    const c = this.manager.get(ref);
    if (c.spec.readonlyRootfs && running(c)) throw new ConflictError('container rootfs is marked read-only');
    await withRootfs(this.manager, c, async (rootfs) => {
      const dir = resolveInRoot(rootfs, p);
      const st = fs.statSync(dir, { throwIfNoEntry: false });
      if (!st) throw new NotFoundError(`Could not find the file ${p} in container ${c.name}`);
      if (!st.isDirectory()) throw new InvalidArgumentError(`extraction point is not a directory: ${p}`);
      await applyLayer(dir, decompressed(tar), { mode: 'flat' });
    });
  }

  /** docker exec, step 1: an exec instance (kept by this engine) for a running container. */
  execCreate(ref: string, opts: ExecCreateOptions): { Id: string } {
    const c = this.manager.get(ref);
    if (!running(c)) throw new ConflictError(`container ${c.id} is not running`);
    if (opts.cmd.length === 0) throw new InvalidArgumentError('exec requires at least 1 argument');
    const id = randomBytes(32).toString('hex');
    this.execs.set(id, { id, containerId: c.id, opts, running: false, exitCode: null });
    this.manager.event(c, `exec_create: ${opts.cmd.join(' ')}`, { execID: id });
    return { Id: id };
  }

  /**
   * docker exec, step 2: runs the instance and returns its exit code. Its stdio is this process's, or `io`'s
   * streams (no TTY then); `detach` returns at once.
   */
  async execStart(id: string, opts: { detach?: boolean; io?: ExecIO } = {}): Promise<number> {
    const e = this.execs.get(id);
    if (!e) throw new NotFoundError(`No such exec instance: ${id}`);
    if (e.running || e.exitCode !== null) throw new ConflictError(`exec ${id} has already run`);
    const { readEnvFile } = await import('../container/create.js');
    const o = e.opts;
    e.running = true;
    try {
      const code = await this.manager.exec(this.manager.get(e.containerId), {
        cmd: o.cmd,
        tty: o.tty,
        interactive: o.interactive,
        env: [...(o.envFiles ?? []).flatMap(readEnvFile), ...(o.env ?? [])],
        user: o.user,
        workdir: o.workdir,
        privileged: o.privileged,
        detach: opts.detach,
        io: opts.io && {
          ...opts.io,
          ...(o.attachStdout === false ? { stdout: discard() } : {}),
          ...(o.attachStderr === false ? { stderr: discard() } : {}),
          consoleSize: opts.io.consoleSize ?? o.consoleSize,
          onResize: (fn) => (e.resize = fn),
        },
        execId: e.id,
      });
      e.exitCode = opts.detach ? null : code;
      return code;
    } finally {
      e.running = false;
      e.resize = undefined;
    }
  }

  /** Sets a running exec's terminal size (docker's exec resize); one without a TTY ignores it. */
  execResize(id: string, rows: number, cols: number): void {
    const e = this.execs.get(id);
    if (!e) throw new NotFoundError(`No such exec instance: ${id}`);
    if (!e.running) throw new ConflictError(`exec ${id} is not running`);
    e.resize?.(rows, cols);
  }

  /** `GET /exec/{id}/json`. */
  execInspect(id: string): ExecInspect {
    const e = this.execs.get(id);
    if (!e) throw new NotFoundError(`No such exec instance: ${id}`);
    const [entrypoint = '', ...args] = e.opts.cmd;
    return {
      ID: e.id,
      ContainerID: e.containerId,
      Running: e.running,
      ExitCode: e.exitCode,
      Pid: 0,
      OpenStdin: !!e.opts.interactive,
      OpenStdout: e.opts.attachStdout !== false,
      OpenStderr: e.opts.attachStderr !== false,
      CanRemove: false,
      DetachKeys: '',
      ProcessConfig: { privileged: !!e.opts.privileged, user: e.opts.user ?? '', tty: !!e.opts.tty, entrypoint, arguments: args },
    };
  }

  /** Bytes of the files in the container's writable layer. */
  writableLayerSize(c: Container): number {
    return this.manager.writableLayerSize(c);
  }

  /** Every container, each reconciled with the runtime (for system-wide views). */
  all(): Container[] {
    return this.stores.containers.list().map((c) => this.manager.refresh(c));
  }
}

/** A stream that drops what it is given (an output the exec's client did not attach). */
function discard(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}
/** docker's default masked and read-only paths (HostConfig.MaskedPaths, ReadonlyPaths). */
const MASKED_PATHS = ['/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware'];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** docker's HostConfig resource fields, every one present (docker's zero values where unset). */
function hostConfigResources(r: Resources): Required<Omit<Resources, 'PidsLimit' | 'MemorySwappiness'>> & Pick<Resources, 'PidsLimit' | 'MemorySwappiness'> & { BlkioWeight: number } {
  return {
    CpuShares: r.CpuShares ?? 0,
    Memory: r.Memory ?? 0,
    NanoCpus: r.NanoCpus ?? 0,
    BlkioWeight: 0,
    CpuPeriod: r.CpuPeriod ?? 0,
    CpuQuota: r.CpuQuota ?? 0,
    CpusetCpus: r.CpusetCpus ?? '',
    CpusetMems: r.CpusetMems ?? '',
    MemoryReservation: r.MemoryReservation ?? 0,
    MemorySwap: r.MemorySwap ?? 0,
    MemorySwappiness: r.MemorySwappiness ?? null,
    OomKillDisable: r.OomKillDisable ?? false,
    PidsLimit: r.PidsLimit ? r.PidsLimit : null,
  };
}

/** dockerd's Status column. */
function statusText(c: Container): string {
  const now = Date.now();
  switch (c.state) {
    case 'running': {
      const h = c.spec.healthcheck && c.health?.Status;
      const health = h ? ` (${h === 'starting' ? 'health: starting' : h})` : '';
      return `Up ${humanDuration(now - c.startedAt)}${health}`;
    }
    case 'paused':
      return `Up ${humanDuration(now - c.startedAt)} (Paused)`;
    case 'exited':
      return `Exited (${c.exitCode}) ${humanDuration(now - c.finishedAt)} ago`;
    case 'restarting':
      return `Restarting (${c.exitCode}) ${humanDuration(now - c.finishedAt)} ago`;
    case 'removing':
      return 'Removal In Progress';
    case 'dead':
      return 'Dead';
    default:
      return 'Created';
  }
}

/** docker's time arguments: a duration before now ('42m', '1.5h'), unix seconds, or an RFC 3339 time. */
export function parseTime(s: string, what = 'until'): number {
  const rel = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s);
  if (rel) return Date.now() - Number(rel[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[rel[2] as 'ms' | 's' | 'm' | 'h'];
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw new InvalidArgumentError(`invalid value for "${what}": ${s}`);
  return t;
}

/** What `p` is inside `rootfs` (the last component not followed), as docker's path stat. */
function statIn(rootfs: string, p: string, container: string): PathStat {
  const abs = path.posix.join('/', p);
  const parent = resolveInRoot(rootfs, path.posix.dirname(abs));
  const base = path.posix.basename(abs);
  const full = base === '' ? rootfs : path.join(parent, base);
  const st = fs.lstatSync(full, { throwIfNoEntry: false });
  if (!st) throw new NotFoundError(`Could not find the file ${p} in container ${container}`);
  let mode = st.mode & 0o7777;
  if (st.isDirectory()) mode += GO_MODE_DIR;
  if (st.isSymbolicLink()) mode += GO_MODE_SYMLINK;
  return {
    name: base || '/',
    size: st.size,
    mode,
    mtime: rfc3339Nano(st.mtime),
    linkTarget: st.isSymbolicLink() ? fs.readlinkSync(full) : '',
  };
}
