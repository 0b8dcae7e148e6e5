/* Unit tests for apps.* on the sandbox: the simulated package database, the repository folder,
 * real .deb files passed as descriptors, start-up (kiosk unit, services) and the agent's
 * protection of itself, each checked in the files the sandbox leaves. */
#include "configd_fixture.h"

#include <fcntl.h>

#define REPO    "/var/lib/iotdm-sandbox/repo"
#define PKGS    "/var/lib/iotdm-sandbox/packages.json"
#define JOURNAL "/var/lib/iotdm-sandbox/journal.jsonl"

typedef struct {
    char dir[64];
    char work[64]; /* outside the sandbox: .deb files as the agent would download them */
    cfgd_config cfg;
    cfgd_backend *be;
    cfgd_ctx ctx;
} fixture;

static int setup(void **state)
{
    fx_fixture *f = fx_setup("apps", FX_SANDBOX, 5000);
    fx_write(f->dir, REPO "/hello_2.10-2_amd64.deb", "", 0644);
    fx_write(f->dir, REPO "/hello_2.10-3_amd64.deb", "", 0644);
    fx_write(f->dir, REPO "/iotdm-agent_0.0.9-1_amd64.deb", "", 0644);
    fx_write(f->dir, REPO "/iotdm-agent_0.2.0-1_amd64.deb", "", 0644);
    fx_write(f->dir, REPO "/kiosk-ui_1.0_all.deb", "", 0644);
    fx_write(f->dir, REPO "/sensor-daemon_1%3a2.0-1_all.deb", "", 0644);
    fx_write(f->dir, PKGS,
             "{\"iotdm-agent\":{\"version\":\"0.1.0-1\",\"installDate\":\"2030-01-01T00:00:00Z\"}}",
             0644);
    *state = f;
    return 0;
}

/* packages.json's version of name, or "" (static buffer). */
static const char *db_version(fx_fixture *f, const char *name)
{
    static char v[128];
    json_t *db = fx_json(fx_read(f->dir, PKGS));
    const char *s = json_string_value(json_object_get(json_object_get(db, name), "version"));
    snprintf(v, sizeof v, "%s", s ? s : "");
    json_decref(db);
    return v;
}

static void test_install_from_repo_latest_then_pinned(void **state)
{
    fx_fixture *f = *state;
    json_t *r = fx_call_ok(f, "apps.install", "{\"package\":\"hello\",\"version\":\"latest\"}");
    assert_true(json_is_true(json_object_get(r, "changed")));
    assert_false(json_is_true(json_object_get(r, "pending")));
    assert_string_equal(json_string_value(json_object_get(r, "targetVersion")), "2.10-3");
    json_decref(r);
    assert_string_equal(db_version(f, "hello"), "2.10-3");
    assert_int_equal(fx_count_lines(f->dir, JOURNAL, "\"hello=2.10-3\""), 1);
    assert_int_equal(fx_count_lines(f->dir, JOURNAL, "\"--wait\""), 1);
    /* "latest" again changes nothing and runs nothing. */
    r = fx_call_ok(f, "apps.install", "{\"package\":\"hello\",\"version\":\"latest\"}");
    assert_false(json_is_true(json_object_get(r, "changed")));
    json_decref(r);
    /* Pinned to an older version: installed and held against automatic upgrades. */
    r = fx_call_ok(f, "apps.install", "{\"package\":\"hello\",\"version\":\"2.10-2\"}");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "status"), "version")),
                        "2.10-2");
    json_decref(r);
    assert_string_equal(db_version(f, "hello"), "2.10-2");
    assert_int_equal(fx_count_lines(f->dir, JOURNAL, "\"hold\""), 1);
    assert_non_null(strstr(fx_read(f->dir, PKGS), "\"held\": true"));
    /* An epoch in the file name ("%3a") is read back as ':'. */
    r = fx_call_ok(f, "apps.install", "{\"package\":\"sensor-daemon\",\"version\":\"1:2.0-1\"}");
    json_decref(r);
    assert_string_equal(db_version(f, "sensor-daemon"), "1:2.0-1");
}

static void test_missing_version_or_package_changes_nothing(void **state)
{
    fx_fixture *f = *state;
    const char *before = strdup(fx_read(f->dir, PKGS));
    assert_string_equal(
        fx_call_code(f, "apps.install", "{\"package\":\"hello\",\"version\":\"9.9\"}"),
        "not_found");
    assert_string_equal(
        fx_call_code(f, "apps.install", "{\"package\":\"nope\",\"version\":\"latest\"}"),
        "not_found");
    assert_string_equal(fx_read(f->dir, PKGS), before);
    assert_false(fx_exists(f->dir, JOURNAL) && fx_count_lines(f->dir, JOURNAL, "apt-get") > 0);
    free((void *)before);
}

