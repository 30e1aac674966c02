// End-to-end: containers under the real runc with an overlayfs writable layer, through bin/ply.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { PLY, busyboxTar, ply, plyOk, tempDir, tmuxSession } from '../helpers.js';

let root: string;
before(() => {
  root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'bb']);
});

const mounts = () => fs.readFileSync('/proc/self/mountinfo', 'utf8');

test('echo, exit codes as docker: the command, 127 not found, 126 not executable', () => {
  assert.equal(plyOk(root, ['run', '--rm', 'bb', 'echo', 'hello', 'world']), 'hello world\n');
  assert.equal(ply(root, ['run', '--rm', 'bb', 'sh', '-c', 'exit 3']).code, 3);
  const notFound = ply(root, ['run', '--rm', 'bb', 'no-such-command']);
  assert.equal(notFound.code, 127);
  assert.match(notFound.stderr, /executable file not found/);
  assert.equal(notFound.stderr.trim().split('\n').length, 1, notFound.stderr);
  assert.equal(ply(root, ['run', '--rm', 'bb', '/etc/motd']).code, 126);
  // docker: run exits 125 when the image cannot be found or pulled.
  assert.equal(ply(root, ['run', '--rm', 'no-such-image', 'true']).code, 125);
  // Flags after the image belong to the command.
  assert.match(plyOk(root, ['run', '--rm', 'bb', 'ls', '-la', '/etc/motd']), /^-rw-r--r--\s+1 root\s+root\s+26 .* \/etc\/motd\n$/);
});

test('pid 1 in its own namespace; -e, --env-file, -w, -u, --hostname', () => {
  const dir = tempDir();
  fs.writeFileSync(path.join(dir, 'env'), '# comment\nFROM_FILE=yes\n');
  const outp = plyOk(root, [
    'run', '--rm', '-e', 'A=1', '--env', 'B=two words', '--env-file', path.join(dir, 'env'), '-w', '/tmp/work',
    '-u', 'app', '--hostname', 'myhost', '--network', 'none', 'bb', 'sh', '-c',
    'echo pid=$$; echo A=$A B=$B F=$FROM_FILE; pwd; id -u; id -g; hostname; echo HOME=$HOME',
  ]);
  assert.equal(outp, 'pid=1\nA=1 B=two words F=yes\n/tmp/work\n1000\n1000\nmyhost\nHOME=/home/app\n');
  assert.equal(plyOk(root, ['run', '--rm', '-u', '65534:1', 'bb', 'id']).trim(), 'uid=65534(nobody) gid=1(daemon) groups=1(daemon)');
  const badUser = ply(root, ['run', '--rm', '-u', 'nosuchuser', 'bb', 'true']);
  assert.notEqual(badUser.code, 0);
  assert.match(badUser.stderr, /nosuchuser/);
});

