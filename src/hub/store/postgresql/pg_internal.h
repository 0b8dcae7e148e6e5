/* Private to the PostgreSQL backend: the handle, how statements are run, the transaction helpers
 * and the operations each file implements (pg_store.c gathers them into the ops table).
 *
 * How the backend meets the store contract (store.h):
 * - A handle is one libpq connection, used by one store thread at a time. Calls block on the
 *   network; that is allowed, since only the executor's threads call the store (core/work.h).
 * - The writer's group is one transaction (BEGIN at its first write, COMMIT in group_commit). With
 *   synchronous_commit on, COMMIT returns once PostgreSQL has the group on its disk, so
 *   hub_store_durable has nothing left to do. A unit's writes sit in a savepoint, taken at its
 *   first statement; an error rolls back to it, which in PostgreSQL also clears the transaction's
 *   failed state, so the group's other units go on.
 * - Expected outcomes (a device that exists, an etag that differs) never raise an SQL error:
 *   statements say ON CONFLICT DO NOTHING or match no row, and the C code reads the counts. An
 *   unexpected error leaves the transaction failed; the unit's savepoint undoes it, and without
 *   one the whole group fails at its commit (nothing of it was acknowledged).
 * - A lost connection fails the calls in flight with IOTDM_E_STORAGE (the executor then refuses
 *   the units: no PUBACK, 503); the next call after PG_RECONNECT_MS reconnects, and the group that
 *   was open is reported failed at its commit.
 * - Every SQL text is a fixed string of this backend; values always travel as parameters. Ids are
 *   compared byte-wise (COLLATE "C") as SQLite does, whatever the database's locale. */
#ifndef IOTDM_HUB_STORE_PG_INTERNAL_H
#define IOTDM_HUB_STORE_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "hub/store/store.h"

/* One slot per SQL statement, named by its id when prepared on a connection. */
typedef enum {
    PQ_POLICY_PUT,
    PQ_POLICY_GET,
    PQ_POLICY_COUNT,
    PQ_DEVICE_INSERT,
    PQ_DEVICE_GET,
    PQ_DEVICE_ETAG,
    PQ_DEVICE_UPDATE,
    PQ_DEVICE_DELETE,
    PQ_DEVICE_SET_CONNECTION,
    PQ_DEVICE_SET_ACTIVITY,
    PQ_DEVICE_LIST,
    PQ_DEVICE_STATS,
    PQ_DEVICE_DISCONNECT_ALL,
    PQ_DEVICE_DISCONNECT_NODE,
    PQ_TWIN_INSERT,
    PQ_TWIN_GET,
    PQ_TWIN_GET_REPORTED,
    PQ_TWIN_TEXTS,
    PQ_TWIN_PUT,
    PQ_TWIN_LIST,
    PQ_C2D_COUNT_LIVE,
    PQ_C2D_INSERT,
    PQ_C2D_LIST,
    PQ_C2D_DELIVERED,
    PQ_C2D_COMPLETE,
    PQ_C2D_PURGE,
    PQ_C2D_COUNT,
    PQ_C2D_EXPIRE,
    PQ_TELEMETRY_INSERT,
    PQ_TELEMETRY_LIST,
    PQ_TELEMETRY_LAST_SEQ,
    PQ_TELEMETRY_BYTES,
    PQ_TELEMETRY_OLDEST,
    PQ_TELEMETRY_DELETE_UPTO,
    PQ_SESSION_PUT,
    PQ_SESSION_GET,
    PQ_SESSION_DELETE,
    PQ_FILE_BYTES_PUT,
    PQ_FILE_BYTES_GET,
    PQ_FILE_INSERT,
    PQ_FILE_GET,
    PQ_FILE_UPDATE,
    PQ_FILE_FIND,
    PQ_FILE_LIST,
    PQ_FILE_LIST_ALL,
    PQ_FILE_DELETE,
    PQ_FILE_ACTIVE,
    PQ_FILE_USAGE,
    PQ_FILE_PRUNE,
    PQ_ENROLLMENT_PUT,
    PQ_ENROLLMENT_GET,
    PQ_ENROLLMENT_DELETE,
    PQ_ENROLLMENT_LIST,
    PQ_REGISTRATION_PUT,
    PQ_REGISTRATION_GET,
    PQ_REGISTRATION_DELETE,
    PQ_REGISTRATION_LIST,
    PQ_REGISTRATION_LIST_ALL,
    PQ_DPS_OP_PUT,
    PQ_DPS_OP_GET,
    PQ_DPS_OP_EXPIRE,
    PQ_DPS_OP_TRIM,
    PQ_TPM_CHALLENGE_PUT,
    PQ_TPM_CHALLENGE_GET,
    PQ_TPM_CHALLENGE_EXPIRE,
    PQ_TPM_CHALLENGE_TRIM,
    PQ_DOC_UPSERT,
    PQ_DOC_CREATE,
    PQ_DOC_REPLACE,
    PQ_DOC_GET,
    PQ_DOC_EXISTS,
    PQ_DOC_DELETE,
    PQ_DOC_LIST_SCOPE,
    PQ_DOC_LIST_ALL,
    PQ_DOC_DELETE_SCOPE,
    PQ_DOC_COUNT,
    PQ_DOC_COUNT_SCOPE,
    PQ_COUNT_
} pg_stmt_id;

