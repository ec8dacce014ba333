/* source.h — where every pass gets its rows: chunk by chunk, through one small
 * interface. Two implementations: views into an in-memory block, and a stream
 * that reads each chunk from HDF5 with the next one read ahead by an I/O thread
 * (for matrices larger than a rank's memory). Both hand out rows already
 * preprocessed (km_prep), so the passes never know which one they have. */
#ifndef KM_SOURCE_H
#define KM_SOURCE_H
#include "kmeans.h"

/* Preprocessing of raw rows of d_in values into rows of d_out, in place:
 * x -> log2(x + 1) when log1p; keep the columns keep[0..d_out) (ascending;
 * NULL: all, d_out = d_in); then z = (x - mean[j]) * scale[j] when mean (0 where
 * scale[j] is 0). Values are computed in float64. parallel: OpenMP threads. */
typedef struct {
    int log1p;
    int d_in, d_out;
    const int *keep;
    const double *mean, *scale;
} km_prep;
void km_prep_apply(const km_prep *p, void *x, int64_t rows, km_precision prec, int parallel);
static inline int km_prep_is_identity(const km_prep *p)
{
    return !p->log1p && !p->keep && !p->mean;
}

/* out (c x r) = the transpose of in (r x c), elements of esize (4 or 8)
 * bytes, in tiles; parallel: OpenMP threads. */
void km_transpose(const void *in, int64_t r, int64_t c, size_t esize, void *out, int parallel);

typedef struct km_source km_source;
struct km_source {
    int64_t rows;          /* local rows */
    int64_t chunk_rows;    /* rows per chunk */
    int64_t phase;         /* chunks end where (phase + local row) % chunk_rows == 0,
                              so streamed chunks follow the file's HDF5 chunks */
    int d;                 /* values per row handed out */
    km_precision prec;
    /* Point *x at local rows [first, first + n), valid until the next call of
     * get or row; only one thread calls this. */
    int (*get)(km_source *s, int64_t first, int64_t n, const void **x, km_error *err);
    /* Local row i in float64 (d values). */
    int (*row)(km_source *s, int64_t i, double *out, km_error *err);
    /* Wait for any read under way and forget what was read ahead: before the
     * caller uses HDF5 itself, and after the preprocessing changed. */
    void (*sync)(km_source *s);
    void (*close)(km_source *s);
    /* NULL, or: copy local rows [first, first + n) as get would hand them out
     * into dst (room for n x read_width values: the rows as stored, then
     * preprocessed in place). Safe from several threads at once while no other
     * call is under way. Offered where a row is a plain copy from the file, so a
     * pass can read each block straight into the cache it is used from. */
    int (*read)(km_source *s, int64_t first, int64_t n, void *dst, km_error *err);
    int read_width;
    const km_block *blk;   /* the memory source's block */
    void *impl;            /* the stream's state */
};

/* Rows in the chunk that starts at local row `first` (0 past the end). Walk a
 * source with: for (int64_t f = 0, n; (n = km_source_span(s, f)) > 0; f += n). */
static inline int64_t km_source_span(const km_source *s, int64_t first)
{
    if (first >= s->rows)
        return 0;
    int64_t n = s->chunk_rows - (s->phase + first) % s->chunk_rows;
    return s->rows - first < n ? s->rows - first : n;
}

/* Rows per thread's block for a pass through read(): at most block_rows, and
 * the threads' blocks together at most one chunk (km_stream_bytes counts it). */
static inline int64_t km_source_read_rows(const km_source *s, int threads, int64_t block_rows)
{
    const int64_t share = s->chunk_rows / (threads > 0 ? threads : 1);
    return share < 1 ? 1 : share < block_rows ? share : block_rows;
}

/* A source over an in-memory block (blk->d values a row), handed out as one
 * chunk. */
void km_source_memory(km_source *s, const km_block *blk);

/* A source streaming rows [first, first + rows) of path:dset (d_raw features;
 * transposed: stored as d_raw x n) in chunks of chunk_rows, each preprocessed
 * by *prep (read at every chunk: the caller may change it, then sync). Opens the
 * file with the POSIX driver: no MPI inside, so the I/O thread may call HDF5
 * while this process's other threads compute. */
typedef struct {
    const char *path, *dset;
    int transposed;
    int64_t first, rows, d_raw;
    km_precision prec;
    int64_t chunk_rows, phase;
    int64_t block;         /* transposed and chunked: points per HDF5 chunk, else 0 */
    size_t cache_bytes;    /* HDF5 chunk cache */
    const km_prep *prep;
} km_stream_spec;
int km_source_stream(km_source *s, const km_stream_spec *spec, km_error *err);
/* Bytes a stream and its passes take for chunks of chunk_rows (besides the HDF5
 * cache): two chunks, and with spare a third: the transposition buffer when
 * transposed, or for a contiguous dataset in rows (where read() may be offered)
 * the threads' blocks (km_source_read_rows keeps them within one chunk). */
size_t km_stream_bytes(int64_t chunk_rows, int64_t d_raw, km_precision prec, int spare);
#endif
