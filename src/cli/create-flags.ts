// The flags of docker run and create (and update's resource flags), and what they turn into: the engine's
// CreateOptions, checked as docker's CLI checks them.
import { Command, Option } from 'commander';
import type { CreateOptions, Resources } from '../engine.js';
import { InvalidArgumentError } from '../errors.js';
import { parseGoDuration } from '../gotemplate/gofmt.js';
import { ramInBytes } from '../util/units.js';
import { collect, intValue, securityOpt } from './options.js';
export interface RunFlags {
  interactive?: boolean;
  tty?: boolean;
  detach?: boolean;
  rm?: boolean;
  sigProxy?: boolean;
  detachKeys?: string;
  name?: string;
  env: string[];
  envFile: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  hostname?: string;
  volume: string[];
  mount: string[];
  tmpfs: string[];
  readOnly?: boolean;
  network?: string;
  net?: string;
  networkAlias: string[];
  ip?: string;
  macAddress?: string;
  publish: string[];
  publishAll?: boolean;
  expose: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOption: string[];
  addHost: string[];
  privileged?: boolean;
  capAdd: string[];
  capDrop: string[];
  securityOpt: string[];
  init?: boolean;
  stopSignal?: string;
  stopTimeout?: number;
  pull?: string;
  label: string[];
  runtime?: string;
  memory?: string;
  memorySwap?: string;
  memoryReservation?: string;
  memorySwappiness?: string;
  cpus?: string;
  cpuShares?: string;
  cpuPeriod?: string;
  cpuQuota?: string;
  cpusetCpus?: string;
  cpusetMems?: string;
  pidsLimit?: string;
  oomKillDisable?: boolean;
  ulimit: string[];
  shmSize?: string;
  restart?: string;
  healthCmd?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthRetries?: string;
  healthStartPeriod?: string;
  healthStartInterval?: string;
  healthcheck?: boolean;
}

