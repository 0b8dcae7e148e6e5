/* Live events retained in the store; listeners are woken once per commit. */
#include "hub/events.h"

#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"

#define MAX_LISTENERS 4

struct hub_events {
    hub *h;
    /* One wake-up per epoch that appended (hub.h: at most the sealed and the open one), each with
     * the last seq it appended, which is durable when it runs. */
    struct {
        uint32_t epoch;
        int64_t last_seq;
    } wakes[2];
    unsigned nwakes;
    int64_t durable_seq; /* listeners read up to here */
    struct {
        hub_events_listener fn;
        void *ctx;
    } listeners[MAX_LISTENERS];
    size_t nlisteners;
};

hub_events *hub_events_new(hub *h)
{
    hub_events *ev = xcalloc(1, sizeof *ev);
    if (ev) {
        ev->h = h;
        ev->durable_seq = hub_store_telemetry_last_seq(h->store); /* committed before the start */
    }
    return ev;
}

void hub_events_free(hub_events *ev)
{
    xfree(ev);
}

void hub_events_listen(hub_events *ev, hub_events_listener fn, void *ctx)
{
    if (ev->nlisteners < MAX_LISTENERS) {
        ev->listeners[ev->nlisteners].fn = fn;
        ev->listeners[ev->nlisteners].ctx = ctx;
        ev->nlisteners++;
    }
}

int64_t hub_events_durable_seq(const hub_events *ev)
{
    return ev->durable_seq;
}

static void wake_listeners(void *ctx, iotdm_result commit_result)
{
    hub_events *ev = ctx;
    if (ev->nwakes == 0)
        return;
    int64_t seq = ev->wakes[0].last_seq;
    ev->wakes[0] = ev->wakes[1];
    ev->nwakes--;
    if (commit_result < 0)
        return;
    ev->durable_seq = seq;
    for (size_t i = 0; i < ev->nlisteners; i++)
        ev->listeners[i].fn(ev->listeners[i].ctx);
}

/* The hub's stamps on an event given as trees (text comes stamped by its writer). */
static void stamp(hub_telemetry *msg)
{
    if (!msg->system_properties)
        msg->system_properties = json_object();
    if (!msg->enqueued_ms)
        msg->enqueued_ms = time_now_ms();
    char when[32];
    time_format_iso(msg->enqueued_ms, when, sizeof when);
    json_object_set_new(msg->system_properties, "iothub-enqueuedtime", json_string(when));
    if (!json_object_get(msg->system_properties, "iothub-message-source"))
        json_object_set_new(msg->system_properties, "iothub-message-source",
                            json_string(HUB_EVENT_TELEMETRY));
    if (!json_object_get(msg->system_properties, "iothub-connection-device-id"))
        json_object_set_new(msg->system_properties, "iothub-connection-device-id",
                            json_string(msg->device_id));
}

iotdm_result hub_events_append(hub_events *ev, hub_telemetry *msg)
{
    if (!msg->system_json)
        stamp(msg);
    iotdm_result r = hub_store_telemetry_append(ev->h->store, msg);
    if (r != IOTDM_OK)
        return r;
    uint32_t epoch = (uint32_t)ev->h->epoch;
    if (ev->nwakes == 0 || ev->wakes[ev->nwakes - 1].epoch != epoch) {
        if (ev->nwakes == 2)
            return IOTDM_E_INTERNAL; /* a third epoch cannot exist (hub.h) */
        ev->wakes[ev->nwakes++].epoch = epoch;
        hub_after_commit(ev->h, wake_listeners, ev);
    }
    ev->wakes[ev->nwakes - 1].last_seq = msg->seq;
    return r;
}

static void append_json_event(hub_events *ev, const char *device_id, const char *module_id,
                              const char *source, json_t *body)
{
    hub_telemetry msg;
    memset(&msg, 0, sizeof msg);
    snprintf(msg.device_id, sizeof msg.device_id, "%s", device_id);
    snprintf(msg.module_id, sizeof msg.module_id, "%s", module_id ? module_id : "");
    msg.system_properties =
        json_pack("{s:s, s:s, s:s}", "iothub-message-source", source, "content-type",
                  "application/json", "content-encoding", "utf-8");
    msg.properties = json_object();
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text) {
        msg.body = (unsigned char *)text;
        msg.body_len = strlen(text);
        iotdm_result r = hub_events_append(ev, &msg);
        if (r < 0)
            log_warn("events", "cannot record event source=%s device=%s: %s", source, device_id,
                     iotdm_result_message(r));
    }
    json_decref(msg.system_properties);
    json_decref(msg.properties);
    free(text); /* allocated by jansson */
}

void hub_events_connection(hub_events *ev, const char *device_id, const char *module_id,
                           bool connected)
{
    json_t *body = json_pack("{s:s, s:s}", "deviceId", device_id, "connectionState",
                             connected ? "Connected" : "Disconnected");
    if (module_id && *module_id)
        json_object_set_new(body, "moduleId", json_string(module_id));
    append_json_event(ev, device_id, module_id, HUB_EVENT_CONNECTION, body);
}

void hub_events_file(hub_events *ev, const char *device_id, json_t *notification)
{
    append_json_event(ev, device_id, NULL, HUB_EVENT_FILE, notification);
}

void hub_events_twin(hub_events *ev, const char *device_id, const char *section, int64_t version,
                     const json_t *patch)
{
    json_t *body = json_pack("{s:s, s:s, s:I, s:O}", "deviceId", device_id, "section", section,
                             "version", (json_int_t)version, "patch", patch);
    append_json_event(ev, device_id, NULL, HUB_EVENT_TWIN, body);
}
