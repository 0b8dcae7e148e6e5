/* What the hub sends devices: desired notifications, method requests, cloud-to-device messages. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "common/urlenc.h"
#include "hub/mqtt/conn.h"

void hub_conn_notify_desired(hub *h, const char *device_id, const json_t *patch, int64_t version)
{
    hub_mqtt_conn *c = hub_conn_find(h, device_id);
    if (!c || !(c->subs & HUB_SUB_BIT(AZ_SUB_TWIN_DESIRED)))
        return; /* notifications are not queued (§1.11): the device reads the twin on connect */
    json_t *body = json_deep_copy(patch);
    json_object_set_new(body, "$version", json_integer(version));
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char topic[128];
    size_t tlen = az_format_desired_patch(topic, sizeof topic, version);
    if (text && tlen)
        hub_conn_publish(c, topic, tlen, text, strlen(text));
    free(text);
}

bool hub_conn_send_method(hub *h, const char *device_id, const char *method, const char *rid,
                          const char *payload, size_t payload_len)
{
    hub_mqtt_conn *c = hub_conn_find(h, device_id);
    if (!c || !(c->subs & HUB_SUB_BIT(AZ_SUB_METHODS)))
        return false;
    char topic[512];
    size_t tlen =
        az_format_method_request(topic, sizeof topic, method, strlen(method), rid, strlen(rid));
    if (!tlen)
        return false;
    hub_conn_publish(c, topic, tlen, payload, payload_len);
    return true;
}

/* Appends "name=value" (percent-encoded) to the bag. */
static void bag_append(char *bag, size_t cap, const char *name, const char *value)
{
    size_t len = strlen(bag);
    char n[512], v[4096 * 3 + 1];
    if (urlenc_encode(name, strlen(name), n, sizeof n) < 0 ||
        urlenc_encode(value, strlen(value), v, sizeof v) < 0)
        return;
    int w = snprintf(bag + len, cap - len, "%s%s=%s", len ? "&" : "", n, v);
    if (w < 0 || (size_t)w >= cap - len)
        bag[len] = '\0'; /* does not fit: leave the property out rather than cut it */
}

static bool in_flight(const hub_mqtt_conn *c, int64_t seq)
{
    for (size_t i = 0; i < c->ninflight; i++)
        if (c->inflight[i].seq == seq)
            return true;
    return false;
}

static uint16_t next_packet_id(hub_mqtt_conn *c)
{
    for (;;) {
        uint16_t id = ++c->next_packet_id;
        if (id == 0)
            continue;
        bool used = false;
        for (size_t i = 0; i < c->ninflight; i++)
            used = used || c->inflight[i].packet_id == id;
        if (!used)
            return id;
    }
}

static bool send_one_c2d(void *ctx, const hub_c2d *msg)
{
    hub_mqtt_conn *c = ctx;
    if (c->ninflight == HUB_C2D_MAX_PENDING)
        return false;
    if (!c->inflight && !(c->inflight = xcalloc(HUB_C2D_MAX_PENDING, sizeof *c->inflight)))
        return false; /* delivered on a later attempt */
    if (in_flight(c, msg->seq))
        return true;
    char bag[8192] = "";
    const char *key;
    json_t *value;
    json_object_foreach(msg->properties, key, value)
    {
        if (json_is_string(value))
            bag_append(bag, sizeof bag, key, json_string_value(value));
    }
    char topic[8192 + 300];
    size_t tlen = az_format_c2d_topic(topic, sizeof topic, c->device_id, bag);
    if (!tlen)
        return true;
    uint16_t id = next_packet_id(c);
    uint8_t hdr[MQTT_PUBLISH_HEADER_MAX(sizeof topic)];
    size_t hlen = mqtt_encode_publish_header(hdr, sizeof hdr, topic, tlen, 1,
                                             msg->delivery_count > 0, false, id, msg->body_len);
    bufferevent_write(c->bev, hdr, hlen);
    bufferevent_write(c->bev, msg->body, msg->body_len);
    c->inflight[c->ninflight++] = (hub_c2d_inflight){id, msg->seq};
    hub_store_c2d_mark_delivered(c->h->store, msg->seq);
    return true;
}

void hub_conn_send_c2d_pending(hub_mqtt_conn *c)
{
    if (c->state != CONN_ACTIVE || !(c->subs & HUB_SUB_BIT(AZ_SUB_C2D)))
        return;
    if (c->waiting_commit) {
        /* The CONNACK or SUBACK that enabled delivery waits for the commit: messages follow it. */
        c->c2d_after_commit = true;
        return;
    }
    hub_store_c2d_foreach(c->h->store, c->device_id, time_now_ms(), send_one_c2d, c);
    hub_request_commit(c->h);
}

void hub_conn_on_puback(hub_mqtt_conn *c, uint16_t packet_id)
{
    for (size_t i = 0; i < c->ninflight; i++) {
        if (c->inflight[i].packet_id != packet_id)
            continue;
        hub_store_c2d_complete(c->h->store, c->inflight[i].seq);
        c->inflight[i] = c->inflight[--c->ninflight];
        hub_request_commit(c->h);
        return;
    }
    /* A PUBACK for nothing we sent is harmless (a duplicate after redelivery). */
}

void hub_conn_deliver_c2d(hub *h, const char *device_id)
{
    hub_mqtt_conn *c = hub_conn_find(h, device_id);
    if (c)
        hub_conn_send_c2d_pending(c);
}
