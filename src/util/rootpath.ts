// Resolving a path inside a root directory the way the container would see it: symlinks are followed
// as if `root` were '/', so no component can lead outside it (containerd's fs.RootPath, in TypeScript).
import fs from 'node:fs';
import path from 'node:path';

const MAX_SYMLINKS = 255;

/** The host path for container path `p` under `root`, with every symlink resolved within root. */
export function resolveInRoot(root: string, p: string): string {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  const resolved: string[] = [];
  let links = 0;
  while (parts.length > 0) {
    const part = parts.shift()!;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const host = path.join(root, ...resolved, part);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(host);
    } catch {
      st = undefined;
    }
    if (st?.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) throw Object.assign(new Error(`too many levels of symbolic links: ${p}`), { code: 'ELOOP' });
      const target = fs.readlinkSync(host);
      if (target.startsWith('/')) resolved.length = 0;
      parts.unshift(...target.split('/').filter((s) => s !== '' && s !== '.'));
      continue;
    }
    resolved.push(part);
  }
  return path.join(root, ...resolved);
}
