/* certs.* operations: list, install, uninstall and describe certificates in the six stores. */
#include "configd/ops/certs.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "configd/ops/install.h"
#include "configd/ops/ops.h"

/* root and ca both feed the system trust, each from its own folder, so that each store reports
 * and removes only its own certificates. */
static const cfgd_cert_store stores[] = {
    {"root", CFGD_CERT_SYSTEM_TRUST "/root", ".crt", true},
    {"ca", CFGD_CERT_SYSTEM_TRUST "/ca", ".crt", true},
    {"trustedPublisher", CFGD_CERT_IOTDM_STORES "/trusted-publisher", ".pem", false},
    {"trustedPeople", CFGD_CERT_IOTDM_STORES "/trusted-people", ".pem", false},
    {"mySystem", CFGD_CERT_IOTDM_STORES "/my-system", ".pem", false},
    {"myUser", CFGD_CERT_IOTDM_STORES "/my-user", ".pem", false},
};

#define NSTORES (sizeof stores / sizeof *stores)

const cfgd_cert_store *cfgd_cert_stores(size_t *out_count)
{
    *out_count = NSTORES;
    return stores;
}

const cfgd_cert_store *cfgd_cert_store_find(const char *name, cfgd_error *err)
{
    for (size_t i = 0; i < NSTORES; i++) {
        if (strcmp(stores[i].name, name) == 0)
            return &stores[i];
    }
    cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                   "unknown certificate store \"%.64s\" (root, ca, trustedPublisher, "
                   "trustedPeople, mySystem, myUser)",
                   name);
    return NULL;
}

bool cfgd_thumbprint_valid(const char *thumbprint, cfgd_error *err)
{
    size_t n = strlen(thumbprint);
    bool ok = n == CFGD_THUMBPRINT_LEN;
    for (size_t i = 0; ok && i < n; i++)
        ok = isxdigit((unsigned char)thumbprint[i]) != 0;
    if (!ok)
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "\"%.64s\" is not a SHA-1 thumbprint (40 hexadecimal digits)", thumbprint);
    return ok;
}

static bool sha256_valid(const char *hex, cfgd_error *err)
{
    bool ok = strlen(hex) == 64;
    for (size_t i = 0; ok && i < 64; i++)
        ok = isxdigit((unsigned char)hex[i]) != 0;
    if (!ok)
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "sha256 must be 64 hexadecimal digits");
    return ok;
}

/* store and thumbprint, both required and valid; the store found goes to *out_store. */
static int store_and_thumbprint(const json_t *args, const cfgd_cert_store **out_store,
                                const char **out_thumbprint, cfgd_error *err)
{
    const char *store, *thumbprint;
    if (cfgd_arg_string(args, "store", true, CFGD_CERT_STORE_NAME_MAX, &store, err) < 0 ||
        cfgd_arg_string(args, "thumbprint", true, 64, &thumbprint, err) < 0)
        return -EINVAL;
    const cfgd_cert_store *s = cfgd_cert_store_find(store, err);
    if (!s || !cfgd_thumbprint_valid(thumbprint, err))
        return -EINVAL;
    if (out_store)
        *out_store = s;
    if (out_thumbprint)
        *out_thumbprint = thumbprint;
    return 0;
}

int cfgd_validate_certs_install(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"store", "thumbprint", "sha256", NULL};
    const char *sha256;
    if (cfgd_args_only(args, allowed, err) < 0 || store_and_thumbprint(args, NULL, NULL, err) < 0 ||
        cfgd_arg_string(args, "sha256", true, 64, &sha256, err) < 0)
        return -EINVAL;
    return sha256_valid(sha256, err) ? 0 : -EINVAL;
}

int cfgd_validate_certs_ref(const json_t *args, cfgd_error *err)
{
    static const char *const allowed[] = {"store", "thumbprint", NULL};
    if (cfgd_args_only(args, allowed, err) < 0)
        return -EINVAL;
    return store_and_thumbprint(args, NULL, NULL, err);
}

/* The device path of a certificate: the thumbprint in lower case names the file, so the same
 * certificate given in either case is one file. */
