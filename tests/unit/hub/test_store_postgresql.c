/* Unit tests of what only the PostgreSQL store has: its schema version, how an SQL error inside a
 * unit is undone without losing the group, and queries answered from the GIN indexes. The
 * contract the backends share is tested by the other store tests, which CTest runs on both. Run
 * without a server (IOTDM_TEST_PG_DIR unset), every test here skips. */
#include "store_fixture.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "hub/cluster/cluster.h"
#include "hub/hub.h"
#include "hub/query/query.h"
#include "hub/store/postgresql/pg_internal.h"

static int64_t pg_now_ms_for_test(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define PG_ONLY()                                                                                  \
    do {                                                                                           \
        if (!on_pg())                                                                              \
            skip();                                                                                \
    } while (0)

static bool exists(hub_store *s, const char *id)
{
    hub_device d;
    return hub_store_device_get(s, id, &d) == IOTDM_OK;
}

static void test_pg_refuses_a_newer_schema(void **state)
{
    PG_ONLY();
    fixture *f = *state;
    hub_store_close(f->s);
    f->s = NULL;
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE %s.iotdm_schema SET version = 99", f->pg_schema);
    assert_true(pg_admin(f->pg_base, sql));
    hub_store *s = NULL;
    assert_int_equal(hub_store_open(f->path, &s), IOTDM_E_UNSUPPORTED);
    assert_null(s);
    snprintf(sql, sizeof sql, "UPDATE %s.iotdm_schema SET version = 1", f->pg_schema);
    assert_true(pg_admin(f->pg_base, sql));
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
}

static void test_pg_reopening_keeps_the_data(void **state)
{
    PG_ONLY();
    fixture *f = *state;
    create(f->s, "kept");
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    hub_store_close(f->s);
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    assert_true(exists(f->s, "kept"));
}

/* A unit whose statement fails (here: bytes PostgreSQL refuses as UTF-8) is undone alone; the
 * units before and after it commit with the group. */
static void test_pg_a_failed_unit_is_undone_and_the_group_goes_on(void **state)
{
    PG_ONLY();
    fixture *f = *state;
    assert_int_equal(hub_store_unit_begin(f->s), IOTDM_OK);
    create(f->s, "before");
    assert_int_equal(hub_store_unit_end(f->s, IOTDM_OK), IOTDM_OK);

    assert_int_equal(hub_store_unit_begin(f->s), IOTDM_OK);
    create(f->s, "undone");
    hub_device bad = make_device("bad\xff");
    iotdm_result r = hub_store_device_create(f->s, &bad);
    assert_int_equal(r, IOTDM_E_STORAGE);
    assert_int_equal(hub_store_unit_end(f->s, r), IOTDM_E_STORAGE);

    /* A unit that goes on after a failed statement is failed at its end all the same. */
    assert_int_equal(hub_store_unit_begin(f->s), IOTDM_OK);
    create(f->s, "swallowed");
    assert_int_equal(hub_store_device_create(f->s, &bad), IOTDM_E_STORAGE);
    assert_int_equal(hub_store_unit_end(f->s, IOTDM_OK), IOTDM_E_STORAGE);

    assert_int_equal(hub_store_unit_begin(f->s), IOTDM_OK);
    create(f->s, "after");
    assert_int_equal(hub_store_unit_end(f->s, IOTDM_OK), IOTDM_OK);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);

    hub_store *reader = NULL;
    assert_int_equal(hub_store_open_reader(f->s, &reader), IOTDM_OK);
    assert_true(exists(reader, "before"));
    assert_true(exists(reader, "after"));
    assert_false(exists(reader, "undone"));
    assert_false(exists(reader, "swallowed"));
    hub_store_close(reader);
}

/* Expected outcomes are counts, not SQL errors: they leave the group usable without a unit. */
static void test_pg_expected_refusals_leave_the_group_usable(void **state)
{
    PG_ONLY();
    fixture *f = *state;
    create(f->s, "dup");
    hub_device d = make_device("dup");
    assert_int_equal(hub_store_device_create(f->s, &d), IOTDM_E_EXISTS);
    hub_c2d m = {0};
    snprintf(m.device_id, sizeof m.device_id, "nobody");
    assert_int_equal(hub_store_c2d_enqueue(f->s, &m, 50), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_session_put(f->s, "nobody", 1), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_device_delete(f->s, "dup", 99), IOTDM_E_PRECONDITION);
    create(f->s, "next");
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_true(exists(f->s, "dup"));
    assert_true(exists(f->s, "next"));
}

