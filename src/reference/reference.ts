// Image reference parsing and normalisation, following docker's behaviour
// (the grammar of github.com/distribution/reference: reference.go, normalize.go, regexp.go).
//
//   reference        := name [ ":" tag ] [ "@" digest ]
//   name             := [domain '/'] remote-name
//   domain           := host [':' port-number]
//   host             := domain-name | '[' IPv6address ']'
//   domain-name      := domain-component ['.' domain-component]*
//   domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//   port-number      := /[0-9]+/
//   remote-name      := path-component ['/' path-component]*
//   path-component   := alpha-numeric [separator alpha-numeric]*
//   alpha-numeric    := /[a-z0-9]+/
//   separator        := /[_.]|__|[-]+/
//   tag              := /[\w][\w.-]{0,127}/
//   digest           := algorithm ":" hex   (algorithm components /[A-Za-z][A-Za-z0-9]*/ joined by [-_+.], hex {32,})
//
// Normalisation (ParseNormalizedNamed): the first '/'-separated component is a domain only if it is
// "localhost", contains '.' or ':', or is not all lower-case; otherwise the domain is docker.io.
// "index.docker.io" becomes "docker.io", and single-component docker.io names get "library/".

import { InvalidReferenceError } from '../errors.js';

export interface Reference {
  /** Registry domain, e.g. 'docker.io', 'localhost:5000', 'quay.io', '[::1]:5000'. */
  domain: string;
  /** Repository path within the registry, e.g. 'library/ubuntu', 'user/repo'. */
  path: string;
  tag?: string;
  /** 'algorithm:hex', e.g. 'sha256:<64 hex>'. */
  digest?: string;
}

export const DEFAULT_DOMAIN = 'docker.io';
export const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
export const OFFICIAL_REPO_PREFIX = 'library/';
export const DEFAULT_TAG = 'latest';
/** Maximum length of the repository path (docker counts the path, not the domain). */
export const REPOSITORY_NAME_MAX_LENGTH = 255;

// ---- grammar (built the same way regexp.go builds it) -------------------------------------------

const alphanumeric = '[a-z0-9]+';
const separator = '(?:[._]|__|[-]+)';
const pathComponent = `${alphanumeric}(?:${separator}${alphanumeric})*`;
const remoteName = `${pathComponent}(?:/${pathComponent})*`;
const domainNameComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const domainName = `${domainNameComponent}(?:\\.${domainNameComponent})*`;
const ipv6address = '\\[(?:[a-fA-F0-9:]+)\\]';
const host = `(?:${domainName}|${ipv6address})`;
const optionalPort = '(?::[0-9]+)?';
const domainAndPort = `${host}${optionalPort}`;
const tagPat = '[\\w][\\w.-]{0,127}';
const digestPat = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}';
const namePat = `(?:${domainAndPort}/)?${remoteName}`;

const referenceRe = new RegExp(`^(${namePat})(?::(${tagPat}))?(?:@(${digestPat}))?$`);
const anchoredNameRe = new RegExp(`^(?:(${domainAndPort})/)?(${remoteName})$`);
const anchoredTagRe = new RegExp(`^${tagPat}$`);
const anchoredIdentifierRe = /^[a-f0-9]{64}$/;
const fullSha256Re = /^sha256:[a-f0-9]{64}$/;

/** Hex lengths of the digest algorithms docker knows; these are validated strictly (lowercase, exact length). */
const KNOWN_ALGORITHMS: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };
const otherAlgorithmRe = /^[a-z][a-z0-9]*(?:[-_+.][a-z][a-z0-9]*)*$/;
const otherEncodedRe = /^[0-9a-fA-F]{32,}$/;

/** `detail` follows ply's message; `reason` is docker's own error (distribution/reference, go-digest) for it. */
function fail(input: string, detail?: string, reason = detail ? `invalid reference format: ${detail}` : 'invalid reference format'): never {
  const base = `invalid reference format: ${JSON.stringify(input)}`;
  throw new InvalidReferenceError(detail ? `${base}: ${detail}` : base, input, reason);
}

