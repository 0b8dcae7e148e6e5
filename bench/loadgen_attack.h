/* iotdm-loadgen attackers: what loadgen_attack.c (the connections, the HTTPS attacks, the
 * figures) and loadgen_attack_mqtt.c (the MQTT attacks) share. */
#ifndef IOTDM_BENCH_LOADGEN_ATTACK_H
#define IOTDM_BENCH_LOADGEN_ATTACK_H

#include "loadgen.h"

/* The attacks of issue 10's hostile mix. */
typedef enum {
    ATK_PIPELINE,      /* HTTPS requests without credentials pipelined, never read */
    ATK_PIPELINE_AUTH, /* the same with a service token (a leaked credential) */
    ATK_SLOWLORIS,     /* an HTTP header block trickled one byte at a time */
    ATK_TWIN_FLOOD,    /* an authenticated device floods twin GETs and never reads */
    ATK_NO_HANDSHAKE,  /* TCP without TLS, a partial TLS record, or TLS without CONNECT */
    ATK_UNAUTH,        /* connect, one request with a wrong signature, refused, again */
    ATK_KINDS
} atk_kind;

typedef struct lg_atk {
    lg_app *app;
    atk_kind kind;
    int slot;
    int variant;
    int fd; /* raw TCP attackers (no TLS); -1 otherwise */
    struct bufferevent *bev;
    struct event *ev; /* raw: the read watch; slowloris: the trickle timer */
    int state;        /* per kind */
    bool refused;     /* this connection saw its refusal (401, CONNACK != 0) */
    uint32_t rid;
    size_t pos;
    int64_t opened_us;
} lg_atk;

/* Flood until the output is this large; refill when it drains below half of it. */
#define ATK_OUTPUT_HIGH (64 * 1024)

/* loadgen_attack.c */
void atk_count_attacking(lg_atk *a); /* this connection got as far as its attack */
void atk_count_refused(lg_atk *a);
/* The attacker's connection ended: by the hub (counted, with its life) or by us. Reopens it
 * unless the run is stopping. */
void atk_closed(lg_atk *a, bool by_hub);

/* loadgen_attack_mqtt.c */
void atk_mqtt_connected(lg_atk *a); /* TLS is up: CONNECT */
void atk_mqtt_read(lg_atk *a);
void atk_mqtt_refill(lg_atk *a); /* the twin flood's output drained */

#endif
