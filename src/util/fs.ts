// Small filesystem helpers: the store's private root, and sizes for the commands that report them.
import fs from 'node:fs';
import path from 'node:path';

/** Bytes of the regular files below `dir` (hardlinked files counted once); 0 when it does not exist. */
export function dirSize(dir: string): number {
  let n = 0;
  const seen = new Set<string>();
  const walk = (d: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const st = fs.lstatSync(p, { throwIfNoEntry: false });
        if (!st) continue;
        const key = `${st.dev}:${st.ino}`;
        if (st.nlink > 1 && seen.has(key)) continue;
        seen.add(key);
        n += st.size;
      }
    }
  };
  walk(dir);
  return n;
}

/**
 * Creates the store root (or fixes an existing one) as podman keeps its store: mode 0700, so no other local
 * user can reach anything below it (setuid binaries in unpacked layers, containers' files, the DB).
 */
export function ensurePrivateRoot(root: string): void {
  fs.mkdirSync(root, { recursive: true, mode: 0o700 });
  const st = fs.statSync(root);
  if ((st.mode & 0o077) !== 0) fs.chmodSync(root, st.mode & 0o700);
}
