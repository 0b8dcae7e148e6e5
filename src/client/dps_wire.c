/* DPS over MQTT, libiotdm's own parts: SAS password, register body, and DPS's answers read into
 * an iotdm_provision_result (docs/protocol.md §7.3-7.7). What an answer means is decided by
 * az_dps_read_reply in src/proto, beside the topics; it reads a parsed json_t as proto/twin.h does,
 * so the parse (with its size cap) and the copies into the caller's result (payload_json is
 * malloc'd) stay here, in the library that owns that result type. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "client/dps.h"
#include "common/sas.h"

/* The result's fields hold whatever az_dps_read_reply lets through. */
_Static_assert(sizeof(((iotdm_provision_result *)0)->assigned_hub) > AZ_DPS_HOST_MAX,
               "assigned_hub holds AZ_DPS_HOST_MAX bytes");
_Static_assert(sizeof(((iotdm_provision_result *)0)->device_id) > AZ_DPS_DEVICE_ID_MAX,
               "device_id holds AZ_DPS_DEVICE_ID_MAX bytes");

iotdm_result dps_build_password(const char *id_scope, const char *reg_id, const char *key_b64,
                                int64_t expiry_s, char *out, size_t cap)
{
    char resource[300];
    int n = snprintf(resource, sizeof resource, "%s/registrations/%s", id_scope, reg_id);
    if (n < 0 || (size_t)n >= sizeof resource)
        return IOTDM_E_TOO_LARGE;
    /* skn must be the literal "registration" (§7.3). */
    return sas_build_token(resource, key_b64, "registration", expiry_s, out, cap);
}

char *dps_register_body(const char *reg_id, const char *payload_json)
{
    json_t *payload = NULL;
    if (payload_json) {
        json_error_t err;
        payload = json_loads(payload_json, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
        if (!payload)
            return NULL;
    }
    json_t *body = json_pack("{s:s}", "registrationId", reg_id);
    if (body && payload)
        json_object_set(body, "payload", payload);
    json_decref(payload);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return text;
}

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

void dps_read_reply(int status, int retry_after, const char *body, size_t len, dps_reply *reply,
                    iotdm_provision_result *out)
{
    memset(reply, 0, sizeof *reply);
    reply->retry_after_s = retry_after < 0                 ? DPS_RETRY_DEFAULT_S
                           : retry_after < 1               ? 1 /* no hot loop on retry-after=0 */
                           : retry_after > DPS_RETRY_MAX_S ? DPS_RETRY_MAX_S
                                                           : retry_after;
    json_error_t err;
    json_t *j = body && len <= DPS_BODY_MAX ? json_loadb(body, len, 0, &err) : NULL;
    az_dps_reply r;
    /* out->error is written only for FAILED and RETRY: an earlier reason is kept otherwise. */
    az_dps_read_reply(status, j, &r, out->error, sizeof out->error);
    reply->kind = r.kind;
    reply->error = r.error;
    if (r.status)
        copy(out->status, sizeof out->status, r.status);
    switch (r.kind) {
    case AZ_DPS_POLL:
        copy(reply->operation_id, sizeof reply->operation_id, r.operation_id);
        break;
    case AZ_DPS_ASSIGNED:
        copy(out->assigned_hub, sizeof out->assigned_hub, r.assigned_hub);
        copy(out->device_id, sizeof out->device_id, r.device_id);
        copy(out->substatus, sizeof out->substatus, r.substatus);
        if (r.payload)
            out->payload_json = json_dumps(r.payload, JSON_COMPACT | JSON_ENCODE_ANY);
        break;
    case AZ_DPS_RETRY:
    case AZ_DPS_FAILED:
        out->error_code = r.error_code;
        break;
    }
    json_decref(j);
}
