// Archive commands: save / image save (images to a docker-archive + OCI layout tar), load / image load.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import type { LoadResult } from '../engine.js';
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
  const { parseArchiveFormat } = await import('../engine/images.js');
  parseArchiveFormat(o.format);
  if (!o.output && process.stdout.isTTY) throw new PlyError('cowardly refusing to save to a terminal. Use the -o flag or redirect');
  await withEngine(async (engine) => {
    const pending = await engine.images.save(refs, { format: o.format });
    await writeAtomically(o.output, (stream) => pending.writeTo(stream));
  });
}

async function loadAction(o: { input?: string; quiet?: boolean }) {
  if (!o.input && process.stdin.isTTY) throw new PlyError('requested load from stdin, but stdin is empty');
  await withEngine(async (engine) => {
    const { humanSize } = await import('./format.js');
    const onProgress =
      !o.quiet && process.stdout.isTTY
        ? (e: { path: string; size: number; layer: boolean }) => {
            if (e.layer) out(`Loaded layer ${path.basename(e.path).slice(0, 12)}  ${humanSize(e.size)}\n`);
          }
        : undefined;
    let result: LoadResult;
    if (o.input) {
      let st: fs.Stats;
      try {
        st = fs.statSync(o.input);
      } catch {
        throw new NotFoundError(`open ${o.input}: no such file or directory`);
      }
      if (st.isDirectory()) {
        result = await engine.images.load({ directory: o.input }, { onProgress });
      } else {
        const stream = fs.createReadStream(o.input, { highWaterMark: 1 << 20 });
        try {
          result = await engine.images.load(stream, { onProgress });
        } finally {
          stream.destroy();
        }
      }
    } else {
      try {
        result = await engine.images.load(process.stdin, { onProgress });
      } catch (e) {
        process.stdin.destroy();
        throw e;
      }
    }
    for (const r of result.renamed) {
      out(`The image ${r.name} already exists, renaming the old one with ID ${r.oldId} to empty string\n`);
    }
    for (const img of result.images) {
      if (img.RepoTags.length === 0) out(`Loaded image ID: ${img.Id}\n`);
      for (const n of img.RepoTags) out(`Loaded image: ${n}\n`);
    }
  });
}
