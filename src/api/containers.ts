// Container routes (moby's container router): create, start, stop, restart, kill, wait, attach, resize, logs,
// list, inspect, top, changes, export, archive, pause, unpause, rename, prune, remove, commit; exec instances.
import { PassThrough, Writable } from 'node:stream';
import type { AttachSession, Engine } from '../engine.js';
import { ConflictError, DetachKeys, NotFoundError, parseDetachKeys } from '../engine.js';
import { BODIES } from './bodies.js';
import { commitConfig, createOptions, resources, restartPolicy } from './create.js';
import { badRequest, compareVersions, frame, type Hijacked, type Request } from './http.js';
import { route, type Route } from './router.js';

export function containerRoutes(): Route[] {
  return [
    route('GET', '/containers/json', list),
    route('POST', '/containers/create', create),
    route('POST', '/containers/prune', prune),
    route('GET', '/containers/{name}/json', inspect),
    route('GET', '/containers/{name}/top', top),
    route('GET', '/containers/{name}/stats', stats),
    route('GET', '/containers/{name}/logs', logs),
    route('GET', '/containers/{name}/changes', changes),
    route('GET', '/containers/{name}/export', exportContainer),
    route('HEAD', '/containers/{name}/archive', archiveHead),
    route('GET', '/containers/{name}/archive', archiveGet),
    route('PUT', '/containers/{name}/archive', archivePut),
    route('POST', '/containers/{name}/start', start),
    route('POST', '/containers/{name}/stop', stop),
    route('POST', '/containers/{name}/restart', restart),
    route('POST', '/containers/{name}/kill', kill),
    route('POST', '/containers/{name}/wait', wait),
    route('POST', '/containers/{name}/resize', resize),
    route('POST', '/containers/{name}/attach', attach),
    route('POST', '/containers/{name}/pause', pause),
    route('POST', '/containers/{name}/unpause', unpause),
    route('POST', '/containers/{name}/rename', rename),
    route('POST', '/containers/{name}/update', update),
    route('POST', '/containers/{name}/exec', execCreate),
    route('DELETE', '/containers/{name}', remove),
    route('POST', '/exec/{id}/start', execStart),
    route('POST', '/exec/{id}/resize', execResize),
    route('GET', '/exec/{id}/json', execInspect),
    route('POST', '/commit', commit),
  ];
}

const name = (r: Request) => r.params[0]!;

async function list(r: Request, e: Engine): Promise<void> {
  r.json200(e.containers.list({ all: r.bool('all'), limit: nonNegative(r.int('limit')), size: r.bool('size'), filters: r.filters() }));
}

/** docker's limit: 0 or less means none. */
const nonNegative = (n: number | undefined) => (n !== undefined && n > 0 ? n : undefined);

async function create(r: Request, e: Engine): Promise<void> {
  const body = await r.json<Record<string, unknown>>(BODIES.containerCreate);
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('config cannot be empty in order to create a container');
  const platform = r.q('platform');
  if (platform && !/^linux(\/|$)/.test(platform)) throw badRequest(`image platform ${platform} is not supported`);
  const opts = createOptions(body, r.q('name'));
  // dockerd does not pull on create: the client pulls (POST /images/create) when it gets this 404, then retries.
  if (!e.images.lookup(opts.image)) throw new NotFoundError(`No such image: ${opts.image}`);
  r.json200(await e.containers.create(opts), 201);
}

async function prune(r: Request, e: Engine): Promise<void> {
  r.json200(e.containers.prune({ filters: r.filters() }));
}

async function inspect(r: Request, e: Engine): Promise<void> {
  r.json200(e.containers.inspect(name(r), { size: r.bool('size') }));
}

async function top(r: Request, e: Engine): Promise<void> {
  const args = (r.q('ps_args') ?? '').split(/\s+/).filter(Boolean);
  r.json200(e.containers.top(name(r), args));
}

async function logs(r: Request, e: Engine): Promise<void> {
  const stdout = r.bool('stdout');
  const stderr = r.bool('stderr');
  if (!stdout && !stderr) throw badRequest('Bad parameters: you must choose at least one stream');
  const c = e.containers.inspect(name(r));
  const tty = Boolean((c.Config as { Tty?: boolean }).Tty);
  const signal = r.closedSignal();
  // Arguments are checked (and the container found) before the first byte: errors are still docker's JSON.
  const entries = await e.containers.logs(name(r), {
    follow: r.bool('follow'),
    tail: r.q('tail') || undefined,
    since: r.q('since') || undefined,
    until: r.q('until') || undefined,
    stdout,
    stderr,
    signal,
  });
  const multiplexed = !tty;
  const out = r.stream(200, multiplexed && compareVersions(r.version, '1.42') >= 0 ? 'application/vnd.docker.multiplexed-stream' : 'application/vnd.docker.raw-stream');
  const timestamps = r.bool('timestamps');
  for await (const entry of entries) {
    if (signal.aborted) break;
    const text = Buffer.from(timestamps ? `${entry.time} ${entry.log}` : entry.log);
    const ok = out.write(multiplexed ? frame(entry.stream === 'stderr' ? 2 : 1, text) : text);
    if (!ok) await drained(out, signal);
  }
  out.end();
}

