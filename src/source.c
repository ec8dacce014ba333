/* source.c — the in-memory chunk source (chunks are views into the block) and
 * the preprocessing both sources apply. */
#include <math.h>
#include <string.h>
#include "source.h"

void km_prep_apply(const km_prep *p, void *x, int64_t rows, km_precision prec, int parallel)
{
    if (km_prep_is_identity(p))
        return;
    const int din = p->d_in, dout = p->d_out;
    const double ln2 = log(2.0);
    /* the values first, where they are (rows apart: any thread order) */
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t i = 0; i < rows; i++)
        for (int j = 0; j < dout; j++) {
            const int64_t at = i * din + (p->keep ? p->keep[j] : j);
            double v = prec == KM_F32 ? (double)((float *)x)[at] : ((double *)x)[at];
            if (p->log1p)
                v = log1p(v) / ln2;
            if (p->mean)
                v = p->scale[j] == 0 ? 0.0 : (v - p->mean[j]) * p->scale[j];
            if (prec == KM_F32)
                ((float *)x)[at] = (float)v;
            else
                ((double *)x)[at] = v;
        }
    if (!p->keep)
        return;
    /* then the kept columns to the front, in row order: row i moves down to
     * i * dout, over rows already moved, never over one still to read */
    const size_t es = prec == KM_F32 ? 4 : 8;
    for (int64_t i = 0; i < rows; i++)
        for (int j = 0; j < dout; j++)
            memcpy((char *)x + (size_t)(i * dout + j) * es,
                   (const char *)x + (size_t)(i * din + p->keep[j]) * es, es);
}

#define KM_TILE 32

#define TRANSPOSE(T)                                                                      \
    static void transpose_##T(const T *restrict in, int64_t r, int64_t c, T *restrict out, \
                              int parallel)                                               \
    {                                                                                     \
        const int64_t tiles = (c + KM_TILE - 1) / KM_TILE;                                \
        _Pragma("omp parallel for schedule(static) if (parallel)")                        \
        for (int64_t t = 0; t < tiles; t++) {                                             \
            const int64_t j0 = t * KM_TILE, j1 = j0 + KM_TILE < c ? j0 + KM_TILE : c;     \
            for (int64_t i0 = 0; i0 < r; i0 += KM_TILE) {                                 \
                const int64_t i1 = i0 + KM_TILE < r ? i0 + KM_TILE : r;                   \
                for (int64_t j = j0; j < j1; j++)                                         \
                    for (int64_t i = i0; i < i1; i++)                                     \
                        out[j * r + i] = in[i * c + j];                                   \
            }                                                                             \
        }                                                                                 \
    }
TRANSPOSE(float)
TRANSPOSE(double)

void km_transpose(const void *in, int64_t r, int64_t c, size_t esize, void *out, int parallel)
{
    if (esize == 4)
        transpose_float(in, r, c, out, parallel);
    else
        transpose_double(in, r, c, out, parallel);
}

static int memory_get(km_source *s, int64_t first, int64_t n, const void **x, km_error *err)
{
    (void)n;
    (void)err;
    const size_t esize = s->prec == KM_F32 ? 4 : 8;
    *x = (const char *)s->blk->data + (size_t)first * (size_t)s->d * esize;
    return 0;
}

static int memory_row(km_source *s, int64_t i, double *out, km_error *err)
{
    (void)err;
    for (int j = 0; j < s->d; j++)
        out[j] = s->prec == KM_F32 ? (double)((const float *)s->blk->data)[i * s->d + j]
                                   : ((const double *)s->blk->data)[i * s->d + j];
    return 0;
}

static void memory_nothing(km_source *s)
{
    (void)s;
}

/* One chunk: every chunk's end is the end of a pass's parallel region (walk.c).
 * In chunks of 8 MB, 1M x 32 had 14 a pass, each a wake-up of the other threads
 * (~30 us on a VM with OMP_WAIT_POLICY=passive, against ~1 ms for a late Hamerly
 * pass), and 10,000 x 20,000 had 6 kernel blocks a chunk, a thread idle at each
 * chunk's end. */
void km_source_memory(km_source *s, const km_block *blk)
{
    *s = (km_source){.rows = blk->rows, .chunk_rows = blk->rows > 0 ? blk->rows : 1, .d = blk->d,
                     .prec = blk->prec, .get = memory_get, .row = memory_row,
                     .sync = memory_nothing, .close = memory_nothing, .blk = blk};
}
