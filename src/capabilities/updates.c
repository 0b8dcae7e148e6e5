/* OS updates through apt: dm.updatePolicy (configd writes apt's settings and the policy file),
 * dm.updates (the approved list, reported with what is installed, failed, installable, the
 * reboot-required flag and the last scan), and dm*updateScan / dm*updateInstall with their status
 * in dm.updatesCmd. Installs wait for the window the policy leaves (outside the active hours, not
 * paused) unless forced; that wait lives here, on the scheduler clock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capabilities/capabilities.h"
#include "common/debpkg.h"
#include "common/iso8601.h"
#include "common/log.h"

#define HOUR_MS      (3600LL * 1000)
#define DAY_MS       (24 * HOUR_MS)
#define APPROVED_MAX 64
#define HISTORY_MAX  64 /* installed / failed entries kept */
#define DEFER_MAX    365

typedef struct {
    cap_env *env;
    json_t *state; /* persisted: policy, pausedApplied, approved, installed, failed, lastScanTime,
                      firstSeen, cmd */
    bool due_known;
    int64_t install_due; /* when a queued install may run */
    int64_t lift_retry;  /* after a failed attempt to lift the pause: not before this */
    char ack_text[512];
    char *value_text;
} updates_cap;

static const char state_name[] = "updates";

static void save(updates_cap *uc)
{
    if (cap_state_save(uc->env, state_name, uc->state) < 0)
        log_warn("updates", "cannot save state dir=%s", uc->env->state_dir);
}

static int64_t now_ms(updates_cap *uc)
{
    return uc->env->now_ms(uc->env->clock_ctx);
}

static json_t *array_member(updates_cap *uc, const char *key)
{
    json_t *a = json_object_get(uc->state, key);
    if (!json_is_array(a))
        json_object_set_new(uc->state, key, a = json_array());
    return a;
}

static json_t *policy(updates_cap *uc)
{
    json_t *p = json_object_get(uc->state, "policy");
    if (!json_is_object(p)) {
        p = json_pack("{s:b, s:i, s:i, s:s, s:i}", "automaticUpdates", 0, "activeHoursStart", 0,
                      "activeHoursEnd", 0, "pauseUntil", "", "deferDays", 0);
        json_object_set_new(uc->state, "policy", p);
    }
    return p;
}

static int64_t pause_until(updates_cap *uc)
{
    int64_t ms;
    const char *t = json_string_value(json_object_get(policy(uc), "pauseUntil"));
    return t && *t && iso8601_parse(t, &ms, NULL, 0) == 0 ? ms : 0;
}

/* ---- the updates value ---- */

static json_t *updates_value(updates_cap *uc)
{
    json_t *got = NULL;
    char err[400];
    cap_env *env = uc->env;
    if (env->configd(env->configd_ctx, "updates.get", NULL, &got, err, sizeof err) < 0)
        log_warn("updates", "cannot read the update state: %s", err);
    json_t *installable = json_object_get(got, "upgradable");
    json_t *v =
        json_pack("{s:O, s:O, s:O, s:o, s:b}", "approved", array_member(uc, "approved"),
                  "installed", array_member(uc, "installed"), "failed", array_member(uc, "failed"),
                  "installable", installable ? json_incref(installable) : json_array(),
                  "rebootRequired", json_is_true(json_object_get(got, "rebootRequired")));
    const char *scan = json_string_value(json_object_get(uc->state, "lastScanTime"));
    if (scan)
        json_object_set_new(v, "lastScanTime", json_string(scan));
    json_decref(got);
    return v;
}

static void report_updates(updates_cap *uc, const char *description)
{
    iotdm_ack ack = {200, description, NULL};
    cap_ack_value(&ack, &uc->value_text, updates_value(uc));
    cap_ack_later(uc->env, "updates", -1, &ack);
}

static void report_cmd(updates_cap *uc, const char *command, const char *state, const char *msg)
{
    json_t *v =
        json_pack("{s:s, s:o}", "command", command, "lastChange", cap_status(uc->env, state, msg));
    cap_report(uc->env, "updatesCmd", v);
}

