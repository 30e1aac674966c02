// End-to-end: the vfs storage driver (a plain-copy writable layer, no overlay mount), through bin/ply, against
// the overlay driver doing the same things.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { busyboxTar, ply, plyOk, tempDir } from '../helpers.js';

const VFS = { PLY_STORAGE_DRIVER: 'vfs', PLY_SERVICE: '0' };
const OVERLAY = { PLY_STORAGE_DRIVER: 'overlay', PLY_SERVICE: '0' };

let root: string;
before(() => {
  root = tempDir();
  plyOk(root, ['import', busyboxTar(), 'bb'], { env: VFS });
});

const vfs = (args: string[]) => plyOk(root, args, { env: VFS });
const containerDir = (id: string) => path.join(root, 'containers', id);
/** Mount points below the container's directory. */
const mountsOf = (id: string) =>
  fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[4]?.startsWith(containerDir(id)));
/** `create` then `start -a`: the container's ID and its output. */
function runNamed(env: Record<string, string>, name: string, image: string, script: string): { id: string; out: string } {
  const id = plyOk(root, ['create', '--name', name, image, 'sh', '-c', script], { env }).trim();
  return { id, out: plyOk(root, ['start', '-a', name], { env }) };
}
/** The names in an image's top layer tar. */
function topLayerNames(ref: string): string[] {
  const desc = JSON.parse(vfs(['image', 'inspect', ref]))[0].Descriptor.digest as string;
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'blobs', 'sha256', desc.slice(7)), 'utf8'));
  const top = path.join(root, 'blobs', 'sha256', manifest.layers[manifest.layers.length - 1].digest.slice(7));
  return execFileSync('tar', ['-tf', top], { encoding: 'utf8' }).split('\n').filter(Boolean);
}

test('with PLY_STORAGE_DRIVER unset, overlay is used here; info says which driver', () => {
  const env = { PLY_SERVICE: '0', PLY_STORAGE_DRIVER: '' };
  assert.match(plyOk(root, ['info'], { env }), / Storage Driver: overlayfs\n/);
  assert.match(vfs(['info']), / Storage Driver: vfs\n/);
  const { id } = runNamed(env, 'probed', 'bb', 'echo x > /x');
  assert.ok(!fs.existsSync(path.join(containerDir(id), 'storage-driver')), 'an overlay container');
  assert.ok(fs.existsSync(path.join(containerDir(id), 'upper', 'x')), 'its write is in the overlay upper dir');
  assert.deepEqual(fs.readdirSync(root).filter((n) => n.includes('probe')), [], 'the probe cleaned up');
  assert.equal(ply(root, ['run', '--rm', 'bb', 'true'], { env: { PLY_STORAGE_DRIVER: 'zfs' } }).code, 125);
  plyOk(root, ['rm', 'probed'], { env });
});

test('run: output and exit code; the rootfs is a plain directory, nothing is mounted; rm removes it', () => {
  assert.equal(vfs(['run', '--rm', 'bb', 'echo', 'hello', 'vfs']), 'hello vfs\n');
  const id = vfs(['create', '--name', 'e1', 'bb', 'sh', '-c', 'echo out; echo err >&2; exit 3']).trim();
  const r = ply(root, ['start', '-a', 'e1'], { env: VFS });
  assert.equal(r.code, 3);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
  const dir = containerDir(id);
  assert.equal(fs.readFileSync(path.join(dir, 'storage-driver'), 'utf8'), 'vfs\n');
  assert.ok(fs.statSync(path.join(dir, 'merged', 'bin', 'busybox')).isFile(), 'merged holds a copy of the image');
  assert.ok(fs.existsSync(path.join(dir, 'vfs-manifest')));
  assert.ok(!fs.existsSync(path.join(dir, 'upper')), 'no overlay upper dir');
  assert.deepEqual(mountsOf(id), []);
  // Later commands pick the driver from the container, whatever the environment says.
  assert.equal(ply(root, ['start', '-a', 'e1'], { env: OVERLAY }).code, 3);
  assert.deepEqual(mountsOf(id), []);
  plyOk(root, ['rm', 'e1'], { env: OVERLAY });
  assert.ok(!fs.existsSync(dir), 'rm removes containers/<id>');
});

