/* Desired properties: $version gating (stale ignored, a gap read in full, buffered patches
 * applied after the read), PnP dispatch property by property, ack shapes, reportAll. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fixture.h"

typedef struct {
    char property[32];
    char value[256];
    int64_t version;
} call;

static call calls[32];
static int ncalls;
static char app_seen[512];
static int app_calls;

/* ctx: the status to answer with (0: no answer at all; 202: value_json set). */
static void on_desired(void *ctx, const char *value_json, int64_t version, iotdm_ack *out_ack)
{
    int code = *(const int *)ctx;
    call *k = &calls[ncalls++];
    snprintf(k->value, sizeof k->value, "%s", value_json);
    k->version = version;
    if (code == 0)
        return;
    out_ack->code = code;
    out_ack->description = code < 400 ? "ok" : "bad value";
    out_ack->value_json = code == 202 ? "{\"state\":\"pending\"}" : NULL;
}

static char *read_state(void *ctx)
{
    (void)ctx;
    return strdup("{\"actual\":1}");
}

static void on_app(void *ctx, const char *json, int64_t version, bool full)
{
    (void)ctx;
    (void)version;
    (void)full;
    snprintf(app_seen, sizeof app_seen, "%s", json);
    app_calls++;
}

static const int code_ok = 200, code_bad = 400, code_none = 0, code_pending = 202;

static iotdm_client *setup_client(char **out_dir)
{
    *out_dir = fixture_mkdir();
    iotdm_client *c = fixture_client(*out_dir);
    assert_non_null(c);
    iotdm_property_handler h1 = {.struct_size = sizeof(iotdm_property_handler),
                                 .component = "dm",
                                 .property = "timeInfo",
                                 .on_desired = on_desired,
                                 .read_state = NULL,
                                 .ctx = (void *)&code_ok};
    iotdm_property_handler h2 = {.struct_size = sizeof(iotdm_property_handler),
                                 .component = "dm",
                                 .property = "rebootInfo",
                                 .on_desired = on_desired,
                                 .read_state = NULL,
                                 .ctx = (void *)&code_bad};
    assert_int_equal(iotdm_handler_add(c, &h1), IOTDM_OK);
    assert_int_equal(iotdm_handler_add(c, &h2), IOTDM_OK);
    assert_int_equal(iotdm_handler_add(c, &h1), IOTDM_E_EXISTS);
    assert_int_equal(iotdm_twin_on_desired(c, on_app, NULL), IOTDM_OK);
    ncalls = app_calls = 0;
    return c;
}

static void assert_json(json_t *got, const char *want_text)
{
    json_t *want = json_loads(want_text, 0, NULL);
    assert_non_null(want);
    assert_non_null(got);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("got %s, want %s", g, want_text);
    }
    json_decref(want);
    json_decref(got);
}

static void desired(iotdm_client *c, int64_t version, const char *body)
{
    az_hub_topic t = {.kind = AZ_HUB_TWIN_DESIRED, .has_version = true, .version = version};
    fixture_enter(c);
    twin_on_desired(c, &t, body, strlen(body));
    fixture_leave(c);
}

static void test_gate_stale_apply_gap(void **state)
{
    (void)state;
    assert_int_equal(twin_gate(5, 4), DESIRED_STALE);
    assert_int_equal(twin_gate(5, 5), DESIRED_STALE);
    assert_int_equal(twin_gate(5, 6), DESIRED_APPLY);
    assert_int_equal(twin_gate(5, 8), DESIRED_GAP);
}

static void test_full_document_dispatches_each_property_and_acks(void **state)
{
    (void)state;
    char *dir;
    iotdm_client *c = setup_client(&dir);
    json_t *doc = json_loads("{\"dm\":{\"__t\":\"c\",\"timeInfo\":{\"zone\":\"UTC\"},"
                             "\"rebootInfo\":{\"x\":1}},\"other\":5,\"$version\":3}",
                             0, NULL);
    fixture_enter(c);
    twin_apply_full(c, doc, 3);
    fixture_leave(c);
    json_decref(doc);
    /* both handlers ran, in document order; the second one failing did not stop anything */
    assert_int_equal(ncalls, 2);
    assert_string_equal(calls[0].value, "{\"zone\":\"UTC\"}");
    assert_int_equal(calls[0].version, 3);
    assert_string_equal(calls[1].value, "{\"x\":1}");
    /* the application sees only what no handler claimed */
    assert_int_equal(app_calls, 1);
    assert_json(json_loads(app_seen, 0, NULL), "{\"other\":5,\"$version\":3}");
    assert_json(fixture_pop_reported(c), "{\"dm\":{\"__t\":\"c\",\"timeInfo\":{\"value\":{\"zone\":"
                                         "\"UTC\"},\"ac\":200,\"av\":3,\"ad\":\"ok\"}}}");
    assert_json(fixture_pop_reported(c),
                "{\"dm\":{\"__t\":\"c\",\"rebootInfo\":{\"value\":{\"x\":1}"
                ",\"ac\":400,\"av\":3,\"ad\":\"bad value\"}}}");
    assert_null(fixture_pop_reported(c));
    iotdm_client_free(c);
    fixture_rmdir(dir);
}

