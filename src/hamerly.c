/* hamerly.c — the Hamerly iteration strategy (see hamerly.h).
 *
 * Why the labels are Lloyd's. Lloyd's label of x is the argmin over c of
 * E(x, c) = km_dist_exact(x, c) (lowest index on ties); the fast kernel returns
 * exactly that. E is within a relative e = (d + 8) 2^-52 of the true squared
 * distance D^2 (a float64 sum of d non-negative rounded terms). The bounds u, l
 * hold for the true distances D: u >= D(x, c_a), l <= D(x, c_j) for all j != a,
 * kept true across passes by the triangle inequality with upper bounds of the
 * centroid drifts, every rounding pushed the safe way (M below, floats rounded
 * up for u and down for l). If u (1 + e) < z (1 - e), z = max(l, sep_a - u),
 * then E(x, c_a) <= u^2 (1 + e) < z^2 (1 - e) <= E(x, c_j) for every j != a:
 * a is the strict argmin of E, so Lloyd's kernel would choose it too. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif
#include "bounds.h"
#include "hamerly.h"
#include "walk.h"

#define KM_HAMERLY_SEP_MAX_K 4096
/* Up to this k, from this d on, the centroids' pairwise distances are kept (k x k
 * doubles, 8 MB at most) and a pass recomputes only the pairs with a centroid that
 * moved: late passes move few. 70k x 784, k = 256 spent half its fit recomputing
 * all of them (results/BENCH.md, eighteenth step); at d = 3 (2M x 3, k = 512)
 * writing and reading the table cost more than the distances. */
#define KM_HAMERLY_PAIRS_MAX_K 1024
#define KM_HAMERLY_PAIRS_MIN_D 128
/* From this d on (with the near lists), a row also keeps its runner-up and a bound
 * of its distance to it, which moves by that centroid's drift alone: the lower
 * bound of the others then only has to stay above the upper one, and a row on
 * the border of two clusters is not in doubt whenever some centroid near its
 * own moves (measured: results/BENCH.md, eighteenth step). */
#define KM_HAMERLY_SEC_MIN_D 128
/* After a pass that skipped less than this share of the distances (over all ranks),
 * the rows in doubt of the next go to the kernel without their own exact distance
 * first: on uniform data (40,000 x 784, k = 200, 36 passes, 1-63 % skipped) that
 * distance seldom settled a row, and Hamerly took 1.67 s to Lloyd's 1.60-1.66;
 * without it 1.60 (results/BENCH.md, eighteenth step). Where most is skipped
 * (70k x 784, k = 256; 2M x 3, k = 512) nothing changes. */
#define KM_HAMERLY_TIGHTEN_MIN 0.2
#define KM_HAMERLY_NEAR 32   /* nearest other centroids listed per centroid */
/* At most this many of them computed for one row, else the kernel does all k.
 * Measured (fit s, 2 threads; results/BENCH.md): 2M x 3, k = 512: 19.3 with none,
 * 13.4 with 8, 11.6 with 16, 13.2 with all 31; 70k x 784, k = 256: 8.7 -> 4.8 with
 * 16. */
#define KM_HAMERLY_NEAR_MAX 16
/* The lists are used only when a row's k distances in the kernel cost more than
 * k (d + 10) >= KM_HAMERLY_NEAR_KD: below it the per-row scalar work of the lists
 * costs more than the kernel's blocks. Measured on Zen 3 (one thread each, run side
 * by side; BENCH.md): with the lists, 1M x 32, k = 64 (2688) and 2M x 3, k = 128
 * (1664) were 2-18 % slower; 2M x 3, k = 512 (6656) and 1M x 32, k = 256 (10752)
 * 35-38 % faster. */
#define KM_HAMERLY_NEAR_KD 4096
/* From this k on, a row's lower bound falls by the largest drift among the centroids
 * listed near its own, and is capped by the distance past the list (moved_lower),
 * not by the largest drift of all k. Its two more table lookups a row a pass cost
 * more than they save below it. Measured (fit s, 2 threads, alternating runs, off /
 * on; BENCH.md): 2M x 3, k = 64 1.45 / 1.65, k = 128 2.66 / 2.73-2.76, k = 256
 * 4.57-4.64 / 4.22-4.35, k = 512 7.15-7.58 / 6.35-6.42; 1M x 32, k = 256 (150
 * passes) 2.36-2.41 / 2.06-2.11. */
#define KM_HAMERLY_LIST_K 256
/* Up to this k, with AVX-512, the pass over every row looks its centroid's values up
 * in registers (mark_table) rather than gathering them from memory. */
#define KM_HAMERLY_TABLE_K 64

typedef struct {
    void *x;          /* gathered rows that need every distance (copies) */
    const void **xp;  /* or where they are (by_pointer) */
    int32_t *lab;     /* their labels */
    int64_t *row;     /* their local row numbers */
    double *eb, *lb2; /* the kernel's bounds: own distance (above), runner-up (below) */
    int64_t n;
    double *lb;       /* the moved lower bounds of a block's rows in doubt */
    double *l3;       /* with the runner-ups: of all but the label and sec (lb: of all
                         but the label) */
    int64_t *rest;    /* those rows */
    unsigned char *doubt; /* a block's rows (+ 8): 1 when the moved bounds leave it in doubt */
} gather_buf;

