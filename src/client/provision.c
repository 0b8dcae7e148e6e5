/* iotdm_provision_register: one DPS registration over MQTT/TLS (docs/protocol.md §7.2-7.9).
 * CONNECT, subscribe to the responses, publish register, poll the operation as DPS asks, and
 * read the assignment; libmosquitto does MQTT and TLS, this file only drives it. */
#include <errno.h>
#include <mosquitto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "client/abi.h"
#include "client/dps.h"
#include "client/export.h"
#include "common/alloc.h"
#include "common/base64.h"
#include "common/sas.h"
#include "common/timeutil.h"
#include "proto/azure_topics.h"
#include "proto/dps.h"

#define PROVISION_TIMEOUT_S   60
#define PROVISION_SAS_TTL_S   3600
#define PROVISION_KEEPALIVE_S 60
#define PROVISION_TICK_MS     200 /* how often cancel() is asked while waiting */

typedef enum { PH_CONNECTING, PH_SUBSCRIBING, PH_WAITING, PH_SLEEPING, PH_DONE } phase;

typedef struct {
    const iotdm_provision_config *cfg;
    iotdm_provision_result *out;
    const char *reg_id;
    char *body; /* the register request */
    struct mosquitto *m;
    phase ph;
    int sub_mid;
    unsigned rid;
    char operation_id[DPS_OPERATION_MAX]; /* empty until DPS accepted the register */
    int64_t next_at;                      /* monotonic ms: the next request (PH_SLEEPING) */
    iotdm_result result;                  /* PH_DONE */
    iotdm_result retry_error;             /* what to report if DPS stays busy */
    char mqtt_error[200];                 /* libmosquitto's last error line (TLS, DNS) */
} session;

