/* Device MQTT connections: accept, framing, limits (output backpressure, units in flight, the
 * handshake deadline, keep-alive, token expiry, stalls), ordered answers, close and takeover
 * (docs/protocol.md §2; docs/hub.md "Connection limits"). CONNECT and SUBSCRIBE are in connect.c.
 */
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "hub/dps/dps_mqtt.h"
#include "hub/events.h"
#include "hub/mqtt/conn.h"
#include "hub/mqtt/mqtt_internal.h"
#include "hub/net/listener.h"
#include "hub/net/refusals.h"

static void list_add(hub_mqtt_conn *c)
{
    c->all_next = c->loop->mqtt_all;
    c->all_prev = NULL;
    if (c->all_next)
        c->all_next->all_prev = c;
    c->loop->mqtt_all = c;
}

static void list_remove(hub_mqtt_conn *c)
{
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else if (c->loop->mqtt_all == c)
        c->loop->mqtt_all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    c->all_prev = c->all_next = NULL;
}

static void conn_free(hub_mqtt_conn *c)
{
    list_remove(c);
    if (c->bev)
        bufferevent_free(c->bev);
    hub_wheel_cancel(&c->loop->wheel, &c->deadline);
    hub_admission_leave(c->h->admission, &c->ticket);
    xfree(c->will_topic);
    xfree(c->will_payload);
    hub_dps_session_free(c->dps);
    xfree(c->ident);
    xfree(c->inflight);
    hub_conn_desired_free(c);
    xfree(c);
}

static void release(hub_mqtt_conn *c)
{
    if (--c->refs == 0 && c->state == CONN_CLOSING)
        conn_free(c);
}

/* ---- the disconnect, recorded by a unit of its own (the connection may be gone by then) ---- */

typedef struct {
    hub_work w;
    hub *h;
    uint64_t epoch;
    int64_t when_ms;
    char device_id[HUB_ID_MAX];
    char module_id[HUB_ID_MAX];
} disconnect_unit;

static iotdm_result disconnect_run(hub_work *w, hub_store *store)
{
    disconnect_unit *u = (disconnect_unit *)w;
    iotdm_result r =
        hub_store_device_set_connection(store, u->device_id, false, u->when_ms, u->epoch);
    if (r == IOTDM_OK)
        hub_events_connection(store, u->device_id, u->module_id, false);
    return r;
}

static void disconnect_done(hub_work *w)
{
    if (w->result < 0 && w->result != IOTDM_E_NOT_FOUND)
        log_warn("mqtt", "cannot record a disconnect device=%s: %s",
                 ((disconnect_unit *)w)->device_id, iotdm_result_message(w->result));
    xfree(w);
}

static void record_disconnect(hub_mqtt_conn *c)
{
    disconnect_unit *u = xcalloc(1, sizeof *u);
    if (!u)
        return; /* the next start marks every device disconnected */
    u->h = c->h;
    u->epoch = c->epoch;
    u->when_ms = time_now_ms();
    snprintf(u->device_id, sizeof u->device_id, "%s", c->device_id);
    snprintf(u->module_id, sizeof u->module_id, "%s", c->module_id);
    hub_work_submit(c->loop, &u->w, disconnect_run, disconnect_done, 0);
}

void hub_conn_close(hub_mqtt_conn *c, const char *reason)
{
    if (c->state == CONN_CLOSING)
        return;
    bool was_active = c->state == CONN_ACTIVE;
    c->state = CONN_CLOSING;
    hub *h = c->h;
    if (was_active && c->owner && !c->dps) {
        c->owner = false;
        c->loop->mqtt_owners--;
        hub_dir_release(h->dir, c->client_id, c->epoch);
        if (!atomic_load(&h->stopping)) {
            if (c->will_topic && strcmp(reason, "DISCONNECT") != 0)
                hub_conn_publish_will(c);
            record_disconnect(c);
        }
        log_info("mqtt", "disconnected device=%s peer=%s reason=%s", c->client_id, c->peer, reason);
    } else if (was_active && c->dps) {
        log_info("mqtt", "closed dps registration=%s peer=%s reason=%s", c->device_id, c->peer,
                 reason);
    } else if (!was_active) {
        log_debug("mqtt", "closed peer=%s reason=%s", c->peer, reason);
    }
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    hub_wheel_cancel(&c->loop->wheel, &c->deadline);
    if (c->refs == 0)
        conn_free(c);
}

