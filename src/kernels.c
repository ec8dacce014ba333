/* kernels.c — OpenMP + SIMD kernels over blocks of rows: the fast assignment
 * (kernels_tmpl.h, instantiated for float and double), the naive reference it
 * is tested against, and the per-point helpers of init and empty-cluster
 * re-seeding. Everything per point is position independent; sums that must
 * not depend on the thread count are done in exact integers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include "bounds.h"
#include "kernels.h"

#define CG 6            /* centroids per register tile (12 FMA chains with 2 row vectors) */
/* Features per pass of the micro-kernel: its transposed block of a row group (16 KB
 * of floats with AVX-512) and the length of its sums in REAL (err_len). 128 in place
 * of 256 (OMP_NUM_THREADS=1 build/kbench D K N 5, AVX-512 host): d = 20,000, k = 16,
 * 131.7 -> 109.0 ms; d = 784, k = 64, 93.4 -> 88.0 ms; d = 32 the same */
#ifndef KM_DBLOCK
#define KM_DBLOCK 128
#endif
/* km_row_scores' blocks (dots64), longer than the kernel's: a block of one row ends
   in float64 additions of all its lanes (at 128, Yinyang on 10,000 x 20,000 was 4 %
   slower) */
#define KM_ROW_DBLOCK 256
#define KM_PF_GROUP_BYTES (512 * 1024)   /* a larger row group is prefetched by d-blocks */
#ifndef KM_PF_AHEAD_BYTES
#define KM_PF_AHEAD_BYTES 4096   /* contiguous rows are asked for at least this far ahead */
#endif
/* Short rows (short_group) are also asked for this much further on into L2 only
 * (prefetcht2), on Intel CPUs (pf_l2_wanted): an L1 prefetch holds a line-fill
 * buffer until its line arrives from memory, and with a few such buffers a core read
 * 4,000,000 x 16 at ~9 GB/s; from L2 they come back soon (Sapphire Rapids-class host,
 * one thread 33 -> 27 ms a pass, two 14.2 -> 13.0 ms an iteration). On the Zen 5
 * class host the same prefetches stalled the core: without them one thread took
 * 10.2-11.4 in place of 12.7-13.5 ms a pass, and two threads' iterations 20-30 9.8 in
 * place of 11.7 (results/BENCH.md). No gain on 32 or 784 features, whose passes
 * compute longer than they read. */
#ifndef KM_PF_L2_AHEAD_BYTES
#define KM_PF_L2_AHEAD_BYTES 16384
#endif
static int pf_l2_wanted(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_is("intel");
#else
    return 0;
#endif
}

/* Lines of the next row asked for at each block of a row's scores (km_row_aux,
 * KM_ROW_DBLOCK values): 10,000 x 20,000 scores a row in 79 blocks, whose 8 lines each
 * ask for half of the next row's 1,250 (all of them, or 4 a block: no better); 784
 * features, in 4 */
#ifndef KM_PF_NEXT_ROW_LINES
#define KM_PF_NEXT_ROW_LINES 8
#endif
#define KM_KEEP_SCORES_D 64   /* from this d on, storing the scores costs < 2 % of them */
/* The pruned strategies' upper bound of a row's distance to its centroid comes from the
 * fast scores when their two sides are within 1/KM_EB_SLACK of each other, else
 * from km_dist_exact (a second pass over the row in float64). */
#define KM_EB_SLACK 64
/* rescore, used below KM_KEEP_SCORES_D, sums a row in one block as the kernel does there */
_Static_assert(KM_KEEP_SCORES_D <= KM_DBLOCK, "rescore assumes one d-block");

#if defined(__AVX512F__)
#define KM_VBYTES 64
#else
#define KM_VBYTES 32
#endif

/* Pin a vector in a register (x86): stops the compiler folding the same
 * load into several FMAs. Elsewhere a no-op. */
#if defined(__x86_64__) && defined(__GNUC__)
#define KM_PIN(v) __asm__("" : "+x"(v))
#else
#define KM_PIN(v) ((void)0)
#endif

/* Lane-wise min(a, b) = a < b ? a : b, max(a, b) = a > b ? a : b (second
 * operand on NaN), and blend(m, a, b) = m ? a : b, as single instructions
 * where the ISA has them; through comparison masks elsewhere. */
#if defined(__AVX512F__)
#include <immintrin.h>
#define KM_VMIN(a, b) ((__typeof__(a))_Generic((a)[0], float: (__typeof__(a))_mm512_min_ps((__m512)(a), (__m512)(b)), double: (__typeof__(a))_mm512_min_pd((__m512d)(a), (__m512d)(b))))
#define KM_VMAX(a, b) ((__typeof__(a))_Generic((a)[0], float: (__typeof__(a))_mm512_max_ps((__m512)(a), (__m512)(b)), double: (__typeof__(a))_mm512_max_pd((__m512d)(a), (__m512d)(b))))
#elif defined(__AVX__)
#include <immintrin.h>
#define KM_VMIN(a, b) _Generic((a)[0], float: (vf32)_mm256_min_ps((__m256)(a), (__m256)(b)), double: (vf64)_mm256_min_pd((__m256d)(a), (__m256d)(b)))
#define KM_VMAX(a, b) _Generic((a)[0], float: (vf32)_mm256_max_ps((__m256)(a), (__m256)(b)), double: (vf64)_mm256_max_pd((__m256d)(a), (__m256d)(b)))
#endif
/* Fused a b + c lane-wise, as one instruction whatever GCC's tuning would make of
 * c += a * b: on znver3 it leaves a lone accumulation chain unfused (an FMA's latency
 * is longer than an add's) and fuses it where there are several, so the same dot
 * product came out rounded differently by how many were summed with it. */
#if defined(__AVX512F__)
#define KM_VFMA(a, b, c) ((__typeof__(a))_Generic((a)[0], float: (__typeof__(a))_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)), double: (__typeof__(a))_mm512_fmadd_pd((__m512d)(a), (__m512d)(b), (__m512d)(c))))
#elif defined(__FMA__)
#define KM_VFMA(a, b, c) _Generic((a)[0], float: (vf32)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)), double: (vf64)_mm256_fmadd_pd((__m256d)(a), (__m256d)(b), (__m256d)(c)))
#endif
#ifndef KM_VMIN
#define KM_VSEL(m, a, b) ((__typeof__(a))(((m) & (__typeof__(m))(a)) | (~(m) & (__typeof__(m))(b))))
#define KM_VMIN(a, b) KM_VSEL((a) < (b), a, b)
#define KM_VMAX(a, b) KM_VSEL((a) > (b), a, b)
#endif
/* Integer blend by a full-lane mask: (m & a) | (~m & b); GCC emits vpblendvb. */
#define KM_VBLEND(m, a, b) (((m) & (a)) | (~(m) & (b)))

typedef float vf32 __attribute__((vector_size(KM_VBYTES)));
typedef double vf64 __attribute__((vector_size(KM_VBYTES)));
typedef int32_t vi32 __attribute__((vector_size(KM_VBYTES)));
typedef int64_t vi64 __attribute__((vector_size(KM_VBYTES)));

struct km_workspace {
    void *xt;          /* one d-block of a row group, transposed: KM_DBLOCK x (2 vectors) */
    double *part;      /* kp x (2 vectors) in float64: dot products between d-blocks */
    void *scores;      /* kp x (2 vectors of rows): a row group's scores, kept when
                          d >= KM_KEEP_SCORES_D so a near-tie rechecks only the
                          centroids it could be; else NULL */
    void *rescore;     /* kp: below that d, one near-tie row's scores, computed
                          again for it alone (k d products: cheap there) */
    int d;
    km_acc *shared;    /* or NULL: the totals every thread adds its moves' sums to
                          (km_threads_new), under locks[c]; then run is NULL */
    omp_lock_t *locks; /* k, owned by the km_threads */
    int64_t *vals;     /* d: with shared, a moving row's values as fixed-point integers */
    uint64_t *run;     /* k x d: fixed-point bit sums not yet in a km_acc (fixed.h) */
    int32_t *runcount; /* k: rows added to or taken from run[c], at most KM_FX_RUN
                          (this and the next two: only with run) */
    int32_t *net;      /* k: rows added minus rows taken (the bits' offset) */
    int *touched;      /* clusters with runcount > 0 */
    int ntouched;
    int fresh;         /* the rows were just read into the thread's buffer (in cache):
                          not prefetched by d-blocks (km_threads_rows_fresh) */
};

