/* DPS device API over HTTPS: PUT /{idScope}/registrations/{regId}/register and
 * GET /{idScope}/registrations/{regId}/operations/{operationId} (docs/protocol.md §7.11). The
 * attestation needs the enrollments, so it runs in the request's unit; from the headers only the
 * ID scope and the registration id's form are checked, and the body is small. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "hub/dps/dps.h"
#include "hub/http/internal.h"

typedef struct {
    http_ctx cx;
    bool is_register;
    hub_dps_creds creds;
    hub_dps_reply reply;
    char *body; /* taken from the request: the unit must not touch the request */
    size_t body_len;
} dps_device_ctx;

static void dps_cleanup(http_ctx *cx)
{
    dps_device_ctx *dc = (dps_device_ctx *)cx;
    hub_dps_reply_deinit(&dc->reply);
    hub_dps_creds_deinit(&dc->creds);
    xfree(dc->body);
}

bool http_dps_device_precheck(http_ctx *cx)
{
    if (strcasecmp(cx->segments[0], hub_dps_id_scope(cx->h)) != 0) {
        http_send_error(cx, (hub_error_info){404, 404001, "NotFound"}, "unknown ID scope '%s'",
                        cx->segments[0]);
        return false;
    }
    return true;
}

static iotdm_result dps_run(hub_work *w, hub_store *store)
{
    dps_device_ctx *dc = (dps_device_ctx *)w;
    http_ctx *cx = &dc->cx;
    const char *scope = cx->segments[0], *reg = cx->segments[2];
    if (dc->is_register) {
        hub_dps_register(cx->h, store, w, scope, reg, dc->body ? dc->body : "", dc->body_len,
                         &dc->creds, &dc->reply);
    } else {
        hub_dps_operation(cx->h, store, scope, reg, cx->segments[4], &dc->creds, false, &dc->reply);
    }
    /* A failed registration must leave nothing behind: its writes go with the unit. */
    return dc->reply.status >= 500 ? IOTDM_E_STORAGE : IOTDM_OK;
}

static void dps_done(http_ctx *cx)
{
    dps_device_ctx *dc = (dps_device_ctx *)cx;
    hub_dps_reply *reply = &dc->reply;
    if (cx->w.result < 0 && reply->status < 500) {
        hub_dps_reply_deinit(reply);
        hub_dps_error(reply, 500001, "the registration could not be recorded: %s",
                      iotdm_result_message(cx->w.result));
    }
    if (reply->retry_after >= 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", reply->retry_after);
        http_add_header(cx, "Retry-After", v);
    }
    if (reply->status < 300)
        httpd_req_authenticated(cx->req);
    json_t *body = reply->body;
    reply->body = NULL;
    http_send_json(cx, reply->status, body);
}

static void dps_device(http_ctx *cx)
{
    dps_device_ctx *dc = (dps_device_ctx *)cx;
    cx->cleanup = dps_cleanup;
    dc->is_register = cx->nsegments == 4;
    if (dc->is_register)
        dc->body = httpd_req_take_body(cx->req, &dc->body_len);
    hub_dps_creds_init(&dc->creds, http_client_ssl(cx), http_header(cx, "Authorization"), false);
    http_run(cx, dps_run, dps_done, 0);
}

const http_route http_dps_device_routes[] = {
    {"*/registrations/*/register", HTTPD_PUT, HTTP_AUTH_CUSTOM, 0, HTTP_BODY_SMALL, true,
     http_dps_device_precheck, dps_device, sizeof(dps_device_ctx)},
    {"*/registrations/*/operations/*", HTTPD_GET, HTTP_AUTH_CUSTOM, 0, HTTP_BODY_SMALL, true,
     http_dps_device_precheck, dps_device, sizeof(dps_device_ctx)},
    {NULL, 0, 0, 0, 0, false, NULL, NULL, 0},
};
