/* The hub connection: libmosquitto over TLS, CONNECT as docs/protocol.md §2.2/§2.11, SAS renewal,
 * reconnect with back-off, subscriptions, and the routing of what the hub publishes. */
#include <errno.h>
#include <mosquitto.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "client/internal.h"
#include "common/alloc.h"
#include "common/sas.h"
#include "common/timeutil.h"

static const char *state_name(iotdm_connection_state s)
{
    switch (s) {
    case IOTDM_CONNECTION_CONNECTING:
        return "connecting";
    case IOTDM_CONNECTION_CONNECTED:
        return "connected";
    case IOTDM_CONNECTION_REFUSED:
        return "refused";
    default:
        return "disconnected";
    }
}

static void set_state(iotdm_client *c, iotdm_connection_state s, const char *reason)
{
    if (c->state == s)
        return;
    c->state = s;
    CLOG(c, s == IOTDM_CONNECTION_REFUSED ? IOTDM_LOG_ERROR : IOTDM_LOG_INFO, "connection: %s (%s)",
         state_name(s), reason);
    if (c->on_connection) {
        /* Only this thread changes the connection, so it is as set here when the lock is back. */
        client_unlock(c);
        c->on_connection(c->connection_ctx, s, reason);
        client_lock(c);
    }
}

void conn_init(iotdm_client *c)
{
    /* Reference-counted by libmosquitto (not atomically: create clients one at a time). */
    c->mosq_lib = mosquitto_lib_init() == MOSQ_ERR_SUCCESS;
    backoff_rng_seed(&c->rng);
    c->phase = PHASE_IDLE;
    c->state = IOTDM_CONNECTION_DISCONNECTED;
    c->retry_at = client_mono_ms(); /* connect on the first process() */
}

/* Drops the mosquitto instance; its queued packets die with it, because the outbox, not
 * libmosquitto, is what resends after a reconnect. */
static void drop_mosq(iotdm_client *c)
{
    if (!c->mosq)
        return;
    loop_unwatch(c);
    mosquitto_destroy(c->mosq);
    c->mosq = NULL;
}

void conn_deinit(iotdm_client *c)
{
    if (c->mosq && c->phase == PHASE_CONNECTED) {
        mosquitto_disconnect(c->mosq);
        mosquitto_loop_write(c->mosq, 1); /* best effort: tell the hub we are leaving */
    }
    drop_mosq(c);
    if (c->mosq_lib)
        mosquitto_lib_cleanup();
    c->mosq_lib = false;
}

int conn_socket(iotdm_client *c)
{
    return c->mosq ? mosquitto_socket(c->mosq) : -1;
}

bool conn_want_write(iotdm_client *c)
{
    return c->mosq && mosquitto_want_write(c->mosq);
}

bool conn_online(iotdm_client *c)
{
    return c->phase == PHASE_CONNECTED && !c->lost;
}

uint32_t conn_next_rid(iotdm_client *c)
{
    if (++c->rid_next == 0)
        c->rid_next = 1;
    return c->rid_next;
}

iotdm_result conn_publish(iotdm_client *c, const char *topic, const void *payload, size_t len,
                          int qos, int *out_mid)
{
    if (!conn_online(c))
        return IOTDM_E_NOT_ONLINE;
    int rc = mosquitto_publish(c->mosq, out_mid, topic, (int)len, payload, qos, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        CLOG(c, IOTDM_LOG_WARN, "connection: publish failed: %s", mosquitto_strerror(rc));
        return rc == MOSQ_ERR_NOMEM ? -ENOMEM : IOTDM_E_NOT_ONLINE;
    }
    return IOTDM_OK;
}

/* Sends one SUBSCRIBE for the filters in bits (all at one QoS) and remembers its mid. */
static void subscribe(iotdm_client *c, unsigned bits, int qos)
{
    char c2d[AZ_MAX_ID_LEN + 64];
    snprintf(c2d, sizeof c2d, "devices/%s/messages/devicebound/#", c->device_id);
    char *filters[4];
    int n = 0;
    if (bits & SUB_TWIN_RES)
        filters[n++] = "$iothub/twin/res/#";
    if (bits & SUB_DESIRED)
        filters[n++] = "$iothub/twin/PATCH/properties/desired/#";
    if (bits & SUB_METHODS)
        filters[n++] = "$iothub/methods/POST/#";
    if (bits & SUB_C2D)
        filters[n++] = c2d;
    int slot = c->sub_req[0].bits ? 1 : 0;
    int rc = mosquitto_subscribe_multiple(c->mosq, &c->sub_req[slot].mid, n, filters, qos, 0, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        CLOG(c, IOTDM_LOG_WARN, "connection: subscribe failed: %s", mosquitto_strerror(rc));
        return;
    }
    c->sub_req[slot].bits = bits;
    c->subs_pending |= bits;
    c->sub_deadline = client_mono_ms() + CLIENT_REQUEST_TIMEOUT_MS;
}

