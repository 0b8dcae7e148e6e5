/* The HTTP server's parser glue: http-parser frames the messages; this file stores the request
 * line and headers under their limits, asks the application about each request before its body
 * (on_headers runs inside the parser, so its answer or body limit applies to the very next byte),
 * collects the body under the route's limit and the server's body memory, and hands complete
 * requests to on_request one at a time: the parser is paused at the end of each message and the
 * bytes behind it wait in the input buffer until the answer is queued. */
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/log.h"
#include "hub/net/httpd_internal.h"

#define COMPONENT "https"

enum { LAST_NONE, LAST_URL, LAST_FIELD, LAST_VALUE };

/* Records why the request is refused and stops the parser (returned from a callback). */
static int fail(httpd_conn *c, int status, const char *reason)
{
    if (!c->error_status) {
        c->error_status = status;
        c->error_reason = reason;
    }
    return -1;
}

static bool block_reserve(httpd_req *r, size_t more)
{
    /* The stored header block is capped; the path and query copies added at the end of the
     * headers fit in the extra HTTPD_MAX_TARGET. */
    size_t need = (size_t)r->block_len + more;
    if (need > HTTPD_MAX_HEADER_BLOCK + HTTPD_MAX_TARGET + 4)
        return false;
    if (need <= r->block_cap)
        return true;
    size_t cap = r->block_cap ? r->block_cap : 512;
    while (cap < need)
        cap *= 2;
    char *p = xrealloc(r->block, cap);
    if (!p)
        return false;
    r->block = p;
    r->block_cap = (uint32_t)cap;
    return true;
}

/* Appends request-line or header bytes; NUL bytes and a block over its limit refuse. */
static int block_put(httpd_conn *c, const char *at, size_t len)
{
    httpd_req *r = c->req;
    if (memchr(at, '\0', len))
        return fail(c, 400, "NUL byte in the request line or headers");
    if ((size_t)r->block_len + len + 1 > HTTPD_MAX_HEADER_BLOCK)
        return fail(c, 431, "header block too large");
    if (!block_reserve(r, len + 1))
        return fail(c, 503, "out of memory");
    memcpy(r->block + r->block_len, at, len);
    r->block_len += (uint32_t)len;
    return 0;
}

static int block_end_string(httpd_conn *c)
{
    httpd_req *r = c->req;
    if (!block_reserve(r, 1))
        return fail(c, 503, "out of memory");
    r->block[r->block_len++] = '\0';
    return 0;
}

/* Ends the last header value: trailing white space is not part of it (RFC 9110 5.5). */
static int end_value(httpd_conn *c)
{
    httpd_req *r = c->req;
    uint32_t start = r->hdr[r->nhdr - 1].value;
    while (r->block_len > start &&
           (r->block[r->block_len - 1] == ' ' || r->block[r->block_len - 1] == '\t'))
        r->block_len--;
    return block_end_string(c);
}

static int on_begin(http_parser *p)
{
    httpd_conn *c = p->data;
    c->req = hreq_new(c);
    if (!c->req)
        return fail(c, 503, "out of memory");
    if (c->phase == HTTPD_PHASE_IDLE || c->phase == HTTPD_PHASE_FIRST)
        hconn_set_phase(c, HTTPD_PHASE_HEADERS);
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    httpd_conn *c = p->data;
    httpd_req *r = c->req;
    if (r->last == LAST_NONE) {
        r->target = r->block_len;
        r->last = LAST_URL;
    }
    if ((size_t)r->block_len - r->target + len > HTTPD_MAX_TARGET)
        return fail(c, 414, "request target too long");
    return block_put(c, at, len);
}

