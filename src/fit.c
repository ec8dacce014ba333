/* fit.c — the iteration loop shared by every strategy. One allreduce per
 * iteration carries the exact cluster totals (sums, counts, squared norms: the
 * inertia is derived from them), changed labels and an error flag;
 * every rank then derives the same new centroids. Stopping follows
 * scikit-learn's Lloyd: no label changed (that pass counts as an iteration),
 * or shift <= tol; when stopping by tol or --max-iter a final assignment makes
 * the labels, sizes and inertia those of the returned centroids. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "checkpoint.h"
#include "data.h"
#include "fit.h"
#include "hamerly.h"
#include "init.h"
#include "kernels.h"
#include "lloyd.h"
#include "report.h"
#include "signals.h"
#include "source.h"
#include "yinyang.h"

typedef struct {
    const km_comm *c;
    const km_block *blk;
    km_centers kc;
    km_threads *th;
    km_hamerly *ham;   /* the Hamerly strategy's bounds, or NULL */
    km_yinyang *yy;    /* the Yinyang strategy's bounds, or NULL */
    km_source *src;    /* the rows, chunk by chunk (data.c) */
    km_acc *tot;       /* this rank's exact totals of its labels (each pass adds its moves) */
    double *pack;      /* tot as limbs + the flags below: what the rank sends to the
                          allreduce; it keeps its totals, so a pass rewrites only the
                          clusters it moved rows into or out of */
    double *red;       /* the allreduced pack (pack itself on one rank) */
    size_t pack_len;
    int limbs, bits;   /* fixed.h limb layout for this many ranks */
    double *acc;       /* the allreduced pass in km_acc_len layout */
    km_unpack_cache *uc; /* the clusters' unpacked values of the last pass */
    size_t acc_len;
    double *old;       /* centroids the current labels refer to */
    unsigned char *same; /* k: 1 where the model's centroid c is that of old (the
                          last pass's): the pass's centroids are updated around it */
    double last_ckpt;  /* km_now() at the last checkpoint (or the start) */
    int stop_asked;    /* agreed in the last allreduce: a rank got a stop signal */
    int ckpt_due;      /* agreed: --checkpoint-seconds passed on some rank */
    int passes;        /* assignment passes so far */
} fit_state;

/* Flags that ride on the iteration's allreduce, after the packed totals. */
enum { FLAG_ERROR, FLAG_SIGNAL, FLAG_TIME, FLAG_COUNT };

/* Assignment pass + the iteration's allreduce; returns the agreed error. */
static int assign_reduce(fit_state *st, const km_options *opt, const double *centroids,
                         int32_t *labels, km_timers *tm, km_error *err)
{
    st->passes++;
    double t0 = km_now();
    km_centers_update(&st->kc, centroids, st->same);
    km_acc_clear_pass(st->tot);   /* the totals carry on: a pass adds its moves */
    int rc = st->yy    ? km_yinyang_pass(st->yy, st->src, &st->kc, labels, st->th, st->tot, err)
             : st->ham ? km_hamerly_pass(st->ham, st->src, &st->kc, labels, st->th, st->tot, err)
                       : km_lloyd_pass(st->src, &st->kc, labels, st->th, st->tot, err);
    /* with one rank the totals are read where they are (km_acc_unpack_local): only
       the flags go through the buffer */
    const int local = st->c->size == 1;
    if (!local && st->passes == 1)   /* pack holds nothing yet; later it keeps tot's */
        km_acc_pack(st->tot, st->limbs, st->bits, st->pack);
    else if (!local)
        km_acc_pack_moves(st->tot, st->limbs, st->bits, st->pack);
    double *flag = st->pack + st->pack_len;
    double t1 = km_now();
    flag[FLAG_ERROR] = rc ? 1.0 : 0.0;
    flag[FLAG_SIGNAL] = km_signal_pending() ? 1.0 : 0.0;
    flag[FLAG_TIME] = opt->checkpoint_seconds > 0
                      && t1 - st->last_ckpt >= opt->checkpoint_seconds ? 1.0 : 0.0;
    km_comm_barrier(st->c);   /* splits load imbalance from communication */
    double t2 = km_now();
    if (st->red != st->pack)
        km_comm_sum_into(st->c, st->pack, st->red, st->pack_len + FLAG_COUNT);
    flag = st->red + st->pack_len;
    tm->t[KM_T_ASSIGN] += t1 - t0;
    tm->t[KM_T_WAIT] += t2 - t1;
    tm->t[KM_T_ALLREDUCE] += km_now() - t2;
    st->stop_asked = flag[FLAG_SIGNAL] > 0;
    st->ckpt_due = flag[FLAG_TIME] > 0;
    if (flag[FLAG_ERROR] > 0)
        return km_comm_agree(st->c, err);
    /* the totals back to centroid sums and inertia: the update's first step (its
     * time was counted nowhere before, 6-22 % of a fit on 10,000 x 20,000) */
    const double t3 = km_now();
    if (local)   /* the same bits, without packing the k x d totals and decoding them */
        km_acc_unpack_local(st->tot, &st->kc, st->acc, st->uc);
    else
        km_acc_unpack_cached(st->red, &st->kc, st->limbs, st->bits, st->acc, st->uc);
    tm->t[KM_T_UPDATE] += km_now() - t3;
    return 0;
}

