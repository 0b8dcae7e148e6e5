/* Unit tests for the logs.* argument checks and the log-file operations on a sandbox: listing,
 * copying into a passed descriptor, deleting; traversal and links refused with nothing touched. */
#include "configd_fixture.h"

#include <fcntl.h>
#include <sys/mman.h>

#include "configd/ops/logs.h"

static int setup(void **state)
{
    fx_fixture *f = fx_setup("logs", FX_SANDBOX, 5000);
    fx_write(f->dir, "/var/lib/iotdm/logs/ssh/ssh_2030_01_15_12_00_00.log", "line one\n", 0640);
    fx_write(f->dir, "/var/lib/iotdm/logs/ssh/b.log", "bee\n", 0640);
    fx_write(f->dir, "/var/lib/iotdm/logs/ssh/.collector.json", "{}", 0640);
    fx_write(f->dir, "/var/lib/iotdm/logs/kernel/k.log", "kernel\n", 0640);
    fx_write(f->dir, "/var/lib/iotdm/secret.txt", "do not serve\n", 0600);
    *state = f;
    return 0;
}

static void test_log_names_are_checked(void **state)
{
    (void)state;
    char longest[256], too_long[257];
    memset(longest, 'a', 255);
    longest[255] = '\0';
    memset(too_long, 'a', 256);
    too_long[256] = '\0';
    assert_true(cfgd_log_name_valid("ssh_2030_01_15_12_00_00.log", 27));
    assert_true(cfgd_log_name_valid("with space.log", 14));
    assert_true(cfgd_log_name_valid(longest, 255));
    assert_false(cfgd_log_name_valid(too_long, 256));
    assert_false(cfgd_log_name_valid("", 0));
    assert_false(cfgd_log_name_valid("..", 2));
    assert_false(cfgd_log_name_valid(".", 1));
    assert_false(cfgd_log_name_valid(".collector.json", 15));
    assert_false(cfgd_log_name_valid("a/b", 3));
    assert_false(cfgd_log_name_valid("../etc", 6));
    assert_false(cfgd_log_name_valid("x..y", 4));
    assert_false(cfgd_log_name_valid("a\\b", 3));
    assert_false(cfgd_log_name_valid("tab\there", 8));
    assert_false(cfgd_log_name_valid("nul\0x", 5)); /* the JSON length counts past a NUL */
    assert_true(cfgd_log_collector_name_valid("ssh-and_kernel2", 15));
    assert_false(cfgd_log_collector_name_valid("has.dot", 7));
    assert_false(cfgd_log_collector_name_valid("", 0));
    assert_false(cfgd_log_collector_name_valid(longest, 65));
}

static void expect_invalid(fx_fixture *f, const char *op, const char *args, const char *needle)
{
    json_t *reply = fx_call(&f->ctx, op, args);
    assert_string_equal(fx_code(reply), "invalid_argument");
    const char *msg =
        json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
    if (needle && !strstr(msg, needle))
        fail_msg("%s %s: message \"%s\" lacks \"%s\"", op, args, msg, needle);
    json_decref(reply);
}

static void test_settings_are_checked(void **state)
{
    fx_fixture *f = *state;
    const char *op = "logs.set_collector";
    expect_invalid(f, op, "{\"name\":\"../x\"}", "collector name");
    expect_invalid(f, op, "{\"name\":\"a\",\"settings\":{\"priority\":\"loud\"}}", "priority");
    expect_invalid(f, op, "{\"name\":\"a\",\"settings\":{\"sizeLimitMB\":0}}", "sizeLimitMB");
    expect_invalid(f, op, "{\"name\":\"a\",\"settings\":{\"sizeLimitMB\":1025}}", "sizeLimitMB");
    expect_invalid(f, op, "{\"name\":\"a\",\"settings\":{\"sizeLimitMB\":1.5}}", "sizeLimitMB");
    expect_invalid(f, op, "{\"name\":\"a\",\"settings\":{\"mode\":\"ring\"}}", "mode");
    expect_invalid(f, op, "{\"name\":\"a\",\"settings\":{\"started\":\"yes\"}}", "started");
    expect_invalid(f, op, "{\"name\":\"a\",\"settings\":{\"units\":[\"-x\"]}}", "units[0]");
    expect_invalid(f, op, "{\"name\":\"a\",\"settings\":{\"units\":[\"ssh*\"]}}", "units[0]");
    expect_invalid(f, op, "{\"name\":\"a\",\"settings\":{\"units\":\"ssh\"}}", "units");
    expect_invalid(f, op, "{\"name\":\"a\",\"settings\":{\"identifiers\":[\"a b\"]}}",
                   "identifiers[0]");
    expect_invalid(f, op, "{\"name\":\"a\",\"settings\":{\"logFileFolder\":\"x\"}}", "unknown");
    expect_invalid(f, op,
                   "{\"name\":\"a\",\"settings\":{\"units\":[\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
                   "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]}}",
                   "at most 16");
    /* Nothing was created by any of them. */
    assert_false(fx_exists(f->dir, "/var/lib/iotdm/logs/a"));
}

