/* report.c — rank 0's human output (progress, timing table, summary) and the
 * machine-readable JSON line that scaling scripts read instead of scraping. */
#include <stdio.h>
#include "kernels.h"
#include "options.h"
#include "report.h"

void km_report_header(FILE *out, const km_options *opt, const km_data *D, int k,
                      km_algorithm alg, int ranks, int threads)
{
    const km_block *blk = &D->blk;
    fprintf(out, "kmeans %s: %s:%s  n=%lld d=%d (%s)  k=%d  init=%s  algorithm=%s  "
            "ranks=%d threads=%d\n", KM_VERSION, opt->input, opt->dataset, (long long)blk->n,
            blk->d, blk->dtype_note, k, opt->init_spec,
            km_algorithm_name(alg), ranks, threads);
    if (opt->transpose || opt->log1p || opt->top_variance || opt->standardize)
        fprintf(out, "preprocessing: %s%s%s%s (of %lld features in the file)\n",
                opt->transpose ? "transposed (d x n) " : "", opt->log1p ? "log2(x+1) " : "",
                opt->top_variance ? "top-variance " : "", opt->standardize ? "z-score" : "",
                (long long)D->d_raw);
    char a[32], b[32];
    km_bytes_str((double)D->planned_bytes, a, sizeof a);
    km_bytes_str((double)D->memory_limit, b, sizeof b);
    if (D->streamed)
        fprintf(out, "memory: streamed from the file in chunks of %lld rows; %s of the %s "
                "--memory-limit per rank planned\n", (long long)D->chunk_rows, a, b);
    else
        fprintf(out, "memory: in core; %s of the %s --memory-limit per rank planned\n", a, b);
    if (D->shared_totals) {
        km_bytes_str(km_threads_bytes(threads, k, blk->d, 0), a, sizeof a);
        fprintf(out, "memory: the %d threads add into one copy of the k x d cluster totals "
                "(their own copies would take %s)\n", threads, a);
    }
    if (D->note[0])
        fprintf(out, "note: %s\n", D->note);
    fflush(out);   /* before a read or an init that may take minutes */
}

void km_report_columns(FILE *out)
{
    fprintf(out, "%6s %22s %12s %12s %8s %8s\n", "iter", "inertia", " rel.shift", "changed",
            "skipped", "seconds");
}

void km_report_iteration(FILE *out, int iter, double inertia, double shift, int64_t changed,
                         int empty, double skipped, double seconds)
{
    fprintf(out, "%6d %22.15e %12.4e %12lld %7.1f%% %8.4f", iter, inertia, shift,
            (long long)changed, 100 * skipped, seconds);
    if (empty)
        fprintf(out, "  (%d empty cluster%s re-seeded)", empty, empty > 1 ? "s" : "");
    fputc('\n', out);
    fflush(out);
}

void km_report_timing(FILE *out, const km_timers *t, const km_result *res)
{
    const int iterations = res->passes;
    fprintf(out, "%-10s %10s %10s %10s %12s\n", "phase", "min s", "mean s", "max s",
            "mean s/pass");
    for (int p = 0; p < KM_T_COUNT; p++) {
        int per_iter = p == KM_T_ASSIGN || p == KM_T_WAIT || p == KM_T_UPDATE
                       || p == KM_T_ALLREDUCE;
        fprintf(out, "%-10s %10.4f %10.4f %10.4f", km_phase_names[p], t->min[p], t->mean[p],
                t->max[p]);
        if (per_iter && iterations > 0)
            fprintf(out, " %12.6f", t->mean[p] / iterations);
        fputc('\n', out);
    }
    fprintf(out, "%-10s %10.1f %10.1f %10.1f   MB peak resident per rank\n", "memory",
            res->rss_mb[0], res->rss_mb[1], res->rss_mb[2]);
}

static double total_seconds(const km_timers *t)
{
    double s = 0;
    for (int p = 0; p < KM_T_COUNT; p++)
        s += t->max[p];
    return s;
}

void km_report_summary(FILE *out, const km_options *opt, const km_block *blk, int k,
                       const km_result *res, const km_timers *t, const char *output)
{
    (void)opt;
    fprintf(out, "kmeans: n=%lld d=%d k=%d iterations=%d stop=%s inertia=%.15e "
            "time=%.3fs output=%s\n", (long long)blk->n, blk->d, k, res->iterations,
            km_stop_name(res->stop), res->inertia, total_seconds(t), output);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

int km_report_json(const char *path, const km_options *opt, const km_data *D, int k,
                   const km_result *res, const km_timers *t, int ranks, int threads,
                   const char *output)
{
    const km_block *blk = &D->blk;
    FILE *f = fopen(path, "a");
    if (!f)
        return -1;
    fputs("{\"version\":", f);
    json_str(f, KM_VERSION);
    fputs(",\"input\":", f);
    json_str(f, opt->input);
    fputs(",\"dataset\":", f);
    json_str(f, opt->dataset);
    fputs(",\"output\":", f);
    json_str(f, output);
    fprintf(f, ",\"n\":%lld,\"d\":%d,\"k\":%d,\"ranks\":%d,\"threads\":%d,\"iterations\":%d,",
            (long long)blk->n, blk->d, k, ranks, threads, res->iterations);
    fprintf(f, "\"stop\":\"%s\",\"inertia\":%.17g,\"seconds_total\":%.6f",
            km_stop_name(res->stop), res->inertia, total_seconds(t));
    fputs(",\"dtype\":", f);
    json_str(f, blk->dtype_note);
    fprintf(f, ",\"algorithm\":\"%s\"", km_algorithm_name(res->algorithm));
    fprintf(f, ",\"iterations_run\":%d,\"passes\":%d,\"allreduce_bytes\":%lld",
            res->iterations_run, res->passes, (long long)res->allreduce_bytes);
    fprintf(f, ",\"streamed\":%s,\"memory_limit\":%lld,\"planned_bytes\":%lld,"
            "\"chunk_rows\":%lld", D->streamed ? "true" : "false", (long long)D->memory_limit,
            (long long)D->planned_bytes, (long long)D->chunk_rows);
    fprintf(f, ",\"rss_mb\":{\"min\":%.1f,\"mean\":%.1f,\"max\":%.1f}", res->rss_mb[0],
            res->rss_mb[1], res->rss_mb[2]);
    for (int p = 0; p < KM_T_COUNT; p++)
        fprintf(f, ",\"%s\":{\"min\":%.6f,\"mean\":%.6f,\"max\":%.6f}", km_phase_names[p],
                t->min[p], t->mean[p], t->max[p]);
    fputs("}\n", f);
    return fclose(f) ? -1 : 0;
}
