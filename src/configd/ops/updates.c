/* updates.* operations: the update policy becomes apt's periodic settings, a drop-in that keeps
 * the upgrade timer out of the active hours, and a policy file the agent (and anyone) can read;
 * scans refresh apt's lists; installs upgrade the packages the agent names, one at a time. */
#include "configd/ops/updates.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/debpkg.h"
#include "common/iso8601.h"
#include "configd/ops/apps_pkg.h"
#include "configd/ops/ops.h"

#define POLICY_FILE_MAX 4096

/* ---- validators ---- */

static int arg_int(const json_t *args, const char *name, long lo, long hi, cfgd_error *err)
{
    const json_t *v = json_object_get(args, name);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "argument \"%s\" must be an integer from "
                       "%ld to %ld",
                       name, lo, hi);
        return -EINVAL;
    }
    return 0;
}

int cfgd_validate_updates_set_policy(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"automaticUpdates",
                                          "activeHoursStart",
                                          "activeHoursEnd",
                                          "pauseUntil",
                                          "deferDays",
                                          "paused",
                                          NULL};
    bool b;
    if (cfgd_args_only(args, allowed, err) < 0 ||
        cfgd_arg_bool(args, "automaticUpdates", true, &b, err) < 0 ||
        cfgd_arg_bool(args, "paused", true, &b, err) < 0 ||
        arg_int(args, "activeHoursStart", 0, 23, err) < 0 ||
        arg_int(args, "activeHoursEnd", 0, 23, err) < 0 ||
        arg_int(args, "deferDays", 0, CFGD_DEFER_DAYS_MAX, err) < 0)
        return -EINVAL;
    const json_t *pause = json_object_get(args, "pauseUntil");
    const char *text = json_string_value(pause);
    char why[128];
    int64_t ms;
    if (!text || (*text && iso8601_parse(text, &ms, why, sizeof why) < 0)) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "argument \"pauseUntil\" must be \"\" or an ISO 8601 date-time%s%s",
                       text ? ": " : "", text ? why : "");
        return -EINVAL;
    }
    return 0;
}

int cfgd_validate_updates_install(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"packages", NULL};
    if (cfgd_args_only(args, allowed, err) < 0)
        return -EINVAL;
    const json_t *list = json_object_get(args, "packages");
    if (!json_is_array(list) || json_array_size(list) == 0 ||
        json_array_size(list) > CFGD_UPDATES_MAX) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "argument \"packages\" must be an array of 1 to %d \"name\" or "
                       "\"name=version\" strings",
                       CFGD_UPDATES_MAX);
        return -EINVAL;
    }
    size_t i;
    const json_t *p;
    json_array_foreach(list, i, p)
    {
        char name[DEBPKG_NAME_MAX + 1];
        const char *version;
        const char *s = json_string_value(p);
        if (!s || strlen(s) != json_string_length(p) ||
            !debpkg_spec_parse(s, name, sizeof name, &version)) {
            cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                           "packages[%zu] is not a Debian package name or name=version", i);
            return -EINVAL;
        }
    }
    return 0;
}

/* ---- reading ---- */

static json_t *default_policy(void)
{
    return json_pack("{s:b, s:i, s:i, s:s, s:i, s:b}", "automaticUpdates", 0, "activeHoursStart", 0,
                     "activeHoursEnd", 0, "pauseUntil", "", "deferDays", 0, "paused", 0);
}

/* The policy file as configd wrote it; defaults where it is missing or unreadable. */
static json_t *read_policy(cfgd_ctx *ctx)
{
    char text[POLICY_FILE_MAX];
    size_t len = 0;
    cfgd_error ignored;
    json_t *policy = default_policy();
    if (cfgd_fs_read_file(ctx->be, CFGD_UPDATES_POLICY, text, sizeof text, &len, &ignored) == 0) {
        json_t *file = json_loadb(text, len, 0, NULL);
        if (json_is_object(file) && cfgd_validate_updates_set_policy(file, &ignored) == 0)
            json_object_update(policy, file);
        json_decref(file);
    }
    return policy;
}

/* The packages /run/reboot-required.pkgs names (one per line). */
static json_t *reboot_packages(cfgd_ctx *ctx)
{
    char text[4096];
    size_t len = 0;
    cfgd_error ignored;
    json_t *list = json_array();
    if (cfgd_fs_read_file(ctx->be, "/run/reboot-required.pkgs", text, sizeof text, &len, &ignored) <
        0)
        return list;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        bool seen = false;
        size_t i;
        json_t *x;
        json_array_foreach(list, i, x) seen = seen || strcmp(json_string_value(x), line) == 0;
        if (!seen && debpkg_name_valid(line, strlen(line)))
            json_array_append_new(list, json_string(line));
    }
    return list;
}

static int updates_state(cfgd_ctx *ctx, json_t **out, cfgd_error *err)
{
    json_t *upgradable = NULL;
    bool truncated = false;
    int r = cfgd_pkg_upgradable(ctx, &upgradable, &truncated, err);
    if (r < 0)
        return r;
    *out = json_pack("{s:o, s:o, s:b, s:b, s:o}", "policy", read_policy(ctx), "upgradable",
                     upgradable, "upgradableTruncated", truncated, "rebootRequired",
                     cfgd_fs_exists(ctx->be, "/run/reboot-required") > 0, "rebootRequiredPackages",
                     reboot_packages(ctx));
    return 0;
}

