// The results: bench/results/<date>-<host>.md (tables and notes) and .json (every sample).
import fs from 'node:fs';
import path from 'node:path';
import { LIMIT_TEXT } from './limits.mjs';
import { fmtMB, fmtS, MiB } from './util.mjs';

const rate = (b) => (b == null ? '—' : `${(b / MiB).toFixed(0)} MiB/s`);
const pct = (x) => (x == null ? '' : ` (${(100 * x).toFixed(0)}%)`);
const spread = (s) => (s.min == null ? '—' : `${fmtS(s.min)}–${fmtS(s.max)}`);
const esc = (t) => String(t).replace(/\|/g, '\\|').replace(/\n/g, ' ');

function extraText(s) {
  const e = s.extraMedian;
  if (!e) return '';
  const parts = [];
  if (e.servedBytes != null) parts.push(`${(e.servedBytes / MiB).toFixed(2)} MiB served, ${e.blobGets} blob GETs`);
  if (e.storedBytes != null) parts.push(`${(e.storedBytes / MiB).toFixed(1)} MiB stored in registry, ${e.requests} requests`);
  if (e.archiveBytes != null) parts.push(`${(e.archiveBytes / MiB).toFixed(1)} MiB written`);
  if (e.linkBytes != null) {
    const tcp = e.linkTcpSecs != null ? `, TCP floor ${fmtS(e.linkTcpSecs)} (median / floor ${(s.median / e.linkTcpSecs).toFixed(2)})` : '';
    parts.push(`${(e.linkBytes / MiB).toFixed(1)} MiB over the link, its bound ${fmtS(e.linkBoundSecs)} (median / bound ${(s.median / e.linkBoundSecs).toFixed(2)})${tcp}`);
  }
  return parts.join('; ');
}

/** For the "ply (service)" side: how many timed samples a warm worker served (the rest fell back to the direct path). */
function servedText(s) {
  const marks = (s.extra ?? []).map((e) => e.servedByWorker).filter((v) => v != null);
  if (!marks.length) return '';
  const n = marks.reduce((a, b) => a + b, 0);
  return n === marks.length
    ? `${s.name}: all ${n} samples served by a warm worker; RSS = ply-client's`
    : `${s.name}: **only ${n} of ${marks.length} samples served by a warm worker** (the others ran the direct path); RSS = ply-client's`;
}

function sideCell(s) {
  if (s.median == null) return s.unavailable ? 'n/a' : 'FAILED';
  return fmtS(s.median);
}

export function tableRows(results) {
  const rows = [];
  for (const r of results) {
    if (r.error && !r.sides.length) {
      rows.push(`| ${r.name} | FAILED | — | — | — | — | — | — | ${esc(r.error)} |`);
      continue;
    }
    const p = r.sides.find((s) => s.primary) ?? r.sides[0];
    const peers = r.sides.filter((s) => s !== p);
    const plyTp = p.throughput != null ? `${rate(p.throughput)}${pct(p.ofBound)}` : '';
    const pExtra = extraText(p);
    const pNote = p.error ? `${p.name}: ${p.error}` : '';
    for (const [i, s] of (peers.length ? peers : [null]).entries()) {
      const first = i === 0;
      const plyCells = first
        ? [`**${r.name}**${p.name !== 'ply' ? ` (${p.name})` : ''}`, sideCell(p)]
        : ['', ''];
      if (!s) {
        rows.push(`| ${plyCells.join(' | ')} | — | — | — | ${spread(p)} | ${fmtMB(p.rssMedianKB)} | ${plyTp} | ${esc([pExtra, pNote].filter(Boolean).join('; '))} |`);
        continue;
      }
      const ratio = s.ratio != null ? `${s.ratio.toFixed(2)}` : '—';
      const tp = [first ? plyTp : '', s.throughput != null ? `${s.name}: ${rate(s.throughput)}${pct(s.ofBound)}` : ''].filter(Boolean).join(' / ');
      const notes = [first ? pExtra : '', first ? pNote : '', extraText(s) ? `${s.name}: ${extraText(s)}` : '', servedText(s), s.error ? `${s.name}: ${s.error}` : ''].filter(Boolean).join('; ');
      rows.push(`| ${plyCells.join(' | ')} | ${s.name} ${sideCell(s)} | ${ratio} | ${first ? spread(p) : ''} | ${spread(s)} | ${first ? fmtMB(p.rssMedianKB) + ' / ' : ''}${fmtMB(s.rssMedianKB)} | ${tp} | ${esc(notes)} |`);
    }
  }
  return rows;
}