async function changes(r: Request, e: Engine): Promise<void> {
  const list = await e.containers.changes(name(r));
  r.json200(list.length ? list : null);
}

async function exportContainer(r: Request, e: Engine): Promise<void> {
  e.containers.inspect(name(r));
  const out = r.stream(200, 'application/x-tar');
  await e.containers.export(name(r), out);
}

function archivePath(r: Request): string {
  const p = r.q('path');
  if (!p) throw badRequest('path is required');
  return p;
}

const statHeader = (st: unknown) => Buffer.from(JSON.stringify(st)).toString('base64');

async function archiveHead(r: Request, e: Engine): Promise<void> {
  const st = await e.containers.archiveStat(name(r), archivePath(r));
  r.raw(200, { 'X-Docker-Container-Path-Stat': statHeader(st), 'Content-Type': 'application/x-tar' });
}

async function archiveGet(r: Request, e: Engine): Promise<void> {
  const p = archivePath(r);
  // The stat goes in a header, before the tar: taken first (errors answer as JSON).
  const st = await e.containers.archiveStat(name(r), p);
  const out = r.stream(200, 'application/x-tar', { 'X-Docker-Container-Path-Stat': statHeader(st) });
  await e.containers.archiveGet(name(r), p, out);
}

async function archivePut(r: Request, e: Engine): Promise<void> {
  const p = archivePath(r);
  if (r.bool('copyUIDGID')) throw badRequest('ply does not support copyUIDGID yet');
  await e.containers.archivePut(name(r), p, r.bodyStream());
  r.empty(200);
}

async function start(r: Request, e: Engine): Promise<void> {
  const body = (await r.body()).toString('utf8').trim();
  if (body !== '' && body !== '{}' && body !== 'null') throw badRequest('starting container with non-empty request body was deprecated since API v1.22 and removed in v1.24');
  if (r.q('checkpoint')) throw badRequest('ply does not support checkpoints');
  const started = await e.containers.start(name(r));
  r.empty(started ? 204 : 304);
}

/** `t` (seconds; -1 waits for ever) and `signal`, as stop and restart take them. */
function stopOptions(r: Request): { timeout?: number; signal?: string } {
  return { timeout: r.int('t'), signal: r.q('signal') || undefined };
}

async function stop(r: Request, e: Engine): Promise<void> {
  const c = e.containers.get(name(r));
  if (!e.containers.isRunning(c)) {
    r.empty(304);
    return;
  }
  await e.containers.stop(name(r), stopOptions(r));
  r.empty(204);
}

async function restart(r: Request, e: Engine): Promise<void> {
  await e.containers.restart(name(r), stopOptions(r));
  r.empty(204);
}

async function kill(r: Request, e: Engine): Promise<void> {
  const c = e.containers.get(name(r));
  if (!e.containers.isRunning(c)) throw new ConflictError(`Container ${c.id} is not running`);
  e.containers.kill(name(r), r.q('signal') || 'KILL');
  r.empty(204);
}

async function wait(r: Request, e: Engine): Promise<void> {
  const condition = r.q('condition') || 'not-running';
  if (!['not-running', 'next-exit', 'removed'].includes(condition)) throw badRequest(`invalid condition: "${condition}"`);
  e.containers.get(name(r));
  const signal = r.closedSignal();
  const result = e.containers.wait(name(r), { condition: condition as 'not-running', signal });
  // dockerd sends the status at once and the body when the container is done (clients start it meanwhile).
  const out = r.stream(200, 'application/json');
  try {
    const w = await result;
    out.end(`${JSON.stringify({ Error: w.Error ?? null, StatusCode: w.StatusCode })}\n`);
  } catch (err) {
    if (signal.aborted) return;
    out.end(`${JSON.stringify({ Error: { Message: (err as Error).message }, StatusCode: -1 })}\n`);
  }
}

function size(r: Request): [number, number] {
  const h = r.int('h');
  const w = r.int('w');
  if (h === undefined || w === undefined || h < 0 || w < 0 || h > 65535 || w > 65535) throw badRequest('invalid height or width');
  return [h, w];
}

