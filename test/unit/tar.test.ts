// Tests for src/tar against real oracles: GNU tar (/usr/bin/tar) and Python's tarfile.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvalidArchiveError, InvalidArgumentError, UnsupportedError } from '../../src/errors.js';
import {
  headerBlocks,
  isTarHeaderBlock,
  readTar,
  TarWriter,
  type TarHeader,
  type TarWriterOptions,
} from '../../src/tar/index.js';

// ---------------------------------------------------------------------------------------------
// Oracle helpers (Python): fixture creation, tree scans, tarfile listings, crafted archives.

const PY = String.raw`
import os, sys, json, stat, hashlib, tarfile, pwd, grp, random, io

def sha_file(p):
    h = hashlib.sha256()
    with open(p, 'rb') as f:
        while True:
            b = f.read(1 << 20)
            if not b: break
            h.update(b)
    return h.hexdigest()

def rec(base, rel):
    p = os.path.join(base, rel)
    st = os.lstat(p)
    m = st.st_mode
    r = {'path': rel, 'mode': stat.S_IMODE(m), 'uid': st.st_uid, 'gid': st.st_gid,
         'mtime_ns': str(st.st_mtime_ns), 'ino': st.st_ino, 'nlink': st.st_nlink, 'size': 0}
    try: r['uname'] = pwd.getpwuid(st.st_uid).pw_name
    except KeyError: pass
    try: r['gname'] = grp.getgrgid(st.st_gid).gr_name
    except KeyError: pass
    if stat.S_ISREG(m): r['kind'] = 'file'; r['size'] = st.st_size; r['sha256'] = sha_file(p)
    elif stat.S_ISDIR(m): r['kind'] = 'dir'
    elif stat.S_ISLNK(m): r['kind'] = 'symlink'; r['target'] = os.readlink(p)
    elif stat.S_ISFIFO(m): r['kind'] = 'fifo'
    elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
        r['kind'] = 'chardev' if stat.S_ISCHR(m) else 'blockdev'
        r['major'] = os.major(st.st_rdev); r['minor'] = os.minor(st.st_rdev)
    xs = {}
    if r['kind'] in ('file', 'dir'):
        for n in sorted(os.listxattr(p, follow_symlinks=False)):
            if n.startswith('user.'): xs[n] = os.getxattr(p, n, follow_symlinks=False).hex()
    r['xattrs'] = xs
    return r

def scan(base, top):
    out = []
    def walk(rel):
        r = rec(base, rel); out.append(r)
        if r['kind'] == 'dir':
            for n in sorted(os.listdir(os.path.join(base, rel))): walk(rel + '/' + n)
    walk(top)
    return out

KNOWN = {'path', 'linkpath', 'size', 'uid', 'gid', 'uname', 'gname', 'mtime', 'atime', 'ctime'}
def listtar(path):
    out = []
    with tarfile.open(path, 'r:') as tf:
        for m in tf:
            d = {'name': m.name, 'type': m.type.decode('latin1'), 'mode': m.mode, 'uid': m.uid, 'gid': m.gid,
                 'uname': m.uname, 'gname': m.gname, 'size': m.size, 'mtime': m.mtime, 'linkname': m.linkname,
                 'devmajor': m.devmajor, 'devminor': m.devminor}
            xs = {}; pax = {}
            for k, v in m.pax_headers.items():
                if k.startswith('SCHILY.xattr.'): xs[k[13:]] = v.encode('utf-8', 'surrogateescape').hex()
                elif k not in KNOWN: pax[k] = v
            d['xattrs'] = xs; d['pax'] = pax
            if m.isreg():
                f = tf.extractfile(m); h = hashlib.sha256()
                while True:
                    b = f.read(1 << 20)
                    if not b: break
                    h.update(b)
                d['sha256'] = h.hexdigest()
            out.append(d)
    return out

def mkfixture(base):
    t = os.path.join(base, 'tree')
    os.makedirs(t)
    rnd = random.Random(42)
    def w(rel, data, mode=0o644):
        p = os.path.join(t, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, 'wb') as f: f.write(data)
        os.chmod(p, mode)
        return p
    for n in (0, 1, 511, 512, 513, 1048577): w('size-%d' % n, rnd.randbytes(n))
    # Archive paths are 'tree/' + rel: lengths 99, 100, 101, 155, 256 (exactly ustar prefix+name), 300.
    w('n' * 94, b'99')
    w('o' * 95, b'100')
    w('q' * 96, b'101')
    w('long155/' + 'b' * 60 + '/' + 'c' * 81, b'155')
    w('p256/' + 'f' * 145 + '/' + 'g' * 100, b'256')
    w('p300/' + 'h' * 200 + '/' + 'i' * 89, b'300')
    w('j' * 200, b'single 200-char component')
    w('/'.join('lvl%02d' % i for i in range(40)) + '/deep.txt', b'deep')
    w('h\u00e9llo w\u00f6rld \u2603.txt', 'unicode'.encode())
    w('\u30c7\u30a3\u30ec\u30af\u30c8\u30ea/' + '\u30d5\u30a1\u30a4\u30eb' * 15 + '.txt', b'cjk')
    os.symlink('size-512', os.path.join(t, 'sym-short'))
    os.symlink('k' * 150 + '/target', os.path.join(t, 'sym-long'))
    os.symlink('h\u00e9llo w\u00f6rld \u2603.txt', os.path.join(t, 'sym-utf8'))
    os.makedirs(os.path.join(t, 'emptydir'))
    os.symlink('emptydir', os.path.join(t, 'sym-dir'))
    w('hard-1', b'shared by three names\n')
    os.makedirs(os.path.join(t, 'sub'))
    os.link(os.path.join(t, 'hard-1'), os.path.join(t, 'hard-2'))
    os.link(os.path.join(t, 'hard-1'), os.path.join(t, 'sub/hard-3'))
    os.mkfifo(os.path.join(t, 'fifo'), 0o640)
    os.mknod(os.path.join(t, 'cdev'), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(os.path.join(t, 'bdev'), stat.S_IFBLK | 0o660, os.makedev(4095, 1048575))
    for rel, uid, mode in (('own-1000', 1000, 0o640), ('own-3m', 3000000, 0o600)):
        p = w(rel, b'owned')
        os.chown(p, uid, uid)
        os.chmod(p, mode)
    d = os.path.join(t, 'dir-3m'); os.makedirs(d); os.chown(d, 3000000, 3000001)
    for rel, mode in (('suid', 0o4755), ('sgid', 0o2755), ('zero-mode', 0o000)):
        p = w(rel, b'#!/bin/sh\n'); os.chmod(p, mode)
    d = os.path.join(t, 'sticky-dir'); os.makedirs(d); os.chmod(d, 0o1777)
    p = w('xattr-file', b'has xattrs')
    os.setxattr(p, 'user.bin', b'\x00\xff\x01')
    os.setxattr(p, 'user.text', b'hello')
    os.setxattr(p, 'user.weird', b'a=b\nc\x00d 12 x=y\n')
    d = os.path.join(t, 'xattr-dir'); os.makedirs(d)
    os.setxattr(d, 'user.long', b'\xff' * 300)
    w('future', b'far away')
    # Deterministic, fractional mtimes (bottom-up so directories keep theirs).
    paths = []
    for root, dirs, files in os.walk(t):
        for n in dirs + files: paths.append(os.path.join(root, n))
    paths.sort(key=lambda p: -p.count('/'))
    for i, p in enumerate(paths + [t]):
        ns = 1600000000_123456789 + i * 1_000_000_007
        if p.endswith('/future'): ns = 9000000000_500000000
        os.utime(p, ns=(ns, ns), follow_symlinks=False)

def mkgnu(path, big):
    # GNU-format archive with base-256 uid/gid and a negative mtime (Python writes base-256 for these).
    with tarfile.open(path, 'w', format=tarfile.GNU_FORMAT) as tf:
        ti = tarfile.TarInfo('big-ids'); ti.size = 5; ti.uid = 3000000; ti.gid = 4000000; ti.mtime = -1000; ti.mode = 0o644
        tf.addfile(ti, io.BytesIO(b'hello'))
        ti = tarfile.TarInfo('b256-size'); ti.size = 600; ti.mtime = 1700000000; ti.uid = 1; ti.gid = 2
        tf.addfile(ti, io.BytesIO(bytes(range(256)) * 2 + b'x' * 88))
    if big:
        # Re-encode the second member's size field in base-256 and fix its checksum.
        data = bytearray(open(path, 'rb').read())
        off = 1024
        assert data[off:off + 9] == b'b256-size'
        data[off + 124:off + 136] = b'\x80' + (600).to_bytes(11, 'big')
        data[off + 148:off + 156] = b' ' * 8
        s = sum(data[off:off + 512])
        data[off + 148:off + 156] = b'%06o\x00 ' % s
        open(path, 'wb').write(bytes(data))

def mkpax(path, kind):
    if kind == 'global':
        with tarfile.open(path, 'w', format=tarfile.PAX_FORMAT, pax_headers={'uid': '4242', 'comment': 'git-sha'}) as tf:
            for n in ('g1', 'g2'):
                ti = tarfile.TarInfo(n); ti.size = 2; ti.uid = 5; ti.mtime = 1700000000
                tf.addfile(ti, io.BytesIO(b'gg'))
    elif kind == 'unknown':
        with tarfile.open(path, 'w', format=tarfile.PAX_FORMAT) as tf:
            ti = tarfile.TarInfo('u1'); ti.size = 3; ti.mtime = 1700000000
            ti.pax_headers = {'comment': 'hello w\u00f6rld', 'LIBARCHIVE.creationtime': '123'}
            tf.addfile(ti, io.BytesIO(b'abc'))
    elif kind == 'bigpax':
        with tarfile.open(path, 'w', format=tarfile.PAX_FORMAT) as tf:
            ti = tarfile.TarInfo('x'); ti.pax_headers = {'comment': 'x' * (1 << 20)}
            tf.addfile(ti, io.BytesIO(b''))
    elif kind == 'longname':
        with tarfile.open(path, 'w', format=tarfile.GNU_FORMAT) as tf:
            ti = tarfile.TarInfo('a' * 70000)
            tf.addfile(ti, io.BytesIO(b''))

cmd = sys.argv[1]
if cmd == 'scan': print(json.dumps(scan(sys.argv[2], sys.argv[3])))
elif cmd == 'list': print(json.dumps(listtar(sys.argv[2])))
elif cmd == 'mkfixture': mkfixture(sys.argv[2])
elif cmd == 'mkgnu': mkgnu(sys.argv[2], sys.argv[3] == 'big')
elif cmd == 'mkpax': mkpax(sys.argv[2], sys.argv[3])
`;

