#!/bin/sh
# Regenerate the ELF fixtures of tests/test_elf.py with Debian's cross compilers:
#   apt-get install gcc-arm-linux-gnueabi gcc-arm-linux-gnueabihf gcc-s390x-linux-gnu
# Each is scale.c as a shared object (an extension module in miniature). -nostdlib keeps the
# C library's start files (compiled for the distribution's baseline: ARMv7 on armhf) out, so
# each file's Tag_CPU_arch is what its -march says; -s and no build id keep them small and
# reproducible.
set -eu
cd "$(dirname "$0")"
FLAGS="-shared -fPIC -O2 -s -nostdlib -Wl,--build-id=none"
build() { out=$1; shift; "$@" $FLAGS -o "$out" scale.c; echo "$out"; }
# Debian armel's compiler (soft-float): ARMv6 (what an armv6l target runs) and ARMv7
build armv6-softfloat.so arm-linux-gnueabi-gcc -march=armv6 -marm -mfloat-abi=soft
build armv7-softfloat.so arm-linux-gnueabi-gcc -march=armv7-a -mfloat-abi=soft
# the same compiler, big-endian (armeb): ARM machine and class, the other byte order
build armv6-bigendian.so arm-linux-gnueabi-gcc -mbig-endian -march=armv6 -marm
# the old GNU ARM ABI (not EABI): e_flags bits 0x200/0x400 mean something else there
build apcs-gnu.so arm-linux-gnueabi-gcc -mabi=apcs-gnu -march=armv5te -marm
# Debian armhf's compiler (hard-float): ARMv6 as Raspberry Pi OS builds it, and its default
# ARMv7-A
build armv6-hardfloat.so arm-linux-gnueabihf-gcc -march=armv6+fp -marm -mfloat-abi=hard
build armv7-hardfloat.so arm-linux-gnueabihf-gcc
# the same compiler told -march=armv8-a+simd (AArch32): all of it ARMv8
build armv8-hardfloat.so arm-linux-gnueabihf-gcc -march=armv8-a+simd
# runtime dispatch: an ARMv7 module with an ARMv8 kernel it chooses at run time (getauxval)
arm-linux-gnueabihf-gcc -c -fPIC -O2 -march=armv8-a+simd -o dispatch_v8.o dispatch_v8.c
arm-linux-gnueabihf-gcc $FLAGS -o armv8-dispatched.so dispatch.c dispatch_v8.o
rm dispatch_v8.o && echo armv8-dispatched.so
# an armhf relocatable object: EABI5 without e_flags float bits, so Tag_ABI_VFP_args says it
arm-linux-gnueabihf-gcc -c -O2 -o armv7-hardfloat.o scale.c && echo armv7-hardfloat.o
# big-endian 64-bit
build s390x.so s390x-linux-gnu-gcc
