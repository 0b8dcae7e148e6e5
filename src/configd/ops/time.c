/* time.* operations: time zone (/etc/localtime, /etc/timezone), NTP servers, systemd-timesyncd. */
#include "configd/ops/ops.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NTP_FILE_MAX (16 * 1024)

int cfgd_validate_set_zone(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"zone", NULL};
    const char *zone;
    if (cfgd_args_only(args, allowed, err) < 0 ||
        cfgd_arg_string(args, "zone", true, CFGD_ZONE_MAX, &zone, err) < 0)
        return -EINVAL;
    if (!cfgd_zone_name_valid(zone, strlen(zone), err))
        return -EINVAL;
    if (cfgd_zone_name_reserved(zone)) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "\"%s\" is in the zoneinfo folder but is not a time zone", zone);
        return -EINVAL;
    }
    return 0;
}

int cfgd_validate_set_ntp(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"servers", NULL};
    if (cfgd_args_only(args, allowed, err) < 0)
        return -EINVAL;
    const json_t *servers = json_object_get(args, "servers");
    if (!json_is_array(servers) || json_array_size(servers) > CFGD_NTP_MAX) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "argument \"servers\" must be an array of 0 to %d host names", CFGD_NTP_MAX);
        return -EINVAL;
    }
    size_t i;
    const json_t *s;
    json_array_foreach(servers, i, s)
    {
        if (!json_is_string(s)) {
            cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "servers[%zu] is not a string", i);
            return -EINVAL;
        }
        if (!cfgd_ntp_server_valid(json_string_value(s), json_string_length(s), err))
            return -EINVAL;
    }
    return 0;
}

int cfgd_validate_set_service(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"enabled", "started", NULL};
    bool b;
    if (cfgd_args_only(args, allowed, err) < 0)
        return -EINVAL;
    int e = cfgd_arg_bool(args, "enabled", false, &b, err);
    int s = cfgd_arg_bool(args, "started", false, &b, err);
    if (e < 0 || s < 0)
        return -EINVAL;
    if (e == 0 && s == 0) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "give \"enabled\", \"started\" or both");
        return -EINVAL;
    }
    return 0;
}

/* The zone a /etc/localtime link names: what follows the zoneinfo folder in its target. */
static bool zone_from_link(const char *target, const char *zoneinfo, char *zone, size_t cap)
{
    size_t n = strlen(zoneinfo);
    const char *rest = NULL;
    if (strncmp(target, zoneinfo, n) == 0 && target[n] == '/')
        rest = target + n + 1;
    else if ((rest = strstr(target, "/zoneinfo/")) != NULL)
        rest += strlen("/zoneinfo/");
    if (!rest)
        return false;
    if (strncmp(rest, "posix/", 6) == 0)
        rest += 6;
    if (!cfgd_zone_name_valid(rest, strlen(rest), NULL) || cfgd_zone_name_reserved(rest) ||
        strlen(rest) >= cap)
        return false;
    snprintf(zone, cap, "%s", rest);
    return true;
}

/* The configured zone: the /etc/localtime link, else /etc/timezone; "UTC" when neither exists
 * (glibc's default), "unknown" when /etc/localtime is something else. */
static void current_zone(cfgd_ctx *ctx, char *zone, size_t cap)
{
    char buf[PATH_MAX];
    cfgd_error ignored;
    if (cfgd_fs_readlink(ctx->be, "/etc/localtime", buf, sizeof buf, &ignored) == 0 &&
        zone_from_link(buf, ctx->cfg->zoneinfo_dir, zone, cap))
        return;
    if (cfgd_fs_read_file(ctx->be, "/etc/timezone", buf, sizeof buf, NULL, &ignored) == 0) {
        buf[strcspn(buf, " \t\r\n")] = '\0';
        if (cfgd_zone_name_valid(buf, strlen(buf), NULL) && !cfgd_zone_name_reserved(buf) &&
            strlen(buf) < cap) {
            snprintf(zone, cap, "%s", buf);
            return;
        }
    }
    snprintf(zone, cap, "%s", cfgd_fs_exists(ctx->be, "/etc/localtime") > 0 ? "unknown" : "UTC");
}

/* The zone's file in the zoneinfo database (a host path), when the zone is really there: a TZif
 * file reached without leaving the database, not even through a link (cfgd_zoneinfo_lookup). */
static bool zone_file(cfgd_ctx *ctx, const char *zone, char *out, size_t cap)
{
    char dir[PATH_MAX], real_dir[PATH_MAX];
    return cfgd_fs_system_path(ctx->be, ctx->cfg->zoneinfo_dir, dir, sizeof dir) == 0 &&
           realpath(dir, real_dir) &&
           cfgd_zoneinfo_lookup(real_dir, ctx->cfg->zoneinfo_dir, zone, out, cap) == 0;
}

/* Local time and UTC offset now in the given zone file (NULL: UTC). TZ is process-wide, which is
 * fine: configd runs one operation at a time on one thread. */
static void local_now(const char *file, char *iso, size_t cap, long *out_offset)
{
    char *saved = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
    char spec[PATH_MAX + 2];
    snprintf(spec, sizeof spec, ":%s", file ? file : "UTC");
    setenv("TZ", file ? spec : "UTC0", 1);
    tzset();
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    if (saved)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved);
    long off = tm.tm_gmtoff;
    int a = (int)((off < 0 ? -off : off) % (100 * 3600)); /* two hour digits: real ones are < 26 */
    snprintf(iso, cap, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+', a / 3600,
             a / 60 % 60);
    *out_offset = off;
}

