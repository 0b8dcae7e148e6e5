/* Azure IoT Hub and DPS MQTT names: parsing what devices send, formatting what the hub sends
 * (docs/protocol.md; the sections cited below are its own). */
#include "proto/azure_topics.h"

#include <string.h>

/* ---- small helpers ----------------------------------------------------------------------- */

/* A read position in a topic or user name; every step checks the end. */
typedef struct {
    const char *p;
    const char *end;
} cursor;

static size_t left(const cursor *c)
{
    return (size_t)(c->end - c->p);
}

/* Consumes lit when the input starts with it. */
static bool eat(cursor *c, const char *lit)
{
    size_t n = strlen(lit);
    if (left(c) < n || memcmp(c->p, lit, n) != 0)
        return false;
    c->p += n;
    return true;
}

/* Consumes a non-empty segment and the '/' that must end it. */
static bool eat_segment(cursor *c, az_span *out)
{
    const char *slash = memchr(c->p, '/', left(c));
    if (!slash || slash == c->p)
        return false;
    out->ptr = c->p;
    out->len = (size_t)(slash - c->p);
    c->p = slash + 1;
    return true;
}

static az_span rest(const cursor *c)
{
    return (az_span){c->p, left(c)};
}

static bool span_is(az_span s, const char *lit)
{
    size_t n = lit ? strlen(lit) : 0;
    return s.len == n && (n == 0 || memcmp(s.ptr, lit, n) == 0);
}

