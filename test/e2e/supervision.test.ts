// End-to-end: supervision through bin/ply: restart policies (on-failure:N restarts exactly N times, always until
// `stop`/`kill`, RestartCount, docker's events) and health checks (starting → healthy → unhealthy in inspect, ps
// and events; --filter health=; the image's HEALTHCHECK; --no-healthcheck); the docker CLI through the Engine API
// (limits, OOM, update, stats, restart policies, health); containers coming back when the service starts again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { busyboxTar, ply, plyOk, tempDir } from '../helpers.js';
import { dockerOk, docker, request, startPlyApi } from '../api-peer.js';

let root: string;
before(() => {
  root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'bb']);
});
after(() => {
  ply(root, ['rm', '-f', 'sv-fail', 'sv-always', 'sv-kill', 'sv-health', 'sv-img']);
});

const inspect = (name: string, format: string) => plyOk(root, ['inspect', '-f', format, name]).trim();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const actions = (name: string, since: string) =>
  plyOk(root, ['events', '--since', since, '--until', (Date.now() / 1000 + 1).toFixed(3), '--filter', `container=${name}`, '--format', '{{.Action}}']).trim().split('\n');

test('--restart on-failure:2 restarts a failing container exactly twice, with docker events and RestartCount', async () => {
  const since = (Date.now() / 1000).toFixed(3);
  plyOk(root, ['run', '-d', '--name', 'sv-fail', '--network', 'none', '--restart', 'on-failure:2', 'bb', 'sh', '-c', 'echo ran; exit 3']);
  await until('the retries to end', () => inspect('sv-fail', '{{.State.Status}} {{.RestartCount}}') === 'exited 2');
  // Waited past another back-off: still two.
  await sleep(1500);
  assert.equal(inspect('sv-fail', '{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}'), 'exited 2 3 on-failure 2');
  assert.equal(plyOk(root, ['logs', 'sv-fail']), 'ran\nran\nran\n');
  assert.deepEqual(actions('sv-fail', since).filter((a) => a === 'start' || a === 'die'), ['start', 'die', 'start', 'die', 'start', 'die']);
  // A clean exit is no failure: no restart.
  plyOk(root, ['rm', 'sv-fail']);
  plyOk(root, ['run', '--name', 'sv-fail', '--network', 'none', '--restart', 'on-failure', 'bb', 'true']);
  await sleep(800);
  assert.equal(inspect('sv-fail', '{{.State.Status}} {{.RestartCount}}'), 'exited 0');
  plyOk(root, ['rm', 'sv-fail']);
  // Attached, the CLI returns the first exit code; the policy's restarts go on behind it.
  const r = ply(root, ['run', '--name', 'sv-fail', '--network', 'none', '--restart', 'on-failure:1', 'bb', 'sh', '-c', 'echo ran; exit 4']);
  assert.equal(r.code, 4);
  await until('the restart', () => inspect('sv-fail', '{{.State.Status}} {{.RestartCount}}') === 'exited 1');
  assert.equal(plyOk(root, ['logs', 'sv-fail']), 'ran\nran\n');
  // docker's refusals.
  const bad = ply(root, ['run', '--rm', '--restart', 'always', 'bb', 'true']);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /conflicting options: cannot specify both --restart and --rm/);
  const count = ply(root, ['run', '--restart', 'always:3', 'bb', 'true']);
  assert.equal(count.code, 125);
  assert.match(count.stderr, /maximum retry count cannot be used with restart policy 'always'/);
});

