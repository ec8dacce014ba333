/* data.c — the rows a rank clusters, from file to the first iteration.
 *
 * Memory plan: a rank's rows stay in memory when they fit --memory-limit next
 * to the labels, the strategy's bounds and the accumulators; otherwise every
 * pass streams them (stream.c) in chunks as large as the limit allows, cut at
 * the file's HDF5 chunk boundaries.
 *
 * Statistics are exact sums (fixed.h) over all ranks, so the features kept,
 * their means and scales, the column maxima and the tol scale are the same bits
 * for any layout, in core or streamed. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "data.h"
#include "fixed.h"
#include "h5io.h"
#include "hamerly.h"
#include "kernels.h"
#include "yinyang.h"

#define KM_SHARED_FRACTION 0.15          /* the threads' own totals, of the rank's rows */
#define KM_SHARED_MIN (64.0 * 1048576)   /* ... or up to this */
/* A stream's HDF5 chunk cache: one chunk. Streamed chunks end on the file's
 * chunk boundaries, so every HDF5 chunk is read whole, once a pass; only the two
 * a rank shares with its neighbours are read in part. */
#define KM_CACHE_MAX (64L << 20)

static double node_bytes(void);

int km_data_open(const km_comm *c, const km_options *opt, km_data *D, km_error *err)
{
    memset(D, 0, sizeof *D);
    const int node_ranks = km_comm_node_ranks(c);
    D->memory_limit = opt->memory_limit ? opt->memory_limit
                                        : (int64_t)(0.8 * node_bytes() / node_ranks);
    const int64_t agg = km_io_agg_bytes(D->memory_limit);
    km_h5io_set_agg(agg);   /* before any file is opened */
    D->io_agg = c->size > 1 ? agg : 0;
    if (km_read_block(c, opt->input, opt->dataset, opt->transpose, 0, &D->blk, D->hchunk, err))
        return err->code;
    D->d_raw = D->blk.d;
    if (opt->top_variance > D->d_raw)
        return km_fail(err, KM_ERR_USAGE, "--top-variance %d: '%s' in '%s' has only %lld "
                       "features", opt->top_variance, opt->dataset, opt->input,
                       (long long)D->d_raw);
    if (opt->top_variance)
        D->blk.d = opt->top_variance;
    return 0;
}

/* One cgroup limit file's value, or 0 when absent or unlimited ("max"). */
static double limit_file(const char *path)
{
    FILE *f = fopen(path, "r");
    double v = 0;
    if (f) {
        if (fscanf(f, "%lf", &v) != 1 || v <= 0 || v >= 0x1p62)
            v = 0;
        fclose(f);
    }
    return v;
}

double km_cgroup_limit(const char *self, const char *root)
{
    FILE *f = fopen(self, "r");
    char line[4096];
    double best = 0;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = 0;
        const char *ctl = c1 + 1, *cg = c2 + 1, *sub, *file;
        if (!*ctl) {   /* v2: "0::/path" */
            sub = "";
            file = "memory.max";
        } else {       /* v1: "N:a,memory,b:/path" */
            char list[256];
            snprintf(list, sizeof list, ",%s,", ctl);
            if (!strstr(list, ",memory,"))
                continue;
            sub = "/memory";
            file = "memory.limit_in_bytes";
        }
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", *cg ? cg : "/");
        for (;;) {   /* the cgroup, then each ancestor up to the root: the tightest rules */
            char path[8400];
            snprintf(path, sizeof path, "%s%s%s/%s", root, sub, strcmp(dir, "/") ? dir : "",
                     file);
            double v = limit_file(path);
            if (v > 0 && (best == 0 || v < best))
                best = v;
            char *slash = strrchr(dir, '/');
            if (!slash || !strcmp(dir, "/"))
                break;
            if (slash == dir)
                dir[1] = 0;   /* "/a" -> "/" */
            else
                *slash = 0;
        }
    }
    if (f)
        fclose(f);
    return best;
}

