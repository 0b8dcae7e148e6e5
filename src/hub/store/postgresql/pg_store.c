/* PostgreSQL store: connection, schema migrations, transactions, statement running and the shared
 * helpers (pg_internal.h says how the backend meets the store contract). */
#include "hub/store/postgresql/pg_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/log.h"

/* Schema migrations: entry i takes version i to i + 1. Append only; never edit a shipped one.
 * docs/cluster.md lists the SQL features these and the statements rely on. */
static const char *const migrations[] = {
    /* 0 -> 1: the tables of the SQLite store's schema, in PostgreSQL's types. JSON sections are
     * kept as the exact text the hub wrote (a twin GET splices them without parsing); queries
     * reach into them through GIN indexes on their jsonb form. */
    "CREATE TABLE policies ("
    "  name text COLLATE \"C\" PRIMARY KEY,"
    "  primary_key text NOT NULL,"
    "  secondary_key text NOT NULL,"
    "  rights bigint NOT NULL);"
    "CREATE TABLE devices ("
    "  device_id text COLLATE \"C\" PRIMARY KEY,"
    "  generation_id text NOT NULL,"
    "  etag bigint NOT NULL,"
    "  enabled boolean NOT NULL,"
    "  status_reason text NOT NULL,"
    "  status_updated_ms bigint NOT NULL,"
    "  auth_type integer NOT NULL,"
    "  primary_key text NOT NULL,"
    "  secondary_key text NOT NULL,"
    "  primary_thumbprint text NOT NULL,"
    "  secondary_thumbprint text NOT NULL,"
    "  iot_edge boolean NOT NULL,"
    "  connected boolean NOT NULL,"
    "  connection_state_updated_ms bigint NOT NULL,"
    "  last_activity_ms bigint NOT NULL,"
    "  model_id text NOT NULL,"
    "  conn_epoch bigint NOT NULL DEFAULT 0);"
    "CREATE INDEX devices_enabled ON devices(enabled);"
    "CREATE INDEX devices_connected ON devices(connected) WHERE connected;"
    "CREATE INDEX devices_model ON devices(model_id);"
    "CREATE INDEX devices_activity ON devices(last_activity_ms);"
    /* No foreign key to devices: PostgreSQL checks one whenever a row this transaction wrote is
     * updated again, taking a share lock on the device row from each unit's subtransaction, which
     * costs a MultiXact per reported patch of a busy device. pg_device_delete removes the twin. */
    "CREATE TABLE twins ("
    "  device_id text COLLATE \"C\" PRIMARY KEY,"
    "  tags text NOT NULL,"
    "  desired text NOT NULL,"
    "  desired_meta text NOT NULL,"
    "  desired_version bigint NOT NULL,"
    "  reported text NOT NULL,"
    "  reported_meta text NOT NULL,"
    "  reported_version bigint NOT NULL,"
    "  version bigint NOT NULL,"
    "  etag bigint NOT NULL);"
    "CREATE INDEX twins_tags ON twins USING gin ((tags::jsonb) jsonb_path_ops);"
    "CREATE INDEX twins_desired ON twins USING gin ((desired::jsonb) jsonb_path_ops);"
    "CREATE INDEX twins_reported ON twins USING gin ((reported::jsonb) jsonb_path_ops);"
    "CREATE TABLE c2d ("
    "  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  device_id text COLLATE \"C\" NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,"
    "  message_id text NOT NULL,"
    "  properties text NOT NULL,"
    "  body bytea NOT NULL,"
    "  enqueued_ms bigint NOT NULL,"
    "  expiry_ms bigint NOT NULL,"
    "  delivery_count integer NOT NULL);"
    "CREATE INDEX c2d_device ON c2d(device_id, seq);"
    "CREATE INDEX c2d_expiry ON c2d(expiry_ms) WHERE expiry_ms <> 0;"
    /* Telemetry and events, partitioned by the hour of enqueued_ms (pg_messages.c makes the
     * partitions ahead and drops whole ones when retention lets them go); seq from a sequence of
     * its own, indexed in every partition. The default partition takes what a node with a wrong
     * clock stamps outside the partitions made. */
    "CREATE SEQUENCE telemetry_seq;"
    "CREATE TABLE telemetry ("
    "  seq bigint NOT NULL DEFAULT nextval('telemetry_seq'),"
    "  device_id text NOT NULL,"
    "  module_id text NOT NULL,"
    "  enqueued_ms bigint NOT NULL,"
    "  system_properties text NOT NULL,"
    "  properties text NOT NULL,"
    "  body bytea NOT NULL,"
    "  body_len integer NOT NULL,"
    "  row_bytes bigint NOT NULL"
    ") PARTITION BY RANGE (enqueued_ms);"
    "CREATE INDEX telemetry_seq_ix ON telemetry(seq);"
    "CREATE TABLE telemetry_default PARTITION OF telemetry DEFAULT;"
    "CREATE TABLE sessions ("
    "  client_id text COLLATE \"C\" PRIMARY KEY,"
    "  device_id text COLLATE \"C\" NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,"
    "  subscriptions bigint NOT NULL);"
    "CREATE INDEX sessions_device ON sessions(device_id);"
    "CREATE TABLE files ("
    "  correlation_id text COLLATE \"C\" PRIMARY KEY,"
    "  device_id text COLLATE \"C\" NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,"
    "  blob_name text NOT NULL,"
    "  state integer NOT NULL,"
    "  size bigint NOT NULL,"
    "  created_ms bigint NOT NULL,"
    "  updated_ms bigint NOT NULL,"
    "  status_code integer NOT NULL,"
    "  status_description text NOT NULL);"
    "CREATE INDEX files_blob ON files(device_id, blob_name, created_ms);"
    "CREATE INDEX files_updated ON files(state, updated_ms);"
    /* DPS ids compare case-insensitively: id_key is the id folded to lower case (ASCII), id the
     * id as first given. */
    "CREATE TABLE dps_enrollments ("
    "  kind integer NOT NULL,"
    "  id_key text COLLATE \"C\" NOT NULL,"
    "  id text NOT NULL,"
    "  etag bigint NOT NULL,"
    "  doc text NOT NULL,"
    "  PRIMARY KEY (kind, id_key));"
    "CREATE TABLE dps_registrations ("
    "  id_key text COLLATE \"C\" PRIMARY KEY,"
    "  registration_id text NOT NULL,"
    "  group_id text COLLATE \"C\" NOT NULL,"
    "  etag bigint NOT NULL,"
    "  doc text NOT NULL);"
    "CREATE INDEX dps_registrations_group ON dps_registrations(group_id, id_key);"
    "CREATE TABLE dps_operations ("
    "  operation_id text COLLATE \"C\" PRIMARY KEY,"
    "  registration_id text NOT NULL,"
    "  created_ms bigint NOT NULL,"
    "  result text NOT NULL);"
    "CREATE INDEX dps_operations_created ON dps_operations(created_ms);"
    "CREATE TABLE dps_tpm_challenges ("
    "  id_key text COLLATE \"C\" PRIMARY KEY,"
    "  key bytea NOT NULL,"
    "  ek_digest bytea NOT NULL,"
    "  srk bytea NOT NULL,"
    "  expires_ms bigint NOT NULL);"
    "CREATE INDEX dps_tpm_challenges_expiry ON dps_tpm_challenges(expires_ms);"
    /* The cluster (docs/cluster.md): the node holding each connected device, the nodes alive,
     * the bus's inbox (unlogged: transient messages, no WAL) and the shared identity files. */
    "ALTER TABLE devices ADD COLUMN conn_node text NOT NULL DEFAULT '';"
    "CREATE INDEX devices_conn_node ON devices(conn_node) WHERE connected;"
    "CREATE TABLE cluster_nodes ("
    "  node_id text PRIMARY KEY,"
    "  started_ms bigint NOT NULL,"
    "  heartbeat_ms bigint NOT NULL);"
    "CREATE UNLOGGED TABLE cluster_inbox ("
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  node_id text NOT NULL,"
    "  kind integer NOT NULL,"
    "  origin text NOT NULL,"
    "  device_id text NOT NULL,"
    "  ref bigint NOT NULL,"
    "  status integer NOT NULL,"
    "  body bytea NOT NULL,"
    "  created_ms bigint NOT NULL);"
    "CREATE INDEX cluster_inbox_node ON cluster_inbox(node_id, id);"
    "CREATE TABLE cluster_files ("
    "  name text PRIMARY KEY,"
    "  body bytea NOT NULL);"
    /* The bytes of uploads, with their records: any node serves what another received. */
    "CREATE TABLE file_blobs ("
    "  correlation_id text COLLATE \"C\" PRIMARY KEY"
    "    REFERENCES files(correlation_id) ON DELETE CASCADE,"
    "  body bytea NOT NULL);",
    /* 1 -> 2: fleet documents (docs/jobs.md, pg_docs.c): jobs, their per-device records and
     * configurations, each a JSON object under (collection, scope, id) with an etag counter. The
     * keys compare byte-wise, as SQLite's do, so both list in the same order. IF NOT EXISTS: a
     * schema whose version was set back by hand (as a test does) keeps the table it has. */
    "CREATE TABLE IF NOT EXISTS fleet_docs ("
    "  collection integer NOT NULL,"
    "  scope text COLLATE \"C\" NOT NULL,"
    "  id text COLLATE \"C\" NOT NULL,"
    "  etag bigint NOT NULL,"
    "  body text NOT NULL,"
    "  PRIMARY KEY (collection, scope, id));",
};