test('--restart always restarts after every exit until stop; kill ends the loop too', async () => {
  plyOk(root, ['run', '-d', '--name', 'sv-always', '--network', 'none', '--restart', 'always', 'bb', 'sh', '-c', 'sleep 0.2; exit 0']);
  await until('two restarts', () => Number(inspect('sv-always', '{{.RestartCount}}')) >= 2);
  plyOk(root, ['stop', '-t', '1', 'sv-always']);
  const stopped = inspect('sv-always', '{{.State.Status}} {{.RestartCount}}');
  assert.match(stopped, /^exited \d+$/);
  await sleep(2000);
  assert.equal(inspect('sv-always', '{{.State.Status}} {{.RestartCount}}'), stopped);
  assert.equal(plyOk(root, ['ps', '-q', '--filter', 'name=sv-always']), '');
  // A start asked for by the user runs it under its policy again.
  plyOk(root, ['start', 'sv-always']);
  await until('a restart after start', () => Number(inspect('sv-always', '{{.RestartCount}}')) >= 1);
  plyOk(root, ['stop', '-t', '1', 'sv-always']);
  // kill: the same end of the loop.
  plyOk(root, ['run', '-d', '--name', 'sv-kill', '--network', 'none', '--restart', 'always', 'bb', 'sleep', '300']);
  plyOk(root, ['kill', 'sv-kill']);
  await sleep(1500);
  assert.equal(inspect('sv-kill', '{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}'), 'exited 0 137');
  // update changes the policy of an existing container.
  plyOk(root, ['update', '--restart', 'on-failure:1', 'sv-kill']);
  assert.equal(inspect('sv-kill', '{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}'), 'on-failure:1');
});

test('a health check goes starting → healthy → unhealthy: inspect, ps, --filter health= and health_status events', async () => {
  const since = (Date.now() / 1000).toFixed(3);
  plyOk(root, [
    'run', '-d', '--name', 'sv-health', '--network', 'none',
    '--health-cmd', 'cat /tmp/ok', '--health-interval', '300ms', '--health-retries', '2', '--health-start-period', '10s',
    'bb', 'sh', '-c', 'sleep 300',
  ]);
  assert.equal(inspect('sv-health', '{{.State.Health.Status}}'), 'starting');
  assert.match(plyOk(root, ['ps', '--filter', 'name=sv-health', '--format', '{{.Status}}']), /^Up .* \(health: starting\)$/m);
  // Failures inside the start period do not count.
  await sleep(1200);
  assert.equal(inspect('sv-health', '{{.State.Health.Status}} {{.State.Health.FailingStreak}}'), 'starting 0');
  plyOk(root, ['exec', 'sv-health', 'sh', '-c', 'echo fine > /tmp/ok']);
  await until('healthy', () => inspect('sv-health', '{{.State.Health.Status}}') === 'healthy');
  assert.match(plyOk(root, ['ps', '--format', '{{.Names}} {{.Status}}', '--filter', 'health=healthy']), /^sv-health Up .* \(healthy\)$/m);
  const log = JSON.parse(inspect('sv-health', '{{json .State.Health.Log}}')) as { ExitCode: number; Output: string; Start: string; End: string }[];
  assert.ok(log.length >= 1 && log.length <= 5);
  assert.deepEqual({ ExitCode: log.at(-1)!.ExitCode, Output: log.at(-1)!.Output }, { ExitCode: 0, Output: 'fine\n' });
  // Two failures in a row (retries=2) after it was healthy: unhealthy.
  plyOk(root, ['exec', 'sv-health', 'rm', '/tmp/ok']);
  await until('unhealthy', () => inspect('sv-health', '{{.State.Health.Status}}') === 'unhealthy');
  assert.ok(Number(inspect('sv-health', '{{.State.Health.FailingStreak}}')) >= 2);
  assert.match(plyOk(root, ['ps', '--format', '{{.Status}}', '--filter', 'name=sv-health']), /\(unhealthy\)$/m);
  assert.equal(plyOk(root, ['ps', '-q', '--filter', 'health=healthy', '--filter', 'name=sv-health']), '');
  assert.match(plyOk(root, ['ps', '--format', '{{.Names}}', '--filter', 'health=unhealthy']), /^sv-health$/m);
  await sleep(2500);
  const logAfter = JSON.parse(inspect('sv-health', '{{json .State.Health.Log}}')) as unknown[];
  assert.equal(logAfter.length, 5);
  const acts = actions('sv-health', since);
  assert.deepEqual(acts.filter((a) => a.startsWith('health_status')), ['health_status: healthy', 'health_status: unhealthy']);
  // Each probe is an exec, with docker's exec events.
  const probe = acts.indexOf('exec_create: /bin/sh -c cat /tmp/ok');
  assert.deepEqual(acts.slice(probe, probe + 3), ['exec_create: /bin/sh -c cat /tmp/ok', 'exec_start: /bin/sh -c cat /tmp/ok', 'exec_die']);
  const bad = ply(root, ['ps', '--filter', 'health=fine']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /Unrecognised filter value for health: fine/);
  plyOk(root, ['rm', '-f', 'sv-health']);
});

