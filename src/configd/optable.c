/* The fixed operation table of iotdm-configd and the dispatch of one request through it. */
#include "configd/optable.h"

#include <stdio.h>
#include <string.h>

#include "configd/ops/ops.h"

static const cfgd_op table[] = {
    {"system.info", 0, cfgd_validate_no_args, cfgd_op_system_info},
    {"system.reboot", 0, cfgd_validate_reboot, cfgd_op_system_reboot},
    {"system.factory_reset", 0, cfgd_validate_factory_reset, cfgd_op_system_factory_reset},
    {"time.get", 0, cfgd_validate_no_args, cfgd_op_time_get},
    {"time.set_zone", 0, cfgd_validate_set_zone, cfgd_op_time_set_zone},
    {"time.set_ntp", 0, cfgd_validate_set_ntp, cfgd_op_time_set_ntp},
    {"time.set_service", 0, cfgd_validate_set_service, cfgd_op_time_set_service},
    /* Issue 4: certificates, wifi, telemetry level. */
    {"certs.list", 0, cfgd_validate_no_args, cfgd_op_certs_list},
    {"certs.install", 1, cfgd_validate_certs_install, cfgd_op_certs_install},
    {"certs.uninstall", 0, cfgd_validate_certs_ref, cfgd_op_certs_uninstall},
    {"certs.details", 0, cfgd_validate_certs_ref, cfgd_op_certs_details},
    {"wifi.list", 0, cfgd_validate_no_args, cfgd_op_wifi_list},
    {"wifi.install", 1, cfgd_validate_wifi_install, cfgd_op_wifi_install},
    {"wifi.uninstall", 0, cfgd_validate_wifi_ref, cfgd_op_wifi_uninstall},
    {"wifi.details", 0, cfgd_validate_wifi_ref, cfgd_op_wifi_details},
    {"telemetry.get", 0, cfgd_validate_no_args, cfgd_op_telemetry_get},
    {"telemetry.set_level", 0, cfgd_validate_telemetry_set, cfgd_op_telemetry_set_level},
    /* Issue 4: apps and OS updates. */
    {"apps.list", 0, cfgd_validate_apps_list, cfgd_op_apps_list},
    {"apps.install", 1, cfgd_validate_apps_install, cfgd_op_apps_install},
    {"apps.remove", 0, cfgd_validate_apps_remove, cfgd_op_apps_remove},
    {"apps.set_startup", 0, cfgd_validate_apps_set_startup, cfgd_op_apps_set_startup},
    {"apps.lifecycle", 0, cfgd_validate_apps_lifecycle, cfgd_op_apps_lifecycle},
    {"updates.get", 0, cfgd_validate_no_args, cfgd_op_updates_get},
    {"updates.set_policy", 0, cfgd_validate_updates_set_policy, cfgd_op_updates_set_policy},
    {"updates.scan", 0, cfgd_validate_no_args, cfgd_op_updates_scan},
    {"updates.install", 0, cfgd_validate_updates_install, cfgd_op_updates_install},
    /* Issue 4: log collectors and log files. */
    {"logs.set_collector", 0, cfgd_validate_logs_set_collector, cfgd_op_logs_set_collector},
    {"logs.remove_collector", 0, cfgd_validate_logs_collector_name, cfgd_op_logs_remove_collector},
    {"logs.collect", 0, cfgd_validate_no_args, cfgd_op_logs_collect},
    {"logs.status", 0, cfgd_validate_no_args, cfgd_op_logs_status},
    {"logs.list_folders", 0, cfgd_validate_no_args, cfgd_op_logs_list_folders},
    {"logs.list_files", 0, cfgd_validate_logs_folder, cfgd_op_logs_list_files},
    {"logs.read_file", 1, cfgd_validate_logs_file, cfgd_op_logs_read_file},
    {"logs.delete_file", 0, cfgd_validate_logs_file, cfgd_op_logs_delete_file},
};

const cfgd_op *cfgd_op_table(size_t *out_count)
{
    *out_count = sizeof table / sizeof *table;
    return table;
}

const cfgd_op *cfgd_op_find(const char *name)
{
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    }
    return NULL;
}

const cfgd_op *cfgd_check_request(const cfgd_request *req, size_t nfds, cfgd_error *err)
{
    const cfgd_op *op = cfgd_op_find(req->op);
    if (!op) {
        cfgd_error_set(err, CFGD_ERR_UNKNOWN_OP, "no operation \"%.64s\"", req->op);
        return NULL;
    }
    if (nfds > op->max_fds) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "%s takes at most %u file descriptors",
                       op->name, op->max_fds);
        return NULL;
    }
    if (op->validate(req->args, err) < 0)
        return NULL;
    return op;
}

json_t *cfgd_dispatch(cfgd_ctx *ctx, const uint8_t *body, size_t len, cfgd_outcome *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->op, sizeof out->op, "-");
    json_t *root;
    cfgd_request req;
    iotdm_result r = cfgd_request_parse(body, len, &root, &req, &out->error);
    out->id = req.id;
    if (r == IOTDM_E_PROTOCOL)
        return NULL;
    json_t *reply = NULL;
    if (r == IOTDM_OK) {
        snprintf(out->op, sizeof out->op, "%s", req.op);
        const cfgd_op *op = cfgd_check_request(&req, ctx->nfds, &out->error);
        json_t *result = NULL;
        if (op && op->handle(ctx, req.args, &result, &out->error) == 0) {
            out->ok = true;
            reply = cfgd_reply_ok(req.id, result);
        }
    }
    if (!out->ok)
        reply = cfgd_reply_error(req.id, out->error.code, out->error.message);
    json_decref(root);
    return reply;
}
