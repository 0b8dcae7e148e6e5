/* The HTTP server's connections: TLS bufferevents, one deadline timer per connection, output
 * backpressure with a stall timer, and a lifetime that never frees a connection under a callback.
 *
 * Deadlines: ev_deadline is armed when a phase starts (httpd_internal.h) and only then, so bytes
 * trickling in never extend it. Backpressure: once the unsent output passes output_limit the
 * connection is neither read nor parsed until the output falls to half the limit (the write
 * watermark), and ev_stall closes it unless the output has drained completely within
 * stall_timeout of first passing the limit. Lifetime: closing only marks the
 * connection dead and activates ev_defer; the free happens in that fresh callback, where no
 * application or libevent callback of this connection is on the stack. */
#include <errno.h>
#include <fcntl.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "hub/net/httpd_internal.h"
#include "hub/net/tls.h"

#define COMPONENT "https"
/* Lingering close: after the last answer, what the peer still sends is discarded for this long
 * and up to this many bytes. The bytes must cover what a refused body can have in flight: the
 * peer's send buffer and this side's receive buffer, a few MiB with the kernel's autotuning.
 * Closing earlier resets the connection, and the peer's kernel then drops the answer unread
 * (seen as a 413 lost under load with 256 KiB). Discarding costs a read per buffer, no more. */
#define LINGER_S     2
#define LINGER_BYTES (16 * 1024 * 1024)

static void conn_destroy(httpd_conn *c);
static void conn_release_request(httpd_conn *c);

httpd *httpd_new(struct event_base *base, SSL_CTX *tls, const hub_net_limits *limits,
                 hub_admission *admission, const httpd_callbacks *cb, void *arg)
{
    httpd *s = xcalloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->base = base;
    s->tls = tls;
    s->limits = limits;
    s->admission = admission;
    s->cb = *cb;
    s->arg = arg;
    return s;
}

void httpd_free(httpd *s)
{
    if (!s)
        return;
    /* Called from one of our own callbacks it would free the connection under its caller. */
    if (s->in_app) {
        log_error(COMPONENT, "httpd_free called from an httpd callback");
        abort();
    }
    while (s->conns)
        conn_destroy(s->conns);
    xfree(s);
}

size_t httpd_connection_count(const httpd *s)
{
    return s->nconns;
}

void httpd_get_stats(const httpd *s, httpd_stats *out)
{
    memset(out, 0, sizeof *out);
    out->connections = s->nconns;
    out->body_memory = s->body_reserved;
    for (const httpd_conn *c = s->conns; c; c = c->next) {
        if (c->req && c->req->seen && !c->req->finished)
            out->unanswered++;
        out->buffered_in += evbuffer_get_length(bufferevent_get_input(c->bev));
        out->buffered_out += evbuffer_get_length(bufferevent_get_output(c->bev));
    }
}

