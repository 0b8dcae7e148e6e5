/* The HTTP server's request object: accessors over the stored header block, and the answers
 * (whole, or streamed with chunked encoding), written into the connection's output buffer. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/log.h"
#include "hub/net/httpd_internal.h"

#define COMPONENT "https"

/* A request the application uses after it was answered or aborted is a bug in the application:
 * stop here rather than write into another request's connection. */
static void check_live(const httpd_req *r)
{
    if (!r || r->magic != HTTPD_REQ_MAGIC) {
        log_error(COMPONENT, "request used after it was answered or aborted");
        abort();
    }
}

httpd_req *hreq_new(httpd_conn *c)
{
    httpd_req *r = xcalloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->magic = HTTPD_REQ_MAGIC;
    r->conn = c;
    r->target = r->path = r->query = HTTPD_NO_OFFSET;
    return r;
}

static void release_body(httpd_req *r)
{
    httpd *s = r->conn->srv;
    s->body_reserved -= r->body_reserved;
    r->body_reserved = 0;
}

void hreq_free(httpd_req *r)
{
    if (!r)
        return;
    release_body(r);
    xfree(r->body);
    xfree(r->block);
    if (r->resp_headers)
        evbuffer_free(r->resp_headers);
    r->magic = 0;
    xfree(r);
}

/* ---- accessors ---- */

httpd_method httpd_req_method(const httpd_req *req)
{
    check_live(req);
    return req->method;
}

const char *httpd_req_method_name(const httpd_req *req)
{
    check_live(req);
    return req->method_name;
}

static const char *at(const httpd_req *r, uint32_t off)
{
    return off == HTTPD_NO_OFFSET ? NULL : r->block + off;
}

const char *httpd_req_target(const httpd_req *req)
{
    check_live(req);
    return at(req, req->target);
}

const char *httpd_req_path(const httpd_req *req)
{
    check_live(req);
    return at(req, req->path);
}

const char *httpd_req_query(const httpd_req *req)
{
    check_live(req);
    return at(req, req->query);
}

const char *httpd_req_header(const httpd_req *req, const char *name)
{
    check_live(req);
    for (uint32_t i = 0; i < req->nhdr; i++) {
        if (strcasecmp(req->block + req->hdr[i].name, name) == 0)
            return req->block + req->hdr[i].value;
    }
    return NULL;
}

bool httpd_req_header_at(const httpd_req *req, size_t i, const char **out_name,
                         const char **out_value)
{
    check_live(req);
    if (i >= req->nhdr)
        return false;
    *out_name = req->block + req->hdr[i].name;
    *out_value = req->block + req->hdr[i].value;
    return true;
}

const char *httpd_req_body(const httpd_req *req, size_t *out_len)
{
    check_live(req);
    *out_len = req->body_len;
    return req->body ? req->body : "";
}

char *httpd_req_take_body(httpd_req *req, size_t *out_len)
{
    check_live(req);
    char *b = req->body;
    *out_len = req->body_len;
    if (!b) {
        *out_len = 0;
        return xstrdup("");
    }
    /* From here the application holds this memory; the server's body budget lets it go. */
    release_body(req);
    req->body = NULL;
    req->body_len = req->body_cap = 0;
    return b;
}

SSL *httpd_req_ssl(const httpd_req *req)
{
    check_live(req);
    return req->conn->ssl;
}

const char *httpd_req_peer(const httpd_req *req)
{
    check_live(req);
    return req->conn->peer;
}

const struct sockaddr *httpd_req_addr(const httpd_req *req)
{
    check_live(req);
    return (const struct sockaddr *)&req->conn->addr;
}

void httpd_req_authenticated(httpd_req *req)
{
    check_live(req);
    hub_admission_authenticated(req->conn->srv->admission, &req->conn->ticket);
}

void httpd_req_set_data(httpd_req *req, void *data)
{
    check_live(req);
    req->data = data;
}

void *httpd_req_get_data(const httpd_req *req)
{
    check_live(req);
    return req->data;
}

size_t httpd_req_unsent(const httpd_req *req)
{
    check_live(req);
    return evbuffer_get_length(hconn_output(req->conn));
}

/* ---- answers ---- */

static bool is_token_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

bool httpd_add_header(httpd_req *req, const char *name, const char *value)
{
    check_live(req);
    if (req->answered || !name[0] || req->resp_nhdr >= HTTPD_MAX_RESPONSE_HEADERS)
        return false;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (!is_token_char(*p))
            return false;
    }
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    }
    static const char *const reserved[] = {"Content-Length", "Connection", "Transfer-Encoding",
                                           "Date"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        if (strcasecmp(name, reserved[i]) == 0)
            return false;
    }
    if (!req->resp_headers && !(req->resp_headers = evbuffer_new()))
        return false;
    size_t size = strlen(name) + strlen(value) + 4;
    if (evbuffer_get_length(req->resp_headers) + size > HTTPD_MAX_RESPONSE_HEADER_BYTES)
        return false;
    if (evbuffer_add_printf(req->resp_headers, "%s: %s\r\n", name, value) < 0)
        return false;
    req->resp_nhdr++;
    return true;
}

static const char *reason_phrase(int status)
{
    const char *s = http_status_str((enum http_status)status);
    return s[0] == '<' ? "Unknown" : s; /* http-parser says "<unknown>" */
}

/* Whether this answer ends the connection: the peer or HTTP/1.0 rules said so, or a body was
 * announced that will now never be read. */
