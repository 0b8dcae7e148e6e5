/* iotdm-configd settings: one table serves the config file and the command line. */
#ifndef IOTDM_CONFIGD_CONFIG_H
#define IOTDM_CONFIGD_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "iotdm/result.h"

#define CFGD_MAX_ALLOW      32
#define CFGD_MAX_RESET      32
#define CFGD_PATH_MAX       256 /* device paths named in the config (reset paths, hook) */
#define CFGD_DEFAULT_CONFIG "/etc/iotdm/configd.conf"
#define CFGD_ZONEINFO_DIR   "/usr/share/zoneinfo"
#define CFGD_MAX_NOTIFY     8   /* telemetry_notify_unit entries */
#define CFGD_UNIT_MAX       128 /* a systemd unit name */
#define CFGD_MAX_UPGRADABLE 64  /* sandbox_upgradable entries */
#define CFGD_UPGRADABLE_MAX 272 /* "name=version reboot" */

typedef enum { CFGD_BACKEND_LINUX, CFGD_BACKEND_SANDBOX } cfgd_backend_kind;

typedef struct {
    char socket_path[108]; /* sizeof sockaddr_un.sun_path */
    char socket_group[64]; /* group owning the socket; "" leaves it as created */
    cfgd_backend_kind backend;
    char root[PATH_MAX]; /* sandbox directory, or the linux backend's prefix ("" = the real /) */
    uid_t allow_uids[CFGD_MAX_ALLOW];
    size_t n_allow_uids;
    gid_t allow_gids[CFGD_MAX_ALLOW];
    size_t n_allow_gids;
    char zoneinfo_dir[CFGD_PATH_MAX];
    char reset_paths[CFGD_MAX_RESET][CFGD_PATH_MAX]; /* factory_reset_path */
    size_t n_reset_paths;
    char keep_paths[CFGD_MAX_RESET][CFGD_PATH_MAX]; /* factory_reset_keep */
    size_t n_keep_paths;
    char reset_hook[CFGD_PATH_MAX]; /* "" = none */
    char manufacturer[128];         /* "" = read from DMI / device tree */
    char model[128];
    int command_timeout_ms;
    char telemetry_units[CFGD_MAX_NOTIFY][CFGD_UNIT_MAX]; /* told about telemetry level changes */
    size_t n_telemetry_units;
    char agent_package[129];          /* the agent's own Debian package (apps.*: protected) */
    char sandbox_repo[CFGD_PATH_MAX]; /* sandbox: folder of name_version_arch.deb files */
    char sandbox_upgradable[CFGD_MAX_UPGRADABLE][CFGD_UPGRADABLE_MAX]; /* sandbox: updates */
    size_t n_sandbox_upgradable;
    bool root_set, sandbox_set; /* both given is an error */
} cfgd_config;

void cfgd_config_defaults(cfgd_config *cfg);
/* Applies one setting ("allow_uid", "factory_reset_path", ...). Returns IOTDM_E_MALFORMED with a
 * message for an unknown key or a bad value. */
IOTDM_NODISCARD iotdm_result cfgd_config_set(cfgd_config *cfg, const char *key, const char *value,
                                             char *error, size_t error_cap);
/* Reads a config file with cfgd_config_set for each line. */
IOTDM_NODISCARD iotdm_result cfgd_config_load(cfgd_config *cfg, const char *path, char *error,
                                              size_t error_cap);
/* Checks the settings together (sandbox vs root) once everything is applied. */
IOTDM_NODISCARD iotdm_result cfgd_config_finish(cfgd_config *cfg, char *error, size_t error_cap);

/* True for an absolute, normalised device path: starts with '/', no empty, "." or ".." segments,
 * no trailing '/', printable ASCII, shorter than CFGD_PATH_MAX. "/" itself is false. */
bool cfgd_path_clean(const char *path);
/* True when path is base or lies below it (both clean). */
bool cfgd_path_within(const char *path, const char *base);

#endif