static void cert_path(const cfgd_cert_store *s, const char *thumbprint, char *out, size_t cap)
{
    char lower[CFGD_THUMBPRINT_LEN + 1];
    for (size_t i = 0; i < CFGD_THUMBPRINT_LEN; i++)
        lower[i] = (char)tolower((unsigned char)thumbprint[i]);
    lower[CFGD_THUMBPRINT_LEN] = '\0';
    snprintf(out, cap, "%s/%s%s", s->dir, lower, s->suffix);
}

/* Reads and parses an installed certificate file; -ENOENT when there is none. */
static int read_cert(cfgd_ctx *ctx, const char *path, bool want_pem, cfgd_cert_info *out,
                     cfgd_error *err)
{
    char *buf = xmalloc(CFGD_CERT_FILE_MAX + 2);
    size_t len = 0;
    if (!buf) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "out of memory");
        return -ENOMEM;
    }
    int r = cfgd_fs_read_file(ctx->be, path, buf, CFGD_CERT_FILE_MAX + 2, &len, err);
    if (r == 0)
        r = cfgd_cert_parse(buf, len, want_pem, out, err);
    xfree(buf);
    return r;
}

static void upper(char *s)
{
    for (; *s; s++)
        *s = (char)toupper((unsigned char)*s);
}

/* A file this store manages: <40 lower-case hex digits><suffix>. */
static bool managed_name(const cfgd_cert_store *s, const char *name, char *thumbprint)
{
    size_t n = strlen(name), sl = strlen(s->suffix);
    if (n != CFGD_THUMBPRINT_LEN + sl || strcmp(name + CFGD_THUMBPRINT_LEN, s->suffix) != 0)
        return false;
    for (size_t i = 0; i < CFGD_THUMBPRINT_LEN; i++) {
        if (!isdigit((unsigned char)name[i]) && (name[i] < 'a' || name[i] > 'f'))
            return false;
    }
    memcpy(thumbprint, name, CFGD_THUMBPRINT_LEN);
    thumbprint[CFGD_THUMBPRINT_LEN] = '\0';
    upper(thumbprint);
    return true;
}

/* {"<THUMBPRINT>": {"subject", "notAfter"}} for the certificates a store really holds. */
static int list_store(cfgd_ctx *ctx, const cfgd_cert_store *s, json_t **out, cfgd_error *err)
{
    json_t *files = NULL;
    int r = cfgd_fs_list_dir(ctx->be, s->dir, &files, err);
    if (r < 0)
        return r;
    json_t *certs = json_object();
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        char thumbprint[CFGD_THUMBPRINT_LEN + 1], path[CFGD_PATH_MAX];
        cfgd_cert_info info;
        cfgd_error ignored;
        if (!name || !managed_name(s, name, thumbprint))
            continue;
        snprintf(path, sizeof path, "%s/%s", s->dir, name);
        if (read_cert(ctx, path, false, &info, &ignored) < 0 || strcmp(info.sha1, thumbprint)) {
            /* Not what configd wrote there: not reported as held under a name it does not have. */
            log_warn("configd", "ignoring %s: not the certificate its name says", path);
            continue;
        }
        json_object_set_new(
            certs, thumbprint,
            json_pack("{s:s, s:s}", "subject", info.subject, "notAfter", info.not_after));
    }
    json_decref(files);
    *out = certs;
    return 0;
}

int cfgd_op_certs_list(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    (void)args;
    json_t *all = json_object();
    for (size_t i = 0; i < NSTORES; i++) {
        json_t *certs;
        int r = list_store(ctx, &stores[i], &certs, err);
        if (r < 0) {
            json_decref(all);
            return r;
        }
        json_object_set_new(all, stores[i].name, certs);
    }
    *out = all;
    return 0;
}

static int update_trust(cfgd_ctx *ctx, cfgd_error *err)
{
    static const char *const argv[] = {CFGD_UPDATE_CA_CERTS, NULL};
    return cfgd_run_checked(ctx, argv, err);
}

/* Parses the passed file and checks it is the certificate the request names. */
static int passed_cert(cfgd_ctx *ctx, const char *thumbprint, const char *sha256,
                       cfgd_cert_info *info, cfgd_error *err)
{
    char *data;
    size_t len;
    int r = cfgd_passed_file_read(ctx, sha256, CFGD_CERT_FILE_MAX, &data, &len, err);
    if (r < 0)
        return r;
    r = cfgd_cert_parse(data, len, true, info, err);
    xfree(data);
    if (r == 0 && strcasecmp(info->sha1, thumbprint) != 0) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "the certificate's SHA-1 thumbprint is %s, not %s", info->sha1, thumbprint);
        cfgd_cert_info_deinit(info);
        r = -EINVAL;
    }
    return r;
}

