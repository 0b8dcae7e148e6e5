/* libFuzzer target: MQTT framing and decoding of a byte stream, with decode/encode round trips. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mqtt.h"

#define MAX_PACKET 65536

/* Scratch space for re-encoding; static so a large packet does not blow the stack. */
static uint8_t out[MAX_PACKET + 16];
static char strings[MAX_PACKET + 16];

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* The re-encoded packet must carry exactly the body we decoded. */
static void check_body(size_t n, const uint8_t *body, size_t len)
{
    mqtt_fixed_header h;
    CHECK(n > 0 && n <= sizeof out);
    CHECK(mqtt_frame(out, n, MAX_PACKET, &h) == IOTDM_OK);
    CHECK(h.remaining_len == len);
    CHECK(memcmp(out + h.header_len, body, len) == 0);
}

/* Copies a span into the string arena as a C string; NULL when it holds a NUL. */
static const char *cstr(mqtt_span s, size_t *arena)
{
    if (memchr(s.ptr, 0, s.len) || *arena + s.len + 1 > sizeof strings)
        return NULL;
    char *p = strings + *arena;
    memcpy(p, s.ptr, s.len);
    p[s.len] = '\0';
    *arena += s.len + 1;
    return p;
}

static void fuzz_connect(const uint8_t *body, size_t len)
{
    mqtt_connect c;
    size_t arena = 0;
    if (mqtt_decode_connect(body, len, &c) != IOTDM_OK)
        return;
    CHECK(c.protocol_level == 4 && c.protocol_name.len == 4);
    mqtt_connect_opts o = {.client_id = cstr(c.client_id, &arena),
                           .keepalive = c.keepalive,
                           .clean_session = c.clean_session};
    CHECK(o.client_id);
    if (c.has_will) {
        o.will_topic = cstr(c.will_topic, &arena);
        CHECK(o.will_topic);
        o.will_payload = c.will_payload.ptr;
        o.will_payload_len = c.will_payload.len;
        o.will_qos = c.will_qos;
        o.will_retain = c.will_retain;
    }
    if (c.has_username)
        CHECK((o.username = cstr(c.username, &arena)) != NULL);
    if (c.has_password) {
        o.password = cstr(c.password, &arena);
        if (!o.password)
            return; /* binary password with a NUL: the C-string encoder cannot carry it */
    }
    check_body(mqtt_encode_connect(out, sizeof out, &o), body, len);
}

static void fuzz_publish(uint8_t flags, const uint8_t *body, size_t len)
{
    mqtt_publish p;
    if (mqtt_decode_publish(flags, body, len, &p) != IOTDM_OK)
        return;
    CHECK(p.topic.len > 0 && p.qos <= 2 && (p.qos == 0 || p.packet_id != 0));
    CHECK(p.payload.ptr + p.payload.len == body + len);
    size_t n = mqtt_encode_publish(out, sizeof out, (const char *)p.topic.ptr, p.topic.len, p.qos,
                                   p.dup, p.retain, p.packet_id, p.payload.ptr, p.payload.len);
    check_body(n, body, len);
    CHECK((out[0] & 0x0F) == flags);
}

static void fuzz_sub(bool is_subscribe, const uint8_t *body, size_t len)
{
    static const char *filters[MAX_PACKET / 3];
    static uint8_t qos[MAX_PACKET / 3];
    mqtt_sub_iter it;
    mqtt_span f;
    uint8_t q;
    uint16_t id;
    size_t count = 0, arena = 0;
    if (mqtt_sub_iter_init(&it, is_subscribe, body, len, &id) != IOTDM_OK)
        return;
    CHECK(id != 0);
    while (mqtt_sub_iter_next(&it, &f, &q)) {
        CHECK(f.len > 0 && f.ptr >= body && f.ptr + f.len <= body + len && q <= 2);
        CHECK(count < sizeof qos);
        filters[count] = cstr(f, &arena);
        CHECK(filters[count]);
        qos[count++] = q;
    }
    CHECK(count > 0);
    size_t n = is_subscribe ? mqtt_encode_subscribe(out, sizeof out, id, filters, qos, count)
                            : mqtt_encode_unsubscribe(out, sizeof out, id, filters, count);
    check_body(n, body, len);
}

static void fuzz_packet(const mqtt_fixed_header *h, const uint8_t *body)
{
    size_t len = h->remaining_len;
    uint16_t id;
    bool sp;
    uint8_t rc;
    mqtt_span codes;
    switch (h->type) {
    case MQTT_CONNECT:
        fuzz_connect(body, len);
        break;
    case MQTT_PUBLISH:
        fuzz_publish(h->flags, body, len);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        fuzz_sub(h->type == MQTT_SUBSCRIBE, body, len);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        if (mqtt_decode_packet_id(body, len, &id) == IOTDM_OK)
            check_body(mqtt_encode_ack(out, sizeof out, h->type, id), body, len);
        break;
    case MQTT_CONNACK:
        if (mqtt_decode_connack(body, len, &sp, &rc) == IOTDM_OK)
            check_body(mqtt_encode_connack(out, sizeof out, sp, rc), body, len);
        break;
    case MQTT_SUBACK:
        if (mqtt_decode_suback(body, len, &id, &codes) == IOTDM_OK)
            check_body(mqtt_encode_suback(out, sizeof out, id, codes.ptr, codes.len), body, len);
        break;
    default:
        CHECK(len == 0);
        check_body(mqtt_encode_simple(out, sizeof out, h->type), body, len);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    /* The input is a stream, as it comes off a socket: frame packet after packet. */
    while (off < size) {
        mqtt_fixed_header h;
        iotdm_result r = mqtt_frame(data + off, size - off, MAX_PACKET, &h);
        if (r != IOTDM_OK) {
            CHECK(r == IOTDM_E_INCOMPLETE || r == IOTDM_E_MALFORMED || r == IOTDM_E_TOO_LARGE);
            break;
        }
        size_t total = h.header_len + h.remaining_len;
        CHECK(h.header_len >= 2 && h.header_len <= 5 && total <= size - off);
        CHECK(h.remaining_len <= MAX_PACKET);
        /* Any shorter view of a complete packet asks for more. */
        mqtt_fixed_header h2;
        CHECK(mqtt_frame(data + off, total - 1, MAX_PACKET, &h2) == IOTDM_E_INCOMPLETE);
        fuzz_packet(&h, data + off + h.header_len);
        off += total;
    }
    mqtt_utf8_valid(data, size);
    return 0;
}
