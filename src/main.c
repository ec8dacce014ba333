/* main.c — the driver: parse options, read this rank's rows, check them,
 * choose initial centroids, iterate, write the result, report. Errors travel
 * up as codes agreed by every rank; this file prints them once (rank 0) and
 * turns them into the exit status documented in --help. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <omp.h>
#include "checkpoint.h"
#include "comm.h"
#include "data.h"
#include "fit.h"
#include "h5io.h"
#include "init.h"
#include "kernels.h"
#include "options.h"
#include "report.h"
#include "signals.h"

typedef struct {
    km_data data;         /* the rows: shape, plan, source, statistics */
    km_model model;
    int32_t *labels;
    km_result res;
    km_timers tm;
    km_ckpt ckpt;         /* the checkpoint resumed from (--resume) */
    char output[4200];
    int threads;
} km_run;

static int check_k(const km_options *opt, const km_block *blk, int k, km_error *err)
{
    if (k > blk->n)
        return km_fail(err, KM_ERR_USAGE, "-k %d is larger than the %lld rows of '%s' in '%s'",
                       k, (long long)blk->n, opt->dataset, opt->input);
    for (int t = 0; opt->init == KM_INIT_ROWS && t < opt->n_init_rows; t++)
        if (opt->init_rows[t] >= blk->n)
            return km_fail(err, KM_ERR_USAGE, "--init rows: row %lld is out of range ('%s' "
                           "has %lld rows, counted from 0)", (long long)opt->init_rows[t],
                           opt->dataset, (long long)blk->n);
    return 0;
}

/* Resolve the output name and check it can be written (rank 0, then agreed). */
static int prepare_output(const km_comm *c, const km_options *opt, int k, char *out,
                          size_t len, km_error *err)
{
    km_options tmp = *opt;
    tmp.k = k;
    if (opt->output[0])
        snprintf(out, len, "%s", opt->output);
    else
        km_options_default_output(&tmp, out, len);
    if (c->rank == 0) {
        if (!opt->output[0] && mkdir("results", 0777) != 0 && errno != EEXIST)
            km_fail(err, KM_ERR_OUTPUT, "cannot create directory 'results': %s",
                    strerror(errno));
        else
            km_check_output_path("output", out, err);
    }
    return km_comm_agree(c, err);
}

/* The model's shape before any row is read: k from the checkpoint on
 * --resume, from an --init file, or -k; centroids from the checkpoint or the
 * file when they come from there (the others need the rows: init_centroids). */
static int init_model(const km_comm *c, const km_options *opt, km_run *r, km_error *err)
{
    double *given = NULL;
    int k = opt->k;
    const km_block *blk = &r->data.blk;
    if (opt->resume) {
        if (km_ckpt_read(c, opt, blk, &r->ckpt, err))
            return err->code;
        k = r->ckpt.k;
    } else if (opt->init == KM_INIT_FILE &&
               km_read_centroids(c, opt->init_file, opt->init_dataset, blk->d, &k, &given,
                                 err)) {
        return err->code;
    }
    if (!err->code && !check_k(opt, blk, k, err) && given) {
        int col = 0;
        int64_t bad = km_find_nonfinite(given, k, blk->d, KM_F64, &col);
        if (bad >= 0)
            km_fail(err, KM_ERR_INPUT, "--init %s: centroid row %lld, column %d is NaN or Inf",
                    opt->init_spec, (long long)bad, col);
    }
    r->model.k = k;
    r->model.d = blk->d;
    r->model.centroids = malloc(sizeof(double) * (size_t)k * blk->d);
    r->model.sizes = calloc((size_t)k, sizeof(int64_t));
    r->labels = malloc(sizeof(int32_t) * (size_t)(blk->rows ? blk->rows : 1));
    if (!err->code && (!r->model.centroids || !r->model.sizes || !r->labels))
        km_fail(err, KM_ERR_MEMORY, "rank %d: out of memory for the model and labels", c->rank);
    if (!km_comm_agree(c, err) && !prepare_output(c, opt, k, r->output, sizeof r->output, err)
        && given)
        memcpy(r->model.centroids, given, sizeof(double) * (size_t)k * blk->d);
    free(given);
    return err->code;
}

