/* yinyang.c — the Yinyang iteration strategy (see yinyang.h).
 *
 * Why the labels are Lloyd's: as in hamerly.c. Lloyd's label is the argmin over
 * c of E(x, c) = km_dist_exact(x, c), lowest index on ties. Here u >= D(x, c_a)
 * and lb[g] <= D(x, c) for every c != a of group g are bounds on true distances,
 * kept true by the triangle inequality with upper bounds of the drifts. A group
 * with u (1 + e) < lb[g] (1 - e) holds no centroid whose E could reach E(x, c_a)
 * (e = relative error of E, km_bound_margin() in bounds.h); every other group's
 * centroids are scored as the kernel scores them, and those whose score-based
 * lower bound cannot exceed the best E so far get their E computed exactly: the
 * label is the argmin of E, lowest index on ties, over c_a and every centroid that
 * could beat it. Group bounds move lazily: a row keeps the pass they refer to, and the
 * drifts since are summed per group (cum_g), so a row that passes the global test
 * touches 1 bound, not t. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include "bounds.h"
#include "yinyang.h"
#include "walk.h"

#define KM_YY_GROUP_ITERS 5
#define KM_YY_AHEAD 8   /* rows in doubt fetched ahead of their exact distance */
/* From this d on, a row in doubt first bounds its distance to its centroid from
 * both sides with the fast scores (km_row_scores_range), and takes the exact
 * distance only when that bound is looser than KM_YY_TOP_SLACK or a centroid
 * could beat it: an exact distance there is one more pass over the row in float64
 * (10,000 x 20,000, k = 16: half a row in doubt's time). At d = 784 the bound is
 * ~10 % loose and an exact distance cheap. */
#define KM_YY_SCORE_FIRST_D 4096
#define KM_YY_TOP_SLACK 1.05
/* With one centroid a group (t = k: Elkan's bounds, which km_yinyang_groups gives
 * wide rows, d >= 64 k), a row read anyway also rescores up to this many centroids
 * that its bounds did settle, those with the least bounds: they are the bounds that
 * fail first in the next passes, and two scores now cost less than fetching the row
 * again. 10,000 x 20,000, k = 16: the rows left in doubt over the run fell from
 * 105,542 to 58,673 (0.91 of the time side by side). Groups of 4 or 10 centroids
 * rescored the same way did not gain, nor did a few single groups among larger
 * ones at d = 3 (results/BENCH.md, eleventh step). */
#define KM_YY_REFRESH 2
/* From this d on, each row's ||x||^2 is kept once a pass has scored it (km_row_aux):
 * a row in doubt is scored again and again, and in high d its norm was ~a fifth of
 * its scores' time; 8 bytes a row are then < 1 % of the row */
#define KM_YY_NORM_D 256

typedef struct {
    double *gmin1, *gmin2;  /* t: the two smallest E in each examined group */
    int *gidx1;             /* t: where the smallest is */
    char *seen;             /* t: the group was examined */
    double *lb;             /* t: a row's moved lower bounds */
    int64_t *rest;          /* a block's rows the global test left in doubt */
    double *rglob;          /* and their moved global bounds */
    double *eb, *lb2;       /* a block's kernel bounds (the first pass, gathered rows) */
    double *glb;            /* and its group bounds, rows x t (km_group_bounds) */
    int *cand;              /* k: a row's centroids in the groups in doubt */
    double *csc;            /* k: their kernel scores */
    void *gx;               /* rows gathered for the kernel: most groups in doubt */
    int32_t *glab;          /* their labels */
    int64_t *grow;          /* their local rows */
    int64_t gn;
} scratch;

