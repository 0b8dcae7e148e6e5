/* Unit tests of the IoT Hub query language: parsing, conditions, projections, GROUP BY, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "hub/query/query.h"

/* A small fleet of service twins in the shape of docs/protocol.md §5.1. */
static const char fleet_json[] =
    "["
    "{\"deviceId\":\"berlin-01\",\"etag\":\"AAAAAAAAAAE=\",\"status\":\"enabled\","
    " \"statusReason\":null,\"connectionState\":\"Connected\","
    " \"lastActivityTime\":\"2024-05-01T10:00:00.000Z\",\"cloudToDeviceMessageCount\":2,"
    " \"authenticationType\":\"sas\",\"modelId\":\"dtmi:iotdm:DeviceManagement;1\",\"version\":7,"
    " \"capabilities\":{\"iotEdge\":false},"
    " \"tags\":{\"location\":{\"region\":\"EU\",\"building\":\"43\"},\"floor\":3,"
    "          \"roles\":[\"gateway\",\"sensor\"]},"
    " \"properties\":{"
    "  \"desired\":{\"telemetryConfig\":{\"sendFrequency\":\"5m\"},\"$version\":23},"
    "  \"reported\":{\"batteryLevel\":55,\"telemetryConfig\":{\"status\":\"success\"},"
    "   \"dm\":{\"timeInfo\":{\"value\":{\"timeZone\":\"Europe/Berlin\"},\"ac\":200,\"av\":4}},"
    "   \"$metadata\":{\"$lastUpdated\":\"2024-05-01T10:00:00.000Z\"},\"$version\":12}}},"
    "{\"deviceId\":\"seattle-02\",\"etag\":\"AAAAAAAAAAI=\",\"status\":\"enabled\","
    " \"statusReason\":\"provisioned\",\"connectionState\":\"Disconnected\","
    " \"lastActivityTime\":\"2024-04-01T08:30:00.000Z\",\"cloudToDeviceMessageCount\":0,"
    " \"authenticationType\":\"selfSigned\",\"version\":3,"
    " \"tags\":{\"location\":{\"region\":\"US\",\"building\":\"7\"},\"floor\":1},"
    " \"properties\":{\"desired\":{\"$version\":1},"
    "  \"reported\":{\"batteryLevel\":80.5,\"telemetryConfig\":{\"status\":\"pending\"},"
    "   \"dm\":{\"timeInfo\":{\"value\":{\"timeZone\":\"America/Los_Angeles\"}}},"
    "   \"$version\":4}}},"
    "{\"deviceId\":\"seattle-03\",\"etag\":\"AAAAAAAAAAM=\",\"status\":\"disabled\","
    " \"statusReason\":null,\"connectionState\":\"Disconnected\","
    " \"lastActivityTime\":\"2023-12-24T18:00:00.000Z\",\"cloudToDeviceMessageCount\":5,"
    " \"authenticationType\":\"sas\",\"version\":9,"
    " \"tags\":{\"location\":{\"region\":\"US\"},\"floor\":2,\"display name\":\"lab rig\"},"
    " \"properties\":{\"desired\":{\"$version\":1},"
    "  \"reported\":{\"batteryLevel\":20,\"telemetryConfig\":{\"status\":\"success\"},"
    "   \"$version\":2}}},"
    "{\"deviceId\":\"tokyo-04\",\"etag\":\"AAAAAAAAAAQ=\",\"status\":\"enabled\","
    " \"statusReason\":null,\"connectionState\":\"Connected\","
    " \"lastActivityTime\":\"2024-05-02T01:00:00.000Z\",\"cloudToDeviceMessageCount\":1,"
    " \"authenticationType\":\"sas\",\"version\":2,"
    " \"tags\":{\"location\":{\"region\":\"APAC\"},\"floor\":\"B1\"},"
    " \"properties\":{\"desired\":{\"$version\":1},"
    "  \"reported\":{\"batteryLevel\":\"unknown\",\"telemetryConfig\":{\"status\":\"error\"},"
    "   \"$version\":3}}},"
    "{\"deviceId\":\"new-05\",\"etag\":\"AAAAAAAAAAU=\",\"status\":\"enabled\","
    " \"connectionState\":\"Disconnected\",\"lastActivityTime\":\"0001-01-01T00:00:00Z\","
    " \"cloudToDeviceMessageCount\":0,\"authenticationType\":\"sas\",\"version\":1,"
    " \"tags\":{},"
    " \"properties\":{\"desired\":{\"$version\":1},\"reported\":{\"$version\":1}}}"
    "]";

static json_t *fleet;

static int setup(void **state)
{
    (void)state;
    json_error_t e;
    fleet = json_loads(fleet_json, JSON_REJECT_DUPLICATES, &e);
    if (!fleet)
        fprintf(stderr, "fleet_json: %s at %d\n", e.text, e.position);
    return fleet ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(fleet);
    return 0;
}

static hub_query *parse_ok(const char *text)
{
    hub_query *q = NULL;
    char err[256];
    iotdm_result rc = hub_query_parse(text, strlen(text), &q, err, sizeof(err));
    if (rc != IOTDM_OK)
        fail_msg("%s: %s", text, err);
    return q;
}

