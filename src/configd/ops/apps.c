/* apps.* operations: list, install (repository or passed .deb), remove, start-up, lifecycle. The
 * agent's own package is protected here, where the agent cannot argue: it is never removed,
 * downgraded, stopped or taken off its service, and its update runs detached. */
#include "configd/ops/apps.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/debpkg.h"
#include "configd/ops/apps_pkg.h"
#include "configd/ops/ops.h"

#define UNIT_MAX (DEBPKG_NAME_MAX + 16)

/* ---- validators ---- */

static int arg_package(const json_t *args, const char **out, cfgd_error *err)
{
    if (cfgd_arg_string(args, "package", true, DEBPKG_NAME_MAX, out, err) < 0)
        return -EINVAL;
    if (!debpkg_name_valid(*out, strlen(*out))) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "\"%.64s\" is not a Debian package name ([a-z0-9][a-z0-9+.-]+)", *out);
        return -EINVAL;
    }
    return 0;
}

static int arg_choice(const json_t *args, const char *name, const char *const *choices,
                      const char **out, cfgd_error *err)
{
    if (cfgd_arg_string(args, name, true, 32, out, err) < 0)
        return -EINVAL;
    for (size_t i = 0; choices[i]; i++)
        if (strcmp(*out, choices[i]) == 0)
            return 0;
    cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "argument \"%s\" must be %s or %s%s%s", name,
                   choices[0], choices[1], choices[2] ? " or " : "", choices[2] ? choices[2] : "");
    return -EINVAL;
}

int cfgd_validate_apps_list(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"packages", NULL};
    if (cfgd_args_only(args, allowed, err) < 0)
        return -EINVAL;
    const json_t *list = json_object_get(args, "packages");
    if (list && (!json_is_array(list) || json_array_size(list) > CFGD_APPS_LIST_MAX)) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "argument \"packages\" must be an array of at most %d package names",
                       CFGD_APPS_LIST_MAX);
        return -EINVAL;
    }
    size_t i;
    const json_t *p;
    json_array_foreach(list, i, p)
    {
        if (!debpkg_name_valid(json_string_value(p), json_string_length(p))) {
            cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                           "packages[%zu] is not a Debian package name", i);
            return -EINVAL;
        }
    }
    return 0;
}

int cfgd_validate_apps_install(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"package", "version", "sha256", NULL};
    const char *name, *version, *sha;
    if (cfgd_args_only(args, allowed, err) < 0 || arg_package(args, &name, err) < 0 ||
        cfgd_arg_string(args, "version", true, DEBPKG_VERSION_MAX, &version, err) < 0 ||
        cfgd_arg_string(args, "sha256", false, 64, &sha, err) < 0)
        return -EINVAL;
    if (strcmp(version, "latest") != 0 && !debpkg_version_valid(version, strlen(version))) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "\"%.64s\" is not a Debian version ([epoch:]upstream[-revision]) or "
                       "\"latest\"",
                       version);
        return -EINVAL;
    }
    return 0;
}

int cfgd_validate_apps_remove(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"package", "purge", NULL};
    const char *name;
    bool purge;
    if (cfgd_args_only(args, allowed, err) < 0 || arg_package(args, &name, err) < 0 ||
        cfgd_arg_bool(args, "purge", false, &purge, err) < 0)
        return -EINVAL;
    return 0;
}

static const char *const startups[] = {"none", "foreground", "background", NULL};
static const char *const actions[] = {"start", "stop", NULL};

int cfgd_validate_apps_set_startup(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"package", "startUp", NULL};
    const char *name, *s;
    if (cfgd_args_only(args, allowed, err) < 0 || arg_package(args, &name, err) < 0 ||
        arg_choice(args, "startUp", startups, &s, err) < 0)
        return -EINVAL;
    return 0;
}

int cfgd_validate_apps_lifecycle(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"package", "action", NULL};
    const char *name, *a;
    if (cfgd_args_only(args, allowed, err) < 0 || arg_package(args, &name, err) < 0 ||
        arg_choice(args, "action", actions, &a, err) < 0)
        return -EINVAL;
    return 0;
}

/* ---- state ---- */

static bool is_agent(const cfgd_ctx *ctx, const char *name)
{
    return strcmp(name, ctx->cfg->agent_package) == 0;
}

/* The kiosk app: named on the first line of the kiosk unit configd wrote. */
static void kiosk_app(cfgd_ctx *ctx, char *out, size_t cap)
{
    char text[2048];
    cfgd_error ignored;
    out[0] = '\0';
    if (cfgd_fs_read_file(ctx->be, CFGD_KIOSK_FILE, text, sizeof text, NULL, &ignored) < 0)
        return;
    char name[DEBPKG_NAME_MAX + 1];
    if (sscanf(text, "# iotdm-kiosk-package: %128s", name) == 1 &&
        debpkg_name_valid(name, strlen(name)))
        snprintf(out, cap, "%s", name);
}

static void service_unit(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s.service", name);
}

