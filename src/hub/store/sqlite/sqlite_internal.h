/* Private to the SQLite backend: the handle, its statement cache, the transaction helpers and the
 * operations each file implements (sqlite_store.c gathers them into the ops table). */
#ifndef IOTDM_HUB_STORE_INTERNAL_H
#define IOTDM_HUB_STORE_INTERNAL_H

#include <sqlite3.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "hub/store/store.h"

/* One slot per SQL statement; each slot is used by exactly one call site, which passes its SQL. */
typedef enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_UNIT_SAVEPOINT,
    ST_UNIT_RELEASE,
    ST_UNIT_ROLLBACK_TO,
    ST_POLICY_PUT,
    ST_POLICY_GET,
    ST_POLICY_COUNT,
    ST_DEVICE_INSERT,
    ST_DEVICE_GET,
    ST_DEVICE_ETAG,
    ST_DEVICE_UPDATE,
    ST_DEVICE_DELETE,
    ST_DEVICE_SET_CONNECTION,
    ST_DEVICE_SET_ACTIVITY,
    ST_DEVICE_LIST,
    ST_DEVICE_STATS,
    ST_DEVICE_DISCONNECT_ALL,
    ST_TWIN_INSERT,
    ST_TWIN_GET,
    ST_TWIN_GET_REPORTED,
    ST_TWIN_TEXTS,
    ST_TWIN_PUT,
    ST_TWIN_LIST,
    ST_C2D_COUNT_LIVE,
    ST_C2D_INSERT,
    ST_C2D_LIST,
    ST_C2D_DELIVERED,
    ST_C2D_COMPLETE,
    ST_C2D_PURGE,
    ST_C2D_COUNT,
    ST_C2D_EXPIRE,
    ST_TELEMETRY_INSERT,
    ST_TELEMETRY_LIST,
    ST_TELEMETRY_LAST_SEQ,
    ST_TELEMETRY_BYTES,
    ST_TELEMETRY_OLDEST,
    ST_TELEMETRY_DELETE_UPTO,
    ST_SESSION_PUT,
    ST_SESSION_GET,
    ST_SESSION_DELETE,
    ST_FILE_INSERT,
    ST_FILE_GET,
    ST_FILE_UPDATE,
    ST_FILE_FIND,
    ST_FILE_LIST,
    ST_FILE_DELETE,
    ST_FILE_ACTIVE,
    ST_FILE_USAGE,
    ST_FILE_PRUNE_LIST,
    ST_FILE_PRUNE_DELETE,
    ST_DPS_OP_PUT,
    ST_DPS_OP_GET,
    ST_DPS_OP_EXPIRE,
    ST_DPS_OP_TRIM,
    ST_TPM_CHALLENGE_PUT,
    ST_TPM_CHALLENGE_GET,
    ST_TPM_CHALLENGE_EXPIRE,
    ST_TPM_CHALLENGE_TRIM,
    ST_INDEX_OLD_SECTIONS,
    ST_INDEX_LIST,
    ST_INDEX_INSERT,
    ST_INDEX_UPDATE,
    ST_INDEX_DELETE,
    ST_INDEX_STATE,
    ST_INDEX_SET_STATE,
    ST_QUERY_SCAN,
    ST_QUERY_FETCH,
    ST_DOC_UPSERT,
    ST_DOC_CREATE,
    ST_DOC_REPLACE,
    ST_DOC_GET,
    ST_DOC_EXISTS,
    ST_DOC_DELETE,
    ST_DOC_LIST_SCOPE,
    ST_DOC_LIST_ALL,
    ST_DOC_DELETE_SCOPE,
    ST_DOC_COUNT,
    ST_DOC_COUNT_SCOPE,
    ST_COUNT_
} store_stmt_id;

enum { STORE_JSON_BUFS = 5 };

#define STORE_PATH_MAX        600
#define STORE_BUSY_TIMEOUT_MS 5000
/* Frames in the WAL beyond which the writer pauses between two groups so that the log can start
 * over (sqlite_sync.c): bounds the WAL under continuous writes. */
