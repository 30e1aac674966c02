// What the engine's verbs return, in the shapes of the Docker Engine API (moby's api/swagger.yaml), so the CLI
// formats them as docker's CLI does and the API server serialises them as dockerd does. Fields ply has no
// meaning for keep docker's "unknown" values (-1, null, '') rather than being left out.
import type { NetworkSettings } from '../network/index.js';
import type { ContainerConfig, DockerContainerConfig } from '../oci/types.js';

export type { NetworkInspect, NetworkSettings } from '../network/index.js';
export type { EventMessage, EventType } from '../events/log.js';

/** A docker JSON progress message (pull, push, load): what dockerd streams and the docker CLI draws. */
export interface ProgressMessage {
  /** The layer (short digest) the status is about; absent for whole-operation messages. */
  id?: string;
  status: string;
  progressDetail?: { current: number; total: number };
}

/** One entry of `GET /images/json`. */
export interface ImageSummary {
  Id: string;
  ParentId: string;
  /** Familiar names ('busybox:latest'); with a reference filter only the matching ones. */
  RepoTags: string[];
  RepoDigests: string[];
  /** Seconds since the epoch. */
  Created: number;
  Size: number;
  SharedSize: number;
  Labels: Record<string, string> | null;
  Containers: number;
  /** The manifest, as docker ≥ 1.47 reports it. */
  Descriptor: { mediaType: string; digest: string; size: number };
}

/** `GET /images/{name}/json`. */
export interface ImageInspect {
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Parent: string;
  Comment: string;
  Created: string;
  /** The container it was committed from ('' otherwise), and that container's config (docker ≤ 1.44's fields). */
  Container: string;
  ContainerConfig: DockerContainerConfig;
  DockerVersion: string;
  Author: string;
  Config: DockerContainerConfig;
  Architecture: string;
  Variant?: string;
  Os: string;
  Size: number;
  VirtualSize: number;
  GraphDriver: { Data: null; Name: string };
  RootFS: { Type: 'layers'; Layers: string[] };
  Metadata: { LastTagTime: string };
  Descriptor: { mediaType: string; digest: string; size: number };
}

/** One entry of `GET /images/{name}/history`, newest first. */
export interface ImageHistoryItem {
  /** The image ID for the top entry, '<missing>' below it (as docker without the parent chain). */
  Id: string;
  /** Seconds since the epoch; 0 when the config does not say. */
  Created: number;
  CreatedBy: string;
  Tags: string[] | null;
  Size: number;
  Comment: string;
}

/** One entry of `DELETE /images/{name}` and of image prune's `ImagesDeleted`. */
export type ImageDeleteItem = { Untagged: string } | { Deleted: string };

/** `POST /images/prune`. */
export interface ImagesPruneResponse {
  ImagesDeleted: ImageDeleteItem[];
  SpaceReclaimed: number;
}

/** `POST /containers/prune`. */
export interface ContainersPruneResponse {
  ContainersDeleted: string[];
  SpaceReclaimed: number;
}

/** `POST /volumes/prune`. */
export interface VolumesPruneResponse {
  VolumesDeleted: string[];
  SpaceReclaimed: number;
}

/** `POST /build/prune`. */
export interface BuildCachePruneResponse {
  /** IDs of the intermediate images deleted with the cache entries. */
  CachesDeleted: string[];
  SpaceReclaimed: number;
}

