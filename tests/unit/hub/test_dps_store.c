/* Unit tests for the DPS part of the store: enrollments and registration records, etags, paging,
 * and operations (put, get, prune, durable across a reopen). */
#include "store_fixture.h"

static bool count_ids(void *ctx, const char *id, const json_t *doc, uint64_t etag)
{
    (void)doc;
    (void)etag;
    char *out = ctx;
    strcat(out, id);
    strcat(out, ",");
    return true;
}

static void test_dps_enrollment_put_get_etag_and_case(void **state)
{
    fixture *f = *state;
    json_t *doc = json_pack("{s:s}", "registrationId", "Dev-A");
    uint64_t etag = 0;
    assert_int_equal(hub_store_enrollment_put(f->s, HUB_DPS_INDIVIDUAL, "Dev-A", doc, 0, &etag),
                     IOTDM_OK);
    assert_int_equal(etag, 1);
    /* Registration ids compare case-insensitively. */
    json_t *got = NULL;
    uint64_t got_etag = 0;
    assert_int_equal(hub_store_enrollment_get(f->s, HUB_DPS_INDIVIDUAL, "dev-a", &got, &got_etag),
                     IOTDM_OK);
    assert_string_equal(json_string_value(json_object_get(got, "registrationId")), "Dev-A");
    assert_int_equal(got_etag, 1);
    json_decref(got);
    /* A group of the same name is another record. */
    assert_int_equal(hub_store_enrollment_get(f->s, HUB_DPS_GROUP, "Dev-A", &got, NULL),
                     IOTDM_E_NOT_FOUND);
    /* Stale etag: refused, nothing changes. */
    assert_int_equal(hub_store_enrollment_put(f->s, HUB_DPS_INDIVIDUAL, "Dev-A", doc, 7, &etag),
                     IOTDM_E_PRECONDITION);
    assert_int_equal(hub_store_enrollment_put(f->s, HUB_DPS_INDIVIDUAL, "Dev-A", doc, 1, &etag),
                     IOTDM_OK);
    assert_int_equal(etag, 2);
    assert_int_equal(hub_store_enrollment_delete(f->s, HUB_DPS_INDIVIDUAL, "Dev-A", 1),
                     IOTDM_E_PRECONDITION);
    assert_int_equal(hub_store_enrollment_delete(f->s, HUB_DPS_INDIVIDUAL, "Dev-A", 2), IOTDM_OK);
    assert_int_equal(hub_store_enrollment_delete(f->s, HUB_DPS_INDIVIDUAL, "Dev-A", 0),
                     IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    json_decref(doc);
}

static void test_dps_enrollment_foreach_pages_in_id_order(void **state)
{
    fixture *f = *state;
    json_t *doc = json_object();
    const char *ids[] = {"c", "a", "d", "b"};
    for (int i = 0; i < 4; i++)
        assert_int_equal(hub_store_enrollment_put(f->s, HUB_DPS_GROUP, ids[i], doc, 0, NULL),
                         IOTDM_OK);
    char seen[64] = "";
    assert_int_equal(hub_store_enrollment_foreach(f->s, HUB_DPS_GROUP, NULL, 2, count_ids, seen),
                     IOTDM_OK);
    assert_string_equal(seen, "a,b,");
    seen[0] = '\0';
    assert_int_equal(hub_store_enrollment_foreach(f->s, HUB_DPS_GROUP, "b", 10, count_ids, seen),
                     IOTDM_OK);
    assert_string_equal(seen, "c,d,");
    json_decref(doc);
}

static void test_dps_registrations_by_group_survive_reopen(void **state)
{
    fixture *f = *state;
    json_t *doc = json_pack("{s:s}", "status", "assigned");
    assert_int_equal(hub_store_registration_put(f->s, "r1", "g1", doc, NULL), IOTDM_OK);
    assert_int_equal(hub_store_registration_put(f->s, "r2", "g2", doc, NULL), IOTDM_OK);
    uint64_t etag = 0;
    assert_int_equal(hub_store_registration_put(f->s, "r3", "g1", doc, &etag), IOTDM_OK);
    assert_int_equal(hub_store_registration_put(f->s, "r3", "g1", doc, &etag), IOTDM_OK);
    assert_int_equal(etag, 2);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    hub_store_close(f->s);
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    char seen[64] = "";
    assert_int_equal(hub_store_registration_foreach(f->s, "g1", NULL, 10, count_ids, seen),
                     IOTDM_OK);
    assert_string_equal(seen, "r1,r3,");
    seen[0] = '\0';
    assert_int_equal(hub_store_registration_foreach(f->s, NULL, NULL, 10, count_ids, seen),
                     IOTDM_OK);
    assert_string_equal(seen, "r1,r2,r3,");
    assert_int_equal(hub_store_registration_delete(f->s, "R1", 0), IOTDM_OK);
    json_t *got = NULL;
    assert_int_equal(hub_store_registration_get(f->s, "r1", &got, NULL), IOTDM_E_NOT_FOUND);
    json_decref(doc);
}

static void put_op(hub_store *s, const char *op_id, const char *reg_id, int64_t created_ms)
{
    json_t *result = json_pack("{s:s, s:s, s:{s:s}}", "operationId", op_id, "status", "assigned",
                               "registrationState", "registrationId", reg_id);
    assert_int_equal(hub_store_dps_operation_put(s, op_id, reg_id, created_ms, result), IOTDM_OK);
    json_decref(result);
}

static bool op_exists(hub_store *s, const char *op_id)
{
    char reg[HUB_ID_MAX];
    int64_t created = 0;
    json_t *result = NULL;
    iotdm_result r = hub_store_dps_operation_get(s, op_id, reg, &created, &result);
    json_decref(result);
    assert_true(r == IOTDM_OK || r == IOTDM_E_NOT_FOUND);
    return r == IOTDM_OK;
}

static void test_dps_operation_put_get_survives_reopen(void **state)
{
    SQLITE_ONLY(); /* reads SQLite's own state */
    fixture *f = *state;
    put_op(f->s, "4.0123456789abcdef.fedcba9876543210", "Dev-Op", 1000);
    assert_true(hub_store_has_pending_writes(f->s));
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    /* Committed means on the disk: another connection sees it, and so does a reopened store. */
    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM dps_operations"), 1);
    sqlite3_close(db);
    hub_store_close(f->s);
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);

    char reg[HUB_ID_MAX];
    int64_t created = 0;
    json_t *result = NULL;
    assert_int_equal(hub_store_dps_operation_get(f->s, "4.0123456789abcdef.fedcba9876543210", reg,
                                                 &created, &result),
                     IOTDM_OK);
    assert_string_equal(reg, "Dev-Op");
    assert_int_equal(created, 1000);
    assert_string_equal(json_string_value(json_object_get(result, "status")), "assigned");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(result, "registrationState"), "registrationId")),
                        "Dev-Op");
    json_decref(result);
    /* Operation ids compare exactly. */
    result = NULL;
    assert_int_equal(hub_store_dps_operation_get(f->s, "4.0123456789ABCDEF.FEDCBA9876543210", reg,
                                                 &created, &result),
                     IOTDM_E_NOT_FOUND);
    assert_null(result);
    /* An id is stored once. */
    json_t *doc = json_object();
    assert_int_equal(hub_store_dps_operation_put(f->s, "4.0123456789abcdef.fedcba9876543210",
                                                 "other", 2000, doc),
                     IOTDM_E_EXISTS);
    assert_int_equal(hub_store_dps_operation_put(f->s, "", "other", 2000, doc), IOTDM_E_MALFORMED);
    json_decref(doc);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
}

