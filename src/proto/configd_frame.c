/* The agent ⇄ iotdm-configd wire format: framing, request parsing, reply building and reading. */
#include "proto/configd_frame.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"

static const char *const errcode_names[] = {
#define CFGD_ERRCODE_NAME(e, name) name,
    CFGD_ERRCODE_TABLE(CFGD_ERRCODE_NAME)
#undef CFGD_ERRCODE_NAME
};
#define ERRCODE_COUNT (sizeof errcode_names / sizeof *errcode_names)

const char *cfgd_errcode_name(cfgd_errcode code)
{
    if ((size_t)code >= ERRCODE_COUNT)
        return "failed";
    return errcode_names[code];
}

bool cfgd_errcode_parse(const char *name, cfgd_errcode *out_code)
{
    for (size_t i = 0; i < ERRCODE_COUNT; i++) {
        if (strcmp(errcode_names[i], name) == 0) {
            *out_code = (cfgd_errcode)i;
            return true;
        }
    }
    return false;
}

iotdm_result cfgd_errcode_result(cfgd_errcode code)
{
    switch (code) {
    case CFGD_ERR_MALFORMED:
        return IOTDM_E_MALFORMED;
    case CFGD_ERR_UNKNOWN_OP:
    case CFGD_ERR_UNSUPPORTED:
        return IOTDM_E_UNSUPPORTED;
    case CFGD_ERR_INVALID_ARGUMENT:
        return -EINVAL;
    case CFGD_ERR_NOT_FOUND:
        return IOTDM_E_NOT_FOUND;
    case CFGD_ERR_PERMISSION_DENIED:
        return IOTDM_E_FORBIDDEN;
    case CFGD_ERR_TOO_LARGE:
        return IOTDM_E_TOO_LARGE;
    case CFGD_ERR_UNREACHABLE:
        return -ECONNREFUSED;
    case CFGD_ERR_TIMEOUT:
        return IOTDM_E_TIMEOUT;
    case CFGD_ERR_PROTOCOL:
        return IOTDM_E_PROTOCOL;
    case CFGD_ERR_FAILED:
    default:
        return IOTDM_E_INTERNAL;
    }
}

void cfgd_error_set(cfgd_error *err, cfgd_errcode code, const char *fmt, ...)
{
    if (!err)
        return;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

iotdm_result cfgd_frame_peek(const uint8_t *buf, size_t len, const uint8_t **out_body,
                             size_t *out_body_len, size_t *out_frame_len)
{
    if (len < CFGD_FRAME_HEADER)
        return IOTDM_E_INCOMPLETE;
    uint32_t body_len =
        (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | (uint32_t)buf[3];
    /* Decided from the header alone, so a reader never buffers an oversize body. */
    if (body_len > CFGD_FRAME_MAX)
        return IOTDM_E_TOO_LARGE;
    if (body_len == 0)
        return IOTDM_E_MALFORMED;
    if (len - CFGD_FRAME_HEADER < body_len)
        return IOTDM_E_INCOMPLETE;
    *out_body = buf + CFGD_FRAME_HEADER;
    *out_body_len = body_len;
    *out_frame_len = CFGD_FRAME_HEADER + (size_t)body_len;
    return IOTDM_OK;
}

void cfgd_frame_header(size_t body_len, uint8_t out[CFGD_FRAME_HEADER])
{
    out[0] = (uint8_t)(body_len >> 24);
    out[1] = (uint8_t)(body_len >> 16);
    out[2] = (uint8_t)(body_len >> 8);
    out[3] = (uint8_t)body_len;
}

iotdm_result cfgd_frame_encode(const json_t *msg, uint8_t **out_frame, size_t *out_len)
{
    size_t body_len = json_dumpb(msg, NULL, 0, JSON_COMPACT);
    if (body_len == 0)
        return IOTDM_E_MALFORMED;
    if (body_len > CFGD_FRAME_MAX)
        return IOTDM_E_TOO_LARGE;
    uint8_t *frame = xmalloc(CFGD_FRAME_HEADER + body_len);
    if (!frame)
        return -ENOMEM;
    if (json_dumpb(msg, (char *)frame + CFGD_FRAME_HEADER, body_len, JSON_COMPACT) != body_len) {
        xfree(frame);
        return IOTDM_E_INTERNAL;
    }
    cfgd_frame_header(body_len, frame);
    *out_frame = frame;
    *out_len = CFGD_FRAME_HEADER + body_len;
    return IOTDM_OK;
}

static bool read_id(const json_t *root, int64_t *out_id)
{
    const json_t *id = json_object_get(root, "id");
    if (!json_is_integer(id))
        return false;
    json_int_t v = json_integer_value(id);
    if (v < 0 || v > CFGD_MAX_ID)
        return false;
    *out_id = (int64_t)v;
    return true;
}

/* Checks the members of a request object; sets out_req on success. */
static iotdm_result check_request(json_t *root, cfgd_request *out_req, cfgd_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value)
    {
        if (strcmp(key, "v") && strcmp(key, "id") && strcmp(key, "op") && strcmp(key, "args")) {
            cfgd_error_set(err, CFGD_ERR_MALFORMED, "unknown request member \"%.64s\"", key);
            return IOTDM_E_MALFORMED;
        }
    }
    json_t *v = json_object_get(root, "v");
    if (!json_is_integer(v) || json_integer_value(v) != CFGD_PROTO_VERSION) {
        cfgd_error_set(err, CFGD_ERR_MALFORMED, "\"v\" must be %d", CFGD_PROTO_VERSION);
        return IOTDM_E_MALFORMED;
    }
    if (!read_id(root, &out_req->id)) {
        cfgd_error_set(err, CFGD_ERR_MALFORMED, "\"id\" must be an integer in [0, 2^53)");
        return IOTDM_E_MALFORMED;
    }
    json_t *op = json_object_get(root, "op");
    size_t op_len = json_string_length(op);
    if (!json_is_string(op) || op_len == 0 || op_len > CFGD_MAX_OP_LEN ||
        strlen(json_string_value(op)) != op_len) {
        cfgd_error_set(err, CFGD_ERR_MALFORMED, "\"op\" must be a non-empty string");
        return IOTDM_E_MALFORMED;
    }
    json_t *args = json_object_get(root, "args");
    if (args && !json_is_object(args)) {
        cfgd_error_set(err, CFGD_ERR_MALFORMED, "\"args\" must be an object");
        return IOTDM_E_MALFORMED;
    }
    if (!args) {
        args = json_object();
        if (!args || json_object_set_new(root, "args", args) != 0) {
            cfgd_error_set(err, CFGD_ERR_FAILED, "out of memory");
            return -ENOMEM;
        }
    }
    out_req->op = json_string_value(op);
    out_req->args = args;
    return IOTDM_OK;
}

iotdm_result cfgd_request_parse(const uint8_t *body, size_t len, json_t **out_root,
                                cfgd_request *out_req, cfgd_error *err)
{
    *out_root = NULL;
    memset(out_req, 0, sizeof *out_req);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        cfgd_error_set(err, CFGD_ERR_MALFORMED, "frame is not a JSON object%s%.200s",
                       root ? "" : ": ", root ? "" : jerr.text);
        json_decref(root);
        return IOTDM_E_PROTOCOL;
    }
    *out_root = root;
    iotdm_result r = check_request(root, out_req, err);
    if (r < 0) {
        int64_t id = 0;
        out_req->id = read_id(root, &id) ? id : 0;
        out_req->op = NULL;
        out_req->args = NULL;
    }
    return r;
}

