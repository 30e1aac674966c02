// Registry auth: the challenge a registry answers 401 with (`WWW-Authenticate: Bearer realm=…,service=…,scope=…`
// or `Basic realm=…`), and the Authorization every request then carries up front. Bearer tokens are fetched from
// the realm with `service` and the request's scopes (GET with Basic credentials; the OAuth2 POST form with an
// identity token), cached per scope set, refreshed when they expire (`expires_in`, default 60 s) or when the
// registry answers 401 to them.
import { getCredentials, type Credentials } from '../auth/config.js';
import { RegistryError } from '../oci/distribution-errors.js';
import { responseError, type RegistryResponse } from './registry-response.js';

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

/** Scope for a repository: 'repository:team/app:pull' or 'repository:team/app:pull,push'. */
export function repositoryScope(repo: string, push = false): string {
  return `repository:${repo}:${push ? 'pull,push' : 'pull'}`;
}

/** A request outside the registry auth flow (token endpoints), with the client's retries and GET redirects. */
export type PlainRequest = (
  method: 'GET' | 'POST',
  url: URL,
  headers: Record<string, string>,
  body?: Buffer,
) => Promise<RegistryResponse>;

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

/** One registry's auth state: what it asked for so far, its credentials and its tokens. */
export class RegistryAuth {
  private state: AuthState = { type: 'unknown' };
  private readonly tokens = new Map<string, Token>();
  private readonly tokenFetches = new Map<string, Promise<Token>>();
  private credsPromise?: Promise<Credentials | undefined>;
  /** For checkLogin: ask the token server for a refresh token. */
  wantRefreshToken = false;
  /** Set when a token server handed out a refresh (identity) token. */
  refreshToken?: string;

  constructor(
    private readonly domain: string,
    /** Credentials to use; null forces anonymous access; undefined looks them up with getCredentials. */
    private readonly given: Credentials | null | undefined,
    private readonly userAgent: string,
    private readonly plain: PlainRequest,
  ) {}

  /** Takes in the status of an answer from the registry: one that did not challenge the first request needs no auth. */
  answered(status: number): void {
    if (status !== 401 && this.state.type === 'unknown' && status < 500) this.state = { type: 'none' };
  }

  private credentials(): Promise<Credentials | undefined> {
    if (this.given !== undefined) return Promise.resolve(this.given ?? undefined);
    this.credsPromise ??= getCredentials(this.domain);
    return this.credsPromise;
  }

  /** The Authorization header to send up front for `scopes`, given what the registry asked for so far. */
  async authorization(scopes: string[]): Promise<string | undefined> {
    const a = this.state;
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
  async learnChallenge(
    challenges: Challenge[],
    sentAuth: string | undefined,
    scopes: string[],
  ): Promise<{ extraScopes: string[] } | undefined> {
    const bearer = challenges.find((c) => c.scheme === 'bearer' && c.params.realm);
    if (bearer) {
      const state: AuthState = { type: 'bearer', realm: bearer.params.realm!, service: bearer.params.service };
      this.state = state;
      // The token we sent (if any) is no good any more: forget it so the retry fetches a fresh one.
      this.tokens.delete(scopeKey(state, scopes));
      const extra = (bearer.params.scope ?? '').split(' ').filter((s) => s !== '' && !scopes.includes(s));
      if (extra.length > 0) this.tokens.delete(scopeKey(state, [...scopes, ...extra]));
      return { extraScopes: extra };
    }
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (basic) {
      this.state = { type: 'basic' };
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
      const err = await responseError(res);
      if (res.status === 401 && hasPassword && err.reason === 'unauthorized: authentication required') {
        throw new RegistryError('UNAUTHORIZED', 'unauthorized: incorrect username or password', { status: 401 });
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
}

function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}

function scopeKey(a: Extract<AuthState, { type: 'bearer' }>, scopes: string[]): string {
  return `${a.realm}|${a.service ?? ''}|${[...new Set(scopes)].sort().join(' ')}`;
}
