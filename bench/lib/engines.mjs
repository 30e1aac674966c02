// The engines under test, each with its own store on /dev/shm: ply (a snapshot of the build), podman (runc,
// overlay or vfs), Debian's dockerd (its own data root and socket), skopeo (podman's store), bare runc, and the
// registries (Debian's docker-registry = CNCF distribution 2.8, and `ply registry serve`).
import fs from 'node:fs';
import path from 'node:path';
import { bash, freePort, lastLine, log, sh, sleep, startServer, StepError, waitHttp } from './util.mjs';

/** Images kept when an op needs the Debian layer absent from a store. */
const KEEP = /(^|\/)bench\/(busybox|many):/;

/** A docker-compatible CLI (ply, podman, docker) with its own store. */
export class Engine {
  constructor(name, argv, env, info = {}) {
    this.name = name;
    this.argv = argv;
    this.env = env;
    this.info = info;
  }
  cmd(...args) {
    return [...this.argv, ...args];
  }
  sh(args, opts = {}) {
    return sh(this.cmd(...args), { env: this.env, ...opts });
  }
  has(ref) {
    return this.sh(['image', 'inspect', ref], { allowFail: true }).code === 0;
  }
  rmi(...refs) {
    this.sh(['rmi', '-f', ...refs], { allowFail: true });
  }
  /** `REPO:TAG ID` per image, as the CLI lists them. */
  images() {
    const out = this.sh(['images', '-a', '--no-trunc', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']).stdout;
    return out.split('\n').filter(Boolean).map((l) => {
      const [ref, id] = l.trim().split(/\s+/);
      return { ref, id };
    });
  }
  containers() {
    return this.sh(['ps', '-a', '-q']).stdout.split('\n').filter(Boolean);
  }
  removeContainers() {
    const ids = this.containers();
    if (ids.length) this.sh(['rm', '-f', ...ids], { allowFail: true });
  }
  /** Removes every container and every image but the busybox ones: no store holds the Debian layer after this. */
  clearImages() {
    this.removeContainers();
    const imgs = this.images();
    const keepIds = new Set(imgs.filter((i) => KEEP.test(i.ref)).map((i) => i.id));
    const drop = [...new Set(imgs.filter((i) => !keepIds.has(i.id)).map((i) => i.id))];
    if (drop.length) this.sh(['rmi', '-f', ...drop], { allowFail: true });
    const left = this.images().filter((i) => !keepIds.has(i.id));
    if (left.length) throw new StepError(`${this.name}: images left after clearing: ${left.map((i) => i.ref).join(', ')}`);
  }
  /** The Debian base image imported from the same tar on every side (untimed). */
  ensureImported(ref, tar) {
    if (!this.has(ref)) this.sh(['import', tar, ref]);
  }
}

/**
 * ply, run from a snapshot of its build (bench/.cache/ply) so concurrent rebuilds of dist/ do not change it mid-run.
 * PLY_SERVICE=0: this engine (its timed side and every untimed set-up command) always takes the direct path (bin/ply
 * → ply-client → `node bin/ply.cjs`), even while `ply system service` runs for its store; the "ply (service)" side
 * uses `plyService(...).env` instead.
 */
export function plyEngine(work, plyBin) {
  const root = path.join(work, 'ply');
  fs.mkdirSync(root, { recursive: true });
  const env = { ...process.env, PLY_ROOT: root, DOCKER_CONFIG: path.join(work, 'ply-docker-config'), PLY_SERVICE: '0' };
  delete env.NODE_OPTIONS;
  delete env.PLY_SERVICE_WAIT_MS;
  return new Engine('ply', [plyBin], env, { root });
}

/** The JS launcher to run under `node` (e.g. `node --cpu-prof`): bin/ply is a sh script that execs the native
 * client, so use bin/ply.cjs next to it when there is one (an older ply's bin/ply was the Node script itself). */
export function plyNodeScript(plyBin) {
  const cjs = path.join(path.dirname(plyBin), 'ply.cjs');
  return fs.existsSync(cjs) ? cjs : plyBin;
}

// System calls a warm worker's main thread blocks in while it waits for a client (unixAccept: poll, then accept4).
const WAITING_SYSCALLS = { x64: [7, 271, 43, 288], arm64: [73, 202, 242] }[process.arch] ?? null;

/**
 * `ply system service` for the ply engine's store (log in the work dir), started through the same bin/ply with
 * the engine's env. Resolves once $PLY_ROOT/service.sock exists, its workers wait, and a command sent through it
 * (`ply info`) reports it was served by a worker. `ready()` waits (untimed) until `workers` warm workers wait
 * on the socket: the children of the service whose main thread is blocked in poll/accept (warm-up done, see
 * src/service/worker.ts), read from /proc; without a known syscall table for this arch it sleeps 0.4 s instead.
 */
export async function startPlyService(ply, work, { workers = 2 } = {}) {
  const logFile = path.join(work, 'ply-service.log');
  const sock = path.join(ply.info.root, 'service.sock');
  const env = { ...ply.env };
  delete env.PLY_SERVICE;
  const srv = startServer([...ply.argv, 'system', 'service', '--workers', String(workers)], { logFile, env: ply.env });
  const pid = srv.child.pid;
  const why = () => lastLine(fs.readFileSync(logFile, 'utf8')) || 'no output';
  const waiting = () => {
    let n = 0;
    for (const d of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== pid) continue;
        const nr = Number(fs.readFileSync(`/proc/${d}/syscall`, 'utf8').split(' ')[0]);
        if (WAITING_SYSCALLS.includes(nr)) n++;
      } catch {}
    }
    return n;
  };
  const ready = async (timeoutMs = 5000) => {
    if (!srv.alive()) throw new StepError(`ply system service exited: ${why()}`);
    if (!WAITING_SYSCALLS) {
      await sleep(400);
      return true;
    }
    const end = Date.now() + timeoutMs;
    while (waiting() < workers) {
      if (!srv.alive()) throw new StepError(`ply system service exited: ${why()}`);
      if (Date.now() > end) return false;
      await sleep(10);
    }
    return true;
  };
  const fail = async (msg) => {
    await srv.stop();
    throw new StepError(msg);
  };
  const end = Date.now() + 20000;
  while (!fs.existsSync(sock)) {
    if (!srv.alive()) throw new StepError(`ply system service exited: ${why()}`);
    if (Date.now() > end) await fail(`ply system service: no ${sock} after 20 s: ${why()}`);
    await sleep(50);
  }
  if (!(await ready(20000))) await fail(`ply system service: its ${workers} workers were not waiting after 20 s: ${why()}`);
  const served = sh([...ply.argv, 'info', '--format', '{{.ServedByService}}'], { env, allowFail: true });
  if (served.stdout.trim() !== 'true') await fail(`ply system service: \`ply info\` through it was not served by a worker (${lastLine(served.stderr) || served.stdout.trim() || `exit ${served.code}`})`);
  log(`ply system service: pid ${pid}, ${workers} warm workers on ${sock}`);
  return { pid, sock, logFile, workers, env, ready, alive: srv.alive, stop: srv.stop };
}

