// One suite for the content store's contract, run against every implementation (today one, ContentStore, which
// the engine's stores and ply's registry server both use; a new one is added to `implementations`): a blob is
// stored only under the digest of its bytes, an ingest is verified before it becomes a blob, resumable after an
// interruption, and held by one writer at a time.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ContentStore, IngestLockedError } from '../../src/content/store.js';
import { DigestMismatchError, NotFoundError } from '../../src/errors.js';
import type { Digest } from '../../src/oci/types.js';
import { tempDir } from '../helpers.js';

const sha = (b: Buffer) => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}` as Digest;
const read = async (s: Readable) => {
  const chunks: Buffer[] = [];
  for await (const c of s) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
};

const implementations: [string, () => ContentStore][] = [['ContentStore', () => new ContentStore(tempDir())]];

for (const [name, make] of implementations) {
  describe(`content store (${name})`, () => {
    it('putBytes stores a blob under its digest; has, info, read (ranges), list, totalSize, delete', async () => {
      const cs = make();
      const data = crypto.randomBytes(3000);
      const info = await cs.putBytes(data);
      assert.deepEqual(info, { digest: sha(data), size: 3000 });
      assert.ok(cs.has(info.digest));
      assert.deepEqual(cs.info(info.digest), info);
      assert.ok((await read(cs.read(info.digest))).equals(data));
      assert.ok((await read(cs.read(info.digest, { start: 10, end: 19 }))).equals(data.subarray(10, 20)));
      assert.ok(cs.readBytes(info.digest).equals(data));
      assert.deepEqual([...cs.list()], [info.digest]);
      assert.equal(cs.totalSize(), 3000);
      assert.deepEqual(await cs.putBytes(data), info, 'storing it again is a no-op');
      assert.equal(cs.delete(info.digest), true);
      assert.equal(cs.has(info.digest), false);
      assert.throws(() => cs.info(info.digest), NotFoundError);
      assert.throws(() => cs.read(info.digest), NotFoundError);
      assert.throws(() => cs.readBytes('sha256:../../etc/passwd' as Digest), NotFoundError, 'a digest is never a path');
    });

    it('a blob whose bytes do not match the expected digest or size is never stored, and leaves no ingest', async () => {
      const cs = make();
      const data = Buffer.from('the real bytes');
      const wrong = sha(Buffer.from('other bytes'));
      await assert.rejects(cs.putBytes(data, { expected: wrong }), DigestMismatchError);
      await assert.rejects(cs.putStream(Readable.from([data]), 'k1', { expected: wrong }), DigestMismatchError);
      const w = await cs.ingest('k2');
      await w.write(data);
      await assert.rejects(w.commit({ expected: sha(data), size: data.length + 1 }), DigestMismatchError);
      assert.deepEqual([...cs.list()], []);
      assert.deepEqual(fs.readdirSync(cs.ingestDir), []);
    });

    it('an interrupted ingest resumes at its offset and still verifies every byte', async () => {
      const cs = make();
      const data = crypto.randomBytes(1 << 20);
      const first = await cs.ingest('resume', { expected: sha(data) });
      await first.write(data.subarray(0, 300_000));
      await first.suspend();
      assert.equal(cs.ingestOffset('resume'), 300_000);
      const again = await cs.ingest('resume', { expected: sha(data) });
      assert.equal(again.offset, 300_000);
      await again.write(data.subarray(300_000));
      assert.deepEqual(await again.commit(), { digest: sha(data), size: data.length });
      assert.ok(cs.readBytes(sha(data)).equals(data));
      // Bytes changed on disk while suspended are caught by the final digest, not trusted.
      const bad = await cs.ingest('tampered', { expected: sha(data) });
      await bad.write(data.subarray(0, 1000));
      await bad.suspend();
      const dataFile = path.join(cs.ingestPath('tampered'), 'data');
      const fd = fs.openSync(dataFile, 'r+');
      fs.writeSync(fd, Buffer.from([data[0]! ^ 0xff]), 0, 1, 0);
      fs.closeSync(fd);
      const resumed = await cs.ingest('tampered', { expected: sha(data) });
      await resumed.write(data.subarray(1000));
      await assert.rejects(resumed.commit(), DigestMismatchError);
    });

    it('one writer holds an ingest at a time; abort drops it; stale ingests are removed', async () => {
      const cs = make();
      const w = await cs.ingest('held');
      assert.equal(cs.ingestLocked('held'), true);
      await assert.rejects(cs.ingest('held', { wait: false }), IngestLockedError);
      assert.equal(cs.removeIngest('held'), false, 'a held ingest is not removed');
      await w.write(Buffer.from('partial'));
      await w.abort();
      assert.equal(cs.ingestLocked('held'), false);
      assert.equal(fs.existsSync(cs.ingestPath('held')), false);
      const left = await cs.ingest('left');
      await left.write(Buffer.from('left behind'));
      await left.suspend();
      assert.deepEqual(cs.removeStaleIngests(60_000, { dryRun: true }), [], 'a recent ingest is kept');
      const hourAgo = new Date(Date.now() - 3_600_000);
      for (const f of ['', 'data', 'ref']) fs.utimesSync(path.join(cs.ingestPath('left'), f), hourAgo, hourAgo);
      assert.deepEqual(cs.removeStaleIngests(60_000, { dryRun: true }), [{ key: 'left', size: 11 }]);
      cs.removeStaleIngests(60_000);
      assert.deepEqual(fs.readdirSync(cs.ingestDir), []);
    });

    it('concurrent writers of one key: the second waits for the first and both end with the blob', async () => {
      const cs = make();
      const data = crypto.randomBytes(200_000);
      const put = () => cs.putStream(Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]), 'same-key', { expected: sha(data) });
      const [a, b] = await Promise.all([put(), put()]);
      assert.deepEqual(a, { digest: sha(data), size: data.length });
      assert.deepEqual(b, a);
      assert.deepEqual([...cs.list()], [sha(data)]);
    });
  });
}