static void plog(const iotdm_provision_config *cfg, iotdm_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void plog(const iotdm_provision_config *cfg, iotdm_log_level level, const char *fmt, ...)
{
    iotdm_log_level max = cfg->log_level ? cfg->log_level : IOTDM_LOG_INFO;
    if (!cfg->log || level > max)
        return;
    char line[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    cfg->log(cfg->log_ctx, level, line);
}

static void finish(session *s, iotdm_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void finish(session *s, iotdm_result r, const char *fmt, ...)
{
    if (s->ph == PH_DONE)
        return;
    s->ph = PH_DONE;
    s->result = r;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->out->error, sizeof s->out->error, fmt, ap);
        va_end(ap);
    }
}

/* ---- requests ----------------------------------------------------------------------------- */

static void send_request(session *s)
{
    char topic[3 * DPS_OPERATION_MAX + 128], rid[16];
    /* A fresh $rid per request: an answer to an earlier one (after a retry) is told apart. */
    s->rid++;
    size_t rid_len = (size_t)snprintf(rid, sizeof rid, "%u", s->rid);
    bool poll_op = s->operation_id[0] != '\0';
    size_t n = poll_op ? az_format_dps_status(topic, sizeof topic, rid, rid_len, s->operation_id,
                                              strlen(s->operation_id))
                       : az_format_dps_register(topic, sizeof topic, rid, rid_len);
    const char *payload = poll_op ? "" : s->body;
    int rc = n ? mosquitto_publish(s->m, NULL, topic, (int)strlen(payload), payload, 1, false)
               : MOSQ_ERR_INVAL;
    if (rc != MOSQ_ERR_SUCCESS) {
        finish(s, IOTDM_E_NOT_ONLINE, "cannot send the %s request to DPS: %s",
               poll_op ? "status" : "register", mosquitto_strerror(rc));
        return;
    }
    plog(s->cfg, IOTDM_LOG_DEBUG, "dps: %s sent ($rid=%u)", poll_op ? "status query" : "register",
         s->rid);
    s->ph = PH_WAITING;
}

static void later(session *s, int seconds)
{
    s->ph = PH_SLEEPING;
    s->next_at = time_mono_ms() + (int64_t)seconds * 1000;
}

/* ---- libmosquitto callbacks --------------------------------------------------------------- */

static const char *connack_text(int rc)
{
    switch (rc) {
    case 1:
        return "unacceptable protocol version";
    case 2:
        return "identifier rejected";
    case 3:
        return "server unavailable";
    case 4:
        return "bad user name or password";
    case 5:
        return "not authorized";
    default:
        return "refused";
    }
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    session *s = obj;
    if (rc != 0) {
        finish(s, rc == 3 ? IOTDM_E_NOT_ONLINE : IOTDM_E_UNAUTHORIZED,
               "DPS refused the connection: CONNACK %d (%s); check the ID scope, the "
               "registration id and the credentials",
               rc, connack_text(rc));
        return;
    }
    int r = mosquitto_subscribe(m, &s->sub_mid, "$dps/registrations/res/#", 1);
    if (r != MOSQ_ERR_SUCCESS) {
        finish(s, IOTDM_E_NOT_ONLINE, "cannot subscribe at DPS: %s", mosquitto_strerror(r));
        return;
    }
    s->ph = PH_SUBSCRIBING;
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int count, const int *granted)
{
    (void)m;
    session *s = obj;
    if (s->ph != PH_SUBSCRIBING || mid != s->sub_mid)
        return;
    if (count < 1 || granted[0] > 1) {
        finish(s, IOTDM_E_PROTOCOL, "DPS refused the subscription to its responses");
        return;
    }
    send_request(s);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m;
    session *s = obj;
    az_hub_topic t;
    if (!msg->topic || az_parse_hub_topic(msg->topic, strlen(msg->topic), &t) < 0 ||
        t.kind != AZ_HUB_DPS_RESPONSE) {
        plog(s->cfg, IOTDM_LOG_WARN, "dps: ignoring a message on an unexpected topic");
        return;
    }
    char rid[16];
    snprintf(rid, sizeof rid, "%u", s->rid);
    if (s->ph != PH_WAITING || t.rid.len != strlen(rid) || memcmp(t.rid.ptr, rid, t.rid.len)) {
        plog(s->cfg, IOTDM_LOG_DEBUG, "dps: ignoring an answer to an earlier request");
        return;
    }
    dps_reply reply;
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    dps_read_reply(t.status, t.retry_after, msg->payload, len, &reply, s->out);
    switch (reply.kind) {
    case AZ_DPS_POLL:
        snprintf(s->operation_id, sizeof s->operation_id, "%s", reply.operation_id);
        plog(s->cfg, IOTDM_LOG_DEBUG, "dps: %s, polling in %d s", s->out->status,
             reply.retry_after_s);
        later(s, reply.retry_after_s);
        break;
    case AZ_DPS_RETRY:
        s->retry_error = reply.error;
        plog(s->cfg, IOTDM_LOG_WARN, "dps: %s; trying again in %d s", s->out->error,
             reply.retry_after_s);
        later(s, reply.retry_after_s);
        break;
    case AZ_DPS_ASSIGNED:
        finish(s, IOTDM_OK, NULL);
        break;
    case AZ_DPS_FAILED:
        finish(s, reply.error, NULL);
        break;
    }
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    (void)rc;
    finish(obj, IOTDM_E_NOT_ONLINE, "DPS closed the connection before answering");
}

static void on_log(struct mosquitto *m, void *obj, int level, const char *text)
{
    (void)m;
    session *s = obj;
    /* TLS and name errors only reach us this way; keep the last one for the failure message. */
    if (level & MOSQ_LOG_ERR)
        snprintf(s->mqtt_error, sizeof s->mqtt_error, "%s", text);
}

/* ---- setup -------------------------------------------------------------------------------- */

/* The subject CN of a PEM certificate: DPS's registration id for X.509 (§7.9). */
static bool cert_common_name(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    int n =
        x ? X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)cap) : -1;
    X509_free(x);
    return n > 0 && (size_t)n < cap;
}

static bool set(const char *s)
{
    return s && *s;
}