struct km_hamerly {
    int64_t rows;
    int k, d, nt;
    int64_t cap;      /* rows per gather buffer (the kernel's block) */
    size_t esize;
    /* A row's bounds are kept relative to sums over the passes so far: its upper
     * bound is upper[i] + ucum_f[label], its lower bound lower[i] - lcum_f
     * (lower[i] itself with the lists, list_decay). A row the moved bounds keep in
     * its cluster keeps its stored values: the pass over every row reads 12 bytes
     * a row and writes none, where moving them in place wrote 8 more. */
    float *upper;     /* rows: + ucum_f[label] >= D(x, c_label) */
    float *lower;     /* rows: - lcum_f <= D(x, c_j) for every j != label */
    double *ucum;     /* k: >= the sum of c's drifts over the passes */
    float *ucum_f;    /* the same rounded up */
    /* >= the sum of the largest drift of a pass (0 with the lists: the rows' lower
     * bounds are moved in place). Hamerly's lower bound falls by the largest drift
     * of the centroids other than the row's own, which takes a table lookup a row:
     * by the largest of all, 1M x 32, k = 64 skipped 91.929 % of the distances in
     * place of 91.940 %, 2M x 3, k = 128 90.271 % in place of 90.276 %. */
    double lcum;
    float lcum_f;
    double *prev;     /* k x d: the centroids of the last pass */
    double *drift;    /* k: >= D(c_new, c_prev) */
    double *sep;      /* k: <= min over j != c of D(c, c_j) (0 when not computed) */
    float *drift_f;   /* k: drift rounded up to a float */
    float *sep_f;     /* k: sep rounded down */
    int *near;        /* k x KM_HAMERLY_NEAR: each centroid's nearest others, nearest
                         first (nnear of them), or NULL */
    double *near_lo;  /* the same: <= their distances to it, ascending (the last:
                         every centroid not listed is at least as far) */
    int nnear;        /* listed per centroid: min(k - 1, KM_HAMERLY_NEAR); 0: none */
    int near_max;     /* at most this many computed for one row: 0 or KM_HAMERLY_NEAR_MAX */
    int list_decay;   /* lower bounds move by the drifts in the lists (KM_HAMERLY_LIST_K) */
    float *ldrift_f;  /* k: >= the drift of every centroid in c's list, rounded up */
    float *far_f;     /* k: <= D(c, c_j) for every c_j not in c's list, rounded down;
                         +inf when the list holds every other centroid */
    int valid;        /* the bounds hold for prev */
    int by_pointer;   /* this pass gathers rows in doubt by pointer (see km_hamerly_pass) */
    int tighten;      /* rows in doubt first take their own exact distance (and the
                         near lists); 0 after a pass that skipped little */
    int full_pass;    /* the last pass computed every distance (no bounds yet) */
    gather_buf *buf;  /* per thread */
    /* With the runner-ups (sec != NULL, KM_HAMERLY_SEC_MIN_D), lower[i] is a bound
     * for every j but the label and sec[i], and lsec[i] - ucum_f[sec[i]] one of
     * D(x, c_sec) (the drift sums of upper's). lsec[i] = +inf: no runner-up (sec[i]
     * is 0 then), lower is for every j but the label. */
    int32_t *sec;
    float *lsec;
    double *pair;     /* k x k: <= D(c_i, c_j) of prev's centroids (symmetric, the
                         diagonal unused) when pair_ok: sqrt(E) (1 - m)^2, or for a
                         pair beyond the lists' reach less than that; NULL without
                         the lists, above KM_HAMERLY_PAIRS_MAX_K or below
                         KM_HAMERLY_PAIRS_MIN_D */
    int pair_ok;
    int *pair_js;     /* k a thread: the pairs of one centroid to compute */
    double *pair_es;  /* k a thread: their E */
};

#define KM_HAMERLY_AHEAD 8   /* rows in doubt fetched ahead of their exact distance */

static inline double max2d(double a, double b)
{
    return a > b ? a : b;   /* b on NaN: z = l then, never larger than the truth */
}

/* Outward factor for a float64 sum of bounds (within a relative 2^-53 of the
 * true one). */
#define KM_SHRINK (1 - 0x1p-50)

/* The test of every row's moved bounds runs in float32, 8 rows a vector; each
 * result is pushed outward by more than its roundings can have moved it. A
 * float sum or difference of normal floats is within a relative 2^-24 of the
 * truth (a difference that lands below the normal range is exact), so
 * fl(fl(a + b) (1 + 2^-22)) >= (a + b) (1 - 2^-24)^2 (1 + 2^-22) > a + b, and
 * the same downward. Results below 2^-100 are raised by 2^-99 (upper) or
 * replaced by 0 (lower), so u >= 2^-100 and a row is kept only by a z above u:
 * the relative bounds never meet the subnormal range. The kept test
 * fl(u (1 + 2^-20)) < fl(z (1 - 2^-20)) implies u (1 + e) < z (1 - e) for any
 * margin e < 2^-21 (km_bound_margin(d) is, for d < 2^30). */
#define KM_UP_F (1 + 0x1p-22f)
#define KM_DOWN_F (1 - 0x1p-22f)
#define KM_TINY_F 0x1p-100f

/* >= upper + drift (NaN stays NaN: the row is then never kept). The raise is
 * arithmetic: as a select (u < tiny ? 2 tiny : u) GCC 12 left mark_block's loop
 * scalar ("control flow in loop"), though the loop is written to vectorise. */
static inline float moved_upper_f(float upper, float drift)
{
    const float u = (upper + drift) * KM_UP_F;
    return u + (float)(u < KM_TINY_F) * (2 * KM_TINY_F);
}

/* <= lower - by, and >= 0. */
static inline float moved_lower_f(float lower, float by)
{
    const float l = (lower - by) * KM_DOWN_F;
    return l > KM_TINY_F ? l : 0;
}

/* <= every D(x, c_j), j != a, now, from l <= each of them before the centroids
 * moved, u >= D(x, c_a) now, ldrift >= the drift of each centroid listed near c_a
 * now, and far <= D(c_a, c_j) for every c_j not listed now: a listed c_j is at
 * least l - ldrift away, one not listed at least far - u (triangle inequality), so
 * a row's bound falls by the largest drift among 32 centroids, not among all k.
 * 2M x 3, k = 512, 300 passes: rows in doubt after the moved bounds fell from
 * 16.9 % to 13.0 % of the rows a pass, those the exact distance to their own
 * centroid left in doubt from 11.3 % to 6.5 %. */
static inline float moved_lower(float l, float ldrift, float far, float u)
{
    const float a = moved_lower_f(l, ldrift), b = moved_lower_f(far, u);
    return a < b ? a : b;
}

/* Every j != a is farther than a when u (1 + e) < max(l, sep_a - u) (1 - e). */
static inline int kept_f(float u, float l, float sep)
{
    const float s = (sep - u) * KM_DOWN_F;
    return u * (1 + 0x1p-20f) < (l > s ? l : s) * (1 - 0x1p-20f);
}