/* The ids of the fleet's twins matching the WHERE clause of text, comma-separated. */
static const char *matching(const char *text)
{
    static char ids[512];
    hub_query *q = parse_ok(text);
    size_t i;
    json_t *doc;
    ids[0] = '\0';
    json_array_foreach(fleet, i, doc)
    {
        if (!hub_query_matches(q, doc))
            continue;
        if (ids[0])
            strcat(ids, ",");
        strcat(ids, json_string_value(json_object_get(doc, "deviceId")));
    }
    hub_query_free(q);
    return ids;
}

static const char *where(const char *cond)
{
    static char text[1024];
    snprintf(text, sizeof(text), "SELECT * FROM devices WHERE %s", cond);
    return matching(text);
}

static json_t *run_over(const hub_query *q, const json_t *docs)
{
    hub_query_run *run = hub_query_run_new(q);
    size_t i;
    json_t *doc;
    assert_non_null(run);
    json_array_foreach(docs, i, doc) assert_int_equal(hub_query_run_add(run, doc), IOTDM_OK);
    json_t *rows = hub_query_run_finish(run);
    assert_non_null(rows);
    return rows;
}

/* Runs text over the fleet and compares the rows with the expected JSON (order matters). */
static void assert_rows(const char *text, const char *expected)
{
    hub_query *q = parse_ok(text);
    json_t *rows = run_over(q, fleet);
    json_t *want = json_loads(expected, 0, NULL);
    assert_non_null(want);
    if (!json_equal(rows, want)) {
        char *got = json_dumps(rows, JSON_COMPACT);
        fail_msg("%s\n got  %s\n want %s", text, got, expected);
    }
    json_decref(want);
    json_decref(rows);
    hub_query_free(q);
}

static void assert_parse_error(const char *text, iotdm_result want_rc, const char *want_err)
{
    hub_query *q = (hub_query *)(uintptr_t)1;
    char err[256] = "";
    iotdm_result rc = hub_query_parse(text, strlen(text), &q, err, sizeof(err));
    if (rc != want_rc || strcmp(err, want_err) != 0)
        fail_msg("%s\n got  %d \"%s\"\n want %d \"%s\"", text, rc, err, want_rc, want_err);
    assert_null(q);
}

static void test_query_keywords_any_case_parse(void **state)
{
    (void)state;
    assert_string_equal(matching("select * from DEVICES where status = 'disabled'"), "seattle-03");
    assert_string_equal(matching("SeLeCt * FrOm devices WhErE tags.floor = 1 Or tags.floor = 2"),
                        "seattle-02,seattle-03");
    hub_query *q = parse_ok("SELECT * FROM devices");
    assert_int_equal(hub_query_source_of(q), HUB_QUERY_FROM_DEVICES);
    assert_string_equal(hub_query_item_type(q), "twin");
    assert_true(hub_query_matches(q, json_array_get(fleet, 0)));
    hub_query_free(q);
    q = parse_ok("SELECT deviceId FROM Devices.Modules");
    assert_int_equal(hub_query_source_of(q), HUB_QUERY_FROM_MODULES);
    assert_string_equal(hub_query_item_type(q), "raw");
    hub_query_free(q);
    q = parse_ok("SELECT COUNT() FROM devices");
    assert_string_equal(hub_query_item_type(q), "raw");
    hub_query_free(q);
}

static void test_query_system_properties_any_case_match(void **state)
{
    (void)state;
    assert_string_equal(where("DeviceId = 'tokyo-04'"), "tokyo-04");
    assert_string_equal(where("CONNECTIONSTATE = 'Connected' AND Status = 'enabled'"),
                        "berlin-01,tokyo-04");
    assert_string_equal(where("Tags.location.region = 'EU'"), "berlin-01");
    assert_string_equal(where("Properties.Reported.batteryLevel = 20"), "seattle-03");
    /* Members below the top level are case-sensitive, as JSON is. */
    assert_string_equal(where("tags.Location.region = 'EU'"), "");
}

static void test_query_equality_operators_compare_same_types(void **state)
{
    (void)state;
    assert_string_equal(where("tags.location.region = 'US'"), "seattle-02,seattle-03");
    assert_string_equal(where("tags.location.region != 'US'"), "berlin-01,tokyo-04");
    assert_string_equal(where("tags.location.region <> 'US'"), "berlin-01,tokyo-04");
    assert_string_equal(where("properties.reported.batteryLevel = 80.5"), "seattle-02");
    assert_string_equal(where("version = 7.0"), "berlin-01");
    assert_string_equal(where("capabilities.iotEdge = false"), "berlin-01");
    assert_string_equal(where("capabilities.iotEdge != true"), "berlin-01");
    assert_string_equal(where("\"dtmi:iotdm:DeviceManagement;1\" = modelId"), "berlin-01");
}

static void test_query_ordering_operators_compare_numbers_and_strings(void **state)
{
    (void)state;
    assert_string_equal(where("properties.reported.batteryLevel < 55"), "seattle-03");
    assert_string_equal(where("properties.reported.batteryLevel <= 55"), "berlin-01,seattle-03");
    assert_string_equal(where("properties.reported.batteryLevel > 55"), "seattle-02");
    assert_string_equal(where("properties.reported.batteryLevel >= 55"), "berlin-01,seattle-02");
    /* ISO 8601 timestamps order as strings; ordinal comparison is byte order. */
    assert_string_equal(where("lastActivityTime > '2024-04-15'"), "berlin-01,tokyo-04");
    assert_string_equal(where("deviceId < 'new-06'"), "berlin-01,new-05");
    assert_string_equal(where("deviceId >= 'b' AND deviceId < 'c'"), "berlin-01");
    assert_string_equal(where("tags.location.region < 'a'"),
                        "berlin-01,seattle-02,seattle-03,tokyo-04");
}

