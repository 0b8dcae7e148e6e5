/* dm.apps (declarative Debian packages) and dm*appLifecycle. A desired map is acknowledged 202
 * at once and applied on the next tick from durable state, so a restart never loses it; the
 * reported map is rebuilt whole. The agent's own update runs detached in configd and restarts the
 * agent; the next agent reads the outcome and acknowledges it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capabilities/apps_internal.h"
#include "common/log.h"
#include "common/timeutil.h"

#define SELFUPDATE_POLL_MS    2000
#define SELFUPDATE_TIMEOUT_MS (15LL * 60 * 1000)

static const char state_name[] = "apps";

static void save(apps_cap *ac)
{
    if (cap_state_save(ac->env, state_name, ac->state) < 0)
        log_warn("apps", "cannot save state dir=%s", ac->env->state_dir);
}

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

/* configd's apps.list for the packages the desired keys name. */
static iotdm_result list_apps(apps_cap *ac, json_t *desired, json_t **out, char *err, size_t cap)
{
    json_t *names = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(desired, key, v)
    {
        char name[DEBPKG_NAME_MAX + 1];
        if (json_array_size(names) < APPS_MAX && apps_key_to_name(key, name, sizeof name))
            json_array_append_new(names, json_string(name));
    }
    json_t *args = json_pack("{s:o}", "packages", names);
    iotdm_result r = ac->env->configd(ac->env->configd_ctx, "apps.list", args, out, err, cap);
    json_decref(args);
    return r;
}

/* The reported map: every desired app as the device really has it, its error beside it. */
static json_t *build_report(apps_cap *ac, json_t *desired, json_t *errors)
{
    json_t *list = NULL, *out = json_object();
    char err[400];
    if (list_apps(ac, desired, &list, err, sizeof err) < 0)
        log_warn("apps", "cannot read the installed apps: %s", err);
    const char *key;
    json_t *v;
    json_object_foreach(desired, key, v)
    {
        char name[DEBPKG_NAME_MAX + 1];
        json_t *st = apps_key_to_name(key, name, sizeof name)
                         ? json_object_get(json_object_get(list, "packages"), name)
                         : NULL;
        json_t *entry = json_object();
        if (st) {
            bool installed = json_is_true(json_object_get(st, "installed"));
            json_object_set_new(entry, "version",
                                json_string(installed ? str(st, "version") : "not installed"));
            json_object_set(entry, "startUp", json_object_get(st, "startUp"));
            if (json_object_get(st, "installDate"))
                json_object_set(entry, "installDate", json_object_get(st, "installDate"));
        }
        json_object_update(entry, json_object_get(errors, key));
        json_object_set_new(out, key, entry);
    }
    json_decref(list);
    return out;
}

/* 200 when every app is as desired; 400 when any was refused; else 500. */
static int summarize(json_t *errors, size_t napps, char *buf, size_t cap)
{
    size_t failed = json_object_size(errors);
    if (failed == 0) {
        snprintf(buf, cap, "applied: %zu app%s as desired", napps, napps == 1 ? "" : "s");
        return 200;
    }
    int code = 500;
    const char *key, *first_key = NULL;
    json_t *e;
    json_object_foreach(errors, key, e)
    {
        if (!first_key)
            first_key = key;
        if (json_integer_value(json_object_get(e, "errorCode")) < 500)
            code = 400;
    }
    snprintf(buf, cap, "%zu of %zu apps failed; %s: %.300s", failed, napps, first_key,
             str(json_object_get(errors, first_key), "errorMessage"));
    return code;
}

static void acknowledge(apps_cap *ac, int64_t version, int code, const char *description)
{
    json_t *desired = json_object_get(ac->state, "desired");
    iotdm_ack ack = {code, description, NULL};
    cap_ack_value(&ack, &ac->value_text,
                  build_report(ac, desired, json_object_get(ac->state, "errors")));
    cap_ack_later(ac->env, "apps", version, &ack);
}

static void finish(apps_cap *ac, int64_t version)
{
    json_t *desired = json_object_get(ac->state, "desired");
    int code = summarize(json_object_get(ac->state, "errors"), json_object_size(desired),
                         ac->ack_text, sizeof ac->ack_text);
    acknowledge(ac, version, code, ac->ack_text);
}

static json_t *errors_of(const apps_run *run)
{
    json_t *errors = json_object();
    for (size_t i = 0; i < run->n; i++)
        if (run->items[i].code)
            json_object_set_new(errors, run->items[i].key,
                                json_pack("{s:i, s:s}", "errorCode", run->items[i].code,
                                          "errorMessage", run->items[i].message));
    return errors;
}