size_t km_hamerly_bytes(int k, int d, int64_t rows, int threads, int64_t block_rows,
                        km_precision prec)
{
    const size_t esize = prec == KM_F32 ? 4 : 8;
    return 2 * sizeof(float) * (size_t)rows + sizeof(double) * ((size_t)k * d + 7 * (size_t)k)
           + 12 * (size_t)k * KM_HAMERLY_NEAR
           + ((double)k * (d + 10) >= KM_HAMERLY_NEAR_KD && d >= KM_HAMERLY_SEC_MIN_D
              ? 8 * (size_t)rows : 0)
           + (k <= KM_HAMERLY_PAIRS_MAX_K && d >= KM_HAMERLY_PAIRS_MIN_D
              ? sizeof(double) * (size_t)k * (size_t)(k + 2 * threads) : 0)
           + (size_t)threads * (size_t)block_rows * ((size_t)d * esize + 4 + 8 * 6 + 1);
}

void km_hamerly_free(km_hamerly *h)
{
    if (!h)
        return;
    for (int t = 0; h->buf && t < h->nt; t++) {
        free(h->buf[t].x);
        free(h->buf[t].xp);
        free(h->buf[t].lab);
        free(h->buf[t].row);
        free(h->buf[t].eb);
        free(h->buf[t].lb2);
        free(h->buf[t].lb);
        free(h->buf[t].l3);
        free(h->buf[t].rest);
        free(h->buf[t].doubt);
    }
    free(h->buf);
    free(h->upper);
    free(h->lower);
    free(h->prev);
    free(h->drift);
    free(h->sep);
    free(h->near);
    free(h->near_lo);
    free(h->pair);
    free(h->sec);
    free(h->lsec);
    free(h->pair_js);
    free(h->pair_es);
    free(h->drift_f);
    free(h->sep_f);
    free(h->ldrift_f);
    free(h->far_f);
    free(h->ucum);
    free(h->ucum_f);
    free(h);
}

km_hamerly *km_hamerly_new(const km_centers *kc, int64_t rows, km_threads *th)
{
    km_hamerly *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->rows = rows;
    h->k = kc->k;
    h->d = kc->d;
    h->nt = km_threads_count(th);
    h->cap = km_threads_block_rows(th);
    h->esize = kc->prec == KM_F32 ? 4 : 8;
    const size_t n = rows > 0 ? (size_t)rows : 1;
    h->upper = malloc(sizeof(float) * n);
    h->lower = malloc(sizeof(float) * n);
    h->prev = malloc(sizeof(double) * (size_t)h->k * h->d);
    h->drift = malloc(sizeof(double) * (size_t)h->k);
    h->sep = malloc(sizeof(double) * (size_t)h->k);
    h->nnear = h->k <= KM_HAMERLY_SEP_MAX_K ? (h->k - 1 < KM_HAMERLY_NEAR ? h->k - 1
                                                                          : KM_HAMERLY_NEAR) : 0;
    h->near_max = (double)h->k * (h->d + 10) >= KM_HAMERLY_NEAR_KD ? KM_HAMERLY_NEAR_MAX : 0;
    h->list_decay = h->nnear > 0 && h->k >= KM_HAMERLY_LIST_K;
    h->tighten = 1;
    h->near = malloc(sizeof(int) * (size_t)h->k * KM_HAMERLY_NEAR);
    h->near_lo = malloc(sizeof(double) * (size_t)h->k * KM_HAMERLY_NEAR);
    const int pairs = h->nnear > 0 && h->k <= KM_HAMERLY_PAIRS_MAX_K
                      && h->d >= KM_HAMERLY_PAIRS_MIN_D;
    h->pair = pairs ? malloc(sizeof(double) * (size_t)h->k * (size_t)h->k) : NULL;
    if (h->near_max && h->d >= KM_HAMERLY_SEC_MIN_D) {
        h->sec = malloc(sizeof(int32_t) * n);
        h->lsec = malloc(sizeof(float) * n);
    }
    h->pair_js = pairs ? malloc(sizeof(int) * (size_t)h->k * (size_t)h->nt) : NULL;
    h->pair_es = pairs ? malloc(sizeof(double) * (size_t)h->k * (size_t)h->nt) : NULL;
    h->drift_f = malloc(sizeof(float) * (size_t)h->k);
    const size_t kt = h->k > KM_HAMERLY_TABLE_K ? (size_t)h->k : KM_HAMERLY_TABLE_K;
    h->sep_f = calloc(kt, sizeof(float));   /* (zeros past k: mark_table loads 64) */
    h->ldrift_f = malloc(sizeof(float) * (size_t)h->k);
    h->far_f = malloc(sizeof(float) * (size_t)h->k);
    h->ucum = calloc((size_t)h->k, sizeof(double));
    h->ucum_f = calloc(kt, sizeof(float));
    h->buf = calloc((size_t)h->nt, sizeof *h->buf);
    int ok = h->upper && h->lower && h->prev && h->drift && h->sep && h->drift_f && h->sep_f
             && h->ldrift_f && h->far_f && h->near && h->near_lo && h->buf && h->ucum
             && h->ucum_f && ((h->pair && h->pair_js && h->pair_es) || !pairs)
             && (!h->near_max || h->d < KM_HAMERLY_SEC_MIN_D || (h->sec && h->lsec));
    for (int t = 0; ok && t < h->nt; t++) {
        gather_buf *b = &h->buf[t];
        b->x = malloc(h->esize * (size_t)h->d * (size_t)h->cap);
        b->xp = malloc(sizeof(void *) * (size_t)h->cap);
        b->lab = malloc(sizeof(int32_t) * (size_t)h->cap);
        b->row = malloc(sizeof(int64_t) * (size_t)h->cap);
        b->eb = malloc(sizeof(double) * (size_t)h->cap);
        b->lb2 = malloc(sizeof(double) * (size_t)h->cap);
        b->lb = malloc(sizeof(double) * (size_t)h->cap);
        b->l3 = malloc(sizeof(double) * (size_t)h->cap);
        b->rest = malloc(sizeof(int64_t) * (size_t)h->cap);
        b->doubt = malloc((size_t)h->cap + 8);
        ok = b->x && b->xp && b->lab && b->row && b->eb && b->lb2 && b->lb && b->l3 && b->rest
             && b->doubt;
    }
    if (!ok) {
        km_hamerly_free(h);
        return NULL;
    }
    return h;
}

