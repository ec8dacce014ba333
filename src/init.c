/* init.c — initial centroids. Random choices come from the counter-based
 * generator (rng.h) keyed on the seed; k-means++ samples with weights turned
 * into exact integers, so prefix sums across ranks and candidate potentials are
 * bit-for-bit the same for any rank or thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "h5io.h"
#include "init.h"
#include "kernels.h"
#include "rng.h"

typedef unsigned __int128 u128;

int km_fetch_rows(const km_comm *c, const km_block *blk, km_source *src, const int64_t *rows,
                  int m, double *out, km_error *err)
{
    const int d = blk->d;
    memset(out, 0, sizeof(double) * (size_t)m * d);
    for (int t = 0; t < m && !err->code; t++) {
        int64_t i = rows[t] - blk->first;
        if (rows[t] >= 0 && i >= 0 && i < blk->rows)
            src->row(src, i, out + (size_t)t * d, err);
    }
    if (km_comm_agree(c, err))
        return err->code;
    km_comm_sum(c, out, (size_t)m * d);   /* exactly one rank adds a non-zero: exact */
    return 0;
}

/* D[i] = min(D[i], ||x_i - centroid||^2) over the source (init: D[i] = dist). */
static void min_dist_pass(km_source *src, const double *centroid, double *D, int init,
                          km_error *err)
{
    for (int64_t f = 0, n; !err->code && (n = km_source_span(src, f)) > 0; f += n) {
        const void *x;
        if (!src->get(src, f, n, &x, err))
            km_min_dist_update(x, n, src->d, src->prec, centroid, D + f, init);
    }
}

/* k distinct rows of n (Floyd's algorithm), in draw order. */
static int random_rows(uint64_t seed, int64_t n, int k, int64_t *rows, km_error *err)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)k)
        cap *= 2;
    int64_t *set = malloc(sizeof(int64_t) * cap);
    if (!set)
        return km_fail(err, KM_ERR_MEMORY, "out of memory drawing %d random rows", k);
    for (size_t i = 0; i < cap; i++)
        set[i] = -1;
    for (int t = 0; t < k; t++) {
        int64_t j = n - k + t;
        int64_t r = (int64_t)km_rand_below(seed, KM_STREAM_RANDOM, (uint64_t)t, (uint64_t)j + 1);
        for (int pass = 0; pass < 2; pass++) {   /* insert r, or j if r was taken */
            size_t h = km_mix64((uint64_t)r) & (cap - 1);
            while (set[h] >= 0 && set[h] != r)
                h = (h + 1) & (cap - 1);
            if (set[h] < 0) {
                set[h] = r;
                break;
            }
            r = j;
        }
        rows[t] = r;
    }
    free(set);
    return 0;
}

static void u128_split(u128 v, uint64_t *two)
{
    two[0] = (uint64_t)v;
    two[1] = (uint64_t)(v >> 64);
}

static u128 u128_join(const uint64_t *two)
{
    return ((u128)two[1] << 64) | two[0];
}

/* Global row whose integer weight interval holds target, or -1 if another rank
 * owns it; offset = total weight of the rows before this rank's block. */
static int64_t find_weighted(const km_block *blk, const double *D, double qscale, u128 offset,
                             u128 total, u128 target)
{
    if (target < offset || target >= offset + total)
        return -1;
    u128 cum = offset;
    for (int64_t i = 0; i < blk->rows; i++) {
        cum += (uint64_t)(D[i] * qscale);
        if (target < cum)
            return blk->first + i;
    }
    return -1;
}

/* One greedy k-means++ step: draw m candidates with probability ~ D, keep the
 * one that lowers the potential most (ties: first drawn). */
