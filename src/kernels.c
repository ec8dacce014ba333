/* kernels.c — OpenMP + SIMD kernels over blocks of rows: the fast assignment
 * (kernels_tmpl.h, instantiated for float and double), the naive reference it
 * is tested against, and the per-point helpers of init and empty-cluster
 * re-seeding. Everything per point is position independent; sums that must
 * not depend on the thread count are done in exact integers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include "kernels.h"

#define CG 6            /* centroids per register tile (12 FMA chains with 2 row vectors) */
#define KM_DBLOCK 256   /* features per pass of the micro-kernel (cache blocking) */

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
    void *xt;          /* d x (2 vectors of rows): one transposed row group */
    void *part;        /* partial dot products of a row group between d-blocks */
};

static void *alloc64(size_t bytes)
{
    bytes = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, bytes ? bytes : 64);
}

static size_t prec_size(km_precision prec) { return prec == KM_F32 ? 4 : 8; }

/* The exact distance ||x - c||^2 in float64, in one fixed order (two 4-lane
 * accumulators, lanes summed pairwise, then the d % 8 tail), so its value
 * depends only on x, c and d: never on where the point sits. With sums !=
 * NULL it also adds x into sums (the update of the chosen cluster). */
typedef float v4f __attribute__((vector_size(16)));
typedef double v4d __attribute__((vector_size(32)));

static inline v4d load4(const void *x, int j, km_precision prec)
{
    if (prec == KM_F32) {
        v4f f;
        memcpy(&f, (const float *)x + j, sizeof f);
        return __builtin_convertvector(f, v4d);
    }
    v4d v;
    memcpy(&v, (const double *)x + j, sizeof v);
    return v;
}

static inline double dist_row(const void *restrict x, const double *restrict c, int d,
                              km_precision prec, double *restrict sums)
{
    v4d a0 = {0, 0, 0, 0}, a1 = {0, 0, 0, 0};
    int j = 0;
    for (; j + 8 <= d; j += 8) {
        v4d x0 = load4(x, j, prec), x1 = load4(x, j + 4, prec), c0, c1;
        memcpy(&c0, c + j, sizeof c0);
        memcpy(&c1, c + j + 4, sizeof c1);
        v4d t0 = x0 - c0, t1 = x1 - c1;
        a0 += t0 * t0;
        a1 += t1 * t1;
        if (sums) {
            v4d s0, s1;
            memcpy(&s0, sums + j, sizeof s0);
            memcpy(&s1, sums + j + 4, sizeof s1);
            s0 += x0;
            s1 += x1;
            memcpy(sums + j, &s0, sizeof s0);
            memcpy(sums + j + 4, &s1, sizeof s1);
        }
    }
    double s = ((a0[0] + a1[0]) + (a0[1] + a1[1])) + ((a0[2] + a1[2]) + (a0[3] + a1[3]));
    for (; j < d; j++) {
        double xj = prec == KM_F32 ? (double)((const float *)x)[j] : ((const double *)x)[j];
        double t = xj - c[j];
        s += t * t;
        if (sums)
            sums[j] += xj;
    }
    return s;
}

double km_dist_exact(const void *x, int64_t i, int d, km_precision prec, const double *c)
{
    const char *row = (const char *)x + (size_t)i * (size_t)d * prec_size(prec);
    return dist_row(row, c, d, prec, NULL);
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
    kc->cnorm_r = alloc64((size_t)kc->kp * prec_size(prec));
    if (!kc->panels || !kc->cnorm || !kc->cnorm_r) {
        km_centers_free(kc);
        return km_fail(err, KM_ERR_MEMORY, "out of memory for %d x %d centroids", k, d);
    }
    return 0;
}