test('-it gives a real terminal (under script)', () => {
  const r = spawnSync('script', ['-qec', `${PLY} run --rm -it bb sh -c 'tty; stty size; echo done'`, '/dev/null'], {
    env: { ...process.env, PLY_ROOT: root },
    encoding: 'utf8',
    input: '',
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\/dev\/pts\/\d+/);
  // The container's terminal makes the \r\n; ply's raw terminal passes it as it is (docker's: "done\r\n").
  assert.match(r.stdout, /^done\r\n$/m);
  assert.doesNotMatch(r.stdout, /\r\r\n/);
});

test('-d, exec, logs -f, stop, start, rm -f; the container outlives the CLI', async () => {
  const id = plyOk(root, ['run', '-d', '--name', 'ticker', 'bb', 'sh', '-c', 'echo started; trap "echo bye; exit 0" TERM; while true; do sleep 0.1; done']).trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  assert.match(plyOk(root, ['ps']), /ticker/);
  assert.equal(plyOk(root, ['exec', 'ticker', 'sh', '-c', 'echo from exec; exit 0']), 'from exec\n');
  assert.equal(ply(root, ['exec', 'ticker', 'sh', '-c', 'exit 5']).code, 5);
  assert.equal(plyOk(root, ['exec', '-e', 'X=42', '-w', '/etc', 'ticker', 'sh', '-c', 'echo $X $(pwd)']), '42 /etc\n');
  const inspect = JSON.parse(plyOk(root, ['inspect', 'ticker']))[0];
  assert.equal(inspect.State.Status, 'running');
  assert.ok(inspect.State.Pid > 0);
  assert.equal(plyOk(root, ['stop', '-t', '5', 'ticker']), 'ticker\n');
  assert.equal(plyOk(root, ['logs', 'ticker']), 'started\nbye\n');
  assert.equal(plyOk(root, ['wait', 'ticker']), '0\n');
  assert.match(plyOk(root, ['ps', '-a', '--filter', 'name=ticker']), /Exited \(0\)/);
  assert.equal(plyOk(root, ['start', 'ticker']), 'ticker\n');
  assert.match(plyOk(root, ['ps', '--format', '{{.Names}} {{.State}}']), /ticker running/);
  const follow = ply(root, ['logs', '--tail', '1', 'ticker']);
  assert.equal(follow.stdout, 'started\n');
  const rm = ply(root, ['rm', 'ticker']);
  assert.notEqual(rm.code, 0, 'a running container is not removed without -f');
  assert.equal(plyOk(root, ['rm', '-f', 'ticker']), 'ticker\n');
  assert.equal(ply(root, ['inspect', 'ticker']).code, 1);
  assert.ok(!mounts().includes(id), 'no mounts left after rm');
  assert.ok(!fs.existsSync(path.join(root, 'containers', id)));
});

test('logs -f follows a detached container to its end', () => {
  const id = plyOk(root, ['run', '-d', 'bb', 'sh', '-c', 'for i in 1 2 3; do echo line $i; sleep 0.2; done; echo oops >&2; exit 4']).trim();
  const r = ply(root, ['logs', '-f', id]);
  assert.equal(r.stdout, 'line 1\nline 2\nline 3\n');
  assert.equal(r.stderr, 'oops\n');
  assert.equal(plyOk(root, ['wait', id]), '4\n');
  assert.match(plyOk(root, ['logs', '-t', id]), /^\d{4}-\d\d-\d\dT[\d:.]+Z line 1\n/);
  plyOk(root, ['rm', id]);
});

test('two containers from one image do not see each other; the image is unchanged; diff shows A/C/D', () => {
  plyOk(root, ['create', '--name', 'c1', 'bb', 'sh', '-c', 'echo one > /etc/motd; echo new > /added; rm /bin/vi; mkdir -p /var/data; touch /var/data/x']);
  plyOk(root, ['start', '-a', 'c1']);
  plyOk(root, ['run', '--name', 'c2', 'bb', 'sh', '-c', 'echo two > /etc/motd']);
  assert.equal(plyOk(root, ['run', '--rm', 'bb', 'cat', '/etc/motd']), 'hello from the base image\n');
  assert.equal(plyOk(root, ['run', '--rm', 'bb', 'sh', '-c', 'ls /bin/vi; ls /added 2>&1 || true']).split('\n')[0], '/bin/vi');
  assert.equal(plyOk(root, ['diff', 'c1']), ['A /added', 'C /bin', 'D /bin/vi', 'C /etc', 'C /etc/motd', 'C /var', 'A /var/data', 'A /var/data/x', ''].join('\n'));
  assert.equal(plyOk(root, ['diff', 'c2']), 'C /etc\nC /etc/motd\n');
  // cp out of a stopped container, and into it.
  const dir = tempDir();
  plyOk(root, ['cp', 'c1:/etc/motd', path.join(dir, 'motd')]);
  assert.equal(fs.readFileSync(path.join(dir, 'motd'), 'utf8'), 'one\n');
  fs.writeFileSync(path.join(dir, 'in.txt'), 'copied in\n');
  plyOk(root, ['cp', path.join(dir, 'in.txt'), 'c2:/root/in.txt']);
  assert.match(plyOk(root, ['diff', 'c2']), /A \/root\/in.txt/);
  plyOk(root, ['rm', 'c1', 'c2']);
  assert.ok(!mounts().includes(`${root}/containers`), 'no container mounts left');
});

test('rmi of an image a container uses is refused without -f; with -f it is untagged and kept', () => {
  plyOk(root, ['import', '-c', 'LABEL only=me', busyboxTar(), 'inuse:1']);
  const id = plyOk(root, ['create', 'inuse:1', 'true']).trim();
  const r = ply(root, ['rmi', 'inuse:1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /container .* is using its referenced image/);
  assert.equal(plyOk(root, ['rmi', '-f', 'inuse:1']), 'Untagged: inuse:1\n');
  assert.equal(plyOk(root, ['start', '-a', id]), '');
  plyOk(root, ['rm', id]);
  assert.match(plyOk(root, ['image', 'prune', '-f']), /deleted: sha256:/);
});

test('mounts: bind (ro), named volume kept across containers, tmpfs, read-only rootfs', () => {
  const host = tempDir();
  fs.writeFileSync(path.join(host, 'f'), 'from host\n');
  assert.equal(plyOk(root, ['run', '--rm', '-v', `${host}:/data:ro`, 'bb', 'cat', '/data/f']), 'from host\n');
  assert.notEqual(ply(root, ['run', '--rm', '-v', `${host}:/data:ro`, 'bb', 'touch', '/data/g']).code, 0);
  plyOk(root, ['run', '--rm', '-v', 'myvol:/vol', 'bb', 'sh', '-c', 'echo kept > /vol/x']);
  assert.equal(plyOk(root, ['run', '--rm', '--mount', 'type=volume,source=myvol,target=/v2', 'bb', 'cat', '/v2/x']), 'kept\n');
  assert.match(plyOk(root, ['run', '--rm', '--tmpfs', '/scratch', 'bb', 'sh', '-c', 'grep " /scratch " /proc/mounts']), /^tmpfs \/scratch tmpfs/);
  const ro = ply(root, ['run', '--rm', '--read-only', 'bb', 'touch', '/x']);
  assert.notEqual(ro.code, 0);
  assert.match(ro.stderr, /Read-only file system/);
});

test('volume create -o: the local driver mounts tmpfs (size, uid) or a bind while containers use it, one mount shared, unmounted after the last; docker\'s refusals', async () => {
  // docker 20.10: Options {"device":"tmpfs","o":"size=1m,uid=1000","type":"tmpfs"}; inside: "tmpfs /data tmpfs rw,relatime,size=1024k,uid=1000 0 0".
  assert.equal(plyOk(root, ['volume', 'create', '--opt', 'type=tmpfs', '--opt', 'device=tmpfs', '--opt', 'o=size=1m,uid=1000', 'tv']), 'tv\n');
  assert.equal(plyOk(root, ['volume', 'inspect', '-f', '{{json .Options}}', 'tv']), '{"device":"tmpfs","o":"size=1m,uid=1000","type":"tmpfs"}\n');
  const data = path.join(root, 'volumes', 'tv', '_data');
  const seen = plyOk(root, ['run', '--rm', '--network', 'none', '-v', 'tv:/data', 'bb', 'sh', '-c', 'grep " /data " /proc/mounts; df -k /data | tail -1; stat -c %u /data']);
  assert.match(seen, /^tmpfs \/data tmpfs rw,relatime,size=1024k,uid=1000 0 0\ntmpfs +1024 +0 +1024 +0% \/data\n1000\n$/);
  assert.ok(!mounts().includes(` ${data} `), 'unmounted when its only user stopped');
  // Two containers at once share one mount: what one writes, the other reads; it goes when the last one stops.
  const a = plyOk(root, ['run', '-d', '--network', 'none', '-v', 'tv:/data', 'bb', 'sh', '-c', 'echo from-a > /data/x; sleep 60']).trim();
  assert.equal(plyOk(root, ['run', '--rm', '--network', 'none', '-v', 'tv:/data', 'bb', 'sh', '-c', 'for i in $(seq 50); do [ -f /data/x ] && break; sleep 0.1; done; cat /data/x']), 'from-a\n');
  assert.ok(mounts().includes(` ${data} `), 'still mounted while the first container runs');
  plyOk(root, ['rm', '-f', a]);
  assert.ok(!mounts().includes(` ${data} `), 'unmounted after the last user');
  assert.equal(plyOk(root, ['run', '--rm', '--network', 'none', '-v', 'tv:/data', 'bb', 'ls', '-A', '/data']), '', 'a fresh tmpfs');
  // type=none o=bind: a host directory's files.
  const host = tempDir();
  fs.writeFileSync(path.join(host, 'f'), 'from host\n');
  plyOk(root, ['volume', 'create', '-o', 'type=none', '-o', 'o=bind', '-o', `device=${host}`, 'bv']);
  assert.equal(plyOk(root, ['run', '--rm', '--network', 'none', '-v', 'bv:/data', 'bb', 'sh', '-c', 'cat /data/f; echo back > /data/g']), 'from host\n');
  assert.equal(fs.readFileSync(path.join(host, 'g'), 'utf8'), 'back\n');
  plyOk(root, ['volume', 'rm', 'bv']);
  assert.deepEqual(fs.readdirSync(host).sort(), ['f', 'g'], 'removing the volume leaves the host directory alone');
  // docker's refusals: at create, and the mount's failure at start.
  for (const [opts, msg] of [
    [['foo=bar'], 'invalid option: "foo"'],
    [['type=tmpfs'], 'missing required option: "device"'],
    [['device=tmpfs'], 'missing required option: "type"'],
    [['o=size=1m'], 'missing required option: "device"'],
    [['size=1m'], 'quota size requested but no quota support'],
  ] as const) {
    const r = ply(root, ['volume', 'create', ...opts.flatMap((o) => ['--opt', o]), 'bad']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `Error: create bad: ${msg}\n`);
  }
  plyOk(root, ['volume', 'create', '-o', 'type=none', '-o', 'o=bind', '-o', 'device=/no-such-dir', 'nv']);
  const nv = ply(root, ['run', '--rm', '--network', 'none', '-v', 'nv:/data', 'bb', 'true']);
  assert.equal(nv.code, 127, 'docker\'s CLI: a failed start saying "no such file or directory" exits 127');
  const nvData = path.join(root, 'volumes', 'nv', '_data');
  assert.equal(nv.stderr, `Error: error while mounting volume '${nvData}': failed to mount local volume: mount /no-such-dir:${nvData}, flags: 0x1000: no such file or directory\n`);
  // A mount a killed supervisor left: system check reports it, --repair unmounts it.
  assert.equal(spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', data]).status, 0);
  const check = ply(root, ['system', 'check']);
  assert.match(check.stdout + check.stderr, /mount tv: volume still mounted though no container uses it/);
  assert.match(ply(root, ['system', 'check', '--repair']).stdout, /mount tv: volume still mounted though no container uses it \(repaired\)/);
  assert.ok(!mounts().includes(` ${data} `));
  // --mount volume-opt=: the options of the volume the mount creates (named or anonymous), checked as create's.
  assert.equal(plyOk(root, ['run', '--rm', '--network', 'none', '--mount', 'type=volume,source=mv,target=/d,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=2m', 'bb', 'grep', ' /d ', '/proc/mounts']), 'tmpfs /d tmpfs rw,relatime,size=2048k 0 0\n');
  assert.equal(plyOk(root, ['volume', 'inspect', '-f', '{{json .Options}}', 'mv']), '{"device":"tmpfs","o":"size=2m","type":"tmpfs"}\n');
  assert.match(plyOk(root, ['run', '--rm', '--network', 'none', '--mount', 'type=volume,target=/d,volume-opt=type=tmpfs,volume-opt=device=tmpfs', 'bb', 'grep', ' /d ', '/proc/mounts']), /^tmpfs \/d tmpfs /);
  const badOpt = ply(root, ['run', '--rm', '--network', 'none', '--mount', 'type=volume,source=mv2,target=/d,volume-opt=foo=bar', 'bb', 'true']);
  assert.deepEqual([badOpt.code, badOpt.stderr], [125, 'Error: create mv2: invalid option: "foo"\n']);
  plyOk(root, ['volume', 'rm', 'tv', 'nv', 'mv']);
});

test('security defaults: no-new-privileges, docker capabilities, masked /proc paths', () => {
  const outp = plyOk(root, ['run', '--rm', 'bb', 'sh', '-c', 'grep -E "^(NoNewPrivs|CapEff)" /proc/self/status; echo keys=$(wc -c < /proc/keys); echo masked=$(grep -c " /proc/keys " /proc/mounts); echo fw=$(ls /sys/firmware | wc -l)']);
  assert.match(outp, /NoNewPrivs:\s+1/);
  assert.match(outp, /CapEff:\s+00000000a80425fb/);
  assert.match(outp, /^keys=0$/m, 'masked /proc/keys reads empty');
  assert.match(outp, /^fw=0$/m, '/sys/firmware is masked');
  assert.match(outp, /^masked=1$/m);
  assert.match(plyOk(root, ['run', '--rm', '--cap-drop', 'ALL', 'bb', 'grep', 'CapEff', '/proc/self/status']), /0000000000000000/);
  // --security-opt no-new-privileges[=BOOL] as dockerd parses it (compared with dockerd 20.10: false gives 0, the
  // last wins, inspect keeps the list; an unknown key or a bad BOOL is 'invalid --security-opt 2: "X"').
  assert.match(plyOk(root, ['run', '--rm', '--network', 'none', '--security-opt', 'no-new-privileges=false', 'bb', 'grep', 'NoNewPrivs', '/proc/self/status']), /NoNewPrivs:\s+0/);
  assert.match(plyOk(root, ['run', '--rm', '--network', 'none', '--privileged', '--security-opt', 'no-new-privileges', 'bb', 'grep', 'NoNewPrivs', '/proc/self/status']), /NoNewPrivs:\s+1/);
  const nnp = plyOk(root, ['create', '--network', 'none', '--security-opt', 'no-new-privileges', '--security-opt', 'no-new-privileges:false', 'bb', 'true']).trim();
  assert.equal(plyOk(root, ['inspect', '-f', '{{json .HostConfig.SecurityOpt}}', nnp]), '["no-new-privileges","no-new-privileges:false"]\n');
  plyOk(root, ['rm', nnp]);
  for (const bad of ['foo=bar', 'no-new-privileges=maybe']) assert.equal(ply(root, ['create', '--network', 'none', '--security-opt', bad, 'bb', 'true']).stderr, `Error: invalid --security-opt 2: "${bad}"\n`);
  assert.match(ply(root, ['create', '--network', 'none', '--security-opt', 'seccomp=unconfined', 'bb', 'true']).stderr, /ply does not support --security-opt seccomp yet/);
  // The store is not visible inside.
  assert.notEqual(ply(root, ['run', '--rm', 'bb', 'ls', root]).code, 0);
});

test('--init runs tini as pid 1; pause/unpause; top; rename; --stop-signal; container prune', async () => {
  assert.match(plyOk(root, ['run', '--rm', '--init', 'bb', 'ps', '-o', 'pid,comm']), /^\s*1 docker-init$/m);
  plyOk(root, ['run', '-d', '--name', 'pz', '--stop-signal', 'SIGUSR1', 'bb', 'sh', '-c', 'trap "echo got-usr1; exit 9" USR1; while true; do sleep 0.1; done']);
  assert.equal(plyOk(root, ['pause', 'pz']), 'pz\n');
  assert.match(plyOk(root, ['ps', '--filter', 'name=pz', '--format', '{{.Status}}']), /\(Paused\)/);
  assert.equal(plyOk(root, ['unpause', 'pz']), 'pz\n');
  assert.match(plyOk(root, ['top', 'pz']), /sh -c trap/);
  plyOk(root, ['rename', 'pz', 'pz2']);
  assert.equal(ply(root, ['inspect', 'pz']).code, 1);
  plyOk(root, ['stop', 'pz2']);
  assert.equal(plyOk(root, ['wait', 'pz2']), '9\n');
  assert.match(plyOk(root, ['logs', 'pz2']), /got-usr1/);
  const prune = plyOk(root, ['container', 'prune', '-f']);
  assert.match(prune, /Deleted Containers:/);
  assert.equal(plyOk(root, ['ps', '-aq']), '');
});

test('--pull never refuses a missing image; --privileged gets all the caller\'s capabilities', () => {
  const r = ply(root, ['run', '--rm', '--pull', 'never', 'not-here:v1', 'true']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /No such image: not-here:v1/);
  const hostCaps = /CapBnd:\s+([0-9a-f]+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))![1];
  assert.equal(plyOk(root, ['run', '--rm', '--privileged', 'bb', 'grep', 'CapEff', '/proc/self/status']).trim(), `CapEff:\t${hostCaps}`);
});

test('-it under tmux: typed input and Ctrl-C reach the container, window size changes pass on, Ctrl-D ends it', async () => {
  const t = tmuxSession(`ply-tty-${process.pid}`, `env PLY_ROOT=${root} ${PLY} run --rm -it bb sh; echo EXITED=$?; sleep 30`);
  try {
    await t.waitFor(/^\/ #/m);
    t.send('echo typed-$((6*7))', 'Enter');
    await t.waitFor(/typed-42/);
    t.send('sleep 100', 'Enter');
    await new Promise((r) => setTimeout(r, 300));
    t.send('C-c');
    t.send('echo after-interrupt', 'Enter');
    await t.waitFor(/^after-interrupt$/m);
    t.resize(77, 21);
    await new Promise((r) => setTimeout(r, 200));
    t.send('stty size', 'Enter');
    await t.waitFor(/^21 77$/m);
    t.send('C-d');
    await t.waitFor(/EXITED=0/);
  } finally {
    t.close();
  }
});

test('detach keys: ctrl-p ctrl-q leaves run -it (exit 0) and attach ("read escape sequence", exit 1) with the container running; --detach-keys', async () => {
  // docker 28 on dockerd 20.10: `run -it` detaches silently with 0, `attach` prints "read escape sequence" and exits 1.
  const env = `env PLY_ROOT=${root} PLY_SERVICE=0`;
  const running = (name: string) => plyOk(root, ['inspect', '-f', '{{.State.Status}}', name]).trim();
  const t = tmuxSession(`ply-detach-${process.pid}`, `${env} ${PLY} run -it --name dk --network none bb sh; echo RUN=$?; ${env} ${PLY} attach dk; echo ATTACH=$?; ${env} ${PLY} attach --detach-keys ctrl-a,x dk; echo KEYS=$?; sleep 60`);
  try {
    await t.waitFor(/^\/ #/m);
    t.send('echo typed-$((6*7))', 'Enter');
    await t.waitFor(/^typed-42/m);
    t.send('C-p', 'C-q');
    await t.waitFor(/RUN=0$/m);
    assert.equal(running('dk'), 'running');
    t.send('echo again-$((2*3))', 'Enter');
    await t.waitFor(/^again-6/m);
    t.send('C-p');
    t.send('C-q');
    await t.waitFor(/read escape sequence\s*\nATTACH=1$/m);
    assert.equal(running('dk'), 'running');
    // Other keys: ctrl-p ctrl-q reach the shell, ctrl-a x detaches.
    t.send('C-p', 'C-q');
    await t.waitFor(/again-\$\(\(2\*3\)\)\s*$/); // ctrl-p is the shell's: its history's last line comes back
    t.send('C-u', 'echo still-$((3*3))', 'Enter');
    await t.waitFor(/^still-9/m);
    t.send('C-a', 'x');
    await t.waitFor(/^KEYS=1$/m);
    assert.equal(running('dk'), 'running');
  } finally {
    t.close();
  }
  const bad = ply(root, ['attach', '--detach-keys', 'ctrl-A', 'dk']);
  assert.deepEqual([bad.code, bad.stderr], [1, 'Error: Invalid detach keys (ctrl-A) provided\n']);
  plyOk(root, ['rm', '-f', 'dk']);
});

test('--sig-proxy: attach passes signals to a container without a TTY; =false on run and attach leaves it running', async () => {
  const trap = 'trap "echo got-TERM; exit 7" TERM; echo ready; while :; do sleep 0.1; done';
  const started = async (child: ReturnType<typeof spawn>, out: () => string) => {
    for (let i = 0; i < 200 && !out().includes('ready'); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(out(), /ready/);
  };
  const exitOf = (child: ReturnType<typeof spawn>) => new Promise<[number | null, string | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
  const spawnPly = (args: string[]) => spawn(PLY, args, { env: { ...process.env, PLY_ROOT: root, PLY_SERVICE: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const state = (name: string) => plyOk(root, ['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', name]).trim();
  // run --sig-proxy=false: the CLI goes, the container stays (docker: the CLI dies of the signal).
  let out = '';
  const run = spawnPly(['run', '--sig-proxy=false', '--name', 'sp1', '--network', 'none', 'bb', 'sh', '-c', trap]);
  run.stdout!.on('data', (d: Buffer) => (out += d));
  await started(run, () => out);
  run.kill('SIGTERM');
  assert.deepEqual(await exitOf(run), [null, 'SIGTERM']);
  assert.equal(state('sp1'), 'running 0');
  // attach (sig-proxy by default): the signal reaches the container, whose exit code comes back.
  let out2 = '';
  const att = spawnPly(['attach', 'sp1']);
  att.stdout!.on('data', (d: Buffer) => (out2 += d));
  await new Promise((r) => setTimeout(r, 1500));
  att.kill('SIGTERM');
  assert.deepEqual(await exitOf(att), [7, null]);
  assert.equal(state('sp1'), 'exited 7');
  // attach --sig-proxy=false: the CLI goes, the container stays.
  plyOk(root, ['start', 'sp1']);
  const att2 = spawnPly(['attach', '--sig-proxy=false', 'sp1']);
  await new Promise((r) => setTimeout(r, 1500));
  att2.kill('SIGTERM');
  assert.deepEqual(await exitOf(att2), [null, 'SIGTERM']);
  assert.equal(state('sp1'), 'running 0');
  const bad = ply(root, ['run', '--sig-proxy=maybe', 'bb', 'true']);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /invalid argument "maybe" for "--sig-proxy" flag: strconv\.ParseBool: parsing "maybe": invalid syntax/);
  plyOk(root, ['rm', '-f', 'sp1']);
});

test('system df counts images, containers, volumes; ps -s shows the writable layer size', () => {
  const store = tempDir();
  plyOk(store, ['import', busyboxTar(), 'bb']);
  plyOk(store, ['run', '--name', 'sized', '-v', 'dfvol:/data', 'bb', 'sh', '-c', 'head -c 100000 /dev/zero > /blob; head -c 5000 /dev/zero > /data/v']);
  const df = plyOk(store, ['system', 'df', '--format', '{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Size}}']).trim().split('\n');
  assert.deepEqual(df.map((l) => l.split('|').slice(0, 3).join('|')), ['Images|1|1', 'Containers|1|0', 'Local Volumes|1|1', 'Build Cache|0|0']);
  assert.equal(df[1]!.split('|')[3], '100kB');
  assert.equal(df[2]!.split('|')[3], '5kB');
  assert.match(plyOk(store, ['ps', '-a', '-s', '--format', '{{.Names}} {{.Size}}']), /^sized 100kB \(virtual [\d.]+MB\)$/m);
});

test('signals sent to ply reach the container (sig-proxy), and its exit code comes back', async () => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    const child = spawn(PLY, ['run', '--rm', 'bb', 'sh', '-c', `trap "echo got-${sig}; exit 7" ${sig.slice(3)}; echo ready; while :; do sleep 0.1; done`], {
      env: { ...process.env, PLY_ROOT: root, PLY_SERVICE: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d));
    for (let i = 0; i < 200 && !stdout.includes('ready'); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(stdout, /ready/);
    child.kill(sig);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    assert.equal(code, 7, `${sig}: ${stdout}`);
    assert.match(stdout, new RegExp(`got-${sig}`));
  }
});

test('--runtime crun (and PLY_RUNTIME) run the container under crun, or report its failure in one line', () => {
  // crun 1.8 refuses hybrid cgroup hierarchies (these machines): then the failure must be crun's, in one line.
  for (const [args, env] of [[['--runtime', 'crun'], {}], [[], { PLY_RUNTIME: 'crun' }]] as const) {
    const r = ply(root, ['run', '--name', `on-crun-${args.length}`, ...args, 'bb', 'echo', 'hi'], { env: { ...env, PLY_SERVICE: '0' } });
    if (r.code === 0) assert.equal(r.stdout, 'hi\n');
    else {
      assert.equal(r.code, 125, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /cgroups in hybrid mode not supported/);
    }
    assert.equal(plyOk(root, ['inspect', '--format', '{{.HostConfig.Runtime}}', `on-crun-${args.length}`]).trim(), 'crun');
    assert.ok(fs.existsSync(path.join(root, 'runtime', 'crun')), 'crun keeps its state under the store');
    plyOk(root, ['rm', '-f', `on-crun-${args.length}`]);
  }
});
