// HTTP client for registries (OCI distribution-spec / Docker Registry HTTP API v2), on node:http and node:https.
//
// - Transport: HTTPS (verified) by default. Plain HTTP for loopback registries (localhost, 127.0.0.0/8, ::1).
//   Registries listed as insecure in the registries config, or a client made with `tlsVerify: false`, use HTTPS
//   without verification and fall back to plain HTTP when the registry does not speak TLS (podman's behaviour).
//   `tlsVerify: true` forces verified HTTPS even for loopback and listed registries.
//   The registries config is `$PLY_REGISTRIES_CONFIG`, else `$XDG_CONFIG_HOME/ply/registries.json`
//   (default ~/.config/ply/registries.json): `{"insecure": ["host:port", "host", "10.0.0.0/8", …]}`.
// - Auth: anonymous, Basic, and the bearer-token flow. The first 401 teaches the client the registry's challenge
//   (`WWW-Authenticate: Bearer realm=…,service=…,scope=…` or `Basic realm=…`); afterwards every request carries
//   the right Authorization up front. Tokens are fetched from the realm with `service` and the request's scopes
//   (GET with Basic credentials; the OAuth2 POST form with an identity token), cached per scope set, refreshed
//   when they expire (`expires_in`, default 60 s) or when the registry answers 401 to them.
// - Redirects (GET/HEAD) are followed here; Authorization is only ever sent to the registry's own host.
// - Retries: 5xx and connection resets/timeouts, 3 tries with exponential backoff, only for requests whose body
//   can be replayed (none or a Buffer).
// - Errors: registry error bodies and statuses become one-line RegistryErrors worded as docker words them.
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type https from 'node:https';
import { createRequire } from 'node:module';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { getCredentials, type Credentials } from '../auth/config.js';
import { InvalidArgumentError, PlyError } from '../errors.js';

// ---- errors -------------------------------------------------------------------------------------------------

const NETWORK_RETRIABLE = new Set(['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED', 'EAI_AGAIN', 'ESOCKETTIMEDOUT']);
const STATUS_RETRIABLE = new Set([500, 502, 503, 504]);

/** A registry said no (or could not be reached). `code` is the distribution error code, e.g. 'MANIFEST_UNKNOWN'. */
export class RegistryError extends PlyError {
  override exitCode = 1;
  /** The registry's own words ('manifest unknown: manifest unknown'), without any context prefix. */
  readonly detail: string;
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
    options?: { cause?: unknown; detail?: string },
  ) {
    super(message, options);
    this.detail = options?.detail ?? message;
  }

  /** True for failures worth retrying: 5xx and connection resets/timeouts. */
  get retriable(): boolean {
    if (this.status !== undefined) return STATUS_RETRIABLE.has(this.status);
    const c = (this.cause as NodeJS.ErrnoException | undefined)?.code;
    return c !== undefined && NETWORK_RETRIABLE.has(c);
  }

  /** The same error with `prefix: ` in front of its message (code, status and detail kept). */
  withContext(prefix: string): RegistryError {
    return new RegistryError(this.code, `${prefix}: ${this.detail}`, this.status, { cause: this.cause, detail: this.detail });
  }
}

const DEFAULT_MESSAGES: Record<number, [string, string]> = {
  401: ['UNAUTHORIZED', 'authentication required'],
  403: ['DENIED', 'requested access to the resource is denied'],
  404: ['NOT_FOUND', 'not found'],
  405: ['UNSUPPORTED', 'The operation is unsupported.'],
  429: ['TOOMANYREQUESTS', 'too many requests'],
};

/** 'MANIFEST_UNKNOWN' -> 'manifest unknown' (errcode.ErrorCode.Error in distribution). */
function codeWords(code: string): string {
  return code.toLowerCase().replace(/_/g, ' ');
}

/**
 * The RegistryError for a response: from its `{"errors":[{code,message}]}` body when there is one, else from
 * the status. `notFound` names the code a bare 404 means here (e.g. 'MANIFEST_UNKNOWN', 'BLOB_UNKNOWN').
 */
