// Container commands: run, create, start, stop, kill, restart, rm, ps, logs, exec, wait, diff, cp, top,
// rename, pause, unpause, container prune, container inspect.
import { Command, Option } from 'commander';
import fs from 'node:fs';
import type { Engine } from '../engine.js';
import type { Container } from '../container/store.js';
import type { CreateOptions } from '../container/create.js';
import { InvalidArgumentError, NotFoundError, PlyError } from '../errors.js';
import { withEngine, out } from './engine.js';
import { createdSince, humanDuration, humanSize, rfc3339Nano, truncateCommand } from './format.js';
import { collect } from './main.js';
import { writeAtomicallyToFd } from './output.js';
import { isVfsContainer } from '../snapshot/vfs.js';

interface RunFlags {
  interactive?: boolean;
  tty?: boolean;
  detach?: boolean;
  rm?: boolean;
  name?: string;
  env: string[];
  envFile: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  hostname?: string;
  volume: string[];
  mount: string[];
  tmpfs: string[];
  readOnly?: boolean;
  network?: string;
  net?: string;
  networkAlias: string[];
  ip?: string;
  macAddress?: string;
  publish: string[];
  publishAll?: boolean;
  dns: string[];
  dnsSearch: string[];
  dnsOption: string[];
  addHost: string[];
  privileged?: boolean;
  capAdd: string[];
  capDrop: string[];
  init?: boolean;
  stopSignal?: string;
  stopTimeout?: string;
  pull?: string;
  label: string[];
  runtime?: string;
}

function addCreateOptions(cmd: Command): Command {
  return cmd
    .argument('<image>')
    .argument('[command...]')
    .passThroughOptions()
    .option('-i, --interactive', 'Keep STDIN open even if not attached')
    .option('-t, --tty', 'Allocate a pseudo-TTY')
    .option('--name <string>', 'Assign a name to the container')
    .option('-e, --env <list>', 'Set environment variables', collect, [])
    .option('--env-file <list>', 'Read in a file of environment variables', collect, [])
    .option('-w, --workdir <string>', 'Working directory inside the container')
    .option('-u, --user <string>', 'Username or UID (format: <name|uid>[:<group|gid>])')
    .option('--entrypoint <string>', 'Overwrite the default ENTRYPOINT of the image')
    .option('-h, --hostname <string>', 'Container host name')
    .option('-v, --volume <list>', 'Bind mount a volume (host:ctr[:ro], name:ctr, /ctr)', collect, [])
    .option('--mount <mount>', 'Attach a filesystem mount to the container (type=bind|volume|tmpfs,…)', collect, [])
    .option('--tmpfs <list>', 'Mount a tmpfs directory', collect, [])
    .option('--read-only', "Mount the container's root filesystem as read only")
    .option('--network <network>', 'Connect a container to a network (bridge, host, none, container:NAME or a network\'s name)')
    .addOption(new Option('--net <network>').hideHelp())
    .option('--network-alias <list>', 'Add network-scoped alias for the container', collect, [])
    .option('--ip <string>', 'IPv4 address (e.g., 172.30.100.104)')
    .option('--mac-address <string>', 'Container MAC address (e.g., 92:d0:c6:0a:29:33)')
    .option('-p, --publish <list>', "Publish a container's port(s) to the host", collect, [])
    .option('-P, --publish-all', 'Publish all exposed ports to random ports')
    .option('--dns <list>', 'Set custom DNS servers', collect, [])
    .option('--dns-search <list>', 'Set custom DNS search domains', collect, [])
    .option('--dns-option <list>', 'Set DNS options', collect, [])
    .option('--add-host <list>', 'Add a custom host-to-IP mapping (host:ip)', collect, [])
    .option('--privileged', 'Give extended privileges to this container')
    .option('--cap-add <list>', 'Add Linux capabilities', collect, [])
    .option('--cap-drop <list>', 'Drop Linux capabilities', collect, [])
    .option('--init', 'Run an init inside the container that forwards signals and reaps processes')
    .option('--stop-signal <string>', 'Signal to stop the container')
    .option('--stop-timeout <int>', 'Timeout (in seconds) to stop a container')
    .addOption(new Option('--pull <string>', 'Pull image before running').choices(['always', 'missing', 'never']).default('missing'))
    .option('-l, --label <list>', 'Set meta data on a container', collect, [])
    .option('--runtime <string>', 'Runtime to use for this container (runc, crun)');
}

