// End-to-end: import, images, tag, rmi, inspect, history, prune, df through bin/ply with a temporary store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { busyboxTar, ply, plyAsync, plyOk, tempDir } from '../helpers.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function storeState(root: string): string {
  const blobs = fs.existsSync(path.join(root, 'blobs', 'sha256')) ? fs.readdirSync(path.join(root, 'blobs', 'sha256')).sort() : [];
  const ingest = fs.existsSync(path.join(root, 'ingest')) ? fs.readdirSync(path.join(root, 'ingest')) : [];
  const images = ply(root, ['images', '-a', '--no-trunc', '--format', '{{.ID}} {{.Repository}}:{{.Tag}}']).stdout;
  return JSON.stringify({ blobs, ingest, images });
}

function inspect(root: string, ref: string): Record<string, any> {
  return JSON.parse(plyOk(root, ['image', 'inspect', ref]))[0];
}

test('import from stdin: prints the image ID; the diffID is the sha256 of the tar', () => {
  const root = tempDir();
  const tar = fs.readFileSync(busyboxTar());
  const id = plyOk(root, ['import', '-', 'image-name:v1'], { input: tar }).trim();
  assert.match(id, /^sha256:[0-9a-f]{64}$/);
  const info = inspect(root, 'image-name:v1');
  assert.equal(info.Id, id);
  assert.deepEqual(info.RootFS, { Type: 'layers', Layers: [`sha256:${sha256(tar)}`] });
  assert.deepEqual(info.RepoTags, ['image-name:v1']);
  assert.equal(info.Os, 'linux');
  assert.equal(info.Comment, 'Imported from -');
  // The config blob stored under the ID hashes to the ID: the ID is the config digest.
  const cfg = fs.readFileSync(path.join(root, 'blobs', 'sha256', id.slice(7)));
  assert.equal(`sha256:${sha256(cfg)}`, id);
  const listing = plyOk(root, ['images']);
  assert.match(listing, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE\n/);
  assert.match(listing, new RegExp(`image-name\\s+v1\\s+${id.slice(7, 19)}\\s+(Less than a second|\\d+ seconds?) ago\\s+\\d`));
});

test('import from a file, gzip and zstd compressed: same diffID as the plain tar, the compressed blob kept as is', () => {
  const root = tempDir();
  const tarPath = busyboxTar();
  const tar = fs.readFileSync(tarPath);
  const dir = tempDir();
  const gz = path.join(dir, 'fs.tar.gz');
  fs.writeFileSync(gz, zlib.gzipSync(tar, { level: 1 }));
  execFileSync('zstd', ['-q', '-f', tarPath, '-o', path.join(dir, 'fs.tar.zst')]);
  for (const [file, mediaType] of [
    [tarPath, 'application/vnd.oci.image.layer.v1.tar'],
    [gz, 'application/vnd.oci.image.layer.v1.tar+gzip'],
    [path.join(dir, 'fs.tar.zst'), 'application/vnd.oci.image.layer.v1.tar+zstd'],
  ] as const) {
    const name = `fromfile:${path.basename(file).replace(/\./g, '-')}`;
    plyOk(root, ['import', file, name]);
    const info = inspect(root, name);
    assert.deepEqual(info.RootFS.Layers, [`sha256:${sha256(tar)}`], file);
    const manifest = JSON.parse(fs.readFileSync(path.join(root, 'blobs', 'sha256', info.Descriptor.digest.slice(7)), 'utf8'));
    assert.equal(manifest.layers[0].mediaType, mediaType);
    const blob = fs.readFileSync(path.join(root, 'blobs', 'sha256', manifest.layers[0].digest.slice(7)));
    assert.deepEqual(blob, fs.readFileSync(file), 'the layer blob is the input, byte for byte');
  }
});

test('three names on one image show one ID; rmi of one name keeps the others; the last rmi deletes', () => {
  const root = tempDir();
  const id = plyOk(root, ['import', busyboxTar(), 'one'], {}).trim();
  plyOk(root, ['tag', 'one', 'two:v2']);
  plyOk(root, ['tag', id.slice(7, 19), 'localhost:5000/team/three:x']);
  const rows = plyOk(root, ['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']).trim().split('\n').sort();
  const short = id.slice(7, 19);
  assert.deepEqual(rows, [`localhost:5000/team/three:x ${short}`, `one:latest ${short}`, `two:v2 ${short}`]);
  // Deleting by ID with several names needs -f.
  const conflict = ply(root, ['rmi', short]);
  assert.notEqual(conflict.code, 0);
  assert.match(conflict.stderr, /must be forced.*multiple repositories/);
  assert.equal(plyOk(root, ['rmi', 'two:v2']), 'Untagged: two:v2\n');
  assert.equal(inspect(root, 'one').Id, id);
  assert.equal(inspect(root, 'localhost:5000/team/three:x').Id, id);
  plyOk(root, ['rmi', 'one']);
  const last = plyOk(root, ['rmi', 'localhost:5000/team/three:x']);
  assert.match(last, /^Untagged: localhost:5000\/team\/three:x\nDeleted: sha256:/);
  assert.ok(last.includes(`Deleted: ${id}`));
  assert.deepEqual(fs.readdirSync(path.join(root, 'blobs', 'sha256')), [], 'all blobs gone with the last image');
  const missing = ply(root, ['image', 'inspect', 'one']);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr, 'Error: No such image: one\n');
});

