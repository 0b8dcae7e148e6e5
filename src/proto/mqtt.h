/* MQTT 3.1.1 codec for both ends: framing, decoders that point into the input, encoders. */
#ifndef IOTDM_PROTO_MQTT_H
#define IOTDM_PROTO_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iotdm/result.h"

/* Largest remaining length a 4-byte varint can carry (MQTT 3.1.1 §2.2.3). */
#define MQTT_MAX_REMAINING_LEN 268435455u
/* Largest fixed header: type byte plus a 4-byte remaining length. */
#define MQTT_FIXED_HEADER_MAX 5u
/* Room mqtt_encode_publish_header needs: fixed header, topic length + topic, packet id. */
#define MQTT_PUBLISH_HEADER_MAX(topic_len) (5 + 2 + (topic_len) + 2)

/* CONNACK return codes (§3.2.2.3). */
#define MQTT_CONNACK_ACCEPTED              0x00
#define MQTT_CONNACK_BAD_PROTOCOL_VERSION  0x01
#define MQTT_CONNACK_IDENTIFIER_REJECTED   0x02
#define MQTT_CONNACK_SERVER_UNAVAILABLE    0x03
#define MQTT_CONNACK_BAD_USERNAME_PASSWORD 0x04
#define MQTT_CONNACK_NOT_AUTHORIZED        0x05
/* SUBACK failure code (§3.9.3). */
#define MQTT_SUBACK_FAILURE 0x80

/* A byte range inside the caller's input; never NUL-terminated. */
typedef struct {
    const uint8_t *ptr;
    size_t len;
} mqtt_span;

typedef enum {
    MQTT_CONNECT = 1,
    MQTT_CONNACK,
    MQTT_PUBLISH,
    MQTT_PUBACK,
    MQTT_PUBREC,
    MQTT_PUBREL,
    MQTT_PUBCOMP,
    MQTT_SUBSCRIBE,
    MQTT_SUBACK,
    MQTT_UNSUBSCRIBE,
    MQTT_UNSUBACK,
    MQTT_PINGREQ,
    MQTT_PINGRESP,
    MQTT_DISCONNECT
} mqtt_packet_type;

typedef struct {
    mqtt_packet_type type;
    uint8_t flags; /* low nibble of the first byte */
    size_t header_len;
    size_t remaining_len;
} mqtt_fixed_header;

/* "CONNECT", "PUBLISH", ... for logs; "?" for anything else. Static storage. */
const char *mqtt_packet_type_name(mqtt_packet_type type);

/* True when s[0..len) is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above
 * U+10FFFF) without U+0000, as MQTT requires of every string (§1.5.3). */
bool mqtt_utf8_valid(const uint8_t *s, size_t len);

/* Finds one complete packet at the start of buf. IOTDM_OK: *out filled, the packet is
 * buf[0 .. header_len + remaining_len). IOTDM_E_INCOMPLETE: need more bytes.
 * IOTDM_E_MALFORMED: type 0 or 15, reserved flags wrong for the type (SUBSCRIBE, UNSUBSCRIBE and
 * PUBREL need 0x2, every other type but PUBLISH 0x0), a remaining-length varint longer than
 * 4 bytes, or a fixed-size packet with the wrong length (CONNACK and the packet-id acks: 2;
 * PINGREQ, PINGRESP, DISCONNECT: 0). IOTDM_E_TOO_LARGE: remaining_len > max_packet, reported as
 * soon as the length bytes are in, before the body arrives. Once the length bytes are in, *out is
 * filled even with IOTDM_E_INCOMPLETE, so the caller can size its buffer. Errors other than
 * IOTDM_E_INCOMPLETE are final: close the connection. */
IOTDM_NODISCARD iotdm_result mqtt_frame(const uint8_t *buf, size_t len, size_t max_packet,
                                        mqtt_fixed_header *out);

typedef struct {
    mqtt_span protocol_name;
    uint8_t protocol_level;
    bool clean_session;
    uint16_t keepalive;
    mqtt_span client_id;
    bool has_will;
    uint8_t will_qos;
    bool will_retain;
    mqtt_span will_topic;
    mqtt_span will_payload;
    bool has_username;
    mqtt_span username;
    bool has_password;
    mqtt_span password;
} mqtt_connect;

/* Decodes a CONNECT body (the bytes after the fixed header); spans point into body.
 * IOTDM_E_UNSUPPORTED when the protocol name is not "MQTT" or the level is not 4
 * (out->protocol_level is still set so the caller can answer CONNACK 1).
 * IOTDM_E_MALFORMED for everything else wrong: reserved flag bit 0 set, password without user
 * name, will QoS/retain without the will flag or will QoS 3, strings running past the end,
 * invalid UTF-8 or U+0000 in the client id, user name or will topic, an empty will topic or one
 * with wildcards, trailing bytes. The client id may be empty; the caller decides (CONNACK 2). */
IOTDM_NODISCARD iotdm_result mqtt_decode_connect(const uint8_t *body, size_t len,
                                                 mqtt_connect *out);

typedef struct {
    mqtt_span topic;
    uint8_t qos;
    bool dup;
    bool retain;
    uint16_t packet_id; /* 0 for QoS 0 */
    mqtt_span payload;
} mqtt_publish;

