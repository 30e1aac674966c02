// Helpers for commander options shared by the command modules.
import { Command, InvalidArgumentError as FlagValueError } from 'commander';

/** Collects a repeatable option (`-c A -c B`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * `--security-opt` (repeatable): as docker's CLI, a KEY with no value (`KEY=VALUE`, or the old `KEY:VALUE`) is
 * refused before the daemon is asked; only `no-new-privileges` stands alone.
 */
export function securityOpt(value: string, previous: string[] = []): string[] {
  let sep = value.indexOf('=');
  if (sep < 0 && value !== 'no-new-privileges') sep = value.indexOf(':');
  const key = sep < 0 ? value : value.slice(0, sep);
  if ((sep < 0 || sep === value.length - 1) && key !== 'no-new-privileges') throw new FlagValueError(`Invalid --security-opt: ${JSON.stringify(value)}`);
  return [...previous, value];
}

/** An integer flag's parser: a bad value is refused as docker refuses it (exit 125, with the usage). */
export function intValue(flags: string): (v: string) => number {
  return (v: string) => {
    if (!/^[+-]?\d+$/.test(v)) throw new FlagValueError(`invalid argument "${v}" for "${flags}" flag: strconv.ParseInt: parsing "${v}": invalid syntax`);
    return Number(v);
  };
}

/** A docker bool flag given a value (`--sig-proxy=false`): Go's ParseBool. Register it as `--flag [bool]`. */
export function boolFlag(flags: string): (v: string) => boolean {
  return (v: string) => {
    if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(v)) return true;
    if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(v)) return false;
    throw new FlagValueError(`invalid argument "${v}" for "${flags}" flag: strconv.ParseBool: parsing "${v}": invalid syntax`);
  };
}

/**
 * A command group (`ply volume`, `ply container`): `ply GROUP` prints its help and `ply GROUP bogus` says the
 * subcommand is unknown (main.ts gives every command with subcommands that behaviour); `program.command(name)`
 * of a group another module made returns that one.
 */
export function commandGroup(program: Command, name: string, description: string): Command {
  return program.commands.find((c) => c.name() === name) ?? program.command(name).description(description).usage('COMMAND');
}