void km_centers_load(km_centers *kc, const double *c64)
{
    kc->c64 = c64;
    kc->cmax = 0;
    for (int c = 0; c < kc->kp; c++) {
        if (c >= kc->k) {
            kc->cnorm[c] = INFINITY;
            continue;
        }
        double s = 0;
        for (int j = 0; j < kc->d; j++)
            s += c64[(size_t)c * kc->d + j] * c64[(size_t)c * kc->d + j];
        kc->cnorm[c] = s;
        if (sqrt(s) > kc->cmax)
            kc->cmax = sqrt(s);
    }
    if (kc->prec == KM_F32)
        load_panels_f32(kc, c64);
    else
        load_panels_f64(kc, c64);
}

void km_centers_free(km_centers *kc)
{
    free(kc->panels);
    free(kc->cnorm);
    free(kc->cnorm_r);
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

km_workspace *km_workspace_new(const km_centers *kc, int64_t block_rows)
{
    (void)block_rows;
    km_workspace *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    const size_t rv = (size_t)rows_per_group(kc->prec), es = prec_size(kc->prec);
    ws->xt = alloc64(rv * (size_t)kc->d * es);
    ws->part = alloc64(rv * CG * es);
    if (!ws->xt || !ws->part) {
        km_workspace_free(ws);
        return NULL;
    }
    return ws;
}

void km_workspace_free(km_workspace *ws)
{
    if (!ws)
        return;
    free(ws->xt);
    free(ws->part);
    free(ws);
}

void km_assign_block(const km_centers *kc, const void *x, int64_t rows,
                     int32_t *labels, double *acc, km_workspace *ws)
{
    if (kc->prec == KM_F32)
        assign_block_f32(kc, x, rows, labels, acc, ws);
    else
        assign_block_f64(kc, x, rows, labels, acc, ws);
}

struct km_threads {
    int n;
    int64_t block_rows;
    size_t acc_len;
    km_workspace **ws;
    double **acc;
};

void km_threads_free(km_threads *th)
{
    if (!th)
        return;
    for (int t = 0; t < th->n; t++) {
        if (th->ws)
            km_workspace_free(th->ws[t]);
        if (th->acc)
            free(th->acc[t]);
    }
    free(th->ws);
    free(th->acc);
    free(th);
}

km_threads *km_threads_new(const km_centers *kc, int64_t block_rows)
{
    km_threads *th = calloc(1, sizeof *th);
    if (!th)
        return NULL;
    th->n = omp_get_max_threads();
    th->block_rows = block_rows;
    th->acc_len = km_acc_len(kc->k, kc->d);
    th->ws = calloc((size_t)th->n, sizeof *th->ws);
    th->acc = calloc((size_t)th->n, sizeof *th->acc);
    if (!th->ws || !th->acc) {
        km_threads_free(th);
        return NULL;
    }
    int ok = 1;
#pragma omp parallel reduction(&& : ok)
    {   /* each thread allocates and first touches its own scratch (NUMA) */
        int t = omp_get_thread_num();
        th->ws[t] = km_workspace_new(kc, block_rows);
        th->acc[t] = alloc64(sizeof(double) * th->acc_len);
        ok = th->ws[t] && th->acc[t];
        if (th->acc[t])
            memset(th->acc[t], 0, sizeof(double) * th->acc_len);
    }
    if (!ok) {
        km_threads_free(th);
        return NULL;
    }
    return th;
}

int km_threads_count(const km_threads *th)
{
    return th->n;
}

void km_assign_chunk(const km_centers *kc, const void *x, int64_t rows, int32_t *labels,
                     km_threads *th)
{
    const int64_t br = th->block_rows;
    const int64_t nblocks = (rows + br - 1) / br;
    const size_t rowbytes = (size_t)kc->d * prec_size(kc->prec);
#pragma omp parallel for schedule(static) num_threads(th->n)
    for (int64_t b = 0; b < nblocks; b++) {
        const int t = omp_get_thread_num();
        const int64_t r0 = b * br, nr = rows - r0 < br ? rows - r0 : br;
        km_assign_block(kc, (const char *)x + (size_t)r0 * rowbytes, nr, labels + r0,
                        th->acc[t], th->ws[t]);
    }
}

void km_threads_reduce(km_threads *th, double *acc)
{
    memset(acc, 0, sizeof(double) * th->acc_len);
    for (int t = 0; t < th->n; t++) {
        for (size_t i = 0; i < th->acc_len; i++)
            acc[i] += th->acc[t][i];
        memset(th->acc[t], 0, sizeof(double) * th->acc_len);
    }
}

static double row_value(const void *x, int64_t i, int d, int j, km_precision prec)
{
    return prec == KM_F32 ? (double)((const float *)x)[i * d + j]
                          : ((const double *)x)[i * d + j];
}

void km_assign_naive(const double *c64, int k, int d, km_precision prec, const void *x,
                     int64_t rows, int32_t *labels, double *acc)
{
    double *counts = km_acc_counts(acc, k, d);
    for (int64_t i = 0; i < rows; i++) {
        double best = INFINITY;
        int bi = 0;
        for (int c = 0; c < k; c++) {
            double e = km_dist_exact(x, i, d, prec, c64 + (size_t)c * d);
            if (e < best) {
                best = e;
                bi = c;
            }
        }
        dist_row((const char *)x + (size_t)i * d * prec_size(prec), c64 + (size_t)bi * d, d,
                 prec, acc + (size_t)bi * d);
        counts[bi] += 1.0;
        acc[km_acc_inertia(k, d)] += best;
        if (labels[i] != bi) {
            acc[km_acc_changed(k, d)] += 1.0;
            labels[i] = bi;
        }
    }
}

void km_min_dist_update(const void *x, int64_t rows, int d, km_precision prec,
                        const double *c, double *out, int init)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        double e = km_dist_exact(x, i, d, prec, c);
        if (init || e < out[i])
            out[i] = e;
    }
}

