/* Unit tests for the twin document rules: limits, merge-patch and $metadata. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/twin.h"

static json_t *parse(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (!j)
        fail_msg("bad test JSON: %s (%s)", err.text, text);
    return j;
}

static iotdm_result check_text(const char *text, twin_error *err)
{
    json_t *j = parse(text);
    iotdm_result r = twin_check_patch(j, err);
    json_decref(j);
    return r;
}

static void assert_json_eq(const json_t *actual, const char *expected)
{
    json_t *e = parse(expected);
    if (!json_equal(actual, e)) {
        char *a = json_dumps(actual, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("JSON differs:\n actual   %s\n expected %s", a, expected);
    }
    json_decref(e);
}

/* {"k0":{"k1":...{"kN-1":leaf}}}: the root plus `nested` objects below it. */
static json_t *nested_objects(int nested)
{
    json_t *inner = json_integer(1);
    for (int i = nested; i >= 0; i--) {
        json_t *o = json_object();
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        json_object_set_new(o, key, inner);
        inner = o;
    }
    return inner;
}

static json_t *string_of(size_t n, char ch)
{
    char *s = malloc(n + 1);
    memset(s, ch, n);
    s[n] = '\0';
    json_t *j = json_string(s);
    free(s);
    return j;
}

static void test_check_non_object_rejected(void **state)
{
    (void)state;
    twin_error err;
    assert_int_equal(check_text("[1,2]", &err), IOTDM_E_MALFORMED);
    json_t *n = json_integer(3);
    assert_int_equal(twin_check_patch(n, &err), IOTDM_E_MALFORMED);
    json_decref(n);
    assert_int_equal(twin_check_patch(NULL, NULL), IOTDM_E_MALFORMED);
    assert_int_equal(check_text("{}", &err), IOTDM_OK);
}

static void test_check_depth_at_limit_ok_one_past_rejected(void **state)
{
    (void)state;
    twin_error err;
    /* Root (depth 0) plus 10 nested objects: Azure's documented maximum. */
    json_t *ok = nested_objects(TWIN_MAX_DEPTH);
    assert_int_equal(twin_check_patch(ok, &err), IOTDM_OK);
    json_decref(ok);

    json_t *bad = nested_objects(TWIN_MAX_DEPTH + 1);
    assert_int_equal(twin_check_patch(bad, &err), IOTDM_E_TOO_DEEP);
    assert_non_null(strstr(err.message, "k0.k1.k2"));
    json_decref(bad);
}

static void test_check_depth_counts_arrays(void **state)
{
    (void)state;
    twin_error err;
    /* The root and 9 nested objects, then an array at depth 10: fine while it holds only leaves. */
    json_t *root = nested_objects(9);
    json_t *leaf_parent = root;
    for (int i = 0; i < 9; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        leaf_parent = json_object_get(leaf_parent, key);
    }
    json_object_set_new(leaf_parent, "arr", parse("[1, {\"x\": 1}]"));
    assert_int_equal(twin_check_patch(root, &err), IOTDM_E_TOO_DEEP);
    json_object_set_new(leaf_parent, "arr", parse("[1, 2]"));
    assert_int_equal(twin_check_patch(root, &err), IOTDM_OK);
    json_object_set_new(leaf_parent, "arr", parse("[[1]]"));
    assert_int_equal(twin_check_patch(root, &err), IOTDM_E_TOO_DEEP);
    json_decref(root);
}

