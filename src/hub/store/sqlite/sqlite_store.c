/* SQLite store: open and schema migrations, group commit, statement cache and shared helpers. */
#include "hub/store/sqlite/sqlite_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/log.h"

/* Schema migrations: entry i takes user_version i to i + 1. Append only; never edit a shipped one.
 */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE policies ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  primary_key TEXT NOT NULL,"
    "  secondary_key TEXT NOT NULL,"
    "  rights INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE devices ("
    "  device_id TEXT PRIMARY KEY NOT NULL,"
    "  generation_id TEXT NOT NULL,"
    "  etag INTEGER NOT NULL,"
    "  enabled INTEGER NOT NULL,"
    "  status_reason TEXT NOT NULL,"
    "  status_updated_ms INTEGER NOT NULL,"
    "  auth_type INTEGER NOT NULL,"
    "  primary_key TEXT NOT NULL,"
    "  secondary_key TEXT NOT NULL,"
    "  primary_thumbprint TEXT NOT NULL,"
    "  secondary_thumbprint TEXT NOT NULL,"
    "  iot_edge INTEGER NOT NULL,"
    "  connected INTEGER NOT NULL,"
    "  connection_state_updated_ms INTEGER NOT NULL,"
    "  last_activity_ms INTEGER NOT NULL,"
    "  model_id TEXT NOT NULL"
    ") WITHOUT ROWID;"
    /* Twins are large rows: a rowid table keeps them out of the device b-tree. */
    "CREATE TABLE twins ("
    "  device_id TEXT PRIMARY KEY NOT NULL"
    "    REFERENCES devices(device_id) ON DELETE CASCADE,"
    "  tags TEXT NOT NULL,"
    "  desired TEXT NOT NULL,"
    "  desired_meta TEXT NOT NULL,"
    "  desired_version INTEGER NOT NULL,"
    "  reported TEXT NOT NULL,"
    "  reported_meta TEXT NOT NULL,"
    "  reported_version INTEGER NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  etag INTEGER NOT NULL"
    ");"
    /* AUTOINCREMENT: a seq is never reused, even after the newest message is gone. */
    "CREATE TABLE c2d ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  device_id TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,"
    "  message_id TEXT NOT NULL,"
    "  properties TEXT NOT NULL,"
    "  body BLOB NOT NULL,"
    "  enqueued_ms INTEGER NOT NULL,"
    "  expiry_ms INTEGER NOT NULL,"
    "  delivery_count INTEGER NOT NULL"
    ");"
    "CREATE INDEX c2d_device ON c2d(device_id, seq);"
    "CREATE INDEX c2d_expiry ON c2d(expiry_ms) WHERE expiry_ms != 0;"
    "CREATE TABLE telemetry ("
    "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  device_id TEXT NOT NULL,"
    "  module_id TEXT NOT NULL,"
    "  enqueued_ms INTEGER NOT NULL,"
    "  system_properties TEXT NOT NULL,"
    "  properties TEXT NOT NULL,"
    "  body BLOB NOT NULL,"
    "  body_len INTEGER NOT NULL"
    ");"
    "CREATE TABLE sessions ("
    "  client_id TEXT PRIMARY KEY NOT NULL,"
    "  device_id TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,"
    "  subscriptions INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX sessions_device ON sessions(device_id);",
    /* 1 -> 2: file uploads (docs/protocol.md §8.12); the bytes live in DATA/files/<cid>. */
    "CREATE TABLE files ("
    "  correlation_id TEXT PRIMARY KEY NOT NULL,"
    "  device_id TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,"
    "  blob_name TEXT NOT NULL,"
    "  state INTEGER NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  updated_ms INTEGER NOT NULL,"
    "  status_code INTEGER NOT NULL,"
    "  status_description TEXT NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX files_blob ON files(device_id, blob_name, created_ms);",
    /* 2 -> 3: device provisioning (docs/protocol.md §7): enrollments (kind 0 individual, 1
     * group) and registration records, kept as the JSON documents the service API serves. */
    "CREATE TABLE dps_enrollments ("
    "  kind INTEGER NOT NULL,"
    "  id TEXT NOT NULL COLLATE NOCASE,"
    "  etag INTEGER NOT NULL,"
    "  doc TEXT NOT NULL,"
    "  PRIMARY KEY (kind, id)"
    ") WITHOUT ROWID;"
    "CREATE TABLE dps_registrations ("
    "  registration_id TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,"
    "  group_id TEXT NOT NULL,"
    "  etag INTEGER NOT NULL,"
    "  doc TEXT NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX dps_registrations_group ON dps_registrations(group_id);",
    /* 3 -> 4: DPS operations (§7.4): the final RegistrationOperationStatus of each registration,
     * which the device polls after the 202; kept for a while, so that a restart loses none. */
    "CREATE TABLE dps_operations ("
    "  operation_id TEXT PRIMARY KEY NOT NULL,"
    "  registration_id TEXT NOT NULL COLLATE NOCASE,"
    "  created_ms INTEGER NOT NULL,"
    "  result TEXT NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX dps_operations_created ON dps_operations(created_ms);",
    /* 4 -> 5: DPS TPM challenges (§7.10): the registration key of the last 401 to a registration
     * id, which its signed register and polls need, so that a restart does not void it. */
    "CREATE TABLE dps_tpm_challenges ("
    "  registration_id TEXT PRIMARY KEY NOT NULL COLLATE NOCASE,"
    "  key BLOB NOT NULL,"
    "  ek_digest BLOB NOT NULL,"
    "  srk BLOB NOT NULL,"
    "  expires_ms INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX dps_tpm_challenges_expiry ON dps_tpm_challenges(expires_ms);",
    /* 5 -> 6: the connection epoch (core/dir.h): the claim number of the connection whose state
     * the row holds, so that a connection that lost its device to a newer one cannot overwrite
     * the newer one's state. */
    "ALTER TABLE devices ADD COLUMN conn_epoch INTEGER NOT NULL DEFAULT 0;",
    /* 6 -> 7: upload retention walks finished uploads by age. */
    "CREATE INDEX files_updated ON files(state, updated_ms);",
    /* 7 -> 8: telemetry retention counts what a row costs on the disk, not only its body. */
    "ALTER TABLE telemetry ADD COLUMN row_bytes INTEGER NOT NULL DEFAULT 0;"
    "UPDATE telemetry SET row_bytes = body_len + length(system_properties) + length(properties) "
    "+ length(device_id) + length(module_id) + 64;",
    /* 8 -> 9: the twin index queries narrow their candidates with (sqlite_index.c): a row per node
     * of tags, desired and reported. value has no declared type, so SQLite keeps each value's
     * own type. The index comes out of the twins in C, by the same code that keeps it up to date:
     * built = 0 has migrate() build it. Device columns that queries filter on get indexes too. */
    "CREATE TABLE twin_index ("
    "  device_id TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,"
    "  section INTEGER NOT NULL,"
    "  path_id INTEGER NOT NULL,"
    "  value,"
    "  PRIMARY KEY (device_id, section, path_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX twin_index_value ON twin_index(path_id, value, device_id);"
    "CREATE TABLE twin_index_state (built INTEGER NOT NULL);"
    "INSERT INTO twin_index_state VALUES (0);"
    "CREATE INDEX devices_enabled ON devices(enabled);"
    "CREATE INDEX devices_connected ON devices(connected);"
    "CREATE INDEX devices_model ON devices(model_id);"
    "CREATE INDEX devices_activity ON devices(last_activity_ms);",
    /* 9 -> 10: fleet documents (docs/jobs.md, sqlite_docs.c): jobs, their per-device records and
     * configurations, each a JSON object under (collection, scope, id) with an etag counter.
     * WITHOUT ROWID: a scope's documents sit together in key order, so a job's device records
     * (small, and by far the most numerous) are listed without a second lookup per row. IF NOT
     * EXISTS: a database whose version was set back by hand (as tests of the earlier steps do)
     * keeps the table it has. */
    "CREATE TABLE IF NOT EXISTS fleet_docs ("
    "  collection INTEGER NOT NULL,"
    "  scope TEXT NOT NULL,"
    "  id TEXT NOT NULL,"
    "  etag INTEGER NOT NULL,"
    "  body TEXT NOT NULL,"
    "  PRIMARY KEY (collection, scope, id)"
    ") WITHOUT ROWID;",
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

