/* Refusals: every connection, packet or request the hub turns away is counted by kind and logged
 * at a limited rate, so that a flood of bad input cannot flood the log (docs/hub.md).
 * Process-wide and thread-safe: the counters are atomics, the rate limit a per-kind window. */
#ifndef IOTDM_HUB_NET_REFUSALS_H
#define IOTDM_HUB_NET_REFUSALS_H

#include <stdint.h>

/* X(id, name): name is what the log line and GET /iotdm/stats call the kind. */
#define HUB_REFUSAL_KINDS(X)                                                                       \
    X(CONN_LIMIT, "connection_limit")         /* the global connection cap */                      \
    X(SOURCE_LIMIT, "source_limit")           /* too many unauthenticated from one address */      \
    X(DESCRIPTORS, "descriptors")             /* accept() failed: out of file descriptors */       \
    X(HANDSHAKE, "handshake")                 /* TLS handshake failed or timed out */              \
    X(HEADER_TIMEOUT, "header_timeout")       /* request headers or CONNECT did not arrive */      \
    X(REQUEST_TIMEOUT, "request_timeout")     /* a body did not arrive in time */                  \
    X(IDLE, "idle")                           /* idle keep-alive connection closed */              \
    X(STALLED, "stalled")                     /* output not read for stall-timeout */              \
    X(HTTP_BAD_REQUEST, "http_bad_request")   /* unparsable or unsupported HTTP */                 \
    X(HTTP_UNAUTHORIZED, "http_unauthorized") /* missing or wrong credentials */                   \
    X(HTTP_TOO_LARGE, "http_too_large")       /* a body over its route's limit */                  \
    X(HTTP_NOT_FOUND, "http_not_found")       /* no such route or resource */                      \
    X(MQTT_AUTH, "mqtt_auth")                 /* CONNECT refused */                                \
    X(MQTT_PROTOCOL, "mqtt_protocol")         /* a packet or topic the hub does not serve */       \
    X(DPS, "dps")                             /* a provisioning request refused */                 \
    X(QUOTA, "quota")                         /* a per-device quota reached */                     \
    X(DISK_FULL, "disk_full")                 /* a write refused for lack of disk space */         \
    X(OVERLOAD, "overload")                   /* memory for bodies full: work refused */           \
    X(THROTTLED, "throttled")                 /* over a per-device rate: 429, then not read */

typedef enum {
#define HUB_REFUSAL_ENUM(id, name) HUB_REFUSED_##id,
    HUB_REFUSAL_KINDS(HUB_REFUSAL_ENUM)
#undef HUB_REFUSAL_ENUM
        HUB_REFUSED_COUNT_
} hub_refusal;

/* Lines per second logged for one kind before the rest are only counted. */
#define HUB_REFUSAL_LOG_PER_S 5

/* Counts one refusal of kind and logs "WARN component: message" unless this kind already logged
 * HUB_REFUSAL_LOG_PER_S lines in the current second. Never logs secrets: callers pass none. */
void hub_refused(hub_refusal kind, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Logs one summary line per kind that had suppressed lines since the last call ("suppressed N
 * similar messages kind=…"); the hub calls it every 10 seconds. */
void hub_refusals_summarize(void);

uint64_t hub_refusal_count(hub_refusal kind);
const char *hub_refusal_name(hub_refusal kind);

#endif
