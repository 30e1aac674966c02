// Volume commands: volume create, ls, inspect, rm, prune (docker's output and exit codes).
import type { Command } from 'commander';
import { InvalidArgumentError, NotFoundError, PlyError } from '../errors.js';
import { withEngine, out } from './engine.js';
import { humanSize } from './format.js';
import { collect, commandGroup } from './options.js';

export function registerVolumeCommands(program: Command): void {
  const volume = commandGroup(program, 'volume', 'Manage volumes');

  volume
    .command('create')
    .description('Create a volume')
    .usage('[OPTIONS] [VOLUME]')
    .argument('[name]')
    .option('-d, --driver <string>', 'Specify volume driver name', 'local')
    .option('--label <list>', 'Set metadata for a volume', collect, [])
    .option('-o, --opt <map>', 'Set driver specific options', collect, [])
    .option('--name <string>', 'Specify volume name')
    .action(async (arg: string | undefined, f: { driver: string; label: string[]; opt: string[]; name?: string }) => {
      if (arg !== undefined && f.name !== undefined && arg !== f.name) {
        throw new InvalidArgumentError(`conflicting options: either specify --name or provide positional arg, not both`);
      }
      const name = arg ?? f.name;
      // docker's map option: KEY=VALUE, a bare KEY is an empty value.
      const options = Object.fromEntries(f.opt.map((o) => (o.includes('=') ? [o.slice(0, o.indexOf('=')), o.slice(o.indexOf('=') + 1)] : [o, ''])));
      await withEngine((engine) => {
        const v = engine.volumes.create({ name, driver: f.driver, labels: labelMap(f.label), options });
        out(`${v.Name}\n`);
      });
    });

  volume
    .command('ls')
    .alias('list')
    .description('List volumes')
    .option('-f, --filter <filter>', "Provide filter values (e.g. 'dangling=true')", collect, [])
    .option('--format <string>', 'Format output using a custom template')
    .option('-q, --quiet', 'Only display volume names')
    .action(async (f: { filter: string[]; format?: string; quiet?: boolean }) => {
      await withEngine(async (engine) => {
        const { renderTable } = await import('../gotemplate/template.js');
        const { Volumes } = engine.volumes.list({ filters: f.filter });
        // docker's volumeContext: what a local volume does not know is N/A.
        const rows = Volumes.map((v) => ({
          Name: v.Name,
          Driver: v.Driver,
          Scope: v.Scope,
          Mountpoint: v.Mountpoint,
          Labels: Object.entries(v.Labels ?? {}).map(([k, x]) => `${k}=${x}`).join(','),
          Links: 'N/A',
          Size: 'N/A',
          Group: 'N/A',
          Availability: 'N/A',
          Status: 'N/A',
          Label(name: string): string {
            return v.Labels?.[name] ?? '';
          },
        }));
        let format = f.format === 'json' ? '{{json .}}' : f.format && f.format !== 'table' ? f.format : 'table {{.Driver}}\t{{.Name}}';
        if (f.quiet) format = '{{.Name}}';
        out(
          renderTable(
            format,
            rows,
            { Name: 'VOLUME NAME', Driver: 'DRIVER', Scope: 'SCOPE', Mountpoint: 'MOUNTPOINT', Labels: 'LABELS', Links: 'LINKS', Size: 'SIZE', Group: 'GROUP', Availability: 'AVAILABILITY', Status: 'STATUS' },
            { strict: true, typeName: '*formatter.volumeContext' },
          ),
        );
      });
    });

  volume
    .command('inspect')
    .description('Display detailed information on one or more volumes')
    .usage('[OPTIONS] VOLUME [VOLUME...]')
    .argument('<volumes...>')
    .option('-f, --format <string>', 'Format output using a custom template')
    .action(async (names: string[], f: { format?: string }) => {
      await withEngine(async (engine) => {
        const { inspectEach } = await import('./output.js');
        await inspectEach(
          names,
          (n) => {
            try {
              return { kind: 'volume', value: engine.volumes.inspect(n) };
            } catch (e) {
              if (e instanceof NotFoundError) return undefined;
              throw e;
            }
          },
          f.format,
          (n) => `get ${n}: no such volume`,
        );
      });
    });

  volume
    .command('rm')
    .alias('remove')
    .description('Remove one or more volumes')
    .usage('[OPTIONS] VOLUME [VOLUME...]')
    .argument('<volumes...>')
    .option('-f, --force', 'Force the removal of one or more volumes')
    .action(async (names: string[], f: { force?: boolean }) => {
      await withEngine((engine) => {
        let failed = false;
        for (const n of names) {
          try {
            engine.volumes.remove(n, { force: f.force });
            out(`${n}\n`);
          } catch (e) {
            if (!(e instanceof PlyError)) throw e;
            process.stderr.write(`Error: ${e instanceof NotFoundError ? `get ${n}: no such volume` : e.message}\n`);
            failed = true;
          }
        }
        if (failed) process.exitCode = 1;
      });
    });

  volume
    .command('prune')
    .description('Remove unused local volumes')
    .option('-a, --all', 'Remove all unused volumes, not just anonymous ones')
    .option('--filter <filter>', "Provide filter values (e.g. 'label=<label>')", collect, [])
    .option('-f, --force', 'Do not prompt for confirmation')
    .action(async (f: { all?: boolean; filter: string[]; force?: boolean }) => {
      const warning = f.all
        ? 'WARNING! This will remove all local volumes not used by at least one container.'
        : 'WARNING! This will remove anonymous local volumes not used by at least one container.';
      if (!f.force && !(await (await import('./prompt.js')).confirm(`${warning}\nAre you sure you want to continue? [y/N] `))) return;
      await withEngine((engine) => {
        const r = engine.volumes.prune({ all: f.all, filters: f.filter });
        if (r.VolumesDeleted.length) out(`Deleted Volumes:\n${r.VolumesDeleted.join('\n')}\n\n`);
        out(`Total reclaimed space: ${humanSize(r.SpaceReclaimed)}\n`);
      });
    });
}

/** --label KEY[=VALUE] flags as a map. */
function labelMap(list: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const kv of list) {
    const i = kv.indexOf('=');
    if (i === 0) throw new InvalidArgumentError(`invalid label: ${kv}`);
    labels[i < 0 ? kv : kv.slice(0, i)] = i < 0 ? '' : kv.slice(i + 1);
  }
  return labels;
}
