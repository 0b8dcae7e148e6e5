/* dm*factoryReset: configd wipes the device's state (the paths configured on the device, plus an
 * image-reset hook), optionally keeping the provisioning identity, then reboots. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capabilities/capabilities.h"
#include "common/log.h"
#include "common/timeutil.h"

/* The reported status must reach the hub before configd wipes the state directory. */
#define DRAIN_WAIT_MS 5000

typedef struct {
    cap_env *env;
    bool queued;
    bool keep_provisioning;
    /* Real (monotonic) time, not the scheduler's clock, which tests may freeze: */
    int64_t started_mono;    /* when the command was accepted, to bound the drain wait */
    int64_t next_check_mono; /* when to look at the outbox again */
} reset_cap;

static void report_status(reset_cap *fr, const char *state, const char *message)
{
    json_t *v = json_pack("{s:b, s:o}", "keepProvisioning", fr->keep_provisioning, "lastChange",
                          cap_status(fr->env, state, message));
    cap_report(fr->env, "factoryResetCmd", v);
}

static int reset_command(void *ctx, const char *name, const char *payload, char **out_json)
{
    (void)name;
    reset_cap *fr = ctx;
    json_error_t jerr;
    json_t *req = json_loads(payload, JSON_DECODE_ANY, &jerr);
    json_t *keep = json_object_get(req, "keepProvisioning");
    if ((!json_is_object(req) && !json_is_null(req)) || (keep && !json_is_boolean(keep))) {
        json_decref(req);
        *out_json = strdup("{\"message\":\"the payload must be {\\\"keepProvisioning\\\": "
                           "true|false} or null\"}");
        return 400;
    }
    if (fr->queued) {
        json_decref(req);
        *out_json = strdup("{\"message\":\"a factory reset is already in progress\"}");
        return 409;
    }
    fr->keep_provisioning = json_is_true(keep);
    json_decref(req);
    fr->queued = true;
    fr->started_mono = fr->next_check_mono = time_mono_ms();
    report_status(fr, "pending", "waiting for the status to reach the hub");
    json_t *status = cap_status(fr->env, "pending", "factory reset accepted");
    *out_json = cap_dump(status);
    json_decref(status);
    return 202;
}

static int64_t reset_next_due(void *ctx)
{
    reset_cap *fr = ctx;
    /* Due "now" when it is time to look at the outbox again; the agent loop wakes at least once
     * a second and on every message from the hub. */
    return fr->queued && time_mono_ms() >= fr->next_check_mono ? 0 : INT64_MAX;
}

static void reset_run_due(void *ctx, int64_t now_ms)
{
    reset_cap *fr = ctx;
    if (!fr->queued)
        return;
    iotdm_outbox_stats stats;
    iotdm_client_outbox_stats(fr->env->client, &stats);
    (void)now_ms;
    if (stats.reported_pending > 0 && time_mono_ms() - fr->started_mono < DRAIN_WAIT_MS) {
        fr->next_check_mono = time_mono_ms() + 100;
        return;
    }
    fr->queued = false;
    cap_env *env = fr->env;
    json_t *args = json_pack("{s:b}", "keepProvisioning", fr->keep_provisioning), *result = NULL;
    char err[400];
    iotdm_result r =
        env->configd(env->configd_ctx, "system.factory_reset", args, &result, err, sizeof err);
    json_decref(args);
    if (r < 0) {
        log_error("factory-reset", "failed: %s", err);
        report_status(fr, "failed", err);
        json_decref(result);
        return;
    }
    log_info("factory-reset", "done removed=%zu",
             json_array_size(json_object_get(result, "removed")));
    report_status(fr, "completed", "state wiped; rebooting");
    bool simulated = json_is_true(json_object_get(result, "simulated"));
    json_decref(result);
    if (simulated)
        env->reboot_happened(env->agent_ctx);
}

iotdm_result cap_factory_reset_start(cap_env *env, void **out_state, cap_timer *out_timer)
{
    reset_cap *fr = calloc(1, sizeof *fr);
    if (!fr)
        return -ENOMEM;
    fr->env = env;
    *out_state = fr;
    *out_timer = (cap_timer){reset_next_due, reset_run_due, fr};
    return iotdm_command_register(env->client, CAP_COMPONENT, "factoryReset", reset_command, fr);
}

void cap_factory_reset_stop(void *state)
{
    free(state);
}
