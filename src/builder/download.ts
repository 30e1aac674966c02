// ADD <url>: the file downloaded (redirects followed, 30 s at most), checked against --checksum, named as the
// URL's last path segment, with the server's Last-Modified as its time.
import path from 'node:path';
import { BuildError } from './errors.js';

export interface Download {
  url: string;
  name: string;
  data: Buffer;
  digest: string;
  mtime?: number;
}

export async function download(url: string, checksum?: string): Promise<Download> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(30_000), redirect: 'follow' });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new BuildError(`ADD failed: cannot download ${url}: ${cause?.message ?? cause?.code ?? (e as Error).message}`);
  }
  if (!res.ok) throw new BuildError(`ADD failed: cannot download ${url}: ${res.status} ${res.statusText}`);
  const data = Buffer.from(await res.arrayBuffer());
  const { digestOf } = await import('../digest/digest.js');
  const digest = digestOf(data);
  if (checksum && checksum !== digest) throw new BuildError(`ADD failed: digest mismatch for ${url}: expected ${checksum}, got ${digest}`);
  const lm = res.headers.get('last-modified');
  const mtime = lm ? Math.floor(Date.parse(lm) / 1000) : undefined;
  let name = path.posix.basename(new URL(url).pathname);
  if (!name || name === '/') name = '__unnamed__';
  return { url, name, data, digest, ...(mtime !== undefined && Number.isFinite(mtime) ? { mtime } : {}) };
}
