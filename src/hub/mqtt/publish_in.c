/* What devices publish: telemetry, twin GET and reported PATCH, method responses
 * (docs/protocol.md §4.3-4.5, §5.2-5.4). */
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
#include "hub/net/refusals.h"
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

/* The hub's stamps (docs/protocol.md §4.2), last so that nothing a device sent can shadow them.
 * The enqueued time's text is cached per second and per thread: only the milliseconds change
 * between messages. */
static void add_stamps(const hub_mqtt_conn *c, int64_t enqueued_ms, jsonw *sys)
{
    static _Thread_local int64_t cached_s = -1;
    static _Thread_local char when[32]; /* "YYYY-MM-DDTHH:MM:SS." then "mmmZ" */
    int64_t s = enqueued_ms / 1000;
    if (s != cached_s) {
        time_format_iso(s * 1000, when, sizeof when);
        cached_s = s;
    }
    snprintf(when + 20, sizeof when - 20, "%03dZ", (int)(enqueued_ms % 1000));
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
    conn_write(c, ack, sizeof ack);
}

static bool span_is(az_span s, const char *text)
{
    size_t len = strlen(text);
    return s.len == len && (len == 0 || memcmp(s.ptr, text, len) == 0);
}

/* ---- telemetry ---- */

/* One message on its way to the store: the message, its property texts and body in one block,
 * and whether the device's last activity is due to be written with it. A will has no
 * connection: it is stored after the connection has gone. */
typedef struct {
    conn_unit u;
    hub_telemetry msg;
    hub *h;
    bool qos1;
    uint16_t packet_id;
    bool write_activity;
    char data[];
} telemetry_unit;

static iotdm_result telemetry_run(hub_work *w, hub_store *store)
{
    telemetry_unit *t = (telemetry_unit *)w;
    iotdm_result r = hub_events_append(store, &t->msg);
    if (r == IOTDM_OK && t->write_activity)
        r = hub_store_device_set_activity(store, t->msg.device_id, t->msg.enqueued_ms, NULL);
    return r;
}

static void telemetry_done(hub_work *w)
{
    telemetry_unit *t = (telemetry_unit *)w;
    hub_mqtt_conn *c = t->u.c;
    if (!c) { /* a will */
        if (w->result < 0)
            log_warn("mqtt", "cannot store the will device=%s: %s", t->msg.device_id,
                     iotdm_result_message(w->result));
        xfree(t);
        return;
    }
    if (c->state == CONN_ACTIVE) {
        if (w->result == -ENOSPC) {
            hub_refused(HUB_REFUSED_DISK_FULL, "mqtt",
                        "telemetry refused device=%s reason=\"disk space below the reserve\"",
                        c->device_id);
            hub_conn_close(c, "disk full: telemetry cannot be stored");
        } else if (w->result < 0) {
            log_error("mqtt", "cannot store telemetry device=%s: %s", c->device_id,
                      iotdm_result_message(w->result));
            hub_conn_close(c, "storage failure");
        } else if (t->qos1) {
            uint8_t ack[4];
            mqtt_encode_ack(ack, sizeof ack, MQTT_PUBACK, t->packet_id);
            conn_write_now(c, ack, sizeof ack); /* its turn: the units complete in order */
        }
    }
    (void)conn_unit_finish(&t->u);
    xfree(t);
}

/* The properties as JSON text, written directly: this runs for every message. On a bad bag the
 * connection is closed and NULL returned. */
