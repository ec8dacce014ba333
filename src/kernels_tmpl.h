/* kernels_tmpl.h — the fast assignment kernel, written once and instantiated by
 * kernels.c for float and double (REAL, VEC, VI, VL, SFX, PREC, UROUND).
 *
 * Rows in lanes: a group of RV = 2 vectors of rows is transposed (x^T, d x RV)
 * and each centroid value is broadcast, so a register tile of RV rows x CG
 * centroids accumulates x.c with 2*CG independent FMA chains (enough to hide
 * FMA latency). The scores s_c = ||c||^2 - 2 x.c then update, lane by lane,
 * the running best score, its index and the second-best score: no score
 * buffer, no horizontal reductions. Every lane does the same operations in the
 * same order, and tail rows are zero-padded lanes, so a point's label never
 * depends on where it sits in a block, chunk, thread or rank.
 * The score form loses digits when ||x|| >> ||x - c||, so the argmin is trusted
 * only when the runner-up is further than a proven error bound; otherwise
 * exact float64 distances (km_dist_exact, the naive reference's) decide. */

#define FN_(name, sfx) name##_##sfx
#define FN2(name, sfx) FN_(name, sfx)
#define FN(name) FN2(name, SFX)
#define RV (2 * VL)

static inline VEC FN(vload)(const REAL *p)
{
    VEC v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Where d spans several d-blocks, each block's dot products and ||x||^2 are
 * summed in REAL from zero and the blocks' sums in float64, so the rounding error
 * grows with the block's length, not with d (see err_len). Half a VEC, and it in
 * float64: one native vector each, which GCC converts with one instruction (a
 * VL-lane double vector spans two registers and was lowered lane by lane: 11 %
 * slower on 70,000 x 784, k = 64). */
typedef REAL FN(hvec) __attribute__((vector_size(VL / 2 * sizeof(REAL))));
typedef double FN(hdvec) __attribute__((vector_size(VL / 2 * sizeof(double))));

/* p[0, VL) (+)= v in float64 */
static inline void FN(add64)(double *p, VEC v, int add)
{
    FN(hvec) h[2];
    memcpy(h, &v, sizeof v);
    for (int i = 0; i < 2; i++) {
        FN(hdvec) w = __builtin_convertvector(h[i], FN(hdvec));
        if (add) {
            FN(hdvec) o;
            memcpy(&o, p + i * (VL / 2), sizeof o);
            w += o;
        }
        memcpy(p + i * (VL / 2), &w, sizeof w);
    }
}

/* p[0, VL) rounded to REAL */
static inline VEC FN(round64)(const double *p)
{
    FN(hvec) h[2];
    for (int i = 0; i < 2; i++) {
        FN(hdvec) o;
        memcpy(&o, p + i * (VL / 2), sizeof o);
        h[i] = __builtin_convertvector(o, FN(hvec));
    }
    VEC v;
    memcpy(&v, h, sizeof v);
    return v;
}

/* cn - 2 (p[0, VL) + v), in float64, rounded to REAL */
static inline VEC FN(score64)(const double *p, VEC v, double cn)
{
    FN(hvec) h[2];
    memcpy(h, &v, sizeof v);
    for (int i = 0; i < 2; i++) {
        FN(hdvec) o;
        memcpy(&o, p + i * (VL / 2), sizeof o);
        h[i] = __builtin_convertvector(cn - 2 * (__builtin_convertvector(h[i], FN(hdvec)) + o),
                                       FN(hvec));
    }
    memcpy(&v, h, sizeof v);
    return v;
}

/* The length that the scores' error bound charges for: d where one d-block holds
 * the row; otherwise a block's KM_DBLOCK terms in REAL plus the float64 additions, one
 * a block, which together round by less than one unit of REAL for float (nblocks
 * 2^-53 < 2^-24) and are counted one by one for double. (10,000 x 20,000: 129 against
 * 20,000, which sent 11 % of the rows to the exact recheck every pass; 335 when each
 * addition was counted as a float's.) */
static inline int FN(err_len)(int d)
{
    return d <= KM_DBLOCK ? d
                          : KM_DBLOCK + (UROUND < 0x1p-40 ? (d + KM_DBLOCK - 1) / KM_DBLOCK : 1);
}

typedef struct {
    VEC b1[2], b2[2];   /* best and second-best score per row lane */
    VI i1[2];           /* index of the best (lowest on ties) */
} FN(argmin_state);

/* b2 = min(b2, max(b1, s)); b1 = min(b1, s); i1 = c where s < b1 (strictly, so
 * the lowest index wins ties). A NaN score poisons b1/b2, which sends the row
 * to the exact recheck. */
static inline void FN(argmin_update)(FN(argmin_state) *st, int h, VEC s, int c)
{
    const VI lt = s < st->b1[h];
    const VI cv = (VI){0} + c;   /* broadcast */
    st->b2[h] = KM_VMIN(st->b2[h], KM_VMAX(st->b1[h], s));
    st->b1[h] = KM_VMIN(st->b1[h], s);
    st->i1[h] = KM_VBLEND(lt, cv, st->i1[h]);
}

/* a b + c, fused: one lane, and lane by lane (KM_VFMA; elsewhere one lane at a time) */
static inline REAL FN(fma1)(REAL a, REAL b, REAL c)
{
    return _Generic((REAL)0, float: __builtin_fmaf, default: __builtin_fma)(a, b, c);
}

static inline VEC FN(fma)(VEC a, VEC b, VEC c)
{
#ifdef KM_VFMA
    return KM_VFMA(a, b, c);
#else
    for (int l = 0; l < VL; l++)
        c[l] = FN(fma1)(a[l], b[l], c[l]);
    return c;
#endif
}

/* a b + c as the kernel's sums accumulate: fused wherever the machine has a fused
 * multiply-add (KM_VFMA; __FP_FAST_FMA elsewhere), so that every loop that computes a
 * score rounds it alike, whatever the compiler's tuning would make of each loop's chain
 * (see KM_VFMA); else a multiply and an add, which it has nothing to contract into. */
static inline VEC FN(madd)(VEC a, VEC b, VEC c)
{
#if defined(KM_VFMA) || (defined(__FP_FAST_FMAF) && defined(__FP_FAST_FMA))
    return FN(fma)(a, b, c);
#else
    return a * b + c;
#endif
}

/* v in every lane (the scalar is broadcast; subtracting +0 changes no value, -0
 * included, and folds away) */
static inline VEC FN(bcast)(REAL v)
{
    return v - (VEC){0};
}

/* Step j of the register tile: row vectors j of xt times the first w (<= CG) centroid
 * values j of panel slice pj (scalar * vector: a broadcast), into the 2 x w accumulators. */
static inline __attribute__((always_inline)) void FN(fma_step)(VEC a[2][CG],
                                                               const REAL *restrict xt,
                                                               const REAL *restrict pj, int j,
                                                               const int w)
{
    const VEC x0 = FN(vload)(xt + (size_t)j * RV), x1 = FN(vload)(xt + (size_t)j * RV + VL);
    const REAL *cj = pj + (size_t)j * CG;
    for (int q = 0; q < w; q++) {
        const VEC c = FN(bcast)(cj[q]);
        a[0][q] = FN(madd)(c, x0, a[0][q]);
        a[1][q] = FN(madd)(c, x1, a[1][q]);
    }
}

/* One d-block [j0, j1) of a row group (xt: its (j1 - j0) x RV transpose) against
 * centroid group g (CG centroids). Where d spans several d-blocks, each block's dot
 * products start from zero and are added, in float64, to part (CG x RV doubles
 * per group); after the last block the scores update the argmin.
 * Hot loop: 2 w FMA chains. Only the group's first w centroids are scored: the
 * padding beyond k scores +inf, which changes neither the best nor the runner-up. */
static inline __attribute__((always_inline)) void FN(group_scores_w)(
    const km_centers *kc, const REAL *restrict xt, int g, int j0, int j1,
    double *restrict part, FN(argmin_state) *st, REAL *restrict keep, const km_pf_lines *pf,
    const int w)
{
    const int d = kc->d;
    const REAL *restrict pan = (const REAL *)kc->panels + (size_t)g * d * CG;
    double *restrict pg = part + (size_t)g * CG * RV;
    VEC a[2][CG];
    for (int q = 0; q < w; q++)
        a[0][q] = a[1][q] = (VEC){0};
    const REAL *restrict pj = pan + (size_t)j0 * CG;
    /* Both loops unrolled 4 times (GCC does not by itself): ~0.9 of the time side by
       side on 70,000 x 784 and 1,000,000 x 32, k = 64 (results/BENCH.md). */
    int j = 0;
    if (pf) {   /* two lines every 4 steps: a steady stream of requests */
        km_pf_cursor cu = pf_start(pf);
        for (; j + 4 <= j1 - j0 && cu.m < pf->m1; j += 4) {
            pf_issue(&cu);
            if (cu.m < pf->m1)
                pf_issue(&cu);
#pragma GCC unroll 4
            for (int u = 0; u < 4; u++)
                FN(fma_step)(a, xt, pj, j + u, w);
        }
        while (cu.m < pf->m1)
            pf_issue(&cu);
    }
#pragma GCC unroll 4
    for (; j < j1 - j0; j++)
        FN(fma_step)(a, xt, pj, j, w);
    if (j1 < d) {   /* several d-blocks: the block's sums into float64 */
        for (int q = 0; q < w; q++)
            for (int h = 0; h < 2; h++)
                FN(add64)(pg + q * RV + h * VL, a[h][q], j0 > 0);
        return;
    }
    if (j0 > 0)   /* the last of several: the score in float64, then rounded */
        for (int q = 0; q < w; q++)
            for (int h = 0; h < 2; h++)
                a[h][q] = FN(score64)(pg + q * RV + h * VL, a[h][q],
                                      (double)((const REAL *)kc->cnorm_r)[g * CG + q]);
    else
        for (int q = 0; q < w; q++)
            for (int h = 0; h < 2; h++)
                a[h][q] = ((const REAL *)kc->cnorm_r)[g * CG + q] - 2 * a[h][q];
    for (int q = 0; q < w; q++) {   /* a now holds the scores */
        FN(argmin_update)(st, 0, a[0][q], g * CG + q);
        FN(argmin_update)(st, 1, a[1][q], g * CG + q);
        if (keep) {   /* centroid c's scores at keep[c * RV + lane] */
            memcpy(keep + (size_t)(g * CG + q) * RV, &a[0][q], sizeof(VEC));
            memcpy(keep + (size_t)(g * CG + q) * RV + VL, &a[1][q], sizeof(VEC));
        }
    }
}

/* The last group of a k that is not a multiple of CG with a narrower tile: 4 or
 * 2 columns where 6 would score padding (k = 4: a third of the FMAs; k = 16: the
 * last group's 4 of 6). The same products in the same order: the same scores. */
static inline int FN(group_width)(const km_centers *kc, int g)
{
    const int left = kc->k - g * CG;
    return CG > 4 && left <= 2 ? 2 : CG > 4 && left <= 4 ? 4 : CG;
}

/* group_scores_w at the group's width. Inlined where one d-block holds the row (d <=
 * KM_DBLOCK, never prefetched by d-blocks): assign_block's loop over the groups then
 * keeps its copy of the argmin state in registers from group to group, where through
 * a call each update waited on the last one's store (1,000,000 x 32, k = 64:
 * results/BENCH.md); called out of line (group_scores) where the row spans several. */
static inline __attribute__((always_inline)) void FN(group_scores_in)(
    const km_centers *kc, const REAL *restrict xt, int g, int j0, int j1,
    double *restrict part, FN(argmin_state) *st, REAL *restrict keep, const km_pf_lines *pf)
{
    const int w = FN(group_width)(kc, g);
    if (w == 2)
        FN(group_scores_w)(kc, xt, g, j0, j1, part, st, keep, pf, 2);
    else if (w == 4)
        FN(group_scores_w)(kc, xt, g, j0, j1, part, st, keep, pf, 4);
    else
        FN(group_scores_w)(kc, xt, g, j0, j1, part, st, keep, pf, CG);
}

static void FN(group_scores)(const km_centers *kc, const REAL *restrict xt, int g, int j0,
                             int j1, double *restrict part, FN(argmin_state) *st,
                             REAL *restrict keep, const km_pf_lines *pf)
{
    FN(group_scores_in)(kc, xt, g, j0, j1, part, st, keep, pf);
}

#if ESIZE == 4 || KM_VBYTES / ESIZE == 8
/* 8 x 8 block transpose (rows src[0..8), columns [j, j + 8)) with the unpack /
 * shuffle / lane-permute network on vectors of 8 values: a VEC where VL == 8, half
 * of one for float with AVX-512 (compiles to vunpck*, vshufp*, vperm2f128 / vpermt2*).
 * Not for double on AVX2, where 8 doubles span two registers. */
typedef REAL FN(v8) __attribute__((vector_size(8 * sizeof(REAL))));
static inline void FN(transpose8)(const REAL *const *src, int j, REAL *restrict dst,
                                  int64_t ldd)
{
    typedef __typeof__(((VI){0})[0]) lane_t;
    typedef lane_t M __attribute__((vector_size(sizeof(FN(v8)))));
    FN(v8) r[8], t[8], u[8];
    for (int i = 0; i < 8; i++)
        memcpy(&r[i], src[i] + j, sizeof r[i]);
    const M lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
    const M s0 = {0, 1, 8, 9, 4, 5, 12, 13}, s1 = {2, 3, 10, 11, 6, 7, 14, 15};
    const M p0 = {0, 1, 2, 3, 8, 9, 10, 11}, p1 = {4, 5, 6, 7, 12, 13, 14, 15};
    for (int i = 0; i < 4; i++) {
        t[2 * i] = __builtin_shuffle(r[2 * i], r[2 * i + 1], lo);
        t[2 * i + 1] = __builtin_shuffle(r[2 * i], r[2 * i + 1], hi);
    }
    for (int i = 0; i < 2; i++) {
        u[4 * i] = __builtin_shuffle(t[4 * i], t[4 * i + 2], s0);
        u[4 * i + 1] = __builtin_shuffle(t[4 * i], t[4 * i + 2], s1);
        u[4 * i + 2] = __builtin_shuffle(t[4 * i + 1], t[4 * i + 3], s0);
        u[4 * i + 3] = __builtin_shuffle(t[4 * i + 1], t[4 * i + 3], s1);
    }
    for (int i = 0; i < 4; i++) {
        FN(v8) a = __builtin_shuffle(u[i], u[i + 4], p0), b = __builtin_shuffle(u[i], u[i + 4], p1);
        memcpy(dst + i * ldd, &a, sizeof a);
        memcpy(dst + (i + 4) * ldd, &b, sizeof b);
    }
}
#define KM_HAVE_T8 1
#else
#define KM_HAVE_T8 0
#endif

/* Transpose columns [j0, j1) of rows rp[0..nr) into xt ((j1 - j0) x RV),
 * zero-padding lanes nr..RV-1. */
static void FN(transpose_p)(const REAL *const *rp, int64_t nr, int j0, int j1,
                            REAL *restrict xt)
{
    int j = j0;
    if (nr < RV)
        memset(xt, 0, sizeof(REAL) * (size_t)(j1 - j0) * RV);
#if KM_HAVE_T8
    if (nr == RV) {   /* RV is a multiple of 8 */
        for (; j + 8 <= j1; j += 8)
            for (int b = 0; b < RV; b += 8)
                FN(transpose8)(rp + b, j, xt + (size_t)(j - j0) * RV + b, RV);
    }
#endif
    for (int64_t i = 0; i < nr; i++)
        for (int jj = j; jj < j1; jj++)
            xt[(size_t)(jj - j0) * RV + i] = rp[i][jj];
}

#if ESIZE == 4 && (KM_VBYTES == 32 || KM_VBYTES == 64)
/* VL rows of at most VL floats (x, stride d), each one vector load (the lanes past d
 * are the next rows' values, never used), transposed in registers into t (t[j]:
 * column j): 4 x 4 blocks within each 128-bit lane by unpack and shuffle (vunpck*,
 * vshufps), then the lanes themselves (vshuff32x4, vperm2f128), as transpose8 does
 * for 8 x 8. Reads x[0, (VL - 1) d + VL). */
#define KM_HAVE_SHORT 1
static inline __attribute__((always_inline)) void FN(transpose_half)(const REAL *restrict x,
                                                                    int d, VEC t[VL])
{
    VI lo, hi, s0, s1;
    for (int l = 0; l < VL; l++) {   /* constants once folded */
        const int q = l & ~3, e = l & 3;   /* 128-bit lane, place in it */
        lo[l] = q + e / 2 + (e & 1) * VL;
        hi[l] = q + 2 + e / 2 + (e & 1) * VL;
        s0[l] = q + (e & 1) + (e / 2) * VL;
        s1[l] = q + 2 + (e & 1) + (e / 2) * VL;
    }
    VEC r[VL];
    for (int i = 0; i < VL; i++)
        r[i] = FN(vload)(x + (size_t)i * d);
    for (int i = 0; i < VL / 2; i++) {   /* rows 2i, 2i + 1 interleaved */
        t[2 * i] = __builtin_shuffle(r[2 * i], r[2 * i + 1], lo);
        t[2 * i + 1] = __builtin_shuffle(r[2 * i], r[2 * i + 1], hi);
    }
    for (int i = 0; i < VL / 4; i++) {   /* lane L of r[4i + b]: column 4L + b of rows 4i.. */
        r[4 * i] = __builtin_shuffle(t[4 * i], t[4 * i + 2], s0);
        r[4 * i + 1] = __builtin_shuffle(t[4 * i], t[4 * i + 2], s1);
        r[4 * i + 2] = __builtin_shuffle(t[4 * i + 1], t[4 * i + 3], s0);
        r[4 * i + 3] = __builtin_shuffle(t[4 * i + 1], t[4 * i + 3], s1);
    }
    /* column 4L + b = lane L of r[b], r[4 + b], ...: a transpose of 128-bit lanes */
#if KM_VBYTES == 32
    const VI p0 = {0, 1, 2, 3, 8, 9, 10, 11}, p1 = {4, 5, 6, 7, 12, 13, 14, 15};
    for (int b = 0; b < 4; b++) {
        t[b] = __builtin_shuffle(r[b], r[4 + b], p0);
        t[4 + b] = __builtin_shuffle(r[b], r[4 + b], p1);
    }
#else
    /* (A.0, A.2, B.0, B.2) and (A.1, A.3, B.1, B.3), twice */
    const VI e0 = {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27},
             e1 = {4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31};
    for (int b = 0; b < 4; b++) {
        const VEC w0 = __builtin_shuffle(r[b], r[4 + b], e0),
                  w1 = __builtin_shuffle(r[b], r[4 + b], e1),
                  w2 = __builtin_shuffle(r[8 + b], r[12 + b], e0),
                  w3 = __builtin_shuffle(r[8 + b], r[12 + b], e1);
        t[b] = __builtin_shuffle(w0, w2, e0);
        t[8 + b] = __builtin_shuffle(w0, w2, e1);
        t[4 + b] = __builtin_shuffle(w1, w3, e0);
        t[12 + b] = __builtin_shuffle(w1, w3, e1);
    }
#endif
}

#else
#define KM_HAVE_SHORT 0
#endif

/* The same for rows [0, nr) of x (stride d). */
static void FN(transpose)(const REAL *restrict x, int64_t nr, int d, int j0, int j1,
                          REAL *restrict xt)
{
    const REAL *rp[RV];
    for (int64_t i = 0; i < nr; i++)
        rp[i] = x + i * d;
    FN(transpose_p)(rp, nr, j0, j1, xt);
}
#undef KM_HAVE_T8

#if KM_HAVE_SHORT
/* Centroid group g's scores of one half of a row group of short rows (t: its columns,
 * in registers), into the argmin: group_scores_w's products, sums and updates in
 * its order, so the same bits. The columns past d are never read. */
static inline __attribute__((always_inline)) void FN(short_scores_w)(
    const km_centers *kc, const VEC t[VL], int g, FN(argmin_state) *st, int h, const int d,
    const int w)
{
    const REAL *restrict pan = (const REAL *)kc->panels + (size_t)g * d * CG;
    VEC a[CG];
    for (int q = 0; q < w; q++)
        a[q] = (VEC){0};
#pragma GCC unroll 16
    for (int j = 0; j < VL; j++)
        if (j < d)
            for (int q = 0; q < w; q++)
                a[q] = FN(madd)(FN(bcast)(pan[(size_t)j * CG + q]), t[j], a[q]);
    for (int q = 0; q < w; q++)
        FN(argmin_update)(st, h, ((const REAL *)kc->cnorm_r)[g * CG + q] - 2 * a[q],
                          g * CG + q);
}

/* A whole row group of short rows (d <= VL, RV rows from x, stride d): what
 * assign_block's d-block loop computes for it (the columns, ||x||^2 into xn, every
 * centroid's score into st), a half at a time with the half's columns in registers:
 * no transposed block stored and loaded again, no call a centroid group (4,000,000 x
 * 16, k = 4: results/BENCH.md). The same operations in the same order as that loop,
 * so a row's scores do not depend on which of the two computed them. The npf lines
 * from pf on (the next row group) are asked for half before each half, into L1, and
 * with pf_l2 as many lines KM_PF_L2_AHEAD_BYTES beyond them into L2. Reads
 * x[0, (RV - 1) d + VL). */
static inline __attribute__((always_inline)) void FN(short_group_d)(
    const km_centers *kc, const REAL *restrict x, FN(argmin_state) *st, VEC xn[2],
    const char *pf, int64_t npf, int pf_l2, const int d)
{
    const int ng = kc->kp / CG;
    for (int h = 0; h < 2; h++) {
        for (int64_t m = h * npf / 2; m < (h + 1) * npf / 2; m++) {
            __builtin_prefetch(pf + m * 64, 0, 3);
            if (pf_l2)
                __builtin_prefetch((const char *)((uintptr_t)pf + KM_PF_L2_AHEAD_BYTES
                                                  + (uintptr_t)m * 64), 0, 1);
        }
        VEC t[VL];
        FN(transpose_half)(x + (size_t)h * VL * d, d, t);
        /* ||x||^2 in assign_block's four chains: column j into chain j % 4 up to the
           last multiple of 4, the rest into chain 0 */
        VEC xq[4] = {{0}, {0}, {0}, {0}};
        const int d4 = d & ~3;
#pragma GCC unroll 16
        for (int j = 0; j < VL; j++) {
            if (j < d4)
                xq[j % 4] = FN(madd)(t[j], t[j], xq[j % 4]);
            else if (j < d)
                xq[0] = FN(madd)(t[j], t[j], xq[0]);
        }
        xn[h] = (xq[0] + xq[1]) + (xq[2] + xq[3]);
        for (int g = 0; g < ng; g++) {
            const int w = FN(group_width)(kc, g);
            if (w == 2)
                FN(short_scores_w)(kc, t, g, st, h, d, 2);
            else if (w == 4)
                FN(short_scores_w)(kc, t, g, st, h, d, 4);
            else
                FN(short_scores_w)(kc, t, g, st, h, d, CG);
        }
    }
}

/* short_group_d with d a constant where the rows are one vector each (d == VL): GCC
 * then keeps the rows' offsets and the columns in registers and drops the tests of j
 * against d (4,000,000 x 16, k = 4: results/BENCH.md). */
static void FN(short_group)(const km_centers *kc, const REAL *restrict x,
                            FN(argmin_state) *st, VEC xn[2], const char *pf, int64_t npf,
                            int pf_l2)
{
    if (kc->d == VL)
        FN(short_group_d)(kc, x, st, xn, pf, npf, pf_l2, VL);
    else
        FN(short_group_d)(kc, x, st, xn, pf, npf, pf_l2, kc->d);
}
#endif

/* One row's scores against every centroid, as group_scores computes them (the
 * same products, so within the same error bound): for a near-tie when the
 * kernel did not keep the row group's scores. */
static void FN(rescore)(const km_centers *kc, const REAL *restrict xr, REAL *restrict out)
{
    const int d = kc->d, ng = kc->kp / CG;
    const REAL *cn = kc->cnorm_r;
    for (int g = 0; g < ng; g++) {
        const REAL *restrict p = (const REAL *)kc->panels + (size_t)g * d * CG;
        REAL a[CG] = {0};
        for (int j = 0; j < d; j++)
            for (int q = 0; q < CG; q++)
                a[q] += xr[j] * p[(size_t)j * CG + q];
        for (int q = 0; q < CG; q++)
            out[g * CG + q] = cn[g * CG + q] - 2 * a[q];
    }
}

/* Finish one row: certify or recheck the argmin, then record a move in acc
 * (a row that keeps its label costs nothing more). With eb != NULL (the
 * pruned strategies' bounds): *eb >= the squared distance to the chosen centroid
 * (its exact distance, or eb_up when finite: the scores' upper side, which the
 * caller passes only when it is tight), *lb2 = a lower bound of the squared
 * distance to every other centroid (lb_fast from the scores, or the exact
 * runner-up when the row was rechecked), before the relative margin of
 * km_dist_exact's rounding, which the caller applies. */
static void FN(finish_row)(const km_centers *kc, const REAL *restrict xr, REAL second,
                           REAL lim, int bi, int32_t *label, km_acc *acc, km_workspace *ws,
                           double lb_fast, double lb_lim, const REAL *sc, double eb_up,
                           double *eb, double *lb2)
{
    const int k = kc->k, d = kc->d;
    double e_best = -1;   /* the chosen centroid's exact distance, once known */
    if (!(second > lim)) {   /* near-tie (or overflow): exact distances decide */
        double e_second = INFINITY;
        e_best = INFINITY;
        /* with the row's scores (sc[c * RV], or computed again), only the
         * centroids scored within lim of the best can be nearest: the others are
         * provably farther, and lb_lim bounds their distances from below */
        size_t stride = RV;
        if (!sc && ws->rescore && isfinite(lim)) {
            FN(rescore)(kc, xr, ws->rescore);
            sc = ws->rescore;
            stride = 1;
        }
        const int some = sc && isfinite(lim);
        for (int c = 0; c < k; c++) {
            if (some && sc[(size_t)c * stride] > lim)
                continue;
            double e = km_dist_exact(xr, 0, d, PREC, kc->c64 + (size_t)c * d);
            if (e < e_best) {
                e_second = e_best;
                e_best = e;
                bi = c;
            } else if (e < e_second) {
                e_second = e;
            }
        }
        lb_fast = some && lb_lim < e_second ? lb_lim : e_second;
    }
    if (eb) {
        *eb = e_best >= 0 ? e_best
              : eb_up < INFINITY ? eb_up : km_dist_exact(xr, 0, d, PREC, kc->c64 + (size_t)bi * d);
        *lb2 = lb_fast;
    }
    take_row(kc, xr, bi, label, acc, ws);
}

/* The terms of the scores' error bound: a score is within
 * coef (xn grow + cmax2) slack of the truth (see assign_block), where the dot
 * products and xn pass through at most e roundings in REAL each. */
typedef struct {
    REAL coef, grow, cmax2, slack;
    int e;
} FN(score_err);

/* The bound for e roundings in REAL: the kernel's FN(err_len)(d), or row_scores'
 * FN(row_err_len)(d). */
static inline FN(score_err) FN(score_err_len)(const km_centers *kc, int e)
{
    /* Over several d-blocks the dot is off by at most KM_DBLOCK u of sum |x_j c_j| (a
     * block's FMAs) plus one float64 rounding a block, and its score by one more
     * rounding to REAL: the one-block derivation with e = err_len(d) terms for d.
     * (2 d + 8) 2^-53 covers the float64 sums (the norms, km_dist_exact) where e < d. */
    const int d = kc->d;
    return (FN(score_err)){
        .coef = (REAL)(1.25 * ((2.0 * e + 8.0) * UROUND + (2.0 * d + 8.0) * 0x1p-53 + 0x1p-48)),
        .grow = (REAL)(1.0 + 2.0 * (e + 2) * UROUND),
        .cmax2 = (REAL)(kc->cmax * kc->cmax * (1 + 4 * UROUND)),
        .slack = (REAL)(1 + 16 * UROUND),
        .e = e};
}

static inline FN(score_err) FN(score_err_of)(const km_centers *kc)
{
    return FN(score_err_len)(kc, FN(err_len)(kc->d));
}

/* base with ||x - c||^2 >= base + score(c) for every centroid c, given xn, the
 * row's ||x||^2 summed in REAL: the score's error bound and xn's rounding, taken
 * twice. */
static inline double FN(score_base)(const FN(score_err) *se, REAL xn)
{
    const double xn64 = (double)xn;
    const double err = 2.0 * (double)se->coef * (xn64 * (double)se->grow + (double)se->cmax2)
                       * (double)se->slack;
    return xn64 * (1.0 - 2.0 * (se->e + 2) * UROUND) - 2.0 * err;
}

/* The other side: top with ||x - c||^2 <= top + score(c) for every centroid c.
 * The same two terms with their signs turned: twice the score's error bound, and
 * ||x||^2 at most xn (1 + 2 g) when xn is within a factor 1 - g of it (g is
 * score_base's 2 (e + 2) UROUND, far below 1/2). */
static inline double FN(score_top)(const FN(score_err) *se, REAL xn)
{
    const double xn64 = (double)xn;
    const double err = 2.0 * (double)se->coef * (xn64 * (double)se->grow + (double)se->cmax2)
                       * (double)se->slack;
    return xn64 * (1.0 + 4.0 * (se->e + 2) * UROUND) + 2.0 * err;
}

/* The roundings in REAL of dots64's sums: in each lane and d-block a chain of at most
 * blk / VL fused products, and the block's tail (fewer than VL) in lane 0, then
 * float64 additions, one a block and VL - 1 for the lanes, which together round by
 * less than one unit of REAL for float and are counted one by one for double
 * (10,000 x 20,000, AVX-512: 32 for float; the kernel's err_len is 129). */
static inline int FN(row_err_len)(int d)
{
    const int blk = d < KM_ROW_DBLOCK ? d : KM_ROW_DBLOCK;
    const int blocks = (d + KM_ROW_DBLOCK - 1) / KM_ROW_DBLOCK;
    return blk / VL + VL - 1 + (UROUND < 0x1p-40 ? blocks + VL : 1);
}

/* sum_j xr[j] ys[i][j] over [0, d) for ny (<= 4) rows ys, KM_ROW_DBLOCK values at a
 * time: a block's products in REAL (VL lanes, the tail in lane 0), each block's
 * lanes added to float64 sums, which are added up at the end (row_err_len). The
 * lanes are vectors, not an OpenMP reduction, which would reduce across lanes once
 * a block (Yinyang on 70,000 x 784, k = 256 measured 1.04-1.05x with it). */
static inline __attribute__((always_inline)) void FN(dots64)(const REAL *restrict xr,
                                                              const REAL *const *ys, int ny,
                                                              int d, double *out,
                                                              km_row_aux *aux)
{
    double t[4][VL];
    for (int i = 0; i < ny; i++)
        for (int l = 0; l < VL; l++)
            t[i][l] = 0;
    for (int j0 = 0; j0 < d; j0 += KM_ROW_DBLOCK) {
        const int j1 = d - j0 > KM_ROW_DBLOCK ? j0 + KM_ROW_DBLOCK : d;
        VEC v[4] = {{0}, {0}, {0}, {0}};
        if (aux)
            for (int u = 0; u < KM_PF_NEXT_ROW_LINES && aux->next < aux->next_end; u++) {
                __builtin_prefetch(aux->next, 0, 3);
                aux->next += 64;
            }
        int j = j0;
        for (; j + VL <= j1; j += VL) {
            const VEC xv = FN(vload)(xr + j);
            for (int i = 0; i < ny; i++)
                v[i] = FN(fma)(xv, FN(vload)(ys[i] + j), v[i]);
        }
        for (; j < j1; j++)   /* fused too */
            for (int i = 0; i < ny; i++)
                v[i][0] = FN(fma1)(xr[j], ys[i][j], v[i][0]);
        for (int i = 0; i < ny; i++)
            FN(add64)(t[i], v[i], 1);
    }
    for (int i = 0; i < ny; i++) {
        double sum = 0;
        for (int l = 0; l < VL; l++)
            sum += t[i][l];
        out[i] = sum;
    }
}

/* Scores of one row against the centroids cand[0, n), within the blocked
 * kernel's error bound (dots64 sums no more than a d-block's terms in REAL), from
 * the row-major copy of the centroids, four centroids at a time sharing the loads
 * of the row; in float64 from the dot products on. Returns score_base. */
static double FN(row_scores)(const km_centers *kc, const REAL *restrict xr, const int *cand,
                             int n, double *out, double *top, km_row_aux *aux)
{
    const int d = kc->d;
    const REAL *restrict cr = kc->rows_r, *cn = kc->cnorm_r;
    const int known = aux && !isnan(aux->xn);
    double xn64 = known ? aux->xn : 0;
    /* ||x||^2 rides with the first three centroids: one pass over the row (in high d
     * it comes from memory) for both. Each sum is alone in its lane, so its bits do
     * not depend on its company, nor on whether it was summed in an earlier call. */
    for (int q = known ? 0 : -1; q < n; q += 4) {
        const int ny = n - q < 4 ? n - q : 4;
        const REAL *ys[4];
        double dot[4];
        for (int i = 0; i < ny; i++)
            ys[i] = q + i < 0 ? xr : cr + (size_t)cand[q + i] * d;
        switch (ny) {   /* constant counts: the sums stay in registers */
        case 4: FN(dots64)(xr, ys, 4, d, dot, aux); break;
        case 3: FN(dots64)(xr, ys, 3, d, dot, aux); break;
        case 2: FN(dots64)(xr, ys, 2, d, dot, aux); break;
        default: FN(dots64)(xr, ys, 1, d, dot, aux); break;
        }
        for (int i = 0; i < ny; i++) {
            if (q + i < 0)
                xn64 = dot[i];
            else
                out[q + i] = (double)cn[cand[q + i]] - 2 * dot[i];
        }
    }
    if (aux)
        aux->xn = xn64;
    const FN(score_err) se = FN(score_err_len)(kc, FN(row_err_len)(d));
    if (top)
        *top = FN(score_top)(&se, (REAL)xn64);
    return FN(score_base)(&se, (REAL)xn64);
}

/* Yinyang's group bounds of one row (km_group_bounds): per group, base + the
 * least score of its centroids other than the label, each score being within the
 * error bound that base subtracts; without scores, lb2 for every group. A NaN
 * score makes its group's bound 0. */
static void FN(group_bounds)(const km_centers *kc, const km_group_bounds *gb,
                             const REAL *sc, int label, double base, double lb2, double *out)
{
    const int t = gb->t, k = kc->k;
    if (!sc) {
        for (int g = 0; g < t; g++)
            out[g] = lb2;
        return;
    }
    for (int g = 0; g < t; g++)
        out[g] = INFINITY;
    for (int c = 0; c < k; c++) {
        const double s = (double)sc[(size_t)c * RV];
        const int g = gb->group[c];
        if (c != label && (s < out[g] || s != s))   /* once NaN, stays NaN */
            out[g] = s;
    }
    for (int g = 0; g < t; g++) {
        const double v = base + out[g];
        out[g] = v > 0 ? v : 0;   /* NaN too */
    }
}

/* The rows [0, nr) of a row group that finish_row must see, as bits: a near-tie
 * (or a NaN score) or a move, lane by lane. The others keep their label and cost
 * nothing. With the bits, a group that holds a move visits only its rows that need
 * it: a scalar test of each of the 32 rows took a fifth of a pass at d = 16, and
 * where 3-5 % of the rows move most row groups hold one. */
_Static_assert(RV <= 64, "a row group's rows are bits of a uint64_t");
static inline uint64_t FN(rows_mask)(int64_t nr)   /* bits [0, nr) */
{
    return nr < 64 ? (UINT64_C(1) << nr) - 1 : ~UINT64_C(0);
}

/* Lane l's sign as bit l: for a comparison's result (all ones or zero), which lanes
 * hold. One instruction with AVX-512 DQ (vpmovd2m, vpmovq2m) or AVX (vmovmskps/pd). */
static inline uint64_t FN(lane_bits)(VI m)
{
#if defined(__AVX512DQ__) && KM_VBYTES == 64 && ESIZE == 4
    return (uint16_t)_mm512_movepi32_mask((__m512i)m);
#elif defined(__AVX512DQ__) && KM_VBYTES == 64
    return (uint8_t)_mm512_movepi64_mask((__m512i)m);
#elif defined(__AVX__) && KM_VBYTES == 32 && ESIZE == 4
    return (unsigned)_mm256_movemask_ps((__m256)m);
#elif defined(__AVX__) && KM_VBYTES == 32
    return (unsigned)_mm256_movemask_pd((__m256d)m);
#else
    uint64_t b = 0;
    for (int l = 0; l < VL; l++)
        b |= (uint64_t)(m[l] < 0) << l;
    return b;
#endif
}

static inline uint64_t FN(group_need)(const FN(argmin_state) *st, const VEC *lim,
                                      const int32_t *labels, int64_t nr)
{
    uint64_t ok = 0;
    for (int h = 0; h < 2; h++) {
        VI lab = {0};   /* lanes past nr: masked off below */
        if (sizeof lab[0] == sizeof *labels && nr == RV)   /* one load */
            memcpy(&lab, labels + h * VL, sizeof lab);
        else
            for (int l = 0; l < VL && h * VL + l < nr; l++)
                lab[l] = (__typeof__(lab[0]))labels[h * VL + l];
        ok |= FN(lane_bits)((VI)(st->b2[h] > lim[h]) & (VI)(st->i1[h] == lab)) << (h * VL);
    }
    return ~ok & FN(rows_mask)(nr);
}

static void FN(assign_block)(const km_centers *kc, const REAL *restrict x,
                             const REAL *const *rowp, int64_t rows,
                             int32_t *restrict labels, km_acc *acc,
                             km_workspace *ws, double *eb, double *lb2,
                             const km_group_bounds *gb)
{
    const int d = kc->d, ng = kc->kp / CG;
    REAL *xt = ws->xt;
    double *part = ws->part;
    const int pf_calls = ng * ((d + KM_DBLOCK - 1) / KM_DBLOCK);
    const size_t rowb = (size_t)d * sizeof(REAL);
    /* Long rows in memory: the next row group would not stay in L2 until its turn,
       so the d-block that comes next (this group's next columns, or the next group's
       first) is asked for instead, spread over the kernel's loop (10,000 x 20,000,
       k = 16: ~0.75 of the time; on 70,000 x 784 the whole next group is faster).
       Rows just read into the thread's buffer are in cache already. */
    const int blk_pf = !ws->fresh && RV * rowb > KM_PF_GROUP_BYTES;
    const FN(score_err) se = FN(score_err_of)(kc);
    /* Contiguous rows: the row group pf_ahead rows on is asked for, at least
       KM_PF_AHEAD_BYTES on, whole even past the block's last row (a prefetch is a hint
       and never faults): most blocks' next one follows in memory, and the first row
       groups of a block were read cold. With short rows the next row group alone came
       too late (4,000,000 x 16, k = 4: ~10 % faster two row groups on, results/BENCH.md).
       The row group's lines and their share a call, without a division a row group. */
    const int64_t pf_ahead = RV * (1 + (int64_t)(KM_PF_AHEAD_BYTES - 1) / (RV * (int64_t)rowb));
    const int64_t group_lines = ((int64_t)RV * (int64_t)rowb + 63) / 64;
    const int64_t full_step = (group_lines * 64 / pf_calls + 127) / 64;   /* contiguous */
    /* see short_group; short rows keep no scores (d < KM_KEEP_SCORES_D) */
    const int short_rows = KM_HAVE_SHORT && d <= VL && !rowp && !ws->scores;
    for (int64_t r0 = 0; r0 < rows; r0 += RV) {
        const int64_t nr = rows - r0 < RV ? rows - r0 : RV;
        const int64_t ahead = rows - r0 - RV, after = ahead <= 0 ? 0 : ahead < RV ? ahead : RV;
        const int64_t nnext = !rowp ? RV : after;   /* rows of the next group asked for */
        /* Otherwise the next row group is asked for while this one computes, a slice
           before each centroid group's call: its bytes where the rows are contiguous,
           the first 512 of each row anywhere. All at once, the prefetches queued
           behind the few line-fill buffers and stalled the loads of the
           transposition (70,000 x 784, k = 64: 10-15 % slower on Zen 3). */
        const int next_lpr = rowp ? (int)(rowb < 512 ? (rowb + 63) / 64 : 8)
                                  : (int)((nnext * rowb + 63) / 64);
        km_pf_lines next = {.base = rowp ? (const char *)x
                                         : (const char *)((uintptr_t)x + (uintptr_t)(r0 + pf_ahead)
                                                                             * rowb),
                            .rows = rowp && nnext ? (const void *const *)(rowp + r0 + RV) : NULL,
                            .stride = rowb, .lpr = next_lpr > 0 ? next_lpr : 1};
        const int64_t next_n = rowp ? nnext * next.lpr : next_lpr;
        /* a little over an even share a call: all asked for before the last calls */
        const int64_t next_step = rowp ? (next_n * 64 / pf_calls + 127) / 64 : full_step;
        int64_t next_done = 0;
        FN(argmin_state) st;
        VEC xn[2] = {{0}, {0}};
        double xn64[RV] = {0};   /* used where d > KM_DBLOCK */
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < VL; i++) {
                st.b1[h][i] = st.b2[h][i] = INFINITY;
                st.i1[h][i] = 0;
            }
        REAL *keep = ws->scores;
        /* a whole group of short rows in memory: in registers */
        const int in_regs =
            short_rows && nr == RV && (RV - 1) * (int64_t)d + VL <= (rows - r0) * d;
#if KM_HAVE_SHORT
        if (in_regs)
            FN(short_group)(kc, x + r0 * d, &st, xn, next.base, next_n, pf_l2_wanted());
#endif
        /* d-block by d-block, so the transposed block stays in L1 whatever d is */
        for (int j0 = 0; j0 < d && !in_regs; j0 += KM_DBLOCK) {
            const int j1 = d - j0 > KM_DBLOCK ? j0 + KM_DBLOCK : d;
            if (rowp)
                FN(transpose_p)(rowp + r0, nr, j0, j1, xt);
            else
                FN(transpose)(x + r0 * d, nr, d, j0, j1, xt);
            /* ||x||^2 per lane, for the error bound: four chains a half (one chain
               waited on the FMA's latency). Each term still passes through no more
               roundings than the block's length, which is what the bound charges */
            VEC xq[2][4] = {{{0}}};
            int j = 0;
            for (; j + 4 <= j1 - j0; j += 4)
                for (int u = 0; u < 4; u++)
                    for (int h = 0; h < 2; h++) {
                        const VEC v = FN(vload)(xt + (size_t)(j + u) * RV + h * VL);
                        xq[h][u] = FN(madd)(v, v, xq[h][u]);
                    }
            for (; j < j1 - j0; j++)
                for (int h = 0; h < 2; h++) {
                    const VEC v = FN(vload)(xt + (size_t)j * RV + h * VL);
                    xq[h][0] = FN(madd)(v, v, xq[h][0]);
                }
            VEC xb[2];
            for (int h = 0; h < 2; h++)
                xb[h] = (xq[h][0] + xq[h][1]) + (xq[h][2] + xq[h][3]);
            for (int h = 0; h < 2; h++) {   /* summed by blocks as the dot products are */
                if (d <= KM_DBLOCK) {
                    xn[h] = xb[h];
                    continue;
                }
                FN(add64)(xn64 + h * VL, xb[h], j0 > 0);
                if (j1 == d)
                    xn[h] = FN(round64)(xn64 + h * VL);
            }
            const int64_t nb_r = j1 < d ? r0 : r0 + RV, nb_n = j1 < d ? nr : after;
            const int nb_j0 = j1 < d ? j1 : 0;
            const int nb_j1 = d - nb_j0 > KM_DBLOCK ? nb_j0 + KM_DBLOCK : d;
            km_pf_lines pl = {
                .base = (const char *)(nb_n > 0 && !rowp ? x + nb_r * d : x),
                .rows = rowp && nb_n > 0 ? (const void *const *)(rowp + nb_r) : NULL,
                .stride = rowb,
                .off = (size_t)nb_j0 * sizeof(REAL),
                .lpr = (int)(((size_t)(nb_j1 - nb_j0) * sizeof(REAL) + 63) / 64)};
            const int pl_n = (int)nb_n * pl.lpr;
            FN(argmin_state) sr = st;   /* in registers where d <= KM_DBLOCK: group_scores_in */
            for (int g = 0; g < ng; g++) {
                if (blk_pf) {
                    pl.m0 = g * pl_n / ng;
                    pl.m1 = (g + 1) * pl_n / ng;
                } else {
                    next.m0 = (int)next_done;
                    next.m1 = (int)(next_done + next_step < next_n ? next_done + next_step
                                                                   : next_n);
                    next_done = next.m1;
                    for (km_pf_cursor cu = pf_start(&next); cu.m < next.m1;)
                        pf_issue(&cu);
                }
                if (d <= KM_DBLOCK)
                    FN(group_scores_in)(kc, xt, g, 0, d, part, &sr, keep, NULL);
                else
                    FN(group_scores)(kc, xt, g, j0, j1, part, &st, keep, blk_pf ? &pl : NULL);
            }
            if (d <= KM_DBLOCK)
                st = sr;
        }
        /* Scores are within coef (||x|| + cmax)^2 of the truth: the dot in REAL
         * (d FMAs, or a d-block's), centroids and norms rounded to REAL, the score's rounding.
         * (a + b)^2 <= 2 a^2 + 2 b^2 avoids a square root; the same bound covers
         * km_dist_exact's float64 error. Runners-up within 4x of it are rechecked. */
        VEC lim[2];
        for (int h = 0; h < 2; h++)
            lim[h] = st.b1[h] + (8 * se.coef) * (xn[h] * se.grow + se.cmax2) * se.slack;
        /* with eb (the pruned strategies' bounds) every row is finished */
        for (uint64_t need = eb ? FN(rows_mask)(nr) : FN(group_need)(&st, lim, labels + r0, nr);
             need; need &= need - 1) {
            const int64_t i = __builtin_ctzll(need);
            const int h = (int)(i / VL), l = (int)(i % VL);
            double lbf = 0, lbl = 0, base = 0, up = INFINITY;
            if (eb) {   /* ||x - c||^2 = ||x||^2 + score(c) for the runner-up and beyond,
                           less twice the scores' error bound and xn's rounding; for the
                           centroids scored above lim, the same with lim */
                base = FN(score_base)(&se, xn[h][l]);
                lbf = base + (double)st.b2[h][l];
                lbl = base + (double)lim[h][l];
                /* the best's upper side, when within 1/64 of its lower one: the
                   bound it gives is then about as tight as the exact distance,
                   which would read the row again in float64 */
                const double lo = base + (double)st.b1[h][l];
                const double hi = FN(score_top)(&se, xn[h][l]) + (double)st.b1[h][l];
                if ((hi - lo) * KM_EB_SLACK < lo)
                    up = hi;
            }
            const REAL *xr = rowp ? rowp[r0 + i] : x + (r0 + i) * d;
            FN(finish_row)(kc, xr, st.b2[h][l], lim[h][l], (int)st.i1[h][l],
                           labels + r0 + i, acc, ws, lbf, lbl, keep ? keep + i : NULL, up,
                           eb ? eb + r0 + i : NULL, lb2 ? lb2 + r0 + i : NULL);
            if (gb)   /* needs eb, lb2: the label is final now */
                FN(group_bounds)(kc, gb, keep ? keep + i : NULL, labels[r0 + i], base,
                                 lb2[r0 + i], gb->glb + (size_t)(r0 + i) * gb->t);
        }
    }
}

