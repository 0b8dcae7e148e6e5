/* The cluster: several hub nodes sharing one PostgreSQL store (docs/cluster.md).
 *
 * Each node runs one bus thread with a PostgreSQL connection of its own. Through it the node
 * - announces itself (cluster_nodes, a heartbeat every HUB_CLUSTER_HEARTBEAT_MS) and notices nodes
 *   that stopped announcing: their devices are marked disconnected by whichever node removes
 *   them first;
 * - sends work to the node holding a device's connection (the device row names it: conn_node):
 *   a desired-property notification, a C2D wake-up, a drop, a direct-method request, and the
 *   method's response back to the node that made the call. The message waits in cluster_inbox (an
 *   unlogged table: transient, gone with a crash of the server, which the callers' timeouts
 *   cover) and a NOTIFY on the target node's channel wakes it;
 * - broadcasts small facts on the channel iotdm_bus: a device claimed by a connection (older
 *   connections anywhere close: one connection per device across the cluster), a device that
 *   subscribed to methods (calls waiting for it anywhere retry), and events committed (every
 *   node's event streams move on);
 * - shares the hub's identity: the CA, the server certificate and key and the DPS ID scope are
 *   kept in cluster_files, so every node presents the same certificate.
 * Everything a loop hands to the cluster is queued and sent by the bus thread: no loop waits for
 * the database. A message that cannot be sent (the database is down) is dropped and logged; what
 * depends on it (a method call) runs into its own timeout. */
#ifndef IOTDM_HUB_CLUSTER_H
#define IOTDM_HUB_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iotdm/result.h"

typedef struct hub hub;
typedef struct hub_cluster hub_cluster;

#define HUB_CLUSTER_NODE_ID_MAX  64
#define HUB_CLUSTER_HEARTBEAT_MS 2000
/* A node whose heartbeat is older than this is taken for dead. */
#define HUB_CLUSTER_NODE_EXPIRY_MS 10000
/* A hole in the event sequence (a group another node has not committed yet) holds the event
 * streams back at most this long; then it is taken for a rolled-back group and skipped. */
#define HUB_CLUSTER_EVENT_GAP_MS 2000

/* Connects the bus (conninfo: the store's PostgreSQL URL) for node node_id. Call before the
 * loops start; the bus thread starts with hub_cluster_run. */
IOTDM_NODISCARD iotdm_result hub_cluster_open(hub *h, const char *conninfo, const char *node_id,
                                              hub_cluster **out);
/* Before the TLS set-up: writes the identity files the cluster has into data_dir (replacing the
 * node's own), so that they are used from the start. */
IOTDM_NODISCARD iotdm_result hub_cluster_pull_identity(hub_cluster *c, const char *data_dir);
/* After it: offers this node's identity files to the cluster; the first node's are kept. *changed
 * is true when another node's won meanwhile (both started on empty data): they were written over
 * this node's, which must then restart to use them. */
IOTDM_NODISCARD iotdm_result hub_cluster_push_identity(hub_cluster *c, const char *data_dir,
                                                       bool *changed);
/* Starts the bus thread (announces the node, listens). */
IOTDM_NODISCARD iotdm_result hub_cluster_run(hub_cluster *c);
/* Stops the thread and removes the node's announcement; what is handed to the cluster from then
 * on is dropped. hub_cluster_close frees it (stopping it first if need be). NULL is allowed. */
void hub_cluster_stop(hub_cluster *c);
void hub_cluster_close(hub_cluster *c);

const char *hub_cluster_node_id(const hub_cluster *c);
/* Whether the bus is connected and heard from the database within the expiry (for /iotdm/health
 * and /iotdm/stats). Any thread. */
bool hub_cluster_healthy(hub_cluster *c);
/* Nodes alive at the last heartbeat (this one included). Any thread. */
unsigned hub_cluster_nodes(hub_cluster *c);

/* What waits for the bus thread, and how much was dropped for lack of room (at most 100,000
 * messages and 64 MiB wait). Any thread. */
void hub_cluster_queue_stats(hub_cluster *c, size_t *out_queued, size_t *out_bytes,
                             size_t *out_dropped);

/* ---- from the loops (any thread): queued, never blocking ---- */

/* Work for the node holding device_id's connection, if another node holds it (else nothing). */
void hub_cluster_notify_desired(hub_cluster *c, const char *device_id, const char *patch,
                                size_t len, int64_t version);
void hub_cluster_deliver_c2d(hub_cluster *c, const char *device_id);
void hub_cluster_drop(hub_cluster *c, const char *device_id, const char *reason);
/* A direct method for the node holding device_id. The answer comes back through
 * hub_methods_remote_result with call_id: the device's, or IOTDM_E_NOT_ONLINE at once when no
 * other node holds the device (or it is not subscribed there). */
void hub_cluster_method_request(hub_cluster *c, uint64_t call_id, const char *device_id,
                                const char *method, const char *payload, size_t len,
                                int response_timeout_s);

/* The answer of a direct method that origin's node asked this node to make (call_id is
 * origin's): the device's status and payload (r IOTDM_OK), or why there is none. */
void hub_cluster_method_response(hub_cluster *c, const char *origin, uint64_t call_id,
                                 iotdm_result r, int status, const char *payload, size_t len);

/* Broadcasts: a connection with this epoch now holds device_id (older ones close wherever they
 * are); the device subscribed to methods; events up to seq were committed by this node. */
void hub_cluster_claimed(hub_cluster *c, const char *device_id, uint64_t epoch);
void hub_cluster_methods_subscribed(hub_cluster *c, const char *device_id);
void hub_cluster_events_committed(hub_cluster *c, int64_t seq);

#endif
