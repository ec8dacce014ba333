/* checkpoint.c — write, read and check checkpoints (see checkpoint.h for what
 * they hold and why). The file is small, so rank 0 does all the HDF5 work with
 * the serial driver and the result or error reaches the other ranks through
 * km_comm_agree / km_comm_bcast.
 *
 * Layout (h5dump-readable): attributes format, format_version, version, input,
 * input_realpath, dataset, n, d, input_dtype, k, init, seed, algorithm,
 * iteration, init_chosen (version 2; version 1: k), tol_scale, ranks; datasets
 * /centroids (k x d), /previous_centroids (k x d, iteration > 0), /column_maxabs
 * (d), /history/{inertia,shift,changed,empty,seconds}.
 *
 * Test hook: KMEANS_TEST_CHECKPOINT_STALL=S makes rank 0 sleep S seconds when
 * half of FILE.tmp is written, so a test can kill the run in the middle of a
 * write. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <hdf5.h>
#include "checkpoint.h"
#include "options.h"
#include "h5io.h"

#define KM_CKPT_FORMAT "hpc-kmeans checkpoint"
#define KM_CKPT_FORMAT_VERSION 2   /* 2: init_chosen; version 1 files are read too */

int km_ckpt_check(const km_comm *c, const km_options *opt, km_error *err)
{
    if (c->rank == 0) {
        struct stat st;
        int exists = stat(opt->checkpoint, &st) == 0;
        if (opt->resume && !exists)
            km_fail(err, KM_ERR_INPUT, "--resume: checkpoint '%s' does not exist (%s)",
                    opt->checkpoint, strerror(errno));
        else if (!opt->resume && exists)
            km_fail(err, KM_ERR_USAGE, "checkpoint '%s' already exists: add --resume to continue "
                    "that run, or remove the file to start afresh", opt->checkpoint);
        else
            km_check_output_path("checkpoint", opt->checkpoint, err);
    }
    return km_comm_agree(c, err);
}

/* ---- writing ---------------------------------------------------------------- */

static herr_t put(hid_t loc, const char *name, hid_t type, int rank, hsize_t d0, hsize_t d1,
                  const void *data)
{
    hsize_t dims[2] = {d0, d1};
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t ds = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t s = ds < 0 ? -1 : H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (ds >= 0 && H5Dclose(ds) < 0)
        s = -1;
    H5Sclose(space);
    return s;
}

