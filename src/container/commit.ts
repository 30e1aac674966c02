// commit and export: a container's writable layer becomes a new image layer on top of its image's layers;
// its whole filesystem, flattened, becomes a tar.
import path from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ConflictError, NotFoundError } from '../errors.js';
import { applyChanges } from '../dockerfile/config.js';
import type { ImageRecord } from '../image/store.js';
import { creationTime, writeImage } from '../image/write.js';
import { tagName } from '../reference/reference.js';
import { writeMergedTree, writeTree, type TreeOutput } from '../layer/diff.js';
import type { ContainerConfig, ImageConfig } from '../oci/types.js';
import { commitLayer } from '../snapshot/commit.js';
import { TarWriter } from '../tar/index.js';
import { TarFdWriter } from '../tar/writer.js';
import type { ContainerManager } from './manager.js';
import { dockerConfig } from './config.js';
import { configVolumes, type Container } from './store.js';

export interface CommitOptions {
  author?: string;
  message?: string;
  /**
   * The API's commit body: a config whose fields override the container's (Env, Labels, ExposedPorts and
   * Volumes are merged by key, as docker's commit merges them); `changes` apply on top of the result.
   */
  config?: ContainerConfig;
  /** Dockerfile instructions applied to the config (commit --change). */
  changes?: string[];
  /** Freeze the container while its layer is read (docker's default). */
  pause?: boolean;
  reference?: string;
}

/** Runs `fn` with the container's rootfs mounted (already mounted while it runs). */
export async function withRootfs<T>(manager: ContainerManager, c: Container, fn: (rootfs: string) => Promise<T>): Promise<T> {
  const { snapshotter, key, parent } = manager.snapshot(c);
  if (manager.isRunning(c)) return fn(path.join(key, 'merged'));
  if (!manager.stores.images.get(c.image)) throw new NotFoundError(`image of container ${c.name} is gone`);
  const rootfs = await snapshotter.mount(key, parent);
  try {
    return await fn(rootfs);
  } finally {
    snapshotter.unmount(key);
  }
}

export async function commitContainer(manager: ContainerManager, c: Container, o: CommitOptions = {}): Promise<ImageRecord> {
  const { containers, images, content } = manager.stores;
  const name = o.reference ? tagName(o.reference) : undefined;
  const base = images.get(c.image);
  if (!base) throw new NotFoundError(`image of container ${c.name} is gone`);
  const baseConfig = images.config(base);
  const containerConfig = applyChanges(mergeConfig(o.config ?? {}, committedConfig(c, baseConfig.config ?? {})), o.changes ?? []);
  const { snapshotter, key } = manager.snapshot(c);
  const paused = o.pause !== false && c.state === 'running';
  const rt = manager.runtime(c);
  return images.withLease(async (lease) => {
    if (paused) {
      rt.pause(c.id);
      containers.update(c.id, { state: 'paused' });
    }
    let layer;
    try {
      layer = (await commitLayer(snapshotter, key, content, lease, { quiescent: !manager.isRunning(c), name: `commit-${c.id.slice(0, 12)}` }))!;
    } finally {
      if (paused) {
        rt.resume(c.id);
        containers.update(c.id, { state: 'running' });
      }
    }
    const created = creationTime();
    const history = [...(baseConfig.history ?? [])];
    history.push({
      created,
      // docker's commit records the container's Cmd alone (not its entrypoint).
      created_by: (c.spec.cmd ?? []).join(' '),
      ...(o.author ? { author: o.author } : {}),
      ...(o.message ? { comment: o.message } : {}),
    });
    const config: ImageConfig = {
      ...baseConfig,
      created,
      config: containerConfig,
      container: c.id,
      container_config: dockerConfig(c, baseConfig.config),
      rootfs: { type: 'layers', diff_ids: [...baseConfig.rootfs.diff_ids, layer.diffId] },
      history,
    };
    if (o.author) config.author = o.author;
    else delete config.author;
    if (o.message) config.comment = o.message;
    else delete config.comment;
    const rec = await writeImage(images, lease, { config, layers: [...images.layers(base), layer], parent: base.id });
    if (name) images.setName(name, rec.digest);
    return rec;
  });
}

/**
 * docker's commit: the new image runs as the container ran (its command, entrypoint, environment, working
 * directory, user, ports, labels, volumes, stop signal), not as its image would; `--change` applies on top.
 */
