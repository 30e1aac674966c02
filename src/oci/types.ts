// The OCI image-spec data model (and the Docker schema 2 media types that map onto it).

export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNondistGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerLayerForeignGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
} as const;

export type Digest = `sha256:${string}` | `sha512:${string}`;

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface Platform {
  architecture: string;
  os: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
}

export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface Index {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

/**
 * Docker's whole container config, in its field order: a container's Config (inspect), and what docker's image
 * JSON keeps as `container_config` (the config of the container an image was committed from).
 */
export interface DockerContainerConfig {
  Hostname: string;
  Domainname: string;
  User: string;
  AttachStdin: boolean;
  AttachStdout: boolean;
  AttachStderr: boolean;
  ExposedPorts?: Record<string, Record<string, never>>;
  Tty: boolean;
  OpenStdin: boolean;
  StdinOnce: boolean;
  Env: string[] | null;
  Cmd: string[] | null;
  Healthcheck?: ContainerConfig['Healthcheck'];
  ArgsEscaped?: boolean;
  Image: string;
  Volumes: Record<string, Record<string, never>> | null;
  WorkingDir: string;
  Entrypoint: string[] | null;
  OnBuild: string[] | null;
  Labels: Record<string, string> | null;
  StopSignal?: string;
  StopTimeout?: number;
  Shell?: string[];
}

/** The runtime part of an image config (OCI "config" / Docker "Config"). Field names as Docker spells them. */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  OnBuild?: string[] | null;
  Shell?: string[];
  Healthcheck?: HealthConfig;
  ArgsEscaped?: boolean;
}

/** docker's Healthcheck (an image's HEALTHCHECK, a container's --health-*); durations in nanoseconds, 0 = default. */
export interface HealthConfig {
  /** [] inherit, ['NONE'], ['CMD', args...], ['CMD-SHELL', command]. */
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: HistoryEntry[];
  // Docker writes these; kept when present so configs round-trip.
  comment?: string;
  parent?: string;
  container?: string;
  container_config?: DockerContainerConfig;
  docker_version?: string;
}

export function isManifestMediaType(mt: string | undefined): boolean {
  return mt === MediaType.OciManifest || mt === MediaType.DockerManifest;
}

export function isIndexMediaType(mt: string | undefined): boolean {
  return mt === MediaType.OciIndex || mt === MediaType.DockerManifestList;
}

export function isLayerMediaType(mt: string): boolean {
  return mt.startsWith('application/vnd.oci.image.layer.') || mt.startsWith('application/vnd.docker.image.rootfs.');
}

/**
 * The compression a layer media type says its blob has; undefined for layers that are never converted
 * (non-distributable/foreign layers, whose blobs are fetched from elsewhere, and unknown types).
 */
export function layerCompressionOf(mt: string): 'none' | 'gzip' | 'zstd' | undefined {
  switch (mt) {
    case MediaType.OciLayer:
    case 'application/vnd.docker.image.rootfs.diff.tar':
      return 'none';
    case MediaType.OciLayerGzip:
    case MediaType.DockerLayerGzip:
      return 'gzip';
    case MediaType.OciLayerZstd:
      return 'zstd';
    default:
      return undefined;
  }
}

/** The layer media type for `compression` in a manifest of type `manifestType` (Docker has no zstd type). */
export function layerMediaType(manifestType: string, compression: 'none' | 'gzip' | 'zstd'): string {
  if (manifestType === MediaType.DockerManifest && compression !== 'zstd') {
    return compression === 'gzip' ? MediaType.DockerLayerGzip : 'application/vnd.docker.image.rootfs.diff.tar';
  }
  return compression === 'gzip' ? MediaType.OciLayerGzip : compression === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer;
}

/** The OCI media type of a Docker schema 2 one (a Docker manifest turned OCI, as for zstd layers). */
export function ociMediaType(mt: string): string {
  switch (mt) {
    case MediaType.DockerManifest:
      return MediaType.OciManifest;
    case MediaType.DockerManifestList:
      return MediaType.OciIndex;
    case MediaType.DockerConfig:
      return MediaType.OciConfig;
    case MediaType.DockerLayerGzip:
      return MediaType.OciLayerGzip;
    case 'application/vnd.docker.image.rootfs.diff.tar':
      return MediaType.OciLayer;
    case MediaType.DockerLayerForeignGzip:
      return MediaType.OciLayerNondistGzip;
    default:
      return mt;
  }
}
