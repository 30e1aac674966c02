// The registry transport: an ImageSource and an ImageDestination over the OCI distribution API
// (`/v2/<name>/manifests/<ref>`, `/v2/<name>/blobs/<digest>`, `/v2/<name>/blobs/uploads/`, `/v2/<name>/tags/list`).
//
// Pull: manifests are fetched with an Accept list of OCI and Docker schema 2 manifests and indexes, kept as their
// exact bytes and verified against the digest asked for; blobs are streamed, resumable from an offset (Range).
// Push: HEAD to skip blobs the registry has, cross-repository mounts, and uploads that are monolithic (small
// blobs, one replayable PUT), one streaming PATCH (medium) or chunked PATCHes with Content-Range (large blobs or
// when the registry sends OCI-Chunk-Min-Length); every upload is hashed on the way and refused before it is
// committed when its size or digest is not the descriptor's.
import { Digester, digestOf, isDigest, splitDigest } from '../digest/digest.js';
import { DigestMismatchError, InvalidArgumentError, UnsupportedError } from '../errors.js';
import { MediaType, type Descriptor, type Digest } from '../oci/types.js';
import { familiarName, familiarString, type Reference } from '../reference/reference.js';
import { blocks } from '../util/stream.js';
import { repositoryScope } from './registry-auth.js';
import { RegistryClient, type RegistryClientOptions } from './registry-client.js';
import { RegistryError } from '../oci/distribution-errors.js';
import { isRetriable } from './registry-errors.js';
import type { RegistryResponse } from './registry-response.js';
import type {
  BlobLocation,
  BlobReadOptions,
  ImageDestination,
  ImageSource,
  LayerCompressionRequest,
  ManifestBlob,
  PutBlobOptions,
} from './types.js';

export interface RegistryTransportOptions extends RegistryClientOptions {
  /** A client to share (its tokens and connections) between sources and destinations of the same registry. */
  client?: RegistryClient;
  /** Blobs larger than this are uploaded in chunks (default 64 MiB). */
  chunkThreshold?: number;
  /** Chunk size for chunked uploads (default 16 MiB; at least the registry's OCI-Chunk-Min-Length). */
  chunkSize?: number;
  /** Blobs up to this size are buffered and sent in one (retryable) PUT (default 8 MiB). */
  monolithicMax?: number;
  /** Destinations: compress layers on the way (push). */
  compression?: LayerCompressionRequest;
}

const MiB = 1 << 20;
/** Largest manifest accepted (containerd's limit). */
const MAX_MANIFEST = 4 * MiB;

const MANIFEST_ACCEPT = [
  MediaType.OciIndex,
  MediaType.OciManifest,
  MediaType.DockerManifestList,
  MediaType.DockerManifest,
].join(', ');

const SCHEMA1_TYPES = new Set([
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
]);

function clientFor(ref: Reference, opts: RegistryTransportOptions): RegistryClient {
  if (opts.client) {
    if (opts.client.domain !== ref.domain) {
      throw new InvalidArgumentError(`registry client for ${opts.client.domain} cannot serve ${ref.domain}`);
    }
    return opts.client;
  }
  return new RegistryClient(ref.domain, opts);
}

const enc = encodeURIComponent;

function blobPath(repo: string, digest: string): string {
  return `/v2/${repo}/blobs/${digest}`;
}

/** The media type of manifest bytes whose Content-Type was missing or generic. */
function sniffMediaType(bytes: Buffer): string | undefined {
  try {
    const j = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown; schemaVersion?: unknown; manifests?: unknown; config?: unknown };
    if (j.schemaVersion === 1) return SCHEMA1_TYPES.values().next().value;
    if (typeof j.mediaType === 'string' && j.mediaType !== '') return j.mediaType;
    if (Array.isArray(j.manifests)) return MediaType.OciIndex;
    if (j.config && typeof j.config === 'object') return MediaType.OciManifest;
  } catch {
    /* not JSON */
  }
  return undefined;
}

function mediaTypeOf(contentType: string | undefined, bytes: Buffer): string {
  const ct = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (ct === '' || ct === 'application/json' || ct === 'text/plain' || ct === 'application/octet-stream') {
    return sniffMediaType(bytes) ?? ct;
  }
  return ct;
}

async function* skip(stream: AsyncIterable<Buffer>, n: number): AsyncGenerator<Buffer> {
  let left = n;
  for await (const chunk of stream) {
    if (left === 0) yield chunk;
    else if (chunk.length <= left) left -= chunk.length;
    else {
      yield chunk.subarray(left);
      left = 0;
    }
  }
}

