/* Starting and stopping the built-in capabilities as the agent's configuration selects them. */
#include <string.h>

#include "capabilities/capabilities.h"
#include "common/log.h"

static void add_timer(cap_set *set, cap_timer t)
{
    if (set->ntimers < CAP_MAX_TIMERS)
        set->timers[set->ntimers++] = t;
}

iotdm_result cap_set_start(cap_set *set, cap_env *env, const cap_selection *which)
{
    memset(set, 0, sizeof *set);
    set->env = env;
    set->device_info = which->device_info;
    cap_timer t;
    iotdm_result r = IOTDM_OK;
    if (r == IOTDM_OK && which->reboot && (r = cap_reboot_start(env, &set->reboot, &t)) == 0)
        add_timer(set, t);
    if (r == IOTDM_OK && which->factory_reset &&
        (r = cap_factory_reset_start(env, &set->factory_reset, &t)) == 0)
        add_timer(set, t);
    if (r == IOTDM_OK && which->time)
        r = cap_time_start(env, &set->time);
    /* Issue 4 capabilities: certificates, wifi, telemetry level (each a line here). */
    if (r == IOTDM_OK && which->certificates)
        r = cap_certificates_start(env, &set->certificates);
    if (r == IOTDM_OK && which->wifi)
        r = cap_wifi_start(env, &set->wifi);
    if (r == IOTDM_OK && which->telemetry_level)
        r = cap_telemetry_level_start(env, &set->telemetry_level);
    /* Issue 4 capabilities: apps, updates (each a line here). */
    if (r == IOTDM_OK && which->apps && (r = cap_apps_start(env, &set->apps, &t)) == 0)
        add_timer(set, t);
    if (r == IOTDM_OK && which->updates && (r = cap_updates_start(env, &set->updates, &t)) == 0)
        add_timer(set, t);
    /* Issue 4 capabilities: log collectors (a line here). */
    if (r == IOTDM_OK && which->logs && (r = cap_logs_start(env, &set->logs, &t)) == 0)
        add_timer(set, t);
    if (r == IOTDM_OK)
        r = cap_report_start(set);
    if (r == IOTDM_OK)
        r = cap_provisioning_start(env);
    if (r < 0)
        log_error("agent", "cannot start the capabilities: %s", iotdm_result_message(r));
    return r;
}

void cap_set_stop(cap_set *set)
{
    cap_reboot_stop(set->reboot);
    cap_factory_reset_stop(set->factory_reset);
    cap_time_stop(set->time);
    /* Issue 4 capabilities: their stop calls (each a line here). */
    cap_logs_stop(set->logs);
    cap_certificates_stop(set->certificates);
    cap_wifi_stop(set->wifi);
    cap_telemetry_level_stop(set->telemetry_level);
    cap_apps_stop(set->apps);
    cap_updates_stop(set->updates);
    memset(set, 0, sizeof *set);
}

int64_t cap_set_next_due_ms(cap_set *set)
{
    int64_t due = INT64_MAX;
    for (size_t i = 0; i < set->ntimers; i++) {
        int64_t d = set->timers[i].next_due_ms(set->timers[i].ctx);
        if (d < due)
            due = d;
    }
    return due;
}

void cap_set_run_due(cap_set *set, int64_t now_ms)
{
    for (size_t i = 0; i < set->ntimers; i++)
        if (set->timers[i].next_due_ms(set->timers[i].ctx) <= now_ms)
            set->timers[i].run_due(set->timers[i].ctx, now_ms);
}

void cap_set_report_static(cap_set *set)
{
    if (set->device_info)
        cap_device_info_report(set->env);
}
