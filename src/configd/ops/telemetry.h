/* telemetry.* operations: the device's telemetry level policy file and who is told about it. */
#ifndef IOTDM_CONFIGD_OPS_TELEMETRY_H
#define IOTDM_CONFIGD_OPS_TELEMETRY_H

#include <jansson.h>

#include "configd/optable.h"

#define CFGD_TELEMETRY_FILE "/etc/iotdm/telemetry-level"

/* The level's number (security 0, basic 1, enhanced 2, full 3), or -1 for another word. */
int cfgd_telemetry_level_value(const char *level);

int cfgd_validate_telemetry_set(const json_t *args, cfgd_error *err);

int cfgd_op_telemetry_get(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_telemetry_set_level(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);

#endif