/** The targets of issues 3–7, checked against this run. */
export function targetRows(results, limits) {
  const get = (op) => results.find((r) => r.name === op);
  const side = (r, name) => r?.sides.find((s) => s.name === name && s.median != null);
  const peersOf = (r, names) => (r ? r.sides.filter((s) => !s.primary && s.median != null && (!names || names.includes(s.name))) : []);
  const fastest = (r, names) => peersOf(r, names).reduce((a, b) => (!a || b.median < a.median ? b : a), null);
  const rows = [];
  const add = (op, target, ok, detail) => rows.push(`| ${op} | ${target} | ${ok == null ? 'not measured' : ok ? 'met' : '**not met**'} | ${detail} |`);
  const ply = (r) => r?.sides.find((s) => s.primary && s.median != null);
  for (const op of ['import', 'save', 'load', 'export']) {
    const r = get(op), p = ply(r), f = fastest(r, ['podman', 'docker']);
    add(op, 'ply ≤ ½ of the faster of podman and docker (issue 4)', p && f ? p.median <= f.median / 2 : null, p && f ? `ply ${fmtS(p.median)}, ${f.name} ${fmtS(f.median)}` : '');
  }
  {
    const r = get('commit'), p = ply(r), f = fastest(r, ['podman', 'docker']);
    add('commit', 'ply faster than podman and docker (issue 4)', p && f ? p.median < f.median : null, p && f ? `ply ${fmtS(p.median)}, ${f.name} ${fmtS(f.median)}` : '');
  }
  {
    // Both ways: ply direct (PLY_SERVICE=0) and "ply (service)" (served by `ply system service`'s warm workers).
    const r = get('run'), pod = side(r, 'podman'), rc = side(r, 'runc (bare)');
    const plys = [ply(r), side(r, 'ply (service)')].filter(Boolean);
    const both = (target, ref, ok, numbers) => {
      if (!ref || !plys.length) return add('run', target, null, '');
      const verdict = plys.map((s) => `${s.name}: ${ok(s) ? 'met' : '**not met**'}`).join('; ');
      rows.push(`| run | ${target} | ${verdict} | ${numbers()} |`);
    };
    both('ply < ½ of podman (issue 3)', pod, (s) => s.median < pod.median / 2,
      () => `${plys.map((s) => `${s.name} ${fmtS(s.median)}`).join(', ')}, podman ${fmtS(pod.median)}`);
    both('ply within 60 ms of bare runc (issue 3)', rc, (s) => s.median - rc.median <= 0.06,
      () => `${plys.map((s) => `${s.name} − runc = ${fmtS(s.median - rc.median)}`).join(', ')} (runc ${fmtS(rc.median)})`);
  }
  for (const op of ['push', 'pull']) {
    const r = get(op), p = ply(r), f = fastest(r, ['podman', 'skopeo', 'docker']);
    add(op, 'ply ≤ ½ of the fastest of podman, skopeo, docker (issue 5)', p && f ? p.median <= f.median / 2 : null, p && f ? `ply ${fmtS(p.median)}, ${f.name} ${fmtS(f.median)}` : '');
  }
  {
    const r = get('pull'), p = ply(r);
    add('pull', 'pull throughput ≥ 60% of one core\'s gunzip+sha256 (issue 5)', p?.ofBound != null ? p.ofBound >= 0.6 : null, p?.ofBound != null ? `${(100 * p.ofBound).toFixed(0)}% of ${rate(limits.gunzipSha256)}` : '');
  }
  {
    // Issue 20: compressed pushes over the shaped link and on loopback; pulls within the link's bound.
    const r = get('push-link'), p = ply(r), pod = side(r, 'podman'), z = side(r, 'ply zstd');
    const bound = (s) => s?.extraMedian?.linkBoundSecs;
    add('push-link', 'ply (gzip) ≤ 1.0× podman over the link (issue 20)', p && pod ? p.median <= pod.median : null, p && pod ? `ply ${fmtS(p.median)}, podman ${fmtS(pod.median)}` : '');
    add('push-link', 'ply (gzip) within 1.15× of its bytes / link rate (issue 20)', p && bound(p) ? p.median <= 1.15 * bound(p) : null, p && bound(p) ? `ply ${fmtS(p.median)}, bound ${fmtS(bound(p))} (${(p.median / bound(p)).toFixed(2)}×)` : '');
    add('push-link', 'ply zstd ≤ 0.6× podman\'s gzip push (issue 20)', z && pod ? z.median <= 0.6 * pod.median : null, z && pod ? `ply zstd ${fmtS(z.median)}, podman ${fmtS(pod.median)} (${(z.median / pod.median).toFixed(2)}×)` : '');
    const l = get('pull-link'), lp = ply(l);
    add('pull-link', 'ply pull within 1.1× of its bytes / link rate (issue 20)', lp && bound(lp) ? lp.median <= 1.1 * bound(lp) : null, lp && bound(lp) ? `ply ${fmtS(lp.median)}, bound ${fmtS(bound(lp))} (${(lp.median / bound(lp)).toFixed(2)}×)` : '');
    const lo = get('push'), lop = ply(lo), lpod = side(lo, 'podman');
    add('push', 'ply ≤ 0.5× podman on loopback, both compressing (issue 20)', lop && lpod ? lop.median <= 0.5 * lpod.median : null, lop && lpod ? `ply ${fmtS(lop.median)}, podman ${fmtS(lpod.median)} (${(lop.median / lpod.median).toFixed(2)}×)` : '');
  }
  for (const op of ['registry-push', 'registry-pull']) {
    const r = get(op), p = ply(r), d = side(r, 'skopeo→distribution') ?? side(r, 'skopeo←distribution');
    add(op, 'ply registry as fast as docker-registry or faster (issue 6)', p && d ? p.median <= d.median : null, p && d ? `${fmtS(p.median)} vs ${fmtS(d.median)}` : '');
  }
  for (const op of ['build-cold', 'build-cached']) {
    const r = get(op), p = ply(r), pod = side(r, 'podman');
    add(op, 'ply < ½ of podman (issue 7)', p && pod ? p.median < pod.median / 2 : null, p && pod ? `ply ${fmtS(p.median)}, podman ${fmtS(pod.median)}` : '');
  }
  {
    const p = ply(get('build-cached'));
    add('build-cached', 'cached rebuild < 0.15 s (issue 7)', p ? p.median < 0.15 : null, p ? `ply ${fmtS(p.median)}` : '');
    const pod = side(get('build-cached'), 'podman');
    add('build-cached', 'fully cached rebuild ≤ 0.5× podman (issue 21)', p && pod ? p.median <= 0.5 * pod.median : null, p && pod ? `ply ${fmtS(p.median)}, podman ${fmtS(pod.median)} (${(p.median / pod.median).toFixed(2)}×)` : '');
    const cf = get('build-cache-from'), c = ply(cf), bound = side(cf, 'ply pull (bound)');
    const mib = (s) => (s?.extraMedian?.servedBytes != null ? `${(s.extraMedian.servedBytes / MiB).toFixed(1)} MiB` : '?');
    add('build-cache-from', '--cache-from on a fresh store bounded by pulling the cached layers: ≤ 1.5× the pull, no more bytes (issue 21)',
      c && bound ? c.median <= 1.5 * bound.median && (c.extraMedian?.servedBytes ?? Infinity) <= 1.05 * (bound.extraMedian?.servedBytes ?? 0) + 65536 : null,
      c && bound ? `build ${fmtS(c.median)} (${mib(c)}), pull ${fmtS(bound.median)} (${mib(bound)}): ${(c.median / bound.median).toFixed(2)}×` : '');
  }
  return rows;
}