static void test_query_mismatched_types_compare_false(void **state)
{
    (void)state;
    /* tokyo-04 reports batteryLevel "unknown": a string never orders against a number. */
    assert_string_equal(where("properties.reported.batteryLevel > 0"),
                        "berlin-01,seattle-02,seattle-03");
    assert_string_equal(where("properties.reported.batteryLevel > 'a'"), "tokyo-04");
    assert_string_equal(where("properties.reported.batteryLevel = '55'"), "");
    assert_string_equal(where("properties.reported.batteryLevel != '55'"), "tokyo-04");
    assert_string_equal(where("tags.floor != 3"), "seattle-02,seattle-03");
    assert_string_equal(where("capabilities.iotEdge < true"), "");
    assert_string_equal(where("tags = tags"), "");
    assert_string_equal(where("statusReason < null"), "");
    assert_string_equal(where("status"), "");
    assert_string_equal(where("42"), "");
}

static void test_query_undefined_paths_compare_false(void **state)
{
    (void)state;
    assert_string_equal(where("properties.reported.missing = 1"), "");
    assert_string_equal(where("properties.reported.missing != 1"), "");
    assert_string_equal(where("tags.location.building != '43'"), "seattle-02");
    assert_string_equal(where("properties.reported.dm.timeInfo.value.timeZone != 'UTC'"),
                        "berlin-01,seattle-02");
    assert_string_equal(where("tags.location.region.deeper = 'EU'"), "");
    assert_string_equal(where("tags.roles.x = 1"), "");
    assert_string_equal(where("NOT (properties.reported.missing = 1)"), "");
    assert_string_equal(where("undefined = undefined"), "");
    assert_string_equal(where("status = undefined"), "");
}

static void test_query_null_matches_only_json_null(void **state)
{
    (void)state;
    assert_string_equal(where("statusReason = null"), "berlin-01,seattle-03,tokyo-04");
    assert_string_equal(where("statusReason != null"), "");
    assert_string_equal(where("properties.reported.missing = null"), "");
    assert_string_equal(where("IS_NULL(statusReason) OR statusReason = 'provisioned'"),
                        "berlin-01,seattle-02,seattle-03,tokyo-04");
}

static void test_query_logic_precedence_not_and_or(void **state)
{
    (void)state;
    /* AND binds tighter than OR: a OR (b AND c). */
    assert_string_equal(where("status = 'disabled' OR connectionState = 'Connected' AND "
                              "tags.location.region = 'APAC'"),
                        "seattle-03,tokyo-04");
    assert_string_equal(where("(status = 'disabled' OR connectionState = 'Connected') AND "
                              "tags.location.region = 'US'"),
                        "seattle-03");
    /* NOT binds tighter than AND, looser than comparisons. */
    assert_string_equal(where("NOT status = 'enabled' OR deviceId = 'new-05'"),
                        "seattle-03,new-05");
    assert_string_equal(where("NOT connectionState = 'Connected' AND NOT status = 'disabled'"),
                        "seattle-02,new-05");
    assert_string_equal(where("NOT NOT status = 'disabled'"), "seattle-03");
    /* tokyo-04's floor is "B1": both comparisons are undefined, and so is their negation. */
    assert_string_equal(where("not (tags.floor = 3 or tags.floor = 1)"), "seattle-03");
    /* Undefined stays undefined through NOT, but a false operand decides an AND. */
    assert_string_equal(where("tags.missing = 1 OR deviceId = 'new-05'"), "new-05");
    assert_string_equal(where("NOT (tags.missing = 1 AND deviceId = 'x')"),
                        "berlin-01,seattle-02,seattle-03,tokyo-04,new-05");
    assert_string_equal(where("true AND (false OR true)"),
                        "berlin-01,seattle-02,seattle-03,tokyo-04,new-05");
}

static void test_query_arithmetic_operators_and_precedence(void **state)
{
    (void)state;
    assert_string_equal(where("tags.floor + 1 = 4"), "berlin-01");
    assert_string_equal(where("tags.floor - 1 = 0"), "seattle-02");
    assert_string_equal(where("tags.floor * 2 = 4"), "seattle-03");
    assert_string_equal(where("tags.floor / 2 = 1.5"), "berlin-01");
    assert_string_equal(where("tags.floor % 2 = 0"), "seattle-03");
    assert_string_equal(where("2 + 3 * tags.floor = 11"), "berlin-01");
    assert_string_equal(where("(2 + 3) * tags.floor = 15"), "berlin-01");
    assert_string_equal(where("10 - 4 - tags.floor = 3"), "berlin-01");
    assert_string_equal(where("12 / 2 / tags.floor = 2"), "berlin-01");
    assert_string_equal(where("-tags.floor = -2"), "seattle-03");
    assert_string_equal(where("- -tags.floor = +2"), "seattle-03");
    assert_string_equal(where("properties.reported.batteryLevel * 2 = 161"), "seattle-02");
    assert_string_equal(where("properties.reported.batteryLevel % 7.5 = 5.5"), "seattle-02");
    /* Division by zero, strings and missing values give undefined. */
    assert_string_equal(where("tags.floor / 0 = 0"), "");
    assert_string_equal(where("tags.floor % 0 = 0"), "");
    assert_string_equal(where("tags.floor + 1 = 'B11'"), "");
    assert_string_equal(where("tags.missing + 1 = 1"), "");
    /* Integer overflow continues in floating point instead of wrapping. */
    assert_string_equal(where("9223372036854775807 * 2 > 0 AND 0x7fffffffffffffff + 1 > 0 AND "
                              "-9223372036854775807 - 2 < 0 AND deviceId = 'new-05'"),
                        "new-05");
}