static void test_stale_ignored_gap_reads_full_twin_then_buffered_patch(void **state)
{
    (void)state;
    char *dir;
    iotdm_client *c = setup_client(&dir);
    json_t *doc = json_loads("{\"dm\":{\"timeInfo\":{\"zone\":\"UTC\"}}}", 0, NULL);
    fixture_enter(c);
    twin_apply_full(c, doc, 3);
    fixture_leave(c);
    json_decref(doc);
    ncalls = 0;
    desired(c, 3, "{\"dm\":{\"timeInfo\":{\"zone\":\"stale\"}},\"$version\":3}");
    desired(c, 2, "{\"dm\":{\"timeInfo\":{\"zone\":\"older\"}},\"$version\":2}");
    assert_int_equal(ncalls, 0);
    /* 5 after 3: version 4 was missed */
    desired(c, 5, "{\"dm\":{\"timeInfo\":{\"ntp\":\"pool\"}},\"$version\":5}");
    assert_int_equal(ncalls, 0);
    assert_false(c->twin_synced);
    /* the full read (as the GET response would bring it) catches up to 4, then 5 applies */
    c->twin_get_pending = true;
    c->get_rid = 42;
    const char *twin =
        "{\"desired\":{\"dm\":{\"__t\":\"c\",\"timeInfo\":{\"zone\":\"Europe/Berlin\"}"
        "},\"$version\":4},\"reported\":{\"$version\":1}}";
    az_hub_topic t = {.kind = AZ_HUB_TWIN_RESPONSE, .status = 200, .rid = {"42", 2}};
    fixture_enter(c);
    twin_on_response(c, &t, twin, strlen(twin));
    fixture_leave(c);
    assert_true(c->twin_synced);
    assert_int_equal(ncalls, 2);
    assert_int_equal(calls[0].version, 4);
    assert_string_equal(calls[0].value, "{\"zone\":\"Europe/Berlin\"}");
    assert_int_equal(calls[1].version, 5);
    assert_string_equal(calls[1].value, "{\"ntp\":\"pool\",\"zone\":\"Europe/Berlin\"}");
    desired(c, 6, "{\"dm\":{\"timeInfo\":{\"ntp\":null}},\"$version\":6}");
    assert_int_equal(ncalls, 3);
    assert_string_equal(calls[2].value, "{\"zone\":\"Europe/Berlin\"}");
    assert_int_equal(c->desired_version, 6);
    /* a full read with nothing new for the handler does not apply it again */
    doc = json_loads("{\"dm\":{\"timeInfo\":{\"zone\":\"Europe/Berlin\"}},\"x\":1}", 0, NULL);
    fixture_enter(c);
    twin_apply_full(c, doc, 7);
    fixture_leave(c);
    json_decref(doc);
    assert_int_equal(ncalls, 3);
    char *copy = iotdm_twin_desired_copy(c);
    assert_json(json_loads(copy, 0, NULL),
                "{\"dm\":{\"timeInfo\":{\"zone\":\"Europe/Berlin\"}},\"x\":1,\"$version\":7}");
    iotdm_free(copy);
    iotdm_client_free(c);
    fixture_rmdir(dir);
}

static void test_missing_ack_is_500_and_later_ack_uses_last_version(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    iotdm_client *c = fixture_client(dir);
    iotdm_property_handler silent = {.struct_size = sizeof(iotdm_property_handler),
                                     .component = "oem",
                                     .property = "silent",
                                     .on_desired = on_desired,
                                     .read_state = NULL,
                                     .ctx = (void *)&code_none};
    iotdm_property_handler slow = {.struct_size = sizeof(iotdm_property_handler),
                                   .component = "oem",
                                   .property = "slow",
                                   .on_desired = on_desired,
                                   .read_state = NULL,
                                   .ctx = (void *)&code_pending};
    assert_int_equal(iotdm_handler_add(c, &silent), IOTDM_OK);
    assert_int_equal(iotdm_handler_add(c, &slow), IOTDM_OK);
    ncalls = 0;
    json_t *doc = json_loads("{\"oem\":{\"silent\":1,\"slow\":\"go\"}}", 0, NULL);
    fixture_enter(c);
    twin_apply_full(c, doc, 9);
    fixture_leave(c);
    json_decref(doc);
    assert_json(fixture_pop_reported(c),
                "{\"oem\":{\"__t\":\"c\",\"silent\":{\"value\":1,\"ac\":500,"
                "\"av\":9,\"ad\":\"the handler gave no acknowledgement\"}}}");
    assert_json(fixture_pop_reported(c), "{\"oem\":{\"__t\":\"c\",\"slow\":{\"value\":{\"state\":"
                                         "\"pending\"},\"ac\":202,\"av\":9,\"ad\":\"ok\"}}}");
    iotdm_ack done = {200, "finished", "{\"state\":\"done\"}"};
    assert_int_equal(iotdm_report_ack(c, "oem", "slow", -1, &done), IOTDM_OK);
    assert_json(fixture_pop_reported(c), "{\"oem\":{\"__t\":\"c\",\"slow\":{\"value\":{\"state\":"
                                         "\"done\"},\"ac\":200,\"av\":9,\"ad\":\"finished\"}}}");
    /* without a value the desired value is reported back */
    iotdm_ack plain = {200, "", NULL};
    assert_int_equal(iotdm_report_ack(c, "oem", "slow", -1, &plain), IOTDM_OK);
    assert_json(fixture_pop_reported(c), "{\"oem\":{\"__t\":\"c\",\"slow\":{\"value\":\"go\","
                                         "\"ac\":200,\"av\":9,\"ad\":\"\"}}}");
    iotdm_client_free(c);
    fixture_rmdir(dir);
}

