/* stream.c — the streamed chunk source: rows read from HDF5 chunk by chunk
 * into two buffers. While a pass computes on one, an I/O thread reads the next
 * chunk into the other (after the last chunk, the first one again: the next
 * pass starts there). Only one thread calls HDF5 at any time: the I/O thread
 * while a read is under way, the caller otherwise (sync waits for the I/O
 * thread first). The file is opened with the POSIX driver, so no MPI call
 * happens outside the main thread.
 *
 * A contiguous dataset stored in the memory's own type with points in rows is
 * read with pread() at the offset HDF5 gives, in pieces of KM_PREAD_BYTES:
 * copying from the page cache into a cache-sized piece at a time runs ~3x
 * faster here than one large read (measured: 6.0 vs 1.8 GB/s, dd bs=256K vs
 * 8M), and on a node whose cores all compute that copy is CPU time taken from
 * the kernels. (Mapping the file instead was slower still: releasing used
 * pages and faulting them in again each pass cost more than the copy.) Such a
 * dataset is also offered to a pass as read(): each thread preads the kernel
 * block it takes into its own buffer and computes on it while it is in cache,
 * with no chunk and no barrier in between; a pruned pass reads only its rows
 * in doubt (walk.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hdf5.h>
#include "source.h"

typedef struct {
    int64_t first, n;      /* local rows held, n = 0: none */
    unsigned gen;          /* preprocessing generation (finished buffers only) */
    int done;              /* finished in place (rows not transposed) */
} held;

typedef struct {
    km_stream_spec spec;
    char path[4096], dset[1024];
    hid_t file, ds, memtype;
    size_t esize;
    void *buf[2];          /* chunk_rows x d_raw each, as stored */
    void *tbuf;            /* transposed: the rows handed out, chunk_rows x d_raw */
    double *rowbuf;        /* one raw row (d_raw) for row() */
    int fd;                /* direct reads: the file, or -1 */
    off_t data_off;        /* direct reads: file offset of the rank's first row */
    held have[2];
    unsigned gen;
    pthread_t thread;
    int thread_on;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int pending, quit;     /* a read request is waiting or under way */
    int64_t req_first, req_n;
    int req_buf;
} stream;

#define KM_PREAD_BYTES (256u << 10)

/* pread exactly len bytes at off into buf: 0, or -1 (errno set, 0 at the
 * end of the file). */
static int pread_full(int fd, char *buf, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t got = pread(fd, buf, len, off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return -1;
        buf += got;
        off += (off_t)got;
        len -= (size_t)got;
    }
    return 0;
}

/* pread len bytes at off into buf, in pieces shared among the OpenMP threads
 * (idle between chunks anyway); the kernel then reads the next chunk ahead. */
static int pread_all(int fd, char *buf, size_t len, off_t off, off_t next, size_t next_len)
{
    const int64_t pieces = (int64_t)((len + KM_PREAD_BYTES - 1) / KM_PREAD_BYTES);
    int bad = 0;
#pragma omp parallel for schedule(static) reduction(|: bad)
    for (int64_t p = 0; p < pieces; p++) {
        const size_t at = (size_t)p * KM_PREAD_BYTES, left = len - at;
        bad |= pread_full(fd, buf + at, left < KM_PREAD_BYTES ? left : KM_PREAD_BYTES,
                          off + (off_t)at);
    }
    if (next_len)
        posix_fadvise(fd, next, (off_t)next_len, POSIX_FADV_WILLNEED);
    return bad ? -1 : 0;
}

static int read_failed(const stream *st, int64_t first, int64_t n, km_error *err)
{
    const int64_t g = st->spec.first + first;
    return km_fail(err, KM_ERR_INPUT, "reading rows %lld-%lld of '%s' in '%s' failed: %s",
                   (long long)g, (long long)(g + n - 1), st->dset, st->path,
                   errno ? strerror(errno) : "end of file");
}

/* Columns from global point g on that one read takes: up to the end of the
 * file's chunk when transposed and chunked, else all n. */
static int64_t block_width(const stream *st, int64_t g, int64_t n)
{
    const int64_t b = st->spec.transposed ? st->spec.block : 0;
    if (b <= 0)
        return n;
    const int64_t w = b - g % b;
    return w < n ? w : n;
}

/* Read local rows [first, first + n) as stored: n x d_raw, or d_raw x n when
 * transposed. Called by the I/O thread, or by the caller when it is idle. */
