// The engine's container verbs: create, start (detached, or attached to this process), stop, kill, restart,
// pause, rename, remove, prune, update, stats, top, changes, commit, export, cp. The other verb groups of
// containers live beside it, one concept each: container-list.ts (ps and its filters), container-inspect.ts,
// container-io.ts (logs, attach, resize, wait), container-exec.ts (exec instances), container-files.ts (archive).
import type { Readable, Writable } from 'node:stream';
import type { CommitOptions } from '../container/commit.js';
import type { CreateOptions, MountFields } from '../container/create.js';
import { connectAttach } from '../container/attach.js';
import { ContainerManager } from '../container/manager.js';
import { cgroupsPath } from '../container/bundle.js';
import type { ExecIO } from '../container/exec.js';
import { emptyStats, sampleContainer, toStats, type ContainerStats, type StatsSample } from '../container/stats.js';
import { keepMonitorWarm } from '../container/monitor-launch.js';
import { isRunning, isUp, type Container } from '../container/store.js';
import { NotFoundError, PlyError } from '../errors.js';
import type { ImageRecord } from '../image/store.js';
import type { Stores } from '../stores.js';
import type { Resources } from '../runtime/cgroups.js';
import { restartsAtBoot, type RestartPolicy } from '../supervisor/restart.js';
import type { HealthConfig } from '../supervisor/health.js';
import { parseSignal } from '../runtime/signals.js';
import { archiveGet, archivePut, archiveStat } from './container-files.js';
import { ExecInstances, type ExecCreateOptions } from './container-exec.js';
import { inspectContainer } from './container-inspect.js';
import { ContainerStreams, type AttachSession, type LogsOptions } from './container-io.js';
import { listContainers, type ListContainersOptions } from './container-list.js';
import { Filters, labelsMatch, parseTime, type FilterInput } from './filters.js';
import type {
  ContainerCreateResponse,
  ContainerInspect,
  ContainerSummary,
  ContainersPruneResponse,
  ContainerTop,
  ExecInspect,
  FilesystemChange,
  LogEntry,
  PathStat,
  WaitCondition,
  WaitResponse,
} from './types.js';

export type { Container, CreateOptions, MountFields, Resources, RestartPolicy, ContainerStats, HealthConfig };
export type { AttachSession, CommitOptions, ExecCreateOptions, ListContainersOptions, LogsOptions };
export { parseUlimit } from '../container/create.js';
export { parseRestartPolicy } from '../supervisor/restart.js';

export class ContainerService {
  private readonly manager: ContainerManager;
  private readonly execs: ExecInstances;
  private readonly streams: ContainerStreams;

  constructor(private readonly stores: Stores) {
    this.manager = new ContainerManager(stores);
    this.execs = new ExecInstances(this.manager);
    this.streams = new ContainerStreams(stores, this.manager);
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
    return isRunning(c);
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
    if (isUp(c)) return false;
    c = this.manager.userStarted(c);
    const pending = this.streams.takePending(c.id);
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
    // dockerd parses the signal before it looks the container up; a number is checked against the kernel's later.
    if (!/^[0-9]+$/.test(signal) || Number(signal) === 0) parseSignal(signal);
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
      const wasRunning = isUp(rec);
      const c = this.manager.refresh(rec);
      if (isUp(c) || c.state === 'removing' || c.state === 'dead' || !restartsAtBoot(c.spec.restartPolicy, c.manuallyStopped, wasRunning)) continue;
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
      if (isUp(c)) continue;
      if (!labelsMatch(filters, c.spec.labels) || until.some((t) => c.created >= t)) continue;
      reclaimed += this.manager.writableLayerSize(c);
      this.manager.removeStopped(c, false);
      deleted.push(c.id);
    }
    return { ContainersDeleted: deleted, SpaceReclaimed: reclaimed };
  }

  /**
   * Waits for a condition and returns the exit code: 'not-running', 'next-exit', 'removed' (container-io.ts).
   */
  wait(ref: string, opts: { condition?: WaitCondition; signal?: AbortSignal } = {}): Promise<WaitResponse> {
    return this.streams.wait(ref, opts);
  }

  /** docker ps: newest first; running ones only unless `all` (or a status/exited filter, or a limit). */
  list(opts: ListContainersOptions = {}): ContainerSummary[] {
    return listContainers(this.stores, this.manager, opts);
  }

  /** docker container inspect's JSON. */
  inspect(ref: string, opts: { size?: boolean } = {}): ContainerInspect {
    const c = this.manager.get(ref);
    return inspectContainer(this.stores, this.manager, c, this.execs.idsOf(c.id), opts);
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

  /** The container's output from its json-file log (container-io.ts); errors come before the first line. */
  logs(ref: string, opts: LogsOptions = {}): Promise<AsyncIterable<LogEntry>> {
    return this.streams.logs(ref, opts);
  }

  /** docker attach: output, stdin and terminal size through the session (container-io.ts). */
  attach(ref: string, opts: { logs?: boolean; stream?: boolean; signal?: AbortSignal } = {}): Promise<AttachSession> {
    return this.streams.attach(ref, opts);
  }

  /** Sets the container's terminal size (docker's resize); a container without a TTY ignores it. */
  resize(ref: string, rows: number, cols: number): Promise<void> {
    return this.streams.resize(ref, rows, cols);
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
      if (!isRunning(now)) return [now, undefined];
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
    if (!isRunning(c)) throw new PlyError(`container ${c.id} is not running`);
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
  archiveStat(ref: string, p: string): Promise<PathStat> {
    return archiveStat(this.manager, ref, p);
  }

  /** `GET /containers/{id}/archive`: a tar of `path` and its stat (container-files.ts). */
  archiveGet(ref: string, p: string, out: Writable): Promise<PathStat> {
    return archiveGet(this.manager, ref, p, out);
  }

  /** `PUT /containers/{id}/archive`: unpacks a tar into the directory `path` of the container (confined to it). */
  archivePut(ref: string, p: string, tar: Readable | AsyncIterable<Buffer>): Promise<void> {
    return archivePut(this.manager, ref, p, tar);
  }

  /** docker exec, step 1: an exec instance (kept by this engine) for a running container. */
  execCreate(ref: string, opts: ExecCreateOptions): { Id: string } {
    return this.execs.create(ref, opts);
  }

  /** docker exec, step 2: runs the instance and returns its exit code (container-exec.ts). */
  execStart(id: string, opts: { detach?: boolean; io?: ExecIO } = {}): Promise<number> {
    return this.execs.start(id, opts);
  }

  /** Sets a running exec's terminal size (docker's exec resize); one without a TTY ignores it. */
  execResize(id: string, rows: number, cols: number): void {
    this.execs.resize(id, rows, cols);
  }

  /** `GET /exec/{id}/json`. */
  execInspect(id: string): ExecInspect {
    return this.execs.inspect(id);
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