/* A stream's HDF5 chunk cache: one of the file's chunks (0 when contiguous). */
static double cache_bytes(const km_data *D)
{
    const double esize = D->blk.prec == KM_F32 ? 4 : 8;
    return D->hchunk[0] ? fmin((double)D->hchunk[0] * D->hchunk[1] * esize, KM_CACHE_MAX) : 0;
}

/* The node's memory: physical, or less under this job's cgroup limit, or
 * SLURM_MEM_PER_NODE (MB) when SLURM set it lower. */
static double node_bytes(void)
{
    double b = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    double cg = km_cgroup_limit("/proc/self/cgroup", "/sys/fs/cgroup");
    if (cg > 0 && cg < b)
        b = cg;
    const char *mem = getenv("SLURM_MEM_PER_NODE");
    double mb = mem ? atof(mem) : 0;
    if (mb > 0 && mb * 1048576 < b)
        b = mb * 1048576;
    return b;
}

/* Bytes a rank needs besides its rows: labels, k-means++ distances, the
 * strategy's bounds, accumulators and centroid copies. pp: what k-means++ keeps
 * besides (its exact distances from d = KM_PP_KEEP_D), freed before the fit
 * allocates its threads' totals and bounds: the larger of the two counts. */
static double fixed_bytes(const km_data *D, int k, int threads, km_algorithm alg, int groups,
                          double pp)
{
    const int64_t rows = D->blk.rows, d = D->blk.d;
    const int64_t br = km_default_block_rows((int)d, k, D->blk.prec);
    /* k x d: the threads' totals (km_threads_bytes), and 11 x 16 bytes of totals,
     * the allreduce's buffers (limbs doubles, twice on more than one rank),
     * centroid copies and the unpack cache (km_unpack_cache: 2 doubles); MPI-IO's
     * collective buffer (h5io.h) */
    const double b = 12.0 * (double)rows + 11.0 * (double)k * d * 16 + 64.0 * D->d_raw
                     + (double)D->io_agg;
    double fit = km_threads_bytes(threads, k, (int)d, D->shared_totals);
    if (alg == KM_ALG_HAMERLY)
        fit += (double)km_hamerly_bytes(k, (int)d, rows, threads, br, D->blk.prec);
    else if (alg == KM_ALG_YINYANG)
        fit += (double)km_yinyang_bytes(k, (int)d, rows, threads, groups, br, D->blk.prec);
    return b + fmax(fit, pp);
}

