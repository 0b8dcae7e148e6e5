/* Helpers shared by the capabilities: status objects, reporting, durable state. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capabilities/capabilities.h"
#include "common/atomic_file.h"
#include "common/iso8601.h"
#include "common/log.h"

char *cap_dump(json_t *value)
{
    return json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
}

json_t *cap_status(cap_env *env, const char *state, const char *message)
{
    char when[32];
    iso8601_format_utc(env->now_ms(env->clock_ctx), when, sizeof when);
    json_t *s = json_pack("{s:s, s:s}", "state", state, "time", when);
    if (message && *message)
        json_object_set_new(s, "message", json_string(message));
    return s;
}

void cap_report(cap_env *env, const char *property, json_t *value)
{
    char *text = cap_dump(value);
    json_decref(value);
    iotdm_result r =
        text ? iotdm_report_property(env->client, CAP_COMPONENT, property, text) : -ENOMEM;
    if (r < 0)
        log_error("agent", "cannot report dm.%s: %s", property, iotdm_result_message(r));
    free(text);
}

void cap_ack_later(cap_env *env, const char *property, int64_t version, const iotdm_ack *ack)
{
    iotdm_result r = iotdm_report_ack(env->client, CAP_COMPONENT, property, version, ack);
    if (r < 0)
        log_error("agent", "cannot report the acknowledgement of dm.%s (%d %s): %s", property,
                  ack->code, ack->description ? ack->description : "", iotdm_result_message(r));
}

static void state_path(cap_env *env, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.json", env->state_dir, name);
}

json_t *cap_state_load(cap_env *env, const char *name)
{
    char path[1024];
    state_path(env, name, path, sizeof path);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!json_is_object(j)) {
        json_decref(j);
        return json_object();
    }
    return j;
}

iotdm_result cap_state_save(cap_env *env, const char *name, json_t *state)
{
    char path[1024], err[1200];
    state_path(env, name, path, sizeof path);
    char *text = cap_dump(state);
    if (!text)
        return -ENOMEM;
    iotdm_result r = atomic_file_write(path, text, strlen(text), 0600, err, sizeof err);
    free(text);
    if (r < 0) {
        log_error("agent", "%s", err);
        return IOTDM_E_STORAGE;
    }
    return IOTDM_OK;
}

json_t *cap_parse_object(const char *json, iotdm_ack *ack)
{
    json_error_t err;
    json_t *j = json_loads(json, JSON_DECODE_ANY, &err);
    if (!json_is_object(j)) {
        json_decref(j);
        ack->code = 400;
        ack->description = "the value must be a JSON object";
        return NULL;
    }
    return j;
}

void cap_ack_value(iotdm_ack *ack, char **slot, json_t *value)
{
    free(*slot);
    *slot = cap_dump(value);
    json_decref(value);
    ack->value_json = *slot;
}

void cap_ack_error(iotdm_ack *ack, int code, char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    ack->code = code;
    ack->description = buf;
}
