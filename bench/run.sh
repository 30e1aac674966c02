#!/usr/bin/env bash
# ply against podman, skopeo, docker, bare runc and this machine's limits, in one run:
#   bash bench/run.sh            every operation (npm run bench)
#   bash bench/run.sh run import a subset (names: see bench/README.md)
# Env: BENCH_ROUNDS (timed rounds per op, default 5), BENCH_PROFILE=0 (skip profiling), PLY_BENCH_BIN (a ply to test
# instead of a snapshot of this tree's build).
# Needs root (dockerd, runc, mounts). Writes bench/results/<date>-<host>.md and .json.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then echo "bench: run as root (dockerd, runc and overlay mounts need it)" >&2; exit 1; fi

# Peers and tools, installed when missing (Debian 12 packages).
APT=(podman skopeo docker-registry docker.io runc debootstrap time strace zstd busybox-static curl)
missing=()
for p in "${APT[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: apt-get install ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
# hyperfine is optional (not used for the numbers; handy for ad-hoc checks).
dpkg-query -W -f='${Status}' hyperfine 2>/dev/null | grep -q 'install ok installed' ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends hyperfine >/dev/null 2>&1 || true

[ -d node_modules ] || bash scripts/setup.sh

# A snapshot of ply's build, so that rebuilds of dist/ by others during the run do not change what is measured:
# compile src/ into bench/.cache/ply/dist; if the tree does not compile right now, copy the last dist/ instead.
# (Node resolves ply's packages from the repository's node_modules, two directories up.)
snap=bench/.cache/ply
if [ -z "${PLY_BENCH_BIN:-}" ]; then
  rm -rf "$snap.new"
  mkdir -p "$snap.new/bin"
  if npx tsc -p tsconfig.json --outDir "$snap.new/dist" --declaration false >"$snap.new/tsc.log" 2>&1; then
    export PLY_BENCH_BUILD="src/ compiled at $(git rev-parse --short HEAD)$(git status --porcelain src | grep -q . && echo ' + uncommitted changes')"
  else
    echo "bench: src/ does not compile now ($(head -1 "$snap.new/tsc.log")); measuring the last build in dist/" >&2
    rm -rf "$snap.new/dist"
    [ -f dist/cli/main.js ] || { echo "bench: no dist/ either: npm run build first" >&2; exit 1; }
    cp -a dist "$snap.new/dist"
    export PLY_BENCH_BUILD="copy of dist/ (src/ did not compile at run time)"
  fi
  cp bin/ply "$snap.new/bin/ply"
  chmod +x "$snap.new/bin/ply"
  rm -rf "$snap"
  mv "$snap.new" "$snap"
fi

exec node bench/bench.mjs "$@"
