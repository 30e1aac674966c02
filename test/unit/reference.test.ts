import { test } from 'node:test';
import assert from 'node:assert/strict';

import { InvalidReferenceError } from '../../src/errors.js';
import {
  familiarName,
  familiarString,
  formatReference,
  isFullDigest,
  isValidTag,
  parseNormalized,
  parseReference,
  repositoryName,
  withTag,
  type Reference,
} from '../../src/reference/index.js';

// Test digests (arbitrary hex, right lengths).
const H64 = '3f0a9c2b7e41d5a86b19c07e2d4f8a6153be97c0d21f4e8a7b6c5d4e3f2a1b0c';
const H96 = H64 + '0123456789abcdef0123456789abcdef';
const H128 = H64 + H64.split('').reverse().join('');
const D256 = `sha256:${H64}`;

interface Ok {
  in: string;
  domain: string;
  path: string;
  tag?: string;
  digest?: string;
  /** familiarString() of the parsed reference */
  familiar?: string;
  /** formatReference() of the parsed reference */
  full?: string;
}

interface Bad {
  in: string;
  /** expected message pattern; every failure must be an InvalidReferenceError */
  err?: RegExp;
}

const valid: Ok[] = [
  // Docker Hub official images and normalisation
  { in: 'ubuntu', domain: 'docker.io', path: 'library/ubuntu', familiar: 'ubuntu', full: 'docker.io/library/ubuntu' },
  { in: 'ubuntu:22.04', domain: 'docker.io', path: 'library/ubuntu', tag: '22.04', familiar: 'ubuntu:22.04', full: 'docker.io/library/ubuntu:22.04' },
  { in: 'ubuntu:latest', domain: 'docker.io', path: 'library/ubuntu', tag: 'latest', familiar: 'ubuntu:latest' },
  { in: 'library/ubuntu', domain: 'docker.io', path: 'library/ubuntu', familiar: 'ubuntu' },
  { in: 'docker.io/ubuntu', domain: 'docker.io', path: 'library/ubuntu', familiar: 'ubuntu', full: 'docker.io/library/ubuntu' },
  { in: 'docker.io/library/ubuntu:20.04', domain: 'docker.io', path: 'library/ubuntu', tag: '20.04', familiar: 'ubuntu:20.04' },
  { in: 'index.docker.io/ubuntu', domain: 'docker.io', path: 'library/ubuntu', familiar: 'ubuntu', full: 'docker.io/library/ubuntu' },
  { in: 'index.docker.io/user/repo:v1', domain: 'docker.io', path: 'user/repo', tag: 'v1', familiar: 'user/repo:v1' },
  { in: 'index.docker.io/library/busybox', domain: 'docker.io', path: 'library/busybox', familiar: 'busybox' },
  { in: 'library', domain: 'docker.io', path: 'library/library', familiar: 'library' },
  { in: 'docker.io/library', domain: 'docker.io', path: 'library/library', familiar: 'library' },
  // Docker Hub user repositories
  { in: 'user/repo', domain: 'docker.io', path: 'user/repo', familiar: 'user/repo', full: 'docker.io/user/repo' },
  { in: 'user/repo:tag', domain: 'docker.io', path: 'user/repo', tag: 'tag', familiar: 'user/repo:tag', full: 'docker.io/user/repo:tag' },
  { in: 'docker.io/user/repo', domain: 'docker.io', path: 'user/repo', familiar: 'user/repo' },
  { in: 'dockerio/foo', domain: 'docker.io', path: 'dockerio/foo', familiar: 'dockerio/foo' },
  { in: 'my-registry/foo', domain: 'docker.io', path: 'my-registry/foo', familiar: 'my-registry/foo' },
  { in: 'foo/localhost', domain: 'docker.io', path: 'foo/localhost', familiar: 'foo/localhost' },
  { in: 'a/b/c/d', domain: 'docker.io', path: 'a/b/c/d', familiar: 'a/b/c/d', full: 'docker.io/a/b/c/d' },
  // library/ is only stripped when nothing nested follows it
  { in: 'docker.io/library/foo/bar', domain: 'docker.io', path: 'library/foo/bar', familiar: 'library/foo/bar' },
  { in: 'library/foo/bar:1', domain: 'docker.io', path: 'library/foo/bar', tag: '1', familiar: 'library/foo/bar:1' },
  // localhost
  { in: 'localhost/foo', domain: 'localhost', path: 'foo', familiar: 'localhost/foo', full: 'localhost/foo' },
  { in: 'localhost:5000/foo', domain: 'localhost:5000', path: 'foo', familiar: 'localhost:5000/foo' },
  { in: 'localhost:5000/foo/bar:v2', domain: 'localhost:5000', path: 'foo/bar', tag: 'v2', familiar: 'localhost:5000/foo/bar:v2', full: 'localhost:5000/foo/bar:v2' },
  // a single component is never a domain, so these are Docker Hub names (docker's behaviour)
  { in: 'localhost', domain: 'docker.io', path: 'library/localhost', familiar: 'localhost' },
  { in: 'localhost:5000', domain: 'docker.io', path: 'library/localhost', tag: '5000', familiar: 'localhost:5000' },
  { in: 'localhost.localdomain/foo', domain: 'localhost.localdomain', path: 'foo' },
  // other registries: not prefixed with library/
  { in: 'quay.io/coreos/etcd:v3.5', domain: 'quay.io', path: 'coreos/etcd', tag: 'v3.5', familiar: 'quay.io/coreos/etcd:v3.5' },
  { in: 'gcr.io/distroless/static', domain: 'gcr.io', path: 'distroless/static', familiar: 'gcr.io/distroless/static' },
  { in: 'example.com/foo', domain: 'example.com', path: 'foo', familiar: 'example.com/foo', full: 'example.com/foo' },
  { in: 'registry.example.com:443/team/app:1.0', domain: 'registry.example.com:443', path: 'team/app', tag: '1.0' },
  { in: 'registry-1.docker.io/library/ubuntu', domain: 'registry-1.docker.io', path: 'library/ubuntu', familiar: 'registry-1.docker.io/library/ubuntu' },
  { in: 'example.com:5000/a/b/c:tag', domain: 'example.com:5000', path: 'a/b/c', tag: 'tag' },
  { in: 'a-b.c-d.io:8080/x', domain: 'a-b.c-d.io:8080', path: 'x' },
  { in: 'xn--bcher-kva.example/foo', domain: 'xn--bcher-kva.example', path: 'foo' },
  { in: 'my:5000/foo', domain: 'my:5000', path: 'foo' },
  // IP addresses
  { in: '127.0.0.1:5000/foo', domain: '127.0.0.1:5000', path: 'foo', familiar: '127.0.0.1:5000/foo' },
  { in: '192.168.1.1/x', domain: '192.168.1.1', path: 'x' },
  { in: '[::1]:5000/foo', domain: '[::1]:5000', path: 'foo', familiar: '[::1]:5000/foo', full: '[::1]:5000/foo' },
  { in: '[::1]/foo', domain: '[::1]', path: 'foo' },
  { in: '[2001:db8::1]:443/ns/img:tag', domain: '[2001:db8::1]:443', path: 'ns/img', tag: 'tag' },
  { in: `[fe80::1]/foo@${D256}`, domain: '[fe80::1]', path: 'foo', digest: D256 },
  // a first component with upper case is taken as a domain
  { in: 'Foo/bar', domain: 'Foo', path: 'bar', familiar: 'Foo/bar' },
  { in: 'EXAMPLE.COM/foo:V1', domain: 'EXAMPLE.COM', path: 'foo', tag: 'V1' },
  // digests
  { in: `ubuntu@${D256}`, domain: 'docker.io', path: 'library/ubuntu', digest: D256, familiar: `ubuntu@${D256}`, full: `docker.io/library/ubuntu@${D256}` },
  { in: `ubuntu:22.04@${D256}`, domain: 'docker.io', path: 'library/ubuntu', tag: '22.04', digest: D256, familiar: `ubuntu:22.04@${D256}`, full: `docker.io/library/ubuntu:22.04@${D256}` },
  { in: `user/repo@${D256}`, domain: 'docker.io', path: 'user/repo', digest: D256, familiar: `user/repo@${D256}` },
  { in: `host.io/x:t@sha512:${H128}`, domain: 'host.io', path: 'x', tag: 't', digest: `sha512:${H128}`, full: `host.io/x:t@sha512:${H128}` },
  { in: `foo@sha384:${H96}`, domain: 'docker.io', path: 'library/foo', digest: `sha384:${H96}` },
  { in: `foo@blake3:${H64}`, domain: 'docker.io', path: 'library/foo', digest: `blake3:${H64}` },
  { in: `foo@tarsum.v1+sha256:${H64.slice(0, 32)}`, domain: 'docker.io', path: 'library/foo', digest: `tarsum.v1+sha256:${H64.slice(0, 32)}` },
  // tags
  { in: 'foo:_tag', domain: 'docker.io', path: 'library/foo', tag: '_tag' },
  { in: 'foo:LATEST', domain: 'docker.io', path: 'library/foo', tag: 'LATEST' },
  { in: 'foo:v1.2.3-rc.1_b', domain: 'docker.io', path: 'library/foo', tag: 'v1.2.3-rc.1_b' },
  { in: `foo:${'t'.repeat(128)}`, domain: 'docker.io', path: 'library/foo', tag: 't'.repeat(128) },
  { in: 'foo:0', domain: 'docker.io', path: 'library/foo', tag: '0' },
  // path-component separators
  { in: 'a.b', domain: 'docker.io', path: 'library/a.b', familiar: 'a.b' },
  { in: 'a_b', domain: 'docker.io', path: 'library/a_b' },
  { in: 'a__b', domain: 'docker.io', path: 'library/a__b' },
  { in: 'a-b', domain: 'docker.io', path: 'library/a-b' },
  { in: 'a---b', domain: 'docker.io', path: 'library/a---b' },
  { in: 'a-b_c__d/e.f--g', domain: 'docker.io', path: 'a-b_c__d/e.f--g' },
  { in: 'a', domain: 'docker.io', path: 'library/a', familiar: 'a' },
  { in: '0/1', domain: 'docker.io', path: '0/1' },
  // hex-looking names that are not a bare 64-hex identifier
  { in: `${H64}:latest`, domain: 'docker.io', path: `library/${H64}`, tag: 'latest' },
  { in: H64.slice(0, 63), domain: 'docker.io', path: `library/${H64.slice(0, 63)}` },
  { in: H64 + 'a', domain: 'docker.io', path: `library/${H64}a` },
  { in: 'sha256:abc', domain: 'docker.io', path: 'library/sha256', tag: 'abc' },
  // length: the path may be 255 characters (the domain is not counted)
  { in: `example.com/${'a'.repeat(255)}`, domain: 'example.com', path: 'a'.repeat(255) },
  { in: 'a'.repeat(247), domain: 'docker.io', path: `library/${'a'.repeat(247)}` },
];

