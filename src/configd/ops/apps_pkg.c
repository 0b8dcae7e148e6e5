/* The package database on a real system: dpkg-query, apt-cache and dpkg-deb read; apt-get and
 * apt-mark change, always inside a transient systemd unit. The sandbox has its own half. */
#include "configd/ops/apps_pkg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/iso8601.h"
#include "configd/ops/apps.h"

#define SYSTEMD_RUN "/usr/bin/systemd-run"
#define APT_GET     "/usr/bin/apt-get"
#define APT_MARK    "/usr/bin/apt-mark"
#define APT_CACHE   "/usr/bin/apt-cache"
#define DPKG_QUERY  "/usr/bin/dpkg-query"
#define DPKG_DEB    "/usr/bin/dpkg-deb"
#define APT_UNIT    "iotdm-apt" /* one package change at a time: systemd refuses a second one */

static bool simulated(const cfgd_ctx *ctx)
{
    return ctx->be->vt->simulated;
}

/* The most telling part of a program's output: apt's "E: …" line when there is one. */
static const char *telling(const cfgd_cmd_result *res)
{
    const char *e = strstr(res->output, "E: ");
    if (e)
        return e;
    return res->output_len > 300 ? res->output + res->output_len - 300 : res->output;
}

int cfgd_pkg_run_checked(cfgd_ctx *ctx, const char *const *argv, cfgd_cmd_result *res,
                         cfgd_error *err)
{
    int r = ctx->be->vt->run(ctx->be, argv, NULL, res, err);
    if (r < 0 || res->status == 0)
        return r;
    char *nl = strrchr(res->output, '\n');
    if (nl && nl[1] == '\0')
        *nl = '\0';
    cfgd_error_set(err, CFGD_ERR_FAILED, "%s %s %s: %.400s", argv[0], argv[1] ? argv[1] : "",
                   res->timed_out ? "timed out" : "failed", telling(res));
    return -EIO;
}

/* Package changes run in a transient unit: outside configd's own hardening (read-only /usr, a
 * narrow capability set), which dpkg's maintainer scripts cannot live with, and with network
 * access for apt. Waited for unless detached. */
static int run_in_unit(cfgd_ctx *ctx, const char *unit, bool detached, const char *const *cmd,
                       cfgd_error *err)
{
    char unit_arg[96];
    snprintf(unit_arg, sizeof unit_arg, "--unit=%s", unit);
    const char *argv[40] = {SYSTEMD_RUN, unit_arg, "--quiet", "--collect",
                            "--setenv=DEBIAN_FRONTEND=noninteractive"};
    size_t n = 5;
    if (!detached) {
        argv[n++] = "--wait";
        argv[n++] = "--pipe";
    }
    argv[n++] = "--";
    for (size_t i = 0; cmd[i] && n < sizeof argv / sizeof *argv - 1; i++)
        argv[n++] = cmd[i];
    argv[n] = NULL;
    cfgd_cmd_result res;
    int r = cfgd_pkg_run_checked(ctx, argv, &res, err);
    if (r == -EIO) /* name the package command, not systemd-run */
        cfgd_error_set(err, CFGD_ERR_FAILED, "%s %s failed: %.400s", cmd[0], cmd[1], telling(&res));
    return r;
}

static void epoch_to_iso(const char *text, char *out, size_t cap)
{
    char *end;
    long long s = strtoll(text, &end, 10);
    if (end == text || s <= 0)
        out[0] = '\0';
    else
        iso8601_format_utc((int64_t)s * 1000, out, cap);
}

/* "ii |1.2-1|1700000000": desired/status flags, version, when dpkg last changed its files. */
static void parse_query(const char *line, cfgd_pkg_status *out)
{
    char flags[8] = "", version[DEBPKG_VERSION_MAX + 1] = "", when[24] = "";
    if (sscanf(line, "%7[^|]|%128[^|\n]|%23[0-9]", flags, version, when) < 2)
        return;
    /* 'n' (not installed) and 'c' (only configuration files left) count as absent. */
    out->installed = strlen(flags) >= 2 && flags[1] != 'n' && flags[1] != 'c';
    out->held = flags[0] == 'h';
    if (!out->installed)
        return;
    snprintf(out->version, sizeof out->version, "%s", version);
    epoch_to_iso(when, out->install_date, sizeof out->install_date);
}

int cfgd_pkg_query(cfgd_ctx *ctx, const char *name, cfgd_pkg_status *out, cfgd_error *err)
{
    memset(out, 0, sizeof *out);
    if (simulated(ctx))
        return cfgd_sandbox_pkg_query(ctx, name, out, err);
    const char *argv[] = {DPKG_QUERY, "--show",
                          "--showformat=${db:Status-Abbrev}|${Version}|${db-fsys:Last-Modified}\n",
                          name, NULL};
    cfgd_cmd_result res;
    int r = ctx->be->vt->run(ctx->be, argv, NULL, &res, err);
    if (r < 0)
        return r;
    if (res.status == 0)
        parse_query(res.output, out);
    else if (!strstr(res.output, "no packages found")) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "dpkg-query %s failed: %.300s", name, res.output);
        return -EIO;
    }
    return 0;
}

