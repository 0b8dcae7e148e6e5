/* The durable outbox: order and persistence across close/reopen, telemetry bounds and drop
 * policy, applied-state records, atomic groups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "fixture.h"

#define MiB (1024 * 1024)

typedef struct {
    int64_t seq;
    char bag[64];
    char body[64];
} seen_msg;

static iotdm_result record(void *ctx, int64_t seq, const char *bag, const void *body, size_t len)
{
    seen_msg *m = ctx;
    m->seq = seq;
    snprintf(m->bag, sizeof m->bag, "%s", bag);
    snprintf(m->body, sizeof m->body, "%.*s", (int)len, (const char *)body);
    return IOTDM_OK;
}

static void test_outbox_reported_order_survives_reopen(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    outbox *ob;
    assert_int_equal(outbox_open(dir, MiB, 0, &ob, NULL, 0), IOTDM_OK);
    assert_int_equal(outbox_add_reported(ob, "{\"n\":1}"), IOTDM_OK);
    assert_int_equal(outbox_add_reported(ob, "{\"n\":2}"), IOTDM_OK);
    assert_int_equal(outbox_add_reported(ob, "{\"n\":3}"), IOTDM_OK);
    int64_t seq;
    char *json;
    assert_int_equal(outbox_peek_reported(ob, &seq, &json), IOTDM_OK);
    assert_string_equal(json, "{\"n\":1}");
    xfree(json);
    assert_int_equal(outbox_remove_reported(ob, seq), IOTDM_OK);
    outbox_close(ob);

    assert_int_equal(outbox_open(dir, MiB, 0, &ob, NULL, 0), IOTDM_OK);
    outbox_counts n;
    outbox_get_counts(ob, &n);
    assert_int_equal(n.reported, 2);
    for (int want = 2; want <= 3; want++) {
        char expect[16];
        snprintf(expect, sizeof expect, "{\"n\":%d}", want);
        assert_int_equal(outbox_peek_reported(ob, &seq, &json), IOTDM_OK);
        assert_string_equal(json, expect);
        xfree(json);
        /* peeking again without removing gives the same patch: it is retried until acked */
        int64_t again;
        assert_int_equal(outbox_peek_reported(ob, &again, &json), IOTDM_OK);
        assert_int_equal(again, seq);
        xfree(json);
        assert_int_equal(outbox_remove_reported(ob, seq), IOTDM_OK);
    }
    assert_int_equal(outbox_peek_reported(ob, &seq, &json), IOTDM_E_NOT_FOUND);
    outbox_close(ob);
    fixture_rmdir(dir);
}

static void test_outbox_telemetry_order_and_reopen(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    outbox *ob;
    assert_int_equal(outbox_open(dir, MiB, 0, &ob, NULL, 0), IOTDM_OK);
    assert_int_equal(outbox_add_telemetry(ob, 1000, "%24.mid=a", "one", 3), IOTDM_OK);
    assert_int_equal(outbox_add_telemetry(ob, 1001, "", "two", 3), IOTDM_OK);
    outbox_close(ob);
    assert_int_equal(outbox_open(dir, MiB, 0, &ob, NULL, 0), IOTDM_OK);
    seen_msg m1, m2, m3;
    assert_int_equal(outbox_next_telemetry(ob, 0, record, &m1), IOTDM_OK);
    assert_string_equal(m1.bag, "%24.mid=a");
    assert_string_equal(m1.body, "one");
    assert_int_equal(outbox_next_telemetry(ob, m1.seq, record, &m2), IOTDM_OK);
    assert_string_equal(m2.body, "two");
    assert_int_equal(outbox_next_telemetry(ob, m2.seq, record, &m3), IOTDM_E_NOT_FOUND);
    /* acknowledged out of order (several in flight): each removal is exact */
    assert_int_equal(outbox_remove_telemetry(ob, m2.seq), IOTDM_OK);
    assert_int_equal(outbox_next_telemetry(ob, 0, record, &m3), IOTDM_OK);
    assert_int_equal(m3.seq, m1.seq);
    outbox_close(ob);
    fixture_rmdir(dir);
}