static km_acc *acc_new(int k, int d, int sums);

static void *alloc64(size_t bytes)
{
    bytes = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, bytes ? bytes : 64);
}

static size_t prec_size(km_precision prec) { return prec == KM_F32 ? 4 : 8; }

/* The exact distance ||x - c||^2 in float64, in one fixed order (two 4-lane
 * accumulators, lanes summed pairwise, then the d % 8 tail), so its value
 * depends only on x, c and d: never on where the point sits. With run != NULL
 * it also adds x, as fixed-point bits (fixed.h), to run, and with from != NULL
 * takes them from from: the update of the chosen cluster and of the one left. */
#if defined(__AVX512F__)
#define KM_DW 8   /* doubles in one of dist_row's vectors: a register */
#else
#define KM_DW 4
#endif
typedef float vdf __attribute__((vector_size(KM_DW * 4)));
typedef double vdd __attribute__((vector_size(KM_DW * 8)));
typedef uint64_t vdu __attribute__((vector_size(KM_DW * 8)));

static inline vdd load_d(const void *x, int j, km_precision prec)
{
    if (prec == KM_F32) {
        vdf f;
        memcpy(&f, (const float *)x + j, sizeof f);
        return __builtin_convertvector(f, vdd);
    }
    vdd v;
    memcpy(&v, (const double *)x + j, sizeof v);
    return v;
}

/* x's fixed-point bits into run, and out of from (or NULL): a move's two runs in one
 * pass over the row (a second pass read the row and the scales again: 10,000 x
 * 20,000, 28 of a move's 64 bytes an element) */
static inline void run_move(uint64_t *run, uint64_t *from, const double *scale, int j, vdd x)
{
    vdd sc, y;
    vdu r;
    memcpy(&sc, scale + j, sizeof sc);
    y = x * sc + KM_FX_MAGIC;          /* the product is exact (scale = 2^m) */
    memcpy(&r, run + j, sizeof r);
    r += (vdu)y;
    memcpy(run + j, &r, sizeof r);
    if (from) {
        memcpy(&r, from + j, sizeof r);
        r -= (vdu)y;
        memcpy(from + j, &r, sizeof r);
    }
}

/* fp-contract=off: the compiler versions the loop for run == NULL and != NULL
 * and could fuse a multiply-add in one version and not the other, so the same
 * distance would differ by an ulp between km_dist_exact and take_row; the
 * pruned strategies need them equal (seen: test_bounds).
 * Element e of each 8 goes to lane e % 4 of accumulator e / 4: with AVX-512 the
 * two accumulators are the halves of one register (half the instructions; an exact
 * distance at d = 20,000 from cache, build/rowbench: 2.86-2.92 against 3.28-3.44
 * us), with AVX2 two registers; the same sums either way. */
__attribute__((optimize("fp-contract=off")))
static inline double dist_row(const void *restrict x, const double *restrict c, int d,
                              km_precision prec, const double *restrict scale,
                              uint64_t *restrict run, uint64_t *restrict from)
{
    vdd a[8 / KM_DW];
    for (int h = 0; h < 8 / KM_DW; h++)
        a[h] = (vdd){0};
    int j = 0;
    for (; j + 8 <= d; j += 8)
        for (int h = 0; h < 8 / KM_DW; h++) {
            const vdd xv = load_d(x, j + h * KM_DW, prec);
            vdd cv;
            memcpy(&cv, c + j + h * KM_DW, sizeof cv);
            const vdd t = xv - cv;
            a[h] += t * t;
            if (run)
                run_move(run, from, scale, j + h * KM_DW, xv);
        }
#define A(e) a[(e) / KM_DW][(e) % KM_DW]   /* lane e of the 8 */
    double s = ((A(0) + A(4)) + (A(1) + A(5))) + ((A(2) + A(6)) + (A(3) + A(7)));
#undef A
    for (; j < d; j++) {
        double xj = prec == KM_F32 ? (double)((const float *)x)[j] : ((const double *)x)[j];
        double t = xj - c[j];
        s += t * t;
        if (run) {
            const uint64_t y = km_fx_bits(xj, scale[j]);
            run[j] += y;
            if (from)
                from[j] -= y;
        }
    }
    return s;
}

/* dist_row for four centroids at once, each summed exactly as dist_row sums it
 * (the same lanes, the same order, no fused multiply-add), so each result equals
 * dist_row's to the bit: x is loaded and converted once for the four, and the four
 * sums do not wait on each other (dist_row's one sum waits on its own add). */
__attribute__((optimize("fp-contract=off")))
static inline void dist_row4(const void *restrict x, const double *const c[4], int d,
                             km_precision prec, double out[4])
{
    vdd a[4][8 / KM_DW];
    for (int q = 0; q < 4; q++)
        for (int h = 0; h < 8 / KM_DW; h++)
            a[q][h] = (vdd){0};
    int j = 0;
    for (; j + 8 <= d; j += 8)
        for (int h = 0; h < 8 / KM_DW; h++) {
            const vdd xv = load_d(x, j + h * KM_DW, prec);
            for (int q = 0; q < 4; q++) {
                vdd cv;
                memcpy(&cv, c[q] + j + h * KM_DW, sizeof cv);
                const vdd t = xv - cv;
                a[q][h] += t * t;
            }
        }
    for (int q = 0; q < 4; q++) {
#define A(e) a[q][(e) / KM_DW][(e) % KM_DW]
        out[q] = ((A(0) + A(4)) + (A(1) + A(5))) + ((A(2) + A(6)) + (A(3) + A(7)));
#undef A
    }
    for (; j < d; j++) {
        const double xj = prec == KM_F32 ? (double)((const float *)x)[j]
                                         : ((const double *)x)[j];
        for (int q = 0; q < 4; q++) {
            const double t = xj - c[q][j];
            out[q] += t * t;
        }
    }
}

/* Move cluster c's run into the exact totals acc: the thread's own when the run is
 * full, the rank's at the end of a pass (km_threads_reduce). */
static void flush_cluster(km_workspace *ws, km_acc *acc, int c)
{
    const int d = ws->d;
    const uint64_t off = (uint64_t)(int64_t)ws->net[c] * KM_FX_MAGIC_BITS;   /* mod 2^64 */
    uint64_t *run = ws->run + (size_t)c * d;
    km_i128 *sum = acc->sums + (size_t)c * d;
    for (int j = 0; j < d; j++) {
        sum[j] += (int64_t)(run[j] - off);   /* mod 2^64; |true sum| < 2^62 */
        run[j] = 0;
    }
    ws->runcount[c] = 0;
    ws->net[c] = 0;
    acc->dirty[c] = 1;
}

/* Everything the workspace still holds goes into acc. */
static void flush_runs(km_workspace *ws, km_acc *acc)
{
    for (int t = 0; t < ws->ntouched; t++)
        if (ws->runcount[ws->touched[t]])
            flush_cluster(ws, acc, ws->touched[t]);
    ws->ntouched = 0;
}

