/* lloyd.c — Lloyd's assignment pass: every row against every centroid, chunk
 * by chunk from the source, threads inside each chunk (kernels.c). */
#include "lloyd.h"

int km_lloyd_pass(km_source *src, const km_centers *kc, int32_t *labels, km_threads *th,
                  km_acc *acc, km_error *err)
{
    for (int64_t first = 0, n; (n = km_source_span(src, first)) > 0; first += n) {
        const void *x;
        if (src->get(src, first, n, &x, err))
            return err->code;
        km_assign_chunk(kc, x, n, labels + first, th);
    }
    km_threads_reduce(th, acc);
    acc->distances += (double)src->rows * kc->k;
    return 0;
}