static int on_field(http_parser *p, const char *at, size_t len)
{
    httpd_conn *c = p->data;
    httpd_req *r = c->req;
    if (r->headers_done) {
        /* Chunked trailers: not kept, but bounded like the headers. */
        r->trailer_size += (uint32_t)len;
        return r->trailer_size > HTTPD_MAX_HEADER_BLOCK ? fail(c, 431, "trailers too large") : 0;
    }
    if (r->last != LAST_FIELD) {
        int rc = r->last == LAST_VALUE ? end_value(c) : block_end_string(c);
        if (rc)
            return rc;
        if (r->nhdr == HTTPD_MAX_HEADERS)
            return fail(c, 431, "too many headers");
        r->hdr[r->nhdr].name = r->block_len;
        r->hdr[r->nhdr].value = HTTPD_NO_OFFSET;
        r->nhdr++;
        r->last = LAST_FIELD;
    }
    return block_put(c, at, len);
}

static int on_value(http_parser *p, const char *at, size_t len)
{
    httpd_conn *c = p->data;
    httpd_req *r = c->req;
    if (r->headers_done) {
        r->trailer_size += (uint32_t)len;
        return r->trailer_size > HTTPD_MAX_HEADER_BLOCK ? fail(c, 431, "trailers too large") : 0;
    }
    if (r->last != LAST_VALUE) {
        int rc = block_end_string(c); /* ends the name */
        if (rc)
            return rc;
        r->hdr[r->nhdr - 1].value = r->block_len;
        r->last = LAST_VALUE;
    }
    return block_put(c, at, len);
}

/* Ends the block and adds NUL-terminated copies of the target's path and query. */
static int finish_block(httpd_conn *c)
{
    httpd_req *r = c->req;
    int rc = 0;
    if (r->last == LAST_VALUE)
        rc = end_value(c);
    else if (r->last == LAST_FIELD || r->last == LAST_URL)
        rc = block_end_string(c);
    if (rc)
        return rc;
    if (r->last == LAST_NONE)
        return fail(c, 400, "no request target");
    if (r->nhdr && r->hdr[r->nhdr - 1].value == HTTPD_NO_OFFSET) {
        /* A last field without a value: an empty value. */
        if (block_end_string(c))
            return -1;
        r->hdr[r->nhdr - 1].value = r->block_len - 1;
    }
    /* Path and query as offsets into the target; an absolute-form target without a path means
     * "/". */
    const char *target = r->block + r->target;
    size_t tlen = strlen(target);
    size_t poff = 0, plen = tlen, qoff = 0, qlen = 0;
    bool root = false, has_query = false;
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (target[0] != '/' && strcmp(target, "*") != 0 &&
        http_parser_parse_url(target, tlen, 0, &u) == 0) {
        root = !(u.field_set & (1 << UF_PATH));
        poff = root ? 0 : u.field_data[UF_PATH].off;
        plen = root ? 1 : u.field_data[UF_PATH].len;
        has_query = (u.field_set & (1 << UF_QUERY)) != 0;
        if (has_query) {
            qoff = u.field_data[UF_QUERY].off;
            qlen = u.field_data[UF_QUERY].len;
        }
    } else {
        const char *hash = memchr(target, '#', tlen);
        size_t end = hash ? (size_t)(hash - target) : tlen;
        const char *q = memchr(target, '?', end);
        plen = q ? (size_t)(q - target) : end;
        has_query = q != NULL;
        qoff = plen + 1;
        qlen = has_query ? end - qoff : 0;
    }
    if (!block_reserve(r, plen + qlen + 2))
        return fail(c, 503, "out of memory");
    target = r->block + r->target; /* the block may have moved */
    r->path = r->block_len;
    memcpy(r->block + r->block_len, root ? "/" : target + poff, plen);
    r->block_len += (uint32_t)plen;
    r->block[r->block_len++] = '\0';
    r->query = HTTPD_NO_OFFSET;
    if (has_query) {
        r->query = r->block_len;
        memcpy(r->block + r->block_len, target + qoff, qlen);
        r->block_len += (uint32_t)qlen;
        r->block[r->block_len++] = '\0';
    }
    r->headers_done = true;
    return 0;
}

