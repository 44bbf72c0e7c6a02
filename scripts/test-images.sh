#!/usr/bin/env bash
# Build the Debian-based container images that prewheel's docker/emulation tests run in.
# No image registry is reachable on CI, so images are made from debootstrapped root filesystems
# and loaded with their real platform label (`docker run --platform linux/arm/v7 IMAGE` then
# resolves locally). Root filesystems are cached outside the repository, keyed by their inputs,
# so a rerun only re-imports (or does nothing).
#
# Images (one tag per architecture; ARCH = amd64 | arm64 | armhf | armel):
#   prewheel-test/bookworm:ARCH        python3 + venv + pip, no compiler (a "slim" runtime image)
#   prewheel-test/bookworm-build:ARCH  the same plus build-essential and python3-dev
#
# Usage: scripts/test-images.sh [ARCH ...]   (default: amd64 arm64 armhf)
set -euo pipefail

CACHE_DIR="${PREWHEEL_CI_CACHE:-/var/cache/prewheel-ci}"
SUITE="${PREWHEEL_TEST_SUITE:-bookworm}"
MIRROR="${PREWHEEL_DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}"
if [ -z "$MIRROR" ]; then
  printf '[test-images] no Debian mirror found in /etc/apt/sources.list.d/debian.sources; set PREWHEEL_DEBIAN_MIRROR to the URL of one\n' >&2
  exit 2
fi
RUNTIME_PKGS="python3,python3-venv,python3-pip,ca-certificates"
BUILD_PKGS="$RUNTIME_PKGS,build-essential,python3-dev"
# Bump when the recipe (debootstrap flags, clean-up, Dockerfile) changes; every other input
# (suite, architecture, packages, mirror) is in the cache key already.
RECIPE=2

log() { printf '[test-images] %s\n' "$*" >&2; }

# label_of, rootfs_key, rootfs_image
source "$(dirname "${BASH_SOURCE[0]}")/lib/rootfs.sh"

docker_platform() {
  case "$1" in
    amd64) echo linux/amd64 ;;
    arm64) echo linux/arm64 ;;
    armhf) echo linux/arm/v7 ;;
    armel) echo linux/arm/v6 ;;
    *) log "unknown architecture $1 (amd64, arm64, armhf, armel)"; exit 2 ;;
  esac
}

# make_image ARCH KIND PACKAGES
make_image() {
  local arch=$1 kind=$2 pkgs=$3
  local platform tag key
  platform=$(docker_platform "$arch")
  tag="prewheel-test/${kind}:${arch}"
  key=$(rootfs_key "$RECIPE" "$SUITE" "$arch" "$pkgs")
  if [ "$(label_of "$tag")" = "$key" ]; then
    log "$tag is up to date ($key)"
    return
  fi
  rootfs_image "$tag" "$platform" "$key" "$SUITE" "$arch" "$kind" "$pkgs" "$arch" "$SUITE/$arch ($kind)"
}

archs=("$@")
[ "${#archs[@]}" -gt 0 ] || archs=(amd64 arm64 armhf)
for arch in "${archs[@]}"; do
  make_image "$arch" bookworm-build "$BUILD_PKGS"
  make_image "$arch" bookworm "$RUNTIME_PKGS"
done
