/* Device MQTT sessions: TLS accept, framing, CONNECT authentication, subscriptions, keep-alive,
 * takeover and persistent sessions (azure-protocols.md §1.2-1.6, §5.3-5.4). */
#include <arpa/inet.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/sas.h"
#include "common/timeutil.h"
#include "common/urlenc.h"
#include "hub/dps/dps_mqtt.h"
#include "hub/events.h"
#include "hub/methods.h"
#include "hub/mqtt/conn.h"
#include "hub/net/tls.h"

static void conn_free(hub_mqtt_conn *c)
{
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->timer)
        event_free(c->timer);
    if (c->held)
        evbuffer_free(c->held);
    xfree(c->will_topic);
    xfree(c->will_payload);
    hub_dps_session_free(c->dps);
    xfree(c->ident);
    xfree(c->inflight);
    xfree(c);
}

void hub_conn_close(hub_mqtt_conn *c, const char *reason)
{
    if (c->state == CONN_CLOSING)
        return;
    bool was_active = c->state == CONN_ACTIVE;
    c->state = CONN_CLOSING;
    hub *h = c->h;
    if (was_active && strmap_get(h->conns, c->client_id) == c) {
        if (c->will_topic && strcmp(reason, "DISCONNECT") != 0)
            hub_conn_publish_will(c);
        strmap_remove(h->conns, c->client_id);
        int64_t now = time_now_ms();
        hub_store_device_set_connection(h->store, c->device_id, false, now);
        hub_events_connection(h->events, c->device_id, c->module_id, false);
        hub_commit_now(h);
        log_info("mqtt", "disconnected device=%s peer=%s reason=%s", c->client_id, c->peer, reason);
    } else if (!was_active) {
        log_info("mqtt", "closed peer=%s reason=%s", c->peer, reason);
    }
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->timer)
        event_del(c->timer);
    if (c->refs == 0)
        conn_free(c);
}

/* Runs once per epoch the connection wrote into, in epoch order. */
static void flush_held(void *ctx, iotdm_result commit_result)
{
    hub_mqtt_conn *c = ctx;
    c->refs--;
    if (c->state == CONN_CLOSING) {
        if (c->refs == 0)
            conn_free(c);
        return;
    }
    if (commit_result < 0) {
        /* Not durable: no acknowledgement. Closing makes the device resend. */
        hub_conn_close(c, "storage failure");
        return;
    }
    if (c->held_sealed_len) {
        /* This was the older epoch; the newer one's bytes wait for their own flush. */
        evbuffer_remove_buffer(c->held, bufferevent_get_output(c->bev), c->held_sealed_len);
        c->held_sealed_len = 0;
        return;
    }
    c->waiting_commit = false;
    bufferevent_write_buffer(c->bev, c->held);
    if (c->c2d_after_commit) {
        c->c2d_after_commit = false;
        hub_conn_send_c2d_pending(c);
    }
}

void hub_conn_write_after_commit(hub_mqtt_conn *c, const void *data, size_t len)
{
    if (!c->held && !(c->held = evbuffer_new())) {
        hub_conn_close(c, "out of memory");
        return;
    }
    uint32_t epoch = (uint32_t)c->h->epoch;
    if (c->waiting_commit && c->held_epoch != epoch) {
        /* What is held belongs to the sealed epoch (only one can be). */
        c->held_sealed_len = (uint32_t)evbuffer_get_length(c->held);
        c->waiting_commit = false;
    }
    evbuffer_add(c->held, data, len);
    if (!c->waiting_commit) {
        c->waiting_commit = true;
        c->held_epoch = epoch;
        c->refs++;
        hub_after_commit(c->h, flush_held, c);
    }
}

void hub_conn_publish(hub_mqtt_conn *c, const char *topic, size_t topic_len, const void *payload,
                      size_t len)
{
    if (c->state != CONN_ACTIVE)
        return;
    uint8_t hdr[MQTT_PUBLISH_HEADER_MAX(512)];
    size_t n =
        mqtt_encode_publish_header(hdr, sizeof hdr, topic, topic_len, 0, false, false, 0, len);
    if (n == 0 || n > sizeof hdr)
        return;
    bufferevent_write(c->bev, hdr, n);
    bufferevent_write(c->bev, payload, len);
}

