// Container commands: run, create, start, stop, kill, restart, rm, ps, logs, exec, wait, diff, cp, top,
// rename, pause, unpause, container prune, container inspect.
import { spawnSync } from 'node:child_process';
import { Command } from 'commander';
import type { AttachSession, ContainerSummary, CreateOptions, Engine } from '../engine.js';
import { DetachKeys, parseDetachKeys } from '../engine/detach.js';
import { InvalidArgumentError, NotFoundError, PlyError, StartError } from '../errors.js';
import { withEngine, out } from './engine.js';
import { registerStatsCommand } from './stats.js';
import { createdSince, dockerTime, humanSize, humanSizeWithPrecision, truncateCommand } from './format.js';
import { boolFlag, collect, commandGroup, intValue } from './options.js';
import { portsColumn } from './network.js';
import { writeAtomicallyToFd, type Inspected } from './output.js';
import { addCreateOptions, addResourceOptions, resourceFlags, toCreateOptions, type RunFlags } from './create-flags.js';

/** Creates the container, pulling its image first when the --pull policy says so (progress on stderr, as docker). */
async function createContainer(engine: Engine, o: CreateOptions): Promise<string> {
  const { pulled } = await engine.images.ensure(o.image, {
    pull: o.pull,
    onPull: (why) => {
      if (why === 'missing') process.stderr.write(`Unable to find image '${o.image}' locally\n`);
    },
    // docker pulls with its progress on stderr here, keeping stdout for the container.
    onProgress: (m) => {
      if (m.id && m.status === 'Pull complete') process.stderr.write(`${m.id}: Pull complete\n`);
    },
  });
  if (pulled) process.stderr.write(`Digest: ${pulled.digest}\nStatus: Downloaded newer image for ${o.image}\n`);
  const created = await engine.containers.create(o);
  for (const w of created.Warnings) process.stderr.write(`${w}\n`);
  return created.Id;
}

/** docker's list sizes: 3 significant digits. */
const listSize = (n: number) => humanSizeWithPrecision(n, 3);

/** docker's check before attaching a terminal's input: stdin must be one (exit 1, nothing created). */
function checkTty(attachStdin: boolean | undefined, tty: boolean | undefined): void {
  if (attachStdin && tty && !process.stdin.isTTY) throw new PlyError('the input device is not a TTY');
}

function runFailureOf<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw runFailure(e);
  }
}

/**
 * `run` as docker's CLI does it: attach and wait before the start (nothing written at the start is lost), relay
 * until the container ends or the detach keys are typed (exit 0, the container keeps running).
 */
async function runViaMonitor(engine: Engine, id: string, o: { interactive: boolean; tty: boolean; sigProxy: boolean; keys: Buffer; autoRemove: boolean }): Promise<number> {
  const stop = new AbortController();
  const session = await engine.containers.attach(id, { signal: stop.signal });
  const waiting = engine.containers.wait(id, { condition: o.autoRemove ? 'removed' : 'next-exit', signal: stop.signal });
  waiting.catch(() => undefined);
  try {
    await engine.containers.start(id);
  } catch (e) {
    stop.abort();
    session.close();
    throw e;
  }
  const detached = await relay(engine, id, session, { attachStdin: o.interactive, tty: o.tty, sigProxy: o.sigProxy, keys: o.keys });
  if (detached) {
    stop.abort();
    return 0;
  }
  return (await waiting).StatusCode;
}

/**
 * docker run exits 125 when anything fails before the container's process runs (126/127: it could not be
 * executed). docker's CLI reads a failed start's message as well: "no such file or directory" (a volume's
 * device, a bind source) makes it 127 and "permission denied" or "is a directory" 126, whatever failed.
 */
function runFailure(e: unknown): unknown {
  if (e instanceof StartError) {
    if (e.exitCode === 125) {
      if (/executable file not found|no such file or directory/.test(e.message)) e.exitCode = 127;
      else if (/permission denied|is a directory/.test(e.message)) e.exitCode = 126;
    }
    return e;
  }
  const err = e instanceof PlyError ? e : new PlyError((e as Error)?.message ?? String(e), { cause: e });
  err.exitCode = 125;
  return err;
}

