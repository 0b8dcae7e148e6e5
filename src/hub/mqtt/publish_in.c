/* What devices publish: telemetry, twin GET and reported PATCH, method responses (§1.7-1.13). */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/jsonw.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/urlenc.h"
#include "hub/errors.h"
#include "hub/events.h"
#include "hub/methods.h"
#include "hub/mqtt/conn.h"
#include "hub/twin_ops.h"

/* Activity is written at most this often per connection: telemetry must not cost a row update. */
#define ACTIVITY_WRITE_INTERVAL_MS 10000

/* Wire names of system properties and the names the hub's event stream uses (AMQP's). */
static const struct {
    const char *wire;
    const char *name;
} system_props[] = {
    {"$.mid", "message-id"},
    {"$.cid", "correlation-id"},
    {"$.uid", "user-id"},
    {"$.to", "to"},
    {"$.ct", "content-type"},
    {"$.ce", "content-encoding"},
    {"$.exp", "absolute-expiry-time"},
    {"$.ctime", "creation-time"},
    {"$.sub", "dt-subject"},
    {"$.ifid", "iothub-interface-id"},
    {"$.schema", "message-schema"},
    {"$.on", "output-name"},
};

/* The names under which a device's system property goes to the event stream; NULL for one the
 * device may not set (the hub's own iothub-* stamps). */
static const char *system_name(const char *wire)
{
    for (size_t i = 0; i < sizeof system_props / sizeof *system_props; i++)
        if (strcmp(wire, system_props[i].wire) == 0)
            return system_props[i].name;
    return strncmp(wire + 2, "iothub-", 7) == 0 ? NULL : wire + 2;
}

/* Decodes a property bag into the system and application property objects. */
static iotdm_result decode_bag(az_span bag, jsonw *sys, jsonw *app)
{
    az_propbag_iter it;
    az_span name, value;
    bool has_value;
    az_propbag_iter_init(&it, bag.ptr, bag.len);
    while (az_propbag_next(&it, &name, &value, &has_value)) {
        char n[1024], v[4096];
        if (urlenc_decode(name.ptr, name.len, n, sizeof n, false) < 0)
            return IOTDM_E_MALFORMED;
        v[0] = '\0';
        if (has_value && urlenc_decode(value.ptr, value.len, v, sizeof v, false) < 0)
            return IOTDM_E_MALFORMED;
        /* A %00 ends the name or value: the stored text must stay loadable without NULs. */
        size_t nlen = strlen(n), vlen = strlen(v);
        if (n[0] == '$' && n[1] == '.') {
            const char *mapped = system_name(n);
            if (mapped)
                jsonw_string(sys, mapped, strlen(mapped), v, vlen);
        } else {
            jsonw_string(app, n, nlen, v, vlen);
        }
    }
    /* A name or value that is not UTF-8 fails the writer. */
    return sys->failed || app->failed ? IOTDM_E_MALFORMED : IOTDM_OK;
}

#define STR_AND_LEN(literal) literal, sizeof literal - 1

/* The hub's stamps (azure-protocols.md §1.7), last so that nothing a device sent can shadow them.
 * The enqueued time's text is cached per second: only the milliseconds change between messages. */
static void add_stamps(const hub_mqtt_conn *c, const hub_telemetry *msg, jsonw *sys)
{
    static int64_t cached_s = -1;
    static char when[32]; /* "YYYY-MM-DDTHH:MM:SS." then "mmmZ" */
    int64_t s = msg->enqueued_ms / 1000;
    if (s != cached_s) {
        time_format_iso(s * 1000, when, sizeof when);
        cached_s = s;
    }
    snprintf(when + 20, sizeof when - 20, "%03dZ", (int)(msg->enqueued_ms % 1000));
    if (c->module_id[0])
        jsonw_string(sys, STR_AND_LEN("iothub-connection-module-id"), c->module_id,
                     strlen(c->module_id));
    if (c->token_expiry_s)
        jsonw_string(sys, STR_AND_LEN("iothub-connection-auth-method"),
                     STR_AND_LEN("{\"scope\":\"device\",\"type\":\"sas\",\"issuer\":\"iothub\"}"));
    else
        jsonw_string(sys, STR_AND_LEN("iothub-connection-auth-method"),
                     STR_AND_LEN("{\"scope\":\"device\",\"type\":\"x509Certificate\","
                                 "\"issuer\":\"iothub\"}"));
    jsonw_string(sys, STR_AND_LEN("iothub-connection-device-id"), c->device_id,
                 strlen(c->device_id));
    jsonw_string(sys, STR_AND_LEN("iothub-enqueuedtime"), when, strlen(when));
    jsonw_string(sys, STR_AND_LEN("iothub-message-source"), STR_AND_LEN(HUB_EVENT_TELEMETRY));
}

