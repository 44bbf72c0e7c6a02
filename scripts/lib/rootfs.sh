# Shared by scripts/test-images.sh and scripts/portable-test-images.sh (sourced, not run):
# Debian root filesystems made by debootstrap, cached under $CACHE_DIR/rootfs, and loaded as
# platform-labelled images. The caller sets CACHE_DIR and MIRROR and defines log().
#
# The cache key and the file names below are what CI's cache is keyed by: changing either
# makes every root filesystem rebuild (about 30 minutes under emulation). When the recipe here
# (debootstrap flags, clean-up, Dockerfile) changes, bump RECIPE in test-images.sh and
# TRIXIE_RECIPE in portable-test-images.sh.

# label_of TAG: the org.prewheel.key label of a local image (empty if there is none)
label_of() {
  docker image inspect -f '{{index .Config.Labels "org.prewheel.key"}}' "$1" 2>/dev/null || true
}

# rootfs_key RECIPE SUITE ARCH PACKAGES: the cache key of a root filesystem
rootfs_key() {
  printf '%s|%s|%s|%s|%s' "$1" "$2" "$3" "$4" "$MIRROR" | sha256sum | cut -c1-16
}

# rootfs_image TAG PLATFORM KEY SUITE ARCH KIND PACKAGES DEBS WHAT
# Loads the root filesystem $CACHE_DIR/rootfs/SUITE-ARCH-KIND-KEY.tar as image TAG, running
# debootstrap first (with its .deb cache in $CACHE_DIR/debs/DEBS) when the tar is not cached.
# WHAT names the root filesystem in log lines.
rootfs_image() {
  local tag=$1 platform=$2 key=$3 suite=$4 arch=$5 kind=$6 pkgs=$7 debs=$8 what=$9
  local rootfs_tar work
  rootfs_tar="$CACHE_DIR/rootfs/${suite}-${arch}-${kind}-${key}.tar"
  mkdir -p "$CACHE_DIR/rootfs" "$CACHE_DIR/debs/$debs"
  if [ ! -s "$rootfs_tar" ]; then
    work=$(mktemp -d "$CACHE_DIR/work.XXXXXX")
    log "debootstrap $what; this takes minutes under emulation"
    local started=$SECONDS
    if ! debootstrap --arch="$arch" --variant=minbase --include="$pkgs" \
        --cache-dir="$CACHE_DIR/debs/$debs" "$suite" "$work/rootfs" "$MIRROR" \
        >"$work/debootstrap.log" 2>&1; then
      tail -n 30 "$work/debootstrap.log" >&2
      rm -rf "$work"
      exit 1
    fi
    rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
    tar -C "$work/rootfs" --numeric-owner -cf "$work/rootfs.tar" .
    mv "$work/rootfs.tar" "$rootfs_tar"
    rm -rf "$work"
    log "rootfs $what built in $((SECONDS - started)) s"
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
  DOCKER_BUILDKIT=0 docker build -q --platform "$platform" -t "$tag" "$work" >/dev/null
  rm -rf "$work"
  log "loaded $tag ($platform)"
}
