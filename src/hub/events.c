/* Live events: appended by units of work, announced to the loops' listeners once durable. */
#include "hub/events.h"

#include <stdatomic.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"

struct hub_events {
    atomic_int_fast64_t durable_seq;
};

/* One per loop: its listener and the task that wakes it (embedded: waking allocates nothing). */
struct hub_loop_events {
    hub_events_listener fn;
    void *ctx;
    atomic_bool wake_pending;
    hub_loop_task task;
};

iotdm_result hub_events_init(hub *h, hub_store *store)
{
    h->events = xcalloc(1, sizeof *h->events);
    if (!h->events)
        return -ENOMEM;
    /* Everything committed before the start is on the disk (the store synced it at open). */
    atomic_store(&h->events->durable_seq, hub_store_telemetry_last_seq(store));
    return IOTDM_OK;
}

void hub_events_deinit(hub *h)
{
    xfree(h->events);
    h->events = NULL;
}

static void wake_task(hub_loop *loop, void *arg)
{
    struct hub_loop_events *le = arg;
    atomic_store(&le->wake_pending, false);
    if (!loop->stopping && le->fn)
        le->fn(loop, le->ctx);
}

iotdm_result hub_events_loop_init(hub_loop *loop)
{
    loop->events = xcalloc(1, sizeof *loop->events);
    if (!loop->events)
        return -ENOMEM;
    loop->events->task.fn = wake_task;
    loop->events->task.arg = loop->events;
    return IOTDM_OK;
}

void hub_events_loop_deinit(hub_loop *loop)
{
    /* The wake task may still be queued only if the inbox was not drained; hub_deinit drains. */
    xfree(loop->events);
    loop->events = NULL;
}

void hub_events_listen(hub_loop *loop, hub_events_listener fn, void *ctx)
{
    loop->events->fn = fn;
    loop->events->ctx = ctx;
}

int64_t hub_events_durable_seq(const hub *h)
{
    return atomic_load(&h->events->durable_seq);
}

void hub_events_on_durable(void *arg, int64_t last_seq)
{
    hub *h = arg;
    int64_t prev = atomic_load(&h->events->durable_seq);
    if (last_seq <= prev)
        return;
    atomic_store(&h->events->durable_seq, last_seq); /* only the syncer thread writes it */
    for (unsigned i = 0; i < h->nloops; i++) {
        struct hub_loop_events *le = h->loops[i].events;
        if (le && le->fn && !atomic_exchange(&le->wake_pending, true))
            hub_loop_post_task(&h->loops[i], &le->task);
    }
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

iotdm_result hub_events_append(hub_store *store, hub_telemetry *msg)
{
    if (!msg->system_json)
        stamp(msg);
    return hub_store_telemetry_append(store, msg);
}

static void append_json_event(hub_store *store, const char *device_id, const char *module_id,
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
        iotdm_result r = hub_events_append(store, &msg);
        if (r < 0)
            log_warn("events", "cannot record event source=%s device=%s: %s", source, device_id,
                     iotdm_result_message(r));
    }
    json_decref(msg.system_properties);
    json_decref(msg.properties);
    free(text); /* allocated by jansson */
}

void hub_events_connection(hub_store *store, const char *device_id, const char *module_id,
                           bool connected)
{
    json_t *body = json_pack("{s:s, s:s}", "deviceId", device_id, "connectionState",
                             connected ? "Connected" : "Disconnected");
    if (module_id && *module_id)
        json_object_set_new(body, "moduleId", json_string(module_id));
    append_json_event(store, device_id, module_id, HUB_EVENT_CONNECTION, body);
}

void hub_events_job(hub_store *store, const char *source, const char *device_id, json_t *body)
{
    append_json_event(store, device_id, NULL, source, body);
}

void hub_events_file(hub_store *store, const char *device_id, json_t *notification)
{
    append_json_event(store, device_id, NULL, HUB_EVENT_FILE, notification);
}

void hub_events_twin(hub_store *store, const char *device_id, const char *section, int64_t version,
                     const json_t *patch)
{
    json_t *body = json_pack("{s:s, s:s, s:I, s:O}", "deviceId", device_id, "section", section,
                             "version", (json_int_t)version, "patch", patch);
    append_json_event(store, device_id, NULL, HUB_EVENT_TWIN, body);
}
