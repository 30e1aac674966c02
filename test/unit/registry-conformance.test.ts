// The OCI distribution-spec conformance flows (opencontainers/distribution-spec conformance/: run.go, api.go,
// testdata.go, and the older 01_pull, 02_push, 03_discovery, 04_management tests) ported to raw fetch calls
// against an in-process registry, plus ply's own checks (names, modes, concurrency, restarts, gc).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import zlib from 'node:zlib';
import { gcRegistry } from '../../src/registry/gc.js';
import { startRegistry, type RegistryServer } from '../../src/registry/server.js';
import { tempDir } from '../helpers.js';

type Alg = 'sha256' | 'sha512';

const MT = {
  exampleConf1: 'application/vnd.example.oci.conformance.v1',
  exampleConf2: 'application/vnd.example.oci.conformance.v2',
  octetStream: 'application/octet-stream',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociImage: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerPre: 'application/vnd.oci.image.layer.v1.',
  ociLayerGz: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerNd: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  ociLayerNdGz: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  ociEmptyJSON: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

function digestOf(b: Buffer | string, alg: Alg = 'sha256'): string {
  return `${alg}:${createHash(alg).update(b).digest('hex')}`;
}

interface Reply {
  status: number;
  headers: Headers;
  body: Buffer;
  text: string;
  json<T = any>(): T;
}

/** A raw HTTP call (the body is always read, so connections are reused). */
async function call(base: string, path: string, init: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<Reply> {
  const res = await fetch(new URL(path, base), { method: init.method ?? 'GET', headers: init.headers, body: init.body as RequestInit['body'], redirect: 'manual' });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, text: body.toString('utf8'), json: () => JSON.parse(body.toString('utf8')) };
}

function assertError(r: Reply, status: number, code: string): void {
  assert.equal(r.status, status, `expected ${status} ${code}, got ${r.status}: ${r.text}`);
  const errors = r.json().errors as Array<{ code: string; message: string }>;
  assert.ok(Array.isArray(errors) && errors.length > 0, r.text);
  assert.equal(errors[0]!.code, code);
  assert.equal(typeof errors[0]!.message, 'string');
}

interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  data?: string;
  platform?: Platform;
  artifactType?: string;
}

interface Platform {
  architecture: string;
  os: string;
}

interface GenOpts {
  algo?: Alg;
  annotations?: Record<string, string>;
  annotationUniq?: boolean;
  artifactType?: string;
  blobSize?: number;
  uncompressed?: boolean;
  configBytes?: Buffer;
  configMediaType?: string;
  descriptorMediaType?: string;
  extraField?: boolean;
  layerBytes?: Buffer;
  layerCount?: number;
  layerMediaType?: string;
  platform?: Platform;
  platforms?: Array<Platform | undefined>;
  setData?: boolean;
  subject?: Desc;
  tag?: string;
}

const withExtra = <T extends object>(v: T, extra: boolean): T => (extra ? { ...v, [`custom.${randomBytes(4).toString('hex')}`]: randomBytes(8).toString('hex') } : v);

/** A data set of blobs, manifests (in push order), tags and expected referrers. */
class TestData {
  readonly tags = new Map<string, string>();
  readonly blobs = new Map<string, Buffer>();
  readonly manifests = new Map<string, Buffer>();
  readonly manOrder: string[] = [];
  readonly desc = new Map<string, Desc>();
  readonly referrers = new Map<string, Desc[]>();
  /** Manifests pushed with ?tag= (all their tags) instead of PUT by tag. */
  readonly tagParam = new Set<string>();
  /** Manifests whose bytes no longer match their digest: the push must fail with 400. */
  readonly badDigest = new Set<string>();

  constructor(readonly name: string) {}

  addBlob(b: Buffer, o: GenOpts = {}): string {
    const dig = digestOf(b, o.algo);
    this.blobs.set(dig, b);
    const d: Desc = { mediaType: o.descriptorMediaType ?? MT.octetStream, digest: dig, size: b.length };
    if (o.setData) d.data = b.toString('base64');
    this.desc.set(dig, d);
    return dig;
  }

  genBlob(o: GenOpts = {}): { digest: string; body: Buffer } {
    const body = randomBytes(o.blobSize ?? 2048);
    return { digest: this.addBlob(body, o), body };
  }

  genLayer(n: number, o: GenOpts = {}): { compressed: string; uncompressed: string } {
    const file = Buffer.from(`Conformance test file contents for file number ${n}.\nTodays lucky number is ${randomBytes(6).readUIntBE(0, 6)}\n`);
    const header = Buffer.alloc(512);
    header.write(`./conformance-${n}.txt`, 0);
    header.write('0000644\0', 100);
    header.write(`${file.length.toString(8).padStart(11, '0')}\0`, 124);
    const tar = Buffer.concat([header, file, Buffer.alloc(512 - (file.length % 512)), Buffer.alloc(1024)]);
    const body = o.uncompressed ? tar : zlib.gzipSync(tar);
    const algo = o.algo ?? 'sha256';
    const compressed = digestOf(body, algo);
    const uncompressed = digestOf(tar, algo);
    this.blobs.set(compressed, body);
    const d: Desc = { mediaType: o.uncompressed ? MT.ociLayer : MT.ociLayerGz, digest: compressed, size: body.length };
    if (o.setData) d.data = body.toString('base64');
    this.desc.set(compressed, d);
    return { compressed, uncompressed };
  }

  genConfig(platform: Platform, diffIds: string[], o: GenOpts = {}): string {
    const config = withExtra({ author: 'OCI Conformance Test', architecture: platform.architecture, os: platform.os, rootfs: { type: 'layers', diff_ids: diffIds } }, !!o.extraField);
    const body = Buffer.from(JSON.stringify(config));
    const dig = digestOf(body, o.algo);
    this.blobs.set(dig, body);
    const d: Desc = { mediaType: o.configMediaType ?? MT.ociConfig, digest: dig, size: body.length };
    if (o.setData) d.data = body.toString('base64');
    this.desc.set(dig, d);
    return dig;
  }

  private record(body: Buffer, mediaType: string, o: GenOpts, artifactType: string | undefined, annotations: Record<string, string> | undefined): string {
    const dig = digestOf(body, o.algo);
    this.manifests.set(dig, body);
    this.manOrder.push(dig);
    const d: Desc = { mediaType, digest: dig, size: body.length };
    if (o.setData) d.data = body.toString('base64');
    this.desc.set(dig, d);
    if (o.subject) {
      const list = this.referrers.get(o.subject.digest) ?? [];
      const r: Desc = { mediaType, digest: dig, size: body.length };
      if (artifactType) r.artifactType = artifactType;
      if (annotations) r.annotations = annotations;
      list.push(r);
      this.referrers.set(o.subject.digest, list);
    }
    if (o.tag) this.tags.set(o.tag, dig);
    return dig;
  }

  private annotationsOf(o: GenOpts): Record<string, string> | undefined {
    let a = o.annotations;
    if (o.annotationUniq) a = { ...(a ?? {}), [`org.example.${randomBytes(8).toString('hex')}`]: randomBytes(8).toString('hex') };
    return a;
  }

  genManifest(config: Desc, layers: Desc[], o: GenOpts = {}): string {
    const annotations = this.annotationsOf(o);
    const m: Record<string, unknown> = { schemaVersion: 2, mediaType: MT.ociImage };
    if (o.artifactType) m.artifactType = o.artifactType;
    m.config = config;
    m.layers = layers;
    if (o.subject) m.subject = o.subject;
    if (annotations) m.annotations = annotations;
    const body = Buffer.from(JSON.stringify(withExtra(m, !!o.extraField)));
    return this.record(body, MT.ociImage, o, o.artifactType || config.mediaType, annotations);
  }

  genManifestFull(o: GenOpts = {}): string {
    const layerCount = o.layerCount ?? 2;
    const platform = o.platform ?? { os: 'linux', architecture: 'amd64' };
    const layers: string[] = [];
    const diffIds: string[] = [];
    for (let l = 0; l < layerCount; l++) {
      if (!o.layerMediaType || o.layerMediaType.startsWith(MT.ociLayerPre)) {
        const { compressed, uncompressed } = this.genLayer(l, o);
        layers.push(compressed);
        diffIds.push(uncompressed);
      } else {
        const lo = { ...o, descriptorMediaType: o.layerMediaType };
        const dig = o.layerBytes ? this.addBlob(o.layerBytes, lo) : this.genBlob(lo).digest;
        layers.push(dig);
        diffIds.push(dig);
      }
    }
    const configDig =
      !o.configMediaType || o.configMediaType === MT.ociConfig
        ? this.genConfig(platform, diffIds, o)
        : this.addBlob(o.configBytes ?? Buffer.from('{}'), { ...o, descriptorMediaType: o.configMediaType });
    return this.genManifest(this.desc.get(configDig)!, layers.map((d) => this.desc.get(d)!), o);
  }

