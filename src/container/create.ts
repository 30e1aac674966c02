// Turning `run`/`create` options and an image config into a ContainerSpec, as docker's CLI and daemon do.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError, NotFoundError, PlyError, UsageError } from '../errors.js';
import type { ImageConfig } from '../oci/types.js';
import { parseSignal } from '../runtime/signals.js';
import { mergeEnv as mergeSpecEnv, type MountSpec } from '../runtime/spec.js';
import type { ContainerSpec, Ulimit } from './store.js';
import type { EndpointConfig } from '../network/index.js';
import { parseIp } from '../network/ipv4.js';
import { parsePublish } from '../network/ports.js';
import { normalizeResources, type Resources } from '../runtime/cgroups.js';
import { checkRestartPolicy, isNone, type RestartPolicy } from '../supervisor/restart.js';
import { checkHealthcheck, mergeHealthcheck, type HealthConfig } from '../supervisor/health.js';

export interface CreateOptions {
  image: string;
  command?: string[];
  name?: string;
  env?: string[];
  envFiles?: string[];
  workdir?: string;
  user?: string;
  /** --entrypoint (one word; '' resets it), or the API's list. */
  entrypoint?: string | string[];
  hostname?: string;
  volumes?: string[];
  /** --mount values, or their fields as the API gives them (type, source, target, readonly, tmpfs-size, …). */
  mounts?: (string | MountFields)[];
  tmpfs?: string[];
  readOnly?: boolean;
  network?: string;
  /** --network-alias, --ip, --mac-address (on the mode's network). */
  networkAliases?: string[];
  ip?: string;
  macAddress?: string;
  /** -p specs and -P */
  publish?: string[];
  publishAll?: boolean;
  /** --expose: ports the container listens on, PORT[/PROTO] or a range. */
  expose?: string[];
  dns?: string[];
  dnsSearch?: string[];
  dnsOptions?: string[];
  addHosts?: string[];
  /** Warnings for the user (docker's CLI prints them), filled by buildContainerSpec. */
  warnings?: string[];
  privileged?: boolean;
  capAdd?: string[];
  capDrop?: string[];
  /** docker's --security-opt; ply applies no-new-privileges[=BOOL] (it has no seccomp, AppArmor or SELinux). */
  securityOpt?: string[];
  init?: boolean;
  stopSignal?: string;
  stopTimeout?: number;
  tty?: boolean;
  interactive?: boolean;
  /** Close stdin when the first attached client closes its input (docker's StdinOnce, set by `run -i`). */
  stdinOnce?: boolean;
  /** The terminal's initial [rows, cols]. */
  consoleSize?: [number, number];
  autoRemove?: boolean;
  labels?: string[];
  runtime?: string;
  pull?: 'missing' | 'always' | 'never';
  /** Mounts already parsed (the builder's RUN --mount), after -v/--mount/--tmpfs. */
  specMounts?: MountSpec[];
  /** --ulimit, parsed (parseUlimit). */
  ulimits?: Ulimit[];
  /** docker's HostConfig resource fields (-m, --memory-swap, --cpus, --cpu-shares, --cpuset-cpus, --pids-limit, ...). */
  resources?: Resources;
  /** --shm-size, bytes. */
  shmSize?: number;
  /** --restart. */
  restartPolicy?: RestartPolicy;
  /** --health-* (over the image's HEALTHCHECK); `noHealthcheck` disables it. */
  healthcheck?: HealthConfig;
  noHealthcheck?: boolean;
}

export class NoCommandError extends PlyError {}

/** KEY=VALUE lines of an --env-file: comments and blank lines skipped, bare KEY taken from the host env. */
export function readEnvFile(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`open ${file}: no such file or directory`);
  }
  const out: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/^\s+/, '');
    if (line === '' || line.startsWith('#')) continue;
    out.push(line);
  }
  return out;
}

