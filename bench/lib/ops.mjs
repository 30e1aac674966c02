// The operations. Each is { name, title, needs, setup, sides(ctx), data, bound, teardown }: `needs` puts every
// store in the same state first ('present': the Debian image imported from the same tar on each side; 'absent':
// no image holding the Debian layer anywhere, so nothing can be reused from an earlier step). Every side's `prep`
// and `clean` run untimed, and leave its store as they found it, so each sample starts from the same state.
import fs from 'node:fs';
import path from 'node:path';
import { bytesServed, logSize, startDistribution, startPlyRegistry } from './engines.mjs';
import { linkUp, startLinkDistribution, tcpGoodput } from './link.mjs';
import { engines, servedByWorker } from './runner.mjs';
import { bash, MiB, parallel, sh, shAsync, StepError, treeBytes } from './util.mjs';

const LABEL = { ply: 'ply', podman: 'podman', docker: 'docker' };
/** Extra `run`/`create` flags: every side on the host's network (dockerd runs with --bridge=none, podman's
 * containers.conf says netns="host"); bench/network.mjs measures the bridges. */
const runFlags = (e) => (e.name === 'docker' || e.name === 'ply' ? ['--network', 'host'] : []);
// Plain HTTP: loopback registries need it for podman; the shaped link's (a private address) for ply too.
const tlsOff = (e) => (e.name === 'podman' || e.name === 'ply' ? ['--tls-verify=false'] : []);
const rmrf = (p) => fs.rmSync(p, { recursive: true, force: true });
const REPO_ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');

/** One side per engine, the ply engine primary. */
function engineSides(ctx, make) {
  return engines(ctx).map((e) => ({ name: LABEL[e.name], primary: e.name === 'ply', env: e.env, ...make(e) }));
}

/** Whether this ply build has a (sub)command: listed under "Commands:" in its parent's --help (commander answers
 * `ply nosuch --help` with the main help and exit 0, so the exit code says nothing). */
function plyHas(ctx, ...cmd) {
  const key = cmd.join(' ');
  ctx.plyCommands ??= new Map();
  if (!ctx.plyCommands.has(key)) {
    const help = ctx.ply.sh([...cmd.slice(0, -1), '--help'], { allowFail: true }).stdout;
    const list = help.split(/^Commands:/m)[1] ?? '';
    ctx.plyCommands.set(key, new RegExp(`^\\s+${cmd[cmd.length - 1]}\\b`, 'm').test(list));
  }
  return ctx.plyCommands.get(key);
}

/**
 * Adds the "ply (service)" side after the "ply" side of a short-command op (`service: true`): the same store,
 * argv, prep and clean, run while `ply system service` serves that store (runner.mjs starts it), and without
 * PLY_SERVICE=0, so bin/ply's client hands the command to a warm worker. Before each timed sample (after its own
 * prep) and again after its clean-up, it waits untimed until the service's workers are all warm and waiting: the
 * sample gets a warm worker, and the replacement worker's start-up (the price of the one that served) does not
 * overlap the next side's timed sample. Each sample records whether a worker served it (the client's peak RSS).
 */
function withService(ctx, sides) {
  const i = sides.findIndex((s) => s.name === 'ply');
  if (i < 0) return sides;
  const p = sides[i];
  const svc = ctx.plyService;
  const side = {
    ...p,
    name: 'ply (service)',
    primary: false,
    env: svc?.env,
    unavailable: p.unavailable ?? (svc ? undefined : ctx.plyServiceError ?? 'ply system service is not running'),
    prep: async (round) => {
      const st = p.prep ? await p.prep(round) : {};
      if (!(await svc.ready())) ctx.facts.serviceNotReady = (ctx.facts.serviceNotReady ?? 0) + 1;
      return st;
    },
    after: async (st, m) => ({ ...((p.after ? await p.after(st, m) : null) ?? {}), servedByWorker: servedByWorker(m) ? 1 : 0 }),
    clean: async (st) => {
      try {
        if (p.clean) await p.clean(st);
      } finally {
        if (svc) await svc.ready();
      }
    },
  };
  return [...sides.slice(0, i + 1), side, ...sides.slice(i + 1)];
}

// ---------------------------------------------------------------------------------------------- shared set-up

