/* hamerly.h — Hamerly's exact pruned assignment (G. Hamerly, "Making k-means even
 * faster", SDM 2010): per point an upper bound on the distance to its centroid
 * and a lower bound on the distance to every other one, moved by the centroid
 * drifts each pass. A point whose moved bounds prove its label cannot change
 * costs no distance and is not read (the totals change only by moves). The moves
 * (so the totals) and changed counts are those of km_lloyd_pass, bit for bit: bounds are
 * on true distances, loosened by proven rounding margins, and a label is kept
 * only when the gap is strict. Where a point's k distances in the kernel are dear
 * (k (d + 10) >= 4096), a point in doubt first gets its exact distance to its own
 * centroid (kept if its bounds then hold), then, still in doubt, to the few
 * centroids that lie within twice its distance of its own (each centroid keeps a
 * list of its 32 nearest), when there are at most 16 of them, and on down the list
 * while one could be its runner-up; every other point in doubt goes through the
 * same fast kernel as Lloyd's, gathered into blocks (by pointer where the rows stay
 * in place until the pass's flush, else copied). */
#ifndef KM_HAMERLY_H
#define KM_HAMERLY_H
#include "kernels.h"
#include "source.h"

typedef struct km_hamerly km_hamerly;

/* Bounds for `rows` local rows (2 floats each) and scratch for every thread of
 * th. NULL when out of memory. The first pass computes every distance. */
km_hamerly *km_hamerly_new(const km_centers *kc, int64_t rows, km_threads *th);
void km_hamerly_free(km_hamerly *h);
/* Bytes km_hamerly_new allocates for these sizes (to report or to limit). */
size_t km_hamerly_bytes(int k, int d, int64_t rows, int threads, int64_t block_rows,
                        km_precision prec);

/* The share of the distances the last pass skipped, over all ranks (the history's):
 * below KM_HAMERLY_TIGHTEN_MIN the next pass sends its rows in doubt straight to the
 * kernel, without their own exact distance first (it seldom settles one then). */
void km_hamerly_note_skipped(km_hamerly *h, double skipped);

/* Same contract as km_lloyd_pass (acc also counts the distances computed). */
int km_hamerly_pass(km_hamerly *h, km_source *src, const km_centers *kc, int32_t *labels,
                    km_threads *th, km_acc *acc, km_error *err);
#endif
