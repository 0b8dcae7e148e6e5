/* wifi.* operations: list, install, uninstall and describe NetworkManager Wi-Fi profiles. */
#include "configd/ops/wifi.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "configd/ops/install.h"
#include "configd/ops/ops.h"

/* NetworkManager ignores keyfiles that others than root may read: they hold the secrets. */
#define PROFILE_MODE 0600

static bool sha256_valid(const char *hex, cfgd_error *err)
{
    bool ok = strlen(hex) == 64 && strspn(hex, "0123456789abcdefABCDEF") == 64;
    if (!ok)
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "sha256 must be 64 hexadecimal digits");
    return ok;
}

static int profile_arg(const json_t *args, const char **out, cfgd_error *err)
{
    const char *name;
    if (cfgd_arg_string(args, "profile", true, CFGD_WIFI_NAME_MAX + 64, &name, err) < 0 ||
        !cfgd_wifi_name_valid(name, err))
        return -EINVAL;
    *out = name;
    return 0;
}

int cfgd_validate_wifi_install(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"profile", "sha256", NULL};
    const char *name, *sha256;
    if (cfgd_args_only(args, allowed, err) < 0 || profile_arg(args, &name, err) < 0 ||
        cfgd_arg_string(args, "sha256", true, 64, &sha256, err) < 0)
        return -EINVAL;
    return sha256_valid(sha256, err) ? 0 : -EINVAL;
}

int cfgd_validate_wifi_ref(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"profile", NULL};
    const char *name;
    if (cfgd_args_only(args, allowed, err) < 0)
        return -EINVAL;
    return profile_arg(args, &name, err);
}

static void profile_path(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s%s", CFGD_WIFI_DIR, name, CFGD_WIFI_SUFFIX);
}

/* Reads and parses an installed profile; *out_sha256 (may be NULL) gets its file's SHA-256. */
static int read_profile(cfgd_ctx *ctx, const char *path, cfgd_wifi_profile *out, char *out_sha256,
                        cfgd_error *err)
{
    char *buf = xmalloc(CFGD_WIFI_FILE_MAX + 2);
    size_t len = 0;
    if (!buf) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "out of memory");
        return -ENOMEM;
    }
    int r = cfgd_fs_read_file(ctx->be, path, buf, CFGD_WIFI_FILE_MAX + 2, &len, err);
    if (r == 0)
        r = cfgd_wifi_keyfile_parse(buf, len, out, err);
    if (r == 0 && out_sha256)
        cfgd_sha256_hex(buf, len, out_sha256);
    xfree(buf);
    return r;
}

static int reload(cfgd_ctx *ctx, cfgd_error *err)
{
    static const char *const argv[] = {CFGD_NMCLI, "connection", "reload", NULL};
    return cfgd_run_checked(ctx, argv, err);
}

/* The profile name of a file in the folder: "<name>.nmconnection" with a valid name. */
static bool name_of(const char *file, char *out, size_t cap)
{
    size_t n = file ? strlen(file) : 0, sl = strlen(CFGD_WIFI_SUFFIX);
    if (n <= sl || n - sl >= cap || strcmp(file + n - sl, CFGD_WIFI_SUFFIX) != 0)
        return false;
    memcpy(out, file, n - sl);
    out[n - sl] = '\0';
    return cfgd_wifi_name_valid(out, NULL);
}

int cfgd_op_wifi_list(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    (void)args;
    json_t *files = NULL;
    int r = cfgd_fs_list_dir(ctx->be, CFGD_WIFI_DIR, &files, err);
    if (r < 0)
        return r;
    json_t *profiles = json_object();
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f)
    {
        char name[CFGD_WIFI_NAME_MAX + 1], path[CFGD_PATH_MAX], sha256[65];
        cfgd_wifi_profile p;
        cfgd_error ignored;
        if (!name_of(json_string_value(json_object_get(f, "name")), name, sizeof name))
            continue;
        profile_path(name, path, sizeof path);
        /* The folder also holds wired and other profiles: only Wi-Fi ones are this list's. */
        if (read_profile(ctx, path, &p, sha256, &ignored) < 0 || !p.is_wifi)
            continue;
        json_object_set_new(
            profiles, name,
            json_pack("{s:s, s:s, s:s}", "ssid", p.ssid, "security", p.security, "sha256", sha256));
    }
    json_decref(files);
    *out = json_pack("{s:o}", "profiles", profiles);
    return 0;
}