/** `GET /containers/json` entries. */
export interface ContainerSummary {
  Id: string;
  /** '/name', as docker. */
  Names: string[];
  /** What the container was created from, as the user named it (or the image ID). */
  Image: string;
  ImageID: string;
  Command: string;
  /** Seconds since the epoch. */
  Created: number;
  Ports: { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[];
  SizeRw?: number;
  SizeRootFs?: number;
  Labels: Record<string, string>;
  State: string;
  /** Human-readable: 'Up 5 minutes', 'Exited (0) 2 hours ago', as dockerd writes it. */
  Status: string;
  HostConfig: { NetworkMode: string };
  NetworkSettings: { Networks: Record<string, Record<string, unknown>> };
  Mounts: MountPoint[];
}

export interface MountPoint {
  Type: string;
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
}

export interface ContainerStateInfo {
  Status: string;
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  Dead: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
}

/** `GET /containers/{id}/json`. */
export interface ContainerInspect {
  Id: string;
  Created: string;
  Path: string;
  Args: string[];
  State: ContainerStateInfo;
  Image: string;
  ResolvConfPath: string;
  HostnamePath: string;
  HostsPath: string;
  LogPath: string;
  Name: string;
  RestartCount: number;
  Driver: string;
  Platform: string;
  MountLabel: string;
  ProcessLabel: string;
  AppArmorProfile: string;
  ExecIDs: string[] | null;
  HostConfig: Record<string, unknown>;
  GraphDriver: { Data: Record<string, string>; Name: string };
  SizeRw?: number;
  SizeRootFs?: number;
  Mounts: MountPoint[];
  Config: DockerContainerConfig;
  NetworkSettings: NetworkSettings;
}

/** `POST /containers/create`. */
export interface ContainerCreateResponse {
  Id: string;
  Warnings: string[];
}

/** `POST /containers/{id}/wait`: docker's conditions. */
export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

export interface WaitResponse {
  StatusCode: number;
  Error?: { Message: string };
}

/** One line of a container's output (`GET /containers/{id}/logs`, attach). */
export interface LogEntry {
  stream: 'stdout' | 'stderr';
  /** When it was written, as docker prints it with --timestamps (RFC 3339 with nanoseconds). */
  time: string;
  /** The text, with its newline (a partial line has none). */
  log: string;
}

/** `GET /containers/{id}/changes`: Kind 0 modified, 1 added, 2 deleted. */
export interface FilesystemChange {
  Path: string;
  Kind: 0 | 1 | 2;
}

/** `GET /containers/{id}/top`. */
export interface ContainerTop {
  Titles: string[];
  Processes: string[][];
}

/** `HEAD /containers/{id}/archive`: the X-Docker-Container-Path-Stat header's content. */
export interface PathStat {
  name: string;
  size: number;
  /** Go's os.FileMode bits, as docker encodes them. */
  mode: number;
  mtime: string;
  linkTarget: string;
}

/** `GET /exec/{id}/json`. */
export interface ExecInspect {
  ID: string;
  ContainerID: string;
  Running: boolean;
  ExitCode: number | null;
  Pid: number;
  OpenStdin: boolean;
  OpenStdout: boolean;
  OpenStderr: boolean;
  CanRemove: boolean;
  DetachKeys: string;
  ProcessConfig: { privileged: boolean; user: string; tty: boolean; entrypoint: string; arguments: string[] };
}

/** Docker's volume object (`GET /volumes/{name}`). */
export interface VolumeInfo {
  Name: string;
  Driver: 'local';
  Mountpoint: string;
  CreatedAt: string;
  /** null when empty, as dockerd's. */
  Labels: Record<string, string> | null;
  Scope: 'local';
  Options: Record<string, string> | null;
  UsageData?: { Size: number; RefCount: number };
}

/** `GET /version`'s fields ply has. */
export interface VersionInfo {
  Version: string;
  ApiVersion: string;
  MinAPIVersion: string;
  Os: string;
  Arch: string;
  KernelVersion: string;
  NodeVersion: string;
}

/** `GET /info`'s fields ply has. */
export interface SystemInfo {
  Containers: number;
  ContainersRunning: number;
  ContainersPaused: number;
  ContainersStopped: number;
  Images: number;
  DanglingImages: number;
  Driver: string;
  DockerRootDir: string;
  DefaultRuntime: string;
  KernelVersion: string;
  OperatingSystem: string;
  OSType: string;
  Architecture: string;
  NCPU: number;
  MemTotal: number;
  Name: string;
  ServerVersion: string;
}

/** Sizes for `system df`: layers shared by several images count once; "active" is what containers use. */
export interface UsageRow {
  total: number;
  active: number;
  size: number;
  reclaimable: number;
}

export interface DiskUsage {
  images: UsageRow;
  containers: UsageRow;
  volumes: UsageRow;
  buildCache: UsageRow;
  dangling: number;
}

export type { ContainerConfig, DockerContainerConfig };