#define STORE_WAL_RESTART_BYTES (64 * 1024 * 1024)
/* A telemetry row's bytes beyond its texts and body: record header, rowid, b-tree cell and page
 * slack, measured on a filled database (about 40-60 bytes per row). */
#define STORE_TELEMETRY_ROW_OVERHEAD 64

/* The WAL file as one thread sees it (store_sync.c). */
typedef struct {
    char path[STORE_PATH_MAX + 8];
    int fd; /* -1 until the first sync */
    dev_t dev;
    ino_t ino;
} store_wal;

/* The twin index's scratch space on the writer (sqlite_index.c): reused by every twin put, so
 * the hot path allocates nothing once it has grown to the largest section seen. */
typedef struct store_ix_node store_ix_node;
typedef struct store_ix_op store_ix_op;
typedef struct {
    store_ix_node *nodes;
    size_t nodes_cap;
    store_ix_op *ops;
    size_t ops_cap;
    bool off; /* hub_store_sqlite_twin_index(false): twin puts leave the index alone */
} store_ix;

typedef struct sq_store {
    hub_store base; /* first: the handle the rest of the hub sees */
    char path[STORE_PATH_MAX];
    bool reader;         /* a read-only handle (hub_store_open_reader) */
    bool unit_open;      /* between unit_begin and unit_end */
    bool unit_savepoint; /* the open unit wrote: its savepoint is taken */
    sqlite3 *db;
    /* Used only by the thread calling hub_store_durable (sqlite_sync.c): its own descriptor of the
     * WAL and its own connection for checkpoints. */
    store_wal wal;
    sqlite3 *checkpoint_db;
    int page_size;            /* of the database, read at open */
    atomic_bool want_restart; /* the WAL holds more than STORE_WAL_RESTART_BYTES of frames */
    bool in_txn;              /* BEGIN IMMEDIATE issued, COMMIT not yet */
    bool txn_failed; /* SQLite rolled the open transaction back: the next commit must fail */
    int64_t telemetry_bytes; /* sum of retained rows' bytes; -1 when it must be recounted */
    sqlite3_stmt *stmts[ST_COUNT_];
    bool stmt_busy[ST_COUNT_]; /* the cached statement is mid-iteration (a visitor is running) */
    hub_json_buf json[STORE_JSON_BUFS];
    store_ix ix;
} sq_store;

/* Statement cache. stmt_take returns the prepared statement for id (preparing sql on first use);
 * while it is taken, a nested use of the same id (a visitor calling back into the store) gets a
 * private statement instead. stmt_give resets it (or finalizes the private one). NULL on failure,
 * logged. */
sqlite3_stmt *stmt_take(sq_store *s, store_stmt_id id, const char *sql);
void stmt_give(sq_store *s, store_stmt_id id, sqlite3_stmt *st);

/* Steps a statement that returns no rows (or whose rows are ignored); maps SQLite's result. */
IOTDM_NODISCARD iotdm_result stmt_exec(sq_store *s, sqlite3_stmt *st);

/* Maps a SQLite result code to iotdm_result (constraint kinds become EXISTS/NOT_FOUND) and logs
 * unexpected failures. Also notices when SQLite rolled back the open write transaction. */
IOTDM_NODISCARD iotdm_result store_sqlite_result(sq_store *s, int rc, const char *what);

/* Opens the group-commit transaction if none is open. Every write function calls this first. */
IOTDM_NODISCARD iotdm_result store_write_begin(sq_store *s);
/* The start of most writes: opens the group transaction and takes the statement. NULL on failure,
 * with the reason in *out_r. */
sqlite3_stmt *store_write_stmt(sq_store *s, store_stmt_id id, const char *sql, iotdm_result *out_r);
/* stmt_exec for a write that must touch a row: IOTDM_E_NOT_FOUND when it touched none. */
IOTDM_NODISCARD iotdm_result stmt_exec_row(sq_store *s, sqlite3_stmt *st);

