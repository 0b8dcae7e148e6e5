/* Unit tests for the real Linux backend against a throwaway root: files under it, and its programs
 * (systemctl, the reset hook) are stubs inside it that record how they were called. */
#include "configd_fixture.h"

/* Records its arguments; answers is-enabled/is-active like systemd for an enabled, running unit;
 * fails on request (a file "fail" in the root) or hangs (a file "hang"). */
static const char systemctl_stub[] = "#!/bin/sh\n"
                                     "echo \"$*\" >> \"$IOTDM_ROOT/systemctl.log\"\n"
                                     "[ -e \"$IOTDM_ROOT/hang\" ] && sleep 5\n"
                                     "if [ -e \"$IOTDM_ROOT/fail\" ]; then\n"
                                     "  echo \"Failed to $1 unit: Access denied\"; exit 1\n"
                                     "fi\n"
                                     "case \"$1\" in\n"
                                     "  is-enabled) echo enabled ;;\n"
                                     "  is-active) echo active ;;\n"
                                     "esac\n"
                                     "exit 0\n";

static const char hook_stub[] =
    "#!/bin/sh\n"
    "echo \"keep=$IOTDM_KEEP_PROVISIONING\" > \"$IOTDM_ROOT/hook.log\"\n"
    "[ -e \"$IOTDM_ROOT/hook-fails\" ] && { echo broken; exit 3; }\n"
    "exit 0\n";

static int setup(void **state)
{
    fx_fixture *f = fx_new("linuxroot");
    fx_install_zoneinfo(f->dir);
    fx_write(f->dir, "/usr/bin/systemctl", systemctl_stub, 0755);
    fx_write(f->dir, "/usr/lib/iotdm/image-reset", hook_stub, 0755);
    fx_open(f, FX_LINUX, 2000);
    *state = f;
    return 0;
}

static void test_root_must_be_a_directory(void **state)
{
    (void)state;
    char e[256];
    assert_null(cfgd_backend_linux_new("/nonexistent/root", 1000, e, sizeof e));
    assert_non_null(strstr(e, "not a directory"));
}

static void test_set_zone_writes_under_root(void **state)
{
    fx_fixture *f = *state;
    json_t *reply = fx_call(&f->ctx, "time.set_zone", "{\"zone\":\"Europe/Berlin\"}");
    fx_result(reply);
    json_decref(reply);
    assert_string_equal(fx_readlink(f->dir, "/etc/localtime"), "/usr/share/zoneinfo/Europe/Berlin");
    assert_string_equal(fx_read(f->dir, "/etc/timezone"), "Europe/Berlin\n");
}

static void test_set_ntp_restarts_timesyncd_through_stub(void **state)
{
    fx_fixture *f = *state;
    json_t *reply = fx_call(&f->ctx, "time.set_ntp", "{\"servers\":[\"ntp.example.com\"]}");
    json_t *r = fx_result(reply);
    assert_non_null(strstr(fx_read(f->dir, "/etc/systemd/timesyncd.conf.d/iotdm.conf"),
                           "NTP=ntp.example.com\n"));
    assert_true(json_is_true(json_object_get(json_object_get(r, "timesyncd"), "active")));
    json_decref(reply);
    const char *log = "/systemctl.log";
    assert_int_equal(fx_count_lines(f->dir, log, "try-restart systemd-timesyncd.service"), 1);
    assert_int_equal(fx_count_lines(f->dir, log, "is-active systemd-timesyncd.service"), 1);
}

static void test_set_service_runs_systemctl_verbs(void **state)
{
    fx_fixture *f = *state;
    json_t *reply = fx_call(&f->ctx, "time.set_service", "{\"enabled\":false,\"started\":true}");
    fx_result(reply);
    json_decref(reply);
    assert_int_equal(fx_count_lines(f->dir, "/systemctl.log", "disable systemd-timesyncd.service"),
                     1);
    assert_int_equal(fx_count_lines(f->dir, "/systemctl.log", "start systemd-timesyncd.service"),
                     1);
}

static void test_reboot_runs_systemctl_reboot(void **state)
{
    fx_fixture *f = *state;
    json_t *reply = fx_call(&f->ctx, "system.reboot", "{\"reason\":\"test\"}");
    json_t *r = fx_result(reply);
    assert_true(json_is_false(json_object_get(r, "simulated")));
    json_decref(reply);
    assert_int_equal(fx_count_lines(f->dir, "/systemctl.log", "reboot"), 1);
}