test('two containers from one image do not see each other; the image is unchanged', () => {
  runNamed(VFS, 'w1', 'bb', 'echo one > /etc/motd; echo mine > /only-w1');
  const w2 = runNamed(VFS, 'w2', 'bb', 'echo two > /etc/motd; cat /only-w1 2>/dev/null || echo no-w1');
  assert.equal(w2.out, 'no-w1\n');
  assert.equal(vfs(['run', '--rm', 'bb', 'sh', '-c', 'cat /etc/motd; ls /only-w1 2>/dev/null || echo none']), 'hello from the base image\nnone\n');
  assert.equal(fs.readFileSync(path.join(containerDir(w2.id), 'merged', 'etc', 'motd'), 'utf8'), 'two\n');
  assert.equal(vfs(['diff', 'w2']), 'C /etc\nC /etc/motd\n');
  assert.equal(vfs(['diff', 'w1']), 'C /etc\nC /etc/motd\nA /only-w1\n');
  vfs(['rm', 'w1', 'w2']);
});

test('diff lists the same A/C/D lines as the overlay driver for the same actions', () => {
  const script = [
    'echo one >> /etc/passwd', // write
    'echo new > /added', // add
    'rm /etc/group /bin/vi', // delete
    'mkdir -p /var/data; touch /var/data/x', // a new directory
    'chmod 700 /home/app', // metadata only
    'rm -r /var/log', // a deleted directory: one line
    'rm -r /root; mkdir /root; echo r > /root/file', // a directory made again
    'touch /tmp/t; rm /tmp/t', // a directory whose content came and went
    'cat /etc/motd > /dev/null', // a read changes nothing
  ].join('; ');
  runNamed(OVERLAY, 'dov', 'bb', script);
  const dvfs = runNamed(VFS, 'dvfs', 'bb', script);
  const expected = [
    'A /added',
    'C /bin',
    'D /bin/vi',
    'C /etc',
    'D /etc/group',
    'C /etc/passwd',
    'C /home',
    'C /home/app',
    'C /root',
    'A /root/file',
    'C /tmp',
    'C /var',
    'A /var/data',
    'A /var/data/x',
    'D /var/log',
    '',
  ].join('\n');
  assert.equal(plyOk(root, ['diff', 'dov']), expected, 'overlay');
  assert.equal(vfs(['diff', 'dvfs']), expected, 'vfs');
  // `system df` counts the writable layers' files, the same for both: passwd, /added (4 B), /root/file (2), x (0).
  const passwd = fs.statSync(path.join(containerDir(dvfs.id), 'merged', 'etc', 'passwd')).size;
  const df = JSON.parse(vfs(['system', 'df', '--format', '{{json .}}']).split('\n')[1]!);
  assert.equal(df.Type, 'Containers');
  assert.equal(df.Size, `${2 * (passwd + 4 + 2)}B`);
  vfs(['rm', 'dov', 'dvfs']);
});

