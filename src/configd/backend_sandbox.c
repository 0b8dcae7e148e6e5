/* The sandbox backend: files under DIR; reboots, services and programs recorded and simulated. */
#include "configd/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/timeutil.h"

#define SERVICES_MAX (64 * 1024)

/* Appends one JSON line {"time":…,"event":…,…fields} to the journal. */
static int sandbox_journal(cfgd_backend *be, const char *event, const json_t *fields)
{
    char path[PATH_MAX], now[40];
    if (cfgd_fs_map(be, CFGD_SANDBOX_JOURNAL, path, sizeof path) < 0)
        return -ENAMETOOLONG;
    time_format_iso(time_now_ms(), now, sizeof now);
    json_t *line = json_pack("{s:s, s:s}", "time", now, "event", event);
    if (!line)
        return -ENOMEM;
    if (fields)
        json_object_update(line, (json_t *)fields);
    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    if (!text)
        return -ENOMEM;
    int r = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    size_t len = strlen(text);
    text[len] = '\n'; /* json_dumps leaves room only for the NUL, which this replaces */
    if (fd < 0 || write(fd, text, len + 1) != (ssize_t)(len + 1) || fsync(fd) != 0)
        r = -errno;
    if (fd >= 0)
        close(fd);
    free(text);
    return r;
}

static int sandbox_run(cfgd_backend *be, const char *const *argv, const char *const *envp,
                       cfgd_cmd_result *out, cfgd_error *err)
{
    memset(out, 0, sizeof *out);
    json_t *args = json_array(), *env = json_array();
    for (size_t i = 0; argv[i]; i++)
        json_array_append_new(args, json_string(argv[i]));
    for (size_t i = 0; envp && envp[i]; i++)
        json_array_append_new(env, json_string(envp[i]));
    json_t *fields = json_pack("{s:o, s:o}", "argv", args, "env", env);
    int r = sandbox_journal(be, "run", fields);
    json_decref(fields);
    if (r < 0)
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot record %s in the sandbox journal: %s", argv[0],
                       strerror(-r));
    return r;
}

/* services.json: {"unit": {"enabled": bool, "active": bool}, …}; a missing file is no services. */
static json_t *load_services(cfgd_backend *be)
{
    char *buf = xmalloc(SERVICES_MAX);
    cfgd_error ignored;
    size_t len = 0;
    json_t *j = NULL;
    if (buf && cfgd_fs_read_file(be, CFGD_SANDBOX_SERVICES, buf, SERVICES_MAX, &len, &ignored) == 0)
        j = json_loadb(buf, len, 0, NULL);
    xfree(buf);
    if (!json_is_object(j)) {
        json_decref(j);
        j = json_object();
    }
    return j;
}

static int save_services(cfgd_backend *be, json_t *services, cfgd_error *err)
{
    char *text = json_dumps(services, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!text) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "out of memory");
        return -ENOMEM;
    }
    int r = cfgd_fs_write_file(be, CFGD_SANDBOX_SERVICES, text, strlen(text), 0644, err);
    free(text);
    return r;
}

static json_t *unit_entry(json_t *services, const char *unit)
{
    json_t *e = json_object_get(services, unit);
    if (!json_is_object(e)) {
        e = json_pack("{s:b, s:b}", "enabled", 0, "active", 0);
        json_object_set_new(services, unit, e);
    }
    return e;
}

static int sandbox_service(cfgd_backend *be, const char *unit, cfgd_svc_action action,
                           cfgd_error *err)
{
    static const char *const verbs[] = {"enable", "disable", "start", "stop", "try-restart"};
    json_t *services = load_services(be);
    json_t *e = unit_entry(services, unit);
    bool active = json_is_true(json_object_get(e, "active"));
    switch (action) {
    case CFGD_SVC_ENABLE:
    case CFGD_SVC_DISABLE:
        json_object_set_new(e, "enabled", json_boolean(action == CFGD_SVC_ENABLE));
        break;
    case CFGD_SVC_START:
    case CFGD_SVC_STOP:
        json_object_set_new(e, "active", json_boolean(action == CFGD_SVC_START));
        break;
    case CFGD_SVC_TRY_RESTART:
        break;
    }
    int r = save_services(be, services, err);
    json_decref(services);
    /* try-restart of a stopped unit does nothing, so nothing is recorded either. */
    if (r == 0 && (action != CFGD_SVC_TRY_RESTART || active)) {
        json_t *fields = json_pack("{s:s, s:s}", "unit", unit, "action",
                                   action == CFGD_SVC_TRY_RESTART ? "restart" : verbs[action]);
        r = sandbox_journal(be, "service", fields);
        json_decref(fields);
        if (r < 0)
            cfgd_error_set(err, CFGD_ERR_FAILED, "cannot write the sandbox journal: %s",
                           strerror(-r));
    }
    return r;
}

static int sandbox_service_state(cfgd_backend *be, const char *unit, cfgd_svc_state *out,
                                 cfgd_error *err)
{
    (void)err;
    json_t *services = load_services(be);
    json_t *e = json_object_get(services, unit);
    out->enabled = json_is_true(json_object_get(e, "enabled"));
    out->active = json_is_true(json_object_get(e, "active"));
    json_decref(services);
    return 0;
}

