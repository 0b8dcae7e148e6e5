/* The real iotdm-configd binary on a sandbox, driven over its socket with the client library and
 * with raw frames: allow-list, bad frames, bad arguments, effects, and that it keeps serving. */
#include "configd_fixture.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>

#include "proto/configd_client.h"

typedef struct {
    char dir[64];
    char root[128];
    char sock[128];
    char log[128];
    pid_t pid;
} daemon_fx;

static daemon_fx d; /* one daemon serves the whole group: it must survive every test */

static const char *configd_bin(void)
{
    static char path[PATH_MAX + 64];
    if (getenv("IOTDM_CONFIGD_BIN"))
        return getenv("IOTDM_CONFIGD_BIN");
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    *strrchr(exe, '/') = '\0'; /* build/<preset>/tests/unit */
    snprintf(path, sizeof path, "%s/../../src/configd/iotdm-configd", exe);
    return path;
}

/* Starts the daemon with args (NULL-terminated) and waits until it answers; -1 (with the reason
 * printed and the child gone) when it does not. */
static pid_t start_daemon(const char *sock, const char *log, const char *const *args)
{
    const char *argv[16] = {configd_bin()};
    if (access(argv[0], X_OK) != 0) {
        print_error("iotdm-configd not found at %s: build it first or set IOTDM_CONFIGD_BIN\n",
                    argv[0]);
        return -1;
    }
    size_t n = 1;
    for (; args[n - 1] && n < 15; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        cfgd_error err;
        if (cfgd_call(sock, "time.get", NULL, NULL, 0, 1000, NULL, &err) == IOTDM_OK)
            return pid;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            print_error("iotdm-configd exited early: %s\n", fx_read("", log));
            return -1;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    print_error("iotdm-configd did not come up: %s\n", fx_read("", log));
    return -1;
}

/* SIGTERM, then it must exit 0 and remove its socket. */
static void stop_daemon(pid_t pid, const char *sock)
{
    int status = 0;
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_false(fx_exists("", sock));
}

static int group_setup(void **state)
{
    (void)state;
    fx_tempdir(d.dir, sizeof d.dir, "daemon");
    chmod(d.dir, 0755); /* other users' clients must reach the socket inside */
    snprintf(d.root, sizeof d.root, "%s/root", d.dir);
    snprintf(d.sock, sizeof d.sock, "%s/configd.sock", d.dir);
    snprintf(d.log, sizeof d.log, "%s/configd.log", d.dir);
    fx_install_zoneinfo(d.root);
    fx_write(d.root, "/var/lib/iotdm-sandbox/boot_time", "2020-01-02T03:04:05.000Z\n", 0644);
    fx_write(d.dir, "/configd.conf",
             "allow_uid = 4242\nallow_gid = 4243\nlog_level = debug\n"
             "factory_reset_path = /var/lib/iotdm/state\n",
             0644);
    char conf[128];
    snprintf(conf, sizeof conf, "%s/configd.conf", d.dir);
    const char *args[] = {"--config", conf, "--sandbox", d.root, "--socket", d.sock, NULL};
    d.pid = start_daemon(d.sock, d.log, args);
    if (d.pid < 0) {
        fx_rmtree(d.dir);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    stop_daemon(d.pid, d.sock);
    fx_rmtree(d.dir);
    return 0;
}

/* One call as root; returns the result and fills err. */
static iotdm_result call(const char *op, const char *args, json_t **out, cfgd_error *err)
{
    json_t *a = args ? fx_json(args) : NULL;
    iotdm_result r = cfgd_call(d.sock, op, a, NULL, 0, 5000, out, err);
    json_decref(a);
    return r;
}

static void assert_serving(void)
{
    cfgd_error err;
    json_t *result = NULL;
    if (call("time.get", NULL, &result, &err) != IOTDM_OK)
        fail_msg("configd stopped serving: %s", err.message);
    assert_non_null(json_object_get(result, "timeZone"));
    json_decref(result);
}

static void test_client_missing_socket_says_so(void **state)
{
    (void)state;
    char path[160], want[400];
    snprintf(path, sizeof path, "%s/missing.sock", d.dir);
    cfgd_error err;
    assert_int_equal(cfgd_call(path, "time.get", NULL, NULL, 0, 1000, NULL, &err), -ENOENT);
    assert_int_equal(err.code, CFGD_ERR_UNREACHABLE);
    snprintf(want, sizeof want,
             "cannot reach iotdm-configd at %s: No such file or directory — is iotdm-configd "
             "running?",
             path);
    assert_string_equal(err.message, want);
}

static void test_client_refused_connection_says_so(void **state)
{
    (void)state;
    char path[160];
    snprintf(path, sizeof path, "%s/dead.sock", d.dir);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.100s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0); /* bound, never listening */
    cfgd_error err;
    assert_int_equal(cfgd_call(path, "time.get", NULL, NULL, 0, 1000, NULL, &err), -ECONNREFUSED);
    assert_non_null(strstr(err.message, "Connection refused — is iotdm-configd running?"));
    close(fd);
    unlink(path);
}

/* Calls op from a child running as uid/gid/groups; returns the error code name ("ok" on
 * success) and the message through a pipe. */
static void call_as(uid_t uid, gid_t gid, const gid_t *groups, size_t ngroups, char *code,
                    size_t code_cap, char *msg, size_t msg_cap)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        char out[700];
        if (setgroups(ngroups, groups) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
            snprintf(out, sizeof out, "setup\tcannot change identity");
        } else {
            cfgd_error err;
            iotdm_result r = cfgd_call(d.sock, "system.info", NULL, NULL, 0, 5000, NULL, &err);
            snprintf(out, sizeof out, "%s\t%s", r == IOTDM_OK ? "ok" : cfgd_errcode_name(err.code),
                     r == IOTDM_OK ? "" : err.message);
        }
        (void)!write(p[1], out, strlen(out));
        _exit(0);
    }
    close(p[1]);
    char buf[700];
    ssize_t n = 0, got;
    while ((got = read(p[0], buf + n, sizeof buf - 1 - (size_t)n)) > 0)
        n += got;
    buf[n > 0 ? n : 0] = '\0';
    close(p[0]);
    waitpid(pid, NULL, 0);
    char *tab = strchr(buf, '\t');
    if (!tab)
        fail_msg("child said: %s", buf);
    *tab = '\0';
    snprintf(code, code_cap, "%.20s", buf);
    snprintf(msg, msg_cap, "%s", tab + 1);
}