static void plan_of(fixture *f, const char *where, char *out, size_t cap)
{
    hub_query *q = NULL;
    assert_int_equal(hub_query_parse_condition(where, strlen(where), &q, NULL, 0), IOTDM_OK);
    assert_int_equal(hub_store_postgresql_explain(f->s, q, out, cap), IOTDM_OK);
    hub_query_free(q);
}

/* Equality on a tag or a reported property is answered from the section's GIN index. */
static void test_pg_twin_equality_uses_the_gin_indexes(void **state)
{
    PG_ONLY();
    fixture *f = *state;
    enum { N = 3000 };
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof id, "dev-%05d", i);
        create(f->s, id);
        hub_twin t = {0};
        assert_int_equal(hub_store_twin_get(f->s, id, &t), IOTDM_OK);
        json_object_set_new(t.tags, "site", json_sprintf("site-%d", i % 500));
        json_object_set_new(t.reported, "fw", json_sprintf("1.%d", i % 300));
        t.version++;
        t.etag++;
        assert_int_equal(hub_store_twin_put(f->s, id, &t), IOTDM_OK);
        hub_twin_deinit(&t);
    }
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    char sql[128];
    snprintf(sql, sizeof sql, "ANALYZE %s.twins", f->pg_schema);
    assert_true(pg_admin(f->pg_base, sql));

    char plan[4096];
    plan_of(f, "tags.site = 'site-7'", plan, sizeof plan);
    if (!strstr(plan, "twins_tags"))
        fail_msg("tag equality does not use twins_tags:\n%s", plan);
    plan_of(f, "properties.reported.fw = '1.5'", plan, sizeof plan);
    if (!strstr(plan, "twins_reported"))
        fail_msg("reported equality does not use twins_reported:\n%s", plan);
    plan_of(f, "deviceId = 'dev-00042'", plan, sizeof plan);
    if (!strstr(plan, "devices_pkey"))
        fail_msg("deviceId equality does not use the primary key:\n%s", plan);
    plan_of(f, "NOT (tags.site = 'x')", plan, sizeof plan);
    assert_string_equal(plan, ""); /* nothing compiled: every twin is a candidate */
    plan_of(f, "status = 'sleeping'", plan, sizeof plan);
    assert_string_equal(plan, "none");
}

/* COUNT(*) of telemetry_h<hour> (what), or of pg_class rows naming it (exists), in the test's
 * schema. */
static int64_t partition_count(fixture *f, const char *what, long long hour)
{
    char q[300];
    if (strcmp(what, "exists") == 0)
        snprintf(q, sizeof q,
                 "SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                 "WHERE n.nspname = '%s' AND c.relname = 'telemetry_h%lld'",
                 f->pg_schema, hour);
    else
        snprintf(q, sizeof q, "SELECT COUNT(*) FROM %s.telemetry_h%lld", f->pg_schema, hour);
    PGconn *c = PQconnectdb(f->pg_base);
    PGresult *r = PQexec(c, q);
    int64_t v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                    ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
                    : -1;
    PQclear(r);
    PQfinish(c);
    return v;
}

static void tel(fixture *f, int64_t when)
{
    hub_telemetry t = {0};
    snprintf(t.device_id, sizeof t.device_id, "dev");
    t.enqueued_ms = when;
    t.body = (unsigned char *)"x";
    t.body_len = 1;
    t.properties = json_object();
    t.system_properties = json_object();
    assert_int_equal(hub_store_telemetry_append(f->s, &t), IOTDM_OK);
    json_decref(t.properties);
    json_decref(t.system_properties);
}

static bool count_tel(void *ctx, const hub_telemetry *m)
{
    (void)m;
    (*(int *)ctx)++;
    return true;
}

/* Telemetry lives in hourly partitions; retention drops a partition whole once its hour is over
 * and everything in it must go, and deletes rows only where it must. */
