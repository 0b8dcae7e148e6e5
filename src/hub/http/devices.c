/* Device identity registry: PUT/GET/DELETE /devices/{id}, GET /devices, DELETE .../commands. */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/base64.h"
#include "common/timeutil.h"
#include "hub/http/internal.h"
#include "hub/twin_ops.h"
#include "proto/azure_topics.h"

#define LIST_DEFAULT_TOP 1000

static bool generate_key(char *out, size_t cap)
{
    unsigned char raw[32];
    return RAND_bytes(raw, sizeof raw) == 1 && base64_encode(raw, sizeof raw, out, cap) > 0;
}

static bool valid_key(const char *key)
{
    unsigned char raw[128];
    long n = base64_decode(key, strlen(key), raw, sizeof raw);
    return n >= 16 && n <= 64;
}

static bool valid_thumbprint(const char *t)
{
    size_t len = strlen(t);
    if (len != 40 && len != 64)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!strchr("0123456789abcdefABCDEF", t[i]))
            return false;
    return true;
}

static void lower_copy(char *out, size_t cap, const char *in)
{
    size_t i = 0;
    for (; in[i] && i + 1 < cap; i++)
        out[i] = (char)((in[i] >= 'A' && in[i] <= 'Z') ? in[i] + 32 : in[i]);
    out[i] = '\0';
}

static const char *get_str(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

bool http_device_from_json(http_ctx *cx, const json_t *body, bool is_update, hub_device *d)
{
    const char *status = get_str(body, "status");
    if (status && strcmp(status, "enabled") != 0 && strcmp(status, "disabled") != 0) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "status must be enabled or disabled");
        return false;
    }
    bool enabled = !status || strcmp(status, "enabled") == 0;
    if (enabled != d->enabled)
        d->status_updated_ms = time_now_ms();
    d->enabled = enabled;
    const char *reason = get_str(body, "statusReason");
    snprintf(d->status_reason, sizeof d->status_reason, "%s", reason ? reason : "");

    const json_t *auth = json_object_get(body, "authentication");
    const json_t *caps = json_object_get(body, "capabilities");
    if (caps)
        d->iot_edge = json_is_true(json_object_get(caps, "iotEdge"));
    if (!auth && is_update)
        return true; /* an update without credentials keeps them */
    const json_t *sym = json_object_get(auth, "symmetricKey");
    const json_t *x509 = json_object_get(auth, "x509Thumbprint");
    const char *pk = get_str(sym, "primaryKey"), *sk = get_str(sym, "secondaryKey");
    const char *pt = get_str(x509, "primaryThumbprint"), *st = get_str(x509, "secondaryThumbprint");
    const char *type = get_str(auth, "type");
    if (!type)
        type = (pt && *pt) || (st && *st) ? "selfSigned" : "sas";
    if (strcmp(type, "sas") == 0) {
        d->auth_type = HUB_AUTH_SAS;
    } else if (strcmp(type, "selfSigned") == 0) {
        d->auth_type = HUB_AUTH_SELF_SIGNED;
    } else if (strcmp(type, "certificateAuthority") == 0) {
        d->auth_type = HUB_AUTH_CA;
    } else if (strcmp(type, "none") == 0) {
        d->auth_type = HUB_AUTH_NONE;
    } else {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "unknown authentication type '%s'", type);
        return false;
    }
    d->primary_key[0] = d->secondary_key[0] = '\0';
    d->primary_thumbprint[0] = d->secondary_thumbprint[0] = '\0';
    if (d->auth_type == HUB_AUTH_SAS) {
        const char *keys[2] = {pk, sk};
        char *dest[2] = {d->primary_key, d->secondary_key};
        for (int i = 0; i < 2; i++) {
            if (!keys[i] || !*keys[i]) {
                generate_key(dest[i], HUB_KEY_MAX);
            } else if (!valid_key(keys[i])) {
                http_send_error(cx, HUB_ERR_ARGUMENT_INVALID,
                                "%s key must be base64 of 16 to 64 bytes",
                                i ? "the secondary" : "the primary");
                return false;
            } else {
                snprintf(dest[i], HUB_KEY_MAX, "%s", keys[i]);
            }
        }
    } else if (d->auth_type == HUB_AUTH_SELF_SIGNED) {
        if (!pt || !valid_thumbprint(pt) || (st && *st && !valid_thumbprint(st))) {
            http_send_error(cx, HUB_ERR_ARGUMENT_INVALID,
                            "selfSigned devices need x509Thumbprint.primaryThumbprint as 40 or "
                            "64 hex digits");
            return false;
        }
        lower_copy(d->primary_thumbprint, sizeof d->primary_thumbprint, pt);
        if (st)
            lower_copy(d->secondary_thumbprint, sizeof d->secondary_thumbprint, st);
    }
    return true;
}

