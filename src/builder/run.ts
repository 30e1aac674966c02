// RUN: its command line (the SHELL form, heredocs, a script with its own interpreter), the variables it sees, and
// the step's container: created from the stage's image, its output streamed to the build's log, its writable
// layer committed as the step's layer, and removed whatever happens.
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ContainerManager } from '../container/manager.js';
import type { Ulimit } from '../container/store.js';
import { chompHeredocContent, parseHeredocWord, type ParsedCommand } from '../dockerfile/parser.js';
import type { ImageRecord } from '../image/store.js';
import type { LayerRecord } from '../layer/types.js';
import type { ContainerConfig } from '../oci/types.js';
import type { Stores } from '../stores.js';
import { BuildError } from './errors.js';
import type { BuildLogger } from './output.js';
import type { PreparedMounts } from './runmounts.js';
import { BUILD_PID_LABEL } from './workdirs.js';

const DEFAULT_SHELL = ['/bin/sh', '-c'];
/** The proxy variables RUN sees from --build-arg without an ARG (docker's predefined ARGs). */
export const PROXY_ARGS = new Set(['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']);
/** The lines of output a failed RUN shows again. */
const TAIL_LINES = 10;

/** A heredoc RUN runs as a file (buildkit mounts it at /dev/pipes/NAME). */
export interface RunScript {
  name: string;
  data: string;
}

/** RUN's argv with the stage's SHELL (`cfg.Shell`) and its heredocs, and the script it runs, if any. */
export function runArgv(cmd: ParsedCommand & { kind: 'RUN' }, cfg: ContainerConfig): { args: string[]; script?: RunScript } {
  const shell = cfg.Shell && cfg.Shell.length > 0 ? cfg.Shell : DEFAULT_SHELL;
  let cmdLine = cmd.cmdLine;
  let prependShell = cmd.prependShell;
  let script: RunScript | undefined;
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
  return { args: prependShell ? [...shell, ...cmdLine] : cmdLine, ...(script ? { script } : {}) };
}

/**
 * The variables a RUN sees besides the config's ENV: the stage's ARGs with values, and the proxy build args it
 * did not declare (an ENV of the same name wins).
 */
export function runEnv(cfg: ContainerConfig, args: Map<string, string | undefined>, buildArgs: Record<string, string>): string[] {
  const configEnv = new Set((cfg.Env ?? []).map((e) => e.split('=')[0]!));
  const env: string[] = [];
  for (const [k, v] of args) if (v !== undefined && !configEnv.has(k)) env.push(`${k}=${v}`);
  for (const [k, v] of Object.entries(buildArgs)) {
    if (PROXY_ARGS.has(k) && !args.has(k) && !configEnv.has(k)) env.push(`${k}=${v}`);
  }
  return env;
}

/** One RUN step's container. */
export interface RunJob {
  image: ImageRecord;
  args: string[];
  env: string[];
  network: string;
  script?: RunScript;
  mounts?: PreparedMounts;
  addHosts?: string[];
  ulimits?: Ulimit[];
}

/** What the step's container needs of the build. */
export interface RunControl {
  log: BuildLogger;
  workDir(): string;
  /** Told what kills the running container (for SIGINT/SIGTERM), and undefined once it ended. */
  setStop(stop: (() => void) | undefined): void;
  interrupted(): boolean;
  /** Throws the build's interruption error once it was interrupted. */
  checkInterrupted(): void;
  /** The container's writable layer as the step's layer (undefined: it changed nothing). */
  commit(containerId: string): Promise<LayerRecord | undefined>;
}

/** Runs a RUN step's container to its end; its layer, or a BuildError with the output's last lines. */
export async function runContainer(manager: ContainerManager, stores: Stores, job: RunJob, ctl: RunControl): Promise<LayerRecord | undefined> {
  const { containers } = stores;
  const { readLog } = await import('../container/logs.js');
  const extraEnv = [...job.env];
  const volumes: string[] = [];
  if (job.script) {
    const file = path.join(ctl.workDir(), `heredoc-${randomBytes(4).toString('hex')}`);
    fs.writeFileSync(file, job.script.data, { mode: 0o755 });
    volumes.push(`${file}:/dev/pipes/${job.script.name}:ro`);
  }
  const mounts = job.mounts;
  if (mounts) extraEnv.push(...mounts.env);
  let c = await manager.create(
    {
      image: job.image.digest,
      command: job.args,
      entrypoint: '',
      env: extraEnv,
      network: job.network,
      volumes,
      specMounts: mounts?.mounts,
      addHosts: job.addHosts,
      ulimits: job.ulimits,
      runtime: process.env.PLY_RUNTIME,
      // A killed build's containers are found by this (prune removes them).
      labels: [`${BUILD_PID_LABEL}=${process.pid}`],
    },
    job.image.digest,
    job.image.id,
  );
  // RUN does not mount the image's VOLUMEs (buildkit): what it writes there stays in the layer.
  if (c.spec.anonymousVolumes.length > 0) {
    const anon = new Set(c.spec.anonymousVolumes);
    containers.update(c.id, { spec: { ...c.spec, mounts: c.spec.mounts.filter((m) => !(m.type === 'volume' && anon.has(m.source!))), anonymousVolumes: [] } });
    for (const v of anon) stores.volumes.forgetAnonymous(v);
    c = containers.get(c.id)!;
  }
  const log = ctl.log;
  log.running(c.id);
  const logFile = manager.logPath(c);
  let offset = 0;
  const tail: string[] = [];
  let partial = '';
  const pump = () => {
    const r = readLog(logFile, offset);
    offset = r.offset;
    for (const e of r.entries) {
      log.output(e.log);
      const lines = (partial + e.log).split('\n');
      partial = lines.pop()!;
      tail.push(...lines);
      if (tail.length > TAIL_LINES) tail.splice(0, tail.length - TAIL_LINES);
    }
  };
  const remove = () => manager.removeStopped(containers.get(c.id) ?? c, true);
  const timer = setInterval(pump, 40);
  ctl.setStop(() => {
    try {
      manager.runtime(c).kill(c.id, 'SIGKILL', true);
    } catch {
      // not started yet, or already gone
    }
  });
  let code: number;
  try {
    code = await manager.supervise(c, 'detached', undefined, mounts?.secretEnv.length ? { env: mounts.secretEnv } : undefined);
  } catch (e) {
    clearInterval(timer);
    ctl.setStop(undefined);
    pump();
    remove();
    ctl.checkInterrupted();
    throw new BuildError((e as Error).message, tail);
  }
  clearInterval(timer);
  ctl.setStop(undefined);
  pump();
  if (partial) tail.push(partial);
  if (ctl.interrupted()) {
    remove();
    ctl.checkInterrupted();
  }
  if (code !== 0) {
    remove();
    throw new BuildError(`The command '${job.args.join(' ')}' returned a non-zero code: ${code}`, tail.slice(-TAIL_LINES), code, code);
  }
  const layer = await ctl.commit(c.id);
  remove();
  log.removed(c.id);
  return layer;
}
