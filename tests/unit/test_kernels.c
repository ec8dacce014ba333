/* test_kernels.c — the fast assignment kernel against the naive reference and
 * both against an independent long-double computation written here. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <omp.h>
#include "bounds.h"
#include "kernels.h"
#include "lloyd.h"
#include "walk.h"

static uint64_t rng_state;
static double unif(void)            /* deterministic, independent of the code under test */
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng_state >> 11) * 0x1p-53;
}

static void *make_data(km_precision prec, int64_t n, int d, const double *x64)
{
    void *x = malloc((size_t)n * d * (prec == KM_F32 ? 4 : 8));
    for (size_t i = 0; i < (size_t)n * d; i++) {
        if (prec == KM_F32)
            ((float *)x)[i] = (float)x64[i];
        else
            ((double *)x)[i] = x64[i];
    }
    return x;
}

static long double value(const void *x, km_precision prec, size_t idx)
{
    return prec == KM_F32 ? (long double)((const float *)x)[idx] : ((const double *)x)[idx];
}

static long double ref_dist(const void *x, km_precision prec, int64_t i, int d, const double *c)
{
    long double s = 0;
    for (int j = 0; j < d; j++) {
        long double t = value(x, prec, (size_t)i * d + j) - c[j];
        s += t * t;
    }
    return s;
}

/* Column maxima and (long double) column means: the scales and center. */
static void set_range(km_centers *kc, const void *x, int64_t n)
{
    double *m = calloc((size_t)kc->d, sizeof(double)), *mean = malloc(sizeof(double) * kc->d);
    km_column_maxabs(x, n, kc->d, kc->prec, m);
    for (int j = 0; j < kc->d; j++) {
        long double s = 0;
        for (int64_t i = 0; i < n; i++)
            s += value(x, kc->prec, (size_t)i * kc->d + j);
        mean[j] = (double)(s / n);
    }
    km_centers_set_range(kc, m, mean);
    free(m);
    free(mean);
}

/* The inertia an allreduce of acc's totals reports (one rank's limb layout). */
static double unpacked_inertia(const km_centers *kc, const km_acc *acc)
{
    int limbs, bits;
    km_fx_limbs(1, &limbs, &bits);
    double *buf = calloc(km_acc_pack_len(kc->k, kc->d, limbs), sizeof(double));
    double *res = malloc(sizeof(double) * km_acc_len(kc->k, kc->d));
    km_acc_pack(acc, limbs, bits, buf);
    km_acc_unpack(buf, kc, limbs, bits, res);
    double in = res[km_acc_inertia(kc->k, kc->d)];
    free(buf);
    free(res);
    return in;
}

/* What the inertia may be off by: each ||x - center||^2 rounded to 1/qscale, and
 * float64 rounding in the terms about the center (d ulps of sum n ||c - center||^2). */
static double inertia_tol(const km_centers *kc, const int32_t *lab, int64_t n,
                          long double inertia)
{
    long double far = 0;
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < kc->d; j++) {
            long double t = kc->c64[(size_t)lab[i] * kc->d + j] - kc->center[j];
            far += t * t;
        }
    return 1e-12 * (double)inertia + (double)n / kc->qscale
           + 4.0 * (kc->d + 8) * 0x1p-52 * (double)far;
}

/* One Lloyd pass of the fast kernel over x in memory, handed out in chunks of
 * three kernel blocks (as a streamed source hands out its chunks), through the
 * threads. */
static void fast_pass(km_centers *kc, const void *x, int64_t n, int64_t block_rows,
                      int32_t *labels, km_acc *acc, int shared)
{
    km_threads *th = km_threads_new(kc, block_rows, shared ? acc : NULL);
    assert_non_null(th);
    const km_block blk = {.n = n, .d = kc->d, .rows = n, .prec = kc->prec, .data = (void *)x};
    km_source src;
    km_source_memory(&src, &blk);
    src.chunk_rows = 3 * block_rows;
    km_error err = {0};
    assert_int_equal(km_lloyd_pass(&src, kc, labels, th, acc, &err), 0);
    km_threads_free(th);
}

/* A source whose rows are read (km_source.read) from x: stored with 3 more
 * values a row than it hands out (NaN, dropped in place as --top-variance
 * does), failing on row fail_at. */
typedef struct {
    km_source s;   /* first: the callbacks get &s */
    const char *x;
    size_t rowbytes;
    int64_t fail_at, reads;
} fake_source;

static int fake_read(km_source *s, int64_t first, int64_t n, void *dst, km_error *err)
{
    fake_source *f = (fake_source *)s;
    if (f->fail_at >= first && f->fail_at < first + n)
        return km_fail(err, KM_ERR_INPUT, "reading row %lld failed", (long long)f->fail_at);
    const size_t es = s->prec == KM_F32 ? 4 : 8, stored = (size_t)s->read_width * es;
    for (int64_t i = 0; i < n; i++) {
        memcpy((char *)dst + i * stored, f->x + (size_t)(first + i) * f->rowbytes, f->rowbytes);
        memset((char *)dst + i * stored + f->rowbytes, 0xff, stored - f->rowbytes);
    }
    for (int64_t i = 0; i < n; i++)
        memmove((char *)dst + i * f->rowbytes, (char *)dst + i * stored, f->rowbytes);
    __atomic_fetch_add(&f->reads, 1, __ATOMIC_RELAXED);
    return 0;
}

static fake_source fake(const km_centers *kc, const void *x, int64_t n, int64_t chunk_rows,
                        int64_t fail_at)
{
    fake_source f = {.x = x, .rowbytes = (size_t)kc->d * (kc->prec == KM_F32 ? 4 : 8),
                     .fail_at = fail_at};
    f.s = (km_source){.rows = n, .chunk_rows = chunk_rows, .d = kc->d, .prec = kc->prec,
                      .read = fake_read, .read_width = kc->d + 3};
    return f;
}

/* Lloyd's pass over the rows read block by block into the threads' buffers
 * (blocks of load_rows: the source's chunk shared among the threads). */
static int loaded_pass(km_centers *kc, const void *x, int64_t n, int64_t block_rows,
                       int64_t load_rows, int64_t fail_at, int32_t *labels, km_acc *acc)
{
    km_threads *th = km_threads_new(kc, block_rows, NULL);
    assert_non_null(th);
    fake_source f = fake(kc, x, n, load_rows * km_threads_count(th), fail_at);
    km_error err = {0};
    int rc = km_lloyd_pass(&f.s, kc, labels, th, acc, &err);
    assert_true(rc == 0 || strstr(err.msg, "reading row") != NULL);
    km_threads_free(th);
    return rc;
}

/* Centroids c64 (k x d) ready for the kernel over the n rows x (their range set). */
static void load_centers(km_centers *kc, km_precision prec, int k, int d, const void *x,
                         int64_t n, const double *c64)
{
    km_error err = {0};
    assert_int_equal(km_centers_init(kc, k, d, prec, &err), 0);
    set_range(kc, x, n);
    km_centers_load(kc, c64);
}

/* Fast and naive kernels on the same input must agree bit for bit (labels and
 * the moves: exact sums, counts, squared norms); the naive one is checked
 * against long double: its moves, and the inertia of a pass from no labels. */