static bool answer_closes(const httpd_req *r)
{
    return !r->keep_alive || r->conn->close_after || (r->has_body && !r->complete);
}

/* Status line and the server's own headers; the caller adds framing and the blank line. */
static void put_head(httpd_req *r, int status, bool closing)
{
    httpd_conn *c = r->conn;
    struct evbuffer *out = hconn_output(c);
    evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, reason_phrase(status),
                        hconn_date(c->srv));
    if (closing) {
        c->close_after = true;
        evbuffer_add(out, "Connection: close\r\n", 19);
    } else if (r->http10) {
        evbuffer_add(out, "Connection: keep-alive\r\n", 24);
    }
    if (r->resp_headers)
        evbuffer_add_buffer(out, r->resp_headers);
}

static void free_ref(const void *data, size_t len, void *extra)
{
    (void)len;
    (void)extra;
    xfree((void *)data);
}

/* An answer to a request whose connection is closing, or that the server answered itself, is
 * dropped: the request still counts as answered, so on_abort will not follow. */
static bool answer_dropped(httpd_req *r)
{
    return r->conn->dead || r->server_answered;
}

static void respond(httpd_req *r, int status, const void *body, size_t len, bool take)
{
    check_live(r);
    if (r->answered || status < 200 || status > 599) {
        log_error(COMPONENT, "invalid answer status=%d answered=%d", status, r->answered);
        abort(); /* a caller bug: exactly one answer per request, no 1xx */
    }
    httpd_conn *c = r->conn;
    r->answered = r->finished = true;
    if (answer_dropped(r)) {
        if (take)
            xfree((void *)body);
        return;
    }
    bool no_body = status == 204 || status == 304;
    put_head(r, status, answer_closes(r));
    struct evbuffer *out = hconn_output(c);
    if (!no_body)
        evbuffer_add_printf(out, "Content-Length: %zu\r\n", len);
    evbuffer_add(out, "\r\n", 2);
    if (no_body || r->head || len == 0) {
        if (take)
            xfree((void *)body);
    } else if (take) {
        if (evbuffer_add_reference(out, body, len, free_ref, NULL) != 0) {
            evbuffer_add(out, body, len);
            xfree((void *)body);
        }
    } else {
        evbuffer_add(out, body, len);
    }
    hconn_output_added(c);
    if (!r->complete && r->has_body)
        hconn_flush_close(c); /* answered before the body: it is never read */
    hconn_answer_done(c);
}

void httpd_respond(httpd_req *req, int status, const void *body, size_t len)
{
    respond(req, status, body, len, false);
}

void httpd_respond_take(httpd_req *req, int status, void *body, size_t len)
{
    respond(req, status, body, len, true);
}

void httpd_stream_start(httpd_req *req, int status, void (*on_drain)(void *arg, httpd_req *req),
                        void *arg)
{
    check_live(req);
    if (req->answered || status < 200 || status > 599) {
        log_error(COMPONENT, "invalid stream start status=%d", status);
        abort();
    }
    httpd_conn *c = req->conn;
    req->answered = req->streaming = true;
    req->on_drain = on_drain;
    req->drain_arg = arg;
    if (answer_dropped(req))
        return;
    /* HTTP/1.0 has no chunked encoding: the stream ends with the connection. */
    req->chunked_out = !req->http10;
    put_head(req, status, answer_closes(req) || req->http10);
    struct evbuffer *out = hconn_output(c);
    if (req->chunked_out)
        evbuffer_add(out, "Transfer-Encoding: chunked\r\n", 28);
    evbuffer_add(out, "\r\n", 2);
    hconn_output_added(c);
    if (!req->complete && req->has_body)
        hconn_flush_close(c);
    else if (req->complete)
        hconn_set_phase(c, HTTPD_PHASE_STREAM);
}

void httpd_stream_write(httpd_req *req, const void *data, size_t len)
{
    check_live(req);
    if (!req->streaming || req->finished) {
        log_error(COMPONENT, "stream write without an open stream");
        abort();
    }
    if (answer_dropped(req) || req->head || len == 0)
        return;
    struct evbuffer *out = hconn_output(req->conn);
    if (req->chunked_out) {
        evbuffer_add_printf(out, "%zx\r\n", len);
        evbuffer_add(out, data, len);
        evbuffer_add(out, "\r\n", 2);
    } else {
        evbuffer_add(out, data, len);
    }
    hconn_output_added(req->conn);
}

void httpd_stream_end(httpd_req *req)
{
    check_live(req);
    if (!req->streaming || req->finished) {
        log_error(COMPONENT, "stream end without an open stream");
        abort();
    }
    req->finished = true;
    if (answer_dropped(req))
        return;
    if (req->chunked_out && !req->head)
        evbuffer_add(hconn_output(req->conn), "0\r\n\r\n", 5);
    hconn_output_added(req->conn);
    hconn_answer_done(req->conn);
}

void hreq_send_error(httpd_conn *c, int status, const char *extra)
{
    httpd_req *r = c->req;
    if (r) {
        if (r->answered && !r->finished && r->streaming)
            return; /* a stream is going out: the connection just closes */
        if (r->answered)
            return;
        r->server_answered = true;
    }
    c->close_after = true;
    struct evbuffer *out = hconn_output(c);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Length: 0\r\nConnection: close\r\n"
                        "%s\r\n",
                        status, reason_phrase(status), hconn_date(c->srv), extra ? extra : "");
    hconn_output_added(c);
}

void httpd_req_close_after(httpd_req *req)
{
    check_live(req);
    req->keep_alive = false;
}