test('commit: the new image has the change and not the deleted files; it runs under vfs and overlay', () => {
  runNamed(VFS, 'c1', 'bb', 'echo custom > /etc/motd; mkdir -p /app; echo hi > /app/hello; rm /etc/group');
  vfs(['commit', '-c', 'CMD ["cat", "/app/hello"]', 'c1', 'custom:v1']);
  assert.deepEqual(topLayerNames('custom:v1'), ['app/', 'app/hello', 'etc/', 'etc/.wh.group', 'etc/motd']);
  const check = 'cat /etc/motd /app/hello; ls /etc/group 2>/dev/null || echo gone';
  assert.equal(vfs(['run', '--rm', 'custom:v1', 'sh', '-c', check]), 'custom\nhi\ngone\n');
  assert.equal(plyOk(root, ['run', '--rm', 'custom:v1', 'sh', '-c', check], { env: OVERLAY }), 'custom\nhi\ngone\n');
  assert.equal(vfs(['run', '--rm', 'custom:v1']), 'hi\n');
  const env = { ...VFS, SOURCE_DATE_EPOCH: '1700000000' };
  assert.equal(plyOk(root, ['commit', 'c1', 'rep:a'], { env }), plyOk(root, ['commit', 'c1', 'rep:b'], { env }), 'reproducible with SOURCE_DATE_EPOCH');
  assert.equal(vfs(['run', '--rm', 'bb', 'sh', '-c', 'cat /etc/motd; ls /app 2>/dev/null || echo noapp; ls /etc/group']), 'hello from the base image\nnoapp\n/etc/group\n', 'the image is unchanged');

  // On a two-layer image: deletions of files and a directory, a directory made again (opaque).
  runNamed(VFS, 'c2', 'custom:v1', 'rm /app/hello /etc/motd; rm -r /var; mkdir /var; echo new > /var/only; rm -r /usr/sbin');
  vfs(['commit', 'c2', 'custom:v2']);
  const names = topLayerNames('custom:v2');
  for (const n of ['app/.wh.hello', 'etc/.wh.motd', 'var/.wh..wh..opq', 'var/only', 'usr/.wh.sbin']) assert.ok(names.includes(n), `${n} in ${names.join(',')}`);
  assert.ok(!names.includes('var/.wh.log'), 'an opaque directory needs no whiteouts below it');
  assert.ok(!names.some((n) => n.startsWith('bin/')), 'unchanged directories are not in the layer');
  const check2 = 'ls -A /app; ls /etc/motd 2>/dev/null || echo gone; ls -A /var; ls -d /usr/sbin 2>/dev/null || echo nosbin';
  for (const env of [VFS, OVERLAY]) assert.equal(plyOk(root, ['run', '--rm', 'custom:v2', 'sh', '-c', check2], { env }), 'gone\nonly\nnosbin\n');

  // An overlay container's commit still reads its upper dir.
  runNamed(OVERLAY, 'c3', 'custom:v1', 'echo over > /etc/motd');
  plyOk(root, ['commit', 'c3', 'custom:v3'], { env: VFS });
  assert.deepEqual(topLayerNames('custom:v3'), ['etc/', 'etc/motd']);
  assert.equal(vfs(['run', '--rm', 'custom:v3', 'cat', '/etc/motd']), 'over\n');
  vfs(['rm', 'c1', 'c2', 'c3']);
});

test('stop and start keep the writable layer; a running container has no mounts of its own', () => {
  const id = vfs(['run', '-d', '--name', 'd1', 'bb', 'sleep', '60']).trim();
  assert.deepEqual(mountsOf(id), [], 'no overlay mount for a running vfs container');
  vfs(['exec', 'd1', 'sh', '-c', 'echo kept > /kept']);
  assert.equal(vfs(['diff', 'd1']), 'A /kept\n', 'diff of a running container');
  vfs(['stop', '-t', '0', 'd1']);
  assert.equal(vfs(['diff', 'd1']), 'A /kept\n');
  vfs(['start', 'd1']);
  assert.equal(vfs(['exec', 'd1', 'cat', '/kept']), 'kept\n');
  vfs(['exec', 'd1', 'sh', '-c', 'echo more >> /kept']);
  vfs(['stop', '-t', '0', 'd1']);
  vfs(['start', 'd1']);
  assert.equal(vfs(['exec', 'd1', 'cat', '/kept']), 'kept\nmore\n');
  vfs(['rm', '-f', 'd1']);
  assert.ok(!fs.existsSync(containerDir(id)));
  assert.deepEqual(mountsOf(id), []);
});

