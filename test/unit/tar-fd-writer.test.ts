// TarFdWriter (src/tar/writer.ts): the same archive as TarWriter from the same calls, written to a descriptor
// synchronously, with addFile() reading bodies straight from a file; its errors leave the writer as documented.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { readTar, TarWriter, type TarHeader } from '../../src/tar/index.js';
import { TarFdWriter, type TarFdWriterOptions } from '../../src/tar/writer.js';
import { tempDir } from '../helpers.js';

/** What a test does to a writer; `file(h, path)` is addFile for TarFdWriter and add(h, contents) for TarWriter. */
type Fill = (w: {
  add: (h: TarHeader, body?: Buffer | AsyncIterable<Buffer>) => Promise<void>;
  file: (h: TarHeader, file: string) => Promise<void>;
}) => Promise<void>;

async function viaStream(fill: Fill): Promise<Buffer> {
  const w = new TarWriter();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of w.stream) chunks.push(c as Buffer);
  })();
  await fill({ add: (h, b) => w.add(h, b), file: (h, f) => w.add(h, fs.readFileSync(f)) });
  await w.finish();
  await done;
  return Buffer.concat(chunks);
}

async function viaFd(fill: Fill, opts: TarFdWriterOptions = {}): Promise<Buffer> {
  const out = path.join(tempDir(), 'out.tar');
  const fd = fs.openSync(out, 'w');
  try {
    const w = new TarFdWriter(fd, opts);
    await fill({
      add: (h, b) => w.add(h, b),
      file: async (h, f) => {
        const src = fs.openSync(f, 'r');
        try {
          await w.addFile(h, src);
        } finally {
          fs.closeSync(src);
        }
      },
    });
    await w.finish();
  } finally {
    fs.closeSync(fd);
  }
  return fs.readFileSync(out);
}

function file(name: string, size: number, extra: Partial<TarHeader> = {}): TarHeader {
  return { name, type: 'file', mode: 0o644, uid: 0, gid: 0, size, mtime: 1_700_000_000, ...extra };
}

async function* chunks(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) {
    await new Promise((r) => setImmediate(r));
    yield buf.subarray(i, i + size);
  }
}

