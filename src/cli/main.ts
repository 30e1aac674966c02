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
};

/** Which module defines a top-level command; anything else (help, the image/container groups) loads them all. */
const COMMAND_MODULE: Record<string, string> = {
  ...Object.fromEntries(
    ['run', 'create', 'start', 'stop', 'kill', 'restart', 'rm', 'pause', 'unpause', 'update', 'stats', 'ps', 'logs', 'exec', 'wait', 'diff', 'cp', 'top', 'rename', 'commit', 'export'].map((c) => [c, 'containers']),
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
};

export async function buildProgram(argv: string[] = []): Promise<Command> {
  const program = new Command('ply');
  program
    .description('A Docker-compatible container image and container engine')
    .usage('[OPTIONS] COMMAND')
    .addOption(new Option('-v, --version', 'Print version information and quit'))
    .enablePositionalOptions()
    .showSuggestionAfterError(true)
    .configureHelp({ sortSubcommands: false })
    .argument('[command]')
    .action(async (command: string | undefined, opts: { version?: boolean }) => {
      if (opts.version) {
        const { VERSION } = await import('../engine.js');
        process.stdout.write(`ply version ${VERSION}\n`);
        return;
      }
      if (command !== undefined) {
        process.stderr.write(`ply: '${command}' is not a ply command.\nSee 'ply --help'\n`);
        process.exitCode = 1;
        return;
      }
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

/** Every command: unknown flags are errors with exit 125, as docker does; options may follow arguments. */
function applyDockerConventions(cmd: Command): void {
  cmd.exitOverride();
  cmd.configureOutput({
    writeErr: (s) => process.stderr.write(s),
    outputError: (s, write) => write(s.replace(/^error: /, 'ply: ')),
  });
  for (const sub of cmd.commands) applyDockerConventions(sub);
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

/** Prints one line for an error and returns the exit code. */
export function reportError(e: unknown): number {
  if (e instanceof CommanderError) {
    if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return 0;
    if (e.code === 'commander.executeSubCommandAsync') return 0;
    process.stderr.write(`See 'ply --help'.\n`);
    return 125;
  }
  if (e instanceof PlyError) {
    process.stderr.write(`Error: ${e.message}\n`);
    return e.exitCode;
  }
  const err = e as NodeJS.ErrnoException;
  if (err && typeof err === 'object' && err.code === 'EPIPE') return 0;
  process.stderr.write(`Error: ${err?.message ?? String(e)}\n`);
  if (process.env.PLY_DEBUG) process.stderr.write(`${err?.stack ?? ''}\n`);
  return 125;
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