export function registerContainerCommands(program: Command): void {
  const container = commandGroup(program, 'container', 'Manage containers');
  registerStatsCommand(program);
  registerStatsCommand(container);

  for (const cmd of [program.command('run'), container.command('run')]) {
    addCreateOptions(cmd)
      .description('Create and run a new container from an image')
      .usage('[OPTIONS] IMAGE [COMMAND] [ARG...]')
      .option('-d, --detach', 'Run container in background and print container ID')
      .option('--rm', 'Automatically remove the container and its associated anonymous volumes when it exits')
      .option('--sig-proxy [bool]', 'Proxy received signals to the process', boolFlag('--sig-proxy'), true)
      .option('--detach-keys <string>', 'Override the key sequence for detaching a container')
      .action(async (image: string, command: string[], f: RunFlags) => {
        checkTty(f.interactive && !f.detach, f.tty);
        if (f.detach && f.sigProxy === false) throw new InvalidArgumentError('Conflicting options: --sig-proxy and -d');
        const keys = runFailureOf(() => parseDetachKeys(f.detachKeys ?? ''));
        // docker's way (create, attach, start under a monitor, wait) where ply's CLI must be able to leave a running
        // container: a terminal with its detach keys, or signals that are not passed on.
        const viaMonitor = !f.detach && ((!!f.tty && !!f.interactive && !!process.stdin.isTTY) || f.sigProxy === false);
        await withEngine(async (engine) => {
          try {
            const o = await toCreateOptions(image, command, f);
            if (viaMonitor && f.tty && process.stdout.isTTY) o.consoleSize = [process.stdout.rows, process.stdout.columns];
            const id = await createContainer(engine, o);
            if (f.detach) {
              // docker prints the ID once the container exists, before starting it.
              out(`${id}\n`);
              await engine.containers.start(id);
              return;
            }
            if (viaMonitor) {
              process.exitCode = await runViaMonitor(engine, id, { interactive: !!f.interactive, tty: !!f.tty, sigProxy: f.sigProxy !== false, keys, autoRemove: !!f.rm });
              return;
            }
            // Signals reach the container through the runtime (ply passes them on: runtimeSignals); ply stays to collect the exit.
            const ignore = () => undefined;
            process.on('SIGINT', ignore);
            process.on('SIGTERM', ignore);
            try {
              process.exitCode = await engine.containers.runAttached(id);
            } finally {
              process.off('SIGINT', ignore);
              process.off('SIGTERM', ignore);
            }
          } catch (e) {
            throw runFailure(e);
          }
        });
      });
  }

  for (const cmd of [program.command('create'), container.command('create')]) {
    addCreateOptions(cmd)
      .description('Create a new container')
      .usage('[OPTIONS] IMAGE [COMMAND] [ARG...]')
      .option('--rm', 'Automatically remove the container when it exits')
      .action(async (image: string, command: string[], f: RunFlags) =>
        withEngine(async (engine) => {
          out(`${await createContainer(engine, await toCreateOptions(image, command, f))}\n`);
        }),
      );
  }

  for (const cmd of [program.command('start'), container.command('start')]) {
    cmd
      .description('Start one or more stopped containers')
      .usage('[OPTIONS] CONTAINER [CONTAINER...]')
      .argument('<containers...>')
      .option('-a, --attach', 'Attach STDOUT/STDERR and forward signals')
      .option('-i, --interactive', "Attach container's STDIN")
      .action(async (refs: string[], f: { attach?: boolean; interactive?: boolean }) =>
        withEngine(async (engine) => {
          if ((f.attach || f.interactive) && refs.length > 1) throw new InvalidArgumentError('you cannot start and attach multiple containers at once');
          if (f.attach || f.interactive) {
            const c = engine.containers.get(refs[0]!);
            checkTty(f.interactive && c.spec.openStdin, c.spec.tty);
            if (engine.containers.isRunning(c)) return;
            try {
              process.exitCode = await engine.containers.runAttached(c.id);
            } catch (e) {
              // The container could not start: a failed command (1), not its process's code.
              if (e instanceof StartError) e.exitCode = 1;
              throw e;
            }
            return;
          }
          const failed: string[] = [];
          for (const ref of refs) {
            try {
              const c = engine.containers.get(ref);
              if (!engine.containers.isRunning(c)) await engine.containers.start(c.id);
              out(`${ref}\n`);
            } catch (e) {
              if (!(e instanceof PlyError)) throw e;
              process.stderr.write(`Error: ${e.message}\n`);
              failed.push(ref);
            }
          }
          if (failed.length) throw new PlyError(`failed to start containers: ${failed.join(', ')}`);
        }),
      );
  }

  /** Runs `fn` for each container; a failure is reported and the others go on (exit 1; `ignoreMissing`: a missing one is reported only). */
  const eachContainer = async (refs: string[], fn: (engine: Engine, ref: string) => Promise<void> | void, ignoreMissing = false) =>
    withEngine(async (engine) => {
      let failed = false;
      for (const ref of refs) {
        try {
          await fn(engine, ref);
        } catch (e) {
          if (!(e instanceof PlyError)) throw e;
          process.stderr.write(`Error: ${e.message}\n`);
          if (!(ignoreMissing && e instanceof NotFoundError)) failed = true;
        }
      }
      if (failed) process.exitCode = 1;
    });

  for (const cmd of [program.command('stop'), container.command('stop')]) {
    cmd
      .description('Stop one or more running containers')
      .usage('[OPTIONS] CONTAINER [CONTAINER...]')
      .argument('<containers...>')
      .option('-s, --signal <string>', 'Signal to send to the container')
      .option('-t, --time <int>', 'Seconds to wait before killing the container', intValue('-t, --time'))
      .action(async (refs: string[], f: { signal?: string; time?: number }) =>
        eachContainer(refs, async (engine, ref) => {
          await engine.containers.stop(ref, { timeout: f.time, signal: f.signal });
          out(`${ref}\n`);
        }),
      );
  }

  for (const cmd of [program.command('kill'), container.command('kill')]) {
    cmd
      .description('Kill one or more running containers')
      .usage('[OPTIONS] CONTAINER [CONTAINER...]')
      .argument('<containers...>')
      .option('-s, --signal <string>', 'Signal to send to the container', 'KILL')
      .action(async (refs: string[], f: { signal: string }) =>
        eachContainer(refs, (engine, ref) => {
          engine.containers.kill(ref, f.signal || 'KILL'); // docker: an empty -s is the default
          out(`${ref}\n`);
        }),
      );
  }

  for (const cmd of [program.command('restart'), container.command('restart')]) {
    cmd
      .description('Restart one or more containers')
      .usage('[OPTIONS] CONTAINER [CONTAINER...]')
      .argument('<containers...>')
      .option('-s, --signal <string>', 'Signal to send to the container')
      .option('-t, --time <int>', 'Seconds to wait before killing the container', intValue('-t, --time'))
      .action(async (refs: string[], f: { signal?: string; time?: number }) =>
        eachContainer(refs, async (engine, ref) => {
          await engine.containers.restart(ref, { timeout: f.time, signal: f.signal });
          out(`${ref}\n`);
        }),
      );
  }

  for (const cmd of [program.command('rm'), container.command('rm'), container.command('remove')]) {
    cmd
      .description('Remove one or more containers')
      .usage('[OPTIONS] CONTAINER [CONTAINER...]')
      .argument('<containers...>')
      .option('-f, --force', 'Force the removal of a running container (uses SIGKILL)')
      .option('-v, --volumes', 'Remove anonymous volumes associated with the container')
      .action(async (refs: string[], f: { force?: boolean; volumes?: boolean }) =>
        eachContainer(
          refs,
          async (engine, ref) => {
            await engine.containers.remove(ref, { force: f.force, volumes: f.volumes });
            out(`${ref}\n`);
          },
          f.force,
        ),
      );
  }

  for (const cmd of [program.command('update'), container.command('update')]) {
    addResourceOptions(cmd)
      .description('Update configuration of one or more containers')
      .usage('[OPTIONS] CONTAINER [CONTAINER...]')
      .argument('<containers...>')
      .action(async (refs: string[], f: RunFlags) => {
        const resources = resourceFlags(f);
        const { parseRestartPolicy } = await import('../engine/containers.js');
        const restartPolicy = f.restart !== undefined ? parseRestartPolicy(f.restart) : undefined;
        if (Object.keys(resources).length === 0 && !restartPolicy) {
          // docker's CLI refuses this itself: a plain error (exit 1), not the daemon's 125.
          const e = new InvalidArgumentError('you must provide one or more flags when using this command');
          e.exitCode = 1;
          throw e;
        }
        await eachContainer(refs, (engine, ref) => {
          const r = engine.containers.update(ref, { resources, restartPolicy });
          for (const w of r.Warnings) process.stderr.write(`${w}\n`);
          out(`${ref}\n`);
        });
      });
  }

  // pause freezes every process of the container (the freezer cgroup); unpause thaws them.
  for (const [verb, what] of [
    ['pause', 'Pause'],
    ['unpause', 'Unpause'],
  ] as const) {
    for (const cmd of [program.command(verb), container.command(verb)]) {
      cmd
        .description(`${what} all processes within one or more containers`)
        .argument('<containers...>')
        .action(async (refs: string[]) =>
          eachContainer(refs, (engine, ref) => {
            engine.containers[verb](ref);
            out(`${ref}\n`);
          }),
        );
    }
  }

  for (const cmd of [program.command('ps'), container.command('ls'), container.command('ps'), container.command('list')]) {
    cmd
      .description('List containers')
      .usage('[OPTIONS]')
      .option('-a, --all', 'Show all containers (default shows just running)')
      .option('-f, --filter <filter>', 'Filter output based on conditions provided', collect, [])
      .option('--format <string>', 'Format output using a custom template')
      .option('-n, --last <int>', 'Show n last created containers (includes all states)', intValue('-n, --last'))
      .option('-l, --latest', 'Show the latest created container (includes all states)')
      .option('--no-trunc', "Don't truncate output")
      .option('-q, --quiet', 'Only display container IDs')
      .option('-s, --size', 'Display total file sizes')
      .action(psAction);
  }

  for (const cmd of [program.command('logs'), container.command('logs')]) {
    cmd
      .description('Fetch the logs of a container')
      .usage('[OPTIONS] CONTAINER')
      .argument('<container>')
      .option('-f, --follow', 'Follow log output')
      .option('-n, --tail <string>', 'Number of lines to show from the end of the logs', 'all')
      .option('-t, --timestamps', 'Show timestamps')
      .option('--since <string>', 'Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)')
      .option('--until <string>', 'Show logs before a timestamp or relative')
      .action(logsAction);
  }

  for (const cmd of [program.command('exec'), container.command('exec')]) {
    cmd
      .description('Execute a command in a running container')
      .usage('[OPTIONS] CONTAINER COMMAND [ARG...]')
      .argument('<container>')
      .argument('<command...>')
      .passThroughOptions()
      .option('-d, --detach', 'Detached mode: run command in the background')
      .option('-e, --env <list>', 'Set environment variables', collect, [])
      .option('--env-file <list>', 'Read in a file of environment variables', collect, [])
      .option('-i, --interactive', 'Keep STDIN open even if not attached')
      .option('-t, --tty', 'Allocate a pseudo-TTY')
      .option('-u, --user <string>', 'Username or UID (format: "<name|uid>[:<group|gid>]")')
      .option('-w, --workdir <string>', 'Working directory inside the container')
      .option('--privileged', 'Give extended privileges to the command')
      .action(async (ref: string, command: string[], f: { detach?: boolean; env: string[]; envFile: string[]; interactive?: boolean; tty?: boolean; user?: string; workdir?: string }) =>
        withEngine(async (engine) => {
          checkTty(f.interactive && !f.detach, f.tty);
          const { Id } = engine.containers.execCreate(ref, {
            cmd: command,
            tty: f.tty,
            interactive: f.interactive,
            envFiles: f.envFile,
            env: f.env,
            user: f.user,
            workdir: f.workdir,
          });
          const ignore = () => undefined;
          process.on('SIGINT', ignore);
          try {
            process.exitCode = await engine.containers.execStart(Id, { detach: f.detach });
          } catch (e) {
            // Detached, the daemon's refusal is a failed command (1); attached, a command that cannot start is 126.
            if (e instanceof StartError && f.detach) e.exitCode = 1;
            throw e;
          } finally {
            process.off('SIGINT', ignore);
          }
        }),
      );
  }

  for (const cmd of [program.command('attach'), container.command('attach')]) {
    cmd
      .description("Attach local standard input, output, and error streams to a running container")
      .usage('[OPTIONS] CONTAINER')
      .argument('<container>')
      .option('--no-stdin', 'Do not attach STDIN')
      .option('--sig-proxy [bool]', 'Proxy all received signals to the process', boolFlag('--sig-proxy'), true)
      .option('--detach-keys <string>', 'Override the key sequence for detaching a container')
      .action(async (ref: string, f: { stdin: boolean; sigProxy: boolean; detachKeys?: string }) =>
        withEngine(async (engine) => {
          process.exitCode = await attachAction(engine, ref, f.stdin, { sigProxy: f.sigProxy, detachKeys: f.detachKeys });
        }),
      );
  }

  for (const cmd of [program.command('wait'), container.command('wait')]) {
    cmd
      .description('Block until one or more containers stop, then print their exit codes')
      .argument('<containers...>')
      .action(async (refs: string[]) =>
        eachContainer(refs, async (engine, ref) => {
          out(`${(await engine.containers.wait(ref)).StatusCode}\n`);
        }),
      );
  }

  for (const cmd of [program.command('diff'), container.command('diff')]) {
    cmd
      .description("Inspect changes to files or directories on a container's filesystem")
      .argument('<container>')
      .action(async (ref: string) =>
        withEngine(async (engine) => {
          for (const ch of await engine.containers.changes(ref)) out(`${'CAD'[ch.Kind]} ${ch.Path}\n`);
        }),
      );
  }

  for (const cmd of [program.command('cp'), container.command('cp')]) {
    cmd
      .description('Copy files/folders between a container and the local filesystem')
      .usage('[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n       ply cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH')
      .argument('<src>')
      .argument('<dest>')
      .option('-a, --archive', 'Archive mode (copy all uid/gid information)')
      .option('-L, --follow-link', 'Always follow symbol link in SRC_PATH')
      .option('-q, --quiet', 'Suppress progress output during copy')
      .action(async (src: string, dest: string, f: { archive?: boolean; followLink?: boolean }) =>
        withEngine(async (engine) => {
          if (src === '-' || dest === '-') await copyStream(engine, src, dest, f);
          else await engine.containers.copy(src, dest, f);
        }),
      );
  }

  for (const cmd of [program.command('top'), container.command('top')]) {
    cmd
      .description('Display the running processes of a container')
      .usage('CONTAINER [ps OPTIONS]')
      .argument('<container>')
      .argument('[psOptions...]')
      .passThroughOptions()
      .action(async (ref: string, psOptions: string[]) =>
        withEngine(async (engine) => {
          const { tabwrite } = await import('../gotemplate/template.js');
          const top = engine.containers.top(ref, psOptions);
          // docker's tabwriter: minimum width 20, padding 3.
          out(tabwrite([top.Titles, ...top.Processes], { minWidth: 20, padding: 3 }));
        }),
      );
  }

  for (const cmd of [program.command('rename'), container.command('rename')]) {
    cmd
      .description('Rename a container')
      .usage('CONTAINER NEW_NAME')
      .argument('<container>')
      .argument('<newName>')
      .action(async (ref: string, name: string) =>
        withEngine((engine) => engine.containers.rename(ref, name)),
      );
  }

  for (const cmd of [program.command('commit'), container.command('commit')]) {
    cmd
      .description("Create a new image from a container's changes")
      .usage('[OPTIONS] CONTAINER [REPOSITORY[:TAG]]')
      .argument('<container>')
      .argument('[reference]')
      .option('-a, --author <string>', 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
      .option('-c, --change <instruction>', 'Apply Dockerfile instruction to the created image', collect, [])
      .option('-m, --message <string>', 'Commit message')
      .option('-p, --pause [bool]', 'Pause container during commit (default true)')
      .option('--no-pause', 'Do not pause the container during commit')
      .action(async (ref: string, reference: string | undefined, f: { author?: string; change: string[]; message?: string; pause?: boolean | string }) =>
        withEngine(async (engine) => {
          const pause = !(f.pause === false || f.pause === 'false' || f.pause === '0');
          const rec = await engine.containers.commit(ref, { author: f.author, changes: f.change, message: f.message, pause, reference });
          out(`${rec.id}\n`);
        }),
      );
  }

  for (const cmd of [program.command('export'), container.command('export')]) {
    cmd
      .description("Export a container's filesystem as a tar archive")
      .usage('[OPTIONS] CONTAINER')
      .argument('<container>')
      .option('-o, --output <string>', 'Write to a file, instead of STDOUT')
      .action(async (ref: string, f: { output?: string }) =>
        withEngine(async (engine) => {
          const c = engine.containers.get(ref);
          if (!f.output && process.stdout.isTTY) {
            throw new PlyError('cowardly refusing to save to a terminal. Use the -o flag or redirect');
          }
          await writeAtomicallyToFd(f.output, (out) => engine.containers.export(c.id, out));
        }),
      );
  }

  container
    .command('prune')
    .description('Remove all stopped containers')
    .option('-f, --force', 'Do not prompt for confirmation')
    .option('--filter <filter>', 'Provide filter values', collect, [])
    .action(async (f: { force?: boolean; filter: string[] }) => {
      if (!f.force && !(await (await import('./prompt.js')).confirm('WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] '))) return;
      await withEngine(async (engine) => {
        const r = engine.containers.prune({ filters: f.filter });
        if (r.ContainersDeleted.length) out(`Deleted Containers:\n${r.ContainersDeleted.join('\n')}\n\n`);
        out(`Total reclaimed space: ${humanSize(r.SpaceReclaimed)}\n`);
      });
    });

  container
    .command('inspect')
    .description('Display detailed information on one or more containers')
    .argument('<containers...>')
    .option('-f, --format <string>', 'Format output using a custom template')
    .option('-s, --size', 'Display total file sizes')
    .action(async (refs: string[], f: { format?: string; size?: boolean }) =>
      withEngine(async (engine) => {
        const { printInspect } = await import('./output.js');
        const items: Inspected[] = [];
        let missing = 0;
        for (const r of refs) {
          try {
            items.push({ kind: 'container', value: engine.containers.inspect(r, { size: f.size }) });
          } catch (e) {
            if (!(e instanceof NotFoundError)) throw e;
            process.stderr.write(`Error: No such container: ${r}\n`);
            missing++;
          }
        }
        await printInspect(items, f.format);
        if (missing) process.exitCode = 1;
      }),
    );
}

/** Go's os.ModeSymlink and os.ModeDir in a path stat's mode. */
const GO_MODE_SYMLINK = 2 ** 27;
const GO_MODE_DIR = 2 ** 31;

/**
 * `ply cp CONTAINER:PATH -` writes a tar of PATH to stdout; `ply cp - CONTAINER:DIR` extracts a tar from stdin
 * into DIR, which must be a directory (docker's rules and messages).
 */
async function copyStream(engine: Engine, src: string, dest: string, f: { followLink?: boolean }): Promise<void> {
  const split = (arg: string) => {
    const i = arg.indexOf(':');
    return arg === '-' || arg.startsWith('/') || arg.startsWith('.') || i <= 0 ? undefined : { ref: arg.slice(0, i), path: arg.slice(i + 1) || '/' };
  };
  const from = split(src);
  const to = split(dest);
  if (from && to) throw new InvalidArgumentError('copying between containers is not supported');
  if (from) {
    let p = from.path;
    if (f.followLink) {
      const st = await engine.containers.archiveStat(from.ref, p);
      if (st.mode & GO_MODE_SYMLINK) p = st.linkTarget.startsWith('/') ? st.linkTarget : `${p.replace(/[^/]*\/*$/, '')}${st.linkTarget}`;
    }
    await engine.containers.archiveGet(from.ref, p, process.stdout);
    return;
  }
  if (!to || src !== '-') throw new InvalidArgumentError('must specify at least one container source');
  let isDir = false;
  try {
    isDir = ((await engine.containers.archiveStat(to.ref, to.path)).mode & GO_MODE_DIR) !== 0;
  } catch (e) {
    if (!(e instanceof NotFoundError) || /No such container/.test(e.message)) throw e;
  }
  if (!isDir) throw new InvalidArgumentError(`destination "${dest}" must be a directory`);
  await engine.containers.archivePut(to.ref, to.path, process.stdin);
}


async function psAction(f: { all?: boolean; filter: string[]; format?: string; last?: number; latest?: boolean; trunc: boolean; quiet?: boolean; size?: boolean }) {
  await withEngine(async (engine) => {
    const { renderTable, TemplateError, goQuote } = await import('../gotemplate/template.js');
    const limit = f.latest ? 1 : f.last;
    let format: string;
    if (f.quiet) format = '{{.ID}}';
    else if (f.format === 'json') format = '{{json .}}';
    else if (f.format && f.format !== 'table') format = f.format;
    else format = `table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}${f.size ? '\t{{.Size}}' : ''}`;
    // docker asks for sizes when the format shows them.
    const size = f.size || (!f.quiet && /\.Size\b|json \./.test(format));
    const list = engine.containers.list({ all: f.all, filters: f.filter, limit, size });
    const rows = list.map((c) => psRow(c, f.trunc, goQuote));
    try {
      out(
        renderTable(format, rows, {
          ID: 'CONTAINER ID', Image: 'IMAGE', Command: 'COMMAND', CreatedAt: 'CREATED AT', RunningFor: 'CREATED', Status: 'STATUS',
          State: 'STATE', Ports: 'PORTS', Names: 'NAMES', Labels: 'LABELS', Mounts: 'MOUNTS', Networks: 'NETWORKS', Size: 'SIZE',
          LocalVolumes: 'LOCAL VOLUMES', Platform: 'PLATFORM',
        }, { strict: true, typeName: '*formatter.ContainerContext' }),
      );
    } catch (e) {
      // docker's ps words its template errors so.
      if (e instanceof TemplateError) e.message = e.message.replace(/^template parsing error: (?=template: :\d+:\d+: executing)/, 'failed to execute template: ').replace(/^template parsing error: /, 'failed to parse template: ');
      throw e;
    }
  });
}

/**
 * docker attach: the container's output from now on (and stdin when it keeps one open), through its monitor;
 * returns the container's exit code once it stops (docker's). A TTY container's terminal follows ours.
 */
async function attachAction(engine: Engine, ref: string, withStdin: boolean, opts: { sigProxy: boolean; detachKeys?: string }): Promise<number> {
  const keys = parseDetachKeys(opts.detachKeys ?? '');
  const c = engine.containers.inspect(ref);
  if (c.State.Status !== 'running' && c.State.Status !== 'paused') throw new PlyError('You cannot attach to a stopped container, start it first');
  const attachStdin = withStdin && c.Config.OpenStdin;
  checkTty(attachStdin, c.Config.Tty);
  const session = await engine.containers.attach(c.Id);
  const detached = await relay(engine, c.Id, session, { attachStdin, tty: c.Config.Tty, sigProxy: opts.sigProxy, keys });
  if (detached) {
    // docker's attach: the words of its EscapeError, and a failed command.
    process.stderr.write('read escape sequence\n');
    return 1;
  }
  return (await engine.containers.wait(c.Id)).StatusCode;
}

/**
 * Relays a session between this process's stdio and a container as docker's CLI does: raw mode and the window size
 * for a TTY, the detach keys in its input (true when they were typed: the container keeps running), and the
 * signals this process gets passed on to a container without a TTY (--sig-proxy).
 */
async function relay(engine: Engine, id: string, session: AttachSession, o: { attachStdin: boolean; tty: boolean; sigProxy: boolean; keys: Buffer }): Promise<boolean> {
  const raw = o.tty && o.attachStdin && process.stdin.isTTY;
  const resize = () => session.resize(process.stdout.rows, process.stdout.columns);
  if (o.tty && process.stdout.isTTY) {
    void session.connected.then(resize);
    process.stdout.on('resize', resize);
  }
  let detached = false;
  const detach = o.tty ? new DetachKeys(o.keys) : undefined;
  const onData = (d: Buffer) => {
    if (detached) return;
    const r = detach ? detach.push(d) : { data: d, detached: false };
    if (r.data.length) session.stdin(r.data);
    if (r.detached) {
      detached = true;
      session.close();
    }
  };
  const onEnd = () => session.closeStdin();
  // docker's raw mode also stops the terminal turning \n into \r\n (the container's pty did that already);
  // Node's keeps it, so stty clears it on the terminal ply writes to, and sets it back after.
  const onlcr = (on: boolean) => raw && process.stdout.isTTY && spawnSync('stty', [on ? 'onlcr' : '-onlcr'], { stdio: [1, 'ignore', 'ignore'] });
  if (o.attachStdin) {
    if (raw) process.stdin.setRawMode(true);
    onlcr(false);
    process.stdin.on('data', onData).on('end', onEnd);
  }
  const signals: NodeJS.Signals[] = o.sigProxy && !o.tty ? ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] : [];
  const forward = (sig: NodeJS.Signals) => {
    try {
      engine.containers.kill(id, sig);
    } catch {
      // it has just stopped
    }
  };
  for (const sig of signals) process.on(sig, forward);
  try {
    for await (const chunk of session.output) {
      if (detached) break;
      (chunk.stream === 'stderr' ? process.stderr : process.stdout).write(chunk.data);
    }
  } finally {
    for (const sig of signals) process.off(sig, forward);
    process.stdout.off('resize', resize);
    if (o.attachStdin) {
      process.stdin.off('data', onData).off('end', onEnd);
      onlcr(true);
      if (raw) process.stdin.setRawMode(false);
      process.stdin.pause();
    }
    session.close();
  }
  return detached;
}