static int write_boot_time(cfgd_backend *be, int64_t ms, cfgd_error *err)
{
    char text[48];
    time_format_iso(ms, text, sizeof text - 1);
    strcat(text, "\n");
    return cfgd_fs_write_file(be, CFGD_SANDBOX_BOOT, text, strlen(text), 0644, err);
}

/* Reads "YYYY-MM-DDTHH:MM:SS[.mmm]Z", the format write_boot_time writes. */
static bool parse_boot_time(const char *text, int64_t *out_ms)
{
    struct tm tm = {0};
    int ms = 0, used = 0;
    if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &used) != 6)
        return false;
    text += used;
    if (*text == '.' && sscanf(text, ".%3d%n", &ms, &used) == 1)
        text += used;
    if (*text != 'Z')
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *out_ms = (int64_t)t * 1000 + ms;
    return true;
}

static int sandbox_boot_time(cfgd_backend *be, int64_t *out_ms, cfgd_error *err)
{
    char text[64];
    int r = cfgd_fs_read_file(be, CFGD_SANDBOX_BOOT, text, sizeof text, NULL, err);
    if (r == 0 && !parse_boot_time(text, out_ms)) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "%s in the sandbox is not an ISO 8601 UTC time",
                       CFGD_SANDBOX_BOOT);
        return -EINVAL;
    }
    return r;
}

/* After a simulated reboot, exactly the enabled services run, as after a real boot. */
static int restart_services(cfgd_backend *be, cfgd_error *err)
{
    json_t *services = load_services(be);
    const char *unit;
    json_t *e;
    json_object_foreach(services, unit, e)
    {
        if (json_is_object(e))
            json_object_set_new(e, "active",
                                json_boolean(json_is_true(json_object_get(e, "enabled"))));
    }
    int r = save_services(be, services, err);
    json_decref(services);
    return r;
}

static int sandbox_reboot(cfgd_backend *be, const char *reason, cfgd_error *err)
{
    json_t *fields = json_pack("{s:s}", "reason", reason);
    int r = sandbox_journal(be, "reboot", fields);
    json_decref(fields);
    if (r < 0) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot write the sandbox journal: %s", strerror(-r));
        return r;
    }
    r = restart_services(be, err);
    return r < 0 ? r : write_boot_time(be, time_now_ms(), err);
}

/* Simulated: the clock counts as synchronised while timesyncd runs. */
static int sandbox_clock_synced(cfgd_backend *be, bool *out, cfgd_error *err)
{
    cfgd_svc_state st;
    int r = sandbox_service_state(be, "systemd-timesyncd.service", &st, err);
    *out = r == 0 && st.active;
    return r;
}

static const cfgd_backend_vt sandbox_vt = {
    .name = "sandbox",
    .simulated = true,
    .run = sandbox_run,
    .service = sandbox_service,
    .service_state = sandbox_service_state,
    .reboot = sandbox_reboot,
    .boot_time = sandbox_boot_time,
    .clock_synced = sandbox_clock_synced,
    .journal = sandbox_journal,
    .journal_read = cfgd_journal_read_sandbox,
};

/* A fresh sandbox looks like a device that just booted with timesyncd on, as Debian ships it. */
static int seed_state(cfgd_backend *be, cfgd_error *err)
{
    char path[PATH_MAX];
    struct stat st;
    int r = 0;
    if (cfgd_fs_map(be, CFGD_SANDBOX_SERVICES, path, sizeof path) == 0 && stat(path, &st) != 0) {
        json_t *services =
            json_pack("{s:{s:b, s:b}}", "systemd-timesyncd.service", "enabled", 1, "active", 1);
        r = save_services(be, services, err);
        json_decref(services);
    }
    if (r == 0 && cfgd_fs_map(be, CFGD_SANDBOX_BOOT, path, sizeof path) == 0 &&
        stat(path, &st) != 0)
        r = write_boot_time(be, time_now_ms(), err);
    return r;
}

cfgd_backend *cfgd_backend_sandbox_new(const char *dir, int command_timeout_ms, char *error,
                                       size_t error_cap)
{
    char state[PATH_MAX];
    if (!dir || dir[0] != '/' ||
        snprintf(state, sizeof state, "%s%s", dir, CFGD_SANDBOX_STATE) >= (int)sizeof state) {
        snprintf(error, error_cap, "the sandbox needs an absolute directory");
        return NULL;
    }
    int r = cfgd_fs_mkdirs(state, 0755);
    if (r < 0) {
        snprintf(error, error_cap, "cannot create %s: %s", state, strerror(-r));
        return NULL;
    }
    cfgd_backend *be = xcalloc(1, sizeof *be);
    if (!be) {
        snprintf(error, error_cap, "out of memory");
        return NULL;
    }
    be->vt = &sandbox_vt;
    snprintf(be->root, sizeof be->root, "%s", dir);
    be->command_timeout_ms = command_timeout_ms;
    cfgd_error err;
    if (seed_state(be, &err) < 0) {
        snprintf(error, error_cap, "cannot set up the sandbox in %s: %s", dir, err.message);
        xfree(be);
        return NULL;
    }
    return be;
}