static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);

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

static void send_connack(hub_mqtt_conn *c, bool session_present, uint8_t code)
{
    uint8_t buf[4];
    mqtt_encode_connack(buf, sizeof buf, session_present, code);
    bufferevent_write(c->bev, buf, sizeof buf);
}

/* Refuses a CONNECT: CONNACK with the code, then close once it is written. */
static void refuse(hub_mqtt_conn *c, uint8_t code, const char *why)
{
    log_warn("mqtt", "refused peer=%s client=%s code=%u reason=%s", c->peer, c->client_id,
             (unsigned)code, why);
    send_connack(c, false, code);
    c->state = CONN_CLOSING;
    event_del(c->timer);
    /* Let the CONNACK reach the peer: stop reading and close when the output drains. */
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    bufferevent_setcb(c->bev, NULL, write_cb, event_cb, c);
}

static bool span_to_str(const mqtt_span *s, char *out, size_t cap)
{
    if (s->len + 1 > cap)
        return false;
    if (s->len)
        memcpy(out, s->ptr, s->len);
    out[s->len] = '\0';
    return true;
}

static bool az_span_to_str(az_span s, char *out, size_t cap)
{
    if (s.len + 1 > cap)
        return false;
    if (s.len)
        memcpy(out, s.ptr, s.len);
    out[s.len] = '\0';
    return true;
}

/* SAS password check (§1.4 server algorithm). Returns an MQTT CONNACK code. */
static uint8_t check_sas(hub_mqtt_conn *c, const hub_device *d, const mqtt_connect *m,
                         const char *resource)
{
    sas_token tok;
    if (sas_parse((const char *)m->password.ptr, m->password.len, &tok) < 0)
        return MQTT_CONNACK_BAD_USERNAME_PASSWORD;
    int64_t now = time_now_ms() / 1000;
    if (tok.expiry < now - HUB_SAS_SKEW_S)
        return MQTT_CONNACK_NOT_AUTHORIZED;
    if (!sas_resource_covers(&tok, resource))
        return MQTT_CONNACK_NOT_AUTHORIZED;
    bool ok = false;
    if (tok.skn) {
        char name[HUB_ID_MAX];
        hub_policy p;
        long n = urlenc_decode(tok.skn, tok.skn_len, name, sizeof name, false);
        if (n > 0 && hub_store_policy_get(c->h->store, name, &p) == IOTDM_OK &&
            (p.rights & HUB_RIGHT_DEVICE_CONNECT))
            ok = sas_signature_valid(&tok, p.primary_key) ||
                 sas_signature_valid(&tok, p.secondary_key);
    } else if (d->auth_type == HUB_AUTH_SAS) {
        ok = (d->primary_key[0] && sas_signature_valid(&tok, d->primary_key)) ||
             (d->secondary_key[0] && sas_signature_valid(&tok, d->secondary_key));
    }
    if (!ok)
        return MQTT_CONNACK_NOT_AUTHORIZED;
    c->token_expiry_s = tok.expiry;
    return MQTT_CONNACK_ACCEPTED;
}

static uint8_t check_x509(hub_mqtt_conn *c, const hub_device *d)
{
    bool ok = d->auth_type == HUB_AUTH_SELF_SIGNED &&
              hub_tls_peer_matches(bufferevent_openssl_get_ssl(c->bev), d->primary_thumbprint,
                                   d->secondary_thumbprint);
    return ok ? MQTT_CONNACK_ACCEPTED : MQTT_CONNACK_NOT_AUTHORIZED;
}

