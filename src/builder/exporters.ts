// Where a build's result goes besides the store (buildx's exporters): the final stage's filesystem as a
// directory (type=local) or a tar (type=tar), or the image as an archive that docker, podman and skopeo load
// (type=docker: docker-archive, type=oci: an OCI layout tar). Archives go through the copy pipeline (save's code).
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PassThrough, type Writable } from 'node:stream';
import type { ImageRecord } from '../image/store.js';
import type { Stores } from '../stores.js';

export type BuildOutput =
  /** Into the store under the build's tags (docker's default, `--load`, `type=docker` without `dest`). */
  | { type: 'image' }
  | { type: 'local'; dest: string }
  | { type: 'tar'; dest: string | Writable }
  | { type: 'docker' | 'oci'; dest: string | Writable; names?: string[] };

/** The image's filesystem, as its layers merged show it, written as one tar (no whiteouts) to `out`. */
async function writeRootfsTar(stores: Stores, image: ImageRecord, out: Writable): Promise<void> {
  const { TarWriter } = await import('../tar/index.js');
  const { writeMergedTree } = await import('../layer/diff.js');
  const layers = stores.images.layers(image);
  const lease = stores.images.lease();
  try {
    for (const l of layers) lease.add(l.digest);
    const dirs = await stores.snapshots.layers.unpack(layers);
    const writer = new TarWriter();
    const produce = (async () => {
      await writeMergedTree(dirs, writer, { quiescent: true });
      await writer.finish();
    })();
    produce.catch((e: unknown) => writer.destroy(e as Error));
    await Promise.all([pipeline(writer.stream, out), produce]);
  } finally {
    lease.release();
  }
}

async function toDestination(dest: string | Writable, write: (out: Writable) => Promise<void>): Promise<void> {
  if (typeof dest !== 'string') return write(dest);
  const dir = path.dirname(path.resolve(dest));
  fs.mkdirSync(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(dest)}.${process.pid}.tmp`);
  try {
    await write(fs.createWriteStream(tmp));
    fs.renameSync(tmp, dest);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

export async function exportBuild(stores: Stores, image: ImageRecord, output: BuildOutput): Promise<void> {
  switch (output.type) {
    case 'image':
      return;
    case 'tar':
      return toDestination(output.dest, (out) => writeRootfsTar(stores, image, out));
    case 'local': {
      // The merged tree applied as one layer: what the image shows, written over whatever `dest` holds.
      const { applyLayer } = await import('../layer/apply.js');
      fs.mkdirSync(output.dest, { recursive: true });
      const pass = new PassThrough({ highWaterMark: 1 << 20 });
      await Promise.all([writeRootfsTar(stores, image, pass), applyLayer(output.dest, pass, { mode: 'flat' })]);
      return;
    }
    case 'docker':
    case 'oci': {
      const { saveImages } = await import('../transport/archive.js');
      const format = output.type;
      return toDestination(output.dest, (out) => saveImages(stores.images, [{ image, names: output.names ?? [] }], out, { format }));
    }
  }
}
