/* timeInfo (IANA zone, NTP servers) and timeService (systemd-timesyncd, with the original's
 * local/remote source priority), both applied through configd. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capabilities/capabilities.h"

typedef struct {
    cap_env *env;
    char ack_text[512];
    char *value_text; /* the last reported value, owned until the next call */
} time_cap;

/* The reported timeInfo value: what the device really has. */
static json_t *time_info_value(json_t *got)
{
    json_t *v = json_object();
    const char *keys[] = {"timeZone", "ntpServers", "localTime", "synchronized"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        json_t *x = json_object_get(got, keys[i]);
        if (x)
            json_object_set(v, keys[i], x);
    }
    return v;
}

static void set_value(time_cap *tc, iotdm_ack *ack, json_t *value)
{
    cap_ack_value(ack, &tc->value_text, value);
}

/* What the device has after a change (the operation's answer, else time.get), or NULL when it
 * cannot be read back; err then says why. */
static json_t *read_back(cap_env *env, json_t *result, char *err, size_t err_cap)
{
    if (result)
        return result;
    if (env->configd(env->configd_ctx, "time.get", NULL, &result, err, err_cap) < 0) {
        json_decref(result);
        return NULL;
    }
    return result;
}

/* A change configd made: 200 with what the device has. When that cannot be read, the desired
 * value is reported back (value_json NULL) rather than a made-up state, and the description
 * says so. */
static void ack_applied(time_cap *tc, iotdm_ack *ack, json_t *value, const char *applied,
                        const char *err)
{
    if (value) {
        set_value(tc, ack, value);
        ack->code = 200;
        ack->description = applied;
        return;
    }
    cap_ack_error(ack, 200, tc->ack_text, sizeof tc->ack_text,
                  "%s; reading the state back failed: %s", applied, err);
    ack->value_json = NULL;
}

static void time_info_desired(void *ctx, const char *value_json, int64_t version, iotdm_ack *ack)
{
    (void)version;
    time_cap *tc = ctx;
    cap_env *env = tc->env;
    json_t *desired = cap_parse_object(value_json, ack);
    if (!desired)
        return;
    const json_t *zone = json_object_get(desired, "timeZone");
    const json_t *ntp = json_object_get(desired, "ntpServers");
    char err[400] = "";
    json_t *result = NULL;
    iotdm_result r = IOTDM_OK;
    if ((zone && !json_is_string(zone)) || (ntp && !json_is_array(ntp))) {
        cap_ack_error(ack, 400, tc->ack_text, sizeof tc->ack_text,
                      "timeZone must be a string and ntpServers an array of strings");
        json_decref(desired);
        return;
    }
    if (zone) {
        json_t *args = json_pack("{s:O}", "zone", zone);
        r = env->configd(env->configd_ctx, "time.set_zone", args, &result, err, sizeof err);
        json_decref(args);
    }
    if (r == IOTDM_OK && ntp) {
        json_decref(result);
        result = NULL;
        json_t *args = json_pack("{s:O}", "servers", ntp);
        r = env->configd(env->configd_ctx, "time.set_ntp", args, &result, err, sizeof err);
        json_decref(args);
    }
    json_decref(desired);
    if (r < 0) {
        json_decref(result);
        bool bad_input = r == IOTDM_E_MALFORMED;
        cap_ack_error(ack, bad_input ? 400 : 500, tc->ack_text, sizeof tc->ack_text, "%s", err);
        /* Report what the device has now, so the twin shows the unchanged state. */
        if (env->configd(env->configd_ctx, "time.get", NULL, &result, err, sizeof err) == 0)
            set_value(tc, ack, time_info_value(result));
        json_decref(result);
        return;
    }
    result = read_back(env, result, err, sizeof err);
    ack_applied(tc, ack, result ? time_info_value(result) : NULL, "applied", err);
    json_decref(result);
}

static char *time_info_read(void *ctx)
{
    time_cap *tc = ctx;
    json_t *result = NULL;
    char err[400];
    if (tc->env->configd(tc->env->configd_ctx, "time.get", NULL, &result, err, sizeof err) < 0)
        return NULL;
    json_t *v = time_info_value(result);
    json_decref(result);
    char *text = cap_dump(v);
    json_decref(v);
    return text;
}