/** A row of docker ps: docker's ContainerContext, its fields and its Label method. */
function psRow(c: ContainerSummary, trunc: boolean, goQuote: (s: string) => string) {
  const created = new Date(c.Created * 1000);
  const shorten = (s: string, n: number) => (trunc ? truncateCommand(s, n) : s);
  return {
    ID: trunc ? c.Id.slice(0, 12) : c.Id,
    Image: c.Image,
    Command: goQuote(shorten(c.Command, 20)),
    // A getter: the local time zone's name costs ~15 ms to look up, and most formats never show it.
    get CreatedAt() {
      return dockerTime(created);
    },
    RunningFor: createdSince(created),
    Status: c.Status,
    State: c.State,
    Ports: portsColumn(c.Ports),
    Names: c.Names.map((n) => n.replace(/^\//, '')).join(','),
    Labels: Object.entries(c.Labels).map(([k, v]) => `${k}=${v}`).join(','),
    Mounts: c.Mounts.map((m) => shorten(m.Name || m.Source, 15)).join(','),
    LocalVolumes: String(c.Mounts.filter((m) => m.Driver === 'local').length),
    Networks: Object.keys(c.NetworkSettings.Networks).sort().join(','),
    Platform: null,
    Size: c.SizeRootFs ? `${listSize(c.SizeRw ?? 0)} (virtual ${listSize(c.SizeRootFs)})` : listSize(c.SizeRw ?? 0),
    /** `{{.Label "key"}}`: one label's value. */
    Label(name: string): string {
      return c.Labels[name] ?? '';
    },
  };
}

async function logsAction(ref: string, f: { follow?: boolean; tail: string; timestamps?: boolean; since?: string; until?: string }) {
  await withEngine(async (engine) => {
    const lines = await engine.containers.logs(ref, { follow: f.follow, tail: f.tail, since: f.since, until: f.until });
    for await (const e of lines) {
      (e.stream === 'stderr' ? process.stderr : process.stdout).write(f.timestamps ? `${e.time} ${e.log}` : e.log);
    }
  });
}
