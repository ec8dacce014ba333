/* kernels.h — the numerical kernels: distances + argmin + per-cluster partial
 * sums over a block of rows, and the helpers init/update need. Plain functions
 * over pointers and sizes (OpenMP inside, no MPI, no HDF5), so they are
 * unit-tested alone against the naive reference kernel. */
#ifndef KM_KERNELS_H
#define KM_KERNELS_H
#include <stdint.h>
#include "fixed.h"
#include "kmeans.h"

/* The result of an assignment pass as fit.c reads it, one double buffer:
 * k x d sums, k counts, inertia, labels changed, distances, k moved. It is
 * unpacked from a km_acc after the allreduce (km_acc_unpack), so it holds exact
 * totals. */
static inline size_t km_acc_len(int k, int d) { return (size_t)k * d + 2 * (size_t)k + 3; }
static inline double *km_acc_counts(double *acc, int k, int d) { return acc + (size_t)k * d; }
static inline size_t km_acc_inertia(int k, int d) { return (size_t)k * d + k; }
static inline size_t km_acc_changed(int k, int d) { return (size_t)k * d + k + 1; }
/* point-centroid distances computed to assign (k per row for Lloyd) */
static inline size_t km_acc_distances(int k, int d) { return (size_t)k * d + k + 2; }
/* k: rows that joined or left each cluster in the pass, summed over the ranks (its
 * totals, so its centroid, stay the same where 0) */
static inline double *km_acc_moved(double *acc, int k, int d)
{
    return acc + (size_t)k * d + k + 3;
}

/* Centroids prepared for the fast kernel: copied to the data precision and laid
 * out in panels of km_panel_width() centroids (d x width each), padded to kp. */
typedef struct {
    int k, d, kp;
    km_precision prec;
    void *panels;          /* kp x d values, panel-major, 64-byte aligned */
    double *cnorm;         /* kp: ||c||^2 in float64; +inf on padding */
    void *cnorm_r;         /* the same in the data precision */
    void *rows_r;          /* k x d row-major in the data precision, or NULL (only
                              after km_centers_keep_rows) */
    const double *c64;     /* k x d float64 centroids (not owned): exact distances */
    double cmax;           /* max ||c|| */
    unsigned char *same;   /* k: 1 where centroid c is, bit for bit, that of the previous
                              load (km_centers_update): what derives from it alone
                              (its drift, its unpacked totals) stands */
    double *maxabs;        /* d: max |x_ij| over the whole dataset (all ranks) */
    double *xscale;        /* d: fixed-point scale of the sums (fixed.h) */
    double *center;        /* d: the column means, on the grid of xscale (the
                              inertia's reference point: it keeps cancellation small) */
    int64_t *center_fx;    /* d: the same as integers, center[j] * xscale[j] */
    double qscale;         /* fixed-point scale of ||x - center||^2 */
} km_centers;

/* Exact cluster totals, kept up to date by moves. A pass adds to its km_acc
 * only what changes: a row that keeps its label adds nothing; a row that moves
 * is taken out of its old cluster (unless its label was -1) and put into its
 * new one. Summed over the passes since the labels were all -1, that is the
 * totals of the current labels: integers, so in any order the same bits. */
typedef struct {
    int k, d;
    km_i128 *sums;         /* k x d, in units of 1 / xscale[j] */
    km_i128 *sq;           /* k: sum of ||x - center||^2, in units of 1 / qscale */
    double *counts;        /* k (exact integers) */
    double changed;        /* rows that moved in this pass */
    double *moved;         /* k: rows moved into or out of each cluster in this pass (its
                              totals changed only if this is not 0) */
    double distances;      /* point-centroid distances computed to assign, this pass */
    unsigned char *dirty;  /* k: 1 where sums may be non-zero since km_acc_clear: sums
                              are written only by the kernels' moves and km_acc_add */
} km_acc;

km_acc *km_acc_new(int k, int d);
void km_acc_free(km_acc *a);
/* Zero the totals. Only the clusters marked dirty have sums to zero, and only
 * they are added by km_acc_add: a late pass moves few rows, and k x d totals
 * swept twice a pass and thread cost more than its moves (k d = 320,000). */
void km_acc_clear(km_acc *a);
/* Zero only the per-pass counts (changed, distances, moved): the totals carry on. */
void km_acc_clear_pass(km_acc *a);
void km_acc_add(km_acc *dst, const km_acc *src);
/* Doubles an allreduce of the pass carries with `limbs` limbs per value. */
size_t km_acc_pack_len(int k, int d, int limbs);
void km_acc_pack(const km_acc *a, int limbs, int bits, double *buf);
/* The same into a buf that holds a's totals as packed the pass before: only the
 * clusters with a->moved != 0 are written again (a late pass moves few rows, and
 * k x d x limbs doubles written a pass cost more than its moves), then the counts
 * and counters. */
