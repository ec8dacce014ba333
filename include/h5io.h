/* h5io.h — parallel HDF5 input and output: read this rank's block of rows,
 * read given centroids, write the result file atomically. */
#ifndef KM_H5IO_H
#define KM_H5IO_H
#include <hdf5.h>
#include "comm.h"
#include "data.h"
#include "kmeans.h"

/* The MPI-IO collective buffer a rank may hold when it aggregates a collective
 * read or write for others ("cb_buffer_size", given to every file opened after
 * km_h5io_set_agg): a sixteenth of --memory-limit, at least 64 KiB and at most
 * KM_IO_AGG_MAX, and the memory plan counts it on more than one rank. Open MPI's
 * OMPIO otherwise takes 32 MiB a cycle (io_ompio_bytes_per_agg) that no plan
 * foresees: with 3 ranks reading a 38 MB matrix in core one rank peaked 45 MiB
 * above the 13.5 planned. With 4 MiB the in-core read of 10,000 x 20,000 float32 on
 * 3 ranks took 0.69-0.80 s, against 1.17-2.08 s with the default (results/BENCH.md,
 * eleventh step). */
#define KM_IO_AGG_MAX (4L << 20)
#define KM_IO_AGG_MIN (64L << 10)
int64_t km_io_agg_bytes(int64_t memory_limit);
void km_h5io_set_agg(int64_t bytes);

/* A compressed dataset read in core goes through parallel HDF5's filtered path,
 * which holds the decompressed chunks of a whole H5Dread besides the destination:
 * in one 256 MiB read, as the other layouts are, a 110 MB gzip matrix peaked at
 * twice its size (results/BENCH.md, eleventh step). It is read in rounds of
 * km_filtered_round_rows rows, and km_filtered_read_bytes is what the memory plan
 * adds for them. */
#define KM_FILTER_ROUND (8L << 20)
int64_t km_filtered_round_rows(int64_t d, size_t esize, int64_t chunk_rows);
double km_filtered_read_bytes(int64_t d, size_t esize, int64_t chunk_rows);

/* Silence HDF5's own error stacks: errors are reported as one line instead. */
void km_h5io_init(void);

/* Collective: open path:dset, check it is a 2-D float (or integer, converted)
 * matrix, set blk's shape and this rank's contiguous block of rows, and with
 * read_rows read them (else blk->data stays NULL). transposed: the dataset is
 * d x n (points are columns). chunk: points and features per HDF5 chunk, or 0, 0
 * when the dataset is contiguous. */
int km_read_block(const km_comm *c, const char *path, const char *dset, int transposed,
                  int read_rows, km_block *blk, int64_t *chunk, km_error *err);

void km_block_free(km_block *blk);
/* Memory for a block of rows: from 4 MiB on 2 MiB aligned, huge pages advised, first
 * touched by the OpenMP threads; free() it. */
void *km_alloc_rows(size_t bytes);

/* Collective: read a K x d centroid matrix from a small file (every rank reads
 * it). *k = 0 on entry accepts any K; otherwise the row count must equal *k. */
int km_read_centroids(const km_comm *c, const char *path, const char *dset, int d, int *k,
                      double **out, km_error *err);

/* Local check that path can be created (directory exists and is writable);
 * what ("output", "checkpoint") names the file in the message. */
int km_check_output_path(const char *what, const char *path, km_error *err);

/* Scalar attributes (strings are variable-length UTF-8), shared with
 * checkpoint.c. Getters return -1 if the attribute is missing or unreadable. */
herr_t km_h5_attr_str(hid_t loc, const char *name, const char *val);
herr_t km_h5_attr_i64(hid_t loc, const char *name, int64_t v);
herr_t km_h5_attr_f64(hid_t loc, const char *name, double v);
herr_t km_h5_get_str(hid_t loc, const char *name, char *buf, size_t len);
herr_t km_h5_get_i64(hid_t loc, const char *name, int64_t *v);
herr_t km_h5_get_f64(hid_t loc, const char *name, double *v);

typedef struct {
    const km_options *opt;
    const km_data *data;      /* preprocessing and memory plan */
    const km_block *blk;
    const km_model *model;
    const int32_t *labels;    /* this rank's blk->rows labels */
    const km_result *res;
    km_timers *timers;        /* this rank's phases; the write phase and the
                                 min/mean/max over ranks are filled in here */
    double write_start;       /* km_now() when the write phase began */
    int ranks, threads;
} km_output;

/* Collective: write the result to path.tmp-<pid>, then rename it to path. On
 * failure nothing is left at either name. */
int km_write_result(const km_comm *c, const char *path, const km_output *o, km_error *err);
#endif