/* A savepoint around a write made of several statements, so that it applies whole or not at all
 * while the surrounding group transaction carries on. */
IOTDM_NODISCARD iotdm_result store_savepoint(sq_store *s);
IOTDM_NODISCARD iotdm_result store_savepoint_end(sq_store *s, iotdm_result outcome);

/* sqlite_sync.c: the WAL path of the durability thread's descriptor (opened lazily). */
void store_sync_init(sq_store *s, const char *db_path);

/* Binding helpers. Text fields of the fixed-size structs are bound up to their array size, so a
 * missing NUL cannot make SQLite read past them. */
int bind_text(sqlite3_stmt *st, int idx, const char *text);
int bind_field(sqlite3_stmt *st, int idx, const char *field, size_t cap);
void column_copy(sqlite3_stmt *st, int col, char *dst, size_t cap);

/* Serializes json compactly into scratch buffer slot (NULL becomes "{}"); *out_len excludes NUL. */
IOTDM_NODISCARD iotdm_result store_dump(sq_store *s, int slot, const json_t *json,
                                        const char **out_text, size_t *out_len);
/* Parses a JSON text column; NULL column gives an empty object. NULL on corrupt text (logged). */
json_t *store_load(sqlite3_stmt *st, int col);

/* The device columns, in the order store_device_from_row reads them; the table is aliased "d". */
#define STORE_DEVICE_COLUMNS                                                                       \
    "d.device_id, d.generation_id, d.etag, d.enabled, d.status_reason, d.status_updated_ms, "      \
    "d.auth_type, d.primary_key, d.secondary_key, d.primary_thumbprint, d.secondary_thumbprint, "  \
    "d.iot_edge, d.connected, d.connection_state_updated_ms, d.last_activity_ms, d.model_id, "     \
    "(SELECT COUNT(*) FROM c2d WHERE c2d.device_id = d.device_id)"
#define STORE_DEVICE_NCOLUMNS 17
void store_device_from_row(sqlite3_stmt *st, int first_col, hub_device *out);

/* The twin columns, in the order store_twin_from_row reads them; the table is aliased "t". */
#define STORE_TWIN_COLUMNS                                                                         \
    "t.tags, t.desired, t.desired_meta, t.desired_version, t.reported, t.reported_meta, "          \
    "t.reported_version, t.version, t.etag"
/* IOTDM_E_STORAGE when a stored section is corrupt (out is then empty). */
iotdm_result store_twin_from_row(sqlite3_stmt *st, int first_col, hub_twin *out);

/* ---- the twin index (sqlite_index.c) ----
 * twin_index holds one row per node (object member, at any depth, arrays included but not their
 * elements) of the tags, desired and reported sections: the node's path as a hash (path_id) and
 * its value encoded so that SQLite's ordering matches the query language's on each type. */
enum { STORE_IX_TAGS = 0, STORE_IX_DESIRED = 1, STORE_IX_REPORTED = 2, STORE_IX_SECTIONS = 3 };

/* Nodes indexed per section of a twin. A section with more is not indexed: its rows are replaced
 * by one marker row (path_id STORE_IX_UNINDEXED), and every query on that section takes the device
 * as a candidate. */
#define STORE_IX_MAX_NODES 1000
#define STORE_IX_UNINDEXED 0
/* Strings are indexed by their first bytes: enough to tell values apart, and index rows stay
 * small; comparisons against longer literals are widened to stay a superset. */
#define STORE_IX_TEXT_MAX 128
/* BLOB tags: booleans, and the containers, sort after every number and string. */
enum { STORE_IX_FALSE = 0, STORE_IX_TRUE = 1, STORE_IX_OBJECT = 2, STORE_IX_ARRAY = 3 };

/* A node's value as stored: SQLITE_NULL, SQLITE_INTEGER (i), SQLITE_FLOAT (d), SQLITE_TEXT (text,
 * len; borrowed) or SQLITE_BLOB (a one-byte tag in i). */