/* Decimal digits only (no sign, no spaces), at most max. */
static bool parse_uint(az_span s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned d = (unsigned)(unsigned char)s.ptr[i] - '0';
        if (d > 9 || v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* ---- property bags ----------------------------------------------------------------------- */

void az_propbag_iter_init(az_propbag_iter *it, const char *bag, size_t len)
{
    it->s = bag;
    it->len = bag ? len : 0;
    it->pos = 0;
}

bool az_propbag_next(az_propbag_iter *it, az_span *out_name, az_span *out_value,
                     bool *out_has_value)
{
    while (it->pos < it->len && it->s[it->pos] == '&')
        it->pos++;
    if (it->pos >= it->len)
        return false;
    const char *start = it->s + it->pos;
    size_t seg_len = it->len - it->pos;
    const char *amp = memchr(start, '&', seg_len);
    if (amp)
        seg_len = (size_t)(amp - start);
    it->pos += seg_len;

    const char *eq = memchr(start, '=', seg_len);
    if (eq) {
        *out_name = (az_span){start, (size_t)(eq - start)};
        *out_value = (az_span){eq + 1, seg_len - out_name->len - 1};
        *out_has_value = true;
    } else {
        *out_name = (az_span){start, seg_len};
        *out_value = (az_span){start + seg_len, 0};
        *out_has_value = false;
    }
    return true;
}

bool az_propbag_name_is(az_span name, const char *lit)
{
    size_t i = 0;
    /* Decoding on the fly keeps this free of buffers; a '%' without two hex digits stays literal,
     * as lenient URL decoders treat it. */
    for (; *lit; lit++) {
        if (i >= name.len)
            return false;
        int c = (unsigned char)name.ptr[i];
        if (c == '%' && name.len - i >= 3 && hex_digit(name.ptr[i + 1]) >= 0 &&
            hex_digit(name.ptr[i + 2]) >= 0) {
            c = hex_digit(name.ptr[i + 1]) * 16 + hex_digit(name.ptr[i + 2]);
            i += 3;
        } else {
            i++;
        }
        if (c != (unsigned char)*lit)
            return false;
    }
    return i == name.len;
}

/* The query keys the topics below carry. Duplicates are refused: two $rid values would leave it
 * open which one the answer must echo. */
typedef struct {
    bool has_rid, has_version, has_op, has_retry;
    az_span rid, op;
    uint64_t version, retry;
} query;

static bool set_once(bool *seen)
{
    if (*seen)
        return false;
    *seen = true;
    return true;
}

static bool parse_query(az_span q, query *out)
{
    az_propbag_iter it;
    az_span name, value;
    bool has_value;
    memset(out, 0, sizeof *out);
    az_propbag_iter_init(&it, q.ptr, q.len);
    while (az_propbag_next(&it, &name, &value, &has_value)) {
        if (az_propbag_name_is(name, "$rid")) {
            if (!set_once(&out->has_rid))
                return false;
            out->rid = value;
        } else if (az_propbag_name_is(name, "$version")) {
            if (!set_once(&out->has_version) || !parse_uint(value, INT64_MAX, &out->version))
                return false;
        } else if (az_propbag_name_is(name, "operationId")) {
            if (!set_once(&out->has_op))
                return false;
            out->op = value;
        } else if (az_propbag_name_is(name, "retry-after")) {
            if (!set_once(&out->has_retry) || !parse_uint(value, INT32_MAX, &out->retry))
                return false;
        }
    }
    return true;
}

/* ---- device -> hub topics ---------------------------------------------------------------- */

/* devices/{d}[/modules/{m}]/messages/events[/[{bag}[/]]] */
static bool parse_telemetry(cursor *c, az_publish_topic *out)
{
    if (!eat_segment(c, &out->device_id))
        return false;
    if (eat(c, "modules/") && !eat_segment(c, &out->module_id))
        return false;
    if (!eat(c, "messages/events"))
        return false;
    if (left(c) > 0 && !eat(c, "/"))
        return false;
    out->property_bag = rest(c);
    /* Node's module output messages end the bag with '/'; a bag cannot end in '/' otherwise. */
    if (out->property_bag.len > 0 && out->property_bag.ptr[out->property_bag.len - 1] == '/')
        out->property_bag.len--;
    out->kind = AZ_PUB_TELEMETRY;
    return true;
}

/* Reads "{status}/?" (method responses, twin and DPS responses): 0..65535. */
static bool parse_status(cursor *c, int *out)
{
    const char *slash = memchr(c->p, '/', left(c));
    uint64_t v;
    if (!slash || !parse_uint((az_span){c->p, (size_t)(slash - c->p)}, 65535, &v))
        return false;
    c->p = slash;
    if (!eat(c, "/?"))
        return false;
    *out = (int)v;
    return true;
}

static bool parse_iothub(cursor *c, az_publish_topic *out)
{
    query q;
    if (eat(c, "twin/GET/?"))
        out->kind = AZ_PUB_TWIN_GET;
    else if (eat(c, "twin/PATCH/properties/reported/?"))
        out->kind = AZ_PUB_TWIN_PATCH_REPORTED;
    else if (eat(c, "methods/res/") && parse_status(c, &out->status))
        out->kind = AZ_PUB_METHOD_RESPONSE;
    else
        return false;
    if (!parse_query(rest(c), &q) || !q.has_rid || q.rid.len == 0)
        return false;
    out->rid = q.rid;
    if (out->kind == AZ_PUB_TWIN_PATCH_REPORTED) {
        out->has_version = q.has_version;
        out->version = (int64_t)q.version;
    }
    return true;
}

static bool parse_dps(cursor *c, az_publish_topic *out)
{
    query q;
    if (eat(c, "PUT/iotdps-register/?"))
        out->kind = AZ_PUB_DPS_REGISTER;
    else if (eat(c, "GET/iotdps-get-operationstatus/?"))
        out->kind = AZ_PUB_DPS_STATUS;
    else
        return false;
    if (!parse_query(rest(c), &q))
        return false;
    out->rid = q.rid;
    if (out->kind == AZ_PUB_DPS_STATUS) {
        if (!q.has_op || q.op.len == 0)
            return false;
        out->operation_id = q.op;
    }
    return true;
}

iotdm_result az_parse_publish_topic(const char *topic, size_t len, az_publish_topic *out)
{
    cursor c = {topic, topic + len};
    bool ok = false;
    memset(out, 0, sizeof *out);
    if (eat(&c, "devices/"))
        ok = parse_telemetry(&c, out);
    else if (eat(&c, "$iothub/"))
        ok = parse_iothub(&c, out);
    else if (eat(&c, "$dps/registrations/"))
        ok = parse_dps(&c, out);
    if (!ok) {
        memset(out, 0, sizeof *out);
        return IOTDM_E_PROTOCOL;
    }
    return IOTDM_OK;
}

/* ---- subscription filters ---------------------------------------------------------------- */

/* How one identity segment of a filter relates to the connection. */
typedef enum { SEG_REFUSED, SEG_OWN, SEG_FOREIGN } seg_match;

/* Consumes one segment of a filter and its '/'; *out_more is false when the filter ends there.
 * '+' stands for the connection's own id when it has one (a device connection has no module, so
 * "modules/+" reaches for other identities). An empty segment or '#' names nobody in particular:
 * the hub never delivers on such a filter, so it is merely refused (0x80), not taken as an
 * attack. */
static seg_match id_segment(cursor *c, const char *own, bool *out_more)
{
    const char *slash = memchr(c->p, '/', left(c));
    az_span seg = {c->p, slash ? (size_t)(slash - c->p) : left(c)};
    bool has_own = own && *own;
    c->p = slash ? slash + 1 : c->end;
    *out_more = slash != NULL;
    if (seg.len == 0 || span_is(seg, "#"))
        return SEG_REFUSED;
    if (has_own && (span_is(seg, "+") || span_is(seg, own)))
        return SEG_OWN;
    return SEG_FOREIGN;
}

az_sub_kind az_classify_filter(const char *filter, size_t len, const char *device_id,
                               const char *module_id, bool *out_foreign)
{
    az_span f = {filter, len};
    cursor c = {filter, filter + len};
    bool is_module = module_id && *module_id;
    bool more;
    seg_match m;

    *out_foreign = false;
    if (span_is(f, "$iothub/twin/res/#"))
        return AZ_SUB_TWIN_RESPONSES;
    if (span_is(f, "$iothub/twin/PATCH/properties/desired/#"))
        return AZ_SUB_TWIN_DESIRED;
    if (span_is(f, "$iothub/methods/POST/#"))
        return AZ_SUB_METHODS;
    if (span_is(f, "$dps/registrations/res/#"))
        return AZ_SUB_DPS_RESPONSES;
    if (!eat(&c, "devices/"))
        return AZ_SUB_INVALID;

    m = id_segment(&c, device_id, &more);
    if (m != SEG_OWN) {
        *out_foreign = m == SEG_FOREIGN;
        return AZ_SUB_INVALID;
    }
    if (!more)
        return AZ_SUB_INVALID;
    /* Modules get no C2D (§4.7); their own device's queue is not theirs to drain. */
    if (span_is(rest(&c), "messages/devicebound/#"))
        return is_module ? AZ_SUB_INVALID : AZ_SUB_C2D;
    if (!eat(&c, "modules/"))
        return AZ_SUB_INVALID;
    m = id_segment(&c, module_id, &more);
    if (m != SEG_OWN) {
        *out_foreign = m == SEG_FOREIGN;
        return AZ_SUB_INVALID;
    }
    if (more && (span_is(rest(&c), "inputs/#") || span_is(rest(&c), "#")))
        return AZ_SUB_MODULE_INPUTS;
    return AZ_SUB_INVALID;
}

/* ---- CONNECT user names ------------------------------------------------------------------ */

static void parse_user_query(az_span q, az_username *out)
{
    az_propbag_iter it;
    az_span name, value;
    bool has_value;
    az_propbag_iter_init(&it, q.ptr, q.len);
    /* The first occurrence wins; unknown keys (auth-chain, product info, ...) are ignored. */
    while (az_propbag_next(&it, &name, &value, &has_value)) {
        az_span *dst = NULL;
        if (az_propbag_name_is(name, "api-version"))
            dst = &out->api_version;
        else if (az_propbag_name_is(name, "model-id"))
            dst = &out->model_id;
        else if (az_propbag_name_is(name, "DeviceClientType") ||
                 az_propbag_name_is(name, "ClientVersion"))
            dst = &out->client_type;
        if (dst && !dst->ptr)
            *dst = value;
    }
}

iotdm_result az_parse_username(const char *username, size_t len, az_username *out)
{
    cursor c = {username, username + len};
    az_span first, second, third;
    memset(out, 0, sizeof *out);
    if (!eat_segment(&c, &first))
        return IOTDM_E_MALFORMED;

    /* DPS: {scope}/registrations/{regId}/api-version=... - no '?' before the query (§7.2). */
    cursor dps = c;
    if (eat(&dps, "registrations/") && eat_segment(&dps, &second) && second.ptr[0] != '?' &&
        (left(&dps) == 0 || *dps.p != '?')) {
        out->kind = AZ_USER_DPS;
        out->id_scope = first;
        out->registration_id = second;
        parse_user_query(rest(&dps), out);
        return IOTDM_OK;
    }

    /* Hub: {host}/{device}/?... or {host}/{device}/{module}/?... */
    if (!eat_segment(&c, &second))
        return IOTDM_E_MALFORMED;
    if (!eat(&c, "?")) {
        if (!eat_segment(&c, &third) || !eat(&c, "?"))
            return IOTDM_E_MALFORMED;
        out->module_id = third;
    }
    out->kind = AZ_USER_HUB;
    out->host = first;
    out->device_id = second;
    parse_user_query(rest(&c), out);
    return IOTDM_OK;
}

/* ---- identifiers ------------------------------------------------------------------------- */

static bool is_alnum(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

static bool in_set(unsigned char ch, const char *set)
{
    return ch != 0 && strchr(set, ch) != NULL;
}

bool az_valid_device_id(const char *id, size_t len)
{
    if (!id || len == 0 || len > AZ_MAX_ID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)id[i];
        if (!is_alnum(ch) && !in_set(ch, "-.%_*?!(),:=@$'"))
            return false;
    }
    return true;
}

bool az_valid_method_name(const char *name, size_t len)
{
    if (!name || len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch <= 0x20 || ch >= 0x7F || in_set(ch, "$()<>@,;:\\\"/[]?={}+#"))
            return false;
    }
    return true;
}

/* ---- formatting -------------------------------------------------------------------------- */

/* An append-only writer: the first write that does not fit (with its NUL) poisons it, so the
 * formatters below can append blindly and check once. */
typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    bool ok;
} writer;