static void test_systemctl_failure_reported_with_its_output(void **state)
{
    fx_fixture *f = *state;
    fx_write(f->dir, "/fail", "", 0644);
    json_t *reply = fx_call(&f->ctx, "time.set_service", "{\"started\":false}");
    assert_string_equal(fx_code(reply), "failed");
    const char *msg =
        json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
    assert_non_null(strstr(msg, "systemctl stop"));
    assert_non_null(strstr(msg, "Access denied"));
    json_decref(reply);
}

static void test_missing_program_is_a_clear_failure(void **state)
{
    fx_fixture *f = *state;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/usr/bin/systemctl", f->dir);
    unlink(path);
    json_t *reply = fx_call(&f->ctx, "system.reboot", NULL);
    assert_string_equal(fx_code(reply), "failed");
    const char *msg =
        json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
    assert_non_null(strstr(msg, "cannot run /usr/bin/systemctl"));
    assert_non_null(strstr(msg, "No such file"));
    json_decref(reply);
}

static void test_command_timeout_kills_program(void **state)
{
    fx_fixture *f = *state;
    fx_write(f->dir, "/hang", "", 0644);
    f->be->command_timeout_ms = 300;
    json_t *reply = fx_call(&f->ctx, "time.set_service", "{\"enabled\":true}");
    assert_string_equal(fx_code(reply), "failed");
    const char *msg =
        json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
    assert_non_null(strstr(msg, "timed out"));
    json_decref(reply);
}

static void test_run_captures_output_and_status(void **state)
{
    fx_fixture *f = *state;
    fx_write(f->dir, "/bin/say", "#!/bin/sh\necho \"out $1\"; echo err >&2; exit 7\n", 0755);
    const char *argv[] = {"/bin/say", "hi", NULL};
    cfgd_cmd_result res;
    cfgd_error err;
    assert_int_equal(f->be->vt->run(f->be, argv, NULL, &res, &err), 0);
    assert_int_equal(res.status, 7);
    assert_string_equal(res.output, "out hi\nerr\n");
    const char *rel[] = {"bin/say", NULL};
    assert_int_equal(f->be->vt->run(f->be, rel, NULL, &res, &err), -EINVAL);
}

static void configure_reset(fx_fixture *f)
{
    char e[256];
    assert_int_equal(cfgd_config_set(&f->cfg, "factory_reset_path", "/var/lib/iotdm", e, sizeof e),
                     0);
    assert_int_equal(
        cfgd_config_set(&f->cfg, "factory_reset_keep", "/var/lib/iotdm/identity", e, sizeof e), 0);
    assert_int_equal(
        cfgd_config_set(&f->cfg, "factory_reset_hook", "/usr/lib/iotdm/image-reset", e, sizeof e),
        0);
    fx_write(f->dir, "/var/lib/iotdm/outbox", "o", 0644);
    fx_write(f->dir, "/var/lib/iotdm/identity/cert.pem", "c", 0644);
}

static void test_factory_reset_runs_hook_then_wipes(void **state)
{
    fx_fixture *f = *state;
    configure_reset(f);
    json_t *reply = fx_call(&f->ctx, "system.factory_reset", "{\"keepProvisioning\":true}");
    fx_result(reply);
    json_decref(reply);
    assert_string_equal(fx_read(f->dir, "/hook.log"), "keep=1\n");
    assert_false(fx_exists(f->dir, "/var/lib/iotdm/outbox"));
    assert_true(fx_exists(f->dir, "/var/lib/iotdm/identity/cert.pem"));
    assert_int_equal(fx_count_lines(f->dir, "/systemctl.log", "reboot"), 1);
}

static void test_factory_reset_failed_hook_removes_nothing(void **state)
{
    fx_fixture *f = *state;
    configure_reset(f);
    fx_write(f->dir, "/hook-fails", "", 0644);
    json_t *reply = fx_call(&f->ctx, "system.factory_reset", "{\"keepProvisioning\":false}");
    assert_string_equal(fx_code(reply), "failed");
    json_decref(reply);
    assert_true(fx_exists(f->dir, "/var/lib/iotdm/outbox"));
    assert_true(fx_exists(f->dir, "/var/lib/iotdm/identity/cert.pem"));
    assert_int_equal(fx_count_lines(f->dir, "/systemctl.log", "reboot"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_root_must_be_a_directory),
        cmocka_unit_test_setup_teardown(test_set_zone_writes_under_root, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_set_ntp_restarts_timesyncd_through_stub, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_set_service_runs_systemctl_verbs, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reboot_runs_systemctl_reboot, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_systemctl_failure_reported_with_its_output, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_missing_program_is_a_clear_failure, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_command_timeout_kills_program, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_run_captures_output_and_status, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_factory_reset_runs_hook_then_wipes, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_factory_reset_failed_hook_removes_nothing, setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