struct km_yinyang {
    int64_t rows;
    int k, d, t, nt;
    int64_t gcap;      /* rows per gather buffer (the kernel's block) */
    size_t rowbytes;
    int *group;        /* k: the group of each centroid */
    int *gstart;       /* t + 1: members[gstart[g] .. gstart[g+1]) in index order */
    int *members;      /* k */
    float *upper;      /* rows: >= D(x, c_label), as of the last pass */
    float *lower;      /* rows x t: <= D(x, c) for every c != label in the group, as of
                          the centroids of pass stamp[row] (moved lazily, see cum_g) */
    float *glob;       /* rows: min over g of lower, as of the same pass */
    double *xnorm;     /* rows: ||x||^2 as km_row_scores_with sums it, NaN until a pass
                          scores the row; NULL below KM_YY_NORM_D */
    int32_t *stamp;    /* rows: the pass the group bounds refer to */
    double *prev;      /* k x d: the centroids of the last pass */
    double *drift;     /* k: >= D(c_new, c_prev) */
    double *gdrift;    /* t: max drift in the group */
    double *cum_g;     /* (pass + 1) x t: group drifts summed over passes 1..p */
    double *cum_max;   /* pass + 1: the largest group drift summed the same way */
    int pass;          /* passes made since the bounds were set (0: the full one) */
    int cap;           /* rows of cum_g / cum_max allocated */
    int valid;
    int score_first;   /* d >= KM_YY_SCORE_FIRST_D */
    int refresh;       /* t == k: rows read are examined whole (KM_YY_REFRESH) */
    scratch *sc;       /* per thread */
};


int km_yinyang_groups(int k, int d)
{
    const int wide = d / 64 < k ? d / 64 : k;
    int t = k / 10 > wide ? k / 10 : wide;
    return t < 1 ? 1 : t;
}

size_t km_yinyang_bytes(int k, int d, int64_t rows, int threads, int t, int64_t block_rows,
                        km_precision prec)
{
    const size_t esize = prec == KM_F32 ? 4 : 8;
    return (sizeof(float) * (3 + (size_t)t) + (d >= KM_YY_NORM_D ? sizeof(double) : 0))
               * (size_t)rows
           + sizeof(double) * (size_t)k * (d + 2)
           + esize * (size_t)k * d   /* the centroids row-major (km_centers_keep_rows) */
           + (size_t)threads * ((size_t)t * 33 + (size_t)k * 12
                                + (size_t)block_rows * ((size_t)d * esize + 28 + 8 * (size_t)t));
}

void km_yinyang_free(km_yinyang *y)
{
    if (!y)
        return;
    for (int t = 0; y->sc && t < y->nt; t++) {
        free(y->sc[t].gmin1);
        free(y->sc[t].gmin2);
        free(y->sc[t].gidx1);
        free(y->sc[t].seen);
        free(y->sc[t].lb);
        free(y->sc[t].eb);
        free(y->sc[t].lb2);
        free(y->sc[t].glb);
        free(y->sc[t].cand);
        free(y->sc[t].csc);
        free(y->sc[t].gx);
        free(y->sc[t].glab);
        free(y->sc[t].grow);
        free(y->sc[t].rest);
        free(y->sc[t].rglob);
    }
    free(y->sc);
    free(y->group);
    free(y->gstart);
    free(y->members);
    free(y->upper);
    free(y->lower);
    free(y->glob);
    free(y->xnorm);
    free(y->stamp);
    free(y->cum_g);
    free(y->cum_max);
    free(y->prev);
    free(y->drift);
    free(y->gdrift);
    free(y);
}

