/* Device identity registry (docs/protocol.md §8.6): PUT/GET/DELETE /devices/{id}, GET /devices,
 * DELETE /devices/{id}/commands. */
#include <openssl/crypto.h>
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

bool http_device_from_json(const json_t *body, bool is_update, hub_device *d, char *err,
                           size_t err_cap)
{
    const char *status = get_str(body, "status");
    if (status && strcmp(status, "enabled") != 0 && strcmp(status, "disabled") != 0) {
        snprintf(err, err_cap, "status must be enabled or disabled");
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
        snprintf(err, err_cap, "unknown authentication type '%s'", type);
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
                snprintf(err, err_cap, "%s key must be base64 of 16 to 64 bytes",
                         i ? "the secondary" : "the primary");
                return false;
            } else {
                snprintf(dest[i], HUB_KEY_MAX, "%s", keys[i]);
            }
        }
    } else if (d->auth_type == HUB_AUTH_SELF_SIGNED) {
        if (!pt || !valid_thumbprint(pt) || (st && *st && !valid_thumbprint(st))) {
            snprintf(err, err_cap,
                     "selfSigned devices need x509Thumbprint.primaryThumbprint as 40 or 64 hex "
                     "digits");
            return false;
        }
        lower_copy(d->primary_thumbprint, sizeof d->primary_thumbprint, pt);
        if (st)
            lower_copy(d->secondary_thumbprint, sizeof d->secondary_thumbprint, st);
    }
    return true;
}

/* ---- GET, PUT, DELETE /devices/{id} ---- */

typedef struct {
    http_ctx cx;
    const char *id;
    json_t *body; /* PUT */
    bool create;  /* PUT without If-Match */
    uint64_t if_match;
    hub_device d;
    char err[256];
    size_t purged; /* DELETE .../commands */
} device_ctx;

static void device_cleanup(http_ctx *cx)
{
    device_ctx *dc = (device_ctx *)cx;
    json_decref(dc->body);
    OPENSSL_cleanse(&dc->d, sizeof dc->d);
}

static void answer_store_error(http_ctx *cx, iotdm_result r, const char *id, const char *what)
{
    if (r == IOTDM_E_EXISTS)
        http_send_error(cx, HUB_ERR_DEVICE_EXISTS, "A device with ID '%s' is already registered.",
                        id);
    else if (r == IOTDM_E_NOT_FOUND)
        http_send_error(cx, HUB_ERR_DEVICE_NOT_FOUND, "Device with id '%s' was not found.", id);
    else if (r == IOTDM_E_PRECONDITION)
        http_send_error(cx, HUB_ERR_PRECONDITION, "If-Match does not match the device");
    else
        http_send_result_error(cx, r, what);
}

static iotdm_result get_run(hub_work *w, hub_store *store)
{
    device_ctx *dc = (device_ctx *)w;
    return hub_store_device_get(store, dc->id, &dc->d);
}

static void get_done(http_ctx *cx)
{
    device_ctx *dc = (device_ctx *)cx;
    if (cx->w.result < 0)
        answer_store_error(cx, cx->w.result, dc->id, "cannot read the device");
    else
        http_send_json(cx, 200, hub_device_to_json(&dc->d));
}

static iotdm_result put_run(hub_work *w, hub_store *store)
{
    device_ctx *dc = (device_ctx *)w;
    if (dc->create) {
        memset(&dc->d, 0, sizeof dc->d);
        snprintf(dc->d.device_id, sizeof dc->d.device_id, "%s", dc->id);
        dc->d.enabled = true;
        if (!http_device_from_json(dc->body, false, &dc->d, dc->err, sizeof dc->err))
            return IOTDM_E_MALFORMED;
        return hub_store_device_create(store, &dc->d);
    }
    iotdm_result r = hub_store_device_get(store, dc->id, &dc->d);
    if (r < 0)
        return r;
    if (!http_device_from_json(dc->body, true, &dc->d, dc->err, sizeof dc->err))
        return IOTDM_E_MALFORMED;
    return hub_store_device_update(store, &dc->d, dc->if_match);
}

static void put_done(http_ctx *cx)
{
    device_ctx *dc = (device_ctx *)cx;
    iotdm_result r = cx->w.result;
    if (r == IOTDM_E_MALFORMED && dc->err[0]) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "%s", dc->err);
    } else if (r < 0) {
        answer_store_error(cx, r, dc->id, "cannot save the device");
    } else {
        if (!dc->d.enabled)
            hub_route_drop(cx->h, dc->id, "device disabled");
        http_send_json(cx, 200, hub_device_to_json(&dc->d));
    }
}

static void put_device(device_ctx *dc)
{
    http_ctx *cx = &dc->cx;
    dc->body = http_body_json(cx);
    if (!dc->body)
        return;
    const char *body_id = get_str(dc->body, "deviceId");
    if (!json_is_object(dc->body) || (body_id && strcmp(body_id, dc->id) != 0)) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID,
                        "the body must be a Device whose deviceId matches the URL");
        return;
    }
    const char *if_match = http_header(cx, "If-Match");
    dc->create = !if_match;
    if (if_match && !hub_parse_device_if_match(if_match, &dc->if_match)) {
        http_send_error(cx, HUB_ERR_PRECONDITION, "If-Match does not match the device");
        return;
    }
    /* New data only while there is disk for it; an update may replace in place. */
    http_run(cx, put_run, put_done, dc->create ? HUB_WORK_GROWS : 0);
}

