// Resolving a path inside a root directory the way the container would see it: symlinks are followed
// as if `root` were '/', so no component can lead outside it (containerd's fs.RootPath, in TypeScript).
import fs from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.js';

const MAX_SYMLINKS = 255;

/**
 * Resolves `unsafePath` (interpreted as an absolute path inside `root`) to a host path under `root`,
 * following symlinks as if `root` were `/` (a chroot): absolute link targets restart at `root`, and `..`
 * never climbs above it. Components that do not exist are appended lexically.
 */
export function resolveInRoot(root: string, unsafePath: string): string {
  const rootAbs = path.resolve(root);
  const resolved: string[] = [];
  const queue = unsafePath.split('/');
  let links = 0;
  while (queue.length > 0) {
    const c = queue.shift()!;
    if (c === '' || c === '.') continue;
    if (c === '..') {
      resolved.pop();
      continue;
    }
    const candidate = path.join(rootAbs, ...resolved, c);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(candidate);
    } catch {
      // Missing (or unreadable): the rest is joined lexically, still clamped to the root.
      resolved.push(c);
      for (const rest of queue) {
        if (rest === '' || rest === '.') continue;
        if (rest === '..') resolved.pop();
        else resolved.push(rest);
      }
      break;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) throw new InvalidArgumentError(`too many levels of symbolic links resolving ${unsafePath} in ${root}`);
      const target = fs.readlinkSync(candidate);
      if (target.startsWith('/')) resolved.length = 0;
      queue.unshift(...target.split('/'));
      continue;
    }
    resolved.push(c);
  }
  return path.join(rootAbs, ...resolved);
}

