/* updates.* operations: the OS update policy (apt's unattended upgrades and their hours), the
 * package lists, the upgradable packages, installing approved updates, reboot-required state. */
#ifndef IOTDM_CONFIGD_OPS_UPDATES_H
#define IOTDM_CONFIGD_OPS_UPDATES_H

#include <jansson.h>

#include "configd/optable.h"

#define CFGD_UPDATES_MAX      64 /* packages per updates.install */
#define CFGD_UPDATES_APT_CONF "/etc/apt/apt.conf.d/52iotdm-unattended"
#define CFGD_UPDATES_TIMER    "/etc/systemd/system/apt-daily-upgrade.timer.d/iotdm.conf"
#define CFGD_UPDATES_POLICY   "/etc/iotdm/update-policy.json"
#define CFGD_DEFER_DAYS_MAX   365

int cfgd_validate_updates_set_policy(const json_t *args, cfgd_error *err);
int cfgd_validate_updates_install(const json_t *args, cfgd_error *err);

int cfgd_op_updates_get(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_updates_set_policy(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_updates_scan(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_updates_install(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);

#endif
