/* Live events: telemetry, connection-state changes and twin changes, retained in the store and
 * announced to listeners (the server-sent-events stream) once committed.
 *
 * Every event is a row of the store's telemetry stream. Its kind is the system property
 * "iothub-message-source", with Azure's routing names: "Telemetry", "deviceConnectionStateEvents",
 * "twinChangeEvents". */
#ifndef IOTDM_HUB_EVENTS_H
#define IOTDM_HUB_EVENTS_H

#include <jansson.h>
#include <stdbool.h>

#include "hub/hub.h"

#define HUB_EVENT_TELEMETRY  "Telemetry"
#define HUB_EVENT_CONNECTION "deviceConnectionStateEvents"
#define HUB_EVENT_TWIN       "twinChangeEvents"
#define HUB_EVENT_FILE       "fileUploadNotifications"

hub_events *hub_events_new(hub *h);
void hub_events_free(hub_events *ev);

/* Appends msg to the retained stream (msg->seq is set); listeners hear of it after the commit. The
 * hub stamps iothub-enqueuedtime and iothub-message-source when absent. */
iotdm_result hub_events_append(hub_events *ev, hub_telemetry *msg);
/* A connection-state event. */
void hub_events_connection(hub_events *ev, const char *device_id, const char *module_id,
                           bool connected);
/* A twin-change event: section is "desired", "reported" or "tags"; patch is what changed. */
void hub_events_twin(hub_events *ev, const char *device_id, const char *section, int64_t version,
                     const json_t *patch);

/* A file-upload notification (the device reported an upload's outcome); takes the reference. */
void hub_events_file(hub_events *ev, const char *device_id, json_t *notification);

/* Listeners are told that new events were committed and synced (they read them from the store,
 * up to hub_events_durable_seq: later rows may still be waiting for the disk). */
int64_t hub_events_durable_seq(const hub_events *ev);
typedef void (*hub_events_listener)(void *ctx);
void hub_events_listen(hub_events *ev, hub_events_listener fn, void *ctx);

#endif
