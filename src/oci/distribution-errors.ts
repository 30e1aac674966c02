// The distribution spec's errors, one type for both ends of ply's registry protocol: the registry server throws a
// RegistryError and answers with its status and JSON body ({"errors":[{code,message,detail}]}); the registry
// client reads a registry's answer back into one (transport/registry-errors.ts words it as docker does).
import { PlyError } from '../errors.js';

/** The codes the distribution spec defines. A registry may send others: a RegistryError's `code` is then theirs. */
export type DistributionErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  | 'UNKNOWN';

/** Each code's HTTP status and default message. */
const DISTRIBUTION_ERRORS: Record<DistributionErrorCode, { status: number; message: string }> = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
  UNKNOWN: { status: 500, message: 'unknown error' },
};

function known(code: string): { status: number; message: string } | undefined {
  return Object.hasOwn(DISTRIBUTION_ERRORS, code) ? DISTRIBUTION_ERRORS[code as DistributionErrorCode] : undefined;
}

export interface RegistryErrorOptions {
  /** The HTTP status: the answer's (client); by default the code's (server). */
  status?: number;
  /** The body's `detail`: structured context (the digest, the tag, the upload offset…). */
  detail?: unknown;
  cause?: unknown;
  /** The message without the context a caller put in front of it (see withContext). */
  reason?: string;
}

/**
 * A registry said no, or could not be reached. `code` is the distribution error code ('MANIFEST_UNKNOWN'), the
 * code a registry sent, or one of the client's for failures without an answer ('NETWORK', 'TLS', …).
 */
export class RegistryError extends PlyError {
  override exitCode = 1;
  readonly code: string;
  /** Undefined when no answer came (a connection or TLS failure). */
  readonly status: number | undefined;
  readonly detail: unknown;
  /** The registry's own words ('manifest unknown: manifest unknown'), without any context prefix. */
  readonly reason: string;
  /** Response headers a server sends with it (Range and Location on a 416, WWW-Authenticate on a 401). */
  readonly headers: Record<string, string | string[]> = {};

  constructor(code: DistributionErrorCode | (string & {}), message?: string, options: RegistryErrorOptions = {}) {
    const spec = known(code);
    super(message ?? spec?.message ?? code, { cause: options.cause });
    this.code = code;
    this.status = options.status ?? spec?.status;
    this.detail = options.detail;
    this.reason = options.reason ?? this.message;
  }

  /** True for failures worth retrying: 500/502/503/504 and connection resets/timeouts. */
  get retriable(): boolean {
    if (this.status !== undefined) return isRetriableStatus(this.status);
    return isRetriableNetworkCode((this.cause as NodeJS.ErrnoException | undefined)?.code);
  }

  /** The same error with `prefix: ` in front of its message (code, status, detail and reason kept). */
  withContext(prefix: string): RegistryError {
    return new RegistryError(this.code, `${prefix}: ${this.reason}`, {
      status: this.status,
      detail: this.detail,
      cause: this.cause,
      reason: this.reason,
    }).withHeaders(this.headers);
  }

  withHeaders(headers: Record<string, string | string[]>): this {
    Object.assign(this.headers, headers);
    return this;
  }

  /** The answer's body: {"errors":[{code,message,detail}]}. */
  body(): string {
    const e: { code: string; message: string; detail?: unknown } = { code: this.code, message: this.message };
    if (this.detail !== undefined) e.detail = this.detail;
    return JSON.stringify({ errors: [e] });
  }
}

export interface ErrorEntry {
  code: string;
  message: string;
  detail?: unknown;
}

/** The entries of a parsed distribution error body ({"errors":[…]}), or undefined when it is not one. */
export function errorEntries(body: unknown): ErrorEntry[] | undefined {
  const errors = body && typeof body === 'object' ? (body as { errors?: unknown }).errors : undefined;
  if (!Array.isArray(errors) || errors.length === 0) return undefined;
  return errors
    .filter((e): e is { code?: unknown; message?: unknown; detail?: unknown } => !!e && typeof e === 'object')
    .map((e) => ({
      code: typeof e.code === 'string' && e.code !== '' ? e.code : 'UNKNOWN',
      message: typeof e.message === 'string' ? e.message : '',
      ...(e.detail !== undefined ? { detail: e.detail } : {}),
    }));
}

const NETWORK_RETRIABLE = new Set(['ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED', 'EAI_AGAIN', 'ESOCKETTIMEDOUT']);
const STATUS_RETRIABLE = new Set([500, 502, 503, 504]);

/** True for the statuses a replayable request is retried on: 500, 502, 503, 504. */
export function isRetriableStatus(status: number): boolean {
  return STATUS_RETRIABLE.has(status);
}

/** True for the connection failures a replayable request is retried on (resets, timeouts). */
export function isRetriableNetworkCode(code: string | undefined): boolean {
  return code !== undefined && NETWORK_RETRIABLE.has(code);
}
