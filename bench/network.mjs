// Networking, side by side (issue "Networking"): as root on Debian 12, `node bench/network.mjs` (after npm run build).
//  1. `run --rm IMAGE true` on the default bridge against `--network host`: ply (direct and through
//     `ply system service`) and podman with netavark; sides alternate in every round; medians.
//     Target: ply's bridge within 30 ms of its host network.
//  2. A bulk download from busybox httpd in a container: through a port published on 127.0.0.1 (DNAT, veth,
//     bridge) against a direct loopback connection to the same server on the host's network.
//     Target: published ≥ 80% of direct.
//  3. The same download through a shaped link (/work/shared/tools/shaped-link.sh, 100 mbit): a client in a namespace
//     behind the link fetches from the published port on the link's host address, against the same server on the
//     host's network.
// Writes bench/results/<date>-network.md and .json. Env: BENCH_ROUNDS (default 15), BENCH_MIB (default 256),
// BENCH_SKIP_RUN=1 (throughput only).
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const rounds = Number(process.env.BENCH_ROUNDS ?? 15);
const mib = Number(process.env.BENCH_MIB ?? 256);
const work = fs.mkdtempSync('/dev/shm/ply-bench-net-');
const plyRoot = path.join(work, 'ply');
const ply = path.join(repo, 'bin', 'ply');
const env = { ...process.env, PLY_ROOT: plyRoot };

