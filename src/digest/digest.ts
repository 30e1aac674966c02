// Content digests ("sha256:<hex>"): validation and hashing of buffers and streams.
import { createHash, type Hash } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';
import type { Digest } from '../oci/types.js';

const HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };
const DIGEST_RE = /^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$/;

export function isDigest(s: string): s is Digest {
  const m = DIGEST_RE.exec(s);
  if (!m) return false;
  const len = HEX_LENGTH[m[1]!];
  return len !== undefined && m[2]!.length === len && /^[0-9a-f]+$/.test(m[2]!);
}

export function parseDigest(s: string): Digest {
  if (!isDigest(s)) throw new InvalidArgumentError(`invalid digest "${s}"`);
  return s;
}

export function splitDigest(d: Digest): { algorithm: 'sha256' | 'sha512'; hex: string } {
  const i = d.indexOf(':');
  return { algorithm: d.slice(0, i) as 'sha256' | 'sha512', hex: d.slice(i + 1) };
}

export function digestOf(data: Buffer | string, algorithm: 'sha256' | 'sha512' = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}` as Digest;
}

/** Incremental hashing that also counts bytes. */
export class Digester {
  private readonly hash: Hash;
  size = 0;
  constructor(readonly algorithm: 'sha256' | 'sha512' = 'sha256') {
    this.hash = createHash(algorithm);
  }
  update(chunk: Buffer): void {
    this.hash.update(chunk);
    this.size += chunk.length;
  }
  digest(): Digest {
    return `${this.algorithm}:${this.hash.digest('hex')}` as Digest;
  }
}

/** ChainID per the OCI image-spec: chain(L0) = diffID(L0); chain(Ln) = sha256(chain(Ln-1) + " " + diffID(Ln)). */
export function chainIds(diffIds: Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) {
    out.push(out.length === 0 ? d : digestOf(`${out[out.length - 1]} ${d}`));
  }
  return out;
}