static void test_outbox_full_drops_oldest_telemetry_never_reported(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    outbox *ob;
    /* room for three 10-byte messages */
    assert_int_equal(outbox_open(dir, 30, 0, &ob, NULL, 0), IOTDM_OK);
    assert_int_equal(outbox_add_reported(ob, "{\"keep\":true}"), IOTDM_OK);
    const char *bodies[] = {"msg-0-abcd", "msg-1-abcd", "msg-2-abcd", "msg-3-abcd", "msg-4-abcd"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(outbox_add_telemetry(ob, 1000 + i, "", bodies[i], 10), IOTDM_OK);
    outbox_counts n;
    outbox_get_counts(ob, &n);
    assert_int_equal(n.telemetry, 3);
    assert_int_equal(n.telemetry_bytes, 30);
    assert_int_equal(n.telemetry_dropped, 2);
    assert_int_equal(n.reported, 1);
    seen_msg m;
    assert_int_equal(outbox_next_telemetry(ob, 0, record, &m), IOTDM_OK);
    assert_string_equal(m.body, "msg-2-abcd"); /* the oldest two went first */
    /* the bag counts too; a message that alone exceeds the bound is refused, nothing dropped */
    assert_int_equal(outbox_add_telemetry(ob, 2000, "k=v", "0123456789012345678901234567", 28),
                     IOTDM_E_TOO_LARGE);
    outbox_get_counts(ob, &n);
    assert_int_equal(n.telemetry, 3);
    assert_int_equal(outbox_add_telemetry(ob, 2000, "k=v", "0123456789012345678901234", 25),
                     IOTDM_OK);
    outbox_get_counts(ob, &n);
    assert_int_equal(n.telemetry, 1);
    assert_int_equal(n.telemetry_dropped, 5);
    assert_int_equal(n.reported, 1);
    outbox_close(ob);
    fixture_rmdir(dir);
}

static void test_outbox_old_telemetry_expires(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    outbox *ob;
    assert_int_equal(outbox_open(dir, MiB, 60000, &ob, NULL, 0), IOTDM_OK);
    assert_int_equal(outbox_add_telemetry(ob, 1000, "", "old", 3), IOTDM_OK);
    assert_int_equal(outbox_add_telemetry(ob, 50000, "", "newer", 5), IOTDM_OK);
    assert_int_equal(outbox_expire_telemetry(ob, 60999), 0);
    assert_int_equal(outbox_expire_telemetry(ob, 61001), 1);
    seen_msg m;
    assert_int_equal(outbox_next_telemetry(ob, 0, record, &m), IOTDM_OK);
    assert_string_equal(m.body, "newer");
    /* adding expires too */
    assert_int_equal(outbox_add_telemetry(ob, 200000, "", "now", 3), IOTDM_OK);
    outbox_counts n;
    outbox_get_counts(ob, &n);
    assert_int_equal(n.telemetry, 1);
    assert_int_equal(n.telemetry_dropped, 2);
    assert_int_equal(n.telemetry_bytes, 3);
    outbox_close(ob);
    fixture_rmdir(dir);
}

static void test_outbox_applied_state_round_trip_and_rollback(void **state)
{
    (void)state;
    char *dir = fixture_mkdir();
    outbox *ob;
    assert_int_equal(outbox_open(dir, MiB, 0, &ob, NULL, 0), IOTDM_OK);
    outbox_applied a = {7, 200, "{\"zone\":\"UTC\"}", "done"};
    assert_int_equal(outbox_set_applied(ob, "dm", "timeInfo", &a), IOTDM_OK);
    /* a group that fails leaves neither the ack nor the state */
    assert_int_equal(outbox_begin(ob), IOTDM_OK);
    assert_int_equal(outbox_add_reported(ob, "{\"x\":1}"), IOTDM_OK);
    outbox_applied b = {8, 500, "{}", "failed"};
    assert_int_equal(outbox_set_applied(ob, "dm", "timeInfo", &b), IOTDM_OK);
    outbox_rollback(ob);
    outbox_close(ob);

    assert_int_equal(outbox_open(dir, MiB, 0, &ob, NULL, 0), IOTDM_OK);
    outbox_applied got;
    assert_int_equal(outbox_get_applied(ob, "dm", "timeInfo", &got), IOTDM_OK);
    assert_int_equal(got.version, 7);
    assert_int_equal(got.ac, 200);
    assert_string_equal(got.value, "{\"zone\":\"UTC\"}");
    assert_string_equal(got.ad, "done");
    outbox_applied_deinit(&got);
    outbox_counts n;
    outbox_get_counts(ob, &n);
    assert_int_equal(n.reported, 0);
    assert_int_equal(outbox_clear_applied(ob, "dm", "timeInfo"), IOTDM_OK);
    assert_int_equal(outbox_get_applied(ob, "dm", "timeInfo", &got), IOTDM_E_NOT_FOUND);
    outbox_close(ob);
    fixture_rmdir(dir);
}

static void test_outbox_unusable_dir_fails_with_reason(void **state)
{
    (void)state;
    outbox *ob = (outbox *)1;
    char err[256] = "";
    assert_true(outbox_open("/proc/nope/iotdm", MiB, 0, &ob, err, sizeof err) < 0);
    assert_null(ob);
    assert_non_null(strstr(err, "/proc/nope/iotdm"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outbox_reported_order_survives_reopen),
        cmocka_unit_test(test_outbox_telemetry_order_and_reopen),
        cmocka_unit_test(test_outbox_full_drops_oldest_telemetry_never_reported),
        cmocka_unit_test(test_outbox_old_telemetry_expires),
        cmocka_unit_test(test_outbox_applied_state_round_trip_and_rollback),
        cmocka_unit_test(test_outbox_unusable_dir_fails_with_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
