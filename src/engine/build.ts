// The engine's build verbs: build a Dockerfile from a context (a directory, or a tar as `POST /build` sends it)
// and prune the build cache. The builder loads on first use; its progress goes to a BuildLogger (docker's
// classic output, the tty view, or quiet), which a face picks.
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { BuildResult } from '../builder/builder.js';
import { QuietLogger, type BuildLogger } from '../builder/output.js';
import type { Ulimit } from '../container/store.js';
import type { BuildOutput } from '../builder/exporters.js';
import type { CacheExportSpec, CacheLocation } from '../builder/remote-cache.js';
import { InvalidArgumentError, PlyError, UsageError } from '../errors.js';
import { ImageStore, type ImageRecord } from '../image/store.js';
import { tagName } from '../reference/reference.js';
import type { Stores } from '../stores.js';
import type { BuildCachePruneResponse } from './types.js';

export type { BuildLogger, BuildResult, BuildOutput, CacheExportSpec, CacheLocation, Ulimit };
export { BuildError } from '../builder/errors.js';
export { ClassicLogger, PlainLogger, QuietLogger, TtyLogger, type ExportSummary } from '../builder/output.js';
export { isRemoteContext, looksLikeArchive } from '../builder/remote-context.js';
export { parseSecretFlag, readSecret, parseSshFlag, parseOutputFlag, parseCacheFlag, type SecretSpec, type OutputSpec, type CacheFlag } from '../builder/flags.js';
export { parseUlimit } from '../container/create.js';
import { checkAddHosts } from '../container/create.js';

export interface BuildRequest {
  /** The context: a directory, a tar (plain or compressed; the Dockerfile inside it), or none (an empty one). */
  context?: string | Readable | AsyncIterable<Buffer>;
  /**
   * A URL to build from instead of `context` (docker's `remote`): a tar (plain or compressed) is the context and
   * `dockerfile` is relative to it; any other content is the Dockerfile, with an empty context.
   */
  remote?: string;
  /** The Dockerfile's path: relative to a tar context; for a directory, a path (default: Dockerfile in it). */
  dockerfile?: string;
  /** The Dockerfile's text itself (`-f -`, or `build - < Dockerfile`); wins over `dockerfile`. */
  dockerfileText?: string;
  /** Names to tag the result with (REPOSITORY[:TAG]); checked before anything is read. */
  tags?: string[];
  buildArgs?: Record<string, string>;
  target?: string;
  noCache?: boolean;
  /** Pull FROM images even when they are here. */
  pull?: boolean;
  labels?: Record<string, string>;
  /** The network RUN steps get (docker's default: the default bridge; host, none, a network's name). */
  network?: string;
  /** Secrets for RUN --mount=type=secret, by id (docker's --secret, read by the caller). Never stored. */
  secrets?: Record<string, Buffer>;
  /** ssh agent sockets for RUN --mount=type=ssh, by id (docker's --ssh id=SOCKET). */
  ssh?: Record<string, string>;
  /** docker's ExtraHosts: HOST:IP entries added to RUN steps' /etc/hosts. */
  extraHosts?: string[];
  /** docker's Ulimits for RUN steps (capped at the caller's hard limits). */
  ulimits?: Ulimit[];
  /**
   * Where the result goes (buildx's --output; default: into the store under `tags`). Without an `image` output
   * nothing is tagged; archives name the image with `names`, else with `tags`.
   */
  outputs?: BuildOutput[];
  /** Caches to reuse steps from (buildx's --cache-from): registry repositories or OCI layout directories. */
  cacheFrom?: CacheLocation[];
  /**
   * docker's classic `--cache-from` (the Engine API's `cachefrom`): image names. An image in the store lends the
   * steps ply built it with (pull it first, as for docker); a name not in the store that names its registry
   * (`HOST[:PORT]/REPO[:TAG]`) is read as a registry cache (what `cacheTo` exports); others are ignored, as docker does.
   */
  cacheFromImages?: string[];
  /** Where to export this build's steps (buildx's --cache-to). */
  cacheTo?: CacheExportSpec[];
  /** The platform to build for (docker's --platform): the native one, or one an emulator is registered for. */
  platform?: string;
  /** Each step that misses the cache says why (ply's --explain-cache), through the logger. */
  explainCache?: boolean;
  /** Where the steps' progress goes (docker's classic output, the tty view; default: nowhere). */
  logger?: BuildLogger;
  /** Warnings (unused build args, …). */
  warn?: (line: string) => void;
}

export class BuildService {
  constructor(private readonly stores: Stores) {}

