// Unit: the supervisor's decisions as dockerd makes them (restart policies and back-off, health state changes) and
// docker's resource checks and their OCI form.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRestartPolicy, restartsAtBoot, RestartManager } from '../../src/supervisor/restart.js';
import { applyProbe, mergeHealthcheck, nextInterval, probeCommand, type HealthState } from '../../src/supervisor/health.js';
import { normalizeResources, parseCpuList, specResources } from '../../src/runtime/cgroups.js';
import { ramInBytes } from '../../src/util/units.js';

test("restart policies: docker's parsing, on-failure's count, the back-off doubling and its reset", () => {
  assert.deepEqual(parseRestartPolicy('on-failure:3'), { Name: 'on-failure', MaximumRetryCount: 3 });
  assert.deepEqual(parseRestartPolicy('always'), { Name: 'always', MaximumRetryCount: 0 });
  assert.throws(() => parseRestartPolicy('sometimes'), /invalid restart policy 'sometimes'/);
  assert.throws(() => parseRestartPolicy('always:2'), /maximum retry count cannot be used with restart policy 'always'/);
  assert.throws(() => parseRestartPolicy('on-failure:x'), /maximum retry count must be an integer/);
  const m = new RestartManager({ Name: 'on-failure', MaximumRetryCount: 2 });
  assert.deepEqual(m.shouldRestart(1, 0, false, 50), { restart: true, delayMs: 100 });
  assert.deepEqual(m.shouldRestart(1, 1, false, 50), { restart: true, delayMs: 200 });
  assert.equal(m.shouldRestart(1, 2, false, 50).restart, false, 'two restarts at most');
  assert.equal(new RestartManager({ Name: 'on-failure', MaximumRetryCount: 0 }).shouldRestart(0, 0, false, 50).restart, false, 'exit 0 is no failure');
  const a = new RestartManager({ Name: 'always', MaximumRetryCount: 0 });
  const delays = Array.from({ length: 12 }, () => a.shouldRestart(0, 0, false, 10).delayMs);
  assert.deepEqual(delays.slice(0, 4), [100, 200, 400, 800]);
  assert.equal(delays.at(-1), 60_000, 'capped at a minute');
  assert.equal(a.shouldRestart(0, 0, false, 10_000).delayMs, 100, 'a run of 10 s resets the back-off');
  assert.equal(a.shouldRestart(0, 0, true, 10).restart, false, 'a stopped container stays down');
  assert.equal(restartsAtBoot({ Name: 'unless-stopped', MaximumRetryCount: 0 }, true, true), false);
  assert.equal(restartsAtBoot({ Name: 'unless-stopped', MaximumRetryCount: 0 }, false, false), true);
  assert.equal(restartsAtBoot({ Name: 'on-failure', MaximumRetryCount: 0 }, false, false), false);
});

test('health: flags over the image, probe commands, starting → healthy → unhealthy, the start period', () => {
  const image = { Test: ['CMD-SHELL', 'true'], Interval: 30e9, Retries: 5 };
  assert.deepEqual(mergeHealthcheck(image, { Interval: 1e9 }, false), { Test: ['CMD-SHELL', 'true'], Interval: 1e9, Retries: 5 });
  assert.deepEqual(mergeHealthcheck(image, undefined, true), { Test: ['NONE'] });
  assert.deepEqual(probeCommand({ Test: ['CMD-SHELL', 'curl -f x'] }), ['/bin/sh', '-c', 'curl -f x']);
  assert.deepEqual(probeCommand({ Test: ['CMD', 'true'] }), ['true']);
  assert.equal(probeCommand({ Test: ['NONE'] }), undefined);
  const h = { Test: ['CMD', 'x'], Retries: 2, StartPeriod: 5e9 };
  const t0 = 1_000_000;
  const at = (ms: number, exitCode: number) => ({ start: new Date(t0 + ms), end: new Date(t0 + ms + 1), exitCode, output: `${exitCode}` });
  let s: HealthState = { Status: 'starting', FailingStreak: 0, Log: [] };
  s = applyProbe(h, s, at(1000, 1), t0);
  assert.deepEqual([s.Status, s.FailingStreak], ['starting', 0], 'inside the start period a failure does not count');
  s = applyProbe(h, s, at(6000, 1), t0);
  assert.deepEqual([s.Status, s.FailingStreak], ['starting', 1]);
  s = applyProbe(h, s, at(7000, 0), t0);
  assert.deepEqual([s.Status, s.FailingStreak], ['healthy', 0]);
  s = applyProbe(h, s, at(8000, 1), t0);
  assert.equal(s.Status, 'healthy');
  for (let i = 0; i < 4; i++) s = applyProbe(h, s, at(9000 + i, 1), t0);
  assert.deepEqual([s.Status, s.FailingStreak, s.Log.length], ['unhealthy', 5, 5], 'the last five results');
  assert.equal(nextInterval({ StartInterval: 1e9, StartPeriod: 5e9 }, 'starting', t0, t0 + 100), 1000);
  assert.equal(nextInterval({ StartInterval: 1e9, StartPeriod: 5e9 }, 'starting', t0, t0 + 6000), 30_000);
});

test("resources: docker's checks and defaults, and the OCI linux.resources they become", () => {
  assert.equal(ramInBytes('16m'), 16 << 20);
  assert.equal(ramInBytes('1.5g'), 1.5 * 2 ** 30);
  assert.equal(ramInBytes('512'), 512);
  assert.throws(() => ramInBytes('lots'), /invalid size: 'lots'/);
  assert.deepEqual([...parseCpuList('0-2,5')], [0, 1, 2, 5]);
  const { resources } = normalizeResources({ Memory: 64 << 20 });
  assert.equal(resources.MemorySwap, 128 << 20, 'swap defaults to twice the memory');
  assert.throws(() => normalizeResources({ Memory: 1 << 20 }), /Minimum memory limit allowed is 6MB/);
  assert.throws(() => normalizeResources({ MemorySwap: 64 << 20 }), /You should always set the Memory limit when using Memoryswap limit/);
  assert.throws(() => normalizeResources({ Memory: 64 << 20, MemorySwap: 32 << 20 }), /Minimum memoryswap limit should be larger than memory limit/);
  assert.throws(() => normalizeResources({ NanoCpus: 1e9, CpuQuota: 50000 }), /Conflicting options: Nano CPUs and CPU Period cannot both be set/);
  assert.throws(() => normalizeResources({ CpusetCpus: '0-4096' }), /Requested CPUs are not available - requested 0-4096, available: /);
  assert.deepEqual(normalizeResources({ OomKillDisable: true }).warnings, ["WARNING: Disabling the OOM killer on containers without setting a '-m/--memory' limit may be dangerous."]);
  assert.deepEqual(specResources({ Memory: 64 << 20, MemorySwap: 128 << 20, NanoCpus: 1.5e9, CpuShares: 512, CpusetCpus: '0', PidsLimit: 20 }), {
    memory: { limit: 64 << 20, swap: 128 << 20 },
    cpu: { shares: 512, period: 100_000, quota: 150_000, cpus: '0' },
    pids: { limit: 20 },
  });
});
