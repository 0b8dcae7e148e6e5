/* The hub's HTTPS front: one net/httpd server per loop, the route table, authorization from the
 * headers (before any body byte is read), Azure-format answers, and the request's units of work.
 *
 * A request that no route serves is refused whole (404, or 405 for a known path with another
 * method) before its body is read: a request the hub does not understand is never half-taken. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/sas.h"
#include "common/timeutil.h"
#include "common/urlenc.h"
#include "hub/dps/dps.h"
#include "hub/http/internal.h"
#include "hub/net/listener.h"
#include "hub/net/refusals.h"
#include "hub/net/tls.h"

static const char json_content_type[] = "application/json; charset=utf-8";

static const http_route *const route_tables[] = {
    http_query_routes,        http_devices_routes,
    http_devices_bulk_routes, http_files_routes,
    http_twins_routes,        http_methods_routes,
    http_jobs_routes,         http_statistics_routes,
    http_messages_routes,     http_events_routes,
    http_models_routes,       http_blob_routes,
    http_dps_service_routes,  http_dps_device_routes,
    http_static_routes, /* last: its pattern takes any path */
};

/* ---- answers ---- */

bool http_answered(const http_ctx *cx)
{
    return cx->req == NULL;
}

void http_add_header(http_ctx *cx, const char *name, const char *value)
{
    if (cx->req)
        (void)httpd_add_header(cx->req, name, value); /* our own names and values: valid */
}

void http_send_bytes_take(http_ctx *cx, int status, const char *content_type, void *data,
                          size_t len)
{
    if (!cx->req) {
        xfree(data);
        return;
    }
    if (content_type)
        http_add_header(cx, "Content-Type", content_type);
    httpd_respond_take(cx->req, status, data, len);
    cx->req = NULL;
}

void http_send_json(http_ctx *cx, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    size_t len = text ? strlen(text) : 0;
    char *copy = xmalloc(len + 1);
    if (copy && text)
        memcpy(copy, text, len + 1);
    free(text); /* jansson's allocator */
    if (!copy) {
        http_send_empty(cx, 503);
        return;
    }
    http_send_bytes_take(cx, status, json_content_type, copy, len);
}

void http_send_empty(http_ctx *cx, int status)
{
    if (!cx->req)
        return;
    httpd_respond(cx->req, status, NULL, 0);
    cx->req = NULL;
}

