/* Unit tests for the configd wire format: framing limits, requests, replies and error codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"
#include "proto/configd_frame.h"

static iotdm_result peek(const uint8_t *buf, size_t len, size_t *out_body_len, size_t *out_frame)
{
    const uint8_t *body;
    return cfgd_frame_peek(buf, len, &body, out_body_len, out_frame);
}

static void test_frame_peek_short_header_incomplete(void **state)
{
    (void)state;
    uint8_t buf[4] = {0, 0, 0, 2};
    size_t bl, fl;
    for (size_t n = 0; n < 4; n++)
        assert_int_equal(peek(buf, n, &bl, &fl), IOTDM_E_INCOMPLETE);
}

static void test_frame_peek_partial_body_incomplete(void **state)
{
    (void)state;
    uint8_t buf[] = {0, 0, 0, 2, '{'};
    size_t bl, fl;
    assert_int_equal(peek(buf, sizeof buf, &bl, &fl), IOTDM_E_INCOMPLETE);
}

static void test_frame_peek_complete_points_into_input(void **state)
{
    (void)state;
    uint8_t buf[] = {0, 0, 0, 2, '{', '}', 0, 0, 0, 3, 'x'};
    const uint8_t *body;
    size_t bl, fl;
    assert_int_equal(cfgd_frame_peek(buf, sizeof buf, &body, &bl, &fl), IOTDM_OK);
    assert_ptr_equal(body, buf + 4);
    assert_int_equal(bl, 2);
    assert_int_equal(fl, 6);
    /* The next frame starts right after and is still incomplete. */
    assert_int_equal(peek(buf + fl, sizeof buf - fl, &bl, &fl), IOTDM_E_INCOMPLETE);
}

static void test_frame_peek_oversize_from_header_alone(void **state)
{
    (void)state;
    uint8_t over[4];
    cfgd_frame_header(CFGD_FRAME_MAX + 1, over);
    size_t bl, fl;
    assert_int_equal(peek(over, 4, &bl, &fl), IOTDM_E_TOO_LARGE);
    uint8_t huge[4] = {0xff, 0xff, 0xff, 0xff};
    assert_int_equal(peek(huge, 4, &bl, &fl), IOTDM_E_TOO_LARGE);
    uint8_t max[4];
    cfgd_frame_header(CFGD_FRAME_MAX, max);
    assert_int_equal(peek(max, 4, &bl, &fl), IOTDM_E_INCOMPLETE);
}

static void test_frame_peek_empty_body_malformed(void **state)
{
    (void)state;
    uint8_t buf[4] = {0, 0, 0, 0};
    size_t bl, fl;
    assert_int_equal(peek(buf, 4, &bl, &fl), IOTDM_E_MALFORMED);
}

static void test_frame_header_is_big_endian(void **state)
{
    (void)state;
    uint8_t h[4];
    cfgd_frame_header(0x00102030, h);
    assert_int_equal(h[0], 0x00);
    assert_int_equal(h[1], 0x10);
    assert_int_equal(h[2], 0x20);
    assert_int_equal(h[3], 0x30);
}

static void test_frame_encode_roundtrip(void **state)
{
    (void)state;
    json_t *req = cfgd_request_new(7, "time.set_zone", json_pack("{s:s}", "zone", "Europe/Berlin"));
    uint8_t *frame;
    size_t len;
    assert_int_equal(cfgd_frame_encode(req, &frame, &len), IOTDM_OK);
    const uint8_t *body;
    size_t bl, fl;
    assert_int_equal(cfgd_frame_peek(frame, len, &body, &bl, &fl), IOTDM_OK);
    assert_int_equal(fl, len);
    json_t *root;
    cfgd_request r;
    cfgd_error err;
    assert_int_equal(cfgd_request_parse(body, bl, &root, &r, &err), IOTDM_OK);
    assert_int_equal(r.id, 7);
    assert_string_equal(r.op, "time.set_zone");
    assert_string_equal(json_string_value(json_object_get(r.args, "zone")), "Europe/Berlin");
    json_decref(root);
    json_decref(req);
    xfree(frame);
}

