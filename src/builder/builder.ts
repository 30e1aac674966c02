// The Dockerfile builder: runs the stages the target needs, one step at a time, each step's result an (untagged,
// intermediate) image whose manifest the build cache records under the step's key:
//
//   key = sha256(parent image ID, the instruction after variable substitution, the build args it sees,
//                for COPY/ADD the sources' checksum (content, modes, link targets; never mtimes))
//
// A hit reuses the step's image (layer, config and its `created` time) without running anything, so a fully
// cached build yields the same image ID. RUN runs in a container from the stage's current image (the stage's
// env, ARGs, workdir, user and SHELL), its writable layer becomes the step's layer (none when it changed
// nothing). COPY/ADD write their layer directly (no container). WORKDIR creates its directory in a layer of its
// own only when it does not exist yet. Other instructions change the config only (an `empty_layer` history entry).
//
// Modules needed only when something must actually be built (containers, snapshots, layer writing) are
// imported on first use: a fully cached rebuild loads none of them.

import fs from 'node:fs';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import type { ContainerManager } from '../container/manager.js';
import type { Ulimit } from '../container/store.js';
import { parseRunMount, type RunMount } from '../dockerfile/mounts.js';
import type { CacheMounts } from './cachemounts.js';
import type { ResolvedMounts } from './runmounts.js';
import type { CacheExportSpec, CacheLocation, CacheRecord, ImportedCache, RemoteStep } from './remote-cache.js';
import { KEYS_ANNOTATION, recordedKeys, type ImageCacheSources } from './image-cache.js';
import { BuildError } from './errors.js';
import { PlyError } from '../errors.js';
import { applyConfig } from '../dockerfile/config.js';
import { expandVariables, expandWords, parseKeyValues } from '../dockerfile/shell.js';
import { ImageStore, type ImageRecord } from '../image/store.js';
import type { LayerRecord } from '../layer/types.js';
import type { Lease } from '../content/lease.js';
import { creationTime, writeImage } from '../image/write.js';
import { formatPlatform, hostPlatform, parsePlatform } from '../oci/platform.js';
import { parseNormalized } from '../reference/reference.js';
import type { ContainerConfig, HistoryEntry, ImageConfig, Platform } from '../oci/types.js';
import { BuildCache, stepKey } from './cache.js';
import { loadIgnoreRules, SourceTree, type ResolvedSource } from './context.js';
import { BUILD_PID_LABEL, removeStaleWorkDirs } from './workdirs.js';
import type { CopyItem, CopyRequest } from './copy.js';
import { parseDockerfile, parseHeredocWord, parseTrigger, chompHeredocContent, type Dockerfile, type ParsedCommand, type Stage } from '../dockerfile/parser.js';
import type { BuildLogger } from './output.js';
import type { RootfsViews } from './rootfs.js';
import type { Stores } from '../stores.js';
import { removeTree } from '../util/fs.js';

export { BuildError };

export interface BuildOptions {
  contextDir: string;
  /** The Dockerfile's text. */
  dockerfile: string;
  /** Where it was read from (for `<Dockerfile>.dockerignore`); undefined for stdin. */
  dockerfilePath?: string;
  /** Full names to tag the result with (already validated). */
  tags?: string[];
  buildArgs?: Record<string, string>;
  target?: string;
  noCache?: boolean;
  pull?: boolean;
  labels?: Record<string, string>;
  /** The network RUN steps use (docker's default: the default bridge). */
  network?: string;
  /** `--secret`: values by id, for RUN --mount=type=secret (never stored). */
  secrets?: Record<string, Buffer>;
  /** `--ssh`: agent sockets by id, for RUN --mount=type=ssh. */
  ssh?: Record<string, string>;
  /** `--add-host HOST:IP` for RUN steps. */
  addHosts?: string[];
  /** `--ulimit` for RUN steps. */
  ulimits?: Ulimit[];
  /** `--cache-from`: caches whose steps this build may reuse. */
  cacheFrom?: CacheLocation[];
  /** docker's classic `--cache-from IMAGE`: images in the store whose steps this build may reuse. */
  cacheFromImages?: ImageRecord[];
  /** `--cache-to`: where this build's steps are exported. */
  cacheTo?: CacheExportSpec[];
  /** `--platform`: the native one builds; another only when an emulator for it is registered (binfmt_misc). */
  platform?: string;
  /** `--explain-cache`: each step that misses the cache says why (logger.explain). */
  explainCache?: boolean;
  logger: BuildLogger;
  /** Warnings (unused build args, …). */
  warn?: (line: string) => void;
}

export interface BuildResult {
  image: ImageRecord;
  tags: string[];
  /** Steps that ran (not from the cache). */
  executed: number;
}

const DEFAULT_SHELL = ['/bin/sh', '-c'];
const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const PROXY_ARGS = new Set(['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']);
const TAIL_LINES = 10;

interface State {
  /** The step's image; while `remote` is set, only its IDs are real (nothing of it is in the store yet). */
  image: ImageRecord;
  config: ImageConfig;
  layers?: LayerRecord[];
  /** A step found in an imported cache whose layers are not pulled yet (local() pulls them). */
  remote?: RemoteStep;
  /** ARGs declared in this stage, in order, with their values (undefined: declared without one). */
  args: Map<string, string | undefined>;
}

/**
 * What a step's cache key is made of: its parent image and named parts (the instruction, the sources' checksum,
 * the network, each mount, …). Kept with the cache entry so that a later miss can say which part changed.
 */
interface StepInputs {
  key: string;
  parent: string;
  instruction: string;
  parts: [name: string, value: string | undefined][];
  /** The config the step leaves (default: its parent's), to restore it from a --cache-from image. */
  after?: Pick<StepResult, 'containerConfig' | 'author'>;
}

interface StepResult {
  containerConfig: ContainerConfig;
  createdBy: string;
  layer?: LayerRecord;
  author?: string;
}

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

/** Go's %q of a string list, as buildkit's history shows CMD and ENTRYPOINT. */
function goQuoteList(list: readonly string[] | null | undefined): string {
  return `[${(list ?? []).map((s) => JSON.stringify(s)).join(' ')}]`;
}

/** Only `$VAR` / `${…}` expansions in heredoc content: quotes and backslashes stay as written. */
function expandHeredoc(data: string, env: Record<string, string>): string {
  return data.replace(/\\\$|\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*/g, (m) => (m === '\\$' ? '$' : expandVariables(m, env)));
}

/** SOURCE_DATE_EPOCH from --build-arg, else from the environment: whole seconds, or a BuildError. */
function sourceDateEpoch(buildArgs: Record<string, string>): number | undefined {
  const v = buildArgs.SOURCE_DATE_EPOCH ?? process.env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === '') return undefined;
  if (!/^[0-9]{1,15}$/.test(v)) throw new BuildError(`invalid SOURCE_DATE_EPOCH '${v}': expected whole seconds since the epoch`);
  return Number(v);
}