bool hub_conn_set_identity(hub_mqtt_conn *c, const char *client_id, const char *device_id,
                           const char *module_id)
{
    size_t a = strlen(client_id) + 1, b = strlen(device_id) + 1, m = strlen(module_id) + 1;
    char *ident = xmalloc(a + b + m);
    if (!ident)
        return false;
    /* The arguments may point into the current allocation: copy before freeing it. */
    memcpy(ident, client_id, a);
    memcpy(ident + a, device_id, b);
    memcpy(ident + a + b, module_id, m);
    xfree(c->ident);
    c->ident = ident;
    c->client_id = ident;
    c->device_id = ident + a;
    c->module_id = ident + a + b;
    return true;
}

/* ---- reading, and the limits that stop it ---- */

static void process_input(hub_mqtt_conn *c);

static bool reading_allowed(const hub_mqtt_conn *c)
{
    return c->state == CONN_AWAIT_CONNECT || (c->state == CONN_ACTIVE && !c->paused_units &&
                                              !c->paused_output && !c->throttled_until_ms);
}

/* Re-evaluates whether c may be read, and reads what is already buffered when it may again. */
static void update_reading(hub_mqtt_conn *c)
{
    if (!c->bev)
        return;
    if (reading_allowed(c)) {
        bufferevent_enable(c->bev, EV_READ);
        if (evbuffer_get_length(bufferevent_get_input(c->bev)))
            process_input(c);
    } else {
        bufferevent_disable(c->bev, EV_READ);
    }
}

static void arm_timer(hub_mqtt_conn *c);

/* Output above the limit: stop reading (a peer that does not read must not make the hub
 * buffer without end); the timer closes the connection if it stays there. */
static void check_output(hub_mqtt_conn *c)
{
    if (!c->bev || c->paused_output)
        return;
    size_t unsent = evbuffer_get_length(bufferevent_get_output(c->bev));
    if (unsent <= c->h->cfg.limits.output_limit)
        return;
    c->paused_output = true;
    /* The stall clock runs from when the output first passed the limit and stops only once the
     * output has drained completely: draining to half into the kernel's socket buffers (several
     * MB on loopback) and passing the limit again is the same stall, not a new one. */
    if (!c->stalled_since_ms)
        c->stalled_since_ms = time_mono_ms();
    bufferevent_disable(c->bev, EV_READ);
    arm_timer(c);
}

bool conn_writable(const hub_mqtt_conn *c)
{
    return c->state == CONN_ACTIVE && c->bev && !c->paused_output;
}

void conn_write_now(hub_mqtt_conn *c, const void *data, size_t len)
{
    if (!c->bev || c->state == CONN_CLOSING)
        return;
    bufferevent_write(c->bev, data, len);
    check_output(c);
}

void conn_write(hub_mqtt_conn *c, const void *data, size_t len)
{
    if (!c->bev || c->state == CONN_CLOSING)
        return;
    if (!c->last_unit) {
        conn_write_now(c, data, len);
        return;
    }
    conn_unit *u = c->last_unit;
    if (!u->after && !(u->after = evbuffer_new())) {
        hub_conn_close(c, "out of memory");
        return;
    }
    evbuffer_add(u->after, data, len);
}

void conn_submit(hub_mqtt_conn *c, conn_unit *u, hub_work_run_fn run, hub_work_done_fn done,
                 unsigned flags, bool answers)
{
    u->c = c;
    u->after = NULL;
    c->refs++;
    c->units++;
    if (answers)
        c->last_unit = u;
    if (c->units >= c->h->cfg.limits.max_inflight && !c->paused_units) {
        c->paused_units = true;
        update_reading(c);
    }
    hub_work_submit(c->loop, &u->w, run, done, flags);
}