/* The passed file, checked to be a Wi-Fi keyfile for the named profile. */
static int passed_profile(cfgd_ctx *ctx, const char *name, const char *sha256, char **out_data,
                          size_t *out_len, cfgd_wifi_profile *p, cfgd_error *err)
{
    int r = cfgd_passed_file_read(ctx, sha256, CFGD_WIFI_FILE_MAX, out_data, out_len, err);
    if (r == 0)
        r = cfgd_wifi_keyfile_parse(*out_data, *out_len, p, err);
    if (r == 0 && !p->is_wifi) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "the profile is not a Wi-Fi connection ([connection] type=wifi)");
        r = -EINVAL;
    } else if (r == 0 && !p->ssid[0]) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "the profile has no [wifi] ssid");
        r = -EINVAL;
    } else if (r == 0 && strcmp(p->id, name) != 0) {
        /* NetworkManager names the connection by its id: one name everywhere. */
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "the profile's [connection] id is \"%s\", not \"%s\"", p->id, name);
        r = -EINVAL;
    }
    if (r < 0) {
        xfree(*out_data);
        *out_data = NULL;
    }
    return r;
}

int cfgd_op_wifi_install(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const char *name = json_string_value(json_object_get(args, "profile"));
    const char *sha256 = json_string_value(json_object_get(args, "sha256"));
    char path[CFGD_PATH_MAX], have[65] = "";
    char *data = NULL;
    size_t len = 0;
    cfgd_wifi_profile p, old;
    cfgd_error ignored;
    int r = passed_profile(ctx, name, sha256, &data, &len, &p, err);
    if (r < 0)
        return r;
    profile_path(name, path, sizeof path);
    bool readable = read_profile(ctx, path, &old, have, &ignored) == 0;
    if (readable && !old.is_wifi) {
        /* A wired (or other) profile of that name is not this operation's to replace. */
        xfree(data);
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "a profile \"%s\" exists and is not a Wi-Fi profile", name);
        return -EINVAL;
    }
    bool changed = !readable || strcasecmp(have, sha256) != 0;
    cfgd_saved_file saved = {0};
    if (changed)
        r = cfgd_file_save(ctx, path, CFGD_WIFI_FILE_MAX, &saved, err);
    if (r == 0 && changed)
        r = cfgd_fs_write_file(ctx->be, path, data, len, PROFILE_MODE, err);
    /* NetworkManager must take the profile, or the old state comes back. */
    if (r == 0 && changed && (r = reload(ctx, err)) < 0)
        cfgd_file_restore(ctx, path, &saved, PROFILE_MODE);
    cfgd_saved_file_deinit(&saved);
    xfree(data);
    if (r == 0)
        *out = json_pack("{s:s, s:s, s:s, s:b}", "profile", name, "ssid", p.ssid, "security",
                         p.security, "changed", changed);
    return r;
}

int cfgd_op_wifi_uninstall(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const char *name = json_string_value(json_object_get(args, "profile"));
    char path[CFGD_PATH_MAX];
    cfgd_wifi_profile p;
    cfgd_saved_file saved;
    bool removed = false;
    profile_path(name, path, sizeof path);
    int r = cfgd_file_save(ctx, path, CFGD_WIFI_FILE_MAX, &saved, err);
    if (r < 0)
        return r;
    /* This operation manages Wi-Fi profiles only; a wired one of that name is not its to remove.
     */
    if (saved.existed &&
        (cfgd_wifi_keyfile_parse(saved.data, saved.len, &p, err) < 0 || !p.is_wifi)) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "%s is not a Wi-Fi profile", name);
        r = -EINVAL;
    }
    if (r == 0 && saved.existed)
        r = cfgd_fs_remove(ctx->be, path, NULL, 0, &removed, err);
    if (r == 0 && removed && (r = reload(ctx, err)) < 0)
        cfgd_file_restore(ctx, path, &saved, PROFILE_MODE);
    cfgd_saved_file_deinit(&saved);
    if (r == 0)
        *out = json_pack("{s:s, s:b}", "profile", name, "removed", removed);
    return r;
}

int cfgd_op_wifi_details(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const char *name = json_string_value(json_object_get(args, "profile"));
    char path[CFGD_PATH_MAX];
    cfgd_wifi_profile p;
    profile_path(name, path, sizeof path);
    int e = cfgd_fs_exists(ctx->be, path);
    if (e == 0) {
        cfgd_error_set(err, CFGD_ERR_NOT_FOUND, "no Wi-Fi profile \"%s\"", name);
        return -ENOENT;
    }
    int r = read_profile(ctx, path, &p, NULL, err);
    if (r == 0 && !p.is_wifi) {
        cfgd_error_set(err, CFGD_ERR_NOT_FOUND, "\"%s\" is not a Wi-Fi profile", name);
        return -ENOENT;
    }
    if (r < 0) {
        err->code = CFGD_ERR_FAILED; /* the request was fine; the file on the device is not */
        return r;
    }
    *out = json_pack("{s:s, s:s, s:s, s:b}", "profile", name, "ssid", p.ssid, "security",
                     p.security, "autoconnect", p.autoconnect);
    return 0;
}