static void test_query_in_and_nin_test_membership(void **state)
{
    (void)state;
    assert_string_equal(where("deviceId IN ['tokyo-04', 'berlin-01', 'nowhere']"),
                        "berlin-01,tokyo-04");
    assert_string_equal(where("deviceId NIN ['tokyo-04', 'berlin-01']"),
                        "seattle-02,seattle-03,new-05");
    assert_string_equal(where("deviceId NOT IN ['tokyo-04', 'berlin-01']"),
                        "seattle-02,seattle-03,new-05");
    assert_string_equal(where("tags.floor IN [1, 2, 'B1']"), "seattle-02,seattle-03,tokyo-04");
    assert_string_equal(where("tags.floor IN ['3']"), "");
    assert_string_equal(where("tags.missing NIN [1]"), "");
    assert_string_equal(where("tags.floor in []"), "");
    assert_string_equal(where("'sensor' IN tags.roles"), "berlin-01");
    assert_string_equal(where("tags.floor IN [1 + 1]"), "seattle-03");
}

static void test_query_type_functions_check_types(void **state)
{
    (void)state;
    assert_string_equal(where("IS_DEFINED(tags.location.building)"), "berlin-01,seattle-02");
    assert_string_equal(where("NOT is_defined(properties.reported.batteryLevel)"), "new-05");
    assert_string_equal(where("IS_NULL(statusReason)"), "berlin-01,seattle-03,tokyo-04");
    assert_string_equal(where("IS_BOOL(capabilities.iotEdge)"), "berlin-01");
    assert_string_equal(where("IS_NUMBER(tags.floor)"), "berlin-01,seattle-02,seattle-03");
    assert_string_equal(where("IS_STRING(tags.floor)"), "tokyo-04");
    assert_string_equal(where("IS_OBJECT(capabilities)"), "berlin-01");
    assert_string_equal(where("IS_ARRAY(tags.roles)"), "berlin-01");
    assert_string_equal(where("IS_PRIMITIVE(statusReason) AND NOT IS_PRIMITIVE(tags)"),
                        "berlin-01,seattle-02,seattle-03,tokyo-04");
    assert_string_equal(where("IS_NUMBER(tags.missing) OR IS_STRING(tags.missing)"), "");
}

static void test_query_string_functions_match_text(void **state)
{
    (void)state;
    assert_string_equal(where("STARTSWITH(deviceId, 'seattle-')"), "seattle-02,seattle-03");
    assert_string_equal(where("ENDSWITH(properties.reported.dm.timeInfo.value.timeZone, "
                              "'Berlin')"),
                        "berlin-01");
    assert_string_equal(where("CONTAINS(authenticationType, 'Sign')"), "seattle-02");
    assert_string_equal(where("contains(authenticationType, 'SIGN', true)"), "seattle-02");
    assert_string_equal(where("StartsWith(deviceId, 'TOKYO', true)"), "tokyo-04");
    assert_string_equal(where("STARTSWITH(deviceId, 'TOKYO')"), "");
    assert_string_equal(where("STARTSWITH(tags.floor, '3')"), "");
    assert_string_equal(where("LOWER(connectionState) = 'connected'"), "berlin-01,tokyo-04");
    assert_string_equal(where("UPPER(tags.location.region) = 'APAC'"), "tokyo-04");
    assert_string_equal(where("LENGTH(deviceId) = 6"), "new-05");
    assert_string_equal(where("LENGTH('\\u00e9t\\u00e9') = 3 AND deviceId = 'new-05'"), "new-05");
}

static void test_query_literals_decode(void **state)
{
    (void)state;
    assert_string_equal(where("tags.floor = 0x3"), "berlin-01");
    assert_string_equal(where("tags.floor = 0X0002"), "seattle-03");
    assert_string_equal(where("properties.reported.batteryLevel = 8.05e1"), "seattle-02");
    assert_string_equal(where("properties.reported.batteryLevel = 805E-1"), "seattle-02");
    assert_string_equal(where("tags['display name'] = 'lab rig'"), "seattle-03");
    assert_string_equal(where("tags[\"display name\"] = \"lab rig\""), "seattle-03");
    assert_string_equal(where("tags.roles[1] = 'sensor'"), "berlin-01");
    assert_string_equal(where("tags.roles[2] = 'sensor'"), "");
    assert_string_equal(where("'it\\'s' = \"it's\" AND \"say \\\"hi\\\"\" = 'say \"hi\"' AND "
                              "'a\\\\b' = 'a\\u005cb' AND '\\ud83d\\ude00' = '\xf0\x9f\x98\x80' "
                              "AND deviceId = 'new-05'"),
                        "new-05");
    assert_string_equal(where("properties.reported.$version = 12"), "berlin-01");
    assert_string_equal(where("properties.desired.$version > 1"), "berlin-01");
}