void conn_update_subscriptions(iotdm_client *c)
{
    if (!conn_online(c))
        return;
    unsigned wanted = SUB_TWIN_RES | SUB_DESIRED | SUB_METHODS | (c->c2d_fn ? SUB_C2D : 0);
    unsigned missing = wanted & ~c->subs_session & ~c->subs_pending;
    /* The SDKs subscribe twin and method topics at QoS 0 and C2D at QoS 1 (§4.1, §9.1); the hub
     * delivers min(granted, flow QoS) (§4.6): asking the same keeps us on the documented path. */
    if (missing & ~SUB_C2D)
        subscribe(c, missing & ~SUB_C2D, 0);
    if (missing & SUB_C2D)
        subscribe(c, SUB_C2D, 1);
    if (!c->subs_ready &&
        (c->subs_session & (SUB_TWIN_RES | SUB_DESIRED)) == (SUB_TWIN_RES | SUB_DESIRED)) {
        c->subs_ready = true;
        twin_on_ready(c);
    }
}

static void on_connect(struct mosquitto *m, void *obj, int rc, int flags)
{
    (void)m;
    iotdm_client *c = obj;
    c->connack_code = rc;
    if (rc != 0) {
        /* 3 (server unavailable) is transient; anything else means the credentials or the
         * identity are wrong and retrying fast cannot help (§2.8, §2.11 step 7). */
        c->refused = rc != 3;
        c->lost = true;
        return;
    }
    bool session_present = flags & 1;
    /* Only a session this process subscribed in is trusted to hold every filter we need. */
    if (!session_present || !c->ever_connected)
        c->subs_session = 0;
    c->ever_connected = true;
    c->phase = PHASE_CONNECTED;
    c->connected_at = client_mono_ms();
    c->refused = false;
    set_state(c, IOTDM_CONNECTION_CONNECTED,
              session_present ? "CONNACK 0, session present" : "CONNACK 0, new session");
    conn_update_subscriptions(c);
    telemetry_pump(c);
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    (void)rc;
    iotdm_client *c = obj;
    c->lost = true;
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int count, const int *granted)
{
    (void)m;
    iotdm_client *c = obj;
    int slot = c->sub_req[0].bits && c->sub_req[0].mid == mid   ? 0
               : c->sub_req[1].bits && c->sub_req[1].mid == mid ? 1
                                                                : -1;
    if (slot < 0)
        return;
    for (int i = 0; i < count; i++)
        if (granted[i] > 1)
            CLOG(c, IOTDM_LOG_ERROR, "connection: the hub refused subscription %d (code %d)", i,
                 granted[i]);
    c->subs_session |= c->sub_req[slot].bits;
    c->subs_pending &= ~c->sub_req[slot].bits;
    c->sub_req[slot].bits = 0;
    conn_update_subscriptions(c);
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    (void)m;
    telemetry_on_puback(obj, mid);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m;
    iotdm_client *c = obj;
    az_hub_topic t;
    if (!msg->topic || az_parse_hub_topic(msg->topic, strlen(msg->topic), &t) < 0) {
        CLOG(c, IOTDM_LOG_WARN, "connection: ignoring a message on an unknown topic");
        return;
    }
    size_t len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
    switch (t.kind) {
    case AZ_HUB_TWIN_RESPONSE:
        twin_on_response(c, &t, msg->payload, len);
        break;
    case AZ_HUB_TWIN_DESIRED:
        twin_on_desired(c, &t, msg->payload, len);
        break;
    case AZ_HUB_METHOD_REQUEST:
        methods_dispatch(c, &t, msg->payload, len);
        break;
    case AZ_HUB_C2D:
        c2d_dispatch(c, &t, msg->payload, len);
        break;
    default:
        CLOG(c, IOTDM_LOG_WARN, "connection: ignoring an unexpected message kind %d", t.kind);
        break;
    }
}

static void on_log(struct mosquitto *m, void *obj, int level, const char *text)
{
    (void)m;
    iotdm_client *c = obj;
    /* libmosquitto logs packet traffic at debug; its errors (TLS, host name) are worth a line. */
    if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
        CLOG(c, IOTDM_LOG_WARN, "mqtt: %s", text);
}

