/* CONNECT (authentication, the persistent session, the connection record, takeover) and
 * SUBSCRIBE for device connections (docs/protocol.md §2, §3, §4.1). */
#include <event2/bufferevent_ssl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/sas.h"
#include "common/timeutil.h"
#include "common/urlenc.h"
#include "hub/cluster/cluster.h"
#include "hub/dps/dps_mqtt.h"
#include "hub/events.h"
#include "hub/methods.h"
#include "hub/mqtt/mqtt_internal.h"
#include "hub/net/tls.h"

/* What the CONNECT unit checks and records on a store thread. */
typedef struct {
    conn_unit u;
    hub *h;
    char client_id[2 * HUB_ID_MAX];
    char device_id[HUB_ID_MAX];
    char module_id[HUB_ID_MAX];
    char model_id[256];
    bool has_model;
    bool clean_session;
    uint64_t epoch;
    char sha1[41], sha256[65]; /* the client certificate's thumbprints ("" without one) */
    char *password;            /* the SAS token (a secret: wiped) or NULL */
    size_t password_len;
    /* results */
    uint8_t code;
    const char *why;
    bool session_present;
    uint32_t subs;
    int64_t token_expiry_s;
} connect_unit;

static bool span_to_str(const void *ptr, size_t len, char *out, size_t cap)
{
    if (len + 1 > cap)
        return false;
    if (len)
        memcpy(out, ptr, len);
    out[len] = '\0';
    return true;
}

/* SAS password check (docs/protocol.md §3.5). An expired token is refused like a wrong one:
 * Azure answers CONNACK 5, and accepting it only to close the connection at once helps no one. */
static uint8_t check_sas(connect_unit *u, const hub_device *d)
{
    sas_token tok;
    if (sas_parse(u->password, u->password_len, &tok) < 0) {
        u->why = "malformed SAS token";
        return MQTT_CONNACK_BAD_USERNAME_PASSWORD;
    }
    if (tok.expiry <= time_now_ms() / 1000) {
        u->why = "the SAS token has expired";
        return MQTT_CONNACK_NOT_AUTHORIZED;
    }
    char resource[512];
    snprintf(resource, sizeof resource, "%s/devices/%s", u->h->cfg.hostname, u->device_id);
    bool ok = false;
    if (!sas_resource_covers(&tok, resource)) {
        ok = false;
    } else if (tok.skn) {
        char name[HUB_ID_MAX];
        hub_policy p;
        long n = urlenc_decode(tok.skn, tok.skn_len, name, sizeof name, false);
        if (n > 0 && hub_policy_find(u->h, name, &p) && (p.rights & HUB_RIGHT_DEVICE_CONNECT))
            ok = sas_signature_valid(&tok, p.primary_key) ||
                 sas_signature_valid(&tok, p.secondary_key);
        OPENSSL_cleanse(&p, sizeof p);
    } else if (d->auth_type == HUB_AUTH_SAS) {
        ok = (d->primary_key[0] && sas_signature_valid(&tok, d->primary_key)) ||
             (d->secondary_key[0] && sas_signature_valid(&tok, d->secondary_key));
    }
    if (!ok) {
        u->why = "authentication failed";
        return MQTT_CONNACK_NOT_AUTHORIZED;
    }
    u->token_expiry_s = tok.expiry;
    return MQTT_CONNACK_ACCEPTED;
}

static uint8_t authenticate(connect_unit *u, const hub_device *d)
{
    if (u->password)
        return check_sas(u, d);
    if (d->auth_type == HUB_AUTH_SELF_SIGNED &&
        hub_tls_thumbprints_match(u->sha1, u->sha256, d->primary_thumbprint,
                                  d->secondary_thumbprint))
        return MQTT_CONNACK_ACCEPTED;
    u->why = u->sha1[0] ? "the client certificate is not this device's"
                        : "no password and no client certificate";
    return MQTT_CONNACK_NOT_AUTHORIZED;
}

/* Reads only: the device, its credentials and its persistent session. What the connection changes
 * in the store is recorded afterwards (record_connect), so that a full disk refuses new data but
 * not connections (docs/hub.md "Limits"). */