static void updates_desired(void *ctx, const char *value_json, int64_t version, iotdm_ack *ack)
{
    (void)version;
    updates_cap *uc = ctx;
    json_t *desired = cap_parse_object(value_json, ack);
    if (!desired)
        return;
    json_t *approved = json_object_get(desired, "approved");
    bool ok = json_is_array(approved) && json_array_size(approved) <= APPROVED_MAX;
    size_t i;
    json_t *s;
    json_array_foreach(approved, i, s)
    {
        char name[DEBPKG_NAME_MAX + 1];
        const char *version_part;
        if (ok && (!json_is_string(s) ||
                   !debpkg_spec_parse(json_string_value(s), name, sizeof name, &version_part))) {
            cap_ack_error(ack, 400, uc->ack_text, sizeof uc->ack_text,
                          "approved[%zu] is not a package name or name=version", i);
            json_decref(desired);
            return;
        }
    }
    if (!ok) {
        json_decref(desired);
        cap_ack_error(ack, 400, uc->ack_text, sizeof uc->ack_text,
                      "approved must be an array of at most %d package names or name=version",
                      APPROVED_MAX);
        return;
    }
    json_object_set(uc->state, "approved", approved);
    json_decref(desired);
    save(uc);
    cap_ack_value(ack, &uc->value_text, updates_value(uc));
    ack->code = 200;
    ack->description = "approved list saved";
}

static char *updates_read(void *ctx)
{
    json_t *v = updates_value(ctx);
    char *text = cap_dump(v);
    json_decref(v);
    return text;
}

/* ---- the policy ---- */

static bool int_member(json_t *desired, const char *key, int lo, int hi, json_t *next)
{
    json_t *v = json_object_get(desired, key);
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return false;
    json_object_set(next, key, v);
    return true;
}

/* Members absent from the desired value keep their defaults: the whole policy is always sent. */
static json_t *policy_from(json_t *desired)
{
    json_t *next = json_pack("{s:b, s:i, s:i, s:s, s:i}", "automaticUpdates", 0, "activeHoursStart",
                             0, "activeHoursEnd", 0, "pauseUntil", "", "deferDays", 0);
    json_t *automatic = json_object_get(desired, "automaticUpdates");
    json_t *pause = json_object_get(desired, "pauseUntil");
    int64_t ms;
    bool ok =
        (!automatic || json_is_boolean(automatic)) &&
        int_member(desired, "activeHoursStart", 0, 23, next) &&
        int_member(desired, "activeHoursEnd", 0, 23, next) &&
        int_member(desired, "deferDays", 0, DEFER_MAX, next) &&
        (!pause || json_is_null(pause) ||
         (json_is_string(pause) && (!*json_string_value(pause) ||
                                    iso8601_parse(json_string_value(pause), &ms, NULL, 0) == 0)));
    if (!ok) {
        json_decref(next);
        return NULL;
    }
    if (automatic)
        json_object_set(next, "automaticUpdates", automatic);
    if (json_is_string(pause))
        json_object_set(next, "pauseUntil", pause);
    return next;
}

static iotdm_result apply_policy(updates_cap *uc, json_t *next, json_t **out_got, char *err,
                                 size_t cap)
{
    int64_t ms = 0;
    const char *pause = json_string_value(json_object_get(next, "pauseUntil"));
    bool paused = *pause && iso8601_parse(pause, &ms, NULL, 0) == 0 && ms > now_ms(uc);
    json_t *args = json_deep_copy(next);
    json_object_set_new(args, "paused", json_boolean(paused));
    iotdm_result r =
        uc->env->configd(uc->env->configd_ctx, "updates.set_policy", args, out_got, err, cap);
    json_decref(args);
    if (r == 0)
        json_object_set_new(uc->state, "pausedApplied", json_boolean(paused));
    return r;
}

/* The reported policy: what configd wrote (pauseUntil normalised to UTC). */
static json_t *policy_value(json_t *got)
{
    json_t *p = json_deep_copy(json_object_get(got, "policy"));
    json_object_del(p, "paused");
    return p ? p : json_object();
}

