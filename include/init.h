/* init.h — initial centroids: first, random, rows:, file, k-means++. The
 * choice depends only on the data, the options and the seed. */
#ifndef KM_INIT_H
#define KM_INIT_H
#include "comm.h"
#include "kmeans.h"
#include "source.h"

/* Collective: fill centroids (k x d) from opt->init, reading blk's rows from src;
 * scratch: blk->rows values k-means++ may use (each row's nearest centroid).
 * progress (or NULL): where k-means++ says how far it got, every
 * KM_INIT_PROGRESS_SECONDS. *chosen: 0, or for k-means++ continued from a
 * checkpoint the centroids it had chosen (their rows filled); on return k, or,
 * when a stop signal came during k-means++ with --checkpoint, how many it has. */
#include <stdio.h>
#define KM_INIT_PROGRESS_SECONDS 10.0
int km_init_centroids(const km_comm *c, const km_options *opt, const km_block *blk,
                      km_source *src, double *centroids, int32_t *scratch, FILE *progress,
                      int *chosen, km_error *err);
/* Collective: out (m x d) = the global rows rows[0..m) (every rank gets them;
 * rows[t] = -1 gives zeros). Returns the agreed error of a failed read. */
int km_fetch_rows(const km_comm *c, const km_block *blk, km_source *src, const int64_t *rows,
                  int m, double *out, km_error *err);
#endif
