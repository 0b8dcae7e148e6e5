/* dm*reportAll and dm*clearReported. */
#include <stdlib.h>
#include <string.h>

#include "capabilities/capabilities.h"

static int report_all(void *ctx, const char *name, const char *payload, char **out_json)
{
    (void)name;
    (void)payload;
    cap_set *set = ctx;
    cap_set_report_static(set);
    iotdm_result r = iotdm_report_all(set->env->client);
    if (r < 0) {
        *out_json = strdup("{\"message\":\"cannot queue the reports\"}");
        return 500;
    }
    json_t *status = cap_status(set->env, "completed", "every section reported");
    *out_json = cap_dump(status);
    json_decref(status);
    return 200;
}

static int clear_reported(void *ctx, const char *name, const char *payload, char **out_json)
{
    (void)name;
    (void)payload;
    cap_set *set = ctx;
    /* null deletes the whole component; the next change or reportAll rebuilds it. */
    iotdm_result r = iotdm_twin_report(set->env->client, "{\"" CAP_COMPONENT "\":null}");
    if (r < 0) {
        *out_json = strdup("{\"message\":\"cannot queue the report\"}");
        return 500;
    }
    json_t *status = cap_status(set->env, "completed", "reported properties cleared");
    *out_json = cap_dump(status);
    json_decref(status);
    return 200;
}

iotdm_result cap_report_start(cap_set *set)
{
    iotdm_result r =
        iotdm_command_register(set->env->client, CAP_COMPONENT, "reportAll", report_all, set);
    return r < 0 ? r
                 : iotdm_command_register(set->env->client, CAP_COMPONENT, "clearReported",
                                          clear_reported, set);
}
