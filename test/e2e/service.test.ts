// End-to-end: `ply system service` and the native client in bin/ply: commands handed to warm workers behave as
// direct ones (stdio, exit codes, environment, working directory, umask, signals, terminals), run exactly once,
// and everything still works when the service is busy, stopped or absent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PLY, busyboxTar, ply, plyAsync, plyOk, tempDir, tmuxSession } from '../helpers.js';

let root: string;
let service: ChildProcess;
let serviceLog = '';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts a service for `store` and waits until a command is served by it. */
async function startService(store: string, args: string[] = []): Promise<ChildProcess> {
  const child = spawn(PLY, ['system', 'service', ...args], { env: { ...process.env, PLY_ROOT: store }, stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.on('data', (d: Buffer) => (serviceLog += d));
  for (let i = 0; i < 200; i++) {
    if (fs.existsSync(path.join(store, 'service.sock')) && served(store)) return child;
    await sleep(50);
  }
  child.kill();
  throw new Error(`service did not serve a command: ${serviceLog}`);
}

/** Clients wait this long for a warm worker (instead of 40 ms), so that tests are served even on a busy machine. */
const WAIT = { PLY_SERVICE_WAIT_MS: '5000' };

/** Whether a command run now is served by a warm worker (`ply info` says so). */
function served(store: string, env: Record<string, string> = {}): boolean {
  return ply(store, ['info', '--format', '{{.ServedByService}}'], { env: { ...WAIT, ...env } }).stdout.trim() === 'true';
}

/** A command is served by the service (a worker is free or becomes free soon). */
async function servedSoon(store: string): Promise<void> {
  assert.equal(served(store), true, `no command was served by the service: ${serviceLog}`);
}

function stopService(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

before(async () => {
  root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'bb']);
  service = await startService(root);
});

after(async () => {
  await stopService(service);
});

test('the socket is only for its owner; info says whether the service served the command', async () => {
  const st = fs.statSync(path.join(root, 'service.sock'));
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(st.uid, process.getuid!());
  await servedSoon(root);
  assert.equal(served(root, { PLY_SERVICE: '0' }), false);
  assert.match(plyOk(root, ['info']), /Service: running \(.*service\.sock\)/);
});

test('stdout, stderr, stdin and exit codes pass through as for a direct command', async () => {
  await servedSoon(root);
  const r = ply(root, ['run', '--rm', '-i', 'bb', 'sh', '-c', 'cat; echo to-err >&2; exit 3'], { input: 'from stdin\n', env: WAIT });
  assert.equal(r.code, 3);
  assert.equal(r.stdout, 'from stdin\n');
  assert.equal(r.stderr, 'to-err\n');
  await servedSoon(root);
  assert.equal(ply(root, ['run', '--rm', 'bb', 'no-such-command'], { env: WAIT }).code, 127);
  await servedSoon(root);
  const bad = ply(root, ['nosuch'], { env: WAIT });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^ply: unknown command: ply nosuch\n/);
});

