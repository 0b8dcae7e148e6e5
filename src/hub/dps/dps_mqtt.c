/* DPS over MQTT: CONNECT, register and operation-status publishes, responses on
 * $dps/registrations/res/{status}/?$rid={rid}[&retry-after=N] at QoS 1 (azure-protocols.md §3.4,
 * §5.4 item 11). */
#include "hub/dps/dps_mqtt.h"

#include <event2/bufferevent_ssl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/sas.h"
#include "common/urlenc.h"
#include "hub/dps/dps.h"
#include "hub/mqtt/conn.h"

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
    return n > 0;
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

static void respond(hub_mqtt_conn *c, az_span rid, const hub_dps_reply *reply)
{
    char topic[512];
    size_t tlen = az_format_dps_response(
        topic, sizeof topic, reply->status, rid.ptr, rid.len,
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
        bufferevent_write(c->bev, hdr, n);
        bufferevent_write(c->bev, text, len);
    }
    free(text);
}

void hub_dps_mqtt_publish(hub_mqtt_conn *c, const mqtt_publish *p)
{
    hub_dps_session *s = c->dps;
    az_publish_topic t;
    if (az_parse_publish_topic((const char *)p->topic.ptr, p->topic.len, &t) < 0 ||
        (t.kind != AZ_PUB_DPS_REGISTER && t.kind != AZ_PUB_DPS_STATUS)) {
        hub_conn_close(c, "publish on a topic DPS does not serve");
        return;
    }
    if (p->qos == 1) {
        uint8_t ack[4];
        mqtt_encode_ack(ack, sizeof ack, MQTT_PUBACK, p->packet_id);
        bufferevent_write(c->bev, ack, sizeof ack);
    }
    hub_dps_creds creds = {s->password, bufferevent_openssl_get_ssl(c->bev), true};
    hub_dps_reply reply;
    if (t.kind == AZ_PUB_DPS_REGISTER) {
        hub_dps_register(c->h, s->id_scope, s->registration_id, (const char *)p->payload.ptr,
                         p->payload.len, &creds, &reply);
        if (reply.status < 300)
            s->attested = true;
    } else {
        char op[128];
        if (!decode_span(t.operation_id, op, sizeof op)) {
            hub_conn_close(c, "malformed operationId");
            return;
        }
        hub_dps_operation(c->h, s->id_scope, s->registration_id, op, &creds, s->attested, &reply);
    }
    if (c->state == CONN_ACTIVE)
        respond(c, t.rid, &reply);
    hub_dps_reply_deinit(&reply);
}