int cfgd_op_updates_get(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    (void)args;
    return updates_state(ctx, out, err);
}

/* ---- policy ---- */

static bool in_hours(int h, int start, int end)
{
    return start < end ? h >= start && h < end : h >= start || h < end;
}

/* The upgrade timer fires only at hours when it and the hour after are outside the active hours,
 * so that its random delay cannot carry it into them. No active hours: Debian's own schedule. */
static int write_timer(cfgd_ctx *ctx, int start, int end, cfgd_error *err)
{
    bool existed;
    if (start == end)
        return cfgd_fs_remove(ctx->be, CFGD_UPDATES_TIMER, NULL, 0, &existed, err);
    char hours[128] = "", text[512];
    size_t n = 0;
    for (int h = 0; h < 24; h++)
        if (!in_hours(h, start, end) && !in_hours((h + 1) % 24, start, end))
            n += (size_t)snprintf(hours + n, sizeof hours - n, "%s%d", n ? "," : "", h);
    int len =
        snprintf(text, sizeof text,
                 "# Written by iotdm-configd from dm.updatePolicy: unattended upgrades start "
                 "outside the\n# active hours %d:00-%d:00 (local time).\n"
                 "[Timer]\nOnCalendar=\n%s%s%s%sRandomizedDelaySec=50min\n",
                 start, end, n ? "OnCalendar=*-*-* " : "", hours, n ? ":00" : "", n ? "\n" : "");
    return cfgd_fs_write_file(ctx->be, CFGD_UPDATES_TIMER, text, (size_t)len, 0644, err);
}

static int write_apt_conf(cfgd_ctx *ctx, bool automatic, bool paused, cfgd_error *err)
{
    char text[512];
    int len = snprintf(text, sizeof text,
                       "// Written by iotdm-configd from dm.updatePolicy (the device twin); edits "
                       "here are overwritten.\n"
                       "APT::Periodic::Update-Package-Lists \"%d\";\n"
                       "APT::Periodic::Unattended-Upgrade \"%d\";\n",
                       automatic, automatic && !paused);
    return cfgd_fs_write_file(ctx->be, CFGD_UPDATES_APT_CONF, text, (size_t)len, 0644, err);
}

int cfgd_op_updates_set_policy(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    json_t *policy = json_deep_copy(args);
    const char *pause = json_string_value(json_object_get(args, "pauseUntil"));
    int64_t ms;
    if (*pause && iso8601_parse(pause, &ms, NULL, 0) == 0) { /* stored in UTC, whole seconds */
        char utc[32];
        iso8601_format_utc(ms, utc, sizeof utc);
        json_object_set_new(policy, "pauseUntil", json_string(utc));
    }
    int start = (int)json_integer_value(json_object_get(args, "activeHoursStart"));
    int end = (int)json_integer_value(json_object_get(args, "activeHoursEnd"));
    char *text = json_dumps(policy, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(policy);
    int r = text ? 0 : -ENOMEM;
    if (r == 0)
        r = write_apt_conf(ctx, json_is_true(json_object_get(args, "automaticUpdates")),
                           json_is_true(json_object_get(args, "paused")), err);
    if (r == 0)
        r = write_timer(ctx, start, end, err);
    if (r == 0)
        r = cfgd_fs_write_file(ctx->be, CFGD_UPDATES_POLICY, text, strlen(text), 0644, err);
    free(text);
    if (r == 0) {
        const char *argv[] = {CFGD_SYSTEMCTL, "daemon-reload", NULL};
        cfgd_cmd_result res;
        r = cfgd_pkg_run_checked(ctx, argv, &res, err);
    }
    return r < 0 ? r : updates_state(ctx, out, err);
}

/* ---- scan and install ---- */

int cfgd_op_updates_scan(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    (void)args;
    int r = cfgd_pkg_update_lists(ctx, err);
    return r < 0 ? r : updates_state(ctx, out, err);
}

/* One at a time, so that each package's failure is its own and the others still install. */
int cfgd_op_updates_install(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    json_t *installed = json_array(), *failed = json_array();
    size_t i;
    const json_t *p;
    json_array_foreach(json_object_get(args, "packages"), i, p)
    {
        char name[DEBPKG_NAME_MAX + 1], spec[DEBPKG_NAME_MAX + DEBPKG_VERSION_MAX + 2];
        const char *version;
        debpkg_spec_parse(json_string_value(p), name, sizeof name, &version);
        cfgd_error one = {0};
        cfgd_pkg_status st;
        if (cfgd_pkg_upgrade(ctx, name, version, &one) == 0 &&
            cfgd_pkg_query(ctx, name, &st, &one) == 0) {
            snprintf(spec, sizeof spec, "%s=%s", name, st.version);
            json_array_append_new(installed, json_string(spec));
        } else {
            json_array_append_new(failed, json_pack("{s:s, s:s}", "package", json_string_value(p),
                                                    "message", one.message));
        }
    }
    json_t *state = NULL;
    int r = updates_state(ctx, &state, err);
    if (r < 0) {
        json_decref(installed);
        json_decref(failed);
        return r;
    }
    json_object_set_new(state, "installed", installed);
    json_object_set_new(state, "failed", failed);
    *out = state;
    return 0;
}
