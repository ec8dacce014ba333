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

/* The next float up / down from a non-negative float (its bits + / - 1; by is
 * 0, 1 or -1). A union, not memcpy: loops that use it stay vectorisable. */
static inline float km_bump(float f, int32_t by)
{
    union { float f; int32_t i; } u = {.f = f};
    u.i += by;
    return u.f;
}

/* v rounded up to a float (v >= 0; negative or NaN gives +inf: a bound that
 * proves nothing). Branch-free, so the pruned strategies' loops over all rows
 * vectorise: the rounding direction is random, a branch on it would be
 * mispredicted half the time. */
static inline float km_up_f(double v)
{
    const double w = v >= 0 ? v : INFINITY;
    const float f = (float)w;   /* beyond FLT_MAX: +inf, which stays */
    return km_bump(f, (double)f < w);
}

/* v rounded down to a float (negative or NaN gives 0, beyond FLT_MAX gives
 * FLT_MAX). */
static inline float km_down_f(double v)
{
    const double w = v > 0 ? (v < DBL_MAX ? v : DBL_MAX) : 0;
    const float f = (float)w;   /* (double)f > w > 0 implies f > 0: never below 0; */
    return km_bump(f, -(int32_t)((double)f > w));   /* f = +inf steps to FLT_MAX */
}
/* v of either sign rounded up to a float (NaN gives +inf, below -FLT_MAX gives
 * -FLT_MAX if finite): a step of one float away from 0 or towards it, branch-free as
 * km_up_f. A float below a w > 0 is >= 0, so -0 never steps. */
static inline float km_up_sf(double v)
{
    const double w = v == v ? v : INFINITY;
    const float f = (float)w;
    const int32_t below = (double)f < w;
    return km_bump(f, below - 2 * (below & (f < 0)));
}

/* Ask for (the first 512 bytes of) a row a pruned pass is about to read: the
 * rows in doubt are sparse, so the hardware prefetcher does not see them. */
static inline void km_prefetch_row(const void *row, size_t bytes)
{
    for (size_t o = 0; o < bytes && o < 512; o += 64)
        __builtin_prefetch((const char *)row + o, 0, 3);
}

/* Ask for row's bytes past km_prefetch_row's first 512, up to 4 KB: for the next
 * row in doubt while this one is worked on, so that a row 8 ahead brings its head
 * and the next one the rest (70k x 784, Hamerly: the first exact distance of a row
 * waited for the hardware prefetcher to find the row's stream, fit 1.160 -> 1.058 s;
 * past 4 KB that stream is running). */
static inline void km_prefetch_rest(const void *row, size_t bytes)
{
    for (size_t o = 512; o < bytes && o < 4096; o += 64)
        __builtin_prefetch((const char *)row + o, 0, 3);
}

/* Ask for the first `ahead` of rows idx[0..n) of x, before a loop that asks
 * for row j + ahead as it takes row j: else the first ones come unasked, and in
 * a late pass a block's few rows in doubt are all of them. */
static inline void km_prefetch_first(const void *x, size_t rowbytes, const int64_t *idx,
                                     int64_t n, int ahead)
{
    for (int64_t j = 0; j < n && j < ahead; j++)
        km_prefetch_row((const char *)x + (size_t)idx[j] * rowbytes, rowbytes);
}

/* drift[c] >= the true distance between prev and now of centroid c (k x d each);
 * 0 where same[c] (km_centers.same; same may be NULL): the distance it would compute. */
static inline void km_bound_drifts(const double *prev, const double *now, int k, int d,
                                   double m, const unsigned char *same, double *drift)
{
    for (int c = 0; c < k; c++)
        drift[c] = same && same[c]
                   ? 0
                   : sqrt(km_dist_exact(now + (size_t)c * d, 0, d, KM_F64, prev + (size_t)c * d))
                     * (1 + m) * (1 + m);
}

/* prev = now (k x d each), but for the centroids with same[c], equal already. */
static inline void km_bound_keep(double *prev, const double *now, int k, int d,
                                 const unsigned char *same)
{
    for (int c = 0; c < k; c++)
        if (!(same && same[c]))
            memcpy(prev + (size_t)c * d, now + (size_t)c * d, sizeof(double) * (size_t)d);
}
#endif
