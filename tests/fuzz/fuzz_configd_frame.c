/* libFuzzer target: configd framing of a byte stream, request parsing, argument validation, and the
 * client's reply parsing, with invariants checked on everything accepted. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "configd/ops/ops.h"
#include "configd/optable.h"
#include "proto/configd_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* A zone name that passes may not be able to leave the zoneinfo folder. */
static void check_zone(const char *s, size_t len)
{
    cfgd_error err;
    if (!cfgd_zone_name_valid(s, len, &err))
        return;
    CHECK(len > 0 && s[0] != '/' && memchr(s, '\0', len) == NULL);
    CHECK(memchr(s, '.', len) == NULL);
}

static void check_server(const char *s, size_t len)
{
    cfgd_error err;
    if (!cfgd_ntp_server_valid(s, len, &err))
        return;
    for (size_t i = 0; i < len; i++)
        CHECK(s[i] != ' ' && s[i] != '\n' && s[i] != '\0' && s[i] != '=');
}

/* Re-encodes an accepted request; it must parse back to the same id, op and args. */
static void roundtrip(const cfgd_request *req)
{
    json_t *again = cfgd_request_new(req->id, req->op, json_deep_copy(req->args));
    CHECK(again);
    uint8_t *frame;
    size_t len;
    if (cfgd_frame_encode(again, &frame, &len) == IOTDM_OK) {
        const uint8_t *body;
        size_t body_len, frame_len;
        CHECK(cfgd_frame_peek(frame, len, &body, &body_len, &frame_len) == IOTDM_OK);
        CHECK(frame_len == len);
        json_t *root;
        cfgd_request back;
        cfgd_error err;
        CHECK(cfgd_request_parse(body, body_len, &root, &back, &err) == IOTDM_OK);
        CHECK(back.id == req->id && strcmp(back.op, req->op) == 0);
        CHECK(json_equal(back.args, req->args));
        json_decref(root);
        xfree(frame);
    }
    json_decref(again);
}

static void one_body(const uint8_t *body, size_t len)
{
    json_t *root;
    cfgd_request req;
    cfgd_error err;
    iotdm_result r = cfgd_request_parse(body, len, &root, &req, &err);
    CHECK(r == IOTDM_OK || r == IOTDM_E_MALFORMED || r == IOTDM_E_PROTOCOL || r == -ENOMEM);
    CHECK((root != NULL) == (r != IOTDM_E_PROTOCOL));
    if (r == IOTDM_OK) {
        CHECK(json_is_object(req.args) && req.id >= 0 && req.id <= CFGD_MAX_ID);
        const cfgd_op *op = cfgd_check_request(&req, 0, &err);
        CHECK(op || err.code == CFGD_ERR_UNKNOWN_OP || err.code == CFGD_ERR_INVALID_ARGUMENT);
        const json_t *zone = json_object_get(req.args, "zone");
        if (json_is_string(zone))
            check_zone(json_string_value(zone), json_string_length(zone));
        roundtrip(&req);
    }
    if (root) {
        /* The same bytes read as a reply, as the client would. */
        json_t *result;
        iotdm_result rr = cfgd_reply_parse(root, 1, &result, &err);
        CHECK(rr != IOTDM_OK || json_is_object(result));
        json_decref(root);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The input as a stream of frames, as the server reads it. */
    size_t off = 0;
    while (off < size) {
        const uint8_t *body;
        size_t body_len, frame_len;
        iotdm_result r = cfgd_frame_peek(data + off, size - off, &body, &body_len, &frame_len);
        if (r != IOTDM_OK)
            break;
        CHECK(frame_len == CFGD_FRAME_HEADER + body_len && frame_len <= size - off);
        CHECK(body == data + off + CFGD_FRAME_HEADER && body_len <= CFGD_FRAME_MAX);
        one_body(body, body_len);
        off += frame_len;
    }
    /* The whole input as one body, and as names for the validators. */
    if (size > 0 && size <= 64 * 1024)
        one_body(data, size);
    check_zone((const char *)data, size);
    check_server((const char *)data, size);
    return 0;
}
