/* Checking and applying the apps of dm.apps one by one: values, the original's rules (one
 * foreground app, processed first; the agent never removes or downgrades itself), downloads,
 * and configd's apps.* operations. Every failure stays with its app. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "capabilities/apps_internal.h"
#include "common/log.h"

void apps_item_fail(app_item *it, int code, const char *fmt, ...)
{
    if (it->code) /* the first reason is the one that counts */
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->message, sizeof it->message, fmt, ap);
    va_end(ap);
    it->code = code;
}

bool apps_key_to_name(const char *key, char *out, size_t cap)
{
    size_t len = strlen(key);
    if (len >= cap)
        return false;
    /* '.' is not allowed in twin keys and '_' never occurs in package names: no ambiguity. */
    for (size_t i = 0; i <= len; i++)
        out[i] = key[i] == '_' ? '.' : key[i];
    return debpkg_name_valid(out, len);
}

static bool is_hex64(const char *s)
{
    size_t n = s ? strspn(s, "0123456789abcdefABCDEF") : 0;
    return n == 64 && s[64] == '\0';
}

/* One app's value: its members, their syntax, and the combinations that make no sense. */
static void check_value(app_item *it, json_t *value)
{
    static const char *const known[] = {"version",     "startUp",   "url",          "sha256",
                                        "installDate", "errorCode", "errorMessage", NULL};
    if (!apps_key_to_name(it->key, it->name, sizeof it->name)) {
        apps_item_fail(it, APP_ERR_INPUT,
                       "\"%.64s\" is not a Debian package name ([a-z0-9][a-z0-9+.-]+; write '.' "
                       "as '_' in the key)",
                       it->key);
        return;
    }
    if (!json_is_object(value)) {
        apps_item_fail(it, APP_ERR_INPUT, "the app must be an object {\"version\", \"startUp\"}");
        return;
    }
    const char *member;
    json_t *v;
    json_object_foreach(value, member, v)
    {
        size_t i = 0;
        while (known[i] && strcmp(known[i], member) != 0)
            i++;
        if (!known[i])
            apps_item_fail(it, APP_ERR_INPUT, "unknown member \"%.64s\"", member);
    }
    it->version = json_string_value(json_object_get(value, "version"));
    it->startup = json_string_value(json_object_get(value, "startUp"));
    it->url = json_string_value(json_object_get(value, "url"));
    it->sha256 = json_string_value(json_object_get(value, "sha256"));
    bool special =
        it->version && (!strcmp(it->version, "latest") || !strcmp(it->version, "not installed"));
    if (!it->version || (!special && !debpkg_version_valid(it->version, strlen(it->version))))
        apps_item_fail(it, APP_ERR_INPUT,
                       "version must be a Debian version ([epoch:]upstream[-revision]), "
                       "\"latest\" or \"not installed\"");
    json_t *s = json_object_get(value, "startUp");
    if (s && (!it->startup || (strcmp(it->startup, "none") && strcmp(it->startup, "foreground") &&
                               strcmp(it->startup, "background"))))
        apps_item_fail(it, APP_ERR_INPUT, "startUp must be none, foreground or background");
    if ((json_object_get(value, "url") || json_object_get(value, "sha256")) &&
        (!it->url || strncmp(it->url, "https://", 8) != 0 || !is_hex64(it->sha256)))
        apps_item_fail(it, APP_ERR_INPUT,
                       "a package from a URL needs an https:// url and its sha256 (64 hex digits)");
    if (it->version && !strcmp(it->version, "not installed") && it->startup &&
        strcmp(it->startup, "none") != 0)
        apps_item_fail(it, APP_ERR_INPUT, "an app that is \"not installed\" cannot start as %s",
                       it->startup);
}

static bool wants(const app_item *it, const char *startup)
{
    return !it->code && it->startup && strcmp(it->startup, startup) == 0;
}

