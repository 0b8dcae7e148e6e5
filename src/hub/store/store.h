/* Hub persistence interface: registry, twins, C2D queues, telemetry, sessions, policies, DPS.
 *
 * A store is a backend behind an operations table (hub_store_ops, at the end of this file): SQLite
 * (store/sqlite/, the embedded default) and PostgreSQL (store/postgresql/, for a cluster). The rest
 * of the hub calls the hub_store_* functions below, which dispatch through the table, and only from
 * units of work (core/work.h) running on the store's own threads: no event loop ever calls the
 * store, so a backend may block (on the disk, on the network) without stalling a connection.
 *
 * Durability contract: writes join the open group transaction; a unit's writes apply whole or not
 * at all (hub_store_unit_begin/end); nothing is durable before hub_store_group_commit and then
 * hub_store_durable have returned. The executor sends no acknowledgement before that. Reads see
 * the writes made earlier through the same handle, committed or not. */

#ifndef IOTDM_HUB_STORE_H
#define IOTDM_HUB_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iotdm/result.h"

typedef struct hub_store hub_store;
typedef struct hub_store_ops hub_store_ops;
typedef struct hub_query hub_query; /* hub/query/query.h */

/* Sizes include the NUL. Limits follow Azure IoT Hub (docs/protocol.md §6.1, §6.3). */
#define HUB_ID_MAX         129 /* deviceId, moduleId, policy names: <= 128 chars */
#define HUB_KEY_MAX        96  /* base64 of a key of up to 64 bytes */
#define HUB_THUMBPRINT_MAX 65  /* SHA-1 (40) or SHA-256 (64) hex */
#define HUB_REASON_MAX     129

typedef enum {
    HUB_AUTH_SAS = 0,
    HUB_AUTH_SELF_SIGNED,
    HUB_AUTH_CA,
    HUB_AUTH_NONE,
} hub_auth_type;

/* Shared-access-policy rights (docs/protocol.md §3.7). */
enum {
    HUB_RIGHT_REGISTRY_READ = 1u << 0,
    HUB_RIGHT_REGISTRY_WRITE = 1u << 1,
    HUB_RIGHT_SERVICE_CONNECT = 1u << 2,
    HUB_RIGHT_DEVICE_CONNECT = 1u << 3,
    HUB_RIGHT_ENROLLMENT_READ = 1u << 4, /* DPS service API (provisioningserviceowner) */
    HUB_RIGHT_ENROLLMENT_WRITE = 1u << 5,
};

/* An internal key (rights 0: it authorizes nothing) that signs file-upload SAS URIs. */
#define HUB_UPLOAD_KEY_POLICY "$upload"

typedef struct {
    char name[HUB_ID_MAX];
    char primary_key[HUB_KEY_MAX];
    char secondary_key[HUB_KEY_MAX];
    unsigned rights; /* HUB_RIGHT_* bits */
} hub_policy;

/* A device identity. Times are milliseconds since the Unix epoch; 0 means "never". */
typedef struct {
    char device_id[HUB_ID_MAX];
    char generation_id[32];
    uint64_t etag; /* increases on every identity change */
    bool enabled;
    char status_reason[HUB_REASON_MAX];
    int64_t status_updated_ms;
    hub_auth_type auth_type;
    char primary_key[HUB_KEY_MAX];
    char secondary_key[HUB_KEY_MAX];
    char primary_thumbprint[HUB_THUMBPRINT_MAX]; /* lower-case hex, no colons */
    char secondary_thumbprint[HUB_THUMBPRINT_MAX];
    bool iot_edge;
    bool connected;
    int64_t connection_state_updated_ms;
    int64_t last_activity_ms;
    char model_id[256]; /* last model id announced in CONNECT */
    size_t c2d_pending; /* read-only: undelivered cloud-to-device messages (expired ones too,
                           until housekeeping drops them) */
} hub_device;

/* A twin. The json_t members are owned by the struct (hub_twin_deinit releases them); none is NULL
 * after a successful hub_store_twin_get. *_meta mirror the shape of their section (see
 * src/proto/twin.h). */
typedef struct {
    json_t *tags;
    json_t *desired;
    json_t *desired_meta;
    int64_t desired_version;
    json_t *reported;
    json_t *reported_meta;
    int64_t reported_version;
    int64_t version; /* top-level twin "version": increases on any twin change */
    uint64_t etag;   /* twin etag counter: increases on any twin change */
} hub_twin;

void hub_twin_deinit(hub_twin *twin);

/* A cloud-to-device message waiting for its device. */
typedef struct {
    int64_t seq; /* store-assigned, increasing per hub */
    char device_id[HUB_ID_MAX];
    char message_id[HUB_ID_MAX];
    json_t
        *properties; /* object: system ("$.mid", "$.to", ...) and application properties, strings */
    unsigned char *body;
    size_t body_len;
    int64_t enqueued_ms;
    int64_t expiry_ms; /* 0 = no expiry */
    int delivery_count;
} hub_c2d;

void hub_c2d_deinit(hub_c2d *msg);

/* The largest percent-encoded property bag of a C2D message: what fits in the topic a device
 * subscribes to (docs/protocol.md §4.4). Enqueuing refuses messages whose bag is longer. */
#define HUB_C2D_MAX_BAG 8192
/* Undelivered messages per device (Azure's limit, docs/protocol.md §6.1). */
#define HUB_C2D_QUEUE_MAX 50
/* Writes msg's properties as the percent-encoded bag into out (cap >= HUB_C2D_MAX_BAG + 1).
 * IOTDM_E_TOO_LARGE when they do not fit in HUB_C2D_MAX_BAG bytes. (store.c) */
