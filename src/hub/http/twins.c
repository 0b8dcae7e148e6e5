/* Twins: GET, PATCH (merge) and PUT (replace) /twins/{id} (docs/protocol.md §8.7). */
#include <stdio.h>
#include <string.h>

#include "hub/http/internal.h"
#include "hub/twin_ops.h"

typedef struct {
    http_ctx cx;
    const char *id;
    bool replace;
    uint64_t if_match;
    json_t *body;
    json_t *view; /* the answer, made by the unit */
    twin_error err;
} twin_ctx;

static void twin_cleanup(http_ctx *cx)
{
    twin_ctx *tc = (twin_ctx *)cx;
    json_decref(tc->body);
    json_decref(tc->view);
}

static void send_twin(http_ctx *cx, json_t *view)
{
    char etag[40];
    snprintf(etag, sizeof etag, "\"%s\"", json_string_value(json_object_get(view, "etag")));
    http_add_header(cx, "ETag", etag);
    http_send_json(cx, 200, view);
}

static iotdm_result get_run(hub_work *w, hub_store *store)
{
    twin_ctx *tc = (twin_ctx *)w;
    hub_device d;
    hub_twin t;
    iotdm_result r = hub_store_device_get(store, tc->id, &d);
    if (r == IOTDM_OK)
        r = hub_store_twin_get(store, tc->id, &t);
    if (r == IOTDM_OK) {
        tc->view = hub_twin_service_view(&d, &t);
        hub_twin_deinit(&t);
    }
    return r;
}

static iotdm_result update_run(hub_work *w, hub_store *store)
{
    twin_ctx *tc = (twin_ctx *)w;
    return hub_twin_update_service(store, w, tc->id, tc->body, tc->replace, tc->if_match, &tc->view,
                                   &tc->err);
}

static void twin_done(http_ctx *cx)
{
    twin_ctx *tc = (twin_ctx *)cx;
    iotdm_result r = cx->w.result;
    if (r == IOTDM_E_NOT_FOUND) {
        http_send_error(cx, HUB_ERR_DEVICE_NOT_FOUND, "Device with id '%s' was not found.", tc->id);
    } else if (r < 0 && r != -ENOSPC) {
        http_send_error(cx, hub_error_for(r), "%s",
                        tc->err.message[0] ? tc->err.message : iotdm_result_message(r));
    } else if (r < 0) {
        http_send_result_error(cx, r, "cannot update the twin");
    } else {
        json_t *view = tc->view;
        tc->view = NULL;
        send_twin(cx, view);
    }
}

static void twins(http_ctx *cx)
{
    twin_ctx *tc = (twin_ctx *)cx;
    cx->cleanup = twin_cleanup;
    tc->id = cx->segments[1];
    if (cx->method == HTTPD_GET) {
        http_run(cx, get_run, twin_done, HUB_WORK_READ);
        return;
    }
    if (!hub_parse_twin_if_match(http_header(cx, "If-Match"), &tc->if_match)) {
        http_send_error(cx, HUB_ERR_PRECONDITION, "If-Match does not match the twin's etag");
        return;
    }
    tc->body = http_body_json(cx);
    if (!tc->body)
        return;
    tc->replace = cx->method == HTTPD_PUT;
    http_run(cx, update_run, twin_done, HUB_WORK_GROWS);
}

const http_route http_twins_routes[] = {
    {"twins/*", HTTPD_GET | HTTPD_PATCH | HTTPD_PUT, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT,
     HTTP_BODY_JSON, false, NULL, twins, sizeof(twin_ctx)},
    {NULL, 0, 0, 0, 0, false, NULL, NULL, 0},
};