/* Statement parameters. Text and bytes travel in binary format with their length (no NUL needed,
 * nothing escaped); numbers and booleans as text. */
#define PG_MAX_PARAMS 20
typedef struct {
    int n;
    const char *values[PG_MAX_PARAMS];
    int lengths[PG_MAX_PARAMS];
    int formats[PG_MAX_PARAMS];
    char numbers[PG_MAX_PARAMS][24];
} pg_params;

void pp_text(pg_params *p, const char *text);               /* NULL: SQL NULL */
void pp_field(pg_params *p, const char *field, size_t cap); /* up to cap - 1 bytes */
void pp_textn(pg_params *p, const char *text, size_t len);  /* exactly len bytes */
void pp_bytes(pg_params *p, const void *bytes, size_t len); /* bytea */
void pp_int(pg_params *p, int64_t v);
void pp_bool(pg_params *p, bool v);

enum { PG_JSON_BUFS = 5 };

#define PG_CONNINFO_MAX 1024
/* A lost server is retried at most this often: each try blocks a store thread for a connect. */
#define PG_RECONNECT_MS 1000

/* Telemetry appended in the open group, inserted together (pg_telemetry_flush): one statement
 * for many messages instead of a round trip each. Each row's texts and body sit in data. */
typedef struct {
    size_t off, device_len, module_len, sys_len, app_len, body_len;
    int64_t enqueued_ms, row_bytes;
} pg_tel_row;

/* Bytes buffered before the batch is inserted without waiting for the commit: at the start of
 * the next unit (pg_unit_begin), never inside one, so the batch holds at most this plus one
 * unit's messages, whatever the size of the group. */
#define PG_TEL_BATCH_BYTES (8u << 20)

typedef struct {
    pg_tel_row *rows;
    size_t n, cap;
    char *data;
    size_t used, data_cap;
} pg_tel_batch;

/* Statements waiting to go with the next round trip (pg_store.c): a unit's savepoint and its
 * release cost no round trip of their own, and neither does a twin's write-back
 * (pg_exec_deferred). When either list is full, what waits goes in a round trip of its own. */
#define PG_PENDING_MAX  48
#define PG_DEFERRED_MAX 16

/* A deferred write: its statement and a copy of its parameters (their bytes in buf). */
typedef struct {
    pg_stmt_id id;
    pg_params params;
    char *buf;
    size_t cap;
} pg_deferred;

