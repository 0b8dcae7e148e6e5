/* iotdm-loadgen MQTT attackers: a registered device that writes a 28 KB reported patch (so that
 * every twin document is large) and then floods twin GETs without reading the answers; and a
 * CONNECT signed with a wrong key, again and again. */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loadgen_attack.h"
#include "common/sas.h"
#include "proto/azure_topics.h"
#include "proto/mqtt.h"

#define ATK_STRINGS      7    /* the patch: this many strings ... */
#define ATK_STRING_BYTES 4000 /* ... of this many bytes (IoT Hub allows 4 KB per string) */
#define ATK_GETS         64   /* twin GETs per refill */
#define ATK_MAX_PACKET   (64 * 1024)
#define ATK_TOPIC_MAX    (LG_ID_MAX + 128)
#define ATK_WRONG_KEY    "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktMzI="

enum { S_CONNACK, S_SUBACK, S_PATCH, S_FLOOD };

static bool patched[4096]; /* per twin-flood slot: the big reported patch is in */

/* The twin-flood device of slot s, or the device an unauthenticated CONNECT names. */
static int atk_device(const lg_atk *a)
{
    const lg_opts *o = &a->app->o;
    int first = o->attacker_first;
    return a->kind == ATK_TWIN_FLOOD ? first + a->slot : first + o->attackers + a->slot;
}

void atk_mqtt_connected(lg_atk *a)
{
    lg_app *app = a->app;
    char id[LG_ID_MAX], user[LG_HOST_MAX + LG_ID_MAX + 64], token[SAS_TOKEN_MAX];
    char resource[LG_HOST_MAX + LG_ID_MAX + 16];
    lg_device_id(app, atk_device(a), id, sizeof id);
    snprintf(resource, sizeof resource, "%s/devices/%s", app->o.hub_name, id);
    const char *key = a->kind == ATK_TWIN_FLOOD ? app->o.device_key : ATK_WRONG_KEY;
    if (az_format_username(user, sizeof user, app->o.hub_name, id, NULL, LG_API_VERSION, NULL,
                           NULL) == 0 ||
        sas_build_token(resource, key, NULL, (int64_t)time(NULL) + 3600, token, sizeof token) < 0)
        lg_fatal(app, "cannot sign an attacker's CONNECT");
    mqtt_connect_opts co = {.client_id = id,
                            .username = user,
                            .password = token,
                            .keepalive = 240,
                            .clean_session = true};
    uint8_t buf[2048];
    size_t n = mqtt_encode_connect(buf, sizeof buf, &co);
    if (n == 0 || n > sizeof buf)
        lg_fatal(app, "cannot encode an attacker's CONNECT");
    bufferevent_write(a->bev, buf, n);
    a->state = S_CONNACK;
}

static void publish(lg_atk *a, const char *topic, size_t topic_len, const void *payload, size_t len)
{
    uint8_t hdr[MQTT_PUBLISH_HEADER_MAX(ATK_TOPIC_MAX)];
    size_t n =
        mqtt_encode_publish_header(hdr, sizeof hdr, topic, topic_len, 0, false, false, 0, len);
    if (n == 0 || n > sizeof hdr)
        abort(); /* our own topics always fit */
    struct evbuffer *out = bufferevent_get_output(a->bev);
    evbuffer_add(out, hdr, n);
    evbuffer_add(out, payload, len);
}

static void send_patch(lg_atk *a)
{
    static char *body;
    static size_t body_len;
    if (!body) {
        size_t cap = ATK_STRINGS * (ATK_STRING_BYTES + 16) + 16;
        if (!(body = malloc(cap)))
            lg_fatal(a->app, "out of memory");
        body_len = (size_t)snprintf(body, cap, "{\"atk\":{");
        for (int i = 0; i < ATK_STRINGS; i++) {
            body_len +=
                (size_t)snprintf(body + body_len, cap - body_len, "%s\"s%d\":\"", i ? "," : "", i);
            memset(body + body_len, 'x', ATK_STRING_BYTES);
            body_len += ATK_STRING_BYTES;
            body[body_len++] = '"';
        }
        body_len += (size_t)snprintf(body + body_len, cap - body_len, "}}");
    }
    char topic[ATK_TOPIC_MAX];
    size_t tl = az_format_twin_patch_reported(topic, sizeof topic, "p", 1, -1);
    publish(a, topic, tl, body, body_len);
    a->state = S_PATCH;
}

