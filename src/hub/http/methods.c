/* POST /twins/{id}/methods: invoke a direct method and answer when the device does (§4.5). */
#include <event2/http.h>
#include <string.h>

#include "common/alloc.h"
#include "hub/http/internal.h"
#include "hub/methods.h"
#include "proto/azure_topics.h"

/* The request outlives the routing context: this is what the method call keeps. */
typedef struct {
    hub *h;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    uint64_t call_id;
    char device_id[HUB_ID_MAX];
} pending_invoke;

static void client_gone(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    pending_invoke *p = arg;
    hub_methods_cancel(p->h->methods, p->call_id);
    http_release_orphan(p->req);
    xfree(p);
}

static void invoke_done(void *ctx, iotdm_result r, int status, const char *payload, size_t len)
{
    pending_invoke *p = ctx;
    evhttp_connection_set_closecb(p->conn, NULL, NULL);
    http_ctx cx = {.h = p->h, .req = p->req};
    if (r == IOTDM_E_NOT_ONLINE) {
        http_send_error(&cx, HUB_ERR_DEVICE_NOT_ONLINE,
                        "Timed out waiting for device '%s' to connect.", p->device_id);
    } else if (r == IOTDM_E_TIMEOUT) {
        http_send_error(&cx, HUB_ERR_GATEWAY_TIMEOUT,
                        "Timed out waiting for the response from device '%s'.", p->device_id);
    } else {
        json_error_t err;
        json_t *payload_json = len ? json_loadb(payload, len, JSON_DECODE_ANY, &err) : json_null();
        if (!payload_json)
            payload_json = json_stringn(payload, len); /* a device answered with non-JSON */
        if (!payload_json)
            payload_json = json_null();
        http_send_json(&cx, 200,
                       json_pack("{s:i, s:o}", "status", status, "payload", payload_json));
    }
    xfree(p);
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

void http_methods(http_ctx *cx)
{
    if (cx->method != EVHTTP_REQ_POST) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "methods are invoked with POST");
        return;
    }
    if (!http_authorize(cx, HUB_RIGHT_SERVICE_CONNECT))
        return;
    const char *id = cx->segments[1];
    json_t *body = http_body_json(cx);
    if (!body)
        return;
    const json_t *name = json_object_get(body, "methodName");
    int response_timeout, connect_timeout;
    if (!json_is_string(name) ||
        !az_valid_method_name(json_string_value(name), json_string_length(name))) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "methodName is missing or not valid");
    } else if (read_timeout(cx, body, "responseTimeoutInSeconds",
                            HUB_METHOD_DEFAULT_RESPONSE_TIMEOUT_S, HUB_METHOD_MIN_TIMEOUT_S,
                            &response_timeout) &&
               read_timeout(cx, body, "connectTimeoutInSeconds", 0, 0, &connect_timeout)) {
        hub_device d;
        const json_t *payload = json_object_get(body, "payload");
        char *text = json_dumps(payload ? payload : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
        pending_invoke *p = xcalloc(1, sizeof *p);
        iotdm_result r = hub_store_device_get(cx->h->store, id, &d);
        if (r == IOTDM_E_NOT_FOUND) {
            http_send_error(cx, HUB_ERR_DEVICE_NOT_FOUND, "Device with id '%s' was not found.", id);
        } else if (!text || !p || strlen(text) > 128 * 1024) {
            http_send_error(cx, HUB_ERR_TOO_LARGE, "the payload is larger than 128 KB");
        } else {
            p->h = cx->h;
            p->req = cx->req;
            p->conn = evhttp_request_get_connection(cx->req);
            snprintf(p->device_id, sizeof p->device_id, "%s", id);
            r = hub_methods_invoke(cx->h->methods, id, json_string_value(name), text, strlen(text),
                                   response_timeout, connect_timeout, invoke_done, p, &p->call_id);
            if (r == IOTDM_OK) {
                evhttp_connection_set_closecb(p->conn, client_gone, p);
                p = NULL; /* owned by the call now */
            } else {
                http_send_error(cx, HUB_ERR_DEVICE_NOT_ONLINE, "The device '%s' is not online.",
                                id);
            }
        }
        xfree(p);
        free(text);
    }
    json_decref(body);
}