static void put(writer *w, const char *s, size_t n)
{
    if (!w->ok || w->cap - w->len <= n) {
        w->ok = false;
        return;
    }
    if (n)
        memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void puts_(writer *w, const char *s)
{
    put(w, s ? s : "", s ? strlen(s) : 0);
}

static void put_int(writer *w, int64_t v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    /* Work with the magnitude as unsigned so INT64_MIN needs no special case. */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    put(w, tmp + i, sizeof tmp - i);
}

static size_t finish(writer *w)
{
    if (!w->ok || w->cap == 0) {
        if (w->cap > 0)
            w->buf[0] = '\0';
        return 0;
    }
    w->buf[w->len] = '\0';
    return w->len;
}

static writer writer_init(char *buf, size_t cap)
{
    return (writer){buf, buf ? cap : 0, 0, true};
}

size_t az_format_twin_response(char *buf, size_t cap, int status, const char *rid, size_t rid_len,
                               int64_t version)
{
    writer w = writer_init(buf, cap);
    puts_(&w, "$iothub/twin/res/");
    put_int(&w, status);
    puts_(&w, "/?$rid=");
    put(&w, rid, rid_len);
    if (version >= 0) {
        puts_(&w, "&$version=");
        put_int(&w, version);
    }
    return finish(&w);
}

size_t az_format_desired_patch(char *buf, size_t cap, int64_t version)
{
    writer w = writer_init(buf, cap);
    puts_(&w, "$iothub/twin/PATCH/properties/desired/?$version=");
    put_int(&w, version);
    return finish(&w);
}

size_t az_format_method_request(char *buf, size_t cap, const char *method, size_t method_len,
                                const char *rid, size_t rid_len)
{
    writer w = writer_init(buf, cap);
    /* $rid last: the C SDK takes everything after "/?$rid=" as the request id (§4.5). */
    puts_(&w, "$iothub/methods/POST/");
    put(&w, method, method_len);
    puts_(&w, "/?$rid=");
    put(&w, rid, rid_len);
    return finish(&w);
}

size_t az_format_c2d_topic(char *buf, size_t cap, const char *device_id, const char *encoded_bag)
{
    writer w = writer_init(buf, cap);
    if (!device_id || !*device_id)
        w.ok = false;
    /* Node dispatches C2D on "devices/.../messages/devicebound/..." only: keep the slash. */
    puts_(&w, "devices/");
    puts_(&w, device_id);
    puts_(&w, "/messages/devicebound/");
    puts_(&w, encoded_bag);
    return finish(&w);
}

size_t az_format_dps_response(char *buf, size_t cap, int status, const char *rid, size_t rid_len,
                              int retry_after)
{
    writer w = writer_init(buf, cap);
    puts_(&w, "$dps/registrations/res/");
    put_int(&w, status);
    puts_(&w, "/?$rid=");
    put(&w, rid, rid_len);
    if (retry_after >= 0) {
        puts_(&w, "&retry-after=");
        put_int(&w, retry_after);
    }
    return finish(&w);
}

size_t az_format_telemetry_topic(char *buf, size_t cap, const char *device_id,
                                 const char *module_id, const char *encoded_bag)
{
    writer w = writer_init(buf, cap);
    if (!device_id || !*device_id)
        w.ok = false;
    puts_(&w, "devices/");
    puts_(&w, device_id);
    if (module_id && *module_id) {
        puts_(&w, "/modules/");
        puts_(&w, module_id);
    }
    puts_(&w, "/messages/events/");
    puts_(&w, encoded_bag);
    return finish(&w);
}

size_t az_format_twin_get(char *buf, size_t cap, const char *rid, size_t rid_len)
{
    writer w = writer_init(buf, cap);
    puts_(&w, "$iothub/twin/GET/?$rid=");
    put(&w, rid, rid_len);
    return finish(&w);
}

size_t az_format_twin_patch_reported(char *buf, size_t cap, const char *rid, size_t rid_len,
                                     int64_t version)
{
    writer w = writer_init(buf, cap);
    puts_(&w, "$iothub/twin/PATCH/properties/reported/?$rid=");
    put(&w, rid, rid_len);
    if (version >= 0) {
        puts_(&w, "&$version=");
        put_int(&w, version);
    }
    return finish(&w);
}

size_t az_format_method_response(char *buf, size_t cap, int status, const char *rid, size_t rid_len)
{
    writer w = writer_init(buf, cap);
    puts_(&w, "$iothub/methods/res/");
    put_int(&w, status);
    puts_(&w, "/?$rid=");
    put(&w, rid, rid_len);
    return finish(&w);
}

size_t az_format_username(char *buf, size_t cap, const char *host, const char *device_id,
                          const char *module_id, const char *api_version,
                          const char *encoded_client_type, const char *encoded_model_id)
{
    writer w = writer_init(buf, cap);
    if (!host || !*host || !device_id || !*device_id)
        w.ok = false;
    puts_(&w, host);
    puts_(&w, "/");
    puts_(&w, device_id);
    if (module_id && *module_id) {
        puts_(&w, "/");
        puts_(&w, module_id);
    }
    puts_(&w, "/?api-version=");
    puts_(&w, api_version);
    if (encoded_client_type) {
        puts_(&w, "&DeviceClientType=");
        puts_(&w, encoded_client_type);
    }
    if (encoded_model_id) {
        puts_(&w, "&model-id=");
        puts_(&w, encoded_model_id);
    }
    return finish(&w);
}

/* ---- hub -> device topics (device side) -------------------------------------------------- */

iotdm_result az_parse_hub_topic(const char *topic, size_t len, az_hub_topic *out)
{
    cursor c = {topic, topic + len};
    query q;
    bool need_rid = true;
    memset(out, 0, sizeof *out);
    out->retry_after = -1;

    if (eat(&c, "devices/")) {
        if (!eat_segment(&c, &out->device_id) || !eat(&c, "messages/devicebound"))
            goto bad;
        if (left(&c) > 0 && !eat(&c, "/"))
            goto bad;
        out->property_bag = rest(&c);
        out->kind = AZ_HUB_C2D;
        return IOTDM_OK;
    }
    if (eat(&c, "$iothub/twin/res/") && parse_status(&c, &out->status)) {
        out->kind = AZ_HUB_TWIN_RESPONSE;
    } else if (eat(&c, "$iothub/twin/PATCH/properties/desired/?")) {
        out->kind = AZ_HUB_TWIN_DESIRED;
        need_rid = false;
    } else if (eat(&c, "$iothub/methods/POST/")) {
        const char *p = c.p;
        while (left(&c) >= 2 && !(c.p[0] == '/' && c.p[1] == '?'))
            c.p++;
        if (left(&c) < 2 || c.p == p)
            goto bad;
        out->method_name = (az_span){p, (size_t)(c.p - p)};
        c.p += 2;
        out->kind = AZ_HUB_METHOD_REQUEST;
    } else if (eat(&c, "$dps/registrations/res/") && parse_status(&c, &out->status)) {
        out->kind = AZ_HUB_DPS_RESPONSE;
    } else {
        goto bad;
    }
    if (!parse_query(rest(&c), &q) || (need_rid && (!q.has_rid || q.rid.len == 0)))
        goto bad;
    if (out->kind == AZ_HUB_TWIN_DESIRED && !q.has_version)
        goto bad;
    out->rid = q.rid;
    out->has_version = q.has_version;
    out->version = (int64_t)q.version;
    if (q.has_retry)
        out->retry_after = (int)q.retry;
    return IOTDM_OK;
bad:
    memset(out, 0, sizeof *out);
    out->retry_after = -1;
    return IOTDM_E_PROTOCOL;
}
