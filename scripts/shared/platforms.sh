# Sourced by scripts/host-setup.sh and scripts/test-images.sh (not run): prewheel's platforms as
# the shell scripts need them. These are the facts of builder/targets.py (Arch.debian_arch,
# docker_platform, value, qemu_handler, qemu_cpu, runs_natively_on). The scripts cannot ask Python:
# host-setup.sh runs first on a fresh machine, before prewheel or its dependencies are
# installed anywhere. tests/test_platform_scripts.py asserts this table and Python's agree.

# Debian architecture, Docker platform, machine (uname -m), QEMU binfmt handler that runs it on
# a host of another architecture, the first Debian release (of PREWHEEL_DEBIAN_RELEASES)
# that has the architecture (riscv64 is a Debian release architecture from trixie on), and the
# CPU QEMU emulates for it (QEMU_CPU; - for QEMU's default).
PREWHEEL_PLATFORMS="
amd64   linux/amd64   x86_64  qemu-x86_64  buster -
arm64   linux/arm64   aarch64 qemu-aarch64 buster cortex-a53
armhf   linux/arm/v7  armv7l  qemu-arm     buster cortex-a7
armel   linux/arm/v6  armv6l  qemu-arm     buster arm1176
i386    linux/386     i686    qemu-i386    buster -
ppc64el linux/ppc64le ppc64le qemu-ppc64le buster -
s390x   linux/s390x   s390x   qemu-s390x   buster -
riscv64 linux/riscv64 riscv64 qemu-riscv64 trixie -
"
# Debian releases, oldest first (those builder/targets.py knows)
PREWHEEL_DEBIAN_RELEASES="buster bullseye bookworm trixie"
# Machines a host runs without emulation besides its own (64-bit x86 and ARM run their 32-bit
# kin): "host:machine,machine ...".
PREWHEEL_NATIVE_ALSO="x86_64:i686 aarch64:armv7l,armv6l"

# platform_field DEBIAN_ARCH COLUMN: a column of the table (2 Docker platform, 3 machine,
# 4 handler, 5 first release, 6 QEMU CPU); fails for an architecture the table does not have
platform_field() {
  awk -v arch="$1" -v column="$2" '$1 == arch {print $column; found = 1} END {exit !found}' \
    <<<"$PREWHEEL_PLATFORMS"
}

# release_has SUITE DEBIAN_ARCH: whether Debian release SUITE has the architecture (an unknown
# release is taken to be newer than those known)
release_has() {
  local first release
  first=$(platform_field "$2" 5) || return 1
  for release in $PREWHEEL_DEBIAN_RELEASES; do
    [ "$release" = "$first" ] && return 0
    [ "$release" = "$1" ] && return 1
  done
  return 0
}

# platform_archs: every Debian architecture of the table, space-separated
platform_archs() {
  awk 'NF {printf "%s%s", sep, $1; sep = " "} END {print ""}' <<<"$PREWHEEL_PLATFORMS"
}

# runs_natively HOST_MACHINE MACHINE: whether a HOST_MACHINE CPU runs MACHINE code as it is
runs_natively() {
  local host=$1 machine=$2 entry
  [ "$host" = "$machine" ] && return 0
  for entry in $PREWHEEL_NATIVE_ALSO; do
    [ "${entry%%:*}" = "$host" ] && [[ ",${entry#*:}," == *",$machine,"* ]] && return 0
  done
  return 1
}

# qemu_handlers_needed HOST_MACHINE: the binfmt handlers prewheel's platforms need on a host of
# that machine, one per line, sorted, each once
qemu_handlers_needed() {
  local host=$1 _arch _platform machine handler _release
  while read -r _arch _platform machine handler _release; do
    [ -n "$machine" ] || continue
    runs_natively "$host" "$machine" || echo "$handler"
  done <<<"$PREWHEEL_PLATFORMS" | sort -u
}
