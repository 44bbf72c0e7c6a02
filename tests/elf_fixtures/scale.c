/* One function with a floating-point argument and result, so the float ABI matters. */
double scale(double x) { return x * 2.5; }
