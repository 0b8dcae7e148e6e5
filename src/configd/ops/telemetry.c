/* telemetry.* operations: /etc/iotdm/telemetry-level ("basic\n1\n") and the configured services
 * that are told to re-read it. */
#include "configd/ops/telemetry.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "configd/ops/ops.h"

static const char *const levels[] = {"security", "basic", "enhanced", "full"};

int cfgd_telemetry_level_value(const char *level)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(levels[i], level) == 0)
            return i;
    }
    return -1;
}

int cfgd_validate_telemetry_set(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"level", NULL};
    const char *level;
    if (cfgd_args_only(args, allowed, err) < 0 ||
        cfgd_arg_string(args, "level", true, 32, &level, err) < 0)
        return -EINVAL;
    if (cfgd_telemetry_level_value(level) < 0) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "\"%s\" is not a telemetry level (security, basic, enhanced, full)", level);
        return -EINVAL;
    }
    return 0;
}

/* The level the file names (its first word), or -1 when there is no valid file. */
static int current_level(cfgd_ctx *ctx)
{
    char buf[256];
    cfgd_error ignored;
    if (cfgd_fs_read_file(ctx->be, CFGD_TELEMETRY_FILE, buf, sizeof buf, NULL, &ignored) < 0)
        return -1;
    buf[strcspn(buf, " \t\r\n")] = '\0';
    return cfgd_telemetry_level_value(buf);
}

static json_t *level_object(int value)
{
    if (value < 0)
        return json_pack("{s:n}", "level");
    return json_pack("{s:s, s:i}", "level", levels[value], "value", value);
}

int cfgd_op_telemetry_get(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    (void)args;
    (void)err;
    *out = level_object(current_level(ctx));
    return 0;
}

/* systemctl try-reload-or-restart: a running service re-reads the policy (reload when it can);
 * a stopped one reads it when it starts, so it is not started for this. */
static json_t *notify_units(cfgd_ctx *ctx, json_t *notified)
{
    json_t *failed = json_array();
    for (size_t i = 0; i < ctx->cfg->n_telemetry_units; i++) {
        const char *unit = ctx->cfg->telemetry_units[i];
        const char *argv[] = {CFGD_SYSTEMCTL, "try-reload-or-restart", unit, NULL};
        cfgd_cmd_result res;
        cfgd_error e;
        int r = ctx->be->vt->run(ctx->be, argv, NULL, &res, &e);
        if (r == 0 && res.status != 0) {
            res.output[strcspn(res.output, "\n")] = '\0';
            cfgd_error_set(&e, CFGD_ERR_FAILED, "systemctl exit status %d: %.200s", res.status,
                           res.output);
        }
        if (r == 0 && res.status == 0)
            json_array_append_new(notified, json_string(unit));
        else
            json_array_append_new(failed,
                                  json_pack("{s:s, s:s}", "unit", unit, "message", e.message));
    }
    return failed;
}

int cfgd_op_telemetry_set_level(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const char *level = json_string_value(json_object_get(args, "level"));
    int value = cfgd_telemetry_level_value(level);
    bool changed = current_level(ctx) != value;
    char text[64];
    int n = snprintf(text, sizeof text, "%s\n%d\n", level, value);
    /* World-readable: this file is how every other program on the device learns the level. */
    int r =
        changed ? cfgd_fs_write_file(ctx->be, CFGD_TELEMETRY_FILE, text, (size_t)n, 0644, err) : 0;
    if (r < 0)
        return r;
    /* A notification failure leaves the level set (the file is the policy); the caller is told
     * which services did not hear about it. */
    json_t *notified = json_array();
    json_t *failed = changed ? notify_units(ctx, notified) : json_array();
    *out = level_object(current_level(ctx));
    json_object_set_new(*out, "changed", json_boolean(changed));
    json_object_set_new(*out, "notified", notified);
    json_object_set_new(*out, "notifyFailed", failed);
    return 0;
}