/* The centroids in the data precision; those with kc->same[c] are there already (a
 * panel is written again when one of its centroids is not). */
static void FN(load_panels)(km_centers *kc, const double *c64)
{
    const int k = kc->k, d = kc->d, ng = kc->kp / CG;
    REAL *panels = kc->panels, *cn = kc->cnorm_r, *rows = kc->rows_r;
    for (int c = 0; rows && c < k; c++)
        if (!kc->same[c])
            for (size_t j = 0; j < (size_t)d; j++)
                rows[(size_t)c * d + j] = (REAL)c64[(size_t)c * d + j];
    for (int c = 0; c < kc->kp; c++)
        cn[c] = c < k ? (REAL)kc->cnorm[c] : (REAL)INFINITY;
    for (int g = 0; g < ng; g++) {
        int all_same = 1;
        for (int c = g * CG; c < (g + 1) * CG && c < k; c++)
            all_same &= kc->same[c];
        if (all_same)
            continue;
        for (int j = 0; j < d; j++)
            for (int q = 0; q < CG; q++) {
                int c = g * CG + q;
                panels[((size_t)g * d + j) * CG + q] = c < k ? (REAL)c64[(size_t)c * d + j] : 0;
            }
    }
}

#undef KM_HAVE_SHORT
#undef RV
#undef FN
#undef FN2
#undef FN_
