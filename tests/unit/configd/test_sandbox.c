/* Unit tests for the sandbox backend through the op table: every effect lands under the sandbox. */
#include "configd_fixture.h"

#include <time.h>

#include "common/timeutil.h"

static int setup(void **state)
{
    fx_fixture *f = fx_new("sandbox");
    fx_install_zoneinfo(f->dir);
    fx_open(f, FX_SANDBOX, 5000);
    *state = f;
    return 0;
}

static void test_fresh_sandbox_is_seeded(void **state)
{
    fx_fixture *f = *state;
    assert_true(fx_exists(f->dir, "/var/lib/iotdm-sandbox/boot_time"));
    json_t *reply = fx_call(&f->ctx, "time.get", NULL);
    json_t *r = fx_result(reply);
    assert_string_equal(json_string_value(json_object_get(r, "timeZone")), "UTC");
    assert_true(json_is_true(json_object_get(json_object_get(r, "timesyncd"), "enabled")));
    assert_true(json_is_true(json_object_get(r, "synchronized")));
    json_decref(reply);
}

/* The host's own zone settings, to show they are untouched. */
static void host_zone(char *link, size_t link_cap, char *text, size_t text_cap)
{
    ssize_t n = readlink("/etc/localtime", link, link_cap - 1);
    link[n > 0 ? n : 0] = '\0';
    const char *t = fx_read("", "/etc/timezone");
    snprintf(text, text_cap, "%.200s", t ? t : "(none)");
}

static void test_set_zone_writes_link_and_timezone(void **state)
{
    fx_fixture *f = *state;
    char link_before[PATH_MAX], text_before[256], link_after[PATH_MAX], text_after[256];
    host_zone(link_before, sizeof link_before, text_before, sizeof text_before);
    json_t *reply = fx_call(&f->ctx, "time.set_zone", "{\"zone\":\"Europe/Berlin\"}");
    host_zone(link_after, sizeof link_after, text_after, sizeof text_after);
    assert_string_equal(link_before, link_after);
    assert_string_equal(text_before, text_after);
    json_t *r = fx_result(reply);
    assert_string_equal(fx_readlink(f->dir, "/etc/localtime"), "/usr/share/zoneinfo/Europe/Berlin");
    assert_string_equal(fx_read(f->dir, "/etc/timezone"), "Europe/Berlin\n");
    assert_string_equal(json_string_value(json_object_get(r, "timeZone")), "Europe/Berlin");
    json_int_t off = json_integer_value(json_object_get(r, "utcOffsetSeconds"));
    /* The fallback test zone file is not real TZif data; only a real one gives CET/CEST. */
    if (strstr(fx_read(f->dir, "/usr/share/zoneinfo/Europe/Berlin"), "minimal") == NULL)
        assert_true(off == 3600 || off == 7200);
    json_decref(reply);
}

/* Names that are bad, or well-formed but not real zones: refused, and nothing is written. */
static void test_set_zone_refusals_write_nothing(void **state)
{
    fx_fixture *f = *state;
    fx_write(f->dir, "/outside/secret", "x", 0644);
    static const char *const zones[] = {
        "../../etc/passwd", "Europe/../../x", "/etc/passwd", "Mars/Olympus",
        "leapseconds",      "Europe",         "Evil",        "Europe/Berlin/x",
    };
    /* A link inside the database that leads out of it is not a zone either. */
    char target[PATH_MAX], link[PATH_MAX];
    snprintf(target, sizeof target, "%s/outside/secret", f->dir);
    snprintf(link, sizeof link, "%s/usr/share/zoneinfo/Evil", f->dir);
    assert_int_equal(symlink(target, link), 0);
    for (size_t i = 0; i < sizeof zones / sizeof *zones; i++) {
        char args[256];
        snprintf(args, sizeof args, "{\"zone\":\"%s\"}", zones[i]);
        json_t *reply = fx_call(&f->ctx, "time.set_zone", args);
        if (strcmp(fx_code(reply), "invalid_argument") != 0)
            fail_msg("zone %s gave %s", zones[i], fx_code(reply));
        json_decref(reply);
    }
    assert_false(fx_exists(f->dir, "/etc"));
}

