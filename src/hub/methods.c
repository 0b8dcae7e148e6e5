/* Direct methods: each call waits for its device (connect timeout), then for the response. */
#include "hub/methods.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"

typedef struct method_call {
    struct method_call *next;
    hub_methods *owner;
    uint64_t id;
    char device_id[HUB_ID_MAX];
    char method[HUB_ID_MAX];
    char *payload;
    size_t payload_len;
    int response_timeout_s;
    bool sent;
    struct event *timer;
    hub_method_done done;
    void *ctx;
} method_call;

struct hub_methods {
    hub *h;
    method_call *calls;
    uint64_t next_id;
};

hub_methods *hub_methods_new(hub *h)
{
    hub_methods *m = xcalloc(1, sizeof *m);
    if (m)
        m->h = h;
    return m;
}

static void unlink_call(hub_methods *m, method_call *call)
{
    for (method_call **pp = &m->calls; *pp; pp = &(*pp)->next) {
        if (*pp == call) {
            *pp = call->next;
            break;
        }
    }
    event_free(call->timer);
    xfree(call->payload);
    xfree(call);
}

static void finish(method_call *call, iotdm_result r, int status, const char *payload, size_t len)
{
    hub_method_done done = call->done;
    void *ctx = call->ctx;
    unlink_call(call->owner, call);
    done(ctx, r, status, payload, len);
}

void hub_methods_free(hub_methods *m)
{
    if (!m)
        return;
    while (m->calls)
        finish(m->calls, IOTDM_E_TIMEOUT, 0, NULL, 0);
    xfree(m);
}

static void arm(method_call *call, int seconds)
{
    struct timeval tv = {seconds, 0};
    event_add(call->timer, &tv);
}

static bool try_send(method_call *call)
{
    char rid[24];
    snprintf(rid, sizeof rid, "%" PRIu64, call->id);
    if (!hub_conn_send_method(call->owner->h, call->device_id, call->method, rid, call->payload,
                              call->payload_len))
        return false;
    call->sent = true;
    arm(call, call->response_timeout_s);
    return true;
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    method_call *call = arg;
    log_info("methods", "%s device=%s method=%s", call->sent ? "timed out" : "device not online",
             call->device_id, call->method);
    finish(call, call->sent ? IOTDM_E_TIMEOUT : IOTDM_E_NOT_ONLINE, 0, NULL, 0);
}

iotdm_result hub_methods_invoke(hub_methods *m, const char *device_id, const char *method,
                                const char *payload, size_t payload_len, int response_timeout_s,
                                int connect_timeout_s, hub_method_done done, void *ctx,
                                uint64_t *out_id)
{
    method_call *call = xcalloc(1, sizeof *call);
    if (!call)
        return -ENOMEM;
    call->owner = m;
    call->id = ++m->next_id;
    snprintf(call->device_id, sizeof call->device_id, "%s", device_id);
    snprintf(call->method, sizeof call->method, "%s", method);
    call->payload = xmalloc(payload_len);
    call->timer = event_new(m->h->base, -1, 0, timeout_cb, call);
    if (!call->payload || !call->timer) {
        if (call->timer)
            event_free(call->timer);
        xfree(call->payload);
        xfree(call);
        return -ENOMEM;
    }
    memcpy(call->payload, payload, payload_len);
    call->payload_len = payload_len;
    call->response_timeout_s = response_timeout_s;
    call->done = done;
    call->ctx = ctx;
    call->next = m->calls;
    m->calls = call;
    *out_id = call->id;
    if (try_send(call))
        return IOTDM_OK;
    if (connect_timeout_s <= 0) {
        unlink_call(m, call);
        return IOTDM_E_NOT_ONLINE;
    }
    arm(call, connect_timeout_s);
    return IOTDM_OK;
}

void hub_methods_cancel(hub_methods *m, uint64_t id)
{
    for (method_call *call = m->calls; call; call = call->next) {
        if (call->id == id) {
            unlink_call(m, call);
            return;
        }
    }
}

void hub_methods_on_subscribed(hub_methods *m, const char *device_id)
{
    /* Sending can't change the list (no callbacks run), so a plain walk is safe. */
    for (method_call *call = m->calls; call; call = call->next) {
        if (!call->sent && strcmp(call->device_id, device_id) == 0) {
            event_del(call->timer);
            try_send(call);
        }
    }
}

void hub_methods_on_response(hub_methods *m, const char *device_id, const char *rid, size_t rid_len,
                             int status, const char *payload, size_t payload_len)
{
    char id_text[24];
    if (rid_len == 0 || rid_len >= sizeof id_text)
        return;
    memcpy(id_text, rid, rid_len);
    id_text[rid_len] = '\0';
    for (method_call *call = m->calls; call; call = call->next) {
        char mine[24];
        snprintf(mine, sizeof mine, "%" PRIu64, call->id);
        if (call->sent && strcmp(mine, id_text) == 0 && strcmp(call->device_id, device_id) == 0) {
            finish(call, IOTDM_OK, status, payload, payload_len);
            return;
        }
    }
    log_debug("methods", "response for no pending call device=%s rid=%s", device_id, id_text);
}