static void service_state(cfgd_ctx *ctx, const char *unit, cfgd_svc_state *st)
{
    cfgd_error ignored;
    memset(st, 0, sizeof *st);
    /* A unit that cannot be queried reads as neither enabled nor active (the vtable's rule), which
     * is what a missing service is. */
    IOTDM_IGNORE(ctx->be->vt->service_state(ctx->be, unit, st, &ignored));
}

/* {"installed", "version", "installDate", "startUp", "active"}: what the device has. */
int cfgd_apps_status(cfgd_ctx *ctx, const char *name, json_t **out, cfgd_error *err)
{
    cfgd_pkg_status st;
    int r = cfgd_pkg_query(ctx, name, &st, err);
    if (r < 0)
        return r;
    char kiosk[DEBPKG_NAME_MAX + 1], unit[UNIT_MAX];
    kiosk_app(ctx, kiosk, sizeof kiosk);
    bool foreground = strcmp(kiosk, name) == 0;
    cfgd_svc_state svc;
    service_unit(name, unit, sizeof unit);
    service_state(ctx, foreground ? CFGD_KIOSK_UNIT : unit, &svc);
    const char *startup = foreground ? "foreground" : svc.enabled ? "background" : "none";
    json_t *s = json_pack("{s:b, s:s, s:b}", "installed", st.installed, "startUp", startup,
                          "active", st.installed && svc.active);
    if (st.installed) {
        json_object_set_new(s, "version", json_string(st.version));
        if (st.install_date[0])
            json_object_set_new(s, "installDate", json_string(st.install_date));
    }
    *out = s;
    return 0;
}

int cfgd_op_apps_list(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    char kiosk[DEBPKG_NAME_MAX + 1];
    kiosk_app(ctx, kiosk, sizeof kiosk);
    json_t *pkgs = json_object();
    size_t i;
    const json_t *p;
    json_array_foreach(json_object_get(args, "packages"), i, p)
    {
        json_t *s;
        if (cfgd_apps_status(ctx, json_string_value(p), &s, err) < 0) {
            json_decref(pkgs);
            return -EIO;
        }
        json_object_set_new(pkgs, json_string_value(p), s);
    }
    *out = json_pack("{s:s, s:o, s:b, s:o}", "agentPackage", ctx->cfg->agent_package, "foreground",
                     kiosk[0] ? json_string(kiosk) : json_null(), "selfUpdateRunning",
                     cfgd_pkg_selfupdate_running(ctx), "packages", pkgs);
    return 0;
}

/* ---- start-up: the kiosk unit and the app's own service ---- */

static int daemon_reload(cfgd_ctx *ctx, cfgd_error *err)
{
    const char *argv[] = {CFGD_SYSTEMCTL, "daemon-reload", NULL};
    cfgd_cmd_result res;
    return cfgd_pkg_run_checked(ctx, argv, &res, err);
}

/* Stops and disables a unit as far as it runs or is enabled. */
static int unit_off(cfgd_ctx *ctx, const char *unit, cfgd_error *err)
{
    cfgd_svc_state st;
    service_state(ctx, unit, &st);
    int r = 0;
    if (st.active)
        r = ctx->be->vt->service(ctx->be, unit, CFGD_SVC_STOP, err);
    if (r == 0 && st.enabled)
        r = ctx->be->vt->service(ctx->be, unit, CFGD_SVC_DISABLE, err);
    return r;
}

static int unit_on(cfgd_ctx *ctx, const char *unit, cfgd_error *err)
{
    int r = ctx->be->vt->service(ctx->be, unit, CFGD_SVC_ENABLE, err);
    return r < 0 ? r : ctx->be->vt->service(ctx->be, unit, CFGD_SVC_START, err);
}

static int kiosk_clear(cfgd_ctx *ctx, cfgd_error *err)
{
    bool existed = false;
    int r = unit_off(ctx, CFGD_KIOSK_UNIT, err);
    if (r == 0)
        r = cfgd_fs_remove(ctx->be, CFGD_KIOSK_FILE, NULL, 0, &existed, err);
    return r < 0 ? r : daemon_reload(ctx, err);
}

/* The kiosk unit runs /usr/bin/<package> as a throwaway user and restarts it when it exits;
 * a package that needs more (a compositor, a seat, a fixed user) ships a drop-in for the unit. */
static int kiosk_set(cfgd_ctx *ctx, const char *name, cfgd_error *err)
{
    char text[1024];
    snprintf(text, sizeof text,
             "# iotdm-kiosk-package: %s\n"
             "# Written by iotdm-configd: the foreground app chosen in the device twin (dm.apps).\n"
             "[Unit]\n"
             "Description=iotdm foreground app %s\n"
             "After=systemd-user-sessions.service network.target\n\n"
             "[Service]\n"
             "ExecStart=/usr/bin/%s\n"
             "DynamicUser=yes\n"
             "Restart=always\n"
             "RestartSec=2\n\n"
             "[Install]\n"
             "WantedBy=multi-user.target\n",
             name, name, name);
    int r = unit_off(ctx, CFGD_KIOSK_UNIT, err);
    if (r == 0)
        r = cfgd_fs_write_file(ctx->be, CFGD_KIOSK_FILE, text, strlen(text), 0644, err);
    if (r == 0)
        r = daemon_reload(ctx, err);
    return r < 0 ? r : unit_on(ctx, CFGD_KIOSK_UNIT, err);
}

