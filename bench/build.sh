#!/usr/bin/env bash
# Build benchmark: `ply build` against `podman build` (buildah) on the same context, same run, alternating sides.
# A 6-step Dockerfile on the busybox fixture (ENV, WORKDIR, COPY, RUN, LABEL, CMD), timed four ways:
#   cold            --no-cache (the base image is present in both stores)
#   cached          nothing changed since the last (untimed) build: every step from the cache
#   last-changed    only the last instruction (CMD) differs from the previous build
#   source-changed  one COPY source edited: COPY, RUN, LABEL and CMD rebuilt
#   bash bench/build.sh [ROUNDS]     (default 7; needs root, runc, podman; a build: npm run build)
# Writes bench/results/build-<date>.md (medians, min/max and every sample).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-7}"
[ "$(id -u)" = 0 ] || { echo "bench: run as root (runc and overlay mounts need it)" >&2; exit 1; }
for tool in podman runc node; do command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 1; }; done
[ -f dist/cli/main.js ] || { echo "bench: build first (npm run build)" >&2; exit 1; }

WORK="$(mktemp -d /dev/shm/ply-bench-build.XXXXXX)"
cat >"$WORK/containers.conf" <<'EOF'
[engine]
runtime = "runc"
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
EOF
export CONTAINERS_CONF="$WORK/containers.conf"
export PLY_ROOT="$WORK/ply"
PLY=(node "$PWD/bin/ply")
PODMAN=(podman --root "$WORK/podman-root" --runroot "$WORK/podman-run" --storage-driver overlay)
cleanup() {
  "${PODMAN[@]}" system reset -f >/dev/null 2>&1 || true
  grep -o "$WORK[^ ]*" /proc/self/mounts 2>/dev/null | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "bench: busybox fixture and stores in $WORK" >&2
bash test/fixtures/busybox-rootfs.sh "$WORK/busybox.tar"

CTX="$WORK/ctx"
mkdir -p "$CTX/src"
for i in $(seq 1 20); do head -c 4096 /dev/urandom | base64 >"$CTX/src/file$i.txt"; done
dockerfile() {
  cat >"$CTX/Dockerfile" <<EOF
FROM busybox
ENV APP_HOME=/app MODE=bench
WORKDIR /app
COPY src/ ./src/
RUN cat src/*.txt | wc -c > /app/size.txt
LABEL org.example.bench=build
CMD ["cat", "/app/size.txt", "$1"]
EOF
}
dockerfile v0

now_ns() { date +%s%N; }
declare -A SAMPLES
build_ply() { "${PLY[@]}" build -q "$@" -t bench:latest "$CTX" >/dev/null; }
build_podman() { "${PODMAN[@]}" build -q --pull=never --network host --layers "$@" -t bench:latest "$CTX" >/dev/null 2>&1; }
timed() { # timed NAME SIDE ARGS...
  local name=$1 side=$2
  shift 2
  local t0 t1
  t0=$(now_ns)
  "build_$side" "$@"
  t1=$(now_ns)
  SAMPLES[$name-$side]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }') "
}

# Each round starts both sides from a fresh store holding only the base image (so neither side's cache lookup
# slows down with the images earlier rounds left), then does one untimed warm-up build (unpacks the base).
fresh_ply() {
  rm -rf "$PLY_ROOT"
  "${PLY[@]}" import "$WORK/busybox.tar" busybox:latest >/dev/null
}
fresh_podman() {
  "${PODMAN[@]}" system reset -f >/dev/null 2>&1 || true
  "${PODMAN[@]}" import "$WORK/busybox.tar" busybox:latest >/dev/null 2>&1
}
serial=0
for round in $(seq "$ROUNDS"); do
  for side in ply podman; do
    "fresh_$side"
    "build_$side"
    timed cold "$side" --no-cache
    # Untimed: a plain build of this exact context first, so "cached" follows a normal build on both sides.
    "build_$side"
    timed cached "$side"
    serial=$((serial + 1))
    dockerfile "v$serial"
    timed last-changed "$side"
    echo "round $round $side $(date +%s%N)" >>"$CTX/src/file1.txt"
    timed source-changed "$side"
  done
  printf 'round %d done\n' "$round" >&2
done

stats() { # median min max of the samples
  tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f %.3f %.3f", m, a[1], a[NR] }'
}
DATE="$(date -u +%Y-%m-%d)"
OUT="bench/results/build-$DATE.md"
mkdir -p bench/results
{
  echo "# ply build vs podman build — $DATE"
  echo
  echo "Host: $(uname -r), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')), node $(node --version), $(podman --version), $(runc --version | head -1)."
  echo "Stores on /dev/shm (ply's overlay snapshots; podman --storage-driver overlay, runtime runc, --network host for both)."
  echo "Dockerfile: FROM busybox + ENV, WORKDIR, COPY (20 files, 110 KB), RUN, LABEL, CMD. $ROUNDS rounds, sides alternating;"
  echo "each round each side starts from a fresh store with only the base image and one untimed warm-up build."
  echo "Times are wall clock for the whole command (\`ply build -q\` via node bin/ply, \`podman build -q --layers\`), in seconds."
  echo
  echo "| scenario | ply median | ply min–max | podman median | podman min–max | ply / podman |"
  echo "|---|---|---|---|---|---|"
  for name in cold cached last-changed source-changed; do
    read -r pm pmin pmax <<<"$(stats "${SAMPLES[$name-ply]}")"
    read -r qm qmin qmax <<<"$(stats "${SAMPLES[$name-podman]}")"
    ratio=$(awk -v a="$pm" -v b="$qm" 'BEGIN { printf "%.2f", a / b }')
    echo "| $name | $pm | $pmin–$pmax | $qm | $qmin–$qmax | $ratio |"
  done
  echo
  echo "Floor for comparison: \`ply --version\` (Node start-up + CLI load) median $(
    s=""
    for _ in $(seq 7); do t0=$(now_ns); "${PLY[@]}" --version >/dev/null; t1=$(now_ns); s+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }') "; done
    stats "$s" | cut -d' ' -f1
  ) s; \`node -e 0\` median $(
    s=""
    for _ in $(seq 7); do t0=$(now_ns); node -e 0; t1=$(now_ns); s+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }') "; done
    stats "$s" | cut -d' ' -f1
  ) s."
  echo
  echo "Samples:"
  echo
  for name in cold cached last-changed source-changed; do
    for side in ply podman; do echo "- $name $side: ${SAMPLES[$name-$side]}"; done
  done
} >"$OUT"
cat "$OUT"