static void send_puback(hub_mqtt_conn *c, uint16_t packet_id)
{
    uint8_t ack[4];
    mqtt_encode_ack(ack, sizeof ack, MQTT_PUBACK, packet_id);
    hub_conn_write_after_commit(c, ack, sizeof ack);
}

static void note_activity(hub_mqtt_conn *c)
{
    int64_t now = time_now_ms();
    if (now - c->activity_written_ms < ACTIVITY_WRITE_INTERVAL_MS)
        return;
    c->activity_written_ms = now;
    hub_store_device_set_activity(c->h->store, c->device_id, now, NULL);
}

static bool span_is(az_span s, const char *text)
{
    size_t len = strlen(text);
    return s.len == len && (len == 0 || memcmp(s.ptr, text, len) == 0);
}

static void on_telemetry(hub_mqtt_conn *c, const mqtt_publish *p, const az_publish_topic *t,
                         bool is_will)
{
    if (!span_is(t->device_id, c->device_id) || !span_is(t->module_id, c->module_id)) {
        hub_conn_close(c, "telemetry for another identity");
        return;
    }
    if (p->payload.len + t->property_bag.len > HUB_D2C_MAX_BYTES) {
        hub_conn_close(c, "message larger than 256 KB");
        return;
    }
    /* The properties are written as JSON text directly: this runs for every message. */
    char sys_buf[1024], app_buf[1024];
    jsonw sys, app;
    jsonw_begin(&sys, sys_buf, sizeof sys_buf);
    jsonw_begin(&app, app_buf, sizeof app_buf);
    if (decode_bag(t->property_bag, &sys, &app) < 0) {
        jsonw_free(&sys);
        jsonw_free(&app);
        hub_conn_close(c, "malformed property bag");
        return;
    }
    hub_telemetry msg;
    memset(&msg, 0, sizeof msg);
    snprintf(msg.device_id, sizeof msg.device_id, "%s", c->device_id);
    snprintf(msg.module_id, sizeof msg.module_id, "%s", c->module_id);
    msg.enqueued_ms = time_now_ms();
    add_stamps(c, &msg, &sys);
    if (p->retain)
        jsonw_string(&app, STR_AND_LEN("mqtt-retain"), STR_AND_LEN("true"));
    if (is_will)
        jsonw_string(&app, STR_AND_LEN("iothub-MessageType"), STR_AND_LEN("Will"));
    iotdm_result r = IOTDM_E_MALFORMED;
    if (jsonw_end(&sys) && jsonw_end(&app)) {
        msg.system_json = sys.data;
        msg.system_json_len = sys.len;
        msg.properties_json = app.data;
        msg.properties_json_len = app.len;
        msg.body = (unsigned char *)p->payload.ptr; /* borrowed: the store copies it */
        msg.body_len = p->payload.len;
        r = hub_events_append(c->h->events, &msg);
    }
    jsonw_free(&sys);
    jsonw_free(&app);
    if (r < 0) {
        log_error("mqtt", "cannot store telemetry device=%s: %s", c->device_id,
                  iotdm_result_message(r));
        hub_conn_close(c, "storage failure");
        return;
    }
    note_activity(c);
    if (p->qos == 1 && !is_will)
        send_puback(c, p->packet_id);
}

void hub_conn_publish_will(hub_mqtt_conn *c)
{
    mqtt_publish p = {
        .topic = {(const uint8_t *)c->will_topic, strlen(c->will_topic)},
        .payload = {c->will_payload, c->will_len},
    };
    az_publish_topic t;
    if (az_parse_publish_topic(c->will_topic, strlen(c->will_topic), &t) == IOTDM_OK)
        on_telemetry(c, &p, &t, true);
}

