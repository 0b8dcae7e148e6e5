/* Direct-method invocations in flight (azure-protocols.md §1.13, §4.5). */
#ifndef IOTDM_HUB_METHODS_H
#define IOTDM_HUB_METHODS_H

#include <stddef.h>
#include <stdint.h>

#include "hub/hub.h"

#define HUB_METHOD_DEFAULT_RESPONSE_TIMEOUT_S 30
#define HUB_METHOD_MIN_TIMEOUT_S              5
#define HUB_METHOD_MAX_TIMEOUT_S              300

/* Called exactly once per invocation (unless cancelled): r is IOTDM_OK with the device's status
 * and JSON payload (payload may be empty), IOTDM_E_NOT_ONLINE, or IOTDM_E_TIMEOUT. */
typedef void (*hub_method_done)(void *ctx, iotdm_result r, int status, const char *payload,
                                size_t payload_len);

hub_methods *hub_methods_new(hub *h);
void hub_methods_free(hub_methods *m); /* pending calls end with IOTDM_E_TIMEOUT */

/* payload: JSON text sent as the request body ("null" when there is none). When the device is not
 * connected and subscribed, waits up to connect_timeout_s for it. *out_id identifies the call. */
iotdm_result hub_methods_invoke(hub_methods *m, const char *device_id, const char *method,
                                const char *payload, size_t payload_len, int response_timeout_s,
                                int connect_timeout_s, hub_method_done done, void *ctx,
                                uint64_t *out_id);
/* Forgets a call without calling done (its caller went away). */
void hub_methods_cancel(hub_methods *m, uint64_t id);

/* From the MQTT side. */
void hub_methods_on_subscribed(hub_methods *m, const char *device_id);
void hub_methods_on_response(hub_methods *m, const char *device_id, const char *rid, size_t rid_len,
                             int status, const char *payload, size_t payload_len);

#endif