typedef struct {
    int type;
    sqlite3_int64 i;
    double d;
    const char *text;
    size_t len;
} store_ix_value;

/* The stored form of a JSON value (containers give their tag). Numbers within 2^53 are stored as
 * integers, others as reals: SQLite compares the two exactly, so a stored number always compares
 * as its double would. */
void store_ix_value_of(const json_t *v, store_ix_value *out);
int store_ix_bind(sqlite3_stmt *st, int idx, const store_ix_value *v);

/* Path ids: a hash of the section and the member names, never STORE_IX_UNINDEXED. */
uint64_t store_ix_path_start(int section);
uint64_t store_ix_path_step(uint64_t h, const char *name, size_t len);
sqlite3_int64 store_ix_path_id(uint64_t h);

/* Brings the twin's index rows up to date with the sections about to be written (texts as the
 * twin put serialised them, in STORE_JSON_BUFS order): sections whose text did not change are
 * skipped, the others are diffed node by node. Inside the caller's savepoint. */
iotdm_result store_ix_twin_put(sq_store *s, const char *device_id, const hub_twin *twin,
                               const char *const text[], const size_t len[]);
/* Whether the index reflects every twin (false after hub_store_sqlite_twin_index(false)). */
bool store_ix_built(sq_store *s);
/* Rebuilds the index of every twin when it is not built. Inside an open write transaction. */
iotdm_result store_ix_ensure_built(sq_store *s);
void store_ix_deinit(sq_store *s);

/* Ids and names: non-empty and shorter than HUB_ID_MAX. */
bool store_id_ok(const char *id);

/* Milliseconds since the epoch, wall clock. */
int64_t store_now_ms(void);

/* The operations (see store.h for what each does). */
IOTDM_NODISCARD iotdm_result sq_policy_put(hub_store *base, const hub_policy *policy);
IOTDM_NODISCARD iotdm_result sq_policy_get(hub_store *base, const char *name,
                                           hub_policy *out_policy);
size_t sq_policy_count(hub_store *base);
IOTDM_NODISCARD iotdm_result sq_device_create(hub_store *base, hub_device *device);
IOTDM_NODISCARD iotdm_result sq_device_get(hub_store *base, const char *device_id,
                                           hub_device *out_device);
IOTDM_NODISCARD iotdm_result sq_device_update(hub_store *base, hub_device *device,
                                              uint64_t if_match);
IOTDM_NODISCARD iotdm_result sq_device_delete(hub_store *base, const char *device_id,
                                              uint64_t if_match);
IOTDM_NODISCARD iotdm_result sq_device_set_connection(hub_store *base, const char *device_id,
                                                      bool connected, int64_t when_ms,
                                                      uint64_t epoch);
IOTDM_NODISCARD iotdm_result sq_device_set_activity(hub_store *base, const char *device_id,
                                                    int64_t when_ms, const char *model_id);
IOTDM_NODISCARD iotdm_result sq_device_foreach(hub_store *base, const char *after_id, size_t max,
                                               hub_device_visitor visit, void *ctx);
IOTDM_NODISCARD iotdm_result sq_device_stats(hub_store *base, hub_device_stats *out_stats);
IOTDM_NODISCARD iotdm_result sq_device_disconnect_all(hub_store *base, int64_t when_ms);
IOTDM_NODISCARD iotdm_result sq_twin_get(hub_store *base, const char *device_id,
                                         hub_twin *out_twin);
IOTDM_NODISCARD iotdm_result sq_twin_put(hub_store *base, const char *device_id,
                                         const hub_twin *twin);
IOTDM_NODISCARD iotdm_result sq_twin_foreach(hub_store *base, hub_twin_visitor visit, void *ctx);
IOTDM_NODISCARD iotdm_result sq_c2d_enqueue(hub_store *base, hub_c2d *msg, size_t max_pending);
IOTDM_NODISCARD iotdm_result sq_c2d_foreach(hub_store *base, const char *device_id, int64_t now_ms,
                                            hub_c2d_visitor visit, void *ctx);
