// System commands: version, info, system df, system check, system prune, system service.
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { withEngine, out } from './engine.js';
import { bytesSize, humanSize } from './format.js';
import { collect } from './options.js';
import type { EventMessage } from '../engine.js';
import { InvalidArgumentError, UsageError } from '../errors.js';

export function registerSystemCommands(program: Command): void {
  program
    .command('version')
    .description('Show the ply version information')
    .option('-f, --format <string>', 'Format output using a custom template')
    .action(async (opts: { format?: string }) => {
      const { versionInfo, serverVersion, defaultRuntimeVersion } = await import('../engine/version.js');
      const v = versionInfo();
      // docker's shape: a Client and a Server (ply is both); the runtime's version is kept beside the store.
      const info = {
        Client: { Version: v.Version, ApiVersion: v.ApiVersion, DefaultAPIVersion: v.ApiVersion, GitCommit: '', GoVersion: v.NodeVersion, NodeVersion: v.NodeVersion, Os: v.Os, Arch: v.Arch, BuildTime: '', Context: 'default' },
        Server: serverVersion(defaultRuntimeVersion()),
      };
      // Go's field names where they differ from the JSON's (`{{.Server.APIVersion}}`), left out of `{{json .}}`.
      for (const o of [info.Client, info.Server]) Object.defineProperty(o, 'APIVersion', { value: v.ApiVersion, enumerable: false });
      if (opts.format) {
        const { renderTemplateOrJson } = await import('./output.js');
        out(await renderTemplateOrJson(opts.format, info, '*command.versionInfo'));
        return;
      }
      out(
        [
          'Client:',
          ` Version:           ${v.Version}`,
          ` API version:       ${v.ApiVersion}`,
          ` Node.js version:   ${v.NodeVersion}`,
          ` OS/Arch:           ${v.Os}/${v.Arch}`,
          ' Context:           default',
          '',
          'Server: ply',
          ' Engine:',
          `  Version:          ${v.Version}`,
          `  API version:      ${v.ApiVersion} (minimum version ${v.MinAPIVersion})`,
          `  Node.js version:  ${v.NodeVersion}`,
          `  OS/Arch:          ${v.Os}/${v.Arch}`,
          `  Kernel version:   ${v.KernelVersion}`,
          '  Experimental:     false',
          // docker's other components: their Version, then each of their Details.
          ...info.Server.Components.slice(1).flatMap((c) => [` ${c.Name}:`, `  Version:          ${c.Version}`, ...Object.entries(c.Details).map(([k, d]) => `  ${`${k}:`.padEnd(18)}${d}`)]),
          '',
        ].join('\n'),
      );
    });

  const infoAction = async (opts: { format?: string }) =>
    withEngine(async (engine) => {
      const sys = engine.system.info();
      const service = await import('../service/server.js');
      const { servedByService } = await import('../service/worker.js');
      const sock = service.socketPath(engine.root);
      const serviceRunning = await service.answers(sock);
      // docker's Info fields (`{{.Driver}}`, `{{.DockerRootDir}}`, `{{json .}}`), and ply's own.
      const info = {
        ...sys,
        ID: engine.system.id(),
        LoggingDriver: 'json-file',
        CgroupDriver: 'cgroupfs',
        Swarm: { LocalNodeState: 'inactive' },
        // ply's own: the store, the driver under its earlier name, the warm service.
        StoreRoot: sys.DockerRootDir,
        StorageDriver: sys.Driver,
        ServiceSocket: serviceRunning ? sock : '',
        ServedByService: servedByService(),
      };
      if (opts.format) {
        const { renderTemplateOrJson } = await import('./output.js');
        out(await renderTemplateOrJson(opts.format, info, '*system.Info'));
        return;
      }
      const { VERSION } = await import('../engine/version.js');
      out(
        [
          'Client:',
          ` Version:    ${VERSION}`,
          ' Context:    default',
          ' Debug Mode: false',
          '',
          'Server:',
          ` Containers: ${sys.Containers}`,
          `  Running: ${sys.ContainersRunning}`,
          `  Paused: ${sys.ContainersPaused}`,
          `  Stopped: ${sys.ContainersStopped}`,
          ` Images: ${sys.Images}`,
          ` Dangling Images: ${sys.DanglingImages}`,
          ` Server Version: ${sys.ServerVersion}`,
          ` Storage Driver: ${sys.Driver}`,
          ' Logging Driver: json-file',
          ' Cgroup Driver: cgroupfs',
          ' Plugins:',
          '  Volume: local',
          '  Network: bridge host null',
          ' Swarm: inactive',
          ' Runtimes: runc crun',
          ` Default Runtime: ${sys.DefaultRuntime}`,
          ` Kernel Version: ${sys.KernelVersion}`,
          ` Operating System: ${sys.OperatingSystem}`,
          ` OSType: ${sys.OSType}`,
          ` Architecture: ${os.machine()}`,
          ` CPUs: ${sys.NCPU}`,
          ` Total Memory: ${bytesSize(sys.MemTotal)}`,
          ` Name: ${sys.Name}`,
          ` ID: ${info.ID}`,
          ` Docker Root Dir: ${sys.DockerRootDir}`,
          ' Debug Mode: false',
          ' Experimental: false',
          ` Service: ${serviceRunning ? `running (${sock})${info.ServedByService ? ', served this command' : ''}` : 'not running'}`,
          '',
        ].join('\n'),
      );
    });
  program.command('info').description('Display system-wide information').option('-f, --format <string>', 'Format output using a custom template').action(infoAction);

  const system = program.command('system').description('Manage ply').usage('COMMAND');

  for (const cmd of [program.command('events'), system.command('events')]) {
    cmd
      .description('Get real time events from the server')
      .usage('[OPTIONS]')
      .option('-f, --filter <filter>', 'Filter output based on conditions provided', collect, [])
      .option('--format <string>', "Format output using a custom template: 'json' or a Go template")
      .option('--since <string>', 'Show all events created since timestamp')
      .option('--until <string>', 'Stream events until this timestamp')
      .action(eventsAction);
  }
  system.command('info').description('Display system-wide information').option('-f, --format <string>', 'Format output using a custom template').action(infoAction);
  system
    .command('check')
    .description('Verify the store: blob digests, images, unpacked layers, containers, mounts, unfinished writes')
    .option('--repair', 'Remove what is broken and unreferenced, unmount leftovers, drop unfinished writes')
    .action(async (opts: { repair?: boolean }) =>
      withEngine(async (engine) => {
        const problems = await engine.system.check({ repair: opts.repair });
        for (const p of problems) out(`${p.note ? 'note: ' : ''}${p.kind} ${p.subject}: ${p.message}${p.repaired ? ' (repaired)' : ''}\n`);
        const left = problems.filter((p) => !p.repaired && !p.note);
        if (problems.length === 0) out('no problems found\n');
        if (left.length > 0) process.exitCode = 1;
      }),
    );

  system
    .command('service')
    .description('Serve the Docker Engine API and keep warm ply processes waiting, so that commands start without Node start-up (until stopped)')
    .option('--workers <n>', 'Warm processes kept waiting', '2')
    .option('-t, --time <seconds>', 'Seconds without a command before the service exits (0: never)', '0')
    .option('-H, --host <address>', 'Where to serve the Docker Engine API: unix:///path or tcp://127.0.0.1:PORT, repeatable (default unix://$PLY_ROOT/docker.sock)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--no-api', 'Do not serve the Docker Engine API')
    .option('--tlsverify', 'Serve the API over TLS and require client certificates (needed for a non-loopback TCP address)')
    .option('--tlscacert <file>', 'CA certificates that client certificates must be signed by')
    .option('--tlscert <file>', "The server's TLS certificate")
    .option('--tlskey <file>', "The server's TLS key")
    .action(async (opts: { workers: string; time: string; host?: string[]; api: boolean; tlsverify?: boolean; tlscacert?: string; tlscert?: string; tlskey?: string }) => {
      const { runService } = await import('../service/server.js');
      const { defaultRoot } = await import('../engine.js');
      const { InvalidArgumentError, UsageError } = await import('../errors.js');
      const idle = Number(opts.time);
      if (!/^[0-9]+$/.test(opts.time) || !Number.isSafeInteger(idle)) throw new UsageError(`invalid --time '${opts.time}': expected whole seconds`);
      if (!/^[0-9]+$/.test(opts.workers)) throw new UsageError(`invalid --workers '${opts.workers}': expected a number from 1 to 64`);
      // Workers run the same launcher as this command (bin/ply.cjs).
      const launcher = path.resolve(process.argv[1] ?? '');
      if (!launcher.endsWith('.cjs')) throw new InvalidArgumentError('ply system service must be started through bin/ply');
      const root = defaultRoot();
      const hosts = opts.host ?? [`unix://${path.join(root, 'docker.sock')}`];
      let tls: { ca: string; cert: string; key: string } | undefined;
      if (opts.tlsverify) {
        if (!opts.tlscacert || !opts.tlscert || !opts.tlskey) throw new InvalidArgumentError('--tlsverify needs --tlscacert, --tlscert and --tlskey');
        tls = { ca: opts.tlscacert, cert: opts.tlscert, key: opts.tlskey };
      }
      const api = await import('../api/server.js');
      if (opts.api) api.checkHosts(hosts, tls);
      const alongside = async () => {
        const { Engine } = await import('../engine.js');
        const engine = Engine.open({ root });
        try {
          // API clients start containers here: spare monitors save each start Node's start-up.
          engine.containers.keepMonitorWarm(true);
          const server = await api.startApiServer({ engine, hosts, tls, log: (l) => process.stderr.write(`${l}\n`) });
          return async () => {
            engine.containers.keepMonitorWarm(false);
            await server.close();
            engine.close();
          };
        } catch (e) {
          engine.containers.keepMonitorWarm(false);
          engine.close();
          throw e;
        }
      };
      {
        // As dockerd starts: containers whose restart policy says so come back (after a reboot, a killed monitor).
        const { Engine } = await import('../engine.js');
        const engine = Engine.open({ root });
        try {
          const back = await engine.containers.startPolicyContainers();
          if (back.length) process.stderr.write(`ply service: started ${back.length} container${back.length === 1 ? '' : 's'} by their restart policy\n`);
        } finally {
          engine.close();
        }
      }
      await runService({ root, workers: Number(opts.workers), idleSeconds: idle, launcher, alongside: opts.api ? alongside : undefined });
    });

  system
    .command('prune')
    .description('Remove unused data: stopped containers, unused networks, dangling images, build cache, leftovers of interrupted work')
    .option('-a, --all', 'Remove all unused images, not just dangling ones')
    .option('--volumes', 'Prune anonymous volumes')
    .option('-f, --force', 'Do not prompt for confirmation')
    .action(async (opts: { all?: boolean; volumes?: boolean; force?: boolean }) => {
      const warning = [
        'WARNING! This will remove:',
        '  - all stopped containers',
        '  - all networks not used by at least one container',
        ...(opts.volumes ? ['  - all anonymous volumes not used by at least one container'] : []),
        opts.all ? '  - all images without at least one container associated to them' : '  - all dangling images',
        opts.all ? '  - all build cache' : '  - unused build cache',
        '  - partial downloads and what killed builds left',
      ].join('\n');
      if (!opts.force && !(await (await import('./prompt.js')).confirm(`${warning}\n\nAre you sure you want to continue? [y/N] `))) return;
      await withEngine(async (engine) => {
        const r = await engine.system.prune({ all: opts.all, volumes: opts.volumes });
        if (r.ContainersDeleted.length > 0) out(`Deleted Containers:\n${r.ContainersDeleted.join('\n')}\n\n`);
        if (r.NetworksDeleted.length > 0) out(`Deleted Networks:\n${r.NetworksDeleted.join('\n')}\n\n`);
        if (r.VolumesDeleted.length > 0) out(`Deleted Volumes:\n${r.VolumesDeleted.join('\n')}\n\n`);
        if (r.ImagesDeleted.length > 0) {
          out('Deleted Images:\n');
          for (const item of r.ImagesDeleted) out('Untagged' in item ? `untagged: ${item.Untagged}\n` : `deleted: ${item.Deleted}\n`);
          out('\n');
        }
        if (r.CachesDeleted.length > 0) out(`Deleted build cache objects:\n${r.CachesDeleted.join('\n')}\n\n`);
        out(`Total reclaimed space: ${humanSize(r.SpaceReclaimed)}\n`);
      });
    });

  system
    .command('df')
    .description('Show docker disk usage')
    .option('--format <string>', 'Format output using a custom template')
    .option('-v, --verbose', 'Show detailed information on space usage')
    .action(async (opts: { format?: string }) =>
      withEngine(async (engine) => {
        const { renderTable } = await import('../gotemplate/template.js');
        const du = engine.system.diskUsage();
        const pct = (a: number, b: number) => (b === 0 ? '0%' : `${Math.round((a / b) * 100)}%`);
        const row = (Type: string, u: { total: number; active: number; size: number; reclaimable: number }) => ({
          Type,
          TotalCount: u.total,
          Active: u.active,
          Size: humanSize(u.size),
          Reclaimable: u.reclaimable > 0 ? `${humanSize(u.reclaimable)} (${pct(u.reclaimable, u.size)})` : '0B',
        });
        const rows = [row('Images', du.images), row('Containers', du.containers), row('Local Volumes', du.volumes), row('Build Cache', du.buildCache)];
        const format = opts.format === 'json' ? '{{json .}}' : (opts.format ?? 'table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}');
        out(renderTable(format, rows, { Type: 'TYPE', TotalCount: 'TOTAL', Active: 'ACTIVE', Size: 'SIZE', Reclaimable: 'RECLAIMABLE' }));
      }),
    );
}

