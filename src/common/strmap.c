/* String-keyed hash map with FNV-1a hashing; grows at load factor 1. */
#include "common/strmap.h"

#include <stdint.h>
#include <string.h>

#include "common/alloc.h"

typedef struct entry {
    struct entry *next;
    uint32_t hash;
    void *value;
    char key[];
} entry;

struct strmap {
    entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
};

static uint32_t hash_key(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

strmap *strmap_new(void)
{
    strmap *m = xcalloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->nbuckets = 64;
    m->buckets = xcalloc(m->nbuckets, sizeof *m->buckets);
    if (!m->buckets) {
        xfree(m);
        return NULL;
    }
    return m;
}

void strmap_free(strmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        entry *e = m->buckets[i];
        while (e) {
            entry *next = e->next;
            xfree(e);
            e = next;
        }
    }
    xfree(m->buckets);
    xfree(m);
}

static void grow(strmap *m)
{
    size_t n = m->nbuckets * 2;
    entry **b = xcalloc(n, sizeof *b);
    if (!b)
        return; /* keep working with longer chains */
    for (size_t i = 0; i < m->nbuckets; i++) {
        entry *e = m->buckets[i];
        while (e) {
            entry *next = e->next;
            size_t idx = e->hash & (n - 1);
            e->next = b[idx];
            b[idx] = e;
            e = next;
        }
    }
    xfree(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

static entry **find(const strmap *m, const char *key, uint32_t h)
{
    entry **pp = &m->buckets[h & (m->nbuckets - 1)];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
        pp = &(*pp)->next;
    return pp;
}

bool strmap_put(strmap *m, const char *key, void *value)
{
    uint32_t h = hash_key(key);
    entry **pp = find(m, key, h);
    if (*pp) {
        (*pp)->value = value;
        return true;
    }
    size_t klen = strlen(key);
    entry *e = xmalloc(sizeof *e + klen + 1);
    if (!e)
        return false;
    memcpy(e->key, key, klen + 1);
    e->hash = h;
    e->value = value;
    e->next = NULL;
    *pp = e;
    if (++m->count > m->nbuckets)
        grow(m);
    return true;
}

void *strmap_get(const strmap *m, const char *key)
{
    entry **pp = find(m, key, hash_key(key));
    return *pp ? (*pp)->value : NULL;
}

void *strmap_remove(strmap *m, const char *key)
{
    entry **pp = find(m, key, hash_key(key));
    entry *e = *pp;
    if (!e)
        return NULL;
    void *v = e->value;
    *pp = e->next;
    xfree(e);
    m->count--;
    return v;
}

size_t strmap_count(const strmap *m)
{
    return m->count;
}

void strmap_foreach(const strmap *m, void (*fn)(void *ctx, const char *key, void *value), void *ctx)
{
    for (size_t i = 0; i < m->nbuckets; i++)
        for (entry *e = m->buckets[i]; e; e = e->next)
            fn(ctx, e->key, e->value);
}
