/* MQTT 3.1.1 codec: framing and decoding of untrusted bytes, encoding into caller buffers. */
#include "proto/mqtt.h"

#include <string.h>

/* A bounds-checked cursor over one packet body. Every read fails rather than run past the end,
 * so the decoders below never need their own length arithmetic. */
typedef struct {
    const uint8_t *p;
    size_t len;
    size_t pos;
} reader;

static bool rd_u8(reader *r, uint8_t *out)
{
    if (r->len - r->pos < 1)
        return false;
    *out = r->p[r->pos++];
    return true;
}

static bool rd_u16(reader *r, uint16_t *out)
{
    if (r->len - r->pos < 2)
        return false;
    *out = (uint16_t)((r->p[r->pos] << 8) | r->p[r->pos + 1]);
    r->pos += 2;
    return true;
}

/* A 2-byte length followed by that many bytes (strings and binary data alike). */
static bool rd_string(reader *r, mqtt_span *out)
{
    uint16_t n;
    if (!rd_u16(r, &n) || r->len - r->pos < n)
        return false;
    out->ptr = r->p + r->pos;
    out->len = n;
    r->pos += n;
    return true;
}

const char *mqtt_packet_type_name(mqtt_packet_type type)
{
    static const char *const names[] = {"?",         "CONNECT",  "CONNACK",     "PUBLISH",
                                        "PUBACK",    "PUBREC",   "PUBREL",      "PUBCOMP",
                                        "SUBSCRIBE", "SUBACK",   "UNSUBSCRIBE", "UNSUBACK",
                                        "PINGREQ",   "PINGRESP", "DISCONNECT"};
    if ((unsigned)type >= sizeof names / sizeof names[0])
        return "?";
    return names[type];
}

bool mqtt_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == 0)
                return false;
            i++;
            continue;
        }
        size_t extra;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            extra = 1, cp = c & 0x1Fu, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            extra = 2, cp = c & 0x0Fu, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            extra = 3, cp = c & 0x07u, min = 0x10000;
        } else {
            return false;
        }
        if (len - i - 1 < extra)
            return false;
        for (size_t k = 1; k <= extra; k++) {
            uint8_t b = s[i + k];
            if ((b & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (b & 0x3Fu);
        }
        /* Overlong forms would let a NUL or a '/' hide from the checks above and later. */
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += extra + 1;
    }
    return true;
}

/* A topic name (PUBLISH, will): non-empty, UTF-8, no wildcards (§4.7.3, §3.3.2.1). */
static bool topic_name_valid(mqtt_span t)
{
    return t.len > 0 && mqtt_utf8_valid(t.ptr, t.len) && !memchr(t.ptr, '+', t.len) &&
           !memchr(t.ptr, '#', t.len);
}

