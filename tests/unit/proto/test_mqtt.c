/* MQTT 3.1.1 codec: framing limits, every packet type round-trip, every malformed case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "proto/mqtt.h"

/* A byte-string literal as (pointer, length); the literal may contain NULs. */
#define BYTES(s) (const uint8_t *)(s), (sizeof(s) - 1)

#define BIG 65536

static bool span_eq(mqtt_span s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

/* Frames a whole packet that must be complete, checks type and size, returns the body. */
static const uint8_t *frame_ok(const uint8_t *pkt, size_t len, mqtt_packet_type type,
                               mqtt_fixed_header *h)
{
    assert_int_equal(mqtt_frame(pkt, len, BIG, h), IOTDM_OK);
    assert_int_equal(h->type, type);
    assert_int_equal(h->header_len + h->remaining_len, len);
    return pkt + h->header_len;
}

/* Every proper prefix of a valid packet must ask for more bytes. */
static void assert_incomplete_at_every_cut(const uint8_t *pkt, size_t len)
{
    mqtt_fixed_header h;
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(mqtt_frame(pkt, cut, BIG, &h), IOTDM_E_INCOMPLETE);
    assert_int_equal(mqtt_frame(pkt, len, BIG, &h), IOTDM_OK);
}

/* ---- framing ----------------------------------------------------------------------------- */

static void test_frame_type_zero_malformed(void **state)
{
    (void)state;
    mqtt_fixed_header h;
    assert_int_equal(mqtt_frame(BYTES("\x00\x00"), BIG, &h), IOTDM_E_MALFORMED);
    /* Decided from the first byte alone. */
    assert_int_equal(mqtt_frame(BYTES("\x00"), BIG, &h), IOTDM_E_MALFORMED);
}

static void test_frame_type_fifteen_malformed(void **state)
{
    (void)state;
    mqtt_fixed_header h;
    assert_int_equal(mqtt_frame(BYTES("\xF0\x00"), BIG, &h), IOTDM_E_MALFORMED);
}

static void test_frame_reserved_flags_wrong_malformed(void **state)
{
    (void)state;
    mqtt_fixed_header h;
    static const uint8_t bad[] = {
        0x11,           /* CONNECT with flags 1 */
        0x21,           /* CONNACK */
        0x42,           /* PUBACK */
        0x51,           /* PUBREC */
        0x60,           /* PUBREL needs 2 */
        0x70 | 2,       /* PUBCOMP */
        0x80,           /* SUBSCRIBE needs 2 */
        0x83,     0x91, /* SUBACK */
        0xA0,           /* UNSUBSCRIBE needs 2 */
        0xB2,           /* UNSUBACK */
        0xC1,           /* PINGREQ */
        0xD8,           /* PINGRESP */
        0xE2,           /* DISCONNECT */
    };
    for (size_t i = 0; i < sizeof bad; i++) {
        uint8_t pkt[4] = {bad[i], 2, 0, 1};
        assert_int_equal(mqtt_frame(pkt, sizeof pkt, BIG, &h), IOTDM_E_MALFORMED);
    }
}

static void test_frame_required_flags_ok(void **state)
{
    (void)state;
    mqtt_fixed_header h;
    assert_int_equal(mqtt_frame(BYTES("\x62\x02\x00\x01"), BIG, &h), IOTDM_OK);
    assert_int_equal(h.type, MQTT_PUBREL);
    assert_int_equal(h.flags, 2);
    assert_int_equal(mqtt_frame(BYTES("\x82\x06\x00\x01\x00\x01"
                                      "a\x00"),
                                BIG, &h),
                     IOTDM_OK);
    assert_int_equal(h.type, MQTT_SUBSCRIBE);
    assert_int_equal(mqtt_frame(BYTES("\xA2\x05\x00\x01\x00\x01"
                                      "a"),
                                BIG, &h),
                     IOTDM_OK);
    /* PUBLISH flags carry DUP/QoS/RETAIN and are all legal at this layer. */
    assert_int_equal(mqtt_frame(BYTES("\x3F\x00"), BIG, &h), IOTDM_OK);
    assert_int_equal(h.flags, 0x0F);
}

static void test_frame_varint_four_byte_max_accepted(void **state)
{
    (void)state;
    mqtt_fixed_header h;
    /* 268435455 = FF FF FF 7F: the header is complete, the body is not. */
    assert_int_equal(mqtt_frame(BYTES("\x30\xFF\xFF\xFF\x7F"), SIZE_MAX, &h), IOTDM_E_INCOMPLETE);
    assert_int_equal(h.remaining_len, 268435455u);
    assert_int_equal(h.header_len, 5);
    assert_int_equal(mqtt_frame(BYTES("\x30\xFF\xFF\xFF\x7F"), MQTT_MAX_REMAINING_LEN, &h),
                     IOTDM_E_INCOMPLETE);
}

static void test_frame_varint_five_bytes_malformed(void **state)
{
    (void)state;
    mqtt_fixed_header h;
    assert_int_equal(mqtt_frame(BYTES("\x30\xFF\xFF\xFF\xFF\x01"), SIZE_MAX, &h),
                     IOTDM_E_MALFORMED);
    /* Known as soon as the fourth length byte asks for a fifth. */
    assert_int_equal(mqtt_frame(BYTES("\x30\x80\x80\x80\x80"), SIZE_MAX, &h), IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_frame(BYTES("\x30\x80\x80\x80"), SIZE_MAX, &h), IOTDM_E_INCOMPLETE);
}

static void test_frame_varint_boundaries_decoded(void **state)
{
    (void)state;
    mqtt_fixed_header h;
    assert_int_equal(mqtt_frame(BYTES("\x30\x7F"), SIZE_MAX, &h), IOTDM_E_INCOMPLETE);
    assert_int_equal(h.remaining_len, 127);
    assert_int_equal(mqtt_frame(BYTES("\x30\x80\x01"), SIZE_MAX, &h), IOTDM_E_INCOMPLETE);
    assert_int_equal(h.remaining_len, 128);
    assert_int_equal(h.header_len, 3);
    assert_int_equal(mqtt_frame(BYTES("\x30\xFF\x7F"), SIZE_MAX, &h), IOTDM_E_INCOMPLETE);
    assert_int_equal(h.remaining_len, 16383);
    assert_int_equal(mqtt_frame(BYTES("\x30\x80\x80\x01"), SIZE_MAX, &h), IOTDM_E_INCOMPLETE);
    assert_int_equal(h.remaining_len, 16384);
    assert_int_equal(mqtt_frame(BYTES("\x30\x80\x80\x80\x01"), SIZE_MAX, &h), IOTDM_E_INCOMPLETE);
    assert_int_equal(h.remaining_len, 2097152);
    assert_int_equal(h.header_len, 5);
}

static void test_frame_too_large_from_header_alone(void **state)
{
    (void)state;
    mqtt_fixed_header h;
    /* 16384 announced, limit 1024, nothing of the body sent yet. */
    assert_int_equal(mqtt_frame(BYTES("\x30\x80\x80\x01"), 1024, &h), IOTDM_E_TOO_LARGE);
    assert_int_equal(mqtt_frame(BYTES("\x30\xFF\xFF\xFF\x7F"), MQTT_MAX_REMAINING_LEN - 1, &h),
                     IOTDM_E_TOO_LARGE);
    /* Exactly at the limit is fine. */
    assert_int_equal(mqtt_frame(BYTES("\x30\x80\x08"), 1024, &h), IOTDM_E_INCOMPLETE);
    assert_int_equal(mqtt_frame(BYTES("\x30\x81\x08"), 1024, &h), IOTDM_E_TOO_LARGE);
}

static void test_frame_fixed_size_packet_wrong_length_malformed(void **state)
{
    (void)state;
    mqtt_fixed_header h;
    assert_int_equal(mqtt_frame(BYTES("\xC0\x01\x00"), BIG, &h), IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_frame(BYTES("\xE0\x01"), BIG, &h), IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_frame(BYTES("\x40\x03\x00\x01\x00"), BIG, &h), IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_frame(BYTES("\x20\x01\x00"), BIG, &h), IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_frame(BYTES("\xB0\x00"), BIG, &h), IOTDM_E_MALFORMED);
}

static void test_frame_two_packets_first_only(void **state)
{
    (void)state;
    mqtt_fixed_header h;
    assert_int_equal(mqtt_frame(BYTES("\xC0\x00\xE0\x00"), BIG, &h), IOTDM_OK);
    assert_int_equal(h.type, MQTT_PINGREQ);
    assert_int_equal(h.header_len + h.remaining_len, 2);
}

static void test_frame_every_cut_incomplete(void **state)
{
    (void)state;
    uint8_t buf[512];
    uint8_t payload[300];
    memset(payload, 'x', sizeof payload);
    mqtt_connect_opts o = {.client_id = "dev1",
                           .username = "hub.test/dev1/?api-version=2021-04-12",
                           .password = "SharedAccessSignature sr=x&sig=y&se=1",
                           .keepalive = 180};
    size_t n = mqtt_encode_connect(buf, sizeof buf, &o);
    assert_true(n > 0 && n <= sizeof buf);
    assert_incomplete_at_every_cut(buf, n);

    /* Two-byte remaining length. */
    n = mqtt_encode_publish(buf, sizeof buf, "devices/dev1/messages/events/", 29, 1, false, false,
                            7, payload, sizeof payload);
    assert_true(n > 300 && n <= sizeof buf);
    assert_int_equal(buf[1] & 0x80, 0x80);
    assert_incomplete_at_every_cut(buf, n);

    n = mqtt_encode_ack(buf, sizeof buf, MQTT_PUBREL, 9);
    assert_incomplete_at_every_cut(buf, n);
    n = mqtt_encode_simple(buf, sizeof buf, MQTT_PINGREQ);
    assert_incomplete_at_every_cut(buf, n);
}

/* ---- UTF-8 ------------------------------------------------------------------------------- */

static void test_utf8_multibyte_valid(void **state)
{
    (void)state;
    assert_true(mqtt_utf8_valid(BYTES("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80")));
    assert_true(mqtt_utf8_valid(BYTES("\xF4\x8F\xBF\xBF"))); /* U+10FFFF */
    assert_true(mqtt_utf8_valid(BYTES("")));
}

static void test_utf8_bad_sequences_rejected(void **state)
{
    (void)state;
    assert_false(mqtt_utf8_valid(BYTES("a\x00"
                                       "b")));        /* U+0000 */
    assert_false(mqtt_utf8_valid(BYTES("\xC0\x80"))); /* overlong NUL */
    assert_false(mqtt_utf8_valid(BYTES("\xC0\xAF"))); /* overlong '/' */
    assert_false(mqtt_utf8_valid(BYTES("\xE0\x80\xAF")));
    assert_false(mqtt_utf8_valid(BYTES("\xF0\x80\x80\xAF")));
    assert_false(mqtt_utf8_valid(BYTES("\xED\xA0\x80")));     /* surrogate */
    assert_false(mqtt_utf8_valid(BYTES("\xF4\x90\x80\x80"))); /* > U+10FFFF */
    assert_false(mqtt_utf8_valid(BYTES("\xFF")));
    assert_false(mqtt_utf8_valid(BYTES("\x80")));
    assert_false(mqtt_utf8_valid(BYTES("\xE2\x82"))); /* truncated */
    assert_false(mqtt_utf8_valid(BYTES("\xC3(")));
}

/* ---- CONNECT ----------------------------------------------------------------------------- */

static void test_connect_encode_bytes_exact(void **state)
{
    (void)state;
    static const uint8_t want[] = "\x10\x34\x00\x04"
                                  "MQTT\x04\xC0\x00\xB4\x00\x04"
                                  "dev1\x00\x1E"
                                  "h/dev1/?api-version=2021-04-12\x00\x02"
                                  "pw";
    uint8_t buf[128];
    mqtt_connect_opts o = {.client_id = "dev1",
                           .username = "h/dev1/?api-version=2021-04-12",
                           .password = "pw",
                           .keepalive = 180,
                           .clean_session = false};
    size_t n = mqtt_encode_connect(buf, sizeof buf, &o);
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(buf, want, n);
}

static void test_connect_round_trip_fields_equal(void **state)
{
    (void)state;
    uint8_t buf[256];
    mqtt_fixed_header h;
    mqtt_connect c;
    static const uint8_t will[] = {0x01, 0x00, 0xFF};
    mqtt_connect_opts o = {.client_id = "dev1/mod1",
                           .username = "hub.test/dev1/mod1/?api-version=2021-04-12",
                           .password = "secret",
                           .keepalive = 240,
                           .clean_session = true,
                           .will_topic = "devices/dev1/modules/mod1/messages/events/",
                           .will_payload = will,
                           .will_payload_len = sizeof will,
                           .will_qos = 1,
                           .will_retain = true};
    size_t n = mqtt_encode_connect(buf, sizeof buf, &o);
    const uint8_t *body = frame_ok(buf, n, MQTT_CONNECT, &h);
    assert_int_equal(mqtt_decode_connect(body, h.remaining_len, &c), IOTDM_OK);
    assert_true(span_eq(c.protocol_name, "MQTT"));
    assert_int_equal(c.protocol_level, 4);
    assert_true(c.clean_session);
    assert_int_equal(c.keepalive, 240);
    assert_true(span_eq(c.client_id, "dev1/mod1"));
    assert_true(c.has_will);
    assert_int_equal(c.will_qos, 1);
    assert_true(c.will_retain);
    assert_true(span_eq(c.will_topic, "devices/dev1/modules/mod1/messages/events/"));
    assert_int_equal(c.will_payload.len, sizeof will);
    assert_memory_equal(c.will_payload.ptr, will, sizeof will);
    assert_true(c.has_username);
    assert_true(span_eq(c.username, "hub.test/dev1/mod1/?api-version=2021-04-12"));
    assert_true(c.has_password);
    assert_true(span_eq(c.password, "secret"));
}

static void test_connect_x509_no_password_ok(void **state)
{
    (void)state;
    uint8_t buf[128];
    mqtt_fixed_header h;
    mqtt_connect c;
    mqtt_connect_opts o = {.client_id = "dev1", .username = "hub.test/dev1/?api-version=1"};
    size_t n = mqtt_encode_connect(buf, sizeof buf, &o);
    const uint8_t *body = frame_ok(buf, n, MQTT_CONNECT, &h);
    assert_int_equal(mqtt_decode_connect(body, h.remaining_len, &c), IOTDM_OK);
    assert_true(c.has_username);
    assert_false(c.has_password);
    assert_false(c.has_will);
    assert_false(c.clean_session);
}

static void test_connect_empty_client_id_ok(void **state)
{
    (void)state;
    mqtt_connect c;
    assert_int_equal(mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x02\x00\x3C\x00\x00"), &c),
                     IOTDM_OK);
    assert_int_equal(c.client_id.len, 0);
    assert_true(c.clean_session);
    assert_int_equal(c.keepalive, 60);
}

static void test_connect_wrong_protocol_unsupported(void **state)
{
    (void)state;
    mqtt_connect c;
    /* MQTT 3.1 */
    assert_int_equal(mqtt_decode_connect(BYTES("\x00\x06MQIsdp\x03\x02\x00\x3C\x00\x01x"), &c),
                     IOTDM_E_UNSUPPORTED);
    assert_int_equal(c.protocol_level, 3);
    /* MQTT 5: level is set so the caller can answer CONNACK 1. */
    assert_int_equal(mqtt_decode_connect(BYTES("\x00\x04MQTT\x05\x02\x00\x3C\x00\x00\x01x"), &c),
                     IOTDM_E_UNSUPPORTED);
    assert_int_equal(c.protocol_level, 5);
    assert_int_equal(mqtt_decode_connect(BYTES("\x00\x04mqtt\x04\x02\x00\x3C\x00\x01x"), &c),
                     IOTDM_E_UNSUPPORTED);
}

static void test_connect_truncated_header_malformed(void **state)
{
    (void)state;
    mqtt_connect c;
    assert_int_equal(mqtt_decode_connect(BYTES(""), &c), IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_decode_connect(BYTES("\x00\x04MQ"), &c), IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_decode_connect(BYTES("\x00\x04MQTT"), &c), IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x02\x00"), &c), IOTDM_E_MALFORMED);
}

static void test_connect_bad_flags_malformed(void **state)
{
    (void)state;
    mqtt_connect c;
    /* reserved bit 0 */
    assert_int_equal(mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x03\x00\x3C\x00\x01x"), &c),
                     IOTDM_E_MALFORMED);
    /* password without user name */
    assert_int_equal(
        mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x42\x00\x3C\x00\x01x\x00\x01p"), &c),
        IOTDM_E_MALFORMED);
    /* will QoS without will flag */
    assert_int_equal(mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x0A\x00\x3C\x00\x01x"), &c),
                     IOTDM_E_MALFORMED);
    /* will retain without will flag */
    assert_int_equal(mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x22\x00\x3C\x00\x01x"), &c),
                     IOTDM_E_MALFORMED);
    /* will QoS 3 */
    assert_int_equal(
        mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x1E\x00\x3C\x00\x01x\x00\x01t\x00\x00"), &c),
        IOTDM_E_MALFORMED);
}

static void test_connect_strings_past_end_malformed(void **state)
{
    (void)state;
    mqtt_connect c;
    /* client id claims 5 bytes, has 1 */
    assert_int_equal(mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x02\x00\x3C\x00\x05x"), &c),
                     IOTDM_E_MALFORMED);
    /* user name flag set, no user name */
    assert_int_equal(mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x82\x00\x3C\x00\x01x"), &c),
                     IOTDM_E_MALFORMED);
    /* will flag set, will payload missing */
    assert_int_equal(
        mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x06\x00\x3C\x00\x01x\x00\x01t"), &c),
        IOTDM_E_MALFORMED);
    /* password flag set, password missing */
    assert_int_equal(
        mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\xC2\x00\x3C\x00\x01x\x00\x01u"), &c),
        IOTDM_E_MALFORMED);
}

static void test_connect_trailing_bytes_malformed(void **state)
{
    (void)state;
    mqtt_connect c;
    assert_int_equal(mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x02\x00\x3C\x00\x01xZ"), &c),
                     IOTDM_E_MALFORMED);
}

static void test_connect_bad_utf8_malformed(void **state)
{
    (void)state;
    mqtt_connect c;
    /* client id with U+0000 */
    assert_int_equal(mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x02\x00\x3C\x00\x02x\x00"), &c),
                     IOTDM_E_MALFORMED);
    /* client id with an overlong encoding */
    assert_int_equal(mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x02\x00\x3C\x00\x02\xC0\x80"), &c),
                     IOTDM_E_MALFORMED);
    /* user name with U+0000 */
    assert_int_equal(
        mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x82\x00\x3C\x00\x01x\x00\x02u\x00"), &c),
        IOTDM_E_MALFORMED);
    /* will topic with a surrogate */
    assert_int_equal(mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x06\x00\x3C\x00\x01x"
                                               "\x00\x03\xED\xA0\x80\x00\x00"),
                                         &c),
                     IOTDM_E_MALFORMED);
    /* will topic with U+0000 */
    assert_int_equal(
        mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x06\x00\x3C\x00\x01x\x00\x01\x00\x00\x00"), &c),
        IOTDM_E_MALFORMED);
    /* the password is binary: anything goes */
    assert_int_equal(
        mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\xC2\x00\x3C\x00\x01x\x00\x01u\x00\x02\x00\xFF"),
                            &c),
        IOTDM_OK);
    assert_int_equal(c.password.len, 2);
}

