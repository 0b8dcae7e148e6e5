/* DPS over the hub's MQTT listener (docs/protocol.md §7.2-§7.5): the session code hands over
 * CONNECTs with a DPS user name and every publish of those connections. Each register or status
 * query is a unit of work; its answer goes out on $dps/registrations/res/{status}/?$rid={rid}
 * [&retry-after=N] at QoS 1 once the unit is durable. */
#include "hub/dps/dps_mqtt.h"

#include <event2/bufferevent_ssl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/sas.h"
#include "common/urlenc.h"
#include "hub/dps/dps.h"
#include "hub/mqtt/conn.h"
#include "hub/net/refusals.h"

struct hub_dps_session {
    char id_scope[HUB_DPS_ID_SCOPE_MAX];
    char registration_id[HUB_ID_MAX];
    char *password; /* the SAS token, kept for register; NULL for X.509 */
    size_t password_len;
    bool attested; /* a register on this connection succeeded: status queries need no more */
};

void hub_dps_session_free(hub_dps_session *s)
{
    if (!s)
        return;
    if (s->password)
        xfree_secret(s->password, s->password_len + 1);
    xfree(s);
}

static bool decode_span(az_span s, char *out, size_t cap)
{
    long n = urlenc_decode(s.ptr, s.len, out, cap, false);
    return n > 0 && strlen(out) == (size_t)n;
}

uint8_t hub_dps_mqtt_connect(hub_mqtt_conn *c, const mqtt_connect *m, const az_username *u,
                             const char **out_why)
{
    hub_dps_session *s = xcalloc(1, sizeof *s);
    if (!s) {
        *out_why = "out of memory";
        return MQTT_CONNACK_SERVER_UNAVAILABLE;
    }
    c->dps = s;
    if (!decode_span(u->id_scope, s->id_scope, sizeof s->id_scope) ||
        !decode_span(u->registration_id, s->registration_id, sizeof s->registration_id)) {
        *out_why = "ID scope or registration id";
        return MQTT_CONNACK_BAD_USERNAME_PASSWORD;
    }
    if (strcmp(s->registration_id, c->client_id) != 0) {
        *out_why = "client id does not match the registration id";
        return MQTT_CONNACK_IDENTIFIER_REJECTED;
    }
    if (strcasecmp(s->id_scope, hub_dps_id_scope(c->h)) != 0) {
        *out_why = "unknown ID scope";
        return MQTT_CONNACK_NOT_AUTHORIZED;
    }
    if (m->has_password && m->password.len > 0) {
        if (m->password.len > SAS_TOKEN_MAX || !(s->password = xmalloc(m->password.len + 1))) {
            *out_why = "password too long";
            return MQTT_CONNACK_BAD_USERNAME_PASSWORD;
        }
        memcpy(s->password, m->password.ptr, m->password.len);
        s->password[m->password.len] = '\0';
        s->password_len = m->password.len;
    }
    if (!hub_conn_set_identity(c, c->client_id, s->registration_id, "")) {
        *out_why = "out of memory";
        return MQTT_CONNACK_SERVER_UNAVAILABLE;
    }
    log_info("dps", "mqtt connected registration=%s peer=%s", s->registration_id, c->peer);
    return MQTT_CONNACK_ACCEPTED;
}

/* A register or status query on its way through the store. */
typedef struct {
    conn_unit u;
    hub *h;
    bool is_register;
    bool attested;
    char id_scope[HUB_DPS_ID_SCOPE_MAX];
    char registration_id[HUB_ID_MAX];
    char operation_id[128];
    char rid[128];
    size_t rid_len;
    hub_dps_creds creds;
    hub_dps_reply reply;
    size_t body_len;
    char body[];
} dps_unit;

static iotdm_result dps_run(hub_work *w, hub_store *store)
{
    dps_unit *u = (dps_unit *)w;
    if (u->is_register)
        hub_dps_register(u->h, store, w, u->id_scope, u->registration_id, u->body, u->body_len,
                         &u->creds, &u->reply);
    else
        hub_dps_operation(u->h, store, u->id_scope, u->registration_id, u->operation_id, &u->creds,
                          u->attested, &u->reply);
    /* A failed registration must leave nothing behind: its writes go with the unit. */
    return u->reply.status >= 500 ? IOTDM_E_STORAGE : IOTDM_OK;
}

