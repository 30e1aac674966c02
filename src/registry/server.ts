// ply's OCI distribution registry (distribution-spec v1.1): an HTTP(S) server over RegistryStorage.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { IngestLockedError, type IngestWriter } from '../content/store.js';
import { Digester, isDigest, splitDigest } from '../digest/digest.js';
import { DigestMismatchError } from '../errors.js';
import { RegistryError } from '../oci/distribution-errors.js';
import { MediaType, type Digest } from '../oci/types.js';
import { Authenticator, formatScope, grants, parseScope, type Access } from './auth.js';
import { parseManifest } from './manifest.js';
import { isRepositoryName, isTag, matchRoute, type Route } from './names.js';
import { manifestBlobUnknown, RegistryStorage } from './storage.js';

export interface RegistryOptions {
  /** Directory holding blobs/, ingest/ and registry.db. */
  root: string;
  /** host:port to listen on (":5000" = every interface; port 0 = any free port). Default 127.0.0.1:5000. */
  addr?: string;
  /** htpasswd file with bcrypt entries: every request then needs credentials (basic, or a token from /token). */
  htpasswd?: string;
  /** The token realm advertised in challenges (default: this server's /token). */
  tokenRealm?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** Refuse every write with 405 UNSUPPORTED. */
  readOnly?: boolean;
  /** Allow DELETE of tags, manifests and blobs (otherwise 405 UNSUPPORTED, as docker's registry). */
  delete?: boolean;
  /** Access log sink (one line per request); false for none. Default: stderr. */
  log?: ((line: string) => void) | false;
  /** On close, how long in-flight requests may run before their connections are cut (default 2000 ms). */
  drainMs?: number;
  /** Upload sessions idle this long are purged, at start and periodically (default one day). */
  uploadTtlMs?: number;
  /** Upload sessions one client (user, or address when anonymous) may have open; more get 429 (default 100). */
  maxUploadsPerClient?: number;
}

export interface RegistryServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** The distribution spec's minimum, and distribution's own limit: larger manifests are refused. */
const MANIFEST_LIMIT = 4 << 20;
/** Upload sessions one client may have open (POSTed, not yet finished or cancelled). */
const MAX_UPLOADS_PER_CLIENT = 100;
/** A client at its cap may take over its own least recently used session once it has been idle this long. */
const UPLOAD_TAKEOVER_MS = 15 * 60_000;
/** Upload sessions idle this long are purged (distribution's default upload purging age). */
const UPLOAD_TTL_MS = 24 * 3600_000;
/** Hash states of upload sessions kept in memory. */
const HASH_STATES = 4096;
const CHUNK_MIN_LENGTH = 1;
const WRITE_BATCH = 1 << 20;
const PID_FILE = 'registry.pid';

type Req = http.IncomingMessage;
type Res = http.ServerResponse;

/** Parses "host:port", ":port", "[v6]:port" or "port". */
export function parseAddr(addr: string): { host: string; port: number } {
  let host = '127.0.0.1';
  let portText = addr;
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  if (m) {
    host = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!);
    portText = m[3]!;
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new Error(`invalid address "${addr}": expected host:port`);
  return { host, port };
}

/**
 * Upload sessions: one request at a time per session. A session holds no descriptor between requests (its data
 * file is opened and locked for each one); only the hash state of its data stays in memory, so the next chunk
 * need not re-read what came before (a bounded number of them: an evicted one is re-hashed from disk).
 */
class Uploads {
  private readonly hashes = new Map<string, Digester>();
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(private readonly storage: RegistryStorage) {}

  async withLock<T>(uuid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(uuid) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const settled = run.catch(() => undefined);
    this.locks.set(uuid, settled);
    try {
      return await run;
    } finally {
      if (this.locks.get(uuid) === settled) this.locks.delete(uuid);
    }
  }

  /** Opens the session's data for one request, hashing with `algorithm` (sha256 until the closing PUT says otherwise). */
  async open(uuid: string, algorithm: 'sha256' | 'sha512' = 'sha256', expected?: Digest): Promise<IngestWriter> {
    const hashed = this.hashes.get(uuid);
    this.hashes.delete(uuid);
    return this.storage.store.ingest(RegistryStorage.ingestKey(uuid), {
      expected: algorithm === 'sha256' ? undefined : expected,
      wait: false,
      hashed,
    });
  }

  /** Ends a request: the data stays (unsynced: the commit fsyncs it), its hash state is kept for the next one. */
  async release(uuid: string, w: IngestWriter): Promise<void> {
    await w.suspend({ sync: false });
    this.hashes.set(uuid, w.hashed);
    if (this.hashes.size > HASH_STATES) this.hashes.delete(this.hashes.keys().next().value!);
  }

