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

#define RB 4            /* rows per micro-kernel tile */
#define KM_DBLOCK 256   /* features per pass of the micro-kernel (cache blocking) */

#if defined(__AVX512F__)
#define KM_VBYTES 64
#else
#define KM_VBYTES 32
#endif

typedef float vf32 __attribute__((vector_size(KM_VBYTES)));
typedef double vf64 __attribute__((vector_size(KM_VBYTES)));

struct km_workspace {
    void *dots;        /* block_rows (rounded up to RB) x kp */
    void *tail;        /* RB x d: padded copy of a block's last rows */
    double *scores;    /* kp */
    int *cand;         /* kp */
};

static void *alloc64(size_t bytes)
{
    bytes = (bytes + 63) / 64 * 64;
    return aligned_alloc(64, bytes ? bytes : 64);
}

static size_t prec_size(km_precision prec) { return prec == KM_F32 ? 4 : 8; }

double km_dist_exact(const void *x, int64_t i, int d, km_precision prec, const double *c)
{
    double s = 0;
    if (prec == KM_F32) {
        const float *xr = (const float *)x + i * d;
        for (int j = 0; j < d; j++) {
            double t = (double)xr[j] - c[j];
            s += t * t;
        }
    } else {
        const double *xr = (const double *)x + i * d;
        for (int j = 0; j < d; j++) {
            double t = xr[j] - c[j];
            s += t * t;
        }
    }
    return s;
}

#define REAL float
#define VEC vf32
#define VL ((int)(KM_VBYTES / sizeof(float)))
#define SFX f32
#define PREC KM_F32
#define UROUND 0x1p-24
#include "kernels_tmpl.h"
#undef REAL
#undef VEC
#undef VL
#undef SFX
#undef PREC
#undef UROUND

#define REAL double
#define VEC vf64
#define VL ((int)(KM_VBYTES / sizeof(double)))
#define SFX f64
#define PREC KM_F64
#define UROUND 0x1p-53
#include "kernels_tmpl.h"
#undef REAL
#undef VEC
#undef VL
#undef SFX
#undef PREC
#undef UROUND

int km_panel_width(km_precision prec)
{
    return 2 * KM_VBYTES / (int)prec_size(prec);
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
    if (!kc->panels || !kc->cnorm) {
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
    kc->panels = NULL;
    kc->cnorm = NULL;
}

int64_t km_default_block_rows(int d, int k, km_precision prec)
{
    const int w = km_panel_width(prec);
    const int64_t kp = (k + w - 1) / w * w;
    int64_t rows = (256 * 1024) / ((int64_t)(d + kp) * (int64_t)prec_size(prec));
    rows = rows / RB * RB;
    return rows < RB ? RB : rows > 1024 ? 1024 : rows;
}

km_workspace *km_workspace_new(const km_centers *kc, int64_t block_rows)
{
    km_workspace *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    const int64_t rows = (block_rows + RB - 1) / RB * RB;
    ws->dots = alloc64((size_t)rows * kc->kp * prec_size(kc->prec));
    ws->tail = alloc64((size_t)RB * kc->d * prec_size(kc->prec));
    ws->scores = malloc(sizeof(double) * (size_t)kc->kp);
    ws->cand = malloc(sizeof(int) * (size_t)kc->kp);
    if (!ws->dots || !ws->tail || !ws->scores || !ws->cand) {
        km_workspace_free(ws);
        return NULL;
    }
    return ws;
}

void km_workspace_free(km_workspace *ws)
{
    if (!ws)
        return;
    free(ws->dots);
    free(ws->tail);
    free(ws->scores);
    free(ws->cand);
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
        for (int j = 0; j < d; j++)
            acc[(size_t)bi * d + j] += row_value(x, i, d, j, prec);
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