/**
 * A seed podman store (separate from the benchmarked one) that makes the registry content and the load archive:
 * the Debian image and a derived image (Debian + one 5 MiB layer), pushed by skopeo (gzip) to a distribution
 * registry that serves every pull op, and a `podman save` docker-archive of the Debian image.
 */
async function seed(ctx) {
  if (ctx.seed) return ctx.seed;
  if (!ctx.podman) throw new StepError('needs podman (it makes the registry content and the load archive)');
  const s = ctx.makeSeedPodman();
  s.ensureImported(ctx.base, ctx.fx.debianTar);
  if (!s.has('bench/derived:latest')) {
    s.sh(['rm', '-f', 'bench-derive'], { allowFail: true });
    s.sh(['run', '--name', 'bench-derive', ctx.base, 'sh', '-c', 'head -c 5242880 /dev/urandom > /opt/extra.bin && echo derived > /etc/bench-derived']);
    s.sh(['commit', '-q', 'bench-derive', 'bench/derived:latest']);
    s.sh(['rm', '-f', 'bench-derive']);
  }
  const archive = path.join(ctx.work, 'fixtures', 'debian-podman-save.tar');
  if (!fs.existsSync(archive)) s.sh(['save', '-o', archive, ctx.base]);
  const reg = await startDistribution(path.join(ctx.work, 'reg-seed'));
  ctx.servers.push(reg);
  const sk = ctx.skopeoFor(s);
  for (const name of ['bench/debian:latest', 'bench/derived:latest']) {
    sh(sk.argv('copy', '-q', '--dest-tls-verify=false', sk.storage(`localhost/${name}`), `docker://${reg.host}/${name}`), { env: sk.env });
  }
  const manifest = async (name) => (await (await fetch(`http://${reg.host}/v2/${name}/manifests/latest`, {
    headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
  })).json());
  const base = await manifest('bench/debian');
  const derived = await manifest('bench/derived');
  const shared = derived.layers[0].digest === base.layers[0].digest;
  if (!shared) throw new StepError('the derived image does not share the base layer blob in the registry');
  const newLayer = derived.layers[derived.layers.length - 1];
  ctx.seed = {
    reg,
    archive,
    baseLayerBytes: base.layers[0].size,
    newLayerBytes: newLayer.size + derived.config.size,
    engine: s,
  };
  ctx.facts.seed = `registry content pushed once by skopeo from a separate podman store (gzip layers): base layer ${(base.layers[0].size / MiB).toFixed(1)} MiB compressed; derived image = base + one layer of ${(newLayer.size / MiB).toFixed(2)} MiB sharing the base blob ${base.layers[0].digest.slice(0, 19)}…; load archive = \`podman save\` (docker-archive) of the Debian image`;
  return ctx.seed;
}

async function plyRegistryAvailable(ctx) {
  if (!plyHas(ctx, 'registry', 'serve')) throw new StepError('`ply registry serve` is not available in this build');
}

// ---------------------------------------------------------------------------------------------- operations

const importOp = {
  name: 'import',
  title: 'import of the Debian rootfs tar',
  needs: 'absent',
  data: (ctx) => ({ bytes: ctx.fx.debianBytes, what: 'rootfs tar' }),
  bound: (ctx) => ({ key: 'hashAndWrite', rate: ctx.limits.hashAndWrite }),
  sides: (ctx) =>
    engineSides(ctx, (e) => ({
      argv: () => e.cmd('import', ctx.fx.debianTar, 'bench/imported:latest'),
      clean: () => e.rmi('bench/imported:latest'),
    })),
};

const loadOp = {
  name: 'load',
  title: 'load of the Debian image archive (docker-archive from podman save)',
  needs: 'absent',
  setup: seed,
  data: (ctx) => ({ bytes: fs.statSync(ctx.seed.archive).size, what: 'archive' }),
  bound: (ctx) => ({ key: 'hashAndWrite', rate: ctx.limits.hashAndWrite }),
  sides: (ctx) =>
    engineSides(ctx, (e) => ({
      argv: () => e.cmd('load', '-i', ctx.seed.archive),
      clean: () => e.rmi('localhost/bench/debian:latest'),
    })),
};

