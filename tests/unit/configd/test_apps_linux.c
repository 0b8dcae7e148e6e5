/* Unit tests for apps.* on the real Linux backend under a throwaway root: dpkg-query, apt-cache,
 * apt-get and systemd-run are stubs there that record how they were called, so the exact
 * commands (package changes in a transient unit, the agent's update detached) are checked. */
#include "configd_fixture.h"

/* Units are disabled and stopped. */
static const char systemctl_stub[] = "#!/bin/sh\n"
                                     "echo \"$*\" >> \"$IOTDM_ROOT/systemctl.log\"\n"
                                     "case \"$1\" in\n"
                                     "  is-enabled) echo disabled; exit 1 ;;\n"
                                     "  is-active) echo inactive; exit 3 ;;\n"
                                     "esac\n"
                                     "exit 0\n";

/* The database is one file per installed package under $IOTDM_ROOT/dpkg. */
static const char dpkg_query_stub[] = "#!/bin/sh\n"
                                      "f=\"$IOTDM_ROOT/dpkg/$3\"\n"
                                      "if [ -e \"$f\" ]; then cat \"$f\"; exit 0; fi\n"
                                      "echo \"dpkg-query: no packages found matching $3\"\n"
                                      "exit 1\n";

static const char apt_cache_stub[] =
    "#!/bin/sh\n"
    "echo \"$2:\"\n"
    "echo '  Installed: (none)'\n"
    "echo '  Candidate: 2.10-3'\n"
    "echo '  Version table:'\n"
    "echo '     2.10-3 500'\n"
    "echo '        500 http://deb.example.net/debian bookworm/main'\n"
    "echo ' *** 2.10-2 100'\n"
    "echo '        100 /var/lib/dpkg/status'\n";

/* Only simulations are run directly: removing libagentdep would take the agent along. */
static const char apt_get_stub[] = "#!/bin/sh\n"
                                   "echo \"$*\" >> \"$IOTDM_ROOT/apt-get.log\"\n"
                                   "[ \"$3\" = libagentdep ] && echo 'Purg iotdm-agent [0.1.0-1]'\n"
                                   "echo \"Purg $3 [1.0]\"\n";

/* Records the whole command; an install "succeeds" by writing the package's dpkg entry. */
static const char systemd_run_stub[] =
    "#!/bin/sh\n"
    "echo \"$*\" >> \"$IOTDM_ROOT/systemd-run.log\"\n"
    "if [ -e \"$IOTDM_ROOT/apt-fails\" ]; then\n"
    "  echo 'Reading package lists...'; echo 'E: Unable to fetch some archives'; exit 100\n"
    "fi\n"
    "for a in \"$@\"; do last=\"$a\"; done\n"
    "case \"$*\" in *' install '*)\n"
    "  mkdir -p \"$IOTDM_ROOT/dpkg\"; n=\"${last%%=*}\"; v=\"${last#*=}\"\n"
    "  echo \"ii |$v|1700000000\" > \"$IOTDM_ROOT/dpkg/$n\" ;;\n"
    "esac\n"
    "exit 0\n";

static int setup(void **state)
{
    fx_fixture *f = fx_new("appslinux");
    fx_write(f->dir, "/usr/bin/systemctl", systemctl_stub, 0755);
    fx_write(f->dir, "/usr/bin/dpkg-query", dpkg_query_stub, 0755);
    fx_write(f->dir, "/usr/bin/apt-cache", apt_cache_stub, 0755);
    fx_write(f->dir, "/usr/bin/apt-get", apt_get_stub, 0755);
    fx_write(f->dir, "/usr/bin/systemd-run", systemd_run_stub, 0755);
    fx_write(f->dir, "/dpkg/iotdm-agent", "ii |0.1.0-1|1700000000\n", 0644);
    fx_write(f->dir, "/dpkg/libagentdep", "ii |1.0|1700000000\n", 0644);
    fx_open(f, FX_LINUX, 5000);
    *state = f;
    return 0;
}