static void test_connect_will_topic_wildcard_or_empty_malformed(void **state)
{
    (void)state;
    mqtt_connect c;
    assert_int_equal(
        mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x06\x00\x3C\x00\x01x\x00\x01#\x00\x00"), &c),
        IOTDM_E_MALFORMED);
    assert_int_equal(
        mqtt_decode_connect(BYTES("\x00\x04MQTT\x04\x06\x00\x3C\x00\x01x\x00\x00\x00\x00"), &c),
        IOTDM_E_MALFORMED);
}

static void test_connect_encode_password_without_user_zero(void **state)
{
    (void)state;
    uint8_t buf[64];
    mqtt_connect_opts o = {.client_id = "x", .password = "p"};
    assert_int_equal(mqtt_encode_connect(buf, sizeof buf, &o), 0);
    o = (mqtt_connect_opts){.client_id = "x", .will_topic = "t", .will_qos = 3};
    assert_int_equal(mqtt_encode_connect(buf, sizeof buf, &o), 0);
}

/* ---- CONNACK ----------------------------------------------------------------------------- */

static void test_connack_round_trip_fields_equal(void **state)
{
    (void)state;
    uint8_t buf[4];
    mqtt_fixed_header h;
    bool sp;
    uint8_t rc;
    assert_int_equal(mqtt_encode_connack(buf, sizeof buf, true, MQTT_CONNACK_ACCEPTED), 4);
    assert_memory_equal(buf, "\x20\x02\x01\x00", 4);
    const uint8_t *body = frame_ok(buf, 4, MQTT_CONNACK, &h);
    assert_int_equal(mqtt_decode_connack(body, h.remaining_len, &sp, &rc), IOTDM_OK);
    assert_true(sp);
    assert_int_equal(rc, 0);

    assert_int_equal(mqtt_encode_connack(buf, sizeof buf, false, MQTT_CONNACK_NOT_AUTHORIZED), 4);
    assert_memory_equal(buf, "\x20\x02\x00\x05", 4);
}