static herr_t put_contents(hid_t f, const km_options *opt, const km_block *blk,
                           const km_ckpt *ck, int ranks)
{
    char real[PATH_MAX];
    if (!realpath(opt->input, real))
        snprintf(real, sizeof real, "%s", opt->input);
    herr_t s = 0;
    s |= km_h5_attr_str(f, "format", KM_CKPT_FORMAT);
    s |= km_h5_attr_i64(f, "format_version", KM_CKPT_FORMAT_VERSION);
    s |= km_h5_attr_str(f, "version", KM_VERSION);
    s |= km_h5_attr_str(f, "input", opt->input);
    s |= km_h5_attr_str(f, "input_realpath", real);
    s |= km_h5_attr_str(f, "dataset", opt->dataset);
    s |= km_h5_attr_i64(f, "n", blk->n);
    s |= km_h5_attr_i64(f, "d", blk->d);
    s |= km_h5_attr_str(f, "input_dtype", blk->dtype_note);
    char prep[256];
    km_options_prep_string(opt, prep, sizeof prep);
    s |= km_h5_attr_str(f, "preprocessing", prep);
    s |= km_h5_attr_i64(f, "k", ck->k);
    s |= km_h5_attr_str(f, "init", opt->init_spec);
    s |= km_h5_attr_i64(f, "seed", (int64_t)opt->seed);
    s |= km_h5_attr_str(f, "algorithm", km_algorithm_name(ck->algorithm));
    s |= km_h5_attr_i64(f, "iteration", ck->iteration);
    s |= km_h5_attr_i64(f, "init_chosen", ck->chosen);
    s |= km_h5_attr_f64(f, "tol_scale", ck->tol_scale);
    s |= km_h5_attr_i64(f, "ranks", ranks);
    const hsize_t k = (hsize_t)ck->k, d = (hsize_t)ck->d, len = (hsize_t)ck->hist.len;
    s |= put(f, "centroids", H5T_NATIVE_DOUBLE, 2, k, d, ck->centroids);
    if (ck->iteration > 0)
        s |= put(f, "previous_centroids", H5T_NATIVE_DOUBLE, 2, k, d, ck->previous);
    s |= put(f, "column_maxabs", H5T_NATIVE_DOUBLE, 1, d, 0, ck->maxabs);
    hid_t g = H5Gcreate2(f, "history", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return -1;
    s |= put(g, "inertia", H5T_NATIVE_DOUBLE, 1, len, 0, ck->hist.inertia);
    s |= put(g, "shift", H5T_NATIVE_DOUBLE, 1, len, 0, ck->hist.shift);
    s |= put(g, "changed", H5T_NATIVE_INT64, 1, len, 0, ck->hist.changed);
    s |= put(g, "empty", H5T_NATIVE_INT32, 1, len, 0, ck->hist.empty);
    s |= put(g, "seconds", H5T_NATIVE_DOUBLE, 1, len, 0, ck->hist.seconds);
    s |= put(g, "skipped", H5T_NATIVE_DOUBLE, 1, len, 0, ck->hist.skipped);
    if (H5Gclose(g) < 0)
        s = -1;
    return s;
}

/* fsync a file or directory by name; 0 or -1 with errno set. */
static int sync_path(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* The checkpoint as an HDF5 file image in memory (core driver, no backing
 * store): HDF5 never touches the disk, so a full disk cannot leave it with a
 * half-closed file; the bytes are written below with plain POSIX calls whose
 * errors are all checked. Returns the image (malloc'd) or NULL. */
static void *build_image(const km_options *opt, const km_block *blk, const km_ckpt *ck,
                         int ranks, size_t *size)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fapl_core(fapl, 1 << 20, 0);
    hid_t f = H5Fcreate("hpc-kmeans-checkpoint-image", H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0)
        return NULL;
    void *img = NULL;
    if (put_contents(f, opt, blk, ck, ranks) >= 0 && H5Fflush(f, H5F_SCOPE_LOCAL) >= 0) {
        ssize_t len = H5Fget_file_image(f, NULL, 0);
        if (len > 0 && (img = malloc((size_t)len)) &&
            H5Fget_file_image(f, img, (size_t)len) != len) {
            free(img);
            img = NULL;
        }
        *size = len > 0 ? (size_t)len : 0;
    }
    H5Fclose(f);
    return img;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Write the image to FILE.tmp, sync it, rename it over FILE, sync the directory.
 * Any failure removes FILE.tmp and leaves FILE as it was. */
static int write_local(const km_options *opt, const km_block *blk, const km_ckpt *ck,
                       int ranks, km_error *err)
{
    const char *path = opt->checkpoint;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    size_t size = 0;
    char *img = build_image(opt, blk, ck, ranks, &size);
    if (!img)
        return km_fail(err, KM_ERR_INTERNAL, "cannot build checkpoint '%s' in memory (HDF5 "
                       "core driver)", path);
    const char *stall = getenv("KMEANS_TEST_CHECKPOINT_STALL");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), rc = fd < 0 ? -1 : 0;
    size_t half = stall ? size / 2 : size;
    if (!rc)
        rc = write_all(fd, img, half);
    if (!rc && stall)
        sleep((unsigned)atoi(stall));   /* test hook: a torn FILE.tmp to be killed in */
    if (!rc)
        rc = write_all(fd, img + half, size - half);
    if (!rc)
        rc = fsync(fd);
    int e = errno;
    if (fd >= 0 && close(fd) != 0 && !rc) {
        rc = -1;
        e = errno;
    }
    if (!rc && rename(tmp, path) != 0) {
        rc = -1;
        e = errno;
    }
    free(img);
    if (rc) {
        unlink(tmp);
        return km_fail(err, KM_ERR_OUTPUT, "cannot write checkpoint '%s': %s; the previous "
                       "checkpoint, if any, is untouched", tmp, strerror(e));
    }
    char *copy = strdup(path);   /* the rename is durable once the directory is */
    if (copy)
        sync_path(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    return 0;
}

int km_ckpt_write(const km_comm *c, const km_options *opt, const km_block *blk,
                  const km_ckpt *ck, km_error *err)
{
    if (c->rank == 0)
        write_local(opt, blk, ck, c->size, err);
    return km_comm_agree(c, err);
}

void km_ckpt_remove(const km_comm *c, const km_options *opt)
{
    if (c->rank == 0)
        unlink(opt->checkpoint);
    km_comm_barrier(c);
}

/* ---- reading ---------------------------------------------------------------- */

void km_ckpt_free(km_ckpt *ck)
{
    free(ck->centroids);
    free(ck->previous);
    free(ck->maxabs);
    km_history_free(&ck->hist);
    memset(ck, 0, sizeof *ck);
}

/* Read a dataset of exactly the given shape (d1 = 0: 1-D) as memtype. */
static int get(hid_t loc, const char *name, hid_t memtype, hsize_t d0, hsize_t d1, void *buf)
{
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0)
        return -1;
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0)
        return -1;
    hid_t space = H5Dget_space(ds);
    hsize_t dims[2] = {0, 0};
    int rank = H5Sget_simple_extent_ndims(space);
    H5Sget_simple_extent_dims(space, dims, NULL);
    H5Sclose(space);
    int ok = rank == (d1 ? 2 : 1) && dims[0] == d0 && (!d1 || dims[1] == d1);
    herr_t s = ok && d0 ? H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) : 0;
    H5Dclose(ds);
    return ok && s >= 0 ? 0 : -1;
}