/* The reported section of a twin the writer's open group holds locked (read FOR UPDATE), as
 * the group last wrote it: a device's next reported patch in the same group needs no read
 * (pg_twins.c). Cleared when the group ends and whenever a unit fails. */
typedef struct {
    char device_id[HUB_ID_MAX];
    json_t *reported, *reported_meta;
    int64_t reported_version, desired_version, version;
    uint64_t etag;
} pg_twin_cached;
#define PG_TWIN_CACHE_MAX 128

typedef struct pg_store {
    hub_store base; /* first: the handle the rest of the hub sees */
    char conninfo[PG_CONNINFO_MAX];
    PGconn *conn;
    bool reader;         /* a read-only handle (hub_store_open_reader) */
    bool in_txn;         /* BEGIN sent, COMMIT not yet */
    bool txn_failed;     /* an error left the group's transaction failed: its commit must fail */
    bool unit_open;      /* between unit_begin and unit_end */
    bool unit_savepoint; /* the open unit's savepoint is taken */
    bool unit_failed;    /* an error inside the open unit: unit_end must roll back to it */
    bool unit_conflict;  /* that error was a deadlock or serialization failure: retry the unit */
    int64_t next_connect_ms; /* after a lost connection, no new try before this */
    bool prepared[PQ_COUNT_];
    int64_t telemetry_bytes; /* sum of retained rows' bytes; -1 when it must be recounted */
    char node_id[64];        /* the node whose connection states this handle writes */
    const char *pending[PG_PENDING_MAX]; /* static command texts, sent in order */
    int npending;
    signed char pending_deferred[PG_PENDING_MAX]; /* its deferred write's slot, or -1 */
    pg_deferred deferred[PG_DEFERRED_MAX];
    int ndeferred;
    char locked_twin[HUB_ID_MAX]; /* the twin the open unit read FOR UPDATE ("" none) */
    pg_twin_cached twin_cache[PG_TWIN_CACHE_MAX];
    int ntwin_cache;
    bool tel_copied;  /* the open group inserted telemetry */
    int64_t last_seq; /* the telemetry sequence's last value as of the last commit; -1 unknown */
    pg_tel_batch tel; /* the writer's telemetry not yet inserted */
    size_t unit_tel_mark;    /* rows buffered before the open unit (dropped if it fails) */
    bool unit_flushed;       /* the open unit inserted rows of earlier units (a flush) */
    int64_t partitions_hour; /* the hour whose telemetry partitions this handle last made */
    hub_json_buf json[PG_JSON_BUFS];
} pg_store;

/* Runs statement id (prepared on this connection at its first use) with p. For a statement that
 * writes, call pg_write_begin first. The result is returned for reading (PQclear it); NULL on
 * failure, with the reason in *out_r (logged). Errors mark the transaction as described above. */
PGresult *pg_run(pg_store *s, pg_stmt_id id, const char *sql, const pg_params *p,
                 iotdm_result *out_r);
/* A statement whose text varies (a compiled query, a batch), unprepared, with n parameters
 * (lengths and formats may be NULL: text). */
PGresult *pg_run_text(pg_store *s, const char *sql, int n, const char *const *values,
                      iotdm_result *out_r);
PGresult *pg_run_params(pg_store *s, const char *sql, int n, const char *const *values,
                        const int *lengths, const int *formats, iotdm_result *out_r);
/* Gives the next piece of COPY data in *out_data, *out_len and returns 1; 0 when there is no
 * more; -1 when it cannot go on (the COPY is then ended with an error, and nothing is kept). */
typedef int (*pg_copy_chunk_fn)(void *ctx, const char **out_data, size_t *out_len);
/* Runs copy_sql (a COPY … FROM STDIN, constant text) after the waiting commands and streams the
 * pieces next gives. Errors mark the transaction as pg_run's do. */
IOTDM_NODISCARD iotdm_result pg_copy_in(pg_store *s, const char *copy_sql, pg_copy_chunk_fn next,
                                        void *ctx);