void km_acc_pack_moves(const km_acc *a, int limbs, int bits, double *buf);
/* The allreduced buffer -> the km_acc_len result layout, in data units. The
 * inertia of the labels against kc's centroids is derived from the exact
 * totals: per cluster sq - 2 (c - center).(S - n center) + n ||c - center||^2,
 * evaluated in float64 in one fixed order (the same bits on every rank). */
void km_acc_unpack(const double *buf, const km_centers *kc, int limbs, int bits, double *res);
/* What km_acc_unpack_cached remembers of the last call: a cluster that no row
 * moved into or out of on any rank (the allreduced moved) and whose centroid is
 * that of the last call gets its values back without the work. In the late
 * passes few clusters change. */
typedef struct km_unpack_cache km_unpack_cache;
km_unpack_cache *km_unpack_cache_new(int k, int d);
void km_unpack_cache_free(km_unpack_cache *uc);
/* km_acc_unpack, with the same bits, through uc. */
void km_acc_unpack_cached(const double *buf, const km_centers *kc, int limbs, int bits,
                          double *res, km_unpack_cache *uc);
/* The same from a's totals themselves, for one rank: no buffer to pack, no limbs to
 * decode (the allreduce of one rank's buffer is that buffer: the same bits). */
void km_acc_unpack_local(const km_acc *a, const km_centers *kc, double *res,
                         km_unpack_cache *uc);

int km_panel_width(km_precision prec);
int km_centers_init(km_centers *kc, int k, int d, km_precision prec, km_error *err);
/* maxabs[j] = max |x_ij| over every row of every rank (the same everywhere):
 * fixes the scales of the exact sums; mean (d, or NULL for 0) is the column
 * mean, the inertia's reference point. Call once before km_centers_load. */
void km_centers_set_range(km_centers *kc, const double *maxabs, const double *mean);
void km_centers_load(km_centers *kc, const double *c64);
/* The same, where same[c] (k, or NULL: none) says centroid c of c64 equals the one
 * of the previous load: its panels, norm and row copy are kept, not made again.
 * fit.c knows which: a cluster whose totals no rows left or joined keeps its
 * centroid. */
void km_centers_update(km_centers *kc, const double *c64, const unsigned char *same);
/* Keep a row-major copy of the centroids for km_row_scores (k x d values more);
 * call before km_centers_load. Returns -1 when out of memory. */
int km_centers_keep_rows(km_centers *kc);
/* Scores of row xr against centroids cand[0, n) (km_centers_keep_rows):
 * out[j] = ||c||^2 - 2 x.c as the fast kernel computes it. Returns base, with
 * ||x - c||^2 >= base + out[j] for every j (a NaN out[j] bounds nothing). For a
 * pruned strategy's row in doubt: an exact distance is then needed only where
 * base + out[j] cannot rule c out. */
double km_row_scores(const km_centers *kc, const void *xr, const int *cand, int n, double *out);
/* The same, and *top (when top != NULL) with ||x - c||^2 <= *top + out[j] for every
 * j: both sides of the truth from the fast scores (a NaN bounds nothing). Where
 * the row's norm is not much larger than its distances, top + out[j] is an upper
 * bound within a few percent at most, without an exact distance. */
double km_row_scores_range(const km_centers *kc, const void *xr, const int *cand, int n,
                           double *out, double *top);
/* What a caller that scores a row more than once, or rows one after another, passes
 * along (km_row_scores_with). */
typedef struct {
    double xn;                 /* in/out: the row's ||x||^2 as the scores sum it, or NaN:
                                  then summed (the same bits: its own lanes) and kept */
    const char *next, *next_end;   /* in/out: bytes of the next row to be scored, asked
                                  for a few lines a d-block of the loop (its read then
                                  overlaps this row's work instead of following it) */
} km_row_aux;
/* km_row_scores_range, with aux (or NULL): the same values. */
double km_row_scores_with(const km_centers *kc, const void *xr, const int *cand, int n,
                          double *out, double *top, km_row_aux *aux);
void km_centers_free(km_centers *kc);

/* Scratch space for one thread's calls of km_assign_block (no allocation in
 * the hot loop). */
typedef struct km_workspace km_workspace;
km_workspace *km_workspace_new(const km_centers *kc, int64_t block_rows);
void km_workspace_free(km_workspace *ws);
/* Rows per kernel block that keep a block's rows and scores in L2. */
int64_t km_default_block_rows(int d, int k, km_precision prec);

/* Assign rows [0, rows) of x (row-major, rows <= block_rows of ws) to their
 * nearest centroid (ties: lowest index), update labels, and add the moves to
 * acc (see km_acc). */
void km_assign_block(const km_centers *kc, const void *x, int64_t rows,
                     int32_t *labels, km_acc *acc, km_workspace *ws);