#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* Any constant: the advisory lock that serializes migrations of nodes starting together. */
#define MIGRATION_LOCK 0x696f74646dLL

int pg_schema_version(void)
{
    return SCHEMA_VERSION;
}

int64_t pg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- parameters ---- */

static void pp_add(pg_params *p, const char *value, int len, int format)
{
    if (p->n == PG_MAX_PARAMS)
        return; /* a programming error: pg_run refuses it (see the count check there) */
    p->values[p->n] = value;
    p->lengths[p->n] = len;
    p->formats[p->n] = format;
    p->n++;
}

void pp_text(pg_params *p, const char *text)
{
    pp_add(p, text, text ? (int)strlen(text) : 0, 1);
}

void pp_field(pg_params *p, const char *field, size_t cap)
{
    pp_add(p, field, (int)strnlen(field, cap - 1), 1);
}

void pp_textn(pg_params *p, const char *text, size_t len)
{
    pp_add(p, text, (int)len, 1);
}

void pp_bytes(pg_params *p, const void *bytes, size_t len)
{
    pp_add(p, len ? bytes : "", (int)len, 1);
}

void pp_int(pg_params *p, int64_t v)
{
    if (p->n == PG_MAX_PARAMS)
        return;
    snprintf(p->numbers[p->n], sizeof p->numbers[p->n], "%" PRId64, v);
    pp_add(p, p->numbers[p->n], 0, 0);
}

void pp_bool(pg_params *p, bool v)
{
    pp_add(p, v ? "t" : "f", 0, 0);
}

/* ---- connection ---- */

static void quiet_notices(void *arg, const char *message)
{
    (void)arg;
    log_debug("store", "postgresql notice: %s", message);
}

static bool conn_setup(pg_store *s)
{
    /* Durability is COMMIT's: a database or role that defaults synchronous_commit to off must not
     * make the hub acknowledge what a crash of the server would lose. */
    const char *setup = s->reader ? "SET synchronous_commit = on; "
                                    "SET default_transaction_read_only = on"
                                  : "SET synchronous_commit = on";
    PGresult *res = PQexec(s->conn, setup);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        log_error("store", "postgresql session setup failed: %s", PQerrorMessage(s->conn));
    PQclear(res);
    return ok;
}