static void check_case(km_precision prec, int64_t n, int d, int k, int64_t block_rows,
                       const double *x64, const double *c64)
{
    void *x = make_data(prec, n, d, x64);
    km_centers kc;
    load_centers(&kc, prec, k, d, x, n, c64);

    km_acc *fast = km_acc_new(k, d), *naive = km_acc_new(k, d);
    int32_t *lab_fast = malloc(n * sizeof(int32_t)), *lab_naive = malloc(n * sizeof(int32_t));
    int32_t *start = malloc(n * sizeof(int32_t));
    for (int64_t i = 0; i < n; i++)   /* some start labels, some -1 */
        start[i] = lab_fast[i] = lab_naive[i] = (int32_t)(i % 3) - 1 < k ? (int32_t)(i % 3) - 1 : -1;

    fast_pass(&kc, x, n, block_rows, lab_fast, fast, 0);
    km_assign_naive(&kc, x, n, lab_naive, naive);

    for (int64_t i = 0; i < n; i++) {
        if (lab_fast[i] != lab_naive[i])
            fail_msg("prec %d n %lld d %d k %d block %lld: row %lld fast %d naive %d",
                     (int)prec, (long long)n, d, k, (long long)block_rows, (long long)i,
                     lab_fast[i], lab_naive[i]);
    }
    assert_memory_equal(fast->sums, naive->sums, sizeof(km_i128) * k * d);
    assert_memory_equal(fast->sq, naive->sq, sizeof(km_i128) * k);
    assert_memory_equal(fast->counts, naive->counts, sizeof(double) * k);
    assert_true(fast->changed == naive->changed);

    /* the rows loaded block by block into the threads' buffers, in blocks of a
       third of the kernel's: the same bits */
    km_acc *loaded = km_acc_new(k, d);
    int32_t *lab_loaded = malloc(n * sizeof(int32_t));
    memcpy(lab_loaded, start, n * sizeof(int32_t));
    assert_int_equal(loaded_pass(&kc, x, n, block_rows, (block_rows + 2) / 3, -1, lab_loaded,
                                 loaded), 0);
    assert_memory_equal(lab_loaded, lab_naive, n * sizeof(int32_t));
    assert_memory_equal(loaded->sums, naive->sums, sizeof(km_i128) * k * d);
    assert_memory_equal(loaded->sq, naive->sq, sizeof(km_i128) * k);
    assert_memory_equal(loaded->counts, naive->counts, sizeof(double) * k);
    assert_true(loaded->changed == naive->changed);
    /* a loader that fails stops the pass with its code */
    memcpy(lab_loaded, start, n * sizeof(int32_t));
    km_acc_clear(loaded);
    assert_int_equal(loaded_pass(&kc, x, n, block_rows, block_rows, n / 2, lab_loaded, loaded),
                     KM_ERR_INPUT);
    km_acc_free(loaded);
    free(lab_loaded);

    /* the threads adding their moves into one shared copy of the totals, from the
       same start labels (sums taken out of clusters too): the same bits */
    km_acc *shared = km_acc_new(k, d);
    int32_t *lab_shared = malloc(n * sizeof(int32_t));
    memcpy(lab_shared, start, n * sizeof(int32_t));
    fast_pass(&kc, x, n, block_rows, lab_shared, shared, 1);
    assert_memory_equal(lab_shared, lab_naive, n * sizeof(int32_t));
    assert_memory_equal(shared->sums, naive->sums, sizeof(km_i128) * k * d);
    assert_memory_equal(shared->sq, naive->sq, sizeof(km_i128) * k);
    assert_memory_equal(shared->counts, naive->counts, sizeof(double) * k);
    assert_true(shared->changed == naive->changed);
    /* then every row from another cluster back to its own, added to those totals */
    km_acc *naive2 = km_acc_new(k, d), *expect = km_acc_new(k, d);
    for (int64_t i = 0; i < n; i++)
        lab_shared[i] = (lab_naive[i] + 1) % k;
    int32_t *lab_n2 = malloc(n * sizeof(int32_t));
    memcpy(lab_n2, lab_shared, n * sizeof(int32_t));
    km_assign_naive(&kc, x, n, lab_n2, naive2);
    km_acc_add(expect, naive);
    km_acc_add(expect, naive2);
    fast_pass(&kc, x, n, block_rows, lab_shared, shared, 1);
    assert_memory_equal(lab_shared, lab_naive, n * sizeof(int32_t));
    assert_memory_equal(shared->sums, expect->sums, sizeof(km_i128) * k * d);
    assert_memory_equal(shared->sq, expect->sq, sizeof(km_i128) * k);
    assert_memory_equal(shared->counts, expect->counts, sizeof(double) * k);
    km_acc_free(shared);
    km_acc_free(naive2);
    km_acc_free(expect);
    free(lab_shared);
    free(lab_n2);

    /* naive vs long double: the chosen centroid is a true minimiser up to rounding */
    long double inertia = 0;
    for (int64_t i = 0; i < n; i++) {
        long double best = INFINITY;
        for (int c = 0; c < k; c++) {
            long double e = ref_dist(x, prec, i, d, c64 + (size_t)c * d);
            if (e < best)
                best = e;
        }
        long double chosen = ref_dist(x, prec, i, d, c64 + (size_t)lab_naive[i] * d);
        assert_true(chosen <= best * (1 + 1e-12L) + 1e-300L);
        inertia += chosen;
    }
    /* the moves: rows that changed label leave their old cluster, join the new one */
    int64_t moved = 0;
    for (int64_t i = 0; i < n; i++)
        moved += start[i] != lab_naive[i];
    assert_true(naive->changed == (double)moved);
    for (int c = 0; c < k; c++) {
        int64_t cnt = 0, touched = 0;
        for (int64_t i = 0; i < n; i++)
            if (start[i] != lab_naive[i]) {
                cnt += (lab_naive[i] == c) - (start[i] == c);
                touched += lab_naive[i] == c || start[i] == c;
            }
        assert_true(naive->counts[c] == (double)cnt);
        for (int j = 0; j < d; j++) {
            long double s = 0, mag = 0;
            for (int64_t i = 0; i < n; i++)
                if (start[i] != lab_naive[i]) {
                    long double v = value(x, prec, (size_t)i * d + j);
                    s += v * ((lab_naive[i] == c) - (start[i] == c));
                    mag += fabsl(v) * (lab_naive[i] == c || start[i] == c);
                }
            /* each element is rounded to 2^-50 of the column's max |x| */
            double got = km_fx_value(naive->sums[(size_t)c * d + j], kc.xscale[j]);
            double tol = (double)touched * 0.5 / kc.xscale[j] + 1e-15 * (double)mag;
            assert_true(fabs(got - (double)s) <= tol);
        }
    }
    /* from no labels the moves are the totals: their inertia is the direct one */
    km_acc_clear(naive);
    for (int64_t i = 0; i < n; i++)
        lab_naive[i] = -1;
    km_assign_naive(&kc, x, n, lab_naive, naive);
    double in = unpacked_inertia(&kc, naive);
    if (!(fabs(in - (double)inertia) <= inertia_tol(&kc, lab_naive, n, inertia)))
        fail_msg("inertia %.17g, long double %.17Lg", in, inertia);

    /* a second pass with unchanged centroids changes no label and moves nothing */
    km_acc_clear(fast);
    fast_pass(&kc, x, n, block_rows, lab_fast, fast, 0);
    assert_true(fast->changed == 0.0);
    for (int c = 0; c < k; c++)
        assert_true(fast->counts[c] == 0 && fast->sq[c] == 0);

    km_acc_free(fast); km_acc_free(naive); free(lab_fast); free(lab_naive); free(start); free(x);
    km_centers_free(&kc);
}

/* Gaussian-ish blobs around the centroids, so assignments are non-trivial. */
static void random_case(km_precision prec, int64_t n, int d, int k, int64_t block_rows,
                        uint64_t seed)
{
    rng_state = seed;
    double *c64 = malloc((size_t)k * d * sizeof(double));
    double *x64 = malloc((size_t)n * d * sizeof(double));
    for (size_t i = 0; i < (size_t)k * d; i++)
        c64[i] = 4.0 * unif() - 2.0;
    for (int64_t i = 0; i < n; i++) {
        int c = (int)(unif() * k);
        for (int j = 0; j < d; j++)
            x64[(size_t)i * d + j] = c64[(size_t)c * d + j] + (unif() - 0.5) * 3.0;
    }
    check_case(prec, n, d, k, block_rows, x64, c64);
    free(c64);
    free(x64);
}

/* km_centers_update with the mask of the centroids that stayed: the same panels,
 * norms, row copy and cmax as a full load of the new centroids, whichever panel
 * holds the changed ones (k = 13: a padded last panel), in both precisions. */
static void test_centers_update(void **state)
{
    (void)state;
    const int k = 13, d = 37;
    for (int p = 0; p < 2; p++) {
        const km_precision prec = (km_precision)p;
        const size_t es = prec == KM_F32 ? 4 : 8;
        rng_state = 99 + p;
        double *c64 = malloc(sizeof(double) * k * d), *x64 = malloc(sizeof(double) * 4 * d);
        for (int i = 0; i < k * d; i++)
            c64[i] = 4.0 * unif() - 2.0;
        for (int i = 0; i < 4 * d; i++)
            x64[i] = 4.0 * unif() - 2.0;
        void *x = make_data(prec, 4, d, x64);
        km_centers up, full;
        km_error err = {0};
        assert_int_equal(km_centers_init(&up, k, d, prec, &err), 0);
        assert_int_equal(km_centers_keep_rows(&up), 0);
        set_range(&up, x, 4);
        km_centers_load(&up, c64);
        unsigned char same[13];
        for (int step = 0; step < 3; step++) {
            for (int c = 0; c < k; c++) {   /* step 2: the largest one moves */
                same[c] = step == 0 ? c != 0 && c != 12 : step == 1 ? c % 5 != 3 : c != 7;
                for (int j = 0; !same[c] && j < d; j++)
                    c64[(size_t)c * d + j] += step == 2 ? 40.0 : unif() - 0.5;
            }
            km_centers_update(&up, c64, same);
            assert_int_equal(km_centers_init(&full, k, d, prec, &err), 0);
            assert_int_equal(km_centers_keep_rows(&full), 0);
            set_range(&full, x, 4);
            km_centers_load(&full, c64);
            assert_memory_equal(up.panels, full.panels, (size_t)full.kp * d * es);
            assert_memory_equal(up.cnorm, full.cnorm, sizeof(double) * full.kp);
            assert_memory_equal(up.cnorm_r, full.cnorm_r, (size_t)full.kp * es);
            assert_memory_equal(up.rows_r, full.rows_r, (size_t)k * d * es);
            assert_true(up.cmax == full.cmax);
            assert_memory_equal(up.same, same, k);
            km_centers_free(&full);
        }
        km_centers_free(&up);
        free(c64);
        free(x64);
        free(x);
    }
}