async function resize(r: Request, e: Engine): Promise<void> {
  const [h, w] = size(r);
  await e.containers.resize(name(r), h, w);
  r.empty(200);
}

async function attach(r: Request, e: Engine): Promise<void> {
  const signal = r.closedSignal();
  const detachKeys = parseDetachKeys(r.q('detachKeys') ?? '');
  const session = await e.containers.attach(name(r), { logs: r.bool('logs'), stream: r.bool('stream'), signal });
  const io = r.hijack(session.tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream');
  await pump(session, io, { stdin: r.bool('stdin'), stdout: r.bool('stdout'), stderr: r.bool('stderr'), detachKeys });
}

/**
 * Copies a session's output to the hijacked connection (framed unless it is a TTY) and the client's input to its
 * stdin until the container's output ends, the client leaves, or it types the detach keys.
 */
async function pump(session: AttachSession, io: Hijacked, o: { stdin: boolean; stdout: boolean; stderr: boolean; detachKeys: Buffer }): Promise<void> {
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    session.close();
    io.output.end();
  };
  io.output.on('close', () => {
    done = true;
    session.close();
  });
  io.output.on('error', () => undefined);
  if (o.stdin) {
    void (async () => {
      if (!(await session.connected)) return;
      // Detach keys end the attachment and leave the container running (docker's ctrl-p ctrl-q, with a TTY).
      const detach = session.tty ? new DetachKeys(o.detachKeys) : undefined;
      try {
        for await (const chunk of io.input) {
          if (done) return;
          const r = detach ? detach.push(chunk) : { data: chunk, detached: false };
          if (r.data.length) session.stdin(r.data);
          if (r.detached) {
            finish();
            return;
          }
        }
      } catch {
        // the client went away
      }
      if (!done) session.closeStdin();
    })();
  }
  try {
    for await (const { stream, data } of session.output) {
      if (done) break;
      if (stream === 'stdout' ? !o.stdout : !o.stderr) continue;
      const ok = io.output.write(session.tty ? data : frame(stream === 'stderr' ? 2 : 1, data));
      if (!ok) await new Promise((r) => io.output.once('drain', r).once('close', r));
    }
  } finally {
    finish();
  }
}

async function pause(r: Request, e: Engine): Promise<void> {
  e.containers.pause(name(r));
  r.empty(204);
}

async function unpause(r: Request, e: Engine): Promise<void> {
  e.containers.unpause(name(r));
  r.empty(204);
}

async function rename(r: Request, e: Engine): Promise<void> {
  const to = r.q('name');
  if (!to) throw badRequest('Neither old nor new names may be empty');
  e.containers.rename(name(r), to);
  r.empty(204);
}

/** docker update: resources and/or the restart policy (fields ply does not apply are refused when set). */
async function update(r: Request, e: Engine): Promise<void> {
  const ref = name(r);
  e.containers.get(ref);
  const body = (await r.json<Record<string, unknown>>(BODIES.containerUpdate)) ?? {};
  const seen = new Set<string>(['RestartPolicy']);
  const res = resources(body, seen);
  for (const [k, v] of Object.entries(body)) {
    if (!seen.has(k) && v !== null && v !== undefined && v !== 0 && v !== '' && !(Array.isArray(v) && v.length === 0)) throw badRequest(`ply does not support updating ${k} yet`);
  }
  const rp = body.RestartPolicy as { Name?: string; MaximumRetryCount?: number } | null | undefined;
  r.json200(e.containers.update(ref, { resources: res, restartPolicy: rp?.Name ? restartPolicy(rp) : undefined }));
}

/**
 * docker stats: one JSON object per second while `stream` (default), or one (`stream=false`; `one-shot` skips
 * the second's wait for a previous CPU sample).
 */
async function stats(r: Request, e: Engine): Promise<void> {
  const ref = name(r);
  e.containers.get(ref);
  const stream = r.bool('stream', true);
  const signal = r.closedSignal();
  const frames = e.containers.stats(ref, { stream, oneShot: r.bool('one-shot'), signal });
  if (!stream) {
    for await (const s of frames) return r.json200(s);
    return;
  }
  const out = r.stream(200, 'application/json');
  for await (const s of frames) {
    if (signal.aborted) break;
    if (!out.write(`${JSON.stringify(s)}\n`)) await drained(out, signal);
  }
  out.end();
}

async function remove(r: Request, e: Engine): Promise<void> {
  if (r.bool('link')) throw badRequest('ply does not support links');
  await e.containers.remove(name(r), { force: r.bool('force'), volumes: r.bool('v') });
  r.empty(204);
}