/* Store row i's bounds: u >= D(x, c_a), l <= D(x, c_j) for every j != a now,
 * a its label. The sums are rounded outward: (u - U) + (u + U) 2^-50 >= u - U
 * whatever the roundings of a double difference (relative 2^-53) and product. */
static inline void store_bounds(km_hamerly *h, int64_t i, int a, double u, double l)
{
    const double U = h->ucum[a];
    h->upper[i] = km_up_sf((u - U) + (u + U) * 0x1p-50);
    h->lower[i] = km_down_f(h->list_decay ? l : (l + h->lcum) * KM_SHRINK);
}

/* Row i's runner-up s and l <= D(x, c_s), relative to s's drift sum; s < 0: none
 * (stored as centroid 0 at +inf, which moves to +inf: the pass over every row
 * takes it without a test). */
static inline void store_sec(km_hamerly *h, int64_t i, int s, double l)
{
    h->sec[i] = s >= 0 ? s : 0;
    h->lsec[i] = s >= 0 ? km_down_f((l + h->ucum[s]) * KM_SHRINK) : INFINITY;
}

/* Bounds of a row the kernel just assigned to a. */
static inline void set_bounds(km_hamerly *h, int64_t i, int a, double eb, double lb2, double m)
{
    if (h->sec)   /* the kernel names no runner-up: lower is for all */
        store_sec(h, i, -1, 0);
    store_bounds(h, i, a, sqrt(eb) * (1 + m), sqrt(lb2 > 0 ? lb2 : 0) * (1 - m));
}

/* Row c of the pair table past the diagonal, after the centroids moved (same: which
 * did not; NULL: all did, or the table is new). Each pair once: E(c_i, c_j) =
 * E(c_j, c_i) to the bit ((a - b)^2 = (b - a)^2 in IEEE arithmetic, summed in the
 * same order), and only those with a centroid that moved. A pair that moved but
 * stays farther than both its centroids' lists reached in the last pass only
 * matters as a bound: it keeps its old one less the two drifts (the triangle
 * inequality), and is computed exactly again once it falls within a list's reach.
 * js, es: k ints and doubles of the thread's. */
static void pair_row(km_hamerly *h, const double *c64, int c, const unsigned char *same,
                     double m, int *js, double *es)
{
    const int k = h->k, d = h->d, nn = h->nnear;
    double *pair = h->pair, *row = pair + (size_t)c * k;
    const double *reach = h->near_lo + nn - 1, *drift = h->drift;   /* stride NEAR */
    const int decay = same && nn < k - 1;   /* else every pair is in the lists */
    const int moved_c = !(same && same[c]);
    int n = 0;
    for (int j = c + 1; j < k; j++) {
        if (!moved_c && same[j])
            continue;
        if (decay) {
            const double lo = (row[j] - drift[c] - drift[j]) * KM_SHRINK;
            if (lo > reach[(size_t)c * KM_HAMERLY_NEAR] && lo > reach[(size_t)j * KM_HAMERLY_NEAR]) {
                row[j] = pair[(size_t)j * k + c] = lo;
                continue;
            }
        }
        js[n++] = j;
    }
    km_dist_exact_many(c64 + (size_t)c * d, d, KM_F64, c64, js, n, es);
    for (int q = 0; q < n; q++)   /* <= D(c, c_j), as near_lo */
        row[js[q]] = pair[(size_t)js[q] * k + c] = sqrt(es[q]) * (1 - m) * (1 - m);
}

/* Centroid c's list: the nnear others with the least bounds of D (from the pair
 * table, or from E), sep, and with the list decay its largest drift and the bound
 * past it. */
static void near_list(km_hamerly *h, const double *c64, int c, double m)
{
    const int k = h->k, d = h->d, nn = h->nnear;
    const double *pair = h->pair;
    int *nj = h->near + (size_t)c * KM_HAMERLY_NEAR;
    double *ne = h->near_lo + (size_t)c * KM_HAMERLY_NEAR;
    int have = 0;
    /* With the table, the last pass's reach first: the centroids within it are
     * usually a few more than nn, and the nn least of all are among them when
     * at least nn are (the others lie beyond it). Insertion over all k - 1 cost
     * ~12 ns an entry (70k x 784, k = 256: 0.05 s of a 1 s fit). */
    const double *row = pair ? pair + (size_t)c * k : NULL;
    int cand = 0;
    if (row && h->pair_ok && nn < k - 1) {
        const double reach = ne[nn - 1];
        for (int j = 0; j < k && cand <= KM_HAMERLY_NEAR * 2; j++)
            if (j != c && row[j] <= reach)
                cand++;
    }
    const int within = cand >= nn && cand <= KM_HAMERLY_NEAR * 2;
    const double reach = within ? ne[nn - 1] : INFINITY;
    for (int j = 0; nn && j < k; j++) {   /* insertion into the nn smallest */
        if (j == c)
            continue;
        /* the table's bounds of D, or E (made bounds of D below) */
        const double e = row ? row[j] : km_dist_exact(c64 + (size_t)c * d, 0, d, KM_F64,
                                                      c64 + (size_t)j * d);
        if (!(e <= reach) || (have == nn && !(e < ne[nn - 1])))
            continue;   /* (ties keep the lower index, listed first) */
        int q = have < nn ? have++ : nn - 1;
        for (; q > 0 && e < ne[q - 1]; q--) {
            ne[q] = ne[q - 1];
            nj[q] = nj[q - 1];
        }
        ne[q] = e;
        nj[q] = j;
    }
    for (int q = 0; !pair && q < have; q++)
        ne[q] = sqrt(ne[q]) * (1 - m) * (1 - m);
    h->sep[c] = have ? ne[0] : 0;
    h->sep_f[c] = km_down_f(h->sep[c]);
    if (!h->list_decay)
        return;
    float md = 0;   /* drift_f >= 0 */
    for (int q = 0; q < have; q++)
        md = h->drift_f[nj[q]] > md ? h->drift_f[nj[q]] : md;
    h->ldrift_f[c] = md;
    /* a centroid not listed is at least as far as the last listed (ties keep the
       lower index listed, and ne is rounded down) */
    h->far_f[c] = have < k - 1 ? km_down_f(ne[have - 1]) : INFINITY;
}

