/* Twin document rules (docs/protocol.md §5, §6): patch validation, size accounting, merge-patch
 * and $metadata. */
#include "proto/twin.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The key path of the node being checked, for error messages only: truncated, never overflowing. */
typedef struct {
    char text[128];
    size_t len;
    twin_error *err;
} check_ctx;

static void path_push(check_ctx *c, const char *key, size_t index, size_t *saved)
{
    *saved = c->len;
    size_t room = sizeof(c->text) - c->len;
    if (room <= 1)
        return;
    int n;
    if (key) {
        /* Keys may hold anything before they are checked: print at most 40 bytes, and only
         * printable ASCII, so the message stays readable and loggable. */
        char safe[41];
        size_t i = 0;
        for (; key[i] && i < sizeof(safe) - 1; i++)
            safe[i] = (key[i] >= 0x20 && key[i] < 0x7f) ? key[i] : '?';
        safe[i] = '\0';
        n = snprintf(c->text + c->len, room, "%s%s%s", c->len ? "." : "", safe,
                     key[i] ? "..." : "");
    } else {
        n = snprintf(c->text + c->len, room, "[%zu]", index);
    }
    if (n < 0)
        return;
    c->len = (size_t)n >= room ? sizeof(c->text) - 1 : c->len + (size_t)n;
}

static void path_pop(check_ctx *c, size_t saved)
{
    c->len = saved;
    c->text[saved] = '\0';
}

__attribute__((format(printf, 3, 4))) static iotdm_result fail(check_ctx *c, iotdm_result r,
                                                               const char *fmt, ...)
{
    if (!c->err)
        return r;
    char detail[120];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    if (c->len)
        snprintf(c->err->message, sizeof(c->err->message), "%s: %s", c->text, detail);
    else
        snprintf(c->err->message, sizeof(c->err->message), "%s", detail);
    return r;
}

/* Key characters forbidden by docs/protocol.md §6.1: C0 controls, DEL, C1 controls (U+0080..U+009F,
 * which UTF-8 encodes as 0xC2 0x80..0x9F), '.', '$' and space. jansson has already validated the
 * UTF-8. */
static bool key_char_ok(const unsigned char *k, size_t i)
{
    unsigned char ch = k[i];
    if (ch < 0x20 || ch == 0x7f || ch == '.' || ch == '$' || ch == ' ')
        return false;
    if (ch == 0xc2 && k[i + 1] >= 0x80 && k[i + 1] <= 0x9f)
        return false;
    return true;
}

static iotdm_result check_key(check_ctx *c, const char *key)
{
    size_t len = strlen(key);
    if (len == 0)
        return fail(c, IOTDM_E_MALFORMED, "empty property name");
    if (len > TWIN_MAX_KEY_BYTES)
        return fail(c, IOTDM_E_TOO_LARGE, "property name is %zu bytes, more than %d", len,
                    TWIN_MAX_KEY_BYTES);
    for (size_t i = 0; i < len; i++) {
        if (!key_char_ok((const unsigned char *)key, i))
            return fail(c, IOTDM_E_MALFORMED,
                        "property name contains a forbidden character (control, '.', '$' or ' ')");
    }
    return IOTDM_OK;
}

static iotdm_result check_value(check_ctx *c, const json_t *v, int depth, bool in_array);

static iotdm_result check_object(check_ctx *c, const json_t *obj, int depth)
{
    const char *key;
    const json_t *member;
    json_object_foreach((json_t *)obj, key, member)
    {
        if (depth == 0 && (strcmp(key, "$version") == 0 || strcmp(key, "$metadata") == 0))
            continue;
        size_t saved;
        path_push(c, key, 0, &saved);
        iotdm_result r = check_key(c, key);
        if (r == IOTDM_OK)
            r = check_value(c, member, depth + 1, false);
        if (r != IOTDM_OK)
            return r;
        path_pop(c, saved);
    }
    return IOTDM_OK;
}

