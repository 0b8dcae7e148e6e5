/* system.reboot and system.factory_reset: the operations that end with the device restarting. */
#include "configd/ops/ops.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"

#define DEFAULT_REASON "requested through iotdm-configd"

int cfgd_validate_reboot(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"reason", NULL};
    const char *reason;
    if (cfgd_args_only(args, allowed, err) < 0 ||
        cfgd_arg_string(args, "reason", false, CFGD_REASON_MAX, &reason, err) < 0)
        return -EINVAL;
    return 0;
}

int cfgd_validate_factory_reset(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"keepProvisioning", NULL};
    bool keep;
    /* Required: a default either way would be a surprise to someone. */
    if (cfgd_args_only(args, allowed, err) < 0 ||
        cfgd_arg_bool(args, "keepProvisioning", true, &keep, err) < 0)
        return -EINVAL;
    return 0;
}

static json_t *rebooting(cfgd_ctx *ctx)
{
    return json_pack("{s:b, s:b}", "rebooting", 1, "simulated", ctx->be->vt->simulated);
}

int cfgd_op_system_reboot(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const char *reason = DEFAULT_REASON;
    cfgd_arg_string(args, "reason", false, CFGD_REASON_MAX, &reason, err);
    int r = ctx->be->vt->reboot(ctx->be, reason, err);
    if (r < 0)
        return r;
    *out = rebooting(ctx);
    return 0;
}

/* The image-reset hook runs first: when it fails nothing has been wiped yet, so the device is still
 * whole and the operator can retry. No shell, no arguments; the choice goes in the environment. */
static int run_hook(cfgd_ctx *ctx, bool keep, const char **out_hook, cfgd_error *err)
{
    *out_hook = "none";
    if (!ctx->cfg->reset_hook[0])
        return 0;
    const char *argv[] = {ctx->cfg->reset_hook, NULL};
    const char *env[] = {keep ? "IOTDM_KEEP_PROVISIONING=1" : "IOTDM_KEEP_PROVISIONING=0", NULL};
    cfgd_cmd_result res;
    int r = ctx->be->vt->run(ctx->be, argv, env, &res, err);
    if (r < 0)
        return r;
    if (res.status != 0) {
        cfgd_error_set(err, CFGD_ERR_FAILED,
                       "factory reset hook %s %s; nothing was removed: %.300s", argv[0],
                       res.timed_out ? "timed out" : "failed", res.output);
        return -EIO;
    }
    *out_hook = "ran";
    return 0;
}

/* Removes one configured path, adding it to removed when it was there. */
static int wipe(cfgd_ctx *ctx, const char *path, bool keep, json_t *removed, cfgd_error *err)
{
    bool existed;
    size_t nkeep = keep ? ctx->cfg->n_keep_paths : 0;
    int r = cfgd_fs_remove(ctx->be, path, ctx->cfg->keep_paths, nkeep, &existed, err);
    if (r == 0 && existed)
        json_array_append_new(removed, json_string(path));
    return r;
}

int cfgd_op_system_factory_reset(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    bool keep = true;
    cfgd_arg_bool(args, "keepProvisioning", true, &keep, err);
    const char *hook;
    int r = run_hook(ctx, keep, &hook, err);
    if (r < 0)
        return r;
    json_t *removed = json_array(), *kept = json_array();
    /* Without keepProvisioning the identity paths go too, even those outside the reset paths. */
    for (size_t i = 0; r == 0 && i < ctx->cfg->n_keep_paths; i++) {
        const char *p = ctx->cfg->keep_paths[i];
        if (!keep)
            r = wipe(ctx, p, false, removed, err);
        else if (cfgd_fs_exists(ctx->be, p) > 0)
            json_array_append_new(kept, json_string(p));
    }
    for (size_t i = 0; r == 0 && i < ctx->cfg->n_reset_paths; i++)
        r = wipe(ctx, ctx->cfg->reset_paths[i], keep, removed, err);
    if (r == 0) {
        json_t *fields =
            json_pack("{s:O, s:O, s:s}", "removed", removed, "kept", kept, "hook", hook);
        /* The files are gone already: the reboot must follow even if the record cannot be made. */
        if (ctx->be->vt->journal(ctx->be, "factory_reset", fields) < 0)
            log_error("configd", "factory reset: cannot record what was removed");
        json_decref(fields);
        r = ctx->be->vt->reboot(ctx->be, "factory reset", err);
    }
    if (r < 0) {
        json_decref(removed);
        json_decref(kept);
        return r;
    }
    *out = rebooting(ctx);
    json_object_set_new(*out, "removed", removed);
    json_object_set_new(*out, "kept", kept);
    json_object_set_new(*out, "hook", json_string(hook));
    return 0;
}
