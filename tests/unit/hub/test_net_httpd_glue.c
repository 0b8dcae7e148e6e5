/* The HTTP server's parser glue and answers, driven over a bufferevent pair (no socket, no TLS,
 * no thread): framing, header limits, NUL bytes, bodies and their limits, 100-continue,
 * keep-alive rules, HEAD, streams, pipelining one request at a time, answers given later and
 * on_abort. The bytes on the wire are what the assertions look at. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "hub/net/httpd_internal.h"
#include "hub/net/limits.h"
#include "net_app.h"

typedef struct {
    struct event_base *base;
    hub_net_limits limits;
    httpd *s;
    struct bufferevent *client;
    test_app app;
    char out[256 * 1024];
    size_t out_len;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->base = event_base_new();
    hub_net_limits_defaults(&f->limits);
    f->app.max_body = 1024;
    *state = f;
    return 0;
}

static void start(fx *f)
{
    httpd_callbacks cb = app_callbacks();
    f->s = httpd_new(f->base, NULL, &f->limits, NULL, &cb, &f->app);
    struct bufferevent *pair[2];
    assert_int_equal(bufferevent_pair_new(f->base, 0, pair), 0);
    hub_admit_ticket none;
    memset(&none, 0, sizeof none);
    httpd_adopt_bufferevent(f->s, pair[0], NULL, NULL, "test:1", none);
    f->client = pair[1];
    bufferevent_enable(f->client, EV_READ | EV_WRITE);
}

static int teardown(void **state)
{
    fx *f = *state;
    httpd_free(f->s);
    if (f->client)
        bufferevent_free(f->client);
    event_base_free(f->base);
    free(f);
    return 0;
}

static void spin(fx *f)
{
    for (int i = 0; i < 8; i++)
        event_base_loop(f->base, EVLOOP_NONBLOCK);
}

static void send_text(fx *f, const char *text)
{
    bufferevent_write(f->client, text, strlen(text));
    spin(f);
}

/* Everything the server sent so far, accumulated in f->out. */
static const char *received(fx *f)
{
    struct evbuffer *in = bufferevent_get_input(f->client);
    size_t n = evbuffer_get_length(in);
    assert_true(f->out_len + n < sizeof f->out);
    evbuffer_remove(in, f->out + f->out_len, n);
    f->out_len += n;
    f->out[f->out_len] = '\0';
    return f->out;
}

static int occurrences(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* The client goes away: the pair reports EOF to the server's end. */
static void client_close(fx *f)
{
    bufferevent_flush(f->client, EV_WRITE, BEV_FINISHED);
    bufferevent_free(f->client);
    f->client = NULL;
    spin(f);
}

static bool closed(fx *f)
{
    return httpd_connection_count(f->s) == 0;
}

static void test_glue_get_is_answered_with_framing_headers(void **state)
{
    fx *f = *state;
    start(f);
    send_text(f, "GET /a/b%20c?x=1&y HTTP/1.1\r\nHost: h\r\nX-Trail:  v  \r\n\r\n");
    const char *out = received(f);
    assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(out, "\r\nDate: "));
    assert_non_null(strstr(out, " GMT\r\n"));
    assert_non_null(strstr(out, "\r\nContent-Length: 11\r\n"));
    assert_null(strstr(out, "Connection:"));
    assert_non_null(strstr(out, "\r\n\r\nok:/a/b%20c"));
    assert_string_equal(f->app.path, "/a/b%20c");
    assert_string_equal(f->app.query, "x=1&y");
    assert_string_equal(f->app.target, "/a/b%20c?x=1&y");
    assert_string_equal(f->app.method, "GET");
    assert_false(closed(f));
}

static void check_headers(void *arg, httpd_req *req, httpd_admit *out)
{
    (void)arg;
    assert_string_equal(httpd_req_header(req, "x-trail"), "v");
    assert_string_equal(httpd_req_header(req, "X-EMPTY"), "");
    assert_null(httpd_req_header(req, "missing"));
    const char *n, *v;
    assert_true(httpd_req_header_at(req, 0, &n, &v));
    assert_string_equal(n, "Host");
    assert_false(httpd_req_header_at(req, 3, &n, &v));
    assert_true(httpd_add_header(req, "X-Ok", "fine"));
    assert_false(httpd_add_header(req, "Bad Name", "v"));
    assert_false(httpd_add_header(req, "X-Split", "a\r\nInjected: 1"));
    assert_false(httpd_add_header(req, "content-length", "5"));
    assert_false(httpd_add_header(req, "Connection", "keep-alive"));
    httpd_respond(req, 204, NULL, 0);
    out->answered = true;
}

