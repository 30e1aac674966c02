// A build's steps against the caches: the local build cache and imported ones (--cache-from) are asked first, a
// miss runs the step and records its image under the step's key, --explain-cache says why a step missed, and the
// steps are exported at the end (--cache-to). Remote caches load only when a build names one.
import type { ImageRecord, ImageStore } from '../image/store.js';
import type { Lease } from '../content/lease.js';
import type { HistoryEntry, ImageConfig } from '../oci/types.js';
import { creationTime, writeImage } from '../image/write.js';
import type { Stores } from '../stores.js';
import { BuildCache, stepKey } from './cache.js';
import { BuildError } from './errors.js';
import type { BuildLogger } from './output.js';
import type { CacheExportSpec, CacheLocation, CacheRecord, ImportedCache } from './remote-cache.js';
import { KEYS_ANNOTATION, recordedKeys, type ImageCacheSources } from './image-cache.js';
import { layersOf, summarizeParts, type State, type StepInputs, type StepResult } from './step.js';

/** A step's image config: its parent's plus the step's container config, history entry and layer. */
function stepConfig(base: ImageConfig, r: StepResult, history: HistoryEntry): ImageConfig {
  const author = r.author ?? base.author;
  return {
    created: history.created,
    ...(author ? { author } : {}),
    architecture: base.architecture,
    ...(base.variant ? { variant: base.variant } : {}),
    os: base.os,
    ...(base['os.version'] ? { 'os.version': base['os.version'] } : {}),
    config: r.containerConfig,
    rootfs: { type: 'layers', diff_ids: [...base.rootfs.diff_ids, ...(r.layer ? [r.layer.diffId] : [])] },
    history: [...(base.history ?? []), history],
  };
}

/** SOURCE_DATE_EPOCH from --build-arg, else from the environment: whole seconds, or a BuildError. */
export function sourceDateEpoch(buildArgs: Record<string, string>): number | undefined {
  const v = buildArgs.SOURCE_DATE_EPOCH ?? process.env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return undefined;
  if (!/^[0-9]{1,15}$/.test(v)) throw new BuildError(`invalid SOURCE_DATE_EPOCH '${v}': expected whole seconds since the epoch`);
  return Number(v);
}

export interface StepCacheOptions {
  noCache?: boolean;
  explainCache?: boolean;
  /**
   * SOURCE_DATE_EPOCH: every `created` of the config and history is this time, and it is part of every step key
   * (a step cached without it has other times).
   */
  sde?: number;
  log: BuildLogger;
  warn?: (line: string) => void;
  /** The build's lease: what its steps write is held against GC. */
  lease: Lease;
}

export class StepCache {
  private readonly cache: BuildCache;
  private readonly images: ImageStore;
  private readonly hits: string[] = [];
  /** Imported caches (--cache-from), in the order given. */
  private readonly imported: ImportedCache[] = [];
  /** Images whose steps this build may reuse (docker's classic --cache-from). */
  private imageSources: ImageCacheSources | undefined;
  /** Every step's key and result, in build order, for --cache-to. */
  private readonly records: { key: string; stage: number; state: State }[] = [];
  /** Images the steps of this build produced (not from a cache): --explain-cache's "the step before ran". */
  private readonly builtHere = new Set<string>();
  /** Steps that ran (not from a cache). */
  executed = 0;

  constructor(
    stores: Stores,
    private readonly o: StepCacheOptions,
  ) {
    this.cache = new BuildCache(stores.db);
    this.images = stores.images;
  }

  /** --cache-from: opens each cache (a cache that cannot be read is a warning). */
  async importFrom(locations: CacheLocation[]): Promise<void> {
    const { ImportedCache, describeCacheLocation } = await import('./remote-cache.js');
    for (const loc of locations) {
      this.o.log.info(`importing cache manifest from ${describeCacheLocation(loc)}`);
      const c = await ImportedCache.open(loc, (line) => this.o.warn?.(line));
      if (c) this.imported.push(c);
    }
  }

