/* Callbacks run without the client's lock: a callback may call the API itself, or wait for another
 * thread that does (the application's worker, its UI thread), without a deadlock; an ack that
 * overtakes on_desired is reported after it; a callback cannot re-enter iotdm_client_process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "fixture.h"

#define JOIN_WAIT_S 5

static iotdm_client *client;

/* Runs fn on another thread and waits for it: what a callback does when it hands work to a
 * thread of the application and needs the answer. False when the thread did not finish in time
 * (it is blocked on the client: the deadlock this file is about). */
static bool on_other_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fn, arg), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += JOIN_WAIT_S;
    if (pthread_timedjoin_np(t, NULL, &until) == 0)
        return true;
    pthread_detach(t);
    return false;
}

/* What another thread does with the client while a callback waits for it. */
static void *use_the_api(void *arg)
{
    (void)arg;
    iotdm_outbox_stats st;
    iotdm_client_outbox_stats(client, &st);
    IOTDM_IGNORE(iotdm_client_connection_state(client)); /* only that it returns matters */
    if (iotdm_twin_report(client, "{\"fromThread\":1}") != IOTDM_OK ||
        iotdm_telemetry_send(client, "{}", 2, NULL, 0, NULL) != IOTDM_OK)
        return (void *)1;
    char *copy = iotdm_twin_desired_copy(client);
    iotdm_free(copy);
    return NULL;
}

static atomic_int waited_ok;

static void desired_waits_for_a_thread(void *ctx, const char *value_json, int64_t version,
                                       iotdm_ack *ack)
{
    (void)ctx;
    (void)value_json;
    (void)version;
    atomic_fetch_add(&waited_ok, on_other_thread(use_the_api, NULL));
    ack->code = 200;
}

static int method_waits_for_a_thread(void *ctx, const char *name, const char *payload,
                                     char **out_json)
{
    (void)ctx;
    (void)name;
    (void)payload;
    (void)out_json;
    atomic_fetch_add(&waited_ok, on_other_thread(use_the_api, NULL));
    return 200;
}

static void c2d_waits_for_a_thread(void *ctx, const void *body, size_t len,
                                   const iotdm_property *props, size_t nprops)
{
    (void)ctx;
    (void)body;
    (void)len;
    (void)props;
    (void)nprops;
    atomic_fetch_add(&waited_ok, on_other_thread(use_the_api, NULL));
}

static void app_desired_waits_for_a_thread(void *ctx, const char *json, int64_t version, bool full)
{
    (void)ctx;
    (void)json;
    (void)version;
    (void)full;
    atomic_fetch_add(&waited_ok, on_other_thread(use_the_api, NULL));
}

static char *read_state_waits_for_a_thread(void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&waited_ok, on_other_thread(use_the_api, NULL));
    return strdup("{\"ok\":true}");
}

static void test_callbacks_waiting_for_other_threads_do_not_deadlock(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    client = fixture_client(dir);
    iotdm_property_handler h;
    iotdm_property_handler_init(&h);
    h.component = "oem";
    h.property = "setting";
    h.on_desired = desired_waits_for_a_thread;
    h.read_state = read_state_waits_for_a_thread;
    assert_int_equal(iotdm_handler_add(client, &h), IOTDM_OK);
    assert_int_equal(iotdm_twin_on_desired(client, app_desired_waits_for_a_thread, NULL), IOTDM_OK);
    assert_int_equal(iotdm_method_register(client, "work", method_waits_for_a_thread, NULL),
                     IOTDM_OK);
    assert_int_equal(iotdm_c2d_on_message(client, c2d_waits_for_a_thread, NULL), IOTDM_OK);
    atomic_store(&waited_ok, 0);

    /* A full document: the handler, then the application's own desired callback. */
    json_t *doc = json_loads("{\"oem\":{\"setting\":1},\"appOwn\":2}", 0, NULL);
    fixture_enter(client);
    twin_apply_full(client, doc, 3);
    json_decref(doc);
    /* A direct method and a cloud-to-device message, as the connection delivers them. */
    az_hub_topic m = {.kind = AZ_HUB_METHOD_REQUEST, .method_name = {"work", 4}, .rid = {"7", 1}};
    methods_dispatch(client, &m, "{}", 2);
    az_hub_topic d = {.kind = AZ_HUB_C2D, .device_id = {"dev1", 4}};
    c2d_dispatch(client, &d, "hi", 2);
    fixture_leave(client);
    /* reportAll from a thread that is not running callbacks */
    assert_int_equal(iotdm_report_all(client), IOTDM_OK);
    assert_int_equal(atomic_load(&waited_ok), 5);
    iotdm_client_free(client);
    fixture_rmdir(dir);
}

/* A worker that finishes before on_desired has even returned: its final ack must not be
 * overwritten by the 202 on_desired gives. */
static void *ack_done(void *arg)
{
    (void)arg;
    iotdm_ack done = {200, "done", "{\"state\":\"done\"}"};
    return iotdm_report_ack(client, "oem", "slow", 5, &done) == IOTDM_OK ? NULL : (void *)1;
}

static void desired_overtaken_by_its_worker(void *ctx, const char *value_json, int64_t version,
                                            iotdm_ack *ack)
{
    (void)ctx;
    (void)value_json;
    (void)version;
    atomic_fetch_add(&waited_ok, on_other_thread(ack_done, NULL));
    ack->code = 202;
    ack->description = "working";
}

