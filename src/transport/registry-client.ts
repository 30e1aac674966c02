// The registry HTTP client (OCI distribution-spec / Docker Registry HTTP API v2), on node:http and node:https:
// one `request` through the scheme choice, auth (registry-auth.ts), retries and redirects.
//
// - Transport: HTTPS (verified) by default. Plain HTTP for loopback registries (localhost, 127.0.0.0/8, ::1).
//   Registries listed as insecure in the registries config (registries-config.ts), or a client made with
//   `tlsVerify: false`, use HTTPS without verification and fall back to plain HTTP when the registry does not
//   speak TLS (podman's behaviour). `tlsVerify: true` forces verified HTTPS even for loopback and listed registries.
// - Redirects (GET/HEAD) are followed here; Authorization is only ever sent to the registry's own host.
// - Retries: 5xx and connection resets/timeouts, 3 tries with exponential backoff, only for requests whose body
//   can be replayed (none or a Buffer).
// - Errors: registry error bodies and statuses become one-line RegistryErrors worded as docker words them
//   (registry-errors.ts).
import http, { type IncomingMessage } from 'node:http';
import type https from 'node:https';
import { createRequire } from 'node:module';
import type { Credentials } from '../auth/config.js';
import { PlyError } from '../errors.js';
import { isInsecureRegistry, isLoopbackRegistry, registryEndpoint, serverDomain } from './registries-config.js';
import { parseWwwAuthenticate, RegistryAuth } from './registry-auth.js';
import { isRetriableStatus, RegistryError } from '../oci/distribution-errors.js';
import { goMethod, isRetriable, networkError } from './registry-errors.js';
import { RegistryResponse, responseError } from './registry-response.js';

export interface RegistryClientOptions {
  /**
   * true: verified HTTPS, always. false: HTTPS without verification, falling back to plain HTTP.
   * undefined (default): plain HTTP for loopback, insecure handling for registries listed in the registries
   * config, verified HTTPS otherwise.
   */
  tlsVerify?: boolean;
  /** Extra CA certificates (PEM) to trust for this registry. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Credentials to use; null forces anonymous access; undefined looks them up with getCredentials. */
  credentials?: Credentials | null;
  userAgent?: string;
  /** Socket idle timeout in ms (default 60 000). */
  timeoutMs?: number;
  /** Tries for replayable requests failing with 5xx or a connection reset (default 3). */
  tries?: number;
  /** First retry delay in ms, doubled per try (default 250). */
  retryDelayMs?: number;
  /** Called for every HTTP response (tests and traces). */
  onResponse?: (info: { method: string; url: string; status: number }) => void;
}

export type RequestBody = Buffer | AsyncIterable<Buffer>;

export interface RegistryRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  /** '/v2/…' (relative to the registry) or an absolute URL (an upload Location). */
  path: string | URL;
  /** Token scopes the request needs, e.g. ['repository:team/app:pull']. */
  scopes: string[];
  headers?: Record<string, string>;
  body?: RequestBody;
  /** Statuses that count as success; any other becomes a thrown RegistryError. */
  expect?: number[];
  /** The code a bare 404 means for this request (e.g. 'MANIFEST_UNKNOWN'). */
  notFound?: string;
  /** Follow redirects (default: for GET and HEAD). */
  followRedirects?: boolean;
  /** Retry 5xx/resets when the body is replayable (default true). */
  retry?: boolean;
  signal?: AbortSignal;
}

const httpAgent = new http.Agent({ keepAlive: true, maxSockets: 32, scheduling: 'lifo' });

const requireCjs = createRequire(import.meta.url);
let httpsState: { lib: typeof https; agent: https.Agent } | undefined;
/** node:https (and TLS with it) loads on the first HTTPS request: loopback registries never need it. */
function httpsLib(): { lib: typeof https; agent: https.Agent } {
  if (!httpsState) {
    const lib = requireCjs('node:https') as typeof https;
    httpsState = { lib, agent: new lib.Agent({ keepAlive: true, maxSockets: 32, scheduling: 'lifo' }) };
  }
  return httpsState;
}

/** Per-process memory of which scheme a fallback-mode registry answered on. */
const settledSchemes = new Map<string, 'http:' | 'https:'>();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

export class RegistryClient {
  readonly domain: string;
  /** 'https://registry-1.docker.io' etc.: where /v2/ lives (scheme may change once in fallback mode). */
  private base: URL;
  private readonly fallback: boolean;
  private readonly verify: boolean;
  private readonly auth: RegistryAuth;
  private readonly tries: number;
  private readonly retryDelay: number;
  private readonly timeoutMs: number;
  private readonly userAgent: string;