/* A twin response: after the commit when anything before it waits for one, to keep order. */
static void twin_respond(hub_mqtt_conn *c, int status, az_span rid, int64_t version,
                         const char *body, size_t body_len)
{
    if (!(c->subs & HUB_SUB_BIT(AZ_SUB_TWIN_RESPONSES)))
        return;
    char topic[512];
    size_t tlen = az_format_twin_response(topic, sizeof topic, status, rid.ptr, rid.len, version);
    if (tlen == 0)
        return;
    uint8_t hdr[MQTT_PUBLISH_HEADER_MAX(512)];
    size_t hlen =
        mqtt_encode_publish_header(hdr, sizeof hdr, topic, tlen, 0, false, false, 0, body_len);
    hub_conn_write_after_commit(c, hdr, hlen);
    if (body_len)
        hub_conn_write_after_commit(c, body, body_len);
}

static void twin_error_respond(hub_mqtt_conn *c, az_span rid, iotdm_result r, const char *message)
{
    hub_error_info e = hub_error_for(r);
    char when[32];
    time_format_iso(time_now_ms(), when, sizeof when);
    json_t *body =
        json_pack("{s:i, s:s, s:s, s:s}", "errorCode", e.code, "trackingId", "iotdm", "message",
                  message && *message ? message : e.name, "timestampUtc", when);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text)
        twin_respond(c, e.http_status, rid, -1, text, strlen(text));
    free(text);
}

static void on_twin_get(hub_mqtt_conn *c, const az_publish_topic *t)
{
    hub_twin twin;
    iotdm_result r = hub_store_twin_get(c->h->store, c->device_id, &twin);
    if (r < 0) {
        twin_error_respond(c, t->rid, r, "cannot read the twin");
        return;
    }
    json_t *view = hub_twin_device_view(&twin);
    hub_twin_deinit(&twin);
    char *text = json_dumps(view, JSON_COMPACT);
    json_decref(view);
    if (text)
        twin_respond(c, 200, t->rid, -1, text, strlen(text));
    free(text);
}

static void on_twin_patch(hub_mqtt_conn *c, const mqtt_publish *p, const az_publish_topic *t)
{
    twin_error err = {""};
    int64_t version = 0;
    iotdm_result r =
        hub_twin_patch_reported(c->h, c->device_id, (const char *)p->payload.ptr, p->payload.len,
                                t->has_version ? t->version : -1, &version, &err);
    if (r < 0) {
        log_info("mqtt", "reported patch rejected device=%s: %s", c->device_id, err.message);
        twin_error_respond(c, t->rid, r, err.message);
        return;
    }
    twin_respond(c, 204, t->rid, version, NULL, 0);
}

void hub_conn_on_publish(hub_mqtt_conn *c, const mqtt_publish *p)
{
    az_publish_topic t;
    if (az_parse_publish_topic((const char *)p->topic.ptr, p->topic.len, &t) < 0) {
        hub_conn_close(c, "publish on a topic IoT Hub does not serve");
        return;
    }
    switch (t.kind) {
    case AZ_PUB_TELEMETRY:
        on_telemetry(c, p, &t, false);
        return; /* it acknowledges itself */
    case AZ_PUB_TWIN_GET:
        on_twin_get(c, &t);
        break;
    case AZ_PUB_TWIN_PATCH_REPORTED:
        on_twin_patch(c, p, &t);
        break;
    case AZ_PUB_METHOD_RESPONSE:
        if (p->payload.len > HUB_METHOD_MAX_BYTES) {
            hub_conn_close(c, "method response larger than 128 KB");
            return;
        }
        hub_methods_on_response(c->h->methods, c->device_id, t.rid.ptr, t.rid.len, t.status,
                                (const char *)p->payload.ptr, p->payload.len);
        break;
    default:
        hub_conn_close(c, "publish on a topic IoT Hub does not serve");
        return;
    }
    if (c->state == CONN_ACTIVE && p->qos == 1)
        send_puback(c, p->packet_id);
}