IOTDM_NODISCARD iotdm_result sq_c2d_mark_delivered(hub_store *base, int64_t seq);
IOTDM_NODISCARD iotdm_result sq_c2d_complete(hub_store *base, int64_t seq);
IOTDM_NODISCARD iotdm_result sq_c2d_purge(hub_store *base, const char *device_id,
                                          size_t *out_purged);
size_t sq_c2d_count(hub_store *base, const char *device_id);
size_t sq_c2d_expire(hub_store *base, int64_t now_ms);
IOTDM_NODISCARD iotdm_result sq_telemetry_append(hub_store *base, hub_telemetry *msg);
IOTDM_NODISCARD iotdm_result sq_telemetry_foreach(hub_store *base, int64_t from_seq, size_t max,
                                                  hub_telemetry_visitor visit, void *ctx);
int64_t sq_telemetry_last_seq(hub_store *base);
IOTDM_NODISCARD iotdm_result sq_telemetry_trim(hub_store *base, uint64_t max_bytes,
                                               int64_t max_age_ms, int64_t now_ms, size_t max_rows,
                                               bool *out_more);
IOTDM_NODISCARD iotdm_result sq_file_create(hub_store *base, const hub_file *file);
IOTDM_NODISCARD iotdm_result sq_file_get(hub_store *base, const char *correlation_id,
                                         hub_file *out_file);
IOTDM_NODISCARD iotdm_result sq_file_update(hub_store *base, const hub_file *file);
IOTDM_NODISCARD iotdm_result sq_file_delete(hub_store *base, const char *correlation_id);
IOTDM_NODISCARD iotdm_result sq_file_find(hub_store *base, const char *device_id,
                                          const char *blob_name, hub_file *out_file);
IOTDM_NODISCARD iotdm_result sq_file_foreach(hub_store *base, const char *device_id, size_t max,
                                             hub_file_visitor visit, void *ctx);
size_t sq_file_active(hub_store *base, const char *device_id, int64_t since_ms);
IOTDM_NODISCARD iotdm_result sq_session_put(hub_store *base, const char *client_id,
                                            uint32_t subscriptions);
IOTDM_NODISCARD iotdm_result sq_session_get(hub_store *base, const char *client_id,
                                            uint32_t *out_subscriptions);
IOTDM_NODISCARD iotdm_result sq_session_delete(hub_store *base, const char *client_id);
IOTDM_NODISCARD iotdm_result sq_enrollment_put(hub_store *base, hub_dps_kind kind, const char *id,
                                               const json_t *doc, uint64_t if_match,
                                               uint64_t *out_etag);
IOTDM_NODISCARD iotdm_result sq_enrollment_get(hub_store *base, hub_dps_kind kind, const char *id,
                                               json_t **out_doc, uint64_t *out_etag);
IOTDM_NODISCARD iotdm_result sq_enrollment_delete(hub_store *base, hub_dps_kind kind,
                                                  const char *id, uint64_t if_match);
IOTDM_NODISCARD iotdm_result sq_enrollment_foreach(hub_store *base, hub_dps_kind kind,
                                                   const char *after_id, size_t max,
                                                   hub_doc_visitor visit, void *ctx);
IOTDM_NODISCARD iotdm_result sq_registration_put(hub_store *base, const char *registration_id,
                                                 const char *group_id, const json_t *doc,
                                                 uint64_t *out_etag);
IOTDM_NODISCARD iotdm_result sq_registration_get(hub_store *base, const char *registration_id,
                                                 json_t **out_doc, uint64_t *out_etag);
IOTDM_NODISCARD iotdm_result sq_registration_delete(hub_store *base, const char *registration_id,
                                                    uint64_t if_match);
IOTDM_NODISCARD iotdm_result sq_registration_foreach(hub_store *base, const char *group_id,
                                                     const char *after_id, size_t max,
                                                     hub_doc_visitor visit, void *ctx);