let tmp = '';
let pyScript = '';
let base = ''; // holds tree/
let recs: Rec[] = [];
let recMap = new Map<string, Rec>();

interface Rec {
  path: string;
  kind: string;
  mode: number;
  uid: number;
  gid: number;
  uname?: string;
  gname?: string;
  mtime_ns: string;
  ino: number;
  nlink: number;
  size: number;
  sha256?: string;
  target?: string;
  major?: number;
  minor?: number;
  xattrs: Record<string, string>;
}

/** One entry, normalised for comparisons (from our reader or from Python). */
interface Norm {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  size: number;
  mtime: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs: Record<string, string>;
  pax?: Record<string, string>;
  sha256?: string;
}

function run(cmd: string, args: string[], opts: { ok?: number[]; cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, {
    cwd: opts.cwd,
    maxBuffer: 256 << 20,
    encoding: 'utf8',
    env: { ...process.env, PYTHONUTF8: '1', LC_ALL: 'C.UTF-8', TZ: 'UTC' },
  });
  if (r.error) throw r.error;
  const ok = opts.ok ?? [0];
  if (!ok.includes(r.status ?? -1)) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  }
  return r.stdout;
}

function py<T = unknown>(...args: string[]): T {
  const out = run('python3', [pyScript, ...args]);
  return (out.trim() ? JSON.parse(out) : undefined) as T;
}