static iotdm_result connect_now(pg_store *s)
{
    if (s->conn)
        PQfinish(s->conn);
    memset(s->prepared, 0, sizeof s->prepared);
    /* Defaults first: whatever the location says overrides them (libpq keeps the last value). */
    const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *const values[] = {"5", "iotdm-hub", s->conninfo, NULL};
    s->conn = PQconnectdbParams(keys, values, 1);
    if (!s->conn)
        return -ENOMEM;
    if (PQstatus(s->conn) != CONNECTION_OK) {
        /* libpq's message names host and port, never the password. */
        log_error("store", "cannot connect to postgresql: %s", PQerrorMessage(s->conn));
        PQfinish(s->conn);
        s->conn = NULL;
        s->next_connect_ms = mono_ms() + PG_RECONNECT_MS;
        return IOTDM_E_STORAGE;
    }
    PQsetNoticeProcessor(s->conn, quiet_notices, NULL);
    if (!conn_setup(s)) {
        PQfinish(s->conn);
        s->conn = NULL;
        s->next_connect_ms = mono_ms() + PG_RECONNECT_MS;
        return IOTDM_E_STORAGE;
    }
    return IOTDM_OK;
}

/* A usable connection, reconnecting after a loss (at most every PG_RECONNECT_MS). */
static iotdm_result ensure_conn(pg_store *s)
{
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
        return IOTDM_OK;
    if (mono_ms() < s->next_connect_ms)
        return IOTDM_E_STORAGE;
    iotdm_result r = connect_now(s);
    if (r == IOTDM_OK)
        log_info("store", "reconnected to postgresql host=%s port=%s", PQhost(s->conn),
                 PQport(s->conn));
    return r;
}

/* The connection went away: whatever the open group wrote is gone with it. */
static void conn_lost(pg_store *s)
{
    s->npending = 0;
    s->ndeferred = 0;
    s->locked_twin[0] = '\0';
    s->tel_copied = false;
    pg_twin_cache_clear(s);
    if (s->in_txn)
        s->txn_failed = true;
    s->in_txn = false;
    s->unit_savepoint = false;
    s->unit_failed = false;
    s->telemetry_bytes = -1;
    s->next_connect_ms = mono_ms() + PG_RECONNECT_MS;
}

/* Maps a failed result to iotdm_result and records what the failure did to the transaction. */
static iotdm_result failure(pg_store *s, PGresult *res, const char *what)
{
    if (PQstatus(s->conn) != CONNECTION_OK) {
        log_error("store", "postgresql connection lost op=%s: %s", what, PQerrorMessage(s->conn));
        conn_lost(s);
        return IOTDM_E_STORAGE;
    }
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!state)
        state = "";
    if (s->in_txn && PQtransactionStatus(s->conn) == PQTRANS_IDLE) {
        s->in_txn = false; /* the BEGIN sent ahead of the statement did not take */
        s->txn_failed = true;
    } else if (s->in_txn) {
        if (s->unit_savepoint)
            s->unit_failed = true; /* unit_end rolls back to the unit's savepoint */
        else
            s->txn_failed = true;
    }
    /* Another node's group holds what this one waits for while it waits for ours (a deadlock
     * PostgreSQL broke by failing this statement), or a serialization failure: the unit can run
     * again once its savepoint has undone it (pg_unit_end, work.c). */
    bool conflict = strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0;
    if (conflict && s->in_txn && s->unit_savepoint)
        s->unit_conflict = true;
    /* 25P02: a statement after an earlier failure in the same transaction; that one was logged. */
    if (strcmp(state, "25P02") != 0)
        log_error("store", "postgresql failed op=%s sqlstate=%s error=\"%s\"", what, state,
                  res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : PQerrorMessage(s->conn));
    if (conflict)
        return IOTDM_E_CONFLICT;
    if (strcmp(state, "23505") == 0)
        return IOTDM_E_EXISTS;
    if (strcmp(state, "23503") == 0)
        return IOTDM_E_NOT_FOUND;
    if (strcmp(state, "53100") == 0)
        return -ENOSPC;
    if (strcmp(state, "53200") == 0)
        return -ENOMEM;
    return IOTDM_E_STORAGE;
}

static PGresult *run_pipelined(pg_store *s, const char *name, const char *sql, int n,
                               const char *const *values, const int *lengths, const int *formats,
                               iotdm_result *out_r);

/* Sends what waits, alone, in one round trip. A failure marks the transaction (failure()). */
static iotdm_result flush_pending(pg_store *s)
{
    iotdm_result r;
    PQclear(run_pipelined(s, NULL, NULL, 0, NULL, NULL, NULL, &r));
    return r;
}

/* Queues a transaction-control command for the next round trip (texts are constants). */
static void defer(pg_store *s, const char *sql)
{
    if (s->npending == PG_PENDING_MAX)
        (void)!flush_pending(s); /* many units in a row, each with its deferred write */
    s->pending_deferred[s->npending] = -1;
    s->pending[s->npending++] = sql;
}

/* A statement without parameters or rows (transaction control), by the simple protocol, after
 * the commands waiting for a round trip (all in one: the simple protocol takes several). */
static iotdm_result exec_simple(pg_store *s, const char *sql)
{
    iotdm_result r = ensure_conn(s);
    if (r != IOTDM_OK)
        return r;
    if (s->ndeferred > 0) {
        /* A write with parameters waits: the extended protocol, in one pipeline. */
        PQclear(run_pipelined(s, NULL, sql, 0, NULL, NULL, NULL, &r));
        return r;
    }
    char text[512]; /* the waiting commands are short constants */
    if (s->npending) {
        size_t len = 0;
        for (int i = 0; i < s->npending; i++)
            len += (size_t)snprintf(text + len, sizeof text - len, "%s; ", s->pending[i]);
        s->npending = 0;
        if (len + strlen(sql) >= sizeof text) {
            PGresult *first = PQexec(s->conn, text);
            ExecStatusType fst = PQresultStatus(first);
            r = fst == PGRES_COMMAND_OK || fst == PGRES_TUPLES_OK ? IOTDM_OK
                                                                  : failure(s, first, text);
            PQclear(first);
            if (r != IOTDM_OK)
                return r;
        } else {
            snprintf(text + len, sizeof text - len, "%s", sql);
            sql = text;
        }
    }
    PGresult *res = PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    r = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? IOTDM_OK : failure(s, res, sql);
    PQclear(res);
    return r;
}

