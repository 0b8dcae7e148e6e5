/* Refusal counters and rate-limited refusal logging, safe from any thread.
 *
 * Each kind has a window word: the current second (monotonic clock) in the high 32 bits and the
 * lines logged in that second in the low 32 bits, advanced with one compare-and-swap. Two threads
 * therefore can never both take the last line of a second, and a new second starts its count
 * exactly once. Lines over the budget are counted in `suppressed` until the next summary. */
#include "hub/net/refusals.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "common/log.h"

typedef struct {
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t window; /* second << 32 | lines logged in it */
    atomic_uint_fast64_t suppressed;
} refusal_kind;

static refusal_kind kinds[HUB_REFUSED_COUNT_];

static const char *const kind_names[] = {
#define HUB_REFUSAL_NAME(id, name) name,
    HUB_REFUSAL_KINDS(HUB_REFUSAL_NAME)
#undef HUB_REFUSAL_NAME
};

static uint64_t now_second(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec & 0xFFFFFFFFu;
}

/* True when this refusal may be logged: fewer than HUB_REFUSAL_LOG_PER_S lines this second. */
static bool take_line(refusal_kind *k)
{
    uint64_t sec = now_second();
    uint64_t w = atomic_load_explicit(&k->window, memory_order_relaxed);
    for (;;) {
        uint64_t next;
        if (w >> 32 != sec)
            next = sec << 32 | 1;
        else if ((w & 0xFFFFFFFFu) < HUB_REFUSAL_LOG_PER_S)
            next = w + 1;
        else
            return false;
        if (atomic_compare_exchange_weak_explicit(&k->window, &w, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
}

void hub_refused(hub_refusal kind, const char *component, const char *fmt, ...)
{
    if ((unsigned)kind >= HUB_REFUSED_COUNT_)
        return;
    refusal_kind *k = &kinds[kind];
    atomic_fetch_add_explicit(&k->count, 1, memory_order_relaxed);
    if (!take_line(k)) {
        atomic_fetch_add_explicit(&k->suppressed, 1, memory_order_relaxed);
        return;
    }
    if (!log_enabled(LOG_LVL_WARN))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_write(LOG_LVL_WARN, component, "%s kind=%s", msg, kind_names[kind]);
}

void hub_refusals_summarize(void)
{
    for (unsigned i = 0; i < HUB_REFUSED_COUNT_; i++) {
        uint64_t n = atomic_exchange_explicit(&kinds[i].suppressed, 0, memory_order_relaxed);
        if (n)
            log_warn("hub", "suppressed %llu similar messages kind=%s", (unsigned long long)n,
                     kind_names[i]);
    }
}

uint64_t hub_refusal_count(hub_refusal kind)
{
    if ((unsigned)kind >= HUB_REFUSED_COUNT_)
        return 0;
    return atomic_load_explicit(&kinds[kind].count, memory_order_relaxed);
}

const char *hub_refusal_name(hub_refusal kind)
{
    return (unsigned)kind < HUB_REFUSED_COUNT_ ? kind_names[kind] : "unknown";
}
