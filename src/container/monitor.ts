// The per-container monitor: a detached process that runs the container under the runtime, keeps its logs and
// records its exit code, so the container outlives the CLI that started it. Usage: monitor.js ROOT ID (fd 3: status).
import fs from 'node:fs';
import { openStores } from '../stores.js';
import { ContainerManager, type StartError } from './manager.js';

async function main(): Promise<void> {
  const [root, id] = process.argv.slice(2);
  let status: number | undefined = 3;
  const report = (line: string) => {
    if (status === undefined) return;
    try {
      fs.writeSync(status, `${line}\n`);
      fs.closeSync(status);
    } catch {
      // the CLI went away: nobody to tell
    }
    status = undefined;
  };
  // Detached from the CLI's session: a terminal hang-up must not end the container's supervisor.
  process.on('SIGHUP', () => undefined);
  process.on('SIGINT', () => undefined);
  const stores = openStores(root);
  try {
    const c = stores.containers.get(id!);
    if (!c) throw new Error(`no such container ${id}`);
    await new ContainerManager(stores).supervise(c, 'detached', (err?: StartError) => report(err ? `error ${err.exitCode} ${err.message}` : 'ok'));
  } catch (e) {
    report(`error 125 ${(e as Error).message}`);
  } finally {
    stores.close();
  }
}

void main();
