// Archive commands: save / image save (images to a docker-archive + OCI layout tar), load / image load.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { NotFoundError, PlyError } from '../errors.js';
import { out, withEngine } from './engine.js';
import { writeAtomically } from './output.js';

export function registerArchiveCommands(program: Command): void {
  const image = program.commands.find((c) => c.name() === 'image') ?? program.command('image').description('Manage images');

  for (const cmd of [program.command('save'), image.command('save')]) {
    cmd
      .description('Save one or more images to a tar archive (streamed to STDOUT by default)')
      .usage('[OPTIONS] IMAGE [IMAGE...]')
      .argument('<images...>')
      .option('-o, --output <string>', 'Write to a file, instead of STDOUT')
      .option('--format <string>', 'docker-archive and OCI layout in one tar (default), or "docker" or "oci" alone')
      .action(saveAction);
  }

  for (const cmd of [program.command('load'), image.command('load')]) {
    cmd
      .description('Load an image from a tar archive or STDIN')
      .usage('[OPTIONS]')
      .option('-i, --input <string>', 'Read from tar archive file (or OCI layout directory), instead of STDIN')
      .option('-q, --quiet', 'Suppress the load output')
      .action(loadAction);
  }
}

async function saveAction(refs: string[], o: { output?: string; format?: string }) {
  const { parseArchiveFormat, resolveSave, saveImages } = await import('../transport/archive.js');
  const format = parseArchiveFormat(o.format);
  if (!o.output && process.stdout.isTTY) throw new PlyError('cowardly refusing to save to a terminal. Use the -o flag or redirect');
  await withEngine(async (engine) => {
    const items = resolveSave(engine.images, refs);
    await writeAtomically(o.output, (stream) => saveImages(engine.images, items, stream, { format }));
  });
}

async function loadAction(o: { input?: string; quiet?: boolean }) {
  if (!o.input && process.stdin.isTTY) throw new PlyError('requested load from stdin, but stdin is empty');
  await withEngine(async (engine) => {
    const { loadArchive, loadDirectory } = await import('../transport/archive-load.js');
    const { ImageStore } = await import('../image/store.js');
    const { humanSize } = await import('./format.js');
    const onProgress =
      !o.quiet && process.stdout.isTTY
        ? (e: { path: string; size: number; layer: boolean }) => {
            if (e.layer) out(`Loaded layer ${path.basename(e.path).slice(0, 12)}  ${humanSize(e.size)}\n`);
          }
        : undefined;
    let result: Awaited<ReturnType<typeof loadArchive>>;
    if (o.input) {
      let st: fs.Stats;
      try {
        st = fs.statSync(o.input);
      } catch {
        throw new NotFoundError(`open ${o.input}: no such file or directory`);
      }
      if (st.isDirectory()) {
        result = await loadDirectory(engine.images, o.input, { onProgress });
      } else {
        const stream = fs.createReadStream(o.input, { highWaterMark: 1 << 20 });
        try {
          result = await loadArchive(engine.images, stream, { onProgress });
        } finally {
          stream.destroy();
        }
      }
    } else {
      try {
        result = await loadArchive(engine.images, process.stdin, { onProgress });
      } catch (e) {
        process.stdin.destroy();
        throw e;
      }
    }
    for (const r of result.renamed) {
      out(`The image ${ImageStore.display(r.name)} already exists, renaming the old one with ID ${r.oldId} to empty string\n`);
    }
    for (const img of result.images) {
      if (img.names.length === 0) out(`Loaded image ID: ${img.id}\n`);
      for (const n of img.names) out(`Loaded image: ${ImageStore.display(n)}\n`);
    }
  });
}
