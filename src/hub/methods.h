/* Direct-method invocations in flight (docs/protocol.md: direct methods). A call lives on the loop
 * of the service request that made it; the request goes to the loop that holds the device's
 * connection, and the device's answer comes back to the calling loop, which the request id
 * names. */
#ifndef IOTDM_HUB_METHODS_H
#define IOTDM_HUB_METHODS_H

#include <stddef.h>
#include <stdint.h>

#include "hub/hub.h"

#define HUB_METHOD_DEFAULT_RESPONSE_TIMEOUT_S 30
#define HUB_METHOD_MIN_TIMEOUT_S              5
#define HUB_METHOD_MAX_TIMEOUT_S              300
#define HUB_METHOD_MAX_PENDING                10000 /* calls in flight per loop */

/* Called exactly once per invocation (unless cancelled), on the calling loop: r is IOTDM_OK with
 * the device's status and JSON payload (payload may be empty), IOTDM_E_NOT_ONLINE, or
 * IOTDM_E_TIMEOUT. */
typedef void (*hub_method_done)(void *ctx, iotdm_result r, int status, const char *payload,
                                size_t payload_len);

hub_methods *hub_methods_new(hub_loop *loop);
void hub_methods_free(hub_methods *m); /* pending calls end with IOTDM_E_TIMEOUT */

/* payload: JSON text sent as the request body ("null" when there is none). When the device is not
 * connected and subscribed, waits up to connect_timeout_s for it (0: fails at once with
 * IOTDM_E_NOT_ONLINE, reported through done). *out_id identifies the call for cancel.
 * IOTDM_E_QUOTA when the loop has HUB_METHOD_MAX_PENDING calls in flight. */
IOTDM_NODISCARD iotdm_result hub_methods_invoke(hub_methods *m, const char *device_id,
                                                const char *method, const char *payload,
                                                size_t payload_len, int response_timeout_s,
                                                int connect_timeout_s, hub_method_done done,
                                                void *ctx, uint64_t *out_id);
/* Forgets a call without calling done (its caller went away). */
void hub_methods_cancel(hub_methods *m, uint64_t id);

/* From the loop of a device's connection (any loop): the device subscribed to methods (every loop
 * retries its waiting calls for it), and the device answered (routed to the calling loop). */
void hub_methods_subscribed(hub *h, const char *device_id);
/* The same for this node's loops only (a subscription on another node, from the cluster's bus). */
void hub_methods_subscribed_local(hub *h, const char *device_id);
void hub_methods_response(hub *h, const char *device_id, const char *rid, size_t rid_len,
                          int status, const char *payload, size_t payload_len);

/* ---- across the cluster (cluster/cluster.h), from the bus thread ---- */

/* The answer to call_id of this node, from the node that made it for the device. */
void hub_methods_remote_result(hub *h, uint64_t call_id, iotdm_result r, int status,
                               const char *payload, size_t len);
/* Another node's call (origin, call_id) for a device of this node: made here, answered with
 * hub_cluster_method_response. */
void hub_methods_remote_invoke(hub *h, const char *origin, uint64_t call_id, const char *device_id,
                               const char *method, const char *payload, size_t len,
                               int response_timeout_s);

#endif