/* The agent's own update went off detached: 202 now, the outcome once it is over. */
static void selfupdate_started(apps_cap *ac, json_t *selfupdate, int64_t version)
{
    json_object_set_new(selfupdate, "version", json_integer(version));
    json_object_set_new(selfupdate, "startedMs", json_integer(time_now_ms()));
    json_object_set(ac->state, "selfUpdate", selfupdate);
    save(ac);
    snprintf(ac->ack_text, sizeof ac->ack_text,
             "%s is updating itself to %s; the outcome is reported once it is done",
             str(selfupdate, "package"), str(selfupdate, "target"));
    log_info("apps", "self-update of %s to %s started", str(selfupdate, "package"),
             str(selfupdate, "target"));
    acknowledge(ac, version, 202, ac->ack_text);
    ac->next_poll_mono = time_mono_ms() + SELFUPDATE_POLL_MS;
    if (json_is_true(json_object_get(selfupdate, "simulated"))) {
        /* A real install restarts the agent from the package's maintainer scripts; in the sandbox
         * the agent exits like that, and the next one reads the outcome. */
        ac->exiting = true;
        ac->env->reboot_happened(ac->env->agent_ctx);
    }
}

static void apply_all(apps_cap *ac, apps_run *run, json_t *desired)
{
    char err[400];
    json_t *list = NULL;
    iotdm_result r = list_apps(ac, desired, &list, err, sizeof err);
    run->list = list;
    run->agent = json_string_value(json_object_get(list, "agentPackage"));
    run->current_fg = json_string_value(json_object_get(list, "foreground"));
    apps_check(run, desired);
    app_item *order[APPS_MAX];
    size_t n = apps_order(run, order, APPS_MAX);
    for (size_t i = 0; i < n; i++) {
        if (r < 0)
            apps_item_fail(order[i], APP_ERR_DEVICE, "%s", err);
        else
            apps_apply_item(ac, run, order[i]);
    }
    json_decref(list);
}

static void run_pending(apps_cap *ac)
{
    json_t *pending = json_incref(json_object_get(ac->state, "pending"));
    json_t *desired = json_object_get(pending, "desired");
    int64_t version = json_integer_value(json_object_get(pending, "version"));
    apps_run run = {.items = calloc(APPS_MAX, sizeof(app_item))};
    if (run.items)
        apply_all(ac, &run, desired);
    json_object_set(ac->state, "desired", desired);
    json_object_set_new(ac->state, "errors", errors_of(&run));
    json_object_del(ac->state, "pending");
    if (run.selfupdate) {
        selfupdate_started(ac, run.selfupdate, version);
    } else {
        save(ac);
        finish(ac, version);
    }
    json_decref(run.selfupdate);
    free(run.items);
    json_decref(pending);
}

/* Reads how the agent's own update ended; the running agent may be the one it installed. */
static void poll_selfupdate(apps_cap *ac)
{
    json_t *su = json_object_get(ac->state, "selfUpdate");
    const char *pkg = str(su, "package");
    bool late = time_now_ms() - json_integer_value(json_object_get(su, "startedMs")) >
                SELFUPDATE_TIMEOUT_MS;
    json_t *args = json_pack("{s:[s]}", "packages", pkg), *list = NULL;
    char err[400];
    iotdm_result r =
        ac->env->configd(ac->env->configd_ctx, "apps.list", args, &list, err, sizeof err);
    json_decref(args);
    bool running = r < 0 || json_is_true(json_object_get(list, "selfUpdateRunning"));
    if (running && !late) {
        ac->next_poll_mono = time_mono_ms() + SELFUPDATE_POLL_MS;
        json_decref(list);
        return;
    }
    json_t *st = json_object_get(json_object_get(list, "packages"), pkg);
    json_t *errors = json_object_get(ac->state, "errors");
    const char *key = str(su, "key"), *target = str(su, "target");
    if (!errors)
        json_object_set_new(ac->state, "errors", errors = json_object());
    if (r == 0 && json_is_true(json_object_get(st, "installed")) &&
        !strcmp(str(st, "version"), target)) {
        log_info("apps", "self-update of %s to %s completed", pkg, target);
        json_object_del(errors, key);
    } else {
        char msg[400];
        snprintf(msg, sizeof msg, "the self-update to %.64s did not complete: %.280s", target,
                 r < 0     ? err
                 : running ? "still running after 15 minutes"
                           : "version unchanged");
        log_error("apps", "%s", msg);
        json_object_set_new(
            errors, key, json_pack("{s:i, s:s}", "errorCode", APP_ERR_DEVICE, "errorMessage", msg));
    }
    json_decref(list);
    int64_t version = json_integer_value(json_object_get(su, "version"));
    json_object_del(ac->state, "selfUpdate");
    save(ac);
    finish(ac, version);
}

static int64_t apps_next_due(void *ctx)
{
    apps_cap *ac = ctx;
    if (ac->exiting)
        return INT64_MAX;
    if (json_object_get(ac->state, "selfUpdate"))
        return time_mono_ms() >= ac->next_poll_mono ? 0 : INT64_MAX;
    return json_object_get(ac->state, "pending") ? 0 : INT64_MAX;
}

