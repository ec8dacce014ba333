/* rng.h — a counter-based generator: every random number is a hash of (seed,
 * stream, counter), so draws depend only on the seed and what they are for,
 * never on rank layout or thread scheduling. SplitMix64's finaliser, chained. */
#ifndef KM_RNG_H
#define KM_RNG_H
#include <stdint.h>

enum { KM_STREAM_RANDOM = 1, KM_STREAM_KMEANSPP = 2 };

static inline uint64_t km_mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t km_rand(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return km_mix64(km_mix64(km_mix64(seed) ^ stream) ^ counter);
}

/* Uniform in [0, n) (multiply-shift; bias < n / 2^64). */
static inline uint64_t km_rand_below(uint64_t seed, uint64_t stream, uint64_t counter,
                                     uint64_t n)
{
    return (uint64_t)(((unsigned __int128)km_rand(seed, stream, counter) * n) >> 64);
}
#endif
