// The container manager: a container's records and lifecycle over the Stores — create, start (attached, or
// detached under a monitor), stop, kill, remove, update, exec — with the pieces of a run in modules of their own:
// bundle.ts (what a run is given on disk), supervise.ts (one run under its supervisor), exec.ts (exec and health
// probes), networking.ts (a container's networks), update.ts (docker update's rules), events.ts.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConflictError, InvalidArgumentError, NotFoundError, PlyError, StartError } from '../errors.js';
import { parseSignal, SIGRTMAX } from '../runtime/signals.js';
import { Runtime } from '../runtime/runc.js';
import type { ImageRecord } from '../image/store.js';
import type { Change, Parent, Snapshotter } from '../snapshot/index.js';
import type { Stores } from '../stores.js';
import { pidAlive } from '../content/store.js';
import type { Resources } from '../runtime/cgroups.js';
import { RestartManager, type RestartPolicy } from '../supervisor/restart.js';
import type { ContainerNetSpec, EndpointConfig, Networks } from '../network/index.js';
import type { EventLog } from '../events/log.js';
import { buildContainerSpec, type CreateOptions } from './create.js';
import { launchMonitor, replenishMonitor } from './monitor-launch.js';
import { initLayer, writeRunBundle, type PreparedRun, type RunNetwork, type RuntimeExtras } from './bundle.js';
import { containerEvent, networkEvents, volumeEvents } from './events.js';
import { exec, probe, type ExecOptions, type ProbeResult } from './exec.js';
import { attachNetwork, checkNetworkMode, connectNetwork, disconnectNetwork, netSpec } from './networking.js';
import { supervise, type AttachMode, type SuperviseOptions } from './supervise.js';
import { updatedResources, updatedSpec } from './update.js';
import { isRunning, volumeNames, type Container } from './store.js';

export { StartError };
export type { AttachMode, RuntimeExtras };

export class ContainerManager {
  readonly root: string;
  private readonly images: Stores['images'];
  private readonly snapshots: Stores['snapshots'];
  private readonly containers: Stores['containers'];
  private readonly volumes: Stores['volumes'];
  readonly networks: Networks;
  private readonly events: EventLog;

  constructor(readonly stores: Stores) {
    this.root = stores.root;
    this.images = stores.images;
    this.snapshots = stores.snapshots;
    this.containers = stores.containers;
    this.volumes = stores.volumes;
    this.networks = stores.networks;
    this.events = stores.events;
  }

  /** Logs a container event as dockerd does (events.ts). */
  event(c: Container, action: string, extra: Record<string, string> = {}): void {
    containerEvent(this.events, c, action, extra);
  }

  runtime(c: Container): Runtime {
    return new Runtime(c.spec.runtime, this.root);
  }

  logPath(c: Container): string {
    return path.join(this.containers.pathOf(c.id), `${c.id}-json.log`);
  }

  async create(o: CreateOptions, imageDigest: string, imageRef: string): Promise<Container> {
    const rec = this.images.get(imageDigest);
    if (!rec) throw new NotFoundError(`No such image: ${imageRef}`);
    const snapshotter = this.snapshots.forNew();
    const id = randomBytes(32).toString('hex');
    const spec = buildContainerSpec(o, this.images.config(rec), id);
    checkNetworkMode(this.stores, spec.network);
    for (const m of spec.mounts) {
      if (m.type !== 'volume') continue;
      const options = m.volumeOptions;
      delete m.volumeOptions; // kept by the volume, not by the container
      if (!m.source) {
        m.source = this.volumes.ensure(undefined, { anonymous: true, options }).name;
        spec.anonymousVolumes.push(m.source);
      } else {
        this.volumes.ensure(m.source, { options });
      }
    }
    const c = this.containers.create({ id, name: o.name, image: rec.digest, imageRef, spec });
    try {
      // vfs copies the image now, as docker's vfs driver does; overlay has nothing to make before the first start.
      await snapshotter.prepare(this.containers.pathOf(c.id), this.parentOf(c, rec));
    } catch (e) {
      this.containers.delete(c.id);
      throw e;
    }
    this.event(c, 'create');
    return c;
  }

  /** What the network module needs of a container. */
  netSpec(c: Container): ContainerNetSpec {
    return netSpec(c);
  }

  /** `network connect`: a running container gets an interface at once; any container keeps the network for its next start. */
  connect(ref: string, network: string, cfg: EndpointConfig): void {
    connectNetwork(this.stores, this.get(ref), network, cfg);
  }