static void arm_timer(hub_mqtt_conn *c)
{
    int64_t limit_ms = (c->keepalive_s ? c->keepalive_s * 1500LL : HUB_KEEPALIVE_CAP_S * 1000LL);
    if (limit_ms > HUB_KEEPALIVE_CAP_S * 1000LL)
        limit_ms = HUB_KEEPALIVE_CAP_S * 1000LL;
    int64_t due = c->last_rx_ms + limit_ms - time_mono_ms();
    if (c->token_expiry_s) {
        int64_t expiry_in = c->token_expiry_s * 1000 - time_now_ms();
        if (expiry_in < due)
            due = expiry_in;
    }
    if (due < 10)
        due = 10;
    struct timeval tv = {(time_t)(due / 1000), (suseconds_t)((due % 1000) * 1000)};
    event_add(c->timer, &tv);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hub_mqtt_conn *c = arg;
    if (c->state == CONN_AWAIT_CONNECT) {
        hub_conn_close(c, "no CONNECT in time");
        return;
    }
    if (c->token_expiry_s && time_now_ms() >= c->token_expiry_s * 1000) {
        hub_conn_close(c, "SAS token expired");
        return;
    }
    int64_t limit_ms = c->keepalive_s ? c->keepalive_s * 1500LL : HUB_KEEPALIVE_CAP_S * 1000LL;
    if (limit_ms > HUB_KEEPALIVE_CAP_S * 1000LL)
        limit_ms = HUB_KEEPALIVE_CAP_S * 1000LL;
    if (time_mono_ms() - c->last_rx_ms >= limit_ms) {
        hub_conn_close(c, "keep-alive timeout");
        return;
    }
    arm_timer(c);
}

/* Makes c the live connection of its identity, closing any earlier one (§1.2 takeover). */
static void take_over(hub_mqtt_conn *c)
{
    hub_mqtt_conn *old = strmap_get(c->h->conns, c->client_id);
    if (old && old != c) {
        strmap_remove(c->h->conns, c->client_id);
        old->state = CONN_AWAIT_CONNECT; /* not the owner any more: no disconnect event */
        hub_conn_close(old, "a new connection with the same identity");
    }
    strmap_put(c->h->conns, c->client_id, c);
}

/* Azure accepts a will only on the device's own telemetry topic, at QoS 0 or 1. */
static bool keep_will(hub_mqtt_conn *c, const mqtt_connect *m)
{
    az_publish_topic t;
    if (m->will_qos > 1 || m->will_payload.len > HUB_D2C_MAX_BYTES ||
        az_parse_publish_topic((const char *)m->will_topic.ptr, m->will_topic.len, &t) < 0 ||
        t.kind != AZ_PUB_TELEMETRY || t.device_id.len != strlen(c->device_id) ||
        memcmp(t.device_id.ptr, c->device_id, t.device_id.len) != 0)
        return false;
    c->will_topic = xstrndup((const char *)m->will_topic.ptr, m->will_topic.len);
    c->will_payload = xmalloc(m->will_payload.len);
    if (!c->will_topic || !c->will_payload)
        return false;
    if (m->will_payload.len)
        memcpy(c->will_payload, m->will_payload.ptr, m->will_payload.len);
    c->will_len = m->will_payload.len;
    return true;
}

