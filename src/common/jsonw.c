/* JSON object text writer: see jsonw.h. */
#include "common/jsonw.h"

#include <stdint.h>
#include <string.h>

#include "common/alloc.h"

void jsonw_begin(jsonw *w, char *buf, size_t cap)
{
    *w = (jsonw){.data = buf, .cap = buf ? cap : 0, .empty = true};
    if (w->cap)
        w->data[w->len++] = '{';
    else
        w->failed = true;
}

static bool reserve(jsonw *w, size_t more)
{
    if (w->failed)
        return false;
    if (w->len + more <= w->cap)
        return true;
    size_t cap = w->cap * 2 > w->len + more ? w->cap * 2 : w->len + more + 256;
    char *d = w->heap ? xrealloc(w->data, cap) : xmalloc(cap);
    if (!d) {
        w->failed = true;
        return false;
    }
    if (!w->heap)
        memcpy(d, w->data, w->len);
    w->data = d;
    w->cap = cap;
    w->heap = true;
    return true;
}

bool utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0)
            n = 1, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            n = 2, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0)
            n = 3, cp = c & 0x07, min = 0x10000;
        else
            return false;
        if (len - i <= n)
            return false; /* truncated sequence */
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

/* Appends s as a JSON string literal. */
static void put_string(jsonw *w, const char *s, size_t len)
{
    if (!utf8_valid(s, len)) {
        w->failed = true;
        return;
    }
    /* Worst case: every byte a \u00XX escape. */
    if (!reserve(w, len * 6 + 2))
        return;
    static const char hex[] = "0123456789abcdef";
    char *o = w->data + w->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            static const char short_esc[] = {
                ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'};
            *o++ = '\\';
            if (c < sizeof short_esc && short_esc[c]) {
                *o++ = short_esc[c];
            } else {
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            }
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    w->len = (size_t)(o - w->data);
}

void jsonw_string(jsonw *w, const char *name, size_t name_len, const char *value, size_t value_len)
{
    if (!w->empty && reserve(w, 1))
        w->data[w->len++] = ',';
    w->empty = false;
    put_string(w, name, name_len);
    if (reserve(w, 1))
        w->data[w->len++] = ':';
    put_string(w, value, value_len);
}

bool jsonw_end(jsonw *w)
{
    if (reserve(w, 1))
        w->data[w->len++] = '}';
    return !w->failed;
}

void jsonw_free(jsonw *w)
{
    if (w->heap)
        xfree(w->data);
    w->data = NULL;
    w->heap = false;
}