static void respond(hub_mqtt_conn *c, const char *rid, size_t rid_len, const hub_dps_reply *reply)
{
    char topic[512];
    size_t tlen = az_format_dps_response(
        topic, sizeof topic, reply->status, rid, rid_len,
        reply->status == 202 || reply->status >= 429 ? reply->retry_after : -1);
    char *text = json_dumps(reply->body, JSON_COMPACT);
    if (!tlen || !text) {
        free(text);
        hub_conn_close(c, "response does not fit");
        return;
    }
    uint8_t hdr[MQTT_PUBLISH_HEADER_MAX(512)];
    if (++c->next_packet_id == 0)
        c->next_packet_id = 1;
    size_t len = strlen(text);
    size_t n = mqtt_encode_publish_header(hdr, sizeof hdr, topic, tlen, 1, false, false,
                                          c->next_packet_id, len);
    if (n && n <= sizeof hdr) {
        conn_write_now(c, hdr, n);
        conn_write_now(c, text, len);
    }
    free(text);
}

static void dps_done(hub_work *w)
{
    dps_unit *u = (dps_unit *)w;
    hub_mqtt_conn *c = u->u.c;
    if (w->result < 0 && u->reply.status < 500) {
        /* The store failed after the answer was made: it must not go out. */
        hub_dps_reply_deinit(&u->reply);
        hub_dps_error(&u->reply, 500001, "the registration could not be recorded: %s",
                      iotdm_result_message(w->result));
    }
    if (c->state == CONN_ACTIVE) {
        if (u->is_register && u->reply.status < 300)
            c->dps->attested = true;
        if (u->reply.body)
            respond(c, u->rid, u->rid_len, &u->reply);
    }
    hub_dps_reply_deinit(&u->reply);
    hub_dps_creds_deinit(&u->creds);
    (void)conn_unit_finish(&u->u);
    xfree(u);
}

void hub_dps_mqtt_publish(hub_mqtt_conn *c, const mqtt_publish *p)
{
    hub_dps_session *s = c->dps;
    az_publish_topic t;
    if (az_parse_publish_topic((const char *)p->topic.ptr, p->topic.len, &t) < 0 ||
        (t.kind != AZ_PUB_DPS_REGISTER && t.kind != AZ_PUB_DPS_STATUS)) {
        hub_refused(HUB_REFUSED_MQTT_PROTOCOL, "dps",
                    "closed registration=%s reason=\"publish on a topic DPS does not serve\"",
                    s->registration_id);
        hub_conn_close(c, "publish on a topic DPS does not serve");
        return;
    }
    if (p->qos == 1) {
        uint8_t ack[4];
        mqtt_encode_ack(ack, sizeof ack, MQTT_PUBACK, p->packet_id);
        conn_write(c, ack, sizeof ack);
    }
    if (t.rid.len >= sizeof((dps_unit *)0)->rid) {
        hub_conn_close(c, "request id too long");
        return;
    }
    bool is_register = t.kind == AZ_PUB_DPS_REGISTER;
    dps_unit *u = xcalloc(1, sizeof *u + (is_register ? p->payload.len + 1 : 1));
    if (!u) {
        hub_conn_close(c, "out of memory");
        return;
    }
    if (!is_register && !decode_span(t.operation_id, u->operation_id, sizeof u->operation_id)) {
        xfree(u);
        hub_conn_close(c, "malformed operationId");
        return;
    }
    u->h = c->h;
    u->is_register = is_register;
    u->attested = s->attested;
    snprintf(u->id_scope, sizeof u->id_scope, "%s", s->id_scope);
    snprintf(u->registration_id, sizeof u->registration_id, "%s", s->registration_id);
    memcpy(u->rid, t.rid.ptr, t.rid.len);
    u->rid_len = t.rid.len;
    if (is_register && p->payload.len)
        memcpy(u->body, p->payload.ptr, p->payload.len);
    u->body_len = is_register ? p->payload.len : 0;
    hub_dps_creds_init(&u->creds, bufferevent_openssl_get_ssl(c->bev), s->password, true);
    conn_submit(c, &u->u, dps_run, dps_done, 0, true);
}