function toCreateOptions(image: string, command: string[], f: RunFlags): CreateOptions {
  let stopTimeout: number | undefined;
  if (f.stopTimeout !== undefined) {
    stopTimeout = Number(f.stopTimeout);
    if (!Number.isInteger(stopTimeout)) throw new InvalidArgumentError(`invalid argument "${f.stopTimeout}" for "--stop-timeout" flag`);
  }
  return {
    image,
    command,
    name: f.name,
    env: f.env,
    envFiles: f.envFile,
    workdir: f.workdir,
    user: f.user,
    entrypoint: f.entrypoint,
    hostname: f.hostname,
    volumes: f.volume,
    mounts: f.mount,
    tmpfs: f.tmpfs,
    readOnly: f.readOnly,
    network: f.network ?? f.net,
    networkAliases: f.networkAlias,
    ip: f.ip,
    macAddress: f.macAddress,
    publish: f.publish,
    publishAll: f.publishAll,
    dns: f.dns,
    dnsSearch: f.dnsSearch,
    dnsOptions: f.dnsOption,
    addHosts: f.addHost,
    warnings: [],
    privileged: f.privileged,
    capAdd: f.capAdd,
    capDrop: f.capDrop,
    init: f.init,
    stopSignal: f.stopSignal,
    stopTimeout,
    tty: f.tty,
    interactive: f.interactive,
    autoRemove: f.rm,
    labels: f.label,
    runtime: f.runtime ?? process.env.PLY_RUNTIME,
    pull: f.pull as CreateOptions['pull'],
  };
}

async function createContainer(engine: Engine, o: CreateOptions): Promise<Container> {
  let rec = o.pull === 'always' ? undefined : engine.images.lookup(o.image);
  if (!rec) {
    if (o.pull === 'never') throw new NotFoundError(`No such image: ${o.image}`);
    if (o.pull !== 'always') process.stderr.write(`Unable to find image '${o.image}' locally\n`);
    // docker pulls with its progress on stderr here, keeping stdout for the container.
    const res = await engine.pull(o.image, {
      onProgress: (e) => {
        if (e.type === 'blob-done' && e.layer) process.stderr.write(`${e.digest.slice(7, 19)}: Pull complete\n`);
      },
    });
    process.stderr.write(`Digest: ${res.digest}\nStatus: Downloaded newer image for ${o.image}\n`);
    rec = res.image;
  }
  const c = await engine.manager.create(o, rec.digest, o.image);
  for (const w of o.warnings ?? []) process.stderr.write(`${w}\n`);
  return c;
}

