// ply's version and what `version` reports: a module of its own, so `ply version` loads nothing else.
import os from 'node:os';
import path from 'node:path';
import { hostPlatform } from '../oci/platform.js';
import { defaultRuntimeName, runtimeVersion, type RuntimeVersion } from '../runtime/version.js';
import { defaultRoot } from '../util/root.js';
import type { VersionInfo } from './types.js';

export const VERSION = '0.1.0';

/** The Docker Engine API versions the engine's shapes follow (as dockerd reports them). */
export const API_VERSION = '1.43';
export const MIN_API_VERSION = '1.24';

export function versionInfo(): VersionInfo {
  const p = hostPlatform();
  return { Version: VERSION, ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION, Os: p.os, Arch: p.architecture, KernelVersion: os.release(), NodeVersion: process.version };
}

/**
 * The OCI runtime new containers get (runc or crun) and its version, as docker lists it among the Server's
 * components; answers are kept beside the store (`root`), so only a new binary is asked again.
 */
export function defaultRuntimeVersion(root: string = defaultRoot()): RuntimeVersion | undefined {
  return runtimeVersion(defaultRuntimeName(), path.join(root, 'runtime-versions.json'));
}

/** docker's `GET /version` (the `Server` of `docker version`): the engine, and the runtime when it is known. */
export function serverVersion(runtime?: RuntimeVersion) {
  const v = versionInfo();
  const details = { ApiVersion: v.ApiVersion, Arch: v.Arch, BuildTime: '', Experimental: 'false', GitCommit: '', GoVersion: v.NodeVersion, KernelVersion: v.KernelVersion, MinAPIVersion: v.MinAPIVersion, Os: v.Os };
  return {
    Platform: { Name: 'ply' },
    Components: [{ Name: 'Engine', Version: v.Version, Details: details as Record<string, string> }, ...(runtime ? [{ Name: runtime.name, Version: runtime.version, Details: { GitCommit: runtime.commit } as Record<string, string> }] : [])],
    Version: v.Version,
    ApiVersion: v.ApiVersion,
    MinAPIVersion: v.MinAPIVersion,
    GitCommit: '',
    GoVersion: v.NodeVersion,
    Os: v.Os,
    Arch: v.Arch,
    KernelVersion: v.KernelVersion,
    BuildTime: '',
  };
}