static void test_query_projection_keys_alias_or_last_segment(void **state)
{
    (void)state;
    assert_rows("SELECT DeviceId, LastActivityTime FROM devices WHERE status = 'enabled' AND "
                "connectionState = 'Disconnected'",
                "[{\"deviceId\":\"seattle-02\",\"lastActivityTime\":\"2024-04-01T08:30:00.000Z\"},"
                " {\"deviceId\":\"new-05\",\"lastActivityTime\":\"0001-01-01T00:00:00Z\"}]");
    assert_rows("SELECT deviceId AS id, properties.reported.dm.timeInfo.value.timeZone AS tz, "
                "tags.location FROM devices WHERE tags.location.region = 'US'",
                "[{\"id\":\"seattle-02\",\"tz\":\"America/Los_Angeles\","
                "  \"location\":{\"region\":\"US\",\"building\":\"7\"}},"
                " {\"id\":\"seattle-03\",\"location\":{\"region\":\"US\"}}]");
    assert_rows("SELECT tags['display name'], tags.floor * 10 AS decimetres, tags.floor + 1, "
                "properties.reported.$version FROM devices WHERE deviceId = 'seattle-03'",
                "[{\"display name\":\"lab rig\",\"decimetres\":20,\"$1\":3,\"$version\":2}]");
    assert_rows("SELECT tags.missing FROM devices WHERE deviceId = 'new-05'", "[{}]");
}

static void test_query_select_all_returns_documents(void **state)
{
    (void)state;
    hub_query *q = parse_ok("SELECT * FROM devices WHERE deviceId = 'berlin-01'");
    json_t *rows = run_over(q, fleet);
    assert_int_equal(json_array_size(rows), 1);
    assert_true(json_equal(json_array_get(rows, 0), json_array_get(fleet, 0)));
    assert_ptr_not_equal(json_array_get(rows, 0), json_array_get(fleet, 0));
    json_decref(rows);
    hub_query_free(q);
}

static void test_query_top_limits_rows(void **state)
{
    (void)state;
    assert_rows("SELECT TOP 2 deviceId FROM devices WHERE status = 'enabled'",
                "[{\"deviceId\":\"berlin-01\"},{\"deviceId\":\"seattle-02\"}]");
    assert_rows("select top 0 * from devices", "[]");
    assert_rows("SELECT TOP 100 deviceId FROM devices WHERE tags.floor = 'B1'",
                "[{\"deviceId\":\"tokyo-04\"}]");
    assert_rows("SELECT TOP 1 tags.location.region AS region, COUNT() AS n FROM devices "
                "GROUP BY tags.location.region",
                "[{\"region\":\"EU\",\"n\":1}]");
}

static void test_query_group_by_counts_each_group(void **state)
{
    (void)state;
    /* The documented example: devices without the property form their own group. */
    assert_rows("SELECT properties.reported.telemetryConfig.status AS status, "
                "COUNT() AS numberOfDevices FROM devices "
                "GROUP BY properties.reported.telemetryConfig.status",
                "[{\"status\":\"success\",\"numberOfDevices\":2},"
                " {\"status\":\"pending\",\"numberOfDevices\":1},"
                " {\"status\":\"error\",\"numberOfDevices\":1},"
                " {\"numberOfDevices\":1}]");
    assert_rows("SELECT COUNT(*), tags.location.region FROM devices WHERE status = 'enabled' "
                "GROUP BY tags.location.region",
                "[{\"count\":1,\"region\":\"EU\"},{\"count\":1,\"region\":\"US\"},"
                " {\"count\":1,\"region\":\"APAC\"},{\"count\":1}]");
    /* Two GROUP BY paths; one of them is not projected and keeps its last segment. */
    assert_rows("SELECT COUNT() AS n FROM devices WHERE IS_DEFINED(tags.location) "
                "GROUP BY tags.location.region, status",
                "[{\"n\":1,\"region\":\"EU\",\"status\":\"enabled\"},"
                " {\"n\":1,\"region\":\"US\",\"status\":\"enabled\"},"
                " {\"n\":1,\"region\":\"US\",\"status\":\"disabled\"},"
                " {\"n\":1,\"region\":\"APAC\",\"status\":\"enabled\"}]");
    /* 3 and 3.0 are the same group. */
    json_t *docs = json_loads("[{\"v\":3},{\"v\":3.0},{\"v\":\"3\"}]", 0, NULL);
    hub_query *q = parse_ok("SELECT v, COUNT() AS n FROM devices GROUP BY v");
    json_t *rows = run_over(q, docs);
    json_t *want = json_loads("[{\"v\":3,\"n\":2},{\"v\":\"3\",\"n\":1}]", 0, NULL);
    assert_true(json_equal(rows, want));
    json_decref(want);
    json_decref(rows);
    json_decref(docs);
    hub_query_free(q);
}