const invalid: Bad[] = [
  { in: '', err: /at least one component/ },
  { in: ':' },
  { in: ':latest' },
  { in: `@${D256}` },
  { in: 'UPPER', err: /"UPPER".*repository name \(library\/UPPER\) must be lowercase/ },
  { in: 'FOO:bar', err: /"FOO:bar".*must be lowercase/ },
  { in: 'user/Repo', err: /repository name \(user\/Repo\) must be lowercase/ },
  { in: 'example.com/Foo', err: /repository name \(Foo\) must be lowercase/ },
  { in: 'localhost:5000/Foo:tag', err: /repository name \(Foo\) must be lowercase/ },
  { in: 'FOO/bar/Baz', err: /must be lowercase/ },
  { in: `Foo@${D256}`, err: /must be lowercase/ },
  { in: H64, err: /cannot specify 64-byte hexadecimal strings/ },
  { in: D256, err: /digest is not a repository name/ },
  { in: `sha512:${H128}`, err: /digest is not a repository name/ },
  // tags
  { in: 'ubuntu:' },
  { in: 'ubuntu:-tag' },
  { in: 'ubuntu:.tag' },
  { in: 'ubuntu:tag with space' },
  { in: `ubuntu:${'t'.repeat(129)}` },
  { in: 'ubuntu:a:b' },
  { in: 'ubuntu:tag!' },
  { in: 'foo/bar:tag/baz' },
  { in: 'foo:tag@' },
  // digests
  { in: 'ubuntu@' },
  { in: 'ubuntu@sha256:abc' },
  { in: `ubuntu@sha256:${H64.slice(0, 63)}`, err: /invalid digest format/ },
  { in: `ubuntu@sha256:${H64}0`, err: /invalid digest format/ },
  { in: `ubuntu@sha256:${H64.toUpperCase()}`, err: /invalid digest format/ },
  { in: `ubuntu@SHA256:${H64}` },
  { in: `ubuntu@sha512:${H64}`, err: /invalid digest format/ },
  { in: `ubuntu@sha384:${H128}`, err: /invalid digest format/ },
  { in: `ubuntu@md5:${H64.slice(0, 31)}` },
  { in: `ubuntu@1sha:${H64}` },
  { in: `ubuntu@sha256:${'g'.repeat(64)}` },
  { in: `ubuntu@${H64}` },
  { in: `ubuntu@${D256}@${D256}` },
  { in: `ubuntu@${D256}:tag` },
  { in: `foo@${D256} ` },
  // path components
  { in: '-foo' },
  { in: 'foo-' },
  { in: 'foo.' },
  { in: '.foo' },
  { in: '_foo' },
  { in: 'foo..bar' },
  { in: 'foo___bar' },
  { in: 'foo_-bar' },
  { in: 'foo.-bar' },
  { in: 'foo//bar' },
  { in: 'foo/' },
  { in: '/foo' },
  { in: 'foo/bar/' },
  { in: 'foo bar' },
  { in: ' foo' },
  { in: 'foo\n' },
  { in: 'foo$' },
  { in: 'fooé' },
  { in: 'user/-repo' },
  // domains
  { in: 'ex_ample.com/foo', err: /invalid domain \(ex_ample\.com\)/ },
  { in: 'a.b-c_d/e', err: /invalid domain/ },
  { in: '-example.com/foo' },
  { in: 'example-.com/foo' },
  { in: 'example..com/foo' },
  { in: 'example.com:port/foo' },
  { in: 'example.com:/foo' },
  { in: 'example.com:5000:6000/foo' },
  { in: '::1/foo' },
  { in: '[::1/foo' },
  { in: '[zz::1]/foo' },
  { in: '[::1]:abc/foo' },
  { in: 'https://example.com/foo' },
  { in: 'example.com/' },
  { in: 'localhost/' },
  // length: docker.io names are counted after the library/ prefix is added
  { in: 'a'.repeat(248), err: /must not be more than 255 characters/ },
  { in: `example.com/${'a'.repeat(256)}`, err: /must not be more than 255 characters/ },
  { in: `x/${'b'.repeat(254)}`, err: /must not be more than 255 characters/ },
];

