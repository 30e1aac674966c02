// `POST /containers/create`'s body (docker's Config, HostConfig and NetworkingConfig) as the engine's create
// options: the same options `ply run` gives it, so both faces make the same container. A field ply does not
// implement is refused when it asks for something (a non-default value), never silently dropped; fields docker's
// clients always send with their zero values pass. Bodies come decoded (bodies.ts): keys that are no docker field
// (dockerode's `name`, `authconfig`; its commit's `repo`, `tag`) are gone already, as dockerd's decoder drops them.
import type { ContainerConfig, CreateOptions, HealthConfig, MountFields, Resources, RestartPolicy } from '../engine.js';
import { badRequest } from './http.js';

type Json = Record<string, unknown>;

/** Fields with no effect in ply whatever they hold (client-side, informational, or Windows-only). */
const IGNORED = new Set([
  'AttachStdin', 'AttachStdout', 'AttachStderr', 'ArgsEscaped', 'ContainerIDFile', 'Isolation', 'Shell', 'OnBuild',
  // Set on inspect output that some clients send back as they got it.
  'Image', 'HostConfig', 'NetworkingConfig',
]);

/** Zero values docker's clients send for fields they do not use. */
function isDefault(v: unknown): boolean {
  if (v === null || v === undefined || v === '' || v === false || v === 0) return true;
  if (Array.isArray(v)) return v.length === 0 || v.every(isDefault);
  if (typeof v === 'object') return Object.values(v as Json).every(isDefault);
  return false;
}

const str = (v: unknown, field: string): string | undefined => {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw badRequest(`invalid ${field}: expected a string`);
  return v;
};
const strList = (v: unknown, field: string): string[] | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw badRequest(`invalid ${field}: expected a list of strings`);
  return v as string[];
};
const bool = (v: unknown): boolean | undefined => (v === undefined || v === null ? undefined : Boolean(v));

