/* Direct methods (docs/protocol.md §4.5): $iothub/methods/POST/{name}/?$rid= dispatched to the
 * registered handler, answered on $iothub/methods/res/{status}/?$rid=; unknown names get 404. */
#include <stdio.h>
#include <string.h>

#include "client/internal.h"
#include "common/alloc.h"

static method_entry *find_method(iotdm_client *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->nmethods; i++)
        if (strlen(c->methods[i].name) == len && !memcmp(c->methods[i].name, name, len))
            return &c->methods[i];
    return NULL;
}

IOTDM_API iotdm_result iotdm_method_register(iotdm_client *c, const char *name, iotdm_method_fn fn,
                                             void *ctx)
{
    if (!c || !name || !fn || !az_valid_method_name(name, strlen(name)))
        return -EINVAL;
    iotdm_result r = IOTDM_OK;
    client_lock(c);
    method_entry *e = find_method(c, name, strlen(name));
    if (e) {
        e->fn = fn;
        e->ctx = ctx;
    } else if (c->nmethods == CLIENT_MAX_METHODS) {
        r = IOTDM_E_TOO_LARGE;
    } else {
        method_entry *grown = xrealloc(c->methods, (c->nmethods + 1) * sizeof *grown);
        char *copy = grown ? xstrdup(name) : NULL;
        if (grown)
            c->methods = grown;
        if (!copy) {
            r = -ENOMEM;
        } else {
            c->methods[c->nmethods++] = (method_entry){copy, fn, ctx};
        }
    }
    client_unlock(c);
    return r;
}

void methods_free(iotdm_client *c)
{
    for (size_t i = 0; i < c->nmethods; i++)
        xfree(c->methods[i].name);
    xfree(c->methods);
    c->methods = NULL;
    c->nmethods = 0;
}

static void respond(iotdm_client *c, int status, az_span rid, const char *body)
{
    char topic[128];
    if (!az_format_method_response(topic, sizeof topic, status, rid.ptr, rid.len)) {
        CLOG(c, IOTDM_LOG_WARN, "methods: request id too long; no response sent");
        return;
    }
    iotdm_result r = conn_publish(c, topic, body, strlen(body), 0, NULL);
    /* The hub times the call out (504 to the caller); nothing here can answer it later. */
    if (r < 0)
        CLOG(c, IOTDM_LOG_WARN, "methods: the response to $rid %.*s was not sent: %s", (int)rid.len,
             rid.ptr, iotdm_result_message(r));
}

/* Runs the handler; returns the status and sets *out_body (malloc'd, or NULL for "null"). */
static int call_handler(iotdm_client *c, method_entry *e, const char *name, const void *payload,
                        size_t len, char **out_body)
{
    char *req = xmalloc(len + 1);
    if (!req)
        return 500;
    memcpy(req, payload, len);
    req[len] = '\0';
    /* docs/protocol.md §4.5: the hub always sends JSON; an empty body is the null payload. */
    const char *arg = len ? req : "null";
    iotdm_method_fn fn = e->fn; /* e may move while the lock is released */
    void *ctx = e->ctx;
    client_unlock(c);
    int status = fn(ctx, name, arg, out_body);
    client_lock(c);
    xfree(req);
    if (status < 0 || status > 65535) {
        CLOG(c, IOTDM_LOG_WARN, "methods: %s returned status %d; answering 500", name, status);
        status = 500;
    }
    return status;
}

void methods_dispatch(iotdm_client *c, const az_hub_topic *t, const void *payload, size_t len)
{
    char name[256];
    if (t->method_name.len >= sizeof name || t->rid.len == 0) {
        CLOG(c, IOTDM_LOG_WARN, "methods: malformed request ignored");
        return;
    }
    memcpy(name, t->method_name.ptr, t->method_name.len);
    name[t->method_name.len] = '\0';
    if (len > CLIENT_METHOD_MAX_BYTES) {
        respond(c, 413, t->rid, "{\"message\":\"payload too large\"}");
        return;
    }
    method_entry *e = find_method(c, name, t->method_name.len);
    if (!e) {
        CLOG(c, IOTDM_LOG_INFO, "methods: %s is not registered; answering 404", name);
        respond(c, 404, t->rid, "{\"message\":\"no such method\"}");
        return;
    }
    CLOG(c, IOTDM_LOG_DEBUG, "methods: calling %s", name);
    char *body = NULL;
    int status = call_handler(c, e, name, payload, len, &body);
    if (body && strlen(body) > CLIENT_METHOD_MAX_BYTES) {
        CLOG(c, IOTDM_LOG_WARN, "methods: %s answered more than 128 KB; answering 500", name);
        free(body);
        body = NULL;
        status = 500;
    }
    respond(c, status, t->rid, body ? body : "null");
    free(body);
}