static void test_install_runs_apt_in_a_waited_unit(void **state)
{
    fx_fixture *f = *state;
    json_t *reply =
        fx_call(&f->ctx, "apps.install", "{\"package\":\"hello\",\"version\":\"latest\"}");
    json_t *r = fx_result(reply);
    json_t *st = json_object_get(r, "status");
    assert_string_equal(json_string_value(json_object_get(st, "version")), "2.10-3");
    assert_string_equal(json_string_value(json_object_get(st, "installDate")),
                        "2023-11-14T22:13:20Z");
    assert_false(json_is_true(json_object_get(r, "pending")));
    json_decref(reply);
    assert_string_equal(
        fx_read(f->dir, "/systemd-run.log"),
        "--unit=iotdm-apt --quiet --collect --setenv=DEBIAN_FRONTEND=noninteractive "
        "--wait --pipe -- /usr/bin/apt-get install --yes --quiet=2 "
        "--no-install-recommends --allow-downgrades -o "
        "Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold -o "
        "DPkg::Lock::Timeout=120 hello=2.10-3\n");
    /* A version the repositories do not offer runs nothing. */
    reply = fx_call(&f->ctx, "apps.install", "{\"package\":\"hello\",\"version\":\"3.0-1\"}");
    assert_string_equal(fx_code(reply), "not_found");
    json_decref(reply);
    assert_int_equal(fx_count_lines(f->dir, "/systemd-run.log", "install"), 1);
}

static void test_apt_failure_is_failed_with_apts_words(void **state)
{
    fx_fixture *f = *state;
    fx_write(f->dir, "/apt-fails", "", 0644);
    json_t *reply =
        fx_call(&f->ctx, "apps.install", "{\"package\":\"hello\",\"version\":\"2.10-2\"}");
    assert_string_equal(fx_code(reply), "failed");
    const char *msg =
        json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
    assert_non_null(strstr(msg, "E: Unable to fetch some archives"));
    assert_non_null(strstr(msg, "apt-get install failed"));
    json_decref(reply);
    assert_false(fx_exists(f->dir, "/dpkg/hello"));
}

static void test_removal_that_takes_the_agent_is_refused(void **state)
{
    fx_fixture *f = *state;
    json_t *reply = fx_call(&f->ctx, "apps.remove", "{\"package\":\"libagentdep\",\"purge\":true}");
    assert_string_equal(fx_code(reply), "invalid_argument");
    json_decref(reply);
    assert_string_equal(fx_read(f->dir, "/apt-get.log"), "--simulate purge libagentdep\n");
    assert_false(fx_exists(f->dir, "/systemd-run.log"));
}

static void test_agent_update_is_detached(void **state)
{
    fx_fixture *f = *state;
    json_t *reply =
        fx_call(&f->ctx, "apps.install", "{\"package\":\"iotdm-agent\",\"version\":\"latest\"}");
    json_t *r = fx_result(reply);
    assert_true(json_is_true(json_object_get(r, "pending")));
    assert_false(json_is_true(json_object_get(r, "simulated")));
    assert_string_equal(json_string_value(json_object_get(r, "targetVersion")), "2.10-3");
    json_decref(reply);
    const char *log = fx_read(f->dir, "/systemd-run.log");
    assert_non_null(strstr(log, "--unit=iotdm-selfupdate --quiet --collect "
                                "--setenv=DEBIAN_FRONTEND=noninteractive -- /usr/bin/apt-get "
                                "install"));
    assert_null(strstr(log, "--wait"));
    /* Whether it still runs is asked of systemd. */
    assert_int_equal(fx_count_lines(f->dir, "/systemctl.log", "is-active iotdm-selfupdate.service"),
                     1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_install_runs_apt_in_a_waited_unit, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_apt_failure_is_failed_with_apts_words, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_removal_that_takes_the_agent_is_refused, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_agent_update_is_detached, setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