/** Instructions BuildKit shows as numbered steps (the others only change the config). */
const VERTEX_KINDS = new Set(['RUN', 'COPY', 'ADD', 'WORKDIR']);

/** A FROM name as BuildKit prints it (docker.io/library/busybox:latest). */
function normalizedBase(name: string): string {
  try {
    const r = parseNormalized(name);
    return `${r.domain}/${r.path}${r.digest ? `@${r.digest}` : `:${r.tag ?? 'latest'}`}`;
  } catch {
    return name;
  }
}

/** The name --explain-cache gives a RUN mount's key part (`bind target=/src …` → `--mount bind /src`). */
function mountPartName(part: string): string {
  const type = /^\S+/.exec(part)?.[0] ?? 'mount';
  const target = /target=(\S+)/.exec(part)?.[1];
  return `--mount ${type}${target ? ` ${target}` : ''}`;
}

/** Named key parts as short digests (what the cache keeps to explain later misses; never the values). */
function summarizeParts(parts: [string, string | undefined][]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, v] of parts) if (v !== undefined) out[name] = createHash('sha256').update(v).digest('hex').slice(0, 16);
  return out;
}

/**
 * The platform --platform asks for: the host's, or another one when binfmt_misc has an emulator registered for
 * its architecture (RUN steps then run through it); anything else is a clear error.
 */
function targetPlatform(value: string, host: Platform): Platform {
  const list = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (list.length !== 1) throw new BuildError(`ply builds one platform at a time: --platform ${value} names ${list.length}`);
  const p = parsePlatform(list[0]!);
  if (p.architecture === host.architecture && (!p.variant || !host.variant || p.variant === host.variant)) return { ...host, ...p };
  if (emulatorRegistered(p.architecture)) return p;
  throw new BuildError(
    `cannot build for ${formatPlatform(p)}: ply builds for the native platform (${formatPlatform(host)}) unless an emulator for ${p.architecture} is registered (binfmt_misc, e.g. qemu-user-static)`,
  );
}

