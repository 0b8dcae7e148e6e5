/* iotdm-loadgen device connections: TCP + TLS + MQTT CONNECT, then the scenario's traffic. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <inttypes.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loadgen.h"
#include "common/sas.h"
#include "proto/azure_topics.h"
#include "proto/mqtt.h"

#define LG_MAX_PACKET (300 * 1024)
#define LG_TOPIC_MAX  (LG_ID_MAX + 128)
#define LG_SAS_TTL_S  (24 * 3600)

enum { DEV_NEW, DEV_TCP, DEV_TLS, DEV_CONNACK, DEV_SUBACK, DEV_READY, DEV_DEAD };

struct lg_dev {
    lg_app *app;
    struct bufferevent *bev;
    int index; /* -1: the broker baseline's requesting client */
    uint8_t state;
    uint16_t next_pid;
    uint16_t inflight;
    uint32_t rid;
    int64_t *sent; /* paced telemetry: send time by packet id % 256, 0 once acknowledged */
};

/* The first few failures are worth a line each; the rest only count. */
static void note_failure(lg_app *app, const lg_dev *d, const char *why)
{
    static int printed;
    if (printed++ < 5) {
        char id[LG_ID_MAX];
        lg_device_id(app, d->index, id, sizeof id);
        fprintf(stderr, "loadgen: %s: %s\n", id, why);
    }
}

static void dev_close(lg_dev *d, const char *why)
{
    lg_app *app = d->app;
    if (d->state == DEV_DEAD)
        return;
    if (d->bev) {
        bufferevent_free(d->bev);
        d->bev = NULL;
    }
    bool was_ready = d->state == DEV_READY;
    d->state = DEV_DEAD;
    note_failure(app, d, why);
    if (d->index < 0) {
        lg_fatal(app, "the requesting client lost its connection: %s", why);
        return;
    }
    if (was_ready) {
        app->dropped++;
        return;
    }
    app->attempting--;
    app->failed++;
    lg_devs_connect_more(app);
}

static uint16_t next_pid(lg_dev *d)
{
    if (++d->next_pid == 0)
        d->next_pid = 1;
    return d->next_pid;
}

static bool is_hub(const lg_app *app)
{
    return app->o.broker == LG_BROKER_HUB;
}

/* ---- connecting ---------------------------------------------------------------------------- */

static void send_connect(lg_dev *d)
{
    lg_app *app = d->app;
    char id[LG_ID_MAX], user[LG_HOST_MAX + LG_ID_MAX + 64], token[SAS_TOKEN_MAX];
    if (d->index < 0)
        snprintf(id, sizeof id, "%ssvc", app->o.prefix);
    else
        lg_device_id(app, d->index, id, sizeof id);
    mqtt_connect_opts co = {
        .client_id = id, .keepalive = (uint16_t)app->o.keepalive_s, .clean_session = true};
    if (is_hub(app)) {
        char resource[LG_HOST_MAX + LG_ID_MAX + 16];
        snprintf(resource, sizeof resource, "%s/devices/%s", app->o.hub_name, id);
        int64_t expiry = (int64_t)time(NULL) + LG_SAS_TTL_S;
        if (az_format_username(user, sizeof user, app->o.hub_name, id, NULL, LG_API_VERSION, NULL,
                               NULL) == 0 ||
            sas_build_token(resource, app->o.device_key, NULL, expiry, token, sizeof token) < 0) {
            dev_close(d, "cannot build the user name or SAS token");
            return;
        }
        co.username = user;
        co.password = token;
    }
    uint8_t buf[2048];
    size_t n = mqtt_encode_connect(buf, sizeof buf, &co);
    if (n == 0 || n > sizeof buf) {
        dev_close(d, "cannot encode CONNECT");
        return;
    }
    bufferevent_write(d->bev, buf, n);
    d->state = DEV_CONNACK;
}