int sq_schema_version(void)
{
    return SCHEMA_VERSION;
}

iotdm_result store_sqlite_result(sq_store *s, int rc, const char *what)
{
    switch (rc) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return IOTDM_OK;
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_UNIQUE:
        return IOTDM_E_EXISTS;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return IOTDM_E_NOT_FOUND;
    default:
        break;
    }
    log_error("store", "sqlite failed op=%s rc=%d error=\"%s\"", what, rc,
              s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    /* Some errors (I/O, full disk, out of memory) make SQLite roll back the whole transaction.
     * Writes made earlier in this pass are then gone, so the coming commit must report failure
     * rather than let the hub acknowledge them. */
    if (s->in_txn && s->db && sqlite3_get_autocommit(s->db)) {
        s->in_txn = false;
        s->txn_failed = true;
        s->telemetry_bytes = -1;
    }
    if ((rc & 0xff) == SQLITE_FULL)
        return -ENOSPC;
    if ((rc & 0xff) == SQLITE_NOMEM)
        return -ENOMEM;
    return IOTDM_E_STORAGE;
}

sqlite3_stmt *stmt_take(sq_store *s, store_stmt_id id, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (!s->stmt_busy[id]) {
        if (!s->stmts[id]) {
            int rc =
                sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[id], NULL);
            if (rc != SQLITE_OK) {
                IOTDM_IGNORE(
                    store_sqlite_result(s, rc, "prepare")); /* logs it; NULL says it failed */
                s->stmts[id] = NULL;
                return NULL;
            }
        }
        s->stmt_busy[id] = true;
        return s->stmts[id];
    }
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        IOTDM_IGNORE(store_sqlite_result(s, rc, "prepare")); /* logs it; NULL says it failed */
        return NULL;
    }
    return st;
}

