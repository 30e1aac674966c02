// A record read before its monitor recorded the exit must not turn that exit into "supervisor died" (255):
// `ply wait` after `ply stop` reported 255 for a container that exited 0 when the reads interleaved so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ContainerManager } from '../../src/container/manager.js';
import { openStores } from '../../src/stores.js';
import { busyboxTar, plyOk, tempDir } from '../helpers.js';

test('refresh of a stale running record keeps the exit the monitor recorded', () => {
  const root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'bb']);
  const id = plyOk(root, ['create', '--network', 'none', 'bb', 'true']).trim();
  const stores = openStores(root);
  try {
    const dead = spawnSync('true').pid!; // a monitor pid that is gone
    stores.containers.update(id, { state: 'running', pid: dead, monitorPid: dead, startedAt: Date.now() });
    const stale = stores.containers.get(id)!;
    // Meanwhile the monitor records the container's own exit and ends.
    stores.containers.update(id, { state: 'exited', pid: 0, monitorPid: 0, exitCode: 0, finishedAt: Date.now() });
    const now = new ContainerManager(stores).refresh(stale);
    assert.equal(now.state, 'exited');
    assert.equal(now.exitCode, 0);
    assert.equal(stores.containers.get(id)!.exitCode, 0);
    // A supervisor that really died without recording anything still reads as 255.
    stores.containers.update(id, { state: 'running', pid: dead, monitorPid: dead, exitCode: 0 });
    assert.equal(new ContainerManager(stores).refresh(stores.containers.get(id)!).exitCode, 255);
  } finally {
    stores.close();
  }
});
