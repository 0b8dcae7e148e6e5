/* What the hub sends devices: desired notifications, method requests, cloud-to-device messages
 * (docs/protocol.md §4.4, §4.5, §5.4). Everything here runs on the loop holding the connection;
 * requests from other loops arrive through hub_route_* (hub.c). A device whose output is above the
 * limit gets nothing new: notifications are dropped (it reads its twin on a version gap), method
 * calls wait or fail as for an offline device, messages stay queued. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "hub/mqtt/conn.h"

/* ---- desired-property notifications, in $version order ----
 * Each desired change bumps $version by one, and a patch only makes sense after the one before
 * it. On one node they arrive in order; in a cluster two patches written through two nodes travel
 * on two buses and may cross. A patch that arrives before its predecessor is held back until the
 * predecessor comes, at most DESIRED_HOLD_MS (then the held ones go in order: the missing one was
 * lost with a node); a patch at or below what the device has (sent, or read by its twin GET) is
 * dropped. */

#define DESIRED_HOLD_MS  500
#define DESIRED_HOLD_MAX 16

typedef struct desired_held {
    struct desired_held *next; /* by version */
    int64_t version;
    size_t len;
    char text[];
} desired_held;

static void desired_send(hub_mqtt_conn *c, const char *text, size_t len, int64_t version)
{
    char topic[128];
    size_t tlen = az_format_desired_patch(topic, sizeof topic, version);
    if (tlen)
        hub_conn_publish(c, topic, tlen, text, len);
    if (version > c->desired_sent)
        c->desired_sent = version;
}

/* Sends the held patches that are next in line (all of them once the wait is over). */
static void desired_release(hub_mqtt_conn *c, bool all)
{
    while (c->desired_held && (all || c->desired_held->version <= c->desired_sent + 1)) {
        desired_held *d = c->desired_held;
        c->desired_held = d->next;
        if (d->version > c->desired_sent && conn_writable(c))
            desired_send(c, d->text, d->len, d->version);
        xfree(d);
    }
    if (!c->desired_held && c->desired_ev) {
        event_free(c->desired_ev);
        c->desired_ev = NULL;
    }
}

static void desired_wait_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hub_mqtt_conn *c = arg;
    if (c->desired_held)
        log_warn("mqtt",
                 "desired patches sent without an earlier one device=%s sent=%lld next=%lld",
                 c->client_id, (long long)c->desired_sent, (long long)c->desired_held->version);
    desired_release(c, true);
}

static void desired_hold(hub_mqtt_conn *c, const char *text, size_t len, int64_t version)
{
    size_t n = 0;
    desired_held **pp = &c->desired_held;
    while (*pp && (*pp)->version < version) {
        pp = &(*pp)->next;
        n++;
    }
    if (*pp && (*pp)->version == version)
        return; /* the same one twice */
    desired_held *d = xmalloc(sizeof *d + len);
    if (!d)
        return;
    d->version = version;
    d->len = len;
    memcpy(d->text, text, len);
    d->next = *pp;
    *pp = d;
    for (desired_held *x = d; x; x = x->next)
        n++;
    if (!c->desired_ev)
        c->desired_ev = event_new(c->loop->base, -1, 0, desired_wait_over, c);
    if (!c->desired_ev || n > DESIRED_HOLD_MAX) {
        desired_release(c, true);
        return;
    }
    if (!event_pending(c->desired_ev, EV_TIMEOUT, NULL)) {
        struct timeval tv = {0, DESIRED_HOLD_MS * 1000};
        event_add(c->desired_ev, &tv);
    }
}

void hub_conn_desired_seen(hub_mqtt_conn *c, int64_t version)
{
    if (version > c->desired_sent)
        c->desired_sent = version;
    desired_release(c, false);
}

void hub_conn_desired_free(hub_mqtt_conn *c)
{
    while (c->desired_held) {
        desired_held *d = c->desired_held;
        c->desired_held = d->next;
        xfree(d);
    }
    if (c->desired_ev)
        event_free(c->desired_ev);
    c->desired_ev = NULL;
}

