/* options.c — getopt_long parsing, defaults, validation and the --help text.
 * Knows nothing of MPI or HDF5: every rank parses the same argv the same way,
 * so no agreement is needed here. Checks that need the data (k <= n, init rows
 * < n) happen once the shape is known. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "options.h"

enum { OPT_DATASET = 256, OPT_INIT, OPT_SEED, OPT_MAX_ITER, OPT_TOL, OPT_CHUNK_ROWS,
       OPT_SUMMARY_JSON, OPT_CHECKPOINT, OPT_CHECKPOINT_EVERY, OPT_CHECKPOINT_SECONDS,
       OPT_RESUME, OPT_ALGORITHM, OPT_MEMORY_LIMIT, OPT_TRANSPOSE, OPT_LOG1P,
       OPT_STANDARDIZE, OPT_TOP_VARIANCE };

#define KM_DEFAULT_CHECKPOINT_SECONDS 1800.0

static const struct option long_opts[] = {
    {"input", required_argument, 0, 'i'},
    {"dataset", required_argument, 0, OPT_DATASET},
    {"clusters", required_argument, 0, 'k'},
    {"output", required_argument, 0, 'o'},
    {"init", required_argument, 0, OPT_INIT},
    {"seed", required_argument, 0, OPT_SEED},
    {"max-iter", required_argument, 0, OPT_MAX_ITER},
    {"tol", required_argument, 0, OPT_TOL},
    {"chunk-rows", required_argument, 0, OPT_CHUNK_ROWS},
    {"summary-json", required_argument, 0, OPT_SUMMARY_JSON},
    {"checkpoint", required_argument, 0, OPT_CHECKPOINT},
    {"checkpoint-every", required_argument, 0, OPT_CHECKPOINT_EVERY},
    {"checkpoint-seconds", required_argument, 0, OPT_CHECKPOINT_SECONDS},
    {"resume", no_argument, 0, OPT_RESUME},
    {"algorithm", required_argument, 0, OPT_ALGORITHM},
    {"memory-limit", required_argument, 0, OPT_MEMORY_LIMIT},
    {"transpose", no_argument, 0, OPT_TRANSPOSE},
    {"log1p", no_argument, 0, OPT_LOG1P},
    {"standardize", no_argument, 0, OPT_STANDARDIZE},
    {"top-variance", required_argument, 0, OPT_TOP_VARIANCE},
    {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},
    {0, 0, 0, 0}
};

void km_options_help(FILE *out)
{
    fputs(
"Usage: mpirun -np RANKS kmeans -i FILE.h5 -k K [options]\n"
"\n"
"Exact Lloyd k-means of an n x d matrix stored in HDF5 (rows = points), with MPI\n"
"ranks each reading a contiguous block of rows and OpenMP threads inside a rank.\n"
"\n"
"Input and output:\n"
"  -i, --input FILE       HDF5 file holding the matrix (required)\n"
"      --dataset NAME     dataset inside FILE, n x d float32/float64 (integers are\n"
"                         converted to float64)                     [default: /data]\n"
"  -o, --output FILE      result file        [default: results/<input-name>-k<K>.h5]\n"
"                         /centroids (k x d), /labels (n), /cluster_sizes (k),\n"
"                         /history/{inertia,shift,changed,empty,seconds,skipped},\n"
"                         /timing, /preprocessing,\n"
"                         and attributes describing the run. Written to FILE.tmp-*\n"
"                         and renamed only on success.\n"
"      --summary-json F   append a one-line JSON record of the run to F\n"
"      --transpose        the dataset is d x n: features in rows, points in columns\n"
"                         (genes x samples). Ranks then read blocks of columns.\n"
"                         Fast when the file is chunked in column blocks; see\n"
"                         README (h5repack -l) to rechunk one that is not.\n"
"\n"
"Preprocessing (applied on the fly; the file is never changed; the output's\n"
"centroids are in the transformed space and /preprocessing records the steps):\n"
"      --log1p            x -> log2(x + 1), the expression convention (base 2)\n"
"      --top-variance G   keep the G features of largest variance (after --log1p),\n"
"                         in file order; ties go to the lower column\n"
"      --standardize      z-score each kept feature with its mean and population\n"
"                         variance over all n points (constant features become 0)\n"
"                         Statistics are exact sums over all ranks: every layout\n"
"                         keeps the same features and gets the same bits.\n"
"\n"
"Clustering:\n"
"  -k, --clusters K       number of clusters, 1 <= K <= n (may be omitted with\n"
"                         --init rows:... or --init FILE:/dset, which imply it)\n"
"      --init METHOD      how to choose the first centroids      [default: kmeans++]\n"
"                           kmeans++          greedy k-means++ (2 + ln K candidates\n"
"                                             per step, as scikit-learn)\n"
"                           first             the first K rows\n"
"                           random            K distinct rows drawn with --seed\n"
"                           rows:I,J,...      these global row indices (0-based)\n"
"                           FILE.h5:/dset     centroids from a K x d dataset\n"
"                         The choice never depends on the number of ranks/threads.\n"
"      --seed N           seed of the random choices (kmeans++, random) [default: 0]\n"
"      --algorithm A      how each iteration assigns points    [default: auto]\n"
"                           lloyd    every point against every centroid\n"
"                           hamerly  Hamerly's bounds (2 floats per point; 2 more\n"
"                                    for a runner-up from d = 128 when K (d + 10)\n"
"                                    >= 4096) skip the points that provably keep\n"
"                                    their cluster\n"
"                           yinyang  Yinyang's group bounds (1 + t floats per point,\n"
"                                    t = K/10, or up to min(K, d/64) for wide rows)\n"
"                                    also skip the groups of centroids that\n"
"                                    provably lie farther\n"
"                           auto     yinyang when d >= 4096, K x d >= 16384\n"
"                                    and K <= 128, else hamerly when K x d >=\n"
"                                    128, or K >= 2 and d <= 8, else lloyd\n"
"                                    (measured: yinyang wins on very wide rows\n"
"                                    with few centroids, hamerly elsewhere;\n"
"                                    below K x d = 128 hamerly won at d = 3 and\n"
"                                    came within 6 % either way at d = 16; see\n"
"                                    results/BENCH.md)\n"
"                         When the bounds do not fit --memory-limit, yinyang takes\n"
"                         fewer groups, then hamerly, then lloyd is used (a note:\n"
"                         line says so).\n"
"                         Every choice gives the same labels, centroids, inertia and\n"
"                         iterations, bit for bit; only the time differs. The\n"
"                         history records the share of distances each pass skipped.\n"
"      --max-iter N       stop after N iterations                   [default: 300]\n"
"      --tol X            stop when the centroids moved by at most X, measured as\n"
"                         sum over clusters of |c_new - c_old|^2 divided by the\n"
"                         mean per-feature variance of the data (the same scale as\n"
"                         scikit-learn's tol). 0 disables the rule.  [default: 1e-4]\n"
"                         The run also stops when no label changed.\n"
"\n"
"Checkpoints (continue a run a time limit, a node failure or a cancel stopped):\n"
"      --checkpoint FILE  keep the state needed to continue exactly in FILE (HDF5,\n"
"                         replaced atomically: FILE.tmp is written, synced, then\n"
"                         renamed). Removed once the result is written. Refuses\n"
"                         to start afresh over an existing FILE (use --resume).\n"
"      --checkpoint-every N   write one every N iterations\n"
"      --checkpoint-seconds S write one when S seconds passed since the last (also\n"
"                         during k-means++: the centroids chosen so far)\n"
"                         [default with --checkpoint and neither given: 1800]\n"
"      --resume           continue from --checkpoint FILE. Refused if FILE was made\n"
"                         for another input (path, dataset, shape, dtype, content)\n"
"                         or with another -k, --init or --seed; --max-iter, --tol\n"
"                         and the rank/thread counts may change. The run ends with\n"
"                         the same bits as one never interrupted.\n"
"                         With --checkpoint, SIGUSR1 and SIGTERM (and SIGINT from\n"
"                         a terminal) stop the run at the end of the iteration under\n"
"                         way (or of the k-means++ step): every rank agrees, the\n"
"                         checkpoint is written and the exit status is 75. mpirun\n"
"                         forwards SIGUSR1 to the ranks but kills them on SIGTERM:\n"
"                         under SLURM ask for an early USR1 (see jobs/kmeans.sbatch).\n"
"\n"
"Performance and reporting:\n"
"      --chunk-rows N     rows per chunk of the iteration (cache blocking)  [auto]\n"
"      --memory-limit B   bytes of memory each rank may use, with suffix K, M, G or\n"
"                         T (powers of 1024). When a rank's rows do not fit, every\n"
"                         pass streams them from the file in chunks, the next read\n"
"                         while the current one is computed; the result is the\n"
"                         same bits as in memory.  [default: 80% of the node's\n"
"                         memory (or its cgroup/SLURM limit) / ranks on the node]\n"
"  -q, --quiet            no progress lines (plan, k-means++ progress every 10 s,\n"
"                         iterations, timing)\n"
"  -h, --help             this text\n"
"  -V, --version          program version\n"
"\n"
"Threads: OMP_NUM_THREADS per rank. Open MPI binds each rank to one core by\n"
"default; use `mpirun --bind-to none` (or OMP_PROC_BIND/OMP_PLACES under srun) so\n"
"a rank's threads get cores of their own.\n"
"\n"
"Exit status:\n"
"  0  success (converged or stopped at --max-iter; the summary says which rule)\n"
"  2  bad option or option value       3  bad input file, dataset or data\n"
"  4  output cannot be written         5  out of memory\n"
"  6  internal error (MPI/HDF5 failure)\n"
"  75 stopped by a signal after writing the checkpoint: resubmit with --resume\n"
"\n"
"Example:\n"
"  mpirun -np 4 --bind-to none -x OMP_NUM_THREADS=2 \\\n"
"      kmeans -i expr.h5 --dataset /data -k 16 --init kmeans++ --seed 1 \\\n"
"      -o results/expr-k16.h5\n", out);
}

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *v)
{
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi)
        return -1;
    *v = x;
    return 0;
}

/* "512M", "2G", "1048576": bytes, powers of 1024. */
static int parse_bytes(const char *s, int64_t *v, km_error *err)
{
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    int shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    }
    if (*end == 'B' || *end == 'b')
        end++;
    x = ldexp(x, shift);
    if (errno || end == s || *end || !isfinite(x) || x < 1 || x > 0x1p62)
        return km_fail(err, KM_ERR_USAGE, "--memory-limit '%s': expected bytes >= 1, with an "
                       "optional K, M, G or T suffix (e.g. 512M)", s);
    *v = (int64_t)x;
    return 0;
}