const runOpDef = {
  name: 'run',
  title: '`run --rm IMAGE true` (Debian image; host network)',
  needs: 'present',
  service: true,
  rounds: Math.max(10, Number(process.env.BENCH_ROUNDS ?? 5)),
  setup: (ctx) => {
    if (ctx.runcBundle) return;
    const b = path.join(ctx.work, 'runc-bundle');
    fs.mkdirSync(path.join(b, 'rootfs'), { recursive: true });
    sh(['tar', '-C', path.join(b, 'rootfs'), '-xf', ctx.fx.debianTar]);
    sh(['runc', 'spec'], { cwd: b });
    const spec = JSON.parse(fs.readFileSync(path.join(b, 'config.json'), 'utf8'));
    spec.process.terminal = false;
    spec.process.args = ['true'];
    spec.linux.namespaces = spec.linux.namespaces.filter((n) => n.type !== 'network');
    fs.writeFileSync(path.join(b, 'config.json'), JSON.stringify(spec, null, 2));
    ctx.runcBundle = b;
  },
  sides: (ctx) => [
    ...withService(ctx, engineSides(ctx, (e) => ({ argv: () => e.cmd('run', '--rm', ...runFlags(e), ctx.base, 'true') }))),
    {
      name: 'runc (bare)',
      env: process.env,
      prep: (round) => ({ id: `bench-runc-${process.pid}-${round}` }),
      argv: (st) => ['runc', '--root', path.join(ctx.work, 'runc-state'), 'run', '--bundle', ctx.runcBundle, st.id],
      clean: (st) => sh(['runc', '--root', path.join(ctx.work, 'runc-state'), 'delete', '-f', st.id], { allowFail: true }),
    },
  ],
};

const commitOp = {
  name: 'commit',
  title: 'commit of a container with 50 MiB of new files (busybox base)',
  data: (ctx) => ({ bytes: ctx.fx.randomBytes, what: 'new files' }),
  bound: (ctx) => ({ key: 'hashAndWrite', rate: ctx.limits.hashAndWrite }),
  sides: (ctx) =>
    engineSides(ctx, (e) => ({
      prep: (round) => {
        const name = `bench-commit-${round}`;
        e.sh(['run', '--name', name, ...runFlags(e), '-v', `${ctx.fx.randomDir}:/src:ro`, ctx.bb, 'cp', '-a', '/src', '/data']);
        return { name };
      },
      argv: (st) => e.cmd('commit', st.name, 'bench/committed:latest'),
      clean: (st) => {
        if (st.name) e.sh(['rm', '-f', st.name], { allowFail: true });
        e.rmi('bench/committed:latest');
      },
    })),
};

const saveOp = {
  name: 'save',
  title: 'save of the Debian image to a file (`save -o`)',
  needs: 'present',
  data: (ctx) => ({ bytes: ctx.fx.debianBytes, what: 'layer (uncompressed)' }),
  bound: (ctx) => ({ key: 'copyShm', rate: ctx.limits.copyShm }),
  sides: (ctx) =>
    engineSides(ctx, (e) => {
      const out = path.join(ctx.work, `save-${e.name}.tar`);
      return {
        argv: () => e.cmd('save', '-o', out, ctx.base),
        after: () => ({ archiveBytes: fs.statSync(out).size }),
        clean: () => rmrf(out),
      };
    }),
};

const exportOp = {
  name: 'export',
  title: 'export of a stopped Debian container (`export -o`)',
  needs: 'present',
  setup: (ctx) => {
    for (const e of engines(ctx)) {
      e.sh(['rm', '-f', 'bench-export'], { allowFail: true });
      e.sh(['run', '--name', 'bench-export', ...runFlags(e), ctx.base, 'true']);
    }
  },
  teardown: (ctx) => {
    for (const e of engines(ctx)) e.sh(['rm', '-f', 'bench-export'], { allowFail: true });
  },
  data: (ctx) => ({ bytes: ctx.fx.debianBytes, what: 'rootfs' }),
  bound: (ctx) => ({ key: 'copyShm', rate: ctx.limits.copyShm }),
  sides: (ctx) =>
    engineSides(ctx, (e) => {
      const out = path.join(ctx.work, `export-${e.name}.tar`);
      return {
        argv: () => e.cmd('export', '-o', out, 'bench-export'),
        after: () => ({ archiveBytes: fs.statSync(out).size }),
        clean: () => rmrf(out),
      };
    }),
};