bool conn_unit_finish(conn_unit *u)
{
    hub_mqtt_conn *c = u->c;
    if (u->after) {
        if (c->bev && c->state != CONN_CLOSING)
            bufferevent_write_buffer(c->bev, u->after);
        evbuffer_free(u->after);
        u->after = NULL;
    }
    if (c->last_unit == u)
        c->last_unit = NULL;
    c->units--;
    bool open = c->state != CONN_CLOSING;
    if (open) {
        check_output(c);
        if (c->paused_units && c->units < c->h->cfg.limits.max_inflight) {
            c->paused_units = false;
            update_reading(c);
        }
    }
    release(c);
    return open;
}

void hub_conn_publish(hub_mqtt_conn *c, const char *topic, size_t topic_len, const void *payload,
                      size_t len)
{
    if (c->state != CONN_ACTIVE || !c->bev)
        return;
    uint8_t hdr[MQTT_PUBLISH_HEADER_MAX(512)];
    size_t n =
        mqtt_encode_publish_header(hdr, sizeof hdr, topic, topic_len, 0, false, false, 0, len);
    if (n == 0 || n > sizeof hdr)
        return;
    bufferevent_write(c->bev, hdr, n);
    bufferevent_write(c->bev, payload, len);
    check_output(c);
}

/* ---- timers: handshake, keep-alive, token expiry, stall ---- */

static int64_t keepalive_limit_ms(const hub_mqtt_conn *c)
{
    int64_t limit_ms = c->keepalive_s ? c->keepalive_s * 1500LL : HUB_KEEPALIVE_CAP_S * 1000LL;
    return limit_ms > HUB_KEEPALIVE_CAP_S * 1000LL ? HUB_KEEPALIVE_CAP_S * 1000LL : limit_ms;
}

/* The next moment something may have to happen, in ms from now. */
static int64_t next_due(const hub_mqtt_conn *c)
{
    int64_t now = time_mono_ms();
    if (c->state != CONN_ACTIVE)
        return c->deadline_ms - now;
    int64_t due = INT64_MAX;
    /* While the hub itself holds back reading, the peer's silence is not its fault. */
    if (!c->paused_units && !c->paused_output && !c->throttled_until_ms)
        due = c->last_rx_ms + keepalive_limit_ms(c) - now;
    if (c->throttled_until_ms && c->throttled_until_ms - now < due)
        due = c->throttled_until_ms - now;
    if (c->token_expiry_s) {
        int64_t expiry_in = c->token_expiry_s * 1000 - time_now_ms();
        if (expiry_in < due)
            due = expiry_in;
    }
    if (c->paused_output) {
        int64_t stall_in = c->stalled_since_ms + c->h->cfg.limits.stall_timeout_s * 1000LL - now;
        if (stall_in < due)
            due = stall_in;
    }
    return due;
}

static void deadline_cb(hub_wheel_node *node);

static void arm_timer(hub_mqtt_conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    int64_t due = next_due(c);
    if (due > 24LL * 3600 * 1000)
        due = 24LL * 3600 * 1000;
    hub_wheel_arm(&c->loop->wheel, &c->deadline, time_mono_ms() + (due > 0 ? due : 0), deadline_cb);
}

