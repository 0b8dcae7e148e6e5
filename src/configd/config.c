/* iotdm-configd settings: one table serves the config file and the command line. */
#include "configd/config.h"

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/debpkg.h"
#include "common/kvconf.h"
#include "common/log.h"
#include "proto/configd_frame.h"

typedef iotdm_result (*setter)(cfgd_config *cfg, const char *value, char *error, size_t cap);

void cfgd_config_defaults(cfgd_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->socket_path, sizeof cfg->socket_path, "%s", CFGD_DEFAULT_SOCKET);
    snprintf(cfg->zoneinfo_dir, sizeof cfg->zoneinfo_dir, "%s", CFGD_ZONEINFO_DIR);
    cfg->backend = CFGD_BACKEND_LINUX;
    cfg->command_timeout_ms = 60000;
    snprintf(cfg->agent_package, sizeof cfg->agent_package, "iotdm-agent");
    snprintf(cfg->sandbox_repo, sizeof cfg->sandbox_repo, "/var/lib/iotdm-sandbox/repo");
}

bool cfgd_path_clean(const char *path)
{
    size_t len = strlen(path);
    if (path[0] != '/' || len < 2 || len >= CFGD_PATH_MAX || path[len - 1] == '/')
        return false;
    for (const char *p = path; *p; p++) {
        if (*p < 0x21 || *p > 0x7e)
            return false;
    }
    for (const char *seg = path + 1; seg;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return false;
        seg = end ? end + 1 : NULL;
    }
    return true;
}