  /** docker's classic --cache-from: images in the store whose steps this build may reuse. */
  async importImages(images: ImageRecord[]): Promise<void> {
    const { ImageCacheSources } = await import('./image-cache.js');
    this.imageSources = new ImageCacheSources(this.images, images);
  }

  /** Records an image made outside the steps (a scratch base) under `key`, so that `builder prune` removes it. */
  put(key: string, digest: string): void {
    this.cache.put(key, digest);
  }

  /** Reuses the cached result of a step of `stage`, or runs `execute` and records its image under the step's key. */
  async cached(state: State, inputs: StepInputs, stage: number, execute: () => Promise<StepResult>, args = state.args): Promise<State> {
    const sde = this.o.sde;
    const key = sde === undefined ? inputs.key : stepKey([inputs.key, `SOURCE_DATE_EPOCH=${sde}`]);
    if (sde !== undefined) inputs = { ...inputs, parts: [...inputs.parts, ['SOURCE_DATE_EPOCH', String(sde)]] };
    const log = this.o.log;
    if (!this.o.noCache) {
      const hit = this.cache.get(key);
      const rec = hit ? this.images.get(hit) : undefined;
      if (rec && this.images.content.has(rec.id)) {
        this.hits.push(key);
        log.cached();
        log.done(rec.id);
        return this.recorded(key, stage, { image: rec, config: this.images.config(rec), args });
      }
      for (const c of this.imported) {
        if (!c.has(key)) continue;
        const step = await c.lookup(key);
        if (!step) continue;
        log.cached();
        log.done(step.configDigest);
        const image: ImageRecord = {
          digest: step.manifest.digest,
          id: step.configDigest,
          mediaType: step.manifest.mediaType,
          size: step.manifest.bytes.length,
          created: step.config.created ?? null,
          parent: null,
          added: 0,
        };
        return this.recorded(key, stage, { image, config: step.config, args, remote: step });
      }
      const restored = this.imageSources?.match(state.config, key);
      if (restored) {
        // docker's restoreCachedImage: the step's image again, from the source image's history entry and layer.
        await this.local(state);
        const after = inputs.after ?? { containerConfig: state.config.config ?? {} };
        const config = stepConfig(state.config, { ...after, createdBy: restored.history.created_by ?? '', layer: restored.layer }, restored.history);
        const layers = [...layersOf(this.images, state), ...(restored.layer ? [restored.layer] : [])];
        const rec = await writeImage(this.images, this.o.lease, { config, layers, parent: state.image.id, annotations: this.keysAfter(state, key) });
        this.cache.put(key, rec.digest, { parent: inputs.parent, instruction: inputs.instruction, parts: summarizeParts(inputs.parts) });
        log.cached();
        log.done(rec.id);
        return this.recorded(key, stage, { image: rec, config, layers, args });
      }
    }
    if (this.o.explainCache) log.explain(this.o.noCache ? 'cache disabled (--no-cache)' : this.explainMiss(inputs));
    // The step runs on its parent's filesystem: a parent from an imported cache is pulled now.
    await this.local(state);
    const r = await execute();
    this.executed++;
    const history: HistoryEntry = {
      created: creationTime(sde),
      created_by: r.createdBy,
      comment: 'buildkit.dockerfile.v0',
      ...(r.layer ? {} : { empty_layer: true }),
    };
    const config = stepConfig(state.config, r, history);
    const layers = [...layersOf(this.images, state), ...(r.layer ? [r.layer] : [])];
    const rec = await writeImage(this.images, this.o.lease, { config, layers, parent: state.image.id, annotations: this.keysAfter(state, key) });
    this.cache.put(key, rec.digest, { parent: inputs.parent, instruction: inputs.instruction, parts: summarizeParts(inputs.parts) });
    this.builtHere.add(rec.id);
    log.done(rec.id);
    return this.recorded(key, stage, { image: rec, config, layers, args });
  }

  /** The manifest annotation naming the step keys of `state`'s history and then `key` (see image-cache.ts). */
  private keysAfter(state: State, key: string): Record<string, string> {
    const keys = recordedKeys(this.images.manifest(state.image).annotations, state.config.history?.length ?? 0);
    return { [KEYS_ANNOTATION]: JSON.stringify([...keys, key]) };
  }