test('a layer shared by two images stays when one of them is removed', () => {
  const root = tempDir();
  const env = { SOURCE_DATE_EPOCH: '1700000000' };
  plyOk(root, ['import', '-c', 'CMD ["/bin/sh"]', busyboxTar(), 'a'], { env });
  plyOk(root, ['import', '-c', 'ENV X=1', busyboxTar(), 'b'], { env });
  const la = inspect(root, 'a').RootFS.Layers[0];
  assert.equal(inspect(root, 'b').RootFS.Layers[0], la);
  const out = plyOk(root, ['rmi', 'a']);
  assert.match(out, /Deleted: /);
  const blobs = fs.readdirSync(path.join(root, 'blobs', 'sha256'));
  assert.ok(blobs.includes(la.slice(7)), 'the shared layer is still stored');
  assert.equal(inspect(root, 'b').RootFS.Layers[0], la);
});

test('import --change and --message shape the config and history', () => {
  const root = tempDir();
  plyOk(root, [
    'import', '-c', 'CMD ["/bin/sh", "-c", "echo hi"]', '-c', 'ENV A=1 B="two words"', '--change', 'WORKDIR /srv',
    '-c', 'EXPOSE 8080', '-c', 'LABEL org.example=yes', '-c', 'USER app', '-m', 'my message', busyboxTar(), 'changed:v1',
  ]);
  const info = inspect(root, 'changed:v1');
  assert.deepEqual(info.Config.Cmd, ['/bin/sh', '-c', 'echo hi']);
  assert.deepEqual(info.Config.Env, ['A=1', 'B=two words']);
  assert.equal(info.Config.WorkingDir, '/srv');
  assert.deepEqual(info.Config.ExposedPorts, { '8080/tcp': {} });
  assert.deepEqual(info.Config.Labels, { 'org.example': 'yes' });
  assert.equal(info.Config.User, 'app');
  assert.equal(info.Comment, 'my message');
  const hist = plyOk(root, ['history', 'changed:v1']);
  assert.match(hist, /^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT\n/);
  assert.match(hist, /my message/);
  const bad = ply(root, ['import', '-c', 'RUN echo no', busyboxTar(), 'x']);
  assert.notEqual(bad.code, 0);
  assert.equal(bad.stderr.trim().split('\n').length, 1);
  assert.match(bad.stderr, /run is not a valid change command/);
});

test('bad references and non-tar input are refused with one line and change nothing', () => {
  const root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'keep:me']);
  const before = storeState(root);
  for (const args of [
    ['import', busyboxTar(), 'Bad:Name'],
    ['import', busyboxTar(), 'ok:bad tag'],
    ['import', busyboxTar(), 'x@sha256:1234'],
    ['tag', 'keep:me', 'UPPER'],
    ['tag', 'keep:me', 'a/b:-dash'],
    ['tag', 'nonexistent:1', 'fine'],
  ]) {
    const r = ply(root, args);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /at .*\.js/, 'no stack trace');
  }
  const dir = tempDir();
  const inputs: Record<string, Buffer> = {
    'text.txt': Buffer.from('this is not a tar archive\n'.repeat(100)),
    'empty': Buffer.alloc(0),
    'random.bin': Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 251)),
    'truncated.tar': fs.readFileSync(busyboxTar()).subarray(0, 700_000),
    'corrupt.gz': Buffer.concat([zlib.gzipSync(fs.readFileSync(busyboxTar())).subarray(0, 50_000), Buffer.alloc(100, 7)]),
  };
  for (const [name, data] of Object.entries(inputs)) {
    const file = path.join(dir, name);
    fs.writeFileSync(file, data);
    const r = ply(root, ['import', file, 'should-not:exist']);
    assert.notEqual(r.code, 0, name);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /^Error: /, name);
    const viaStdin = ply(root, ['import', '-', 'should-not:exist'], { input: data });
    assert.notEqual(viaStdin.code, 0, name);
  }
  assert.equal(storeState(root), before);
  assert.equal(ply(root, ['import', '/nonexistent/file.tar']).code, 1);
});

test('two ply import processes at once both succeed', async () => {
  const root = tempDir();
  const tar = busyboxTar();
  const results = await Promise.all(
    ['p1', 'p2', 'p3', 'p4'].map((n, i) => plyAsync(root, ['import', '-c', `ENV N=${i}`, '-', `${n}:v1`], { inputFile: tar })),
  );
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  const rows = plyOk(root, ['images', '--format', '{{.Repository}}']).trim().split('\n').sort();
  assert.deepEqual(rows, ['p1', 'p2', 'p3', 'p4']);
  const layers = new Set(['p1', 'p2', 'p3', 'p4'].map((n) => inspect(root, `${n}:v1`).RootFS.Layers[0]));
  assert.equal(layers.size, 1, 'one layer shared by all four');
});

