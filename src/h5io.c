/* h5io.c — parallel HDF5 I/O. Each rank reads only its contiguous block of rows
 * with collective hyperslab reads, done in bounded rounds so no single MPI-IO
 * call passes 2 GiB and ranks without rows still take part. Results go to a
 * temporary file renamed into place on success. Every step that can fail
 * differently on different ranks is followed by km_comm_agree(). */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <hdf5.h>
#include "h5io.h"
#include "partition.h"
#include "source.h"

#define KM_IO_BYTES (256L << 20)   /* per rank per collective call */

void km_h5io_init(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static int64_t agg_bytes = KM_IO_AGG_MAX;

int64_t km_io_agg_bytes(int64_t memory_limit)
{
    const int64_t b = memory_limit / 16;
    return b < KM_IO_AGG_MIN ? KM_IO_AGG_MIN : b > KM_IO_AGG_MAX ? KM_IO_AGG_MAX : b;
}

void km_h5io_set_agg(int64_t bytes)
{
    agg_bytes = bytes;
}

/* KM_FILTER_ROUND in whole chunks (at least one); rows_io ends the rounds on chunk
 * boundaries, so no chunk is decompressed twice by a rank. */
int64_t km_filtered_round_rows(int64_t d, size_t esize, int64_t chunk_rows)
{
    const int64_t c = chunk_rows > 0 ? chunk_rows : 1;
    const int64_t r = KM_FILTER_ROUND / (d * (int64_t)esize);
    return r > c ? (r + c - 1) / c * c : c;
}

/* Twice a round and a chunk: the round's decompressed chunks, one a rank's block
 * shares with its neighbour, and the chunks a rank decompresses for the others in
 * the same collective read (measured in results/BENCH.md, eleventh step). */
double km_filtered_read_bytes(int64_t d, size_t esize, int64_t chunk_rows)
{
    const double row = (double)d * (double)esize,
                 round = (double)km_filtered_round_rows(d, esize, chunk_rows);
    return 2.0 * row * (round + (double)chunk_rows);
}

static hid_t mpio_fapl(const km_comm *c)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    MPI_Info info;
    char cb[32];
    snprintf(cb, sizeof cb, "%lld", (long long)agg_bytes);
    MPI_Info_create(&info);
    MPI_Info_set(info, "cb_buffer_size", cb);   /* a hint: MPI-IO may ignore it */
    H5Pset_fapl_mpio(fapl, c->world, info);     /* which keeps its own copy */
    MPI_Info_free(&info);
    return fapl;
}

static hid_t collective_dxpl(void)
{
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
    return dxpl;
}

static int check_readable(const char *path, km_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0)
        return km_fail(err, KM_ERR_INPUT, "cannot read input file '%s': %s", path,
                       strerror(errno));
    if (S_ISDIR(st.st_mode))
        return km_fail(err, KM_ERR_INPUT, "input '%s' is a directory, not an HDF5 file", path);
    if (H5Fis_hdf5(path) <= 0)
        return km_fail(err, KM_ERR_INPUT, "'%s' is not an HDF5 file", path);
    return 0;
}

/* Open dataset `name`, telling "missing" apart from "not a dataset". */
static hid_t open_dataset(hid_t file, const char *path, const char *name, km_error *err)
{
    char prefix[1024];
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof prefix) {
        km_fail(err, KM_ERR_INPUT, "invalid dataset name '%s'", name);
        return -1;
    }
    for (size_t i = 1; i <= len; i++) {   /* H5Lexists needs every parent to exist */
        if (i < len && name[i] != '/')
            continue;
        memcpy(prefix, name, i);
        prefix[i] = 0;
        if (strcmp(prefix, "/") && H5Lexists(file, prefix, H5P_DEFAULT) <= 0) {
            km_fail(err, KM_ERR_INPUT, "no dataset '%s' in '%s' ('%s' does not exist)",
                    name, path, prefix);
            return -1;
        }
    }
    hid_t obj = H5Oopen(file, name, H5P_DEFAULT);
    if (obj < 0 || H5Iget_type(obj) != H5I_DATASET) {
        if (obj >= 0)
            H5Oclose(obj);
        km_fail(err, KM_ERR_INPUT, "'%s' in '%s' is not a dataset", name, path);
        return -1;
    }
    return obj;
}

