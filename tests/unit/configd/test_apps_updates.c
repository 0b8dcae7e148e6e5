/* Unit tests for updates.* on the sandbox: the policy files (apt's periodic settings, the
 * upgrade timer's hours, the policy file), scans of the simulated lists, installs one by one with
 * their own failures, and the reboot-required flag. */
#include "configd_fixture.h"

#define PKGS "/var/lib/iotdm-sandbox/packages.json"

static int setup(void **state)
{
    fx_fixture *f = fx_new("updates");
    char e[256];
    assert_int_equal(
        cfgd_config_set(&f->cfg, "sandbox_upgradable", "openssl=3.0.13-1", e, sizeof e), IOTDM_OK);
    assert_int_equal(
        cfgd_config_set(&f->cfg, "sandbox_upgradable", "openssl=3.0.14-1", e, sizeof e), IOTDM_OK);
    assert_int_equal(cfgd_config_set(&f->cfg, "sandbox_upgradable",
                                     "linux-image-amd64=6.1.99-1 reboot", e, sizeof e),
                     IOTDM_OK);
    assert_int_equal(
        cfgd_config_set(&f->cfg, "sandbox_upgradable", "curl=7.88.1-10+deb12u8", e, sizeof e),
        IOTDM_OK);
    fx_open(f, FX_SANDBOX, 5000);
    fx_write(f->dir, PKGS,
             "{\"openssl\":{\"version\":\"3.0.11-1\"},\"linux-image-amd64\":{\"version\":"
             "\"6.1.90-1\"},\"tzdata\":{\"version\":\"2024a-0\"}}",
             0644);
    *state = f;
    return 0;
}

static char *joined(const json_t *array)
{
    static char buf[1024];
    size_t n = 0, i;
    json_t *s;
    buf[0] = '\0';
    json_array_foreach(array, i, s) n +=
        (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? " " : "", json_string_value(s));
    return buf;
}

static void test_policy_writes_apt_settings_timer_and_policy_file(void **state)
{
    fx_fixture *f = *state;
    json_t *r =
        fx_call_ok(f, "updates.set_policy",
                   "{\"automaticUpdates\":true,\"activeHoursStart\":8,\"activeHoursEnd\":17,"
                   "\"pauseUntil\":\"2030-02-01T01:00:00+01:00\",\"deferDays\":3,"
                   "\"paused\":false}");
    json_t *p = json_object_get(r, "policy");
    assert_string_equal(json_string_value(json_object_get(p, "pauseUntil")),
                        "2030-02-01T00:00:00Z");
    json_decref(r);
    const char *apt = fx_read(f->dir, "/etc/apt/apt.conf.d/52iotdm-unattended");
    assert_non_null(apt);
    assert_non_null(strstr(apt, "APT::Periodic::Unattended-Upgrade \"1\";"));
    assert_non_null(strstr(apt, "APT::Periodic::Update-Package-Lists \"1\";"));
    const char *timer = fx_read(f->dir, "/etc/systemd/system/apt-daily-upgrade.timer.d/iotdm.conf");
    assert_non_null(timer);
    /* 17:00 to 06:00 only: 07:00 could run into the active hours through the random delay. */
    assert_non_null(strstr(timer, "OnCalendar=\nOnCalendar=*-*-* 0,1,2,3,4,5,6,17,18,19,20,21,"
                                  "22,23:00\n"));
    json_t *file = fx_json(fx_read(f->dir, "/etc/iotdm/update-policy.json"));
    assert_int_equal(json_integer_value(json_object_get(file, "deferDays")), 3);
    json_decref(file);
    assert_int_equal(
        fx_count_lines(f->dir, "/var/lib/iotdm-sandbox/journal.jsonl", "daemon-reload"), 1);
    /* Paused: unattended upgrades off; no active hours: Debian's own timer schedule. */
    json_decref(fx_call_ok(f, "updates.set_policy",
                           "{\"automaticUpdates\":true,\"activeHoursStart\":0,\"activeHoursEnd\":0,"
                           "\"pauseUntil\":\"\",\"deferDays\":0,\"paused\":true}"));
    assert_non_null(strstr(fx_read(f->dir, "/etc/apt/apt.conf.d/52iotdm-unattended"),
                           "APT::Periodic::Unattended-Upgrade \"0\";"));
    assert_false(fx_exists(f->dir, "/etc/systemd/system/apt-daily-upgrade.timer.d/iotdm.conf"));
}

static void test_scan_then_install_one_by_one(void **state)
{
    fx_fixture *f = *state;
    /* Before a scan the lists know nothing newer. */
    json_t *r = fx_call_ok(f, "updates.get", NULL);
    assert_int_equal(json_array_size(json_object_get(r, "upgradable")), 0);
    assert_false(json_is_true(json_object_get(r, "rebootRequired")));
    json_decref(r);
    r = fx_call_ok(f, "updates.scan", NULL);
    /* Installed packages only, each at its newest version; curl is not installed. */
    assert_string_equal(joined(json_object_get(r, "upgradable")),
                        "openssl=3.0.14-1 linux-image-amd64=6.1.99-1");
    json_decref(r);
    r = fx_call_ok(
        f, "updates.install",
        "{\"packages\":[\"openssl=3.0.13-1\",\"linux-image-amd64\",\"curl\",\"tzdata\"]}");
    assert_string_equal(joined(json_object_get(r, "installed")),
                        "openssl=3.0.13-1 linux-image-amd64=6.1.99-1");
    json_t *failed = json_object_get(r, "failed");
    assert_int_equal(json_array_size(failed), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(failed, 0), "package")),
                        "curl");
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(failed, 0), "message")),
                           "not installed"));
    assert_true(json_is_true(json_object_get(r, "rebootRequired")));
    assert_string_equal(joined(json_object_get(r, "rebootRequiredPackages")), "linux-image-amd64");
    assert_string_equal(joined(json_object_get(r, "upgradable")), "openssl=3.0.14-1");
    json_decref(r);
    assert_non_null(fx_read(f->dir, "/run/reboot-required"));
    assert_non_null(strstr(fx_read(f->dir, PKGS), "\"6.1.99-1\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_policy_writes_apt_settings_timer_and_policy_file,
                                        setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_scan_then_install_one_by_one, setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
