/* libiotdm internals: the client handle and what its files share. */
#ifndef IOTDM_CLIENT_INTERNAL_H
#define IOTDM_CLIENT_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/abi.h"
#include "client/backoff.h"
#include "client/export.h"
#include "client/outbox.h"
#include "iotdm/iotdm.h"
#include "proto/azure_topics.h"

struct mosquitto;

/* Named caps: everything a client holds is bounded. */
#define CLIENT_MAX_METHODS        256
#define CLIENT_MAX_HANDLERS       128
#define CLIENT_MAX_PENDING        16 /* desired patches buffered while a twin GET is in flight */
#define CLIENT_TELEMETRY_INFLIGHT 8
#define CLIENT_MAX_C2D_PROPS      64
#define CLIENT_METHOD_MAX_BYTES   (128 * 1024) /* docs/protocol.md §6.1 */
#define CLIENT_TELEMETRY_MAX      (256 * 1024) /* docs/protocol.md §4.3 */
#define CLIENT_BAG_MAX            (16 * 1024)
#define CLIENT_TOPIC_MAX          (CLIENT_BAG_MAX + 512)
#define CLIENT_TWIN_MAX_BYTES     (256 * 1024) /* a full twin GET answer */
#define CLIENT_LOG_QUEUE          64 /* log lines made while the lock is held, not yet delivered */
#define CLIENT_LOG_LINE           512

/* Timings (milliseconds). */
#define CLIENT_REQUEST_TIMEOUT_MS 30000 /* twin requests: the hub never says "timed out" */
#define CLIENT_CONNECT_TIMEOUT_MS 30000 /* CONNECT sent, no CONNACK */
#define CLIENT_STABLE_MS          30000 /* a connection this old resets the back-off */
#define CLIENT_BACKOFF_BASE_MS    1000
#define CLIENT_MISC_TICK_MS       1000 /* keep-alive bookkeeping while a socket is open */

#define CLIENT_API_VERSION "2021-04-12"
#define CLIENT_TYPE_ENC    "iotdm%2F0.1" /* "iotdm/0.1", percent-encoded */
#define CLIENT_MODEL_ID    "dtmi:iotdm:DeviceManagement;1"

/* Subscription bits (docs/protocol.md §4.1: at most 5 filters per device). */
enum {
    SUB_TWIN_RES = 1u << 0,
    SUB_DESIRED = 1u << 1,
    SUB_METHODS = 1u << 2,
    SUB_C2D = 1u << 3,
};

typedef enum { PHASE_IDLE = 0, PHASE_CONNECTING, PHASE_CONNECTED } conn_phase;

typedef struct {
    char *name;
    iotdm_method_fn fn;
    void *ctx;
} method_entry;

/* An acknowledgement iotdm_report_ack got while the property's on_desired was still running: it
 * is reported right after the one on_desired gives, so a quick worker cannot be overtaken. */
typedef struct {
    int64_t version;
    int code;
    char *description;
    char *value_json;
} late_ack;

typedef struct {
    char *component;
    char *property;
    iotdm_property_handler h; /* h.component/h.property point at the copies above */
    bool dispatched;          /* given a value during the current desired document */
    bool in_call;             /* its on_desired is running */
    late_ack *late;
} handler_entry;

typedef struct {
    int64_t version;
    json_t *patch;
} pending_patch;

typedef struct {
    int mid;
    int64_t seq;
} inflight_msg;

/* Locking. lock guards the client's state and is never held while a callback of the application
 * runs: a callback may call any function, and other threads may call in meanwhile. dispatch is
 * held by the one thread running callbacks (iotdm_client_process, iotdm_report_all,
 * iotdm_client_sas_token's signer), so that callbacks run one at a time and in order. The thread
 * in iotdm_client_process is the only one that changes the connection and twin-sync state, and
 * only with lock held; it releases lock around each callback (client_unlock ... client_lock),
 * so code must not keep pointers into the registries (handlers, methods) across a callback. */
struct iotdm_client {
    pthread_mutex_t lock;
    atomic_uintptr_t lock_owner; /* the thread holding lock, 0 when none (for client_log) */
    pthread_mutex_t dispatch;
    atomic_uintptr_t dispatch_owner; /* the thread holding dispatch, 0 when none */