static void test_dps_operation_prune_by_age_then_count_oldest_first(void **state)
{
    SQLITE_ONLY(); /* reads SQLite's own state */
    fixture *f = *state;
    /* Inserted out of order: age, not insertion order, decides. */
    const int64_t created[] = {500, 100, 400, 200, 300, 600};
    const char *ids[] = {"op-500", "op-100", "op-400", "op-200", "op-300", "op-600"};
    for (int i = 0; i < 6; i++)
        put_op(f->s, ids[i], "r", created[i]);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);

    size_t n = 99;
    assert_int_equal(hub_store_dps_operation_prune(f->s, 100, 10, &n), IOTDM_OK);
    assert_int_equal(n, 0); /* before_ms is exclusive, and 6 <= 10 */
    assert_int_equal(hub_store_dps_operation_prune(f->s, 201, 10, &n), IOTDM_OK);
    assert_int_equal(n, 2);
    assert_false(op_exists(f->s, "op-100"));
    assert_false(op_exists(f->s, "op-200"));
    assert_true(op_exists(f->s, "op-300"));
    /* Four left; keep the newest two. */
    assert_int_equal(hub_store_dps_operation_prune(f->s, 0, 2, &n), IOTDM_OK);
    assert_int_equal(n, 2);
    assert_false(op_exists(f->s, "op-300"));
    assert_false(op_exists(f->s, "op-400"));
    assert_true(op_exists(f->s, "op-500"));
    assert_true(op_exists(f->s, "op-600"));
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM dps_operations"), 2);
    sqlite3_close(db);
    assert_int_equal(hub_store_dps_operation_prune(f->s, 0, 0, NULL), IOTDM_OK);
    assert_false(op_exists(f->s, "op-600"));
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
}

static void test_dps_operation_prune_walks_the_index(void **state)
{
    SQLITE_ONLY(); /* reads SQLite's own state */
    fixture *f = *state;
    sqlite3 *db = raw_open(f);
    /* No full scan, no sort: the index on created_ms. */
    assert_plan_uses_index(db, "DELETE FROM dps_operations WHERE created_ms < 1",
                           "dps_operations_created");
    assert_plan_uses_index(db,
                           "SELECT operation_id FROM dps_operations ORDER BY created_ms DESC, "
                           "operation_id DESC LIMIT -1 OFFSET 1",
                           "dps_operations_created");
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dps_enrollment_put_get_etag_and_case, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dps_enrollment_foreach_pages_in_id_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dps_registrations_by_group_survive_reopen, setup,
                                        teardown),
        T(test_dps_operation_put_get_survives_reopen),
        T(test_dps_operation_prune_by_age_then_count_oldest_first),
        T(test_dps_operation_prune_walks_the_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