/* km_read_some: the rows asked for, each at its place, and no more read calls
 * than runs; a dense request is one read of the whole block. */
static void test_read_some(void **state)
{
    (void)state;
    const int d = 40;   /* 600 rows of 43 stored values: runs, when few, are cheaper */
    const int64_t n = 1000, first = 200, nr = 600;
    double *x64 = malloc(sizeof(double) * n * d);
    for (int64_t i = 0; i < n * d; i++)
        x64[i] = (double)i;
    km_centers kc;
    km_error err = {0};
    assert_int_equal(km_centers_init(&kc, 2, d, KM_F64, &err), 0);
    double *buf = malloc(sizeof(double) * nr * (d + 3));
    int64_t idx[600];
    for (int dense = 0; dense < 2; dense++) {
        int64_t m = 0;
        for (int64_t i = 0; i < nr; i++)   /* sparse: runs of 1-2 rows far apart */
            if (dense ? i % 2 == 0 : (i % 97 == 3 || i % 97 == 4 || i % 131 == 0))
                idx[m++] = i;
        fake_source f = fake(&kc, x64, n, n, -1);
        for (int64_t i = 0; i < nr * (d + 3); i++)
            buf[i] = -1;
        assert_int_equal(km_read_some(&f.s, first, nr, idx, m, buf, &err), 0);
        for (int64_t j = 0; j < m; j++)
            assert_memory_equal(buf + idx[j] * d, x64 + (first + idx[j]) * d,
                                sizeof(double) * d);
        if (dense)
            assert_true(f.reads == 1);
        else
            assert_true(f.reads > 1 && f.reads <= m);
        f.fail_at = first + idx[m / 2];   /* a failed read: its code and message */
        err.code = 0;
        assert_int_equal(km_read_some(&f.s, first, nr, idx, m, buf, &err), KM_ERR_INPUT);
        assert_non_null(strstr(err.msg, "reading row"));
    }
    free(buf);
    free(x64);
    km_centers_free(&kc);
}

static void test_sizes(void **state)
{
    (void)state;
    /* 8 and 16: rows of one vector (float, AVX2 and AVX-512), transposed in registers */
    const int ds[] = {1, 3, 8, 16, 17, 1000};
    const int ks[] = {1, 2, 7, 64};
    const int64_t blocks[] = {1, 37, 256};
    for (int p = 0; p < 2; p++)
        for (int a = 0; a < 6; a++)
            for (int b = 0; b < 4; b++)
                for (int c = 0; c < 3; c++) {
                    int64_t n = ds[a] >= 1000 ? 301 : 1003;     /* never a block multiple */
                    random_case((km_precision)p, n, ds[a], ks[b], blocks[c],
                                1000u * a + 10u * b + c);
                }
}

static void test_default_block(void **state)
{
    (void)state;
    for (int p = 0; p < 2; p++) {
        int64_t br = km_default_block_rows(33, 20, (km_precision)p);
        assert_true(br >= 1);
        random_case((km_precision)p, 5 * br + 3, 33, 20, br, 7);
    }
}

/* Exact ties: duplicated centroids and points exactly half-way; lowest index wins. */
static void test_ties(void **state)
{
    (void)state;
    for (int p = 0; p < 2; p++) {
        const int k = 9, d = 5;
        const int64_t n = 101;
        double c64[9 * 5], *x64 = malloc((size_t)n * d * sizeof(double));
        for (int c = 0; c < k; c++)
            for (int j = 0; j < d; j++)
                c64[c * d + j] = (double)((c / 3) * 2) + (j == 0 ? 0.0 : 1.0); /* 3 copies each */
        for (int64_t i = 0; i < n; i++)
            for (int j = 0; j < d; j++)
                x64[i * d + j] = (double)(i % 5) + (j == 0 ? 0.0 : 1.0);    /* 1 and 3: half-way */
        check_case((km_precision)p, n, d, k, 16, x64, c64);
        km_centers kc;
        km_error err = {0};
        void *x = make_data((km_precision)p, n, d, x64);
        km_centers_init(&kc, k, d, (km_precision)p, &err);
        set_range(&kc, x, n);
        km_centers_load(&kc, c64);
        int32_t *lab = malloc(n * sizeof(int32_t));
        km_acc *acc = km_acc_new(k, d);
        for (int64_t i = 0; i < n; i++)
            lab[i] = -1;
        fast_pass(&kc, x, n, 16, lab, acc, 0);
        for (int64_t i = 0; i < n; i++) {
            int v = (int)(i % 5);    /* 0 -> copy group 0, 1 -> tie of 0/2 -> group 0, ... */
            int expect = (v / 2) * 3; /* lowest index of the nearest group */
            assert_int_equal(lab[i], expect);
        }
        km_centers_free(&kc);
        km_acc_free(acc);
        free(lab); free(x); free(x64);
    }
}

/* Near ties: centroids a few ulps apart and large offsets, where the expanded
 * form ||x||^2 - 2x.c + ||c||^2 cannot tell them apart; the exact recheck must. */
static void test_near_ties(void **state)
{
    (void)state;
    for (int p = 0; p < 4; p++) {   /* p / 2: d = 600 spans three d-blocks */
        const int k = 12, d = p < 2 ? 24 : 600;
        const int64_t n = 517;
        rng_state = 99 + p;
        double *c64 = malloc(sizeof(double) * k * d), *x64 = malloc(sizeof(double) * n * d);
        for (int j = 0; j < d; j++)
            c64[j] = 1000.0 + unif();
        for (int c = 1; c < k; c++)
            for (int j = 0; j < d; j++)
                c64[c * d + j] = c64[j] + (unif() - 0.5) * (p % 2 == 0 ? 1e-4 : 1e-11);
        for (int64_t i = 0; i < n; i++)
            for (int j = 0; j < d; j++)
                x64[i * d + j] = c64[j] + (unif() - 0.5) * (p % 2 == 0 ? 1e-3 : 1e-10);
        check_case((km_precision)(p % 2), n, d, k, 64, x64, c64);
        free(c64);
        free(x64);
    }
}

/* A whole row group that keeps its label by the fast scores, all of them near ties
 * that the exact distances decide the other way: float32 centroids c0 = c1 - 1e-5 round
 * to the same floats (half an ulp at 1000 is 3e-5), so every row x = c1 scores both
 * alike and the fast argmin is c0, its old label, while E(x, c1) = 0 < E(x, c0). The
 * kernel may skip a row group only when no row in it is a near tie. */
static void test_group_near_ties(void **state)
{
    (void)state;
    const int k = 2, d = 24;
    const int64_t n = 64;
    rng_state = 5;
    double c64[2 * 24], *x64 = malloc(sizeof(double) * n * d);
    for (int j = 0; j < d; j++) {
        c64[d + j] = (double)(float)(1000.0 + unif());
        c64[j] = c64[d + j] - 1e-5;
    }
    for (int64_t i = 0; i < n; i++)
        memcpy(x64 + i * d, c64 + d, sizeof(double) * d);
    void *x = make_data(KM_F32, n, d, x64);
    km_centers kc;
    load_centers(&kc, KM_F32, k, d, x, n, c64);
    int32_t lab[64];
    for (int64_t i = 0; i < n; i++)
        lab[i] = 0;
    km_acc *acc = km_acc_new(k, d);
    fast_pass(&kc, x, n, 64, lab, acc, 0);
    for (int64_t i = 0; i < n; i++)
        assert_int_equal(lab[i], 1);
    km_acc_free(acc);
    km_centers_free(&kc);
    free(x);
    free(x64);
}