    /* Log lines made while lock is held wait here; client_unlock delivers them (client.c). */
    struct {
        iotdm_log_level level;
        char text[CLIENT_LOG_LINE];
    } logq[CLIENT_LOG_QUEUE];
    size_t logq_first, logq_len;
    unsigned logq_dropped;
    bool log_delivering;

    /* configuration (copies) */
    char *host, *device_id, *device_key, *cert_file, *key_file, *ca_file, *model_id, *state_dir;
    unsigned port, keepalive_s, sas_ttl_s, backoff_max_s, refused_retry_s;
    iotdm_sas_signer_fn signer;
    void *signer_ctx;
    iotdm_log_fn log_fn;
    void *log_ctx;
    iotdm_log_level log_level;
    iotdm_connection_fn on_connection;
    void *connection_ctx;
    iotdm_clock_fn clock;
    void *clock_ctx;

    /* loop (loop.c) */
    int epfd, evfd, tfd;
    int watched_sock; /* the socket registered in epfd, -1 when none */
    uint32_t watched_events;
    pthread_t thread;
    bool thread_running;
    atomic_bool stop;

    /* connection (connection.c) */
    struct mosquitto *mosq;
    bool mosq_lib; /* mosquitto_lib_init done (it is reference-counted) */
    conn_phase phase;
    iotdm_connection_state state;
    bool lost;        /* set in mosquitto callbacks; handled after the loop call returns */
    bool refused;     /* the last CONNACK refused the credentials */
    int connack_code; /* of the last CONNACK */
    bool renewing;    /* the disconnect was ours, for a fresh SAS token */
    unsigned attempt;
    backoff_rng rng;
    int64_t retry_at;      /* monotonic ms: next connect attempt (PHASE_IDLE) */
    int64_t deadline;      /* monotonic ms: CONNACK deadline (PHASE_CONNECTING) */
    int64_t renew_at;      /* monotonic ms: SAS renewal, 0 when none */
    int64_t connected_at;  /* monotonic ms */
    unsigned subs_session; /* filters the hub holds for us in this session */
    unsigned subs_pending; /* filters in SUBSCRIBEs awaiting their SUBACK */
    struct {
        int mid;
        unsigned bits;
    } sub_req[2];         /* at most two SUBSCRIBEs in flight: QoS 0 filters and C2D at QoS 1 */
    int64_t sub_deadline; /* monotonic ms: SUBACK expected */
    bool subs_ready;      /* twin responses can be received */
    bool ever_connected;
    uint32_t rid_next;

    /* twin (twin.c) */
    bool twin_synced;      /* a full GET has been applied on this connection */
    bool twin_get_pending; /* a GET is in flight */
    uint32_t get_rid;
    int64_t get_deadline;
    int64_t get_retry_at;
    int64_t desired_version; /* last applied desired $version */
    json_t *desired;         /* the desired document as last applied (no $version) */
    pending_patch pending[CLIENT_MAX_PENDING];
    size_t npending;
    bool pending_overflow;
    bool patch_inflight;
    uint32_t patch_rid;
    int64_t patch_seq;
    int64_t patch_deadline;
    int64_t patch_retry_at;
    unsigned patch_failures;
    bool initial_report_done;

    /* telemetry (telemetry.c) */
    inflight_msg inflight[CLIENT_TELEMETRY_INFLIGHT];
    size_t ninflight;
    int64_t last_sent_seq;

    outbox *ob;

    /* registries */
    method_entry *methods;
    size_t nmethods;
    handler_entry *handlers;
    size_t nhandlers;
    iotdm_desired_fn desired_fn;
    void *desired_ctx;
    iotdm_c2d_fn c2d_fn;
    void *c2d_ctx;
    iotdm_reboot_veto_fn veto_fn;
    void *veto_ctx;
};