/* Room in cluster c's run for one more row added or taken. */
static inline uint64_t *open_run(km_workspace *ws, km_acc *acc, int c)
{
    if (ws->runcount[c] == 0)
        ws->touched[ws->ntouched++] = c;
    else if (ws->runcount[c] == KM_FX_RUN)
        flush_cluster(ws, acc, c);   /* stays in touched */
    ws->runcount[c]++;
    return ws->run + (size_t)c * ws->d;
}

/* Cluster c's shared sums += sign * v (d fixed-point integers), under its lock. */
static void shared_add(km_workspace *ws, int c, const int64_t *restrict v, int sign)
{
    const size_t d = (size_t)ws->d;
    km_i128 *restrict sum = ws->shared->sums + c * d;
    omp_set_lock(ws->locks + c);
    if (sign > 0)
        for (size_t j = 0; j < d; j++)
            sum[j] += v[j];
    else
        for (size_t j = 0; j < d; j++)
            sum[j] -= v[j];
    ws->shared->dirty[c] = 1;
    omp_unset_lock(ws->locks + c);
}

/* A move with shared totals: the row's fixed-point values (the integers a run
 * would add, fixed.h) into c's sums and out of old's. */
static void shared_move(const km_centers *kc, const void *xr, int c, int old, km_workspace *ws)
{
    const int d = kc->d;
    int64_t *restrict v = ws->vals;
    for (int j = 0; j < d; j++) {
        const double xj = kc->prec == KM_F32 ? (double)((const float *)xr)[j]
                                             : ((const double *)xr)[j];
        v[j] = (int64_t)(km_fx_bits(xj, kc->xscale[j]) - KM_FX_MAGIC_BITS);
    }
    shared_add(ws, c, v, 1);
    if (old >= 0)
        shared_add(ws, old, v, -1);
}

/* Row x's label becomes c. A row that stays costs nothing; a row that moves
 * is added to c's run and taken from its old cluster's (or, with shared totals,
 * added to and taken from those): its fixed-point values, its count and its
 * ||x - center||^2 (one number, so the totals give the inertia of any centroids,
 * km_acc_unpack). The values taken are those once added: they depend on the row
 * alone. */
static inline void take_row(const km_centers *kc, const void *xr, int c, int32_t *label,
                            km_acc *acc, km_workspace *ws)
{
    const int old = *label;
    if (old == c)
        return;
    const int d = kc->d;
    double q;
    if (ws->shared) {
        q = dist_row(xr, kc->center, d, kc->prec, NULL, NULL, NULL);
        shared_move(kc, xr, c, old, ws);
    } else {
        uint64_t *to = open_run(ws, acc, c), *from = old >= 0 ? open_run(ws, acc, old) : NULL;
        q = dist_row(xr, kc->center, d, kc->prec, kc->xscale, to, from);
        ws->net[c]++;
        if (old >= 0)
            ws->net[old]--;
    }
    const km_i128 qi = km_fx_from_int_double(nearbyint(q * kc->qscale));   /* < 2^KM_FX_QTOP */
    acc->sq[c] += qi;
    acc->counts[c] += 1.0;
    acc->moved[c] += 1.0;
    if (old >= 0) {
        acc->sq[old] -= qi;
        acc->counts[old] -= 1.0;
        acc->moved[old] += 1.0;
    }
    acc->changed += 1.0;
    *label = c;
}

void km_take_row(const km_centers *kc, const void *xr, int c, int32_t *label, km_acc *acc,
                 km_workspace *ws)
{
    take_row(kc, xr, c, label, acc, ws);
}

double km_dist_exact(const void *x, int64_t i, int d, km_precision prec, const double *c)
{
    const char *row = (const char *)x + (size_t)i * (size_t)d * prec_size(prec);
    return dist_row(row, c, d, prec, NULL, NULL, NULL);
}

void km_dist_exact_many(const void *x, int d, km_precision prec, const double *c64,
                        const int *idx, int n, double *out)
{
    int q = 0;
    /* Shorter rows one at a time: four at once cost more below d = 128, where the
     * tail and the sums' reduction outweigh the loop (build/rowbench, one core, four
     * distances from cache: d = 32, 0.04 against 0.03 us; 128, 0.07 against 0.08;
     * 784, 0.26 against 0.41). */
    /* 2 or 3 left: padded with the last */
    for (; d >= KM_EXACT_MANY_MIN_D && q + 2 <= n; q += 4) {
        const int r = n - q < 4 ? n - q : 4;
        const double *c[4];
        double o[4];
        for (int p = 0; p < 4; p++)
            c[p] = c64 + (size_t)idx[q + (p < r ? p : r - 1)] * (size_t)d;
        dist_row4(x, c, d, prec, o);
        for (int p = 0; p < r; p++)
            out[q + p] = o[p];
    }
    for (; q < n; q++)
        out[q] = dist_row(x, c64 + (size_t)idx[q] * (size_t)d, d, prec, NULL, NULL, NULL);
}

/* Lines [m0, m1) of a block of rows to prefetch, lpr lines a row: line m is
 * (m % lpr) 64 bytes past off in row m / lpr, which is rows[m / lpr] (rows anywhere)
 * or base + (m / lpr) stride. */
typedef struct {
    const char *base;
    const void *const *rows;
    size_t stride, off;
    int lpr, m0, m1;
} km_pf_lines;

/* Issues lines [m0, m1) of pf in order, one at a time, without a division a line
 * (an idiv a line was a tenth of assign_block's time on 70,000 x 784). */
typedef struct {
    const km_pf_lines *pf;
    int m, r, l;   /* the next line: m = r lpr + l */
} km_pf_cursor;

static inline km_pf_cursor pf_start(const km_pf_lines *pf)
{
    if (pf->m0 < pf->lpr)   /* always for contiguous rows (one "row" of all the lines) */
        return (km_pf_cursor){pf, pf->m0, 0, pf->m0};
    return (km_pf_cursor){pf, pf->m0, pf->m0 / pf->lpr, pf->m0 % pf->lpr};
}

static inline void pf_issue(km_pf_cursor *cu)
{
    const km_pf_lines *pf = cu->pf;
    const char *row = pf->rows ? (const char *)pf->rows[cu->r] : pf->base + (size_t)cu->r * pf->stride;
    __builtin_prefetch(row + pf->off + (size_t)cu->l * 64, 0, 3);
    cu->m++;
    if (++cu->l == pf->lpr) {
        cu->l = 0;
        cu->r++;
    }
}

#define REAL float
#define VEC vf32
#define VI vi32
#define VL ((int)(KM_VBYTES / sizeof(float)))
#define SFX f32
#define ESIZE 4
#define PREC KM_F32
#define UROUND 0x1p-24
#include "kernels_tmpl.h"
#undef REAL
#undef VEC
#undef VI
#undef VL
#undef SFX
#undef ESIZE
#undef PREC
#undef UROUND

#define REAL double
#define VEC vf64
#define VI vi64
#define VL ((int)(KM_VBYTES / sizeof(double)))
#define SFX f64
#define ESIZE 8
#define PREC KM_F64
#define UROUND 0x1p-53
#include "kernels_tmpl.h"
#undef REAL
#undef VEC
#undef VI
#undef VL
#undef SFX
#undef ESIZE
#undef PREC
#undef UROUND

int km_panel_width(km_precision prec)
{
    (void)prec;
    return CG;
}