IOTDM_NODISCARD iotdm_result hub_c2d_format_bag(const json_t *properties, char *out, size_t cap);

/* A telemetry message accepted from a device (or a live event such as a connection change). */
typedef struct {
    int64_t seq; /* store-assigned, increasing; the position in the retained stream */
    char device_id[HUB_ID_MAX];
    char module_id[HUB_ID_MAX];
    int64_t enqueued_ms;
    json_t *system_properties; /* object of strings, including the hub's iothub-* stamps */
    json_t *properties;        /* application properties, object of strings */
    /* Instead of the two trees, the same objects as JSON text (device telemetry, where building
     * trees would cost more than storing; the writer has stamped them). Borrowed. */
    const char *system_json, *properties_json;
    size_t system_json_len, properties_json_len;
    unsigned char *body;
    size_t body_len;
} hub_telemetry;

void hub_telemetry_deinit(hub_telemetry *msg);

/* Lifecycle. hub_store_open picks the backend from the location: a file path (or "sqlite:PATH")
 * is SQLite, a postgresql:// (or postgres://) URL PostgreSQL. Opening creates or migrates the
 * schema; IOTDM_E_UNSUPPORTED for a database written by a newer hub. A handle is used by one thread
 * at a time (the executor's writer); readers get their own handles (hub_store_open_reader). After a
 * storage failure inside the open group, writes fail with IOTDM_E_STORAGE until a commit reports
 * the failure (and discards the group). */
IOTDM_NODISCARD iotdm_result hub_store_open(const char *location, hub_store **out_store);
void hub_store_close(hub_store *store); /* commits nothing: an open group is rolled back */

/* Transactions. The executor (core/work.c) runs a group of units of work in one transaction:
 * unit_begin, the unit's reads and writes, unit_end(outcome) (an error undoes that unit alone),
 * and once per group group_commit. Committed data is visible to readers; it is durable once
 * hub_store_durable, called after the commit (on another thread if need be), has returned. */
IOTDM_NODISCARD iotdm_result hub_store_unit_begin(hub_store *store);
IOTDM_NODISCARD iotdm_result hub_store_unit_end(hub_store *store, iotdm_result outcome);
IOTDM_NODISCARD iotdm_result hub_store_group_commit(hub_store *store);
bool hub_store_has_pending_writes(const hub_store *store);
/* Makes everything committed so far durable. May run on another thread than the writer's,
 * concurrently with it (SQLite: fdatasync of the WAL and checkpoints on a connection of its own).
 */
IOTDM_NODISCARD iotdm_result hub_store_durable(hub_store *store);
/* Whether the backend asks the writer to open no new group until the durability call in progress
 * has returned (SQLite: so that its log can start over; under continuous writes it would grow
 * without end). Thread-safe; the executor asks between groups. */
bool hub_store_quiesce_wanted(hub_store *store);
/* group_commit then durable: for start-up, tools and tests, which have no executor. */
IOTDM_NODISCARD iotdm_result hub_store_commit(hub_store *store);
/* A read-only handle for another thread (queries, event history), seeing committed data. */
IOTDM_NODISCARD iotdm_result hub_store_open_reader(hub_store *store, hub_store **out_reader);

/* Policies. */
IOTDM_NODISCARD iotdm_result hub_store_policy_put(hub_store *store, const hub_policy *policy);
IOTDM_NODISCARD iotdm_result hub_store_policy_get(hub_store *store, const char *name,
                                                  hub_policy *out_policy);
size_t hub_store_policy_count(hub_store *store);

/* Devices. create fails with IOTDM_E_EXISTS; it fills in etag (1) and generation_id.
 * update/delete take if_match (0 = unconditional) and fail with IOTDM_E_PRECONDITION on mismatch,
 * IOTDM_E_NOT_FOUND when absent; update bumps d->etag in place. Creating a device also creates its
 * empty twin; deleting it deletes its twin, C2D queue and session. */
IOTDM_NODISCARD iotdm_result hub_store_device_create(hub_store *store, hub_device *device);
IOTDM_NODISCARD iotdm_result hub_store_device_get(hub_store *store, const char *device_id,
                                                  hub_device *out_device);
IOTDM_NODISCARD iotdm_result hub_store_device_update(hub_store *store, hub_device *device,
                                                     uint64_t if_match);
IOTDM_NODISCARD iotdm_result hub_store_device_delete(hub_store *store, const char *device_id,
                                                     uint64_t if_match);
/* Connection state and activity change often and are not identity changes: no etag bump.
 * set_connection applies only when epoch is at least the stored connection epoch (the directory's
 * claim number of the connection writing it, core/dir.h), so that a connection that lost its
 * device to a newer one cannot overwrite the newer one's state; it stores epoch. */
IOTDM_NODISCARD iotdm_result hub_store_device_set_connection(hub_store *store,
                                                             const char *device_id, bool connected,
                                                             int64_t when_ms, uint64_t epoch);
IOTDM_NODISCARD iotdm_result
hub_store_device_set_activity(hub_store *store, const char *device_id, int64_t when_ms,
                              const char *model_id /* NULL = unchanged */);

/* Visits devices in device-id order, starting after after_id (NULL = from the first), at most max
 * of them. The callback returns false to stop early. */
typedef bool (*hub_device_visitor)(void *ctx, const hub_device *device);
IOTDM_NODISCARD iotdm_result hub_store_device_foreach(hub_store *store, const char *after_id,
                                                      size_t max, hub_device_visitor visit,
                                                      void *ctx);

