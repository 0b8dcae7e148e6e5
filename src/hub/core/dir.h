/* The connection directory: which event loop holds each identity's MQTT connection, so that a
 * method call, a desired-property notification or a C2D message arriving anywhere reaches it, and
 * so that a new connection of the same identity takes over from the old one (docs/hub.md
 * "Threads"). Kept behind this interface so that a cluster can put a cross-node directory here.
 * Thread-safe. */
#ifndef IOTDM_HUB_CORE_DIR_H
#define IOTDM_HUB_CORE_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hub_dir hub_dir;

typedef struct {
    unsigned loop;  /* index of the loop holding the connection */
    uint64_t epoch; /* the connection's claim number */
    void *conn;     /* the connection itself: dereferenced only on its own loop's thread, where
                       it stays valid while the entry names it (a connection releases its entry
                       before it is freed, on that thread) */
} hub_dir_entry;

hub_dir *hub_dir_new(void);
void hub_dir_free(hub_dir *d);

/* A new claim number, larger than every one given before, in this process and (being taken
 * from the clock) in earlier runs and on the other nodes of a cluster before this moment: the
 * store keeps the epoch of the connection whose state a device row holds. */
uint64_t hub_dir_next_epoch(hub_dir *d);
/* A claim made elsewhere (another node): later claims here get larger numbers. */
void hub_dir_observe_epoch(hub_dir *d, uint64_t epoch);

/* Makes (loop, epoch) the holder of client_id. Returns false when a connection with a larger
 * epoch already holds it (this one lost a race and must close). Otherwise *out_prev (may be NULL)
 * gets the previous holder, with epoch 0 when there was none. */
bool hub_dir_claim(hub_dir *d, const char *client_id, unsigned loop, uint64_t epoch, void *conn,
                   hub_dir_entry *out_prev);
/* Removes client_id if epoch still holds it; true when it did. */
bool hub_dir_release(hub_dir *d, const char *client_id, uint64_t epoch);
/* The current holder; false when none. */
bool hub_dir_lookup(hub_dir *d, const char *client_id, hub_dir_entry *out);
size_t hub_dir_count(hub_dir *d);
/* The connection holding client_id if it is on loop (NULL otherwise). For the loop's thread. */
void *hub_dir_local(hub_dir *d, const char *client_id, unsigned loop);

#endif
