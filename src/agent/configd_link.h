/* The agent's line to iotdm-configd: one call per operation, with a clear error when configd
 * cannot be reached (logged once per outage, not once per call). */
#ifndef IOTDM_AGENT_CONFIGD_LINK_H
#define IOTDM_AGENT_CONFIGD_LINK_H

#include <jansson.h>
#include <stdbool.h>

#include "iotdm/result.h"

#include "proto/configd_client.h"

typedef struct {
    cfgd_client *client;
    char socket_path[256];
    bool unreachable_logged;
} agent_configd;

void agent_configd_init(agent_configd *link, const char *socket_path);
void agent_configd_deinit(agent_configd *link);
/* Matches cap_env.configd: IOTDM_E_MALFORMED when configd refused the arguments
 * (invalid_argument), other errors otherwise; err always says why. */
IOTDM_NODISCARD iotdm_result agent_configd_call(void *ctx, const char *op, json_t *args,
                                                json_t **out_result, char *err, size_t err_cap);
/* The same with file descriptors (matches cap_env.configd_fds). */
IOTDM_NODISCARD iotdm_result agent_configd_call_fds(void *ctx, const char *op, json_t *args,
                                                    const int *fds, size_t nfds,
                                                    json_t **out_result, char *err, size_t err_cap);

#endif