typedef struct {
    size_t total, enabled, disabled, connected;
} hub_device_stats;
IOTDM_NODISCARD iotdm_result hub_store_device_stats(hub_store *store, hub_device_stats *out_stats);
/* Marks every device disconnected (at hub start: no connection survives a restart). With a node
 * set (hub_store_set_node), only the devices whose connection state that node wrote. */
IOTDM_NODISCARD iotdm_result hub_store_device_disconnect_all(hub_store *store, int64_t when_ms);
/* Cluster stores (PostgreSQL): the node this handle writes connection states for. Each connected
 * device's row names the node holding it (docs/cluster.md); SQLite ignores it. */
void hub_store_set_node(hub_store *store, const char *node_id);
/* Cluster stores: marks up to max devices held by node_id disconnected (the node is gone),
 * calling visit with each; *out_count gets how many. IOTDM_E_UNSUPPORTED on SQLite. */
typedef void (*hub_device_id_visitor)(void *ctx, const char *device_id);
IOTDM_NODISCARD iotdm_result hub_store_device_disconnect_node(hub_store *store, const char *node_id,
                                                              int64_t when_ms, size_t max,
                                                              hub_device_id_visitor visit,
                                                              void *ctx, size_t *out_count);

/* Twins. put replaces the stored twin with *twin as given (the caller bumped versions); a NULL
 * section (with its metadata) keeps the stored one. get_sections reads at least the sections
 * asked for (HUB_TWIN_* bits) with every counter, and may leave the others NULL: a reported patch
 * need not parse the desired properties. */
enum { HUB_TWIN_TAGS = 1u << 0, HUB_TWIN_DESIRED = 1u << 1, HUB_TWIN_REPORTED = 1u << 2 };
IOTDM_NODISCARD iotdm_result hub_store_twin_get_sections(hub_store *store, const char *device_id,
                                                         unsigned sections, hub_twin *out_twin);
IOTDM_NODISCARD iotdm_result hub_store_twin_get(hub_store *store, const char *device_id,
                                                hub_twin *out_twin);
IOTDM_NODISCARD iotdm_result hub_store_twin_put(hub_store *store, const char *device_id,
                                                const hub_twin *twin);
/* What the device's view of its twin needs, as stored: a twin GET copies text and never parses
 * the twin (hub_twin_device_view_text). */
typedef struct {
    char *desired, *reported; /* JSON object texts, NUL-terminated (xfree; hub_twin_texts_free) */
    size_t desired_len, reported_len;
    int64_t desired_version, reported_version;
} hub_twin_texts;
IOTDM_NODISCARD iotdm_result hub_store_twin_texts(hub_store *store, const char *device_id,
                                                  hub_twin_texts *out_texts);
void hub_twin_texts_free(hub_twin_texts *texts);
/* Visits every device with its twin, in device-id order (for queries). */
typedef bool (*hub_twin_visitor)(void *ctx, const hub_device *device, const hub_twin *twin);
IOTDM_NODISCARD iotdm_result hub_store_twin_foreach(hub_store *store, hub_twin_visitor visit,
                                                    void *ctx);

/* Queries in the IoT Hub query language (hub/query/query.h; paging is hub_query_page_run's).
 * Visits, in device-id order after after_id (NULL: from the first), the devices whose twin may
 * match q's WHERE clause, each with its twin, until the visitor returns false. The backend narrows
 * the candidates with what it can translate of the clause into a query over its indexes; that is a
 * superset of the matches, so the caller still evaluates the clause on each (hub_query_matches).
 * Rows are read as they are visited: stopping early reads no further. For reader handles. */
iotdm_result hub_store_query_page(hub_store *store, const hub_query *q, const char *after_id,
                                  hub_twin_visitor visit, void *ctx);

/* C2D queue. enqueue fails with IOTDM_E_QUOTA when the device already has max_pending messages
 * (those already expired at msg->enqueued_ms do not count) and IOTDM_E_NOT_FOUND for an unknown
 * device; it sets msg->seq. The caller keeps ownership of msg's members. */
IOTDM_NODISCARD iotdm_result hub_store_c2d_enqueue(hub_store *store, hub_c2d *msg,
                                                   size_t max_pending);
/* Visits the device's pending messages, oldest first, skipping those expired at now_ms. The
 * message (body included) is lent to the visitor for the duration of the call. */
typedef bool (*hub_c2d_visitor)(void *ctx, const hub_c2d *msg);
IOTDM_NODISCARD iotdm_result hub_store_c2d_foreach(hub_store *store, const char *device_id,
                                                   int64_t now_ms, hub_c2d_visitor visit,
                                                   void *ctx);
IOTDM_NODISCARD iotdm_result hub_store_c2d_mark_delivered(hub_store *store,
                                                          int64_t seq); /* delivery_count++ */
IOTDM_NODISCARD iotdm_result hub_store_c2d_complete(hub_store *store, int64_t seq); /* removes it */
IOTDM_NODISCARD iotdm_result hub_store_c2d_purge(hub_store *store, const char *device_id,
                                                 size_t *out_purged);
size_t hub_store_c2d_count(hub_store *store, const char *device_id);
/* Drops expired messages of every device; returns how many. */
size_t hub_store_c2d_expire(hub_store *store, int64_t now_ms);

/* Telemetry and live events, retained by size and age. append sets msg->seq, or leaves it 0 when
 * the backend numbers rows as it inserts the group's (PostgreSQL: many in one statement);
 * telemetry_last_seq then gives it. */