void stmt_give(sq_store *s, store_stmt_id id, sqlite3_stmt *st)
{
    if (!st)
        return;
    if (st == s->stmts[id]) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        s->stmt_busy[id] = false;
    } else {
        sqlite3_finalize(st);
    }
}

iotdm_result stmt_exec(sq_store *s, sqlite3_stmt *st)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    return store_sqlite_result(s, rc, sqlite3_sql(st));
}

static iotdm_result exec_cached(sq_store *s, store_stmt_id id, const char *sql)
{
    sqlite3_stmt *st = stmt_take(s, id, sql);
    if (!st)
        return IOTDM_E_STORAGE;
    iotdm_result r = stmt_exec(s, st);
    stmt_give(s, id, st);
    return r;
}

iotdm_result store_write_begin(sq_store *s)
{
    if (s->txn_failed)
        return IOTDM_E_STORAGE;
    if (s->reader)
        return IOTDM_E_INTERNAL; /* a reader handle never writes */
    if (!s->in_txn) {
        /* IMMEDIATE takes the write lock now, so a later statement of this group cannot fail
         * with BUSY half-way through it. */
        iotdm_result r = exec_cached(s, ST_BEGIN, "BEGIN IMMEDIATE");
        if (r != IOTDM_OK)
            return r;
        s->in_txn = true;
    }
    if (s->unit_open && !s->unit_savepoint) {
        /* The unit's first write: from here its writes can be undone without the group's. */
        iotdm_result r = exec_cached(s, ST_UNIT_SAVEPOINT, "SAVEPOINT unit");
        if (r != IOTDM_OK)
            return r;
        s->unit_savepoint = true;
    }
    return IOTDM_OK;
}

iotdm_result store_savepoint(sq_store *s)
{
    iotdm_result r = store_write_begin(s);
    if (r == IOTDM_OK)
        r = exec_cached(s, ST_SAVEPOINT, "SAVEPOINT store_op");
    return r;
}

