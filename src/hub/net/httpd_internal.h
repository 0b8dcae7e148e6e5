/* Internals shared by the HTTP server's three files: httpd.c (the connection: sockets, TLS,
 * deadlines, backpressure, lifetime), httpd_parse.c (the parser glue: framing by http-parser,
 * header and body limits, dispatch) and httpd_req.c (the request: accessors and answers).
 *
 * The parser glue and the request only see a connection's bufferevent through its input and
 * output evbuffers, so tests and the fuzz target run them over a bufferevent pair, without
 * sockets or TLS (httpd_adopt_bufferevent). */
#ifndef IOTDM_HUB_NET_HTTPD_INTERNAL_H
#define IOTDM_HUB_NET_HTTPD_INTERNAL_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <http_parser.h>
#include <time.h>

#include "hub/net/httpd.h"
#include "hub/net/refusals.h"

#define HTTPD_MAX_HEADER_BLOCK (64 * 1024) /* request line + headers as stored; 431 beyond */
#define HTTPD_MAX_HEADERS      100         /* 431 beyond */
#define HTTPD_MAX_TARGET       (16 * 1024) /* 414 beyond */
/* Read watermark: the input buffer stops being filled here. OpenSSL may add the rest of one
 * record (16 KiB), so a connection's unparsed input stays under 32 KiB whatever the peer sends. */
#define HTTPD_INPUT_HIGH                (16 * 1024)
#define HTTPD_MAX_RESPONSE_HEADERS      32
#define HTTPD_MAX_RESPONSE_HEADER_BYTES (8 * 1024)
#define HTTPD_REQ_MAGIC                 0x68747271u /* "htrq" while the request is live */
#define HTTPD_NO_OFFSET                 UINT32_MAX

typedef struct httpd_conn httpd_conn;

/* What the connection is doing; each phase has its own deadline, armed when the phase starts and
 * never moved by bytes arriving. */
typedef enum {
    HTTPD_PHASE_FIRST,   /* accept until TLS is up and the first header block is in: handshake */
    HTTPD_PHASE_IDLE,    /* between requests: idle */
    HTTPD_PHASE_HEADERS, /* a request's header block: header (the first one: still handshake) */
    HTTPD_PHASE_BODY,    /* its body: request (or upload) */
    HTTPD_PHASE_WAIT,    /* the application holds the request: none */
    HTTPD_PHASE_STREAM,  /* a streamed answer: none (the stall timer watches the output) */
    HTTPD_PHASE_FLUSH,   /* closing once the output is sent: stall */
    HTTPD_PHASE_LINGER,  /* answer sent, FIN sent: discarding what the peer still sends: linger */
} httpd_phase;

struct httpd {
    struct event_base *base;
    SSL_CTX *tls;
    const hub_net_limits *limits;
    hub_admission *admission;
    httpd_callbacks cb;
    void *arg;
    httpd_conn *conns;     /* every open connection, doubly linked */
    _Atomic size_t nconns; /* read by other loops (GET /iotdm/stats) */
    size_t body_reserved;  /* body bytes reserved by live requests, capped by body_memory */
    unsigned in_app;       /* application callbacks on the stack (httpd_free must not be one) */
    time_t date_at;
    char date[40];
};

struct httpd_req {
    uint32_t magic;
    httpd_conn *conn;
    httpd_method method;
    const char *method_name;
    /* Request line and headers as NUL-terminated strings in one buffer, found by offset. */
    char *block;
    uint32_t block_len, block_cap;
    uint32_t target, path, query;
    uint32_t nhdr;
    struct {
        uint32_t name, value;
    } hdr[HTTPD_MAX_HEADERS];
    uint8_t last;          /* which parser callback wrote into block last */
    uint32_t trailer_size; /* chunked trailers are skipped, but counted */
    char *body;
    size_t body_len, body_cap, body_reserved, max_body;
    struct evbuffer *resp_headers; /* headers added by httpd_add_header, not yet sent */
    unsigned resp_nhdr;
    void (*on_drain)(void *arg, httpd_req *req);
    void *drain_arg;
    void *data;
    bool headers_done;    /* the header block is complete */
    bool seen;            /* on_headers ran: the application knows the request */
    bool answered;        /* an answer (or a stream) was started */
    bool finished;        /* the answer is complete: the application is done with req */
    bool server_answered; /* the server answered (413, 503, 408) on the application's behalf */
    bool complete;        /* the whole request message was read */
    bool has_body;        /* Content-Length > 0 or chunked */
    bool keep_alive;      /* HTTP/1.1 or 1.0 rules and the Connection header */
    bool http10;
    bool head;
    bool long_body;
    bool streaming, chunked_out;
};

