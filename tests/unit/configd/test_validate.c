/* Unit tests for configd's argument validation, config parsing and passed-file digests. */
#include "configd_fixture.h"

#include <fcntl.h>

#include "configd/ops/ops.h"

static bool zone_ok(const char *zone)
{
    cfgd_error err;
    return cfgd_zone_name_valid(zone, strlen(zone), &err);
}

static void test_zone_names_real_ones_valid(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "Europe/Berlin", "UTC",        "America/Argentina/Buenos_Aires",
        "Etc/GMT+5",     "Etc/GMT-14", "America/Port-au-Prince"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        assert_true(zone_ok(ok[i]));
}

static void test_zone_names_traversal_and_junk_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "../../etc/passwd",
        "Europe/../../x",
        "/etc/passwd",
        "Europe//Berlin",
        "Europe/",
        "Europe/./Berlin",
        ".",
        "..",
        "Europe/Ber lin",
        "Europe\\x",
        "Europe/Berlin\n",
        "Zürich",
        "a/b/../../../c",
        "$(reboot)",
        "Europe/Berlin;rm -rf /",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cfgd_error err;
        if (cfgd_zone_name_valid(bad[i], strlen(bad[i]), &err))
            fail_msg("accepted zone \"%s\"", bad[i]);
        assert_int_equal(err.code, CFGD_ERR_INVALID_ARGUMENT);
    }
}

static void test_zone_names_nul_and_length_invalid(void **state)
{
    (void)state;
    cfgd_error err;
    assert_false(cfgd_zone_name_valid("Europe\0/etc", 11, &err));
    char longest[CFGD_ZONE_MAX + 2];
    memset(longest, 'a', sizeof longest);
    longest[CFGD_ZONE_MAX] = '\0';
    assert_true(zone_ok(longest));
    longest[CFGD_ZONE_MAX] = 'a';
    longest[CFGD_ZONE_MAX + 1] = '\0';
    assert_false(zone_ok(longest));
}

/* Runs a validator on args given as JSON text; returns its result and the error code. */
static int validate(cfgd_validate_fn fn, const char *args, cfgd_errcode *code)
{
    json_t *j = fx_json(args);
    cfgd_error err = {.code = CFGD_ERR_FAILED};
    int r = fn(j, &err);
    json_decref(j);
    if (code)
        *code = err.code;
    return r;
}

static void test_set_zone_args_checked(void **state)
{
    (void)state;
    cfgd_errcode code;
    assert_int_equal(validate(cfgd_validate_set_zone, "{\"zone\":\"Europe/Berlin\"}", NULL), 0);
    static const char *const bad[] = {
        "{}",
        "{\"zone\":5}",
        "{\"zone\":null}",
        "{\"zone\":\"Europe/Berlin\",\"force\":true}",
        "{\"zone\":\"../../etc/passwd\"}",
        "{\"zone\":\"Europe/../../x\"}",
        "{\"zone\":\"/usr/share/zoneinfo/UTC\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(validate(cfgd_validate_set_zone, bad[i], &code), -EINVAL);
        assert_int_equal(code, CFGD_ERR_INVALID_ARGUMENT);
    }
    /* jansson can hold a NUL inside a string built in memory; the check must see past it. */
    json_t *args = json_pack("{s:s#}", "zone", "UTC\0/../x", (int)9);
    cfgd_error err;
    assert_int_equal(cfgd_validate_set_zone(args, &err), -EINVAL);
    json_decref(args);
}

static void test_ntp_servers_checked(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "{\"servers\":[]}",
        "{\"servers\":[\"0.pool.ntp.org\"]}",
        "{\"servers\":[\"10.0.0.1\",\"2001:db8::1\",\"time-1.example.com\"]}",
        "{\"servers\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\"]}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        assert_int_equal(validate(cfgd_validate_set_ntp, ok[i], NULL), 0);
    static const char *const bad[] = {
        "{}",
        "{\"servers\":\"pool.ntp.org\"}",
        "{\"servers\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]}",
        "{\"servers\":[1]}",
        "{\"servers\":[\"\"]}",
        "{\"servers\":[\"-oProxyCommand=x\"]}",
        "{\"servers\":[\".example.com\"]}",
        "{\"servers\":[\"a b\"]}",
        "{\"servers\":[\"a\\nNTP=evil\"]}",
        "{\"servers\":[\"a;reboot\"]}",
        "{\"servers\":[\"[::1]\"]}",
        "{\"servers\":[\"pool.ntp.org\"],\"x\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cfgd_errcode code;
        if (validate(cfgd_validate_set_ntp, bad[i], &code) != -EINVAL)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(code, CFGD_ERR_INVALID_ARGUMENT);
    }
    char host[CFGD_NTP_SERVER_MAX + 2];
    memset(host, 'a', sizeof host);
    host[CFGD_NTP_SERVER_MAX] = '\0';
    cfgd_error err;
    assert_true(cfgd_ntp_server_valid(host, strlen(host), &err));
    host[CFGD_NTP_SERVER_MAX] = 'a';
    host[CFGD_NTP_SERVER_MAX + 1] = '\0';
    assert_false(cfgd_ntp_server_valid(host, strlen(host), &err));
}