static void test_remove_purges_and_agent_is_protected(void **state)
{
    fx_fixture *f = *state;
    json_decref(fx_call_ok(f, "apps.install", "{\"package\":\"hello\",\"version\":\"latest\"}"));
    json_t *r = fx_call_ok(f, "apps.remove", "{\"package\":\"hello\",\"purge\":true}");
    assert_true(json_is_true(json_object_get(r, "changed")));
    assert_false(json_is_true(json_object_get(json_object_get(r, "status"), "installed")));
    json_decref(r);
    assert_string_equal(db_version(f, "hello"), "");
    assert_int_equal(fx_count_lines(f->dir, JOURNAL, "\"purge\""), 1);
    /* Removing what is not there is no change. */
    r = fx_call_ok(f, "apps.remove", "{\"package\":\"hello\"}");
    assert_false(json_is_true(json_object_get(r, "changed")));
    json_decref(r);
    /* The agent: no removal, no downgrade, no stop, no start-up other than background. */
    assert_string_equal(fx_call_code(f, "apps.remove", "{\"package\":\"iotdm-agent\"}"),
                        "invalid_argument");
    assert_string_equal(
        fx_call_code(f, "apps.install", "{\"package\":\"iotdm-agent\",\"version\":\"0.0.9-1\"}"),
        "invalid_argument");
    assert_string_equal(
        fx_call_code(f, "apps.lifecycle", "{\"package\":\"iotdm-agent\",\"action\":\"stop\"}"),
        "invalid_argument");
    assert_string_equal(
        fx_call_code(f, "apps.set_startup", "{\"package\":\"iotdm-agent\",\"startUp\":\"none\"}"),
        "invalid_argument");
    assert_string_equal(db_version(f, "iotdm-agent"), "0.1.0-1");
}

static void test_agent_update_runs_detached(void **state)
{
    fx_fixture *f = *state;
    json_t *r =
        fx_call_ok(f, "apps.install", "{\"package\":\"iotdm-agent\",\"version\":\"latest\"}");
    assert_true(json_is_true(json_object_get(r, "pending")));
    assert_true(json_is_true(json_object_get(r, "simulated")));
    assert_string_equal(json_string_value(json_object_get(r, "targetVersion")), "0.2.0-1");
    json_decref(r);
    assert_int_equal(fx_count_lines(f->dir, JOURNAL, "--unit=iotdm-selfupdate"), 1);
    assert_int_equal(fx_count_lines(f->dir, JOURNAL,
                                    "--unit=iotdm-selfupdate\",\"--quiet\","
                                    "\"--collect\",\"--setenv="
                                    "DEBIAN_FRONTEND=noninteractive\",\"--\""),
                     1); /* not waited for */
    assert_string_equal(db_version(f, "iotdm-agent"), "0.2.0-1");
    r = fx_call_ok(f, "apps.list", "{\"packages\":[\"iotdm-agent\"]}");
    assert_string_equal(json_string_value(json_object_get(r, "agentPackage")), "iotdm-agent");
    assert_false(json_is_true(json_object_get(r, "selfUpdateRunning")));
    json_decref(r);
}

static void test_startup_kiosk_and_services(void **state)
{
    fx_fixture *f = *state;
    json_decref(fx_call_ok(f, "apps.install", "{\"package\":\"kiosk-ui\",\"version\":\"1.0\"}"));
    json_decref(fx_call_ok(f, "apps.install", "{\"package\":\"hello\",\"version\":\"latest\"}"));
    json_t *r =
        fx_call_ok(f, "apps.set_startup", "{\"package\":\"kiosk-ui\",\"startUp\":\"foreground\"}");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "status"), "startUp")),
                        "foreground");
    json_decref(r);
    const char *unit = fx_read(f->dir, "/etc/systemd/system/iotdm-kiosk.service");
    assert_non_null(unit);
    assert_non_null(strstr(unit, "# iotdm-kiosk-package: kiosk-ui\n"));
    assert_non_null(strstr(unit, "ExecStart=/usr/bin/kiosk-ui\n"));
    json_t *svc = fx_json(fx_read(f->dir, "/var/lib/iotdm-sandbox/services.json"));
    assert_true(
        json_is_true(json_object_get(json_object_get(svc, "iotdm-kiosk.service"), "active")));
    json_decref(svc);
    /* Another foreground app replaces it: there is only ever one. */
    json_decref(
        fx_call_ok(f, "apps.set_startup", "{\"package\":\"hello\",\"startUp\":\"foreground\"}"));
    assert_non_null(strstr(fx_read(f->dir, "/etc/systemd/system/iotdm-kiosk.service"),
                           "# iotdm-kiosk-package: hello\n"));
    r = fx_call_ok(f, "apps.list", "{\"packages\":[\"kiosk-ui\",\"hello\"]}");
    assert_string_equal(json_string_value(json_object_get(r, "foreground")), "hello");
    json_t *k = json_object_get(json_object_get(r, "packages"), "kiosk-ui");
    assert_string_equal(json_string_value(json_object_get(k, "startUp")), "none");
    json_decref(r);
    /* Background: its own service, enabled and started; the kiosk unit goes. */
    r = fx_call_ok(f, "apps.set_startup", "{\"package\":\"hello\",\"startUp\":\"background\"}");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "status"), "startUp")),
                        "background");
    json_decref(r);
    assert_false(fx_exists(f->dir, "/etc/systemd/system/iotdm-kiosk.service"));
    svc = fx_json(fx_read(f->dir, "/var/lib/iotdm-sandbox/services.json"));
    assert_true(json_is_true(json_object_get(json_object_get(svc, "hello.service"), "enabled")));
    assert_true(json_is_true(json_object_get(json_object_get(svc, "hello.service"), "active")));
    json_decref(svc);
    /* Lifecycle stops and starts its unit. */
    r = fx_call_ok(f, "apps.lifecycle", "{\"package\":\"hello\",\"action\":\"stop\"}");
    assert_false(json_is_true(json_object_get(json_object_get(r, "status"), "active")));
    json_decref(r);
    assert_string_equal(
        fx_call_code(f, "apps.set_startup", "{\"package\":\"absent\",\"startUp\":\"background\"}"),
        "not_found");
}

