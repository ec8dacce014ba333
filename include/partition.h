/* partition.h — which contiguous block of global rows each rank owns.
 * Pure functions of (n, ranks, rank): no MPI, so they are tested alone and every
 * rank can compute any other rank's block without communicating. */
#ifndef KM_PARTITION_H
#define KM_PARTITION_H
#include <stdint.h>

/* Rows [*first, *first + *rows) of n belong to `rank` of `nranks`; the first
 * n % nranks ranks get one extra row; ranks past n get none. */
void km_partition(int64_t n, int nranks, int rank, int64_t *first, int64_t *rows);
/* The rank that owns global row `row` (0 <= row < n). */
int km_partition_owner(int64_t n, int nranks, int64_t row);
/* The largest block any rank owns (so all ranks agree on collective rounds). */
int64_t km_partition_max_rows(int64_t n, int nranks);
#endif
