/* Reboots: the immediate dm*reboot command with the original's pipeline (system policy: allowed
 * flag and active hours → the application's veto → reboot), the rebootPolicy and rebootInfo
 * (single and daily scheduled reboots) writable properties, and the rebootCmd status. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capabilities/capabilities.h"
#include "common/iso8601.h"
#include "common/log.h"

#define DAY_MS        (24LL * 3600 * 1000)
#define LATE_GRACE_MS (5LL * 60 * 1000) /* a schedule missed by more than this is skipped */

typedef struct {
    cap_env *env;
    json_t *state;   /* persisted: policy, schedules, lastRebootCmdTime, last fired times */
    bool cmd_queued; /* dm*reboot accepted, pipeline runs on the next tick */
    char ack_text[512];
    char *value_text;
} reboot_cap;

static const char state_name[] = "reboot";

static json_t *policy(reboot_cap *rc)
{
    json_t *p = json_object_get(rc->state, "policy");
    if (!p) {
        p = json_pack("{s:b, s:i, s:i}", "rebootsAllowed", 1, "activeHoursStart", 0,
                      "activeHoursEnd", 0);
        json_object_set_new(rc->state, "policy", p);
    }
    return p;
}

static const char *str_or_empty(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static void save(reboot_cap *rc)
{
    if (cap_state_save(rc->env, state_name, rc->state) < 0)
        log_warn("reboot", "cannot save state dir=%s", rc->env->state_dir);
}

/* The actual reboot: through configd, no policy (the schedule is the operator's decision). */
static iotdm_result do_reboot(reboot_cap *rc, const char *reason, char *err, size_t err_cap,
                              bool *out_simulated)
{
    cap_env *env = rc->env;
    char when[32];
    iso8601_format_utc(env->now_ms(env->clock_ctx), when, sizeof when);
    json_object_set_new(rc->state, "lastRebootCmdTime", json_string(when));
    save(rc);
    json_t *args = json_pack("{s:s}", "reason", reason), *result = NULL;
    iotdm_result r = env->configd(env->configd_ctx, "system.reboot", args, &result, err, err_cap);
    json_decref(args);
    *out_simulated = json_is_true(json_object_get(result, "simulated"));
    json_decref(result);
    return r;
}

static json_t *reboot_info_value(reboot_cap *rc)
{
    cap_env *env = rc->env;
    json_t *v = json_pack("{s:s, s:s}", "singleRebootTime", str_or_empty(rc->state, "single"),
                          "dailyRebootTime", str_or_empty(rc->state, "daily"));
    json_t *info = NULL;
    char err[256];
    if (env->configd(env->configd_ctx, "system.info", NULL, &info, err, sizeof err) == 0 &&
        json_is_string(json_object_get(info, "bootTime")))
        json_object_set(v, "lastBootTime", json_object_get(info, "bootTime"));
    json_decref(info);
    const char *last = json_string_value(json_object_get(rc->state, "lastRebootCmdTime"));
    if (last)
        json_object_set_new(v, "lastRebootCmdTime", json_string(last));
    return v;
}

static void set_value(reboot_cap *rc, iotdm_ack *ack, json_t *value)
{
    cap_ack_value(ack, &rc->value_text, value);
}

/* Validates one schedule member: "" clears, otherwise ISO 8601 normalised to UTC. */
static bool schedule_member(reboot_cap *rc, json_t *desired, const char *key, const char *slot,
                            json_t *next, iotdm_ack *ack)
{
    json_t *v = json_object_get(desired, key);
    if (!v)
        return true; /* not in this patch: keep the cached value */
    const char *text = json_is_null(v) ? "" : json_string_value(v);
    if (!text) {
        cap_ack_error(ack, 400, rc->ack_text, sizeof rc->ack_text, "%s must be a string", key);
        return false;
    }
    if (!*text) {
        json_object_set_new(next, slot, json_string(""));
        return true;
    }
    int64_t ms;
    char err[128];
    if (iso8601_parse(text, &ms, err, sizeof err) < 0) {
        cap_ack_error(ack, 400, rc->ack_text, sizeof rc->ack_text,
                      "%s '%.64s' is not an ISO 8601 date-time: %s", key, text, err);
        return false;
    }
    char utc[32];
    iso8601_format_utc(ms, utc, sizeof utc);
    json_object_set_new(next, slot, json_string(utc));
    if (strcmp(slot, "single") == 0)
        json_object_set_new(next, "singleDone", json_false());
    return true;
}

static void reboot_info_desired(void *ctx, const char *value_json, int64_t version, iotdm_ack *ack)
{
    (void)version;
    reboot_cap *rc = ctx;
    json_t *desired = cap_parse_object(value_json, ack);
    if (!desired)
        return;
    json_t *next = json_object();
    bool ok = schedule_member(rc, desired, "singleRebootTime", "single", next, ack) &&
              schedule_member(rc, desired, "dailyRebootTime", "daily", next, ack);
    if (ok)
        json_object_update(rc->state, next); /* all or nothing */
    json_decref(next);
    json_decref(desired);
    if (ok) {
        save(rc);
        ack->code = 200;
        ack->description = "schedule saved";
    }
    set_value(rc, ack, reboot_info_value(rc));
}

static char *reboot_info_read(void *ctx)
{
    json_t *v = reboot_info_value(ctx);
    char *text = cap_dump(v);
    json_decref(v);
    return text;
}

static bool hour_value(json_t *v, int *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 23)
        return false;
    *out = (int)json_integer_value(v);
    return true;
}

