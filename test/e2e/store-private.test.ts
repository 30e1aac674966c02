// End-to-end: the store is private to its owner (mode 0700 root, 0600 DB files), for new stores and for
// stores made before the rule, so another local user reaches neither setuid binaries nor container settings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startRegistry } from '../../src/registry/server.js';
import { busyboxTar, plyOk, tempDir } from '../helpers.js';

/** Runs `args` as the unprivileged user nobody. */
function asNobody(args: string[]): { code: number; out: string } {
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', ...args]);
  return { code: r.status ?? -1, out: r.stdout.toString() + r.stderr.toString() };
}

const mode = (p: string) => fs.statSync(p).mode & 0o777;

test('the store is private: 0700 root, 0600 DB files; another user reaches no setuid binary and no container env', async () => {
  const base = tempDir();
  fs.chmodSync(base, 0o755); // so only the store's own mode stands between nobody and the store
  const root = path.join(base, 'store');
  plyOk(root, ['import', busyboxTar(), 'bb']);
  plyOk(root, ['run', '--network', 'none', '--name', 'c', '-e', 'SECRET=hunter2', 'bb', 'sh', '-c', 'cp /bin/busybox /suid && chmod 4755 /suid']);
  plyOk(root, ['commit', 'c', 'suid']);
  plyOk(root, ['run', '--network', 'none', '--rm', 'suid', 'true']); // unpacks the layer into snapshots/
  const snapshots = path.join(root, 'snapshots');
  const suid = fs.readdirSync(snapshots).map((d) => path.join(snapshots, d, 'suid')).find((p) => fs.existsSync(p))!;
  const check = () => {
    assert.equal(mode(root), 0o700);
    for (const f of ['ply.db', 'ply.db-wal', 'ply.db-shm']) {
      if (fs.existsSync(path.join(root, f))) assert.equal(mode(path.join(root, f)), 0o600, f);
    }
    assert.equal(fs.statSync(suid).mode & 0o4000, 0o4000, 'the setuid file is there');
    assert.notEqual(asNobody(['ls', root]).code, 0, 'nobody lists the store');
    assert.notEqual(asNobody(['stat', suid]).code, 0, 'nobody reaches the setuid binary');
    assert.notEqual(asNobody(['cat', path.join(root, 'ply.db')]).code, 0, 'nobody reads the DB');
  };
  check();
  // A store from before the rule (root 0711 or 0755, DB 0644) is fixed when ply opens it.
  fs.chmodSync(root, 0o755);
  for (const f of ['ply.db', 'ply.db-wal', 'ply.db-shm']) if (fs.existsSync(path.join(root, f))) fs.chmodSync(path.join(root, f), 0o644);
  assert.equal(asNobody(['stat', suid]).code, 0, 'the opened-up store is reachable');
  const dbFiles = ['ply.db', 'ply.db-wal'].map((f) => path.join(root, f)).filter((f) => fs.existsSync(f));
  assert.match(asNobody(['cat', ...dbFiles]).out, /SECRET=hunter2/, 'the opened-up DB shows the env');
  plyOk(root, ['ps', '-a']);
  check();
  // A registry's store keeps the same rule (its uploads may be private repositories' layers).
  const regRoot = path.join(base, 'registry');
  fs.mkdirSync(regRoot, { mode: 0o755 });
  const reg = await startRegistry({ root: regRoot, addr: '127.0.0.1:0' });
  await reg.close();
  assert.equal(mode(regRoot), 0o700);
  assert.equal(mode(path.join(regRoot, 'registry.db')), 0o600);
});