static iotdm_result connect_run(hub_work *w, hub_store *store)
{
    connect_unit *u = (connect_unit *)w;
    hub_device d;
    u->code = MQTT_CONNACK_NOT_AUTHORIZED;
    if (hub_store_device_get(store, u->device_id, &d) < 0) {
        u->why = "unknown device";
        return IOTDM_OK;
    }
    if (!d.enabled) {
        u->why = "device disabled";
    } else {
        u->code = authenticate(u, &d);
    }
    OPENSSL_cleanse(&d, sizeof d);
    if (u->code == MQTT_CONNACK_ACCEPTED && !u->clean_session &&
        hub_store_session_get(store, u->client_id, &u->subs) == IOTDM_OK)
        u->session_present = true;
    return IOTDM_OK;
}

/* The connection's record: session, connection state, model id and the event. Best effort: a
 * device whose state cannot be written (a full disk) stays connected, and the next start marks
 * every device disconnected anyway. */
typedef struct {
    hub_work w;
    char client_id[2 * HUB_ID_MAX];
    char device_id[HUB_ID_MAX];
    char module_id[HUB_ID_MAX];
    char model_id[256];
    bool has_model, clean_session, session_present;
    uint64_t epoch;
} record_unit;

static iotdm_result record_run(hub_work *w, hub_store *store)
{
    record_unit *u = (record_unit *)w;
    iotdm_result r = IOTDM_OK;
    if (u->clean_session)
        r = hub_store_session_delete(store, u->client_id);
    else if (!u->session_present)
        r = hub_store_session_put(store, u->client_id, 0);
    int64_t now = time_now_ms();
    if (r == IOTDM_OK)
        r = hub_store_device_set_connection(store, u->device_id, true, now, u->epoch);
    if (r == IOTDM_OK)
        r = hub_store_device_set_activity(store, u->device_id, now,
                                          u->has_model ? u->model_id : NULL);
    if (r == IOTDM_OK)
        hub_events_connection(store, u->device_id, u->module_id, true);
    return r;
}

static void record_done(hub_work *w)
{
    record_unit *u = (record_unit *)w;
    if (w->result < 0)
        log_warn("mqtt", "connection of device=%s not recorded: %s", u->device_id,
                 iotdm_result_message(w->result));
    xfree(u);
}

static void record_connect(hub_mqtt_conn *c, const connect_unit *cu)
{
    record_unit *u = xcalloc(1, sizeof *u);
    if (!u)
        return;
    snprintf(u->client_id, sizeof u->client_id, "%s", cu->client_id);
    snprintf(u->device_id, sizeof u->device_id, "%s", cu->device_id);
    snprintf(u->module_id, sizeof u->module_id, "%s", cu->module_id);
    snprintf(u->model_id, sizeof u->model_id, "%s", cu->model_id);
    u->has_model = cu->has_model;
    u->clean_session = cu->clean_session;
    u->session_present = cu->session_present;
    u->epoch = cu->epoch;
    hub_work_submit(c->loop, &u->w, record_run, record_done, 0);
}

/* ---- takeover: a new connection with the same identity closes the old one ---- */

typedef struct {
    char client_id[2 * HUB_ID_MAX];
    uint64_t epoch;
} takeover_msg;

/* The connection old (of this loop) lost its identity to a newer one: it closes without recording
 * a disconnect, since the newer one owns the state now. */
static void lose_identity(hub_mqtt_conn *old)
{
    if (old->owner) {
        old->owner = false;
        old->loop->mqtt_owners--;
    }
    hub_conn_close(old, "a new connection with the same identity");
}

/* From another loop: its directory entry already names the new connection, so the old one is
 * found among this loop's connections by its epoch (it may have closed meanwhile). */
static void take_over_local(hub_loop *loop, const char *client_id, uint64_t epoch)
{
    for (hub_mqtt_conn *c = loop->mqtt_all; c; c = c->all_next) {
        if (c->epoch == epoch && c->state == CONN_ACTIVE && strcmp(c->client_id, client_id) == 0) {
            lose_identity(c);
            return;
        }
    }
}

static void takeover_task(hub_loop *loop, void *arg)
{
    takeover_msg *m = arg;
    if (!loop->stopping)
        take_over_local(loop, m->client_id, m->epoch);
    xfree(m);
}