static void stmt_name(pg_stmt_id id, char name[16])
{
    snprintf(name, 16, "iotdm_%d", (int)id);
}

/* A deferred write's outcome, once its result came: it had to touch exactly one row. */
static iotdm_result deferred_outcome(pg_store *s, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    iotdm_result r = IOTDM_OK;
    if (st != PGRES_COMMAND_OK)
        r = failure(s, res, "deferred write");
    else if (strcmp(PQcmdTuples(res), "1") != 0) {
        log_error("store", "postgresql deferred write touched %s rows, not 1", PQcmdTuples(res));
        r = IOTDM_E_STORAGE;
    }
    if (r != IOTDM_OK && s->in_txn)
        s->txn_failed = true; /* its unit has ended: only the whole group can fail now */
    return r;
}

/* The waiting statements and, unless name and sql are both NULL, one more (prepared: name; else
 * text sql) in one round trip, through libpq's pipeline mode. An error in one makes PostgreSQL
 * skip the rest; the first error is the one reported. Returns the last statement's result (NULL
 * when there is none, or on failure). */
static PGresult *run_pipelined(pg_store *s, const char *name, const char *sql, int n,
                               const char *const *values, const int *lengths, const int *formats,
                               iotdm_result *out_r)
{
    PGconn *c = s->conn;
    int sent = s->npending;
    bool last = name || sql;
    const char *what = name ? name : "statement";
    s->npending = 0;
    s->ndeferred = 0; /* their copies stay valid until the next pg_exec_deferred */
    bool ok = PQenterPipelineMode(c) == 1;
    for (int i = 0; ok && i < sent; i++) {
        if (s->pending_deferred[i] >= 0) {
            const pg_deferred *d = &s->deferred[s->pending_deferred[i]];
            char dname[16];
            stmt_name(d->id, dname);
            ok = PQsendQueryPrepared(c, dname, d->params.n, d->params.values, d->params.lengths,
                                     d->params.formats, 0) == 1;
        } else {
            ok = PQsendQueryParams(c, s->pending[i], 0, NULL, NULL, NULL, NULL, 0) == 1;
        }
    }
    if (ok && last)
        ok = name ? PQsendQueryPrepared(c, name, n, values, lengths, formats, 0) == 1
                  : PQsendQueryParams(c, sql, n, NULL, values, lengths, formats, 0) == 1;
    if (ok)
        ok = PQpipelineSync(c) == 1;
    if (!ok) {
        log_error("store", "postgresql pipeline failed: %s", PQerrorMessage(c));
        PQfinish(s->conn);
        s->conn = NULL;
        conn_lost(s);
        *out_r = IOTDM_E_STORAGE;
        return NULL;
    }
    *out_r = IOTDM_OK;
    PGresult *out = NULL;
    int total = sent + (last ? 1 : 0);
    for (int i = 0; i < total; i++) {
        PGresult *res = PQgetResult(c);
        if (!res) {
            *out_r = failure(s, NULL, what); /* the connection went away */
            break;
        }
        ExecStatusType st = PQresultStatus(res);
        bool good = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
        if (i < sent && s->pending_deferred[i] >= 0 && st != PGRES_PIPELINE_ABORTED) {
            iotdm_result dr = deferred_outcome(s, res);
            if (*out_r == IOTDM_OK)
                *out_r = dr;
        } else if (!good && *out_r == IOTDM_OK && st != PGRES_PIPELINE_ABORTED) {
            *out_r = failure(s, res, i < sent ? s->pending[i] : what);
        }
        if (good && last && i == total - 1 && *out_r == IOTDM_OK)
            out = res;
        else
            PQclear(res);
        PGresult *end;
        while ((end = PQgetResult(c)) != NULL) /* each query's results end with a NULL */
            PQclear(end);
    }
    if (*out_r == IOTDM_OK || (s->conn && PQstatus(s->conn) == CONNECTION_OK)) {
        PGresult *sync = PQgetResult(c); /* PGRES_PIPELINE_SYNC */
        PQclear(sync);
        PQexitPipelineMode(c);
    }
    if (*out_r != IOTDM_OK) {
        PQclear(out);
        return NULL;
    }
    return out;
}

/* Prepares statement id on this connection at its first use. */
static iotdm_result ensure_prepared(pg_store *s, pg_stmt_id id, const char *sql)
{
    if (s->prepared[id])
        return IOTDM_OK;
    char name[16];
    stmt_name(id, name);
    PGresult *prep = PQprepare(s->conn, name, sql, 0, NULL);
    iotdm_result r = IOTDM_OK;
    if (PQresultStatus(prep) != PGRES_COMMAND_OK)
        r = failure(s, prep, "prepare");
    else
        s->prepared[id] = true;
    PQclear(prep);
    return r;
}

PGresult *pg_run(pg_store *s, pg_stmt_id id, const char *sql, const pg_params *p,
                 iotdm_result *out_r)
{
    static const pg_params none;
    if (!p)
        p = &none;
    *out_r = ensure_conn(s);
    if (*out_r == IOTDM_OK)
        *out_r = ensure_prepared(s, id, sql);
    if (*out_r != IOTDM_OK)
        return NULL;
    char name[16];
    stmt_name(id, name);
    if (s->npending)
        return run_pipelined(s, name, NULL, p->n, p->values, p->lengths, p->formats, out_r);
    PGresult *res = PQexecPrepared(s->conn, name, p->n, p->values, p->lengths, p->formats, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        *out_r = failure(s, res, sql);
        PQclear(res);
        return NULL;
    }
    *out_r = IOTDM_OK;
    return res;
}

PGresult *pg_run_text(pg_store *s, const char *sql, int n, const char *const *values,
                      iotdm_result *out_r)
{
    return pg_run_params(s, sql, n, values, NULL, NULL, out_r);
}

