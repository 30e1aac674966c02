// Profiles ply's side of the slowest ratios: one run under `node --cpu-prof` (self time by function and by
// module) and one under `strace -f -c` (system calls of ply and its children), plus CPU/wall of the timed runs.
import fs from 'node:fs';
import path from 'node:path';
import { plyNodeScript } from './engines.mjs';
import { runOp } from './runner.mjs';
import { log } from './util.mjs';

/** The ops where ply's median is furthest above the fastest peer's (bare runc is a floor, not a peer; "ply (service)"
 * is ply itself). */
export function slowestRatios(results, n = 2) {
  const rows = [];
  for (const r of results) {
    const p = r.sides.find((s) => s.primary);
    if (!p || p.name !== 'ply' || !p.median) continue;
    const peers = r.sides.filter((s) => !s.primary && s.median && !s.name.startsWith('runc') && !s.name.startsWith('ply'));
    if (!peers.length) continue;
    const best = peers.reduce((a, b) => (a.median < b.median ? a : b));
    rows.push({ op: r.name, ratio: p.median / best.median, peer: best.name, ply: p, best });
  }
  return rows.sort((a, b) => b.ratio - a.ratio).slice(0, n);
}

function shortUrl(url) {
  if (!url) return '';
  const u = url.replace(/^file:\/\//, '');
  const m = u.match(/\/(dist\/.*)$/) ?? u.match(/node_modules\/(.*)$/);
  if (m) return m[1];
  return u.startsWith('node:') ? u : path.basename(u);
}

/** Self time per function and per module of a .cpuprofile. */
export function summarizeCpuProfile(file) {
  const p = JSON.parse(fs.readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i], (self.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
  const total = p.endTime - p.startTime;
  const fn = new Map();
  const mod = new Map();
  for (const [id, us] of self) {
    const n = byId.get(id);
    const cf = n.callFrame;
    const name = cf.functionName || '(anonymous)';
    const url = shortUrl(cf.url);
    const key = url ? `${name} (${url}:${cf.lineNumber + 1})` : name;
    fn.set(key, (fn.get(key) ?? 0) + us);
    let m = url ? url.replace(/^dist\//, 'ply:').replace(/^node:internal.*/, 'node:internal') : name;
    if (/^[^/]+\//.test(m) && !m.startsWith('ply:')) m = m.split('/')[0];
    mod.set(m, (mod.get(m) ?? 0) + us);
  }
  const top = (map, k) => [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, k).map(([name, us]) => ({ name, ms: us / 1000, pct: (100 * us) / total }));
  return { totalMs: total / 1000, functions: top(fn, 12), modules: top(mod, 10) };
}

/** The first lines of strace -c output (the busiest system calls by time). */
function summarizeStrace(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const head = lines.findIndex((l) => l.includes('% time'));
  if (head < 0) return [];
  const rows = lines.slice(head + 2).filter((l) => l.trim() && !l.startsWith('---'));
  const total = rows.find((l) => /\btotal$/.test(l.trim()));
  return [...rows.filter((l) => !/\btotal$/.test(l.trim())).slice(0, 10), ...(total ? [total] : [])].map((l) => l.trim());
}

export async function profileSlowest(results, ops, ctx, dir) {
  const out = [];
  fs.mkdirSync(dir, { recursive: true });
  // The two slowest ratios overall, and the two slowest among the data ops (those with a byte count) when they
  // differ: start-up-bound CLI ops and throughput-bound ops are limited by different things.
  const rows = slowestRatios(results);
  for (const r of slowestRatios(results.filter((x) => x.data), 2)) if (!rows.some((x) => x.op === r.op)) rows.push(r);
  for (const row of rows) {
    const op = ops.find((o) => o.name === row.op);
    const profDir = path.join(dir, row.op);
    fs.rmSync(profDir, { recursive: true, force: true });
    fs.mkdirSync(profDir, { recursive: true });
    const straceFile = path.join(profDir, 'strace.txt');
    log(`profile: ${row.op} (ply/${row.peer} = ${row.ratio.toFixed(2)})`);
    const res = await runOp(op, ctx, {
      only: 'ply',
      warmup: 1,
      rounds: 2,
      instrument: (round, argv, env) => {
        // --cpu-prof is refused in NODE_OPTIONS: run ply's script under `node --cpu-prof` instead (bin/ply is a sh
        // script running the native client, so the script is bin/ply.cjs; the ply side has PLY_SERVICE=0 anyway).
        if (round === 1 && argv[0] === ctx.plyBin) return { argv: [process.execPath, '--cpu-prof', `--cpu-prof-dir=${profDir}`, plyNodeScript(ctx.plyBin), ...argv.slice(1)], env };
        if (round === 2) return { argv: ['strace', '-f', '-c', '-o', straceFile, '--', ...argv], env };
        return null;
      },
    });
    const entry = {
      op: row.op,
      ratio: row.ratio,
      peer: row.peer,
      plyMedian: row.ply.median,
      peerMedian: row.best.median,
      plyCpu: row.ply.cpuMedian,
      peerCpu: row.best.cpuMedian,
      dir: profDir,
      error: res.error ?? res.sides[0]?.error ?? null,
      profiledWall: res.sides[0]?.samples[0] ?? null,
    };
    try {
      const profs = fs.readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile')).map((f) => path.join(profDir, f));
      // Children such as a container monitor may write profiles too: summarise the largest (the CLI's).
      profs.sort((a, b) => fs.statSync(b).size - fs.statSync(a).size);
      if (profs.length) entry.cpu = summarizeCpuProfile(profs[0]);
      entry.profiles = profs.length;
    } catch (e) {
      entry.error = entry.error ?? `cpu profile: ${e.message}`;
    }
    try {
      entry.strace = summarizeStrace(straceFile);
    } catch {}
    out.push(entry);
  }
  return out;
}
