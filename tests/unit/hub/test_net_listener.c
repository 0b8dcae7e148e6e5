/* The listener: admission refusals close at once and are counted; running out of descriptors
 * (a child process with a low RLIMIT_NOFILE) pauses accepting instead of spinning, sheds waiting
 * peers, and serves again once descriptors are free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "hub/net/httpd.h"
#include "hub/net/limits.h"
#include "hub/net/listener.h"
#include "hub/net/refusals.h"
#include "net_app.h"
#include "net_client.h"

static SSL_CTX *server_tls;
static char tls_dir[64];

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    server_tls = tls_material(tls_dir, sizeof tls_dir);
    return server_tls ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    SSL_CTX_free(server_tls);
    tls_material_remove(tls_dir);
    return 0;
}

static void accept_cb(void *arg, evutil_socket_t fd, const struct sockaddr *addr, const char *peer,
                      hub_admit_ticket ticket)
{
    httpd_adopt(arg, fd, addr, peer, ticket);
}

typedef struct {
    struct event_base *base;
    hub_net_limits limits;
    hub_admission *admission;
    httpd *s;
    hub_listener *listener;
    test_app app;
} server;

static void server_start(server *sv, unsigned max_conn, unsigned per_source)
{
    hub_net_limits_defaults(&sv->limits);
    sv->app.max_body = 1024;
    sv->base = event_base_new();
    sv->admission = hub_admission_new(max_conn, per_source);
    httpd_callbacks cb = app_callbacks();
    sv->s = httpd_new(sv->base, server_tls, &sv->limits, sv->admission, &cb, &sv->app);
    assert_int_equal(hub_listener_new(sv->base, "127.0.0.1", 0, "https", sv->admission, accept_cb,
                                      sv->s, &sv->listener),
                     0);
}

static void server_stop(server *sv)
{
    hub_listener_free(sv->listener);
    httpd_free(sv->s);
    hub_admission_free(sv->admission);
    event_base_free(sv->base);
}

static void *loop_main(void *arg)
{
    event_base_loop(arg, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void test_listener_refuses_over_caps_at_once(void **state)
{
    (void)state;
    server sv;
    memset(&sv, 0, sizeof sv);
    server_start(&sv, 3, 2);
    unsigned port = hub_listener_port(sv.listener);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, loop_main, sv.base), 0);
    uint64_t source = hub_refusal_count(HUB_REFUSED_SOURCE_LIMIT);
    uint64_t global = hub_refusal_count(HUB_REFUSED_CONN_LIMIT);

    /* Two unauthenticated connections from 127.0.0.1 fill its source budget. */
    int a = tcp_connect(port, 0), b = tcp_connect(port, 0);
    sleep_ms(100);
    int c = tcp_connect(port, 0);
    long long t0 = now_ms();
    assert_true(tcp_wait_closed(c, 1000));
    assert_true(now_ms() - t0 < 500); /* closed at accept, not at a timeout */
    assert_int_equal(hub_refusal_count(HUB_REFUSED_SOURCE_LIMIT) - source, 1);
    close(c);
    close(a);
    close(b);
    sleep_ms(100);
    event_base_loopbreak(sv.base);
    pthread_join(th, NULL);
    server_stop(&sv);

    /* The global cap, with the per-source cap off. */
    memset(&sv, 0, sizeof sv);
    server_start(&sv, 2, 0);
    port = hub_listener_port(sv.listener);
    assert_int_equal(pthread_create(&th, NULL, loop_main, sv.base), 0);
    a = tcp_connect(port, 0);
    b = tcp_connect(port, 0);
    sleep_ms(100);
    c = tcp_connect(port, 0);
    assert_true(tcp_wait_closed(c, 1000));
    assert_int_equal(hub_refusal_count(HUB_REFUSED_CONN_LIMIT) - global, 1);
    close(c);
    close(a);
    close(b);
    sleep_ms(100);
    event_base_loopbreak(sv.base);
    pthread_join(th, NULL);
    server_stop(&sv);
}

/* ---- out of descriptors, in a child process ---- */

typedef struct {
    long long cpu_us;
    uint64_t descriptor_refusals;
    size_t connections;
} child_report;

