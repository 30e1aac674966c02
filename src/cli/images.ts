// Image commands: import, images/image ls, tag, rmi/image rm, image inspect, history, image prune.
import fs from 'node:fs';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import type { Engine, ImageRecord } from '../engine.js';
import { InvalidArgumentError, NotFoundError, PlyError } from '../errors.js';
import type { ImageConfig } from '../oci/types.js';
import { withEngine, out } from './engine.js';
import { createdSince, dockerTime, humanSize, humanSizeWithPrecision, rfc3339Nano, shortId, truncateCommand } from './format.js';

/** docker images and history show sizes with 3 significant digits (system df uses 4). */
const listSize = (n: number) => humanSizeWithPrecision(n, 3);
import { collect } from './main.js';
import { renderTable } from '../gotemplate/template.js';

export function registerImageCommands(program: Command): void {
  const image = program.command('image').description('Manage images').usage('COMMAND');

  for (const cmd of [program.command('import'), image.command('import')]) {
    cmd
      .description('Import the contents from a tarball to create a filesystem image')
      .usage('[OPTIONS] file|URL|- [REPOSITORY[:TAG]]')
      .argument('<source>')
      .argument('[reference]')
      .option('-c, --change <instruction>', 'Apply Dockerfile instruction to the created image', collect, [])
      .option('-m, --message <string>', 'Set commit message for imported image')
      .option('--platform <string>', 'Set platform if server is multi-platform capable')
      .action(importAction);
  }

  for (const cmd of [program.command('images'), image.command('ls'), image.command('list')]) {
    cmd
      .description('List images')
      .usage('[OPTIONS] [REPOSITORY[:TAG]]')
      .argument('[repository]')
      .option('-a, --all', 'Show all images (default hides intermediate images)')
      .option('--digests', 'Show digests')
      .option('-f, --filter <filter>', 'Filter output based on conditions provided', collect, [])
      .option('--format <string>', "Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'")
      .option('--no-trunc', "Don't truncate output")
      .option('-q, --quiet', 'Only show image IDs')
      .action(listAction);
  }

  for (const cmd of [program.command('tag'), image.command('tag')]) {
    cmd
      .description('Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE')
      .usage('SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]')
      .argument('<source>')
      .argument('<target>')
      .action(async (source: string, target: string) => withEngine((e) => e.tag(source, target)));
  }

  for (const cmd of [program.command('rmi'), image.command('rm'), image.command('remove')]) {
    cmd
      .description('Remove one or more images')
      .usage('[OPTIONS] IMAGE [IMAGE...]')
      .argument('<images...>')
      .option('-f, --force', 'Force removal of the image')
      .option('--no-prune', 'Do not delete untagged parents')
      .action(removeAction);
  }

  for (const cmd of [program.command('history'), image.command('history')]) {
    cmd
      .description('Show the history of an image')
      .usage('[OPTIONS] IMAGE')
      .argument('<image>')
      .option('--format <string>', 'Format output using a custom template')
      .option('-H, --human', 'Print sizes and dates in human readable format', true)
      .option('--no-human', 'Print sizes and dates in raw form')
      .option('--no-trunc', "Don't truncate output")
      .option('-q, --quiet', 'Only show image IDs')
      .action(historyAction);
  }

  image
    .command('inspect')
    .description('Display detailed information on one or more images')
    .usage('[OPTIONS] IMAGE [IMAGE...]')
    .argument('<images...>')
    .option('-f, --format <string>', 'Format output using a custom template')
    .action(inspectAction);

  program
    .command('inspect')
    .description('Return low-level information on ply objects (containers, images, networks)')
    .usage('[OPTIONS] NAME|ID [NAME|ID...]')
    .argument('<names...>')
    .option('-f, --format <string>', 'Format output using a custom template')
    .option('-s, --size', 'Display total file sizes if the type is container')
    .option('--type <string>', 'Return JSON for specified type (container, image, network)')
    .action(async (names: string[], opts: { format?: string; type?: string }) => {
      if (opts.type && !['image', 'container', 'network'].includes(opts.type)) throw new InvalidArgumentError(`"${opts.type}" is not a valid value for --type`);
      await withEngine(async (engine) => {
        const { inspectContainer, inspectEach } = await import('./containers.js');
        imageStoreClass ??= await import('../image/store.js');
        const find = (n: string): unknown => {
          if (opts.type === undefined || opts.type === 'container') {
            try {
              return inspectContainer(engine, engine.manager.get(n));
            } catch (e) {
              if (!(e instanceof NotFoundError)) throw e;
            }
          }
          if (opts.type === undefined || opts.type === 'image') {
            const rec = engine.images.lookup(n);
            if (rec) return inspectImage(engine, rec);
          }
          if (opts.type === undefined || opts.type === 'network') {
            const net = engine.networks.store.find(n);
            if (net) return engine.networks.inspect(net);
          }
          return undefined;
        };
        await inspectEach(names, find, opts.format, (n) => `No such object: ${n}`);
      });
    });

  image
    .command('prune')
    .description('Remove unused images')
    .usage('[OPTIONS]')
    .option('-a, --all', 'Remove all unused images, not just dangling ones')
    .option('-f, --force', 'Do not prompt for confirmation')
    .option('--filter <filter>', 'Provide filter values', collect, [])
    .action(pruneAction);
}