IOTDM_NODISCARD iotdm_result hub_store_telemetry_append(hub_store *store, hub_telemetry *msg);
typedef bool (*hub_telemetry_visitor)(void *ctx, const hub_telemetry *msg);
/* Visits retained messages with seq >= from_seq in order, at most max; each lent for the call. */
IOTDM_NODISCARD iotdm_result hub_store_telemetry_foreach(hub_store *store, int64_t from_seq,
                                                         size_t max, hub_telemetry_visitor visit,
                                                         void *ctx);
/* The highest seq ever assigned (kept when trimming empties the stream); 0 before the first. */
int64_t hub_store_telemetry_last_seq(hub_store *store);
/* Deletes the oldest messages until at most max_bytes of rows (bodies, properties and the row's
 * own overhead: about what they take on the disk) remain and none is older than
 * now_ms - max_age_ms (max_age_ms <= 0: no age limit), at most max_rows of them per call (a
 * long backlog, after a restart or a lowered limit, must not hold the writer): *out_more (may be
 * NULL) says whether more must go. Opens no transaction when nothing goes. */
IOTDM_NODISCARD iotdm_result hub_store_telemetry_trim(hub_store *store, uint64_t max_bytes,
                                                      int64_t max_age_ms, int64_t now_ms,
                                                      size_t max_rows, bool *out_more);

/* File uploads (docs/protocol.md §8.12). The bytes are kept by the HTTP layer in
 * DATA/files/<correlation_id>; the store keeps the records. */
#define HUB_BLOB_NAME_MAX   1024 + HUB_ID_MAX + 1 /* "<deviceId>/<name>" */
#define HUB_CORRELATION_MAX 48

typedef enum {
    HUB_FILE_PENDING = 0, /* SAS URI handed out, nothing uploaded yet */
    HUB_FILE_UPLOADED,    /* bytes stored, the device has not notified yet */
    HUB_FILE_DONE,        /* the device notified success */
    HUB_FILE_FAILED,      /* the device notified failure */
} hub_file_state;

typedef struct {
    char correlation_id[HUB_CORRELATION_MAX];
    char device_id[HUB_ID_MAX];
    char blob_name[HUB_BLOB_NAME_MAX];
    hub_file_state state;
    int64_t size;
    int64_t created_ms;
    int64_t updated_ms;
    int status_code;
    char status_description[256];
} hub_file;

IOTDM_NODISCARD iotdm_result hub_store_file_create(hub_store *store, const hub_file *file);
IOTDM_NODISCARD iotdm_result hub_store_file_get(hub_store *store, const char *correlation_id,
                                                hub_file *out_file);
IOTDM_NODISCARD iotdm_result hub_store_file_update(hub_store *store, const hub_file *file);
IOTDM_NODISCARD iotdm_result hub_store_file_delete(hub_store *store, const char *correlation_id);
/* The newest record of a blob past the pending state (IOTDM_E_NOT_FOUND when there is none). */
IOTDM_NODISCARD iotdm_result hub_store_file_find(hub_store *store, const char *device_id,
                                                 const char *blob_name, hub_file *out_file);
/* Uploads of a device (NULL: every device), newest first, at most max. */
typedef bool (*hub_file_visitor)(void *ctx, const hub_file *file);
IOTDM_NODISCARD iotdm_result hub_store_file_foreach(hub_store *store, const char *device_id,
                                                    size_t max, hub_file_visitor visit, void *ctx);
/* Uploads of a device still in progress (pending or uploaded) created after since_ms. */
size_t hub_store_file_active(hub_store *store, const char *device_id, int64_t since_ms);
/* A device's uploads kept (any state) and the bytes they hold, for its quota. */
IOTDM_NODISCARD iotdm_result hub_store_file_usage(hub_store *store, const char *device_id,
                                                  size_t *out_count, uint64_t *out_bytes);
/* Deletes up to max records: finished (done or failed) ones last updated before done_before_ms,
 * and pending or uploaded ones created before open_before_ms (their SAS has expired). Each
 * record is lent to visit before it goes (the caller deletes its bytes); *out_deleted (may be
 * NULL) gets how many went. */
IOTDM_NODISCARD iotdm_result hub_store_file_prune(hub_store *store, int64_t done_before_ms,
                                                  int64_t open_before_ms, size_t max,
                                                  hub_file_visitor visit, void *ctx,
                                                  size_t *out_deleted);

/* Cluster stores (PostgreSQL): the bytes of an upload kept with its record, so that any node
 * serves what another received (docs/cluster.md); they go when the record goes. A single hub keeps
 * them in DATA/files instead: IOTDM_E_UNSUPPORTED on SQLite. get returns a new buffer (xfree). */
IOTDM_NODISCARD iotdm_result hub_store_file_bytes_put(hub_store *store, const char *correlation_id,
                                                      const void *bytes, size_t len);
IOTDM_NODISCARD iotdm_result hub_store_file_bytes_get(hub_store *store, const char *correlation_id,
                                                      unsigned char **out_bytes, size_t *out_len);

/* Persistent MQTT sessions (CleanSession=0): the subscription set of a client id, as bits the MQTT
 * layer defines. get returns IOTDM_E_NOT_FOUND when there is no session. */
IOTDM_NODISCARD iotdm_result hub_store_session_put(hub_store *store, const char *client_id,
                                                   uint32_t subscriptions);
IOTDM_NODISCARD iotdm_result hub_store_session_get(hub_store *store, const char *client_id,
                                                   uint32_t *out_subscriptions);
IOTDM_NODISCARD iotdm_result hub_store_session_delete(hub_store *store,
                                                      const char *client_id); /* OK if none */