static iotdm_result check_array(check_ctx *c, const json_t *arr, int depth)
{
    size_t i;
    const json_t *item;
    json_array_foreach(arr, i, item)
    {
        size_t saved;
        path_push(c, NULL, i, &saved);
        iotdm_result r = check_value(c, item, depth + 1, true);
        if (r != IOTDM_OK)
            return r;
        path_pop(c, saved);
    }
    return IOTDM_OK;
}

/* depth is the depth v would have as a container (its parent's depth + 1). */
static iotdm_result check_value(check_ctx *c, const json_t *v, int depth, bool in_array)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
    case JSON_ARRAY:
        if (depth > TWIN_MAX_DEPTH)
            return fail(c, IOTDM_E_TOO_DEEP, "nesting deeper than %d levels", TWIN_MAX_DEPTH);
        return json_is_object(v) ? check_object(c, v, depth) : check_array(c, v, depth);
    case JSON_STRING:
        if (json_string_length(v) > TWIN_MAX_STRING_BYTES)
            return fail(c, IOTDM_E_TOO_LARGE, "string value is %zu bytes, more than %d",
                        json_string_length(v), TWIN_MAX_STRING_BYTES);
        return IOTDM_OK;
    case JSON_INTEGER: {
        json_int_t n = json_integer_value(v);
        if (n > TWIN_MAX_INTEGER || n < TWIN_MIN_INTEGER)
            return fail(c, IOTDM_E_MALFORMED,
                        "integer %" JSON_INTEGER_FORMAT " outside -2^52 .. 2^52-1", n);
        return IOTDM_OK;
    }
    case JSON_NULL:
        if (in_array)
            return fail(c, IOTDM_E_MALFORMED, "arrays cannot contain null");
        return IOTDM_OK;
    case JSON_REAL:
    case JSON_TRUE:
    case JSON_FALSE:
        return IOTDM_OK;
    }
    return fail(c, IOTDM_E_MALFORMED, "unsupported value type");
}

iotdm_result twin_check_patch(const json_t *patch, twin_error *out_err)
{
    check_ctx c = {.len = 0, .err = out_err};
    c.text[0] = '\0';
    if (out_err)
        out_err->message[0] = '\0';
    if (!json_is_object(patch))
        return fail(&c, IOTDM_E_MALFORMED, "a twin patch must be a JSON object");
    return check_object(&c, patch, 0);
}

static size_t value_size(const json_t *v)
{
    size_t total = 0;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        const json_t *member;
        json_object_foreach((json_t *)v, key, member)
        {
            if (key[0] == '$')
                continue;
            total += strlen(key) + value_size(member);
        }
        return total;
    }
    case JSON_ARRAY: {
        size_t i;
        const json_t *item;
        json_array_foreach(v, i, item) total += value_size(item);
        return total;
    }
    case JSON_STRING:
        return json_string_length(v);
    case JSON_INTEGER:
    case JSON_REAL:
        return 8;
    case JSON_TRUE:
    case JSON_FALSE:
        return 4;
    case JSON_NULL:
        return 0;
    }
    return 0;
}

size_t twin_section_size(const json_t *section)
{
    return section ? value_size(section) : 0;
}

iotdm_result twin_check_size(const json_t *section, size_t limit, const char *what,
                             twin_error *out_err)
{
    size_t size = twin_section_size(section);
    if (size <= limit)
        return IOTDM_OK;
    if (out_err)
        snprintf(out_err->message, sizeof(out_err->message), "%s is %zu bytes, more than %zu",
                 what ? what : "twin section", size, limit);
    return IOTDM_E_TOO_LARGE;
}