  private recorded(key: string, stage: number, state: State): State {
    this.records.push({ key, stage, state });
    return state;
  }

  /** A step's image into the store, when it came from an imported cache (its missing layers pulled now). */
  async local(state: State): Promise<void> {
    const step = state.remote;
    if (!step) return;
    const rec = await step.materialize(this.images);
    state.image = rec;
    state.layers = undefined;
    state.remote = undefined;
    this.cache.put(step.key, rec.digest);
  }

  /** The end of a build: the entries used are touched, imported steps now all here are kept locally too. */
  async finish(): Promise<void> {
    this.cache.touch(this.hits);
    await this.keepImportedSteps();
  }

  /** Imported steps whose layers are all here now (below one that was pulled): recorded in the local cache too. */
  private async keepImportedSteps(): Promise<void> {
    if (!this.records.some((r) => r.state.remote)) return;
    const { parseManifestBlob } = await import('../transport/copy.js');
    for (const r of this.records) {
      const step = r.state.remote;
      if (!step) continue;
      const doc = parseManifestBlob(step.manifest);
      if ('layers' in doc && doc.layers.every((l) => this.images.content.has(l.digest))) await this.local(r.state);
    }
  }

  /** --cache-to: min exports the steps of the stages in `chain` (the result's and those it is FROM), max every step. */
  async exportTo(spec: CacheExportSpec, chain: Set<number>): Promise<void> {
    const { exportCache, describeCacheLocation } = await import('./remote-cache.js');
    const records: CacheRecord[] = this.records
      .filter((r) => spec.mode === 'max' || chain.has(r.stage))
      .map((r) => ({
        key: r.key,
        createdBy: r.state.config.history?.[r.state.config.history.length - 1]?.created_by ?? '',
        ...(r.state.remote ? { remote: r.state.remote } : { local: r.state.image }),
      }));
    const where = describeCacheLocation(spec.location);
    try {
      const res = await exportCache(this.images, spec, records);
      this.o.log.info(`exported cache to ${where}: ${res.steps} steps (${res.digest})`);
    } catch (e) {
      if (spec.ignoreError) this.o.warn?.(`WARNING: failed to export cache to ${where}: ${(e as Error).message}`);
      else throw new BuildError(`failed to export cache to ${where}: ${(e as Error).message}`);
    }
  }

  /** Why a step missed the cache: what differs from the steps cached on the same parent, or why none is there. */
  private explainMiss(inputs: StepInputs): string {
    const short = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);
    const here = this.cache.inputsOn(inputs.parent);
    if (here.length === 0) {
      if (this.builtHere.has(inputs.parent)) return `the step before it ran again (its result ${short(inputs.parent)} is new)`;
      const elsewhere = this.cache.parentsOf(inputs.instruction);
      const base = `nothing is cached on its parent image ${short(inputs.parent)}`;
      return elsewhere.length > 0
        ? `${base}; this instruction is cached on another parent (${elsewhere.slice(0, 3).map(short).join(', ')}): the base image or an earlier step changed`
        : `${base} (a new or updated base image, or a pruned cache)`;
    }
    const same = here.filter((e) => e.instruction === inputs.instruction);
    if (same.length === 0) {
      const was = [...new Set(here.map((e) => e.instruction))].slice(0, 3).map((i) => JSON.stringify(i));
      return `no step with this instruction is cached on its parent (there: ${was.join(", ")})`;
    }
    // The most recently used entry with the same instruction: which named parts differ.
    const now = summarizeParts(inputs.parts);
    const prev = same[0]!.parts;
    const changed = [...new Set([...Object.keys(now), ...Object.keys(prev)])].filter((k) => now[k] !== prev[k]);
    if (changed.length === 0) return 'an identical step was cached, but its image is gone (removed or pruned)';
    return `changed: ${changed.map((k) => (prev[k] === undefined ? `${k} (new)` : now[k] === undefined ? `${k} (gone)` : k)).join(', ')}`;
  }
}