function scan(dir: string, top = 'tree'): Rec[] {
  return py<Rec[]>('scan', dir, top);
}

const PY_TYPES: Record<string, string> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'chardev',
  '4': 'blockdev',
  '5': 'dir',
  '6': 'fifo',
};

function pyList(tarPath: string): Norm[] {
  type P = Omit<Norm, 'type'> & { type: string; linkname: string; devmajor: number; devminor: number };
  return py<P[]>('list', tarPath).map((p) => {
    const type = PY_TYPES[p.type] ?? `?${p.type}`;
    const n: Norm = {
      name: p.name,
      type,
      mode: p.mode & 0o7777,
      uid: p.uid,
      gid: p.gid,
      uname: p.uname,
      gname: p.gname,
      size: type === 'file' ? p.size : 0,
      mtime: p.mtime,
      xattrs: p.xattrs,
      pax: p.pax,
    };
    if (type === 'link' || type === 'symlink') n.linkname = p.linkname;
    if (type === 'chardev' || type === 'blockdev') {
      n.devmajor = p.devmajor;
      n.devminor = p.devminor;
    }
    if (p.sha256) n.sha256 = p.sha256;
    return n;
  });
}

function normHeader(h: TarHeader, sha?: string): Norm {
  const n: Norm = {
    name: h.name.replace(/\/+$/, ''),
    type: h.type,
    mode: h.mode,
    uid: h.uid,
    gid: h.gid,
    uname: h.uname ?? '',
    gname: h.gname ?? '',
    size: h.size,
    mtime: h.mtime,
    xattrs: Object.fromEntries([...(h.xattrs ?? new Map<string, Buffer>())].map(([k, v]) => [k, v.toString('hex')])),
    pax: h.pax ?? {},
  };
  if (h.linkname !== undefined) n.linkname = h.linkname;
  if (h.devmajor !== undefined) {
    n.devmajor = h.devmajor;
    n.devminor = h.devminor;
  }
  if (sha !== undefined) n.sha256 = sha;
  return n;
}

type Src = AsyncIterable<Buffer> | NodeJS.ReadableStream;

/** Read a whole archive with readTar, hashing every file body. */
async function readAll(src: Src): Promise<Norm[]> {
  const out: Norm[] = [];
  for await (const e of readTar(src)) {
    let sha: string | undefined;
    if (e.header.type === 'file') {
      const h = createHash('sha256');
      let n = 0;
      for await (const c of e.body) {
        h.update(c);
        n += c.length;
      }
      assert.equal(n, e.header.size, `body length of ${e.header.name}`);
      sha = h.digest('hex');
    }
    out.push(normHeader(e.header, sha));
  }
  return out;
}

async function drain(src: Src): Promise<number> {
  let n = 0;
  for await (const e of readTar(src)) {
    for await (const c of e.body) void c;
    n++;
  }
  return n;
}

/** Feed a buffer in pseudo-random chunk sizes (including 1-byte chunks) to stress chunk boundaries. */
async function* chunked(buf: Buffer, seed = 1): AsyncGenerator<Buffer> {
  let x = seed;
  let p = 0;
  while (p < buf.length) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    const r = x % 10;
    const n = r === 0 ? 1 : r < 5 ? 1 + (x % 700) : 1 + (x % 70000);
    yield buf.subarray(p, Math.min(buf.length, p + n));
    p += n;
  }
}

async function* once(buf: Buffer): AsyncGenerator<Buffer> {
  yield buf;
}

function utf8Len(s: string): number {
  return Buffer.byteLength(s);
}