static void test_connack_reserved_bits_malformed(void **state)
{
    (void)state;
    bool sp;
    uint8_t rc;
    assert_int_equal(mqtt_decode_connack(BYTES("\x02\x00"), &sp, &rc), IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_decode_connack(BYTES("\x00"), &sp, &rc), IOTDM_E_MALFORMED);
}

/* ---- PUBLISH ----------------------------------------------------------------------------- */

static void test_publish_round_trip_each_qos_equal(void **state)
{
    (void)state;
    uint8_t buf[128];
    mqtt_fixed_header h;
    mqtt_publish p;
    static const char topic[] = "devices/dev1/messages/events/%24.ct=application%2Fjson";
    for (uint8_t qos = 0; qos <= 2; qos++) {
        size_t n = mqtt_encode_publish(buf, sizeof buf, topic, strlen(topic), qos, qos == 1,
                                       qos == 2, qos ? 0x1234 : 0, BYTES("{\"t\":1}"));
        const uint8_t *body = frame_ok(buf, n, MQTT_PUBLISH, &h);
        assert_int_equal(mqtt_decode_publish(h.flags, body, h.remaining_len, &p), IOTDM_OK);
        assert_true(span_eq(p.topic, topic));
        assert_int_equal(p.qos, qos);
        assert_int_equal(p.dup, qos == 1);
        assert_int_equal(p.retain, qos == 2);
        assert_int_equal(p.packet_id, qos ? 0x1234 : 0);
        assert_true(span_eq(p.payload, "{\"t\":1}"));
    }
}

