/* The hub's shared context: event loop, store, TLS, live connections, group commit, live events. */
#ifndef IOTDM_HUB_HUB_H
#define IOTDM_HUB_HUB_H

#include <event2/event.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/strmap.h"
#include "hub/store/store.h"
#include "iotdm/result.h"

typedef struct hub_mqtt_conn hub_mqtt_conn;
typedef struct hub_http hub_http;
typedef struct hub_methods hub_methods;
typedef struct hub_events hub_events;
typedef struct hub_dps hub_dps;

typedef struct {
    char data_dir[512];
    char hostname[256];
    char listen_addr[64];
    unsigned mqtt_port;
    unsigned https_port;
    uint64_t telemetry_max_bytes; /* retained telemetry bodies */
    int64_t telemetry_max_age_ms; /* retained telemetry age */
    int64_t c2d_default_ttl_ms;   /* C2D messages without an explicit expiry */
    char web_dir[512];            /* dashboard static files ("" = none) */
    char models_dir[512];         /* DTDL interfaces served at /iotdm/models */
    char id_scope[64];            /* DPS ID scope ("" = the saved or a new one) */
} hub_config;

/* Work to do once the current group commit is durable (acknowledgements, notifications). */
typedef void (*hub_after_commit_fn)(void *ctx, iotdm_result commit_result);

typedef struct {
    hub_after_commit_fn fn;
    void *ctx;
} hub_deferred;

typedef struct hub {
    hub_config cfg;
    struct event_base *base;
    hub_store *store;
    SSL_CTX *tls;       /* MQTT: asks for client certificates */
    SSL_CTX *https_tls; /* HTTPS: asks per connection (http/server.c), for DPS X.509 */
    strmap *conns;      /* client id ("dev" or "dev/mod") -> hub_mqtt_conn*, the live connection */
    hub_http *http;
    hub_methods *methods;
    hub_events *events;
    hub_dps *dps; /* device provisioning (dps/) */
    struct evconnlistener *mqtt_listener;
    struct event *commit_ev;
    struct event *synced_ev; /* the store's sync worker finished */
    struct event *housekeeping_ev;
    struct event *sigterm_ev, *sigint_ev;
    /* Pipelined group commit (hub.c): the open epoch gathers writes and their deferred work; once
     * committed it is sealed and synced by the worker while the next epoch opens. At most one
     * epoch is sealed at a time, so completions run in order. */
    uint64_t epoch;         /* the open epoch's number */
    hub_deferred *deferred; /* the open epoch's work */
    size_t deferred_len, deferred_cap;
    hub_deferred *sealed; /* the sealed epoch's work, run when its sync finishes */
    size_t sealed_len, sealed_cap;
    bool sync_in_flight;
    uint64_t commits, committed_writes;
} hub;

/* Lifecycle (hub.c). hub_init creates the data directory contents on first start. */
iotdm_result hub_init(hub *h, const hub_config *cfg);
iotdm_result hub_run(hub *h); /* until SIGTERM/SIGINT */
void hub_deinit(hub *h);

/* Group commit: call after store writes whose acknowledgement must wait for durability. fn runs
 * once everything written so far is committed and on the disk (a later loop pass), with the
 * result; ctx must stay valid until then. Callbacks run in the order they were registered. */
void hub_after_commit(hub *h, hub_after_commit_fn fn, void *ctx);
/* Asks for a commit at the end of this loop pass, with nothing waiting on it. */
void hub_request_commit(hub *h);
/* Commits now and waits for the disk (for low-rate paths such as the service API). */
iotdm_result hub_commit_now(hub *h);

/* Live connections (mqtt/session.c). */
hub_mqtt_conn *hub_conn_find(hub *h, const char *device_id);
iotdm_result hub_mqtt_listen(hub *h);
void hub_mqtt_close_all(hub *h);
/* Closes a device's live connection (disabled, deleted). */
void hub_conn_drop(hub *h, const char *device_id, const char *reason);
/* Sends a desired-properties notification to a connected, subscribed device. */
void hub_conn_notify_desired(hub *h, const char *device_id, const json_t *patch, int64_t version);
/* Tries to deliver pending C2D messages to a connected, subscribed device. */
void hub_conn_deliver_c2d(hub *h, const char *device_id);
/* Sends a method request to a connected device subscribed to methods; false if there is none. */
bool hub_conn_send_method(hub *h, const char *device_id, const char *method, const char *rid,
                          const char *payload, size_t payload_len);

#endif
