/* HTTPS to the hub's service API with libcurl: SAS per request, the hub's CA, Azure errors. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/sas.h"
#include "common/urlenc.h"

#define API_VERSION       "2021-04-12"
#define BODY_MAX          (64u * 1024 * 1024) /* a query page or a twin is far smaller */
#define CONNECT_TIMEOUT_S 15L
#define DEFAULT_TIMEOUT_S 60L
#define USER_AGENT        "iotdm-cli/0.1.0"

typedef struct {
    cli_response *resp;
    CURL *curl;
    /* streaming only */
    cli_stream_fn on_data;
    void *arg;
    volatile int *stop;
    bool stopped_by_us;
} xfer;

bool cli_path_escape(const char *id, char *out, size_t cap)
{
    return urlenc_encode(id, strlen(id), out, cap) >= 0;
}

static bool append_body(cli_response *r, const char *data, size_t len)
{
    if (r->len + len + 1 > BODY_MAX)
        return false;
    char *b = realloc(r->body, r->len + len + 1);
    if (!b)
        return false;
    memcpy(b + r->len, data, len);
    r->len += len;
    b[r->len] = '\0';
    r->body = b;
    return true;
}

static size_t on_write(char *data, size_t size, size_t n, void *userp)
{
    xfer *x = userp;
    size_t len = size * n;
    if (x->on_data) {
        long status = 0;
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200) {
            if (!x->on_data(x->arg, data, len)) {
                x->stopped_by_us = true;
                return 0;
            }
            return len;
        }
    }
    return append_body(x->resp, data, len) ? len : 0;
}

/* Copies a header's value (trimmed) when its name matches. */
static bool header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    if (len <= nlen || line[nlen] != ':' || strncasecmp(line, name, nlen) != 0)
        return false;
    const char *v = line + nlen + 1;
    size_t vlen = len - nlen - 1;
    while (vlen && (*v == ' ' || *v == '\t'))
        v++, vlen--;
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
    if (vlen + 1 > cap)
        vlen = cap - 1;
    memcpy(out, v, vlen);
    out[vlen] = '\0';
    return true;
}

static size_t on_header(char *line, size_t size, size_t n, void *userp)
{
    xfer *x = userp;
    cli_response *r = x->resp;
    size_t len = size * n;
    char cont[4096];
    if (header_value(line, len, "x-ms-continuation", cont, sizeof cont)) {
        free(r->continuation);
        r->continuation = strdup(cont);
    }
    header_value(line, len, "iothub-errorcode", r->error_code, sizeof r->error_code);
    header_value(line, len, "x-ms-item-type", r->item_type, sizeof r->item_type);
    header_value(line, len, "etag", r->etag, sizeof r->etag);
    return len;
}

static int on_progress(void *userp, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    xfer *x = userp;
    return x->stop && *x->stop ? 1 : 0;
}

static const char *ca_file(const cli_ctx *ctx)
{
    if (ctx->ca)
        return ctx->ca;
    const char *env = getenv("IOTDM_CA");
    return env && env[0] ? env : NULL;
}

static struct curl_slist *add_header(struct curl_slist *list, const char *name, const char *value)
{
    char line[4200];
    snprintf(line, sizeof line, "%s:%s%s", name, value[0] ? " " : "", value);
    struct curl_slist *l = curl_slist_append(list, line);
    return l ? l : list;
}

static struct curl_slist *build_headers(const cli_ctx *ctx, const cli_request *rq, bool *ok)
{
    char token[SAS_TOKEN_MAX], buf[300];
    *ok = cli_service_token(ctx, token, sizeof token) == CLI_EXIT_OK;
    struct curl_slist *h = add_header(NULL, "Authorization", token);
    h = add_header(h, "Accept", rq->accept ? rq->accept : "application/json");
    if (rq->body)
        h = add_header(h, "Content-Type", "application/json; charset=utf-8");
    if (rq->if_match) {
        /* Azure wants the etag quoted (Node's _ensureQuoted); "*" stays bare. */
        bool bare = !strcmp(rq->if_match, "*") || rq->if_match[0] == '"';
        snprintf(buf, sizeof buf, bare ? "%s" : "\"%s\"", rq->if_match);
        h = add_header(h, "If-Match", buf);
    }
    if (rq->continuation)
        h = add_header(h, "x-ms-continuation", rq->continuation);
    if (rq->max_items > 0) {
        snprintf(buf, sizeof buf, "%ld", rq->max_items);
        h = add_header(h, "x-ms-max-item-count", buf);
    }
    /* No "Expect: 100-continue" round trip for large bodies. */
    h = add_header(h, "Expect", "");
    return h;
}

