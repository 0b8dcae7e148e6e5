/* Host-loop integration and the client's own thread, against a port where nothing listens: the
 * descriptor stays the same, the first process() tries at once, retries wait for the back-off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <stdatomic.h>

#include "fixture.h"

/* Written by the client's thread in the second test, read by the test's: the count is atomic and
 * published after the entry it counts. */
static int states[64];
static atomic_int nstates;

static void on_connection(void *ctx, iotdm_connection_state state, const char *reason)
{
    (void)ctx;
    (void)reason;
    int n = atomic_load(&nstates);
    if (n < 64) {
        states[n] = (int)state;
        atomic_store(&nstates, n + 1);
    }
}

static iotdm_client *closed_port_client(const char *dir)
{
    iotdm_client_config cfg = {
        .struct_size = sizeof(iotdm_client_config),
        .host = "127.0.0.1",
        .port = 1, /* nothing listens: every attempt fails fast */
        .device_id = "dev1",
        .device_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        .state_dir = dir,
        .backoff_max_s = 2,
        .on_connection = on_connection,
    };
    iotdm_client *c = NULL;
    assert_int_equal(iotdm_client_new(&cfg, &c), IOTDM_OK);
    atomic_store(&nstates, 0);
    return c;
}

static bool readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, ms) == 1;
}

static void test_host_loop_fd_timeout_and_backoff(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    iotdm_client *c = closed_port_client(dir);
    int fd = iotdm_client_fd(c);
    assert_true(fd >= 0);
    assert_true(readable(fd, 0)); /* the first process() is due at once */
    assert_int_equal(iotdm_client_next_timeout_ms(c), 0);
    int64_t start = client_mono_ms();
    while (client_mono_ms() - start < 4000) {
        int t = iotdm_client_next_timeout_ms(c);
        assert_true(t >= 0 && t <= 2000); /* never more than backoff_max_s */
        readable(fd, t);
        assert_int_equal(iotdm_client_process(c), IOTDM_OK);
        assert_int_equal(iotdm_client_fd(c), fd);
    }
    assert_true(nstates >= 2);
    assert_int_equal(states[0], IOTDM_CONNECTION_CONNECTING);
    int attempts = 0;
    for (int i = 0; i < nstates; i++)
        attempts += states[i] == IOTDM_CONNECTION_CONNECTING;
    /* full jitter below 1, 2, 2, ... seconds: a few attempts in 4 s, not a hot loop */
    assert_true(attempts >= 2 && attempts < 40);
    iotdm_connection_state now = iotdm_client_connection_state(c);
    assert_true(now == IOTDM_CONNECTION_DISCONNECTED || now == IOTDM_CONNECTION_CONNECTING);
    /* queued work waits in the outbox meanwhile */
    assert_int_equal(iotdm_twin_report(c, "{\"a\":1}"), IOTDM_OK);
    iotdm_outbox_stats s;
    iotdm_client_outbox_stats(c, &s);
    assert_int_equal(s.reported_pending, 1);
    assert_true(readable(fd, 0)); /* the report woke the loop */
    iotdm_client_free(c);
    fixture_rmdir(dir);
}

static void test_own_thread_starts_and_stops(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    iotdm_client *c = closed_port_client(dir);
    assert_int_equal(iotdm_client_start(c), IOTDM_OK);
    assert_int_equal(iotdm_client_start(c), IOTDM_E_EXISTS);
    int64_t start = client_mono_ms();
    while (client_mono_ms() - start < 2000 &&
           iotdm_client_connection_state(c) == IOTDM_CONNECTION_DISCONNECTED && nstates == 0)
        poll(NULL, 0, 10);
    assert_true(nstates >= 1);
    iotdm_client_stop(c);
    iotdm_client_stop(c);
    iotdm_client_free(c); /* free also stops a running thread; here it is already stopped */
    fixture_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_loop_fd_timeout_and_backoff),
        cmocka_unit_test(test_own_thread_starts_and_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