/* Checks the configuration; picks the registration id and the device key. */
static iotdm_result prepare(session *s, char *cn, size_t cn_cap)
{
    const iotdm_provision_config *c = s->cfg;
    iotdm_provision_result *out = s->out;
    int auths = set(c->symmetric_key) + set(c->group_key) + set(c->cert_file);
    const char *why = !set(c->id_scope) ? "id_scope is required"
                      : auths != 1 ? "exactly one of symmetric_key, group_key, cert_file is needed"
                      : set(c->cert_file) != set(c->key_file) ? "cert_file and key_file go together"
                                                              : NULL;
    if (!why && !set(c->registration_id) && set(c->cert_file)) {
        if (cert_common_name(c->cert_file, cn, cn_cap))
            s->reg_id = cn;
        else
            why = "registration_id is not set and the certificate's subject CN cannot be read";
    } else {
        s->reg_id = c->registration_id;
    }
    if (!why && !set(s->reg_id))
        why = "registration_id is required with a symmetric key";
    if (!why && !az_dps_valid_registration_id(s->reg_id, strlen(s->reg_id)))
        why = "the registration id must be 1-128 of A-Z a-z 0-9 - . _ :";
    if (!why && strlen(c->id_scope) > 64)
        why = "id_scope is too long";
    if (!why && set(c->group_key) &&
        iotdm_provision_derive_key(c->group_key, s->reg_id, out->device_key,
                                   sizeof out->device_key) < 0)
        why = "group_key is not valid base64";
    if (!why && set(c->symmetric_key)) {
        unsigned char raw[96];
        long n = base64_decode(c->symmetric_key, strlen(c->symmetric_key), raw, sizeof raw);
        memset(raw, 0, sizeof raw);
        if (n <= 0 || strlen(c->symmetric_key) >= sizeof out->device_key)
            why = "symmetric_key is not valid base64";
        else
            snprintf(out->device_key, sizeof out->device_key, "%s", c->symmetric_key);
    }
    if (!why && !(s->body = dps_register_body(s->reg_id, c->payload_json)))
        why = "payload_json is not JSON";
    if (why) {
        snprintf(out->error, sizeof out->error, "provisioning config: %s", why);
        return IOTDM_E_MALFORMED;
    }
    snprintf(out->registration_id, sizeof out->registration_id, "%s", s->reg_id);
    return IOTDM_OK;
}

static iotdm_result configure(session *s, const char *password)
{
    const iotdm_provision_config *c = s->cfg;
    char user[512];
    if (!az_format_dps_username(user, sizeof user, c->id_scope, s->reg_id, DPS_CLIENT_VERSION))
        return IOTDM_E_TOO_LARGE;
    struct mosquitto *m = s->m;
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_connect_callback_set(m, on_connect);
    mosquitto_subscribe_callback_set(m, on_subscribe);
    mosquitto_message_callback_set(m, on_message);
    mosquitto_disconnect_callback_set(m, on_disconnect);
    mosquitto_log_callback_set(m, on_log);
    if (mosquitto_username_pw_set(m, user, password) != MOSQ_ERR_SUCCESS)
        return -ENOMEM;
    /* The same TLS rules as the hub connection: verify DPS's certificate and name, TLS 1.2+. */
    mosquitto_int_option(m, MOSQ_OPT_TLS_USE_OS_CERTS, set(c->ca_file) ? 0 : 1);
    const char *ca = set(c->ca_file) ? c->ca_file : NULL;
    const char *cert = set(c->cert_file) ? c->cert_file : NULL;
    const char *key = cert ? c->key_file : NULL;
    if (mosquitto_tls_set(m, ca, ca ? NULL : "/etc/ssl/certs", cert, key, NULL) !=
        MOSQ_ERR_SUCCESS) {
        snprintf(s->out->error, sizeof s->out->error,
                 "provisioning config: TLS files unusable (ca_file, cert_file, key_file)");
        return IOTDM_E_MALFORMED;
    }
    if (mosquitto_tls_opts_set(m, 1, "tlsv1.2", NULL) != MOSQ_ERR_SUCCESS ||
        mosquitto_tls_insecure_set(m, false) != MOSQ_ERR_SUCCESS)
        return IOTDM_E_INTERNAL;
    return IOTDM_OK;
}

