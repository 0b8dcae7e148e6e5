/* Twin operations shared by the device (MQTT) and service (REST) sides, and the twin/device JSON.
 */
#ifndef IOTDM_HUB_TWIN_OPS_H
#define IOTDM_HUB_TWIN_OPS_H

#include <jansson.h>

#include "hub/hub.h"
#include "proto/twin.h"

/* Azure's etag forms: devices use base64 of a decimal counter, twins base64 of 8 big-endian bytes.
 */
void hub_device_etag(uint64_t counter, char out[32]);
void hub_twin_etag(uint64_t counter, char out[16]);
/* Parses an If-Match header value ('"*"', '*', '"<etag>"', '<etag>'). *out = 0 means "any".
 * Returns false when the value is not an etag this hub could have issued. */
bool hub_parse_device_if_match(const char *header, uint64_t *out);
bool hub_parse_twin_if_match(const char *header, uint64_t *out);

/* The registry's device JSON (docs/protocol.md §8.6). New reference. */
json_t *hub_device_to_json(const hub_device *d);
/* The device's view of its twin: {"desired":{..,"$version"},"reported":{..,"$version"}}. */
json_t *hub_twin_device_view(const hub_twin *t);
/* The same view built from the sections' stored texts without parsing them (a twin GET must not
 * cost a parse of tens of KB on the writer thread): each text must be one JSON object. Returns
 * a NUL-terminated string to xfree, or NULL when a text is not an object or out of memory. */
char *hub_twin_device_view_text(const char *desired, size_t desired_len, int64_t desired_version,
                                const char *reported, size_t reported_len, int64_t reported_version,
                                size_t *out_len);
/* The service view (§5.1): identity fields, tags, properties with $metadata and $version. */
json_t *hub_twin_service_view(const hub_device *d, const hub_twin *t);

/* ---- in units of work (store threads) ---- */

/* A device's reported patch (MQTT), already parsed (an object; its "$version" is ignored).
 * expected_version < 0 means none. On success the new reported $version is in *out_version and a
 * twin-change event is appended. Errors: IOTDM_E_MALFORMED / TOO_LARGE / TOO_DEEP (400),
 * PRECONDITION (412), NOT_FOUND, STORAGE; err says why. */
IOTDM_NODISCARD iotdm_result hub_twin_patch_reported(hub_store *store, const char *device_id,
                                                     const json_t *patch, int64_t expected_version,
                                                     int64_t *out_version, twin_error *err);

/* A service update (REST PATCH or PUT, DPS initial twins) of tags and/or desired. if_match 0 =
 * any. Appends the twin-change events, arranges for the device to be notified of desired changes
 * once w is durable (hub_work_after), and returns the new service view in *out_twin (may be NULL
 * when the caller wants none). */
IOTDM_NODISCARD iotdm_result hub_twin_update_service(hub_store *store, hub_work *w,
                                                     const char *device_id, const json_t *body,
                                                     bool replace, uint64_t if_match,
                                                     json_t **out_twin, twin_error *err);

/* Checks, without a store, that a hub_twin_update_service replace of body's tags and/or
 * properties.desired would be accepted: callers that write more than the twin in the same unit
 * check first, so that a bad twin changes nothing. */
IOTDM_NODISCARD iotdm_result hub_twin_check_replace(const json_t *body, twin_error *err);

#endif