/* Applies the credentials and TLS settings to a fresh mosquitto instance. */
static iotdm_result configure(iotdm_client *c, struct mosquitto *m, const char *password)
{
    char user[1024];
    if (!client_format_username(user, sizeof user, c->host, c->device_id, c->model_id))
        return IOTDM_E_TOO_LARGE;
    mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_with_flags_callback_set(m, on_connect);
    mosquitto_disconnect_callback_set(m, on_disconnect);
    mosquitto_subscribe_callback_set(m, on_subscribe);
    mosquitto_publish_callback_set(m, on_publish);
    mosquitto_message_callback_set(m, on_message);
    mosquitto_log_callback_set(m, on_log);
    if (mosquitto_username_pw_set(m, user, password) != MOSQ_ERR_SUCCESS)
        return -ENOMEM;
    /* Without a CA file, trust the system store (Azure's roots are there, §2.11 step 1). */
    mosquitto_int_option(m, MOSQ_OPT_TLS_USE_OS_CERTS, c->ca_file ? 0 : 1);
    int rc = mosquitto_tls_set(m, c->ca_file, c->ca_file ? NULL : "/etc/ssl/certs", c->cert_file,
                               c->key_file, NULL);
    if (rc != MOSQ_ERR_SUCCESS) {
        CLOG(c, IOTDM_LOG_ERROR, "connection: TLS files unusable (ca_file, cert_file, key_file)");
        return IOTDM_E_MALFORMED;
    }
    /* Verify the hub's certificate and name (libmosquitto checks IP SANs too); TLS 1.2+. */
    if (mosquitto_tls_opts_set(m, 1, "tlsv1.2", NULL) != MOSQ_ERR_SUCCESS ||
        mosquitto_tls_insecure_set(m, false) != MOSQ_ERR_SUCCESS)
        return IOTDM_E_INTERNAL;
    return IOTDM_OK;
}

static void schedule_retry(iotdm_client *c, int64_t now, const char *why)
{
    int64_t delay;
    if (c->refused) {
        delay = (int64_t)c->refused_retry_s * 1000;
        char reason[96];
        snprintf(reason, sizeof reason, "CONNACK %d: %s", c->connack_code,
                 c->connack_code == 5 ? "not authorized" : "credentials refused");
        set_state(c, IOTDM_CONNECTION_REFUSED, reason);
    } else {
        delay = backoff_delay_ms(&c->rng, c->attempt, CLIENT_BACKOFF_BASE_MS,
                                 (int64_t)c->backoff_max_s * 1000);
        if (c->attempt < 32)
            c->attempt++;
        set_state(c, IOTDM_CONNECTION_DISCONNECTED, why);
    }
    c->phase = PHASE_IDLE;
    c->retry_at = now + delay;
    CLOG(c, IOTDM_LOG_DEBUG, "connection: next attempt in %lld ms", (long long)delay);
}

static void start_attempt(iotdm_client *c, int64_t now)
{
    drop_mosq(c);
    c->lost = c->refused = false;
    c->subs_pending = 0;
    memset(c->sub_req, 0, sizeof c->sub_req);
    c->subs_ready = false;
    c->rid_next = 0;
    set_state(c, IOTDM_CONNECTION_CONNECTING, "connecting");
    char password[SAS_TOKEN_MAX];
    password[0] = '\0';
    iotdm_result r = IOTDM_OK;
    bool sas = !c->cert_file;
    if (sas) {
        /* The real clock, not an injected one: the hub checks se against its own time. */
        int64_t expiry = time_now_ms() / 1000 + c->sas_ttl_s;
        client_unlock(c); /* the signer is the application's (a TPM, an HSM) */
        r = client_build_password(c, expiry, password, sizeof password);
        client_lock(c);
        if (r < 0)
            CLOG(c, IOTDM_LOG_ERROR, "connection: cannot sign a SAS token: %s",
                 iotdm_result_message(r));
    }
    c->mosq = r < 0 ? NULL : mosquitto_new(c->device_id, false, c);
    if (c->mosq)
        r = configure(c, c->mosq, sas ? password : NULL);
    memset(password, 0, sizeof password);
    int rc = MOSQ_ERR_NOMEM;
    if (c->mosq && r == IOTDM_OK)
        rc = mosquitto_connect_async(c->mosq, c->host, (int)c->port, (int)c->keepalive_s);
    if (rc != MOSQ_ERR_SUCCESS) {
        CLOG(c, IOTDM_LOG_WARN, "connection: cannot connect to %s:%u: %s", c->host, c->port,
             r < 0 ? iotdm_result_message(r) : mosquitto_strerror(rc));
        drop_mosq(c);
        schedule_retry(c, now, "connect failed");
        return;
    }
    c->phase = PHASE_CONNECTING;
    c->deadline = now + CLIENT_CONNECT_TIMEOUT_MS;
    /* Renew at 80 % of the token's life: there is no in-band re-auth in MQTT 3.1.1 (§3.6). */
    c->renew_at = sas ? now + (int64_t)c->sas_ttl_s * 800 : 0;
}

