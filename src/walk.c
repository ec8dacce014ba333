/* walk.c — a pass's walk over the rows (walk.h). */
#include <omp.h>
#include "walk.h"

static size_t esize(const km_source *s)
{
    return s->prec == KM_F32 ? 4 : 8;
}

/* One read call costs about as much as copying this many bytes from the page
 * cache (a system call and its page lookups against ~5 GB/s of copy). */
#define KM_READ_CALL_BYTES 4096
/* Rows between two asked for that are read rather than split into two calls. */
#define KM_READ_GAP 4

int km_read_some(km_source *src, int64_t first, int64_t n, const int64_t *idx, int64_t m,
                 void *x, km_error *err)
{
    const size_t stride = (size_t)src->d * esize(src);
    const size_t rowbytes = (size_t)src->read_width * esize(src);
    int64_t runs = 0;
    for (int64_t j = 0; idx && j < m; j++)
        runs += j == 0 || idx[j] - idx[j - 1] > KM_READ_GAP;
    if (!idx || (double)runs * KM_READ_CALL_BYTES >= (double)n * rowbytes)
        return src->read(src, first, n, x, err);
    /* a run read at its place: its rows as stored may reach past it (read_width
     * >= d), over rows the next runs then read again */
    for (int64_t j = 0; j < m;) {
        const int64_t a = idx[j];
        int64_t e = a + 1;
        while (++j < m && idx[j] - e < KM_READ_GAP)
            e = idx[j] + 1;
        if (src->read(src, first + a, e - a, (char *)x + (size_t)a * stride, err))
            return err->code;
    }
    return 0;
}

/* Blocks a thread takes at a time from a chunk in memory: runs of neighbouring
 * blocks (16 of 1M x 32's 977), and still 8 turns a thread. A pass that marks
 * 12 bytes a row and computes little (Hamerly, 1M x 32, k = 64) took 7 % less time
 * than with pairs of blocks, whose bounds two threads read in turns. */
static int run_of_blocks(int64_t nblocks, int threads)
{
    const int64_t r = nblocks / (8 * (int64_t)threads);
    return r < 2 ? 2 : r > 16 ? 16 : (int)r;
}

/* Every block of one chunk (x: its rows, local rows [first, first + n)). */
static void walk_chunk(km_threads *th, int64_t br, const km_walk *w, void *ctx, int64_t first,
                       int64_t n, const void *x, size_t stride)
{
    const int64_t nblocks = (n + br - 1) / br;
    const int run = run_of_blocks(nblocks, km_threads_count(th));
#pragma omp parallel num_threads(km_threads_count(th))
    {
        const int t = omp_get_thread_num();
        km_threads_rows_fresh(th, t, 0);
#pragma omp for schedule(dynamic, run) nowait
        for (int64_t b = 0; b < nblocks; b++) {
            const int64_t r0 = b * br, nr = n - r0 < br ? n - r0 : br;
            const int64_t *idx;
            const int64_t m = w->mark(ctx, t, first + r0, nr, &idx);
            if (m > 0)
                w->work(ctx, t, first + r0, nr, idx, m, (const char *)x + (size_t)r0 * stride);
        }
        w->flush(ctx, t);
    }
}

/* Every block of the rank, each read by the thread that takes it. */
static int walk_reading(km_source *src, km_threads *th, int64_t br, const km_walk *w, void *ctx,
                        km_error *err)
{
    const int64_t n = src->rows, nblocks = (n + br - 1) / br;
    int stop = 0;
#pragma omp parallel num_threads(km_threads_count(th))
    {
        const int t = omp_get_thread_num();
        void *x = km_threads_rowbuf(th, t);
        km_threads_rows_fresh(th, t, 1);
#pragma omp for schedule(dynamic, 2) nowait
        for (int64_t b = 0; b < nblocks; b++) {
            int halt;
#pragma omp atomic read
            halt = stop;
            if (halt)
                continue;
            const int64_t r0 = b * br, nr = n - r0 < br ? n - r0 : br;
            const int64_t *idx;
            const int64_t m = w->mark(ctx, t, r0, nr, &idx);
            if (m == 0)
                continue;   /* not even read */
            km_error e = {0};
            if (km_read_some(src, r0, nr, idx, m, x, &e)) {
                km_fail_first(err, &e);
#pragma omp atomic write
                stop = 1;
                continue;
            }
            w->work(ctx, t, r0, nr, idx, m, x);
        }
        w->flush(ctx, t);
    }
    return err->code;
}

int km_walk_rows(km_source *src, km_threads *th, int64_t block_rows, const km_walk *w,
                 void *ctx, km_error *err)
{
    if (src->read) {
        const int64_t br = km_source_read_rows(src, km_threads_count(th), block_rows);
        if (km_threads_rowbufs(th, (size_t)br * (size_t)src->read_width * esize(src)))
            return km_fail(err, KM_ERR_MEMORY, "out of memory for the threads' blocks of rows");
        return walk_reading(src, th, br, w, ctx, err);
    }
    const size_t stride = (size_t)src->d * esize(src);
    for (int64_t first = 0, n; (n = km_source_span(src, first)) > 0; first += n) {
        const void *x;
        if (src->get(src, first, n, &x, err))
            return err->code;
        walk_chunk(th, block_rows, w, ctx, first, n, x, stride);
    }
    return 0;
}