/** The resource flags run, create and update share (docker's names and help). */
export function addResourceOptions(cmd: Command): Command {
  return cmd
    .option('-m, --memory <bytes>', 'Memory limit')
    .option('--memory-swap <bytes>', "Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    .option('--memory-reservation <bytes>', 'Memory soft limit')
    .option('--cpus <decimal>', 'Number of CPUs')
    .option('-c, --cpu-shares <int>', 'CPU shares (relative weight)')
    .option('--cpu-period <int>', 'Limit CPU CFS (Completely Fair Scheduler) period')
    .option('--cpu-quota <int>', 'Limit CPU CFS (Completely Fair Scheduler) quota')
    .option('--cpuset-cpus <string>', 'CPUs in which to allow execution (0-3, 0,1)')
    .option('--cpuset-mems <string>', 'MEMs in which to allow execution (0-3, 0,1)')
    .option('--pids-limit <int>', 'Tune container pids limit (set -1 for unlimited)')
    .option('--restart <string>', 'Restart policy to apply when a container exits');
}

/** docker's flag parsing: each value as the docker CLI reads it, with its error wording and exit 125. */
function flagValue<T>(flag: string, v: string | undefined, parse: (s: string) => T): T | undefined {
  if (v === undefined) return undefined;
  try {
    return parse(v);
  } catch (e) {
    throw new InvalidArgumentError(`invalid argument "${v}" for "${flag}" flag: ${(e as Error).message}`);
  }
}

const integer = (s: string): number => {
  if (!/^-?\d+$/.test(s)) throw new Error(`strconv.ParseInt: parsing "${s}": invalid syntax`);
  return Number(s);
};

/** A --health-* duration: Go's syntax, never negative (docker's own message for that). */
function healthDuration(flag: string, v: string | undefined): number | undefined {
  const d = flagValue(flag, v, parseGoDuration);
  if (d !== undefined && d < 0) throw new InvalidArgumentError(`${flag} cannot be negative`);
  return d;
}

/** The resource fields the flags give (docker's HostConfig names). */
export function resourceFlags(f: Pick<RunFlags, 'memory' | 'memorySwap' | 'memoryReservation' | 'memorySwappiness' | 'cpus' | 'cpuShares' | 'cpuPeriod' | 'cpuQuota' | 'cpusetCpus' | 'cpusetMems' | 'pidsLimit' | 'oomKillDisable'>): Resources {
  const r: Resources = {
    Memory: flagValue('-m, --memory', f.memory, ramInBytes),
    MemorySwap: flagValue('--memory-swap', f.memorySwap, ramInBytes),
    MemoryReservation: flagValue('--memory-reservation', f.memoryReservation, ramInBytes),
    MemorySwappiness: flagValue('--memory-swappiness', f.memorySwappiness, integer),
    NanoCpus: flagValue('--cpus', f.cpus, (s) => {
      const n = Number(s);
      if (s.trim() === '' || !Number.isFinite(n)) throw new Error(`failed to parse ${s} as a rational number`);
      return Math.round(n * 1e9);
    }),
    CpuShares: flagValue('-c, --cpu-shares', f.cpuShares, integer),
    CpuPeriod: flagValue('--cpu-period', f.cpuPeriod, integer),
    CpuQuota: flagValue('--cpu-quota', f.cpuQuota, integer),
    CpusetCpus: f.cpusetCpus,
    CpusetMems: f.cpusetMems,
    PidsLimit: flagValue('--pids-limit', f.pidsLimit, integer),
    OomKillDisable: f.oomKillDisable,
  };
  for (const k of Object.keys(r) as (keyof Resources)[]) if (r[k] === undefined) delete r[k];
  return r;
}

export function addCreateOptions(cmd: Command): Command {
  return addResourceOptions(cmd)
    .argument('<image>')
    .argument('[command...]')
    .passThroughOptions()
    .option('-i, --interactive', 'Keep STDIN open even if not attached')
    .option('-t, --tty', 'Allocate a pseudo-TTY')
    .option('--name <string>', 'Assign a name to the container')
    .option('-e, --env <list>', 'Set environment variables', collect, [])
    .option('--env-file <list>', 'Read in a file of environment variables', collect, [])
    .option('-w, --workdir <string>', 'Working directory inside the container')
    .option('-u, --user <string>', 'Username or UID (format: <name|uid>[:<group|gid>])')
    .option('--entrypoint <string>', 'Overwrite the default ENTRYPOINT of the image')
    .option('-h, --hostname <string>', 'Container host name')
    .option('-v, --volume <list>', 'Bind mount a volume (host:ctr[:ro], name:ctr, /ctr)', collect, [])
    .option('--mount <mount>', 'Attach a filesystem mount to the container (type=bind|volume|tmpfs,…)', collect, [])
    .option('--tmpfs <list>', 'Mount a tmpfs directory', collect, [])
    .option('--read-only', "Mount the container's root filesystem as read only")
    .option('--network <network>', 'Connect a container to a network (bridge, host, none, container:NAME or a network\'s name)')
    .addOption(new Option('--net <network>').hideHelp())
    .option('--network-alias <list>', 'Add network-scoped alias for the container', collect, [])
    .option('--ip <string>', 'IPv4 address (e.g., 172.30.100.104)')
    .option('--mac-address <string>', 'Container MAC address (e.g., 92:d0:c6:0a:29:33)')
    .option('-p, --publish <list>', "Publish a container's port(s) to the host", collect, [])
    .option('-P, --publish-all', 'Publish all exposed ports to random ports')
    .option('--expose <list>', 'Expose a port or a range of ports', collect, [])
    .option('--dns <list>', 'Set custom DNS servers', collect, [])
    .option('--dns-search <list>', 'Set custom DNS search domains', collect, [])
    .option('--dns-option <list>', 'Set DNS options', collect, [])
    .option('--add-host <list>', 'Add a custom host-to-IP mapping (host:ip)', collect, [])
    .option('--privileged', 'Give extended privileges to this container')
    .option('--cap-add <list>', 'Add Linux capabilities', collect, [])
    .option('--cap-drop <list>', 'Drop Linux capabilities', collect, [])
    .option('--security-opt <list>', 'Security Options (no-new-privileges[=BOOL])', securityOpt, [])
    .option('--init', 'Run an init inside the container that forwards signals and reaps processes')
    .option('--stop-signal <string>', 'Signal to stop the container')
    .option('--stop-timeout <int>', 'Timeout (in seconds) to stop a container', intValue('--stop-timeout'))
    .addOption(new Option('--pull <string>', 'Pull image before running').choices(['always', 'missing', 'never']).default('missing'))
    .option('-l, --label <list>', 'Set meta data on a container', collect, [])
    .option('--runtime <string>', 'Runtime to use for this container (runc, crun)')
    .option('--memory-swappiness <int>', 'Tune container memory swappiness (0 to 100)')
    .option('--oom-kill-disable', 'Disable OOM Killer')
    .option('--ulimit <ulimit>', 'Ulimit options', collect, [])
    .option('--shm-size <bytes>', 'Size of /dev/shm')
    .option('--health-cmd <string>', 'Command to run to check health')
    .option('--health-interval <duration>', 'Time between running the check (ms|s|m|h) (default 0s)')
    .option('--health-timeout <duration>', 'Maximum time to allow one check to run (ms|s|m|h) (default 0s)')
    .option('--health-retries <int>', 'Consecutive failures needed to report unhealthy')
    .option('--health-start-period <duration>', 'Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)')
    .option('--health-start-interval <duration>', 'Time between running the check during the start period (ms|s|m|h) (default 0s)')
    .option('--no-healthcheck', 'Disable any container-specified HEALTHCHECK');
}

export async function toCreateOptions(image: string, command: string[], f: RunFlags): Promise<CreateOptions> {
  const { parseUlimit, parseRestartPolicy } = await import('../engine/containers.js');
  if (f.healthcheck === false && [f.healthCmd, f.healthInterval, f.healthTimeout, f.healthRetries, f.healthStartPeriod, f.healthStartInterval].some((v) => v !== undefined)) {
    throw new InvalidArgumentError('--no-healthcheck conflicts with --health-* options');
  }
  const healthcheck = {
    Test: f.healthCmd !== undefined ? ['CMD-SHELL', f.healthCmd] : undefined,
    Interval: healthDuration('--health-interval', f.healthInterval),
    Timeout: healthDuration('--health-timeout', f.healthTimeout),
    StartPeriod: healthDuration('--health-start-period', f.healthStartPeriod),
    StartInterval: healthDuration('--health-start-interval', f.healthStartInterval),
    Retries: flagValue('--health-retries', f.healthRetries, integer),
  };
  return {
    image,
    command,
    name: f.name,
    env: f.env,
    envFiles: f.envFile,
    workdir: f.workdir,
    user: f.user,
    entrypoint: f.entrypoint,
    hostname: f.hostname,
    volumes: f.volume,
    mounts: f.mount,
    tmpfs: f.tmpfs,
    readOnly: f.readOnly,
    network: f.network ?? f.net,
    networkAliases: f.networkAlias,
    ip: f.ip,
    macAddress: f.macAddress,
    publish: f.publish,
    publishAll: f.publishAll,
    expose: f.expose,
    dns: f.dns,
    dnsSearch: f.dnsSearch,
    dnsOptions: f.dnsOption,
    addHosts: f.addHost,
    privileged: f.privileged,
    capAdd: f.capAdd,
    capDrop: f.capDrop,
    securityOpt: f.securityOpt,
    init: f.init,
    stopSignal: f.stopSignal,
    stopTimeout: f.stopTimeout,
    tty: f.tty,
    interactive: f.interactive,
    autoRemove: f.rm,
    labels: f.label,
    runtime: f.runtime ?? process.env.PLY_RUNTIME,
    pull: f.pull as CreateOptions['pull'],
    resources: resourceFlags(f),
    ulimits: f.ulimit.map(parseUlimit),
    shmSize: flagValue('--shm-size', f.shmSize, ramInBytes),
    restartPolicy: f.restart !== undefined ? parseRestartPolicy(f.restart) : undefined,
    healthcheck: Object.values(healthcheck).some((v) => v !== undefined) ? healthcheck : undefined,
    noHealthcheck: f.healthcheck === false,
  };
}
