// End-to-end: RUN --mount (cache, secret, bind, tmpfs, ssh), RUN --network, --add-host and --ulimit through
// bin/ply with runc. Builds run with --network none unless a test is about networking (no bridge per store).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { buildContext, busyboxTar, ply, plyAsync, plyOk, tempDir, type RunResult } from '../helpers.js';

let root: string;
before(() => {
  root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'busybox:latest']);
});

const context = buildContext;

const build = (dir: string, args: string[] = [], opts: { env?: Record<string, string>; store?: string } = {}): RunResult =>
  ply(opts.store ?? root, ['build', '--network', 'none', ...args, dir], opts);

function buildOk(dir: string, args: string[] = [], opts: { env?: Record<string, string>; store?: string } = {}): string {
  const r = build(dir, args, opts);
  if (r.code !== 0) throw new Error(`ply build ${args.join(' ')} ${dir} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

const cat = (image: string, file: string) => plyOk(root, ['run', '--rm', '--network', 'none', image, 'cat', file]);
const sh = (image: string, cmd: string) => plyOk(root, ['run', '--rm', '--network', 'none', image, 'sh', '-c', cmd]);
/** Every path of an image's layers (from `ply save`'s docker-archive layers). */
function layerPaths(image: string): string[] {
  const dir = tempDir('ply-save-');
  plyOk(root, ['save', '-o', path.join(dir, 'img.tar'), image]);
  execFileSync('tar', ['-xf', path.join(dir, 'img.tar'), '-C', dir]);
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'))[0];
  return (manifest.Layers as string[]).flatMap((l) => execFileSync('tar', ['-tf', path.join(dir, l)]).toString().split('\n').filter(Boolean));
}

test('type=cache: persists across builds, takes uid/gid/mode, never lands in the image; builder prune empties it', () => {
  const dir = context({
    Dockerfile: [
      'FROM busybox',
      'RUN --mount=type=cache,target=/var/cache/app echo run >> /var/cache/app/log && wc -l < /var/cache/app/log > /count',
      'RUN --mount=type=cache,id=owned,target=/owned,uid=1000,gid=1001,mode=0750 stat -c "%u %g %a" /owned > /owner',
    ].join('\n'),
  });
  buildOk(dir, ['-t', 'cache:1']);
  buildOk(dir, ['-t', 'cache:2', '--no-cache']);
  assert.equal(cat('cache:1', '/count').trim(), '1');
  assert.equal(cat('cache:2', '/count').trim(), '2', 'the second build saw the first build\'s file');
  assert.equal(cat('cache:2', '/owner'), '1000 1001 750\n');
  // The mount point and what was written there are in no layer.
  const paths = layerPaths('cache:2');
  assert.ok(!paths.some((p) => p.includes('var/cache/app') || p.includes('owned')), paths.join(' '));
  assert.equal(sh('cache:2', 'ls -A /var/cache/app 2>/dev/null | wc -l').trim(), '0');
  // A cached step keeps the cache mount's step as it was (the mount's content is not in the key).
  assert.match(buildOk(dir, ['-t', 'cache:3']), /Using cache/);
  plyOk(root, ['builder', 'prune', '-a', '-f']);
  buildOk(dir, ['-t', 'cache:4']);
  assert.equal(cat('cache:4', '/count').trim(), '1', 'builder prune removed the cache mount');
});

test('type=cache sharing: locked waits for the holder, shared does not, private takes an instance nobody holds', async () => {
  // Another build holding the cache is stood in for by flock(1) on the instance's lock file.
  const cacheDir = (id: string) => path.join(root, 'build', 'cache-mounts', createHash('sha256').update(id).digest('hex').slice(0, 32));
  const hold = (lock: string, mode: '-x' | '-s', seconds: number) => {
    fs.mkdirSync(path.dirname(lock), { recursive: true });
    const child = spawn('flock', [mode, lock, '-c', `echo held; sleep ${seconds}`], { stdio: ['ignore', 'pipe', 'inherit'] });
    return new Promise<{ released: Promise<number> }>((resolve) =>
      child.stdout!.once('data', () => resolve({ released: new Promise((r) => child.on('exit', () => r(Date.now() / 1000))) })),
    );
  };
  const df = (sharing: string) =>
    context({ Dockerfile: `FROM busybox\nRUN --mount=type=cache,id=c-${sharing},target=/c,sharing=${sharing} date +%s > /started && touch /c/${sharing}-was-here\n` });
  for (const [sharing, mode] of [['locked', '-x'], ['shared', '-s']] as const) {
    const held = await hold(path.join(cacheDir(`c-${sharing}`), '0', 'lock'), mode, 3);
    const r = await plyAsync(root, ['build', '--network', 'none', '-t', `share:${sharing}`, df(sharing)]);
    assert.equal(r.code, 0, r.stderr);
    const released = await held.released;
    const started = Number(cat(`share:${sharing}`, '/started'));
    if (sharing === 'locked') assert.ok(started >= Math.floor(released), `locked: the RUN started (${started}) once the holder let go (${released})`);
    else assert.ok(started < Math.floor(released), `shared: the RUN ran (${started}) while another held the cache (until ${released})`);
  }
  // private: instance p1 is held, so the RUN gets p2.
  const held = await hold(path.join(cacheDir('c-private'), 'p1', 'lock'), '-x', 2);
  const r = await plyAsync(root, ['build', '--network', 'none', '-t', 'share:private', df('private')]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(fs.existsSync(path.join(cacheDir('c-private'), 'p2', 'data', 'private-was-here')));
  assert.ok(!fs.existsSync(path.join(cacheDir('c-private'), 'p1', 'data', 'private-was-here')));
  await held.released;
});

test('type=secret: file and env forms; the value is in no layer, history, config, save output or key', () => {
  const value = `s3cr3t-${randomBytes(12).toString('hex')}`;
  const secretFile = path.join(tempDir('ply-secret-'), 'token');
  fs.writeFileSync(secretFile, value);
  const dir = context({
    Dockerfile: [
      'FROM busybox',
      'RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /file-len && stat -c "%a %u" /run/secrets/token > /file-mode',
      'RUN --mount=type=secret,id=token,target=/etc/app/tok,mode=0440,uid=1000 stat -c "%a %u" /etc/app/tok > /target-mode',
      'RUN --mount=type=secret,id=envtok,env=TOKEN echo ${#TOKEN} > /env-len',
      'RUN --mount=type=secret,id=absent sh -c "ls /run/secrets 2>&1; true" > /absent.txt',
    ].join('\n'),
  });
  const out = buildOk(dir, ['-t', 'secret:v1', '--secret', `id=token,src=${secretFile}`, '--secret', 'id=envtok,env=MY_TOKEN'], { env: { MY_TOKEN: value } });
  assert.ok(!out.includes(value), 'not in the build output');
  assert.equal(cat('secret:v1', '/file-len').trim(), String(value.length));
  assert.equal(cat('secret:v1', '/file-mode'), '400 0\n');
  assert.equal(cat('secret:v1', '/target-mode'), '440 1000\n');
  assert.equal(cat('secret:v1', '/env-len').trim(), String(value.length));
  assert.doesNotMatch(cat('secret:v1', '/absent.txt'), /absent/, 'an optional secret not given is not mounted');
  // Nowhere in what the image is made of.
  const saved = path.join(tempDir('ply-save-'), 'img.tar');
  plyOk(root, ['save', '-o', saved, 'secret:v1']);
  assert.equal(fs.readFileSync(saved).indexOf(value), -1, 'the secret is not in ply save output');
  const layers = layerPaths('secret:v1');
  assert.ok(!layers.some((p) => p.includes('run/secrets') || p.includes('etc/app/tok')), layers.join(' '));
  const history = plyOk(root, ['history', '--no-trunc', 'secret:v1']);
  assert.ok(!history.includes(value));
  assert.ok(!plyOk(root, ['image', 'inspect', 'secret:v1']).includes(value));
  // Another value gives the same steps (the value is not in the cache key), as buildkit.
  fs.writeFileSync(secretFile, 'another value');
  const again = buildOk(dir, ['-t', 'secret:v2', '--secret', `id=token,src=${secretFile}`, '--secret', 'id=envtok,env=MY_TOKEN'], { env: { MY_TOKEN: 'x' } });
  assert.equal((again.match(/Using cache/g) ?? []).length, 4);
  // required: a missing secret fails the step with one line.
  const req = build(context({ Dockerfile: 'FROM busybox\nRUN --mount=type=secret,id=needed,required true\n' }));
  assert.equal(req.code, 1);
  assert.match(req.stderr, /secret needed: not found/);
  // Bad flags: one line, docker's exit code (buildx parses --secret in its run: a failed command, 1).
  const bad = build(dir, ['--secret', 'id=x,bogus=1']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /unexpected key 'bogus'/);
});

test('type=bind: the context after .dockerignore, read-only unless rw (writes discarded), from a stage or an image; the key follows the content', () => {
  const dir = context({
    Dockerfile: [
      'FROM busybox AS tools',
      'RUN echo from-tools > /tool.txt',
      'FROM busybox',
      'RUN --mount=target=/src cat /src/src/a.txt > /a && ls /src/src > /listing',
      'RUN --mount=type=bind,source=src,target=/s sh -c "touch /s/new 2>/dev/null && echo rw || echo ro" > /ro',
      'RUN --mount=type=bind,source=src,target=/s,rw sh -c "touch /s/new && echo rw" > /rw',
      'RUN --mount=type=bind,from=tools,source=/tool.txt,target=/t cat /t > /got',
      'RUN --mount=type=bind,from=busybox,source=/bin,target=/other-bin test -x /other-bin/busybox && echo image > /img',
    ].join('\n'),
    'src/a.txt': 'content-a\n',
    'src/ignored.txt': 'must not be seen\n',
    '.dockerignore': 'src/ignored.txt\n',
  });
  buildOk(dir, ['-t', 'bind:v1']);
  assert.equal(cat('bind:v1', '/a'), 'content-a\n');
  assert.equal(cat('bind:v1', '/listing'), 'a.txt\n');
  assert.equal(cat('bind:v1', '/ro'), 'ro\n');
  assert.equal(cat('bind:v1', '/rw'), 'rw\n');
  assert.ok(!fs.existsSync(path.join(dir, 'src', 'new')), 'rw writes are discarded');
  assert.equal(cat('bind:v1', '/got'), 'from-tools\n');
  assert.equal(cat('bind:v1', '/img'), 'image\n');
  assert.ok(!layerPaths('bind:v1').some((p) => /^(\.\/)?(src|s|t|other-bin)\//.test(p)));
  // Changing a bound file reruns the steps that bind it; an ignored file changes nothing.
  fs.writeFileSync(path.join(dir, 'src', 'ignored.txt'), 'changed but ignored\n');
  assert.equal((buildOk(dir, ['-t', 'bind:v2']).match(/Using cache/g) ?? []).length, 6);
  fs.writeFileSync(path.join(dir, 'src', 'a.txt'), 'content-b\n');
  const rebuilt = buildOk(dir, ['-t', 'bind:v3']);
  assert.match(rebuilt, /Step 4\/8 : RUN --mount=target=\/src[^\n]*\n ---> Running in/);
  assert.equal(cat('bind:v3', '/a'), 'content-b\n');
  // Errors: a stage defined later, a source that does not exist.
  const later = build(context({ Dockerfile: 'FROM busybox AS first\nRUN --mount=from=after,target=/x true\nFROM busybox AS after\n' }), ['--target', 'first']);
  assert.equal(later.code, 1);
  assert.match(later.stderr, /stage needs to be defined before current command/);
  const missing = build(context({ Dockerfile: 'FROM busybox\nRUN --mount=source=nope,target=/x true\n' }));
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /source "nope" not found in the build context/);
  const parse = build(context({ Dockerfile: 'FROM busybox\nRUN --mount=type=bind,target=/x,uid=1 true\n' }));
  assert.equal(parse.code, 1);
  assert.match(parse.stderr, /uid not allowed for "bind" type mounts/);
});

test('type=tmpfs gives an empty tmpfs whose files stay out of the image; --network none|host; --add-host; --ulimit', () => {
  const dir = context({
    Dockerfile: [
      'FROM busybox',
      'RUN --mount=type=tmpfs,target=/scratch,size=1m sh -c "grep \' /scratch \' /proc/mounts | cut -d\' \' -f3 > /fstype; echo x > /scratch/f"',
      'RUN --network=none sh -c "grep -c : /proc/net/dev" > /ifaces-none',
      'RUN --network=host sh -c "grep -c : /proc/net/dev" > /ifaces-host',
      'RUN grep -c "myhost" /etc/hosts > /hosts; ulimit -n > /nofile; ulimit -Hn > /nofile-hard',
    ].join('\n'),
  });
  buildOk(dir, ['-t', 'misc:v1', '--add-host', 'myhost:10.1.2.3', '--ulimit', 'nofile=1024:2048']);
  assert.equal(cat('misc:v1', '/fstype'), 'tmpfs\n');
  assert.ok(!layerPaths('misc:v1').some((p) => p.includes('scratch')));
  assert.equal(cat('misc:v1', '/ifaces-none'), '1\n', 'only lo');
  // The host's interfaces (other builds add and remove veths meanwhile: more than lo is enough).
  assert.ok(Number(cat('misc:v1', '/ifaces-host')) > 1);
  assert.equal(cat('misc:v1', '/hosts'), '1\n');
  assert.equal(cat('misc:v1', '/nofile'), '1024\n');
  assert.equal(cat('misc:v1', '/nofile-hard'), '2048\n');
  // Never above the caller's own hard limit.
  const hard = execFileSync('sh', ['-c', 'ulimit -Hn']).toString().trim();
  buildOk(context({ Dockerfile: 'FROM busybox\nRUN ulimit -Hn > /h\n' }), ['-t', 'misc:v2', '--ulimit', 'nofile=1024:99999999']);
  assert.equal(cat('misc:v2', '/h').trim(), hard === 'unlimited' ? '99999999' : String(Math.min(Number(hard), 99999999)));
  const bad = build(dir, ['--ulimit', 'nofile=10:5']);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /soft limit must be less than or equal to hard limit/);
  const badHost = build(dir, ['--add-host', 'nohost']);
  assert.equal(badHost.code, 125);
});

test('type=ssh forwards an agent socket (SSH_AUTH_SOCK, mode 0600 by default); a required one not given fails', async () => {
  // A stand-in agent: answers every connection with a fixed line.
  const sockDir = tempDir('ply-ssh-');
  const sock = path.join(sockDir, 'agent.sock');
  const server = net.createServer((c) => c.end('agent-hello\n'));
  await new Promise<void>((r) => server.listen(sock, r));
  try {
    const dir = context({
      Dockerfile: [
        'FROM busybox',
        'RUN --mount=type=ssh sh -c "test -S \\$SSH_AUTH_SOCK && stat -c %a \\$SSH_AUTH_SOCK && echo \\$SSH_AUTH_SOCK" > /ssh',
        'RUN --mount=type=ssh,id=other,target=/agent,mode=0666 --mount=target=/ctx /ctx/unixcat /agent > /said',
      ].join('\n'),
    });
    // busybox has no unix-socket client: a static one, compiled here, talks to the agent from inside the RUN.
    const src = path.join(sockDir, 'unixcat.c');
    fs.writeFileSync(
      src,
      [
        '#include <sys/socket.h>',
        '#include <sys/un.h>',
        '#include <string.h>',
        '#include <unistd.h>',
        'int main(int argc, char **argv) {',
        '  struct sockaddr_un a = { .sun_family = AF_UNIX };',
        '  strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);',
        '  int s = socket(AF_UNIX, SOCK_STREAM, 0);',
        '  if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) return 2;',
        '  char buf[256]; ssize_t n;',
        '  while ((n = read(s, buf, sizeof buf)) > 0) write(1, buf, n);',
        '  return 0;',
        '}',
      ].join('\n'),
    );
    execFileSync('gcc', ['-static', '-O1', '-o', path.join(dir, 'unixcat'), src]);
    const r = await plyAsync(root, ['build', '--network', 'none', '-t', 'ssh:v1', '--ssh', `default=${sock}`, '--ssh', `other=${sock}`, dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(cat('ssh:v1', '/ssh'), '600\n/run/buildkit/ssh_agent.0\n');
    assert.equal(cat('ssh:v1', '/said'), 'agent-hello\n');
    const req = await plyAsync(root, ['build', '--network', 'none', context({ Dockerfile: 'FROM busybox\nRUN --mount=type=ssh,required=true true\n' })]);
    assert.equal(req.code, 1);
    assert.match(req.stderr, /no SSH key "default" forwarded from the client/);
  } finally {
    server.close();
  }
});
