// This machine's physical limits, measured in the same run: sha256 (node:crypto, 256 MiB in 1 MiB chunks), gunzip
// (node zlib, chunkSize 64 KiB, on the gzip'd Debian tar), zstd decompression (the zstd CLI, one thread, and
// zstd-napi when installed), gzip -6 compression (node zlib), and write rates (dd conv=fsync) to the stores'
// filesystem (/dev/shm) and to the repository's disk. Each is the best of 3 tries (a limit is a maximum).
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import { bash, MiB } from './util.mjs';

const now = () => Number(process.hrtime.bigint()) / 1e9;

function sha256Rate() {
  const chunks = Array.from({ length: 16 }, () => crypto.randomBytes(MiB));
  const t0 = now();
  const h = crypto.createHash('sha256');
  for (let i = 0; i < 256; i++) h.update(chunks[i % 16]);
  h.digest();
  return (256 * MiB) / (now() - t0);
}

/** Streams `buf` in 64 KiB pieces through `transform`; returns output bytes per second. */
async function streamRate(buf, transform) {
  let out = 0;
  const src = Readable.from((function* () { for (let o = 0; o < buf.length; o += 65536) yield buf.subarray(o, o + 65536); })());
  const sink = new Writable({ write(c, _e, cb) { out += c.length; cb(); } });
  const t0 = now();
  await pipeline(src, transform, sink);
  return { rate: out / (now() - t0), out };
}

function ddRate(dir) {
  const f = path.join(dir, `.bench-dd-${process.pid}`);
  try {
    const r = bash(`dd if=/dev/zero of="${f}" bs=1M count=512 conv=fsync 2>&1`);
    const m = r.stdout.match(/(\d+) bytes .* copied, ([\d.]+) s/);
    return m ? Number(m[1]) / Number(m[2]) : null;
  } finally {
    fs.rmSync(f, { force: true });
  }
}

function copyRate(src, dir) {
  const f = path.join(dir, `.bench-copy-${process.pid}`);
  try {
    const t0 = now();
    bash(`dd if="${src}" of="${f}" bs=1M 2>/dev/null`);
    return fs.statSync(src).size / (now() - t0);
  } finally {
    fs.rmSync(f, { force: true });
  }
}

const best = async (n, fn) => {
  let b = 0;
  for (let i = 0; i < n; i++) b = Math.max(b, (await fn()) ?? 0);
  return b;
};

export async function measureLimits(fx, { repoDisk, shm }) {
  const L = {};
  L.sha256 = await best(3, sha256Rate);
  const gz = fs.readFileSync(fx.debianGz);
  L.gunzip = await best(3, async () => (await streamRate(gz, zlib.createGunzip({ chunkSize: 65536 }))).rate);
  const tar = fs.readFileSync(fx.debianTar);
  L.gzip6 = await best(2, async () => {
    const t0 = now();
    await streamRate(tar, zlib.createGzip({ level: 6, chunkSize: 65536 }));
    return tar.length / (now() - t0);
  });
  L.zstdCli = await best(3, () => {
    const t0 = now();
    bash(`zstd -q -d -T1 -c "${fx.debianZst}" > /dev/null`);
    return tar.length / (now() - t0);
  });
  try {
    const require = createRequire(path.join(process.cwd(), 'package.json'));
    const zstd = require('zstd-napi');
    const zst = fs.readFileSync(fx.debianZst);
    L.zstdNapi = await best(3, async () => (await streamRate(zst, new zstd.DecompressStream())).rate);
  } catch {}
  L.writeShm = await best(3, () => ddRate(shm));
  L.writeDisk = await best(2, () => ddRate(repoDisk));
  L.copyShm = await best(3, () => copyRate(fx.debianTar, shm));
  // Derived bounds (per byte of uncompressed layer data):
  L.hashAndWrite = Math.min(L.sha256, L.writeShm);
  L.gunzipSha256 = 1 / (1 / L.gunzip + 1 / L.sha256);
  return L;
}

export const LIMIT_TEXT = {
  sha256: 'sha256 (node:crypto, 1 MiB chunks)',
  gunzip: 'gunzip (node zlib, 64 KiB chunks; output bytes)',
  gzip6: 'gzip -6 compress (node zlib; input bytes)',
  zstdCli: 'zstd -d (CLI, 1 thread; output bytes)',
  zstdNapi: 'zstd decompress (zstd-napi stream; output bytes)',
  writeShm: 'write, dd conv=fsync to /dev/shm (the stores)',
  writeDisk: 'write, dd conv=fsync to the repository disk (ext4)',
  copyShm: 'copy of the Debian tar on /dev/shm (dd read+write)',
  hashAndWrite: 'min(sha256, write to /dev/shm)',
  gunzipSha256: 'gunzip then sha256 on one core: 1/(1/gunzip + 1/sha256)',
  link: 'the shaped link\'s rate (100 Mbit/s; compressed layer bytes / rate)',
};
