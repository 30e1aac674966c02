// How the registry client words failures: what a registry answered (its distribution error body, else the status)
// and what went wrong on the way (connection, TLS), each one RegistryError (oci/distribution-errors.ts, the type
// the registry server throws too) with one line worded as docker words it.
import { errorEntries, isRetriableNetworkCode, RegistryError } from '../oci/distribution-errors.js';

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
      const entries = errorEntries(parsed);
      if (entries) {
        const parts = entries.map((e) => {
          const msg = e.message.replace(/\s*\n\s*/g, ' ').trim();
          return msg === '' ? codeWords(e.code) : `${codeWords(e.code)}: ${msg}`;
        });
        const code = entries[0] ? entries[0].code.toUpperCase() : 'UNKNOWN';
        return new RegistryError(code, parts.join('; '), { status, detail: entries[0]?.detail });
      }
      // Token servers: {"details": "incorrect username or password"} (Docker Hub), {"error": "..."} (OAuth2).
      const d = typeof parsed.details === 'string' ? parsed.details : typeof parsed.error === 'string' ? parsed.error : undefined;
      if (d && DEFAULT_MESSAGES[status]) {
        const [code] = DEFAULT_MESSAGES[status]!;
        return new RegistryError(code, `${codeWords(code)}: ${d}`, { status });
      }
    } catch {
      /* not JSON: fall through to the status */
    }
  }
  if (status === 404 && notFound) return new RegistryError(notFound, `${codeWords(notFound)}: ${codeWords(notFound)}`, { status });
  const known = DEFAULT_MESSAGES[status];
  if (known) return new RegistryError(known[0], `${codeWords(known[0])}: ${known[1]}`, { status });
  return new RegistryError(
    'UNKNOWN',
    `received unexpected HTTP status: ${status}${statusText ? ' ' + statusText : ''}`,
    { status },
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

/** 'GET' -> 'Get', as Go's net/http words a request in its errors. */
export function goMethod(method: string): string {
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
    return new RegistryError('TLS', `${where}: tls: failed to verify certificate: ${reason}`, { cause: e });
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
  return new RegistryError(code === '' ? 'NETWORK' : code === 'EPROTO' ? 'TLS' : 'NETWORK', `${where}: ${what}`, {
    cause: e,
  });
}

/** True when `e` is worth retrying (5xx, connection reset or timeout). */
export function isRetriable(e: unknown): boolean {
  if (e instanceof RegistryError) return e.retriable;
  return isRetriableNetworkCode((e as NodeJS.ErrnoException)?.code);
}