/* Re-seed the empty clusters with the points farthest from their centroid
 * (ties: lowest global row), the same choice on every rank. */
static int reseed_empty(fit_state *st, const int32_t *labels, double *centroids, int empty,
                        km_error *err)
{
    const km_block *blk = st->blk;
    const int d = blk->d, k = st->kc.k, P = st->c->size;
    double *dist = malloc(sizeof(double) * (size_t)empty);
    int64_t *row = malloc(sizeof(int64_t) * (size_t)empty);
    double *alld = malloc(sizeof(double) * (size_t)empty * P);
    uint64_t *allr = malloc(sizeof(uint64_t) * (size_t)empty * P);
    double *pts = malloc(sizeof(double) * (size_t)empty * d);
    if (!dist || !row || !alld || !allr || !pts)
        km_fail(err, KM_ERR_MEMORY, "out of memory re-seeding %d empty clusters", empty);
    for (int t = 0; !err->code && t < empty; t++) {
        dist[t] = -1;
        row[t] = -1;
    }
    km_source *src = st->src;
    for (int64_t f = 0, n; !err->code && (n = km_source_span(src, f)) > 0; f += n) {
        const void *x;
        if (!src->get(src, f, n, &x, err))
            km_farthest(x, n, d, blk->prec, st->old, labels + f, f, empty, dist, row);
    }
    if (!km_comm_agree(st->c, err)) {
        for (int t = 0; t < empty; t++)
            row[t] = row[t] >= 0 ? blk->first + row[t] : -1;
        km_comm_allgather_f64(st->c, dist, empty, alld);
        km_comm_allgather_u64(st->c, (const uint64_t *)row, empty, allr);
        for (int t = 0; t < empty; t++) {   /* global top `empty`, same order everywhere */
            int b = -1;
            for (int i = 0; i < empty * P; i++) {
                int64_t r = (int64_t)allr[i];
                if (r < 0)
                    continue;
                if (b < 0 || alld[i] > alld[b] || (alld[i] == alld[b] && r < (int64_t)allr[b]))
                    b = i;
            }
            row[t] = b < 0 ? -1 : (int64_t)allr[b];
            if (b >= 0)
                allr[b] = (uint64_t)-1;
        }
        if (km_fetch_rows(st->c, blk, src, row, empty, pts, err))
            goto done;
        const double *counts = km_acc_counts(st->acc, k, d);
        for (int c = 0, t = 0; c < k; c++)
            if (counts[c] == 0 && row[t] >= 0) {
                memcpy(centroids + (size_t)c * d, pts + (size_t)(t++) * d, sizeof(double) * d);
                st->same[c] = 0;
            }
    }
done:
    free(dist);
    free(row);
    free(alld);
    free(allr);
    free(pts);
    return err->code;
}

/* New centroids = sums / counts; empty clusters keep their place until
 * re-seeded, and so does a cluster no row joined or left: its totals, so its
 * sums / counts, are those of the last update (or, on the first pass, of none:
 * every row joins a cluster then). st->same says which did. Returns the number
 * of empty clusters. */