export function registryErrorFrom(
  status: number,
  statusText: string | undefined,
  body: Buffer | string | undefined,
  notFound?: string,
): RegistryError {
  const text = body === undefined ? '' : body.toString();
  if (text.trim() !== '') {
    try {
      const parsed = JSON.parse(text) as { errors?: unknown; details?: unknown; error?: unknown };
      if (Array.isArray(parsed.errors) && parsed.errors.length > 0) {
        const errs = parsed.errors.filter((e): e is { code?: unknown; message?: unknown } => !!e && typeof e === 'object');
        const parts = errs.map((e) => {
          const code = typeof e.code === 'string' && e.code !== '' ? e.code : 'UNKNOWN';
          const msg = typeof e.message === 'string' ? e.message.replace(/\s*\n\s*/g, ' ').trim() : '';
          return msg === '' ? codeWords(code) : `${codeWords(code)}: ${msg}`;
        });
        const first = errs[0];
        const code = first && typeof first.code === 'string' && first.code !== '' ? first.code.toUpperCase() : 'UNKNOWN';
        return new RegistryError(code, parts.join('; '), status);
      }
      // Token servers: {"details": "incorrect username or password"} (Docker Hub), {"error": "..."} (OAuth2).
      const d = typeof parsed.details === 'string' ? parsed.details : typeof parsed.error === 'string' ? parsed.error : undefined;
      if (d && DEFAULT_MESSAGES[status]) {
        const [code] = DEFAULT_MESSAGES[status]!;
        return new RegistryError(code, `${codeWords(code)}: ${d}`, status);
      }
    } catch {
      /* not JSON: fall through to the status */
    }
  }
  if (status === 404 && notFound) return new RegistryError(notFound, `${codeWords(notFound)}: ${codeWords(notFound)}`, status);
  const known = DEFAULT_MESSAGES[status];
  if (known) return new RegistryError(known[0], `${codeWords(known[0])}: ${known[1]}`, status);
  return new RegistryError(
    'UNKNOWN',
    `received unexpected HTTP status: ${status}${statusText ? ' ' + statusText : ''}`,
    status,
  );
}

const TLS_VERIFY_CODES: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'x509: certificate signed by unknown authority',
  SELF_SIGNED_CERT_IN_CHAIN: 'x509: certificate signed by unknown authority',
  UNABLE_TO_GET_ISSUER_CERT: 'x509: certificate signed by unknown authority',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'x509: certificate signed by unknown authority',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'x509: certificate signed by unknown authority',
  CERT_UNTRUSTED: 'x509: certificate signed by unknown authority',
  CERT_HAS_EXPIRED: 'x509: certificate has expired or is not yet valid',
  CERT_NOT_YET_VALID: 'x509: certificate has expired or is not yet valid',
  ERR_TLS_CERT_ALTNAME_INVALID: '',
};

function goMethod(method: string): string {
  return method.charAt(0) + method.slice(1).toLowerCase();
}

/** A connection-level failure as one line, docker-style: `Get "https://host/v2/": <what happened>`. */
export function networkError(e: unknown, method: string, url: URL): RegistryError {
  if (e instanceof RegistryError) return e;
  const err = e as NodeJS.ErrnoException & { reason?: string };
  const code = err?.code ?? '';
  const where = `${goMethod(method)} "${url.href}"`;
  if (code in TLS_VERIFY_CODES) {
    const reason = TLS_VERIFY_CODES[code] || `x509: ${err.reason ?? err.message}`;
    return new RegistryError('TLS', `${where}: tls: failed to verify certificate: ${reason}`, undefined, { cause: e });
  }
  const hostPort = url.port ? url.host : `${url.hostname}:${url.protocol === 'https:' ? 443 : 80}`;
  let what: string;
  if (code === 'EPROTO' || code.startsWith('ERR_SSL_')) {
    what = /wrong version number|packet length too long|http request/i.test(err.message)
      ? 'http: server gave HTTP response to HTTPS client'
      : `tls: ${err.message}`;
  } else if (code === 'ECONNREFUSED') what = `dial tcp ${hostPort}: connect: connection refused`;
  else if (code === 'ENOTFOUND') what = `dial tcp: lookup ${url.hostname}: no such host`;
  else if (code === 'EAI_AGAIN') what = `dial tcp: lookup ${url.hostname}: temporary failure in name resolution`;
  else if (code === 'ETIMEDOUT') what = `net/http: timeout talking to ${hostPort}`;
  else if (code === 'ECONNRESET') what = `read tcp ${hostPort}: connection reset by peer`;
  else if (err?.name === 'AbortError') what = 'context canceled';
  else what = err?.message ?? String(e);
  return new RegistryError(code === '' ? 'NETWORK' : code === 'EPROTO' ? 'TLS' : 'NETWORK', `${where}: ${what}`, undefined, {
    cause: e,
  });
}