/**
 * Push sides against a fresh registry per sample (new port, empty storage): nothing is known there beforehand.
 * With `link`, the bytes the host sent over the shaped link during the sample are counted too.
 */
function pushSides(ctx, start, { clients, link }) {
  const mk = (name, primary, client) => ({
    name,
    primary,
    env: client.env,
    prep: async (round) => {
      const reg = await start(path.join(ctx.work, `reg-push-${name.replace(/\W+/g, '_')}-${round}`));
      const ref = `${reg.host}/bench/debian:latest`;
      if (client.tag) client.tag(ref);
      return { reg, ref, sent: link?.sent() };
    },
    argv: (st) => client.argv(st.ref),
    after: (st) => ({
      storedBytes: treeBytes(st.reg.data),
      requests: logLines(st.reg.logFile),
      ...(link ? linkExtra(link, link.sent() - st.sent) : {}),
    }),
    clean: async (st) => {
      if (client.untag && st.ref) client.untag(st.ref);
      if (st.reg) {
        await st.reg.stop();
        rmrf(st.reg.dir);
      }
    },
  });
  return clients.map(([name, primary, client]) => mk(name, primary, client));
}

const logLines = (f) => fs.readFileSync(f, 'utf8').split('\n').filter((l) => /(GET|HEAD|PUT|POST|PATCH) /.test(l)).length;

/** What crossed the shaped link in one sample, and the link's own bound for it (bytes / rate). */
const linkExtra = (link, bytes) => ({
  linkBytes: bytes,
  linkBoundSecs: bytes / link.bytesPerSec,
  ...(link.tcpBytesPerSec ? { linkTcpSecs: bytes / link.tcpBytesPerSec } : {}),
});

/**
 * ply remembers how it compressed a layer (its blob-info cache) and compresses it the same way for the next
 * registry (same bytes, same digest); every sample starts from nothing known instead, as the other sides do, so
 * each one compresses (and adapts to its link) from scratch.
 */
function forgetCompressedLayers(e) {
  const db = path.join(e.info.root, 'ply.db');
  if (!fs.existsSync(db)) return;
  sh([process.execPath, '-e', `const D = require(${JSON.stringify(path.join(REPO_ROOT, 'node_modules', 'better-sqlite3'))}); const db = new D(${JSON.stringify(db)}); for (const t of ['blob_variants', 'blob_locations']) { try { db.exec('DELETE FROM ' + t); } catch {} }`]);
}

function engineClient(e, ctx, flags = []) {
  if (e.name === 'podman') return { env: e.env, argv: (ref) => e.cmd('push', '--tls-verify=false', ...flags, ctx.base, ref) };
  return {
    env: e.env,
    tag: (ref) => {
      if (e.name === 'ply') forgetCompressedLayers(e);
      e.sh(['tag', ctx.base, ref]);
    },
    untag: (ref) => e.rmi(ref),
    argv: (ref) => e.cmd('push', ...tlsOff(e), ...flags, ref),
  };
}
function skopeoPushClient(ctx) {
  const sk = ctx.skopeo;
  return { env: sk.env, argv: (ref) => sk.argv('copy', '-q', '--dest-tls-verify=false', sk.storage(`localhost/${ctx.base}`), `docker://${ref}`) };
}

const pushOp = {
  name: 'push',
  title: 'push of the Debian image to a fresh distribution registry (docker-registry 2.8.2)',
  needs: 'present',
  data: (ctx) => ({ bytes: ctx.fx.debianBytes, what: 'layer (uncompressed)' }),
  bound: (ctx) => ({ key: 'sha256', rate: ctx.limits.sha256 }),
  sides: (ctx) => {
    const clients = engines(ctx).map((e) => [LABEL[e.name], e.name === 'ply', engineClient(e, ctx)]);
    if (ctx.skopeo) clients.splice(2, 0, ['skopeo', false, skopeoPushClient(ctx)]);
    return pushSides(ctx, startDistribution, { clients });
  },
};