/* A connection on another node claimed the identity: this loop's older ones close. */
static void claimed_elsewhere_task(hub_loop *loop, void *arg)
{
    takeover_msg *m = arg;
    for (hub_mqtt_conn *c = loop->stopping ? NULL : loop->mqtt_all; c; c = c->all_next) {
        if (c->epoch < m->epoch && c->state == CONN_ACTIVE &&
            strcmp(c->client_id, m->client_id) == 0) {
            /* No connection of this node replaces it: the directory's entry, which names c,
             * goes with it (a later claim here would otherwise close c a second time). */
            if (c->owner)
                hub_dir_release(c->h->dir, c->client_id, c->epoch);
            lose_identity(c);
            break; /* a loop holds at most one connection of an identity */
        }
    }
    xfree(m);
}

void hub_mqtt_claimed_elsewhere(hub *h, const char *client_id, uint64_t epoch)
{
    hub_dir_observe_epoch(h->dir, epoch);
    hub_dir_entry e;
    if (!hub_dir_lookup(h->dir, client_id, &e) || e.epoch >= epoch || e.loop >= h->nloops)
        return; /* not held here, or held by a newer connection of this node */
    takeover_msg *m = xmalloc(sizeof *m);
    if (!m)
        return;
    snprintf(m->client_id, sizeof m->client_id, "%s", client_id);
    m->epoch = epoch;
    if (!hub_loop_post(&h->loops[e.loop], claimed_elsewhere_task, m))
        xfree(m);
}

/* Makes c the directory's holder of its identity and closes the previous holder, wherever it is
 * (docs/protocol.md §2.7). False when a newer connection already holds it. */
static bool claim(hub_mqtt_conn *c)
{
    hub_dir_entry prev;
    if (!hub_dir_claim(c->h->dir, c->client_id, c->loop->index, c->epoch, c, &prev))
        return false;
    if (prev.epoch && prev.loop == c->loop->index && prev.conn) {
        lose_identity(prev.conn); /* named by the entry until now: alive, on this thread */
    } else if (prev.epoch && prev.loop < c->h->nloops) {
        takeover_msg *m = xmalloc(sizeof *m);
        if (m) {
            snprintf(m->client_id, sizeof m->client_id, "%s", c->client_id);
            m->epoch = prev.epoch;
            if (!hub_loop_post(&c->h->loops[prev.loop], takeover_task, m))
                xfree(m);
        }
    }
    c->owner = true;
    c->loop->mqtt_owners++;
    if (c->h->cluster) /* one connection per device across the cluster */
        hub_cluster_claimed(c->h->cluster, c->client_id, c->epoch);
    return true;
}

static void connect_done(hub_work *w)
{
    connect_unit *u = (connect_unit *)w;
    hub_mqtt_conn *c = u->u.c;
    if (u->password)
        xfree_secret(u->password, u->password_len);
    if (c->state != CONN_CONNECTING) {
        (void)conn_unit_finish(&u->u);
        xfree(u);
        return;
    }
    uint8_t code = u->code;
    const char *why = u->why;
    if (w->result < 0) {
        code = MQTT_CONNACK_SERVER_UNAVAILABLE;
        why = "storage failure";
    } else if (code == MQTT_CONNACK_ACCEPTED && !claim(c)) {
        code = MQTT_CONNACK_SERVER_UNAVAILABLE;
        why = "a newer connection with the same identity";
    }
    if (code != MQTT_CONNACK_ACCEPTED) {
        hub_mqtt_refuse(c, code, why ? why : "refused");
        (void)conn_unit_finish(&u->u);
        xfree(u);
        return;
    }
    c->state = CONN_ACTIVE;
    c->subs = u->subs;
    c->token_expiry_s = u->token_expiry_s;
    record_connect(c, u);
    c->last_rx_ms = time_mono_ms();
    hub_admission_authenticated(c->h->admission, &c->ticket);
    uint8_t ack[4];
    mqtt_encode_connack(ack, sizeof ack, u->session_present, MQTT_CONNACK_ACCEPTED);
    conn_write_now(c, ack, sizeof ack);
    log_info("mqtt", "connected device=%s peer=%s clean=%d keepalive=%u session_present=%d",
             c->client_id, c->peer, (int)c->clean_session, (unsigned)c->keepalive_s,
             (int)u->session_present);
    bool open = conn_unit_finish(&u->u);
    xfree(u);
    if (!open)
        return;
    hub_mqtt_arm_timer(c);
    if (c->subs & HUB_SUB_BIT(AZ_SUB_METHODS))
        hub_methods_subscribed(c->h, c->device_id);
    if (c->subs & HUB_SUB_BIT(AZ_SUB_C2D))
        hub_conn_send_c2d_pending(c);
    hub_mqtt_resume(c);
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
    c->will_payload = xmalloc(m->will_payload.len ? m->will_payload.len : 1);
    if (!c->will_topic || !c->will_payload)
        return false;
    if (m->will_payload.len)
        memcpy(c->will_payload, m->will_payload.ptr, m->will_payload.len);
    c->will_len = m->will_payload.len;
    return true;
}