async function* empty(): AsyncGenerator<Buffer> {}

class RegistrySource implements ImageSource {
  readonly description: string;
  readonly location: BlobLocation;
  private readonly scopes: string[];
  constructor(
    private readonly ref: Reference,
    private readonly client: RegistryClient,
  ) {
    this.description = `registry ${ref.domain}/${ref.path}`;
    this.location = { registry: ref.domain, repository: ref.path };
    this.scopes = [repositoryScope(ref.path)];
  }

  async getManifest(reference: string): Promise<ManifestBlob> {
    const r = reference || this.ref.digest || this.ref.tag || 'latest';
    const byDigest = r.includes(':');
    if (byDigest && !isDigest(r)) throw new InvalidArgumentError(`invalid digest "${r}"`);
    const shown = byDigest
      ? familiarString({ domain: this.ref.domain, path: this.ref.path, digest: r })
      : familiarString({ domain: this.ref.domain, path: this.ref.path, tag: r });
    let res: RegistryResponse;
    try {
      res = await this.client.request({
        method: 'GET',
        path: `/v2/${this.ref.path}/manifests/${r}`,
        scopes: this.scopes,
        headers: { accept: MANIFEST_ACCEPT },
        expect: [200],
        notFound: 'MANIFEST_UNKNOWN',
      });
    } catch (e) {
      throw this.explain(e, shown);
    }
    const declared = Number(res.header('content-length'));
    if (declared > MAX_MANIFEST) {
      res.raw.destroy();
      throw new RegistryError('MANIFEST_INVALID', `manifest for ${shown} is too large (${declared} bytes)`);
    }
    const bytes = await res.buffer(MAX_MANIFEST);
    const mediaType = mediaTypeOf(res.header('content-type'), bytes);
    if (SCHEMA1_TYPES.has(mediaType)) {
      throw new UnsupportedError(
        `${shown}: Docker Image manifest version 2, schema 1 is not supported; push the image again in the OCI or Docker schema 2 format`,
      );
    }
    if (mediaType === '' || !mediaType.startsWith('application/')) {
      throw new UnsupportedError(`${shown}: unsupported manifest media type "${mediaType || 'none'}"`);
    }
    let digest: Digest;
    if (byDigest) {
      const want = r as Digest;
      const got = digestOf(bytes, splitDigest(want).algorithm);
      if (got !== want) throw new DigestMismatchError(want, got, `manifest ${shown}`);
      digest = want;
    } else {
      const header = res.header('docker-content-digest');
      if (header && isDigest(header)) {
        const got = digestOf(bytes, splitDigest(header).algorithm);
        if (got !== header) throw new DigestMismatchError(header, got, `manifest ${shown}`);
        digest = header;
      } else {
        digest = digestOf(bytes);
      }
    }
    return { bytes, mediaType, digest };
  }

  async getBlob(desc: Descriptor, opts: BlobReadOptions = {}): Promise<AsyncIterable<Buffer>> {
    const offset = opts.offset ?? 0;
    if (offset > 0 && offset >= desc.size) return empty();
    const headers: Record<string, string> = {};
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const res = await this.client.request({
      method: 'GET',
      path: blobPath(this.ref.path, desc.digest),
      scopes: this.scopes,
      headers,
      expect: [200, 206],
      notFound: 'BLOB_UNKNOWN',
      signal: opts.signal,
    });
    if (offset > 0 && res.status === 200) return skip(res.body, offset); // the server ignored Range
    return res.body;
  }

  /** Error context as docker gives it for pulls. */
  private explain(e: unknown, shown: string): unknown {
    if (!(e instanceof RegistryError)) return e;
    if (e.code === 'MANIFEST_UNKNOWN' || e.code === 'NAME_UNKNOWN' || e.code === 'NOT_FOUND') {
      return e.withContext(`manifest for ${shown} not found`);
    }
    if (e.code === 'DENIED' || e.code === 'UNAUTHORIZED') {
      return e.withContext(
        `pull access denied for ${familiarName(this.ref)}, repository does not exist or may require 'ply login'`,
      );
    }
    return e;
  }
}