/* The text of the statement that reads the telemetry sequence's last value (pg_messages.c). */
extern const char PG_TELEMETRY_LAST_SEQ_SQL[];
/* Forgets the cached twins (pg_twins.c): the group ended, or a unit failed. */
void pg_twin_cache_clear(pg_store *s);
/* Inserts the buffered telemetry (pg_messages.c). Before every read of the telemetry on the
 * writer and before COMMIT. */
IOTDM_NODISCARD iotdm_result pg_telemetry_flush(pg_store *s);
void pg_telemetry_batch_free(pg_store *s);
/* Makes the telemetry partitions of the hours around now_ms that do not exist yet (at open and
 * with every trim). */
IOTDM_NODISCARD iotdm_result pg_telemetry_partitions(pg_store *s, int64_t now_ms);
/* Drops the buffered rows from the nth on (a failed unit's). */
void pg_telemetry_batch_truncate(pg_store *s, size_t n);
/* pg_run for a read: joins the open unit's savepoint first (pg_read_begin). */
PGresult *pg_select(pg_store *s, pg_stmt_id id, const char *sql, const pg_params *p,
                    iotdm_result *out_r);
/* pg_run for statements whose rows are not needed: *out_count gets the rows affected (may be
 * NULL). */
IOTDM_NODISCARD iotdm_result pg_exec(pg_store *s, pg_stmt_id id, const char *sql,
                                     const pg_params *p, uint64_t *out_count);
/* pg_exec that must touch a row: IOTDM_E_NOT_FOUND when it touched none. */
IOTDM_NODISCARD iotdm_result pg_exec_row(pg_store *s, pg_stmt_id id, const char *sql,
                                         const pg_params *p);
/* A write that must touch exactly one row and cannot otherwise fail but for the server's own
 * reasons (a row this transaction holds locked), sent with the next round trip instead of one of
 * its own; the parameters are copied. If it then fails, the whole group fails (txn_failed): the
 * unit that wrote it has ended by then. Outside a transaction it runs as pg_exec_row. */
IOTDM_NODISCARD iotdm_result pg_exec_deferred(pg_store *s, pg_stmt_id id, const char *sql,
                                              const pg_params *p);

/* Opens the group transaction if none is open, and the unit's savepoint. Every write calls it
 * first; reads inside a unit call pg_read_begin (the savepoint, no transaction on a reader). */
IOTDM_NODISCARD iotdm_result pg_write_begin(pg_store *s);
IOTDM_NODISCARD iotdm_result pg_read_begin(pg_store *s);
/* A savepoint around a write of several statements, so that it applies whole or not at all while
 * the group goes on. */
IOTDM_NODISCARD iotdm_result pg_savepoint(pg_store *s);
IOTDM_NODISCARD iotdm_result pg_savepoint_end(pg_store *s, iotdm_result outcome);

/* Result columns. Text columns are copied up to cap - 1 bytes; missing or NULL gives "" / 0. */
void pg_copy(const PGresult *res, int row, int col, char *dst, size_t cap);
int64_t pg_int(const PGresult *res, int row, int col);
bool pg_bool(const PGresult *res, int row, int col);
/* A JSON text column parsed (NULL column: an empty object); NULL on corrupt text (logged). */
json_t *pg_json(const PGresult *res, int row, int col);
/* A bytea column decoded into a new buffer (xfree); NULL with *out_len 0 for an empty one or on
 * failure (*out_ok false). */
unsigned char *pg_bytes(const PGresult *res, int row, int col, size_t *out_len, bool *out_ok);

/* Serializes json compactly into scratch slot (NULL becomes "{}"); *out_len excludes the NUL. */
IOTDM_NODISCARD iotdm_result pg_dump(pg_store *s, int slot, const json_t *json,
                                     const char **out_text, size_t *out_len);