test('build under vfs: RUN layers hold the changes, deletions included', () => {
  const ctx = tempDir();
  fs.writeFileSync(path.join(ctx, 'f.txt'), 'copied\n');
  fs.writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM custom:v1\nRUN echo built > /built && rm /etc/passwd\nCOPY f.txt /etc/\nRUN cat /etc/f.txt /built /app/hello\n');
  const out = vfs(['build', '-q', '-t', 'built:v1', ctx]);
  assert.match(out, /^sha256:/);
  assert.deepEqual(topLayerNames('built:v1'), ['etc/', 'etc/f.txt'], 'the RUN that changed nothing added no layer');
  assert.equal(
    plyOk(root, ['run', '--rm', 'built:v1', 'sh', '-c', 'cat /built /etc/f.txt /app/hello; ls /etc/passwd 2>/dev/null || echo nopasswd'], { env: OVERLAY }),
    'built\ncopied\nhi\nnopasswd\n',
  );
});

test('export of a stopped vfs container flattens its own tree', () => {
  runNamed(VFS, 'x1', 'bb', 'echo exported > /data.txt; rm /etc/motd');
  const names = execFileSync('sh', ['-c', `PLY_ROOT=${root} PLY_SERVICE=0 bin/ply export x1 | tar -t`], { encoding: 'utf8' }).split('\n');
  try {
    assert.ok(names.includes('data.txt'));
    assert.ok(!names.includes('etc/motd'));
  } finally {
    vfs(['rm', 'x1']);
  }
});

test('ps -s, inspect and container prune see a vfs container\'s own layer', () => {
  const store = tempDir();
  const env = { PLY_STORAGE_DRIVER: 'vfs', PLY_SERVICE: '0' };
  plyOk(store, ['import', busyboxTar(), 'bb'], { env });
  plyOk(store, ['run', '--name', 'sized', 'bb', 'sh', '-c', 'head -c 300000 /dev/zero > /blob'], { env });
  assert.match(plyOk(store, ['ps', '-a', '-s', '--format', '{{.Size}}'], { env }), /^(29\d|30\d)kB/);
  const inspect = JSON.parse(plyOk(store, ['inspect', 'sized'], { env }))[0];
  assert.equal(inspect.Driver, 'vfs');
  assert.equal(inspect.GraphDriver.Name, 'vfs');
  assert.equal(inspect.GraphDriver.Data.UpperDir, undefined);
  assert.match(plyOk(store, ['container', 'prune', '-f'], { env }), /Total reclaimed space: (29\d|30\d)kB/);
});

test('a store where overlayfs cannot mount (itself on an overlay mount) falls back to vfs by itself', () => {
  const base = tempDir();
  for (const d of ['l', 'u', 'w', 'm']) fs.mkdirSync(path.join(base, d));
  execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${base}/l,upperdir=${base}/u,workdir=${base}/w`, `${base}/m`]);
  try {
    const store = path.join(base, 'm', 'store');
    const env = { PLY_SERVICE: '0' };
    plyOk(store, ['import', busyboxTar(), 'bb'], { env });
    assert.equal(plyOk(store, ['run', '--name', 'auto', 'bb', 'sh', '-c', 'echo hi > /x; cat /x'], { env }), 'hi\n');
    assert.equal(plyOk(store, ['info', '--format', '{{.StorageDriver}}'], { env }).trim(), 'vfs');
    assert.equal(plyOk(store, ['diff', 'auto'], { env }), 'A /x\n');
    plyOk(store, ['commit', 'auto', 'bb:x'], { env });
    assert.equal(plyOk(store, ['run', '--rm', 'bb:x', 'cat', '/x'], { env }), 'hi\n');
    plyOk(store, ['rm', 'auto'], { env });
  } finally {
    execFileSync('umount', ['-l', `${base}/m`]);
  }
});