/* The bounds the pruned strategies rely on: for every row, eb = the exact float64
 * distance to the chosen centroid, and lb2 <= the true squared distance to every
 * other centroid (long double here, independent of the code), once lowered by the
 * documented margin (d + 8) 2^-52; the same for each group's bound (Yinyang's
 * km_group_bounds), and base + km_row_scores <= the true squared distance. Cases:
 * spread data, near ties, and a large common baseline (||x|| >> ||x - c||) where
 * the score form loses most digits; kinds 3 and 4 (spread, baseline) have d >= 64,
 * where the kernel keeps its scores and the group bounds come from them, and kinds
 * 5 and 6 the same with d = 700, three d-blocks summed in float64. Kind 7
 * (d = 4000) makes float32's rounding lose the most it can: rows (1, t, t, ...)
 * and centroids (1, s, s, ...) with t s just under half an ulp of 1, so each FMA
 * after the first rounds the dot product back to 1: it comes out low by t s per
 * term summed after the 1 and the score high by twice that, while ||x||^2 (t =
 * 2^-8: every partial sum exact) loses nothing. Summed in one run over d, the
 * score's error is ~3,900 u, above what the blocked error bound allows (~3,000 u
 * for KM_DBLOCK = 128); with the blocks' sums in float64 it is ~125 u. This kind
 * fails when the kernel sums a whole row in REAL under that bound (seen with
 * KM_DBLOCK = 8192 and err_len still charging 128 + 1). */
static void test_bounds(void **state)
{
    (void)state;
    for (int p = 0; p < 2; p++)
        for (int kind = 0; kind < 9; kind++) {
            const int k = 13, t = 4;
            const int d = kind == 8 ? 16 : kind == 1 ? 24 : kind == 7 ? 4000
                          : kind >= 5 ? 700 : kind >= 3 ? 80 : 37;
            const int64_t n = kind == 7 ? 64 : 700;
            rng_state = 7 + 10 * p + kind;
            double *c64 = malloc(sizeof(double) * k * d), *x64 = malloc(sizeof(double) * n * d);
            const double base = kind == 2 || kind == 4 || kind == 6 ? 1e4 : 0;
            /* kind 8: rows 1e6 times nearer their centroid than the centroids are to
             * each other, where the scores' upper side is far looser than eb may be */
            const double spread = kind == 1 ? 1e-6 : kind == 8 ? 1e-3 : 1.0;
            for (int c = 0; c < k; c++)
                for (int j = 0; j < d; j++)
                    c64[c * d + j] = base + (kind == 1 && c ? c64[j] : 0)
                                     + (unif() - 0.5) * (kind == 1 && c ? spread
                                                         : kind == 8 ? 4000.0 : 4.0);
            for (int64_t i = 0; i < n; i++)
                for (int j = 0; j < d; j++)
                    x64[i * d + j] = c64[(i % k) * d + j] + (unif() - 0.5) * 3.0 * spread;
            for (size_t i = 0; kind == 7 && i < (size_t)n * d; i++) {   /* t s < 2^-24 */
                x64[i] = i % (size_t)d == 0 ? 1.0 : 0x1p-8;
                c64[i % ((size_t)k * d)] = i % (size_t)d == 0 ? 1.0 : 0.98 * 0x1p-16;
            }
            km_precision prec = (km_precision)p;
            void *x = make_data(prec, n, d, x64);
            km_centers kc;
            km_error err = {0};
            km_centers_init(&kc, k, d, prec, &err);
            set_range(&kc, x, n);
            assert_int_equal(km_centers_keep_rows(&kc), 0);
            km_centers_load(&kc, c64);
            km_workspace *ws = km_workspace_new(&kc, n);
            km_acc *acc = km_acc_new(k, d), *ref = km_acc_new(k, d);
            int32_t *lab = malloc(n * sizeof(int32_t)), *lab2 = malloc(n * sizeof(int32_t));
            double *eb = malloc(n * sizeof(double)), *lb2 = malloc(n * sizeof(double));
            double *glb = malloc(sizeof(double) * n * t), *sc = malloc(sizeof(double) * k);
            int group[13], cand[13];
            for (int c = 0; c < k; c++)
                group[c] = (c * 7) % t;
            const km_group_bounds gb = {.group = group, .t = t, .glb = glb};
            for (int64_t i = 0; i < n; i++)
                lab[i] = lab2[i] = -1;
            km_assign_block_bounds(&kc, x, n, lab, acc, ws, eb, lb2, &gb);
            km_assign_naive(&kc, x, n, lab2, ref);
            /* again from the labels just found, the bounds blanked: every row keeps its
               label now, and must still get its bounds (what is checked below) */
            for (int64_t i = 0; i < n; i++)
                eb[i] = lb2[i] = NAN;
            for (int64_t i = 0; i < n * t; i++)
                glb[i] = NAN;
            km_assign_block_bounds(&kc, x, n, lab, acc, ws, eb, lb2, &gb);
            const double margin = (d + 8) * 0x1p-52;
            int tight = 0, gtight = 0, stight = 0, gcount = 0, ttight = 0, fromscores = 0;
            for (int64_t i = 0; i < n; i++) {
                assert_int_equal(lab[i], lab2[i]);           /* the labels are Lloyd's */
                /* eb: an upper bound of the true squared distance to the own centroid
                 * (within km_dist_exact's margin), and within 1/32 of it: the exact
                 * distance, or the scores' upper side where it is that tight */
                const long double own = ref_dist(x, prec, i, d, c64 + (size_t)lab[i] * d);
                if (!((long double)eb[i] * (1 + margin) >= own)
                    || !((long double)eb[i] <= own * (1 + 1.0L / 32) + 1e-300L))
                    fail_msg("prec %d kind %d row %lld: eb %.17g, distance %.17Lg", p, kind,
                             (long long)i, eb[i], own);
                fromscores += eb[i] != km_dist_exact(x, i, d, prec, c64 + (size_t)lab[i] * d);
                long double second = INFINITY;
                for (int c = 0; c < k; c++)
                    if (c != lab[i]) {
                        long double t = ref_dist(x, prec, i, d, c64 + (size_t)c * d);
                        second = t < second ? t : second;
                    }
                if (!((long double)lb2[i] * (1 - margin) <= second))
                    fail_msg("prec %d kind %d row %lld: lb2 %.17g above the runner-up %.17Lg",
                             p, kind, (long long)i, lb2[i], second);
                tight += lb2[i] > 0.5 * (double)second;
                int nc = 0;
                for (int c = 0; c < k; c++)
                    if (c != lab[i])
                        cand[nc++] = c;
                const double sbase = km_row_scores(&kc, (const char *)x
                                                   + (size_t)i * d * (p == 0 ? 4 : 8), cand,
                                                   nc, sc);
                for (int j = 0; j < nc; j++) {
                    const long double t2 = ref_dist(x, prec, i, d, c64 + (size_t)cand[j] * d);
                    if (!((long double)(sbase + sc[j]) <= t2))
                        fail_msg("prec %d kind %d row %lld centroid %d: base + score %.17g "
                                 "above the distance %.17Lg", p, kind, (long long)i, cand[j],
                                 sbase + sc[j], t2);
                    stight += sbase + sc[j] > 0.5 * (double)t2;
                }
                /* both sides, against every centroid (the own one too): top + score
                 * >= the true squared distance, and the same base as before */
                double top, *scall = sc;
                for (int c = 0; c < k; c++)
                    cand[c] = c;
                const double rbase = km_row_scores_range(
                    &kc, (const char *)x + (size_t)i * d * (p == 0 ? 4 : 8), cand, k, scall,
                    &top);
                assert_true(rbase == sbase);
                for (int c = 0; c < k; c++) {
                    const long double t2 = ref_dist(x, prec, i, d, c64 + (size_t)c * d);
                    if (!((long double)(top + scall[c]) >= t2))
                        fail_msg("prec %d kind %d row %lld centroid %d: top + score %.17g "
                                 "below the distance %.17Lg", p, kind, (long long)i, c,
                                 top + scall[c], t2);
                    if (!((long double)(rbase + scall[c]) <= t2))
                        fail_msg("prec %d kind %d row %lld centroid %d: base + score above",
                                 p, kind, (long long)i, c);
                    ttight += top + scall[c] < 1.05 * (double)t2;
                }
                /* km_row_aux: the norm summed in a first call and given back to a second,
                 * the next row asked for meanwhile: the same bits as without; a norm given
                 * is the one used */
                {
                    const size_t rb = (size_t)d * (p == 0 ? 4 : 8);
                    const char *xr = (const char *)x + (size_t)i * rb;
                    const char *nx = (const char *)x + (size_t)((i + 1) % n) * rb;
                    km_row_aux aux = {.xn = NAN, .next = nx, .next_end = nx + rb};
                    double sc2[13], top2;
                    for (int pass = 0; pass < 2; pass++) {
                        const double b2 = km_row_scores_with(&kc, xr, cand, k, sc2, &top2, &aux);
                        assert_true(b2 == rbase && top2 == top);
                        for (int c = 0; c < k; c++)
                            if (memcmp(&sc2[c], &scall[c], sizeof(double)))
                                fail_msg("prec %d kind %d row %lld centroid %d, call %d: "
                                         "score %.17g, without aux %.17g", p, kind,
                                         (long long)i, c, pass, sc2[c], scall[c]);
                        assert_false(isnan(aux.xn));
                    }
                    assert_true(aux.next > nx && aux.next < nx + rb + 64);
                    aux.xn *= 4;
                    assert_true(km_row_scores_with(&kc, xr, cand, k, sc2, NULL, &aux) != rbase);
                }
                for (int g = 0; g < t; g++) {
                    long double gmin = INFINITY;
                    for (int c = 0; c < k; c++)
                        if (c != lab[i] && group[c] == g) {
                            long double t2 = ref_dist(x, prec, i, d, c64 + (size_t)c * d);
                            gmin = t2 < gmin ? t2 : gmin;
                        }
                    const double v = glb[i * t + g];
                    if (!((long double)v * (1 - margin) <= gmin))
                        fail_msg("prec %d kind %d row %lld group %d: bound %.17g above the "
                                 "distance %.17Lg", p, kind, (long long)i, g, v, gmin);
                    if (d < 64 && v != lb2[i])   /* no scores kept: the runner-up bound */
                        fail_msg("kind %d row %lld group %d: %.17g, not lb2 %.17g", kind,
                                 (long long)i, g, v, lb2[i]);
                    gtight += v > 0.5 * (double)gmin;
                    gcount++;
                }
            }
            if (kind == 0 || kind == 3 || kind == 5) {   /* useful where the data allow */
                assert_true(tight > n / 2);
                assert_true(stight > n * (k - 1) / 2);
                assert_true(ttight > n * k / 2);   /* top within 5 %: worth a try */
                assert_true(fromscores > n / 2);   /* eb from the scores, tested above */
            }
            if (kind == 3 || kind == 5)   /* per group, from the scores: sharper than lb2 */
                assert_true(gtight > gcount / 2);
            free(glb); free(sc);
            free(lab); free(lab2); free(eb); free(lb2); free(x); free(x64); free(c64);
            km_acc_free(acc);
            km_acc_free(ref);
            km_workspace_free(ws);
            km_centers_free(&kc);
        }
}

