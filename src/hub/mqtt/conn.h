/* One device's MQTT connection: shared by the session, inbound-publish and outbound code. */
#ifndef IOTDM_HUB_MQTT_CONN_H
#define IOTDM_HUB_MQTT_CONN_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdbool.h>
#include <stdint.h>

#include "hub/hub.h"
#include "proto/azure_topics.h"
#include "proto/mqtt.h"

/* Azure's limits (azure-protocols.md §1.16): the largest packet we read is a 256 KB message plus
 * room for its topic and property bag. Anything larger closes the connection. */
#define HUB_MQTT_MAX_PACKET   (256 * 1024 + 16 * 1024)
#define HUB_D2C_MAX_BYTES     (256 * 1024)
#define HUB_METHOD_MAX_BYTES  (128 * 1024)
#define HUB_C2D_MAX_PENDING   50
#define HUB_KEEPALIVE_CAP_S   1767 /* Azure's load-balancer idle limit */
#define HUB_CONNECT_TIMEOUT_S 30
#define HUB_SAS_SKEW_S        300 /* Microsoft accepts tokens up to 5 minutes past expiry */

#define HUB_SUB_BIT(kind) (1u << (unsigned)(kind))

typedef enum { CONN_AWAIT_CONNECT, CONN_ACTIVE, CONN_CLOSING } hub_conn_state;

typedef struct {
    uint16_t packet_id;
    int64_t seq;
} hub_c2d_inflight;

struct hub_mqtt_conn {
    hub *h;
    struct bufferevent *bev;
    hub_conn_state state;
    char peer[48];
    /* The identity, set at CONNECT (hub_conn_set_identity): three strings in one allocation, so
     * an idle connection does not carry 500 bytes of fixed-size id buffers. "" before CONNECT. */
    const char *client_id; /* "dev" or "dev/mod": the key in h->conns */
    const char *device_id;
    const char *module_id;
    char *ident;
    bool clean_session;
    uint32_t subs; /* HUB_SUB_BIT(az_sub_kind) */
    uint16_t keepalive_s;
    int64_t last_rx_ms;          /* monotonic */
    int64_t activity_written_ms; /* wall clock of the last lastActivityTime write */
    int64_t token_expiry_s;      /* 0: no expiry (X.509) */
    struct event *timer;         /* connect timeout, keep-alive and token expiry */
    uint16_t next_packet_id;
    hub_c2d_inflight *inflight; /* HUB_C2D_MAX_PENDING entries, allocated at the first delivery */
    size_t ninflight;
    /* Acknowledgements waiting for the group commit (made when needed). They may span two
     * epochs (hub.h): the first held_sealed_len bytes belong to the sealed one, the rest to the
     * open one, held_epoch. */
    struct evbuffer *held;
    uint32_t held_sealed_len;
    uint32_t held_epoch; /* low bits of the epoch number: only equality with the open one matters */
    char *will_topic;    /* the will (§1.2): sent as telemetry if the connection drops */
    uint8_t *will_payload;
    size_t will_len;
    bool waiting_commit;         /* held has bytes: a flush is registered for held_epoch */
    bool c2d_after_commit;       /* deliver C2D once the held acknowledgements (a SUBACK) are out */
    unsigned refs;               /* outstanding deferred callbacks; freed at 0 once closing */
    struct hub_dps_session *dps; /* a DPS connection (dps/dps_mqtt.c); NULL for devices */
};

/* session.c */
void hub_conn_close(hub_mqtt_conn *c, const char *reason);
/* Sets the connection's identity (copies the strings; they may be the current ones). */
bool hub_conn_set_identity(hub_mqtt_conn *c, const char *client_id, const char *device_id,
                           const char *module_id);
/* Queues bytes that may only leave after the current group commit. */
void hub_conn_write_after_commit(hub_mqtt_conn *c, const void *data, size_t len);
/* Sends a QoS 0 publish now. */
void hub_conn_publish(hub_mqtt_conn *c, const char *topic, size_t topic_len, const void *payload,
                      size_t len);

/* publish_in.c: a device's PUBLISH, and its will when the connection drops. */
void hub_conn_on_publish(hub_mqtt_conn *c, const mqtt_publish *p);
void hub_conn_publish_will(hub_mqtt_conn *c);
/* outbound.c */
void hub_conn_on_puback(hub_mqtt_conn *c, uint16_t packet_id);
void hub_conn_send_c2d_pending(hub_mqtt_conn *c);

#endif
