/* Direct methods: each call waits for its device (connect timeout), then for the response. */
#include "hub/methods.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "hub/cluster/cluster.h"

/* A call id names its loop in the low bits (HUB_MAX_LOOPS is 64), so that the device's answer,
 * which echoes it as the request id, can be routed back without a shared table. */
#define LOOP_BITS 6
_Static_assert(HUB_MAX_LOOPS <= (1 << LOOP_BITS), "call ids name their loop in LOOP_BITS");

typedef enum {
    CALL_WAITING, /* the device is not connected or not subscribed: connect timer running */
    CALL_SENDING, /* handed to the device's loop, no answer from it yet */
    CALL_SENT,    /* on the wire: response timer running */
} call_state;

typedef struct method_call {
    struct method_call *next;
    hub_methods *owner;
    uint64_t id;
    char device_id[HUB_ID_MAX];
    char method[HUB_ID_MAX];
    char *payload;
    size_t payload_len;
    int response_timeout_s;
    call_state state;
    bool retry;      /* the device subscribed while the call was being sent: try again if refused */
    bool local_only; /* made for another node (hub_methods_remote_invoke): never forwarded */
    int64_t connect_deadline_ms; /* monotonic; 0: no waiting for the device */
    struct event *timer;
    hub_method_done done;
    void *ctx;
} method_call;

struct hub_methods {
    hub_loop *loop;
    method_call *calls;
    size_t ncalls;
    uint64_t next_seq;
};

hub_methods *hub_methods_new(hub_loop *loop)
{
    hub_methods *m = xcalloc(1, sizeof *m);
    if (m)
        m->loop = loop;
    return m;
}