static iotdm_result delete_run(hub_work *w, hub_store *store)
{
    device_ctx *dc = (device_ctx *)w;
    return hub_store_device_delete(store, dc->id, dc->if_match);
}

static void delete_done(http_ctx *cx)
{
    device_ctx *dc = (device_ctx *)cx;
    if (cx->w.result < 0) {
        answer_store_error(cx, cx->w.result, dc->id, "cannot delete the device");
        return;
    }
    hub_route_drop(cx->h, dc->id, "device deleted");
    http_send_empty(cx, 204);
}

static bool device_id_ok(http_ctx *cx, const char *id)
{
    if (az_valid_device_id(id, strlen(id)))
        return true;
    http_send_error(cx, HUB_ERR_ARGUMENT_INVALID,
                    "'%s' is not a valid device id: up to 128 ASCII letters, digits and "
                    "- . %% _ * ? ! ( ) , : = @ $ '",
                    id);
    return false;
}

static void devices_one(http_ctx *cx)
{
    device_ctx *dc = (device_ctx *)cx;
    cx->cleanup = device_cleanup;
    dc->id = cx->segments[1];
    if (!device_id_ok(cx, dc->id))
        return;
    switch (cx->method) {
    case HTTPD_GET:
        http_run(cx, get_run, get_done, HUB_WORK_READ);
        break;
    case HTTPD_PUT:
        put_device(dc);
        break;
    default: /* DELETE */
        if (!hub_parse_device_if_match(http_header(cx, "If-Match"), &dc->if_match)) {
            http_send_error(cx, HUB_ERR_PRECONDITION, "If-Match does not match the device");
            return;
        }
        http_run(cx, delete_run, delete_done, 0);
    }
}

/* ---- GET /devices ---- */

typedef struct {
    http_ctx cx;
    size_t top;
    json_t *list;
} list_ctx;

static void list_cleanup(http_ctx *cx)
{
    json_decref(((list_ctx *)cx)->list);
}

static bool add_to_array(void *ctx, const hub_device *d)
{
    json_array_append_new(ctx, hub_device_to_json(d));
    return true;
}

static iotdm_result list_run(hub_work *w, hub_store *store)
{
    list_ctx *lc = (list_ctx *)w;
    lc->list = json_array();
    return lc->list ? hub_store_device_foreach(store, NULL, lc->top, add_to_array, lc->list)
                    : -ENOMEM;
}

static void list_done(http_ctx *cx)
{
    list_ctx *lc = (list_ctx *)cx;
    if (cx->w.result < 0) {
        http_send_result_error(cx, cx->w.result, "cannot list devices");
        return;
    }
    json_t *list = lc->list;
    lc->list = NULL;
    http_send_json(cx, 200, list);
}

static void devices_list(http_ctx *cx)
{
    list_ctx *lc = (list_ctx *)cx;
    cx->cleanup = list_cleanup;
    const char *top_text = http_query_param(cx, "top");
    long top = top_text ? strtol(top_text, NULL, 10) : LIST_DEFAULT_TOP;
    lc->top = top <= 0 || top > LIST_DEFAULT_TOP ? LIST_DEFAULT_TOP : (size_t)top;
    /* A snapshot read: a thousand devices must not hold up the writes of others. */
    http_run(cx, list_run, list_done, HUB_WORK_SNAPSHOT);
}

/* ---- DELETE /devices/{id}/commands ---- */

static iotdm_result purge_run(hub_work *w, hub_store *store)
{
    device_ctx *dc = (device_ctx *)w;
    return hub_store_c2d_purge(store, dc->id, &dc->purged);
}

static void purge_done(http_ctx *cx)
{
    device_ctx *dc = (device_ctx *)cx;
    if (cx->w.result < 0)
        answer_store_error(cx, cx->w.result, dc->id, "cannot purge the queue");
    else
        http_send_json(cx, 200,
                       json_pack("{s:s, s:I}", "deviceId", dc->id, "totalMessagesPurged",
                                 (json_int_t)dc->purged));
}

static void devices_purge(http_ctx *cx)
{
    device_ctx *dc = (device_ctx *)cx;
    dc->id = cx->segments[1];
    if (device_id_ok(cx, dc->id))
        http_run(cx, purge_run, purge_done, 0);
}

const http_route http_devices_routes[] = {
    {"devices", HTTPD_GET, HTTP_AUTH_POLICY, HUB_RIGHT_REGISTRY_READ, HTTP_BODY_NONE, false, NULL,
     devices_list, sizeof(list_ctx)},
    {"devices/*", HTTPD_GET, HTTP_AUTH_POLICY, HUB_RIGHT_REGISTRY_READ, HTTP_BODY_NONE, false, NULL,
     devices_one, sizeof(device_ctx)},
    {"devices/*", HTTPD_PUT | HTTPD_DELETE, HTTP_AUTH_POLICY, HUB_RIGHT_REGISTRY_WRITE,
     HTTP_BODY_SMALL, false, NULL, devices_one, sizeof(device_ctx)},
    {"devices/*/commands", HTTPD_DELETE, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT,
     HTTP_BODY_NONE, false, NULL, devices_purge, sizeof(device_ctx)},
    {NULL, 0, 0, 0, 0, false, NULL, NULL, 0},
};