static void policy_desired(void *ctx, const char *value_json, int64_t version, iotdm_ack *ack)
{
    (void)version;
    updates_cap *uc = ctx;
    json_t *desired = cap_parse_object(value_json, ack);
    if (!desired)
        return;
    json_t *next = policy_from(desired), *got = NULL;
    json_decref(desired);
    char err[400];
    if (!next) {
        cap_ack_error(ack, 400, uc->ack_text, sizeof uc->ack_text,
                      "automaticUpdates must be a boolean, activeHoursStart and activeHoursEnd "
                      "0 to 23, pauseUntil \"\" or an ISO 8601 date-time, deferDays 0 to %d",
                      DEFER_MAX);
        return;
    }
    iotdm_result r = apply_policy(uc, next, &got, err, sizeof err);
    if (r < 0) {
        json_decref(next);
        cap_ack_error(ack, r == IOTDM_E_MALFORMED ? 400 : 500, uc->ack_text, sizeof uc->ack_text,
                      "%s", err);
        return;
    }
    json_object_set_new(uc->state, "policy", policy_value(got));
    json_decref(next);
    json_decref(got);
    uc->due_known = false;
    save(uc);
    cap_ack_value(ack, &uc->value_text, json_deep_copy(policy(uc)));
    ack->code = 200;
    ack->description = "policy applied";
}

static char *policy_read(void *ctx)
{
    return cap_dump(policy(ctx));
}

/* ---- the install window ---- */

static int64_t utc_offset_ms(updates_cap *uc)
{
    json_t *t = NULL;
    char err[256];
    int64_t off = 0;
    if (uc->env->configd(uc->env->configd_ctx, "time.get", NULL, &t, err, sizeof err) == 0)
        off = json_integer_value(json_object_get(t, "utcOffsetSeconds")) * 1000;
    json_decref(t);
    return off;
}

static bool in_active_hours(updates_cap *uc, int64_t t, int64_t offset)
{
    int start = (int)json_integer_value(json_object_get(policy(uc), "activeHoursStart"));
    int end = (int)json_integer_value(json_object_get(policy(uc), "activeHoursEnd"));
    int h = (int)((((t + offset) % DAY_MS) + DAY_MS) % DAY_MS / HOUR_MS);
    if (start == end)
        return false;
    return start < end ? h >= start && h < end : h >= start || h < end;
}

/* The first moment from now when installs may run: not paused, outside the active hours. */
static int64_t next_window(updates_cap *uc, int64_t now)
{
    int64_t offset = utc_offset_ms(uc), t = now, pause = pause_until(uc);
    if (pause > t)
        t = pause;
    for (int i = 0; i < 25 && in_active_hours(uc, t, offset); i++)
        t = ((t + offset) / HOUR_MS + 1) * HOUR_MS - offset; /* the next full local hour */
    return t;
}

static const char *cmd_name(updates_cap *uc)
{
    return json_string_value(json_object_get(json_object_get(uc->state, "cmd"), "command"));
}

static int queue(updates_cap *uc, const char *command, bool force, char **out_json)
{
    if (cmd_name(uc)) {
        *out_json = strdup("{\"message\":\"an update command is already queued\"}");
        return 409;
    }
    json_object_set_new(uc->state, "cmd",
                        json_pack("{s:s, s:b}", "command", command, "force", force));
    save(uc);
    uc->due_known = false;
    char msg[160] = "queued";
    int64_t due = strcmp(command, "install") || force ? now_ms(uc) : next_window(uc, now_ms(uc));
    if (due > now_ms(uc)) {
        char when[32];
        iso8601_format_utc(due, when, sizeof when);
        snprintf(msg, sizeof msg,
                 "waiting for the install window (outside the active hours, not "
                 "paused) at %s",
                 when);
    }
    report_cmd(uc, command, "pending", msg);
    json_t *status = cap_status(uc->env, "pending", msg);
    *out_json = cap_dump(status);
    json_decref(status);
    return 202;
}

static int scan_command(void *ctx, const char *name, const char *payload, char **out_json)
{
    (void)name;
    (void)payload;
    return queue(ctx, "scan", false, out_json);
}