/* Rank 0: which signal stopped the run `when`, and how to continue it. */
static void report_stopped(const km_comm *c, const km_options *opt, const char *when)
{
    if (c->rank != 0)
        return;
    int sig = km_signal_pending();
    fprintf(stderr, "kmeans: stopped by %s%s %s; checkpoint '%s' holds the run: continue it "
            "with the same command and --resume (exit status %d)\n",
            sig ? "SIG" : "a signal to another rank", sig ? sigabbrev_np(sig) : "", when,
            opt->checkpoint, KM_EXIT_CHECKPOINTED);
}

/* Collective: k-means++'s centroids [0, chosen) into the checkpoint (iteration
 * 0, the other rows zero) for --resume to go on from. */
static int write_init(const km_comm *c, const km_options *opt, km_run *r, int chosen,
                      FILE *progress, km_error *err)
{
    const size_t d = (size_t)r->model.d;
    memset(r->model.centroids + (size_t)chosen * d, 0,
           sizeof(double) * (size_t)(r->model.k - chosen) * d);   /* not chosen yet */
    r->data.src.sync(&r->data.src);   /* HDF5 is ours while the checkpoint is written */
    const km_ckpt ck = {.iteration = 0, .k = r->model.k, .d = r->model.d, .chosen = chosen,
                        .centroids = r->model.centroids, .maxabs = r->data.maxabs,
                        .tol_scale = r->data.mean_variance, .algorithm = r->res.algorithm};
    const double t0 = km_now();
    if (km_ckpt_write(c, opt, &r->data.blk, &ck, err))
        return err->code;
    if (progress) {
        fprintf(progress, "checkpoint: k-means++'s %d of %d centroids written to %s (%.3f s)\n",
                chosen, r->model.k, opt->checkpoint, km_now() - t0);
        fflush(progress);
    }
    return 0;
}

typedef struct {
    const km_comm *c;
    const km_options *opt;
    km_run *r;
    FILE *progress;
} init_save_ctx;

/* k-means++'s periodic save (km_init_saver): a failure is a warning, as in the
 * fit, and the previous checkpoint stays. */
static void save_init(void *ctx, int chosen)
{
    const init_save_ctx *x = ctx;
    km_error e = {0};
    if (write_init(x->c, x->opt, x->r, chosen, x->progress, &e) && x->c->rank == 0)
        fprintf(stderr, "kmeans: warning: %s; continuing\n", e.msg);
}

/* The first centroids chosen from the rows (--init kmeans++/first/random/rows),
 * or on --resume the rest of a k-means++ that a signal stopped, from the
 * checkpoint's centroids once the data is seen to be the same. *chosen: how
 * many there are on return (k, or fewer when a signal stopped k-means++). */
static int init_centroids(const km_comm *c, const km_options *opt, km_run *r, FILE *progress,
                          int *chosen, km_error *err)
{
    const int k = r->model.k;
    *chosen = k;
    if (opt->init == KM_INIT_FILE || (opt->resume && r->ckpt.chosen == k))
        return 0;
    *chosen = 0;
    if (opt->resume) {
        if (km_ckpt_same_data(opt, &r->ckpt, r->data.maxabs, r->data.mean_variance, err))
            return err->code;
        *chosen = r->ckpt.chosen;
        memcpy(r->model.centroids, r->ckpt.centroids,
               sizeof(double) * (size_t)*chosen * r->model.d);
        if (progress)
            fprintf(progress, "init: k-means++ continues from the %d of %d centroids in '%s'\n",
                    *chosen, k, opt->checkpoint);
    }
    km_options o2 = *opt;
    o2.k = k;
    init_save_ctx x = {c, opt, r, progress};
    const km_init_saver saver = {save_init, &x};
    /* the labels' memory is free until the fit */
    return km_init_centroids(c, &o2, &r->data.blk, &r->data.src, r->model.centroids, r->labels,
                             progress, opt->checkpoint[0] ? &saver : NULL, chosen, err);
}

/* A signal stopped k-means++ with `chosen` of the k centroids: keep them. */
static int init_stopped(const km_comm *c, const km_options *opt, km_run *r, int chosen,
                        FILE *progress, km_error *err)
{
    if (write_init(c, opt, r, chosen, progress, err))
        return err->code;
    char when[96];
    snprintf(when, sizeof when, "during k-means++ with %d of %d centroids chosen", chosen,
             r->model.k);
    report_stopped(c, opt, when);
    return KM_EXIT_CHECKPOINTED;
}

/* Collective: peak resident memory of each rank, min / mean / max in MB. */
static void peak_rss(const km_comm *c, double *mb)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double mine = (double)ru.ru_maxrss / 1024.0, ext[2] = {mine, -mine}, sum = mine;
    km_comm_max(c, ext, 2);
    km_comm_sum(c, &sum, 1);
    mb[0] = -ext[1];
    mb[1] = sum / c->size;
    mb[2] = ext[0];
}