async function openSource(source: string): Promise<{ stream: Readable; sourceName: string }> {
  if (source === '-') {
    return { stream: process.stdin, sourceName: '-' };
  }
  if (/^https?:\/\//i.test(source)) {
    let res: Response;
    try {
      res = await fetch(source);
    } catch (e) {
      throw new PlyError(`error downloading ${source}: ${(e as Error).message}`);
    }
    if (!res.ok || !res.body) throw new PlyError(`error downloading ${source}: ${res.status} ${res.statusText}`);
    return { stream: Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), sourceName: source };
  }
  let st: fs.Stats;
  try {
    st = fs.statSync(source);
  } catch {
    throw new NotFoundError(`open ${source}: no such file or directory`);
  }
  if (st.isDirectory()) throw new InvalidArgumentError(`${source} is a directory, not a tar archive`);
  return { stream: fs.createReadStream(source, { highWaterMark: 1 << 20 }), sourceName: '-' };
}

async function importAction(source: string, reference: string | undefined, opts: { change: string[]; message?: string; platform?: string }) {
  await withEngine(async (engine) => {
    if (reference) engine.nameForTag(reference); // refuse a bad name before reading any input
    const { stream, sourceName } = await openSource(source);
    const rec = await engine.importImage(stream, { changes: opts.change, message: opts.message, platform: opts.platform, reference, sourceName });
    out(`${rec.id}\n`);
  });
}

interface ImageRow {
  ID: string;
  Repository: string;
  Tag: string;
  Digest: string;
  CreatedSince: string;
  CreatedAt: string;
  Size: string;
  VirtualSize: string;
  SharedSize: string;
  UniqueSize: string;
  Containers: string;
}

const IMAGE_HEADERS: Record<string, string> = {
  ID: 'IMAGE ID',
  Repository: 'REPOSITORY',
  Tag: 'TAG',
  Digest: 'DIGEST',
  CreatedSince: 'CREATED',
  CreatedAt: 'CREATED AT',
  Size: 'SIZE',
  VirtualSize: 'SIZE',
  SharedSize: 'SHARED SIZE',
  UniqueSize: 'UNIQUE SIZE',
  Containers: 'CONTAINERS',
};

/** Splits a stored full name into docker's familiar repository and tag. */
function repoAndTag(name: string, display: (n: string) => string): { repo: string; tag: string } {
  const familiar = display(name);
  const i = familiar.lastIndexOf(':');
  return i > familiar.lastIndexOf('/') ? { repo: familiar.slice(0, i), tag: familiar.slice(i + 1) } : { repo: familiar, tag: '<none>' };
}