  constructor(
    domain: string,
    private readonly opts: RegistryClientOptions = {},
  ) {
    this.domain = domain;
    const endpoint = registryEndpoint(domain);
    let scheme: 'http:' | 'https:';
    if (opts.tlsVerify === true) {
      scheme = 'https:';
      this.fallback = false;
      this.verify = true;
    } else if (opts.tlsVerify === false || (!isLoopbackRegistry(domain) && isInsecureRegistry(domain))) {
      scheme = settledSchemes.get(endpoint) ?? 'https:';
      this.fallback = !settledSchemes.has(endpoint);
      this.verify = false;
    } else if (isLoopbackRegistry(domain)) {
      scheme = 'http:';
      this.fallback = false;
      this.verify = true;
    } else {
      scheme = 'https:';
      this.fallback = false;
      this.verify = true;
    }
    this.base = new URL(`${scheme}//${endpoint}/`);
    this.tries = Math.max(1, opts.tries ?? 3);
    this.retryDelay = opts.retryDelayMs ?? 250;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.userAgent = opts.userAgent ?? 'ply/0.1.0';
    this.auth = new RegistryAuth(domain, opts.credentials, this.userAgent, (method, url, headers, body) =>
      this.plain(method, url, headers, body),
    );
  }

  /** Set when a token server handed out a refresh (identity) token. */
  get refreshToken(): string | undefined {
    return this.auth.refreshToken;
  }

  /** The registry's base URL ('http://127.0.0.1:5000/'). */
  get baseUrl(): URL {
    return new URL(this.base.href);
  }

  /** An absolute URL for a registry path. */
  url(p: string): URL {
    return new URL(p, this.base);
  }

  private fallbackPending = true;

  /** Sends a request through auth, retries and redirects. See RegistryRequest. */
  async request(req: RegistryRequest): Promise<RegistryResponse> {
    const replayable = req.body === undefined || Buffer.isBuffer(req.body);
    const follow = req.followRedirects ?? (req.method === 'GET' || req.method === 'HEAD');
    const retry = req.retry !== false && replayable;
    let url = typeof req.path === 'string' ? this.url(req.path) : new URL(req.path.href);
    let extraScopes: string[] = [];
    let authRetried = false;
    let attempt = 1;
    let redirects = 0;
    for (;;) {
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...lowerKeys(req.headers) };
      const toRegistry = url.host === this.base.host;
      let sentAuth: string | undefined;
      if (toRegistry) {
        sentAuth = await this.auth.authorization([...req.scopes, ...extraScopes]);
        if (sentAuth) headers.authorization = sentAuth;
      }
      let raw: IncomingMessage;
      try {
        raw = await this.send(url, req.method, headers, req.body, req.signal);
      } catch (e) {
        if (
          toRegistry &&
          this.fallback &&
          url.protocol === 'https:' &&
          (this.fallbackPending || this.base.protocol === 'http:') &&
          replayable &&
          !isAbort(e)
        ) {
          // Insecure registry not speaking TLS: plain HTTP from now on (podman's fallback).
          this.settle('http:');
          url = new URL(url.href.replace(/^https:/, 'http:'));
          continue;
        }
        if (retry && attempt < this.tries && isRetriable(e)) {
          await sleep(this.retryDelay * 2 ** (attempt - 1));
          attempt++;
          continue;
        }
        // An error of the body's own (e.g. a digest mismatch found while streaming) stays what it is.
        if (e instanceof PlyError) throw e;
        throw networkError(e, req.method, url);
      }
      if (toRegistry && this.fallbackPending) this.settle(url.protocol as 'http:' | 'https:');
      const status = raw.statusCode ?? 0;
      this.opts.onResponse?.({ method: req.method, url: url.href, status });

      if (status === 401 && toRegistry && !authRetried && replayable) {
        const challenges = parseWwwAuthenticate(raw.headersDistinct['www-authenticate'] ?? undefined);
        const next = await this.auth.learnChallenge(challenges, sentAuth, [...req.scopes, ...extraScopes]);
        if (next) {
          raw.resume();
          authRetried = true;
          extraScopes = next.extraScopes;
          continue;
        }
      }
      if (retry && isRetriableStatus(status) && attempt < this.tries) {
        raw.resume();
        await sleep(this.retryDelay * 2 ** (attempt - 1));
        attempt++;
        continue;
      }
      if (follow && isRedirect(status) && raw.headers.location) {
        raw.resume();
        if (++redirects > 10) throw new RegistryError('TOO_MANY_REDIRECTS', `${goMethod(req.method)} "${url.href}": stopped after 10 redirects`);
        url = new URL(raw.headers.location, url);
        continue;
      }
      if (toRegistry) this.auth.answered(status);
      const res = new RegistryResponse(raw, url);
      if (req.expect && !req.expect.includes(status)) throw await responseError(res, req.notFound);
      return res;
    }
  }

  private settle(scheme: 'http:' | 'https:'): void {
    if (!this.fallbackPending) return;
    this.fallbackPending = false;
    if (!this.fallback) return;
    settledSchemes.set(this.base.host, scheme);
    if (this.base.protocol !== scheme) this.base = new URL(`${scheme}//${this.base.host}/`);
  }

  /** A request without the registry auth flow (token endpoints), with retries and GET redirects. */
  private async plain(method: 'GET' | 'POST', url: URL, headers: Record<string, string>, body?: Buffer): Promise<RegistryResponse> {
    let attempt = 1;
    let redirects = 0;
    const origin = url.host;
    for (;;) {
      const h = { ...headers };
      if (url.host !== origin) delete h.authorization;
      let raw: IncomingMessage;
      try {
        raw = await this.send(url, method, h, body, undefined);
      } catch (e) {
        if (attempt < this.tries && isRetriable(e)) {
          await sleep(this.retryDelay * 2 ** (attempt - 1));
          attempt++;
          continue;
        }
        throw networkError(e, method, url);
      }
      const status = raw.statusCode ?? 0;
      this.opts.onResponse?.({ method, url: url.href, status });
      if (isRetriableStatus(status) && attempt < this.tries) {
        raw.resume();
        await sleep(this.retryDelay * 2 ** (attempt - 1));
        attempt++;
        continue;
      }
      if (method === 'GET' && isRedirect(status) && raw.headers.location && redirects++ < 10) {
        raw.resume();
        url = new URL(raw.headers.location, url);
        continue;
      }
      return new RegistryResponse(raw, url);
    }
  }

  /** One HTTP exchange: resolves with the response head; streams `body` with backpressure. */
  private send(
    url: URL,
    method: string,
    headers: Record<string, string>,
    body: RequestBody | undefined,
    signal: AbortSignal | undefined,
  ): Promise<IncomingMessage> {
    return new Promise<IncomingMessage>((resolve, reject) => {
      const secure = url.protocol === 'https:';
      const options: https.RequestOptions = { method, headers, agent: secure ? httpsLib().agent : httpAgent };
      if (signal) options.signal = signal;
      if (secure) {
        // Verification is relaxed only for the registry itself in insecure mode, never for other hosts.
        const relaxed = !this.verify && url.host === this.base.host;
        options.rejectUnauthorized = !relaxed;
        // A certificate that is not checked needs no CA roots: loading Node's costs ~20 ms per process.
        if (relaxed) options.ca = [];
        else if (this.opts.ca !== undefined) options.ca = this.opts.ca;
      }
      if (body === undefined) {
        if (method === 'PUT' || method === 'POST' || method === 'PATCH') headers['content-length'] ??= '0';
      } else if (Buffer.isBuffer(body)) {
        headers['content-length'] = String(body.length);
      }
      let responded: IncomingMessage | undefined;
      const req = (secure ? httpsLib().lib : http).request(url, options, (res) => {
        responded = res;
        resolve(res);
      });
      req.setTimeout(this.timeoutMs, () => {
        const e = new Error(`timeout after ${this.timeoutMs} ms`) as NodeJS.ErrnoException;
        e.code = 'ETIMEDOUT';
        req.destroy(e);
      });
      req.on('error', (e) => {
        if (!responded) reject(e);
      });
      if (body === undefined) req.end();
      else if (Buffer.isBuffer(body)) req.end(body);
      else {
        pump(req, body, () => responded !== undefined).then(
          (complete) => {
            if (complete) req.end();
            // The registry answered before the body was sent: the connection cannot be reused; drop it once
            // the response has been read.
            else if (responded) responded.once('close', () => req.destroy());
          },
          (e: unknown) => req.destroy(e instanceof Error ? e : new Error(String(e))),
        );
      }
    });
  }

  /** GET /v2/ with the auth flow: throws when the registry refuses (ply login's check). */
  async ping(): Promise<void> {
    const res = await this.request({ method: 'GET', path: '/v2/', scopes: [], expect: [200] });
    res.discard();
  }

  /** @internal used by checkLogin */
  set loginMode(v: boolean) {
    this.auth.wantRefreshToken = v;
  }
}

