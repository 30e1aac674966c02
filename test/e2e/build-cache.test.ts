// End-to-end: the build cache between stores (--cache-to / --cache-from) through ply's own registry, Debian's
// docker-registry (CNCF distribution) and an OCI layout directory: a fresh store runs none of the cached steps,
// gets the same image ID and pulls only the layers the result needs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { buildContext, busyboxTar, ply, plyOk, tempDir } from '../helpers.js';
import { startDistribution, startPlyRegistry, type Distribution, type PlyRegistry } from '../registry-peer.js';

let plyRegistry: PlyRegistry;
let distribution: Distribution;
before(async () => {
  plyRegistry = await startPlyRegistry();
  distribution = await startDistribution({ accessLog: true });
});
after(async () => {
  await plyRegistry.stop();
  await distribution.stop();
});

const context = buildContext;

function buildOk(store: string, dir: string, args: string[]): string {
  const r = ply(store, ['build', '--network', 'none', ...args, dir]);
  if (r.code !== 0) throw new Error(`ply build ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}
const id = (store: string, ref: string) => plyOk(store, ['image', 'inspect', '-f', '{{.Id}}', ref]).trim();
const cat = (store: string, ref: string, file: string) => plyOk(store, ['run', '--rm', '--network', 'none', ref, 'cat', file]);

/** A store with the base image pulled from `domain` (the base every store shares, as CI runners do). */
function storeWithBase(domain: string): string {
  const s = tempDir();
  plyOk(s, ['pull', `${domain}/base:1`]);
  return s;
}

const dockerfile = (domain: string, extra = '') =>
  [
    `FROM ${domain}/base:1`,
    'COPY f.txt /f.txt',
    // Not reproducible on purpose: the same bytes in another store prove the step was not run there.
    'RUN head -c 16 /dev/urandom | od -An -tx1 > /rand',
    'RUN echo second > /second',
    'ENV X=1',
    extra,
  ].join('\n');

for (const which of ['ply registry', 'distribution'] as const) {
  test(`registry cache through ${which}: a fresh store runs no cached step, gets the same ID, pulls only the result's layers`, () => {
    const domain = which === 'ply registry' ? plyRegistry.domain : distribution.domain;
    const a = tempDir();
    plyOk(a, ['import', busyboxTar(), `${domain}/base:1`]);
    plyOk(a, ['push', `${domain}/base:1`]);
    const dir = context({ Dockerfile: dockerfile(domain), 'f.txt': 'hello\n' });
    const ref = `${domain}/cache/app:buildcache`;
    buildOk(a, dir, ['-t', 'app:a', '--cache-to', `type=registry,ref=${ref}`]);
    // The cache is an OCI index of step images any client reads.
    const index = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${ref}`], { encoding: 'utf8' }));
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.equal(index.manifests.length, 4, 'COPY, RUN, RUN, ENV');
    assert.ok(index.manifests.every((m: { annotations: Record<string, string> }) => /^[0-9a-f]{64}$/.test(m.annotations['dev.ply.build.cache.key'])));

    const b = storeWithBase(domain);
    const before = which === 'distribution' ? distribution.accessLog().length : 0;
    const out = buildOk(b, dir, ['-t', 'app:b', '--cache-from', `type=registry,ref=${ref}`]);
    assert.doesNotMatch(out, /Running in/, 'no RUN ran in the fresh store');
    assert.equal((out.match(/Using cache/g) ?? []).length, 4);
    assert.equal(id(b, 'app:b'), id(a, 'app:a'));
    assert.equal(cat(b, 'app:b', '/rand'), cat(a, 'app:a', '/rand'));
    if (which === 'distribution') {
      // Layers fetched: the result's two new layers (COPY, RUN, RUN: three) and nothing twice; the base was there.
      const gets = distribution
        .accessLog()
        .slice(before)
        .split('\n')
        .filter((l) => /"GET \/v2\/cache\/app\/blobs\/sha256:[0-9a-f]{64}/.test(l));
      const blobs = gets.map((l) => /blobs\/(sha256:[0-9a-f]{64})/.exec(l)![1]!);
      assert.equal(new Set(blobs).size, blobs.length, 'no blob fetched twice');
      // 4 step configs (read to know each step's result) + 3 layers.
      assert.equal(blobs.length, 7, gets.join('\n'));
    }
    // A later step changed: the cached ones are reused, the new one runs on the pulled filesystem.
    const c = storeWithBase(domain);
    const changed = context({ Dockerfile: dockerfile(domain, 'RUN cat /rand /second > /both'), 'f.txt': 'hello\n' });
    const partial = buildOk(c, changed, ['-t', 'app:c', '--cache-from', ref]);
    assert.equal((partial.match(/Running in/g) ?? []).length, 1);
    assert.equal(cat(c, 'app:c', '/both'), `${cat(a, 'app:a', '/rand')}second\n`);
    // And the second build in that store needs no cache-from any more: the steps are in its own cache.
    assert.doesNotMatch(buildOk(c, changed, ['-t', 'app:c2']), /Running in/);
  });
}

test('mode=min exports the result stage only, mode=max every stage; type=local keeps the cache in an OCI layout skopeo reads', () => {
  const domain = plyRegistry.domain;
  const a = tempDir();
  plyOk(a, ['import', busyboxTar(), `${domain}/base:1`]);
  plyOk(a, ['push', `${domain}/base:1`]);
  const dir = context({
    Dockerfile: [`FROM ${domain}/base:1 AS build`, 'RUN head -c 8 /dev/urandom | od -An -tx1 > /out', `FROM ${domain}/base:1`, 'COPY --from=build /out /out'].join('\n'),
  });
  const local = path.join(tempDir('ply-cache-dir-'), 'cache');
  buildOk(a, dir, ['-t', 'ms:a', '--cache-to', `type=registry,ref=${domain}/ms:min`, '--cache-to', `type=registry,ref=${domain}/ms:max,mode=max`, '--cache-to', `type=local,dest=${local},mode=max`]);
  // min: the builder stage's RUN is not in the cache, so it runs again (and its new output misses the COPY).
  const min = buildOk(storeWithBase(domain), dir, ['--cache-from', `${domain}/ms:min`]);
  assert.match(min, /Running in/);
  const viaMax = storeWithBase(domain);
  const max = buildOk(viaMax, dir, ['-t', 'ms:b', '--cache-from', `${domain}/ms:max`]);
  assert.doesNotMatch(max, /Running in/);
  assert.equal(id(viaMax, 'ms:b'), id(a, 'ms:a'));
  // The directory cache: an OCI layout (skopeo reads it), reused the same way.
  assert.equal(JSON.parse(execFileSync('skopeo', ['inspect', '--raw', `oci:${local}:latest`], { encoding: 'utf8' })).manifests.length, 2, 'RUN (builder stage), COPY');
  const viaDir = storeWithBase(domain);
  const fromDir = buildOk(viaDir, dir, ['-t', 'ms:c', '--cache-from', `type=local,src=${local}`]);
  assert.doesNotMatch(fromDir, /Running in/);
  assert.equal(id(viaDir, 'ms:c'), id(a, 'ms:a'));
  // A cache that is not there yet is a warning, not a failure (the first CI run).
  const r = ply(storeWithBase(domain), ['build', '--network', 'none', '--cache-from', `${domain}/ms:nothing`, dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /WARNING: failed to import cache from .*ms:nothing/);
  const bad = ply(a, ['build', '--cache-to', 'type=gha', dir]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /unsupported cache type "gha"/);
});