static int install_command(void *ctx, const char *name, const char *payload, char **out_json)
{
    (void)name;
    json_t *req = json_loads(payload, JSON_DECODE_ANY, NULL);
    json_t *force = json_object_get(req, "force");
    bool ok = json_is_null(req) || (json_is_object(req) && (!force || json_is_boolean(force)) &&
                                    json_object_size(req) == (force ? 1u : 0u));
    bool forced = json_is_true(force);
    json_decref(req);
    if (!ok) {
        *out_json =
            strdup("{\"message\":\"the payload must be null or {\\\"force\\\": true|false}\"}");
        return 400;
    }
    return queue(ctx, "install", forced, out_json);
}

/* ---- running the commands ---- */

/* Remembers when each upgradable version was first seen, for deferDays. */
static void note_seen(updates_cap *uc, json_t *upgradable)
{
    json_t *seen = json_object_get(uc->state, "firstSeen"), *next = json_object();
    size_t i;
    json_t *s;
    json_array_foreach(upgradable, i, s)
    {
        json_t *old = json_object_get(seen, json_string_value(s));
        json_object_set_new(next, json_string_value(s),
                            old ? json_incref(old) : json_integer(now_ms(uc)));
    }
    json_object_set_new(uc->state, "firstSeen", next);
}

static void run_scan(updates_cap *uc)
{
    json_t *got = NULL;
    char err[400], when[32];
    iotdm_result r =
        uc->env->configd(uc->env->configd_ctx, "updates.scan", NULL, &got, err, sizeof err);
    json_object_del(uc->state, "cmd");
    if (r < 0) {
        save(uc);
        report_cmd(uc, "scan", "failed", err);
        return;
    }
    iso8601_format_utc(now_ms(uc), when, sizeof when);
    json_object_set_new(uc->state, "lastScanTime", json_string(when));
    note_seen(uc, json_object_get(got, "upgradable"));
    save(uc);
    snprintf(err, sizeof err, "%zu update(s) available",
             json_array_size(json_object_get(got, "upgradable")));
    json_decref(got);
    report_updates(uc, "scanned");
    report_cmd(uc, "scan", "completed", err);
}

/* The upgradable "name=version" an approved entry ("name" or "name=version") stands for. */
static const char *match(json_t *upgradable, const char *approved)
{
    size_t n = strcspn(approved, "=");
    size_t i;
    json_t *s;
    json_array_foreach(upgradable, i, s)
    {
        const char *u = json_string_value(s);
        if (approved[n] ? !strcmp(u, approved) : !strncmp(u, approved, n) && u[n] == '=')
            return u;
    }
    return NULL;
}

static void remember(json_t *list, const char *spec)
{
    size_t i;
    json_t *s;
    json_array_foreach(list, i, s) if (!strcmp(json_string_value(s), spec)) return;
    json_array_append_new(list, json_string(spec));
    while (json_array_size(list) > HISTORY_MAX)
        json_array_remove(list, 0);
}

/* The approved updates that may go in now; *deferred counts those deferDays still hold back. */
static json_t *installable_now(updates_cap *uc, json_t *upgradable, bool force, size_t *deferred)
{
    int64_t defer = json_integer_value(json_object_get(policy(uc), "deferDays")) * DAY_MS;
    json_t *seen = json_object_get(uc->state, "firstSeen"), *out = json_array();
    size_t i;
    json_t *a;
    *deferred = 0;
    json_array_foreach(array_member(uc, "approved"), i, a)
    {
        const char *u = match(upgradable, json_string_value(a));
        if (!u)
            continue;
        json_t *first = json_object_get(seen, u);
        int64_t since = first ? json_integer_value(first) : now_ms(uc);
        if (!force && defer > 0 && now_ms(uc) - since < defer)
            (*deferred)++;
        else
            json_array_append_new(out, json_string(u));
    }
    return out;
}