/* The device columns, in the order pg_device_from_row reads them; the table is aliased "d". */
#define PG_DEVICE_COLUMNS                                                                          \
    "d.device_id, d.generation_id, d.etag, d.enabled, d.status_reason, d.status_updated_ms, "      \
    "d.auth_type, d.primary_key, d.secondary_key, d.primary_thumbprint, d.secondary_thumbprint, "  \
    "d.iot_edge, d.connected, d.connection_state_updated_ms, d.last_activity_ms, d.model_id, "     \
    "(SELECT COUNT(*) FROM c2d WHERE c2d.device_id = d.device_id)"
#define PG_DEVICE_NCOLUMNS 17
void pg_device_from_row(const PGresult *res, int row, int first_col, hub_device *out);

/* The twin columns, in the order pg_twin_from_row reads them; the table is aliased "t". */
#define PG_TWIN_COLUMNS                                                                            \
    "t.tags, t.desired, t.desired_meta, t.desired_version, t.reported, t.reported_meta, "          \
    "t.reported_version, t.version, t.etag"
/* IOTDM_E_STORAGE when a stored section is corrupt (out is then empty). */
iotdm_result pg_twin_from_row(const PGresult *res, int row, int first_col, hub_twin *out);

/* Ids and names: non-empty and shorter than HUB_ID_MAX. */
bool pg_id_ok(const char *id);
/* Registration and enrollment ids compare case-insensitively in ASCII (as SQLite's NOCASE did):
 * the key column holds the id folded by this function. false when the id is not valid. */
bool pg_fold_id(const char *id, char out[HUB_ID_MAX]);

int64_t pg_now_ms(void);

/* The schema version this build migrates to (tests). */
int pg_schema_version(void);

/* The operations (see store.h for what each does). */
IOTDM_NODISCARD iotdm_result pg_policy_put(hub_store *base, const hub_policy *policy);
IOTDM_NODISCARD iotdm_result pg_policy_get(hub_store *base, const char *name,
                                           hub_policy *out_policy);
size_t pg_policy_count(hub_store *base);
IOTDM_NODISCARD iotdm_result pg_device_create(hub_store *base, hub_device *device);
IOTDM_NODISCARD iotdm_result pg_device_get(hub_store *base, const char *device_id,
                                           hub_device *out_device);
IOTDM_NODISCARD iotdm_result pg_device_update(hub_store *base, hub_device *device,
                                              uint64_t if_match);
IOTDM_NODISCARD iotdm_result pg_device_delete(hub_store *base, const char *device_id,
                                              uint64_t if_match);
IOTDM_NODISCARD iotdm_result pg_device_set_connection(hub_store *base, const char *device_id,
                                                      bool connected, int64_t when_ms,
                                                      uint64_t epoch);
IOTDM_NODISCARD iotdm_result pg_device_set_activity(hub_store *base, const char *device_id,
                                                    int64_t when_ms, const char *model_id);
IOTDM_NODISCARD iotdm_result pg_device_foreach(hub_store *base, const char *after_id, size_t max,
                                               hub_device_visitor visit, void *ctx);
IOTDM_NODISCARD iotdm_result pg_device_stats(hub_store *base, hub_device_stats *out_stats);
IOTDM_NODISCARD iotdm_result pg_device_disconnect_all(hub_store *base, int64_t when_ms);
void pg_set_node(hub_store *base, const char *node_id);
IOTDM_NODISCARD iotdm_result pg_device_disconnect_node(hub_store *base, const char *node_id,
                                                       int64_t when_ms, size_t max,
                                                       hub_device_id_visitor visit, void *ctx,
                                                       size_t *out_count);
IOTDM_NODISCARD iotdm_result pg_session_put(hub_store *base, const char *client_id,
                                            uint32_t subscriptions);
IOTDM_NODISCARD iotdm_result pg_session_get(hub_store *base, const char *client_id,
                                            uint32_t *out_subscriptions);
IOTDM_NODISCARD iotdm_result pg_session_delete(hub_store *base, const char *client_id);

