/* Fuzzes the HTTPS server's request path: arbitrary bytes as one connection's input, through the
 * parser glue, the header and body limits, the application callbacks and the answers, over a
 * bufferevent pair (no socket, no TLS).
 *
 * Input: one control byte, then the connection's bytes. Control bits: 0-1 how the application
 * decides in on_headers (admit small, admit large, refuse 401, admit none), 2-3 how it answers
 * (now, later, streamed, held until the end), 4 the client does not read (backpressure), 5 the
 * client closes at the end instead of the server being freed, 6-7 how the input is split. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "hub/net/httpd_internal.h"
#include "hub/net/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    unsigned ctl;
    httpd_req *held;
    unsigned seen;
} fuzz_app;

static void on_headers(void *arg, httpd_req *req, httpd_admit *out)
{
    fuzz_app *a = arg;
    a->seen++;
    /* Everything the application may read must be readable. */
    const char *n, *v;
    for (size_t i = 0; httpd_req_header_at(req, i, &n, &v); i++)
        if (!n || !v)
            abort();
    if (!httpd_req_path(req) || !httpd_req_target(req) || !httpd_req_method_name(req))
        abort();
    (void)httpd_req_query(req);
    (void)httpd_req_header(req, "content-type");
    switch (a->ctl & 3) {
    case 0:
        out->max_body = 64;
        break;
    case 1:
        out->max_body = 4096;
        out->long_body = true;
        break;
    case 2:
        (void)httpd_add_header(req, "WWW-Authenticate", "SharedAccessSignature");
        httpd_respond(req, 401, "{}", 2);
        out->answered = true;
        break;
    default:
        out->max_body = 0;
        break;
    }
}

static void answer(httpd_req *req)
{
    size_t len;
    const char *body = httpd_req_body(req, &len);
    if (body[len] != '\0')
        abort(); /* bodies are NUL-terminated for parsers */
    httpd_respond(req, 200, body, len);
}

static void on_request(void *arg, httpd_req *req)
{
    fuzz_app *a = arg;
    switch ((a->ctl >> 2) & 3) {
    case 0:
        answer(req);
        break;
    case 2:
        httpd_stream_start(req, 200, NULL, NULL);
        httpd_stream_write(req, "data: x\n\n", 9);
        a->held = req;
        break;
    default:
        a->held = req;
        break;
    }
}

static void on_abort(void *arg, httpd_req *req)
{
    fuzz_app *a = arg;
    if (req == a->held)
        a->held = NULL;
}

/* The application's later callback: answers (or ends the stream of) what it holds. */
static void answer_held(fuzz_app *a)
{
    httpd_req *req = a->held;
    if (!req)
        return;
    a->held = NULL;
    if (((a->ctl >> 2) & 3) == 2)
        httpd_stream_end(req);
    else
        answer(req);
}

static void spin(struct event_base *base)
{
    for (int i = 0; i < 4; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct event_base *base;
    if (!base) {
        log_set_level(LOG_LVL_ERROR); /* refusals are expected by the million */
        base = event_base_new();
    }
    if (size < 1)
        return 0;
    fuzz_app app = {.ctl = data[0]};
    data++;
    size--;
    hub_net_limits limits;
    hub_net_limits_defaults(&limits);
    limits.output_limit = 2048;
    limits.body_memory = 8192;
    httpd_callbacks cb = {on_headers, on_request, on_abort};
    httpd *s = httpd_new(base, NULL, &limits, NULL, &cb, &app);
    struct bufferevent *pair[2];
    if (bufferevent_pair_new(base, 0, pair) != 0)
        abort();
    hub_admit_ticket none;
    memset(&none, 0, sizeof none);
    httpd_adopt_bufferevent(s, pair[0], NULL, NULL, "fuzz", none);
    struct bufferevent *client = pair[1];
    bufferevent_enable(client, (app.ctl & 16) ? EV_WRITE : EV_READ | EV_WRITE);

    static const size_t splits[4] = {1, 7, 64, SIZE_MAX};
    size_t step = splits[app.ctl >> 6];
    for (size_t off = 0; off < size;) {
        size_t n = size - off < step ? size - off : step;
        bufferevent_write(client, data + off, n);
        off += n;
        spin(base);
        if (((app.ctl >> 2) & 3) != 3)
            answer_held(&app);
        spin(base);
    }
    if (app.ctl & 32) {
        bufferevent_flush(client, EV_WRITE, BEV_FINISHED);
        bufferevent_free(client);
        client = NULL;
        spin(base);
        if (app.held)
            abort(); /* the peer went away: on_abort must have come */
    }
    if (httpd_connection_count(s) == 0 && s->body_reserved != 0)
        abort(); /* body memory leaked from the server's budget */
    httpd_free(s);
    if (app.held)
        abort(); /* httpd_free must abort every unanswered request */
    if (client) {
        struct evbuffer *in = bufferevent_get_input(client);
        unsigned char head[9];
        if (evbuffer_get_length(in) >= 9 &&
            (evbuffer_copyout(in, head, 9) != 9 || memcmp(head, "HTTP/1.1 ", 9) != 0))
            abort(); /* whatever the input, the output is HTTP */
        bufferevent_free(client);
    }
    spin(base);
    return 0;
}