  genIndex(platforms: Array<Platform | undefined>, manifests: string[], o: GenOpts = {}): string {
    const annotations = this.annotationsOf(o);
    const ind: Record<string, unknown> = { schemaVersion: 2, mediaType: MT.ociIndex };
    if (o.artifactType) ind.artifactType = o.artifactType;
    ind.manifests = manifests.map((d, i) => {
      const desc: Desc = { ...this.desc.get(d)! };
      if (platforms[i]) desc.platform = platforms[i];
      return desc;
    });
    if (o.subject) ind.subject = o.subject;
    if (annotations) ind.annotations = annotations;
    const body = Buffer.from(JSON.stringify(withExtra(ind, !!o.extraField)));
    return this.record(body, MT.ociIndex, o, o.artifactType, annotations);
  }

  genIndexFull(o: GenOpts = {}): string {
    const platforms = o.platforms ?? [
      { os: 'linux', architecture: 'amd64' },
      { os: 'linux', architecture: 'arm64' },
    ];
    const images = platforms.map((p) => this.genManifestFull({ ...o, tag: undefined, platform: p }));
    return this.genIndex(platforms, images, o);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The conformance flows (conformance/run.go, api.go; the older 01_pull, 02_push, 03_discovery, 04_management).

let U = '';
const enc = encodeURIComponent;
const CHUNK_MIN = 1024;

async function verifyLocation(loc: string | null, body: Buffer): Promise<void> {
  assert.ok(loc, 'Location header missing');
  const r = await call(U, loc);
  assert.equal(r.status, 200, `GET ${loc}`);
  assert.ok(r.body.equals(body), 'blob at Location differs');
}

function withDigest(loc: string, dig: string): string {
  const u = new URL(loc, U);
  u.searchParams.set('digest', dig);
  return u.pathname + u.search;
}

async function blobPostOnly(repo: string, dig: string, body: Buffer, expectBad = false): Promise<void> {
  const r = await call(U, `/v2/${repo}/blobs/uploads/?digest=${enc(dig)}`, { method: 'POST', headers: { 'Content-Type': MT.octetStream }, body });
  if (expectBad) return assertError(r, 400, 'DIGEST_INVALID');
  assert.equal(r.status, 201, r.text);
  assert.equal(r.headers.get('docker-content-digest'), dig);
  await verifyLocation(r.headers.get('location'), body);
}

async function startUpload(repo: string): Promise<{ loc: string; min: string | null }> {
  const r = await call(U, `/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { 'Content-Length': '0' } });
  assert.equal(r.status, 202, r.text);
  const loc = r.headers.get('location');
  assert.ok(loc && loc.startsWith(`/v2/${repo}/blobs/uploads/`), `Location ${loc}`);
  assert.equal(r.headers.get('range'), '0-0');
  return { loc, min: r.headers.get('oci-chunk-min-length') };
}

async function blobPostPut(repo: string, dig: string, body: Buffer, expectBad = false): Promise<void> {
  const { loc } = await startUpload(repo);
  const r = await call(U, withDigest(loc, dig), { method: 'PUT', headers: { 'Content-Type': MT.octetStream }, body });
  if (expectBad) {
    assertError(r, 400, 'DIGEST_INVALID');
    assertError(await call(U, loc), 404, 'BLOB_UPLOAD_UNKNOWN'); // the session and its data are gone
    return;
  }
  assert.equal(r.status, 201, r.text);
  assert.equal(r.headers.get('docker-content-digest'), dig);
  await verifyLocation(r.headers.get('location'), body);
}

async function blobPatchChunked(
  repo: string,
  dig: string,
  body: Buffer,
  flags: { outOfOrder?: boolean; putLast?: boolean; expectBad?: boolean } = {},
): Promise<void> {
  let { loc, min } = await startUpload(repo);
  let chunkSize = Math.floor(body.length / 3) + 1;
  if (min !== null && Number(min) > chunkSize) chunkSize = Number(min);
  chunkSize = Math.min(Math.max(chunkSize, CHUNK_MIN), body.length);
  let lastByte = -1;
  let final: Reply | undefined;
  while (lastByte < body.length - 1) {
    if (flags.outOfOrder) {
      let badStart = lastByte + 1 + chunkSize;
      if (badStart >= body.length) badStart = 0;
      const badLast = Math.min(badStart + chunkSize - 1, body.length - 1);
      const put = flags.putLast && badLast === body.length - 1;
      const bad = await call(U, put ? withDigest(loc, dig) : loc, {
        method: put ? 'PUT' : 'PATCH',
        headers: { 'Content-Type': MT.octetStream, 'Content-Range': `${badStart}-${badLast}` },
        body: body.subarray(badStart, badLast + 1),
      });
      assertError(bad, 416, 'BLOB_UPLOAD_INVALID');
      // Recover: GET the session for its location and range.
      const st = await call(U, loc);
      assert.equal(st.status, 204);
      loc = st.headers.get('location')!;
      const range = st.headers.get('range')!;
      assert.match(range, /^0-\d+$/);
      if (lastByte >= 0) assert.equal(range, `0-${lastByte}`);
    }
    const start = lastByte + 1;
    lastByte = Math.min(start + chunkSize - 1, body.length - 1);
    const putNow = flags.putLast && lastByte === body.length - 1;
    const r = await call(U, putNow ? withDigest(loc, dig) : loc, {
      method: putNow ? 'PUT' : 'PATCH',
      headers: { 'Content-Type': MT.octetStream, 'Content-Range': `${start}-${lastByte}` },
      body: body.subarray(start, lastByte + 1),
    });
    if (putNow) {
      final = r;
    } else {
      assert.equal(r.status, 202, r.text);
      assert.equal(r.headers.get('range'), `0-${lastByte}`);
      loc = r.headers.get('location')!;
    }
  }
  if (!flags.putLast) final = await call(U, withDigest(loc, dig), { method: 'PUT', headers: { 'Content-Type': MT.octetStream, 'Content-Length': '0' } });
  if (flags.expectBad) return assertError(final!, 400, 'DIGEST_INVALID');
  assert.equal(final!.status, 201, final!.text);
  assert.equal(final!.headers.get('docker-content-digest'), dig);
  await verifyLocation(final!.headers.get('location'), body);
}

async function blobPatchStream(repo: string, dig: string, body: Buffer, expectBad = false): Promise<void> {
  const { loc } = await startUpload(repo);
  const p = await call(U, loc, { method: 'PATCH', headers: { 'Content-Type': MT.octetStream }, body });
  assert.equal(p.status, 202, p.text);
  assert.equal(p.headers.get('range'), `0-${body.length - 1}`);
  const r = await call(U, withDigest(p.headers.get('location')!, dig), { method: 'PUT', headers: { 'Content-Type': MT.octetStream, 'Content-Length': '0' } });
  if (expectBad) return assertError(r, 400, 'DIGEST_INVALID');
  assert.equal(r.status, 201, r.text);
  await verifyLocation(r.headers.get('location'), body);
}

/** POST ?mount=: 201 when mounted; 202 falls back to a PUT of the data (as api.go's BlobMount). */
async function blobMount(repo: string, from: string | undefined, dig: string, body: Buffer): Promise<number> {
  const r = await call(U, `/v2/${repo}/blobs/uploads/?mount=${enc(dig)}${from ? `&from=${enc(from)}` : ''}`, { method: 'POST' });
  assert.ok(r.status === 201 || r.status === 202, `${r.status} ${r.text}`);
  const loc = r.headers.get('location');
  assert.ok(loc);
  if (r.status === 202) {
    assert.ok(loc.startsWith(`/v2/${repo}/blobs/uploads/`));
    const put = await call(U, withDigest(loc, dig), { method: 'PUT', headers: { 'Content-Type': MT.octetStream }, body });
    assert.equal(put.status, 201);
    return 202;
  }
  assert.equal(loc, `/v2/${repo}/blobs/${dig}`);
  assert.equal(r.headers.get('docker-content-digest'), dig);
  await verifyLocation(loc, body);
  return 201;
}

let pushMethod = 0;
/** Pushes a blob, rotating through the four upload styles. */
async function pushBlobAny(repo: string, dig: string, body: Buffer): Promise<void> {
  const m = pushMethod++ % 4;
  if (m === 0) return blobPostPut(repo, dig, body);
  if (m === 1) return blobPostOnly(repo, dig, body);
  if (m === 2) return blobPatchStream(repo, dig, body);
  return blobPatchChunked(repo, dig, body);
}

async function headBlob(repo: string, dig: string, body: Buffer): Promise<void> {
  const r = await call(U, `/v2/${repo}/blobs/${dig}`, { method: 'HEAD' });
  assert.equal(r.status, 200);
  assert.equal(r.body.length, 0);
  assert.equal(r.headers.get('content-length'), String(body.length));
  assert.equal(r.headers.get('docker-content-digest'), dig);
}

async function pullBlob(repo: string, dig: string, body: Buffer): Promise<void> {
  const r = await call(U, `/v2/${repo}/blobs/${dig}`);
  assert.equal(r.status, 200);
  assert.ok(r.body.equals(body));
  assert.equal(r.headers.get('content-length'), String(body.length));
  assert.equal(r.headers.get('docker-content-digest'), dig);
}

async function deleteBlob(repo: string, dig: string): Promise<void> {
  const r = await call(U, `/v2/${repo}/blobs/${dig}`, { method: 'DELETE' });
  assert.ok(r.status === 202 || r.status === 404, `${r.status} ${r.text}`);
  assertError(await call(U, `/v2/${repo}/blobs/${dig}`), 404, 'BLOB_UNKNOWN');
  assert.equal((await call(U, `/v2/${repo}/blobs/${dig}`, { method: 'HEAD' })).status, 404);
}

const mediaTypeOf = (body: Buffer): string => (JSON.parse(body.toString()) as { mediaType?: string }).mediaType ?? MT.ociImage;
const subjectOf = (body: Buffer): Desc | undefined => (JSON.parse(body.toString()) as { subject?: Desc }).subject;

async function putManifest(repo: string, ref: string, body: Buffer, tags: string[] = []): Promise<Reply> {
  const q = tags.map((t) => `tag=${enc(t)}`).join('&');
  return call(U, `/v2/${repo}/manifests/${ref}${q ? `?${q}` : ''}`, { method: 'PUT', headers: { 'Content-Type': mediaTypeOf(body) }, body });
}

async function checkManifestPut(r: Reply, dig: string, body: Buffer): Promise<void> {
  assert.equal(r.status, 201, r.text);
  assert.equal(r.headers.get('docker-content-digest'), dig);
  const subject = subjectOf(body);
  if (subject) assert.equal(r.headers.get('oci-subject'), subject.digest);
  const loc = r.headers.get('location');
  assert.ok(loc);
  const g = await call(U, loc, { headers: { Accept: `${MT.ociIndex}, ${MT.ociImage}` } });
  assert.equal(g.status, 200);
  assert.equal(g.headers.get('content-type'), mediaTypeOf(body));
  assert.equal(g.headers.get('content-length'), String(body.length));
  assert.ok(g.body.equals(body));
}

async function getManifest(repo: string, ref: string, dig: string, body: Buffer, head: boolean): Promise<void> {
  const r = await call(U, `/v2/${repo}/manifests/${ref}`, { method: head ? 'HEAD' : 'GET', headers: { Accept: `${MT.ociIndex}, ${MT.ociImage}` } });
  assert.equal(r.status, 200, `${head ? 'HEAD' : 'GET'} ${ref}: ${r.text}`);
  assert.equal(r.headers.get('content-type'), mediaTypeOf(body));
  assert.equal(r.headers.get('content-length'), String(body.length));
  assert.equal(r.headers.get('docker-content-digest'), dig);
  if (head) assert.equal(r.body.length, 0);
  else assert.ok(r.body.equals(body));
}

async function referrers(repo: string, subject: string, artifactType?: string): Promise<{ reply: Reply; manifests: Desc[] }> {
  const r = await call(U, `/v2/${repo}/referrers/${subject}${artifactType ? `?artifactType=${enc(artifactType)}` : ''}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('content-type'), MT.ociIndex);
  const index = r.json<{ schemaVersion: number; mediaType: string; manifests: Desc[] }>();
  assert.equal(index.schemaVersion, 2);
  assert.equal(index.mediaType, MT.ociIndex);
  return { reply: r, manifests: index.manifests };
}

function containsReferrer(list: Desc[], goal: Desc): boolean {
  return list.some(
    (d) =>
      d.digest === goal.digest &&
      d.mediaType === goal.mediaType &&
      d.size === goal.size &&
      d.artifactType === goal.artifactType &&
      Object.entries(goal.annotations ?? {}).every(([k, v]) => d.annotations?.[k] === v),
  );
}

/** One data set through push, list, head, pull, referrers and delete (run.go's per-data-set flow). */
async function runDataSet(td: TestData, repo: string): Promise<void> {
  for (const [dig, body] of td.blobs) await pushBlobAny(repo, dig, body);
  const pushedTags = new Set<string>();
  for (const dig of td.manOrder) {
    const body = td.manifests.get(dig)!;
    const tags = td.tagParam.has(dig) ? [...td.tags].filter(([, d]) => d === dig).map(([t]) => t) : [];
    const r = await putManifest(repo, dig, body, tags);
    if (td.badDigest.has(dig)) {
      assertError(r, 400, 'DIGEST_INVALID');
      continue;
    }
    await checkManifestPut(r, dig, body);
    if (tags.length > 0) {
      const got = r.headers.get('oci-tag')!.split(',').map((s) => s.trim());
      for (const t of tags) {
        assert.ok(got.includes(t), `OCI-Tag lacks ${t}`);
        pushedTags.add(t);
      }
    }
  }
  for (const [tag, dig] of td.tags) {
    if (pushedTags.has(tag)) continue;
    await checkManifestPut(await putManifest(repo, tag, td.manifests.get(dig)!), dig, td.manifests.get(dig)!);
  }
  // tags list, and paging with `last`
  const list = await call(U, `/v2/${repo}/tags/list`);
  assert.equal(list.status, 200);
  const tags = list.json<{ name: string; tags: string[] }>().tags;
  for (const tag of td.tags.keys()) assert.ok(tags.includes(tag), `tag ${tag} missing`);
  assert.deepEqual(tags, [...tags].sort());
  if (tags.length >= 2) {
    const end = Math.floor(tags.length / 2);
    const partial = (await call(U, `/v2/${repo}/tags/list?last=${enc(tags[end - 1]!)}`)).json<{ tags: string[] }>().tags;
    assert.deepEqual(partial, tags.slice(end));
  }
  // head and pull, by tag and by digest
  const good = td.manOrder.filter((d) => !td.badDigest.has(d));
  for (const head of [true, false]) {
    for (const [tag, dig] of td.tags) await getManifest(repo, tag, dig, td.manifests.get(dig)!, head);
    for (const dig of good) await getManifest(repo, dig, dig, td.manifests.get(dig)!, head);
  }
  for (const [dig, body] of td.blobs) {
    await headBlob(repo, dig, body);
    await pullBlob(repo, dig, body);
  }
  // referrers, unfiltered and filtered by each artifactType
  for (const [subject, goals] of td.referrers) {
    const all = await referrers(repo, subject);
    for (const g of goals) assert.ok(containsReferrer(all.manifests, g), `referrer ${g.digest} missing for ${subject}`);
    for (const at of new Set(goals.map((g) => g.artifactType).filter((t): t is string => !!t))) {
      const filtered = await referrers(repo, subject, at);
      assert.equal(filtered.reply.headers.get('oci-filters-applied'), 'artifactType');
      for (const g of goals.filter((x) => x.artifactType === at)) assert.ok(containsReferrer(filtered.manifests, g));
      for (const d of filtered.manifests) assert.equal(d.artifactType, at);
    }
  }
  // delete: tags, manifests (last pushed first), blobs; each visible at once
  for (const tag of td.tags.keys()) {
    const r = await call(U, `/v2/${repo}/manifests/${tag}`, { method: 'DELETE' });
    assert.equal(r.status, 202, r.text);
    assert.equal((await call(U, `/v2/${repo}/manifests/${tag}`, { method: 'HEAD' })).status, 404);
  }
  for (const dig of [...good].reverse()) {
    const r = await call(U, `/v2/${repo}/manifests/${dig}`, { method: 'DELETE' });
    assert.equal(r.status, 202, r.text);
    assertError(await call(U, `/v2/${repo}/manifests/${dig}`), 404, 'MANIFEST_UNKNOWN');
  }
  for (const dig of td.blobs.keys()) await deleteBlob(repo, dig);
}

/** The data sets run.go generates (sparse manifests are off by default there, and here). */
function dataSets(): TestData[] {
  const sets: TestData[] = [];
  const add = (name: string, fill: (td: TestData) => void) => {
    const td = new TestData(name);
    fill(td);
    sets.push(td);
  };
  add('image', (td) => td.genManifestFull({ tag: 'image' }));
  add('image-uncompressed', (td) => td.genManifestFull({ tag: 'image-uncompressed', uncompressed: true }));
  add('large-manifest', (td) => {
    const annotations: Record<string, string> = {};
    for (let i = 0; i < 390; i++) annotations[`large-annotation-${i}`] = 'A'.repeat(10000);
    td.genManifestFull({ tag: 'large-manifest', annotations });
  });
  add('index', (td) => td.genIndexFull({ tag: 'index' }));
  add('nested-index', (td) => {
    const a = td.genIndexFull();
    const b = td.genIndexFull();
    td.genIndex([undefined, undefined], [a, b], { tag: 'index-of-index' });
  });
  add('empty-index', (td) => td.genIndexFull({ tag: 'index', platforms: [] }));
  const artifact: GenOpts = { artifactType: MT.exampleConf1, configMediaType: MT.ociEmptyJSON, configBytes: Buffer.from('{}'), layerCount: 1, layerMediaType: MT.exampleConf1 };
  add('artifact', (td) => td.genManifestFull({ ...artifact, tag: 'artifact' }));
  add('artifact-index', (td) => td.genIndexFull({ ...artifact, tag: 'artifact-index' }));
  add('artifact-without-layers', (td) =>
    td.genManifestFull({ ...artifact, tag: 'artifact-without-layers', layerBytes: Buffer.from('{}'), layerMediaType: MT.ociEmptyJSON }),
  );
  const annotated = { annotations: { 'org.opencontainers.conformance': 'hello conformance test' }, annotationUniq: true };
  add('artifacts-with-subject', (td) => {
    const subj = td.genManifestFull({ tag: 'image' });
    const subject = td.desc.get(subj)!;
    td.genManifestFull({ subject });
    td.genManifestFull({ ...artifact, ...annotated, subject, tag: 'tagged-artifact1' });
    td.genManifestFull({ ...artifact, ...annotated, artifactType: MT.exampleConf2, layerMediaType: MT.octetStream, subject, tag: 'tagged-artifact2' });
  });
  add('index-with-subject', (td) => {
    const subj = td.genIndexFull({ tag: 'index' });
    td.genIndexFull({ ...artifact, ...annotated, subject: td.desc.get(subj)!, tag: 'tagged-artifact' });
  });
  add('missing-subject', (td) => {
    const subject: Desc = { mediaType: MT.ociImage, size: 123, digest: digestOf('missing content') };
    td.genManifestFull({ ...artifact, ...annotated, subject, tag: 'tagged-artifact' });
  });
  add('data-field', (td) => td.genManifestFull({ tag: 'data-field', setData: true }));
  add('non-distributable-layers', (td) => {
    const external = (mediaType: string, size: number): Desc => {
      const digest = digestOf(randomBytes(256));
      return { mediaType, digest, size, urls: [`https://store.example.com/blobs/sha256/${digest.slice(7)}`] };
    };
    const l0 = external(MT.ociLayerNdGz, 123456);
    const l1 = external(MT.ociLayerNd, 12345);
    const { compressed, uncompressed } = td.genLayer(1);
    const conf = td.genConfig({ os: 'linux', architecture: 'amd64' }, [digestOf(randomBytes(256)), l1.digest, uncompressed]);
    td.genManifest(td.desc.get(conf)!, [l0, l1, td.desc.get(compressed)!], { tag: 'non-distributable-image' });
  });
  add('custom-fields', (td) => td.genIndexFull({ tag: 'custom-fields', extraField: true }));
  add('no-layers', (td) => td.genManifestFull({ tag: 'no-layers', layerCount: 0 }));
  add('sha512', (td) => td.genIndexFull({ algo: 'sha512' }));
  for (const algo of ['sha256', 'sha512'] as const) {
    add(`tag-param-${algo}`, (td) => {
      td.genIndexFull({ tag: `tag-param-${algo}`, algo });
      td.manOrder.forEach((dig, i) => {
        td.tags.set(`tag-param-${algo}-${i}`, dig);
        td.tagParam.add(dig);
      });
    });
  }
  add('bad-digest-image', (td) => {
    const dig = td.genManifestFull();
    td.manifests.set(dig, Buffer.concat([td.manifests.get(dig)!, Buffer.from('  ')]));
    td.badDigest.add(dig);
  });
  return sets;
}

const REPO1 = 'conformance/repo1';
const REPO2 = 'conformance/repo2';
let root = '';
let server: RegistryServer;

before(async () => {
  root = tempDir('ply-registry-');
  server = await startRegistry({ root, addr: '127.0.0.1:0', delete: true, log: false });
  U = server.url;
});
after(async () => {
  await server.close();
});

describe('registry: ping and empty repositories', () => {
  it('GET /v2/ answers 200 with the API version header', async () => {
    const r = await call(U, '/v2/');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('docker-distribution-api-version'), 'registry/2.0');
  });

  it('a repository never pushed to: tags list is NAME_UNKNOWN, referrers an empty index', async () => {
    assertError(await call(U, '/v2/never/pushed/tags/list'), 404, 'NAME_UNKNOWN');
    const { manifests } = await referrers('never/pushed', digestOf(randomBytes(16)));
    assert.deepEqual(manifests, []);
    assertError(await call(U, `/v2/never/pushed/manifests/latest`), 404, 'NAME_UNKNOWN');
    assertError(await call(U, `/v2/never/pushed/blobs/${digestOf('x')}`), 404, 'NAME_UNKNOWN');
  });
});

for (const algo of ['sha256', 'sha512'] as const) {
  describe(`registry: ${algo} blob APIs`, () => {
    const td = new TestData(`blobs-${algo}`);
    const gen = (size = 512) => td.genBlob({ blobSize: size, algo });
    const check = async (dig: string, body: Buffer) => {
      await headBlob(REPO1, dig, body);
      await pullBlob(REPO1, dig, body);
      await deleteBlob(REPO1, dig);
    };

    it('get-missing: an unknown blob is 404 BLOB_UNKNOWN', async () => {
      await blobPostOnly(REPO1, ...Object.values(gen()) as [string, Buffer]); // the repository exists now
      assertError(await call(U, `/v2/${REPO1}/blobs/${gen().digest}`), 404, 'BLOB_UNKNOWN');
      assert.equal((await call(U, `/v2/${REPO1}/blobs/${gen().digest}`, { method: 'HEAD' })).status, 404);
    });

    it('post only (POST ?digest=, monolithic) → 201', async () => {
      const { digest, body } = gen();
      await blobPostOnly(REPO1, digest, body);
      await check(digest, body);
    });

    it('post+put → 201', async () => {
      const { digest, body } = gen();
      await blobPostPut(REPO1, digest, body);
      await check(digest, body);
    });

    it('chunked single, chunked multi, and the last chunk in the PUT', async () => {
      for (const [size, flags] of [
        [512, {}],
        [CHUNK_MIN * 3 - 5, {}],
        [CHUNK_MIN * 3 - 5, { putLast: true }],
      ] as const) {
        const { digest, body } = gen(size);
        await blobPatchChunked(REPO1, digest, body, flags);
        await check(digest, body);
      }
    });

    it('chunks out of order → 416, and the upload recovers from GET status', async () => {
      for (const flags of [{ outOfOrder: true }, { outOfOrder: true, putLast: true }]) {
        const { digest, body } = gen(CHUNK_MIN * 3 - 5);
        await blobPatchChunked(REPO1, digest, body, flags);
        await check(digest, body);
      }
    });

    it('stream (PATCH without Content-Range, then PUT)', async () => {
      const { digest, body } = gen();
      await blobPatchStream(REPO1, digest, body);
      await check(digest, body);
    });

    it('mount from another repository → 201; without from → 201; missing blob → 202 session', async () => {
      const a = gen();
      await pushBlobAny(REPO2, a.digest, a.body);
      assert.equal(await blobMount(REPO1, REPO2, a.digest, a.body), 201);
      await check(a.digest, a.body);
      await deleteBlob(REPO2, a.digest);
      const b = gen();
      await pushBlobAny(REPO2, b.digest, b.body);
      assert.equal(await blobMount(REPO1, undefined, b.digest, b.body), 201);
      await check(b.digest, b.body);
      await deleteBlob(REPO2, b.digest);
      const c = gen();
      assert.equal(await blobMount(REPO1, REPO2, c.digest, c.body), 202);
      await check(c.digest, c.body);
    });

    it('post cancel: DELETE the session → 204, then it is unknown', async () => {
      const { loc } = await startUpload(REPO1);
      const p = await call(U, loc, { method: 'PATCH', body: randomBytes(100) });
      assert.equal(p.status, 202);
      const d = await call(U, loc, { method: 'DELETE', headers: { 'Content-Length': '0' } });
      assert.equal(d.status, 204);
      assertError(await call(U, loc), 404, 'BLOB_UPLOAD_UNKNOWN');
      assertError(await call(U, loc, { method: 'PATCH', body: 'x' }), 404, 'BLOB_UPLOAD_UNKNOWN');
      assertError(await call(U, loc, { method: 'DELETE' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    });

    it('range requests with odd bounds', async () => {
      const { digest, body } = gen(2048);
      await pushBlobAny(REPO1, digest, body);
      const get = (range: string) => call(U, `/v2/${REPO1}/blobs/${digest}`, { headers: { Range: range } });
      for (const [range, start, end] of [
        ['bytes=500-1499', 500, 1499],
        ['bytes=500-', 500, 2047],
        ['bytes=-500', 1548, 2047],
        ['bytes=2000-5000', 2000, 2047],
      ] as const) {
        const r = await get(range);
        assert.equal(r.status, 206, range);
        assert.ok(r.body.equals(body.subarray(start, end + 1)), range);
        assert.equal(r.headers.get('content-length'), String(end - start + 1));
        assert.equal(r.headers.get('content-range'), `bytes ${start}-${end}/2048`);
      }
      for (const range of ['bytes=500-0', 'bytes=5000-10000', 'bytes=2048-']) {
        const r = await get(range);
        assert.equal(r.status, 416, range);
        assert.equal(r.headers.get('content-range'), 'bytes */2048');
      }
      await deleteBlob(REPO1, digest);
    });

    it('well-known contents: the empty blob and {}', async () => {
      for (const body of [Buffer.alloc(0), Buffer.from('{}')]) {
        const digest = digestOf(body, algo);
        await pushBlobAny(REPO1, digest, body);
        await headBlob(REPO1, digest, body);
        await pullBlob(REPO1, digest, body);
        await deleteBlob(REPO1, digest);
      }
    });

    it('a wrong digest → 400 DIGEST_INVALID in every upload style, and nothing is stored', async () => {
      const bad = () => {
        const { digest, body } = gen(CHUNK_MIN * 3 - 5);
        return { digest, body: Buffer.concat([body, Buffer.from('oh no')]) };
      };
      const cases: Array<(d: string, b: Buffer) => Promise<void>> = [
        (d, b) => blobPostOnly(REPO1, d, b, true),
        (d, b) => blobPostPut(REPO1, d, b, true),
        (d, b) => blobPatchChunked(REPO1, d, b, { expectBad: true }),
        (d, b) => blobPatchChunked(REPO1, d, b, { expectBad: true, putLast: true }),
        (d, b) => blobPatchStream(REPO1, d, b, true),
      ];
      for (const run of cases) {
        const { digest, body } = bad();
        await run(digest, body);
        assertError(await call(U, `/v2/${REPO1}/blobs/${digest}`), 404, 'BLOB_UNKNOWN');
        // Neither the claimed digest nor the real content's digest reached the store.
        assert.equal(fs.existsSync(path.join(root, 'blobs', algo, digest.split(':')[1]!)), false);
        assert.equal(fs.existsSync(path.join(root, 'blobs', algo, digestOf(body, algo).split(':')[1]!)), false);
      }
      const leftover = fs.readdirSync(path.join(root, 'ingest')).filter((d) => !d.startsWith('upload-'));
      assert.deepEqual(leftover, []);
    });
  });
}

describe('registry: push flows (02_push)', () => {
  const repo = 'push/flows';

  it('chunked: retrying a chunk already sent → 416; GET on the stale location → 204 with Range', async () => {
    const blob = randomBytes(42);
    const chunk1 = blob.subarray(0, 22);
    const chunk2 = blob.subarray(22);
    const { loc } = await startUpload(repo);
    const out = await call(U, loc, { method: 'PATCH', headers: { 'Content-Range': `22-41` }, body: chunk2 });
    assertError(out, 416, 'BLOB_UPLOAD_INVALID');
    const first = await call(U, loc, { method: 'PATCH', headers: { 'Content-Range': '0-21' }, body: chunk1 });
    assert.equal(first.status, 202);
    assert.equal(first.headers.get('range'), '0-21');
    assert.equal((await call(U, loc, { method: 'PATCH', headers: { 'Content-Range': '0-21' }, body: chunk1 })).status, 416);
    const st = await call(U, loc);
    assert.equal(st.status, 204);
    assert.equal(st.headers.get('range'), '0-21');
    assert.ok(st.headers.get('location'));
    assert.equal(st.headers.get('docker-upload-uuid'), loc.split('/').pop());
    const second = await call(U, st.headers.get('location')!, { method: 'PATCH', headers: { 'Content-Range': '22-41' }, body: chunk2 });
    assert.equal(second.status, 202);
    const put = await call(U, withDigest(second.headers.get('location')!, digestOf(blob)), { method: 'PUT', headers: { 'Content-Length': '0' } });
    assert.equal(put.status, 201);
    await pullBlob(repo, digestOf(blob), blob);
  });

  it('a Content-Range that does not match Content-Length is refused', async () => {
    const { loc } = await startUpload(repo);
    assertError(await call(U, loc, { method: 'PATCH', headers: { 'Content-Range': '0-99' }, body: randomBytes(10) }), 400, 'BLOB_UPLOAD_INVALID');
    assertError(await call(U, loc, { method: 'PATCH', headers: { 'Content-Range': 'garbage' }, body: randomBytes(10) }), 416, 'BLOB_UPLOAD_INVALID');
  });

  it('closing PUT without or with a malformed digest → 400 DIGEST_INVALID', async () => {
    const { loc } = await startUpload(repo);
    assertError(await call(U, loc, { method: 'PUT', body: 'abc' }), 400, 'DIGEST_INVALID');
    assertError(await call(U, `${loc}?digest=sha256:nothex`, { method: 'PUT', body: 'abc' }), 400, 'DIGEST_INVALID');
    assertError(await call(U, `/v2/${repo}/blobs/uploads/?digest=md5:abc`, { method: 'POST', body: 'abc' }), 400, 'DIGEST_INVALID');
    assertError(await call(U, `/v2/${repo}/blobs/uploads/?mount=sha256:zz&from=x`, { method: 'POST' }), 400, 'DIGEST_INVALID');
  });

  it('an upload session belongs to its repository', async () => {
    const { loc } = await startUpload(repo);
    const other = loc.replace(`/v2/${repo}/`, '/v2/push/other/');
    await call(U, '/v2/push/other/blobs/uploads/', { method: 'POST' });
    assertError(await call(U, other), 404, 'BLOB_UPLOAD_UNKNOWN');
    assertError(await call(U, `/v2/${repo}/blobs/uploads/not-a-session`), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('manifests: 4 tags on one manifest, one with no layers, GET by digest', async () => {
    const td = new TestData('push');
    const dig = td.genManifestFull();
    const empty = td.genManifestFull({ layerCount: 0 });
    for (const [d, b] of td.blobs) await pushBlobAny(repo, d, b);
    assertError(await call(U, `/v2/${repo}/manifests/.INVALID_MANIFEST_NAME`), 404, 'MANIFEST_UNKNOWN');
    for (let i = 0; i < 4; i++) await checkManifestPut(await putManifest(repo, `test${i}`, td.manifests.get(dig)!), dig, td.manifests.get(dig)!);
    await checkManifestPut(await putManifest(repo, 'emptylayer', td.manifests.get(empty)!), empty, td.manifests.get(empty)!);
    await getManifest(repo, dig, dig, td.manifests.get(dig)!, false);
    const tags = (await call(U, `/v2/${repo}/tags/list`)).json<{ tags: string[] }>().tags;
    assert.deepEqual(tags, ['emptylayer', 'test0', 'test1', 'test2', 'test3']);
  });

  it('a manifest referencing a blob the repository lacks → 400 MANIFEST_BLOB_UNKNOWN, nothing stored', async () => {
    const td = new TestData('missing');
    const dig = td.genManifestFull();
    const [first] = td.blobs.keys();
    for (const [d, b] of td.blobs) if (d !== first) await pushBlobAny(repo, d, b);
    const r = await putManifest(repo, 'missing', td.manifests.get(dig)!);
    assertError(r, 400, 'MANIFEST_BLOB_UNKNOWN');
    assert.ok(JSON.stringify(r.json()).includes(first!));
    assertError(await call(U, `/v2/${repo}/manifests/missing`), 404, 'MANIFEST_UNKNOWN');
    assert.equal(fs.existsSync(path.join(root, 'blobs', 'sha256', dig.slice(7))), false);
    // The blob in another repository does not count: a blob is visible only where it was pushed or mounted.
    await pushBlobAny('push/elsewhere', first!, td.blobs.get(first!)!);
    assertError(await putManifest(repo, 'missing', td.manifests.get(dig)!), 400, 'MANIFEST_BLOB_UNKNOWN');
    assertError(await call(U, `/v2/${repo}/blobs/${first}`), 404, 'BLOB_UNKNOWN');
    assert.equal(await blobMount(repo, 'push/elsewhere', first!, td.blobs.get(first!)!), 201);
    await checkManifestPut(await putManifest(repo, 'missing', td.manifests.get(dig)!), dig, td.manifests.get(dig)!);
  });

  it('an index whose child manifest is missing → 400 MANIFEST_BLOB_UNKNOWN', async () => {
    const td = new TestData('index-missing');
    const idx = td.genIndexFull();
    for (const [d, b] of td.blobs) await pushBlobAny(repo, d, b);
    await checkManifestPut(await putManifest(repo, td.manOrder[0]!, td.manifests.get(td.manOrder[0]!)!), td.manOrder[0]!, td.manifests.get(td.manOrder[0]!)!);
    assertError(await putManifest(repo, 'index-missing', td.manifests.get(idx)!), 400, 'MANIFEST_BLOB_UNKNOWN');
    await checkManifestPut(await putManifest(repo, td.manOrder[1]!, td.manifests.get(td.manOrder[1]!)!), td.manOrder[1]!, td.manifests.get(td.manOrder[1]!)!);
    await checkManifestPut(await putManifest(repo, 'index-missing', td.manifests.get(idx)!), idx, td.manifests.get(idx)!);
  });

  it('invalid manifests → 400 MANIFEST_INVALID; bad references → DIGEST_INVALID', async () => {
    const put = (ref: string, body: string, ct: string = MT.ociImage) => call(U, `/v2/${repo}/manifests/${ref}`, { method: 'PUT', headers: { 'Content-Type': ct }, body });
    assertError(await put('bad', 'blablabla'), 400, 'MANIFEST_INVALID');
    assertError(await put('bad', '[]'), 400, 'MANIFEST_INVALID');
    assertError(await put('bad', JSON.stringify({ schemaVersion: 2, mediaType: MT.ociImage, layers: [] })), 400, 'MANIFEST_INVALID');
    assertError(await put('bad', JSON.stringify({ schemaVersion: 2, mediaType: MT.ociImage, config: { mediaType: MT.ociConfig, digest: 'sha256:abc', size: 2 }, layers: [] })), 400, 'MANIFEST_INVALID');
    assertError(await put('bad', JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }), 'application/vnd.docker.distribution.manifest.v1+prettyjws'), 400, 'MANIFEST_INVALID');
    assertError(await put('bad', JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: [] }), MT.ociImage), 400, 'MANIFEST_INVALID');
    assertError(await put('sha256:totallywrong', 'blablabla'), 400, 'DIGEST_INVALID');
    assertError(await put('sha256:baddigeststring', JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: [] }), MT.ociIndex), 400, 'DIGEST_INVALID');
    const body = JSON.stringify({ schemaVersion: 2, mediaType: MT.ociIndex, manifests: [] });
    assertError(await put(digestOf(body + ' '), body, MT.ociIndex), 400, 'DIGEST_INVALID');
    assertError(await put('bad:tag', body, MT.ociIndex), 400, 'DIGEST_INVALID');
    assertError(await put('-badtag', body, MT.ociIndex), 400, 'MANIFEST_INVALID');
    const r = await call(U, `/v2/${repo}/manifests/sha256:totallywrong`);
    assert.ok(r.status === 400 || r.status === 404);
    assert.ok(['DIGEST_INVALID', 'MANIFEST_UNKNOWN'].includes(r.json().errors[0].code));
  });

  it('Docker schema 2 manifests and manifest lists, served with their own media types', async () => {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const layer = zlib.gzipSync(randomBytes(300));
    await pushBlobAny(repo, digestOf(config), config);
    await pushBlobAny(repo, digestOf(layer), layer);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.dockerManifest,
        config: { mediaType: MT.dockerConfig, size: config.length, digest: digestOf(config) },
        layers: [{ mediaType: MT.dockerLayer, size: layer.length, digest: digestOf(layer) }],
      }),
    );
    await checkManifestPut(await putManifest(repo, 'docker', manifest), digestOf(manifest), manifest);
    const list = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.dockerList,
        manifests: [{ mediaType: MT.dockerManifest, size: manifest.length, digest: digestOf(manifest), platform: { architecture: 'amd64', os: 'linux' } }],
      }),
    );
    await checkManifestPut(await putManifest(repo, 'docker-list', list), digestOf(list), list);
    // Clients asking only for Docker types still get the stored bytes and type.
    const r = await call(U, `/v2/${repo}/manifests/docker-list`, { headers: { Accept: MT.dockerManifest } });
    assert.equal(r.headers.get('content-type'), MT.dockerList);
    assert.ok(r.body.equals(list));
    // A manifest without a mediaType field takes the Content-Type it was pushed with.
    const bare = Buffer.from(JSON.stringify({ schemaVersion: 2, config: { mediaType: MT.ociConfig, size: config.length, digest: digestOf(config) }, layers: [] }));
    const p = await call(U, `/v2/${repo}/manifests/bare`, { method: 'PUT', headers: { 'Content-Type': MT.ociImage }, body: bare });
    assert.equal(p.status, 201);
    assert.equal((await call(U, `/v2/${repo}/manifests/bare`)).headers.get('content-type'), MT.ociImage);
  });
});