bool cfgd_path_within(const char *path, const char *base)
{
    size_t n = strlen(base);
    return strncmp(path, base, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static iotdm_result copy_string(char *dst, size_t cap, const char *value, char *error, size_t ecap)
{
    if (!*value || strlen(value) >= cap) {
        snprintf(error, ecap, "value must be 1 to %zu characters", cap - 1);
        return IOTDM_E_MALFORMED;
    }
    snprintf(dst, cap, "%s", value);
    return IOTDM_OK;
}

static iotdm_result set_socket(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    return copy_string(cfg->socket_path, sizeof cfg->socket_path, v, e, cap);
}

static iotdm_result set_socket_group(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    return copy_string(cfg->socket_group, sizeof cfg->socket_group, v, e, cap);
}

static iotdm_result set_sandbox(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    cfg->backend = CFGD_BACKEND_SANDBOX;
    cfg->sandbox_set = true;
    return copy_string(cfg->root, sizeof cfg->root, v, e, cap);
}

static iotdm_result set_root(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    cfg->backend = CFGD_BACKEND_LINUX;
    cfg->root_set = true;
    return copy_string(cfg->root, sizeof cfg->root, v, e, cap);
}

static bool parse_id(const char *v, unsigned long *out)
{
    char *end;
    if (*v < '0' || *v > '9')
        return false;
    unsigned long n = strtoul(v, &end, 10);
    if (*end || n > 0x7fffffffUL)
        return false;
    *out = n;
    return true;
}

/* User names are resolved once, at start-up: the allow-list is then a fixed set of numbers. */
static iotdm_result set_allow_uid(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    unsigned long n;
    if (!parse_id(v, &n)) {
        struct passwd *pw = getpwnam(v);
        if (!pw) {
            snprintf(e, cap, "no such user '%.64s'", v);
            return IOTDM_E_MALFORMED;
        }
        n = pw->pw_uid;
    }
    if (cfg->n_allow_uids >= CFGD_MAX_ALLOW) {
        snprintf(e, cap, "at most %d allow_uid entries", CFGD_MAX_ALLOW);
        return IOTDM_E_TOO_LARGE;
    }
    cfg->allow_uids[cfg->n_allow_uids++] = (uid_t)n;
    return IOTDM_OK;
}

static iotdm_result set_allow_gid(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    unsigned long n;
    if (!parse_id(v, &n)) {
        struct group *gr = getgrnam(v);
        if (!gr) {
            snprintf(e, cap, "no such group '%.64s'", v);
            return IOTDM_E_MALFORMED;
        }
        n = gr->gr_gid;
    }
    if (cfg->n_allow_gids >= CFGD_MAX_ALLOW) {
        snprintf(e, cap, "at most %d allow_gid entries", CFGD_MAX_ALLOW);
        return IOTDM_E_TOO_LARGE;
    }
    cfg->allow_gids[cfg->n_allow_gids++] = (gid_t)n;
    return IOTDM_OK;
}

static iotdm_result set_log_level(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    (void)cfg;
    log_level level;
    if (!log_level_parse(v, &level)) {
        snprintf(e, cap, "log level must be error, warn, info or debug");
        return IOTDM_E_MALFORMED;
    }
    log_set_level(level);
    return IOTDM_OK;
}

static iotdm_result device_path(char *dst, const char *v, char *e, size_t cap)
{
    if (!cfgd_path_clean(v)) {
        snprintf(e, cap, "'%.200s' is not an absolute, normalised path", v);
        return IOTDM_E_MALFORMED;
    }
    snprintf(dst, CFGD_PATH_MAX, "%s", v);
    return IOTDM_OK;
}

static iotdm_result set_zoneinfo(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    return device_path(cfg->zoneinfo_dir, v, e, cap);
}

/* A factory reset removes what these name, so the system's own top-level folders are refused: a
 * typo must not be able to wipe /etc or /usr. */
static iotdm_result reset_list_add(char (*list)[CFGD_PATH_MAX], size_t *n, const char *v, char *e,
                                   size_t cap)
{
    static const char *const forbidden[] = {"/bin",   "/boot", "/dev",  "/etc",  "/lib",
                                            "/lib64", "/proc", "/run",  "/sbin", "/sys",
                                            "/usr",   "/var",  "/home", "/root", "/tmp"};
    if (*n >= CFGD_MAX_RESET) {
        snprintf(e, cap, "at most %d factory reset paths", CFGD_MAX_RESET);
        return IOTDM_E_TOO_LARGE;
    }
    iotdm_result r = device_path(list[*n], v, e, cap);
    if (r < 0)
        return r;
    for (size_t i = 0; i < sizeof forbidden / sizeof *forbidden; i++) {
        if (strcmp(v, forbidden[i]) == 0) {
            snprintf(e, cap, "refusing to wipe the system folder %s", v);
            return IOTDM_E_MALFORMED;
        }
    }
    (*n)++;
    return IOTDM_OK;
}

static iotdm_result set_reset_path(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    return reset_list_add(cfg->reset_paths, &cfg->n_reset_paths, v, e, cap);
}

static iotdm_result set_reset_keep(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    return reset_list_add(cfg->keep_paths, &cfg->n_keep_paths, v, e, cap);
}

static iotdm_result set_reset_hook(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    return device_path(cfg->reset_hook, v, e, cap);
}

static iotdm_result set_manufacturer(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    return copy_string(cfg->manufacturer, sizeof cfg->manufacturer, v, e, cap);
}

static iotdm_result set_model(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    return copy_string(cfg->model, sizeof cfg->model, v, e, cap);
}

static iotdm_result set_timeout(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    unsigned long n;
    if (!parse_id(v, &n) || n < 1 || n > 3600) {
        snprintf(e, cap, "command_timeout is 1 to 3600 seconds");
        return IOTDM_E_MALFORMED;
    }
    cfg->command_timeout_ms = (int)n * 1000;
    return IOTDM_OK;
}

/* A unit name goes on systemctl's command line: a plain name with a type suffix, no option. */
static iotdm_result set_telemetry_unit(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789:_.@\\-";
    size_t len = strlen(v);
    const char *dot = strrchr(v, '.');
    if (len == 0 || len >= CFGD_UNIT_MAX || v[0] == '-' || v[0] == '.' || !dot || !dot[1] ||
        strspn(v, allowed) != len) {
        snprintf(e, cap, "'%.64s' is not a systemd unit name (like foo.service)", v);
        return IOTDM_E_MALFORMED;
    }
    if (cfg->n_telemetry_units >= CFGD_MAX_NOTIFY) {
        snprintf(e, cap, "at most %d telemetry_notify_unit entries", CFGD_MAX_NOTIFY);
        return IOTDM_E_TOO_LARGE;
    }
    snprintf(cfg->telemetry_units[cfg->n_telemetry_units++], CFGD_UNIT_MAX, "%s", v);
    return IOTDM_OK;
}

/* Apps and updates (ops/apps.c, ops/updates.c). */
static iotdm_result set_agent_package(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    if (!debpkg_name_valid(v, strlen(v))) {
        snprintf(e, cap, "'%.64s' is not a Debian package name", v);
        return IOTDM_E_MALFORMED;
    }
    snprintf(cfg->agent_package, sizeof cfg->agent_package, "%s", v);
    return IOTDM_OK;
}

static iotdm_result set_sandbox_repo(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    return device_path(cfg->sandbox_repo, v, e, cap);
}

/* "name=version", optionally followed by " reboot" (installing it flags a reboot). */
static iotdm_result set_sandbox_upgradable(cfgd_config *cfg, const char *v, char *e, size_t cap)
{
    char spec[CFGD_UPGRADABLE_MAX], name[DEBPKG_NAME_MAX + 1];
    const char *version = NULL;
    snprintf(spec, sizeof spec, "%s", v);
    char *space = strchr(spec, ' ');
    if (space)
        *space = '\0';
    if (strlen(v) >= sizeof spec || !debpkg_spec_parse(spec, name, sizeof name, &version) ||
        !version || (space && strcmp(space + 1 + strspn(space + 1, " "), "reboot") != 0)) {
        snprintf(e, cap, "'%.64s' is not name=version [reboot]", v);
        return IOTDM_E_MALFORMED;
    }
    if (cfg->n_sandbox_upgradable >= CFGD_MAX_UPGRADABLE) {
        snprintf(e, cap, "at most %d sandbox_upgradable entries", CFGD_MAX_UPGRADABLE);
        return IOTDM_E_TOO_LARGE;
    }
    snprintf(cfg->sandbox_upgradable[cfg->n_sandbox_upgradable++], CFGD_UPGRADABLE_MAX, "%s", v);
    return IOTDM_OK;
}

static const struct {
    const char *key;
    setter set;
} settings[] = {
    {"socket", set_socket},
    {"socket_group", set_socket_group},
    {"sandbox", set_sandbox},
    {"root", set_root},
    {"allow_uid", set_allow_uid},
    {"allow_gid", set_allow_gid},
    {"log_level", set_log_level},
    {"zoneinfo_dir", set_zoneinfo},
    {"factory_reset_path", set_reset_path},
    {"factory_reset_keep", set_reset_keep},
    {"factory_reset_hook", set_reset_hook},
    {"manufacturer", set_manufacturer},
    {"model", set_model},
    {"command_timeout", set_timeout},
    {"agent_package", set_agent_package},
    {"sandbox_repo", set_sandbox_repo},
    {"sandbox_upgradable", set_sandbox_upgradable},
    {"telemetry_notify_unit", set_telemetry_unit},
};

iotdm_result cfgd_config_set(cfgd_config *cfg, const char *key, const char *value, char *error,
                             size_t error_cap)
{
    for (size_t i = 0; i < sizeof settings / sizeof *settings; i++) {
        if (strcmp(settings[i].key, key) == 0)
            return settings[i].set(cfg, value, error, error_cap);
    }
    snprintf(error, error_cap, "unknown setting '%.64s'", key);
    return IOTDM_E_MALFORMED;
}

static iotdm_result load_line(void *ctx, const char *key, const char *value, char *error,
                              size_t error_cap)
{
    return cfgd_config_set(ctx, key, value, error, error_cap);
}

iotdm_result cfgd_config_load(cfgd_config *cfg, const char *path, char *error, size_t error_cap)
{
    return kvconf_load(path, load_line, cfg, error, error_cap);
}

iotdm_result cfgd_config_finish(cfgd_config *cfg, char *error, size_t error_cap)
{
    if (cfg->root_set && cfg->sandbox_set) {
        snprintf(error, error_cap, "sandbox and root exclude each other: choose one");
        return IOTDM_E_MALFORMED;
    }
    if (cfg->sandbox_set && !cfg->root[0]) {
        snprintf(error, error_cap, "sandbox needs a directory");
        return IOTDM_E_MALFORMED;
    }
    /* A trailing '/' would double up when device paths are appended. */
    size_t n = strlen(cfg->root);
    while (n > 1 && cfg->root[n - 1] == '/')
        cfg->root[--n] = '\0';
    if (strcmp(cfg->root, "/") == 0)
        cfg->root[0] = '\0';
    return IOTDM_OK;
}
