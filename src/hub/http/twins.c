/* Twins: GET, PATCH (merge) and PUT (replace) /twins/{id} (azure-protocols.md §4.3). */
#include <string.h>

#include "hub/http/internal.h"
#include "hub/twin_ops.h"

static void get_twin(http_ctx *cx, const char *id)
{
    hub_device d;
    hub_twin t;
    iotdm_result r = hub_store_device_get(cx->h->store, id, &d);
    if (r == IOTDM_OK)
        r = hub_store_twin_get(cx->h->store, id, &t);
    if (r == IOTDM_E_NOT_FOUND) {
        http_send_error(cx, HUB_ERR_DEVICE_NOT_FOUND, "Device with id '%s' was not found.", id);
        return;
    }
    if (r < 0) {
        http_send_result_error(cx, r, "cannot read the twin");
        return;
    }
    json_t *view = hub_twin_service_view(&d, &t);
    hub_twin_deinit(&t);
    char etag[24];
    snprintf(etag, sizeof etag, "\"%s\"", json_string_value(json_object_get(view, "etag")));
    evhttp_add_header(evhttp_request_get_output_headers(cx->req), "ETag", etag);
    http_send_json(cx, 200, view);
}

static void update_twin(http_ctx *cx, const char *id, bool replace)
{
    uint64_t if_match;
    if (!hub_parse_twin_if_match(http_header(cx, "If-Match"), &if_match)) {
        http_send_error(cx, HUB_ERR_PRECONDITION, "If-Match does not match the twin's etag");
        return;
    }
    json_t *body = http_body_json(cx);
    if (!body)
        return;
    json_t *twin = NULL;
    twin_error err = {""};
    iotdm_result r = hub_twin_update_service(cx->h, id, body, replace, if_match, &twin, &err);
    json_decref(body);
    if (r == IOTDM_E_NOT_FOUND)
        http_send_error(cx, HUB_ERR_DEVICE_NOT_FOUND, "Device with id '%s' was not found.", id);
    else if (r < 0)
        http_send_error(cx, hub_error_for(r), "%s",
                        err.message[0] ? err.message : iotdm_result_message(r));
    else
        http_send_json(cx, 200, twin);
}

void http_twins(http_ctx *cx)
{
    if (cx->nsegments != 2) {
        http_send_error(cx, HUB_ERR_NOT_FOUND, "no such resource (modules are not supported yet)");
        return;
    }
    if (!http_authorize(cx, HUB_RIGHT_SERVICE_CONNECT))
        return;
    const char *id = cx->segments[1];
    switch (cx->method) {
    case EVHTTP_REQ_GET:
        get_twin(cx, id);
        break;
    case EVHTTP_REQ_PATCH:
        update_twin(cx, id, false);
        break;
    case EVHTTP_REQ_PUT:
        update_twin(cx, id, true);
        break;
    default:
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "method not allowed on /twins/{id}");
    }
}
