/* Private to the SQLite store: the handle, its statement cache and the write-transaction helpers.
 */
#ifndef IOTDM_HUB_STORE_INTERNAL_H
#define IOTDM_HUB_STORE_INTERNAL_H

#include <sqlite3.h>
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
    ST_DPS_OP_PUT,
    ST_DPS_OP_GET,
    ST_DPS_OP_EXPIRE,
    ST_DPS_OP_TRIM,
    ST_TPM_CHALLENGE_PUT,
    ST_TPM_CHALLENGE_GET,
    ST_TPM_CHALLENGE_EXPIRE,
    ST_TPM_CHALLENGE_TRIM,
    ST_COUNT_
} store_stmt_id;

/* A growable buffer for JSON text handed to SQLite without a per-call allocation. */
typedef struct {
    char *data;
    size_t cap;
} store_buf;

enum { STORE_JSON_BUFS = 5 };

#define STORE_PATH_MAX        600
#define STORE_BUSY_TIMEOUT_MS 5000

/* The WAL file as one thread sees it (store_sync.c). */
typedef struct {
    char path[STORE_PATH_MAX + 8];
    int fd; /* -1 until the first sync */
    dev_t dev;
    ino_t ino;
} store_wal;

struct hub_store {
    char path[STORE_PATH_MAX];
    sqlite3 *db;
    store_wal wal;                   /* the loop thread's handle for hub_store_sync */
    struct hub_store_syncer *syncer; /* the sync worker, when started */
    bool in_txn;                     /* BEGIN IMMEDIATE issued, COMMIT not yet */
    bool txn_failed; /* SQLite rolled the open transaction back: the next commit must fail */
    int64_t telemetry_bytes; /* sum of retained body bytes; -1 when it must be recounted */
    sqlite3_stmt *stmts[ST_COUNT_];
    bool stmt_busy[ST_COUNT_]; /* the cached statement is mid-iteration (a visitor is running) */
    store_buf json[STORE_JSON_BUFS];
};

/* Statement cache. stmt_take returns the prepared statement for id (preparing sql on first use);
 * while it is taken, a nested use of the same id (a visitor calling back into the store) gets a
 * private statement instead. stmt_give resets it (or finalizes the private one). NULL on failure,
 * logged. */
sqlite3_stmt *stmt_take(hub_store *s, store_stmt_id id, const char *sql);
void stmt_give(hub_store *s, store_stmt_id id, sqlite3_stmt *st);

/* Steps a statement that returns no rows (or whose rows are ignored); maps SQLite's result. */
iotdm_result stmt_exec(hub_store *s, sqlite3_stmt *st);

/* Maps a SQLite result code to iotdm_result (constraint kinds become EXISTS/NOT_FOUND) and logs
 * unexpected failures. Also notices when SQLite rolled back the open write transaction. */
iotdm_result store_sqlite_result(hub_store *s, int rc, const char *what);

/* Opens the group-commit transaction if none is open. Every write function calls this first. */
iotdm_result store_write_begin(hub_store *s);
/* The start of most writes: opens the group transaction and takes the statement. NULL on failure,
 * with the reason in *out_r. */
sqlite3_stmt *store_write_stmt(hub_store *s, store_stmt_id id, const char *sql,
                               iotdm_result *out_r);
/* stmt_exec for a write that must touch a row: IOTDM_E_NOT_FOUND when it touched none. */
iotdm_result stmt_exec_row(hub_store *s, sqlite3_stmt *st);

/* A savepoint around a write made of several statements, so that it applies whole or not at all
 * while the surrounding group transaction carries on. */
iotdm_result store_savepoint(hub_store *s);
iotdm_result store_savepoint_end(hub_store *s, iotdm_result outcome);

/* store_sync.c: the WAL handle of the store's own thread (opened lazily); deinit also stops the
 * worker. */
void store_sync_init(hub_store *s, const char *db_path);
void store_sync_deinit(hub_store *s);

/* Binding helpers. Text fields of the fixed-size structs are bound up to their array size, so a
 * missing NUL cannot make SQLite read past them. */
int bind_text(sqlite3_stmt *st, int idx, const char *text);
int bind_field(sqlite3_stmt *st, int idx, const char *field, size_t cap);
void column_copy(sqlite3_stmt *st, int col, char *dst, size_t cap);

/* Serializes json compactly into scratch buffer slot (NULL becomes "{}"); *out_len excludes NUL. */
iotdm_result store_dump(hub_store *s, int slot, const json_t *json, const char **out_text,
                        size_t *out_len);
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

/* Ids and names: non-empty and shorter than HUB_ID_MAX. */
bool store_id_ok(const char *id);

/* Milliseconds since the epoch, wall clock. */
int64_t store_now_ms(void);

#endif