/* Groups of centroids whose bounds the Yinyang strategy asks of the kernel. */
typedef struct {
    const int *group;   /* k: the group of each centroid */
    int t;              /* number of groups */
    double *glb;        /* rows x t, out: a lower bound of the row's squared distance to
                           every centroid of the group other than the chosen one (+inf
                           when there is none), before the margin as for lb2 */
} km_group_bounds;

/* As km_assign_block, and for each row i: eb[i] = an upper bound of its squared
 * distance to the chosen centroid within 1/64 of it (its exact distance, or the
 * scores' upper side where that is as tight), lb2[i] = a lower bound of its squared
 * distance to any other centroid; both still to be widened by the relative rounding
 * margin of km_dist_exact ((d + 8) 2^-52 is safe). For the pruned strategies. With gb, the
 * same per group of centroids: from the row's scores when the kernel keeps them
 * (d >= 64), else lb2 for every group. */
void km_assign_block_bounds(const km_centers *kc, const void *x, int64_t rows, int32_t *labels,
                            km_acc *acc, km_workspace *ws, double *eb, double *lb2,
                            const km_group_bounds *gb);
/* The same for n rows anywhere (rows[i]: one row of d values), without group
 * bounds: the kernel reads them where they are, no gathered copy. */
void km_assign_rows_bounds(const km_centers *kc, const void *const *rows, int64_t n,
                           int32_t *labels, km_acc *acc, km_workspace *ws, double *eb,
                           double *lb2);
/* Row xr's label becomes c: when that is a move, add it to acc exactly as the
 * kernel would (out of *label's cluster, into c's, one changed label). */
void km_take_row(const km_centers *kc, const void *xr, int c, int32_t *label, km_acc *acc,
                 km_workspace *ws);

/* Threads of one rank: a workspace and a km_acc per OpenMP thread,
 * allocated once per run. Each thread's own totals (an i128 sum and a uint64
 * run per value: km_threads_bytes) are the fastest, but with many threads they
 * outgrow the data. With shared != NULL the threads instead add their moves'
 * sums straight into shared->sums, one cluster's lock at a time (integers: the
 * same bits in any order); their km_acc then hold the counts, sq and counters,
 * which km_threads_reduce adds as before. */
typedef struct km_threads km_threads;
km_threads *km_threads_new(const km_centers *kc, int64_t block_rows, km_acc *shared);
/* The bytes of per-thread totals for k x d values (shared: 0 and a row's scratch). */
static inline double km_threads_bytes(int threads, int k, int d, int shared)
{
    return shared ? (double)threads * d * 8 : (double)threads * k * d * 24;
}
void km_threads_free(km_threads *th);
int km_threads_count(const km_threads *th);
/* Thread t's share of a pass: rows [0, rows) of x (at most block_rows of th)
 * into its own accumulator (walk.h hands out the blocks; lloyd.c). */
void km_assign_thread_block(const km_centers *kc, const void *x, int64_t rows, int32_t *labels,
                            km_threads *th, int t);
/* acc += the thread accumulators; zero them again. */
void km_threads_reduce(km_threads *th, km_acc *acc);
km_workspace *km_threads_workspace(km_threads *th, int t);
/* Give every thread a buffer of at least bytes for rows read directly (each
 * allocated and first touched by its thread: NUMA); 0 or -1 (out of memory).
 * Thread t's is km_threads_rowbuf(th, t). */
int km_threads_rowbufs(km_threads *th, size_t bytes);
void *km_threads_rowbuf(const km_threads *th, int t);
/* Whether thread t's next blocks were just read into its buffer (in cache: the
 * kernel does not prefetch their long rows ahead) or lie in memory (walk.c). */
void km_threads_rows_fresh(km_threads *th, int t, int fresh);
km_acc *km_threads_acc(km_threads *th, int t);
int64_t km_threads_block_rows(const km_threads *th);

/* The reference: exact direct-form float64 distances to every centroid of kc
 * (its float64 centroids), row by row. Same contract as km_assign_block. */
void km_assign_naive(const km_centers *kc, const void *x, int64_t rows, int32_t *labels,
                     km_acc *acc);

/* ||x_i - c||^2 in float64, summed in one fixed order (8 lanes, then the tail)
 * whoever calls it, so it never depends on threads or ranks. */
double km_dist_exact(const void *x, int64_t i, int d, km_precision prec, const double *c);

/* out[q] = km_dist_exact(x, 0, d, prec, c64 + idx[q] d) for q < n, the same bits,
 * four centroids a pass over x (faster: the row is read once for the four, and
 * their sums run side by side) from d = KM_EXACT_MANY_MIN_D, one at a time below. */
#define KM_EXACT_MANY_MIN_D 128
void km_dist_exact_many(const void *x, int d, km_precision prec, const double *c64,
                        const int *idx, int n, double *out);