static void deadline_cb(hub_wheel_node *node)
{
    hub_mqtt_conn *c = (hub_mqtt_conn *)((char *)node - offsetof(hub_mqtt_conn, deadline));
    int64_t now = time_mono_ms();
    if (c->state != CONN_ACTIVE) {
        if (now >= c->deadline_ms) {
            hub_refused(HUB_REFUSED_HEADER_TIMEOUT, "mqtt",
                        "closed peer=%s reason=\"no CONNECT within the handshake timeout\"",
                        c->peer);
            hub_conn_close(c, "no CONNECT in time");
            return;
        }
    } else if (c->paused_output &&
               now - c->stalled_since_ms >= c->h->cfg.limits.stall_timeout_s * 1000LL) {
        hub_refused(HUB_REFUSED_STALLED, "mqtt",
                    "closed device=%s peer=%s reason=\"output not read for %us\"", c->client_id,
                    c->peer, c->h->cfg.limits.stall_timeout_s);
        hub_conn_close(c, "output not read");
        return;
    } else if (c->token_expiry_s && time_now_ms() >= c->token_expiry_s * 1000) {
        hub_conn_close(c, "SAS token expired");
        return;
    } else if (c->throttled_until_ms && now >= c->throttled_until_ms) {
        c->throttled_until_ms = 0;
        c->last_rx_ms = now; /* the keep-alive clock restarts with reading */
        c->refs++;           /* reading what waited may close c */
        update_reading(c);
        bool open = c->state != CONN_CLOSING;
        release(c);
        if (!open)
            return;
    } else if (!c->paused_units && !c->paused_output && !c->throttled_until_ms &&
               now - c->last_rx_ms >= keepalive_limit_ms(c)) {
        hub_conn_close(c, "keep-alive timeout");
        return;
    }
    arm_timer(c);
}

void hub_mqtt_arm_timer(hub_mqtt_conn *c)
{
    arm_timer(c);
}

void hub_mqtt_resume(hub_mqtt_conn *c)
{
    update_reading(c);
}

void hub_conn_throttle(hub_mqtt_conn *c, int64_t until_ms)
{
    if (c->state != CONN_ACTIVE)
        return;
    c->throttled_until_ms = until_ms > 0 ? until_ms : 1;
    update_reading(c); /* only stops reading: nothing is processed here */
    arm_timer(c);
}

/* ---- framing ---- */

static void on_packet(hub_mqtt_conn *c, const mqtt_fixed_header *fh, const uint8_t *body)
{
    if (c->state == CONN_AWAIT_CONNECT && fh->type != MQTT_CONNECT) {
        hub_refused(HUB_REFUSED_MQTT_PROTOCOL, "mqtt",
                    "closed peer=%s reason=\"first packet is not CONNECT\"", c->peer);
        hub_conn_close(c, "first packet is not CONNECT");
        return;
    }
    switch (fh->type) {
    case MQTT_CONNECT:
        if (c->state != CONN_AWAIT_CONNECT)
            hub_conn_close(c, "second CONNECT");
        else
            hub_mqtt_on_connect(c, body, fh->remaining_len);
        return;
    case MQTT_PUBLISH: {
        mqtt_publish p;
        if (mqtt_decode_publish(fh->flags, body, fh->remaining_len, &p) < 0)
            hub_conn_close(c, "malformed PUBLISH");
        else if (p.qos > 1)
            hub_conn_close(c, "QoS 2 is not supported");
        else if (c->dps)
            hub_dps_mqtt_publish(c, &p);
        else
            hub_conn_on_publish(c, &p);
        return;
    }
    case MQTT_PUBACK: {
        uint16_t id;
        if (mqtt_decode_packet_id(body, fh->remaining_len, &id) < 0)
            hub_conn_close(c, "malformed PUBACK");
        else
            hub_conn_on_puback(c, id);
        return;
    }
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        hub_mqtt_on_subscribe(c, fh->type == MQTT_SUBSCRIBE, body, fh->remaining_len);
        return;
    case MQTT_PINGREQ: {
        uint8_t resp[2];
        mqtt_encode_simple(resp, sizeof resp, MQTT_PINGRESP);
        conn_write(c, resp, sizeof resp);
        return;
    }
    case MQTT_DISCONNECT:
        hub_conn_close(c, "DISCONNECT");
        return;
    default:
        hub_conn_close(c, "unexpected packet type");
        return;
    }
}

/* Handles the complete packets in the input buffer for as long as the connection may be read:
 * a CONNECT being checked, max-inflight units or unsent output stop it, leaving the rest
 * buffered (and the socket unread) until update_reading. */
