// End-to-end: BuildKit's everyday build options through bin/ply: --progress plain with BuildKit's step numbering,
// --explain-cache naming what changed, URL contexts (a tar.gz and a plain Dockerfile served on 127.0.0.1),
// --platform (the native one builds, another is one clear line) and --label.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { buildContext, busyboxTar, ply, plyAsync, plyOk, tempDir } from '../helpers.js';

let root: string;
before(() => {
  root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'busybox:latest']);
});

const context = buildContext;

function build(dir: string, args: string[], store = root) {
  return ply(store, ['build', '--network', 'none', ...args, dir]);
}

const MULTI = [
  'FROM busybox AS build',
  'WORKDIR /src',
  'COPY a.txt .',
  'ENV GREETING=hi',
  'RUN echo "$GREETING from build" && cat a.txt > out',
  'FROM busybox',
  'COPY --from=build /src/out /out',
  'LABEL stage=final',
].join('\n');

test('--progress plain: BuildKit vertices per stage ([build 2/4], [stage-1 1/2]), timed output, CACHED, the export step; on stderr', () => {
  const dir = context({ Dockerfile: MULTI, 'a.txt': 'alpha\n' });
  const r = build(dir, ['--progress', 'plain', '-t', 'plain:v1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '', 'BuildKit styles print the progress on stderr');
  const e = r.stderr;
  const labels = [...e.matchAll(/^#(\d+) (\[.*)$/gm)].map((m) => `#${m[1]} ${m[2]}`);
  assert.deepEqual(labels, [
    '#1 [build 1/4] FROM docker.io/library/busybox:latest',
    '#2 [build 2/4] WORKDIR /src',
    '#3 [build 3/4] COPY a.txt .',
    '#4 [build 4/4] RUN echo "$GREETING from build" && cat a.txt > out',
    '#5 [stage-1 1/2] FROM docker.io/library/busybox:latest',
    '#6 [stage-1 2/2] COPY --from=build /src/out /out',
  ]);
  // ENV and LABEL are no steps of their own; the RUN's output lines carry their time.
  assert.doesNotMatch(e, /ENV GREETING|LABEL stage/);
  assert.match(e, /^#4 \d+\.\d{3} hi from build$/m);
  assert.match(e, /^#4 DONE \d+\.\ds$/m);
  assert.match(e, /^#7 exporting to image\n#7 writing image sha256:[0-9a-f]{64} done\n#7 naming to docker\.io\/library\/plain:v1 done\n#7 DONE /m);
  // Again: every step CACHED.
  const again = build(dir, ['--progress', 'plain']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal((again.stderr.match(/^#\d+ CACHED$/gm) ?? []).length, 4, again.stderr);
  // One stage: no stage name in the labels, and the number is padded as BuildKit pads it.
  const single = context({ Dockerfile: ['FROM busybox', ...Array.from({ length: 10 }, (_, i) => `RUN echo ${i} > /f${i}`)].join('\n') });
  const s = build(single, ['--progress', 'plain']);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stderr, /^#1 \[ 1\/11\] FROM docker\.io\/library\/busybox:latest$/m);
  assert.match(s.stderr, /^#11 \[11\/11\] RUN echo 9 > \/f9$/m);
  // --progress tty: the same numbering in BuildKit's view (not a terminal here: the final view, then the export).
  const tty = build(dir, ['--progress', 'tty', '-t', 'plain:v2']);
  assert.equal(tty.code, 0, tty.stderr);
  assert.match(tty.stderr, / => CACHED \[build 4\/4\] RUN echo "\$GREETING from build"/);
  assert.match(tty.stderr, /\[\+\] Building [\d.]+s \(6\/6\) FINISHED/);
  assert.match(tty.stderr, / => exporting to image\n => => writing image sha256:[0-9a-f]{64}\n => => naming to docker\.io\/library\/plain:v2\n/);
  // A failing step ends with ERROR and the classic one-line message.
  const bad = build(context({ Dockerfile: 'FROM busybox\nRUN echo doomed; exit 3\n' }), ['--progress', 'plain']);
  assert.equal(bad.code, 3, 'the failing RUN\'s own code, as docker\'s');
  assert.match(bad.stderr, /^#2 \d+\.\d{3} doomed\n#2 ERROR$/m);
  assert.match(bad.stderr, /returned a non-zero code: 3/);
});

test('--explain-cache: each step that runs says why it missed', () => {
  // A store of its own: nothing else cached on the base image.
  const store = tempDir();
  plyOk(store, ['import', busyboxTar(), 'busybox:latest']);
  const build = (d: string, args: string[]) => ply(store, ['build', '--network', 'none', ...args, d]);
  const dir = context({ Dockerfile: 'FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b\nARG V=1\nRUN echo $V > /v\n', 'a.txt': 'one\n' });
  const first = build(dir, ['--explain-cache']);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /Step 2\/5 : COPY a\.txt \/a\.txt\n ---> Cache miss: nothing is cached on its parent image [0-9a-f]{12}/);
  assert.match(first.stdout, /Step 3\/5 : RUN cat \/a\.txt > \/b\n ---> Cache miss: the step before it ran again/);
  // Nothing changed: nothing to explain.
  assert.doesNotMatch(build(dir, ['--explain-cache']).stdout, /Cache miss/);
  // The file changed: the COPY names its sources; the RUN after it follows its parent.
  fs.writeFileSync(path.join(dir, 'a.txt'), 'two\n');
  const changed = build(dir, ['--explain-cache']);
  assert.match(changed.stdout, /Step 2\/5 : COPY a\.txt \/a\.txt\n ---> Cache miss: changed: the files it copies/);
  // A build arg's value: the ARG step's history line (`ARG V=2`) differs from the cached one.
  const arg = build(dir, ['--explain-cache', '--build-arg', 'V=2']);
  assert.match(arg.stdout, /Step 4\/5 : ARG V=1\n ---> Cache miss: no step with this instruction is cached on its parent \(there: "ARG V=1"\)/);
  // A RUN whose command changed, on a parent that has other steps cached.
  fs.writeFileSync(path.join(dir, 'Dockerfile'), 'FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt /a.txt > /b\n');
  const edited = build(dir, ['--explain-cache']);
  assert.match(edited.stdout, /Step 3\/3 : RUN cat \/a\.txt \/a\.txt > \/b\n ---> Cache miss: no step with this instruction is cached on its parent \(there: "RUN \/bin\/sh -c cat \/a\.txt > \/b # buildkit"\)/);
  assert.match(build(dir, ['--explain-cache', '--no-cache']).stdout, /Cache miss: cache disabled \(--no-cache\)/);
});

let server: http.Server;
let base: string;
const served = new Map<string, { type: string; body: Buffer }>();
before(async () => {
  server = http.createServer((req, res) => {
    const f = served.get(req.url ?? '');
    if (!f) {
      res.writeHead(404).end('not here');
      return;
    }
    res.writeHead(200, { 'content-type': f.type, 'content-length': f.body.length }).end(f.body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => server.close());

test('URL contexts: a tar.gz URL is the context (-f inside it), a plain Dockerfile URL builds with an empty context; errors are one line', async () => {
  const ctx = context({ 'Dockerfile.app': 'FROM busybox\nCOPY msg.txt /msg.txt\n', 'msg.txt': 'from a tarball\n' });
  served.set('/ctx.tar.gz', { type: 'application/gzip', body: execFileSync('tar', ['-czf', '-', '-C', ctx, '.']) });
  served.set('/Dockerfile', { type: 'text/plain', body: Buffer.from('FROM busybox\nRUN echo from a URL > /u\n') });
  // plyAsync: the server runs in this process.
  const t = await plyAsync(root, ['build', '--network', 'none', '-f', 'Dockerfile.app', '-t', 'url:tar', `${base}/ctx.tar.gz`]);
  assert.equal(t.code, 0, t.stderr);
  assert.equal(plyOk(root, ['run', '--rm', '--network', 'none', 'url:tar', 'cat', '/msg.txt']), 'from a tarball\n');
  const d = await plyAsync(root, ['build', '--network', 'none', '-t', 'url:df', `${base}/Dockerfile`]);
  assert.equal(d.code, 0, d.stderr);
  assert.equal(plyOk(root, ['run', '--rm', '--network', 'none', 'url:df', 'cat', '/u']), 'from a URL\n');
  const missing = await plyAsync(root, ['build', `${base}/nothing.tar`]);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /unable to download remote context .*nothing\.tar: 404/);
  assert.equal(missing.stderr.trim().split('\n').length, 1);
  const git = ply(root, ['build', 'https://example.invalid/repo.git']);
  assert.match(git.stderr, /not from git repositories/);
});

test('--platform: the native platform builds; another is one clear line naming the emulator it needs; --label lands in the config', () => {
  const dir = context({ Dockerfile: 'FROM busybox\nRUN echo p > /p\n' });
  const arch = process.arch === 'arm64' ? 'arm64' : 'amd64';
  const other = arch === 'amd64' ? 'linux/arm64' : 'linux/amd64';
  const native = build(dir, ['-q', '--platform', `linux/${arch}`, '--label', 'team=build', '--label', 'tier=one']);
  assert.equal(native.code, 0, native.stderr);
  const cfg = JSON.parse(plyOk(root, ['image', 'inspect', native.stdout.trim()]))[0];
  assert.equal(cfg.Architecture, arch);
  assert.deepEqual(cfg.Config.Labels, { team: 'build', tier: 'one' });
  const emulated = fs.existsSync(`/proc/sys/fs/binfmt_misc/qemu-${arch === 'amd64' ? 'aarch64' : 'x86_64'}`);
  if (!emulated) {
    const r = build(dir, ['--platform', other]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^cannot build for ${other}: ply builds for the native platform \\(linux/${arch}\\) unless an emulator`, 'm'));
  }
  const two = build(dir, ['--platform', `linux/${arch},${other}`]);
  assert.equal(two.code, 1);
  assert.match(two.stderr, /ply builds one platform at a time/);
});
