// Registry authentication: users from an htpasswd file (bcrypt), HTTP basic, and docker's token flow (a /token
// endpoint handing out short-lived HMAC-signed tokens scoped to repositories and actions).
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import { bcryptVerifyAsync, isBcryptHash } from './bcrypt.js';

export const TOKEN_TTL_SECONDS = 300;

/** One access grant or requirement: `repository:team/app:pull,push`, `registry:catalog:*`. */
export interface Access {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenClaims {
  iss: string;
  sub: string;
  aud: string;
  exp: number;
  nbf: number;
  iat: number;
  jti: string;
  access: Access[];
}

/** Parses htpasswd lines `user:hash`; only bcrypt hashes (htpasswd -B) are accepted. */
export function parseHtpasswd(text: string, warn: (msg: string) => void = () => undefined): Map<string, string> {
  const users = new Map<string, string>();
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) {
      warn(`htpasswd line ${i + 1}: not user:hash, ignored`);
      continue;
    }
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (!isBcryptHash(hash)) {
      warn(`htpasswd line ${i + 1}: user ${user} does not have a bcrypt hash (use htpasswd -B), ignored`);
      continue;
    }
    users.set(user, hash);
  }
  return users;
}

/** `repository:team/app:pull,push` → Access; the name is what lies between the first and the last colon. */
export function parseScope(scope: string): Access | undefined {
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first <= 0 || last <= first) return undefined;
  const actions = scope
    .slice(last + 1)
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a !== '');
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions };
}

export function formatScope(a: Access): string {
  return `${a.type}:${a.name}:${a.actions.join(',')}`;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export class Authenticator {
  private readonly users: Map<string, string>;
  private readonly secret: Buffer;
  /** Credentials already checked (bcrypt is slow on purpose): key → the hash they matched. */
  private readonly verified = new Map<string, string>();
  private readonly pending = new Map<string, Promise<boolean>>();

  constructor(
    users: Map<string, string>,
    readonly service: string,
    secret: Buffer = randomBytes(32),
  ) {
    this.users = users;
    this.secret = secret;
  }

  static fromFile(file: string, service: string, warn?: (msg: string) => void): Authenticator {
    return new Authenticator(parseHtpasswd(fs.readFileSync(file, 'utf8'), warn), service);
  }

  /** Checks a user's password against the htpasswd entry (cached once verified, deduplicated while running). */
  async checkPassword(user: string, password: string): Promise<boolean> {
    const hash = this.users.get(user);
    if (hash === undefined) return false;
    const key = `${user}\0${createHash('sha256').update(password).digest('hex')}`;
    if (this.verified.get(key) === hash) return true;
    let p = this.pending.get(key);
    if (!p) {
      p = bcryptVerifyAsync(password, hash).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    const ok = await p;
    if (ok) {
      if (this.verified.size >= 1024) this.verified.clear();
      this.verified.set(key, hash);
    }
    return ok;
  }

  /** The credentials of an `Authorization: Basic` header, if that is what it holds. */
  static basicCredentials(header: string | undefined): { user: string; password: string } | undefined {
    const m = /^Basic\s+(\S+)\s*$/i.exec(header ?? '');
    if (!m) return undefined;
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return undefined;
    return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
  }

  static bearerToken(header: string | undefined): string | undefined {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    return m?.[1];
  }

  /** Issues a token for `user` granting the requested repository actions (pull, push, delete) and catalog access. */
  issueToken(user: string, requested: Access[]): { token: string; access_token: string; expires_in: number; issued_at: string } {
    const now = Math.floor(Date.now() / 1000);
    const access: Access[] = [];
    for (const r of requested) {
      if (r.type === 'repository') {
        const actions = r.actions.filter((a) => a === 'pull' || a === 'push' || a === 'delete' || a === '*');
        if (actions.length > 0) access.push({ type: r.type, name: r.name, actions });
      } else if (r.type === 'registry' && r.name === 'catalog') {
        access.push({ type: r.type, name: r.name, actions: ['*'] });
      }
    }
    const claims: TokenClaims = {
      iss: 'ply-registry',
      sub: user,
      aud: this.service,
      exp: now + TOKEN_TTL_SECONDS,
      nbf: now - 10,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const body = b64url(JSON.stringify(claims));
    const sig = b64url(createHmac('sha256', this.secret).update(`${head}.${body}`).digest());
    const token = `${head}.${body}.${sig}`;
    return { token, access_token: token, expires_in: TOKEN_TTL_SECONDS, issued_at: new Date(now * 1000).toISOString() };
  }

  /** The claims of a token this server signed that has not expired; undefined otherwise. */
  verifyToken(token: string): TokenClaims | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    const expected = createHmac('sha256', this.secret).update(`${parts[0]}.${parts[1]}`).digest();
    const actual = Buffer.from(parts[2]!, 'base64url');
    if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) return undefined;
    try {
      const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as TokenClaims;
      const now = Date.now() / 1000;
      if (typeof claims.exp !== 'number' || claims.exp < now || claims.nbf > now + 60) return undefined;
      if (claims.aud !== this.service || !Array.isArray(claims.access)) return undefined;
      return claims;
    } catch {
      return undefined;
    }
  }
}

/** Whether a token's grants cover `need` (each of its actions). */
export function grants(access: Access[], need: Access): boolean {
  return need.actions.every((action) =>
    access.some((a) => a.type === need.type && a.name === need.name && (a.actions.includes(action) || a.actions.includes('*'))),
  );
}
