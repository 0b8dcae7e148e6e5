/* One device's MQTT connection: shared by the session, inbound-publish and outbound code.
 *
 * A connection belongs to the event loop that accepted it and is touched only by that loop's
 * thread. Everything it stores or reads goes through units of work (core/work.h); the answers they
 * produce (CONNACK, PUBACK, twin responses) leave from the units' completions, in the order the
 * packets arrived (conn_unit below). */
#ifndef IOTDM_HUB_MQTT_CONN_H
#define IOTDM_HUB_MQTT_CONN_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdbool.h>
#include <stdint.h>

#include "hub/hub.h"
#include "hub/net/admission.h"
#include "proto/azure_topics.h"
#include "proto/mqtt.h"

/* Azure's limits (docs/protocol.md §6.1): the largest packet we read is a 256 KB message plus
 * room for its topic and property bag. Anything larger closes the connection. */
#define HUB_MQTT_MAX_PACKET  (256 * 1024 + 16 * 1024)
#define HUB_D2C_MAX_BYTES    (256 * 1024)
#define HUB_METHOD_MAX_BYTES (128 * 1024)
#define HUB_C2D_MAX_PENDING  50
#define HUB_KEEPALIVE_CAP_S  1767 /* Azure's load-balancer idle limit */
/* Twin GETs one connection may make per second; beyond, 429 without touching the store. Devices
 * read their twin at connect and after a missed notification: a flood serves no one and would
 * queue on the writer thread in front of everyone's writes. */
#define HUB_TWIN_GETS_PER_S 20

#define HUB_SUB_BIT(kind) (1u << (unsigned)(kind))

typedef enum {
    CONN_AWAIT_CONNECT, /* TLS and the CONNECT packet, within the handshake timeout */
    CONN_CONNECTING,    /* CONNECT being checked and recorded by a unit; nothing else is read */
    CONN_ACTIVE,
    CONN_CLOSING,
} hub_conn_state;

typedef struct {
    uint16_t packet_id;
    int64_t seq;
} hub_c2d_inflight;

typedef struct conn_unit conn_unit;

struct hub_mqtt_conn {
    hub_loop *loop;
    hub_mqtt_conn *all_prev, *all_next; /* every connection of the loop (loop->mqtt_all) */
    hub *h;
    struct bufferevent *bev;
    hub_conn_state state;
    char peer[48];
    hub_admit_ticket ticket;
    /* The identity, set at CONNECT (hub_conn_set_identity): three strings in one allocation, so
     * an idle connection does not carry 500 bytes of fixed-size id buffers. "" before CONNECT. */
    const char *client_id; /* "dev" or "dev/mod": the key in the directory */
    const char *device_id;
    const char *module_id;
    char *ident;
    uint64_t epoch; /* the directory claim (core/dir.h) made at CONNECT */
    bool owner;     /* holds the directory entry: writes the disconnect when it closes */
    bool clean_session;
    uint32_t subs; /* HUB_SUB_BIT(az_sub_kind) */
    uint16_t keepalive_s;
    int64_t last_rx_ms;          /* monotonic */
    int64_t activity_written_ms; /* wall clock of the last lastActivityTime write */
    int64_t token_expiry_s;      /* 0: no expiry (X.509) */
    int64_t deadline_ms;         /* monotonic: handshake deadline before CONNECT */
    int64_t stalled_since_ms;    /* monotonic: output first above the limit; 0 once drained */
    hub_wheel_node deadline;     /* handshake, keep-alive, token expiry and stall (loop->wheel) */
    uint16_t next_packet_id;
    uint16_t twin_gets;         /* in the current one-second window */
    int64_t twin_get_window_ms; /* monotonic start of that window */
    int64_t throttled_until_ms; /* monotonic: not read until then (hub_conn_throttle); 0: not */
    hub_c2d_inflight *inflight; /* HUB_C2D_MAX_PENDING entries, allocated at the first delivery */
    size_t ninflight;
    /* Desired-property notifications go out in $version order (outbound.c): the last version
     * sent or read by a twin GET, and patches held back until the one before them arrives. */
    int64_t desired_sent;
    struct desired_held *desired_held;
    struct event *desired_ev; /* allocated only while patches are held */
    bool c2d_fetching;        /* a unit is fetching pending C2D messages */
    bool c2d_again;           /* another delivery was asked for meanwhile */
    unsigned units;           /* units in flight for this connection */
    conn_unit *last_unit;     /* the latest of them that answers: later answers queue behind */
    bool paused_units;        /* not reading: max-inflight units in flight */
    bool paused_output;       /* not reading: unsent output above the limit */
    bool draining;            /* refused: closing once the CONNACK is written (holds a ref) */
    char *will_topic;         /* the will (docs/protocol.md §2.6): telemetry if it drops */
    uint8_t *will_payload;
    size_t will_len;
    unsigned refs;               /* units and callbacks holding c; freed at 0 once closing */
    struct hub_dps_session *dps; /* a DPS connection (dps/dps_mqtt.c); NULL for devices */
};

/* A unit of work submitted for a connection. Units answer in submission order: output that must
 * follow an answer still in flight (a PUBACK after an earlier PUBACK) waits in that unit's
 * `after` buffer (conn_write). */
struct conn_unit {
    hub_work w; /* first */
    hub_mqtt_conn *c;
    struct evbuffer *after;
};

/* session.c */
void hub_conn_close(hub_mqtt_conn *c, const char *reason);
/* Traffic shaping: c is not read until until_ms (monotonic), then read again; its silence
 * meanwhile does not count against its keep-alive. */
void hub_conn_throttle(hub_mqtt_conn *c, int64_t until_ms);
/* Sets the connection's identity (copies the strings; they may be the current ones). */
bool hub_conn_set_identity(hub_mqtt_conn *c, const char *client_id, const char *device_id,
                           const char *module_id);
/* Submits u for c (c is held until u completes). Stops reading c while max-inflight units are in
 * flight. answers: u's done writes output that later answers must follow. */
void conn_submit(hub_mqtt_conn *c, conn_unit *u, hub_work_run_fn run, hub_work_done_fn done,
                 unsigned flags, bool answers);
/* Ends u's part of the connection: writes what queued behind it, releases c. Call at the end of
 * every done; returns false when c is closing (the caller must not touch it after). */
bool conn_unit_finish(conn_unit *u);
/* Writes bytes that must keep their place among the answers (after those still in flight). */
void conn_write(hub_mqtt_conn *c, const void *data, size_t len);
/* Writes now (server-initiated messages), noting output above the limit. */
void conn_write_now(hub_mqtt_conn *c, const void *data, size_t len);
/* Whether the connection can take more server-initiated output now. */
bool conn_writable(const hub_mqtt_conn *c);
/* Sends a QoS 0 publish now. */
void hub_conn_publish(hub_mqtt_conn *c, const char *topic, size_t topic_len, const void *payload,
                      size_t len);

/* publish_in.c: a device's PUBLISH, and its will when the connection drops. */
void hub_conn_on_publish(hub_mqtt_conn *c, const mqtt_publish *p);
void hub_conn_publish_will(hub_mqtt_conn *c);
/* outbound.c */
void hub_conn_on_puback(hub_mqtt_conn *c, uint16_t packet_id);
/* A twin GET answered the device with desired $version: notifications up to it are stale. */
void hub_conn_desired_seen(hub_mqtt_conn *c, int64_t version);
/* Frees the held notifications (the connection is going). */
void hub_conn_desired_free(hub_mqtt_conn *c);
void hub_conn_send_c2d_pending(hub_mqtt_conn *c);

#endif