/* Rows handed to the kernel by pointer, in any order, give what their gathered
 * copy gives, bit for bit: labels, bounds and totals (both precisions; widths
 * with and without the 8 x 8 transposition, a partial last row group). */
static void test_rows_by_pointer(void **state)
{
    (void)state;
    /* 5 and 16 (float): the contiguous rows' whole row groups are scored in registers
       (short_group), the rows by pointer as the others: the same bits asked of both */
    const int widths[] = {5, 16, 24, 37, 300};
    const int64_t n = 203;
    const int k = 7;
    for (int p = 0; p < 2; p++)
        for (int w = 0; w < 5; w++) {
            const int d = widths[w];
            const size_t es = p == 0 ? 4 : 8, rb = es * (size_t)d;
            rng_state = 31 + 4 * p + w;
            double *c64 = malloc(sizeof(double) * k * d), *x64 = malloc(sizeof(double) * n * d);
            for (int64_t i = 0; i < (int64_t)k * d; i++)
                c64[i] = (unif() - 0.5) * 4;
            for (int64_t i = 0; i < n * d; i++)
                x64[i] = c64[(i / d) % k * d + i % d] + (unif() - 0.5) * 3;
            km_precision prec = (km_precision)p;
            char *x = make_data(prec, n, d, x64), *y = malloc(rb * n);
            const void **rows = malloc(sizeof(void *) * n);
            for (int64_t i = 0; i < n; i++) {   /* a scrambled order, copied and pointed at */
                const int64_t src = (i * 37) % n;
                memcpy(y + i * rb, x + src * rb, rb);
                rows[i] = x + src * rb;
            }
            km_centers kc;
            km_error err = {0};
            km_centers_init(&kc, k, d, prec, &err);
            set_range(&kc, x, n);
            km_centers_load(&kc, c64);
            km_workspace *ws = km_workspace_new(&kc, n);
            km_acc *a = km_acc_new(k, d), *b = km_acc_new(k, d), *ref = km_acc_new(k, d);
            int32_t *la = malloc(sizeof(int32_t) * n), *lb = malloc(sizeof(int32_t) * n);
            int32_t *lr = malloc(sizeof(int32_t) * n);
            double *ea = malloc(sizeof(double) * n), *eb = malloc(sizeof(double) * n);
            double *ga = malloc(sizeof(double) * n), *gb = malloc(sizeof(double) * n);
            for (int64_t i = 0; i < n; i++)
                la[i] = lb[i] = lr[i] = -1;
            km_assign_block_bounds(&kc, y, n, la, a, ws, ea, ga, NULL);
            km_assign_rows_bounds(&kc, rows, n, lb, b, ws, eb, gb);
            km_assign_naive(&kc, y, n, lr, ref);
            assert_memory_equal(lb, lr, sizeof(int32_t) * n);   /* Lloyd's labels */
            assert_memory_equal(lb, la, sizeof(int32_t) * n);
            assert_memory_equal(eb, ea, sizeof(double) * n);
            assert_memory_equal(gb, ga, sizeof(double) * n);
            assert_memory_equal(b->sums, a->sums, sizeof(km_i128) * k * d);
            assert_memory_equal(b->sq, a->sq, sizeof(km_i128) * k);
            assert_memory_equal(b->counts, a->counts, sizeof(double) * k);
            free(la); free(lb); free(lr); free(ea); free(eb); free(ga); free(gb);
            free(rows); free(x); free(y); free(x64); free(c64);
            km_acc_free(a); km_acc_free(b); km_acc_free(ref);
            km_workspace_free(ws);
            km_centers_free(&kc);
        }
}

/* Values of wildly different magnitude: plain float64 sums depend on the order,
 * the kernel's exact totals must not (any block size, any thread count). */
