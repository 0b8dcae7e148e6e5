/* Unit tests for the log collectors: filtering of the simulated journal, finished files on stop,
 * circular and sequential limits, removal, and journalctl's command line on the linux backend. */
#include "configd_fixture.h"

#include <fcntl.h>
#include <time.h>

#include "common/timeutil.h"
#include "configd/ops/logs.h"

static int setup(void **state)
{
    *state = fx_setup("logcollect", FX_SANDBOX, 5000);
    return 0;
}

/* Records each argument on a line, advances the cursor file it is given, prints one entry;
 * fails with a message on stderr while the root holds "journal-fails". */
static const char journalctl_stub[] =
    "#!/bin/sh\n"
    "for a in \"$@\"; do echo \"$a\"; done >> \"$IOTDM_ROOT/journalctl.args\"\n"
    "if [ -e \"$IOTDM_ROOT/journal-fails\" ]; then echo 'Failed to seek to cursor' >&2; exit 1; "
    "fi\n"
    "for a in \"$@\"; do case \"$a\" in --cursor-file=*) echo c1 > \"${a#--cursor-file=}\";; "
    "esac; done\n"
    "echo '2030-01-15T12:00:00+00:00 dev sshd[7]: from the stub'\n";

static int setup_linux(void **state)
{
    fx_fixture *f = fx_setup("logcollect", FX_LINUX, 3000);
    *state = f;
    fx_write(f->dir, "/usr/bin/journalctl", journalctl_stub, 0755);
    return 0;
}

static int64_t now_us(void)
{
    return time_now_ms() * 1000;
}

/* Appends one entry to the simulated journal, as journalctl -o json writes it. */
static void journal_add(fx_fixture *f, const char *unit, const char *ident, int prio,
                        const char *msg, int64_t ts_us)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s%s", f->dir, CFGD_SANDBOX_JOURNALD);
    FILE *out = fopen(path, "a");
    assert_non_null(out);
    fprintf(
        out,
        "{\"__REALTIME_TIMESTAMP\":\"%lld\",\"_SYSTEMD_UNIT\":\"%s\",\"SYSLOG_IDENTIFIER\":"
        "\"%s\",\"_PID\":\"42\",\"PRIORITY\":\"%d\",\"_HOSTNAME\":\"dev\",\"MESSAGE\":\"%s\"}\n",
        (long long)ts_us, unit, ident, prio, msg);
    fclose(out);
}

static void set_collector(fx_fixture *f, const char *name, const char *settings)
{
    char args[2048];
    snprintf(args, sizeof args, "{\"name\":\"%s\",\"settings\":%s}", name, settings);
    json_decref(fx_call_ok(f, "logs.set_collector", args));
}

/* Everything the folder holds (finished files, oldest first, then the current one). */
static char *folder_text(fx_fixture *f, const char *folder)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s%s/%s", f->dir, CFGD_LOGS_ROOT, folder);
    int dfd = open(path, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    cfgd_log_file *files;
    size_t n;
    assert_int_equal(cfgd_logs_scan(dfd, &files, &n), 0);
    size_t len = 0;
    char *all = calloc(1, 1);
    for (size_t i = 0; i <= n; i++) {
        const char *name = i < n ? files[i].name : CFGD_LOG_CURRENT_FILE;
        int fd = openat(dfd, name, O_RDONLY);
        if (fd < 0)
            continue;
        struct stat st;
        fstat(fd, &st);
        all = realloc(all, len + (size_t)st.st_size + 1);
        assert_int_equal(read(fd, all + len, (size_t)st.st_size), st.st_size);
        len += (size_t)st.st_size;
        all[len] = '\0';
        close(fd);
    }
    free(files);
    close(dfd);
    return all;
}

static json_t *status_of(fx_fixture *f, const char *op, const char *name)
{
    json_t *r = fx_call_ok(f, op, NULL);
    json_t *c = json_incref(json_object_get(json_object_get(r, "collectors"), name));
    json_decref(r);
    assert_non_null(c);
    return c;
}