/**
 * Merges KEY=VALUE lists, later ones winning (the runtime's merge rule); a bare KEY on the command line takes
 * the host's value, or is dropped when the host has none, as the docker CLI does.
 */
export function mergeEnv(base: string[], ...lists: string[][]): string[] {
  const overrides: string[] = [];
  for (const item of lists.flat()) {
    const i = item.indexOf('=');
    if (i === 0) throw new UsageError(`invalid environment variable: ${item}`);
    if (i > 0) overrides.push(item);
    else if (process.env[item] !== undefined) overrides.push(`${item}=${process.env[item]}`);
  }
  return mergeSpecEnv(base, overrides);
}

const VOLUME_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

function checkTarget(target: string, spec: string): string {
  if (!target.startsWith('/')) throw new InvalidArgumentError(`invalid mount config: invalid mount path: '${target}' mount path must be absolute (${spec})`);
  return path.posix.normalize(target);
}

/** `-v host:ctr[:ro|rw]`, `-v name:ctr`, `-v /ctr` (anonymous). Volume sources are names, resolved later. */
export function parseVolumeFlag(v: string, cwd = process.cwd()): MountSpec {
  const parts = v.split(':');
  if (parts.length === 1) return { type: 'volume', target: checkTarget(parts[0]!, v) };
  if (parts.length > 3 || parts.some((p) => p === '')) throw new InvalidArgumentError(`invalid volume specification: '${v}'`);
  const [src, dst, mode] = parts as [string, string, string | undefined];
  let readonly = false;
  if (mode !== undefined) {
    const modes = mode.split(',');
    for (const m of modes) {
      if (!['ro', 'rw', 'z', 'Z', 'private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave', 'nocopy'].includes(m)) {
        throw new InvalidArgumentError(`invalid mode: ${mode}`);
      }
    }
    readonly = modes.includes('ro');
  }
  const target = checkTarget(dst, v);
  const bind = (source: string) => `${source}:${dst}${mode !== undefined ? `:${mode}` : ''}`;
  if (src.startsWith('/') || src.startsWith('.')) {
    const source = path.resolve(cwd, src);
    return { type: 'bind', source, target, readonly, bind: bind(source) };
  }
  if (!VOLUME_NAME_RE.test(src)) {
    throw new InvalidArgumentError(`create ${src}: "${src}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`);
  }
  return { type: 'volume', source: src, target, readonly, bind: bind(src) };
}

/** `--mount type=bind|volume|tmpfs,source=…,target=…,readonly,tmpfs-size=…,tmpfs-mode=…` */
/** `--mount`'s fields as a map (the API's HostConfig.Mounts); `volume-opt` may be given many times. */
export type MountFields = Record<string, string | string[]>;