/** The create options for a request body; `name` is the query's. */
export function createOptions(body: Json, name: string | undefined): CreateOptions {
  const handled = new Set<string>();
  const take = (o: Json, k: string): unknown => {
    handled.add(k);
    return o[k];
  };
  const image = str(take(body, 'Image'), 'Image');
  if (!image) throw badRequest('config cannot be empty in order to create a container');
  const host = (body.HostConfig ?? {}) as Json;
  const netCfg = ((body.NetworkingConfig as Json | undefined)?.EndpointsConfig ?? {}) as Record<string, Json | null>;
  if (typeof host !== 'object' || Array.isArray(host)) throw badRequest('invalid HostConfig');

  const o: CreateOptions = { image };
  if (name) o.name = name;
  o.hostname = str(take(body, 'Hostname'), 'Hostname');
  o.user = str(take(body, 'User'), 'User');
  o.tty = bool(take(body, 'Tty'));
  o.interactive = bool(take(body, 'OpenStdin'));
  o.stdinOnce = bool(take(body, 'StdinOnce'));
  // A bare KEY (no '=') is resolved by docker's clients from their own environment; the daemon has none to give.
  o.env = strList(take(body, 'Env'), 'Env')?.filter((e) => e.includes('='));
  const cmd = strList(take(body, 'Cmd'), 'Cmd');
  if (cmd && cmd.length) o.command = cmd;
  const ep = strList(take(body, 'Entrypoint'), 'Entrypoint');
  if (ep && ep.length) o.entrypoint = ep;
  o.workdir = str(take(body, 'WorkingDir'), 'WorkingDir');
  const labels = take(body, 'Labels') as Record<string, string> | null | undefined;
  if (labels) o.labels = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  o.stopSignal = str(take(body, 'StopSignal'), 'StopSignal');
  const stopTimeout = take(body, 'StopTimeout');
  if (typeof stopTimeout === 'number') o.stopTimeout = stopTimeout;
  const exposed = take(body, 'ExposedPorts') as Json | null | undefined;
  if (exposed) o.expose = Object.keys(exposed);
  // docker's CLI puts `-v /path` (an anonymous volume) here, not in Binds.
  const volumes = take(body, 'Volumes') as Json | null | undefined;
  const anonymous = volumes ? Object.keys(volumes) : [];
  if (take(body, 'NetworkDisabled')) o.network = 'none';
  const mac = str(take(body, 'MacAddress'), 'MacAddress');
  const health = take(body, 'Healthcheck') as HealthConfig | null | undefined;
  if (health && !isDefault(health)) {
    if (health.Test?.[0] === 'NONE') o.noHealthcheck = true;
    else o.healthcheck = healthFields(health);
  }
  const domain = str(take(body, 'Domainname'), 'Domainname');
  if (domain) refuse('Domainname', domain);
  checkRest(body, handled, 'Config');

  // HostConfig
  const h = new Set<string>();
  const hk = (k: string): unknown => {
    h.add(k);
    return host[k];
  };
  const binds = strList(hk('Binds'), 'Binds') ?? [];
  for (const b of binds) {
    const src = b.split(':')[0] ?? '';
    if (!src.startsWith('/') && /^[./]/.test(src)) throw badRequest(`invalid mount config: bind source path must be absolute: ${src}`);
  }
  const mounts = (hk('Mounts') as Json[] | null | undefined) ?? [];
  o.mounts = mounts.map(mountFields);
  const tmpfs = hk('Tmpfs') as Record<string, string> | null | undefined;
  if (tmpfs) o.tmpfs = Object.entries(tmpfs).map(([p, opts]) => (opts ? `${p}:${opts}` : p));
  // Config.Volumes declares mount points (as an image's VOLUME does): those no bind, mount or tmpfs covers get
  // an anonymous volume (compose declares its named volumes' targets here too).
  const norm = (p: string) => p.replace(/\/+$/, '') || '/';
  const covered = new Set([
    ...binds.map((b) => norm(b.split(':')[1] ?? '')),
    ...mounts.map((m) => norm(String(m.Target ?? ''))),
    ...Object.keys(tmpfs ?? {}).map(norm),
  ]);
  o.volumes = [...binds, ...anonymous.filter((v) => !covered.has(norm(v)))];
  const mode = str(hk('NetworkMode'), 'NetworkMode');
  if (mode && mode !== 'default') o.network = mode;
  const bindings = (hk('PortBindings') as Record<string, { HostIp?: string; HostPort?: string }[] | null> | null | undefined) ?? {};
  o.publish = Object.entries(bindings).flatMap(([port, list]) => (list && list.length ? list : [{}]).map((b) => publishSpec(port, b)));
  o.publishAll = bool(hk('PublishAllPorts'));
  o.dns = strList(hk('Dns'), 'Dns');
  o.dnsOptions = strList(hk('DnsOptions'), 'DnsOptions');
  o.dnsSearch = strList(hk('DnsSearch'), 'DnsSearch');
  o.addHosts = strList(hk('ExtraHosts'), 'ExtraHosts');
  o.autoRemove = bool(hk('AutoRemove'));
  o.privileged = bool(hk('Privileged'));
  o.readOnly = bool(hk('ReadonlyRootfs'));
  o.capAdd = strList(hk('CapAdd'), 'CapAdd');
  o.capDrop = strList(hk('CapDrop'), 'CapDrop');
  // no-new-privileges is the one security option ply applies (no seccomp, AppArmor or SELinux): others are refused.
  const securityOpt = strList(hk('SecurityOpt'), 'SecurityOpt');
  if (securityOpt?.some((s) => !/^no-new-privileges($|[=:])/.test(s))) refuse('SecurityOpt', securityOpt);
  if (securityOpt?.length) o.securityOpt = securityOpt;
  o.init = bool(hk('Init'));
  const runtime = str(hk('Runtime'), 'Runtime');
  if (runtime) o.runtime = runtime;
  const console = hk('ConsoleSize') as number[] | null | undefined;
  if (Array.isArray(console) && console.length === 2 && console[0]! > 0 && console[1]! > 0) o.consoleSize = [console[0]!, console[1]!];
  const restart = hk('RestartPolicy') as { Name?: string; MaximumRetryCount?: number } | null | undefined;
  if (restart?.Name) o.restartPolicy = restartPolicy(restart);
  o.resources = resources(host, h);
  const ulimits = hk('Ulimits') as { Name?: string; Soft?: number; Hard?: number }[] | null | undefined;
  if (ulimits?.length) o.ulimits = ulimits.map((u) => ({ name: String(u.Name ?? ''), soft: Number(u.Soft ?? 0), hard: Number(u.Hard ?? 0) }));
  const shm = hk('ShmSize');
  if (typeof shm === 'number' && shm > 0) o.shmSize = shm;
  const log = hk('LogConfig') as { Type?: string; Config?: Json } | null | undefined;
  if (log && ((log.Type && log.Type !== 'json-file') || !isDefault(log.Config))) throw unsupported(`LogConfig ${log.Type || 'json-file'} with options`);
  const volumeDriver = str(hk('VolumeDriver'), 'VolumeDriver');
  if (volumeDriver && volumeDriver !== 'local') throw unsupported(`VolumeDriver ${volumeDriver}`);
  for (const [k, ok] of Object.entries(ACCEPTED_VALUES)) {
    const v = hk(k);
    if (!isDefault(v) && !ok.includes(v as string | number)) throw unsupported(`${k} ${JSON.stringify(v)}`);
  }
  h.add('ContainerIDFile');
  checkRest(host, h, 'HostConfig');

  // NetworkingConfig: the mode's own network's aliases, address and MAC (docker < 1.44 takes one network here).
  const nets = Object.entries(netCfg).filter(([, v]) => v && !isDefault(v));
  const modeNet = o.network ?? 'bridge';
  for (const [net, ep] of nets) {
    if (net !== modeNet && !(modeNet === 'bridge' && net === 'default')) {
      if (Object.keys(netCfg).length > 1 || mode) throw badRequest('Container cannot be connected to network endpoints: only the network mode\'s network can be configured at create (connect it to more networks after)');
    }
    const e = ep as Json;
    const aliases = strList(e.Aliases, 'Aliases');
    if (aliases?.length) o.networkAliases = aliases;
    const ipam = (e.IPAMConfig ?? {}) as Json;
    const ip = str(ipam.IPv4Address, 'IPv4Address');
    if (ip) o.ip = ip;
    if (str(ipam.IPv6Address, 'IPv6Address')) throw unsupported('IPv6Address');
    const epMac = str(e.MacAddress, 'MacAddress');
    if (epMac) o.macAddress = epMac;
    if (!isDefault(e.Links)) throw unsupported('Links');
    if (!isDefault(e.DriverOpts)) throw unsupported('DriverOpts');
    // An endpoint on another network than the mode's, named by the mode: take the mode from it.
    if (!mode && net !== 'bridge' && net !== 'default') o.network = net;
  }
  if (mac && !o.macAddress) o.macAddress = mac;
  // Aliases on the default bridge are not docker's either; compose sends the service name on its own network only.
  return o;
}