static void test_query_aggregates_without_group_give_one_row(void **state)
{
    (void)state;
    assert_rows("SELECT COUNT() AS total FROM devices", "[{\"total\":5}]");
    assert_rows("SELECT COUNT() FROM devices WHERE deviceId = 'none'", "[{\"count\":0}]");
    /* batteryLevel: 55, 80.5, 20, "unknown", missing. The string spoils SUM and AVG. */
    assert_rows("SELECT SUM(properties.reported.batteryLevel) AS s, "
                "MIN(properties.reported.batteryLevel) AS lo, "
                "MAX(properties.reported.batteryLevel) AS hi, "
                "COUNT(properties.reported.batteryLevel) AS n FROM devices",
                "[{\"lo\":20,\"hi\":\"unknown\",\"n\":4}]");
    assert_rows(
        "SELECT SUM(properties.reported.batteryLevel), AVG(properties.reported.batteryLevel),"
        " MIN(properties.reported.batteryLevel), MAX(properties.reported.batteryLevel) "
        "FROM devices WHERE IS_NUMBER(properties.reported.batteryLevel)",
        "[{\"sum\":155.5,\"avg\":51.833333333333336,\"min\":20,\"max\":80.5}]");
    assert_rows("SELECT SUM(tags.floor) AS floors, AVG(tags.floor) AS avg, MIN(deviceId) AS first "
                "FROM devices WHERE IS_NUMBER(tags.floor)",
                "[{\"floors\":6,\"avg\":2,\"first\":\"berlin-01\"}]");
    assert_rows("SELECT SUM(tags.missing) AS s, AVG(tags.missing) AS a, MAX(tags.missing) AS m "
                "FROM devices",
                "[{\"s\":0}]");
    assert_rows("SELECT TOP 0 COUNT() FROM devices", "[]");
}

static void test_query_jobs_source_strips_prefix(void **state)
{
    (void)state;
    json_t *job = json_loads("{\"deviceId\":\"berlin-01\",\"jobId\":\"job01\","
                             "\"jobType\":\"scheduleDeviceMethod\",\"status\":\"completed\","
                             "\"createdDateTimeUtc\":\"2016-09-29T18:18:56.7787107Z\"}",
                             0, NULL);
    hub_query *q = parse_ok("SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'job01' AND "
                            "devices.jobs.JobType = 'scheduleDeviceMethod' AND "
                            "devices.jobs.createdDateTimeUtc > '2016-09-01'");
    assert_int_equal(hub_query_source_of(q), HUB_QUERY_FROM_JOBS);
    assert_string_equal(hub_query_item_type(q), "deviceJob");
    assert_true(hub_query_matches(q, job));
    hub_query_free(q);
    q = parse_ok("SELECT * FROM devices.jobs WHERE devices.jobs.status = 'failed'");
    assert_false(hub_query_matches(q, job));
    hub_query_free(q);
    json_decref(job);
    assert_parse_error("SELECT deviceId FROM devices.jobs", IOTDM_E_MALFORMED,
                       "FROM devices.jobs supports only SELECT * at position 0");
}

static void test_query_modules_source_filters_module_twins(void **state)
{
    (void)state;
    json_t *mods = json_loads("[{\"deviceId\":\"d1\",\"moduleId\":\"scanner\","
                              "  \"properties\":{\"reported\":{\"status\":\"scanning\"}}},"
                              " {\"deviceId\":\"d2\",\"moduleId\":\"scanner\","
                              "  \"properties\":{\"reported\":{\"status\":\"idle\"}}},"
                              " {\"deviceId\":\"d3\",\"moduleId\":\"scanner\","
                              "  \"properties\":{\"reported\":{\"status\":\"scanning\"}}}]",
                              0, NULL);
    hub_query *q = parse_ok("SELECT deviceId, ModuleId FROM devices.modules WHERE "
                            "properties.reported.status = 'scanning' AND deviceId IN ['d1', 'd2']");
    json_t *rows = run_over(q, mods);
    json_t *want = json_loads("[{\"deviceId\":\"d1\",\"moduleId\":\"scanner\"}]", 0, NULL);
    assert_true(json_equal(rows, want));
    json_decref(want);
    json_decref(rows);
    json_decref(mods);
    hub_query_free(q);
}

static void test_query_condition_parses_job_filters(void **state)
{
    (void)state;
    hub_query *q = NULL;
    char err[128];
    const char *cond = "deviceId IN ['seattle-02', 'new-05']";
    assert_int_equal(hub_query_parse_condition(cond, strlen(cond), &q, err, sizeof(err)), 0);
    assert_string_equal(hub_query_item_type(q), "twin");
    json_t *rows = run_over(q, fleet);
    assert_int_equal(json_array_size(rows), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rows, 1), "deviceId")),
                        "new-05");
    json_decref(rows);
    hub_query_free(q);
    assert_int_equal(hub_query_parse_condition(" * ", 3, &q, err, sizeof(err)), 0);
    assert_true(hub_query_matches(q, json_array_get(fleet, 3)));
    hub_query_free(q);
    assert_int_equal(hub_query_parse_condition("tags.building = ", 16, &q, err, sizeof(err)),
                     IOTDM_E_MALFORMED);
    assert_string_equal(err, "expected an expression at position 16");
    assert_null(q);
}