static bool map_method(unsigned m, httpd_req *r)
{
    switch (m) {
    case HTTP_GET:
        r->method = HTTPD_GET;
        return true;
    case HTTP_HEAD:
        r->method = HTTPD_HEAD;
        return true;
    case HTTP_POST:
        r->method = HTTPD_POST;
        return true;
    case HTTP_PUT:
        r->method = HTTPD_PUT;
        return true;
    case HTTP_PATCH:
        r->method = HTTPD_PATCH;
        return true;
    case HTTP_DELETE:
        r->method = HTTPD_DELETE;
        return true;
    case HTTP_OPTIONS:
        r->method = HTTPD_OPTIONS;
        return true;
    default:
        return false;
    }
}

/* Reserves body memory in the server's budget; false when it is spent. */
static bool body_reserve(httpd_conn *c, size_t n)
{
    httpd *s = c->srv;
    if (n > s->limits->body_memory || s->body_reserved > s->limits->body_memory - n)
        return false;
    s->body_reserved += n;
    c->req->body_reserved += n;
    return true;
}

/* Stops the parser run in progress once the connection can take no more input. */
static int stop_if_done(http_parser *p)
{
    httpd_conn *c = p->data;
    if (hconn_ending(c))
        http_parser_pause(p, 1);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    httpd_conn *c = p->data;
    httpd_req *r = c->req;
    httpd *s = c->srv;
    if (finish_block(c))
        return -1;
    if (p->http_major != 1 || p->http_minor > 1)
        return fail(c, 505, "HTTP version not supported");
    if (!map_method(p->method, r))
        return fail(c, 501, "method not supported");
    r->method_name = http_method_str((enum http_method)p->method);
    r->http10 = p->http_minor == 0;
    r->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    r->head = r->method == HTTPD_HEAD;
    bool chunked = (p->flags & F_CHUNKED) != 0;
    bool has_length = (p->flags & F_CONTENTLENGTH) != 0;
    uint64_t length = has_length ? p->content_length : 0;
    r->has_body = chunked || length > 0;
    c->first_done = true;

    httpd_admit admit = {0};
    r->seen = true;
    s->in_app++;
    s->cb.on_headers(s->arg, r, &admit);
    s->in_app--;
    if (r->answered || admit.answered) {
        if (!r->answered) {
            log_error(COMPONENT, "on_headers said answered but did not answer path=%s",
                      httpd_req_path(r));
            httpd_respond(r, 500, NULL, 0);
        }
        return stop_if_done(p);
    }
    r->max_body = admit.max_body;
    r->long_body = admit.long_body;
    if (has_length && length > admit.max_body) {
        hparse_refuse(c, HUB_REFUSED_HTTP_TOO_LARGE, 413, "Content-Length over the limit", NULL);
        return stop_if_done(p);
    }
    if (length > 0 && !body_reserve(c, (size_t)length)) {
        hparse_refuse(c, HUB_REFUSED_OVERLOAD, 503, "body memory full", "Retry-After: 1\r\n");
        return stop_if_done(p);
    }
    if (r->has_body) {
        hconn_set_phase(c, HTTPD_PHASE_BODY);
        const char *expect = httpd_req_header(r, "Expect");
        if (expect && !r->http10 && strcasecmp(expect, "100-continue") == 0) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            evbuffer_add(hconn_output(c), cont, sizeof cont - 1);
            hconn_output_added(c);
        }
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    httpd_conn *c = p->data;
    httpd_req *r = c->req;
    if (hconn_ending(c) || r->answered || r->server_answered)
        return stop_if_done(p);
    if (len > r->max_body - r->body_len) {
        hparse_refuse(c, HUB_REFUSED_HTTP_TOO_LARGE, 413, "chunked body over the limit", NULL);
        return stop_if_done(p);
    }
    size_t need = r->body_len + len;
    if (need > r->body_reserved && !body_reserve(c, need - r->body_reserved)) {
        hparse_refuse(c, HUB_REFUSED_OVERLOAD, 503, "body memory full", "Retry-After: 1\r\n");
        return stop_if_done(p);
    }
    if (need + 1 > r->body_cap) {
        /* Content-Length: its (reserved) size at once; chunked: doubling, never past the
         * route's limit. */
        size_t cap = r->body_reserved + 1;
        if (p->flags & F_CHUNKED) {
            cap = r->body_cap ? r->body_cap * 2 : 4096;
            if (cap > r->max_body + 1)
                cap = r->max_body + 1;
            if (cap < need + 1)
                cap = need + 1;
        }
        char *b = xrealloc(r->body, cap);
        if (!b)
            return fail(c, 503, "out of memory");
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

static int on_complete(http_parser *p)
{
    httpd_conn *c = p->data;
    c->req->complete = true;
    c->msg_done = true;
    http_parser_pause(p, 1); /* one request at a time: the next waits in the input buffer */
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_begin,
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

void hparse_init(httpd_conn *c)
{
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
}

void hparse_refuse(httpd_conn *c, hub_refusal kind, int status, const char *reason,
                   const char *extra)
{
    const char *path = c->req && c->req->headers_done ? httpd_req_path(c->req) : "-";
    hub_refused(kind, COMPONENT, "request refused status=%d reason=\"%s\" peer=%s path=%.200s",
                status, reason, c->peer, path);
    hreq_send_error(c, status, extra);
    hconn_flush_close(c);
}

void hparse_request_done(httpd_conn *c)
{
    httpd_req *r = c->req;
    c->req = NULL;
    hreq_free(r);
    if (c->close_after)
        hconn_flush_close(c);
    else
        hconn_set_phase(c, HTTPD_PHASE_IDLE);
}

/* A message is complete: give it to the application unless it was answered already. */
static void dispatch(httpd_conn *c)
{
    httpd_req *r = c->req;
    httpd *s = c->srv;
    if (r->finished) {
        hparse_request_done(c);
        return;
    }
    if (r->server_answered || hconn_ending(c))
        return;
    if (r->answered) { /* a stream started in on_headers */
        hconn_set_phase(c, HTTPD_PHASE_STREAM);
        return;
    }
    hconn_set_phase(c, HTTPD_PHASE_WAIT);
    s->in_app++;
    s->cb.on_request(s->arg, r);
    s->in_app--;
    if (c->dead || c->req != r)
        return;
    if (r->finished)
        hparse_request_done(c);
}

static bool may_parse(const httpd_conn *c)
{
    if (c->dead || c->over_limit)
        return false;
    switch (c->phase) {
    case HTTPD_PHASE_WAIT:
    case HTTPD_PHASE_STREAM:
    case HTTPD_PHASE_FLUSH:
    case HTTPD_PHASE_LINGER:
        return false;
    default:
        return !(c->req && c->req->complete);
    }
}

static void parse_error(httpd_conn *c, enum http_errno e)
{
    int status = c->error_status;
    const char *reason = c->error_reason;
    if (!status) {
        status = e == HPE_HEADER_OVERFLOW ? 431 : 400;
        reason = http_errno_description(e);
    }
    hparse_refuse(c, HUB_REFUSED_HTTP_BAD_REQUEST, status, reason, NULL);
}

void hparse_run(httpd_conn *c)
{
    if (c->in_parse)
        return;
    c->in_parse = true;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    while (may_parse(c)) {
        struct evbuffer_iovec v;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
            break;
        size_t n = http_parser_execute(&c->parser, &settings, v.iov_base, v.iov_len);
        evbuffer_drain(in, n);
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED) {
            http_parser_pause(&c->parser, 0);
        } else if (e != HPE_OK) {
            if (!hconn_ending(c))
                parse_error(c, e);
            break;
        } else if (n == 0) {
            break; /* no progress without a reason: never spin */
        }
        if (c->parser.upgrade)
            c->close_after = true; /* what follows is another protocol: answer, then close */
        if (c->msg_done && !c->dead) {
            c->msg_done = false;
            dispatch(c);
        }
    }
    c->in_parse = false;
}