static int parse_init_rows(km_options *opt, const char *list, km_error *err)
{
    int cap = 1;
    for (const char *p = list; *p; p++)
        cap += (*p == ',');
    opt->init_rows = malloc(sizeof(int64_t) * (size_t)cap);
    if (!opt->init_rows)
        return km_fail(err, KM_ERR_MEMORY, "out of memory parsing --init rows");
    char *copy = strdup(list), *save = NULL;
    if (!copy)
        return km_fail(err, KM_ERR_MEMORY, "out of memory parsing --init rows");
    int n = 0, rc = 0;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (parse_i64(tok, 0, INT64_MAX, &opt->init_rows[n])) {
            rc = km_fail(err, KM_ERR_USAGE,
                         "--init rows: '%s' is not a non-negative row index", tok);
            break;
        }
        for (int m = 0; m < n; m++) {
            if (opt->init_rows[m] == opt->init_rows[n]) {
                rc = km_fail(err, KM_ERR_USAGE, "--init rows: row %lld is listed twice",
                             (long long)opt->init_rows[n]);
                break;
            }
        }
        if (rc)
            break;
        n++;
    }
    free(copy);
    if (!rc && n == 0)
        rc = km_fail(err, KM_ERR_USAGE, "--init rows: needs at least one row index");
    opt->n_init_rows = n;
    return rc;
}

