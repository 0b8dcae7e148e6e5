/* Unit tests for the wifi.* operations: profile names, the keyfile parser, and the effects in a
 * sandbox (files, modes, nmcli in the journal) and under a linux root without nmcli. */
#include "install_fixture.h"

#include "configd/ops/ops.h"

#define DIR_REL "/etc/NetworkManager/system-connections"

static const char home_profile[] = "[connection]\n"
                                   "id=home\n"
                                   "uuid=0f7cba3e-1c5b-4a51-8d1e-9a1e52f6a0a1\n"
                                   "type=wifi\n"
                                   "autoconnect=false\n"
                                   "\n"
                                   "[wifi]\n"
                                   "mode=infrastructure\n"
                                   "ssid=Home Network\n"
                                   "\n"
                                   "[wifi-security]\n"
                                   "key-mgmt=wpa-psk\n"
                                   "psk=correct horse battery staple\n"
                                   "\n"
                                   "[ipv4]\n"
                                   "method=auto\n";

static const char wired_profile[] = "[connection]\nid=wired\ntype=ethernet\n\n[ethernet]\n";

static int setup(void **state)
{
    *state = fx_setup("wifi", FX_SANDBOX, 5000);
    return 0;
}

static int setup_linux(void **state)
{
    *state = fx_setup("wifi", FX_LINUX, 5000);
    return 0;
}

static json_t *install(fx_fixture *f, const char *name, const char *file)
{
    char args[512];
    snprintf(args, sizeof args, "{\"profile\":\"%s\",\"sha256\":\"%s\"}", name, ix_sha256(file));
    return ix_call_file(f, "wifi.install", args, file);
}

static void test_profile_names(void **state)
{
    (void)state;
    static const char *const good[] = {"home", "Home-Net_1.2", "office wifi", "a"};
    static const char *const bad[] = {"",   "..", ".",    "../etc/shadow", "a/b",         ".hidden",
                                      " x", "x ", "a\\b", "x\ty",          "caf\xc3\xa9", "$HOME",
                                      "a:b"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(cfgd_wifi_name_valid(good[i], NULL));
    cfgd_error err;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (cfgd_wifi_name_valid(bad[i], &err))
            fail_msg("\"%s\" was accepted", bad[i]);
    }
    char longest[66];
    memset(longest, 'x', 65);
    longest[65] = '\0';
    assert_false(cfgd_wifi_name_valid(longest, NULL));
    longest[64] = '\0';
    assert_true(cfgd_wifi_name_valid(longest, NULL));
    json_t *args = fx_json("{\"profile\":\"../../etc/shadow\"}");
    assert_int_equal(cfgd_validate_wifi_ref(args, &err), -EINVAL);
    json_decref(args);
}

static void test_keyfile_parser(void **state)
{
    (void)state;
    cfgd_wifi_profile p;
    cfgd_error err;
    assert_int_equal(cfgd_wifi_keyfile_parse(home_profile, strlen(home_profile), &p, &err), 0);
    assert_string_equal(p.id, "home");
    assert_string_equal(p.ssid, "Home Network");
    assert_string_equal(p.security, "wpa-psk");
    assert_true(p.is_wifi);
    assert_false(p.autoconnect);

    static const char bytes[] = "# old style\n[connection]\nid=x\ntype=802-11-wireless\n"
                                "[802-11-wireless]\nssid=72;111;109;101;\n";
    assert_int_equal(cfgd_wifi_keyfile_parse(bytes, strlen(bytes), &p, &err), 0);
    assert_string_equal(p.ssid, "Home");
    assert_string_equal(p.security, "open");
    assert_true(p.autoconnect);

    static const struct {
        const char *text;
        const char *words;
    } bad[] = {
        {"[connection]\ntype=wifi\n", "no id"},
        {"[connection]\nid=x\n", "no type"},
        {"id=x\n[connection]\n", "before the first"},
        {"[connection\nid=x\n", "section"},
        {"[connection]\nid=x\ntype=wifi\nthis is not a key\n", "line 4"},
        {"<?xml version=\"1.0\"?><WLANProfile/>\n", "line 1"},
        {"", "empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(cfgd_wifi_keyfile_parse(bad[i].text, strlen(bad[i].text), &p, &err),
                         -EINVAL);
        if (!strstr(err.message, bad[i].words))
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", bad[i].text, err.message, bad[i].words);
    }
    static const char nul[] = "[connection]\nid=x\0\ntype=wifi\n";
    assert_int_equal(cfgd_wifi_keyfile_parse(nul, sizeof nul - 1, &p, &err), -EINVAL);
    assert_non_null(strstr(err.message, "binary"));
}