static void unlink_call(hub_methods *m, method_call *call)
{
    for (method_call **pp = &m->calls; *pp; pp = &(*pp)->next) {
        if (*pp == call) {
            *pp = call->next;
            m->ncalls--;
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

static method_call *find_call(hub_methods *m, uint64_t id)
{
    for (method_call *call = m->calls; call; call = call->next)
        if (call->id == id)
            return call;
    return NULL;
}

static void arm(method_call *call, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    event_add(call->timer, &tv);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The device is not reachable now: wait for it until the connect deadline (none: the timer
 * fires at once and the call fails as not online, from its own callback, never from inside
 * hub_methods_invoke). */
static void wait_for_device(method_call *call)
{
    int64_t left = call->connect_deadline_ms ? call->connect_deadline_ms - mono_ms() : 0;
    call->state = CALL_WAITING;
    event_del(call->timer);
    arm(call, left > 0 ? left : 0);
}

static void on_sent(method_call *call)
{
    call->state = CALL_SENT;
    event_del(call->timer);
    arm(call, (int64_t)call->response_timeout_s * 1000);
}

/* ---- the request's trip to the device's loop and back ---- */

typedef struct {
    hub *h;
    unsigned from_loop;
    uint64_t id;
    bool delivered;
    char device_id[HUB_ID_MAX];
    char method[HUB_ID_MAX];
    size_t payload_len;
    char payload[];
} send_msg;

static void try_send(method_call *call);

/* The device's loop answered: sent, or not deliverable (not connected, not subscribed, not
 * reading). A subscription that arrived meanwhile makes it try again at once. */
static void send_result_task(hub_loop *loop, void *arg)
{
    send_msg *s = arg;
    method_call *call = loop->stopping ? NULL : find_call(loop->methods, s->id);
    bool delivered = s->delivered;
    xfree(s);
    if (!call || call->state != CALL_SENDING)
        return;
    if (delivered) {
        on_sent(call);
    } else if (call->retry) {
        call->retry = false;
        try_send(call);
    } else {
        wait_for_device(call);
    }
}

static void send_task(hub_loop *loop, void *arg)
{
    send_msg *s = arg;
    if (loop->stopping) {
        xfree(s);
        return;
    }
    char rid[24];
    snprintf(rid, sizeof rid, "%" PRIu64, s->id);
    s->delivered =
        hub_conn_send_method(loop, s->device_id, s->method, rid, s->payload, s->payload_len);
    if (!hub_loop_post(&s->h->loops[s->from_loop], send_result_task, s))
        xfree(s); /* the call times out */
}

/* A node that stopped answering is found out by this much beyond the device's own timeout. */
#define REMOTE_MARGIN_MS 2000

static void try_send(method_call *call)
{
    hub_loop *loop = call->owner->loop;
    hub *h = loop->h;
    hub_dir_entry e;
    if (!hub_dir_lookup(h->dir, call->device_id, &e) || e.loop >= h->nloops) {
        if (!h->cluster || call->local_only) {
            wait_for_device(call);
            return;
        }
        /* Maybe another node holds it: the answer (or "not there") comes back through
         * hub_methods_remote_result. */
        call->state = CALL_SENDING;
        call->retry = false;
        event_del(call->timer);
        arm(call, (int64_t)call->response_timeout_s * 1000 + REMOTE_MARGIN_MS);
        hub_cluster_method_request(h->cluster, call->id, call->device_id, call->method,
                                   call->payload, call->payload_len, call->response_timeout_s);
        return;
    }
    if (e.loop == loop->index) {
        char rid[24];
        snprintf(rid, sizeof rid, "%" PRIu64, call->id);
        if (hub_conn_send_method(loop, call->device_id, call->method, rid, call->payload,
                                 call->payload_len))
            on_sent(call);
        else
            wait_for_device(call);
        return;
    }
    send_msg *s = xmalloc(sizeof *s + call->payload_len);
    if (!s) {
        wait_for_device(call);
        return;
    }
    s->h = h;
    s->from_loop = loop->index;
    s->id = call->id;
    s->delivered = false;
    snprintf(s->device_id, sizeof s->device_id, "%s", call->device_id);
    snprintf(s->method, sizeof s->method, "%s", call->method);
    memcpy(s->payload, call->payload, call->payload_len);
    s->payload_len = call->payload_len;
    call->state = CALL_SENDING;
    call->retry = false;
    if (!hub_loop_post(&h->loops[e.loop], send_task, s)) {
        xfree(s);
        wait_for_device(call);
        return;
    }
    /* Until the device's loop answers, the response timer guards the call. */
    arm(call, (int64_t)call->response_timeout_s * 1000);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    method_call *call = arg;
    bool sent = call->state != CALL_WAITING;
    log_info("methods", "%s device=%s method=%s", sent ? "timed out" : "device not online",
             call->device_id, call->method);
    finish(call, sent ? IOTDM_E_TIMEOUT : IOTDM_E_NOT_ONLINE, 0, NULL, 0);
}

static iotdm_result invoke(hub_methods *m, const char *device_id, const char *method,
                           const char *payload, size_t payload_len, int response_timeout_s,
                           int connect_timeout_s, bool local_only, hub_method_done done, void *ctx,
                           uint64_t *out_id);

iotdm_result hub_methods_invoke(hub_methods *m, const char *device_id, const char *method,
                                const char *payload, size_t payload_len, int response_timeout_s,
                                int connect_timeout_s, hub_method_done done, void *ctx,
                                uint64_t *out_id)
{
    return invoke(m, device_id, method, payload, payload_len, response_timeout_s, connect_timeout_s,
                  false, done, ctx, out_id);
}

static iotdm_result invoke(hub_methods *m, const char *device_id, const char *method,
                           const char *payload, size_t payload_len, int response_timeout_s,
                           int connect_timeout_s, bool local_only, hub_method_done done, void *ctx,
                           uint64_t *out_id)
{
    if (m->ncalls >= HUB_METHOD_MAX_PENDING)
        return IOTDM_E_QUOTA;
    method_call *call = xcalloc(1, sizeof *call);
    if (!call)
        return -ENOMEM;
    call->owner = m;
    call->id = (++m->next_seq << LOOP_BITS) | m->loop->index;
    snprintf(call->device_id, sizeof call->device_id, "%s", device_id);
    snprintf(call->method, sizeof call->method, "%s", method);
    call->payload = xmalloc(payload_len ? payload_len : 1);
    call->timer = event_new(m->loop->base, -1, 0, timeout_cb, call);
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
    call->connect_deadline_ms = connect_timeout_s > 0 ? mono_ms() + connect_timeout_s * 1000LL : 0;
    call->done = done;
    call->ctx = ctx;
    call->local_only = local_only;
    call->next = m->calls;
    m->calls = call;
    m->ncalls++;
    *out_id = call->id;
    try_send(call); /* never finishes the call here: done runs from a later callback */
    return IOTDM_OK;
}

void hub_methods_cancel(hub_methods *m, uint64_t id)
{
    method_call *call = find_call(m, id);
    if (call)
        unlink_call(m, call);
}

/* ---- from the device's loop ---- */

typedef struct {
    char device_id[HUB_ID_MAX];
    uint64_t id;
    int status;
    size_t payload_len;
    char payload[];
} response_msg;

static void subscribed_task(hub_loop *loop, void *arg)
{
    response_msg *msg = arg;
    if (!loop->stopping) {
        /* try_send may finish calls: collect first, then send. */
        for (method_call *call = loop->methods->calls, *next; call; call = next) {
            next = call->next;
            if (strcmp(call->device_id, msg->device_id) != 0)
                continue;
            if (call->state == CALL_WAITING) {
                event_del(call->timer);
                try_send(call);
            } else if (call->state == CALL_SENDING) {
                call->retry = true;
            }
        }
    }
    xfree(msg);
}

void hub_methods_subscribed(hub *h, const char *device_id)
{
    hub_methods_subscribed_local(h, device_id);
    if (h->cluster)
        hub_cluster_methods_subscribed(h->cluster, device_id);
}

void hub_methods_subscribed_local(hub *h, const char *device_id)
{
    for (unsigned i = 0; i < h->nloops; i++) {
        response_msg *msg = xcalloc(1, sizeof *msg);
        if (!msg)
            continue;
        snprintf(msg->device_id, sizeof msg->device_id, "%s", device_id);
        if (!hub_loop_post(&h->loops[i], subscribed_task, msg))
            xfree(msg);
    }
}

static void response_task(hub_loop *loop, void *arg)
{
    response_msg *msg = arg;
    method_call *call = loop->stopping ? NULL : find_call(loop->methods, msg->id);
    if (call && call->state != CALL_WAITING && strcmp(call->device_id, msg->device_id) == 0)
        finish(call, IOTDM_OK, msg->status, msg->payload, msg->payload_len);
    else if (!loop->stopping)
        log_debug("methods", "response for no pending call device=%s rid=%" PRIu64, msg->device_id,
                  msg->id);
    xfree(msg);
}

void hub_methods_response(hub *h, const char *device_id, const char *rid, size_t rid_len,
                          int status, const char *payload, size_t payload_len)
{
    char text[24];
    if (rid_len == 0 || rid_len >= sizeof text)
        return;
    memcpy(text, rid, rid_len);
    text[rid_len] = '\0';
    char *end;
    uint64_t id = strtoull(text, &end, 10);
    unsigned loop = (unsigned)(id & ((1u << LOOP_BITS) - 1));
    if (*end || text[0] < '0' || text[0] > '9' || loop >= h->nloops)
        return; /* not a request id this hub made */
    response_msg *msg = xmalloc(sizeof *msg + payload_len + 1);
    if (!msg)
        return;
    snprintf(msg->device_id, sizeof msg->device_id, "%s", device_id);
    msg->id = id;
    msg->status = status;
    memcpy(msg->payload, payload, payload_len);
    msg->payload[payload_len] = '\0';
    msg->payload_len = payload_len;
    if (!hub_loop_post(&h->loops[loop], response_task, msg))
        xfree(msg);
}

/* ---- across the cluster ---- */

typedef struct {
    hub *h;
    uint64_t id;
    iotdm_result r;
    int status;
    size_t len;
    char payload[];
} remote_result_msg;

/* The other node's answer to a call of this loop: the device's, or "not there" (the call then
 * waits for the device like a local one, or tries again if the device subscribed meanwhile). */
static void remote_result_task(hub_loop *loop, void *arg)
{
    remote_result_msg *msg = arg;
    method_call *call = loop->stopping ? NULL : find_call(loop->methods, msg->id);
    if (call && call->state == CALL_SENDING) {
        if (msg->r == IOTDM_E_NOT_ONLINE) {
            bool retry = call->retry;
            call->retry = false;
            if (retry)
                try_send(call);
            else
                wait_for_device(call);
        } else {
            finish(call, msg->r, msg->status, msg->payload, msg->len);
        }
    }
    xfree(msg);
}

void hub_methods_remote_result(hub *h, uint64_t call_id, iotdm_result r, int status,
                               const char *payload, size_t len)
{
    unsigned loop = (unsigned)(call_id & ((1u << LOOP_BITS) - 1));
    if (loop >= h->nloops)
        return;
    remote_result_msg *msg = xmalloc(sizeof *msg + len + 1);
    if (!msg)
        return; /* the call's own timer ends it */
    msg->h = h;
    msg->id = call_id;
    msg->r = r;
    msg->status = status;
    msg->len = len;
    if (len)
        memcpy(msg->payload, payload, len);
    msg->payload[len] = '\0';
    if (!hub_loop_post(&h->loops[loop], remote_result_task, msg))
        xfree(msg);
}

typedef struct {
    hub *h;
    char origin[HUB_CLUSTER_NODE_ID_MAX];
    uint64_t id; /* the origin's call id */
    char device_id[HUB_ID_MAX];
    char method[HUB_ID_MAX];
    int response_timeout_s;
    size_t len;
    char payload[];
} remote_call_msg;

static void remote_done(void *ctx, iotdm_result r, int status, const char *payload, size_t len)
{
    remote_call_msg *msg = ctx;
    if (msg->h->cluster)
        hub_cluster_method_response(msg->h->cluster, msg->origin, msg->id, r, status, payload, len);
    xfree(msg);
}

/* Made here for the origin's call, as a local call that never waits for the device (the origin
 * does the waiting) and is never forwarded again. */
static void remote_call_task(hub_loop *loop, void *arg)
{
    remote_call_msg *msg = arg;
    if (loop->stopping) {
        xfree(msg);
        return;
    }
    uint64_t id;
    iotdm_result r = invoke(loop->methods, msg->device_id, msg->method, msg->payload, msg->len,
                            msg->response_timeout_s, 0, true, remote_done, msg, &id);
    if (r != IOTDM_OK)
        remote_done(msg, r, 0, NULL, 0);
}

void hub_methods_remote_invoke(hub *h, const char *origin, uint64_t call_id, const char *device_id,
                               const char *method, const char *payload, size_t len,
                               int response_timeout_s)
{
    if (strlen(origin) >= HUB_CLUSTER_NODE_ID_MAX || strlen(device_id) >= HUB_ID_MAX ||
        strlen(method) >= HUB_ID_MAX)
        return;
    if (response_timeout_s < HUB_METHOD_MIN_TIMEOUT_S ||
        response_timeout_s > HUB_METHOD_MAX_TIMEOUT_S)
        response_timeout_s = HUB_METHOD_DEFAULT_RESPONSE_TIMEOUT_S;
    remote_call_msg *msg = xmalloc(sizeof *msg + len + 1);
    if (!msg)
        return;
    msg->h = h;
    snprintf(msg->origin, sizeof msg->origin, "%s", origin);
    msg->id = call_id;
    snprintf(msg->device_id, sizeof msg->device_id, "%s", device_id);
    snprintf(msg->method, sizeof msg->method, "%s", method);
    msg->response_timeout_s = response_timeout_s;
    msg->len = len;
    if (len)
        memcpy(msg->payload, payload, len);
    msg->payload[len] = '\0';
    /* The loop holding the device if there is one (no hop between loops), else loop 0. */
    hub_dir_entry e;
    unsigned loop = hub_dir_lookup(h->dir, device_id, &e) && e.loop < h->nloops ? e.loop : 0;
    if (!hub_loop_post(&h->loops[loop], remote_call_task, msg))
        xfree(msg);
}
