// A container's files as tar streams for the engine (docker's /containers/{id}/archive): the stat of a path,
// a tar of it, and a tar unpacked into a directory; paths resolved inside the container's root as it would.
import fs from 'node:fs';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ContainerManager } from '../container/manager.js';
import { isRunning } from '../container/store.js';
import { ConflictError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { rfc3339Nano } from '../gotemplate/gofmt.js';
import { resolveInRoot } from '../util/rootpath.js';
import type { PathStat } from './types.js';

/** Go's os.FileMode type bits, as docker's path stat header carries them. */
const GO_MODE_DIR = 2 ** 31;
const GO_MODE_SYMLINK = 2 ** 27;

/** `HEAD /containers/{id}/archive`: what is at `path` in the container (symlinks in parents resolved inside it). */
export async function archiveStat(manager: ContainerManager, ref: string, p: string): Promise<PathStat> {
  const { withRootfs } = await import('../container/commit.js');
  const c = manager.get(ref);
  return withRootfs(manager, c, async (rootfs) => statIn(rootfs, p, c.name));
}

/**
 * `GET /containers/{id}/archive`: a tar of `path` (its last component the top entry, as docker's) and its
 * stat. The stream is read while the rootfs is available: consume it before anything else of this container.
 */
export async function archiveGet(manager: ContainerManager, ref: string, p: string, out: Writable): Promise<PathStat> {
  const { withRootfs } = await import('../container/commit.js');
  const { writeTree } = await import('../layer/diff.js');
  const { TarWriter } = await import('../tar/index.js');
  const c = manager.get(ref);
  return withRootfs(manager, c, async (rootfs) => {
    const stat = statIn(rootfs, p, c.name);
    const parent = resolveInRoot(rootfs, path.posix.dirname(path.posix.join('/', p)));
    const base = path.posix.basename(path.posix.join('/', p));
    const writer = new TarWriter();
    const produce = (async () => {
      if (base === '') await writeTree(rootfs, writer, { quiescent: !isRunning(c) });
      else await writeTree(parent, writer, { skip: (rel) => rel !== base && !rel.startsWith(`${base}/`), quiescent: !isRunning(c) });
      await writer.finish();
    })();
    produce.catch((e: unknown) => writer.destroy(e as Error));
    await Promise.all([pipeline(writer.stream, out), produce]);
    return stat;
  });
}

/** `PUT /containers/{id}/archive`: unpacks a tar into the directory `path` of the container (confined to it). */
export async function archivePut(manager: ContainerManager, ref: string, p: string, tar: Readable | AsyncIterable<Buffer>): Promise<void> {
  const { withRootfs } = await import('../container/commit.js');
  const { applyLayer } = await import('../layer/apply.js');
  const { decompressed } = await import('../layer/compression.js');
  const c = manager.get(ref);
  if (c.spec.readonlyRootfs && isRunning(c)) throw new ConflictError('container rootfs is marked read-only');
  await withRootfs(manager, c, async (rootfs) => {
    const dir = resolveInRoot(rootfs, p);
    const st = fs.statSync(dir, { throwIfNoEntry: false });
    if (!st) throw new NotFoundError(`Could not find the file ${p} in container ${c.name}`);
    if (!st.isDirectory()) throw new InvalidArgumentError(`extraction point is not a directory: ${p}`);
    await applyLayer(dir, decompressed(tar), { mode: 'flat' });
  });
}

/** What `p` is inside `rootfs` (the last component not followed), as docker's path stat. */
function statIn(rootfs: string, p: string, container: string): PathStat {
  const abs = path.posix.join('/', p);
  const parent = resolveInRoot(rootfs, path.posix.dirname(abs));
  const base = path.posix.basename(abs);
  const full = base === '' ? rootfs : path.join(parent, base);
  const st = fs.lstatSync(full, { throwIfNoEntry: false });
  if (!st) throw new NotFoundError(`Could not find the file ${p} in container ${container}`);
  let mode = st.mode & 0o7777;
  if (st.isDirectory()) mode += GO_MODE_DIR;
  if (st.isSymbolicLink()) mode += GO_MODE_SYMLINK;
  return {
    name: base || '/',
    size: st.size,
    mode,
    mtime: rfc3339Nano(st.mtime),
    linkTarget: st.isSymbolicLink() ? fs.readlinkSync(full) : '',
  };
}
