/* The simulated package database of the sandbox: installed packages in packages.json, the
 * repository a folder of name_version_arch.deb files (only their names are read), the package
 * lists a snapshot of the sandbox_upgradable settings taken by "apt-get update". */
#include "configd/ops/apps_pkg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/iso8601.h"
#include "common/timeutil.h"
#include "configd/ops/apps.h"

#define DB_MAX (256 * 1024)

static json_t *load(cfgd_ctx *ctx, const char *path, bool array)
{
    char *buf = xmalloc(DB_MAX);
    size_t len = 0;
    cfgd_error ignored;
    json_t *j = NULL;
    if (buf && cfgd_fs_read_file(ctx->be, path, buf, DB_MAX, &len, &ignored) == 0)
        j = json_loadb(buf, len, 0, NULL);
    xfree(buf);
    if (array ? !json_is_array(j) : !json_is_object(j)) {
        json_decref(j);
        j = array ? json_array() : json_object();
    }
    return j;
}

static int save(cfgd_ctx *ctx, const char *path, json_t *value, cfgd_error *err)
{
    char *text = json_dumps(value, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!text) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "out of memory");
        return -ENOMEM;
    }
    int r = cfgd_fs_write_file(ctx->be, path, text, strlen(text), 0644, err);
    free(text);
    return r;
}

int cfgd_sandbox_pkg_query(cfgd_ctx *ctx, const char *name, cfgd_pkg_status *out, cfgd_error *err)
{
    (void)err;
    json_t *db = load(ctx, CFGD_SANDBOX_PKGS, false);
    json_t *e = json_object_get(db, name);
    const char *v = json_string_value(json_object_get(e, "version"));
    if (v && debpkg_version_valid(v, strlen(v))) {
        out->installed = true;
        out->held = json_is_true(json_object_get(e, "held"));
        snprintf(out->version, sizeof out->version, "%s", v);
        const char *when = json_string_value(json_object_get(e, "installDate"));
        snprintf(out->install_date, sizeof out->install_date, "%s", when ? when : "");
    }
    json_decref(db);
    return 0;
}

/* name_version[_arch].deb, the epoch's ':' written "%3a" as in a Debian pool. */
static bool repo_entry(const char *file, const char *name, char *version, size_t cap)
{
    size_t n = strlen(name), len = strlen(file);
    if (len < 5 || strcmp(file + len - 4, ".deb") != 0 || strncmp(file, name, n) != 0 ||
        file[n] != '_')
        return false;
    const char *v = file + n + 1;
    size_t vlen = strcspn(v, "_");
    if (v + vlen > file + len - 4)
        vlen = (size_t)(file + len - 4 - v);
    size_t o = 0;
    for (size_t i = 0; i < vlen && o + 1 < cap; i++) {
        if (strncmp(v + i, "%3a", 3) == 0 || strncmp(v + i, "%3A", 3) == 0) {
            version[o++] = ':';
            i += 2;
        } else {
            version[o++] = v[i];
        }
    }
    version[o] = '\0';
    return debpkg_version_valid(version, o);
}

int cfgd_sandbox_pkg_policy(cfgd_ctx *ctx, const char *name, char *candidate, size_t cap,
                            json_t **out_versions, cfgd_error *err)
{
    json_t *files = NULL;
    candidate[0] = '\0';
    int r = cfgd_fs_list_dir(ctx->be, ctx->cfg->sandbox_repo, &files, err);
    if (r < 0)
        return r;
    json_t *versions = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f)
    {
        char v[DEBPKG_VERSION_MAX + 1];
        if (!repo_entry(json_string_value(json_object_get(f, "name")), name, v, sizeof v))
            continue;
        json_array_append_new(versions, json_string(v));
        if (!candidate[0] || debpkg_version_compare(v, candidate) > 0)
            snprintf(candidate, cap, "%s", v);
    }
    json_decref(files);
    if (out_versions)
        *out_versions = versions;
    else
        json_decref(versions);
    return 0;
}

int cfgd_sandbox_pkg_set(cfgd_ctx *ctx, const char *name, const char *version, cfgd_error *err)
{
    json_t *db = load(ctx, CFGD_SANDBOX_PKGS, false);
    if (version) {
        char now[32];
        iso8601_format_utc(time_now_ms(), now, sizeof now);
        json_t *old = json_object_get(db, name);
        bool held = json_is_true(json_object_get(old, "held"));
        json_object_set_new(
            db, name,
            json_pack("{s:s, s:s, s:b}", "version", version, "installDate", now, "held", held));
    } else {
        json_object_del(db, name);
    }
    int r = save(ctx, CFGD_SANDBOX_PKGS, db, err);
    json_decref(db);
    return r;
}

int cfgd_sandbox_pkg_hold(cfgd_ctx *ctx, const char *name, bool hold, cfgd_error *err)
{
    json_t *db = load(ctx, CFGD_SANDBOX_PKGS, false);
    json_t *e = json_object_get(db, name);
    int r = 0;
    if (json_is_object(e)) {
        json_object_set_new(e, "held", json_boolean(hold));
        r = save(ctx, CFGD_SANDBOX_PKGS, db, err);
    }
    json_decref(db);
    return r;
}

