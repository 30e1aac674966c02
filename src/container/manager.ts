// Container lifecycle: create, start (attached or detached under a monitor), stop, kill, exec, rm.
import { spawn, type StdioOptions } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tty from 'node:tty';
import { randomBytes } from 'node:crypto';
import { ConflictError, InvalidArgumentError, NotFoundError, PlyError, StartError } from '../errors.js';
import type { Readable, Writable } from 'node:stream';
import { parseSignal, proxySignals, runtimeSignals } from '../runtime/signals.js';
import { buildSpec, writeBundle, type MountSpec, type RuntimeSpec } from '../runtime/spec.js';
import { resolveUser } from '../runtime/user.js';
import { Runtime, runtimeError, startFailureCode } from '../runtime/runc.js';
import type { ImageRecord } from '../image/store.js';
import type { Change, Parent, Snapshotter } from '../snapshot/index.js';
import type { Stores } from '../stores.js';
import { pidAlive } from '../content/store.js';
import { resolveInRoot } from '../util/rootpath.js';
import { buildContainerSpec, type CreateOptions } from './create.js';
import { LogWriter } from './logs.js';
import { launchMonitor, replenishMonitor } from './monitor-launch.js';
import { FRAME_STDERR, FRAME_STDOUT, type AttachServer } from './attach.js';
import { openpty, ptyResize } from '../native/index.js';
import type { Container, ContainerSpec } from './store.js';
import type { ContainerNetSpec, EndpointConfig, Networks } from '../network/index.js';
import { removeTree } from '../util/fs.js';
import type { EventLog } from '../events/log.js';
import { ContainerCgroup, normalizeResources, specResources, type Resources } from '../runtime/cgroups.js';
import { checkRestartPolicy, isNone, RestartManager, type RestartPolicy } from '../supervisor/restart.js';
import { HealthMonitor, probeCommand } from '../supervisor/health.js';

export class ContainerNotRunningError extends PlyError {}

export { StartError };

export type AttachMode = 'attached' | 'detached';

/** What one run of a container gets besides its spec, never recorded (a build's secret environment variables). */
export interface RuntimeExtras {
  env?: string[];
}

/** Streams for an exec's stdio instead of this process's: what an API connection carries. */
export interface ExecIO {
  stdin?: Readable;
  stdout: Writable;
  /** With a TTY, the terminal's output all goes to stdout. */
  stderr: Writable;
  /** With a TTY: its initial [rows, cols]. */
  consoleSize?: [number, number];
  /** With a TTY: called with the function that resizes it while the exec runs. */
  onResize?: (resize: (rows: number, cols: number) => void) => void;
}

/** The container's cgroup below each hierarchy (runc's cgroupfs driver). */
export const cgroupsPath = (id: string): string => `/ply/${id}`;