PGresult *pg_run_params(pg_store *s, const char *sql, int n, const char *const *values,
                        const int *lengths, const int *formats, iotdm_result *out_r)
{
    *out_r = ensure_conn(s);
    if (*out_r != IOTDM_OK)
        return NULL;
    if (s->npending)
        return run_pipelined(s, NULL, sql, n, values, lengths, formats, out_r);
    PGresult *res = PQexecParams(s->conn, sql, n, NULL, values, lengths, formats, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        *out_r = failure(s, res, "dynamic statement");
        PQclear(res);
        return NULL;
    }
    return res;
}

/* The waiting commands and a COPY … FROM STDIN in one simple-protocol round trip (libpq's
 * PQexec stops at the COPY and hands it over), then the data, then the COPY's outcome. COPY has
 * no place in pipeline mode, and the simple protocol takes several statements in one message. */
iotdm_result pg_copy_in(pg_store *s, const char *copy_sql, const pg_copy_chunk_fn next, void *ctx)
{
    iotdm_result r = ensure_conn(s);
    if (r == IOTDM_OK && s->ndeferred > 0)
        r = flush_pending(s); /* a write with parameters cannot go in a simple query */
    if (r != IOTDM_OK)
        return r;
    char text[512]; /* the waiting commands are short constants, and so is the COPY */
    size_t len = 0;
    for (int i = 0; i < s->npending; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%s; ", s->pending[i]);
    s->npending = 0;
    if ((size_t)snprintf(text + len, sizeof text - len, "%s", copy_sql) >= sizeof text - len)
        return IOTDM_E_STORAGE; /* a programming error: the texts are constants */
    PGresult *res = PQexec(s->conn, text);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        r = failure(s, res, "copy");
        PQclear(res);
        return r;
    }
    PQclear(res);
    const char *chunk;
    size_t chunk_len;
    int more;
    bool sent = true;
    while (sent && (more = next(ctx, &chunk, &chunk_len)) > 0)
        sent = PQputCopyData(s->conn, chunk, (int)chunk_len) == 1;
    bool complete = sent && more == 0;
    /* Ended with an error unless every piece went: the server then keeps none of it. */
    if (PQputCopyEnd(s->conn, complete ? NULL : "iotdm: the rows could not be made or sent") != 1)
        complete = false;
    r = IOTDM_OK;
    while ((res = PQgetResult(s->conn)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && r == IOTDM_OK)
            r = failure(s, res, "copy");
        PQclear(res);
    }
    if (r == IOTDM_OK && !complete)
        r = failure(s, NULL, "copy"); /* cannot normally be reached: the server refused it */
    return r;
}

PGresult *pg_select(pg_store *s, pg_stmt_id id, const char *sql, const pg_params *p,
                    iotdm_result *out_r)
{
    *out_r = pg_read_begin(s);
    return *out_r == IOTDM_OK ? pg_run(s, id, sql, p, out_r) : NULL;
}

iotdm_result pg_exec(pg_store *s, pg_stmt_id id, const char *sql, const pg_params *p,
                     uint64_t *out_count)
{
    iotdm_result r;
    PGresult *res = pg_run(s, id, sql, p, &r);
    if (!res)
        return r;
    if (out_count) {
        const char *n = PQcmdTuples(res);
        *out_count = n && n[0] ? strtoull(n, NULL, 10) : 0;
    }
    PQclear(res);
    return IOTDM_OK;
}

iotdm_result pg_exec_row(pg_store *s, pg_stmt_id id, const char *sql, const pg_params *p)
{
    uint64_t n = 0;
    iotdm_result r = pg_exec(s, id, sql, p, &n);
    return r == IOTDM_OK && n == 0 ? IOTDM_E_NOT_FOUND : r;
}

iotdm_result pg_exec_deferred(pg_store *s, pg_stmt_id id, const char *sql, const pg_params *p)
{
    if (!s->in_txn)
        return pg_exec_row(s, id, sql, p);
    iotdm_result r = ensure_conn(s);
    if (r == IOTDM_OK)
        r = ensure_prepared(s, id, sql);
    if (r == IOTDM_OK && (s->ndeferred == PG_DEFERRED_MAX || s->npending == PG_PENDING_MAX))
        r = flush_pending(s);
    if (r != IOTDM_OK)
        return r;
    pg_deferred *slot = &s->deferred[s->ndeferred];
    /* The copy's bytes: numbers and booleans are NUL-terminated texts, the rest has its length. */
    size_t need = 0, len[PG_MAX_PARAMS];
    for (int i = 0; i < p->n; i++) {
        len[i] = !p->values[i]   ? 0
                 : p->formats[i] ? (size_t)p->lengths[i]
                                 : strlen(p->values[i]) + 1;
        need += len[i];
    }
    if (need > slot->cap) {
        char *buf = xrealloc(slot->buf, need);
        if (!buf)
            return -ENOMEM;
        slot->buf = buf;
        slot->cap = need;
    }
    pg_params *d = &slot->params;
    *d = *p;
    size_t off = 0;
    for (int i = 0; i < p->n; i++) {
        if (!p->values[i])
            continue;
        memcpy(slot->buf + off, p->values[i], len[i]);
        d->values[i] = slot->buf + off;
        off += len[i];
    }
    slot->id = id;
    s->pending_deferred[s->npending] = (signed char)s->ndeferred++;
    s->pending[s->npending++] = sql; /* its text, for the logs */
    return IOTDM_OK;
}

/* ---- transactions ---- */

iotdm_result pg_write_begin(pg_store *s)
{
    if (s->reader)
        return IOTDM_E_INTERNAL; /* a reader handle never writes */
    if (s->txn_failed || s->unit_failed)
        return IOTDM_E_STORAGE; /* the transaction refuses statements until it is rolled back */
    if (!s->in_txn) {
        iotdm_result r = ensure_conn(s);
        if (r != IOTDM_OK)
            return r;
        defer(s, "BEGIN"); /* goes with the first statement; a failure shows there */
        s->in_txn = true;
    }
    return pg_read_begin(s);
}

