// A container's configuration in docker's shape (its Config in inspect; `container_config` of an image committed
// from it): only what the image and the command line gave, as docker keeps it.
import type { ContainerConfig, DockerContainerConfig } from '../oci/types.js';
import { configVolumes, type Container } from './store.js';

export function dockerConfig(c: Container, image: ContainerConfig = {}): DockerContainerConfig {
  const s = c.spec;
  return {
    Hostname: s.hostname,
    Domainname: '',
    User: s.user,
    AttachStdin: s.openStdin,
    AttachStdout: true,
    AttachStderr: true,
    ...(s.exposedPorts && Object.keys(s.exposedPorts).length ? { ExposedPorts: s.exposedPorts } : {}),
    Tty: s.tty,
    OpenStdin: s.openStdin,
    StdinOnce: s.openStdin,
    Env: s.env.length ? s.env : null,
    Cmd: s.cmd,
    ...(s.healthcheck ? { Healthcheck: s.healthcheck } : {}),
    Image: c.imageRef,
    Volumes: configVolumes(s),
    // Containers made before ply kept docker's '' defaulted it to '/'.
    WorkingDir: s.workingDir === '/' && !image.WorkingDir ? '' : s.workingDir,
    Entrypoint: s.entrypoint,
    OnBuild: null,
    Labels: s.labels,
    // docker records a stop signal only when the image or --stop-signal gave one.
    ...(s.stopSignal !== 'SIGTERM' || image.StopSignal ? { StopSignal: s.stopSignal } : {}),
    ...(s.stopTimeout !== undefined ? { StopTimeout: s.stopTimeout } : {}),
  };
}

const KEYS: (keyof DockerContainerConfig)[] = [
  'Hostname', 'Domainname', 'User', 'AttachStdin', 'AttachStdout', 'AttachStderr', 'ExposedPorts', 'Tty', 'OpenStdin',
  'StdinOnce', 'Env', 'Cmd', 'Healthcheck', 'ArgsEscaped', 'Image', 'Volumes', 'WorkingDir', 'Entrypoint', 'OnBuild',
  'Labels', 'StopSignal', 'StopTimeout', 'Shell',
];

const ZERO: DockerContainerConfig = {
  Hostname: '',
  Domainname: '',
  User: '',
  AttachStdin: false,
  AttachStdout: false,
  AttachStderr: false,
  Tty: false,
  OpenStdin: false,
  StdinOnce: false,
  Env: null,
  Cmd: null,
  Image: '',
  Volumes: null,
  WorkingDir: '',
  Entrypoint: null,
  OnBuild: null,
  Labels: null,
};

/** A docker config with every field docker always prints (zero when not given), in docker's order. */
export function fullDockerConfig(given: Partial<DockerContainerConfig> = {}): DockerContainerConfig {
  const all: Partial<DockerContainerConfig> = { ...ZERO, ...given };
  const out: Record<string, unknown> = {};
  for (const k of KEYS) if (all[k] !== undefined) out[k] = all[k];
  return out as unknown as DockerContainerConfig;
}

/** An image's runtime config (OCI "config") as docker's image inspect shows it. */
export function imageDockerConfig(c: ContainerConfig = {}): DockerContainerConfig {
  return fullDockerConfig({
    User: c.User ?? '',
    ExposedPorts: c.ExposedPorts,
    Env: c.Env ?? null,
    Cmd: c.Cmd ?? null,
    Healthcheck: c.Healthcheck,
    ArgsEscaped: c.ArgsEscaped || undefined,
    Volumes: c.Volumes ?? null,
    WorkingDir: c.WorkingDir ?? '',
    Entrypoint: c.Entrypoint ?? null,
    OnBuild: c.OnBuild ?? null,
    Labels: c.Labels ?? null,
    StopSignal: c.StopSignal,
    Shell: c.Shell,
  });
}
