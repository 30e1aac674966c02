// Mount points: whether a directory is one, and unmounting it (lazily when it is busy).
import fs from 'node:fs';
import * as native from '../native/index.js';

/** Whether `dir` is a mount point (listed in /proc/self/mountinfo). */
export function isMounted(dir: string): boolean {
  const info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  const target = dir.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
  return info.split('\n').some((line) => line.split(' ')[4] === target);
}

/** Unmounts `dir` if it is mounted (detached when busy). */
export function unmountIfMounted(dir: string): void {
  if (!isMounted(dir)) return;
  try {
    native.umount2(dir, 0);
  } catch {
    native.umount2(dir, native.MNT_DETACH);
  }
}