test("the image's HEALTHCHECK runs; a timeout counts as a failure; --no-healthcheck turns it off", async () => {
  plyOk(root, ['run', '--name', 'sv-base', '--network', 'none', 'bb', 'true']);
  plyOk(root, ['commit', '-c', 'HEALTHCHECK --interval=300ms --timeout=200ms --retries=1 CMD ["sleep", "5"]', 'sv-base', 'bb-health']);
  plyOk(root, ['rm', 'sv-base']);
  plyOk(root, ['run', '-d', '--name', 'sv-img', '--network', 'none', 'bb-health', 'sleep', '300']);
  assert.deepEqual(JSON.parse(inspect('sv-img', '{{json .Config.Healthcheck.Test}}')), ['CMD', 'sleep', '5']);
  await until('unhealthy by timeout', () => inspect('sv-img', '{{.State.Health.Status}}') === 'unhealthy');
  const last = (JSON.parse(inspect('sv-img', '{{json .State.Health.Log}}')) as { ExitCode: number; Output: string; Start: string; End: string }[]).at(-1)!;
  assert.deepEqual(last, { ...last, ExitCode: -1, Output: 'Health check exceeded timeout (200ms)' });
  // The probe was killed at its timeout, not waited for (it would sleep 5 s).
  assert.ok(Date.parse(last.End) - Date.parse(last.Start) < 2500, `${last.Start} → ${last.End}`);
  // Killed probes leave nothing behind: at most the one in flight runs (left over, a dozen would by now).
  const procs = plyOk(root, ['top', 'sv-img']).trim().split('\n').slice(1);
  assert.ok(procs.filter((p) => / sleep 5$/.test(p)).length <= 1, procs.join('\n'));
  plyOk(root, ['rm', '-f', 'sv-img']);
  plyOk(root, ['run', '-d', '--name', 'sv-img', '--network', 'none', '--no-healthcheck', 'bb-health', 'sleep', '300']);
  await sleep(700);
  assert.equal(inspect('sv-img', '{{if .State.Health}}has{{else}}none{{end}}'), 'none');
  assert.match(plyOk(root, ['ps', '--format', '{{.Names}}', '--filter', 'health=none']), /^sv-img$/m);
  plyOk(root, ['rm', '-f', 'sv-img']);
});