/* Device provisioning (docs/protocol.md §7). Enrollments and registration records are kept as
 * the JSON documents the DPS service API serves; the store adds an etag counter (1 on create, +1 on
 * every replace). Ids compare case-insensitively, as registration ids do. */
typedef enum { HUB_DPS_INDIVIDUAL = 0, HUB_DPS_GROUP = 1 } hub_dps_kind;

/* A document lent to a visitor for the duration of the call. */
typedef bool (*hub_doc_visitor)(void *ctx, const char *id, const json_t *doc, uint64_t etag);

/* put creates or replaces. if_match 0 = unconditional; otherwise IOTDM_E_PRECONDITION when the
 * stored etag differs or there is none. *out_etag (may be NULL) gets the new etag. get returns a
 * new reference in *out_doc; IOTDM_E_NOT_FOUND when absent. */
IOTDM_NODISCARD iotdm_result hub_store_enrollment_put(hub_store *store, hub_dps_kind kind,
                                                      const char *id, const json_t *doc,
                                                      uint64_t if_match, uint64_t *out_etag);
IOTDM_NODISCARD iotdm_result hub_store_enrollment_get(hub_store *store, hub_dps_kind kind,
                                                      const char *id, json_t **out_doc,
                                                      uint64_t *out_etag);
IOTDM_NODISCARD iotdm_result hub_store_enrollment_delete(hub_store *store, hub_dps_kind kind,
                                                         const char *id, uint64_t if_match);
/* In id order, after after_id (NULL: from the first), at most max. */
IOTDM_NODISCARD iotdm_result hub_store_enrollment_foreach(hub_store *store, hub_dps_kind kind,
                                                          const char *after_id, size_t max,
                                                          hub_doc_visitor visit, void *ctx);

/* Registration records: one per registration id; group_id is "" for individual enrollments. */
IOTDM_NODISCARD iotdm_result hub_store_registration_put(hub_store *store,
                                                        const char *registration_id,
                                                        const char *group_id, const json_t *doc,
                                                        uint64_t *out_etag);
IOTDM_NODISCARD iotdm_result hub_store_registration_get(hub_store *store,
                                                        const char *registration_id,
                                                        json_t **out_doc, uint64_t *out_etag);
IOTDM_NODISCARD iotdm_result hub_store_registration_delete(hub_store *store,
                                                           const char *registration_id,
                                                           uint64_t if_match);
/* Records of one group (group_id NULL: all), in id order after after_id, at most max. */
IOTDM_NODISCARD iotdm_result hub_store_registration_foreach(hub_store *store, const char *group_id,
                                                            const char *after_id, size_t max,
                                                            hub_doc_visitor visit, void *ctx);

/* Operations (§7.4): the final RegistrationOperationStatus of a registration, which the device
 * polls after the 202, kept in the store so that it outlives a restart. put adds one
 * (IOTDM_E_EXISTS when the id is taken); created_ms is wall-clock time. get returns the
 * registration id it was made for, when, and a new reference in *out_result; IOTDM_E_NOT_FOUND when
 * absent. Operation ids compare exactly, registration ids case-insensitively. */
IOTDM_NODISCARD iotdm_result hub_store_dps_operation_put(hub_store *store, const char *operation_id,
                                                         const char *registration_id,
                                                         int64_t created_ms, const json_t *result);
IOTDM_NODISCARD iotdm_result hub_store_dps_operation_get(hub_store *store, const char *operation_id,
                                                         char out_registration_id[HUB_ID_MAX],
                                                         int64_t *out_created_ms,
                                                         json_t **out_result);
/* Deletes the operations created before before_ms, then the oldest beyond the newest max_keep;
 * *out_deleted (may be NULL) gets how many went. Both walk the index on created_ms. */
IOTDM_NODISCARD iotdm_result hub_store_dps_operation_prune(hub_store *store, int64_t before_ms,
                                                           size_t max_keep, size_t *out_deleted);

/* TPM challenges (§7.10): the registration key of the last 401 to a registration id, which the
 * device's signed register and polls are checked against, kept in the store so that they outlive a
 * restart. The key is a secret, like the device keys: callers wipe their copies. */
#define HUB_TPM_KEY_LEN    32   /* the registration key (HMAC-SHA256) */
#define HUB_TPM_DIGEST_LEN 32   /* SHA-256 */
#define HUB_TPM_PUBLIC_MAX 1024 /* a marshaled TPM2B_PUBLIC */

typedef struct {
    uint8_t key[HUB_TPM_KEY_LEN];          /* the device signs its DPS SAS with it */
    uint8_t ek_digest[HUB_TPM_DIGEST_LEN]; /* of the EK: a changed enrollment voids the challenge */
    uint8_t srk[HUB_TPM_PUBLIC_MAX];       /* the hub key is delivered under the same SRK */
    size_t srk_len;                        /* 1 to HUB_TPM_PUBLIC_MAX */
    int64_t expires_ms;                    /* wall-clock time */
} hub_tpm_challenge;

/* put creates or replaces the challenge of registration_id (ids compare case-insensitively);
 * IOTDM_E_MALFORMED for an invalid id or srk_len. get copies the challenge into *out when there is
 * one that expires after now_ms; IOTDM_E_NOT_FOUND otherwise, IOTDM_E_STORAGE for a corrupt row
 * (logged, *out zeroed). */
IOTDM_NODISCARD iotdm_result hub_store_tpm_challenge_put(hub_store *store,
                                                         const char *registration_id,
                                                         const hub_tpm_challenge *c);
