/* A timing wheel: one libevent timer per loop drives the deadlines of all its connections, instead
 * of a struct event (and its allocation) per connection, which an idle connection would carry
 * for nothing most of the time. Deadlines are kept to the wheel's tick (250 ms). Single-threaded:
 * the loop's own thread only. */
#ifndef IOTDM_HUB_CORE_WHEEL_H
#define IOTDM_HUB_CORE_WHEEL_H

#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>

#include "iotdm/result.h"

#define HUB_WHEEL_TICK_MS 250
#define HUB_WHEEL_SLOTS   512 /* 128 s per turn; later deadlines go round again */

typedef struct hub_wheel_node hub_wheel_node;
typedef void (*hub_wheel_fn)(hub_wheel_node *node);

/* Embedded in what it times. Zero-initialised means "not armed". */
struct hub_wheel_node {
    hub_wheel_node *next, *prev;
    int64_t due_ms; /* monotonic */
    hub_wheel_fn fn;
};

typedef struct {
    struct event *tick;
    int64_t now_ms;                        /* the time the wheel has been turned to */
    unsigned slot;                         /* the slot of now_ms */
    hub_wheel_node slots[HUB_WHEEL_SLOTS]; /* list heads */
    hub_wheel_node *cursor;                /* next node to look at while a slot is being expired */
} hub_wheel;

IOTDM_NODISCARD iotdm_result hub_wheel_init(hub_wheel *w, struct event_base *base);
void hub_wheel_deinit(hub_wheel *w);

/* (Re)arms node to call fn at due_ms (monotonic; a past one fires on the next tick). */
void hub_wheel_arm(hub_wheel *w, hub_wheel_node *node, int64_t due_ms, hub_wheel_fn fn);
/* Disarms node (harmless when it is not armed). Safe from inside any wheel callback. */
void hub_wheel_cancel(hub_wheel *w, hub_wheel_node *node);

#endif