/* apt-cache policy: "  Candidate: 1.2-1", then version lines " *** 1.1-1 100" or "     1.2-1 500"
 * (five columns in), each followed by its sources further in. */
static void parse_policy(const char *text, char *candidate, size_t cap, json_t *versions)
{
    candidate[0] = '\0';
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        char buf[256];
        snprintf(buf, sizeof buf, "%.*s", (int)(nl ? nl - line : (long)strlen(line)), line);
        char word[DEBPKG_VERSION_MAX + 1];
        if (sscanf(buf, " Candidate: %128s", word) == 1 && debpkg_version_valid(word, strlen(word)))
            snprintf(candidate, cap, "%s", word);
        else if (versions && strlen(buf) > 5 && buf[5] != ' ' &&
                 (strncmp(buf, " *** ", 5) == 0 || strncmp(buf, "     ", 5) == 0) &&
                 sscanf(buf + 5, "%128s", word) == 1 && debpkg_version_valid(word, strlen(word)))
            json_array_append_new(versions, json_string(word));
        line = nl ? nl + 1 : NULL;
    }
}

int cfgd_pkg_policy(cfgd_ctx *ctx, const char *name, char *candidate, size_t cap,
                    json_t **out_versions, cfgd_error *err)
{
    if (out_versions)
        *out_versions = NULL;
    if (simulated(ctx))
        return cfgd_sandbox_pkg_policy(ctx, name, candidate, cap, out_versions, err);
    const char *argv[] = {APT_CACHE, "policy", name, NULL};
    cfgd_cmd_result res;
    int r = cfgd_pkg_run_checked(ctx, argv, &res, err);
    if (r < 0)
        return r;
    json_t *versions = out_versions ? json_array() : NULL;
    parse_policy(res.output, candidate, cap, versions);
    if (out_versions)
        *out_versions = versions;
    return 0;
}

static void field(const char *text, const char *key, char *out, size_t cap)
{
    size_t n = strlen(key);
    out[0] = '\0';
    for (const char *line = text; line && *line;) {
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            v += strspn(v, " \t");
            snprintf(out, cap, "%.*s", (int)strcspn(v, "\r\n"), v);
            return;
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
}

int cfgd_pkg_deb_fields(cfgd_ctx *ctx, const char *path, char *name, size_t name_cap, char *version,
                        size_t version_cap, cfgd_error *err)
{
    cfgd_cmd_result res;
    int r;
    if (simulated(ctx)) {
        /* Reading the control data changes nothing, so the sandbox runs the host's dpkg-deb. */
        char host[PATH_MAX];
        const char *env[] = {"PATH=/usr/bin:/bin", "LANG=C", NULL};
        if (cfgd_fs_map(ctx->be, path, host, sizeof host) < 0)
            return -ENAMETOOLONG;
        const char *argv[] = {DPKG_DEB, "--field", host, "Package", "Version", NULL};
        r = cfgd_run_command(DPKG_DEB, argv, env, ctx->be->command_timeout_ms, &res, err);
    } else {
        const char *argv[] = {DPKG_DEB, "--field", path, "Package", "Version", NULL};
        r = ctx->be->vt->run(ctx->be, argv, NULL, &res, err);
    }
    if (r < 0)
        return r;
    field(res.output, "Package", name, name_cap);
    field(res.output, "Version", version, version_cap);
    if (res.status != 0 || !debpkg_name_valid(name, strlen(name)) ||
        !debpkg_version_valid(version, strlen(version))) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "the file is not a Debian package with a valid name and version: %.200s",
                       res.output);
        return -EINVAL;
    }
    return 0;
}

int cfgd_pkg_install(cfgd_ctx *ctx, const char *target, const char *name, const char *version,
                     bool detached, cfgd_error *err)
{
    const char *cmd[] = {APT_GET,
                         "install",
                         "--yes",
                         "--quiet=2",
                         "--no-install-recommends",
                         "--allow-downgrades",
                         "-o",
                         "Dpkg::Options::=--force-confdef",
                         "-o",
                         "Dpkg::Options::=--force-confold",
                         "-o",
                         "DPkg::Lock::Timeout=120",
                         target,
                         NULL};
    int r = run_in_unit(ctx, detached ? CFGD_SELFUPDATE : APT_UNIT, detached, cmd, err);
    /* In the sandbox the unit "ran"; its effect is simulated here. */
    if (r == 0 && simulated(ctx))
        r = cfgd_sandbox_pkg_set(ctx, name, version, err);
    return r;
}

int cfgd_pkg_remove(cfgd_ctx *ctx, const char *name, bool purge, cfgd_error *err)
{
    const char *cmd[] = {APT_GET, purge ? "purge" : "remove", "--yes", "--quiet=2",
                         "-o",    "DPkg::Lock::Timeout=120",  name,    NULL};
    int r = run_in_unit(ctx, APT_UNIT, false, cmd, err);
    if (r == 0 && simulated(ctx))
        r = cfgd_sandbox_pkg_set(ctx, name, NULL, err);
    return r;
}