static void policy_desired(void *ctx, const char *value_json, int64_t version, iotdm_ack *ack)
{
    (void)version;
    reboot_cap *rc = ctx;
    json_t *desired = cap_parse_object(value_json, ack);
    if (!desired)
        return;
    json_t *next = json_deep_copy(policy(rc));
    json_t *allowed = json_object_get(desired, "rebootsAllowed");
    int h;
    bool ok = true;
    if (allowed && !json_is_boolean(allowed))
        ok = false;
    else if (allowed)
        json_object_set(next, "rebootsAllowed", allowed);
    const char *hours[] = {"activeHoursStart", "activeHoursEnd"};
    for (int i = 0; ok && i < 2; i++) {
        json_t *v = json_object_get(desired, hours[i]);
        if (v && !hour_value(v, &h))
            ok = false;
        else if (v)
            json_object_set_new(next, hours[i], json_integer(h));
    }
    json_decref(desired);
    if (!ok) {
        json_decref(next);
        cap_ack_error(ack, 400, rc->ack_text, sizeof rc->ack_text,
                      "rebootsAllowed must be a boolean, activeHoursStart and activeHoursEnd "
                      "integers from 0 to 23");
        set_value(rc, ack, json_deep_copy(policy(rc)));
        return;
    }
    json_object_set_new(rc->state, "policy", next);
    save(rc);
    ack->code = 200;
    ack->description = "policy saved";
    set_value(rc, ack, json_deep_copy(next));
}

static char *policy_read(void *ctx)
{
    return cap_dump(policy(ctx));
}

/* Is local hour h within [start, end)? The range may wrap past midnight; start == end: never. */
static bool in_active_hours(int h, int start, int end)
{
    if (start == end)
        return false;
    return start < end ? (h >= start && h < end) : (h >= start || h < end);
}

static int local_hour(reboot_cap *rc, int64_t now_ms)
{
    cap_env *env = rc->env;
    json_t *t = NULL;
    char err[256];
    int64_t offset = 0;
    if (env->configd(env->configd_ctx, "time.get", NULL, &t, err, sizeof err) == 0)
        offset = json_integer_value(json_object_get(t, "utcOffsetSeconds"));
    json_decref(t);
    int64_t local_s = now_ms / 1000 + offset;
    return (int)(((local_s % 86400) + 86400) % 86400 / 3600);
}

static void report_cmd(reboot_cap *rc, const char *response, const char *state, const char *msg)
{
    json_t *v = json_pack("{s:o}", "lastChange", cap_status(rc->env, state, msg));
    if (response)
        json_object_set_new(v, "response", json_string(response));
    cap_report(rc->env, "rebootCmd", v);
}

/* The immediate-reboot pipeline (after dm*reboot answered 202). */
static void run_reboot_command(reboot_cap *rc, int64_t now_ms)
{
    json_t *p = policy(rc);
    const char *response = "scheduled";
    if (!json_is_true(json_object_get(p, "rebootsAllowed")))
        response = "disabled";
    else if (in_active_hours(local_hour(rc, now_ms),
                             (int)json_integer_value(json_object_get(p, "activeHoursStart")),
                             (int)json_integer_value(json_object_get(p, "activeHoursEnd"))))
        response = "inActiveHours";
    else if (!iotdm_client_reboot_allowed_by_app(rc->env->client))
        response = "rejectedByApp";
    if (strcmp(response, "scheduled") != 0) {
        report_cmd(rc, response, "completed", "the reboot was not allowed");
        return;
    }
    char err[400];
    bool simulated = false;
    if (do_reboot(rc, "dm*reboot", err, sizeof err, &simulated) < 0) {
        report_cmd(rc, NULL, "failed", err);
        return;
    }
    report_cmd(rc, response, "completed", simulated ? "simulated reboot" : "rebooting");
    iotdm_ack ack = {200, "rebooting", NULL};
    set_value(rc, &ack, reboot_info_value(rc));
    cap_ack_later(rc->env, "rebootInfo", -1, &ack);
    if (simulated)
        rc->env->reboot_happened(rc->env->agent_ctx);
}