describe('registry: data sets (run.go)', () => {
  for (const td of dataSets()) {
    it(td.name, async () => {
      await runDataSet(td, REPO1);
    });
  }

  it('missing manifests → 404 MANIFEST_UNKNOWN, by digest and by tag', async () => {
    assertError(await call(U, `/v2/${REPO1}/manifests/${digestOf(randomBytes(1024))}`), 404, 'MANIFEST_UNKNOWN');
    assertError(await call(U, `/v2/${REPO1}/manifests/missing-${randomBytes(8).toString('hex')}`), 404, 'MANIFEST_UNKNOWN');
    assert.equal((await call(U, `/v2/${REPO1}/manifests/missing-tag`, { method: 'HEAD' })).status, 404);
  });
});

describe('registry: content discovery (03_discovery)', () => {
  const repo = 'discovery/repo';
  const td = new TestData('discovery');
  let subject = '';

  before(async () => {
    const image = td.genManifestFull();
    for (let i = 0; i < 4; i++) td.tags.set(`test${i}`, image);
    subject = image;
    for (const [d, b] of td.blobs) await pushBlobAny(repo, d, b);
    for (let i = 0; i < 4; i++) assert.equal((await putManifest(repo, `test${i}`, td.manifests.get(image)!)).status, 201);
  });

  it('tags list: sorted, limited by n with a Link header, continued by last; n=0 is empty without Link', async () => {
    for (const t of ['b', 'a', 'Z', '10', '9']) assert.equal((await putManifest(repo, t, td.manifests.get(subject)!)).status, 201);
    const all = (await call(U, `/v2/${repo}/tags/list`)).json<{ name: string; tags: string[] }>();
    assert.equal(all.name, repo);
    assert.deepEqual(all.tags, ['10', '9', 'Z', 'a', 'b', 'test0', 'test1', 'test2', 'test3']);
    const seen: string[] = [];
    let next: string | undefined = `/v2/${repo}/tags/list?n=4`;
    while (next) {
      const r = await call(U, next);
      const page = r.json<{ tags: string[] }>().tags;
      assert.ok(page.length <= 4);
      seen.push(...page);
      const link = r.headers.get('link');
      next = link ? /^<([^>]+)>; rel="next"$/.exec(link)![1] : undefined;
      if (next) assert.equal(page.length, 4);
    }
    assert.deepEqual(seen, all.tags);
    const half = (await call(U, `/v2/${repo}/tags/list?n=2&last=Z`)).json<{ tags: string[] }>().tags;
    assert.deepEqual(half, ['a', 'b']);
    const zero = await call(U, `/v2/${repo}/tags/list?n=0`);
    assert.deepEqual(zero.json().tags, []);
    assert.equal(zero.headers.get('link'), null);
    assert.deepEqual((await call(U, `/v2/${repo}/tags/list?last=test3`)).json().tags, []);
  });

  it('catalog: every repository, sorted, paged', async () => {
    const all = (await call(U, '/v2/_catalog')).json<{ repositories: string[] }>().repositories;
    assert.ok(all.includes(repo));
    assert.deepEqual(all, [...all].sort());
    const first = await call(U, '/v2/_catalog?n=1');
    assert.deepEqual(first.json().repositories, all.slice(0, 1));
    assert.match(first.headers.get('link') ?? '', /^<\/v2\/_catalog\?n=1&last=[^>]+>; rel="next"$/);
    assert.deepEqual((await call(U, `/v2/_catalog?last=${enc(all[0]!)}`)).json().repositories, all.slice(1));
  });

  it('referrers: pushed before and after their subject, filtered by artifactType, to a missing subject', async () => {
    const image = td.manifests.get(subject)!;
    const subj: Desc = { mediaType: MT.ociImage, size: image.length, digest: subject };
    const empty = Buffer.from('{}');
    const emptyDesc: Desc = { mediaType: MT.ociEmptyJSON, size: 2, digest: digestOf(empty) };
    const blobA = Buffer.from('NHL Peanut Butter on my NHL bagel');
    const blobB = Buffer.from('NBA Strawberry Jam on my NBA croissant');
    const typeA = 'application/vnd.nhl.peanut.butter.bagel';
    const typeB = 'application/vnd.nba.strawberry.jam.croissant';
    for (const b of [empty, blobA, blobB]) await pushBlobAny(repo, digestOf(b), b);
    const key = 'org.opencontainers.conformance.test';
    const mk = (o: object) => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociImage, ...o }, null, '\t'));
    const configA = mk({ config: { mediaType: typeA, size: blobA.length, digest: digestOf(blobA) }, subject: subj, layers: [emptyDesc], annotations: { [key]: 'test config a' } });
    const layerA = mk({ artifactType: typeA, config: emptyDesc, subject: subj, layers: [{ mediaType: typeA, size: blobA.length, digest: digestOf(blobA) }], annotations: { [key]: 'test layer a' } });
    const configB = mk({ config: { mediaType: typeB, size: blobB.length, digest: digestOf(blobB) }, subject: subj, layers: [emptyDesc], annotations: { [key]: 'test config b' } });
    const layerB = mk({ artifactType: typeB, config: emptyDesc, subject: subj, layers: [{ mediaType: typeB, size: blobB.length, digest: digestOf(blobB) }], annotations: { [key]: 'test layer b' } });
    const missingSubject: Desc = { mediaType: MT.ociImage, size: 100, digest: digestOf('not pushed') };
    const layerC = mk({ artifactType: typeB, config: emptyDesc, subject: missingSubject, layers: [{ mediaType: typeB, size: blobB.length, digest: digestOf(blobB) }] });
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MT.ociIndex,
        artifactType: 'application/vnd.food.stand',
        manifests: [
          { mediaType: MT.ociImage, size: configA.length, digest: digestOf(configA) },
          { mediaType: MT.ociImage, size: layerA.length, digest: digestOf(layerA) },
        ],
        subject: subj,
        annotations: { [key]: 'test index' },
      }),
    );
    for (const m of [configA, layerA, index, configB, layerB]) {
      const r = await putManifest(repo, digestOf(m), m);
      assert.equal(r.status, 201, r.text);
      assert.equal(r.headers.get('oci-subject'), subject);
    }
    const rc = await putManifest(repo, digestOf(layerC), layerC);
    assert.equal(rc.headers.get('oci-subject'), missingSubject.digest);

    const { manifests } = await referrers(repo, subject);
    assert.equal(manifests.length, 5);
    const byDigest = new Map(manifests.map((m) => [m.digest, m]));
    assert.equal(byDigest.get(digestOf(configA))!.artifactType, typeA);
    assert.equal(byDigest.get(digestOf(layerA))!.artifactType, typeA);
    assert.equal(byDigest.get(digestOf(index))!.artifactType, 'application/vnd.food.stand');
    assert.equal(byDigest.get(digestOf(index))!.mediaType, MT.ociIndex);
    assert.equal(byDigest.get(digestOf(configB))!.annotations![key], 'test config b');
    for (const m of manifests) assert.equal(Object.keys(m.annotations ?? {}).length, 1);
    const filtered = await referrers(repo, subject, typeA);
    assert.equal(filtered.reply.headers.get('oci-filters-applied'), 'artifactType');
    assert.deepEqual(filtered.manifests.map((m) => m.digest).sort(), [digestOf(configA), digestOf(layerA)].sort());
    const toMissing = await referrers(repo, missingSubject.digest);
    assert.deepEqual(toMissing.manifests.map((m) => m.digest), [digestOf(layerC)]);
    assert.deepEqual((await referrers(repo, digestOf('hello world'))).manifests, []);
    assertError(await call(U, `/v2/${repo}/referrers/sha256:nothex`), 400, 'DIGEST_INVALID');
    // Deleting a referrer removes it from the list.
    assert.equal((await call(U, `/v2/${repo}/manifests/${digestOf(configB)}`, { method: 'DELETE' })).status, 202);
    assert.equal((await referrers(repo, subject)).manifests.length, 4);
  });
});