static void run_install(updates_cap *uc, bool force)
{
    json_t *got = NULL, *res = NULL;
    char err[400];
    cap_env *env = uc->env;
    iotdm_result r = env->configd(env->configd_ctx, "updates.get", NULL, &got, err, sizeof err);
    json_object_del(uc->state, "cmd");
    size_t deferred = 0;
    json_t *todo =
        r < 0 ? NULL : installable_now(uc, json_object_get(got, "upgradable"), force, &deferred);
    json_decref(got);
    if (r == 0 && json_array_size(todo) > 0) {
        json_t *args = json_pack("{s:O}", "packages", todo);
        r = env->configd(env->configd_ctx, "updates.install", args, &res, err, sizeof err);
        json_decref(args);
    }
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(res, "installed"), i, s)
        remember(array_member(uc, "installed"), json_string_value(s));
    json_array_foreach(json_object_get(res, "failed"), i, s)
        remember(array_member(uc, "failed"), json_string_value(json_object_get(s, "package")));
    save(uc);
    if (r == 0)
        snprintf(err, sizeof err, "installed %zu, failed %zu, deferred %zu",
                 json_array_size(json_object_get(res, "installed")),
                 json_array_size(json_object_get(res, "failed")), deferred);
    bool all_failed = json_array_size(json_object_get(res, "failed")) > 0 &&
                      json_array_size(json_object_get(res, "installed")) == 0;
    json_decref(res);
    json_decref(todo);
    report_updates(uc, "installed the approved updates");
    report_cmd(uc, "install", r < 0 || all_failed ? "failed" : "completed", err);
}

static int64_t updates_next_due(void *ctx)
{
    updates_cap *uc = ctx;
    const char *cmd = cmd_name(uc);
    int64_t due = INT64_MAX;
    if (json_is_true(json_object_get(uc->state, "pausedApplied")) && pause_until(uc))
        due = pause_until(uc) > uc->lift_retry ? pause_until(uc) : uc->lift_retry;
    if (cmd && (!strcmp(cmd, "scan") || !uc->due_known))
        return 0;
    if (cmd && uc->install_due < due)
        due = uc->install_due;
    return due;
}

static void updates_run_due(void *ctx, int64_t now)
{
    updates_cap *uc = ctx;
    if (json_is_true(json_object_get(uc->state, "pausedApplied")) && pause_until(uc) <= now &&
        uc->lift_retry <= now) {
        json_t *next = json_deep_copy(policy(uc)), *got = NULL;
        char err[400];
        if (apply_policy(uc, next, &got, err, sizeof err) < 0) { /* the pause is over */
            log_warn("updates", "cannot lift the update pause (again in a minute): %s", err);
            uc->lift_retry = now + 60000;
        }
        save(uc);
        json_decref(next);
        json_decref(got);
    }
    const char *cmd = cmd_name(uc);
    if (cmd && !strcmp(cmd, "scan")) {
        run_scan(uc);
    } else if (cmd) {
        bool force = json_is_true(json_object_get(json_object_get(uc->state, "cmd"), "force"));
        uc->install_due = force ? now : next_window(uc, now);
        uc->due_known = true;
        if (uc->install_due <= now)
            run_install(uc, force);
    }
}

iotdm_result cap_updates_start(cap_env *env, void **out_state, cap_timer *out_timer)
{
    updates_cap *uc = calloc(1, sizeof *uc);
    if (!uc)
        return -ENOMEM;
    uc->env = env;
    uc->state = cap_state_load(env, state_name);
    *out_state = uc;
    *out_timer = (cap_timer){updates_next_due, updates_run_due, uc};
    iotdm_property_handler pol = {.struct_size = sizeof(iotdm_property_handler),
                                  .component = CAP_COMPONENT,
                                  .property = "updatePolicy",
                                  .on_desired = policy_desired,
                                  .read_state = policy_read,
                                  .ctx = uc};
    iotdm_property_handler upd = {.struct_size = sizeof(iotdm_property_handler),
                                  .component = CAP_COMPONENT,
                                  .property = "updates",
                                  .on_desired = updates_desired,
                                  .read_state = updates_read,
                                  .ctx = uc};
    iotdm_result r = iotdm_handler_add(env->client, &pol);
    if (r == IOTDM_OK)
        r = iotdm_handler_add(env->client, &upd);
    if (r == IOTDM_OK)
        r = iotdm_command_register(env->client, CAP_COMPONENT, "updateScan", scan_command, uc);
    if (r == IOTDM_OK)
        r = iotdm_command_register(env->client, CAP_COMPONENT, "updateInstall", install_command,
                                   uc);
    return r;
}

void cap_updates_stop(void *state)
{
    updates_cap *uc = state;
    if (!uc)
        return;
    json_decref(uc->state);
    free(uc->value_text);
    free(uc);
}