static void test_list_folders_and_files(void **state)
{
    fx_fixture *f = *state;
    char link[PATH_MAX];
    snprintf(link, sizeof link, "%s/var/lib/iotdm/logs/etc", f->dir);
    assert_int_equal(symlink("/etc", link), 0);
    json_t *reply = fx_call(&f->ctx, "logs.list_folders", NULL);
    char *text = json_dumps(fx_result(reply), JSON_COMPACT);
    assert_string_equal(text, "{\"folders\":[\"kernel\",\"ssh\"]}"); /* not the link */
    free(text);
    json_decref(reply);
    reply = fx_call(&f->ctx, "logs.list_files", "{\"folder\":\"ssh\"}");
    json_t *files = json_object_get(fx_result(reply), "files");
    assert_int_equal(json_array_size(files), 2); /* .collector.json is configd's own */
    json_t *first = json_array_get(files, 0);
    assert_string_equal(json_string_value(json_object_get(first, "name")), "b.log");
    assert_int_equal(json_integer_value(json_object_get(first, "size")), 4);
    assert_non_null(strchr(json_string_value(json_object_get(first, "modified")), 'T'));
    json_decref(reply);
    reply = fx_call(&f->ctx, "logs.list_files", "{\"folder\":\"etc\"}");
    assert_string_equal(fx_code(reply), "not_found");
    json_decref(reply);
    reply = fx_call(&f->ctx, "logs.list_files", "{\"folder\":\"none\"}");
    assert_string_equal(fx_code(reply), "not_found");
    json_decref(reply);
}

static void test_every_file_op_refuses_traversal(void **state)
{
    fx_fixture *f = *state;
    static const char *const bad[] = {
        "{\"folder\":\"..\",\"file\":\"secret.txt\"}",
        "{\"folder\":\"ssh/..\",\"file\":\"x\"}",
        "{\"folder\":\"ssh\",\"file\":\"../../secret.txt\"}",
        "{\"folder\":\"ssh\",\"file\":\"/etc/passwd\"}",
        "{\"folder\":\"ssh\",\"file\":\".collector.json\"}",
        "{\"folder\":\"ssh\",\"file\":\"\"}",
        "{\"folder\":\"ssh\",\"file\":7}",
        "{\"folder\":\"ssh\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        expect_invalid(f, "logs.delete_file", bad[i], NULL);
        expect_invalid(f, "logs.read_file", bad[i], NULL);
    }
    expect_invalid(f, "logs.list_files", "{\"folder\":\"..\"}", "log folder name");
    expect_invalid(f, "logs.list_files", "{\"folder\":\"/var\"}", "log folder name");
    assert_true(fx_exists(f->dir, "/var/lib/iotdm/secret.txt"));
    assert_true(fx_exists(f->dir, "/var/lib/iotdm/logs/ssh/.collector.json"));
    assert_true(fx_exists(f->dir, "/var/lib/iotdm/logs/ssh/b.log"));
}