/* The 2-D shape and the in-memory precision for a dataset; refuses non-numeric types. */
static int check_matrix(hid_t ds, const char *path, const char *name, int transposed,
                        int64_t *n, int64_t *d,
                        km_precision *prec, char *note, size_t notelen, km_error *err)
{
    hid_t space = H5Dget_space(ds);
    int rank = H5Sget_simple_extent_ndims(space);
    hsize_t dims[H5S_MAX_RANK] = {0};
    H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    if (rank != 2)
        return km_fail(err, KM_ERR_INPUT,
                       "dataset '%s' in '%s' has %d dimension(s); expected a 2-D n x d matrix",
                       name, path, rank);
    *n = (int64_t)dims[transposed ? 1 : 0];
    *d = (int64_t)dims[transposed ? 0 : 1];
    if (*n < 1 || *d < 1)
        return km_fail(err, KM_ERR_INPUT, "dataset '%s' in '%s' is empty (%lld x %lld)",
                       name, path, (long long)*n, (long long)*d);
    if (*d > (1 << 24))
        return km_fail(err, KM_ERR_INPUT, "dataset '%s' in '%s' has %lld %s; at most %d "
                       "are supported%s", name, path, (long long)*d,
                       transposed ? "rows (features)" : "columns", 1 << 24,
                       transposed ? "" : " (genes x samples? try --transpose)");
    hid_t type = H5Dget_type(ds);
    H5T_class_t cls = H5Tget_class(type);
    size_t size = H5Tget_size(type);
    H5Tclose(type);
    if (cls == H5T_FLOAT) {
        *prec = size <= 4 ? KM_F32 : KM_F64;
        snprintf(note, notelen, "float%zu", 8 * size);
    } else if (cls == H5T_INTEGER) {
        *prec = KM_F64;
        snprintf(note, notelen, "int%zu converted to float64", 8 * size);
    } else {
        return km_fail(err, KM_ERR_INPUT, "dataset '%s' in '%s' is not numeric (HDF5 type class "
                       "%d); expected float32, float64 or integers", name, path, (int)cls);
    }
    return 0;
}

/* Collective read/write of rows [first, first+rows) of an n x d dataset in the
 * same number of rounds on every rank. transposed: the dataset is d x n and its
 * columns [first, first+rows) are read, through tbuf (rows of a round x d), into
 * row-major buf. align > 0 (per_round a multiple of it): rounds end on multiples
 * of align in the dataset (its chunks), not of per_round from first. per_round and
 * align must be the same on every rank: they set how many collective calls each
 * makes (a rank's own row count in per_round once hung 3 ranks). */
static herr_t rows_io(hid_t ds, hid_t memtype, int64_t n, int64_t d, int nranks, int64_t first,
                      int64_t rows, void *buf, size_t esize, int write, int transposed,
                      void *tbuf, int64_t per_round, int64_t align)
{
    const int64_t maxrows = km_partition_max_rows(n, nranks);
    const int64_t lead = align > 0 ? first % align : 0;   /* rows before first in round 0 */
    const int64_t span = maxrows + (align > 0 ? align : 0);   /* lead + rows at most */
    const int64_t rounds = maxrows ? (span + per_round - 1) / per_round : 0;
    hid_t fspace = H5Dget_space(ds), dxpl = collective_dxpl();
    const int frank = H5Sget_simple_extent_ndims(fspace);   /* 1 for labels, 2 for rows */
    herr_t status = 0;
    char dummy[16];
    for (int64_t r = 0; r < rounds; r++) {
        int64_t off = r * per_round - lead, end = off + per_round;
        off = off > 0 ? off : 0;
        end = end < rows ? end : rows;
        int64_t cnt = end - off;
        if (cnt < 0)
            cnt = 0;
        hsize_t mdims[2] = {(hsize_t)(cnt ? cnt : 1), (hsize_t)d};
        if (transposed) {
            mdims[0] = (hsize_t)d;
            mdims[1] = (hsize_t)(cnt ? cnt : 1);
        }
        hid_t mspace = H5Screate_simple(frank, mdims, NULL);
        void *ptr = dummy;
        if (cnt) {
            hsize_t start[2] = {(hsize_t)(first + off), 0}, count[2] = {(hsize_t)cnt, (hsize_t)d};
            if (transposed) {
                start[0] = 0;
                start[1] = (hsize_t)(first + off);
                count[0] = (hsize_t)d;
                count[1] = (hsize_t)cnt;
            }
            H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL);
            ptr = transposed ? tbuf : (char *)buf + (size_t)off * (size_t)d * esize;
        } else {
            H5Sselect_none(fspace);
            H5Sselect_none(mspace);
        }
        herr_t s = write ? H5Dwrite(ds, memtype, mspace, fspace, dxpl, ptr)
                         : H5Dread(ds, memtype, mspace, fspace, dxpl, ptr);
        if (s < 0)
            status = s;
        else if (cnt && transposed)
            km_transpose(tbuf, (int64_t)d, cnt, esize, (char *)buf + (size_t)off * d * esize, 1);
        H5Sclose(mspace);
    }
    H5Pclose(dxpl);
    H5Sclose(fspace);
    return status;
}