function committedConfig(c: Container, image: ContainerConfig): ContainerConfig {
  const s = c.spec;
  const cfg: ContainerConfig = { ...image };
  const set = <K extends keyof ContainerConfig>(k: K, v: ContainerConfig[K] | undefined) => {
    if (v === undefined) delete cfg[k];
    else cfg[k] = v;
  };
  set('User', s.user || undefined);
  set('ExposedPorts', s.exposedPorts && Object.keys(s.exposedPorts).length ? s.exposedPorts : undefined);
  set('Env', s.env.length ? [...s.env] : undefined);
  set('Entrypoint', s.entrypoint ?? undefined);
  set('Cmd', s.cmd ?? undefined);
  set('Volumes', configVolumes(s) ?? undefined);
  set('WorkingDir', s.workingDir && !(s.workingDir === '/' && !image.WorkingDir) ? s.workingDir : undefined);
  set('Labels', Object.keys(s.labels).length ? { ...s.labels } : undefined);
  if (s.healthcheck) set('Healthcheck', s.healthcheck);
  if (s.stopSignal !== 'SIGTERM' || image.StopSignal) set('StopSignal', s.stopSignal);
  return cfg;
}

/**
 * A commit body's config over the container's, as dockerd merges them (daemon/commit.go `merge`): a field the
 * body sets wins; Env, Labels, ExposedPorts and Volumes keep the container's entries the body does not name;
 * the container's Cmd is kept only when the body sets neither Entrypoint nor Cmd.
 */
function mergeConfig(user: ContainerConfig, current: ContainerConfig): ContainerConfig {
  const out: ContainerConfig = { ...current, ...Object.fromEntries(Object.entries(user).filter(([, v]) => v !== undefined && v !== null && v !== '')) };
  const key = (e: string) => e.split('=')[0];
  if (user.Env?.length) out.Env = [...user.Env, ...(current.Env ?? []).filter((e) => !user.Env!.some((u) => key(u) === key(e)))];
  else if (current.Env) out.Env = current.Env;
  if (user.Labels || current.Labels) out.Labels = { ...current.Labels, ...user.Labels };
  for (const k of ['ExposedPorts', 'Volumes'] as const) if (user[k] || current[k]) out[k] = { ...current[k], ...user[k] };
  if (user.Entrypoint?.length) {
    if (!user.Cmd?.length) delete out.Cmd;
  } else {
    if (!user.Cmd?.length) out.Cmd = current.Cmd;
    if (user.Entrypoint == null) out.Entrypoint = current.Entrypoint;
  }
  for (const k of Object.keys(out) as (keyof ContainerConfig)[]) if (out[k] === undefined) delete out[k];
  return out;
}

/**
 * Writes the container's flattened filesystem as a tar to `out`: a stream, or a file descriptor (a regular
 * file), which is written synchronously (and neither closed nor synced). A running container's is read
 * through its mounted rootfs, each opened file checked to be the one meant (the container may swap in
 * symlinks). A stopped container's is read straight from its layers' directories, merged as overlayfs would
 * show them (no mount), or, when its upper dir holds overlay state that merge does not model, through a
 * rootfs mounted here; nothing else can reach these, so the opened files are not checked, and should the
 * container be started meanwhile (by another ply), the export fails instead.
 */
export async function exportContainer(manager: ContainerManager, c: Container, out: Writable | number): Promise<void> {
  if (manager.isRunning(c)) {
    await withRootfs(manager, c, (rootfs) => writeTar(out, (w) => writeTree(rootfs, w)));
    return;
  }
  const layers = await stoppedRootfsLayers(manager, c);
  if (layers) await writeTar(out, (w) => writeMergedTree(layers, w, { quiescent: true }));
  else await withRootfs(manager, c, (rootfs) => writeTar(out, (w) => writeTree(rootfs, w, { quiescent: true })));
  const now = manager.stores.containers.get(c.id);
  if (now && (manager.isRunning(now) || now.startedAt !== c.startedAt)) {
    throw new ConflictError(`container ${c.name} was started while being exported; export it again`);
  }
}

/**
 * The directories overlayfs stacks for a stopped container's rootfs, top first (upper, init, the image's
 * layers, unpacked if needed), or null when the upper dir holds overlay state writeMergedTree does not model.
 */
async function stoppedRootfsLayers(manager: ContainerManager, c: Container): Promise<string[] | null> {
  if (!manager.stores.images.get(c.image)) throw new NotFoundError(`image of container ${c.name} is gone`);
  const { snapshotter, key, parent } = manager.snapshot(c);
  return snapshotter.mergeLayers(key, parent);
}

/** Runs `fill` with a tar writer on `out` (a descriptor: synchronous writes; a stream: piped) and finishes it. */
async function writeTar(out: Writable | number, fill: (w: TreeOutput) => Promise<void>): Promise<void> {
  if (typeof out === 'number') {
    const writer = new TarFdWriter(out);
    try {
      await fill(writer);
      await writer.finish();
    } catch (e) {
      writer.destroy(e as Error);
      throw e;
    }
    return;
  }
  const writer = new TarWriter();
  const produce = (async () => {
    await fill(writer);
    await writer.finish();
  })();
  produce.catch((e: unknown) => writer.destroy(e as Error));
  await pipeline(writer.stream, out);
  await produce;
}
