/* libFuzzer target: arbitrary query text run the way the hub runs it, through the store's
 * prefilter (the WHERE clause compiled to SQL over the twin index) and paging, and checked against
 * a brute-force evaluation of the same query over every twin. A difference aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hub/query/query.h"
#include "hub/store/store.h"
#include "hub/twin_ops.h"

/* Twins with every JSON type where queries look, long strings, arrays, and device fields set. */
static const char *const twins[][4] = {
    /* id, tags, desired, reported */
    {"berlin-01",
     "{\"location\":{\"region\":\"EU\",\"building\":\"43\"},\"floor\":3,"
     "\"roles\":[\"gateway\",1],\"display name\":\"lab rig\"}",
     "{\"telemetryConfig\":{\"sendFrequency\":\"5m\"}}",
     "{\"batteryLevel\":55,\"telemetryConfig\":{\"status\":\"success\"},\"fw\":\"1.2\"}"},
    {"seattle-02", "{\"location\":{\"region\":\"US\",\"building\":\"7\"},\"floor\":1.0}", "{}",
     "{\"batteryLevel\":80.5,\"fw\":\"1.3\",\"on\":true}"},
    {"seattle-03", "{\"location\":{\"region\":\"US\"},\"floor\":-2,\"n\":null}", "{\"a\":[]}",
     "{\"batteryLevel\":\"unknown\",\"on\":false,\"x\":{}}"},
    {"tokyo-04",
     "{\"floor\":\"B1\",\"long\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
     "{\"floor\":4503599627370495}", "{\"batteryLevel\":20,\"fw\":\"2.0\"}"},
    {"new-05", "{}", "{}", "{}"},
    {"dev1", "{\"floor\":0,\"location\":\"none\"}", "{\"b\":{\"c\":{\"d\":1}}}",
     "{\"rebootInfo\":{\"ac\":202}}"},
};

static hub_store *store;
static char dir[] = "/tmp/iotdm-fuzz-query-XXXXXX";

static void cleanup(void)
{
    char p[96];
    hub_store_close(store);
    static const char *const files[] = {"hub.db", "hub.db-wal", "hub.db-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static void add_device(size_t i)
{
    hub_device d;
    memset(&d, 0, sizeof d);
    snprintf(d.device_id, sizeof d.device_id, "%s", twins[i][0]);
    d.enabled = i % 3 != 2;
    d.auth_type = HUB_AUTH_SAS;
    if (hub_store_device_create(store, &d) != IOTDM_OK ||
        (i % 2 && hub_store_device_set_connection(store, d.device_id, true, 1, 1) != IOTDM_OK) ||
        (i % 3 &&
         hub_store_device_set_activity(store, d.device_id, INT64_C(1714521600000) + (int64_t)i,
                                       i == 1 ? "dtmi:a;1" : NULL) != IOTDM_OK))
        abort();
    hub_twin t;
    if (hub_store_twin_get(store, d.device_id, &t) != IOTDM_OK)
        abort();
    json_t **sections[] = {&t.tags, &t.desired, &t.reported};
    for (size_t s = 0; s < 3; s++) {
        json_decref(*sections[s]);
        if (!(*sections[s] = json_loads(twins[i][s + 1], 0, NULL)))
            abort();
    }
    if (hub_store_twin_put(store, d.device_id, &t) != IOTDM_OK)
        abort();
    hub_twin_deinit(&t);
}

/* More devices than the store's first probe batch walks, so that sparse clauses switch to listing
 * their candidates: both ways of finding them are checked. */
#define GENERATED 90

static void add_generated(int i)
{
    hub_device d;
    memset(&d, 0, sizeof d);
    snprintf(d.device_id, sizeof d.device_id, "gen-%02d", i);
    d.enabled = true;
    hub_twin t;
    if (hub_store_device_create(store, &d) != IOTDM_OK ||
        hub_store_twin_get(store, d.device_id, &t) != IOTDM_OK)
        abort();
    json_decref(t.tags);
    json_decref(t.reported);
    t.tags = json_pack("{s:i, s:{s:s}}", "floor", i % 5, "location", "region", i % 3 ? "EU" : "US");
    t.reported = json_pack("{s:i, s:s}", "batteryLevel", i, "fw", i % 2 ? "1.2" : "2.0");
    if (!t.tags || !t.reported || hub_store_twin_put(store, d.device_id, &t) != IOTDM_OK)
        abort();
    hub_twin_deinit(&t);
}

static void setup(void)
{
    char path[64];
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof path, "%s/hub.db", dir);
    if (hub_store_open(path, &store) != IOTDM_OK)
        abort();
    atexit(cleanup);
    for (size_t i = 0; i < sizeof twins / sizeof twins[0]; i++)
        add_device(i);
    for (int i = 0; i < GENERATED; i++)
        add_generated(i);
    if (hub_store_commit(store) != IOTDM_OK)
        abort();
}

static bool collect(void *ctx, const hub_device *d, const hub_twin *t)
{
    return json_array_append_new(ctx, hub_twin_service_view(d, t)) == 0;
}

static json_t *brute_force(const hub_query *q)
{
    json_t *docs = json_array();
    hub_query_run *run = hub_query_run_new(q);
    if (!docs || !run || hub_store_twin_foreach(store, collect, docs) != IOTDM_OK)
        abort();
    size_t i;
    json_t *doc;
    iotdm_result r = IOTDM_OK;
    json_array_foreach(docs, i, doc)
    {
        if (r == IOTDM_OK && hub_query_source_of(q) == HUB_QUERY_FROM_DEVICES)
            r = hub_query_run_add(run, doc);
    }
    json_decref(docs);
    if (r != IOTDM_OK)
        abort();
    return hub_query_run_finish(run);
}

static json_t *paged(const hub_query *q, size_t page_size)
{
    json_t *rows = json_array();
    char cont[HUB_QUERY_CONTINUATION_MAX] = "";
    for (size_t pages = 0; pages <= sizeof twins / sizeof twins[0] + GENERATED + 1; pages++) {
        hub_query_page page;
        if (hub_query_page_run(store, q, cont, page_size, &page) != IOTDM_OK)
            abort();
        json_array_extend(rows, page.items);
        json_decref(page.items);
        if (!page.continuation[0])
            return rows;
        snprintf(cont, sizeof cont, "%s", page.continuation);
    }
    abort(); /* more pages than twins */
}

static void compare(const hub_query *q, size_t page_size)
{
    json_t *want = brute_force(q), *got = paged(q, page_size);
    if (!want || !got || !json_equal(want, got))
        abort();
    json_decref(want);
    json_decref(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!store)
        setup();
    size_t page_size = size ? (size_t)data[0] % 16 + 1 : 1;
    hub_query *q = NULL;
    char err[160];
    if (hub_query_parse((const char *)data, size, &q, err, sizeof err) == IOTDM_OK)
        compare(q, page_size);
    hub_query_free(q);
    q = NULL;
    if (hub_query_parse_condition((const char *)data, size, &q, err, sizeof err) == IOTDM_OK)
        compare(q, page_size);
    hub_query_free(q);
    return 0;
}
