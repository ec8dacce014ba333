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

/* v, an integer-valued double with |v| < 2^127, as an __int128, exactly: from its
 * bits, since GCC's conversion is a libgcc call (__fixdfti) that took 6 % of a
 * Lloyd pass on 4,000,000 x 16, k = 4, one per row that changed cluster. */
static inline km_i128 km_fx_from_int_double(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    const int e = (int)((b >> 52) & 0x7ff) - 1075;   /* v = +-m 2^e */
    if (e < -52)   /* |v| < 1: only 0 is an integer */
        return 0;
    const uint64_t m = (b & ((1ULL << 52) - 1)) | (1ULL << 52);
    const km_i128 a = e >= 0 ? (km_i128)m << e : (km_i128)(m >> -e);   /* exact: v is integral */
    return b >> 63 ? -a : a;
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

/* (double)v and (long double)v, rounded to nearest as the compiler's own
 * conversions (libgcc's __floattidf, __floattixf) round them, without their
 * cost. A v that fits an int64 converts in one instruction. Otherwise, to
 * double: |v| cut to its top 62 bits with the bits cut off or-ed into the last
 * one (rounding to odd), which then rounds to 53 bits as |v| would, since 62 >=
 * 53 + 2; to long double: hi 2^64 and lo are exact in its 64-bit mantissa, so
 * their sum is rounded once. */
static inline int km_fx_fits64(km_i128 v)
{
    return (km_i128)(int64_t)v == v;
}

static inline double km_fx_to_double(km_i128 v)
{
    if (km_fx_fits64(v))
        return (double)(int64_t)v;
    const unsigned __int128 a = v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;
    const uint64_t hi = (uint64_t)(a >> 64), lo = (uint64_t)a;
    const int nbits = hi ? 128 - __builtin_clzll(hi) : 64 - __builtin_clzll(lo);
    const int s = nbits - 62;   /* >= 2: |v| >= 2^63; a >> s has 62 bits */
    const uint64_t w = (uint64_t)(a >> s) | ((a & (((unsigned __int128)1 << s) - 1)) != 0);
    const double r = ldexp((double)(int64_t)w, s);
    return v < 0 ? -r : r;
}

static inline long double km_fx_to_ld(km_i128 v)
{
    if (km_fx_fits64(v))
        return (long double)(int64_t)v;
    return (long double)(int64_t)(v >> 64) * 0x1p64L + (long double)(uint64_t)v;
}

/* The integer total back in the units of v (one rounding, to nearest; scale is a
 * power of two, so multiplying by its inverse is exact: the division's bits, and a
 * caller that needs the inverse too shares it). */
static inline double km_fx_value(km_i128 total, double scale)
{
    return km_fx_to_double(total) * (1.0 / scale);
}
#endif
