/* timeInfo and timeService: what is reported after a change when the state cannot be read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cap_fixture.h"

/* Incomplete remote settings (no enabled/started) change nothing and only read the state back;
 * with configd down that read fails. The twin used to get {"enabled": false, "started": false}
 * with ac 200: a state nobody read. Now the desired value goes back and ad says why. */
static void test_time_service_unreadable_state_is_not_made_up(void **state)
{
    (void)state;
    cap_fixture f;
    cap_fixture_init(&f, NULL, 0);
    void *tc = NULL;
    assert_int_equal(cap_time_start(&f.env, &tc), IOTDM_OK);
    cap_fixture_desired(
        &f, "{\"dm\":{\"__t\":\"c\",\"timeService\":{\"sourcePriority\":\"remote\"}}}", 4);
    json_t *ack = cap_fixture_next_ack(&f, "timeService");
    assert_non_null(ack);
    assert_int_equal(json_integer_value(json_object_get(ack, "ac")), 200);
    assert_int_equal(json_integer_value(json_object_get(ack, "av")), 4);
    const char *ad = json_string_value(json_object_get(ack, "ad"));
    assert_non_null(strstr(ad, "reading the state back failed: iotdm-configd is not reachable"));
    json_t *want = json_pack("{s:s}", "sourcePriority", "remote");
    assert_true(json_equal(json_object_get(ack, "value"), want));
    json_decref(want);
    json_decref(ack);
    assert_string_equal(f.configd.calls[0], "time.get");
    cap_time_stop(tc);
    cap_fixture_deinit(&f);
}

/* The same change with a readable state reports what configd read. */
static void test_time_service_reports_what_configd_read(void **state)
{
    (void)state;
    static const fake_op ops[] = {
        {"time.get", IOTDM_OK, "{\"timesyncd\":{\"enabled\":true,\"active\":true}}", NULL},
    };
    cap_fixture f;
    cap_fixture_init(&f, ops, 1);
    void *tc = NULL;
    assert_int_equal(cap_time_start(&f.env, &tc), IOTDM_OK);
    cap_fixture_desired(
        &f, "{\"dm\":{\"__t\":\"c\",\"timeService\":{\"sourcePriority\":\"remote\"}}}", 4);
    json_t *ack = cap_fixture_next_ack(&f, "timeService");
    assert_non_null(ack);
    assert_int_equal(json_integer_value(json_object_get(ack, "ac")), 200);
    json_t *want =
        json_pack("{s:b, s:b, s:s}", "enabled", 1, "started", 1, "sourcePriority", "remote");
    assert_true(json_equal(json_object_get(ack, "value"), want));
    json_decref(want);
    json_decref(ack);
    cap_time_stop(tc);
    cap_fixture_deinit(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_service_unreadable_state_is_not_made_up),
        cmocka_unit_test(test_time_service_reports_what_configd_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