/* The sandbox has its own zoneinfo, so the host's is not consulted: a zone only the host has is
 * unknown here. */
static void test_set_zone_uses_the_roots_own_zoneinfo(void **state)
{
    fx_fixture *f = *state;
    json_t *reply = fx_call(&f->ctx, "time.set_zone", "{\"zone\":\"Asia/Tokyo\"}");
    assert_string_equal(fx_code(reply), "invalid_argument");
    json_decref(reply);
}

static void test_set_ntp_writes_and_removes_dropin(void **state)
{
    fx_fixture *f = *state;
    const char *dropin = "/etc/systemd/timesyncd.conf.d/iotdm.conf";
    json_t *reply =
        fx_call(&f->ctx, "time.set_ntp", "{\"servers\":[\"0.pool.ntp.org\",\"10.0.0.1\"]}");
    json_t *r = fx_result(reply);
    const char *text = fx_read(f->dir, dropin);
    assert_non_null(text);
    assert_non_null(strstr(text, "[Time]\nNTP=0.pool.ntp.org 10.0.0.1\n"));
    assert_int_equal(json_array_size(json_object_get(r, "ntpServers")), 2);
    json_decref(reply);
    const char *journal = "/var/lib/iotdm-sandbox/journal.jsonl";
    assert_int_equal(fx_count_lines(f->dir, journal, "\"action\":\"restart\""), 1);
    reply = fx_call(&f->ctx, "time.set_ntp", "{\"servers\":[]}");
    r = fx_result(reply);
    assert_false(fx_exists(f->dir, dropin));
    assert_int_equal(json_array_size(json_object_get(r, "ntpServers")), 0);
    json_decref(reply);
}

static void test_set_service_simulates_systemd(void **state)
{
    fx_fixture *f = *state;
    const char *journal = "/var/lib/iotdm-sandbox/journal.jsonl";
    json_t *reply = fx_call(&f->ctx, "time.set_service", "{\"enabled\":false,\"started\":false}");
    json_t *r = fx_result(reply);
    json_t *svc = json_object_get(r, "timesyncd");
    assert_true(json_is_false(json_object_get(svc, "enabled")));
    assert_true(json_is_false(json_object_get(svc, "active")));
    assert_true(json_is_false(json_object_get(r, "synchronized")));
    assert_int_equal(fx_count_lines(f->dir, journal, "\"action\":\"disable\""), 1);
    assert_int_equal(fx_count_lines(f->dir, journal, "\"action\":\"stop\""), 1);
    json_decref(reply);
    /* A stopped timesyncd is not restarted by an NTP change. */
    reply = fx_call(&f->ctx, "time.set_ntp", "{\"servers\":[\"ntp.example.com\"]}");
    fx_result(reply);
    json_decref(reply);
    assert_int_equal(fx_count_lines(f->dir, journal, "\"action\":\"restart\""), 0);
}

static void test_reboot_recorded_and_boot_time_moves(void **state)
{
    fx_fixture *f = *state;
    fx_write(f->dir, "/var/lib/iotdm-sandbox/boot_time", "2020-01-02T03:04:05.000Z\n", 0644);
    json_t *reply = fx_call(&f->ctx, "system.info", NULL);
    assert_string_equal(json_string_value(json_object_get(fx_result(reply), "bootTime")),
                        "2020-01-02T03:04:05.000Z");
    json_decref(reply);
    reply = fx_call(&f->ctx, "system.reboot", "{\"reason\":\"unit test\"}");
    json_t *r = fx_result(reply);
    assert_true(json_is_true(json_object_get(r, "rebooting")));
    assert_true(json_is_true(json_object_get(r, "simulated")));
    json_decref(reply);
    assert_int_equal(fx_count_lines(f->dir, "/var/lib/iotdm-sandbox/journal.jsonl",
                                    "\"event\":\"reboot\",\"reason\":\"unit test\""),
                     1);
    reply = fx_call(&f->ctx, "system.info", NULL);
    r = fx_result(reply);
    assert_true(json_integer_value(json_object_get(r, "uptimeSeconds")) < 60);
    assert_true(strcmp(json_string_value(json_object_get(r, "bootTime")), "2025") > 0);
    json_decref(reply);
}