int km_centers_init(km_centers *kc, int k, int d, km_precision prec, km_error *err)
{
    memset(kc, 0, sizeof *kc);
    const int w = km_panel_width(prec);
    kc->k = k;
    kc->d = d;
    kc->prec = prec;
    kc->kp = (k + w - 1) / w * w;
    kc->panels = alloc64((size_t)kc->kp * d * prec_size(prec));
    kc->cnorm = malloc(sizeof(double) * (size_t)kc->kp);
    kc->same = calloc((size_t)k, 1);
    kc->cnorm_r = alloc64((size_t)kc->kp * prec_size(prec));
    kc->maxabs = calloc((size_t)d, sizeof(double));
    kc->xscale = malloc(sizeof(double) * (size_t)d);
    kc->center = calloc((size_t)d, sizeof(double));
    kc->center_fx = calloc((size_t)d, sizeof(int64_t));
    kc->qscale = 1.0;
    if (!kc->panels || !kc->cnorm || !kc->same || !kc->cnorm_r || !kc->maxabs || !kc->xscale
        || !kc->center || !kc->center_fx) {
        km_centers_free(kc);
        return km_fail(err, KM_ERR_MEMORY, "out of memory for %d x %d centroids", k, d);
    }
    for (int j = 0; j < d; j++)
        kc->xscale[j] = 1.0;   /* until km_centers_set_range */
    return 0;
}

void km_centers_set_range(km_centers *kc, const double *maxabs, const double *mean)
{
    double bound = 0;   /* ||x - center||^2 <= sum_j (maxabs_j + |center_j|)^2 */
    for (int j = 0; j < kc->d; j++) {
        kc->maxabs[j] = maxabs[j];
        kc->xscale[j] = km_fx_scale(maxabs[j], KM_FX_TOP);
        const double m = mean && isfinite(mean[j]) && fabs(mean[j]) <= maxabs[j] ? mean[j] : 0;
        kc->center_fx[j] = (int64_t)nearbyint(m * kc->xscale[j]);   /* |.| <= 2^50 */
        kc->center[j] = (double)kc->center_fx[j] / kc->xscale[j];
        bound += (maxabs[j] + fabs(kc->center[j])) * (maxabs[j] + fabs(kc->center[j]));
    }
    kc->qscale = km_fx_scale(bound * (1 + 0x1p-40), KM_FX_QTOP);
}

void km_centers_load(km_centers *kc, const double *c64)
{
    km_centers_update(kc, c64, NULL);
}

void km_centers_update(km_centers *kc, const double *c64, const unsigned char *same)
{
    kc->c64 = c64;
    kc->cmax = 0;
    for (int c = 0; c < kc->kp; c++) {
        if (c >= kc->k) {
            kc->cnorm[c] = INFINITY;
            continue;
        }
        kc->same[c] = same ? same[c] : 0;
        if (!kc->same[c]) {
            double s = 0;
            for (int j = 0; j < kc->d; j++)
                s += c64[(size_t)c * kc->d + j] * c64[(size_t)c * kc->d + j];
            kc->cnorm[c] = s;
        }
        if (sqrt(kc->cnorm[c]) > kc->cmax)
            kc->cmax = sqrt(kc->cnorm[c]);
    }
    if (kc->prec == KM_F32)
        load_panels_f32(kc, c64);
    else
        load_panels_f64(kc, c64);
}

int km_centers_keep_rows(km_centers *kc)
{
    if (!kc->rows_r)
        kc->rows_r = alloc64((size_t)kc->k * kc->d * prec_size(kc->prec));
    return kc->rows_r ? 0 : -1;
}

double km_row_scores(const km_centers *kc, const void *xr, const int *cand, int n, double *out)
{
    return km_row_scores_range(kc, xr, cand, n, out, NULL);
}

double km_row_scores_range(const km_centers *kc, const void *xr, const int *cand, int n,
                           double *out, double *top)
{
    return km_row_scores_with(kc, xr, cand, n, out, top, NULL);
}

double km_row_scores_with(const km_centers *kc, const void *xr, const int *cand, int n,
                          double *out, double *top, km_row_aux *aux)
{
    return kc->prec == KM_F32 ? row_scores_f32(kc, xr, cand, n, out, top, aux)
                              : row_scores_f64(kc, xr, cand, n, out, top, aux);
}

void km_centers_free(km_centers *kc)
{
    free(kc->rows_r);
    kc->rows_r = NULL;
    free(kc->panels);
    free(kc->cnorm);
    free(kc->same);
    kc->same = NULL;
    free(kc->cnorm_r);
    free(kc->maxabs);
    free(kc->xscale);
    free(kc->center);
    free(kc->center_fx);
    kc->maxabs = kc->xscale = kc->center = NULL;
    kc->center_fx = NULL;
    kc->panels = NULL;
    kc->cnorm = NULL;
    kc->cnorm_r = NULL;
}

static int rows_per_group(km_precision prec)
{
    return 2 * KM_VBYTES / (int)prec_size(prec);
}

int64_t km_default_block_rows(int d, int k, km_precision prec)
{
    const int w = km_panel_width(prec);
    const int64_t kp = (k + w - 1) / w * w;
    int64_t rows = (256 * 1024) / ((int64_t)(d + kp) * (int64_t)prec_size(prec));
    const int rv = rows_per_group(prec);
    rows = rows / rv * rv;
    return rows < rv ? rv : rows > 1024 ? 1024 : rows;
}

/* With shared (and its k locks), no runs: the moves go straight to shared. */
static km_workspace *workspace_new(const km_centers *kc, km_acc *shared, omp_lock_t *locks)
{
    km_workspace *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    const size_t rv = (size_t)rows_per_group(kc->prec), es = prec_size(kc->prec);
    const size_t dblock = kc->d < KM_DBLOCK ? (size_t)kc->d : KM_DBLOCK;
    ws->xt = alloc64(rv * dblock * es);
    ws->part = alloc64(rv * (size_t)kc->kp * sizeof(double));
    if (kc->d >= KM_KEEP_SCORES_D ? !(ws->scores = alloc64(rv * (size_t)kc->kp * es))
                                  : !(ws->rescore = alloc64((size_t)kc->kp * es))) {
        km_workspace_free(ws);
        return NULL;
    }
    ws->shared = shared;
    ws->locks = locks;
    if (shared) {   /* no runs (ntouched stays 0, so flush_runs reads nothing) */
        ws->vals = malloc(sizeof(int64_t) * (size_t)kc->d);
    } else {
        ws->run = calloc((size_t)kc->k * kc->d, sizeof(uint64_t));
        ws->runcount = calloc((size_t)kc->k, sizeof(int32_t));
        ws->net = calloc((size_t)kc->k, sizeof(int32_t));
        ws->touched = malloc(sizeof(int) * (size_t)kc->k);
    }
    ws->d = kc->d;
    if (!ws->xt || !ws->part
        || (shared ? !ws->vals : !ws->run || !ws->runcount || !ws->net || !ws->touched)) {
        km_workspace_free(ws);
        return NULL;
    }
    return ws;
}

km_workspace *km_workspace_new(const km_centers *kc, int64_t block_rows)
{
    (void)block_rows;
    return workspace_new(kc, NULL, NULL);
}

void km_workspace_free(km_workspace *ws)
{
    if (!ws)
        return;
    free(ws->xt);
    free(ws->part);
    free(ws->scores);
    free(ws->rescore);
    free(ws->run);
    free(ws->vals);
    free(ws->runcount);
    free(ws->net);
    free(ws->touched);
    free(ws);
}

void km_assign_block(const km_centers *kc, const void *x, int64_t rows,
                     int32_t *labels, km_acc *acc, km_workspace *ws)
{
    if (kc->prec == KM_F32)
        assign_block_f32(kc, x, NULL, rows, labels, acc, ws, NULL, NULL, NULL);
    else
        assign_block_f64(kc, x, NULL, rows, labels, acc, ws, NULL, NULL, NULL);
    flush_runs(ws, acc);
}

struct km_threads {
    int n;
    int64_t block_rows;
    km_workspace **ws;
    km_acc **acc;          /* with shared totals: counts, sq and counters only */
    omp_lock_t *locks;     /* k, with shared totals */
    int nlocks;
    void **xbuf;           /* km_threads_rowbufs: one block of rows per thread */
    size_t xbuf_bytes;
};