/**
 * `POST /commit`'s body: docker's Config, whose fields override the committed container's. The fields an image
 * config keeps are taken; another docker field that asks for something is refused; other keys are ignored.
 */
export function commitConfig(body: unknown): ContainerConfig | undefined {
  if (body === undefined || body === null) return undefined;
  if (typeof body !== 'object' || Array.isArray(body)) throw badRequest('invalid commit body: expected a Config object');
  const b = body as Json;
  const out: ContainerConfig = {};
  const handled = new Set(['User', 'Env', 'Cmd', 'Entrypoint', 'WorkingDir', 'Labels', 'ExposedPorts', 'Volumes', 'StopSignal', 'Healthcheck']);
  const user = str(b.User, 'User');
  if (user) out.User = user;
  const env = strList(b.Env, 'Env');
  if (env?.length) out.Env = env;
  const cmd = strList(b.Cmd, 'Cmd');
  if (cmd?.length) out.Cmd = cmd;
  const ep = strList(b.Entrypoint, 'Entrypoint');
  if (ep) out.Entrypoint = ep;
  const wd = str(b.WorkingDir, 'WorkingDir');
  if (wd) out.WorkingDir = wd;
  const signal = str(b.StopSignal, 'StopSignal');
  if (signal) out.StopSignal = signal;
  for (const k of ['Labels', 'ExposedPorts', 'Volumes'] as const) {
    const v = b[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'object' || Array.isArray(v)) throw badRequest(`invalid ${k}: expected an object`);
    if (k === 'Labels') out.Labels = Object.fromEntries(Object.entries(v as Json).map(([l, x]) => [l, String(x)]));
    else out[k] = Object.fromEntries(Object.keys(v as Json).map((p) => [p, {}]));
  }
  const health = b.Healthcheck as HealthConfig | null | undefined;
  if (health && !isDefault(health)) out.Healthcheck = healthFields(health);
  checkRest(b, handled, 'Config');
  return out;
}