// ---- registries config and transport selection ----------------------------------------------------------------

export interface RegistriesConfig {
  insecure?: string[];
}

/** Path of the registries config: $PLY_REGISTRIES_CONFIG, else $XDG_CONFIG_HOME/ply/registries.json. */
export function registriesConfigPath(): string {
  if (process.env.PLY_REGISTRIES_CONFIG) return process.env.PLY_REGISTRIES_CONFIG;
  const base = process.env.XDG_CONFIG_HOME || path.join(process.env.HOME || os.homedir(), '.config');
  return path.join(base, 'ply', 'registries.json');
}

export function readRegistriesConfig(): RegistriesConfig {
  const file = registriesConfigPath();
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new InvalidArgumentError(`reading ${file}: ${(e as Error).message}`);
  }
  try {
    const cfg = JSON.parse(text) as RegistriesConfig;
    if (cfg.insecure !== undefined && (!Array.isArray(cfg.insecure) || cfg.insecure.some((s) => typeof s !== 'string'))) {
      throw new Error('"insecure" must be a list of strings');
    }
    return cfg;
  } catch (e) {
    throw new InvalidArgumentError(`${file}: invalid registries config: ${(e as Error).message}`);
  }
}

function splitHostPort(domain: string): { host: string; port?: string } {
  const u = new URL(`http://${domain}`);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  return u.port ? { host, port: u.port } : { host };
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
}

/** True for localhost, 127.0.0.0/8 and ::1 (with any port). */
export function isLoopbackRegistry(domain: string): boolean {
  let host: string;
  try {
    host = splitHostPort(domain).host.toLowerCase();
  } catch {
    return false;
  }
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (net.isIPv4(host)) return host.startsWith('127.');
  if (net.isIPv6(host)) return host === '::1' || host === '0:0:0:0:0:0:0:1';
  return false;
}

