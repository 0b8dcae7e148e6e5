/* Exponential back-off with full jitter. */
#include "client/backoff.h"

#include <sys/random.h>
#include <time.h>

void backoff_rng_seed(backoff_rng *rng)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)rng;
    }
    rng->s = seed ? seed : UINT64_C(0x9E3779B97F4A7C15);
}

uint64_t backoff_rng_next(backoff_rng *rng)
{
    uint64_t x = rng->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng->s = x;
    return x * UINT64_C(0x2545F4914F6CDD1D);
}

int64_t backoff_delay_ms(backoff_rng *rng, unsigned attempt, int64_t base_ms, int64_t cap_ms)
{
    if (base_ms <= 0 || cap_ms <= 0)
        return 0;
    int64_t ceiling = base_ms;
    for (unsigned i = 0; i < attempt && ceiling < cap_ms; i++)
        ceiling *= 2;
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    return (int64_t)(backoff_rng_next(rng) % ((uint64_t)ceiling + 1));
}