int km_data_plan(const km_comm *c, const km_options *opt, km_data *D, int k, int threads,
                 km_algorithm *alg, km_error *err)
{
    /* k-means++'s kept E (init.c): rows x (2 + ln K) doubles */
    const double pp = opt->init == KM_INIT_KMEANSPP && D->blk.d >= KM_PP_KEEP_D
                      ? 8.0 * (double)D->blk.rows * (2 + (int)log((double)k)) : 0;
    const double limit = (double)D->memory_limit;
    const size_t esize = D->blk.prec == KM_F32 ? 4 : 8;
    double incore = (double)D->blk.rows * D->d_raw * esize;
    if (opt->transpose)   /* the in-core reader's transposition buffer (h5io.c) */
        incore += fmin(incore, 256.0 * 1048576);
    if (D->blk.filtered)   /* and its decompressed chunks (h5io.h) */
        incore += km_filtered_read_bytes(D->d_raw, esize, D->hchunk[0]);
    const int64_t hc = D->hchunk[0];
    const double cache = cache_bytes(D);
    const int64_t min_rows = hc ? hc : 64;   /* the smallest stream worth running */
    const int spare = opt->transpose || !hc;  /* km_stream_bytes' third chunk */
    const km_algorithm asked = *alg;
    const double stream_min =
        (double)km_stream_bytes(min_rows, D->d_raw, D->blk.prec, spare) + cache;
    /* the threads' totals: each its own while all of them cost at most
     * KM_SHARED_FRACTION of the rank's rows or KM_SHARED_MIN (issue 3: peak memory
     * within 1.15 x the data + O(k d)) and leave room for the smallest stream;
     * else one copy they share (the same bits, a slower first pass) */
    const double rowbytes = (double)D->blk.rows * D->d_raw * esize;
    const double own = km_threads_bytes(threads, k, D->blk.d, 0);
    D->shared_totals = 0;   /* fixed_bytes below: with their own */
    int shared = threads > 1 && own > fmax(KM_SHARED_FRACTION * rowbytes, KM_SHARED_MIN);
    if (threads > 1 && !shared)
        shared = fixed_bytes(D, k, threads, KM_ALG_LLOYD, 1, pp) + fmin(incore, stream_min) > limit;
    const char *force = getenv("KMEANS_TEST_SHARED_TOTALS");   /* tests, measurements */
    if (threads > 1 && force && *force)
        shared = atoi(force) != 0;
    D->shared_totals = km_comm_max_i64(c, shared) > 0;
    /* the strategy: the first of yinyang, hamerly, lloyd (from the one asked
     * for) whose bounds leave room for at least the smallest stream on every rank */
    const km_algorithm order[3] = {KM_ALG_YINYANG, KM_ALG_HAMERLY, KM_ALG_LLOYD};
    const int advised = km_yinyang_groups(k, (int)D->blk.d);
    int64_t level = asked == KM_ALG_YINYANG ? 0 : asked == KM_ALG_HAMERLY ? 1 : 2;
    int64_t groups = advised;   /* Yinyang: halve the groups before giving it up */
    for (;;) {
        if (level == 2 || fixed_bytes(D, k, threads, order[level], (int)groups, pp)
                              + fmin(incore, stream_min) <= limit)
            break;
        if (level == 0 && groups > 1)
            groups /= 2;
        else
            level++;
    }
    level = km_comm_max_i64(c, level);
    groups = -km_comm_max_i64(c, -groups);
    *alg = order[level];
    D->yinyang_groups = (int)groups;
    const double fixed = fixed_bytes(D, k, threads, *alg, (int)groups, pp);
    if (*alg != asked)
        snprintf(D->note, sizeof D->note, "%s's bounds do not fit --memory-limit; using %s",
                 km_algorithm_name(asked), km_algorithm_name(*alg));
    else if (*alg == KM_ALG_YINYANG && groups < advised)
        snprintf(D->note, sizeof D->note, "yinyang with %d group%s of centroids instead of %d "
                 "to fit --memory-limit (the same results; fewer skipped distances)",
                 (int)groups, groups > 1 ? "s" : "", advised);
    /* every rank takes the same decision: the one the largest block needs */
    D->streamed = km_comm_max_i64(c, fixed + incore > limit) > 0;
    D->planned_bytes = (int64_t)(fixed + incore);
    if (!D->streamed)
        return 0;
    const double per_row = (double)km_stream_bytes(1, D->d_raw, D->blk.prec, spare)
                           - (double)km_stream_bytes(0, D->d_raw, D->blk.prec, spare);
    double avail = limit - fixed - cache -
                   (double)km_stream_bytes(0, D->d_raw, D->blk.prec, spare);
    int64_t rows = avail > 0 ? (int64_t)(avail / per_row) : 0;
    if (hc && rows >= hc)
        rows -= rows % hc;
    int64_t maxrows = km_comm_max_i64(c, D->blk.rows);
    if (rows > maxrows)
        rows = maxrows;
    D->chunk_rows = -km_comm_max_i64(c, -rows);   /* the smallest over ranks */
    D->planned_bytes = (int64_t)(fixed + cache) +
        (int64_t)km_stream_bytes(D->chunk_rows, D->d_raw, D->blk.prec, spare);
    if (D->chunk_rows >= 1 && !(hc && D->chunk_rows < hc && D->chunk_rows < maxrows))
        return 0;
    char a[32], b[32], e[32];
    return km_fail(err, KM_ERR_USAGE, "--memory-limit %s is too small for '%s' in '%s': a "
                   "rank needs %s for labels, bounds, totals and I/O buffers plus %s for the "
                   "smallest chunks (%lld rows of %lld features)",
                   km_bytes_str(limit, a, sizeof a), opt->dataset, opt->input,
                   km_bytes_str(fixed, b, sizeof b),
                   km_bytes_str(stream_min, e, sizeof e), (long long)min_rows,
                   (long long)D->d_raw);
}