static int raw_read(stream *st, int64_t first, int64_t n, void *raw, km_error *err)
{
    const km_stream_spec *sp = &st->spec;
    const int64_t g = sp->first + first, d = sp->d_raw;
    if (st->fd >= 0) {
        const size_t rowbytes = (size_t)d * st->esize;
        const off_t at = st->data_off + (off_t)(first * rowbytes);
        /* read ahead: the next rows, or after the last chunk the first ones (the
           next pass starts there) */
        const int64_t left = sp->rows - first - n, ahead = left < n ? left : n;
        const off_t next = ahead > 0 ? at + (off_t)(n * rowbytes) : st->data_off;
        const int64_t nnext = ahead > 0 ? ahead : (first > 0 ? (n < first ? n : first) : 0);
        errno = 0;
        if (pread_all(st->fd, raw, (size_t)n * rowbytes, at, next, (size_t)nnext * rowbytes))
            return read_failed(st, first, n, err);
        return 0;
    }
    herr_t rc = 0;
    hid_t fspace = H5Dget_space(st->ds);
    /* transposed: one read per block of columns (the file's chunk width), each
     * into its own d x w stretch of raw, so every HDF5 chunk lands contiguous
     * in memory and is read in place rather than through a second copy */
    for (int64_t c0 = 0; c0 < n && rc >= 0;) {
        const int64_t w = block_width(st, g + c0, n - c0);
        hsize_t start[2] = {(hsize_t)(g + c0), 0}, count[2] = {(hsize_t)w, (hsize_t)d};
        if (sp->transposed) {
            start[0] = 0;
            start[1] = (hsize_t)(g + c0);
            count[0] = (hsize_t)d;
            count[1] = (hsize_t)w;
        }
        hid_t mspace = H5Screate_simple(2, count, NULL);
        rc = H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
        if (rc >= 0)
            rc = H5Dread(st->ds, st->memtype, mspace, fspace, H5P_DEFAULT,
                         (char *)raw + (size_t)c0 * d * st->esize);
        H5Sclose(mspace);
        c0 += w;
    }
    H5Sclose(fspace);
    if (rc < 0)
        return km_fail(err, KM_ERR_INPUT, "reading %s %lld-%lld of '%s' in '%s' failed",
                       sp->transposed ? "columns" : "rows", (long long)g,
                       (long long)(g + n - 1), st->dset, st->path);
    return 0;
}

/* Stored rows -> the rows handed out: transposed block by block into out
 * (else in place, out == raw), then preprocessed; by all threads. */
static void finish(stream *st, int64_t first, void *raw, int64_t n, void *out)
{
    const km_stream_spec *sp = &st->spec;
    if (sp->transposed) {
        const int64_t d = sp->d_raw, g = sp->first + first;
        int64_t nb = 0;
        for (int64_t c0 = 0; c0 < n; nb++)
            c0 += block_width(st, g + c0, n - c0);
        if (nb == 1) {
            km_transpose(raw, d, n, st->esize, out, 1);
        } else {
#pragma omp parallel for schedule(dynamic)
            for (int64_t b = 0; b < nb; b++) {   /* block b: columns [c0, c0 + w) */
                int64_t c0 = 0, w = block_width(st, g, n);
                if (b > 0) {
                    c0 = w + (b - 1) * sp->block;
                    w = n - c0 < sp->block ? n - c0 : sp->block;
                }
                km_transpose((const char *)raw + (size_t)c0 * d * st->esize, d, w, st->esize,
                             (char *)out + (size_t)c0 * d * st->esize, 0);
            }
        }
    }
    km_prep_apply(sp->prep, out, n, sp->prec, 1);
}

