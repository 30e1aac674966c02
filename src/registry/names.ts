// Repository names, tags and the /v2/ routes. Names may contain slashes (and segments like "blobs"), so a
// route is recognised by its suffix: each pattern is anchored at the end and the name is what precedes it.

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

export function isRepositoryName(name: string): boolean {
  return name.length > 0 && name.length < 256 && NAME_RE.test(name);
}

export function isTag(s: string): boolean {
  return TAG_RE.test(s);
}

export type Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'token' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'uploads'; name: string; uuid: string }
  | { kind: 'referrers'; name: string; digest: string };

const ROUTES: Array<[RegExp, (m: RegExpExecArray) => Route]> = [
  [/^\/v2\/(.+)\/tags\/list$/, (m) => ({ kind: 'tags', name: m[1]! })],
  [/^\/v2\/(.+)\/manifests\/([^/]+)$/, (m) => ({ kind: 'manifest', name: m[1]!, reference: m[2]! })],
  [/^\/v2\/(.+)\/blobs\/uploads(?:\/([^/]*))?$/, (m) => ({ kind: 'uploads', name: m[1]!, uuid: m[2] ?? '' })],
  [/^\/v2\/(.+)\/blobs\/([^/]+)$/, (m) => ({ kind: 'blob', name: m[1]!, digest: m[2]! })],
  [/^\/v2\/(.+)\/referrers\/([^/]+)$/, (m) => ({ kind: 'referrers', name: m[1]!, digest: m[2]! })],
];

/** Matches a request path (already split from its query); undefined when no route fits. */
export function matchRoute(pathname: string): Route | undefined {
  if (pathname === '/v2/' || pathname === '/v2') return { kind: 'base' };
  if (pathname === '/v2/_catalog') return { kind: 'catalog' };
  if (pathname === '/token') return { kind: 'token' };
  for (const [re, make] of ROUTES) {
    const m = re.exec(pathname);
    if (!m) continue;
    const route = make(m);
    return decodeRoute(route);
  }
  return undefined;
}

function decodeRoute(route: Route): Route | undefined {
  try {
    const out = { ...route } as Record<string, string>;
    // A name is taken as it is: "alice%2fapp" is not "alice/app" (and no valid name needs escaping), so an
    // escaped name fails validation. The other parts are single segments and must stay so once decoded.
    for (const k of ['reference', 'digest', 'uuid']) {
      if (out[k] === undefined) continue;
      out[k] = decodeURIComponent(out[k]!);
      if (out[k]!.includes('/')) return undefined;
    }
    return out as unknown as Route;
  } catch {
    return undefined;
  }
}
