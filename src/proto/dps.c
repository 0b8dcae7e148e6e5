/* DPS over MQTT, the device's half: user name, request topics, and reading DPS's answers
 * (docs/protocol.md §7.1-7.6). */
#include "proto/dps.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/urlenc.h"

static bool is_alnum(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

bool az_dps_valid_registration_id(const char *id, size_t len)
{
    if (!id || len == 0 || len > AZ_DPS_REG_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = id[i];
        if (!is_alnum(ch) && ch != '-' && ch != '.' && ch != '_' && ch != ':')
            return false;
    }
    return is_alnum(id[len - 1]) || id[len - 1] == '-';
}

/* snprintf's answer as a formatter's: the length, or 0 (and "") when it did not fit. */
static size_t fit(int n, char *buf, size_t cap)
{
    if (n < 0 || (size_t)n >= cap) {
        if (cap)
            buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

static bool set(const char *s)
{
    return s && *s;
}

size_t az_format_dps_username(char *buf, size_t cap, const char *id_scope, const char *reg_id,
                              const char *encoded_client_version)
{
    if (!set(id_scope) || !set(reg_id))
        return fit(-1, buf, cap);
    const char *cv = encoded_client_version;
    return fit(snprintf(buf, cap, "%s/registrations/%s/api-version=%s%s%s", id_scope, reg_id,
                        AZ_DPS_API_VERSION, cv ? "&ClientVersion=" : "", cv ? cv : ""),
               buf, cap);
}

/* The rid is an int-sized length for printf's "%.*s"; a longer one cannot fit any topic. */
static bool rid_ok(const char *rid, size_t rid_len)
{
    return (rid || rid_len == 0) && rid_len <= INT_MAX;
}

size_t az_format_dps_register(char *buf, size_t cap, const char *rid, size_t rid_len)
{
    if (!rid_ok(rid, rid_len))
        return fit(-1, buf, cap);
    return fit(snprintf(buf, cap, "$dps/registrations/PUT/iotdps-register/?$rid=%.*s", (int)rid_len,
                        rid ? rid : ""),
               buf, cap);
}

size_t az_format_dps_status(char *buf, size_t cap, const char *rid, size_t rid_len,
                            const char *operation_id, size_t operation_id_len)
{
    if (!rid_ok(rid, rid_len) || !operation_id || operation_id_len == 0)
        return fit(-1, buf, cap);
    int n = snprintf(buf, cap,
                     "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=%.*s&operationId=",
                     (int)rid_len, rid ? rid : "");
    if (!fit(n, buf, cap))
        return 0;
    /* Encoded straight into the rest of buf: no copy, no allocation. */
    long e = urlenc_encode(operation_id, operation_id_len, buf + n, cap - (size_t)n);
    if (e < 0)
        return fit(-1, buf, cap);
    return (size_t)n + (size_t)e;
}

/* ---- answers ------------------------------------------------------------------------------ */

static const char *str_at(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

/* errorCode as an int; anything else (absent, not an integer, out of range) is 0. */
static int code_at(const json_t *obj, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(obj, key));
    return v >= INT_MIN && v <= INT_MAX ? (int)v : 0;
}

/* A refusal's result from its HTTP status (an extended code divided down to one). */
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

static void say(az_dps_reply *out, az_dps_reply_kind kind, iotdm_result r, int code, char *why,
                size_t why_cap, const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void say(az_dps_reply *out, az_dps_reply_kind kind, iotdm_result r, int code, char *why,
                size_t why_cap, const char *fmt, ...)
{
    out->kind = kind;
    out->error = r;
    out->error_code = code;
    if (why && why_cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_cap, fmt, ap);
        va_end(ap);
    }
}

/* 200 or 202 with a RegistrationOperationStatus, final or still running. */
static void read_status(int http_status, const json_t *j, az_dps_reply *out, char *why,
                        size_t why_cap)
{
    /* A 202 without a status is still "assigning" (§7.4). */
    const char *status =
        http_status == 202 && !json_object_get(j, "status") ? "assigning" : str_at(j, "status");
    const json_t *state = json_object_get(j, "registrationState");
    out->status = status;
    if (!strcmp(status, "assigning") || !strcmp(status, "registering")) {
        const char *op = str_at(j, "operationId");
        if (!*op || strlen(op) > AZ_DPS_OPERATION_ID_MAX) {
            say(out, AZ_DPS_FAILED, IOTDM_E_PROTOCOL, 0, why, why_cap,
                "DPS answered \"%s\" without a usable operationId", status);
            return;
        }
        out->operation_id = op;
        out->kind = AZ_DPS_POLL;
        return;
    }
    if (!strcmp(status, "assigned")) {
        /* The C SDK's rule: both assignedHub and deviceId, or it is no assignment (§7.6). */
        const char *hub = str_at(state, "assignedHub"), *dev = str_at(state, "deviceId");
        if (!*hub || !*dev || strlen(hub) > AZ_DPS_HOST_MAX || strlen(dev) > AZ_DPS_DEVICE_ID_MAX) {
            say(out, AZ_DPS_FAILED, IOTDM_E_PROTOCOL, 0, why, why_cap,
                "DPS answered \"assigned\" without a usable assignedHub and deviceId");
            return;
        }
        out->assigned_hub = hub;
        out->device_id = dev;
        out->substatus = str_at(state, "substatus");
        out->payload = json_object_get(state, "payload");
        out->kind = AZ_DPS_ASSIGNED;
        return;
    }
    /* disabled, failed, unassigned: the reason is in registrationState (§7.5). */
    int code = code_at(state, "errorCode");
    const char *msg = str_at(state, "errorMessage");
    iotdm_result r = !strcmp(status, "disabled") ? IOTDM_E_DISABLED
                     : code >= 1000              ? result_for(code / 1000)
                                                 : IOTDM_E_INTERNAL;
    say(out, AZ_DPS_FAILED, r, code, why, why_cap, "DPS registration %s: %s",
        *status ? status : "(no status)", *msg ? msg : "DPS gave no reason");
}

void az_dps_read_reply(int status, const json_t *body, az_dps_reply *out, char *why, size_t why_cap)
{
    memset(out, 0, sizeof *out);
    out->operation_id = out->assigned_hub = out->device_id = out->substatus = "";
    if (!json_is_object(body)) {
        /* Every DPS answer has a JSON body (§7.5, §7.6); a busy one without is still "busy". */
        if (status >= 429)
            say(out, AZ_DPS_RETRY, result_for(status), 0, why, why_cap, "DPS answered %d", status);
        else
            say(out, AZ_DPS_FAILED, IOTDM_E_PROTOCOL, 0, why, why_cap,
                "DPS answered %d without a JSON body", status);
        return;
    }
    if (status == 200 || status == 202) {
        read_status(status, body, out, why, why_cap);
        return;
    }
    /* An error body: {"errorCode": 401002, "message": "…", "trackingId", …} (§7.5). */
    int code = code_at(body, "errorCode");
    const char *msg = str_at(body, "message");
    if (status >= 429) /* Node's rule (§7.6): 429 and above mean "later", with retry-after. */
        say(out, AZ_DPS_RETRY, result_for(status), code, why, why_cap, "DPS answered %d: %s",
            status, *msg ? msg : "busy");
    else
        say(out, AZ_DPS_FAILED, result_for(status), code, why, why_cap,
            "DPS refused the registration (%d): %s", status, *msg ? msg : "DPS gave no reason");
}