static void test_install_list_details_uninstall(void **state)
{
    fx_fixture *f = *state;
    const char *file = ix_input(f, "home.nmconnection", home_profile);
    json_t *reply = install(f, "home", file);
    json_t *r = fx_result(reply);
    assert_string_equal(json_string_value(json_object_get(r, "ssid")), "Home Network");
    assert_true(json_is_true(json_object_get(r, "changed")));
    json_decref(reply);
    assert_string_equal(fx_read(f->dir, DIR_REL "/home.nmconnection"), home_profile);
    struct stat st;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s" DIR_REL "/home.nmconnection", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(ix_journal(f, "\"/usr/bin/nmcli\",\"connection\",\"reload\""), 1);

    /* A wired profile beside it is not a Wi-Fi profile: not listed, not removable here. */
    fx_write(f->dir, DIR_REL "/wired.nmconnection", wired_profile, 0600);
    reply = fx_call(&f->ctx, "wifi.list", NULL);
    json_t *profiles = json_object_get(fx_result(reply), "profiles");
    assert_int_equal(json_object_size(profiles), 1);
    json_t *home = json_object_get(profiles, "home");
    assert_string_equal(json_string_value(json_object_get(home, "security")), "wpa-psk");
    assert_string_equal(json_string_value(json_object_get(home, "sha256")), ix_sha256(file));
    char *text = json_dumps(reply, 0);
    assert_null(strstr(text, "horse")); /* never a secret */
    free(text);
    json_decref(reply);

    reply = fx_call(&f->ctx, "wifi.details", "{\"profile\":\"home\"}");
    r = fx_result(reply);
    assert_false(json_is_true(json_object_get(r, "autoconnect")));
    assert_null(json_object_get(r, "psk"));
    json_decref(reply);
    reply = fx_call(&f->ctx, "wifi.details", "{\"profile\":\"wired\"}");
    assert_string_equal(fx_code(reply), "not_found");
    json_decref(reply);
    reply = fx_call(&f->ctx, "wifi.uninstall", "{\"profile\":\"wired\"}");
    assert_string_equal(fx_code(reply), "invalid_argument");
    json_decref(reply);
    static const char wifi_named_wired[] = "[connection]\nid=wired\ntype=wifi\n[wifi]\nssid=W\n";
    reply = install(f, "wired", ix_input(f, "w.nmconnection", wifi_named_wired));
    assert_string_equal(fx_code(reply), "invalid_argument");
    json_decref(reply);
    assert_string_equal(fx_read(f->dir, DIR_REL "/wired.nmconnection"), wired_profile);

    reply = fx_call(&f->ctx, "wifi.uninstall", "{\"profile\":\"home\"}");
    assert_true(json_is_true(json_object_get(fx_result(reply), "removed")));
    json_decref(reply);
    assert_false(fx_exists(f->dir, DIR_REL "/home.nmconnection"));
    assert_int_equal(ix_journal(f, "nmcli"), 2);
    reply = fx_call(&f->ctx, "wifi.uninstall", "{\"profile\":\"home\"}");
    assert_false(json_is_true(json_object_get(fx_result(reply), "removed")));
    json_decref(reply);
    assert_int_equal(ix_journal(f, "nmcli"), 2);
    reply = fx_call(&f->ctx, "wifi.details", "{\"profile\":\"home\"}");
    assert_string_equal(fx_code(reply), "not_found");
    json_decref(reply);
}

static void test_install_is_diff_based(void **state)
{
    fx_fixture *f = *state;
    const char *file = ix_input(f, "home.nmconnection", home_profile);
    json_decref(install(f, "home", file));
    json_t *reply = install(f, "home", file);
    assert_false(json_is_true(json_object_get(fx_result(reply), "changed")));
    json_decref(reply);
    assert_int_equal(ix_journal(f, "nmcli"), 1);
    char changed[sizeof home_profile + 32];
    snprintf(changed, sizeof changed, "%s", home_profile);
    memcpy(strstr(changed, "autoconnect=false"), "autoconnect=true;", 17);
    file = ix_input(f, "home2.nmconnection", changed);
    reply = install(f, "home", file);
    assert_true(json_is_true(json_object_get(fx_result(reply), "changed")));
    json_decref(reply);
    assert_string_equal(fx_read(f->dir, DIR_REL "/home.nmconnection"), changed);
    assert_int_equal(ix_journal(f, "nmcli"), 2);
}

