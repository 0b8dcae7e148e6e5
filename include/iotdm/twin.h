/* Device twin: reported properties through the durable outbox, desired properties in order. */
#ifndef IOTDM_TWIN_H
#define IOTDM_TWIN_H

#include <stdbool.h>
#include <stdint.h>

#include "iotdm/client.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Queues a reported-properties patch (a JSON object as text; null deletes a member). It is
 * written to the outbox before this returns, survives restarts and outages, keeps its order
 * relative to other patches, and is retried until the hub acknowledges it. Returns
 * IOTDM_E_MALFORMED for text that is not a JSON object, IOTDM_E_TOO_LARGE over Azure's limits. */
IOTDM_NODISCARD iotdm_result iotdm_twin_report(iotdm_client *client, const char *json_patch);

/* Desired properties that no capability handler claims (see handler.h). json is the patch as the
 * hub sent it (or the whole desired document when full is true, after a (re)connect or a version
 * gap), version its $version. Called one patch at a time, in version order, stale ones dropped. */
typedef void (*iotdm_desired_fn)(void *ctx, const char *json, int64_t version, bool full);
IOTDM_NODISCARD iotdm_result iotdm_twin_on_desired(iotdm_client *client, iotdm_desired_fn fn,
                                                   void *ctx);

/* The last desired document received (JSON text, caller frees with iotdm_free), or NULL. */
char *iotdm_twin_desired_copy(iotdm_client *client);

/* Frees strings the library returned. */
void iotdm_free(void *ptr);

#ifdef __cplusplus
}
#endif

#endif