const char *hconn_date(httpd *s)
{
    time_t now = time(NULL);
    if (now != s->date_at) {
        static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
        static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(s->date, sizeof s->date, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
                 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
        s->date_at = now;
    }
    return s->date;
}

struct evbuffer *hconn_output(httpd_conn *c)
{
    return bufferevent_get_output(c->bev);
}

/* Reading follows the state: not while closing, flushing, or over the output limit. While the
 * application holds a request the socket is still read (the parser is paused and the input is
 * capped by the read watermark), so that a peer that goes away is noticed and reported. */
static void update_reading(httpd_conn *c)
{
    bool want = !c->dead && c->phase != HTTPD_PHASE_FLUSH && !c->over_limit;
    if (want)
        bufferevent_enable(c->bev, EV_READ);
    else
        bufferevent_disable(c->bev, EV_READ);
}

static void arm(struct event *ev, unsigned seconds)
{
    struct timeval tv = {(time_t)seconds, 0};
    evtimer_add(ev, &tv);
}

void hconn_set_phase(httpd_conn *c, httpd_phase phase)
{
    const hub_net_limits *l = c->srv->limits;
    c->phase = phase;
    switch (phase) {
    case HTTPD_PHASE_FIRST:
        arm(c->ev_deadline, l->handshake_timeout_s);
        break;
    case HTTPD_PHASE_HEADERS:
        /* The first request's headers are covered by the handshake deadline. */
        if (c->first_done)
            arm(c->ev_deadline, l->header_timeout_s);
        break;
    case HTTPD_PHASE_BODY:
        arm(c->ev_deadline,
            c->req && c->req->long_body ? l->upload_timeout_s : l->request_timeout_s);
        break;
    case HTTPD_PHASE_IDLE:
        arm(c->ev_deadline, l->idle_timeout_s);
        break;
    case HTTPD_PHASE_WAIT:
    case HTTPD_PHASE_STREAM:
        evtimer_del(c->ev_deadline);
        break;
    case HTTPD_PHASE_FLUSH:
        arm(c->ev_deadline, l->stall_timeout_s);
        break;
    case HTTPD_PHASE_LINGER:
        arm(c->ev_deadline, LINGER_S);
        break;
    }
    update_reading(c);
}

void hconn_close(httpd_conn *c, bool graceful)
{
    if (c->dead)
        return;
    c->dead = true;
    c->graceful = graceful;
    evtimer_del(c->ev_deadline);
    evtimer_del(c->ev_stall);
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    event_active(c->ev_defer, EV_TIMEOUT, 1);
}

/* The last answer is out. The peer may still be sending (a body that was refused): closing
 * with unread bytes makes the kernel reset the connection, and a reset can destroy the answer
 * before the peer reads it. So say goodbye (TLS close_notify, then FIN) and discard what still
 * comes, for LINGER_S seconds or LINGER_BYTES at most. */
static void conn_linger(httpd_conn *c)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    if (fd < 0) {
        hconn_close(c, true);
        return;
    }
    if (c->ssl) {
        ERR_clear_error();
        (void)SSL_shutdown(c->ssl);
        ERR_clear_error();
    }
    (void)shutdown(fd, SHUT_WR);
    c->goodbye = true;
    c->over_limit = false; /* the output is empty */
    evtimer_del(c->ev_stall);
    c->linger_left = LINGER_BYTES;
    evbuffer_drain(bufferevent_get_input(c->bev),
                   evbuffer_get_length(bufferevent_get_input(c->bev)));
    hconn_set_phase(c, HTTPD_PHASE_LINGER);
    event_active(c->ev_defer, EV_TIMEOUT, 1); /* lets the request go (on_abort) from there */
}

void hconn_flush_close(httpd_conn *c)
{
    if (hconn_ending(c))
        return;
    c->close_after = true;
    if (evbuffer_get_length(hconn_output(c)) == 0) {
        conn_linger(c);
        return;
    }
    /* The write callback now runs when the output is empty. */
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    hconn_set_phase(c, HTTPD_PHASE_FLUSH);
}

