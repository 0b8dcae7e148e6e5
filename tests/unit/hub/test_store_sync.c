/* The store's durability path: hub_store_commit syncs inline; the sync worker answers requests
 * through its eventfd and takes the checkpoints off the committing thread. */
#include <poll.h>
#include <sys/stat.h>

#include "store_fixture.h"

static void wait_notified(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 10000), 1);
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* About 1 MiB of telemetry in one transaction, committed without waiting for the disk. */
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
    assert_int_equal(hub_store_commit_nosync(s), IOTDM_OK);
}

static void test_worker_answers_each_request_once(void **state)
{
    fixture *f = *state;
    int fd = -1;
    assert_int_equal(hub_store_syncer_start(f->s, &fd), IOTDM_OK);
    assert_true(fd >= 0);
    assert_int_equal(hub_store_syncer_collect(f->s), -EAGAIN); /* nothing asked yet */
    for (int round = 0; round < 3; round++) {
        write_megabyte(f->s);
        hub_store_syncer_request(f->s);
        wait_notified(fd);
        assert_int_equal(hub_store_syncer_collect(f->s), IOTDM_OK);
        assert_int_equal(hub_store_syncer_collect(f->s), -EAGAIN);
    }
    /* A request still pending at stop is finished or dropped, never left hanging. */
    hub_store_syncer_request(f->s);
    hub_store_syncer_stop(f->s);
}

static void test_worker_checkpoints_a_large_wal(void **state)
{
    fixture *f = *state;
    int fd = -1;
    assert_int_equal(hub_store_syncer_start(f->s, &fd), IOTDM_OK);
    off_t db_before = file_size(f->path);
    /* With the worker running the committing connection never checkpoints, so the database file
     * only grows when the worker copies the WAL into it (beyond 16 MiB of WAL). */
    for (int i = 0; i < 20; i++)
        write_megabyte(f->s);
    assert_int_equal(file_size(f->path), db_before);
    hub_store_syncer_request(f->s);
    wait_notified(fd);
    assert_int_equal(hub_store_syncer_collect(f->s), IOTDM_OK);
    assert_true(file_size(f->path) > db_before + 16 * 1024 * 1024);
    /* Everything is still there, read through the committing connection. */
    assert_int_equal(hub_store_telemetry_last_seq(f->s), 20 * 64);
    hub_store_syncer_stop(f->s);
}

static void test_commit_without_worker_is_durable_and_reopens(void **state)
{
    fixture *f = *state;
    write_megabyte(f->s);
    assert_int_equal(hub_store_sync(f->s), IOTDM_OK);
    hub_store_close(f->s);
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    assert_int_equal(hub_store_telemetry_last_seq(f->s), 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_worker_answers_each_request_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_checkpoints_a_large_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_without_worker_is_durable_and_reopens, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