void http_send_error(http_ctx *cx, hub_error_info e, const char *fmt, ...)
{
    char text[512], when[32], exc[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (cx->quiet_errors) {
        snprintf(cx->last_error, sizeof cx->last_error, "%s", text);
        return;
    }
    if (!cx->req)
        return;
    hub_refusal kind = e.http_status == 401   ? HUB_REFUSED_HTTP_UNAUTHORIZED
                       : e.http_status == 404 ? HUB_REFUSED_HTTP_NOT_FOUND
                       : e.http_status == 413 ? HUB_REFUSED_HTTP_TOO_LARGE
                       : e.http_status == 507 ? HUB_REFUSED_DISK_FULL
                                              : HUB_REFUSED_HTTP_BAD_REQUEST;
    if (e.http_status < 500)
        hub_refused(kind, "http", "%d %s %s %s peer=%s: %s", e.http_status, e.name,
                    httpd_req_method_name(cx->req), httpd_req_path(cx->req),
                    httpd_req_peer(cx->req), text);
    else
        log_warn("http", "%d %s %s %s: %s", e.http_status, e.name, httpd_req_method_name(cx->req),
                 httpd_req_path(cx->req), text);
    if (cx->dps_errors) {
        http_send_json(cx, e.http_status, hub_dps_error_body(e.code, text));
        return;
    }
    time_format_iso(time_now_ms(), when, sizeof when);
    snprintf(exc, sizeof exc, "Tracking ID:iotdm-G:0-TimeStamp:%s", when);
    char message[700];
    snprintf(message, sizeof message, "ErrorCode:%s;%s", e.name, text);
    json_t *body = json_pack("{s:s, s:s}", "Message", message, "ExceptionMessage", exc);
    http_add_header(cx, "iothub-errorcode", e.name);
    http_send_json(cx, e.http_status, body);
}

void http_send_result_error(http_ctx *cx, iotdm_result r, const char *what)
{
    if (r == -ENOSPC) {
        http_send_error(cx, (hub_error_info){507, 507001, "InsufficientStorage"},
                        "%s: the hub's disk is full", what);
        return;
    }
    http_send_error(cx, hub_error_for(r), "%s: %s", what, iotdm_result_message(r));
}

/* ---- the request ---- */

const char *http_header(http_ctx *cx, const char *name)
{
    return cx->req ? httpd_req_header(cx->req, name) : NULL;
}

SSL *http_client_ssl(http_ctx *cx)
{
    return cx->req ? httpd_req_ssl(cx->req) : NULL;
}

const char *http_query_param(http_ctx *cx, const char *name)
{
    for (size_t i = 0; i < cx->nparams; i++)
        if (strcmp(cx->param_names[i], name) == 0)
            return cx->param_values[i];
    return NULL;
}

const char *http_body(http_ctx *cx, size_t *out_len)
{
    *out_len = 0;
    return cx->req ? httpd_req_body(cx->req, out_len) : "";
}

json_t *http_body_json(http_ctx *cx)
{
    size_t len;
    const char *data = http_body(cx, &len);
    json_error_t err;
    json_t *j = json_loadb(data ? data : "", len, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        http_send_error(cx, HUB_ERR_FORMAT, "the body is not valid JSON: %s (line %d column %d)",
                        err.text, err.line, err.column);
    return j;
}

bool http_policy_authorized(hub *h, const char *auth, unsigned rights, const char **why)
{
    sas_token tok;
    hub_policy p;
    char name[HUB_ID_MAX];
    bool ok = false;
    if (!auth) {
        *why = "the Authorization header is missing";
    } else if (sas_parse(auth, strlen(auth), &tok) < 0) {
        *why = "the Authorization header is not a SharedAccessSignature";
    } else if (!tok.skn) {
        *why = "the token names no shared access policy (skn)";
    } else if (urlenc_decode(tok.skn, tok.skn_len, name, sizeof name, false) <= 0 ||
               !hub_policy_find(h, name, &p)) {
        *why = "unknown shared access policy";
    } else if (!sas_signature_valid(&tok, p.primary_key) &&
               !sas_signature_valid(&tok, p.secondary_key)) {
        *why = "the signature does not match";
    } else if (tok.expiry < time_now_ms() / 1000) {
        *why = "the token has expired";
    } else if (!sas_resource_covers(&tok, h->cfg.hostname)) {
        *why = "the token is not for this hub";
    } else if ((p.rights & rights) != rights) {
        *why = "the policy lacks the permission this operation needs";
    } else {
        ok = true;
    }
    OPENSSL_cleanse(&p, sizeof p);
    return ok;
}

/* ---- units of work for a request ---- */

static void ctx_free(http_ctx *cx)
{
    if (cx->cleanup)
        cx->cleanup(cx);
    xfree(cx);
}

/* Frees cx once nothing needs it: answered or aborted, no unit running, not held. */
static void maybe_free(http_ctx *cx)
{
    if (!cx->in_unit && !cx->held && (cx->aborted || !cx->req))
        ctx_free(cx);
}

static void request_unit_done(hub_work *w)
{
    http_ctx *cx = (http_ctx *)w;
    cx->in_unit = false;
    if (cx->aborted) {
        ctx_free(cx); /* its cleanup lets go of whatever else holds it */
        return;
    }
    cx->unit_done(cx);
    maybe_free(cx);
}

void http_release(http_ctx *cx)
{
    cx->held = false;
    maybe_free(cx);
}

void http_run(http_ctx *cx, hub_work_run_fn run, void (*done)(http_ctx *cx), unsigned flags)
{
    cx->in_unit = true;
    cx->unit_done = done;
    hub_work_submit(cx->http->loop, &cx->w, run, request_unit_done, flags);
}

/* ---- routing ---- */

/* Splits the path into percent-decoded segments; false on a segment that decodes to a NUL (which
 * would cut an id short: "/twins/devA%00xyz" must not read devA) or too many segments. */
static bool split_path(http_ctx *cx, const char *path)
{
    snprintf(cx->path_buf, sizeof cx->path_buf, "%s", path ? path : "/");
    char *save = NULL;
    for (char *seg = strtok_r(cx->path_buf, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
        if (cx->nsegments == HTTP_MAX_SEGMENTS)
            return false;
        size_t len = strlen(seg);
        long n = urlenc_decode(seg, len, seg, len + 1, false);
        if (n < 0 || strlen(seg) != (size_t)n)
            return false;
        cx->segments[cx->nsegments++] = seg;
    }
    return true;
}

static bool parse_query(http_ctx *cx, const char *query)
{
    if (!query)
        return true;
    if (strlen(query) >= sizeof cx->query_buf)
        return false;
    snprintf(cx->query_buf, sizeof cx->query_buf, "%s", query);
    char *save = NULL;
    for (char *kv = strtok_r(cx->query_buf, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        if (cx->nparams == HTTP_MAX_PARAMS)
            return false;
        char *eq = strchr(kv, '=');
        char *value = eq ? eq + 1 : kv + strlen(kv);
        if (eq)
            *eq = '\0';
        size_t nl = strlen(kv), vl = strlen(value);
        long n = urlenc_decode(kv, nl, kv, nl + 1, true);
        long v = urlenc_decode(value, vl, value, vl + 1, true);
        if (n < 0 || v < 0 || strlen(kv) != (size_t)n || strlen(value) != (size_t)v)
            return false;
        cx->param_names[cx->nparams] = kv;
        cx->param_values[cx->nparams++] = value;
    }
    return true;
}

static bool pattern_matches(const char *pattern, http_ctx *cx)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", pattern);
    size_t i = 0;
    char *save = NULL;
    for (char *p = strtok_r(buf, "/", &save); p; p = strtok_r(NULL, "/", &save), i++) {
        if (strcmp(p, "**") == 0)
            return i < cx->nsegments;
        if (i >= cx->nsegments)
            return false;
        if (strcmp(p, "*") != 0 && strcasecmp(p, cx->segments[i]) != 0)
            return false;
    }
    return i == cx->nsegments;
}

/* The route for the request; *path_known tells a 405 from a 404 when none takes the method. */
static const http_route *find_route(http_ctx *cx, bool *path_known)
{
    *path_known = false;
    for (size_t t = 0; t < sizeof route_tables / sizeof *route_tables; t++) {
        for (const http_route *r = route_tables[t]; r->pattern; r++) {
            if (!pattern_matches(r->pattern, cx))
                continue;
            if (r->methods & cx->method)
                return r;
            /* The dashboard's catch-all knows every path: only a real resource makes a 405. */
            if (r->auth != HTTP_AUTH_NONE)
                *path_known = true;
        }
    }
    return NULL;
}

/* The provisioning service's paths: their errors are in DPS's form even when no route serves. */
static bool dps_area(const http_ctx *cx)
{
    static const char *const tops[] = {"enrollments", "enrollmentGroups", "registrations"};
    if (cx->nsegments == 0)
        return false;
    for (size_t i = 0; i < sizeof tops / sizeof *tops; i++)
        if (strcasecmp(cx->segments[0], tops[i]) == 0)
            return true;
    return cx->nsegments >= 2 && strcmp(cx->segments[0], "iotdm") == 0 &&
           strcmp(cx->segments[1], "dps") == 0;
}

static bool authorize(http_ctx *cx)
{
    const http_route *r = cx->route;
    if (r->auth == HTTP_AUTH_NONE)
        return true;
    if (r->auth == HTTP_AUTH_CUSTOM)
        return r->precheck(cx);
    const char *why = NULL;
    if (!http_policy_authorized(cx->h, http_header(cx, "Authorization"), r->rights, &why)) {
        /* A peer without credentials gets a new TLS handshake to pay for each try. */
        httpd_req_close_after(cx->req);
        http_send_error(cx, HUB_ERR_UNAUTHORIZED, "%s", why);
        return false;
    }
    httpd_req_authenticated(cx->req);
    return true;
}

static void on_headers(void *arg, httpd_req *req, httpd_admit *out)
{
    hub_http *http = arg;
    http_ctx probe;
    memset(&probe, 0, sizeof probe);
    probe.http = http;
    probe.h = http->h;
    probe.req = req;
    probe.method = httpd_req_method(req);
    if (!split_path(&probe, httpd_req_path(req)) || !parse_query(&probe, httpd_req_query(req))) {
        http_send_error(&probe, HUB_ERR_ARGUMENT_INVALID,
                        "malformed request URI (a NUL byte, bad escapes, or too many parts)");
        out->answered = true;
        return;
    }
    bool path_known;
    const http_route *route = find_route(&probe, &path_known);
    /* The dashboard's catch-all serves files, never the API's own areas. */
    if (route && route->auth == HTTP_AUTH_NONE && strcmp(route->pattern, "**") == 0 &&
        probe.nsegments && (dps_area(&probe) || strcmp(probe.segments[0], "iotdm") == 0))
        route = NULL;
    if (!route && dps_area(&probe)) {
        probe.dps_errors = true;
        http_send_error(&probe, HUB_ERR_NOT_FOUND, "no such provisioning service operation");
        out->answered = true;
        return;
    }
    if (!route) {
        if (path_known)
            http_send_error(&probe, (hub_error_info){405, 405000, "MethodNotAllowed"},
                            "%s is not allowed on this resource", httpd_req_method_name(req));
        else
            http_send_error(&probe, HUB_ERR_NOT_FOUND, "no such resource");
        out->answered = true;
        return;
    }
    size_t size = route->ctx_size > sizeof probe ? route->ctx_size : sizeof probe;
    http_ctx *cx = xcalloc(1, size);
    if (!cx) {
        http_send_error(&probe, HUB_ERR_UNAVAILABLE, "out of memory");
        out->answered = true;
        return;
    }
    memcpy(cx, &probe, sizeof probe);
    /* The segments and parameters point into the context's own buffers: rebase them. */
    for (size_t i = 0; i < cx->nsegments; i++)
        cx->segments[i] = cx->path_buf + (probe.segments[i] - probe.path_buf);
    for (size_t i = 0; i < cx->nparams; i++) {
        cx->param_names[i] = cx->query_buf + (probe.param_names[i] - probe.query_buf);
        cx->param_values[i] = cx->query_buf + (probe.param_values[i] - probe.query_buf);
    }
    cx->route = route;
    cx->dps_errors = route->dps_errors;
    httpd_req_set_data(req, cx);
    if (!authorize(cx)) {
        out->answered = true;
        xfree(cx); /* nothing else holds it yet */
        return;
    }
    out->max_body = route->max_body == HTTP_BODY_UPLOAD ? (size_t)http->h->cfg.upload_max_bytes
                                                        : route->max_body;
    out->long_body = route->max_body == HTTP_BODY_UPLOAD;
}

static void on_request(void *arg, httpd_req *req)
{
    (void)arg;
    http_ctx *cx = httpd_req_get_data(req);
    cx->route->handler(cx);
    maybe_free(cx);
}

static void on_abort(void *arg, httpd_req *req)
{
    (void)arg;
    http_ctx *cx = httpd_req_get_data(req);
    if (!cx)
        return; /* aborted before a route took it */
    cx->req = NULL;
    cx->aborted = true;
    if (!cx->in_unit)
        ctx_free(cx); /* the cleanup hook forgets whatever else refers to it */
}

static void accept_https(void *arg, evutil_socket_t fd, const struct sockaddr *addr,
                         const char *peer, hub_admit_ticket ticket)
{
    hub_http *http = arg;
    httpd_adopt(http->server, fd, addr, peer, ticket);
}

static const httpd_callbacks callbacks = {on_headers, on_request, on_abort};

iotdm_result hub_http_loop_init(hub_loop *loop)
{
    hub *h = loop->h;
    hub_http *http = xcalloc(1, sizeof *http);
    if (!http)
        return -ENOMEM;
    http->loop = loop;
    http->h = h;
    loop->http = http;
    http->server =
        httpd_new(loop->base, h->https_tls, &h->cfg.limits, h->admission, &callbacks, http);
    if (!http->server)
        return -ENOMEM;
    http->sse = http_sse_new(http);
    if (!http->sse)
        return -ENOMEM;
    return hub_listener_new(loop->base, h->cfg.listen_addr, h->cfg.https_port, "https",
                            h->admission, accept_https, http, &loop->https_listener);
}

void hub_http_loop_close(hub_loop *loop)
{
    if (loop->https_listener) {
        hub_listener_free(loop->https_listener);
        loop->https_listener = NULL;
    }
    hub_http *http = loop->http;
    if (http && http->sse) {
        http_sse_free(http->sse);
        http->sse = NULL;
    }
    if (http && http->server) {
        httpd_free(http->server); /* aborts what is unanswered */
        http->server = NULL;
    }
}

void hub_http_loop_deinit(hub_loop *loop)
{
    hub_http_loop_close(loop);
    xfree(loop->http);
    loop->http = NULL;
}

size_t hub_http_loop_connections(const hub_loop *loop)
{
    return loop->http && loop->http->server ? httpd_connection_count(loop->http->server) : 0;
}
