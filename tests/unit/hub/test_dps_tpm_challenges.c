/* The DPS TPM challenges the hub remembers between the 401 and the signed register: found by
 * registration id in any case, gone after their expiry, bounded in number. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>
#include <string.h>

#include "hub/dps/dps_internal.h"

static const int64_t t0 = 1700000000000;

static int setup(void **state)
{
    hub_dps *d = calloc(1, sizeof *d);
    d->tpm_challenges = strmap_new();
    *state = d;
    return d->tpm_challenges ? 0 : -1;
}

static int teardown(void **state)
{
    hub_dps *d = *state;
    dps_tpm_challenges_clear(d);
    strmap_free(d->tpm_challenges);
    free(d);
    return 0;
}

static dps_tpm_challenge make(uint8_t fill, int64_t expires_ms)
{
    dps_tpm_challenge c;
    memset(&c, 0, sizeof c);
    memset(c.key, fill, sizeof c.key);
    c.srk_len = 3;
    c.expires_ms = expires_ms;
    return c;
}

static void test_dps_tpm_challenge_found_by_id_in_any_case_and_replaced(void **state)
{
    hub_dps *d = *state;
    dps_tpm_challenge c = make(1, t0 + 1000);
    assert_true(dps_tpm_challenge_put(d, "AbC", &c, t0));
    const dps_tpm_challenge *got = dps_tpm_challenge_get(d, "abc", t0);
    assert_non_null(got);
    assert_int_equal(got->key[5], 1);
    c = make(2, t0 + 1000);
    assert_true(dps_tpm_challenge_put(d, "abc", &c, t0));
    assert_int_equal(strmap_count(d->tpm_challenges), 1);
    assert_int_equal(dps_tpm_challenge_get(d, "ABC", t0)->key[0], 2);
    assert_null(dps_tpm_challenge_get(d, "abd", t0));
}

static void test_dps_tpm_challenge_expired_is_gone(void **state)
{
    hub_dps *d = *state;
    dps_tpm_challenge c = make(3, t0 + DPS_TPM_CHALLENGE_TTL_MS);
    assert_true(dps_tpm_challenge_put(d, "dev", &c, t0));
    assert_non_null(dps_tpm_challenge_get(d, "dev", t0 + DPS_TPM_CHALLENGE_TTL_MS - 1));
    assert_null(dps_tpm_challenge_get(d, "dev", t0 + DPS_TPM_CHALLENGE_TTL_MS));
    assert_int_equal(strmap_count(d->tpm_challenges), 0);
    /* Asking again later finds nothing either. */
    assert_null(dps_tpm_challenge_get(d, "dev", t0));
}

static void test_dps_tpm_challenge_map_is_bounded(void **state)
{
    hub_dps *d = *state;
    char id[32];
    /* Full of live challenges: each new one evicts the one nearest its expiry. */
    for (int i = 0; i < DPS_TPM_CHALLENGES_MAX + 10; i++) {
        snprintf(id, sizeof id, "dev-%d", i);
        dps_tpm_challenge c = make((uint8_t)i, t0 + 1000 + i);
        assert_true(dps_tpm_challenge_put(d, id, &c, t0));
        assert_true(strmap_count(d->tpm_challenges) <= DPS_TPM_CHALLENGES_MAX);
    }
    assert_null(dps_tpm_challenge_get(d, "dev-0", t0));
    assert_null(dps_tpm_challenge_get(d, "dev-9", t0));
    assert_non_null(dps_tpm_challenge_get(d, "dev-10", t0));
    snprintf(id, sizeof id, "dev-%d", DPS_TPM_CHALLENGES_MAX + 9);
    assert_non_null(dps_tpm_challenge_get(d, id, t0));
    /* Once they have expired, a new one makes room by dropping expired ones first. */
    dps_tpm_challenge c = make(9, t0 + 5000 + DPS_TPM_CHALLENGE_TTL_MS);
    assert_true(dps_tpm_challenge_put(d, "late", &c, t0 + 5000));
    assert_true(strmap_count(d->tpm_challenges) < DPS_TPM_CHALLENGES_MAX);
    assert_non_null(dps_tpm_challenge_get(d, "late", t0 + 5000));
    dps_tpm_challenges_clear(d);
    assert_int_equal(strmap_count(d->tpm_challenges), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_dps_tpm_challenge_found_by_id_in_any_case_and_replaced,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_dps_tpm_challenge_expired_is_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dps_tpm_challenge_map_is_bounded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
