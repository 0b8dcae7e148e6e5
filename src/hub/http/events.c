/* GET /iotdm/events: telemetry, connection and twin events as server-sent events, live or from a
 * point in the retained history (from=start|end|<seq>, or Last-Event-ID). */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/base64.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "hub/events.h"
#include "hub/http/internal.h"

#define SSE_BATCH       256
#define SSE_HEARTBEAT_S 15

typedef struct sse_client {
    http_ctx cx; /* first */
    struct sse_client *next;
    struct hub_sse *sse;
    int64_t cursor; /* next seq to send */
    char device_filter[HUB_ID_MAX];
    bool listed;
    bool again;           /* new events arrived while a pump ran */
    int64_t durable_seq;  /* the pump reads up to here */
    size_t count;         /* rows the pump read */
    struct evbuffer *out; /* what the pump formatted */
} sse_client;

struct hub_sse {
    hub_http *http;
    sse_client *clients;
    struct event *heartbeat;
};

static void unlist(sse_client *c)
{
    if (!c->listed)
        return;
    for (sse_client **pp = &c->sse->clients; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    c->listed = false;
}

static void client_cleanup(http_ctx *cx)
{
    sse_client *c = (sse_client *)cx;
    unlist(c);
    if (c->out)
        evbuffer_free(c->out);
    c->out = NULL;
}

/* The event as JSON: the message, its properties, and the body as text or base64. */
static json_t *event_json(const hub_telemetry *m)
{
    char when[32];
    time_format_iso(m->enqueued_ms, when, sizeof when);
    json_t *j = json_pack("{s:I, s:s, s:s, s:O, s:O}", "seq", (json_int_t)m->seq, "deviceId",
                          m->device_id, "enqueuedTimeUtc", when, "systemProperties",
                          m->system_properties, "properties", m->properties);
    if (m->module_id[0])
        json_object_set_new(j, "moduleId", json_string(m->module_id));
    json_t *text = json_stringn((const char *)m->body, m->body_len);
    if (text) {
        json_object_set_new(j, "body", text);
    } else {
        size_t cap = BASE64_ENCODED_LEN(m->body_len) + 1;
        char *b64 = xmalloc(cap);
        if (b64 && base64_encode(m->body, m->body_len, b64, cap) >= 0) {
            json_object_set_new(j, "body", json_string(b64));
            json_object_set_new(j, "bodyEncoding", json_string("base64"));
        }
        xfree(b64);
    }
    return j;
}

static const char *event_name(const hub_telemetry *m)
{
    const char *src =
        json_string_value(json_object_get(m->system_properties, "iothub-message-source"));
    if (src && strcmp(src, HUB_EVENT_CONNECTION) == 0)
        return "connection";
    if (src && strcmp(src, HUB_EVENT_TWIN) == 0)
        return "twin";
    if (src && strcmp(src, HUB_EVENT_FILE) == 0)
        return "fileUpload";
    if (src && strcmp(src, HUB_EVENT_JOB) == 0)
        return "job";
    if (src && strcmp(src, HUB_EVENT_DEVICE_JOB) == 0)
        return "deviceJob";
    return "telemetry";
}

static bool send_event(void *ctx, const hub_telemetry *m)
{
    sse_client *c = ctx;
    if (m->seq > c->durable_seq)
        return false; /* not acknowledged yet: it follows with its group's wake-up */
    c->count++;
    c->cursor = m->seq + 1;
    if (c->device_filter[0] && strcmp(c->device_filter, m->device_id) != 0)
        return true;
    json_t *j = event_json(m);
    const char *name = event_name(m);
    json_t *data = j;
    /* Connection and twin events carry their own JSON document as the data. */
    if (strcmp(name, "telemetry") != 0) {
        json_error_t err;
        data = json_loadb((const char *)m->body, m->body_len, 0, &err);
        if (data)
            json_object_set_new(data, "seq", json_integer(m->seq));
        else
            data = json_incref(j);
    } else {
        json_incref(data);
    }
    char *text = json_dumps(data, JSON_COMPACT);
    json_decref(data);
    json_decref(j);
    if (text)
        evbuffer_add_printf(c->out, "id: %lld\nevent: %s\ndata: %s\n\n", (long long)m->seq, name,
                            text);
    free(text);
    return true;
}

/* On a reader thread: the next batch of durable events, formatted. */
static iotdm_result pump_run(hub_work *w, hub_store *store)
{
    sse_client *c = (sse_client *)w;
    c->count = 0;
    return hub_store_telemetry_foreach(store, c->cursor, SSE_BATCH, send_event, c);
}

static void pump(sse_client *c);

static void pump_done(http_ctx *cx)
{
    sse_client *c = (sse_client *)cx;
    if (!cx->req)
        return;
    if (cx->w.result < 0)
        log_warn("events", "cannot read events: %s", iotdm_result_message(cx->w.result));
    size_t n = evbuffer_get_length(c->out);
    if (n) {
        char *text = xmalloc(n);
        if (text) {
            evbuffer_remove(c->out, text, n);
            httpd_stream_write(cx->req, text, n);
            xfree(text);
        } else {
            evbuffer_drain(c->out, n);
        }
    }
    /* More history, or events that arrived meanwhile: go on. */
    if (cx->w.result >= 0 && (c->count == SSE_BATCH || c->again)) {
        c->again = false;
        pump(c);
    }
}

static void pump(sse_client *c)
{
    http_ctx *cx = &c->cx;
    if (!cx->req)
        return;
    if (cx->in_unit) {
        c->again = true;
        return;
    }
    /* A subscriber this far behind waits for its output to drain (on_drain pumps again). */
    if (httpd_req_unsent(cx->req) > cx->h->cfg.limits.output_limit / 2)
        return;
    c->durable_seq = hub_events_durable_seq(cx->h);
    if (c->cursor > c->durable_seq)
        return;
    http_run(cx, pump_run, pump_done, HUB_WORK_SNAPSHOT);
}

static void on_drain(void *arg, httpd_req *req)
{
    (void)req;
    pump(arg);
}

static void on_new_events(hub_loop *loop, void *ctx)
{
    (void)loop;
    struct hub_sse *sse = ctx;
    for (sse_client *c = sse->clients; c; c = c->next)
        pump(c);
}

static void heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct hub_sse *sse = arg;
    static const char beat[] = ": keep-alive\n\n";
    for (sse_client *c = sse->clients; c; c = c->next) {
        if (c->cx.req)
            httpd_stream_write(c->cx.req, beat, sizeof beat - 1);
        pump(c);
    }
}