/* Drifts since the last pass and the centroid separations, upper / lower bounds;
 * per centroid the largest drift in its list and the distance past its list, with
 * which a row's lower bound moves (mark_block). */
static void centroid_moves(km_hamerly *h, const km_centers *kc, double m)
{
    const double *c64 = kc->c64;
    const int k = h->k, d = h->d;
    double max1 = 0;
    km_bound_drifts(h->prev, c64, k, d, m, kc->same, h->drift);
    /* the sums, each addition rounded up (a double sum of non-negative terms is
     * within a relative 2^-53): a row's upper bound rose by c's drift, its lower
     * bound fell by the largest drift (without the lists) */
    for (int c = 0; c < k; c++) {
        h->drift_f[c] = km_up_f(h->drift[c]);
        max1 = h->drift[c] > max1 ? h->drift[c] : max1;
        h->ucum[c] = (h->ucum[c] + h->drift[c]) * (1 + 0x1p-50);
        h->ucum_f[c] = km_up_f(h->ucum[c]);
    }
    if (!h->list_decay) {
        h->lcum = (h->lcum + max1) * (1 + 0x1p-50);
        h->lcum_f = km_up_f(h->lcum);
    }
    /* the nearest other centroids, their distances rounded down: O(k^2 d), skipped
     * for very large k. Decided by k alone, never by this rank's row count: every
     * rank must prune the same rows, or the skipped counts in the history would
     * depend on the layout. sep is the nearest's. */
    const unsigned char *same = h->pair && h->pair_ok ? kc->same : NULL;
    /* one parallel region: the pairs, then (after the barrier: a row of the table
     * is written by the threads of other rows too) the lists. Static shares of the
     * lists: neighbouring centroids' sep and far, written by one thread. */
#pragma omp parallel num_threads(h->nt) if (k > 64)
    {
        if (h->pair) {
            int *js = h->pair_js + (size_t)omp_get_thread_num() * k;
            double *es = h->pair_es + (size_t)omp_get_thread_num() * k;
#pragma omp for schedule(dynamic, 4)
            for (int c = 0; c < k - 1; c++)
                pair_row(h, c64, c, same, m, js, es);
        }
#pragma omp for schedule(static)
        for (int c = 0; c < k; c++)
            near_list(h, c64, c, m);
    }
    h->pair_ok = h->pair != NULL;
}

/* A row still in doubt with exact distance e_a to its centroid a (u >= its
 * true distance): any centroid nearer than a lies within 2u of c_a, so when a's
 * list reaches past 2u, only the listed centroids inside it (at most
 * near_max) get an exact distance; the others are at least
 * near_lo - u away (Newling and Fleuret's "exponion" idea, with a fixed list).
 * Returns 0 when the row needs the kernel. Exact as the kernel: the argmin of E
 * over every centroid that could beat a, lowest index on ties. */
static int near_row(km_hamerly *h, const km_centers *kc, const char *xr, int64_t g, double e_a,
                    double u, double m, int32_t *labels, km_acc *acc, km_workspace *ws)
{
    const int a = labels[g], nn = h->nnear;
    const int *nj = h->near + (size_t)a * KM_HAMERLY_NEAR;
    const double *ne = h->near_lo + (size_t)a * KM_HAMERLY_NEAR;
    /* D(c_a, c_j) > 2u (1 + m)^2 gives D(x, c_j) > D(x, c_a) (1 + 4 m): E_j > E_a */
    const double r = 2 * u * (1 + m) * (1 + m);
    if (nn == 0 || !(r < ne[nn - 1]))
        return 0;
    int n = 0;
    while (ne[n] <= r)
        n++;   /* n < nn: ne[nn - 1] > r */
    if (n > h->near_max)
        return 0;
    int best = a, second = -1;
    double e_best = e_a, e_second = INFINITY, e_third = INFINITY, ev[KM_HAMERLY_NEAR_MAX];
    /* Four at a time where that pays (km_dist_exact_many): the last four filled
     * with the list's next, which the runner-up loop below takes first (a row
     * needed 1.2 of them on 70k x 784, k = 256), in place of copies of the last.
     * pre of them computed. */
    const int last = nn - 1 < h->near_max ? nn - 1 : h->near_max;   /* the loop's end */
    int pre = 0;
    if (h->d >= KM_EXACT_MANY_MIN_D) {
        pre = (n > 0 ? n + 3 : 4) / 4 * 4;
        pre = pre < last ? pre : n > last ? n : last;
        km_dist_exact_many(xr, h->d, kc->prec, kc->c64, nj, pre, ev);
    }
    for (int q = 0; q < n; q++) {
        const int c = nj[q];
        const double v = q < pre ? ev[q]
                                 : km_dist_exact(xr, 0, h->d, kc->prec, kc->c64 + (size_t)c * h->d);
        if (v < e_best || (v == e_best && c < best)) {
            e_third = e_second;
            e_second = e_best;
            second = best;
            e_best = v;
            best = c;
        } else if (v < e_second) {
            e_third = e_second;
            e_second = v;
            second = c;
        } else if (v < e_third) {
            e_third = v;
        }
    }
    /* The others are at least ne[n] - u away, and that is the lower bound's if it is
     * the smaller: just past 2u, so a row kept this way would be in doubt again next
     * pass. While the list's next centroid could be the runner-up, compute it too:
     * past 2u it is farther than a, so than the best, and only the bound changes.
     * Seen (one thread, side by side): 2M x 3, k = 512 and 70k x 784, k = 256 took
     * 10-20 % less time. */
    double near = sqrt(e_second) * (1 - m);
    while (n < last && (ne[n] - u) * KM_SHRINK < near) {
        const double v = n < pre ? ev[n]
                                 : km_dist_exact(xr, 0, h->d, kc->prec,
                                                 kc->c64 + (size_t)nj[n] * h->d);
        if (v < e_second) {
            e_third = e_second;
            e_second = v;
            second = nj[n];
            near = sqrt(e_second) * (1 - m);
        } else if (v < e_third) {
            e_third = v;
        }
        n++;
    }
    acc->distances += n > pre ? n : pre;
    /* the others: listed or not, at least ne[n] from c_a (the lists are the nearest) */
    const double far = (ne[n] - u) * KM_SHRINK;
    km_take_row(kc, xr, best, labels + g, acc, ws);
    if (h->sec) {   /* lower: every centroid but best and second */
        const double third = sqrt(e_third) * (1 - m);
        store_bounds(h, g, best, sqrt(e_best) * (1 + m), third < far ? third : far);
        store_sec(h, g, second, near);
    } else {
        store_bounds(h, g, best, sqrt(e_best) * (1 + m), near < far ? near : far);
    }
    return 1;
}

