/* GET /iotdm/events: telemetry, connection and twin events as server-sent events, live or from a
 * point in the retained history (from=start|end|<seq>, or Last-Event-ID). */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/base64.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "hub/events.h"
#include "hub/http/internal.h"

#define SSE_BATCH        256
#define SSE_MAX_BUFFERED (4 * 1024 * 1024) /* a subscriber this far behind waits */
#define SSE_HEARTBEAT_S  15

typedef struct sse_client {
    struct sse_client *next;
    struct hub_sse *sse;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    int64_t cursor; /* next seq to send */
    char device_filter[HUB_ID_MAX];
    struct event *pump;
} sse_client;

struct hub_sse {
    hub_http *http;
    sse_client *clients;
    struct event *heartbeat;
};

static void client_free(sse_client *c)
{
    struct hub_sse *sse = c->sse;
    for (sse_client **pp = &sse->clients; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    event_free(c->pump);
    xfree(c);
}

/* libevent detaches an unfinished reply from a connection that fails and leaves the request to
 * us: free it, or every closed stream leaks one. */
void http_release_orphan(struct evhttp_request *req)
{
    if (!evhttp_request_get_connection(req))
        evhttp_request_free(req);
}

static void client_gone(struct evhttp_connection *conn, void *arg)
{
    (void)conn;
    sse_client *c = arg;
    http_release_orphan(c->req);
    client_free(c);
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
    return "telemetry";
}

typedef struct {
    sse_client *client;
    struct evbuffer *out;
    size_t count;
    int64_t durable_seq;
} pump_state;

static bool send_event(void *ctx, const hub_telemetry *m)
{
    pump_state *ps = ctx;
    if (m->seq > ps->durable_seq)
        return false; /* not acknowledged yet: it follows with its commit's wake-up */
    ps->count++;
    ps->client->cursor = m->seq + 1;
    if (ps->client->device_filter[0] && strcmp(ps->client->device_filter, m->device_id) != 0)
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
        evbuffer_add_printf(ps->out, "id: %lld\nevent: %s\ndata: %s\n\n", (long long)m->seq, name,
                            text);
    free(text);
    return true;
}

static size_t buffered(sse_client *c)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(c->conn);
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static void pump(sse_client *c)
{
    hub *h = c->sse->http->h;
    if (buffered(c) > SSE_MAX_BUFFERED)
        return; /* the next wake-up or heartbeat tries again */
    pump_state ps = {c, evbuffer_new(), 0, hub_events_durable_seq(h->events)};
    hub_store_telemetry_foreach(h->store, c->cursor, SSE_BATCH, send_event, &ps);
    if (evbuffer_get_length(ps.out))
        evhttp_send_reply_chunk(c->req, ps.out);
    evbuffer_free(ps.out);
    if (ps.count == SSE_BATCH)
        event_active(c->pump, 0, 0); /* more history: continue in the next loop pass */
}

static void pump_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

static void on_new_events(void *ctx)
{
    struct hub_sse *sse = ctx;
    for (sse_client *c = sse->clients; c; c = c->next)
        pump(c);
}

static void heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct hub_sse *sse = arg;
    for (sse_client *c = sse->clients; c; c = c->next) {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, ": keep-alive\n\n");
        evhttp_send_reply_chunk(c->req, b);
        evbuffer_free(b);
        pump(c);
    }
}

struct hub_sse *http_sse_new(hub_http *http)
{
    struct hub_sse *sse = xcalloc(1, sizeof *sse);
    if (!sse)
        return NULL;
    sse->http = http;
    sse->heartbeat = event_new(http->h->base, -1, EV_PERSIST, heartbeat_cb, sse);
    struct timeval tv = {SSE_HEARTBEAT_S, 0};
    event_add(sse->heartbeat, &tv);
    hub_events_listen(http->h->events, on_new_events, sse);
    return sse;
}

void http_sse_free(struct hub_sse *sse)
{
    while (sse->clients) {
        evhttp_connection_set_closecb(sse->clients->conn, NULL, NULL);
        client_free(sse->clients);
    }
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
        *out = hub_store_telemetry_last_seq(cx->h->store) + 1;
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

void http_events(http_ctx *cx)
{
    if (cx->method != EVHTTP_REQ_GET || cx->nsegments != 2) {
        http_send_error(cx, HUB_ERR_NOT_FOUND, "use GET /iotdm/events");
        return;
    }
    if (!http_authorize(cx, HUB_RIGHT_SERVICE_CONNECT))
        return;
    int64_t from;
    if (!parse_from(cx, &from)) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID,
                        "from must be start, end or a sequence number; Last-Event-ID a number");
        return;
    }
    const char *device = http_query_param(cx, "deviceId");
    sse_client *c = xcalloc(1, sizeof *c);
    if (!c || (device && strlen(device) >= sizeof c->device_filter)) {
        xfree(c);
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "deviceId is too long");
        return;
    }
    c->sse = cx->http->sse;
    c->req = cx->req;
    c->conn = evhttp_request_get_connection(cx->req);
    c->cursor = from;
    snprintf(c->device_filter, sizeof c->device_filter, "%s", device ? device : "");
    c->pump = event_new(cx->h->base, -1, 0, pump_cb, c);
    c->next = c->sse->clients;
    c->sse->clients = c;
    struct evkeyvalq *out = evhttp_request_get_output_headers(cx->req);
    evhttp_add_header(out, "Content-Type", "text/event-stream");
    evhttp_add_header(out, "Cache-Control", "no-cache");
    evhttp_send_reply_start(cx->req, 200, "OK");
    evhttp_connection_set_closecb(c->conn, client_gone, c);
    struct evbuffer *hello = evbuffer_new();
    evbuffer_add_printf(hello, ": iotdm events from %lld\n\n", (long long)from);
    evhttp_send_reply_chunk(cx->req, hello);
    evbuffer_free(hello);
    pump(c);
}