/* ---- the loop ----------------------------------------------------------------------------- */

/* A failed non-blocking connect shows only as POLLERR/POLLHUP (see connection.c). */
static void check_socket(session *s)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(mosquitto_socket(s->m), SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    finish(s, IOTDM_E_NOT_ONLINE, "cannot reach DPS at %s:%u: %s", s->cfg->endpoint, s->cfg->port,
           err ? strerror(err) : "connection closed");
}

static void io_once(session *s, int wait_ms)
{
    struct pollfd p = {.fd = mosquitto_socket(s->m),
                       .events = POLLIN | (mosquitto_want_write(s->m) ? POLLOUT : 0)};
    if (p.fd < 0) {
        finish(s, IOTDM_E_NOT_ONLINE, "the connection to DPS is gone");
        return;
    }
    if (poll(&p, 1, wait_ms) < 0 && errno != EINTR) {
        int e = errno;
        finish(s, -e, "poll: %s", strerror(e));
        return;
    }
    if ((p.revents & (POLLERR | POLLHUP)) && s->ph == PH_CONNECTING) {
        check_socket(s);
        return;
    }
    int rc = MOSQ_ERR_SUCCESS;
    if (p.revents & (POLLIN | POLLERR | POLLHUP))
        rc = mosquitto_loop_read(s->m, 1);
    if (rc == MOSQ_ERR_SUCCESS && s->ph != PH_DONE && mosquitto_want_write(s->m))
        rc = mosquitto_loop_write(s->m, 1);
    if (rc == MOSQ_ERR_SUCCESS && s->ph != PH_DONE)
        rc = mosquitto_loop_misc(s->m);
    if (rc != MOSQ_ERR_SUCCESS)
        finish(s, IOTDM_E_NOT_ONLINE, "connection to DPS at %s:%u failed: %s%s%s", s->cfg->endpoint,
               s->cfg->port, rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc),
               s->mqtt_error[0] ? ": " : "", s->mqtt_error);
}

static void run(session *s, int64_t deadline)
{
    const iotdm_provision_config *c = s->cfg;
    while (s->ph != PH_DONE) {
        int64_t now = time_mono_ms();
        if (c->cancel && c->cancel(c->cancel_ctx)) {
            finish(s, -ECANCELED, "provisioning cancelled");
            return;
        }
        if (now >= deadline && s->retry_error) {
            char last[sizeof s->out->error]; /* the busy answer, quoted in the reason */
            snprintf(last, sizeof last, "%s", s->out->error);
            finish(s, s->retry_error, "DPS stayed busy until the timeout (%s)", last);
            return;
        }
        if (now >= deadline) {
            finish(s, IOTDM_E_TIMEOUT, "DPS did not answer within %u s",
                   c->timeout_s ? c->timeout_s : PROVISION_TIMEOUT_S);
            return;
        }
        if (s->ph == PH_SLEEPING && now >= s->next_at) {
            send_request(s);
            continue;
        }
        int64_t wait = deadline - now;
        if (s->ph == PH_SLEEPING && s->next_at - now < wait)
            wait = s->next_at - now;
        io_once(s, (int)(wait < PROVISION_TICK_MS ? wait : PROVISION_TICK_MS));
    }
}