/* A row still in doubt with exact distance e_a to its centroid a (u >= its true
 * distance), runner-up s and l3 <= D(x, c_j) for every other j: when all those are
 * provably farther than a, the argmin is a or s, and s's exact distance settles
 * the row (lowest index on ties). Returns 0 when that is not proven. */
static int sec_row(km_hamerly *h, const km_centers *kc, const char *xr, int64_t g, double e_a,
                   double u, double l3, double m, int32_t *labels, km_acc *acc,
                   km_workspace *ws)
{
    const int a = labels[g], s = h->sec[g];
    if (h->lsec[g] == INFINITY || !(u * (1 + m) < l3 * (1 - m)))
        return 0;
    const double e_s = km_dist_exact(xr, 0, h->d, kc->prec, kc->c64 + (size_t)s * h->d);
    acc->distances += 1;
    const int to_s = e_s < e_a || (e_s == e_a && s < a);
    km_take_row(kc, xr, to_s ? s : a, labels + g, acc, ws);
    store_bounds(h, g, to_s ? s : a, sqrt(to_s ? e_s : e_a) * (1 + m), l3);
    store_sec(h, g, to_s ? a : s, sqrt(to_s ? e_a : e_s) * (1 - m));
    return 1;
}

/* Run the kernel on thread t's gathered rows and scatter labels and bounds. */
static void flush_gathered(km_hamerly *h, const km_centers *kc, gather_buf *b, int32_t *labels,
                           km_acc *acc, km_workspace *ws, double m)
{
    if (!b->n)
        return;
    if (h->by_pointer)
        km_assign_rows_bounds(kc, b->xp, b->n, b->lab, acc, ws, b->eb, b->lb2);
    else
        km_assign_block_bounds(kc, b->x, b->n, b->lab, acc, ws, b->eb, b->lb2, NULL);
    for (int64_t j = 0; j < b->n; j++) {
        labels[b->row[j]] = b->lab[j];
        set_bounds(h, b->row[j], b->lab[j], b->eb[j], b->lb2[j], m);
    }
    acc->distances += (double)b->n * h->k;
    b->n = 0;
}

/* The rows marked in b->doubt listed in b->rest, their moved lower bounds in
 * b->lb; how many. */
static inline __attribute__((always_inline)) int64_t mark_doubts(km_hamerly *h, int64_t first,
                                                                  int64_t nr,
                                                                  const int32_t *labels,
                                                                  gather_buf *b, const int lists,
                                                                  const int secs)
{
    const float *upper = h->upper + first, *lower = h->lower + first;
    const float *lsec = secs ? h->lsec + first : NULL;
    const int32_t *lab = labels + first, *sec = secs ? h->sec + first : NULL;
    const float *ucum = h->ucum_f, lcum = h->lcum_f, *ldrift = h->ldrift_f, *far = h->far_f;
    unsigned char *doubt = b->doubt;
    /* 8 marks at a time: most words are 0 in the late passes */
    for (int64_t i = nr; i % 8; i++)
        doubt[i] = 0;
    int64_t nrest = 0;
    for (int64_t w0 = 0; w0 < nr; w0 += 8) {
        uint64_t w;
        memcpy(&w, doubt + w0, sizeof w);
        for (; w; w &= w - 1) {
            const int64_t i = w0 + __builtin_ctzll(w) / 8;
            const int a = lab[i];
            const double l3 = lists ? moved_lower(lower[i], ldrift[a], far[a],
                                                  moved_upper_f(upper[i], ucum[a]))
                                    : moved_lower_f(lower[i], lcum);
            b->lb[nrest] = l3;
            if (secs) {
                const double ls = moved_lower_f(lsec[i], ucum[sec[i]]);
                b->l3[nrest] = l3;
                b->lb[nrest] = ls < l3 ? ls : l3;
            }
            b->rest[nrest++] = i;
        }
    }
    return nrest;
}

/* Block [first, first + nr) of local rows: first the moved bounds of every row
 * (a loop without calls): a row they keep in its cluster costs nothing more
 * (the totals only change by moves, kernels.h), and its values are not even
 * read. Returns how many are left in doubt, listed in b->rest (block-relative)
 * with their moved lower bounds in b->lb. */
