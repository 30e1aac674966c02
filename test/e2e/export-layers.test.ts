// End-to-end: `ply export` built from the image's layer blobs + the container's upper dir gives the same tree as
// the mount walk (PLY_EXPORT_MOUNT=1), on multi-layer images with whiteouts, opaque dirs, hardlinks, xattrs.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { readTar } from '../../src/tar/index.js';
import { lsetxattr, mknod, S_IFCHR } from '../../src/native/index.js';
import { busyboxTar, plyOk, tempDir } from '../helpers.js';

let root: string;
let work: string;
before(() => {
  root = tempDir();
  work = tempDir('ply-export-');
  plyOk(root, ['import', busyboxTar(), 'base:v1']);
});

interface Model {
  /** path → description of what extracting the tar leaves there (hardlinks as the sorted group of names). */
  tree: Map<string, string>;
  names: string[];
}

/** What a tar holds once extracted (later entries for a path replace earlier ones), plus checks on its order. */
async function model(file: string, strict: boolean): Promise<Model> {
  const entries = new Map<string, { desc: string; inode: number }>();
  const names: string[] = [];
  let inodes = 0;
  for await (const e of readTar(fs.createReadStream(file))) {
    const h = e.header;
    const name = h.name.replace(/\/$/, '');
    names.push(name);
    if (strict) {
      assert.ok(!path.posix.basename(name).startsWith('.wh.'), `whiteout entry ${name}`);
      const parent = path.posix.dirname(name);
      if (parent !== '.') assert.ok(entries.has(parent), `${name} comes before its parent`);
    }
    if (h.type === 'link') {
      const target = entries.get(h.linkname!.replace(/\/$/, ''));
      assert.ok(target, `${name}: hardlink before its target ${h.linkname}`);
      entries.set(name, target);
      continue;
    }
    const body = await e.buffer();
    const xattrs = [...(h.xattrs ?? new Map<string, Buffer>())].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v.toString('hex')}`);
    const mode = h.type === 'symlink' ? 0o777 : h.mode & 0o7777;
    const desc = [h.type, mode.toString(8), h.uid, h.gid, Math.trunc(h.mtime), h.size, h.linkname ?? '', `${h.devmajor ?? ''},${h.devminor ?? ''}`, xattrs.join(';'), createHash('sha256').update(body).digest('hex')].join(' ');
    entries.set(name, { desc, inode: ++inodes });
  }
  const groups = new Map<number, string[]>();
  for (const [n, v] of entries) groups.set(v.inode, [...(groups.get(v.inode) ?? []), n]);
  const tree = new Map<string, string>();
  for (const [n, v] of entries) {
    const g = groups.get(v.inode)!;
    tree.set(n, `${v.desc}${g.length > 1 ? ` links=${g.sort().join(',')}` : ''}`);
  }
  return { tree, names };
}

/** Extracted with GNU tar: a listing of every path's type, mode, owner, mtime, size, link target and link count. */
function extractedListing(file: string): string {
  const dir = fs.mkdtempSync(path.join(work, 'x-'));
  execFileSync('tar', ['-C', dir, '--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', file]);
  const out = execFileSync('sh', ['-c', `cd ${dir} && find . -mindepth 1 -printf '%p %y %m %U %G %T@ %s %l %n\\n' | sort && find . -type f -print0 | sort -z | xargs -0r sha256sum`], { encoding: 'utf8', maxBuffer: 64 << 20 });
  fs.rmSync(dir, { recursive: true, force: true });
  return out;
}

/** Exports `name` both ways and asserts they hold the same tree; returns the number of paths. */
async function assertSameExport(name: string): Promise<number> {
  const fresh = path.join(work, `${name}-layers.tar`);
  const mounted = path.join(work, `${name}-mount.tar`);
  plyOk(root, ['export', '-o', fresh, name]);
  plyOk(root, ['export', '-o', mounted, name], { env: { PLY_EXPORT_MOUNT: '1' } });
  const a = await model(fresh, true);
  const b = await model(mounted, false);
  assert.deepEqual([...a.tree].sort(), [...b.tree].sort());
  const [la, lb] = [extractedListing(fresh), extractedListing(mounted)];
  if (la !== lb) {
    fs.writeFileSync(`${fresh}.list`, la);
    fs.writeFileSync(`${mounted}.list`, lb);
    assert.fail(execFileSync('sh', ['-c', `diff ${mounted}.list ${fresh}.list || true`], { encoding: 'utf8' }));
  }
  return a.tree.size;
}

test('busybox image with committed layers: deletions, opaque dirs, hardlinks, symlinks, fifos; running and stopped', async () => {
  plyOk(root, ['run', '--name', 'l1', 'base:v1', 'sh', '-c', [
    'mkdir -p /data/sub /data/gone && echo a > /data/a && ln /data/a /data/a2 && ln /data/a /data/a3 && ln -s /data/a /data/sl',
    'echo x > /data/sub/x && echo g > /data/gone/g && mkfifo /data/fifo && echo motd > /etc/motd && chmod 4750 /data/a && chown 1000:1000 /data/a',
    'touch -d 2001-02-03 /data/sub/x',
  ].join(' && ')]);
  plyOk(root, ['commit', 'l1', 'st:1']);
  plyOk(root, ['run', '--name', 'l2', 'st:1', 'sh', '-c', [
    'rm -rf /data/sub && mkdir /data/sub && echo y > /data/sub/y',
    'rm -r /data/gone /etc/passwd && echo changed > /data/a2 && rm -rf /var && ln -s /tmp /var && mkdir -p /new/deep && echo n > /new/deep/n',
  ].join(' && ')]);
  plyOk(root, ['commit', 'l2', 'st:2']);
  plyOk(root, ['run', '--name', 'e1', 'st:2', 'sh', '-c', 'echo new > /bin/newfile; rm /data/a3; touch /data/sub/z; rm -rf /new; mkdir /new; ln /data/sub/y /data/y2; rm /bin/ls']);
  // Host-side changes to the upper dir: xattrs, an overlay whiteout, an opaque directory.
  const id = plyOk(root, ['inspect', '-f', '{{.Id}}', 'e1']).trim();
  const upper = path.join(root, 'containers', id, 'upper');
  lsetxattr(path.join(upper, 'bin', 'newfile'), 'user.note', Buffer.from('hello'));
  lsetxattr(path.join(upper, 'bin', 'newfile'), 'trusted.t', Buffer.from([0, 1, 2]));
  mknod(path.join(upper, 'bin', 'cat'), S_IFCHR, 0, 0);
  fs.mkdirSync(path.join(upper, 'home'), { mode: 0o700 });
  lsetxattr(path.join(upper, 'home'), 'trusted.overlay.opaque', Buffer.from('y'));
  const n = await assertSameExport('e1');
  assert.ok(n > 300, `${n} paths`);

  // A running container (the rootfs mounted, the upper dir live).
  plyOk(root, ['run', '-d', '--name', 'r1', 'st:2', 'sh', '-c', 'echo live > /live; rm /etc/motd; sleep 60']);
  for (let i = 0; i < 50 && !fs.existsSync(path.join(root, 'containers', plyOk(root, ['inspect', '-f', '{{.Id}}', 'r1']).trim(), 'upper', 'live')); i++) {
    execFileSync('sleep', ['0.1']);
  }
  await assertSameExport('r1');
  plyOk(root, ['rm', '-f', 'r1', 'l1', 'l2', 'e1']);
});

test('hand-made layers (gzip, zstd, plain): OCI whiteouts, 0/0 devices, implicit dirs, symlinked parents, hidden hardlink targets', async () => {
  const dir = fs.mkdtempSync(path.join(work, 'hand-'));
  execFileSync('python3', ['-c', HAND_IMAGE, path.join(dir, 'hand.tar')]);
  plyOk(root, ['load', '-i', path.join(dir, 'hand.tar')]);
  plyOk(root, ['create', '--name', 'h1', 'hand:1']);
  const id = plyOk(root, ['inspect', '-f', '{{.Id}}', 'h1']).trim();
  const upper = path.join(root, 'containers', id, 'upper');
  fs.mkdirSync(path.join(upper, 'keep'), { recursive: true });
  fs.writeFileSync(path.join(upper, 'keep', 'fromupper'), 'u');
  mknod(path.join(upper, 'keep', 'k'), S_IFCHR, 0, 0);
  fs.mkdirSync(path.join(upper, 'newdir'));
  lsetxattr(path.join(upper, 'newdir'), 'trusted.overlay.opaque', Buffer.from('y'));
  fs.writeFileSync(path.join(upper, 'newdir', 'only'), 'o');
  const n = await assertSameExport('h1');
  assert.ok(n > 30, `${n} paths`);
  const listing = execFileSync('tar', ['-tf', path.join(work, 'h1-layers.tar')], { encoding: 'utf8' }).split('\n');
  for (const p of ['usr/bin/tool2', 'usr/lib/libx.so', 'imp/deep/file', 'fileToDir/in', 'keep/fromupper', 'newdir/only', 'proc/']) assert.ok(listing.includes(p), p);
  for (const p of ['usr/bin/tool', 'gone/', 'opq/a', 'etc/rmme', 'keep/k', 'newdir/sub/f', 'dirToFile/child']) assert.ok(!listing.includes(p), p);
  plyOk(root, ['rm', 'h1']);
});

test('the Debian rootfs (when present): same tree both ways', { skip: !fs.existsSync('/var/cache/ply-demo/bookworm-minbase.tar') }, async () => {
  plyOk(root, ['import', '/var/cache/ply-demo/bookworm-minbase.tar', 'deb:1']);
  plyOk(root, ['run', '--name', 'd1', 'deb:1', 'sh', '-c', 'rm -rf /usr/share/doc && mkdir /usr/share/doc && echo x > /usr/share/doc/x; ln /bin/bash /bash2; rm /etc/passwd']);
  const n = await assertSameExport('d1');
  assert.ok(n > 5000, `${n} paths`);
  plyOk(root, ['rm', 'd1']);
});

/** Builds a docker-archive of hand-made layers (python3 -c HAND_IMAGE OUT.tar). */
const HAND_IMAGE = fs.readFileSync(new URL(import.meta.url), 'utf8').split('/*HAND_IMAGE\n')[1]!.split('\nHAND_IMAGE*/')[0]!;
/*HAND_IMAGE
import tarfile, io, json, hashlib, subprocess, sys, gzip, os
out = sys.argv[1]
def layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.PAX_FORMAT) as t:
        for e in entries:
            name, kind = e[0], e[1]
            ti = tarfile.TarInfo(name)
            ti.mtime = e[2].get('mtime', 1600000000) if len(e) > 2 else 1600000000
            o = e[2] if len(e) > 2 else {}
            ti.mode = o.get('mode', 0o755 if kind == 'dir' else 0o644)
            ti.uid = o.get('uid', 0); ti.gid = o.get('gid', 0)
            if 'xattrs' in o: ti.pax_headers = {('SCHILY.xattr.' + k): v for k, v in o['xattrs'].items()}
            data = None
            if kind == 'dir': ti.type = tarfile.DIRTYPE
            elif kind == 'file':
                data = o.get('data', name.encode()); ti.size = len(data)
            elif kind == 'sym': ti.type = tarfile.SYMTYPE; ti.linkname = o['to']
            elif kind == 'hard': ti.type = tarfile.LNKTYPE; ti.linkname = o['to']
            elif kind == 'fifo': ti.type = tarfile.FIFOTYPE
            elif kind == 'chr': ti.type = tarfile.CHRTYPE; ti.devmajor, ti.devminor = o['dev']
            t.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()
L1 = layer([
  ('etc/', 'dir'), ('etc/passwd', 'file', {'data': b'root:x:0:0::/:/bin/sh\n'}), ('etc/rmme', 'file'),
  ('usr/', 'dir', {'mtime': 1500000000}), ('usr/bin/', 'dir'),
  ('usr/bin/tool', 'file', {'mode': 0o4755, 'uid': 5, 'gid': 6, 'xattrs': {'user.a': '1', 'trusted.t': 'tv', 'trusted.overlay.x': 'y'}, 'data': b'TOOL' * 1000}),
  ('usr/bin/tool2', 'hard', {'to': 'usr/bin/tool'}), ('usr/bin/tool3', 'hard', {'to': 'usr/bin/tool'}),
  ('usr/bin/keep', 'file'), ('usr/bin/keep2', 'hard', {'to': 'usr/bin/keep'}),
  ('lib', 'sym', {'to': 'usr/lib', 'xattrs': {'user.s': 'no', 'trusted.s': 'yes'}}), ('lib/libx.so', 'file'),
  ('imp/deep/file', 'file'), ('late/x', 'file'), ('late/', 'dir', {'mode': 0o700, 'mtime': 1000}),
  ('dup', 'file', {'data': b'one'}), ('dup', 'file', {'data': b'two'}),
  ('fifo', 'fifo', {'mode': 0o640}), ('dev/', 'dir'), ('dev/null', 'chr', {'dev': (1, 3), 'mode': 0o666}),
  ('opq/', 'dir'), ('opq/a', 'file'), ('opq/b/', 'dir'), ('opq/b/c', 'file'),
  ('gone/', 'dir'), ('gone/f', 'file'), ('keep/', 'dir', {'mode': 0o755}), ('keep/k', 'file'),
  ('./dotslash', 'file'), ('/abs', 'file'), ('frac', 'file', {'mtime': 1234.75}),
  ('fileToDir', 'file'), ('dirToFile/', 'dir'), ('dirToFile/child', 'file'), ('big', 'file', {'data': os.urandom(3 << 20)}),
])
L2 = layer([
  ('usr/bin/.wh.tool', 'file'), ('opq/', 'dir', {'mode': 0o711}), ('opq/.wh..wh..opq', 'file'), ('opq/c', 'file'),
  ('.wh.gone', 'file'), ('etc/passwd', 'file', {'data': b'new passwd\n', 'mtime': 1700000000}),
  ('keep/', 'dir', {'mode': 0o750, 'uid': 7, 'mtime': 1650000000}), ('keep/k2', 'file'), ('newdir/sub/f', 'file'),
  ('.wh..wh.plnk', 'file'),
])
L3 = layer([
  ('fileToDir/', 'dir'), ('fileToDir/in', 'file'), ('dirToFile', 'file', {'data': b'now a file'}),
  ('etc/rmme', 'chr', {'dev': (0, 0)}), ('usr/bin/keep', 'file', {'data': b'replaced'}),
])
diff_ids = ['sha256:' + hashlib.sha256(l).hexdigest() for l in (L1, L2, L3)]
d = os.path.dirname(out) or '.'
with open(os.path.join(d, 'l1.tar.gz'), 'wb') as f: f.write(gzip.compress(L1))
z = subprocess.run(['zstd', '-q', '-c'], input=L2, stdout=subprocess.PIPE, check=True).stdout
with open(os.path.join(d, 'l2.tar.zst'), 'wb') as f: f.write(z)
with open(os.path.join(d, 'l3.tar'), 'wb') as f: f.write(L3)
cfg = json.dumps({'architecture': 'amd64', 'os': 'linux', 'config': {'Cmd': ['/bin/sh']}, 'rootfs': {'type': 'layers', 'diff_ids': diff_ids}}).encode()
with open(os.path.join(d, 'config.json'), 'wb') as f: f.write(cfg)
with open(os.path.join(d, 'manifest.json'), 'w') as f: json.dump([{'Config': 'config.json', 'RepoTags': ['hand:1'], 'Layers': ['l1.tar.gz', 'l2.tar.zst', 'l3.tar']}], f)
subprocess.run(['tar', '-C', d, '-cf', out, 'manifest.json', 'config.json', 'l1.tar.gz', 'l2.tar.zst', 'l3.tar'], check=True)
HAND_IMAGE*/
