/* Unit tests for the SQLite hub store: cloud-to-device queues and the telemetry stream. */
#include "store_fixture.h"

static hub_c2d make_c2d(const char *device, const char *mid, int64_t enq, int64_t expiry)
{
    hub_c2d m;
    memset(&m, 0, sizeof(m));
    snprintf(m.device_id, sizeof(m.device_id), "%s", device);
    snprintf(m.message_id, sizeof(m.message_id), "%s", mid);
    m.enqueued_ms = enq;
    m.expiry_ms = expiry;
    return m;
}

typedef struct {
    size_t n;
    int64_t seqs[64];
    char mids[64][HUB_ID_MAX];
    int delivery[64];
    char body0[16];
    const char *prop0;
} c2d_log;

static bool log_c2d(void *ctx, const hub_c2d *m)
{
    c2d_log *v = ctx;
    if (v->n == 0) {
        snprintf(v->body0, sizeof(v->body0), "%.*s", (int)m->body_len, (const char *)m->body);
        json_t *to = json_object_get(m->properties, "$.to");
        v->prop0 = to ? "present" : "absent";
    }
    v->seqs[v->n] = m->seq;
    v->delivery[v->n] = m->delivery_count;
    snprintf(v->mids[v->n++], HUB_ID_MAX, "%s", m->message_id);
    return true;
}