/* k-means++'s D_i = min over the first s >= 1 chosen centroids (s x d) of E(x_i, c)
 * and near[i] its first argmin, the state its steps leave (each lowers D_i only
 * where E < D_i): s = 1 at its start, more when continued from a checkpoint
 * (O(rows s d), once). */
void km_pp_nearest(const void *x, int64_t rows, int d, km_precision prec, const double *chosen,
                   int s, double *D, int32_t *near);

/* k-means++'s draw (init.c): the largest of D[0, rows); and the rows' integer
 * weights (uint64_t)(D_i qscale) summed per chunk of KM_PP_CHUNK rows into
 * sums[c], returning their total. Exact integer sums: the same for any thread
 * count. */
#define KM_PP_CHUNK 4096
double km_pp_max(const double *D, int64_t rows);
unsigned __int128 km_pp_weight_sums(const double *D, int64_t rows, double qscale,
                                    unsigned __int128 *sums);

/* Greedy k-means++ (init.c): D_i = E(x_i, c_a) is row i's distance to the
 * nearest of the centroids chosen so far (E = km_dist_exact); a, its index, is
 * near[i]'s low `shift` bits (all of them when shift = 0). The m = cand->k
 * candidates are a km_centers with km_centers_keep_rows, loaded with their
 * float64 rows; thr is km_pp_thresholds' for them. How much candidate t lowers
 * the potential: red[t] += sum over rows of q(D_i) - q(min(D_i, E(x_i, cand_t))),
 * q(v) = floor(v qscale), in exact integers, so the result does not depend on
 * how rows are split among ranks or threads. E is taken only where thr (without
 * reading the row, and from d = 32 on per candidate) and then the fast kernel's
 * lower bound (d >= 128) cannot show E >= D_i.
 * With shift > 0 (shift + m <= 31), bit shift + t of near[i] is set where
 * candidate t lowers D_i, and with low != NULL (rows x m) low[i m + t] is then that
 * E. Returns 0, or -1 when out of memory. */
int km_pp_reductions(const km_centers *cand, const void *x, int64_t rows, const double *D,
                     int32_t *near, int shift, const double *thr, double qscale,
                     unsigned __int128 *red, double *low);
/* From this d on, k-means++ keeps the E of the rows each candidate lowers (km_pp_
 * reductions' low: rows x (2 + ln K) doubles, 2 % of float32 rows at d = 1024 and
 * K = 5,000), so the chosen one's update reads no row: at d = 20,000 that update
 * read a fifth of the rows a step reads. */
#define KM_PP_KEEP_D 1024
/* km_pp_lower with the marks (shift > 0) and low of the same step: the marked
 * rows take their E from low, without their values. The same D and near. */
void km_pp_lower_kept(int m, int t, int64_t rows, const double *low, int32_t label, double *D,
                      int32_t *near, int shift);
/* thr (s x (m + 1)): thr[a (m + 1) + t] such that D_i <= it proves E(x_i, cand_t)
 * >= D_i for a row whose nearest chosen centroid is chosen[a] (the triangle
 * inequality); thr[a (m + 1) + m] their least. */
void km_pp_thresholds(const double *chosen, int s, const km_centers *cand, double *thr);
/* Candidate t became centroid `label`: D_i = min(D_i, E(x_i, cand_t)), and
 * near[i] = label where it is lower. With shift, the rows km_pp_reductions
 * marked; else E is taken as there. */
void km_pp_lower(const km_centers *cand, int t, const void *x, int64_t rows, const double *thr,
                 int32_t label, double *D, int32_t *near, int shift);

/* Merge rows offset + i into dist[m], row[m], the rows farthest from their
 * assigned centroid by (distance desc, row asc). Start with row[t] = -1 and
 * dist[t] = -1; rows stay -1 where fewer rows exist. */
void km_farthest(const void *x, int64_t rows, int d, km_precision prec, const double *c64,
                 const int32_t *labels, int64_t offset, int m, double *dist, int64_t *row);

/* Index of the first row with a NaN or Inf (column in *col), or -1. */
int64_t km_find_nonfinite(const void *x, int64_t rows, int d, km_precision prec, int *col);

/* out[j] += sum_i round(v_ij * scale[j]) exactly, v_ij = (x_ij - center_j)^2,
 * or x_ij when center is NULL; |v_ij * scale[j]| must stay below 2^KM_FX_TOP.
 * Returns 0, or KM_ERR_MEMORY (out untouched). */
int km_column_fixed(const void *x, int64_t rows, int d, km_precision prec,
                    const double *center, const double *scale, km_i128 *out);
/* maxabs[j] = max(maxabs[j], max_i |x_ij|). */
void km_column_maxabs(const void *x, int64_t rows, int d, km_precision prec, double *maxabs);
#endif
