/* source.h — where the iteration gets its rows: chunk by chunk, through one
 * small interface. Today the rows are in memory; a streamed HDF5 reader with
 * read-ahead (for matrices larger than memory) implements the same calls. */
#ifndef KM_SOURCE_H
#define KM_SOURCE_H
#include "kmeans.h"

typedef struct km_source km_source;
struct km_source {
    int64_t rows;          /* local rows */
    int64_t chunk_rows;    /* rows per chunk (the last may be shorter) */
    /* Point *x at local rows [first, first + n); only one thread calls this. */
    int (*get)(km_source *s, int64_t first, int64_t n, const void **x, km_error *err);
    const km_block *blk;
};

/* Rows in the chunk that starts at local row `first` (0 past the end). Walk a
 * source with: for (int64_t f = 0, n; (n = km_source_span(s, f)) > 0; f += n). */
static inline int64_t km_source_span(const km_source *s, int64_t first)
{
    if (first >= s->rows)
        return 0;
    return s->rows - first < s->chunk_rows ? s->rows - first : s->chunk_rows;
}

/* A source over an in-memory block, chunks of about chunk_bytes, a multiple of
 * block_rows rows. */
void km_source_memory(km_source *s, const km_block *blk, int64_t block_rows,
                      size_t chunk_bytes);
#endif
