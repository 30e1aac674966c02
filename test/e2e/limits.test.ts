// End-to-end: resource limits through bin/ply and runc's cgroups: -m OOM-kills a hog (137, OOMKilled, an oom
// event), --pids-limit caps a fork loop, --cpus/-m/--pids-limit reach the container's cgroups, `update` changes
// them while it runs, and `stats --no-stream` shows a busy container's CPU in docker's columns.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { PLY, busyboxTar, ply, plyOk, tempDir } from '../helpers.js';

let root: string;
before(() => {
  root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'bb']);
});
after(() => {
  ply(root, ['rm', '-f', 'lim-busy', 'lim-upd']);
});

/** A cgroup file as the container sees it (its own cgroup namespace view): v1 path, else v2's. */
function cgroupFile(name: string, v1: string, v2: string): string {
  const r = ply(root, ['exec', name, 'sh', '-c', `cat /sys/fs/cgroup/${v1} 2>/dev/null || cat /sys/fs/cgroup/${v2}`]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

test('-m 16m: the kernel OOM-kills a memory hog: exit 137, OOMKilled=true, an oom event; a normal exit is not', () => {
  const since = (Date.now() / 1000).toFixed(3);
  const r = ply(root, ['run', '--name', 'lim-oom', '--network', 'none', '-m', '16m', 'bb', 'sh', '-c', 'x=a; while :; do x=$x$x; done']);
  assert.equal(r.code, 137, r.stderr);
  assert.equal(plyOk(root, ['inspect', '-f', '{{.State.OOMKilled}} {{.State.ExitCode}} {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}', 'lim-oom']).trim(), 'true 137 16777216 33554432');
  const ev = plyOk(root, ['events', '--since', since, '--until', (Date.now() / 1000 + 1).toFixed(3), '--filter', 'container=lim-oom', '--format', '{{.Action}}']);
  assert.deepEqual(ev.trim().split('\n').filter((a) => a === 'oom' || a === 'die'), ['oom', 'die']);
  // Started again, a run that ends normally clears the flag.
  plyOk(root, ['update', '-m', '64m', '--memory-swap', '128m', 'lim-oom']);
  const again = ply(root, ['start', '-a', 'lim-oom']);
  assert.equal(again.code, 137);
  plyOk(root, ['rm', 'lim-oom']);
  assert.equal(ply(root, ['run', '--rm', '--network', 'none', '-m', '16m', 'bb', 'sh', '-c', 'x=a; x=$x$x; exit 0']).code, 0);
  const ok = plyOk(root, ['run', '--name', 'lim-ok', '--network', 'none', '-m', '16m', 'bb', 'true']);
  assert.equal(ok, '');
  assert.equal(plyOk(root, ['inspect', '-f', '{{.State.OOMKilled}} {{.State.ExitCode}}', 'lim-ok']).trim(), 'false 0');
  plyOk(root, ['rm', 'lim-ok']);
});

test('--pids-limit caps a fork loop; without it the same loop runs to the end', () => {
  const loop = 'for i in $(seq 20); do sleep 60 & echo $i; done; echo all';
  const capped = ply(root, ['run', '--rm', '--network', 'none', '--pids-limit', '6', 'bb', 'sh', '-c', loop]);
  assert.notEqual(capped.code, 0);
  assert.match(capped.stderr, /can't fork/);
  const started = capped.stdout.trim().split('\n').filter(Boolean);
  // The shell is one of the six: at most five sleeps started.
  assert.ok(started.length >= 1 && started.length <= 5, `started ${started.length}`);
  assert.ok(!started.includes('all'));
  const free = ply(root, ['run', '--rm', '--network', 'none', 'bb', 'sh', '-c', loop]);
  assert.equal(free.code, 0, free.stderr);
  assert.equal(free.stdout.trim().split('\n').pop(), 'all');
  // Bad values: docker's messages and exit 125.
  const bad = ply(root, ['run', '--rm', '--pids-limit', 'lots', 'bb', 'true']);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /invalid argument "lots" for "--pids-limit" flag/);
  const small = ply(root, ['run', '--rm', '-m', '1m', 'bb', 'true']);
  assert.equal(small.code, 125);
  assert.match(small.stderr, /Minimum memory limit allowed is 6MB/);
  const cpus = ply(root, ['run', '--rm', '--cpus', '4096', 'bb', 'true']);
  assert.equal(cpus.code, 125);
  assert.match(cpus.stderr, /Range of CPUs is from 0.01 to \d+\.00, as there are only \d+ CPUs available/);
});

test("stats --no-stream shows a busy container's CPU, its memory limit and PIDs in docker's columns; --format", () => {
  plyOk(root, ['run', '-d', '--name', 'lim-busy', '--network', 'none', '--cpus', '0.5', '-m', '64m', 'bb', 'sh', '-c', 'while :; do :; done']);
  const table = plyOk(root, ['stats', '--no-stream', 'lim-busy']).split('\n');
  assert.match(table[0]!, /^CONTAINER ID +NAME +CPU % +MEM USAGE \/ LIMIT +MEM % +NET I\/O +BLOCK I\/O +PIDS$/);
  const cols = table[1]!.split(/ {2,}/);
  assert.equal(cols[1], 'lim-busy');
  assert.match(cols[3]!, /^[\d.]+[KM]iB \/ 64MiB$/);
  assert.equal(cols[7], '1');
  const cpu = Number(/^([\d.]+)%$/.exec(cols[2]!)?.[1]);
  // Half a CPU at most (the CFS quota), and clearly busy (the machine is shared: a generous floor).
  assert.ok(cpu > 5 && cpu <= 60, `CPU ${cols[2]}`);
  const json = JSON.parse(plyOk(root, ['stats', '--no-stream', '--format', 'json', 'lim-busy'])) as Record<string, string>;
  assert.deepEqual(Object.keys(json).sort(), ['BlockIO', 'CPUPerc', 'Container', 'ID', 'MemPerc', 'MemUsage', 'Name', 'NetIO', 'PIDs']);
  assert.equal(json.Container, 'lim-busy');
  // Only running containers without -a; a stopped one shows zeros.
  plyOk(root, ['create', '--name', 'lim-idle', '--network', 'none', 'bb', 'true']);
  const running = plyOk(root, ['stats', '--no-stream', '--format', '{{.Name}}']).trim().split('\n');
  assert.ok(running.includes('lim-busy') && !running.includes('lim-idle'));
  assert.equal(plyOk(root, ['stats', '--no-stream', '--format', '{{.Name}} {{.CPUPerc}} {{.MemUsage}} {{.PIDs}}', 'lim-idle']).trim(), 'lim-idle 0.00% 0B / 0B 0');
  plyOk(root, ['rm', 'lim-idle']);
  const missing = ply(root, ['stats', '--no-stream', 'lim-nothing']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /No such container: lim-nothing/);
  // Streaming: the screen redrawn in place (docker's escapes), each frame with a fresh CPU figure.
  const live = spawnSync(PLY, ['stats', '--format', '{{.Name}} {{.CPUPerc}}', 'lim-busy'], { env: { ...process.env, PLY_ROOT: root }, timeout: 3500, encoding: 'utf8' });
  assert.ok(live.stdout.startsWith('\x1b[2J\x1b[H'), JSON.stringify(live.stdout.slice(0, 40)));
  const frames = live.stdout.split('\x1b[H').slice(1).map((f) => f.replace(/\x1b\[K|\x1b\[J/g, '').trim());
  assert.ok(frames.length >= 3, `${frames.length} frames`);
  assert.ok(frames.every((f) => /^lim-busy \d+\.\d\d%$/.test(f)), frames.join(' | '));
  assert.ok(frames.some((f) => Number(f.split(' ')[1]!.replace('%', '')) > 5), frames.join(' | '));
  plyOk(root, ['rm', '-f', 'lim-busy']);
});

test("update changes a running container's limits at once, and keeps them for its next start", () => {
  plyOk(root, ['run', '-d', '--name', 'lim-upd', '--network', 'none', '-m', '64m', '--cpus', '0.5', 'bb', 'sleep', '300']);
  assert.equal(cgroupFile('lim-upd', 'memory/memory.limit_in_bytes', 'memory.max'), String(64 << 20));
  assert.equal(cgroupFile('lim-upd', 'cpu/cpu.cfs_quota_us', 'cpu.max').split(' ')[0], '50000');
  assert.equal(plyOk(root, ['update', '-m', '32m', '--memory-swap', '64m', '--cpus', '0.25', '--pids-limit', '12', 'lim-upd']), 'lim-upd\n');
  assert.equal(cgroupFile('lim-upd', 'memory/memory.limit_in_bytes', 'memory.max'), String(32 << 20));
  assert.equal(cgroupFile('lim-upd', 'cpu/cpu.cfs_quota_us', 'cpu.max').split(' ')[0], '25000');
  assert.equal(cgroupFile('lim-upd', 'pids/pids.max', 'pids.max'), '12');
  // The new pids limit holds at once: the sleeper, the exec'd shell and ten more. (Not tighter: the limit counts
  // threads, and runc's init, a Go program with several, must get in for the exec.)
  const forks = ply(root, ['exec', 'lim-upd', 'sh', '-c', 'for i in $(seq 20); do sleep 30 >/dev/null 2>&1 & done']);
  assert.match(forks.stderr, /can't fork/);
  assert.match(plyOk(root, ['stats', '--no-stream', '--format', '{{.MemUsage}}', 'lim-upd']), / \/ 32MiB$/m);
  assert.equal(
    plyOk(root, ['inspect', '-f', '{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}', 'lim-upd']).trim(),
    `${32 << 20} ${64 << 20} 250000000 12`,
  );
  // -1 lifts the pids limit.
  plyOk(root, ['update', '--pids-limit', '-1', 'lim-upd']);
  assert.equal(cgroupFile('lim-upd', 'pids/pids.max', 'pids.max'), 'max');
  // Kept for the next start.
  plyOk(root, ['restart', '-t', '0', 'lim-upd']);
  assert.equal(cgroupFile('lim-upd', 'memory/memory.limit_in_bytes', 'memory.max'), String(32 << 20));
  assert.equal(cgroupFile('lim-upd', 'cpu/cpu.cfs_quota_us', 'cpu.max').split(' ')[0], '25000');
  // docker's refusals.
  const none = ply(root, ['update', 'lim-upd']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /you must provide one or more flags when using this command/);
  const low = ply(root, ['update', '-m', '100m', 'lim-upd']);
  assert.notEqual(low.code, 0);
  assert.match(low.stderr, /Memory limit should be smaller than already set memoryswap limit/);
  plyOk(root, ['rm', '-f', 'lim-upd']);
});

test('--cpu-shares, --cpuset-cpus, --memory-reservation, --shm-size and --ulimit reach the container; inspect shows them', () => {
  const out = plyOk(root, [
    'run', '--name', 'lim-misc', '--network', 'none', '-c', '512', '--cpuset-cpus', '0', '-m', '64m', '--memory-reservation', '32m',
    '--shm-size', '8m', '--ulimit', 'nofile=1024:2048', 'bb', 'sh', '-c',
    'cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpuset/cpuset.cpus /sys/fs/cgroup/memory/memory.soft_limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/cpu.weight /sys/fs/cgroup/cpuset.cpus /sys/fs/cgroup/memory.low; df -k /dev/shm | tail -1; ulimit -n; ulimit -Hn',
  ]).trim().split('\n');
  if (out[0] === '512') assert.deepEqual(out.slice(0, 3), ['512', '0', String(32 << 20)]);
  assert.match(out[3]!, /^shm\s+8192\s/);
  assert.deepEqual(out.slice(4), ['1024', '2048']);
  assert.equal(
    plyOk(root, ['inspect', '-f', '{{.HostConfig.CpuShares}} {{.HostConfig.CpusetCpus}} {{.HostConfig.MemoryReservation}} {{.HostConfig.ShmSize}} {{json .HostConfig.Ulimits}}', 'lim-misc']).trim(),
    `512 0 ${32 << 20} ${8 << 20} [{"Name":"nofile","Hard":2048,"Soft":1024}]`,
  );
  plyOk(root, ['rm', 'lim-misc']);
});