km_yinyang *km_yinyang_new(const km_centers *kc, int64_t rows, km_threads *th, int groups)
{
    km_yinyang *y = calloc(1, sizeof *y);
    if (!y)
        return NULL;
    y->rows = rows;
    y->k = kc->k;
    y->d = kc->d;
    y->t = groups < 1 ? 1 : groups > kc->k ? kc->k : groups;
    y->nt = km_threads_count(th);
    y->gcap = km_threads_block_rows(th);
    y->rowbytes = (size_t)y->d * (kc->prec == KM_F32 ? 4 : 8);
    y->score_first = y->d >= KM_YY_SCORE_FIRST_D;
    y->refresh = y->t == y->k;
    const size_t n = rows > 0 ? (size_t)rows : 1;
    y->group = malloc(sizeof(int) * (size_t)y->k);
    y->gstart = malloc(sizeof(int) * (size_t)(y->t + 1));
    y->members = malloc(sizeof(int) * (size_t)y->k);
    y->upper = malloc(sizeof(float) * n);
    y->lower = malloc(sizeof(float) * n * (size_t)y->t);
    y->glob = malloc(sizeof(float) * n);
    y->xnorm = y->d >= KM_YY_NORM_D ? malloc(sizeof(double) * n) : NULL;
    y->stamp = malloc(sizeof(int32_t) * n);
    y->prev = malloc(sizeof(double) * (size_t)y->k * y->d);
    y->drift = malloc(sizeof(double) * (size_t)y->k);
    y->gdrift = malloc(sizeof(double) * (size_t)y->t);
    y->sc = calloc((size_t)y->nt, sizeof *y->sc);
    int ok = y->group && y->gstart && y->members && y->upper && y->lower && y->glob
             && (y->xnorm || y->d < KM_YY_NORM_D) && y->stamp && y->prev && y->drift
             && y->gdrift && y->sc;
    for (int t = 0; ok && t < y->nt; t++) {
        scratch *s = &y->sc[t];
        s->gmin1 = malloc(sizeof(double) * (size_t)y->t);
        s->gmin2 = malloc(sizeof(double) * (size_t)y->t);
        s->gidx1 = malloc(sizeof(int) * (size_t)y->t);
        s->seen = malloc((size_t)y->t);
        s->lb = malloc(sizeof(double) * (size_t)y->t);
        s->eb = malloc(sizeof(double) * (size_t)y->gcap);
        s->lb2 = malloc(sizeof(double) * (size_t)y->gcap);
        s->glb = malloc(sizeof(double) * (size_t)y->gcap * (size_t)y->t);
        s->cand = malloc(sizeof(int) * (size_t)y->k);
        s->csc = malloc(sizeof(double) * (size_t)y->k);
        s->gx = malloc(y->rowbytes * (size_t)y->gcap);
        s->glab = malloc(sizeof(int32_t) * (size_t)y->gcap);
        s->grow = malloc(sizeof(int64_t) * (size_t)y->gcap);
        s->rest = malloc(sizeof(int64_t) * (size_t)y->gcap);
        s->rglob = malloc(sizeof(double) * (size_t)y->gcap);
        ok = s->gmin1 && s->gmin2 && s->gidx1 && s->seen && s->lb && s->eb && s->lb2 && s->glb
             && s->cand && s->csc && s->gx
             && s->glab && s->grow && s->rest && s->rglob;
    }
    if (!ok) {
        km_yinyang_free(y);
        return NULL;
    }
    for (size_t i = 0; y->xnorm && i < n; i++)
        y->xnorm[i] = NAN;
    return y;
}

/* Group the centroids by a few Lloyd iterations on the centroids themselves
 * (Ding et al.), from evenly spaced starts; deterministic, so every rank gets the
 * same groups. Any grouping keeps the result exact; a good one prunes more. */
static int make_groups(km_yinyang *y, const double *c64)
{
    const int k = y->k, d = y->d, t = y->t;
    double *gc = malloc(sizeof(double) * (size_t)t * d), *sum = calloc((size_t)t * d, sizeof(double));
    int *cnt = calloc((size_t)t, sizeof(int));
    if (!gc || !sum || !cnt) {
        free(gc);
        free(sum);
        free(cnt);
        return -1;
    }
    for (int g = 0; g < t; g++)
        memcpy(gc + (size_t)g * d, c64 + (size_t)((int64_t)g * k / t) * d, sizeof(double) * d);
    for (int it = 0; it < KM_YY_GROUP_ITERS; it++) {
        memset(sum, 0, sizeof(double) * (size_t)t * d);
        memset(cnt, 0, sizeof(int) * (size_t)t);
        for (int c = 0; c < k; c++) {
            int best = 0;
            double be = INFINITY;
            for (int g = 0; g < t; g++) {
                double e = km_dist_exact(c64 + (size_t)c * d, 0, d, KM_F64, gc + (size_t)g * d);
                if (e < be) {
                    be = e;
                    best = g;
                }
            }
            y->group[c] = best;
            cnt[best]++;
            for (int j = 0; j < d; j++)
                sum[(size_t)best * d + j] += c64[(size_t)c * d + j];
        }
        for (int g = 0; g < t; g++)
            if (cnt[g])
                for (int j = 0; j < d; j++)
                    gc[(size_t)g * d + j] = sum[(size_t)g * d + j] / cnt[g];
    }
    y->gstart[0] = 0;
    for (int g = 0; g < t; g++)
        y->gstart[g + 1] = y->gstart[g] + cnt[g];
    memset(cnt, 0, sizeof(int) * (size_t)t);
    for (int c = 0; c < k; c++) {
        int g = y->group[c];
        y->members[y->gstart[g] + cnt[g]++] = c;
    }
    free(gc);
    free(sum);
    free(cnt);
    return 0;
}