iotdm_result store_savepoint_end(sq_store *s, iotdm_result outcome)
{
    if (!s->in_txn)
        return outcome; /* SQLite already rolled everything back; store_sqlite_result noted it */
    if (outcome != IOTDM_OK)
        (void)!exec_cached(s, ST_ROLLBACK_TO, "ROLLBACK TO store_op"); /* RELEASE reports */
    iotdm_result r = exec_cached(s, ST_RELEASE, "RELEASE store_op");
    return outcome != IOTDM_OK ? outcome : r;
}

iotdm_result sq_unit_begin(hub_store *base)
{
    sq_store *s = (sq_store *)base;
    s->unit_open = true;
    s->unit_savepoint = false; /* taken by the unit's first write, if any */
    return IOTDM_OK;
}

iotdm_result sq_unit_end(hub_store *base, iotdm_result outcome)
{
    sq_store *s = (sq_store *)base;
    bool had_savepoint = s->unit_savepoint;
    s->unit_open = false;
    s->unit_savepoint = false;
    if (!had_savepoint || !s->in_txn)
        return outcome; /* nothing written, or SQLite rolled the group back (txn_failed) */
    iotdm_result r = IOTDM_OK;
    if (outcome != IOTDM_OK)
        r = exec_cached(s, ST_UNIT_ROLLBACK_TO, "ROLLBACK TO unit");
    iotdm_result rel = exec_cached(s, ST_UNIT_RELEASE, "RELEASE unit");
    if (outcome != IOTDM_OK)
        return outcome;
    return r != IOTDM_OK ? r : rel;
}

iotdm_result sq_group_commit(hub_store *base)
{
    sq_store *store = (sq_store *)base;
    if (store->txn_failed) {
        if (!sqlite3_get_autocommit(store->db))
            (void)!exec_cached(store, ST_ROLLBACK, "ROLLBACK"); /* the failure is reported */
        store->txn_failed = false;
        store->in_txn = false;
        store->telemetry_bytes = -1;
        return IOTDM_E_STORAGE;
    }
    if (!store->in_txn)
        return IOTDM_OK;
    iotdm_result r = exec_cached(store, ST_COMMIT, "COMMIT");
    if (r != IOTDM_OK) {
        /* The group is lost: roll back so the next one starts clean. Nothing was acknowledged. */
        if (!sqlite3_get_autocommit(store->db))
            (void)!exec_cached(store, ST_ROLLBACK, "ROLLBACK");
        store->telemetry_bytes = -1;
        r = r == -ENOSPC ? r : IOTDM_E_STORAGE;
    }
    store->in_txn = false;
    store->txn_failed = false;
    return r;
}

bool sq_has_pending_writes(const hub_store *base)
{
    const sq_store *store = (const sq_store *)base;
    return store->in_txn || store->txn_failed;
}

static iotdm_result pragma_text(sq_store *s, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            column_copy(st, 0, out, cap);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return store_sqlite_result(s, rc, sql);
}

static iotdm_result migrate(sq_store *s)
{
    iotdm_result r = store_sqlite_result(
        s, sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL), "begin migration");
    if (r != IOTDM_OK)
        return r;
    char text[32];
    r = pragma_text(s, "PRAGMA user_version", text, sizeof(text));
    int version = r == IOTDM_OK ? atoi(text) : 0;
    if (r == IOTDM_OK && (version < 0 || version > SCHEMA_VERSION)) {
        log_error("store", "database schema is newer than this hub version=%d known=%d", version,
                  SCHEMA_VERSION);
        r = IOTDM_E_UNSUPPORTED;
    }
    for (int v = version; r == IOTDM_OK && v < SCHEMA_VERSION; v++) {
        r = store_sqlite_result(s, sqlite3_exec(s->db, migrations[v], NULL, NULL, NULL), "migrate");
        if (r == IOTDM_OK) {
            /* The version is an integer we produce, never input; PRAGMA takes no parameters. */
            char sql[48];
            snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
            r = store_sqlite_result(s, sqlite3_exec(s->db, sql, NULL, NULL, NULL), "migrate");
        }
        if (r == IOTDM_OK)
            log_info("store", "schema migrated version=%d", v + 1);
    }
    if (r == IOTDM_OK)
        r = store_ix_ensure_built(s); /* after migration 8, or after the index was turned off */
    const char *end = r == IOTDM_OK ? "COMMIT" : "ROLLBACK";
    iotdm_result e = store_sqlite_result(s, sqlite3_exec(s->db, end, NULL, NULL, NULL), end);
    return r != IOTDM_OK ? r : e;
}

