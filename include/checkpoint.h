/* checkpoint.h — the state that lets a stopped run continue to the same bits.
 *
 * Lloyd after init is a pure function of the centroids: the next iteration
 * needs the centroids it starts from, the labels of the last assignment (to
 * count changes) and the history so far. The labels are not stored: they are
 * rebuilt exactly by one assignment pass with the previous centroids, which
 * keeps the file O(k x d) whatever n is, lets rank 0 write it alone, and lets
 * a resumed run use another rank or thread count. The random generator is
 * counter-based and draws nothing after init, so the seed is its whole state. */
#ifndef KM_CHECKPOINT_H
#define KM_CHECKPOINT_H
#include "comm.h"
#include "kmeans.h"

typedef struct {
    int iteration;        /* iterations finished; 0 = right after init */
    int k, d;
    int chosen;           /* centroids the init had chosen: k, or with iteration 0
                             fewer when a signal stopped k-means++ (rows chosen..k-1
                             of centroids are then 0, to be chosen on --resume) */
    double *centroids;    /* k x d: where iteration + 1 starts */
    double *previous;     /* k x d: the centroids the labels of `iteration` were
                             assigned with (NULL when iteration is 0) */
    double *maxabs;       /* d: max |x_ij| per column over all rows: with
                             tol_scale, a fingerprint of the data's content */
    double tol_scale;     /* mean per-feature variance of the data */
    km_history hist;      /* one entry per finished iteration */
    km_algorithm algorithm; /* the strategy that wrote it (informative: every strategy
                               makes the same iterations, so any may continue) */
} km_ckpt;

/* Collective, before any work: --resume needs opt->checkpoint to exist; a fresh
 * run refuses to overwrite one; its directory must be writable. */
int km_ckpt_check(const km_comm *c, const km_options *opt, km_error *err);

/* Collective: rank 0 writes ck to opt->checkpoint atomically (FILE.tmp,
 * fsync, rename, fsync of the directory). On failure the previous checkpoint
 * is untouched, FILE.tmp is removed and every rank gets the error. */
int km_ckpt_write(const km_comm *c, const km_options *opt, const km_block *blk,
                  const km_ckpt *ck, km_error *err);

/* Collective: rank 0 reads opt->checkpoint and checks that it was made for this
 * input (path, dataset, shape, dtype) and these options (k, init, seed); every
 * rank gets the same *ck. The content fingerprint (maxabs,
 * tol_scale) is compared by the caller once it has computed them. */
int km_ckpt_read(const km_comm *c, const km_options *opt, const km_block *blk, km_ckpt *ck,
                 km_error *err);
void km_ckpt_free(km_ckpt *ck);
/* The content check: ck was made for data with these column maxima and mean
 * variance (exact, so equal bits or other data). 0, or err set (the same on
 * every rank). */
int km_ckpt_same_data(const km_options *opt, const km_ckpt *ck, const double *maxabs,
                      double tol_scale, km_error *err);

/* Collective: remove the checkpoint once the result is safely written. */
void km_ckpt_remove(const km_comm *c, const km_options *opt);
#endif