static void test_publish_header_plus_payload_matches_whole(void **state)
{
    (void)state;
    uint8_t whole[256], head[MQTT_PUBLISH_HEADER_MAX(40)];
    uint8_t payload[200];
    memset(payload, 'p', sizeof payload);
    const char *topic = "$iothub/twin/res/200/?$rid=1";
    size_t tl = strlen(topic);
    size_t n = mqtt_encode_publish(whole, sizeof whole, topic, tl, 1, false, false, 5, payload,
                                   sizeof payload);
    size_t hn = mqtt_encode_publish_header(head, sizeof head, topic, tl, 1, false, false, 5,
                                           sizeof payload);
    assert_int_equal(hn + sizeof payload, n);
    assert_true(hn <= MQTT_PUBLISH_HEADER_MAX(tl));
    assert_memory_equal(whole, head, hn);
    assert_memory_equal(whole + hn, payload, sizeof payload);
    /* QoS 0: no packet id. */
    hn = mqtt_encode_publish_header(head, sizeof head, "a/b", 3, 0, false, false, 0, 0);
    assert_int_equal(hn, 7);
    assert_memory_equal(head,
                        "\x30\x05\x00\x03"
                        "a/b",
                        7);
}

static void test_publish_qos3_malformed(void **state)
{
    (void)state;
    mqtt_publish p;
    assert_int_equal(mqtt_decode_publish(0x06, BYTES("\x00\x01t\x00\x01"), &p), IOTDM_E_MALFORMED);
}

