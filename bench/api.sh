#!/usr/bin/env bash
# The Docker Engine API (issue 18): the docker CLI against ply's socket (`ply system service`) and against dockerd
# 20.10, both warm, same image, same commands, timed by hyperfine:
#   run     docker run --rm --network none IMAGE true     (target: ply <= 0.5x dockerd)
#   ps      docker ps -a       with BENCH_CONTAINERS created containers on each side   (target: ply <= dockerd)
#   images  docker images      with BENCH_IMAGES distinct images on each side          (target: ply <= dockerd)
# Each op runs in BENCH_PASSES passes (default 2), the sides' order swapped each pass, BENCH_RUNS timed runs per
# side and pass after 3 warm-ups; medians over all passes. Results: bench/results/<date>-<host>-api.md and .json.
#   bash bench/api.sh            # as root on Debian 12 (dockerd from docker.io; hyperfine)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PLY=${PLY_BENCH_BIN:-$REPO/bin/ply}
RUNS=${BENCH_RUNS:-20}
PASSES=${BENCH_PASSES:-2}
NIMAGES=${BENCH_IMAGES:-100}
NCONTAINERS=${BENCH_CONTAINERS:-50}
for c in hyperfine dockerd docker node; do command -v "$c" >/dev/null || { echo "bench/api: $c is missing (apt-get install hyperfine docker.io)" >&2; exit 1; }; done