static iotdm_result configure(sq_store *s)
{
    char mode[16];
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    iotdm_result r = pragma_text(s, "PRAGMA journal_mode = WAL", mode, sizeof(mode));
    if (r == IOTDM_OK && strcmp(mode, "wal") != 0) {
        log_error("store", "cannot enable WAL journal mode=%s", mode);
        return IOTDM_E_STORAGE;
    }
    /* NORMAL: COMMIT writes the WAL but does not wait for the disk. Durability is an fdatasync of
     * the WAL (store_sync.c), which hub_store_commit does inline and the hub's group commit hands
     * to a worker thread; nothing is acknowledged before it. */
    static const char setup[] = "PRAGMA synchronous = NORMAL;"
                                "PRAGMA foreign_keys = ON;"
                                /* 64 MiB: the WAL does not stay at its high-water mark */
                                "PRAGMA journal_size_limit = 67108864;";
    if (r == IOTDM_OK)
        r = store_sqlite_result(s, sqlite3_exec(s->db, setup, NULL, NULL, NULL), "configure");
    /* A build without foreign-key support ignores the pragma silently; cascades depend on it. */
    if (r == IOTDM_OK)
        r = pragma_text(s, "PRAGMA foreign_keys", mode, sizeof(mode));
    if (r == IOTDM_OK && strcmp(mode, "1") != 0) {
        log_error("store", "sqlite lacks foreign key support");
        return IOTDM_E_UNSUPPORTED;
    }
    return r;
}

static void sq_close(hub_store *base);
static iotdm_result sq_open_reader(hub_store *base, hub_store **out_reader);

/* One node: connection states need no owner. */
static void sq_set_node(hub_store *base, const char *node_id)
{
    (void)base;
    (void)node_id;
}

/* One hub: the bytes live in DATA/files (http/files_blob.c). */
static iotdm_result sq_file_bytes_put(hub_store *base, const char *correlation_id,
                                      const void *bytes, size_t len)
{
    (void)base, (void)correlation_id, (void)bytes, (void)len;
    return IOTDM_E_UNSUPPORTED;
}

static iotdm_result sq_file_bytes_get(hub_store *base, const char *correlation_id,
                                      unsigned char **out_bytes, size_t *out_len)
{
    (void)base, (void)correlation_id;
    *out_bytes = NULL;
    *out_len = 0;
    return IOTDM_E_UNSUPPORTED;
}

