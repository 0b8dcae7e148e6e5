/* libFuzzer target: the IoT Hub query parser and evaluator on arbitrary query text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/query/query.h"

/* Twins with every JSON type in the places queries look at, so that evaluation gets exercised. */
static const char docs_json[] =
    "[{\"deviceId\":\"berlin-01\",\"etag\":\"AAAAAAAAAAE=\",\"status\":\"enabled\","
    "  \"statusReason\":null,\"connectionState\":\"Connected\","
    "  \"lastActivityTime\":\"2024-05-01T10:00:00.000Z\",\"cloudToDeviceMessageCount\":2,"
    "  \"version\":7,\"capabilities\":{\"iotEdge\":false},"
    "  \"tags\":{\"location\":{\"region\":\"EU\",\"building\":\"43\"},\"floor\":3,"
    "           \"roles\":[\"gateway\",1,2.5,null,true,{\"a\":[]}]},"
    "  "
    "\"properties\":{\"desired\":{\"telemetryConfig\":{\"sendFrequency\":\"5m\"},\"$version\":23},"
    "   \"reported\":{\"batteryLevel\":55,\"telemetryConfig\":{\"status\":\"success\"},"
    "    \"dm\":{\"timeInfo\":{\"value\":{\"timeZone\":\"Europe/Berlin\"},\"ac\":200}},"
    "    \"$version\":12}}},"
    " {\"deviceId\":\"seattle-02\",\"status\":\"disabled\",\"connectionState\":\"Disconnected\","
    "  "
    "\"version\":9223372036854775807,\"tags\":{\"location\":{\"region\":\"US\"},\"floor\":-1.5e300}"
    ","
    "  \"properties\":{\"reported\":{\"batteryLevel\":\"unknown\",\"$version\":1}}},"
    " {\"deviceId\":\"d\\u00e9j\\u00e0\",\"jobId\":\"job01\",\"jobType\":\"scheduleUpdateTwin\","
    "  \"status\":\"completed\",\"tags\":{\"floor\":1e-300,\"a b\":\"\\u0000x\"}},"
    " {}, {\"tags\":[1,2]}]";

static json_t *docs;

static void run_query(const hub_query *q)
{
    size_t i;
    json_t *doc;
    hub_query_run *run = hub_query_run_new(q);
    if (!run)
        abort();
    json_array_foreach(docs, i, doc)
    {
        (void)hub_query_matches(q, doc);
        if (hub_query_run_add(run, doc) != IOTDM_OK)
            abort();
    }
    json_t *rows = hub_query_run_finish(run);
    if (!json_is_array(rows) || !hub_query_item_type(q))
        abort();
    /* Results go out as JSON: they must serialise. */
    char *text = json_dumps(rows, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text)
        abort();
    free(text);
    json_decref(rows);
}

static void check(iotdm_result rc, hub_query *q, const char *err)
{
    if (rc == IOTDM_OK) {
        run_query(q);
        hub_query_free(q);
        return;
    }
    /* Every rejection explains itself; syntax errors say where. */
    if (q || err[0] == '\0' || (rc == IOTDM_E_MALFORMED && !strstr(err, " at position ")))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!docs && !(docs = json_loads(docs_json, JSON_ALLOW_NUL, NULL)))
        abort();
    hub_query *q = NULL;
    char err[160];
    iotdm_result rc = hub_query_parse((const char *)data, size, &q, err, sizeof(err));
    check(rc, q, err);
    q = NULL;
    rc = hub_query_parse_condition((const char *)data, size, &q, err, sizeof(err));
    check(rc, q, err);
    return 0;
}