export function writeReport({ results, limits, startup, facts, notes, profiles, outDir, stamp, host, argv }) {
  fs.mkdirSync(outDir, { recursive: true });
  const base = path.join(outDir, `${stamp}-${host}`);
  const md = [];
  md.push(`# ply benchmark — ${stamp} on ${host}`, '');
  md.push(`Command: \`bash bench/run.sh${argv.length ? ' ' + argv.join(' ') : ''}\`. ${facts.rounds}`, '');
  md.push('## Results', '');
  md.push('Medians of the timed samples (wall clock of the CLI process, spawn to exit). Ratio = ply median / peer median (< 1: ply is faster); "ply" is ply run directly (PLY_SERVICE=0); the "ply (service)" peer (short commands only) is the same command through `ply system service`, so its ratio = direct / through the service. Spread = min–max. RSS = median of each run\'s peak RSS (GNU time `%M`: the largest process the CLI waited for; **docker\'s column is the docker CLI alone — the work happens in dockerd, whose memory is not counted**; podman\'s conmon is not counted either; **"ply (service)"\'s RSS is the native client\'s alone — the warm worker that runs the command is not its child**). Throughput = data bytes / median, and in parentheses its fraction of the machine limit that bounds the op (see Limits).', '');
  md.push('| operation | ply | peer | ply/peer | ply spread | peer spread | RSS ply / peer | throughput (of limit) | notes |');
  md.push('|---|---|---|---|---|---|---|---|---|');
  md.push(...tableRows(results), '');
  md.push('## Targets (issues 3–7, 20)', '', '| op | target | this run | numbers |', '|---|---|---|---|', ...targetRows(results, limits), '');
  md.push('## Operations', '');
  for (const r of results) {
    const b = r.bound ? ` Bound: ${LIMIT_TEXT[r.bound.key]} = ${rate(r.bound.rate)}.` : '';
    const d = r.data ? ` Data: ${(r.data.bytes / MiB).toFixed(1)} MiB (${r.data.what}).` : '';
    md.push(`- **${r.name}**: ${r.title}. ${r.warmup} warm-up + ${r.rounds} timed rounds, sides alternating${r.loadavg1 != null ? `; load average ${r.loadavg1.toFixed(1)} at its end (${facts.cpus} CPUs)` : ''}.${d}${b}${r.note ? ' ' + r.note : ''}${r.error ? ` **Error:** ${esc(r.error)}` : ''}`);
  }
  md.push('');
  md.push('## Limits of this machine (same run)', '');
  md.push('| limit | rate |', '|---|---|');
  for (const [k, v] of Object.entries(limits)) md.push(`| ${LIMIT_TEXT[k] ?? k} | ${rate(v)} |`);
  if (startup?.nodeWithExtraCa) md.push(`| process start-up with this sandbox's NODE_EXTRA_CA_CERTS: \`node -e 0\` / \`ply version\` | ${fmtS(startup.nodeWithExtraCa)} / ${fmtS(startup.plyVersionWithExtraCa)} |`);
  if (startup) md.push(`| process start-up: \`node -e 0\` (median of 10) | ${fmtS(startup.node)} |`, `| process start-up: \`ply version\` (median of 10, PLY_SERVICE=0) | ${fmtS(startup.plyVersion)} |`);
  if (startup?.plyVersionService != null) md.push(`| process start-up: \`ply version\` through \`ply system service\` (median of 10; ${startup.plyVersionServiceServed} served by a warm worker) | ${fmtS(startup.plyVersionService)} |`);
  md.push('');
  md.push('## Set-up and fairness', '');
  for (const n of notes) md.push(`- ${n}`);
  md.push('');
  md.push('## Versions', '');
  for (const [k, v] of Object.entries(facts.versions)) md.push(`- ${k}: ${v}`);
  md.push('');
  md.push('## What bounds the two slowest ratios', '', 'Profiled: the two slowest ratios overall and the two slowest among the data ops (ply\'s side re-run once under `node --cpu-prof`, once under `strace -f -c`).', '');
  if (!profiles.length) md.push('No op had both a ply and a peer median.');
  for (const p of profiles) {
    md.push(`### ${p.op}: ply ${fmtS(p.plyMedian)} vs ${p.peer} ${fmtS(p.peerMedian)} (ratio ${p.ratio.toFixed(2)})`, '');
    md.push(`CPU (user+sys of the CLI and the children it waited for), median: ply ${p.plyCpu?.toFixed(3) ?? '—'} s of ${fmtS(p.plyMedian)} wall; ${p.peer} ${p.peerCpu?.toFixed(3) ?? '—'} s of ${fmtS(p.peerMedian)} wall${p.peer === 'docker' ? ' (docker: the CLI only; the daemon does the work)' : ''}.`, '');
    if (p.error) md.push(`Profiling error: ${esc(p.error)}`, '');
    if (p.cpu) {
      md.push(`\`node --cpu-prof\` of ply (${p.cpu.totalMs.toFixed(0)} ms profiled; ${p.profiles} profile file(s), the largest summarised). Self time by module:`, '');
      md.push('| module | ms | % |', '|---|---|---|');
      for (const m of p.cpu.modules) md.push(`| ${esc(m.name)} | ${m.ms.toFixed(1)} | ${m.pct.toFixed(1)} |`);
      md.push('', 'Self time by function (top 12):', '', '| function | ms | % |', '|---|---|---|');
      for (const f of p.cpu.functions) md.push(`| ${esc(f.name)} | ${f.ms.toFixed(1)} | ${f.pct.toFixed(1)} |`);
      md.push('');
    }
    if (p.strace?.length) {
      md.push('`strace -f -c` of ply and its children (one run; strace slows it down):', '', '```', '% time     seconds  usecs/call     calls    errors syscall', ...p.strace, '```', '');
    }
  }
  md.push('<!-- findings -->', '');
  fs.writeFileSync(`${base}.md`, md.join('\n'));
  fs.writeFileSync(`${base}.json`, JSON.stringify({ stamp, host, argv, facts, notes, limits, results, profiles }, null, 2) + '\n');
  return `${base}.md`;
}
