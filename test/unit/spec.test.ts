import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  buildSpec,
  callerBoundingCapabilities,
  callerRlimits,
  capabilityMask,
  DEFAULT_CAPABILITIES,
  DEFAULT_MASKED_PATHS,
  DEFAULT_READONLY_PATHS,
  mergeEnv,
  mergeTmpfsOptions,
  normalizeCapability,
  serializeSpec,
  writeBundle,
  type RuntimeSpec,
  type SpecOptions,
} from '../../src/runtime/spec.js';
import { resolveUser } from '../../src/runtime/user.js';
import { parseSignal, signalName } from '../../src/runtime/signals.js';
import { InvalidArgumentError } from '../../src/errors.js';
import { busyboxTar, tempDir } from '../helpers.js';

function opts(over: Partial<SpecOptions> = {}): SpecOptions {
  return {
    rootfs: '/dev/shm/nonexistent-rootfs',
    args: ['/bin/true'],
    env: [],
    cwd: '/',
    user: { uid: 0, gid: 0, additionalGids: [0] },
    tty: false,
    hostname: 'abc123',
    network: 'none',
    mounts: [],
    ...over,
  };
}

function invalid(fn: () => unknown, message?: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(err)}`);
    if (typeof message === 'string') assert.equal(err.message, message);
    else if (message) assert.match(err.message, message);
    return true;
  });
}

const mountAt = (s: RuntimeSpec, dest: string) => s.mounts.find((m) => m.destination === dest);
const DOCKER_CAPEFF = '00000000a80425fb';

describe('capabilities', () => {
  it('DEFAULT_CAPABILITIES is docker\'s 14, CapEff a80425fb', () => {
    assert.equal(DEFAULT_CAPABILITIES.length, 14);
    assert.equal(capabilityMask(DEFAULT_CAPABILITIES), DOCKER_CAPEFF);
  });

  it('normalizeCapability accepts docker spellings and rejects unknown names', () => {
    assert.equal(normalizeCapability('net_admin'), 'CAP_NET_ADMIN');
    assert.equal(normalizeCapability('NET_ADMIN'), 'CAP_NET_ADMIN');
    assert.equal(normalizeCapability('CAP_NET_ADMIN'), 'CAP_NET_ADMIN');
    assert.equal(normalizeCapability('cap_checkpoint_restore'), 'CAP_CHECKPOINT_RESTORE');
    assert.equal(normalizeCapability('all'), 'ALL');
    invalid(() => normalizeCapability('NET_FOO'), 'unknown capability: "CAP_NET_FOO"');
    invalid(() => normalizeCapability(''), /unknown capability/);
  });

  it('defaults: bounding/effective/permitted = docker defaults, no inheritable/ambient', () => {
    const c = buildSpec(opts()).process.capabilities!;
    assert.deepEqual(c.bounding, DEFAULT_CAPABILITIES);
    assert.deepEqual(c.effective, DEFAULT_CAPABILITIES);
    assert.deepEqual(c.permitted, DEFAULT_CAPABILITIES);
    assert.equal(c.inheritable, undefined);
    assert.equal(c.ambient, undefined);
  });

  it('cap-add / cap-drop in any spelling', () => {
    const c = buildSpec(opts({ capAdd: ['net_admin', 'CAP_SYS_PTRACE', 'chown'], capDrop: ['CAP_MKNOD', 'kill'] })).process.capabilities!;
    assert.ok(c.bounding!.includes('CAP_NET_ADMIN'));
    assert.ok(c.bounding!.includes('CAP_SYS_PTRACE'));
    assert.ok(!c.bounding!.includes('CAP_MKNOD'));
    assert.ok(!c.bounding!.includes('CAP_KILL'));
    assert.equal(c.bounding!.filter((x) => x === 'CAP_CHOWN').length, 1, 'no duplicates');
    assert.deepEqual(c.effective, c.bounding);
  });

  it('--cap-drop ALL keeps only what is added', () => {
    const c = buildSpec(opts({ capDrop: ['ALL'], capAdd: ['NET_BIND_SERVICE'] })).process.capabilities!;
    assert.deepEqual(c.bounding, ['CAP_NET_BIND_SERVICE']);
    assert.deepEqual(buildSpec(opts({ capDrop: ['all'] })).process.capabilities!.bounding, []);
  });

  it('--cap-add ALL gives every capability this process holds, minus drops', () => {
    const c = buildSpec(opts({ capAdd: ['ALL'], capDrop: ['SYS_ADMIN'] })).process.capabilities!;
    assert.deepEqual(c.bounding, callerBoundingCapabilities().filter((x) => x !== 'CAP_SYS_ADMIN'));
  });

  it('unknown capabilities are rejected', () => {
    invalid(() => buildSpec(opts({ capAdd: ['BOGUS'] })), 'unknown capability: "CAP_BOGUS"');
    invalid(() => buildSpec(opts({ capDrop: ['CAP_BOGUS'] })), /unknown capability/);
  });

  it('a capability outside our own bounding set cannot be added (runc would fail)', (t) => {
    const missing = ['CAP_SYS_RESOURCE', 'CAP_SYS_ADMIN', 'CAP_BPF'].find((c) => !callerBoundingCapabilities().includes(c));
    if (!missing) return t.skip('this process holds all tested capabilities');
    invalid(() => buildSpec(opts({ capAdd: [missing] })), /not in ply's own capability bounding set/);
  });
});

describe('buildSpec', () => {
  it('docker-like defaults', () => {
    const s = buildSpec(opts({ args: ['sh', '-c', 'echo hi'], cwd: '/work', cgroupsPath: 'ply/abc', annotations: { a: 'b' } }));
    assert.equal(s.ociVersion, '1.0.2-dev');
    assert.deepEqual(s.process.args, ['sh', '-c', 'echo hi']);
    assert.equal(s.process.cwd, '/work');
    assert.equal(s.process.terminal, false);
    assert.equal(s.process.noNewPrivileges, true);
    assert.equal(s.process.oomScoreAdj, 0);
    assert.deepEqual(s.process.user, { uid: 0, gid: 0, additionalGids: [0] });
    assert.deepEqual(s.root, { path: '/dev/shm/nonexistent-rootfs', readonly: false });
    assert.equal(s.hostname, 'abc123');
    assert.deepEqual(s.linux.namespaces.map((n) => n.type).sort(), ['ipc', 'mount', 'network', 'pid', 'uts']);
    assert.deepEqual(s.linux.maskedPaths, [...DEFAULT_MASKED_PATHS]);
    assert.ok(s.linux.maskedPaths!.includes('/proc/kcore'));
    assert.ok(s.linux.maskedPaths!.includes('/sys/firmware'));
    assert.deepEqual(s.linux.readonlyPaths, [...DEFAULT_READONLY_PATHS]);
    assert.equal(s.linux.cgroupsPath, 'ply/abc');
    assert.deepEqual(s.annotations, { a: 'b' });
    assert.deepEqual(s.linux.devices, []);
    const rules = s.linux.resources!.devices!;
    assert.deepEqual(rules[0], { allow: false, access: 'rwm' });
    assert.ok(rules.some((r) => r.allow && r.type === 'c' && r.major === 1 && r.minor === 3));
    assert.ok(rules.some((r) => !r.allow && r.major === 10 && r.minor === 229), 'fuse denied');
    assert.deepEqual(
      s.mounts.map((m) => m.destination),
      ['/proc', '/dev', '/dev/pts', '/sys', '/sys/fs/cgroup', '/dev/mqueue', '/dev/shm'],
    );
    assert.ok(mountAt(s, '/sys')!.options!.includes('ro'));
    assert.ok(mountAt(s, '/dev/shm')!.options!.includes(`size=${64 << 20}`));
    assert.ok(mountAt(s, '/dev/pts')!.options!.includes('newinstance'));
  });

  it('shmSize', () => {
    assert.ok(mountAt(buildSpec(opts({ shmSize: 1 << 20 })), '/dev/shm')!.options!.includes('size=1048576'));
    invalid(() => buildSpec(opts({ shmSize: 0 })));
  });

  it('rejects empty args and relative paths', () => {
    invalid(() => buildSpec(opts({ args: [] })));
    invalid(() => buildSpec(opts({ rootfs: 'relative' })));
    invalid(() => buildSpec(opts({ cwd: 'relative' })));
  });

  it('--network host: no network namespace, still a UTS namespace with the given hostname', () => {
    const s = buildSpec(opts({ network: 'host', hostname: 'myhost' }));
    assert.ok(!s.linux.namespaces.some((n) => n.type === 'network'));
    assert.ok(s.linux.namespaces.some((n) => n.type === 'uts'));
    assert.equal(s.hostname, 'myhost');
    assert.equal(s.linux.sysctl, undefined);
    assert.ok(buildSpec(opts()).linux.namespaces.some((n) => n.type === 'network'));
  });

  it('environment: PATH and HOSTNAME defaults, TERM with a tty, image/-e values win', () => {
    assert.deepEqual(buildSpec(opts({ env: ['A=1'] })).process.env, [
      'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      'HOSTNAME=abc123',
      'A=1',
    ]);
    const tty = buildSpec(opts({ tty: true, env: ['PATH=/bin', 'B=2'] }));
    assert.equal(tty.process.terminal, true);
    assert.deepEqual(tty.process.env, ['PATH=/bin', 'HOSTNAME=abc123', 'TERM=xterm', 'B=2']);
    assert.ok(!buildSpec(opts()).process.env!.some((e) => e.startsWith('TERM=')));
    assert.deepEqual(buildSpec(opts({ tty: true, env: ['TERM=vt100', 'HOSTNAME=x'] })).process.env!.slice(1), ['HOSTNAME=x', 'TERM=vt100']);
  });

  it('mergeEnv follows docker ReplaceOrAppendEnvValues', () => {
    assert.deepEqual(mergeEnv(['A=1', 'B=2'], ['B=3', 'C=4', 'A', 'C=5']), ['B=3', 'C=5']);
  });

  it('privileged: all held caps, no masks, all devices, rw /sys, no-new-privileges off', () => {
    const s = buildSpec(opts({ privileged: true, capDrop: ['CHOWN'] }));
    assert.deepEqual(s.process.capabilities!.bounding, callerBoundingCapabilities());
    assert.equal(s.linux.maskedPaths, undefined);
    assert.equal(s.linux.readonlyPaths, undefined);
    assert.deepEqual(s.linux.resources!.devices, [{ allow: true, access: 'rwm' }]);
    assert.ok(s.linux.devices!.some((d) => d.path === '/dev/null' && d.type === 'c' && d.major === 1 && d.minor === 3));
    assert.ok(!s.linux.devices!.some((d) => d.path.startsWith('/dev/pts/') || d.path === '/dev/console'));
    assert.ok(!mountAt(s, '/sys')!.options!.includes('ro'));
    assert.ok(!mountAt(s, '/sys/fs/cgroup')!.options!.includes('ro'));
    assert.equal(s.process.noNewPrivileges, false);
    assert.equal(buildSpec(opts({ privileged: true, noNewPrivileges: true })).process.noNewPrivileges, true);
    assert.equal(buildSpec(opts({ noNewPrivileges: false })).process.noNewPrivileges, false);
  });

  it('rlimits default to nofile min(1048576, our hard) and never exceed our hard limits', () => {
    const caller = callerRlimits();
    assert.ok(caller.nofile.hard > 0 && caller.nofile.soft <= caller.nofile.hard);
    const s = buildSpec(opts());
    const nofile = s.process.rlimits!.find((r) => r.type === 'RLIMIT_NOFILE')!;
    assert.equal(nofile.hard, Math.min(1048576, caller.nofile.hard));
    assert.equal(nofile.soft, nofile.hard);
    const big = buildSpec(
      opts({
        rlimits: [
          { type: 'nofile', soft: 2_000_000, hard: 2_000_000 },
          { type: 'RLIMIT_NPROC', soft: -1, hard: -1 },
          { type: 'core', soft: 0, hard: 0 },
          { type: 'memlock', soft: Infinity, hard: Infinity },
        ],
      }),
    );
    for (const r of [...s.process.rlimits!, ...big.process.rlimits!]) {
      const name = r.type.replace('RLIMIT_', '').toLowerCase() as keyof typeof caller;
      assert.ok(r.hard <= caller[name].hard, `${r.type} hard ${r.hard} > ${caller[name].hard}`);
      assert.ok(r.soft <= r.hard, `${r.type} soft above hard`);
    }
    assert.deepEqual(big.process.rlimits!.find((r) => r.type === 'RLIMIT_CORE'), { type: 'RLIMIT_CORE', soft: 0, hard: 0 });
    invalid(() => buildSpec(opts({ rlimits: [{ type: 'nofile', soft: 10, hard: 5 }] })), /soft limit/);
    invalid(() => buildSpec(opts({ rlimits: [{ type: 'bogus', soft: 1, hard: 1 }] })), 'invalid ulimit type: bogus');
  });

  it('serializeSpec writes an unlimited rlimit as RLIM_INFINITY', () => {
    const s = buildSpec(opts());
    s.process.rlimits = [{ type: 'RLIMIT_CORE', soft: Infinity, hard: Infinity }];
    const json = serializeSpec(s);
    assert.match(json, /"hard": 18446744073709551615/);
    assert.match(json, /"soft": 18446744073709551615/);
  });

  it('user mounts: bind (rbind, rprivate, ro), tmpfs with docker defaults, sorted parents first', () => {
    const s = buildSpec(
      opts({
        mounts: [
          { type: 'bind', source: '/srv/a/b', target: '/data/sub/' },
          { type: 'volume', source: '/var/lib/ply/volumes/v/_data', target: '/data', readonly: true },
          { type: 'tmpfs', target: '/scratch', options: ['size=64m', 'mode=1777', 'exec'] },
          { type: 'tmpfs', target: '/ro-tmp', readonly: true },
        ],
        etcFiles: { hosts: '/run/ply/x/hosts', resolvConf: '/run/ply/x/resolv.conf', hostname: '/run/ply/x/hostname' },
      }),
    );
    const user = s.mounts.slice(7);
    assert.deepEqual(
      user.map((m) => m.destination),
      ['/data', '/scratch', '/ro-tmp', '/data/sub', '/etc/resolv.conf', '/etc/hostname', '/etc/hosts'],
    );
    assert.deepEqual(mountAt(s, '/data'), { destination: '/data', type: 'bind', source: '/var/lib/ply/volumes/v/_data', options: ['rbind', 'ro', 'rprivate'] });
    assert.deepEqual(mountAt(s, '/data/sub')!.options, ['rbind', 'rprivate']);
    assert.deepEqual(mountAt(s, '/scratch'), {
      destination: '/scratch',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'nodev', 'rprivate', 'size=64m', 'mode=1777', 'exec'],
    });
    assert.deepEqual(mountAt(s, '/ro-tmp')!.options, ['noexec', 'nosuid', 'nodev', 'rprivate', 'ro']);
    assert.deepEqual(mountAt(s, '/etc/hosts'), { destination: '/etc/hosts', type: 'bind', source: '/run/ply/x/hosts', options: ['rbind', 'rprivate'] });
  });

  it('a user mount replaces the default or /etc mount at the same path; /dev replaces everything under it', () => {
    const s = buildSpec(
      opts({
        mounts: [
          { type: 'tmpfs', target: '/dev/shm', options: ['size=1g'] },
          { type: 'bind', source: '/tmp/myhosts', target: '/etc/hosts' },
        ],
        etcFiles: { hosts: '/run/ply/x/hosts' },
      }),
    );
    assert.equal(s.mounts.filter((m) => m.destination === '/dev/shm').length, 1);
    assert.equal(mountAt(s, '/dev/shm')!.source, 'tmpfs');
    assert.equal(mountAt(s, '/etc/hosts')!.source, '/tmp/myhosts');
    const dev = buildSpec(opts({ mounts: [{ type: 'bind', source: '/dev', target: '/dev' }] }));
    assert.deepEqual(
      dev.mounts.map((m) => m.destination),
      ['/proc', '/sys', '/sys/fs/cgroup', '/dev'],
    );
  });

  it('rejects bad mounts', () => {
    invalid(() => buildSpec(opts({ mounts: [{ type: 'bind', source: 'rel', target: '/x' }] })));
    invalid(() => buildSpec(opts({ mounts: [{ type: 'bind', source: '/a', target: 'x' }] })));
    invalid(() => buildSpec(opts({ mounts: [{ type: 'bind', source: '/a', target: '/' }] })));
    invalid(() => buildSpec(opts({ mounts: [{ type: 'tmpfs', target: '/x', options: ['bogus=1'] }] })), 'invalid tmpfs option "bogus=1"');
    invalid(
      () =>
        buildSpec(
          opts({
            mounts: [
              { type: 'tmpfs', target: '/x' },
              { type: 'tmpfs', target: '/x/' },
            ],
          }),
        ),
      'Duplicate mount point: /x',
    );
  });

  it('mergeTmpfsOptions: later options override earlier ones', () => {
    assert.deepEqual(mergeTmpfsOptions(['noexec', 'nosuid', 'size=1m', 'exec', 'size=2m', 'ro', 'rw']), ['nosuid', 'exec', 'size=2m', 'rw']);
  });

  it('read-only rootfs: root readonly, /sys & /etc files ro, /dev & /proc left alone', () => {
    const s = buildSpec(opts({ readonlyRootfs: true, etcFiles: { hosts: '/run/h' }, mounts: [{ type: 'bind', source: '/a', target: '/a' }] }));
    assert.equal(s.root.readonly, true);
    assert.ok(mountAt(s, '/sys/fs/cgroup')!.options!.includes('ro'));
    assert.ok(mountAt(s, '/etc/hosts')!.options!.includes('ro'));
    assert.ok(!mountAt(s, '/a')!.options!.includes('ro'));
    assert.ok(!mountAt(s, '/dev/shm')!.options!.includes('ro'));
    assert.ok(!mountAt(s, '/proc')!.options!.includes('ro'));
  });

  it('writeBundle writes config.json', () => {
    const dir = path.join(tempDir('ply-spec-'), 'bundle');
    const s = buildSpec(opts());
    writeBundle(dir, s);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')), JSON.parse(JSON.stringify(s)));
  });
});

describe('signals', () => {
  it('parseSignal', () => {
    assert.equal(parseSignal('SIGTERM'), 15);
    assert.equal(parseSignal('TERM'), 15);
    assert.equal(parseSignal('sigkill'), 9);
    assert.equal(parseSignal('15'), 15);
    assert.equal(parseSignal('SIGIOT'), 6);
    assert.equal(parseSignal('CLD'), 17);
    assert.equal(parseSignal('SIGRTMIN'), 34);
    assert.equal(parseSignal('RTMIN+3'), 37);
    assert.equal(parseSignal('sigrtmax-2'), 62);
    assert.equal(parseSignal('SIGRTMAX'), 64);
    assert.equal(parseSignal('64'), 64);
    for (const bad of ['0', '65', 'FOO', 'SIG', '', '-9', 'RTMIN+31', 'RTMAX+1', 'RTMIN-1', '1.5']) {
      invalid(() => parseSignal(bad), `Invalid signal: ${bad}`);
    }
  });

  it('signalName', () => {
    assert.equal(signalName(15), 'SIGTERM');
    assert.equal(signalName(9), 'SIGKILL');
    assert.equal(signalName(34), 'SIGRTMIN');
    assert.equal(signalName(35), 'SIGRTMIN+1');
    assert.equal(signalName(49), 'SIGRTMIN+15');
    assert.equal(signalName(50), 'SIGRTMAX-14');
    assert.equal(signalName(64), 'SIGRTMAX');
    for (let n = 1; n <= 64; n++) if (n !== 32 && n !== 33) assert.equal(parseSignal(signalName(n)), n);
    invalid(() => signalName(0));
    invalid(() => signalName(65));
  });
});

// ---------------------------------------------------------------------------------------------------------
// End to end: real containers under runc.

const runcAvailable = process.getuid?.() === 0 && spawnSync('runc', ['--version']).status === 0;

describe('runc end to end', { skip: runcAvailable ? false : 'needs root and runc' }, () => {
  let rootfs = '';
  let stateRoot = '';
  let work = '';

  before(() => {
    work = tempDir('ply-runc-');
    rootfs = path.join(work, 'rootfs');
    stateRoot = path.join(work, 'state');
    fs.mkdirSync(rootfs);
    execFileSync('tar', ['-xf', busyboxTar(), '-C', rootfs]);
    // The fixture tar's './' entry is 0700 (mktemp -d), which would keep non-root users from traversing '/'.
    fs.chmodSync(rootfs, 0o755);
  });

  interface Run {
    code: number | null;
    stdout: string;
    stderr: string;
    lines: string[];
  }

  let n = 0;
  function run(over: Partial<SpecOptions>): Run {
    const id = `ply-spec-test-${process.pid}-${++n}-${crypto.randomBytes(3).toString('hex')}`;
    const bundle = path.join(work, `bundle-${n}`);
    writeBundle(bundle, buildSpec(opts({ rootfs, hostname: 'testhost', ...over })));
    try {
      const r = spawnSync('runc', ['--root', stateRoot, 'run', '--bundle', bundle, id], {
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 60_000,
        encoding: 'utf8',
      });
      if (r.error) throw r.error;
      return { code: r.status, stdout: r.stdout, stderr: r.stderr, lines: r.stdout.split('\n').filter(Boolean) };
    } finally {
      spawnSync('runc', ['--root', stateRoot, 'delete', '-f', id], { stdio: 'ignore' });
    }
  }
  const sh = (script: string) => ['/bin/sh', '-c', script];

  it('runs a container with docker defaults', () => {
    const r = run({
      args: sh('echo $HOSTNAME; id -u; cat /proc/1/status | grep ^NoNewPrivs; ls /proc/kcore 2>&1; grep CapEff /proc/self/status; exit 7'),
    });
    assert.equal(r.code, 7, r.stderr);
    assert.equal(r.lines[0], 'testhost');
    assert.equal(r.lines[1], '0');
    assert.match(r.lines[2]!, /^NoNewPrivs:\s+1$/);
    // Masked (/dev/null bound over it) when the host kernel has it; this test VM's kernel has no /proc/kcore.
    assert.equal(r.lines[3], fs.existsSync('/proc/kcore') ? '/proc/kcore' : 'ls: /proc/kcore: No such file or directory');
    assert.equal(r.lines[4], `CapEff:\t${DOCKER_CAPEFF}`);
  });

  // A masked file and a masked directory that exist on this host (masking skips missing paths).
  const maskedFile = ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/proc/interrupts'].find((p) => fs.existsSync(p)) ?? '/proc/keys';
  const maskedDir = ['/sys/firmware', '/proc/acpi', '/proc/scsi'].find((p) => fs.existsSync(p) && fs.readdirSync(p).length > 0) ?? '/sys/firmware';

  it('masks and read-only /proc paths, lo-only network, hostname, rlimits, cgroup mount', () => {
    const r = run({
      args: sh(
        [
          `wc -c < ${maskedFile}`,
          `stat -c %t:%T ${maskedFile}`,
          `ls -A ${maskedDir} | wc -l`,
          'echo 1 > /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable || echo sysrq-ro',
          'ls /sys/class/net',
          'hostname',
          'ulimit -n',
          'ls /sys/fs/cgroup >/dev/null && echo cgroup-ok',
          'echo 1 > /sys/kernel/uevent_helper 2>/dev/null && echo sys-writable || echo sys-ro',
          'grep " /dev/shm " /proc/mounts',
        ].join('; '),
      ),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.lines[0], '0');
    assert.equal(r.lines[1], '1:3');
    assert.equal(r.lines[2], '0');
    assert.equal(r.lines[3], 'sysrq-ro');
    assert.equal(r.lines[4], 'lo');
    assert.equal(r.lines[5], 'testhost');
    assert.equal(r.lines[6], String(Math.min(1048576, callerRlimits().nofile.hard)));
    assert.equal(r.lines[7], 'cgroup-ok');
    assert.equal(r.lines[8], 'sys-ro');
    assert.match(r.lines[9]!, /size=65536k/);
  });

  it('--network host sees the host interfaces but keeps its own hostname', () => {
    const r = run({ network: 'host', args: sh('ls /sys/class/net; echo --; hostname') });
    assert.equal(r.code, 0, r.stderr);
    const sep = r.lines.indexOf('--');
    assert.deepEqual(r.lines.slice(0, sep).sort(), fs.readdirSync('/sys/class/net').sort());
    assert.equal(r.lines[sep + 1], 'testhost');
  });

  it('read-only rootfs: writes fail except on /dev/shm', () => {
    const r = run({ readonlyRootfs: true, args: sh('touch /newfile 2>&1; echo rc=$?; touch /dev/shm/ok && echo shm-ok') });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Read-only file system/);
    assert.match(r.stdout, /rc=1/);
    assert.match(r.stdout, /shm-ok/);
    assert.ok(!fs.existsSync(path.join(rootfs, 'newfile')));
  });

  it('bind mounts: read-only and read-write', () => {
    const host = tempDir('ply-bind-');
    fs.writeFileSync(path.join(host, 'hello.txt'), 'hello from the host\n');
    const rw = tempDir('ply-bindrw-');
    const r = run({
      mounts: [
        { type: 'bind', source: host, target: '/data', readonly: true },
        { type: 'volume', source: rw, target: '/rw' },
      ],
      args: sh('cat /data/hello.txt; touch /data/new 2>&1; echo rc=$?; echo written > /rw/out.txt'),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.lines[0], 'hello from the host');
    assert.match(r.stdout, /Read-only file system/);
    assert.match(r.stdout, /rc=1/);
    assert.ok(!fs.existsSync(path.join(host, 'new')));
    assert.equal(fs.readFileSync(path.join(rw, 'out.txt'), 'utf8'), 'written\n');
  });

  it('tmpfs mounts: docker default flags, options applied, contents gone afterwards', () => {
    const r = run({
      mounts: [{ type: 'tmpfs', target: '/scratch', options: ['size=1m', 'mode=1777'] }],
      args: sh('grep " /scratch " /proc/mounts; echo hi > /scratch/f && cat /scratch/f; cp /bin/busybox /scratch/bb; /scratch/bb true 2>&1; echo exec-rc=$?'),
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.lines[0]!, /^tmpfs \/scratch tmpfs rw,nosuid,nodev,noexec,relatime,size=1024k /);
    assert.equal(r.lines[1], 'hi');
    assert.match(r.stdout, /exec-rc=126/);
    assert.ok(!fs.existsSync(path.join(rootfs, 'scratch', 'f')));
  });

  it('runs as 1000:1000 (resolved with resolveUser), HOME from the container passwd', () => {
    const user = resolveUser(rootfs, 'app');
    assert.deepEqual(user, { uid: 1000, gid: 1000, additionalGids: [1000], home: '/home/app' });
    const r = run({ user, args: sh('id -u; id -g; id; echo $HOME; grep CapEff /proc/self/status; touch /etc/x 2>&1; echo rc=$?') });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.lines[0], '1000');
    assert.equal(r.lines[1], '1000');
    assert.match(r.lines[2]!, /^uid=1000(\(app\))? gid=1000(\(app\))? groups=1000(\(app\))?$/); // static busybox may not map names
    assert.equal(r.lines[3], '/home/app');
    assert.equal(r.lines[4], 'CapEff:\t0000000000000000'); // exec as non-root clears effective caps
    assert.match(r.stdout, /Permission denied/);
  });

  it('numeric user without a passwd entry', () => {
    const r = run({ user: resolveUser(rootfs, '4242:4343'), args: sh('id') });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.lines[0], 'uid=4242 gid=4343 groups=4343');
  });

  it('tty env and cwd', () => {
    const r = run({ env: ['FOO=bar'], cwd: '/etc', args: sh('pwd; echo $FOO; echo $PATH') });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.lines, ['/etc', 'bar', '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
  });

  it('cap-add / cap-drop take effect', () => {
    const r = run({ capAdd: ['NET_ADMIN'], capDrop: ['CHOWN'], args: sh('grep CapEff /proc/self/status; chown 1000 /tmp 2>&1; echo rc=$?') });
    assert.equal(r.code, 0, r.stderr);
    const want = capabilityMask([...DEFAULT_CAPABILITIES.filter((c) => c !== 'CAP_CHOWN'), 'CAP_NET_ADMIN']);
    assert.equal(r.lines[0], `CapEff:\t${want}`);
    assert.match(r.stdout, /Operation not permitted/);
  });

  it('privileged: every capability we hold, host devices, nothing masked', () => {
    const r = run({ privileged: true, args: sh(`grep CapEff /proc/self/status; grep ^NoNewPrivs /proc/self/status; test -c ${maskedFile} && echo masked || echo unmasked; ls -A ${maskedDir} | wc -l; test -c /dev/loop-control && echo has-dev`) });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.lines[0], `CapEff:\t${capabilityMask(callerBoundingCapabilities())}`);
    assert.match(r.lines[1]!, /^NoNewPrivs:\s+0$/);
    assert.equal(r.lines[2], 'unmasked');
    assert.notEqual(r.lines[3], '0');
    assert.equal(r.lines[4], fs.existsSync('/dev/loop-control') ? 'has-dev' : undefined);
  });
});