static void apps_run_due(void *ctx, int64_t now_ms)
{
    (void)now_ms;
    apps_cap *ac = ctx;
    if (ac->exiting)
        return;
    if (json_object_get(ac->state, "selfUpdate"))
        poll_selfupdate(ac);
    else if (json_object_get(ac->state, "pending"))
        run_pending(ac);
}

static void apps_desired(void *ctx, const char *value_json, int64_t version, iotdm_ack *ack)
{
    apps_cap *ac = ctx;
    json_t *desired = cap_parse_object(value_json, ack);
    if (!desired)
        return;
    if (json_object_size(desired) > APPS_MAX) {
        json_decref(desired);
        cap_ack_error(ack, 400, ac->ack_text, sizeof ac->ack_text, "at most %d apps", APPS_MAX);
        return;
    }
    json_object_set_new(
        ac->state, "pending",
        json_pack("{s:I, s:o}", "version", (json_int_t)version, "desired", desired));
    save(ac);
    /* "refreshing" now, the whole map later: a reported patch merges, so only replacing the value
     * makes removed apps vanish. */
    cap_ack_value(ack, &ac->value_text, json_string("refreshing"));
    ack->code = 202;
    ack->description = json_object_get(ac->state, "selfUpdate")
                           ? "queued behind the agent's self-update"
                           : "applying";
}

static char *apps_read(void *ctx)
{
    apps_cap *ac = ctx;
    json_t *desired = json_object_get(ac->state, "desired");
    if (!desired)
        return NULL;
    json_t *v = build_report(ac, desired, json_object_get(ac->state, "errors"));
    char *text = cap_dump(v);
    json_decref(v);
    return text;
}

static int lifecycle_answer(apps_cap *ac, int code, const char *state, const char *message,
                            char **out_json)
{
    json_t *status = cap_status(ac->env, state, message);
    *out_json = cap_dump(status);
    json_decref(status);
    return code;
}

/* Synchronous: systemctl start/stop returns once the unit has started or stopped. */
static int lifecycle_command(void *ctx, const char *name, const char *payload, char **out_json)
{
    (void)name;
    apps_cap *ac = ctx;
    json_t *req = json_loads(payload, JSON_DECODE_ANY, NULL);
    const char *pkg = json_string_value(json_object_get(req, "package"));
    const char *action = json_string_value(json_object_get(req, "action"));
    char pname[DEBPKG_NAME_MAX + 1], err[400];
    if (!pkg || !apps_key_to_name(pkg, pname, sizeof pname) || !action ||
        (strcmp(action, "start") != 0 && strcmp(action, "stop") != 0)) {
        json_decref(req);
        return lifecycle_answer(ac, 400, "failed",
                                "the payload must be {\"package\": <name>, \"action\": "
                                "\"start\"|\"stop\"}",
                                out_json);
    }
    bool start = strcmp(action, "start") == 0;
    json_t *args = json_pack("{s:s, s:s}", "package", pname, "action", action), *res = NULL;
    json_decref(req);
    iotdm_result r =
        ac->env->configd(ac->env->configd_ctx, "apps.lifecycle", args, &res, err, sizeof err);
    json_decref(args);
    if (r == 0)
        snprintf(err, sizeof err, "%s %s (%s)", pname, start ? "started" : "stopped",
                 str(res, "unit"));
    json_decref(res);
    if (r < 0)
        return lifecycle_answer(ac, r == IOTDM_E_MALFORMED ? 400 : 500, "failed", err, out_json);
    return lifecycle_answer(ac, 200, "completed", err, out_json);
}

iotdm_result cap_apps_start(cap_env *env, void **out_state, cap_timer *out_timer)
{
    apps_cap *ac = calloc(1, sizeof *ac);
    if (!ac)
        return -ENOMEM;
    ac->env = env;
    ac->state = cap_state_load(env, state_name);
    *out_state = ac;
    *out_timer = (cap_timer){apps_next_due, apps_run_due, ac};
    if (json_object_get(ac->state, "selfUpdate"))
        log_info("apps", "a self-update was in progress; reading its outcome");
    iotdm_property_handler h = {.struct_size = sizeof(iotdm_property_handler),
                                .component = CAP_COMPONENT,
                                .property = "apps",
                                .on_desired = apps_desired,
                                .read_state = apps_read,
                                .ctx = ac};
    iotdm_result r = iotdm_handler_add(env->client, &h);
    if (r == IOTDM_OK)
        r = iotdm_command_register(env->client, CAP_COMPONENT, "appLifecycle", lifecycle_command,
                                   ac);
    return r;
}

void cap_apps_stop(void *state)
{
    apps_cap *ac = state;
    if (!ac)
        return;
    json_decref(ac->state);
    free(ac->value_text);
    free(ac);
}