test('the docker CLI through the Engine API: -m OOM kill, --restart, --health-*, update, stats; the service brings policy containers back', async () => {
  const api = await startPlyApi();
  try {
    const oom = docker(api, ['run', '--name', 'api-oom', '--network', 'none', '-m', '16m', 'bb', 'sh', '-c', 'x=a; while :; do x=$x$x; done']);
    assert.equal(oom.code, 137);
    assert.equal(dockerOk(api, ['inspect', '-f', '{{.State.OOMKilled}} {{.HostConfig.Memory}}', 'api-oom']).trim(), 'true 16777216');
    dockerOk(api, ['run', '-d', '--name', 'api-fail', '--network', 'none', '--restart', 'on-failure:2', 'bb', 'sh', '-c', 'exit 5']);
    dockerOk(api, ['run', '-d', '--name', 'api-busy', '--network', 'none', '--cpus', '0.3', '-m', '48m', '--pids-limit', '20', '--health-cmd', 'true', '--health-interval', '300ms', 'bb', 'sh', '-c', 'while :; do :; done']);
    const deadline = Date.now() + 20_000;
    while (dockerOk(api, ['inspect', '-f', '{{.State.Status}} {{.RestartCount}}', 'api-fail']).trim() !== 'exited 2') {
      assert.ok(Date.now() < deadline, 'on-failure:2 through the API');
      await sleep(200);
    }
    assert.deepEqual(dockerOk(api, ['inspect', '-f', '{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}} {{.HostConfig.NanoCpus}}', 'api-busy', 'api-fail']).trim().split('\n'), ['no 0 300000000', 'on-failure 2 0']);
    assert.equal(dockerOk(api, ['inspect', '-f', '{{.HostConfig.PidsLimit}}', 'api-busy']).trim(), '20');
    while (!/\(healthy\)$/.test(dockerOk(api, ['ps', '--filter', 'name=api-busy', '--format', '{{.Status}}']).trim())) {
      assert.ok(Date.now() < deadline + 10_000, 'healthy through the API');
      await sleep(200);
    }
    const stats = dockerOk(api, ['stats', '--no-stream', '--format', '{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}', 'api-busy']).trim().split(' ');
    assert.equal(stats[0], 'api-busy');
    assert.ok(Number(stats[1]!.replace('%', '')) > 3, `CPU ${stats[1]}`);
    // PIDS: the shell, and health probes that may be running.
    assert.match(stats.slice(3).join(' '), /^\/ 48MiB [1-9]\d*$/);
    assert.equal(dockerOk(api, ['update', '-m', '32m', '--memory-swap', '64m', '--cpus', '0.2', 'api-busy']), 'api-busy\n');
    assert.match(dockerOk(api, ['stats', '--no-stream', '--format', '{{.MemUsage}}', 'api-busy']), / \/ 32MiB$/m);
    assert.equal(dockerOk(api, ['inspect', '-f', '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}', 'api-busy']).trim(), `${32 << 20} 200000000`);
    // A streaming stats request: JSON objects, each with the one before as precpu.
    const frames = await request(api, 'GET', '/containers/api-busy/stats?stream=false');
    const one = JSON.parse(frames.body) as { cpu_stats: { cpu_usage: { total_usage: number } }; precpu_stats: { cpu_usage: { total_usage: number } }; memory_stats: { limit: number } };
    assert.ok(one.cpu_stats.cpu_usage.total_usage > one.precpu_stats.cpu_usage.total_usage && one.precpu_stats.cpu_usage.total_usage > 0);
    assert.equal(one.memory_stats.limit, 32 << 20);
    dockerOk(api, ['rm', '-f', 'api-busy', 'api-oom', 'api-fail']);
    // A host restart: the container and its supervisor are gone; the service, started again, brings back the
    // `always` and `unless-stopped` containers, not one the user stopped.
    dockerOk(api, ['run', '-d', '--name', 'api-always', '--network', 'none', '--restart', 'always', 'bb', 'sleep', '300']);
    dockerOk(api, ['run', '-d', '--name', 'api-unless', '--network', 'none', '--restart', 'unless-stopped', 'bb', 'sleep', '300']);
    dockerOk(api, ['run', '-d', '--name', 'api-stopped', '--network', 'none', '--restart', 'unless-stopped', 'bb', 'sleep', '300']);
    dockerOk(api, ['stop', '-t', '0', 'api-stopped']);
    await api.stop();
    for (const n of ['api-always', 'api-unless']) {
      const [id, pid] = plyOk(api.root, ['inspect', '-f', '{{.Id}} {{.State.Pid}}', n]).trim().split(' ');
      // The container's process is runc's child, runc its monitor's (a spare's command line does not name it).
      const monitor = ppid(ppid(Number(pid)));
      assert.match(fs.readFileSync(`/proc/${monitor}/cmdline`, 'utf8'), /monitor\.c?js/);
      process.kill(monitor, 'SIGKILL');
      spawnSync('runc', ['--root', `${api.root}/runtime/runc`, 'kill', id, 'KILL']);
    }
    await sleep(500);
    const again = await startPlyApi({ root: api.root });
    try {
      assert.match(again.log(), /started 2 containers by their restart policy/);
      assert.deepEqual(dockerOk(again, ['ps', '--format', '{{.Names}}']).trim().split('\n').sort(), ['api-always', 'api-unless']);
      dockerOk(again, ['rm', '-f', 'api-always', 'api-unless', 'api-stopped']);
    } finally {
      await again.stop();
    }
  } finally {
    await api.stop();
  }
});

function ppid(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}
