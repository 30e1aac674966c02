// Build commands: build / image build / builder build (a Dockerfile → an image, with docker's classic output),
// builder prune. The builder is loaded only when a build runs.
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { Command, Option } from 'commander';
import type { BuildRequest } from '../engine.js';
import type { BuildOutput } from '../engine/build.js';
import { InvalidArgumentError, UsageError } from '../errors.js';
import { out, withEngine } from './engine.js';
import { collect } from './options.js';

interface BuildFlags {
  tag: string[];
  file?: string;
  buildArg: string[];
  target?: string;
  cache: boolean;
  pull?: boolean;
  label: string[];
  network?: string;
  quiet?: boolean;
  iidfile?: string;
  progress: string;
  secret: string[];
  ssh: string[];
  addHost: string[];
  ulimit: string[];
  output: string[];
  load?: boolean;
  cacheFrom: string[];
  cacheTo: string[];
  platform?: string;
  explainCache?: boolean;
}

export function registerBuildCommands(program: Command): void {
  const image = program.commands.find((c) => c.name() === 'image') ?? program.command('image').description('Manage images');
  const builder = program.command('builder').description('Manage builds').usage('COMMAND');
  for (const cmd of [program.command('build'), image.command('build'), builder.command('build')]) {
    cmd
      .description('Build an image from a Dockerfile')
      .usage('[OPTIONS] PATH | URL | -')
      .argument('<context>')
      .option('-t, --tag <name>', 'Name and optionally a tag in the "name:tag" format', collect, [])
      .option('-f, --file <string>', "Name of the Dockerfile (default: 'PATH/Dockerfile'; '-' reads it from STDIN)")
      .option('--build-arg <list>', 'Set build-time variables', collect, [])
      .option('--target <string>', 'Set the target build stage to build')
      .option('--no-cache', 'Do not use cache when building the image')
      .option('--pull', 'Always attempt to pull a newer version of the image')
      .option('--label <list>', 'Set metadata for an image', collect, [])
      .option('--network <string>', 'Set the networking mode for the RUN instructions during build (default: bridge; host, none, a network)')
      .option('--secret <stringArray>', 'Secret to expose to the build (format: "id=mysecret[,src=/local/secret]" or "id=mysecret,env=VAR")', collect, [])
      .option('--ssh <stringArray>', 'SSH agent socket to expose to the build (format: "default|<id>[=<socket>]")', collect, [])
      .option('--add-host <list>', 'Add a custom host-to-IP mapping ("host:ip")', collect, [])
      .option('--ulimit <ulimit>', 'Ulimit options', collect, [])
      .option('-o, --output <stringArray>', 'Output destination (format: "type=local,dest=path"; type=tar|oci|docker,dest=FILE|-; "-" or a directory)', collect, [])
      .option('--load', 'Shorthand for "--output=type=docker" (into the store; the default without --output)')
      .option('--cache-from <stringArray>', 'External cache sources (e.g., "user/app:cache", "type=local,src=path/to/dir")', collect, [])
      .option('--cache-to <stringArray>', 'Cache export destinations (e.g., "user/app:cache", "type=local,dest=path/to/dir[,mode=max]")', collect, [])
      .option('--platform <string>', 'Set the target platform for the build (the native one; another needs a registered emulator)')
      .option('--explain-cache', 'Say why each step that runs missed the cache')
      .option('-q, --quiet', 'Suppress the build output and print image ID on success')
      .option('--iidfile <string>', 'Write the image ID to the file')
      .addOption(new Option('--progress <string>', 'Set type of progress output').choices(['auto', 'plain', 'tty']).default('auto'))
      .addOption(new Option('--rm', 'Remove intermediate containers after a successful build (always)').hideHelp())
      .addOption(new Option('--force-rm', 'Always remove intermediate containers (always)').hideHelp())
      .action(buildAction);
  }
  builder
    .command('prune')
    .description('Remove build cache')
    .usage('[OPTIONS]')
    .option('-a, --all', 'Remove all unused build cache, not just dangling ones')
    .option('-f, --force', 'Do not prompt for confirmation')
    .action(pruneAction);
}

