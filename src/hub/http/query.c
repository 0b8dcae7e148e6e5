/* POST /devices/query: the IoT Hub query language over twins, with paging (§4.6, §5.5). */
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/http/internal.h"
#include "hub/query/query.h"
#include "hub/twin_ops.h"

#define QUERY_DEFAULT_PAGE 100
#define QUERY_MAX_PAGE     1000

typedef struct {
    hub_query_run *run;
    iotdm_result result;
} query_feed;

static bool feed_twin(void *ctx, const hub_device *d, const hub_twin *t)
{
    query_feed *f = ctx;
    json_t *doc = hub_twin_service_view(d, t);
    f->result = hub_query_run_add(f->run, doc);
    json_decref(doc);
    return f->result == IOTDM_OK;
}

static long page_size(http_ctx *cx)
{
    const char *h = http_header(cx, "x-ms-max-item-count");
    long n = h ? strtol(h, NULL, 10) : QUERY_DEFAULT_PAGE;
    if (n <= 0)
        n = QUERY_DEFAULT_PAGE;
    return n > QUERY_MAX_PAGE ? QUERY_MAX_PAGE : n;
}

void http_query(http_ctx *cx)
{
    if (cx->method != EVHTTP_REQ_POST) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "queries are sent with POST");
        return;
    }
    if (!http_authorize(cx, HUB_RIGHT_SERVICE_CONNECT))
        return;
    json_t *body = http_body_json(cx);
    if (!body)
        return;
    const json_t *text = json_object_get(body, "query");
    hub_query *q = NULL;
    char err[256] = "";
    iotdm_result r = json_is_string(text)
                         ? hub_query_parse(json_string_value(text), json_string_length(text), &q,
                                           err, sizeof err)
                         : IOTDM_E_MALFORMED;
    json_decref(body);
    if (r < 0) {
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "%s",
                        err[0] ? err : "the body must be {\"query\": \"SELECT ...\"}");
        return;
    }
    query_feed feed = {hub_query_run_new(q), IOTDM_OK};
    /* Modules and jobs do not exist yet: those queries are valid and empty. */
    if (hub_query_source_of(q) == HUB_QUERY_FROM_DEVICES)
        r = hub_store_twin_foreach(cx->h->store, feed_twin, &feed);
    json_t *rows = hub_query_run_finish(feed.run);
    if (r == IOTDM_OK)
        r = feed.result;
    if (r < 0 || !rows) {
        json_decref(rows);
        hub_query_free(q);
        http_send_result_error(cx, r < 0 ? r : IOTDM_E_INTERNAL, "the query failed");
        return;
    }
    /* The continuation token is the offset of the next page in the (deterministically ordered)
     * result; the header is left out on the last page, or Node's SDK would loop forever. */
    const char *cont = http_header(cx, "x-ms-continuation");
    size_t offset = cont ? strtoul(cont, NULL, 10) : 0;
    size_t size = (size_t)page_size(cx), total = json_array_size(rows);
    json_t *page = json_array();
    for (size_t i = offset; i < total && i < offset + size; i++)
        json_array_append(page, json_array_get(rows, i));
    struct evkeyvalq *out = evhttp_request_get_output_headers(cx->req);
    evhttp_add_header(out, "x-ms-item-type", hub_query_item_type(q));
    if (offset + size < total) {
        char next[32];
        snprintf(next, sizeof next, "%zu", offset + size);
        evhttp_add_header(out, "x-ms-continuation", next);
    }
    json_decref(rows);
    hub_query_free(q);
    http_send_json(cx, 200, page);
}