/** Pull sides from a long-lived registry; each sample starts with the image (and its layers) absent. */
function pullSides(ctx, reg, name, { skopeoDest = 'storage', link } = {}) {
  const ref = `${reg.host}/${name}`;
  const sides = engines(ctx).map((e) => ({
    name: LABEL[e.name],
    primary: e.name === 'ply',
    env: e.env,
    prep: () => {
      e.rmi(ref);
      return { offset: logSize(reg.logFile), received: link?.received() };
    },
    argv: () => e.cmd('pull', ...tlsOff(e), ref),
    after: (st) => served(reg, st, link),
    clean: () => e.rmi(ref),
  }));
  if (ctx.skopeo) {
    const sk = ctx.skopeo;
    const dirDest = path.join(ctx.work, 'skopeo-pull-dir');
    sides.splice(2, 0, {
      name: 'skopeo',
      env: sk.env,
      prep: () => {
        ctx.podman.rmi(ref);
        rmrf(dirDest);
        return { offset: logSize(reg.logFile), received: link?.received() };
      },
      argv: () => sk.argv('copy', '-q', '--src-tls-verify=false', `docker://${ref}`, skopeoDest === 'dir' ? `dir:${dirDest}` : sk.storage(ref)),
      after: (st) => served(reg, st, link),
      clean: () => {
        ctx.podman.rmi(ref);
        rmrf(dirDest);
      },
    });
  }
  return sides;
}
const served = (reg, st, link) => {
  const b = bytesServed(reg.logFile, st.offset);
  return { servedBytes: b.bytes, blobGets: b.blobs, requests: b.requests, ...(link ? linkExtra(link, link.received() - st.received) : {}) };
};

/** The shaped link (100 Mbit/s each way, registries inside its namespace), made once per run and removed at the end. */
function ensureLink(ctx) {
  if (ctx.link) return ctx.link;
  const link = linkUp();
  ctx.link = link;
  ctx.servers.push({ stop: async () => link.down() });
  ctx.facts.link = `shaped link: namespace ${link.ns} behind a veth pair with tbf at ${link.rateMbit} Mbit/s (burst 64 kB, latency 200 ms) in each direction; registries listen on ${link.addr} inside it; bytes = the host interface's counters over the sample (headers and retransmissions included); bound = bytes / ${link.rateMbit} Mbit/s`;
  return link;
}

/** The link, and once per run what one plain TCP transfer gets over it (the floor no client can go under). */
async function ensureMeasuredLink(ctx) {
  const link = ensureLink(ctx);
  if (link.tcpBytesPerSec === undefined) {
    link.tcpBytesPerSec = await tcpGoodput(link).catch(() => null);
    if (link.tcpBytesPerSec) {
      ctx.facts.link += `; a plain TCP transfer over it gets ${(link.tcpBytesPerSec / MiB).toFixed(2)} MiB/s, ${((100 * link.tcpBytesPerSec) / link.bytesPerSec).toFixed(1)}% of the nominal rate: TCP floor = bytes / that rate, the least time any client needs`;
    }
  }
  return link;
}

const pullOp = {
  name: 'pull',
  title: 'pull of the Debian image from a distribution registry (gzip layer), into an empty store',
  needs: 'absent',
  setup: seed,
  data: (ctx) => ({ bytes: ctx.fx.debianBytes, what: 'layer (uncompressed)' }),
  bound: (ctx) => ({ key: 'gunzipSha256', rate: ctx.limits.gunzipSha256 }),
  sides: (ctx) => pullSides(ctx, ctx.seed.reg, 'bench/debian:latest'),
};

const pullSharedOp = {
  name: 'pull-shared',
  title: 'pull of a second image sharing the base (base pulled before; bytes = registry responses)',
  needs: 'absent',
  setup: async (ctx) => {
    await seed(ctx);
    const base = `${ctx.seed.reg.host}/bench/debian:latest`;
    for (const e of engines(ctx)) e.sh(['pull', ...tlsOff(e), base]);
  },
  data: (ctx) => ({ bytes: ctx.seed.newLayerBytes, what: 'new layer + config (compressed)' }),
  sides: (ctx) => pullSides(ctx, ctx.seed.reg, 'bench/derived:latest'),
};