class RegistryDestination implements ImageDestination {
  readonly description: string;
  readonly location: BlobLocation;
  readonly layerCompression?: LayerCompressionRequest;
  private readonly scopes: string[];
  private readonly chunkThreshold: number;
  private readonly chunkSize: number;
  private readonly monolithicMax: number;
  constructor(
    private readonly ref: Reference,
    private readonly client: RegistryClient,
    opts: RegistryTransportOptions,
  ) {
    this.description = `registry ${ref.domain}/${ref.path}`;
    this.location = { registry: ref.domain, repository: ref.path };
    this.layerCompression = opts.compression;
    this.scopes = [repositoryScope(ref.path, true)];
    this.chunkThreshold = opts.chunkThreshold ?? 64 * MiB;
    this.chunkSize = Math.max(1, opts.chunkSize ?? 16 * MiB);
    this.monolithicMax = opts.monolithicMax ?? 8 * MiB;
  }

  async hasBlob(desc: Descriptor): Promise<boolean> {
    const res = await this.client.request({
      method: 'HEAD',
      path: blobPath(this.ref.path, desc.digest),
      scopes: this.scopes,
      expect: [200, 404],
    });
    res.discard();
    return res.status === 200;
  }

  async mountBlob(desc: Descriptor, fromRepository: string): Promise<boolean> {
    if (fromRepository === this.ref.path) return this.hasBlob(desc);
    const res = await this.startMount(desc, fromRepository);
    res.discard();
    if (res.status === 201) return true;
    const loc = res.location();
    if (loc) await this.cancel(loc);
    return false;
  }

  async putBlob(desc: Descriptor, data: AsyncIterable<Buffer>, opts: PutBlobOptions = {}): Promise<void> {
    let session: RegistryResponse;
    if (opts.mountFrom && opts.mountFrom !== this.ref.path) {
      session = await this.startMount(desc, opts.mountFrom, opts.signal);
      if (session.status === 201) {
        session.discard();
        await closeIterable(data);
        return;
      }
    } else {
      session = await this.startUpload(opts.signal);
    }
    session.discard();
    let location = this.locationOf(session);
    const minChunk = Number(session.header('oci-chunk-min-length') ?? 0);
    const hasher = new UploadCheck(desc);
    const checked = hasher.wrap(data);
    try {
      if (minChunk > 0 || desc.size > this.chunkThreshold) {
        location = await this.uploadChunked(location, checked, Math.max(minChunk, this.chunkSize), opts.signal);
        hasher.verify();
        await this.finishUpload(location, desc, undefined, opts.signal);
      } else if (desc.size <= this.monolithicMax) {
        const body = await collect(checked, desc.size);
        hasher.verify();
        await this.finishUpload(location, desc, body, opts.signal);
      } else {
        location = await this.patchStream(location, checked, desc.size, opts.signal);
        hasher.verify();
        await this.finishUpload(location, desc, undefined, opts.signal);
      }
    } catch (e) {
      await this.cancel(location);
      await closeIterable(data);
      throw e;
    }
  }

  /**
   * A blob produced while it is sent (a layer being compressed): POST, then one PATCH whose body streams as it
   * is made (chunked transfer encoding; Content-Range PATCHes when the registry asks for a chunk minimum), then
   * PUT ?digest= with the digest the bytes hashed to. Not retried: the bytes are gone once sent.
   */
  async putNewBlob(data: AsyncIterable<Buffer>, opts: { signal?: AbortSignal } = {}): Promise<{ digest: Digest; size: number }> {
    const session = await this.startUpload(opts.signal);
    session.discard();
    let location = this.locationOf(session);
    const minChunk = Number(session.header('oci-chunk-min-length') ?? 0);
    const hasher = new Digester('sha256');
    const hashed = (async function* () {
      for await (const chunk of data) {
        hasher.update(chunk);
        yield chunk;
      }
    })();
    try {
      if (minChunk > 0) {
        location = await this.uploadChunked(location, hashed, Math.max(minChunk, this.chunkSize), opts.signal);
      } else {
        location = await this.patchStream(location, hashed, undefined, opts.signal);
      }
      const desc: Descriptor = { mediaType: 'application/octet-stream', digest: hasher.digest(), size: hasher.size };
      await this.finishUpload(location, desc, undefined, opts.signal);
      return { digest: desc.digest, size: desc.size };
    } catch (e) {
      await this.cancel(location);
      await closeIterable(data);
      throw e;
    }
  }

