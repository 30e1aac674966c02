// Request bodies decoded as dockerd decodes them (Go's encoding/json into moby's structs): a key names a field
// exactly or, failing that, case-insensitively ("hostconfig", "memory"); a key that names no field is dropped,
// at any depth. Each endpoint gives the shape of its body; handlers then see docker's field names only, so what
// they refuse is a docker field ply cannot honour, never a client's extra key.

/** A body's shape: a leaf (kept as sent), a struct (named fields), a map (any keys, one shape) or a list. */
export type Shape = null | { struct: Record<string, Shape> } | { map: Shape } | { list: Shape };

const leaf = null;
const struct = (fields: Record<string, Shape>): Shape => ({ struct: fields });
const mapOf = (s: Shape): Shape => ({ map: s });
const listOf = (s: Shape): Shape => ({ list: s });
/** Fields whose values are kept as sent. */
const leaves = (names: string): Record<string, Shape> => Object.fromEntries(names.split(' ').map((n) => [n, leaf]));

/** `value` with the keys of every struct in `shape` made docker's and the unknown ones dropped. */
export function decodeBody(value: unknown, shape: Shape): unknown {
  if (shape === null || value === null || typeof value !== 'object') return value;
  if ('list' in shape) return Array.isArray(value) ? value.map((v) => decodeBody(v, shape.list)) : value;
  if (Array.isArray(value)) return value;
  if ('map' in shape) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decodeBody(v, shape.map)]));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const name = fieldName(shape.struct, k);
    // Repeated keys (also differently cased): the last wins, as in Go.
    if (name !== undefined) out[name] = decodeBody(v, shape.struct[name]!);
  }
  return out;
}

const folded = new WeakMap<object, Map<string, string>>();
/** Go's rule: the exact name first, then the first field equal to the key under case folding. */
function fieldName(fields: Record<string, Shape>, key: string): string | undefined {
  if (Object.hasOwn(fields, key)) return key;
  let byLower = folded.get(fields);
  if (!byLower) {
    byLower = new Map();
    for (const f of Object.keys(fields)) if (!byLower.has(f.toLowerCase())) byLower.set(f.toLowerCase(), f);
    folded.set(fields, byLower);
  }
  return byLower.get(key.toLowerCase());
}

// moby's api/types (container.Config, HostConfig, NetworkingConfig, …), newer API versions' fields included.
const health = struct(leaves('Test Interval Timeout StartPeriod StartInterval Retries'));
const configFields = {
  ...leaves(
    'Hostname Domainname User AttachStdin AttachStdout AttachStderr ExposedPorts Tty OpenStdin StdinOnce Env Cmd ' +
      'ArgsEscaped Image Volumes WorkingDir Entrypoint NetworkDisabled MacAddress OnBuild Labels StopSignal StopTimeout Shell',
  ),
  Healthcheck: health,
};
const throttle = listOf(struct(leaves('Path Rate')));
const resourceFields = {
  ...leaves(
    'CpuShares Memory NanoCpus CgroupParent BlkioWeight CpuPeriod CpuQuota CpuRealtimePeriod CpuRealtimeRuntime ' +
      'CpusetCpus CpusetMems DeviceCgroupRules KernelMemory KernelMemoryTCP MemoryReservation MemorySwap ' +
      'MemorySwappiness OomKillDisable PidsLimit CpuCount CpuPercent IOMaximumIOps IOMaximumBandwidth',
  ),
  BlkioWeightDevice: listOf(struct(leaves('Path Weight'))),
  BlkioDeviceReadBps: throttle,
  BlkioDeviceWriteBps: throttle,
  BlkioDeviceReadIOps: throttle,
  BlkioDeviceWriteIOps: throttle,
  Devices: listOf(struct(leaves('PathOnHost PathInContainer CgroupPermissions'))),
  DeviceRequests: listOf(struct(leaves('Driver Count DeviceIDs Capabilities Options'))),
  Ulimits: listOf(struct(leaves('Name Hard Soft'))),
};
const restart = struct(leaves('Name MaximumRetryCount'));
const mount = struct({
  ...leaves('Type Source Target ReadOnly Consistency ClusterOptions'),
  BindOptions: struct(leaves('Propagation NonRecursive CreateMountpoint ReadOnlyNonRecursive ReadOnlyForceRecursive')),
  VolumeOptions: struct({ ...leaves('NoCopy Labels Subpath'), DriverConfig: struct(leaves('Name Options')) }),
  TmpfsOptions: struct(leaves('SizeBytes Mode Options')),
});
const hostConfig = struct({
  ...leaves(
    'Binds ContainerIDFile NetworkMode AutoRemove VolumeDriver VolumesFrom ConsoleSize Annotations CapAdd CapDrop ' +
      'CgroupnsMode Dns DnsOptions DnsSearch ExtraHosts GroupAdd IpcMode Cgroup Links OomScoreAdj PidMode Privileged ' +
      'PublishAllPorts ReadonlyRootfs SecurityOpt StorageOpt Tmpfs UTSMode UsernsMode ShmSize Sysctls Runtime Isolation ' +
      'MaskedPaths ReadonlyPaths Init Capabilities',
  ),
  ...resourceFields,
  LogConfig: struct(leaves('Type Config')),
  PortBindings: mapOf(listOf(struct(leaves('HostIp HostPort')))),
  RestartPolicy: restart,
  Mounts: listOf(mount),
});
const endpoint = struct({
  ...leaves(
    'Links Aliases DriverOpts NetworkID EndpointID Gateway IPAddress IPPrefixLen IPv6Gateway GlobalIPv6Address ' +
      'GlobalIPv6PrefixLen MacAddress DNSNames GwPriority',
  ),
  IPAMConfig: struct(leaves('IPv4Address IPv6Address LinkLocalIPs')),
});

/** The bodies of the endpoints that take JSON. */
export const BODIES = {
  containerCreate: struct({ ...configFields, HostConfig: hostConfig, NetworkingConfig: struct({ EndpointsConfig: mapOf(endpoint) }) }),
  containerUpdate: struct({ ...resourceFields, RestartPolicy: restart }),
  commit: struct(configFields),
  execCreate: struct(leaves('User Privileged Tty ConsoleSize AttachStdin AttachStderr AttachStdout Detach DetachKeys Env WorkingDir Cmd')),
  execStart: struct(leaves('Detach Tty ConsoleSize')),
  volumeCreate: struct(leaves('Name Driver DriverOpts Labels ClusterVolumeSpec')),
  networkCreate: struct({
    ...leaves('Name CheckDuplicate Driver Scope EnableIPv4 EnableIPv6 Internal Attachable Ingress ConfigOnly Options Labels'),
    ConfigFrom: struct(leaves('Network')),
    IPAM: struct({ ...leaves('Driver Options'), Config: listOf(struct(leaves('Subnet IPRange Gateway AuxiliaryAddresses'))) }),
  }),
  networkConnect: struct({ Container: leaf, EndpointConfig: endpoint }),
  networkDisconnect: struct(leaves('Container Force')),
  auth: struct(leaves('username password auth email serveraddress identitytoken registrytoken')),
} satisfies Record<string, Shape>;