static void test_ack_that_overtakes_on_desired_is_reported_after_it(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    client = fixture_client(dir);
    iotdm_property_handler h;
    iotdm_property_handler_init(&h);
    h.component = "oem";
    h.property = "slow";
    h.on_desired = desired_overtaken_by_its_worker;
    assert_int_equal(iotdm_handler_add(client, &h), IOTDM_OK);
    atomic_store(&waited_ok, 0);
    json_t *doc = json_loads("{\"oem\":{\"slow\":\"go\"}}", 0, NULL);
    fixture_enter(client);
    twin_apply_full(client, doc, 5);
    fixture_leave(client);
    json_decref(doc);
    assert_int_equal(atomic_load(&waited_ok), 1);
    json_t *first = fixture_pop_reported(client), *second = fixture_pop_reported(client);
    json_t *a1 = json_object_get(json_object_get(first, "oem"), "slow");
    json_t *a2 = json_object_get(json_object_get(second, "oem"), "slow");
    assert_int_equal(json_integer_value(json_object_get(a1, "ac")), 202);
    assert_int_equal(json_integer_value(json_object_get(a2, "ac")), 200);
    assert_int_equal(json_integer_value(json_object_get(a2, "av")), 5);
    json_decref(first);
    json_decref(second);
    /* and the applied record ends at 200: a later ack without a version answers $version 5 */
    iotdm_ack again = {200, "still done", NULL};
    assert_int_equal(iotdm_report_ack(client, "oem", "slow", -1, &again), IOTDM_OK);
    json_t *third = fixture_pop_reported(client);
    json_t *a3 = json_object_get(json_object_get(third, "oem"), "slow");
    assert_int_equal(json_integer_value(json_object_get(a3, "av")), 5);
    assert_string_equal(json_string_value(json_object_get(a3, "value")), "go");
    json_decref(third);
    iotdm_client_free(client);
    fixture_rmdir(dir);
}

static atomic_int process_result;

static void desired_calls_process(void *ctx, const char *value_json, int64_t version,
                                  iotdm_ack *ack)
{
    (void)ctx;
    (void)value_json;
    (void)version;
    atomic_store(&process_result, iotdm_client_process(client));
    ack->code = 200;
}

static void test_process_from_a_callback_is_refused(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    client = fixture_client(dir);
    iotdm_property_handler h;
    iotdm_property_handler_init(&h);
    h.component = "oem";
    h.property = "p";
    h.on_desired = desired_calls_process;
    assert_int_equal(iotdm_handler_add(client, &h), IOTDM_OK);
    json_t *doc = json_loads("{\"oem\":{\"p\":1}}", 0, NULL);
    fixture_enter(client);
    twin_apply_full(client, doc, 1);
    fixture_leave(client);
    json_decref(doc);
    assert_int_equal(atomic_load(&process_result), -EDEADLK);
    iotdm_client_free(client);
    fixture_rmdir(dir);
}

/* The log callback is the application's too: it may call the API (here, from the thread holding
 * the lock when the line was made). */
static atomic_int log_lines;

static void log_calls_the_api(void *ctx, iotdm_log_level level, const char *message)
{
    (void)ctx;
    (void)level;
    (void)message;
    iotdm_outbox_stats st;
    iotdm_client_outbox_stats(client, &st);
    atomic_fetch_add(&log_lines, 1);
}

static void test_log_callback_may_call_the_api(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    iotdm_client_config cfg;
    iotdm_client_config_init(&cfg);
    cfg.host = "hub.example.net";
    cfg.device_id = "dev1";
    cfg.device_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    cfg.state_dir = dir;
    cfg.log = log_calls_the_api;
    cfg.log_level = IOTDM_LOG_DEBUG;
    assert_int_equal(iotdm_client_new(&cfg, &client), IOTDM_OK);
    atomic_store(&log_lines, 0);
    /* refused under the lock, with a warning line */
    assert_int_equal(iotdm_twin_report(client, "{\"a.b\":1}"), IOTDM_E_MALFORMED);
    assert_true(atomic_load(&log_lines) >= 1);
    iotdm_client_free(client);
    fixture_rmdir(dir);
}

/* The client's own thread running (connection attempts against a closed port, callbacks and all)
 * while this thread uses the API: what TSan (make tsan) watches for races. */
static atomic_int connection_calls;

static void on_connection(void *ctx, iotdm_connection_state s, const char *reason)
{
    (void)ctx;
    (void)s;
    (void)reason;
    IOTDM_IGNORE(iotdm_twin_report(client, "{\"fromCallback\":1}")); /* queued or refused: fine */
    atomic_fetch_add(&connection_calls, 1);
}

static void test_own_thread_and_callers_side_by_side(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    iotdm_client_config cfg;
    iotdm_client_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = 1;
    cfg.device_id = "dev1";
    cfg.device_key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    cfg.state_dir = dir;
    cfg.backoff_max_s = 1;
    cfg.on_connection = on_connection;
    assert_int_equal(iotdm_client_new(&cfg, &client), IOTDM_OK);
    atomic_store(&connection_calls, 0);
    assert_int_equal(iotdm_client_start(client), IOTDM_OK);
    int64_t start = client_mono_ms();
    while (client_mono_ms() - start < 1500) {
        assert_null(use_the_api(NULL));
        assert_int_equal(iotdm_report_all(client), IOTDM_OK);
        poll(NULL, 0, 5);
    }
    iotdm_client_stop(client);
    assert_true(atomic_load(&connection_calls) >= 2);
    iotdm_client_free(client);
    fixture_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_callbacks_waiting_for_other_threads_do_not_deadlock),
        cmocka_unit_test(test_ack_that_overtakes_on_desired_is_reported_after_it),
        cmocka_unit_test(test_process_from_a_callback_is_refused),
        cmocka_unit_test(test_log_callback_may_call_the_api),
        cmocka_unit_test(test_own_thread_and_callers_side_by_side),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
