/* The agent ⇄ iotdm-configd wire format: length-prefixed JSON frames, requests, replies, errors. */
#ifndef IOTDM_PROTO_CONFIGD_FRAME_H
#define IOTDM_PROTO_CONFIGD_FRAME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iotdm/result.h"

#define CFGD_PROTO_VERSION   1
#define CFGD_FRAME_HEADER    4u              /* big-endian body length */
#define CFGD_FRAME_MAX       (1024u * 1024u) /* largest body */
#define CFGD_MAX_FDS         8u              /* descriptors passed with one request */
#define CFGD_MAX_OP_LEN      64u
#define CFGD_MAX_ID          INT64_C(9007199254740991) /* 2^53 - 1: exact in every JSON reader */
#define CFGD_DEFAULT_SOCKET  "/run/iotdm/configd.sock"
#define CFGD_MAX_MESSAGE_LEN 511u

/* Error codes. The first eight travel on the wire (docs/configd.md); the last three are produced by
 * the client only, when there is no reply to read. X(enum, wire name). */
#define CFGD_ERRCODE_TABLE(X)                                                                      \
    X(CFGD_ERR_MALFORMED, "malformed")                                                             \
    X(CFGD_ERR_UNKNOWN_OP, "unknown_op")                                                           \
    X(CFGD_ERR_INVALID_ARGUMENT, "invalid_argument")                                               \
    X(CFGD_ERR_NOT_FOUND, "not_found")                                                             \
    X(CFGD_ERR_PERMISSION_DENIED, "permission_denied")                                             \
    X(CFGD_ERR_TOO_LARGE, "too_large")                                                             \
    X(CFGD_ERR_FAILED, "failed")                                                                   \
    X(CFGD_ERR_UNSUPPORTED, "unsupported")                                                         \
    X(CFGD_ERR_UNREACHABLE, "unreachable")                                                         \
    X(CFGD_ERR_TIMEOUT, "timeout")                                                                 \
    X(CFGD_ERR_PROTOCOL, "protocol")

typedef enum {
#define CFGD_ERRCODE_ENUM(e, name) e,
    CFGD_ERRCODE_TABLE(CFGD_ERRCODE_ENUM)
#undef CFGD_ERRCODE_ENUM
} cfgd_errcode;

/* A structured error: the code and a human-readable message (never a secret). */
typedef struct {
    cfgd_errcode code;
    char message[CFGD_MAX_MESSAGE_LEN + 1];
} cfgd_error;

/* "invalid_argument", ...; "failed" for an out-of-range value. Static storage. */
const char *cfgd_errcode_name(cfgd_errcode code);
/* The code named by a wire name; false for an unknown name. */
bool cfgd_errcode_parse(const char *name, cfgd_errcode *out_code);
/* The iotdm_result that best matches a code (invalid_argument -> -EINVAL, timeout ->
 * IOTDM_E_TIMEOUT, ...). Never IOTDM_OK. */
IOTDM_NODISCARD iotdm_result cfgd_errcode_result(cfgd_errcode code);
/* Fills err with code and a printf-formatted message (truncated to fit). */
void cfgd_error_set(cfgd_error *err, cfgd_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- framing (never allocates) ---- */

/* Looks for one whole frame at the start of buf[0..len).
 * IOTDM_OK: out_body and out_body_len give the body (pointing into buf) and out_frame_len the
 *   bytes the frame occupies (header + body), so the next frame starts at buf + out_frame_len.
 * IOTDM_E_INCOMPLETE: more bytes are needed; nothing is set.
 * IOTDM_E_TOO_LARGE: the header announces more than CFGD_FRAME_MAX (known from 4 bytes alone).
 * IOTDM_E_MALFORMED: the header announces an empty body. */
IOTDM_NODISCARD iotdm_result cfgd_frame_peek(const uint8_t *buf, size_t len,
                                             const uint8_t **out_body, size_t *out_body_len,
                                             size_t *out_frame_len);
/* Writes the 4-byte header for a body of body_len bytes (body_len <= CFGD_FRAME_MAX). */
void cfgd_frame_header(size_t body_len, uint8_t out[CFGD_FRAME_HEADER]);

/* ---- messages ---- */

/* Serialises msg compactly into a newly allocated frame (header + body); free with xfree.
 * IOTDM_E_TOO_LARGE when the body would exceed CFGD_FRAME_MAX, -ENOMEM on allocation failure. */
IOTDM_NODISCARD iotdm_result cfgd_frame_encode(const json_t *msg, uint8_t **out_frame,
                                               size_t *out_len);

/* A parsed request; op and args borrow from the root it was parsed from. */
typedef struct {
    int64_t id;
    const char *op;
    json_t *args; /* always an object (an empty one when the request had none) */
} cfgd_request;

/* Parses a frame body as a request. *out_root (owned by the caller, json_decref) is set whenever
 * the body is a JSON object, even when the request is malformed, so the caller can still reply.
 * Returns IOTDM_OK; IOTDM_E_PROTOCOL when the body is not a JSON object (the connection should be
 * closed); IOTDM_E_MALFORMED for an object that is not a valid request (v, id, op, args), with
 * out_req->id set to the request's id when it could be read (else 0) and err->message saying why.
 */
IOTDM_NODISCARD iotdm_result cfgd_request_parse(const uint8_t *body, size_t len, json_t **out_root,
                                                cfgd_request *out_req, cfgd_error *err);

/* New request object; args (stolen; NULL for none) must be an object. NULL on failure. */
json_t *cfgd_request_new(int64_t id, const char *op, json_t *args);
/* New success reply; result is stolen (NULL gives {}). NULL on allocation failure. */
json_t *cfgd_reply_ok(int64_t id, json_t *result);
/* New error reply. NULL on allocation failure. */
json_t *cfgd_reply_error(int64_t id, cfgd_errcode code, const char *message);

/* Reads a reply. On ok, *out_result borrows from reply and IOTDM_OK is returned. On an error reply,
 * err is filled and cfgd_errcode_result(code) returned. A reply that is not well-formed or whose id
 * differs from expect_id gives IOTDM_E_PROTOCOL (err code "protocol"). */
IOTDM_NODISCARD iotdm_result cfgd_reply_parse(const json_t *reply, int64_t expect_id,
                                              json_t **out_result, cfgd_error *err);

#endif