/* Room for the cumulative drifts of pass p (rows 0..p). */
static int grow_history(km_yinyang *y, int p)
{
    if (p < y->cap)
        return 0;
    int cap = y->cap ? 2 * y->cap : 64;
    while (cap <= p)
        cap *= 2;
    double *g = realloc(y->cum_g, sizeof(double) * (size_t)cap * y->t);
    if (!g)
        return -1;
    y->cum_g = g;
    double *mx = realloc(y->cum_max, sizeof(double) * (size_t)cap);
    if (!mx)
        return -1;
    y->cum_max = mx;
    y->cap = cap;
    return 0;
}

static void centroid_moves(km_yinyang *y, const km_centers *kc, double m)
{
    const int k = y->k, d = y->d, t = y->t, p = y->pass;
    double mx = 0;
    for (int g = 0; g < t; g++)
        y->gdrift[g] = 0;
    km_bound_drifts(y->prev, kc->c64, k, d, m, kc->same, y->drift);
    for (int c = 0; c < k; c++) {
        if (y->drift[c] > y->gdrift[y->group[c]])
            y->gdrift[y->group[c]] = y->drift[c];
        mx = y->drift[c] > mx ? y->drift[c] : mx;
    }
    for (int g = 0; g < t; g++)
        y->cum_g[(size_t)p * t + g] = y->cum_g[(size_t)(p - 1) * t + g] + y->gdrift[g];
    y->cum_max[p] = y->cum_max[p - 1] + mx;
}

/* An upper bound of what the group (or global) lower bound lost between pass s and
 * now: the difference of two cumulative sums of non-negative drifts (then <=
 * now, each of at most p + 1 terms), widened for the rounding of the difference
 * (2^-53 of it) and of the sums (each add within 2^-53 of its partial sum, so
 * (p + 1) 2^-53 now for each of the two). A fixed now 2^-44 covered 255 passes. */
static inline double moved(double now, double then, int p)
{
    return (now - then) * (1 + 0x1p-50) + now * ((double)p + 2) * 0x1p-52;
}

/* Fold value v (a squared distance, or a lower bound of one) of centroid c into
 * its group's two smallest. */
static inline void group_min(scratch *s, int g, int c, double v)
{
    if (v < s->gmin1[g]) {
        s->gmin2[g] = s->gmin1[g];
        s->gmin1[g] = v;
        s->gidx1[g] = c;
    } else if (v < s->gmin2[g]) {
        s->gmin2[g] = v;
    }
}

/* With t = k: mark (seen 2) up to KM_YY_REFRESH centroids other than c_a that the
 * bounds lb settled (seen 0), those with the least bounds. */
static void refresh_nearest(const km_yinyang *y, scratch *s, const double *lb, int a)
{
    const int ga = y->group[a];
    for (int r = 0; r < KM_YY_REFRESH; r++) {
        int best = -1;
        for (int g = 0; g < y->t; g++)
            if (!s->seen[g] && g != ga && (best < 0 || lb[g] < lb[best]))
                best = g;
        if (best < 0)
            return;
        s->seen[best] = 2;
    }
}

