// Image commands: import, images/image ls, tag, rmi/image rm, image inspect, history, image prune.
import fs from 'node:fs';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import type { Inspected } from './output.js';
import { ClientCheckError, InvalidArgumentError, InvalidReferenceError, NotFoundError, PlyError } from '../errors.js';
import { withEngine, out } from './engine.js';
import { createdSince, dockerTime, humanSize, humanSizeWithPrecision, rfc3339Nano, shortId, truncateCommand } from './format.js';
import { collect } from './options.js';
import { renderTable } from '../gotemplate/template.js';

/** docker images and history show sizes with 3 significant digits (system df uses 4). */
const listSize = (n: number) => humanSizeWithPrecision(n, 3);

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
      .action(async (source: string, target: string) =>
        withEngine((e) => e.images.tag(source, target)).catch((err: unknown) => {
          throw tagError(err);
        }),
      );
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
    .option('--type <string>', 'Only inspect objects of the given type (container, image, network, volume)')
    .action(async (names: string[], opts: { format?: string; type?: string; size?: boolean }) => {
      const types = ['container', 'image', 'network', 'volume'] as const;
      // docker's types; the swarm ones need a swarm manager, which ply never is.
      const swarm = ['config', 'node', 'plugin', 'secret', 'service', 'task'];
      if (opts.type && swarm.includes(opts.type)) {
        throw new PlyError('This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.');
      }
      if (opts.type && !(types as readonly string[]).includes(opts.type)) {
        throw new InvalidArgumentError(`unknown type: "${opts.type}": must be one of ${[...types, ...swarm].sort().map((t) => `"${t}"`).join(', ')}`);
      }
      await withEngine(async (engine) => {
        const { inspectEach } = await import('./output.js');
        const want = (t: (typeof types)[number]) => opts.type === undefined || opts.type === t;
        // docker's order: a container, an image, a network, then a volume of that name.
        const find = (n: string): Inspected | undefined => {
          const missing = (e: unknown) => {
            if (!(e instanceof NotFoundError)) throw e;
            return undefined;
          };
          if (want('container')) {
            try {
              return { kind: 'container', value: engine.containers.inspect(n, { size: opts.size }) };
            } catch (e) {
              missing(e);
            }
          }
          if (want('image')) {
            const rec = engine.images.lookup(n);
            if (rec) return { kind: 'image', value: engine.images.inspectRecord(rec) };
          }
          if (want('network')) {
            const value = engine.networks.find(n);
            if (value) return { kind: 'network', value };
          }
          if (want('volume')) {
            try {
              return { kind: 'volume', value: engine.volumes.inspect(n) };
            } catch (e) {
              missing(e);
            }
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
    const { stream, sourceName } = await openSource(source);
    const rec = await engine.images.import(stream, { changes: opts.change, message: opts.message, platform: opts.platform, reference, sourceName });
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

/** docker's CLI checks both names before it asks the daemon, and words a refusal as its own (bare, exit 1). */
function tagError(err: unknown): unknown {
  if (!(err instanceof InvalidReferenceError) || err.input === undefined || err.reason === undefined) return err;
  if (err.reason.startsWith('refusing')) return new ClientCheckError(err.reason);
  return new ClientCheckError(`Error parsing reference: ${JSON.stringify(err.input)} is not a valid repository/tag: ${err.reason}`);
}

/** Splits a familiar name into docker's repository and tag columns. */
function repoAndTag(familiar: string): { repo: string; tag: string } {
  const i = familiar.lastIndexOf(':');
  return i > familiar.lastIndexOf('/') ? { repo: familiar.slice(0, i), tag: familiar.slice(i + 1) } : { repo: familiar, tag: '<none>' };
}

async function listAction(
  repository: string | undefined,
  opts: { all?: boolean; digests?: boolean; filter: string[]; format?: string; trunc: boolean; quiet?: boolean },
) {
  await withEngine(async (engine) => {
    const filters = repository ? [...opts.filter, `reference=${repository}`] : opts.filter;
    const rows: ImageRow[] = [];
    for (const img of engine.images.list({ all: opts.all, filters })) {
      const created = new Date(img.Created * 1000);
      const row = (Repository: string, Tag: string, Digest: string): ImageRow => ({
        ID: opts.trunc ? shortId(img.Id) : img.Id,
        Repository,
        Tag,
        Digest,
        CreatedSince: createdSince(created),
        // A getter: the local time zone's name costs ~15 ms to look up, and most formats never show it.
        get CreatedAt() {
          return dockerTime(created);
        },
        Size: listSize(img.Size),
        // docker's VirtualSize column: 4 significant digits (go-units HumanSize), unlike Size.
        VirtualSize: humanSize(img.Size),
        SharedSize: 'N/A',
        UniqueSize: 'N/A',
        Containers: 'N/A',
      });
      const entries = img.RepoTags.length === 0 ? [{ repo: '<none>', tag: '<none>' }] : img.RepoTags.map(repoAndTag);
      for (const { repo, tag } of entries) {
        const rd = img.RepoDigests.find((d) => repoAndTag(d.split('@')[0]!).repo === repo);
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
    let failed = 0;
    for (const ref of images) {
      try {
        for (const item of engine.images.remove(ref, { force: opts.force })) {
          out('Untagged' in item ? `Untagged: ${item.Untagged}\n` : `Deleted: ${item.Deleted}\n`);
        }
      } catch (e) {
        if (!(e instanceof PlyError)) throw e;
        process.stderr.write(`Error: ${e.message}\n`);
        // docker: with -f, an image that is not there is reported but is no failure.
        if (!(opts.force && e instanceof NotFoundError)) failed = e.exitCode;
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
    const rows = engine.images.history(ref).map((h) => {
      const created = h.Created ? new Date(h.Created * 1000) : undefined;
      return {
        ID: h.Id === '<missing>' || h.Id === '' ? h.Id : opts.trunc ? shortId(h.Id) : h.Id,
        CreatedSince: created ? (opts.human ? createdSince(created) : rfc3339Nano(created)) : 'N/A',
        CreatedAt: created ? rfc3339Nano(created) : '',
        CreatedBy: opts.trunc ? truncateCommand(h.CreatedBy.replace(/\s+/g, ' '), 45) : h.CreatedBy,
        Size: opts.human ? listSize(h.Size) : String(h.Size),
        Comment: h.Comment,
      };
    });
    let format: string;
    if (opts.quiet) format = '{{.ID}}';
    else if (opts.format === 'json') format = '{{json .}}';
    else if (opts.format && opts.format !== 'table') format = opts.format;
    else format = 'table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}';
    out(renderTable(format, rows, HISTORY_HEADERS));
  });
}

async function inspectAction(names: string[], opts: { format?: string }) {
  await withEngine(async (engine) => {
    const { inspectEach } = await import('./output.js');
    await inspectEach(
      names,
      (n) => {
        const rec = engine.images.lookup(n);
        return rec && { kind: 'image', value: engine.images.inspectRecord(rec) };
      },
      opts.format,
      (n) => `No such image: ${n}`,
    );
  });
}

async function pruneAction(opts: { all?: boolean; force?: boolean; filter: string[] }) {
  const { ImageService } = await import('../engine/images.js');
  ImageService.checkPruneFilters(opts.filter);
  const warning = opts.all
    ? 'WARNING! This will remove all images without at least one container associated to them.'
    : 'WARNING! This will remove all dangling images.';
  if (!opts.force && !(await (await import('./prompt.js')).confirm(`${warning}\nAre you sure you want to continue? [y/N] `))) return;
  await withEngine(async (engine) => {
    // Leftovers of interrupted work first: a killed build's containers no longer keep their images.
    const left = await engine.system.reclaimLeftovers();
    const r = engine.images.prune({ all: opts.all });
    if (r.ImagesDeleted.length > 0) {
      out('Deleted Images:\n');
      for (const item of r.ImagesDeleted) out('Untagged' in item ? `untagged: ${item.Untagged}\n` : `deleted: ${item.Deleted}\n`);
      out('\n');
    }
    out(`Total reclaimed space: ${humanSize(r.SpaceReclaimed + left.reclaimed)}\n`);
  });
}