static void test_pg_telemetry_partitions_are_dropped_whole(void **state)
{
    PG_ONLY();
    fixture *f = *state;
    const int64_t hour = 3600000;
    int64_t t0 = (pg_now_ms_for_test() / hour - 240) * hour; /* ten days ago, on the hour */
    long long h0 = (long long)(t0 / hour);
    /* A trim at t0 makes the partitions around it (nothing to delete yet). */
    assert_int_equal(hub_store_telemetry_trim(f->s, UINT64_MAX, 0, t0, SIZE_MAX, NULL), IOTDM_OK);
    for (int i = 0; i < 3; i++)
        tel(f, t0 + 1000 + i);
    tel(f, t0 + 2 * hour + 1);
    tel(f, t0 + 2 * hour + 2);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_int_equal(partition_count(f, "rows", h0), 3);
    assert_int_equal(partition_count(f, "rows", h0 + 2), 2);
    /* Three hours on, keep 90 minutes: hour 0 goes whole, hour 2 stays. */
    assert_int_equal(
        hub_store_telemetry_trim(f->s, UINT64_MAX, hour * 3 / 2, t0 + 3 * hour, SIZE_MAX, NULL),
        IOTDM_OK);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_int_equal(partition_count(f, "exists", h0), 0);
    assert_int_equal(partition_count(f, "exists", h0 + 2), 1);
    int n = 0;
    assert_int_equal(hub_store_telemetry_foreach(f->s, 0, 100, count_tel, &n), IOTDM_OK);
    assert_int_equal(n, 2);
}