/* flags = fixed-header low nibble. QoS 3 -> IOTDM_E_MALFORMED; QoS 2 decodes (the caller closes,
 * as IoT Hub does). Packet id 0 with QoS > 0 -> IOTDM_E_MALFORMED. The topic must be valid UTF-8,
 * non-empty, without U+0000, '+' or '#'. The payload is the rest of the body (may be empty). */
IOTDM_NODISCARD iotdm_result mqtt_decode_publish(uint8_t flags, const uint8_t *body, size_t len,
                                                 mqtt_publish *out);

/* PUBACK/PUBREC/PUBREL/PUBCOMP/UNSUBACK body: exactly 2 bytes, packet id not 0. */
IOTDM_NODISCARD iotdm_result mqtt_decode_packet_id(const uint8_t *body, size_t len,
                                                   uint16_t *out_id);

/* CONNACK body (client side): 2 bytes, only bit 0 of the first may be set. */
IOTDM_NODISCARD iotdm_result mqtt_decode_connack(const uint8_t *body, size_t len,
                                                 bool *out_session_present,
                                                 uint8_t *out_return_code);

/* SUBACK body (client side): packet id, then one code per filter (0, 1, 2 or 0x80).
 * *out_codes points into body. */
IOTDM_NODISCARD iotdm_result mqtt_decode_suback(const uint8_t *body, size_t len,
                                                uint16_t *out_packet_id, mqtt_span *out_codes);

/* SUBSCRIBE/UNSUBSCRIBE: iterate the filters without allocating. */
typedef struct {
    const uint8_t *body;
    size_t len;
    size_t pos;
    bool is_subscribe;
} mqtt_sub_iter;

/* Checks the whole packet (packet id != 0, at least one filter, every filter valid UTF-8 and
 * non-empty, requested QoS <= 2 with the reserved bits 0 for SUBSCRIBE, no trailing bytes) and
 * positions the iterator at the first filter. Wildcard placement is not checked here: IoT Hub
 * accepts only a few fixed filters, which the caller matches exactly. IOTDM_E_MALFORMED. */
IOTDM_NODISCARD iotdm_result mqtt_sub_iter_init(mqtt_sub_iter *it, bool is_subscribe,
                                                const uint8_t *body, size_t len,
                                                uint16_t *out_packet_id);
/* Next filter; *out_qos is the requested QoS (0 for UNSUBSCRIBE). Returns false at the end. */
bool mqtt_sub_iter_next(mqtt_sub_iter *it, mqtt_span *out_filter, uint8_t *out_qos);

/* Encoders write into buf and return the packet length; when cap is too small they write nothing
 * and still return the length needed. They return 0 for what cannot be encoded (a wrong type, a
 * string over 65535 bytes, QoS > 2, packet id 0 where one is required, a packet over
 * MQTT_MAX_REMAINING_LEN). */
size_t mqtt_encode_connack(uint8_t *buf, size_t cap, bool session_present, uint8_t return_code);
/* PUBACK, PUBREC, PUBREL (flags 2), PUBCOMP, UNSUBACK. */
size_t mqtt_encode_ack(uint8_t *buf, size_t cap, mqtt_packet_type type, uint16_t packet_id);
size_t mqtt_encode_suback(uint8_t *buf, size_t cap, uint16_t packet_id, const uint8_t *codes,
                          size_t count);
/* PINGREQ, PINGRESP, DISCONNECT. */
size_t mqtt_encode_simple(uint8_t *buf, size_t cap, mqtt_packet_type type);

/* Fixed header + topic + packet id only, so the payload can be sent from where it lies
 * (scatter/gather). payload_len is counted in the remaining length; the return value is the
 * length of the header alone (at most MQTT_PUBLISH_HEADER_MAX(topic_len)). The packet id is
 * written only for QoS > 0. */
size_t mqtt_encode_publish_header(uint8_t *buf, size_t cap, const char *topic, size_t topic_len,
                                  uint8_t qos, bool dup, bool retain, uint16_t packet_id,
                                  size_t payload_len);
/* A whole PUBLISH (header and payload copied after it); returns the packet length. */
size_t mqtt_encode_publish(uint8_t *buf, size_t cap, const char *topic, size_t topic_len,
                           uint8_t qos, bool dup, bool retain, uint16_t packet_id,
                           const uint8_t *payload, size_t payload_len);

/* Client side, for the load generator and tests. NULL username/password/will_topic: absent. */
typedef struct {
    const char *client_id;
    const char *username;
    const char *password;
    uint16_t keepalive;
    bool clean_session;
    const char *will_topic;
    const uint8_t *will_payload;
    size_t will_payload_len;
    uint8_t will_qos;
    bool will_retain;
} mqtt_connect_opts;

/* Returns 0 also for a password without a user name (not allowed by MQTT 3.1.1). */
size_t mqtt_encode_connect(uint8_t *buf, size_t cap, const mqtt_connect_opts *opts);
size_t mqtt_encode_subscribe(uint8_t *buf, size_t cap, uint16_t packet_id,
                             const char *const *filters, const uint8_t *qos, size_t count);
size_t mqtt_encode_unsubscribe(uint8_t *buf, size_t cap, uint16_t packet_id,
                               const char *const *filters, size_t count);

#endif