int cfgd_pkg_hold(cfgd_ctx *ctx, const char *name, bool hold, cfgd_error *err)
{
    const char *cmd[] = {APT_MARK, hold ? "hold" : "unhold", name, NULL};
    int r = run_in_unit(ctx, APT_UNIT, false, cmd, err);
    if (r == 0 && simulated(ctx))
        r = cfgd_sandbox_pkg_hold(ctx, name, hold, err);
    return r;
}

int cfgd_pkg_removal_takes(cfgd_ctx *ctx, const char *name, bool purge, const char *protected_pkg,
                           bool *out, cfgd_error *err)
{
    *out = false;
    if (simulated(ctx)) /* the simulated packages have no dependencies */
        return 0;
    const char *argv[] = {APT_GET, "--simulate", purge ? "purge" : "remove", name, NULL};
    cfgd_cmd_result res;
    int r = cfgd_pkg_run_checked(ctx, argv, &res, err);
    if (r < 0)
        return r;
    char purg[DEBPKG_NAME_MAX + 8], remv[DEBPKG_NAME_MAX + 8];
    snprintf(purg, sizeof purg, "Purg %s ", protected_pkg);
    snprintf(remv, sizeof remv, "Remv %s ", protected_pkg);
    *out = strstr(res.output, purg) || strstr(res.output, remv);
    return 0;
}

bool cfgd_pkg_selfupdate_running(cfgd_ctx *ctx)
{
    cfgd_svc_state st = {0};
    cfgd_error ignored;
    /* Unqueryable reads as not active: no self-update is known to be running. */
    IOTDM_IGNORE(ctx->be->vt->service_state(ctx->be, CFGD_SELFUPDATE ".service", &st, &ignored));
    return st.active;
}

int cfgd_pkg_update_lists(cfgd_ctx *ctx, cfgd_error *err)
{
    const char *cmd[] = {APT_GET, "update", "--quiet=2", "-o", "DPkg::Lock::Timeout=120", NULL};
    int r = run_in_unit(ctx, APT_UNIT, false, cmd, err);
    if (r == 0 && simulated(ctx))
        r = cfgd_sandbox_update_lists(ctx, err);
    return r;
}

/* "Inst name [old] (new Debian:12.5/stable [amd64])" lines of a simulated upgrade. */
static void parse_upgradable(const char *text, json_t *out)
{
    for (const char *line = text; line && *line;) {
        char name[DEBPKG_NAME_MAX + 1], version[DEBPKG_VERSION_MAX + 1], spec[260];
        if (sscanf(line, "Inst %128s [%*[^]]] (%128s", name, version) == 2 ||
            sscanf(line, "Inst %128s (%128s", name, version) == 2) {
            if (debpkg_name_valid(name, strlen(name)) &&
                debpkg_version_valid(version, strlen(version))) {
                snprintf(spec, sizeof spec, "%s=%s", name, version);
                json_array_append_new(out, json_string(spec));
            }
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
}

int cfgd_pkg_upgradable(cfgd_ctx *ctx, json_t **out, bool *out_truncated, cfgd_error *err)
{
    *out = NULL;
    *out_truncated = false;
    if (simulated(ctx))
        return cfgd_sandbox_upgradable(ctx, out, err);
    /* Reads the lists as the last "apt-get update" left them; no lock needed to simulate. */
    const char *argv[] = {APT_GET,           "--simulate", "--quiet", "-o", "Debug::NoLocking=1",
                          "--with-new-pkgs", "upgrade",    NULL};
    cfgd_cmd_result res;
    int r = cfgd_pkg_run_checked(ctx, argv, &res, err);
    if (r < 0)
        return r;
    *out = json_array();
    parse_upgradable(res.output, *out);
    *out_truncated = res.output_len >= sizeof res.output - 1;
    return 0;
}

int cfgd_pkg_upgrade(cfgd_ctx *ctx, const char *name, const char *version, cfgd_error *err)
{
    char spec[DEBPKG_NAME_MAX + DEBPKG_VERSION_MAX + 2], target[DEBPKG_VERSION_MAX + 1] = "";
    snprintf(spec, sizeof spec, "%s%s%s", name, version ? "=" : "", version ? version : "");
    if (simulated(ctx) &&
        cfgd_sandbox_upgrade_check(ctx, name, version, target, sizeof target, err) < 0)
        return -EINVAL;
    const char *cmd[] = {APT_GET,
                         "install",
                         "--yes",
                         "--quiet=2",
                         "--only-upgrade",
                         "--no-install-recommends",
                         "-o",
                         "Dpkg::Options::=--force-confdef",
                         "-o",
                         "Dpkg::Options::=--force-confold",
                         "-o",
                         "DPkg::Lock::Timeout=120",
                         spec,
                         NULL};
    int r = run_in_unit(ctx, APT_UNIT, false, cmd, err);
    if (r == 0 && simulated(ctx))
        r = cfgd_sandbox_upgrade_apply(ctx, name, target, err);
    return r;
}