static int reboot_command(void *ctx, const char *name, const char *payload, char **out_json)
{
    (void)name;
    (void)payload;
    reboot_cap *rc = ctx;
    if (rc->cmd_queued) {
        *out_json = strdup("{\"message\":\"a reboot command is already in progress\"}");
        return 409;
    }
    rc->cmd_queued = true; /* runs on the next tick, after this answer has gone out */
    json_t *status = cap_status(rc->env, "pending", "checking the reboot policy");
    report_cmd(rc, NULL, "pending", "checking the reboot policy");
    *out_json = cap_dump(status);
    json_decref(status);
    return 202;
}

/* The next time a schedule is due (INT64_MAX: none). */
static int64_t schedule_due(reboot_cap *rc, int64_t now_ms, const char **out_which)
{
    int64_t due = INT64_MAX, t;
    const char *single = str_or_empty(rc->state, "single");
    if (*single && !json_is_true(json_object_get(rc->state, "singleDone")) &&
        iso8601_parse(single, &t, NULL, 0) == 0) {
        due = t;
        *out_which = "single";
    }
    const char *daily = str_or_empty(rc->state, "daily");
    if (*daily && iso8601_parse(daily, &t, NULL, 0) == 0) {
        int64_t after = json_integer_value(json_object_get(rc->state, "dailyFired"));
        int64_t from = after + 1 > now_ms - LATE_GRACE_MS ? after + 1 : now_ms - LATE_GRACE_MS;
        int64_t next = t >= from ? t : t + ((from - t + DAY_MS - 1) / DAY_MS) * DAY_MS;
        if (next < due) {
            due = next;
            *out_which = "daily";
        }
    }
    return due;
}

static int64_t reboot_next_due(void *ctx)
{
    reboot_cap *rc = ctx;
    if (rc->cmd_queued)
        return 0;
    const char *which = NULL;
    return schedule_due(rc, rc->env->now_ms(rc->env->clock_ctx), &which);
}

static void reboot_run_due(void *ctx, int64_t now_ms)
{
    reboot_cap *rc = ctx;
    if (rc->cmd_queued) {
        rc->cmd_queued = false;
        run_reboot_command(rc, now_ms);
        return;
    }
    const char *which = NULL;
    int64_t due = schedule_due(rc, now_ms, &which);
    if (due > now_ms)
        return;
    /* Mark it done before rebooting: a schedule must never cause a reboot loop. */
    if (strcmp(which, "single") == 0)
        json_object_set_new(rc->state, "singleDone", json_true());
    else
        json_object_set_new(rc->state, "dailyFired", json_integer(due));
    save(rc);
    if (now_ms - due > LATE_GRACE_MS) {
        log_warn("reboot", "skipped a %s reboot missed by more than 5 minutes", which);
        return;
    }
    char err[400];
    bool simulated = false;
    if (do_reboot(rc, which, err, sizeof err, &simulated) < 0) {
        log_error("reboot", "scheduled %s reboot failed: %s", which, err);
        return;
    }
    iotdm_ack ack = {200, "scheduled reboot", NULL};
    set_value(rc, &ack, reboot_info_value(rc));
    cap_ack_later(rc->env, "rebootInfo", -1, &ack);
    if (simulated)
        rc->env->reboot_happened(rc->env->agent_ctx);
}

iotdm_result cap_reboot_start(cap_env *env, void **out_state, cap_timer *out_timer)
{
    reboot_cap *rc = calloc(1, sizeof *rc);
    if (!rc)
        return -ENOMEM;
    rc->env = env;
    rc->state = cap_state_load(env, state_name);
    *out_state = rc;
    *out_timer = (cap_timer){reboot_next_due, reboot_run_due, rc};
    iotdm_property_handler info = {.struct_size = sizeof(iotdm_property_handler),
                                   .component = CAP_COMPONENT,
                                   .property = "rebootInfo",
                                   .on_desired = reboot_info_desired,
                                   .read_state = reboot_info_read,
                                   .ctx = rc};
    iotdm_property_handler pol = {.struct_size = sizeof(iotdm_property_handler),
                                  .component = CAP_COMPONENT,
                                  .property = "rebootPolicy",
                                  .on_desired = policy_desired,
                                  .read_state = policy_read,
                                  .ctx = rc};
    iotdm_result r = iotdm_handler_add(env->client, &info);
    if (r == IOTDM_OK)
        r = iotdm_handler_add(env->client, &pol);
    if (r == IOTDM_OK)
        r = iotdm_command_register(env->client, CAP_COMPONENT, "reboot", reboot_command, rc);
    return r;
}

void cap_reboot_stop(void *state)
{
    reboot_cap *rc = state;
    if (!rc)
        return;
    json_decref(rc->state);
    free(rc->value_text);
    free(rc);
}
