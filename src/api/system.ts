// System routes: /_ping, /version, /info, /system/df, /auth (and /events once the engine has an event log).
import os from 'node:os';
import type { Engine } from '../engine.js';
import { serverVersion } from '../engine.js';
import type { Request } from './http.js';
import { byImageId } from './images.js';
import { route, type Route } from './router.js';

export function systemRoutes(): Route[] {
  return [
    route('GET', '/_ping', ping),
    route('HEAD', '/_ping', ping),
    route('GET', '/version', version),
    route('GET', '/info', info),
    route('GET', '/system/df', diskUsage),
    route('GET', '/events', events),
  ];
}

async function ping(r: Request): Promise<void> {
  // The docker CLI negotiates its API version from these headers (HEAD first, GET if that fails).
  const headers = { 'Cache-Control': 'no-cache, no-store, must-revalidate', Pragma: 'no-cache', 'Builder-Version': '1', Swarm: 'inactive' };
  if (r.method === 'HEAD') {
    r.raw(200, { ...headers, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': 0 });
    return;
  }
  r.raw(200, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }, 'OK');
}

async function version(r: Request, engine: Engine): Promise<void> {
  r.json200(serverVersion(engine.system.runtimeVersion()));
}

async function info(r: Request, engine: Engine): Promise<void> {
  const i = engine.system.info();
  r.json200({
    ID: engine.system.id(),
    Containers: i.Containers,
    ContainersRunning: i.ContainersRunning,
    ContainersPaused: i.ContainersPaused,
    ContainersStopped: i.ContainersStopped,
    Images: i.Images,
    Driver: i.Driver,
    DriverStatus: [],
    Plugins: { Volume: ['local'], Network: ['bridge', 'host', 'null'], Authorization: null, Log: ['json-file'] },
    MemoryLimit: false,
    SwapLimit: false,
    KernelMemoryTCP: false,
    CpuCfsPeriod: false,
    CpuCfsQuota: false,
    CPUShares: false,
    CPUSet: false,
    PidsLimit: false,
    IPv4Forwarding: true,
    Debug: false,
    NFd: 0,
    OomKillDisable: false,
    NGoroutines: 0,
    SystemTime: new Date().toISOString(),
    LoggingDriver: 'json-file',
    CgroupDriver: 'cgroupfs',
    CgroupVersion: '1',
    NEventsListener: 0,
    KernelVersion: i.KernelVersion,
    OperatingSystem: i.OperatingSystem,
    OSVersion: '',
    OSType: i.OSType,
    Architecture: os.machine(),
    IndexServerAddress: 'https://index.docker.io/v1/',
    RegistryConfig: { InsecureRegistryCIDRs: ['127.0.0.0/8'], IndexConfigs: { 'docker.io': { Name: 'docker.io', Mirrors: [], Secure: true, Official: true } }, Mirrors: [] },
    NCPU: i.NCPU,
    MemTotal: i.MemTotal,
    GenericResources: null,
    DockerRootDir: i.DockerRootDir,
    HttpProxy: process.env.HTTP_PROXY ?? process.env.http_proxy ?? '',
    HttpsProxy: process.env.HTTPS_PROXY ?? process.env.https_proxy ?? '',
    NoProxy: process.env.NO_PROXY ?? process.env.no_proxy ?? '',
    Name: i.Name,
    Labels: [],
    ExperimentalBuild: false,
    ServerVersion: i.ServerVersion,
    Runtimes: { runc: { path: 'runc' }, crun: { path: 'crun' } },
    DefaultRuntime: i.DefaultRuntime,
    Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
    LiveRestoreEnabled: false,
    Isolation: '',
    InitBinary: 'docker-init',
    ContainerdCommit: { ID: '' },
    RuncCommit: { ID: engine.system.runtimeVersion()?.commit ?? '' },
    InitCommit: { ID: '' },
    // ply runs containers without a seccomp profile, AppArmor or SELinux labels.
    SecurityOptions: [],
    Warnings: null,
  });
}

/** docker system df's lists: images (with how many containers use each), containers with their sizes, volumes with theirs. */
async function diskUsage(r: Request, engine: Engine): Promise<void> {
  const types = r.query.getAll('type');
  const want = (t: string) => types.length === 0 || types.includes(t);
  const du = engine.system.diskUsage();
  const containers = want('container') || want('image') ? engine.containers.list({ all: true, size: want('container') }) : [];
  const uses = new Map<string, number>();
  for (const c of containers) uses.set(c.ImageID, (uses.get(c.ImageID) ?? 0) + 1);
  r.json200({
    LayersSize: du.images.size,
    Images: want('image') ? byImageId(engine.images.list({ all: true })).map((i) => ({ ...i, Labels: i.Labels ?? {}, Descriptor: undefined, SharedSize: 0, Containers: uses.get(i.Id) ?? 0 })) : null,
    Containers: want('container') ? containers.map((c) => ({ ...c, SizeRootFs: c.SizeRw ?? 0 })) : null,
    Volumes: want('volume') ? engine.volumes.list({ usage: true }).Volumes : null,
    BuildCache: want('build-cache') ? [] : null,
  });
}

/** docker events: the engine's event log (every ply process's), as JSON objects, live until `until` or the client leaves. */
async function events(r: Request, engine: Engine): Promise<void> {
  const signal = r.closedSignal();
  // Bad times or filters are refused here, as JSON errors, before the stream starts.
  const it = engine.system.events({ since: r.q('since') || undefined, until: r.q('until') || undefined, filters: r.filters(), signal });
  const out = r.stream(200, 'application/json');
  for await (const ev of it) {
    if (signal.aborted) break;
    if (!out.write(`${JSON.stringify(ev)}\n`)) await new Promise((res) => out.once('drain', res).once('close', res));
  }
  out.end();
}