void km_threads_free(km_threads *th)
{
    if (!th)
        return;
    for (int t = 0; t < th->n; t++) {
        if (th->ws)
            km_workspace_free(th->ws[t]);
        if (th->acc)
            km_acc_free(th->acc[t]);
    }
    for (int t = 0; th->xbuf && t < th->n; t++)
        free(th->xbuf[t]);
    for (int c = 0; c < th->nlocks; c++)
        omp_destroy_lock(th->locks + c);
    free(th->locks);
    free(th->xbuf);
    free(th->ws);
    free(th->acc);
    free(th);
}

km_threads *km_threads_new(const km_centers *kc, int64_t block_rows, km_acc *shared)
{
    km_threads *th = calloc(1, sizeof *th);
    if (!th)
        return NULL;
    th->n = omp_get_max_threads();
    th->block_rows = block_rows;
    th->ws = calloc((size_t)th->n, sizeof *th->ws);
    th->acc = calloc((size_t)th->n, sizeof *th->acc);
    if (shared && (th->locks = malloc(sizeof(omp_lock_t) * (size_t)kc->k)))
        for (; th->nlocks < kc->k; th->nlocks++)
            omp_init_lock(th->locks + th->nlocks);
    if (!th->ws || !th->acc || (shared && !th->locks)) {
        km_threads_free(th);
        return NULL;
    }
    int ok = 1;
#pragma omp parallel reduction(&& : ok)
    {   /* each thread allocates and first touches its own scratch (NUMA) */
        int t = omp_get_thread_num();
        th->ws[t] = workspace_new(kc, shared, th->locks);
        th->acc[t] = acc_new(kc->k, kc->d, !shared);
        ok = th->ws[t] && th->acc[t];
    }
    if (!ok) {
        km_threads_free(th);
        return NULL;
    }
    return th;
}

void *km_threads_rowbuf(const km_threads *th, int t)
{
    return th->xbuf[t];
}

void km_threads_rows_fresh(km_threads *th, int t, int fresh)
{
    th->ws[t]->fresh = fresh;
}

int km_threads_count(const km_threads *th)
{
    return th->n;
}

void km_assign_thread_block(const km_centers *kc, const void *x, int64_t rows, int32_t *labels,
                            km_threads *th, int t)
{
    if (kc->prec == KM_F32)   /* runs stay open until km_threads_reduce */
        assign_block_f32(kc, x, NULL, rows, labels, th->acc[t], th->ws[t], NULL, NULL, NULL);
    else
        assign_block_f64(kc, x, NULL, rows, labels, th->acc[t], th->ws[t], NULL, NULL, NULL);
}

int km_threads_rowbufs(km_threads *th, size_t bytes)
{
    if (th->xbuf && th->xbuf_bytes >= bytes)
        return 0;
    if (!th->xbuf && !(th->xbuf = calloc((size_t)th->n, sizeof *th->xbuf)))
        return -1;
    int ok = 1;
#pragma omp parallel num_threads(th->n) reduction(&& : ok)
    {
        const int t = omp_get_thread_num();
        free(th->xbuf[t]);
        th->xbuf[t] = alloc64(bytes);
        ok = th->xbuf[t] != NULL;
        if (ok)
            memset(th->xbuf[t], 0, bytes);
    }
    th->xbuf_bytes = ok ? bytes : 0;
    return ok ? 0 : -1;
}

void km_assign_block_bounds(const km_centers *kc, const void *x, int64_t rows, int32_t *labels,
                            km_acc *acc, km_workspace *ws, double *eb, double *lb2,
                            const km_group_bounds *gb)
{
    if (kc->prec == KM_F32)
        assign_block_f32(kc, x, NULL, rows, labels, acc, ws, eb, lb2, gb);
    else
        assign_block_f64(kc, x, NULL, rows, labels, acc, ws, eb, lb2, gb);
}

void km_assign_rows_bounds(const km_centers *kc, const void *const *rows, int64_t n,
                           int32_t *labels, km_acc *acc, km_workspace *ws, double *eb,
                           double *lb2)
{
    if (kc->prec == KM_F32)
        assign_block_f32(kc, NULL, (const float *const *)rows, n, labels, acc, ws, eb, lb2,
                         NULL);
    else
        assign_block_f64(kc, NULL, (const double *const *)rows, n, labels, acc, ws, eb, lb2,
                         NULL);
}

km_workspace *km_threads_workspace(km_threads *th, int t)
{
    return th->ws[t];
}

km_acc *km_threads_acc(km_threads *th, int t)
{
    return th->acc[t];
}

int64_t km_threads_block_rows(const km_threads *th)
{
    return th->block_rows;
}

/* Cluster c's sums of src into dst. */
static void add_sums_row(km_acc *dst, const km_acc *src, int c)
{
    const size_t d = (size_t)dst->d;
    km_i128 *restrict to = dst->sums + c * d;
    const km_i128 *restrict from = src->sums + c * d;
    for (size_t j = 0; j < d; j++)
        to[j] += from[j];
    dst->dirty[c] = 1;
}

/* What src holds besides the sums: k counts and sq, the pass's counters. */
static void add_counts(km_acc *dst, const km_acc *src)
{
    for (int c = 0; c < dst->k; c++) {
        dst->counts[c] += src->counts[c];
        dst->moved[c] += src->moved[c];
        dst->sq[c] += src->sq[c];
    }
    dst->changed += src->changed;
    dst->distances += src->distances;
}

/* The threads' totals and runs into acc, and theirs zeroed: km_acc_add and
 * km_acc_clear for each thread, with the clusters shared out among the threads:
 * integer adds, so the same bits in any order. Serial, it was 6 % of a Yinyang fit
 * on 10,000 x 20,000. */
void km_threads_reduce(km_threads *th, km_acc *acc)
{
    const int n = th->n, k = acc->k;
    /* A thread's runs go straight into acc, cluster by cluster: through the thread's
       own totals they were read and written twice more, and zeroed (10,000 x 20,000,
       k = 16: 5 MB a thread a pass). Its own totals hold only what a full run flushed
       during the pass. */
#pragma omp parallel for schedule(dynamic, 4) num_threads(n) if ((size_t)k * acc->d >= 4096)
    for (int c = 0; c < k; c++)
        for (int t = 0; t < n; t++) {
            if (th->acc[t]->dirty[c]) {
                add_sums_row(acc, th->acc[t], c);
                memset(th->acc[t]->sums + (size_t)c * acc->d, 0,
                       sizeof(km_i128) * (size_t)acc->d);
                th->acc[t]->dirty[c] = 0;
            }
            if (th->ws[t]->run && th->ws[t]->runcount[c])
                flush_cluster(th->ws[t], acc, c);
        }
    for (int t = 0; t < n; t++)   /* every run is empty now */
        if (th->ws[t]->run)
            th->ws[t]->ntouched = 0;
    for (int t = 0; t < n; t++) {   /* in thread order: the counters are doubles */
        add_counts(acc, th->acc[t]);
        km_acc_clear(th->acc[t]);   /* its sums are zero already: nothing is dirty */
    }
}

/* Without sums: a thread's km_acc when the threads share their totals. */
static km_acc *acc_new(int k, int d, int sums)
{
    km_acc *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->k = k;
    a->d = d;
    a->sums = sums ? calloc((size_t)k * d, sizeof(km_i128)) : NULL;
    a->sq = calloc((size_t)k, sizeof(km_i128));
    a->counts = calloc((size_t)k, sizeof(double));
    a->moved = calloc((size_t)k, sizeof(double));
    a->dirty = calloc((size_t)k, 1);
    if ((sums && !a->sums) || !a->sq || !a->counts || !a->moved || !a->dirty) {
        km_acc_free(a);
        return NULL;
    }
    return a;
}

km_acc *km_acc_new(int k, int d)
{
    return acc_new(k, d, 1);
}

