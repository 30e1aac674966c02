// The copy pipeline (src/transport/copy.ts) with fake transports: the config is read while the layers move (no
// round trip of its own at the end) yet put after them; a destination that has it is not sent it; a failed read
// of it surfaces once the layers are done, as if it had been read then.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { digestOf } from '../../src/digest/digest.js';
import { copyImage } from '../../src/transport/copy.js';
import type { ImageDestination, ImageSource, ManifestBlob } from '../../src/transport/types.js';
import { MediaType, type Descriptor, type Digest } from '../../src/oci/types.js';

function blob(bytes: Buffer, mediaType: string): { desc: Descriptor; bytes: Buffer } {
  return { desc: { mediaType, digest: digestOf(bytes), size: bytes.length }, bytes };
}

function image(layers: number) {
  const config = blob(Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'), MediaType.OciConfig);
  const ls = Array.from({ length: layers }, (_, i) => blob(Buffer.from(`layer ${i}`.repeat(1000)), MediaType.OciLayerGzip));
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: config.desc, layers: ls.map((l) => l.desc) }));
  const manifest: ManifestBlob = { bytes, mediaType: MediaType.OciManifest, digest: digestOf(bytes) };
  return { config, layers: ls, manifest, blobs: new Map([config, ...ls].map((b) => [b.desc.digest, b.bytes])) };
}

/** Records the order of calls; `gate` (if any) holds each layer's data until it resolves. */
function fakes(img: ReturnType<typeof image>, opts: { gate?: Promise<void>; has?: Set<string>; failConfig?: boolean } = {}) {
  const events: string[] = [];
  const name = (d: Digest) => (d === img.config.desc.digest ? 'config' : `layer${img.layers.findIndex((l) => l.desc.digest === d)}`);
  const src: ImageSource = {
    description: 'fake source',
    async getManifest() {
      return img.manifest;
    },
    async getBlob(desc) {
      events.push(`get ${name(desc.digest)}`);
      if (desc.digest === img.config.desc.digest && opts.failConfig) throw new Error('config read failed');
      const bytes = img.blobs.get(desc.digest)!;
      const gate = desc.digest === img.config.desc.digest ? undefined : opts.gate;
      return (async function* () {
        await gate;
        yield bytes;
      })();
    },
  };
  const dst: ImageDestination = {
    description: 'fake destination',
    async hasBlob(desc) {
      events.push(`has ${name(desc.digest)}`);
      return opts.has?.has(desc.digest) ?? false;
    },
    async putBlob(desc, data) {
      events.push(`put ${name(desc.digest)}`);
      const parts: Buffer[] = [];
      for await (const c of data) parts.push(c);
      assert.ok(Buffer.concat(parts).equals(img.blobs.get(desc.digest)!), `bytes of ${name(desc.digest)}`);
      events.push(`stored ${name(desc.digest)}`);
    },
    async putManifest() {
      events.push('manifest');
    },
  };
  return { src, dst, events };
}

test('the config is read while the layers move, and put after them', async () => {
  const img = image(2);
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const { src, dst, events } = fakes(img, { gate });
  const copy = copyImage(src, 'x', dst, 'x');
  // The layers' data waits until the config has been read: without the read-ahead this never happens.
  const deadline = Date.now() + 5000;
  while (!events.includes('get config') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.ok(events.includes('get config'), `config not read while the layers wait: ${events.join(', ')}`);
  assert.ok(!events.includes('put config'));
  open();
  await copy;
  const put = events.filter((e) => e.startsWith('stored') || e === 'manifest');
  assert.deepEqual(put.slice(-2), ['stored config', 'manifest']);
  assert.equal(events.filter((e) => e === 'get config').length, 1);
  assert.equal(events.filter((e) => e === 'has config').length, 1);
});

test('a config the destination has is neither read nor put; a failed config read fails the copy after the layers', async () => {
  const img = image(1);
  const a = fakes(img, { has: new Set([img.config.desc.digest]) });
  await copyImage(a.src, 'x', a.dst, 'x');
  assert.ok(!a.events.includes('get config') && !a.events.includes('put config'), a.events.join(', '));

  const b = fakes(img, { failConfig: true });
  await assert.rejects(copyImage(b.src, 'x', b.dst, 'x'), /config read failed/);
  assert.ok(b.events.includes('stored layer0'), b.events.join(', '));
  assert.ok(!b.events.includes('manifest'));
});