test("the command gets the client's environment, working directory, umask and resource limits", async () => {
  const work = tempDir();
  await servedSoon(root);
  // A relative PLY_ROOT resolves against the client's directory: the same store, reached through the same service.
  const r = spawnSync('sh', ['-c', `umask 027; export PLY_SERVICE_WAIT_MS=5000; cd ${work} && PLY_ROOT=${path.relative(work, root)} FOO=from-client ${PLY} run --rm -e FOO bb sh -c 'echo $FOO' && PLY_ROOT=${path.relative(work, root)} ${PLY} save -o rel.tar bb`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'from-client\n');
  const st = fs.statSync(path.join(work, 'rel.tar'));
  assert.equal(st.mode & 0o777, 0o640);
  // Resource limits too: a container never gets more than its caller's hard limits.
  await servedSoon(root);
  const lim = spawnSync('sh', ['-c', `ulimit -Sn 1000 && ulimit -Hn 4000 && PLY_ROOT=${root} PLY_SERVICE_WAIT_MS=5000 ${PLY} run --rm bb sh -c 'ulimit -Hn'`], { encoding: 'utf8' });
  assert.equal(lim.status, 0, lim.stderr);
  assert.equal(lim.stdout, '4000\n');
});

test('a signal to the client reaches the container, and its exit code comes back', async () => {
  await servedSoon(root);
  const child = spawn(PLY, ['run', '--rm', 'bb', 'sh', '-c', 'trap "echo got-INT; exit 7" INT; echo ready; while :; do sleep 0.1; done'], {
    env: { ...process.env, PLY_ROOT: root, ...WAIT },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d));
  for (let i = 0; i < 100 && !stdout.includes('ready'); i++) await sleep(50);
  assert.match(stdout, /ready/);
  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  assert.equal(code, 7);
  assert.match(stdout, /got-INT/);
});

test('-it under tmux through the service: a real terminal, Ctrl-C and window size changes reach the container', async () => {
  await servedSoon(root);
  const t = tmuxSession(`ply-svc-tty-${process.pid}`, `env PLY_ROOT=${root} PLY_SERVICE_WAIT_MS=5000 ${PLY} run --rm -it bb sh; echo EXITED=$?; sleep 30`);
  try {
    await t.waitFor(/^\/ #/m);
    t.send('stty size; tty', 'Enter');
    await t.waitFor(/^30 100$/m);
    await t.waitFor(/^\/dev\/pts\/\d+$/m);
    t.send('sleep 100', 'Enter');
    await sleep(300);
    t.send('C-c');
    t.send('echo after-interrupt', 'Enter');
    await t.waitFor(/^after-interrupt$/m);
    t.resize(77, 21);
    await sleep(200);
    t.send('stty size', 'Enter');
    await t.waitFor(/^21 77$/m);
    t.send('exit 5', 'Enter');
    await t.waitFor(/EXITED=5/);
  } finally {
    t.close();
  }
});

test('a client that gives up waiting runs the command itself, and it runs exactly once', async () => {
  await servedSoon(root);
  // A zero wait makes the client give up before any worker can answer; the worker that accepts the abandoned
  // connection must drop it (a second run would fail: the name is taken).
  for (let i = 0; i < 5; i++) {
    const r = ply(root, ['create', '--name', `once-${i}`, 'bb', 'true'], { env: { PLY_SERVICE_WAIT_MS: '0' } });
    assert.equal(r.code, 0, r.stderr);
  }
  await sleep(300);
  const names = plyOk(root, ['ps', '-a', '--format', '{{.Names}}']).split('\n').filter((n) => n.startsWith('once-'));
  assert.deepEqual(names.sort(), ['once-0', 'once-1', 'once-2', 'once-3', 'once-4']);
  // The workers that dropped those connections still serve.
  await servedSoon(root);
  plyOk(root, ['rm', 'once-0', 'once-1', 'once-2', 'once-3', 'once-4']);
});

test('more commands at once than warm workers: all complete correctly', async () => {
  await servedSoon(root);
  const runs = await Promise.all(Array.from({ length: 6 }, (_, i) => plyAsync(root, ['run', '--rm', 'bb', 'sh', '-c', `echo n=${i}; exit ${i}`])));
  runs.forEach((r, i) => {
    assert.equal(r.code, i, r.stderr);
    assert.equal(r.stdout, `n=${i}\n`);
  });
});

test('one service per store; after it stops, commands run directly; an idle timeout stops it', async () => {
  const store = tempDir();
  plyOk(store, ['import', busyboxTar(), 'bb']);
  const svc = await startService(store);
  const second = ply(store, ['system', 'service'], { env: { PLY_SERVICE: '0' } });
  assert.equal(second.code, 1);
  assert.match(second.stderr, /already running/);
  await stopService(svc);
  assert.equal(fs.existsSync(path.join(store, 'service.sock')), false);
  assert.equal(plyOk(store, ['run', '--rm', 'bb', 'echo', 'direct']), 'direct\n');
  assert.equal(served(store), false);

  // A stale socket (service killed) is no obstacle to commands or to a new service.
  const killed = await startService(store, ['--time', '1']);
  const exited = new Promise<number | null>((resolve) => killed.on('exit', (c) => resolve(c)));
  assert.equal(await exited, 0, 'the idle timeout stops the service');
  const hard = await startService(store);
  hard.kill('SIGKILL');
  await new Promise((r) => hard.once('exit', r));
  assert.equal(plyOk(store, ['run', '--rm', 'bb', 'echo', 'stale']), 'stale\n');
  const again = await startService(store);
  await stopService(again);
});

test('workers of a killed service go away, even one that was starting when it died', async () => {
  const store = tempDir();
  plyOk(store, ['import', busyboxTar(), 'bb']);
  for (let round = 0; round < 3; round++) {
    const svc = await startService(store, ['--workers', '3']);
    // A command was just served: a replacement worker is starting as the service dies.
    svc.kill('SIGKILL');
    await new Promise((r) => svc.once('exit', r));
  }
  const workersOf = () =>
    fs.readdirSync('/proc').filter((p) => {
      if (!/^\d+$/.test(p)) return false;
      try {
        const env = fs.readFileSync(`/proc/${p}/environ`, 'utf8');
        return env.includes(`PLY_ROOT=${store}\0`) && env.includes('PLY_SERVICE_WORKER=');
      } catch {
        return false;
      }
    });
  for (let i = 0; i < 60 && workersOf().length > 0; i++) await sleep(100);
  assert.deepEqual(workersOf(), [], 'orphaned workers are still running');
});
