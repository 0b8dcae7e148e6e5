/* Device-to-cloud telemetry and cloud-to-device messages. */
#ifndef IOTDM_TELEMETRY_H
#define IOTDM_TELEMETRY_H

#include <stddef.h>

#include "iotdm/client.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An application property, or a system property with its wire name ("$.ct", "$.ce", "$.mid"). */
typedef struct {
    const char *name;
    const char *value;
} iotdm_property;

/* Queues a telemetry message (QoS 1). While offline it waits in the outbox, which is bounded by
 * outbox_max_bytes and telemetry_max_age_s: when full, the oldest telemetry is dropped first
 * (reported properties are never dropped) and counted in iotdm_outbox_stats.telemetry_dropped.
 * component, when not NULL, is the PnP component ($.sub). Returns IOTDM_E_TOO_LARGE over 256 KB. */
IOTDM_NODISCARD iotdm_result iotdm_telemetry_send(iotdm_client *client, const void *body,
                                                  size_t len, const iotdm_property *props,
                                                  size_t nprops, const char *component);

/* Cloud-to-device messages: body and properties are valid during the call. The message is
 * acknowledged (completed) when the callback returns. */
typedef void (*iotdm_c2d_fn)(void *ctx, const void *body, size_t len, const iotdm_property *props,
                             size_t nprops);
IOTDM_NODISCARD iotdm_result iotdm_c2d_on_message(iotdm_client *client, iotdm_c2d_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
