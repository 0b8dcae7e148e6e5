/* Helpers of the tests of operations that install passed files (certificates, Wi-Fi profiles,
 * telemetry level): a sandbox or a linux root in a temporary directory, files passed as
 * descriptors, digests, and the sandbox journal. */
#ifndef IOTDM_TEST_CONFIGD_INSTALL_FIXTURE_H
#define IOTDM_TEST_CONFIGD_INSTALL_FIXTURE_H

#include <fcntl.h>
#include <openssl/evp.h>

#include "configd_fixture.h"

/* Runs a shell command line of the test's own (openssl to make inputs); fails the test if it
 * fails. */
static inline void ix_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void ix_sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

/* The first line a command prints (static buffer). */
static inline const char *ix_sh_out(const char *cmd)
{
    static char line[512];
    FILE *p = popen(cmd, "r");
    line[0] = '\0';
    if (!p || !fgets(line, sizeof line, p))
        fail_msg("no output from: %s", cmd);
    pclose(p);
    line[strcspn(line, "\r\n")] = '\0';
    return line;
}

/* Lower-case hex SHA-256 of a host file (static buffer). */
static inline const char *ix_sha256(const char *path)
{
    static char hex[65];
    unsigned char md[32], buf[65536];
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot read %s", path);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        EVP_DigestUpdate(c, buf, n);
    fclose(f);
    unsigned int len = 0;
    EVP_DigestFinal_ex(c, md, &len);
    EVP_MD_CTX_free(c);
    for (unsigned int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return hex;
}

/* Writes work/name with text and returns its host path (static buffer). */
static inline const char *ix_input(fx_fixture *f, const char *name, const char *text)
{
    static char path[256];
    char rel[128];
    snprintf(rel, sizeof rel, "/%s", name);
    fx_write(f->work, rel, text, 0644);
    snprintf(path, sizeof path, "%s/%s", f->work, name);
    return path;
}

/* Dispatches op with args_json and the file at path passed as a descriptor (NULL: none). */
static inline json_t *ix_call_file(fx_fixture *f, const char *op, const char *args_json,
                                   const char *path)
{
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (path && fd < 0)
        fail_msg("cannot open %s", path);
    f->ctx.fds = path ? &fd : NULL;
    f->ctx.nfds = path ? 1 : 0;
    json_t *reply = fx_call(&f->ctx, op, args_json);
    f->ctx.fds = NULL;
    f->ctx.nfds = 0;
    if (fd >= 0)
        close(fd);
    return reply;
}

/* The error message of a failed reply ("" for success). */
static inline const char *ix_message(const json_t *reply)
{
    const char *m = json_string_value(json_object_get(json_object_get(reply, "error"), "message"));
    return m ? m : "";
}

/* Journal lines of the sandbox that contain needle. */
static inline int ix_journal(fx_fixture *f, const char *needle)
{
    return fx_count_lines(f->dir, CFGD_SANDBOX_JOURNAL, needle);
}

/* Number of regular entries in root + rel (0 when missing). */
static inline int ix_count_files(fx_fixture *f, const char *rel)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "find '%s%s' -type f 2>/dev/null | wc -l", f->dir, rel);
    return atoi(ix_sh_out(cmd));
}

#endif