/* Syntax errors: the message names what was expected and where (0-based byte offset). */
static const struct {
    const char *query, *error;
} syntax_errors[] = {
    {"", "expected SELECT at position 0"},
    {"SELECT * WHERE status = 'x'", "expected FROM at position 9"},
    {"SELECT * FROM twins", "expected devices, devices.modules or devices.jobs at position 14"},
    {"SELECT * FROM devices.apps", "expected modules or jobs at position 22"},
    {"SELECT * FROM devices WHERE", "expected an expression at position 27"},
    {"SELECT * FROM devices WHERE status = 'x", "invalid string literal at position 37"},
    {"SELECT * FROM devices WHERE status = 'a\\qb'", "invalid string literal at position 39"},
    {"SELECT * FROM devices WHERE s = '\\ud800'", "invalid string literal at position 33"},
    {"SELECT * FROM devices WHERE (status = 'x'", "expected ')' at position 41"},
    {"SELECT * FROM devices WHERE status = 'x' status",
     "expected GROUP BY or the end of the query at position 41"},
    {"SELECT * FROM devices WHERE a = 1 = 2",
     "expected GROUP BY or the end of the query at position 34"},
    {"SELECT * FROM devices WHERE a ! 1", "unexpected character at position 30"},
    {"SELECT * FROM devices WHERE a = #", "unexpected character at position 32"},
    {"SELECT * FROM devices WHERE a = 12abc", "invalid number at position 32"},
    {"SELECT * FROM devices WHERE a = 0x", "invalid number at position 32"},
    {"SELECT * FROM devices WHERE a = 1e999", "invalid number at position 32"},
    {"SELECT * FROM devices WHERE tags. = 1", "expected a property name at position 34"},
    {"SELECT * FROM devices WHERE tags[x] = 1",
     "expected a quoted property name or an array index at position 33"},
    {"SELECT * FROM devices WHERE FOO(a) = 1", "unknown function 'FOO' at position 28"},
    {"SELECT * FROM devices WHERE STARTSWITH(a) = 1",
     "wrong number of arguments to STARTSWITH at position 28"},
    {"SELECT * FROM devices WHERE COUNT() > 1",
     "aggregate COUNT is allowed only in the SELECT list at position 28"},
    {"SELECT TOP -1 * FROM devices", "expected a non-negative integer after TOP at position 11"},
    {"SELECT TOP 1.5 * FROM devices", "expected a non-negative integer after TOP at position 11"},
    {"SELECT deviceId AS FROM devices", "expected an alias at position 19"},
    {"SELECT deviceId AS 'x' FROM devices", "expected an alias at position 19"},
    {"SELECT deviceId, COUNT() FROM devices",
     "'deviceId' is neither an aggregate nor in GROUP BY at position 7"},
    {"SELECT * FROM devices GROUP BY status",
     "GROUP BY cannot be used with SELECT * at position 31"},
    {"SELECT COUNT() FROM devices GROUP status", "expected BY at position 34"},
    {"SELECT COUNT() FROM devices GROUP BY 'status'", "expected a property path at position 37"},
    {"SELECT SUM() FROM devices", "expected an expression at position 11"},
    {"SELECT * FROM devices WHERE deviceId IN 'a'", "expected an array at position 40"},
};

static void test_query_syntax_errors_report_position(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(syntax_errors) / sizeof(syntax_errors[0]); i++)
        assert_parse_error(syntax_errors[i].query, IOTDM_E_MALFORMED, syntax_errors[i].error);
    /* A message too long for the buffer is cut short, but keeps its position. */
    const char *text = "SELECT * FROM devices WHERE A_VERY_LONG_FUNCTION_NAME(x) = 1";
    char err[40];
    hub_query *q = NULL;
    assert_int_equal(hub_query_parse(text, strlen(text), &q, err, sizeof(err)), IOTDM_E_MALFORMED);
    assert_string_equal(err, "unknown function 'A_VERY at position 28");
}

static void test_query_overlong_query_is_too_large(void **state)
{
    (void)state;
    char *text = malloc(HUB_QUERY_MAX_LEN + 2);
    const char *head = "SELECT * FROM devices WHERE deviceId = '";
    size_t hl = strlen(head);
    memcpy(text, head, hl);
    memset(text + hl, 'a', HUB_QUERY_MAX_LEN - hl - 1);
    text[HUB_QUERY_MAX_LEN - 1] = '\'';
    text[HUB_QUERY_MAX_LEN] = '\0';
    hub_query *q = NULL;
    char err[128];
    assert_int_equal(hub_query_parse(text, HUB_QUERY_MAX_LEN, &q, err, sizeof(err)), IOTDM_OK);
    hub_query_free(q);
    text[HUB_QUERY_MAX_LEN] = ' ';
    assert_int_equal(hub_query_parse(text, HUB_QUERY_MAX_LEN + 1, &q, err, sizeof(err)),
                     IOTDM_E_TOO_LARGE);
    assert_string_equal(err, "query longer than 8192 characters");
    assert_null(q);
    free(text);
}

/* cond wrapped in n levels of the given prefix/suffix. */
static char *nest(const char *prefix, const char *cond, const char *suffix, int n)
{
    size_t size = 64 + strlen(cond) + (size_t)n * (strlen(prefix) + strlen(suffix));
    char *text = malloc(size);
    strcpy(text, "SELECT * FROM devices WHERE ");
    for (int i = 0; i < n; i++)
        strcat(text, prefix);
    strcat(text, cond);
    for (int i = 0; i < n; i++)
        strcat(text, suffix);
    return text;
}

