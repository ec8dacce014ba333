/* yinyang.h — the Yinyang exact pruned assignment (Y. Ding et al., "Yinyang
 * K-Means: a drop-in replacement of the classic K-Means with consistent
 * speedup", ICML 2015). The centroids are split into t groups (k/10, more for
 * wide rows: km_yinyang_groups) by a few Lloyd iterations on the centroids, the
 * same on every rank; per point an upper bound on the distance to its centroid
 * and one lower bound per group, moved each pass by the group's largest drift. A
 * point passes a global test (no group can hold a nearer centroid) or only the
 * groups that fail their test are searched; a point whose tests leave most
 * centroids in doubt goes through the blocked kernel with the others of its
 * block, which also returns its group bounds. Same labels, sums, inertia and
 * changed counts as km_lloyd_pass, bit for bit (see yinyang.c for why). Bounds
 * cost (t + 1) floats per point. */
#ifndef KM_YINYANG_H
#define KM_YINYANG_H
#include "kernels.h"
#include "source.h"

typedef struct km_yinyang km_yinyang;

/* The number of groups: k / 10 as Ding et al. advise, but up to d / 64 (at most
 * k) for wide rows, where a group bound costs under 1/64 of the distance it can
 * save (at d = 20,000, k = 16, one centroid a group: Elkan's bounds; measured in
 * results/BENCH.md). At least 1. */
int km_yinyang_groups(int k, int d);
/* Bytes a rank's Yinyang state takes with t groups. */
size_t km_yinyang_bytes(int k, int d, int64_t rows, int threads, int t, int64_t block_rows,
                        km_precision prec);
/* With `groups` groups of centroids (fewer save memory: 1 + groups floats a
 * point; any count gives the same results). NULL when out of memory. The first
 * pass computes every distance. */
km_yinyang *km_yinyang_new(const km_centers *kc, int64_t rows, km_threads *th, int groups);
void km_yinyang_free(km_yinyang *y);
/* Same contract as km_lloyd_pass (acc also counts the distances computed). */
int km_yinyang_pass(km_yinyang *y, km_source *src, const km_centers *kc, int32_t *labels,
                    km_threads *th, km_acc *acc, km_error *err);
#endif