IOTDM_NODISCARD iotdm_result sq_dps_operation_put(hub_store *base, const char *operation_id,
                                                  const char *registration_id, int64_t created_ms,
                                                  const json_t *result);
IOTDM_NODISCARD iotdm_result sq_dps_operation_get(hub_store *base, const char *operation_id,
                                                  char out_registration_id[HUB_ID_MAX],
                                                  int64_t *out_created_ms, json_t **out_result);
IOTDM_NODISCARD iotdm_result sq_dps_operation_prune(hub_store *base, int64_t before_ms,
                                                    size_t max_keep, size_t *out_deleted);
IOTDM_NODISCARD iotdm_result sq_tpm_challenge_put(hub_store *base, const char *registration_id,
                                                  const hub_tpm_challenge *c);
IOTDM_NODISCARD iotdm_result sq_tpm_challenge_get(hub_store *base, const char *registration_id,
                                                  int64_t now_ms, hub_tpm_challenge *out);
IOTDM_NODISCARD iotdm_result sq_tpm_challenge_prune(hub_store *base, int64_t now_ms,
                                                    size_t max_keep, size_t *out_deleted);
IOTDM_NODISCARD iotdm_result sq_doc_put(hub_store *base, hub_doc_collection coll, const char *scope,
                                        const char *id, const json_t *doc, uint64_t if_match,
                                        uint64_t *out_etag);
IOTDM_NODISCARD iotdm_result sq_doc_get(hub_store *base, hub_doc_collection coll, const char *scope,
                                        const char *id, json_t **out_doc, uint64_t *out_etag);
IOTDM_NODISCARD iotdm_result sq_doc_delete(hub_store *base, hub_doc_collection coll,
                                           const char *scope, const char *id, uint64_t if_match);
IOTDM_NODISCARD iotdm_result sq_doc_foreach(hub_store *base, hub_doc_collection coll,
                                            const char *scope, const char *after_scope,
                                            const char *after_id, size_t max,
                                            hub_fleet_doc_visitor visit, void *ctx);
IOTDM_NODISCARD iotdm_result sq_doc_delete_scope(hub_store *base, hub_doc_collection coll,
                                                 const char *scope, size_t *out_deleted);
IOTDM_NODISCARD iotdm_result sq_doc_count(hub_store *base, hub_doc_collection coll,
                                          const char *scope, size_t *out_count);
/* The schema version this build migrates to (tests). */
int sq_schema_version(void);
IOTDM_NODISCARD iotdm_result sq_durable(hub_store *base);
/* The retained telemetry's byte count, summed once (at open: a long table takes a while). */
iotdm_result store_telemetry_count(sq_store *s);
bool sq_quiesce_wanted(hub_store *base);
IOTDM_NODISCARD iotdm_result sq_twin_texts(hub_store *base, const char *device_id,
                                           hub_twin_texts *out);
iotdm_result sq_twin_get_sections(hub_store *base, const char *device_id, unsigned sections,
                                  hub_twin *out_twin);
IOTDM_NODISCARD iotdm_result sq_file_usage(hub_store *base, const char *device_id,
                                           size_t *out_count, uint64_t *out_bytes);
IOTDM_NODISCARD iotdm_result sq_file_prune(hub_store *base, int64_t done_before_ms,
                                           int64_t open_before_ms, size_t max,
                                           hub_file_visitor visit, void *ctx, size_t *out_deleted);
IOTDM_NODISCARD iotdm_result sq_unit_begin(hub_store *base);
IOTDM_NODISCARD iotdm_result sq_unit_end(hub_store *base, iotdm_result outcome);
IOTDM_NODISCARD iotdm_result sq_group_commit(hub_store *base);
bool sq_has_pending_writes(const hub_store *base);
iotdm_result sq_query_page(hub_store *base, const hub_query *q, const char *after_id,
                           hub_twin_visitor visit, void *ctx);
/* sqlite_sync.c: releases the durability thread's descriptor and connection. */
void store_sync_deinit(sq_store *s);

#endif