/** The push of the Debian image over the shaped link: gzip (everyone's default) and zstd (ply, podman). */
const pushLinkOp = {
  name: 'push-link',
  title: `push of the Debian image over a 100 Mbit/s link (fresh docker-registry inside the link's namespace per sample)`,
  needs: 'present',
  rounds: Number(process.env.BENCH_LINK_ROUNDS ?? 3),
  setup: async (ctx) => void (await ensureMeasuredLink(ctx)),
  data: (ctx) => ({ bytes: ctx.fx.debianBytes, what: 'layer (uncompressed)' }),
  sides: (ctx) => {
    const link = ctx.link;
    const clients = [];
    for (const e of engines(ctx)) {
      clients.push([LABEL[e.name], e.name === 'ply', engineClient(e, ctx)]);
      if (e.name !== 'docker') clients.push([`${LABEL[e.name]} zstd`, false, engineClient(e, ctx, ['--compression-format', 'zstd'])]);
    }
    if (ctx.skopeo) clients.push(['skopeo', false, skopeoPushClient(ctx)]);
    return pushSides(ctx, (dir) => startLinkDistribution(link, dir), { clients, link });
  },
};

/** The pull of the Debian image (gzip, as skopeo pushed it) over the shaped link, into an empty store. */
const pullLinkOp = {
  name: 'pull-link',
  title: 'pull of the Debian image (gzip layer) over a 100 Mbit/s link, into an empty store',
  needs: 'absent',
  rounds: Number(process.env.BENCH_LINK_ROUNDS ?? 3),
  setup: async (ctx) => {
    await seed(ctx);
    const link = await ensureMeasuredLink(ctx);
    if (!ctx.linkReg) {
      ctx.linkReg = await startLinkDistribution(link, path.join(ctx.work, 'reg-link'));
      ctx.servers.push(ctx.linkReg);
      sh(['skopeo', 'copy', '-q', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${ctx.seed.reg.host}/${ctx.base}`, `docker://${ctx.linkReg.host}/${ctx.base}`]);
    }
  },
  data: (ctx) => ({ bytes: ctx.seed.baseLayerBytes, what: 'layer (compressed)' }),
  bound: (ctx) => ({ key: 'link', rate: ctx.link.bytesPerSec }),
  sides: (ctx) => pullSides(ctx, ctx.linkReg, ctx.base, { link: ctx.link }),
};

const registryPushOp = {
  name: 'registry-push',
  title: 'push to `ply registry serve` vs docker-registry (skopeo client; fresh registry per sample)',
  needs: 'present',
  setup: plyRegistryAvailable,
  data: (ctx) => ({ bytes: ctx.fx.debianBytes, what: 'layer (uncompressed)' }),
  bound: (ctx) => ({ key: 'sha256', rate: ctx.limits.sha256 }),
  sides: (ctx) => {
    const plyReg = (dir) => startPlyRegistry(dir, ctx.plyBin, ctx.ply.env);
    const sk = skopeoPushClient(ctx);
    return [
      ...pushSides(ctx, plyReg, { clients: [['skopeo→ply registry', true, sk]] }),
      ...pushSides(ctx, startDistribution, { clients: [['skopeo→distribution', false, sk]] }),
      ...pushSides(ctx, plyReg, { clients: [['ply→ply registry', false, engineClient(ctx.ply, ctx)]] }),
    ];
  },
};

const registryPullOp = {
  name: 'registry-pull',
  title: 'pull from `ply registry serve` vs docker-registry (skopeo to dir:, same content)',
  needs: 'absent',
  setup: async (ctx) => {
    await plyRegistryAvailable(ctx);
    await seed(ctx);
    if (!ctx.plyReg) {
      ctx.plyReg = await startPlyRegistry(path.join(ctx.work, 'reg-ply'), ctx.plyBin, ctx.ply.env);
      ctx.servers.push(ctx.plyReg);
      const sk = ctx.skopeoFor(ctx.seed.engine);
      sh(sk.argv('copy', '-q', '--dest-tls-verify=false', sk.storage(`localhost/${ctx.base}`), `docker://${ctx.plyReg.host}/${ctx.base}`), { env: sk.env });
    }
  },
  data: (ctx) => ({ bytes: ctx.seed.baseLayerBytes, what: 'layer (compressed)' }),
  sides: (ctx) => {
    const sk = ctx.skopeo;
    const dirSide = (name, primary, reg) => {
      const dest = path.join(ctx.work, `pull-dir-${primary ? 'p' : 'd'}`);
      return {
        name,
        primary,
        env: sk.env,
        prep: () => (rmrf(dest), {}),
        argv: () => sk.argv('copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/${ctx.base}`, `dir:${dest}`),
        clean: () => rmrf(dest),
      };
    };
    const plyPull = pullSides({ ...ctx, podman: null, docker: null, skopeo: null }, ctx.plyReg, ctx.base)[0];
    return [
      dirSide('skopeo←ply registry', true, ctx.plyReg),
      dirSide('skopeo←distribution', false, ctx.seed.reg),
      { ...plyPull, name: 'ply←ply registry', primary: false },
    ];
  },
};

const DOCKERFILE = `FROM bench/busybox:latest
ENV APP_HOME=/app
WORKDIR /app
COPY files/ ./files/
RUN cat files/* | wc -c > size && mkdir -p /var/app && cp size /var/app/
LABEL bench=ply
CMD ["cat", "/app/size"]
`;

function buildContext(ctx) {
  const dir = path.join(ctx.work, 'build-ctx');
  if (!fs.existsSync(dir)) {
    fs.mkdirSync(path.join(dir, 'files'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'Dockerfile'), DOCKERFILE);
    for (let i = 0; i < 16; i++) bash(`head -c 4096 /dev/urandom > "${dir}/files/f${i}"`);
  }
  return dir;
}

function buildArgv(e, dir, noCache) {
  const base = ['build', ...(noCache ? ['--no-cache'] : []), '--network', 'host', '-q', '-t', 'bench/built:latest'];
  if (e.name === 'podman') base.push('--pull=never');
  return e.cmd(...base, dir);
}

function buildSides(ctx, noCache) {
  const dir = buildContext(ctx);
  return withService(ctx, engineSides(ctx, (e) => ({
    unavailable: e.name === 'ply' && !plyHas(ctx, 'build') ? '`ply build` is not available in this build' : undefined,
    argv: () => buildArgv(e, dir, noCache),
    clean: () => {
      if (!noCache) return;
      e.rmi('bench/built:latest');
      e.sh(['image', 'prune', '-f'], { allowFail: true });
    },
  })));
}

const buildColdOp = {
  name: 'build-cold',
  title: 'build of a 6-step Dockerfile (busybox base, COPY + RUN), --no-cache',
  service: true,
  sides: (ctx) => buildSides(ctx, true),
};

const buildCachedOp = {
  name: 'build-cached',
  title: 'the same build fully cached (after one untimed build)',
  service: true,
  setup: (ctx) => {
    const dir = buildContext(ctx);
    for (const e of engines(ctx)) {
      if (e.name === 'ply' && !plyHas(ctx, 'build')) continue;
      e.sh(buildArgv(e, dir, false).slice(e.argv.length));
    }
  },
  sides: (ctx) => buildSides(ctx, false),
};

// A build whose two RUN steps are worth caching (16 MiB of new files, a second each), for --cache-from.
const CF_DOCKERFILE = `FROM bench/busybox:latest
COPY files/ /files/
RUN head -c 16777216 /dev/urandom > /big && sleep 1
RUN cat /files/* /big | sha256sum > /sum && sleep 1
`;

/**
 * --cache-from on a fresh store (issue 21): a CI runner with only the base image reuses another machine's steps from
 * a registry. Set-up (untimed, once): a separate ply store builds the image with --cache-to type=registry,mode=max
 * and pushes it, to a distribution registry with its access log on. Sides, each on a fresh store holding only the
 * busybox base: the build with --cache-from (no step runs; the result's layers are pulled), `ply pull` of the pushed
 * result (the bound: the same layers, nothing else), and the build without a cache (what the cache saves).
 */
const buildCacheFromOp = {
  name: 'build-cache-from',
  title: 'build with --cache-from a registry on a fresh store (base present), against pulling the result and building without a cache',
  setup: async (ctx) => {
    if (!plyHas(ctx, 'build')) throw new StepError('`ply build` is not available in this build');
    if (ctx.cacheFrom) return;
    const reg = await startDistribution(path.join(ctx.work, 'reg-cache-from'));
    ctx.servers.push(reg);
    const dir = path.join(ctx.work, 'build-cf-ctx');
    fs.mkdirSync(path.join(dir, 'files'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'Dockerfile'), CF_DOCKERFILE);
    for (let i = 0; i < 16; i++) bash(`head -c 4096 /dev/urandom > "${dir}/files/f${i}"`);
    const exporter = freshPlyEnv(ctx, 'cf-exporter');
    const image = `${reg.host}/bench/cf:latest`;
    const cache = `${reg.host}/bench/cf-cache:latest`;
    sh([...ctx.ply.argv, 'build', '--network', 'host', '-q', '-t', image, '--cache-to', `type=registry,ref=${cache},mode=max`, dir], { env: exporter });
    sh([...ctx.ply.argv, 'push', '-q', image], { env: exporter });
    ctx.cacheFrom = { reg, dir, image, cache };
  },
  sides: (ctx) => {
    const { reg, dir, image, cache } = ctx.cacheFrom;
    const side = (name, primary, args) => {
      const env = { ...ctx.ply.env, PLY_ROOT: path.join(ctx.work, `ply-${name.replace(/\W+/g, '-')}`) };
      return {
        name,
        primary,
        env,
        prep: () => {
          freshPlyEnv(ctx, env.PLY_ROOT);
          return { offset: logSize(reg.logFile) };
        },
        argv: () => [...ctx.ply.argv, ...args],
        after: (st) => served(reg, st),
        clean: () => rmrf(env.PLY_ROOT),
      };
    };
    return [
      side('ply --cache-from', true, ['build', '--network', 'host', '-q', '--cache-from', `type=registry,ref=${cache}`, '-t', 'bench/cf:latest', dir]),
      side('ply pull (bound)', false, ['pull', '-q', image]),
      side('ply, no cache', false, ['build', '--network', 'host', '-q', '-t', 'bench/cf:latest', dir]),
    ];
  },
};

/** A fresh ply store (`name` under the work dir, or a path) holding only the busybox base; returns its env. */
function freshPlyEnv(ctx, name) {
  const root = path.isAbsolute(name) ? name : path.join(ctx.work, `ply-${name}`);
  rmrf(root);
  const env = { ...ctx.ply.env, PLY_ROOT: root };
  // The same base image ID in every store (as CI runners pulling one base by digest): a fixed creation time.
  sh([...ctx.ply.argv, 'import', ctx.fx.busyboxTar, ctx.bb], { env: { ...env, SOURCE_DATE_EPOCH: '1700000000' } });
  return env;
}

const MANY = Number(process.env.BENCH_IMAGES ?? 200);
const imagesOp = {
  name: 'images',
  title: `\`images\` with ${MANY} images (busybox imported ${MANY} times with -c "LABEL n=i": ${MANY} distinct image IDs, one shared layer)`,
  setup: async (ctx) => {
    for (const e of engines(ctx)) {
      const have = new Set(e.sh(['images', 'bench/many', '--format', '{{.Tag}}']).stdout.split('\n').filter(Boolean));
      const todo = Array.from({ length: MANY }, (_, i) => i).filter((i) => !have.has(String(i)));
      await parallel(todo, 3, (i) => shAsync(e.cmd('import', '-c', `LABEL n=${i}`, ctx.fx.busyboxTar, `bench/many:${i}`), { env: e.env }));
    }
  },
  service: true,
  sides: (ctx) => withService(ctx, engineSides(ctx, (e) => ({ argv: () => e.cmd('images') }))),
};

const PS = Number(process.env.BENCH_CONTAINERS ?? 50);
const psOp = {
  name: 'ps',
  title: `\`ps -a\` with ${PS} created containers (and the ${MANY} images present when run after \`images\`)`,
  service: true,
  rounds: Math.max(10, Number(process.env.BENCH_ROUNDS ?? 5)),
  setup: async (ctx) => {
    for (const e of engines(ctx)) {
      e.removeContainers();
      await parallel(Array.from({ length: PS }, (_, i) => i), 3, (i) =>
        shAsync(e.cmd('create', '--name', `bench-ps-${i}`, ...runFlags(e), ctx.bb, 'true'), { env: e.env }));
    }
  },
  teardown: (ctx) => {
    for (const e of engines(ctx)) e.removeContainers();
  },
  sides: (ctx) => withService(ctx, engineSides(ctx, (e) => ({ argv: () => e.cmd('ps', '-a') }))),
};

/** Run order: ops needing the Debian layer absent first, then those needing it present, to import it once. */
export const OPS = [importOp, loadOp, pullOp, pullSharedOp, registryPullOp, runOpDef, commitOp, saveOp, exportOp, pushOp, pushLinkOp, pullLinkOp,
  registryPushOp, buildColdOp, buildCachedOp, buildCacheFromOp, imagesOp, psOp];
