/* The agent's configd calls, on one persistent connection that reconnects by itself. */
#include "agent/configd_link.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"

#define CALL_TIMEOUT_MS 60000 /* a package install or a reboot request can take a while */

void agent_configd_init(agent_configd *link, const char *socket_path)
{
    memset(link, 0, sizeof *link);
    snprintf(link->socket_path, sizeof link->socket_path, "%s", socket_path);
    link->client = cfgd_client_new(socket_path);
}

void agent_configd_deinit(agent_configd *link)
{
    cfgd_client_free(link->client);
    link->client = NULL;
}

iotdm_result agent_configd_call(void *ctx, const char *op, json_t *args, json_t **out_result,
                                char *err, size_t err_cap)
{
    return agent_configd_call_fds(ctx, op, args, NULL, 0, out_result, err, err_cap);
}

iotdm_result agent_configd_call_fds(void *ctx, const char *op, json_t *args, const int *fds,
                                    size_t nfds, json_t **out_result, char *err, size_t err_cap)
{
    agent_configd *link = ctx;
    cfgd_error e = {0};
    *out_result = NULL;
    if (!link->client) {
        snprintf(err, err_cap, "out of memory");
        return -ENOMEM;
    }
    iotdm_result r =
        cfgd_client_call(link->client, op, args, fds, nfds, CALL_TIMEOUT_MS, out_result, &e);
    if (r == IOTDM_OK) {
        if (link->unreachable_logged)
            log_info("agent", "iotdm-configd is reachable again at %s", link->socket_path);
        link->unreachable_logged = false;
        return IOTDM_OK;
    }
    snprintf(err, err_cap, "%s", e.message);
    if (e.code == CFGD_ERR_UNREACHABLE) {
        if (!link->unreachable_logged)
            log_error("agent", "%s", e.message);
        link->unreachable_logged = true;
    } else {
        log_info("agent", "configd op=%s failed: %s: %s", op, cfgd_errcode_name(e.code), e.message);
    }
    /* The capabilities tell "your value was wrong" (400) from "the device failed" (500). */
    return e.code == CFGD_ERR_INVALID_ARGUMENT || e.code == CFGD_ERR_NOT_FOUND ? IOTDM_E_MALFORMED
                                                                               : r;
}
