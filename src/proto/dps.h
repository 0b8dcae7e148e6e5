/* DPS over MQTT, the device's half of the wire (docs/protocol.md §7.1-7.6): the CONNECT user
 * name, the register and operation-status topics, and what DPS's answers mean. The hub's half of
 * the same names (parsing these topics and user names, formatting the response topic) is in
 * azure_topics.h, and so is the device's parser of the response topic (az_parse_hub_topic,
 * AZ_HUB_DPS_RESPONSE): each format is written once and tested both ways. */
#ifndef IOTDM_PROTO_DPS_H
#define IOTDM_PROTO_DPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "iotdm/result.h"

#define AZ_DPS_API_VERSION      "2019-03-31"
#define AZ_DPS_REG_ID_MAX       128 /* §7.1 */
#define AZ_DPS_OPERATION_ID_MAX 255 /* a longer operationId is not DPS's */
#define AZ_DPS_HOST_MAX         255 /* assignedHub: the hub's host name */
#define AZ_DPS_DEVICE_ID_MAX    128 /* deviceId: an IoT Hub device id (§6.3) */

/* §7.1: 1-128 of A-Z a-z 0-9 - . _ :, the last a letter, a digit or '-' (DPS compares
 * case-insensitively). NULL is not valid. */
bool az_dps_valid_registration_id(const char *id, size_t len);

/* Formatters write a NUL-terminated string into buf and return its length, or 0 when it does not
 * fit or an argument is missing (buf then holds "" if cap > 0). */

/* "{scope}/registrations/{regId}/api-version=2019-03-31[&ClientVersion={cv}]": no '?', the query
 * joined by '/' (§7.2). The ids go in as given, as the SDKs send them: they are plain identifiers
 * (the caller checks the registration id). encoded_client_version must already be
 * percent-encoded; NULL leaves it out. */
size_t az_format_dps_username(char *buf, size_t cap, const char *id_scope, const char *reg_id,
                              const char *encoded_client_version);

/* "$dps/registrations/PUT/iotdps-register/?$rid={rid}" (§7.4). */
size_t az_format_dps_register(char *buf, size_t cap, const char *rid, size_t rid_len);

/* "$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={op}" (§7.4). The
 * operation id comes from DPS: it is percent-encoded here, so that nothing in it can add query
 * keys of its own; the hub decodes it back. 0 for an empty one. */
size_t az_format_dps_status(char *buf, size_t cap, const char *rid, size_t rid_len,
                            const char *operation_id, size_t operation_id_len);

/* What one DPS answer means to a device (§7.5, §7.6). */
typedef enum {
    AZ_DPS_POLL,     /* in progress: query operation_id's status after retry-after */
    AZ_DPS_RETRY,    /* busy (429 and above): send the same request again after retry-after */
    AZ_DPS_ASSIGNED, /* assigned_hub and device_id (and substatus, payload) are the assignment */
    AZ_DPS_FAILED,   /* refused, or not an answer a device can act on */
} az_dps_reply_kind;

/* The strings are borrowed from the body (never NULL but for status) and live as long as it. */
typedef struct {
    az_dps_reply_kind kind;
    iotdm_result error; /* FAILED: the result; RETRY: the result to give if DPS stays busy */
    const char *status; /* the operation's "status" ("" when absent, "assigning" for a bare 202);
                           NULL when the body is no RegistrationOperationStatus (errors) */
    const char *operation_id; /* POLL: at most AZ_DPS_OPERATION_ID_MAX bytes, not empty */
    const char *assigned_hub; /* ASSIGNED: 1..AZ_DPS_HOST_MAX bytes */
    const char *device_id;    /* ASSIGNED: 1..AZ_DPS_DEVICE_ID_MAX bytes */
    const char *substatus;    /* ASSIGNED: "initialAssignment", …; may be "" */
    const json_t *payload;    /* ASSIGNED: registrationState.payload, or NULL */
    int error_code;           /* FAILED and RETRY: DPS's extended code (401002, …), or 0 */
} az_dps_reply;

/* Reads one answer: status is the response topic's (az_hub_topic.status), body the JSON body
 * parsed by the caller (NULL or a non-object when it was not JSON). The JSON is read here but
 * parsed by the caller, as twin.h does: this stays non-allocating, and the caller keeps the cap
 * on the body's size. For FAILED and RETRY a readable reason (quoting DPS's message) is written to
 * why; it is left alone otherwise. Never fails: anything unusable is FAILED with
 * IOTDM_E_PROTOCOL. */
void az_dps_read_reply(int status, const json_t *body, az_dps_reply *out, char *why,
                       size_t why_cap);

#endif