describe('registry: content management (04_management)', () => {
  const repo = 'management/repo';

  it('delete tag → 202, manifest → 202, blobs → 202, each visible at once; unknown ones → 404', async () => {
    const td = new TestData('management');
    const dig = td.genManifestFull();
    for (const [d, b] of td.blobs) await pushBlobAny(repo, d, b);
    assert.equal((await putManifest(repo, 'tagtest0', td.manifests.get(dig)!)).status, 201);
    assert.equal((await putManifest(repo, 'keep', td.manifests.get(dig)!)).status, 201);
    const before = (await call(U, `/v2/${repo}/tags/list`)).json().tags.length;
    assert.equal((await call(U, `/v2/${repo}/manifests/tagtest0`, { method: 'DELETE' })).status, 202);
    assertError(await call(U, `/v2/${repo}/manifests/tagtest0`), 404, 'MANIFEST_UNKNOWN');
    await getManifest(repo, dig, dig, td.manifests.get(dig)!, false); // the manifest stays
    assertError(await call(U, `/v2/${repo}/manifests/tagtest0`, { method: 'DELETE' }), 404, 'MANIFEST_UNKNOWN');
    assert.equal((await call(U, `/v2/${repo}/manifests/${dig}`, { method: 'DELETE' })).status, 202);
    assertError(await call(U, `/v2/${repo}/manifests/${dig}`), 404, 'MANIFEST_UNKNOWN');
    assertError(await call(U, `/v2/${repo}/manifests/keep`), 404, 'MANIFEST_UNKNOWN'); // its tags went with it
    const after = await call(U, `/v2/${repo}/tags/list`);
    assert.equal(after.status, 200);
    assert.ok(after.json().tags.length < before);
    for (const d of td.blobs.keys()) await deleteBlob(repo, d);
    assertError(await call(U, `/v2/${repo}/blobs/${[...td.blobs.keys()][0]}`, { method: 'DELETE' }), 404, 'BLOB_UNKNOWN');
    assertError(await call(U, `/v2/${repo}/manifests/${dig}`, { method: 'DELETE' }), 404, 'MANIFEST_UNKNOWN');
    assertError(await call(U, `/v2/no/such/repo/manifests/${dig}`, { method: 'DELETE' }), 404, 'NAME_UNKNOWN');
  });

  it('blobs may be deleted before the manifests that use them', async () => {
    const td = new TestData('blobs-first');
    const dig = td.genManifestFull();
    for (const [d, b] of td.blobs) await pushBlobAny(repo, d, b);
    assert.equal((await putManifest(repo, 'x', td.manifests.get(dig)!)).status, 201);
    for (const d of td.blobs.keys()) await deleteBlob(repo, d);
    await getManifest(repo, 'x', dig, td.manifests.get(dig)!, false);
    assert.equal((await call(U, `/v2/${repo}/manifests/${dig}`, { method: 'DELETE' })).status, 202);
  });
});