  /** `network disconnect`: the container leaves the network now (if running) and at its next start. */
  disconnect(ref: string, network: string): void {
    disconnectNetwork(this.stores, this.get(ref), network);
  }

  /** Bytes of the files in the container's writable layer (`ps -s`, `system df`). */
  writableLayerSize(c: Container): number {
    const dir = this.containers.pathOf(c.id);
    return this.snapshots.of(dir).usage(dir);
  }

  /** The snapshotter of the container's writable layer, its key, and what the layer sits on (its image, its init layer). */
  snapshot(c: Container): { snapshotter: Snapshotter; key: string; parent: Parent } {
    const key = this.containers.pathOf(c.id);
    const rec = this.images.get(c.image);
    return { snapshotter: this.snapshots.of(key), key, parent: this.parentOf(c, rec) };
  }

  /** The image's layers (none when the image is gone) and the init layer, made when a snapshotter first asks for it. */
  private parentOf(c: Container, rec: ImageRecord | undefined): Parent {
    const layers = rec ? this.images.layers(rec) : [];
    const manager = this;
    return {
      layers,
      get init() {
        return manager.initLayer(c);
      },
    };
  }

  /** What the container changed in its filesystem (docker diff). */
  changes(c: Container): Change[] {
    const { snapshotter, key, parent } = this.snapshot(c);
    return snapshotter.changes(key, parent);
  }

  /** Unmounts the container's rootfs (a no-op when it is not mounted). */
  unmountRootfs(c: Container): void {
    const dir = this.containers.pathOf(c.id);
    this.snapshots.of(dir).unmount(dir);
  }

  volumePath(name: string): string {
    return this.volumes.dataPath(name);
  }

  /** Mounts the rootfs, attaches the network and writes the runtime bundle (containers/<id>/config.json). */
  async prepare(c: Container, extra: RuntimeExtras = {}): Promise<PreparedRun> {
    const dir = this.containers.pathOf(c.id);
    const rec = this.images.get(c.image);
    if (!rec) throw new NotFoundError(`image ${c.imageRef} of container ${c.name} is gone`);
    const rootfs = await this.snapshots.of(dir).mount(dir, this.parentOf(c, rec));
    let net: RunNetwork | undefined;
    try {
      this.volumes.mountFor(c.id, volumeNames(c));
      net = await attachNetwork(this.stores, c, (ref) => this.get(ref));
      const spec = await writeRunBundle(c, dir, rootfs, net, extra, (name) => this.volumePath(name));
      networkEvents(this.events, this.networks, c, 'connect');
      volumeEvents(this.events, c, 'mount');
      return { bundle: dir, rootfs, spec, netFd: net.fd };
    } catch (e) {
      if (net?.fd !== undefined) fs.closeSync(net.fd);
      this.networks.detach(c.id);
      this.volumes.unmountFor(c.id, volumeNames(c));
      this.snapshots.of(dir).unmount(dir);
      throw e;
    }
  }

  /** The container's init layer, between the image and its writable layer (bundle.ts). */
  initLayer(c: Container): string {
    return initLayer(c, this.containers.pathOf(c.id));
  }

  /** Runs the container's process under the runtime and waits for it (supervise.ts): the attached CLI and the monitor. */
  supervise(c: Container, mode: AttachMode, onStarted?: (err?: StartError) => void, extra?: RuntimeExtras, opts: SuperviseOptions = {}): Promise<number> {
    return supervise(this, c, mode, onStarted, extra, opts);
  }

  /**
   * A start the user asked for (start, restart, run): the restart policy applies again and counts from zero, as
   * dockerd resets its restart manager.
   */
  userStarted(c: Container): Container {
    if (c.manuallyStopped || c.restartCount !== 0) this.containers.update(c.id, { manuallyStopped: false, restartCount: 0 });
    return this.containers.get(c.id) ?? c;
  }

  /**
   * Runs the container attached to this process (run, start -a) and returns its first exit code; when its policy
   * restarts it, a detached monitor takes over after the back-off (docker's CLI also returns at the first exit).
   */
  async runAttached(c: Container): Promise<number> {
    const restart = new RestartManager(c.spec.restartPolicy);
    const code = await this.supervise(c, 'attached', undefined, undefined, { restart });
    const now = this.containers.get(c.id);
    if (now?.state === 'restarting') {
      try {
        await this.startDetached(now, { delayMs: restart.lastDelayMs });
      } catch {
        this.containers.update(c.id, { state: 'exited', monitorPid: 0 });
      }
    }
    return code;
  }