describe('TarFdWriter', () => {
  const dir = tempDir();
  const sizes = [0, 1, 511, 512, 513, 4000, 64 * 1024, 300 * 1024, (1 << 20) + 7, 3 * (1 << 20) + 1];
  const files = sizes.map((n, i) => {
    const p = path.join(dir, `f${i}`);
    fs.writeFileSync(p, crypto.randomBytes(n));
    return { p, n };
  });
  const big = crypto.randomBytes(2 * (1 << 20) + 100);
  const xattrs = new Map([['user.big', crypto.randomBytes(100_000)], ['security.capability', Buffer.from([1, 2, 3])]]);

  const fill: Fill = async (w) => {
    await w.add({ name: 'd/', type: 'dir', mode: 0o755, uid: 1000, gid: 1000, size: 0, mtime: 1_600_000_000 });
    for (const [i, f] of files.entries()) await w.file(file(`d/file-${i}`, f.n, { mode: 0o600 + i }), f.p);
    for (const [i, f] of files.entries()) await w.add(file(`d/buf-${i}`, f.n), fs.readFileSync(f.p));
    await w.add(file('d/streamed', big.length), chunks(big, 100_000));
    await w.add(file('d/streamed-small', 10), chunks(Buffer.from('0123456789'), 3));
    await w.add({ name: 'd/link', type: 'link', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1, linkname: 'd/file-1' });
    await w.add({ name: 'd/sym', type: 'symlink', mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 1, linkname: '../x' });
    await w.add({ name: `d/${'long-name-'.repeat(30)}`, type: 'fifo', mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1 });
    await w.file(file('d/with-xattrs', files[4]!.n, { xattrs }), files[4]!.p);
    await w.add({ name: 'dev/null', type: 'chardev', mode: 0o666, uid: 0, gid: 0, size: 0, mtime: 1, devmajor: 1, devminor: 3 });
  };

  it('writes what TarWriter writes, for every buffer size', async () => {
    const want = await viaStream(fill);
    for (const bufferSize of [512, 1000, 64 * 1024, undefined, 8 << 20]) {
      const got = await viaFd(fill, { bufferSize });
      assert.equal(got.length, want.length, `bufferSize ${bufferSize}`);
      let i = 0; while (i < got.length && got[i] === want[i]) i++;
      assert.ok(got.equals(want), `bufferSize ${bufferSize}: same bytes (first difference at ${i})`);
    }
    // And GNU tar reads it.
    const out = path.join(tempDir(), 'gnu.tar');
    fs.writeFileSync(out, want);
    const list = execFileSync('tar', ['-tf', out], { encoding: 'utf8' }).split('\n');
    assert.ok(list.includes('d/streamed') && list.includes('d/file-9'));
  });

  it('writes before add() returns when nothing streamed is pending, in call order otherwise', async () => {
    const out = path.join(tempDir(), 'out.tar');
    const fd = fs.openSync(out, 'w');
    const w = new TarFdWriter(fd, { bufferSize: 512 });
    void w.add(file('a', 600), Buffer.alloc(600, 0x61));
    // 512-byte buffer: the header and the first body block are written by now.
    assert.ok(fs.fstatSync(fd).size >= 1024);
    const slow = w.add(file('b', 5), chunks(Buffer.from('bbbbb'), 1));
    const after = w.add(file('c', 1), Buffer.from('c'));
    const finished = w.finish();
    await Promise.all([slow, after, finished]);
    fs.closeSync(fd);
    const names: string[] = [];
    for await (const e of readTar(fs.createReadStream(out))) {
      names.push(`${e.header.name}=${(await e.buffer()).toString()}`);
    }
    assert.deepEqual(names, [`a=${'a'.repeat(600)}`, 'b=bbbbb', 'c=c']);
  });

  it('rejects a Buffer body of the wrong length before writing anything, and stays usable', async () => {
    const good: Fill = async (w) => {
      await w.add(file('x', 3), Buffer.from('xyz'));
    };
    const want = await viaFd(good);
    const got = await viaFd(async (w) => {
      await assert.rejects(w.add(file('bad', 4), Buffer.from('abc')), /body is 3 bytes but the header says 4/);
      await assert.rejects(w.add(file('nobody', 4)), /no body given/);
      await good(w);
    });
    assert.ok(got.equals(want));
  });

  it('addFile: a file shorter than its header drops the entry while it is all buffered, else destroys the writer', async () => {
    const f = path.join(tempDir(), 'short');
    fs.writeFileSync(f, Buffer.alloc(1000, 1));
    const want = await viaFd(async (w) => w.add(file('ok', 1), Buffer.from('k')));
    const got = await viaFd(async (w) => {
      await assert.rejects(w.file(file('short', 2000), f), /file shrank while being read \(1000 of 2000 bytes\)/);
      await w.add(file('ok', 1), Buffer.from('k'));
    });
    assert.ok(got.equals(want), 'the failed entry left nothing behind');

    const out = path.join(tempDir(), 'out.tar');
    const fd = fs.openSync(out, 'w');
    const src = fs.openSync(f, 'r');
    const w = new TarFdWriter(fd, { bufferSize: 512 });
    await assert.rejects(w.addFile(file('short', 2000), src, '/the/path'), /\/the\/path: file shrank/);
    await assert.rejects(w.add(file('ok', 1), Buffer.from('k')), /file shrank/, 'part of it was written: destroyed');
    await assert.rejects(w.finish(), /file shrank/);
    fs.closeSync(src);
    fs.closeSync(fd);
  });

  it('a streamed body of the wrong length destroys the writer', async () => {
    const out = path.join(tempDir(), 'out.tar');
    const fd = fs.openSync(out, 'w');
    const w = new TarFdWriter(fd);
    await assert.rejects(w.add(file('s', 10), chunks(Buffer.from('12345'), 2)), /body is 5 bytes but the header says 10/);
    await assert.rejects(w.add(file('ok', 1), Buffer.from('k')), /body is 5 bytes/);
    fs.closeSync(fd);
  });

  it('fails on a write error, destroy() stops it, finish() is idempotent and ends adds', async () => {
    const out = path.join(tempDir(), 'out.tar');
    const fd = fs.openSync(out, 'w');
    const w = new TarFdWriter(fd);
    await w.add(file('a', 1), Buffer.from('a'));
    await w.finish();
    await w.finish();
    assert.equal(fs.fstatSync(fd).size, 512 * 4);
    await assert.rejects(w.add(file('b', 1), Buffer.from('b')), /after finish/);
    fs.closeSync(fd);

    const ro = fs.openSync(out, 'r');
    const w2 = new TarFdWriter(ro, { bufferSize: 512 });
    await assert.rejects(w2.add(file('a', 600), Buffer.alloc(600)), /EBADF/);
    await assert.rejects(w2.finish(), /EBADF/);
    fs.closeSync(ro);

    const fd3 = fs.openSync(out, 'w');
    const w3 = new TarFdWriter(fd3);
    w3.destroy(new Error('stop'));
    await assert.rejects(w3.add(file('a', 1), Buffer.from('a')), /stop/);
    await assert.rejects(w3.finish(), /stop/);
    assert.equal(fs.fstatSync(fd3).size, 0);
    fs.closeSync(fd3);
  });
});