  /** Bytes received so far. */
  offset(uuid: string): number {
    const known = this.hashes.get(uuid);
    if (known) return known.size;
    try {
      return fs.statSync(this.storage.ingestDataPath(uuid)).size;
    } catch {
      return 0;
    }
  }

  forget(uuid: string): void {
    this.hashes.delete(uuid);
  }

  /** Ends the session and drops its data (false when another registry process is writing it). */
  remove(uuid: string): Promise<boolean> {
    return this.withLock(uuid, async () => {
      this.hashes.delete(uuid);
      return this.storage.removeUpload(uuid);
    });
  }

  /** Removes sessions idle for `ttlMs` and ingests no session or request owns (crashed writes); returns how many. */
  async purge(ttlMs: number): Promise<number> {
    let n = 0;
    for (const uuid of this.storage.idleUploads(Date.now() - ttlMs)) if (await this.remove(uuid)) n++;
    const live = new Set(this.storage.uploadUuids().map((u) => RegistryStorage.ingestKey(u)));
    n += this.storage.store.removeStaleIngests(ttlMs, { keep: (key) => live.has(key) }).length;
    return n;
  }
}

interface AuthContext {
  can(need: Access): boolean;
  /** Who is asking, for per-client limits: the user, or the address of an anonymous client. */
  client: string;
}

class Registry {
  readonly storage: RegistryStorage;
  readonly uploads: Uploads;
  auth?: Authenticator;
  scheme: 'http' | 'https' = 'http';
  hostPort = '';

  constructor(readonly opts: RegistryOptions) {
    this.storage = new RegistryStorage(opts.root);
    this.uploads = new Uploads(this.storage);
  }

  async handle(req: Req, res: Res): Promise<void> {
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    const url = new URL(req.url ?? '/', 'http://registry.invalid');
    const route = matchRoute(url.pathname);
    if (!route) throw new RegistryError('UNSUPPORTED', `no such endpoint: ${url.pathname}`, { status: 404 });
    const method = req.method ?? 'GET';
    if (route.kind === 'token') return this.token(req, res, url);
    if (route.kind === 'base') {
      allowMethods(method, ['GET', 'HEAD']);
      await this.authorize(req, undefined);
      return send(res, 200, { 'Content-Type': 'application/json' }, '{}');
    }
    if (route.kind === 'catalog') {
      allowMethods(method, ['GET']);
      await this.authorize(req, { type: 'registry', name: 'catalog', actions: ['*'] });
      return this.catalog(res, url);
    }
    if (!isRepositoryName(route.name)) throw new RegistryError('NAME_INVALID', `invalid repository name "${route.name}"`, { detail: { name: route.name } });
    const write = method === 'POST' || method === 'PUT' || method === 'PATCH' || method === 'DELETE';
    if (write && this.opts.readOnly) throw new RegistryError('UNSUPPORTED', 'the registry is in read-only mode');
    const need: Access = {
      type: 'repository',
      name: route.name,
      actions: method === 'DELETE' && route.kind !== 'uploads' ? ['delete'] : write ? ['pull', 'push'] : ['pull'],
    };
    const ctx = await this.authorize(req, need);
    switch (route.kind) {
      case 'tags':
        allowMethods(method, ['GET']);
        return this.tagsList(res, route.name, url);
      case 'referrers':
        allowMethods(method, ['GET']);
        return this.referrers(res, route.name, route.digest, url);
      case 'manifest':
        allowMethods(method, ['GET', 'HEAD', 'PUT', 'DELETE']);
        if (method === 'PUT') return this.putManifest(req, res, route.name, route.reference, url);
        if (method === 'DELETE') return this.deleteManifest(res, route.name, route.reference);
        return this.getManifest(res, route.name, route.reference, method === 'HEAD');
      case 'blob':
        allowMethods(method, ['GET', 'HEAD', 'DELETE']);
        if (method === 'DELETE') return this.deleteBlob(res, route.name, route.digest);
        return this.getBlob(req, res, route.name, route.digest, method === 'HEAD');
      case 'uploads':
        return this.uploadRoute(req, res, method, route, url, ctx);
    }
  }

  // ---- auth ----

  private realm(req: Req): string {
    return this.opts.tokenRealm ?? `${this.scheme}://${req.headers.host ?? this.hostPort}/token`;
  }

  private challenge(req: Req, need: Access | undefined, error?: string): RegistryError {
    let bearer = `Bearer realm="${this.realm(req)}",service="${this.auth!.service}"`;
    if (need) bearer += `,scope="${formatScope(need)}"`;
    if (error) bearer += `,error="${error}"`;
    const detail = need ? [{ Type: need.type, Name: need.name, Action: need.actions.join(',') }] : undefined;
    return new RegistryError('UNAUTHORIZED', error === 'insufficient_scope' ? 'insufficient scope' : 'authentication required', { detail }).withHeaders({
      'WWW-Authenticate': [bearer, 'Basic realm="ply-registry"'],
    });
  }

