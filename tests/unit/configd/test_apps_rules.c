/* Unit tests for the agent's side of dm.apps (src/capabilities/apps_apply.c): each app's value,
 * the original's rules between apps (one foreground app, processed first; the agent never
 * removes or downgrades itself, and goes last) and what reaches configd. configd is a recording
 * fake here; the code under test depends on nothing but src/common, so it is compiled in. */
#include "configd_fixture.h"

#include "capabilities/apps_apply.c"

typedef struct {
    char calls[32][160]; /* "op package" */
    size_t ncalls;
} fake;

static iotdm_result fake_configd(void *ctx, const char *op, json_t *args, json_t **out, char *err,
                                 size_t err_cap)
{
    fake *fk = ctx;
    const char *pkg = json_string_value(json_object_get(args, "package"));
    snprintf(fk->calls[fk->ncalls++ % 32], sizeof fk->calls[0], "%s %s", op, pkg ? pkg : "");
    snprintf(err, err_cap, "unused");
    const char *version = json_string_value(json_object_get(args, "version"));
    *out = json_pack("{s:{s:b, s:s, s:s}, s:b, s:s, s:b}", "status", "installed", 1, "version",
                     version ? version : "1", "startUp", "none", "pending", 0, "targetVersion",
                     version ? version : "1", "simulated", 1);
    return IOTDM_OK;
}

typedef struct {
    fake fk;
    cap_env env;
    apps_cap ac;
    apps_run run;
    app_item items[APPS_MAX];
} fixture;

/* Runs one pass over desired against the installed state in list (as apps.list answers). */
static fixture *pass(const char *desired_json, const char *list_json)
{
    fixture *f = calloc(1, sizeof *f);
    f->env.configd = fake_configd;
    f->env.configd_ctx = &f->fk;
    f->ac.env = &f->env;
    f->ac.state = json_object();
    f->run.items = f->items;
    f->run.list = fx_json(list_json);
    f->run.agent = json_string_value(json_object_get(f->run.list, "agentPackage"));
    f->run.current_fg = json_string_value(json_object_get(f->run.list, "foreground"));
    json_t *desired = fx_json(desired_json);
    apps_check(&f->run, desired);
    app_item *order[APPS_MAX];
    size_t n = apps_order(&f->run, order, APPS_MAX);
    for (size_t i = 0; i < n; i++)
        apps_apply_item(&f->ac, &f->run, order[i]);
    json_object_set_new(f->ac.state, "desired", desired); /* keeps the borrowed keys alive */
    return f;
}

static void done(fixture *f)
{
    json_decref(f->run.list);
    json_decref(f->run.selfupdate);
    json_decref(f->ac.state);
    free(f);
}

static app_item *item(fixture *f, const char *key)
{
    for (size_t i = 0; i < f->run.n; i++)
        if (!strcmp(f->run.items[i].key, key))
            return &f->run.items[i];
    fail_msg("no item %s", key);
    return NULL;
}

static bool called(fixture *f, const char *call)
{
    for (size_t i = 0; i < f->fk.ncalls; i++)
        if (!strcmp(f->fk.calls[i], call))
            return true;
    return false;
}

#define NOTHING_INSTALLED                                                                          \
    "{\"agentPackage\":\"iotdm-agent\",\"foreground\":null,\"packages\":{"                         \
    "\"kiosk-a\":{\"installed\":false,\"startUp\":\"none\"},"                                      \
    "\"kiosk-b\":{\"installed\":false,\"startUp\":\"none\"},"                                      \
    "\"helper\":{\"installed\":false,\"startUp\":\"none\"},"                                       \
    "\"lib.foo\":{\"installed\":false,\"startUp\":\"none\"},"                                      \
    "\"iotdm-agent\":{\"installed\":true,\"version\":\"0.2.0-1\",\"startUp\":\"background\"}}}"

static void test_two_foreground_apps_are_both_refused(void **state)
{
    (void)state;
    fixture *f = pass("{\"kiosk-a\":{\"version\":\"1.0\",\"startUp\":\"foreground\"},"
                      "\"kiosk-b\":{\"version\":\"1.0\",\"startUp\":\"foreground\"},"
                      "\"helper\":{\"version\":\"latest\"}}",
                      NOTHING_INSTALLED);
    assert_int_equal(item(f, "kiosk-a")->code, APP_ERR_RULE);
    assert_int_equal(item(f, "kiosk-b")->code, APP_ERR_RULE);
    assert_non_null(strstr(item(f, "kiosk-a")->message, "kiosk-a, kiosk-b"));
    /* Nothing is done for either; the third app is applied as usual. */
    assert_false(called(f, "apps.install kiosk-a"));
    assert_false(called(f, "apps.install kiosk-b"));
    assert_true(called(f, "apps.install helper"));
    assert_int_equal(item(f, "helper")->code, 0);
    done(f);
}