static void test_order_independent(void **state)
{
    (void)state;
    const int64_t n = 20011;
    const int d = 3, k = 2;
    rng_state = 77;
    double *x = malloc(sizeof(double) * n * d), c[6] = {0, 0, 0, 1e6, 1e6, 1e6};
    for (int64_t i = 0; i < n * d; i++)
        x[i] = (unif() - 0.5) * pow(10.0, (int)(unif() * 14) - 4);
    double fwd = 0, bwd = 0;   /* the premise: order changes a plain sum */
    for (int64_t i = 0; i < n; i++)
        fwd += x[i * d];
    for (int64_t i = n - 1; i >= 0; i--)
        bwd += x[i * d];
    assert_true(fwd != bwd);
    km_centers kc;
    km_error err = {0};
    km_centers_init(&kc, k, d, KM_F64, &err);
    set_range(&kc, x, n);
    km_centers_load(&kc, c);
    int32_t *lab = malloc(sizeof(int32_t) * n);
    km_acc *ref = km_acc_new(k, d), *a = km_acc_new(k, d);
    for (int64_t i = 0; i < n; i++)
        lab[i] = -1;
    fast_pass(&kc, x, n, 16, lab, ref, 0);
    const int64_t blocks[] = {1, 17, 1000, 4096, 100000};
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        for (int b = 0; b < 5; b++) {
            km_acc_clear(a);
            for (int64_t i = 0; i < n; i++)
                lab[i] = -1;
            fast_pass(&kc, x, n, blocks[b], lab, a, 0);
            assert_memory_equal(a->sums, ref->sums, sizeof(km_i128) * k * d);
            assert_memory_equal(a->sq, ref->sq, sizeof(km_i128) * k);
        }
    }
    /* split rows like ranks would, then add the parts */
    km_acc_clear(a);
    for (int64_t i = 0; i < n; i++)
        lab[i] = -1;
    fast_pass(&kc, x, 7001, 64, lab, a, 0);
    fast_pass(&kc, x + 7001 * d, n - 7001, 64, lab + 7001, a, 0);
    assert_memory_equal(a->sums, ref->sums, sizeof(km_i128) * k * d);
    assert_memory_equal(a->sq, ref->sq, sizeof(km_i128) * k);
    /* and through the limb packing an allreduce uses */
    int limbs, bits;
    km_fx_limbs(3, &limbs, &bits);
    double *buf = calloc(km_acc_pack_len(k, d, limbs), sizeof(double));
    double *res = malloc(sizeof(double) * km_acc_len(k, d));
    km_acc_pack(ref, limbs, bits, buf);
    km_acc_unpack(buf, &kc, limbs, bits, res);
    for (int j = 0; j < k * d; j++)
        assert_true(res[j] == km_fx_value(ref->sums[j], kc.xscale[j % d]));
    long double direct = 0;
    for (int64_t i = 0; i < n; i++)
        direct += ref_dist(x, KM_F64, i, d, c + (size_t)lab[i] * d);
    assert_true(fabs(res[km_acc_inertia(k, d)] - (double)direct)
                <= inertia_tol(&kc, lab, n, direct));
    /* through the cache of the last pass: the same bits as without it, while one
     * cluster's totals change (a move: moved says so), then another's centroid,
     * then nothing; packed after the first step only where rows moved, into a buffer
     * that keeps the rest (and last: a cluster that did not move is not written) */
    km_unpack_cache *uc = km_unpack_cache_new(k, d), *uc3 = km_unpack_cache_new(k, d);
    double *res2 = malloc(sizeof(double) * km_acc_len(k, d));
    double *res3 = malloc(sizeof(double) * km_acc_len(k, d));
    double *kept = malloc(sizeof(double) * km_acc_pack_len(k, d, limbs));
    assert_non_null(uc);
    assert_non_null(kept);
    for (int step = 0; step < 4; step++) {
        km_acc_clear_pass(ref);
        if (step == 1) {
            ref->sums[1 * d + 2] += 12345;
            ref->moved[1] = 2;
        }
        if (step == 2) {
            c[0 * d + 1] += 0.25;
            km_centers_load(&kc, c);
        }
        km_acc_pack(ref, limbs, bits, buf);
        if (step == 0) {
            km_acc_pack(ref, limbs, bits, kept);
        } else {
            for (int c2 = 0; c2 < k; c2++)   /* before: all but cluster 1 already right */
                if (c2 != 1)
                    assert_memory_equal(kept + (size_t)c2 * d * limbs, buf + (size_t)c2 * d
                                        * limbs, sizeof(double) * d * limbs);
            km_acc_pack_moves(ref, limbs, bits, kept);
            assert_memory_equal(kept, buf, sizeof(double) * km_acc_pack_len(k, d, limbs));
        }
        km_acc_unpack(buf, &kc, limbs, bits, res);
        km_acc_unpack_cached(kept, &kc, limbs, bits, res2, uc);
        assert_memory_equal(res, res2, sizeof(double) * km_acc_len(k, d));
        /* one rank's shortcut: from the totals themselves, with its cache and without */
        km_acc_unpack_local(ref, &kc, res3, uc3);
        assert_memory_equal(res, res3, sizeof(double) * km_acc_len(k, d));
        km_acc_unpack_local(ref, &kc, res3, NULL);
        assert_memory_equal(res, res3, sizeof(double) * km_acc_len(k, d));
    }
    /* a cluster whose row moved in and out again has the same totals: packed again
     * all the same, and unpacked to the same bits */
    ref->moved[0] = 2;
    km_acc_pack_moves(ref, limbs, bits, kept);
    km_acc_unpack_cached(kept, &kc, limbs, bits, res2, uc);
    assert_memory_equal(res, res2, sizeof(double) * (size_t)(km_acc_moved(res, k, d) - res));
    assert_true(km_acc_moved(res2, k, d)[0] == 2 && km_acc_moved(res2, k, d)[1] == 0);
    /* and pack_moves writes nothing of a cluster that did not move (k = 2 here):
     * poison cluster 1's sums */
    km_acc_clear_pass(ref);
    ref->moved[0] = 1;
    for (int j = 0; j < d * limbs; j++)
        kept[(size_t)1 * d * limbs + j] = -777.0;
    km_acc_pack_moves(ref, limbs, bits, kept);
    for (int j = 0; j < d * limbs; j++)
        assert_true(kept[(size_t)1 * d * limbs + j] == -777.0);
    free(kept);
    km_unpack_cache_free(uc);
    km_unpack_cache_free(uc3);
    free(res2);
    free(res3);
    km_i128 neg[3] = {-((km_i128)1 << 100) - 12345, -1, ((km_i128)1 << 110) + 7}, back[3];
    double nb[3 * 8];
    km_fx_pack(neg, 3, limbs, bits, nb);
    km_fx_unpack(nb, 3, limbs, bits, back);
    assert_memory_equal(neg, back, sizeof neg);
    km_acc_free(ref); km_acc_free(a); free(buf); free(res); free(lab); free(x);
    km_centers_free(&kc);
}

static void test_dist_exact(void **state)
{
    (void)state;
    rng_state = 5;
    const int d = 1001;
    double c[1001], x[1001];
    for (int j = 0; j < d; j++) {
        c[j] = unif() * 100.0;
        x[j] = unif() * 100.0;
    }
    for (int dd = 1; dd <= d; dd += 97) {
        long double ref = ref_dist(x, KM_F64, 0, dd, c);
        double got = km_dist_exact(x, 0, dd, KM_F64, c);
        assert_true(fabsl(got - ref) <= 1e-14L * ref);
    }
}

/* km_dist_exact_many: each result the bits km_dist_exact gives for the same row and
 * centroid (the pruned strategies compare the two), and within rounding of the long
 * double reference, for any count (groups of four, padded pairs and triples, one
 * alone), centroids in any order and repeated, float32 and float64 rows, and row
 * lengths with and without a tail past the last 8. */
static void test_dist_exact_many(void **state)
{
    (void)state;
    rng_state = 11;
    enum { D = 1001, K = 13 };
    static double c[K * D], x64[D];
    static float x32[D];
    for (int j = 0; j < K * D; j++)
        c[j] = unif() * 10.0 - 5.0;
    for (int j = 0; j < D; j++) {
        x32[j] = (float)(unif() * 10.0 - 5.0);
        x64[j] = unif() * 10.0 - 5.0;
    }
    const int dims[] = {1, 7, 8, 9, 16, 100, 127, 128, 131, 1001};
    int idx[K];
    for (int q = 0; q < K; q++)
        idx[q] = (q * 5 + 3) % K;
    idx[K - 1] = idx[0];   /* a repeat */
    for (int p = 0; p < 2; p++) {
        const km_precision prec = p ? KM_F64 : KM_F32;
        const void *x = p ? (const void *)x64 : (const void *)x32;
        for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
            const int d = dims[di];
            /* the centroids as K rows d long: centroid c at cd + c d */
            static double cd[K * D];
            for (int r = 0; r < K; r++)
                memcpy(cd + (size_t)r * d, c + (size_t)r * D, sizeof(double) * d);
            for (int n = 1; n <= K; n++) {
                double out[K];
                for (int q = 0; q < K; q++)
                    out[q] = -1;
                km_dist_exact_many(x, d, prec, cd, idx, n, out);
                for (int q = 0; q < n; q++) {
                    const double *cq = cd + (size_t)idx[q] * d;
                    assert_true(out[q] == km_dist_exact(x, 0, d, prec, cq));
                    const long double ref = ref_dist(x, prec, 0, d, cq);
                    assert_true(fabsl(out[q] - ref) <= 1e-14L * ref + 1e-300L);
                }
                for (int q = n; q < K; q++)
                    assert_true(out[q] == -1);   /* nothing written past n */
            }
        }
    }
}

/* k-means++'s step helpers against their definitions, with km_dist_exact taken
 * for every row and candidate: the reductions as exact integers, the marks of
 * the rows each candidate lowers (shift > 0), D and near after the updates.
 * Clustered rows, so the thresholds skip rows; d >= 128 takes the fast kernel's
 * bound too, and an offset makes that bound loose; two candidates are a row and
 * a chosen centroid (distance 0). */
