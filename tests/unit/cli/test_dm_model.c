/* dm commands generated from DTDL: names, flattened options, typed values, Map keys, aliases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "cli/dm.h"

#define MODELS_DIR IOTDM_TEST_DATA "/../../models"

static json_t *load_real_models(void)
{
    static const char *const files[] = {"DeviceManagement.json", "dm.json",
                                        "DeviceInformation.json"};
    json_t *all = json_array();
    for (size_t i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", MODELS_DIR, files[i]);
        json_t *m = json_load_file(path, 0, NULL);
        assert_non_null(m);
        json_array_append_new(all, m);
    }
    return all;
}

static const dm_cmd *find(const dm_group *g, const char *name)
{
    for (size_t i = 0; i < g->ncmds; i++)
        if (!strcmp(g->cmds[i].name, name))
            return &g->cmds[i];
    return NULL;
}

static const dm_field *field(const dm_cmd *c, const char *option)
{
    for (size_t i = 0; i < c->nfields; i++)
        if (!strcmp(c->fields[i].option, option))
            return &c->fields[i];
    return NULL;
}

/* Parses argv for the command and builds its value; returns the exit code. */
static int build(const dm_cmd *c, int argc, const char **argv, json_t **out)
{
    cli_args a;
    int rc = cli_parse("test", &c->cmd, argc, (char **)argv, &a);
    if (rc != CLI_EXIT_OK)
        return rc;
    return dm_build_value(c, &a, out);
}

static void assert_json(const json_t *v, const char *expected)
{
    json_t *e = json_loads(expected, JSON_DECODE_ANY, NULL);
    assert_non_null(e);
    if (!json_equal(v, e)) {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        fail_msg("got %s, expected %s", s ? s : "NULL", expected);
    }
    json_decref(e);
}

static void test_dm_kebab_camel_case_splits(void **state)
{
    (void)state;
    char out[64];
    dm_kebab("timeInfo", out, sizeof out);
    assert_string_equal(out, "time-info");
    dm_kebab("keepProvisioning", out, sizeof out);
    assert_string_equal(out, "keep-provisioning");
    dm_kebab("reboot", out, sizeof out);
    assert_string_equal(out, "reboot");
    dm_kebab("rebootCmd", out, sizeof out);
    assert_string_equal(out, "reboot-cmd");
}

static void test_dm_real_model_generates_commands_and_aliases(void **state)
{
    (void)state;
    dm_group g;
    assert_int_equal(dm_group_build(load_real_models(), &g), CLI_EXIT_OK);
    const dm_cmd *ti = find(&g, "set-time-info");
    assert_non_null(ti);
    assert_int_equal(ti->kind, DM_KIND_SET);
    assert_string_equal(ti->target, "timeInfo");
    assert_int_equal(field(ti, "time-zone")->type, DM_T_STRING);
    assert_int_equal(field(ti, "ntp-servers")->type, DM_T_ARRAY);
    assert_null(field(ti, "local-time")); /* "Reported only." */
    assert_null(field(ti, "synchronized"));
    assert_non_null(find(&g, "reboot"));
    assert_int_equal(field(find(&g, "factory-reset"), "keep-provisioning")->type, DM_T_BOOL);
    assert_int_equal(field(find(&g, "set-time-service"), "source-priority")->type, DM_T_ENUM);
    assert_null(find(&g, "set-reboot-cmd")); /* read-only properties get no setter */
    assert_null(find(&g, "set-device-info"));
    const dm_cmd *tz = find(&g, "set-time-zone");
    assert_non_null(tz);
    assert_int_equal(tz->nfields, 1);
    assert_true(tz->cmd.opts[tz->cmd.nopts - 1].required);
    assert_non_null(find(&g, "schedule-reboot"));
    assert_non_null(find(&g, "install-cert")); /* the model has a certificates property */
    assert_non_null(find(&g, "install-app"));
    assert_non_null(find(&g, "status"));
    dm_group_free(&g);
}

