/* The hub's shared context: configuration, event loops, the store's executor, the connection
 * directory, TLS, policies, and the routing of work to the loop that holds a device. */
#ifndef IOTDM_HUB_HUB_H
#define IOTDM_HUB_HUB_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hub/core/dir.h"
#include "hub/core/loop.h"
#include "hub/core/work.h"
#include "hub/net/admission.h"
#include "hub/net/limits.h"
#include "hub/store/store.h"
#include "iotdm/result.h"

typedef struct hub_mqtt_conn hub_mqtt_conn;
typedef struct hub_http hub_http;
typedef struct hub_methods hub_methods;
typedef struct hub_dps hub_dps;
typedef struct hub_models hub_models;

#define HUB_MAX_LOOPS 64

typedef struct {
    char data_dir[512];
    char store[1024]; /* the store's location ("": DATA/hub.db); see hub_store_open */
    char node_id[64]; /* this node's name in a cluster ("": derived, hub.c node_id_of) */
    char hostname[256];
    char listen_addr[64];
    unsigned mqtt_port;
    unsigned https_port;
    unsigned threads;             /* event loops (0: one per CPU) */
    uint64_t telemetry_max_bytes; /* retained telemetry: its rows' share of the database */
    int64_t telemetry_max_age_ms; /* retained telemetry age */
    int64_t c2d_default_ttl_ms;   /* C2D messages without an explicit expiry */
    char web_dir[512];            /* dashboard static files ("" = none) */
    char models_dir[512];         /* DTDL interfaces served at /iotdm/models */
    char id_scope[64];            /* DPS ID scope ("" = the saved or a new one) */
    hub_net_limits limits;        /* connections, deadlines, buffers (net/limits.h) */
    uint64_t upload_max_bytes;    /* one blob upload */
    uint64_t upload_quota_bytes;  /* all uploads of one device */
    unsigned upload_max_files;    /* uploads kept per device */
    int64_t upload_retention_ms;  /* finished uploads are deleted after this */
    uint64_t disk_reserve_bytes;  /* below this much free space, data-growing writes are refused */
} hub_config;

typedef struct hub {
    hub_config cfg;
    hub_loop loops[HUB_MAX_LOOPS];
    unsigned nloops;
    hub_exec *exec;
    hub_dir *dir;
    hub_admission *admission;
    SSL_CTX *tls;         /* MQTT: asks for client certificates */
    SSL_CTX *https_tls;   /* HTTPS: asks per connection (net/httpd.c), for DPS X.509 */
    hub_policy *policies; /* loaded at start; read-only afterwards, so any thread may read */
    size_t npolicies;
    struct hub_events *events;
    hub_dps *dps;
    struct hub_cluster *cluster;   /* with a PostgreSQL store (cluster/cluster.h); else NULL */
    struct hub_jobs *jobs;         /* the jobs runner, on loop 0 (jobs/jobs.h) */
    hub_models *models;            /* read-only after start */
    struct event *housekeeping_ev; /* on loop 0 */
    struct event *sigterm_ev, *sigint_ev;
    atomic_bool stopping;
    int64_t started_ms;
} hub;

/* Lifecycle (hub.c). hub_init creates the data directory contents on first start and opens the
 * listeners; hub_run runs loop 0 on the calling thread and the others on their own until SIGTERM
 * or SIGINT. */
IOTDM_NODISCARD iotdm_result hub_init(hub *h, const hub_config *cfg);
IOTDM_NODISCARD iotdm_result hub_run(hub *h);
void hub_deinit(hub *h);

/* The policy of that name (a copy); false when there is none. Any thread. */
bool hub_policy_find(const hub *h, const char *name, hub_policy *out);

/* ---- routing work to the loop holding a device's connection (any loop's thread) ---- */

/* Sends a desired-properties notification if the device is connected and subscribed. Copies. */
void hub_route_notify_desired(hub *h, const char *device_id, const char *patch_json,
                              int64_t version);
/* Asks the device's connection, if any, to deliver its pending C2D messages. */
void hub_route_deliver_c2d(hub *h, const char *device_id);
/* Closes the device's connection, if any (disabled, deleted). */
void hub_route_drop(hub *h, const char *device_id, const char *reason);
/* The same for this node's connections only (the cluster's bus delivers with these); false when
 * no loop of this node holds the device. In a cluster, the functions above hand what no loop here
 * holds to the node that does. */
bool hub_route_notify_desired_local(hub *h, const char *device_id, const char *patch_json,
                                    int64_t version);
bool hub_route_deliver_c2d_local(hub *h, const char *device_id);
bool hub_route_drop_local(hub *h, const char *device_id, const char *reason);
/* A node of the cluster stopped announcing itself: mark the devices it held disconnected (with
 * their connection events), from loop 0, in bounded units. Any thread. */
void hub_devices_node_lost(hub *h, const char *node_id);
/* mqtt/connect.c: a connection on another node now holds client_id with this epoch; the older
 * connections of this node close. Any thread. */
void hub_mqtt_claimed_elsewhere(hub *h, const char *client_id, uint64_t epoch);

/* mqtt/session.c: per-loop MQTT state. */
IOTDM_NODISCARD iotdm_result hub_mqtt_loop_init(hub_loop *loop);
void hub_mqtt_loop_close_all(hub_loop *loop);
void hub_mqtt_loop_deinit(hub_loop *loop);
/* A connection of this loop by client id, if it is active and holds the directory entry. */
hub_mqtt_conn *hub_conn_find(hub_loop *loop, const char *client_id);
/* Sends a method request on a connection of this loop; false if it is not subscribed to methods
 * or its output is above the limit (the call then waits or fails like an offline device). */
bool hub_conn_send_method(hub_loop *loop, const char *device_id, const char *method,
                          const char *rid, const char *payload, size_t payload_len);
/* The routing tasks' ends, on the loop that holds the connection. */
void hub_conn_notify_desired_local(hub_loop *loop, const char *client_id, const char *text,
                                   size_t len, int64_t version);
void hub_conn_deliver_c2d_local(hub_loop *loop, const char *client_id);
void hub_conn_drop_local(hub_loop *loop, const char *client_id, const char *reason);
/* Counts of this loop's MQTT connections (for /iotdm/stats). */
size_t hub_mqtt_loop_connections(const hub_loop *loop);

#endif
