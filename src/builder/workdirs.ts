// What a build leaves while it runs, and how to recognise what a killed build left: its work directory under
// $PLY_ROOT/build (named after its pid) and the containers of its RUN steps (labelled with its pid).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pidAlive } from '../content/store.js';
import { dirSize, removeTree } from '../util/fs.js';

/** The label a RUN step's container carries: the pid of the build that made it. */
export const BUILD_PID_LABEL = 'ply.build.pid';

/** Whether a container was made by a build that is no longer running (killed). */
export function orphanedBuildContainer(labels: Record<string, string>): boolean {
  const pid = Number(labels[BUILD_PID_LABEL]);
  return Number.isInteger(pid) && pid > 0 && pid !== process.pid && !pidAlive(pid);
}

/** Work dirs of builds whose process is gone (killed): their read-only views unmounted, then removed; bytes freed. */
export function removeStaleWorkDirs(base: string): number {
  let names: string[];
  try {
    names = fs.readdirSync(base);
  } catch {
    return 0;
  }
  let freed = 0;
  for (const name of names) {
    const m = /^(?:ctx-)?(\d+)-/.exec(name);
    if (!m || Number(m[1]) === process.pid || pidAlive(Number(m[1]))) continue;
    const dir = path.join(base, name);
    const mounts = fs
      .readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((p): p is string => p !== undefined && p.startsWith(`${dir}/`));
    let busy = false;
    for (const mnt of mounts.reverse()) {
      try {
        execFileSync('umount', ['-l', mnt], { stdio: 'ignore' });
      } catch {
        busy = true;
      }
    }
    if (busy) continue;
    freed += dirSize(dir);
    removeTree(dir);
  }
  return freed;
}
