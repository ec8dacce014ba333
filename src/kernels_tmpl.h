/* kernels_tmpl.h — the fast assignment kernel, written once and instantiated by
 * kernels.c for float and double (REAL, VEC, VL, SFX, UROUND defined there).
 *
 * Scores s_c = ||c||^2 - 2 x.c come from a register-blocked micro-kernel: a tile
 * of RB rows x 2 vectors of centroids accumulates x.c with FMAs over j. Every
 * point goes through the same tile code in the same j order (tail rows are
 * copied into a padded tile), so a point's label never depends on where it sits
 * in a block, chunk, thread or rank. The score form loses digits when
 * ||x|| >> ||x - c||, so the argmin is trusted only when the runner-up is
 * further than a proven error bound; otherwise the candidates are rechecked with
 * km_dist_exact, the same function the naive reference uses. */

#define FN_(name, sfx) name##_##sfx
#define FN2(name, sfx) FN_(name, sfx)
#define FN(name) FN2(name, SFX)
#define CB (2 * VL)

static inline VEC FN(bcast)(REAL a)
{
    VEC v;
    for (int i = 0; i < VL; i++)
        v[i] = a;
    return v;
}

static inline VEC FN(vload)(const REAL *p)
{
    VEC v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* out[r][0..CB) (+)= sum_{j0<=j<j1} x[r][j] * panel[j][0..CB) for RB rows.
 * Hot loop: 2*RB accumulators stay in registers. */
static void FN(tile)(const REAL *restrict x, int64_t ldx, const REAL *restrict panel,
                     int j0, int j1, REAL *restrict out, int64_t ldo, int first)
{
    VEC a0l, a0h, a1l, a1h, a2l, a2h, a3l, a3h;
    if (first) {
        a0l = a0h = a1l = a1h = a2l = a2h = a3l = a3h = FN(bcast)(0);
    } else {
        a0l = FN(vload)(out); a0h = FN(vload)(out + VL);
        a1l = FN(vload)(out + ldo); a1h = FN(vload)(out + ldo + VL);
        a2l = FN(vload)(out + 2 * ldo); a2h = FN(vload)(out + 2 * ldo + VL);
        a3l = FN(vload)(out + 3 * ldo); a3h = FN(vload)(out + 3 * ldo + VL);
    }
    const REAL *x0 = x, *x1 = x + ldx, *x2 = x + 2 * ldx, *x3 = x + 3 * ldx;
    for (int j = j0; j < j1; j++) {
        const VEC cl = FN(vload)(panel + (size_t)j * CB);
        const VEC ch = FN(vload)(panel + (size_t)j * CB + VL);
        VEC b;
        b = FN(bcast)(x0[j]); a0l += b * cl; a0h += b * ch;
        b = FN(bcast)(x1[j]); a1l += b * cl; a1h += b * ch;
        b = FN(bcast)(x2[j]); a2l += b * cl; a2h += b * ch;
        b = FN(bcast)(x3[j]); a3l += b * cl; a3h += b * ch;
    }
    memcpy(out, &a0l, sizeof a0l); memcpy(out + VL, &a0h, sizeof a0h);
    memcpy(out + ldo, &a1l, sizeof a1l); memcpy(out + ldo + VL, &a1h, sizeof a1h);
    memcpy(out + 2 * ldo, &a2l, sizeof a2l); memcpy(out + 2 * ldo + VL, &a2h, sizeof a2h);
    memcpy(out + 3 * ldo, &a3l, sizeof a3l); memcpy(out + 3 * ldo + VL, &a3h, sizeof a3h);
}

/* dots[r][c] = x_r . c for all rows of the block and all (padded) centroids,
 * d-blocked so a slice of the panels stays in cache. */
static void FN(block_dots)(const km_centers *kc, const REAL *x, int64_t rows,
                           km_workspace *ws)
{
    const int d = kc->d, kp = kc->kp, np = kp / CB;
    const REAL *panels = kc->panels;
    REAL *dots = ws->dots, *tail = ws->tail;
    const int64_t full = rows / RB * RB;
    if (rows > full) {   /* same tile code for the tail: copy into a zero-padded tile */
        memset(tail, 0, sizeof(REAL) * RB * (size_t)d);
        memcpy(tail, x + full * d, sizeof(REAL) * (size_t)(rows - full) * d);
    }
    for (int j0 = 0; j0 < d; j0 += KM_DBLOCK) {
        const int j1 = d - j0 > KM_DBLOCK ? j0 + KM_DBLOCK : d;
        for (int64_t r = 0; r < full; r += RB)
            for (int p = 0; p < np; p++)
                FN(tile)(x + r * d, d, panels + (size_t)p * CB * d, j0, j1,
                         dots + r * kp + p * CB, kp, j0 == 0);
        if (rows > full)
            for (int p = 0; p < np; p++)
                FN(tile)(tail, d, panels + (size_t)p * CB * d, j0, j1,
                         dots + full * kp + p * CB, kp, j0 == 0);
    }
}

static void FN(assign_block)(const km_centers *kc, const REAL *restrict x, int64_t rows,
                             int32_t *restrict labels, double *restrict acc,
                             km_workspace *ws)
{
    const int k = kc->k, d = kc->d, kp = kc->kp;
    /* |error of a score| <= B(x): dot in REAL (d FMAs), centroid rounding, and
     * the float64 combination; also bounds km_dist_exact's own error. */
    const double coef = 1.25 * (2.0 * (d + 2) * UROUND + 0x1p-48);
    FN(block_dots)(kc, x, rows, ws);
    double *counts = km_acc_counts(acc, k, d);
    const REAL *dots = ws->dots;
    for (int64_t r = 0; r < rows; r++) {
        const REAL *xr = x + r * d;
        const REAL *dr = dots + r * kp;
        double best = INFINITY;
        int bi = 0;
        for (int c = 0; c < k; c++) {
            double s = kc->cnorm[c] - 2.0 * (double)dr[c];
            ws->scores[c] = s;
            if (s < best) {
                best = s;
                bi = c;
            }
        }
        double xn = 0;
        for (int j = 0; j < d; j++)
            xn += (double)xr[j] * xr[j];
        const double rad = sqrt(xn) + kc->cmax;
        const double lim = best + 4.0 * coef * rad * rad;
        int ncand = 0;
        for (int c = 0; c < k; c++)
            if (ws->scores[c] <= lim)
                ws->cand[ncand++] = c;
        if (ncand == 0)   /* scores overflowed (NaN/inf): recheck every centroid */
            for (int c = 0; c < k; c++)
                ws->cand[ncand++] = c;
        double dbest;
        if (ncand > 1) {
            dbest = INFINITY;
            bi = ws->cand[0];
            for (int i = 0; i < ncand; i++) {
                double e = km_dist_exact(xr, 0, d, PREC, kc->c64 + (size_t)ws->cand[i] * d);
                if (e < dbest) {
                    dbest = e;
                    bi = ws->cand[i];
                }
            }
        } else {
            dbest = km_dist_exact(xr, 0, d, PREC, kc->c64 + (size_t)bi * d);
        }
        double *sr = acc + (size_t)bi * d;
        for (int j = 0; j < d; j++)
            sr[j] += xr[j];
        counts[bi] += 1.0;
        acc[km_acc_inertia(k, d)] += dbest;
        if (labels[r] != bi) {
            acc[km_acc_changed(k, d)] += 1.0;
            labels[r] = bi;
        }
    }
}

static void FN(load_panels)(km_centers *kc, const double *c64)
{
    const int k = kc->k, d = kc->d, np = kc->kp / CB;
    REAL *panels = kc->panels;
    for (int p = 0; p < np; p++)
        for (int j = 0; j < d; j++)
            for (int i = 0; i < CB; i++) {
                int c = p * CB + i;
                panels[((size_t)p * d + j) * CB + i] = c < k ? (REAL)c64[(size_t)c * d + j] : 0;
            }
}

#undef CB
#undef FN
#undef FN2
#undef FN_