/* The original's rule: at most one foreground app; asking for two refuses both. */
static void check_foreground(apps_run *run)
{
    char names[512] = "";
    size_t count = 0, len = 0;
    for (size_t i = 0; i < run->n; i++) {
        if (!wants(&run->items[i], "foreground"))
            continue;
        count++;
        len += (size_t)snprintf(names + len, len < sizeof names ? sizeof names - len : 0, "%s%s",
                                count > 1 ? ", " : "", run->items[i].name);
        run->new_fg = &run->items[i];
    }
    if (count <= 1)
        return;
    run->new_fg = NULL;
    for (size_t i = 0; i < run->n; i++)
        if (wants(&run->items[i], "foreground"))
            apps_item_fail(&run->items[i], APP_ERR_RULE,
                           "only one app can be the foreground app; asked for %.300s", names);
}

void apps_check(apps_run *run, json_t *desired)
{
    const char *key;
    json_t *value;
    json_object_foreach(desired, key, value)
    {
        if (run->n == APPS_MAX)
            break;
        app_item *it = &run->items[run->n++];
        memset(it, 0, sizeof *it);
        it->key = key;
        check_value(it, value);
    }
    check_foreground(run);
    for (size_t i = 0; i < run->n; i++) {
        app_item *it = &run->items[i];
        bool agent = run->agent && !strcmp(it->name, run->agent);
        if (!it->code && agent && it->startup && strcmp(it->startup, "background") != 0)
            apps_item_fail(it, APP_ERR_RULE,
                           "%s is the device-management agent: it stays a background service",
                           it->name);
    }
}

size_t apps_order(apps_run *run, app_item **out, size_t cap)
{
    size_t n = 0;
    if (run->new_fg && n < cap)
        out[n++] = run->new_fg;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < run->n && n < cap; i++) {
            app_item *it = &run->items[i];
            bool agent = run->agent && !strcmp(it->name, run->agent);
            /* The agent's own update restarts it, so it goes last. */
            if (it != run->new_fg && agent == (pass == 1))
                out[n++] = it;
        }
    }
    return n;
}

/* ---- applying ---- */

static json_t *status_of(apps_run *run, const char *name)
{
    return json_object_get(json_object_get(run->list, "packages"), name);
}

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

/* A configd failure becomes the app's error: its input (400) or the device (500). */
static void fail_configd(app_item *it, iotdm_result r, const char *err)
{
    apps_item_fail(it, r == IOTDM_E_MALFORMED ? APP_ERR_INPUT : APP_ERR_DEVICE, "%s", err);
}

static void remove_app(apps_cap *ac, apps_run *run, app_item *it, json_t *st)
{
    cap_env *env = ac->env;
    if (!json_is_true(json_object_get(st, "installed")))
        return;
    if (run->agent && !strcmp(it->name, run->agent)) {
        apps_item_fail(it, APP_ERR_RULE,
                       "%s is the device-management agent: it cannot uninstall itself", it->name);
        return;
    }
    bool replaced = run->new_fg && run->new_fg != it && !run->new_fg->code;
    if (run->current_fg && !strcmp(run->current_fg, it->name) && !replaced) {
        apps_item_fail(it, APP_ERR_RULE,
                       "%s is the foreground app: make another app the foreground app in the same "
                       "change, or set its startUp to none first",
                       it->name);
        return;
    }
    json_t *args = json_pack("{s:s, s:b}", "package", it->name, "purge", 1), *res = NULL;
    char err[400];
    iotdm_result r = env->configd(env->configd_ctx, "apps.remove", args, &res, err, sizeof err);
    json_decref(args);
    json_decref(res);
    if (r < 0)
        fail_configd(it, r, err);
}

/* Whether a package from a URL is already what the device has, so the download is skipped. */
static bool url_current(apps_cap *ac, const app_item *it, json_t *st)
{
    if (!json_is_true(json_object_get(st, "installed")))
        return false;
    if (strcmp(it->version, "latest") != 0)
        return !strcmp(str(st, "version"), it->version);
    json_t *seen = json_object_get(json_object_get(ac->state, "urls"), it->name);
    return !strcasecmp(str(seen, "sha256"), it->sha256) &&
           !strcmp(str(seen, "version"), str(st, "version"));
}

