/* The JSON object text writer: its output parses back (jansson) to what was written, escapes,
 * growth beyond the caller's buffer, and UTF-8 validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "common/jsonw.h"

static json_t *parse(const jsonw *w)
{
    json_error_t err;
    json_t *j = json_loadb(w->data, w->len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (!j)
        fail_msg("writer produced invalid JSON (%s): %.*s", err.text, (int)w->len, w->data);
    return j;
}

static void test_jsonw_round_trips_through_a_parser(void **state)
{
    (void)state;
    char buf[256];
    jsonw w;
    jsonw_begin(&w, buf, sizeof buf);
    static const char tricky[] =
        "quote\" backslash\\ nl\n tab\t ctl\x01 del\x7f \xc3\xa9\xe2\x82\xac";
    jsonw_string(&w, "a", 1, "1", 1);
    jsonw_string(&w, "tricky", 6, tricky, sizeof tricky - 1);
    jsonw_string(&w, "nul", 3, "x\0y", 3);
    jsonw_string(&w, "", 0, "", 0);
    assert_true(jsonw_end(&w));
    json_t *j = parse(&w);
    assert_string_equal(json_string_value(json_object_get(j, "a")), "1");
    assert_string_equal(json_string_value(json_object_get(j, "tricky")), tricky);
    assert_int_equal(json_string_length(json_object_get(j, "nul")), 3);
    assert_memory_equal(json_string_value(json_object_get(j, "nul")), "x\0y", 3);
    assert_string_equal(json_string_value(json_object_get(j, "")), "");
    json_decref(j);
    jsonw_free(&w);
}

static void test_jsonw_empty_object(void **state)
{
    (void)state;
    char buf[8];
    jsonw w;
    jsonw_begin(&w, buf, sizeof buf);
    assert_true(jsonw_end(&w));
    assert_int_equal(w.len, 2);
    assert_memory_equal(w.data, "{}", 2);
}

static void test_jsonw_grows_past_the_callers_buffer(void **state)
{
    (void)state;
    char buf[16], value[3000];
    memset(value, '"', sizeof value); /* each byte doubles when escaped */
    jsonw w;
    jsonw_begin(&w, buf, sizeof buf);
    for (int i = 0; i < 20; i++) {
        char name[8];
        int n = snprintf(name, sizeof name, "k%d", i);
        jsonw_string(&w, name, (size_t)n, value, sizeof value);
    }
    assert_true(jsonw_end(&w));
    assert_true(w.heap);
    json_t *j = parse(&w);
    assert_int_equal(json_object_size(j), 20);
    assert_int_equal(json_string_length(json_object_get(j, "k19")), sizeof value);
    json_decref(j);
    jsonw_free(&w);
}

static void test_jsonw_refuses_strings_that_are_not_utf8(void **state)
{
    (void)state;
    static const char *bad[] = {
        "\xff",             /* never valid */
        "\xc3",             /* truncated */
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong */
        "\xed\xa0\x80",     /* UTF-16 surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "a\x80",            /* stray continuation byte */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_false(utf8_valid(bad[i], strlen(bad[i])));
        char buf[64];
        jsonw w;
        jsonw_begin(&w, buf, sizeof buf);
        jsonw_string(&w, "k", 1, bad[i], strlen(bad[i]));
        assert_false(jsonw_end(&w));
        jsonw_begin(&w, buf, sizeof buf);
        jsonw_string(&w, bad[i], strlen(bad[i]), "v", 1);
        assert_false(jsonw_end(&w));
    }
    assert_true(utf8_valid("\xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf", 9));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jsonw_round_trips_through_a_parser),
        cmocka_unit_test(test_jsonw_empty_object),
        cmocka_unit_test(test_jsonw_grows_past_the_callers_buffer),
        cmocka_unit_test(test_jsonw_refuses_strings_that_are_not_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
