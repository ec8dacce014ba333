/* kbench.c — the assignment kernel alone (no MPI, no HDF5), best of R passes
 * of a Lloyd pass (km_lloyd_pass over the rows in memory: the kernel on the
 * threads, and their reduction) over n random float32 rows, next to this
 * core's FMA peak.
 * Built and run by `make kbench` (OMP_NUM_THREADS sets the threads):
 *     build/kbench [d] [k] [n] [passes]           defaults 32 64 1000000 9 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include "kernels.h"
#include "lloyd.h"

#include "fma_peak.h"

int main(int argc, char **argv)
{
    const int d = argc > 1 ? atoi(argv[1]) : 32, k = argc > 2 ? atoi(argv[2]) : 64;
    const int64_t n = argc > 3 ? atoll(argv[3]) : 1000000;
    const int passes = argc > 4 ? atoi(argv[4]) : 9;
    float *x = malloc(sizeof(float) * n * d);
    double *c = malloc(sizeof(double) * k * d), *maxabs = calloc(d, sizeof(double));
    int32_t *labels = calloc(n, sizeof(int32_t));
    km_acc *acc = km_acc_new(k, d);
    if (!x || !c || !maxabs || !labels || !acc) {
        fprintf(stderr, "kbench: out of memory\n");
        return 1;
    }
    uint64_t s = 1;
    for (int64_t i = 0; i < n * d; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((s >> 40) * 0x1p-24);
    }
    for (int i = 0; i < k * d; i++)
        c[i] = x[(int64_t)i * 7 % (n * d)];
    km_centers kc;
    km_error err;
    if (km_centers_init(&kc, k, d, KM_F32, &err)) {
        fprintf(stderr, "kbench: %s\n", err.msg);
        return 1;
    }
    km_column_maxabs(x, n, d, KM_F32, maxabs);
    km_centers_set_range(&kc, maxabs, NULL);
    km_centers_load(&kc, c);
    const int64_t br = km_default_block_rows(d, k, KM_F32);
    km_threads *th = km_threads_new(&kc, br, NULL);
    const km_block blk = {.n = n, .d = d, .rows = n, .prec = KM_F32, .data = x};
    km_source src;
    km_source_memory(&src, &blk);
    double best = 1e30;
    for (int r = 0; r < passes; r++) {
        double t = omp_get_wtime();
        if (km_lloyd_pass(&src, &kc, labels, th, acc, &err)) {
            fprintf(stderr, "kbench: %s\n", err.msg);
            return 1;
        }
        t = omp_get_wtime() - t;
        best = t < best ? t : best;
    }
    const double gflops = 2.0 * n * kc.kp * d / best / 1e9;
    const double peak = fma_peak_flops(100000000) * omp_get_max_threads() / 1e9;
    printf("kbench d=%d k=%d n=%lld threads=%d block=%lld: best %.2f ms/pass, "
           "%.1f GFLOP/s = %.0f %% of the %.0f GFLOP/s peak (%d-bit FMA, one core x "
           "threads)\n", d, k, (long long)n, omp_get_max_threads(), (long long)br, best * 1e3,
           gflops, 100 * gflops / peak, peak, FMA_VBYTES * 8);
    km_threads_free(th);
    km_centers_free(&kc);
    km_acc_free(acc);
    free(x); free(c); free(maxabs); free(labels);
    return 0;
}
