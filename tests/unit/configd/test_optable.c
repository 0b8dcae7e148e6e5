/* Unit tests for the op table and the dispatch of one request: codes, ids, descriptors. */
#include "configd_fixture.h"

static int setup(void **state)
{
    *state = fx_setup("optable", FX_SANDBOX, 5000);
    return 0;
}

static json_t *dispatch(fx_fixture *f, const char *body, cfgd_outcome *oc)
{
    return cfgd_dispatch(&f->ctx, (const uint8_t *)body, strlen(body), oc);
}

/* The operations documented in docs/configd.md's tables ("| `area.op` |" rows), in order. */
static size_t documented_ops(char names[][CFGD_MAX_OP_LEN], size_t cap)
{
    FILE *f = fopen(IOTDM_SOURCE_DIR "/docs/configd.md", "r");
    assert_non_null(f);
    char line[2048];
    size_t n = 0;
    while (fgets(line, sizeof line, f)) {
        char name[CFGD_MAX_OP_LEN];
        if (sscanf(line, "| `%63[a-z_.]` |", name) != 1 || !strchr(name, '.'))
            continue;
        bool seen = false;
        for (size_t i = 0; i < n; i++)
            seen = seen || strcmp(names[i], name) == 0;
        if (!seen && n < cap)
            snprintf(names[n++], CFGD_MAX_OP_LEN, "%s", name);
    }
    fclose(f);
    return n;
}

static void test_table_has_the_documented_ops(void **state)
{
    (void)state;
    char names[128][CFGD_MAX_OP_LEN];
    size_t documented = documented_ops(names, 128);
    assert_true(documented >= 7);
    size_t n;
    const cfgd_op *ops = cfgd_op_table(&n);
    /* Every documented operation exists, and every operation is documented. */
    for (size_t i = 0; i < documented; i++) {
        const cfgd_op *op = cfgd_op_find(names[i]);
        if (!op)
            fail_msg("documented but not in the table: %s", names[i]);
        assert_non_null(op->validate);
        assert_non_null(op->handle);
    }
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t j = 0; j < documented; j++)
            found = found || strcmp(ops[i].name, names[j]) == 0;
        if (!found)
            fail_msg("in the table but not documented in docs/configd.md: %s", ops[i].name);
    }
    assert_int_equal(n, documented);
    assert_null(cfgd_op_find("time"));
    assert_null(cfgd_op_find("time.get "));
    assert_null(cfgd_op_find("shell"));
}

static void test_dispatch_ok_echoes_id(void **state)
{
    fx_fixture *f = *state;
    cfgd_outcome oc;
    json_t *reply = dispatch(f, "{\"v\":1,\"id\":4242,\"op\":\"time.get\"}", &oc);
    assert_true(oc.ok);
    assert_int_equal(oc.id, 4242);
    assert_string_equal(oc.op, "time.get");
    assert_int_equal(json_integer_value(json_object_get(reply, "id")), 4242);
    assert_int_equal(json_integer_value(json_object_get(reply, "v")), 1);
    assert_true(json_is_object(json_object_get(reply, "result")));
    json_decref(reply);
}

static void test_dispatch_unknown_op(void **state)
{
    fx_fixture *f = *state;
    cfgd_outcome oc;
    json_t *reply = dispatch(f, "{\"v\":1,\"id\":2,\"op\":\"system.shell\",\"args\":{}}", &oc);
    assert_false(oc.ok);
    assert_string_equal(fx_code(reply), "unknown_op");
    assert_int_equal(json_integer_value(json_object_get(reply, "id")), 2);
    json_decref(reply);
}

static void test_dispatch_malformed_request_replies(void **state)
{
    fx_fixture *f = *state;
    cfgd_outcome oc;
    json_t *reply = dispatch(f, "{\"v\":1,\"id\":9}", &oc);
    assert_non_null(reply);
    assert_string_equal(fx_code(reply), "malformed");
    assert_int_equal(json_integer_value(json_object_get(reply, "id")), 9);
    assert_string_equal(oc.op, "-");
    json_decref(reply);
}

static void test_dispatch_not_object_closes(void **state)
{
    fx_fixture *f = *state;
    cfgd_outcome oc;
    assert_null(dispatch(f, "[\"time.get\"]", &oc));
    assert_false(oc.ok);
    assert_int_equal(oc.error.code, CFGD_ERR_MALFORMED);
    assert_null(dispatch(f, "garbage", &oc));
}

static void test_dispatch_refuses_unexpected_fds(void **state)
{
    fx_fixture *f = *state;
    int fds[1] = {0};
    f->ctx.fds = fds;
    f->ctx.nfds = 1;
    cfgd_outcome oc;
    json_t *reply = dispatch(f, "{\"v\":1,\"id\":3,\"op\":\"time.get\"}", &oc);
    assert_string_equal(fx_code(reply), "invalid_argument");
    json_decref(reply);
}

static void test_dispatch_invalid_args_change_nothing(void **state)
{
    fx_fixture *f = *state;
    cfgd_outcome oc;
    json_t *reply = dispatch(
        f, "{\"v\":1,\"id\":3,\"op\":\"time.set_zone\",\"args\":{\"zone\":\"../x\"}}", &oc);
    assert_string_equal(fx_code(reply), "invalid_argument");
    assert_false(fx_exists(f->dir, "/etc"));
    json_decref(reply);
}

/* The backend reports failures with code "failed" and a message naming the device path. */
static void test_dispatch_backend_failure_is_failed(void **state)
{
    fx_fixture *f = *state;
    fx_install_zoneinfo(f->dir);
    /* /etc as a plain file makes every write below it fail. */
    fx_write(f->dir, "/etc", "not a folder", 0644);
    cfgd_outcome oc;
    json_t *reply = dispatch(
        f, "{\"v\":1,\"id\":3,\"op\":\"time.set_zone\",\"args\":{\"zone\":\"Europe/Berlin\"}}",
        &oc);
    assert_string_equal(fx_code(reply), "failed");
    assert_non_null(strstr(oc.error.message, "/etc/localtime"));
    json_decref(reply);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_has_the_documented_ops),
        cmocka_unit_test_setup_teardown(test_dispatch_ok_echoes_id, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_unknown_op, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_malformed_request_replies, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_not_object_closes, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_refuses_unexpected_fds, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_invalid_args_change_nothing, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_dispatch_backend_failure_is_failed, setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
