/* Argument checks shared by the operations: member lists, typed members, names, file digests. */
#include "configd/ops/ops.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cfgd_args_only(const json_t *args, const char *const *allowed, cfgd_error *err)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)args, key, value)
    {
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], key) != 0)
            i++;
        if (!allowed[i]) {
            cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "unknown argument \"%.64s\"", key);
            return -EINVAL;
        }
    }
    return 0;
}

static int missing(const char *name, bool required, cfgd_error *err)
{
    if (!required)
        return 0;
    cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "argument \"%s\" is required", name);
    return -EINVAL;
}

int cfgd_arg_bool(const json_t *args, const char *name, bool required, bool *out, cfgd_error *err)
{
    const json_t *v = json_object_get(args, name);
    if (!v)
        return missing(name, required, err);
    if (!json_is_boolean(v)) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "argument \"%s\" must be true or false",
                       name);
        return -EINVAL;
    }
    *out = json_is_true(v);
    return 1;
}

int cfgd_arg_string(const json_t *args, const char *name, bool required, size_t max_len,
                    const char **out, cfgd_error *err)
{
    const json_t *v = json_object_get(args, name);
    if (!v)
        return missing(name, required, err);
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    bool ok = s && len > 0 && len <= max_len && strlen(s) == len;
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)s[i] >= 0x20 && s[i] != 0x7f;
    if (!ok) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "argument \"%s\" must be a string of 1 to %zu printable characters", name,
                       max_len);
        return -EINVAL;
    }
    *out = s;
    return 1;
}

bool cfgd_zone_name_valid(const char *zone, size_t len, cfgd_error *err)
{
    /* Only these characters, so "." and ".." segments and absolute paths cannot occur at all. */
    static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789_+-";
    bool ok = len > 0 && len <= CFGD_ZONE_MAX && zone[0] != '/' && zone[len - 1] != '/';
    for (size_t i = 0; ok && i < len; i++) {
        if (zone[i] == '/')
            ok = zone[i + 1] != '/';
        else
            ok = zone[i] != '\0' && strchr(allowed, zone[i]) != NULL;
    }
    if (!ok)
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "\"%.*s\" is not a time zone name (like Europe/Berlin)",
                       (int)(len > 64 ? 64 : len), zone);
    return ok;
}

bool cfgd_ntp_server_valid(const char *server, size_t len, cfgd_error *err)
{
    static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789.:-";
    /* A leading '-' could pass for an option if the name ever reached a command line. */
    bool ok = len > 0 && len <= CFGD_NTP_SERVER_MAX && server[0] != '-' && server[0] != '.';
    for (size_t i = 0; ok && i < len; i++)
        ok = server[i] != '\0' && strchr(allowed, server[i]) != NULL;
    if (!ok)
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "\"%.*s\" is not an NTP server (a host name or an IP address)",
                       (int)(len > 64 ? 64 : len), server);
    return ok;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int digest_fd(int fd, unsigned char out[32], cfgd_error *err)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int r = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) ? 0 : -ENOMEM;
    unsigned char buf[65536];
    off_t off = 0;
    while (r == 0) {
        ssize_t n = pread(fd, buf, sizeof buf, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            r = -errno;
        else if (n == 0)
            break;
        else if (!EVP_DigestUpdate(md, buf, (size_t)n))
            r = -EIO;
        off += n > 0 ? n : 0;
    }
    unsigned int len = 0;
    if (r == 0 && !EVP_DigestFinal_ex(md, out, &len))
        r = -EIO;
    EVP_MD_CTX_free(md);
    if (r < 0)
        cfgd_error_set(err, CFGD_ERR_FAILED, "cannot read the passed file: %s", strerror(-r));
    return r;
}

int cfgd_fd_check_sha256(int fd, const char *hex, cfgd_error *err)
{
    unsigned char want[32], got[32];
    bool ok = hex && strlen(hex) == 64;
    for (size_t i = 0; ok && i < 32; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        ok = hi >= 0 && lo >= 0;
        if (ok)
            want[i] = (unsigned char)(hi << 4 | lo);
    }
    if (!ok) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "sha256 must be 64 hexadecimal digits");
        return -EINVAL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "the passed descriptor is not a file");
        return -EINVAL;
    }
    int r = digest_fd(fd, got, err);
    if (r < 0)
        return r;
    /* The file came from the network through a less trusted process: check it here again. */
    if (CRYPTO_memcmp(want, got, sizeof got) != 0) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "the passed file does not match its expected SHA-256");
        return -EINVAL;
    }
    return 0;
}
