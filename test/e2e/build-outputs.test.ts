// End-to-end: build outputs (-o type=local|tar|oci|docker, -o -, -o DIR, --load) read by peers: GNU tar, skopeo,
// umoci, podman (load and run) and docker 20.10 (load and run).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { busyboxTar, PLY, ply, plyOk, tempDir } from '../helpers.js';
import { podmanPeer, startDockerd } from '../push-peer.js';

let root: string;
let ctx: string;
let docker: Awaited<ReturnType<typeof startDockerd>> | undefined;
before(() => {
  root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'busybox:latest']);
  ctx = tempDir('ply-build-ctx-');
  fs.writeFileSync(
    path.join(ctx, 'Dockerfile'),
    [
      'FROM busybox',
      'COPY app.txt /app/app.txt',
      'RUN echo built > /app/out.txt && chown 1000:1000 /app/out.txt && rm /bin/vi',
      'CMD ["cat", "/app/out.txt", "/app/app.txt"]',
    ].join('\n'),
  );
  fs.writeFileSync(path.join(ctx, 'app.txt'), 'from the context\n');
});
after(async () => {
  await docker?.stop();
});

const build = (args: string[]) => ply(root, ['build', '--network', 'none', ...args, ctx]);
function buildOk(args: string[]): string {
  const r = build(args);
  if (r.code !== 0) throw new Error(`ply build ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}
const builtId = (out: string) => /Successfully built ([0-9a-f]{12})/.exec(out)![1]!;

test('type=local and -o DIR write the final filesystem (owners kept, deleted files gone); nothing is tagged without --load', () => {
  const dest = path.join(tempDir('ply-out-'), 'rootfs');
  buildOk(['-t', 'out:local', '-o', `type=local,dest=${dest}`]);
  assert.equal(fs.readFileSync(path.join(dest, 'app', 'out.txt'), 'utf8'), 'built\n');
  assert.equal(fs.readFileSync(path.join(dest, 'app', 'app.txt'), 'utf8'), 'from the context\n');
  assert.equal(fs.statSync(path.join(dest, 'app', 'out.txt')).uid, 1000);
  assert.ok(fs.existsSync(path.join(dest, 'bin', 'busybox')));
  assert.ok(!fs.existsSync(path.join(dest, 'bin', 'vi')), 'the RUN deleted it');
  assert.equal(ply(root, ['image', 'inspect', 'out:local']).code, 1, '-o without --load tags nothing');
  // The docker CLI's shorthand, and --load alongside: both the directory and the tag.
  const short = path.join(tempDir('ply-out-'), 'short');
  buildOk(['-t', 'out:loaded', '-o', short, '--load']);
  assert.equal(fs.readFileSync(path.join(short, 'app', 'out.txt'), 'utf8'), 'built\n');
  assert.equal(plyOk(root, ['run', '--rm', '--network', 'none', 'out:loaded']), 'built\nfrom the context\n');
});

test('type=tar to a file and -o - to stdout: a tar GNU tar reads; the progress goes to stderr', () => {
  const file = path.join(tempDir('ply-out-'), 'fs.tar');
  buildOk(['-o', `type=tar,dest=${file}`]);
  const names = execFileSync('tar', ['-tf', file]).toString().split('\n');
  assert.ok(names.includes('app/out.txt') || names.includes('./app/out.txt'), names.slice(0, 20).join(' '));
  assert.ok(!names.some((n) => n.endsWith('bin/vi')));
  assert.ok(!names.some((n) => n.includes('.wh.')), 'no whiteouts: the merged tree');
  assert.equal(execFileSync('tar', ['-xOf', file, names.find((n) => n.endsWith('app/out.txt'))!]).toString(), 'built\n');
  const r = spawnSync(PLY, ['build', '--network', 'none', '-o', '-', ctx], { env: { ...process.env, PLY_ROOT: root }, maxBuffer: 64 << 20});
  assert.equal(r.status, 0, r.stderr.toString());
  assert.match(r.stderr.toString(), /Step 1\/4 : FROM busybox/);
  assert.match(r.stderr.toString(), /Successfully built/);
  const piped = path.join(tempDir('ply-out-'), 'piped.tar');
  fs.writeFileSync(piped, r.stdout);
  assert.deepEqual(execFileSync('tar', ['-tf', piped]).toString(), execFileSync('tar', ['-tf', file]).toString());
  // buildx checks -o in its run (not as a flag type): a failed command, 1.
  const bad = build(['-o', 'type=tar']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /dest is required for tar exporter/);
  const unknown = build(['-o', 'type=s3,dest=x']);
  assert.equal(unknown.code, 1);
});

test('type=oci and type=docker archives: skopeo inspects them, umoci unpacks the OCI one, podman loads and runs both', () => {
  const dir = tempDir('ply-out-');
  const oci = path.join(dir, 'img-oci.tar');
  const dock = path.join(dir, 'img-docker.tar');
  const id = builtId(buildOk(['-t', 'example.com/team/app:v1', '-o', `type=oci,dest=${oci}`, '-o', `type=docker,dest=${dock}`]));
  const viaOci = JSON.parse(execFileSync('skopeo', ['inspect', '--config', `oci-archive:${oci}`], { encoding: 'utf8' }));
  assert.deepEqual(viaOci.config.Cmd, ['cat', '/app/out.txt', '/app/app.txt']);
  const rawOci = execFileSync('skopeo', ['inspect', '--raw', '--config', `oci-archive:${oci}`]);
  assert.equal(createHash('sha256').update(rawOci).digest('hex').slice(0, 12), id, 'the archive holds the built image (its ID is the config digest)');
  const viaDocker = JSON.parse(execFileSync('skopeo', ['inspect', `docker-archive:${dock}`], { encoding: 'utf8' }));
  assert.equal(viaDocker.Layers.length, 3);
  // umoci: the OCI archive is an image layout.
  const layout = path.join(dir, 'layout');
  fs.mkdirSync(layout);
  execFileSync('tar', ['-xf', oci, '-C', layout]);
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  const ref = index.manifests[0].annotations['org.opencontainers.image.ref.name'];
  execFileSync('umoci', ['unpack', '--image', `${layout}:${ref}`, path.join(dir, 'bundle')], { stdio: 'pipe' });
  assert.equal(fs.readFileSync(path.join(dir, 'bundle', 'rootfs', 'app', 'out.txt'), 'utf8'), 'built\n');
  const podman = podmanPeer();
  podman(['load', '-q', '-i', dock]);
  assert.equal(podman(['run', '--rm', '--network', 'none', 'example.com/team/app:v1']), 'built\nfrom the context\n');
  podman(['rmi', 'example.com/team/app:v1']);
  podman(['load', '-q', '-i', oci]);
  assert.match(podman(['images', '--no-trunc', '--format', '{{.ID}}']), new RegExp(id));
});

test('type=docker: docker 20.10 loads the archive and runs it', async () => {
  const file = path.join(tempDir('ply-out-'), 'img.tar');
  buildOk(['-t', 'dockerpeer:v1', '-o', `type=docker,dest=${file}`]);
  docker = await startDockerd();
  assert.match(docker.docker(['load', '-i', file]), /Loaded image: dockerpeer:v1/);
  assert.equal(docker.docker(['run', '--rm', '--network', 'none', 'dockerpeer:v1']), 'built\nfrom the context\n');
});