static bool span_is(mqtt_span s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

/* The reserved flags each type must carry (§2.2.2); -1 for PUBLISH, whose flags mean something. */
static int required_flags(unsigned type)
{
    switch (type) {
    case MQTT_PUBLISH:
        return -1;
    case MQTT_PUBREL:
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return 2;
    default:
        return 0;
    }
}

/* Body length of the packets whose size the protocol fixes; -1 for variable ones. */
static long fixed_body_len(unsigned type)
{
    switch (type) {
    case MQTT_CONNACK:
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        return 2;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
    case MQTT_DISCONNECT:
        return 0;
    default:
        return -1;
    }
}

iotdm_result mqtt_frame(const uint8_t *buf, size_t len, size_t max_packet, mqtt_fixed_header *out)
{
    if (len < 1)
        return IOTDM_E_INCOMPLETE;
    unsigned type = buf[0] >> 4;
    uint8_t flags = buf[0] & 0x0F;
    if (type == 0 || type == 15)
        return IOTDM_E_MALFORMED;
    int want = required_flags(type);
    if (want >= 0 && flags != want)
        return IOTDM_E_MALFORMED;

    /* The length is checked byte by byte so that a hostile peer is refused after at most five
     * bytes, whatever it claims to send next. */
    size_t remaining = 0;
    size_t i = 1;
    for (;;) {
        if (i >= len)
            return IOTDM_E_INCOMPLETE;
        uint8_t b = buf[i];
        remaining |= (size_t)(b & 0x7F) << (7 * (i - 1));
        i++;
        if (!(b & 0x80))
            break;
        if (i > 4)
            return IOTDM_E_MALFORMED;
    }
    long fixed = fixed_body_len(type);
    if (fixed >= 0 && remaining != (size_t)fixed)
        return IOTDM_E_MALFORMED;
    if (remaining > max_packet)
        return IOTDM_E_TOO_LARGE;
    out->type = (mqtt_packet_type)type;
    out->flags = flags;
    out->header_len = i;
    out->remaining_len = remaining;
    if (len - i < remaining)
        return IOTDM_E_INCOMPLETE;
    return IOTDM_OK;
}

iotdm_result mqtt_decode_connect(const uint8_t *body, size_t len, mqtt_connect *out)
{
    reader r = {body, len, 0};
    uint8_t flags;
    memset(out, 0, sizeof *out);
    if (!rd_string(&r, &out->protocol_name) || !rd_u8(&r, &out->protocol_level))
        return IOTDM_E_MALFORMED;
    /* MQTT 3.1 ("MQIsdp"/3) and 5 both land here; the hub answers CONNACK 1 to either. */
    if (!span_is(out->protocol_name, "MQTT") || out->protocol_level != 4)
        return IOTDM_E_UNSUPPORTED;
    if (!rd_u8(&r, &flags) || !rd_u16(&r, &out->keepalive))
        return IOTDM_E_MALFORMED;

    out->clean_session = flags & 0x02;
    out->has_will = flags & 0x04;
    out->will_qos = (uint8_t)((flags >> 3) & 3);
    out->will_retain = flags & 0x20;
    out->has_password = flags & 0x40;
    out->has_username = flags & 0x80;
    if ((flags & 0x01) || out->will_qos == 3)
        return IOTDM_E_MALFORMED;
    if (!out->has_will && (out->will_qos != 0 || out->will_retain))
        return IOTDM_E_MALFORMED;
    if (out->has_password && !out->has_username)
        return IOTDM_E_MALFORMED;

    if (!rd_string(&r, &out->client_id) || !mqtt_utf8_valid(out->client_id.ptr, out->client_id.len))
        return IOTDM_E_MALFORMED;
    if (out->has_will) {
        if (!rd_string(&r, &out->will_topic) || !topic_name_valid(out->will_topic) ||
            !rd_string(&r, &out->will_payload))
            return IOTDM_E_MALFORMED;
    }
    if (out->has_username) {
        if (!rd_string(&r, &out->username) ||
            !mqtt_utf8_valid(out->username.ptr, out->username.len))
            return IOTDM_E_MALFORMED;
    }
    /* The password is binary data: no UTF-8 rule applies. */
    if (out->has_password && !rd_string(&r, &out->password))
        return IOTDM_E_MALFORMED;
    if (r.pos != r.len)
        return IOTDM_E_MALFORMED;
    return IOTDM_OK;
}

iotdm_result mqtt_decode_publish(uint8_t flags, const uint8_t *body, size_t len, mqtt_publish *out)
{
    reader r = {body, len, 0};
    memset(out, 0, sizeof *out);
    out->qos = (uint8_t)((flags >> 1) & 3);
    out->dup = flags & 0x08;
    out->retain = flags & 0x01;
    if (out->qos == 3)
        return IOTDM_E_MALFORMED;
    if (!rd_string(&r, &out->topic) || !topic_name_valid(out->topic))
        return IOTDM_E_MALFORMED;
    if (out->qos > 0 && (!rd_u16(&r, &out->packet_id) || out->packet_id == 0))
        return IOTDM_E_MALFORMED;
    out->payload.ptr = body + r.pos;
    out->payload.len = len - r.pos;
    return IOTDM_OK;
}

iotdm_result mqtt_decode_packet_id(const uint8_t *body, size_t len, uint16_t *out_id)
{
    reader r = {body, len, 0};
    uint16_t id;
    /* Id 0 is never issued (§2.3.1), so an ack for it cannot match anything in flight. */
    if (len != 2 || !rd_u16(&r, &id) || id == 0)
        return IOTDM_E_MALFORMED;
    *out_id = id;
    return IOTDM_OK;
}

iotdm_result mqtt_decode_connack(const uint8_t *body, size_t len, bool *out_session_present,
                                 uint8_t *out_return_code)
{
    if (len != 2 || (body[0] & 0xFE) != 0)
        return IOTDM_E_MALFORMED;
    *out_session_present = body[0] & 1;
    *out_return_code = body[1];
    return IOTDM_OK;
}

iotdm_result mqtt_decode_suback(const uint8_t *body, size_t len, uint16_t *out_packet_id,
                                mqtt_span *out_codes)
{
    reader r = {body, len, 0};
    uint16_t id;
    if (!rd_u16(&r, &id) || id == 0 || r.pos == len)
        return IOTDM_E_MALFORMED;
    for (size_t i = r.pos; i < len; i++) {
        if (body[i] > 2 && body[i] != MQTT_SUBACK_FAILURE)
            return IOTDM_E_MALFORMED;
    }
    *out_packet_id = id;
    out_codes->ptr = body + r.pos;
    out_codes->len = len - r.pos;
    return IOTDM_OK;
}

/* Reads one filter (and its options byte for SUBSCRIBE), checking everything about it. */
static bool rd_filter(reader *r, bool is_subscribe, mqtt_span *out_filter, uint8_t *out_qos)
{
    uint8_t options = 0;
    if (!rd_string(r, out_filter) || out_filter->len == 0 ||
        !mqtt_utf8_valid(out_filter->ptr, out_filter->len))
        return false;
    if (is_subscribe && (!rd_u8(r, &options) || (options & 0xFC) || (options & 3) == 3))
        return false;
    *out_qos = options;
    return true;
}

iotdm_result mqtt_sub_iter_init(mqtt_sub_iter *it, bool is_subscribe, const uint8_t *body,
                                size_t len, uint16_t *out_packet_id)
{
    reader r = {body, len, 0};
    uint16_t id;
    mqtt_span filter;
    uint8_t qos;
    memset(it, 0, sizeof *it);
    if (!rd_u16(&r, &id) || id == 0 || r.pos == len)
        return IOTDM_E_MALFORMED;
    /* Validate every filter up front so the caller never acts on half a packet. */
    while (r.pos < len) {
        if (!rd_filter(&r, is_subscribe, &filter, &qos))
            return IOTDM_E_MALFORMED;
    }
    it->body = body;
    it->len = len;
    it->pos = 2;
    it->is_subscribe = is_subscribe;
    *out_packet_id = id;
    return IOTDM_OK;
}

bool mqtt_sub_iter_next(mqtt_sub_iter *it, mqtt_span *out_filter, uint8_t *out_qos)
{
    if (!it->body || it->pos >= it->len)
        return false;
    reader r = {it->body, it->len, it->pos};
    if (!rd_filter(&r, it->is_subscribe, out_filter, out_qos)) {
        it->pos = it->len; /* only reachable with an iterator not set up by init */
        return false;
    }
    it->pos = r.pos;
    return true;
}

/* ---- encoders ---------------------------------------------------------------------------- */

static size_t varint_len(size_t v)
{
    return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

/* Total packet size for a remaining length, or 0 when MQTT cannot express it. */
static size_t packet_len(size_t remaining)
{
    if (remaining > MQTT_MAX_REMAINING_LEN)
        return 0;
    return 1 + varint_len(remaining) + remaining;
}

static uint8_t *put_fixed(uint8_t *p, unsigned type, unsigned flags, size_t remaining)
{
    *p++ = (uint8_t)(type << 4 | flags);
    do {
        uint8_t b = remaining & 0x7F;
        remaining >>= 7;
        if (remaining)
            b |= 0x80;
        *p++ = b;
    } while (remaining);
    return p;
}

static uint8_t *put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *put_str(uint8_t *p, const void *s, size_t n)
{
    p = put_u16(p, (uint16_t)n);
    if (n)
        memcpy(p, s, n);
    return p + n;
}

size_t mqtt_encode_connack(uint8_t *buf, size_t cap, bool session_present, uint8_t return_code)
{
    if (cap < 4)
        return 4;
    uint8_t *p = put_fixed(buf, MQTT_CONNACK, 0, 2);
    p[0] = session_present ? 1 : 0;
    p[1] = return_code;
    return 4;
}

size_t mqtt_encode_ack(uint8_t *buf, size_t cap, mqtt_packet_type type, uint16_t packet_id)
{
    unsigned flags = 0;
    switch (type) {
    case MQTT_PUBREL:
        flags = 2;
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        break;
    default:
        return 0;
    }
    if (packet_id == 0)
        return 0;
    if (cap < 4)
        return 4;
    put_u16(put_fixed(buf, type, flags, 2), packet_id);
    return 4;
}

size_t mqtt_encode_suback(uint8_t *buf, size_t cap, uint16_t packet_id, const uint8_t *codes,
                          size_t count)
{
    if (packet_id == 0 || count == 0 || count > MQTT_MAX_REMAINING_LEN - 2)
        return 0;
    size_t total = packet_len(2 + count);
    if (cap < total)
        return total;
    uint8_t *p = put_u16(put_fixed(buf, MQTT_SUBACK, 0, 2 + count), packet_id);
    memcpy(p, codes, count);
    return total;
}

size_t mqtt_encode_simple(uint8_t *buf, size_t cap, mqtt_packet_type type)
{
    if (type != MQTT_PINGREQ && type != MQTT_PINGRESP && type != MQTT_DISCONNECT)
        return 0;
    if (cap < 2)
        return 2;
    put_fixed(buf, type, 0, 0);
    return 2;
}

size_t mqtt_encode_publish_header(uint8_t *buf, size_t cap, const char *topic, size_t topic_len,
                                  uint8_t qos, bool dup, bool retain, uint16_t packet_id,
                                  size_t payload_len)
{
    if (qos > 2 || topic_len > UINT16_MAX || (qos > 0 && packet_id == 0))
        return 0;
    size_t head_body = 2 + topic_len + (qos ? 2 : 0);
    if (payload_len > MQTT_MAX_REMAINING_LEN - head_body)
        return 0;
    size_t remaining = head_body + payload_len;
    size_t header = 1 + varint_len(remaining) + head_body;
    if (cap < header)
        return header;
    unsigned flags = (dup ? 8u : 0u) | (unsigned)qos << 1 | (retain ? 1u : 0u);
    uint8_t *p = put_str(put_fixed(buf, MQTT_PUBLISH, flags, remaining), topic, topic_len);
    if (qos)
        put_u16(p, packet_id);
    return header;
}

size_t mqtt_encode_publish(uint8_t *buf, size_t cap, const char *topic, size_t topic_len,
                           uint8_t qos, bool dup, bool retain, uint16_t packet_id,
                           const uint8_t *payload, size_t payload_len)
{
    size_t header = mqtt_encode_publish_header(NULL, 0, topic, topic_len, qos, dup, retain,
                                               packet_id, payload_len);
    if (header == 0)
        return 0;
    if (cap < header || cap - header < payload_len)
        return header + payload_len;
    mqtt_encode_publish_header(buf, cap, topic, topic_len, qos, dup, retain, packet_id,
                               payload_len);
    if (payload_len)
        memcpy(buf + header, payload, payload_len);
    return header + payload_len;
}

/* Adds a length-prefixed field to a running remaining length; false when it cannot be encoded. */
static bool add_field(size_t *remaining, size_t n)
{
    if (n > UINT16_MAX)
        return false;
    *remaining += 2 + n;
    return true;
}

size_t mqtt_encode_connect(uint8_t *buf, size_t cap, const mqtt_connect_opts *opts)
{
    const char *cid = opts->client_id ? opts->client_id : "";
    size_t cid_len = strlen(cid);
    size_t user_len = opts->username ? strlen(opts->username) : 0;
    size_t pass_len = opts->password ? strlen(opts->password) : 0;
    size_t wt_len = opts->will_topic ? strlen(opts->will_topic) : 0;
    size_t remaining = 6 + 1 + 1 + 2; /* "MQTT", level, flags, keepalive */
    unsigned flags = opts->clean_session ? 0x02 : 0;

    if (opts->password && !opts->username)
        return 0;
    if (!add_field(&remaining, cid_len))
        return 0;
    if (opts->will_topic) {
        if (opts->will_qos > 2 || !add_field(&remaining, wt_len) ||
            !add_field(&remaining, opts->will_payload_len))
            return 0;
        flags |= 0x04 | (unsigned)opts->will_qos << 3 | (opts->will_retain ? 0x20u : 0u);
    }
    if (opts->username) {
        if (!add_field(&remaining, user_len))
            return 0;
        flags |= 0x80;
    }
    if (opts->password) {
        if (!add_field(&remaining, pass_len))
            return 0;
        flags |= 0x40;
    }
    size_t total = packet_len(remaining);
    if (total == 0)
        return 0;
    if (cap < total)
        return total;
    uint8_t *p = put_str(put_fixed(buf, MQTT_CONNECT, 0, remaining), "MQTT", 4);
    *p++ = 4;
    *p++ = (uint8_t)flags;
    p = put_u16(p, opts->keepalive);
    p = put_str(p, cid, cid_len);
    if (opts->will_topic) {
        p = put_str(p, opts->will_topic, wt_len);
        p = put_str(p, opts->will_payload, opts->will_payload_len);
    }
    if (opts->username)
        p = put_str(p, opts->username, user_len);
    if (opts->password)
        put_str(p, opts->password, pass_len);
    return total;
}

/* SUBSCRIBE and UNSUBSCRIBE differ only in the options byte after each filter. */
static size_t encode_sub(uint8_t *buf, size_t cap, mqtt_packet_type type, uint16_t packet_id,
                         const char *const *filters, const uint8_t *qos, size_t count)
{
    size_t per_filter = qos ? 1 : 0;
    size_t remaining = 2;
    if (packet_id == 0 || count == 0)
        return 0;
    for (size_t i = 0; i < count; i++) {
        /* Checked before adding so that the sum cannot wrap however many filters come in. */
        if (remaining > MQTT_MAX_REMAINING_LEN || !add_field(&remaining, strlen(filters[i])))
            return 0;
        if (qos && qos[i] > 2)
            return 0;
        remaining += per_filter;
    }
    size_t total = packet_len(remaining);
    if (total == 0)
        return 0;
    if (cap < total)
        return total;
    uint8_t *p = put_u16(put_fixed(buf, type, 2, remaining), packet_id);
    for (size_t i = 0; i < count; i++) {
        p = put_str(p, filters[i], strlen(filters[i]));
        if (qos)
            *p++ = qos[i];
    }
    return total;
}

size_t mqtt_encode_subscribe(uint8_t *buf, size_t cap, uint16_t packet_id,
                             const char *const *filters, const uint8_t *qos, size_t count)
{
    if (!qos)
        return 0;
    return encode_sub(buf, cap, MQTT_SUBSCRIBE, packet_id, filters, qos, count);
}

size_t mqtt_encode_unsubscribe(uint8_t *buf, size_t cap, uint16_t packet_id,
                               const char *const *filters, size_t count)
{
    return encode_sub(buf, cap, MQTT_UNSUBSCRIBE, packet_id, filters, NULL, count);
}