/* dm*reprovision (models/dm.json): a command without a request, so no payload of its own. */
static void test_dm_real_model_has_reprovision_without_payload(void **state)
{
    (void)state;
    dm_group g;
    assert_int_equal(dm_group_build(load_real_models(), &g), CLI_EXIT_OK);
    const dm_cmd *rp = find(&g, "reprovision");
    assert_non_null(rp);
    assert_int_equal(rp->kind, DM_KIND_COMMAND);
    assert_string_equal(rp->target, "reprovision");
    assert_string_equal(rp->brief, "Re-provision");
    assert_non_null(strstr(rp->summary, "registers with DPS again"));
    assert_int_equal(rp->nfields, 0);
    json_t *v = NULL;
    const char *argv[] = {"--device-id", "d", "--timeout", "60"};
    assert_int_equal(build(rp, 4, argv, &v), CLI_EXIT_OK);
    assert_null(v); /* the method is called with no payload */
    cli_set_quiet(true);
    const char *bad[] = {"--device-id", "d", "--keep-provisioning", "true"};
    assert_int_equal(build(rp, 4, bad, &v), CLI_EXIT_USAGE);
    const char *no_id[] = {"--timeout", "60"};
    assert_int_equal(build(rp, 2, no_id, &v), CLI_EXIT_USAGE);
    cli_set_quiet(false);
    assert_null(v);
    dm_group_free(&g);
}

static void test_dm_set_time_info_builds_typed_value(void **state)
{
    (void)state;
    dm_group g;
    assert_int_equal(dm_group_build(load_real_models(), &g), CLI_EXIT_OK);
    json_t *v = NULL;
    const char *argv[] = {"--device-id",  "d", "--time-zone", "Europe/Berlin", "--ntp-servers",
                          "a.pool,b.pool"};
    assert_int_equal(build(find(&g, "set-time-info"), 6, argv, &v), CLI_EXIT_OK);
    assert_json(v, "{\"timeZone\":\"Europe/Berlin\",\"ntpServers\":[\"a.pool\",\"b.pool\"]}");
    json_decref(v);

    const char *empty[] = {"--device-id", "d", "--ntp-servers="};
    assert_int_equal(build(find(&g, "set-time-info"), 3, empty, &v), CLI_EXIT_OK);
    assert_json(v, "{\"ntpServers\":[]}");
    json_decref(v);

    const char *pol[] = {"--device-id", "d", "--reboots-allowed", "--active-hours-start", "8"};
    assert_int_equal(build(find(&g, "set-reboot-policy"), 5, pol, &v), CLI_EXIT_OK);
    assert_json(v, "{\"rebootsAllowed\":true,\"activeHoursStart\":8}");
    json_decref(v);

    const char *fr[] = {"--device-id", "d", "--keep-provisioning", "false"};
    assert_int_equal(build(find(&g, "factory-reset"), 4, fr, &v), CLI_EXIT_OK);
    assert_json(v, "{\"keepProvisioning\":false}");
    json_decref(v);
    dm_group_free(&g);
}

static void test_dm_bad_values_are_usage_errors(void **state)
{
    (void)state;
    dm_group g;
    assert_int_equal(dm_group_build(load_real_models(), &g), CLI_EXIT_OK);
    json_t *v = NULL;
    cli_set_quiet(true);
    const char *bad_enum[] = {"--device-id", "d", "--source-priority", "sideways"};
    assert_int_equal(build(find(&g, "set-time-service"), 4, bad_enum, &v), CLI_EXIT_USAGE);
    const char *bad_int[] = {"--device-id", "d", "--active-hours-end", "7pm"};
    assert_int_equal(build(find(&g, "set-reboot-policy"), 4, bad_int, &v), CLI_EXIT_USAGE);
    const char *bad_bool[] = {"--device-id", "d", "--enabled=yes"};
    assert_int_equal(build(find(&g, "set-time-service"), 3, bad_bool, &v), CLI_EXIT_USAGE);
    const char *no_tz[] = {"--device-id", "d"};
    assert_int_equal(build(find(&g, "set-time-zone"), 2, no_tz, &v), CLI_EXIT_USAGE);
    cli_set_quiet(false);
    assert_null(v);
    const char *ok_enum[] = {"--device-id", "d", "--source-priority", "remote"};
    assert_int_equal(build(find(&g, "set-time-service"), 4, ok_enum, &v), CLI_EXIT_OK);
    assert_json(v, "{\"sourcePriority\":\"remote\"}");
    json_decref(v);
    dm_group_free(&g);
}