/** Check entries against the scanned tree. */
function checkAgainstTree(
  entries: Norm[],
  opts: { mtime: 'exact' | 'floor'; xattrs: boolean; expectAll: boolean; what: string },
): void {
  const seen = new Set<string>();
  for (const e of entries) {
    const what = `${opts.what}: ${e.name}`;
    const r = recMap.get(e.name);
    assert.ok(r, `${what}: not in the tree`);
    assert.ok(!seen.has(e.name), `${what}: duplicate`);
    seen.add(e.name);
    if (e.type === 'link') {
      assert.equal(r.kind, 'file', what);
      const target = recMap.get(e.linkname!);
      assert.ok(target, `${what}: hardlink target ${e.linkname} not in tree`);
      assert.equal(target.ino, r.ino, `${what}: hardlink target is another inode`);
      assert.ok(seen.has(e.linkname!), `${what}: hardlink before its target`);
    } else {
      assert.equal(e.type, r.kind, `${what}: type`);
    }
    assert.equal(e.mode, r.mode, `${what}: mode`);
    assert.equal(e.uid, r.uid, `${what}: uid`);
    assert.equal(e.gid, r.gid, `${what}: gid`);
    assert.equal(e.uname, r.uname ?? '', `${what}: uname`);
    assert.equal(e.gname, r.gname ?? '', `${what}: gname`);
    const ns = BigInt(r.mtime_ns);
    const sec = Number(ns / 1_000_000_000n);
    if (opts.mtime === 'floor') assert.equal(e.mtime, sec, `${what}: mtime`);
    else assert.ok(Math.abs(e.mtime - Number(ns) / 1e9) < 2e-6, `${what}: mtime ${e.mtime} vs ${r.mtime_ns}`);
    if (e.type === 'file') {
      assert.equal(e.size, r.size, `${what}: size`);
      assert.equal(e.sha256, r.sha256, `${what}: content`);
    } else assert.equal(e.size, 0, `${what}: size`);
    if (e.type === 'symlink') assert.equal(e.linkname, r.target, `${what}: symlink target`);
    if (e.type === 'chardev' || e.type === 'blockdev') {
      assert.equal(e.devmajor, r.major, `${what}: devmajor`);
      assert.equal(e.devminor, r.minor, `${what}: devminor`);
    }
    assert.deepEqual(e.xattrs, opts.xattrs && e.type !== 'link' ? r.xattrs : {}, `${what}: xattrs`);
  }
  if (opts.expectAll) {
    const missing = recs.filter((r) => !seen.has(r.path)).map((r) => r.path);
    assert.deepEqual(missing, [], `${opts.what}: entries missing from the archive`);
  }
}

/** Compare an extracted tree with the original (hardlink groups, contents, metadata). */
function compareTrees(a: Rec[], b: Rec[], mtime: 'floor' | 'us', what: string): void {
  assert.deepEqual(
    b.map((r) => r.path),
    a.map((r) => r.path),
    `${what}: same set of paths`,
  );
  const groups = (rs: Rec[]): Map<string, string> => {
    const byIno = new Map<number, string[]>();
    for (const r of rs) if (r.kind === 'file') byIno.set(r.ino, [...(byIno.get(r.ino) ?? []), r.path]);
    const m = new Map<string, string>();
    for (const ps of byIno.values()) for (const p of ps) m.set(p, ps.sort().join('|'));
    return m;
  };
  const ga = groups(a);
  const gb = groups(b);
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    const w = `${what}: ${x.path}`;
    assert.equal(y.kind, x.kind, `${w}: kind`);
    assert.equal(y.mode, x.mode, `${w}: mode`);
    assert.equal(y.uid, x.uid, `${w}: uid`);
    assert.equal(y.gid, x.gid, `${w}: gid`);
    assert.equal(y.size, x.size, `${w}: size`);
    assert.equal(y.sha256, x.sha256, `${w}: content`);
    assert.equal(y.target, x.target, `${w}: symlink target`);
    assert.equal(y.major, x.major, `${w}: major`);
    assert.equal(y.minor, x.minor, `${w}: minor`);
    assert.deepEqual(y.xattrs, x.xattrs, `${w}: xattrs`);
    if (x.kind === 'file') {
      assert.equal(y.nlink, x.nlink, `${w}: nlink`);
      assert.equal(gb.get(y.path), ga.get(x.path), `${w}: hardlink group`);
    }
    const nx = BigInt(x.mtime_ns);
    const ny = BigInt(y.mtime_ns);
    if (mtime === 'floor') assert.equal(ny, (nx / 1_000_000_000n) * 1_000_000_000n, `${w}: mtime`);
    else {
      const d = nx > ny ? nx - ny : ny - nx;
      assert.ok(d < 2000n, `${w}: mtime ${y.mtime_ns} vs ${x.mtime_ns}`);
    }
  }
}

/** Write the scanned tree with TarWriter (hardlinks become 'link' entries, big bodies are streamed). */
async function writeTree(out: string, opts: TarWriterOptions = {}, subset?: (r: Rec) => boolean): Promise<void> {
  const w = new TarWriter(opts);
  const done = pipeline(w.stream, createWriteStream(out));
  try {
    const inodes = new Map<number, string>();
    for (const r of recs) {
      if (subset && !subset(r)) continue;
      const h: TarHeader = {
        name: r.kind === 'dir' ? `${r.path}/` : r.path,
        type: r.kind as TarHeader['type'],
        mode: r.mode,
        uid: r.uid,
        gid: r.gid,
        size: r.kind === 'file' ? r.size : 0,
        mtime: Number(BigInt(r.mtime_ns)) / 1e9,
      };
      if (r.uname) h.uname = r.uname;
      if (r.gname) h.gname = r.gname;
      if (r.target !== undefined) h.linkname = r.target;
      if (r.major !== undefined) {
        h.devmajor = r.major;
        h.devminor = r.minor;
      }
      const xs = Object.entries(r.xattrs);
      if (xs.length) h.xattrs = new Map(xs.map(([k, v]) => [k, Buffer.from(v, 'hex')]));
      if (r.kind === 'file' && r.nlink > 1) {
        const first = inodes.get(r.ino);
        if (first !== undefined) {
          await w.add({ ...h, type: 'link', linkname: first, size: 0, xattrs: undefined });
          continue;
        }
        inodes.set(r.ino, r.path);
      }
      const p = join(base, r.path);
      if (r.kind !== 'file') await w.add(h);
      else if (r.size > 65536) await w.add(h, createReadStream(p));
      else await w.add(h, readFileSync(p));
    }
    await w.finish();
  } catch (e) {
    w.destroy(e as Error);
    await done.catch(() => {});
    throw e;
  }
  await done;
}

