/* Azure IoT Hub and DPS MQTT names: topics, filters, CONNECT user names, property bags
 * (docs/protocol.md; the sections cited below are its own). */
#ifndef IOTDM_PROTO_AZURE_TOPICS_H
#define IOTDM_PROTO_AZURE_TOPICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iotdm/result.h"
#include "proto/mqtt.h"

/* A range inside the caller's input; never NUL-terminated. */
typedef struct {
    const char *ptr;
    size_t len;
} az_span;

/* Longest device/module id (§6.3). */
#define AZ_MAX_ID_LEN 128

/* What a device publishes. */
typedef enum {
    AZ_PUB_INVALID = 0,
    AZ_PUB_TELEMETRY,
    AZ_PUB_TWIN_GET,
    AZ_PUB_TWIN_PATCH_REPORTED,
    AZ_PUB_METHOD_RESPONSE,
    AZ_PUB_DPS_REGISTER,
    AZ_PUB_DPS_STATUS
} az_pub_kind;

typedef struct {
    az_pub_kind kind;
    az_span device_id;    /* telemetry only: from the topic */
    az_span module_id;    /* telemetry only: empty for devices */
    az_span property_bag; /* telemetry: the raw bag (may be empty); trailing '/' removed */
    az_span rid;      /* twin/method/DPS: the $rid value as sent (still encoded, echo verbatim) */
    bool has_version; /* twin PATCH: optional &$version= */
    int64_t version;
    int status;           /* method response status, 0..65535 */
    az_span operation_id; /* DPS status query */
} az_publish_topic;

/* Parses a device->hub PUBLISH topic (§4.1, §4.3, §4.5, §5.2, §5.3, §7.4), tolerant of every
 * variant of §4.3 and §9.2: trailing slash or not after events, a trailing '/' after the bag, an
 * empty bag, '$' written as %24 in query keys, query keys in any order, unknown keys. Twin and
 * method topics need the "/?" form and a non-empty $rid; DPS $rid is optional (empty span when
 * absent), the DPS status query needs operationId. The property bag is neither decoded nor
 * validated here. Unknown or malformed topics: out->kind = AZ_PUB_INVALID and IOTDM_E_PROTOCOL
 * (the caller closes, as IoT Hub does, §2.10). The spans point into topic. */
IOTDM_NODISCARD iotdm_result az_parse_publish_topic(const char *topic, size_t len,
                                                    az_publish_topic *out);

/* What a device subscribes to. */
typedef enum {
    AZ_SUB_INVALID = 0,
    AZ_SUB_C2D,
    AZ_SUB_TWIN_RESPONSES,
    AZ_SUB_TWIN_DESIRED,
    AZ_SUB_METHODS,
    AZ_SUB_MODULE_INPUTS,
    AZ_SUB_DPS_RESPONSES
} az_sub_kind;

/* Classifies a SUBSCRIBE filter for the connected identity (module_id NULL or "" for a device):
 *   devices/{d}/messages/devicebound/#           -> AZ_SUB_C2D (devices only)
 *   $iothub/twin/res/#                           -> AZ_SUB_TWIN_RESPONSES
 *   $iothub/twin/PATCH/properties/desired/#      -> AZ_SUB_TWIN_DESIRED
 *   $iothub/methods/POST/#                       -> AZ_SUB_METHODS
 *   devices/{d}/modules/{m}/inputs/#, devices/{d}/modules/{m}/#  -> AZ_SUB_MODULE_INPUTS
 *   $dps/registrations/res/#                     -> AZ_SUB_DPS_RESPONSES
 * {d} and {m} must be the connection's own ids, or '+': the Azure C SDK subscribes
 * "devices/+/messages/devicebound/#" and the hub only ever delivers the device's own messages.
 * A filter naming another device id (or a module other than the connection's own) ->
 * AZ_SUB_INVALID with *out_foreign = true (the caller closes the connection). Anything else ->
 * AZ_SUB_INVALID with *out_foreign false (the caller answers SUBACK 0x80). */
az_sub_kind az_classify_filter(const char *filter, size_t len, const char *device_id,
                               const char *module_id, bool *out_foreign);

/* CONNECT user names (§2.2-2.3, §7.2, §9.2 item 10). */
typedef enum { AZ_USER_INVALID = 0, AZ_USER_HUB, AZ_USER_DPS } az_user_kind;

typedef struct {
    az_user_kind kind;
    az_span host; /* hub form: {host}/{device}[/{module}]/?k=v&... */
    az_span device_id;
    az_span module_id;
    az_span id_scope; /* DPS form: {scope}/registrations/{regId}/api-version=...[&ClientVersion=] */
    az_span registration_id;
    /* Still percent-encoded as sent; decode with urlenc_decode. client_type is DeviceClientType
     * (hub) or ClientVersion (DPS). Empty when absent. */
    az_span api_version;
    az_span model_id;
    az_span client_type;
} az_username;