/* One row whose bounds did not settle it: examine the groups that could hold a
 * centroid as near as c_a, take the argmin, rebuild its bounds. lb holds the
 * moved lower bounds (distances) on entry. The groups' centroids are first
 * scored as the fast kernel scores them; an exact distance E is computed only
 * for those whose score cannot prove them farther than the best so far (the
 * best-scored first), so the argmin of E, lowest index on ties, is Lloyd's.
 * e_a is E(x, c_a), or -1 when only hi >= ||x - c_a||^2 is known: then E(x, c_a)
 * <= hi (1 + e), and E(x, c_a) is taken only if a centroid's score cannot prove
 * it farther than that; else none can beat c_a, and hi stands for E(x, c_a) in
 * the bounds. With t = k, centroids that no test left in doubt may be rescored too
 * (refresh_nearest): their score-based bound replaces the moved one when it is
 * higher, without any exact distance. Returns the distances scored. */
static int64_t examine_row(km_yinyang *y, const km_centers *kc, const void *xr, int64_t g_row,
                           int32_t *label, double e_a, double hi, double u, double *lb,
                           scratch *s, km_acc *acc, km_workspace *ws, double m, km_row_aux *aux)
{
    const int a = *label, t = y->t, d = y->d;
    int n = 0;
    for (int g = 0; g < t; g++) {
        s->seen[g] = !(u * (1 + m) < lb[g] * (1 - m));   /* 1: in doubt */
        s->gmin1[g] = s->gmin2[g] = INFINITY;
        s->gidx1[g] = -1;
    }
    if (y->refresh)
        refresh_nearest(y, s, lb, a);
    for (int g = 0; g < t; g++)
        if (s->seen[g])
            for (int q = y->gstart[g]; q < y->gstart[g + 1]; q++)
                if (y->members[q] != a)
                    s->cand[n++] = y->members[q];
    const double base = km_row_scores_with(kc, xr, s->cand, n, s->csc, NULL, aux);
    int first = 0;
    for (int j = 1; j < n; j++)
        first = s->csc[j] < s->csc[first] ? j : first;
    for (int j = 0; e_a < 0 && j < n; j++)   /* a NaN score proves nothing: all of them */
        if (s->seen[y->group[s->cand[j]]] == 1
            && !((base + s->csc[j]) * (1 - m) > hi * (1 + m))) {
            e_a = km_dist_exact(xr, 0, d, kc->prec, kc->c64 + (size_t)a * d);
            acc->distances += 1;
        }
    int best = a;
    double e_best = e_a < 0 ? hi : e_a;
    for (int q = 0; q < n; q++) {
        const int j = q == 0 ? first : q == first ? 0 : q;   /* the best-scored first */
        const int c = s->cand[j];
        const double lo = base + s->csc[j];   /* <= ||x - c||^2 (NaN: proves nothing) */
        double v;
        if (s->seen[y->group[c]] == 2) {   /* settled: farther than c_a, only its bound */
            v = lo >= 0 ? lo : 0;   /* NaN: 0 */
        } else if (lo * (1 - m) > e_best) {   /* E >= lo (1 - e) > e_best: not the argmin */
            v = lo;
        } else {
            v = km_dist_exact(xr, 0, d, kc->prec, kc->c64 + (size_t)c * d);
            if (v < e_best || (v == e_best && c < best)) {
                e_best = v;
                best = c;
            }
        }
        group_min(s, y->group[c], c, v);
    }
    km_take_row(kc, xr, best, label, acc, ws);
    y->upper[g_row] = km_up_f(sqrt(e_best) * (1 + m));
    float *low = y->lower + (size_t)g_row * t;
    const int ga = y->group[a];
    float gmin = INFINITY;
    for (int g = 0; g < t; g++) {
        double l;
        if (s->seen[g]) {   /* min over the group's centroids other than the new label of
                               E or its lower bound: both are >= D^2 (1 - e) */
            double e = s->gidx1[g] == best ? s->gmin2[g] : s->gmin1[g];
            if (g == ga && a != best)   /* then e_a >= 0: a centroid beat it */
                e = e_a < e ? e_a : e;   /* the old centroid is now an "other" one */
            l = sqrt(e > 0 ? e : 0) * (1 - m);
            if (s->seen[g] == 2 && lb[g] > l)   /* rescored: its moved bound still holds
                                                   (c_a is not in its group) */
                l = lb[g];
        } else {
            l = lb[g];
            if (g == ga && a != best) {
                double la = sqrt(e_a) * (1 - m);
                l = la < l ? la : l;
            }
        }
        low[g] = km_down_f(l);
        gmin = low[g] < gmin ? low[g] : gmin;
    }
    y->glob[g_row] = gmin;
    y->stamp[g_row] = y->pass;
    return n;
}