static void test_check_key_length_boundary(void **state)
{
    (void)state;
    twin_error err;
    char key[TWIN_MAX_KEY_BYTES + 2];
    memset(key, 'a', sizeof(key));
    key[TWIN_MAX_KEY_BYTES] = '\0';
    json_t *p = json_object();
    json_object_set_new(p, key, json_true());
    assert_int_equal(twin_check_patch(p, &err), IOTDM_OK);
    json_decref(p);

    key[TWIN_MAX_KEY_BYTES] = 'a';
    key[TWIN_MAX_KEY_BYTES + 1] = '\0';
    p = json_object();
    json_object_set_new(p, "outer", json_object());
    json_object_set_new(json_object_get(p, "outer"), key, json_true());
    assert_int_equal(twin_check_patch(p, &err), IOTDM_E_TOO_LARGE);
    assert_non_null(strstr(err.message, "outer.aaaa"));
    json_decref(p);
}

static void test_check_key_length_counts_utf8_bytes(void **state)
{
    (void)state;
    twin_error err;
    /* "é" is 2 bytes: 512 of them are exactly 1024 bytes; one more ASCII byte is over. */
    char key[TWIN_MAX_KEY_BYTES + 2];
    for (int i = 0; i < TWIN_MAX_KEY_BYTES; i += 2) {
        key[i] = (char)0xc3;
        key[i + 1] = (char)0xa9;
    }
    key[TWIN_MAX_KEY_BYTES] = '\0';
    json_t *p = json_object();
    json_object_set_new(p, key, json_true());
    assert_int_equal(twin_check_patch(p, &err), IOTDM_OK);
    json_decref(p);
    key[TWIN_MAX_KEY_BYTES] = 'x';
    key[TWIN_MAX_KEY_BYTES + 1] = '\0';
    p = json_object();
    json_object_set_new(p, key, json_true());
    assert_int_equal(twin_check_patch(p, &err), IOTDM_E_TOO_LARGE);
    json_decref(p);
}

static void test_check_key_characters(void **state)
{
    (void)state;
    twin_error err;
    static const char *const bad[] = {
        "{\"\": 1}",
        "{\"a.b\": 1}",
        "{\"a b\": 1}",
        "{\"$x\": 1}",
        "{\"a\": {\"$version\": 1}}",
        "{\"a\\u0001\": 1}",
        "{\"tab\\there\": 1}",
        "{\"del\\u007f\": 1}",
        "{\"c1\\u0085\": 1}",
        "{\"c1\\u009f\": 1}",
        "{\"o\": {\"x.y\": 1}}",
        "{\"arr\": [{\"a.b\": 1}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err.message[0] = '\0';
        iotdm_result r = check_text(bad[i], &err);
        if (r != IOTDM_E_MALFORMED)
            fail_msg("accepted bad key %s (%d)", bad[i], r);
        assert_true(err.message[0] != '\0');
    }
    /* U+00A0 (0xC2 0xA0) is just past C1, and non-ASCII letters are fine. */
    assert_int_equal(check_text("{\"nb\\u00a0sp\": 1, \"Grüße\": 2, \"a-b_c#\": 3}", &err),
                     IOTDM_OK);
    /* At the root only, $version and $metadata are tolerated and ignored. */
    assert_int_equal(check_text("{\"$version\": 4, \"$metadata\": {\"x\": 1}, \"a\": 1}", &err),
                     IOTDM_OK);
}

static void test_check_string_length_boundary(void **state)
{
    (void)state;
    twin_error err;
    json_t *p = json_object();
    json_object_set_new(p, "s", string_of(TWIN_MAX_STRING_BYTES, 'x'));
    assert_int_equal(twin_check_patch(p, &err), IOTDM_OK);
    json_object_set_new(p, "s", string_of(TWIN_MAX_STRING_BYTES + 1, 'x'));
    assert_int_equal(twin_check_patch(p, &err), IOTDM_E_TOO_LARGE);
    assert_non_null(strstr(err.message, "s:"));
    json_t *arr = json_array();
    json_array_append_new(arr, string_of(TWIN_MAX_STRING_BYTES + 1, 'y'));
    json_object_set_new(p, "s", arr);
    assert_int_equal(twin_check_patch(p, &err), IOTDM_E_TOO_LARGE);
    assert_non_null(strstr(err.message, "s[0]"));
    json_decref(p);
}

