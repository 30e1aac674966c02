// `ply cp`: copies between a container's filesystem and the host. Container paths are resolved inside the
// container's root (symlinks cannot lead out of it); a stopped container's rootfs is mounted for the copy.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, NotFoundError, PlyError } from '../errors.js';
import { resolveInRoot } from '../util/rootpath.js';
import { withRootfs } from './commit.js';
import type { ContainerManager } from './manager.js';

function splitContainerPath(arg: string): { container?: string; path: string } {
  // "CONTAINER:PATH"; a leading '/' or '.' means a local path even if it contains ':'.
  if (arg.startsWith('/') || arg.startsWith('.')) return { path: arg };
  const i = arg.indexOf(':');
  if (i <= 0) return { path: arg };
  return { container: arg.slice(0, i), path: arg.slice(i + 1) || '/' };
}

async function run(cmd: string, args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let err = '';
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new PlyError(err.trim().split('\n').pop() ?? `${cmd} failed`))));
  });
}

export async function copy(manager: ContainerManager, src: string, dest: string, opts: { archive?: boolean; followLink?: boolean }): Promise<void> {
  const s = splitContainerPath(src);
  const d = splitContainerPath(dest);
  if (s.container && d.container) throw new InvalidArgumentError('copying between containers is not supported');
  if (!s.container && !d.container) throw new InvalidArgumentError('must specify at least one container source');
  if (s.container) {
    const c = manager.get(s.container);
    await withRootfs(manager, c, async (rootfs) => {
      const parent = resolveInRoot(rootfs, path.posix.dirname(s.path));
      const base = path.posix.basename(s.path);
      let from = base === '' || base === '/' ? rootfs : path.join(parent, base);
      if (opts.followLink) from = resolveInRoot(rootfs, s.path);
      if (!fs.existsSync(from) && !isSymlink(from)) throw new NotFoundError(`Could not find the file ${s.path} in container ${s.container}`);
      const args = ['-a', '--no-preserve=ownership'];
      if (opts.archive) args[1] = '--preserve=all';
      await run('cp', [...args, s.path.endsWith('/.') ? `${from}/.` : from, dest]);
    });
    return;
  }
  const c = manager.get(d.container!);
  if (!fs.existsSync(src)) throw new NotFoundError(`lstat ${src}: no such file or directory`);
  await withRootfs(manager, c, async (rootfs) => {
    const target = resolveInRoot(rootfs, d.path);
    const parent = resolveInRoot(rootfs, path.posix.dirname(d.path));
    if (!fs.existsSync(parent)) throw new NotFoundError(`Could not find the file ${path.posix.dirname(d.path)} in container ${d.container}`);
    // Files land owned by root in the container unless -a keeps the host's owners, as docker does.
    const args = opts.archive ? ['-a', '--remove-destination'] : ['-R', '--preserve=mode,timestamps,links', '--no-dereference', '--remove-destination'];
    await run('cp', [...args, src.endsWith('/.') ? src : src, fs.existsSync(target) && fs.statSync(target).isDirectory() ? target : path.join(parent, path.posix.basename(d.path))]);
  });
}

function isSymlink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