static void skip_unless_root(void)
{
    if (geteuid() != 0)
        skip();
}

/* Mode 0660 keeps other users out before configd even sees them; the client names the cause. */
static void test_peer_without_socket_access_unreachable(void **state)
{
    (void)state;
    skip_unless_root();
    char code[32], msg[600];
    chmod(d.sock, 0660);
    call_as(65534, 65534, NULL, 0, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "unreachable");
    assert_non_null(strstr(msg, "Permission denied — is this user in the socket's group"));
}

static void test_peer_not_on_allow_list_refused(void **state)
{
    (void)state;
    skip_unless_root();
    char code[32], msg[600];
    chmod(d.sock, 0666); /* let the kernel pass it so that configd's own check decides */
    call_as(65534, 65534, NULL, 0, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "permission_denied");
    assert_non_null(strstr(msg, "uid 65534"));
    assert_true(fx_count_lines("", d.log, "uid=65534: permission_denied") >= 1);
    assert_serving();
}

static void test_peer_allowed_by_uid_or_group(void **state)
{
    (void)state;
    skip_unless_root();
    char code[32], msg[600];
    chmod(d.sock, 0666);
    call_as(4242, 65534, NULL, 0, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "ok");
    call_as(5000, 4243, NULL, 0, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "ok");
    gid_t supplementary[] = {100, 4243};
    call_as(5000, 5000, supplementary, 2, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "ok");
    gid_t others[] = {100, 4244};
    call_as(5000, 5000, others, 2, code, sizeof code, msg, sizeof msg);
    assert_string_equal(code, "permission_denied");
    chmod(d.sock, 0660);
}

