/* Installing files handed over by the agent: read the checked file, keep the old one, reload. */
#include "configd/ops/install.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"
#include "configd/ops/ops.h"

static int read_all(int fd, char *buf, size_t cap, size_t *out_len)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = pread(fd, buf + len, cap - len, (off_t)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == cap)
            break;
    }
    *out_len = len;
    return 0;
}

int cfgd_passed_file_read(const cfgd_ctx *ctx, const char *sha256, size_t max, char **out,
                          size_t *out_len, cfgd_error *err)
{
    *out = NULL;
    if (ctx->nfds != 1) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "the file must be passed with the request (one descriptor)");
        return -EINVAL;
    }
    int fd = ctx->fds[0];
    struct stat st = {0};
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size > max) {
        cfgd_error_set(err, CFGD_ERR_TOO_LARGE, "the file has %lld bytes; at most %zu are taken",
                       (long long)st.st_size, max);
        return -EFBIG;
    }
    int r = cfgd_fd_check_sha256(fd, sha256, err);
    if (r < 0)
        return r;
    /* One byte more than allowed tells a file that grew since the check from one that fits. */
    char *buf = xmalloc(max + 2);
    size_t len = 0;
    if (!buf) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "out of memory");
        return -ENOMEM;
    }
    r = read_all(fd, buf, max + 1, &len);
    if (r == 0 && len > max) {
        cfgd_error_set(err, CFGD_ERR_TOO_LARGE, "the file has more than %zu bytes", max);
        r = -EFBIG;
    } else if (r == 0 && len != (size_t)st.st_size) {
        /* The hash was computed over the size fstat saw; a change since then is refused. */
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "the passed file changed while it was read");
        r = -EINVAL;
    } else if (r < 0) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot read the passed file: %s", strerror(-r));
    }
    if (r < 0) {
        xfree(buf);
        return r;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

int cfgd_file_save(cfgd_ctx *ctx, const char *path, size_t max, cfgd_saved_file *out,
                   cfgd_error *err)
{
    memset(out, 0, sizeof *out);
    int e = cfgd_fs_exists(ctx->be, path);
    if (e <= 0) {
        if (e < 0)
            cfgd_error_set(err, CFGD_ERR_FAILED, "cannot look at %s: %s", path, strerror(-e));
        return e;
    }
    out->existed = true;
    out->data = xmalloc(max + 2);
    if (!out->data) {
        cfgd_error_set(err, CFGD_ERR_FAILED, "out of memory");
        return -ENOMEM;
    }
    int r = cfgd_fs_read_file(ctx->be, path, out->data, max + 2, &out->len, err);
    if (r == 0 && out->len > max) {
        /* A truncated copy could not put the file back as it was. */
        cfgd_error_set(err, CFGD_ERR_FAILED, "%s is larger than %zu bytes", path, max);
        r = -EFBIG;
    }
    if (r < 0)
        cfgd_saved_file_deinit(out);
    return r;
}

void cfgd_file_restore(cfgd_ctx *ctx, const char *path, cfgd_saved_file *saved, unsigned mode)
{
    cfgd_error err;
    bool existed;
    iotdm_result r = saved->existed
                         ? cfgd_fs_write_file(ctx->be, path, saved->data, saved->len, mode, &err)
                         : cfgd_fs_remove(ctx->be, path, NULL, 0, &existed, &err);
    /* The caller reports its own error; that the device could not be put back is worth a line
     * of its own, because the file is now neither the old one nor the new one. */
    if (r < 0)
        log_error("configd", "cannot put %s back after a failed change: %s", path, err.message);
    cfgd_saved_file_deinit(saved);
}

void cfgd_saved_file_deinit(cfgd_saved_file *saved)
{
    xfree(saved->data);
    saved->data = NULL;
    saved->len = 0;
}

int cfgd_run_checked(cfgd_ctx *ctx, const char *const *argv, cfgd_error *err)
{
    cfgd_cmd_result res;
    int r = ctx->be->vt->run(ctx->be, argv, NULL, &res, err);
    if (r < 0 || res.status == 0)
        return r;
    size_t n = res.output_len;
    while (n > 0 && (res.output[n - 1] == '\n' || res.output[n - 1] == '\r'))
        res.output[--n] = '\0';
    cfgd_error_set(err, CFGD_ERR_FAILED, "%s %s failed (%s %d): %.300s", argv[0],
                   argv[1] ? argv[1] : "", res.timed_out ? "timed out, status" : "exit status",
                   res.status, res.output);
    return -EIO;
}

void cfgd_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != sizeof md) {
        out[0] = '\0';
        return;
    }
    for (unsigned int i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}