/**
 * HostConfig fields ply has no implementation of, with the values it accepts (docker's defaults, which
 * docker's clients send); any other value is refused.
 */
const ACCEPTED_VALUES: Record<string, (string | number)[]> = {
  // Resources ply does not apply: zero means unlimited.
  CgroupParent: [], BlkioWeight: [], BlkioWeightDevice: [], BlkioDeviceReadBps: [],
  BlkioDeviceWriteBps: [], BlkioDeviceReadIOps: [], BlkioDeviceWriteIOps: [],
  CpuRealtimePeriod: [], CpuRealtimeRuntime: [], Devices: [], DeviceCgroupRules: [],
  DeviceRequests: [], CpuCount: [], CpuPercent: [], IOMaximumIOps: [], IOMaximumBandwidth: [], KernelMemory: [],
  KernelMemoryTCP: [],
  // Namespaces and security.
  VolumesFrom: [], Annotations: [], CgroupnsMode: ['private'], GroupAdd: [], IpcMode: ['private', 'shareable'], Cgroup: [],
  Links: [], OomScoreAdj: [], PidMode: [], StorageOpt: [], UTSMode: [], UsernsMode: ['private'],
  Sysctls: [], MaskedPaths: [], ReadonlyPaths: [], Capabilities: [],
};