void hub_conn_notify_desired_local(hub_loop *loop, const char *client_id, const char *text,
                                   size_t len, int64_t version)
{
    hub_mqtt_conn *c = hub_conn_find(loop, client_id);
    if (!c || !(c->subs & HUB_SUB_BIT(AZ_SUB_TWIN_DESIRED)) || !conn_writable(c))
        return; /* notifications are not queued (docs/protocol.md §5.4) */
    if (c->desired_sent && version <= c->desired_sent)
        return; /* the device has it (or a later state, from its twin GET) */
    if (!c->desired_sent || version == c->desired_sent + 1) {
        desired_send(c, text, len, version);
        desired_release(c, false);
        return;
    }
    desired_hold(c, text, len, version);
}

bool hub_conn_send_method(hub_loop *loop, const char *device_id, const char *method,
                          const char *rid, const char *payload, size_t payload_len)
{
    hub_mqtt_conn *c = hub_conn_find(loop, device_id);
    if (!c || !(c->subs & HUB_SUB_BIT(AZ_SUB_METHODS)) || !conn_writable(c))
        return false;
    char topic[512];
    size_t tlen =
        az_format_method_request(topic, sizeof topic, method, strlen(method), rid, strlen(rid));
    if (!tlen)
        return false;
    hub_conn_publish(c, topic, tlen, payload, payload_len);
    return true;
}

/* ---- cloud-to-device messages ---- */

/* A message as the fetch unit copies it out of the store. */
typedef struct c2d_item {
    struct c2d_item *next;
    int64_t seq;
    bool redelivery;
    size_t topic_len, body_len;
    char data[]; /* topic, then body */
} c2d_item;

typedef struct {
    conn_unit u;
    char device_id[HUB_ID_MAX];
    int64_t now_ms;
    int64_t skip[HUB_C2D_MAX_PENDING]; /* seqs in flight on the connection */
    size_t nskip;
    size_t room; /* free in-flight slots */
    c2d_item *items, **tail;
    size_t nitems;
} c2d_fetch_unit;

static bool fetch_one(void *ctx, const hub_c2d *msg)
{
    c2d_fetch_unit *u = ctx;
    for (size_t i = 0; i < u->nskip; i++)
        if (u->skip[i] == msg->seq)
            return true;
    if (u->nitems == u->room)
        return false;
    char bag[HUB_C2D_MAX_BAG + 1];
    if (hub_c2d_format_bag(msg->properties, bag, sizeof bag) < 0) {
        /* Enqueued before the limit was checked at enqueue time: sent without properties. */
        log_warn("mqtt", "cloud-to-device properties do not fit seq=%lld", (long long)msg->seq);
        bag[0] = '\0';
    }
    char topic[HUB_C2D_MAX_BAG + 300];
    size_t tlen = az_format_c2d_topic(topic, sizeof topic, u->device_id, bag);
    if (!tlen)
        return true;
    c2d_item *it = xmalloc(sizeof *it + tlen + msg->body_len);
    if (!it)
        return false;
    it->next = NULL;
    it->seq = msg->seq;
    it->redelivery = msg->delivery_count > 0;
    it->topic_len = tlen;
    it->body_len = msg->body_len;
    memcpy(it->data, topic, tlen);
    if (msg->body_len)
        memcpy(it->data + tlen, msg->body, msg->body_len);
    *u->tail = it;
    u->tail = &it->next;
    u->nitems++;
    return true;
}