static telemetry_unit *build_telemetry(hub_mqtt_conn *c, const mqtt_publish *p,
                                       const az_publish_topic *t, bool is_will)
{
    char sys_buf[1024], app_buf[1024];
    jsonw sys, app;
    jsonw_begin(&sys, sys_buf, sizeof sys_buf);
    jsonw_begin(&app, app_buf, sizeof app_buf);
    telemetry_unit *u = NULL;
    int64_t now = time_now_ms();
    if (decode_bag(t->property_bag, &sys, &app) == IOTDM_OK) {
        add_stamps(c, now, &sys);
        if (p->retain)
            jsonw_string(&app, STR_AND_LEN("mqtt-retain"), STR_AND_LEN("true"));
        if (is_will)
            jsonw_string(&app, STR_AND_LEN("iothub-MessageType"), STR_AND_LEN("Will"));
        if (jsonw_end(&sys) && jsonw_end(&app))
            u = xmalloc(sizeof *u + sys.len + app.len + p->payload.len + 1);
    }
    if (u) {
        memset(u, 0, sizeof *u);
        u->h = c->h;
        snprintf(u->msg.device_id, sizeof u->msg.device_id, "%s", c->device_id);
        snprintf(u->msg.module_id, sizeof u->msg.module_id, "%s", c->module_id);
        u->msg.enqueued_ms = now;
        memcpy(u->data, sys.data, sys.len);
        memcpy(u->data + sys.len, app.data, app.len);
        if (p->payload.len)
            memcpy(u->data + sys.len + app.len, p->payload.ptr, p->payload.len);
        u->msg.system_json = u->data;
        u->msg.system_json_len = sys.len;
        u->msg.properties_json = u->data + sys.len;
        u->msg.properties_json_len = app.len;
        u->msg.body = (unsigned char *)u->data + sys.len + app.len;
        u->msg.body_len = p->payload.len;
    }
    jsonw_free(&sys);
    jsonw_free(&app);
    return u;
}

static void on_telemetry(hub_mqtt_conn *c, const mqtt_publish *p, const az_publish_topic *t)
{
    if (!span_is(t->device_id, c->device_id) || !span_is(t->module_id, c->module_id)) {
        hub_conn_close(c, "telemetry for another identity");
        return;
    }
    if (p->payload.len + t->property_bag.len > HUB_D2C_MAX_BYTES) {
        hub_conn_close(c, "message larger than 256 KB");
        return;
    }
    telemetry_unit *u = build_telemetry(c, p, t, false);
    if (!u) {
        hub_refused(HUB_REFUSED_MQTT_PROTOCOL, "mqtt",
                    "closed device=%s reason=\"malformed property bag\"", c->device_id);
        hub_conn_close(c, "malformed property bag");
        return;
    }
    u->qos1 = p->qos == 1;
    u->packet_id = p->packet_id;
    /* Activity is written at most every ACTIVITY_WRITE_INTERVAL_MS: telemetry must not cost a
     * row update per message. */
    if (u->msg.enqueued_ms - c->activity_written_ms >= ACTIVITY_WRITE_INTERVAL_MS) {
        c->activity_written_ms = u->msg.enqueued_ms;
        u->write_activity = true;
    }
    conn_submit(c, &u->u, telemetry_run, telemetry_done,
                HUB_WORK_GROWS | (u->write_activity ? 0 : HUB_WORK_SINGLE), true);
}

void hub_conn_publish_will(hub_mqtt_conn *c)
{
    mqtt_publish p = {
        .topic = {(const uint8_t *)c->will_topic, strlen(c->will_topic)},
        .payload = {c->will_payload, c->will_len},
    };
    az_publish_topic t;
    if (az_parse_publish_topic(c->will_topic, strlen(c->will_topic), &t) != IOTDM_OK)
        return;
    telemetry_unit *u = build_telemetry(c, &p, &t, true);
    if (!u)
        return;
    u->u.c = NULL; /* stored after the connection is gone: nothing to answer */
    hub_work_submit(c->loop, &u->u.w, telemetry_run, telemetry_done,
                    HUB_WORK_GROWS | HUB_WORK_SINGLE);
}

/* ---- twins ---- */

typedef struct {
    conn_unit u;
    char device_id[HUB_ID_MAX];
    char rid[128];
    size_t rid_len;
    bool qos1;
    uint16_t packet_id;
    json_t *patch; /* PATCH: the parsed reported patch */
    int64_t expected_version;
    char *view; /* GET: the device's view of its twin, JSON text */
    size_t view_len;
    int64_t desired_version; /* GET: the view's */
    int64_t version;         /* PATCH: the new reported $version */
    twin_error err;
} twin_unit;

