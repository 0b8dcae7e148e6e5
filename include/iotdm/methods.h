/* Direct methods (and PnP commands, which are methods named "component*command"). */
#ifndef IOTDM_METHODS_H
#define IOTDM_METHODS_H

#include "iotdm/client.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A method call: payload_json is the request body (JSON text, "null" when there is none).
 * Return the status the caller sees (200, 202 for "accepted, progress is reported", 4xx, 5xx) and
 * set *out_json to a malloc'd JSON text (or leave it NULL for null); the library frees it. */
typedef int (*iotdm_method_fn)(void *ctx, const char *name, const char *payload_json,
                               char **out_json);

/* Registers a handler for one method name. Registering the same name twice replaces the handler.
 * Calls to names nobody registered are answered 404 {"message":"no such method"}. */
IOTDM_NODISCARD iotdm_result iotdm_method_register(iotdm_client *client, const char *name,
                                                   iotdm_method_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
