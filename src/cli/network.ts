// Network commands: network ls/inspect/create/rm/prune/connect/disconnect, and port.
import type { Command } from 'commander';
import { ClientCheckError, InvalidArgumentError, NotFoundError, PlyError } from '../errors.js';
import type { ContainerSummary } from '../engine.js';
import { withEngine, out } from './engine.js';
import { collect } from './options.js';
import { goTimeString } from '../gotemplate/gofmt.js';

interface PortMapping {
  proto: string;
  containerPort: number;
  hostIp: string;
  hostPort: number;
}

function keyValues(list: string[], what: string): Record<string, string> {
  const outMap: Record<string, string> = {};
  for (const kv of list) {
    const i = kv.indexOf('=');
    if (i === 0) throw new InvalidArgumentError(`invalid ${what}: ${kv}`);
    outMap[i < 0 ? kv : kv.slice(0, i)] = i < 0 ? '' : kv.slice(i + 1);
  }
  return outMap;
}

/** docker's `port` lines: "80/tcp -> 0.0.0.0:8080". */
export function portLines(ports: PortMapping[]): string[] {
  return [...ports].sort((a, b) => a.containerPort - b.containerPort || a.proto.localeCompare(b.proto)).map((p) => `${p.containerPort}/${p.proto} -> ${p.hostIp}:${p.hostPort}`);
}

/** ps's PORTS column: "0.0.0.0:8080->80/tcp, 443/tcp". */
export function portsColumn(ports: ContainerSummary['Ports']): string {
  return ports.map((p) => (p.PublicPort !== undefined ? `${p.IP}:${p.PublicPort}->${p.PrivatePort}/${p.Type}` : `${p.PrivatePort}/${p.Type}`)).join(', ');
}

/** docker's CLI exits 1 when the daemon refuses a network command (run's own failures are 125). */
function daemonErrors<A extends unknown[]>(fn: (...a: A) => Promise<void>): (...a: A) => Promise<void> {
  return async (...a: A) => {
    try {
      await fn(...a);
    } catch (e) {
      if (e instanceof PlyError && e.exitCode === 125) e.exitCode = 1;
      throw e;
    }
  };
}