static void finish_report(const km_comm *c, const km_options *opt, km_run *r)
{
    if (c->rank != 0)
        return;
    if (!opt->quiet)
        km_report_timing(stdout, &r->tm, &r->res);
    km_report_summary(stdout, opt, &r->data.blk, r->model.k, &r->res, &r->tm, r->output);
    if (opt->summary_json[0] &&
        km_report_json(opt->summary_json, opt, &r->data, r->model.k, &r->res, &r->tm, c->size,
                       r->threads, r->output))
        fprintf(stderr, "kmeans: warning: cannot append to --summary-json '%s': %s\n",
                opt->summary_json, strerror(errno));
    fflush(stdout);
}


static int run(const km_comm *c, const km_options *opt, km_run *r, km_error *err)
{
    if (opt->checkpoint[0] && km_ckpt_check(c, opt, err))
        return err->code;
    double t = km_now();
    if (km_data_open(c, opt, &r->data, err) || init_model(c, opt, r, err))
        return err->code;
    r->threads = (int)km_comm_max_i64(c, omp_get_max_threads());
    r->res.algorithm = km_choose_algorithm(opt, r->model.k, r->data.blk.d);
    if (km_data_plan(c, opt, &r->data, r->model.k, r->threads, &r->res.algorithm, err))
        return err->code;
    FILE *progress = c->rank == 0 && !opt->quiet ? stdout : NULL;
    if (progress)
        km_report_header(progress, opt, &r->data, r->model.k, r->res.algorithm, c->size,
                         r->threads);
    if (km_data_load(c, opt, &r->data, err))
        return err->code;
    r->tm.t[KM_T_READ] = km_now() - t;
    t = km_now();
    int chosen = 0;
    if (init_centroids(c, opt, r, progress, &chosen, err))
        return err->code;
    r->tm.t[KM_T_INIT] = km_now() - t;
    if (chosen < r->model.k)
        return init_stopped(c, opt, r, chosen, progress, err);
    if (progress)
        km_report_columns(progress);
    const int resume = opt->resume && r->ckpt.chosen == r->model.k;   /* else a fresh fit */
    if (km_fit(c, opt, &r->data, &r->model, r->labels, resume ? &r->ckpt : NULL, &r->res,
               &r->tm, progress, err))
        return err->code;
    if (r->res.stop == KM_STOP_SIGNAL) {
        char when[64];
        snprintf(when, sizeof when, "after iteration %d", r->res.iterations);
        report_stopped(c, opt, when);
        return KM_EXIT_CHECKPOINTED;
    }
    km_output o = {.opt = opt, .data = &r->data, .blk = &r->data.blk, .model = &r->model,
                   .labels = r->labels, .res = &r->res, .timers = &r->tm,
                   .write_start = km_now(), .ranks = c->size, .threads = r->threads};
    if (km_write_result(c, r->output, &o, err))
        return err->code;
    if (opt->checkpoint[0])
        km_ckpt_remove(c, opt);
    peak_rss(c, r->res.rss_mb);
    finish_report(c, opt, r);
    return 0;
}

int main(int argc, char **argv)
{
    km_comm c;
    km_signals_install();
    km_comm_init(&argc, &argv, &c);
    km_h5io_init();
    km_options opt;
    km_error err = {0};
    int rc = km_options_parse(argc, argv, &opt, &err);
    if (rc != KM_PARSE_RUN || !opt.checkpoint[0])
        km_signals_release();
    if (rc == KM_PARSE_HELP && c.rank == 0)
        km_options_help(stdout);
    else if (rc == KM_PARSE_VERSION && c.rank == 0)
        printf("kmeans (hpc-kmeans) %s\n", KM_VERSION);
    km_run r = {0};
    int status = 0;
    if (rc == KM_PARSE_RUN)
        status = run(&c, &opt, &r, &err);
    if (err.code && c.rank == 0)
        fprintf(stderr, "kmeans: error: %s\n", err.msg);
    km_data_free(&r.data);
    free(r.model.centroids);
    free(r.model.sizes);
    free(r.labels);
    km_history_free(&r.res.hist);
    km_ckpt_free(&r.ckpt);
    km_options_free(&opt);
    km_comm_finalize();
    return status == KM_EXIT_CHECKPOINTED ? status : km_exit_status(err.code);
}
