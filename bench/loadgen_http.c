/* iotdm-loadgen HTTPS client: keep-alive HTTP/1.1 over TLS for the hub's REST API. Small on
 * purpose: the hub answers with Content-Length. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "loadgen.h"

#define LG_HTTP_MAX_HEAD 16384
#define LG_HTTP_MAX_BODY (4 * 1024 * 1024)

struct lg_http {
    lg_app *app;
    struct bufferevent *bev;
    bool busy; /* a request is on the wire */
    bool dead;
    long body_len; /* -1 until the head of the response has been read */
    int status;
    lg_http_cb cb;
    void *ctx;
    char *scratch; /* the body handed to the callback */
    size_t scratch_cap;
    char *head; /* the head of the response, for lg_http_header */
    size_t head_cap;
};

static void finish(lg_http *c, int status, const char *body, size_t len)
{
    lg_http_cb cb = c->cb;
    void *ctx = c->ctx;
    c->busy = false;
    c->cb = NULL;
    c->body_len = -1;
    if (cb)
        cb(c->app, ctx, status, body, len);
}

static void fail(lg_http *c, const char *why)
{
    if (!c->dead)
        fprintf(stderr, "loadgen: HTTPS connection: %s\n", why);
    c->dead = true;
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->busy)
        finish(c, 0, NULL, 0);
}

/* Parses the status line and Content-Length out of head[0..len). */
static bool parse_head(lg_http *c, const char *head, size_t len)
{
    if (len < 12 || strncmp(head, "HTTP/1.1 ", 9) != 0)
        return false;
    c->status = atoi(head + 9);
    c->body_len = 0;
    const char *p = memchr(head, '\n', len);
    while (p && (size_t)(p - head) < len) {
        p++;
        static const char cl[] = "content-length:";
        static const char te[] = "transfer-encoding:";
        size_t rest = len - (size_t)(p - head);
        if (rest > sizeof cl && strncasecmp(p, cl, sizeof cl - 1) == 0)
            c->body_len = strtol(p + sizeof cl - 1, NULL, 10);
        else if (rest > sizeof te && strncasecmp(p, te, sizeof te - 1) == 0)
            return false; /* chunked: the hub never sends it */
        p = memchr(p, '\n', rest);
    }
    return c->status >= 100 && c->body_len >= 0 && c->body_len <= LG_HTTP_MAX_BODY;
}

static bool keep_head(lg_http *c, const char *head, size_t len)
{
    if (len >= c->head_cap) {
        char *p = realloc(c->head, len + 1);
        if (!p)
            return false;
        c->head = p;
        c->head_cap = len + 1;
    }
    memcpy(c->head, head, len);
    c->head[len] = '\0';
    return true;
}

bool lg_http_header(const lg_http *c, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    for (const char *p = c->head ? strchr(c->head, '\n') : NULL; p; p = strchr(p, '\n')) {
        p++;
        if (strncasecmp(p, name, nlen) != 0 || p[nlen] != ':')
            continue;
        const char *v = p + nlen + 1;
        v += strspn(v, " \t");
        size_t vlen = strcspn(v, "\r\n");
        if (vlen >= cap)
            return false;
        memcpy(out, v, vlen);
        out[vlen] = '\0';
        return true;
    }
    return false;
}

/* One response at a time (requests are never pipelined). The body is copied out and the input
 * drained before the callback runs, because the callback may free this connection. */
static void on_read(struct bufferevent *bev, void *arg)
{
    lg_http *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (c->body_len < 0) {
        struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
        if (end.pos < 0) {
            if (evbuffer_get_length(in) > LG_HTTP_MAX_HEAD)
                fail(c, "response head too long");
            return;
        }
        size_t hlen = (size_t)end.pos + 4;
        const char *head = (const char *)evbuffer_pullup(in, (ev_ssize_t)hlen);
        if (!c->busy || !parse_head(c, head, hlen) || !keep_head(c, head, hlen)) {
            fail(c, "unexpected response");
            return;
        }
        evbuffer_drain(in, hlen);
    }
    size_t blen = (size_t)c->body_len;
    if (evbuffer_get_length(in) < blen)
        return;
    if (blen >= c->scratch_cap) {
        char *p = realloc(c->scratch, blen + 1);
        if (!p) {
            fail(c, "out of memory");
            return;
        }
        c->scratch = p;
        c->scratch_cap = blen + 1;
    }
    evbuffer_remove(in, c->scratch, blen);
    c->scratch[blen] = '\0';
    if (evbuffer_get_length(in) > 0) {
        fail(c, "data after the response");
        return;
    }
    finish(c, c->status, c->scratch, blen);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    lg_http *c = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    char why[160] = "closed by the server";
    unsigned long e = bufferevent_get_openssl_error(bev);
    if (e)
        ERR_error_string_n(e, why, sizeof why);
    else if (what & BEV_EVENT_ERROR)
        snprintf(why, sizeof why, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    fail(c, why);
}

lg_http *lg_http_new(lg_app *app)
{
    lg_http *c = calloc(1, sizeof *c);
    SSL *ssl = SSL_new(app->ssl);
    if (!c || !ssl) {
        free(c);
        SSL_free(ssl);
        return NULL;
    }
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), app->o.host);
    c->app = app;
    c->body_len = -1;
    c->bev = bufferevent_openssl_socket_new(app->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    struct sockaddr_in sa = app->server;
    sa.sin_port = htons((uint16_t)app->o.https_port);
    if (!c->bev || bufferevent_socket_connect(c->bev, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (c->bev)
            bufferevent_free(c->bev);
        else
            SSL_free(ssl);
        free(c);
        return NULL;
    }
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    evutil_make_socket_closeonexec(fd); /* the hostile scenario starts a child process */
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ);
    return c;
}

void lg_http_free(lg_http *c)
{
    if (!c)
        return;
    if (c->bev)
        bufferevent_free(c->bev);
    free(c->scratch);
    free(c->head);
    free(c);
}

bool lg_http_dead(const lg_http *c)
{
    return c->dead;
}

bool lg_http_busy(const lg_http *c)
{
    return c->busy || c->dead;
}

void lg_http_request(lg_http *c, const char *method, const char *path, const char *headers,
                     const char *body, size_t body_len, lg_http_cb cb, void *ctx)
{
    c->busy = true;
    c->cb = cb;
    c->ctx = ctx;
    c->body_len = -1;
    if (c->dead) {
        finish(c, 0, NULL, 0);
        return;
    }
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out,
                        "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: %s\r\n"
                        "User-Agent: iotdm-loadgen\r\n"
                        "Content-Type: application/json; charset=utf-8\r\n"
                        "Content-Length: %zu\r\n%s\r\n",
                        method, path, c->app->o.hub_name, c->app->auth, body_len,
                        headers ? headers : "");
    evbuffer_add(out, body, body_len);
}