/** True when the registries config lists `domain` as insecure ('host:port', 'host' for any port, or IPv4 CIDR). */
export function isInsecureRegistry(domain: string, cfg: RegistriesConfig = readRegistriesConfig()): boolean {
  let hp: { host: string; port?: string };
  try {
    hp = splitHostPort(domain);
  } catch {
    return false;
  }
  for (const raw of cfg.insecure ?? []) {
    const entry = raw.trim().replace(/^https?:\/\//, '').replace(/\/+$/, '');
    if (entry === '') continue;
    const cidr = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(entry);
    if (cidr) {
      if (!net.isIPv4(hp.host)) continue;
      const bits = Number(cidr[2]);
      const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
      if (((ipv4ToInt(hp.host) & mask) >>> 0) === ((ipv4ToInt(cidr[1]!) & mask) >>> 0)) return true;
      continue;
    }
    if (entry.toLowerCase() === domain.toLowerCase()) return true;
    try {
      const e = splitHostPort(entry);
      if (e.port === undefined && e.host.toLowerCase() === hp.host.toLowerCase()) return true;
    } catch {
      /* not a host */
    }
  }
  return false;
}

/** The host that serves a registry domain's API: docker.io is served by registry-1.docker.io. */
export function registryEndpoint(domain: string): string {
  return domain === 'docker.io' || domain === 'index.docker.io' ? 'registry-1.docker.io' : domain;
}

/** The registry domain for what `ply login` is given: 'https://index.docker.io/v1/' -> 'docker.io', 'http://h:5000/x' -> 'h:5000'. */
export function serverDomain(server: string): string {
  let s = server.trim().replace(/^https?:\/\//, '');
  const slash = s.indexOf('/');
  if (slash !== -1) s = s.slice(0, slash);
  const lower = s.toLowerCase();
  if (lower === 'index.docker.io' || lower === 'registry-1.docker.io' || lower === 'registry.hub.docker.com') return 'docker.io';
  return s;
}

// ---- WWW-Authenticate -----------------------------------------------------------------------------------------

export interface Challenge {
  scheme: string; // lower-case: 'bearer', 'basic'
  params: Record<string, string>; // keys lower-case
}

/** Parses a WWW-Authenticate value (RFC 7235): several challenges, each with token=value or token="quoted" params. */
export function parseWwwAuthenticate(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const value of values) {
    const s = value;
    let i = 0;
    let current: Challenge | undefined;
    const skipWs = (): void => {
      while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
    };
    const token = (): string => {
      const start = i;
      while (i < s.length && !/[\s,=";]/.test(s[i]!)) i++;
      return s.slice(start, i);
    };
    while (i < s.length) {
      skipWs();
      if (s[i] === ',') {
        i++;
        continue;
      }
      const t = token();
      if (t === '') {
        i++;
        continue;
      }
      skipWs();
      if (s[i] === '=' && current) {
        // A parameter of the current challenge (token68 values like "abc==" are rare and ignored).
        i++;
        skipWs();
        let v = '';
        if (s[i] === '"') {
          i++;
          while (i < s.length && s[i] !== '"') {
            if (s[i] === '\\' && i + 1 < s.length) i++;
            v += s[i];
            i++;
          }
          i++; // closing quote
        } else {
          const start = i;
          while (i < s.length && s[i] !== ',' && s[i] !== ' ' && s[i] !== '\t') i++;
          v = s.slice(start, i);
        }
        current.params[t.toLowerCase()] = v;
      } else if (s[i] === '=' && !current) {
        i++;
      } else {
        current = { scheme: t.toLowerCase(), params: {} };
        out.push(current);
      }
    }
  }
  return out;
}

// ---- the client -----------------------------------------------------------------------------------------------

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

/** A response whose body has not been read yet: read it (`buffer`, `json`, iterate `body`) or `discard` it. */
export class RegistryResponse {
  constructor(
    readonly raw: IncomingMessage,
    /** The URL that answered (after redirects). */
    readonly url: URL,
  ) {}
  get status(): number {
    return this.raw.statusCode ?? 0;
  }
  get headers(): IncomingHttpHeaders {
    return this.raw.headers;
  }
  header(name: string): string | undefined {
    const v = this.raw.headers[name.toLowerCase()];
    return Array.isArray(v) ? v[0] : v;
  }
  /** The body stream (an async iterable of Buffers). */
  get body(): IncomingMessage {
    return this.raw;
  }
  async buffer(limit = 16 << 20): Promise<Buffer> {
    return readLimited(this.raw, limit);
  }
  async text(limit?: number): Promise<string> {
    return (await this.buffer(limit)).toString('utf8');
  }
  async json<T>(limit?: number): Promise<T> {
    const text = await this.text(limit);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new RegistryError('INVALID_RESPONSE', `invalid JSON from ${this.url.host}: ${text.slice(0, 80).replace(/\s+/g, ' ')}`, this.status);
    }
  }
  /** Drops the body (lets the connection be reused). */
  discard(): void {
    this.raw.resume();
  }
  /** Resolves `Location` against this response's URL. */
  location(): URL | undefined {
    const loc = this.header('location');
    return loc ? new URL(loc, this.url) : undefined;
  }
}

async function readLimited(stream: IncomingMessage, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > limit) {
      stream.destroy();
      throw new RegistryError('TOO_LARGE', `response body larger than ${limit} bytes`);
    }
    parts.push(chunk);
  }
  return Buffer.concat(parts, n);
}

interface Token {
  token: string;
  expiresAt: number;
  refreshToken?: string;
}

