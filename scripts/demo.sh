#!/usr/bin/env bash
# The seed walkthrough, end to end, on a fresh Debian 12 machine as root: images as stacks of read-only layers,
# containers with a writable layer, commit, export/import, save/load, a registry with login/push/pull, build.
# Installs what is missing first; idempotent; exits non-zero if any step fails.
#   npm run demo               the full story on a Debian bookworm base (debootstrap, cached)
#   bash scripts/demo.sh --quick   the same story on the busybox fixture, offline and in seconds (npm test runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
[ "${PLY_DEMO_SKIP_SETUP:-0}" = 1 ] || bash scripts/setup.sh

export PLY_ROOT=${PLY_ROOT:-/var/lib/ply-demo}
export DOCKER_CONFIG=${DOCKER_CONFIG:-$PLY_ROOT/docker-config}
CACHE=${PLY_DEMO_CACHE:-/var/cache/ply-demo}
mkdir -p "$PLY_ROOT" "$CACHE" "$DOCKER_CONFIG"
work=$(mktemp -d /dev/shm/ply-demo.XXXXXX)
server_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ply() { ./bin/ply "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n   %s\n' "$1" "$2"; }
show() { printf '$ ply'; printf ' %q' "$@"; printf '\n'; ply "$@"; }

# Start from a clean slate so the demo tells the same story every time (the debootstrap cache stays).
for c in $(ply ps -aq --filter label=ply-demo 2>/dev/null); do ply rm -f "$c" >/dev/null; done

if [ $QUICK = 1 ]; then
  BASE=demo-base:busybox
  step "Make a base image offline" "A busybox root filesystem (Debian's busybox-static) becomes a one-layer image."
  bash test/fixtures/busybox-rootfs.sh "$work/rootfs.tar"
  CHANGE='mkdir -p /opt/tool && echo "#!/bin/sh" > /opt/tool/hello && echo "echo hello from the custom layer" >> /opt/tool/hello && chmod +x /opt/tool/hello && rm /etc/motd'
  CHECK='/opt/tool/hello'
else
  BASE=debian:bookworm
  step "Make a base image offline" "A Debian bookworm minbase rootfs from debootstrap (cached in $CACHE) becomes a one-layer image."
  if [ ! -s "$CACHE/bookworm-minbase.tar" ]; then
    mirror=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -1)
    [ -n "$mirror" ] || mirror=$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -1)
    rootfs="$CACHE/rootfs.tmp"
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$CACHE/debootstrap.log" 2>&1 || { tail -5 "$CACHE/debootstrap.log"; exit 1; }
    tar --numeric-owner -C "$rootfs" -cf "$CACHE/bookworm-minbase.tar.tmp" .
    mv "$CACHE/bookworm-minbase.tar.tmp" "$CACHE/bookworm-minbase.tar"
    rm -rf "$rootfs"
  fi
  cp "$CACHE/bookworm-minbase.tar" "$work/rootfs.tar"
  CHANGE='apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iputils-ping >/dev/null && rm -rf /var/lib/apt/lists/*'
  CHECK='ping -c1 127.0.0.1'
fi
printf '$ ply import - %s < rootfs.tar\n' "$BASE"
ply import - "$BASE" < "$work/rootfs.tar"
show images
show history "$BASE"
echo "   Notice: the layer's diffID is the sha256 of the tar itself:"
show image inspect --format '{{json .RootFS.Layers}}' "$BASE"
printf '$ sha256sum rootfs.tar\n'; sha256sum "$work/rootfs.tar"

step "An image is a template for containers" "The container gets a copy-on-write layer; every change lands there, the image stays as it was."
show run --name demo-ctr --label ply-demo=1 "$BASE" sh -c "$CHANGE"
printf '$ ply diff demo-ctr | cut -c1 | sort | uniq -c    (A added, C changed, D deleted)\n'
ply diff demo-ctr | cut -c1 | sort | uniq -c

step "Commit the container: base layer + a custom layer" "The new image shares the base layer; only the writable layer is new."
show container commit -m "custom layer" demo-ctr demo-custom:v1
show run --rm demo-custom:v1 sh -c "$CHECK"
show history demo-custom:v1
echo "   Notice: the base image is unchanged:"
show run --rm "$BASE" sh -c "$CHECK 2>&1 | head -1; true"

step "Export and import" "export flattens the container's filesystem into one tar; import makes it a one-layer image."
show export -o "$work/flat.tar" demo-ctr
printf '$ ply import %s demo-flat:v1\n' "$work/flat.tar"
ply import "$work/flat.tar" demo-flat:v1
show images --format 'table {{.Repository}}:{{.Tag}}\t{{.ID}}\t{{.Size}}'
show run --rm demo-flat:v1 sh -c "$CHECK"

step "Save and load" "One archive holds both images (the shared base layer once); rmi then load brings them back."
show save -o "$work/images.tar" "$BASE" demo-custom:v1
ls -l "$work/images.tar"
show rmi demo-custom:v1 demo-flat:v1
show load -i "$work/images.tar"
show run --rm demo-custom:v1 sh -c "$CHECK"

step "A registry: login, tag, push, pull" "ply registry serve is a full OCI registry; the second push and the pull skip layers already there."
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 5055)
htpasswd -cbB "$work/htpasswd" demo demo-password >/dev/null 2>&1
./bin/ply registry serve --addr "127.0.0.1:$port" --root "$work/registry" --htpasswd "$work/htpasswd" >"$work/registry.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do grep -q listening "$work/registry.log" 2>/dev/null && break; sleep 0.05; done
printf '$ echo demo-password | ply login -u demo --password-stdin 127.0.0.1:%s\n' "$port"
echo demo-password | ply login -u demo --password-stdin "127.0.0.1:$port"
REMOTE="127.0.0.1:$port/demo/custom:v1"
show tag demo-custom:v1 "$REMOTE"
show push "$REMOTE"
echo "   Notice: pushing again sends nothing:"
show push "$REMOTE"
show rmi "$REMOTE" demo-custom:v1
echo "   Notice: the base layer is already here, only the custom layer is downloaded:"
show pull "$REMOTE"
show run --rm "$REMOTE" sh -c "$CHECK"
show logout "127.0.0.1:$port"
kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=

if ply build --help 2>/dev/null | grep -q -- '--tag'; then
  step "Build from a Dockerfile, then rebuild from the cache" "Unchanged steps are not rebuilt: the second build reuses every layer and gives the same image ID."
  mkdir -p "$work/ctx"
  echo "built by ply" > "$work/ctx/message.txt"
  printf 'FROM %s\nCOPY message.txt /message.txt\nRUN cat /message.txt > /copied.txt\nCMD ["cat", "/copied.txt"]\n' "$REMOTE" > "$work/ctx/Dockerfile"
  show build -t demo-built:v1 "$work/ctx"
  show build -t demo-built:v1 "$work/ctx"
  show run --rm demo-built:v1
fi

step "Clean up" "rm deletes only the container's writable layer; rmi removes names, then images, keeping shared layers."
show rm demo-ctr
show system df
echo
echo "Demo finished. Store: $PLY_ROOT"