static void test_frame_encode_over_limit_too_large(void **state)
{
    (void)state;
    char *big = malloc(CFGD_FRAME_MAX + 1);
    memset(big, 'a', CFGD_FRAME_MAX);
    big[CFGD_FRAME_MAX] = '\0';
    json_t *msg = json_pack("{s:s}", "x", big);
    uint8_t *frame = NULL;
    size_t len;
    assert_int_equal(cfgd_frame_encode(msg, &frame, &len), IOTDM_E_TOO_LARGE);
    assert_null(frame);
    json_decref(msg);
    free(big);
}

/* Parses text as a request; returns the result and the request/error. */
static iotdm_result parse(const char *text, cfgd_request *r, cfgd_error *err, json_t **root)
{
    return cfgd_request_parse((const uint8_t *)text, strlen(text), root, r, err);
}

static void test_request_without_args_gets_empty_object(void **state)
{
    (void)state;
    cfgd_request r;
    cfgd_error err;
    json_t *root;
    assert_int_equal(parse("{\"v\":1,\"id\":3,\"op\":\"time.get\"}", &r, &err, &root), IOTDM_OK);
    assert_true(json_is_object(r.args));
    assert_int_equal(json_object_size(r.args), 0);
    json_decref(root);
}

static void test_request_not_object_protocol_error(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "[1,2]",
        "\"x\"",
        "42",
        "null",
        "{",
        "{\"v\":1}}",
        "not json",
        "{\"a\":1,\"a\":2}",
        "{\"v\":1,\"id\":1,\"op\":\"a\\u0000b\"}",
        "\xff\xfe",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        cfgd_request r;
        cfgd_error err;
        json_t *root = (json_t *)1;
        assert_int_equal(parse(bodies[i], &r, &err, &root), IOTDM_E_PROTOCOL);
        assert_null(root);
        assert_int_equal(err.code, CFGD_ERR_MALFORMED);
    }
}

static void test_request_bad_members_malformed_with_id(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        int64_t id;
    } cases[] = {
        {"{\"v\":2,\"id\":5,\"op\":\"time.get\"}", 5},
        {"{\"id\":5,\"op\":\"time.get\"}", 5},
        {"{\"v\":1,\"op\":\"time.get\"}", 0},
        {"{\"v\":1,\"id\":-1,\"op\":\"time.get\"}", 0},
        {"{\"v\":1,\"id\":9007199254740992,\"op\":\"time.get\"}", 0},
        {"{\"v\":1,\"id\":1.5,\"op\":\"time.get\"}", 0},
        {"{\"v\":1,\"id\":6}", 6},
        {"{\"v\":1,\"id\":6,\"op\":7}", 6},
        {"{\"v\":1,\"id\":6,\"op\":\"\"}", 6},
        {"{\"v\":1,\"id\":6,\"op\":"
         "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
         6},
        {"{\"v\":1,\"id\":6,\"op\":\"time.get\",\"args\":[]}", 6},
        {"{\"v\":1,\"id\":6,\"op\":\"time.get\",\"extra\":1}", 6},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cfgd_request r;
        cfgd_error err;
        json_t *root;
        assert_int_equal(parse(cases[i].body, &r, &err, &root), IOTDM_E_MALFORMED);
        assert_non_null(root);
        assert_int_equal(r.id, cases[i].id);
        assert_null(r.op);
        assert_int_equal(err.code, CFGD_ERR_MALFORMED);
        assert_true(strlen(err.message) > 0);
        json_decref(root);
    }
}

static void test_reply_ok_roundtrip(void **state)
{
    (void)state;
    json_t *reply = cfgd_reply_ok(9, json_pack("{s:b}", "rebooting", 1));
    json_t *result;
    cfgd_error err;
    assert_int_equal(cfgd_reply_parse(reply, 9, &result, &err), IOTDM_OK);
    assert_true(json_is_true(json_object_get(result, "rebooting")));
    json_decref(reply);
}