static int alloc_state(km_ckpt *ck, int64_t len)
{
    const size_t kd = (size_t)ck->k * (size_t)ck->d, n = len > 0 ? (size_t)len : 1;
    ck->centroids = malloc(sizeof(double) * kd);
    ck->previous = malloc(sizeof(double) * kd);
    ck->maxabs = malloc(sizeof(double) * (size_t)ck->d);
    km_history *h = &ck->hist;
    h->inertia = malloc(sizeof(double) * n);
    h->shift = malloc(sizeof(double) * n);
    h->changed = malloc(sizeof(int64_t) * n);
    h->empty = malloc(sizeof(int32_t) * n);
    h->seconds = malloc(sizeof(double) * n);
    h->skipped = malloc(sizeof(double) * n);
    h->len = (int)len;
    h->cap = (int)n;
    return ck->centroids && ck->previous && ck->maxabs && h->inertia && h->shift && h->changed
           && h->empty && h->seconds && h->skipped ? 0 : -1;
}

/* The metadata check: this input, these options. Returns 0 or sets err. */
static int check_match(hid_t f, const char *path, const km_options *opt, const km_block *blk,
                       int64_t *k, int64_t *iteration, int64_t *chosen, km_error *err)
{
    char fmt[64] = "", in[4096] = "", real[4096] = "", dset[1024] = "", dtype[128] = "",
         init[4096] = "", algo[64] = "", mine[PATH_MAX];
    int64_t ver = 0, n = 0, d = 0, seed = 0;
    if (km_h5_get_str(f, "format", fmt, sizeof fmt) || strcmp(fmt, KM_CKPT_FORMAT))
        return km_fail(err, KM_ERR_INPUT, "'%s' is not an hpc-kmeans checkpoint", path);
    if (km_h5_get_i64(f, "format_version", &ver) || ver < 1 || ver > KM_CKPT_FORMAT_VERSION)
        return km_fail(err, KM_ERR_INPUT, "checkpoint '%s' has format version %lld; this "
                       "program reads version %d", path, (long long)ver, KM_CKPT_FORMAT_VERSION);
    if (km_h5_get_str(f, "input", in, sizeof in) ||
        km_h5_get_str(f, "input_realpath", real, sizeof real) ||
        km_h5_get_str(f, "dataset", dset, sizeof dset) ||
        km_h5_get_str(f, "input_dtype", dtype, sizeof dtype) ||
        km_h5_get_str(f, "init", init, sizeof init) ||
        km_h5_get_str(f, "algorithm", algo, sizeof algo) || km_h5_get_i64(f, "n", &n) ||
        km_h5_get_i64(f, "d", &d) || km_h5_get_i64(f, "k", k) ||
        km_h5_get_i64(f, "seed", &seed) || km_h5_get_i64(f, "iteration", iteration))
        return km_fail(err, KM_ERR_INPUT, "checkpoint '%s' is damaged: an attribute is missing",
                       path);
    *chosen = *k;
    if (ver >= 2 && km_h5_get_i64(f, "init_chosen", chosen))
        return km_fail(err, KM_ERR_INPUT, "checkpoint '%s' is damaged: an attribute is missing",
                       path);
    if (!realpath(opt->input, mine))
        snprintf(mine, sizeof mine, "%s", opt->input);
    if (strcmp(real, mine))
        return km_fail(err, KM_ERR_INPUT, "checkpoint '%s' was made for input '%s', not '%s'",
                       path, real, mine);
    if (strcmp(dset, opt->dataset))
        return km_fail(err, KM_ERR_INPUT, "checkpoint '%s' was made for dataset '%s', not '%s'",
                       path, dset, opt->dataset);
    if (n != blk->n || d != blk->d || strcmp(dtype, blk->dtype_note))
        return km_fail(err, KM_ERR_INPUT, "checkpoint '%s' was made for a %lld x %lld %s "
                       "matrix; '%s' in '%s' is now %lld x %d %s", path, (long long)n,
                       (long long)d, dtype, opt->dataset, opt->input, (long long)blk->n, blk->d,
                       blk->dtype_note);
    char theirs[256] = "transpose=0 log1p=0 top_variance=0 standardize=0", ours[256];
    km_h5_get_str(f, "preprocessing", theirs, sizeof theirs);   /* older: none */
    km_options_prep_string(opt, ours, sizeof ours);
    if (strcmp(theirs, ours))
        return km_fail(err, KM_ERR_USAGE, "checkpoint '%s' was made with preprocessing '%s', "
                       "not '%s'", path, theirs, ours);
    if (opt->k && opt->k != *k)
        return km_fail(err, KM_ERR_USAGE, "checkpoint '%s' was made with -k %lld, not -k %d",
                       path, (long long)*k, opt->k);
    if (strcmp(init, opt->init_spec) || seed != (int64_t)opt->seed)
        return km_fail(err, KM_ERR_USAGE, "checkpoint '%s' was made with --init %s --seed %lld, "
                       "not --init %s --seed %llu", path, init, (long long)seed, opt->init_spec,
                       (unsigned long long)opt->seed);
    if (strcmp(algo, "lloyd") && strcmp(algo, "hamerly") && strcmp(algo, "yinyang"))
        return km_fail(err, KM_ERR_INPUT, "checkpoint '%s' names an unknown algorithm '%s'",
                       path, algo);   /* any may continue any: their iterations are equal */
    if (*k < 1 || *k > blk->n || *iteration < 0 || *iteration >= INT_MAX || *chosen < 1
        || *chosen > *k || (*chosen < *k && *iteration > 0))
        return km_fail(err, KM_ERR_INPUT, "checkpoint '%s' is damaged (k=%lld, iteration=%lld, "
                       "init_chosen=%lld)", path, (long long)*k, (long long)*iteration,
                       (long long)*chosen);
    if (*iteration >= opt->max_iter)
        return km_fail(err, KM_ERR_USAGE, "checkpoint '%s' is at iteration %lld: --max-iter %d "
                       "leaves nothing to do", path, (long long)*iteration, opt->max_iter);
    return 0;
}