/* The filter this connection needs, or NULL. */
static const char *dev_filter(lg_dev *d, char *buf, size_t cap)
{
    lg_app *app = d->app;
    if (d->index < 0)
        return "devices/+/$iothub/methods/res/#";
    if (app->o.scenario == LG_REPORTED)
        return "$iothub/twin/res/#";
    if (app->o.scenario != LG_METHODS && app->o.scenario != LG_QUERY &&
        app->o.scenario != LG_HOSTILE)
        return NULL;
    if (is_hub(app))
        return "$iothub/methods/POST/#";
    char id[LG_ID_MAX];
    lg_device_id(app, d->index, id, sizeof id);
    snprintf(buf, cap, "devices/%s/$iothub/methods/POST/#", id);
    return buf;
}

static void dev_ready(lg_dev *d)
{
    lg_app *app = d->app;
    d->state = DEV_READY;
    if (d->index < 0) {
        lg_methods_start(app);
        return;
    }
    app->attempting--;
    app->connected++;
    lg_devs_connect_more(app);
}

static void on_connack(lg_dev *d, const uint8_t *body, size_t len)
{
    bool sp;
    uint8_t code;
    if (mqtt_decode_connack(body, len, &sp, &code) < 0) {
        dev_close(d, "malformed CONNACK");
        return;
    }
    if (code != MQTT_CONNACK_ACCEPTED) {
        char why[64];
        snprintf(why, sizeof why, "CONNACK refused with code %u", code);
        d->app->connack_refused++;
        dev_close(d, why);
        return;
    }
    char fbuf[LG_TOPIC_MAX];
    const char *filter = dev_filter(d, fbuf, sizeof fbuf);
    if (!filter) {
        dev_ready(d);
        return;
    }
    uint8_t buf[LG_TOPIC_MAX + 16];
    const uint8_t qos = 0;
    size_t n = mqtt_encode_subscribe(buf, sizeof buf, next_pid(d), &filter, &qos, 1);
    bufferevent_write(d->bev, buf, n);
    d->state = DEV_SUBACK;
}

static void on_suback(lg_dev *d, const uint8_t *body, size_t len)
{
    uint16_t pid;
    mqtt_span codes;
    if (mqtt_decode_suback(body, len, &pid, &codes) < 0 || codes.len != 1 ||
        codes.ptr[0] == MQTT_SUBACK_FAILURE) {
        dev_close(d, "subscription refused");
        return;
    }
    dev_ready(d);
}

/* ---- the measured traffic ------------------------------------------------------------------ */

static const uint8_t *telemetry_payload(size_t len)
{
    static uint8_t *payload;
    static size_t payload_len;
    if (!payload) {
        payload = malloc(len ? len : 1);
        if (!payload)
            abort();
        for (size_t i = 0; i < len; i++)
            payload[i] = (uint8_t)('a' + i % 26);
        payload_len = len;
    }
    return len == payload_len ? payload : NULL;
}

/* Returns the packet id (0 at QoS 0). */
static uint16_t publish(lg_dev *d, const char *topic, size_t topic_len, uint8_t qos,
                        const void *payload, size_t len)
{
    uint8_t hdr[MQTT_PUBLISH_HEADER_MAX(LG_TOPIC_MAX)];
    uint16_t pid = qos ? next_pid(d) : 0;
    size_t n =
        mqtt_encode_publish_header(hdr, sizeof hdr, topic, topic_len, qos, false, false, pid, len);
    if (n == 0 || n > sizeof hdr)
        abort(); /* our own topics always fit */
    struct evbuffer *out = bufferevent_get_output(d->bev);
    evbuffer_add(out, hdr, n);
    evbuffer_add(out, payload, len);
    return pid;
}

static void send_one(lg_dev *d)
{
    lg_app *app = d->app;
    char id[LG_ID_MAX], topic[LG_TOPIC_MAX];
    lg_device_id(app, d->index, id, sizeof id);
    if (app->o.scenario == LG_TELEMETRY) {
        size_t tl = az_format_telemetry_topic(topic, sizeof topic, id, NULL, NULL);
        size_t plen = (size_t)app->o.payload;
        publish(d, topic, tl, 1, telemetry_payload(plen), plen);
    } else {
        char rid[16], body[96];
        int rl = snprintf(rid, sizeof rid, "%" PRIu32, ++d->rid);
        size_t tl = az_format_twin_patch_reported(topic, sizeof topic, rid, (size_t)rl, -1);
        int bl =
            snprintf(body, sizeof body, "{\"bench\":{\"seq\":%" PRIu32 ",\"ok\":true}}", d->rid);
        publish(d, topic, tl, 0, body, (size_t)bl);
    }
    d->inflight++;
}