static void test_reply_error_maps_code_and_message(void **state)
{
    (void)state;
    json_t *reply = cfgd_reply_error(4, CFGD_ERR_INVALID_ARGUMENT, "bad zone");
    json_t *result;
    cfgd_error err;
    assert_int_equal(cfgd_reply_parse(reply, 4, &result, &err), -EINVAL);
    assert_null(result);
    assert_int_equal(err.code, CFGD_ERR_INVALID_ARGUMENT);
    assert_string_equal(err.message, "bad zone");
    json_decref(reply);
    /* id 0 answers whatever was in flight (a refused peer, an unreadable frame). */
    reply = cfgd_reply_error(0, CFGD_ERR_PERMISSION_DENIED, "no");
    assert_int_equal(cfgd_reply_parse(reply, 4, &result, &err), IOTDM_E_FORBIDDEN);
    assert_int_equal(err.code, CFGD_ERR_PERMISSION_DENIED);
    json_decref(reply);
}

static void test_reply_wrong_id_or_shape_protocol(void **state)
{
    (void)state;
    static const char *const replies[] = {
        "{\"v\":1,\"id\":5,\"ok\":true,\"result\":{}}",
        "{\"v\":1,\"id\":4,\"ok\":true}",
        "{\"v\":1,\"id\":4,\"ok\":true,\"result\":[]}",
        "{\"v\":1,\"id\":4,\"ok\":\"yes\",\"result\":{}}",
        "{\"v\":1,\"ok\":true,\"result\":{}}",
        "{\"v\":1,\"id\":5,\"ok\":false,\"error\":{\"code\":\"failed\",\"message\":\"x\"}}",
        "{\"v\":1,\"id\":4,\"ok\":false,\"error\":{\"code\":\"bogus\",\"message\":\"x\"}}",
        "{\"v\":1,\"id\":4,\"ok\":false,\"error\":{\"code\":\"timeout\",\"message\":\"x\"}}",
        "{\"v\":1,\"id\":4,\"ok\":false}",
        "[]",
    };
    for (size_t i = 0; i < sizeof replies / sizeof *replies; i++) {
        json_t *reply = json_loads(replies[i], 0, NULL);
        json_t *result;
        cfgd_error err;
        assert_int_equal(cfgd_reply_parse(reply, 4, &result, &err), IOTDM_E_PROTOCOL);
        assert_int_equal(err.code, CFGD_ERR_PROTOCOL);
        json_decref(reply);
    }
}

static void test_errcode_names_roundtrip(void **state)
{
    (void)state;
    static const char *const wire[] = {"malformed",         "unknown_op", "invalid_argument",
                                       "not_found",         "too_large",  "failed",
                                       "permission_denied", "unsupported"};
    for (size_t i = 0; i < sizeof wire / sizeof *wire; i++) {
        cfgd_errcode code;
        assert_true(cfgd_errcode_parse(wire[i], &code));
        assert_string_equal(cfgd_errcode_name(code), wire[i]);
        assert_true(cfgd_errcode_result(code) < 0);
    }
    cfgd_errcode code;
    assert_false(cfgd_errcode_parse("nope", &code));
    assert_string_equal(cfgd_errcode_name((cfgd_errcode)999), "failed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_peek_short_header_incomplete),
        cmocka_unit_test(test_frame_peek_partial_body_incomplete),
        cmocka_unit_test(test_frame_peek_complete_points_into_input),
        cmocka_unit_test(test_frame_peek_oversize_from_header_alone),
        cmocka_unit_test(test_frame_peek_empty_body_malformed),
        cmocka_unit_test(test_frame_header_is_big_endian),
        cmocka_unit_test(test_frame_encode_roundtrip),
        cmocka_unit_test(test_frame_encode_over_limit_too_large),
        cmocka_unit_test(test_request_without_args_gets_empty_object),
        cmocka_unit_test(test_request_not_object_protocol_error),
        cmocka_unit_test(test_request_bad_members_malformed_with_id),
        cmocka_unit_test(test_reply_ok_roundtrip),
        cmocka_unit_test(test_reply_error_maps_code_and_message),
        cmocka_unit_test(test_reply_wrong_id_or_shape_protocol),
        cmocka_unit_test(test_errcode_names_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