void km_acc_free(km_acc *a)
{
    if (!a)
        return;
    free(a->sums);
    free(a->sq);
    free(a->counts);
    free(a->moved);
    free(a->dirty);
    free(a);
}

void km_acc_clear(km_acc *a)
{
    for (int c = 0; c < a->k; c++)
        if (a->dirty[c]) {
            memset(a->sums + (size_t)c * a->d, 0, sizeof(km_i128) * (size_t)a->d);
            a->dirty[c] = 0;
        }
    memset(a->sq, 0, sizeof(km_i128) * (size_t)a->k);
    memset(a->counts, 0, sizeof(double) * (size_t)a->k);
    km_acc_clear_pass(a);
}

void km_acc_clear_pass(km_acc *a)
{
    a->changed = 0;
    a->distances = 0;
    memset(a->moved, 0, sizeof(double) * (size_t)a->k);
}

void km_acc_add(km_acc *dst, const km_acc *src)
{
    for (int c = 0; c < dst->k; c++)
        if (src->dirty[c])
            add_sums_row(dst, src, c);
    add_counts(dst, src);
}

/* Buffer: (k*d sums + k sq) x limbs, then k counts, changed, distances, k moved. */
size_t km_acc_pack_len(int k, int d, int limbs)
{
    return ((size_t)k * d + k) * limbs + 2 * (size_t)k + 2;
}

static void acc_pack(const km_acc *a, int limbs, int bits, double *buf, int all)
{
    const size_t d = (size_t)a->d, kd = (size_t)a->k * d, tail = (kd + a->k) * limbs;
    /* element by element, so split among the threads (serial: 5 % of a Yinyang fit
       on 10,000 x 20,000) */
#pragma omp parallel for schedule(static) if (kd >= 4096)
    for (int c = 0; c < a->k; c++)
        if (all || a->moved[c] != 0) {
            km_fx_pack(a->sums + c * d, d, limbs, bits, buf + c * d * limbs);
            km_fx_pack(a->sq + c, 1, limbs, bits, buf + (kd + c) * limbs);
        }
    memcpy(buf + tail, a->counts, sizeof(double) * (size_t)a->k);
    buf[tail + a->k] = a->changed;
    buf[tail + a->k + 1] = a->distances;
    memcpy(buf + tail + a->k + 2, a->moved, sizeof(double) * (size_t)a->k);
}

void km_acc_pack(const km_acc *a, int limbs, int bits, double *buf)
{
    acc_pack(a, limbs, bits, buf, 1);
}

void km_acc_pack_moves(const km_acc *a, int limbs, int bits, double *buf)
{
    acc_pack(a, limbs, bits, buf, 0);
}

struct km_unpack_cache {
    int valid;
    double *c64;        /* k x d: the centroids of the last call */
    double *res;        /* k x d: its results */
    long double *in;    /* k: each cluster's inertia term */
};

km_unpack_cache *km_unpack_cache_new(int k, int d)
{
    km_unpack_cache *uc = calloc(1, sizeof *uc);
    if (!uc)
        return NULL;
    uc->c64 = malloc(sizeof(double) * (size_t)k * d);
    uc->res = malloc(sizeof(double) * (size_t)k * d);
    uc->in = malloc(sizeof(long double) * (size_t)k);
    if (!uc->c64 || !uc->res || !uc->in) {
        km_unpack_cache_free(uc);
        return NULL;
    }
    return uc;
}

void km_unpack_cache_free(km_unpack_cache *uc)
{
    if (!uc)
        return;
    free(uc->c64);
    free(uc->res);
    free(uc->in);
    free(uc);
}

/* Where km_acc_unpack_cached reads the totals: an allreduced buffer (limbs, bits),
 * or with one rank the km_acc itself (the same integers: the sum over one rank of
 * its buffer is the buffer). */
typedef struct {
    const double *buf;
    int limbs, bits;
    const km_acc *acc;
} totals_src;

static inline km_i128 src_value(const totals_src *src, size_t i)
{
    if (src->acc)
        return src->acc->sums[i];
    km_i128 v;
    km_fx_unpack(src->buf + i * src->limbs, 1, src->limbs, src->bits, &v);
    return v;
}

/* Cluster c's sums in data units into row (d) and its inertia term. */
static long double unpack_cluster(const totals_src *src, const km_centers *kc, int c, double n,
                                  double *row)
{
    const int k = kc->k, d = kc->d;
    const size_t kd = (size_t)k * d;
    long double dot = 0, cc = 0;
    for (int j = 0; j < d; j++) {
        const km_i128 v = src_value(src, (size_t)c * d + j);
        row[j] = km_fx_value(v, kc->xscale[j]);
        /* xscale is a power of two: times its inverse is the division, bit for bit,
           without an x87 division an element (16 x 20,000: 0.95 of the time) */
        const double inv = 1.0 / kc->xscale[j];
        /* the cluster's sum about the center, exact until this one rounding */
        const long double s = km_fx_to_ld(v - (km_i128)(int64_t)n * kc->center_fx[j])
                              * (long double)inv;
        const long double cj = (long double)kc->c64[(size_t)c * d + j] - kc->center[j];
        dot += cj * s;
        cc += cj * cj;
    }
    km_i128 q;
    if (src->acc)
        q = src->acc->sq[c];
    else
        km_fx_unpack(src->buf + (kd + c) * src->limbs, 1, src->limbs, src->bits, &q);
    /* sum over its rows of ||x - c||^2 = ||x - center||^2 - 2 (c - center).(x - center)
     * + ||c - center||^2; rounding can take a tight cluster a hair below 0 */
    const long double in = km_fx_to_ld(q) / kc->qscale - 2 * dot + n * cc;
    return in > 0 ? in : 0;
}

static void unpack_from(const totals_src *src, const km_centers *kc, double *res,
                        km_unpack_cache *uc)
{
    const int k = kc->k, d = kc->d;
    const size_t kd = (size_t)k * d, tail = (kd + k) * (size_t)src->limbs;
    const size_t rowb = sizeof(double) * (size_t)d;
    const double *moved = src->acc ? src->acc->moved : src->buf + tail + k + 2;
    memcpy(km_acc_counts(res, k, d), src->acc ? src->acc->counts : src->buf + tail,
           sizeof(double) * (size_t)k);
    long double *in_c = uc ? uc->in : malloc(sizeof(long double) * (size_t)k);
    if (!in_c)
        abort();   /* only the tests call it without a cache */
    /* clusters are independent: split among the threads (each cluster's values are
       computed by one thread in one order, so the bits do not depend on how many) */
#pragma omp parallel for schedule(dynamic, 1) if ((size_t)k * d >= 4096)
    for (int c = 0; c < k; c++) {
        const double n = res[kd + c];
        const size_t r = (size_t)c * d;
        long double in;
        /* the same totals and the same centroid: the same values (kc->same spares the
           comparison of k x d doubles a pass) */
        if (uc && uc->valid && moved[c] == 0
            && (kc->same[c] || !memcmp(kc->c64 + r, uc->c64 + r, rowb))) {
            memcpy(res + r, uc->res + r, rowb);   /* the same totals, the same centroid */
            in = uc->in[c];
        } else {
            in = unpack_cluster(src, kc, c, n, res + r);
            if (uc) {
                memcpy(uc->c64 + r, kc->c64 + r, rowb);
                memcpy(uc->res + r, res + r, rowb);
            }
        }
        in_c[c] = in;
    }
    long double inertia = 0;   /* x87 extended: the terms about the center cancel */
    for (int c = 0; c < k; c++)
        inertia += in_c[c];
    if (uc)
        uc->valid = 1;
    else
        free(in_c);
    res[km_acc_inertia(k, d)] = (double)inertia;
    res[km_acc_changed(k, d)] = src->acc ? src->acc->changed : src->buf[tail + k];
    res[km_acc_distances(k, d)] = src->acc ? src->acc->distances : src->buf[tail + k + 1];
    memcpy(km_acc_moved(res, k, d), moved, sizeof(double) * (size_t)k);
}

