// ply against podman, skopeo, docker and bare runc, side by side, and against this machine's limits.
//   node bench/bench.mjs [OP…]      (bench/run.sh installs the peers and snapshots the build first)
// Every store (ply, podman, dockerd, registries) lives in one work dir on /dev/shm, removed at the end.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pickPodman, plyEngine, podmanEngine, skopeoFor, startDocker } from './lib/engines.mjs';
import { prepareFixtures, stageFixtures } from './lib/fixtures.mjs';
import { LIMIT_TEXT, measureLimits } from './lib/limits.mjs';
import { OPS } from './lib/ops.mjs';
import { profileSlowest } from './lib/profile.mjs';
import { writeReport } from './lib/report.mjs';
import { DEFAULT_ROUNDS, runOp } from './lib/runner.mjs';
import { bash, log, median, MiB, sh, timed } from './lib/util.mjs';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cache = path.join(repo, 'bench', '.cache');
const argv = process.argv.slice(2);
const wanted = argv.filter((a) => a !== 'all');
const unknown = wanted.filter((a) => !OPS.some((o) => o.name === a));
if (unknown.length) {
  console.error(`bench: unknown operation(s) ${unknown.join(', ')}; known: ${OPS.map((o) => o.name).join(' ')}`);
  process.exit(2);
}
const ops = wanted.length ? OPS.filter((o) => wanted.includes(o.name)) : OPS;
const plyBin = process.env.PLY_BENCH_BIN ?? path.join(cache, 'ply', 'bin', 'ply');
if (!fs.existsSync(plyBin)) {
  console.error(`bench: ${plyBin} is missing (bench/run.sh makes it)`);
  process.exit(2);
}

// This sandbox exports NODE_EXTRA_CA_CERTS, which makes every Node process read and parse a CA bundle at start-up
// (~60 ms here): a cost users' machines do not have, and only ply (a Node program) would pay it. The timed runs go
// without it (the registries here are plain HTTP); BENCH_KEEP_NODE_EXTRA_CA_CERTS=1 keeps it. Both start-ups are
// reported.
const extraCa = process.env.NODE_EXTRA_CA_CERTS;
if (extraCa && process.env.BENCH_KEEP_NODE_EXTRA_CA_CERTS !== '1') delete process.env.NODE_EXTRA_CA_CERTS;

const work = fs.mkdtempSync('/dev/shm/ply-bench-');
const ctx = { repo, work, plyBin, base: 'bench/debian:latest', bb: 'bench/busybox:latest', servers: [], facts: {}, docker: null, podman: null, skopeo: null };
const notes = [];
let cleaning = false;

async function cleanup() {
  if (cleaning) return;
  cleaning = true;
  for (const s of ctx.servers) await s.stop().catch(() => {});
  if (ctx.docker) await ctx.docker.stop().catch(() => {});
  for (const e of [ctx.ply, ctx.podman, ctx.seed?.engine].filter(Boolean)) {
    try { e.removeContainers(); } catch {}
  }
  bash(`grep -o ' ${work}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l`, { allowFail: true });
  fs.rmSync(work, { recursive: true, force: true });
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => cleanup().finally(() => process.exit(130)));

const version = (cmd) => {
  try {
    return sh(cmd, { allowFail: true, timeout: 20 }).stdout.split('\n')[0].trim() || '—';
  } catch { return '—'; }
};

