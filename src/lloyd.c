/* lloyd.c — Lloyd's assignment pass: every row against every centroid, block
 * by block (walk.h), threads sharing the blocks (kernels.c). */
#include "lloyd.h"
#include "walk.h"

static int64_t mark_all(void *ctx, int t, int64_t first, int64_t n, const int64_t **idx)
{
    (void)ctx, (void)t, (void)first;
    return km_walk_all(n, idx);
}

static void assign(void *ctx, int t, int64_t first, int64_t n, const int64_t *idx, int64_t m,
                   const void *x)
{
    (void)idx, (void)m;
    const km_pass *P = ctx;
    km_assign_thread_block(P->kc, x, n, P->labels + first, P->th, t);
}

static void no_flush(void *ctx, int t)
{
    (void)ctx, (void)t;
}

int km_lloyd_pass(km_source *src, const km_centers *kc, int32_t *labels, km_threads *th,
                  km_acc *acc, km_error *err)
{
    const km_walk w = {mark_all, assign, no_flush};
    km_pass P = {kc, labels, th, 0, NULL};
    if (km_walk_rows(src, th, km_threads_block_rows(th), &w, &P, err))
        return err->code;
    km_threads_reduce(th, acc);
    acc->distances += (double)src->rows * kc->k;
    return 0;
}
