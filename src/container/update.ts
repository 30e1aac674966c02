// `docker update`: new resource limits and/or a new restart policy merged into a container's spec by docker's rules.
import { ConflictError } from '../errors.js';
import { normalizeResources, specResources, type Resources, type SpecResources } from '../runtime/cgroups.js';
import { checkRestartPolicy, isNone, type RestartPolicy } from '../supervisor/restart.js';
import type { ContainerSpec } from './store.js';

/** New limits merged into the current ones. */
export interface UpdatedResources {
  resources: Resources | undefined;
  /** docker's warnings. */
  warnings: string[];
  /** With a running container: what the runtime applies at once. */
  live?: SpecResources;
}

/**
 * The container's limits after `update` (all of them as they were when it asks for none); `running` asks for the
 * limits a running container gets at once.
 */
export function updatedResources(s: ContainerSpec, update: Resources | undefined, running: boolean): UpdatedResources {
  if (!update || !Object.values(update).some((v) => v !== undefined)) return { resources: s.resources, warnings: [] };
  const n = normalizeResources(update, { update: true, current: s.resources ?? {} });
  const resources: Resources = { ...(s.resources ?? {}) };
  for (const [k, v] of Object.entries(n.resources) as [keyof Resources, Resources[keyof Resources]][]) {
    if (v === undefined) continue;
    // docker's update: zero means "leave it", except PidsLimit where 0 (or -1) lifts the limit.
    if (k === 'PidsLimit') (resources as Record<string, unknown>)[k] = v ? v : undefined;
    else if (v !== 0 && v !== '') (resources as Record<string, unknown>)[k] = v;
  }
  if (resources.NanoCpus) {
    delete resources.CpuPeriod;
    delete resources.CpuQuota;
  }
  if (update.Memory && !update.MemorySwap && s.resources?.MemorySwap && s.resources.MemorySwap > 0 && s.resources.MemorySwap < update.Memory) {
    resources.MemorySwap = update.Memory;
  }
  if (!running) return { resources, warnings: n.warnings };
  const live = specResources(resources);
  // An unset limit in the update means "none": runc leaves a field it is not given as it is.
  if (update.PidsLimit !== undefined && !resources.PidsLimit) live.pids = { limit: -1 };
  return { resources, warnings: n.warnings, live };
}

/** The container's spec with these limits and restart policy (a policy given replaces the current one). */
export function updatedSpec(s: ContainerSpec, resources: Resources | undefined, policy: RestartPolicy | undefined): ContainerSpec {
  let restartPolicy = s.restartPolicy;
  if (policy) {
    const p = checkRestartPolicy(policy);
    if (s.autoRemove && !isNone(p)) throw new ConflictError('Restart policy cannot be updated because AutoRemove is enabled for the container');
    restartPolicy = isNone(p) ? undefined : p;
  }
  const spec: ContainerSpec = { ...s };
  if (resources && Object.keys(resources).length) spec.resources = resources;
  else delete spec.resources;
  if (restartPolicy) spec.restartPolicy = restartPolicy;
  else delete spec.restartPolicy;
  return spec;
}