static const char *str(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static void test_collector_filters_and_finishes_a_file_on_stop(void **state)
{
    fx_fixture *f = *state;
    journal_add(f, "ssh.service", "sshd", 6, "before the start", now_us() - 5000000);
    set_collector(f, "ssh", "{\"units\":[\"ssh\"],\"priority\":\"info\",\"started\":true}");
    set_collector(f, "cron", "{\"identifiers\":[\"CRON\"],\"started\":true}");
    journal_add(f, "ssh.service", "sshd", 6, "Accepted publickey", now_us());
    journal_add(f, "ssh.service", "sshd", 7, "debug noise", now_us());
    journal_add(f, "cron.service", "CRON", 6, "cron ran", now_us());
    journal_add(f, "ssh.service", "sshd", 3, "an error", now_us());
    json_t *st = status_of(f, "logs.collect", "ssh");
    assert_string_equal(str(st, "state"), "collecting");
    assert_int_equal(json_integer_value(json_object_get(st, "files")), 0);
    assert_true(json_integer_value(json_object_get(st, "bytes")) > 0);
    json_decref(st);
    set_collector(f, "ssh", "{\"units\":[\"ssh\"],\"priority\":\"info\",\"started\":false}");
    json_t *files = fx_call_ok(f, "logs.list_files", "{\"folder\":\"ssh\"}");
    json_t *list = json_object_get(files, "files");
    assert_int_equal(json_array_size(list), 1);
    const char *name = str(json_array_get(list, 0), "name");
    assert_int_equal(strncmp(name, "ssh_20", 6), 0);
    assert_string_equal(name + strlen(name) - 4, ".log");
    char *text = folder_text(f, "ssh");
    assert_non_null(strstr(text, "dev sshd[42]: Accepted publickey\n"));
    assert_non_null(strstr(text, "sshd[42]: an error"));
    assert_null(strstr(text, "debug noise"));
    assert_null(strstr(text, "cron ran"));
    assert_null(strstr(text, "before the start"));
    free(text);
    json_decref(files);
    text = folder_text(f, "cron");
    assert_non_null(strstr(text, "CRON[42]: cron ran"));
    assert_null(strstr(text, "sshd"));
    free(text);
    st = status_of(f, "logs.status", "ssh");
    assert_string_equal(str(st, "state"), "stopped");
    assert_int_equal(json_integer_value(json_object_get(st, "files")), 1);
    assert_string_equal(str(st, "mode"), "circular");
    assert_int_equal(json_integer_value(json_object_get(st, "sizeLimitMB")), 4);
    json_decref(st);
}

/* Entries of about 128 bytes, numbered; n of them. */
static void journal_fill(fx_fixture *f, int from, int n)
{
    char msg[160];
    int64_t ts = now_us();
    for (int i = from; i < from + n; i++) {
        snprintf(msg, sizeof msg, "entry %08d %s", i,
                 "padding padding padding padding padding padding padding padding padding");
        journal_add(f, "app.service", "app", 6, msg, ts);
    }
}

static int64_t folder_bytes(fx_fixture *f, const char *folder, size_t *out_files)
{
    json_t *st = status_of(f, "logs.status", folder);
    int64_t b = json_integer_value(json_object_get(st, "bytes"));
    *out_files = (size_t)json_integer_value(json_object_get(st, "files"));
    json_decref(st);
    return b;
}

static void test_circular_keeps_the_newest_under_the_limit(void **state)
{
    fx_fixture *f = *state;
    set_collector(f, "app", "{\"sizeLimitMB\":1,\"mode\":\"circular\",\"started\":true}");
    journal_fill(f, 0, 24000); /* about 3 MiB through a 1 MiB folder */
    json_t *st = status_of(f, "logs.collect", "app");
    assert_string_equal(str(st, "state"), "collecting");
    json_decref(st);
    size_t files;
    int64_t bytes = folder_bytes(f, "app", &files);
    assert_true(bytes <= 1024 * 1024);
    assert_true(bytes > 512 * 1024);
    assert_true(files >= 2);
    char *text = folder_text(f, "app");
    assert_null(strstr(text, "entry 00000000 "));
    assert_non_null(strstr(text, "entry 00023999 "));
    free(text);
    /* A smaller limit trims at once (here: nothing, 1 MiB is the least); a stop keeps a file. */
    set_collector(f, "app", "{\"sizeLimitMB\":1,\"mode\":\"circular\",\"started\":false}");
    bytes = folder_bytes(f, "app", &files);
    assert_true(bytes <= 1024 * 1024);
}

static void test_sequential_stops_when_full(void **state)
{
    fx_fixture *f = *state;
    set_collector(f, "app", "{\"sizeLimitMB\":1,\"mode\":\"sequential\",\"started\":true}");
    journal_fill(f, 0, 24000);
    json_t *st = status_of(f, "logs.collect", "app");
    assert_string_equal(str(st, "state"), "full");
    json_decref(st);
    size_t files;
    int64_t bytes = folder_bytes(f, "app", &files);
    assert_true(bytes <= 1024 * 1024);
    char *text = folder_text(f, "app");
    assert_non_null(strstr(text, "entry 00000000 "));
    assert_null(strstr(text, "entry 00023999 "));
    free(text);
    /* Still full while nothing fits; collecting again once the operator made room. */
    journal_fill(f, 24000, 10);
    st = status_of(f, "logs.collect", "app");
    assert_string_equal(str(st, "state"), "full");
    json_decref(st);
    json_t *list = fx_call_ok(f, "logs.list_files", "{\"folder\":\"app\"}");
    char args[512];
    snprintf(args, sizeof args, "{\"folder\":\"app\",\"file\":\"%s\"}",
             str(json_array_get(json_object_get(list, "files"), 0), "name"));
    json_decref(list);
    json_decref(fx_call_ok(f, "logs.delete_file", args));
    journal_fill(f, 24010, 10);
    st = status_of(f, "logs.collect", "app");
    assert_string_equal(str(st, "state"), "collecting");
    json_decref(st);
    text = folder_text(f, "app");
    assert_non_null(strstr(text, "entry 00024015 "));
    assert_null(strstr(text, "entry 00024005 ")); /* dropped while full */
    free(text);
}

static void test_remove_collector_keeps_its_files(void **state)
{
    fx_fixture *f = *state;
    set_collector(f, "app", "{\"started\":true}");
    journal_fill(f, 0, 3);
    json_t *r = fx_call_ok(f, "logs.remove_collector", "{\"name\":\"app\"}");
    assert_true(json_is_true(json_object_get(r, "removed")));
    json_decref(r);
    r = fx_call_ok(f, "logs.status", NULL);
    assert_null(json_object_get(json_object_get(r, "collectors"), "app"));
    json_decref(r);
    assert_false(fx_exists(f->dir, "/var/lib/iotdm/logs/app/.collector.json"));
    char *text = folder_text(f, "app");
    assert_non_null(strstr(text, "entry 00000002 "));
    free(text);
    r = fx_call_ok(f, "logs.list_folders", NULL);
    assert_int_equal(json_array_size(json_object_get(r, "folders")), 1);
    json_decref(r);
    r = fx_call_ok(f, "logs.remove_collector", "{\"name\":\"app\"}");
    assert_false(json_is_true(json_object_get(r, "removed")));
    json_decref(r);
}

static void test_restart_collects_from_the_new_start_only(void **state)
{
    fx_fixture *f = *state;
    set_collector(f, "app", "{\"started\":true}");
    journal_fill(f, 0, 2);
    set_collector(f, "app", "{\"started\":false}");
    journal_add(f, "app.service", "app", 6, "while stopped", now_us());
    /* Start times have the journal's --since resolution, one second. */
    nanosleep(&(struct timespec){1, 100 * 1000 * 1000}, NULL);
    set_collector(f, "app", "{\"started\":true}");
    journal_add(f, "app.service", "app", 6, "after the restart", now_us());
    set_collector(f, "app", "{\"started\":false}");
    json_t *list = fx_call_ok(f, "logs.list_files", "{\"folder\":\"app\"}");
    assert_int_equal(json_array_size(json_object_get(list, "files")), 2);
    json_decref(list);
    char *text = folder_text(f, "app");
    assert_null(strstr(text, "while stopped"));
    assert_non_null(strstr(text, "after the restart"));
    char *first = strstr(text, "entry 00000001 ");
    assert_non_null(first);
    assert_null(strstr(first + 1, "entry 00000001 ")); /* nothing collected twice */
    free(text);
}

static void test_collector_count_is_bounded(void **state)
{
    fx_fixture *f = *state;
    char name[16];
    for (int i = 0; i < CFGD_LOG_COLLECTORS_MAX; i++) {
        snprintf(name, sizeof name, "c%d", i);
        set_collector(f, name, "{}");
    }
    json_t *reply = fx_call(&f->ctx, "logs.set_collector", "{\"name\":\"onemore\"}");
    assert_string_equal(fx_code(reply), "too_large");
    json_decref(reply);
    assert_false(fx_exists(f->dir, "/var/lib/iotdm/logs/onemore"));
    set_collector(f, "c0", "{\"started\":true}"); /* changing an existing one is fine */
}

static void test_linux_runs_journalctl_with_the_filters(void **state)
{
    fx_fixture *f = *state;
    set_collector(f, "ssh",
                  "{\"units\":[\"ssh.service\",\"getty@tty1.service\"],\"identifiers\":[\"sshd\"],"
                  "\"priority\":\"info\",\"started\":true}");
    json_t *st = status_of(f, "logs.collect", "ssh");
    assert_null(json_object_get(st, "error"));
    json_decref(st);
    const char *args = fx_read(f->dir, "/journalctl.args");
    assert_non_null(args);
    char cursor[PATH_MAX];
    snprintf(cursor, sizeof cursor, "\n--cursor-file=%s/var/lib/iotdm/logs/ssh/.cursor\n", f->dir);
    assert_non_null(strstr(args, cursor));
    static const char *const expected[] = {"--no-pager\n",
                                           "--quiet\n",
                                           "--utc\n",
                                           "--output=short-iso\n",
                                           "\n--since=@",
                                           "\n--unit=ssh.service\n",
                                           "\n--unit=getty@tty1.service\n",
                                           "\n--identifier=sshd\n",
                                           "\n--priority=6\n"};
    for (size_t i = 0; i < sizeof expected / sizeof *expected; i++)
        if (!strstr(args, expected[i]))
            fail_msg("journalctl arguments lack %s:\n%s", expected[i], args);
    assert_true(fx_exists(f->dir, "/var/lib/iotdm/logs/ssh/.cursor"));
    /* A failing journalctl (after one retry without the cursor) is reported next to the
     * collector, with journalctl's own words. */
    fx_write(f->dir, "/journal-fails", "", 0644);
    st = status_of(f, "logs.collect", "ssh");
    assert_non_null(strstr(str(st, "error"), "Failed to seek to cursor"));
    json_decref(st);
    assert_false(fx_exists(f->dir, "/var/lib/iotdm/logs/ssh/.cursor"));
    char fails[PATH_MAX];
    snprintf(fails, sizeof fails, "%s/journal-fails", f->dir);
    unlink(fails);
    set_collector(f, "ssh", "{\"started\":false}");
    char *text = folder_text(f, "ssh");
    assert_non_null(strstr(text, "sshd[7]: from the stub"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_collector_filters_and_finishes_a_file_on_stop, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_circular_keeps_the_newest_under_the_limit, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_sequential_stops_when_full, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_remove_collector_keeps_its_files, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_restart_collects_from_the_new_start_only, setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_collector_count_is_bounded, setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_linux_runs_journalctl_with_the_filters, setup_linux,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
