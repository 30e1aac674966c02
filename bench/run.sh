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

# A snapshot of ply's build, so that edits and rebuilds by others during the run do not change what is measured:
# src/, bin/, tsconfig.json, package.json and scripts/ are copied to bench/.cache/ply and built there with the
# project's own `npm run build` (tsc, plus whatever else the build script does, e.g. bundling); node_modules is a
# symlink to the repository's. If that build fails (src/ mid-edit), the last dist/ and bin/ are copied instead.
snap=bench/.cache/ply
if [ -z "${PLY_BENCH_BIN:-}" ]; then
  rm -rf "$snap.new"
  mkdir -p "$snap.new"
  cp -a src bin tsconfig.json package.json "$snap.new/"
  [ -d scripts ] && cp -a scripts "$snap.new/"
  ln -s ../../../node_modules "$snap.new/node_modules"
  rev="$(git rev-parse --short HEAD)$( (git status --porcelain src bin scripts package.json | grep -q .) && echo ' + uncommitted changes' || true)"
  if (cd "$snap.new" && npm run -s build) >"$snap.new/build.log" 2>&1; then
    export PLY_BENCH_BUILD="npm run build of src/ at $rev"
  else
    echo "bench: the build fails now ($(grep -m1 -i error "$snap.new/build.log" || tail -1 "$snap.new/build.log")); measuring the last dist/" >&2
    [ -f dist/cli/main.js ] || { echo "bench: no dist/ either: npm run build first" >&2; exit 1; }
    rm -rf "$snap.new/dist" "$snap.new/bin"
    cp -a dist bin "$snap.new/"
    export PLY_BENCH_BUILD="copy of the last dist/ (the build failed at run time, $rev)"
  fi
  rm -rf "$snap"
  mv "$snap.new" "$snap"
fi

exec node bench/bench.mjs "$@"
