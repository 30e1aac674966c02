// Launching a container's monitor (container/monitor.ts): a detached Node process per running container. A
// long-lived process (`ply system service`) keeps spare monitors started ahead of need, Node loaded and blocked
// reading their container from stdin, so a detached start (every `docker run` through the API) does not wait
// for Node's start-up, which is most of its time on a loaded machine. Two spares: back-to-back starts each find
// one ready while the one taken before is replaced.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cloexecFrom } from '../native/index.js';

/** Defined (true) by the bundler for dist/ply.cjs; undeclared in the unbundled build. */
declare const PLY_BUNDLED: boolean | undefined;

const SPARES = 2;
let keep = false;
const spares: ChildProcess[] = [];

function spawnMonitor(args: string[]): ChildProcess {
  // Next to this code: dist/container/monitor.js, or dist/monitor.cjs when running from the bundle.
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), typeof PLY_BUNDLED !== 'undefined' ? 'monitor.cjs' : 'monitor.js');
  const warm = args[0] === '--warm';
  // The monitor (and the runtime, the DNS server it may start) outlive this process: none of them may hold a
  // descriptor this process inherited (a caller's pipe would never see its end).
  cloexecFrom(3);
  return spawn(process.execPath, [script, ...args], {
    // Its own session: it outlives the CLI, the API client and the service that started it.
    detached: true,
    // fd 3: status lines for the starter; a spare's stdin: its container.
    stdio: [warm ? 'pipe' : 'ignore', 'ignore', 'ignore', 'pipe'],
  });
}

/** Keeps (or stops keeping) spare monitors waiting in this process. */
export function keepMonitorWarm(on: boolean): void {
  keep = on;
  if (on) replenishMonitor();
  else for (const s of spares.splice(0)) s.kill('SIGTERM');
}

/** Starts spares until enough wait (called after a start is confirmed, so they do not compete with it). */
export function replenishMonitor(): void {
  while (keep && spares.length < SPARES) {
    const child = spawnMonitor(['--warm']);
    child.stdin!.on('error', () => undefined);
    child.on('exit', () => {
      const i = spares.indexOf(child);
      if (i >= 0) spares.splice(i, 1);
    });
    spares.push(child);
  }
}

/**
 * A monitor for container `id` of the store at `root` (`rest`: monitor.ts's further arguments): the oldest spare
 * when one waits, else a new process.
 */
export function launchMonitor(root: string, id: string, rest: string[]): ChildProcess {
  for (let s = spares.shift(); s; s = spares.shift()) {
    if (s.exitCode !== null || s.signalCode !== null || !s.stdin?.writable) continue;
    s.stdin.end(`${JSON.stringify([root, id, ...rest])}\n`);
    return s;
  }
  return spawnMonitor([root, id, ...rest]);
}