function sh(argv, opts = {}) {
  const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', env: opts.env ?? env, input: opts.input, maxBuffer: 1 << 26 });
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${argv.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}

function timed(argv, e) {
  const t = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv.slice(1), { env: e, stdio: 'ignore' });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} exited ${r.status}`);
  return ms;
}

const median = (a) => {
  const s = [...a].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ---------------------------------------------------------------------------------------------- set-up
const tar = path.join(work, 'busybox.tar');
sh([path.join(repo, 'test', 'fixtures', 'busybox-rootfs.sh'), tar]);
sh([ply, 'import', tar, 'bb']);
const podDir = path.join(work, 'podman');
fs.mkdirSync(path.join(podDir, 'tmp'), { recursive: true });
fs.writeFileSync(
  path.join(podDir, 'containers.conf'),
  `[engine]\nruntime = "runc"\ntmp_dir = "${podDir}/tmp"\n[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n[network]\nnetwork_backend = "netavark"\n`,
);
fs.writeFileSync(path.join(podDir, 'storage.conf'), `[storage]\ndriver = "overlay"\ngraphroot = "${podDir}/root"\nrunroot = "${podDir}/run"\n`);
const podEnv = { ...process.env, CONTAINERS_CONF: path.join(podDir, 'containers.conf'), CONTAINERS_STORAGE_CONF: path.join(podDir, 'storage.conf') };
let podman = true;
try {
  sh(['podman', 'import', tar, 'bb'], { env: podEnv });
  sh(['podman', 'run', '--rm', 'bb', 'true'], { env: podEnv });
} catch (e) {
  podman = false;
  console.error(`podman side skipped: ${e.message}`);
}

// Warm up: the default bridge exists, layers are unpacked.
sh([ply, 'run', '--rm', 'bb', 'true']);
sh([ply, 'run', '--rm', '--network', 'host', 'bb', 'true']);

const service = spawn(ply, ['system', 'service', '--workers', '2'], { env, stdio: 'ignore' });
await new Promise((r) => setTimeout(r, 1500));

// ---------------------------------------------------------------------------------------------- 1. run --rm
const direct = { ...env, PLY_SERVICE: '0' };
const served = { ...env, PLY_SERVICE_WAIT_MS: '3000' };
const sides = [
  { name: 'ply, --network host', argv: [ply, 'run', '--rm', '--network', 'host', 'bb', 'true'], env: direct },
  { name: 'ply, default bridge', argv: [ply, 'run', '--rm', 'bb', 'true'], env: direct },
  { name: 'ply (service), --network host', argv: [ply, 'run', '--rm', '--network', 'host', 'bb', 'true'], env: served },
  { name: 'ply (service), default bridge', argv: [ply, 'run', '--rm', 'bb', 'true'], env: served },
];
if (podman) {
  sides.push(
    { name: 'podman, --network host', argv: ['podman', 'run', '--rm', '--network', 'host', 'bb', 'true'], env: podEnv },
    { name: 'podman (netavark), default bridge', argv: ['podman', 'run', '--rm', 'bb', 'true'], env: podEnv },
  );
}
const samples = Object.fromEntries(sides.map((s) => [s.name, []]));
for (let r = 0; r < (process.env.BENCH_SKIP_RUN ? 0 : rounds); r++) {
  const order = r % 2 ? [...sides].reverse() : sides;
  for (const s of order) {
    if (s.env === served) await new Promise((res) => setTimeout(res, 150)); // a warm worker is back
    samples[s.name].push(timed(s.argv, s.env));
  }
}
service.kill('SIGTERM');
const med = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, median(v)]));

// ply's own part of a bridge, timed in-process (the run medians above swing by tens of ms on a loaded machine):
// an empty namespace, a veth pair into it on the store's bridge, its address and route, and the close.
const { createRequire } = await import('node:module');
const native = createRequire(import.meta.url)(path.join(repo, 'native'));
const bridge = JSON.parse(sh([ply, 'network', 'inspect', 'bridge']))[0];
const setup = [];
for (let i = 0; i < rounds * 2; i++) {
  const t = process.hrtime.bigint();
  const fd = native.netnsCreate();
  const veth = `vethbn${process.pid % 10000}${i % 10}`;
  native.vethCreate(veth, 'eth0', `/proc/self/fd/${fd}`, bridge.Options['com.docker.network.bridge.name'], 65520, null);
  native.ifaceConfigure(`/proc/self/fd/${fd}`, 'eth0', `${bridge.IPAM.Config[0].Gateway.replace(/\.1$/, '.250')}/16`, bridge.IPAM.Config[0].Gateway, 1500);
  fs.closeSync(fd);
  setup.push(Number(process.hrtime.bigint() - t) / 1e6);
  // The kernel frees the namespace and its veth by itself; wait so the next round's name is free.
  for (let w = 0; w < 200 && fs.existsSync(`/sys/class/net/${veth}`); w++) await new Promise((r) => setTimeout(r, 10));
}

// ---------------------------------------------------------------------------------------------- 2. throughput
const portDirect = 18500 + (process.pid % 400);
const portPub = portDirect + 1;
const web = (args) => sh([ply, 'run', '-d', ...args, 'bb', 'sh', '-c', `head -c ${mib * 1048576} /dev/zero > /big && exec httpd -f -p $PORT -h /`]).trim();
const directId = web(['--network', 'host', '-e', `PORT=127.0.0.1:${portDirect}`]);
const pubId = web(['-p', `127.0.0.1:${portPub}:80`, '-e', 'PORT=80']);
const cleanup = [directId, pubId];

function download(url) {
  return new Promise((resolve, reject) => {
    const t = process.hrtime.bigint();
    let n = 0;
    http
      .get(url, (res) => {
        res.on('data', (d) => (n += d.length));
        res.on('end', () => resolve({ bytes: n, ms: Number(process.hrtime.bigint() - t) / 1e6 }));
      })
      .on('error', reject);
  });
}
async function ready(url) {
  for (let i = 0; i < 100; i++) {
    try {
      const r = await download(url);
      if (r.bytes === mib * 1048576) return;
    } catch {
      // starting
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never served the file`);
}
const urls = { direct: `http://127.0.0.1:${portDirect}/big`, published: `http://127.0.0.1:${portPub}/big` };
await ready(urls.direct);
await ready(urls.published);
const tput = { direct: [], published: [] };
for (let r = 0; r < Math.max(5, Math.floor(rounds / 2)); r++) {
  for (const k of r % 2 ? ['published', 'direct'] : ['direct', 'published']) {
    const { bytes, ms } = await download(urls[k]);
    tput[k].push(bytes / 1048576 / (ms / 1000));
  }
}

// ---------------------------------------------------------------------------------------------- 3. shaped link
const shaped = { direct: [], published: [] };
const link = '/work/shared/tools/shaped-link.sh';
const ns = `plybn${process.pid % 10000}`;
let shapedNote = '';
if (fs.existsSync(link)) {
  const sub = `10.214.${process.pid % 200}`;
  try {
    sh(['bash', link, 'up', ns, '100mbit', sub]);
    const hostAddr = `${sub}.1`;
    // The same two servers, reached from behind the link on the link's host address.
    const d2 = web(['--network', 'host', '-e', `PORT=${hostAddr}:${portDirect + 2}`]);
    const p2 = web(['-p', `${hostAddr}:${portDirect + 3}:80`, '-e', 'PORT=80']);
    const fetch1 = (url) => {
      const t = process.hrtime.bigint();
      sh(['ip', 'netns', 'exec', ns, 'busybox', 'wget', '-q', '-O', '/dev/null', url]);
      return Number(process.hrtime.bigint() - t) / 1e6;
    };
    cleanup.push(d2, p2);
    const small = Math.min(mib, 24);
    for (const id of [d2, p2]) sh([ply, 'exec', id, 'sh', '-c', `head -c ${small * 1048576} /dev/zero > /small`]);
    // Both servers answer from behind the link before anything is timed.
    for (const port of [portDirect + 2, portDirect + 3]) {
      for (let i = 0; ; i++) {
        const r = spawnSync('ip', ['netns', 'exec', ns, 'busybox', 'wget', '-q', '-O', '/dev/null', `http://${hostAddr}:${port}/small`]);
        if (r.status === 0) break;
        if (i > 100) throw new Error(`${hostAddr}:${port} never answered from behind the link`);
        await new Promise((res) => setTimeout(res, 200));
      }
    }
    for (let r = 0; r < 3; r++) {
      shaped.direct.push(small / (fetch1(`http://${hostAddr}:${portDirect + 2}/small`) / 1000));
      shaped.published.push(small / (fetch1(`http://${hostAddr}:${portDirect + 3}/small`) / 1000));
    }
  } catch (e) {
    shapedNote = `shaped link skipped: ${e.message.split('\n')[0]}`;
  } finally {
    sh(['bash', link, 'down', ns], { allowFail: true });
  }
}
sh([ply, 'rm', '-f', ...cleanup], { allowFail: true });