typedef struct {
    server sv;
    int ctl, rep;
} child_ctx;

static long long cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

static void on_control(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    child_ctx *cx = arg;
    char cmd;
    if (read(fd, &cmd, 1) != 1 || cmd == 'Q') {
        event_base_loopbreak(cx->sv.base);
        return;
    }
    child_report r = {cpu_us(), hub_refusal_count(HUB_REFUSED_DESCRIPTORS),
                      httpd_connection_count(cx->sv.s)};
    if (write(cx->rep, &r, sizeof r) != (ssize_t)sizeof r)
        _exit(3);
}

static int open_descriptors(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* The server side: a handful of descriptors beyond what it has open now. */
static void child_main(int ctl, int rep)
{
    child_ctx cx = {.ctl = ctl, .rep = rep};
    server_start(&cx.sv, 1000, 1000);
    cx.sv.limits.handshake_timeout_s = 30; /* admitted peers keep their descriptors */
    struct event *ev = event_new(cx.sv.base, ctl, EV_READ | EV_PERSIST, on_control, &cx);
    event_add(ev, NULL);
    rlim_t limit = (rlim_t)open_descriptors() + 8;
    struct rlimit rl = {limit, limit};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        _exit(2);
    unsigned port = hub_listener_port(cx.sv.listener);
    if (write(rep, &port, sizeof port) != (ssize_t)sizeof port)
        _exit(3);
    event_base_dispatch(cx.sv.base);
    event_free(ev);
    server_stop(&cx.sv);
    _exit(0);
}

static child_report ask(int ctl, int rep)
{
    child_report r;
    assert_int_equal(write(ctl, "S", 1), 1);
    assert_int_equal(read(rep, &r, sizeof r), (ssize_t)sizeof r);
    return r;
}

static void test_listener_out_of_descriptors_pauses_sheds_and_recovers(void **state)
{
    (void)state;
    int ctl[2], rep[2];
    assert_int_equal(pipe2(ctl, O_CLOEXEC), 0);
    assert_int_equal(pipe2(rep, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(ctl[1]);
        close(rep[0]);
        child_main(ctl[0], rep[1]);
    }
    close(ctl[0]);
    close(rep[1]);
    unsigned port = 0;
    assert_int_equal(read(rep[0], &port, sizeof port), (ssize_t)sizeof port);

    enum { N = 30 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_connect(port, 0);
        assert_true(fds[i] >= 0); /* the kernel's backlog takes them */
    }
    sleep_ms(300);
    child_report r1 = ask(ctl[1], rep[0]);
    sleep_ms(1000);
    child_report r2 = ask(ctl[1], rep[0]);
    /* Out of descriptors, yet the loop rests: well under a tenth of a core over that second. */
    assert_true(r2.cpu_us - r1.cpu_us < 100000);
    assert_true(r2.descriptor_refusals >= 1);
    assert_true(r2.connections >= 1 && r2.connections < N);
    /* Waiting peers were accepted and closed rather than left to time out in the backlog. */
    int shed = 0;
    for (int i = 0; i < N; i++) {
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        char b;
        if (poll(&p, 1, 0) == 1 && recv(fds[i], &b, 1, MSG_DONTWAIT) <= 0)
            shed++;
    }
    assert_true(shed >= 1);

    /* Once the peers go, a new connection is served. */
    for (int i = 0; i < N; i++)
        close(fds[i]);
    long long t0 = now_ms();
    while (ask(ctl[1], rep[0]).connections > 0 && now_ms() - t0 < 3000)
        sleep_ms(50);
    tls_client *c = client_open(port, 0);
    assert_true(client_send_text(c, "GET /after HTTP/1.1\r\n\r\n"));
    char *resp = client_response(c);
    assert_non_null(resp);
    assert_non_null(strstr(resp, "HTTP/1.1 200 OK\r\n"));
    free(resp);
    client_close(c);

    assert_int_equal(write(ctl[1], "Q", 1), 1);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(ctl[1]);
    close(rep[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listener_refuses_over_caps_at_once),
        cmocka_unit_test(test_listener_out_of_descriptors_pauses_sheds_and_recovers),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