/** Writes an async iterable into a request with backpressure; false when it stopped because a response came early. */
async function pump(req: http.ClientRequest, body: AsyncIterable<Buffer>, responded: () => boolean): Promise<boolean> {
  for await (const chunk of body) {
    if (req.destroyed) return false;
    if (responded()) return false;
    if (!req.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          req.off('drain', done);
          req.off('close', done);
          resolve();
        };
        req.on('drain', done);
        req.on('close', done);
      });
    }
  }
  return !req.destroyed && !responded();
}

function lowerKeys(h: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h ?? {})) out[k.toLowerCase()] = v;
  return out;
}

function isAbort(e: unknown): boolean {
  return (e as Error)?.name === 'AbortError';
}

/**
 * Checks credentials against a registry (`ply login`): GET /v2/ through the challenge flow with exactly
 * `creds`. Throws a RegistryError (code 'UNAUTHORIZED') when they are refused. Returns the identity token a
 * token server may hand out for offline use.
 */
export async function checkLogin(
  server: string,
  creds: Credentials,
  opts: Omit<RegistryClientOptions, 'credentials'> = {},
): Promise<{ identityToken?: string }> {
  const client = new RegistryClient(serverDomain(server), { ...opts, credentials: creds });
  client.loginMode = true;
  await client.ping();
  return client.refreshToken ? { identityToken: client.refreshToken } : {};
}