void km_pp_potentials(const void *x, int64_t rows, int d, km_precision prec, const double *D,
                      const double *cand, int m, double qscale, unsigned __int128 *pot)
{
    for (int t = 0; t < m; t++)
        pot[t] = 0;
#pragma omp parallel
    {
        unsigned __int128 *mine = calloc((size_t)m, sizeof *mine);
#pragma omp for schedule(static)
        for (int64_t i = 0; i < rows; i++)
            for (int t = 0; t < m; t++) {
                double e = km_dist_exact(x, i, d, prec, cand + (size_t)t * d);
                double v = e < D[i] ? e : D[i];
                mine[t] += (uint64_t)(v * qscale);
            }
#pragma omp critical
        for (int t = 0; t < m; t++)
            pot[t] += mine[t];   /* integer sums: the order does not matter */
        free(mine);
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
                 const int32_t *labels, int m, double *dist, int64_t *row)
{
    for (int t = 0; t < m; t++) {
        dist[t] = -1;
        row[t] = -1;
    }
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
            top_insert(md, mr, m, km_dist_exact(x, i, d, prec, c64 + (size_t)labels[i] * d), i);
#pragma omp critical
        for (int t = 0; t < m && mr[t] >= 0; t++)
            top_insert(dist, row, m, md[t], mr[t]);
        free(md);
        free(mr);
    }
}

int64_t km_find_nonfinite(const void *x, int64_t rows, int d, km_precision prec, int *col)
{
    int64_t first = INT64_MAX;
#pragma omp parallel for schedule(static) reduction(min: first)
    for (int64_t i = 0; i < rows; i++) {
        if (i > first)
            continue;
        for (int j = 0; j < d; j++)
            if (!isfinite(row_value(x, i, d, j, prec))) {
                first = i;
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

void km_column_moments(const void *x, int64_t rows, int d, km_precision prec,
                       const double *center, double *out)
{
#pragma omp parallel
    {
        double *mine = calloc((size_t)d, sizeof(double));
#pragma omp for schedule(static)
        for (int64_t i = 0; i < rows; i++)
            for (int j = 0; j < d; j++) {
                double v = row_value(x, i, d, j, prec);
                if (center) {
                    v -= center[j];
                    v *= v;
                }
                mine[j] += v;
            }
#pragma omp critical
        for (int j = 0; j < d; j++)
            out[j] += mine[j];
        free(mine);
    }
}