static void test_query_deep_nesting_is_rejected(void **state)
{
    (void)state;
    char err[128];
    hub_query *q = NULL;
    char *ok = nest("(", "deviceId = 'tokyo-04'", ")", HUB_QUERY_MAX_DEPTH - 1);
    assert_string_equal(matching(ok), "tokyo-04");
    free(ok);
    const char *prefixes[] = {"(", "NOT ", "-", "LOWER(", "[", "1 + ("};
    const char *suffixes[] = {")", "", "", ")", "]", ")"};
    for (size_t i = 0; i < 6; i++) {
        char *text = nest(prefixes[i], "1", suffixes[i], 4000 / (int)strlen(prefixes[i]));
        assert_int_equal(hub_query_parse(text, strlen(text), &q, err, sizeof(err)),
                         IOTDM_E_MALFORMED);
        assert_non_null(strstr(err, "nested deeper than 64"));
        assert_null(q);
        free(text);
    }
    /* A long chain of ORs and arithmetic is long, not deep. */
    char *chain = malloc(HUB_QUERY_MAX_LEN);
    strcpy(chain, "SELECT * FROM devices WHERE deviceId = 'x'");
    for (int i = 0; i < 300; i++)
        strcat(chain, " OR tags.floor = 1");
    assert_string_equal(matching(chain), "seattle-02");
    strcpy(chain, "SELECT * FROM devices WHERE tags.floor ");
    for (int i = 0; i < 60; i++)
        strcat(chain, "+ 1 ");
    strcat(chain, "= 61");
    assert_string_equal(matching(chain), "seattle-02");
    free(chain);
}

static void test_query_allocation_failures_fail_cleanly(void **state)
{
    (void)state;
    const char *text = "SELECT tags.location.region AS region, COUNT() AS n, "
                       "SUM(tags.floor), MAX(deviceId) FROM devices WHERE "
                       "NOT STARTSWITH(deviceId, 'x') AND tags.floor IN [1, 2, 3] "
                       "GROUP BY tags.location.region";
    int successes = 0;
    for (unsigned long n = 1; n < 200; n++) {
        hub_query *q = NULL;
        alloc_fail_after(n);
        iotdm_result rc = hub_query_parse(text, strlen(text), &q, NULL, 0);
        hub_query_run *run = rc == IOTDM_OK ? hub_query_run_new(q) : NULL;
        size_t i;
        json_t *doc;
        json_array_foreach(fleet, i, doc)
        {
            /* Failing allocations are the point: the run reports them at finish. */
            if (run)
                IOTDM_IGNORE(hub_query_run_add(run, doc));
        }
        json_t *rows = run ? hub_query_run_finish(run) : NULL;
        alloc_fail_after(0);
        if (rc != IOTDM_OK)
            assert_int_equal(rc, -ENOMEM);
        successes += rows != NULL;
        json_decref(rows);
        hub_query_free(q);
    }
    assert_true(successes > 0);
}

static void test_query_bad_arguments_are_rejected(void **state)
{
    (void)state;
    hub_query *q = NULL;
    assert_int_equal(hub_query_parse(NULL, 4, &q, NULL, 0), -EINVAL);
    assert_int_equal(hub_query_parse("SELECT * FROM devices", 21, NULL, NULL, 0), -EINVAL);
    /* Text need not be NUL-terminated; an embedded NUL is just a bad character. */
    assert_int_equal(hub_query_parse("SELECT * FROM devices WHERE x", 21, &q, NULL, 0), IOTDM_OK);
    hub_query_free(q);
    assert_int_equal(hub_query_parse("SELECT *\0 FROM devices", 22, &q, NULL, 0),
                     IOTDM_E_MALFORMED);
    q = parse_ok("SELECT * FROM devices");
    hub_query_run *run = hub_query_run_new(q);
    assert_int_equal(hub_query_run_add(run, NULL), -EINVAL);
    hub_query_run_free(run);
    hub_query_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_keywords_any_case_parse),
        cmocka_unit_test(test_query_system_properties_any_case_match),
        cmocka_unit_test(test_query_equality_operators_compare_same_types),
        cmocka_unit_test(test_query_ordering_operators_compare_numbers_and_strings),
        cmocka_unit_test(test_query_mismatched_types_compare_false),
        cmocka_unit_test(test_query_undefined_paths_compare_false),
        cmocka_unit_test(test_query_null_matches_only_json_null),
        cmocka_unit_test(test_query_logic_precedence_not_and_or),
        cmocka_unit_test(test_query_arithmetic_operators_and_precedence),
        cmocka_unit_test(test_query_in_and_nin_test_membership),
        cmocka_unit_test(test_query_type_functions_check_types),
        cmocka_unit_test(test_query_string_functions_match_text),
        cmocka_unit_test(test_query_literals_decode),
        cmocka_unit_test(test_query_projection_keys_alias_or_last_segment),
        cmocka_unit_test(test_query_select_all_returns_documents),
        cmocka_unit_test(test_query_top_limits_rows),
        cmocka_unit_test(test_query_group_by_counts_each_group),
        cmocka_unit_test(test_query_aggregates_without_group_give_one_row),
        cmocka_unit_test(test_query_jobs_source_strips_prefix),
        cmocka_unit_test(test_query_modules_source_filters_module_twins),
        cmocka_unit_test(test_query_condition_parses_job_filters),
        cmocka_unit_test(test_query_syntax_errors_report_position),
        cmocka_unit_test(test_query_overlong_query_is_too_large),
        cmocka_unit_test(test_query_deep_nesting_is_rejected),
        cmocka_unit_test(test_query_allocation_failures_fail_cleanly),
        cmocka_unit_test(test_query_bad_arguments_are_rejected),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