static int raw_connect(void)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.100s", d.sock);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void send_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            return; /* configd may already have closed: that is what some tests expect */
        p += n;
        len -= (size_t)n;
    }
}

static void send_frame(int fd, const char *body, size_t len)
{
    uint8_t h[4];
    cfgd_frame_header(len, h);
    send_all(fd, h, 4);
    send_all(fd, body, len);
}

/* Reads one reply frame (NULL at end of stream). */
static json_t *read_reply(int fd)
{
    uint8_t h[4];
    if (recv(fd, h, 4, MSG_WAITALL) != 4)
        return NULL;
    size_t len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    char *buf = malloc(len + 1);
    assert_int_equal(recv(fd, buf, len, MSG_WAITALL), (ssize_t)len);
    json_t *j = json_loadb(buf, len, 0, NULL);
    free(buf);
    return j;
}

static void assert_closed(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, 0);
    assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
}

static void test_malformed_frame_closes_only_that_connection(void **state)
{
    (void)state;
    int idle = raw_connect(); /* another client, which must not be disturbed */
    int fd = raw_connect();
    send_frame(fd, "definitely not json", strlen("definitely not json"));
    json_t *reply = read_reply(fd);
    assert_string_equal(fx_code(reply), "malformed");
    assert_int_equal(json_integer_value(json_object_get(reply, "id")), 0);
    json_decref(reply);
    assert_closed(fd);
    close(fd);
    send_frame(idle, "{\"v\":1,\"id\":8,\"op\":\"time.get\"}",
               strlen("{\"v\":1,\"id\":8,\"op\":\"time.get\"}"));
    reply = read_reply(idle);
    assert_string_equal(fx_code(reply), "ok");
    json_decref(reply);
    close(idle);
    assert_serving();
}

static void test_oversize_frame_closes_connection(void **state)
{
    (void)state;
    int fd = raw_connect();
    uint8_t h[4];
    cfgd_frame_header(CFGD_FRAME_MAX + 1, h);
    send_all(fd, h, 4);
    send_all(fd, "{\"v\":1", 6);
    json_t *reply = read_reply(fd);
    if (reply) /* best effort: the reply can be lost to the reset */
        assert_string_equal(fx_code(reply), "too_large");
    json_decref(reply);
    assert_closed(fd);
    close(fd);
    assert_serving();
}

/* Exactly 1 MiB is allowed (mostly blanks here), and a malformed request keeps the connection. */
static void test_largest_frame_served(void **state)
{
    (void)state;
    char *body = malloc(CFGD_FRAME_MAX);
    const char *req = "{\"v\":1,\"id\":77,\"op\":\"time.get\"";
    memset(body, ' ', CFGD_FRAME_MAX);
    memcpy(body, req, strlen(req));
    body[CFGD_FRAME_MAX - 1] = '}';
    int fd = raw_connect();
    send_frame(fd, body, CFGD_FRAME_MAX);
    json_t *reply = read_reply(fd);
    assert_string_equal(fx_code(reply), "ok");
    assert_int_equal(json_integer_value(json_object_get(reply, "id")), 77);
    json_decref(reply);
    send_frame(fd, "{\"v\":1,\"id\":78}", strlen("{\"v\":1,\"id\":78}"));
    reply = read_reply(fd);
    assert_string_equal(fx_code(reply), "malformed");
    json_decref(reply);
    send_frame(fd, "{\"v\":1,\"id\":79,\"op\":\"time.get\"}",
               strlen("{\"v\":1,\"id\":79,\"op\":\"time.get\"}"));
    reply = read_reply(fd);
    assert_string_equal(fx_code(reply), "ok");
    json_decref(reply);
    close(fd);
    free(body);
}