/* The connection is gone (or must go): forget per-connection state, schedule the next try. */
static void connection_lost(iotdm_client *c, int64_t now, const char *why)
{
    bool was_connected = c->phase == PHASE_CONNECTED;
    if (was_connected && now - c->connected_at >= CLIENT_STABLE_MS)
        c->attempt = 0;
    drop_mosq(c);
    c->lost = false;
    c->subs_pending = 0;
    memset(c->sub_req, 0, sizeof c->sub_req);
    c->subs_ready = false;
    twin_on_disconnected(c);
    telemetry_on_disconnected(c);
    if (c->renewing) {
        c->renewing = false;
        c->phase = PHASE_IDLE;
        start_attempt(c, now);
        return;
    }
    schedule_retry(c, now, was_connected ? "connection lost" : why);
}

/* A failed non-blocking connect shows as EPOLLERR/EPOLLHUP, which libmosquitto's read and write
 * calls do not notice while the connect is pending: without this check the loop would spin until
 * the CONNACK deadline. */
static bool socket_failed(iotdm_client *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(mosquitto_socket(c->mosq), SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0)
        return false;
    CLOG(c, IOTDM_LOG_WARN, "connection: %s:%u: %s", c->host, c->port, strerror(err));
    c->lost = true;
    return true;
}

void conn_io(iotdm_client *c, bool readable, bool writable, bool failed)
{
    if (!c->mosq || mosquitto_socket(c->mosq) < 0)
        return;
    if (failed && socket_failed(c))
        return;
    int rc = MOSQ_ERR_SUCCESS;
    if (readable || failed)
        rc = mosquitto_loop_read(c->mosq, 16);
    if (rc == MOSQ_ERR_SUCCESS && !c->lost && c->mosq && (writable || conn_want_write(c)))
        rc = mosquitto_loop_write(c->mosq, 16);
    if (rc == MOSQ_ERR_SUCCESS && !c->lost && c->mosq)
        rc = mosquitto_loop_misc(c->mosq);
    if (rc == MOSQ_ERR_SUCCESS && failed && !c->lost) {
        /* Hung up with no error left to read: refused or reset, the peer is gone either way. */
        CLOG(c, IOTDM_LOG_WARN, "connection: %s:%u closed or refused the connection", c->host,
             c->port);
        rc = MOSQ_ERR_CONN_LOST;
    }
    if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_CONN_REFUSED)
        CLOG(c, IOTDM_LOG_DEBUG, "connection: loop: %s", mosquitto_strerror(rc));
    if (rc != MOSQ_ERR_SUCCESS)
        c->lost = true;
}

void conn_tick(iotdm_client *c, int64_t now)
{
    if (c->lost) {
        connection_lost(c, now, c->refused ? "refused" : "connect failed");
        return;
    }
    switch (c->phase) {
    case PHASE_IDLE:
        if (now >= c->retry_at)
            start_attempt(c, now);
        break;
    case PHASE_CONNECTING:
        if (now >= c->deadline) {
            CLOG(c, IOTDM_LOG_WARN, "connection: no CONNACK within %d s",
                 CLIENT_CONNECT_TIMEOUT_MS / 1000);
            connection_lost(c, now, "connect timed out");
        }
        break;
    case PHASE_CONNECTED:
        if (c->subs_pending && now >= c->sub_deadline) {
            /* Without the twin subscriptions nothing else works: start over. */
            CLOG(c, IOTDM_LOG_WARN, "connection: no SUBACK within %d s",
                 CLIENT_REQUEST_TIMEOUT_MS / 1000);
            connection_lost(c, now, "subscribe timed out");
        } else if (c->renew_at && now >= c->renew_at) {
            CLOG(c, IOTDM_LOG_INFO, "connection: renewing the SAS token");
            mosquitto_disconnect(c->mosq);
            mosquitto_loop_write(c->mosq, 1);
            c->renewing = true;
            connection_lost(c, now, "token renewal");
        }
        break;
    }
}

int64_t conn_next_deadline(iotdm_client *c)
{
    if (c->lost)
        return 0;
    switch (c->phase) {
    case PHASE_IDLE:
        return c->retry_at;
    case PHASE_CONNECTING:
        return c->deadline;
    default: {
        int64_t d = c->renew_at ? c->renew_at : INT64_MAX;
        return c->subs_pending && c->sub_deadline < d ? c->sub_deadline : d;
    }
    }
}
