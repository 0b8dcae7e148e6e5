/* POST /devices/query: the IoT Hub query language over twins, with paging (docs/protocol.md §8.9).
 * Pages are computed by a unit on a reader thread: a query never holds up the devices. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/http/internal.h"
#include "hub/query/query.h"

#define QUERY_DEFAULT_PAGE 100
#define QUERY_MAX_PAGE     1000

typedef struct {
    http_ctx cx;
    hub_query *q;
    char continuation[HUB_QUERY_CONTINUATION_MAX];
    size_t page_size;
    hub_query_page page;
} query_ctx;

static void query_cleanup(http_ctx *cx)
{
    query_ctx *qc = (query_ctx *)cx;
    hub_query_free(qc->q);
    json_decref(qc->page.items);
}

static size_t page_size(http_ctx *cx)
{
    const char *h = http_header(cx, "x-ms-max-item-count");
    long n = h ? strtol(h, NULL, 10) : QUERY_DEFAULT_PAGE;
    if (n <= 0)
        n = QUERY_DEFAULT_PAGE;
    return (size_t)(n > QUERY_MAX_PAGE ? QUERY_MAX_PAGE : n);
}

static iotdm_result page_run(hub_work *w, hub_store *store)
{
    query_ctx *qc = (query_ctx *)w;
    return hub_query_page_run(store, qc->q, qc->continuation, qc->page_size, &qc->page);
}

static void page_done(http_ctx *cx)
{
    query_ctx *qc = (query_ctx *)cx;
    if (cx->w.result == IOTDM_E_MALFORMED) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "x-ms-continuation is not one this hub made");
        return;
    }
    if (cx->w.result == IOTDM_E_TOO_LARGE) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "the query makes more than %d groups",
                        HUB_QUERY_MAX_GROUPS);
        return;
    }
    if (cx->w.result < 0) {
        http_send_result_error(cx, cx->w.result, "the query failed");
        return;
    }
    http_add_header(cx, "x-ms-item-type", hub_query_item_type(qc->q));
    /* Left out on the last page, or Node's SDK would loop forever. */
    if (qc->page.continuation[0])
        http_add_header(cx, "x-ms-continuation", qc->page.continuation);
    json_t *items = qc->page.items;
    qc->page.items = NULL;
    http_send_json(cx, 200, items);
}

static void query(http_ctx *cx)
{
    query_ctx *qc = (query_ctx *)cx;
    cx->cleanup = query_cleanup;
    json_t *body = http_body_json(cx);
    if (!body)
        return;
    const json_t *text = json_object_get(body, "query");
    char err[256] = "";
    iotdm_result r = json_is_string(text)
                         ? hub_query_parse(json_string_value(text), json_string_length(text),
                                           &qc->q, err, sizeof err)
                         : IOTDM_E_MALFORMED;
    json_decref(body);
    if (r < 0) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "%s",
                        err[0] ? err : "the body must be {\"query\": \"SELECT ...\"}");
        return;
    }
    const char *cont = http_header(cx, "x-ms-continuation");
    if (cont && strlen(cont) >= sizeof qc->continuation) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "x-ms-continuation is too long");
        return;
    }
    snprintf(qc->continuation, sizeof qc->continuation, "%s", cont ? cont : "");
    qc->page_size = page_size(cx);
    http_run(cx, page_run, page_done, HUB_WORK_SNAPSHOT);
}

const http_route http_query_routes[] = {
    {"devices/query", HTTPD_POST, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT, HTTP_BODY_SMALL,
     false, NULL, query, sizeof(query_ctx)},
    {NULL, 0, 0, 0, 0, false, NULL, NULL, 0},
};