/** docker events: one line per event (docker's layout, or --format), until --until passes or the user stops it. */
async function eventsAction(f: { filter: string[]; format?: string; since?: string; until?: string }): Promise<void> {
  for (const v of f.filter) {
    if (v.indexOf('=') <= 0) throw new UsageError(`invalid argument "${v}" for "-f, --filter" flag: bad format of filter (expected name=value)`);
  }
  await withEngine(async (engine) => {
    let events: AsyncIterable<EventMessage>;
    try {
      events = engine.system.events({ since: f.since, until: f.until, filters: f.filter });
    } catch (e) {
      // docker's CLI parses the times itself: its message alone, exit 1.
      if (!(e instanceof InvalidArgumentError)) throw e;
      process.stderr.write(`${e.message}\n`);
      process.exitCode = 1;
      return;
    }
    let line: (e: EventMessage) => string = eventLine;
    if (f.format) {
      const { compileTemplate } = await import('../gotemplate/template.js');
      // docker's events use the template as it is (no \t unescaping, no table).
      const tmpl = compileTemplate(f.format === 'json' ? '{{json .}}' : f.format, { unescape: false });
      line = (e) => `${tmpl(eventTemplateData(e))}\n`;
    }
    for await (const e of events) out(line(e));
  });
}

/** The event as the docker CLI's template sees it (Go's field names; `json` prints the API's shape). */
function eventTemplateData(e: EventMessage) {
  return {
    Status: e.status ?? '',
    ID: e.id ?? '',
    From: e.from ?? '',
    Type: e.Type,
    Action: e.Action,
    Actor: e.Actor,
    Scope: e.scope,
    Time: e.time,
    TimeNano: e.timeNano,
    toJSON: () => e,
  };
}

/** docker's default line: local time with nanoseconds, type, action, actor, then (k=v, ...) sorted by key. */
function eventLine(e: EventMessage): string {
  const micros = Math.round(e.timeNano / 1000);
  const d = new Date(Math.floor(micros / 1000));
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const off = -d.getTimezoneOffset();
  const zone = off === 0 ? 'Z' : `${off < 0 ? '-' : '+'}${p(Math.floor(Math.abs(off) / 60))}:${p(Math.abs(off) % 60)}`;
  const time = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(micros % 1_000_000, 6)}000${zone}`;
  const attrs = Object.keys(e.Actor.Attributes).sort().map((k) => `${k}=${e.Actor.Attributes[k]}`);
  return `${time} ${e.Type} ${e.Action} ${e.Actor.ID}${attrs.length ? ` (${attrs.join(', ')})` : ''}\n`;
}