static void on_connect(hub_mqtt_conn *c, const uint8_t *body, size_t len)
{
    mqtt_connect m;
    iotdm_result r = mqtt_decode_connect(body, len, &m);
    if (r == IOTDM_E_UNSUPPORTED) {
        refuse(c, MQTT_CONNACK_BAD_PROTOCOL_VERSION, "protocol version");
        return;
    }
    if (r < 0) {
        hub_conn_close(c, "malformed CONNECT");
        return;
    }
    char client[2 * HUB_ID_MAX], device[HUB_ID_MAX], module[HUB_ID_MAX];
    if (!span_to_str(&m.client_id, client, sizeof client) || m.client_id.len == 0 ||
        !hub_conn_set_identity(c, client, "", "")) {
        refuse(c, MQTT_CONNACK_IDENTIFIER_REJECTED, "client id");
        return;
    }
    az_username u;
    if (!m.has_username ||
        az_parse_username((const char *)m.username.ptr, m.username.len, &u) < 0) {
        refuse(c, MQTT_CONNACK_BAD_USERNAME_PASSWORD, "user name");
        return;
    }
    if (u.kind == AZ_USER_DPS) {
        /* Provisioning shares the listener (§5.2); its connections stay out of h->conns. */
        const char *why = NULL;
        uint8_t code = hub_dps_mqtt_connect(c, &m, &u, &why);
        if (code != MQTT_CONNACK_ACCEPTED) {
            refuse(c, code, why);
            return;
        }
        c->clean_session = true;
        c->keepalive_s = m.keepalive;
        c->state = CONN_ACTIVE;
        send_connack(c, false, MQTT_CONNACK_ACCEPTED);
        arm_timer(c);
        return;
    }
    char host[256];
    if (!az_span_to_str(u.host, host, sizeof host) || strcasecmp(host, c->h->cfg.hostname) != 0 ||
        !az_span_to_str(u.device_id, device, sizeof device) ||
        !az_span_to_str(u.module_id, module, sizeof module) ||
        !hub_conn_set_identity(c, client, device, module)) {
        refuse(c, MQTT_CONNACK_NOT_AUTHORIZED, "host name or identity");
        return;
    }
    char expected_client[2 * HUB_ID_MAX];
    snprintf(expected_client, sizeof expected_client, "%s%s%s", c->device_id,
             c->module_id[0] ? "/" : "", c->module_id);
    if (strcmp(expected_client, c->client_id) != 0) {
        refuse(c, MQTT_CONNACK_IDENTIFIER_REJECTED, "client id does not match the user name");
        return;
    }
    if (c->module_id[0]) {
        refuse(c, MQTT_CONNACK_NOT_AUTHORIZED, "module identities are not supported yet");
        return;
    }
    hub_device d;
    if (hub_store_device_get(c->h->store, c->device_id, &d) < 0) {
        refuse(c, MQTT_CONNACK_NOT_AUTHORIZED, "unknown device");
        return;
    }
    if (!d.enabled) {
        refuse(c, MQTT_CONNACK_NOT_AUTHORIZED, "device disabled");
        return;
    }
    char resource[512];
    snprintf(resource, sizeof resource, "%s/devices/%s", c->h->cfg.hostname, c->device_id);
    uint8_t code =
        m.has_password && m.password.len > 0 ? check_sas(c, &d, &m, resource) : check_x509(c, &d);
    if (code != MQTT_CONNACK_ACCEPTED) {
        refuse(c, code,
               code == MQTT_CONNACK_BAD_USERNAME_PASSWORD ? "malformed SAS token"
                                                          : "authentication failed");
        return;
    }

    if (m.has_will && !keep_will(c, &m)) {
        refuse(c, MQTT_CONNACK_NOT_AUTHORIZED,
               "the will topic must be the device's telemetry topic");
        return;
    }
    c->clean_session = m.clean_session;
    c->keepalive_s = m.keepalive;
    bool session_present = false;
    uint32_t subs = 0;
    if (m.clean_session) {
        hub_store_session_delete(c->h->store, c->client_id);
    } else if (hub_store_session_get(c->h->store, c->client_id, &subs) == IOTDM_OK) {
        session_present = true;
        c->subs = subs;
    } else {
        hub_store_session_put(c->h->store, c->client_id, 0);
    }
    take_over(c);
    c->state = CONN_ACTIVE;
    char model_id[256] = "";
    if (u.model_id.len)
        urlenc_decode(u.model_id.ptr, u.model_id.len, model_id, sizeof model_id, false);
    int64_t now = time_now_ms();
    hub_store_device_set_connection(c->h->store, c->device_id, true, now);
    hub_store_device_set_activity(c->h->store, c->device_id, now, u.model_id.len ? model_id : NULL);
    hub_events_connection(c->h->events, c->device_id, c->module_id, true);
    uint8_t ack[4];
    mqtt_encode_connack(ack, sizeof ack, session_present, MQTT_CONNACK_ACCEPTED);
    hub_conn_write_after_commit(c, ack, sizeof ack);
    log_info("mqtt", "connected device=%s peer=%s clean=%d keepalive=%u session_present=%d",
             c->client_id, c->peer, (int)m.clean_session, (unsigned)m.keepalive,
             (int)session_present);
    arm_timer(c);
    if (c->subs & HUB_SUB_BIT(AZ_SUB_METHODS))
        hub_methods_on_subscribed(c->h->methods, c->device_id);
    if (c->subs & HUB_SUB_BIT(AZ_SUB_C2D))
        hub_conn_send_c2d_pending(c);
}