iotdm_result pg_read_begin(pg_store *s)
{
    if (s->in_txn && s->unit_open && !s->unit_savepoint) {
        /* From here the unit's statements can be undone, and an error in one of them does not
         * fail the group's transaction. */
        defer(s, "SAVEPOINT unit");
        s->unit_savepoint = true;
    }
    return IOTDM_OK;
}

iotdm_result pg_savepoint(pg_store *s)
{
    iotdm_result r = pg_write_begin(s);
    if (r == IOTDM_OK)
        defer(s, "SAVEPOINT store_op");
    return r;
}

iotdm_result pg_savepoint_end(pg_store *s, iotdm_result outcome)
{
    if (!s->in_txn)
        return outcome == IOTDM_OK ? IOTDM_E_STORAGE : outcome; /* the connection went away */
    bool unit_failed = s->unit_failed, txn_failed = s->txn_failed;
    if (outcome != IOTDM_OK || unit_failed || txn_failed) {
        s->locked_twin[0] = '\0'; /* the rollback releases the lock and undoes the writes */
        pg_twin_cache_clear(s);
        iotdm_result rb = exec_simple(s, "ROLLBACK TO SAVEPOINT store_op");
        if (rb == IOTDM_OK) {
            /* The failure was inside this savepoint: the transaction is usable again. */
            s->unit_failed = false;
            s->txn_failed = false;
        }
        if (outcome == IOTDM_OK)
            outcome = IOTDM_E_STORAGE;
    }
    defer(s, "RELEASE SAVEPOINT store_op");
    return outcome;
}

static iotdm_result pg_unit_begin(hub_store *base)
{
    pg_store *s = (pg_store *)base;
    /* Between units the batch can go without touching a unit's savepoint. A failure fails the
     * group (pg_telemetry_flush), which this unit then learns at the commit. */
    if (s->tel.used >= PG_TEL_BATCH_BYTES && !s->txn_failed && !s->unit_failed)
        (void)!pg_telemetry_flush(s);
    s->unit_open = true;
    s->unit_conflict = false;
    s->locked_twin[0] = '\0';
    s->unit_savepoint = false; /* taken by the unit's first statement inside the group */
    s->unit_failed = false;
    s->unit_tel_mark = s->tel.n;
    s->unit_flushed = false;
    return IOTDM_OK;
}

static iotdm_result pg_unit_end(hub_store *base, iotdm_result outcome)
{
    pg_store *s = (pg_store *)base;
    bool had_savepoint = s->unit_savepoint, failed = s->unit_failed;
    s->unit_open = false;
    s->locked_twin[0] = '\0'; /* a later unit reads the twin again before writing it */
    s->unit_savepoint = false;
    s->unit_failed = false;
    if (outcome != IOTDM_OK || failed) {
        pg_twin_cache_clear(s); /* it may hold what the unit wrote, and its locks */
        /* The unit's telemetry is not inserted. Rows of earlier units that a read inside this
         * unit flushed would go with its savepoint: then the group cannot commit as it is. */
        pg_telemetry_batch_truncate(s, s->unit_tel_mark);
        if (s->unit_flushed)
            s->txn_failed = true;
    }
    if (!had_savepoint || !s->in_txn)
        return outcome; /* nothing written, or the group is lost (txn_failed says so) */
    if (outcome != IOTDM_OK || failed) {
        defer(s, "ROLLBACK TO SAVEPOINT unit");
        if (outcome == IOTDM_OK)
            outcome = IOTDM_E_STORAGE; /* a statement failed and the unit went on regardless */
        if (s->unit_conflict)
            outcome = IOTDM_E_CONFLICT; /* whatever the op made of it: it may run again */
    }
    s->unit_conflict = false;
    /* Sent with the next statement or the COMMIT: an error there fails the whole group, which
     * then acknowledges nothing. */
    defer(s, "RELEASE SAVEPOINT unit");
    return outcome;
}

static iotdm_result pg_group_commit(hub_store *base)
{
    pg_store *s = (pg_store *)base;
    s->locked_twin[0] = '\0';
    pg_twin_cache_clear(s); /* the locks go with the transaction */
    if (s->in_txn && !s->txn_failed && !s->unit_failed && s->tel.n > 0)
        (void)!pg_telemetry_flush(s); /* a failure marks the group failed */
    if (s->txn_failed || s->unit_failed) {
        pg_telemetry_batch_truncate(s, 0);
        s->npending = 0;
        s->ndeferred = 0;
        if (s->in_txn)
            (void)!exec_simple(s, "ROLLBACK"); /* the failure is what we report */
        s->in_txn = false;
        s->txn_failed = false;
        s->unit_failed = false;
        s->telemetry_bytes = -1;
        s->tel_copied = false;
        return IOTDM_E_STORAGE;
    }
    if (!s->in_txn)
        return IOTDM_OK;
    iotdm_result r;
    if (s->tel_copied) {
        /* The sequence's new last value comes back with the COMMIT, in the same round trip:
         * the hub asks for it after every group (pg_telemetry_last_seq). */
        s->tel_copied = false;
        defer(s, "COMMIT");
        PGresult *res = pg_run(s, PQ_TELEMETRY_LAST_SEQ, PG_TELEMETRY_LAST_SEQ_SQL, NULL, &r);
        s->last_seq = res ? pg_int(res, 0, 0) : -1;
        PQclear(res);
    } else {
        r = exec_simple(s, "COMMIT");
    }
    if (r != IOTDM_OK) {
        /* The group is lost (a failed COMMIT rolls back). Nothing was acknowledged. */
        if (s->conn && PQstatus(s->conn) == CONNECTION_OK &&
            PQtransactionStatus(s->conn) != PQTRANS_IDLE)
            (void)!exec_simple(s, "ROLLBACK");
        s->telemetry_bytes = -1;
        r = r == -ENOSPC ? r : IOTDM_E_STORAGE;
    }
    s->in_txn = false;
    s->txn_failed = false;
    return r;
}

static bool pg_has_pending_writes(const hub_store *base)
{
    const pg_store *s = (const pg_store *)base;
    return s->in_txn || s->txn_failed || s->tel.n > 0;
}