IOTDM_NODISCARD iotdm_result pg_twin_get(hub_store *base, const char *device_id,
                                         hub_twin *out_twin);
IOTDM_NODISCARD iotdm_result pg_twin_get_sections(hub_store *base, const char *device_id,
                                                  unsigned sections, hub_twin *out_twin);
IOTDM_NODISCARD iotdm_result pg_twin_put(hub_store *base, const char *device_id,
                                         const hub_twin *twin);
IOTDM_NODISCARD iotdm_result pg_twin_texts(hub_store *base, const char *device_id,
                                           hub_twin_texts *out);
IOTDM_NODISCARD iotdm_result pg_twin_foreach(hub_store *base, hub_twin_visitor visit, void *ctx);
iotdm_result pg_query_page(hub_store *base, const hub_query *q, const char *after_id,
                           hub_twin_visitor visit, void *ctx);

IOTDM_NODISCARD iotdm_result pg_c2d_enqueue(hub_store *base, hub_c2d *msg, size_t max_pending);
IOTDM_NODISCARD iotdm_result pg_c2d_foreach(hub_store *base, const char *device_id, int64_t now_ms,
                                            hub_c2d_visitor visit, void *ctx);
IOTDM_NODISCARD iotdm_result pg_c2d_mark_delivered(hub_store *base, int64_t seq);
IOTDM_NODISCARD iotdm_result pg_c2d_complete(hub_store *base, int64_t seq);
IOTDM_NODISCARD iotdm_result pg_c2d_purge(hub_store *base, const char *device_id,
                                          size_t *out_purged);
size_t pg_c2d_count(hub_store *base, const char *device_id);
size_t pg_c2d_expire(hub_store *base, int64_t now_ms);
IOTDM_NODISCARD iotdm_result pg_telemetry_append(hub_store *base, hub_telemetry *msg);
IOTDM_NODISCARD iotdm_result pg_telemetry_foreach(hub_store *base, int64_t from_seq, size_t max,
                                                  hub_telemetry_visitor visit, void *ctx);
int64_t pg_telemetry_last_seq(hub_store *base);
IOTDM_NODISCARD iotdm_result pg_telemetry_trim(hub_store *base, uint64_t max_bytes,
                                               int64_t max_age_ms, int64_t now_ms, size_t max_rows,
                                               bool *out_more);

IOTDM_NODISCARD iotdm_result pg_file_create(hub_store *base, const hub_file *file);
IOTDM_NODISCARD iotdm_result pg_file_bytes_put(hub_store *base, const char *correlation_id,
                                               const void *bytes, size_t len);
IOTDM_NODISCARD iotdm_result pg_file_bytes_get(hub_store *base, const char *correlation_id,
                                               unsigned char **out_bytes, size_t *out_len);
IOTDM_NODISCARD iotdm_result pg_file_get(hub_store *base, const char *correlation_id,
                                         hub_file *out_file);
IOTDM_NODISCARD iotdm_result pg_file_update(hub_store *base, const hub_file *file);
IOTDM_NODISCARD iotdm_result pg_file_delete(hub_store *base, const char *correlation_id);
IOTDM_NODISCARD iotdm_result pg_file_find(hub_store *base, const char *device_id,
                                          const char *blob_name, hub_file *out_file);
IOTDM_NODISCARD iotdm_result pg_file_foreach(hub_store *base, const char *device_id, size_t max,
                                             hub_file_visitor visit, void *ctx);
size_t pg_file_active(hub_store *base, const char *device_id, int64_t since_ms);
IOTDM_NODISCARD iotdm_result pg_file_usage(hub_store *base, const char *device_id,
                                           size_t *out_count, uint64_t *out_bytes);
IOTDM_NODISCARD iotdm_result pg_file_prune(hub_store *base, int64_t done_before_ms,
                                           int64_t open_before_ms, size_t max,
                                           hub_file_visitor visit, void *ctx, size_t *out_deleted);

