// Runs one operation: state set-up, then every side in turn, A B C A B C …, a warm-up round then N timed rounds.
// A side that fails is reported with its error line and skipped for the rest of that op; the run goes on.
import os from 'node:os';
import { startPlyService } from './engines.mjs';
import { log, median, timed } from './util.mjs';

export const DEFAULT_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

/** The ply, podman and docker engines that are up. */
export const engines = (ctx) => [ctx.ply, ctx.podman, ctx.docker].filter(Boolean);

/** A timed command was served by a warm worker of `ply system service` when its peak RSS is the native client's
 * (~2 MB) rather than Node's (≥ 40 MB): the worker is not a child of the client, the direct path execs node. */
export const servedByWorker = (m) => m.rssKB != null && m.rssKB < 20 * 1024;

/**
 * Starts `ply system service` for the ply engine's store once, before the first op with a "ply (service)" side
 * (`op.service`); it runs until the end (bench.mjs stops ctx.servers, also on failure). A failure to start is
 * kept in ctx.plyServiceError and shown as that side's error.
 */
export async function ensurePlyService(ctx) {
  if (ctx.plyService || ctx.plyServiceError || !ctx.ply) return;
  try {
    log('ply system service: starting for the ply store');
    const svc = await startPlyService(ctx.ply, ctx.work);
    ctx.servers.push(svc);
    ctx.plyService = svc;
    // Start-up of ply's smallest command through the service (each sample after its workers are ready again).
    const secs = [];
    let served = 0;
    for (let i = 0; i < 10; i++) {
      await svc.ready();
      const m = timed([...ctx.ply.argv, 'version'], { env: svc.env });
      secs.push(m.secs);
      if (servedByWorker(m)) served++;
    }
    await svc.ready();
    if (ctx.facts.startup) {
      ctx.facts.startup.plyVersionService = median(secs);
      ctx.facts.startup.plyVersionServiceServed = `${served}/10`;
    }
  } catch (e) {
    ctx.plyServiceError = `ply system service: ${e.message}`;
    log(ctx.plyServiceError);
  }
}

/** Debian image (imported from the same tar) present on every side. */
export function ensurePresent(ctx) {
  for (const e of engines(ctx)) e.ensureImported(ctx.base, ctx.fx.debianTar);
}

/** No image holding the Debian layer on any side (only the busybox images stay). */
export function ensureAbsent(ctx) {
  for (const e of engines(ctx)) e.clearImages();
}

export async function runOp(op, ctx, opts = {}) {
  const rounds = opts.rounds ?? op.rounds ?? DEFAULT_ROUNDS;
  const warmup = opts.warmup ?? op.warmup ?? 1;
  const res = {
    name: op.name,
    title: op.title,
    data: null,
    bound: null,
    note: op.note ?? '',
    error: null,
    sides: [],
    rounds,
    warmup,
  };
  const t0 = Date.now();
  let sides = [];
  try {
    for (const e of engines(ctx)) e.ensureImported(ctx.bb, ctx.fx.busyboxTar);
    if (op.service && (!opts.only || opts.only === 'ply (service)')) await ensurePlyService(ctx);
    if (op.needs === 'present') ensurePresent(ctx);
    if (op.needs === 'absent') ensureAbsent(ctx);
    if (op.setup) await op.setup(ctx);
    res.data = op.data ? op.data(ctx) : null;
    res.bound = typeof op.bound === 'function' ? op.bound(ctx) : (op.bound ?? null);
    sides = op.sides(ctx).filter(Boolean);
  } catch (e) {
    res.error = `set-up: ${e.message}`;
    log(`${op.name}: ${res.error}`);
    await teardown(op, ctx, res);
    return res;
  }
  if (opts.only) sides = sides.filter((s) => s.name === opts.only);
  for (const s of sides) {
    res.sides.push({ name: s.name, primary: !!s.primary, samples: [], rss: [], cpu: [], extra: [], error: s.unavailable ?? null, unavailable: !!s.unavailable });
  }
  const total = warmup + rounds;
  for (let round = 0; round < total; round++) {
    for (let k = 0; k < sides.length; k++) {
      const s = sides[k];
      const r = res.sides[k];
      if (r.error) continue;
      let st;
      try {
        st = s.prep ? await s.prep(round) : {};
        let argv = s.argv(st);
        let env = s.env;
        const inst = opts.instrument?.(round, argv, env);
        if (inst) ({ argv, env } = inst);
        const m = timed(argv, { env, timeout: op.timeout ?? 600 });
        if (round >= warmup) {
          r.samples.push(m.secs);
          r.rss.push(m.rssKB);
          r.cpu.push(m.cpu);
        }
        if (s.after) {
          const extra = await s.after(st, m);
          if (round >= warmup && extra) r.extra.push(extra);
        }
      } catch (e) {
        r.error = e.message;
        log(`${op.name}/${s.name}: FAILED ${e.message}`);
      } finally {
        try {
          if (s.clean) await s.clean(st ?? {});
        } catch (e) {
          if (!r.error) r.error = `clean-up: ${e.message}`;
          log(`${op.name}/${s.name}: clean-up failed: ${e.message}`);
        }
      }
    }
  }
  await teardown(op, ctx, res);
  summarize(res);
  res.elapsed = (Date.now() - t0) / 1000;
  res.loadavg1 = os.loadavg()[0];
  log(`${op.name}: done in ${res.elapsed.toFixed(0)} s: ${res.sides.map((s) => `${s.name} ${s.median == null ? 'failed' : s.median.toFixed(3) + ' s'}`).join(', ')}`);
  return res;
}

async function teardown(op, ctx, res) {
  if (!op.teardown) return;
  try {
    await op.teardown(ctx);
  } catch (e) {
    res.note = `${res.note ? res.note + ' ' : ''}(tear-down failed: ${e.message})`;
  }
}

/** Medians, spread, ratios against the primary side, throughput against the bound. */
export function summarize(res) {
  for (const s of res.sides) {
    s.median = median(s.samples);
    s.min = s.samples.length ? Math.min(...s.samples) : null;
    s.max = s.samples.length ? Math.max(...s.samples) : null;
    s.rssMedianKB = median(s.rss.filter((x) => x != null));
    s.cpuMedian = median(s.cpu.filter((x) => x != null));
    if (s.extra.length) {
      s.extraMedian = {};
      for (const k of Object.keys(s.extra[0])) {
        const vals = s.extra.map((e) => e[k]).filter((v) => typeof v === 'number');
        if (vals.length) s.extraMedian[k] = median(vals);
      }
    }
    if (res.data && s.median) {
      s.throughput = res.data.bytes / s.median;
      if (res.bound?.rate) s.ofBound = s.throughput / res.bound.rate;
    }
    if (s.error && s.samples.length) s.error = `${s.error} (after ${s.samples.length} samples)`;
    if (s.error && s.samples.length) s.median = null;
  }
  const p = res.sides.find((s) => s.primary);
  for (const s of res.sides) if (p && s !== p && p.median && s.median) s.ratio = p.median / s.median;
}
