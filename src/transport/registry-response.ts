// A registry's answer whose body has not been read yet, and reading an error answer into a RegistryError.
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { RegistryError } from '../oci/distribution-errors.js';
import { registryErrorFrom } from './registry-errors.js';

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
      throw new RegistryError('INVALID_RESPONSE', `invalid JSON from ${this.url.host}: ${text.slice(0, 80).replace(/\s+/g, ' ')}`, { status: this.status });
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

/** Reads an error response's body into a RegistryError. */
export async function responseError(res: RegistryResponse, notFound?: string): Promise<RegistryError> {
  let body: Buffer | undefined;
  try {
    body = await res.buffer(1 << 20);
  } catch {
    body = undefined;
  }
  return registryErrorFrom(res.status, res.raw.statusMessage, body, notFound);
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