function describe(s: string): string {
  const shown = s.length > 60 ? `${s.slice(0, 57)}...(${s.length})` : s;
  return JSON.stringify(shown);
}

for (const c of valid) {
  test(`parses ${describe(c.in)}`, () => {
    const r = parseReference(c.in);
    const expected: Reference = { domain: c.domain, path: c.path };
    if (c.tag !== undefined) expected.tag = c.tag;
    if (c.digest !== undefined) expected.digest = c.digest;
    assert.deepEqual(r, expected);
    assert.equal(repositoryName(r), `${c.domain}/${c.path}`);
    if (c.familiar !== undefined) assert.equal(familiarString(r), c.familiar);
    if (c.full !== undefined) assert.equal(formatReference(r), c.full);
    // The full form and the familiar form both parse back to the same reference.
    assert.deepEqual(parseReference(formatReference(r)), r);
    assert.deepEqual(parseReference(familiarString(r)), r);
  });
}

for (const c of invalid) {
  test(`rejects ${describe(c.in)}`, () => {
    assert.throws(
      () => parseReference(c.in),
      (e: unknown) => {
        assert.ok(e instanceof InvalidReferenceError, `expected InvalidReferenceError, got ${String(e)}`);
        assert.ok(!e.message.includes('\n'), 'message must be one line');
        if (c.err) assert.match(e.message, c.err);
        return true;
      },
    );
    assert.throws(() => parseNormalized(c.in), InvalidReferenceError);
  });
}

