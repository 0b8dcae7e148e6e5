/* The HTTPS server end to end in one process: listener + admission + httpd over real TLS on
 * loopback, its event loop on a thread, driven by blocking OpenSSL clients from the test thread.
 * Deadlines are 1 s here, so every timeout case finishes in about a second. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <signal.h>

#include "hub/net/httpd_internal.h"
#include "hub/net/limits.h"
#include "hub/net/listener.h"
#include "net_app.h"
#include "net_client.h"

static SSL_CTX *server_tls;
static char tls_dir[64];

typedef struct {
    struct event_base *base;
    hub_net_limits limits;
    hub_admission *admission;
    httpd *s;
    hub_listener *listener;
    unsigned port;
    pthread_t thread;
    test_app app;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} fx;

static void accept_cb(void *arg, evutil_socket_t fd, const struct sockaddr *addr, const char *peer,
                      hub_admit_ticket ticket)
{
    httpd_adopt(arg, fd, addr, peer, ticket);
}

static void *loop_main(void *arg)
{
    fx *f = arg;
    event_base_loop(f->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    server_tls = tls_material(tls_dir, sizeof tls_dir);
    return server_tls ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    SSL_CTX_free(server_tls);
    tls_material_remove(tls_dir);
    return 0;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    hub_net_limits_defaults(&f->limits);
    f->limits.handshake_timeout_s = 1;
    f->limits.header_timeout_s = 1;
    f->limits.request_timeout_s = 1;
    f->limits.idle_timeout_s = 1;
    f->limits.stall_timeout_s = 1;
    f->limits.output_limit = 64 * 1024;
    f->app.max_body = 1024;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    *state = f;
    return 0;
}

/* Starts the server with f->limits and f->app as the test set them (the thread start orders
 * those writes before the loop reads them). */
static void start(fx *f)
{
    f->base = event_base_new();
    f->admission = hub_admission_new(64, 32);
    httpd_callbacks cb = app_callbacks();
    f->s = httpd_new(f->base, server_tls, &f->limits, f->admission, &cb, &f->app);
    assert_int_equal(hub_listener_new(f->base, "127.0.0.1", 0, "https", f->admission, accept_cb,
                                      f->s, &f->listener),
                     0);
    f->port = hub_listener_port(f->listener);
    assert_true(f->port > 0);
    assert_int_equal(pthread_create(&f->thread, NULL, loop_main, f), 0);
}

typedef struct {
    fx *f;
    void (*fn)(fx *f, void *arg);
    void *arg;
    bool done;
} loop_call;

static void loop_call_cb(evutil_socket_t fd, short what, void *p)
{
    (void)fd;
    (void)what;
    loop_call *c = p;
    c->fn(c->f, c->arg);
    pthread_mutex_lock(&c->f->mu);
    c->done = true;
    pthread_cond_broadcast(&c->f->cv);
    pthread_mutex_unlock(&c->f->mu);
}

/* Runs fn on the loop thread and waits for it: the server's state is only read there. */
static void on_loop(fx *f, void (*fn)(fx *f, void *arg), void *arg)
{
    loop_call c = {f, fn, arg, false};
    assert_int_equal(event_base_once(f->base, -1, EV_TIMEOUT, loop_call_cb, &c, NULL), 0);
    pthread_mutex_lock(&f->mu);
    while (!c.done)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

typedef struct {
    test_app app;
    httpd_stats st;
} snapshot;

static void take_snapshot(fx *f, void *arg)
{
    snapshot *s = arg;
    s->app = f->app;
    httpd_get_stats(f->s, &s->st);
}

static snapshot snap(fx *f)
{
    snapshot s;
    on_loop(f, take_snapshot, &s);
    return s;
}

static void stop_loop(fx *f, void *arg)
{
    (void)arg;
    event_base_loopbreak(f->base);
}

static int teardown(void **state)
{
    fx *f = *state;
    if (f->base) {
        on_loop(f, stop_loop, NULL);
        pthread_join(f->thread, NULL);
        hub_listener_free(f->listener);
        httpd_free(f->s);
        hub_admission_stats st;
        hub_admission_get_stats(f->admission, &st);
        assert_int_equal(st.connections, 0); /* every connection left admission */
        hub_admission_free(f->admission);
        event_base_free(f->base);
    }
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
    return 0;
}

/* Waits until the server has no connection left (or ms pass); returns how long it took. */
static long long wait_no_connections(fx *f, long ms)
{
    long long t0 = now_ms();
    while (now_ms() - t0 < ms && snap(f).st.connections > 0)
        sleep_ms(20);
    return now_ms() - t0;
}

static void test_https_get_is_answered(void **state)
{
    fx *f = *state;
    start(f);
    tls_client *c = client_open(f->port, 0);
    assert_true(client_send_text(c, "GET /devices/d1?api-version=1 HTTP/1.1\r\nHost: x\r\n\r\n"));
    char *r = client_response(c);
    assert_non_null(r);
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "\r\n\r\nok:/devices/d1"));
    free(r);
    snapshot s = snap(f);
    assert_int_equal(s.app.requests, 1);
    assert_string_equal(s.app.query, "api-version=1");
    assert_int_equal(s.st.connections, 1);
    client_close(c);
}