/* An upload's bytes live with its record: read back by any node, gone with the record. */
static void test_pg_file_bytes_follow_their_record(void **state)
{
    PG_ONLY();
    fixture *f = *state;
    create(f->s, "up");
    hub_file file = {0};
    snprintf(file.correlation_id, sizeof file.correlation_id, "cid-1");
    snprintf(file.device_id, sizeof file.device_id, "up");
    snprintf(file.blob_name, sizeof file.blob_name, "up/a.bin");
    file.created_ms = file.updated_ms = 1000;
    assert_int_equal(hub_store_file_create(f->s, &file), IOTDM_OK);
    static const unsigned char bytes[] = {0, 1, 2, 255, 'x'};
    assert_int_equal(hub_store_file_bytes_put(f->s, "cid-1", bytes, sizeof bytes), IOTDM_OK);
    assert_int_equal(hub_store_file_bytes_put(f->s, "nobody", bytes, sizeof bytes),
                     IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    hub_store *reader = NULL;
    assert_int_equal(hub_store_open_reader(f->s, &reader), IOTDM_OK);
    unsigned char *got = NULL;
    size_t len = 0;
    assert_int_equal(hub_store_file_bytes_get(reader, "cid-1", &got, &len), IOTDM_OK);
    assert_int_equal(len, sizeof bytes);
    assert_memory_equal(got, bytes, sizeof bytes);
    free(got);
    assert_int_equal(hub_store_file_delete(f->s, "cid-1"), IOTDM_OK);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_int_equal(hub_store_file_bytes_get(reader, "cid-1", &got, &len), IOTDM_E_NOT_FOUND);
    hub_store_close(reader);
}

/* The writer's telemetry batch goes between units once it holds PG_TEL_BATCH_BYTES: a long
 * group of large messages does not pile up in memory until its commit. */
static void test_pg_telemetry_batch_is_bounded(void **state)
{
    PG_ONLY();
    fixture *f = *state;
    enum { BODY = 3 << 20, UNITS = 8 };
    unsigned char *body = calloc(1, BODY);
    for (int i = 0; i < UNITS; i++) {
        assert_int_equal(hub_store_unit_begin(f->s), IOTDM_OK);
        hub_telemetry t = {0};
        snprintf(t.device_id, sizeof t.device_id, "big");
        t.enqueued_ms = pg_now_ms_for_test();
        t.body = body;
        t.body_len = BODY;
        t.properties = json_object();
        t.system_properties = json_object();
        assert_int_equal(hub_store_telemetry_append(f->s, &t), IOTDM_OK);
        json_decref(t.properties);
        json_decref(t.system_properties);
        assert_int_equal(hub_store_unit_end(f->s, IOTDM_OK), IOTDM_OK);
        assert_true(((pg_store *)f->s)->tel.used <= PG_TEL_BATCH_BYTES + BODY + 1024);
    }
    free(body);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    int n = 0;
    assert_int_equal(hub_store_telemetry_foreach(f->s, 0, 100, count_tel, &n), IOTDM_OK);
    assert_int_equal(n, UNITS);
}

/* The cluster's bus queue is bounded in messages and bytes: a flood of large patches for devices
 * on other nodes, while the bus is away, is dropped and counted, not held. */
static void test_pg_cluster_bus_queue_is_bounded(void **state)
{
    PG_ONLY();
    fixture *f = *state;
    hub h;
    memset(&h, 0, sizeof h);
    hub_cluster *c = NULL;
    assert_int_equal(hub_cluster_open(&h, f->path, "test-node", &c), IOTDM_OK);
    enum { PATCH = 1 << 20, SENT = 100 };
    char *patch = malloc(PATCH);
    memset(patch, 'x', PATCH);
    for (int i = 0; i < SENT; i++)
        hub_cluster_notify_desired(c, "dev", patch, PATCH, i + 1);
    free(patch);
    size_t queued, bytes, dropped;
    hub_cluster_queue_stats(c, &queued, &bytes, &dropped);
    assert_true(bytes <= (64u << 20));
    assert_true(queued < SENT);
    assert_int_equal(queued + dropped, SENT);
    hub_cluster_close(c);
}

/* Two nodes' writers each hold a twin and then want the other's: PostgreSQL breaks the deadlock
 * by failing one of the two statements. That unit ends in IOTDM_E_CONFLICT (the executor then
 * commits what its group holds and runs the unit again, work.c), and once its group lets go, the
 * other writer goes on. */
typedef struct {
    hub_store *s;
    const char *id;
    iotdm_result r;
    atomic_bool done;
} lock_arg;

static void *lock_twin(void *arg)
{
    lock_arg *a = arg;
    hub_twin t;
    a->r = hub_store_twin_get(a->s, a->id, &t);
    if (a->r == IOTDM_OK)
        hub_twin_deinit(&t);
    atomic_store(&a->done, true);
    return NULL;
}

static void test_pg_a_deadlock_between_writers_fails_one_unit_as_a_conflict(void **state)
{
    PG_ONLY();
    fixture *f = *state;
    create(f->s, "dl-x");
    create(f->s, "dl-y");
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    hub_store *other = NULL;
    assert_int_equal(hub_store_open(f->path, &other), IOTDM_OK);
    hub_store *writers[2] = {f->s, other};
    const char *first[2] = {"dl-x", "dl-y"}, *then[2] = {"dl-y", "dl-x"};
    lock_arg args[2];
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        hub_twin t;
        assert_int_equal(hub_store_unit_begin(writers[i]), IOTDM_OK);
        assert_int_equal(hub_store_twin_get(writers[i], first[i], &t), IOTDM_OK);
        hub_twin_deinit(&t);
    }
    for (int i = 0; i < 2; i++) {
        args[i] = (lock_arg){.s = writers[i], .id = then[i]};
        atomic_init(&args[i].done, false);
        assert_int_equal(pthread_create(&threads[i], NULL, lock_twin, &args[i]), 0);
    }
    /* PostgreSQL looks for the cycle after deadlock_timeout (1 s by default). The failed
     * statement aborts its unit's subtransaction at once, which lets go of the lock taken in the
     * unit, so the other writer may be done by the time the victim is seen. */
    int victim = -1;
    for (int ms = 0; ms < 10000 && victim < 0; ms += 10) {
        for (int i = 0; i < 2 && victim < 0; i++)
            if (atomic_load(&args[i].done) && args[i].r != IOTDM_OK)
                victim = i;
        usleep(10 * 1000);
    }
    assert_true(victim >= 0);
    pthread_join(threads[victim], NULL);
    assert_int_equal(args[victim].r, IOTDM_E_CONFLICT);
    assert_int_equal(hub_store_unit_end(writers[victim], args[victim].r), IOTDM_E_CONFLICT);
    assert_int_equal(hub_store_commit(writers[victim]), IOTDM_OK);
    int survivor = 1 - victim;
    pthread_join(threads[survivor], NULL);
    assert_int_equal(args[survivor].r, IOTDM_OK);
    assert_int_equal(hub_store_unit_end(writers[survivor], IOTDM_OK), IOTDM_OK);
    assert_int_equal(hub_store_commit(writers[survivor]), IOTDM_OK);
    hub_store_close(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_pg_refuses_a_newer_schema),
        T(test_pg_reopening_keeps_the_data),
        T(test_pg_a_failed_unit_is_undone_and_the_group_goes_on),
        T(test_pg_expected_refusals_leave_the_group_usable),
        T(test_pg_twin_equality_uses_the_gin_indexes),
        T(test_pg_telemetry_partitions_are_dropped_whole),
        T(test_pg_file_bytes_follow_their_record),
        T(test_pg_telemetry_batch_is_bounded),
        T(test_pg_cluster_bus_queue_is_bounded),
        T(test_pg_a_deadlock_between_writers_fails_one_unit_as_a_conflict),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
