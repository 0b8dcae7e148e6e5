/* Query pages over the store: the whole result is computed on a reader thread and cut into pages by
 * offset. (Interim: the store's own query operation, with indexes and paging that does not
 * materialise the rest, replaces this.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/query/query.h"
#include "hub/store/store.h"
#include "hub/twin_ops.h"

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

iotdm_result hub_query_page_run(hub_store *store, const hub_query *q, const char *continuation,
                                size_t max_items, hub_query_page *out)
{
    memset(out, 0, sizeof *out);
    size_t offset = 0;
    if (continuation && *continuation) {
        char *end;
        unsigned long long v = strtoull(continuation, &end, 10);
        if (*end || continuation[0] < '0' || continuation[0] > '9')
            return IOTDM_E_MALFORMED;
        offset = (size_t)v;
    }
    query_feed feed = {hub_query_run_new(q), IOTDM_OK};
    if (!feed.run)
        return -ENOMEM;
    iotdm_result r = IOTDM_OK;
    /* Modules and jobs do not exist yet: those queries are valid and empty. */
    if (hub_query_source_of(q) == HUB_QUERY_FROM_DEVICES)
        r = hub_store_twin_foreach(store, feed_twin, &feed);
    json_t *rows = hub_query_run_finish(feed.run);
    if (r == IOTDM_OK)
        r = feed.result;
    if (r < 0 || !rows) {
        json_decref(rows);
        return r < 0 ? r : -ENOMEM;
    }
    size_t total = json_array_size(rows);
    out->items = json_array();
    for (size_t i = offset; i < total && i < offset + max_items; i++)
        json_array_append(out->items, json_array_get(rows, i));
    if (offset + max_items < total)
        snprintf(out->continuation, sizeof out->continuation, "%zu", offset + max_items);
    json_decref(rows);
    return IOTDM_OK;
}
