/* The hub's resource limits against hostile or broken peers (docs/hub.md "Connection limits").
 * Every limit a peer can push on has a default here and an option of the same name. */
#ifndef IOTDM_HUB_NET_LIMITS_H
#define IOTDM_HUB_NET_LIMITS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    unsigned max_connections; /* MQTT + HTTPS; 0 = the soft descriptor limit minus a reserve */
    unsigned max_pending_per_source; /* not yet authenticated, per source address */
    unsigned handshake_timeout_s;    /* accept to TLS done + first CONNECT / request headers */
    unsigned header_timeout_s;       /* one HTTP request's header block, from its first byte */
    unsigned request_timeout_s;      /* one HTTP request's body, from the end of its headers */
    unsigned upload_timeout_s;       /* the same for blob uploads */
    unsigned idle_timeout_s;         /* an HTTPS connection with no request in progress */
    unsigned stall_timeout_s;        /* unsent output above output_limit this long: closed */
    size_t output_limit;             /* unsent bytes above which a connection is not read */
    unsigned max_inflight;           /* one connection's requests waiting for storage */
    size_t body_memory;              /* request bodies held in memory, all connections of a loop */
} hub_net_limits;

#define HUB_NET_DEFAULT_MAX_PENDING_PER_SOURCE 128
#define HUB_NET_DEFAULT_HANDSHAKE_TIMEOUT_S    10
#define HUB_NET_DEFAULT_HEADER_TIMEOUT_S       10
#define HUB_NET_DEFAULT_REQUEST_TIMEOUT_S      60
#define HUB_NET_DEFAULT_UPLOAD_TIMEOUT_S       600
#define HUB_NET_DEFAULT_IDLE_TIMEOUT_S         120
#define HUB_NET_DEFAULT_STALL_TIMEOUT_S        30
#define HUB_NET_DEFAULT_OUTPUT_LIMIT           (1024 * 1024)
#define HUB_NET_DEFAULT_MAX_INFLIGHT           32
#define HUB_NET_DEFAULT_BODY_MEMORY            (256u * 1024 * 1024)
/* Descriptors kept free of connections for the store, logs, files and the listeners. */
#define HUB_NET_DESCRIPTOR_RESERVE 64

/* Fills in the defaults above (max_connections stays 0: derived at start). */
void hub_net_limits_defaults(hub_net_limits *l);

#endif
