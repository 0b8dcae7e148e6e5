/* dm*reprovision: a device provisioned through DPS registers again and moves to the hub and
 * device id DPS assigns now (after the enrollment changed, or to recover from a bad state). */
#include <stdlib.h>
#include <string.h>

#include "capabilities/capabilities.h"
#include "common/log.h"

static char *message(const char *text)
{
    json_t *m = json_pack("{s:s}", "message", text);
    char *s = cap_dump(m);
    json_decref(m);
    return s;
}

static int reprovision_command(void *ctx, const char *name, const char *payload, char **out_json)
{
    (void)name;
    cap_env *env = ctx;
    json_t *req = json_loads(payload, JSON_DECODE_ANY, NULL);
    bool ok = json_is_null(req) || (json_is_object(req) && json_object_size(req) == 0);
    json_decref(req);
    if (!ok) {
        *out_json = message("reprovision takes no payload (null or {})");
        return 400;
    }
    char err[256] = "this device is not provisioned through DPS";
    iotdm_result r =
        env->reprovision ? env->reprovision(env->agent_ctx, err, sizeof err) : IOTDM_E_UNSUPPORTED;
    if (r < 0) {
        log_info("provisioning", "reprovision refused: %s", err);
        *out_json = message(err);
        return r == IOTDM_E_UNSUPPORTED || r == IOTDM_E_EXISTS ? 409 : 500;
    }
    /* The answer goes out before the agent leaves the hub: the agent waits for it. */
    json_t *status = cap_status(env, "pending",
                                "registering with DPS again; the device reconnects to the hub "
                                "and device id it is assigned");
    *out_json = cap_dump(status);
    json_decref(status);
    return 202;
}

iotdm_result cap_provisioning_start(cap_env *env)
{
    return iotdm_command_register(env->client, CAP_COMPONENT, "reprovision", reprovision_command,
                                  env);
}