static void process_input(hub_mqtt_conn *c)
{
    c->refs++; /* a packet handler may close c: it is freed below, not under our feet */
    while (c->bev && reading_allowed(c)) {
        struct evbuffer *in = bufferevent_get_input(c->bev);
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            break;
        uint8_t head[MQTT_FIXED_HEADER_MAX];
        size_t n = avail < sizeof head ? avail : sizeof head;
        evbuffer_copyout(in, head, n);
        mqtt_fixed_header fh = {0};
        iotdm_result r = mqtt_frame(head, n, HUB_MQTT_MAX_PACKET, &fh);
        if (r == IOTDM_E_INCOMPLETE && fh.header_len == 0)
            break; /* the length bytes are not all here yet */
        if (r != IOTDM_OK && r != IOTDM_E_INCOMPLETE) {
            hub_refused(HUB_REFUSED_MQTT_PROTOCOL, "mqtt", "closed peer=%s reason=\"%s\"", c->peer,
                        r == IOTDM_E_TOO_LARGE ? "packet too large" : "malformed packet");
            hub_conn_close(c, r == IOTDM_E_TOO_LARGE ? "packet too large" : "malformed packet");
            break;
        }
        size_t total = fh.header_len + fh.remaining_len;
        if (avail < total)
            break;
        const uint8_t *pkt = evbuffer_pullup(in, (ev_ssize_t)total);
        if (!pkt) {
            hub_conn_close(c, "out of memory");
            break;
        }
        on_packet(c, &fh, pkt + fh.header_len);
        if (!c->bev)
            break; /* closed: the bufferevent and its input are gone */
        evbuffer_drain(in, total);
    }
    if (c->bev && !reading_allowed(c))
        bufferevent_disable(c->bev, EV_READ);
    release(c);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    hub_mqtt_conn *c = arg;
    c->last_rx_ms = time_mono_ms();
    process_input(c);
}

/* The CONNACK of a refused CONNECT is out (or the peer went away): the connection ends. */
static void end_drain(hub_mqtt_conn *c)
{
    if (!c->draining)
        return;
    c->draining = false;
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    release(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    hub_mqtt_conn *c = arg;
    if (c->state == CONN_CLOSING) {
        end_drain(c);
        return;
    }
    size_t unsent = evbuffer_get_length(bufferevent_get_output(bev));
    if (!c->paused_output && unsent == 0)
        c->stalled_since_ms = 0; /* the peer has read everything: a later stall is a new one */
    if (c->paused_output && unsent <= c->h->cfg.limits.output_limit / 2) {
        c->paused_output = false;
        c->last_rx_ms = time_mono_ms(); /* the keep-alive clock restarts with reading */
        c->refs++;                      /* reading what waited may close c */
        update_reading(c);
        if (c->state == CONN_ACTIVE) {
            arm_timer(c);
            if (!c->dps)
                hub_conn_send_c2d_pending(c); /* held back while the device did not read */
        }
        release(c);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    hub_mqtt_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED)
        return; /* TLS handshake done; the CONNECT deadline keeps running */
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        if (c->state == CONN_CLOSING) {
            end_drain(c);
            return;
        }
        if (c->state == CONN_AWAIT_CONNECT && (what & BEV_EVENT_ERROR))
            hub_refused(HUB_REFUSED_HANDSHAKE, "mqtt", "closed peer=%s reason=\"TLS error\"",
                        c->peer);
        hub_conn_close(c,
                       (what & BEV_EVENT_EOF) ? "connection closed by peer" : "connection error");
    }
}

