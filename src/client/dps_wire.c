/* DPS over MQTT, the pure parts: user name, topics, SAS password, register body, and what DPS's
 * answers mean (azure-protocols.md §3.2-3.4). */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "client/dps.h"
#include "common/sas.h"
#include "common/urlenc.h"

bool dps_valid_registration_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > DPS_REG_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = id[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == ':';
        if (!ok)
            return false;
    }
    return true;
}

static size_t fit(int n, char *buf, size_t cap)
{
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

size_t dps_format_username(char *buf, size_t cap, const char *id_scope, const char *reg_id)
{
    /* Both are plain identifiers (checked by the caller), inserted raw as the SDKs do. */
    return fit(snprintf(buf, cap, "%s/registrations/%s/api-version=%s&ClientVersion=%s", id_scope,
                        reg_id, DPS_API_VERSION, DPS_CLIENT_VERSION),
               buf, cap);
}

size_t dps_format_register_topic(char *buf, size_t cap, unsigned rid)
{
    return fit(snprintf(buf, cap, "$dps/registrations/PUT/iotdps-register/?$rid=%u", rid), buf,
               cap);
}

size_t dps_format_status_topic(char *buf, size_t cap, unsigned rid, const char *operation_id)
{
    /* The id comes from DPS: encode it, so that nothing in it can change the topic's meaning. */
    char op[3 * DPS_OPERATION_MAX + 1];
    if (!operation_id || !*operation_id ||
        urlenc_encode(operation_id, strlen(operation_id), op, sizeof op) < 0)
        return fit(-1, buf, cap);
    return fit(snprintf(buf, cap,
                        "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=%u&operationId=%s",
                        rid, op),
               buf, cap);
}

iotdm_result dps_build_password(const char *id_scope, const char *reg_id, const char *key_b64,
                                int64_t expiry_s, char *out, size_t cap)
{
    char resource[300];
    int n = snprintf(resource, sizeof resource, "%s/registrations/%s", id_scope, reg_id);
    if (n < 0 || (size_t)n >= sizeof resource)
        return IOTDM_E_TOO_LARGE;
    /* skn must be the literal "registration" (§3.3). */
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

static const char *str_at(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

/* A refusal's result: the extended code (or the status) divided down to HTTP's. */
static iotdm_result result_for(int http_status)
{
    switch (http_status) {
    case 401:
    case 403:
        return IOTDM_E_UNAUTHORIZED;
    case 404:
        return IOTDM_E_NOT_FOUND;
    case 412:
        return IOTDM_E_PRECONDITION;
    case 429:
        return IOTDM_E_THROTTLED;
    default:
        return http_status >= 500 ? IOTDM_E_INTERNAL : IOTDM_E_PROTOCOL;
    }
}

static void fail(dps_reply *reply, iotdm_provision_result *out, iotdm_result r, int code,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void fail(dps_reply *reply, iotdm_provision_result *out, iotdm_result r, int code,
                 const char *fmt, ...)
{
    reply->kind = DPS_REPLY_FAILED;
    reply->error = r;
    out->error_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof out->error, fmt, ap);
    va_end(ap);
}

/* 200 with a final (or still running) RegistrationOperationStatus. */
static void read_status(json_t *j, dps_reply *reply, iotdm_provision_result *out)
{
    const char *status = str_at(j, "status");
    json_t *state = json_object_get(j, "registrationState");
    copy(out->status, sizeof out->status, status);
    if (!strcmp(status, "assigning") || !strcmp(status, "registering")) {
        const char *op = str_at(j, "operationId");
        if (!*op || strlen(op) >= DPS_OPERATION_MAX) {
            fail(reply, out, IOTDM_E_PROTOCOL, 0,
                 "DPS answered \"%s\" without a usable operationId", status);
            return;
        }
        copy(reply->operation_id, sizeof reply->operation_id, op);
        reply->kind = DPS_REPLY_POLL;
        return;
    }
    if (!strcmp(status, "assigned")) {
        const char *hub = str_at(state, "assignedHub"), *dev = str_at(state, "deviceId");
        if (!*hub || !*dev || strlen(hub) >= sizeof out->assigned_hub ||
            strlen(dev) >= sizeof out->device_id) {
            fail(reply, out, IOTDM_E_PROTOCOL, 0,
                 "DPS answered \"assigned\" without a usable assignedHub and deviceId");
            return;
        }
        copy(out->assigned_hub, sizeof out->assigned_hub, hub);
        copy(out->device_id, sizeof out->device_id, dev);
        copy(out->substatus, sizeof out->substatus, str_at(state, "substatus"));
        json_t *payload = json_object_get(state, "payload");
        if (payload)
            out->payload_json = json_dumps(payload, JSON_COMPACT | JSON_ENCODE_ANY);
        reply->kind = DPS_REPLY_ASSIGNED;
        return;
    }
    /* disabled, failed, unassigned: the reason is in registrationState (§3.4). */
    int code = (int)json_integer_value(json_object_get(state, "errorCode"));
    const char *msg = str_at(state, "errorMessage");
    iotdm_result r = !strcmp(status, "disabled") ? IOTDM_E_DISABLED
                     : code >= 1000              ? result_for(code / 1000)
                                                 : IOTDM_E_INTERNAL;
    fail(reply, out, r, code, "DPS registration %s: %s", *status ? status : "(no status)",
         *msg ? msg : "DPS gave no reason");
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
    json_t *j = len <= DPS_BODY_MAX ? json_loadb(body, len, 0, &err) : NULL;
    if (!json_is_object(j)) {
        /* Every DPS answer has a JSON body (§3.4); a busy one without is still "busy". */
        if (status >= 429) {
            reply->kind = DPS_REPLY_RETRY;
            reply->error = result_for(status);
            out->error_code = 0;
            snprintf(out->error, sizeof out->error, "DPS answered %d", status);
        } else {
            fail(reply, out, IOTDM_E_PROTOCOL, 0, "DPS answered %d without a JSON body", status);
        }
        json_decref(j);
        return;
    }
    if (status == 200 || status == 202) {
        if (status == 202 && !json_object_get(j, "status"))
            json_object_set_new(j, "status", json_string("assigning"));
        read_status(j, reply, out);
        json_decref(j);
        return;
    }
    /* An error body: {"errorCode": 401002, "message": "…", "trackingId", …} (§3.4). */
    int code = (int)json_integer_value(json_object_get(j, "errorCode"));
    const char *msg = str_at(j, "message");
    if (status >= 429) {
        /* Node's rule (§3.4): 429 and above mean "later", with retry-after. */
        reply->kind = DPS_REPLY_RETRY;
        reply->error = result_for(status);
        out->error_code = code;
        snprintf(out->error, sizeof out->error, "DPS answered %d: %s", status, *msg ? msg : "busy");
    } else {
        fail(reply, out, result_for(status), code, "DPS refused the registration (%d): %s", status,
             *msg ? msg : "DPS gave no reason");
    }
    json_decref(j);
}