/* The active desired time-service state: the first source in the priority order that has one. */
static json_t *active_time_service(cap_env *env, json_t *remote, const char **out_source)
{
    const char *priority = json_string_value(json_object_get(remote, "sourcePriority"));
    if (!priority)
        priority = env->local_time_service.priority ? env->local_time_service.priority : "remote";
    bool remote_complete = json_is_boolean(json_object_get(remote, "enabled")) &&
                           json_is_boolean(json_object_get(remote, "started"));
    bool use_local =
        env->local_time_service.present && (strcmp(priority, "local") == 0 || !remote_complete);
    *out_source = priority;
    if (use_local)
        return json_pack("{s:b, s:b}", "enabled", env->local_time_service.enabled, "started",
                         env->local_time_service.started);
    if (!remote_complete)
        return NULL;
    return json_pack("{s:O, s:O}", "enabled", json_object_get(remote, "enabled"), "started",
                     json_object_get(remote, "started"));
}

static json_t *time_service_value(json_t *got, const char *priority)
{
    json_t *svc = json_object_get(got, "timesyncd");
    return json_pack("{s:b, s:b, s:s}", "enabled", json_is_true(json_object_get(svc, "enabled")),
                     "started", json_is_true(json_object_get(svc, "active")), "sourcePriority",
                     priority);
}

static void time_service_desired(void *ctx, const char *value_json, int64_t version, iotdm_ack *ack)
{
    (void)version;
    time_cap *tc = ctx;
    cap_env *env = tc->env;
    json_t *desired = cap_parse_object(value_json, ack);
    if (!desired)
        return;
    const char *prio = json_string_value(json_object_get(desired, "sourcePriority"));
    const json_t *e = json_object_get(desired, "enabled"), *s = json_object_get(desired, "started");
    if ((prio && strcmp(prio, "local") != 0 && strcmp(prio, "remote") != 0) ||
        (e && !json_is_boolean(e)) || (s && !json_is_boolean(s))) {
        json_decref(desired);
        cap_ack_error(ack, 400, tc->ack_text, sizeof tc->ack_text,
                      "enabled and started must be booleans, sourcePriority local or remote");
        return;
    }
    const char *source = "remote";
    json_t *active = active_time_service(env, desired, &source);
    char err[400] = "";
    json_t *result = NULL;
    iotdm_result r = IOTDM_OK;
    if (active)
        r = env->configd(env->configd_ctx, "time.set_service", active, &result, err, sizeof err);
    json_decref(active);
    char priority[16];
    snprintf(priority, sizeof priority, "%s", source);
    json_decref(desired);
    if (r < 0) {
        cap_ack_error(ack, r == IOTDM_E_MALFORMED ? 400 : 500, tc->ack_text, sizeof tc->ack_text,
                      "%s", err);
        return;
    }
    result = read_back(env, result, err, sizeof err);
    ack_applied(tc, ack, result ? time_service_value(result, priority) : NULL,
                active ? "applied" : "incomplete settings: nothing changed", err);
    json_decref(result);
}

iotdm_result cap_time_start(cap_env *env, void **out_state)
{
    /* Two handlers, each with its own acknowledgement buffers. */
    time_cap *tc = calloc(2, sizeof *tc);
    if (!tc)
        return -ENOMEM;
    tc[0].env = tc[1].env = env;
    *out_state = tc;
    iotdm_property_handler info = {.struct_size = sizeof(iotdm_property_handler),
                                   .component = CAP_COMPONENT,
                                   .property = "timeInfo",
                                   .on_desired = time_info_desired,
                                   .read_state = time_info_read,
                                   .ctx = &tc[0]};
    iotdm_property_handler service = {.struct_size = sizeof(iotdm_property_handler),
                                      .component = CAP_COMPONENT,
                                      .property = "timeService",
                                      .on_desired = time_service_desired,
                                      .read_state = NULL,
                                      .ctx = &tc[1]};
    iotdm_result r = iotdm_handler_add(env->client, &info);
    return r < 0 ? r : iotdm_handler_add(env->client, &service);
}

void cap_time_stop(void *state)
{
    time_cap *tc = state;
    if (!tc)
        return;
    free(tc[0].value_text);
    free(tc[1].value_text);
    free(tc);
}
