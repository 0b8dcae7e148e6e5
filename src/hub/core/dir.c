/* The connection directory: a string map per shard, each behind its own mutex. */
#include "hub/core/dir.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "common/alloc.h"
#include "common/strmap.h"
#include "common/timeutil.h"

#define DIR_SHARDS 16

typedef struct {
    pthread_mutex_t mu;
    strmap *map; /* client id -> hub_dir_entry* */
} dir_shard;

struct hub_dir {
    dir_shard shards[DIR_SHARDS];
    atomic_uint_fast64_t next_epoch;
};

static dir_shard *shard_of(hub_dir *d, const char *key)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 16777619u;
    return &d->shards[h % DIR_SHARDS];
}

hub_dir *hub_dir_new(void)
{
    hub_dir *d = xcalloc(1, sizeof *d);
    if (!d)
        return NULL;
    for (size_t i = 0; i < DIR_SHARDS; i++) {
        pthread_mutex_init(&d->shards[i].mu, NULL);
        d->shards[i].map = strmap_new();
        if (!d->shards[i].map) {
            hub_dir_free(d);
            return NULL;
        }
    }
    /* 16 bits of claims per millisecond of wall clock: larger than any epoch of an earlier run
     * unless the clock went back, in which case an old row's state may win once. */
    atomic_store(&d->next_epoch, (uint64_t)time_now_ms() << 16);
    return d;
}

static void free_entry(void *ctx, const char *key, void *value)
{
    (void)ctx;
    (void)key;
    xfree(value);
}

void hub_dir_free(hub_dir *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < DIR_SHARDS; i++) {
        if (d->shards[i].map) {
            strmap_foreach(d->shards[i].map, free_entry, NULL);
            strmap_free(d->shards[i].map);
        }
        pthread_mutex_destroy(&d->shards[i].mu);
    }
    xfree(d);
}

/* A hybrid clock: the wall clock in the high bits, a counter below, never going back. Claims on
 * different nodes of a cluster are then ordered as they happened (to the clocks' agreement), and
 * hub_dir_observe_epoch keeps a node ahead of every claim it has heard of. */
uint64_t hub_dir_next_epoch(hub_dir *d)
{
    uint64_t cur = atomic_load(&d->next_epoch), next;
    do {
        uint64_t clock = (uint64_t)time_now_ms() << 16;
        next = clock > cur ? clock : cur + 1;
    } while (!atomic_compare_exchange_weak(&d->next_epoch, &cur, next));
    return next;
}

void hub_dir_observe_epoch(hub_dir *d, uint64_t epoch)
{
    uint64_t cur = atomic_load(&d->next_epoch);
    while (cur < epoch && !atomic_compare_exchange_weak(&d->next_epoch, &cur, epoch))
        ;
}

bool hub_dir_claim(hub_dir *d, const char *client_id, unsigned loop, uint64_t epoch, void *conn,
                   hub_dir_entry *out_prev)
{
    dir_shard *s = shard_of(d, client_id);
    hub_dir_entry prev = {0, 0, NULL};
    bool ok = true;
    pthread_mutex_lock(&s->mu);
    hub_dir_entry *e = strmap_get(s->map, client_id);
    if (e && e->epoch > epoch) {
        ok = false;
    } else if (e) {
        prev = *e;
        e->loop = loop;
        e->epoch = epoch;
        e->conn = conn;
    } else {
        e = xmalloc(sizeof *e);
        if (e) {
            e->loop = loop;
            e->epoch = epoch;
            e->conn = conn;
            if (!strmap_put(s->map, client_id, e)) {
                xfree(e);
                ok = false;
            }
        } else {
            ok = false;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (out_prev)
        *out_prev = prev;
    return ok;
}

bool hub_dir_release(hub_dir *d, const char *client_id, uint64_t epoch)
{
    dir_shard *s = shard_of(d, client_id);
    bool released = false;
    pthread_mutex_lock(&s->mu);
    hub_dir_entry *e = strmap_get(s->map, client_id);
    if (e && e->epoch == epoch) {
        strmap_remove(s->map, client_id);
        xfree(e);
        released = true;
    }
    pthread_mutex_unlock(&s->mu);
    return released;
}

bool hub_dir_lookup(hub_dir *d, const char *client_id, hub_dir_entry *out)
{
    dir_shard *s = shard_of(d, client_id);
    pthread_mutex_lock(&s->mu);
    hub_dir_entry *e = strmap_get(s->map, client_id);
    if (e)
        *out = *e;
    pthread_mutex_unlock(&s->mu);
    return e != NULL;
}

size_t hub_dir_count(hub_dir *d)
{
    size_t n = 0;
    for (size_t i = 0; i < DIR_SHARDS; i++) {
        pthread_mutex_lock(&d->shards[i].mu);
        n += strmap_count(d->shards[i].map);
        pthread_mutex_unlock(&d->shards[i].mu);
    }
    return n;
}

void *hub_dir_local(hub_dir *d, const char *client_id, unsigned loop)
{
    hub_dir_entry e;
    return hub_dir_lookup(d, client_id, &e) && e.loop == loop ? e.conn : NULL;
}
