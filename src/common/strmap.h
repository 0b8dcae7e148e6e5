/* A small string-keyed hash map (chained, power-of-two buckets). Keys are copied; values borrowed.
 */
#ifndef IOTDM_COMMON_STRMAP_H
#define IOTDM_COMMON_STRMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct strmap strmap;

strmap *strmap_new(void);
void strmap_free(strmap *map); /* frees the keys, not the values */
/* Sets key to value (replacing). Returns false on allocation failure. */
bool strmap_put(strmap *map, const char *key, void *value);
void *strmap_get(const strmap *map, const char *key);
/* Removes key; returns its value or NULL. */
void *strmap_remove(strmap *map, const char *key);
size_t strmap_count(const strmap *map);
/* Calls fn for every entry; fn must not modify the map. */
void strmap_foreach(const strmap *map, void (*fn)(void *ctx, const char *key, void *value),
                    void *ctx);

#endif