static iotdm_result sq_device_disconnect_node(hub_store *base, const char *node_id, int64_t when_ms,
                                              size_t max, hub_device_id_visitor visit, void *ctx,
                                              size_t *out_count)
{
    (void)base, (void)node_id, (void)when_ms, (void)max, (void)visit, (void)ctx;
    *out_count = 0;
    return IOTDM_E_UNSUPPORTED;
}
static const hub_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .unit_begin = sq_unit_begin,
    .unit_end = sq_unit_end,
    .group_commit = sq_group_commit,
    .has_pending_writes = sq_has_pending_writes,
    .durable = sq_durable,
    .quiesce_wanted = sq_quiesce_wanted,
    .open_reader = sq_open_reader,
    .policy_put = sq_policy_put,
    .policy_get = sq_policy_get,
    .policy_count = sq_policy_count,
    .device_create = sq_device_create,
    .device_get = sq_device_get,
    .device_update = sq_device_update,
    .device_delete = sq_device_delete,
    .device_set_connection = sq_device_set_connection,
    .device_set_activity = sq_device_set_activity,
    .device_foreach = sq_device_foreach,
    .device_stats = sq_device_stats,
    .device_disconnect_all = sq_device_disconnect_all,
    .set_node = sq_set_node,
    .device_disconnect_node = sq_device_disconnect_node,
    .twin_get = sq_twin_get,
    .twin_get_sections = sq_twin_get_sections,
    .twin_put = sq_twin_put,
    .twin_texts = sq_twin_texts,
    .twin_foreach = sq_twin_foreach,
    .query_page = sq_query_page,
    .c2d_enqueue = sq_c2d_enqueue,
    .c2d_foreach = sq_c2d_foreach,
    .c2d_mark_delivered = sq_c2d_mark_delivered,
    .c2d_complete = sq_c2d_complete,
    .c2d_purge = sq_c2d_purge,
    .c2d_count = sq_c2d_count,
    .c2d_expire = sq_c2d_expire,
    .telemetry_append = sq_telemetry_append,
    .telemetry_foreach = sq_telemetry_foreach,
    .telemetry_last_seq = sq_telemetry_last_seq,
    .telemetry_trim = sq_telemetry_trim,
    .file_create = sq_file_create,
    .file_get = sq_file_get,
    .file_update = sq_file_update,
    .file_delete = sq_file_delete,
    .file_find = sq_file_find,
    .file_foreach = sq_file_foreach,
    .file_active = sq_file_active,
    .file_usage = sq_file_usage,
    .file_prune = sq_file_prune,
    .file_bytes_put = sq_file_bytes_put,
    .file_bytes_get = sq_file_bytes_get,
    .session_put = sq_session_put,
    .session_get = sq_session_get,
    .session_delete = sq_session_delete,
    .enrollment_put = sq_enrollment_put,
    .enrollment_get = sq_enrollment_get,
    .enrollment_delete = sq_enrollment_delete,
    .enrollment_foreach = sq_enrollment_foreach,
    .registration_put = sq_registration_put,
    .registration_get = sq_registration_get,
    .registration_delete = sq_registration_delete,
    .registration_foreach = sq_registration_foreach,
    .dps_operation_put = sq_dps_operation_put,
    .dps_operation_get = sq_dps_operation_get,
    .dps_operation_prune = sq_dps_operation_prune,
    .tpm_challenge_put = sq_tpm_challenge_put,
    .tpm_challenge_get = sq_tpm_challenge_get,
    .tpm_challenge_prune = sq_tpm_challenge_prune,
    .doc_put = sq_doc_put,
    .doc_get = sq_doc_get,
    .doc_delete = sq_doc_delete,
    .doc_foreach = sq_doc_foreach,
    .doc_delete_scope = sq_doc_delete_scope,
    .doc_count = sq_doc_count,
};

static sq_store *sq_new(const char *path)
{
    sq_store *s = xcalloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->base.ops = &sqlite_ops;
    s->telemetry_bytes = -1;
    if (snprintf(s->path, sizeof s->path, "%s", path) >= (int)sizeof s->path) {
        xfree(s);
        return NULL;
    }
    store_sync_init(s, path);
    return s;
}

iotdm_result hub_store_sqlite_open(const char *path, hub_store **out_store)
{
    *out_store = NULL;
    if (strlen(path) >= STORE_PATH_MAX)
        return IOTDM_E_TOO_LARGE;
    sq_store *s = sq_new(path);
    if (!s)
        return -ENOMEM;
    /* NOMUTEX: a handle is used by one thread at a time; SQLite's own locking would be wasted. */
    int flags =
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
    iotdm_result r = store_sqlite_result(s, rc, "open");
    if (r == IOTDM_OK) {
        sqlite3_extended_result_codes(s->db, 1);
        r = configure(s);
    }
    if (r == IOTDM_OK)
        r = migrate(s);
    char page[16];
    if (r == IOTDM_OK)
        r = pragma_text(s, "PRAGMA page_size", page, sizeof page);
    if (r == IOTDM_OK)
        s->page_size = atoi(page) > 0 ? atoi(page) : 4096;
    if (r == IOTDM_OK)
        r = sq_durable(&s->base); /* the migrations committed without waiting for the disk */
    if (r == IOTDM_OK)
        r = store_telemetry_count(s);
    if (r != IOTDM_OK) {
        log_error("store", "cannot open database path=%s result=%s", path, iotdm_result_name(r));
        sq_close(&s->base);
        return r == IOTDM_E_UNSUPPORTED || r == -ENOMEM ? r : IOTDM_E_STORAGE;
    }
    /* Checkpoints are the durability thread's (sqlite_sync.c): a COMMIT on the writer must never
     * stop to copy the WAL into the database. */
    sqlite3_wal_autocheckpoint(s->db, 0);
    *out_store = &s->base;
    return IOTDM_OK;
}