describe('registry: names, errors, modes', () => {
  it('repository names with slashes and route-like segments are parsed from the right', async () => {
    for (const name of ['a/blobs/b', 'x/manifests/y', 'tags/list/z', 'p/blobs/uploads/q', 'r/referrers/s', 'a.b_c__d---e/f']) {
      const body = randomBytes(64);
      await blobPostPut(name, digestOf(body), body);
      const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociImage, config: { mediaType: MT.octetStream, size: 64, digest: digestOf(body) }, layers: [] }));
      await checkManifestPut(await putManifest(name, 'latest', m), digestOf(m), m);
      assert.deepEqual((await call(U, `/v2/${name}/tags/list`)).json(), { name, tags: ['latest'] });
    }
  });

  it('invalid names → 400 NAME_INVALID', async () => {
    for (const name of ['Upper/case', 'double//slash', 'trailing-', '-leading', 'a'.repeat(256), 'dot./x', 'x/_y']) {
      assertError(await call(U, `/v2/${name}/tags/list`), 400, 'NAME_INVALID');
    }
    assertError(await call(U, `/v2/Bad/blobs/uploads/`, { method: 'POST' }), 400, 'NAME_INVALID');
  });

  it('a method a route does not take → 405 UNSUPPORTED; an unknown path → 404', async () => {
    assertError(await call(U, `/v2/${REPO1}/tags/list`, { method: 'DELETE' }), 405, 'UNSUPPORTED');
    assertError(await call(U, `/v2/${REPO1}/blobs/uploads/`, { method: 'GET' }), 405, 'UNSUPPORTED');
    assert.equal((await call(U, '/nothing/here')).status, 404);
  });

  it('without --delete, deletes → 405 UNSUPPORTED; --read-only refuses every write with 405', async () => {
    const dir = tempDir('ply-registry-ro-');
    const rw = await startRegistry({ root: dir, addr: '127.0.0.1:0', log: false });
    const body = randomBytes(32);
    const put = await call(rw.url, `/v2/r/o/blobs/uploads/?digest=${digestOf(body)}`, { method: 'POST', body });
    assert.equal(put.status, 201);
    const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.ociImage, config: { mediaType: MT.octetStream, size: 32, digest: digestOf(body) }, layers: [] }));
    assert.equal((await call(rw.url, '/v2/r/o/manifests/v1', { method: 'PUT', headers: { 'Content-Type': MT.ociImage }, body: m })).status, 201);
    assertError(await call(rw.url, `/v2/r/o/blobs/${digestOf(body)}`, { method: 'DELETE' }), 405, 'UNSUPPORTED');
    assertError(await call(rw.url, '/v2/r/o/manifests/v1', { method: 'DELETE' }), 405, 'UNSUPPORTED');
    await rw.close();
    const ro = await startRegistry({ root: dir, addr: '127.0.0.1:0', log: false, readOnly: true, delete: true });
    try {
      assertError(await call(ro.url, '/v2/r/o/blobs/uploads/', { method: 'POST' }), 405, 'UNSUPPORTED');
      assertError(await call(ro.url, '/v2/r/o/manifests/v2', { method: 'PUT', headers: { 'Content-Type': MT.ociImage }, body: m }), 405, 'UNSUPPORTED');
      assertError(await call(ro.url, '/v2/r/o/manifests/v1', { method: 'DELETE' }), 405, 'UNSUPPORTED');
      assert.ok((await call(ro.url, '/v2/r/o/manifests/v1')).body.equals(m));
      assert.ok((await call(ro.url, `/v2/r/o/blobs/${digestOf(body)}`)).body.equals(body));
    } finally {
      await ro.close();
    }
  });
});

