/* Unit tests for the apps and updates validators: Debian package names and versions, version
 * ordering, and every apps.* / updates.* argument check (without touching any OS). */
#include "configd_fixture.h"

#include "common/debpkg.h"

static bool name_ok(const char *s)
{
    return debpkg_name_valid(s, strlen(s));
}

static bool version_ok(const char *s)
{
    return debpkg_version_valid(s, strlen(s));
}

static void test_package_names_follow_policy(void **state)
{
    (void)state;
    const char *good[] = {"hello", "libc6", "g++", "lib.foo-1", "0ad", "iotdm-agent", "xz-utils"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(name_ok(good[i]));
    const char *bad[] = {"",        "a",       "Hello",   "-foo", ".foo",   "+x",
                         "foo_bar", "foo bar", "foo/bar", "f\tx", "foo;rm", "../x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(name_ok(bad[i]));
    char longname[DEBPKG_NAME_MAX + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_false(name_ok(longname));
    longname[DEBPKG_NAME_MAX] = '\0';
    assert_true(name_ok(longname));
    assert_false(debpkg_name_valid("ab\0cd", 5)); /* a NUL inside */
}

static void test_versions_follow_policy(void **state)
{
    (void)state;
    const char *good[] = {"1.0", "1:2.3-4",  "2.10-3+deb12u1", "1.0~rc1-1",
                          "0",   "1.2.3-1a", "1:1.0:2-1",      "3.0.11-1~deb12u2"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(version_ok(good[i]));
    const char *bad[] = {"",      "a1.0",  "1.0-", ":1.0",   "1:",     "x:1.0", "1.0 -1",
                         "1.0_1", "1.0:2", "-1",   "1.0-a-", "latest", "1.0/2", "1.0-1:2"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(version_ok(bad[i]));
    assert_false(debpkg_version_valid("1.0\0-1", 6));
}

static void test_version_order_is_dpkgs(void **state)
{
    (void)state;
    /* Each is lower than the next. */
    const char *ascending[] = {"1.0~~",  "1.0~~a",  "1.0~",    "1.0",  "1.0a",
                               "1.0+1",  "1.0.1",   "1.9",     "1.10", "1.10-1",
                               "1.10-2", "1.10-10", "2.0~rc1", "2.0",  "1:0.1"};
    size_t n = sizeof ascending / sizeof *ascending;
    for (size_t i = 0; i + 1 < n; i++) {
        if (debpkg_version_compare(ascending[i], ascending[i + 1]) >= 0)
            fail_msg("%s should be lower than %s", ascending[i], ascending[i + 1]);
        if (debpkg_version_compare(ascending[i + 1], ascending[i]) <= 0)
            fail_msg("%s should be higher than %s", ascending[i + 1], ascending[i]);
    }
    assert_int_equal(debpkg_version_compare("1.0-1", "1.0-01"), 0);
    assert_int_equal(debpkg_version_compare("1.0", "1.0-0"), 0);
    assert_int_equal(debpkg_version_compare("0:1.0", "1.0"), 0);
    assert_true(debpkg_version_compare("1.00000000000000000000001", "1.2") < 0);
}

static void test_specs_split_name_and_version(void **state)
{
    (void)state;
    char name[DEBPKG_NAME_MAX + 1];
    const char *v;
    assert_true(debpkg_spec_parse("openssl", name, sizeof name, &v));
    assert_string_equal(name, "openssl");
    assert_null(v);
    assert_true(debpkg_spec_parse("openssl=3.0.13-1~deb12u1", name, sizeof name, &v));
    assert_string_equal(name, "openssl");
    assert_string_equal(v, "3.0.13-1~deb12u1");
    assert_false(debpkg_spec_parse("Openssl=1", name, sizeof name, &v));
    assert_false(debpkg_spec_parse("openssl=", name, sizeof name, &v));
    assert_false(debpkg_spec_parse("openssl=x", name, sizeof name, &v));
    assert_false(debpkg_spec_parse("=1.0", name, sizeof name, &v));
}

/* The op's validator only (cfgd_check_request touches no OS). */
static const char *check(const char *op, const char *args_json, size_t nfds)
{
    static char code[32];
    json_t *args = fx_json(args_json);
    cfgd_request req = {.id = 1, .op = op, .args = args};
    cfgd_error err = {0};
    const cfgd_op *found = cfgd_check_request(&req, nfds, &err);
    snprintf(code, sizeof code, "%s", found ? "ok" : cfgd_errcode_name(err.code));
    json_decref(args);
    return code;
}

static void test_apps_arguments_are_checked(void **state)
{
    (void)state;
    assert_string_equal(check("apps.install", "{\"package\":\"hello\",\"version\":\"latest\"}", 0),
                        "ok");
    assert_string_equal(check("apps.install", "{\"package\":\"hello\",\"version\":\"2.10-3\"}", 1),
                        "ok");
    assert_string_equal(check("apps.install", "{\"package\":\"hello\",\"version\":\"2.10\"}", 2),
                        "invalid_argument"); /* one file at most */
    const char *bad_installs[] = {
        "{\"package\":\"Hello\",\"version\":\"1.0\"}",
        "{\"package\":\"hello;reboot\",\"version\":\"1.0\"}",
        "{\"package\":\"-o\",\"version\":\"1.0\"}",
        "{\"package\":\"hello\",\"version\":\"not installed\"}",
        "{\"package\":\"hello\",\"version\":\"a.b\"}",
        "{\"package\":\"hello\"}",
        "{\"package\":\"hello\",\"version\":\"1.0\",\"url\":\"https://x\"}",
        "{\"package\":\"hello\",\"version\":\"1.0\",\"sha256\":7}",
        "{\"package\":[\"hello\"],\"version\":\"1.0\"}",
    };
    for (size_t i = 0; i < sizeof bad_installs / sizeof *bad_installs; i++)
        if (strcmp(check("apps.install", bad_installs[i], 0), "invalid_argument") != 0)
            fail_msg("accepted %s", bad_installs[i]);
    assert_string_equal(check("apps.remove", "{\"package\":\"hello\",\"purge\":true}", 0), "ok");
    assert_string_equal(check("apps.remove", "{\"package\":\"hello\",\"purge\":1}", 0),
                        "invalid_argument");
    assert_string_equal(
        check("apps.set_startup", "{\"package\":\"hello\",\"startUp\":\"foreground\"}", 0), "ok");
    assert_string_equal(
        check("apps.set_startup", "{\"package\":\"hello\",\"startUp\":\"kiosk\"}", 0),
        "invalid_argument");
    assert_string_equal(
        check("apps.lifecycle", "{\"package\":\"hello\",\"action\":\"restart\"}", 0),
        "invalid_argument");
    assert_string_equal(check("apps.list", "{\"packages\":[\"hello\",\"g++\"]}", 0), "ok");
    assert_string_equal(check("apps.list", "{\"packages\":[\"hello\",\"B\"]}", 0),
                        "invalid_argument");
    assert_string_equal(check("apps.list", "{\"packages\":\"hello\"}", 0), "invalid_argument");
}

static void test_updates_arguments_are_checked(void **state)
{
    (void)state;
    const char *good = "{\"automaticUpdates\":true,\"activeHoursStart\":8,\"activeHoursEnd\":17,"
                       "\"pauseUntil\":\"2030-02-01T00:00:00+01:00\",\"deferDays\":3,"
                       "\"paused\":false}";
    assert_string_equal(check("updates.set_policy", good, 0), "ok");
    const char *bad[] = {
        "{\"automaticUpdates\":true,\"activeHoursStart\":24,\"activeHoursEnd\":17,"
        "\"pauseUntil\":\"\",\"deferDays\":0,\"paused\":false}",
        "{\"automaticUpdates\":true,\"activeHoursStart\":8,\"activeHoursEnd\":17,"
        "\"pauseUntil\":\"next week\",\"deferDays\":0,\"paused\":false}",
        "{\"automaticUpdates\":true,\"activeHoursStart\":8,\"activeHoursEnd\":17,"
        "\"pauseUntil\":\"\",\"deferDays\":-1,\"paused\":false}",
        "{\"automaticUpdates\":\"yes\",\"activeHoursStart\":8,\"activeHoursEnd\":17,"
        "\"pauseUntil\":\"\",\"deferDays\":0,\"paused\":false}",
        "{\"automaticUpdates\":true,\"activeHoursStart\":8,\"activeHoursEnd\":17,"
        "\"pauseUntil\":\"\",\"deferDays\":0}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (strcmp(check("updates.set_policy", bad[i], 0), "invalid_argument") != 0)
            fail_msg("accepted %s", bad[i]);
    assert_string_equal(
        check("updates.install", "{\"packages\":[\"openssl\",\"tzdata=2024a-1\"]}", 0), "ok");
    assert_string_equal(check("updates.install", "{\"packages\":[]}", 0), "invalid_argument");
    assert_string_equal(check("updates.install", "{\"packages\":[\"openssl=\"]}", 0),
                        "invalid_argument");
    assert_string_equal(check("updates.install", "{\"packages\":[\"-oAPT::x\"]}", 0),
                        "invalid_argument");
    assert_string_equal(check("updates.scan", "{\"now\":true}", 0), "invalid_argument");
}

static void test_config_settings_are_checked(void **state)
{
    (void)state;
    cfgd_config cfg;
    char e[256];
    cfgd_config_defaults(&cfg);
    assert_string_equal(cfg.agent_package, "iotdm-agent");
    assert_int_equal(cfgd_config_set(&cfg, "agent_package", "my-agent", e, sizeof e), IOTDM_OK);
    assert_string_equal(cfg.agent_package, "my-agent");
    assert_int_equal(cfgd_config_set(&cfg, "agent_package", "My Agent", e, sizeof e),
                     IOTDM_E_MALFORMED);
    assert_int_equal(cfgd_config_set(&cfg, "sandbox_repo", "/srv/repo", e, sizeof e), IOTDM_OK);
    assert_int_equal(cfgd_config_set(&cfg, "sandbox_repo", "srv/../x", e, sizeof e),
                     IOTDM_E_MALFORMED);
    assert_int_equal(cfgd_config_set(&cfg, "sandbox_upgradable", "openssl=3.0.13-1", e, sizeof e),
                     IOTDM_OK);
    assert_int_equal(cfgd_config_set(&cfg, "sandbox_upgradable",
                                     "linux-image-amd64=6.1.99-1 reboot", e, sizeof e),
                     IOTDM_OK);
    assert_int_equal(cfg.n_sandbox_upgradable, 2);
    assert_int_equal(cfgd_config_set(&cfg, "sandbox_upgradable", "openssl", e, sizeof e),
                     IOTDM_E_MALFORMED);
    assert_int_equal(cfgd_config_set(&cfg, "sandbox_upgradable", "openssl=1 now", e, sizeof e),
                     IOTDM_E_MALFORMED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_package_names_follow_policy),
        cmocka_unit_test(test_versions_follow_policy),
        cmocka_unit_test(test_version_order_is_dpkgs),
        cmocka_unit_test(test_specs_split_name_and_version),
        cmocka_unit_test(test_apps_arguments_are_checked),
        cmocka_unit_test(test_updates_arguments_are_checked),
        cmocka_unit_test(test_config_settings_are_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
