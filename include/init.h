/* init.h — initial centroids: first, random, rows:, file, k-means++. The
 * choice depends only on the data, the options and the seed. */
#ifndef KM_INIT_H
#define KM_INIT_H
#include "comm.h"
#include <stdio.h>
#include "kmeans.h"
#include "source.h"

#define KM_INIT_PROGRESS_SECONDS 10.0   /* k-means++'s progress lines */

/* What k-means++ calls on every rank between two steps when its centroids are
 * due to be saved (--checkpoint-seconds passed on some rank): save(ctx, chosen),
 * centroids [0, chosen) final. A failed save is the saver's to report; the init
 * goes on. */
typedef struct {
    void (*save)(void *ctx, int chosen);
    void *ctx;
} km_init_saver;

/* Collective: fill centroids (k x d) from opt->init, reading blk's rows from src;
 * scratch: blk->rows values k-means++ may use (each row's nearest centroid).
 * progress (or NULL): where k-means++ says how far it got, every
 * KM_INIT_PROGRESS_SECONDS. *chosen: 0, or for k-means++ continued from a
 * checkpoint the centroids it had chosen (their rows filled); on return k, or,
 * when a stop signal came during k-means++ with --checkpoint, how many it has.
 * saver (or NULL): with --checkpoint, k-means++'s periodic saves. */
int km_init_centroids(const km_comm *c, const km_options *opt, const km_block *blk,
                      km_source *src, double *centroids, int32_t *scratch, FILE *progress,
                      const km_init_saver *saver, int *chosen, km_error *err);
/* Collective: out (m x d) = the global rows rows[0..m) (every rank gets them;
 * rows[t] = -1 gives zeros). Returns the agreed error of a failed read. */
int km_fetch_rows(const km_comm *c, const km_block *blk, km_source *src, const int64_t *rows,
                  int m, double *out, km_error *err);
#endif