static void test_https_keep_alive_serves_two_requests(void **state)
{
    fx *f = *state;
    start(f);
    tls_client *c = client_open(f->port, 0);
    for (int i = 0; i < 2; i++) {
        char req[64];
        snprintf(req, sizeof req, "GET /r%d HTTP/1.1\r\n\r\n", i);
        assert_true(client_send_text(c, req));
        char *r = client_response(c);
        assert_non_null(r);
        assert_null(strstr(r, "Connection: close"));
        char expect[16];
        snprintf(expect, sizeof expect, "ok:/r%d", i);
        assert_non_null(strstr(r, expect));
        free(r);
    }
    snapshot s = snap(f);
    assert_int_equal(s.app.requests, 2);
    assert_int_equal(s.st.connections, 1);
    client_close(c);
}

static void test_https_pipelining_without_reading_is_bounded_then_closed(void **state)
{
    fx *f = *state;
    f->app.reply_size = 16 * 1024;
    start(f);
    uint64_t stalled = hub_refusal_count(HUB_REFUSED_STALLED);
    tls_client *c = client_open(f->port, 4096);
    struct timeval tv = {0, 200000}; /* the server stops reading: writes then time out */
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char reqs[30 * 100];
    size_t n = 0;
    for (int i = 0; i < 100; i++)
        n += (size_t)sprintf(reqs + n, "GET /%03d HTTP/1.1\r\n\r\n", i);
    size_t most = 0, sent = 0;
    long long t0 = now_ms();
    while (now_ms() - t0 < 600 && client_send(c, reqs, n)) {
        sent += 100;
        snapshot s = snap(f);
        size_t held = s.st.buffered_in + s.st.buffered_out;
        most = held > most ? held : most;
    }
    for (int i = 0; i < 5; i++) {
        snapshot s = snap(f);
        size_t held = s.st.buffered_in + s.st.buffered_out;
        most = held > most ? held : most;
        sleep_ms(50);
    }
    snapshot s = snap(f);
    /* It was pushed past the output limit, and no further than the limit, one answer and the
     * capped input. */
    assert_true(sent > (size_t)s.app.requests);
    assert_true(most > f->limits.output_limit);
    assert_true(most <= f->limits.output_limit + f->app.reply_size + 2 * HTTPD_INPUT_HIGH + 4096);
    /* Closed after the stall timeout. */
    long long took = wait_no_connections(f, 3000);
    assert_true(took < 2500);
    assert_int_equal(snap(f).st.connections, 0);
    assert_int_equal(hub_refusal_count(HUB_REFUSED_STALLED) - stalled, 1);
    client_close(c);
}

static void test_https_refused_in_on_headers_closes_without_reading_body(void **state)
{
    fx *f = *state;
    f->app.refuse_status = 401;
    start(f);
    tls_client *c = client_open(f->port, 0);
    assert_true(client_send_text(c, "PUT /devices/x HTTP/1.1\r\nContent-Length: 16777216\r\n\r\n"));
    char *r = client_response(c);
    assert_non_null(r);
    assert_non_null(strstr(r, "HTTP/1.1 401 Unauthorized\r\n"));
    assert_non_null(strstr(r, "Connection: close\r\n"));
    free(r);
    assert_true(client_wait_closed(c, 1000));
    snapshot s = snap(f);
    assert_int_equal(s.app.headers, 1);
    assert_int_equal(s.app.requests, 0);
    assert_int_equal(s.app.aborts, 0);
    assert_int_equal(s.st.body_memory, 0);
    client_close(c);
}

static void test_https_body_sent_anyway_does_not_reset_the_answer(void **state)
{
    fx *f = *state;
    f->app.refuse_status = 401;
    start(f);
    tls_client *c = client_open(f->port, 0);
    /* A client that does not wait: headers and the whole body, then it reads. The server
     * answered after the headers; it discards the rest instead of resetting the connection. */
    enum { BODY = 240 * 1024 }; /* under the server's lingering budget, over the kernel's buffers */
    int small = 8192;
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    char head[80];
    snprintf(head, sizeof head, "PUT /devices/x HTTP/1.1\r\nContent-Length: %d\r\n\r\n", BODY);
    assert_true(client_send_text(c, head));
    char *body = calloc(1, BODY);
    for (size_t off = 0; off < BODY; off += 16384)
        assert_true(client_send(c, body + off, 16384 < BODY - off ? 16384 : BODY - off));
    free(body);
    char *r = client_response(c);
    assert_non_null(r);
    assert_non_null(strstr(r, "HTTP/1.1 401 Unauthorized\r\n"));
    free(r);
    assert_true(client_wait_closed(c, 1000));
    client_close(c);
    assert_true(wait_no_connections(f, 3000) < 3000);
    snapshot s = snap(f);
    assert_int_equal(s.app.requests, 0);
    assert_int_equal(s.st.body_memory, 0);
}