/** go-digest's error for a digest that is not valid (docker's reason when it refuses one). */
function digestError(d: string): string {
  const i = d.indexOf(':');
  const known = KNOWN_ALGORITHMS[d.slice(0, i)];
  if (known === undefined) return 'unsupported digest algorithm';
  return d.length - i - 1 !== known ? 'invalid checksum digest length' : 'invalid checksum digest format';
}

/** Returns true when `d` is a well-formed, supported digest ('sha256:<64 hex>', 'sha512:<128 hex>', ...). */
function isValidDigest(d: string): boolean {
  const i = d.indexOf(':');
  if (i <= 0) return false;
  const algorithm = d.slice(0, i);
  const encoded = d.slice(i + 1);
  const known = KNOWN_ALGORITHMS[algorithm];
  if (known !== undefined) return encoded.length === known && /^[a-f0-9]+$/.test(encoded);
  return otherAlgorithmRe.test(algorithm) && otherEncodedRe.test(encoded);
}

/** True when `s` is a complete known-algorithm digest such as 'sha256:<64 hex>' (an image ID, not a name). */
function isBareDigest(s: string): boolean {
  const i = s.indexOf(':');
  if (i <= 0) return false;
  const known = KNOWN_ALGORITHMS[s.slice(0, i)];
  if (known === undefined) return false;
  const encoded = s.slice(i + 1);
  return encoded.length === known && /^[a-f0-9]+$/.test(encoded);
}

/** normalize.go's splitDockerDomain: decide whether the first component is a registry domain. */
function splitDockerDomain(name: string): { domain: string; remainder: string } {
  const slash = name.indexOf('/');
  if (slash === -1) {
    // Single element ("ubuntu", "ubuntu:latest", even "localhost:5000"): always a Docker Hub official image.
    return { domain: DEFAULT_DOMAIN, remainder: OFFICIAL_REPO_PREFIX + name };
  }
  const maybeDomain = name.slice(0, slash);
  const maybeRemainder = name.slice(slash + 1);
  let domain: string;
  let remainder: string;
  if (maybeDomain === 'localhost') {
    domain = maybeDomain;
    remainder = maybeRemainder;
  } else if (maybeDomain === LEGACY_DEFAULT_DOMAIN) {
    domain = DEFAULT_DOMAIN;
    remainder = maybeRemainder;
  } else if (maybeDomain.includes('.') || maybeDomain.includes(':')) {
    domain = maybeDomain;
    remainder = maybeRemainder;
  } else if (maybeDomain.toLowerCase() !== maybeDomain) {
    // Upper-case namespaces are not allowed on Docker Hub, so this must be a host name.
    domain = maybeDomain;
    remainder = maybeRemainder;
  } else {
    domain = DEFAULT_DOMAIN;
    remainder = name;
  }
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) {
    remainder = OFFICIAL_REPO_PREFIX + remainder;
  }
  return { domain, remainder };
}

/**
 * Parses an image reference the way docker's ParseNormalizedNamed does, without adding a default tag:
 * 'ubuntu' -> { domain: 'docker.io', path: 'library/ubuntu' }.
 * Throws InvalidReferenceError for anything docker would refuse, and for a bare digest ('sha256:<hex>').
 */