type AuthState =
  | { type: 'unknown' }
  | { type: 'none' }
  | { type: 'basic' }
  | { type: 'bearer'; realm: string; service?: string };

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
  private auth: AuthState = { type: 'unknown' };
  private readonly tokens = new Map<string, Token>();
  private readonly tokenFetches = new Map<string, Promise<Token>>();
  private credsPromise?: Promise<Credentials | undefined>;
  private readonly tries: number;
  private readonly retryDelay: number;
  private readonly timeoutMs: number;
  private readonly userAgent: string;
  /** For checkLogin: ask the token server for a refresh token. */
  private wantRefreshToken = false;
  /** Set when a token server handed out a refresh (identity) token. */
  refreshToken?: string;

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
        sentAuth = await this.authorization([...req.scopes, ...extraScopes]);
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
        if (retry && attempt < this.tries && isRetriableNetworkError(e)) {
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
        const next = await this.learnChallenge(challenges, sentAuth, [...req.scopes, ...extraScopes]);
        if (next) {
          raw.resume();
          authRetried = true;
          extraScopes = next.extraScopes;
          continue;
        }
      }
      if (retry && STATUS_RETRIABLE.has(status) && attempt < this.tries) {
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
      if (status !== 401 && toRegistry && this.auth.type === 'unknown' && status < 500) this.auth = { type: 'none' };
      const res = new RegistryResponse(raw, url);
      if (req.expect && !req.expect.includes(status)) throw await this.errorFrom(res, req.notFound);
      return res;
    }
  }

  /** Reads an error response's body into a RegistryError. */
  async errorFrom(res: RegistryResponse, notFound?: string): Promise<RegistryError> {
    let body: Buffer | undefined;
    try {
      body = await res.buffer(1 << 20);
    } catch {
      body = undefined;
    }
    return registryErrorFrom(res.status, res.raw.statusMessage, body, notFound);
  }

  private settle(scheme: 'http:' | 'https:'): void {
    if (!this.fallbackPending) return;
    this.fallbackPending = false;
    if (!this.fallback) return;
    settledSchemes.set(this.base.host, scheme);
    if (this.base.protocol !== scheme) this.base = new URL(`${scheme}//${this.base.host}/`);
  }

  private credentials(): Promise<Credentials | undefined> {
    if (this.opts.credentials !== undefined) return Promise.resolve(this.opts.credentials ?? undefined);
    this.credsPromise ??= getCredentials(this.domain);
    return this.credsPromise;
  }

  /** The Authorization header to send up front for `scopes`, given what the registry asked for so far. */
  private async authorization(scopes: string[]): Promise<string | undefined> {
    const a = this.auth;
    if (a.type === 'basic') {
      const c = await this.credentials();
      return c && (c.username !== '' || c.password !== '') ? basicHeader(c) : undefined;
    }
    if (a.type === 'bearer') {
      const t = await this.token(a, scopes);
      return t.token ? `Bearer ${t.token}` : undefined;
    }
    return undefined;
  }

  /** Takes in a 401's challenges; returns what to retry with, or undefined when retrying cannot help. */
  private async learnChallenge(
    challenges: Challenge[],
    sentAuth: string | undefined,
    scopes: string[],
  ): Promise<{ extraScopes: string[] } | undefined> {
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (bearer) {
      const state: AuthState = { type: 'bearer', realm: bearer.params.realm!, service: bearer.params.service };
      this.auth = state;
      // The token we sent (if any) is no good any more: forget it so the retry fetches a fresh one.
      this.tokens.delete(scopeKey(state, scopes));
      const extra = (bearer.params.scope ?? '').split(' ').filter((s) => s !== '' && !scopes.includes(s));
      if (extra.length > 0) this.tokens.delete(scopeKey(state, [...scopes, ...extra]));
      return { extraScopes: extra };
    }
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (basic) {
      this.auth = { type: 'basic' };
      if (sentAuth?.startsWith('Basic ')) return undefined; // the credentials were refused
      const c = await this.credentials();
      return c && (c.username !== '' || c.password !== '') ? { extraScopes: [] } : undefined;
    }
    return undefined;
  }

  private async token(a: Extract<AuthState, { type: 'bearer' }>, scopes: string[]): Promise<Token> {
    const key = scopeKey(a, scopes);
    const cached = this.tokens.get(key);
    if (cached && Date.now() < cached.expiresAt) return cached;
    let p = this.tokenFetches.get(key);
    if (!p) {
      p = this.fetchToken(a.realm, a.service, [...new Set(scopes)].sort()).finally(() => this.tokenFetches.delete(key));
      this.tokenFetches.set(key, p);
    }
    const t = await p;
    this.tokens.set(key, t);
    return t;
  }

  /** Gets a token from the realm: GET with Basic credentials, or the OAuth2 POST form with an identity token. */
  private async fetchToken(realm: string, service: string | undefined, scopes: string[]): Promise<Token> {
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
      if (realmUrl.protocol !== 'https:' && realmUrl.protocol !== 'http:') throw new Error('bad scheme');
    } catch {
      throw new RegistryError('UNAUTHORIZED', `invalid token realm "${realm}" from ${this.domain}`);
    }
    const creds = await this.credentials();
    const hasPassword = !!creds && (creds.username !== '' || creds.password !== '');
    const identity = creds?.identityToken;
    let res: RegistryResponse;
    if (identity && !hasPassword) {
      res = await this.tokenPost(realmUrl, service, scopes, identity);
      if (res.status === 404 || res.status === 405) {
        res.discard();
        res = await this.tokenGet(realmUrl, service, scopes, undefined);
      }
    } else {
      res = await this.tokenGet(realmUrl, service, scopes, hasPassword ? creds : undefined);
      if (res.status >= 400 && res.status < 500 && identity) {
        res.discard();
        res = await this.tokenPost(realmUrl, service, scopes, identity);
      }
    }
    if (res.status !== 200) {
      const err = await this.errorFrom(res);
      if (res.status === 401 && hasPassword && err.detail === 'unauthorized: authentication required') {
        throw new RegistryError('UNAUTHORIZED', 'unauthorized: incorrect username or password', 401);
      }
      throw err;
    }
    const body = await res.json<{
      token?: string;
      access_token?: string;
      expires_in?: number;
      issued_at?: string;
      refresh_token?: string;
    }>(1 << 20);
    const token = body.token || body.access_token;
    if (!token) throw new RegistryError('UNAUTHORIZED', `token server ${realmUrl.host} returned no token`);
    const ttl = (typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60) * 1000;
    let issued = Date.now();
    if (body.issued_at) {
      const t = Date.parse(body.issued_at);
      // Trust the server's clock only when it roughly agrees with ours.
      if (!Number.isNaN(t) && Math.abs(t - issued) < 60_000) issued = Math.min(t, issued);
    }
    const margin = Math.min(5000, ttl / 10);
    if (body.refresh_token) this.refreshToken = body.refresh_token;
    return { token, expiresAt: issued + ttl - margin, refreshToken: body.refresh_token };
  }

  private tokenGet(realm: URL, service: string | undefined, scopes: string[], creds: Credentials | undefined): Promise<RegistryResponse> {
    const u = new URL(realm.href);
    if (service) u.searchParams.set('service', service);
    for (const s of scopes) u.searchParams.append('scope', s);
    if (creds && this.wantRefreshToken) {
      u.searchParams.set('offline_token', 'true');
      u.searchParams.set('client_id', 'ply');
    }
    const headers: Record<string, string> = { 'user-agent': this.userAgent };
    if (creds) headers.authorization = basicHeader(creds);
    return this.plain('GET', u, headers);
  }

  private tokenPost(realm: URL, service: string | undefined, scopes: string[], identity: string): Promise<RegistryResponse> {
    const form = new URLSearchParams();
    form.set('grant_type', 'refresh_token');
    form.set('refresh_token', identity);
    if (service) form.set('service', service);
    if (scopes.length > 0) form.set('scope', scopes.join(' '));
    form.set('client_id', 'ply');
    if (this.wantRefreshToken) form.set('access_type', 'offline');
    const body = Buffer.from(form.toString());
    return this.plain('POST', realm, {
      'user-agent': this.userAgent,
      'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
    }, body);
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
        if (attempt < this.tries && isRetriableNetworkError(e)) {
          await sleep(this.retryDelay * 2 ** (attempt - 1));
          attempt++;
          continue;
        }
        throw networkError(e, method, url);
      }
      const status = raw.statusCode ?? 0;
      this.opts.onResponse?.({ method, url: url.href, status });
      if (STATUS_RETRIABLE.has(status) && attempt < this.tries) {
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
        options.rejectUnauthorized = this.verify || url.host !== this.base.host;
        if (this.opts.ca !== undefined) options.ca = this.opts.ca;
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
    this.wantRefreshToken = v;
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

function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

function scopeKey(a: Extract<AuthState, { type: 'bearer' }>, scopes: string[]): string {
  return `${a.realm}|${a.service ?? ''}|${[...new Set(scopes)].sort().join(' ')}`;
}

function isAbort(e: unknown): boolean {
  return (e as Error)?.name === 'AbortError';
}

function isRetriableNetworkError(e: unknown): boolean {
  if (e instanceof RegistryError) return e.retriable;
  const code = (e as NodeJS.ErrnoException)?.code;
  return code !== undefined && NETWORK_RETRIABLE.has(code);
}

/** True when `e` is worth retrying (5xx, connection reset or timeout). */
export function isRetriable(e: unknown): boolean {
  return isRetriableNetworkError(e);
}

/** Scope for a repository: 'repository:team/app:pull' or 'repository:team/app:pull,push'. */
export function repositoryScope(repo: string, push = false): string {
  return `repository:${repo}:${push ? 'pull,push' : 'pull'}`;
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