  /** Checks the request's credentials cover `need` (undefined: any valid credentials, as for GET /v2/). */
  private async authorize(req: Req, need: Access | undefined): Promise<AuthContext> {
    if (!this.auth) return { can: () => true, client: `address ${req.socket.remoteAddress ?? ''}` };
    const header = req.headers.authorization;
    const basic = Authenticator.basicCredentials(header);
    if (basic) {
      if (await this.auth.checkPassword(basic.user, basic.password)) return { can: () => true, client: `user ${basic.user}` };
      const e = this.challenge(req, need);
      throw new RegistryError('UNAUTHORIZED', 'invalid username or password', { detail: e.detail }).withHeaders(e.headers);
    }
    const token = Authenticator.bearerToken(header);
    if (token !== undefined) {
      const claims = this.auth.verifyToken(token);
      if (!claims) throw this.challenge(req, need, 'invalid_token');
      if (need && !grants(claims.access, need)) throw this.challenge(req, need, 'insufficient_scope');
      return { can: (n) => grants(claims.access, n), client: `user ${claims.sub}` };
    }
    throw this.challenge(req, need);
  }

  private async token(req: Req, res: Res, url: URL): Promise<void> {
    const method = req.method ?? 'GET';
    allowMethods(method, ['GET', 'POST']);
    if (!this.auth) throw new RegistryError('UNSUPPORTED', 'this registry does not use authentication', { status: 404 });
    let user: string | undefined;
    let password: string | undefined;
    let scopes = url.searchParams.getAll('scope');
    if (method === 'POST') {
      const form = new URLSearchParams((await readBody(req, 64 << 10)).toString('utf8'));
      if (form.get('grant_type') !== 'password') {
        return send(res, 400, { 'Content-Type': 'application/json' }, JSON.stringify({ error: 'unsupported_grant_type' }));
      }
      user = form.get('username') ?? undefined;
      password = form.get('password') ?? undefined;
      scopes = form.getAll('scope');
    } else {
      const basic = Authenticator.basicCredentials(req.headers.authorization);
      user = basic?.user;
      password = basic?.password;
    }
    if (user === undefined || password === undefined || !(await this.auth.checkPassword(user, password))) {
      throw new RegistryError('UNAUTHORIZED', user === undefined ? 'authentication required' : 'invalid username or password').withHeaders({
        'WWW-Authenticate': 'Basic realm="ply-registry"',
      });
    }
    const requested = scopes
      .flatMap((s) => s.split(' '))
      .map(parseScope)
      .filter((a): a is Access => a !== undefined && (a.type !== 'repository' || isRepositoryName(a.name)));
    const issued = this.auth.issueToken(user, requested);
    send(res, 200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }, JSON.stringify(issued));
  }

  // ---- discovery ----

  private catalog(res: Res, url: URL): void {
    const { n, last } = paging(url);
    const { names, more } = this.storage.catalog(n, last);
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (more) headers.Link = `</v2/_catalog?n=${n}&last=${encodeURIComponent(names[names.length - 1]!)}>; rel="next"`;
    send(res, 200, headers, JSON.stringify({ repositories: names }));
  }

  private tagsList(res: Res, name: string, url: URL): void {
    const repo = this.storage.repoId(name);
    if (repo === undefined) throw new RegistryError('NAME_UNKNOWN', `repository ${name} not known to registry`, { detail: { name } });
    const { n, last } = paging(url);
    const { tags, more } = this.storage.listTags(repo, n, last);
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (more) headers.Link = `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(tags[tags.length - 1]!)}>; rel="next"`;
    send(res, 200, headers, JSON.stringify({ name, tags }));
  }

  private referrers(res: Res, name: string, digest: string, url: URL): void {
    if (!isDigest(digest)) throw new RegistryError('DIGEST_INVALID', `invalid digest "${digest}"`);
    const repo = this.storage.repoId(name);
    let manifests = repo === undefined ? [] : this.storage.referrers(repo, digest);
    const headers: Record<string, string> = { 'Content-Type': MediaType.OciIndex };
    const filter = url.searchParams.getAll('artifactType').filter((t) => t !== '');
    if (filter.length > 0) {
      manifests = manifests.filter((m) => m.artifactType !== undefined && filter.includes(m.artifactType));
      headers['OCI-Filters-Applied'] = 'artifactType';
    }
    send(res, 200, headers, JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }));
  }

  // ---- manifests ----

  private resolve(name: string, reference: string): { repo: number; digest: string } {
    const repo = this.storage.repoId(name);
    if (repo === undefined) throw new RegistryError('NAME_UNKNOWN', `repository ${name} not known to registry`, { detail: { name } });
    if (isDigest(reference)) return { repo, digest: reference };
    if (reference.includes(':')) throw new RegistryError('DIGEST_INVALID', `invalid digest "${reference}"`);
    const digest = isTag(reference) ? this.storage.resolveTag(repo, reference) : undefined;
    if (!digest) throw new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${name}:${reference}`, { detail: { tag: reference } });
    return { repo, digest };
  }

  private async getManifest(res: Res, name: string, reference: string, head: boolean): Promise<void> {
    const { repo, digest } = this.resolve(name, reference);
    const row = this.storage.manifest(repo, digest);
    if (!row) throw new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${name}@${digest}`, { detail: { digest } });
    let body: Buffer;
    try {
      body = await fsp.readFile(this.storage.store.path(digest as Digest));
    } catch {
      throw new RegistryError('MANIFEST_UNKNOWN', `manifest ${digest} has no data`, { detail: { digest } });
    }
    const headers: Record<string, string> = {
      'Content-Type': row.media_type,
      'Content-Length': String(body.length),
      'Docker-Content-Digest': digest,
      ETag: `"${digest}"`,
    };
    send(res, 200, headers, head ? undefined : body);
  }

  private async putManifest(req: Req, res: Res, name: string, reference: string, url: URL): Promise<void> {
    const tags = url.searchParams.getAll('tag');
    let algorithm: 'sha256' | 'sha512' = 'sha256';
    if (isDigest(reference)) algorithm = splitDigest(reference).algorithm;
    else if (reference.includes(':')) throw new RegistryError('DIGEST_INVALID', `invalid digest "${reference}"`);
    else if (!isTag(reference)) throw new RegistryError('MANIFEST_INVALID', `invalid tag "${reference}"`, { detail: { tag: reference } });
    else tags.unshift(reference);
    for (const t of tags) if (!isTag(t)) throw new RegistryError('MANIFEST_INVALID', `invalid tag "${t}"`, { detail: { tag: t } });
    const body = await readBody(req, MANIFEST_LIMIT, () =>
      new RegistryError('MANIFEST_INVALID', `manifest larger than ${MANIFEST_LIMIT} bytes`, { detail: { limit: MANIFEST_LIMIT } }),
    );
    const d = new Digester(algorithm);
    d.update(body);
    const digest = d.digest();
    if (isDigest(reference) && reference !== digest) {
      throw new RegistryError('DIGEST_INVALID', `manifest digest ${digest} does not match ${reference}`, { detail: { expected: reference, actual: digest } });
    }
    const parsed = parseManifest(body, req.headers['content-type']);
    // Check before writing (the transaction checks again), so a refused manifest leaves no blob behind.
    const missing = this.storage.missingRefs(this.storage.repoId(name), parsed);
    if (missing.length > 0) throw manifestBlobUnknown(missing);
    const w = await this.storage.store.ingest(`manifest-${randomUUID()}`, { expected: digest, restart: true });
    try {
      await w.write(body);
      await w.commit({ expected: digest });
    } catch (e) {
      await w.abort();
      throw e;
    }
    const uniqueTags = [...new Set(tags)];
    this.storage.putManifest(name, digest, body.length, parsed, uniqueTags);
    const headers: Record<string, string | string[]> = {
      Location: `/v2/${name}/manifests/${digest}`,
      'Docker-Content-Digest': digest,
      'Content-Length': '0',
    };
    if (parsed.subject) headers['OCI-Subject'] = parsed.subject;
    if (uniqueTags.length > 0) headers['OCI-Tag'] = uniqueTags;
    send(res, 201, headers);
  }

  private deleteManifest(res: Res, name: string, reference: string): void {
    if (!this.opts.delete) throw new RegistryError('UNSUPPORTED', 'deletes are disabled (start the registry with --delete)');
    const repo = this.storage.repoId(name);
    if (repo === undefined) throw new RegistryError('NAME_UNKNOWN', `repository ${name} not known to registry`, { detail: { name } });
    if (isDigest(reference)) {
      if (!this.storage.deleteManifest(repo, reference)) throw new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${name}@${reference}`, { detail: { digest: reference } });
    } else {
      if (reference.includes(':')) throw new RegistryError('DIGEST_INVALID', `invalid digest "${reference}"`);
      if (!isTag(reference) || !this.storage.deleteTag(repo, reference)) {
        throw new RegistryError('MANIFEST_UNKNOWN', `manifest unknown: ${name}:${reference}`, { detail: { tag: reference } });
      }
    }
    send(res, 202, { 'Content-Length': '0' });
  }

  // ---- blobs ----

  private blobRepo(name: string, digest: string): { repo: number; digest: Digest } {
    if (!isDigest(digest)) throw new RegistryError('DIGEST_INVALID', `invalid digest "${digest}"`);
    const repo = this.storage.repoId(name);
    if (repo === undefined) throw new RegistryError('NAME_UNKNOWN', `repository ${name} not known to registry`, { detail: { name } });
    return { repo, digest };
  }

  private async getBlob(req: Req, res: Res, name: string, digestText: string, head: boolean): Promise<void> {
    const { repo, digest } = this.blobRepo(name, digestText);
    if (this.storage.blobSize(repo, digest) === undefined) throw new RegistryError('BLOB_UNKNOWN', `blob unknown: ${digest}`, { detail: { digest } });
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(this.storage.store.path(digest), 'r');
    } catch {
      throw new RegistryError('BLOB_UNKNOWN', `blob unknown: ${digest}`, { detail: { digest } });
    }
    try {
      const size = (await fh.stat()).size;
      const headers: Record<string, string> = {
        'Content-Type': 'application/octet-stream',
        'Docker-Content-Digest': digest,
        'Accept-Ranges': 'bytes',
        ETag: `"${digest}"`,
        'Cache-Control': 'max-age=31536000',
      };
      const range = parseRange(req.headers.range, size);
      if (range === 'unsatisfiable') {
        await fh.close();
        return send(res, 416, { 'Content-Range': `bytes */${size}`, 'Content-Length': '0' });
      }
      let status = 200;
      let start = 0;
      let end = size - 1;
      if (range) {
        status = 206;
        ({ start, end } = range);
        headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
      }
      headers['Content-Length'] = String(end - start + 1);
      res.writeHead(status, headers);
      if (head || end < start) {
        await fh.close();
        res.end();
        return;
      }
      await pipeline(fh.createReadStream({ start, end, highWaterMark: 1 << 20 }), res);
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e;
    }
  }

  private deleteBlob(res: Res, name: string, digestText: string): void {
    const { repo, digest } = this.blobRepo(name, digestText);
    if (!this.opts.delete) throw new RegistryError('UNSUPPORTED', 'deletes are disabled (start the registry with --delete)');
    if (!this.storage.unlinkBlob(repo, digest)) throw new RegistryError('BLOB_UNKNOWN', `blob unknown: ${digest}`, { detail: { digest } });
    send(res, 202, { 'Content-Length': '0' });
  }

  // ---- uploads ----

  private async uploadRoute(req: Req, res: Res, method: string, route: Extract<Route, { kind: 'uploads' }>, url: URL, ctx: AuthContext): Promise<void> {
    const { name, uuid } = route;
    if (uuid === '') {
      allowMethods(method, ['POST']);
      return this.startUpload(req, res, name, url, ctx);
    }
    allowMethods(method, ['GET', 'PATCH', 'PUT', 'DELETE']);
    const session = this.storage.upload(uuid);
    const repo = this.storage.repoId(name);
    if (!session || repo === undefined || session.repo !== repo) {
      throw new RegistryError('BLOB_UPLOAD_UNKNOWN', `upload ${uuid} unknown to registry`, { detail: { uuid } });
    }
    if (method === 'GET') return this.uploadStatus(res, name, uuid, 204);
    if (method === 'DELETE') {
      if (!(await this.uploads.remove(uuid))) throw new IngestLockedError(RegistryStorage.ingestKey(uuid));
      return send(res, 204, {});
    }
    if (method === 'PATCH') return this.uploads.withLock(uuid, () => this.patchUpload(req, res, name, uuid));
    return this.uploads.withLock(uuid, () => this.finishUpload(req, res, name, uuid, url));
  }

  private uploadHeaders(name: string, uuid: string): Record<string, string> {
    const offset = this.uploads.offset(uuid);
    return {
      Location: `/v2/${name}/blobs/uploads/${uuid}`,
      Range: `0-${Math.max(offset - 1, 0)}`,
      'Docker-Upload-UUID': uuid,
    };
  }

  private uploadStatus(res: Res, name: string, uuid: string, status: number): void {
    send(res, status, { ...this.uploadHeaders(name, uuid), 'Content-Length': '0' });
  }

  private async startUpload(req: Req, res: Res, name: string, url: URL, ctx: AuthContext): Promise<void> {
    const mount = url.searchParams.get('mount');
    if (mount !== null) {
      if (!isDigest(mount)) throw new RegistryError('DIGEST_INVALID', `invalid digest "${mount}"`);
      const from = url.searchParams.get('from');
      if (this.mount(name, mount, from, ctx)) {
        return send(res, 201, { Location: `/v2/${name}/blobs/${mount}`, 'Docker-Content-Digest': mount, 'Content-Length': '0' });
      }
    }
    const digestParam = url.searchParams.get('digest');
    if (digestParam !== null && mount === null) {
      if (!isDigest(digestParam)) throw new RegistryError('DIGEST_INVALID', `invalid digest "${digestParam}"`);
      const w = await this.storage.store.ingest(`post-${randomUUID()}`, { expected: digestParam, restart: true });
      let size: number;
      try {
        await copyBody(req, w);
        ({ size } = await w.commit({ expected: digestParam }));
      } catch (e) {
        await w.abort();
        throw e;
      }
      this.storage.linkBlob(this.storage.ensureRepo(name), digestParam, size);
      return send(res, 201, { Location: `/v2/${name}/blobs/${digestParam}`, 'Docker-Content-Digest': digestParam, 'Content-Length': '0' });
    }
    await this.capUploads(ctx.client);
    const repo = this.storage.ensureRepo(name);
    const uuid = randomUUID();
    this.storage.createUpload(repo, uuid, ctx.client);
    // A body on a plain POST (not allowed by the spec, but harmless) starts the upload.
    const length = Number(req.headers['content-length'] ?? 0);
    if (length > 0 || req.headers['transfer-encoding']) await this.uploads.withLock(uuid, () => this.appendBody(req, uuid));
    send(res, 202, { ...this.uploadHeaders(name, uuid), 'OCI-Chunk-Min-Length': String(CHUNK_MIN_LENGTH), 'Content-Length': '0' });
  }

  /**
   * One client may keep only so many uploads open: past the cap it gets 429 TOOMANYREQUESTS, unless its least
   * recently used session has been idle long enough to be dropped for the new one. Other clients never notice.
   */
  private async capUploads(client: string): Promise<void> {
    const max = this.opts.maxUploadsPerClient ?? MAX_UPLOADS_PER_CLIENT;
    const open = this.storage.uploadsOf(client);
    if (open.length < max) return;
    const oldest = open[0]!;
    if (Date.now() - oldest.updated >= UPLOAD_TAKEOVER_MS && open.length === max && (await this.uploads.remove(oldest.uuid))) return;
    throw new RegistryError('TOOMANYREQUESTS', `too many uploads in progress for this client (at most ${max}): finish or cancel some first`, {
      detail: { limit: max },
    }).withHeaders({ 'Retry-After': '60' });
  }

  /** Links `digest` into `name` from `from` (or, without `from`, any repository the caller may pull from). */
  private mount(name: string, digest: Digest, from: string | null, ctx: AuthContext): boolean {
    const sources = from !== null ? (isRepositoryName(from) ? [from] : []) : this.storage.reposWithBlob(digest);
    for (const source of sources) {
      if (!ctx.can({ type: 'repository', name: source, actions: ['pull'] })) continue;
      const sourceRepo = this.storage.repoId(source);
      if (sourceRepo === undefined) continue;
      const size = this.storage.blobSize(sourceRepo, digest);
      if (size === undefined) continue;
      this.storage.linkBlob(this.storage.ensureRepo(name), digest, size);
      return true;
    }
    return false;
  }

  /** Checks a Content-Range against the session's offset: 416 (session kept) when it does not continue it. */
  private checkRange(req: Req, name: string, uuid: string): void {
    const header = req.headers['content-range'];
    if (header === undefined) return;
    const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(header.trim());
    const offset = this.uploads.offset(uuid);
    const fail = (message: string) =>
      new RegistryError('BLOB_UPLOAD_INVALID', message, { detail: { offset }, status: 416 }).withHeaders(this.uploadHeaders(name, uuid));
    if (!m) throw fail(`invalid Content-Range "${header}"`);
    const start = Number(m[1]);
    const end = Number(m[2]);
    if (start !== offset) throw fail(`chunk starts at ${start}, the upload is at ${offset}`);
    if (end < start) throw fail(`invalid Content-Range "${header}"`);
    const length = req.headers['content-length'];
    if (length !== undefined && Number(length) !== end - start + 1) {
      throw new RegistryError('BLOB_UPLOAD_INVALID', `Content-Range ${header} does not match Content-Length ${length}`);
    }
  }

  /** Appends the request body to the session; what arrived before a disconnect stays (resumable). */
  private async appendBody(req: Req, uuid: string): Promise<void> {
    const w = await this.uploads.open(uuid);
    try {
      await copyBody(req, w);
    } finally {
      this.storage.updateUpload(uuid, w.offset);
      await this.uploads.release(uuid, w);
    }
  }

  private async patchUpload(req: Req, res: Res, name: string, uuid: string): Promise<void> {
    this.checkRange(req, name, uuid);
    await this.appendBody(req, uuid);
    this.uploadStatus(res, name, uuid, 202);
  }

  private async finishUpload(req: Req, res: Res, name: string, uuid: string, url: URL): Promise<void> {
    const digestParam = url.searchParams.get('digest');
    if (digestParam === null || !isDigest(digestParam)) {
      throw new RegistryError('DIGEST_INVALID', digestParam === null ? 'digest parameter missing' : `invalid digest "${digestParam}"`);
    }
    this.checkRange(req, name, uuid);
    const algorithm = splitDigest(digestParam).algorithm;
    const w = await this.uploads.open(uuid, algorithm, digestParam);
    try {
      await copyBody(req, w);
    } catch (e) {
      this.storage.updateUpload(uuid, w.offset);
      await this.uploads.release(uuid, w);
      throw e;
    }
    this.uploads.forget(uuid);
    let size: number;
    try {
      ({ size } = await w.commit({ expected: digestParam }));
    } catch (e) {
      // commit removed the data: the session is over either way.
      this.storage.deleteUpload(uuid);
      throw e;
    }
    const repo = this.storage.ensureRepo(name);
    this.storage.linkBlob(repo, digestParam, size);
    this.storage.deleteUpload(uuid);
    send(res, 201, { Location: `/v2/${name}/blobs/${digestParam}`, 'Docker-Content-Digest': digestParam, 'Content-Length': '0' });
  }
}

/** Streams a request body into an ingest in ~1 MiB writes; what arrived before a failure is written too. */
async function copyBody(req: Req, w: IngestWriter): Promise<void> {
  let pending: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      pending.push(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (size >= WRITE_BATCH) {
        const data = pending.length === 1 ? pending[0]! : Buffer.concat(pending, size);
        pending = [];
        size = 0;
        await w.write(data);
      }
    }
  } finally {
    if (size > 0) await w.write(pending.length === 1 ? pending[0]! : Buffer.concat(pending, size));
  }
}

function allowMethods(method: string, allowed: string[]): void {
  if (!allowed.includes(method)) {
    throw new RegistryError('UNSUPPORTED', `method ${method} not allowed here`).withHeaders({ Allow: allowed.join(', ') });
  }
}

function paging(url: URL): { n: number | undefined; last: string | undefined } {
  const nText = url.searchParams.get('n');
  let n: number | undefined;
  if (nText !== null && nText !== '') {
    if (!/^\d+$/.test(nText)) throw new RegistryError('UNSUPPORTED', `invalid page size n=${nText}`, { status: 400 });
    n = Number(nText);
  }
  const last = url.searchParams.get('last') ?? undefined;
  return { n, last: last === '' ? undefined : last };
}

/** A single-range `Range: bytes=…` header; undefined = whole blob (absent, malformed or multi-range). */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(size - suffix, 0), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || (m[2] !== '' && Number(m[2]) < start)) return 'unsatisfiable';
  return { start, end };
}

/** Bodies this much over a limit are still read (and dropped) so the client sees the error, not a reset. */
const DRAIN_LIMIT = 64 << 20;

async function readBody(req: Req, limit: number, tooLarge?: () => RegistryError): Promise<Buffer> {
  const refuse = () => tooLarge?.() ?? new RegistryError('SIZE_INVALID', `body larger than ${limit} bytes`, { status: 413 });
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit + DRAIN_LIMIT) throw refuse();
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    total += (chunk as Buffer).length;
    if (total > limit + DRAIN_LIMIT) throw refuse();
    if (total <= limit) chunks.push(chunk as Buffer);
  }
  if (total > limit) throw refuse();
  return Buffer.concat(chunks);
}

function send(res: Res, status: number, headers: Record<string, string | string[]>, body?: string | Buffer): void {
  if (body !== undefined && headers['Content-Length'] === undefined) headers['Content-Length'] = String(Buffer.byteLength(body));
  res.writeHead(status, headers);
  res.end(body);
}

function sendError(res: Res, e: RegistryError, head: boolean): void {
  const body = e.body();
  const headers: Record<string, string | string[]> = { ...e.headers, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) };
  res.writeHead(e.status ?? 500, headers);
  res.end(head ? undefined : body);
}

/** Maps anything thrown while handling a request to a registry error. */
function toRegistryError(e: unknown): RegistryError {
  if (e instanceof RegistryError) return e;
  if (e instanceof DigestMismatchError) return new RegistryError('DIGEST_INVALID', e.message, { detail: { expected: e.expected, actual: e.actual } });
  if (e instanceof IngestLockedError) return new RegistryError('BLOB_UPLOAD_INVALID', 'the upload is in use by another registry process', { status: 409 });
  return new RegistryError('UNKNOWN', (e as Error)?.message ?? String(e));
}

export async function startRegistry(opts: RegistryOptions): Promise<RegistryServer> {
  const { host, port } = parseAddr(opts.addr ?? '127.0.0.1:5000');
  const log = opts.log === false ? undefined : (opts.log ?? ((line: string) => process.stderr.write(`${line}\n`)));
  const registry = new Registry(opts);
  const inflight = new Set<Promise<void>>();

  const onRequest = (req: Req, res: Res): void => {
    const started = process.hrtime.bigint();
    let bytes = 0;
    const write = res.write.bind(res) as (...args: unknown[]) => boolean;
    const end = res.end.bind(res) as (...args: unknown[]) => Res;
    const count = (chunk: unknown) => {
      if (typeof chunk === 'string') bytes += Buffer.byteLength(chunk);
      else if (chunk instanceof Uint8Array) bytes += chunk.length;
    };
    (res as { write: unknown }).write = (chunk: unknown, ...rest: unknown[]) => {
      if (req.method !== 'HEAD') count(chunk);
      return write(chunk, ...rest);
    };
    (res as { end: unknown }).end = (chunk?: unknown, ...rest: unknown[]) => {
      if (req.method !== 'HEAD' && typeof chunk !== 'function') count(chunk);
      return end(chunk, ...rest);
    };
    let logged = false;
    const done = () => {
      if (logged) return;
      logged = true;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      log?.(`${req.method} ${req.url} ${res.headersSent ? res.statusCode : 0} ${bytes} ${ms.toFixed(1)}ms`);
    };
    res.on('finish', done);
    res.on('close', done);
    const p = registry
      .handle(req, res)
      .catch((e: unknown) => {
        const err = toRegistryError(e);
        if ((err.status ?? 500) >= 500 && !res.headersSent) log?.(`error: ${req.method} ${req.url}: ${(e as Error)?.stack ?? String(e)}`);
        if (res.headersSent || res.destroyed) {
          res.destroy();
          return;
        }
        sendError(res, err, req.method === 'HEAD');
      })
      .catch(() => {
        res.destroy();
      })
      .finally(() => inflight.delete(p));
    inflight.add(p);
  };

  const serverOpts = { requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 30_000 };
  let server: http.Server;
  if (opts.tlsCert || opts.tlsKey) {
    if (!opts.tlsCert || !opts.tlsKey) throw new Error('TLS needs both --tls-cert and --tls-key');
    server = https.createServer({ ...serverOpts, cert: fs.readFileSync(opts.tlsCert), key: fs.readFileSync(opts.tlsKey) }, onRequest);
    registry.scheme = 'https';
  } else {
    server = http.createServer(serverOpts, onRequest);
  }
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    registry.storage.close();
    throw e;
  }
  const actualPort = (server.address() as AddressInfo).port;
  const shownHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  const hostPort = `${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${actualPort}`;
  registry.hostPort = hostPort;
  if (opts.htpasswd) {
    try {
      registry.auth = Authenticator.fromFile(opts.htpasswd, hostPort, (msg) => log?.(`warning: ${msg}`));
    } catch (e) {
      server.close();
      registry.storage.close();
      throw e;
    }
  }
  const pidFile = path.join(opts.root, PID_FILE);
  fs.writeFileSync(pidFile, String(process.pid));
  // Abandoned uploads are purged at start and then periodically (as distribution's upload purging).
  const ttl = opts.uploadTtlMs ?? UPLOAD_TTL_MS;
  const purge = () =>
    void registry.uploads.purge(ttl).then(
      (n) => n > 0 && log?.(`purged ${n} upload(s) idle for more than ${Math.round(ttl / 1000)} s`),
      (e: unknown) => log?.(`warning: purging uploads: ${(e as Error).message}`),
    );
  purge();
  const sweeper = setInterval(purge, Math.min(Math.max(ttl / 2, 1000), 3600_000));
  sweeper.unref();

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      clearInterval(sweeper);
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const drain = opts.drainMs ?? 2000;
      if (inflight.size > 0) {
        await Promise.race([Promise.allSettled([...inflight]), new Promise((r) => setTimeout(r, drain).unref())]);
      }
      server.closeAllConnections();
      await Promise.race([Promise.allSettled([...inflight]), new Promise((r) => setTimeout(r, 1000).unref())]);
      await stopped;
      registry.storage.close();
      try {
        if (fs.readFileSync(pidFile, 'utf8') === String(process.pid)) fs.rmSync(pidFile, { force: true });
      } catch {
        // already gone
      }
    })();
    return closing;
  };

  return { url: `${registry.scheme}://${hostPort}`, port: actualPort, close };
}