/* Whether path holds the certificate with this SHA-1 thumbprint. */
static bool same_cert(cfgd_ctx *ctx, const char *path, const char *sha1)
{
    cfgd_cert_info have;
    cfgd_error ignored;
    return cfgd_fs_exists(ctx->be, path) > 0 && read_cert(ctx, path, false, &have, &ignored) == 0 &&
           strcmp(have.sha1, sha1) == 0;
}

int cfgd_op_certs_install(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const cfgd_cert_store *s;
    const char *thumbprint;
    const char *sha256 = json_string_value(json_object_get(args, "sha256"));
    char path[CFGD_PATH_MAX];
    cfgd_cert_info info;
    int r = store_and_thumbprint(args, &s, &thumbprint, err);
    if (r == 0)
        r = passed_cert(ctx, thumbprint, sha256, &info, err);
    if (r < 0)
        return r;
    cert_path(s, thumbprint, path, sizeof path);
    /* The same certificate already there is left as it is (and the trust is not rebuilt for
     * nothing); anything else under its name is replaced. */
    bool changed = !same_cert(ctx, path, info.sha1);
    cfgd_saved_file saved = {0};
    if (changed)
        r = cfgd_file_save(ctx, path, CFGD_CERT_FILE_MAX, &saved, err);
    if (r == 0 && changed)
        r = cfgd_fs_write_file(ctx->be, path, info.pem, info.pem_len, 0644, err);
    if (r == 0 && changed && s->system_trust && (r = update_trust(ctx, err)) < 0)
        cfgd_file_restore(ctx, path, &saved, 0644); /* never half-installed */
    cfgd_saved_file_deinit(&saved);
    if (r == 0)
        *out = json_pack("{s:s, s:s, s:s, s:s, s:b}", "store", s->name, "thumbprint", info.sha1,
                         "subject", info.subject, "notAfter", info.not_after, "changed", changed);
    cfgd_cert_info_deinit(&info);
    return r;
}

int cfgd_op_certs_uninstall(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const cfgd_cert_store *s;
    const char *thumbprint;
    char path[CFGD_PATH_MAX];
    cfgd_saved_file saved;
    bool removed = false;
    int r = store_and_thumbprint(args, &s, &thumbprint, err);
    if (r < 0)
        return r;
    cert_path(s, thumbprint, path, sizeof path);
    /* Only the file this store manages under that name is ever removed. */
    r = cfgd_file_save(ctx, path, CFGD_CERT_FILE_MAX, &saved, err);
    if (r == 0 && saved.existed)
        r = cfgd_fs_remove(ctx->be, path, NULL, 0, &removed, err);
    if (r == 0 && removed && s->system_trust && (r = update_trust(ctx, err)) < 0)
        cfgd_file_restore(ctx, path, &saved, 0644);
    cfgd_saved_file_deinit(&saved);
    if (r == 0)
        *out = json_pack("{s:s, s:s, s:b}", "store", s->name, "thumbprint", thumbprint, "removed",
                         removed);
    return r;
}

int cfgd_op_certs_details(cfgd_ctx *ctx, const json_t *args, json_t **out, cfgd_error *err)
{
    const cfgd_cert_store *s;
    const char *thumbprint;
    char path[CFGD_PATH_MAX];
    cfgd_cert_info info;
    int r = store_and_thumbprint(args, &s, &thumbprint, err);
    if (r < 0)
        return r;
    cert_path(s, thumbprint, path, sizeof path);
    int e = cfgd_fs_exists(ctx->be, path);
    if (e == 0) {
        cfgd_error_set(err, CFGD_ERR_NOT_FOUND, "no certificate %.40s in store %s", thumbprint,
                       s->name);
        return -ENOENT;
    }
    r = read_cert(ctx, path, false, &info, err);
    if (r < 0) {
        /* The request was fine; the file on the device is not. */
        err->code = CFGD_ERR_FAILED;
        return r;
    }
    *out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "store", s->name, "subject",
                     info.subject, "issuer", info.issuer, "notBefore", info.not_before, "notAfter",
                     info.not_after, "sha1", info.sha1, "sha256", info.sha256);
    return 0;
}