/* One refill of twin GETs, each with its own request id, once the flood has started. */
void atk_mqtt_refill(lg_atk *a)
{
    if (a->state != S_FLOOD)
        return; /* the output drained before the flood: the CONNECT, the patch */
    struct evbuffer *out = bufferevent_get_output(a->bev);
    while (evbuffer_get_length(out) < ATK_OUTPUT_HIGH) {
        for (int i = 0; i < ATK_GETS; i++) {
            char rid[16], topic[ATK_TOPIC_MAX];
            int rl = snprintf(rid, sizeof rid, "%u", ++a->rid);
            size_t tl = az_format_twin_get(topic, sizeof topic, rid, (size_t)rl);
            publish(a, topic, tl, "", 0);
        }
    }
}

static void start_flood(lg_atk *a)
{
    atk_count_attacking(a);
    a->state = S_FLOOD;
    bufferevent_disable(a->bev, EV_READ);
    bufferevent_setwatermark(a->bev, EV_WRITE, ATK_OUTPUT_HIGH / 2, 0);
    atk_mqtt_refill(a);
}

/* One packet; false when the connection is finished with. */
static bool on_packet(lg_atk *a, const mqtt_fixed_header *fh, const uint8_t *body)
{
    bool sp;
    uint8_t code;
    if (fh->type == MQTT_CONNACK && a->state == S_CONNACK) {
        if (mqtt_decode_connack(body, fh->remaining_len, &sp, &code) < 0 || code != 0) {
            atk_count_refused(a); /* the hub closes the connection next */
            return false;
        }
        if (a->kind != ATK_TWIN_FLOOD)
            return false;
        const char *filter = "$iothub/twin/res/#";
        const uint8_t qos = 0;
        uint8_t buf[64];
        size_t n = mqtt_encode_subscribe(buf, sizeof buf, 1, &filter, &qos, 1);
        bufferevent_write(a->bev, buf, n);
        a->state = S_SUBACK;
    } else if (fh->type == MQTT_SUBACK && a->state == S_SUBACK) {
        if (a->slot < (int)(sizeof patched / sizeof patched[0]) && patched[a->slot]) {
            start_flood(a);
            return false;
        }
        send_patch(a);
    } else if (fh->type == MQTT_PUBLISH && a->state == S_PATCH) {
        mqtt_publish p;
        if (mqtt_decode_publish(fh->flags, body, fh->remaining_len, &p) == 0 &&
            memmem(p.topic.ptr, p.topic.len, "/res/", 5)) {
            bool ok = memmem(p.topic.ptr, p.topic.len, "/res/204/", 9) != NULL;
            if (!ok)
                fprintf(stderr, "loadgen: twin flood: the reported patch got %.*s\n",
                        (int)p.topic.len, (const char *)p.topic.ptr);
            if (a->slot < (int)(sizeof patched / sizeof patched[0]))
                patched[a->slot] = true; /* flood all the same: GETs are the attack */
            start_flood(a);
            return false;
        }
    }
    return true;
}

void atk_mqtt_read(lg_atk *a)
{
    struct evbuffer *in = bufferevent_get_input(a->bev);
    size_t len = evbuffer_get_length(in);
    const uint8_t *buf = evbuffer_pullup(in, -1);
    size_t pos = 0;
    while (pos < len) {
        mqtt_fixed_header fh;
        iotdm_result r = mqtt_frame(buf + pos, len - pos, ATK_MAX_PACKET, &fh);
        if (r == IOTDM_E_INCOMPLETE)
            break;
        if (r < 0) {
            pos = len; /* not worth understanding: wait for the hub to close */
            break;
        }
        size_t whole = fh.header_len + fh.remaining_len;
        bool more = on_packet(a, &fh, buf + pos + fh.header_len);
        pos += whole;
        if (!more)
            break;
    }
    evbuffer_drain(in, len); /* what follows a refusal or the start of the flood is not read */
}
