// End-to-end: what a docker user hits first, through bin/ply, against docker's own behaviour. The expected
// outputs and exit codes were recorded from the docker CLI 28.2.2 driving Debian's dockerd 20.10.24
// (/work/shared/tools/docker-reference.sh), with the same busybox image; where ply words a message its own way,
// the test says so.
import fs from 'node:fs';
import path from 'node:path';
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { PLY, busyboxTar, ply, plyAsync, plyOk, tempDir } from '../helpers.js';

let root: string;
before(() => {
  root = tempDir();
  plyOk(root, ['import', '-c', 'CMD ["sh"]', busyboxTar(), 'busybox']);
  plyOk(root, ['run', '-d', '--network', 'none', '--name', 'longrun', 'busybox', 'sleep', '1000']);
  plyOk(root, ['create', '--network', 'none', '--name', 'stopped', 'busybox', 'true']);
  plyOk(root, ['create', '--network', 'none', '--name', 'badcmd', 'busybox', 'nosuchcmd']);
});

const NONE = ['--network', 'none'];

function expectExit(args: string[], code: number, stderr?: RegExp, input?: string): ReturnType<typeof ply> {
  const r = ply(root, args, input !== undefined ? { input } : {});
  assert.equal(r.code, code, `ply ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  if (stderr) assert.match(r.stderr, stderr, `ply ${args.join(' ')}`);
  return r;
}

test('exit codes: run 125 for its own failures, 126/127 when the command cannot run, else the command\'s code', () => {
  expectExit(['run', '--rm', ...NONE, '--pull', 'never', 'nosuchimage'], 125, /No such image: nosuchimage/);
  expectExit(['run', '--rm', ...NONE, 'busybox', 'nosuchcmd'], 127, /executable file not found in \$PATH/);
  expectExit(['run', '--rm', ...NONE, 'busybox', '/etc/motd'], 126, /permission denied/);
  expectExit(['run', '--rm', ...NONE, 'busybox', 'sh', '-c', 'exit 3'], 3);
  expectExit(['run', '--rm', ...NONE, '--user', 'nosuchuser', 'busybox', 'true'], 125, /unable to find user nosuchuser: no matching entries in passwd file/);
  expectExit(['run', '--rm', ...NONE, '-v', '/x:/y:bogus', 'busybox', 'true'], 125, /invalid mode: bogus/);
  expectExit(['run', '--rm', '--network', 'nosuchnet', 'busybox'], 125, /network nosuchnet not found/);
  // Name conflicts: run 125, create 1 (docker's create reports the daemon's refusal as a failed command).
  expectExit(['run', ...NONE, '--name', 'stopped', 'busybox', 'true'], 125, /Conflict. The container name "\/stopped" is already in use/);
  expectExit(['create', ...NONE, '--name', 'stopped', 'busybox', 'true'], 1, /Conflict. The container name "\/stopped" is already in use/);
  expectExit(['create', ...NONE, '--pull', 'never', 'nosuchimage'], 1, /No such image: nosuchimage/);
  expectExit(['create', ...NONE, '-v', '/x:/y:bogus', 'busybox', 'true'], 1, /invalid mode: bogus/);
  // run -d prints the ID once the container exists, then reports the start's failure with its code.
  const d = expectExit(['run', '-d', ...NONE, 'busybox', 'nosuchcmd'], 127, /executable file not found/);
  assert.match(d.stdout, /^[0-9a-f]{64}\n$/);
});

test('exit codes: flags and arguments as docker\'s CLI (bad flags 125 with the usage, argument counts 1)', () => {
  // docker: "unknown flag: --bogus\n\nUsage:  docker run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'docker run --help' for more information", 125
  let r = expectExit(['run', '--rm', '--bogus', 'busybox', 'true'], 125);
  assert.equal(r.stderr, "unknown flag: --bogus\n\nUsage:  ply run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nRun 'ply run --help' for more information\n");
  expectExit(['ps', '-z'], 125, /^unknown shorthand flag: 'z' in -z\n/);
  // docker: invalid argument "abc" for "-t, --time" flag: strconv.ParseInt: parsing "abc": invalid syntax, 125 (nothing stopped)
  expectExit(['stop', '-t', 'abc', 'longrun'], 125, /^invalid argument "abc" for "-t, --time" flag: strconv.ParseInt: parsing "abc": invalid syntax\n/);
  assert.match(plyOk(root, ['ps', '--format', '{{.Names}}']), /longrun/);
  expectExit(['create', '--stop-timeout', 'abc', 'busybox'], 125, /invalid argument "abc" for "--stop-timeout" flag/);
  expectExit(['ps', '-n', 'abc'], 125, /invalid argument "abc" for "-n, --last" flag/);
  expectExit(['run', '--rm', ...NONE, '-e', '=x', 'busybox', 'true'], 125, /invalid environment variable: =x/);
  expectExit(['create', ...NONE, '--env-file', '/no-such-dir/env', 'busybox', 'true'], 125, /open \/no-such-dir\/env: no such file or directory/);
  // docker: "docker: 'docker run' requires at least 1 argument\n\nUsage:  docker run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nSee 'docker run --help' for more information", 1
  r = expectExit(['run'], 1);
  assert.equal(r.stderr, "ply: 'ply run' requires at least 1 argument\n\nUsage:  ply run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nSee 'ply run --help' for more information\n");
  expectExit(['exec', 'longrun'], 1, /^ply: 'ply exec' requires at least 2 arguments\n/);
  expectExit(['tag'], 1, /^ply: 'ply tag' requires 2 arguments\n/);
  // An exact count says "Run", a range "See" (docker 28).
  r = expectExit(['rename'], 1);
  assert.equal(r.stderr, "ply: 'ply rename' requires 2 arguments\n\nUsage:  ply rename CONTAINER NEW_NAME\n\nRun 'ply rename --help' for more information\n");
  expectExit(['commit'], 1, /^ply: 'ply commit' requires at least 1 and at most 2 arguments\n/);
  // Unknown commands: docker: "docker: unknown command: docker bogus\n\nRun 'docker --help' for more information", 1
  r = expectExit(['bogus'], 1);
  assert.equal(r.stderr, "ply: unknown command: ply bogus\n\nRun 'ply --help' for more information\n");
  r = expectExit(['image', 'bogus'], 1);
  assert.equal(r.stderr, "ply: unknown command: ply image bogus\n\nUsage:  ply image COMMAND\n\nRun 'ply image --help' for more information\n");
  // A group alone prints its help (docker: exit 0).
  assert.match(expectExit(['container'], 0).stdout, /Usage: ply container/);
});

test('exit codes: other commands exit 1 when they fail; rm -f and rmi -f of nothing only report it', () => {
  expectExit(['start', 'nosuch'], 1, /No such container: nosuch/);
  // docker: the daemon's error, then "Error: failed to start containers: badcmd", 1
  expectExit(['start', 'badcmd'], 1, /executable file not found in \$PATH\nError: failed to start containers: badcmd\n$/);
  expectExit(['start', '-a', 'badcmd'], 1, /executable file not found/);
  for (const cmd of ['stop', 'kill', 'rm', 'pause', 'unpause', 'logs', 'wait', 'diff', 'top', 'port', 'commit', 'export', 'restart']) {
    expectExit([cmd, 'nosuch'], 1, /No such container: nosuch/);
  }
  expectExit(['rm', '-f', 'nosuch'], 0, /No such container: nosuch/);
  expectExit(['rmi', 'nosuch'], 1, /No such image: nosuch/);
  expectExit(['rmi', '-f', 'nosuch'], 0, /No such image: nosuch/);
  for (const cmd of ['history', 'save', 'push']) expectExit([cmd, 'nosuch'], 1);
  expectExit(['pause', 'stopped'], 1, /is not running/);
  expectExit(['unpause', 'stopped'], 1, /is not paused/);
  expectExit(['top', 'stopped'], 1, /is not running/);
  // docker: "Error response from daemon: Invalid signal: BOGUS" (before the container is looked up), 1; a number is
  // refused per container; an empty -s is KILL.
  expectExit(['kill', '-s', 'BOGUS', 'longrun'], 1, /^Error: Invalid signal: BOGUS\n$/);
  expectExit(['kill', '-s', 'sigbogus', 'longrun', 'nosuch'], 1, /^Error: Invalid signal: sigbogus\nError: Invalid signal: sigbogus\n$/);
  expectExit(['kill', '-s', '0', 'longrun'], 1, /^Error: Invalid signal: 0\n$/);
  expectExit(['kill', '-s', '99', 'longrun'], 1, /^Error: Cannot kill container: longrun: The linux daemon does not support signal 99\n$/);
  expectExit(['kill', '-s', '', 'stopped'], 1, /^Error: Cannot kill container: stopped: Container [0-9a-f]{64} is not running\n$/);
  expectExit(['logs', '--since', 'abc', 'longrun'], 1, /invalid value for "since"/);
  // docker's CLI checks both names itself: bare lines, 1.
  expectExit(['tag', 'busybox', 'BAD:x'], 1, /^Error parsing reference: "BAD:x" is not a valid repository\/tag: invalid reference format: repository name \(library\/BAD\) must be lowercase\n$/);
  expectExit(['tag', 'Busybox', 'x'], 1, /^Error parsing reference: "Busybox" is not a valid repository\/tag: invalid reference format: repository name \(library\/Busybox\) must be lowercase\n$/);
  expectExit(['tag', 'busybox', 'bad::ref'], 1, /^Error parsing reference: "bad::ref" is not a valid repository\/tag: invalid reference format\n$/);
  expectExit(['tag', 'busybox', `x@sha256:${'0'.repeat(32)}`], 1, /^Error parsing reference: "x@sha256:0{32}" is not a valid repository\/tag: invalid checksum digest length\n$/);
  expectExit(['tag', 'busybox', 'a'.repeat(256)], 1, /^Error parsing reference: "a{256}" is not a valid repository\/tag: repository name must not be more than 255 characters\n$/);
  expectExit(['tag', 'busybox', `x@sha256:${'0'.repeat(64)}`], 1, /^refusing to create a tag with a digest reference\n$/);
  expectExit(['tag', 'nosuch', 'x'], 1, /No such image: nosuch/);
  expectExit(['load', '-i', '/no-such-dir/archive.tar'], 1, /open \/no-such-dir\/archive\.tar: no such file or directory/);
  expectExit(['import', '/no-such-dir/rootfs.tar'], 1, /open \/no-such-dir\/rootfs\.tar: no such file or directory/);
  expectExit(['rename', 'badcmd', 'longrun'], 1, /Conflict/);
  // rmi of an image a container uses: docker's conflict, 1.
  plyOk(root, ['tag', 'busybox', 'only-name:1']);
  plyOk(root, ['create', ...NONE, 'only-name:1', 'true']);
  plyOk(root, ['rmi', 'busybox']);
  expectExit(['rmi', 'only-name:1'], 1, /container .* is using its referenced image/);
  plyOk(root, ['tag', 'only-name:1', 'busybox']);
});

test('exit codes: exec 126 when its command cannot start (1 detached), 1 when the container does not run', () => {
  expectExit(['exec', 'stopped', 'true'], 1, /is not running/);
  expectExit(['exec', 'nosuch', 'true'], 1, /No such container: nosuch/);
  // docker prints one line: "OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuchcmd": …", 126
  const r = expectExit(['exec', 'longrun', 'nosuchcmd'], 126);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuchcmd": executable file not found in \$PATH/);
  expectExit(['exec', 'longrun', '/etc/motd'], 126, /permission denied/);
  expectExit(['exec', '-u', 'nosuchuser', 'longrun', 'true'], 126, /unable to find user nosuchuser/);
  expectExit(['exec', '-w', '/nonexist', 'longrun', 'pwd'], 126, /chdir to cwd/);
  expectExit(['exec', '-d', 'longrun', 'nosuchcmd'], 1, /executable file not found/);
  const out = expectExit(['exec', 'longrun', 'sh', '-c', 'echo out; echo err >&2; exit 5'], 5);
  assert.equal(out.stdout, 'out\n');
  assert.equal(out.stderr, 'err\n');
});

test('-t without a terminal: the container gets one anyway (no stray bytes); -it needs one', () => {
  // docker: "/dev/pts/0\r\nhi\r\n", exit 0
  const r = spawnSync(PLY, ['run', '--rm', ...NONE, '-t', 'busybox', 'sh', '-c', 'tty; echo hi'], { env: { ...process.env, PLY_ROOT: root }, stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(r.status, 0, r.stderr.toString());
  assert.equal(r.stdout.toString(), '/dev/pts/0\r\nhi\r\n');
  expectExit(['run', '--rm', ...NONE, '-t', 'busybox', 'sh', '-c', 'exit 4'], 4);
  // docker: "the input device is not a TTY", 1, and nothing is created.
  const before = plyOk(root, ['ps', '-aq']);
  expectExit(['run', '--rm', ...NONE, '-it', 'busybox', 'true'], 1, /the input device is not a TTY/);
  assert.equal(plyOk(root, ['ps', '-aq']), before);
  // run -d -t: its log holds what the terminal showed, from the first byte (docker: "hello\r\nworld\r\n").
  const id = plyOk(root, ['run', '-d', ...NONE, '-t', 'busybox', 'sh', '-c', 'echo hello; echo world']).trim();
  assert.equal(plyOk(root, ['wait', id]), '0\n');
  assert.equal(plyOk(root, ['logs', id]), 'hello\r\nworld\r\n');
  // -dit: the terminal stays open for a shell that reads it.
  const sh = plyOk(root, ['run', '-dit', ...NONE, 'busybox', 'sh']).trim();
  assert.match(plyOk(root, ['ps', '--format', '{{.Status}}', '--filter', `id=${sh}`]), /^Up /);
  plyOk(root, ['rm', '-f', sh]);
  // exec -t likewise; exec -it without a terminal is refused.
  const e = spawnSync(PLY, ['exec', '-t', 'longrun', 'sh', '-c', 'tty; echo x'], { env: { ...process.env, PLY_ROOT: root }, stdio: ['ignore', 'pipe', 'pipe'] });
  assert.equal(e.status, 0, e.stderr.toString());
  assert.equal(e.stdout.toString(), '/dev/pts/0\r\nx\r\n');
  expectExit(['exec', '-it', 'longrun', 'true'], 1, /the input device is not a TTY/);
});

/** Runs ply with raw bytes in and out (tars through `cp -`). */
function plyRaw(args: string[], input?: Buffer): { code: number; stdout: Buffer; stderr: string } {
  const r = spawnSync(PLY, args, { env: { ...process.env, PLY_ROOT: root }, input: input ?? Buffer.alloc(0), maxBuffer: 64 << 20 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString() };
}

test('cp with -: a tar to stdout, a tar from stdin (docker\'s rules for the destination)', () => {
  plyOk(root, ['create', ...NONE, '--name', 'cpc', 'busybox', 'true']);
  // docker: `cp cpc:/etc/passwd - | tar t` lists "passwd"; a directory comes with its own name first.
  const one = plyRaw(['cp', 'cpc:/etc/passwd', '-']);
  assert.equal(one.code, 0, one.stderr);
  assert.equal(spawnSync('tar', ['-t'], { input: one.stdout }).stdout.toString(), 'passwd\n');
  const dir = plyRaw(['cp', 'cpc:/etc', '-']);
  assert.match(spawnSync('tar', ['-t'], { input: dir.stdout }).stdout.toString(), /^etc\/\n(etc\/.*\n)*etc\/passwd\n/);
  // A tar from stdin lands in the directory; the file reads back through cp - as well.
  const tmp = tempDir();
  fs.writeFileSync(path.join(tmp, 'f1'), 'hello\n');
  const tar = spawnSync('tar', ['-C', tmp, '-c', 'f1']).stdout;
  const put = plyRaw(['cp', '-', 'cpc:/tmp'], tar);
  assert.equal(put.code, 0, put.stderr);
  const back = plyRaw(['cp', 'cpc:/tmp/f1', '-']);
  assert.equal(spawnSync('tar', ['-xO'], { input: back.stdout }).stdout.toString(), 'hello\n');
  // docker: 'destination "cpc:/etc/passwd" must be a directory' (also for a missing path), 1.
  expectExit(['cp', '-', 'cpc:/etc/passwd'], 1, /destination "cpc:\/etc\/passwd" must be a directory/, '');
  expectExit(['cp', '-', 'cpc:/nonexist'], 1, /destination "cpc:\/nonexist" must be a directory/, '');
  expectExit(['cp', '-', '-'], 1, /must specify at least one container source/);
  expectExit(['cp', 'cpc:/nonexist', '-'], 1, /Could not find the file \/nonexist in container cpc/);
});

test('commit keeps the container\'s config; --change applies on top', () => {
  plyOk(root, ['create', ...NONE, '--name', 'cfgc', '-e', 'A=1', '-w', '/tmp', '-u', '1000', '--expose', '8080', '-l', 'k=v', '--entrypoint', '/bin/sh', '--stop-signal', 'SIGINT', '-v', '/anon', 'busybox', '-c', 'echo hi']);
  plyOk(root, ['commit', 'cfgc', 'cfgimg:1']);
  plyOk(root, ['commit', '-c', 'CMD ["x"]', '-c', 'ENV B=2', 'cfgc', 'cfgimg:2']);
  const cfg = (ref: string) => JSON.parse(plyOk(root, ['inspect', '-f', '{{json .Config}}', ref])) as Record<string, unknown>;
  // docker 20.10: every one of these as the container ran, not as busybox would.
  const want = { User: '1000', ExposedPorts: { '8080/tcp': {} }, Env: ['A=1'], Entrypoint: ['/bin/sh'], Cmd: ['-c', 'echo hi'], Volumes: { '/anon': {} }, WorkingDir: '/tmp', Labels: { k: 'v' }, StopSignal: 'SIGINT' };
  const pick = (o: Record<string, unknown>) => Object.fromEntries(Object.keys(want).map((k) => [k, o[k]]));
  assert.deepEqual(pick(cfg('cfgimg:1')), want);
  assert.deepEqual(pick(cfg('cfgimg:2')), { ...want, Env: ['A=1', 'B=2'], Cmd: ['x'] });
  // The container it came from: docker's Container and ContainerConfig keys.
  const id = plyOk(root, ['inspect', '-f', '{{.Id}}', 'cfgc']).trim();
  assert.equal(plyOk(root, ['inspect', '-f', '{{.Container}} {{.ContainerConfig.Image}} {{json .ContainerConfig.Cmd}}', 'cfgimg:1']), `${id} busybox ["-c","echo hi"]\n`);
  // docker's history: CreatedBy is the container's Cmd; the rows below carry the parent's ID.
  const base = plyOk(root, ['inspect', '-f', '{{.Id}}', 'busybox']).trim().slice(7, 19);
  assert.equal(plyOk(root, ['history', '--format', '{{.CreatedBy}}|{{.ID}}', 'cfgimg:2']).split('\n')[1], `|${base}`);
  assert.match(plyOk(root, ['history', '--format', '{{.CreatedBy}}', 'cfgimg:2']), /^-c echo hi\n/);
});

test('Go templates fail as Go\'s: missing keys, methods with arguments, JSON escaping, times', () => {
  // docker: "template parsing error: template: :1:2: executing \"\" at <.Nope>: map has no entry for key \"Nope\"", 1
  let r = expectExit(['inspect', '-f', '{{.Nope}}', 'busybox'], 1);
  assert.equal(r.stderr, 'template parsing error: template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"\n');
  assert.equal(r.stdout, '\n');
  r = expectExit(['inspect', '-f', '{{.Config.Nope}}', 'busybox'], 1);
  assert.equal(r.stderr, 'template parsing error: template: :1:9: executing "" at <.Config.Nope>: map has no entry for key "Nope"\n');
  // A map's missing key prints <no value>; a nil map indexes to "" and prints map[].
  assert.equal(plyOk(root, ['inspect', '-f', '{{.Config.Labels.nope}}|{{index .Config.Labels "x"}}|{{.Config.Labels}}|{{json .Config.Labels}}', 'busybox']), '<no value>||map[]|null\n');
  r = expectExit(['inspect', '-f', '{{.Created.Nope}}', 'busybox'], 1);
  assert.match(r.stderr, /:1:10: executing "" at <\.Created\.Nope>: can't evaluate field Nope in type interface \{\}\n$/);
  // One object failing: the others print, the error follows (docker: exit 1).
  r = expectExit(['inspect', '-f', '{{.State.Nope}}', 'longrun', 'busybox'], 1);
  assert.equal(r.stderr.split('\n').length, 3, r.stderr);
  // docker: a template that does not parse exits 64.
  expectExit(['inspect', '-f', '{{', 'busybox'], 64, /^template parsing error: template: :1: unclosed action\n$/);
  // ps: docker's ContainerContext, its Label method, its errors.
  plyOk(root, ['create', ...NONE, '--name', 'esc', '-l', 'x=<b>&', 'busybox', 'sh', '-c', 'echo "a b" > /dev/null']);
  assert.equal(
    plyOk(root, ['ps', '-a', '--filter', 'name=esc', '--format', '{{json .Labels}}|{{.Label "x"}}|{{.Label "y"}}|{{.Command}}']),
    '"x=<b>&"|<b>&||"sh -c \'echo \\"a b\\" >…"\n',
  );
  // {{json .}} of a row escapes as Go's json.Marshal.
  assert.match(plyOk(root, ['ps', '-a', '--filter', 'name=esc', '--format', '{{json .}}']), /"Labels":"x=\\u003cb\\u003e\\u0026"/);
  assert.equal(plyOk(root, ['ps', '-a', '--no-trunc', '--filter', 'name=esc', '--format', '{{.Command}}']), '"sh -c \'echo \\"a b\\" > /dev/null\'"\n');
  r = expectExit(['ps', '--format', '{{.Nope}}'], 1);
  assert.equal(r.stderr, 'failed to execute template: template: :1:2: executing "" at <.Nope>: can\'t evaluate field Nope in type *formatter.ContainerContext\n');
  // docker: "2026-12-03 11:48:01 +0000 UTC" (the machine's zone is UTC here).
  assert.match(plyOk(root, ['ps', '-a', '--filter', 'name=esc', '--format', '{{.CreatedAt}}'], { env: { TZ: 'UTC' } }), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC\n$/);
  assert.match(plyOk(root, ['images', '--format', '{{.CreatedAt}}', 'busybox'], { env: { TZ: 'UTC' } }), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+0000 UTC\n$/);
});

test('ps filters are validated as dockerd\'s; volume=, network=, before/since work', () => {
  expectExit(['ps', '--filter', 'status=bogus'], 1, /invalid filter 'status=bogus'/);
  expectExit(['ps', '--filter', 'bogus=1'], 1, /invalid filter 'bogus'/);
  expectExit(['ps', '--filter', 'exited=abc'], 1, /strconv.Atoi: parsing "abc": invalid syntax/);
  expectExit(['ps', '--filter', 'health=bogus'], 1, /Unrecognised filter value for health: bogus/);
  expectExit(['ps', '--filter', 'is-task=maybe'], 1, /invalid filter 'is-task=\[maybe\]'/);
  expectExit(['ps', '--filter', 'before=nosuch'], 1, /no such container nosuch/);
  expectExit(['ps', '--filter', 'name'], 125, /bad format of filter \(expected name=value\)/);
  plyOk(root, ['volume', 'create', 'fv']);
  plyOk(root, ['create', ...NONE, '--name', 'volc2', '-v', 'fv:/data', '-v', '/tmp:/host:ro', 'busybox', 'true']);
  // docker: a volume's name, a mount's destination, a bind's source.
  for (const v of ['fv', '/data', '/host', '/tmp']) assert.equal(plyOk(root, ['ps', '-a', '--filter', `volume=${v}`, '--format', '{{.Names}}']), 'volc2\n', v);
  assert.equal(plyOk(root, ['ps', '-a', '--filter', 'volume=nope', '--format', '{{.Names}}']), '');
  assert.equal(plyOk(root, ['ps', '-a', '--filter', 'name=volc2', '--format', '{{.Mounts}}']), 'fv,/tmp\n');
  assert.match(plyOk(root, ['ps', '-a', '--filter', 'network=none', '--format', '{{.Names}}']), /volc2/);
  assert.match(plyOk(root, ['ps', '-a', '--filter', 'since=stopped', '--format', '{{.Names}}']), /volc2/);
  assert.doesNotMatch(plyOk(root, ['ps', '-a', '--filter', 'before=stopped', '--format', '{{.Names}}']), /volc2/);
  assert.equal(plyOk(root, ['ps', '-a', '--filter', 'name=^/volc2$', '--format', '{{.Names}}']), 'volc2\n');
  // docker's Binds: -v host paths and named volumes as given.
  assert.deepEqual((JSON.parse(plyOk(root, ['inspect', '-f', '{{json .HostConfig.Binds}}', 'volc2'])) as string[]).sort(), ['/tmp:/host:ro', 'fv:/data']);
});

test('volume create/ls/inspect/rm/prune as docker\'s', () => {
  assert.equal(plyOk(root, ['volume', 'create', '--label', 'a=b', 'vl1']), 'vl1\n');
  const [v] = JSON.parse(plyOk(root, ['volume', 'inspect', 'vl1'])) as Record<string, unknown>[];
  assert.deepEqual(Object.keys(v!).sort(), ['CreatedAt', 'Driver', 'Labels', 'Mountpoint', 'Name', 'Options', 'Scope']);
  assert.deepEqual([v!.Driver, v!.Labels, v!.Options, v!.Scope], ['local', { a: 'b' }, null, 'local']);
  assert.match(v!.CreatedAt as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.match(plyOk(root, ['volume', 'ls']), /^DRIVER {4}VOLUME NAME\n(local {5}\S+\n)+$/);
  assert.match(plyOk(root, ['volume', 'ls', '-q']), /^vl1$/m);
  assert.equal(plyOk(root, ['volume', 'ls', '-f', 'label=a=b', '--format', '{{.Name}} {{.Labels}} {{.Links}} {{.Size}}']), 'vl1 a=b N/A N/A\n');
  expectExit(['volume', 'ls', '-f', 'bogus=1'], 1, /invalid filter 'bogus'/);
  expectExit(['volume', 'ls', '--format', '{{.Nope}}'], 1, /can't evaluate field Nope in type \*formatter.volumeContext/);
  // docker: "[]" then "Error: get nosuch: no such volume"-like line, 1; rm -f of nothing prints the name, 0.
  expectExit(['volume', 'inspect', 'nosuch'], 1, /get nosuch: no such volume/);
  expectExit(['volume', 'rm', 'nosuch'], 1, /get nosuch: no such volume/);
  assert.equal(expectExit(['volume', 'rm', '-f', 'nosuch'], 0).stdout, 'nosuch\n');
  expectExit(['volume', 'rm', 'fv'], 1, /remove fv: volume is in use - \[/);
  expectExit(['volume', 'create', '-d', 'bogus', 'x'], 1, /error looking up volume plugin bogus: plugin "bogus" not found/);
  expectExit(['volume', 'bogus'], 1, /^ply: unknown command: ply volume bogus\n/);
  // prune: anonymous unused volumes (docker ≥ 23; -a the named ones too); in-use ones stay.
  const anon = plyOk(root, ['volume', 'create']).trim();
  const p = plyOk(root, ['volume', 'prune', '-f']);
  assert.match(p, new RegExp(`^Deleted Volumes:\\n(.*\\n)*${anon}\\n(.*\\n)*\\nTotal reclaimed space: `));
  assert.doesNotMatch(p, /vl1|fv/);
  assert.match(plyOk(root, ['volume', 'prune', '-af']), /vl1/);
  assert.match(plyOk(root, ['volume', 'ls', '-q']), /^fv$/m);
});

test('build intermediates are not dangling images; image inspect has docker\'s keys', () => {
  const ctx = tempDir();
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM busybox\nRUN echo a > /a\nRUN echo b > /b\n');
  plyOk(root, ['build', '-q', '-t', 'bt:1', ctx]);
  // docker with BuildKit: nothing dangling, `rmi $(images -qf dangling=true)` has nothing to delete.
  assert.equal(plyOk(root, ['images', '-qf', 'dangling=true']), '');
  assert.doesNotMatch(plyOk(root, ['images', '-a', '--format', '{{.Repository}}']), /<none>/);
  assert.match(plyOk(root, ['system', 'df', '--format', '{{.Type}} {{.TotalCount}}']), /Build Cache [1-9]/);
  const keys = Object.keys((JSON.parse(plyOk(root, ['image', 'inspect', 'bt:1'])) as object[])[0]!);
  for (const k of ['Id', 'RepoTags', 'RepoDigests', 'Parent', 'Comment', 'Created', 'Container', 'ContainerConfig', 'DockerVersion', 'Author', 'Config', 'Architecture', 'Os', 'Size', 'VirtualSize', 'GraphDriver', 'RootFS', 'Metadata']) {
    assert.ok(keys.includes(k), k);
  }
  // .Config.Env holds only what the image and -e gave (the runtime's PATH and HOSTNAME are not in it).
  plyOk(root, ['create', ...NONE, '--name', 'envc', '-e', 'X=1', 'busybox', 'true']);
  assert.equal(plyOk(root, ['inspect', '-f', '{{json .Config.Env}}', 'envc']), '["X=1"]\n');
  expectExit(['inspect', '--type', 'bogus', 'busybox'], 1, /unknown type: "bogus": must be one of "config", "container", "image", "network", "node", "plugin", "secret", "service", "task", "volume"/);
});

test('attach: the running container\'s output and its exit code; docker\'s refusals', async () => {
  // docker: "out" on stdout, "err" on stderr, exit 3.
  const id = plyOk(root, ['run', '-d', ...NONE, 'busybox', 'sh', '-c', 'sleep 2; echo out; echo err >&2; exit 3']).trim();
  const r = await plyAsync(root, ['attach', id]);
  assert.equal(r.code, 3, r.stderr);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
  expectExit(['attach', id], 1, /You cannot attach to a stopped container, start it first/);
  expectExit(['attach', 'nosuch'], 1, /No such container: nosuch/);
  // A TTY container that keeps stdin open needs a terminal to attach stdin from (docker: 1).
  const sh = plyOk(root, ['run', '-dit', ...NONE, 'busybox', 'sh']).trim();
  expectExit(['attach', sh], 1, /the input device is not a TTY/, 'echo x\n');
  plyOk(root, ['rm', '-f', sh]);
});

test('version has a Server section; info has docker\'s fields', () => {
  const v = plyOk(root, ['version']);
  assert.match(v, /^Client:\n Version: +\S+\n/);
  assert.match(v, /\nServer: ply\n Engine:\n  Version: +\S+\n  API version: +1\.\d+ \(minimum version 1\.\d+\)\n/);
  assert.match(plyOk(root, ['version', '--format', '{{.Server.APIVersion}} {{.Client.Os}}']), /^1\.\d+ linux\n$/);
  // docker lists its runtime among the Server's components: " runc:\n  Version:          1.1.5+ds1\n  GitCommit:        1.1.5+ds1-1+deb12u1".
  const runc = /^runc version (\S+)\ncommit: (\S+)/.exec(spawnSync('runc', ['--version'], { encoding: 'utf8' }).stdout)!;
  assert.ok(v.endsWith(`\n runc:\n  Version:          ${runc[1]}\n  GitCommit:        ${runc[2]}\n`), v);
  const crun = /^crun version (\S+)\ncommit: (\S+)/.exec(spawnSync('crun', ['--version'], { encoding: 'utf8' }).stdout)!;
  const components = plyOk(root, ['version', '--format', '{{range .Server.Components}}{{.Name}} {{.Version}} {{.Details.GitCommit}};{{end}}'], { env: { PLY_RUNTIME: 'crun' } });
  assert.equal(components.replace(/^Engine \S+ ;/, ''), `crun ${crun[1]} ${crun[2]};\n`, components);
  assert.match(plyOk(root, ['info', '--format', '{{.DockerRootDir}} {{.OSType}} {{.Images}}']), new RegExp(`^${root} linux [1-9]\\d*\n$`));
  assert.match(plyOk(root, ['info', '--format', '{{.Driver}}']), /^(overlayfs|vfs)\n$/);
  const info = plyOk(root, ['info']);
  for (const line of [' Containers: ', '  Running: ', ' Server Version: ', ' Storage Driver: ', ' Docker Root Dir: ', ' Kernel Version: ']) assert.ok(info.includes(`\n${line}`), line);
  expectExit(['info', '--format', '{{.Nope}}'], 1, /can't evaluate field Nope/);
});

test('list formats as docker 28: images VirtualSize, network ls IPv4 and CreatedAt; logs --tail that is no number; --expose refused as a flag', () => {
  // docker: Size "1.98MB", VirtualSize "1.984MB" (4 significant digits).
  const [size, virtual] = plyOk(root, ['images', '--format', '{{.Size}} {{.VirtualSize}}', 'busybox']).trim().split(' ');
  assert.match(size!, /^\d+(\.\d{1,2})?MB$/);
  assert.match(virtual!, /^\d+(\.\d{1,3})?MB$/);
  // docker: {"CreatedAt":"2026-12-03 09:35:59.387873577 +0000 UTC",…,"IPv4":"false",…} for none.
  const none = JSON.parse(plyOk(root, ['network', 'ls', '--format', 'json', '-f', 'name=none'], { env: { TZ: 'UTC' } })) as Record<string, string>;
  assert.equal(none.IPv4, 'false');
  assert.match(none.CreatedAt!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? \+0000 UTC$/);
  // dockerd: a tail that is not a number shows everything (exit 0).
  const id = plyOk(root, ['run', '-d', ...NONE, 'busybox', 'sh', '-c', 'echo one; echo two']).trim();
  plyOk(root, ['wait', id]);
  assert.equal(plyOk(root, ['logs', '--tail', 'abc', id]), 'one\ntwo\n');
  // docker: "invalid range format for --expose: 80-x, …", 125.
  expectExit(['create', ...NONE, '--expose', '80-x', 'busybox'], 125, /invalid range format for --expose: 80-x/);
});
