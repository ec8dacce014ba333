/* kbench.c — the assignment kernel alone (no MPI, no HDF5), best of R passes
 * of km_assign_chunk over n random float32 rows, next to this core's FMA peak.
 * Built and run by `make kbench` (OMP_NUM_THREADS sets the threads):
 *     build/kbench [d] [k] [n] [passes]           defaults 32 64 1000000 9 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include "kernels.h"

typedef float v8f __attribute__((vector_size(32)));
#define KEEP(v) __asm__ volatile("" : "+x"(v))

/* 12 independent 256-bit FMA chains in registers: the FMA roof of one core
 * (12 named variables, so the compiler keeps them out of memory). */
static double fma_per_ns(void)
{
    v8f b = {0}, c = {0};
    b += 0.5f;
    c += 0.5f;
    v8f a0 = b, a1 = b, a2 = b, a3 = b, a4 = b, a5 = b, a6 = b, a7 = b, a8 = b, a9 = b,
        a10 = b, a11 = b;
    const long iters = 100000000;
    double t = omp_get_wtime();
    for (long it = 0; it < iters; it++) {
#define STEP(v) v = v * b + c; KEEP(v)
        STEP(a0); STEP(a1); STEP(a2); STEP(a3); STEP(a4); STEP(a5);
        STEP(a6); STEP(a7); STEP(a8); STEP(a9); STEP(a10); STEP(a11);
#undef STEP
    }
    t = omp_get_wtime() - t;
    v8f z = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    KEEP(z);
    return iters * 12.0 / t / 1e9;
}

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
    km_centers_set_range(&kc, maxabs);
    km_centers_load(&kc, c);
    const int64_t br = km_default_block_rows(d, k, KM_F32);
    km_threads *th = km_threads_new(&kc, br);
    double best = 1e30;
    for (int r = 0; r < passes; r++) {
        double t = omp_get_wtime();
        km_assign_chunk(&kc, x, n, labels, th);
        km_threads_reduce(th, acc);
        t = omp_get_wtime() - t;
        best = t < best ? t : best;
    }
    const double fma = (double)n * kc.kp * d / 8 / best / 1e9;   /* 8 float lanes */
    const double peak = fma_per_ns() * omp_get_max_threads();   /* one core x threads */
    printf("kbench d=%d k=%d n=%lld threads=%d block=%lld: best %.2f ms/pass, "
           "%.2f 256-bit FMA/ns = %.0f %% of the %.2f peak\n", d, k, (long long)n,
           omp_get_max_threads(), (long long)br, best * 1e3, fma, 100 * fma / peak, peak);
    km_threads_free(th);
    km_centers_free(&kc);
    km_acc_free(acc);
    free(x); free(c); free(maxabs); free(labels);
    return 0;
}