static iotdm_result c2d_fetch_run(hub_work *w, hub_store *store)
{
    c2d_fetch_unit *u = (c2d_fetch_unit *)w;
    iotdm_result r = hub_store_c2d_foreach(store, u->device_id, u->now_ms, fetch_one, u);
    /* Counted as delivered when handed to the connection: a redelivery carries DUP. */
    for (c2d_item *it = u->items; r == IOTDM_OK && it; it = it->next)
        r = hub_store_c2d_mark_delivered(store, it->seq);
    return r;
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

static void send_item(hub_mqtt_conn *c, const c2d_item *it)
{
    for (size_t i = 0; i < c->ninflight; i++)
        if (c->inflight[i].seq == it->seq)
            return; /* fetched twice meanwhile */
    if (c->ninflight == HUB_C2D_MAX_PENDING)
        return;
    uint16_t id = next_packet_id(c);
    uint8_t hdr[MQTT_PUBLISH_HEADER_MAX(HUB_C2D_MAX_BAG + 300)];
    size_t hlen = mqtt_encode_publish_header(hdr, sizeof hdr, it->data, it->topic_len, 1,
                                             it->redelivery, false, id, it->body_len);
    if (!hlen)
        return;
    conn_write_now(c, hdr, hlen);
    conn_write_now(c, it->data + it->topic_len, it->body_len);
    c->inflight[c->ninflight++] = (hub_c2d_inflight){id, it->seq};
}

static void c2d_fetch_done(hub_work *w)
{
    c2d_fetch_unit *u = (c2d_fetch_unit *)w;
    hub_mqtt_conn *c = u->u.c;
    bool deliver = c->state == CONN_ACTIVE && w->result >= 0;
    for (c2d_item *it = u->items, *next; it; it = next) {
        next = it->next;
        if (deliver)
            send_item(c, it);
        xfree(it);
    }
    c->c2d_fetching = false;
    bool again = c->c2d_again;
    c->c2d_again = false;
    bool open = conn_unit_finish(&u->u);
    xfree(u);
    if (open && again)
        hub_conn_send_c2d_pending(c);
}

void hub_conn_send_c2d_pending(hub_mqtt_conn *c)
{
    if (c->state != CONN_ACTIVE || !(c->subs & HUB_SUB_BIT(AZ_SUB_C2D)) || !conn_writable(c))
        return;
    if (c->c2d_fetching) {
        c->c2d_again = true;
        return;
    }
    if (!c->inflight && !(c->inflight = xcalloc(HUB_C2D_MAX_PENDING, sizeof *c->inflight)))
        return; /* delivered on a later attempt */
    if (c->ninflight == HUB_C2D_MAX_PENDING)
        return;
    c2d_fetch_unit *u = xcalloc(1, sizeof *u);
    if (!u)
        return;
    snprintf(u->device_id, sizeof u->device_id, "%s", c->device_id);
    u->now_ms = time_now_ms();
    for (size_t i = 0; i < c->ninflight; i++)
        u->skip[u->nskip++] = c->inflight[i].seq;
    u->room = HUB_C2D_MAX_PENDING - c->ninflight;
    u->tail = &u->items;
    c->c2d_fetching = true;
    conn_submit(c, &u->u, c2d_fetch_run, c2d_fetch_done, 0, false);
}

typedef struct {
    conn_unit u;
    int64_t seq;
} c2d_complete_unit;

static iotdm_result c2d_complete_run(hub_work *w, hub_store *store)
{
    iotdm_result r = hub_store_c2d_complete(store, ((c2d_complete_unit *)w)->seq);
    return r == IOTDM_E_NOT_FOUND ? IOTDM_OK : r; /* expired or purged meanwhile */
}

static void c2d_complete_done(hub_work *w)
{
    c2d_complete_unit *u = (c2d_complete_unit *)w;
    hub_mqtt_conn *c = u->u.c;
    bool open = conn_unit_finish(&u->u);
    xfree(u);
    if (open)
        hub_conn_send_c2d_pending(c); /* a slot is free: more may be waiting */
}

void hub_conn_on_puback(hub_mqtt_conn *c, uint16_t packet_id)
{
    for (size_t i = 0; i < c->ninflight; i++) {
        if (c->inflight[i].packet_id != packet_id)
            continue;
        int64_t seq = c->inflight[i].seq;
        c->inflight[i] = c->inflight[--c->ninflight];
        c2d_complete_unit *u = xcalloc(1, sizeof *u);
        if (!u)
            return; /* redelivered after a reconnect */
        u->seq = seq;
        conn_submit(c, &u->u, c2d_complete_run, c2d_complete_done, HUB_WORK_SINGLE, false);
        return;
    }
    /* A PUBACK for nothing we sent is harmless (a duplicate after redelivery). */
}

void hub_conn_deliver_c2d_local(hub_loop *loop, const char *client_id)
{
    hub_mqtt_conn *c = hub_conn_find(loop, client_id);
    if (c)
        hub_conn_send_c2d_pending(c);
}