export function parseMountFlag(m: string | MountFields, cwd = process.cwd()): MountSpec {
  const fields = new Map<string, string>();
  // volume-opt=KEY=VALUE, repeated: the local driver's options for a volume this mount creates.
  const volumeOpts: string[] = [];
  if (typeof m === 'string') {
    for (const part of m.split(',')) {
      const i = part.indexOf('=');
      const k = (i < 0 ? part : part.slice(0, i)).trim().toLowerCase();
      if (k === 'volume-opt') volumeOpts.push(i < 0 ? '' : part.slice(i + 1));
      else fields.set(k, i < 0 ? 'true' : part.slice(i + 1));
    }
  } else {
    for (const [k, v] of Object.entries(m)) {
      if (Array.isArray(v)) volumeOpts.push(...v);
      else fields.set(k, v);
    }
    m = Object.entries(m).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => `${k}=${x}`) : [`${k}=${v}`])).join(',');
  }
  if (volumeOpts.length) fields.set('volume-opt', '');
  const type = fields.get('type') ?? 'volume';
  if (!['bind', 'volume', 'tmpfs'].includes(type)) throw new InvalidArgumentError(`invalid mount type: ${type}`);
  const target = fields.get('target') ?? fields.get('destination') ?? fields.get('dst');
  if (!target) throw new UsageError(`invalid argument "${m}" for "--mount" flag: target is required`);
  const source = fields.get('source') ?? fields.get('src');
  const ro = fields.get('readonly') ?? fields.get('ro');
  const readonly = ro !== undefined && ro !== 'false' && ro !== '0';
  for (const k of fields.keys()) {
    if (!['type', 'target', 'destination', 'dst', 'source', 'src', 'readonly', 'ro', 'tmpfs-size', 'tmpfs-mode', 'volume-nocopy', 'volume-opt', 'volume-driver', 'bind-propagation', 'consistency'].includes(k)) {
      throw new UsageError(`invalid argument "${m}" for "--mount" flag: unexpected key '${k}'`);
    }
  }
  if (type === 'tmpfs') {
    if (source) throw new InvalidArgumentError(`invalid mount config for type "tmpfs": source must not be specified`);
    const options: string[] = ['nosuid', 'nodev'];
    const size = fields.get('tmpfs-size');
    const mode = fields.get('tmpfs-mode');
    if (size) options.push(`size=${size}`);
    if (mode) options.push(`mode=${mode}`);
    return { type: 'tmpfs', target: checkTarget(target, m), readonly, options };
  }
  if (type === 'bind') {
    if (!source) throw new InvalidArgumentError(`invalid mount config for type "bind": field Source must not be empty`);
    const abs = path.resolve(cwd, source);
    if (!fs.existsSync(abs)) throw new InvalidArgumentError(`invalid mount config for type "bind": bind source path does not exist: ${abs}`);
    return { type: 'bind', source: abs, target: checkTarget(target, m), readonly };
  }
  if (type !== 'volume' && (volumeOpts.length || fields.has('volume-driver'))) throw new InvalidArgumentError(`invalid mount config for type "${type}": field VolumeOptions must not be specified`);
  const driver = fields.get('volume-driver');
  if (driver && driver !== 'local') throw new NotFoundError(`error looking up volume plugin ${driver}: plugin "${driver}" not found`);
  if (source && !VOLUME_NAME_RE.test(source)) throw new InvalidArgumentError(`invalid volume name: ${source}`);
  const volumeOptions = Object.fromEntries(volumeOpts.map((o) => (o.includes('=') ? [o.slice(0, o.indexOf('=')), o.slice(o.indexOf('=') + 1)] : [o, ''])));
  return { type: 'volume', source, target: checkTarget(target, m), readonly, ...(volumeOpts.length ? { volumeOptions } : {}) };
}

/** docker's `--ulimit name=soft[:hard]` (-1: unlimited); checked against the kernel's names and soft <= hard. */
export function parseUlimit(v: string): Ulimit {
  const eq = v.indexOf('=');
  if (eq <= 0) throw new UsageError(`invalid argument "${v}" for "--ulimit" flag: invalid ulimit argument: ${v}`);
  const name = v.slice(0, eq);
  if (!ULIMIT_NAMES.has(name)) throw new UsageError(`invalid argument "${v}" for "--ulimit" flag: invalid ulimit type: ${name}`);
  const parts = v.slice(eq + 1).split(':');
  if (parts.length > 2) throw new UsageError(`invalid argument "${v}" for "--ulimit" flag: too many limit value arguments - ${v.slice(eq + 1)}, can only have up to two, \`soft[:hard]\``);
  const num = (s: string) => {
    if (!/^-?\d+$/.test(s)) throw new UsageError(`invalid argument "${v}" for "--ulimit" flag: strconv.ParseInt: parsing "${s}": invalid syntax`);
    return Number(s);
  };
  const soft = num(parts[0]!);
  const hard = parts.length === 2 ? num(parts[1]!) : soft;
  if (soft !== -1 && hard !== -1 && soft > hard) {
    throw new UsageError(`invalid argument "${v}" for "--ulimit" flag: ulimit soft limit must be less than or equal to hard limit: ${soft} > ${hard}`);
  }
  return { name, soft, hard };
}