static int update_centroids(fit_state *st, double *centroids)
{
    const int k = st->kc.k, d = st->blk->d;
    const double *counts = km_acc_counts(st->acc, k, d), *moved = km_acc_moved(st->acc, k, d);
    int empty = 0;
    for (int c = 0; c < k; c++) {
        st->same[c] = counts[c] == 0 || moved[c] == 0;
        if (counts[c] == 0)
            empty++;
        if (st->same[c])
            continue;
        for (int j = 0; j < d; j++)
            centroids[(size_t)c * d + j] = st->acc[(size_t)c * d + j] / counts[c];
    }
    return empty;
}

/* sum of (a - b)^2 over k x d, in that order; the centroids with same[c] add
 * exact zeros to it, so they are passed over. */
static double centroid_shift(const double *a, const double *b, int k, int d,
                             const unsigned char *same)
{
    double s = 0;
    for (int c = 0; c < k; c++) {
        if (same[c])
            continue;
        for (size_t i = (size_t)c * d; i < (size_t)(c + 1) * d; i++)
            s += (a[i] - b[i]) * (a[i] - b[i]);
    }
    return s;
}

/* old = the model's centroids, but for the ones it holds already (same) */
static void keep_centroids(fit_state *st, const double *centroids)
{
    const int k = st->kc.k, d = st->blk->d;
    for (int c = 0; c < k; c++)
        if (!st->same[c])
            memcpy(st->old + (size_t)c * d, centroids + (size_t)c * d, sizeof(double) * d);
}

static int fit_setup(fit_state *st, const km_comm *c, const km_options *opt, km_data *D,
                     int k, km_algorithm alg, km_error *err)
{
    const km_block *blk = &D->blk;
    memset(st, 0, sizeof *st);
    st->last_ckpt = km_now();
    st->c = c;
    st->blk = blk;
    st->src = &D->src;
    const int64_t block_rows = opt->chunk_rows ? opt->chunk_rows
                                               : km_default_block_rows(blk->d, k, blk->prec);
    km_fx_limbs(c->size, &st->limbs, &st->bits);
    if (!km_centers_init(&st->kc, k, blk->d, blk->prec, err)) {
        st->acc_len = km_acc_len(k, blk->d);
        st->acc = malloc(sizeof(double) * st->acc_len);
        st->pack_len = km_acc_pack_len(k, blk->d, st->limbs);
        st->pack = malloc(sizeof(double) * (st->pack_len + FLAG_COUNT));
        st->red = c->size > 1 ? malloc(sizeof(double) * (st->pack_len + FLAG_COUNT)) : st->pack;
        st->tot = km_acc_new(k, blk->d);
        st->uc = km_unpack_cache_new(k, blk->d);
        st->old = malloc(sizeof(double) * (size_t)k * blk->d);
        st->same = calloc((size_t)k, 1);   /* nothing loaded yet */
        st->th = st->tot ? km_threads_new(&st->kc, block_rows,
                                          D->shared_totals ? st->tot : NULL) : NULL;
        if (!st->acc || !st->pack || !st->red || !st->tot || !st->uc || !st->old || !st->same
            || !st->th)
            km_fail(err, KM_ERR_MEMORY, "rank %d: out of memory for the accumulators of "
                    "k=%d x d=%d per thread", c->rank, k, blk->d);
        else if (alg == KM_ALG_HAMERLY && !(st->ham = km_hamerly_new(&st->kc, blk->rows, st->th)))
            km_fail(err, KM_ERR_MEMORY, "rank %d: out of memory for Hamerly's bounds of %lld "
                    "rows (%.2f GB; --algorithm lloyd needs none)", c->rank,
                    (long long)blk->rows, km_hamerly_bytes(k, blk->d, blk->rows,
                    km_threads_count(st->th), block_rows, blk->prec) / 1e9);
        else if (alg == KM_ALG_YINYANG &&
                 (km_centers_keep_rows(&st->kc) ||
                  !(st->yy = km_yinyang_new(&st->kc, blk->rows, st->th, D->yinyang_groups))))
            km_fail(err, KM_ERR_MEMORY, "rank %d: out of memory for Yinyang's bounds of %lld "
                    "rows (%.2f GB; --algorithm hamerly needs 2 floats a row)", c->rank,
                    (long long)blk->rows,
                    km_yinyang_bytes(k, blk->d, blk->rows, km_threads_count(st->th),
                                     D->yinyang_groups, block_rows, blk->prec) / 1e9);
    }
    if (km_comm_agree(c, err))
        return err->code;
    /* the scales of the exact sums: max |x_ij| over all ranks */
    km_centers_set_range(&st->kc, D->maxabs, D->colmean);
    return 0;
}