static void test_store_c2d_queue_order_and_quota(void **state)
{
    fixture *f = *state;
    create(f->s, "dev1");
    hub_c2d m = make_c2d("dev1", "m0", 100, 0);
    m.properties = json_pack("{s:s}", "$.to", "/devices/dev1/messages/devicebound");
    m.body = (unsigned char *)"hello";
    m.body_len = 5;
    assert_int_equal(hub_store_c2d_enqueue(f->s, &m, 50), IOTDM_OK);
    json_decref(m.properties);
    int64_t prev = m.seq;
    for (int i = 1; i < 50; i++) {
        char mid[16];
        snprintf(mid, sizeof(mid), "m%d", i);
        hub_c2d n = make_c2d("dev1", mid, 100 + i, 0);
        assert_int_equal(hub_store_c2d_enqueue(f->s, &n, 50), IOTDM_OK);
        assert_true(n.seq > prev);
        prev = n.seq;
    }
    assert_int_equal(hub_store_c2d_count(f->s, "dev1"), 50);
    hub_c2d over = make_c2d("dev1", "m50", 200, 0);
    assert_int_equal(hub_store_c2d_enqueue(f->s, &over, 50), IOTDM_E_QUOTA);
    assert_int_equal(hub_store_c2d_count(f->s, "dev1"), 50);

    c2d_log v = {0};
    assert_int_equal(hub_store_c2d_foreach(f->s, "dev1", 0, log_c2d, &v), IOTDM_OK);
    assert_int_equal(v.n, 50);
    assert_string_equal(v.mids[0], "m0");
    assert_string_equal(v.mids[49], "m49");
    assert_string_equal(v.body0, "hello");
    assert_string_equal(v.prop0, "present");

    assert_int_equal(hub_store_c2d_mark_delivered(f->s, v.seqs[0]), IOTDM_OK);
    assert_int_equal(hub_store_c2d_mark_delivered(f->s, v.seqs[0]), IOTDM_OK);
    assert_int_equal(hub_store_c2d_complete(f->s, v.seqs[1]), IOTDM_OK);
    assert_int_equal(hub_store_c2d_complete(f->s, v.seqs[1]), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_c2d_mark_delivered(f->s, v.seqs[1]), IOTDM_E_NOT_FOUND);
    /* A slot is free again. */
    assert_int_equal(hub_store_c2d_enqueue(f->s, &over, 50), IOTDM_OK);
    assert_true(over.seq > prev);

    memset(&v, 0, sizeof(v));
    assert_int_equal(hub_store_c2d_foreach(f->s, "dev1", 0, log_c2d, &v), IOTDM_OK);
    assert_int_equal(v.n, 50);
    assert_int_equal(v.delivery[0], 2);
    assert_string_equal(v.mids[1], "m2");
    assert_string_equal(v.mids[49], "m50");

    size_t purged = 0;
    assert_int_equal(hub_store_c2d_purge(f->s, "dev1", &purged), IOTDM_OK);
    assert_int_equal(purged, 50);
    assert_int_equal(hub_store_c2d_count(f->s, "dev1"), 0);
    assert_int_equal(hub_store_c2d_purge(f->s, "ghost", &purged), IOTDM_E_NOT_FOUND);
    hub_c2d ghost = make_c2d("ghost", "g", 1, 0);
    assert_int_equal(hub_store_c2d_enqueue(f->s, &ghost, 50), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
}

static void test_store_c2d_expiry(void **state)
{
    fixture *f = *state;
    create(f->s, "dev1");
    hub_c2d a = make_c2d("dev1", "short", 100, 150);
    hub_c2d b = make_c2d("dev1", "long", 100, 1000);
    hub_c2d c = make_c2d("dev1", "forever", 100, 0);
    assert_int_equal(hub_store_c2d_enqueue(f->s, &a, 3), IOTDM_OK);
    assert_int_equal(hub_store_c2d_enqueue(f->s, &b, 3), IOTDM_OK);
    assert_int_equal(hub_store_c2d_enqueue(f->s, &c, 3), IOTDM_OK);

    c2d_log v = {0};
    assert_int_equal(hub_store_c2d_foreach(f->s, "dev1", 150, log_c2d, &v), IOTDM_OK);
    assert_int_equal(v.n, 2); /* "short" expired at 150 */
    assert_string_equal(v.mids[0], "long");

    /* Quota full (3), but "short" is expired at the new message's enqueue time. */
    hub_c2d d = make_c2d("dev1", "late", 200, 0);
    assert_int_equal(hub_store_c2d_enqueue(f->s, &d, 3), IOTDM_OK);
    hub_c2d e = make_c2d("dev1", "later", 200, 0);
    assert_int_equal(hub_store_c2d_enqueue(f->s, &e, 3), IOTDM_E_QUOTA);

    assert_int_equal(hub_store_c2d_expire(f->s, 149), 0);
    assert_int_equal(hub_store_c2d_expire(f->s, 1000), 2);
    assert_int_equal(hub_store_c2d_count(f->s, "dev1"), 2);
    assert_int_equal(hub_store_c2d_expire(f->s, INT64_MAX), 0);
}

typedef struct {
    size_t n;
    int64_t seqs[128];
    size_t lens[128];
    char app0[16];
} tel_log;

static bool log_tel(void *ctx, const hub_telemetry *m)
{
    tel_log *v = ctx;
    if (v->n == 0) {
        json_t *p = json_object_get(m->properties, "k");
        snprintf(v->app0, sizeof(v->app0), "%s", p ? json_string_value(p) : "");
    }
    v->lens[v->n] = m->body_len;
    v->seqs[v->n++] = m->seq;
    return true;
}

static void append(hub_store *s, int64_t when, size_t len, int64_t *out_seq)
{
    static unsigned char body[256];
    hub_telemetry t;
    memset(&t, 0, sizeof(t));
    snprintf(t.device_id, sizeof(t.device_id), "dev1");
    t.enqueued_ms = when;
    t.body = body;
    t.body_len = len;
    t.properties = json_pack("{s:s}", "k", "v");
    t.system_properties = json_pack("{s:s}", "iothub-connection-device-id", "dev1");
    assert_int_equal(hub_store_telemetry_append(s, &t), IOTDM_OK);
    json_decref(t.properties);
    json_decref(t.system_properties);
    /* A backend that numbers rows at the commit leaves seq 0 (store.h): the last one given. */
    *out_seq = t.seq ? t.seq : hub_store_telemetry_last_seq(s);
}

static void test_store_telemetry_append_foreach_trim(void **state)
{
    fixture *f = *state;
    int64_t seqs[10];
    assert_int_equal(hub_store_telemetry_last_seq(f->s), 0);
    for (int i = 0; i < 10; i++)
        append(f->s, 1000 + i * 100, 100, &seqs[i]);
    assert_int_equal(hub_store_telemetry_last_seq(f->s), seqs[9]);

    tel_log v = {0};
    assert_int_equal(hub_store_telemetry_foreach(f->s, seqs[3], 4, log_tel, &v), IOTDM_OK);
    assert_int_equal(v.n, 4);
    assert_int_equal(v.seqs[0], seqs[3]);
    assert_int_equal(v.seqs[3], seqs[6]);
    assert_int_equal(v.lens[0], 100);
    assert_string_equal(v.app0, "v");

    /* Bytes count the whole row: body 100, properties {"k":"v"} (9), system properties (38),
     * "dev1" (4) and 64 of row overhead = 215. Keep at most 1100 -> the 5 newest. */
    assert_int_equal(hub_store_telemetry_trim(f->s, 1100, 0, 5000, SIZE_MAX, NULL), IOTDM_OK);
    memset(&v, 0, sizeof(v));
    assert_int_equal(hub_store_telemetry_foreach(f->s, 0, 100, log_tel, &v), IOTDM_OK);
    assert_int_equal(v.n, 5);
    assert_int_equal(v.seqs[0], seqs[5]);

    /* Age: at now=2000 with max age 250, messages enqueued before 1750 go (1500, 1600, 1700). */
    assert_int_equal(hub_store_telemetry_trim(f->s, UINT64_MAX, 250, 2000, SIZE_MAX, NULL),
                     IOTDM_OK);
    memset(&v, 0, sizeof(v));
    assert_int_equal(hub_store_telemetry_foreach(f->s, 0, 100, log_tel, &v), IOTDM_OK);
    assert_int_equal(v.n, 2);
    assert_int_equal(v.seqs[0], seqs[8]);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);

    /* Nothing to trim: no write transaction is opened. */
    assert_int_equal(hub_store_telemetry_trim(f->s, UINT64_MAX, 0, 2000, SIZE_MAX, NULL), IOTDM_OK);
    assert_false(hub_store_has_pending_writes(f->s));

    /* Trimming everything keeps seqs increasing. */
    assert_int_equal(hub_store_telemetry_trim(f->s, 0, 0, 2000, SIZE_MAX, NULL), IOTDM_OK);
    assert_int_equal(hub_store_telemetry_last_seq(f->s), seqs[9]);
    int64_t next;
    append(f->s, 3000, 0, &next);
    assert_true(next > seqs[9]);
    memset(&v, 0, sizeof(v));
    assert_int_equal(hub_store_telemetry_foreach(f->s, 0, 100, log_tel, &v), IOTDM_OK);
    assert_int_equal(v.n, 1);
    assert_int_equal(v.lens[0], 0);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);

    /* The byte count survives a reopen (it is recounted). */
    hub_store_close(f->s);
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    append(f->s, 3100, 200, &next);
    append(f->s, 3200, 200, &next);
    assert_int_equal(hub_store_telemetry_trim(f->s, 400, 0, 3300, SIZE_MAX, NULL),
                     IOTDM_OK); /* rows of 315 */
    memset(&v, 0, sizeof(v));
    assert_int_equal(hub_store_telemetry_foreach(f->s, 0, 100, log_tel, &v), IOTDM_OK);
    assert_int_equal(v.n, 1);
    assert_int_equal(v.seqs[0], next);
}