IOTDM_NODISCARD iotdm_result hub_store_tpm_challenge_get(hub_store *store,
                                                         const char *registration_id,
                                                         int64_t now_ms, hub_tpm_challenge *out);
/* Deletes the challenges expired at now_ms, then those nearest their expiry beyond the max_keep
 * that expire last; *out_deleted (may be NULL) gets how many went. Both walk the index on
 * expires_ms. */
IOTDM_NODISCARD iotdm_result hub_store_tpm_challenge_prune(hub_store *store, int64_t now_ms,
                                                           size_t max_keep, size_t *out_deleted);

/* Fleet documents (docs/jobs.md): jobs, the per-device records of jobs, configurations; later
 * fleet features add collections. Each is a JSON object kept per (collection, scope, id): scope
 * groups documents that are listed together (a job's id for its device records, "" where a
 * collection has no groups). Like enrollments, each carries an etag counter: 1 on create, +1 on
 * every replace, which makes a replace conditional (If-Match, and the lease of a job across the
 * nodes of a cluster). */
typedef enum {
    HUB_DOC_JOB = 1,           /* scope "", id the job id */
    HUB_DOC_DEVICE_JOB = 2,    /* scope the job id, id the device id */
    HUB_DOC_CONFIGURATION = 3, /* scope "", id the configuration id */
} hub_doc_collection;

/* Longest scope and id, in bytes without the NUL (ids longer are refused: IOTDM_E_MALFORMED). */
#define HUB_DOC_KEY_MAX 128
/* Largest document, serialized compactly (IOTDM_E_TOO_LARGE beyond). */
#define HUB_DOC_MAX_BYTES (256 * 1024)
/* if_match for doc_put: create only (IOTDM_E_EXISTS when the document is there). */
#define HUB_DOC_CREATE UINT64_MAX

/* A document lent to a visitor for the duration of the call; false stops the walk. */
typedef bool (*hub_fleet_doc_visitor)(void *ctx, const char *scope, const char *id,
                                      const json_t *doc, uint64_t etag);

/* Creates or replaces. if_match: 0 = unconditional; HUB_DOC_CREATE = only if absent
 * (IOTDM_E_EXISTS); otherwise the stored etag must equal it (IOTDM_E_PRECONDITION, also when
 * absent). doc must be an object (IOTDM_E_MALFORMED). *out_etag (may be NULL) gets the new etag. */
IOTDM_NODISCARD iotdm_result hub_store_doc_put(hub_store *store, hub_doc_collection coll,
                                               const char *scope, const char *id, const json_t *doc,
                                               uint64_t if_match, uint64_t *out_etag);
/* A new reference in *out_doc and its etag (may be NULL); IOTDM_E_NOT_FOUND when absent. */
IOTDM_NODISCARD iotdm_result hub_store_doc_get(hub_store *store, hub_doc_collection coll,
                                               const char *scope, const char *id, json_t **out_doc,
                                               uint64_t *out_etag);
/* if_match 0 = unconditional; IOTDM_E_NOT_FOUND when absent, IOTDM_E_PRECONDITION on a
 * different etag. */
IOTDM_NODISCARD iotdm_result hub_store_doc_delete(hub_store *store, hub_doc_collection coll,
                                                  const char *scope, const char *id,
                                                  uint64_t if_match);
/* The documents of one scope (scope NULL: of every scope), in (scope, id) order (bytewise) after
 * (after_scope, after_id) (NULL: from the first; after_scope is ignored when scope is given), at
 * most max. */
IOTDM_NODISCARD iotdm_result hub_store_doc_foreach(hub_store *store, hub_doc_collection coll,
                                                   const char *scope, const char *after_scope,
                                                   const char *after_id, size_t max,
                                                   hub_fleet_doc_visitor visit, void *ctx);
/* Deletes every document of scope; *out_deleted (may be NULL) gets how many went. */
IOTDM_NODISCARD iotdm_result hub_store_doc_delete_scope(hub_store *store, hub_doc_collection coll,
                                                        const char *scope, size_t *out_deleted);
/* How many documents the collection holds (scope NULL: in every scope). */
IOTDM_NODISCARD iotdm_result hub_store_doc_count(hub_store *store, hub_doc_collection coll,
                                                 const char *scope, size_t *out_count);

/* ---- what every backend shares (store.c) ---- */

/* A fleet document as loaded by a backend (doc: parsed, may be NULL): itself when it is a JSON
 * object; otherwise NULL, logged, the reference dropped (only a damaged database or a hand edit
 * makes one). */
json_t *hub_doc_loaded(json_t *doc, hub_doc_collection coll, const char *scope, const char *id);
/* A new random generationId (18 decimal digits). */
void hub_device_new_generation_id(char *out, size_t cap);
bool hub_device_auth_ok(hub_auth_type t);
/* A session belongs to the device its client id names ("deviceId" or "deviceId/moduleId"):
 * *out_len gets the device id's length; false when the client id cannot be one. */
bool hub_session_device(const char *client_id, size_t *out_len);
/* A growable buffer for JSON text handed to a database without an allocation per call. */
typedef struct {
    char *data;
    size_t cap;
} hub_json_buf;
/* Serializes json compactly into b (NULL becomes "{}"); *out_len excludes the NUL. */
IOTDM_NODISCARD iotdm_result hub_json_buf_dump(hub_json_buf *b, const json_t *json,
                                               const char **out_text, size_t *out_len);
void hub_json_buf_free(hub_json_buf *b);
/* A telemetry message's system and application properties as JSON text: the texts the writer
 * stamped, or the trees dumped into sys_buf and app_buf. Checks the body too (IOTDM_E_TOO_LARGE
 * beyond what the backends take). */