/** podman with CONTAINERS_CONF (runc, ulimits these machines allow, host network) and its own storage. */
export function podmanEngine(work) {
  const dir = path.join(work, 'podman');
  fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  const conf = path.join(dir, 'containers.conf');
  fs.writeFileSync(
    conf,
    '[engine]\nruntime = "runc"\n' +
      `tmp_dir = "${dir}/tmp"\n` +
      '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\nnetns="host"\n',
  );
  const tryDriver = (driver) => {
    const storage = path.join(dir, `storage-${driver}.conf`);
    fs.writeFileSync(storage, `[storage]\ndriver = "${driver}"\ngraphroot = "${dir}/root-${driver}"\nrunroot = "${dir}/run-${driver}"\n`);
    const env = { ...process.env, CONTAINERS_CONF: conf, CONTAINERS_STORAGE_CONF: storage };
    return new Engine('podman', ['podman'], env, { driver, graphroot: `${dir}/root-${driver}`, runroot: `${dir}/run-${driver}` });
  };
  return tryDriver;
}

/** Picks overlay when a container runs on it, else vfs. `probe(engine)` throws when the driver fails. */
export function pickPodman(work, probe) {
  const make = podmanEngine(work);
  const notes = [];
  for (const driver of ['overlay', 'vfs']) {
    const e = make(driver);
    try {
      probe(e);
      e.info.notes = notes;
      return e;
    } catch (err) {
      notes.push(`podman ${driver} driver failed: ${err.message}`);
      log(`podman: ${driver} failed (${err.message}), trying the next driver`);
    }
  }
  throw new StepError(notes.join('; '));
}

/** skopeo reading and writing podman's store. */
export function skopeoFor(podman) {
  const { driver, graphroot, runroot } = podman.info;
  return {
    env: podman.env,
    storage: (ref) => `containers-storage:[${driver}@${graphroot}+${runroot}]${ref}`,
    argv: (...a) => ['skopeo', ...a],
  };
}