/* Bounds of a row the kernel assigned: its exact distance eb and glb, the
 * kernel's bound on the squared distances to each group's other centroids. */
static void kernel_bounds(km_yinyang *y, int64_t g_row, double eb, const double *glb, double m)
{
    const int t = y->t;
    float *low = y->lower + (size_t)g_row * t, gmin = INFINITY;
    y->upper[g_row] = km_up_f(sqrt(eb) * (1 + m));
    for (int g = 0; g < t; g++) {
        low[g] = km_down_f(sqrt(glb[g]) * (1 - m));   /* glb >= 0; +inf: FLT_MAX */
        gmin = low[g] < gmin ? low[g] : gmin;
    }
    y->glob[g_row] = gmin;
    y->stamp[g_row] = y->pass;
}

/* What the kernel is asked for: thread scratch s's group bounds. */
static km_group_bounds group_request(const km_yinyang *y, const scratch *s)
{
    return (km_group_bounds){.group = y->group, .t = y->t, .glb = s->glb};
}

/* The first pass: Lloyd's kernel over the block gives each row its label and
 * bounds. */
static void block_full(km_yinyang *y, const km_centers *kc, const void *x, int64_t first,
                       int64_t nr, int32_t *labels, scratch *s, km_acc *acc, km_workspace *ws,
                       double m)
{
    const km_group_bounds gb = group_request(y, s);
    km_assign_block_bounds(kc, x, nr, labels + first, acc, ws, s->eb, s->lb2, &gb);
    for (int64_t j = 0; j < nr; j++)
        kernel_bounds(y, first + j, s->eb[j], s->glb + (size_t)j * y->t, m);
    acc->distances += (double)nr * y->k;
}

/* The gathered rows through the kernel, their labels and bounds back in place. */
static void flush_gathered(km_yinyang *y, const km_centers *kc, scratch *s, int32_t *labels,
                           km_acc *acc, km_workspace *ws, double m)
{
    if (!s->gn)
        return;
    const km_group_bounds gb = group_request(y, s);
    km_assign_block_bounds(kc, s->gx, s->gn, s->glab, acc, ws, s->eb, s->lb2, &gb);
    for (int64_t j = 0; j < s->gn; j++) {
        labels[s->grow[j]] = s->glab[j];
        kernel_bounds(y, s->grow[j], s->eb[j], s->glb + (size_t)j * y->t, m);
    }
    acc->distances += (double)s->gn * y->k;
    s->gn = 0;
}

/* The global test on the moved bounds, without reading the row: 1 when no group
 * can hold a centroid nearer than its own (the row stays: nothing to add). */
static inline int row_settled(km_yinyang *y, int64_t g_row, int a, double m, double *glob_out,
                              double *u_out)
{
    const int p = y->pass, st = y->stamp[g_row];
    const double grow = 1 + 0x1p-50, shrink = 1 - 0x1p-50;
    const double u = ((double)y->upper[g_row] + y->drift[a]) * grow;
    double glob = ((double)y->glob[g_row] - moved(y->cum_max[p], y->cum_max[st], p)) * shrink;
    glob = glob > 0 ? glob : 0;
    if (u * (1 + m) < glob * (1 - m)) {
        y->upper[g_row] = km_up_f(u);
        return 1;
    }
    *glob_out = glob;
    *u_out = u;
    return 0;
}

/* The row's group bounds brought from pass st to now, in lb. */
static void moved_groups(const km_yinyang *y, int64_t g_row, double *lb)
{
    const int t = y->t, p = y->pass, st = y->stamp[g_row];
    const float *low = y->lower + (size_t)g_row * t;
    const double *now = y->cum_g + (size_t)p * t, *then = y->cum_g + (size_t)st * t;
    for (int g = 0; g < t; g++) {
        const double l = ((double)low[g] - moved(now[g], then[g], p)) * (1 - 0x1p-50);
        lb[g] = l > 0 ? l : 0;
    }
}