static void test_publish_qos2_decodes_ok(void **state)
{
    (void)state;
    mqtt_publish p;
    assert_int_equal(mqtt_decode_publish(0x04, BYTES("\x00\x01t\x00\x01xyz"), &p), IOTDM_OK);
    assert_int_equal(p.qos, 2);
    assert_int_equal(p.packet_id, 1);
    assert_true(span_eq(p.payload, "xyz"));
}

static void test_publish_packet_id_zero_malformed(void **state)
{
    (void)state;
    mqtt_publish p;
    assert_int_equal(mqtt_decode_publish(0x02, BYTES("\x00\x01t\x00\x00"), &p), IOTDM_E_MALFORMED);
    /* packet id missing altogether */
    assert_int_equal(mqtt_decode_publish(0x02, BYTES("\x00\x01t\x00"), &p), IOTDM_E_MALFORMED);
}

static void test_publish_bad_topic_malformed(void **state)
{
    (void)state;
    mqtt_publish p;
    assert_int_equal(mqtt_decode_publish(0, BYTES("\x00\x00payload"), &p), IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_decode_publish(0,
                                         BYTES("\x00\x03"
                                               "a/+"),
                                         &p),
                     IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_decode_publish(0,
                                         BYTES("\x00\x03"
                                               "a/#"),
                                         &p),
                     IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_decode_publish(0,
                                         BYTES("\x00\x03"
                                               "a\x00"
                                               "b"),
                                         &p),
                     IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_decode_publish(0, BYTES("\x00\x02\xC3("), &p), IOTDM_E_MALFORMED);
    /* runs past the end */
    assert_int_equal(mqtt_decode_publish(0,
                                         BYTES("\x00\x09"
                                               "abc"),
                                         &p),
                     IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_decode_publish(0, BYTES("\x00"), &p), IOTDM_E_MALFORMED);
}

static void test_publish_empty_payload_ok(void **state)
{
    (void)state;
    mqtt_publish p;
    assert_int_equal(mqtt_decode_publish(0x01, BYTES("\x00\x01t"), &p), IOTDM_OK);
    assert_int_equal(p.payload.len, 0);
    assert_true(p.retain);
}

static void test_publish_encode_invalid_zero(void **state)
{
    (void)state;
    uint8_t buf[16];
    assert_int_equal(mqtt_encode_publish_header(buf, sizeof buf, "t", 1, 3, false, false, 1, 0), 0);
    assert_int_equal(mqtt_encode_publish_header(buf, sizeof buf, "t", 1, 1, false, false, 0, 0), 0);
    assert_int_equal(mqtt_encode_publish_header(buf, sizeof buf, "t", 65536, 0, false, false, 0, 0),
                     0);
    assert_int_equal(mqtt_encode_publish_header(buf, sizeof buf, "t", 1, 0, false, false, 0,
                                                MQTT_MAX_REMAINING_LEN),
                     0);
}

/* ---- packet-id acks ---------------------------------------------------------------------- */

static void test_ack_round_trip_each_type_equal(void **state)
{
    (void)state;
    static const mqtt_packet_type types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP,
                                             MQTT_UNSUBACK};
    uint8_t buf[4];
    mqtt_fixed_header h;
    uint16_t id;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        assert_int_equal(mqtt_encode_ack(buf, sizeof buf, types[i], 0xBEEF), 4);
        const uint8_t *body = frame_ok(buf, 4, types[i], &h);
        assert_int_equal(h.flags, types[i] == MQTT_PUBREL ? 2 : 0);
        assert_int_equal(mqtt_decode_packet_id(body, h.remaining_len, &id), IOTDM_OK);
        assert_int_equal(id, 0xBEEF);
    }
    mqtt_encode_ack(buf, sizeof buf, MQTT_PUBACK, 1);
    assert_memory_equal(buf, "\x40\x02\x00\x01", 4);
    mqtt_encode_ack(buf, sizeof buf, MQTT_PUBREL, 1);
    assert_memory_equal(buf, "\x62\x02\x00\x01", 4);
}