/* Accepts any key order, unknown keys, a missing api-version, an empty query, raw ':' ';' '(' ')'
 * in values; splits each pair at the first '='. Host and ids must be non-empty. A module id
 * starting with '?' cannot be told from the query and is read as the device form.
 * IOTDM_E_MALFORMED (out->kind = AZ_USER_INVALID) for anything else. Spans point into username. */
IOTDM_NODISCARD iotdm_result az_parse_username(const char *username, size_t len, az_username *out);

/* Property bags: name=value&name=value, names and values percent-encoded; a name without '=' has
 * no value. */
typedef struct {
    const char *s;
    size_t len;
    size_t pos;
} az_propbag_iter;

void az_propbag_iter_init(az_propbag_iter *it, const char *bag, size_t len);
/* Next pair, still encoded. Skips empty segments. Returns false at the end. */
bool az_propbag_next(az_propbag_iter *it, az_span *out_name, az_span *out_value,
                     bool *out_has_value);
/* True when the still-encoded name decodes to lit ("%24.ct" and "$.ct" both match "$.ct"). */
bool az_propbag_name_is(az_span name, const char *lit);

/* Formatters write a NUL-terminated topic into buf and return its length, or 0 when it does not
 * fit (buf then holds an empty string if cap > 0). rid is echoed exactly as given. */

/* Hub -> device. */
size_t az_format_twin_response(char *buf, size_t cap, int status, const char *rid, size_t rid_len,
                               int64_t version /* <0: none */);
size_t az_format_desired_patch(char *buf, size_t cap, int64_t version);
size_t az_format_method_request(char *buf, size_t cap, const char *method, size_t method_len,
                                const char *rid, size_t rid_len);
/* Keeps the '/' after devicebound; encoded_bag may be NULL or "". */
size_t az_format_c2d_topic(char *buf, size_t cap, const char *device_id, const char *encoded_bag);
size_t az_format_dps_response(char *buf, size_t cap, int status, const char *rid, size_t rid_len,
                              int retry_after /* <0: none */);

/* Device -> hub (libiotdm, load generator, tests). module_id NULL or "" for a device. */
size_t az_format_telemetry_topic(char *buf, size_t cap, const char *device_id,
                                 const char *module_id, const char *encoded_bag);
size_t az_format_twin_get(char *buf, size_t cap, const char *rid, size_t rid_len);
size_t az_format_twin_patch_reported(char *buf, size_t cap, const char *rid, size_t rid_len,
                                     int64_t version /* <0: none */);
size_t az_format_method_response(char *buf, size_t cap, int status, const char *rid,
                                 size_t rid_len);
/* {host}/{device}[/{module}]/?api-version={v}[&DeviceClientType={ct}][&model-id={m}]; the
 * optional values must already be percent-encoded; NULL leaves them out. */
size_t az_format_username(char *buf, size_t cap, const char *host, const char *device_id,
                          const char *module_id, const char *api_version,
                          const char *encoded_client_type, const char *encoded_model_id);

/* What a device receives (the device side's parser for the topics formatted above). */
typedef enum {
    AZ_HUB_INVALID = 0,
    AZ_HUB_C2D,
    AZ_HUB_TWIN_RESPONSE,
    AZ_HUB_TWIN_DESIRED,
    AZ_HUB_METHOD_REQUEST,
    AZ_HUB_DPS_RESPONSE
} az_hub_kind;

typedef struct {
    az_hub_kind kind;
    az_span device_id;    /* C2D */
    az_span property_bag; /* C2D: raw, may be empty */
    int status;           /* twin and DPS responses */
    az_span rid;          /* twin response, method request, DPS response */
    bool has_version;     /* twin response (204), desired patch */
    int64_t version;
    az_span method_name; /* method request */
    int retry_after;     /* DPS response; -1 when absent */
} az_hub_topic;

/* Parses a hub->device topic as the SDKs do (§4.4, §4.5, §5.2, §5.4, §7.4). The method name is
 * what lies between "POST/" and "/?", the request id everything after "$rid=" up to the next '&'.
 * IOTDM_E_PROTOCOL (kind AZ_HUB_INVALID) for anything else. Spans point into topic. */
IOTDM_NODISCARD iotdm_result az_parse_hub_topic(const char *topic, size_t len, az_hub_topic *out);

/* Device/module and method-name identifier rules of §6.3. */
bool az_valid_device_id(const char *id, size_t len);
/* Also refuses '+' and '#': the name goes into a topic, where MQTT forbids wildcards. */
bool az_valid_method_name(const char *name, size_t len);

#endif
