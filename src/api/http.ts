// One request of the Docker Engine API, whichever way it came: a plain HTTP request, or one asking to take over
// the connection (`Connection: Upgrade`, `Upgrade: tcp`: attach and exec start). Handlers answer through this
// object: JSON in docker's shapes, a streamed body, or the hijacked raw connection; errors in docker's shape.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import { PassThrough, type Writable } from 'node:stream';
import { decodeBody, type Shape } from './bodies.js';
import { ConflictError, InvalidArgumentError, InvalidArchiveError, InvalidReferenceError, NotFoundError, PlyError, UnsupportedError } from '../errors.js';

/** Largest JSON request body taken (docker's own bodies are a few KiB; a create with every field is ~4 KiB). */
export const MAX_JSON_BODY = 4 << 20;

/** An error that carries its HTTP status (docker's errdefs classes map onto these). */
export class ApiError extends PlyError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export const badRequest = (m: string) => new ApiError(400, m);

/** The status dockerd gives each kind of error. */
export function statusOf(e: unknown): number {
  if (e instanceof ApiError) return e.status;
  if (e instanceof NotFoundError) return 404;
  if (e instanceof ConflictError) return 409;
  if (e instanceof InvalidArgumentError || e instanceof InvalidReferenceError || e instanceof InvalidArchiveError || e instanceof UnsupportedError) return 400;
  return 500;
}

export interface Headers {
  [name: string]: string | number;
}

/** A connection taken over: the client's input (stdin, from the first byte after the request) and our output. */
export interface Hijacked {
  input: AsyncIterable<Buffer>;
  /** Ending it closes our side (a half-close for an upgraded connection: the client may still send). */
  output: Writable;
}

export class Request {
  readonly method: string;
  /** The path without the /v1.xx prefix. */
  readonly path: string;
  readonly query: URLSearchParams;
  /** The API version the client asked for (its path's), or the server's. */
  version: string;
  params: string[] = [];
  /** Set once a response started (status line written): errors after it can only end the stream. */
  private started = false;
  private hijackedSocket?: Duplex;
  /** Extra headers every response carries (Api-Version, Server, …). */
  private readonly common: Headers;

  constructor(
    readonly req: IncomingMessage,
    /** The plain response, or undefined for an upgrade request (then `socket` and `head` are the connection). */
    private readonly res: ServerResponse | undefined,
    private readonly socket: Duplex | undefined,
    private head: Buffer | undefined,
    common: Headers,
    defaultVersion: string,
  ) {
    const url = new URL(req.url ?? '/', 'http://docker');
    const m = /^\/v([0-9.]+)(\/.*)$/.exec(url.pathname);
    this.method = (req.method ?? 'GET').toUpperCase();
    this.path = decodePath(m ? m[2]! : url.pathname);
    this.version = m ? m[1]! : defaultVersion;
    this.query = url.searchParams;
    this.common = common;
  }

  get isUpgrade(): boolean {
    return this.res === undefined;
  }

  get responded(): boolean {
    return this.started;
  }

  header(name: string): string | undefined {
    const v = this.req.headers[name.toLowerCase()];
    return Array.isArray(v) ? v[0] : v;
  }

  /** A query value ('' counts as given). */
  q(name: string): string | undefined {
    return this.query.get(name) ?? undefined;
  }

  /** docker's BoolValue: absent, '', 0, no, false and none are false. */
  bool(name: string, dflt = false): boolean {
    const v = this.query.get(name);
    if (v === null) return dflt;
    return !['', '0', 'no', 'false', 'none'].includes(v.trim().toLowerCase());
  }

  /** docker's integer parameters: absent → undefined, anything but an integer → 400. */
  int(name: string): number | undefined {
    const v = this.query.get(name);
    if (v === null || v === '') return undefined;
    if (!/^-?\d+$/.test(v)) throw badRequest(`strconv.Atoi: parsing "${v}": invalid syntax`);
    return Number(v);
  }