const ULIMIT_NAMES = new Set(['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack']);

/** `--expose 80`, `80/udp`, `8000-8002/tcp`: the ExposedPorts keys. */
export function parseExpose(e: string): string[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/.exec(e);
  if (!m) throw new UsageError(`invalid range format for --expose: ${e}`);
  const from = Number(m[1]);
  const to = m[2] !== undefined ? Number(m[2]) : from;
  if (from < 1 || to > 65535 || to < from) throw new UsageError(`invalid range format for --expose: ${e}`);
  if (to - from > 65535) throw new UsageError(`invalid range format for --expose: ${e}`);
  const out: string[] = [];
  for (let p = from; p <= to; p++) out.push(`${p}/${m[3] ?? 'tcp'}`);
  return out;
}

/** `--tmpfs /path[:opts]` */
export function parseTmpfsFlag(t: string): MountSpec {
  const i = t.indexOf(':');
  const target = i < 0 ? t : t.slice(0, i);
  const opts = i < 0 ? [] : t.slice(i + 1).split(',').filter(Boolean);
  return { type: 'tmpfs', target: checkTarget(target, t), options: ['noexec', 'nosuid', 'nodev', ...opts] };
}

/**
 * The no-new-privileges setting --security-opt asks for, parsed as dockerd parses it (`no-new-privileges`, or with
 * `=BOOL` or the old `:BOOL`; the last wins). Other docker options (seccomp, apparmor, label, systempaths) are
 * refused: ply has none of those to set; a key docker does not know is docker's error.
 */
function noNewPrivileges(opts: string[]): boolean | undefined {
  let nnp: boolean | undefined;
  for (const opt of opts) {
    if (opt === 'no-new-privileges') {
      nnp = true;
      continue;
    }
    const at = opt.includes('=') ? opt.indexOf('=') : opt.indexOf(':');
    if (at < 0) throw new InvalidArgumentError(`invalid --security-opt 1: ${JSON.stringify(opt)}`);
    const [key, value] = [opt.slice(0, at), opt.slice(at + 1)];
    if (['seccomp', 'apparmor', 'label', 'systempaths'].includes(key)) throw new InvalidArgumentError(`ply does not support --security-opt ${key} yet`);
    const bool = { '1': true, t: true, T: true, TRUE: true, true: true, True: true, '0': false, f: false, F: false, FALSE: false, false: false, False: false }[value];
    if (key !== 'no-new-privileges' || bool === undefined) throw new InvalidArgumentError(`invalid --security-opt 2: ${JSON.stringify(opt)}`);
    nnp = bool;
  }
  return nnp;
}

function checkWorkdir(w: string): string {
  if (!w.startsWith('/')) throw new InvalidArgumentError(`the working directory '${w}' is invalid, it needs to be an absolute path`);
  return path.posix.normalize(w);
}

/** `--add-host HOST:IP` entries, checked as docker's CLI does. */
export function checkAddHosts(list: string[]): void {
  for (const h of list) {
    const i = h.indexOf(':');
    if (i <= 0 || i === h.length - 1) throw new UsageError(`invalid argument "${h}" for "--add-host" flag: bad format for add-host: "${h}"`);
    const ip = h.slice(i + 1);
    if (ip !== 'host-gateway' && parseIp(ip) === undefined && !ip.includes(':')) throw new UsageError(`invalid argument "${h}" for "--add-host" flag: invalid IP address in add-host: "${ip}"`);
  }
}