static void test_https_content_length_over_limit_gets_413(void **state)
{
    fx *f = *state;
    f->app.max_body = 100;
    start(f);
    tls_client *c = client_open(f->port, 0);
    assert_true(client_send_text(c, "POST /x HTTP/1.1\r\nContent-Length: 101\r\n\r\n"));
    char *r = client_response(c);
    assert_non_null(r);
    assert_non_null(strstr(r, "HTTP/1.1 413 Payload Too Large\r\n"));
    free(r);
    assert_true(client_wait_closed(c, 1000));
    assert_int_equal(snap(f).app.requests, 0);
    client_close(c);
}

static void test_https_chunked_body_over_limit_gets_413(void **state)
{
    fx *f = *state;
    f->app.max_body = 100;
    start(f);
    tls_client *c = client_open(f->port, 0);
    assert_true(client_send_text(c, "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"));
    char chunk[80];
    memset(chunk, 'c', sizeof chunk);
    bool refused = false;
    for (int i = 0; i < 4 && !refused; i++) {
        assert_true(client_send_text(c, "50\r\n"));
        assert_true(client_send(c, chunk, sizeof chunk));
        assert_true(client_send_text(c, "\r\n"));
        refused = client_readable(c, 200);
    }
    assert_true(refused); /* answered as soon as the count passed 100, not at the end */
    assert_int_equal(snap(f).app.headers, 1);
    char *r = client_response(c);
    assert_non_null(r);
    assert_non_null(strstr(r, "HTTP/1.1 413 "));
    free(r);
    assert_true(client_wait_closed(c, 1000));
    /* The request is let go from a deferred callback, which may run after the client sees
     * the close (the answer is flushed and the write side shut first). */
    long long t0 = now_ms();
    while (snap(f).app.aborts < 1 && now_ms() - t0 < 2000)
        sleep_ms(10);
    snapshot s = snap(f);
    assert_int_equal(s.app.requests, 0);
    assert_int_equal(s.app.aborts, 1);
    client_close(c);
}

static void test_https_trickled_header_is_cut_at_header_timeout(void **state)
{
    fx *f = *state;
    start(f);
    uint64_t before = hub_refusal_count(HUB_REFUSED_HEADER_TIMEOUT);
    tls_client *c = client_open(f->port, 0);
    assert_true(client_send_text(c, "GET /first HTTP/1.1\r\n\r\n"));
    free(client_response(c));
    /* The next request arrives one byte every 200 ms: bytes keep coming, the deadline holds. */
    static const char slow[] = "GET /slow HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    long long t0 = now_ms();
    bool cut = false;
    for (size_t i = 0; i < sizeof slow - 1 && !cut; i++) {
        if (!client_send(c, slow + i, 1))
            break;
        cut = client_readable(c, 200);
    }
    long long took = now_ms() - t0;
    assert_true(cut);
    assert_true(took >= 900 && took < 1800);
    char *r = client_response(c);
    assert_non_null(r);
    assert_non_null(strstr(r, "HTTP/1.1 408 Request Timeout\r\n"));
    free(r);
    assert_true(client_wait_closed(c, 1000));
    assert_int_equal(hub_refusal_count(HUB_REFUSED_HEADER_TIMEOUT) - before, 1);
    assert_int_equal(snap(f).app.headers, 1);
    client_close(c);
}

static void test_https_trickled_first_request_is_cut_at_handshake_deadline(void **state)
{
    fx *f = *state;
    start(f);
    uint64_t before = hub_refusal_count(HUB_REFUSED_HEADER_TIMEOUT);
    tls_client *c = client_open(f->port, 0);
    /* The handshake deadline runs from accept to the first complete header block. */
    static const char slow[] = "GET /slow HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    bool cut = false;
    for (size_t i = 0; i < sizeof slow - 1 && !cut; i++) {
        if (!client_send(c, slow + i, 1))
            break;
        cut = client_readable(c, 200);
    }
    assert_true(cut);
    char *r = client_response(c);
    assert_non_null(r);
    assert_non_null(strstr(r, "HTTP/1.1 408 Request Timeout\r\n"));
    free(r);
    assert_true(client_wait_closed(c, 1000));
    assert_int_equal(hub_refusal_count(HUB_REFUSED_HEADER_TIMEOUT) - before, 1);
    assert_int_equal(snap(f).app.headers, 0);
    client_close(c);
}