/* Exact column totals of the source's rows over all ranks (fixed.h):
 * out[j] = sum_i v_ij, v = x or (x - center)^2; scratch: d i128 + d * limbs. */
static int column_total(const km_comm *c, km_source *src, const double *center,
                        const double *scale, double *out, km_error *err)
{
    const int d = src->d;
    int limbs, bits;
    km_fx_limbs(c->size, &limbs, &bits);
    km_i128 *tmp = calloc((size_t)d, sizeof(km_i128));
    double *pack = malloc(sizeof(double) * (size_t)d * limbs);
    if (!tmp || !pack)
        km_fail(err, KM_ERR_MEMORY, "rank %d: out of memory for column sums of d=%d",
                c->rank, d);
    for (int64_t f = 0, n; !err->code && (n = km_source_span(src, f)) > 0; f += n) {
        const void *x;
        if (!src->get(src, f, n, &x, err) &&
            km_column_fixed(x, n, d, src->prec, center, scale, tmp))
            km_fail(err, KM_ERR_MEMORY, "rank %d: out of memory for column sums of d=%d",
                    c->rank, d);
    }
    if (!km_comm_agree(c, err)) {
        km_fx_pack(tmp, (size_t)d, limbs, bits, pack);
        km_comm_sum(c, pack, (size_t)d * limbs);
        km_fx_unpack(pack, (size_t)d, limbs, bits, tmp);
        for (int j = 0; j < d; j++)
            out[j] = km_fx_value(tmp[j], scale[j]);
    }
    free(tmp);
    free(pack);
    return err->code;
}

/* Exact per-column mean and population variance over all n rows. */
static int moments(const km_comm *c, km_source *src, int64_t n, const double *maxabs,
                   double *mean, double *var, km_error *err)
{
    const int d = src->d;
    double *scale = malloc(sizeof(double) * (size_t)d);
    if (!scale)
        km_fail(err, KM_ERR_MEMORY, "rank %d: out of memory for column moments", c->rank);
    if (km_comm_agree(c, err)) {
        free(scale);
        return err->code;
    }
    for (int j = 0; j < d; j++)
        scale[j] = km_fx_scale(maxabs[j], KM_FX_TOP);
    int rc = column_total(c, src, NULL, scale, mean, err);
    if (!rc) {
        for (int j = 0; j < d; j++) {
            mean[j] /= (double)n;
            double m = maxabs[j] + fabs(mean[j]);
            scale[j] = km_fx_scale(m * m * (1 + 0x1p-40), KM_FX_TOP);
        }
        rc = column_total(c, src, mean, scale, var, err);
    }
    for (int j = 0; !rc && j < d; j++)
        var[j] /= (double)n;
    free(scale);
    return rc;
}

/* One pass: refuse NaN/Inf (naming the first bad row and column over all
 * ranks) and take the column maxima over all ranks. */
static int scan(const km_comm *c, const km_options *opt, km_data *D, double *maxabs,
                km_error *err)
{
    km_source *src = &D->src;
    int64_t bad = -1;
    int col = 0;
    for (int j = 0; j < src->d; j++)
        maxabs[j] = 0;
    for (int64_t f = 0, n; (n = km_source_span(src, f)) > 0; f += n) {
        const void *x;
        if (src->get(src, f, n, &x, err))
            break;
        int64_t b = km_find_nonfinite(x, n, src->d, src->prec, &col);
        if (b >= 0) {
            bad = f + b;
            break;
        }
        km_column_maxabs(x, n, src->d, src->prec, maxabs);
    }
    if (km_comm_agree(c, err))
        return err->code;
    int64_t global = bad >= 0 ? D->blk.first + bad : INT64_MAX;
    int64_t first = -km_comm_max_i64(c, -global);
    if (bad >= 0 && global == first)
        km_fail(err, KM_ERR_INPUT, "dataset '%s' in '%s': %s %lld, %s %d is NaN or Inf%s "
                "(counted from 0); clean or impute the data first", opt->dataset, opt->input,
                opt->transpose ? "column (point)" : "row", (long long)global,
                opt->transpose ? "row (feature)" : "column", col,
                opt->log1p ? " after --log1p (a value <= -1?)" : "");
    if (km_comm_agree(c, err))
        return err->code;
    km_comm_max(c, maxabs, (size_t)src->d);
    return 0;
}