/* An interface with a Map of Maps, as a certificates property could be: the generator adds an
 * option per Map key, and install-cert appears because its target exists. */
static const char map_model[] =
    "[{\"@id\":\"dtmi:test:root;1\",\"@type\":\"Interface\",\"contents\":["
    " {\"@type\":\"Component\",\"name\":\"dm\",\"schema\":\"dtmi:test:dm;1\"}]},"
    " {\"@id\":\"dtmi:test:dm;1\",\"@type\":\"Interface\",\"contents\":["
    "  {\"@type\":\"Property\",\"name\":\"certificates\",\"writable\":true,\"schema\":"
    "   {\"@type\":\"Map\",\"mapKey\":{\"name\":\"store\",\"schema\":\"string\"},"
    "    \"mapValue\":{\"name\":\"certs\",\"schema\":{\"@type\":\"Map\","
    "     \"mapKey\":{\"name\":\"thumbprint\",\"schema\":\"string\"},"
    "     \"mapValue\":{\"name\":\"cert\",\"schema\":{\"@type\":\"Object\",\"fields\":["
    "      {\"name\":\"state\",\"schema\":{\"@type\":\"Enum\",\"valueSchema\":\"string\","
    "       \"enumValues\":[{\"name\":\"installed\",\"enumValue\":\"installed\"},"
    "                      {\"name\":\"uninstalled\",\"enumValue\":\"uninstalled\"}]}},"
    "      {\"name\":\"url\",\"schema\":\"string\"}]}}}}}},"
    "  {\"@type\":[\"Command\"],\"name\":\"getCertificateDetails\",\"request\":{\"name\":\"thumb\","
    "   \"schema\":\"string\"}}]}]";

static void test_dm_map_schema_gets_key_options_and_install_alias(void **state)
{
    (void)state;
    dm_group g;
    assert_int_equal(dm_group_build(json_loads(map_model, 0, NULL), &g), CLI_EXIT_OK);
    const dm_cmd *ic = find(&g, "install-cert");
    assert_non_null(ic);
    assert_int_equal(field(ic, "store")->type, DM_T_KEY);
    assert_int_equal(field(ic, "thumbprint")->type, DM_T_KEY);
    json_t *v = NULL;
    const char *argv[] = {"--device-id",  "d",    "--store", "root",
                          "--thumbprint", "AB12", "--url",   "https://x/c.pem"};
    assert_int_equal(build(ic, 8, argv, &v), CLI_EXIT_OK);
    assert_json(v, "{\"root\":{\"AB12\":{\"state\":\"installed\",\"url\":\"https://x/c.pem\"}}}");
    json_decref(v);

    cli_set_quiet(true);
    const char *no_key[] = {"--device-id", "d", "--url", "u"};
    assert_int_equal(build(find(&g, "set-certificates"), 4, no_key, &v), CLI_EXIT_USAGE);
    cli_set_quiet(false);

    const dm_cmd *gd = find(&g, "get-certificate-details");
    assert_non_null(gd);
    const char *req[] = {"--device-id", "d", "--thumb", "AB12"};
    assert_int_equal(build(gd, 4, req, &v), CLI_EXIT_OK);
    assert_json(v, "\"AB12\"");
    json_decref(v);
    assert_null(find(&g, "install-app"));
    dm_group_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dm_kebab_camel_case_splits),
        cmocka_unit_test(test_dm_real_model_generates_commands_and_aliases),
        cmocka_unit_test(test_dm_real_model_has_reprovision_without_payload),
        cmocka_unit_test(test_dm_set_time_info_builds_typed_value),
        cmocka_unit_test(test_dm_bad_values_are_usage_errors),
        cmocka_unit_test(test_dm_map_schema_gets_key_options_and_install_alias),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
