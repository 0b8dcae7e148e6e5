/* certificates on the worker: on_desired answers 202 while the download still runs (the thread
 * serving the hub is not held), the worker acknowledges the outcome for the same $version, and a
 * stop in the middle leaves the value to the next start. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>

#include "cap_fixture.h"

#define THUMBPRINT "0123456789ABCDEF0123456789ABCDEF01234567"
/* The desired document: one root certificate to install. */
static const char desired_doc[] =
    "{\"dm\":{\"__t\":\"c\",\"certificates\":{\"root\":{\"" THUMBPRINT
    "\":{\"state\":\"installed\",\"url\":\"https://files/root.pem\",\"sha256\":\"00\"}}}}}";

/* A download that waits until the test opens the gate (or the worker is stopped). */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open, cancelled;
    int started;
} gate;

static gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false, 0};

static iotdm_result gated_download(void *ctx, const char *url, const char *sha256_hex,
                                   size_t max_bytes, int *out_fd, char *err, size_t err_cap)
{
    (void)ctx;
    (void)url;
    (void)sha256_hex;
    (void)max_bytes;
    pthread_mutex_lock(&g.mu);
    g.started++;
    pthread_cond_broadcast(&g.cv);
    while (!g.open && !g.cancelled)
        pthread_cond_wait(&g.cv, &g.mu);
    bool cancelled = g.cancelled;
    pthread_mutex_unlock(&g.mu);
    if (cancelled) {
        snprintf(err, err_cap, "cancelled");
        return -ECANCELED;
    }
    *out_fd = memfd_create("cert", MFD_CLOEXEC);
    return *out_fd >= 0 ? IOTDM_OK : -errno;
}

static void gate_reset(void)
{
    pthread_mutex_lock(&g.mu);
    g.open = g.cancelled = false;
    g.started = 0;
    pthread_mutex_unlock(&g.mu);
}

static void gate_set(bool open, bool cancelled)
{
    pthread_mutex_lock(&g.mu);
    g.open |= open;
    g.cancelled |= cancelled;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
}

static void cancel_downloads(void *ctx)
{
    (void)ctx;
    gate_set(false, true);
}

static void wait_download_started(void)
{
    pthread_mutex_lock(&g.mu);
    while (g.started == 0)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
}

/* The next acknowledgement of dm.certificates that is not 202, waiting up to 10 s for it. */
static json_t *final_ack(cap_fixture *f)
{
    for (int i = 0; i < 1000; i++) {
        json_t *ack = cap_fixture_next_ack(f, "certificates");
        if (ack && json_integer_value(json_object_get(ack, "ac")) != 202)
            return ack;
        json_decref(ack);
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return NULL;
}

static const fake_op worker_ops[] = {
    {"certs.list", IOTDM_OK, "{\"root\":{}}", NULL},
    {"certs.install", IOTDM_OK, NULL, NULL},
};

/* A new agent process: a new client on the same state directory. */
static void restart_client(cap_fixture *f)
{
    iotdm_client_free(f->client);
    f->client = fixture_client(f->dir);
    assert_non_null(f->client);
    f->env.client = f->client;
}

static void setup_env(cap_fixture *f, fake_configd *worker_configd)
{
    cap_fixture_init(f, NULL, 0);
    memset(worker_configd, 0, sizeof *worker_configd);
    worker_configd->ops = worker_ops;
    worker_configd->nops = sizeof worker_ops / sizeof *worker_ops;
    f->env.configd_worker_ctx = worker_configd;
    f->env.download = gated_download;
    gate_reset();
    assert_int_equal(cap_worker_start(&f->env.worker), IOTDM_OK);
}

static void test_certificates_answer_202_at_once_and_the_outcome_later(void **state)
{
    (void)state;
    cap_fixture f;
    fake_configd worker_configd;
    setup_env(&f, &worker_configd);
    void *cc = NULL;
    assert_int_equal(cap_certificates_start(&f.env, &cc), IOTDM_OK);

    /* Returns while the download is held: the connection's thread is free. */
    cap_fixture_desired(&f, desired_doc, 6);
    json_t *ack = cap_fixture_next_ack(&f, "certificates");
    assert_non_null(ack);
    assert_int_equal(json_integer_value(json_object_get(ack, "ac")), 202);
    assert_int_equal(json_integer_value(json_object_get(ack, "av")), 6);
    assert_string_equal(json_string_value(json_object_get(ack, "value")), "applying");
    json_decref(ack);
    wait_download_started();
    assert_int_equal(f.configd.ncalls, 0); /* the worker used its own configd line */

    gate_set(true, false);
    ack = final_ack(&f);
    assert_non_null(ack);
    assert_int_equal(json_integer_value(json_object_get(ack, "ac")), 200);
    assert_int_equal(json_integer_value(json_object_get(ack, "av")), 6);
    assert_non_null(strstr(json_string_value(json_object_get(ack, "ad")), "1 changed"));
    json_decref(ack);
    assert_string_equal(worker_configd.calls[1], "certs.install");

    cap_worker_stop(f.env.worker, cancel_downloads, NULL);
    cap_certificates_stop(cc);
    cap_fixture_deinit(&f);
}

/* Stopped in the middle of the download: no outcome is made up, and the next start applies the
 * value and acknowledges it (the twin's full read would skip it: it was acknowledged 202). */
static void test_certificates_interrupted_by_a_stop_resume_at_the_next_start(void **state)
{
    (void)state;
    cap_fixture f;
    fake_configd worker_configd;
    setup_env(&f, &worker_configd);
    void *cc = NULL;
    assert_int_equal(cap_certificates_start(&f.env, &cc), IOTDM_OK);
    cap_fixture_desired(&f, desired_doc, 8);
    json_decref(cap_fixture_next_ack(&f, "certificates")); /* the 202 */
    wait_download_started();
    cap_worker_stop(f.env.worker, cancel_downloads, NULL);
    assert_null(cap_fixture_next_ack(&f, "certificates"));
    cap_certificates_stop(cc);
    json_t *saved = cap_state_load(&f.env, "certificates-pending");
    assert_int_equal(json_integer_value(json_object_get(saved, "version")), 8);
    json_decref(saved);

    /* The next start, with a download that works at once. */
    restart_client(&f);
    gate_reset();
    gate_set(true, false);
    assert_int_equal(cap_worker_start(&f.env.worker), IOTDM_OK);
    assert_int_equal(cap_certificates_start(&f.env, &cc), IOTDM_OK);
    json_t *ack = final_ack(&f);
    assert_non_null(ack);
    assert_int_equal(json_integer_value(json_object_get(ack, "ac")), 200);
    assert_int_equal(json_integer_value(json_object_get(ack, "av")), 8);
    json_decref(ack);
    cap_worker_stop(f.env.worker, cancel_downloads, NULL);
    cap_certificates_stop(cc);

    /* Done: nothing is left for a third start. */
    json_t *left = cap_state_load(&f.env, "certificates-pending");
    assert_int_equal(json_object_size(left), 0);
    json_decref(left);
    cap_fixture_deinit(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_certificates_answer_202_at_once_and_the_outcome_later),
        cmocka_unit_test(test_certificates_interrupted_by_a_stop_resume_at_the_next_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