/* How many centroids lie in the groups whose bound lb[g] u cannot rule out. */
static int in_doubt(const km_yinyang *y, const double *lb, double u, double m)
{
    int n = 0;
    for (int g = 0; g < y->t; g++)
        if (!(u * (1 + m) < lb[g] * (1 - m)))
            n += y->gstart[g + 1] - y->gstart[g];
    return n;
}

/* The row keeps its label with upper bound u: its moved group bounds lb become
 * its bounds as of this pass (so the global bound is their least again). */
static void rebase_row(km_yinyang *y, int64_t g_row, double u, const double *lb)
{
    const int t = y->t;
    float *low = y->lower + (size_t)g_row * t, gmin = INFINITY;
    for (int g = 0; g < t; g++) {
        low[g] = km_down_f(lb[g]);
        gmin = low[g] < gmin ? low[g] : gmin;
    }
    y->upper[g_row] = km_up_f(u);
    y->glob[g_row] = gmin;
    y->stamp[g_row] = y->pass;
}

/* A row that the global test and then the group tests with its moved upper
 * bound u left in doubt (mark; glob: its moved global bound): u tightened to the
 * exact distance (or the scores' bound) and the tests again; then the groups still
 * in doubt are examined; with t = k the row is examined even when the tests now
 * settle it (KM_YY_REFRESH). */
static void row_pruned(km_yinyang *y, const km_centers *kc, const void *xr, int64_t g_row,
                       int32_t *labels, scratch *s, double *lb, km_acc *acc, km_workspace *ws,
                       double m, double glob, km_row_aux *aux)
{
    int32_t *label = labels + g_row;
    const int a = *label, d = y->d;
    moved_groups(y, g_row, lb);
    double e_a = -1, hi = -1;   /* hi >= ||x - c_a||^2: E(x, c_a), or from the scores */
    if (y->score_first) {
        double sa, top;
        const double lo = km_row_scores_with(kc, xr, &a, 1, &sa, &top, aux) + sa;
        if (lo > 0 && top + sa <= lo * KM_YY_TOP_SLACK)   /* not NaN */
            hi = top + sa;
    }
    if (hi < 0)
        hi = e_a = km_dist_exact(xr, 0, d, kc->prec, kc->c64 + (size_t)a * d);
    const double u = sqrt(hi) * (1 + m);
    acc->distances += 1;
    /* settled now; with t = k, examined still (KM_YY_REFRESH) */
    if (!y->refresh && u * (1 + m) < glob * (1 - m)) {
        y->upper[g_row] = km_up_f(u);
        return;
    }
    const int doubt = in_doubt(y, lb, u, m);   /* the same lb, the tighter u */
    if (doubt == 0 && !y->refresh) {
        rebase_row(y, g_row, u, lb);
        return;
    }
    /* many of them: the blocked kernel, which does all k, is faster. An exact distance
     * costs ~d + 64 of the kernel's k d per row: the threshold is k / 6 of the centroids
     * at d = 32 and ~k / 2 at d = 784, where those fractions measured best (BENCH.md);
     * at d = 3 it gives k / 45, not measured on its own */
    if (2 * (int64_t)doubt * (y->d + 64) > (int64_t)y->k * y->d) {
        acc->distances -= 1;   /* the kernel's k stand for the row: skipped stays >= 0 */
        memcpy((char *)s->gx + (size_t)s->gn * y->rowbytes, xr, y->rowbytes);
        s->glab[s->gn] = a;
        s->grow[s->gn++] = g_row;
        if (s->gn == y->gcap)
            flush_gathered(y, kc, s, labels, acc, ws, m);
        return;
    }
    acc->distances += (double)examine_row(y, kc, xr, g_row, label, e_a, hi, u, lb, s, acc, ws,
                                          m, aux);
}

/* The pass as a walk (walk.h; ctx: a km_pass, state the km_yinyang). */
/* The rows of block [first, first + n) whose values are needed, in s->rest
 * (block-relative), with their moved global bounds in s->rglob: those that neither
 * the global test nor the group tests with the moved upper bound settle. Both
 * tests need no value of the row, so a row they settle is not read (streamed) nor
 * fetched ahead (in memory): on 70,000 x 784, k = 256, 58 % of the rows the
 * global test left in doubt. */
