/* The ARMv8 kernel of dispatch.c, compiled with -march=armv8-a+simd. */
double scale_v8(double x) { return x * 2.5; }
