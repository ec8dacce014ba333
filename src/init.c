/* init.c — initial centroids. Random choices come from the counter-based
 * generator (rng.h) keyed on the seed; k-means++ samples with weights turned
 * into exact integers, so prefix sums across ranks and candidate potentials are
 * bit-for-bit the same for any rank or thread count. */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "h5io.h"
#include "init.h"
#include "kernels.h"
#include "rng.h"
#include "signals.h"

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

/* D[i] = the least E(x_i, c) over the first s centroids and near[i] its index,
 * over the source (km_pp_nearest; s = 1 at the start of k-means++). */
static void dist_pass(km_source *src, const double *centroids, int s, double *D,
                      int32_t *near, km_error *err)
{
    for (int64_t f = 0, n; !err->code && (n = km_source_span(src, f)) > 0; f += n) {
        const void *x;
        if (!src->get(src, f, n, &x, err))
            km_pp_nearest(x, n, src->d, src->prec, centroids, s, D + f, near + f);
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
 * owns it; offset = total weight of the rows before this rank's block, mine its
 * own (the sum of sums). */
static int64_t find_weighted(const km_block *blk, const double *D, double qscale, u128 offset,
                             u128 mine, const u128 *sums, u128 target)
{
    if (target < offset || target >= offset + mine)
        return -1;
    u128 cum = offset;
    int64_t c = 0;
    while (target >= cum + sums[c])   /* the chunk that holds it */
        cum += sums[c++];
    const int64_t end = (c + 1) * KM_PP_CHUNK < blk->rows ? (c + 1) * KM_PP_CHUNK : blk->rows;
    for (int64_t i = c * KM_PP_CHUNK; i < end; i++) {   /* as km_pp_weight_sums weighs */
        cum += (uint64_t)(D[i] * qscale);
        if (target < cum)
            return blk->first + i;
    }
    return -1;
}

/* Candidate t became centroid `label`: D_i = min(D_i, E(x_i, it)). With the
 * marks (shift), a chunk with no row marked is not even read; with low (the E the
 * reductions kept), no row is. */
static void lower_pass(km_source *src, const km_centers *cand, int t, const double *thr,
                       int32_t label, double *D, int32_t *near, int shift, const double *low,
                       km_error *err)
{
    if (low) {
        km_pp_lower_kept(cand->k, t, src->rows, low, label, D, near, shift);
        return;
    }
    for (int64_t f = 0, n; !err->code && (n = km_source_span(src, f)) > 0; f += n) {
        int64_t i = 0;
        while (shift && i < n && !((uint32_t)near[f + i] >> shift >> t & 1))
            i++;
        const void *x;
        if (i < n && !src->get(src, f, n, &x, err))
            km_pp_lower(cand, t, x, n, thr, label, D + f, near + f, shift);
    }
}

/* What the k-means++ steps share: each row's distance D to the nearest centroid
 * chosen so far and that centroid's index (near), the candidates (m of them, rows
 * and prepared for the fast kernel) and the thresholds of km_pp_thresholds. */
typedef struct {
    int m, shift;   /* shift: near's bits for the index, or 0 (no room for marks) */
    double *D, *cand, *thr;
    double *low;    /* rows x m: the E of the rows each candidate lowers, or NULL */
    u128 *sums;     /* the weights' chunk sums (km_pp_weight_sums) */
    u128 *red;      /* m: each candidate's reduction of the potential */
    uint64_t *loc, *all;   /* 2 m, 2 m x ranks: the reductions gathered */
    int32_t *near;
    int64_t *cand_rows;
    uint64_t *gather;
    km_centers cc;
} pp_state;

/* One greedy k-means++ step: draw m candidates with probability ~ D, keep the
 * one that lowers the potential most (ties: first drawn). */
static int pp_step(const km_comm *c, const km_block *blk, km_source *src, uint64_t seed,
                   int step, pp_state *P, double *centroids, km_error *err)
{
    const int d = blk->d, m = P->m;
    double *D = P->D;
    int64_t *cand_rows = P->cand_rows;
    uint64_t *gather = P->gather;
    double maxD = km_pp_max(D, blk->rows);
    km_comm_max(c, &maxD, 1);
    const double qscale = maxD > 0 ? ldexp(1.0 / maxD, 52) : 0;   /* weights <= 2^52 */
    u128 mine = km_pp_weight_sums(D, blk->rows, qscale, P->sums), offset = 0, total = 0;
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
        cand_rows[t] = find_weighted(blk, D, qscale, offset, mine, P->sums, r % total);
    }
    if (total != 0)
        km_comm_max_i64v(c, cand_rows, m);
    if (km_fetch_rows(c, blk, src, cand_rows, m, P->cand, err))
        return err->code;
    km_centers_load(&P->cc, P->cand);
    km_pp_thresholds(centroids, step, &P->cc, P->thr);
    u128 *red = P->red;
    uint64_t *loc = P->loc, *all = P->all;
    memset(red, 0, sizeof(u128) * (size_t)m);
    for (int64_t f = 0, n; !err->code && (n = km_source_span(src, f)) > 0; f += n) {
        const void *x;
        if (!src->get(src, f, n, &x, err) &&
            km_pp_reductions(&P->cc, x, n, D + f, P->near + f, P->shift, P->thr,
                             qscale > 0 ? qscale : 1, red,
                             P->low ? P->low + (size_t)f * m : NULL))
            km_fail(err, KM_ERR_MEMORY, "rank %d: out of memory for k-means++", c->rank);
    }
    if (km_comm_agree(c, err))
        return err->code;
    for (int t = 0; t < m; t++)
        u128_split(red[t], loc + 2 * t);
    km_comm_allgather_u64(c, loc, 2 * m, all);
    /* the potential after t is the total less its reduction: the least
       potential (the first on ties) is the largest reduction */
    int best = 0;
    u128 best_red = 0;
    for (int t = 0; t < m; t++) {
        u128 s = 0;
        for (int r = 0; r < c->size; r++)
            s += u128_join(all + (size_t)r * 2 * m + 2 * t);
        if (t == 0 || s > best_red) {
            best_red = s;
            best = t;
        }
    }
    double *centroid = centroids + (size_t)step * d;
    memcpy(centroid, P->cand + (size_t)best * d, sizeof(double) * d);
    lower_pass(src, &P->cc, best, P->thr, step, D, P->near, P->shift, P->low, err);
    return km_comm_agree(c, err);
}

/* Every `every` seconds on rank 0 (progress != NULL): how many centroids are chosen
 * and how long the rest may take at the pace of the steps since the last line
 * (*last, *last_chosen): later steps prune more, so the pace of all the steps so
 * far, or of those before a resume, would overstate it more. */
static void pp_progress(FILE *progress, int chosen, int k, double t0, double every,
                        double *last, int *last_chosen)
{
    const double now = km_now();
    if (!progress || now - *last < every || chosen >= k || chosen <= *last_chosen)
        return;
    fprintf(progress, "init: k-means++ chose %d of %d centroids in %.1f s; about %.0f s to go\n",
            chosen, k, now - t0, (now - *last) / (chosen - *last_chosen) * (k - chosen));
    fflush(progress);
    *last = now;
    *last_chosen = chosen;
}

/* Between two k-means++ steps, agreed by every rank: 2 when a stop signal came
 * to one, 1 when the centroids are due to be saved, else 0. */
static int64_t pp_due(const km_comm *c, const km_options *opt, const km_init_saver *saver,
                      double last_save)
{
    const int save = saver && opt->checkpoint_seconds > 0
                     && km_now() - last_save >= opt->checkpoint_seconds;
    return km_comm_max_i64(c, km_signal_pending() ? 2 : save);
}

/* Greedy k-means++ from centroid *chosen on (0: afresh; else centroids
 * [0, *chosen) are the ones it chose before, and their D and near are rebuilt
 * in one pass). With --checkpoint, a stop signal on any rank ends it between
 * two steps (*chosen says how far it got; k when done), and saver saves the
 * centroids chosen every --checkpoint-seconds. */
static int kmeanspp(const km_comm *c, const km_options *opt, const km_block *blk,
                    km_source *src, int k, double *centroids, int32_t *near, FILE *progress,
                    const km_init_saver *saver, int *chosen, km_error *err)
{
    const uint64_t seed = opt->seed;
    const int d = blk->d, m = 2 + (int)log((double)k);
    const size_t rows = (size_t)(blk->rows ? blk->rows : 1);
    int bits = 1;   /* for the indices 0 .. k - 1 */
    while (bits < 31 && ((int64_t)1 << bits) < k)
        bits++;
    pp_state P = {.m = m, .shift = bits + m <= 31 ? bits : 0, .D = malloc(sizeof(double) * rows),
                  .cand = malloc(sizeof(double) * (size_t)m * d),
                  .thr = malloc(sizeof(double) * (size_t)k * (size_t)(m + 1)),
                  .sums = malloc(sizeof(u128) * ((rows + KM_PP_CHUNK - 1) / KM_PP_CHUNK)),
                  .red = malloc(sizeof(u128) * (size_t)m),
                  .loc = malloc(sizeof(uint64_t) * 2 * (size_t)m),
                  .all = malloc(sizeof(uint64_t) * 2 * (size_t)m * c->size),
                  .near = near,
                  .cand_rows = malloc(sizeof(int64_t) * (size_t)m),
                  .gather = malloc(sizeof(uint64_t) * 2 * (size_t)c->size)};
    const int keep = P.shift && d >= KM_PP_KEEP_D;
    if (keep)
        P.low = malloc(sizeof(double) * rows * (size_t)m);
    km_error e = {0};
    const int cc_bad = km_centers_init(&P.cc, m, d, src->prec, &e) || km_centers_keep_rows(&P.cc);
    if (!P.D || !P.cand || !P.thr || !P.sums || !P.red || !P.loc || !P.all || !P.cand_rows
        || (keep && !P.low)
        || !P.gather || cc_bad)
        km_fail(err, KM_ERR_MEMORY, "rank %d: out of memory for k-means++", c->rank);
    const int from = *chosen > 0 ? *chosen : 1;
    if (!km_comm_agree(c, err)) {
        int64_t first = (int64_t)km_rand_below(seed, KM_STREAM_KMEANSPP, 0, (uint64_t)blk->n);
        if (*chosen > 0 || !km_fetch_rows(c, blk, src, &first, 1, centroids, err)) {
            dist_pass(src, centroids, from, P.D, near, err);
            km_comm_agree(c, err);
        }
        /* test hooks: the progress period; a SIGUSR1 raised before step STOP_AT */
        const char *every = getenv("KMEANS_TEST_PROGRESS_SECONDS");
        const char *stop_at = getenv("KMEANS_TEST_INIT_STOP_AT");
        const double t0 = km_now(), period = every ? atof(every) : KM_INIT_PROGRESS_SECONDS;
        double last = t0, last_save = t0;
        int s = from, last_chosen = from;
        for (; s < k && !err->code; s++) {
            if (stop_at && c->rank == 0 && s == atoi(stop_at))
                raise(SIGUSR1);
            const int64_t due = opt->checkpoint[0] ? pp_due(c, opt, saver, last_save) : 0;
            if (due == 2)
                break;
            if (due == 1) {
                saver->save(saver->ctx, s);
                last_save = km_now();
            }
            pp_step(c, blk, src, seed, s, &P, centroids, err);
            pp_progress(progress, s + 1, k, t0, period, &last, &last_chosen);
        }
        *chosen = s;
    }
    if (!e.code)
        km_centers_free(&P.cc);
    free(P.D);
    free(P.cand);
    free(P.thr);
    free(P.sums);
    free(P.red);
    free(P.loc);
    free(P.all);
    free(P.cand_rows);
    free(P.gather);
    free(P.low);
    return err->code;
}

int km_init_centroids(const km_comm *c, const km_options *opt, const km_block *blk,
                      km_source *src, double *centroids, int32_t *scratch, FILE *progress,
                      const km_init_saver *saver, int *chosen, km_error *err)
{
    const int k = opt->k;
    if (opt->init == KM_INIT_KMEANSPP)
        return kmeanspp(c, opt, blk, src, k, centroids, scratch, progress, saver, chosen, err);
    *chosen = k;
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