static iotdm_result connect_and_run(session *s, const char *password)
{
    const iotdm_provision_config *c = s->cfg;
    /* CleanSession=1: DPS keeps no session anyway (§7.2). */
    s->m = mosquitto_new(s->reg_id, true, s);
    if (!s->m)
        return -ENOMEM;
    iotdm_result r = configure(s, password);
    if (r < 0)
        return r;
    int64_t deadline =
        time_mono_ms() + (int64_t)(c->timeout_s ? c->timeout_s : PROVISION_TIMEOUT_S) * 1000;
    plog(c, IOTDM_LOG_INFO, "dps: registering %s at %s:%u (id scope %s, %s)", s->reg_id,
         c->endpoint, c->port, c->id_scope,
         set(c->cert_file)   ? "X.509"
         : set(c->group_key) ? "group key"
                             : "symmetric key");
    int rc = mosquitto_connect_async(s->m, c->endpoint, (int)c->port, PROVISION_KEEPALIVE_S);
    if (rc != MOSQ_ERR_SUCCESS) {
        finish(s, IOTDM_E_NOT_ONLINE, "cannot reach DPS at %s:%u: %s", c->endpoint, c->port,
               rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        return s->result;
    }
    s->ph = PH_CONNECTING;
    run(s, deadline);
    mosquitto_disconnect(s->m);
    mosquitto_loop_write(s->m, 1); /* best effort: DPS needs no goodbye */
    return s->result;
}

IOTDM_API iotdm_result iotdm_provision_register(const iotdm_provision_config *config,
                                                iotdm_provision_result *out)
{
    if (!config || !out)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    /* Defaults are filled into a copy, so that messages can name the endpoint and port. */
    iotdm_provision_config c;
    iotdm_result taken = client_struct_take(&c, sizeof c, config, PROVISION_CONFIG_V1_SIZE);
    if (taken < 0) {
        snprintf(out->error, sizeof out->error, "%s",
                 taken == IOTDM_E_UNSUPPORTED
                     ? "config: members of a later libiotdm are set; this one does not know them"
                     : "config: struct_size is not set (iotdm_provision_config_init)");
        return taken;
    }
    if (!set(c.endpoint))
        c.endpoint = IOTDM_DPS_GLOBAL_ENDPOINT;
    if (!c.port)
        c.port = 8883;
    session s = {.cfg = &c, .out = out};
    char cn[AZ_DPS_REG_ID_MAX + 2], password[SAS_TOKEN_MAX] = "";
    iotdm_result r = prepare(&s, cn, sizeof cn);
    if (r == IOTDM_OK && out->device_key[0])
        r = dps_build_password(c.id_scope, s.reg_id, out->device_key,
                               time_now_ms() / 1000 + PROVISION_SAS_TTL_S, password,
                               sizeof password);
    bool lib = false;
    if (r == IOTDM_OK) {
        lib = mosquitto_lib_init() == MOSQ_ERR_SUCCESS;
        r = connect_and_run(&s, password[0] ? password : NULL);
    }
    memset(password, 0, sizeof password);
    if (s.m)
        mosquitto_destroy(s.m);
    if (lib)
        mosquitto_lib_cleanup();
    xfree(s.body);
    if (r == IOTDM_OK) {
        plog(&c, IOTDM_LOG_INFO, "dps: %s assigned to hub %s as device %s (%s)", s.reg_id,
             out->assigned_hub, out->device_id, out->substatus[0] ? out->substatus : "assigned");
    } else {
        /* A failed result carries no key. */
        memset(out->device_key, 0, sizeof out->device_key);
        if (!out->error[0])
            snprintf(out->error, sizeof out->error, "%s", iotdm_result_message(r));
        /* The caller decides how bad it is (an agent retries): out->error carries the reason. */
        plog(&c, IOTDM_LOG_DEBUG, "dps: %s", out->error);
    }
    return r;
}

IOTDM_API void iotdm_provision_result_deinit(iotdm_provision_result *out)
{
    if (!out)
        return;
    free(out->payload_json);
    memset(out, 0, sizeof *out);
}

IOTDM_API iotdm_result iotdm_provision_derive_key(const char *group_key,
                                                  const char *registration_id, char *out_key,
                                                  size_t out_cap)
{
    if (!group_key || !registration_id || !out_key || out_cap < SAS_SIG_LEN + 1)
        return -EINVAL;
    char key[SAS_SIG_LEN + 1];
    iotdm_result r = sas_derive_device_key(group_key, registration_id, key);
    if (r == IOTDM_OK)
        memcpy(out_key, key, sizeof key);
    memset(key, 0, sizeof key);
    return r;
}