/** Debian's dockerd as root, its own data root, exec root and socket in the work dir; no iptables, no bridge. */
export async function startDocker(work) {
  const dir = path.join(work, 'docker');
  fs.mkdirSync(dir, { recursive: true });
  const sock = path.join(dir, 'docker.sock');
  const dockerd = ['/usr/sbin/dockerd', '/usr/bin/dockerd'].find((p) => fs.existsSync(p));
  const cli = ['/usr/bin/docker', '/usr/local/bin/docker'].find((p) => fs.existsSync(p));
  if (!dockerd || !cli) throw new StepError('dockerd or the docker CLI is not installed');
  const logFile = path.join(dir, 'dockerd.log');
  const srv = startServer(
    [dockerd, '--iptables=false', '--bridge=none', '--data-root', path.join(dir, 'data'), '-H', `unix://${sock}`,
      '--exec-root', path.join(dir, 'exec'), '--pidfile', path.join(dir, 'pid'),
      // Registries behind the shaped link (bench/lib/link.mjs) speak plain HTTP on a private address.
      '--insecure-registry', '10.214.0.0/16'],
    { logFile },
  );
  const env = { ...process.env, DOCKER_HOST: `unix://${sock}`, DOCKER_CONFIG: path.join(dir, 'config'), DOCKER_BUILDKIT: '0' };
  const end = Date.now() + 40000;
  for (;;) {
    if (!srv.alive()) throw new StepError(`dockerd exited: ${lastLine(fs.readFileSync(logFile, 'utf8'))}`);
    if (sh([cli, 'version'], { env, allowFail: true }).code === 0) break;
    if (Date.now() > end) {
      await srv.stop();
      throw new StepError(`dockerd did not answer in 40 s: ${lastLine(fs.readFileSync(logFile, 'utf8'))}`);
    }
    await sleep(200);
  }
  const driver = sh([cli, 'info', '--format', '{{.Driver}}'], { env }).stdout.trim();
  const version = sh([cli, 'version', '--format', '{{.Server.Version}} (client {{.Client.Version}})'], { env }).stdout.trim();
  const engine = new Engine('docker', [cli], env, { driver, version, cli, dataRoot: path.join(dir, 'data') });
  engine.stop = async () => {
    try { engine.removeContainers(); } catch {}
    await srv.stop();
    bash(`grep -o ' ${dir}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l`, { allowFail: true });
  };
  return engine;
}

/** Debian's docker-registry (distribution 2.8.2), filesystem storage, access log on. */
export async function startDistribution(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const cfg = path.join(dir, 'config.yml');
  fs.writeFileSync(
    cfg,
    `version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: ${dir}/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const logFile = path.join(dir, 'access.log');
  const srv = startServer(['docker-registry', 'serve', cfg], { logFile });
  await waitHttp(`http://127.0.0.1:${port}/v2/`, 20, srv.alive);
  return { kind: 'distribution', port, host: `127.0.0.1:${port}`, dir, data: `${dir}/data`, logFile, stop: srv.stop };
}

/** `ply registry serve` with its own root. */
export async function startPlyRegistry(dir, plyBin, env) {
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const logFile = path.join(dir, 'access.log');
  const srv = startServer([plyBin, 'registry', 'serve', '--addr', `127.0.0.1:${port}`, '--root', `${dir}/data`], { logFile, env });
  await waitHttp(`http://127.0.0.1:${port}/v2/`, 20, srv.alive);
  return { kind: 'ply', port, host: `127.0.0.1:${port}`, dir, data: `${dir}/data`, logFile, stop: srv.stop };
}

/**
 * Bytes the registry sent in responses to GET requests since `offset` of its log: distribution's access log is
 * in combined format (`"GET /v2/… HTTP/1.1" 200 12345`); ply's server logs `GET /v2/… 200 12345 3ms`.
 */
export function bytesServed(logFile, offset) {
  const text = fs.readFileSync(logFile, 'utf8').slice(offset);
  let bytes = 0;
  let blobs = 0;
  let requests = 0;
  for (const line of text.split('\n')) {
    let m = line.match(/"GET (\S+) HTTP\/[\d.]+" (\d{3}) (\d+)/) ?? line.match(/\bGET (\/v2\/\S*) (\d{3}) (\d+)/);
    if (!m) continue;
    requests++;
    bytes += Number(m[3]);
    if (m[1].includes('/blobs/') && m[2] === '200') blobs++;
  }
  return { bytes, blobs, requests };
}

export const logSize = (f) => {
  try { return fs.readFileSync(f, 'utf8').length; } catch { return 0; }
};
