/* Unit tests for the telemetry.* operations: the policy file, the services told about a change
 * (journal in the sandbox, a systemctl stub under a linux root) and the config lines naming them.
 */
#include "install_fixture.h"

#include "configd/ops/ops.h"

static int setup(void **state)
{
    fx_fixture *f = fx_setup("telemetry", FX_SANDBOX, 5000);
    char e[256];
    assert_int_equal(
        cfgd_config_set(&f->cfg, "telemetry_notify_unit", "diag-uploader.service", e, sizeof e),
        IOTDM_OK);
    assert_int_equal(
        cfgd_config_set(&f->cfg, "telemetry_notify_unit", "crash@main.service", e, sizeof e),
        IOTDM_OK);
    *state = f;
    return 0;
}

static int setup_linux(void **state)
{
    fx_fixture *f = fx_setup("telemetry", FX_LINUX, 5000);
    char e[256];
    assert_int_equal(cfgd_config_set(&f->cfg, "telemetry_notify_unit", "diag.service", e, sizeof e),
                     IOTDM_OK);
    *state = f;
    return 0;
}

static void test_unit_names_in_config(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "-x.service", "foo", "a/b.service", "a b.service", "foo.", ".service", "x;rm.service"};
    cfgd_config cfg;
    cfgd_config_defaults(&cfg);
    char e[256];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (cfgd_config_set(&cfg, "telemetry_notify_unit", bad[i], e, sizeof e) == IOTDM_OK)
            fail_msg("\"%s\" was accepted", bad[i]);
    }
    for (int i = 0; i < 8; i++)
        assert_int_equal(cfgd_config_set(&cfg, "telemetry_notify_unit", "a.service", e, sizeof e),
                         IOTDM_OK);
    assert_int_equal(cfgd_config_set(&cfg, "telemetry_notify_unit", "a.service", e, sizeof e),
                     IOTDM_E_TOO_LARGE);
}

static void test_levels_are_validated(void **state)
{
    (void)state;
    static const char *const bad[] = {"{\"level\":\"Full\"}", "{\"level\":\"3\"}", "{\"level\":3}",
                                      "{}", "{\"level\":\"basic\",\"x\":1}"};
    cfgd_error err;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *args = fx_json(bad[i]);
        assert_int_equal(cfgd_validate_telemetry_set(args, &err), -EINVAL);
        json_decref(args);
    }
    assert_int_equal(cfgd_telemetry_level_value("security"), 0);
    assert_int_equal(cfgd_telemetry_level_value("full"), 3);
}

static void test_set_writes_policy_and_notifies(void **state)
{
    fx_fixture *f = *state;
    json_t *reply = fx_call(&f->ctx, "telemetry.get", NULL);
    assert_true(json_is_null(json_object_get(fx_result(reply), "level")));
    json_decref(reply);

    reply = fx_call(&f->ctx, "telemetry.set_level", "{\"level\":\"enhanced\"}");
    json_t *r = fx_result(reply);
    assert_string_equal(json_string_value(json_object_get(r, "level")), "enhanced");
    assert_int_equal(json_integer_value(json_object_get(r, "value")), 2);
    assert_int_equal(json_array_size(json_object_get(r, "notified")), 2);
    assert_int_equal(json_array_size(json_object_get(r, "notifyFailed")), 0);
    json_decref(reply);
    assert_string_equal(fx_read(f->dir, "/etc/iotdm/telemetry-level"), "enhanced\n2\n");
    assert_int_equal(
        ix_journal(f, "\"/usr/bin/systemctl\",\"try-reload-or-restart\",\"diag-uploader.service\""),
        1);
    assert_int_equal(ix_journal(f, "crash@main.service"), 1);

    /* The same level again changes nothing and disturbs nobody. */
    reply = fx_call(&f->ctx, "telemetry.set_level", "{\"level\":\"enhanced\"}");
    assert_false(json_is_true(json_object_get(fx_result(reply), "changed")));
    json_decref(reply);
    assert_int_equal(ix_journal(f, "try-reload-or-restart"), 2);

    reply = fx_call(&f->ctx, "telemetry.set_level", "{\"level\":\"loud\"}");
    assert_string_equal(fx_code(reply), "invalid_argument");
    json_decref(reply);
    assert_string_equal(fx_read(f->dir, "/etc/iotdm/telemetry-level"), "enhanced\n2\n");
    reply = fx_call(&f->ctx, "telemetry.get", NULL);
    assert_string_equal(json_string_value(json_object_get(fx_result(reply), "level")), "enhanced");
    json_decref(reply);
}

/* A service that cannot be told is named in the result; the level stays set. */
static void test_notify_failure_is_reported(void **state)
{
    fx_fixture *f = *state;
    fx_write(f->dir, "/usr/bin/systemctl",
             "#!/bin/sh\necho \"$*\" >> \"$IOTDM_ROOT/systemctl.log\"\n"
             "echo 'Unit diag.service not found.'; exit 5\n",
             0755);
    json_t *reply = fx_call(&f->ctx, "telemetry.set_level", "{\"level\":\"basic\"}");
    json_t *failed = json_object_get(fx_result(reply), "notifyFailed");
    assert_int_equal(json_array_size(failed), 1);
    const char *msg = json_string_value(json_object_get(json_array_get(failed, 0), "message"));
    assert_non_null(strstr(msg, "not found"));
    json_decref(reply);
    assert_string_equal(fx_read(f->dir, "/systemctl.log"), "try-reload-or-restart diag.service\n");
    assert_string_equal(fx_read(f->dir, "/etc/iotdm/telemetry-level"), "basic\n1\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unit_names_in_config),
        cmocka_unit_test(test_levels_are_validated),
        cmocka_unit_test_setup_teardown(test_set_writes_policy_and_notifies, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_failure_is_reported, setup_linux, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