/* Refuses a CONNECT: CONNACK with the code, then close once it is written. */
void hub_mqtt_refuse(hub_mqtt_conn *c, uint8_t code, const char *why)
{
    hub_refused(HUB_REFUSED_MQTT_AUTH, "mqtt", "refused peer=%s client=%s code=%u reason=\"%s\"",
                c->peer, c->client_id, (unsigned)code, why);
    uint8_t buf[4];
    mqtt_encode_connack(buf, sizeof buf, false, code);
    c->state = CONN_CLOSING;
    hub_wheel_cancel(&c->loop->wheel, &c->deadline);
    if (!c->bev) {
        if (c->refs == 0)
            conn_free(c);
        return;
    }
    /* Held until the CONNACK is written (end_drain). */
    c->draining = true;
    c->refs++;
    bufferevent_write(c->bev, buf, sizeof buf);
    /* Let the CONNACK reach the peer: stop reading and close when the output drains. */
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    bufferevent_setcb(c->bev, NULL, write_cb, event_cb, c);
}

static void accept_cb(void *arg, evutil_socket_t fd, const struct sockaddr *addr, const char *peer,
                      hub_admit_ticket ticket)
{
    (void)addr;
    hub_loop *loop = arg;
    hub *h = loop->h;
    hub_mqtt_conn *c = xcalloc(1, sizeof *c);
    SSL *ssl = c ? SSL_new(h->tls) : NULL;
    if (!ssl) {
        xfree(c);
        hub_admission_leave(h->admission, &ticket);
        evutil_closesocket(fd);
        return;
    }
    c->loop = loop;
    c->h = h;
    c->ticket = ticket;
    c->state = CONN_AWAIT_CONNECT;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->bev = bufferevent_openssl_socket_new(loop->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    c->client_id = c->device_id = c->module_id = "";
    list_add(c);
    if (!c->bev) {
        if (c->bev)
            bufferevent_free(c->bev);
        else
            SSL_free(ssl);
        c->bev = NULL;
        conn_free(c);
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    /* The input never holds more than a packet and a bit: past that, reading waits. */
    bufferevent_setwatermark(c->bev, EV_READ, 0, 2 * HUB_MQTT_MAX_PACKET);
    bufferevent_setwatermark(c->bev, EV_WRITE, h->cfg.limits.output_limit / 2, 0);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->last_rx_ms = time_mono_ms();
    c->deadline_ms = c->last_rx_ms + h->cfg.limits.handshake_timeout_s * 1000LL;
    arm_timer(c);
}

/* ---- the loop's MQTT state ---- */

iotdm_result hub_mqtt_loop_init(hub_loop *loop)
{
    hub *h = loop->h;
    iotdm_result r = hub_wheel_init(&loop->wheel, loop->base);
    if (r < 0)
        return r;
    return hub_listener_new(loop->base, h->cfg.listen_addr, h->cfg.mqtt_port, "mqtt", h->admission,
                            accept_cb, loop, &loop->mqtt_listener);
}

void hub_mqtt_loop_close_all(hub_loop *loop)
{
    if (loop->mqtt_listener) {
        hub_listener_free(loop->mqtt_listener);
        loop->mqtt_listener = NULL;
    }
    /* Every connection, whatever its state; one with units in flight stays (closing) until they
     * complete, and leaves the list when freed. */
    hub_mqtt_conn *c = loop->mqtt_all;
    while (c) {
        hub_mqtt_conn *next = c->all_next;
        c->refs++; /* keeps next valid: closing c frees nothing but c */
        end_drain(c);
        hub_conn_close(c, "hub stopping");
        next = c->all_next;
        release(c);
        c = next;
    }
}

void hub_mqtt_loop_deinit(hub_loop *loop)
{
    /* Every connection was freed with its last unit. */
    hub_wheel_deinit(&loop->wheel);
}

size_t hub_mqtt_loop_connections(const hub_loop *loop)
{
    return loop->mqtt_owners;
}

hub_mqtt_conn *hub_conn_find(hub_loop *loop, const char *client_id)
{
    hub_mqtt_conn *c = hub_dir_local(loop->h->dir, client_id, loop->index);
    return c && c->state == CONN_ACTIVE && c->owner ? c : NULL;
}

void hub_conn_drop_local(hub_loop *loop, const char *client_id, const char *reason)
{
    hub_mqtt_conn *c = hub_conn_find(loop, client_id);
    if (c)
        hub_conn_close(c, reason);
}