/** The network part of a spec, with docker's checks of flags that do not go together. */
function networkSettings(o: CreateOptions, network: string, cfg: NonNullable<ImageConfig['config']>): Partial<ContainerSpec> & { network: string } {
  const isContainer = network.startsWith('container:');
  if (isContainer && network.length === 'container:'.length) throw new InvalidArgumentError(`invalid container format container:<name|id>`);
  const userNet = !['bridge', 'host', 'none'].includes(network) && !isContainer;
  if (isContainer) {
    if (o.hostname !== undefined) throw new InvalidArgumentError('conflicting options: hostname and the network mode');
    if ((o.publish ?? []).length || o.publishAll) throw new InvalidArgumentError('conflicting options: port publishing and the container type network mode');
    if ((o.dns ?? []).length) throw new InvalidArgumentError('conflicting options: dns and the network mode');
    if ((o.addHosts ?? []).length) throw new InvalidArgumentError('conflicting options: custom host-to-IP mapping and the network mode');
    if (o.macAddress) throw new InvalidArgumentError('conflicting options: mac-address and the network mode');
  }
  if (!userNet && (o.networkAliases ?? []).length) throw new InvalidArgumentError('network-scoped alias is supported only for containers in user defined networks');
  if (!userNet && o.ip) throw new InvalidArgumentError('user specified IP address is supported on user defined networks only');
  if (o.ip && parseIp(o.ip) === undefined) throw new InvalidArgumentError(`invalid IPv4 address: ${o.ip}`);
  if (o.macAddress && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(o.macAddress)) throw new UsageError(`${o.macAddress} is not a valid mac address`);
  checkAddHosts(o.addHosts ?? []);
  for (const d of o.dns ?? []) if (parseIp(d) === undefined) throw new UsageError(`${d} is not an ip address`);
  let portBindings = parsePublish(o.publish ?? []);
  let publishAll = o.publishAll ?? false;
  if (network === 'host' && (Object.keys(portBindings).length || publishAll)) {
    o.warnings?.push('WARNING: Published ports are discarded when using host network mode');
    portBindings = {};
    publishAll = false;
  }
  const endpoint: EndpointConfig = {
    ...((o.networkAliases ?? []).length ? { aliases: o.networkAliases } : {}),
    ...(o.ip ? { ip: o.ip } : {}),
    ...(o.macAddress ? { mac: o.macAddress.toLowerCase() } : {}),
  };
  // Exposed ports: the image's, --expose's and every published one (docker adds -p ports to ExposedPorts).
  const exposed: Record<string, Record<string, never>> = { ...(cfg.ExposedPorts ?? {}) };
  for (const e of o.expose ?? []) for (const k of parseExpose(e)) exposed[k] = {};
  for (const k of Object.keys(portBindings)) exposed[k] = {};
  return {
    network,
    networks: isContainer ? {} : { [network]: endpoint },
    portBindings,
    publishAll,
    dns: o.dns ?? [],
    dnsSearch: o.dnsSearch ?? [],
    dnsOptions: o.dnsOptions ?? [],
    extraHosts: o.addHosts ?? [],
    ...(Object.keys(exposed).length ? { exposedPorts: exposed } : {}),
  };
}

