/* A small HTTP/1.1 server over TLS bufferevents, built for hostile peers (docs/hub.md "Connection
 * limits"): message framing by http-parser, and every limit enforced here rather than by callers:
 * the handshake, header and body deadlines (which trickled bytes do not extend), the idle timeout,
 * header size, per-route body limits checked from the headers before any body byte is read,
 * authorization before the body, output backpressure (a connection whose unsent output is above
 * the limit is not read, and closed if it stays there), one request at a time per connection
 * (pipelined requests wait unread), and admission (hub_admission) for the connection's life.
 *
 * One httpd serves the connections of one event loop and is used from that loop's thread only.
 * Handlers may answer later (from a later callback on the same loop): a request stays valid until
 * it is answered or until on_abort reports that its connection went away. */
#ifndef IOTDM_HUB_NET_HTTPD_H
#define IOTDM_HUB_NET_HTTPD_H

#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "hub/net/admission.h"
#include "hub/net/limits.h"
#include "iotdm/result.h"

typedef struct httpd httpd;
typedef struct httpd_req httpd_req;

typedef enum {
    HTTPD_GET = 1 << 0,
    HTTPD_HEAD = 1 << 1,
    HTTPD_POST = 1 << 2,
    HTTPD_PUT = 1 << 3,
    HTTPD_PATCH = 1 << 4,
    HTTPD_DELETE = 1 << 5,
    HTTPD_OPTIONS = 1 << 6,
} httpd_method;

/* What the application decides once a request's headers are in, before its body is read. */
typedef struct {
    bool answered;   /* on_headers answered already (an error): the body is never read, and
                        the connection closes after the answer if a body was announced */
    size_t max_body; /* otherwise: the most body bytes this request may carry (413 beyond) */
    bool long_body;  /* use the upload timeout instead of the request timeout for the body */
} httpd_admit;
/* Bodies held in memory by one server are capped by limits->body_memory: a request whose
 * Content-Length (or chunked growth) would pass it is answered 503 with Retry-After. */

typedef struct {
    /* The header block is complete. Look at the method, path, query and headers; authorize; then
     * either answer (httpd_respond…) and set out->answered, or set out->max_body. Content-Length
     * above max_body is answered 413 here by the server (and the body is not read); a chunked
     * body is counted as it arrives and cut off with 413 past it. An "Expect: 100-continue" is
     * honoured only for admitted requests. */
    void (*on_headers)(void *arg, httpd_req *req, httpd_admit *out);
    /* The body is complete (or there is none): handle the request, answering now or later. */
    void (*on_request)(void *arg, httpd_req *req);
    /* The connection of an unanswered request closed (peer gone, timeout, stall, shutdown): forget
     * req; it is freed when this returns. Never called for an answered request. Also called for a
     * request the server answered itself after on_headers admitted it (413, 503, 408): the
     * application saw it, so it is told when to let go. An application that answers later must
     * therefore drop its pointer to req here, and check that it still has one before answering:
     *     on_abort:  job->req = NULL;
     *     later:     if (job->req) httpd_respond(job->req, ...);
     * An answer given to a request whose connection is already closing is dropped silently. */
    void (*on_abort)(void *arg, httpd_req *req);
} httpd_callbacks;

/* tls: the server context (client certificates are requested per connection with
 * hub_tls_request_client_cert). limits and admission are borrowed and must outlive the server. */
httpd *httpd_new(struct event_base *base, SSL_CTX *tls, const hub_net_limits *limits,
                 hub_admission *admission, const httpd_callbacks *cb, void *arg);
/* Closes every connection (on_abort for unanswered requests) and frees the server. */
void httpd_free(httpd *s);

/* Takes over an accepted socket (a hub_listener callback passes it on). */
void httpd_adopt(httpd *s, evutil_socket_t fd, const struct sockaddr *addr, const char *peer,
                 hub_admit_ticket ticket);

/* Connections open now. */
size_t httpd_connection_count(const httpd *s);