test('error messages name the input and say "invalid reference format"', () => {
  assert.throws(() => parseReference('foo bar'), {
    name: 'InvalidReferenceError',
    message: 'invalid reference format: "foo bar"',
  });
  assert.throws(() => parseReference('FOO:bar'), {
    message: 'invalid reference format: "FOO:bar": repository name (library/FOO) must be lowercase',
  });
  assert.throws(() => parseReference(H64), {
    message: `invalid repository name (${H64}), cannot specify 64-byte hexadecimal strings`,
  });
});

test('parseNormalized adds latest only when there is neither tag nor digest', () => {
  assert.deepEqual(parseNormalized('ubuntu'), { domain: 'docker.io', path: 'library/ubuntu', tag: 'latest' });
  assert.equal(formatReference(parseNormalized('ubuntu')), 'docker.io/library/ubuntu:latest');
  assert.equal(familiarString(parseNormalized('ubuntu')), 'ubuntu:latest');
  assert.deepEqual(parseNormalized('localhost:5000/x:v1'), { domain: 'localhost:5000', path: 'x', tag: 'v1' });
  assert.deepEqual(parseNormalized(`ubuntu@${D256}`), { domain: 'docker.io', path: 'library/ubuntu', digest: D256 });
  assert.deepEqual(parseNormalized(`ubuntu:1@${D256}`), {
    domain: 'docker.io',
    path: 'library/ubuntu',
    tag: '1',
    digest: D256,
  });
});