export function parseReference(s: string): Reference {
  if (typeof s !== 'string' || s === '') {
    throw new InvalidReferenceError('invalid reference format: repository name must have at least one component', s, 'invalid reference format');
  }
  if (anchoredIdentifierRe.test(s)) {
    const m = `invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`;
    throw new InvalidReferenceError(m, s, m);
  }
  if (isBareDigest(s)) {
    fail(s, 'a digest is not a repository name', 'invalid reference format');
  }

  const { domain, remainder } = splitDockerDomain(s);

  // The repository part (before any tag or digest) must be lower-case.
  const cut = remainder.search(/[:@]/);
  const remote = cut === -1 ? remainder : remainder.slice(0, cut);
  if (remote.toLowerCase() !== remote) {
    fail(s, `repository name (${remote}) must be lowercase`);
  }

  const full = `${domain}/${remainder}`;
  const m = referenceRe.exec(full);
  if (!m) {
    const lower = full.toLowerCase();
    if (lower !== full && referenceRe.test(lower)) fail(s, 'repository name must be lowercase', 'repository name must be lowercase');
    fail(s);
  }
  const name = m[1]!;
  const tag = m[2];
  const digest = m[3];

  const nm = anchoredNameRe.exec(name);
  if (!nm || nm[1] === undefined || nm[1] !== domain) {
    // The first component was taken as a domain (it has '.', ':' or upper case) but is not a valid one.
    fail(s, `invalid domain (${domain})`, 'invalid reference format');
  }
  const path = nm[2]!;
  if (path.length > REPOSITORY_NAME_MAX_LENGTH) {
    const tooLong = `repository name must not be more than ${REPOSITORY_NAME_MAX_LENGTH} characters`;
    fail(s, tooLong, tooLong);
  }
  if (digest !== undefined && !isValidDigest(digest)) {
    fail(s, `invalid digest format (${digest})`, digestError(digest));
  }

  const ref: Reference = { domain, path };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** parseReference, then docker's TagNameOnly: adds tag 'latest' when neither tag nor digest is given. */
export function parseNormalized(s: string): Reference {
  const ref = parseReference(s);
  if (ref.tag === undefined && ref.digest === undefined) ref.tag = DEFAULT_TAG;
  return ref;
}

/** The full name to tag with (REPOSITORY[:TAG], tag defaults to latest); digests are refused, as docker does. */
export function tagName(ref: string): string {
  const r = parseNormalized(ref);
  if (r.digest) throw new InvalidReferenceError(`refusing to create a tag with a digest reference: "${ref}"`, ref, 'refusing to create a tag with a digest reference');
  return formatReference(r);
}

/** Full repository name: 'docker.io/library/ubuntu'. */
export function repositoryName(r: Reference): string {
  return `${r.domain}/${r.path}`;
}

/** Full reference string: 'docker.io/library/ubuntu:latest', 'host/x:t@sha256:...'. */
export function formatReference(r: Reference): string {
  return withSuffix(repositoryName(r), r);
}

/** Repository name as docker shows it: 'ubuntu', 'user/repo', 'localhost:5000/x'. */
export function familiarName(r: Reference): string {
  if (r.domain !== DEFAULT_DOMAIN) return repositoryName(r);
  if (r.path.startsWith(OFFICIAL_REPO_PREFIX)) {
    const rest = r.path.slice(OFFICIAL_REPO_PREFIX.length);
    if (!rest.includes('/')) return rest;
  }
  return r.path;
}

/** Familiar name plus tag and/or digest: 'ubuntu:latest', 'user/repo@sha256:...'. */
export function familiarString(r: Reference): string {
  return withSuffix(familiarName(r), r);
}

function withSuffix(name: string, r: Reference): string {
  let out = name;
  if (r.tag !== undefined) out += `:${r.tag}`;
  if (r.digest !== undefined) out += `@${r.digest}`;
  return out;
}

/** True when `t` is a valid tag: [\w][\w.-]{0,127}. */
export function isValidTag(t: string): boolean {
  return typeof t === 'string' && anchoredTagRe.test(t);
}

/** True when `s` is a full sha256 digest: 'sha256:' + 64 lower-case hex digits. */
export function isFullDigest(s: string): boolean {
  return typeof s === 'string' && fullSha256Re.test(s);
}

/** Returns a copy of `r` with its tag replaced (the digest, if any, is kept, as docker's WithTag does). */
export function withTag(r: Reference, tag: string): Reference {
  if (!isValidTag(tag)) {
    throw new InvalidReferenceError(`invalid tag format: ${JSON.stringify(tag)}`);
  }
  const out: Reference = { domain: r.domain, path: r.path, tag };
  if (r.digest !== undefined) out.digest = r.digest;
  return out;
}
