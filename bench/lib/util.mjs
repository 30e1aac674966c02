// Process helpers for the benchmark: untimed commands, timed commands (wall clock + GNU time's peak RSS and CPU),
// statistics, free ports and HTTP readiness checks.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const log = (...a) => process.stderr.write(`bench: ${a.join(' ')}\n`);

/** The last non-empty line of a command's output: what a failed step reports. */
export function lastLine(text) {
  const lines = String(text ?? '').split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.length ? lines[lines.length - 1] : '';
}

export class StepError extends Error {}

/**
 * Runs a command to completion (untimed set-up or clean-up). Throws StepError with the command and the last line
 * of its stderr when it exits non-zero, unless `allowFail`.
 */
export function sh(argv, opts = {}) {
  const r = spawnSync(argv[0], argv.slice(1), {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    input: opts.input,
    stdio: [opts.stdin ?? (opts.input !== undefined ? 'pipe' : 'ignore'), 'pipe', 'pipe'],
    maxBuffer: 512 << 20,
    timeout: (opts.timeout ?? 900) * 1000,
    killSignal: 'SIGKILL',
  });
  const stdout = r.stdout?.toString() ?? '';
  const stderr = r.stderr?.toString() ?? '';
  if ((r.status !== 0 || r.error) && !opts.allowFail) {
    const why = r.error ? r.error.message : lastLine(stderr) || lastLine(stdout) || `exit ${r.status}`;
    throw new StepError(`${path.basename(argv[0])} ${argv.slice(1).join(' ').slice(0, 160)}: ${why}`);
  }
  return { code: r.status ?? -1, stdout, stderr };
}

/** `sh` through bash -c (pipes, redirections). */
export const bash = (script, opts = {}) => sh(['bash', '-c', script], opts);

let timeSeq = 0;
/**
 * Runs one timed command: wall time from spawn to exit measured here (hrtime; includes ~1 ms of fork/exec of
 * /usr/bin/time), peak RSS (GNU time %M: ru_maxrss of the largest process the CLI waited for) and user+sys CPU of
 * the CLI and its reaped children. `timeout` kills a hung command (and fails the sample).
 */
export function timed(argv, opts = {}) {
  const out = path.join(opts.scratch ?? '/dev/shm', `.bench-time-${process.pid}-${timeSeq++}`);
  const timeout = opts.timeout ?? 600;
  let stdin = 'ignore';
  let fd;
  if (opts.stdinFile) stdin = fd = fs.openSync(opts.stdinFile, 'r');
  const full = ['/usr/bin/time', '-f', '%M %U %S', '-o', out, 'timeout', '-k', '5', String(timeout), ...argv];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(full[0], full.slice(1), {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: [stdin, 'pipe', 'pipe'],
    maxBuffer: 256 << 20,
  });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (fd !== undefined) fs.closeSync(fd);
  let rssKB = null;
  let cpu = null;
  try {
    const line = lastLine(fs.readFileSync(out, 'utf8'));
    const [m, u, s] = line.split(' ').map(Number);
    rssKB = m;
    cpu = u + s;
    fs.rmSync(out, { force: true });
  } catch {}
  const stdout = r.stdout?.toString() ?? '';
  const stderr = r.stderr?.toString() ?? '';
  if (r.status !== 0) {
    const why = r.status === 124 ? `timed out after ${timeout}s` : lastLine(stderr) || lastLine(stdout) || `exit ${r.status}`;
    throw new StepError(`${argv.map((a) => path.basename(a)).slice(0, 3).join(' ')}…: ${why}`);
  }
  return { secs, rssKB, cpu, stdout, stderr };
}

export function median(xs) {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until `url` answers (any HTTP status), or throws after `secs`. */
export async function waitHttp(url, secs = 20, alive = () => true) {
  const end = Date.now() + secs * 1000;
  while (Date.now() < end) {
    if (!alive()) throw new StepError(`server for ${url} exited`);
    try {
      await fetch(url, { signal: AbortSignal.timeout(1000) });
      return;
    } catch {}
    await sleep(50);
  }
  throw new StepError(`${url} did not answer within ${secs}s`);
}

/** Starts a background server; its stdout and stderr go to `logFile`. */
export function startServer(argv, { env, logFile, cwd } = {}) {
  const fd = fs.openSync(logFile, 'a');
  const child = spawn(argv[0], argv.slice(1), { env: env ?? process.env, cwd, stdio: ['ignore', fd, fd], detached: true });
  fs.closeSync(fd);
  let exited = false;
  child.on('exit', () => (exited = true));
  return {
    child,
    alive: () => !exited,
    async stop() {
      if (exited) return;
      const done = new Promise((r) => child.once('exit', r));
      try { process.kill(child.pid, 'SIGTERM'); } catch {}
      const t = setTimeout(() => { try { process.kill(child.pid, 'SIGKILL'); } catch {} }, 5000);
      await done;
      clearTimeout(t);
    },
  };
}

/** Runs async tasks with at most `n` in flight. */
export async function parallel(items, n, fn) {
  let i = 0;
  const workers = Array.from({ length: Math.min(n, items.length) }, async () => {
    while (i < items.length) {
      const k = i++;
      await fn(items[k], k);
    }
  });
  await Promise.all(workers);
}

/** Async variant of sh for parallel set-up. */
export function shAsync(argv, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stdout.resume();
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new StepError(`${path.basename(argv[0])} ${argv.slice(1, 3).join(' ')}: ${lastLine(err) || `exit ${code}`}`))));
  });
}

export const MiB = 1 << 20;
export const fmtS = (s) => (s == null ? '—' : s < 0.1 ? `${(s * 1000).toFixed(1)} ms` : `${s.toFixed(s < 10 ? 3 : 1)} s`);
export const fmtMB = (kb) => (kb == null ? '—' : `${(kb / 1024).toFixed(0)} MB`);

/** Total size of the regular files below `dir` (bytes). */
export function treeBytes(dir) {
  let n = 0;
  const walk = (d) => {
    let ents;
    try { ents = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of ents) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) n += fs.statSync(p).size;
    }
  };
  walk(dir);
  return n;
}
