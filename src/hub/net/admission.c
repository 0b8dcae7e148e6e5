/* Connection admission: lock-free counters shared by every event loop.
 *
 * The global count is one atomic, raised with a compare-and-swap only while it is under the cap,
 * so concurrent accepts on several loops can never overshoot it.
 *
 * Unauthenticated connections are counted per source in a fixed table of HUB_ADMISSION_SLOTS
 * atomic counters indexed by a keyed hash of the source. The table never grows, so a flood from
 * any number of addresses costs no memory. A source is an IPv4 address, or an IPv6 /64 (one
 * subscriber usually holds a whole /64, so counting single IPv6 addresses would cap nothing);
 * IPv4-mapped IPv6 addresses count as their IPv4 address.
 *
 * Collisions: two sources whose hashes meet share one slot, and so share one pending budget. With
 * 4096 slots that is rare for legitimate sources, and the hash key is random per process, so a
 * peer cannot choose addresses that land on a victim's slot; the worst a collision does is refuse
 * an unauthenticated connection early, never admit more than the global cap. */
#include "hub/net/admission.h"

#include <netinet/in.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/alloc.h"
#include "hub/net/limits.h"

#define HUB_ADMISSION_SLOTS 4096u /* a power of two */

struct hub_admission {
    unsigned max_connections;
    unsigned max_pending_per_source;
    uint64_t key[2];
    atomic_uint connections;
    atomic_uint pending;
    atomic_uint slots[HUB_ADMISSION_SLOTS];
};

/* 0 = what the descriptor limit allows, keeping HUB_NET_DESCRIPTOR_RESERVE for everything else. */
static unsigned derived_max_connections(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 1u << 20;
    if (rl.rlim_cur <= 2 * HUB_NET_DESCRIPTOR_RESERVE)
        return (unsigned)(rl.rlim_cur / 2 > 0 ? rl.rlim_cur / 2 : 1);
    rlim_t n = rl.rlim_cur - HUB_NET_DESCRIPTOR_RESERVE;
    return n > (1u << 24) ? (1u << 24) : (unsigned)n;
}

hub_admission *hub_admission_new(unsigned max_connections, unsigned max_pending_per_source)
{
    hub_admission *a = xcalloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->max_connections = max_connections ? max_connections : derived_max_connections();
    a->max_pending_per_source = max_pending_per_source;
    if (RAND_bytes((unsigned char *)a->key, sizeof a->key) != 1) {
        /* Not fatal: the table still bounds memory; only collision targeting gets easier. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        a->key[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15u ^ (uint64_t)(uintptr_t)a;
        a->key[1] = (uint64_t)ts.tv_sec ^ 0xC2B2AE3D27D4EB4Fu;
    }
    atomic_init(&a->connections, 0);
    atomic_init(&a->pending, 0);
    for (unsigned i = 0; i < HUB_ADMISSION_SLOTS; i++)
        atomic_init(&a->slots[i], 0);
    return a;
}

void hub_admission_free(hub_admission *a)
{
    xfree(a);
}

/* A 64-bit finaliser (xor-shift-multiply rounds) over the source word mixed with a secret key. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDu;
    x ^= x >> 33;
    x *= 0xC4CEB9FE1A85EC53u;
    x ^= x >> 33;
    return x;
}

static uint32_t source_slot(const hub_admission *a, const struct sockaddr *addr)
{
    uint64_t word = 0;
    uint64_t family = 0;
    if (addr && addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        memcpy(&word, &in->sin_addr, 4);
        family = 4;
    } else if (addr && addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            memcpy(&word, &in6->sin6_addr.s6_addr[12], 4);
            family = 4;
        } else {
            memcpy(&word, in6->sin6_addr.s6_addr, 8); /* the /64 */
            family = 6;
        }
    }
    uint64_t h = mix64(word ^ a->key[0]);
    h = mix64(h ^ family ^ a->key[1]);
    return (uint32_t)(h & (HUB_ADMISSION_SLOTS - 1));
}

/* Adds one to *counter unless it is at max (0 = no cap); false when it was full. */
static bool take_below(atomic_uint *counter, unsigned max)
{
    unsigned now = atomic_load_explicit(counter, memory_order_relaxed);
    do {
        if (max && now >= max)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(counter, &now, now + 1, memory_order_acq_rel,
                                                    memory_order_relaxed));
    return true;
}

hub_admit_result hub_admission_enter(hub_admission *a, const struct sockaddr *addr,
                                     hub_admit_ticket *out)
{
    memset(out, 0, sizeof *out);
    if (!take_below(&a->connections, a->max_connections))
        return HUB_ADMIT_FULL;
    uint32_t slot = source_slot(a, addr);
    if (!take_below(&a->slots[slot], a->max_pending_per_source)) {
        atomic_fetch_sub_explicit(&a->connections, 1, memory_order_acq_rel);
        return HUB_ADMIT_SOURCE_FULL;
    }
    atomic_fetch_add_explicit(&a->pending, 1, memory_order_relaxed);
    out->source = slot;
    out->admitted = true;
    out->pending = true;
    return HUB_ADMIT_OK;
}

void hub_admission_authenticated(hub_admission *a, hub_admit_ticket *t)
{
    if (!a || !t->pending)
        return;
    t->pending = false;
    atomic_fetch_sub_explicit(&a->slots[t->source & (HUB_ADMISSION_SLOTS - 1)], 1,
                              memory_order_acq_rel);
    atomic_fetch_sub_explicit(&a->pending, 1, memory_order_relaxed);
}

void hub_admission_leave(hub_admission *a, hub_admit_ticket *t)
{
    if (!a)
        return;
    hub_admission_authenticated(a, t);
    if (t->admitted) {
        t->admitted = false;
        atomic_fetch_sub_explicit(&a->connections, 1, memory_order_acq_rel);
    }
}

void hub_admission_get_stats(hub_admission *a, hub_admission_stats *out)
{
    out->connections = atomic_load_explicit(&a->connections, memory_order_relaxed);
    out->pending = atomic_load_explicit(&a->pending, memory_order_relaxed);
    out->max_connections = a->max_connections;
    out->max_pending_per_source = a->max_pending_per_source;
}