// ---------------------------------------------------------------------------------------------- report
const cpu = os.cpus()[0]?.model ?? '';
const lines = [];
lines.push(`# Networking bench, ${new Date().toISOString().slice(0, 10)} (${os.cpus().length} cores, ${cpu})`, '');
lines.push(`Medians of ${rounds} rounds, sides alternating in every round. ply at ${spawnSync('git', ['-C', repo, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim()}; podman ${sh(['podman', '--version'], { allowFail: true }).trim()} with netavark ${sh(['/usr/lib/podman/netavark', '--version'], { allowFail: true }).trim()} (runtime runc). Load average at the end: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}.`, '');
lines.push('## `run --rm bb true`', '', '| side | median | min | max |', '|---|---|---|---|');
for (const [k, v] of Object.entries(samples)) if (v.length) lines.push(`| ${k} | ${med[k].toFixed(1)} ms | ${Math.min(...v).toFixed(1)} ms | ${Math.max(...v).toFixed(1)} ms |`);
const diff = (a, b) => (med[a] - med[b]).toFixed(1);
lines.push('', `- ply: default bridge − host = **${diff('ply, default bridge', 'ply, --network host')} ms** (direct), **${diff('ply (service), default bridge', 'ply (service), --network host')} ms** (service); target ≤ 30 ms.`);
if (podman) lines.push(`- podman with netavark: default bridge − host = **${diff('podman (netavark), default bridge', 'podman, --network host')} ms**.`);
lines.push(`- ply's own set-up of a bridge endpoint, in-process (namespace, veth pair on the bridge, address, routes): median **${median(setup).toFixed(2)} ms**, max ${Math.max(...setup).toFixed(2)} ms over ${setup.length}; its release is a DB transaction (the kernel frees the namespace and veth with the container's last process).`);
lines.push('', `## Bulk download (${mib} MiB from busybox httpd, sendfile)`, '', '| path | median MiB/s | samples |', '|---|---|---|');
lines.push(`| direct: 127.0.0.1 to the server on the host's network | ${median(tput.direct).toFixed(0)} | ${tput.direct.map((x) => x.toFixed(0)).join(', ')} |`);
lines.push(`| published: 127.0.0.1:PORT → DNAT → bridge → container | ${median(tput.published).toFixed(0)} | ${tput.published.map((x) => x.toFixed(0)).join(', ')} |`);
lines.push('', `- published / direct = **${((median(tput.published) / median(tput.direct)) * 100).toFixed(0)}%** (target ≥ 80%).`);
if (shaped.direct.length) {
  lines.push('', '## Through a shaped link (100 mbit, tbf both ways; client behind the link, busybox wget)', '', '| path | median MiB/s |', '|---|---|');
  lines.push(`| direct (server on the host's network) | ${median(shaped.direct).toFixed(2)} |`, `| published port | ${median(shaped.published).toFixed(2)} |`);
}
if (shapedNote) lines.push('', shapedNote);
const outDir = path.join(repo, 'bench', 'results');
fs.mkdirSync(outDir, { recursive: true });
const base = path.join(outDir, `${new Date().toISOString().slice(0, 10)}-network`);
fs.writeFileSync(`${base}.md`, `${lines.join('\n')}\n`);
fs.writeFileSync(`${base}.json`, JSON.stringify({ samples, setup, throughput: tput, shaped }, null, 1));
console.log(lines.join('\n'));
sh(['podman', 'rm', '-af'], { env: podEnv, allowFail: true });
fs.rmSync(work, { recursive: true, force: true });