void km_acc_unpack_cached(const double *buf, const km_centers *kc, int limbs, int bits,
                          double *res, km_unpack_cache *uc)
{
    const totals_src src = {.buf = buf, .limbs = limbs, .bits = bits};
    unpack_from(&src, kc, res, uc);
}

void km_acc_unpack_local(const km_acc *a, const km_centers *kc, double *res,
                         km_unpack_cache *uc)
{
    const totals_src src = {.acc = a, .limbs = 1};
    unpack_from(&src, kc, res, uc);
}

void km_acc_unpack(const double *buf, const km_centers *kc, int limbs, int bits, double *res)
{
    km_acc_unpack_cached(buf, kc, limbs, bits, res, NULL);
}

static double row_value(const void *x, int64_t i, int d, int j, km_precision prec)
{
    return prec == KM_F32 ? (double)((const float *)x)[i * d + j]
                          : ((const double *)x)[i * d + j];
}

void km_assign_naive(const km_centers *kc, const void *x, int64_t rows, int32_t *labels,
                     km_acc *acc)
{
    const int k = kc->k, d = kc->d;
    km_workspace *ws = km_workspace_new(kc, 1);
    if (!ws)
        abort();   /* test-only reference */
    for (int64_t i = 0; i < rows; i++) {
        double best = INFINITY;
        int bi = 0;
        for (int c = 0; c < k; c++) {
            double e = km_dist_exact(x, i, d, kc->prec, kc->c64 + (size_t)c * d);
            if (e < best) {
                best = e;
                bi = c;
            }
        }
        take_row(kc, (const char *)x + (size_t)i * d * prec_size(kc->prec), bi, labels + i,
                 acc, ws);
    }
    flush_runs(ws, acc);
    km_workspace_free(ws);
}

void km_pp_nearest(const void *x, int64_t rows, int d, km_precision prec, const double *chosen,
                   int s, double *D, int32_t *near)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        double best = km_dist_exact(x, i, d, prec, chosen);
        int32_t a = 0;
        for (int c = 1; c < s; c++) {
            const double e = km_dist_exact(x, i, d, prec, chosen + (size_t)c * d);
            if (e < best) {   /* strictly: the first chosen keeps a tie, as km_pp_lower */
                best = e;
                a = c;
            }
        }
        D[i] = best;
        near[i] = a;
    }
}

double km_pp_max(const double *D, int64_t rows)
{
    double mx = 0;
#pragma omp parallel for reduction(max : mx) schedule(static)
    for (int64_t i = 0; i < rows; i++)
        mx = D[i] > mx ? D[i] : mx;
    return mx;
}

unsigned __int128 km_pp_weight_sums(const double *D, int64_t rows, double qscale,
                                    unsigned __int128 *sums)
{
    const int64_t nc = (rows + KM_PP_CHUNK - 1) / KM_PP_CHUNK;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nc; c++) {
        const int64_t end = (c + 1) * KM_PP_CHUNK < rows ? (c + 1) * KM_PP_CHUNK : rows;
        unsigned __int128 s = 0;
        for (int64_t i = c * KM_PP_CHUNK; i < end; i++)
            s += (uint64_t)(D[i] * qscale);
        sums[c] = s;
    }
    unsigned __int128 total = 0;
    for (int64_t c = 0; c < nc; c++)
        total += sums[c];
    return total;
}

/* Below this d an exact distance costs less than the fast kernel's scores. */
#define KM_PP_SCORE_D 128
#define KM_PP_TEST_D 32
#define KM_PP_AHEAD 8   /* rows between a prefetch and the read */
#define KM_PP_AHEAD_BYTES 64   /* smaller rows: the prefetcher sees them */

/* Candidate t can lower D_i (x_i's distance to its nearest chosen centroid,
 * whose thresholds th are, or NULL: not tested): 0 where th or the fast kernel's
 * bound (base + sc, when scored) proves E(x_i, cand_t) >= D_i, else
 * E(x_i, cand_t) < D_i, with E in *e. */
static inline int pp_lowers(const km_centers *cand, const char *xr, int t, double Di,
                            const double *th, int scored, double lo, double *e)
{
    /* E(x, c) >= ||x - c||^2 (1 - e) >= lo (1 - e) */
    if ((th && Di <= th[t]) ||
        (scored && lo * (1 - km_bound_margin(cand->d)) >= Di))   /* NaN: in doubt */
        return 0;
    *e = km_dist_exact(xr, 0, cand->d, cand->prec, cand->c64 + (size_t)t * cand->d);
    return *e < Di;
}

int km_pp_reductions(const km_centers *cand, const void *x, int64_t rows, const double *D,
                     int32_t *near, int shift, const double *thr, double qscale,
                     unsigned __int128 *red, double *low)
{
    const int m = cand->k, d = cand->d, scored = d >= KM_PP_SCORE_D;
    const int32_t mask = shift ? (int32_t)(((uint32_t)1 << shift) - 1) : -1;
    const size_t rowbytes = (size_t)d * prec_size(cand->prec);
    const int ahead = rowbytes >= KM_PP_AHEAD_BYTES;
    int bad = 0;
#pragma omp parallel reduction(| : bad)
    {
        unsigned __int128 *mine = calloc((size_t)m, sizeof *mine);
        double *sc = malloc(sizeof(double) * (size_t)m);
        int *doubt = malloc(sizeof(int) * (size_t)m);
        bad = !mine || !sc || !doubt;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < rows; i++) {
            const int64_t j = i + KM_PP_AHEAD;   /* the rows read are sparse: ask ahead */
            if (ahead && j < rows && D[j] > thr[(size_t)(near[j] & mask) * (m + 1) + m])
                km_prefetch_row((const char *)x + (size_t)j * rowbytes, rowbytes);
            const int32_t a = near[i] & mask;
            const double *th = thr + (size_t)a * (m + 1);
            near[i] = a;
            if (bad || D[i] <= th[m])
                continue;   /* every candidate is too far from x's centroid: not read */
            const char *xr = (const char *)x + (size_t)i * rowbytes;
            int nd = 0;   /* below KM_PP_TEST_D a test per candidate costs more than E */
            for (int t = 0; t < m; t++)
                if (d < KM_PP_TEST_D || D[i] > th[t])
                    doubt[nd++] = t;
            const double base = scored ? km_row_scores(cand, xr, doubt, nd, sc) : 0;
            const uint64_t qd = (uint64_t)(D[i] * qscale);
            uint32_t lowers = 0;
            for (int q = 0; q < nd; q++) {
                double e;
                if (pp_lowers(cand, xr, doubt[q], D[i], d < KM_PP_TEST_D ? NULL : th,
                              scored, scored ? base + sc[q] : 0, &e)) {
                    mine[doubt[q]] += qd - (uint64_t)(e * qscale);
                    lowers |= (uint32_t)1 << doubt[q];
                    if (low)
                        low[(size_t)i * m + doubt[q]] = e;
                }
            }
            if (shift)
                near[i] = (int32_t)((uint32_t)a | lowers << shift);
        }
#pragma omp critical
        for (int t = 0; mine && t < m; t++)
            red[t] += mine[t];   /* integer sums: the order does not matter */
        free(mine);
        free(sc);
        free(doubt);
    }
    return bad ? -1 : 0;
}