/* client.c */
void client_log(iotdm_client *c, iotdm_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define CLOG(c, lvl, ...)                                                                          \
    do {                                                                                           \
        if ((c)->log_fn && (lvl) <= (c)->log_level)                                                \
            client_log((c), (lvl), __VA_ARGS__);                                                   \
    } while (0)
void client_lock(iotdm_client *c);
/* Releases lock, first delivering the log lines queued while it was held. */
void client_unlock(iotdm_client *c);
/* Takes dispatch; -EDEADLK when this thread already holds it (a callback calling back in). */
IOTDM_NODISCARD iotdm_result client_dispatch_begin(iotdm_client *c);
void client_dispatch_end(iotdm_client *c);
/* Whether this thread holds dispatch (runs a callback, or is about to). */
bool client_dispatching(iotdm_client *c);
int64_t client_mono_ms(void);

/* auth.c: the CONNECT user name (docs/protocol.md §2.2) and the SAS password (§3). */
size_t client_format_username(char *buf, size_t cap, const char *host, const char *device_id,
                              const char *model_id);
/* Calls the signer (a callback): the caller holds dispatch, not lock. */
IOTDM_NODISCARD iotdm_result client_build_password(iotdm_client *c, int64_t expiry_s, char *out,
                                                   size_t cap);
/* The SAS string-to-sign: urlenc("{host}/devices/{id}") "\n" expiry. Returns its length or <0. */
long client_string_to_sign(const char *host, const char *device_id, int64_t expiry_s, char *out,
                           size_t cap);

/* connection.c */
void conn_init(iotdm_client *c);
void conn_deinit(iotdm_client *c);
void conn_tick(iotdm_client *c, int64_t now);
void conn_io(iotdm_client *c, bool readable, bool writable, bool failed);
int64_t conn_next_deadline(iotdm_client *c);
int conn_socket(iotdm_client *c);
bool conn_want_write(iotdm_client *c);
bool conn_online(iotdm_client *c);
IOTDM_NODISCARD iotdm_result conn_publish(iotdm_client *c, const char *topic, const void *payload,
                                          size_t len, int qos, int *out_mid);
void conn_update_subscriptions(iotdm_client *c);
uint32_t conn_next_rid(iotdm_client *c);

/* twin.c */
void twin_on_ready(iotdm_client *c); /* subscriptions in place: GET, then pump reported */
void twin_on_disconnected(iotdm_client *c);
void twin_on_response(iotdm_client *c, const az_hub_topic *t, const char *body, size_t len);
void twin_on_desired(iotdm_client *c, const az_hub_topic *t, const char *body, size_t len);
void twin_tick(iotdm_client *c, int64_t now);
int64_t twin_next_deadline(iotdm_client *c);
/* Applies a full desired document or a patch already gated by version (also for tests). */
void twin_apply_full(iotdm_client *c, json_t *desired, int64_t version);
void twin_apply_patch(iotdm_client *c, json_t *patch, int64_t version);
/* Gates a desired notification; returns what to do with it. */
typedef enum { DESIRED_APPLY, DESIRED_STALE, DESIRED_GAP } desired_gate;
desired_gate twin_gate(int64_t last_applied, int64_t version);
/* Validates and queues a reported patch (takes no ownership). */
IOTDM_NODISCARD iotdm_result twin_queue_reported(iotdm_client *c, const json_t *patch);

/* handlers.c */
/* Hands the properties a handler owns to it (merged value from c->desired) and acks them; returns
 * a copy of patch without them for the application's callback (NULL when nothing is left). With
 * full, properties whose value equals what was last applied are skipped. */
json_t *handlers_dispatch(iotdm_client *c, const json_t *patch, int64_t version, bool full);
void handlers_initial_report(iotdm_client *c);
void handlers_free(iotdm_client *c);
/* Builds {"<component>":{"__t":"c","<property>":value}} (steals value). */
json_t *handlers_component_patch(const char *component, const char *property, json_t *value);

/* telemetry.c */
void telemetry_pump(iotdm_client *c);
void telemetry_on_puback(iotdm_client *c, int mid);
void telemetry_on_disconnected(iotdm_client *c);
/* Percent-encodes the property bag (docs/protocol.md §4.2); component becomes $.sub. Returns the
 * length or <0. */
long telemetry_encode_bag(const iotdm_property *props, size_t nprops, const char *component,
                          char *out, size_t cap);

/* methods.c, c2d.c */
void methods_dispatch(iotdm_client *c, const az_hub_topic *t, const void *payload, size_t len);
void methods_free(iotdm_client *c);
void c2d_dispatch(iotdm_client *c, const az_hub_topic *t, const void *payload, size_t len);

/* loop.c */
IOTDM_NODISCARD iotdm_result loop_init(iotdm_client *c);
void loop_deinit(iotdm_client *c);
void loop_wake(iotdm_client *c);
void loop_unwatch(iotdm_client *c); /* before the MQTT socket goes away */

#endif