IOTDM_NODISCARD iotdm_result hub_telemetry_texts(const hub_telemetry *msg, hub_json_buf *sys_buf,
                                                 hub_json_buf *app_buf, const char **out_sys,
                                                 size_t *out_sys_len, const char **out_app,
                                                 size_t *out_app_len);

/* ---- the backend interface ----
 * A backend fills in every member (none may be NULL) and embeds hub_store first in its handle.
 * Each member does what the hub_store_* function of the same name documents above. */
struct hub_store_ops {
    const char *name; /* "sqlite", "postgresql" */
    void (*close)(hub_store *store);
    iotdm_result (*unit_begin)(hub_store *store);
    iotdm_result (*unit_end)(hub_store *store, iotdm_result outcome);
    iotdm_result (*group_commit)(hub_store *store);
    bool (*has_pending_writes)(const hub_store *store);
    iotdm_result (*durable)(hub_store *store);
    bool (*quiesce_wanted)(hub_store *store);
    iotdm_result (*open_reader)(hub_store *store, hub_store **out_reader);
    iotdm_result (*policy_put)(hub_store *store, const hub_policy *policy);
    iotdm_result (*policy_get)(hub_store *store, const char *name, hub_policy *out_policy);
    size_t (*policy_count)(hub_store *store);
    iotdm_result (*device_create)(hub_store *store, hub_device *device);
    iotdm_result (*device_get)(hub_store *store, const char *device_id, hub_device *out_device);
    iotdm_result (*device_update)(hub_store *store, hub_device *device, uint64_t if_match);
    iotdm_result (*device_delete)(hub_store *store, const char *device_id, uint64_t if_match);
    iotdm_result (*device_set_connection)(hub_store *store, const char *device_id, bool connected,
                                          int64_t when_ms, uint64_t epoch);
    iotdm_result (*device_set_activity)(hub_store *store, const char *device_id, int64_t when_ms,
                                        const char *model_id);
    iotdm_result (*device_foreach)(hub_store *store, const char *after_id, size_t max,
                                   hub_device_visitor visit, void *ctx);
    iotdm_result (*device_stats)(hub_store *store, hub_device_stats *out_stats);
    iotdm_result (*device_disconnect_all)(hub_store *store, int64_t when_ms);
    void (*set_node)(hub_store *store, const char *node_id);
    iotdm_result (*device_disconnect_node)(hub_store *store, const char *node_id, int64_t when_ms,
                                           size_t max, hub_device_id_visitor visit, void *ctx,
                                           size_t *out_count);
    iotdm_result (*twin_get)(hub_store *store, const char *device_id, hub_twin *out_twin);
    iotdm_result (*twin_get_sections)(hub_store *store, const char *device_id, unsigned sections,
                                      hub_twin *out_twin);
    iotdm_result (*twin_put)(hub_store *store, const char *device_id, const hub_twin *twin);
    iotdm_result (*twin_texts)(hub_store *store, const char *device_id, hub_twin_texts *out);
    iotdm_result (*twin_foreach)(hub_store *store, hub_twin_visitor visit, void *ctx);
    iotdm_result (*query_page)(hub_store *store, const hub_query *q, const char *after_id,
                               hub_twin_visitor visit, void *ctx);
    iotdm_result (*c2d_enqueue)(hub_store *store, hub_c2d *msg, size_t max_pending);
    iotdm_result (*c2d_foreach)(hub_store *store, const char *device_id, int64_t now_ms,
                                hub_c2d_visitor visit, void *ctx);
    iotdm_result (*c2d_mark_delivered)(hub_store *store, int64_t seq);
    iotdm_result (*c2d_complete)(hub_store *store, int64_t seq);
    iotdm_result (*c2d_purge)(hub_store *store, const char *device_id, size_t *out_purged);
    size_t (*c2d_count)(hub_store *store, const char *device_id);
    size_t (*c2d_expire)(hub_store *store, int64_t now_ms);
    iotdm_result (*telemetry_append)(hub_store *store, hub_telemetry *msg);
    iotdm_result (*telemetry_foreach)(hub_store *store, int64_t from_seq, size_t max,
                                      hub_telemetry_visitor visit, void *ctx);
    int64_t (*telemetry_last_seq)(hub_store *store);
    iotdm_result (*telemetry_trim)(hub_store *store, uint64_t max_bytes, int64_t max_age_ms,
                                   int64_t now_ms, size_t max_rows, bool *out_more);
    iotdm_result (*file_create)(hub_store *store, const hub_file *file);
    iotdm_result (*file_get)(hub_store *store, const char *correlation_id, hub_file *out_file);
    iotdm_result (*file_update)(hub_store *store, const hub_file *file);
    iotdm_result (*file_delete)(hub_store *store, const char *correlation_id);
    iotdm_result (*file_find)(hub_store *store, const char *device_id, const char *blob_name,
                              hub_file *out_file);
    iotdm_result (*file_foreach)(hub_store *store, const char *device_id, size_t max,
                                 hub_file_visitor visit, void *ctx);
    size_t (*file_active)(hub_store *store, const char *device_id, int64_t since_ms);
    iotdm_result (*file_usage)(hub_store *store, const char *device_id, size_t *out_count,
                               uint64_t *out_bytes);
    iotdm_result (*file_prune)(hub_store *store, int64_t done_before_ms, int64_t open_before_ms,
                               size_t max, hub_file_visitor visit, void *ctx, size_t *out_deleted);
    iotdm_result (*file_bytes_put)(hub_store *store, const char *correlation_id, const void *bytes,
                                   size_t len);
    iotdm_result (*file_bytes_get)(hub_store *store, const char *correlation_id,
                                   unsigned char **out_bytes, size_t *out_len);
    iotdm_result (*session_put)(hub_store *store, const char *client_id, uint32_t subscriptions);
    iotdm_result (*session_get)(hub_store *store, const char *client_id,
                                uint32_t *out_subscriptions);
    iotdm_result (*session_delete)(hub_store *store, const char *client_id);
    iotdm_result (*enrollment_put)(hub_store *store, hub_dps_kind kind, const char *id,
                                   const json_t *doc, uint64_t if_match, uint64_t *out_etag);
    iotdm_result (*enrollment_get)(hub_store *store, hub_dps_kind kind, const char *id,
                                   json_t **out_doc, uint64_t *out_etag);
    iotdm_result (*enrollment_delete)(hub_store *store, hub_dps_kind kind, const char *id,
                                      uint64_t if_match);
    iotdm_result (*enrollment_foreach)(hub_store *store, hub_dps_kind kind, const char *after_id,
                                       size_t max, hub_doc_visitor visit, void *ctx);
    iotdm_result (*registration_put)(hub_store *store, const char *registration_id,
                                     const char *group_id, const json_t *doc, uint64_t *out_etag);
    iotdm_result (*registration_get)(hub_store *store, const char *registration_id,
                                     json_t **out_doc, uint64_t *out_etag);
    iotdm_result (*registration_delete)(hub_store *store, const char *registration_id,
                                        uint64_t if_match);
    iotdm_result (*registration_foreach)(hub_store *store, const char *group_id,
                                         const char *after_id, size_t max, hub_doc_visitor visit,
                                         void *ctx);
    iotdm_result (*dps_operation_put)(hub_store *store, const char *operation_id,
                                      const char *registration_id, int64_t created_ms,
                                      const json_t *result);
    iotdm_result (*dps_operation_get)(hub_store *store, const char *operation_id,
                                      char out_registration_id[HUB_ID_MAX], int64_t *out_created_ms,
                                      json_t **out_result);
    iotdm_result (*dps_operation_prune)(hub_store *store, int64_t before_ms, size_t max_keep,
                                        size_t *out_deleted);
    iotdm_result (*tpm_challenge_put)(hub_store *store, const char *registration_id,
                                      const hub_tpm_challenge *c);
    iotdm_result (*tpm_challenge_get)(hub_store *store, const char *registration_id, int64_t now_ms,
                                      hub_tpm_challenge *out);
    iotdm_result (*tpm_challenge_prune)(hub_store *store, int64_t now_ms, size_t max_keep,
                                        size_t *out_deleted);
    iotdm_result (*doc_put)(hub_store *store, hub_doc_collection coll, const char *scope,
                            const char *id, const json_t *doc, uint64_t if_match,
                            uint64_t *out_etag);
    iotdm_result (*doc_get)(hub_store *store, hub_doc_collection coll, const char *scope,
                            const char *id, json_t **out_doc, uint64_t *out_etag);
    iotdm_result (*doc_delete)(hub_store *store, hub_doc_collection coll, const char *scope,
                               const char *id, uint64_t if_match);
    iotdm_result (*doc_foreach)(hub_store *store, hub_doc_collection coll, const char *scope,
                                const char *after_scope, const char *after_id, size_t max,
                                hub_fleet_doc_visitor visit, void *ctx);
    iotdm_result (*doc_delete_scope)(hub_store *store, hub_doc_collection coll, const char *scope,
                                     size_t *out_deleted);
    iotdm_result (*doc_count)(hub_store *store, hub_doc_collection coll, const char *scope,
                              size_t *out_count);
};