  async putManifest(manifest: ManifestBlob, tag?: string): Promise<void> {
    const reference = tag ?? manifest.digest;
    const res = await this.client.request({
      method: 'PUT',
      path: `/v2/${this.ref.path}/manifests/${reference}`,
      scopes: this.scopes,
      headers: { 'content-type': manifest.mediaType },
      body: manifest.bytes,
      expect: [200, 201],
      notFound: 'NAME_UNKNOWN',
    });
    res.discard();
    const header = res.header('docker-content-digest');
    if (header && isDigest(header) && splitDigest(header).algorithm === splitDigest(manifest.digest).algorithm && header !== manifest.digest) {
      throw new DigestMismatchError(manifest.digest, header, `manifest stored by ${this.ref.domain}`);
    }
  }

  private startUpload(signal?: AbortSignal): Promise<RegistryResponse> {
    return this.client.request({ method: 'POST', path: `/v2/${this.ref.path}/blobs/uploads/`, scopes: this.scopes, expect: [202], signal });
  }

  /** One PATCH streaming `body` (of `size` bytes, or chunked when unknown); returns the session's next location. */
  private async patchStream(location: URL, body: AsyncIterable<Buffer>, size: number | undefined, signal?: AbortSignal): Promise<URL> {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (size !== undefined) headers['content-length'] = String(size);
    const res = await this.client.request({ method: 'PATCH', path: location, scopes: this.scopes, headers, body, expect: [202], signal });
    res.discard();
    return this.locationOf(res, location);
  }

  private startMount(desc: Descriptor, from: string, signal?: AbortSignal): Promise<RegistryResponse> {
    return this.client.request({
      method: 'POST',
      path: `/v2/${this.ref.path}/blobs/uploads/?mount=${enc(desc.digest)}&from=${enc(from)}`,
      scopes: [...this.scopes, repositoryScope(from)],
      expect: [201, 202],
      signal,
    });
  }

  private locationOf(res: RegistryResponse, previous?: URL): URL {
    const loc = res.location();
    if (loc) return loc;
    if (previous) return previous;
    throw new RegistryError('BLOB_UPLOAD_INVALID', `${this.ref.domain} answered an upload without a Location`, { status: res.status });
  }

  /** Sends the data in PATCHes of `size` bytes with Content-Range; resumes a chunk from the registry's offset after a failure. */
  private async uploadChunked(start: URL, data: AsyncIterable<Buffer>, size: number, signal?: AbortSignal): Promise<URL> {
    let location = start;
    let offset = 0;
    for await (const chunk of blocks(data, size)) {
      let sent = 0;
      for (let attempt = 1; ; attempt++) {
        const part = sent === 0 ? chunk : chunk.subarray(sent);
        try {
          const res = await this.client.request({
            method: 'PATCH',
            path: location,
            scopes: this.scopes,
            headers: {
              'content-type': 'application/octet-stream',
              'content-range': `${offset + sent}-${offset + chunk.length - 1}`,
            },
            body: part,
            expect: [202],
            retry: false,
            signal,
          });
          res.discard();
          location = this.locationOf(res, location);
          break;
        } catch (e) {
          if (attempt >= 3 || !isRetriable(e)) throw e;
          await new Promise((r) => setTimeout(r, 250 * 2 ** (attempt - 1)));
          // Ask the registry how much it has, then send the rest of this chunk.
          const status = await this.uploadStatus(location, signal);
          location = status.location;
          const have = status.next - offset;
          if (have < 0 || have > chunk.length) throw e;
          sent = have;
          if (sent === chunk.length) break;
        }
      }
      offset += chunk.length;
    }
    return location;
  }

  private async uploadStatus(location: URL, signal?: AbortSignal): Promise<{ location: URL; next: number }> {
    const res = await this.client.request({ method: 'GET', path: location, scopes: this.scopes, expect: [204, 202], signal });
    res.discard();
    const range = /^(?:bytes=)?(\d+)-(\d+)$/.exec(res.header('range') ?? '');
    return { location: this.locationOf(res, location), next: range ? Number(range[2]) + 1 : 0 };
  }

  /** The final PUT ?digest= (with the whole blob as body for monolithic uploads); expects 201. */
  private async finishUpload(location: URL, desc: Descriptor, body: Buffer | undefined, signal?: AbortSignal): Promise<void> {
    const u = new URL(location.href);
    const param = `digest=${enc(desc.digest)}`;
    u.search = u.search && u.search !== '?' ? `${u.search}&${param}` : `?${param}`;
    const headers: Record<string, string> = {};
    if (body) headers['content-type'] = 'application/octet-stream';
    const res = await this.client.request({ method: 'PUT', path: u, scopes: this.scopes, headers, body, expect: [201], signal });
    res.discard();
    const stored = res.header('docker-content-digest');
    if (stored && isDigest(stored) && stored !== desc.digest && splitDigest(stored).algorithm === splitDigest(desc.digest).algorithm) {
      throw new DigestMismatchError(desc.digest, stored, `blob stored by ${this.ref.domain}`);
    }
  }

