/* Generic "key = value" configuration files: '#' comments, blank lines, keys may repeat. */
#include "common/kvconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

/* Handles one line (NUL-terminated copy); returns the callback's result. */
static iotdm_result parse_line(char *line, const char *name, int lineno, kvconf_fn fn, void *ctx,
                               char *error, size_t cap)
{
    char *t = trim(line);
    if (!*t || *t == '#')
        return IOTDM_OK;
    char *eq = strchr(t, '=');
    if (!eq || eq == t) {
        snprintf(error, cap, "%s:%d: expected key = value", name, lineno);
        return IOTDM_E_MALFORMED;
    }
    *eq = '\0';
    char msg[400] = "";
    iotdm_result r = fn(ctx, trim(t), trim(eq + 1), msg, sizeof msg);
    if (r < 0)
        snprintf(error, cap, "%s:%d: %s", name, lineno, msg[0] ? msg : iotdm_result_message(r));
    return r;
}

iotdm_result kvconf_parse(const char *text, size_t len, const char *name, kvconf_fn fn, void *ctx,
                          char *error, size_t error_cap)
{
    char line[KVCONF_MAX_LINE + 1];
    int lineno = 0;
    size_t pos = 0;
    while (pos < len) {
        lineno++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        if (n > KVCONF_MAX_LINE || memchr(text + pos, '\0', n)) {
            snprintf(error, error_cap, "%s:%d: line too long or not text", name, lineno);
            return IOTDM_E_MALFORMED;
        }
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos += n + (nl ? 1 : 0);
        iotdm_result r = parse_line(line, name, lineno, fn, ctx, error, error_cap);
        if (r < 0)
            return r;
    }
    return IOTDM_OK;
}

iotdm_result kvconf_load(const char *path, kvconf_fn fn, void *ctx, char *error, size_t error_cap)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        int err = errno;
        snprintf(error, error_cap, "cannot read config file %s: %s", path, strerror(err));
        return -err;
    }
    char *buf = xmalloc(KVCONF_MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        snprintf(error, error_cap, "out of memory reading %s", path);
        return -ENOMEM;
    }
    size_t len = fread(buf, 1, KVCONF_MAX_FILE + 1, f);
    int failed = ferror(f);
    fclose(f);
    iotdm_result r;
    if (failed) {
        snprintf(error, error_cap, "cannot read config file %s", path);
        r = -EIO;
    } else if (len > KVCONF_MAX_FILE) {
        snprintf(error, error_cap, "config file %s is larger than %d bytes", path, KVCONF_MAX_FILE);
        r = IOTDM_E_TOO_LARGE;
    } else {
        r = kvconf_parse(buf, len, path, fn, ctx, error, error_cap);
    }
    xfree(buf);
    return r;
}

void kvconf_dashed(const char *key, char *out, size_t out_cap)
{
    snprintf(out, out_cap, "%s", key);
    for (char *p = out; *p; p++)
        if (*p == '_')
            *p = '-';
}