struct hub_sse *http_sse_new(hub_http *http)
{
    struct hub_sse *sse = xcalloc(1, sizeof *sse);
    if (!sse)
        return NULL;
    sse->http = http;
    sse->heartbeat = event_new(http->loop->base, -1, EV_PERSIST, heartbeat_cb, sse);
    if (!sse->heartbeat) {
        xfree(sse);
        return NULL;
    }
    struct timeval tv = {SSE_HEARTBEAT_S, 0};
    event_add(sse->heartbeat, &tv);
    hub_events_listen(http->loop, on_new_events, sse);
    return sse;
}

void http_sse_free(struct hub_sse *sse)
{
    /* The clients' requests are aborted by the server (httpd_free): unlist them now. */
    while (sse->clients)
        unlist(sse->clients);
    hub_events_listen(sse->http->loop, NULL, NULL);
    event_free(sse->heartbeat);
    xfree(sse);
}

static bool parse_from(http_ctx *cx, int64_t *out)
{
    const char *last = http_header(cx, "Last-Event-ID");
    const char *from = http_query_param(cx, "from");
    char *end;
    if (last) {
        long long v = strtoll(last, &end, 10);
        *out = v + 1;
        return *end == '\0' && v >= 0;
    }
    if (!from || strcmp(from, "end") == 0) {
        *out = hub_events_durable_seq(cx->h) + 1;
        return true;
    }
    if (strcmp(from, "start") == 0) {
        *out = 0;
        return true;
    }
    long long v = strtoll(from, &end, 10);
    *out = v;
    return *end == '\0' && v >= 0;
}

static void events(http_ctx *cx)
{
    sse_client *c = (sse_client *)cx;
    cx->cleanup = client_cleanup;
    int64_t from;
    if (!parse_from(cx, &from)) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID,
                        "from must be start, end or a sequence number; Last-Event-ID a number");
        return;
    }
    const char *device = http_query_param(cx, "deviceId");
    if (device && strlen(device) >= sizeof c->device_filter) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "deviceId is too long");
        return;
    }
    c->out = evbuffer_new();
    if (!c->out) {
        http_send_result_error(cx, -ENOMEM, "cannot stream events");
        return;
    }
    c->sse = cx->http->sse;
    c->cursor = from;
    snprintf(c->device_filter, sizeof c->device_filter, "%s", device ? device : "");
    c->next = c->sse->clients;
    c->sse->clients = c;
    c->listed = true;
    cx->held = true; /* a stream: answered until the connection ends */
    http_add_header(cx, "Content-Type", "text/event-stream");
    http_add_header(cx, "Cache-Control", "no-cache");
    httpd_stream_start(cx->req, 200, on_drain, c);
    char hello[64];
    int n = snprintf(hello, sizeof hello, ": iotdm events from %lld\n\n", (long long)from);
    httpd_stream_write(cx->req, hello, (size_t)n);
    pump(c);
}

const http_route http_events_routes[] = {
    {"iotdm/events", HTTPD_GET, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT, HTTP_BODY_NONE, false,
     NULL, events, sizeof(sse_client)},
    {NULL, 0, 0, 0, 0, false, NULL, NULL, 0},
};
