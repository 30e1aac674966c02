// The per-container monitor: a detached process that runs the container under the runtime, keeps its logs,
// serves its attach socket and records its exit code, so the container outlives the CLI or API client that
// started it. Usage: monitor.js ROOT ID [HOLD] (fd 3: status lines; HOLD: attach clients to wait for).
import fs from 'node:fs';
import { openStores } from '../stores.js';
import { ContainerManager, type StartError } from './manager.js';

async function main(): Promise<void> {
  const [root, id, hold] = process.argv.slice(2);
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
    const c = stores.containers.get(id!);
    if (!c) throw new Error(`no such container ${id}`);
    await new ContainerManager(stores).supervise(c, 'detached', (err?: StartError) => say(err ? `error ${err.exitCode} ${err.message}` : 'ok', true), undefined, {
      attach: true,
      holdFor: Number(hold ?? 0) || 0,
      onAttachReady: () => say('attach', false),
    });
  } catch (e) {
    say(`error 125 ${(e as Error).message}`, true);
  } finally {
    stores.close();
  }
}

void main();
