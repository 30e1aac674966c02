// Image routes (moby's image and distribution routers): list, inspect, history, pull (create), import, push,
// tag, remove, prune, save (get) and load; build (the classic builder's JSON stream); auth.
import type { Writable } from 'node:stream';
import { Writable as WritableStream } from 'node:stream';
import type { Credentials, Engine, ProgressMessage } from '../engine.js';
import { InvalidArgumentError, NotFoundError, PlyError, checkLogin } from '../engine.js';
import { BODIES } from './bodies.js';
import { ApiError, badRequest, type Request } from './http.js';
import { route, type Route } from './router.js';

export function imageRoutes(): Route[] {
  return [
    route('GET', '/images/json', list),
    route('POST', '/images/create', create),
    route('POST', '/images/load', load),
    route('GET', '/images/get', save),
    route('POST', '/images/prune', prune),
    route('GET', '/images/search', search),
    route('GET', '/images/{name}/get', save),
    route('GET', '/images/{name}/history', history),
    route('GET', '/images/{name}/json', inspect),
    route('POST', '/images/{name}/push', push),
    route('POST', '/images/{name}/tag', tag),
    route('DELETE', '/images/{name}', remove),
    route('POST', '/build', build),
    route('POST', '/build/prune', buildPrune),
    route('POST', '/auth', auth),
  ];
}

const name = (r: Request) => r.params[0]!;

/** A JSON-lines progress stream as dockerd writes it (each message ends with \r\n). */
function jsonStream(r: Request): { write(m: object): void; end(): void; started(): boolean; out?: Writable } {
  let out: Writable | undefined;
  return {
    write(m) {
      out ??= r.stream(200, 'application/json');
      out.write(`${JSON.stringify(m)}\r\n`);
    },
    end() {
      if (out) out.end();
      else r.empty(200);
    },
    started: () => out !== undefined,
  };
}

/** docker's error message inside a stream that already started. */
const streamError = (e: unknown) => {
  const message = e instanceof Error ? e.message : String(e);
  return { errorDetail: { message }, error: message };
};