static int memfd(void)
{
    int fd = memfd_create("test", MFD_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static void test_read_file_copies_into_the_passed_descriptor(void **state)
{
    fx_fixture *f = *state;
    int fd = memfd();
    assert_int_equal(write(fd, "stale bytes that must go away", 29), 29);
    f->ctx.fds = &fd;
    f->ctx.nfds = 1;
    json_t *reply = fx_call(&f->ctx, "logs.read_file",
                            "{\"folder\":\"ssh\",\"file\":\"ssh_2030_01_15_12_00_00.log\"}");
    assert_int_equal(json_integer_value(json_object_get(fx_result(reply), "size")), 9);
    json_decref(reply);
    char buf[64] = "";
    assert_int_equal(pread(fd, buf, sizeof buf - 1, 0), 9);
    assert_string_equal(buf, "line one\n");
    /* A link inside a folder is not followed, even to a file inside the root. */
    char link[PATH_MAX];
    snprintf(link, sizeof link, "%s/var/lib/iotdm/logs/ssh/evil.log", f->dir);
    assert_int_equal(symlink("../../secret.txt", link), 0);
    reply = fx_call(&f->ctx, "logs.read_file", "{\"folder\":\"ssh\",\"file\":\"evil.log\"}");
    assert_string_equal(fx_code(reply), "not_found");
    json_decref(reply);
    close(fd);
    /* A read-only descriptor, or none at all, is refused. */
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/var/lib/iotdm/logs/kernel/k.log", f->dir);
    fd = open(path, O_RDONLY);
    reply = fx_call(&f->ctx, "logs.read_file", "{\"folder\":\"ssh\",\"file\":\"b.log\"}");
    assert_string_equal(fx_code(reply), "invalid_argument");
    json_decref(reply);
    close(fd);
    f->ctx.nfds = 0;
    reply = fx_call(&f->ctx, "logs.read_file", "{\"folder\":\"ssh\",\"file\":\"b.log\"}");
    assert_string_equal(fx_code(reply), "invalid_argument");
    json_decref(reply);
}

static void test_delete_file_removes_only_that_file(void **state)
{
    fx_fixture *f = *state;
    char link[PATH_MAX];
    snprintf(link, sizeof link, "%s/var/lib/iotdm/logs/ssh/evil.log", f->dir);
    assert_int_equal(symlink("../../secret.txt", link), 0);
    json_t *reply =
        fx_call(&f->ctx, "logs.delete_file", "{\"folder\":\"ssh\",\"file\":\"evil.log\"}");
    assert_string_equal(fx_code(reply), "not_found");
    json_decref(reply);
    assert_true(fx_exists(f->dir, "/var/lib/iotdm/logs/ssh/evil.log"));
    assert_true(fx_exists(f->dir, "/var/lib/iotdm/secret.txt"));
    reply = fx_call(&f->ctx, "logs.delete_file", "{\"folder\":\"ssh\",\"file\":\"b.log\"}");
    fx_result(reply);
    json_decref(reply);
    assert_false(fx_exists(f->dir, "/var/lib/iotdm/logs/ssh/b.log"));
    assert_true(fx_exists(f->dir, "/var/lib/iotdm/logs/ssh/ssh_2030_01_15_12_00_00.log"));
    reply = fx_call(&f->ctx, "logs.delete_file", "{\"folder\":\"ssh\",\"file\":\"b.log\"}");
    assert_string_equal(fx_code(reply), "not_found");
    json_decref(reply);
}

static void test_missing_logs_root_lists_nothing(void **state)
{
    (void)state;
    char dir[64], e[256];
    fx_tempdir(dir, sizeof dir, "logs-empty");
    cfgd_config cfg;
    cfgd_config_defaults(&cfg);
    cfgd_backend *be = cfgd_backend_sandbox_new(dir, 5000, e, sizeof e);
    cfgd_ctx ctx = {.be = be, .cfg = &cfg};
    json_t *reply = fx_call(&ctx, "logs.list_folders", NULL);
    assert_int_equal(json_array_size(json_object_get(fx_result(reply), "folders")), 0);
    json_decref(reply);
    reply = fx_call(&ctx, "logs.status", NULL);
    assert_int_equal(json_object_size(json_object_get(fx_result(reply), "collectors")), 0);
    json_decref(reply);
    cfgd_backend_free(be);
    fx_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_names_are_checked),
        cmocka_unit_test_setup_teardown(test_settings_are_checked, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_list_folders_and_files, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_every_file_op_refuses_traversal, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_read_file_copies_into_the_passed_descriptor, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_delete_file_removes_only_that_file, setup,
                                        fx_teardown),
        cmocka_unit_test(test_missing_logs_root_lists_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
