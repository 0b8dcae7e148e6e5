/* The DPS TPM challenges the hub keeps in its store between the 401 and the signed register (and
 * the polls after it): found by registration id in any case, replaced, not found once expired,
 * pruned by expiry and by count (those nearest their expiry first), and on the disk once committed,
 * so that a restart keeps them. */
#include "store_fixture.h"

#include "hub/dps/dps_internal.h"

static const int64_t t0 = 1700000000000;

static hub_tpm_challenge make(uint8_t fill, size_t srk_len, int64_t expires_ms)
{
    hub_tpm_challenge c;
    memset(&c, 0, sizeof c);
    memset(c.key, fill, sizeof c.key);
    memset(c.ek_digest, fill ^ 0xa5, sizeof c.ek_digest);
    for (size_t i = 0; i < srk_len; i++)
        c.srk[i] = (uint8_t)(fill + i);
    c.srk_len = srk_len;
    c.expires_ms = expires_ms;
    return c;
}

static void assert_same(const hub_tpm_challenge *want, const hub_tpm_challenge *got)
{
    assert_memory_equal(got->key, want->key, sizeof want->key);
    assert_memory_equal(got->ek_digest, want->ek_digest, sizeof want->ek_digest);
    assert_int_equal(got->srk_len, want->srk_len);
    assert_memory_equal(got->srk, want->srk, want->srk_len);
    assert_int_equal(got->expires_ms, want->expires_ms);
}

static bool found(hub_store *s, const char *id, int64_t now_ms)
{
    hub_tpm_challenge got;
    iotdm_result r = hub_store_tpm_challenge_get(s, id, now_ms, &got);
    assert_true(r == IOTDM_OK || r == IOTDM_E_NOT_FOUND);
    return r == IOTDM_OK;
}

static int64_t committed_rows(const fixture *f)
{
    return raw_count(f, "dps_tpm_challenges");
}

static void test_dps_tpm_challenge_any_case_replaced_and_exact(void **state)
{
    fixture *f = *state;
    hub_tpm_challenge c = make(1, 280, t0 + 1000), got;
    assert_int_equal(hub_store_tpm_challenge_put(f->s, "AbC", &c), IOTDM_OK);
    assert_int_equal(hub_store_tpm_challenge_get(f->s, "abc", t0, &got), IOTDM_OK);
    assert_same(&c, &got);
    /* A new challenge replaces the last, whatever the case of the id. */
    hub_tpm_challenge c2 = make(2, HUB_TPM_PUBLIC_MAX, t0 + 2000);
    assert_int_equal(hub_store_tpm_challenge_put(f->s, "abc", &c2), IOTDM_OK);
    assert_int_equal(hub_store_tpm_challenge_get(f->s, "ABC", t0, &got), IOTDM_OK);
    assert_same(&c2, &got);
    assert_int_equal(hub_store_tpm_challenge_get(f->s, "abd", t0, &got), IOTDM_E_NOT_FOUND);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_int_equal(committed_rows(f), 1);
    /* What cannot be a challenge is refused and changes nothing. */
    hub_tpm_challenge bad = make(3, 0, t0 + 1000);
    assert_int_equal(hub_store_tpm_challenge_put(f->s, "abc", &bad), IOTDM_E_MALFORMED);
    bad.srk_len = HUB_TPM_PUBLIC_MAX + 1;
    assert_int_equal(hub_store_tpm_challenge_put(f->s, "abc", &bad), IOTDM_E_MALFORMED);
    assert_int_equal(hub_store_tpm_challenge_put(f->s, "", &c), IOTDM_E_MALFORMED);
    assert_int_equal(hub_store_tpm_challenge_get(f->s, "abc", t0, &got), IOTDM_OK);
    assert_same(&c2, &got);
}