/* "apt-get update": the lists now hold what the configuration says is available. */
int cfgd_sandbox_update_lists(cfgd_ctx *ctx, cfgd_error *err)
{
    json_t *lists = json_array();
    for (size_t i = 0; i < ctx->cfg->n_sandbox_upgradable; i++) {
        char name[DEBPKG_NAME_MAX + 1], spec[CFGD_UPGRADABLE_MAX];
        const char *version;
        snprintf(spec, sizeof spec, "%s", ctx->cfg->sandbox_upgradable[i]);
        char *space = strchr(spec, ' ');
        bool reboot = space && strstr(space, "reboot");
        if (space)
            *space = '\0';
        if (!debpkg_spec_parse(spec, name, sizeof name, &version) || !version)
            continue; /* checked when the configuration was read */
        json_array_append_new(lists, json_pack("{s:s, s:s, s:b}", "name", name, "version", version,
                                               "reboot", reboot));
    }
    int r = save(ctx, CFGD_SANDBOX_LISTS, lists, err);
    json_decref(lists);
    return r;
}

/* The newest listed version of name above its installed one (or exactly version), or NULL. */
static json_t *best_update(json_t *lists, const char *name, const cfgd_pkg_status *st,
                           const char *version)
{
    json_t *best = NULL, *e;
    size_t i;
    json_array_foreach(lists, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        const char *v = json_string_value(json_object_get(e, "version"));
        if (!n || !v || strcmp(n, name) != 0 || debpkg_version_compare(v, st->version) <= 0)
            continue;
        if (version ? strcmp(v, version) == 0
                    : !best || debpkg_version_compare(
                                   v, json_string_value(json_object_get(best, "version"))) > 0)
            best = e;
    }
    return best;
}

int cfgd_sandbox_upgradable(cfgd_ctx *ctx, json_t **out, cfgd_error *err)
{
    json_t *lists = load(ctx, CFGD_SANDBOX_LISTS, true);
    json_t *result = json_array(), *e;
    size_t i;
    json_array_foreach(lists, i, e)
    {
        const char *name = json_string_value(json_object_get(e, "name"));
        cfgd_pkg_status st;
        memset(&st, 0, sizeof st);
        if (!name || cfgd_sandbox_pkg_query(ctx, name, &st, err) < 0 || !st.installed || st.held)
            continue;
        json_t *best = best_update(lists, name, &st, NULL);
        if (best != e) /* each package once, at its newest version */
            continue;
        char spec[DEBPKG_NAME_MAX + DEBPKG_VERSION_MAX + 2];
        snprintf(spec, sizeof spec, "%s=%s", name,
                 json_string_value(json_object_get(e, "version")));
        json_array_append_new(result, json_string(spec));
    }
    json_decref(lists);
    *out = result;
    return 0;
}

int cfgd_sandbox_upgrade_check(cfgd_ctx *ctx, const char *name, const char *version, char *out,
                               size_t cap, cfgd_error *err)
{
    cfgd_pkg_status st;
    memset(&st, 0, sizeof st);
    cfgd_sandbox_pkg_query(ctx, name, &st, err);
    if (!st.installed) {
        cfgd_error_set(err, CFGD_ERR_FAILED,
                       "%s is not installed; only installed packages are "
                       "upgraded",
                       name);
        return -ENOENT;
    }
    json_t *lists = load(ctx, CFGD_SANDBOX_LISTS, true);
    json_t *best = best_update(lists, name, &st, version);
    if (best)
        snprintf(out, cap, "%s", json_string_value(json_object_get(best, "version")));
    json_decref(lists);
    if (!best) {
        cfgd_error_set(err, CFGD_ERR_NOT_FOUND, "the package lists have no update of %s%s%s", name,
                       version ? " to " : "", version ? version : "");
        return -ENOENT;
    }
    return 0;
}

/* Debian's update-notifier hook writes these when an update needs a reboot. */
static int flag_reboot(cfgd_ctx *ctx, const char *name, cfgd_error *err)
{
    static const char text[] = "*** System restart required ***\n";
    char pkgs[4096] = "";
    size_t len = 0;
    /* Usually missing (no update asked for a reboot yet): the list then starts empty. Any other
     * failure would rewrite the list without the packages already in it. */
    int r =
        cfgd_fs_read_file(ctx->be, "/run/reboot-required.pkgs", pkgs, sizeof pkgs - 200, &len, err);
    if (r == -ENOENT)
        len = 0;
    else if (r < 0)
        return r;
    snprintf(pkgs + len, sizeof pkgs - len, "%s\n", name);
    r = cfgd_fs_write_file(ctx->be, "/run/reboot-required", text, strlen(text), 0644, err);
    return r < 0 ? r
                 : cfgd_fs_write_file(ctx->be, "/run/reboot-required.pkgs", pkgs, strlen(pkgs),
                                      0644, err);
}

int cfgd_sandbox_upgrade_apply(cfgd_ctx *ctx, const char *name, const char *version,
                               cfgd_error *err)
{
    json_t *lists = load(ctx, CFGD_SANDBOX_LISTS, true), *e;
    bool reboot = false;
    size_t i;
    json_array_foreach(lists, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        const char *v = json_string_value(json_object_get(e, "version"));
        if (n && v && strcmp(n, name) == 0 && strcmp(v, version) == 0)
            reboot = json_is_true(json_object_get(e, "reboot"));
    }
    json_decref(lists);
    int r = cfgd_sandbox_pkg_set(ctx, name, version, err);
    return r == 0 && reboot ? flag_reboot(ctx, name, err) : r;
}
