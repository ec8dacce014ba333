/* rowbench.c — what a pruned pass pays for one row in doubt, on one core (no MPI,
 * no HDF5): the exact float64 distance to a centroid (km_dist_exact) with the row
 * coming from memory and from cache, and the fast scores of 1, 2 and 4 centroids
 * (km_row_scores, ||x||^2 with them; then with the norm kept, km_row_aux), and the
 * same from memory with and without the next row asked for, in microseconds a row.
 * Built by `make unit`, run by `make rowbench`:
 *     build/rowbench [d] [k] [n]          defaults 20000 16 10000 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include "kernels.h"

static uint64_t lcg = 1;
static double unif(void)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg >> 11) * 0x1p-53;
}

int main(int argc, char **argv)
{
    const int d = argc > 1 ? atoi(argv[1]) : 20000, k = argc > 2 ? atoi(argv[2]) : 16;
    const int64_t n = argc > 3 ? atoll(argv[3]) : 10000;
    if (d < 1 || k < 4 || n < 8) {
        fprintf(stderr, "rowbench: need d >= 1, k >= 4, n >= 8\n");
        return 2;
    }
    float *x = malloc(sizeof(float) * (size_t)n * d);
    double *c = malloc(sizeof(double) * (size_t)k * d), *maxabs = malloc(sizeof(double) * d);
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)n);
    if (!x || !c || !maxabs || !perm) {
        fprintf(stderr, "rowbench: out of memory\n");
        return 1;
    }
    for (int64_t i = 0; i < n * d; i++)
        x[i] = (float)unif();
    for (int64_t i = 0; i < (int64_t)k * d; i++)
        c[i] = unif();
    for (int j = 0; j < d; j++)
        maxabs[j] = 1.0;
    for (int64_t i = 0; i < n; i++)   /* rows in doubt come in no order */
        perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        const int64_t j = (int64_t)(unif() * (double)(i + 1));
        const int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    km_centers kc;
    km_error err = {0};
    if (km_centers_init(&kc, k, d, KM_F32, &err) || km_centers_keep_rows(&kc)) {
        fprintf(stderr, "rowbench: out of memory\n");
        return 1;
    }
    km_centers_set_range(&kc, maxabs, NULL);
    km_centers_load(&kc, c);
    double sink = 0, sc[4];
    const int cand[4] = {0, 1, 2, 3};
    const int64_t cached = 4;   /* rows cycled through: they stay in cache */
    printf("rowbench: d=%d k=%d n=%lld, one core, us per row\n", d, k, (long long)n);
    for (int rep = 0; rep < 2; rep++) {
        double t = omp_get_wtime();
        for (int64_t i = 0; i < n; i++)
            sink += km_dist_exact(x, perm[i], d, KM_F32, c + (size_t)(i % k) * d);
        printf("  exact distance, row from memory   %8.2f\n", (omp_get_wtime() - t) / n * 1e6);
        t = omp_get_wtime();
        for (int64_t i = 0; i < n; i++)
            sink += km_dist_exact(x, i % cached, d, KM_F32, c + (size_t)(i % k) * d);
        printf("  exact distance, row in cache      %8.2f\n", (omp_get_wtime() - t) / n * 1e6);
        t = omp_get_wtime();
        for (int64_t i = 0; i < n; i++) {
            const float *xr = x + (size_t)(i % cached) * d;
            for (int q = 0; q < 4; q++)
                sink += km_dist_exact(xr, 0, d, KM_F32, c + (size_t)((i + q) % k) * d);
        }
        printf("  4 exact distances one by one      %8.2f\n", (omp_get_wtime() - t) / n * 1e6);
        t = omp_get_wtime();
        for (int64_t i = 0; i < n; i++) {
            const int four[4] = {i % k, (i + 1) % k, (i + 2) % k, (i + 3) % k};
            double e4[4];
            km_dist_exact_many(x + (size_t)(i % cached) * d, d, KM_F32, c, four, 4, e4);
            sink += e4[0] + e4[1] + e4[2] + e4[3];
        }
        printf("  4 exact distances at once         %8.2f\n", (omp_get_wtime() - t) / n * 1e6);
        for (int m = 1; m <= 4; m *= 2) {
            t = omp_get_wtime();
            for (int64_t i = 0; i < n; i++)
                sink += km_row_scores(&kc, x + (size_t)(i % cached) * d, cand, m, sc) + sc[0];
            printf("  scores of %d centroid%s, row in cache %6.2f\n", m, m > 1 ? "s" : " ",
                   (omp_get_wtime() - t) / n * 1e6);
        }
        double xn[4];   /* the norms a pruned pass keeps (km_row_aux) */
        for (int64_t r = 0; r < cached; r++) {
            km_row_aux a = {.xn = NAN};
            km_row_scores_with(&kc, x + (size_t)r * d, cand, 1, sc, NULL, &a);
            xn[r] = a.xn;
        }
        for (int m = 1; m <= 4; m *= 2) {
            t = omp_get_wtime();
            for (int64_t i = 0; i < n; i++) {
                km_row_aux a = {.xn = xn[i % cached]};
                sink += km_row_scores_with(&kc, x + (size_t)(i % cached) * d, cand, m, sc, NULL,
                                           &a) + sc[0];
            }
            printf("  the same, its norm kept           %8.2f\n", (omp_get_wtime() - t) / n * 1e6);
        }
        /* rows in doubt one after another from memory, with and without the next one
           asked for while one is scored */
        for (int ask = 0; ask < 2; ask++) {
            t = omp_get_wtime();
            for (int64_t i = 0; i < n; i++) {
                const float *nx = i + 1 < n ? x + (size_t)perm[i + 1] * d : NULL;
                km_row_aux a = {.xn = NAN, .next = ask && nx ? (const char *)nx : NULL,
                                .next_end = ask && nx ? (const char *)(nx + d) : NULL};
                sink += km_row_scores_with(&kc, x + (size_t)perm[i] * d, cand, 4, sc, NULL, &a);
            }
            printf("  scores of 4, rows from memory%s %6.2f\n",
                   ask ? ", next asked" : "            ", (omp_get_wtime() - t) / n * 1e6);
        }
    }
    printf("  (checksum %g)\n", sink);
    km_centers_free(&kc);
    free(x);
    free(c);
    free(maxabs);
    free(perm);
    return 0;
}