int km_read_block(const km_comm *c, const char *path, const char *dset, int transposed,
                  int read_rows, km_block *blk, int64_t *chunk, km_error *err)
{
    memset(blk, 0, sizeof *blk);
    chunk[0] = chunk[1] = 0;
    check_readable(path, err);
    if (km_comm_agree(c, err))
        return err->code;
    hid_t fapl = mpio_fapl(c);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl), ds = -1;
    H5Pclose(fapl);
    if (file < 0)
        km_fail(err, KM_ERR_INPUT, "cannot open HDF5 file '%s'", path);
    if (km_comm_agree(c, err))
        goto done;
    int64_t n = 0, d = 0;
    ds = open_dataset(file, path, dset, err);
    if (ds >= 0)
        check_matrix(ds, path, dset, transposed, &n, &d, &blk->prec, blk->dtype_note,
                     sizeof blk->dtype_note, err);
    if (km_comm_agree(c, err))
        goto done;
    hid_t dcpl = H5Dget_create_plist(ds);
    hsize_t cd[2];
    if (H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 2, cd) == 2) {
        chunk[0] = (int64_t)cd[transposed ? 1 : 0];   /* points per HDF5 chunk */
        chunk[1] = (int64_t)cd[transposed ? 0 : 1];   /* features per HDF5 chunk */
        blk->filtered = H5Pget_nfilters(dcpl) > 0;
    }
    H5Pclose(dcpl);
    blk->n = n;
    blk->d = (int)d;
    km_partition(n, c->size, c->rank, &blk->first, &blk->rows);
    if (!read_rows)
        goto done;
    size_t esize = blk->prec == KM_F32 ? 4 : 8;
    size_t bytes = (size_t)blk->rows * (size_t)d * esize;
    int64_t per_round = KM_IO_BYTES / (int64_t)(d * esize) > 0
                            ? KM_IO_BYTES / (int64_t)(d * esize) : 1;
    if (blk->filtered)
        per_round = km_filtered_round_rows(d, esize, chunk[0]);
    /* a round's transposition buffer need not pass the largest block; the same on
       every rank, since it sets how many collective reads each one makes (a rank's
       own row count here hung 3 ranks on 64 points) */
    const int64_t maxrows = km_partition_max_rows(n, c->size);
    if (transposed && per_round > maxrows)
        per_round = maxrows > 0 ? maxrows : 1;
    void *tbuf = transposed ? malloc((size_t)per_round * d * esize) : NULL;
    blk->data = km_alloc_rows(bytes);
    if (!blk->data || (transposed && !tbuf))
        km_fail(err, KM_ERR_MEMORY, "rank %d: out of memory for its %lld rows of '%s' "
                "(%.2f GB)", c->rank, (long long)blk->rows, dset, bytes / 1e9);
    if (!km_comm_agree(c, err)) {
        hid_t memtype = blk->prec == KM_F32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
        if (rows_io(ds, memtype, n, d, c->size, blk->first, blk->rows, blk->data, esize, 0,
                    transposed, tbuf, per_round, blk->filtered ? chunk[0] : 0) < 0)
            km_fail(err, KM_ERR_INPUT, "reading %s %lld-%lld of '%s' in '%s' failed",
                    transposed ? "columns" : "rows", (long long)blk->first,
                    (long long)(blk->first + blk->rows - 1), dset, path);
        km_comm_agree(c, err);
    }
    free(tbuf);
done:
    if (ds >= 0)
        H5Dclose(ds);
    if (file >= 0)
        H5Fclose(file);
    if (err->code)
        km_block_free(blk);
    return err->code;
}

