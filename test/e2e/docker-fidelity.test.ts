// End-to-end: what a docker user hits first, through bin/ply, against docker's own behaviour. The expected
// outputs and exit codes were recorded from the docker CLI 28.2.2 driving Debian's dockerd 20.10.24
// (/work/shared/tools/docker-reference.sh), with the same busybox image; where ply words a message its own way,
// the test says so.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { PLY, busyboxTar, ply, plyOk, tempDir } from '../helpers.js';

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
  expectExit(['create', ...NONE, '--env-file', '/nonexistent', 'busybox', 'true'], 125, /open \/nonexistent: no such file or directory/);
  // docker: "docker: 'docker run' requires at least 1 argument\n\nUsage:  docker run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nSee 'docker run --help' for more information", 1
  r = expectExit(['run'], 1);
  assert.equal(r.stderr, "ply: 'ply run' requires at least 1 argument\n\nUsage:  ply run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nSee 'ply run --help' for more information\n");
  expectExit(['exec', 'longrun'], 1, /^ply: 'ply exec' requires at least 2 arguments\n/);
  expectExit(['tag'], 1, /^ply: 'ply tag' requires 2 arguments\n/);
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
  expectExit(['kill', '-s', 'BOGUS', 'longrun'], 1);
  expectExit(['logs', '--since', 'abc', 'longrun'], 1, /invalid value for "since"/);
  expectExit(['tag', 'busybox', 'BAD:x'], 1, /repository name \(library\/BAD\) must be lowercase/);
  expectExit(['tag', 'nosuch', 'x'], 1, /No such image: nosuch/);
  expectExit(['load', '-i', '/nonexistent'], 1, /open \/nonexistent: no such file or directory/);
  expectExit(['import', '/nonexistent'], 1, /open \/nonexistent: no such file or directory/);
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