  /**
   * Starts the container under a detached monitor process that outlives this one. With `holdFor`, the monitor
   * waits for that many attach clients before it starts the process; `onAttachReady` runs once they can connect.
   * With `delayMs` the monitor first waits out a restart back-off (reporting at once), as the restart policy's
   * supervisor.
   */
  async startDetached(c: Container, opts: { holdFor?: number; onAttachReady?: () => void; delayMs?: number } = {}): Promise<void> {
    const child = launchMonitor(this.root, c.id, [String(opts.holdFor ?? 0), ...(opts.delayMs !== undefined ? [String(opts.delayMs)] : [])]);
    const status = await new Promise<string>((resolve) => {
      let buf = '';
      const pipe = child.stdio[3] as NodeJS.ReadableStream;
      pipe.on('data', (d: Buffer) => {
        buf += d.toString();
        // 'attach' comes first when the monitor listens for attach clients; the final line follows.
        while (buf.startsWith('attach\n')) {
          buf = buf.slice('attach\n'.length);
          opts.onAttachReady?.();
        }
      });
      pipe.on('end', () => resolve(buf));
      pipe.on('error', () => resolve(buf));
      child.on('exit', () => setTimeout(() => resolve(buf), 50));
    });
    child.unref();
    replenishMonitor();
    const line = status.trim();
    if (line === 'ok') return;
    const m = /^error (\d+) (.*)$/s.exec(line);
    if (m) throw new StartError(m[2]!, Number(m[1]));
    throw new StartError(`the container monitor failed to start${line ? `: ${line}` : ''}`, 125);
  }

  /**
   * Waits out a restart back-off for the monitor; false when the container is not to start after all (the user
   * stopped, killed or removed it meanwhile: it is left exited).
   */
  async waitToRestart(id: string, delayMs: number): Promise<boolean> {
    const deadline = Date.now() + delayMs;
    for (;;) {
      const c = this.containers.get(id);
      if (!c || c.state !== 'restarting') return false;
      if (c.manuallyStopped) {
        this.containers.update(id, { state: 'exited', monitorPid: 0 });
        return false;
      }
      const left = deadline - Date.now();
      if (left <= 0) return true;
      await new Promise((r) => setTimeout(r, Math.min(left, 50)));
    }
  }

  /** Reconciles a record whose supervisor died (kill -9, reboot) with the runtime's view. */
  refresh(c: Container): Container {
    if (c.state === 'restarting') {
      if (c.monitorPid > 0 && pidAlive(c.monitorPid)) return c;
      this.containers.update(c.id, { state: 'exited', pid: 0, monitorPid: 0 });
      return this.containers.get(c.id)!;
    }
    if (!isRunning(c)) return c;
    if (c.monitorPid > 0 && pidAlive(c.monitorPid)) return c;
    // `c` may have been read before the monitor recorded the exit and went away: only the current record says
    // whether the supervisor died without recording one (else a real exit code would become 255).
    const cur = this.containers.get(c.id);
    if (!cur || !isRunning(cur)) return cur ?? c;
    if (cur.monitorPid !== c.monitorPid && cur.monitorPid > 0 && pidAlive(cur.monitorPid)) return cur;
    c = cur;
    const st = this.runtime(c).state(c.id);
    if (st && (st.status === 'running' || st.status === 'paused')) return c;
    const dir = this.containers.pathOf(c.id);
    this.snapshots.of(dir).unmount(dir);
    this.runtime(c).delete(c.id);
    this.networks.detach(c.id);
    this.volumes.unmountFor(c.id, volumeNames(c));
    this.containers.update(c.id, { state: 'exited', pid: 0, monitorPid: 0, exitCode: c.exitCode || 255, finishedAt: Date.now() });
    return this.containers.get(c.id)!;
  }

  get(ref: string): Container {
    return this.refresh(this.containers.resolve(ref));
  }

  isRunning(c: Container): boolean {
    return isRunning(c);
  }

  kill(c: Container, signal: string): void {
    // A number is a signal to dockerd until the kernel's range is checked, per container.
    if (/^[0-9]+$/.test(signal) && Number(signal) > SIGRTMAX) throw new InvalidArgumentError(`Cannot kill container: ${c.name}: The linux daemon does not support signal ${signal}`);
    const sig = parseSignal(signal);
    if (c.state === 'restarting') {
      // Nothing runs: telling the supervisor not to start it again is enough (dockerd's rule).
      if (sig === 9 || sig === parseSignal(c.spec.stopSignal)) this.containers.update(c.id, { manuallyStopped: true });
      this.event(c, 'kill', { signal: String(sig) });
      return;
    }
    if (!this.isRunning(c)) throw new ConflictError(`Cannot kill container: ${c.name}: Container ${c.id} is not running`);
    // SIGKILL and the stop signal end the restart policy's loop, as `docker kill` does.
    if (sig === 9 || sig === parseSignal(c.spec.stopSignal)) this.containers.update(c.id, { manuallyStopped: true });
    // Logged before it is sent: the container's `die` must come after its `kill`.
    this.event(c, 'kill', { signal: String(sig) });
    this.runtime(c).kill(c.id, sig);
  }