static int read_local(const km_options *opt, const km_block *blk, km_ckpt *ck, km_error *err)
{
    const char *path = opt->checkpoint;
    if (H5Fis_hdf5(path) <= 0)
        return km_fail(err, KM_ERR_INPUT, "checkpoint '%s' is not a readable HDF5 file "
                       "(damaged?)", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return km_fail(err, KM_ERR_INPUT, "cannot open checkpoint '%s'", path);
    int64_t k = 0, iteration = 0, chosen = 0;
    if (!check_match(f, path, opt, blk, &k, &iteration, &chosen, err)) {
        ck->k = (int)k;
        ck->d = blk->d;
        ck->iteration = (int)iteration;
        ck->chosen = (int)chosen;
        const hsize_t kk = (hsize_t)k, d = (hsize_t)blk->d, len = (hsize_t)iteration;
        if (alloc_state(ck, iteration))
            km_fail(err, KM_ERR_MEMORY, "out of memory reading checkpoint '%s'", path);
        else if (get(f, "centroids", H5T_NATIVE_DOUBLE, kk, d, ck->centroids) ||
                 (iteration > 0 &&
                  get(f, "previous_centroids", H5T_NATIVE_DOUBLE, kk, d, ck->previous)) ||
                 get(f, "column_maxabs", H5T_NATIVE_DOUBLE, d, 0, ck->maxabs) ||
                 km_h5_get_f64(f, "tol_scale", &ck->tol_scale) ||
                 get(f, "history/inertia", H5T_NATIVE_DOUBLE, len, 0, ck->hist.inertia) ||
                 get(f, "history/shift", H5T_NATIVE_DOUBLE, len, 0, ck->hist.shift) ||
                 get(f, "history/changed", H5T_NATIVE_INT64, len, 0, ck->hist.changed) ||
                 get(f, "history/empty", H5T_NATIVE_INT32, len, 0, ck->hist.empty) ||
                 get(f, "history/seconds", H5T_NATIVE_DOUBLE, len, 0, ck->hist.seconds) ||
                 get(f, "history/skipped", H5T_NATIVE_DOUBLE, len, 0, ck->hist.skipped))
            km_fail(err, KM_ERR_INPUT, "checkpoint '%s' is damaged: a dataset is missing or has "
                    "the wrong shape", path);
    }
    H5Fclose(f);
    return err->code;
}

int km_ckpt_same_data(const km_options *opt, const km_ckpt *ck, const double *maxabs,
                      double tol_scale, km_error *err)
{
    if (memcmp(ck->maxabs, maxabs, sizeof(double) * (size_t)ck->d) ||
        memcmp(&ck->tol_scale, &tol_scale, sizeof(double)))
        return km_fail(err, KM_ERR_INPUT, "checkpoint '%s' was made for other data: the "
                       "contents of '%s' in '%s' changed since (its column maxima or variance "
                       "differ)", opt->checkpoint, opt->dataset, opt->input);
    return 0;
}

int km_ckpt_read(const km_comm *c, const km_options *opt, const km_block *blk, km_ckpt *ck,
                 km_error *err)
{
    memset(ck, 0, sizeof *ck);
    if (c->rank == 0)
        read_local(opt, blk, ck, err);
    if (km_comm_agree(c, err)) {
        km_ckpt_free(ck);
        return err->code;
    }
    int64_t head[4] = {ck->iteration, ck->k, ck->d, ck->chosen};
    km_comm_bcast(c, head, sizeof head, 0);
    if (c->rank != 0) {
        ck->iteration = (int)head[0];
        ck->k = (int)head[1];
        ck->d = (int)head[2];
        ck->chosen = (int)head[3];
        if (alloc_state(ck, ck->iteration))
            km_fail(err, KM_ERR_MEMORY, "rank %d: out of memory for the checkpoint", c->rank);
    }
    if (km_comm_agree(c, err)) {
        km_ckpt_free(ck);
        return err->code;
    }
    const size_t kd = sizeof(double) * (size_t)ck->k * ck->d, len = (size_t)ck->iteration;
    km_comm_bcast(c, ck->centroids, kd, 0);
    km_comm_bcast(c, ck->previous, kd, 0);
    km_comm_bcast(c, ck->maxabs, sizeof(double) * (size_t)ck->d, 0);
    km_comm_bcast(c, &ck->tol_scale, sizeof(double), 0);
    km_comm_bcast(c, ck->hist.inertia, sizeof(double) * len, 0);
    km_comm_bcast(c, ck->hist.shift, sizeof(double) * len, 0);
    km_comm_bcast(c, ck->hist.changed, sizeof(int64_t) * len, 0);
    km_comm_bcast(c, ck->hist.empty, sizeof(int32_t) * len, 0);
    km_comm_bcast(c, ck->hist.seconds, sizeof(double) * len, 0);
    km_comm_bcast(c, ck->hist.skipped, sizeof(double) * len, 0);
    return 0;
}