static void fill_window(lg_dev *d)
{
    while (d->app->running && d->state == DEV_READY && d->inflight < d->app->o.window)
        send_one(d);
}

static void answered(lg_dev *d, bool ok)
{
    lg_app *app = d->app;
    if (d->inflight)
        d->inflight--;
    if (!app->running)
        return;
    if (ok)
        app->acks.current++;
    else
        app->errors++;
    fill_window(d);
}

/* ---- paced telemetry (hostile): a steady rate, each PUBACK's latency ------------------------- */

static void paced_acked(lg_dev *d, uint16_t pid)
{
    int64_t sent = d->sent[pid & 0xFF];
    if (sent == 0)
        return; /* not ours or already acknowledged */
    d->sent[pid & 0xFF] = 0;
    d->inflight--;
    if (d->app->on_puback)
        d->app->on_puback(d->app, sent);
}

/* False when the device already has LG_PACED_INFLIGHT unacknowledged. */
static bool paced_send(lg_dev *d)
{
    lg_app *app = d->app;
    if (!d->sent && !(d->sent = calloc(256, sizeof *d->sent)))
        lg_fatal(app, "out of memory");
    if (d->inflight >= LG_PACED_INFLIGHT)
        return false;
    char id[LG_ID_MAX], topic[LG_TOPIC_MAX];
    lg_device_id(app, d->index, id, sizeof id);
    size_t tl = az_format_telemetry_topic(topic, sizeof topic, id, NULL, NULL);
    size_t plen = (size_t)app->o.payload;
    uint16_t pid = publish(d, topic, tl, 1, telemetry_payload(plen), plen);
    /* Packet ids wrap at 65535 and skip 0, so 255 consecutive ones never share a slot. */
    d->sent[pid & 0xFF] = lg_now_us();
    d->inflight++;
    return true;
}

int lg_devs_send_paced(lg_app *app, int n)
{
    static int next;
    int blocked = 0;
    for (int tries = 0; n > 0 && tries < app->o.devices; tries++) {
        lg_dev *d = &app->devs[next];
        next = (next + 1) % app->o.devices;
        if (d->state != DEV_READY)
            continue;
        tries = 0;
        n--;
        if (!paced_send(d))
            blocked++;
    }
    return blocked + n;
}

void lg_devs_each_pending(lg_app *app, void (*fn)(lg_app *app, int64_t sent_us))
{
    for (int i = 0; i < app->o.devices; i++)
        for (int k = 0; app->devs[i].sent && k < 256; k++)
            if (app->devs[i].sent[k])
                fn(app, app->devs[i].sent[k]);
}

/* A method request from the hub (topic "$iothub/methods/POST/...") or, for the broker baseline,
 * from the requesting client ("devices/{id}/$iothub/methods/POST/..."). Answered at once. */
static void on_method_request(lg_dev *d, const char *topic, size_t len)
{
    size_t skip = 0;
    if (!is_hub(d->app)) {
        const char *p = memchr(topic, '$', len);
        skip = p ? (size_t)(p - topic) : len;
    }
    az_hub_topic t;
    if (az_parse_hub_topic(topic + skip, len - skip, &t) < 0 || t.kind != AZ_HUB_METHOD_REQUEST) {
        dev_close(d, "unexpected PUBLISH topic");
        return;
    }
    char out[LG_TOPIC_MAX + 32];
    if (skip >= LG_TOPIC_MAX)
        abort();
    memcpy(out, topic, skip);
    size_t n = az_format_method_response(out + skip, sizeof out - skip, 200, t.rid.ptr, t.rid.len);
    static const char answer[] = "{\"ok\":true}";
    publish(d, out, skip + n, 0, answer, sizeof answer - 1);
}