/* Builds a real .deb with dpkg-deb into f->work; returns its path (static buffer). */
static const char *build_deb(fx_fixture *f, const char *name, const char *version)
{
    static char deb[256];
    char root[200], cmd[700];
    snprintf(root, sizeof root, "%s/%s-%s", f->work, name, version);
    snprintf(deb, sizeof deb, "%s.deb", root);
    char control[400];
    snprintf(control, sizeof control,
             "Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: t <t@example.net>\n"
             "Description: test package\n",
             name, version);
    char rel[64];
    snprintf(rel, sizeof rel, "/%s-%s/DEBIAN/control", name, version);
    fx_write(f->work, rel, control, 0644);
    snprintf(cmd, sizeof cmd, "dpkg-deb --build --root-owner-group '%s' '%s' >/dev/null 2>&1", root,
             deb);
    if (system(cmd) != 0)
        return NULL;
    return deb;
}

static const char *sha256_of(const char *path)
{
    static char hex[65];
    char cmd[400];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    if (!p || fscanf(p, "%64s", hex) != 1)
        fail_msg("sha256sum failed");
    pclose(p);
    return hex;
}

static const char *install_file(fx_fixture *f, const char *deb, const char *sha, const char *name,
                                const char *version)
{
    static char code[32];
    int fd = open(deb, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    f->ctx.fds = &fd;
    f->ctx.nfds = 1;
    char args[300];
    snprintf(args, sizeof args, "{\"package\":\"%s\",\"version\":\"%s\",\"sha256\":\"%s\"}", name,
             version, sha);
    json_t *reply = fx_call(&f->ctx, "apps.install", args);
    snprintf(code, sizeof code, "%s", fx_code(reply));
    json_decref(reply);
    f->ctx.fds = NULL;
    f->ctx.nfds = 0;
    close(fd);
    return code;
}

static void test_install_from_passed_deb(void **state)
{
    fx_fixture *f = *state;
    const char *deb = build_deb(f, "toaster-app", "1.2-1");
    if (!deb)
        skip(); /* no dpkg-deb on this machine */
    char path[256], sha[65];
    snprintf(path, sizeof path, "%s", deb);
    snprintf(sha, sizeof sha, "%s", sha256_of(path));
    /* A wrong hash, a file that is another package, or another version: refused, nothing left. */
    char wrong[65];
    snprintf(wrong, sizeof wrong, "%s", sha);
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    assert_string_equal(install_file(f, path, wrong, "toaster-app", "latest"), "invalid_argument");
    assert_string_equal(install_file(f, path, sha, "other-app", "latest"), "invalid_argument");
    assert_string_equal(install_file(f, path, sha, "toaster-app", "1.3-1"), "invalid_argument");
    assert_string_equal(db_version(f, "toaster-app"), "");
    assert_false(fx_exists(f->dir, JOURNAL) && fx_count_lines(f->dir, JOURNAL, "apt-get") > 0);
    /* The right one installs from configd's staged copy, which is removed afterwards. */
    assert_string_equal(install_file(f, path, sha, "toaster-app", "1.2-1"), "ok");
    assert_string_equal(db_version(f, "toaster-app"), "1.2-1");
    assert_int_equal(fx_count_lines(f->dir, JOURNAL, "/var/lib/iotdm-configd/debs/"), 1);
    char staged[160];
    snprintf(staged, sizeof staged, "/var/lib/iotdm-configd/debs/%s.deb", sha);
    assert_false(fx_exists(f->dir, staged));
    /* A sha256 without its file, or a file without its sha256, is refused. */
    assert_string_equal(
        fx_call_code(f, "apps.install",
                     "{\"package\":\"toaster-app\",\"version\":\"latest\",\"sha256\":"
                     "\"0000000000000000000000000000000000000000000000000000000000000000\"}"),
        "invalid_argument");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_install_from_repo_latest_then_pinned, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_missing_version_or_package_changes_nothing, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_remove_purges_and_agent_is_protected, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_agent_update_runs_detached, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_startup_kiosk_and_services, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_install_from_passed_deb, setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
