/* Shared by the HTTP route files: the request context, the route table's terms, responses in
 * Azure's format, body parsing, and running units of work for a request. */
#ifndef IOTDM_HUB_HTTP_INTERNAL_H
#define IOTDM_HUB_HTTP_INTERNAL_H

#include <jansson.h>
#include <openssl/ssl.h>
#include <stdbool.h>

#include "hub/errors.h"
#include "hub/http/http.h"
#include "hub/net/httpd.h"

#define HTTP_MAX_SEGMENTS     40 /* blob names have folders */
#define HTTP_MAX_PARAMS       16
#define HTTP_UPLOAD_CONTAINER "iotdm-files"

/* Body limits per kind of route, checked from the headers before the body is read. */
#define HTTP_BODY_NONE                                                                             \
    4096 /* none expected; a small one (some clients send "{}") is read and ignored */
#define HTTP_BODY_SMALL  (64 * 1024)   /* device calls, DPS, queries */
#define HTTP_BODY_JSON   (1024 * 1024) /* registry and twin documents, bulk operations */
#define HTTP_BODY_METHOD (256 * 1024)  /* a 128 KB payload and its JSON around it */

struct hub_http {
    hub_loop *loop;
    hub *h;
    httpd *server;
    struct hub_sse *sse; /* server-sent-event subscribers (events.c) */
};

typedef struct http_ctx http_ctx;

/* Who may call a route, checked once the headers are in and before the body is read. */
typedef enum {
    HTTP_AUTH_NONE,   /* the dashboard's files */
    HTTP_AUTH_POLICY, /* a shared-access-policy SAS with the route's rights */
    HTTP_AUTH_CUSTOM, /* the route's precheck: device credentials, upload SAS, DPS */
} http_auth;

/* max_body of the upload route: the configured upload limit. */
#define HTTP_BODY_UPLOAD ((size_t)-1)

typedef struct {
    const char *pattern; /* path segments; '*' one segment, '**' one or more (last only) */
    unsigned methods;    /* httpd_method bits */
    http_auth auth;
    unsigned rights; /* HTTP_AUTH_POLICY: all of these */
    size_t max_body; /* bytes, or HTTP_BODY_UPLOAD */
    bool dps_errors; /* errors in DPS's form (docs/protocol.md §7.5), not IoT Hub's */
    /* HTTP_AUTH_CUSTOM: what can be checked from the headers; answers and returns false to
     * refuse. What needs the store (a device's key) is checked again by the handler's unit. */
    bool (*precheck)(http_ctx *cx);
    void (*handler)(http_ctx *cx);
    size_t ctx_size; /* the handler's context, which starts with http_ctx (0: http_ctx) */
} http_route;

/* Each resource file lists its routes, ending with an entry whose pattern is NULL. */
extern const http_route http_devices_routes[];
extern const http_route http_devices_bulk_routes[];
extern const http_route http_twins_routes[];
extern const http_route http_methods_routes[];
extern const http_route http_jobs_routes[];
extern const http_route http_query_routes[];
extern const http_route http_statistics_routes[];
extern const http_route http_messages_routes[];
extern const http_route http_events_routes[];
extern const http_route http_models_routes[];
extern const http_route http_files_routes[];
extern const http_route http_blob_routes[];
extern const http_route http_dps_device_routes[];
extern const http_route http_dps_service_routes[];
extern const http_route http_static_routes[];

/* One request, from its headers to its answer. A handler that needs more state declares a struct
 * starting with http_ctx and names its size in the route. */
struct http_ctx {
    hub_work w; /* first: the request's unit of work (one at a time) */
    void (*unit_done)(http_ctx *cx);
    void (*cleanup)(http_ctx *cx); /* frees the handler's state (optional) */
    hub_http *http;
    hub *h;
    httpd_req *req; /* NULL once answered or once the connection went away */
    const http_route *route;
    httpd_method method;
    char *segments[HTTP_MAX_SEGMENTS];
    size_t nsegments;
    const char *param_names[HTTP_MAX_PARAMS];
    const char *param_values[HTTP_MAX_PARAMS];
    size_t nparams;
    char path_buf[2048];
    char query_buf[2048];
    bool dps_errors;
    bool aborted; /* the connection went away before the answer */
    bool in_unit; /* a unit of work is running for it */
    bool held;    /* the handler answers from another callback (a method call, a stream) */
    /* Bulk operations collect per-item errors instead of answering: the last one is kept here. */
    bool quiet_errors;
    char last_error[512];
};

/* ---- running units for a request (server.c) ---- */

/* Submits cx's unit: run on a store thread, then done on the loop, unless the request was aborted
 * meanwhile (the context is then freed without calling done). */
void http_run(http_ctx *cx, hub_work_run_fn run, void (*done)(http_ctx *cx), unsigned flags);

/* A handler that set cx->held answers from a callback of its own; after answering it calls this
 * (cx may be freed by it). On abort, the route's cleanup must let go of such callbacks. */
void http_release(http_ctx *cx);

/* ---- answers (each request gets exactly one) ---- */

bool http_answered(const http_ctx *cx);
/* Adds a response header (before the answer). */
void http_add_header(http_ctx *cx, const char *name, const char *value);
/* send_json takes the reference. */
void http_send_json(http_ctx *cx, int status, json_t *body);
void http_send_empty(http_ctx *cx, int status);
/* Bytes with a content type; takes data (xmalloc'ed). */
void http_send_bytes_take(http_ctx *cx, int status, const char *content_type, void *data,
                          size_t len);
/* Azure's legacy error body (docs/protocol.md §8.4) plus the iothub-errorcode header; DPS's body
 * when cx->dps_errors. */
void http_send_error(http_ctx *cx, hub_error_info e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void http_send_result_error(http_ctx *cx, iotdm_result r, const char *what);

/* ---- the request ---- */

/* The body as JSON; on failure an error was sent and NULL is returned. */
json_t *http_body_json(http_ctx *cx);
const char *http_body(http_ctx *cx, size_t *out_len);
const char *http_header(http_ctx *cx, const char *name);
/* The TLS connection the request arrived on (its client certificate, if the client sent one). */
SSL *http_client_ssl(http_ctx *cx);
/* A decoded query parameter, or NULL. */
const char *http_query_param(http_ctx *cx, const char *name);

/* Checks a shared-access-policy SAS in the Authorization header for all of rights. Without the
 * rights, *why says what is wrong. */
bool http_policy_authorized(hub *h, const char *auth, unsigned rights, const char **why);

/* Fills d from a Device JSON body (docs/protocol.md §8.6); an update without "authentication"
 * keeps the credentials. On a bad field writes the reason to err and returns false. */
bool http_device_from_json(const json_t *body, bool is_update, hub_device *d, char *err,
                           size_t err_cap);

/* Builds a cloud-to-device message from the extension's JSON body; returns a readable error or
 * NULL. m is filled (hub_c2d_deinit it in both cases). */
const char *http_c2d_from_json(const json_t *body, const char *device_id, int64_t default_ttl,
                               hub_c2d *m);

/* The signature of an upload SAS (files.c): HMAC with the hub's upload key over the correlation
 * id, the blob name and the expiry. */
bool http_upload_signature(hub *h, const char *cid, const char *blob, int64_t se, char out[45]);

struct hub_sse *http_sse_new(hub_http *http);
void http_sse_free(struct hub_sse *sse);

#endif
