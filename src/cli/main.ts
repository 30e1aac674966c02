// The command line: docker's command names, flags, output and exit codes over the engine API.
import { Command, CommanderError, Option } from 'commander';
import { PlyError } from '../errors.js';
import { registerImageCommands } from './images.js';
import { registerSystemCommands } from './system.js';
import { registerContainerCommands } from './containers.js';
import { registerDistributionCommands } from './distribution.js';
import { registerArchiveCommands } from './archive.js';
import { registerRegistryCommands } from './registry.js';
import { registerBuildCommands } from './build.js';

/** Collects a repeatable option (`-c A -c B`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function buildProgram(): Command {
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
  registerContainerCommands(program);
  registerImageCommands(program);
  registerArchiveCommands(program);
  registerDistributionCommands(program);
  registerSystemCommands(program);
  registerRegistryCommands(program);
  registerBuildCommands(program);
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

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
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