IOTDM_NODISCARD iotdm_result pg_enrollment_put(hub_store *base, hub_dps_kind kind, const char *id,
                                               const json_t *doc, uint64_t if_match,
                                               uint64_t *out_etag);
IOTDM_NODISCARD iotdm_result pg_enrollment_get(hub_store *base, hub_dps_kind kind, const char *id,
                                               json_t **out_doc, uint64_t *out_etag);
IOTDM_NODISCARD iotdm_result pg_enrollment_delete(hub_store *base, hub_dps_kind kind,
                                                  const char *id, uint64_t if_match);
IOTDM_NODISCARD iotdm_result pg_enrollment_foreach(hub_store *base, hub_dps_kind kind,
                                                   const char *after_id, size_t max,
                                                   hub_doc_visitor visit, void *ctx);
IOTDM_NODISCARD iotdm_result pg_registration_put(hub_store *base, const char *registration_id,
                                                 const char *group_id, const json_t *doc,
                                                 uint64_t *out_etag);
IOTDM_NODISCARD iotdm_result pg_registration_get(hub_store *base, const char *registration_id,
                                                 json_t **out_doc, uint64_t *out_etag);
IOTDM_NODISCARD iotdm_result pg_registration_delete(hub_store *base, const char *registration_id,
                                                    uint64_t if_match);
IOTDM_NODISCARD iotdm_result pg_registration_foreach(hub_store *base, const char *group_id,
                                                     const char *after_id, size_t max,
                                                     hub_doc_visitor visit, void *ctx);
IOTDM_NODISCARD iotdm_result pg_dps_operation_put(hub_store *base, const char *operation_id,
                                                  const char *registration_id, int64_t created_ms,
                                                  const json_t *result);
IOTDM_NODISCARD iotdm_result pg_dps_operation_get(hub_store *base, const char *operation_id,
                                                  char out_registration_id[HUB_ID_MAX],
                                                  int64_t *out_created_ms, json_t **out_result);
IOTDM_NODISCARD iotdm_result pg_dps_operation_prune(hub_store *base, int64_t before_ms,
                                                    size_t max_keep, size_t *out_deleted);
IOTDM_NODISCARD iotdm_result pg_tpm_challenge_put(hub_store *base, const char *registration_id,
                                                  const hub_tpm_challenge *c);
IOTDM_NODISCARD iotdm_result pg_tpm_challenge_get(hub_store *base, const char *registration_id,
                                                  int64_t now_ms, hub_tpm_challenge *out);
IOTDM_NODISCARD iotdm_result pg_tpm_challenge_prune(hub_store *base, int64_t now_ms,
                                                    size_t max_keep, size_t *out_deleted);

IOTDM_NODISCARD iotdm_result pg_doc_put(hub_store *base, hub_doc_collection coll, const char *scope,
                                        const char *id, const json_t *doc, uint64_t if_match,
                                        uint64_t *out_etag);
IOTDM_NODISCARD iotdm_result pg_doc_get(hub_store *base, hub_doc_collection coll, const char *scope,
                                        const char *id, json_t **out_doc, uint64_t *out_etag);
IOTDM_NODISCARD iotdm_result pg_doc_delete(hub_store *base, hub_doc_collection coll,
                                           const char *scope, const char *id, uint64_t if_match);
IOTDM_NODISCARD iotdm_result pg_doc_foreach(hub_store *base, hub_doc_collection coll,
                                            const char *scope, const char *after_scope,
                                            const char *after_id, size_t max,
                                            hub_fleet_doc_visitor visit, void *ctx);
IOTDM_NODISCARD iotdm_result pg_doc_delete_scope(hub_store *base, hub_doc_collection coll,
                                                 const char *scope, size_t *out_deleted);
IOTDM_NODISCARD iotdm_result pg_doc_count(hub_store *base, hub_doc_collection coll,
                                          const char *scope, size_t *out_count);

#endif
