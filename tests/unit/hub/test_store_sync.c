/* The SQLite backend's durability path: hub_store_durable, called on another thread while the
 * writer commits (as the executor's syncer does), makes committed groups durable and takes the
 * checkpoints off the writer. */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#include "store_fixture.h"

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* About 1 MiB of telemetry in one group, committed without waiting for the disk. */
static void write_megabyte(hub_store *s)
{
    static unsigned char body[16 * 1024];
    memset(body, 'x', sizeof body);
    for (int i = 0; i < 64; i++) {
        hub_telemetry t = {.enqueued_ms = 1, .body = body, .body_len = sizeof body};
        snprintf(t.device_id, sizeof t.device_id, "d");
        t.system_json = t.properties_json = "{}";
        t.system_json_len = t.properties_json_len = 2;
        assert_int_equal(hub_store_telemetry_append(s, &t), IOTDM_OK);
    }
    assert_int_equal(hub_store_group_commit(s), IOTDM_OK);
}

typedef struct {
    hub_store *s;
    atomic_bool stop;
    atomic_int syncs;
    atomic_int failures;
} syncer;

static void *sync_loop(void *arg)
{
    syncer *sy = arg;
    while (!atomic_load(&sy->stop)) {
        if (hub_store_durable(sy->s) != IOTDM_OK)
            atomic_fetch_add(&sy->failures, 1);
        atomic_fetch_add(&sy->syncs, 1);
    }
    return NULL;
}

/* The writer commits while another thread syncs and checkpoints: neither fails, and the database
 * file grows only through the checkpoints (the writer never checkpoints itself). */
static void test_durable_on_another_thread_checkpoints_a_large_wal(void **state)
{
    SQLITE_ONLY(); /* reads SQLite's own state */
    fixture *f = *state;
    off_t db_before = file_size(f->path);
    syncer sy = {.s = f->s};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, sync_loop, &sy), 0);
    for (int i = 0; i < 24; i++)
        write_megabyte(f->s);
    atomic_store(&sy.stop, true);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&sy.failures), 0);
    assert_true(atomic_load(&sy.syncs) > 0);
    /* A last sync covers what was committed after the thread's last one. */
    assert_int_equal(hub_store_durable(f->s), IOTDM_OK);
    assert_true(file_size(f->path) > db_before + 8 * 1024 * 1024);
    assert_int_equal(hub_store_telemetry_last_seq(f->s), 24 * 64);
}

static void test_writer_alone_never_checkpoints(void **state)
{
    SQLITE_ONLY(); /* reads SQLite's own state */
    fixture *f = *state;
    off_t db_before = file_size(f->path);
    for (int i = 0; i < 20; i++)
        write_megabyte(f->s);
    assert_int_equal(file_size(f->path), db_before);
}

static void test_committed_and_durable_survives_reopen(void **state)
{
    fixture *f = *state;
    write_megabyte(f->s);
    assert_int_equal(hub_store_durable(f->s), IOTDM_OK);
    hub_store_close(f->s);
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    assert_int_equal(hub_store_telemetry_last_seq(f->s), 64);
}

/* A reader handle sees what was committed, not what is still in the open group. */
static void test_reader_sees_committed_state_only(void **state)
{
    fixture *f = *state;
    hub_store *reader = NULL;
    assert_int_equal(hub_store_open_reader(f->s, &reader), IOTDM_OK);
    write_megabyte(f->s);
    assert_int_equal(hub_store_telemetry_last_seq(reader), 64);
    static unsigned char body[8];
    hub_telemetry t = {.enqueued_ms = 1, .body = body, .body_len = sizeof body};
    snprintf(t.device_id, sizeof t.device_id, "d");
    t.system_json = t.properties_json = "{}";
    t.system_json_len = t.properties_json_len = 2;
    assert_int_equal(hub_store_telemetry_append(f->s, &t), IOTDM_OK);
    assert_int_equal(hub_store_telemetry_last_seq(reader), 64);
    assert_int_equal(hub_store_group_commit(f->s), IOTDM_OK);
    assert_int_equal(hub_store_telemetry_last_seq(reader), 65);
    hub_device d = {0};
    snprintf(d.device_id, sizeof d.device_id, "x");
    assert_true(hub_store_device_create(reader, &d) < 0); /* a reader never writes */
    hub_store_close(reader);
}

/* A unit's writes are undone alone when it fails; the group's other units stay. */
static void test_unit_failure_undoes_only_that_unit(void **state)
{
    fixture *f = *state;
    hub_device a = {0}, b = {0};
    snprintf(a.device_id, sizeof a.device_id, "a");
    snprintf(b.device_id, sizeof b.device_id, "b");
    a.enabled = b.enabled = true;
    assert_int_equal(hub_store_unit_begin(f->s), IOTDM_OK);
    assert_int_equal(hub_store_device_create(f->s, &a), IOTDM_OK);
    assert_int_equal(hub_store_unit_end(f->s, IOTDM_OK), IOTDM_OK);
    assert_int_equal(hub_store_unit_begin(f->s), IOTDM_OK);
    assert_int_equal(hub_store_device_create(f->s, &b), IOTDM_OK);
    assert_int_equal(hub_store_unit_end(f->s, IOTDM_E_PRECONDITION), IOTDM_E_PRECONDITION);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    hub_device got;
    assert_int_equal(hub_store_device_get(f->s, "a", &got), IOTDM_OK);
    assert_int_equal(hub_store_device_get(f->s, "b", &got), IOTDM_E_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_durable_on_another_thread_checkpoints_a_large_wal,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_alone_never_checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_committed_and_durable_survives_reopen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reader_sees_committed_state_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unit_failure_undoes_only_that_unit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
