/* Runtime dispatch in miniature, as NumPy, zlib-ng or Botan do it on 32-bit ARM: the module is
 * compiled for the target's baseline (ARMv7 here), one kernel for ARMv8 (AArch32) is compiled
 * with its own -march (dispatch_v8.c), and the choice between them is made at run time from the
 * CPU's features, which the kernel reports in the auxiliary vector (getauxval). The linker
 * records the newest architecture of its inputs, so the shared object says ARMv8. */
#include <sys/auxv.h>

double scale_v8(double x);
#define HWCAP2_CRC32 (1 << 4) /* Linux's uapi asm/hwcap.h for 32-bit ARM */

static double scale_baseline(double x) { return x * 2.5; }

double scale(double x) {
    if (getauxval(AT_HWCAP2) & HWCAP2_CRC32)
        return scale_v8(x);
    return scale_baseline(x);
}
