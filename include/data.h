/* data.h — the rows a rank clusters: the dataset's shape, the memory plan (in
 * core, or streamed from HDF5 under --memory-limit), preprocessing (--log1p,
 * --top-variance, --standardize) with its statistics from exact distributed
 * passes, and the facts every strategy needs before the first iteration: no
 * NaN/Inf, the column maxima, the tol scale. */
#ifndef KM_DATA_H
#define KM_DATA_H
#include "comm.h"
#include "kmeans.h"
#include "source.h"

typedef struct {
    km_block blk;           /* shape (d after preprocessing), this rank's rows, and the
                               rows themselves when in core (data NULL when streamed) */
    int64_t d_raw;          /* features in the file */
    int64_t hchunk[2];      /* HDF5 chunk in points, features (0, 0: contiguous) */
    int streamed;
    int64_t memory_limit;   /* bytes per rank in force */
    int64_t planned_bytes;  /* what the plan lets this rank's data, buffers and bounds use */
    int64_t chunk_rows;     /* streamed: rows per chunk */
    int64_t io_agg;         /* the MPI-IO collective buffer planned (km_io_agg_bytes on
                               more than one rank, else 0) */
    km_source src;          /* chunks of preprocessed rows */
    km_prep prep;           /* what src applies to what it reads */
    int *keep;              /* --top-variance: the d kept features, ascending */
    double *mean, *scale;   /* --standardize: per kept feature */
    double *maxabs;         /* d: max |x_ij| of the preprocessed data, all ranks */
    double *colmean;        /* d: the column means of the same (the inertia's center) */
    double mean_variance;   /* mean per-feature variance (the tol scale) */
    int yinyang_groups;     /* groups of centroids Yinyang uses (fewer under a tight limit) */
    int shared_totals;      /* the threads add into one copy of the k x d totals
                               (km_threads_new) instead of each into its own */
    char note[256];         /* a memory-driven algorithm change to report, or "" */
} km_data;

/* Collective: the dataset's shape and type; nothing is read yet. */
int km_data_open(const km_comm *c, const km_options *opt, km_data *D, km_error *err);

/* Collective: in core or streamed, for k clusters, `threads` threads and
 * strategy *alg; when the strategy's bounds do not fit the limit, Yinyang
 * first takes fewer groups, then *alg falls back (yinyang -> hamerly ->
 * lloyd); D->note says what changed. */
int km_data_plan(const km_comm *c, const km_options *opt, km_data *D, int k, int threads,
                 km_algorithm *alg, km_error *err);

/* Collective: read (or open the stream), check every value is finite,
 * compute the preprocessing statistics, the column maxima and the tol scale. */
int km_data_load(const km_comm *c, const km_options *opt, km_data *D, km_error *err);

void km_data_free(km_data *D);

/* The tightest memory limit (bytes) of the cgroup named in `self` (the format
 * of /proc/self/cgroup, v1 or v2) and its ancestors under `root` (normally
 * /sys/fs/cgroup), or 0 when none is set. */
double km_cgroup_limit(const char *self, const char *root);
#endif
