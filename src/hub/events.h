/* Live events: telemetry, connection-state changes, twin changes and file-upload notifications,
 * retained in the store and announced to listeners (the server-sent-event streams) once durable.
 *
 * Every event is a row of the store's telemetry stream. Its kind is the system property
 * "iothub-message-source", with Azure's routing names: "Telemetry", "deviceConnectionStateEvents",
 * "twinChangeEvents", "fileUploadNotifications".
 *
 * The append functions run inside units of work (on a store thread); the executor reports the
 * highest seq of each durable group (hub_events_on_durable), and listeners on the loops are woken
 * then. */
#ifndef IOTDM_HUB_EVENTS_H
#define IOTDM_HUB_EVENTS_H

#include <jansson.h>
#include <stdbool.h>

#include "hub/hub.h"

#define HUB_EVENT_TELEMETRY  "Telemetry"
#define HUB_EVENT_CONNECTION "deviceConnectionStateEvents"
#define HUB_EVENT_TWIN       "twinChangeEvents"
#define HUB_EVENT_FILE       "fileUploadNotifications"
/* iotdm's own: a job changed status (the body is the job as GET serves it), and a device's record
 * of a job reached its end (the body is the DeviceJob). */
#define HUB_EVENT_JOB        "jobLifecycleEvents"
#define HUB_EVENT_DEVICE_JOB "deviceJobEvents"

/* Hub-wide state; store is read once for the last seq committed before the start. */
IOTDM_NODISCARD iotdm_result hub_events_init(hub *h, hub_store *store);
void hub_events_deinit(hub *h);
IOTDM_NODISCARD iotdm_result hub_events_loop_init(hub_loop *loop);
void hub_events_loop_deinit(hub_loop *loop);

/* ---- in units of work (store threads) ---- */

/* Appends msg to the retained stream (msg->seq is set). The hub stamps iothub-enqueuedtime and
 * iothub-message-source when absent (messages given as trees; text comes stamped). */
IOTDM_NODISCARD iotdm_result hub_events_append(hub_store *store, hub_telemetry *msg);
/* A connection-state event; errors are logged (an event is not worth failing its unit for). */
void hub_events_connection(hub_store *store, const char *device_id, const char *module_id,
                           bool connected);
/* A job event (HUB_EVENT_JOB or HUB_EVENT_DEVICE_JOB); device_id "" for a job's own. Takes body. */
void hub_events_job(hub_store *store, const char *source, const char *device_id, json_t *body);
/* A twin-change event: section is "desired", "reported" or "tags"; patch is what changed. */
void hub_events_twin(hub_store *store, const char *device_id, const char *section, int64_t version,
                     const json_t *patch);
/* A file-upload notification (the device reported an upload's outcome); takes the reference. */
void hub_events_file(hub_store *store, const char *device_id, json_t *notification);

/* ---- durability and listeners ---- */

/* The executor's callback (syncer thread): events up to last_seq are durable. arg is the hub. */
void hub_events_on_durable(void *arg, int64_t last_seq);
/* Listeners read events up to here: later rows may still be waiting for the disk. Any thread. */
int64_t hub_events_durable_seq(const hub *h);
/* One listener per loop: fn(loop, ctx) runs on that loop after new events became durable
 * (wake-ups coalesce: one run may cover several groups). */
typedef void (*hub_events_listener)(hub_loop *loop, void *ctx);
void hub_events_listen(hub_loop *loop, hub_events_listener fn, void *ctx);

#endif
