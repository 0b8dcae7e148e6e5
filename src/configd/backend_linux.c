/* The real Linux backend: files, systemctl, reboot. With a root prefix it can be tested safely. */
#include "configd/backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timex.h>

#include "common/alloc.h"
#include "common/log.h"

/* Programs see a fixed, minimal environment; IOTDM_ROOT tells a test's stub where its root is. */
static int build_env(const cfgd_backend *be, const char *const *extra, const char **env, size_t cap,
                     char *root_var, size_t root_cap)
{
    size_t n = 0;
    env[n++] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
    env[n++] = "LANG=C";
    env[n++] = "SYSTEMD_PAGER=";
    if (be->root[0]) {
        snprintf(root_var, root_cap, "IOTDM_ROOT=%s", be->root);
        env[n++] = root_var;
    }
    for (size_t i = 0; extra && extra[i]; i++) {
        if (n + 1 >= cap)
            return -E2BIG;
        env[n++] = extra[i];
    }
    env[n] = NULL;
    return 0;
}

/* With a root prefix the program run is root + argv[0]: a throwaway root holds stubs, so a test
 * never starts the host's systemctl. argv[0] itself stays the device path. */
static int linux_run(cfgd_backend *be, const char *const *argv, const char *const *envp,
                     cfgd_cmd_result *out, cfgd_error *err)
{
    char exec_path[PATH_MAX], root_var[PATH_MAX + 16];
    const char *env[32];
    if (argv[0][0] != '/' || cfgd_fs_map(be, argv[0], exec_path, sizeof exec_path) < 0) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot run %.200s: not an absolute path", argv[0]);
        return -EINVAL;
    }
    if (build_env(be, envp, env, sizeof env / sizeof *env, root_var, sizeof root_var) < 0) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot run %s: environment too large", argv[0]);
        return -E2BIG;
    }
    return cfgd_run_command(exec_path, argv, env, be->command_timeout_ms, out, err);
}

/* Runs systemctl with args; a non-zero exit is a failure carrying systemctl's own words. */
static int systemctl(cfgd_backend *be, const char *const *args, cfgd_cmd_result *out,
                     bool check_status, cfgd_error *err)
{
    const char *argv[8] = {CFGD_SYSTEMCTL};
    size_t n = 1;
    for (size_t i = 0; args[i] && n < 7; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    int r = linux_run(be, argv, NULL, out, err);
    if (r < 0 || !check_status || out->status == 0)
        return r;
    char *nl = strchr(out->output, '\n');
    if (nl && nl[1] == '\0')
        *nl = '\0';
    cfgd_error_set(err, CFGD_ERR_FAILED, "systemctl %s %s failed (%s): %.300s", args[0],
                   args[1] ? args[1] : "", out->timed_out ? "timed out" : "non-zero exit",
                   out->output);
    return -EIO;
}

static int linux_service(cfgd_backend *be, const char *unit, cfgd_svc_action action,
                         cfgd_error *err)
{
    static const char *const verbs[] = {"enable", "disable", "start", "stop", "try-restart"};
    const char *args[] = {verbs[action], unit, NULL};
    cfgd_cmd_result out;
    return systemctl(be, args, &out, true, err);
}

/* is-enabled and is-active answer on stdout with a non-zero exit for "no"; only the word counts. */
static bool query_word(cfgd_backend *be, const char *verb, const char *unit, const char *yes)
{
    const char *args[] = {verb, unit, NULL};
    cfgd_cmd_result out;
    cfgd_error ignored;
    if (systemctl(be, args, &out, false, &ignored) < 0)
        return false;
    size_t n = strcspn(out.output, " \t\r\n");
    return n == strlen(yes) && strncmp(out.output, yes, n) == 0;
}

static int linux_service_state(cfgd_backend *be, const char *unit, cfgd_svc_state *out,
                               cfgd_error *err)
{
    (void)err;
    out->enabled = query_word(be, "is-enabled", unit, "enabled");
    out->active = query_word(be, "is-active", unit, "active");
    return 0;
}

static int linux_journal(cfgd_backend *be, const char *event, const json_t *fields)
{
    (void)be;
    char *text = fields ? json_dumps(fields, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    log_info("configd", "event=%s %s", event, text ? text : "");
    free(text);
    return 0;
}

static int linux_reboot(cfgd_backend *be, const char *reason, cfgd_error *err)
{
    json_t *fields = json_pack("{s:s}", "reason", reason);
    linux_journal(be, "reboot", fields);
    json_decref(fields);
    /* systemctl queues the reboot job and returns, so the reply still reaches the agent. */
    const char *args[] = {"reboot", NULL};
    cfgd_cmd_result out;
    return systemctl(be, args, &out, true, err);
}

/* The kernel's boot time, "btime" in /proc/stat (kernel state: never under the root). */
static int linux_boot_time(cfgd_backend *be, int64_t *out_ms, cfgd_error *err)
{
    (void)be;
    FILE *f = fopen("/proc/stat", "re");
    char line[256];
    long long btime = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "btime %lld", &btime) == 1)
            break;
    }
    if (f)
        fclose(f);
    if (btime < 0) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot read the boot time from /proc/stat");
        return -EIO;
    }
    *out_ms = (int64_t)btime * 1000;
    return 0;
}

/* What timedatectl calls NTPSynchronized: the kernel clock's "unsynchronised" flag is clear. */
static int linux_clock_synced(cfgd_backend *be, bool *out, cfgd_error *err)
{
    (void)be;
    struct timex tx = {.modes = 0};
    if (adjtimex(&tx) < 0) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot read the clock state: %s", strerror(errno));
        return -errno;
    }
    *out = !(tx.status & STA_UNSYNC);
    return 0;
}

static const cfgd_backend_vt linux_vt = {
    .name = "linux",
    .simulated = false,
    .run = linux_run,
    .service = linux_service,
    .service_state = linux_service_state,
    .reboot = linux_reboot,
    .boot_time = linux_boot_time,
    .clock_synced = linux_clock_synced,
    .journal = linux_journal,
    .journal_read = cfgd_journal_read_linux,
};

cfgd_backend *cfgd_backend_linux_new(const char *root, int command_timeout_ms, char *error,
                                     size_t error_cap)
{
    struct stat st;
    if (root && root[0] && (stat(root, &st) != 0 || !S_ISDIR(st.st_mode))) {
        snprintf(error, error_cap, "root %s is not a directory", root);
        return NULL;
    }
    cfgd_backend *be = xcalloc(1, sizeof *be);
    if (!be) {
        snprintf(error, error_cap, "out of memory");
        return NULL;
    }
    be->vt = &linux_vt;
    snprintf(be->root, sizeof be->root, "%s", root ? root : "");
    be->command_timeout_ms = command_timeout_ms;
    return be;
}

void cfgd_backend_free(cfgd_backend *be)
{
    xfree(be);
}