W=$(mktemp -d /dev/shm/ply-bench-api-XXXXXX)
service=
cleanup() {
  [ -n "$service" ] && kill "$service" 2>/dev/null && wait "$service" 2>/dev/null || true
  docker -H "unix://$W/docker/docker.sock" ps -aq 2>/dev/null | xargs -r docker -H "unix://$W/docker/docker.sock" rm -f >/dev/null 2>&1 || true
  if [ -f "$W/docker/docker.pid" ]; then
    kill "$(cat "$W/docker/docker.pid")" 2>/dev/null || true
    for _ in $(seq 100); do [ -f "$W/docker/docker.pid" ] || break; sleep 0.1; done
  fi
  grep " $W" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
log() { echo "bench/api: $*" >&2; }

log "fixtures in $W"
"$REPO/test/fixtures/busybox-rootfs.sh" "$W/busybox.tar"

# dockerd 20.10 in directories of its own (no bridge, no iptables: containers use --network none on both sides).
mkdir -p "$W/docker"
dockerd --iptables=false --bridge=none --data-root "$W/docker/data" --exec-root "$W/docker/exec" \
  -H "unix://$W/docker/docker.sock" --pidfile "$W/docker/docker.pid" >"$W/docker/dockerd.log" 2>&1 &
DD="unix://$W/docker/docker.sock"
for _ in $(seq 200); do docker -H "$DD" version >/dev/null 2>&1 && break; sleep 0.1; done
docker -H "$DD" version --format 'dockerd {{.Server.Version}}' >&2

# ply's service on a store of its own.
export PLY_ROOT=$W/ply
PLY_SERVICE=0 "$PLY" import "$W/busybox.tar" bench/busybox >/dev/null
"$PLY" system service --workers 2 2>"$W/ply-service.log" &
service=$!
PS="unix://$PLY_ROOT/docker.sock"
for _ in $(seq 200); do docker -H "$PS" version >/dev/null 2>&1 && break; sleep 0.1; done
docker -H "$PS" version --format 'ply API {{.Server.APIVersion}}' >&2
docker -H "$DD" import "$W/busybox.tar" bench/busybox >/dev/null

log "populating: $NIMAGES images, $NCONTAINERS containers on each side"
for i in $(seq "$NIMAGES"); do
  PLY_SERVICE=0 "$PLY" import -c "LABEL n=$i" "$W/busybox.tar" "bench/many:$i" >/dev/null
  docker -H "$DD" import -c "LABEL n=$i" "$W/busybox.tar" "bench/many:$i" >/dev/null
done
for i in $(seq "$NCONTAINERS"); do
  docker -H "$PS" create -q --network none bench/busybox true >/dev/null
  docker -H "$DD" create -q --network none bench/busybox true >/dev/null
done
[ "$(docker -H "$PS" ps -aq | wc -l)" = "$(docker -H "$DD" ps -aq | wc -l)" ] || { log "container counts differ"; exit 1; }
[ "$(docker -H "$PS" images -q | wc -l)" = "$(docker -H "$DD" images -q | wc -l)" ] || { log "image counts differ"; exit 1; }

export DOCKER_CONFIG=$W/docker-config DOCKER_CLI_HINTS=false
mkdir -p "$DOCKER_CONFIG"
declare -A ARGS=([run]="run --rm --network none bench/busybox true" [ps]="ps -a" [images]="images")
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for op in run ps images; do
  for pass in $(seq "$PASSES"); do
    a=("docker -H $PS ${ARGS[$op]}") b=("docker -H $DD ${ARGS[$op]}") names=(ply dockerd)
    if [ $((pass % 2)) = 0 ]; then a=("docker -H $DD ${ARGS[$op]}") b=("docker -H $PS ${ARGS[$op]}") names=(dockerd ply); fi
    log "$op, pass $pass (${names[*]})"
    hyperfine -N --style none --warmup 3 --runs "$RUNS" -n "${names[0]}" "${a[0]}" -n "${names[1]}" "${b[0]}" \
      --export-json "$W/$op-$pass.json" >/dev/null
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p bench/results
out=bench/results/$(date -u +%F)-$(hostname -s)-api
node - "$W" "$out" "$PASSES" "$RUNS" "$NIMAGES" "$NCONTAINERS" "$load_before" "$load_after" "$(docker -H "$DD" version --format '{{.Server.Version}}')" "$(docker --version)" <<'EOF'
const fs = require('node:fs');
const [W, out, passes, runs, nimages, ncontainers, loadBefore, loadAfter, dockerdVersion, cli] = process.argv.slice(2);
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const ops = { run: { title: '`docker run --rm --network none IMAGE true`', target: 0.5 }, ps: { title: `\`docker ps -a\` (${ncontainers} containers)`, target: 1 }, images: { title: `\`docker images\` (${nimages} images)`, target: 1 } };
const json = { date: new Date().toISOString(), dockerd: dockerdVersion, cli, passes: +passes, runs: +runs, load: { before: loadBefore, after: loadAfter }, ops: {} };
const rows = [];
for (const [op, o] of Object.entries(ops)) {
  const times = { ply: [], dockerd: [] };
  for (let p = 1; p <= +passes; p++) for (const r of JSON.parse(fs.readFileSync(`${W}/${op}-${p}.json`, 'utf8')).results) times[r.command].push(...r.times);
  const ply = median(times.ply), dockerd = median(times.dockerd), ratio = ply / dockerd;
  json.ops[op] = { ply: { median: ply, min: Math.min(...times.ply), times: times.ply }, dockerd: { median: dockerd, min: Math.min(...times.dockerd), times: times.dockerd }, ratio, target: o.target, met: ratio <= o.target };
  rows.push(`| ${o.title} | ${ply.toFixed(3)} s | ${dockerd.toFixed(3)} s | ${ratio.toFixed(2)} | ≤ ${o.target} | ${ratio <= o.target ? 'met' : 'not met'} |`);
}
fs.writeFileSync(`${out}.json`, JSON.stringify(json, null, 1) + '\n');
fs.writeFileSync(`${out}.md`, `# The Docker Engine API: docker CLI → ply's socket vs dockerd ${dockerdVersion}

${json.date}; ${cli}; \`bash bench/api.sh\`. Both warm: \`ply system service --workers 2\` and dockerd already
running, the image present on both. hyperfine -N, ${passes} passes (sides' order swapped each pass) × ${runs} runs
after 3 warm-ups; medians over all runs. Load average before / after: ${loadBefore} / ${loadAfter} (2 cores,
shared with other engineers' work).

| operation | ply | dockerd | ply / dockerd | target | |
|---|---|---|---|---|---|
${rows.join('\n')}
`);
console.log(fs.readFileSync(`${out}.md`, 'utf8'));
EOF