async function commit(r: Request, e: Engine): Promise<void> {
  const container = r.q('container');
  if (!container) throw badRequest('container is required');
  const config = commitConfig(await r.json<Record<string, unknown>>(BODIES.commit));
  const repo = r.q('repo');
  const tag = r.q('tag');
  const rec = await e.containers.commit(container, {
    author: r.q('author'),
    message: r.q('comment'),
    config,
    changes: r.query.getAll('changes').flatMap((c) => c.split('\n')).filter(Boolean),
    pause: r.q('pause') === undefined ? true : r.bool('pause'),
    reference: repo ? `${repo}${tag ? `:${tag}` : ''}` : undefined,
  });
  r.json200({ Id: rec.id }, 201);
}

async function execCreate(r: Request, e: Engine): Promise<void> {
  const b = (await r.json<Record<string, unknown>>(BODIES.execCreate)) ?? {};
  const cmd = b.Cmd;
  if (!Array.isArray(cmd) || !cmd.every((x) => typeof x === 'string')) throw badRequest('No exec command specified');
  if (b.DetachKeys) parseDetachKeys(String(b.DetachKeys));
  const size = b.ConsoleSize as number[] | null | undefined;
  const res = e.containers.execCreate(name(r), {
    cmd: cmd as string[],
    tty: Boolean(b.Tty),
    interactive: Boolean(b.AttachStdin),
    env: Array.isArray(b.Env) ? (b.Env as string[]).filter((x) => typeof x === 'string' && x.includes('=')) : undefined,
    user: typeof b.User === 'string' && b.User ? b.User : undefined,
    workdir: typeof b.WorkingDir === 'string' && b.WorkingDir ? b.WorkingDir : undefined,
    privileged: Boolean(b.Privileged),
    ...(Array.isArray(size) && size.length === 2 && size[0]! > 0 && size[1]! > 0 ? { consoleSize: [size[0]!, size[1]!] as [number, number] } : {}),
    attachStdout: b.AttachStdout === undefined ? true : Boolean(b.AttachStdout),
    attachStderr: b.AttachStderr === undefined ? true : Boolean(b.AttachStderr),
  });
  r.json200(res, 201);
}

async function execStart(r: Request, e: Engine): Promise<void> {
  const id = name(r);
  const b = (await r.json<{ Detach?: boolean; Tty?: boolean; ConsoleSize?: number[] | null }>(BODIES.execStart)) ?? {};
  const ins = e.containers.execInspect(id);
  if (ins.Running || ins.ExitCode !== null) throw new ConflictError(`exec ${id} has already run`);
  if (b.Detach) {
    await e.containers.execStart(id, { detach: true });
    r.empty(200);
    return;
  }
  const tty = ins.ProcessConfig.tty;
  const io = r.hijack(tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream');
  io.output.on('error', () => undefined);
  const stdin = new PassThrough();
  // Output waits for the client to take it (a slow reader slows the process, as a pipe would).
  const sink = (stream: 1 | 2) =>
    new Writable({
      write(d: Buffer, _enc, cb) {
        if (io.output.writableEnded || io.output.destroyed) return cb();
        io.output.write(tty ? d : frame(stream, d), () => cb());
      },
    });
  const stdout = sink(1);
  const stderr = sink(2);
  if (ins.OpenStdin) {
    void (async () => {
      try {
        for await (const chunk of io.input) if (!stdin.write(chunk)) await new Promise((res) => stdin.once('drain', res));
      } catch {
        // the client went away
      }
      stdin.end();
    })();
  }
  try {
    await e.containers.execStart(id, {
      io: {
        stdin: ins.OpenStdin ? stdin : undefined,
        stdout,
        stderr,
        ...(b.ConsoleSize && b.ConsoleSize.length === 2 && b.ConsoleSize[0]! > 0 ? { consoleSize: [b.ConsoleSize[0]!, b.ConsoleSize[1]!] as [number, number] } : {}),
      },
    });
  } catch (err) {
    // The stream has started: the failure goes to the client as output (docker's CLI prints it), then the end.
    const msg = Buffer.from(`${(err as Error).message}\r\n`);
    if (!io.output.destroyed) io.output.write(tty ? msg : frame(3, msg));
  } finally {
    io.output.end();
  }
}

async function execResize(r: Request, e: Engine): Promise<void> {
  const [h, w] = size(r);
  e.containers.execResize(name(r), h, w);
  r.empty(200);
}

async function execInspect(r: Request, e: Engine): Promise<void> {
  r.json200(e.containers.execInspect(name(r)));
}

/** Waits for a writable to drain, or for the client to go away. */
function drained(out: NodeJS.WritableStream, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    out.once('drain', () => resolve());
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}