static inline __attribute__((always_inline)) int64_t mark_rows(km_hamerly *h, int64_t first,
                                                                int64_t nr,
                                                                const int32_t *labels,
                                                                gather_buf *b, const int lists,
                                                                const int secs)
{
    const float *upper = h->upper + first, *lsec = secs ? h->lsec + first : NULL;
    float *lower = h->lower + first;
    const int32_t *lab = labels + first, *sec = secs ? h->sec + first : NULL;
    const float *ucum = h->ucum_f, lcum = h->lcum_f, *sep = h->sep_f, *ldrift = h->ldrift_f,
                *far = h->far_f;
    unsigned char *doubt = b->doubt;
    /* one branch-free loop the compiler vectorises (gathers of ucum, lcum and sep,
     * with the lists ldrift and far): rows in doubt are marked; with the lists the
     * kept rows' lower bounds move */
#pragma omp simd
    for (int64_t i = 0; i < nr; i++) {
        const int a = lab[i];
        const float u = moved_upper_f(upper[i], ucum[a]);
        const float l3 = lists ? moved_lower(lower[i], ldrift[a], far[a], u)
                               : moved_lower_f(lower[i], lcum);
        float l = l3;
        if (secs) {   /* the runner-up moved by its own drift alone */
            const float ls = moved_lower_f(lsec[i], ucum[sec[i]]);
            l = ls < l3 ? ls : l3;
        }
        const int keep = kept_f(u, l, sep[a]);
        if (lists)
            lower[i] = keep ? l3 : lower[i];
        doubt[i] = (unsigned char)!keep;
    }
    return mark_doubts(h, first, nr, labels, b, lists, secs);
}

#if defined(__AVX512F__)
/* Entries a (each < 64) of a 64-entry table held in four registers. */
static inline __m512 table64(const __m512 t[4], __m512i a)
{
    const __m512 lo = _mm512_permutex2var_ps(t[0], a, t[1]);
    const __m512 hi = _mm512_permutex2var_ps(t[2], a, t[3]);
    return _mm512_mask_blend_ps(_mm512_test_epi32_mask(a, _mm512_set1_epi32(32)), lo, hi);
}

/* mark_rows without the lists for k <= 64: the same arithmetic, lane for lane
 * (moved_upper_f, moved_lower_f, kept_f; max_ps takes the second operand on NaN,
 * as kept_f's select does), with ucum and sep in registers. A gather of 16 floats
 * costs ~16 cycles on Zen 5, and mark_rows has two: the loop alone over 1M rows in
 * cache took 0.27 ms with them, 0.10 ms with the tables (2 threads). */
static int64_t mark_table(km_hamerly *h, int64_t first, int64_t nr, const int32_t *labels,
                          gather_buf *b)
{
    const float *upper = h->upper + first, *lower = h->lower + first;
    const int32_t *lab = labels + first;
    __m512 U[4], S[4];
    for (int q = 0; q < 4; q++) {
        U[q] = _mm512_loadu_ps(h->ucum_f + 16 * q);
        S[q] = _mm512_loadu_ps(h->sep_f + 16 * q);
    }
    const __m512 L = _mm512_set1_ps(h->lcum_f);
    const __m512 up = _mm512_set1_ps(KM_UP_F), down = _mm512_set1_ps(KM_DOWN_F);
    const __m512 tiny = _mm512_set1_ps(KM_TINY_F), tiny2 = _mm512_set1_ps(2 * KM_TINY_F);
    const __m512 ku = _mm512_set1_ps(1 + 0x1p-20f), kd = _mm512_set1_ps(1 - 0x1p-20f);
    for (int64_t i = 0; i < nr; i += 16) {
        const __mmask16 in = nr - i >= 16 ? 0xffff : (__mmask16)((1u << (nr - i)) - 1);
        const __m512i a = _mm512_maskz_loadu_epi32(in, lab + i);
        __m512 u = _mm512_mul_ps(_mm512_add_ps(_mm512_maskz_loadu_ps(in, upper + i),
                                               table64(U, a)), up);
        u = _mm512_mask_add_ps(u, _mm512_cmp_ps_mask(u, tiny, _CMP_LT_OQ), u, tiny2);
        __m512 l = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(in, lower + i),
                                               L), down);
        l = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(l, tiny, _CMP_GT_OQ), l);
        const __m512 sd = _mm512_mul_ps(_mm512_sub_ps(table64(S, a), u), down);
        const __mmask16 keep = _mm512_cmp_ps_mask(_mm512_mul_ps(u, ku),
                                                  _mm512_mul_ps(_mm512_max_ps(l, sd), kd),
                                                  _CMP_LT_OQ);
        _mm_mask_storeu_epi8(b->doubt + i, in, _mm_maskz_set1_epi8((__mmask16)~keep, 1));
    }
    return mark_doubts(h, first, nr, labels, b, 0, 0);
}
#endif

static int64_t mark_block(km_hamerly *h, int64_t first, int64_t nr, const int32_t *labels,
                          gather_buf *b)
{
    if (h->sec)
        return h->list_decay ? mark_rows(h, first, nr, labels, b, 1, 1)
                             : mark_rows(h, first, nr, labels, b, 0, 1);
#if defined(__AVX512F__)
    if (!h->list_decay && h->k <= KM_HAMERLY_TABLE_K)
        return mark_table(h, first, nr, labels, b);
#endif
    return h->list_decay ? mark_rows(h, first, nr, labels, b, 1, 0)
                         : mark_rows(h, first, nr, labels, b, 0, 0);
}

/* Row xr (local row g, label a) to the kernel with thread's gathered rows. */
static void gather_row(km_hamerly *h, const km_centers *kc, gather_buf *b, const char *xr,
                       int64_t g, int a, int32_t *labels, km_acc *acc, km_workspace *ws,
                       double m)
{
    if (h->by_pointer)
        b->xp[b->n] = xr;
    else
        memcpy((char *)b->x + (size_t)b->n * h->esize * (size_t)h->d, xr,
               h->esize * (size_t)h->d);
    b->lab[b->n] = a;
    b->row[b->n++] = g;
    if (b->n == h->cap)
        flush_gathered(h, kc, b, labels, acc, ws, m);
}

/* The rows mark_block left in doubt (x: the block's rows): each tightened with
 * its one exact distance; those still in doubt settled by the near lists or
 * gathered for the kernel. Without the lists a row in doubt goes to the kernel
 * untightened: a row kept by the tighter u keeps its loose lower bound and is
 * in doubt again soon, while the kernel renews both bounds. Measured (fit s, one
 * thread each, side by side, tightening -> none; BENCH.md): 1M x 32, k = 64:
 * 4.9 -> 4.1-4.4 in 3 pairs of 4 (1 even); k = 16: 1.16-1.30 -> 0.99-1.02;
 * 2M x 3, k = 16: 2.7-2.9 -> 2.2; k = 128: 11.3-12.1 -> 9.4-10.1; 70k x 784,
 * k = 4: 0.54 -> 0.44-0.47. With the lists on (2M x 3, k = 512) skipping it was
 * 10 % slower. */
