/* telemetryLevel: security | basic | enhanced | full, written by configd to the policy file that
 * the device's other software reads, with the configured services told to re-read it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capabilities/capabilities.h"

typedef struct {
    cap_env *env;
    char ack_text[768];
    char *value_text;
} level_cap;

static bool known_level(const char *level)
{
    static const char *const levels[] = {"security", "basic", "enhanced", "full"};
    for (size_t i = 0; i < sizeof levels / sizeof *levels; i++) {
        if (strcmp(levels[i], level) == 0)
            return true;
    }
    return false;
}

/* {"level": …} as read back from the device; {} when no level was ever set. */
static json_t *level_value(const json_t *result)
{
    const char *level = json_string_value(json_object_get(result, "level"));
    return level ? json_pack("{s:s}", "level", level) : json_object();
}

static void failed_units(const json_t *failed, char *out, size_t cap)
{
    size_t n = 0, i;
    const json_t *f;
    out[0] = '\0';
    json_array_foreach(failed, i, f)
    {
        int w = snprintf(out + n, cap - n, "%s%s: %s", i ? "; " : "",
                         json_string_value(json_object_get(f, "unit")),
                         json_string_value(json_object_get(f, "message")));
        if (w < 0 || (size_t)w >= cap - n)
            break;
        n += (size_t)w;
    }
}

static void level_desired(void *ctx, const char *value_json, int64_t version, iotdm_ack *ack)
{
    (void)version;
    level_cap *lc = ctx;
    cap_env *env = lc->env;
    json_t *desired = cap_parse_object(value_json, ack);
    if (!desired)
        return;
    const char *level = json_string_value(json_object_get(desired, "level"));
    char err[512];
    json_t *result = NULL;
    iotdm_result r = IOTDM_E_MALFORMED;
    if (!level || !known_level(level)) {
        snprintf(err, sizeof err, "level must be security, basic, enhanced or full");
    } else {
        json_t *args = json_pack("{s:s}", "level", level);
        r = env->configd(env->configd_ctx, "telemetry.set_level", args, &result, err, sizeof err);
        json_decref(args);
    }
    json_decref(desired);
    if (r < 0) {
        cap_ack_error(ack, r == IOTDM_E_MALFORMED ? 400 : 500, lc->ack_text, sizeof lc->ack_text,
                      "%s", err);
        /* The twin shows the level the device still has. */
        if (env->configd(env->configd_ctx, "telemetry.get", NULL, &result, err, sizeof err) == 0)
            cap_ack_value(ack, &lc->value_text, level_value(result));
        json_decref(result);
        return;
    }
    const json_t *failed = json_object_get(result, "notifyFailed");
    if (json_array_size(failed) > 0) {
        failed_units(failed, err, sizeof err);
        cap_ack_error(ack, 500, lc->ack_text, sizeof lc->ack_text,
                      "level set, but these services were not told: %s", err);
    } else {
        cap_ack_error(ack, 200, lc->ack_text, sizeof lc->ack_text, "applied");
    }
    cap_ack_value(ack, &lc->value_text, level_value(result));
    json_decref(result);
}

static char *level_read(void *ctx)
{
    level_cap *lc = ctx;
    json_t *result = NULL;
    char err[256];
    if (lc->env->configd(lc->env->configd_ctx, "telemetry.get", NULL, &result, err, sizeof err) < 0)
        return NULL;
    json_t *v = level_value(result);
    json_decref(result);
    char *text = json_object_size(v) ? cap_dump(v) : NULL; /* never set: nothing to report */
    json_decref(v);
    return text;
}

iotdm_result cap_telemetry_level_start(cap_env *env, void **out_state)
{
    level_cap *lc = calloc(1, sizeof *lc);
    if (!lc)
        return -ENOMEM;
    lc->env = env;
    *out_state = lc;
    iotdm_property_handler h = {.struct_size = sizeof(iotdm_property_handler),
                                .component = CAP_COMPONENT,
                                .property = "telemetryLevel",
                                .on_desired = level_desired,
                                .read_state = level_read,
                                .ctx = lc};
    return iotdm_handler_add(env->client, &h);
}

void cap_telemetry_level_stop(void *state)
{
    level_cap *lc = state;
    if (!lc)
        return;
    free(lc->value_text);
    free(lc);
}
