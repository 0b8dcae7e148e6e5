/* Reconnect back-off: full jitter within [0, min(cap, base * 2^attempt)], spread over that range.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "client/backoff.h"

static void test_backoff_delay_within_exponential_ceiling(void **state)
{
    (void)state;
    backoff_rng rng;
    backoff_rng_seed(&rng);
    const int64_t base = 1000, cap = 120000;
    for (unsigned attempt = 0; attempt < 12; attempt++) {
        int64_t ceiling = base << attempt;
        if (ceiling > cap)
            ceiling = cap;
        int64_t lo = INT64_MAX, hi = -1;
        for (int i = 0; i < 4000; i++) {
            int64_t d = backoff_delay_ms(&rng, attempt, base, cap);
            assert_true(d >= 0 && d <= ceiling);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        /* full jitter: the whole range is used, not only its top */
        assert_true(lo < ceiling / 10);
        assert_true(hi > ceiling - ceiling / 10);
    }
}

static void test_backoff_cap_holds_for_huge_attempts(void **state)
{
    (void)state;
    backoff_rng rng;
    backoff_rng_seed(&rng);
    for (int i = 0; i < 1000; i++)
        assert_true(backoff_delay_ms(&rng, 4000000000u, 1000, 5000) <= 5000);
    assert_int_equal(backoff_delay_ms(&rng, 3, 0, 5000), 0);
}

static void test_backoff_clients_do_not_share_a_sequence(void **state)
{
    (void)state;
    backoff_rng a, b;
    backoff_rng_seed(&a);
    backoff_rng_seed(&b);
    int same = 0;
    for (int i = 0; i < 16; i++)
        same += backoff_rng_next(&a) == backoff_rng_next(&b);
    assert_true(same < 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_delay_within_exponential_ceiling),
        cmocka_unit_test(test_backoff_cap_holds_for_huge_attempts),
        cmocka_unit_test(test_backoff_clients_do_not_share_a_sequence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