static void test_glue_headers_are_trimmed_and_response_headers_checked(void **state)
{
    fx *f = *state;
    httpd_callbacks cb = {check_headers, app_on_request, app_on_abort};
    f->s = httpd_new(f->base, NULL, &f->limits, NULL, &cb, &f->app);
    struct bufferevent *pair[2];
    assert_int_equal(bufferevent_pair_new(f->base, 0, pair), 0);
    hub_admit_ticket none = {0};
    httpd_adopt_bufferevent(f->s, pair[0], NULL, NULL, "test:1", none);
    f->client = pair[1];
    bufferevent_enable(f->client, EV_READ | EV_WRITE);
    send_text(f, "GET / HTTP/1.1\r\nHost: h\r\nX-Trail: v \t\r\nX-Empty:\r\n\r\n");
    const char *out = received(f);
    assert_non_null(strstr(out, "HTTP/1.1 204 No Content\r\n"));
    assert_non_null(strstr(out, "\r\nX-Ok: fine\r\n"));
    assert_null(strstr(out, "Injected"));
    assert_null(strstr(out, "Content-Length")); /* 204 has none */
}

static void test_glue_nul_in_target_or_header_is_refused_with_400(void **state)
{
    fx *f = *state;
    start(f);
    static const char req[] = "GET /twins/devA\0xyz HTTP/1.1\r\n\r\n";
    bufferevent_write(f->client, req, sizeof req - 1);
    spin(f);
    assert_non_null(strstr(received(f), "HTTP/1.1 400 Bad Request\r\n"));
    assert_int_equal(f->app.headers, 0);
    assert_true(closed(f));

    f->out_len = 0;
    httpd_free(f->s);
    bufferevent_free(f->client);
    start(f);
    static const char hdr[] = "GET / HTTP/1.1\r\nAuthorization: SharedAccessSignature a\0b\r\n\r\n";
    bufferevent_write(f->client, hdr, sizeof hdr - 1);
    spin(f);
    assert_non_null(strstr(received(f), "HTTP/1.1 400 Bad Request\r\n"));
    assert_non_null(strstr(f->out, "Connection: close\r\n"));
    assert_int_equal(f->app.headers, 0);
    assert_true(closed(f));
}