static void check_pp_step(int d, km_precision prec, double offset, int shift)
{
    const int64_t n = 600, n1 = 250;   /* two chunks */
    const int s = 5, m = 6;
    double *x64 = malloc(sizeof(double) * n * d), *chosen = malloc(sizeof(double) * s * d);
    double *cand = malloc(sizeof(double) * m * d), *D = malloc(sizeof(double) * n);
    double *thr = malloc(sizeof(double) * s * (m + 1)), *D0 = malloc(sizeof(double) * n);
    int32_t *near = malloc(sizeof(int32_t) * n), *near0 = malloc(sizeof(int32_t) * n);
    for (int a = 0; a < s; a++)
        for (int j = 0; j < d; j++)
            chosen[a * d + j] = offset + 8.0 * unif();
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < d; j++)
            x64[i * d + j] = chosen[(i % s) * d + j] + unif() - 0.5;
    void *x = make_data(prec, n, d, x64);
    for (int64_t i = 0; i < n; i++)   /* as stored */
        for (int j = 0; j < d; j++)
            x64[i * d + j] = (double)value(x, prec, (size_t)i * d + j);
    memcpy(cand, x64 + 17 * d, sizeof(double) * d);
    memcpy(cand + d, chosen + 2 * d, sizeof(double) * d);
    for (int t = 2; t < m; t++)   /* near rows of clusters 1 and 3 only: 0 and 4 are far */
        for (int j = 0; j < d; j++)
            cand[t * d + j] = x64[(size_t)(5 * t + 1 + 2 * (t % 2)) * d + j] + 0.3 * unif();
    double maxD = 0;
    for (int64_t i = 0; i < n; i++) {
        D[i] = INFINITY;
        for (int a = 0; a < s; a++) {
            double e = km_dist_exact(x, i, d, prec, chosen + a * d);
            if (e < D[i]) {
                D[i] = e;
                near[i] = a;
            }
        }
        maxD = D[i] > maxD ? D[i] : maxD;
    }
    const double q = ldexp(1.0 / maxD, 52);
    memcpy(near0, near, sizeof(int32_t) * n);
    km_centers cc;
    km_error err = {0};
    assert_int_equal(km_centers_init(&cc, m, d, prec, &err), 0);
    assert_int_equal(km_centers_keep_rows(&cc), 0);
    km_centers_load(&cc, cand);
    km_pp_thresholds(chosen, s, &cc, thr);
    unsigned __int128 red[6] = {0};
    const size_t es = prec == KM_F32 ? 4 : 8;
    double *low = shift ? malloc(sizeof(double) * n * m) : NULL;
    assert_int_equal(km_pp_reductions(&cc, x, n1, D, near, shift, thr, q, red, low), 0);
    assert_int_equal(km_pp_reductions(&cc, (char *)x + n1 * d * es, n - n1, D + n1, near + n1,
                                      shift, thr, q, red, low ? low + n1 * m : NULL), 0);
    const int32_t mask = shift ? (1 << shift) - 1 : -1;
    int64_t skippable = 0, far = 0;
    for (int64_t i = 0; i < n; i++)
        far += D[i] <= thr[(near[i] & mask) * (m + 1) + m];
    assert_true(far > 0);   /* rows the thresholds skip whole */
    for (int t = 0; t < m; t++) {
        unsigned __int128 ref = 0;
        for (int64_t i = 0; i < n; i++) {
            double e = km_dist_exact(x, i, d, prec, cand + t * d);
            ref += (uint64_t)(D[i] * q) - (uint64_t)((e < D[i] ? e : D[i]) * q);
            const int32_t a = near[i] & mask;
            assert_int_equal(a, near0[i]);
            if (shift)
                assert_int_equal((uint32_t)near[i] >> shift >> t & 1, e < D[i]);
            if (D[i] <= thr[a * (m + 1) + t]) {   /* the thresholds' claim */
                assert_true(e >= D[i]);
                skippable++;
            }
            assert_true(thr[a * (m + 1) + m] <= thr[a * (m + 1) + t]);
        }
        assert_true(red[t] == ref);
    }
    assert_true(red[0] > 0);                       /* row 17 itself: distance 0 */
    assert_true(skippable > (int64_t)n * m / 2);   /* clustered: most pairs skipped */
    /* candidate 2 becomes centroid s (the marks are those of the D above); with the
     * marks, the E kept by the reductions give the same D and near bit for bit */
    memcpy(D0, D, sizeof(double) * n);
    double *Dk = malloc(sizeof(double) * n);
    int32_t *neark = malloc(sizeof(int32_t) * n);
    memcpy(Dk, D, sizeof(double) * n);
    memcpy(neark, near, sizeof(int32_t) * n);
    km_pp_lower(&cc, 2, x, n, thr, s, D, near, shift);
    if (shift) {
        km_pp_lower_kept(m, 2, n, low, s, Dk, neark, shift);
        assert_memory_equal(Dk, D, sizeof(double) * n);
        assert_memory_equal(neark, near, sizeof(int32_t) * n);
    }
    free(Dk);
    free(neark);
    free(low);
    for (int64_t i = 0; i < n; i++) {
        double e = km_dist_exact(x, i, d, prec, cand + 2 * d);
        assert_true(D[i] == (e < D0[i] ? e : D0[i]));
        if (e < D0[i])
            assert_int_equal(near[i], s);
        else
            assert_int_equal(near[i] & mask, near0[i]);
    }
    km_centers_free(&cc);
    free(x64); free(chosen); free(cand); free(D); free(thr); free(near); free(D0); free(near0);
    free(x);
}

static void test_pp_step(void **state)
{
    (void)state;
    rng_state = 23;
    for (int shift = 0; shift <= 3; shift += 3) {   /* 3 bits: indices up to s = 5 */
        check_pp_step(7, KM_F64, 0.0, shift);
        check_pp_step(40, KM_F32, 0.0, shift);
        check_pp_step(200, KM_F32, 0.0, shift);
        check_pp_step(200, KM_F32, 1000.0, shift);
        check_pp_step(130, KM_F64, 3.0, shift);
    }
}

static void test_helpers(void **state)
{
    (void)state;
    const int64_t n = 333;
    const int d = 7, k = 5;
    rng_state = 17;
    double *x = malloc(sizeof(double) * n * d), c[5 * 7];
    for (size_t i = 0; i < (size_t)n * d; i++)
        x[i] = unif();
    for (int i = 0; i < k * d; i++)
        c[i] = unif();

    /* every row's nearest of the first s centres (k-means++'s D and near) against
       brute force; centre 3 is centre 1 again: the tie goes to 1 */
    memcpy(c + 3 * d, c + 1 * d, sizeof(double) * d);
    double *D = malloc(sizeof(double) * n);
    int32_t *near = malloc(sizeof(int32_t) * n);
    int ties = 0;
    for (int s = 1; s <= k; s++) {
        km_pp_nearest(x, n, d, KM_F64, c, s, D, near);
        for (int64_t i = 0; i < n; i++) {
            long double best = INFINITY;
            int a = 0;
            for (int t = 0; t < s; t++) {
                long double e = ref_dist(x, KM_F64, i, d, c + t * d);
                if (e < best * (1 - 1e-13L)) {
                    best = e;
                    a = t;
                }
            }
            assert_true(fabsl(D[i] - best) <= 1e-14L * best);
            assert_int_equal(near[i], a);
            assert_true(D[i] == km_dist_exact(x, i, d, KM_F64, c + (size_t)near[i] * d));
            ties += s > 3 && a == 1;
        }
    }
    assert_true(ties > 0);   /* the tie was met */
    free(near);

    /* farthest rows from their centroid: distance descending, row ascending */
    int32_t *lab = malloc(sizeof(int32_t) * n);
    for (int64_t i = 0; i < n; i++)
        lab[i] = (int32_t)(i % k);
    memcpy(x + 50 * d, x + 10 * d, sizeof(double) * d);   /* rows 10 and 50... */
    lab[50] = lab[10];                                     /* ...an exact tie pair */
    double fd[6] = {-1, -1, -1, -1, -1, -1};
    int64_t fr[6] = {-1, -1, -1, -1, -1, -1};
    const int64_t h = 30;   /* two chunks, the tie pair on either side */
    km_farthest(x + h * d, n - h, d, KM_F64, c, lab + h, h, 6, fd, fr);
    km_farthest(x, h, d, KM_F64, c, lab, 0, 6, fd, fr);
    double prev = INFINITY;
    for (int m = 0; m < 6; m++) {
        double e = km_dist_exact(x, fr[m], d, KM_F64, c + lab[fr[m]] * d);
        assert_true(e == fd[m]);
        assert_true(e <= prev);
        prev = e;
        int64_t beaten = 0;   /* rows strictly ahead in the order must all be listed */
        for (int64_t i = 0; i < n; i++) {
            double ei = km_dist_exact(x, i, d, KM_F64, c + lab[i] * d);
            if (ei > e || (ei == e && i < fr[m]))
                beaten++;
        }
        assert_int_equal(beaten, m);
    }
    int64_t fr_few[3] = {-1, -1, -1};
    double fd_few[3] = {-1, -1, -1};
    km_farthest(x, 1, d, KM_F64, c, lab, 0, 3, fd_few, fr_few);
    assert_int_equal(fr_few[0], 0);
    assert_int_equal(fr_few[1], -1);

    /* non-finite detection names the first bad row and its column */
    int col = -1;
    assert_int_equal(km_find_nonfinite(x, n, d, KM_F64, &col), -1);
    x[200 * d + 3] = NAN;
    x[250 * d + 1] = INFINITY;
    assert_int_equal(km_find_nonfinite(x, n, d, KM_F64, &col), 200);
    assert_int_equal(col, 3);
    float xf[6] = {1, 2, 3, 4, -INFINITY, 6};
    assert_int_equal(km_find_nonfinite(xf, 3, 2, KM_F32, &col), 2);
    assert_int_equal(col, 0);
    x[200 * d + 3] = 0.5;
    x[250 * d + 1] = 0.5;

    /* exact column totals: match long double, and do not depend on the row split */
    double maxabs[7] = {0}, scale[7], cen[7];
    km_column_maxabs(x, n, d, KM_F64, maxabs);
    for (int j = 0; j < d; j++)
        scale[j] = km_fx_scale(maxabs[j], KM_FX_TOP);
    km_i128 tot[7] = {0}, part[7] = {0};
    assert_int_equal(km_column_fixed(x, n, d, KM_F64, NULL, scale, tot), 0);
    assert_int_equal(km_column_fixed(x, 100, d, KM_F64, NULL, scale, part), 0);
    assert_int_equal(km_column_fixed(x + 100 * d, n - 100, d, KM_F64, NULL, scale, part), 0);
    assert_memory_equal(tot, part, sizeof tot);
    for (int j = 0; j < d; j++) {
        long double s = 0;
        for (int64_t i = 0; i < n; i++)
            s += x[i * d + j];
        assert_true(fabsl(km_fx_value(tot[j], scale[j]) - s) <= n * 0.5 / scale[j]);
        cen[j] = (double)(s / n);
        scale[j] = km_fx_scale(4 * maxabs[j] * maxabs[j], KM_FX_TOP);
    }
    memset(tot, 0, sizeof tot);
    assert_int_equal(km_column_fixed(x, n, d, KM_F64, cen, scale, tot), 0);
    for (int j = 0; j < d; j++) {
        long double s = 0;
        for (int64_t i = 0; i < n; i++)
            s += (x[i * d + j] - cen[j]) * (x[i * d + j] - cen[j]);
        assert_true(fabsl(km_fx_value(tot[j], scale[j]) - s) <= n * 0.5 / scale[j] + 1e-13L * s);
    }
    free(x); free(D); free(lab);
}

