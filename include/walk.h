/* walk.h — how every strategy's pass walks this rank's rows: block by block
 * (the kernel's blocks), threads sharing the blocks. For each block the
 * strategy first says which rows it needs the values of (Lloyd: all; a pruned
 * strategy's bounds settle the others without them), then works on those
 * rows. From an in-memory or chunked source the rows are already in the
 * chunk; from a source that reads directly (km_source.read), each thread reads
 * into its own buffer only what was asked for: the whole block, or the runs of
 * rows in doubt when they are few (a late pass then reads a small part of the
 * file). */
#ifndef KM_WALK_H
#define KM_WALK_H
#include "kernels.h"
#include "source.h"

typedef struct {
    /* Thread t, block of local rows [first, first + n): how many rows need their
     * values, with their block-relative indices (ascending) in *idx, or n with
     * *idx NULL for all of them. */
    int64_t (*mark)(void *ctx, int t, int64_t first, int64_t n, const int64_t **idx);
    /* The same block's rows at x (n rows, d values each; only the marked ones
     * need be there); not called when none was marked. */
    void (*work)(void *ctx, int t, int64_t first, int64_t n, const int64_t *idx,
                 int64_t nidx, const void *x);
    /* Thread t is done with a chunk (or with the pass): flush what it holds,
     * for x (the chunk) is not kept. */
    void (*flush)(void *ctx, int t);
} km_walk;

/* What a strategy's callbacks share: the pass's centroids, labels, threads and
 * bound margin, and the strategy's own state. */
typedef struct {
    const km_centers *kc;
    int32_t *labels;
    km_threads *th;
    double m;
    void *state;
} km_pass;

/* mark's answer for a block whose rows are all needed. */
static inline int64_t km_walk_all(int64_t n, const int64_t **idx)
{
    *idx = NULL;
    return n;
}

/* Walk every local row of src with th's threads in blocks of at most
 * block_rows. Returns 0, or err's code (a read failed: the pass is incomplete). */
int km_walk_rows(km_source *src, km_threads *th, int64_t block_rows, const km_walk *w,
                 void *ctx, km_error *err);

/* Read into x (room for n x src->read_width values) at least the rows idx[0..m)
 * of block [first, first + n) of src (through src->read), each at its place in
 * the block (stride d): the whole block in one read, or, when that copies more
 * than the calls it saves, runs of the rows asked for. */
int km_read_some(km_source *src, int64_t first, int64_t n, const int64_t *idx, int64_t m,
                 void *x, km_error *err);
#endif