static void test_check_integer_range(void **state)
{
    (void)state;
    twin_error err;
    assert_int_equal(check_text("{\"n\": 4503599627370495}", &err), IOTDM_OK);
    assert_int_equal(check_text("{\"n\": -4503599627370496}", &err), IOTDM_OK);
    assert_int_equal(check_text("{\"n\": 4503599627370496}", &err), IOTDM_E_MALFORMED);
    assert_int_equal(check_text("{\"n\": -4503599627370497}", &err), IOTDM_E_MALFORMED);
    assert_int_equal(check_text("{\"n\": [9223372036854775807]}", &err), IOTDM_E_MALFORMED);
    assert_int_equal(check_text("{\"n\": 1e300, \"m\": -0.5}", &err), IOTDM_OK);
}

static void test_check_nulls(void **state)
{
    (void)state;
    twin_error err;
    assert_int_equal(check_text("{\"a\": null, \"b\": {\"c\": null}}", &err), IOTDM_OK);
    assert_int_equal(check_text("{\"a\": [1, null]}", &err), IOTDM_E_MALFORMED);
    assert_int_equal(check_text("{\"a\": [{\"b\": null}]}", &err), IOTDM_OK);
}

static void test_section_size_accounting(void **state)
{
    (void)state;
    /* keys: "a"1 "b"1 "cc"2 "d"1 "e"1 "f"1 = 7; "xyz" 3; 1 -> 8; true -> 4; [1.5,"é"] 8+2; null 0
     */
    json_t *j = parse("{\"a\":\"xyz\",\"b\":1,\"cc\":true,\"d\":{\"e\":[1.5,\"\\u00e9\"]},"
                      "\"f\":null,\"$version\":3,\"$metadata\":{\"zz\":1}}");
    assert_int_equal(twin_section_size(j), 7 + 3 + 8 + 4 + 10);
    assert_int_equal(twin_section_size(NULL), 0);
    json_decref(j);
}

static void test_check_size_boundary(void **state)
{
    (void)state;
    twin_error err;
    /* key "k" (1 byte) + string: 1 + len bytes per member; fill exactly to the limit. */
    json_t *s = json_object();
    size_t used = 0;
    int i = 0;
    while (TWIN_MAX_SECTION_BYTES - used > 4000 + 8) {
        char key[16];
        snprintf(key, sizeof(key), "k%03d", i++ % 1000);
        json_object_set_new(s, key, string_of(4000, 'v'));
        used += 4 + 4000;
    }
    size_t rest = TWIN_MAX_SECTION_BYTES - used - 4;
    json_object_set_new(s, "last", string_of(rest, 'w'));
    assert_int_equal(twin_section_size(s), TWIN_MAX_SECTION_BYTES);
    assert_int_equal(twin_check_size(s, TWIN_MAX_SECTION_BYTES, "desired", &err), IOTDM_OK);
    json_object_set_new(s, "last", string_of(rest + 1, 'w'));
    assert_int_equal(twin_check_size(s, TWIN_MAX_SECTION_BYTES, "desired", &err),
                     IOTDM_E_TOO_LARGE);
    assert_non_null(strstr(err.message, "desired"));
    json_decref(s);

    json_t *tags = json_object();
    json_object_set_new(tags, "t", string_of(TWIN_MAX_TAGS_BYTES - 1, 'x'));
    assert_int_equal(twin_check_size(tags, TWIN_MAX_TAGS_BYTES, "tags", &err), IOTDM_OK);
    json_object_set_new(tags, "t", string_of(TWIN_MAX_TAGS_BYTES, 'x'));
    assert_int_equal(twin_check_size(tags, TWIN_MAX_TAGS_BYTES, "tags", &err), IOTDM_E_TOO_LARGE);
    json_decref(tags);
}