/* The servers of the last "NTP=" line of a timesyncd configuration text. */
static json_t *parse_ntp(char *text)
{
    json_t *list = NULL;
    char *lines;
    for (char *line = strtok_r(text, "\n", &lines); line; line = strtok_r(NULL, "\n", &lines)) {
        line += strspn(line, " \t");
        if (strncmp(line, "NTP=", 4) != 0)
            continue;
        json_decref(list);
        list = json_array();
        char *save;
        for (char *s = strtok_r(line + 4, " \t\r", &save); s; s = strtok_r(NULL, " \t\r", &save)) {
            if (cfgd_ntp_server_valid(s, strlen(s), NULL))
                json_array_append_new(list, json_string(s));
        }
    }
    return list;
}

/* Our drop-in decides when present; otherwise the main timesyncd.conf. */
static json_t *current_ntp(cfgd_ctx *ctx)
{
    static const char *const files[] = {CFGD_NTP_DROPIN, "/etc/systemd/timesyncd.conf"};
    char *buf = malloc(NTP_FILE_MAX);
    json_t *list = NULL;
    cfgd_error ignored;
    for (size_t i = 0; buf && !list && i < 2; i++) {
        if (cfgd_fs_read_file(ctx->be, files[i], buf, NTP_FILE_MAX, NULL, &ignored) == 0)
            list = parse_ntp(buf);
    }
    free(buf);
    return list ? list : json_array();
}

static int time_state(cfgd_ctx *ctx, json_t **out, cfgd_error *err)
{
    char zone[CFGD_ZONE_MAX + 1], file[PATH_MAX], local[64];
    long offset;
    current_zone(ctx, zone, sizeof zone);
    local_now(zone_file(ctx, zone, file, sizeof file) ? file : NULL, local, sizeof local, &offset);
    bool synced = false;
    cfgd_svc_state svc = {0};
    int r = ctx->be->vt->clock_synced(ctx->be, &synced, err);
    if (r == 0)
        r = ctx->be->vt->service_state(ctx->be, CFGD_TIMESYNCD, &svc, err);
    if (r < 0)
        return r;
    *out =
        json_pack("{s:s, s:s, s:i, s:o, s:b, s:{s:b, s:b}}", "timeZone", zone, "localTime", local,
                  "utcOffsetSeconds", (int)offset, "ntpServers", current_ntp(ctx), "synchronized",
                  synced, "timesyncd", "enabled", svc.enabled, "active", svc.active);
    if (!*out) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

int cfgd_op_time_get(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    (void)args;
    return time_state(ctx, out, err);
}

int cfgd_op_time_set_zone(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const char *zone = json_string_value(json_object_get(args, "zone"));
    char file[PATH_MAX], target[CFGD_PATH_MAX + CFGD_ZONE_MAX + 2], line[CFGD_ZONE_MAX + 2];
    if (!zone_file(ctx, zone, file, sizeof file)) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "unknown time zone \"%s\" (not in the zoneinfo database)", zone);
        return -EINVAL;
    }
    /* The link names the zone as the device sees it, whichever copy of the database was checked. */
    snprintf(target, sizeof target, "%s/%s", ctx->cfg->zoneinfo_dir, zone);
    snprintf(line, sizeof line, "%s\n", zone);
    int r = cfgd_fs_symlink(ctx->be, target, "/etc/localtime", err);
    if (r == 0)
        r = cfgd_fs_write_file(ctx->be, "/etc/timezone", line, strlen(line), 0644, err);
    return r < 0 ? r : time_state(ctx, out, err);
}

int cfgd_op_time_set_ntp(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const json_t *servers = json_object_get(args, "servers");
    char text[CFGD_NTP_MAX * (CFGD_NTP_SERVER_MAX + 1) + 128];
    int r;
    bool existed;
    if (json_array_size(servers) == 0) {
        r = cfgd_fs_remove(ctx->be, CFGD_NTP_DROPIN, NULL, 0, &existed, err);
    } else {
        size_t n = (size_t)snprintf(text, sizeof text,
                                    "# Written by iotdm-configd (time.set_ntp); do not edit.\n"
                                    "[Time]\nNTP=");
        size_t i;
        const json_t *s;
        json_array_foreach(servers, i, s)
        {
            n += (size_t)snprintf(text + n, sizeof text - n, "%s%s", i ? " " : "",
                                  json_string_value(s));
        }
        n += (size_t)snprintf(text + n, sizeof text - n, "\n");
        r = cfgd_fs_write_file(ctx->be, CFGD_NTP_DROPIN, text, n, 0644, err);
    }
    /* timesyncd reads its configuration only at start; a stopped one picks it up when started. */
    if (r == 0)
        r = ctx->be->vt->service(ctx->be, CFGD_TIMESYNCD, CFGD_SVC_TRY_RESTART, err);
    return r < 0 ? r : time_state(ctx, out, err);
}

int cfgd_op_time_set_service(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    bool enabled, started;
    int r = 0;
    if (cfgd_arg_bool(args, "enabled", false, &enabled, err) == 1)
        r = ctx->be->vt->service(ctx->be, CFGD_TIMESYNCD,
                                 enabled ? CFGD_SVC_ENABLE : CFGD_SVC_DISABLE, err);
    if (r == 0 && cfgd_arg_bool(args, "started", false, &started, err) == 1)
        r = ctx->be->vt->service(ctx->be, CFGD_TIMESYNCD, started ? CFGD_SVC_START : CFGD_SVC_STOP,
                                 err);
    return r < 0 ? r : time_state(ctx, out, err);
}
