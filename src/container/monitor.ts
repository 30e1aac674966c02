// The per-container monitor: a detached process that runs the container under the runtime, keeps its logs,
// serves its attach socket and records its exit code, so the container outlives the CLI or API client that
// started it. It is also the container's supervisor: it restarts the container as its restart policy says (with
// docker's back-off) and runs its health checks while it runs (container/supervise.ts).
// Usage: monitor.js ROOT ID [HOLD [DELAY_MS]] (fd 3: status lines; HOLD: attach clients to wait for before the
// first start; DELAY_MS: the container waits for a policy restart, reported at once, started after the delay).
// Or monitor.js --warm: a spare (container/monitor-launch.ts), the same arguments later on stdin.
import fs from 'node:fs';
import { openStores } from '../stores.js';
import { RestartManager } from '../supervisor/restart.js';
import { ContainerManager, type StartError } from './manager.js';

/** A spare's arguments (monitor-launch.ts): `[root, id, hold, delay?]` as JSON on stdin, read blocking (no CPU while it waits). */
function warmJob(): string[] | undefined {
  const buf = Buffer.alloc(4096);
  let got = '';
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') return undefined;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
      continue;
    }
    if (n === 0) return undefined; // its starter went away before it was needed
    got += buf.toString('utf8', 0, n);
    const nl = got.indexOf('\n');
    if (nl >= 0) return (JSON.parse(got.slice(0, nl)) as unknown[]).map(String);
  }
}

async function main(): Promise<void> {
  const args = process.argv[2] === '--warm' ? warmJob() : process.argv.slice(2);
  if (!args) return;
  const [root, id, hold, delayArg] = args;
  let status: number | undefined = 3;
  const say = (line: string, last: boolean) => {
    if (status === undefined) return;
    try {
      fs.writeSync(status, `${line}\n`);
      if (last) fs.closeSync(status);
    } catch {
      // the starter went away: nobody to tell
    }
    if (last) status = undefined;
  };
  // Detached from the CLI's session: a terminal hang-up must not end the container's supervisor.
  process.on('SIGHUP', () => undefined);
  process.on('SIGINT', () => undefined);
  const stores = openStores(root!);
  try {
    const manager = new ContainerManager(stores);
    let c = stores.containers.get(id!);
    if (!c) throw new Error(`no such container ${id}`);
    const restart = new RestartManager(c.spec.restartPolicy, delayArg ? Number(delayArg) : 0);
    if (delayArg !== undefined) {
      // Taking over a container that waits for its restart: this process supervises it from now on.
      stores.containers.update(c.id, { monitorPid: process.pid });
      say('ok', true);
      if (!(await manager.waitToRestart(c.id, Number(delayArg)))) return;
    }
    let holdFor = Number(hold ?? 0) || 0;
    for (;;) {
      c = stores.containers.get(id!);
      if (!c) return;
      try {
        await manager.supervise(
          c,
          'detached',
          (err?: StartError) => say(err ? `error ${err.exitCode} ${err.message}` : 'ok', true),
          undefined,
          { attach: true, holdFor, onAttachReady: () => say('attach', false), restart },
        );
      } catch (e) {
        // A restart that could not start leaves the container stopped, as dockerd does.
        if (status === undefined && stores.containers.get(id!)?.state === 'restarting') stores.containers.update(id!, { state: 'exited', monitorPid: 0 });
        throw e;
      }
      holdFor = 0;
      const now = stores.containers.get(id!);
      if (now?.state !== 'restarting') return;
      if (!(await manager.waitToRestart(id!, restart.lastDelayMs))) return;
    }
  } catch (e) {
    say(`error 125 ${(e as Error).message}`, true);
  } finally {
    stores.close();
  }
}

void main();