/* COMMIT returned after PostgreSQL flushed the group (synchronous_commit = on). */
static iotdm_result pg_durable(hub_store *base)
{
    (void)base;
    return IOTDM_OK;
}

static bool pg_quiesce_wanted(hub_store *base)
{
    (void)base;
    return false;
}

/* ---- schema ---- */

static iotdm_result schema_version(pg_store *s, int *out)
{
    *out = 0;
    PGresult *res = PQexec(s->conn, "SELECT to_regclass('iotdm_schema') IS NOT NULL");
    iotdm_result r = PQresultStatus(res) == PGRES_TUPLES_OK ? IOTDM_OK : failure(s, res, "schema");
    bool exists = r == IOTDM_OK && pg_bool(res, 0, 0);
    PQclear(res);
    if (r != IOTDM_OK || !exists)
        return r;
    res = PQexec(s->conn, "SELECT version FROM iotdm_schema");
    r = PQresultStatus(res) == PGRES_TUPLES_OK ? IOTDM_OK : failure(s, res, "schema");
    if (r == IOTDM_OK && PQntuples(res) == 1)
        *out = (int)pg_int(res, 0, 0);
    PQclear(res);
    return r;
}

static iotdm_result migrate(pg_store *s)
{
    iotdm_result r = exec_simple(s, "BEGIN");
    if (r != IOTDM_OK)
        return r;
    /* Nodes starting together: the first migrates, the others wait here and find it done. */
    char lock[64];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%lld)", (long long)MIGRATION_LOCK);
    r = exec_simple(s, lock);
    int version = 0;
    if (r == IOTDM_OK)
        r = schema_version(s, &version);
    if (r == IOTDM_OK && (version < 0 || version > SCHEMA_VERSION)) {
        log_error("store", "database schema is newer than this hub version=%d known=%d", version,
                  SCHEMA_VERSION);
        r = IOTDM_E_UNSUPPORTED;
    }
    if (r == IOTDM_OK && version == 0)
        r = exec_simple(s, "CREATE TABLE iotdm_schema (version integer NOT NULL);"
                           "INSERT INTO iotdm_schema VALUES (0)");
    for (int v = version; r == IOTDM_OK && v < SCHEMA_VERSION; v++) {
        r = exec_simple(s, migrations[v]);
        if (r == IOTDM_OK) {
            char sql[64]; /* an integer we produce, never input */
            snprintf(sql, sizeof sql, "UPDATE iotdm_schema SET version = %d", v + 1);
            r = exec_simple(s, sql);
        }
        if (r == IOTDM_OK)
            log_info("store", "schema migrated backend=postgresql version=%d", v + 1);
    }
    iotdm_result e = exec_simple(s, r == IOTDM_OK ? "COMMIT" : "ROLLBACK");
    return r != IOTDM_OK ? r : e;
}

/* ---- open and close ---- */

static void pg_close(hub_store *base);
static iotdm_result pg_open_reader(hub_store *base, hub_store **out_reader);

static const hub_store_ops postgresql_ops = {
    .name = "postgresql",
    .close = pg_close,
    .unit_begin = pg_unit_begin,
    .unit_end = pg_unit_end,
    .group_commit = pg_group_commit,
    .has_pending_writes = pg_has_pending_writes,
    .durable = pg_durable,
    .quiesce_wanted = pg_quiesce_wanted,
    .open_reader = pg_open_reader,
    .policy_put = pg_policy_put,
    .policy_get = pg_policy_get,
    .policy_count = pg_policy_count,
    .device_create = pg_device_create,
    .device_get = pg_device_get,
    .device_update = pg_device_update,
    .device_delete = pg_device_delete,
    .device_set_connection = pg_device_set_connection,
    .device_set_activity = pg_device_set_activity,
    .device_foreach = pg_device_foreach,
    .device_stats = pg_device_stats,
    .device_disconnect_all = pg_device_disconnect_all,
    .set_node = pg_set_node,
    .device_disconnect_node = pg_device_disconnect_node,
    .twin_get = pg_twin_get,
    .twin_get_sections = pg_twin_get_sections,
    .twin_put = pg_twin_put,
    .twin_texts = pg_twin_texts,
    .twin_foreach = pg_twin_foreach,
    .query_page = pg_query_page,
    .c2d_enqueue = pg_c2d_enqueue,
    .c2d_foreach = pg_c2d_foreach,
    .c2d_mark_delivered = pg_c2d_mark_delivered,
    .c2d_complete = pg_c2d_complete,
    .c2d_purge = pg_c2d_purge,
    .c2d_count = pg_c2d_count,
    .c2d_expire = pg_c2d_expire,
    .telemetry_append = pg_telemetry_append,
    .telemetry_foreach = pg_telemetry_foreach,
    .telemetry_last_seq = pg_telemetry_last_seq,
    .telemetry_trim = pg_telemetry_trim,
    .file_create = pg_file_create,
    .file_get = pg_file_get,
    .file_update = pg_file_update,
    .file_delete = pg_file_delete,
    .file_find = pg_file_find,
    .file_foreach = pg_file_foreach,
    .file_active = pg_file_active,
    .file_usage = pg_file_usage,
    .file_prune = pg_file_prune,
    .file_bytes_put = pg_file_bytes_put,
    .file_bytes_get = pg_file_bytes_get,
    .session_put = pg_session_put,
    .session_get = pg_session_get,
    .session_delete = pg_session_delete,
    .enrollment_put = pg_enrollment_put,
    .enrollment_get = pg_enrollment_get,
    .enrollment_delete = pg_enrollment_delete,
    .enrollment_foreach = pg_enrollment_foreach,
    .registration_put = pg_registration_put,
    .registration_get = pg_registration_get,
    .registration_delete = pg_registration_delete,
    .registration_foreach = pg_registration_foreach,
    .dps_operation_put = pg_dps_operation_put,
    .dps_operation_get = pg_dps_operation_get,
    .dps_operation_prune = pg_dps_operation_prune,
    .tpm_challenge_put = pg_tpm_challenge_put,
    .tpm_challenge_get = pg_tpm_challenge_get,
    .tpm_challenge_prune = pg_tpm_challenge_prune,
    .doc_put = pg_doc_put,
    .doc_get = pg_doc_get,
    .doc_delete = pg_doc_delete,
    .doc_foreach = pg_doc_foreach,
    .doc_delete_scope = pg_doc_delete_scope,
    .doc_count = pg_doc_count,
};