/* Sets up the handle for one request; the caller owns the returned header list and body text. */
static int prepare(cli_ctx *ctx, const cli_request *rq, xfer *x, struct curl_slist **headers,
                   char **body_text)
{
    int rc = cli_login(ctx);
    if (rc != CLI_EXIT_OK)
        return rc;
    const char *ca = ca_file(ctx);
    if (ca && access(ca, R_OK) != 0) {
        cli_error("--ca %s: cannot read it", ca);
        return CLI_EXIT_USAGE;
    }
    if (!ctx->curl && !(ctx->curl = curl_easy_init()))
        return CLI_EXIT_ERROR;
    CURL *c = ctx->curl;
    /* Reset keeps the connection cache: consecutive requests (query pages) reuse one TLS session.
     */
    curl_easy_reset(c);
    char url[4096];
    snprintf(url, sizeof url, "https://%s%s?api-version=%s%s%s", ctx->host, rq->path,
             rq->api_version ? rq->api_version : API_VERSION, rq->query ? "&" : "",
             rq->query ? rq->query : "");
    bool ok;
    *headers = build_headers(ctx, rq, &ok);
    if (!ok)
        return CLI_EXIT_ERROR;
    *body_text = rq->body ? json_dumps(rq->body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
    if (*body_text) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, *body_text);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(*body_text));
    } else if (!strcmp(rq->method, "POST")) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    if (ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    /* A negative timeout means none: an event stream ends when the user says so. */
    curl_easy_setopt(c, CURLOPT_TIMEOUT,
                     rq->timeout_s < 0   ? 0L
                     : rq->timeout_s > 0 ? rq->timeout_s
                                         : DEFAULT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    if (ctx->verbose)
        fprintf(stderr, "> %s %s\n", rq->method, url);
    return CLI_EXIT_OK;
}

static void report_transport_error(const cli_ctx *ctx, CURLcode rc, const char *errbuf)
{
    cli_error("cannot reach the hub at %s: %s", ctx->host,
              errbuf[0] ? errbuf : curl_easy_strerror(rc));
    if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE)
        cli_error("trust the hub's CA with --ca FILE or IOTDM_CA (iotdm-hub writes ca.pem in its "
                  "data directory)");
}

static void parse_body(cli_response *r)
{
    if (!r->body || !r->len)
        return;
    r->json = json_loadb(r->body, r->len, JSON_DECODE_ANY, NULL);
}

static int perform(cli_ctx *ctx, const cli_request *rq, xfer *x, bool timeout_ok)
{
    struct curl_slist *headers = NULL;
    char *body_text = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    int rc = prepare(ctx, rq, x, &headers, &body_text);
    if (rc == CLI_EXIT_OK) {
        curl_easy_setopt(ctx->curl, CURLOPT_ERRORBUFFER, errbuf);
        x->curl = ctx->curl;
        if (x->stop) {
            curl_easy_setopt(ctx->curl, CURLOPT_NOPROGRESS, 0L);
            curl_easy_setopt(ctx->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
            curl_easy_setopt(ctx->curl, CURLOPT_XFERINFODATA, x);
        }
        CURLcode cr = curl_easy_perform(ctx->curl);
        curl_easy_getinfo(ctx->curl, CURLINFO_RESPONSE_CODE, &x->resp->status);
        /* A stream ends by Ctrl-C, --max-events or --timeout: that is success. */
        bool user_stop = cr == CURLE_ABORTED_BY_CALLBACK ||
                         (x->stopped_by_us && x->resp->status == 200) ||
                         (timeout_ok && cr == CURLE_OPERATION_TIMEDOUT && x->resp->status == 200);
        if (cr != CURLE_OK && !user_stop) {
            if (cr == CURLE_OPERATION_TIMEDOUT && x->resp->status == 0) {
                cli_error("the hub did not answer in time (%s)", errbuf);
                rc = CLI_EXIT_OFFLINE;
            } else {
                report_transport_error(ctx, cr, errbuf);
                rc = CLI_EXIT_UNREACHABLE;
            }
        }
        if (ctx->verbose)
            fprintf(stderr, "< %ld\n", x->resp->status);
        curl_easy_setopt(ctx->curl, CURLOPT_ERRORBUFFER, NULL);
    }
    curl_slist_free_all(headers);
    free(body_text);
    parse_body(x->resp);
    cli_response_error_code(x->resp);
    return rc;
}

int cli_http_do(cli_ctx *ctx, const cli_request *rq, cli_response *out)
{
    memset(out, 0, sizeof *out);
    xfer x = {.resp = out};
    return perform(ctx, rq, &x, false);
}

int cli_http_call(cli_ctx *ctx, const cli_request *rq, cli_response *out)
{
    int rc = cli_http_do(ctx, rq, out);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (out->status >= 200 && out->status < 300)
        return CLI_EXIT_OK;
    cli_print_hub_error(out);
    return cli_exit_for_http(out->status, out->error_code);
}

int cli_http_stream(cli_ctx *ctx, const cli_request *rq, cli_stream_fn on_data, void *arg,
                    volatile int *stop)
{
    cli_response resp;
    memset(&resp, 0, sizeof resp);
    xfer x = {.resp = &resp, .on_data = on_data, .arg = arg, .stop = stop};
    int rc = perform(ctx, rq, &x, true);
    if (rc == CLI_EXIT_OK && resp.status != 200) {
        cli_print_hub_error(&resp);
        rc = cli_exit_for_http(resp.status, resp.error_code);
    }
    cli_response_free(&resp);
    return rc;
}

void cli_response_free(cli_response *r)
{
    free(r->body);
    free(r->continuation);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

void cli_http_cleanup(cli_ctx *ctx)
{
    if (ctx->curl)
        curl_easy_cleanup(ctx->curl);
    ctx->curl = NULL;
}
