// The command line: docker's command names, flags, output and exit codes over the engine API.
import { Command, CommanderError, Option } from 'commander';
import { createRequire } from 'node:module';
import { PlyError } from '../errors.js';

type Register = (program: Command) => void;

/** Command modules, in help order; each is loaded only when its commands are used (start-up time matters). */
const MODULES: Record<string, () => Promise<Register>> = {
  containers: async () => (await import('./containers.js')).registerContainerCommands,
  images: async () => (await import('./images.js')).registerImageCommands,
  archive: async () => (await import('./archive.js')).registerArchiveCommands,
  distribution: async () => (await import('./distribution.js')).registerDistributionCommands,
  system: async () => (await import('./system.js')).registerSystemCommands,
  registry: async () => (await import('./registry.js')).registerRegistryCommands,
  build: async () => (await import('./build.js')).registerBuildCommands,
  network: async () => (await import('./network.js')).registerNetworkCommands,
  volumes: async () => (await import('./volumes.js')).registerVolumeCommands,
};

/** Which module defines a top-level command; anything else (help, the image/container groups) loads them all. */
const COMMAND_MODULE: Record<string, string> = {
  ...Object.fromEntries(
    ['run', 'create', 'start', 'stop', 'kill', 'restart', 'rm', 'pause', 'unpause', 'update', 'stats', 'ps', 'logs', 'exec', 'attach', 'wait', 'diff', 'cp', 'top', 'rename', 'commit', 'export'].map((c) => [c, 'containers']),
  ),
  ...Object.fromEntries(['import', 'images', 'tag', 'rmi', 'history', 'inspect'].map((c) => [c, 'images'])),
  save: 'archive',
  load: 'archive',
  ...Object.fromEntries(['pull', 'push', 'login', 'logout'].map((c) => [c, 'distribution'])),
  ...Object.fromEntries(['version', 'info', 'system', 'events'].map((c) => [c, 'system'])),
  registry: 'registry',
  build: 'build',
  builder: 'build',
  network: 'network',
  port: 'network',
  volume: 'volumes',
};

export async function buildProgram(argv: string[] = []): Promise<Command> {
  const program = new Command('ply');
  program
    .description('A Docker-compatible container image and container engine')
    .usage('[OPTIONS] COMMAND')
    .addOption(new Option('-v, --version', 'Print version information and quit'))
    .enablePositionalOptions()
    .configureHelp({ sortSubcommands: false })
    .argument('[command...]')
    .action(async (command: string[], opts: { version?: boolean }) => {
      if (opts.version) {
        const { VERSION } = await import('../engine.js');
        process.stdout.write(`ply version ${VERSION}\n`);
        return;
      }
      if (command.length > 0) throw new UnknownCommandError(program, command[0]!);
      program.outputHelp();
    });
  const first = argv.find((a) => !a.startsWith('-'));
  const only = first !== undefined ? COMMAND_MODULE[first] : undefined;
  const names = only ? [only] : Object.keys(MODULES);
  const registers = await Promise.all(names.map((n) => MODULES[n]!()));
  for (const register of registers) register(program);
  applyDockerConventions(program);
  return program;
}

/** `ply volume bogus`, `ply bogus`: docker's "unknown command" (exit 1). */
class UnknownCommandError extends Error {
  constructor(
    readonly command: Command,
    unknown: string,
  ) {
    super(`unknown command: ${commandPath(command)} ${unknown}`);
  }
}

/** What commander's parse error belongs to (set by exitOverride). */
type ParseError = CommanderError & { command?: Command };

/**
 * Every command: parse errors are reported by reportError in docker's words (unknown flags and bad flag values
 * 125, wrong argument counts and unknown commands 1); a group (`ply volume`) without a subcommand prints its help
 * and one with an unknown subcommand says so.
 */
function applyDockerConventions(cmd: Command): void {
  cmd.exitOverride((err: ParseError) => {
    err.command = cmd;
    throw err;
  });
  cmd.configureOutput({ writeErr: (s) => process.stderr.write(s), outputError: () => undefined });
  if (cmd.parent && cmd.commands.length > 0) {
    cmd.allowExcessArguments(true).action(() => {
      if (cmd.args.length > 0) throw new UnknownCommandError(cmd, cmd.args[0]!);
      cmd.outputHelp();
    });
  }
  for (const sub of cmd.commands) applyDockerConventions(sub);
}

/** `ply container ls`: the command's full name. */
function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** docker's argument-count messages ("requires at least 1 argument", "accepts no arguments"…). */
function argumentCountMessage(cmd: Command): string {
  const args = cmd.registeredArguments;
  const min = args.filter((a) => a.required).length;
  const max = args.some((a) => a.variadic) ? Infinity : args.length;
  const n = (k: number) => `${k} argument${k === 1 ? '' : 's'}`;
  if (max === 0) return 'accepts no arguments';
  if (min === max) return `requires ${n(min)}`;
  if (max === Infinity) return `requires at least ${n(min)}`;
  if (min === 0) return `requires at most ${n(max)}`;
  return `requires at least ${min} and at most ${n(max)}`;
}

