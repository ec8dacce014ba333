/* fma_peak.h — the FMA peak of the calling thread's core: 12 independent FMA
 * chains of the widest vectors the compiler targets, held in registers (12
 * named variables, so the compiler keeps them out of memory; enough in flight
 * to cover the FMA latency on two pipes). Shared by kbench.c and roofs.c. */
#ifndef FMA_PEAK_H
#define FMA_PEAK_H
#include <omp.h>

#if defined(__AVX512F__)
#define FMA_VBYTES 64
#else
#define FMA_VBYTES 32
#endif
#define FMA_LANES (FMA_VBYTES / 4)
typedef float fma_vf __attribute__((vector_size(FMA_VBYTES)));
#define FMA_KEEP(v) __asm__ volatile("" : "+x"(v))

/* Float operations per second of `iters` steps of the 12 chains (2 per lane). */
static double fma_peak_flops(long iters)
{
    fma_vf b = {0}, c = {0};
    b += 0.5f;
    c += 0.25f;
    fma_vf a0 = b, a1 = b, a2 = b, a3 = b, a4 = b, a5 = b, a6 = b, a7 = b, a8 = b, a9 = b,
           a10 = b, a11 = b;
    double t = omp_get_wtime();
    for (long it = 0; it < iters; it++) {
#define STEP(v) v = v * b + c; FMA_KEEP(v)
        STEP(a0); STEP(a1); STEP(a2); STEP(a3); STEP(a4); STEP(a5);
        STEP(a6); STEP(a7); STEP(a8); STEP(a9); STEP(a10); STEP(a11);
#undef STEP
    }
    t = omp_get_wtime() - t;
    fma_vf z = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    FMA_KEEP(z);
    return 2.0 * FMA_LANES * 12 * iters / t;
}
#endif