static void test_new_foreground_app_goes_first_agent_last(void **state)
{
    (void)state;
    fixture *f = pass("{\"iotdm-agent\":{\"version\":\"0.3.0-1\"},"
                      "\"helper\":{\"version\":\"latest\",\"startUp\":\"background\"},"
                      "\"kiosk-b\":{\"version\":\"1.0\",\"startUp\":\"foreground\"}}",
                      NOTHING_INSTALLED);
    assert_string_equal(f->fk.calls[0], "apps.install kiosk-b");
    assert_string_equal(f->fk.calls[1], "apps.set_startup kiosk-b");
    assert_string_equal(f->fk.calls[2], "apps.install helper");
    assert_string_equal(f->fk.calls[3], "apps.set_startup helper");
    assert_string_equal(f->fk.calls[4], "apps.install iotdm-agent");
    assert_int_equal(f->fk.ncalls, 5);
    done(f);
}

static void test_agent_cannot_remove_downgrade_or_leave_background(void **state)
{
    (void)state;
    fixture *f = pass("{\"iotdm-agent\":{\"version\":\"not installed\"}}", NOTHING_INSTALLED);
    assert_int_equal(item(f, "iotdm-agent")->code, APP_ERR_RULE);
    assert_non_null(strstr(item(f, "iotdm-agent")->message, "cannot uninstall itself"));
    assert_int_equal(f->fk.ncalls, 0);
    done(f);
    f = pass("{\"iotdm-agent\":{\"version\":\"0.1.0-1\"}}", NOTHING_INSTALLED);
    assert_int_equal(item(f, "iotdm-agent")->code, APP_ERR_RULE);
    assert_non_null(strstr(item(f, "iotdm-agent")->message, "cannot downgrade itself"));
    assert_int_equal(f->fk.ncalls, 0);
    done(f);
    f = pass("{\"iotdm-agent\":{\"version\":\"0.2.0-1\",\"startUp\":\"foreground\"}}",
             NOTHING_INSTALLED);
    assert_int_equal(item(f, "iotdm-agent")->code, APP_ERR_RULE);
    assert_int_equal(f->fk.ncalls, 0);
    done(f);
}

static void test_current_foreground_app_needs_a_successor(void **state)
{
    (void)state;
    const char *list = "{\"agentPackage\":\"iotdm-agent\",\"foreground\":\"kiosk-a\",\"packages\":{"
                       "\"kiosk-a\":{\"installed\":true,\"version\":\"1.0\",\"startUp\":"
                       "\"foreground\"},\"kiosk-b\":{\"installed\":false,\"startUp\":\"none\"}}}";
    fixture *f = pass("{\"kiosk-a\":{\"version\":\"not installed\"}}", list);
    assert_int_equal(item(f, "kiosk-a")->code, APP_ERR_RULE);
    assert_int_equal(f->fk.ncalls, 0);
    done(f);
    f = pass("{\"kiosk-a\":{\"version\":\"not installed\"},"
             "\"kiosk-b\":{\"version\":\"1.0\",\"startUp\":\"foreground\"}}",
             list);
    assert_int_equal(item(f, "kiosk-a")->code, 0);
    assert_string_equal(f->fk.calls[0], "apps.install kiosk-b");
    assert_string_equal(f->fk.calls[2], "apps.remove kiosk-a");
    done(f);
}

static void test_values_are_checked_per_app(void **state)
{
    (void)state;
    fixture *f =
        pass("{\"Bad_Name\":{\"version\":\"1.0\"},"
             "\"lib_foo\":{\"version\":\"1.0\"},"
             "\"helper\":{\"version\":\"v1\"},"
             "\"kiosk-a\":{\"version\":\"1.0\",\"url\":\"http://x/a.deb\",\"sha256\":\"ab\"},"
             "\"kiosk-b\":{\"version\":\"not installed\",\"startUp\":\"foreground\"}}",
             NOTHING_INSTALLED);
    assert_int_equal(item(f, "Bad_Name")->code, APP_ERR_INPUT);
    assert_non_null(strstr(item(f, "Bad_Name")->message, "not a Debian package name"));
    assert_int_equal(item(f, "lib_foo")->code, 0); /* '_' in a key stands for '.' */
    assert_true(called(f, "apps.install lib.foo"));
    assert_int_equal(item(f, "helper")->code, APP_ERR_INPUT);
    assert_int_equal(item(f, "kiosk-a")->code, APP_ERR_INPUT);
    assert_non_null(strstr(item(f, "kiosk-a")->message, "https://"));
    assert_int_equal(item(f, "kiosk-b")->code, APP_ERR_INPUT);
    assert_int_equal(f->fk.ncalls, 1);
    done(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_foreground_apps_are_both_refused),
        cmocka_unit_test(test_new_foreground_app_goes_first_agent_last),
        cmocka_unit_test(test_agent_cannot_remove_downgrade_or_leave_background),
        cmocka_unit_test(test_current_foreground_app_needs_a_successor),
        cmocka_unit_test(test_values_are_checked_per_app),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