static void test_dps_tpm_challenge_expired_not_found_then_pruned(void **state)
{
    fixture *f = *state;
    hub_tpm_challenge c = make(3, 3, t0 + DPS_TPM_CHALLENGE_TTL_MS), other = make(4, 3, t0 + 1);
    assert_int_equal(hub_store_tpm_challenge_put(f->s, "dev", &c), IOTDM_OK);
    assert_int_equal(hub_store_tpm_challenge_put(f->s, "other", &other), IOTDM_OK);
    assert_true(found(f->s, "dev", t0 + DPS_TPM_CHALLENGE_TTL_MS - 1));
    /* Expired at its expiry: not found, even before the prune deletes it. */
    assert_false(found(f->s, "dev", t0 + DPS_TPM_CHALLENGE_TTL_MS));
    assert_true(found(f->s, "dev", t0));
    size_t n = 99;
    assert_int_equal(hub_store_tpm_challenge_prune(f->s, t0, 10, &n), IOTDM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(hub_store_tpm_challenge_prune(f->s, t0 + 1, 10, &n), IOTDM_OK);
    assert_int_equal(n, 1);
    assert_false(found(f->s, "other", t0));
    assert_true(found(f->s, "dev", t0));
    assert_int_equal(hub_store_tpm_challenge_prune(f->s, t0 + DPS_TPM_CHALLENGE_TTL_MS, 10, NULL),
                     IOTDM_OK);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_int_equal(committed_rows(f), 0);
    assert_false(found(f->s, "dev", t0));
}

static void test_dps_tpm_challenge_prune_keeps_the_cap_oldest_first(void **state)
{
    fixture *f = *state;
    char id[32];
    /* Put in reverse: the expiry, not the order of the puts, decides which go. */
    for (int i = DPS_TPM_CHALLENGES_MAX + 9; i >= 0; i--) {
        snprintf(id, sizeof id, "dev-%d", i);
        hub_tpm_challenge c = make((uint8_t)i, 3, t0 + 1000 + i);
        assert_int_equal(hub_store_tpm_challenge_put(f->s, id, &c), IOTDM_OK);
    }
    size_t n = 0;
    assert_int_equal(hub_store_tpm_challenge_prune(f->s, t0, DPS_TPM_CHALLENGES_MAX, &n), IOTDM_OK);
    assert_int_equal(n, 10);
    assert_false(found(f->s, "dev-0", t0));
    assert_false(found(f->s, "dev-9", t0));
    assert_true(found(f->s, "dev-10", t0));
    snprintf(id, sizeof id, "dev-%d", DPS_TPM_CHALLENGES_MAX + 9);
    assert_true(found(f->s, id, t0));
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_int_equal(committed_rows(f), DPS_TPM_CHALLENGES_MAX);
    /* Once they have expired, the new one is all that is left. */
    hub_tpm_challenge late = make(9, 3, t0 + 5000 + DPS_TPM_CHALLENGE_TTL_MS);
    assert_int_equal(hub_store_tpm_challenge_put(f->s, "late", &late), IOTDM_OK);
    assert_int_equal(hub_store_tpm_challenge_prune(f->s, t0 + 5000, DPS_TPM_CHALLENGES_MAX, &n),
                     IOTDM_OK);
    assert_int_equal(n, DPS_TPM_CHALLENGES_MAX);
    assert_true(found(f->s, "late", t0 + 5000));
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    assert_int_equal(committed_rows(f), 1);
}

static void test_dps_tpm_challenge_committed_survives_reopen(void **state)
{
    SQLITE_ONLY(); /* reads SQLite's own state */
    fixture *f = *state;
    hub_tpm_challenge c = make(7, 314, t0 + 1000), got;
    assert_int_equal(hub_store_tpm_challenge_put(f->s, "Dev-Restart", &c), IOTDM_OK);
    assert_true(hub_store_has_pending_writes(f->s));
    assert_int_equal(committed_rows(f), 0);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    sqlite3 *db = raw_open(f);
    assert_int_equal(raw_int(db, "SELECT length(key) + length(ek_digest) + length(srk) FROM "
                                 "dps_tpm_challenges WHERE registration_id = 'dev-restart'"),
                     32 + 32 + 314);
    sqlite3_close(db);
    hub_store_close(f->s);
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    assert_int_equal(hub_store_tpm_challenge_get(f->s, "dev-restart", t0, &got), IOTDM_OK);
    assert_same(&c, &got);
    /* Not committed: gone with the close, as nothing acknowledged it. */
    hub_tpm_challenge lost = make(8, 3, t0 + 1000);
    assert_int_equal(hub_store_tpm_challenge_put(f->s, "lost", &lost), IOTDM_OK);
    hub_store_close(f->s);
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    assert_false(found(f->s, "lost", t0));
    assert_true(found(f->s, "dev-restart", t0));
}

static void test_dps_tpm_challenge_corrupt_row_is_a_storage_error(void **state)
{
    SQLITE_ONLY(); /* reads SQLite's own state */
    fixture *f = *state;
    sqlite3 *db = raw_open(f);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO dps_tpm_challenges VALUES ('short', x'0102', "
                                  "zeroblob(32), x'01', 9999999999999)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    hub_tpm_challenge got;
    memset(&got, 0x5a, sizeof got);
    assert_int_equal(hub_store_tpm_challenge_get(f->s, "short", t0, &got), IOTDM_E_STORAGE);
    /* Nothing half-read is left behind. */
    assert_int_equal(got.key[0], 0);
    assert_int_equal(got.srk_len, 0);
}

static void test_dps_tpm_challenge_prune_walks_the_index(void **state)
{
    SQLITE_ONLY(); /* reads SQLite's own state */
    fixture *f = *state;
    sqlite3 *db = raw_open(f);
    /* No full scan, no sort: the index on expires_ms. */
    assert_plan_uses_index(db, "DELETE FROM dps_tpm_challenges WHERE expires_ms <= 1",
                           "dps_tpm_challenges_expiry");
    assert_plan_uses_index(db,
                           "SELECT registration_id FROM dps_tpm_challenges ORDER BY expires_ms "
                           "DESC, registration_id DESC LIMIT -1 OFFSET 1",
                           "dps_tpm_challenges_expiry");
    sqlite3_close(db);
}

static void test_dps_tpm_challenge_version_4_database_migrated_keeping_data(void **state)
{
    SQLITE_ONLY(); /* reads SQLite's own state */
    fixture *f = *state;
    json_t *result = json_pack("{s:s}", "status", "assigned");
    assert_int_equal(hub_store_dps_operation_put(f->s, "op-1", "dev", t0, result), IOTDM_OK);
    json_decref(result);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
    hub_store_close(f->s);
    f->s = NULL;
    /* The database as the previous schema left it. */
    sqlite3 *db = raw_open(f);
    /* Undo what the migrations after version 4 added (test_store.c checks the latest). */
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TABLE dps_tpm_challenges;"
                                  "ALTER TABLE devices DROP COLUMN conn_epoch;"
                                  "DROP INDEX files_updated;"
                                  "ALTER TABLE telemetry DROP COLUMN row_bytes;"
                                  "DROP TABLE twin_index; DROP TABLE twin_index_state;"
                                  "DROP INDEX devices_enabled; DROP INDEX devices_connected;"
                                  "DROP INDEX devices_model; DROP INDEX devices_activity;"
                                  "PRAGMA user_version = 4;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(hub_store_open(f->path, &f->s), IOTDM_OK);
    db = raw_open(f);
    assert_true(raw_int(db, "PRAGMA user_version") > 4);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM dps_operations"), 1);
    sqlite3_close(db);
    hub_tpm_challenge c = make(5, 3, t0 + 1000), got;
    assert_int_equal(hub_store_tpm_challenge_put(f->s, "dev", &c), IOTDM_OK);
    assert_int_equal(hub_store_tpm_challenge_get(f->s, "dev", t0, &got), IOTDM_OK);
    assert_same(&c, &got);
    assert_int_equal(hub_store_commit(f->s), IOTDM_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_dps_tpm_challenge_any_case_replaced_and_exact),
        T(test_dps_tpm_challenge_expired_not_found_then_pruned),
        T(test_dps_tpm_challenge_prune_keeps_the_cap_oldest_first),
        T(test_dps_tpm_challenge_committed_survives_reopen),
        T(test_dps_tpm_challenge_corrupt_row_is_a_storage_error),
        T(test_dps_tpm_challenge_prune_walks_the_index),
        T(test_dps_tpm_challenge_version_4_database_migrated_keeping_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