  /** `filters` as docker sends it (JSON of key → [values] or key → {value: true}). */
  filters(): Record<string, string[] | Record<string, boolean>> | undefined {
    const f = this.query.get('filters');
    if (!f) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(f);
    } catch {
      throw badRequest(`invalid filter: ${f}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw badRequest(`invalid filter: ${f}`);
    for (const v of Object.values(parsed as Record<string, unknown>)) {
      const ok = Array.isArray(v) ? v.every((x) => typeof x === 'string') : typeof v === 'object' && v !== null && Object.values(v).every((x) => typeof x === 'boolean');
      if (!ok) throw badRequest(`invalid filter: ${f}`);
    }
    return parsed as Record<string, string[] | Record<string, boolean>>;
  }

  /** The request body (bounded), as a buffer. */
  async body(limit = MAX_JSON_BODY): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of this.bodyStream(limit)) {
      n += c.length;
      chunks.push(c);
    }
    return Buffer.concat(chunks, n);
  }

  /**
   * The JSON body decoded into `shape` as dockerd decodes it (bodies.ts: keys match case-insensitively, unknown
   * keys are dropped); an empty body is `undefined`; a malformed one is docker's 400.
   */
  async json<T>(shape: Shape): Promise<T | undefined> {
    const b = await this.body();
    if (b.length === 0) return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(b.toString('utf8'));
    } catch (e) {
      throw badRequest(`invalid JSON: ${(e as Error).message}`);
    }
    return decodeBody(parsed, shape) as T;
  }

  /**
   * The body as a stream (build contexts, archives, image loads): never held in memory. With `limit`, a body
   * longer than that fails the stream.
   */
  bodyStream(limit = Infinity): AsyncIterable<Buffer> {
    const length = Number(this.header('content-length') ?? NaN);
    if (Number.isFinite(length) && length > limit) throw new ApiError(413, `request body too large (${length} bytes, at most ${limit})`);
    if (this.res) return bounded(this.req, limit);
    // An upgrade request: the body (Content-Length bytes, as docker's clients send exec start's JSON) comes on the
    // raw connection; what follows it is the stream's input.
    return this.upgradeBody(Number.isFinite(length) ? length : 0);
  }

  private async *upgradeBody(length: number): AsyncIterable<Buffer> {
    let left = length;
    if (this.head?.length) {
      const take = this.head.subarray(0, left);
      this.head = this.head.subarray(take.length);
      left -= take.length;
      if (take.length) yield take;
    }
    if (left === 0) return;
    const socket = this.socket!;
    for await (const c of chunks(socket)) {
      const take = c.subarray(0, left);
      left -= take.length;
      if (take.length < c.length) {
        // The rest is stream input: put it back for the hijacked stream.
        socket.pause();
        socket.unshift(c.subarray(take.length));
      }
      yield take;
      if (left === 0) return;
    }
  }

  /** A JSON answer. */
  json200(body: unknown, status = 200): void {
    this.send(status, { 'Content-Type': 'application/json' }, `${JSON.stringify(body)}\n`);
  }

  /** 204 No Content (or 304 Not Modified, 201 Created with no body). */
  empty(status = 204): void {
    this.send(status, {}, undefined);
  }

  text(body: string, status = 200, contentType = 'text/plain; charset=utf-8'): void {
    this.send(status, { 'Content-Type': contentType }, body);
  }

  /** An answer with exactly these headers (a HEAD answer keeps its Content-Length and sends no body). */
  raw(status: number, headers: Headers, body?: string | Buffer): void {
    if (this.started) throw new Error('response already started');
    this.started = true;
    const all: Headers = { ...this.common, ...headers };
    const bytes = body === undefined ? undefined : Buffer.from(body);
    if (bytes && all['Content-Length'] === undefined) all['Content-Length'] = bytes.length;
    if (this.res) {
      this.res.writeHead(status, all as Record<string, string | number>);
      this.res.end(this.method === 'HEAD' ? undefined : bytes);
      return;
    }
    const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`, ...Object.entries(all).map(([k, v]) => `${k}: ${v}`), 'Connection: close', '', ''];
    this.socket!.end(bytes && this.method !== 'HEAD' ? Buffer.concat([Buffer.from(lines.join('\r\n')), bytes]) : lines.join('\r\n'));
  }

  /** docker's error shape. */
  error(e: unknown): void {
    const status = statusOf(e);
    const message = e instanceof Error ? e.message : String(e);
    this.send(status, { 'Content-Type': 'application/json' }, `${JSON.stringify({ message })}\n`);
  }

  private send(status: number, headers: Headers, body: string | undefined): void {
    this.raw(status, headers, body);
  }

