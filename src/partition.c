/* partition.c — contiguous, balanced row blocks: rank r owns n/P rows, plus one
 * if r < n % P. See partition.h. */
#include "partition.h"

void km_partition(int64_t n, int nranks, int rank, int64_t *first, int64_t *rows)
{
    int64_t base = n / nranks, extra = n % nranks;
    *rows = base + (rank < extra ? 1 : 0);
    *first = (int64_t)rank * base + (rank < extra ? rank : extra);
}

int km_partition_owner(int64_t n, int nranks, int64_t row)
{
    int64_t base = n / nranks, extra = n % nranks;
    int64_t split = extra * (base + 1);   /* rows before this belong to the larger blocks */
    if (row < split)
        return (int)(row / (base + 1));
    return (int)(extra + (row - split) / base);
}

int64_t km_partition_max_rows(int64_t n, int nranks)
{
    return n / nranks + (n % nranks ? 1 : 0);
}
