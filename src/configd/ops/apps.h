/* apps.* operations: Debian packages through apt/dpkg, their start-up (kiosk or service), and the
 * agent's protection of itself. */
#ifndef IOTDM_CONFIGD_OPS_APPS_H
#define IOTDM_CONFIGD_OPS_APPS_H

#include <jansson.h>

#include "configd/optable.h"

#define CFGD_APPS_LIST_MAX 64 /* packages per apps.list */
#define CFGD_KIOSK_UNIT    "iotdm-kiosk.service"
#define CFGD_KIOSK_FILE    "/etc/systemd/system/iotdm-kiosk.service"
#define CFGD_SELFUPDATE    "iotdm-selfupdate" /* the transient unit of the agent's own update */
#define CFGD_DEB_STAGE_DIR "/var/lib/iotdm-configd/debs"
#define CFGD_SANDBOX_PKGS  "/var/lib/iotdm-sandbox/packages.json"
#define CFGD_SANDBOX_REPO  "/var/lib/iotdm-sandbox/repo" /* default sandbox_repo */
#define CFGD_SANDBOX_LISTS "/var/lib/iotdm-sandbox/apt-lists.json"

int cfgd_validate_apps_list(const json_t *args, cfgd_error *err);
int cfgd_validate_apps_install(const json_t *args, cfgd_error *err);
int cfgd_validate_apps_remove(const json_t *args, cfgd_error *err);
int cfgd_validate_apps_set_startup(const json_t *args, cfgd_error *err);
int cfgd_validate_apps_lifecycle(const json_t *args, cfgd_error *err);

int cfgd_op_apps_list(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_apps_install(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_apps_remove(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_apps_set_startup(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_apps_lifecycle(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);

#endif