static int apply_startup(cfgd_ctx *ctx, const char *name, const char *startup, cfgd_error *err)
{
    char kiosk[DEBPKG_NAME_MAX + 1], unit[UNIT_MAX], exe[DEBPKG_NAME_MAX + 16];
    kiosk_app(ctx, kiosk, sizeof kiosk);
    service_unit(name, unit, sizeof unit);
    bool was_kiosk = strcmp(kiosk, name) == 0;
    if (strcmp(startup, "foreground") == 0) {
        snprintf(exe, sizeof exe, "/usr/bin/%s", name);
        if (!ctx->be->vt->simulated && cfgd_fs_exists(ctx->be, exe) <= 0) {
            cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                           "a foreground app runs %s, which %s does not have", exe, name);
            return -EINVAL;
        }
        int r = unit_off(ctx, unit, err); /* an app is foreground or background, never both */
        return r < 0 || was_kiosk ? r : kiosk_set(ctx, name, err);
    }
    int r = was_kiosk ? kiosk_clear(ctx, err) : 0;
    if (r < 0)
        return r;
    return strcmp(startup, "background") == 0 ? unit_on(ctx, unit, err) : unit_off(ctx, unit, err);
}

/* 0 when name is installed, not_found when it is not: start-up and lifecycle need a package. A
 * failed query is returned as it is. */
static int query_installed(cfgd_ctx *ctx, const char *name, cfgd_error *err)
{
    cfgd_pkg_status st;
    int r = cfgd_pkg_query(ctx, name, &st, err);
    if (r == 0 && !st.installed) {
        cfgd_error_set(err, CFGD_ERR_NOT_FOUND, "%s is not installed", name);
        return -ENOENT;
    }
    return r;
}

int cfgd_op_apps_set_startup(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const char *name = json_string_value(json_object_get(args, "package"));
    const char *startup = json_string_value(json_object_get(args, "startUp"));
    if (is_agent(ctx, name) && strcmp(startup, "background") != 0) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "%s is the device-management agent: it stays a background service", name);
        return -EINVAL;
    }
    int r = query_installed(ctx, name, err);
    if (r == 0)
        r = apply_startup(ctx, name, startup, err);
    json_t *s;
    if (r < 0 || (r = cfgd_apps_status(ctx, name, &s, err)) < 0)
        return r;
    *out = json_pack("{s:o}", "status", s);
    return 0;
}

int cfgd_op_apps_lifecycle(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const char *name = json_string_value(json_object_get(args, "package"));
    bool start = strcmp(json_string_value(json_object_get(args, "action")), "start") == 0;
    if (is_agent(ctx, name) && !start) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "%s is the device-management agent: it cannot stop itself", name);
        return -EINVAL;
    }
    int r = query_installed(ctx, name, err);
    char kiosk[DEBPKG_NAME_MAX + 1], unit[UNIT_MAX];
    kiosk_app(ctx, kiosk, sizeof kiosk);
    service_unit(name, unit, sizeof unit);
    const char *target = strcmp(kiosk, name) == 0 ? CFGD_KIOSK_UNIT : unit;
    if (r == 0)
        r = ctx->be->vt->service(ctx->be, target, start ? CFGD_SVC_START : CFGD_SVC_STOP, err);
    json_t *s;
    if (r < 0 || (r = cfgd_apps_status(ctx, name, &s, err)) < 0)
        return r;
    *out = json_pack("{s:o, s:s}", "status", s, "unit", target);
    return 0;
}

/* ---- remove ---- */

int cfgd_op_apps_remove(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const char *name = json_string_value(json_object_get(args, "package"));
    bool purge = json_is_true(json_object_get(args, "purge"));
    if (is_agent(ctx, name)) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "%s is the device-management agent: it cannot uninstall itself", name);
        return -EINVAL;
    }
    cfgd_pkg_status st;
    bool takes = false;
    int r = cfgd_pkg_query(ctx, name, &st, err);
    if (r == 0 && st.installed)
        r = cfgd_pkg_removal_takes(ctx, name, purge, ctx->cfg->agent_package, &takes, err);
    if (r == 0 && takes) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "removing %s would also remove the device-management agent %s", name,
                       ctx->cfg->agent_package);
        return -EINVAL;
    }
    char kiosk[DEBPKG_NAME_MAX + 1], unit[UNIT_MAX];
    kiosk_app(ctx, kiosk, sizeof kiosk);
    service_unit(name, unit, sizeof unit);
    if (r == 0 && st.installed && strcmp(kiosk, name) == 0)
        r = kiosk_clear(ctx, err);
    if (r == 0 && st.installed)
        r = unit_off(ctx, unit, err);
    if (r == 0 && st.installed)
        r = cfgd_pkg_remove(ctx, name, purge, err);
    json_t *s;
    if (r < 0 || (r = cfgd_apps_status(ctx, name, &s, err)) < 0)
        return r;
    *out = json_pack("{s:o, s:b}", "status", s, "changed", st.installed);
    return 0;
}
