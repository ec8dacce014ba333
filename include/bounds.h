/* bounds.h — outward rounding for the pruned strategies' distance bounds
 * (hamerly.c, yinyang.c). Bounds are kept as floats: upper bounds rounded up,
 * lower bounds rounded down, so storing one never makes it wrong. */
#ifndef KM_BOUNDS_H
#define KM_BOUNDS_H
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "kernels.h"

/* Relative error of km_dist_exact's E against the true squared distance (a float64
 * sum of d non-negative rounded terms), plus room for the square roots and products
 * the bounds go through. */
static inline double km_bound_margin(int d)
{
    return (d + 8) * 0x1p-52 + 0x1p-48;
}

/* The next float up / down from a positive finite float (its bits + / - 1). */
static inline float km_bump(float f, int32_t by)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    i += by;
    memcpy(&f, &i, sizeof f);
    return f;
}

/* v rounded up to a float (v >= 0; NaN gives +inf: a bound that proves nothing).
 * Branch-free in the common case: the rounding direction is random, a branch on
 * it is mispredicted half the time, and the pruned passes round 2 bounds a row. */
static inline float km_up_f(double v)
{
    if (!(v >= 0))
        return INFINITY;
    const float f = (float)v;   /* +inf stays: (double)inf < v is false */
    return km_bump(f, (double)f < v);
}

/* v rounded down to a float (negative or NaN gives 0). */
static inline float km_down_f(double v)
{
    if (!(v > 0))
        return 0;
    const float f = (float)v;   /* (double)f > v > 0 implies f > 0: never below 0 */
    if (isinf(f))
        return FLT_MAX;
    return km_bump(f, -(int32_t)((double)f > v));
}
/* Ask for (the first 512 bytes of) a row a pruned pass is about to read: the
 * rows in doubt are sparse, so the hardware prefetcher does not see them. */
static inline void km_prefetch_row(const void *row, size_t bytes)
{
    for (size_t o = 0; o < bytes && o < 512; o += 64)
        __builtin_prefetch((const char *)row + o, 0, 3);
}

/* drift[c] >= the true distance between prev and now of centroid c (k x d each). */
static inline void km_bound_drifts(const double *prev, const double *now, int k, int d,
                                   double m, double *drift)
{
    for (int c = 0; c < k; c++)
        drift[c] = sqrt(km_dist_exact(now + (size_t)c * d, 0, d, KM_F64, prev + (size_t)c * d))
                   * (1 + m) * (1 + m);
}
#endif