/** docker's text for a parse error: the problem, the usage line, where to get help; and its exit code. */
function parseErrorReport(e: ParseError): { text: string; code: number } {
  const cmd = e.command;
  const path = cmd ? commandPath(cmd) : 'ply';
  const usage = cmd ? `\nUsage:  ${path} ${cmd.usage()}\n` : '';
  const flag = /'(-[^' ]*)/.exec(e.message)?.[1] ?? '';
  switch (e.code) {
    case 'commander.missingArgument':
    case 'commander.excessArguments': {
      // docker's CLI: "Run …" after an exact count (or none), "See …" after a range.
      const counts = cmd!.registeredArguments;
      const exact = counts.every((a) => a.required && !a.variadic) || (e.code === 'commander.excessArguments' && counts.length === 0);
      return { text: `ply: '${path}' ${argumentCountMessage(cmd!)}\n${usage}\n${exact ? 'Run' : 'See'} '${path} --help' for more information\n`, code: 1 };
    }
    case 'commander.unknownOption':
      return {
        text: `${flag.startsWith('--') ? `unknown flag: ${flag}` : `unknown shorthand flag: '${flag.slice(1, 2)}' in ${flag}`}\n${usage}\nRun '${path} --help' for more information\n`,
        code: 125,
      };
    case 'commander.optionMissingArgument':
      return { text: `flag needs an argument: ${flag.split(/[ ,]/)[0]}\n${usage}\nRun '${path} --help' for more information\n`, code: 125 };
    default: {
      // A flag parser's own message (options.ts) is docker's text already.
      const message = e.message.replace(/^error: /, '');
      // A value docker's CLI checks after parsing (--security-opt): printed as its reportError does, no usage line.
      const late = /^.*? is invalid\. (Invalid --.*)$/s.exec(message)?.[1];
      if (late) return { text: `ply: ${late}\n\nRun '${path} --help' for more information\n`, code: 125 };
      return { text: `${message.replace(/^.*? is invalid\. (?=invalid argument ")/, '')}\n${usage}\nRun '${path} --help' for more information\n`, code: 125 };
    }
  }
}

let prebuilt: Command | undefined;

export async function main(argv: string[]): Promise<void> {
  let program: Command;
  try {
    // A service worker built every command ahead of time (a program parses once, so it is used once).
    program = prebuilt ?? (await buildProgram(argv));
    prebuilt = undefined;
  } catch (e) {
    process.exitCode = reportError(e);
    return;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    process.exitCode = reportError(e);
  }
}

/** Prints an error as docker's CLI does (one line, or a parse error with the usage) and returns the exit code. */
export function reportError(e: unknown): number {
  if (e instanceof CommanderError) {
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
    if (e.code === 'commander.executeSubCommandAsync') return 0;
    const { text, code } = parseErrorReport(e);
    process.stderr.write(text);
    return code;
  }
  if (e instanceof UnknownCommandError) {
    const path = commandPath(e.command);
    const usage = e.command.parent ? `\nUsage:  ${path} ${e.command.usage()}\n` : '';
    process.stderr.write(`ply: ${e.message}\n${usage}\nRun '${path} --help' for more information\n`);
    return 1;
  }
  if (e instanceof PlyError) {
    process.stderr.write(`${e.cliPrefix}${e.message}\n`);
    return e.exitCode;
  }
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err === 'object' && err.code === 'EPIPE') return 0;
  process.stderr.write(`Error: ${err?.message ?? String(e)}\n`);
  if (process.env.PLY_DEBUG) process.stderr.write(`${err?.stack ?? ''}\n`);
  return 1;
}

/** A warm worker of `ply system service` (bin/ply.cjs with PLY_SERVICE_WORKER=FD): serves one command, then exits. */
export async function serviceWorker(listenFd: number, launcher: string): Promise<void> {
  const { serveOne } = await import('../service/worker.js');
  await serveOne(listenFd, launcher, main, warmUp);
}

/** Loads ahead what commands otherwise load on their critical path: every command module, the engine, the addons. */
export async function warmUp(): Promise<void> {
  prebuilt = await buildProgram([]);
  await Promise.all([
    import('../engine/preload.js').then((m) => m.preload()),
    import('../gotemplate/template.js'),
    // The first child process with pipes loads and compiles Node's spawn and socket internals (~5 ms for runc).
    new Promise<void>((resolve) => {
      const cp = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
      cp.spawn('true', [], { stdio: ['ignore', 'pipe', 'pipe'] }).on('close', () => resolve()).on('error', () => resolve());
    }),
  ]);
}
