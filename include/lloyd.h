/* lloyd.h — one iteration strategy: a full assignment pass (distances +
 * argmin + partial sums) over this rank's rows. Later strategies (Hamerly,
 * Yinyang) offer the same call with pruning state kept beside the labels. */
#ifndef KM_LLOYD_H
#define KM_LLOYD_H
#include "kernels.h"
#include "source.h"

/* Walk the source chunk by chunk; acc (a km_acc) receives this
 * rank's sums, counts, inertia and changed labels. */
int km_lloyd_pass(km_source *src, const km_centers *kc, int32_t *labels, km_threads *th,
                  km_acc *acc, km_error *err);
#endif
