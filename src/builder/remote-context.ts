// A build context named by a URL (`ply build http://host/ctx.tar.gz`, docker's `remote`): a tar (plain, gzip,
// bzip2, xz or zstd) is the context, streamed as it downloads; anything else is a Dockerfile with an empty
// context, as docker decides. Git repositories are not fetched (one clear line).
import { Readable } from 'node:stream';
import { InvalidArgumentError } from '../errors.js';

/** The largest Dockerfile a URL may return (the context tar itself is streamed, never held). */
const MAX_DOCKERFILE = 4 << 20;
/** How many leading bytes decide between a tar and a Dockerfile. */
const SNIFF = 512;

export type RemoteContext = { kind: 'tar'; stream: AsyncIterable<Buffer> } | { kind: 'dockerfile'; text: string };

/** Whether a build context argument is a URL (http, https or a git form) rather than a path. */
export function isRemoteContext(context: string): boolean {
  return /^(https?|git|ssh):\/\//i.test(context) || /^git@/.test(context) || /^github\.com\//.test(context);
}

/** Whether these leading bytes start an archive: gzip, bzip2, xz, zstd or a tar header. */
export function looksLikeArchive(b: Buffer): boolean {
  if (b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b) return true;
  if (b.length >= 3 && b.subarray(0, 3).toString('latin1') === 'BZh') return true;
  if (b.length >= 6 && b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return true;
  if (b.length >= 4 && b.readUInt32LE(0) === 0xfd2fb528) return true;
  return b.length >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar';
}

export async function fetchRemoteContext(url: string): Promise<RemoteContext> {
  if (!/^https?:\/\//i.test(url) || /\.git(#.*)?$/.test(url)) {
    throw new InvalidArgumentError(`unable to prepare context: ${url}: ply builds from http(s) URLs of a tar or a Dockerfile, not from git repositories`);
  }
  const headers = new AbortController();
  const timer = setTimeout(() => headers.abort(new Error('no response in 30s')), 30_000);
  let res: Response;
  try {
    res = await fetch(url, { signal: headers.signal, redirect: 'follow' });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new InvalidArgumentError(`unable to prepare context: unable to download remote context ${url}: ${cause?.message ?? cause?.code ?? (e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
  if (!res.ok || !res.body) throw new InvalidArgumentError(`unable to prepare context: unable to download remote context ${url}: ${res.status} ${res.statusText}`);
  const reader = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>)[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const head: Buffer[] = [];
  let size = 0;
  let ended = false;
  while (size < SNIFF) {
    const r = await reader.next();
    if (r.done) {
      ended = true;
      break;
    }
    head.push(r.value);
    size += r.value.length;
  }
  const first = Buffer.concat(head);
  const type = res.headers.get('content-type') ?? '';
  if (!type.startsWith('text/') && looksLikeArchive(first)) {
    return {
      kind: 'tar',
      stream: (async function* () {
        yield first;
        if (ended) return;
        for (let r = await reader.next(); !r.done; r = await reader.next()) yield r.value;
      })(),
    };
  }
  // A Dockerfile: read whole (bounded), and it must be text.
  const parts: Buffer[] = [first];
  let total = first.length;
  if (!ended) {
    for (let r = await reader.next(); !r.done; r = await reader.next()) {
      total += r.value.length;
      if (total > MAX_DOCKERFILE) {
        await reader.return?.();
        throw new InvalidArgumentError(`unable to prepare context: ${url} is neither a tar archive nor a Dockerfile (over ${MAX_DOCKERFILE >> 20} MiB)`);
      }
      parts.push(r.value);
    }
  }
  const data = Buffer.concat(parts);
  if (data.includes(0)) throw new InvalidArgumentError(`unable to prepare context: ${url} is neither a tar archive nor a Dockerfile`);
  return { kind: 'dockerfile', text: data.toString('utf8') };
}