static void *io_main(void *arg)
{
    stream *st = arg;
    pthread_mutex_lock(&st->mu);
    for (;;) {
        while (!st->pending && !st->quit)
            pthread_cond_wait(&st->cv, &st->mu);
        if (st->quit)
            break;
        const int b = st->req_buf;
        const int64_t first = st->req_first, n = st->req_n;
        pthread_mutex_unlock(&st->mu);
        km_error e = {0};
        int rc = raw_read(st, first, n, st->buf[b], &e);
        pthread_mutex_lock(&st->mu);
        st->have[b] = rc ? (held){0, 0, 0, 0} : (held){first, n, 0, 0};   /* raw */
        /* a failed read-ahead leaves the buffer empty: get() reads it again
           and reports the error itself */
        st->pending = 0;
        pthread_cond_broadcast(&st->cv);
    }
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

/* With the lock held: wait until no read is under way. */
static void wait_idle(stream *st)
{
    while (st->pending)
        pthread_cond_wait(&st->cv, &st->mu);
}

static int stream_get(km_source *s, int64_t first, int64_t n, const void **x, km_error *err)
{
    stream *st = s->impl;
    pthread_mutex_lock(&st->mu);
    wait_idle(st);
    int b = -1;
    for (int i = 0; i < 2; i++)   /* read ahead, or still here from the last pass */
        if (st->have[i].n == n && st->have[i].first == first &&
            (!st->have[i].done || st->have[i].gen == st->gen))
            b = i;
    if (b < 0) {
        b = 0;
        st->have[b].n = 0;
        if (raw_read(st, first, n, st->buf[b], err)) {
            pthread_mutex_unlock(&st->mu);
            return err->code;
        }
        st->have[b] = (held){first, n, 0, 0};
    }
    int64_t next = first + n < s->rows ? first + n : 0;
    int64_t nn = km_source_span(s, next);
    if (st->thread_on && nn > 0 && next != first) {
        st->have[1 - b].n = 0;
        st->req_first = next;
        st->req_n = nn;
        st->req_buf = 1 - b;
        st->pending = 1;
        pthread_cond_broadcast(&st->cv);
    }
    pthread_mutex_unlock(&st->mu);
    /* the I/O thread now works on the other buffer only */
    if (st->spec.transposed) {
        finish(st, first, st->buf[b], n, st->tbuf);
        *x = st->tbuf;
    } else {
        if (!st->have[b].done) {
            finish(st, first, st->buf[b], n, st->buf[b]);
            st->have[b].done = 1;
            st->have[b].gen = st->gen;
        }
        *x = st->buf[b];
    }
    return 0;
}

/* Direct reads by a pass's threads, a kernel block each (walk.h):
 * the rows go from the page cache into the cache the kernel reads them from,
 * with no chunk in between. The kernel is asked to read ahead a window at a
 * time: when a read enters window w, window w + 1; the last read of the rows,
 * the first two windows for the next pass. */
#define KM_READAHEAD_BYTES ((off_t)8 << 20)

static int stream_read(km_source *s, int64_t first, int64_t n, void *dst, km_error *err)
{
    stream *st = s->impl;
    const size_t rowbytes = (size_t)st->spec.d_raw * st->esize;
    const off_t at = (off_t)((size_t)first * rowbytes), len = (off_t)((size_t)n * rowbytes);
    const off_t total = (off_t)((size_t)s->rows * rowbytes), ra = KM_READAHEAD_BYTES;
    errno = 0;
    if (pread_full(st->fd, dst, (size_t)len, st->data_off + at))
        return read_failed(st, first, n, err);
    off_t next = -1;
    if (first + n == s->rows)
        next = 0;
    else if ((at + len) / ra != at / ra)
        next = ((at + len) / ra + 1) * ra;
    if (next >= 0 && next < total) {
        const off_t want = next == 0 ? 2 * ra : ra;
        posix_fadvise(st->fd, st->data_off + next, total - next < want ? total - next : want,
                      POSIX_FADV_WILLNEED);
    }
    km_prep_apply(st->spec.prep, dst, n, st->spec.prec, 0);
    return 0;
}

static void stream_sync(km_source *s)
{
    stream *st = s->impl;
    pthread_mutex_lock(&st->mu);
    wait_idle(st);
    st->gen++;
    pthread_mutex_unlock(&st->mu);
}

static int stream_row(km_source *s, int64_t i, double *out, km_error *err)
{
    stream *st = s->impl;
    pthread_mutex_lock(&st->mu);
    wait_idle(st);
    const void *x = NULL;
    for (int b = 0; b < 2 && !x; b++)   /* finished in a buffer: no read */
        if (st->have[b].n && st->have[b].done && st->have[b].gen == st->gen &&
            i >= st->have[b].first && i < st->have[b].first + st->have[b].n)
            x = (const char *)st->buf[b] + (size_t)(i - st->have[b].first) * s->d * st->esize;
    int rc = 0;
    if (!x) {   /* one point: stored d_raw x 1 or 1 x d_raw, the same values */
        rc = raw_read(st, i, 1, st->rowbuf, err);
        if (!rc)
            km_prep_apply(st->spec.prep, st->rowbuf, 1, st->spec.prec, 0);
        x = st->rowbuf;
    }
    for (int j = 0; !rc && j < s->d; j++)
        out[j] = s->prec == KM_F32 ? (double)((const float *)x)[j] : ((const double *)x)[j];
    pthread_mutex_unlock(&st->mu);
    return rc;
}

static void stream_close(km_source *s)
{
    stream *st = s->impl;
    if (!st)
        return;
    if (st->thread_on) {
        pthread_mutex_lock(&st->mu);
        wait_idle(st);
        st->quit = 1;
        pthread_cond_broadcast(&st->cv);
        pthread_mutex_unlock(&st->mu);
        pthread_join(st->thread, NULL);
    }
    pthread_mutex_destroy(&st->mu);
    pthread_cond_destroy(&st->cv);
    if (st->fd >= 0)
        close(st->fd);
    if (st->ds >= 0)
        H5Dclose(st->ds);
    if (st->file >= 0)
        H5Fclose(st->file);
    free(st->buf[0]);
    free(st->buf[1]);
    free(st->tbuf);
    free(st->rowbuf);
    free(st);
    s->impl = NULL;
}

/* Read the file directly when the dataset is contiguous, allocated and stored
 * in the memory's type (else st->fd stays -1: HDF5 reads, converts, inflates). */
static void direct_reads(stream *st)
{
    hid_t dcpl = H5Dget_create_plist(st->ds), ftype = H5Dget_type(st->ds);
    const int contiguous = H5Pget_layout(dcpl) == H5D_CONTIGUOUS;
    const int same = H5Tequal(ftype, st->memtype) > 0;
    H5Pclose(dcpl);
    H5Tclose(ftype);
    haddr_t off = contiguous && same ? H5Dget_offset(st->ds) : HADDR_UNDEF;
    if (off == HADDR_UNDEF)
        return;
    st->data_off = (off_t)off + (off_t)(st->spec.first * st->spec.d_raw * (int64_t)st->esize);
    st->fd = open(st->path, O_RDONLY);
}

size_t km_stream_bytes(int64_t chunk_rows, int64_t d_raw, km_precision prec, int spare)
{
    const size_t chunk = (size_t)chunk_rows * (size_t)d_raw * (prec == KM_F32 ? 4 : 8);
    return (spare ? 3 : 2) * chunk + 3 * (size_t)d_raw * 8;
}

int km_source_stream(km_source *s, const km_stream_spec *spec, km_error *err)
{
    stream *st = calloc(1, sizeof *st);
    *s = (km_source){.rows = spec->rows, .chunk_rows = spec->chunk_rows, .phase = spec->phase,
                     .d = spec->prep->d_out, .prec = spec->prec, .get = stream_get,
                     .row = stream_row, .sync = stream_sync, .close = stream_close, .impl = st};
    if (!st)
        return km_fail(err, KM_ERR_MEMORY, "out of memory for the stream of '%s'", spec->path);
    st->spec = *spec;
    snprintf(st->path, sizeof st->path, "%s", spec->path);
    snprintf(st->dset, sizeof st->dset, "%s", spec->dset);
    st->spec.path = st->path;
    st->spec.dset = st->dset;
    st->file = st->ds = -1;
    st->fd = -1;
    st->esize = spec->prec == KM_F32 ? 4 : 8;
    st->memtype = spec->prec == KM_F32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    const size_t chunk = (size_t)spec->chunk_rows * (size_t)spec->d_raw * st->esize;
    st->buf[0] = aligned_alloc(64, (chunk + 63) / 64 * 64);
    st->buf[1] = aligned_alloc(64, (chunk + 63) / 64 * 64);
    st->tbuf = spec->transposed ? aligned_alloc(64, (chunk + 63) / 64 * 64) : NULL;
    st->rowbuf = malloc(2 * st->esize * (size_t)spec->d_raw);
    if (!st->buf[0] || !st->buf[1] || (spec->transposed && !st->tbuf) || !st->rowbuf)
        return km_fail(err, KM_ERR_MEMORY, "out of memory for two chunks of %lld rows of '%s' "
                       "(%.1f MB each)", (long long)spec->chunk_rows, spec->dset, chunk / 1e6);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_sec2(fapl);
    st->file = H5Fopen(spec->path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (st->file >= 0) {
        hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
        H5Pset_chunk_cache(dapl, 12421, spec->cache_bytes, 1.0);
        st->ds = H5Dopen2(st->file, spec->dset, dapl);
        H5Pclose(dapl);
    }
    if (st->ds < 0)
        return km_fail(err, KM_ERR_INPUT, "cannot open '%s' in '%s' for streaming", spec->dset,
                       spec->path);
    if (!spec->transposed)
        direct_reads(st);
    if (st->fd >= 0) {
        s->read = stream_read;
        s->read_width = (int)spec->d_raw;
        return 0;   /* direct reads are copies from the page cache, made by all threads
                       with the kernel reading ahead: an I/O thread would only compete */
    }
    if (pthread_create(&st->thread, NULL, io_main, st) == 0)
        st->thread_on = 1;   /* without it every chunk is read when asked for */
    return 0;
}
