#!/usr/bin/env bash
# Installs what ply needs on a fresh Debian 12 machine (as root) and builds it. Idempotent and quiet when
# everything is already there. Sourced by test.sh, demo.sh and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(runc crun busybox-static tini curl skopeo umoci podman docker-registry debootstrap zstd xz-utils bzip2 apache2-utils tmux util-linux python3 nftables aardvark-dns iproute2 containerd docker.io docker-compose gzip libdeflate-dev libisal-dev libzstd-dev)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "setup: missing Debian packages ${missing[*]} (run as root to install)" >&2; exit 1; fi
  echo "setup: apt-get install ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# npm ci only when the lock file changed since the last install (it rebuilds the native addons from source).
stamp=node_modules/.ply-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund >&2
  cp package-lock.json "$stamp"
fi

# ply's own addon and service client (native/, built by npm through node-gyp) are not versioned by the lock
# file: rebuild them when their sources are newer than the build.
addon=native/build/Release/ply_native.node
client=native/build/Release/ply-client
deflate=native/build/Release/ply_deflate.node
if [ ! -f "$addon" ] || [ ! -f "$client" ] || [ ! -f "$deflate" ] || [ -n "$(find native/*.c native/binding.gyp -newer "$addon" 2>/dev/null)" ] ||
  [ -n "$(find native/*.c native/binding.gyp -newer "$client" 2>/dev/null)" ] ||
  [ -n "$(find native/*.c native/binding.gyp -newer "$deflate" 2>/dev/null)" ]; then
  echo "setup: npm rebuild ply-native" >&2
  npm rebuild ply-native --no-audit --no-fund >&2
fi

npm run --silent build
