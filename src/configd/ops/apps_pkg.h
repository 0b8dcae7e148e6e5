/* The package database behind apps.* and updates.*: apt and dpkg on a real system, a simulated
 * database (packages.json, a folder of .deb files as the repository) in the sandbox. */
#ifndef IOTDM_CONFIGD_OPS_APPS_PKG_H
#define IOTDM_CONFIGD_OPS_APPS_PKG_H

#include <jansson.h>
#include <stdbool.h>

#include "common/debpkg.h"
#include "configd/optable.h"

typedef struct {
    bool installed;
    bool held; /* apt-mark hold: automatic upgrades leave it alone */
    char version[DEBPKG_VERSION_MAX + 1];
    char install_date[32]; /* ISO 8601 UTC, "" when unknown */
} cfgd_pkg_status;

int cfgd_pkg_query(cfgd_ctx *ctx, const char *name, cfgd_pkg_status *out, cfgd_error *err);

/* What the repositories offer for name: the candidate apt would pick ("" when none) and, when
 * out_versions is not NULL, every version as a new array of strings. */
int cfgd_pkg_policy(cfgd_ctx *ctx, const char *name, char *candidate, size_t cap,
                    json_t **out_versions, cfgd_error *err);

/* Package and Version of a .deb at a device path (configd's staging folder). */
int cfgd_pkg_deb_fields(cfgd_ctx *ctx, const char *path, char *name, size_t name_cap, char *version,
                        size_t version_cap, cfgd_error *err);

/* Installs target ("name", "name=version", or the device path of a staged .deb) whose result is
 * name at version. detached: in the self-update unit, returning at once (the install restarts the
 * agent, so nobody may wait for it inside a call the agent makes). */
int cfgd_pkg_install(cfgd_ctx *ctx, const char *target, const char *name, const char *version,
                     bool detached, cfgd_error *err);
int cfgd_pkg_remove(cfgd_ctx *ctx, const char *name, bool purge, cfgd_error *err);
int cfgd_pkg_hold(cfgd_ctx *ctx, const char *name, bool hold, cfgd_error *err);
/* Whether removing name would take the protected package with it (apt resolves dependencies). */
int cfgd_pkg_removal_takes(cfgd_ctx *ctx, const char *name, bool purge, const char *protected_pkg,
                           bool *out, cfgd_error *err);
/* Whether the agent's detached self-update is still running. */
bool cfgd_pkg_selfupdate_running(cfgd_ctx *ctx);

/* OS updates: refresh the package lists; the upgradable packages as "name=version" strings (a new
 * array; *out_truncated when the list did not fit); upgrade one "name" or "name=version". */
int cfgd_pkg_update_lists(cfgd_ctx *ctx, cfgd_error *err);
int cfgd_pkg_upgradable(cfgd_ctx *ctx, json_t **out, bool *out_truncated, cfgd_error *err);
int cfgd_pkg_upgrade(cfgd_ctx *ctx, const char *name, const char *version, cfgd_error *err);

/* Shared with the sandbox half (apps_sandbox.c). */
int cfgd_sandbox_pkg_query(cfgd_ctx *ctx, const char *name, cfgd_pkg_status *out, cfgd_error *err);
int cfgd_sandbox_pkg_policy(cfgd_ctx *ctx, const char *name, char *candidate, size_t cap,
                            json_t **out_versions, cfgd_error *err);
int cfgd_sandbox_pkg_set(cfgd_ctx *ctx, const char *name, const char *version, cfgd_error *err);
int cfgd_sandbox_pkg_hold(cfgd_ctx *ctx, const char *name, bool hold, cfgd_error *err);
int cfgd_sandbox_update_lists(cfgd_ctx *ctx, cfgd_error *err);
int cfgd_sandbox_upgradable(cfgd_ctx *ctx, json_t **out, cfgd_error *err);
/* The version an upgrade of name (to version, or the newest) would install; refuses what apt would
 * not do. Then applying it (with the reboot-required flag of its simulated update). */
int cfgd_sandbox_upgrade_check(cfgd_ctx *ctx, const char *name, const char *version, char *out,
                               size_t cap, cfgd_error *err);
int cfgd_sandbox_upgrade_apply(cfgd_ctx *ctx, const char *name, const char *version,
                               cfgd_error *err);

/* {"installed", "version", "installDate", "startUp", "active"} of a package (apps.c). */
int cfgd_apps_status(cfgd_ctx *ctx, const char *name, json_t **out, cfgd_error *err);

/* Runs argv and fails with the program's own words when it exits non-zero. */
int cfgd_pkg_run_checked(cfgd_ctx *ctx, const char *const *argv, cfgd_cmd_result *res,
                         cfgd_error *err);

#endif