const QEMU_NAMES: Record<string, string> = { arm64: 'aarch64', amd64: 'x86_64', arm: 'arm', '386': 'i386', ppc64le: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

function emulatorRegistered(arch: string): boolean {
  const entry = `/proc/sys/fs/binfmt_misc/qemu-${QEMU_NAMES[arch] ?? arch}`;
  try {
    return fs.readFileSync(entry, 'utf8').startsWith('enabled');
  } catch {
    return false;
  }
}

export async function build(stores: Stores, opts: BuildOptions): Promise<BuildResult> {
  let df: Dockerfile;
  try {
    df = parseDockerfile(opts.dockerfile);
  } catch (e) {
    if (e instanceof PlyError) e.exitCode = 1;
    throw e;
  }
  const b = new Builder(stores, opts, df);
  try {
    const r = await b.run();
    opts.logger.close(true);
    return r;
  } catch (e) {
    opts.logger.close(false);
    throw e;
  } finally {
    await b.cleanup();
  }
}

class Builder {
  private readonly cache: BuildCache;
  private readonly images: ImageStore;
  private readonly log: BuildLogger;
  private readonly buildArgs: Record<string, string>;
  private readonly consumed = new Set<string>();
  private readonly stageResults = new Map<number, State>();
  private platform = hostPlatform();
  private metaArgs = new Map<string, string | undefined>();
  private lease: Lease | undefined;
  private context: SourceTree | undefined;
  private views: RootfsViews | undefined;
  private tmpDir: string | undefined;
  private stepNo = 0;
  private total = 0;
  private currentStage = 0;
  private interrupted = false;
  /** Stops what is running now (the RUN container), on SIGINT/SIGTERM. */
  private stopCurrent: (() => void) | undefined;
  private readonly onSignal = () => {
    this.interrupted = true;
    this.stopCurrent?.();
  };
  private executed = 0;
  private readonly hits: string[] = [];
  /** Imported caches (--cache-from), in the order given. */
  private imported: ImportedCache[] = [];
  /** Images whose steps this build may reuse (docker's classic --cache-from). */
  private imageSources: ImageCacheSources | undefined;
  /** Every step's key and result, in build order, for --cache-to. */
  private readonly records: { key: string; stage: number; state: State }[] = [];
  private bases: string[] = [];

  private containerManager: ContainerManager | undefined;
  /**
   * SOURCE_DATE_EPOCH: every `created` of the config and history is this time, file times above it in new layers
   * are clamped to it, and it is part of every step key (a step cached without it has other times).
   */
  private sde: number | undefined;
  /** Images the steps of this build produced (not from a cache): --explain-cache's "the step before ran". */
  private readonly builtHere = new Set<string>();
  private readonly vertices = new Map<number, { name: string; total: number; fromImage: boolean }>();

  constructor(
    private readonly stores: Stores,
    private readonly opts: BuildOptions,
    private readonly df: Dockerfile,
  ) {
    this.cache = new BuildCache(stores.db);
    this.images = stores.images;
    this.log = opts.logger;
    this.buildArgs = { ...(opts.buildArgs ?? {}) };
  }

  /** The automatic platform ARGs (buildkit's TARGETPLATFORM, BUILDARCH, …): ply builds for the host. */
  private automaticArgs(): Map<string, string> {
    const p = this.platform;
    const m = new Map<string, string>();
    for (const prefix of ['TARGET', 'BUILD']) {
      m.set(`${prefix}PLATFORM`, formatPlatform(p));
      m.set(`${prefix}OS`, p.os);
      m.set(`${prefix}ARCH`, p.architecture);
      m.set(`${prefix}VARIANT`, p.variant ?? '');
    }
    return m;
  }

  private checkInterrupted(): void {
    if (this.interrupted) throw new BuildError('build interrupted', [], 130);
  }

  async run(): Promise<BuildResult> {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
    this.sde = sourceDateEpoch(this.buildArgs);
    if (this.opts.platform !== undefined) this.platform = targetPlatform(this.opts.platform, this.platform);
    if (this.buildArgs.SOURCE_DATE_EPOCH !== undefined) this.consumed.add('SOURCE_DATE_EPOCH');
    // Global ARGs: in scope for FROM lines only.
    const auto = this.automaticArgs();
    const metaEnv: Record<string, string> = Object.fromEntries(auto);
    for (const cmd of this.df.metaArgs) {
      for (const a of cmd.args) {
        this.consumed.add(a.key);
        let v: string | undefined;
        if (Object.hasOwn(this.buildArgs, a.key)) v = this.buildArgs[a.key];
        else if (a.value !== undefined) v = this.expand(a.value, metaEnv, cmd.instruction.line);
        else v = auto.get(a.key);
        this.metaArgs.set(a.key, v);
        if (v !== undefined) metaEnv[a.key] = v;
      }
    }
    const stages = this.df.stages;
    const bases = stages.map((s) => {
      const base = this.expand(s.from.base, metaEnv, s.from.instruction.line);
      if (base === '') throw new BuildError(`base name (${s.from.base}) should not be blank`);
      return base;
    });
    const platforms = stages.map((s) => (s.from.platform ? this.expand(s.from.platform, metaEnv, s.from.instruction.line) : undefined));
    let target = stages[stages.length - 1]!;
    if (this.opts.target !== undefined) {
      const t = this.opts.target.toLowerCase();
      const found = stages.find((s) => s.name === t);
      if (!found) throw new BuildError(`failed to reach build target ${this.opts.target} in Dockerfile`);
      target = found;
    }
    // The stages the target needs: FROM <stage> and COPY --from=<stage>, transitively.
    const needed = new Set<number>();
    const visit = (s: Stage) => {
      if (needed.has(s.index)) return;
      needed.add(s.index);
      const baseStage = this.stageByName(bases[s.index]!, s.index);
      if (baseStage) visit(baseStage);
      for (const c of s.commands) {
        const froms: string[] = [];
        if ((c.kind === 'COPY' || c.kind === 'ADD') && c.from !== undefined) froms.push(c.from);
        if (c.kind === 'RUN') {
          for (const m of c.mounts) {
            try {
              const from = parseRunMount(m, (w) => w).from;
              if (from !== undefined) froms.push(from);
            } catch {
              // reported when the step runs
            }
          }
        }
        for (const f of froms) {
          let from: string;
          try {
            from = expandVariables(f, metaEnv);
          } catch {
            continue;
          }
          const dep = this.stageRef(from, s.index);
          if (dep) visit(dep);
        }
      }
    };
    visit(target);
    const order = stages.filter((s) => needed.has(s.index));
    this.total = order.reduce((n, s) => n + 1 + s.commands.length, 0);
    this.planVertices(stages, order, bases);
    this.lease = this.images.lease();
    this.bases = bases;
    if (!this.opts.noCache && this.opts.cacheFrom?.length) {
      const { ImportedCache, describeCacheLocation } = await import('./remote-cache.js');
      for (const loc of this.opts.cacheFrom) {
        this.log.info(`importing cache manifest from ${describeCacheLocation(loc)}`);
        const c = await ImportedCache.open(loc, (line) => this.opts.warn?.(line));
        if (c) this.imported.push(c);
      }
    }
    if (!this.opts.noCache && this.opts.cacheFromImages?.length) {
      const { ImageCacheSources } = await import('./image-cache.js');
      this.imageSources = new ImageCacheSources(this.images, this.opts.cacheFromImages);
    }

    for (const stage of order) {
      this.currentStage = stage.index;
      let state = await this.from(stage, bases[stage.index]!, platforms[stage.index]);
      for (const [i, cmd] of stage.commands.entries()) state = await this.step(state, cmd, true, stage, i);
      this.stageResults.set(stage.index, state);
    }
    let final = this.stageResults.get(target.index)!;
    await this.local(final);
    const labels = this.opts.labels ?? {};
    if (Object.keys(labels).length > 0) {
      // --label: merged into the final config, no history entry, the step's time kept: deterministic.
      const config: ImageConfig = structuredClone(final.config);
      config.config = { ...(config.config ?? {}), Labels: { ...(config.config?.Labels ?? {}), ...labels } };
      const annotations = this.images.manifest(final.image).annotations?.[KEYS_ANNOTATION];
      const rec = await writeImage(this.images, this.lease, { config, layers: this.layersOf(final), parent: final.image.id, ...(annotations ? { annotations: { [KEYS_ANNOTATION]: annotations } } : {}) });
      final = { ...final, image: rec, config };
    }
    const unused = Object.keys(this.buildArgs).filter((k) => !this.consumed.has(k) && !PROXY_ARGS.has(k));
    if (unused.length > 0) this.opts.warn?.(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed`);
    const tags = this.opts.tags ?? [];
    for (const t of tags) {
      this.images.setName(t, final.image.digest);
      this.stores.events.emit('image', 'tag', final.image.id, { ...(this.images.config(final.image).config?.Labels ?? {}), name: ImageStore.display(t) });
    }
    this.cache.touch(this.hits);
    await this.keepImportedSteps();
    for (const spec of this.opts.cacheTo ?? []) await this.exportCache(spec, target);
    return { image: final.image, tags, executed: this.executed };
  }

  /** A step's image into the store, when it came from an imported cache (its missing layers pulled now). */
  private async local(state: State): Promise<void> {
    const step = state.remote;
    if (!step) return;
    const rec = await step.materialize(this.images);
    state.image = rec;
    state.layers = undefined;
    state.remote = undefined;
    this.cache.put(step.key, rec.digest);
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

  private async exportCache(spec: CacheExportSpec, target: Stage): Promise<void> {
    const { exportCache, describeCacheLocation } = await import('./remote-cache.js');
    // min: the steps of the result's stage and the stages it is FROM; max: every step built.
    const chain = new Set<number>();
    for (let s: Stage | undefined = target; s && !chain.has(s.index); s = this.stageByName(this.bases[s.index]!, s.index)) chain.add(s.index);
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
      this.log.info(`exported cache to ${where}: ${res.steps} steps (${res.digest})`);
    } catch (e) {
      if (spec.ignoreError) this.opts.warn?.(`WARNING: failed to export cache to ${where}: ${(e as Error).message}`);
      else throw new BuildError(`failed to export cache to ${where}: ${(e as Error).message}`);
    }
  }

  async cleanup(): Promise<void> {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
    this.views?.release();
    if (this.tmpDir) removeTree(this.tmpDir);
    this.lease?.release();
  }

  // -------------------------------------------------------------------------------------------------------
  // Helpers

  private expand(word: string, env: Record<string, string>, line?: number): string {
    try {
      return expandVariables(word, env);
    } catch (e) {
      throw new BuildError(line !== undefined ? `dockerfile parse error on line ${line}: ${(e as Error).message}` : (e as Error).message);
    }
  }

  /** An earlier stage by (case-insensitive) name. */
  private stageByName(name: string, before: number): Stage | undefined {
    const n = name.toLowerCase();
    return this.df.stages.find((s) => s.index < before && s.name === n);
  }

  /** COPY --from: an earlier stage by name or index. */
  private stageRef(from: string, before: number): Stage | undefined {
    if (/^\d+$/.test(from)) {
      const i = Number(from);
      return i < before ? this.df.stages[i] : undefined;
    }
    return this.stageByName(from, before);
  }

  /** Containers for RUN steps; loaded on first use (a fully cached build never needs them). */
  private async manager(): Promise<ContainerManager> {
    if (!this.containerManager) {
      const { ContainerManager } = await import('../container/manager.js');
      this.containerManager = new ContainerManager(this.stores);
    }
    return this.containerManager;
  }

  private workDir(): string {
    if (!this.tmpDir) {
      const base = path.join(this.stores.root, 'build');
      fs.mkdirSync(base, { recursive: true, mode: 0o700 });
      removeStaleWorkDirs(base);
      this.tmpDir = fs.mkdtempSync(path.join(base, `${process.pid}-`));
    }
    return this.tmpDir;
  }

  private async rootfsViews(): Promise<RootfsViews> {
    if (!this.views) {
      const { RootfsViews } = await import('./rootfs.js');
      this.views = new RootfsViews(this.stores, this.workDir());
    }
    return this.views;
  }

  private layersOf(state: State): LayerRecord[] {
    if (state.remote) throw new Error('internal: layers of a step not pulled from its cache');
    state.layers ??= this.images.layers(state.image);
    return state.layers;
  }

  /** The stage's filesystem, read-only (null when it has no layers). */
  private async rootfs(state: State): Promise<string | null> {
    await this.local(state);
    const layers = this.layersOf(state);
    if (layers.length === 0) return null;
    return (await this.rootfsViews()).get(layers);
  }

  /** Declared ARGs with values. */
  private argValues(state: State): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of state.args) if (v !== undefined) out[k] = v;
    return out;
  }

  /** The variables instructions are expanded with: ARG values, overridden by the config's ENV. */
  private expansionEnv(state: State): Record<string, string> {
    const env = this.argValues(state);
    for (const e of state.config.config?.Env ?? []) {
      const i = e.indexOf('=');
      if (i > 0) env[e.slice(0, i)] = e.slice(i + 1);
    }
    return env;
  }

  private stateOf(rec: ImageRecord, args: Map<string, string | undefined>): State {
    return { image: rec, config: this.images.config(rec), args };
  }

  // -------------------------------------------------------------------------------------------------------
  // FROM

  private async from(stage: Stage, base: string, platformArg: string | undefined): Promise<State> {
    this.log.step(++this.stepNo, this.total, stage.from.instruction.original, this.vertexOf(stage, -1, `FROM ${normalizedBase(base)}`));
    const platform = platformArg ? parsePlatform(platformArg) : this.opts.platform !== undefined ? this.platform : undefined;
    let state: State;
    const ref = base.toLowerCase() === 'scratch' ? undefined : this.stageByName(base, stage.index);
    if (base.toLowerCase() === 'scratch') {
      state = { ...(await this.scratch(platform ?? this.platform)), args: new Map() };
    } else if (ref) {
      const done = this.stageResults.get(ref.index);
      if (!done) throw new BuildError(`stage ${ref.name} was not built`);
      state = { image: done.image, config: structuredClone(done.config), layers: done.layers, args: new Map(), ...(done.remote ? { remote: done.remote } : {}) };
    } else {
      state = this.stateOf(await this.baseImage(base, platform), new Map());
    }
    this.log.done(state.image.id);
    const triggers = state.config.config?.OnBuild ?? [];
    if (triggers.length > 0) {
      // The triggers run now, in this build; they are not passed on to this image's children.
      state.config = structuredClone(state.config);
      state.config.config!.OnBuild = null;
      this.log.info(`# Executing ${triggers.length} build trigger${triggers.length > 1 ? 's' : ''}`);
      for (const t of triggers) {
        let cmd: ParsedCommand;
        try {
          cmd = parseTrigger(t);
        } catch (e) {
          throw new BuildError(`invalid ONBUILD trigger ${JSON.stringify(t)}: ${(e as Error).message}`);
        }
        state = await this.step(state, cmd, false);
      }
    }
    return state;
  }

  private async scratch(platform: Platform): Promise<Omit<State, 'args'>> {
    const config: ImageConfig = {
      architecture: platform.architecture,
      ...(platform.variant ? { variant: platform.variant } : {}),
      os: platform.os,
      config: { Env: [DEFAULT_PATH], WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [] },
      history: [],
    };
    const rec = await writeImage(this.images, this.lease!, { config, layers: [] });
    // Recorded like a step, so that `builder prune` removes it with the rest.
    this.cache.put(stepKey(['scratch', formatPlatform(platform)]), rec.digest);
    return { image: rec, config, layers: [] };
  }

  private async baseImage(name: string, platform: Platform | undefined): Promise<ImageRecord> {
    if (!this.opts.pull) {
      const local = this.images.lookup(name);
      if (local && platform) {
        // FROM --platform: the local image only if it is for that platform, else the registry's variant.
        const c = this.images.config(local);
        if (c.os === platform.os && c.architecture === platform.architecture && (!platform.variant || !c.variant || c.variant === platform.variant)) return local;
      } else if (local) return local;
    }
    const { pullImage } = await import('../transport/distribution.js');
    try {
      const res = await pullImage(this.images, name, { platform: platform ? formatPlatform(platform) : undefined });
      return res.image;
    } catch (e) {
      throw new BuildError(`failed to resolve base image ${name}: ${(e as Error).message}`);
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Steps

  private async step(state: State, cmd: ParsedCommand, numbered: boolean, stage?: Stage, index = 0): Promise<State> {
    this.checkInterrupted();
    if (numbered) this.log.step(++this.stepNo, this.total, cmd.instruction.original, stage ? this.vertexOf(stage, index, cmd.instruction.original) : undefined);
    else this.log.trigger(cmd.instruction.original);
    try {
      return await this.dispatch(state, cmd);
    } catch (e) {
      if (e instanceof BuildError) throw e;
      if (e instanceof PlyError) throw new BuildError(e.message);
      throw e;
    }
  }

  /** Reuses the cached result of `key`, or runs `execute` and records its image under `key`. */
  private async cached(state: State, inputs: StepInputs, execute: () => Promise<StepResult>, args = state.args): Promise<State> {
    const key = this.sde === undefined ? inputs.key : stepKey([inputs.key, `SOURCE_DATE_EPOCH=${this.sde}`]);
    if (this.sde !== undefined) inputs = { ...inputs, parts: [...inputs.parts, ['SOURCE_DATE_EPOCH', String(this.sde)]] };
    if (!this.opts.noCache) {
      const hit = this.cache.get(key);
      const rec = hit ? this.images.get(hit) : undefined;
      if (rec && this.images.content.has(rec.id)) {
        this.hits.push(key);
        this.log.cached();
        this.log.done(rec.id);
        return this.recorded(key, this.stateOf(rec, args));
      }
      for (const c of this.imported) {
        if (!c.has(key)) continue;
        const step = await c.lookup(key);
        if (!step) continue;
        this.log.cached();
        this.log.done(step.configDigest);
        const image: ImageRecord = {
          digest: step.manifest.digest,
          id: step.configDigest,
          mediaType: step.manifest.mediaType,
          size: step.manifest.bytes.length,
          created: step.config.created ?? null,
          parent: null,
          added: 0,
        };
        return this.recorded(key, { image, config: step.config, args, remote: step });
      }
      const restored = this.imageSources?.match(state.config, key);
      if (restored) {
        // docker's restoreCachedImage: the step's image again, from the source image's history entry and layer.
        await this.local(state);
        const after = inputs.after ?? { containerConfig: state.config.config ?? {} };
        const config = stepConfig(state.config, { ...after, createdBy: restored.history.created_by ?? '', layer: restored.layer }, restored.history);
        const layers = [...this.layersOf(state), ...(restored.layer ? [restored.layer] : [])];
        const rec = await writeImage(this.images, this.lease!, { config, layers, parent: state.image.id, annotations: this.keysAfter(state, key) });
        this.cache.put(key, rec.digest, { parent: inputs.parent, instruction: inputs.instruction, parts: summarizeParts(inputs.parts) });
        this.log.cached();
        this.log.done(rec.id);
        return this.recorded(key, { image: rec, config, layers, args });
      }
    }
    if (this.opts.explainCache) this.log.explain(this.opts.noCache ? 'cache disabled (--no-cache)' : this.explainMiss(inputs));
    // The step runs on its parent's filesystem: a parent from an imported cache is pulled now.
    await this.local(state);
    const r = await execute();
    this.executed++;
    const history: HistoryEntry = {
      created: creationTime(this.sde),
      created_by: r.createdBy,
      comment: 'buildkit.dockerfile.v0',
      ...(r.layer ? {} : { empty_layer: true }),
    };
    const config = stepConfig(state.config, r, history);
    const layers = [...this.layersOf(state), ...(r.layer ? [r.layer] : [])];
    const rec = await writeImage(this.images, this.lease!, { config, layers, parent: state.image.id, annotations: this.keysAfter(state, key) });
    this.cache.put(key, rec.digest, { parent: inputs.parent, instruction: inputs.instruction, parts: summarizeParts(inputs.parts) });
    this.builtHere.add(rec.id);
    this.log.done(rec.id);
    return this.recorded(key, { image: rec, config, layers, args });
  }

  /** The manifest annotation naming the step keys of `state`'s history and then `key` (see image-cache.ts). */
  private keysAfter(state: State, key: string): Record<string, string> {
    const keys = recordedKeys(this.images.manifest(state.image).annotations, state.config.history?.length ?? 0);
    return { [KEYS_ANNOTATION]: JSON.stringify([...keys, key]) };
  }

  /**
   * A step's key from its parent, instruction and named parts (`before`: unnamed parts hashed between the parent
   * and the instruction, as keys always were).
   */
  private inputs(state: State, instruction: string, parts: [string, string | undefined][], before: string[] = []): StepInputs {
    return { key: stepKey([state.image.id, ...before, instruction, ...parts.map(([, v]) => v)]), parent: state.image.id, instruction, parts };
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

  /** BuildKit's vertex numbering for the stages this build runs: `[name n/total]` per stage. */
  private planVertices(all: Stage[], order: Stage[], bases: string[]): void {
    for (const s of order) {
      const base = bases[s.index]!;
      const fromImage = base.toLowerCase() !== 'scratch' && !this.stageByName(base, s.index);
      const total = (fromImage ? 1 : 0) + s.commands.filter((c) => VERTEX_KINDS.has(c.instruction.keyword)).length;
      // One stage: no name; unnamed stages of a multi-stage file are stage-N (as buildkit prints them).
      const name = all.length === 1 ? '' : (s.name ?? `stage-${s.index}`);
      this.vertices.set(s.index, { name, total, fromImage });
    }
  }

  /** The BuildKit label of a stage's FROM (`index` -1) or command; undefined for instructions with no vertex. */
  private vertexOf(stage: Stage, index: number, text: string): string | undefined {
    const v = this.vertices.get(stage.index);
    if (!v) return undefined;
    let n: number;
    if (index < 0) {
      if (!v.fromImage) return undefined;
      n = 1;
    } else {
      const cmd = stage.commands[index]!;
      if (!VERTEX_KINDS.has(cmd.instruction.keyword)) return undefined;
      n = (v.fromImage ? 1 : 0) + stage.commands.slice(0, index + 1).filter((c) => VERTEX_KINDS.has(c.instruction.keyword)).length;
    }
    const width = String(v.total).length;
    return `[${v.name ? `${v.name} ` : ''}${String(n).padStart(width)}/${v.total}] ${text}`;
  }

  private recorded(key: string, state: State): State {
    this.records.push({ key, stage: this.currentStage, state });
    return state;
  }

  private async dispatch(state: State, cmd: ParsedCommand): Promise<State> {
    const ins = cmd.instruction;
    switch (cmd.kind) {
      case 'ARG': {
        const args = new Map(state.args);
        const env = this.expansionEnv(state);
        const parts: string[] = [];
        for (const a of cmd.args) {
          this.consumed.add(a.key);
          let v: string | undefined;
          if (Object.hasOwn(this.buildArgs, a.key)) v = this.buildArgs[a.key];
          else if (a.value !== undefined) v = this.expand(a.value, env);
          else if (this.metaArgs.has(a.key)) v = this.metaArgs.get(a.key);
          else v = this.automaticArgs().get(a.key);
          args.delete(a.key);
          args.set(a.key, v);
          if (v !== undefined && !(state.config.config?.Env ?? []).some((e) => e.startsWith(`${a.key}=`))) env[a.key] = v;
          parts.push(v === undefined ? a.key : `${a.key}=${v}`);
        }
        const createdBy = `ARG ${parts.join(' ')}`;
        const containerConfig = state.config.config ?? {};
        return this.cached(state, this.inputs(state, createdBy, []), async () => ({ containerConfig, createdBy }), args);
      }
      case 'CONFIG':
        return this.configStep(state, cmd);
      case 'SHELL': {
        const containerConfig: ContainerConfig = { ...(state.config.config ?? {}), Shell: cmd.shell };
        const createdBy = `SHELL [${cmd.shell.join(' ')}]`;
        return this.cached(state, { ...this.inputs(state, createdBy, []), after: { containerConfig } }, async () => ({ containerConfig, createdBy }));
      }
      case 'MAINTAINER': {
        const createdBy = `MAINTAINER ${cmd.maintainer}`;
        const containerConfig = state.config.config ?? {};
        return this.cached(state, { ...this.inputs(state, createdBy, []), after: { containerConfig, author: cmd.maintainer } }, async () => ({ containerConfig, createdBy, author: cmd.maintainer }));
      }
      case 'RUN':
        return this.runStep(state, cmd);
      case 'COPY':
      case 'ADD':
        return this.copyStep(state, cmd);
      case 'FROM':
        throw new BuildError(`dockerfile parse error on line ${ins.line}: FROM is not allowed here`);
    }
  }

  // -------------------------------------------------------------------------------------------------------
  // Config instructions

  private async configStep(state: State, cmd: ParsedCommand & { kind: 'CONFIG' }): Promise<State> {
    const ins = cmd.instruction;
    const buildArgs = this.argValues(state);
    const before = state.config.config ?? {};
    const containerConfig = applyConfig(before, [cmd.config], { buildArgs });
    const env = this.expansionEnv(state);
    let createdBy: string;
    switch (ins.keyword) {
      case 'ENV':
      case 'LABEL':
        createdBy = `${ins.keyword} ${parseKeyValues(ins.args, ins.keyword, env)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}`;
        break;
      case 'CMD':
        createdBy = `CMD ${goQuoteList(containerConfig.Cmd)}`;
        break;
      case 'ENTRYPOINT':
        createdBy = `ENTRYPOINT ${goQuoteList(containerConfig.Entrypoint)}`;
        break;
      case 'EXPOSE':
        createdBy = `EXPOSE ${expandWords(ins.args, env).join(' ')}`;
        break;
      case 'USER':
        createdBy = `USER ${containerConfig.User ?? ''}`;
        break;
      case 'WORKDIR':
        createdBy = `WORKDIR ${containerConfig.WorkingDir ?? '/'}`;
        break;
      case 'VOLUME':
        createdBy = `VOLUME [${Object.keys(containerConfig.Volumes ?? {})
          .filter((v) => !(v in (before.Volumes ?? {})))
          .join(' ')}]`;
        break;
      case 'STOPSIGNAL':
        createdBy = `STOPSIGNAL ${containerConfig.StopSignal ?? ''}`;
        break;
      case 'ONBUILD':
        createdBy = `ONBUILD ${(containerConfig.OnBuild ?? [])[(containerConfig.OnBuild ?? []).length - 1] ?? ''}`;
        break;
      default:
        createdBy = ins.original;
    }
    const key = { ...this.inputs(state, createdBy, [['config', JSON.stringify(containerConfig)]], [ins.keyword]), after: { containerConfig } };
    if (ins.keyword === 'WORKDIR') {
      return this.cached(state, key, async () => ({ containerConfig, createdBy, layer: await this.workdirLayer(state, containerConfig) }));
    }
    return this.cached(state, key, async () => ({ containerConfig, createdBy }));
  }

  /** WORKDIR's directory, in a layer of its own, when the stage's filesystem does not have it yet. */
  private async workdirLayer(state: State, cfg: ContainerConfig): Promise<LayerRecord | undefined> {
    const wd = cfg.WorkingDir ?? '/';
    if (wd === '/') return undefined;
    const rootfs = await this.rootfs(state);
    const { resolveInRoot } = await import('../util/rootpath.js');
    if (rootfs && fs.statSync(resolveInRoot(rootfs, wd), { throwIfNoEntry: false })?.isDirectory()) return undefined;
    const owner = cfg.User ? await this.resolveOwner(rootfs, cfg.User, false) : undefined;
    return this.writeCopyLayer({ rootfs, dest: `${wd}/`, items: [], forceDir: true, owner });
  }

  // -------------------------------------------------------------------------------------------------------
  // RUN

  private async runStep(state: State, cmd: ParsedCommand & { kind: 'RUN' }): Promise<State> {
    const cfg = state.config.config ?? {};
    const shell = cfg.Shell && cfg.Shell.length > 0 ? cfg.Shell : DEFAULT_SHELL;
    let cmdLine = cmd.cmdLine;
    let prependShell = cmd.prependShell;
    let script: { name: string; data: string } | undefined;
    if (cmd.files.length > 0 && prependShell) {
      const h = parseHeredocWord(cmdLine[0]!);
      const first = cmd.files[0]!;
      const data = first.chomp ? chompHeredocContent(first.content) : first.content;
      if (h) {
        if (data.startsWith('#!')) {
          // A script with its own interpreter: run it as a file (buildkit mounts it at /dev/pipes/NAME).
          script = { name: first.name, data };
          cmdLine = [`/dev/pipes/${first.name}`];
          prependShell = false;
        } else {
          cmdLine = [data];
        }
      } else {
        // `RUN cmd <<EOF …`: the shell reads the heredoc itself.
        let full = cmdLine[0]!;
        for (const f of cmd.files) full += `\n${f.chomp ? chompHeredocContent(f.content) : f.content}${f.name}`;
        cmdLine = [full];
      }
    }
    const args = prependShell ? [...shell, ...cmdLine] : cmdLine;
    // History and key: the build args this RUN sees, as buildkit's `|N K=V` prefix.
    const env = this.expansionEnv(state);
    const argPairs = [...state.args.keys()].map((k) => `${k}=${env[k] ?? ''}`);
    const createdBy = `RUN ${argPairs.length > 0 ? `|${argPairs.length} ${argPairs.join(' ')} ` : ''}${args.join(' ')} # buildkit`;
    const network = cmd.network && cmd.network !== 'default' ? cmd.network : (this.opts.network ?? 'bridge');
    const mounts = await this.runMounts(state, cmd, env);
    const key = this.inputs(state, createdBy, [
      ['network', `network=${network}`],
      ['heredoc script', script?.data],
      ...(mounts ? mounts.keyParts.map((k): [string, string] => [mountPartName(k), k]) : []),
    ]);
    return this.cached(state, key, async () => ({
      containerConfig: cfg,
      createdBy,
      layer: await this.runContainer(state, args, network, script, mounts),
    }));
  }

  /** RUN --mount: parsed with the step's variables, resolved (what the key needs); undefined without mounts. */
  private async runMounts(state: State, cmd: ParsedCommand & { kind: 'RUN' }, env: Record<string, string>): Promise<ResolvedMounts | undefined> {
    if (cmd.mounts.length === 0) return undefined;
    const parsed: RunMount[] = cmd.mounts.map((m) => {
      try {
        return parseRunMount(m, (w) => this.expand(w, env, cmd.instruction.line));
      } catch (e) {
        if (e instanceof BuildError) throw e;
        throw new BuildError(`dockerfile parse error on line ${cmd.instruction.line}: ${(e as Error).message}`);
      }
    });
    const { resolveMounts } = await import('./runmounts.js');
    return resolveMounts(parsed, {
      workDir: this.workDir(),
      workingDir: state.config.config?.WorkingDir || '/',
      context: () => this.contextTree(),
      from: async (name) => {
        const stage = this.stageRef(name, this.currentStage);
        if (!stage && this.df.stages.some((s) => s.name === name.toLowerCase())) {
          throw new BuildError(`cannot mount from stage "${name}", stage needs to be defined before current command`);
        }
        const src = await this.fromSource(name);
        return { id: src.image.id, rootfs: () => this.rootfs(src) };
      },
      secrets: this.opts.secrets ?? {},
      ssh: this.opts.ssh ?? {},
      cacheMounts: await this.cacheMounts(),
      interrupted: () => this.interrupted,
    });
  }

  private async cacheMounts(): Promise<CacheMounts> {
    const { CacheMounts } = await import('./cachemounts.js');
    return new CacheMounts(path.join(this.stores.root, 'build', 'cache-mounts'));
  }

  private async runContainer(
    state: State,
    args: string[],
    network: string,
    script?: { name: string; data: string },
    runMounts?: ResolvedMounts,
  ): Promise<LayerRecord | undefined> {
    const prepared = await runMounts?.prepare();
    try {
      return await this.runPrepared(state, args, network, script, prepared);
    } finally {
      await prepared?.release();
    }
  }

  private async runPrepared(
    state: State,
    args: string[],
    network: string,
    script: { name: string; data: string } | undefined,
    mounts: import('./runmounts.js').PreparedMounts | undefined,
  ): Promise<LayerRecord | undefined> {
    const manager = await this.manager();
    const { containers } = this.stores;
    const { readLog } = await import('../container/logs.js');
    const cfg = state.config.config ?? {};
    const configEnv = new Set((cfg.Env ?? []).map((e) => e.split('=')[0]!));
    const extraEnv: string[] = [];
    for (const [k, v] of state.args) if (v !== undefined && !configEnv.has(k)) extraEnv.push(`${k}=${v}`);
    for (const [k, v] of Object.entries(this.buildArgs)) {
      if (PROXY_ARGS.has(k) && !state.args.has(k) && !configEnv.has(k)) extraEnv.push(`${k}=${v}`);
    }
    const volumes: string[] = [];
    if (script) {
      const file = path.join(this.workDir(), `heredoc-${randomBytes(4).toString('hex')}`);
      fs.writeFileSync(file, script.data, { mode: 0o755 });
      volumes.push(`${file}:/dev/pipes/${script.name}:ro`);
    }
    if (mounts) extraEnv.push(...mounts.env);
    let c = await manager.create(
      {
        image: state.image.digest,
        command: args,
        entrypoint: '',
        env: extraEnv,
        network,
        volumes,
        specMounts: mounts?.mounts,
        addHosts: this.opts.addHosts,
        ulimits: this.opts.ulimits,
        runtime: process.env.PLY_RUNTIME,
        // A killed build's containers are found by this (prune removes them).
        labels: [`${BUILD_PID_LABEL}=${process.pid}`],
      },
      state.image.digest,
      state.image.id,
    );
    // RUN does not mount the image's VOLUMEs (buildkit): what it writes there stays in the layer.
    if (c.spec.anonymousVolumes.length > 0) {
      const anon = new Set(c.spec.anonymousVolumes);
      containers.update(c.id, { spec: { ...c.spec, mounts: c.spec.mounts.filter((m) => !(m.type === 'volume' && anon.has(m.source!))), anonymousVolumes: [] } });
      for (const v of anon) this.stores.volumes.forgetAnonymous(v);
      c = containers.get(c.id)!;
    }
    this.log.running(c.id);
    const logFile = manager.logPath(c);
    let offset = 0;
    const tail: string[] = [];
    let partial = '';
    const pump = () => {
      const r = readLog(logFile, offset);
      offset = r.offset;
      for (const e of r.entries) {
        this.log.output(e.log);
        const lines = (partial + e.log).split('\n');
        partial = lines.pop()!;
        tail.push(...lines);
        if (tail.length > TAIL_LINES) tail.splice(0, tail.length - TAIL_LINES);
      }
    };
    const timer = setInterval(pump, 40);
    this.stopCurrent = () => {
      try {
        manager.runtime(c).kill(c.id, 'SIGKILL', true);
      } catch {
        // not started yet, or already gone
      }
    };
    let code: number;
    try {
      code = await manager.supervise(c, 'detached', undefined, mounts?.secretEnv.length ? { env: mounts.secretEnv } : undefined);
    } catch (e) {
      clearInterval(timer);
      this.stopCurrent = undefined;
      pump();
      manager.removeStopped(containers.get(c.id) ?? c, true);
      this.checkInterrupted();
      throw new BuildError((e as Error).message, tail);
    }
    clearInterval(timer);
    this.stopCurrent = undefined;
    pump();
    if (partial) tail.push(partial);
    if (this.interrupted) {
      manager.removeStopped(containers.get(c.id) ?? c, true);
      this.checkInterrupted();
    }
    if (code !== 0) {
      manager.removeStopped(containers.get(c.id) ?? c, true);
      throw new BuildError(`The command '${args.join(' ')}' returned a non-zero code: ${code}`, tail.slice(-TAIL_LINES), code, code);
    }
    const layer = await this.commitUpper(c.id);
    manager.removeStopped(containers.get(c.id) ?? c, true);
    this.log.removed(c.id);
    return layer;
  }

  /** The container's writable layer as a layer blob; undefined when it changed nothing. */
  private async commitUpper(id: string): Promise<LayerRecord | undefined> {
    const { commitLayer } = await import('../snapshot/commit.js');
    const key = this.stores.containers.pathOf(id);
    return commitLayer(this.stores.snapshots.of(key), key, this.images.content, this.lease!, {
      quiescent: true,
      skipEmpty: true,
      name: 'build',
      ...(this.sde !== undefined ? { clamp: this.sde } : {}),
    });
  }

  private async ingest(produce: (writer: import('../tar/index.js').TarWriter) => Promise<void>): Promise<LayerRecord> {
    const { TarWriter } = await import('../tar/index.js');
    const { ingestLayer } = await import('../layer/ingest.js');
    const writer = new TarWriter();
    const producing = (async () => {
      await produce(writer);
      await writer.finish();
    })();
    producing.catch((e: unknown) => writer.destroy(e as Error));
    const layer = await ingestLayer(this.images.content, writer.stream, { key: `build-${randomBytes(6).toString('hex')}`, lease: this.lease! });
    await producing;
    return layer;
  }

  // -------------------------------------------------------------------------------------------------------
  // COPY and ADD

  /** `--chown=user[:group]`, names looked up in the destination's /etc/passwd and /etc/group. */
  private async resolveOwner(rootfs: string | null, spec: string, sameGid = true): Promise<{ uid: number; gid: number }> {
    const { resolveUser } = await import('../runtime/user.js');
    const u = resolveUser(rootfs ?? this.workDir(), spec);
    // docker: a user without a group uses the uid as the gid too (numeric or named).
    return { uid: u.uid, gid: spec.includes(':') || !sameGid ? u.gid : u.uid };
  }

  private contextTree(): SourceTree {
    this.context ??= new SourceTree(this.opts.contextDir, loadIgnoreRules(this.opts.contextDir, this.opts.dockerfilePath));
    return this.context;
  }

  private async copyStep(state: State, cmd: ParsedCommand & { kind: 'COPY' | 'ADD' }): Promise<State> {
    const kw = cmd.kind;
    const env = this.expansionEnv(state);
    const exp = (s: string) => this.expand(s, env);
    const dest = exp(cmd.dest);
    const sources = cmd.sources.map(exp);
    const from = cmd.from !== undefined ? exp(cmd.from) : undefined;
    const chown = cmd.chown ? exp(cmd.chown) : undefined;
    const chmodText = cmd.chmod ? exp(cmd.chmod) : undefined;
    let chmod: number | undefined;
    if (chmodText !== undefined) {
      if (!/^[0-7]{3,4}$/.test(chmodText)) throw new BuildError(`invalid chmod parameter: ${chmodText} (ply supports octal modes)`);
      chmod = parseInt(chmodText, 8);
    }
    const contents = cmd.contents.map((c) => ({ ...c, data: c.expand ? expandHeredoc(c.data, env) : c.data }));
    const dirDest = dest.endsWith('/') || dest === '.' || dest.endsWith('/.') || dest === '..' || dest.endsWith('/..');
    if (sources.length + contents.length > 1 && !dirDest) {
      throw new BuildError(`When using ${kw} with more than one source file, the destination must be a directory and end with a /`);
    }
    const wd = state.config.config?.WorkingDir || '/';
    let absDest = path.posix.join(dest.startsWith('/') ? '/' : wd, dest);
    if (dirDest && !absDest.endsWith('/')) absDest += '/';

    // Where the sources come from: another stage or image (--from), URLs (ADD), or the context.
    let tree: SourceTree | undefined;
    let fromImage: State | undefined;
    const urls: string[] = [];
    const local: string[] = [];
    for (const s of sources) (kw === 'ADD' && /^https?:\/\//i.test(s) ? urls : local).push(s);
    if (cmd.checksum && (local.length > 0 || urls.length !== 1)) throw new BuildError('checksum can\'t be specified for multiple sources or non-HTTP(S) sources');
    if (from !== undefined) {
      fromImage = await this.fromSource(from);
    } else {
      tree = this.contextTree();
    }
    const resolved: ResolvedSource[] = tree ? local.map((s) => tree!.resolve(s, kw)) : [];
    const downloads = await Promise.all(urls.map((u) => this.download(u, cmd.checksum)));

    const createdBy = `${kw} ${[...sources, ...contents.map((c) => `<<${c.path}`), dest].join(' ')} # buildkit`;
    const key = this.inputs(state, createdBy, [
      ['destination', absDest],
      ['--chown', `chown=${chown ?? ''}`],
      ['--chmod', `chmod=${chmodText ?? ''}`],
      fromImage ? ['--from stage or image', `from=${fromImage.image.id}`] : ['the files it copies (content, modes, owners)', tree!.checksum(resolved)],
      ...contents.map((c): [string, string] => [`heredoc ${c.path}`, `${c.path}\0${c.data}`]),
      ...downloads.map((d): [string, string] => [`download ${d.url}`, `${d.url}\0${d.digest}`]),
    ]);
    return this.cached(state, key, async () => {
      const rootfs = await this.rootfs(state);
      const items: CopyItem[] = [];
      if (fromImage) {
        const srcRoot = await this.rootfs(fromImage);
        const { SourceTree } = await import('./context.js');
        const srcTree = new SourceTree(srcRoot ?? this.emptyDir(), null, true);
        for (const s of local) for (const m of srcTree.resolve(s, kw).matches) items.push({ kind: 'match', match: m });
      } else {
        const { isArchive } = await import('./copy.js');
        for (const r of resolved) {
          for (const m of r.matches) {
            if (kw === 'ADD' && !m.isDir && m.entries[0]!.type === 'file' && (await isArchive(m.abs))) items.push({ kind: 'archive', abs: m.abs });
            else items.push({ kind: 'match', match: m });
          }
        }
      }
      for (const d of downloads) items.push({ kind: 'content', name: d.name, data: d.data, mode: 0o600, ...(d.mtime !== undefined ? { mtime: d.mtime } : {}) });
      for (const c of contents) items.push({ kind: 'content', name: c.path, data: Buffer.from(c.data), mode: 0o644 });
      const owner = chown ? await this.resolveOwner(rootfs, chown) : undefined;
      const matches = items.length;
      return {
        containerConfig: state.config.config ?? {},
        createdBy,
        layer: await this.writeCopyLayer({ rootfs, dest: absDest, items, forceDir: matches > 1, owner, chmod }),
      };
    });
  }

  private emptyDir(): string {
    const d = path.join(this.workDir(), 'empty');
    fs.mkdirSync(d, { recursive: true });
    return d;
  }

  private async writeCopyLayer(req: Omit<CopyRequest, 'now' | 'clamp'>): Promise<LayerRecord> {
    const { CopyWriter } = await import('./copy.js');
    const sde = this.sde;
    const writer = new CopyWriter({ ...req, now: sde ?? Math.floor(Date.now() / 1000), ...(sde !== undefined ? { clamp: sde } : {}) });
    writer.plan();
    return this.ingest((w) => writer.write(w));
  }

  /** COPY --from: an earlier stage (name or index), else an image (pulled if it is not here). */
  private async fromSource(from: string): Promise<State> {
    const stage = this.stageRef(from, this.currentStage);
    if (stage) {
      const done = this.stageResults.get(stage.index);
      if (!done) throw new BuildError(`invalid from flag value ${from}: stage was not built`);
      return done;
    }
    if (this.df.stages.some((s) => s.name === from.toLowerCase())) {
      throw new BuildError(`invalid from flag value ${from}: a stage can only copy from stages before it`);
    }
    try {
      return this.stateOf(await this.baseImage(from, undefined), new Map());
    } catch (e) {
      throw new BuildError(`invalid from flag value ${from}: no build stage or image named "${from}" (${(e as Error).message})`);
    }
  }

  private async download(url: string, checksum?: string): Promise<{ url: string; name: string; data: Buffer; digest: string; mtime?: number }> {
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(30_000), redirect: 'follow' });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new BuildError(`ADD failed: cannot download ${url}: ${cause?.message ?? cause?.code ?? (e as Error).message}`);
    }
    if (!res.ok) throw new BuildError(`ADD failed: cannot download ${url}: ${res.status} ${res.statusText}`);
    const data = Buffer.from(await res.arrayBuffer());
    const { digestOf } = await import('../digest/digest.js');
    const digest = digestOf(data);
    if (checksum && checksum !== digest) throw new BuildError(`ADD failed: digest mismatch for ${url}: expected ${checksum}, got ${digest}`);
    const lm = res.headers.get('last-modified');
    const mtime = lm ? Math.floor(Date.parse(lm) / 1000) : undefined;
    let name = path.posix.basename(new URL(url).pathname);
    if (!name || name === '/') name = '__unnamed__';
    return { url, name, data, digest, ...(mtime !== undefined && Number.isFinite(mtime) ? { mtime } : {}) };
  }
}
