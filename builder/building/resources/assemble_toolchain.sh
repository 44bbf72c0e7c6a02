#!/bin/sh
# prewheel's toolchain assembly: runs in a container of the build image's distribution release,
# on the Docker daemon's own architecture, and leaves a relocatable cross toolchain in $ROOT.
#
#   sh assemble_toolchain.sh TRIPLET MAJOR|default [CA_BUNDLE]
#
# With PREWHEEL_PROBE=1 it only asks apt which version the cross gcc MAJOR would be, prints
# `[prewheel-toolchain] candidate <version>` and stops before downloading anything (prewheel
# does this before an assembly that --accelerate auto might then refuse).
#
# 1. Installs the release's own cross compilers for TRIPLET (gcc, g++, gfortran of gcc MAJOR, or
#    the release's default version), with apt.
# 2. Copies the compiler (drivers, cc1*, f951, lto, libgcc, crt*.o, the C++ and Fortran headers
#    and modules) and the cross binutils under $ROOT/usr, keeping Debian's relative layout so
#    the drivers find their parts. The target C library, headers and shared libraries are NOT
#    copied: builds use the container's own (its sysroot is /).
# 3. Points the compiler's links to target shared libraries (libstdc++.so -> ...) at the target
#    image's multiarch directory, where the target's own packages install them.
# 4. Copies the host libraries the native binaries need (as `ldd` resolves them) and the dynamic
#    loader into $ROOT/lib, unmodified (rewriting large ELF files with patchelf corrupted
#    trixie's cc1). The build container links the loader's path and the host's multiarch
#    library directory, which a foreign-architecture image does not have, to them.
# 5. Writes $ROOT/toolchain.json: triplet, gcc version, the exact package versions, the tools,
#    the loader path (interpreter) and library directory the binaries expect.
set -eu

ROOT=/opt/prewheel-toolchain
TRIPLET=$1
MAJOR=$2
CA_BUNDLE=${3:-}
PACKAGE_TRIPLET=$(printf '%s' "$TRIPLET" | tr _ -)

log() { printf '[prewheel-toolchain] %s\n' "$*"; }

apt_options=""
if [ -n "$CA_BUNDLE" ] && [ -f "$CA_BUNDLE" ]; then
  apt_options="-o Acquire::https::CAInfo=$CA_BUNDLE"
fi
if [ "$MAJOR" = default ]; then
  suffix=""
else
  suffix="-$MAJOR"
fi
export DEBIAN_FRONTEND=noninteractive
log "apt-get install gcc$suffix-$PACKAGE_TRIPLET g++$suffix-$PACKAGE_TRIPLET gfortran$suffix-$PACKAGE_TRIPLET"
# shellcheck disable=SC2086  # apt_options is empty or one option with its value
apt-get $apt_options update -qq
for package in "gcc$suffix-$PACKAGE_TRIPLET" "g++$suffix-$PACKAGE_TRIPLET" "gfortran$suffix-$PACKAGE_TRIPLET"; do
  if ! apt-cache show "$package" >/dev/null 2>&1; then
    log "this release has no package $package"
    exit 4  # prewheel does not retry this for a while (not in the archive)
  fi
done
if [ "${PREWHEEL_PROBE:-}" = 1 ]; then
  candidate=$(apt-cache show --no-all-versions "gcc$suffix-$PACKAGE_TRIPLET" | sed -n 's/^Version: //p' | head -n 1)
  log "candidate $candidate"
  exit 0
fi
# shellcheck disable=SC2086
apt-get $apt_options install -y -qq --no-install-recommends \
  "gcc$suffix-$PACKAGE_TRIPLET" "g++$suffix-$PACKAGE_TRIPLET" "gfortran$suffix-$PACKAGE_TRIPLET" \
  >/dev/null

driver=$(ls /usr/bin/"$TRIPLET"-gcc-[0-9]* 2>/dev/null | grep -E -- "-gcc-[0-9]+$" | sort -V | tail -n 1)
if [ -z "$driver" ]; then
  log "no $TRIPLET-gcc-N driver was installed"
  exit 3