static void test_system_info_reports_sandbox_identity(void **state)
{
    fx_fixture *f = *state;
    fx_write(f->dir, "/etc/hostname", "sandbox-device\n", 0644);
    fx_write(f->dir, "/etc/os-release", "NAME=\"TestOS\"\nVERSION=\"7 (lucky)\"\n", 0644);
    snprintf(f->cfg.manufacturer, sizeof f->cfg.manufacturer, "Contoso");
    json_t *reply = fx_call(&f->ctx, "system.info", NULL);
    json_t *r = fx_result(reply);
    assert_string_equal(json_string_value(json_object_get(r, "hostname")), "sandbox-device");
    assert_string_equal(json_string_value(json_object_get(r, "osName")), "TestOS");
    assert_string_equal(json_string_value(json_object_get(r, "osVersion")), "7 (lucky)");
    assert_string_equal(json_string_value(json_object_get(r, "manufacturer")), "Contoso");
    static const char *const keys[] = {
        "kernel",         "machineId",     "totalMemoryKB",         "freeMemoryKB",
        "totalStorageKB", "freeStorageKB", "processorArchitecture", "processorManufacturer",
        "model"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        assert_non_null(json_object_get(r, keys[i]));
    json_decref(reply);
}

static void seed_device_state(const char *dir)
{
    fx_write(dir, "/var/lib/iotdm/state/outbox.db", "o", 0644);
    fx_write(dir, "/var/lib/iotdm/state/identity/key", "k", 0600);
    fx_write(dir, "/data/app/cache/x", "x", 0644);
    fx_write(dir, "/data/keep-me", "y", 0644);
}

static void configure_reset(fx_fixture *f)
{
    char e[256];
    assert_int_equal(
        cfgd_config_set(&f->cfg, "factory_reset_path", "/var/lib/iotdm/state", e, sizeof e), 0);
    assert_int_equal(cfgd_config_set(&f->cfg, "factory_reset_path", "/data/app", e, sizeof e), 0);
    assert_int_equal(cfgd_config_set(&f->cfg, "factory_reset_keep", "/var/lib/iotdm/state/identity",
                                     e, sizeof e),
                     0);
    assert_int_equal(
        cfgd_config_set(&f->cfg, "factory_reset_hook", "/usr/lib/iotdm/image-reset", e, sizeof e),
        0);
}

static void test_factory_reset_keeps_identity_when_asked(void **state)
{
    fx_fixture *f = *state;
    configure_reset(f);
    seed_device_state(f->dir);
    json_t *reply = fx_call(&f->ctx, "system.factory_reset", "{\"keepProvisioning\":true}");
    json_t *r = fx_result(reply);
    assert_false(fx_exists(f->dir, "/var/lib/iotdm/state/outbox.db"));
    assert_true(fx_exists(f->dir, "/var/lib/iotdm/state/identity/key"));
    assert_false(fx_exists(f->dir, "/data/app"));
    assert_true(fx_exists(f->dir, "/data/keep-me"));
    assert_string_equal(json_string_value(json_object_get(r, "hook")), "ran");
    assert_string_equal(json_string_value(json_array_get(json_object_get(r, "kept"), 0)),
                        "/var/lib/iotdm/state/identity");
    assert_int_equal(json_array_size(json_object_get(r, "removed")), 2);
    json_decref(reply);
    const char *journal = "/var/lib/iotdm-sandbox/journal.jsonl";
    assert_int_equal(fx_count_lines(f->dir, journal, "\"argv\":[\"/usr/lib/iotdm/image-reset\"]"),
                     1);
    assert_int_equal(fx_count_lines(f->dir, journal, "IOTDM_KEEP_PROVISIONING=1"), 1);
    assert_int_equal(fx_count_lines(f->dir, journal, "\"event\":\"reboot\""), 1);
}

static void test_factory_reset_wipes_identity_otherwise(void **state)
{
    fx_fixture *f = *state;
    configure_reset(f);
    seed_device_state(f->dir);
    json_t *reply = fx_call(&f->ctx, "system.factory_reset", "{\"keepProvisioning\":false}");
    json_t *r = fx_result(reply);
    assert_false(fx_exists(f->dir, "/var/lib/iotdm/state"));
    assert_true(fx_exists(f->dir, "/var/lib/iotdm"));
    assert_int_equal(json_array_size(json_object_get(r, "kept")), 0);
    json_decref(reply);
    assert_int_equal(
        fx_count_lines(f->dir, "/var/lib/iotdm-sandbox/journal.jsonl", "IOTDM_KEEP_PROVISIONING=0"),
        1);
}

/* The wipe never follows a link out of the reset path. */
static void test_remove_does_not_follow_links(void **state)
{
    fx_fixture *f = *state;
    fx_write(f->dir, "/precious/file", "p", 0644);
    fx_mkdirs(f->dir);
    char target[PATH_MAX], link[PATH_MAX];
    snprintf(target, sizeof target, "%s/precious", f->dir);
    fx_write(f->dir, "/wipe/a", "a", 0644);
    snprintf(link, sizeof link, "%s/wipe/link", f->dir);
    assert_int_equal(symlink(target, link), 0);
    bool existed;
    cfgd_error err;
    assert_int_equal(cfgd_fs_remove(f->be, "/wipe", NULL, 0, &existed, &err), 0);
    assert_true(existed);
    assert_false(fx_exists(f->dir, "/wipe"));
    assert_true(fx_exists(f->dir, "/precious/file"));
    assert_int_equal(cfgd_fs_remove(f->be, "/wipe", NULL, 0, &existed, &err), 0);
    assert_false(existed);
}

static void test_backend_paths_stay_under_root(void **state)
{
    fx_fixture *f = *state;
    cfgd_error err;
    char host[PATH_MAX];
    assert_int_equal(cfgd_fs_write_file(f->be, "/etc/x/y.conf", "v", 1, 0600, &err), 0);
    assert_string_equal(fx_read(f->dir, "/etc/x/y.conf"), "v");
    /* Unclean device paths are refused before anything is touched. */
    assert_int_equal(cfgd_fs_write_file(f->be, "/etc/../../tmp/escape", "v", 1, 0600, &err),
                     -EINVAL);
    assert_int_equal(cfgd_fs_write_file(f->be, "relative", "v", 1, 0600, &err), -EINVAL);
    assert_int_equal(cfgd_fs_map(f->be, "/etc/timezone", host, sizeof host), 0);
    assert_true(strncmp(host, f->dir, strlen(f->dir)) == 0);
    /* Commands never run in the sandbox: they are recorded. */
    const char *argv[] = {"/usr/bin/false", "--flag", NULL};
    cfgd_cmd_result res;
    assert_int_equal(f->be->vt->run(f->be, argv, NULL, &res, &err), 0);
    assert_int_equal(res.status, 0);
    assert_int_equal(fx_count_lines(f->dir, "/var/lib/iotdm-sandbox/journal.jsonl",
                                    "\"argv\":[\"/usr/bin/false\",\"--flag\"]"),
                     1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_sandbox_is_seeded, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_set_zone_writes_link_and_timezone, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_set_zone_refusals_write_nothing, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_set_zone_uses_the_roots_own_zoneinfo, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_set_ntp_writes_and_removes_dropin, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_set_service_simulates_systemd, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reboot_recorded_and_boot_time_moves, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_system_info_reports_sandbox_identity, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_factory_reset_keeps_identity_when_asked, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_factory_reset_wipes_identity_otherwise, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_remove_does_not_follow_links, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_backend_paths_stay_under_root, setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
