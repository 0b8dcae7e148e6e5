/* ISO 8601 parsing: offsets, fractions, normalisation to UTC, clear errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "common/iso8601.h"

static void check(const char *in, const char *expected_utc)
{
    int64_t ms;
    char err[128] = "", out[32];
    assert_int_equal(iso8601_parse(in, &ms, err, sizeof err), IOTDM_OK);
    iso8601_format_utc(ms, out, sizeof out);
    assert_string_equal(out, expected_utc);
}

static void test_iso8601_offsets_and_fractions_normalised(void **state)
{
    (void)state;
    check("2026-11-26T10:00:00Z", "2026-11-26T10:00:00Z");
    check("2026-11-26T10:00:00+01:00", "2026-11-26T09:00:00Z");
    check("2026-11-26T10:00:00-0800", "2026-11-26T18:00:00Z");
    check("2026-11-26T23:30:00-02", "2026-11-27T01:30:00Z");
    check("2026-11-26t10:00:00.123456z", "2026-11-26T10:00:00Z");
    check("2026-11-26 10:00Z", "2026-11-26T10:00:00Z");
    check("2024-02-29T00:00:00+00:00", "2024-02-29T00:00:00Z");
    check("2026-01-01T00:30:00+01:00", "2025-12-31T23:30:00Z");
}

static void test_iso8601_fraction_kept_in_milliseconds(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(iso8601_parse("1970-01-01T00:00:01.5Z", &ms, NULL, 0), IOTDM_OK);
    assert_int_equal(ms, 1500);
    assert_int_equal(iso8601_parse("1970-01-01T00:00:00.0129Z", &ms, NULL, 0), IOTDM_OK);
    assert_int_equal(ms, 12);
}

static void test_iso8601_bad_input_rejected_with_reason(void **state)
{
    (void)state;
    const char *bad[] = {"",
                         "tomorrow",
                         "2026-11-26",
                         "2026-11-26T10:00:00",
                         "2026-13-01T00:00:00Z",
                         "2026-02-29T00:00:00Z",
                         "2026-11-26T24:00:00Z",
                         "2026-11-26T10:00:00+25:00",
                         "2026-11-26T10:00:00Zjunk",
                         "2026-11-26T10:00:00.Z",
                         "26-11-26T10:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t ms;
        char err[128] = "";
        assert_int_equal(iso8601_parse(bad[i], &ms, err, sizeof err), IOTDM_E_MALFORMED);
        assert_true(strlen(err) > 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iso8601_offsets_and_fractions_normalised),
        cmocka_unit_test(test_iso8601_fraction_kept_in_milliseconds),
        cmocka_unit_test(test_iso8601_bad_input_rejected_with_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