  /** Builds the image; a BuildError (exit code 1, the failing step's last lines) when a step fails. */
  async build(req: BuildRequest): Promise<BuildResult> {
    // Everything the caller typed is checked before anything is read or built.
    const network = req.network === undefined || req.network === 'default' ? undefined : req.network;
    if (network?.startsWith('container:')) throw new InvalidArgumentError(`network mode "${req.network}" not supported by ply build`);
    const tags = (req.tags ?? []).map((t) => {
      try {
        return tagName(t);
      } catch (e) {
        // docker's CLI checks -t as a flag value (exit 125).
        if (e instanceof PlyError) throw new UsageError(`invalid argument "${t}" for "-t, --tag" flag: ${e.message.replace(/^invalid reference format: "[^"]*"/, 'invalid reference format')}`);
        throw e;
      }
    });
    checkAddHosts(req.extraHosts ?? []);
    const cacheFrom = [...(req.cacheFrom ?? [])];
    const cacheFromImages: ImageRecord[] = [];
    for (const ref of req.cacheFromImages ?? []) {
      const rec = this.stores.images.lookup(ref);
      if (rec) cacheFromImages.push(rec);
      else if (/^(localhost|[^/]*[.:][^/]*)\//.test(ref)) cacheFrom.push({ type: 'registry', ref });
    }
    const outputs = req.outputs?.length ? req.outputs : [{ type: 'image' as const }];
    const load = outputs.some((o) => o.type === 'image');
    for (const o of outputs) {
      if (o.type !== 'image' && typeof o.dest === 'string' && o.dest === '') throw new InvalidArgumentError(`dest is required for ${o.type} exporter`);
    }
    let tmp: string | undefined;
    if (req.remote !== undefined) {
      const { fetchRemoteContext } = await import('../builder/remote-context.js');
      const got = await fetchRemoteContext(req.remote);
      req = got.kind === 'tar' ? { ...req, context: got.stream } : { ...req, context: undefined, dockerfileText: req.dockerfileText ?? got.text };
    }
    try {
      let contextDir: string;
      let dockerfilePath: string | undefined;
      let dockerfile: string;
      if (typeof req.context === 'string') {
        contextDir = path.resolve(req.context);
        const st = fs.statSync(contextDir, { throwIfNoEntry: false });
        if (!st) throw new InvalidArgumentError(`unable to prepare context: path "${req.context}" not found`);
        if (!st.isDirectory()) throw new InvalidArgumentError(`unable to prepare context: context must be a directory: ${contextDir}`);
        if (req.dockerfileText !== undefined) {
          dockerfile = req.dockerfileText;
        } else {
          dockerfilePath = req.dockerfile ? path.resolve(req.dockerfile) : path.join(contextDir, 'Dockerfile');
          if (!req.dockerfile && !fs.existsSync(dockerfilePath) && fs.existsSync(path.join(contextDir, 'dockerfile'))) dockerfilePath = path.join(contextDir, 'dockerfile');
          dockerfile = readDockerfileAt(dockerfilePath);
        }
      } else {
        fs.mkdirSync(path.join(this.stores.root, 'build'), { recursive: true, mode: 0o700 });
        tmp = fs.mkdtempSync(path.join(this.stores.root, 'build', `ctx-${process.pid}-`));
        contextDir = tmp;
        if (req.context) {
          const { applyLayer } = await import('../layer/apply.js');
          const { decompressed } = await import('../layer/compression.js');
          await applyLayer(contextDir, decompressed(req.context), { mode: 'flat' });
        }
        if (req.dockerfileText !== undefined) {
          dockerfile = req.dockerfileText;
        } else {
          const { resolveInRoot } = await import('../util/rootpath.js');
          dockerfilePath = resolveInRoot(contextDir, req.dockerfile ?? 'Dockerfile');
          dockerfile = readDockerfileAt(dockerfilePath);
        }
      }
      const { build } = await import('../builder/builder.js');
      const result = await build(this.stores, {
        contextDir,
        dockerfile,
        dockerfilePath,
        tags: load ? tags : [],
        buildArgs: req.buildArgs,
        target: req.target,
        noCache: req.noCache,
        pull: req.pull,
        labels: req.labels,
        network,
        secrets: req.secrets,
        ssh: req.ssh,
        addHosts: req.extraHosts,
        ulimits: req.ulimits,
        cacheFrom,
        cacheFromImages,
        cacheTo: req.cacheTo,
        platform: req.platform,
        explainCache: req.explainCache,
        logger: req.logger ?? new QuietLogger(),
        warn: req.warn,
      });
      if (outputs.some((o) => o.type !== 'image')) {
        const { exportBuild } = await import('../builder/exporters.js');
        for (const o of outputs) {
          await exportBuild(this.stores, result.image, o.type === 'docker' || o.type === 'oci' ? { ...o, names: o.names ? o.names.map(tagName) : tags } : o);
        }
      }
      return { ...result, tags: result.tags.map((t) => ImageStore.display(t)) };
    } finally {
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    }
  }

  /** Empties the build cache (`all`: every entry, else the dangling ones) and deletes what it alone kept. */
  async prune(opts: { all?: boolean } = {}): Promise<BuildCachePruneResponse> {
    const { pruneBuildCache } = await import('../builder/prune.js');
    const r = pruneBuildCache(this.stores, opts);
    return { CachesDeleted: r.deleted, SpaceReclaimed: r.reclaimed };
  }
}

function readDockerfileAt(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new InvalidArgumentError(`unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat ${file}: no such file or directory`);
    if (code === 'EISDIR') throw new InvalidArgumentError(`unable to prepare context: ${file} is a directory, not a Dockerfile`);
    throw new InvalidArgumentError(`unable to read Dockerfile ${file}: ${(e as Error).message}`);
  }
}