static void test_glue_too_many_or_too_large_headers_get_431(void **state)
{
    fx *f = *state;
    start(f);
    char *req = malloc(200 * 16 + 64);
    size_t n = (size_t)sprintf(req, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 101; i++)
        n += (size_t)sprintf(req + n, "X-H%d: v\r\n", i);
    strcpy(req + n, "\r\n");
    send_text(f, req);
    assert_non_null(strstr(received(f), "HTTP/1.1 431 "));
    assert_true(closed(f));
    free(req);

    f->out_len = 0;
    httpd_free(f->s);
    bufferevent_free(f->client);
    start(f);
    size_t big = 70 * 1024;
    req = malloc(big + 64);
    n = (size_t)sprintf(req, "GET / HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'a', big);
    strcpy(req + n + big, "\r\n\r\n");
    bufferevent_write(f->client, req, strlen(req));
    for (int i = 0; i < 20; i++)
        spin(f);
    assert_non_null(strstr(received(f), "HTTP/1.1 431 "));
    assert_int_equal(f->app.headers, 0);
    assert_true(closed(f));
    free(req);
}

static void test_glue_head_gets_length_without_body(void **state)
{
    fx *f = *state;
    start(f);
    send_text(f, "HEAD /thing HTTP/1.1\r\n\r\nGET /next HTTP/1.1\r\n\r\n");
    const char *out = received(f);
    assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(out, "Content-Length: 9\r\n\r\nHTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(out, "\r\n\r\nok:/next"));
    assert_null(strstr(out, "ok:/thing"));
}

static void test_glue_http10_and_connection_close_rules(void **state)
{
    fx *f = *state;
    start(f);
    send_text(f, "GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_non_null(strstr(received(f), "Connection: keep-alive\r\n"));
    assert_false(closed(f));
    send_text(f, "GET /c HTTP/1.0\r\n\r\n");
    assert_int_equal(occurrences(received(f), "Connection: close\r\n"), 1);
    assert_true(closed(f));

    f->out_len = 0;
    httpd_free(f->s);
    bufferevent_free(f->client);
    start(f);
    f->app.requests = 0;
    send_text(f, "GET /x HTTP/1.1\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\n\r\n");
    assert_int_equal(occurrences(received(f), "HTTP/1.1 200"), 1);
    assert_non_null(strstr(f->out, "Connection: close\r\n"));
    assert_int_equal(f->app.requests, 1);
    assert_true(closed(f));
}

static void test_glue_absolute_target_and_unsupported_method(void **state)
{
    fx *f = *state;
    start(f);
    send_text(f, "GET http://hub.example:443/devices/d1?api-version=2021 HTTP/1.1\r\n\r\n");
    assert_string_equal(f->app.path, "/devices/d1");
    assert_string_equal(f->app.query, "api-version=2021");
    send_text(f, "GET http://hub.example HTTP/1.1\r\n\r\n");
    assert_string_equal(f->app.path, "/");
    assert_string_equal(f->app.query, "(none)");
    send_text(f, "PROPFIND / HTTP/1.1\r\n\r\n");
    assert_non_null(strstr(received(f), "HTTP/1.1 501 "));
    assert_true(closed(f));
}

static void test_glue_version_other_than_1x_is_refused(void **state)
{
    fx *f = *state;
    start(f);
    send_text(f, "GET / HTTP/2.0\r\n\r\n");
    assert_non_null(strstr(received(f), "HTTP/1.1 505 "));
    assert_true(closed(f));
}

static void test_glue_chunked_body_is_assembled(void **state)
{
    fx *f = *state;
    start(f);
    send_text(f, "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5\r\nhello\r\n");
    assert_int_equal(f->app.requests, 0);
    send_text(f, "6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n");
    assert_int_equal(f->app.requests, 1);
    assert_string_equal(f->app.body, "hello world");
    assert_non_null(strstr(received(f), "ok:/p"));
    assert_int_equal(f->s->body_reserved, 0);
}

static void test_glue_content_length_over_limit_gets_413_before_body(void **state)
{
    fx *f = *state;
    f->app.max_body = 10;
    start(f);
    send_text(f, "PUT /p HTTP/1.1\r\nContent-Length: 11\r\n\r\n");
    const char *out = received(f);
    assert_non_null(strstr(out, "HTTP/1.1 413 Payload Too Large\r\n"));
    assert_non_null(strstr(out, "Connection: close\r\n"));
    assert_int_equal(f->app.requests, 0);
    assert_true(closed(f));
    /* The application saw the request in on_headers, so it hears that it is gone. */
    assert_int_equal(f->app.aborts, 1);
}

static void test_glue_chunked_over_limit_gets_413_as_it_passes(void **state)
{
    fx *f = *state;
    f->app.max_body = 8;
    start(f);
    send_text(f, "POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    assert_null(strstr(received(f), "413"));
    send_text(f, "5\r\n");
    send_text(f, "world");
    send_text(f, "\r\n");
    assert_non_null(strstr(received(f), "HTTP/1.1 413 "));
    assert_int_equal(f->app.requests, 0);
    assert_true(closed(f));
    assert_int_equal(f->app.aborts, 1);
}

static void test_glue_body_memory_cap_answers_503_retry_after(void **state)
{
    fx *f = *state;
    f->limits.body_memory = 1000;
    f->app.max_body = 1 << 20;
    f->app.hold = true;
    start(f);
    /* A second connection holds 600 bytes of the budget in a request waiting for its answer. */
    struct bufferevent *pair[2];
    assert_int_equal(bufferevent_pair_new(f->base, 0, pair), 0);
    hub_admit_ticket none = {0};
    httpd_adopt_bufferevent(f->s, pair[0], NULL, NULL, "test:2", none);
    struct bufferevent *holder = pair[1];
    bufferevent_enable(holder, EV_READ | EV_WRITE);
    char req[700];
    int n = snprintf(req, sizeof req, "PUT /a HTTP/1.1\r\nContent-Length: 600\r\n\r\n");
    memset(req + n, 'b', 600);
    bufferevent_write(holder, req, (size_t)n + 600);
    spin(f);
    assert_int_equal(f->app.requests, 1);
    assert_int_equal(f->s->body_reserved, 600);

    send_text(f, "PUT /b HTTP/1.1\r\nContent-Length: 500\r\n\r\n");
    const char *out = received(f);
    assert_non_null(strstr(out, "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_non_null(strstr(out, "Retry-After: 1\r\n"));
    assert_int_equal(f->app.requests, 1);
    /* Chunked growth is charged as it arrives. */
    f->out_len = 0;
    bufferevent_free(f->client);
    assert_int_equal(bufferevent_pair_new(f->base, 0, pair), 0);
    httpd_adopt_bufferevent(f->s, pair[0], NULL, NULL, "test:3", none);
    f->client = pair[1];
    bufferevent_enable(f->client, EV_READ | EV_WRITE);
    send_text(f, "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    char chunk[300];
    n = snprintf(chunk, sizeof chunk, "c8\r\n");
    memset(chunk + n, 'c', 200);
    memcpy(chunk + n + 200, "\r\n", 2);
    for (int i = 0; i < 3; i++) {
        bufferevent_write(f->client, chunk, (size_t)n + 202);
        spin(f);
    }
    assert_non_null(strstr(received(f), "HTTP/1.1 503 "));
    assert_int_equal(f->s->body_reserved, 600);
    httpd_respond(f->app.held, 200, NULL, 0);
    f->app.held = NULL;
    spin(f);
    assert_int_equal(f->s->body_reserved, 0);
    bufferevent_free(holder);
}

static void test_glue_expect_100_continue_only_when_admitted(void **state)
{
    fx *f = *state;
    start(f);
    send_text(f, "PUT /p HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    assert_string_equal(received(f), "HTTP/1.1 100 Continue\r\n\r\n");
    send_text(f, "data");
    assert_non_null(strstr(received(f), "100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"));
    assert_string_equal(f->app.body, "data");

    f->out_len = 0;
    httpd_free(f->s);
    bufferevent_free(f->client);
    f->app.refuse_status = 401;
    start(f);
    send_text(f, "PUT /p HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n");
    const char *out = received(f);
    assert_null(strstr(out, "100 Continue"));
    assert_non_null(strstr(out, "HTTP/1.1 401 Unauthorized\r\n"));
    assert_non_null(strstr(out, "Connection: close\r\n"));
    assert_true(closed(f));
    assert_int_equal(f->app.aborts, 0); /* answered: no on_abort */
}

static void test_glue_pipelined_requests_are_taken_one_at_a_time(void **state)
{
    fx *f = *state;
    f->app.hold = true;
    start(f);
    send_text(f, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3 HTTP/1.1\r\n\r\n");
    assert_int_equal(f->app.requests, 1);
    assert_string_equal(f->app.path, "/1");
    assert_string_equal(received(f), "");
    /* The rest waits, unparsed, in the input buffer. */
    httpd_stats st;
    httpd_get_stats(f->s, &st);
    assert_int_equal(st.unanswered, 1);
    assert_true(st.buffered_in >= 2 * strlen("GET /2 HTTP/1.1\r\n\r\n") - 1);

    /* Answered from a later callback: the next request follows, in order. */
    httpd_respond(f->app.held, 200, "one", 3);
    assert_int_equal(f->app.requests, 1); /* not re-entered from httpd_respond */
    spin(f);
    assert_int_equal(f->app.requests, 2);
    assert_string_equal(f->app.path, "/2");
    httpd_respond(f->app.held, 200, "two", 3);
    spin(f);
    f->app.hold = false;
    httpd_respond(f->app.held, 200, "three", 5);
    spin(f);
    const char *out = received(f);
    const char *one = strstr(out, "\r\n\r\none"), *two = strstr(out, "\r\n\r\ntwo"),
               *three = strstr(out, "\r\n\r\nthree");
    assert_true(one && two && three && one < two && two < three);
    assert_false(closed(f));
}

static void test_glue_on_abort_for_held_request_at_free(void **state)
{
    fx *f = *state;
    f->app.hold = true;
    start(f);
    send_text(f, "GET /held HTTP/1.1\r\n\r\n");
    assert_non_null(f->app.held);
    httpd_free(f->s);
    f->s = NULL;
    assert_int_equal(f->app.aborts, 1);
    assert_int_equal(f->app.abort_was_held, 1);
    assert_null(f->app.held);
}

static void test_glue_peer_gone_aborts_held_request_once(void **state)
{
    fx *f = *state;
    f->app.hold = true;
    start(f);
    send_text(f, "GET /held HTTP/1.1\r\n\r\n");
    client_close(f);
    assert_int_equal(f->app.aborts, 1);
    assert_null(f->app.held);
    assert_true(closed(f));
}

static void on_drain(void *arg, httpd_req *req)
{
    (void)req;
    ((test_app *)arg)->drains++;
}

static void test_glue_stream_is_chunked_and_drains(void **state)
{
    fx *f = *state;
    f->limits.output_limit = 4096;
    f->app.hold = true;
    start(f);
    send_text(f, "GET /events HTTP/1.1\r\n\r\n");
    httpd_req *req = f->app.held;
    httpd_stream_start(req, 200, on_drain, &f->app);
    httpd_stream_write(req, "data: 1\n\n", 9);
    spin(f);
    const char *out = received(f);
    assert_non_null(strstr(out, "Transfer-Encoding: chunked\r\n"));
    assert_non_null(strstr(out, "\r\n\r\n9\r\ndata: 1\n\n\r\n"));
    /* The client stops reading: output piles up past the limit, then drains. */
    bufferevent_disable(f->client, EV_READ);
    char block[1000];
    memset(block, 'e', sizeof block);
    for (int i = 0; i < 6; i++)
        httpd_stream_write(req, block, sizeof block);
    assert_true(httpd_req_unsent(req) > f->limits.output_limit);
    assert_int_equal(f->app.drains, 0);
    bufferevent_enable(f->client, EV_READ);
    spin(f);
    assert_int_equal(f->app.drains, 1);
    httpd_stream_end(req);
    f->app.held = NULL;
    spin(f);
    assert_non_null(strstr(received(f), "\r\n0\r\n\r\n"));
    assert_false(closed(f));
    assert_int_equal(f->app.aborts, 0);
}

static void test_glue_output_over_limit_stops_parsing(void **state)
{
    fx *f = *state;
    f->limits.output_limit = 8192;
    f->app.reply_size = 3000;
    start(f);
    bufferevent_disable(f->client, EV_READ); /* never reads */
    char reqs[64 * 20];
    size_t n = 0;
    for (int i = 0; i < 20; i++)
        n += (size_t)sprintf(reqs + n, "GET /%02d HTTP/1.1\r\n\r\n", i);
    bufferevent_write(f->client, reqs, n);
    spin(f);
    /* Answers stop once the unsent output passes the limit. */
    assert_int_equal(f->app.requests, 3);
    httpd_stats st;
    httpd_get_stats(f->s, &st);
    assert_true(st.buffered_out <= f->limits.output_limit + f->app.reply_size + 200);
    bufferevent_enable(f->client, EV_READ);
    spin(f);
    spin(f);
    assert_int_equal(f->app.requests, 20);
}

static void test_glue_upgrade_is_answered_then_closed(void **state)
{
    fx *f = *state;
    start(f);
    send_text(f, "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05");
    assert_int_equal(f->app.requests, 1);
    assert_non_null(strstr(received(f), "Connection: close\r\n"));
    assert_true(closed(f));
}

static void test_glue_authenticated_releases_pending_once(void **state)
{
    fx *f = *state;
    f->app.authenticate = true;
    hub_admission *adm = hub_admission_new(10, 1);
    httpd_callbacks cb = app_callbacks();
    f->s = httpd_new(f->base, NULL, &f->limits, adm, &cb, &f->app);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    hub_admit_ticket t;
    assert_int_equal(hub_admission_enter(adm, (struct sockaddr *)&sa, &t), HUB_ADMIT_OK);
    struct bufferevent *pair[2];
    assert_int_equal(bufferevent_pair_new(f->base, 0, pair), 0);
    httpd_adopt_bufferevent(f->s, pair[0], NULL, (struct sockaddr *)&sa, "test:1", t);
    f->client = pair[1];
    bufferevent_enable(f->client, EV_READ | EV_WRITE);
    send_text(f, "GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\n");
    assert_int_equal(f->app.requests, 2);
    hub_admission_stats st;
    hub_admission_get_stats(adm, &st);
    assert_int_equal(st.connections, 1);
    assert_int_equal(st.pending, 0);
    client_close(f);
    hub_admission_get_stats(adm, &st);
    assert_int_equal(st.connections, 0);
    httpd_free(f->s);
    f->s = NULL;
    hub_admission_free(adm);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_glue_get_is_answered_with_framing_headers),
        T(test_glue_headers_are_trimmed_and_response_headers_checked),
        T(test_glue_nul_in_target_or_header_is_refused_with_400),
        T(test_glue_too_many_or_too_large_headers_get_431),
        T(test_glue_head_gets_length_without_body),
        T(test_glue_http10_and_connection_close_rules),
        T(test_glue_absolute_target_and_unsupported_method),
        T(test_glue_version_other_than_1x_is_refused),
        T(test_glue_chunked_body_is_assembled),
        T(test_glue_content_length_over_limit_gets_413_before_body),
        T(test_glue_chunked_over_limit_gets_413_as_it_passes),
        T(test_glue_body_memory_cap_answers_503_retry_after),
        T(test_glue_expect_100_continue_only_when_admitted),
        T(test_glue_pipelined_requests_are_taken_one_at_a_time),
        T(test_glue_on_abort_for_held_request_at_free),
        T(test_glue_peer_gone_aborts_held_request_once),
        T(test_glue_stream_is_chunked_and_drains),
        T(test_glue_output_over_limit_stops_parsing),
        T(test_glue_upgrade_is_answered_then_closed),
        T(test_glue_authenticated_releases_pending_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
