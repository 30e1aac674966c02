// docker container inspect's JSON for a container: its state, HostConfig (with docker's zero values for what ply
// does not have), GraphDriver, mounts, Config and NetworkSettings.
import type { ContainerManager } from '../container/manager.js';
import { dockerConfig } from '../container/config.js';
import { isUp, type Container } from '../container/store.js';
import { rfc3339Nano } from '../gotemplate/gofmt.js';
import type { Resources } from '../runtime/cgroups.js';
import type { Stores } from '../stores.js';
import type { ContainerInspect, MountPoint } from './types.js';

/** docker container inspect's JSON. */
export function inspectContainer(stores: Stores, manager: ContainerManager, c: Container, execIds: string[], opts: { size?: boolean } = {}): ContainerInspect {
  const dir = stores.containers.pathOf(c.id);
  const s = c.spec;
  const rec = stores.images.get(c.image);
  const iso = (ms: number) => (ms ? rfc3339Nano(new Date(ms)) : '0001-01-01T00:00:00Z');
  const snapshotter = stores.snapshots.of(dir);
  const binds = s.mounts.flatMap((m) => (m.bind ? [m.bind] : []));
  const tmpfs = s.mounts.filter((m) => m.type === 'tmpfs');
  return {
    Id: c.id,
    Created: iso(c.created),
    Path: s.path,
    Args: s.args,
    State: {
      Status: c.state,
      Running: isUp(c),
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
    LogPath: manager.logPath(c),
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
      SecurityOpt: s.securityOpt ?? null,
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
    ...(opts.size ? { SizeRw: manager.writableLayerSize(c), SizeRootFs: manager.writableLayerSize(c) + (rec?.size ?? 0) } : {}),
    Mounts: mountPoints(stores, c, false),
    Config: dockerConfig(c, rec ? stores.images.config(rec).config : undefined),
    NetworkSettings: stores.networks.settings(manager.netSpec(c)),
  };
}

/** A container's mounts in docker's shape (`withTmpfs`: docker's list shows tmpfs mounts, inspect does not). */
export function mountPoints(stores: Pick<Stores, 'volumes'>, c: Container, withTmpfs: boolean): MountPoint[] {
  return c.spec.mounts
    .filter((m) => withTmpfs || m.type !== 'tmpfs')
    .map((m) => ({
      Type: m.type,
      ...(m.type === 'volume' ? { Name: m.source, Source: stores.volumes.dataPath(m.source!), Driver: 'local' } : { Source: m.source ?? '' }),
      Destination: m.target,
      Mode: m.readonly ? 'ro' : '',
      RW: !m.readonly,
      Propagation: m.type === 'bind' ? 'rprivate' : '',
    }));
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
