/* roofs.c — this machine's two roofs, measured on all OpenMP threads:
 * the FMA peak (independent vector FMA chains held in registers, the widest
 * vectors the compiler targets) and the rate of a streaming read of a large
 * float32 array. Prints one JSON line. Built and run by scripts/bench_kernel.py:
 *     build/roofs [read_bytes]           default 1 GiB */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "fma_peak.h"

/* All threads at once: the sum of their rates. */
static double fma_gflops(void)
{
    double sum = 0;
#pragma omp parallel reduction(+: sum)
    sum = fma_peak_flops(50000000);
    return sum / 1e9;
}

#define READ_LANES 64   /* 8 AVX2 vectors */

static double read_gbs(size_t bytes)
{
    const size_t n = bytes / 4 / READ_LANES * READ_LANES;
    float *x = malloc(n * sizeof(float));
    if (!x)
        return 0;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)   /* first touch by the reading thread */
        x[i] = (float)(i & 1023);
    /* READ_LANES independent float sums a thread, which the compiler vectorizes:
       one double sum (what this was until 2026-12-01) waits on the add's latency,
       ~4 GB/s a core, and so measured the adder, not the memory (the true rate
       here was 2.7x that) */
    double best = 1e30, sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        double s = 0, t = omp_get_wtime();
#pragma omp parallel reduction(+: s)
        {
            float acc[READ_LANES] = {0};
#pragma omp for schedule(static)
            for (size_t b = 0; b < n / READ_LANES; b++)
                for (int l = 0; l < READ_LANES; l++)
                    acc[l] += x[b * READ_LANES + l];
            for (int l = 0; l < READ_LANES; l++)
                s += acc[l];
        }
        t = omp_get_wtime() - t;
        sink += s;
        best = t < best ? t : best;
    }
    free(x);
    if (sink == -1)
        printf("#\n");
    return (double)n * sizeof(float) / best / 1e9;
}

int main(int argc, char **argv)
{
    size_t bytes = argc > 1 ? strtoull(argv[1], NULL, 10) : (1ul << 30);
    printf("{\"threads\": %d, \"vector_bits\": %d, \"fma_gflops\": %.1f, \"read_gbs\": %.2f}\n",
           omp_get_max_threads(), FMA_VBYTES * 8, fma_gflops(), read_gbs(bytes));
    return 0;
}
