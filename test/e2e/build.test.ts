// End-to-end: `ply build` through bin/ply on the busybox fixture, with runc and overlayfs for RUN.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { buildContext, busyboxTar, ply, plyOk, tempDir, type RunResult } from '../helpers.js';

let root: string;
before(() => {
  root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'busybox:latest']);
});

const context = buildContext;

const build = (dir: string, args: string[] = [], opts: { env?: Record<string, string>; input?: string | Buffer; store?: string } = {}): RunResult =>
  ply(opts.store ?? root, ['build', ...args, dir], opts);

function buildOk(dir: string, args: string[] = [], opts: { env?: Record<string, string>; store?: string } = {}): string {
  const r = build(dir, args, opts);
  if (r.code !== 0) throw new Error(`ply build ${args.join(' ')} ${dir} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

const inspect = (ref: string, store = root) => JSON.parse(plyOk(store, ['image', 'inspect', ref]))[0];
const builtId = (out: string) => /Successfully built ([0-9a-f]{12})/.exec(out)?.[1];
const count = (s: string, needle: string) => s.split(needle).length - 1;
const runIn = (image: string, cmd: string) => plyOk(root, ['run', '--rm', image, 'sh', '-c', cmd]);

test('multi-stage: COPY --from an earlier stage; stages the target does not need are not built', () => {
  const dir = context({
    Dockerfile: [
      'FROM busybox AS builder',
      'WORKDIR /src',
      'COPY main.txt .',
      'RUN mkdir /out && tr a-z A-Z < main.txt > /out/result.txt',
      '',
      'FROM busybox AS unused',
      'RUN echo this stage must not run && exit 1',
      '',
      'FROM busybox',
      'COPY --from=builder /out/result.txt /app/result.txt',
      'COPY --from=0 /src/main.txt /app/',
      'CMD ["cat", "/app/result.txt", "/app/main.txt"]',
    ].join('\n'),
    'main.txt': 'hello build\n',
  });
  const out = buildOk(dir, ['-t', 'multi:v1']);
  assert.match(out, /^Step 1\/8 : FROM busybox AS builder$/m, 'only the needed stages count: 4 + 4 steps');
  assert.doesNotMatch(out, /must not run/);
  assert.match(out, /^Successfully tagged multi:v1$/m);
  assert.equal(plyOk(root, ['run', '--rm', 'multi:v1']), 'HELLO BUILD\nhello build\n');
  // The final image is busybox plus two COPY layers; the builder stage's layers are not in it.
  assert.equal(inspect('multi:v1').RootFS.Layers.length, 3);
  assert.deepEqual(inspect('multi:v1').RootFS.Layers.slice(0, 1), inspect('busybox').RootFS.Layers);
});

test('.dockerignore: patterns with ** and ! exceptions; the Dockerfile-specific ignore file wins', () => {
  const dir = context({
    Dockerfile: 'FROM busybox\nCOPY . /ctx/\nRUN cd /ctx && find . -type f | sort > /files.txt\n',
    '.dockerignore': '# comment\nnode_modules\n**/*.log\n*.md\n!README.md\nsecret/\n',
    'README.md': 'keep me\n',
    'NOTES.md': 'drop me\n',
    'app.js': 'js\n',
    'debug.log': 'x\n',
    'deep/er/trace.log': 'x\n',
    'deep/er/data.txt': 'data\n',
    'node_modules/pkg/index.js': 'x\n',
    'secret/key': 'x\n',
  });
  buildOk(dir, ['-t', 'ignored:v1']);
  assert.equal(runIn('ignored:v1', 'cat /files.txt'), './.dockerignore\n./Dockerfile\n./README.md\n./app.js\n./deep/er/data.txt\n');
  // Dockerfile.dockerignore next to the Dockerfile replaces .dockerignore.
  fs.writeFileSync(path.join(dir, 'Dockerfile.dockerignore'), '*\n!app.js\n');
  buildOk(dir, ['-t', 'ignored:v2', '-f', path.join(dir, 'Dockerfile')]);
  assert.equal(runIn('ignored:v2', 'cat /files.txt'), './app.js\n');
});

test('WORKDIR, ENV, LABEL, EXPOSE, CMD, ENTRYPOINT, USER, VOLUME, STOPSIGNAL and --label land in the config', () => {
  const dir = context({
    Dockerfile: [
      'FROM busybox',
      'ARG GREETING=hello',
      'ENV APP_HOME=/srv/app MODE="production mode"',
      'WORKDIR $APP_HOME',
      'WORKDIR sub',
      'LABEL org.example.name="demo app" org.example.greeting=$GREETING',
      'EXPOSE 8080 9090/udp',
      'USER app',
      'VOLUME ["/data"]',
      'STOPSIGNAL SIGINT',
      'ENTRYPOINT ["/bin/sh", "-c"]',
      'CMD ["pwd; echo $MODE; id -u"]',
    ].join('\n'),
  });
  buildOk(dir, ['-t', 'config:v1', '--label', 'extra=yes']);
  const c = inspect('config:v1').Config;
  assert.equal(c.WorkingDir, '/srv/app/sub');
  assert.deepEqual(c.Env, ['APP_HOME=/srv/app', 'MODE=production mode']);
  assert.deepEqual(c.Labels, { 'org.example.name': 'demo app', 'org.example.greeting': 'hello', extra: 'yes' });
  assert.deepEqual(c.ExposedPorts, { '8080/tcp': {}, '9090/udp': {} });
  assert.equal(c.User, 'app');
  assert.deepEqual(c.Volumes, { '/data': {} });
  assert.equal(c.StopSignal, 'SIGINT');
  assert.deepEqual(c.Entrypoint, ['/bin/sh', '-c']);
  assert.deepEqual(c.Cmd, ['pwd; echo $MODE; id -u']);
  // WORKDIR made its directory (in a layer of its own, owned by nobody special: USER came later).
  assert.equal(plyOk(root, ['run', '--rm', 'config:v1']), '/srv/app/sub\nproduction mode\n1000\n');
  const history = plyOk(root, ['history', '--no-trunc', '--format', '{{.CreatedBy}}', 'config:v1']);
  assert.match(history, /^ENV APP_HOME=\/srv\/app MODE=production mode$/m);
  assert.match(history, /^LABEL org.example.name=demo app org.example.greeting=hello$/m);
  assert.match(history, /^WORKDIR \/srv\/app\/sub$/m);
});

test('a fully cached rebuild runs nothing and yields the same image ID; --no-cache runs everything again', () => {
  const dir = context({
    Dockerfile: 'FROM busybox\nCOPY app.txt /app/\nRUN cat /proc/sys/kernel/random/uuid > /stamp\nENV A=1\nCMD ["cat", "/stamp"]\n',
    'app.txt': 'v1\n',
  });
  const first = buildOk(dir, ['-t', 'cached:v1']);
  assert.equal(count(first, ' ---> Running in '), 1);
  const stamp = plyOk(root, ['run', '--rm', 'cached:v1']);
  const again = buildOk(dir, ['-t', 'cached:v1']);
  assert.equal(count(again, ' ---> Using cache'), 4, 'every step after FROM');
  assert.equal(count(again, 'Running in'), 0, 'no container ran');
  assert.equal(builtId(again), builtId(first));
  assert.equal(plyOk(root, ['run', '--rm', 'cached:v1']), stamp, 'the RUN did not run again');
  // -q prints the full ID only; --iidfile writes it.
  const iid = path.join(tempDir(), 'iid');
  const quiet = buildOk(dir, ['-q', '--iidfile', iid]);
  assert.match(quiet, /^sha256:[0-9a-f]{64}\n$/);
  assert.equal(quiet.slice(7, 19), builtId(first));
  assert.equal(fs.readFileSync(iid, 'utf8'), quiet.trim());

  const fresh = buildOk(dir, ['--no-cache', '-t', 'cached:v2']);
  assert.equal(count(fresh, 'Using cache'), 0);
  assert.equal(count(fresh, ' ---> Running in '), 1);
  assert.notEqual(builtId(fresh), builtId(first));
  assert.notEqual(plyOk(root, ['run', '--rm', 'cached:v2']), stamp);
});

test('changing one COPY source rebuilds only the steps after it; touch without a change keeps the cache', () => {
  const dir = context({
    Dockerfile: 'FROM busybox\nCOPY a.txt /a.txt\nRUN cat /proc/sys/kernel/random/uuid > /stamp1\nCOPY b.txt /b.txt\nRUN cat /proc/sys/kernel/random/uuid > /stamp2\n',
    'a.txt': 'a\n',
    'b.txt': 'b\n',
  });
  buildOk(dir, ['-t', 'layers:v1']);
  const v1 = inspect('layers:v1').RootFS.Layers as string[];
  assert.equal(v1.length, 5);
  // touch: new mtime, same content → everything cached, same image.
  const later = new Date(Date.now() + 60_000);
  fs.utimesSync(path.join(dir, 'b.txt'), later, later);
  fs.utimesSync(path.join(dir, 'a.txt'), later, later);
  const touched = buildOk(dir, ['-t', 'layers:touched']);
  assert.equal(count(touched, 'Using cache'), 4);
  assert.equal(inspect('layers:touched').Id, inspect('layers:v1').Id);
  // A content change in b.txt: steps 2-3 cached, 4-5 rebuilt.
  fs.writeFileSync(path.join(dir, 'b.txt'), 'b changed\n');
  const changed = buildOk(dir, ['-t', 'layers:v2']);
  const steps = changed.split(/^Step /m).slice(1);
  assert.deepEqual(
    steps.map((s) => s.includes('Using cache')),
    [false, true, true, false, false],
  );
  const v2 = inspect('layers:v2').RootFS.Layers as string[];
  assert.deepEqual(v2.slice(0, 3), v1.slice(0, 3), 'the lower layers are the same diffIDs');
  assert.notEqual(v2[3], v1[3]);
  assert.notEqual(v2[4], v1[4]);
  assert.equal(runIn('layers:v2', 'cat /b.txt'), 'b changed\n');
  // A mode change is a change.
  fs.chmodSync(path.join(dir, 'a.txt'), 0o755);
  const chmodded = buildOk(dir, ['-t', 'layers:v3']);
  assert.equal(count(chmodded, 'Using cache'), 0);
});

test('--build-arg: global ARG in FROM, ARG defaults, scope per stage, cache keyed by the value', () => {
  const dir = context({
    Dockerfile: [
      'ARG BASE=busybox',
      'ARG VERSION=1.0',
      'FROM ${BASE}:latest AS first',
      'ARG VERSION',
      'ARG FLAVOR=plain',
      'RUN echo "version=$VERSION flavor=$FLAVOR" > /info',
      'FROM busybox AS second',
      'RUN echo "second stage sees [$VERSION]" > /scope',
      'FROM busybox',
      'COPY --from=first /info /info',
      'COPY --from=second /scope /scope',
    ].join('\n'),
  });
  buildOk(dir, ['-t', 'args:default']);
  assert.equal(runIn('args:default', 'cat /info /scope'), 'version=1.0 flavor=plain\nsecond stage sees []\n');
  const custom = build(dir, ['-t', 'args:custom', '--build-arg', 'VERSION=2.5', '--build-arg', 'FLAVOR=spicy', '--build-arg', 'UNUSED=1']);
  assert.equal(custom.code, 0, custom.stderr);
  assert.match(custom.stderr, /\[Warning\] One or more build-args \[UNUSED\] were not consumed/);
  assert.equal(runIn('args:custom', 'cat /info /scope'), 'version=2.5 flavor=spicy\nsecond stage sees []\n');
  const steps = custom.stdout.split(/^Step /m).slice(1);
  assert.ok(!steps[3]!.includes('Using cache'), 'the RUN that sees the args ran again');
  assert.ok(steps[5]!.includes('Using cache'), 'the stage that does not declare them stayed cached');
  buildOk(dir, ['--target', 'first', '-t', 'args:first', '--build-arg', 'VERSION=2.5']);
  const history = plyOk(root, ['history', '--no-trunc', '--format', '{{.CreatedBy}}', 'args:first']);
  assert.match(history, /^RUN \|2 VERSION=2\.5 FLAVOR=plain \/bin\/sh -c echo "version=\$VERSION flavor=\$FLAVOR" > \/info # buildkit$/m);
});

test('--target builds the named stage and what it needs; an unknown target is an error', () => {
  const dir = context({
    Dockerfile: 'FROM busybox AS base\nRUN echo base > /base\nFROM base AS test\nRUN echo test > /test\nFROM base AS release\nRUN echo release > /release\n',
  });
  const out = buildOk(dir, ['--target', 'test', '-t', 'target:test']);
  assert.match(out, /Step 4\/4 : RUN echo test/);
  assert.doesNotMatch(out, /release/);
  assert.equal(runIn('target:test', 'cat /base /test; ls /release 2>/dev/null || echo no-release'), 'base\ntest\nno-release\n');
  const bad = build(dir, ['--target', 'nope', '-t', 'target:nope']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /failed to reach build target nope in Dockerfile/);
});

test('heredocs: RUN with a script, RUN with a shebang, COPY creating a file', () => {
  const dir = context({
    Dockerfile: [
      'FROM busybox',
      'ARG WHO=world',
      'RUN <<EOF',
      'set -e',
      'mkdir -p /opt/out',
      'echo "line one" > /opt/out/script.txt',
      'echo "hello $WHO" >> /opt/out/script.txt',
      'EOF',
      'RUN <<EOT',
      '#!/bin/sh',
      'echo "from a shebang script" > /opt/out/shebang.txt',
      'EOT',
      'COPY <<-EOF /opt/out/conf.ini',
      '\t[main]',
      '\twho=${WHO}',
      '\tEOF',
      'RUN cat /opt/out/script.txt /opt/out/shebang.txt /opt/out/conf.ini',
    ].join('\n'),
  });
  const out = buildOk(dir, ['-t', 'heredoc:v1']);
  assert.match(out, /line one\nhello world\nfrom a shebang script\n\[main\]\nwho=world\n/);
});

test('ADD extracts local archives; COPY --chown and --chmod set owners and modes', () => {
  const src = tempDir();
  fs.mkdirSync(path.join(src, 'pkg', 'bin'), { recursive: true });
  fs.writeFileSync(path.join(src, 'pkg', 'bin', 'tool'), 'tool\n');
  const dir = context({
    Dockerfile: 'FROM busybox\nADD pkg.tar.gz /opt/\nADD plain.txt /opt/plain.txt\nCOPY --chown=app:app --chmod=0640 plain.txt /home/app/owned.txt\nCOPY --chown=1234 plain.txt /numeric\n',
    'plain.txt': 'plain\n',
  });
  execFileSync('tar', ['-czf', path.join(dir, 'pkg.tar.gz'), '-C', src, 'pkg']);
  buildOk(dir, ['-t', 'add:v1']);
  assert.equal(runIn('add:v1', 'cat /opt/pkg/bin/tool /opt/plain.txt; stat -c "%u:%g %a" /home/app/owned.txt /numeric'), 'tool\nplain\n1000:1000 640\n1234:1234 644\n');
});

test('ONBUILD triggers run in the child build, not in the image that declares them', () => {
  const parent = context({ Dockerfile: 'FROM busybox\nONBUILD RUN echo triggered > /from-trigger\n' });
  buildOk(parent, ['-t', 'onbuild:parent']);
  assert.deepEqual(inspect('onbuild:parent').Config.OnBuild, ['RUN echo triggered > /from-trigger']);
  const child = buildOk(context({ Dockerfile: 'FROM onbuild:parent\nRUN cat /from-trigger\n' }), ['-t', 'onbuild:child']);
  assert.match(child, /# Executing 1 build trigger/);
  assert.match(child, /triggered/);
  assert.equal(inspect('onbuild:child').Config.OnBuild, null);
});

test('errors: unknown instruction, failing RUN, missing COPY source, unknown stage — nothing tagged, cached steps kept', () => {
  const parse = build(context({ Dockerfile: 'FROM busybox\nRUN echo hi\nFORM x\n' }), ['-t', 'err:parse']);
  assert.equal(parse.code, 1);
  assert.match(parse.stderr, /dockerfile parse error on line 3: unknown instruction: FORM/);
  assert.equal(parse.stdout, '', 'nothing ran');

  const dir = context({ Dockerfile: 'FROM busybox\nRUN echo step-two > /two\nRUN echo last words; exit 3\n' });
  const failing = build(dir, ['-t', 'err:run']);
  assert.equal(failing.code, 3, "docker: the failing RUN's code");
  assert.match(failing.stderr, /^The command '\/bin\/sh -c echo last words; exit 3' returned a non-zero code: 3$/m);
  assert.match(failing.stdout, /last words/);
  const quiet = build(dir, ['-q', '-t', 'err:run']);
  assert.equal(quiet.code, 3);
  assert.match(quiet.stderr, /last words\nThe command/, '-q shows the last output lines with the error');
  assert.equal(ply(root, ['image', 'inspect', 'err:run']).code, 1, 'nothing tagged');
  assert.equal(plyOk(root, ['ps', '-a', '-q']), '', 'no container left behind');
  fs.writeFileSync(path.join(dir, 'Dockerfile'), 'FROM busybox\nRUN echo step-two > /two\nRUN echo fixed\n');
  const fixed = buildOk(dir, ['-t', 'err:run']);
  assert.match(fixed, /Step 2\/3 : RUN echo step-two > \/two\n ---> Using cache/, 'the step before the failure was kept');

  const missing = build(context({ Dockerfile: 'FROM busybox\nCOPY nope /x\n' }), ['-t', 'err:copy']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^COPY failed: file not found in build context or excluded by \.dockerignore: stat nope: file does not exist$/m);

  const stage = build(context({ Dockerfile: 'FROM busybox\nCOPY --from=nosuchstage /x /y\n' }), ['-t', 'err:stage']);
  assert.equal(stage.code, 1);
  assert.match(stage.stderr, /invalid from flag value nosuchstage: no build stage or image named "nosuchstage"/);
  // ADD of a URL that cannot be fetched (.invalid never resolves): one clear line.
  const url = build(context({ Dockerfile: 'FROM busybox\nADD http://example.invalid/file.txt /x\n' }), ['-t', 'err:url']);
  assert.equal(url.code, 1);
  assert.match(url.stderr, /^ADD failed: cannot download http:\/\/example\.invalid\/file\.txt: /m);
  for (const t of ['err:parse', 'err:copy', 'err:stage', 'err:url']) assert.equal(ply(root, ['image', 'inspect', t]).code, 1, t);
});

test('SOURCE_DATE_EPOCH: the same Dockerfile and context give the same image ID in another store', () => {
  const dir = context({
    Dockerfile: 'FROM busybox\nCOPY . /app/\nRUN echo built > /app/out.txt\nENV X=1\n',
    'src.txt': 'source\n',
  });
  const env = { SOURCE_DATE_EPOCH: '1700000000' };
  // Two machines with the same base image (imported reproducibly too).
  const [one, other] = [tempDir(), tempDir()];
  for (const store of [one, other]) plyOk(store, ['import', busyboxTar(), 'busybox:latest'], { env });
  const a = buildOk(dir, ['-q'], { env, store: one });
  // A later checkout: other mtimes, same content.
  const later = new Date(Date.now() + 3600_000);
  fs.utimesSync(path.join(dir, 'src.txt'), later, later);
  const b = buildOk(dir, ['-q'], { env, store: other });
  assert.equal(a, b);
  assert.equal(inspect(a.trim(), one).Created, '2023-11-14T22:13:20Z');
});

test('SOURCE_DATE_EPOCH as --build-arg: clamps the config, history and new files; a store that built without it first gets the same ID', () => {
  const dir = context({
    Dockerfile: 'FROM busybox\nCOPY src.txt /app/\nRUN echo built > /app/out.txt && mkdir /app/d\nENV X=1\n',
    'src.txt': 'source\n',
  });
  const importEnv = { SOURCE_DATE_EPOCH: '1700000000' };
  const [one, other] = [tempDir(), tempDir()];
  for (const store of [one, other]) plyOk(store, ['import', busyboxTar(), 'busybox:latest'], { env: importEnv });
  const arg = ['--build-arg', 'SOURCE_DATE_EPOCH=1600000000'];
  // `other` has the steps cached from a build without the epoch: they must not be reused (their times are now).
  buildOk(dir, ['-q', '--network', 'none'], { store: other });
  const a = buildOk(dir, ['-q', '--network', 'none', ...arg], { store: one }).trim();
  const b = buildOk(dir, ['-q', '--network', 'none', ...arg], { store: other }).trim();
  assert.equal(a, b);
  const img = inspect(a, one);
  assert.equal(img.Created, '2020-09-13T12:26:40Z');
  // Files the build wrote (RUN, COPY) carry the epoch; the base image's files keep theirs.
  const times = plyOk(one, ['run', '--rm', '--network', 'none', a, 'stat', '-c', '%Y %n', '/app/out.txt', '/app/d', '/app/src.txt', '/app']);
  assert.deepEqual(times.trim().split('\n'), ['1600000000 /app/out.txt', '1600000000 /app/d', '1600000000 /app/src.txt', '1600000000 /app']);
  const history = JSON.parse(plyOk(one, ['image', 'history', '--no-trunc', '--format', '{{json .}}', a]).trim().split('\n')[0]!);
  assert.match(JSON.stringify(history), /2020-09-13/);
  // The environment's value gives the same image as the --build-arg one; a bad value is one line, exit 1.
  assert.equal(buildOk(dir, ['-q', '--network', 'none'], { store: one, env: { SOURCE_DATE_EPOCH: '1600000000' } }).trim(), a);
  const bad = build(dir, ['--build-arg', 'SOURCE_DATE_EPOCH=yesterday'], { store: one });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^invalid SOURCE_DATE_EPOCH 'yesterday': expected whole seconds since the epoch$/m);
});

test('the build cache survives image prune consistently and builder prune empties it', () => {
  const dir = context({ Dockerfile: 'FROM busybox\nRUN echo pruned > /p\nLABEL stage=one\n' });
  buildOk(dir); // untagged: its last step is a dangling image
  plyOk(root, ['image', 'prune', '-f']);
  const afterImagePrune = buildOk(dir);
  assert.match(afterImagePrune, /Step 2\/3 : RUN echo pruned > \/p\n ---> Using cache/, 'the RUN step is still cached');
  assert.match(afterImagePrune, /Step 3\/3 : LABEL stage=one\n ---> [0-9a-f]{12}/, 'the pruned step was rebuilt');
  buildOk(dir, ['-t', 'prune:v1']);
  const pruned = plyOk(root, ['builder', 'prune', '-a', '-f']);
  assert.match(pruned, /Total reclaimed space/);
  const rebuilt = buildOk(dir, ['-t', 'prune:v1']);
  assert.equal(count(rebuilt, 'Using cache'), 0);
  assert.equal(plyOk(root, ['run', '--rm', 'prune:v1', 'cat', '/p']), 'pruned\n');
});

test('build contexts from stdin: a Dockerfile alone, a tar, and -f - with a directory', () => {
  const alone = ply(root, ['build', '-t', 'stdin:df', '-'], { input: 'FROM busybox\nRUN echo from-stdin > /s\n' });
  assert.equal(alone.code, 0, alone.stderr);
  const ctx = context({ Dockerfile: 'FROM busybox\nCOPY hello.txt /\n', 'hello.txt': 'hi from tar\n' });
  const tar = execFileSync('tar', ['-cf', '-', '-C', ctx, '.']);
  const fromTar = ply(root, ['build', '-t', 'stdin:tar', '-'], { input: tar });
  assert.equal(fromTar.code, 0, fromTar.stderr);
  assert.equal(plyOk(root, ['run', '--rm', 'stdin:tar', 'cat', '/hello.txt']), 'hi from tar\n');
  const dashF = ply(root, ['build', '-f', '-', '-t', 'stdin:f', ctx], { input: 'FROM busybox\nCOPY hello.txt /copied\n' });
  assert.equal(dashF.code, 0, dashF.stderr);
});