void *km_alloc_rows(size_t bytes)
{
    const size_t huge = 2u << 20, align = bytes >= 2 * huge ? huge : 64;
    size_t len = (bytes + 64 + align - 1) / align * align;
    char *p = aligned_alloc(align, len);
    if (!p)
        return NULL;
    if (align == huge)
        madvise(p, len, MADV_HUGEPAGE);   /* advice only: fewer faults and TLB misses */
#pragma omp parallel for schedule(static)
    for (size_t off = 0; off < len; off += 4096)   /* first touch by the threads */
        p[off] = 0;
    return p;
}

void km_block_free(km_block *blk)
{
    free(blk->data);
    blk->data = NULL;
}

static int read_centroids_local(const char *path, const char *dset, int d, int *k,
                                double **out, km_error *err)
{
    if (check_readable(path, err))
        return err->code;
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0)
        return km_fail(err, KM_ERR_INPUT, "cannot open HDF5 file '%s'", path);
    int64_t kk = 0, dd = 0;
    km_precision prec;
    char note[128];
    hid_t ds = open_dataset(file, path, dset, err);
    if (ds >= 0 && !check_matrix(ds, path, dset, 0, &kk, &dd, &prec, note, sizeof note, err)) {
        if (dd != d)
            km_fail(err, KM_ERR_INPUT, "--init %s:%s has %lld columns but the data has %d",
                    path, dset, (long long)dd, d);
        else if (*k && kk != *k)
            km_fail(err, KM_ERR_USAGE, "-k %d but --init %s:%s has %lld rows", *k, path, dset,
                    (long long)kk);
        else if (kk > (1 << 30))
            km_fail(err, KM_ERR_INPUT, "--init %s:%s has too many rows", path, dset);
        else if (!(*out = malloc(sizeof(double) * (size_t)(kk * dd))))
            km_fail(err, KM_ERR_MEMORY, "out of memory reading --init centroids");
        else if (H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
            km_fail(err, KM_ERR_INPUT, "reading '%s' in '%s' failed", dset, path);
        else
            *k = (int)kk;
    }
    if (ds >= 0)
        H5Dclose(ds);
    H5Fclose(file);
    return err->code;
}

int km_read_centroids(const km_comm *c, const char *path, const char *dset, int d, int *k,
                      double **out, km_error *err)
{
    *out = NULL;
    read_centroids_local(path, dset, d, k, out, err);
    if (km_comm_agree(c, err)) {
        free(*out);
        *out = NULL;
    }
    return err->code;
}

int km_check_output_path(const char *what, const char *path, km_error *err)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return km_fail(err, KM_ERR_OUTPUT, "%s '%s' is a directory", what, path);
    char *copy = strdup(path);
    if (!copy)
        return km_fail(err, KM_ERR_MEMORY, "out of memory");
    const char *dir = dirname(copy);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        km_fail(err, KM_ERR_OUTPUT, "cannot write %s '%s': directory '%s' does not exist",
                what, path, dir);
    else if (access(dir, W_OK | X_OK) != 0)
        km_fail(err, KM_ERR_OUTPUT, "cannot write %s '%s': directory '%s' is not writable",
                what, path, dir);
    free(copy);
    return err->code;
}

/* ---- result file ---------------------------------------------------------- */

static herr_t attr_write(hid_t loc, const char *name, hid_t type, const void *val)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t s = a < 0 ? -1 : H5Awrite(a, type, val);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(space);
    return s;
}

herr_t km_h5_attr_str(hid_t loc, const char *name, const char *val)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    herr_t s = attr_write(loc, name, t, &val);
    H5Tclose(t);
    return s;
}

herr_t km_h5_attr_i64(hid_t loc, const char *name, int64_t v)
{
    return attr_write(loc, name, H5T_NATIVE_INT64, &v);
}

herr_t km_h5_attr_f64(hid_t loc, const char *name, double v)
{
    return attr_write(loc, name, H5T_NATIVE_DOUBLE, &v);
}

static herr_t attr_read(hid_t loc, const char *name, hid_t memtype, void *val)
{
    if (H5Aexists(loc, name) <= 0)
        return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    herr_t s = a < 0 ? -1 : H5Aread(a, memtype, val);
    if (a >= 0)
        H5Aclose(a);
    return s;
}

herr_t km_h5_get_i64(hid_t loc, const char *name, int64_t *v)
{
    return attr_read(loc, name, H5T_NATIVE_INT64, v);
}

herr_t km_h5_get_f64(hid_t loc, const char *name, double *v)
{
    return attr_read(loc, name, H5T_NATIVE_DOUBLE, v);
}