static void expect_refused(fx_fixture *f, json_t *reply, const char *code, const char *words)
{
    assert_string_equal(fx_code(reply), code);
    if (!strstr(ix_message(reply), words))
        fail_msg("message \"%s\" lacks \"%s\"", ix_message(reply), words);
    json_decref(reply);
    assert_int_equal(ix_count_files(f, DIR_REL), 0);
}

static void test_bad_profiles_are_refused_and_leave_nothing(void **state)
{
    fx_fixture *f = *state;
    const char *file = ix_input(f, "home.nmconnection", home_profile);
    char args[512];
    snprintf(args, sizeof args, "{\"profile\":\"home\",\"sha256\":\"%064d\"}", 0);
    expect_refused(f, ix_call_file(f, "wifi.install", args, file), "invalid_argument", "SHA-256");
    expect_refused(f, install(f, "office", file), "invalid_argument", "id is \"home\"");
    expect_refused(f, install(f, "../home", file), "invalid_argument", "not a profile name");
    file = ix_input(f, "wired.nmconnection", wired_profile);
    expect_refused(f, install(f, "wired", file), "invalid_argument", "not a Wi-Fi");
    file = ix_input(f, "nossid", "[connection]\nid=nossid\ntype=wifi\n");
    expect_refused(f, install(f, "nossid", file), "invalid_argument", "ssid");
    file = ix_input(f, "xml", "<WLANProfile><name>home</name></WLANProfile>\n");
    expect_refused(f, install(f, "home", file), "invalid_argument", "keyfile");
    char big[256];
    snprintf(big, sizeof big, "%s/big", f->work);
    ix_sh("{ printf '[connection]\\nid=big\\ntype=wifi\\n[wifi]\\nssid=x\\n'; "
          "head -c 70000 /dev/zero | tr '\\0' '#'; } > '%s'",
          big);
    expect_refused(f, install(f, "big", big), "too_large", "at most");
    assert_int_equal(ix_journal(f, "nmcli"), 0);
}

/* Under a linux root without nmcli the reload fails: a new profile is taken away again, and a
 * replaced one comes back as it was. */
static void test_failed_reload_restores_previous_state(void **state)
{
    fx_fixture *f = *state;
    const char *file = ix_input(f, "home.nmconnection", home_profile);
    json_t *reply = install(f, "home", file);
    assert_string_equal(fx_code(reply), "failed");
    assert_non_null(strstr(ix_message(reply), "nmcli"));
    json_decref(reply);
    assert_false(fx_exists(f->dir, DIR_REL "/home.nmconnection"));

    static const char old[] = "[connection]\nid=home\ntype=wifi\n[wifi]\nssid=Old\n";
    fx_write(f->dir, DIR_REL "/home.nmconnection", old, 0600);
    reply = install(f, "home", file);
    assert_string_equal(fx_code(reply), "failed");
    json_decref(reply);
    assert_string_equal(fx_read(f->dir, DIR_REL "/home.nmconnection"), old);
    reply = fx_call(&f->ctx, "wifi.uninstall", "{\"profile\":\"home\"}");
    assert_string_equal(fx_code(reply), "failed");
    json_decref(reply);
    assert_string_equal(fx_read(f->dir, DIR_REL "/home.nmconnection"), old);

    fx_write(f->dir, "/usr/bin/nmcli",
             "#!/bin/sh\necho \"$*\" >> \"$IOTDM_ROOT/nmcli.log\"\nexit 0\n", 0755);
    reply = install(f, "home", file);
    fx_result(reply);
    json_decref(reply);
    assert_string_equal(fx_read(f->dir, DIR_REL "/home.nmconnection"), home_profile);
    assert_string_equal(fx_read(f->dir, "/nmcli.log"), "connection reload\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profile_names),
        cmocka_unit_test(test_keyfile_parser),
        cmocka_unit_test_setup_teardown(test_install_list_details_uninstall, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_install_is_diff_based, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bad_profiles_are_refused_and_leave_nothing, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_failed_reload_restores_previous_state, setup_linux,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
