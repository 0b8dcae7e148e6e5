/* POST /twins/{id}/methods: invoke a direct method and answer when the device does
 * (docs/protocol.md §8.8). */
#include <string.h>

#include "common/alloc.h"
#include "hub/http/internal.h"
#include "hub/methods.h"
#include "proto/azure_topics.h"

typedef struct {
    http_ctx cx;
    const char *id;
    char *payload; /* JSON text (jansson's allocation) */
    char method[HUB_ID_MAX];
    int response_timeout, connect_timeout;
    bool calling;
    uint64_t call_id;
    hub_device d;
} method_ctx;

static void method_cleanup(http_ctx *cx)
{
    method_ctx *mc = (method_ctx *)cx;
    /* The caller went away before the device answered: forget the call. */
    if (mc->calling)
        hub_methods_cancel(cx->http->loop->methods, mc->call_id);
    free(mc->payload);
}

static void invoke_done(void *ctx, iotdm_result r, int status, const char *payload, size_t len)
{
    method_ctx *mc = ctx;
    http_ctx *cx = &mc->cx;
    mc->calling = false;
    if (r == IOTDM_E_NOT_ONLINE) {
        http_send_error(cx, HUB_ERR_DEVICE_NOT_ONLINE,
                        "Timed out waiting for device '%s' to connect.", mc->id);
    } else if (r == IOTDM_E_TIMEOUT) {
        http_send_error(cx, HUB_ERR_GATEWAY_TIMEOUT,
                        "Timed out waiting for the response from device '%s'.", mc->id);
    } else {
        json_error_t err;
        json_t *payload_json = len ? json_loadb(payload, len, JSON_DECODE_ANY, &err) : json_null();
        if (!payload_json)
            payload_json = json_stringn(payload, len); /* a device answered with non-JSON */
        if (!payload_json)
            payload_json = json_null();
        http_send_json(cx, 200, json_pack("{s:i, s:o}", "status", status, "payload", payload_json));
    }
    http_release(cx);
}

static void invoke(method_ctx *mc)
{
    http_ctx *cx = &mc->cx;
    hub_methods *m = cx->http->loop->methods;
    mc->calling = true;
    cx->held = true; /* answered by invoke_done, never from inside hub_methods_invoke */
    iotdm_result r = hub_methods_invoke(m, mc->id, mc->method, mc->payload, strlen(mc->payload),
                                        mc->response_timeout, mc->connect_timeout, invoke_done, mc,
                                        &mc->call_id);
    if (r < 0) {
        mc->calling = false;
        cx->held = false;
        if (r == IOTDM_E_QUOTA)
            http_send_error(cx, HUB_ERR_THROTTLED, "too many method calls in flight");
        else
            http_send_result_error(cx, r, "cannot invoke the method");
    }
}

static iotdm_result exists_run(hub_work *w, hub_store *store)
{
    method_ctx *mc = (method_ctx *)w;
    return hub_store_device_get(store, mc->id, &mc->d);
}

static void exists_done(http_ctx *cx)
{
    method_ctx *mc = (method_ctx *)cx;
    if (cx->w.result == IOTDM_E_NOT_FOUND)
        http_send_error(cx, HUB_ERR_DEVICE_NOT_FOUND, "Device with id '%s' was not found.", mc->id);
    else if (cx->w.result < 0)
        http_send_result_error(cx, cx->w.result, "cannot read the device");
    else
        invoke(mc);
}

static bool read_timeout(http_ctx *cx, const json_t *body, const char *name, int dflt, int min,
                         int *out)
{
    const json_t *v = json_object_get(body, name);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min ||
        json_integer_value(v) > HUB_METHOD_MAX_TIMEOUT_S) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "%s must be an integer from %d to %d", name,
                        min, HUB_METHOD_MAX_TIMEOUT_S);
        return false;
    }
    *out = (int)json_integer_value(v);
    return true;
}

static void methods(http_ctx *cx)
{
    method_ctx *mc = (method_ctx *)cx;
    cx->cleanup = method_cleanup;
    mc->id = cx->segments[1];
    json_t *body = http_body_json(cx);
    if (!body)
        return;
    const json_t *name = json_object_get(body, "methodName");
    if (!json_is_string(name) ||
        !az_valid_method_name(json_string_value(name), json_string_length(name))) {
        json_decref(body);
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "methodName is missing or not valid");
        return;
    }
    snprintf(mc->method, sizeof mc->method, "%s", json_string_value(name));
    bool ok =
        read_timeout(cx, body, "responseTimeoutInSeconds", HUB_METHOD_DEFAULT_RESPONSE_TIMEOUT_S,
                     HUB_METHOD_MIN_TIMEOUT_S, &mc->response_timeout) &&
        read_timeout(cx, body, "connectTimeoutInSeconds", 0, 0, &mc->connect_timeout);
    const json_t *payload = json_object_get(body, "payload");
    if (ok)
        mc->payload = json_dumps(payload ? payload : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    if (!ok)
        return;
    if (!mc->payload || strlen(mc->payload) > 128 * 1024) {
        http_send_error(cx, HUB_ERR_TOO_LARGE, "the payload is larger than 128 KB");
        return;
    }
    /* A connected device exists: no need to ask the store. */
    hub_dir_entry e;
    if (hub_dir_lookup(cx->h->dir, mc->id, &e))
        invoke(mc);
    else
        http_run(cx, exists_run, exists_done, HUB_WORK_READ);
}

const http_route http_methods_routes[] = {
    {"twins/*/methods", HTTPD_POST, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT, HTTP_BODY_METHOD,
     false, NULL, methods, sizeof(method_ctx)},
    {NULL, 0, 0, 0, 0, false, NULL, NULL, 0},
};