static void resolve_block(km_hamerly *h, const km_centers *kc, const char *x, int64_t first,
                          int64_t nrest, int32_t *labels, km_acc *acc, km_workspace *ws,
                          gather_buf *b, double m)
{
    const size_t rowbytes = h->esize * (size_t)h->d;
    if (!h->near_max && h->by_pointer) {   /* the kernel fetches them, a row group ahead */
        for (int64_t j = 0; j < nrest; j++) {
            const int64_t i = b->rest[j];
            km_prefetch_row(x + (size_t)i * rowbytes, rowbytes);
            gather_row(h, kc, b, x + (size_t)i * rowbytes, first + i, labels[first + i], labels,
                       acc, ws, m);
        }
        return;
    }
    km_prefetch_first(x, rowbytes, b->rest, nrest, KM_HAMERLY_AHEAD);
    for (int64_t j = 0; j < nrest; j++) {
        if (j + KM_HAMERLY_AHEAD < nrest)
            km_prefetch_row(x + (size_t)b->rest[j + KM_HAMERLY_AHEAD] * rowbytes, rowbytes);
        if (j + 1 < nrest)
            km_prefetch_rest(x + (size_t)b->rest[j + 1] * rowbytes, rowbytes);
        const int64_t i = b->rest[j], g = first + i;
        const int a = labels[g];
        const char *xr = x + (size_t)i * rowbytes;
        if (!h->near_max || !h->tighten) {
            gather_row(h, kc, b, xr, g, a, labels, acc, ws, m);
            continue;
        }
        const double l = b->lb[j];
        /* tighten u with the one exact distance */
        const double e = km_dist_exact(xr, 0, h->d, kc->prec, kc->c64 + (size_t)a * h->d);
        const double u = sqrt(e) * (1 + m);
        acc->distances += 1;
        const double z = max2d(l, (h->sep[a] - u) * KM_SHRINK);
        if (u * (1 + m) < z * (1 - m)) {   /* (the runner-up's bound stays) */
            store_bounds(h, g, a, u, h->sec ? b->l3[j] : l);
            continue;
        }
        if (h->sec && sec_row(h, kc, xr, g, e, u, b->l3[j], m, labels, acc, ws))
            continue;
        if (!near_row(h, kc, xr, g, e, u, m, labels, acc, ws)) {
            acc->distances -= 1;   /* the kernel's k stand for the row: skipped stays >= 0 */
            gather_row(h, kc, b, xr, g, a, labels, acc, ws, m);
        }
    }
}

/* Every row of the block (x: its rows) through the kernel: the first pass. */
static void block_full(km_hamerly *h, const km_centers *kc, const void *x, int64_t first,
                       int64_t nr, int32_t *labels, km_acc *acc, km_workspace *ws,
                       gather_buf *b, double m)
{
    km_assign_block_bounds(kc, x, nr, labels + first, acc, ws, b->eb, b->lb2, NULL);
    for (int64_t j = 0; j < nr; j++)
        set_bounds(h, first + j, labels[first + j], b->eb[j], b->lb2[j], m);
    acc->distances += (double)nr * h->k;
}

/* The pass as a walk (walk.h; ctx: a km_pass, state the km_hamerly). */
static int64_t mark(void *ctx, int t, int64_t first, int64_t n, const int64_t **idx)
{
    const km_pass *P = ctx;
    km_hamerly *h = P->state;
    if (!h->valid)
        return km_walk_all(n, idx);
    *idx = h->buf[t].rest;
    return mark_block(h, first, n, P->labels, &h->buf[t]);
}

static void work(void *ctx, int t, int64_t first, int64_t n, const int64_t *idx, int64_t nidx,
                 const void *x)
{
    (void)idx;   /* b->rest, which resolve_block reads */
    const km_pass *P = ctx;
    km_hamerly *h = P->state;
    km_acc *ta = km_threads_acc(P->th, t);
    km_workspace *ws = km_threads_workspace(P->th, t);
    if (h->valid)
        resolve_block(h, P->kc, x, first, nidx, P->labels, ta, ws, &h->buf[t], P->m);
    else
        block_full(h, P->kc, x, first, n, P->labels, ta, ws, &h->buf[t], P->m);
}

/* The rows in doubt gathered over all the thread's blocks of a chunk: the kernel
 * pays for whole row groups, so a full buffer wastes no lanes. */
static void flush(void *ctx, int t)
{
    const km_pass *P = ctx;
    km_hamerly *h = P->state;
    flush_gathered(h, P->kc, &h->buf[t], P->labels, km_threads_acc(P->th, t),
                   km_threads_workspace(P->th, t), P->m);
}

void km_hamerly_note_skipped(km_hamerly *h, double skipped)
{
    h->tighten = h->full_pass || !(skipped < KM_HAMERLY_TIGHTEN_MIN);   /* a full pass
                                                                           skips nothing */
}

int km_hamerly_pass(km_hamerly *h, km_source *src, const km_centers *kc, int32_t *labels,
                    km_threads *th, km_acc *acc, km_error *err)
{
    const double m = km_bound_margin(h->d);
    if (h->valid)
        centroid_moves(h, kc, m);
    /* rows in doubt go to the kernel where they are when they stay there until
     * the walk's flush (a source that hands out its chunks; a reading source
     * reuses each thread's buffer block after block), and are short enough for
     * the kernel to fetch a row group ahead whole (km_assign_rows_bounds) */
    h->by_pointer = !src->read && h->esize * (size_t)h->d <= 512;
    const km_walk w = {mark, work, flush};
    km_pass P = {kc, labels, th, m, h};
    if (km_walk_rows(src, th, h->cap, &w, &P, err))
        return err->code;
    km_threads_reduce(th, acc);
    km_bound_keep(h->prev, kc->c64, h->k, h->d, h->valid ? kc->same : NULL);
    h->full_pass = !h->valid;
    h->valid = 1;
    return 0;
}