/** Go's path.Match as docker's reference filter uses it ('*' does not cross '/'). */
function globMatch(pattern: string, s: string): boolean {
  const re = pattern.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${re}$`).test(s);
}

interface Filters {
  reference: string[];
  dangling?: boolean;
  label: string[];
  before?: ImageRecord;
  since?: ImageRecord;
}

function parseFilters(engine: Engine, raw: string[]): Filters {
  const f: Filters = { reference: [], label: [] };
  for (const item of raw) {
    const i = item.indexOf('=');
    if (i <= 0) throw new InvalidArgumentError(`bad format of filter (expected name=value)`);
    const key = item.slice(0, i);
    const value = item.slice(i + 1);
    switch (key) {
      case 'reference':
        f.reference.push(value);
        break;
      case 'dangling':
        if (!['true', 'false', '1', '0'].includes(value)) throw new InvalidArgumentError(`invalid filter 'dangling=${value}'`);
        f.dangling = value === 'true' || value === '1';
        break;
      case 'label':
        f.label.push(value);
        break;
      case 'before':
        f.before = engine.resolveImage(value);
        break;
      case 'since':
        f.since = engine.resolveImage(value);
        break;
      default:
        throw new InvalidArgumentError(`invalid filter '${key}'`);
    }
  }
  return f;
}

function createdMs(rec: ImageRecord): number {
  return rec.created ? Date.parse(rec.created) : rec.added;
}

async function listAction(
  repository: string | undefined,
  opts: { all?: boolean; digests?: boolean; filter: string[]; format?: string; trunc: boolean; quiet?: boolean },
) {
  await withEngine(async (engine) => {
    const { ImageStore } = await import('../image/store.js');
    const filters = parseFilters(engine, opts.filter);
    if (repository) filters.reference.push(repository.includes(':') ? repository : `${repository}`);
    const allNames = engine.images.names();
    const records = engine.images.list().sort((a, b) => createdMs(b) - createdMs(a) || b.added - a.added);
    const rows: ImageRow[] = [];
    for (const rec of records) {
      const names = allNames.get(rec.digest) ?? [];
      const dangling = names.length === 0;
      if (filters.dangling !== undefined && filters.dangling !== dangling) continue;
      if (dangling && !opts.all && filters.dangling === undefined && engine.hasChild(rec)) continue;
      if (filters.before && createdMs(rec) >= createdMs(filters.before)) continue;
      if (filters.since && createdMs(rec) <= createdMs(filters.since)) continue;
      if (filters.label.length > 0) {
        const labels = engine.config(rec).config?.Labels ?? {};
        const ok = filters.label.every((l) => {
          const j = l.indexOf('=');
          return j < 0 ? l in labels : labels[l.slice(0, j)] === l.slice(j + 1);
        });
        if (!ok) continue;
      }
      const repoDigests = engine.images.repoDigestsOf(rec.digest);
      const row = (Repository: string, Tag: string, Digest: string): ImageRow => ({
        ID: opts.trunc ? shortId(rec.id) : rec.id,
        Repository,
        Tag,
        Digest,
        CreatedSince: createdSince(new Date(createdMs(rec))),
        // A getter: the local time zone's name costs ~15 ms to look up, and most formats never show it.
        get CreatedAt() {
          return dockerTime(new Date(createdMs(rec)));
        },
        Size: listSize(rec.size),
        VirtualSize: listSize(rec.size),
        SharedSize: 'N/A',
        UniqueSize: 'N/A',
        Containers: 'N/A',
      });
      const entries = dangling ? [{ repo: '<none>', tag: '<none>' }] : names.map((n) => repoAndTag(n, ImageStore.display));
      for (const { repo, tag } of entries) {
        if (filters.reference.length > 0) {
          const ok = filters.reference.some((p) => globMatch(p, repo) || globMatch(p, `${repo}:${tag}`));
          if (!ok || dangling) continue;
        }
        const rd = repoDigests.find((d) => repoAndTag(d.split('@')[0]!, ImageStore.display).repo === repo);
        rows.push(row(repo, tag, rd ? rd.split('@')[1]! : '<none>'));
      }
    }
    let format: string;
    if (opts.quiet) format = '{{.ID}}';
    else if (opts.format === 'json') format = '{{json .}}';
    else if (opts.format && opts.format !== 'table') format = opts.format;
    else format = `table {{.Repository}}\t{{.Tag}}${opts.digests ? '\t{{.Digest}}' : ''}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}`;
    out(renderTable(format, rows, IMAGE_HEADERS));
  });
}

async function removeAction(images: string[], opts: { force?: boolean }) {
  await withEngine(async (engine) => {
    const { ImageStore } = await import('../image/store.js');
    let failed = 0;
    for (const ref of images) {
      try {
        const r = engine.removeImage(ref, { force: opts.force });
        for (const n of r.untagged) out(`Untagged: ${ImageStore.display(n)}\n`);
        for (const d of r.deleted) out(`Deleted: ${d}\n`);
      } catch (e) {
        if (!(e instanceof PlyError)) throw e;
        process.stderr.write(`Error: ${e.message}\n`);
        failed = e.exitCode;
      }
    }
    if (failed) process.exitCode = failed;
  });
}

const HISTORY_HEADERS: Record<string, string> = {
  ID: 'IMAGE',
  CreatedSince: 'CREATED',
  CreatedAt: 'CREATED AT',
  CreatedBy: 'CREATED BY',
  Size: 'SIZE',
  Comment: 'COMMENT',
};

async function historyAction(ref: string, opts: { format?: string; human: boolean; trunc: boolean; quiet?: boolean }) {
  await withEngine(async (engine) => {
    const rec = engine.resolveImage(ref);
    const config = engine.config(rec);
    const layers = engine.images.layers(rec);
    const history = config.history ?? [];
    let layerIndex = 0;
    const rows = history.map((h) => {
      const size = h.empty_layer ? 0 : (layers[layerIndex++]?.unpackedSize ?? 0);
      const created = h.created ? new Date(h.created) : undefined;
      const by = h.created_by ?? '';
      return {
        ID: '<missing>',
        CreatedSince: created ? (opts.human ? createdSince(created) : rfc3339Nano(created)) : 'N/A',
        CreatedAt: created ? rfc3339Nano(created) : '',
        CreatedBy: opts.trunc ? truncateCommand(by.replace(/\s+/g, ' '), 45) : by,
        Size: opts.human ? listSize(size) : String(size),
        Comment: h.comment ?? '',
      };
    });
    rows.reverse();
    if (rows.length === 0) rows.push({ ID: '', CreatedSince: '', CreatedAt: '', CreatedBy: '', Size: '0B', Comment: '' });
    rows[0]!.ID = opts.trunc ? shortId(rec.id) : rec.id;
    let format: string;
    if (opts.quiet) format = '{{.ID}}';
    else if (opts.format === 'json') format = '{{json .}}';
    else if (opts.format && opts.format !== 'table') format = opts.format;
    else format = 'table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}';
    out(renderTable(format, rows, HISTORY_HEADERS));
  });
}

/** docker image inspect's JSON shape. */
export function inspectImage(engine: Engine, rec: ImageRecord): Record<string, unknown> {
  const cfg: ImageConfig = engine.config(rec);
  const c = cfg.config ?? {};
  const { ImageStore } = imageStoreClass!;
  const tagTime = engine.images.lastTagTime(rec.digest);
  return {
    Id: rec.id,
    RepoTags: engine.images.namesOf(rec.digest).map((n) => ImageStore.display(n)),
    RepoDigests: engine.images.repoDigestsOf(rec.digest).map((n) => ImageStore.display(n)),
    Parent: rec.parent ?? '',
    Comment: cfg.comment ?? '',
    Created: cfg.created ? rfc3339Nano(cfg.created) : '0001-01-01T00:00:00Z',
    DockerVersion: cfg.docker_version ?? '',
    Author: cfg.author ?? '',
    Config: {
      Hostname: '',
      Domainname: '',
      User: c.User ?? '',
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      ...(c.ExposedPorts ? { ExposedPorts: c.ExposedPorts } : {}),
      Tty: false,
      OpenStdin: false,
      StdinOnce: false,
      Env: c.Env ?? null,
      Cmd: c.Cmd ?? null,
      ...(c.Healthcheck ? { Healthcheck: c.Healthcheck } : {}),
      ...(c.ArgsEscaped ? { ArgsEscaped: true } : {}),
      Image: '',
      Volumes: c.Volumes ?? null,
      WorkingDir: c.WorkingDir ?? '',
      Entrypoint: c.Entrypoint ?? null,
      OnBuild: c.OnBuild ?? null,
      Labels: c.Labels ?? null,
      ...(c.StopSignal ? { StopSignal: c.StopSignal } : {}),
      ...(c.Shell ? { Shell: c.Shell } : {}),
    },
    Architecture: cfg.architecture,
    ...(cfg.variant ? { Variant: cfg.variant } : {}),
    Os: cfg.os,
    Size: rec.size,
    GraphDriver: { Data: null, Name: 'overlayfs' },
    RootFS: { Type: 'layers', Layers: cfg.rootfs.diff_ids },
    Metadata: { LastTagTime: tagTime ? rfc3339Nano(new Date(tagTime)) : '0001-01-01T00:00:00Z' },
    Descriptor: { mediaType: rec.mediaType, digest: rec.digest, size: engine.content.info(rec.digest).size },
  };
}

let imageStoreClass: typeof import('../image/store.js') | undefined;

async function inspectAction(names: string[], opts: { format?: string }) {
  await withEngine(async (engine) => {
    imageStoreClass ??= await import('../image/store.js');
    const results: Record<string, unknown>[] = [];
    let missing = 0;
    for (const n of names) {
      const rec = engine.images.lookup(n);
      if (!rec) {
        process.stderr.write(`Error: No such image: ${n}\n`);
        missing++;
        continue;
      }
      results.push(inspectImage(engine, rec));
    }
    if (opts.format) {
      const { compileTemplate } = await import('../gotemplate/template.js');
      const t = compileTemplate(opts.format);
      for (const r of results) out(`${t(r)}\n`);
    } else {
      out(`${JSON.stringify(results, null, 4)}\n`);
    }
    if (missing) process.exitCode = 1;
  });
}

async function pruneAction(opts: { all?: boolean; force?: boolean; filter: string[] }) {
  if (opts.filter.length > 0) throw new InvalidArgumentError('image prune --filter is not supported yet');
  const warning = opts.all
    ? 'WARNING! This will remove all images without at least one container associated to them.'
    : 'WARNING! This will remove all dangling images.';
  if (!opts.force && !(await (await import('./prompt.js')).confirm(`${warning}\nAre you sure you want to continue? [y/N] `))) return;
  await withEngine(async (engine) => {
    const { ImageStore } = await import('../image/store.js');
    const r = engine.pruneImages({ all: opts.all });
    if (r.untagged.length + r.deleted.length > 0) {
      out('Deleted Images:\n');
      for (const n of r.untagged) out(`untagged: ${ImageStore.display(n)}\n`);
      for (const d of r.deleted) out(`deleted: ${d}\n`);
      out('\n');
    }
    out(`Total reclaimed space: ${humanSize(r.reclaimed)}\n`);
  });
}