  /**
   * Starts a streamed answer (chunked): progress messages, logs, archives. The returned stream ends the response
   * when it ends; it errors (and the connection closes) when the client goes away.
   */
  stream(status: number, contentType: string, headers: Headers = {}): Writable {
    if (this.started) throw new Error('response already started');
    this.started = true;
    if (this.res) {
      this.res.writeHead(status, { ...this.common, 'Content-Type': contentType, ...headers } as Record<string, string | number>);
      // Headers go out now: clients (docker logs -f, events) wait for them before anything is written.
      this.res.flushHeaders();
      return this.res;
    }
    // An upgrade request answered with a plain stream (a hijack endpoint that does not hijack, e.g. detached exec).
    const out = new PassThrough();
    const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`, ...Object.entries({ ...this.common, 'Content-Type': contentType, ...headers }).map(([k, v]) => `${k}: ${v}`), 'Connection: close', '', ''];
    this.socket!.write(lines.join('\r\n'));
    out.pipe(this.socket!);
    return out;
  }

  /**
   * Takes over the connection as docker's hijack does: 101 UPGRADED for a client that asked for `Upgrade: tcp`,
   * otherwise 200 with the raw stream as the body until close (input from such a client is not read).
   */
  hijack(contentType = 'application/vnd.docker.raw-stream'): Hijacked {
    if (this.started) throw new Error('response already started');
    this.started = true;
    if (!this.res) {
      const socket = this.socket!;
      const upgrade = this.header('upgrade') ?? 'tcp';
      socket.write(`HTTP/1.1 101 UPGRADED\r\nContent-Type: ${contentType}\r\nConnection: Upgrade\r\nUpgrade: ${upgrade}\r\n\r\n`);
      const head = this.head ?? Buffer.alloc(0);
      this.head = undefined;
      this.hijackedSocket = socket;
      return {
        input: (async function* () {
          if (head.length) yield head;
          yield* chunks(socket);
        })(),
        output: socket,
      };
    }
    const res = this.res;
    res.useChunkedEncodingByDefault = false;
    res.writeHead(200, { ...this.common, 'Content-Type': contentType, Connection: 'close' } as Record<string, string | number>);
    res.flushHeaders();
    this.hijackedSocket = res.socket ?? undefined;
    return { input: (async function* () {})(), output: res };
  }

  /** True once the client went away (its connection closed). */
  get aborted(): boolean {
    const s = this.res?.socket ?? this.socket;
    return !s || s.destroyed;
  }

  /** An AbortSignal that fires when the client's connection closes (for waits and follows). */
  closedSignal(): AbortSignal {
    const ac = new AbortController();
    const s = this.res?.socket ?? this.socket;
    if (!s || s.destroyed) ac.abort();
    else s.once('close', () => ac.abort());
    return ac.signal;
  }

  /** Ends the exchange after a failure in the middle of a response: the connection is closed. */
  abort(): void {
    const s = this.hijackedSocket ?? this.res?.socket ?? this.socket;
    s?.destroy();
  }
}

/**
 * A connection's input as chunks, leaving the connection open when the input ends or the reader stops (a plain
 * for-await would destroy it, output side included: a client's half-close of stdin must not end our output).
 */
function chunks(socket: Duplex): AsyncIterable<Buffer> {
  return (socket as Duplex & { iterator(o: { destroyOnReturn: boolean }): AsyncIterableIterator<Buffer> }).iterator({ destroyOnReturn: false });
}

/** Reads a stream, failing it once more than `limit` bytes came. */
async function* bounded(src: AsyncIterable<Buffer>, limit: number): AsyncIterable<Buffer> {
  let n = 0;
  for await (const c of src) {
    n += c.length;
    if (n > limit) throw new ApiError(413, `request body too large (more than ${limit} bytes)`);
    yield c;
  }
}

function decodePath(p: string): string {
  try {
    return decodeURIComponent(p);
  } catch {
    throw badRequest(`invalid path: ${p}`);
  }
}

/** Compares docker API versions ('1.41' < '1.9' is false: numeric per component). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/**
 * docker's stream multiplexing (stdcopy): each frame is 8 bytes (stream: 0 stdin, 1 stdout, 2 stderr; three
 * zeros; a big-endian uint32 length) and the data. Used when a container or exec has no TTY.
 */
export function frame(stream: 0 | 1 | 2 | 3, data: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(data.length, 4);
  return Buffer.concat([h, data]);
}
