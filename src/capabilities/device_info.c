/* deviceInformation (Microsoft's standard read-only interface) and dm.deviceInfo (OS, kernel,
 * host name, machine id, boot time, uptime, disk and memory), read through configd. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capabilities/capabilities.h"
#include "common/log.h"

static void copy_member(json_t *to, const char *to_key, json_t *from, const char *from_key)
{
    json_t *v = json_object_get(from, from_key);
    if (v && !json_is_null(v))
        json_object_set(to, to_key, v);
}

void cap_device_info_report(cap_env *env)
{
    json_t *info = NULL;
    char err[400];
    if (env->configd(env->configd_ctx, "system.info", NULL, &info, err, sizeof err) < 0) {
        log_warn("device-info", "cannot read system information: %s", err);
        return;
    }
    /* Microsoft's interface reports storage and memory in kilobytes, as doubles. */
    json_t *std = json_pack("{s:s, s:s}", "__t", "c", "swVersion", env->sw_version);
    copy_member(std, "manufacturer", info, "manufacturer");
    copy_member(std, "model", info, "model");
    copy_member(std, "osName", info, "osName");
    copy_member(std, "processorArchitecture", info, "processorArchitecture");
    copy_member(std, "processorManufacturer", info, "processorManufacturer");
    json_object_set_new(
        std, "totalStorage",
        json_real((double)json_integer_value(json_object_get(info, "totalStorageKB"))));
    json_object_set_new(
        std, "totalMemory",
        json_real((double)json_integer_value(json_object_get(info, "totalMemoryKB"))));
    json_t *patch = json_pack("{s:o}", "deviceInformation", std);
    char *text = cap_dump(patch);
    json_decref(patch);
    iotdm_result r = text ? iotdm_twin_report(env->client, text) : -ENOMEM;
    if (r < 0)
        log_error("agent", "cannot report deviceInformation: %s", iotdm_result_message(r));
    free(text);

    json_t *dm = json_object();
    const char *keys[] = {"osName",       "osVersion",      "kernel",        "hostname",
                          "machineId",    "bootTime",       "uptimeSeconds", "totalMemoryKB",
                          "freeMemoryKB", "totalStorageKB", "freeStorageKB"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        copy_member(dm, keys[i], info, keys[i]);
    json_decref(info);
    cap_report(env, "deviceInfo", dm);
}
