// ply's own registry server (`ply registry serve`, `ply registry gc`) as the engine offers it: it keeps its own
// content store and DB under its root, apart from the engine's stores.
import path from 'node:path';
import type { GcOptions, GcResult } from '../registry/gc.js';
import type { RegistryOptions, RegistryServer } from '../registry/server.js';
import { defaultRoot } from '../stores.js';

export type { GcOptions, GcResult, RegistryOptions, RegistryServer };

/** Where `ply registry serve` keeps its data by default: registry/ under the store root. */
export function defaultRegistryRoot(): string {
  return path.join(defaultRoot(), 'registry');
}

/** Starts an OCI distribution registry (distribution-spec v1.1) serving `opts.root`. */
export async function serveRegistry(opts: RegistryOptions): Promise<RegistryServer> {
  const { startRegistry } = await import('../registry/server.js');
  return startRegistry(opts);
}

/** Removes blobs no manifest references and uploads abandoned for a day. */
export async function collectRegistryGarbage(root: string, opts: GcOptions = {}): Promise<GcResult> {
  const { gcRegistry } = await import('../registry/gc.js');
  return gcRegistry(root, opts);
}

/** Whether a registry server is serving `root` now. */
export async function registryServing(root: string): Promise<boolean> {
  const { serverRunning } = await import('../registry/gc.js');
  return serverRunning(root);
}