export function buildContainerSpec(o: CreateOptions, image: ImageConfig, id: string): ContainerSpec {
  const cfg = image.config ?? {};
  let entrypoint: string[] | null = cfg.Entrypoint ?? null;
  let cmd: string[] | null = cfg.Cmd ?? null;
  if (o.entrypoint !== undefined) {
    const ep = Array.isArray(o.entrypoint) ? o.entrypoint : [o.entrypoint];
    entrypoint = ep.length === 0 || (ep.length === 1 && ep[0] === '') ? null : ep;
    cmd = null; // docker: an entrypoint set on the command line drops the image's CMD
  }
  if (o.command && o.command.length > 0) cmd = o.command;
  const args = [...(entrypoint ?? []), ...(cmd ?? [])];
  if (args.length === 0) throw new NoCommandError('No command specified');
  const network = !o.network || o.network === 'default' ? 'bridge' : o.network;
  const net = networkSettings(o, network, cfg);
  const fileEnv = (o.envFiles ?? []).flatMap(readEnvFile);
  // Only what the image and the command line gave (docker's Config.Env); the runtime adds PATH and HOSTNAME.
  const env = mergeEnv(cfg.Env ?? [], fileEnv, o.env ?? []);
  const mounts: MountSpec[] = [
    ...(o.volumes ?? []).map((v) => parseVolumeFlag(v)),
    ...(o.mounts ?? []).map((m) => parseMountFlag(m)),
    ...(o.tmpfs ?? []).map(parseTmpfsFlag),
    ...(o.specMounts ?? []),
  ];
  const seen = new Set<string>();
  for (const m of mounts) {
    if (seen.has(m.target)) throw new InvalidArgumentError(`Duplicate mount point: ${m.target}`);
    seen.add(m.target);
  }
  // Image VOLUMEs not covered by a mount become anonymous volumes, as docker does.
  for (const v of Object.keys(cfg.Volumes ?? {})) {
    const target = path.posix.normalize(v);
    if (!seen.has(target)) {
      mounts.push({ type: 'volume', target });
      seen.add(target);
    }
  }
  const { resources, warnings } = normalizeResources(o.resources ?? {});
  o.warnings?.push(...warnings);
  if (o.shmSize !== undefined && (!Number.isInteger(o.shmSize) || o.shmSize < 0)) throw new InvalidArgumentError('SHM size can not be less than 0');
  const restartPolicy = o.restartPolicy && checkRestartPolicy(o.restartPolicy);
  if (o.autoRemove && !isNone(restartPolicy)) throw new InvalidArgumentError('conflicting options: cannot specify both --restart and --rm');
  const healthcheck = mergeHealthcheck(cfg.Healthcheck, o.healthcheck, o.noHealthcheck ?? false);
  checkHealthcheck(healthcheck);
  const stopSignal = o.stopSignal ?? cfg.StopSignal ?? 'SIGTERM';
  parseSignal(stopSignal);
  const labels: Record<string, string> = { ...(cfg.Labels ?? {}) };
  for (const l of o.labels ?? []) {
    const i = l.indexOf('=');
    labels[i < 0 ? l : l.slice(0, i)] = i < 0 ? '' : l.slice(i + 1);
  }
  return {
    path: args[0]!,
    args: args.slice(1),
    env,
    // '' as docker keeps it when neither gave one (the runtime starts in /).
    workingDir: o.workdir ? checkWorkdir(o.workdir) : cfg.WorkingDir ?? '',
    user: o.user ?? cfg.User ?? '',
    hostname: o.hostname ?? (network === 'host' ? os.hostname() : id.slice(0, 12)),
    ...net,
    tty: o.tty ?? false,
    openStdin: o.interactive ?? false,
    ...(o.stdinOnce ? { stdinOnce: true } : {}),
    ...(o.consoleSize && o.consoleSize[0] > 0 && o.consoleSize[1] > 0 ? { consoleSize: o.consoleSize } : {}),
    network,
    mounts,
    readonlyRootfs: o.readOnly ?? false,
    privileged: o.privileged ?? false,
    capAdd: o.capAdd ?? [],
    capDrop: o.capDrop ?? [],
    ...(o.securityOpt?.length ? { securityOpt: o.securityOpt, noNewPrivileges: noNewPrivileges(o.securityOpt) } : {}),
    init: o.init ?? false,
    stopSignal,
    stopTimeout: o.stopTimeout,
    autoRemove: o.autoRemove ?? false,
    labels,
    entrypoint,
    cmd,
    runtime: o.runtime ?? 'runc',
    anonymousVolumes: [],
    exposedPorts: net.exposedPorts ?? cfg.ExposedPorts,
    ...(o.ulimits?.length ? { ulimits: o.ulimits } : {}),
    ...(Object.keys(resources).length ? { resources } : {}),
    ...(o.shmSize ? { shmSize: o.shmSize } : {}),
    ...(restartPolicy && !isNone(restartPolicy) ? { restartPolicy } : {}),
    ...(healthcheck ? { healthcheck } : {}),
  };
}