static void test_report_all_and_read_only_properties(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    iotdm_client *c = fixture_client(dir);
    iotdm_property_handler h = {.struct_size = sizeof(iotdm_property_handler),
                                .component = "dm",
                                .property = "timeService",
                                .on_desired = on_desired,
                                .read_state = read_state,
                                .ctx = (void *)&code_ok};
    assert_int_equal(iotdm_handler_add(c, &h), IOTDM_OK);
    /* never applied: the device's own value, PnP ac 203 */
    assert_int_equal(iotdm_report_all(c), IOTDM_OK);
    assert_json(fixture_pop_reported(c),
                "{\"dm\":{\"__t\":\"c\",\"timeService\":{\"value\":{\"actual"
                "\":1},\"ac\":203,\"av\":0,\"ad\":\"reported by the "
                "device\"}}}");
    json_t *patch = json_loads("{\"dm\":{\"timeService\":{\"enabled\":true}}}", 0, NULL);
    fixture_enter(c);
    twin_apply_full(c, patch, 4);
    fixture_leave(c);
    json_decref(patch);
    json_decref(fixture_pop_reported(c));
    assert_int_equal(iotdm_report_all(c), IOTDM_OK);
    assert_json(fixture_pop_reported(c),
                "{\"dm\":{\"__t\":\"c\",\"timeService\":{\"value\":{\"actual"
                "\":1},\"ac\":200,\"av\":4,\"ad\":\"ok\"}}}");
    assert_int_equal(iotdm_report_property(c, "dm", "rebootCmd", "{\"response\":\"scheduled\"}"),
                     IOTDM_OK);
    assert_json(fixture_pop_reported(c),
                "{\"dm\":{\"__t\":\"c\",\"rebootCmd\":{\"response\":\"scheduled\"}}}");
    assert_int_equal(iotdm_report_property(c, "dm", "rebootCmd", "null"), IOTDM_OK);
    assert_json(fixture_pop_reported(c), "{\"dm\":{\"__t\":\"c\",\"rebootCmd\":null}}");
    assert_int_equal(iotdm_report_property(c, "dm", "x", "{not json"), IOTDM_E_MALFORMED);
    assert_int_equal(iotdm_twin_report(c, "[1]"), IOTDM_E_MALFORMED);
    assert_int_equal(iotdm_twin_report(c, "{\"a.b\":1}"), IOTDM_E_MALFORMED);
    assert_null(fixture_pop_reported(c));
    iotdm_client_free(c);
    fixture_rmdir(dir);
}

static bool veto_answer;
static bool veto(void *ctx)
{
    (void)ctx;
    return veto_answer;
}

static void test_reboot_veto_asks_the_application(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    iotdm_client *c = fixture_client(dir);
    assert_true(iotdm_client_reboot_allowed_by_app(c));
    iotdm_client_set_reboot_veto(c, veto, NULL);
    veto_answer = false;
    assert_false(iotdm_client_reboot_allowed_by_app(c));
    veto_answer = true;
    assert_true(iotdm_client_reboot_allowed_by_app(c));
    iotdm_client_free(c);
    fixture_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gate_stale_apply_gap),
        cmocka_unit_test(test_full_document_dispatches_each_property_and_acks),
        cmocka_unit_test(test_stale_ignored_gap_reads_full_twin_then_buffered_patch),
        cmocka_unit_test(test_missing_ack_is_500_and_later_ack_uses_last_version),
        cmocka_unit_test(test_report_all_and_read_only_properties),
        cmocka_unit_test(test_reboot_veto_asks_the_application),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