fi
major=${driver##*-gcc-}
version=$("$driver" -dumpfullversion)
log "cross gcc $version ($driver)"

rm -rf "$ROOT"
mkdir -p "$ROOT/usr/bin" "$ROOT/lib"
# Drivers and binutils, by their triplet names.
cp -a /usr/bin/"$TRIPLET"-* "$ROOT/usr/bin/"
# The compiler proper, libgcc and crt files; newer releases keep the executables in libexec.
for dir in /usr/lib/gcc-cross/"$TRIPLET" /usr/libexec/gcc-cross/"$TRIPLET"; do
  if [ -d "$dir" ]; then
    mkdir -p "$ROOT$(dirname "$dir")"
    cp -a "$dir" "$ROOT$dir"
  fi
done
# The cross assembler and linker the driver runs (tooldir/bin), and the C++ headers of this gcc.
mkdir -p "$ROOT/usr/$TRIPLET"
cp -a "/usr/$TRIPLET/bin" "$ROOT/usr/$TRIPLET/bin"
if [ -d "/usr/$TRIPLET/include/c++" ]; then
  mkdir -p "$ROOT/usr/$TRIPLET/include"
  cp -a "/usr/$TRIPLET/include/c++" "$ROOT/usr/$TRIPLET/include/c++"
fi

# Links into the cross target library directory (not copied) -> the target image's own;
# links to host files left outside the tree are dropped.
find "$ROOT/usr/lib/gcc-cross" -type l | while read -r link; do
  target=$(readlink "$link")
  case "$target" in
    */"$TRIPLET"/lib/*) ln -sfn "/usr/lib/$TRIPLET/${target##*/}" "$link" ;;
    *) [ -e "$link" ] || rm -f "$link" ;;  # e.g. libcc1.so, a host library for gdb
  esac
done

# Native ELF files: their libraries and the loader go to $ROOT/lib, as they are.
native_elves=$(find "$ROOT" -type f -exec sh -c 'head -c 4 "$1" | grep -q "ELF" && echo "$1"' _ {} \;)
for elf in $native_elves; do
  ldd "$elf" 2>/dev/null | while read -r line; do
    case "$line" in
      *"=> /"*) path=${line#*=> }; path=${path%% (*}; cp -Ln "$path" "$ROOT/lib/" ;;
      /*) path=${line%% (*}; cp -Ln "$path" "$ROOT/lib/" ;;
    esac
  done
done
interpreter=$("$TRIPLET-readelf" -l "$driver" | sed -n 's/.*program interpreter: \(.*\)]$/\1/p')
libc=$(ldd "$driver" | sed -n 's/.*libc\.so\.6 => \([^ ]*\) .*/\1/p')
libdir=$(dirname "$libc")
if [ -z "$interpreter" ] || [ ! -f "$ROOT/lib/$(basename "$interpreter")" ] || [ -z "$libc" ]; then
  log "cannot tell the loader ($interpreter) or the library directory ($libc) of $driver"
  exit 3
fi
# The tree must run with only $ROOT/lib as its library directory and its own loader.
env -i "$ROOT/lib/$(basename "$interpreter")" --library-path "$ROOT/lib" "$ROOT/usr/bin/$TRIPLET-gcc-$major" -dumpfullversion >/dev/null

# Debian builds its cross compilers from the native gcc source: version <native version>crossN.
cross_version=$(dpkg-query -W -f '${Version}' "gcc-$major-$PACKAGE_TRIPLET")
source_version=$(printf '%s' "$cross_version" | sed -E 's/cross[0-9]+$//')
# What the release installs as the native gcc-N (same source for every architecture): the
# version a build image without a compiler gets from build-essential.
release_version=$(apt-cache show --no-all-versions "gcc-$major" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)
packages=$(dpkg-query -W -f '${Package}=${Version}\n' \
  "cpp-$major-$PACKAGE_TRIPLET" "gcc-$major-$PACKAGE_TRIPLET" "g++-$major-$PACKAGE_TRIPLET" \
  "gfortran-$major-$PACKAGE_TRIPLET" "binutils-$PACKAGE_TRIPLET" 2>/dev/null \
  | awk 'BEGIN{ORS=""} {printf "%s\"%s\"", (NR>1?", ":""), $0}')
tools=$(cd "$ROOT/usr/bin" && ls | awk 'BEGIN{ORS=""} {printf "%s\"%s\"", (NR>1?", ":""), $0}')
cat >"$ROOT/toolchain.json" <<EOF
{"triplet": "$TRIPLET", "gcc_major": "$major", "gcc_version": "$version", "gcc_source_version": "$source_version", "release_gcc_version": "$release_version", "interpreter": "$interpreter", "libdir": "$libdir", "host": "$(uname -m)", "packages": [$packages], "tools": [$tools]}
EOF
log "assembled $(du -sh "$ROOT" | cut -f1) in $ROOT: gcc $version ($source_version) for $TRIPLET"
