// ply's version and what `version` reports: a module of its own, so `ply version` loads nothing else.
import os from 'node:os';
import { hostPlatform } from '../oci/platform.js';
import type { VersionInfo } from './types.js';

export const VERSION = '0.1.0';

/** The Docker Engine API versions the engine's shapes follow (as dockerd reports them). */
export const API_VERSION = '1.43';
export const MIN_API_VERSION = '1.24';

export function versionInfo(): VersionInfo {
  const p = hostPlatform();
  return { Version: VERSION, ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION, Os: p.os, Arch: p.architecture, KernelVersion: os.release(), NodeVersion: process.version };
}