static void connect_dps(hub_mqtt_conn *c, const mqtt_connect *m, const az_username *u)
{
    /* Provisioning shares the listener (docs/protocol.md §7.2); its connections stay out of the
     * directory, and they stay "pending" for admission: DPS authenticates each register. */
    const char *why = NULL;
    uint8_t code = hub_dps_mqtt_connect(c, m, u, &why);
    if (code != MQTT_CONNACK_ACCEPTED) {
        hub_mqtt_refuse(c, code, why);
        return;
    }
    c->clean_session = true;
    c->keepalive_s = m->keepalive;
    c->state = CONN_ACTIVE;
    c->last_rx_ms = time_mono_ms();
    uint8_t ack[4];
    mqtt_encode_connack(ack, sizeof ack, false, MQTT_CONNACK_ACCEPTED);
    conn_write_now(c, ack, sizeof ack);
    hub_mqtt_arm_timer(c);
}

/* The identity a device CONNECT names; false after refusing it. */
static bool read_identity(hub_mqtt_conn *c, const az_username *u, const char *client)
{
    char host[256], device[HUB_ID_MAX], module[HUB_ID_MAX];
    if (!span_to_str(u->host.ptr, u->host.len, host, sizeof host) ||
        strcasecmp(host, c->h->cfg.hostname) != 0 ||
        !span_to_str(u->device_id.ptr, u->device_id.len, device, sizeof device) ||
        !span_to_str(u->module_id.ptr, u->module_id.len, module, sizeof module) ||
        !hub_conn_set_identity(c, client, device, module)) {
        hub_mqtt_refuse(c, MQTT_CONNACK_NOT_AUTHORIZED, "host name or identity");
        return false;
    }
    char expected_client[2 * HUB_ID_MAX];
    snprintf(expected_client, sizeof expected_client, "%s%s%s", c->device_id,
             c->module_id[0] ? "/" : "", c->module_id);
    if (strcmp(expected_client, c->client_id) != 0) {
        hub_mqtt_refuse(c, MQTT_CONNACK_IDENTIFIER_REJECTED,
                        "client id does not match the user name");
        return false;
    }
    if (c->module_id[0]) {
        hub_mqtt_refuse(c, MQTT_CONNACK_NOT_AUTHORIZED, "module identities are not supported yet");
        return false;
    }
    return true;
}