void km_pp_thresholds(const double *chosen, int s, const km_centers *cand, double *thr)
{
    const int m = cand->k, d = cand->d;
    /* ||x - c_t|| >= ||c_a - c_t|| - ||x - c_a||, with E = km_dist_exact within a
     * relative e of the true squared distances: E(c_a, c_t) >= 4 D_i (1 + e) / (1 - e)
     * gives E(x, c_t) >= D_i. (1 - e) / (1 + e) >= 1 - 2 e; 4 e more covers the
     * roundings of this product and of e itself. */
    const double f = 0.25 * (1 - 6 * km_bound_margin(d));
#pragma omp parallel for schedule(static)
    for (int a = 0; a < s; a++) {
        double *th = thr + (size_t)a * (m + 1), least = INFINITY;
        for (int t = 0; t < m; t++) {
            th[t] = km_dist_exact(chosen, a, d, KM_F64, cand->c64 + (size_t)t * d) * f;
            least = th[t] < least ? th[t] : least;
        }
        th[m] = least;
    }
}

void km_pp_lower(const km_centers *cand, int t, const void *x, int64_t rows, const double *thr,
                 int32_t label, double *D, int32_t *near, int shift)
{
    const int m = cand->k, scored = cand->d >= KM_PP_SCORE_D;
    const int32_t mask = shift ? (int32_t)(((uint32_t)1 << shift) - 1) : -1;
    const size_t rowbytes = (size_t)cand->d * prec_size(cand->prec);
    const int ahead = rowbytes >= KM_PP_AHEAD_BYTES;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        const int64_t j = i + KM_PP_AHEAD;
        if (ahead && j < rows && (shift ? (uint32_t)near[j] >> shift >> t & 1
                                        : D[j] > thr[(size_t)near[j] * (m + 1) + t]))
            km_prefetch_row((const char *)x + (size_t)j * rowbytes, rowbytes);
        const int32_t a = near[i] & mask;
        const double *th = thr + (size_t)a * (m + 1);
        if (shift ? !((uint32_t)near[i] >> shift >> t & 1) : D[i] <= th[t])
            continue;   /* marked not lower, or proven so */
        const char *xr = (const char *)x + (size_t)i * rowbytes;
        double sc = 0, e;
        const int score = scored && !shift;
        const double base = score ? km_row_scores(cand, xr, &t, 1, &sc) : 0;
        if (pp_lowers(cand, xr, t, D[i], NULL, score, base + sc, &e)) {   /* th: above */
            D[i] = e;
            near[i] = label;
        }
    }
}

void km_pp_lower_kept(int m, int t, int64_t rows, const double *low, int32_t label, double *D,
                      int32_t *near, int shift)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++)
        if ((uint32_t)near[i] >> shift >> t & 1) {   /* marked: E < D_i, kept in low */
            D[i] = low[(size_t)i * m + t];
            near[i] = label;
        }
}

/* Insert (dist, row) into a list sorted by dist desc, row asc, keeping m. */
static void top_insert(double *dist, int64_t *row, int m, double e, int64_t i)
{
    int pos = m;
    while (pos > 0 && (e > dist[pos - 1] || (e == dist[pos - 1] && i < row[pos - 1])
                       || row[pos - 1] < 0))
        pos--;
    if (pos >= m)
        return;
    memmove(dist + pos + 1, dist + pos, sizeof(double) * (size_t)(m - pos - 1));
    memmove(row + pos + 1, row + pos, sizeof(int64_t) * (size_t)(m - pos - 1));
    dist[pos] = e;
    row[pos] = i;
}

void km_farthest(const void *x, int64_t rows, int d, km_precision prec, const double *c64,
                 const int32_t *labels, int64_t offset, int m, double *dist, int64_t *row)
{
#pragma omp parallel
    {
        double *md = malloc(sizeof(double) * (size_t)m);
        int64_t *mr = malloc(sizeof(int64_t) * (size_t)m);
        for (int t = 0; t < m; t++) {
            md[t] = -1;
            mr[t] = -1;
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < rows; i++)
            top_insert(md, mr, m, km_dist_exact(x, i, d, prec, c64 + (size_t)labels[i] * d),
                       offset + i);
#pragma omp critical
        for (int t = 0; t < m && mr[t] >= 0; t++)
            top_insert(dist, row, m, md[t], mr[t]);
        free(md);
        free(mr);
    }
}

/* Whether rows [i0, i1) hold a NaN or Inf: an all-ones exponent, tested on
 * the bits (integer OR, so it vectorizes). */
static int block_nonfinite(const void *x, int64_t i0, int64_t i1, int d, km_precision prec)
{
    const size_t a = (size_t)i0 * d, b = (size_t)i1 * d;
    int bad = 0;
    if (prec == KM_F32) {
        const float *v = x;
        for (size_t t = a; t < b; t++) {
            uint32_t u;
            memcpy(&u, v + t, 4);
            bad |= (u & 0x7f800000u) == 0x7f800000u;
        }
    } else {
        const double *v = x;
        for (size_t t = a; t < b; t++) {
            uint64_t u;
            memcpy(&u, v + t, 8);
            bad |= (u & 0x7ff0000000000000ull) == 0x7ff0000000000000ull;
        }
    }
    return bad;
}

int64_t km_find_nonfinite(const void *x, int64_t rows, int d, km_precision prec, int *col)
{
    const int64_t B = 256;   /* rows per block checked at once */
    const int64_t nb = (rows + B - 1) / B;
    int64_t first = INT64_MAX;
#pragma omp parallel for schedule(static) reduction(min: first)
    for (int64_t bl = 0; bl < nb; bl++) {
        const int64_t i0 = bl * B, i1 = i0 + B < rows ? i0 + B : rows;
        if (i0 > first || !block_nonfinite(x, i0, i1, d, prec))
            continue;
        for (int64_t i = i0; i < i1 && first == INT64_MAX; i++)   /* the row itself */
            for (int j = 0; j < d; j++)
                if (!isfinite(row_value(x, i, d, j, prec))) {
                    first = i < first ? i : first;
                    break;
                }
    }
    if (first == INT64_MAX)
        return -1;
    for (int j = 0; j < d; j++)
        if (!isfinite(row_value(x, first, d, j, prec))) {
            *col = j;
            break;
        }
    return first;
}

int km_column_fixed(const void *x, int64_t rows, int d, km_precision prec,
                    const double *center, const double *scale, km_i128 *out)
{
    const int nt = omp_get_max_threads();
    uint64_t *runs = calloc((size_t)nt * d, sizeof(uint64_t));
    km_i128 *parts = calloc((size_t)nt * d, sizeof(km_i128));
    if (!runs || !parts) {
        free(runs);
        free(parts);
        return KM_ERR_MEMORY;
    }
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num();
        uint64_t *run = runs + (size_t)t * d;
        km_i128 *mine = parts + (size_t)t * d;
        int64_t n = 0;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < rows; i++) {
            for (int j = 0; j < d; j++) {
                double v = row_value(x, i, d, j, prec);
                if (center)
                    v = (v - center[j]) * (v - center[j]);
                run[j] += km_fx_bits(v, scale[j]);
            }
            if (++n == KM_FX_RUN) {
                for (int j = 0; j < d; j++) {
                    mine[j] += (int64_t)(run[j] - (uint64_t)n * KM_FX_MAGIC_BITS);
                    run[j] = 0;
                }
                n = 0;
            }
        }
        for (int j = 0; j < d; j++)
            mine[j] += (int64_t)(run[j] - (uint64_t)n * KM_FX_MAGIC_BITS);
    }
    for (int t = 0; t < nt; t++)   /* integers: the order does not matter */
        for (int j = 0; j < d; j++)
            out[j] += parts[(size_t)t * d + j];
    free(runs);
    free(parts);
    return 0;
}

void km_column_maxabs(const void *x, int64_t rows, int d, km_precision prec, double *maxabs)
{
#pragma omp parallel for schedule(static) reduction(max: maxabs[:d])
    for (int64_t i = 0; i < rows; i++)
        for (int j = 0; j < d; j++)
        {
            const double v = fabs(row_value(x, i, d, j, prec));   /* data is finite */
            maxabs[j] = v > maxabs[j] ? v : maxabs[j];
        }
}
