/* A small blocking client for iotdm-configd: one request at a time, with a timeout and clear
 * errors. */
#ifndef IOTDM_PROTO_CONFIGD_CLIENT_H
#define IOTDM_PROTO_CONFIGD_CLIENT_H

#include <jansson.h>
#include <stddef.h>

#include "proto/configd_frame.h"

#define CFGD_DEFAULT_TIMEOUT_MS 30000

typedef struct cfgd_client cfgd_client;

/* A client for the socket at socket_path (copied; NULL means CFGD_DEFAULT_SOCKET). Nothing is
 * connected yet: the first call connects, and a call after a broken connection reconnects, so a
 * client can be made before configd is up. Returns NULL only when out of memory. */
cfgd_client *cfgd_client_new(const char *socket_path);
/* Closes the connection and frees the client. NULL is fine. */
void cfgd_client_free(cfgd_client *client);

/* Sends op with args (borrowed; NULL means {}) and, when nfds > 0, the descriptors fds[0..nfds)
 * (at most CFGD_MAX_FDS, passed with SCM_RIGHTS; the caller keeps and closes its own copies), then
 * waits at most timeout_ms (<= 0: CFGD_DEFAULT_TIMEOUT_MS) for the reply.
 * IOTDM_OK: *out_result is the reply's "result" object, a new reference (json_decref it);
 * out_result may be NULL when the result is not wanted. Otherwise a negative result and out_err
 * (may be NULL) says what happened:
 *   - configd answered with an error: its code ("invalid_argument", "permission_denied", ...) and
 *     message; the result is cfgd_errcode_result(code);
 *   - "unreachable": the socket is missing or refuses, and the message names the socket path, the
 *     system error and the likely cause ("cannot reach iotdm-configd at /run/iotdm/configd.sock:
 *     No such file or directory — is iotdm-configd running?"); the result is -errno;
 *   - "timeout" (IOTDM_E_TIMEOUT): no reply in time; the operation may still complete;
 *   - "protocol" (IOTDM_E_PROTOCOL): the connection broke or the reply was unreadable; whether the
 *     operation ran is unknown.
 * After "timeout" or "protocol" the connection is closed; the next call opens a new one. */
IOTDM_NODISCARD iotdm_result cfgd_client_call(cfgd_client *client, const char *op,
                                              const json_t *args, const int *fds, size_t nfds,
                                              int timeout_ms, json_t **out_result,
                                              cfgd_error *out_err);

/* One call on a connection of its own: cfgd_client_new + cfgd_client_call + cfgd_client_free. */
IOTDM_NODISCARD iotdm_result cfgd_call(const char *socket_path, const char *op, const json_t *args,
                                       const int *fds, size_t nfds, int timeout_ms,
                                       json_t **out_result, cfgd_error *out_err);

#endif