static void on_subscribe(hub_mqtt_conn *c, bool subscribe, const uint8_t *body, size_t len)
{
    mqtt_sub_iter it;
    uint16_t packet_id;
    if (mqtt_sub_iter_init(&it, subscribe, body, len, &packet_id) < 0) {
        hub_conn_close(c, "malformed SUBSCRIBE");
        return;
    }
    uint8_t codes[32];
    size_t n = 0;
    mqtt_span filter;
    uint8_t qos;
    uint32_t before = c->subs;
    while (mqtt_sub_iter_next(&it, &filter, &qos)) {
        bool foreign = false;
        az_sub_kind kind = az_classify_filter((const char *)filter.ptr, filter.len, c->device_id,
                                              c->module_id, &foreign);
        if (foreign) {
            hub_conn_close(c, "subscription to another identity's topic");
            return;
        }
        if ((kind == AZ_SUB_DPS_RESPONSES) != (c->dps != NULL))
            kind = AZ_SUB_INVALID; /* DPS connections get DPS responses only, devices never */
        if (subscribe) {
            if (kind != AZ_SUB_INVALID)
                c->subs |= HUB_SUB_BIT(kind);
            if (n < sizeof codes)
                codes[n++] = kind == AZ_SUB_INVALID ? MQTT_SUBACK_FAILURE : (qos > 1 ? 1 : qos);
        } else if (kind != AZ_SUB_INVALID) {
            c->subs &= ~HUB_SUB_BIT(kind);
        }
    }
    if (subscribe && n == sizeof codes) {
        hub_conn_close(c, "too many filters in one SUBSCRIBE");
        return;
    }
    uint8_t ack[sizeof codes + 8];
    size_t alen = subscribe ? mqtt_encode_suback(ack, sizeof ack, packet_id, codes, n)
                            : mqtt_encode_ack(ack, sizeof ack, MQTT_UNSUBACK, packet_id);
    if (!c->clean_session && before != c->subs) {
        hub_store_session_put(c->h->store, c->client_id, c->subs);
        hub_conn_write_after_commit(c, ack, alen);
    } else if (c->waiting_commit) {
        hub_conn_write_after_commit(c, ack, alen); /* keep the order of acknowledgements */
    } else {
        bufferevent_write(c->bev, ack, alen);
    }
    uint32_t added = c->subs & ~before;
    if (added & HUB_SUB_BIT(AZ_SUB_METHODS))
        hub_methods_on_subscribed(c->h->methods, c->device_id);
    if (added & HUB_SUB_BIT(AZ_SUB_C2D))
        hub_conn_send_c2d_pending(c);
}

