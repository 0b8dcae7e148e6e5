/* DPS device API over HTTPS: PUT /{idScope}/registrations/{regId}/register and
 * GET /{idScope}/registrations/{regId}/operations/{operationId} (azure-protocols.md §3.9). */
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "hub/dps/dps.h"
#include "hub/http/internal.h"

static void send_reply(http_ctx *cx, hub_dps_reply *reply)
{
    struct evkeyvalq *headers = evhttp_request_get_output_headers(cx->req);
    if (reply->retry_after >= 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", reply->retry_after);
        evhttp_add_header(headers, "Retry-After", v);
    }
    int status = reply->status;
    json_t *body = reply->body;
    reply->body = NULL;
    http_send_json(cx, status, body);
}

void http_dps_device(http_ctx *cx)
{
    /* segments: {idScope} registrations {regId} register | operations {operationId} */
    hub_dps_creds creds = {http_header(cx, "Authorization"), http_client_ssl(cx), false};
    hub_dps_reply reply;
    const char *scope = cx->segments[0], *reg = cx->segments[2];
    if (cx->nsegments == 4 && strcmp(cx->segments[3], "register") == 0 &&
        cx->method == EVHTTP_REQ_PUT) {
        struct evbuffer *in = evhttp_request_get_input_buffer(cx->req);
        size_t len = evbuffer_get_length(in);
        if (len > HTTP_MAX_BODY) {
            hub_dps_error(&reply, 413000, "the request body is larger than %d bytes",
                          HTTP_MAX_BODY);
        } else {
            const char *data = (const char *)evbuffer_pullup(in, -1);
            hub_dps_register(cx->h, scope, reg, data ? data : "", len, &creds, &reply);
        }
    } else if (cx->nsegments == 5 && strcmp(cx->segments[3], "operations") == 0 &&
               cx->method == EVHTTP_REQ_GET) {
        hub_dps_operation(cx->h, scope, reg, cx->segments[4], &creds, false, &reply);
    } else {
        hub_dps_error(&reply, 404000, "no such provisioning operation");
    }
    send_reply(cx, &reply);
}