static pg_store *pg_new(const char *conninfo, bool reader)
{
    pg_store *s = xcalloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->base.ops = &postgresql_ops;
    s->reader = reader;
    s->telemetry_bytes = -1;
    s->last_seq = -1;
    snprintf(s->conninfo, sizeof s->conninfo, "%s", conninfo);
    return s;
}

iotdm_result hub_store_postgresql_open(const char *conninfo, hub_store **out_store)
{
    *out_store = NULL;
    if (strlen(conninfo) >= PG_CONNINFO_MAX)
        return IOTDM_E_TOO_LARGE;
    pg_store *s = pg_new(conninfo, false);
    if (!s)
        return -ENOMEM;
    iotdm_result r = connect_now(s);
    if (r == IOTDM_OK && PQserverVersion(s->conn) < 130000) {
        log_error("store", "postgresql %d is too old: 13 or newer is needed",
                  PQserverVersion(s->conn) / 10000);
        r = IOTDM_E_UNSUPPORTED;
    }
    if (r == IOTDM_OK)
        r = migrate(s);
    if (r == IOTDM_OK)
        r = pg_telemetry_partitions(s, pg_now_ms());
    if (r == IOTDM_OK)
        r = pg_group_commit(&s->base);
    if (r != IOTDM_OK) {
        log_error("store", "cannot open postgresql store result=%s", iotdm_result_name(r));
        pg_close(&s->base);
        return r == IOTDM_E_UNSUPPORTED || r == -ENOMEM ? r : IOTDM_E_STORAGE;
    }
    log_info("store", "postgresql store open host=%s port=%s database=%s schema=%d",
             PQhost(s->conn), PQport(s->conn), PQdb(s->conn), SCHEMA_VERSION);
    *out_store = &s->base;
    return IOTDM_OK;
}

/* A second connection for long reads on another thread: each statement sees what was committed
 * when it started, and never takes a write lock. */
static iotdm_result pg_open_reader(hub_store *base, hub_store **out_reader)
{
    pg_store *w = (pg_store *)base;
    pg_store *s = pg_new(w->conninfo, true);
    if (!s)
        return -ENOMEM;
    iotdm_result r = connect_now(s);
    if (r != IOTDM_OK) {
        pg_close(&s->base);
        return r;
    }
    *out_reader = &s->base;
    return IOTDM_OK;
}

static void pg_close(hub_store *base)
{
    pg_store *s = (pg_store *)base;
    if (!s)
        return;
    /* An open group is rolled back by closing: by contract it was never acknowledged. */
    if (s->conn)
        PQfinish(s->conn);
    pg_telemetry_batch_free(s);
    for (int i = 0; i < PG_JSON_BUFS; i++)
        hub_json_buf_free(&s->json[i]);
    for (int i = 0; i < PG_DEFERRED_MAX; i++)
        xfree(s->deferred[i].buf);
    pg_twin_cache_clear(s);
    xfree(s);
}

/* ---- shared helpers ---- */

void pg_copy(const PGresult *res, int row, int col, char *dst, size_t cap)
{
    size_t n = 0;
    if (row < PQntuples(res) && col < PQnfields(res) && !PQgetisnull(res, row, col)) {
        n = (size_t)PQgetlength(res, row, col);
        if (n >= cap)
            n = cap - 1;
        memcpy(dst, PQgetvalue(res, row, col), n);
    }
    dst[n] = '\0';
}

int64_t pg_int(const PGresult *res, int row, int col)
{
    if (row >= PQntuples(res) || col >= PQnfields(res) || PQgetisnull(res, row, col))
        return 0;
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

bool pg_bool(const PGresult *res, int row, int col)
{
    if (row >= PQntuples(res) || col >= PQnfields(res) || PQgetisnull(res, row, col))
        return false;
    return PQgetvalue(res, row, col)[0] == 't';
}

json_t *pg_json(const PGresult *res, int row, int col)
{
    if (PQgetisnull(res, row, col))
        return json_object();
    json_error_t err;
    json_t *j = json_loadb(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col), 0, &err);
    if (!j)
        log_error("store", "corrupt JSON in database column=%s error=\"%s\"", PQfname(res, col),
                  err.text);
    return j;
}

unsigned char *pg_bytes(const PGresult *res, int row, int col, size_t *out_len, bool *out_ok)
{
    *out_len = 0;
    *out_ok = true;
    if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) <= 2)
        return NULL; /* NULL, or "\x": empty */
    size_t n = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col), &n);
    if (!raw) {
        *out_ok = false;
        return NULL;
    }
    unsigned char *copy = xmalloc(n ? n : 1);
    if (copy)
        memcpy(copy, raw, n);
    PQfreemem(raw);
    if (!copy) {
        *out_ok = false;
        return NULL;
    }
    *out_len = n;
    return copy;
}

iotdm_result pg_dump(pg_store *s, int slot, const json_t *json, const char **out_text,
                     size_t *out_len)
{
    return hub_json_buf_dump(&s->json[slot], json, out_text, out_len);
}

bool pg_id_ok(const char *id)
{
    return id && id[0] && strnlen(id, HUB_ID_MAX) < HUB_ID_MAX;
}

bool pg_fold_id(const char *id, char out[HUB_ID_MAX])
{
    if (!pg_id_ok(id))
        return false;
    size_t i = 0;
    for (; id[i]; i++)
        out[i] = id[i] >= 'A' && id[i] <= 'Z' ? (char)(id[i] - 'A' + 'a') : id[i];
    out[i] = '\0';
    return true;
}
