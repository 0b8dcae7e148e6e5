/* Shared helpers of the configd tests: throwaway roots, file checks, dispatching JSON requests. */
#ifndef IOTDM_TEST_CONFIGD_FIXTURE_H
#define IOTDM_TEST_CONFIGD_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "configd/backend.h"
#include "configd/config.h"
#include "configd/optable.h"

/* A fresh directory under /tmp; tests never touch anything outside such directories. */
static inline void fx_tempdir(char *buf, size_t cap, const char *tag)
{
    snprintf(buf, cap, "/tmp/iotdm-%s-XXXXXX", tag);
    if (!mkdtemp(buf))
        fail_msg("mkdtemp failed");
}

static inline void fx_rmtree(const char *dir)
{
    /* Only ever our own /tmp/iotdm-* directories. */
    if (strncmp(dir, "/tmp/iotdm-", 11) != 0 || strstr(dir, ".."))
        fail_msg("refusing to remove %s", dir);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fail_msg("cannot remove %s", dir);
}

static inline void fx_mkdirs(const char *path)
{
    assert_int_equal(cfgd_fs_mkdirs(path, 0755), 0);
}

/* Writes dir + rel (parents created) with mode. */
static inline void fx_write(const char *dir, const char *rel, const char *text, mode_t mode)
{
    char path[PATH_MAX], parent[PATH_MAX];
    snprintf(path, sizeof path, "%s%s", dir, rel);
    snprintf(parent, sizeof parent, "%s", path);
    *strrchr(parent, '/') = '\0';
    fx_mkdirs(parent);
    FILE *f = fopen(path, "w");
    if (!f)
        fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

/* The content of dir + rel, or NULL when missing (static buffer). */
static inline const char *fx_read(const char *dir, const char *rel)
{
    static char buf[65536];
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s%s", dir, rel);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static inline bool fx_exists(const char *dir, const char *rel)
{
    char path[PATH_MAX];
    struct stat st;
    snprintf(path, sizeof path, "%s%s", dir, rel);
    return lstat(path, &st) == 0;
}

/* The target of the link dir + rel, or "" (static buffer). */
static inline const char *fx_readlink(const char *dir, const char *rel)
{
    static char buf[PATH_MAX];
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s%s", dir, rel);
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/* Copies the host's Europe/Berlin zone into the root's own zoneinfo (so the tests do not depend on
 * the host's tzdata), falling back to a minimal TZif file. */
static inline void fx_install_zoneinfo(const char *root)
{
    char dst[PATH_MAX];
    snprintf(dst, sizeof dst, "%s/usr/share/zoneinfo/Europe", root);
    fx_mkdirs(dst);
    strcat(dst, "/Berlin");
    FILE *in = fopen("/usr/share/zoneinfo/Europe/Berlin", "rb");
    FILE *out = fopen(dst, "wb");
    assert_non_null(out);
    if (in) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, in)) > 0)
            fwrite(buf, 1, n, out);
        fclose(in);
    } else {
        fputs("TZif2 minimal test zone\n", out);
    }
    fclose(out);
    fx_write(root, "/usr/share/zoneinfo/UTC", "TZif2 utc\n", 0644);
    fx_write(root, "/usr/share/zoneinfo/leapseconds", "# not a zone file\n", 0644);
}

/* Counts lines of dir + rel that contain needle. */
static inline int fx_count_lines(const char *dir, const char *rel, const char *needle)
{
    const char *text = fx_read(dir, rel);
    int n = 0;
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char copy[4096];
        snprintf(copy, sizeof copy, "%.*s", (int)len, line);
        if (strstr(copy, needle))
            n++;
        line = nl ? nl + 1 : NULL;
    }
    return n;
}

static inline json_t *fx_json(const char *text)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (!j)
        fail_msg("bad test JSON: %s (%s)", err.text, text);
    return j;
}

/* Dispatches {"v":1,"id":1,"op":op,"args":args_json}; returns the reply (caller frees). */
static inline json_t *fx_call(cfgd_ctx *ctx, const char *op, const char *args_json)
{
    char body[8192];
    snprintf(body, sizeof body, "{\"v\":1,\"id\":1,\"op\":\"%s\",\"args\":%s}", op,
             args_json ? args_json : "{}");
    cfgd_outcome oc;
    json_t *reply = cfgd_dispatch(ctx, (const uint8_t *)body, strlen(body), &oc);
    assert_non_null(reply);
    return reply;
}

/* The error code of a reply, or "ok". */
static inline const char *fx_code(const json_t *reply)
{
    if (json_is_true(json_object_get(reply, "ok")))
        return "ok";
    return json_string_value(json_object_get(json_object_get(reply, "error"), "code"));
}

static inline json_t *fx_result(const json_t *reply)
{
    if (!json_is_true(json_object_get(reply, "ok"))) {
        char *t = json_dumps(reply, 0);
        fail_msg("call failed: %s", t);
    }
    return json_object_get(reply, "result");
}

/* A backend over a throwaway root, the context the op table dispatches with, and a work folder
 * outside the root for the test's inputs (files as the agent would download them). */
typedef struct {
    char dir[64];  /* the backend's root */
    char work[96]; /* test inputs, outside the root */
    cfgd_config cfg;
    cfgd_backend *be;
    cfgd_ctx ctx;
} fx_fixture;

typedef enum { FX_SANDBOX, FX_LINUX } fx_backend_kind;

/* The root, the work folder and a default config, but no backend yet: a test puts its stubs and
 * config in place first, then calls fx_open. */
static inline fx_fixture *fx_new(const char *tag)
{
    fx_fixture *f = calloc(1, sizeof *f);
    fx_tempdir(f->dir, sizeof f->dir, tag);
    snprintf(f->work, sizeof f->work, "%s-work", f->dir);
    fx_mkdirs(f->work);
    cfgd_config_defaults(&f->cfg);
    return f;
}

static inline void fx_open(fx_fixture *f, fx_backend_kind kind, int command_timeout_ms)
{
    char e[256];
    f->be = kind == FX_SANDBOX ? cfgd_backend_sandbox_new(f->dir, command_timeout_ms, e, sizeof e)
                               : cfgd_backend_linux_new(f->dir, command_timeout_ms, e, sizeof e);
    if (!f->be)
        fail_msg("%s", e);
    f->ctx = (cfgd_ctx){.be = f->be, .cfg = &f->cfg};
}

static inline fx_fixture *fx_setup(const char *tag, fx_backend_kind kind, int command_timeout_ms)
{
    fx_fixture *f = fx_new(tag);
    fx_open(f, kind, command_timeout_ms);
    return f;
}

static inline void fx_free(fx_fixture *f)
{
    cfgd_backend_free(f->be);
    fx_rmtree(f->dir);
    fx_rmtree(f->work);
    free(f);
}

/* A cmocka teardown for a state that is an fx_fixture. */
static inline int fx_teardown(void **state)
{
    fx_free(*state);
    return 0;
}

/* The result of a call that must succeed (caller frees). */
static inline json_t *fx_call_ok(fx_fixture *f, const char *op, const char *args_json)
{
    json_t *reply = fx_call(&f->ctx, op, args_json);
    json_t *r = json_incref(fx_result(reply));
    json_decref(reply);
    return r;
}

/* The error code of a call, or "ok" (static buffer). */
static inline const char *fx_call_code(fx_fixture *f, const char *op, const char *args_json)
{
    static char code[32];
    json_t *reply = fx_call(&f->ctx, op, args_json);
    snprintf(code, sizeof code, "%s", fx_code(reply));
    json_decref(reply);
    return code;
}

#endif