export function registerNetworkCommands(program: Command): void {
  const network = program.command('network').description('Manage networks').usage('COMMAND');

  network
    .command('ls')
    .alias('list')
    .description('List networks')
    .option('-f, --filter <filter>', 'Provide filter values (e.g. "driver=bridge")', collect, [])
    .option('--format <string>', 'Format output using a custom template')
    .option('--no-trunc', 'Do not truncate the output')
    .option('-q, --quiet', 'Only display network IDs')
    .action(
      daemonErrors(async (f: { filter: string[]; format?: string; trunc: boolean; quiet?: boolean }) => {
      await withEngine(async (engine) => {
        const { renderTable } = await import('../gotemplate/template.js');
        const list = engine.networks.list({ filters: f.filter });
        const rows = list.map((n) => ({
          ID: f.trunc ? n.Id.slice(0, 12) : n.Id,
          Name: n.Name,
          Driver: n.Driver,
          Scope: n.Scope,
          // docker 28: bridge networks carry IPv4; host and none do not.
          IPv4: String(n.Driver === 'bridge'),
          IPv6: String(n.EnableIPv6),
          Internal: String(n.Internal),
          Labels: Object.entries(n.Labels).map(([k, v]) => `${k}=${v}`).join(','),
          // docker's: Go's time.String() of the creation time.
          CreatedAt: goTimeString(new Date(n.Created)),
        }));
        let format = f.format && f.format !== 'table' ? f.format : 'table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}';
        if (f.quiet) format = '{{.ID}}';
        out(renderTable(format, rows, { ID: 'NETWORK ID', Name: 'NAME', Driver: 'DRIVER', Scope: 'SCOPE', IPv4: 'IPV4', IPv6: 'IPV6', Internal: 'INTERNAL', Labels: 'LABELS', CreatedAt: 'CREATED AT' }));
      });
    }),
    );

  network
    .command('inspect')
    .description('Display detailed information on one or more networks')
    .usage('[OPTIONS] NETWORK [NETWORK...]')
    .argument('<networks...>')
    .option('-f, --format <string>', 'Format output using a custom template')
    .option('-v, --verbose', 'Verbose output for diagnostics')
    .action(
      daemonErrors(async (names: string[], f: { format?: string }) => {
      await withEngine(async (engine) => {
        const { inspectEach } = await import('./output.js');
        await inspectEach(
          names,
          (n) => {
            const value = engine.networks.find(n);
            return value && { kind: 'network', value };
          },
          f.format,
          (n) => `network ${n} not found`,
        );
      });
    }),
    );

  network
    .command('create')
    .description('Create a network')
    .usage('[OPTIONS] NETWORK')
    .argument('<name>')
    .option('-d, --driver <string>', 'Driver to manage the Network', 'bridge')
    .option('--subnet <list>', 'Subnet in CIDR format that represents a network segment', collect, [])
    .option('--gateway <list>', 'IPv4 Gateway for the master subnet', collect, [])
    .option('--ip-range <list>', 'Allocate container ip from a sub-range', collect, [])
    .option('--internal', 'Restrict external access to the network')
    .option('--attachable', 'Enable manual container attachment')
    .option('-o, --opt <list>', 'Set driver specific options', collect, [])
    .option('--label <list>', 'Set metadata on a network', collect, [])
    .action(
      daemonErrors(async (name: string, f: { driver: string; subnet: string[]; gateway: string[]; ipRange: string[]; internal?: boolean; opt: string[]; label: string[] }) => {
      // docker's CLI checks first: a range or gateway for each subnet.
      if (f.ipRange.length > f.subnet.length || f.gateway.length > f.subnet.length) throw new ClientCheckError('every ip-range or gateway must have a corresponding subnet');
      if (f.subnet.length > 1) throw new PlyError('ply networks have one IPv4 subnet');
      await withEngine((engine) => {
        const n = engine.networks.create({
          name,
          driver: f.driver,
          subnet: f.subnet[0],
          gateway: f.gateway[0],
          ipRange: f.ipRange[0],
          internal: f.internal,
          labels: keyValues(f.label, 'label'),
          options: keyValues(f.opt, 'option'),
        });
        out(`${n.Id}\n`);
      });
    }),
    );

  network
    .command('rm')
    .alias('remove')
    .description('Remove one or more networks')
    .usage('[OPTIONS] NETWORK [NETWORK...]')
    .argument('<networks...>')
    .option('-f, --force', 'Do not error if the network does not exist')
    .action(
      daemonErrors(async (names: string[], f: { force?: boolean }) => {
      await withEngine((engine) => {
        let failed = 0;
        for (const n of names) {
          try {
            engine.networks.remove(n);
            out(`${n}\n`);
          } catch (e) {
            if (f.force && e instanceof NotFoundError) continue;
            if (!(e instanceof PlyError)) throw e;
            process.stderr.write(`Error: ${e.message}\n`);
            failed = Math.max(failed, 1);
          }
        }
        if (failed) process.exitCode = failed;
      });
    }),
    );

  network
    .command('prune')
    .description('Remove all unused networks')
    .option('-f, --force', 'Do not prompt for confirmation')
    .option('--filter <filter>', 'Provide filter values (e.g. "until=<timestamp>")', collect, [])
    .action(
      daemonErrors(async (f: { force?: boolean; filter: string[] }) => {
      if (!f.force && !(await (await import('./prompt.js')).confirm('WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] '))) return;
      await withEngine((engine) => {
        const removed = engine.networks.prune({ filters: f.filter }).NetworksDeleted;
        if (removed.length) out(`Deleted Networks:\n${removed.join('\n')}\n\n`);
      });
    }),
    );

  network
    .command('connect')
    .description('Connect a container to a network')
    .usage('[OPTIONS] NETWORK CONTAINER')
    .argument('<network>')
    .argument('<container>')
    .option('--alias <list>', 'Add network-scoped alias for the container', collect, [])
    .option('--ip <string>', 'IPv4 address (e.g., "172.30.100.104")')
    .action(
      daemonErrors(async (net: string, container: string, f: { alias: string[]; ip?: string }) => {
      await withEngine((engine) => engine.containers.connect(container, net, { aliases: f.alias, ip: f.ip }));
    }),
    );

  network
    .command('disconnect')
    .description('Disconnect a container from a network')
    .usage('[OPTIONS] NETWORK CONTAINER')
    .argument('<network>')
    .argument('<container>')
    .option('-f, --force', 'Force the container to disconnect from a network')
    .action(
      daemonErrors(async (net: string, container: string) => {
      await withEngine((engine) => engine.containers.disconnect(container, net));
    }),
    );

  program
    .command('port')
    .description('List port mappings or a specific mapping for the container')
    .usage('CONTAINER [PRIVATE_PORT[/PROTO]]')
    .argument('<container>')
    .argument('[port]')
    .action(
      daemonErrors(async (container: string, port: string | undefined) => {
      await withEngine((engine) => {
        const ports = engine.containers.ports(container);
        if (port === undefined) {
          const lines = portLines(ports);
          if (lines.length) out(`${lines.join('\n')}\n`);
          return;
        }
        const [p, proto = 'tcp'] = port.split('/');
        const found = ports.filter((m) => String(m.containerPort) === p && m.proto === proto);
        if (!found.length) throw new NotFoundError(`No public port '${p}/${proto}' published for ${container}`);
        out(found.map((m) => `${m.hostIp}:${m.hostPort}\n`).join(''));
      });
    }),
    );
}