function parseKeyValueFlags(list: string[], flag: string, fromEnv: boolean): Record<string, string> {
  const outMap: Record<string, string> = {};
  for (const item of list) {
    const i = item.indexOf('=');
    if (i === 0) throw new UsageError(`invalid argument "${item}" for "--${flag}" flag`);
    if (i > 0) outMap[item.slice(0, i)] = item.slice(i + 1);
    else if (!fromEnv) outMap[item] = '';
    else if (process.env[item] !== undefined) outMap[item] = process.env[item]!;
  }
  return outMap;
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function buildAction(context: string, f: BuildFlags): Promise<void> {
  // Everything the user typed is checked before anything is read or built.
  if (context === '-' && f.file === '-') throw new InvalidArgumentError('invalid argument: can\'t use stdin for both build context and dockerfile');
  const buildArgs = parseKeyValueFlags(f.buildArg, 'build-arg', true);
  const labels = parseKeyValueFlags(f.label, 'label', false);
  const flags = await import('../engine/build.js');
  const remote = flags.isRemoteContext(context);
  if (remote && f.file === '-') throw new InvalidArgumentError('invalid argument: a remote context and a Dockerfile from stdin cannot be combined');
  const secrets: Record<string, Buffer> = {};
  for (const s of f.secret.map(flags.parseSecretFlag)) secrets[s.id] = flags.readSecret(s);
  const ssh: Record<string, string> = {};
  for (const v of f.ssh) {
    const s = flags.parseSshFlag(v);
    ssh[s.id] = s.socket;
  }
  const ulimits = f.ulimit.map(flags.parseUlimit);
  const cacheFrom = f.cacheFrom.map((v) => flags.parseCacheFlag(v, 'from').location);
  const cacheTo = f.cacheTo.map((v) => {
    const c = flags.parseCacheFlag(v, 'to');
    return { location: c.location, mode: c.mode, ignoreError: c.ignoreError };
  });
  const outputs: BuildOutput[] = [];
  const tags = [...f.tag];
  for (const spec of [...f.output.map(flags.parseOutputFlag), ...(f.load ? [{ type: 'image' as const }] : [])]) {
    if (spec.type === 'image') {
      tags.push(...(spec.names ?? []));
      if (!outputs.some((o) => o.type === 'image')) outputs.push({ type: 'image' });
    } else if (spec.dest === '-') {
      if (process.stdout.isTTY) throw new InvalidArgumentError(`dest file is required for ${spec.type} exporter. refusing to write to console`);
      if (outputs.some((o) => o.type !== 'image' && o.dest === process.stdout)) throw new InvalidArgumentError('only one output can write to stdout');
      outputs.push({ ...spec, type: spec.type, dest: process.stdout } as BuildOutput);
    } else {
      outputs.push(spec as BuildOutput);
    }
  }
  // With the result on stdout, the progress goes to stderr (as docker's); BuildKit's styles always write there.
  const toStdout = outputs.some((o) => o.type !== 'image' && o.dest === process.stdout);
  const buildkitStyle = f.progress === 'plain' || f.progress === 'tty';
  const progressOut = toStdout || buildkitStyle ? process.stderr : process.stdout;
  await withEngine(async (engine) => {
    const req: Omit<BuildRequest, 'logger'> = {
      tags,
      outputs,
      buildArgs,
      target: f.target,
      noCache: !f.cache,
      pull: f.pull,
      labels,
      network: f.network,
      secrets,
      ssh,
      extraHosts: f.addHost,
      ulimits,
      cacheFrom,
      cacheTo,
      platform: f.platform,
      explainCache: f.explainCache,
      warn: (line) => process.stderr.write(`${line}\n`),
    };
    if (remote) {
      req.remote = context;
      req.dockerfile = f.file;
    } else if (context === '-') {
      const input = await readStdin();
      // `ply build - < Dockerfile`: the Dockerfile alone, an empty context; a tar is the context (as docker decides).
      if (flags.looksLikeArchive(input)) Object.assign(req, { context: Readable.from([input]), dockerfile: f.file });
      else req.dockerfileText = input.toString('utf8');
    } else {
      req.context = context;
      if (f.file === '-') req.dockerfileText = (await readStdin()).toString('utf8');
      else req.dockerfile = f.file;
    }
    const { BuildError, ClassicLogger, PlainLogger, QuietLogger, TtyLogger } = await import('../engine/build.js');
    const logger = f.quiet
      ? new QuietLogger()
      : f.progress === 'tty'
        ? new TtyLogger(progressOut as NodeJS.WriteStream)
        : f.progress === 'plain'
          ? new PlainLogger(progressOut)
          : new ClassicLogger(progressOut);
    try {
      const result = await engine.builder.build({ ...req, logger });
      const id = result.image.id;
      if (f.iidfile) fs.writeFileSync(f.iidfile, id);
      const say = toStdout ? (line: string) => process.stderr.write(line) : out;
      if (f.quiet) {
        say(`${id}\n`);
      } else if (logger instanceof PlainLogger || logger instanceof TtyLogger) {
        logger.exported({ id, names: result.tags });
      } else {
        say(`Successfully built ${id.slice(7, 19)}\n`);
        for (const t of result.tags) say(`Successfully tagged ${t}\n`);
      }
    } catch (e) {
      if (!(e instanceof BuildError)) throw e;
      if (f.quiet && e.tail.length > 0) process.stderr.write(`${e.tail.join('\n')}\n`);
      process.stderr.write(`${e.message}\n`);
      process.exitCode = e.exitCode;
    }
  });
}

async function pruneAction(opts: { all?: boolean; force?: boolean }): Promise<void> {
  if (!opts.force) {
    const { confirm } = await import('./prompt.js');
    const warning = opts.all ? 'WARNING! This will remove all build cache.' : 'WARNING! This will remove all dangling build cache.';
    if (!(await confirm(`${warning}\nAre you sure you want to continue? [y/N] `))) return;
  }
  await withEngine(async (engine) => {
    const { humanSize } = await import('./format.js');
    const r = await engine.builder.prune({ all: opts.all });
    if (r.CachesDeleted.length > 0) {
      out('Deleted build cache objects:\n');
      for (const id of r.CachesDeleted) out(`${id.slice(7, 32)}\n`);
      out('\n');
    }
    out(`Total reclaimed space: ${humanSize(r.SpaceReclaimed)}\n`);
  });
}