try {
  log(`work dir ${work}`);
  const fx = prepareFixtures(repo, cache);
  ctx.fx = stageFixtures(fx, work);
  log(`fixtures: Debian tar ${(fx.debianBytes / MiB).toFixed(1)} MiB, busybox tar, 50 MiB random files`);

  log('limits: sha256, gunzip, zstd, gzip, disk and tmpfs writes');
  ctx.limits = await measureLimits(ctx.fx, { repoDisk: cache, shm: work });
  for (const [k, v] of Object.entries(ctx.limits)) log(`  ${LIMIT_TEXT[k]}: ${(v / MiB).toFixed(0)} MiB/s`);

  ctx.ply = plyEngine(work, plyBin);
  // Process start-up floors for the CLI-bound ops: a bare Node process, and ply's smallest command.
  const startup = (argv, env) => median(Array.from({ length: 10 }, () => timed(argv, { env }).secs));
  ctx.facts.startup = { node: startup([process.execPath, '-e', '0']), plyVersion: startup([plyBin, 'version'], ctx.ply.env) };
  if (extraCa) {
    const withCa = { ...ctx.ply.env, NODE_EXTRA_CA_CERTS: extraCa };
    ctx.facts.startup.nodeWithExtraCa = startup([process.execPath, '-e', '0'], withCa);
    ctx.facts.startup.plyVersionWithExtraCa = startup([plyBin, 'version'], withCa);
    notes.push(process.env.NODE_EXTRA_CA_CERTS
      ? `NODE_EXTRA_CA_CERTS=${extraCa} is set in this environment and was kept (BENCH_KEEP_NODE_EXTRA_CA_CERTS=1): every ply command pays for parsing that CA bundle at start-up.`
      : `This environment sets NODE_EXTRA_CA_CERTS=${extraCa}; the timed runs unset it (all sides), because it costs every Node process — ply only — the parsing of a CA bundle at start-up that a user's machine does not do: \`node -e 0\` ${(ctx.facts.startup.nodeWithExtraCa * 1000).toFixed(0)} ms with it vs ${(ctx.facts.startup.node * 1000).toFixed(0)} ms without, \`ply version\` ${(ctx.facts.startup.plyVersionWithExtraCa * 1000).toFixed(0)} vs ${(ctx.facts.startup.plyVersion * 1000).toFixed(0)} ms. Run with BENCH_KEEP_NODE_EXTRA_CA_CERTS=1 to measure with it.`);
  }
  log(`start-up: node -e 0 ${(ctx.facts.startup.node * 1000).toFixed(0)} ms, ply version ${(ctx.facts.startup.plyVersion * 1000).toFixed(0)} ms`);
  notes.push(`ply: ${plyBin} (${process.env.PLY_BENCH_BUILD ?? 'snapshot of the build'}), store on /dev/shm (tmpfs). bin/ply is a sh script that execs the native client (node_modules/ply-native/build/Release/ply-client, the repository's current build: the snapshot links node_modules), which hands the command to \`ply system service\` when one serves the store, else execs \`node bin/ply.cjs\`. The "ply" side of every op, and every untimed ply set-up command, runs with PLY_SERVICE=0: the direct path (sh → ply-client → node), even while the service runs; the profiles below run \`node --cpu-prof bin/ply.cjs …\`.`);

  try {
    ctx.podman = pickPodman(work, (e) => {
      e.sh(['import', ctx.fx.busyboxTar, ctx.bb]);
      e.sh(['run', '--rm', ctx.bb, 'true']);
    });
    ctx.skopeo = skopeoFor(ctx.podman);
    ctx.makeSeedPodman = () => podmanEngine(path.join(work, 'seed'))(ctx.podman.info.driver);
    ctx.skopeoFor = skopeoFor;
    notes.push(`podman: storage driver **${ctx.podman.info.driver}** on /dev/shm, runtime runc, CONTAINERS_CONF = runtime "runc", default_ulimits nofile=20000:20000 nproc=32768:32768, netns="host" (and its own tmp_dir); skopeo uses the same store (containers-storage:[${ctx.podman.info.driver}@…]).${ctx.podman.info.notes.length ? ' ' + ctx.podman.info.notes.join('; ') : ''}`);
  } catch (e) {
    notes.push(`podman and skopeo columns skipped: ${e.message}`);
  }

  try {
    ctx.docker = await startDocker(work);
    notes.push(`docker: Debian's dockerd ${ctx.docker.info.version} as root with --iptables=false --bridge=none, data root, exec root and socket on /dev/shm (storage driver ${ctx.docker.info.driver}); CLI ${ctx.docker.info.cli}; DOCKER_BUILDKIT=0 (legacy builder); containers use --network host. docker's wall times include the daemon's work, its RSS is the CLI's only.`);
  } catch (e) {
    notes.push(`docker columns skipped: dockerd did not start: ${e.message}`);
    log(`docker: ${e.message}`);
  }

  notes.push('Stores, registries, archives and fixture copies all live on /dev/shm (tmpfs): no disk I/O in timed steps, and no large deletions on the ext4 disk (whose file creation slows down right after them).');
  notes.push('Cache state is the same on every side before each sample: ops marked "absent" start with no image holding the Debian layer in any store (only the busybox images stay), so import/load/pull reuse nothing; each side removes what its sample made (untimed) before the next side runs; pushes go to a fresh registry (new port, empty storage) per sample, so no client can skip or mount a blob; "present" ops start with the Debian image imported from the same tar on every side.');
  notes.push('Registries: Debian\'s docker-registry (distribution 2.8.2) with filesystem storage on /dev/shm and its access log (bytes served = sum of GET response sizes in the log); `ply registry serve --root` on /dev/shm likewise. Clients reach 127.0.0.1:PORT over plain HTTP (podman --tls-verify=false, skopeo --src/dest-tls-verify=false; docker and ply treat loopback as insecure by default).');

  ctx.facts.versions = {
    ply: `${version(['git', '-C', repo, 'rev-parse', '--short', 'HEAD'])}${sh(['git', '-C', repo, 'status', '--porcelain', 'src'], { allowFail: true }).stdout.trim() ? ' + uncommitted changes in src/' : ''}`,
    node: process.version,
    podman: version(['podman', '--version']),
    skopeo: version(['skopeo', '--version']),
    docker: ctx.docker ? ctx.docker.info.version : 'not running',
    runc: version(['runc', '--version']),
    'docker-registry': version(['dpkg-query', '-W', '-f', '${Version}', 'docker-registry']),
    kernel: os.release(),
    cpu: `${os.cpus()[0]?.model ?? '?'} × ${os.cpus().length}`,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
  };
  ctx.facts.cpus = os.cpus().length;
  ctx.facts.loadStart = os.loadavg()[0];
  ctx.facts.rounds = `Each op: 1 warm-up round, then ${DEFAULT_ROUNDS} timed rounds (10 for run and ps), the sides alternating in every round.`;

  const results = [];
  for (const op of ops) {
    log(`op ${op.name}: ${op.title}`);
    results.push(await runOp(op, ctx));
  }
  if (ctx.facts.seed) notes.push(ctx.facts.seed);
  if (ctx.facts.link) notes.push(ctx.facts.link);
  if (ctx.plyService) {
    const notReady = ctx.facts.serviceNotReady ?? 0;
    notes.push(`"ply (service)" side (run, images, ps, build-cold, build-cached): the same store and argv as "ply", without PLY_SERVICE=0, while \`ply system service --workers ${ctx.plyService.workers}\` runs for that store — started once before the first such op (after its socket appeared and \`ply info\` through it reported being served by a worker) and stopped at the end, like docker's numbers include a running dockerd. Each worker serves one command and exits, and the service starts a replacement; so before each timed "ply (service)" sample, and again right after its clean-up, the bench waits untimed until all ${ctx.plyService.workers} workers are warm and waiting (children of the service whose main thread is blocked in poll/accept on the socket, read from /proc): every sample finds a warm worker, and the replacement's start-up (its CPU is not in the "ply (service)" numbers) does not overlap another side's timed sample.${notReady ? ` **${notReady} sample(s) started after a 5 s wait without all workers ready.**` : ''} A sample counts as served by a worker when the client's peak RSS is below 20 MB (ply-client ≈ 2 MB; the direct path's node ≥ 40 MB); the notes column says how many were. Its RSS and CPU are ply-client's alone. The idle service and workers stay up during the other ops (they poll once a second).`);
  } else if (ctx.plyServiceError) {
    notes.push(`"ply (service)" side skipped: ${ctx.plyServiceError}`);
  }

  let profiles = [];
  if (process.env.BENCH_PROFILE !== '0') {
    try {
      profiles = await profileSlowest(results, ops, ctx, path.join(cache, 'profiles'));
    } catch (e) {
      notes.push(`profiling failed: ${e.message}`);
    }
  }

  const d = new Date();
  const stamp = `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}-${String(d.getUTCDate()).padStart(2, '0')}`;
  // A subset run gets its own name, so it never replaces the day's full run.
  const host = wanted.length ? `${os.hostname()}-${wanted.join('-')}` : os.hostname();
  const file = writeReport({ results, limits: ctx.limits, startup: ctx.facts.startup, facts: ctx.facts, notes, profiles, outDir: path.join(repo, 'bench', 'results'), stamp, host, argv });
  log(`wrote ${file} and .json`);
  process.stdout.write(fs.readFileSync(file, 'utf8'));
} catch (e) {
  log(`aborted: ${e.stack ?? e.message}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
