/* Reconnect back-off: exponential with full jitter, from a per-client random generator. */
#ifndef IOTDM_CLIENT_BACKOFF_H
#define IOTDM_CLIENT_BACKOFF_H

#include <stdint.h>

/* xorshift64*: good enough to spread a fleet's reconnects; each client owns its state. */
typedef struct {
    uint64_t s;
} backoff_rng;

/* Seeds from getrandom(), falling back to the clock and the address of rng. */
void backoff_rng_seed(backoff_rng *rng);
uint64_t backoff_rng_next(backoff_rng *rng);

/* The delay before reconnect attempt `attempt` (0 for the first retry): uniformly random in
 * [0, min(cap_ms, base_ms * 2^attempt)] ("full jitter"), so that devices dropped together by a hub
 * restart do not come back together. */
int64_t backoff_delay_ms(backoff_rng *rng, unsigned attempt, int64_t base_ms, int64_t cap_ms);

#endif