static void test_ack_bad_length_or_zero_id_malformed(void **state)
{
    (void)state;
    uint16_t id;
    assert_int_equal(mqtt_decode_packet_id(BYTES("\x01"), &id), IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_decode_packet_id(BYTES("\x00\x01\x00"), &id), IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_decode_packet_id(BYTES("\x00\x00"), &id), IOTDM_E_MALFORMED);
}

static void test_ack_encode_wrong_type_zero(void **state)
{
    (void)state;
    uint8_t buf[4];
    assert_int_equal(mqtt_encode_ack(buf, sizeof buf, MQTT_PINGREQ, 1), 0);
    assert_int_equal(mqtt_encode_ack(buf, sizeof buf, MQTT_PUBACK, 0), 0);
    assert_int_equal(mqtt_encode_simple(buf, sizeof buf, MQTT_PUBACK), 0);
}

/* ---- SUBSCRIBE / SUBACK / UNSUBSCRIBE ---------------------------------------------------- */

static void test_subscribe_round_trip_filters_equal(void **state)
{
    (void)state;
    static const char *const filters[] = {
        "$iothub/twin/res/#", "devices/dev1/messages/devicebound/#", "$iothub/methods/POST/#"};
    static const uint8_t qos[] = {0, 1, 2};
    uint8_t buf[256];
    mqtt_fixed_header h;
    mqtt_sub_iter it;
    mqtt_span f;
    uint8_t q;
    uint16_t id;
    size_t n = mqtt_encode_subscribe(buf, sizeof buf, 42, filters, qos, 3);
    const uint8_t *body = frame_ok(buf, n, MQTT_SUBSCRIBE, &h);
    assert_int_equal(h.flags, 2);
    assert_int_equal(mqtt_sub_iter_init(&it, true, body, h.remaining_len, &id), IOTDM_OK);
    assert_int_equal(id, 42);
    for (size_t i = 0; i < 3; i++) {
        assert_true(mqtt_sub_iter_next(&it, &f, &q));
        assert_true(span_eq(f, filters[i]));
        assert_int_equal(q, qos[i]);
    }
    assert_false(mqtt_sub_iter_next(&it, &f, &q));
    assert_false(mqtt_sub_iter_next(&it, &f, &q));
}

static void test_subscribe_bytes_exact(void **state)
{
    (void)state;
    static const char *const filters[] = {"a/#"};
    static const uint8_t qos[] = {1};
    uint8_t buf[16];
    size_t n = mqtt_encode_subscribe(buf, sizeof buf, 1, filters, qos, 1);
    assert_int_equal(n, 10);
    assert_memory_equal(buf,
                        "\x82\x08\x00\x01\x00\x03"
                        "a/#\x01",
                        10);
}

static void test_unsubscribe_round_trip_filters_equal(void **state)
{
    (void)state;
    static const char *const filters[] = {"$iothub/twin/res/#", "x"};
    uint8_t buf[64];
    mqtt_fixed_header h;
    mqtt_sub_iter it;
    mqtt_span f;
    uint8_t q = 9;
    uint16_t id;
    size_t n = mqtt_encode_unsubscribe(buf, sizeof buf, 7, filters, 2);
    const uint8_t *body = frame_ok(buf, n, MQTT_UNSUBSCRIBE, &h);
    assert_int_equal(h.flags, 2);
    assert_int_equal(mqtt_sub_iter_init(&it, false, body, h.remaining_len, &id), IOTDM_OK);
    assert_int_equal(id, 7);
    assert_true(mqtt_sub_iter_next(&it, &f, &q));
    assert_true(span_eq(f, "$iothub/twin/res/#"));
    assert_int_equal(q, 0);
    assert_true(mqtt_sub_iter_next(&it, &f, &q));
    assert_true(span_eq(f, "x"));
    assert_false(mqtt_sub_iter_next(&it, &f, &q));
}

static void test_subscribe_bad_packets_malformed(void **state)
{
    (void)state;
    mqtt_sub_iter it;
    uint16_t id;
    /* packet id 0 */
    assert_int_equal(mqtt_sub_iter_init(&it, true, BYTES("\x00\x00\x00\x01x\x00"), &id),
                     IOTDM_E_MALFORMED);
    /* no filters */
    assert_int_equal(mqtt_sub_iter_init(&it, true, BYTES("\x00\x01"), &id), IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_sub_iter_init(&it, true, BYTES("\x00"), &id), IOTDM_E_MALFORMED);
    /* empty filter */
    assert_int_equal(mqtt_sub_iter_init(&it, true, BYTES("\x00\x01\x00\x00\x00"), &id),
                     IOTDM_E_MALFORMED);
    /* QoS 3 */
    assert_int_equal(mqtt_sub_iter_init(&it, true, BYTES("\x00\x01\x00\x01x\x03"), &id),
                     IOTDM_E_MALFORMED);
    /* reserved option bits */
    assert_int_equal(mqtt_sub_iter_init(&it, true, BYTES("\x00\x01\x00\x01x\x04"), &id),
                     IOTDM_E_MALFORMED);
    /* options byte missing (second filter) */
    assert_int_equal(mqtt_sub_iter_init(&it, true, BYTES("\x00\x01\x00\x01x\x00\x00\x01y"), &id),
                     IOTDM_E_MALFORMED);
    /* invalid UTF-8 and U+0000 */
    assert_int_equal(mqtt_sub_iter_init(&it, true, BYTES("\x00\x01\x00\x01\xFF\x00"), &id),
                     IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_sub_iter_init(&it, true, BYTES("\x00\x01\x00\x01\x00\x00"), &id),
                     IOTDM_E_MALFORMED);
    /* filter runs past the end */
    assert_int_equal(mqtt_sub_iter_init(&it, true, BYTES("\x00\x01\x00\x05x\x00"), &id),
                     IOTDM_E_MALFORMED);
    /* trailing byte */
    assert_int_equal(mqtt_sub_iter_init(&it, true, BYTES("\x00\x01\x00\x01x\x00\x00"), &id),
                     IOTDM_E_MALFORMED);
    /* nothing left behind for a failed init */
    mqtt_span f;
    uint8_t q;
    assert_false(mqtt_sub_iter_next(&it, &f, &q));
}