/** Re-write an archive: readTar -> TarWriter, streaming bodies straight through. */
async function rewrite(src: string, dst: string, opts: TarWriterOptions = {}): Promise<void> {
  const w = new TarWriter(opts);
  const done = pipeline(w.stream, createWriteStream(dst));
  try {
    for await (const e of readTar(createReadStream(src))) await w.add(e.header, e.body);
    await w.finish();
  } catch (e) {
    w.destroy(e as Error);
    await done.catch(() => {});
    throw e;
  }
  await done;
}

function gnuTar(args: string[], ok?: number[]): string {
  return run('tar', args, { ok });
}

function extract(tarPath: string, name: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  gnuTar(['--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', tarPath, '-C', dir]);
  return dir;
}

/** Can GNU tar store this entry in plain ustar? */
function fitsUstar(r: Rec): boolean {
  const name = r.kind === 'dir' ? `${r.path}/` : r.path;
  let nameOk = utf8Len(name) <= 100;
  for (let i = name.indexOf('/'); !nameOk && i >= 0; i = name.indexOf('/', i + 1)) {
    nameOk = utf8Len(name.slice(0, i)) <= 155 && utf8Len(name.slice(i + 1)) <= 100 && i < name.length - 1;
  }
  return (
    nameOk &&
    (r.target === undefined || utf8Len(r.target) <= 100) &&
    r.uid <= 0o7777777 &&
    r.gid <= 0o7777777 &&
    BigInt(r.mtime_ns) < 8589934592n * 1_000_000_000n
  );
}

