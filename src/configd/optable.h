/* The fixed operation table of iotdm-configd: op name -> argument validator + handler. */
#ifndef IOTDM_CONFIGD_OPTABLE_H
#define IOTDM_CONFIGD_OPTABLE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "configd/backend.h"
#include "configd/config.h"
#include "proto/configd_frame.h"

/* What a handler works with. The descriptors belong to the server, which closes them after the
 * handler returns. */
typedef struct {
    cfgd_backend *be;
    const cfgd_config *cfg;
    const int *fds;
    size_t nfds;
} cfgd_ctx;

/* Checks args without touching the OS (so it can be fuzzed); 0 or -EINVAL with err filled. */
typedef IOTDM_NODISCARD iotdm_result (*cfgd_validate_fn)(const json_t *args, cfgd_error *err);
/* Performs the operation on validated args; 0 with *out_result a new object, or negative with err
 * filled (its code goes on the wire). */
typedef IOTDM_NODISCARD iotdm_result (*cfgd_handle_fn)(cfgd_ctx *ctx, const json_t *args,
                                                       json_t **out_result, cfgd_error *err);

typedef struct {
    const char *name;
    unsigned max_fds; /* descriptors the op accepts with a request */
    cfgd_validate_fn validate;
    cfgd_handle_fn handle;
} cfgd_op;

/* The op called name, or NULL. */
const cfgd_op *cfgd_op_find(const char *name);
/* The table, for --help and tests. */
const cfgd_op *cfgd_op_table(size_t *out_count);

/* Finds the op and validates the request (args, descriptor count) without touching the OS.
 * Returns the op, or NULL with err filled (unknown_op, invalid_argument). */
const cfgd_op *cfgd_check_request(const cfgd_request *req, size_t nfds, cfgd_error *err);

/* How one request ended, for the server's log line. */
typedef struct {
    int64_t id;
    char op[CFGD_MAX_OP_LEN + 1]; /* "-" when the request had none */
    bool ok;
    cfgd_error error;
} cfgd_outcome;

/* Handles one frame body with the descriptors that came with it. Returns the reply to send (a new
 * reference), or NULL when the body is not a JSON object, in which case the connection must be
 * closed (out->error says why). */
json_t *cfgd_dispatch(cfgd_ctx *ctx, const uint8_t *body, size_t len, cfgd_outcome *out);

#endif