static iotdm_result install_from_url(apps_cap *ac, app_item *it, json_t *args, json_t **res,
                                     char *err, size_t cap)
{
    cap_env *env = ac->env;
    int fd = -1;
    iotdm_result r =
        env->download(env->transfer_ctx, it->url, it->sha256, APPS_DOWNLOAD_MAX, &fd, err, cap);
    if (r < 0) {
        bool input = r == IOTDM_E_MALFORMED || r == IOTDM_E_PRECONDITION || r == IOTDM_E_TOO_LARGE;
        apps_item_fail(it, input ? APP_ERR_INPUT : APP_ERR_DOWNLOAD, "%s", err);
        return r;
    }
    json_object_set_new(args, "sha256", json_string(it->sha256));
    r = env->configd_fds(env->configd_ctx, "apps.install", args, &fd, 1, res, err, cap);
    close(fd);
    return r;
}

/* Installs or upgrades when the device does not have the desired version yet. */
static void install_app(apps_cap *ac, apps_run *run, app_item *it, json_t **st)
{
    bool exact = strcmp(it->version, "latest") != 0;
    bool installed = json_is_true(json_object_get(*st, "installed"));
    bool agent = run->agent && !strcmp(it->name, run->agent);
    if (it->url ? url_current(ac, it, *st)
                : exact && installed && !strcmp(str(*st, "version"), it->version))
        return;
    if (agent && exact && installed &&
        debpkg_version_compare(it->version, str(*st, "version")) < 0) {
        apps_item_fail(it, APP_ERR_RULE,
                       "%s is the device-management agent: it cannot downgrade itself (installed "
                       "%s)",
                       it->name, str(*st, "version"));
        return;
    }
    json_t *args = json_pack("{s:s, s:s}", "package", it->name, "version", it->version);
    json_t *res = NULL;
    char err[400] = "";
    iotdm_result r = it->url ? install_from_url(ac, it, args, &res, err, sizeof err)
                             : ac->env->configd(ac->env->configd_ctx, "apps.install", args, &res,
                                                err, sizeof err);
    json_decref(args);
    if (r < 0) {
        if (!it->code)
            fail_configd(it, r, err);
        json_decref(res);
        return;
    }
    if (it->url) {
        json_t *urls = json_object_get(ac->state, "urls");
        if (!urls)
            json_object_set_new(ac->state, "urls", urls = json_object());
        json_object_set_new(
            urls, it->name,
            json_pack("{s:s, s:s}", "sha256", it->sha256, "version", str(res, "targetVersion")));
    }
    if (json_is_true(json_object_get(res, "pending"))) {
        it->pending = true;
        run->selfupdate = json_pack("{s:s, s:s, s:s, s:b}", "package", it->name, "key", it->key,
                                    "target", str(res, "targetVersion"), "simulated",
                                    json_is_true(json_object_get(res, "simulated")));
    }
    json_t *now = json_incref(json_object_get(res, "status"));
    json_decref(*st);
    *st = now;
    json_decref(res);
}

static void set_startup(apps_cap *ac, app_item *it, json_t *st)
{
    if (!it->startup || !strcmp(str(st, "startUp"), it->startup))
        return;
    json_t *args = json_pack("{s:s, s:s}", "package", it->name, "startUp", it->startup);
    json_t *res = NULL;
    char err[400];
    iotdm_result r =
        ac->env->configd(ac->env->configd_ctx, "apps.set_startup", args, &res, err, sizeof err);
    json_decref(args);
    json_decref(res);
    if (r < 0)
        fail_configd(it, r, err);
}

void apps_apply_item(apps_cap *ac, apps_run *run, app_item *it)
{
    if (it->code)
        return; /* refused: nothing is changed for it */
    json_t *st = json_incref(status_of(run, it->name));
    if (!st) {
        apps_item_fail(it, APP_ERR_DEVICE, "configd did not report %s", it->name);
        return;
    }
    if (!strcmp(it->version, "not installed")) {
        remove_app(ac, run, it, st);
    } else {
        install_app(ac, run, it, &st);
        if (!it->code && !it->pending)
            set_startup(ac, it, st);
    }
    if (it->code)
        log_warn("apps", "%s: %d %s", it->name, it->code, it->message);
    json_decref(st);
}