static void fit_teardown(fit_state *st)
{
    if (st->src)
        st->src->sync(st->src);   /* the caller may use HDF5 next */
    km_centers_free(&st->kc);
    km_hamerly_free(st->ham);
    km_yinyang_free(st->yy);
    km_threads_free(st->th);
    free(st->acc);
    if (st->red != st->pack)
        free(st->red);
    free(st->pack);
    km_acc_free(st->tot);
    km_unpack_cache_free(st->uc);
    free(st->old);
    free(st->same);
}

static km_stop_reason stop_rule(const km_options *opt, int iter, int64_t changed, int empty,
                                double shift)
{
    if (changed == 0 && empty == 0)
        return KM_STOP_NO_CHANGE;
    if (shift <= opt->tol)
        return KM_STOP_TOL;
    return iter >= opt->max_iter ? KM_STOP_MAX_ITER : KM_STOP_NONE;
}

/* Write the state after iteration `iter` (0: right after init). */
static int checkpoint(fit_state *st, const km_options *opt, const km_model *m,
                      const km_result *res, int iter, km_timers *tm, FILE *progress,
                      km_error *err)
{
    double t0 = km_now();
    st->src->sync(st->src);   /* HDF5 is ours while the checkpoint is written */
    km_ckpt ck = {.iteration = iter, .k = m->k, .d = m->d, .chosen = m->k,
                  .centroids = m->centroids,
                  .previous = st->old, .maxabs = st->kc.maxabs,
                  .tol_scale = res->mean_variance, .hist = res->hist,
                  .algorithm = res->algorithm};
    int rc = km_ckpt_write(st->c, opt, st->blk, &ck, err);
    st->last_ckpt = km_now();
    tm->t[KM_T_WRITE] += st->last_ckpt - t0;
    if (!rc && progress) {
        fprintf(progress, "checkpoint: iteration %d written to %s (%.3f s)\n", iter,
                opt->checkpoint, st->last_ckpt - t0);
        fflush(progress);
    }
    return rc;
}

/* Continue from a checkpoint: check the data is the same (column maxima and
 * variance are exact, so equal bits or another matrix), take its centroids and
 * history, and rebuild the labels of its last iteration with one pass. */
static int resume_from(fit_state *st, const km_options *opt, const km_ckpt *ck, km_model *m,
                       int32_t *labels, km_result *res, km_timers *tm, km_error *err)
{
    const size_t kd = (size_t)m->k * m->d;
    if (km_ckpt_same_data(opt, ck, st->kc.maxabs, res->mean_variance, err))
        return err->code;
    memcpy(m->centroids, ck->centroids, sizeof(double) * kd);
    for (int t = 0; t < ck->hist.len; t++)
        if (km_history_push(&res->hist, ck->hist.inertia[t], ck->hist.shift[t],
                            ck->hist.changed[t], ck->hist.empty[t], ck->hist.seconds[t],
                            ck->hist.skipped[t], err))
            return err->code;   /* the same on every rank: no agreement needed */
    res->iterations = ck->iteration;
    if (ck->iteration == 0)
        return 0;
    res->inertia = ck->hist.inertia[ck->hist.len - 1];
    memcpy(st->old, ck->previous, sizeof(double) * kd);
    return assign_reduce(st, opt, st->old, labels, tm, err);
}

/* After iteration iter: write a checkpoint if one is due or a stop was asked
 * for. Returns 1 when the run must stop here (checkpointed on a signal). A
 * failed periodic checkpoint is a warning: the run goes on and the previous
 * checkpoint stays; a failed one on a signal is the run's error. */
static int maybe_checkpoint(fit_state *st, const km_options *opt, const km_model *m,
                            km_result *res, int iter, km_timers *tm, FILE *progress,
                            km_error *err)
{
    const int by_count = opt->checkpoint_every && iter % opt->checkpoint_every == 0;
    if (!st->stop_asked && !st->ckpt_due && !by_count)
        return 0;
    if (checkpoint(st, opt, m, res, iter, tm, progress, err)) {
        if (st->stop_asked)
            return 1;
        if (st->c->rank == 0)
            fprintf(stderr, "kmeans: warning: %s; continuing\n", err->msg);
        *err = (km_error){0};
        return 0;
    }
    if (st->stop_asked)
        res->stop = KM_STOP_SIGNAL;
    return st->stop_asked;
}