void hconn_output_added(httpd_conn *c)
{
    if (c->dead || c->over_limit)
        return;
    if (evbuffer_get_length(hconn_output(c)) <= c->srv->limits->output_limit)
        return;
    c->over_limit = true;
    /* The stall clock stops only when the output has drained completely (on_write): draining to
     * half into the kernel's socket buffers and passing the limit again is the same stall. */
    int64_t now = time_mono_ms();
    if (!c->stall_since_ms)
        c->stall_since_ms = now;
    int64_t left = c->stall_since_ms + c->srv->limits->stall_timeout_s * 1000LL - now;
    struct timeval tv = {0, 0};
    if (left > 0)
        tv = (struct timeval){(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    evtimer_add(c->ev_stall, &tv);
    update_reading(c);
}

void hconn_answer_done(httpd_conn *c)
{
    if (c->dead || c->in_parse)
        return; /* the parse loop moves on when the application returns */
    event_active(c->ev_defer, EV_TIMEOUT, 1);
}

/* ---- callbacks ---- */

static void on_read(struct bufferevent *bev, void *arg)
{
    httpd_conn *c = arg;
    if (c->dead)
        return;
    if (c->phase == HTTPD_PHASE_LINGER) {
        struct evbuffer *in = bufferevent_get_input(bev);
        size_t n = evbuffer_get_length(in);
        evbuffer_drain(in, n);
        if (n >= c->linger_left)
            hconn_close(c, false);
        else
            c->linger_left -= n;
        return;
    }
    hparse_run(c);
}

static void on_write(struct bufferevent *bev, void *arg)
{
    httpd_conn *c = arg;
    if (c->dead)
        return;
    size_t unsent = evbuffer_get_length(bufferevent_get_output(bev));
    if (!c->over_limit && unsent == 0)
        c->stall_since_ms = 0; /* the peer has read everything: a later stall is a new one */
    if (c->phase == HTTPD_PHASE_FLUSH) {
        if (unsent == 0)
            conn_linger(c);
        return;
    }
    if (c->phase == HTTPD_PHASE_LINGER)
        return;
    if (!c->over_limit || unsent > c->srv->limits->output_limit / 2)
        return;
    c->over_limit = false;
    evtimer_del(c->ev_stall);
    update_reading(c);
    httpd_req *r = c->req;
    if (r && r->streaming && !r->finished && r->on_drain) {
        c->srv->in_app++;
        r->on_drain(r->drain_arg, r);
        c->srv->in_app--;
    }
    if (!c->dead)
        event_active(c->ev_defer, EV_TIMEOUT, 1); /* parse what waited in the input */
}

static const char *bev_error(httpd_conn *c, short what, char *buf, size_t cap)
{
    unsigned long e = c->ssl ? bufferevent_get_openssl_error(c->bev) : 0;
    if (e) {
        ERR_error_string_n(e, buf, cap);
        return buf;
    }
    if (what & BEV_EVENT_EOF)
        return "connection closed";
    int err = EVUTIL_SOCKET_ERROR();
    return err ? strerror(err) : "connection failed";
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    httpd_conn *c = arg;
    if (c->dead)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        c->tls_done = true;
        return;
    }
    if (!c->tls_done) {
        char buf[256];
        hub_refused(HUB_REFUSED_HANDSHAKE, COMPONENT, "TLS handshake failed peer=%s error=%s",
                    c->peer, bev_error(c, what, buf, sizeof buf));
    }
    /* Drain OpenSSL's error queue so that it does not leak into another connection's report. */
    while (c->ssl && bufferevent_get_openssl_error(c->bev))
        ;
    hconn_close(c, false);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    httpd_conn *c = arg;
    const hub_net_limits *l = c->srv->limits;
    switch (c->phase) {
    case HTTPD_PHASE_FIRST:
        if (!c->tls_done)
            hub_refused(HUB_REFUSED_HANDSHAKE, COMPONENT,
                        "TLS handshake timed out peer=%s after=%us", c->peer,
                        l->handshake_timeout_s);
        else
            hub_refused(HUB_REFUSED_HEADER_TIMEOUT, COMPONENT, "no request peer=%s after=%us",
                        c->peer, l->handshake_timeout_s);
        hconn_close(c, c->tls_done);
        break;
    case HTTPD_PHASE_HEADERS:
        hparse_refuse(c, HUB_REFUSED_HEADER_TIMEOUT, 408, "request headers too slow", NULL);
        break;
    case HTTPD_PHASE_BODY:
        hparse_refuse(c, HUB_REFUSED_REQUEST_TIMEOUT, 408, "request body too slow", NULL);
        break;
    case HTTPD_PHASE_IDLE:
        hub_refused(HUB_REFUSED_IDLE, COMPONENT, "idle connection closed peer=%s after=%us",
                    c->peer, l->idle_timeout_s);
        hconn_close(c, true);
        break;
    case HTTPD_PHASE_FLUSH:
        hub_refused(HUB_REFUSED_STALLED, COMPONENT, "answer not taken peer=%s after=%us", c->peer,
                    l->stall_timeout_s);
        hconn_close(c, false);
        break;
    case HTTPD_PHASE_LINGER:
        hconn_close(c, false); /* the goodbye was said already */
        break;
    case HTTPD_PHASE_WAIT:
    case HTTPD_PHASE_STREAM:
        break; /* never armed */
    }
}

static void on_stall(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    httpd_conn *c = arg;
    hub_refused(HUB_REFUSED_STALLED, COMPONENT, "output not read peer=%s unsent=%zu after=%us",
                c->peer, evbuffer_get_length(hconn_output(c)), c->srv->limits->stall_timeout_s);
    hconn_close(c, false);
}

/* A fresh callback: frees a dead connection, or moves on after an answer given from outside the
 * parse loop, or parses input that waited while the output was over its limit. */
static void on_defer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    httpd_conn *c = arg;
    if (c->dead) {
        conn_destroy(c);
        return;
    }
    if (c->phase == HTTPD_PHASE_LINGER) {
        conn_release_request(c); /* nothing more will happen to it */
        return;
    }
    if (c->req && c->req->finished && c->req->complete)
        hparse_request_done(c);
    if (!c->dead)
        hparse_run(c);
}

