/* The hub's periodic work: expiry of C2D messages, DPS operations and TPM challenges, telemetry and
 * upload retention, and the refusal summary lines. Runs on loop 0. */
#ifndef IOTDM_HUB_HOUSEKEEPING_H
#define IOTDM_HUB_HOUSEKEEPING_H

#include <event2/util.h>

#define HUB_HOUSEKEEPING_INTERVAL_S 10

/* The timer callback (arg: the hub). */
void hub_housekeeping_cb(evutil_socket_t fd, short what, void *arg);

#endif