static void test_unsubscribe_bad_packets_malformed(void **state)
{
    (void)state;
    mqtt_sub_iter it;
    uint16_t id;
    assert_int_equal(mqtt_sub_iter_init(&it, false, BYTES("\x00\x00\x00\x01x"), &id),
                     IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_sub_iter_init(&it, false, BYTES("\x00\x01"), &id), IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_sub_iter_init(&it, false, BYTES("\x00\x01\x00\x00"), &id),
                     IOTDM_E_MALFORMED);
    /* a SUBSCRIBE-style options byte is a trailing byte here */
    assert_int_equal(mqtt_sub_iter_init(&it, false, BYTES("\x00\x01\x00\x01x\x00"), &id),
                     IOTDM_E_MALFORMED);
}

static void test_suback_round_trip_codes_equal(void **state)
{
    (void)state;
    static const uint8_t codes[] = {0, 1, MQTT_SUBACK_FAILURE};
    uint8_t buf[16];
    mqtt_fixed_header h;
    uint16_t id;
    mqtt_span got;
    size_t n = mqtt_encode_suback(buf, sizeof buf, 300, codes, 3);
    assert_int_equal(n, 7);
    assert_memory_equal(buf, "\x90\x05\x01\x2C\x00\x01\x80", 7);
    const uint8_t *body = frame_ok(buf, n, MQTT_SUBACK, &h);
    assert_int_equal(mqtt_decode_suback(body, h.remaining_len, &id, &got), IOTDM_OK);
    assert_int_equal(id, 300);
    assert_int_equal(got.len, 3);
    assert_memory_equal(got.ptr, codes, 3);
}

static void test_suback_bad_code_malformed(void **state)
{
    (void)state;
    uint16_t id;
    mqtt_span got;
    assert_int_equal(mqtt_decode_suback(BYTES("\x00\x01\x03"), &id, &got), IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_decode_suback(BYTES("\x00\x01"), &id, &got), IOTDM_E_MALFORMED);
    assert_int_equal(mqtt_decode_suback(BYTES("\x00\x00\x00"), &id, &got), IOTDM_E_MALFORMED);
}

/* ---- PINGREQ / PINGRESP / DISCONNECT ----------------------------------------------------- */

static void test_simple_round_trip_each_type_equal(void **state)
{
    (void)state;
    static const mqtt_packet_type types[] = {MQTT_PINGREQ, MQTT_PINGRESP, MQTT_DISCONNECT};
    static const uint8_t first[] = {0xC0, 0xD0, 0xE0};
    uint8_t buf[2];
    mqtt_fixed_header h;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(mqtt_encode_simple(buf, sizeof buf, types[i]), 2);
        assert_int_equal(buf[0], first[i]);
        assert_int_equal(buf[1], 0);
        frame_ok(buf, 2, types[i], &h);
        assert_int_equal(h.remaining_len, 0);
    }
}

/* ---- encoders and small buffers ---------------------------------------------------------- */

static void test_encode_small_cap_writes_nothing(void **state)
{
    (void)state;
    uint8_t buf[64];
    static const char *const filters[] = {"$iothub/methods/POST/#"};
    static const uint8_t qos[] = {0};
    static const uint8_t codes[] = {0};
    mqtt_connect_opts o = {.client_id = "dev1", .username = "u"};
    size_t need[8];
    uint8_t full[64];

    memset(buf, 0xAA, sizeof buf);
    need[0] = mqtt_encode_connack(buf, 3, false, 0);
    need[1] = mqtt_encode_ack(buf, 3, MQTT_PUBACK, 1);
    need[2] = mqtt_encode_suback(buf, 4, 1, codes, 1);
    need[3] = mqtt_encode_simple(buf, 1, MQTT_PINGRESP);
    need[4] = mqtt_encode_publish_header(buf, 5, "abcd", 4, 1, false, false, 1, 100);
    need[5] = mqtt_encode_connect(buf, 10, &o);
    need[6] = mqtt_encode_subscribe(buf, 10, 1, filters, qos, 1);
    need[7] = mqtt_encode_publish(buf, 10, "abcd", 4, 0, false, false, 0, BYTES("payload"));
    for (size_t i = 0; i < sizeof buf; i++)
        assert_int_equal(buf[i], 0xAA);

    assert_int_equal(need[0], mqtt_encode_connack(full, sizeof full, false, 0));
    assert_int_equal(need[1], mqtt_encode_ack(full, sizeof full, MQTT_PUBACK, 1));
    assert_int_equal(need[2], mqtt_encode_suback(full, sizeof full, 1, codes, 1));
    assert_int_equal(need[3], mqtt_encode_simple(full, sizeof full, MQTT_PINGRESP));
    assert_int_equal(
        need[4], mqtt_encode_publish_header(full, sizeof full, "abcd", 4, 1, false, false, 1, 100));
    assert_int_equal(need[5], mqtt_encode_connect(full, sizeof full, &o));
    assert_int_equal(need[6], mqtt_encode_subscribe(full, sizeof full, 1, filters, qos, 1));
    assert_int_equal(need[7], mqtt_encode_publish(full, sizeof full, "abcd", 4, 0, false, false, 0,
                                                  BYTES("payload")));
    /* Exactly the needed size is enough. */
    mqtt_encode_connect(full, sizeof full, &o);
    assert_int_equal(mqtt_encode_connect(buf, need[5], &o), need[5]);
    assert_memory_equal(buf, full, need[5]);
}