/* The broker baseline's requesting client gets "devices/{id}/$iothub/methods/res/200/?$rid=N". */
static void on_method_response(lg_dev *d, const char *topic, size_t len)
{
    const char *p = memchr(topic, '$', len);
    az_publish_topic t;
    if (!p || az_parse_publish_topic(p, len - (size_t)(p - topic), &t) < 0 ||
        t.kind != AZ_PUB_METHOD_RESPONSE || t.rid.len == 0 || t.rid.len > 20) {
        dev_close(d, "unexpected method response topic");
        return;
    }
    char rid[24];
    memcpy(rid, t.rid.ptr, t.rid.len);
    rid[t.rid.len] = '\0';
    lg_call_done(d->app, strtoull(rid, NULL, 10), t.status);
}

static void on_twin_response(lg_dev *d, const char *topic, size_t len)
{
    az_hub_topic t;
    if (az_parse_hub_topic(topic, len, &t) < 0 || t.kind != AZ_HUB_TWIN_RESPONSE) {
        dev_close(d, "unexpected PUBLISH topic");
        return;
    }
    answered(d, t.status == 204);
}

static void on_publish(lg_dev *d, uint8_t flags, const uint8_t *body, size_t len)
{
    mqtt_publish p;
    if (mqtt_decode_publish(flags, body, len, &p) < 0) {
        dev_close(d, "malformed PUBLISH");
        return;
    }
    if (p.qos == 1) {
        uint8_t ack[4];
        bufferevent_write(d->bev, ack, mqtt_encode_ack(ack, sizeof ack, MQTT_PUBACK, p.packet_id));
    }
    const char *topic = (const char *)p.topic.ptr;
    if (d->index < 0)
        on_method_response(d, topic, p.topic.len);
    else if (d->app->o.scenario == LG_REPORTED)
        on_twin_response(d, topic, p.topic.len);
    else
        on_method_request(d, topic, p.topic.len);
}

/* One packet; false when the connection was closed. */
static bool on_packet(lg_dev *d, const mqtt_fixed_header *fh, const uint8_t *body)
{
    size_t len = fh->remaining_len;
    uint16_t pid;
    switch (fh->type) {
    case MQTT_CONNACK:
        if (d->state != DEV_CONNACK)
            break;
        on_connack(d, body, len);
        return d->state != DEV_DEAD;
    case MQTT_SUBACK:
        if (d->state != DEV_SUBACK)
            break;
        on_suback(d, body, len);
        return d->state != DEV_DEAD;
    case MQTT_PUBACK:
        if (d->state != DEV_READY || mqtt_decode_packet_id(body, len, &pid) < 0)
            break;
        if (d->sent)
            paced_acked(d, pid);
        else
            answered(d, true);
        return true;
    case MQTT_PUBLISH:
        if (d->state != DEV_READY)
            break;
        on_publish(d, fh->flags, body, len);
        return d->state != DEV_DEAD;
    case MQTT_PINGRESP:
        return true;
    default:
        break;
    }
    char why[64];
    snprintf(why, sizeof why, "unexpected %s", mqtt_packet_type_name(fh->type));
    dev_close(d, why);
    return false;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    lg_dev *d = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    const uint8_t *buf = evbuffer_pullup(in, -1);
    size_t pos = 0;
    while (pos < len) {
        mqtt_fixed_header fh;
        iotdm_result r = mqtt_frame(buf + pos, len - pos, LG_MAX_PACKET, &fh);
        if (r == IOTDM_E_INCOMPLETE)
            break;
        if (r < 0) {
            dev_close(d, "malformed packet from the server");
            return;
        }
        if (!on_packet(d, &fh, buf + pos + fh.header_len))
            return;
        pos += fh.header_len + fh.remaining_len;
    }
    evbuffer_drain(in, pos);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    lg_dev *d = arg;
    if (what & BEV_EVENT_CONNECTED) {
        send_connect(d);
        return;
    }
    char why[160];
    unsigned long e = bufferevent_get_openssl_error(bev);
    if (e)
        ERR_error_string_n(e, why, sizeof why);
    else if (what & BEV_EVENT_EOF)
        snprintf(why, sizeof why, "closed by the server (state %d)", d->state);
    else
        snprintf(why, sizeof why, "socket error: %s", strerror(EVUTIL_SOCKET_ERROR()));
    dev_close(d, why);
}

