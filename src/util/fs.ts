// Small filesystem helpers: the store's private root, and sizes for the commands that report them.
import fs from 'node:fs';

/** Bytes of the regular files below `dir` (hardlinked files counted once); 0 when it does not exist. Any depth. */
export function dirSize(dir: string): number {
  let n = 0;
  const seen = new Set<string>();
  walkTree(dir, (dirfd, name, e) => {
    if (!e.isFile()) return;
    const st = fs.lstatSync(`/proc/self/fd/${dirfd}/${name}`, { throwIfNoEntry: false });
    if (!st) return;
    const key = `${st.dev}:${st.ino}`;
    if (st.nlink > 1 && seen.has(key)) return;
    seen.add(key);
    n += st.size;
  });
  return n;
}

/**
 * Calls `visit` for every entry below `dir` (parents before children), with the descriptor of the entry's
 * directory: `/proc/self/fd/<dirfd>/<name>` reaches it at any depth (no path grows past PATH_MAX, no call stack
 * grows with the depth, no symlink is followed). Directories that vanish or cannot be read are skipped.
 */
export function walkTree(dir: string, visit: (dirfd: number, name: string, entry: fs.Dirent) => void): void {
  const flags = fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW;
  const stack: { fd: number; entries: fs.Dirent[] }[] = [];
  const enter = (p: string) => {
    let fd: number;
    try {
      fd = fs.openSync(p, flags);
    } catch {
      return;
    }
    try {
      stack.push({ fd, entries: fs.readdirSync(`/proc/self/fd/${fd}`, { withFileTypes: true }).reverse() });
    } catch {
      fs.closeSync(fd);
    }
  };
  enter(dir);
  try {
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const e = top.entries.pop();
      if (!e) {
        stack.pop();
        fs.closeSync(top.fd);
        continue;
      }
      visit(top.fd, e.name, e);
      if (e.isDirectory()) enter(`/proc/self/fd/${top.fd}/${e.name}`);
    }
  } finally {
    for (const f of stack) fs.closeSync(f.fd);
  }
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

const at = (dirfd: number, name: string) => `/proc/self/fd/${dirfd}/${name}`;

/** `fn`'s result, or undefined when what it acts on no longer exists (ENOENT). */
function unlessGone<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Removes `target` and everything below it, at any depth: directories are walked with an explicit stack and
 * reached from their parent's descriptor (no path grows past PATH_MAX, no symlink is followed, no call stack
 * grows with the depth), unlike fs.rmSync's recursion over whole paths. An entry that goes away on its own
 * meanwhile (a monitor removing its socket as it exits) is not an error: it is gone, as asked.
 */
export function removeTree(target: string): void {
  const st = fs.lstatSync(target, { throwIfNoEntry: false });
  if (!st) return;
  if (!st.isDirectory()) {
    unlessGone(() => fs.unlinkSync(target));
    return;
  }
  interface Frame {
    fd: number;
    parent?: number;
    name: string;
    subdirs: string[];
  }
  const open = (p: string, parent: number | undefined, name: string): Frame | undefined => {
    const fd = unlessGone(() => fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW));
    if (fd === undefined) return undefined;
    const subdirs: string[] = [];
    try {
      for (const e of fs.readdirSync(`/proc/self/fd/${fd}`, { withFileTypes: true })) {
        if (e.isDirectory()) subdirs.push(e.name);
        else unlessGone(() => fs.unlinkSync(at(fd, e.name)));
      }
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
    return { fd, parent, name, subdirs };
  };
  const root = open(target, undefined, '');
  if (!root) return;
  const stack: Frame[] = [root];
  try {
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      const next = top.subdirs.pop();
      if (next !== undefined) {
        const sub = open(at(top.fd, next), top.fd, next);
        if (sub) stack.push(sub);
        continue;
      }
      stack.pop();
      fs.closeSync(top.fd);
      unlessGone(() => (top.parent === undefined ? fs.rmdirSync(target) : fs.rmdirSync(at(top.parent, top.name))));
    }
  } finally {
    for (const f of stack) fs.closeSync(f.fd);
  }
}