/* A twin response, if the device listens for them (docs/protocol.md §5.5). */
static void twin_respond(hub_mqtt_conn *c, int status, const char *rid, size_t rid_len,
                         int64_t version, const char *body, size_t body_len, bool ordered)
{
    if (!(c->subs & HUB_SUB_BIT(AZ_SUB_TWIN_RESPONSES)))
        return;
    char topic[512];
    size_t tlen = az_format_twin_response(topic, sizeof topic, status, rid, rid_len, version);
    if (tlen == 0)
        return;
    uint8_t hdr[MQTT_PUBLISH_HEADER_MAX(512)];
    size_t hlen =
        mqtt_encode_publish_header(hdr, sizeof hdr, topic, tlen, 0, false, false, 0, body_len);
    void (*put)(hub_mqtt_conn *, const void *, size_t) = ordered ? conn_write : conn_write_now;
    put(c, hdr, hlen);
    if (body_len)
        put(c, body, body_len);
}

static void twin_error_respond(hub_mqtt_conn *c, const char *rid, size_t rid_len, iotdm_result r,
                               const char *message, bool ordered)
{
    hub_error_info e = hub_error_for(r);
    if (r == -ENOSPC)
        e = (hub_error_info){507, 507001, "InsufficientStorage"};
    char when[32];
    time_format_iso(time_now_ms(), when, sizeof when);
    json_t *body =
        json_pack("{s:i, s:s, s:s, s:s}", "errorCode", e.code, "trackingId", "iotdm", "message",
                  message && *message ? message : e.name, "timestampUtc", when);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (text)
        twin_respond(c, e.http_status, rid, rid_len, -1, text, strlen(text), ordered);
    free(text);
}

/* The view is spliced from the stored texts: no parse of the twin on the writer thread, which
 * every device's writes wait for. */
static iotdm_result twin_get_run(hub_work *w, hub_store *store)
{
    twin_unit *u = (twin_unit *)w;
    hub_twin_texts t;
    iotdm_result r = hub_store_twin_texts(store, u->device_id, &t);
    if (r < 0)
        return r;
    u->desired_version = t.desired_version;
    u->view = hub_twin_device_view_text(t.desired, t.desired_len, t.desired_version, t.reported,
                                        t.reported_len, t.reported_version, &u->view_len);
    hub_twin_texts_free(&t);
    return u->view ? IOTDM_OK : IOTDM_E_STORAGE;
}

static iotdm_result twin_patch_run(hub_work *w, hub_store *store)
{
    twin_unit *u = (twin_unit *)w;
    return hub_twin_patch_reported(store, u->device_id, u->patch, u->expected_version, &u->version,
                                   &u->err);
}

static void twin_done(hub_work *w)
{
    twin_unit *u = (twin_unit *)w;
    hub_mqtt_conn *c = u->u.c;
    if (c->state == CONN_ACTIVE) {
        if (w->result < 0) {
            if (u->patch)
                log_info("mqtt", "reported patch rejected device=%s: %s", c->device_id,
                         u->err.message[0] ? u->err.message : iotdm_result_message(w->result));
            twin_error_respond(c, u->rid, u->rid_len, w->result,
                               u->patch ? u->err.message : "cannot read the twin", false);
        } else if (u->patch) {
            twin_respond(c, 204, u->rid, u->rid_len, u->version, NULL, 0, false);
        } else {
            twin_respond(c, 200, u->rid, u->rid_len, -1, u->view, u->view_len, false);
            hub_conn_desired_seen(c, u->desired_version);
        }
        if (u->qos1) {
            uint8_t ack[4];
            mqtt_encode_ack(ack, sizeof ack, MQTT_PUBACK, u->packet_id);
            conn_write_now(c, ack, sizeof ack);
        }
    }
    xfree(u->view);
    json_decref(u->patch);
    (void)conn_unit_finish(&u->u);
    xfree(u);
}

/* Whether another twin GET fits this second's allowance. */
static bool twin_get_allowed(hub_mqtt_conn *c)
{
    int64_t now = time_mono_ms();
    if (now - c->twin_get_window_ms >= 1000) {
        c->twin_get_window_ms = now;
        c->twin_gets = 0;
    }
    if (c->twin_gets <= HUB_TWIN_GETS_PER_S)
        c->twin_gets++; /* saturates: a flood cannot wrap it round to allowed */
    return c->twin_gets <= HUB_TWIN_GETS_PER_S;
}

