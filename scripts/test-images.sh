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
  local platform tag key rootfs_tar work
  platform=$(docker_platform "$arch")
  tag="prewheel-test/${kind}:${arch}"
  key=$(printf '%s|%s|%s|%s|%s' "$RECIPE" "$SUITE" "$arch" "$pkgs" "$MIRROR" | sha256sum | cut -c1-16)
  if [ "$(docker image inspect -f '{{index .Config.Labels "org.prewheel.key"}}' "$tag" 2>/dev/null || true)" = "$key" ]; then
    log "$tag is up to date ($key)"
    return
  fi
  rootfs_tar="$CACHE_DIR/rootfs/${SUITE}-${arch}-${kind}-${key}.tar"
  mkdir -p "$CACHE_DIR/rootfs" "$CACHE_DIR/debs/$arch"
  if [ ! -s "$rootfs_tar" ]; then
    work=$(mktemp -d "$CACHE_DIR/work.XXXXXX")
    log "debootstrap $SUITE/$arch ($kind); this takes minutes under emulation"
    local started=$SECONDS
    if ! debootstrap --arch="$arch" --variant=minbase --include="$pkgs" \
        --cache-dir="$CACHE_DIR/debs/$arch" "$SUITE" "$work/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1; then
      tail -n 30 "$work/debootstrap.log" >&2
      rm -rf "$work"
      exit 1
    fi
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
    tar -C "$work/rootfs" --numeric-owner -cf "$work/rootfs.tar" .
    mv "$work/rootfs.tar" "$rootfs_tar"
    rm -rf "$work"
    log "rootfs $SUITE/$arch ($kind) built in $((SECONDS - started)) s"
  fi
  work=$(mktemp -d)
  ln "$rootfs_tar" "$work/rootfs.tar" 2>/dev/null || cp "$rootfs_tar" "$work/rootfs.tar"
  cat >"$work/Dockerfile" <<DOCKERFILE
FROM scratch
ADD rootfs.tar /
LABEL org.prewheel.key="$key" org.prewheel.suite="$SUITE" org.prewheel.kind="$kind"
ENV LANG=C.UTF-8
CMD ["python3"]
DOCKERFILE
  DOCKER_BUILDKIT=0 docker build -q --platform "$platform" -t "$tag" "$work" >/dev/null
  rm -rf "$work"
  log "loaded $tag ($platform)"
}

archs=("$@")
[ "${#archs[@]}" -gt 0 ] || archs=(amd64 arm64 armhf)
for arch in "${archs[@]}"; do
  make_image "$arch" bookworm-build "$BUILD_PKGS"
  make_image "$arch" bookworm "$RUNTIME_PKGS"
done