static void test_merge_nested_null_deletes(void **state)
{
    (void)state;
    json_t *t = parse("{\"a\":{\"b\":1,\"c\":{\"d\":2,\"e\":3}},\"f\":[1,2],\"g\":\"x\"}");
    json_t *p = parse("{\"a\":{\"c\":{\"d\":null,\"e\":null},\"n\":{\"m\":null}},\"f\":[3],"
                      "\"g\":{\"h\":true},\"gone\":null,\"$version\":9}");
    assert_int_equal(twin_merge(t, p), IOTDM_OK);
    assert_json_eq(t, "{\"a\":{\"b\":1,\"c\":{},\"n\":{}},\"f\":[3],\"g\":{\"h\":true}}");
    /* The merged array is a copy: changing the patch afterwards leaves the target alone. */
    json_array_append_new(json_object_get(p, "f"), json_integer(4));
    assert_json_eq(json_object_get(t, "f"), "[3]");
    json_decref(p);

    p = parse("{\"a\":5,\"g\":null}");
    assert_int_equal(twin_merge(t, p), IOTDM_OK);
    assert_json_eq(t, "{\"a\":5,\"f\":[3]}");
    json_decref(p);
    json_decref(t);

    json_t *arr = parse("[1]");
    t = json_object();
    assert_int_equal(twin_merge(t, arr), IOTDM_E_MALFORMED);
    json_decref(arr);
    json_decref(t);
}

static const char *const T1 = "2024-01-02T03:04:05.006Z";
static const char *const T2 = "2024-06-07T08:09:10.011Z";

static void test_metadata_desired_stamps_touched_nodes(void **state)
{
    (void)state;
    json_t *doc = parse("{\"a\":{\"b\":1,\"c\":2},\"d\":\"x\"}");
    json_t *meta = json_object();
    assert_int_equal(twin_metadata_update(meta, doc, T1, 3, true), IOTDM_OK);
    assert_json_eq(meta, "{\"$lastUpdated\":\"2024-01-02T03:04:05.006Z\",\"$lastUpdatedVersion\":3,"
                         "\"a\":{\"$lastUpdated\":\"2024-01-02T03:04:05.006Z\","
                         "\"$lastUpdatedVersion\":3,"
                         "\"b\":{\"$lastUpdated\":\"2024-01-02T03:04:05.006Z\","
                         "\"$lastUpdatedVersion\":3},"
                         "\"c\":{\"$lastUpdated\":\"2024-01-02T03:04:05.006Z\","
                         "\"$lastUpdatedVersion\":3}},"
                         "\"d\":{\"$lastUpdated\":\"2024-01-02T03:04:05.006Z\","
                         "\"$lastUpdatedVersion\":3}}");

    json_t *patch = parse("{\"a\":{\"c\":5},\"d\":null,\"e\":{\"f\":true}}");
    assert_int_equal(twin_merge(doc, patch), IOTDM_OK);
    assert_int_equal(twin_metadata_update(meta, patch, T2, 4, false), IOTDM_OK);
    /* a and a.c are touched (T2, v4); a.b keeps T1 v3; d's metadata is gone; e is new. */
    json_t *a = json_object_get(meta, "a");
    assert_string_equal(json_string_value(json_object_get(meta, "$lastUpdated")), T2);
    assert_int_equal(json_integer_value(json_object_get(meta, "$lastUpdatedVersion")), 4);
    assert_string_equal(json_string_value(json_object_get(a, "$lastUpdated")), T2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(a, "c"), "$lastUpdated")),
                        T2);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(a, "c"), "$lastUpdatedVersion")), 4);
    assert_string_equal(json_string_value(json_object_get(json_object_get(a, "b"), "$lastUpdated")),
                        T1);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(a, "b"), "$lastUpdatedVersion")), 3);
    assert_null(json_object_get(meta, "d"));
    assert_json_eq(json_object_get(meta, "e"),
                   "{\"$lastUpdated\":\"2024-06-07T08:09:10.011Z\",\"$lastUpdatedVersion\":4,"
                   "\"f\":{\"$lastUpdated\":\"2024-06-07T08:09:10.011Z\","
                   "\"$lastUpdatedVersion\":4}}");
    json_decref(patch);
    json_decref(doc);
    json_decref(meta);
}