async function rejectsWith(p: Promise<unknown>, cls: new (...a: never[]) => Error, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.match((e as Error).message, re);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------

before(() => {
  tmp = mkdtempSync('/dev/shm/ply-tar-test-');
  pyScript = join(tmp, 'oracle.py');
  writeFileSync(pyScript, PY);
  base = join(tmp, 'src');
  mkdirSync(base);
  py('mkfixture', base);
  recs = scan(base);
  recMap = new Map(recs.map((r) => [r.path, r]));
});

after(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('reading GNU tar archives', () => {
  test('pax format with xattrs: every field and body matches the tree', async () => {
    const t = join(tmp, 'gnu-pax.tar');
    gnuTar(['--format=pax', '--xattrs', '--xattrs-include=*', '--sort=name', '-C', base, '-cf', t, 'tree']);
    const entries = await readAll(createReadStream(t));
    checkAgainstTree(entries, { mtime: 'exact', xattrs: true, expectAll: true, what: 'pax' });
    assert.ok(entries.some((e) => e.type === 'link'));
    // Python's tarfile agrees with us entry by entry (atime/ctime are dropped by both sides here).
    assert.deepEqual(entries, pyList(t).map((p) => ({ ...p, pax: {} })));
  });

  test('gnu format (long names/links, base-256 ids and times)', async () => {
    const t = join(tmp, 'gnu-gnu.tar');
    gnuTar(['--format=gnu', '--sort=name', '-C', base, '-cf', t, 'tree']);
    const entries = await readAll(createReadStream(t, { highWaterMark: 4096 }));
    checkAgainstTree(entries, { mtime: 'floor', xattrs: false, expectAll: true, what: 'gnu' });
    assert.deepEqual(entries, pyList(t));
  });

  test('ustar format (prefix field) for the entries it can hold', async () => {
    const t = join(tmp, 'gnu-ustar.tar');
    const members = recs.filter(fitsUstar).map((r) => r.path);
    assert.ok(members.includes('tree/p256/' + 'f'.repeat(145) + '/' + 'g'.repeat(100)));
    gnuTar(['--format=ustar', '--no-recursion', '-C', base, '-cf', t, ...members]);
    const entries = await readAll(createReadStream(t));
    checkAgainstTree(entries, { mtime: 'floor', xattrs: false, expectAll: false, what: 'ustar' });
    assert.deepEqual(
      entries.map((e) => e.name),
      members,
    );
    assert.deepEqual(entries, pyList(t));
  });

  test('v7 format (no magic; directories by trailing slash)', async () => {
    const t = join(tmp, 'gnu-v7.tar');
    const members = ['tree', 'tree/size-513', 'tree/sym-short', 'tree/hard-1', 'tree/hard-2', 'tree/emptydir'];
    gnuTar(['--format=v7', '--no-recursion', '-C', base, '-cf', t, ...members]);
    const entries = await readAll(createReadStream(t));
    assert.deepEqual(
      entries.map((e) => [e.name, e.type]),
      [
        ['tree', 'dir'],
        ['tree/size-513', 'file'],
        ['tree/sym-short', 'symlink'],
        ['tree/hard-1', 'file'],
        ['tree/hard-2', 'link'],
        ['tree/emptydir', 'dir'],
      ],
    );
    for (const e of entries) {
      const r = recMap.get(e.name)!;
      assert.equal(e.mode, r.mode);
      if (e.sha256) assert.equal(e.sha256, r.sha256);
    }
  });

  test('any chunking of the input gives the same entries', async () => {
    const t = join(tmp, 'gnu-pax.tar');
    const buf = readFileSync(t);
    const whole = await readAll(once(buf));
    for (const seed of [1, 7, 1234]) assert.deepEqual(await readAll(chunked(buf, seed)), whole);
  });
});

describe('writing with TarWriter', () => {
  test('GNU tar lists and extracts it identically; Python reads it', async () => {
    const t = join(tmp, 'ours.tar');
    await writeTree(t);
    const listing = gnuTar(['-tvf', t]).trim().split('\n');
    assert.equal(listing.length, recs.length);
    const dir = extract(t, 'x-ours');
    compareTrees(recs, scan(dir), 'floor', 'gnu extract');
    checkAgainstTree(pyList(t), { mtime: 'floor', xattrs: true, expectAll: true, what: 'python' });
    checkAgainstTree(await readAll(createReadStream(t)), { mtime: 'floor', xattrs: true, expectAll: true, what: 'self' });
  });

  test('fractional mtimes when asked (PAX mtime records)', async () => {
    const t = join(tmp, 'ours-frac.tar');
    await writeTree(t, { fractionalMtime: true });
    checkAgainstTree(pyList(t), { mtime: 'exact', xattrs: true, expectAll: true, what: 'python' });
    const dir = extract(t, 'x-frac');
    compareTrees(recs, scan(dir), 'us', 'gnu extract');
  });

  test('deterministic: same input gives the same bytes; xattr insertion order does not matter', async () => {
    const a = join(tmp, 'det-a.tar');
    const b = join(tmp, 'det-b.tar');
    await writeTree(a, { highWaterMark: 1024 });
    await writeTree(b);
    assert.ok(readFileSync(a).equals(readFileSync(b)));
    const h: TarHeader = { name: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1 };
    const x1 = headerBlocks({ ...h, xattrs: new Map([['user.a', Buffer.from('1')], ['user.b', Buffer.from('2')]]) });
    const x2 = headerBlocks({ ...h, xattrs: new Map([['user.b', Buffer.from('2')], ['user.a', Buffer.from('1')]]) });
    assert.ok(x1.equals(x2));
    assert.ok(!x1.includes('atime') && !x1.includes('ctime'));
  });

  test('headerBlocks uses ustar when it fits, the prefix field, and PAX otherwise', async () => {
    const base0: TarHeader = { name: '', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1700000000 };
    const cases: [string, number][] = [
      ['a'.repeat(100), 1],
      [`${'d'.repeat(150)}/${'e'.repeat(100)}`, 1], // exactly prefix 150 + name 100
      [`${'d'.repeat(155)}/${'e'.repeat(100)}`, 1], // exactly 256
      [`${'d'.repeat(156)}/${'e'.repeat(100)}`, 3], // prefix too long
      ['a'.repeat(101), 3], // no slash to split at
      ['caf\u00e9', 3], // non-ASCII goes to PAX
    ];
    const w = new TarWriter();
    const done = pipeline(w.stream, createWriteStream(join(tmp, 'hb.tar')));
    for (const [name, blocks] of cases) {
      const b = headerBlocks({ ...base0, name });
      assert.equal(b.length, blocks * 512, name);
      assert.ok(isTarHeaderBlock(b), name);
      await w.add({ ...base0, name });
    }
    const big: TarHeader = { ...base0, name: 'ids', uid: 0o7777777 + 1, gid: 3000000, uname: 'u'.repeat(33) };
    assert.equal(headerBlocks(big).length, 3 * 512);
    await w.add(big);
    await w.finish();
    await done;
    const listed = pyList(join(tmp, 'hb.tar'));
    assert.deepEqual(
      listed.map((e) => e.name),
      [...cases.map((c) => c[0]), 'ids'],
    );
    assert.deepEqual([listed[6].uid, listed[6].gid, listed[6].uname], [0o7777777 + 1, 3000000, 'u'.repeat(33)]);
  });

  test('body length must match header.size', async () => {
    const w = new TarWriter();
    const chunks: Buffer[] = [];
    w.stream.on('data', (c: Buffer) => chunks.push(c));
    const h: TarHeader = { name: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 10, mtime: 0 };
    await rejectsWith(w.add(h, Buffer.alloc(9)), InvalidArgumentError, /9 bytes but the header says 10/);
    await rejectsWith(w.add(h), InvalidArgumentError, /no body/);
    await rejectsWith(w.add({ ...h, type: 'dir', size: 0 }, once(Buffer.alloc(1))), InvalidArgumentError, /only regular/);
    // A Buffer mismatch is detected before writing: the writer is still usable.
    await w.add(h, Buffer.alloc(10, 1));
    await w.finish();
    await new Promise((r) => w.stream.once('end', r));
    const entries = await readAll(once(Buffer.concat(chunks)));
    assert.deepEqual(
      entries.map((e) => [e.name, e.size]),
      [['f', 10]],
    );

    // A streamed body of the wrong length corrupts the output: the writer is destroyed.
    for (const [body, re] of [
      [once(Buffer.alloc(11)), /longer than the header size 10/],
      [once(Buffer.alloc(3)), /3 bytes but the header says 10/],
    ] as const) {
      const w2 = new TarWriter();
      const errored = new Promise<Error>((r) => w2.stream.on('error', r));
      w2.stream.resume();
      await rejectsWith(w2.add(h, body), InvalidArgumentError, re);
      assert.match((await errored).message, re);
      await assert.rejects(w2.add(h, Buffer.alloc(10)));
    }
  });

  test('add() waits for the consumer (back-pressure)', async () => {
    const w = new TarWriter({ highWaterMark: 1024 });
    const h: TarHeader = { name: 'big', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 1 << 20, mtime: 0 };
    let resolved = false;
    const p = w.add(h, once(Buffer.alloc(1 << 20, 7))).then(() => (resolved = true));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(resolved, false);
    const fin = w.finish();
    const entries = await readAll(w.stream);
    await p;
    await fin;
    assert.equal(entries[0].size, 1 << 20);
  });
});

describe('round trips', () => {
  test('GNU pax archive -> readTar -> TarWriter -> GNU tar extracts the same tree', async () => {
    const src = join(tmp, 'gnu-pax.tar');
    const dst = join(tmp, 'rt-pax.tar');
    await rewrite(src, dst, { fractionalMtime: true });
    compareTrees(recs, scan(extract(dst, 'x-rt-pax')), 'us', 'pax round trip');
    // Idempotent: re-writing our own output gives the same bytes.
    const again = join(tmp, 'rt-pax2.tar');
    await rewrite(dst, again, { fractionalMtime: true });
    assert.ok(readFileSync(dst).equals(readFileSync(again)));
  });

  test('GNU gnu-format archive round trip', async () => {
    const src = join(tmp, 'gnu-gnu.tar');
    const dst = join(tmp, 'rt-gnu.tar');
    await rewrite(src, dst);
    const withoutXattrs = recs.map((r) => ({ ...r, xattrs: {} }));
    compareTrees(withoutXattrs, scan(extract(dst, 'x-rt-gnu')), 'floor', 'gnu round trip');
  });

  test('a real tree (/usr/share/doc): tar -tv --numeric-owner listings are identical', async () => {
    const src = join(tmp, 'doc.tar');
    const dst = join(tmp, 'doc-rt.tar');
    gnuTar(['-C', '/usr/share', '-cf', src, 'doc'], [0, 1]);
    await rewrite(src, dst);
    const a = gnuTar(['-tv', '--numeric-owner', '-f', src]);
    const b = gnuTar(['-tv', '--numeric-owner', '-f', dst]);
    assert.ok(a.split('\n').length > 100);
    assert.equal(b, a);
    rmSync(src);
    rmSync(dst);
  });
});

describe('special encodings and errors', () => {
  test('base-256 uid/gid/size and negative mtime (Python GNU format)', async () => {
    for (const variant of ['plain', 'big']) {
      const t = join(tmp, `b256-${variant}.tar`);
      py('mkgnu', t, variant);
      const entries = await readAll(createReadStream(t));
      assert.deepEqual(entries, pyList(t));
      assert.deepEqual(
        entries.map((e) => [e.name, e.uid, e.gid, e.mtime, e.size]),
        [
          ['big-ids', 3000000, 4000000, -1000, 5],
          ['b256-size', 1, 2, 1700000000, 600],
        ],
      );
    }
    const raw = readFileSync(join(tmp, 'b256-big.tar'));
    assert.equal(raw[1024 + 124], 0x80);
    assert.equal(raw[108], 0x80); // uid of the first member is base-256 too
  });

  test('PAX global headers and unknown keys', async () => {
    const g = join(tmp, 'pax-global.tar');
    py('mkpax', g, 'global');
    const ge = await readAll(createReadStream(g));
    assert.deepEqual(
      ge.map((e) => [e.name, e.uid, e.pax]),
      pyList(g).map((p) => [p.name, p.uid, {}]),
    );
    assert.equal(ge[0].uid, 4242);

    const u = join(tmp, 'pax-unknown.tar');
    py('mkpax', u, 'unknown');
    const ue = await readAll(createReadStream(u));
    const pax = { comment: 'hello w\u00f6rld', 'LIBARCHIVE.creationtime': '123' };
    assert.deepEqual(ue[0].pax, pax);
    const out = join(tmp, 'pax-unknown-rt.tar');
    await rewrite(u, out);
    assert.deepEqual(pyList(out)[0].pax, pax);
  });

  test('not a tar archive: random bytes, text, short input', async () => {
    const inputs = [
      randomBytes(8192),
      Buffer.from('hello world\n'.repeat(500)),
      Buffer.from('#!/bin/sh\necho hi\n'),
      Buffer.concat([Buffer.alloc(512), randomBytes(512)]),
    ];
    for (const buf of inputs) {
      await rejectsWith(drain(once(buf)), InvalidArchiveError, /^not a tar archive$/);
      assert.equal(isTarHeaderBlock(buf.subarray(0, 512)), false);
    }
    assert.equal(isTarHeaderBlock(readFileSync(join(tmp, 'gnu-pax.tar')).subarray(0, 512)), true);
    assert.equal(isTarHeaderBlock(readFileSync(join(tmp, 'gnu-gnu.tar')).subarray(0, 512)), true);
    assert.equal(isTarHeaderBlock(Buffer.alloc(512)), false);
  });

  test('empty archives and lenient ends', async () => {
    assert.equal(await drain(once(Buffer.alloc(0))), 0);
    assert.equal(await drain(once(Buffer.alloc(1024))), 0);
    assert.equal(await drain(once(Buffer.alloc(512))), 0);
    assert.equal(await drain(once(Buffer.alloc(10240))), 0);
    const h: TarHeader = { name: 'a', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 3, mtime: 0 };
    const entry = Buffer.concat([headerBlocks(h), Buffer.from('abc'), Buffer.alloc(509)]);
    // EOF at a header boundary (no end-of-archive blocks), or after a single zero block.
    assert.equal(await drain(once(entry)), 1);
    assert.equal(await drain(once(Buffer.concat([entry, Buffer.alloc(512)]))), 1);
    // Trailing data after the end-of-archive blocks is drained, not parsed.
    assert.equal(await drain(once(Buffer.concat([entry, Buffer.alloc(1024), randomBytes(700)]))), 1);
  });

  test('truncated archives: unexpected end', async () => {
    const h: TarHeader = { name: 'a', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 1000, mtime: 0 };
    const one = Buffer.concat([headerBlocks(h), Buffer.alloc(1000, 1), Buffer.alloc(24)]);
    const two = Buffer.concat([one, headerBlocks({ ...h, name: 'b' }), Buffer.alloc(1024, 2), Buffer.alloc(1024)]);
    for (const cut of [512 + 500, 512 + 1000, 1536 + 100, 1536 + 512 + 3]) {
      await rejectsWith(drain(once(two.subarray(0, cut))), InvalidArchiveError, /^unexpected end of tar archive$/);
      await rejectsWith(drain(chunked(two.subarray(0, cut))), InvalidArchiveError, /^unexpected end of tar archive$/);
    }
    // The same when the caller skips the bodies.
    const skipAll = async (src: Src): Promise<void> => {
      for await (const e of readTar(src)) void e;
    };
    await rejectsWith(skipAll(once(two.subarray(0, 512 + 500))), InvalidArchiveError, /unexpected end/);
    // A GNU tar archive cut in the middle of a 1 MiB body.
    const t = join(tmp, 'big1.tar');
    gnuTar(['-C', base, '-cf', t, 'tree/size-1048577']);
    const cutBig = readFileSync(t).subarray(0, 512 + 300000);
    await rejectsWith(drain(once(cutBig)), InvalidArchiveError, /unexpected end/);
    // A pending PAX header with no entry after it.
    const paxOnly = headerBlocks({ ...h, name: 'x'.repeat(300), size: 0 }).subarray(0, 1024);
    await rejectsWith(drain(once(paxOnly)), InvalidArchiveError, /unexpected end/);
  });

  test('corrupted checksum mid-archive reports the offset', async () => {
    const h: TarHeader = { name: 'a', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 10, mtime: 0 };
    const buf = Buffer.concat([
      headerBlocks(h),
      Buffer.alloc(512, 1).fill(0, 10),
      headerBlocks({ ...h, name: 'b' }),
      Buffer.alloc(512),
      Buffer.alloc(1024),
    ]);
    assert.equal(await drain(once(buf)), 2);
    buf[1024 + 1] ^= 0x40;
    await rejectsWith(drain(once(buf)), InvalidArchiveError, /^invalid tar header at offset 1024$/);
    // Both signed and unsigned checksums are accepted: a header with high bytes and a signed sum.
    const s = headerBlocks({ ...h, name: '\u00e9', size: 0 }).subarray(1024);
    let signed = 0;
    for (let i = 0; i < 512; i++) signed += i >= 148 && i < 156 ? 32 : s[i] > 127 ? s[i] - 256 : s[i];
    s.write(`${signed.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    assert.ok(isTarHeaderBlock(s));
  });

  test('unconsumed or partly consumed bodies are skipped', async () => {
    const t = join(tmp, 'gnu-pax.tar');
    const buf = readFileSync(t);
    const full = await readAll(once(buf));
    for (const src of [once(buf), chunked(buf, 99)]) {
      const names: string[] = [];
      let i = 0;
      for await (const e of readTar(src)) {
        names.push(e.header.name.replace(/\/+$/, ''));
        const mode = i++ % 3;
        if (e.header.type !== 'file' || mode === 0) continue; // skip entirely
        if (mode === 1) {
          for await (const c of e.body) {
            void c;
            break; // read one chunk only
          }
          continue;
        }
        const h = createHash('sha256');
        for await (const c of e.body) h.update(c);
        assert.equal(h.digest('hex'), recMap.get(names.at(-1)!)!.sha256);
      }
      assert.deepEqual(
        names,
        full.map((e) => e.name),
      );
    }
    // A body read after the reader moved on is an error, not silently wrong data.
    const it = readTar(once(buf));
    let first = (await it.next()).value!;
    while (first.header.type !== 'file' || first.header.size === 0) first = (await it.next()).value!;
    await it.next();
    await assert.rejects(first.body[Symbol.asyncIterator]().next(), /after the reader moved/);
    await it.return(undefined);
  });

  test('GNU sparse files are rejected as unsupported', async () => {
    const dir = join(tmp, 'sparse');
    mkdirSync(dir);
    const f = join(dir, 'sparse.bin');
    run('truncate', ['-s', '4M', f]);
    run('dd', ['if=/dev/urandom', `of=${f}`, 'bs=4096', 'count=1', 'seek=300', 'conv=notrunc'], { ok: [0] });
    for (const format of ['gnu', 'pax']) {
      const t = join(tmp, `sparse-${format}.tar`);
      gnuTar([`--format=${format}`, '--sparse', '-C', dir, '-cf', t, 'sparse.bin']);
      await rejectsWith(drain(createReadStream(t)), UnsupportedError, /sparse/);
    }
  });

  test('absurd fields: huge PAX header, huge GNU long name, bad numbers', async () => {
    const big = join(tmp, 'bigpax.tar');
    py('mkpax', big, 'bigpax');
    await rejectsWith(drain(createReadStream(big)), InvalidArchiveError, /PAX extended header too large/);
    const ln = join(tmp, 'longname.tar');
    py('mkpax', ln, 'longname');
    await rejectsWith(drain(createReadStream(ln)), InvalidArchiveError, /long name too long/);

    // A base-256 size beyond 2^53, with a valid checksum.
    const h: TarHeader = { name: 'a', type: 'file', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 0 };
    const b = Buffer.from(headerBlocks(h));
    b.fill(0xff, 124, 136);
    b[124] = 0x80;
    b.fill(0x20, 148, 156);
    let sum = 0;
    for (const c of b) sum += c;
    b.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
    await rejectsWith(drain(once(Buffer.concat([b, Buffer.alloc(1024)]))), InvalidArchiveError, /invalid size/);
    // A PAX size that is not a number.
    const p = Buffer.from(headerBlocks({ ...h, pax: { zzzz: 'x' } }));
    p.write('9 size=x\n', 512, 'latin1');
    await rejectsWith(drain(once(Buffer.concat([p, Buffer.alloc(1024)]))), InvalidArchiveError, /invalid PAX size/);
  });
});