/** X-Registry-Auth: base64url JSON of {username, password, identitytoken, serveraddress} (an empty object: none). */
function registryAuth(r: Request): Credentials | null {
  const h = r.header('x-registry-auth');
  if (!h) return null;
  let j: { username?: string; password?: string; identitytoken?: string; auth?: string };
  try {
    j = JSON.parse(Buffer.from(h.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8')) as typeof j;
  } catch {
    throw badRequest('invalid X-Registry-Auth header');
  }
  if (j.auth && !j.username) {
    const [u = '', ...p] = Buffer.from(j.auth, 'base64').toString('utf8').split(':');
    j.username = u;
    j.password = p.join(':');
  }
  if (!j.username && !j.identitytoken) return null;
  return { username: j.username ?? '', password: j.password ?? '', ...(j.identitytoken ? { identityToken: j.identitytoken } : {}) };
}

async function list(r: Request, e: Engine): Promise<void> {
  const filters = r.filters();
  // Older clients filter by name with `filter=`.
  const legacy = r.q('filter');
  const all = r.bool('all');
  const rows = e.images.list({ all, filters: legacy ? { ...filters, reference: [legacy] } : filters });
  // Field by field: Descriptor (API 1.47) is not read, so no blob is looked at for it.
  r.json200(
    byImageId(rows).map((i) => ({ Id: i.Id, ParentId: i.ParentId, RepoTags: i.RepoTags, RepoDigests: i.RepoDigests, Created: i.Created, Size: i.Size, SharedSize: i.SharedSize, Labels: i.Labels ?? {}, Containers: -1 })),
  );
}

/**
 * dockerd lists an image once per ID; ply keeps one record per manifest (a pulled copy and a local one of the same
 * image share the ID): their names and digests are one entry's.
 */
export function byImageId<T extends { Id: string; RepoTags: string[]; RepoDigests: string[] }>(rows: T[]): T[] {
  const seen = new Map<string, T>();
  for (const row of rows) {
    const first = seen.get(row.Id);
    if (!first) {
      // The row itself (its getters unread); its lists are copied before others' names join them.
      row.RepoTags = [...row.RepoTags];
      row.RepoDigests = [...row.RepoDigests];
      seen.set(row.Id, row);
      continue;
    }
    for (const t of row.RepoTags) if (!first.RepoTags.includes(t)) first.RepoTags.push(t);
    for (const d of row.RepoDigests) if (!first.RepoDigests.includes(d)) first.RepoDigests.push(d);
  }
  return [...seen.values()];
}

async function inspect(r: Request, e: Engine): Promise<void> {
  r.json200(e.images.inspect(name(r)));
}

async function history(r: Request, e: Engine): Promise<void> {
  r.json200(e.images.history(name(r)));
}

/** A pulled or pushed image's progress messages, as dockerd streams them (ids, details, a progress bar). */
function progressLine(m: ProgressMessage): object {
  const d = m.progressDetail;
  return { status: m.status, ...(m.id ? { id: m.id } : {}), ...(d ? { progressDetail: d, progress: bar(d.current, d.total) } : {}) };
}

function bar(current: number, total: number): string {
  const width = 50;
  const n = total > 0 ? Math.min(width, Math.floor((current / total) * width)) : 0;
  const fmt = (b: number) => (b >= 1e9 ? `${(b / 1e9).toFixed(2)}GB` : b >= 1e6 ? `${(b / 1e6).toFixed(2)}MB` : b >= 1e3 ? `${(b / 1e3).toFixed(2)}kB` : `${b}B`);
  return `[${'='.repeat(Math.max(0, n - 1))}${n > 0 ? '>' : ''}${' '.repeat(width - n)}] ${fmt(current)}/${fmt(total)}`;
}

async function create(r: Request, e: Engine): Promise<void> {
  const from = r.q('fromImage');
  const src = r.q('fromSrc');
  if (from && src) throw badRequest('fromImage and fromSrc cannot be used together');
  if (src) return importImage(r, e, src);
  if (!from) throw badRequest('fromImage or fromSrc is required');
  const platform = r.q('platform') || undefined;
  const tag = r.q('tag');
  // fromImage may carry the tag itself; `tag` may be a digest.
  const ref = tag ? (tag.startsWith('sha256:') ? `${from}@${tag}` : `${from}:${tag}`) : /[:@][^/]*$/.test(from) ? from : `${from}:latest`;
  const credentials = registryAuth(r);
  const s = jsonStream(r);
  // The first message ('Pulling from') is held until the registry answered, so a missing image or refused
  // login is an HTTP error (as dockerd's) rather than a message inside a 200 stream.
  let first = true;
  let held: ProgressMessage | undefined;
  try {
    await e.images.pull(ref, {
      platform,
      credentials,
      onProgress: (m) => {
        if (first) {
          first = false;
          held = m;
          return;
        }
        if (held) s.write(progressLine(held));
        held = undefined;
        s.write(progressLine(m));
      },
    });
    if (held) s.write(progressLine(held));
  } catch (err) {
    if (!s.started()) throw pullError(err);
    s.write(streamError(err));
  }
  s.end();
}

/** Pull failures with dockerd's statuses: missing repository or manifest 404, refused login 401. */
function pullError(e: unknown): unknown {
  const msg = e instanceof Error ? e.message : String(e);
  if (e instanceof NotFoundError || /\b(not found|manifest unknown|name unknown)\b/i.test(msg)) return new ApiError(404, msg);
  if (/\b(unauthorized|denied|authentication required)\b/i.test(msg)) return new ApiError(401, msg);
  return e;
}

async function importImage(r: Request, e: Engine, src: string): Promise<void> {
  if (src !== '-') throw badRequest('ply imports only from the request body (fromSrc=-)');
  const repo = r.q('repo');
  const tag = r.q('tag');
  const rec = await e.images.import(r.bodyStream(), {
    reference: repo ? `${repo}${tag ? `:${tag}` : ''}` : undefined,
    message: r.q('message'),
    changes: r.query.getAll('changes').flatMap((c) => c.split('\n')).filter(Boolean),
    platform: r.q('platform') || undefined,
    sourceName: '-',
  });
  const s = jsonStream(r);
  s.write({ status: rec.id });
  s.end();
}

async function push(r: Request, e: Engine): Promise<void> {
  const tag = r.q('tag');
  const ref = tag ? `${name(r)}:${tag}` : name(r);
  if (!tag && !/:[^/]+$/.test(name(r))) throw badRequest('ply pushes one tag at a time: give the tag');
  const credentials = registryAuth(r);
  const s = jsonStream(r);
  try {
    const res = await e.images.push(ref, { credentials, onProgress: (m) => s.write(progressLine(m)) });
    const t = res.reference.tag ?? '';
    s.write({ status: `${t}: digest: ${res.digest} size: ${res.size}` });
    s.write({ progressDetail: {}, aux: { Tag: t, Digest: res.digest, Size: res.size } });
  } catch (err) {
    if (!s.started()) throw err;
    s.write(streamError(err));
  }
  s.end();
}

async function tag(r: Request, e: Engine): Promise<void> {
  const repo = r.q('repo');
  if (!repo) throw badRequest('repository name must have at least one component');
  const t = r.q('tag');
  e.images.tag(name(r), t ? `${repo}:${t}` : repo);
  r.empty(201);
}

async function remove(r: Request, e: Engine): Promise<void> {
  r.json200(e.images.remove(name(r), { force: r.bool('force') }));
}

async function prune(r: Request, e: Engine): Promise<void> {
  const filters = r.filters() ?? {};
  // docker's CLI asks for dangling=true (image prune) or dangling=false (image prune -a).
  const dangling = filters.dangling;
  const values = Array.isArray(dangling) ? dangling : dangling ? Object.keys(dangling).filter((k) => dangling[k]) : [];
  const rest = Object.fromEntries(Object.entries(filters).filter(([k]) => k !== 'dangling'));
  const all = values.some((v) => ['false', '0'].includes(v));
  r.json200(e.images.prune({ all, filters: Object.keys(rest).length ? rest : undefined }));
}

async function search(): Promise<void> {
  throw badRequest('ply does not search registries');
}

async function save(r: Request, e: Engine): Promise<void> {
  const names = r.params[0] ? [name(r)] : r.query.getAll('names');
  if (names.length === 0) throw badRequest('no images to save: give names');
  const pending = await e.images.save(names);
  const out = r.stream(200, 'application/x-tar');
  await pending.writeTo(out);
}

async function load(r: Request, e: Engine): Promise<void> {
  const quiet = r.bool('quiet');
  const result = await e.images.load(r.bodyStream());
  const s = jsonStream(r);
  for (const x of result.renamed) s.write({ stream: `The image ${x.name} already exists, renaming the old one with ID ${x.oldId} to empty string\n` });
  for (const img of result.images) {
    if (img.RepoTags.length === 0) s.write({ stream: `Loaded image ID: ${img.Id}\n` });
    for (const n of img.RepoTags) s.write({ stream: `Loaded image: ${n}\n` });
  }
  void quiet;
  s.end();
}

/** A JSON object from a query parameter (buildargs, labels). */
function jsonParam(r: Request, key: string): Record<string, string> | undefined {
  const v = r.q(key);
  if (!v) return undefined;
  try {
    const j = JSON.parse(v) as Record<string, string | null>;
    if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error('not an object');
    return Object.fromEntries(Object.entries(j).filter(([, x]) => x !== null).map(([k, x]) => [k, String(x)]));
  } catch {
    throw badRequest(`invalid ${key}: ${v}`);
  }
}

/** A JSON array of strings from a query parameter (cachefrom). */
function jsonList(r: Request, key: string): string[] | undefined {
  const v = r.q(key);
  if (!v) return undefined;
  let j: unknown;
  try {
    j = JSON.parse(v);
  } catch {
    j = undefined;
  }
  if (j === null) return undefined;
  if (!Array.isArray(j) || j.some((x) => typeof x !== 'string')) throw badRequest(`invalid ${key}: ${v}`);
  return (j as string[]).filter(Boolean);
}

async function build(r: Request, e: Engine): Promise<void> {
  if (r.q('version') === '2') throw badRequest('ply builds with the classic builder only: set DOCKER_BUILDKIT=0');
  for (const k of ['extrahosts', 'squash', 'cpusetcpus', 'cpusetmems', 'cpushares', 'cpuquota', 'cpuperiod', 'memory', 'memswap', 'shmsize', 'ulimits', 'outputs']) {
    const v = r.q(k);
    if (v && v !== '0' && v !== '[]' && v !== 'null' && v !== '{}' && v !== 'false') throw badRequest(`ply does not support the build option ${k} yet`);
  }
  const platform = r.q('platform');
  if (platform && !/^linux(\/|$)/.test(platform)) throw badRequest(`platform ${platform} is not supported`);
  const remote = r.q('remote') || undefined;
  const quiet = r.bool('q');
  const s = jsonStream(r);
  // The classic builder's lines, each as {"stream": …}: what the docker CLI prints as they come.
  const text = new WritableStream({
    write(chunk: Buffer, _enc, cb) {
      if (!quiet) s.write({ stream: chunk.toString('utf8') });
      cb();
    },
  });
  const { BuildError, ClassicLogger } = await import('../engine/build.js');
  try {
    const result = await e.builder.build({
      ...(remote ? { remote } : { context: r.bodyStream() }),
      dockerfile: r.q('dockerfile') || undefined,
      ...(platform ? { platform } : {}),
      tags: r.query.getAll('t').filter(Boolean),
      buildArgs: jsonParam(r, 'buildargs'),
      target: r.q('target') || undefined,
      noCache: r.bool('nocache'),
      pull: r.bool('pull'),
      labels: jsonParam(r, 'labels'),
      network: r.q('networkmode') || undefined,
      cacheFromImages: jsonList(r, 'cachefrom'),
      logger: new ClassicLogger(text),
      warn: (line) => s.write({ stream: `${line}\n` }),
    });
    const id = result.image.id;
    s.write({ aux: { ID: id } });
    if (quiet) s.write({ stream: `${id}\n` });
    else {
      s.write({ stream: `Successfully built ${id.slice(7, 19)}\n` });
      for (const t of result.tags) s.write({ stream: `Successfully tagged ${t}\n` });
    }
  } catch (err) {
    if (!(err instanceof BuildError) && !(err instanceof PlyError)) throw err;
    if (err instanceof BuildError && quiet && err.tail.length) s.write({ stream: `${err.tail.join('\n')}\n` });
    const m = err.message;
    s.write({ errorDetail: { ...(err instanceof BuildError ? { code: err.runCode ?? err.exitCode } : {}), message: m }, error: m });
  }
  s.end();
}

async function buildPrune(r: Request, e: Engine): Promise<void> {
  const filters = r.filters();
  if (filters && Object.keys(filters).length) throw badRequest('ply does not support build cache prune filters yet');
  r.json200(await e.builder.prune({ all: r.bool('all') }));
}

async function auth(r: Request): Promise<void> {
  const b = (await r.json<{ username?: string; password?: string; serveraddress?: string; identitytoken?: string }>(BODIES.auth)) ?? {};
  if (!b.username && !b.identitytoken) throw badRequest('username and password (or an identity token) are required');
  const server = b.serveraddress || undefined;
  try {
    const res = await checkLogin(server, { username: b.username ?? '', password: b.password ?? '', ...(b.identitytoken ? { identityToken: b.identitytoken } : {}) });
    r.json200({ Status: 'Login Succeeded', IdentityToken: res.identityToken ?? '' });
  } catch (err) {
    if (err instanceof InvalidArgumentError) throw err;
    // dockerd answers a refused login with 401 and the registry's words.
    throw new ApiError(401, (err as Error).message);
  }
}
