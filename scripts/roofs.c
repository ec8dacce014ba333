/* roofs.c — this machine's two roofs, measured on all OpenMP threads:
 * the FMA peak (independent vector FMA chains held in registers, the widest
 * vectors the compiler targets) and the rate of a streaming read of a large
 * float32 array. Prints one JSON line. Built and run by scripts/bench_kernel.py:
 *     build/roofs [read_bytes]           default 1 GiB */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#if defined(__AVX512F__)
#define VBYTES 64
#else
#define VBYTES 32
#endif
typedef float vf __attribute__((vector_size(VBYTES)));
#define LANES (VBYTES / 4)
#define KEEP(v) __asm__ volatile("" : "+x"(v))

/* 12 chains: enough in flight to cover the FMA latency on two pipes. */
static double fma_gflops(void)
{
    const long iters = 50000000;
    double t = 0;
#pragma omp parallel reduction(max: t)
    {
        vf b = {0}, c = {0};
        b += 0.5f;
        c += 0.25f;
        vf a0 = b, a1 = b, a2 = b, a3 = b, a4 = b, a5 = b, a6 = b, a7 = b, a8 = b, a9 = b,
           a10 = b, a11 = b;
#pragma omp barrier
        double t0 = omp_get_wtime();
        for (long it = 0; it < iters; it++) {
#define STEP(v) v = v * b + c; KEEP(v)
            STEP(a0); STEP(a1); STEP(a2); STEP(a3); STEP(a4); STEP(a5);
            STEP(a6); STEP(a7); STEP(a8); STEP(a9); STEP(a10); STEP(a11);
#undef STEP
        }
        t = omp_get_wtime() - t0;
        vf s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
        if (s[0] == 12345.0f)
            printf("#\n");   /* keeps the chains alive */
    }
    return 2.0 * LANES * 12 * iters * omp_get_max_threads() / t / 1e9;
}

static double read_gbs(size_t bytes)
{
    const size_t n = bytes / 4;
    float *x = malloc(n * sizeof(float));
    if (!x)
        return 0;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)   /* first touch by the reading thread */
        x[i] = (float)(i & 1023);
    double best = 1e30, sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        double s = 0, t = omp_get_wtime();
#pragma omp parallel for schedule(static) reduction(+: s)
        for (size_t i = 0; i < n; i++)
            s += x[i];
        t = omp_get_wtime() - t;
        sink += s;
        best = t < best ? t : best;
    }
    free(x);
    if (sink == -1)
        printf("#\n");
    return bytes / best / 1e9;
}

int main(int argc, char **argv)
{
    size_t bytes = argc > 1 ? strtoull(argv[1], NULL, 10) : (1ul << 30);
    printf("{\"threads\": %d, \"vector_bits\": %d, \"fma_gflops\": %.1f, \"read_gbs\": %.2f}\n",
           omp_get_max_threads(), VBYTES * 8, fma_gflops(), read_gbs(bytes));
    return 0;
}