/* A second connection for long reads on another thread. WAL lets it read the last committed
 * state while the writer goes on; it never takes the write lock. */
static iotdm_result sq_open_reader(hub_store *base, hub_store **out_reader)
{
    sq_store *w = (sq_store *)base;
    sq_store *s = sq_new(w->path);
    if (!s)
        return -ENOMEM;
    s->reader = true;
    int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
    int rc = sqlite3_open_v2(w->path, &s->db, flags, NULL);
    iotdm_result r = store_sqlite_result(s, rc, "open reader");
    if (r == IOTDM_OK) {
        sqlite3_extended_result_codes(s->db, 1);
        sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
        sqlite3_db_config(s->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
        sqlite3_db_config(s->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    }
    if (r != IOTDM_OK) {
        sq_close(&s->base);
        return r;
    }
    *out_reader = &s->base;
    return IOTDM_OK;
}

static void sq_close(hub_store *base)
{
    sq_store *store = (sq_store *)base;
    if (!store)
        return;
    store_sync_deinit(store);
    store_ix_deinit(store);
    for (int i = 0; i < ST_COUNT_; i++)
        sqlite3_finalize(store->stmts[i]);
    /* An open group transaction is rolled back by closing: by contract it was never acknowledged.
     */
    if (store->db)
        sqlite3_close_v2(store->db);
    for (int i = 0; i < STORE_JSON_BUFS; i++)
        hub_json_buf_free(&store->json[i]);
    xfree(store);
}

int bind_text(sqlite3_stmt *st, int idx, const char *text)
{
    if (!text)
        return sqlite3_bind_null(st, idx);
    return sqlite3_bind_text(st, idx, text, -1, SQLITE_STATIC);
}

int bind_field(sqlite3_stmt *st, int idx, const char *field, size_t cap)
{
    return sqlite3_bind_text(st, idx, field, (int)strnlen(field, cap - 1), SQLITE_STATIC);
}

void column_copy(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    size_t n = text ? (size_t)sqlite3_column_bytes(st, col) : 0;
    if (n >= cap)
        n = cap - 1;
    if (n)
        memcpy(dst, text, n);
    dst[n] = '\0';
}

iotdm_result store_dump(sq_store *s, int slot, const json_t *json, const char **out_text,
                        size_t *out_len)
{
    return hub_json_buf_dump(&s->json[slot], json, out_text, out_len);
}

json_t *store_load(sqlite3_stmt *st, int col)
{
    const char *text = (const char *)sqlite3_column_text(st, col);
    if (!text)
        return json_object();
    json_error_t err;
    json_t *j = json_loadb(text, (size_t)sqlite3_column_bytes(st, col), 0, &err);
    if (!j)
        log_error("store", "corrupt JSON in database column=%s error=\"%s\"",
                  sqlite3_column_name(st, col), err.text);
    return j;
}

bool store_id_ok(const char *id)
{
    return id && id[0] && strnlen(id, HUB_ID_MAX) < HUB_ID_MAX;
}

int64_t store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

sqlite3_stmt *store_write_stmt(sq_store *s, store_stmt_id id, const char *sql, iotdm_result *out_r)
{
    *out_r = store_write_begin(s);
    if (*out_r != IOTDM_OK)
        return NULL;
    sqlite3_stmt *st = stmt_take(s, id, sql);
    if (!st)
        *out_r = IOTDM_E_STORAGE;
    return st;
}

iotdm_result stmt_exec_row(sq_store *s, sqlite3_stmt *st)
{
    iotdm_result r = stmt_exec(s, st);
    return r == IOTDM_OK && sqlite3_changes(s->db) == 0 ? IOTDM_E_NOT_FOUND : r;
}
