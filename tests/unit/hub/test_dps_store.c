/* Unit tests for the DPS part of the store: enrollments and registration records, etags, paging. */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dps_enrollment_put_get_etag_and_case, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dps_enrollment_foreach_pages_in_id_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_dps_registrations_by_group_survive_reopen, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