static int parse_init(km_options *opt, const char *s, km_error *err)
{
    snprintf(opt->init_spec, sizeof opt->init_spec, "%s", s);
    if (!strcmp(s, "kmeans++") || !strcmp(s, "k-means++"))
        opt->init = KM_INIT_KMEANSPP;
    else if (!strcmp(s, "first"))
        opt->init = KM_INIT_FIRST;
    else if (!strcmp(s, "random"))
        opt->init = KM_INIT_RANDOM;
    else if (!strncmp(s, "rows:", 5)) {
        opt->init = KM_INIT_ROWS;
        return parse_init_rows(opt, s + 5, err);
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || colon == s || colon[1] != '/')
            return km_fail(err, KM_ERR_USAGE,
                           "--init '%s': expected kmeans++, first, random, rows:I,J,... "
                           "or FILE.h5:/dataset", s);
        opt->init = KM_INIT_FILE;
        snprintf(opt->init_file, sizeof opt->init_file, "%.*s", (int)(colon - s), s);
        snprintf(opt->init_dataset, sizeof opt->init_dataset, "%s", colon + 1);
    }
    return 0;
}

static int copy_arg(char *dst, size_t len, const char *src, const char *name, km_error *err)
{
    if (strlen(src) >= len)
        return km_fail(err, KM_ERR_USAGE, "%s: value too long", name);
    if (!*src)
        return km_fail(err, KM_ERR_USAGE, "%s: value is empty", name);
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

static void set_defaults(km_options *opt)
{
    memset(opt, 0, sizeof *opt);
    strcpy(opt->dataset, "/data");
    opt->max_iter = 300;
    opt->tol = 1e-4;
    opt->init = KM_INIT_KMEANSPP;
    strcpy(opt->init_spec, "kmeans++");
}

/* One option's value; returns 0 or KM_ERR_USAGE. */
static int apply_option(km_options *opt, int c, const char *arg, km_error *err)
{
    int64_t v;
    char *end;
    switch (c) {
    case 'i': return copy_arg(opt->input, sizeof opt->input, arg, "--input", err);
    case 'o': return copy_arg(opt->output, sizeof opt->output, arg, "--output", err);
    case OPT_DATASET:
        return copy_arg(opt->dataset, sizeof opt->dataset, arg, "--dataset", err);
    case OPT_SUMMARY_JSON:
        return copy_arg(opt->summary_json, sizeof opt->summary_json, arg, "--summary-json", err);
    case 'k':
        if (parse_i64(arg, 1, INT_MAX, &v))
            return km_fail(err, KM_ERR_USAGE, "-k/--clusters '%s': must be an integer >= 1", arg);
        opt->k = (int)v;
        return 0;
    case OPT_MAX_ITER:
        if (parse_i64(arg, 1, INT_MAX, &v))
            return km_fail(err, KM_ERR_USAGE, "--max-iter '%s': must be an integer >= 1", arg);
        opt->max_iter = (int)v;
        return 0;
    case OPT_SEED:
        if (parse_i64(arg, 0, INT64_MAX, &v))
            return km_fail(err, KM_ERR_USAGE, "--seed '%s': must be an integer >= 0", arg);
        opt->seed = (uint64_t)v;
        return 0;
    case OPT_CHUNK_ROWS:
        if (parse_i64(arg, 1, INT64_MAX, &v))
            return km_fail(err, KM_ERR_USAGE, "--chunk-rows '%s': must be an integer >= 1", arg);
        opt->chunk_rows = v;
        return 0;
    case OPT_TOL:
        errno = 0;
        opt->tol = strtod(arg, &end);
        if (errno || end == arg || *end || !isfinite(opt->tol) || opt->tol < 0)
            return km_fail(err, KM_ERR_USAGE, "--tol '%s': must be a number >= 0", arg);
        return 0;
    case OPT_INIT:
        return parse_init(opt, arg, err);
    case OPT_CHECKPOINT:
        return copy_arg(opt->checkpoint, sizeof opt->checkpoint, arg, "--checkpoint", err);
    case OPT_CHECKPOINT_EVERY:
        if (parse_i64(arg, 1, INT_MAX, &v))
            return km_fail(err, KM_ERR_USAGE, "--checkpoint-every '%s': must be an integer "
                           ">= 1", arg);
        opt->checkpoint_every = (int)v;
        return 0;
    case OPT_CHECKPOINT_SECONDS:
        errno = 0;
        opt->checkpoint_seconds = strtod(arg, &end);
        if (errno || end == arg || *end || !isfinite(opt->checkpoint_seconds)
            || opt->checkpoint_seconds <= 0)
            return km_fail(err, KM_ERR_USAGE, "--checkpoint-seconds '%s': must be a number > 0",
                           arg);
        return 0;
    case OPT_RESUME:
        opt->resume = 1;
        return 0;
    case OPT_MEMORY_LIMIT:
        return parse_bytes(arg, &opt->memory_limit, err);
    case OPT_TRANSPOSE:
        opt->transpose = 1;
        return 0;
    case OPT_LOG1P:
        opt->log1p = 1;
        return 0;
    case OPT_STANDARDIZE:
        opt->standardize = 1;
        return 0;
    case OPT_TOP_VARIANCE:
        if (parse_i64(arg, 1, 1 << 24, &v))
            return km_fail(err, KM_ERR_USAGE, "--top-variance '%s': must be an integer from 1 "
                           "to %d", arg, 1 << 24);
        opt->top_variance = (int)v;
        return 0;
    case OPT_ALGORITHM:
        if (!strcmp(arg, "lloyd"))
            opt->algorithm = KM_ALG_LLOYD;
        else if (!strcmp(arg, "hamerly"))
            opt->algorithm = KM_ALG_HAMERLY;
        else if (!strcmp(arg, "yinyang"))
            opt->algorithm = KM_ALG_YINYANG;
        else if (!strcmp(arg, "auto"))
            opt->algorithm = KM_ALG_AUTO;
        else
            return km_fail(err, KM_ERR_USAGE, "--algorithm '%s': expected lloyd, hamerly, "
                           "yinyang or auto", arg);
        return 0;
    }
    return km_fail(err, KM_ERR_INTERNAL, "unhandled option %d", c);
}

/* The implied k of --init rows/file must agree with -k when both are given. */
static int check_k(km_options *opt, km_error *err)
{
    if (opt->init == KM_INIT_ROWS) {
        if (opt->k && opt->k != opt->n_init_rows)
            return km_fail(err, KM_ERR_USAGE, "-k %d but --init rows: lists %d rows",
                           opt->k, opt->n_init_rows);
        opt->k = opt->n_init_rows;
    }
    if (!opt->k && opt->init != KM_INIT_FILE)
        return km_fail(err, KM_ERR_USAGE, "missing -k/--clusters (see --help)");
    return 0;
}

int km_options_parse(int argc, char **argv, km_options *opt, km_error *err)
{
    set_defaults(opt);
    optind = 0;   /* GNU: full re-initialisation, so the parser can be called again */
    opterr = 0;
    int c, idx;
    while ((c = getopt_long(argc, argv, ":i:k:o:qhV", long_opts, &idx)) != -1) {
        int rc = 0;
        switch (c) {
        case 'h': return KM_PARSE_HELP;
        case 'V': return KM_PARSE_VERSION;
        case 'q': opt->quiet = 1; break;
        case ':':
            return km_fail(err, KM_ERR_USAGE, "option '%s' needs a value (see --help)",
                           argv[optind - 1]);
        case '?':
            return km_fail(err, KM_ERR_USAGE, "unknown option '%s' (see --help)",
                           argv[optind - 1]);
        default: rc = apply_option(opt, c, optarg, err);
        }
        if (rc)
            return rc;
    }
    if (optind < argc)
        return km_fail(err, KM_ERR_USAGE, "unexpected argument '%s' (see --help)", argv[optind]);
    if (!opt->input[0])
        return km_fail(err, KM_ERR_USAGE, "missing -i/--input FILE (see --help)");
    if (!opt->checkpoint[0] && (opt->resume || opt->checkpoint_every || opt->checkpoint_seconds))
        return km_fail(err, KM_ERR_USAGE, "%s needs --checkpoint FILE",
                       opt->resume ? "--resume" : opt->checkpoint_every ? "--checkpoint-every"
                                                                        : "--checkpoint-seconds");
    if (opt->checkpoint[0] && !opt->checkpoint_every && !opt->checkpoint_seconds)
        opt->checkpoint_seconds = KM_DEFAULT_CHECKPOINT_SECONDS;
    return check_k(opt, err);
}

void km_options_free(km_options *opt)
{
    free(opt->init_rows);
    opt->init_rows = NULL;
}

void km_options_prep_string(const km_options *opt, char *buf, size_t len)
{
    snprintf(buf, len, "transpose=%d log1p=%d top_variance=%d standardize=%d", opt->transpose,
             opt->log1p, opt->top_variance, opt->standardize);
}

void km_options_default_output(const km_options *opt, char *buf, size_t len)
{
    const char *base = strrchr(opt->input, '/');
    base = base ? base + 1 : opt->input;
    const char *dot = strrchr(base, '.');
    int stem = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
    snprintf(buf, len, "results/%.*s-k%d.h5", stem, base, opt->k);
}