const TINI_PATHS = ['/usr/bin/tini-static', '/usr/bin/docker-init', '/usr/libexec/podman/catatonit'];

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

  /**
   * Logs a container event as dockerd does: the actor is the container, its attributes `extra`, then its labels,
   * its image (as the user named it) and its name.
   */
  event(c: Container, action: string, extra: Record<string, string> = {}): void {
    this.events.emit('container', action, c.id, { ...extra, ...c.spec.labels, image: c.imageRef, name: c.name });
  }

  /** network connect/disconnect events for each network a container is on (docker logs them for host and none too). */
  private networkEvents(c: Container, action: 'connect' | 'disconnect'): void {
    if (c.spec.network.startsWith('container:')) return;
    for (const name of Object.keys(c.spec.networks ?? { [c.spec.network]: {} })) {
      const net = this.networks.store.find(name);
      if (net) this.events.emit('network', action, net.id, { container: c.id, name: net.name, type: net.driver });
    }
  }

  /** volume mount/unmount events for the named and anonymous volumes of a container. */
  private volumeEvents(c: Container, action: 'mount' | 'unmount'): void {
    for (const m of c.spec.mounts) {
      if (m.type !== 'volume' || !m.source) continue;
      const attrs: Record<string, string> = { container: c.id, driver: 'local' };
      if (action === 'mount') Object.assign(attrs, { destination: m.target, propagation: '', 'read/write': String(!m.readonly) });
      this.events.emit('volume', action, m.source, attrs);
    }
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
    this.checkNetworkMode(spec.network);
    for (const m of spec.mounts) {
      if (m.type !== 'volume') continue;
      if (!m.source) {
        m.source = this.volumes.ensure(undefined, { anonymous: true }).name;
        spec.anonymousVolumes.push(m.source);
      } else {
        this.volumes.ensure(m.source);
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

  /** docker refuses to create a container on a network (or in a container's namespace) that does not exist. */
  private checkNetworkMode(mode: string): void {
    if (mode.startsWith('container:')) {
      this.containers.resolve(mode.slice('container:'.length));
      return;
    }
    if (!this.networks.store.find(mode)) throw new PlyError(`network ${mode} not found`);
  }

  /** What the network module needs of a container. */
  netSpec(c: Container): ContainerNetSpec {
    const s = c.spec;
    return {
      id: c.id,
      name: c.name,
      hostname: s.hostname,
      mode: s.network,
      networks: s.networks ?? {},
      portBindings: s.portBindings ?? {},
      publishAll: s.publishAll ?? false,
      exposed: Object.keys(s.exposedPorts ?? {}),
      dns: s.dns ?? [],
      dnsSearch: s.dnsSearch ?? [],
      dnsOptions: s.dnsOptions ?? [],
      extraHosts: s.extraHosts ?? [],
    };
  }

  /**
   * The container's network: a namespace plugged into its networks (or the host's, an empty one, another
   * container's) and the text of its /etc/hosts and /etc/resolv.conf.
   */
  private async attachNetwork(c: Container): Promise<{ mode: 'host' | 'none'; netnsPath?: string; fd?: number; hosts: string; resolvConf: string; hostname?: string }> {
    const s = c.spec;
    if (s.network.startsWith('container:')) {
      const ref = s.network.slice('container:'.length);
      const other = this.get(ref);
      if (!this.isRunning(other)) throw new ConflictError(`cannot join network namespace of a non running container: container ${other.id} is ${other.state}`);
      const dir = this.containers.pathOf(other.id);
      return {
        mode: other.spec.network === 'host' ? 'host' : 'none',
        netnsPath: other.spec.network === 'host' ? undefined : `/proc/${other.pid}/ns/net`,
        hosts: readOr(path.join(dir, 'hosts'), ''),
        resolvConf: readOr(path.join(dir, 'resolv.conf'), ''),
        hostname: other.spec.hostname,
      };
    }
    const att = await this.networks.attach(this.netSpec(c));
    return { mode: s.network === 'host' ? 'host' : 'none', netnsPath: att.netns, fd: att.fd, hosts: att.hosts, resolvConf: att.resolvConf };
  }

  /** `network connect`: a running container gets an interface at once; any container keeps the network for its next start. */
  connect(ref: string, network: string, cfg: EndpointConfig): void {
    const c = this.get(ref);
    const net = this.networks.resolve(network);
    // Disconnected from every network (its mode became none; compose does this to a new container before it
    // connects it again with its aliases): the network it joins becomes its mode, as docker keeps NetworkMode.
    const left = c.spec.network === 'none' && c.spec.networks !== undefined && Object.keys(c.spec.networks).length === 0;
    const s = left && net.driver === 'bridge' ? { ...c.spec, network: net.name } : c.spec;
    if (net.driver !== 'bridge' || s.network === 'host' || s.network === 'none' || s.network.startsWith('container:')) {
      if (s.network.startsWith('container:')) throw new ConflictError('container sharing network namespace with another container or host cannot be connected to any other network');
      throw new ConflictError('container cannot be disconnected from host network or connected to host network');
    }
    const networks = { ...(s.networks ?? { [s.network]: {} }) };
    if (networks[net.name] !== undefined) throw new ConflictError(`endpoint with name ${c.name} already exists in network ${net.name}`);
    if (cfg.ip && !net.ipamUser) throw new ConflictError('user specified IP address is supported only when connecting to networks with user configured subnets');
    const clean: EndpointConfig = { ...(cfg.aliases?.length ? { aliases: cfg.aliases } : {}), ...(cfg.ip ? { ip: cfg.ip } : {}) };
    if (this.isRunning(c)) {
      this.networks.connectRunning(this.netSpec(c), c.pid, net, clean);
      this.events.emit('network', 'connect', net.id, { container: c.id, name: net.name, type: net.driver });
    }
    networks[net.name] = clean;
    this.containers.update(c.id, { spec: { ...s, networks } });
  }

  /** `network disconnect`: the container leaves the network now (if running) and at its next start. */
  disconnect(ref: string, network: string): void {
    const c = this.get(ref);
    const net = this.networks.resolve(network);
    const s = c.spec;
    const networks = { ...(s.networks ?? { [s.network]: {} }) };
    if (net.driver === 'host' && s.network === 'host') throw new ConflictError('container cannot be disconnected from host network or connected to host network');
    if (networks[net.name] === undefined && s.network !== net.name) throw new ConflictError(`container ${c.id} is not connected to network ${net.name}`);
    if (this.isRunning(c)) {
      this.networks.disconnectRunning(c.id, net);
      this.events.emit('network', 'disconnect', net.id, { container: c.id, name: net.name, type: net.driver });
    }
    delete networks[net.name];
    // A container left without networks keeps docker's shape: NetworkMode stays, it starts with none of them.
    const rest = Object.keys(networks);
    this.containers.update(c.id, { spec: { ...s, networks, network: s.network === net.name ? rest[0] ?? 'none' : s.network } });
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

  /** Mounts the rootfs and writes the runtime bundle (containers/<id>/config.json). */
  async prepare(c: Container, extra: RuntimeExtras = {}): Promise<{ bundle: string; rootfs: string; spec: RuntimeSpec; netFd?: number }> {
    const dir = this.containers.pathOf(c.id);
    const rec = this.images.get(c.image);
    if (!rec) throw new NotFoundError(`image ${c.imageRef} of container ${c.name} is gone`);
    const rootfs = await this.snapshots.of(dir).mount(dir, this.parentOf(c, rec));
    let net: Awaited<ReturnType<ContainerManager['attachNetwork']>> | undefined;
    try {
      const s = c.spec;
      net = await this.attachNetwork(c);
      const etc = {
        hostname: path.join(dir, 'hostname'),
        hosts: path.join(dir, 'hosts'),
        resolvConf: path.join(dir, 'resolv.conf'),
      };
      const hostname = net.hostname ?? s.hostname;
      fs.writeFileSync(etc.hostname, `${hostname}\n`);
      fs.writeFileSync(etc.hosts, net.hosts);
      fs.writeFileSync(etc.resolvConf, net.resolvConf);
      const workdir = resolveInRoot(rootfs, s.workingDir || '/');
      if (!fs.existsSync(workdir)) fs.mkdirSync(workdir, { recursive: true, mode: 0o755 });
      const user = resolveUser(rootfs, s.user);
      const env = [...s.env];
      if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home || '/'}`);
      if (extra.env?.length) env.push(...extra.env);
      const mounts: MountSpec[] = [];
      for (const m of s.mounts) {
        if (m.type === 'volume') {
          const data = this.volumePath(m.source!);
          if (!fs.existsSync(data)) {
            fs.mkdirSync(data, { recursive: true, mode: 0o755 });
            await copyUp(resolveInRoot(rootfs, m.target), data);
          }
          mounts.push({ ...m, type: 'bind', source: data });
        } else if (m.type === 'bind') {
          if (!fs.existsSync(m.source!)) fs.mkdirSync(m.source!, { recursive: true });
          mounts.push(m);
        } else {
          mounts.push(m);
        }
      }
      let args = [s.path, ...s.args];
      if (s.init) {
        const tini = TINI_PATHS.find((p) => fs.existsSync(p));
        if (!tini) throw new PlyError('--init needs tini (Debian package tini) on the host');
        mounts.push({ type: 'bind', source: tini, target: '/sbin/docker-init', readonly: true });
        args = ['/sbin/docker-init', '--', ...args];
      }
      const spec = buildSpec({
        rootfs,
        readonlyRootfs: s.readonlyRootfs,
        args,
        env,
        cwd: s.workingDir,
        user: { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids },
        tty: s.tty,
        ...(s.consoleSize ? { consoleSize: s.consoleSize } : {}),
        hostname,
        network: net.mode,
        netnsPath: net.netnsPath,
        mounts,
        etcFiles: etc,
        privileged: s.privileged,
        capAdd: s.capAdd,
        capDrop: s.capDrop,
        ...(s.ulimits?.length ? { rlimits: s.ulimits.map((u) => ({ type: u.name, soft: u.soft, hard: u.hard })) } : {}),
        cgroupsPath: cgroupsPath(c.id),
        ...(s.resources ? { resources: specResources(s.resources) } : {}),
        ...(s.shmSize ? { shmSize: s.shmSize } : {}),
        annotations: { 'org.opencontainers.image.ref.name': c.imageRef },
      });
      writeBundle(dir, spec);
      this.networkEvents(c, 'connect');
      this.volumeEvents(c, 'mount');
      return { bundle: dir, rootfs, spec, netFd: net.fd };
    } catch (e) {
      if (net?.fd !== undefined) fs.closeSync(net.fd);
      this.networks.detach(c.id);
      this.snapshots.of(dir).unmount(dir);
      throw e;
    }
  }

  /**
   * The container's init layer, between the image and its writable layer (as docker's "-init" layer): the mount
   * points the runtime needs, so creating them never shows up in `diff` or `commit`.
   */
  initLayer(c: Container): string {
    const init = path.join(this.containers.pathOf(c.id), 'init');
    if (fs.existsSync(init)) return init;
    const tmp = `${init}.tmp`;
    removeTree(tmp);
    for (const d of ['proc', 'sys', 'dev/pts', 'dev/shm', 'etc']) fs.mkdirSync(path.join(tmp, d), { recursive: true, mode: 0o755 });
    for (const f of ['etc/hosts', 'etc/hostname', 'etc/resolv.conf', '.dockerenv']) fs.writeFileSync(path.join(tmp, f), '', { mode: 0o644 });
    for (const m of c.spec.mounts) {
      const target = path.join(tmp, m.target);
      const isFile = m.type === 'bind' && fs.existsSync(m.source!) && !fs.statSync(m.source!).isDirectory();
      if (isFile) {
        fs.mkdirSync(path.dirname(target), { recursive: true, mode: 0o755 });
        fs.writeFileSync(target, '');
      } else {
        fs.mkdirSync(target, { recursive: true, mode: 0o755 });
      }
    }
    fs.renameSync(tmp, init);
    return init;
  }

  /**
   * Runs the container's process under the runtime and waits for it: the attached CLI and the detached
   * monitor both come here. `onStarted` is called once the process runs (or with the reason it could not).
   * The monitor also serves the container's attach socket (`attach`): output to attached clients, their stdin
   * and terminal sizes in; with `holdFor`, the process starts only once that many clients connected (an API
   * client that attached before the start must see its first byte of output).
   */
  async supervise(
    c: Container,
    mode: AttachMode,
    onStarted?: (err?: StartError) => void,
    extra?: RuntimeExtras,
    opts: { attach?: boolean; holdFor?: number; onAttachReady?: () => void; restart?: RestartManager } = {},
  ): Promise<number> {
    const dir = this.containers.pathOf(c.id);
    const pidFile = path.join(dir, 'pid');
    const runtimeLog = path.join(dir, 'runtime.log');
    fs.rmSync(pidFile, { force: true });
    fs.writeFileSync(runtimeLog, '');
    const s = c.spec;
    // What the attach socket's clients reach once the process runs.
    const io: { stdin?: (d: Buffer) => void; closeStdin?: () => void; resize?: (rows: number, cols: number) => void } = {};
    let attach: AttachServer | undefined;
    if (opts.attach && mode === 'detached') {
      const { AttachServer } = await import('./attach.js');
      attach = await AttachServer.listen(dir, {
        stdin: (d) => io.stdin?.(d),
        stdinClosed: () => {
          if (s.stdinOnce) io.closeStdin?.();
        },
        resize: (rows, cols) => io.resize?.(rows, cols),
      });
      opts.onAttachReady?.();
    }
    try {
      return await this.superviseRun(c, mode, onStarted, extra, attach, io, opts.holdFor ?? 0, opts.restart);
    } finally {
      attach?.close();
    }
  }

  private async superviseRun(
    c: Container,
    mode: AttachMode,
    onStarted: ((err?: StartError) => void) | undefined,
    extra: RuntimeExtras | undefined,
    attach: AttachServer | undefined,
    io: { stdin?: (d: Buffer) => void; closeStdin?: () => void; resize?: (rows: number, cols: number) => void },
    holdFor: number,
    restart?: RestartManager,
  ): Promise<number> {
    const dir = this.containers.pathOf(c.id);
    const pidFile = path.join(dir, 'pid');
    const runtimeLog = path.join(dir, 'runtime.log');
    if (mode === 'attached') this.event(c, 'attach');
    let prepared: Awaited<ReturnType<ContainerManager['prepare']>>;
    try {
      [prepared] = await Promise.all([this.prepare(c, extra), holdFor > 0 && attach ? attach.waitForClients(holdFor, 10_000) : undefined]);
    } catch (e) {
      const err = e instanceof StartError ? e : new StartError((e as Error).message, 125);
      // docker records 126/127 for a command that cannot run; any other failed start keeps the last exit code,
      // or 128 in place of 0 (125 is only what `run` exits with).
      const exitCode = err.exitCode === 126 || err.exitCode === 127 ? err.exitCode : (this.containers.get(c.id) ?? c).exitCode || 128;
      this.containers.update(c.id, { error: err.message, exitCode });
      onStarted?.(err);
      // run --rm: a container that could not even be prepared (unpack failed, disk full) is not left behind.
      if (c.spec.autoRemove) {
        try {
          this.removeStopped(this.containers.get(c.id) ?? c, true);
        } catch {
          // reported by the error below; `container prune` removes it
        }
      }
      attach?.finish(err.exitCode);
      throw err;
    }
    const rt = this.runtime(c);
    const s = c.spec;
    // -it on ply's own terminal: runc drives that terminal. Any other TTY container (detached, -t without -i, -t in
    // a pipe) gets a pseudo-terminal its supervisor holds as runc's stdio, as docker gives one whatever the client
    // has (runc proxies it to the container's own console and follows its size on SIGWINCH).
    const ttyDirect = s.tty && mode === 'attached' && s.openStdin && !!process.stdin.isTTY;
    const size = mode === 'attached' && process.stdout.isTTY ? [process.stdout.rows, process.stdout.columns] : s.consoleSize;
    const pty = s.tty && !ttyDirect ? openpty(size?.[0] ?? 24, size?.[1] ?? 80) : undefined;
    // The stream owns the master (destroying it closes the descriptor); raw, as the container's own console
    // already turned \n into \r\n.
    const term = pty ? new tty.ReadStream(pty.master) : undefined;
    term?.setRawMode(true);
    let stdio: StdioOptions;
    if (ttyDirect) stdio = ['inherit', 'inherit', 'inherit'];
    else if (pty) stdio = [pty.slave, pty.slave, pty.slave];
    else if (mode === 'attached') stdio = [s.openStdin ? 'inherit' : 'ignore', 'pipe', 'pipe'];
    else stdio = [s.openStdin ? 'pipe' : 'ignore', 'pipe', 'pipe'];
    // Attached, signals sent to ply reach the container (docker's sig-proxy); see runtimeSignals.
    const sig = runtimeSignals(mode === 'attached' && stdio[0] === 'inherit' && !!process.stdin.isTTY);
    // With a memory limit the runtime keeps the container's cgroups after it exits, so the OOM killer's count can
    // be read (OOMKilled) before they are deleted.
    const keep = !!s.resources?.Memory && rt.canKeep();
    const child = rt.run(c.id, prepared.bundle, stdio, {
      pidFile,
      logFile: runtimeLog,
      ownSession: (mode === 'attached' && sig.ownSession) || !!pty,
      keep,
    });
    const unproxy = mode === 'attached' ? proxySignals(child, sig.proxy) : () => undefined;
    this.containers.update(c.id, { monitorPid: process.pid });
    const log = ttyDirect ? undefined : new LogWriter(this.logPath(c));
    // Until the process runs, stderr may carry the runtime's own complaint, which ply reports in its own words:
    // hold output back until the start is confirmed.
    let held: [NodeJS.WriteStream, Buffer][] | undefined = [];
    const forward = (to: NodeJS.WriteStream, d: Buffer) => {
      if (mode !== 'attached') return;
      if (held) held.push([to, d]);
      else to.write(d);
    };
    const outputDone: Promise<void>[] = [];
    if (pty && term) {
      fs.closeSync(pty.slave);
      term.on('data', (d: Buffer) => {
        log?.write('stdout', d);
        attach?.output(FRAME_STDOUT, d);
        forward(process.stdout, d);
      });
      // EIO once every holder of the slave is gone: the end of output.
      const t0 = term;
      outputDone.push(new Promise((r) => {
        t0.once('close', () => r());
        t0.once('error', () => r());
      }));
      const t = term;
      io.stdin = (d) => {
        if (!t.destroyed) t.write(d);
      };
      io.resize = (rows, cols) => {
        if (t.destroyed) return;
        try {
          ptyResize(pty.master, rows, cols);
          child.kill('SIGWINCH');
        } catch {
          // the terminal is gone
        }
      };
      if (mode === 'attached' && process.stdout.isTTY) {
        const resize = io.resize;
        const onWinch = () => resize(process.stdout.rows, process.stdout.columns);
        process.stdout.on('resize', onWinch);
        void exitedOnce(child).then(() => process.stdout.off('resize', onWinch));
      }
    } else if (log) {
      child.stdout?.on('data', (d: Buffer) => {
        log.write('stdout', d);
        attach?.output(FRAME_STDOUT, d);
        forward(process.stdout, d);
      });
      child.stderr?.on('data', (d: Buffer) => {
        log.write(s.tty ? 'stdout' : 'stderr', d);
        attach?.output(s.tty ? FRAME_STDOUT : FRAME_STDERR, d);
        forward(process.stderr, d);
      });
      if (child.stdout && !child.stdout.readableEnded) outputDone.push(new Promise((r) => child.stdout!.once('close', () => r())));
      if (child.stdin && mode === 'detached') {
        const stdin = child.stdin;
        stdin.on('error', () => undefined);
        io.stdin = (d) => {
          if (!stdin.destroyed && !stdin.writableEnded) stdin.write(d);
        };
        io.closeStdin = () => stdin.end();
      }
    }
    const release = (show: boolean) => {
      const h = held;
      held = undefined;
      if (show) for (const [to, d] of h ?? []) to.write(d);
    };
    const exited = new Promise<number>((resolve) => {
      child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0)));
      child.on('error', () => resolve(125));
    }).finally(unproxy);
    const startedPid = await waitForPid(pidFile, exited);
    // From here the container's processes hold its network namespace (the kernel frees it, and its veths, with them).
    if (prepared.netFd !== undefined) fs.closeSync(prepared.netFd);
    let started = false;
    if (startedPid > 0) {
      started = true;
      this.containers.update(c.id, { state: 'running', pid: startedPid, startedAt: Date.now(), exitCode: 0, error: '', finishedAt: 0, oomKilled: false });
      this.event(c, 'start');
      release(true);
      onStarted?.();
    }
    const health = started ? this.startHealth(c) : undefined;
    let code = await exited;
    health?.stop();
    // The output still in the pipes (or the terminal) comes before the end; a daemon in the container that kept
    // a descriptor open is not waited for long.
    await Promise.race([Promise.all(outputDone), new Promise((r) => setTimeout(r, 2000).unref())]);
    term?.destroy();
    release(started);
    log?.close();
    let error = '';
    if (!started) {
      error = runtimeError(runtimeLog) ?? `the container exited with code ${code} before it started`;
      code = startFailureCode(error);
    }
    let oomKilled = false;
    if (keep) {
      oomKilled = (new ContainerCgroup(cgroupsPath(c.id)).oomKills() ?? 0) > 0;
      rt.delete(c.id);
    }
    this.snapshots.of(dir).unmount(dir);
    this.networks.detach(c.id);
    // `runc run` removes its own state when it exits; only a killed runtime leaves some (refresh cleans that).
    const now = this.containers.get(c.id);
    if (now) {
      const finishedAt = Date.now();
      // The policy decides on the record as it is now: `stop` or `kill` may have marked it, `update` changed it.
      restart?.setPolicy(now.spec.restartPolicy);
      const again = started && restart ? restart.shouldRestart(code, now.restartCount, now.manuallyStopped, finishedAt - now.startedAt) : undefined;
      this.containers.update(c.id, {
        state: again?.restart ? 'restarting' : started ? 'exited' : 'created',
        pid: 0,
        // A restarting container keeps its supervisor (this process, until a monitor takes over).
        monitorPid: again?.restart ? process.pid : 0,
        exitCode: code,
        error,
        finishedAt: started ? finishedAt : 0,
        ...(started ? { oomKilled } : {}),
        ...(again?.restart ? { restartCount: now.restartCount + 1 } : {}),
      });
      if (oomKilled) this.event(now, 'oom');
      if (started) this.event(now, 'die', { exitCode: String(code), execDuration: String(Math.floor((finishedAt - now.startedAt) / 1000)) });
      this.networkEvents(now, 'disconnect');
      this.volumeEvents(now, 'unmount');
    }
    if (!started) {
      const err = new StartError(`failed to start container ${c.id.slice(0, 12)}: ${error}`, code);
      onStarted?.(err);
      if (s.autoRemove && now) this.removeStopped(c, true);
      attach?.finish(code);
      throw err;
    }
    if (s.autoRemove && now) this.removeStopped(c, true);
    // Attached clients hear the end last: a `wait` for removal returns once the record is gone.
    attach?.finish(code);
    return code;
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
    if (c.state !== 'running' && c.state !== 'paused') return c;
    if (c.monitorPid > 0 && pidAlive(c.monitorPid)) return c;
    // `c` may have been read before the monitor recorded the exit and went away: only the current record says
    // whether the supervisor died without recording one (else a real exit code would become 255).
    const cur = this.containers.get(c.id);
    if (!cur || (cur.state !== 'running' && cur.state !== 'paused')) return cur ?? c;
    if (cur.monitorPid !== c.monitorPid && cur.monitorPid > 0 && pidAlive(cur.monitorPid)) return cur;
    c = cur;
    const st = this.runtime(c).state(c.id);
    if (st && (st.status === 'running' || st.status === 'paused')) return c;
    const dir = this.containers.pathOf(c.id);
    this.snapshots.of(dir).unmount(dir);
    this.runtime(c).delete(c.id);
    this.networks.detach(c.id);
    this.containers.update(c.id, { state: 'exited', pid: 0, monitorPid: 0, exitCode: c.exitCode || 255, finishedAt: Date.now() });
    return this.containers.get(c.id)!;
  }

  get(ref: string): Container {
    return this.refresh(this.containers.resolve(ref));
  }

  isRunning(c: Container): boolean {
    return c.state === 'running' || c.state === 'paused';
  }

  kill(c: Container, signal: string): void {
    const sig = parseSignal(signal);
    if (c.state === 'restarting') {
      // Nothing runs: telling the supervisor not to start it again is enough (dockerd's rule).
      if (sig === 9 || sig === parseSignal(c.spec.stopSignal)) this.containers.update(c.id, { manuallyStopped: true });
      this.event(c, 'kill', { signal: String(sig) });
      return;
    }
    if (!this.isRunning(c)) throw new ConflictError(`cannot kill container: ${c.name}: container ${c.id} is not running`);
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
    const s = c.spec;
    let warnings: string[] = [];
    let resources = s.resources;
    if (u.resources && Object.values(u.resources).some((v) => v !== undefined)) {
      const n = normalizeResources(u.resources, { update: true, current: s.resources ?? {} });
      warnings = n.warnings;
      resources = { ...(s.resources ?? {}) };
      for (const [k, v] of Object.entries(n.resources) as [keyof Resources, Resources[keyof Resources]][]) {
        if (v === undefined) continue;
        // docker's update: zero means "leave it", except PidsLimit where 0 (or -1) lifts the limit.
        if (k === 'PidsLimit') (resources as Record<string, unknown>)[k] = v ? v : undefined;
        else if (v !== 0 && v !== '') (resources as Record<string, unknown>)[k] = v;
      }
      if (resources.NanoCpus) {
        delete resources.CpuPeriod;
        delete resources.CpuQuota;
      }
      if (u.resources.Memory && !u.resources.MemorySwap && s.resources?.MemorySwap && s.resources.MemorySwap > 0 && s.resources.MemorySwap < u.resources.Memory) {
        resources.MemorySwap = u.resources.Memory;
      }
      if (this.isRunning(c)) {
        const spec = specResources(resources);
        // An unset limit in the update means "none": runc leaves a field it is not given as it is.
        if (u.resources.PidsLimit !== undefined && !resources.PidsLimit) spec.pids = { limit: -1 };
        this.runtime(c).update(c.id, spec);
      }
    }
    let restartPolicy = s.restartPolicy;
    if (u.restartPolicy) {
      const p = checkRestartPolicy(u.restartPolicy);
      if (s.autoRemove && !isNone(p)) throw new ConflictError('Restart policy cannot be updated because AutoRemove is enabled for the container');
      restartPolicy = isNone(p) ? undefined : p;
    }
    const spec: ContainerSpec = { ...s };
    if (resources && Object.keys(resources).length) spec.resources = resources;
    else delete spec.resources;
    if (restartPolicy) spec.restartPolicy = restartPolicy;
    else delete spec.restartPolicy;
    this.containers.update(c.id, { spec });
    this.event(c, 'update');
    return warnings;
  }

  /** The container's health check while it runs (none when it has no active check). */
  private startHealth(c: Container): HealthMonitor | undefined {
    const h = c.spec.healthcheck;
    const cmd = probeCommand(h);
    if (!h || !cmd) return undefined;
    const current = () => this.containers.get(c.id) ?? c;
    return new HealthMonitor(
      h,
      cmd,
      current().startedAt || Date.now(),
      {
        // Each probe is an exec, with docker's exec events (dockerd logs them for health checks too).
        probe: async (argv, timeoutMs) => {
          const cur = current();
          const execID = randomBytes(32).toString('hex');
          this.event(cur, `exec_create: ${argv.join(' ')}`, { execID });
          this.event(cur, `exec_start: ${argv.join(' ')}`, { execID });
          const r = await this.probe(cur, argv, timeoutMs);
          this.event(cur, 'exec_die', { execID, exitCode: String(r.timedOut ? -1 : r.exitCode) });
          return r;
        },
        save: (state) => this.containers.update(c.id, { health: state }),
        changed: (status) => this.event(current(), `health_status: ${status}`),
      },
      c.health,
    );
  }

  /**
   * A health probe: `cmd` exec'd in the container as its process runs (user, env, cwd), stdout and stderr
   * together (the first 8 KiB), killed when it outlasts `timeoutMs`.
   */
  async probe(c: Container, cmd: string[], timeoutMs: number): Promise<{ exitCode: number; output: string; timedOut: boolean }> {
    const dir = this.containers.pathOf(c.id);
    const bundle = JSON.parse(await fsp.readFile(path.join(dir, 'config.json'), 'utf8')) as RuntimeSpec;
    const proc = structuredClone(bundle.process!);
    proc.args = cmd;
    proc.terminal = false;
    const base = path.join(dir, `health-${randomBytes(6).toString('hex')}`);
    await fsp.writeFile(`${base}.json`, JSON.stringify(proc));
    try {
      const child = this.runtime(c).exec(c.id, `${base}.json`, ['ignore', 'pipe', 'pipe'], { tty: false, logFile: `${base}.log`, pidFile: `${base}.pid` });
      const chunks: Buffer[] = [];
      let size = 0;
      const take = (d: Buffer) => {
        if (size >= 8192) return;
        chunks.push(d);
        size += d.length;
      };
      child.stdout!.on('data', take);
      child.stderr!.on('data', take);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        // runc does not pass SIGKILL on: the probe's own process is killed.
        try {
          const pid = Number(fs.readFileSync(`${base}.pid`, 'utf8'));
          if (pid > 0) process.kill(pid, 'SIGKILL');
        } catch {
          // not started yet, or gone
        }
        child.kill('SIGKILL');
      }, timeoutMs);
      const exitCode = await new Promise<number>((resolve) => {
        child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0)));
        child.on('error', () => resolve(126));
      });
      clearTimeout(timer);
      return { exitCode, output: Buffer.concat(chunks).toString(), timedOut };
    } finally {
      for (const ext of ['json', 'log', 'pid']) await fsp.rm(`${base}.${ext}`, { force: true });
    }
  }

  /** Runs a command in a running container; returns its exit code. */
  async exec(
    c: Container,
    o: { cmd: string[]; tty?: boolean; interactive?: boolean; env?: string[]; user?: string; workdir?: string; detach?: boolean; privileged?: boolean; io?: ExecIO; execId?: string },
  ): Promise<number> {
    if (!this.isRunning(c)) throw new ConflictError(`container ${c.id} is not running`);
    if (c.state === 'paused') throw new ConflictError(`container ${c.id} is paused, unpause the container before exec`);
    if (o.cmd.length === 0) throw new InvalidArgumentError('exec requires at least 1 argument');
    const dir = this.containers.pathOf(c.id);
    const bundle = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as RuntimeSpec;
    const proc = structuredClone(bundle.process!);
    proc.args = o.cmd;
    proc.terminal = !!o.tty && !o.detach;
    // The client's terminal size from the first byte on (docker's ConsoleSize); resizes follow through the pty.
    delete proc.consoleSize;
    const size = proc.terminal ? o.io?.consoleSize : undefined;
    if (size && size[0] > 0 && size[1] > 0) proc.consoleSize = { height: size[0], width: size[1] };
    if (o.workdir) proc.cwd = o.workdir;
    if (o.user) {
      let u: ReturnType<typeof resolveUser>;
      try {
        u = resolveUser(path.join(dir, 'merged'), o.user);
      } catch (e) {
        // docker: the exec could not start (126).
        throw e instanceof PlyError ? new StartError(e.message, 126) : e;
      }
      proc.user = { uid: u.uid, gid: u.gid, additionalGids: u.additionalGids };
    }
    const { mergeEnv } = await import('./create.js');
    proc.env = mergeEnv(proc.env ?? [], o.env ?? []);
    const processFile = path.join(dir, `exec-${randomBytes(6).toString('hex')}.json`);
    await fsp.writeFile(processFile, JSON.stringify(proc));
    const logFile = `${processFile}.log`;
    const pidFile = `${processFile}.pid`;
    try {
      const io = o.detach ? undefined : o.io;
      // -it on ply's own terminal: runc drives it. Any other TTY exec (over streams, in a pipe, -t without -i)
      // gets a pseudo-terminal of ours as runc's stdio (runc proxies it to the process's own), as docker's.
      const ttyDirect = !!o.tty && !o.detach && !io && !!o.interactive && !!process.stdin.isTTY;
      const size: [number, number] | undefined = io ? io.consoleSize : process.stdout.isTTY ? [process.stdout.rows, process.stdout.columns] : undefined;
      const pty = o.tty && !o.detach && !ttyDirect ? openpty(size?.[0] ?? 24, size?.[1] ?? 80) : undefined;
      // Raw from the start: the process's own terminal already turned \n into \r\n once.
      const term = pty ? new tty.ReadStream(pty.master) : undefined;
      term?.setRawMode(true);
      let stdio: StdioOptions;
      if (o.detach) stdio = ['ignore', 'ignore', 'ignore'];
      else if (ttyDirect) stdio = ['inherit', 'inherit', 'inherit'];
      else if (pty) stdio = [pty.slave, pty.slave, pty.slave];
      else if (io) stdio = [io.stdin && o.interactive ? 'pipe' : 'ignore', 'pipe', 'pipe'];
      // stderr through ply: the runtime's own complaint is reported once, in ply's words (docker's).
      else stdio = [o.interactive ? 'inherit' : 'ignore', 'inherit', 'pipe'];
      const sig = runtimeSignals(!o.detach && stdio[0] === 'inherit' && !!process.stdin.isTTY);
      const child = this.runtime(c).exec(c.id, processFile, stdio, { tty: !!o.tty, logFile, pidFile, detach: o.detach, ownSession: (!o.detach && !io && sig.ownSession) || !!pty });
      if (o.execId) this.event(c, `exec_start: ${o.cmd.join(' ')}`, { execID: o.execId });
      const unproxy = o.detach || io ? () => undefined : proxySignals(child, sig.proxy);
      const exited = new Promise<number>((resolve) => {
        child.on('exit', (code, signal) => resolve(code ?? 128 + (signal ? os.constants.signals[signal] : 0)));
        child.on('error', () => resolve(126));
      }).finally(unproxy);
      // Output waits until the process runs: before that it can only be the runtime's error.
      let held: [Writable, Buffer][] | undefined = [];
      const forward = (to: Writable, d: Buffer) => (held ? held.push([to, d]) : to.write(d));
      const release = () => {
        const h = held ?? [];
        held = undefined;
        for (const [to, d] of h) to.write(d);
      };
      const copied: Promise<void>[] = [];
      if (pty && term) {
        fs.closeSync(pty.slave);
        term.on('data', (d: Buffer) => forward(io?.stdout ?? process.stdout, d));
        copied.push(new Promise((r) => {
          term.once('close', () => r());
          term.once('error', () => r());
        }));
        if (io?.stdin && o.interactive) {
          io.stdin.on('data', (d: Buffer) => {
            if (!term.destroyed) term.write(d);
          });
        }
        const resize = (rows: number, cols: number) => {
          if (term.destroyed) return;
          try {
            ptyResize(pty.master, rows, cols);
            child.kill('SIGWINCH');
          } catch {
            // the terminal is gone
          }
        };
        if (io) io.onResize?.(resize);
        else if (process.stdout.isTTY) {
          const onWinch = () => resize(process.stdout.rows, process.stdout.columns);
          process.stdout.on('resize', onWinch);
          void exitedOnce(child).then(() => process.stdout.off('resize', onWinch));
        }
        // The stream owns the master; a process left holding the terminal is not waited for long.
        void exitedOnce(child).then(() => setTimeout(() => term.destroy(), 2000).unref());
      } else {
        if (io?.stdin && child.stdin) io.stdin.pipe(child.stdin).on('error', () => undefined);
        for (const [from, to] of [[child.stdout, io?.stdout ?? process.stdout], [child.stderr, io?.stderr ?? process.stderr]] as const) {
          if (!from) continue;
          from.on('data', (d: Buffer) => forward(to, d));
          copied.push(new Promise((r) => from.once('close', () => r())));
        }
      }
      const started = o.detach ? (await exited) === 0 : (await waitForPid(pidFile, exited)) > 0;
      if (started) release();
      const code = await exited;
      await Promise.all(copied);
      if (o.execId && !o.detach) this.event(c, 'exec_die', { execID: o.execId, exitCode: String(code) });
      const err = runtimeError(logFile);
      const failed = err !== undefined && code !== 0 && !started;
      if (failed) held = undefined;
      else release();
      // docker's exec: a command that cannot be started exits 126, whatever the reason.
      if (failed) throw new StartError(`OCI runtime exec failed: ${err}`, 126);
      return code;
    } finally {
      await fsp.rm(processFile, { force: true });
      await fsp.rm(logFile, { force: true });
      await fsp.rm(pidFile, { force: true });
    }
  }
}

function exitedOnce(child: import('node:child_process').ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once('exit', () => r());
  });
}

function readOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

/** Waits for the runtime's pid file (the process started) or for the runtime to exit first (it failed). */
async function waitForPid(pidFile: string, exited: Promise<number>): Promise<number> {
  let done = false;
  void exited.then(() => (done = true));
  for (let delay = 2; ; delay = Math.min(delay * 2, 10)) {
    try {
      const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
      if (pid > 0) return pid;
    } catch {
      // not yet
    }
    if (done) {
      try {
        const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
        return pid > 0 ? pid : 0;
      } catch {
        return 0;
      }
    }
    // Woken early when the runtime exits (a short-lived container must not wait out the poll interval).
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise((r) => (timer = setTimeout(r, delay))), exited]);
    clearTimeout(timer);
  }
}

/** A new volume starts with the image's content at its mount point, as docker's do. */
async function copyUp(from: string, to: string): Promise<void> {
  if (!fs.existsSync(from) || !fs.statSync(from).isDirectory()) return;
  await new Promise<void>((resolve, reject) => {
    const cp = spawn('cp', ['-a', `${from}/.`, `${to}/`], { stdio: 'ignore' });
    cp.on('exit', (code) => (code === 0 ? resolve() : reject(new PlyError(`cannot copy image content into volume at ${to}`))));
    cp.on('error', reject);
  });
}