static void put_device(http_ctx *cx, const char *id)
{
    json_t *body = http_body_json(cx);
    if (!body)
        return;
    const char *body_id = get_str(body, "deviceId");
    if (!json_is_object(body) || (body_id && strcmp(body_id, id) != 0)) {
        json_decref(body);
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID,
                        "the body must be a Device whose deviceId matches the URL");
        return;
    }
    const char *if_match = http_header(cx, "If-Match");
    hub_device d;
    iotdm_result r;
    if (!if_match) {
        memset(&d, 0, sizeof d);
        snprintf(d.device_id, sizeof d.device_id, "%s", id);
        d.enabled = true;
        if (!http_device_from_json(cx, body, false, &d)) {
            json_decref(body);
            return;
        }
        r = hub_store_device_create(cx->h->store, &d);
    } else {
        uint64_t etag;
        if (!hub_parse_device_if_match(if_match, &etag)) {
            json_decref(body);
            http_send_error(cx, HUB_ERR_PRECONDITION, "If-Match does not match the device");
            return;
        }
        r = hub_store_device_get(cx->h->store, id, &d);
        if (r == IOTDM_OK && !http_device_from_json(cx, body, true, &d)) {
            json_decref(body);
            return;
        }
        if (r == IOTDM_OK)
            r = hub_store_device_update(cx->h->store, &d, etag);
    }
    json_decref(body);
    if (r == IOTDM_OK)
        r = hub_commit_now(cx->h);
    if (r == IOTDM_E_EXISTS) {
        http_send_error(cx, HUB_ERR_DEVICE_EXISTS, "A device with ID '%s' is already registered.",
                        id);
    } else if (r == IOTDM_E_NOT_FOUND) {
        http_send_error(cx, HUB_ERR_DEVICE_NOT_FOUND, "Device with id '%s' was not found.", id);
    } else if (r < 0) {
        http_send_result_error(cx, r, "cannot save the device");
    } else {
        if (!d.enabled)
            hub_conn_drop(cx->h, id, "device disabled");
        http_send_json(cx, 200, hub_device_to_json(&d));
    }
}

static void get_device(http_ctx *cx, const char *id)
{
    hub_device d;
    iotdm_result r = hub_store_device_get(cx->h->store, id, &d);
    if (r == IOTDM_E_NOT_FOUND)
        http_send_error(cx, HUB_ERR_DEVICE_NOT_FOUND, "Device with id '%s' was not found.", id);
    else if (r < 0)
        http_send_result_error(cx, r, "cannot read the device");
    else
        http_send_json(cx, 200, hub_device_to_json(&d));
}

static void delete_device(http_ctx *cx, const char *id)
{
    uint64_t etag;
    if (!hub_parse_device_if_match(http_header(cx, "If-Match"), &etag)) {
        http_send_error(cx, HUB_ERR_PRECONDITION, "If-Match does not match the device");
        return;
    }
    iotdm_result r = hub_store_device_delete(cx->h->store, id, etag);
    if (r == IOTDM_OK)
        r = hub_commit_now(cx->h);
    if (r == IOTDM_E_NOT_FOUND) {
        http_send_error(cx, HUB_ERR_DEVICE_NOT_FOUND, "Device with id '%s' was not found.", id);
    } else if (r == IOTDM_E_PRECONDITION) {
        http_send_error(cx, HUB_ERR_PRECONDITION, "If-Match does not match the device");
    } else if (r < 0) {
        http_send_result_error(cx, r, "cannot delete the device");
    } else {
        hub_conn_drop(cx->h, id, "device deleted");
        http_send_empty(cx, 204);
    }
}

static bool add_to_array(void *ctx, const hub_device *d)
{
    json_array_append_new(ctx, hub_device_to_json(d));
    return true;
}

static void list_devices(http_ctx *cx)
{
    const char *top_text = http_query_param(cx, "top");
    long top = top_text ? strtol(top_text, NULL, 10) : LIST_DEFAULT_TOP;
    if (top <= 0 || top > LIST_DEFAULT_TOP)
        top = LIST_DEFAULT_TOP;
    json_t *list = json_array();
    iotdm_result r = hub_store_device_foreach(cx->h->store, NULL, (size_t)top, add_to_array, list);
    if (r < 0) {
        json_decref(list);
        http_send_result_error(cx, r, "cannot list devices");
        return;
    }
    http_send_json(cx, 200, list);
}

static void purge_commands(http_ctx *cx, const char *id)
{
    size_t purged = 0;
    iotdm_result r = hub_store_c2d_purge(cx->h->store, id, &purged);
    if (r == IOTDM_OK)
        r = hub_commit_now(cx->h);
    if (r == IOTDM_E_NOT_FOUND)
        http_send_error(cx, HUB_ERR_DEVICE_NOT_FOUND, "Device with id '%s' was not found.", id);
    else if (r < 0)
        http_send_result_error(cx, r, "cannot purge the queue");
    else
        http_send_json(
            cx, 200,
            json_pack("{s:s, s:I}", "deviceId", id, "totalMessagesPurged", (json_int_t)purged));
}

void http_devices(http_ctx *cx)
{
    const char *id = cx->nsegments >= 2 ? cx->segments[1] : NULL;
    if (id && !az_valid_device_id(id, strlen(id))) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID,
                        "'%s' is not a valid device id: up to 128 ASCII letters, digits and "
                        "- . %% _ * ? ! ( ) , : = @ $ '",
                        id);
        return;
    }
    bool read = cx->method == EVHTTP_REQ_GET;
    if (cx->nsegments == 3 && strcmp(cx->segments[2], "commands") == 0 &&
        cx->method == EVHTTP_REQ_DELETE) {
        if (http_authorize(cx, HUB_RIGHT_SERVICE_CONNECT))
            purge_commands(cx, id);
        return;
    }
    if (!id && cx->method == EVHTTP_REQ_POST) {
        if (http_authorize(cx, HUB_RIGHT_REGISTRY_WRITE))
            http_devices_bulk(cx);
        return;
    }
    if (cx->nsegments > 2 || (!id && !read)) {
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no such resource");
        return;
    }
    if (!http_authorize(cx, read ? HUB_RIGHT_REGISTRY_READ : HUB_RIGHT_REGISTRY_WRITE))
        return;
    if (!id)
        list_devices(cx);
    else if (cx->method == EVHTTP_REQ_GET)
        get_device(cx, id);
    else if (cx->method == EVHTTP_REQ_PUT)
        put_device(cx, id);
    else if (cx->method == EVHTTP_REQ_DELETE)
        delete_device(cx, id);
    else
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "method not allowed on /devices/{id}");
}
