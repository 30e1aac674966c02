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
// This file runs the stages and dispatches each instruction; the pieces live beside it: stages.ts (stage
// references, the stages a target needs, BuildKit's step numbering), platform.ts, base.ts (FROM scratch or an
// image), step.ts (a stage's state, key parts), step-cache.ts (cache lookups, imported caches, --cache-from
// images, --explain-cache, --cache-to), history.ts (created_by), run.ts (RUN's command line and container),
// copy-plan.ts + copy.ts (COPY/ADD), download.ts (ADD <url>), step-layers.ts (committing and writing step layers).
//
// Modules needed only when something must actually be built (containers, snapshots, layer writing) are
// imported on first use: a fully cached rebuild loads none of them.

import fs from 'node:fs';
import path from 'node:path';
import type { ContainerManager } from '../container/manager.js';
import type { Ulimit } from '../container/store.js';
import { parseRunMount, type RunMount } from '../dockerfile/mounts.js';
import type { CacheMounts } from './cachemounts.js';
import type { ResolvedMounts } from './runmounts.js';
import type { CacheExportSpec, CacheLocation } from './remote-cache.js';
import { KEYS_ANNOTATION } from './image-cache.js';
import { BuildError } from './errors.js';
import { PlyError } from '../errors.js';
import { applyConfig } from '../dockerfile/config.js';
import { expandVariables } from '../dockerfile/shell.js';
import { ImageStore, type ImageRecord } from '../image/store.js';
import type { LayerRecord } from '../layer/types.js';
import type { Lease } from '../content/lease.js';
import { writeImage } from '../image/write.js';
import { formatPlatform, hostPlatform, parsePlatform } from '../oci/platform.js';
import type { ContainerConfig, ImageConfig, Platform } from '../oci/types.js';
import { stepKey } from './cache.js';
import { loadIgnoreRules, SourceTree, type ResolvedSource } from './context.js';
import { removeStaleWorkDirs } from './workdirs.js';
import type { CopyItem } from './copy.js';
import { parseDockerfile, parseTrigger, type Dockerfile, type ParsedCommand, type Stage } from '../dockerfile/parser.js';
import type { BuildLogger } from './output.js';
import type { RootfsViews } from './rootfs.js';
import type { Stores } from '../stores.js';
import { removeTree } from '../util/fs.js';
import { baseImage, scratchImage } from './base.js';
import { download } from './download.js';
import { planCopy } from './copy-plan.js';
import { commitContainer, writeCopyLayer } from './step-layers.js';
import { configCreatedBy } from './history.js';
import { automaticArgs, targetPlatform } from './platform.js';
import { PROXY_ARGS, runArgv, runContainer, runEnv, type RunScript } from './run.js';
import { neededStages, normalizedBase, stageByName, stageRef, Vertices } from './stages.js';
import { sourceDateEpoch, StepCache } from './step-cache.js';
import { layersOf, mountPartName, stepInputs, type State, type StepInputs, type StepResult } from './step.js';

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
  /** The steps against the caches; from the start of the build (it needs the build's lease). */
  private stepCache: StepCache | undefined;
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
  private bases: string[] = [];
  private vertices: Vertices | undefined;

  private containerManager: ContainerManager | undefined;
  /**
   * SOURCE_DATE_EPOCH: every `created` of the config and history is this time, file times above it in new layers
   * are clamped to it, and it is part of every step key (a step cached without it has other times).
   */
  private sde: number | undefined;

  constructor(
    private readonly stores: Stores,
    private readonly opts: BuildOptions,
    private readonly df: Dockerfile,
  ) {
    this.images = stores.images;
    this.log = opts.logger;
    this.buildArgs = { ...(opts.buildArgs ?? {}) };
  }

  private get steps(): StepCache {
    if (!this.stepCache) throw new Error('internal: a step before the build started');
    return this.stepCache;
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
    const auto = automaticArgs(this.platform);
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
    const order = neededStages(this.df, target, bases, metaEnv);
    this.total = order.reduce((n, s) => n + 1 + s.commands.length, 0);
    this.vertices = new Vertices(this.df, order, bases);
    this.lease = this.images.lease();
    this.stepCache = new StepCache(this.stores, {
      noCache: this.opts.noCache,
      explainCache: this.opts.explainCache,
      sde: this.sde,
      log: this.log,
      warn: this.opts.warn,
      lease: this.lease,
    });
    this.bases = bases;
    if (!this.opts.noCache && this.opts.cacheFrom?.length) await this.steps.importFrom(this.opts.cacheFrom);
    if (!this.opts.noCache && this.opts.cacheFromImages?.length) await this.steps.importImages(this.opts.cacheFromImages);

    for (const stage of order) {
      this.currentStage = stage.index;
      let state = await this.from(stage, bases[stage.index]!, platforms[stage.index]);
      for (const [i, cmd] of stage.commands.entries()) state = await this.step(state, cmd, true, stage, i);
      this.stageResults.set(stage.index, state);
    }
    let final = this.stageResults.get(target.index)!;
    await this.steps.local(final);
    const labels = this.opts.labels ?? {};
    if (Object.keys(labels).length > 0) {
      // --label: merged into the final config, no history entry, the step's time kept: deterministic.
      const config: ImageConfig = structuredClone(final.config);
      config.config = { ...(config.config ?? {}), Labels: { ...(config.config?.Labels ?? {}), ...labels } };
      const annotations = this.images.manifest(final.image).annotations?.[KEYS_ANNOTATION];
      const rec = await writeImage(this.images, this.lease, { config, layers: layersOf(this.images, final), parent: final.image.id, ...(annotations ? { annotations: { [KEYS_ANNOTATION]: annotations } } : {}) });
      final = { ...final, image: rec, config };
    }
    const unused = Object.keys(this.buildArgs).filter((k) => !this.consumed.has(k) && !PROXY_ARGS.has(k));
    if (unused.length > 0) this.opts.warn?.(`[Warning] One or more build-args [${unused.join(' ')}] were not consumed`);
    const tags = this.opts.tags ?? [];
    for (const t of tags) {
      this.images.setName(t, final.image.digest);
      this.stores.events.emit('image', 'tag', final.image.id, { ...(this.images.config(final.image).config?.Labels ?? {}), name: ImageStore.display(t) });
    }
    await this.steps.finish();
    if (this.opts.cacheTo?.length) {
      // min: the steps of the result's stage and the stages it is FROM; max: every step built.
      const chain = new Set<number>();
      for (let s: Stage | undefined = target; s && !chain.has(s.index); s = stageByName(this.df, this.bases[s.index]!, s.index)) chain.add(s.index);
      for (const spec of this.opts.cacheTo) await this.steps.exportTo(spec, chain);
    }
    return { image: final.image, tags, executed: this.steps.executed };
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

  /** The stage's filesystem, read-only (null when it has no layers). */
  private async rootfs(state: State): Promise<string | null> {
    await this.steps.local(state);
    const layers = layersOf(this.images, state);
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
    this.log.step(++this.stepNo, this.total, stage.from.instruction.original, this.vertices?.label(stage, -1, `FROM ${normalizedBase(base)}`));
    const platform = platformArg ? parsePlatform(platformArg) : this.opts.platform !== undefined ? this.platform : undefined;
    let state: State;
    const ref = base.toLowerCase() === 'scratch' ? undefined : stageByName(this.df, base, stage.index);
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
    const { image, config } = await scratchImage(this.images, this.lease!, platform);
    // Recorded like a step, so that `builder prune` removes it with the rest.
    this.steps.put(stepKey(['scratch', formatPlatform(platform)]), image.digest);
    return { image, config, layers: [] };
  }

  private baseImage(name: string, platform: Platform | undefined): Promise<ImageRecord> {
    return baseImage(this.images, name, platform, !!this.opts.pull);
  }

  // -------------------------------------------------------------------------------------------------------
  // Steps

  private async step(state: State, cmd: ParsedCommand, numbered: boolean, stage?: Stage, index = 0): Promise<State> {
    this.checkInterrupted();
    if (numbered) this.log.step(++this.stepNo, this.total, cmd.instruction.original, stage ? this.vertices?.label(stage, index, cmd.instruction.original) : undefined);
    else this.log.trigger(cmd.instruction.original);
    try {
      return await this.dispatch(state, cmd);
    } catch (e) {
      if (e instanceof BuildError) throw e;
      if (e instanceof PlyError) throw new BuildError(e.message);
      throw e;
    }
  }

  /** Reuses the cached result of the step, or runs `execute` (StepCache.cached). */
  private cached(state: State, inputs: StepInputs, execute: () => Promise<StepResult>, args = state.args): Promise<State> {
    return this.steps.cached(state, inputs, this.currentStage, execute, args);
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
          else v = automaticArgs(this.platform).get(a.key);
          args.delete(a.key);
          args.set(a.key, v);
          if (v !== undefined && !(state.config.config?.Env ?? []).some((e) => e.startsWith(`${a.key}=`))) env[a.key] = v;
          parts.push(v === undefined ? a.key : `${a.key}=${v}`);
        }
        const createdBy = `ARG ${parts.join(' ')}`;
        const containerConfig = state.config.config ?? {};
        return this.cached(state, stepInputs(state, createdBy, []), async () => ({ containerConfig, createdBy }), args);
      }
      case 'CONFIG':
        return this.configStep(state, cmd);
      case 'SHELL': {
        const containerConfig: ContainerConfig = { ...(state.config.config ?? {}), Shell: cmd.shell };
        const createdBy = `SHELL [${cmd.shell.join(' ')}]`;
        return this.cached(state, { ...stepInputs(state, createdBy, []), after: { containerConfig } }, async () => ({ containerConfig, createdBy }));
      }
      case 'MAINTAINER': {
        const createdBy = `MAINTAINER ${cmd.maintainer}`;
        const containerConfig = state.config.config ?? {};
        return this.cached(state, { ...stepInputs(state, createdBy, []), after: { containerConfig, author: cmd.maintainer } }, async () => ({ containerConfig, createdBy, author: cmd.maintainer }));
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
    const createdBy = configCreatedBy(ins, before, containerConfig, this.expansionEnv(state));
    const key = { ...stepInputs(state, createdBy, [['config', JSON.stringify(containerConfig)]], [ins.keyword]), after: { containerConfig } };
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
    return writeCopyLayer(this.stores, { rootfs, dest: `${wd}/`, items: [], forceDir: true, owner }, this.lease!, this.sde);
  }

  // -------------------------------------------------------------------------------------------------------
  // RUN

  private async runStep(state: State, cmd: ParsedCommand & { kind: 'RUN' }): Promise<State> {
    const cfg = state.config.config ?? {};
    const { args, script } = runArgv(cmd, cfg);
    // History and key: the build args this RUN sees, as buildkit's `|N K=V` prefix.
    const env = this.expansionEnv(state);
    const argPairs = [...state.args.keys()].map((k) => `${k}=${env[k] ?? ''}`);
    const createdBy = `RUN ${argPairs.length > 0 ? `|${argPairs.length} ${argPairs.join(' ')} ` : ''}${args.join(' ')} # buildkit`;
    const network = cmd.network && cmd.network !== 'default' ? cmd.network : (this.opts.network ?? 'bridge');
    const mounts = await this.runMounts(state, cmd, env);
    const key = stepInputs(state, createdBy, [
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
        const stage = stageRef(this.df, name, this.currentStage);
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

  private async runContainer(state: State, args: string[], network: string, script?: RunScript, runMounts?: ResolvedMounts): Promise<LayerRecord | undefined> {
    const prepared = await runMounts?.prepare();
    try {
      const job = {
        image: state.image,
        args,
        env: runEnv(state.config.config ?? {}, state.args, this.buildArgs),
        network,
        script,
        mounts: prepared,
        addHosts: this.opts.addHosts,
        ulimits: this.opts.ulimits,
      };
      return await runContainer(await this.manager(), this.stores, job, {
        log: this.log,
        workDir: () => this.workDir(),
        setStop: (stop) => (this.stopCurrent = stop),
        interrupted: () => this.interrupted,
        checkInterrupted: () => this.checkInterrupted(),
        commit: (id) => commitContainer(this.stores, id, this.lease!, this.sde),
      });
    } finally {
      await prepared?.release();
    }
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
    const { absDest, urls, local, from, chown, chmodText, chmod, contents, createdBy } = planCopy(cmd, env, state.config.config?.WorkingDir || '/', (s) => this.expand(s, env));
    // Where the sources come from: another stage or image (--from), URLs (ADD), or the context.
    let tree: SourceTree | undefined;
    let fromImage: State | undefined;
    if (from !== undefined) {
      fromImage = await this.fromSource(from);
    } else {
      tree = this.contextTree();
    }
    const resolved: ResolvedSource[] = tree ? local.map((s) => tree!.resolve(s, kw)) : [];
    const downloads = await Promise.all(urls.map((u) => download(u, cmd.checksum)));

    const key = stepInputs(state, createdBy, [
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
        layer: await writeCopyLayer(this.stores, { rootfs, dest: absDest, items, forceDir: matches > 1, owner, chmod }, this.lease!, this.sde),
      };
    });
  }

  private emptyDir(): string {
    const d = path.join(this.workDir(), 'empty');
    fs.mkdirSync(d, { recursive: true });
    return d;
  }

  /** COPY --from: an earlier stage (name or index), else an image (pulled if it is not here). */
  private async fromSource(from: string): Promise<State> {
    const stage = stageRef(this.df, from, this.currentStage);
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
}