static void on_twin(hub_mqtt_conn *c, const mqtt_publish *p, const az_publish_topic *t)
{
    if (t->rid.len >= sizeof((twin_unit *)0)->rid) {
        hub_conn_close(c, "request id too long");
        return;
    }
    if (t->kind == AZ_PUB_TWIN_GET && !twin_get_allowed(c)) {
        hub_refused(HUB_REFUSED_THROTTLED, "mqtt",
                    "twin GET throttled device=%s reason=\"more than %d per second\"", c->device_id,
                    HUB_TWIN_GETS_PER_S);
        twin_error_respond(c, (const char *)t->rid.ptr, t->rid.len, IOTDM_E_THROTTLED,
                           "too many twin reads: at most 20 per second per connection", true);
        if (p->qos == 1)
            send_puback(c, p->packet_id);
        /* Then shape: nothing more is read from this connection until the second is over, so a
         * flood costs one 429, not one per request (docs/protocol.md: throttling first slows
         * the device down, then refuses). */
        hub_conn_throttle(c, c->twin_get_window_ms + 1000);
        return;
    }
    json_t *patch = NULL;
    if (t->kind == AZ_PUB_TWIN_PATCH_REPORTED) {
        /* Parsed here, on the loop: a malformed patch never reaches the store. */
        json_error_t jerr;
        patch =
            json_loadb((const char *)p->payload.ptr, p->payload.len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(patch)) {
            json_decref(patch);
            twin_error_respond(
                c, (const char *)t->rid.ptr, t->rid.len, IOTDM_E_MALFORMED,
                patch ? "the patch must be a JSON object" : "the patch is not valid JSON", true);
            if (p->qos == 1)
                send_puback(c, p->packet_id);
            return;
        }
    }
    twin_unit *u = xcalloc(1, sizeof *u);
    if (!u) {
        json_decref(patch);
        hub_conn_close(c, "out of memory");
        return;
    }
    snprintf(u->device_id, sizeof u->device_id, "%s", c->device_id);
    memcpy(u->rid, t->rid.ptr, t->rid.len);
    u->rid_len = t->rid.len;
    u->qos1 = p->qos == 1;
    u->packet_id = p->packet_id;
    u->patch = patch;
    u->expected_version = t->has_version ? t->version : -1;
    if (patch)
        conn_submit(c, &u->u, twin_patch_run, twin_done, HUB_WORK_GROWS, true);
    else
        conn_submit(c, &u->u, twin_get_run, twin_done, HUB_WORK_READ, true);
}

void hub_conn_on_publish(hub_mqtt_conn *c, const mqtt_publish *p)
{
    az_publish_topic t;
    if (az_parse_publish_topic((const char *)p->topic.ptr, p->topic.len, &t) < 0) {
        hub_refused(HUB_REFUSED_MQTT_PROTOCOL, "mqtt",
                    "closed device=%s reason=\"publish on a topic IoT Hub does not serve\"",
                    c->device_id);
        hub_conn_close(c, "publish on a topic IoT Hub does not serve");
        return;
    }
    switch (t.kind) {
    case AZ_PUB_TELEMETRY:
        on_telemetry(c, p, &t);
        return; /* it acknowledges itself */
    case AZ_PUB_TWIN_GET:
    case AZ_PUB_TWIN_PATCH_REPORTED:
        on_twin(c, p, &t);
        return; /* so does this */
    case AZ_PUB_METHOD_RESPONSE:
        if (p->payload.len > HUB_METHOD_MAX_BYTES) {
            hub_conn_close(c, "method response larger than 128 KB");
            return;
        }
        hub_methods_response(c->h, c->device_id, (const char *)t.rid.ptr, t.rid.len, t.status,
                             (const char *)p->payload.ptr, p->payload.len);
        break;
    default:
        hub_conn_close(c, "publish on a topic IoT Hub does not serve");
        return;
    }
    if (c->state == CONN_ACTIVE && p->qos == 1)
        send_puback(c, p->packet_id);
}