json_t *cfgd_request_new(int64_t id, const char *op, json_t *args)
{
    if (!args)
        args = json_object();
    if (!json_is_object(args)) {
        json_decref(args);
        return NULL;
    }
    return json_pack("{s:i, s:I, s:s, s:o}", "v", CFGD_PROTO_VERSION, "id", (json_int_t)id, "op",
                     op, "args", args);
}

json_t *cfgd_reply_ok(int64_t id, json_t *result)
{
    if (!result)
        result = json_object();
    return json_pack("{s:i, s:I, s:b, s:o}", "v", CFGD_PROTO_VERSION, "id", (json_int_t)id, "ok", 1,
                     "result", result);
}

json_t *cfgd_reply_error(int64_t id, cfgd_errcode code, const char *message)
{
    return json_pack("{s:i, s:I, s:b, s:{s:s, s:s}}", "v", CFGD_PROTO_VERSION, "id", (json_int_t)id,
                     "ok", 0, "error", "code", cfgd_errcode_name(code), "message",
                     message ? message : "");
}

static iotdm_result protocol_error(cfgd_error *err, const char *why)
{
    cfgd_error_set(err, CFGD_ERR_PROTOCOL, "unreadable reply from iotdm-configd: %s", why);
    return IOTDM_E_PROTOCOL;
}

iotdm_result cfgd_reply_parse(const json_t *reply, int64_t expect_id, json_t **out_result,
                              cfgd_error *err)
{
    *out_result = NULL;
    int64_t id;
    const json_t *ok = json_object_get(reply, "ok");
    if (!json_is_object(reply) || !json_is_boolean(ok) || !read_id(reply, &id))
        return protocol_error(err, "not a reply object");
    if (json_is_true(ok)) {
        json_t *result = json_object_get(reply, "result");
        if (id != expect_id)
            return protocol_error(err, "reply to another request");
        if (!json_is_object(result))
            return protocol_error(err, "\"result\" is not an object");
        *out_result = result;
        return IOTDM_OK;
    }
    /* id 0 is a connection-level error (refused peer, unreadable frame) that answers whatever
     * request was in flight. */
    if (id != expect_id && id != 0)
        return protocol_error(err, "reply to another request");
    const json_t *e = json_object_get(reply, "error");
    const char *code_name = json_string_value(json_object_get(e, "code"));
    const char *message = json_string_value(json_object_get(e, "message"));
    cfgd_errcode code;
    if (!code_name || !cfgd_errcode_parse(code_name, &code) || code >= CFGD_ERR_UNREACHABLE)
        return protocol_error(err, "unknown error code");
    cfgd_error_set(err, code, "%s", message ? message : cfgd_errcode_name(code));
    return cfgd_errcode_result(code);
}
