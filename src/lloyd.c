/* lloyd.c — Lloyd's assignment pass: every row against every centroid, chunk
 * by chunk from the source, threads inside each chunk (kernels.c); or, where
 * the source reads rows directly, block by block into each thread's buffer. */
#include "lloyd.h"

typedef struct {
    km_source *src;
    km_error *err;   /* the first thread's error */
} reader;

static int load_rows(void *ctx, int64_t first, int64_t n, void *dst)
{
    reader *r = ctx;
    km_error e = {0};
    if (!r->src->read(r->src, first, n, dst, &e))
        return 0;
#pragma omp critical(km_lloyd_read_error)
    if (!r->err->code)
        *r->err = e;
    return e.code;
}

int km_lloyd_pass(km_source *src, const km_centers *kc, int32_t *labels, km_threads *th,
                  km_acc *acc, km_error *err)
{
    if (src->read) {
        reader r = {src, err};
        const int64_t br = km_source_read_rows(src, km_threads_count(th),
                                               km_threads_block_rows(th));
        const int rc = km_assign_loaded(kc, src->rows, src->read_width, br, load_rows, &r,
                                        labels, th);
        if (rc == KM_ERR_MEMORY && !err->code)
            return km_fail(err, rc, "out of memory for the threads' blocks of rows");
        if (rc)
            return err->code;
    } else {
        for (int64_t first = 0, n; (n = km_source_span(src, first)) > 0; first += n) {
            const void *x;
            if (src->get(src, first, n, &x, err))
                return err->code;
            km_assign_chunk(kc, x, n, labels + first, th);
        }
    }
    km_threads_reduce(th, acc);
    acc->distances += (double)src->rows * kc->k;
    return 0;
}
