/* HTTPS server: TLS via bufferevent_openssl, routing, authorization, Azure-format responses. */
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/sas.h"
#include "common/timeutil.h"
#include "common/urlenc.h"
#include "hub/dps/dps.h"
#include "hub/http/internal.h"
#include "hub/net/tls.h"

static const char json_content_type[] = "application/json; charset=utf-8";

void http_send_json(http_ctx *cx, int status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    struct evbuffer *out = evbuffer_new();
    if (text)
        evbuffer_add(out, text, strlen(text));
    free(text);
    evhttp_add_header(evhttp_request_get_output_headers(cx->req), "Content-Type",
                      json_content_type);
    evhttp_send_reply(cx->req, status, NULL, out);
    evbuffer_free(out);
}

void http_send_empty(http_ctx *cx, int status)
{
    evhttp_send_reply(cx->req, status, NULL, NULL);
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
    log_info("http", "%d %s %s: %s", e.http_status, e.name, evhttp_request_get_uri(cx->req), text);
    if (cx->dps_errors) {
        http_send_json(cx, e.http_status, hub_dps_error_body(e.code, text));
        return;
    }
    time_format_iso(time_now_ms(), when, sizeof when);
    snprintf(exc, sizeof exc, "Tracking ID:iotdm-G:0-TimeStamp:%s", when);
    char message[700];
    snprintf(message, sizeof message, "ErrorCode:%s;%s", e.name, text);
    json_t *body = json_pack("{s:s, s:s}", "Message", message, "ExceptionMessage", exc);
    evhttp_add_header(evhttp_request_get_output_headers(cx->req), "iothub-errorcode", e.name);
    http_send_json(cx, e.http_status, body);
}

void http_send_result_error(http_ctx *cx, iotdm_result r, const char *what)
{
    http_send_error(cx, hub_error_for(r), "%s: %s", what, iotdm_result_message(r));
}

const char *http_header(http_ctx *cx, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(cx->req), name);
}

SSL *http_client_ssl(http_ctx *cx)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(cx->req);
    struct bufferevent *bev = conn ? evhttp_connection_get_bufferevent(conn) : NULL;
    return bev ? bufferevent_openssl_get_ssl(bev) : NULL;
}

const char *http_query_param(http_ctx *cx, const char *name)
{
    return evhttp_find_header(&cx->query, name);
}

json_t *http_body_json(http_ctx *cx)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(cx->req);
    size_t len = evbuffer_get_length(in);
    if (len > HTTP_MAX_BODY) {
        http_send_error(cx, HUB_ERR_TOO_LARGE, "the request body is larger than %d bytes",
                        HTTP_MAX_BODY);
        return NULL;
    }
    const char *data = (const char *)evbuffer_pullup(in, -1);
    json_error_t err;
    json_t *j = json_loadb(data ? data : "", len, JSON_REJECT_DUPLICATES, &err);
    if (!j)
        http_send_error(cx, HUB_ERR_FORMAT, "the body is not valid JSON: %s (line %d column %d)",
                        err.text, err.line, err.column);
    return j;
}

bool http_authorize(http_ctx *cx, unsigned rights)
{
    const char *auth = http_header(cx, "Authorization");
    sas_token tok;
    const char *why = NULL;
    hub_policy p;
    char name[HUB_ID_MAX];
    if (!auth) {
        why = "the Authorization header is missing";
    } else if (sas_parse(auth, strlen(auth), &tok) < 0) {
        why = "the Authorization header is not a SharedAccessSignature";
    } else if (!tok.skn) {
        why = "the token names no shared access policy (skn)";
    } else if (urlenc_decode(tok.skn, tok.skn_len, name, sizeof name, false) <= 0 ||
               hub_store_policy_get(cx->h->store, name, &p) < 0) {
        why = "unknown shared access policy";
    } else if (!sas_signature_valid(&tok, p.primary_key) &&
               !sas_signature_valid(&tok, p.secondary_key)) {
        why = "the signature does not match";
    } else if (tok.expiry < time_now_ms() / 1000) {
        why = "the token has expired";
    } else if (!sas_resource_covers(&tok, cx->h->cfg.hostname)) {
        why = "the token is not for this hub";
    } else if ((p.rights & rights) != rights) {
        why = "the policy lacks the permission this operation needs";
    }
    if (why) {
        http_send_error(cx, HUB_ERR_UNAUTHORIZED, "%s", why);
        return false;
    }
    return true;
}

/* Splits the path into percent-decoded segments. */
static bool split_path(http_ctx *cx, const char *path)
{
    snprintf(cx->path_buf, sizeof cx->path_buf, "%s", path ? path : "/");
    char *save = NULL;
    for (char *seg = strtok_r(cx->path_buf, "/", &save); seg; seg = strtok_r(NULL, "/", &save)) {
        if (cx->nsegments == HTTP_MAX_SEGMENTS)
            return false;
        if (urlenc_decode(seg, strlen(seg), seg, strlen(seg) + 1, false) < 0)
            return false;
        cx->segments[cx->nsegments++] = seg;
    }
    return true;
}