export function registerContainerCommands(program: Command): void {
  const container = program.command('container').description('Manage containers').usage('COMMAND');

  for (const cmd of [program.command('run'), container.command('run')]) {
    addCreateOptions(cmd)
      .description('Create and run a new container from an image')
      .usage('[OPTIONS] IMAGE [COMMAND] [ARG...]')
      .option('-d, --detach', 'Run container in background and print container ID')
      .option('--rm', 'Automatically remove the container and its associated anonymous volumes when it exits')
      .action(async (image: string, command: string[], f: RunFlags) => {
        await withEngine(async (engine) => {
          const c = await createContainer(engine, toCreateOptions(image, command, f));
          if (f.detach) {
            await engine.manager.startDetached(c);
            out(`${c.id}\n`);
            return;
          }
          // Signals reach the container through the runtime (ply passes them on: runtimeSignals); ply stays to collect the exit.
          const ignore = () => undefined;
          process.on('SIGINT', ignore);
          process.on('SIGTERM', ignore);
          try {
            process.exitCode = await engine.manager.supervise(c, 'attached');
          } finally {
            process.off('SIGINT', ignore);
            process.off('SIGTERM', ignore);
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
          const c = await createContainer(engine, toCreateOptions(image, command, f));
          out(`${c.id}\n`);
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
          let failed = false;
          for (const ref of refs) {
            try {
              const c = engine.manager.get(ref);
              if (engine.manager.isRunning(c)) {
                if (!f.attach) out(`${ref}\n`);
                continue;
              }
              if (f.attach || f.interactive) {
                process.exitCode = await engine.manager.supervise(c, 'attached');
              } else {
                await engine.manager.startDetached(c);
                out(`${ref}\n`);
              }
            } catch (e) {
              if (!(e instanceof PlyError) || refs.length === 1) throw e;
              process.stderr.write(`Error: ${e.message}\n`);
              failed = true;
            }
          }
          if (failed) process.exitCode = 1;
        }),
      );
  }

  const eachContainer = async (refs: string[], fn: (engine: Engine, c: Container, ref: string) => Promise<void> | void) =>
    withEngine(async (engine) => {
      let failed = 0;
      for (const ref of refs) {
        try {
          await fn(engine, engine.manager.get(ref), ref);
        } catch (e) {
          if (!(e instanceof PlyError)) throw e;
          process.stderr.write(`Error: ${e.message}\n`);
          failed = e.exitCode;
        }
      }
      if (failed) process.exitCode = failed === 125 ? 1 : failed;
    });

  for (const cmd of [program.command('stop'), container.command('stop')]) {
    cmd
      .description('Stop one or more running containers')
      .usage('[OPTIONS] CONTAINER [CONTAINER...]')
      .argument('<containers...>')
      .option('-s, --signal <string>', 'Signal to send to the container')
      .option('-t, --time <int>', 'Seconds to wait before killing the container')
      .action(async (refs: string[], f: { signal?: string; time?: string }) =>
        eachContainer(refs, async (engine, c, ref) => {
          await engine.manager.stop(c, f.time !== undefined ? Number(f.time) : undefined, f.signal);
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
        eachContainer(refs, (engine, c, ref) => {
          engine.manager.kill(c, f.signal);
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
      .option('-t, --time <int>', 'Seconds to wait before killing the container')
      .action(async (refs: string[], f: { signal?: string; time?: string }) =>
        eachContainer(refs, async (engine, c, ref) => {
          await engine.manager.stop(c, f.time !== undefined ? Number(f.time) : undefined, f.signal);
          const fresh = engine.manager.get(c.id);
          engine.containers.update(c.id, { restartCount: fresh.restartCount + 1 });
          await engine.manager.startDetached(engine.manager.get(c.id));
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
        eachContainer(refs, async (engine, c, ref) => {
          await engine.manager.remove(c, { force: f.force, volumes: f.volumes });
          out(`${ref}\n`);
        }),
      );
  }

  // pause freezes every process of the container (the freezer cgroup); unpause thaws them.
  for (const [verb, from, to, what] of [
    ['pause', 'running', 'paused', 'Pause'],
    ['unpause', 'paused', 'running', 'Unpause'],
  ] as const) {
    for (const cmd of [program.command(verb), container.command(verb)]) {
      cmd
        .description(`${what} all processes within one or more containers`)
        .argument('<containers...>')
        .action(async (refs: string[]) =>
          eachContainer(refs, (engine, c, ref) => {
            if (c.state !== from) throw new PlyError(`container ${c.id} is not ${from}`);
            const rt = engine.manager.runtime(c);
            if (verb === 'pause') rt.pause(c.id);
            else rt.resume(c.id);
            engine.containers.update(c.id, { state: to });
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
      .option('-n, --last <int>', 'Show n last created containers (includes all states)')
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
          const { readEnvFile } = await import('../container/create.js');
          const c = engine.manager.get(ref);
          const ignore = () => undefined;
          process.on('SIGINT', ignore);
          try {
            process.exitCode = await engine.manager.exec(c, {
              cmd: command,
              tty: f.tty,
              interactive: f.interactive,
              env: [...f.envFile.flatMap(readEnvFile), ...f.env],
              user: f.user,
              workdir: f.workdir,
              detach: f.detach,
            });
          } finally {
            process.off('SIGINT', ignore);
          }
        }),
      );
  }

  for (const cmd of [program.command('wait'), container.command('wait')]) {
    cmd
      .description('Block until one or more containers stop, then print their exit codes')
      .argument('<containers...>')
      .action(async (refs: string[]) =>
        eachContainer(refs, async (engine, c) => {
          await engine.manager.waitStopped(c.id, Number.MAX_SAFE_INTEGER);
          out(`${engine.containers.get(c.id)?.exitCode ?? c.exitCode}\n`);
        }),
      );
  }

  for (const cmd of [program.command('diff'), container.command('diff')]) {
    cmd
      .description("Inspect changes to files or directories on a container's filesystem")
      .argument('<container>')
      .action(async (ref: string) =>
        withEngine(async (engine) => {
          const { containerChanges } = await import('../container/diff.js');
          const c = engine.manager.get(ref);
          for (const ch of containerChanges(engine.stores, c)) out(`${ch.kind} ${ch.path}\n`);
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
          const { copy } = await import('../container/copy.js');
          await copy(engine.manager, src, dest, f);
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
          const c = engine.manager.get(ref);
          if (!engine.manager.isRunning(c)) throw new PlyError(`container ${c.id} is not running`);
          out(engine.manager.runtime(c).ps(c.id, psOptions.length ? psOptions : ['-ef']));
        }),
      );
  }

  for (const cmd of [program.command('rename'), container.command('rename')]) {
    cmd
      .description('Rename a container')
      .argument('<container>')
      .argument('<newName>')
      .action(async (ref: string, name: string) =>
        withEngine((engine) => {
          engine.containers.rename(engine.manager.get(ref).id, name.replace(/^\//, ''));
        }),
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
          const { commitContainer } = await import('../container/commit.js');
          if (reference) engine.nameForTag(reference);
          const pause = !(f.pause === false || f.pause === 'false' || f.pause === '0');
          const rec = await commitContainer(engine.manager, engine.manager.get(ref), { author: f.author, changes: f.change, message: f.message, pause, reference });
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
          const { exportContainer } = await import('../container/commit.js');
          const c = engine.manager.get(ref);
          if (!f.output && process.stdout.isTTY) {
            throw new PlyError('cowardly refusing to save to a terminal. Use the -o flag or redirect');
          }
          await writeAtomicallyToFd(f.output, (out) => exportContainer(engine.manager, c, out));
        }),
      );
  }

  container
    .command('prune')
    .description('Remove all stopped containers')
    .option('-f, --force', 'Do not prompt for confirmation')
    .option('--filter <filter>', 'Provide filter values', collect, [])
    .action(async (f: { force?: boolean }) => {
      if (!f.force && !(await (await import('./prompt.js')).confirm('WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] '))) return;
      await withEngine(async (engine) => {
        const removed: string[] = [];
        let reclaimed = 0;
        for (const c of engine.containers.list().map((x) => engine.manager.refresh(x))) {
          if (engine.manager.isRunning(c)) continue;
          reclaimed += engine.manager.writableLayerSize(c);
          engine.manager.removeStopped(c, false);
          removed.push(c.id);
        }
        if (removed.length) out(`Deleted Containers:\n${removed.join('\n')}\n\n`);
        out(`Total reclaimed space: ${humanSize(reclaimed)}\n`);
      });
    });

  container
    .command('inspect')
    .description('Display detailed information on one or more containers')
    .argument('<containers...>')
    .option('-f, --format <string>', 'Format output using a custom template')
    .option('-s, --size', 'Display total file sizes')
    .action(async (refs: string[], f: { format?: string }) =>
      withEngine(async (engine) => {
        const items: Record<string, unknown>[] = [];
        let missing = 0;
        for (const r of refs) {
          try {
            items.push(inspectContainer(engine, engine.manager.get(r)));
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

/**
 * docker's inspect: each name that `find` knows, as a JSON array (or through --format); one error line per name it
 * does not (`find` returns undefined), then exit 1.
 */
export async function inspectEach(names: string[], find: (name: string) => unknown, format: string | undefined, notFound: (name: string) => string): Promise<void> {
  const items: unknown[] = [];
  let missing = 0;
  for (const n of names) {
    const item = find(n);
    if (item !== undefined) items.push(item);
    else {
      process.stderr.write(`Error: ${notFound(n)}\n`);
      missing++;
    }
  }
  await printInspect(items, format);
  if (missing) process.exitCode = 1;
}

export async function printInspect(items: unknown[], format?: string): Promise<void> {
  if (format) {
    const { compileTemplate } = await import('../gotemplate/template.js');
    const t = compileTemplate(format, { unescape: false });
    for (const r of items) out(`${t(r)}\n`);
  } else {
    out(`${JSON.stringify(items, null, 4)}\n`);
  }
}


function statusText(c: Container): string {
  const now = Date.now();
  switch (c.state) {
    case 'running':
      return `Up ${humanDuration(now - c.startedAt)}`;
    case 'paused':
      return `Up ${humanDuration(now - c.startedAt)} (Paused)`;
    case 'exited':
      return `Exited (${c.exitCode}) ${humanDuration(now - c.finishedAt)} ago`;
    case 'removing':
      return 'Removal In Progress';
    case 'dead':
      return 'Dead';
    default:
      return 'Created';
  }
}

function commandLine(c: Container): string {
  return [c.spec.path, ...c.spec.args].join(' ');
}

/** Go's strconv.Quote, as docker quotes the COMMAND column. */
function goQuote(s: string): string {
  return JSON.stringify(s).replace(/\\u0026/g, '&');
}

async function psAction(f: { all?: boolean; filter: string[]; format?: string; last?: string; latest?: boolean; trunc: boolean; quiet?: boolean; size?: boolean }) {
  await withEngine(async (engine) => {
    const { renderTable } = await import('../gotemplate/template.js');
    const { ImageStore } = await import('../image/store.js');
    const { portsColumn } = await import('./network.js');
    let list = engine.containers.list().map((c) => engine.manager.refresh(c));
    const filters = new Map<string, string[]>();
    for (const item of f.filter) {
      const i = item.indexOf('=');
      if (i <= 0) throw new InvalidArgumentError(`bad format of filter (expected name=value)`);
      const k = item.slice(0, i);
      if (!['status', 'name', 'id', 'label', 'ancestor', 'exited'].includes(k)) throw new InvalidArgumentError(`invalid filter '${k}'`);
      filters.set(k, [...(filters.get(k) ?? []), item.slice(i + 1)]);
    }
    const all = f.all || f.last !== undefined || f.latest || filters.has('status') || filters.has('exited');
    if (!all) list = list.filter((c) => engine.manager.isRunning(c));
    const match = (k: string, pred: (v: string) => boolean) => !filters.has(k) || filters.get(k)!.some(pred);
    list = list.filter(
      (c) =>
        match('status', (v) => (v === 'running' ? c.state === 'running' : c.state === v)) &&
        match('name', (v) => c.name.includes(v.replace(/^\//, ''))) &&
        match('id', (v) => c.id.startsWith(v)) &&
        match('exited', (v) => c.state === 'exited' && c.exitCode === Number(v)) &&
        match('ancestor', (v) => c.imageRef === v || engine.images.lookup(v)?.digest === c.image) &&
        match('label', (v) => {
          const j = v.indexOf('=');
          return j < 0 ? v in c.spec.labels : c.spec.labels[v.slice(0, j)] === v.slice(j + 1);
        }),
    );
    if (f.latest) list = list.slice(0, 1);
    else if (f.last !== undefined) list = list.slice(0, Number(f.last));
    const names = engine.images.names();
    const rows = list.map((c) => {
      const imgNames = names.get(c.image) ?? [];
      const image = c.imageRef || (imgNames[0] ? ImageStore.display(imgNames[0]) : c.image.slice(7, 19));
      const cmd = commandLine(c);
      return {
        ID: f.trunc ? c.id.slice(0, 12) : c.id,
        Image: image,
        Command: goQuote(f.trunc ? truncateCommand(cmd, 20) : cmd),
        CreatedAt: new Date(c.created).toISOString(),
        RunningFor: createdSince(new Date(c.created)),
        Status: statusText(c),
        State: c.state,
        Ports: engine.manager.isRunning(c) ? portsColumn(Object.keys(c.spec.exposedPorts ?? {}), engine.networks.ports(c.id)) : '',
        Names: c.name,
        Labels: Object.entries(c.spec.labels).map(([k, v]) => `${k}=${v}`).join(','),
        Mounts: c.spec.mounts.map((m) => (m.type === 'volume' ? m.source!.slice(0, f.trunc ? 15 : undefined) : m.source ?? m.target)).join(','),
        Networks: c.spec.network,
        Size: f.size ? `${humanSize(engine.manager.writableLayerSize(c))}` : '0B',
      };
    });
    let format: string;
    if (f.quiet) format = '{{.ID}}';
    else if (f.format === 'json') format = '{{json .}}';
    else if (f.format && f.format !== 'table') format = f.format;
    else format = `table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}${f.size ? '\t{{.Size}}' : ''}`;
    out(
      renderTable(format, rows, {
        ID: 'CONTAINER ID', Image: 'IMAGE', Command: 'COMMAND', CreatedAt: 'CREATED AT', RunningFor: 'CREATED', Status: 'STATUS',
        State: 'STATE', Ports: 'PORTS', Names: 'NAMES', Labels: 'LABELS', Mounts: 'MOUNTS', Networks: 'NETWORKS', Size: 'SIZE',
      }),
    );
  });
}

/** "42m", "10s", "2h" relative to now, or an absolute date / unix time. */
function parseTimeArg(s: string): number {
  const rel = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(s);
  if (rel) return Date.now() - Number(rel[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[rel[2] as 'ms' | 's' | 'm' | 'h'];
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw new InvalidArgumentError(`invalid value for "since": ${s}`);
  return t;
}

async function logsAction(ref: string, f: { follow?: boolean; tail: string; timestamps?: boolean; since?: string; until?: string }) {
  await withEngine(async (engine) => {
    const { readLog } = await import('../container/logs.js');
    const c = engine.manager.get(ref);
    if (c.spec.tty && c.monitorPid === 0 && c.state === 'exited' && !fs.existsSync(engine.manager.logPath(c))) return;
    const since = f.since ? parseTimeArg(f.since) : undefined;
    const until = f.until ? parseTimeArg(f.until) : undefined;
    const file = engine.manager.logPath(c);
    let { entries, offset } = readLog(file);
    if (f.tail !== 'all') {
      const n = Number(f.tail);
      if (!Number.isInteger(n)) throw new InvalidArgumentError(`invalid value for "tail": ${f.tail}`);
      if (n >= 0) entries = n === 0 ? [] : entries.slice(-n);
    }
    const emit = (list: typeof entries) => {
      for (const e of list) {
        const t = Date.parse(e.time);
        if (since !== undefined && t < since) continue;
        if (until !== undefined && t > until) continue;
        const line = f.timestamps ? `${rfc3339Nano(e.time)} ${e.log}` : e.log;
        (e.stream === 'stderr' ? process.stderr : process.stdout).write(line);
      }
    };
    emit(entries);
    if (!f.follow) return;
    for (;;) {
      const cur = engine.containers.get(c.id);
      const running = cur ? engine.manager.isRunning(engine.manager.refresh(cur)) : false;
      const next = readLog(file, offset);
      offset = next.offset;
      emit(next.entries);
      if (!running) {
        const last = readLog(file, offset);
        emit(last.entries);
        return;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  });
}

/** docker container inspect's JSON shape. */
export function inspectContainer(engine: Engine, c: Container): Record<string, unknown> {
  const dir = engine.containers.pathOf(c.id);
  const s = c.spec;
  const rec = engine.images.get(c.image);
  const iso = (ms: number) => (ms ? rfc3339Nano(new Date(ms)) : '0001-01-01T00:00:00Z');
  const vfs = isVfsContainer(dir);
  return {
    Id: c.id,
    Created: iso(c.created),
    Path: s.path,
    Args: s.args,
    State: {
      Status: c.state,
      Running: c.state === 'running' || c.state === 'paused',
      Paused: c.state === 'paused',
      Restarting: false,
      OOMKilled: false,
      Dead: c.state === 'dead',
      Pid: c.pid,
      ExitCode: c.exitCode,
      Error: c.error,
      StartedAt: iso(c.startedAt),
      FinishedAt: iso(c.finishedAt),
    },
    Image: rec?.id ?? c.image,
    ResolvConfPath: `${dir}/resolv.conf`,
    HostnamePath: `${dir}/hostname`,
    HostsPath: `${dir}/hosts`,
    LogPath: engine.manager.logPath(c),
    Name: `/${c.name}`,
    RestartCount: c.restartCount,
    Driver: vfs ? 'vfs' : 'overlayfs',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: null,
    HostConfig: {
      Binds: s.mounts.filter((m) => m.type === 'bind').map((m) => `${m.source}:${m.target}${m.readonly ? ':ro' : ''}`),
      NetworkMode: s.network,
      PortBindings: s.portBindings ?? {},
      PublishAllPorts: s.publishAll ?? false,
      Dns: s.dns ?? [],
      DnsOptions: s.dnsOptions ?? [],
      DnsSearch: s.dnsSearch ?? [],
      ExtraHosts: s.extraHosts?.length ? s.extraHosts : null,
      AutoRemove: s.autoRemove,
      Privileged: s.privileged,
      ReadonlyRootfs: s.readonlyRootfs,
      CapAdd: s.capAdd.length ? s.capAdd : null,
      CapDrop: s.capDrop.length ? s.capDrop : null,
      Init: s.init || null,
      Runtime: s.runtime,
      Tmpfs: Object.fromEntries(s.mounts.filter((m) => m.type === 'tmpfs').map((m) => [m.target, (m.options ?? []).join(',')])),
    },
    GraphDriver: vfs
      ? { Data: { MergedDir: `${dir}/merged` }, Name: 'vfs' }
      : { Data: { MergedDir: `${dir}/merged`, UpperDir: `${dir}/upper`, WorkDir: `${dir}/work` }, Name: 'overlayfs' },
    Mounts: s.mounts
      .filter((m) => m.type !== 'tmpfs')
      .map((m) => ({
        Type: m.type,
        ...(m.type === 'volume' ? { Name: m.source, Source: engine.manager.volumePath(m.source!), Driver: 'local' } : { Source: m.source }),
        Destination: m.target,
        Mode: m.readonly ? 'ro' : '',
        RW: !m.readonly,
        Propagation: m.type === 'bind' ? 'rprivate' : '',
      })),
    Config: {
      Hostname: s.hostname,
      Domainname: '',
      User: s.user,
      AttachStdin: s.openStdin,
      AttachStdout: true,
      AttachStderr: true,
      ...(s.exposedPorts ? { ExposedPorts: s.exposedPorts } : {}),
      Tty: s.tty,
      OpenStdin: s.openStdin,
      StdinOnce: s.openStdin,
      Env: s.env,
      Cmd: s.cmd,
      Image: c.imageRef,
      Volumes: null,
      WorkingDir: s.workingDir,
      Entrypoint: s.entrypoint,
      OnBuild: null,
      Labels: s.labels,
      StopSignal: s.stopSignal,
      ...(s.stopTimeout !== undefined ? { StopTimeout: s.stopTimeout } : {}),
    },
    NetworkSettings: engine.networks.settings(engine.manager.netSpec(c)),
  };
}