static int pp_step(const km_comm *c, const km_block *blk, km_source *src, uint64_t seed,
                   int step, int m, double *D, double *cand, int64_t *cand_rows,
                   uint64_t *gather, double *centroid, km_error *err)
{
    const int d = blk->d;
    double maxD = 0;
    for (int64_t i = 0; i < blk->rows; i++)
        maxD = D[i] > maxD ? D[i] : maxD;
    km_comm_max(c, &maxD, 1);
    const double qscale = maxD > 0 ? ldexp(1.0 / maxD, 52) : 0;   /* weights <= 2^52 */
    u128 mine = 0, offset = 0, total = 0;
    for (int64_t i = 0; i < blk->rows; i++)
        mine += (uint64_t)(D[i] * qscale);
    uint64_t two[2];
    u128_split(mine, two);
    km_comm_allgather_u64(c, two, 2, gather);
    for (int r = 0; r < c->size; r++) {
        u128 w = u128_join(gather + 2 * r);
        offset += r < c->rank ? w : 0;
        total += w;
    }
    for (int t = 0; t < m; t++) {
        uint64_t ctr = (uint64_t)step * 64 + (uint64_t)t;
        if (total == 0) {   /* every point sits on a centroid: any row will do */
            cand_rows[t] = (int64_t)km_rand_below(seed, KM_STREAM_KMEANSPP, ctr, (uint64_t)blk->n);
            continue;
        }
        u128 r = ((u128)km_rand(seed, KM_STREAM_KMEANSPP, 2 * ctr) << 64)
                 | km_rand(seed, KM_STREAM_KMEANSPP, 2 * ctr + 1);
        cand_rows[t] = find_weighted(blk, D, qscale, offset, mine, r % total);
    }
    if (total != 0)
        km_comm_max_i64v(c, cand_rows, m);
    if (km_fetch_rows(c, blk, src, cand_rows, m, cand, err))
        return err->code;
    u128 *pot = calloc((size_t)m, sizeof(u128));
    uint64_t *loc = malloc(sizeof(uint64_t) * 2 * (size_t)m);
    uint64_t *all = malloc(sizeof(uint64_t) * 2 * (size_t)m * c->size);
    if (!pot || !loc || !all)
        km_fail(err, KM_ERR_MEMORY, "rank %d: out of memory for k-means++", c->rank);
    for (int64_t f = 0, n; !err->code && (n = km_source_span(src, f)) > 0; f += n) {
        const void *x;
        if (!src->get(src, f, n, &x, err))
            km_pp_potentials(x, n, d, blk->prec, D + f, cand, m, qscale > 0 ? qscale : 1, pot);
    }
    if (km_comm_agree(c, err)) {
        free(pot);
        free(loc);
        free(all);
        return err->code;
    }
    for (int t = 0; t < m; t++)
        u128_split(pot[t], loc + 2 * t);
    km_comm_allgather_u64(c, loc, 2 * m, all);
    int best = 0;
    u128 best_pot = 0;
    for (int t = 0; t < m; t++) {
        u128 s = 0;
        for (int r = 0; r < c->size; r++)
            s += u128_join(all + (size_t)r * 2 * m + 2 * t);
        if (t == 0 || s < best_pot) {
            best_pot = s;
            best = t;
        }
    }
    memcpy(centroid, cand + (size_t)best * d, sizeof(double) * d);
    min_dist_pass(src, centroid, D, 0, err);
    free(pot);
    free(loc);
    free(all);
    return km_comm_agree(c, err);
}

static int kmeanspp(const km_comm *c, const km_block *blk, km_source *src, int k,
                    uint64_t seed, double *centroids, km_error *err)
{
    const int d = blk->d, m = 2 + (int)log((double)k);
    double *D = malloc(sizeof(double) * (size_t)(blk->rows ? blk->rows : 1));
    double *cand = malloc(sizeof(double) * (size_t)m * d);
    int64_t *cand_rows = malloc(sizeof(int64_t) * (size_t)m);
    uint64_t *gather = malloc(sizeof(uint64_t) * 2 * (size_t)c->size);
    if (!D || !cand || !cand_rows || !gather)
        km_fail(err, KM_ERR_MEMORY, "rank %d: out of memory for k-means++", c->rank);
    if (!km_comm_agree(c, err)) {
        int64_t first = (int64_t)km_rand_below(seed, KM_STREAM_KMEANSPP, 0, (uint64_t)blk->n);
        if (!km_fetch_rows(c, blk, src, &first, 1, centroids, err)) {
            min_dist_pass(src, centroids, D, 1, err);
            km_comm_agree(c, err);
        }
        for (int s = 1; s < k && !err->code; s++)
            pp_step(c, blk, src, seed, s, m, D, cand, cand_rows, gather,
                    centroids + (size_t)s * d, err);
    }
    free(D);
    free(cand);
    free(cand_rows);
    free(gather);
    return err->code;
}

int km_init_centroids(const km_comm *c, const km_options *opt, const km_block *blk,
                      km_source *src, double *centroids, km_error *err)
{
    const int k = opt->k;
    if (opt->init == KM_INIT_KMEANSPP)
        return kmeanspp(c, blk, src, k, opt->seed, centroids, err);
    int64_t *rows = malloc(sizeof(int64_t) * (size_t)k);
    if (!rows)
        km_fail(err, KM_ERR_MEMORY, "out of memory for %d initial rows", k);
    else if (opt->init == KM_INIT_FIRST)
        for (int t = 0; t < k; t++)
            rows[t] = t;
    else if (opt->init == KM_INIT_RANDOM)
        random_rows(opt->seed, blk->n, k, rows, err);
    else
        memcpy(rows, opt->init_rows, sizeof(int64_t) * (size_t)k);
    if (!km_comm_agree(c, err))
        km_fetch_rows(c, blk, src, rows, k, centroids, err);
    free(rows);
    return err->code;
}