static void on_tcp_connected(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    lg_dev *d = arg;
    int err = lg_socket_error(fd);
    if (err) {
        close(fd);
        dev_close(d, strerror(err));
        return;
    }
    d->bev = lg_tls_bev(d->app, fd);
    if (!d->bev) {
        dev_close(d, "cannot create the TLS bufferevent");
        return;
    }
    d->state = DEV_TLS;
    bufferevent_setcb(d->bev, on_read, NULL, on_event, d);
    bufferevent_enable(d->bev, EV_READ);
}

static void dev_connect(lg_dev *d)
{
    lg_app *app = d->app;
    d->state = DEV_TCP;
    const struct sockaddr_in *src =
        app->nsrc > 0 ? &app->src[(d->index < 0 ? 0 : d->index) % app->nsrc] : NULL;
    int fd = lg_socket_connect(app, src, app->o.port);
    if (fd < 0) {
        dev_close(d, strerror(errno));
        return;
    }
    if (event_base_once(app->base, fd, EV_WRITE, on_tcp_connected, d, NULL) < 0) {
        close(fd);
        dev_close(d, "event_base_once failed");
    }
}

/* ---- the fleet ------------------------------------------------------------------------------ */

lg_dev *lg_devs_new(lg_app *app, int count)
{
    lg_dev *devs = calloc((size_t)count, sizeof *devs);
    if (!devs)
        return NULL;
    for (int i = 0; i < count; i++) {
        devs[i].app = app;
        devs[i].index = i;
    }
    return devs;
}

void lg_devs_free(lg_app *app)
{
    for (int i = 0; app->devs && i < app->o.devices; i++)
        if (app->devs[i].bev)
            bufferevent_free(app->devs[i].bev);
    free(app->devs);
    app->devs = NULL;
    if (app->svc) {
        if (app->svc->bev)
            bufferevent_free(app->svc->bev);
        free(app->svc);
        app->svc = NULL;
    }
}

void lg_devs_connect_more(lg_app *app)
{
    /* A connect that fails at once lands here again: the outer call keeps going instead, so a
     * run of failures (EMFILE, say) does not recurse once per device. */
    static bool busy;
    if (busy)
        return;
    busy = true;
    while (app->attempting < app->o.concurrency && app->next_to_connect < app->o.devices) {
        lg_dev *d = &app->devs[app->next_to_connect++];
        app->attempting++;
        dev_connect(d);
    }
    busy = false;
    if (app->connect_end_us == 0 && app->connected + app->failed == app->o.devices) {
        app->connect_end_us = lg_now_us();
        lg_on_all_connected(app);
    }
}

void lg_devs_start_publishing(lg_app *app)
{
    for (int i = 0; i < app->o.devices; i++)
        fill_window(&app->devs[i]);
}

void lg_devs_ping_all(lg_app *app)
{
    uint8_t ping[2];
    size_t n = mqtt_encode_simple(ping, sizeof ping, MQTT_PINGREQ);
    for (int i = 0; i < app->o.devices; i++)
        if (app->devs[i].state == DEV_READY)
            bufferevent_write(app->devs[i].bev, ping, n);
}

int lg_devs_count_ready(const lg_app *app)
{
    int n = 0;
    for (int i = 0; i < app->o.devices; i++)
        n += app->devs[i].state == DEV_READY;
    return n;
}

lg_dev *lg_svc_new(lg_app *app)
{
    lg_dev *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->app = app;
    d->index = -1;
    dev_connect(d);
    return d;
}

void lg_svc_call(lg_app *app, int dev_index, uint64_t call_id)
{
    char id[LG_ID_MAX], topic[LG_TOPIC_MAX], body[48];
    lg_device_id(app, dev_index, id, sizeof id);
    int tl = snprintf(topic, sizeof topic, "devices/%s/$iothub/methods/POST/bench/?$rid=%" PRIu64,
                      id, call_id);
    int bl = snprintf(body, sizeof body, "{\"n\":%" PRIu64 "}", call_id);
    publish(app->svc, topic, (size_t)tl, 0, body, (size_t)bl);
}
