/* fixed.h — exact fixed-point sums, so that totals never depend on how rows
 * are split among threads, chunks and ranks (the reproducibility contract).
 *
 * A value v is scaled by a power of two (exact) and rounded once to an integer;
 * integers add exactly in any order. Per element the rounding is one FMA with
 * the constant 1.5 * 2^52: for |y| < 2^51 the bits of y + C hold round(y) in
 * their low mantissa, so short runs of those bit patterns are summed as
 * uint64 (mod 2^64) and the constant's bits are subtracted once per run.
 * Totals live in __int128; across ranks they travel as limbs of `bits` bits in
 * doubles, small enough that MPI's double SUM over all ranks stays exact. */
#ifndef KM_FIXED_H
#define KM_FIXED_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef __int128 km_i128;

#define KM_FX_MAGIC 0x1.8p52                 /* 1.5 * 2^52 */
#define KM_FX_MAGIC_BITS 0x4338000000000000ULL
#define KM_FX_TOP 50                          /* |scaled element| < 2^50 */
#define KM_FX_QTOP 80                         /* a row's scaled ||x - center||^2 < 2^80:
                                                 2^47 rows still fit an __int128 */
#define KM_FX_RUN 4096                        /* rows per uint64 run: 2^12 * 2^50 < 2^63 */

/* 2^(top - e) where |v| <= maxabs < 2^e: scaled values stay below 2^top. */
static inline double km_fx_scale(double maxabs, int top)
{
    int e = 0;
    if (!(maxabs > 0) || !isfinite(maxabs))
        return 1.0;
    frexp(maxabs, &e);
    return ldexp(1.0, top - e);
}

/* Bits whose uint64 sum, minus count * KM_FX_MAGIC_BITS, is sum round(v * scale). */
static inline uint64_t km_fx_bits(double v, double scale)
{
    double y = v * scale + KM_FX_MAGIC;   /* the product is exact: scale is 2^m */
    uint64_t b;
    memcpy(&b, &y, sizeof b);
    return b;
}

/* Limb layout for an allreduce over `ranks`: each limb < 2^bits, so the sum of
 * `ranks` limbs is < 2^52, exact in a double. */
static inline void km_fx_limbs(int ranks, int *limbs, int *bits)
{
    int lg = 0;
    while ((1L << lg) < (long)ranks + 1)
        lg++;
    *bits = 52 - lg;
    *limbs = (126 + *bits - 1) / *bits + 1;
}

/* n values -> n * limbs doubles (limb-major per value); the top limb is signed. */
static inline void km_fx_pack(const km_i128 *v, size_t n, int limbs, int bits, double *buf)
{
    const km_i128 mask = ((km_i128)1 << bits) - 1;
    for (size_t i = 0; i < n; i++) {
        km_i128 x = v[i];
        for (int l = 0; l < limbs - 1; l++) {
            buf[i * limbs + l] = (double)(int64_t)(x & mask);
            x >>= bits;   /* arithmetic: floor division */
        }
        buf[i * limbs + limbs - 1] = (double)(int64_t)x;
    }
}

static inline void km_fx_unpack(const double *buf, size_t n, int limbs, int bits, km_i128 *v)
{
    for (size_t i = 0; i < n; i++) {
        km_i128 x = 0;
        for (int l = limbs - 1; l >= 0; l--)
            x = x * ((km_i128)1 << bits) + (int64_t)buf[i * limbs + l];
        v[i] = x;
    }
}

/* The integer total back in the units of v (one rounding, to nearest). */
static inline double km_fx_value(km_i128 total, double scale)
{
    return (double)total / scale;
}
#endif