km_algorithm km_choose_algorithm(const km_options *opt, int k, int d)
{
    if (opt->algorithm != KM_ALG_AUTO)
        return opt->algorithm;
    if (d >= KM_AUTO_YINYANG_D && (int64_t)k * d >= KM_AUTO_YINYANG_KD
        && k <= KM_AUTO_YINYANG_MAX_K)
        return KM_ALG_YINYANG;
    const int hamerly = (int64_t)k * d >= KM_AUTO_HAMERLY_KD
                        || (k >= 2 && d <= KM_AUTO_HAMERLY_LOW_D);
    return hamerly ? KM_ALG_HAMERLY : KM_ALG_LLOYD;
}

int km_fit(const km_comm *c, const km_options *opt, km_data *D, km_model *m, int32_t *labels,
           const km_ckpt *resume, km_result *res, km_timers *tm, FILE *progress,
           km_error *err)
{
    fit_state st;
    const km_block *blk = &D->blk;
    const int k = m->k, d = m->d, ckpt_on = opt->checkpoint[0] != 0;
    if (fit_setup(&st, c, opt, D, k, res->algorithm, err)) {
        fit_teardown(&st);
        return err->code;
    }
    for (int64_t i = 0; i < blk->rows; i++)
        labels[i] = -1;
    res->mean_variance = D->mean_variance;
    if (resume && resume_from(&st, opt, resume, m, labels, res, tm, err)) {
        fit_teardown(&st);
        return err->code;
    }
    if (ckpt_on && !resume && km_comm_max_i64(c, km_signal_pending())) {
        st.stop_asked = 1;   /* asked to stop during read or init: keep the init */
        maybe_checkpoint(&st, opt, m, res, 0, tm, progress, err);
    }
    res->allreduce_bytes = (int64_t)(sizeof(double) * (st.pack_len + FLAG_COUNT));
    const double scale = res->mean_variance > 0 ? res->mean_variance : 1.0;
    for (int iter = res->iterations + 1; res->stop == KM_STOP_NONE && !err->code; iter++) {
        double t0 = km_now();
        keep_centroids(&st, m->centroids);
        if (assign_reduce(&st, opt, st.old, labels, tm, err))
            break;
        double tu = km_now();
        int empty = update_centroids(&st, m->centroids);
        if (empty && reseed_empty(&st, labels, m->centroids, empty, err))
            break;
        double shift = centroid_shift(m->centroids, st.old, k, d, st.same) / scale;
        tm->t[KM_T_UPDATE] += km_now() - tu;
        const double inertia = st.acc[km_acc_inertia(k, d)];
        const int64_t changed = (int64_t)st.acc[km_acc_changed(k, d)];
        const double skipped = 1 - st.acc[km_acc_distances(k, d)] / ((double)blk->n * k);
        if (st.ham)
            km_hamerly_note_skipped(st.ham, skipped);
        if (km_history_push(&res->hist, inertia, shift, changed, empty, km_now() - t0, skipped,
                            err))
            break;   /* a local failure every rank meets the same way */
        if (progress)
            km_report_iteration(progress, iter, inertia, shift, changed, empty, skipped,
                                km_now() - t0);
        res->iterations = iter;
        res->iterations_run++;
        res->inertia = inertia;
        res->stop = stop_rule(opt, iter, changed, empty, shift);
        if (res->stop == KM_STOP_NONE && ckpt_on &&
            maybe_checkpoint(&st, opt, m, res, iter, tm, progress, err))
            break;
        if ((res->stop == KM_STOP_TOL || res->stop == KM_STOP_MAX_ITER)
            && assign_reduce(&st, opt, m->centroids, labels, tm, err))
            break;   /* final E-step: labels of the returned centroids */
        if (res->stop != KM_STOP_SIGNAL)
            res->inertia = st.acc[km_acc_inertia(k, d)];
    }
    res->passes = st.passes;
    if (!err->code) {
        const double *counts = km_acc_counts(st.acc, k, d);
        for (int c2 = 0; c2 < k; c2++)
            m->sizes[c2] = (int64_t)counts[c2];
    }
    fit_teardown(&st);
    return err->code;
}