static void test_pipelined_requests_answered_in_order(void **state)
{
    (void)state;
    const char *a = "{\"v\":1,\"id\":1,\"op\":\"time.get\"}";
    const char *b = "{\"v\":1,\"id\":2,\"op\":\"nope\"}";
    uint8_t buf[128];
    size_t n = 0;
    cfgd_frame_header(strlen(a), buf);
    memcpy(buf + 4, a, strlen(a));
    n = 4 + strlen(a);
    cfgd_frame_header(strlen(b), buf + n);
    memcpy(buf + n + 4, b, strlen(b));
    n += 4 + strlen(b);
    int fd = raw_connect();
    send_all(fd, buf, n);
    json_t *r1 = read_reply(fd), *r2 = read_reply(fd);
    assert_int_equal(json_integer_value(json_object_get(r1, "id")), 1);
    assert_int_equal(json_integer_value(json_object_get(r2, "id")), 2);
    assert_string_equal(fx_code(r2), "unknown_op");
    json_decref(r1);
    json_decref(r2);
    close(fd);
}

static void test_half_frame_then_hangup(void **state)
{
    (void)state;
    int fd = raw_connect();
    send_all(fd, "\0\0", 2);
    close(fd);
    fd = raw_connect();
    send_all(fd, "\0\0\0\x20{\"v\":1", 10);
    close(fd);
    assert_serving();
}

static void test_bad_zones_refused_nothing_written(void **state)
{
    (void)state;
    static const char *const zones[] = {"../../etc/passwd", "Europe/../../x", "/etc/passwd",
                                        "Mars/Olympus", "Europe//Berlin"};
    for (size_t i = 0; i < sizeof zones / sizeof *zones; i++) {
        char args[128];
        snprintf(args, sizeof args, "{\"zone\":\"%s\"}", zones[i]);
        cfgd_error err;
        assert_int_equal(call("time.set_zone", args, NULL, &err), -EINVAL);
        assert_int_equal(err.code, CFGD_ERR_INVALID_ARGUMENT);
    }
    assert_false(fx_exists(d.root, "/etc/localtime"));
    assert_false(fx_exists(d.root, "/etc/timezone"));
    assert_serving();
}

static void test_set_zone_writes_sandbox(void **state)
{
    (void)state;
    json_t *result;
    cfgd_error err;
    assert_int_equal(call("time.set_zone", "{\"zone\":\"Europe/Berlin\"}", &result, &err), 0);
    assert_string_equal(json_string_value(json_object_get(result, "timeZone")), "Europe/Berlin");
    json_decref(result);
    assert_string_equal(fx_readlink(d.root, "/etc/localtime"), "/usr/share/zoneinfo/Europe/Berlin");
    assert_string_equal(fx_read(d.root, "/etc/timezone"), "Europe/Berlin\n");
}

static void test_set_ntp_writes_dropin(void **state)
{
    (void)state;
    cfgd_error err;
    assert_int_equal(
        call("time.set_ntp", "{\"servers\":[\"ntp.example.com\",\"192.0.2.1\"]}", NULL, &err), 0);
    const char *text = fx_read(d.root, "/etc/systemd/timesyncd.conf.d/iotdm.conf");
    assert_non_null(text);
    assert_non_null(strstr(text, "[Time]\nNTP=ntp.example.com 192.0.2.1\n"));
    /* One line per operation, and never the arguments. */
    assert_true(fx_count_lines("", d.log, "op=time.set_ntp id=1 pid=") >= 1);
    assert_int_equal(fx_count_lines("", d.log, "ntp.example.com"), 0);
}

static void test_reboot_recorded_and_boot_time_moves(void **state)
{
    (void)state;
    json_t *info;
    cfgd_error err;
    assert_int_equal(call("system.info", NULL, &info, &err), 0);
    assert_string_equal(json_string_value(json_object_get(info, "bootTime")),
                        "2020-01-02T03:04:05.000Z");
    json_decref(info);
    json_t *result;
    assert_int_equal(call("system.reboot", "{\"reason\":\"daemon test\"}", &result, &err), 0);
    assert_true(json_is_true(json_object_get(result, "simulated")));
    json_decref(result);
    assert_int_equal(fx_count_lines(d.root, "/var/lib/iotdm-sandbox/journal.jsonl",
                                    "\"event\":\"reboot\",\"reason\":\"daemon test\""),
                     1);
    assert_int_equal(call("system.info", NULL, &info, &err), 0);
    assert_true(strcmp(json_string_value(json_object_get(info, "bootTime")), "2025") > 0);
    json_decref(info);
}

