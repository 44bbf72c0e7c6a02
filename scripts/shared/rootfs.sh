# Sourced by scripts/test-images.sh (not run): Debian root filesystems made by debootstrap,
# cached under $CACHE_DIR/rootfs, and loaded as platform-labelled images. The caller sets
# CACHE_DIR and MIRROR and defines log().
#
# The cache key and the file names below are what CI's cache is keyed by: changing either
# makes every root filesystem rebuild (several minutes each under emulation). When the recipe
# here (debootstrap flags, clean-up, Dockerfile) changes, bump the RECIPE numbers in
# test-images.sh.

# label_of TAG: the org.prewheel.key label of a local image (empty if there is none)
label_of() {
  docker image inspect -f '{{index .Config.Labels "org.prewheel.key"}}' "$1" 2>/dev/null || true
}

# image_key PART...: the cache key of an image made from PARTs (and the mirror)
image_key() {
  local IFS='|'
  printf '%s|%s' "$*" "$MIRROR" | sha256sum | cut -c1-16
}

# rootfs_image TAG PLATFORM KEY SUITE ARCH KIND PACKAGES
# Loads the root filesystem $CACHE_DIR/rootfs/SUITE-ARCH-KIND-KEY.tar as image TAG, running
# debootstrap first (with its .deb cache in $CACHE_DIR/debs/SUITE-ARCH) when the tar is not
# cached. The tar is written under a temporary name and renamed, so a killed run leaves no
# half-written root filesystem behind.
rootfs_image() {
  local tag=$1 platform=$2 key=$3 suite=$4 arch=$5 kind=$6 pkgs=$7
  local rootfs_tar work
  rootfs_tar="$CACHE_DIR/rootfs/${suite}-${arch}-${kind}-${key}.tar"
  mkdir -p "$CACHE_DIR/rootfs" "$CACHE_DIR/debs/$suite-$arch"
  if [ ! -s "$rootfs_tar" ]; then
    work=$(mktemp -d "$CACHE_DIR/work.XXXXXX")
    log "debootstrap $suite/$arch ($kind); minutes under emulation"
    # The second stage runs under QEMU: as the CPU prewheel's containers of ARCH get.
    if ! env ${PREWHEEL_QEMU_CPU:+QEMU_CPU="$PREWHEEL_QEMU_CPU"} \
        debootstrap --arch="$arch" --variant=minbase --include="$pkgs" \
        --cache-dir="$CACHE_DIR/debs/$suite-$arch" "$suite" "$work/rootfs" "$MIRROR" \
        >"$work/debootstrap.log" 2>&1; then
      tail -n 30 "$work/debootstrap.log" >&2
      rm -rf "$work"
      return 1
    fi
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
    tar -C "$work/rootfs" --numeric-owner -cf "$work/rootfs.tar" .
    mv "$work/rootfs.tar" "$rootfs_tar"
    rm -rf "$work"
  fi
  work=$(mktemp -d)
  ln "$rootfs_tar" "$work/rootfs.tar" 2>/dev/null || cp "$rootfs_tar" "$work/rootfs.tar"
  cat >"$work/Dockerfile" <<DOCKERFILE
FROM scratch
ADD rootfs.tar /
LABEL org.prewheel.key="$key" org.prewheel.suite="$suite" org.prewheel.kind="$kind"
ENV LANG=C.UTF-8
CMD ["python3"]
DOCKERFILE
  build_context "$tag" "$platform" "$work"
}

# derived_image TAG PLATFORM KEY DOCKERFILE_BODY [CONTEXT_FILE...]
# Builds TAG from a Dockerfile whose body is given (its FROM included), labelled with KEY.
derived_image() {
  local tag=$1 platform=$2 key=$3 body=$4
  shift 4
  local work
  work=$(mktemp -d)
  [ $# -gt 0 ] && cp "$@" "$work/"
  printf '%s\nLABEL org.prewheel.key="%s"\n' "$body" "$key" >"$work/Dockerfile"
  build_context "$tag" "$platform" "$work"
}

# build_context TAG PLATFORM DIR: `docker build` DIR (the legacy builder keeps the platform
# label of a FROM scratch image) as TAG, showing the tail of its log if it fails; DIR is removed.
build_context() {
  local tag=$1 platform=$2 work=$3 status=0
  DOCKER_BUILDKIT=0 docker build -q --platform "$platform" \
    ${PIP_INDEX_URL:+--build-arg PIP_INDEX_URL="$PIP_INDEX_URL"} -t "$tag" "$work" \
    >"$work/build.log" 2>&1 || status=$?
  [ "$status" = 0 ] || tail -n 30 "$work/build.log" >&2
  rm -rf "$work"
  return "$status"
}