struct httpd_conn {
    httpd *srv;
    httpd_conn *prev, *next;
    struct bufferevent *bev;
    SSL *ssl; /* NULL on a bufferevent adopted without TLS */
    struct event *ev_deadline, *ev_stall, *ev_defer;
    http_parser parser;
    httpd_phase phase;
    httpd_req *req; /* the request being read or answered; one at a time */
    hub_admit_ticket ticket;
    struct sockaddr_storage addr;
    char peer[64];
    int error_status; /* set by the parser callback that refused the request */
    const char *error_reason;
    bool tls_done;   /* the handshake finished (always, without TLS) */
    bool first_done; /* the first request's header block is in: the handshake deadline is over */
    bool dead;       /* closing: nothing more is read, written or called; freed from ev_defer */
    bool graceful;   /* on close, send a TLS close_notify */
    bool over_limit; /* unsent output is above output_limit: not read, stall timer running */
    int64_t stall_since_ms; /* monotonic: output first above the limit; 0 once drained */
    bool in_parse;          /* the parse loop is on the stack */
    bool msg_done;          /* a message completed during the current parser run */
    bool close_after;       /* close once the current answer is out (Connection: close was sent) */
    bool goodbye;           /* TLS close_notify and TCP FIN sent */
    size_t linger_left;     /* bytes still discarded while lingering */
};

/* The connection takes no more requests: it is closing, flushing its last answer or lingering. */
static inline bool hconn_ending(const httpd_conn *c)
{
    return c->dead || c->phase >= HTTPD_PHASE_FLUSH;
}

/* ---- httpd.c: the connection ---- */

/* Runs the connection over any bufferevent (a TLS one from httpd_adopt, or one end of a pair in
 * tests and the fuzz target); ssl may be NULL. Takes bev (freed with the connection). */
void httpd_adopt_bufferevent(httpd *s, struct bufferevent *bev, SSL *ssl,
                             const struct sockaddr *addr, const char *peer,
                             hub_admit_ticket ticket);
void hconn_set_phase(httpd_conn *c, httpd_phase phase);
/* Output was queued: check it against output_limit (stop reading, start the stall timer). */
void hconn_output_added(httpd_conn *c);
/* Stop reading and close once the queued output is sent (within stall_timeout). */
void hconn_flush_close(httpd_conn *c);
/* Close now (graceful: with a TLS close_notify); the connection is freed from a fresh callback. */
void hconn_close(httpd_conn *c, bool graceful);
/* The current request's answer is complete: move on to the next request (now when called from
 * the parse loop, else from a fresh callback so the caller never sees re-entrant callbacks). */
void hconn_answer_done(httpd_conn *c);
struct evbuffer *hconn_output(httpd_conn *c);
/* An IMF-fixdate for the Date header, cached per second. */
const char *hconn_date(httpd *s);

/* ---- httpd_parse.c: the parser glue ---- */

void hparse_init(httpd_conn *c);
/* Parses buffered input while the connection may take a request: runs on_headers inside the
 * parser (so that its decision applies before any body byte), on_request after it. */
void hparse_run(httpd_conn *c);
/* Frees the answered and complete current request and moves to the next one (or closes). */
void hparse_request_done(httpd_conn *c);
/* Refuses the current request from the server: logs kind, answers status with Connection: close
 * (extra: one more header line with its CRLF, or NULL) and closes once that is sent. */
void hparse_refuse(httpd_conn *c, hub_refusal kind, int status, const char *reason,
                   const char *extra);

/* ---- httpd_req.c: the request ---- */

httpd_req *hreq_new(httpd_conn *c);
void hreq_free(httpd_req *r);
/* The server's own answer (no body, Connection: close) on c, whatever state its request is in. */
void hreq_send_error(httpd_conn *c, int status, const char *extra);

#endif
