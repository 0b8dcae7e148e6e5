/* Option parsing and the exit-code table: what scripts rely on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "cli/cli.h"

static const cli_opt opts[] = {
    {"device-id", CLI_OPT_VALUE, "ID", "id", true},
    {"force", CLI_OPT_FLAG, NULL, "flag", false},
    {"keep", CLI_OPT_BOOL, NULL, "bool", false},
    {"top", CLI_OPT_VALUE, "N", "n", false},
};
static const cli_cmd cmd = {"x", "test", opts, 4, "QUERY", 0, 1, NULL, NULL};

static int parse(int argc, const char **argv, cli_args *a)
{
    return cli_parse("iotdm x", &cmd, argc, (char **)argv, a);
}

static void test_args_forms_and_positional_parsed(void **state)
{
    (void)state;
    cli_args a;
    const char *argv[] = {"SELECT 1", "--device-id=d1", "--force", "--keep", "false", "--top", "5"};
    assert_int_equal(parse(7, argv, &a), CLI_EXIT_OK);
    assert_string_equal(cli_arg(&a, "device-id"), "d1");
    assert_true(cli_flag(&a, "force"));
    assert_string_equal(cli_arg(&a, "keep"), "false");
    assert_int_equal(a.npos, 1);
    assert_string_equal(a.pos[0], "SELECT 1");
    long long top = 0;
    assert_int_equal(cli_arg_int(&a, "top", 1, 10, &top), CLI_EXIT_OK);
    assert_int_equal(top, 5);

    const char *bare[] = {"--keep", "--device-id", "d"};
    assert_int_equal(parse(3, bare, &a), CLI_EXIT_OK);
    assert_string_equal(cli_arg(&a, "keep"), "true");
    assert_false(cli_flag(&a, "force"));
    assert_null(cli_arg(&a, "top"));
}

static void test_args_bad_usage_is_exit_2(void **state)
{
    (void)state;
    cli_args a;
    cli_set_quiet(true);
    const char *unknown[] = {"--device-id", "d", "--nope"};
    assert_int_equal(parse(3, unknown, &a), CLI_EXIT_USAGE);
    const char *missing_value[] = {"--device-id"};
    assert_int_equal(parse(1, missing_value, &a), CLI_EXIT_USAGE);
    const char *missing_required[] = {"--force"};
    assert_int_equal(parse(1, missing_required, &a), CLI_EXIT_USAGE);
    const char *two_pos[] = {"--device-id", "d", "a", "b"};
    assert_int_equal(parse(4, two_pos, &a), CLI_EXIT_USAGE);
    const char *flag_value[] = {"--device-id", "d", "--force=yes"};
    assert_int_equal(parse(3, flag_value, &a), CLI_EXIT_USAGE);
    const char *big[] = {"--device-id", "d", "--top", "11"};
    assert_int_equal(parse(4, big, &a), CLI_EXIT_OK);
    long long top = 0;
    assert_int_equal(cli_arg_int(&a, "top", 1, 10, &top), CLI_EXIT_USAGE);
    assert_null(cli_json_arg("desired", "{not json"));
    cli_set_quiet(false);
}

static void test_exit_codes_follow_azure_errors(void **state)
{
    (void)state;
    assert_int_equal(cli_exit_for_http(200, NULL), CLI_EXIT_OK);
    assert_int_equal(cli_exit_for_http(404, "DeviceNotFound"), CLI_EXIT_NOT_FOUND);
    assert_int_equal(cli_exit_for_http(404, "DeviceNotOnline"), CLI_EXIT_OFFLINE);
    assert_int_equal(cli_exit_for_http(404, ""), CLI_EXIT_NOT_FOUND);
    assert_int_equal(cli_exit_for_http(401, "IotHubUnauthorizedAccess"), CLI_EXIT_UNAUTHORIZED);
    assert_int_equal(cli_exit_for_http(409, "DeviceAlreadyExists"), CLI_EXIT_CONFLICT);
    assert_int_equal(cli_exit_for_http(412, "PreconditionFailed"), CLI_EXIT_CONFLICT);
    assert_int_equal(cli_exit_for_http(504, "GatewayTimeout"), CLI_EXIT_OFFLINE);
    assert_int_equal(cli_exit_for_http(400, "ArgumentInvalid"), CLI_EXIT_USAGE);
    assert_int_equal(cli_exit_for_http(403, "DeviceMaximumQueueDepthExceeded"), CLI_EXIT_THROTTLED);
    assert_int_equal(cli_exit_for_http(429, NULL), CLI_EXIT_THROTTLED);
    assert_int_equal(cli_exit_for_http(500, "ServerError"), CLI_EXIT_SERVER);
    assert_int_equal(cli_exit_for_http(302, NULL), CLI_EXIT_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args_forms_and_positional_parsed),
        cmocka_unit_test(test_args_bad_usage_is_exit_2),
        cmocka_unit_test(test_exit_codes_follow_azure_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