/** The resource fields of a HostConfig (create) or an update body, as docker names them; `seen` collects the keys. */
export function resources(body: Json, seen?: Set<string>): Resources {
  const out: Resources = {};
  const num = (k: string): number | undefined => {
    seen?.add(k);
    const v = body[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw badRequest(`invalid ${k}: expected a number`);
    return v;
  };
  const text = (k: string): string | undefined => {
    seen?.add(k);
    return str(body[k], k);
  };
  const set = <K extends keyof Resources>(k: K, v: Resources[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  // Zero (and swappiness -1) are docker's "not set".
  for (const k of ['Memory', 'MemorySwap', 'MemoryReservation', 'NanoCpus', 'CpuShares', 'CpuPeriod', 'CpuQuota'] as const) {
    const v = num(k);
    if (v) set(k, v);
  }
  const swappiness = num('MemorySwappiness');
  if (swappiness !== undefined && swappiness !== -1) out.MemorySwappiness = swappiness;
  set('CpusetCpus', text('CpusetCpus'));
  set('CpusetMems', text('CpusetMems'));
  const pids = num('PidsLimit');
  if (pids !== undefined && pids !== 0) out.PidsLimit = pids;
  seen?.add('OomKillDisable');
  if (body.OomKillDisable) out.OomKillDisable = true;
  return out;
}

/** docker's RestartPolicy object, checked as the CLI's flag is. */
export function restartPolicy(p: { Name?: string; MaximumRetryCount?: number }): RestartPolicy {
  const names = ['', 'no', 'always', 'unless-stopped', 'on-failure'];
  if (!names.includes(p.Name ?? '')) throw badRequest(`invalid restart policy '${p.Name}'`);
  return { Name: (p.Name ?? '') as RestartPolicy['Name'], MaximumRetryCount: Number(p.MaximumRetryCount ?? 0) };
}

/** Config.Healthcheck: its fields as docker sends them (durations in nanoseconds). */
function healthFields(h: HealthConfig): HealthConfig {
  const out: HealthConfig = {};
  if (h.Test !== undefined && h.Test !== null) {
    if (!Array.isArray(h.Test) || !h.Test.every((x) => typeof x === 'string')) throw badRequest('invalid Healthcheck.Test: expected a list of strings');
    out.Test = h.Test;
  }
  for (const k of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval', 'Retries'] as const) {
    const v = h[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number') throw badRequest(`invalid Healthcheck.${k}: expected a number`);
    if (v) out[k] = v;
  }
  return out;
}

function refuse(field: string, value: unknown): never {
  throw unsupported(`${field} ${JSON.stringify(value)}`);
}

function unsupported(what: string) {
  return badRequest(`ply does not support ${what} yet`);
}

/** Fields left over that ask for something are docker fields ply does not know: refused. */
function checkRest(obj: Json, handled: Set<string>, where: string): void {
  for (const [k, v] of Object.entries(obj)) {
    if (handled.has(k) || IGNORED.has(k) || isDefault(v)) continue;
    throw unsupported(`${where}.${k}`);
  }
}

/** A PortBindings entry as `-p` writes it. */
function publishSpec(port: string, b: { HostIp?: string; HostPort?: string }): string {
  const ip = b.HostIp ?? '';
  const hostPort = b.HostPort ?? '';
  if (ip.includes(':')) throw unsupported(`an IPv6 HostIp (${ip})`);
  if (ip) return `${ip}:${hostPort}:${port}`;
  return hostPort ? `${hostPort}:${port}` : port;
}

/** A HostConfig.Mounts entry as the fields of `--mount`. */
function mountFields(m: Json): MountFields {
  const f: MountFields = {};
  const known = new Set(['Type', 'Source', 'Target', 'ReadOnly', 'Consistency', 'BindOptions', 'VolumeOptions', 'TmpfsOptions']);
  // Known docker fields ply does not apply (ClusterOptions): refused when set.
  for (const [k, v] of Object.entries(m)) if (!known.has(k) && !isDefault(v)) throw unsupported(`Mounts.${k}`);
  if (m.Type) f.type = String(m.Type);
  if (m.Source) f.source = String(m.Source);
  if (m.Target) f.target = String(m.Target);
  if (m.ReadOnly) f.readonly = 'true';
  const bind = (m.BindOptions ?? {}) as Json;
  if (bind.Propagation) f['bind-propagation'] = String(bind.Propagation);
  for (const [k, v] of Object.entries(bind)) if (k !== 'Propagation' && !isDefault(v)) throw unsupported(`Mounts.BindOptions.${k}`);
  const vol = (m.VolumeOptions ?? {}) as Json;
  if (vol.NoCopy) f['volume-nocopy'] = 'true';
  const driver = (vol.DriverConfig ?? {}) as Json;
  if (driver.Name) f['volume-driver'] = String(driver.Name);
  const opts = (driver.Options ?? {}) as Json;
  if (Object.keys(opts).length) f['volume-opt'] = Object.entries(opts).map(([k, v]) => `${k}=${String(v)}`);
  for (const [k, v] of Object.entries(driver)) if (k !== 'Name' && k !== 'Options' && !isDefault(v)) throw unsupported(`Mounts.VolumeOptions.DriverConfig.${k}`);
  for (const [k, v] of Object.entries(vol)) if (k !== 'NoCopy' && k !== 'DriverConfig' && !isDefault(v)) throw unsupported(`Mounts.VolumeOptions.${k}`);
  const tmp = (m.TmpfsOptions ?? {}) as Json;
  if (tmp.SizeBytes) f['tmpfs-size'] = String(tmp.SizeBytes);
  if (tmp.Mode) f['tmpfs-mode'] = (tmp.Mode as number).toString(8);
  for (const [k, v] of Object.entries(tmp)) if (k !== 'SizeBytes' && k !== 'Mode' && !isDefault(v)) throw unsupported(`Mounts.TmpfsOptions.${k}`);
  return f;
}