void hub_mqtt_on_connect(hub_mqtt_conn *c, const uint8_t *body, size_t len)
{
    mqtt_connect m;
    iotdm_result r = mqtt_decode_connect(body, len, &m);
    if (r == IOTDM_E_UNSUPPORTED) {
        hub_mqtt_refuse(c, MQTT_CONNACK_BAD_PROTOCOL_VERSION, "protocol version");
        return;
    }
    if (r < 0) {
        hub_conn_close(c, "malformed CONNECT");
        return;
    }
    char client[2 * HUB_ID_MAX];
    if (!span_to_str(m.client_id.ptr, m.client_id.len, client, sizeof client) ||
        m.client_id.len == 0 || memchr(client, '\0', m.client_id.len) ||
        !hub_conn_set_identity(c, client, "", "")) {
        hub_mqtt_refuse(c, MQTT_CONNACK_IDENTIFIER_REJECTED, "client id");
        return;
    }
    az_username u;
    if (!m.has_username ||
        az_parse_username((const char *)m.username.ptr, m.username.len, &u) < 0) {
        hub_mqtt_refuse(c, MQTT_CONNACK_BAD_USERNAME_PASSWORD, "user name");
        return;
    }
    if (u.kind == AZ_USER_DPS) {
        connect_dps(c, &m, &u);
        return;
    }
    if (!read_identity(c, &u, client))
        return;
    if (m.has_will && !keep_will(c, &m)) {
        hub_mqtt_refuse(c, MQTT_CONNACK_NOT_AUTHORIZED,
                        "the will topic must be the device's telemetry topic");
        return;
    }
    connect_unit *cu = xcalloc(1, sizeof *cu);
    if (!cu) {
        hub_mqtt_refuse(c, MQTT_CONNACK_SERVER_UNAVAILABLE, "out of memory");
        return;
    }
    cu->h = c->h;
    snprintf(cu->client_id, sizeof cu->client_id, "%s", c->client_id);
    snprintf(cu->device_id, sizeof cu->device_id, "%s", c->device_id);
    snprintf(cu->module_id, sizeof cu->module_id, "%s", c->module_id);
    if (u.model_id.len) {
        cu->has_model = urlenc_decode(u.model_id.ptr, u.model_id.len, cu->model_id,
                                      sizeof cu->model_id, false) >= 0;
    }
    cu->clean_session = m.clean_session;
    if (m.has_password && m.password.len > 0) {
        cu->password = xmalloc(m.password.len + 1);
        if (!cu->password) {
            xfree(cu);
            hub_mqtt_refuse(c, MQTT_CONNACK_SERVER_UNAVAILABLE, "out of memory");
            return;
        }
        memcpy(cu->password, m.password.ptr, m.password.len);
        cu->password[m.password.len] = '\0';
        cu->password_len = m.password.len;
    } else if (!hub_tls_peer_thumbprints(bufferevent_openssl_get_ssl(c->bev), cu->sha1,
                                         cu->sha256)) {
        cu->sha1[0] = cu->sha256[0] = '\0';
    }
    c->clean_session = m.clean_session;
    c->keepalive_s = m.keepalive;
    c->epoch = cu->epoch = hub_dir_next_epoch(c->h->dir);
    /* Nothing more is read until the CONNACK: clients that send SUBSCRIBE right behind CONNECT
     * find it handled after the session is known. */
    c->state = CONN_CONNECTING;
    conn_submit(c, &cu->u, connect_run, connect_done, HUB_WORK_READ, true);
}

/* ---- SUBSCRIBE and UNSUBSCRIBE ---- */

typedef struct {
    conn_unit u;
    char client_id[2 * HUB_ID_MAX];
    uint32_t subs;
    uint8_t ack[40];
    size_t ack_len;
    uint32_t added;
} subscribe_unit;

static iotdm_result subscribe_run(hub_work *w, hub_store *store)
{
    subscribe_unit *u = (subscribe_unit *)w;
    return hub_store_session_put(store, u->client_id, u->subs);
}

static void after_subscribe(hub_mqtt_conn *c, uint32_t added)
{
    if (added & HUB_SUB_BIT(AZ_SUB_METHODS))
        hub_methods_subscribed(c->h, c->device_id);
    if (added & HUB_SUB_BIT(AZ_SUB_C2D))
        hub_conn_send_c2d_pending(c);
}

static void subscribe_done(hub_work *w)
{
    subscribe_unit *u = (subscribe_unit *)w;
    hub_mqtt_conn *c = u->u.c;
    if (w->result < 0)
        /* The subscription holds for this connection; only its persistence failed (a full disk),
         * and devices subscribe again when they reconnect anyway. */
        log_warn("mqtt", "subscriptions of device=%s not persisted: %s", c->client_id,
                 iotdm_result_message(w->result));
    if (c->state == CONN_ACTIVE)
        conn_write_now(c, u->ack, u->ack_len);
    uint32_t added = u->added;
    bool open = conn_unit_finish(&u->u);
    xfree(u);
    if (open)
        after_subscribe(c, added);
}

void hub_mqtt_on_subscribe(hub_mqtt_conn *c, bool subscribe, const uint8_t *body, size_t len)
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
    uint32_t added = c->subs & ~before;
    if (c->clean_session || before == c->subs || c->dps) {
        conn_write(c, ack, alen);
        after_subscribe(c, added);
        return;
    }
    /* A persistent session: the new subscription set is durable before the SUBACK. */
    subscribe_unit *u = xcalloc(1, sizeof *u);
    if (!u) {
        hub_conn_close(c, "out of memory");
        return;
    }
    snprintf(u->client_id, sizeof u->client_id, "%s", c->client_id);
    u->subs = c->subs;
    memcpy(u->ack, ack, alen);
    u->ack_len = alen;
    u->added = added;
    conn_submit(c, &u->u, subscribe_run, subscribe_done, HUB_WORK_SINGLE, true);
}
