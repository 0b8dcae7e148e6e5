/* Connection admission: a global cap on connections and a per-source cap on connections that
 * have not authenticated yet. Shared by every event loop; thread-safe. */
#ifndef IOTDM_HUB_NET_ADMISSION_H
#define IOTDM_HUB_NET_ADMISSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct hub_admission hub_admission;

/* What a connection holds while it is admitted. Zero-initialised means "holds nothing". */
typedef struct {
    uint32_t source; /* hash slot of the source address */
    bool admitted;   /* counted in the global total */
    bool pending;    /* counted as unauthenticated for its source */
} hub_admit_ticket;

typedef enum {
    HUB_ADMIT_OK = 0,
    HUB_ADMIT_FULL,        /* the global cap is reached */
    HUB_ADMIT_SOURCE_FULL, /* the source has too many unauthenticated connections */
} hub_admit_result;

/* NULL when out of memory. max_pending_per_source 0 means no per-source cap. */
hub_admission *hub_admission_new(unsigned max_connections, unsigned max_pending_per_source);
void hub_admission_free(hub_admission *a);

/* A new connection from addr: on HUB_ADMIT_OK *out holds a global slot and a pending slot of its
 * source; otherwise *out holds nothing and the caller closes the socket. */
hub_admit_result hub_admission_enter(hub_admission *a, const struct sockaddr *addr,
                                     hub_admit_ticket *out);
/* The connection authenticated: it leaves its source's pending count (idempotent). */
void hub_admission_authenticated(hub_admission *a, hub_admit_ticket *t);
/* The connection closed: releases what the ticket holds (idempotent). */
void hub_admission_leave(hub_admission *a, hub_admit_ticket *t);

typedef struct {
    unsigned connections; /* admitted now */
    unsigned pending;     /* of which unauthenticated */
    unsigned max_connections;
    unsigned max_pending_per_source;
} hub_admission_stats;
void hub_admission_get_stats(hub_admission *a, hub_admission_stats *out);

#endif