static void test_metadata_reported_has_no_version(void **state)
{
    (void)state;
    json_t *meta = json_object();
    json_t *patch = parse("{\"battery\":55,\"o\":{\"x\":1}}");
    assert_int_equal(twin_metadata_update(meta, patch, T1, -1, false), IOTDM_OK);
    assert_json_eq(meta, "{\"$lastUpdated\":\"2024-01-02T03:04:05.006Z\","
                         "\"battery\":{\"$lastUpdated\":\"2024-01-02T03:04:05.006Z\"},"
                         "\"o\":{\"$lastUpdated\":\"2024-01-02T03:04:05.006Z\","
                         "\"x\":{\"$lastUpdated\":\"2024-01-02T03:04:05.006Z\"}}}");
    /* Replacing the object by a leaf drops its children's metadata. */
    json_decref(patch);
    patch = parse("{\"o\":7}");
    assert_int_equal(twin_metadata_update(meta, patch, T2, -1, false), IOTDM_OK);
    assert_json_eq(json_object_get(meta, "o"), "{\"$lastUpdated\":\"2024-06-07T08:09:10.011Z\"}");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(meta, "battery"), "$lastUpdated")), T1);
    json_decref(patch);
    json_decref(meta);
}

static void test_metadata_replace_rebuilds(void **state)
{
    (void)state;
    json_t *meta = parse("{\"$lastUpdated\":\"x\",\"old\":{\"$lastUpdated\":\"x\"}}");
    json_t *doc = parse("{\"new\":1,\"$version\":5}");
    assert_int_equal(twin_metadata_update(meta, doc, T2, 6, true), IOTDM_OK);
    assert_json_eq(meta, "{\"$lastUpdated\":\"2024-06-07T08:09:10.011Z\",\"$lastUpdatedVersion\":6,"
                         "\"new\":{\"$lastUpdated\":\"2024-06-07T08:09:10.011Z\","
                         "\"$lastUpdatedVersion\":6}}");
    json_decref(doc);
    json_decref(meta);
}

static void test_format_time(void **state)
{
    (void)state;
    char buf[TWIN_TIME_CAP];
    twin_format_time(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    twin_format_time(INT64_C(1459355088789), buf, sizeof(buf));
    assert_string_equal(buf, "2016-03-30T16:24:48.789Z");
    twin_format_time(-1, buf, sizeof(buf));
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
    assert_int_equal(strlen(buf), TWIN_TIME_CAP - 1);
    char small[8];
    twin_format_time(0, small, sizeof(small));
    assert_string_equal(small, "1970-01");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_non_object_rejected),
        cmocka_unit_test(test_check_depth_at_limit_ok_one_past_rejected),
        cmocka_unit_test(test_check_depth_counts_arrays),
        cmocka_unit_test(test_check_key_length_boundary),
        cmocka_unit_test(test_check_key_length_counts_utf8_bytes),
        cmocka_unit_test(test_check_key_characters),
        cmocka_unit_test(test_check_string_length_boundary),
        cmocka_unit_test(test_check_integer_range),
        cmocka_unit_test(test_check_nulls),
        cmocka_unit_test(test_section_size_accounting),
        cmocka_unit_test(test_check_size_boundary),
        cmocka_unit_test(test_merge_nested_null_deletes),
        cmocka_unit_test(test_metadata_desired_stamps_touched_nodes),
        cmocka_unit_test(test_metadata_reported_has_no_version),
        cmocka_unit_test(test_metadata_replace_rebuilds),
        cmocka_unit_test(test_format_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