iotdm_result twin_merge(json_t *target, const json_t *patch)
{
    if (!json_is_object(target) || !json_is_object(patch))
        return IOTDM_E_MALFORMED;
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)patch, key, value)
    {
        if (key[0] == '$')
            continue;
        if (json_is_null(value)) {
            json_object_del(target, key);
            continue;
        }
        if (json_is_object(value)) {
            json_t *child = json_object_get(target, key);
            if (!json_is_object(child)) {
                child = json_object();
                if (!child || json_object_set_new(target, key, child) != 0)
                    return -ENOMEM;
            }
            iotdm_result r = twin_merge(child, value);
            if (r != IOTDM_OK)
                return r;
            continue;
        }
        json_t *copy = json_deep_copy(value);
        if (!copy || json_object_set_new(target, key, copy) != 0)
            return -ENOMEM;
    }
    return IOTDM_OK;
}

static iotdm_result meta_stamp(json_t *node, const char *now_iso, int64_t version)
{
    if (json_object_set_new(node, "$lastUpdated", json_string(now_iso)) != 0)
        return -ENOMEM;
    if (version >= 0 &&
        json_object_set_new(node, "$lastUpdatedVersion", json_integer((json_int_t)version)) != 0)
        return -ENOMEM;
    return IOTDM_OK;
}

/* A fresh metadata node for value: stamped, with children for every member when it is an object. */
static json_t *meta_build(const json_t *value, const char *now_iso, int64_t version)
{
    json_t *node = json_object();
    if (!node || meta_stamp(node, now_iso, version) != IOTDM_OK)
        goto fail;
    if (json_is_object(value)) {
        const char *key;
        const json_t *member;
        json_object_foreach((json_t *)value, key, member)
        {
            if (key[0] == '$' || json_is_null(member))
                continue;
            json_t *child = meta_build(member, now_iso, version);
            if (!child || json_object_set_new(node, key, child) != 0)
                goto fail;
        }
    }
    return node;
fail:
    json_decref(node);
    return NULL;
}

static iotdm_result meta_apply(json_t *meta, const json_t *patch, const char *now_iso,
                               int64_t version)
{
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)patch, key, value)
    {
        if (key[0] == '$')
            continue;
        if (json_is_null(value)) {
            json_object_del(meta, key);
            continue;
        }
        json_t *child = json_object_get(meta, key);
        /* An object patch merges into an existing object, so its untouched children keep their
         * metadata; anything else replaces the member whole, children and all. */
        if (json_is_object(value) && json_is_object(child)) {
            iotdm_result r = meta_stamp(child, now_iso, version);
            if (r == IOTDM_OK)
                r = meta_apply(child, value, now_iso, version);
            if (r != IOTDM_OK)
                return r;
            continue;
        }
        child = meta_build(value, now_iso, version);
        if (!child || json_object_set_new(meta, key, child) != 0)
            return -ENOMEM;
    }
    return IOTDM_OK;
}

iotdm_result twin_metadata_update(json_t *meta, const json_t *patch_or_doc, const char *now_iso,
                                  int64_t version, bool replace)
{
    if (!json_is_object(meta) || !json_is_object(patch_or_doc) || !now_iso)
        return IOTDM_E_MALFORMED;
    if (replace) {
        json_t *fresh = meta_build(patch_or_doc, now_iso, version);
        if (!fresh)
            return -ENOMEM;
        /* Swap contents rather than the object: the caller holds meta. */
        json_object_clear(meta);
        int rc = json_object_update(meta, fresh);
        json_decref(fresh);
        return rc == 0 ? IOTDM_OK : -ENOMEM;
    }
    iotdm_result r = meta_stamp(meta, now_iso, version);
    if (r != IOTDM_OK)
        return r;
    return meta_apply(meta, patch_or_doc, now_iso, version);
}

void twin_format_time(int64_t ms, char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return;
    /* Floor division so that times before 1970 still get a millisecond part in 0..999. */
    int64_t secs = ms / 1000;
    int64_t frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, cap, "0001-01-01T00:00:00.000Z");
        return;
    }
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}