struct hub_store {
    const hub_store_ops *ops;
};

/* Whether location names a PostgreSQL database (a postgresql:// or postgres:// URL). */
bool hub_store_is_postgresql(const char *location);

/* Backends (store/<backend>/). */
IOTDM_NODISCARD iotdm_result hub_store_sqlite_open(const char *path, hub_store **out_store);
/* conninfo: a libpq connection URL. The writer's connection migrates the schema (serialized across
 * nodes by an advisory lock); IOTDM_E_UNSUPPORTED for a schema written by a newer hub. */
IOTDM_NODISCARD iotdm_result hub_store_postgresql_open(const char *conninfo, hub_store **out_store);
/* SQLite only (IOTDM_E_UNSUPPORTED on another backend). Turns the maintenance of the twin index
 * off (for a bulk import, or to measure what it costs) or back on. Off, the index is marked stale
 * in the open group, twin puts skip it and queries scan every twin; on, it is rebuilt for every
 * twin in the open group (hub_store_commit afterwards). A hub opening a database whose index was
 * left off rebuilds it. For the writer handle. */
IOTDM_NODISCARD iotdm_result hub_store_sqlite_twin_index(hub_store *store, bool enabled);
/* SQLite only: the plan SQLite chose for listing the candidates of q (EXPLAIN QUERY PLAN, one line
 * per step, "" when q's candidates are every twin), for tests and for operators. */
IOTDM_NODISCARD iotdm_result hub_store_sqlite_explain(hub_store *store, const hub_query *q,
                                                      char *out, size_t cap);
/* PostgreSQL only: EXPLAIN of the statement listing the first candidates of q ("" when q's
 * candidates are every twin, "none" when no twin can match), for tests and for operators. */
IOTDM_NODISCARD iotdm_result hub_store_postgresql_explain(hub_store *store, const hub_query *q,
                                                          char *out, size_t cap);

#endif