  /** Waits until the container is no longer running; false on timeout. */
  async waitStopped(id: string, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const c = this.containers.get(id);
      if (!c) return true;
      const now = this.refresh(c);
      if (!this.isRunning(now)) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 15));
    }
  }

  async stop(c: Container, timeoutSec?: number, signal?: string): Promise<void> {
    if (!this.isRunning(c) && c.state !== 'restarting') return;
    // The restart policy's loop ends here: the supervisor sees the mark when the process exits (or before the
    // next restart, if it is waiting for one).
    this.containers.update(c.id, { manuallyStopped: true });
    if (c.state === 'restarting') {
      const deadline = Date.now() + 10_000;
      for (;;) {
        c = this.refresh(this.containers.get(c.id) ?? c);
        if (c.state !== 'restarting' || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      if (!this.isRunning(c)) {
        this.event(c, 'stop');
        return;
      }
    }
    const rt = this.runtime(c);
    const t = timeoutSec ?? c.spec.stopTimeout ?? 10;
    const sig = parseSignal(signal ?? c.spec.stopSignal);
    try {
      this.event(c, 'kill', { signal: String(sig) });
      rt.kill(c.id, sig);
      if (c.state === 'paused') rt.resume(c.id);
    } catch {
      // already gone
    }
    // A negative timeout waits for ever (docker's rule); otherwise SIGKILL follows.
    if (!(await this.waitStopped(c.id, t < 0 ? Infinity : t * 1000))) {
      try {
        this.event(c, 'kill', { signal: '9' });
        rt.kill(c.id, 'SIGKILL', true);
        if (c.state === 'paused') rt.resume(c.id);
      } catch {
        // already gone
      }
      if (!(await this.waitStopped(c.id, 10_000))) throw new PlyError(`container ${c.name} did not stop`);
    }
    this.event(this.containers.get(c.id) ?? c, 'stop');
  }

  async remove(c: Container, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    if (this.isRunning(c) || c.state === 'restarting') {
      if (!opts.force) {
        throw new ConflictError(
          `cannot remove container "/${c.name}": container is ${c.state}: stop the container before removing or force remove`,
        );
      }
      await this.stop(c, 0, 'SIGKILL');
    }
    this.removeStopped(c, opts.volumes ?? false);
  }

  /** Deletes a stopped container: its writable layer and bundle, and (with volumes) its anonymous volumes. */
  removeStopped(c: Container, volumes: boolean): void {
    const dir = this.containers.pathOf(c.id);
    this.snapshots.of(dir).remove(dir);
    this.runtime(c).delete(c.id);
    this.networks.detach(c.id);
    this.containers.delete(c.id);
    this.event(c, 'destroy');
    if (volumes) {
      for (const v of c.spec.anonymousVolumes) this.volumes.remove(v);
    }
  }

  /**
   * docker update: new resource limits (applied at once to a running container by the runtime) and/or a new
   * restart policy; both kept for the next start. Returns docker's warnings.
   */
  update(c: Container, u: { resources?: Resources; restartPolicy?: RestartPolicy }): string[] {
    const r = updatedResources(c.spec, u.resources, this.isRunning(c));
    if (r.live) this.runtime(c).update(c.id, r.live);
    this.containers.update(c.id, { spec: updatedSpec(c.spec, r.resources, u.restartPolicy) });
    this.event(c, 'update');
    return r.warnings;
  }

  /** A health probe in the running container (exec.ts). */
  probe(c: Container, cmd: string[], timeoutMs: number): Promise<ProbeResult> {
    return probe(this.runtime(c), c, this.containers.pathOf(c.id), cmd, timeoutMs);
  }

  /** Runs a command in a running container; returns its exit code (exec.ts). */
  exec(c: Container, o: ExecOptions): Promise<number> {
    return exec(this.runtime(c), c, this.containers.pathOf(c.id), o, (action, extra) => this.event(c, action, extra));
  }
}