/* ---- lifetime ---- */

/* Frees the current request, telling the application first if it saw it and did not answer:
 * on_abort runs from a fresh callback (or httpd_free), never under another callback. */
static void conn_release_request(httpd_conn *c)
{
    httpd *s = c->srv;
    httpd_req *r = c->req;
    if (!r)
        return;
    /* Still valid in on_abort; the connection is ending, so answers given now are dropped. */
    if (r->seen && !r->finished && s->cb.on_abort) {
        s->in_app++;
        s->cb.on_abort(s->arg, r);
        s->in_app--;
    }
    c->req = NULL;
    hreq_free(r);
}

static void conn_destroy(httpd_conn *c)
{
    httpd *s = c->srv;
    conn_release_request(c);
    if (c->ssl && c->graceful && c->tls_done && !c->goodbye) {
        ERR_clear_error();
        (void)SSL_shutdown(c->ssl); /* best effort: one close_notify, never waited for */
        ERR_clear_error();
    }
    bufferevent_free(c->bev);
    event_free(c->ev_deadline);
    event_free(c->ev_stall);
    event_free(c->ev_defer);
    hub_admission_leave(s->admission, &c->ticket);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    xfree(c);
}

void httpd_adopt_bufferevent(httpd *s, struct bufferevent *bev, SSL *ssl,
                             const struct sockaddr *addr, const char *peer, hub_admit_ticket ticket)
{
    httpd_conn *c = xcalloc(1, sizeof *c);
    if (c) {
        c->ev_deadline = evtimer_new(s->base, on_deadline, c);
        c->ev_stall = evtimer_new(s->base, on_stall, c);
        c->ev_defer = event_new(s->base, -1, 0, on_defer, c);
    }
    if (!c || !c->ev_deadline || !c->ev_stall || !c->ev_defer) {
        log_error(COMPONENT, "out of memory, connection dropped peer=%s", peer);
        if (c) {
            if (c->ev_deadline)
                event_free(c->ev_deadline);
            if (c->ev_stall)
                event_free(c->ev_stall);
            if (c->ev_defer)
                event_free(c->ev_defer);
            xfree(c);
        }
        bufferevent_free(bev);
        hub_admission_leave(s->admission, &ticket);
        return;
    }
    c->srv = s;
    c->bev = bev;
    c->ssl = ssl;
    c->ticket = ticket;
    c->tls_done = ssl == NULL;
    if (addr) {
        size_t len = addr->sa_family == AF_INET6  ? sizeof(struct sockaddr_in6)
                     : addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                  : sizeof(struct sockaddr);
        memcpy(&c->addr, addr, len);
    }
    snprintf(c->peer, sizeof c->peer, "%s", peer ? peer : "?");
    hparse_init(c);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    bufferevent_setcb(bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(bev, EV_READ, 0, HTTPD_INPUT_HIGH);
    bufferevent_setwatermark(bev, EV_WRITE, s->limits->output_limit / 2, 0);
    bufferevent_enable(bev, EV_WRITE);
    hconn_set_phase(c, HTTPD_PHASE_FIRST);
}

void httpd_adopt(httpd *s, evutil_socket_t fd, const struct sockaddr *addr, const char *peer,
                 hub_admit_ticket ticket)
{
    SSL *ssl = s->tls ? SSL_new(s->tls) : NULL;
    struct bufferevent *bev = NULL;
    if (ssl) {
        hub_tls_request_client_cert(ssl);
        bev = bufferevent_openssl_socket_new(s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE);
    }
    if (!bev) {
        log_error(COMPONENT, "cannot start TLS, connection dropped peer=%s", peer);
        /* With BEV_OPT_CLOSE_ON_FREE a failed bufferevent_openssl_socket_new has freed ssl
         * already, and may have closed fd (out of memory only). */
        if (!ssl || fcntl(fd, F_GETFD) != -1)
            close(fd);
        hub_admission_leave(s->admission, &ticket);
        return;
    }
    /* Peers that close without close_notify are common; their requests were framed by HTTP. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    httpd_adopt_bufferevent(s, bev, ssl, addr, peer, ticket);
}
