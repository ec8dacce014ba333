/* source.c — the in-memory chunk source: chunks are views into the block. */
#include "source.h"

static int memory_get(km_source *s, int64_t first, int64_t n, const void **x, km_error *err)
{
    (void)n;
    (void)err;
    const size_t esize = s->blk->prec == KM_F32 ? 4 : 8;
    *x = (const char *)s->blk->data + (size_t)first * (size_t)s->blk->d * esize;
    return 0;
}

void km_source_memory(km_source *s, const km_block *blk, int64_t block_rows,
                      size_t chunk_bytes)
{
    const size_t rowbytes = (size_t)blk->d * (blk->prec == KM_F32 ? 4 : 8);
    int64_t blocks = (int64_t)(chunk_bytes / rowbytes) / block_rows;
    s->rows = blk->rows;
    s->chunk_rows = (blocks > 0 ? blocks : 1) * block_rows;
    s->get = memory_get;
    s->blk = blk;
}
