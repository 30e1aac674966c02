#!/usr/bin/env bash
# The seed walkthrough, end to end, on a fresh Debian 12 machine (as root). Installs what is missing first.
# Each step says what it does and what to notice, then shows the real output. Exits non-zero if a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export PLY_ROOT=${PLY_ROOT:-$(mktemp -d /dev/shm/ply-demo.XXXXXX)}
ply() { ./bin/ply "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n   %s\n' "$1" "$2"; }
run() { printf '$ ply %s\n' "$*"; ply "$@"; }

work=$(mktemp -d /dev/shm/ply-demo-work.XXXXXX)
trap 'rm -rf "$work"' EXIT

step "Make a base image offline" "A busybox root filesystem (Debian's busybox-static) becomes a one-layer image; the ID is its config's digest."
bash test/fixtures/busybox-rootfs.sh "$work/rootfs.tar"
printf '$ ply import - image-name:v1 < rootfs.tar\n'
ply import - image-name:v1 < "$work/rootfs.tar"

step "Images are stacks of read-only layers" "The layer's diffID is the sha256 of the tar itself."
run image inspect --format '{{json .RootFS}}' image-name:v1
printf '$ sha256sum rootfs.tar\n'; sha256sum "$work/rootfs.tar"

step "Names are pointers" "Three names, one image ID: tagging copies nothing."
run tag image-name:v1 image-name:latest
run tag image-name:v1 localhost:5000/user/repo:v1
run images

step "Changing an image makes a new image" "An import with --change gives a new config, so a new ID, over the same shared layer."
printf '$ ply import --change "CMD [\\"/bin/sh\\"]" -m "with a command" - image-name:v2 < rootfs.tar\n'
ply import --change 'CMD ["/bin/sh"]' -m 'with a command' - image-name:v2 < "$work/rootfs.tar"
run images --format 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}'
run history image-name:v2

step "Removing names" "rmi untags first; the image goes with its last name, and layers other images use stay."
run rmi localhost:5000/user/repo:v1
run rmi image-name:v2
run system df
echo
echo "Demo finished: store at $PLY_ROOT"
