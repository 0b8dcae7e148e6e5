/* Operation handlers and validators of iotdm-configd, one file per area, plus argument helpers. */
#ifndef IOTDM_CONFIGD_OPS_H
#define IOTDM_CONFIGD_OPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "configd/optable.h"

#define CFGD_ZONE_MAX       128 /* longest IANA name is 32; room for vendor zones */
#define CFGD_NTP_SERVER_MAX 253 /* a DNS name */
#define CFGD_NTP_MAX        8
#define CFGD_REASON_MAX     200
#define CFGD_TIMESYNCD      "systemd-timesyncd.service"
#define CFGD_NTP_DROPIN     "/etc/systemd/timesyncd.conf.d/iotdm.conf"

/* ---- argument helpers (args.c) ---- */

/* Refuses any member of args not named in allowed (NULL-terminated): invalid_argument. */
int cfgd_args_only(const json_t *args, const char *const *allowed, cfgd_error *err);
/* A boolean member: 1 and *out when present, 0 when absent and optional, -EINVAL otherwise. */
int cfgd_arg_bool(const json_t *args, const char *name, bool required, bool *out, cfgd_error *err);
/* A string member of 1..max_len printable characters (no controls, no NUL): as cfgd_arg_bool. */
int cfgd_arg_string(const json_t *args, const char *name, bool required, size_t max_len,
                    const char **out, cfgd_error *err);
/* IANA zone name syntax: [A-Za-z0-9_+-] segments joined by '/', at most CFGD_ZONE_MAX bytes. */
bool cfgd_zone_name_valid(const char *zone, size_t len, cfgd_error *err);
/* Names in the zoneinfo database that are not zones ("localtime", "posixrules"; zoneinfo.c). */
bool cfgd_zone_name_reserved(const char *zone);
/* The zone's file in the zoneinfo database at db (a host path; device_db is the same folder as the
 * device sees it, for absolute links) into out: 0 for a TZif file reached without leaving the
 * database, not even through a link that comes back (-EXDEV), else -errno (-ELOOP, -ENOENT, -EINVAL
 * for a bad or reserved name or a file that is not TZif). */
IOTDM_NODISCARD iotdm_result cfgd_zoneinfo_lookup(const char *db, const char *device_db,
                                                  const char *zone, char *out, size_t cap);
/* A host name or IP literal from [A-Za-z0-9.:-], at most 253 bytes, not starting with '-' or '.'.
 */
bool cfgd_ntp_server_valid(const char *server, size_t len, cfgd_error *err);
/* Whether the content of fd (from offset 0, regular files only) has the SHA-256 given as 64 hex
 * digits: 0, or -EINVAL (bad hex, mismatch) / -errno with err filled. */
int cfgd_fd_check_sha256(int fd, const char *hex, cfgd_error *err);

/* ---- validators ---- */
int cfgd_validate_no_args(const json_t *args, cfgd_error *err);
int cfgd_validate_reboot(const json_t *args, cfgd_error *err);
int cfgd_validate_factory_reset(const json_t *args, cfgd_error *err);
int cfgd_validate_set_zone(const json_t *args, cfgd_error *err);
int cfgd_validate_set_ntp(const json_t *args, cfgd_error *err);
int cfgd_validate_set_service(const json_t *args, cfgd_error *err);

/* ---- handlers ---- */
int cfgd_op_system_info(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_system_reboot(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_system_factory_reset(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_time_get(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_time_set_zone(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_time_set_ntp(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);
int cfgd_op_time_set_service(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err);

/* Issue 4: each area declares its validators and handlers in ops/<area>.h, included here. */
/* #include "configd/ops/certs.h" and the other areas' headers go below, one line each. */
#include "configd/ops/apps.h"
#include "configd/ops/certs.h"
#include "configd/ops/logs.h"
#include "configd/ops/telemetry.h"
#include "configd/ops/updates.h"
#include "configd/ops/wifi.h"

#endif