herr_t km_h5_get_str(hid_t loc, const char *name, char *buf, size_t len)
{
    char *val = NULL;
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    herr_t s = attr_read(loc, name, t, &val);
    H5Tclose(t);
    if (s >= 0 && val)
        snprintf(buf, len, "%s", val);
    if (val)
        H5free_memory(val);
    return s >= 0 && val ? 0 : -1;
}

/* A small dataset every rank holds identically: rank 0 writes it, collectively. */
static herr_t small_dataset(hid_t loc, const char *name, hid_t type, int rank,
                            const hsize_t *dims, const void *data, int root)
{
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t ds = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t s = -1;
    if (ds >= 0) {
        hid_t mspace = H5Scopy(space), dxpl = collective_dxpl();
        if (!root) {
            H5Sselect_none(space);
            H5Sselect_none(mspace);
        }
        s = H5Dwrite(ds, type, mspace, space, dxpl, data);
        H5Pclose(dxpl);
        H5Sclose(mspace);
        H5Dclose(ds);
    }
    H5Sclose(space);
    return s;
}

static herr_t write_attributes(hid_t f, const km_output *o)
{
    const km_options *opt = o->opt;
    const km_result *res = o->res;
    herr_t s = 0;
    s |= km_h5_attr_str(f, "input", opt->input);
    s |= km_h5_attr_str(f, "dataset", opt->dataset);
    s |= km_h5_attr_str(f, "input_dtype", o->blk->dtype_note);
    s |= km_h5_attr_i64(f, "n", o->blk->n);
    s |= km_h5_attr_i64(f, "d", o->blk->d);
    s |= km_h5_attr_i64(f, "k", o->model->k);
    s |= km_h5_attr_str(f, "init", opt->init_spec);
    s |= km_h5_attr_i64(f, "seed", (int64_t)opt->seed);
    s |= km_h5_attr_str(f, "algorithm", km_algorithm_name(res->algorithm));
    s |= km_h5_attr_f64(f, "tol", opt->tol);
    s |= km_h5_attr_f64(f, "tol_scale", res->mean_variance);
    s |= km_h5_attr_i64(f, "max_iter", opt->max_iter);
    s |= km_h5_attr_i64(f, "iterations", res->iterations);
    s |= km_h5_attr_i64(f, "converged", res->stop != KM_STOP_MAX_ITER);
    s |= km_h5_attr_str(f, "stop_reason", km_stop_name(res->stop));
    s |= km_h5_attr_f64(f, "inertia", res->inertia);
    s |= km_h5_attr_i64(f, "ranks", o->ranks);
    s |= km_h5_attr_i64(f, "threads", o->threads);
    s |= km_h5_attr_i64(f, "streamed", o->data->streamed);
    s |= km_h5_attr_i64(f, "memory_limit", o->data->memory_limit);
    s |= km_h5_attr_str(f, "version", KM_VERSION);
    return s;
}