static void test_other_ops_args_checked(void **state)
{
    (void)state;
    static const struct {
        cfgd_validate_fn fn;
        const char *args;
        int want;
    } cases[] = {
        {cfgd_validate_set_service, "{}", -EINVAL},
        {cfgd_validate_set_service, "{\"enabled\":true}", 0},
        {cfgd_validate_set_service, "{\"enabled\":false,\"started\":true}", 0},
        {cfgd_validate_set_service, "{\"started\":\"yes\"}", -EINVAL},
        {cfgd_validate_set_service, "{\"enabled\":true,\"unit\":\"sshd\"}", -EINVAL},
        {cfgd_validate_reboot, "{}", 0},
        {cfgd_validate_reboot, "{\"reason\":\"scheduled maintenance\"}", 0},
        {cfgd_validate_reboot, "{\"reason\":\"\"}", -EINVAL},
        {cfgd_validate_reboot, "{\"reason\":\"line\\nbreak\"}", -EINVAL},
        {cfgd_validate_reboot, "{\"reason\":3}", -EINVAL},
        {cfgd_validate_reboot, "{\"delay\":3}", -EINVAL},
        {cfgd_validate_factory_reset, "{}", -EINVAL},
        {cfgd_validate_factory_reset, "{\"keepProvisioning\":true}", 0},
        {cfgd_validate_factory_reset, "{\"keepProvisioning\":\"true\"}", -EINVAL},
        {cfgd_validate_factory_reset, "{\"keepProvisioning\":false,\"paths\":[\"/\"]}", -EINVAL},
        {cfgd_validate_no_args, "{}", 0},
        {cfgd_validate_no_args, "{\"x\":1}", -EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (validate(cases[i].fn, cases[i].args, NULL) != cases[i].want)
            fail_msg("case %zu (%s)", i, cases[i].args);
    }
    char reason[CFGD_REASON_MAX + 32];
    memset(reason, 'r', sizeof reason);
    snprintf(reason, sizeof reason, "{\"reason\":\"%0*d\"}", CFGD_REASON_MAX + 1, 0);
    assert_int_equal(validate(cfgd_validate_reboot, reason, NULL), -EINVAL);
}

static void test_fd_sha256_checked(void **state)
{
    (void)state;
    char dir[64];
    fx_tempdir(dir, sizeof dir, "sha");
    fx_write(dir, "/f", "hello", 0644);
    char path[128];
    snprintf(path, sizeof path, "%s/f", dir);
    int fd = open(path, O_RDONLY);
    cfgd_error err;
    const char *good = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    assert_int_equal(cfgd_fd_check_sha256(fd, good, &err), 0);
    assert_int_equal(
        cfgd_fd_check_sha256(fd, "2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
                             &err),
        0);
    assert_int_equal(
        cfgd_fd_check_sha256(fd, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9825",
                             &err),
        -EINVAL);
    assert_non_null(strstr(err.message, "does not match"));
    assert_int_equal(cfgd_fd_check_sha256(fd, "2cf2", &err), -EINVAL);
    assert_int_equal(
        cfgd_fd_check_sha256(fd, "zz f24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982",
                             &err),
        -EINVAL);
    close(fd);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(cfgd_fd_check_sha256(p[0], good, &err), -EINVAL);
    close(p[0]);
    close(p[1]);
    fx_rmtree(dir);
}

static void test_paths_clean_and_within(void **state)
{
    (void)state;
    assert_true(cfgd_path_clean("/var/lib/iotdm/state"));
    assert_true(cfgd_path_clean("/data"));
    static const char *const bad[] = {"/",      "",          "var/lib", "/var//lib", "/var/lib/",
                                      "/a/./b", "/a/../etc", "/a/..",   "/a b",      "/a\tb"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(cfgd_path_clean(bad[i]));
    assert_true(cfgd_path_within("/var/lib/iotdm", "/var/lib/iotdm"));
    assert_true(cfgd_path_within("/var/lib/iotdm/x", "/var/lib/iotdm"));
    assert_false(cfgd_path_within("/var/lib/iotdmx", "/var/lib/iotdm"));
    assert_false(cfgd_path_within("/var/lib", "/var/lib/iotdm"));
}

static void test_config_settings_applied_and_refused(void **state)
{
    (void)state;
    cfgd_config cfg;
    cfgd_config_defaults(&cfg);
    char e[256];
    assert_string_equal(cfg.socket_path, CFGD_DEFAULT_SOCKET);
    assert_int_equal(cfgd_config_set(&cfg, "allow_uid", "1000", e, sizeof e), 0);
    assert_int_equal(cfgd_config_set(&cfg, "allow_uid", "root", e, sizeof e), 0);
    assert_int_equal(cfg.n_allow_uids, 2);
    assert_int_equal(cfg.allow_uids[0], 1000);
    assert_int_equal(cfg.allow_uids[1], 0);
    assert_int_equal(cfgd_config_set(&cfg, "allow_gid", "0", e, sizeof e), 0);
    assert_int_equal(
        cfgd_config_set(&cfg, "factory_reset_path", "/var/lib/iotdm/state", e, sizeof e), 0);
    static const char *const bad[][2] = {
        {"allow_uid", "no-such-user-here"},
        {"allow_uid", "-1"},
        {"factory_reset_path", "/etc"},
        {"factory_reset_path", "/"},
        {"factory_reset_path", "relative"},
        {"factory_reset_keep", "/data/../etc"},
        {"factory_reset_hook", "hook.sh"},
        {"command_timeout", "0"},
        {"log_level", "loud"},
        {"no_such_key", "1"},
        {"socket", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (cfgd_config_set(&cfg, bad[i][0], bad[i][1], e, sizeof e) >= 0)
            fail_msg("accepted %s = %s", bad[i][0], bad[i][1]);
        assert_true(strlen(e) > 0);
    }
    assert_int_equal(cfg.n_reset_paths, 1);
}

static void test_config_sandbox_and_root_exclusive(void **state)
{
    (void)state;
    cfgd_config cfg;
    char e[256];
    cfgd_config_defaults(&cfg);
    assert_int_equal(cfgd_config_set(&cfg, "sandbox", "/tmp/x", e, sizeof e), 0);
    assert_int_equal(cfgd_config_set(&cfg, "root", "/tmp/y", e, sizeof e), 0);
    assert_int_equal(cfgd_config_finish(&cfg, e, sizeof e), IOTDM_E_MALFORMED);
    cfgd_config_defaults(&cfg);
    assert_int_equal(cfgd_config_set(&cfg, "root", "/", e, sizeof e), 0);
    assert_int_equal(cfgd_config_finish(&cfg, e, sizeof e), 0);
    assert_string_equal(cfg.root, "");
    assert_int_equal(cfg.backend, CFGD_BACKEND_LINUX);
}

static void test_config_file_parsed_with_line_numbers(void **state)
{
    (void)state;
    char dir[64], path[128], e[512];
    fx_tempdir(dir, sizeof dir, "conf");
    fx_write(dir, "/ok.conf",
             "# comment\n\n  socket = /tmp/x.sock  \nallow_gid=0\n"
             "factory_reset_path = /var/lib/iotdm/state\nfactory_reset_keep = /var/lib/iotdm/id\n"
             "factory_reset_hook = /usr/lib/iotdm/image-reset\n",
             0644);
    fx_write(dir, "/bad.conf", "socket = /tmp/x\njust words\n", 0644);
    cfgd_config cfg;
    cfgd_config_defaults(&cfg);
    snprintf(path, sizeof path, "%s/ok.conf", dir);
    assert_int_equal(cfgd_config_load(&cfg, path, e, sizeof e), 0);
    assert_string_equal(cfg.socket_path, "/tmp/x.sock");
    assert_string_equal(cfg.keep_paths[0], "/var/lib/iotdm/id");
    assert_string_equal(cfg.reset_hook, "/usr/lib/iotdm/image-reset");
    snprintf(path, sizeof path, "%s/bad.conf", dir);
    assert_int_equal(cfgd_config_load(&cfg, path, e, sizeof e), IOTDM_E_MALFORMED);
    assert_non_null(strstr(e, "bad.conf:2:"));
    snprintf(path, sizeof path, "%s/missing.conf", dir);
    assert_int_equal(cfgd_config_load(&cfg, path, e, sizeof e), -ENOENT);
    fx_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zone_names_real_ones_valid),
        cmocka_unit_test(test_zone_names_traversal_and_junk_invalid),
        cmocka_unit_test(test_zone_names_nul_and_length_invalid),
        cmocka_unit_test(test_set_zone_args_checked),
        cmocka_unit_test(test_ntp_servers_checked),
        cmocka_unit_test(test_other_ops_args_checked),
        cmocka_unit_test(test_fd_sha256_checked),
        cmocka_unit_test(test_paths_clean_and_within),
        cmocka_unit_test(test_config_settings_applied_and_refused),
        cmocka_unit_test(test_config_sandbox_and_root_exclusive),
        cmocka_unit_test(test_config_file_parsed_with_line_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
