// Small filesystem helpers shared by commands that report sizes.
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