static void test_https_silent_client_is_cut_at_handshake_timeout(void **state)
{
    fx *f = *state;
    start(f);
    uint64_t before = hub_refusal_count(HUB_REFUSED_HANDSHAKE);
    int fd = tcp_connect(f->port, 0);
    assert_true(fd >= 0);
    long long t0 = now_ms();
    assert_true(tcp_wait_closed(fd, 3000));
    long long took = now_ms() - t0;
    assert_true(took >= 900 && took < 2000);
    close(fd);
    assert_int_equal(hub_refusal_count(HUB_REFUSED_HANDSHAKE) - before, 1);
    assert_true(wait_no_connections(f, 1000) < 1000);
}

static void test_https_idle_connection_is_closed(void **state)
{
    fx *f = *state;
    start(f);
    uint64_t before = hub_refusal_count(HUB_REFUSED_IDLE);
    tls_client *c = client_open(f->port, 0);
    assert_true(client_send_text(c, "GET /once HTTP/1.1\r\n\r\n"));
    free(client_response(c));
    long long t0 = now_ms();
    assert_true(client_wait_closed(c, 3000));
    long long took = now_ms() - t0;
    assert_true(took >= 900 && took < 2000);
    assert_int_equal(hub_refusal_count(HUB_REFUSED_IDLE) - before, 1);
    client_close(c);
}

/* The application answers later, from its own callback on the loop. */
static void answer_held(fx *f, void *arg)
{
    (void)arg;
    if (f->app.held) { /* on_abort clears it: never answer a request that is gone */
        httpd_respond(f->app.held, 200, "later", 5);
        f->app.held = NULL;
    }
}

static void test_https_answer_later_and_abort_when_client_leaves_first(void **state)
{
    fx *f = *state;
    f->app.hold = true;
    start(f);
    tls_client *c = client_open(f->port, 0);
    assert_true(client_send_text(c, "GET /wait HTTP/1.1\r\n\r\n"));
    long long t0 = now_ms();
    while (snap(f).app.held == NULL && now_ms() - t0 < 2000)
        sleep_ms(10);
    assert_int_equal(snap(f).st.unanswered, 1);
    on_loop(f, answer_held, NULL);
    char *r = client_response(c);
    assert_non_null(r);
    assert_non_null(strstr(r, "\r\n\r\nlater"));
    free(r);

    /* Now the client goes away before the answer. */
    assert_true(client_send_text(c, "GET /wait2 HTTP/1.1\r\n\r\n"));
    t0 = now_ms();
    while (snap(f).app.requests < 2 && now_ms() - t0 < 2000)
        sleep_ms(10);
    client_close(c);
    t0 = now_ms();
    while (snap(f).app.aborts < 1 && now_ms() - t0 < 2000)
        sleep_ms(10);
    snapshot s = snap(f);
    assert_int_equal(s.app.aborts, 1);
    assert_int_equal(s.app.abort_was_held, 1);
    assert_null(s.app.held);
    on_loop(f, answer_held, NULL); /* the late answer finds nothing to answer */
    assert_int_equal(snap(f).st.connections, 0);
}

static void test_https_held_request_survives_deadlines_then_idle(void **state)
{
    fx *f = *state;
    f->app.hold = true;
    start(f);
    tls_client *c = client_open(f->port, 0);
    assert_true(client_send_text(c, "GET /slow-work HTTP/1.1\r\n\r\n"));
    sleep_ms(1500); /* longer than every deadline: the application's time is not limited */
    snapshot s = snap(f);
    assert_int_equal(s.st.connections, 1);
    assert_int_equal(s.app.aborts, 0);
    on_loop(f, answer_held, NULL);
    char *r = client_response(c);
    assert_non_null(r);
    free(r);
    client_close(c);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_https_get_is_answered),
        T(test_https_keep_alive_serves_two_requests),
        T(test_https_pipelining_without_reading_is_bounded_then_closed),
        T(test_https_refused_in_on_headers_closes_without_reading_body),
        T(test_https_body_sent_anyway_does_not_reset_the_answer),
        T(test_https_content_length_over_limit_gets_413),
        T(test_https_chunked_body_over_limit_gets_413),
        T(test_https_trickled_header_is_cut_at_header_timeout),
        T(test_https_trickled_first_request_is_cut_at_handshake_deadline),
        T(test_https_silent_client_is_cut_at_handshake_timeout),
        T(test_https_idle_connection_is_closed),
        T(test_https_answer_later_and_abort_when_client_leaves_first),
        T(test_https_held_request_survives_deadlines_then_idle),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