static void test_encode_subscribe_invalid_zero(void **state)
{
    (void)state;
    uint8_t buf[64];
    static const char *const filters[] = {"a"};
    static const uint8_t bad_qos[] = {3};
    static const uint8_t qos[] = {0};
    assert_int_equal(mqtt_encode_subscribe(buf, sizeof buf, 1, filters, bad_qos, 1), 0);
    assert_int_equal(mqtt_encode_subscribe(buf, sizeof buf, 0, filters, qos, 1), 0);
    assert_int_equal(mqtt_encode_subscribe(buf, sizeof buf, 1, filters, qos, 0), 0);
    assert_int_equal(mqtt_encode_subscribe(buf, sizeof buf, 1, filters, NULL, 1), 0);
    assert_int_equal(mqtt_encode_suback(buf, sizeof buf, 1, qos, 0), 0);
    assert_int_equal(mqtt_encode_unsubscribe(buf, sizeof buf, 0, filters, 1), 0);
}

static void test_packet_type_name_known_and_unknown(void **state)
{
    (void)state;
    assert_string_equal(mqtt_packet_type_name(MQTT_CONNECT), "CONNECT");
    assert_string_equal(mqtt_packet_type_name(MQTT_DISCONNECT), "DISCONNECT");
    assert_string_equal(mqtt_packet_type_name((mqtt_packet_type)0), "?");
    assert_string_equal(mqtt_packet_type_name((mqtt_packet_type)15), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_type_zero_malformed),
        cmocka_unit_test(test_frame_type_fifteen_malformed),
        cmocka_unit_test(test_frame_reserved_flags_wrong_malformed),
        cmocka_unit_test(test_frame_required_flags_ok),
        cmocka_unit_test(test_frame_varint_four_byte_max_accepted),
        cmocka_unit_test(test_frame_varint_five_bytes_malformed),
        cmocka_unit_test(test_frame_varint_boundaries_decoded),
        cmocka_unit_test(test_frame_too_large_from_header_alone),
        cmocka_unit_test(test_frame_fixed_size_packet_wrong_length_malformed),
        cmocka_unit_test(test_frame_two_packets_first_only),
        cmocka_unit_test(test_frame_every_cut_incomplete),
        cmocka_unit_test(test_utf8_multibyte_valid),
        cmocka_unit_test(test_utf8_bad_sequences_rejected),
        cmocka_unit_test(test_connect_encode_bytes_exact),
        cmocka_unit_test(test_connect_round_trip_fields_equal),
        cmocka_unit_test(test_connect_x509_no_password_ok),
        cmocka_unit_test(test_connect_empty_client_id_ok),
        cmocka_unit_test(test_connect_wrong_protocol_unsupported),
        cmocka_unit_test(test_connect_truncated_header_malformed),
        cmocka_unit_test(test_connect_bad_flags_malformed),
        cmocka_unit_test(test_connect_strings_past_end_malformed),
        cmocka_unit_test(test_connect_trailing_bytes_malformed),
        cmocka_unit_test(test_connect_bad_utf8_malformed),
        cmocka_unit_test(test_connect_will_topic_wildcard_or_empty_malformed),
        cmocka_unit_test(test_connect_encode_password_without_user_zero),
        cmocka_unit_test(test_connack_round_trip_fields_equal),
        cmocka_unit_test(test_connack_reserved_bits_malformed),
        cmocka_unit_test(test_publish_round_trip_each_qos_equal),
        cmocka_unit_test(test_publish_header_plus_payload_matches_whole),
        cmocka_unit_test(test_publish_qos3_malformed),
        cmocka_unit_test(test_publish_qos2_decodes_ok),
        cmocka_unit_test(test_publish_packet_id_zero_malformed),
        cmocka_unit_test(test_publish_bad_topic_malformed),
        cmocka_unit_test(test_publish_empty_payload_ok),
        cmocka_unit_test(test_publish_encode_invalid_zero),
        cmocka_unit_test(test_ack_round_trip_each_type_equal),
        cmocka_unit_test(test_ack_bad_length_or_zero_id_malformed),
        cmocka_unit_test(test_ack_encode_wrong_type_zero),
        cmocka_unit_test(test_subscribe_round_trip_filters_equal),
        cmocka_unit_test(test_subscribe_bytes_exact),
        cmocka_unit_test(test_unsubscribe_round_trip_filters_equal),
        cmocka_unit_test(test_subscribe_bad_packets_malformed),
        cmocka_unit_test(test_unsubscribe_bad_packets_malformed),
        cmocka_unit_test(test_suback_round_trip_codes_equal),
        cmocka_unit_test(test_suback_bad_code_malformed),
        cmocka_unit_test(test_simple_round_trip_each_type_equal),
        cmocka_unit_test(test_encode_small_cap_writes_nothing),
        cmocka_unit_test(test_encode_subscribe_invalid_zero),
        cmocka_unit_test(test_packet_type_name_known_and_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