/* Messages without bodies but with large property bags count what they really take: the limit
 * bounds the database, not just the bodies. */
static void test_store_telemetry_trim_counts_properties(void **state)
{
    fixture *f = *state;
    static char big[4001];
    memset(big, 'p', sizeof big - 1);
    for (int i = 0; i < 100; i++) {
        hub_telemetry t;
        memset(&t, 0, sizeof(t));
        snprintf(t.device_id, sizeof(t.device_id), "dev1");
        t.enqueued_ms = 1000 + i;
        t.properties = json_pack("{s:s}", "k", big);
        t.system_properties = json_object();
        assert_int_equal(hub_store_telemetry_append(f->s, &t), IOTDM_OK);
        json_decref(t.properties);
        json_decref(t.system_properties);
    }
    /* One trim deletes at most max_rows and says more must go: the writer is never held for
     * long, however far over the limit the table is. */
    bool more = false;
    assert_int_equal(hub_store_telemetry_trim(f->s, 40000, 0, 5000, 50, &more), IOTDM_OK);
    assert_true(more);
    tel_log v = {0};
    assert_int_equal(hub_store_telemetry_foreach(f->s, 0, 1000, log_tel, &v), IOTDM_OK);
    assert_int_equal(v.n, 50);
    /* 100 rows of about 4.1 KB, no body bytes at all: a 40 KB limit keeps fewer than 10. */
    assert_int_equal(hub_store_telemetry_trim(f->s, 40000, 0, 5000, SIZE_MAX, &more), IOTDM_OK);
    assert_false(more);
    memset(&v, 0, sizeof(v));
    assert_int_equal(hub_store_telemetry_foreach(f->s, 0, 1000, log_tel, &v), IOTDM_OK);
    assert_true(v.n >= 8 && v.n < 10);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_store_c2d_queue_order_and_quota),
        T(test_store_c2d_expiry),
        T(test_store_telemetry_append_foreach_trim),
        T(test_store_telemetry_trim_counts_properties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