static bool seg_is(http_ctx *cx, size_t i, const char *s)
{
    return i < cx->nsegments && strcmp(cx->segments[i], s) == 0;
}

static void route(struct evhttp_request *req, void *arg)
{
    hub_http *http = arg;
    http_ctx *cx = xcalloc(1, sizeof *cx);
    if (!cx) {
        evhttp_send_error(req, 503, NULL);
        return;
    }
    cx->http = http;
    cx->h = http->h;
    cx->req = req;
    cx->method = evhttp_request_get_command(req);
    TAILQ_INIT(&cx->query);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *q = evhttp_uri_get_query(uri);
    if ((q && evhttp_parse_query_str(q, &cx->query) < 0) ||
        !split_path(cx, evhttp_uri_get_path(uri))) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "malformed request URI");
    } else if (seg_is(cx, 0, "devices") && seg_is(cx, 2, "files")) {
        http_files_device(cx);
    } else if (seg_is(cx, 0, HTTP_UPLOAD_CONTAINER)) {
        http_files_blob_put(cx);
    } else if (seg_is(cx, 0, "iotdm") && seg_is(cx, 1, "files")) {
        http_files_service(cx);
    } else if (seg_is(cx, 0, "devices") && seg_is(cx, 1, "query") && cx->nsegments == 2) {
        http_query(cx);
    } else if (seg_is(cx, 0, "devices")) {
        http_devices(cx);
    } else if (seg_is(cx, 0, "twins") && seg_is(cx, 2, "methods") && cx->nsegments == 3) {
        http_methods(cx);
    } else if (seg_is(cx, 0, "twins")) {
        http_twins(cx);
    } else if (seg_is(cx, 1, "registrations") && cx->nsegments >= 4) {
        http_dps_device(cx);
    } else if (seg_is(cx, 0, "enrollments") || seg_is(cx, 0, "enrollmentGroups") ||
               seg_is(cx, 0, "enrollmentgroups") || seg_is(cx, 0, "registrations")) {
        http_dps_service(cx);
    } else if (seg_is(cx, 0, "statistics")) {
        http_statistics(cx);
    } else if (seg_is(cx, 0, "iotdm") && seg_is(cx, 1, "devices") && seg_is(cx, 3, "messages")) {
        http_messages(cx);
    } else if (seg_is(cx, 0, "iotdm") && seg_is(cx, 1, "events")) {
        http_events(cx);
    } else if (seg_is(cx, 0, "iotdm") && seg_is(cx, 1, "models")) {
        http_models(cx);
    } else if (seg_is(cx, 0, "iotdm") && seg_is(cx, 1, "dps")) {
        http_dps_info(cx);
    } else {
        http_static(cx);
    }
    evhttp_clear_headers(&cx->query);
    xfree(cx);
}

static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
    hub_http *http = arg;
    SSL *ssl = SSL_new(http->h->https_tls);
    if (!ssl)
        return NULL;
    /* X.509 devices: DPS registration and the file-upload calls over HTTPS. */
    hub_tls_request_client_cert(ssl);
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev)
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

hub_http *hub_http_new(hub *h)
{
    hub_http *http = xcalloc(1, sizeof *http);
    if (!http)
        return NULL;
    http->h = h;
    http->http = evhttp_new(h->base);
    if (!http->http) {
        xfree(http);
        return NULL;
    }
    evhttp_set_bevcb(http->http, tls_bev, http);
    evhttp_set_gencb(http->http, route, http);
    /* Uploads are the largest bodies; every other route checks HTTP_MAX_BODY itself. */
    evhttp_set_max_body_size(http->http, HTTP_MAX_UPLOAD);
    evhttp_set_max_headers_size(http->http, 64 * 1024);
    evhttp_set_allowed_methods(http->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                               EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE |
                                               EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
    evhttp_set_timeout(http->http, 600);
    http->sse = http_sse_new(http);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(
        http->http, h->cfg.listen_addr, (ev_uint16_t)h->cfg.https_port);
    if (!bound) {
        log_error("http", "cannot listen on %s:%u: %s", h->cfg.listen_addr, h->cfg.https_port,
                  strerror(errno));
        hub_http_free(http);
        return NULL;
    }
    /* Accepted sockets inherit it. Without it a response split into two TLS records waits for
     * the client's delayed ACK (40 ms), which caps a keep-alive connection at ~25 calls/s. */
    int one = 1;
    setsockopt(evhttp_bound_socket_get_fd(bound), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return http;
}

void hub_http_free(hub_http *http)
{
    if (!http)
        return;
    if (http->sse)
        http_sse_free(http->sse);
    evhttp_free(http->http);
    xfree(http);
}