static herr_t write_history(hid_t f, const km_history *h, int root)
{
    hid_t g = H5Gcreate2(f, "history", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return -1;
    hsize_t len = (hsize_t)h->len;
    herr_t s = 0;
    s |= small_dataset(g, "inertia", H5T_NATIVE_DOUBLE, 1, &len, h->inertia, root);
    s |= small_dataset(g, "shift", H5T_NATIVE_DOUBLE, 1, &len, h->shift, root);
    s |= small_dataset(g, "changed", H5T_NATIVE_INT64, 1, &len, h->changed, root);
    s |= small_dataset(g, "empty", H5T_NATIVE_INT32, 1, &len, h->empty, root);
    s |= small_dataset(g, "seconds", H5T_NATIVE_DOUBLE, 1, &len, h->seconds, root);
    s |= small_dataset(g, "skipped", H5T_NATIVE_DOUBLE, 1, &len, h->skipped, root);
    H5Gclose(g);
    return s;
}

static herr_t write_timing(hid_t f, const km_timers *t, int root)
{
    hid_t g = H5Gcreate2(f, "timing", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return -1;
    herr_t s = km_h5_attr_str(g, "columns", "min,mean,max seconds over ranks");
    hsize_t three = 3;
    for (int p = 0; p < KM_T_COUNT; p++) {
        double v[3] = {t->min[p], t->mean[p], t->max[p]};
        s |= small_dataset(g, km_phase_names[p], H5T_NATIVE_DOUBLE, 1, &three, v, root);
    }
    H5Gclose(g);
    return s;
}

/* What was done to the file's values before clustering: the centroids are in
 * this space. feature_index maps the d columns of /centroids to the file's. */
static herr_t write_preprocessing(hid_t f, const km_output *o, int root)
{
    const km_options *opt = o->opt;
    const km_data *D = o->data;
    const int d = D->blk.d;
    hid_t g = H5Gcreate2(f, "preprocessing", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return -1;
    herr_t s = 0;
    s |= km_h5_attr_i64(g, "transpose", opt->transpose);
    s |= km_h5_attr_str(g, "log1p", opt->log1p ? "log2(x + 1)" : "none");
    s |= km_h5_attr_i64(g, "top_variance", opt->top_variance);
    s |= km_h5_attr_i64(g, "standardize", opt->standardize);
    s |= km_h5_attr_i64(g, "features_in_file", D->d_raw);
    s |= km_h5_attr_str(g, "centroids", opt->log1p || opt->standardize
                        ? "in the transformed space (after the steps above)"
                        : "in the units of the file");
    int64_t *idx = malloc(sizeof(int64_t) * (size_t)d);
    if (!idx) {
        H5Gclose(g);
        return -1;
    }
    for (int j = 0; j < d; j++)
        idx[j] = D->keep ? D->keep[j] : j;
    hsize_t len = (hsize_t)d;
    s |= small_dataset(g, "feature_index", H5T_NATIVE_INT64, 1, &len, idx, root);
    free(idx);
    if (D->mean) {
        s |= small_dataset(g, "feature_mean", H5T_NATIVE_DOUBLE, 1, &len, D->mean, root);
        s |= small_dataset(g, "feature_scale", H5T_NATIVE_DOUBLE, 1, &len, D->scale, root);
    }
    H5Gclose(g);
    return s;
}

static herr_t write_contents(const km_comm *c, hid_t f, const km_output *o)
{
    const int root = c->rank == 0;
    const km_model *m = o->model;
    herr_t s = write_attributes(f, o);
    s |= write_preprocessing(f, o, root);
    hsize_t cdims[2] = {(hsize_t)m->k, (hsize_t)m->d}, k = (hsize_t)m->k;
    s |= small_dataset(f, "centroids", H5T_NATIVE_DOUBLE, 2, cdims, m->centroids, root);
    s |= small_dataset(f, "cluster_sizes", H5T_NATIVE_INT64, 1, &k, m->sizes, root);
    s |= write_history(f, &o->res->hist, root);
    hsize_t n = (hsize_t)o->blk->n;
    hid_t space = H5Screate_simple(1, &n, NULL);
    hid_t ds = H5Dcreate2(f, "labels", H5T_NATIVE_INT32, space, H5P_DEFAULT, H5P_DEFAULT,
                          H5P_DEFAULT);
    H5Sclose(space);
    if (ds < 0)
        return -1;
    s |= rows_io(ds, H5T_NATIVE_INT32, o->blk->n, 1, c->size, o->blk->first, o->blk->rows,
                 (void *)o->labels, sizeof(int32_t), 1, 0, NULL, KM_IO_BYTES / 4, 0);
    H5Dclose(ds);
    o->timers->t[KM_T_WRITE] += km_now() - o->write_start;   /* timing is written last */
    km_comm_timers(c, o->timers);
    s |= write_timing(f, o->timers, root);
    return s;
}

int km_write_result(const km_comm *c, const char *path, const km_output *o, km_error *err)
{
    long pid = (long)getpid();
    km_comm_bcast(c, &pid, sizeof pid, 0);   /* one temporary name for all ranks */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, pid);
    hid_t fapl = mpio_fapl(c);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0)
        km_fail(err, KM_ERR_OUTPUT, "cannot create output file '%s'", tmp);
    if (km_comm_agree(c, err)) {
        if (c->rank == 0)
            unlink(tmp);
        return err->code;
    }
    herr_t s = write_contents(c, f, o);
    if (H5Fclose(f) < 0 || s < 0)
        km_fail(err, KM_ERR_OUTPUT, "writing output file '%s' failed", tmp);
    if (!km_comm_agree(c, err) && c->rank == 0 && rename(tmp, path) != 0)
        km_fail(err, KM_ERR_OUTPUT, "cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
    if (km_comm_agree(c, err) && c->rank == 0)
        unlink(tmp);
    return err->code;
}