static void on_packet(hub_mqtt_conn *c, const mqtt_fixed_header *fh, const uint8_t *body)
{
    if (c->state == CONN_AWAIT_CONNECT && fh->type != MQTT_CONNECT) {
        hub_conn_close(c, "first packet is not CONNECT");
        return;
    }
    switch (fh->type) {
    case MQTT_CONNECT:
        if (c->state != CONN_AWAIT_CONNECT)
            hub_conn_close(c, "second CONNECT");
        else
            on_connect(c, body, fh->remaining_len);
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
        on_subscribe(c, fh->type == MQTT_SUBSCRIBE, body, fh->remaining_len);
        return;
    case MQTT_PINGREQ: {
        uint8_t resp[2];
        mqtt_encode_simple(resp, sizeof resp, MQTT_PINGRESP);
        bufferevent_write(c->bev, resp, sizeof resp);
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

static void read_cb(struct bufferevent *bev, void *arg)
{
    hub_mqtt_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    c->last_rx_ms = time_mono_ms();
    c->refs++; /* a packet handler may close c: it is freed below, not under our feet */
    while (c->state != CONN_CLOSING) {
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
        if (c->state == CONN_CLOSING)
            break; /* the bufferevent and its input are gone */
        evbuffer_drain(in, total);
    }
    if (--c->refs == 0 && c->state == CONN_CLOSING && !c->bev)
        conn_free(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    hub_mqtt_conn *c = arg;
    /* A refused CONNECT closes once its CONNACK is out. */
    if (c->state == CONN_CLOSING && c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
        if (c->refs == 0)
            conn_free(c);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    hub_mqtt_conn *c = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
        if (c->state == CONN_CLOSING) {
            write_cb(bev, arg);
            return;
        }
        hub_conn_close(c,
                       (what & BEV_EVENT_EOF) ? "connection closed by peer" : "connection error");
    }
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                      int socklen, void *arg)
{
    (void)l;
    (void)socklen;
    hub *h = arg;
    hub_mqtt_conn *c = xcalloc(1, sizeof *c);
    SSL *ssl = c ? SSL_new(h->tls) : NULL;
    if (!ssl) {
        xfree(c);
        evutil_closesocket(fd);
        return;
    }
    c->h = h;
    c->state = CONN_AWAIT_CONNECT;
    if (addr->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)addr;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(c->peer, sizeof c->peer, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
    }
    /* Small packets (PUBACKs, twin responses) must leave at once, not wait for delayed ACKs. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->bev = bufferevent_openssl_socket_new(h->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                            BEV_OPT_CLOSE_ON_FREE);
    c->timer = event_new(h->base, -1, 0, timer_cb, c);
    c->client_id = c->device_id = c->module_id = "";
    if (!c->bev || !c->timer) {
        if (c->bev)
            bufferevent_free(c->bev);
        else
            SSL_free(ssl);
        c->bev = NULL;
        conn_free(c);
        return;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    c->last_rx_ms = time_mono_ms();
    struct timeval tv = {HUB_CONNECT_TIMEOUT_S, 0};
    event_add(c->timer, &tv);
}

iotdm_result hub_mqtt_listen(hub *h)
{
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    char spec[128];
    snprintf(spec, sizeof spec, strchr(h->cfg.listen_addr, ':') ? "[%s]:%u" : "%s:%u",
             h->cfg.listen_addr, h->cfg.mqtt_port);
    if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) < 0) {
        log_error("mqtt", "bad listen address %s", spec);
        return IOTDM_E_MALFORMED;
    }
    h->mqtt_listener = evconnlistener_new_bind(
        h->base, accept_cb, h, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        1024, (struct sockaddr *)&ss, sslen);
    if (!h->mqtt_listener) {
        log_error("mqtt", "cannot listen on %s: %s", spec, strerror(errno));
        return -errno;
    }
    return IOTDM_OK;
}

typedef struct {
    hub_mqtt_conn **items;
    size_t len;
} conn_list;

static void collect_conn(void *ctx, const char *key, void *value)
{
    (void)key;
    conn_list *list = ctx;
    list->items[list->len++] = value;
}

void hub_mqtt_close_all(hub *h)
{
    /* Collected first: closing modifies the map. */
    conn_list list = {xcalloc(strmap_count(h->conns) + 1, sizeof(hub_mqtt_conn *)), 0};
    if (!list.items)
        return;
    strmap_foreach(h->conns, collect_conn, &list);
    for (size_t i = 0; i < list.len; i++)
        hub_conn_close(list.items[i], "hub stopping");
    xfree(list.items);
}

hub_mqtt_conn *hub_conn_find(hub *h, const char *device_id)
{
    hub_mqtt_conn *c = strmap_get(h->conns, device_id);
    return c && c->state == CONN_ACTIVE ? c : NULL;
}

void hub_conn_drop(hub *h, const char *device_id, const char *reason)
{
    hub_mqtt_conn *c = hub_conn_find(h, device_id);
    if (c)
        hub_conn_close(c, reason);
}