static void test_client_keeps_connection_and_refuses_fds(void **state)
{
    (void)state;
    cfgd_client *c = cfgd_client_new(d.sock);
    cfgd_error err;
    json_t *result = NULL;
    assert_int_equal(cfgd_client_call(c, "time.get", NULL, NULL, 0, 5000, &result, &err), 0);
    json_decref(result);
    int fds[1] = {open("/dev/null", O_RDONLY)};
    assert_int_equal(cfgd_client_call(c, "time.get", NULL, fds, 1, 5000, NULL, &err), -EINVAL);
    assert_int_equal(err.code, CFGD_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(err.message, "file descriptors"));
    close(fds[0]);
    assert_int_equal(cfgd_client_call(c, "no.such", NULL, NULL, 0, 5000, NULL, &err),
                     IOTDM_E_UNSUPPORTED);
    assert_int_equal(err.code, CFGD_ERR_UNKNOWN_OP);
    assert_int_equal(cfgd_client_call(c, "time.get", NULL, NULL, 0, 5000, &result, &err), 0);
    json_decref(result);
    cfgd_client_free(c);
}

/* The real backend through the binary: --root takes files and programs under a throwaway root. */
static void test_root_option_runs_stubs_under_root(void **state)
{
    (void)state;
    char dir[64], root[128], sock[128], log[128];
    fx_tempdir(dir, sizeof dir, "daemonroot");
    snprintf(root, sizeof root, "%s/root", dir);
    snprintf(sock, sizeof sock, "%s/c.sock", dir);
    snprintf(log, sizeof log, "%s/c.log", dir);
    fx_write(root, "/usr/bin/systemctl",
             "#!/bin/sh\necho \"$*\" >> \"$IOTDM_ROOT/systemctl.log\"\necho active\n", 0755);
    const char *args[] = {"--root", root, "--socket", sock, "--config", "/dev/null", NULL};
    pid_t pid = start_daemon(sock, log, args);
    if (pid < 0) {
        fx_rmtree(dir);
        fail();
    }
    cfgd_error err;
    json_t *a = fx_json("{\"enabled\":true,\"started\":true}");
    assert_int_equal(cfgd_call(sock, "time.set_service", a, NULL, 0, 5000, NULL, &err), 0);
    json_decref(a);
    assert_int_equal(fx_count_lines(root, "/systemctl.log", "enable systemd-timesyncd.service"), 1);
    assert_int_equal(fx_count_lines(root, "/systemctl.log", "start systemd-timesyncd.service"), 1);
    stop_daemon(pid, sock);
    fx_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_missing_socket_says_so),
        cmocka_unit_test(test_client_refused_connection_says_so),
        cmocka_unit_test(test_peer_without_socket_access_unreachable),
        cmocka_unit_test(test_peer_not_on_allow_list_refused),
        cmocka_unit_test(test_peer_allowed_by_uid_or_group),
        cmocka_unit_test(test_malformed_frame_closes_only_that_connection),
        cmocka_unit_test(test_oversize_frame_closes_connection),
        cmocka_unit_test(test_largest_frame_served),
        cmocka_unit_test(test_pipelined_requests_answered_in_order),
        cmocka_unit_test(test_half_frame_then_hangup),
        cmocka_unit_test(test_bad_zones_refused_nothing_written),
        cmocka_unit_test(test_set_zone_writes_sandbox),
        cmocka_unit_test(test_set_ntp_writes_dropin),
        cmocka_unit_test(test_reboot_recorded_and_boot_time_moves),
        cmocka_unit_test(test_client_keeps_connection_and_refuses_fds),
        cmocka_unit_test(test_root_option_runs_stubs_under_root),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