test('familiarName strips docker.io/ and library/ only on docker.io', () => {
  assert.equal(familiarName({ domain: 'docker.io', path: 'library/ubuntu', tag: 'x' }), 'ubuntu');
  assert.equal(familiarName({ domain: 'docker.io', path: 'user/repo' }), 'user/repo');
  assert.equal(familiarName({ domain: 'docker.io', path: 'library/a/b' }), 'library/a/b');
  assert.equal(familiarName({ domain: 'quay.io', path: 'library/ubuntu' }), 'quay.io/library/ubuntu');
  assert.equal(familiarName({ domain: 'localhost:5000', path: 'x' }), 'localhost:5000/x');
});

test('withTag validates the tag and keeps the digest', () => {
  const r = parseReference(`quay.io/a/b@${D256}`);
  assert.deepEqual(withTag(r, 'v2'), { domain: 'quay.io', path: 'a/b', tag: 'v2', digest: D256 });
  assert.deepEqual(withTag(parseNormalized('ubuntu'), '24.04'), { domain: 'docker.io', path: 'library/ubuntu', tag: '24.04' });
  assert.deepEqual(r, { domain: 'quay.io', path: 'a/b', digest: D256 }, 'input is not mutated');
  for (const bad of ['', '-x', '.x', 'a b', 'a:b', 'a/b', 't'.repeat(129)]) {
    assert.throws(() => withTag(r, bad), (e: unknown) => e instanceof InvalidReferenceError && /invalid tag format/.test(e.message));
  }
});

test('isValidTag', () => {
  for (const t of ['latest', '1', '_', 'A', 'v1.0-rc_1', 'x'.repeat(128), '0.0..--']) assert.equal(isValidTag(t), true, t);
  for (const t of ['', '-a', '.a', 'a b', 'a:b', 'a/b', 'a@b', 'é', 'x'.repeat(129)]) assert.equal(isValidTag(t), false, t);
});

test('isFullDigest', () => {
  assert.equal(isFullDigest(D256), true);
  assert.equal(isFullDigest(H64), false);
  assert.equal(isFullDigest(`sha256:${H64.slice(1)}`), false);
  assert.equal(isFullDigest(`sha256:${H64}a`), false);
  assert.equal(isFullDigest(`sha256:${H64.toUpperCase()}`), false);
  assert.equal(isFullDigest(`sha512:${H128}`), false);
  assert.equal(isFullDigest(`SHA256:${H64}`), false);
  assert.equal(isFullDigest(` ${D256}`), false);
});

test('pathological inputs are rejected quickly', () => {
  const inputs = [
    'a'.repeat(100_000) + '!',
    'a-'.repeat(50_000) + '!',
    'a.'.repeat(50_000),
    'a_'.repeat(50_000) + '/',
    'a.b/'.repeat(25_000) + 'A',
    'a:' + '1'.repeat(100_000) + '/x!',
    `x@${'a'.repeat(50_000)}+`,
    'a/'.repeat(50_000),
  ];
  const start = Date.now();
  for (const s of inputs) assert.throws(() => parseReference(s), InvalidReferenceError);
  assert.ok(Date.now() - start < 2000, `took ${Date.now() - start}ms`);
});

test('table sizes', () => {
  assert.ok(valid.length + invalid.length >= 80);
});