static int64_t mark(void *ctx, int t, int64_t first, int64_t n, const int64_t **idx)
{
    const km_pass *P = ctx;
    km_yinyang *y = P->state;
    if (!y->valid)
        return km_walk_all(n, idx);
    scratch *s = &y->sc[t];
    int64_t nrest = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t g_row = first + i;
        double u;
        if (row_settled(y, g_row, P->labels[g_row], P->m, &s->rglob[nrest], &u))
            continue;
        moved_groups(y, g_row, s->lb);
        if (in_doubt(y, s->lb, u, P->m) == 0)
            rebase_row(y, g_row, u, s->lb);
        else
            s->rest[nrest++] = i;
    }
    *idx = s->rest;
    return nrest;
}

static void work(void *ctx, int t, int64_t first, int64_t n, const int64_t *idx, int64_t nidx,
                 const void *x)
{
    const km_pass *P = ctx;
    km_yinyang *y = P->state;
    scratch *s = &y->sc[t];
    km_acc *ta = km_threads_acc(P->th, t);
    km_workspace *ws = km_threads_workspace(P->th, t);
    if (!y->valid) {
        block_full(y, P->kc, x, first, n, P->labels, s, ta, ws, P->m);
        return;
    }
    km_prefetch_first(x, y->rowbytes, idx, nidx, KM_YY_AHEAD);
    const size_t head = y->rowbytes < 512 ? y->rowbytes : 512;   /* km_prefetch_row's */
    for (int64_t j = 0; j < nidx; j++) {
        if (j + KM_YY_AHEAD < nidx)
            km_prefetch_row((const char *)x + (size_t)idx[j + KM_YY_AHEAD] * y->rowbytes,
                            y->rowbytes);
        const int64_t i = idx[j];
        /* the rest of the next row in doubt is asked for while this one is scored */
        const char *next = j + 1 < nidx ? (const char *)x + (size_t)idx[j + 1] * y->rowbytes
                                        : NULL;
        km_row_aux aux = {.xn = y->xnorm ? y->xnorm[first + i] : NAN,
                          .next = next ? next + head : NULL,
                          .next_end = next ? next + y->rowbytes : NULL};
        row_pruned(y, P->kc, (const char *)x + (size_t)i * y->rowbytes, first + i, P->labels,
                   s, s->lb, ta, ws, P->m, s->rglob[j], &aux);
        if (y->xnorm)
            y->xnorm[first + i] = aux.xn;
    }
}

/* Whole row groups for the kernel: the rows gathered over the thread's blocks. */
static void flush(void *ctx, int t)
{
    const km_pass *P = ctx;
    km_yinyang *y = P->state;
    flush_gathered(y, P->kc, &y->sc[t], P->labels, km_threads_acc(P->th, t),
                   km_threads_workspace(P->th, t), P->m);
}

int km_yinyang_pass(km_yinyang *y, km_source *src, const km_centers *kc, int32_t *labels,
                    km_threads *th, km_acc *acc, km_error *err)
{
    const double m = km_bound_margin(y->d);
    if (!y->valid) {
        y->pass = 0;
        if (make_groups(y, kc->c64) || grow_history(y, 0))
            return km_fail(err, KM_ERR_MEMORY, "out of memory grouping %d centroids", y->k);
        for (int g = 0; g < y->t; g++)
            y->cum_g[g] = 0;
        y->cum_max[0] = 0;
    } else {
        if (grow_history(y, y->pass + 1))
            return km_fail(err, KM_ERR_MEMORY, "out of memory for Yinyang's drift history");
        y->pass++;
        centroid_moves(y, kc, m);
    }
    const km_walk w = {mark, work, flush};
    km_pass P = {kc, labels, th, m, y};
    if (km_walk_rows(src, th, km_threads_block_rows(th), &w, &P, err))
        return err->code;
    km_threads_reduce(th, acc);
    km_bound_keep(y->prev, kc->c64, y->k, y->d, y->valid ? kc->same : NULL);
    y->valid = 1;
    return 0;
}