/* Indices of the g largest variances (ties: lower index), ascending. */
static int cmp_by_variance(const void *a, const void *b, void *arg)
{
    const double *var = arg;
    const int i = *(const int *)a, j = *(const int *)b;
    if (var[i] != var[j])
        return var[i] > var[j] ? -1 : 1;
    return (i > j) - (i < j);
}

static int cmp_int(const void *a, const void *b)
{
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

static void open_memory_source(km_data *D)
{
    km_source_memory(&D->src, &D->blk);
}

/* Statistics of the log1p'd raw features, then the d kept features and their
 * scales; the source hands out the final rows afterwards. */
static int select_and_scale(const km_comm *c, const km_options *opt, km_data *D, int d,
                            const double *rawmax, km_error *err)
{
    const int dr = (int)D->d_raw;
    double *mean = malloc(sizeof(double) * dr), *var = malloc(sizeof(double) * dr);
    int *order = malloc(sizeof(int) * dr);
    D->keep = opt->top_variance ? malloc(sizeof(int) * d) : NULL;
    D->mean = opt->standardize ? malloc(sizeof(double) * d) : NULL;
    D->scale = opt->standardize ? malloc(sizeof(double) * d) : NULL;
    if (!mean || !var || !order || (opt->top_variance && !D->keep) ||
        (opt->standardize && (!D->mean || !D->scale)))
        km_fail(err, KM_ERR_MEMORY, "rank %d: out of memory for feature statistics", c->rank);
    if (!km_comm_agree(c, err) && !moments(c, &D->src, D->blk.n, rawmax, mean, var, err)) {
        for (int j = 0; j < dr; j++)
            order[j] = j;
        if (D->keep) {
            qsort_r(order, (size_t)dr, sizeof(int), cmp_by_variance, var);
            qsort(order, (size_t)d, sizeof(int), cmp_int);
            memcpy(D->keep, order, sizeof(int) * d);
        }
        for (int j = 0; D->mean && j < d; j++) {
            D->mean[j] = mean[order[j]];
            D->scale[j] = var[order[j]] > 0 ? 1.0 / sqrt(var[order[j]]) : 0.0;
        }
        km_prep full = {.log1p = D->streamed && opt->log1p, .d_in = dr, .d_out = d,
                        .keep = D->keep, .mean = D->mean, .scale = D->scale};
        if (D->streamed) {
            D->src.sync(&D->src);
            D->prep = full;
            D->src.d = d;
        } else {
            km_prep_apply(&full, D->blk.data, D->blk.rows, D->blk.prec, 1);
            D->blk.d = d;   /* the rows are d wide from here */
            open_memory_source(D);
        }
        if (!opt->standardize) {   /* the kept columns' statistics are already known */
            double s = 0;
            for (int j = 0; j < d; j++) {
                D->maxabs[j] = rawmax[order[j]];
                D->colmean[j] = mean[order[j]];
                s += var[order[j]];
            }
            D->mean_variance = s / d;
        }
    }
    free(mean);
    free(var);
    free(order);
    return err->code;
}

/* Column maxima and the tol scale of the final rows. */
static int final_stats(const km_comm *c, km_data *D, km_error *err)
{
    const int d = D->src.d;   /* the width the source hands out */
    double *mean = malloc(sizeof(double) * d), *var = malloc(sizeof(double) * d);
    if (!mean || !var)
        km_fail(err, KM_ERR_MEMORY, "rank %d: out of memory for feature statistics", c->rank);
    if (!km_comm_agree(c, err) && !moments(c, &D->src, D->blk.n, D->maxabs, mean, var, err)) {
        double s = 0;
        for (int j = 0; j < d; j++)
            s += var[j];
        D->mean_variance = s / d;
        memcpy(D->colmean, mean, sizeof(double) * (size_t)d);
    }
    free(mean);
    free(var);
    return err->code;
}

/* A squared distance between two points is at most sum_j (2 max|x_j|)^2: refuse
 * data for which that overflows float64 (every distance would be inf and the run
 * meaningless). maxabs is the same on every rank, so they all agree. */
static int check_range(const km_options *opt, const km_data *D, int d, km_error *err)
{
    double bound = 0;
    int worst = 0;
    for (int j = 0; j < d; j++) {
        bound += 4 * D->maxabs[j] * D->maxabs[j];
        worst = D->maxabs[j] > D->maxabs[worst] ? j : worst;
    }
    if (isfinite(bound))
        return 0;
    return km_fail(err, KM_ERR_INPUT, "dataset '%s' in '%s': values up to %.3g (%s %d%s) are "
                   "too large: squared distances would overflow float64; rescale the data",
                   opt->dataset, opt->input, D->maxabs[worst],
                   opt->transpose ? "row (feature)" : "column", worst,
                   opt->top_variance || opt->standardize ? " of the kept features" : "");
}

int km_data_load(const km_comm *c, const km_options *opt, km_data *D, km_error *err)
{
    const int d = D->blk.d, dr = (int)D->d_raw;
    const int select = opt->top_variance || opt->standardize;
    D->prep = (km_prep){.log1p = opt->log1p, .d_in = dr, .d_out = dr};
    D->maxabs = malloc(sizeof(double) * (size_t)(dr > d ? dr : d));
    D->colmean = calloc((size_t)(dr > d ? dr : d), sizeof(double));
    double *rawmax = malloc(sizeof(double) * (size_t)dr);
    if (!D->maxabs || !D->colmean || !rawmax)
        km_fail(err, KM_ERR_MEMORY, "rank %d: out of memory for column maxima", c->rank);
    if (km_comm_agree(c, err)) {
        free(rawmax);
        return err->code;
    }
    if (D->streamed) {
        const int64_t hc = D->hchunk[0];
        km_stream_spec spec = {
            .path = opt->input, .dset = opt->dataset, .transposed = opt->transpose,
            .first = D->blk.first, .rows = D->blk.rows, .d_raw = dr, .prec = D->blk.prec,
            .chunk_rows = D->chunk_rows, .phase = hc ? D->blk.first % D->chunk_rows : 0,
            .block = hc, .cache_bytes = (size_t)cache_bytes(D), .prep = &D->prep};
        km_source_stream(&D->src, &spec, err);
    } else {   /* blk.d is the file's width while the rows are that wide */
        int64_t chunk[2];
        if (!km_read_block(c, opt->input, opt->dataset, opt->transpose, 1, &D->blk, chunk,
                           err)) {
            km_prep_apply(&D->prep, D->blk.data, D->blk.rows, D->blk.prec, 1);
            open_memory_source(D);
        }
    }
    int rc = km_comm_agree(c, err);
    if (!rc)
        rc = scan(c, opt, D, select ? rawmax : D->maxabs, err);
    if (!rc && select)
        rc = select_and_scale(c, opt, D, d, rawmax, err);
    if (!rc && opt->standardize)
        rc = scan(c, opt, D, D->maxabs, err);
    if (!rc && (!select || opt->standardize))
        rc = final_stats(c, D, err);
    if (!rc)
        rc = check_range(opt, D, d, err);
    D->blk.d = d;
    free(rawmax);
    return rc;
}

void km_data_free(km_data *D)
{
    if (D->src.close)
        D->src.close(&D->src);
    km_block_free(&D->blk);
    free(D->keep);
    free(D->mean);
    free(D->scale);
    free(D->maxabs);
    free(D->colmean);
    D->keep = NULL;
    D->mean = D->scale = D->maxabs = D->colmean = NULL;
}