/* What the server holds now (loop thread only): for monitoring and for tests of the limits. */
typedef struct {
    size_t connections;  /* open */
    size_t unanswered;   /* of which have a request the application has not answered */
    size_t buffered_in;  /* bytes received and not parsed yet, all connections */
    size_t buffered_out; /* bytes queued and not sent yet, all connections */
    size_t body_memory;  /* request body bytes reserved, of limits->body_memory */
} httpd_stats;
void httpd_get_stats(const httpd *s, httpd_stats *out);

/* ---- the request (valid from on_headers until answered or aborted) ---- */

httpd_method httpd_req_method(const httpd_req *req);
const char *httpd_req_method_name(const httpd_req *req);
/* The raw request target as sent ("/a/b%20c?x=1"), its path part (still percent-encoded, no
 * query) and its query string (NULL when there is none). NUL-terminated. */
const char *httpd_req_target(const httpd_req *req);
const char *httpd_req_path(const httpd_req *req);
const char *httpd_req_query(const httpd_req *req);
/* A header's value (the first of that name, compared case-insensitively), or NULL. */
const char *httpd_req_header(const httpd_req *req, const char *name);
/* Iterates headers: i from 0 until it returns false. */
bool httpd_req_header_at(const httpd_req *req, size_t i, const char **out_name,
                         const char **out_value);
/* The body received so far (all of it in on_request). Contiguous; NUL-terminated for parsers;
 * *out_len excludes the NUL. The request may take the body (httpd_req_take_body) to keep it. */
const char *httpd_req_body(const httpd_req *req, size_t *out_len);
/* Moves the body out: the caller owns the returned buffer (xfree); the request keeps none. */
char *httpd_req_take_body(httpd_req *req, size_t *out_len);
/* The TLS connection (client certificate), "ip:port" of the peer, its address. */
SSL *httpd_req_ssl(const httpd_req *req);
const char *httpd_req_peer(const httpd_req *req);
const struct sockaddr *httpd_req_addr(const httpd_req *req);
/* The connection authenticated (an authorized request): it leaves its source's pending count. */
void httpd_req_authenticated(httpd_req *req);
/* Application data attached to the request. */
void httpd_req_set_data(httpd_req *req, void *data);
void *httpd_req_get_data(const httpd_req *req);

/* ---- answers: exactly one per request (a stream counts as one) ---- */

/* The connection closes once this request's answer is out (the answer says Connection: close).
 * For refusals that should cost the peer a new connection (a 401), whether or not a body came. */
void httpd_req_close_after(httpd_req *req);

/* Adds a response header before the answer (Content-Length, Connection, Transfer-Encoding and Date
 * are the server's). Copies name and value; false when they are invalid (CR/LF) or too many. */
bool httpd_add_header(httpd_req *req, const char *name, const char *value);
/* Answers with status and body (copied; NULL/0 for none). The request is finished when this
 * returns: do not touch req again. A HEAD request gets the headers only. */
void httpd_respond(httpd_req *req, int status, const void *body, size_t len);
/* The same, taking ownership of body (xmalloc'ed) to avoid a copy. */
void httpd_respond_take(httpd_req *req, int status, void *body, size_t len);

/* A streamed answer (server-sent events): chunked transfer encoding. start sends the headers;
 * write queues one chunk; end finishes the message. Between them the request stays valid (and
 * on_abort reports the connection's end). on_drain (optional) runs when the connection's unsent
 * output falls under half the output limit after having been above it, so a producer can pause.
 */
void httpd_stream_start(httpd_req *req, int status, void (*on_drain)(void *arg, httpd_req *req),
                        void *arg);
void httpd_stream_write(httpd_req *req, const void *data, size_t len);
void httpd_stream_end(httpd_req *req);
/* Bytes the connection has not sent yet (a stream producer compares this with the limit). */
size_t httpd_req_unsent(const httpd_req *req);

#endif