  /** Best effort: DELETE an upload session. */
  private async cancel(location: URL): Promise<void> {
    try {
      const res = await this.client.request({ method: 'DELETE', path: location, scopes: this.scopes, retry: false });
      res.discard();
    } catch {
      /* the registry expires abandoned sessions anyway */
    }
  }
}

/** Hashes and counts the bytes of an upload; refuses more bytes than the descriptor's size on the way. */
class UploadCheck {
  private readonly digester: Digester;
  private finished = false;
  constructor(private readonly desc: Descriptor) {
    if (!isDigest(desc.digest)) throw new InvalidArgumentError(`invalid digest "${desc.digest}"`);
    this.digester = new Digester(splitDigest(desc.digest).algorithm);
  }
  async *wrap(data: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of data) {
      this.digester.update(chunk);
      if (this.digester.size > this.desc.size) {
        throw new DigestMismatchError(`size ${this.desc.size}`, `more bytes`, `blob ${this.desc.digest}`);
      }
      yield chunk;
    }
    this.finished = true;
    // Fail before the last request completes: a short body must not leave the registry waiting for bytes.
    this.verify();
  }
  private result?: Digest;
  /** Throws unless the whole data was read and matches the descriptor. */
  verify(): void {
    if (!this.finished || this.digester.size !== this.desc.size) {
      throw new DigestMismatchError(`size ${this.desc.size}`, `size ${this.digester.size}`, `blob ${this.desc.digest}`);
    }
    this.result ??= this.digester.digest();
    if (this.result !== this.desc.digest) throw new DigestMismatchError(this.desc.digest, this.result, 'blob');
  }
}

async function collect(data: AsyncIterable<Buffer>, expected: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const c of data) {
    parts.push(c);
    n += c.length;
  }
  return parts.length === 1 && n === expected ? parts[0]! : Buffer.concat(parts, n);
}

async function closeIterable(data: AsyncIterable<Buffer>): Promise<void> {
  try {
    const it = data[Symbol.asyncIterator]();
    await it.return?.();
  } catch {
    /* nothing to release */
  }
}

/** An ImageSource reading `ref`'s repository (the tag/digest to read is passed to getManifest; '' = ref's own). */
export function registrySource(ref: Reference, opts: RegistryTransportOptions = {}): ImageSource {
  return new RegistrySource(ref, clientFor(ref, opts));
}

/** An ImageDestination writing into `ref`'s repository. */
export function registryDestination(ref: Reference, opts: RegistryTransportOptions = {}): ImageDestination {
  return new RegistryDestination(ref, clientFor(ref, opts), opts);
}

/** Every tag of `ref`'s repository, following `Link: <…>; rel="next"` pages. */
export async function listTags(ref: Reference, opts: RegistryTransportOptions & { pageSize?: number } = {}): Promise<string[]> {
  const client = clientFor(ref, opts);
  const scopes = [repositoryScope(ref.path)];
  let next: string | URL | undefined = `/v2/${ref.path}/tags/list${opts.pageSize ? `?n=${opts.pageSize}` : ''}`;
  const tags: string[] = [];
  const seen = new Set<string>();
  for (let page = 0; next !== undefined && page < 10_000; page++) {
    let res: RegistryResponse;
    try {
      res = await client.request({ method: 'GET', path: next, scopes, expect: [200], notFound: 'NAME_UNKNOWN' });
    } catch (e) {
      if (e instanceof RegistryError && (e.code === 'NAME_UNKNOWN' || e.code === 'NOT_FOUND')) {
        throw e.withContext(`repository ${familiarName(ref)} not found`);
      }
      throw e;
    }
    const body = await res.json<{ tags?: string[] | null }>();
    for (const t of body.tags ?? []) {
      if (!seen.has(t)) {
        seen.add(t);
        tags.push(t);
      }
    }
    const link = res.header('link');
    const m = link ? /<([^>]+)>\s*;[^,]*rel="?next"?/.exec(link) : null;
    next = m ? new URL(m[1]!, res.url) : undefined;
  }
  return tags;
}

export { RegistryClient } from './registry-client.js';
export { RegistryError } from '../oci/distribution-errors.js';