/* The pruned strategies' outward rounding to float (bounds.h): km_up_f(v) is the
 * least float >= v, km_down_f(v) the greatest float <= v, with the stated ends
 * (checked against nextafterf, independent of the bit arithmetic). */
static void test_outward_rounding(void **state)
{
    (void)state;
    rng_state = 99;
    for (int i = 0; i < 20000; i++) {
        const double v = i < 10000 ? unif() * pow(2.0, (int)(unif() * 250) - 140)
                                   : (double)(float)(unif() * 1e3) * (i % 2 ? 1 : 1 + 0x1p-40);
        const float up = km_up_f(v), dn = km_down_f(v);
        if (v <= FLT_MAX) {
            assert_true((double)up >= v && (double)nextafterf(up, 0) < v);
        } else {
            assert_true(isinf(up));
        }
        if (v > 0 && v <= FLT_MAX) {
            assert_true((double)dn <= v && (double)nextafterf(dn, INFINITY) > v);
        }
    }
    assert_true(km_up_f(0) == 0 && km_down_f(0) == 0);
    assert_true(isinf(km_up_f(NAN)) && isinf(km_up_f(-1.0)) && isinf(km_up_f(INFINITY)));
    assert_true(km_down_f(NAN) == 0 && km_down_f(-1.0) == 0);
    assert_true(km_down_f(INFINITY) == FLT_MAX && km_down_f(1e300) == FLT_MAX);
    assert_true(km_down_f(DBL_MAX) == FLT_MAX && isinf(km_up_f(1e300)));
    /* km_up_sf: the least float >= v for either sign */
    for (int i = 0; i < 20000; i++) {
        const double m = i < 10000 ? unif() * pow(2.0, (int)(unif() * 250) - 140)
                                   : (double)(float)(unif() * 1e3) * (i % 4 < 2 ? 1 : 1 + 0x1p-40);
        const double v = i % 2 ? -m : m;
        const float up = km_up_sf(v);
        if (v <= FLT_MAX) {
            assert_true((double)up >= v && (double)nextafterf(up, -INFINITY) < v);
        } else {
            assert_true(isinf(up));
        }
    }
    assert_true(isinf(km_up_sf(NAN)) && isinf(km_up_sf(INFINITY)) && km_up_sf(0) == 0);
    assert_true(km_up_sf(-1e300) == -FLT_MAX && isinf(km_up_sf(-INFINITY)));
    assert_true(km_up_sf(-1e-60) == 0 && km_up_sf(1e-60) > 0);
}

/* km_fx_to_double / km_fx_to_ld against the compiler's own conversions of
 * __int128 (libgcc), bit for bit: random magnitudes, both signs, values exactly
 * half-way between two doubles or two long doubles (ties to even, odd and even
 * mantissas), a bit above and below them, and the edges of the int64 fast path. */
static void check_fx_conv(km_i128 v)
{
    const double d = km_fx_to_double(v), ref = (double)v;
    const long double l = km_fx_to_ld(v), lref = (long double)v;
    assert_memory_equal(&d, &ref, sizeof d);
    assert_true(l == lref);
}

static void test_fx_conversions(void **state)
{
    (void)state;
    rng_state = 123;
    for (int i = 0; i < 200000; i++) {
        const int bits = (int)(unif() * 126);
        km_i128 v = 0;
        for (int b = 0; b < bits; b += 30)
            v = (v << 30) | (km_i128)(uint64_t)(unif() * 0x1p30);
        v &= ((km_i128)1 << bits) - 1;
        check_fx_conv(v);
        check_fx_conv(-v);
    }
    for (int s = 1; s < 72; s++) {   /* m 2^s + 2^(s-1): half-way when m has 53 bits */
        for (int i = 0; i < 200; i++) {
            const km_i128 m = ((km_i128)1 << 52) | (km_i128)(uint64_t)(unif() * 0x1p52);
            const km_i128 half = (m << s) | ((km_i128)1 << (s - 1));
            for (int e = -1; e <= 1; e++) {
                check_fx_conv(half + e);
                check_fx_conv(-(half + e));
            }
        }
    }
    for (int s = 1; s < 62; s++) {   /* the same for long double's 64-bit mantissa */
        for (int i = 0; i < 100; i++) {
            const km_i128 m = ((km_i128)1 << 63) | (km_i128)(uint64_t)(unif() * 0x1p62)
                              | (km_i128)(i & 1);
            const km_i128 half = (m << s) | ((km_i128)1 << (s - 1));
            for (int e = -1; e <= 1; e++) {
                check_fx_conv(half + e);
                check_fx_conv(-(half + e));
            }
        }
    }
    const km_i128 one = 1;
    const km_i128 edges[] = {0, 1, (one << 63) - 1, one << 63, (one << 63) + 1, one << 64,
                             (one << 64) - 1, (one << 64) + 1, (one << 126) - 1, one << 125};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        check_fx_conv(edges[i]);
        check_fx_conv(-edges[i]);
    }
    /* and back: km_fx_from_int_double against the compiler's (km_i128) of integral
     * doubles of every magnitude up to 2^126, both signs, and the powers of two */
    for (int i = 0; i < 200000; i++) {
        const double v = nearbyint(ldexp(unif() + 0.5, (int)(unif() * 127) - 1));
        assert_true(km_fx_from_int_double(v) == (km_i128)v);
        assert_true(km_fx_from_int_double(-v) == (km_i128)-v);
    }
    for (int e = 0; e < 127; e++) {
        const double p = ldexp(1.0, e);
        assert_true(km_fx_from_int_double(p) == (km_i128)1 << e);
        assert_true(km_fx_from_int_double(-p) == -((km_i128)1 << e));
        assert_true(km_fx_from_int_double(p - 1) == ((km_i128)1 << e) - (e <= 53 ? 1 : 0));
    }
    assert_true(km_fx_from_int_double(0.0) == 0 && km_fx_from_int_double(-0.0) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_read_some),
        cmocka_unit_test(test_default_block),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_near_ties),
        cmocka_unit_test(test_group_near_ties),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_rows_by_pointer),
        cmocka_unit_test(test_order_independent),
        cmocka_unit_test(test_centers_update),
        cmocka_unit_test(test_dist_exact),
        cmocka_unit_test(test_dist_exact_many),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_pp_step),
        cmocka_unit_test(test_outward_rounding),
        cmocka_unit_test(test_fx_conversions),
    };
    return cmocka_run_group_tests_name("kernels", tests, NULL, NULL);
}