test('images: filters, formats, quiet, digests, dangling after a tag moves, prune', () => {
  const root = tempDir();
  const env = { SOURCE_DATE_EPOCH: '1700000000' };
  const first = plyOk(root, ['import', '-c', 'LABEL v=1', busyboxTar(), 'app:latest'], { env }).trim();
  const second = plyOk(root, ['import', '-c', 'LABEL v=2', busyboxTar(), 'app:latest'], { env }).trim();
  plyOk(root, ['tag', 'app', 'other/app:1']);
  assert.notEqual(first, second);
  const dangling = plyOk(root, ['images', '--filter', 'dangling=true', '-q', '--no-trunc']).trim();
  assert.equal(dangling, first, 'the image the tag moved away from is dangling');
  assert.deepEqual(plyOk(root, ['images', '-f', 'reference=app', '--format', '{{.Repository}}:{{.Tag}}']).trim().split('\n'), ['app:latest']);
  assert.deepEqual(plyOk(root, ['images', '-f', 'reference=*/app:*', '--format', '{{.Repository}}:{{.Tag}}']).trim().split('\n'), ['other/app:1']);
  assert.deepEqual(plyOk(root, ['images', 'other/app', '--format', '{{.Tag}}']).trim().split('\n'), ['1']);
  assert.equal(plyOk(root, ['images', '-f', 'label=v=2', '-q']).trim().split('\n').length, 2);
  const json = plyOk(root, ['images', '--format', 'json']).trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(json.length, 3);
  assert.ok(json.every((j) => typeof j.ID === 'string' && 'Size' in j && 'CreatedSince' in j && 'Digest' in j));
  assert.match(plyOk(root, ['images', '--digests']), /^REPOSITORY\s+TAG\s+DIGEST\s+IMAGE ID\s+CREATED\s+SIZE/);
  assert.match(plyOk(root, ['images']), /<none>\s+<none>/);
  const prune = plyOk(root, ['image', 'prune', '-f']);
  assert.match(prune, new RegExp(`deleted: ${first}`));
  assert.match(prune, /Total reclaimed space: /);
  assert.equal(plyOk(root, ['images', '-q', '-f', 'dangling=true']), '');
  assert.equal(inspect(root, 'app').Id, second);
  const all = plyOk(root, ['image', 'prune', '-a', '-f']);
  assert.match(all, /untagged: app:latest/);
  assert.equal(plyOk(root, ['images', '-q', '-a']), '');
});

test('history, system df, info, version and help', () => {
  const root = tempDir();
  const id = plyOk(root, ['import', busyboxTar(), 'h:1']).trim();
  const rows = plyOk(root, ['history', '--no-trunc', '--format', '{{.ID}}|{{.Comment}}', 'h:1']).trim().split('\n');
  assert.deepEqual(rows, [`${id}|Imported from -`]);
  assert.equal(plyOk(root, ['history', '-q', 'h:1']).trim(), id.slice(7, 19));
  const df = plyOk(root, ['system', 'df']);
  assert.match(df, /^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE\nImages\s+1\s+0\s+\d/);
  assert.match(plyOk(root, ['info']), new RegExp(`Docker Root Dir: ${root}`));
  assert.match(plyOk(root, ['version']), /Version:\s+\d+\.\d+\.\d+/);
  assert.match(plyOk(root, ['--help']), /import/);
  assert.match(plyOk(root, ['import', '--help']), /--change/);
  const unknown = ply(root, ['images', '--bogus']);
  assert.equal(unknown.code, 125);
  assert.match(unknown.stderr, /^unknown flag: --bogus\n/);
});

test('import from a URL, with the URL in the history comment; --platform sets the architecture', async () => {
  const http = await import('node:http');
  const tar = fs.readFileSync(busyboxTar());
  const server = http.createServer((req, res) => {
    if (req.url === '/rootfs.tar') res.end(tar);
    else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    const root = tempDir();
    const url = `http://127.0.0.1:${port}/rootfs.tar`;
    const r = await plyAsync(root, ['import', '--platform', 'linux/arm64', url, 'fromurl:v1']);
    assert.equal(r.code, 0, r.stderr);
    const missing = await plyAsync(root, ['import', `http://127.0.0.1:${port}/nope.tar`, 'x']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /404/);
    const out = await plyAsync(root, ['image', 'inspect', 'fromurl:v1']);
    const info = JSON.parse(out.stdout)[0];
    assert.equal(info.Architecture, 'arm64');
    assert.equal(info.Comment, `Imported from ${url}`);
    assert.equal(info.RootFS.Layers[0], `sha256:${sha256(tar)}`);
  } finally {
    server.close();
  }
});