describe('registry: many clients, restarts, gc', () => {
  it('parallel uploads and pulls of the same blob are safe', async () => {
    const body = randomBytes(300_000);
    const dig = digestOf(body);
    const repos = Array.from({ length: 12 }, (_, i) => `parallel/r${i}`);
    await Promise.all(repos.map((r, i) => (i % 2 ? blobPostOnly(r, dig, body) : blobPatchChunked(r, dig, body))));
    const pulls = await Promise.all(repos.flatMap((r) => [call(U, `/v2/${r}/blobs/${dig}`), call(U, `/v2/${r}/blobs/${dig}`)]));
    for (const p of pulls) {
      assert.equal(p.status, 200);
      assert.ok(p.body.equals(body));
    }
    assert.deepEqual(fs.readdirSync(path.join(root, 'blobs', 'sha256')).filter((f) => f === dig.slice(7)), [dig.slice(7)]);
  });

  it('an upload survives a restart and resumes where it stopped', async () => {
    const dir = tempDir('ply-registry-restart-');
    let reg = await startRegistry({ root: dir, addr: '127.0.0.1:0', log: false });
    const body = randomBytes(10_000);
    const r = await call(reg.url, '/v2/resume/me/blobs/uploads/', { method: 'POST' });
    const loc = r.headers.get('location')!;
    assert.equal((await call(reg.url, loc, { method: 'PATCH', headers: { 'Content-Range': '0-5999' }, body: body.subarray(0, 6000) })).status, 202);
    await reg.close();
    assert.equal(fs.existsSync(path.join(dir, 'registry.pid')), false);
    reg = await startRegistry({ root: dir, addr: '127.0.0.1:0', log: false });
    try {
      const st = await call(reg.url, loc);
      assert.equal(st.status, 204);
      assert.equal(st.headers.get('range'), '0-5999');
      assert.equal((await call(reg.url, loc, { method: 'PATCH', headers: { 'Content-Range': '6000-9999' }, body: body.subarray(6000) })).status, 202);
      const put = await call(reg.url, withDigest(loc, digestOf(body, 'sha512')), { method: 'PUT' });
      assert.equal(put.status, 201, put.text);
      const got = await call(reg.url, `/v2/resume/me/blobs/${digestOf(body, 'sha512')}`);
      assert.ok(got.body.equals(body));
    } finally {
      await reg.close();
    }
  });

  it('closing the server mid-upload keeps what arrived: the upload resumes after a restart', async () => {
    const dir = tempDir('ply-registry-inflight-');
    let reg = await startRegistry({ root: dir, addr: '127.0.0.1:0', log: false, drainMs: 100 });
    const body = randomBytes(300_000);
    const loc = (await call(reg.url, '/v2/in/flight/blobs/uploads/', { method: 'POST' })).headers.get('location')!;
    const req = http.request(new URL(loc, reg.url), { method: 'PATCH', headers: { 'Content-Type': MT.octetStream } });
    const failed = new Promise<void>((resolve) => {
      req.on('error', () => resolve());
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve());
      });
    });
    req.write(body.subarray(0, 100_000));
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    await reg.close();
    assert.ok(Date.now() - t0 < 3000, 'close waited for the stalled upload');
    await failed;
    reg = await startRegistry({ root: dir, addr: '127.0.0.1:0', log: false });
    try {
      const st = await call(reg.url, loc);
      assert.equal(st.status, 204);
      assert.equal(st.headers.get('range'), '0-99999');
      const rest = await call(reg.url, loc, { method: 'PATCH', headers: { 'Content-Range': '100000-299999' }, body: body.subarray(100_000) });
      assert.equal(rest.status, 202);
      assert.equal((await call(reg.url, withDigest(loc, digestOf(body)), { method: 'PUT' })).status, 201);
      assert.ok((await call(reg.url, `/v2/in/flight/blobs/${digestOf(body)}`)).body.equals(body));
    } finally {
      await reg.close();
    }
  });

  it('gc removes blobs no manifest references and old uploads; --dry-run only lists', async () => {
    const dir = tempDir('ply-registry-gc-');
    const reg = await startRegistry({ root: dir, addr: '127.0.0.1:0', log: false, delete: true });
    const keep = new TestData('keep');
    const keepDig = keep.genManifestFull();
    const drop = new TestData('drop');
    const dropDig = drop.genManifestFull();
    const shared = [...keep.blobs.entries()][0]!;
    drop.blobs.set(shared[0], shared[1]);
    try {
      for (const [repo, td, dig] of [['gc/keep', keep, keepDig], ['gc/drop', drop, dropDig]] as const) {
        for (const [d, b] of td.blobs) assert.equal((await call(reg.url, `/v2/${repo}/blobs/uploads/?digest=${d}`, { method: 'POST', body: b })).status, 201);
        const put = await call(reg.url, `/v2/${repo}/manifests/v1`, { method: 'PUT', headers: { 'Content-Type': MT.ociImage }, body: td.manifests.get(dig)! });
          assert.equal(put.status, 201, put.text);
      }
      const stray = randomBytes(100);
      assert.equal((await call(reg.url, `/v2/gc/drop/blobs/uploads/?digest=${digestOf(stray)}`, { method: 'POST', body: stray })).status, 201);
      await call(reg.url, '/v2/gc/keep/blobs/uploads/', { method: 'POST' });
      assert.equal((await call(reg.url, `/v2/gc/drop/manifests/${dropDig}`, { method: 'DELETE' })).status, 202);
    } finally {
      await reg.close();
    }
    const dropOnly = [...drop.blobs.keys()].filter((d) => !keep.blobs.has(d));
    const expected = [...dropOnly, dropDig].sort();
    const dry = gcRegistry(dir, { dryRun: true, uploadMaxAgeMs: 0 });
    assert.ok(expected.every((d) => dry.blobs.some((b) => b.digest === d)), JSON.stringify(dry));
    assert.equal(dry.uploads.length, 1);
    for (const d of expected) assert.ok(fs.existsSync(path.join(dir, 'blobs', 'sha256', d.slice(7))));
    const res = gcRegistry(dir, { uploadMaxAgeMs: 0 });
    assert.deepEqual(res.blobs.map((b) => b.digest).sort(), dry.blobs.map((b) => b.digest).sort());
    assert.equal(res.uploads.length, 1);
    for (const d of expected) assert.equal(fs.existsSync(path.join(dir, 'blobs', 'sha256', d.slice(7))), false);
    for (const d of [...keep.blobs.keys(), keepDig]) assert.ok(fs.existsSync(path.join(dir, 'blobs', 'sha256', d.slice(7))), d);
    assert.deepEqual(gcRegistry(dir, { uploadMaxAgeMs: 0 }).blobs, []);
    const again = await startRegistry({ root: dir, addr: '127.0.0.1:0', log: false });
    try {
      assert.ok((await call(again.url, '/v2/gc/keep/manifests/v1')).body.equals(keep.manifests.get(keepDig)!));
      for (const [d, b] of keep.blobs) assert.ok((await call(again.url, `/v2/gc/keep/blobs/${d}`)).body.equals(b));
      assert.equal((await call(again.url, `/v2/gc/drop/blobs/${shared[0]}`)).status, 404);
    } finally {
      await again.close();
    }
  });
});
