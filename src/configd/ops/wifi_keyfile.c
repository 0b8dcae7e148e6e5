/* NetworkManager keyfiles as configd accepts them, and profile names that are safe file names. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "configd/ops/wifi.h"

bool cfgd_wifi_name_valid(const char *name, cfgd_error *err)
{
    static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789 _.-";
    size_t n = strlen(name);
    /* No '/' in the alphabet and no leading '.': the name cannot leave the folder or hide. */
    bool ok = n > 0 && n <= CFGD_WIFI_NAME_MAX && strspn(name, allowed) == n && name[0] != '.' &&
              name[0] != ' ' && name[n - 1] != ' ';
    if (!ok)
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "\"%.64s\" is not a profile name (1 to %d of A-Z a-z 0-9 space _ . -, not "
                       "starting with . or a space)",
                       name, CFGD_WIFI_NAME_MAX);
    return ok;
}

typedef enum { SEC_NONE, SEC_OTHER, SEC_CONNECTION, SEC_WIFI, SEC_SECURITY } section;

typedef struct {
    const char *p;
    size_t n;
} span;

static span trim(span s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t'))
        s.p++, s.n--;
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t' || s.p[s.n - 1] == '\r'))
        s.n--;
    return s;
}

static bool is(span s, const char *word)
{
    return s.n == strlen(word) && memcmp(s.p, word, s.n) == 0;
}

static int bad(cfgd_error *err, size_t line, const char *why)
{
    cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT, "not a NetworkManager keyfile: line %zu: %s",
                   line, why);
    return -EINVAL;
}

static section section_of(span name)
{
    if (is(name, "connection"))
        return SEC_CONNECTION;
    if (is(name, "wifi") || is(name, "802-11-wireless"))
        return SEC_WIFI;
    if (is(name, "wifi-security") || is(name, "802-11-wireless-security"))
        return SEC_SECURITY;
    return SEC_OTHER;
}

static bool copy_value(char *dst, size_t cap, span v)
{
    if (v.n >= cap)
        return false;
    memcpy(dst, v.p, v.n);
    dst[v.n] = '\0';
    return true;
}

/* Older keyfiles write the SSID as its bytes in decimal ("72;111;109;101;"): decoded when every
 * byte is printable, so the report shows the name a person would recognise. */
static void decode_ssid(char *ssid)
{
    char out[CFGD_WIFI_SSID_MAX + 1];
    size_t n = 0;
    const char *p = ssid;
    if (!isdigit((unsigned char)*p))
        return;
    while (*p) {
        char *end;
        long b = strtol(p, &end, 10);
        if (end == p || b < 0x20 || b > 0x7e || (*end != ';' && *end != '\0'))
            return;
        out[n++] = (char)b;
        p = *end ? end + 1 : end;
    }
    out[n] = '\0';
    memcpy(ssid, out, n + 1);
}

static int key_value(cfgd_wifi_profile *out, section sec, span key, span value, size_t line,
                     bool *type_seen, cfgd_error *err)
{
    if (sec == SEC_CONNECTION && is(key, "id")) {
        if (!copy_value(out->id, sizeof out->id, value))
            return bad(err, line, "the connection id is too long");
    } else if (sec == SEC_CONNECTION && is(key, "type")) {
        *type_seen = true;
        out->is_wifi = is(value, "wifi") || is(value, "802-11-wireless");
    } else if (sec == SEC_CONNECTION && is(key, "autoconnect")) {
        out->autoconnect = !(is(value, "false") || is(value, "0") || is(value, "no"));
    } else if (sec == SEC_WIFI && is(key, "ssid")) {
        if (!copy_value(out->ssid, sizeof out->ssid, value))
            return bad(err, line, "the ssid is too long");
        decode_ssid(out->ssid);
    } else if (sec == SEC_SECURITY && is(key, "key-mgmt")) {
        if (!copy_value(out->security, sizeof out->security, value))
            return bad(err, line, "key-mgmt is too long");
        if (strcmp(out->security, "none") == 0) /* static keys: what NetworkManager calls WEP */
            snprintf(out->security, sizeof out->security, "wep");
    }
    return 0;
}

static int check_bytes(const char *text, size_t len, cfgd_error *err)
{
    size_t line = 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n')
            line++;
        else if (c == 0 || c == 0x7f || (c < 0x20 && c != '\t' && c != '\r'))
            return bad(err, line, "binary data (a NUL or control character)");
    }
    return 0;
}

static int parse_lines(const char *text, size_t len, cfgd_wifi_profile *out, bool *type_seen,
                       cfgd_error *err)
{
    section sec = SEC_NONE;
    size_t line = 0;
    for (const char *p = text, *end = text + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        span s = trim((span){p, (size_t)((nl ? nl : end) - p)});
        p = nl ? nl + 1 : end;
        line++;
        if (s.n == 0 || s.p[0] == '#' || s.p[0] == ';')
            continue;
        if (s.p[0] == '[') {
            if (s.n < 3 || s.p[s.n - 1] != ']' || memchr(s.p + 1, ']', s.n - 2) ||
                memchr(s.p + 1, '[', s.n - 2))
                return bad(err, line, "a malformed [section] header");
            sec = section_of((span){s.p + 1, s.n - 2});
            continue;
        }
        const char *eq = memchr(s.p, '=', s.n);
        if (!eq)
            return bad(err, line, "neither a [section] nor key=value");
        if (sec == SEC_NONE)
            return bad(err, line, "a key before the first [section]");
        span key = trim((span){s.p, (size_t)(eq - s.p)});
        span value = trim((span){eq + 1, (size_t)(s.p + s.n - eq - 1)});
        if (key.n == 0)
            return bad(err, line, "an empty key");
        int r = key_value(out, sec, key, value, line, type_seen, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int cfgd_wifi_keyfile_parse(const char *text, size_t len, cfgd_wifi_profile *out, cfgd_error *err)
{
    memset(out, 0, sizeof *out);
    out->autoconnect = true;
    snprintf(out->security, sizeof out->security, "open");
    if (len == 0)
        return bad(err, 1, "the file is empty");
    if (len > CFGD_WIFI_FILE_MAX) {
        cfgd_error_set(err, CFGD_ERR_TOO_LARGE, "a profile is at most %d bytes",
                       CFGD_WIFI_FILE_MAX);
        return -EFBIG;
    }
    bool type_seen = false;
    int r = check_bytes(text, len, err);
    if (r == 0)
        r = parse_lines(text, len, out, &type_seen, err);
    if (r < 0)
        return r;
    if (!out->id[0]) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "not a NetworkManager keyfile: [connection] has no id");
        return -EINVAL;
    }
    if (!type_seen) {
        cfgd_error_set(err, CFGD_ERR_INVALID_ARGUMENT,
                       "not a NetworkManager keyfile: [connection] has no type");
        return -EINVAL;
    }
    return 0;
}
