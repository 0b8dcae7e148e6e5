/* The durable outbox: reported patches and telemetry in SQLite (WAL, synchronous=FULL). */
#include "client/outbox.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/alloc.h"

enum {
    ST_ADD_REPORTED,
    ST_PEEK_REPORTED,
    ST_DEL_REPORTED,
    ST_ADD_TELEMETRY,
    ST_NEXT_TELEMETRY,
    ST_DEL_TELEMETRY,
    ST_OLDEST_TELEMETRY,
    ST_GET_APPLIED,
    ST_SET_APPLIED,
    ST_CLEAR_APPLIED,
    ST_COUNT
};

static const char *const sql_text[ST_COUNT] = {
    [ST_ADD_REPORTED] = "INSERT INTO reported(patch) VALUES(?)",
    [ST_PEEK_REPORTED] = "SELECT seq, patch FROM reported ORDER BY seq LIMIT 1",
    [ST_DEL_REPORTED] = "DELETE FROM reported WHERE seq = ?",
    [ST_ADD_TELEMETRY] = "INSERT INTO telemetry(created_ms, bag, body, size) VALUES(?, ?, ?, ?)",
    [ST_NEXT_TELEMETRY] = "SELECT seq, bag, body FROM telemetry WHERE seq > ? ORDER BY seq LIMIT 1",
    [ST_DEL_TELEMETRY] = "DELETE FROM telemetry WHERE seq = ? RETURNING size",
    [ST_OLDEST_TELEMETRY] = "SELECT seq, size FROM telemetry ORDER BY seq LIMIT 1",
    [ST_GET_APPLIED] = "SELECT version, ac, value, ad FROM applied "
                       "WHERE component = ? AND property = ?",
    [ST_SET_APPLIED] =
        "INSERT OR REPLACE INTO applied(component, property, version, ac, value, ad) "
        "VALUES(?, ?, ?, ?, ?, ?)",
    [ST_CLEAR_APPLIED] = "DELETE FROM applied WHERE component = ? AND property = ?",
};

/* AUTOINCREMENT keeps sequence numbers growing even after the table empties, so "seq > last sent"
 * never picks up an old number again. */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS reported(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " patch TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS telemetry(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " created_ms INTEGER NOT NULL, bag TEXT NOT NULL, body BLOB NOT NULL, size INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS telemetry_created ON telemetry(created_ms);"
    "CREATE TABLE IF NOT EXISTS applied(component TEXT NOT NULL, property TEXT NOT NULL,"
    " version INTEGER NOT NULL, ac INTEGER NOT NULL, value TEXT NOT NULL, ad TEXT NOT NULL,"
    " PRIMARY KEY(component, property));";

struct outbox {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    size_t max_bytes;
    int64_t max_age_ms;
    size_t reported;
    size_t telemetry;
    size_t telemetry_bytes;
    size_t dropped;
    int depth; /* outbox_begin nesting */
};

static sqlite3_stmt *stmt(outbox *ob, int which)
{
    if (!ob->st[which] &&
        sqlite3_prepare_v2(ob->db, sql_text[which], -1, &ob->st[which], NULL) != SQLITE_OK)
        return NULL;
    sqlite3_reset(ob->st[which]);
    sqlite3_clear_bindings(ob->st[which]);
    return ob->st[which];
}

/* Runs a statement that returns no rows (or whose rows are ignored). */
static iotdm_result step_done(sqlite3_stmt *s)
{
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        ;
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? IOTDM_OK : IOTDM_E_STORAGE;
}

static iotdm_result exec(outbox *ob, const char *sql)
{
    return sqlite3_exec(ob->db, sql, NULL, NULL, NULL) == SQLITE_OK ? IOTDM_OK : IOTDM_E_STORAGE;
}

static int64_t query_int(outbox *ob, const char *sql)
{
    sqlite3_stmt *s = NULL;
    int64_t v = 0;
    if (sqlite3_prepare_v2(ob->db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static iotdm_result open_db(outbox *ob, const char *state_dir, char *err, size_t err_cap)
{
    if (mkdir(state_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, err_cap, "cannot create state directory %s: %s", state_dir, strerror(errno));
        return -errno;
    }
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/outbox.db", state_dir);
    if (n < 0 || (size_t)n >= sizeof path) {
        snprintf(err, err_cap, "state directory path too long");
        return IOTDM_E_TOO_LARGE;
    }
    /* NOMUTEX: the client's lock already serializes every call. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(path, &ob->db, flags, NULL) != SQLITE_OK) {
        snprintf(err, err_cap, "cannot open %s: %s", path,
                 ob->db ? sqlite3_errmsg(ob->db) : "out of memory");
        return IOTDM_E_STORAGE;
    }
    sqlite3_busy_timeout(ob->db, 5000);
    if (exec(ob, "PRAGMA journal_mode=WAL") < 0 || exec(ob, "PRAGMA synchronous=FULL") < 0 ||
        exec(ob, schema) < 0) {
        snprintf(err, err_cap, "cannot initialise %s: %s", path, sqlite3_errmsg(ob->db));
        return IOTDM_E_STORAGE;
    }
    return IOTDM_OK;
}

iotdm_result outbox_open(const char *state_dir, size_t max_bytes, int64_t max_age_ms,
                         outbox **out_ob, char *err, size_t err_cap)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        err_cap = sizeof dummy;
    }
    *out_ob = NULL;
    outbox *ob = xcalloc(1, sizeof *ob);
    if (!ob)
        return -ENOMEM;
    ob->max_bytes = max_bytes;
    ob->max_age_ms = max_age_ms;
    iotdm_result r = open_db(ob, state_dir, err, err_cap);
    if (r < 0) {
        outbox_close(ob);
        return r;
    }
    ob->reported = (size_t)query_int(ob, "SELECT COUNT(*) FROM reported");
    ob->telemetry = (size_t)query_int(ob, "SELECT COUNT(*) FROM telemetry");
    ob->telemetry_bytes = (size_t)query_int(ob, "SELECT COALESCE(SUM(size), 0) FROM telemetry");
    *out_ob = ob;
    return IOTDM_OK;
}

void outbox_close(outbox *ob)
{
    if (!ob)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(ob->st[i]);
    sqlite3_close(ob->db);
    xfree(ob);
}

iotdm_result outbox_begin(outbox *ob)
{
    if (ob->depth++ > 0)
        return IOTDM_OK;
    iotdm_result r = exec(ob, "BEGIN IMMEDIATE");
    if (r < 0)
        ob->depth = 0;
    return r;
}

/* The in-memory counters are recomputed after a commit or rollback of a group, because a rollback
 * would otherwise leave them describing rows that were never stored. */
static void recount(outbox *ob)
{
    ob->reported = (size_t)query_int(ob, "SELECT COUNT(*) FROM reported");
    ob->telemetry = (size_t)query_int(ob, "SELECT COUNT(*) FROM telemetry");
    ob->telemetry_bytes = (size_t)query_int(ob, "SELECT COALESCE(SUM(size), 0) FROM telemetry");
}

iotdm_result outbox_commit(outbox *ob)
{
    if (ob->depth == 0 || --ob->depth > 0)
        return IOTDM_OK;
    if (exec(ob, "COMMIT") == IOTDM_OK)
        return IOTDM_OK;
    exec(ob, "ROLLBACK");
    recount(ob);
    return IOTDM_E_STORAGE;
}

void outbox_rollback(outbox *ob)
{
    if (ob->depth == 0)
        return;
    ob->depth = 0;
    exec(ob, "ROLLBACK");
    recount(ob);
}

iotdm_result outbox_add_reported(outbox *ob, const char *json)
{
    sqlite3_stmt *s = stmt(ob, ST_ADD_REPORTED);
    if (!s)
        return IOTDM_E_STORAGE;
    sqlite3_bind_text(s, 1, json, -1, SQLITE_STATIC);
    iotdm_result r = step_done(s);
    if (r == IOTDM_OK)
        ob->reported++;
    return r;
}

iotdm_result outbox_peek_reported(outbox *ob, int64_t *out_seq, char **out_json)
{
    *out_json = NULL;
    sqlite3_stmt *s = stmt(ob, ST_PEEK_REPORTED);
    if (!s)
        return IOTDM_E_STORAGE;
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return rc == SQLITE_DONE ? IOTDM_E_NOT_FOUND : IOTDM_E_STORAGE;
    }
    *out_seq = sqlite3_column_int64(s, 0);
    const char *text = (const char *)sqlite3_column_text(s, 1);
    *out_json = text ? xstrdup(text) : NULL;
    sqlite3_reset(s);
    return *out_json ? IOTDM_OK : -ENOMEM;
}

iotdm_result outbox_remove_reported(outbox *ob, int64_t seq)
{
    sqlite3_stmt *s = stmt(ob, ST_DEL_REPORTED);
    if (!s)
        return IOTDM_E_STORAGE;
    sqlite3_bind_int64(s, 1, seq);
    iotdm_result r = step_done(s);
    if (r == IOTDM_OK && sqlite3_changes(ob->db) > 0 && ob->reported > 0)
        ob->reported--;
    return r;
}

/* Deletes one telemetry row, keeping the counters; *out_found tells whether it existed. */
static iotdm_result delete_telemetry(outbox *ob, int64_t seq, bool *out_found)
{
    sqlite3_stmt *s = stmt(ob, ST_DEL_TELEMETRY);
    if (!s)
        return IOTDM_E_STORAGE;
    sqlite3_bind_int64(s, 1, seq);
    *out_found = false;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        size_t size = (size_t)sqlite3_column_int64(s, 0);
        *out_found = true;
        ob->telemetry_bytes = ob->telemetry_bytes > size ? ob->telemetry_bytes - size : 0;
        if (ob->telemetry > 0)
            ob->telemetry--;
        rc = sqlite3_step(s);
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? IOTDM_OK : IOTDM_E_STORAGE;
}

/* Drops the oldest telemetry until `need` more bytes fit under max_bytes. */
static iotdm_result make_room(outbox *ob, size_t need)
{
    while (ob->telemetry > 0 && ob->telemetry_bytes + need > ob->max_bytes) {
        sqlite3_stmt *s = stmt(ob, ST_OLDEST_TELEMETRY);
        if (!s)
            return IOTDM_E_STORAGE;
        if (sqlite3_step(s) != SQLITE_ROW) {
            sqlite3_reset(s);
            ob->telemetry = 0;
            ob->telemetry_bytes = 0;
            break;
        }
        int64_t seq = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        bool found;
        iotdm_result r = delete_telemetry(ob, seq, &found);
        if (r < 0)
            return r;
        ob->dropped++;
    }
    return IOTDM_OK;
}

iotdm_result outbox_add_telemetry(outbox *ob, int64_t now_ms, const char *encoded_bag,
                                  const void *body, size_t len)
{
    size_t size = len + strlen(encoded_bag);
    if (size > ob->max_bytes)
        return IOTDM_E_TOO_LARGE;
    outbox_expire_telemetry(ob, now_ms);
    iotdm_result r = outbox_begin(ob);
    if (r < 0)
        return r;
    r = make_room(ob, size);
    sqlite3_stmt *s = r < 0 ? NULL : stmt(ob, ST_ADD_TELEMETRY);
    if (!s) {
        outbox_rollback(ob);
        return IOTDM_E_STORAGE;
    }
    sqlite3_bind_int64(s, 1, now_ms);
    sqlite3_bind_text(s, 2, encoded_bag, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 3, len ? body : "", (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)size);
    r = step_done(s);
    if (r < 0) {
        outbox_rollback(ob);
        return r;
    }
    ob->telemetry++;
    ob->telemetry_bytes += size;
    return outbox_commit(ob);
}

iotdm_result outbox_next_telemetry(outbox *ob, int64_t after_seq, outbox_telemetry_fn fn, void *ctx)
{
    sqlite3_stmt *s = stmt(ob, ST_NEXT_TELEMETRY);
    if (!s)
        return IOTDM_E_STORAGE;
    sqlite3_bind_int64(s, 1, after_seq);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return rc == SQLITE_DONE ? IOTDM_E_NOT_FOUND : IOTDM_E_STORAGE;
    }
    int64_t seq = sqlite3_column_int64(s, 0);
    const char *bag = (const char *)sqlite3_column_text(s, 1);
    const void *body = sqlite3_column_blob(s, 2);
    size_t len = (size_t)sqlite3_column_bytes(s, 2);
    iotdm_result r = fn(ctx, seq, bag ? bag : "", body, len);
    sqlite3_reset(s);
    return r;
}

iotdm_result outbox_remove_telemetry(outbox *ob, int64_t seq)
{
    bool found;
    return delete_telemetry(ob, seq, &found);
}

size_t outbox_expire_telemetry(outbox *ob, int64_t now_ms)
{
    if (ob->max_age_ms <= 0 || ob->telemetry == 0)
        return 0;
    char sql[160];
    int64_t cutoff = now_ms - ob->max_age_ms;
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM telemetry WHERE created_ms < %lld",
             (long long)cutoff);
    size_t n = (size_t)query_int(ob, sql);
    if (n == 0)
        return 0;
    snprintf(sql, sizeof sql, "DELETE FROM telemetry WHERE created_ms < %lld", (long long)cutoff);
    if (exec(ob, sql) < 0)
        return 0;
    ob->dropped += n;
    ob->telemetry = (size_t)query_int(ob, "SELECT COUNT(*) FROM telemetry");
    ob->telemetry_bytes = (size_t)query_int(ob, "SELECT COALESCE(SUM(size), 0) FROM telemetry");
    return n;
}

void outbox_get_counts(outbox *ob, outbox_counts *out)
{
    out->reported = ob->reported;
    out->telemetry = ob->telemetry;
    out->telemetry_bytes = ob->telemetry_bytes;
    out->telemetry_dropped = ob->dropped;
}

static void bind_key(sqlite3_stmt *s, const char *component, const char *property)
{
    sqlite3_bind_text(s, 1, component, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, property, -1, SQLITE_STATIC);
}

iotdm_result outbox_get_applied(outbox *ob, const char *component, const char *property,
                                outbox_applied *out)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *s = stmt(ob, ST_GET_APPLIED);
    if (!s)
        return IOTDM_E_STORAGE;
    bind_key(s, component, property);
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(s);
        return rc == SQLITE_DONE ? IOTDM_E_NOT_FOUND : IOTDM_E_STORAGE;
    }
    out->version = sqlite3_column_int64(s, 0);
    out->ac = sqlite3_column_int(s, 1);
    const char *value = (const char *)sqlite3_column_text(s, 2);
    const char *ad = (const char *)sqlite3_column_text(s, 3);
    out->value = xstrdup(value ? value : "null");
    out->ad = xstrdup(ad ? ad : "");
    sqlite3_reset(s);
    if (!out->value || !out->ad) {
        outbox_applied_deinit(out);
        return -ENOMEM;
    }
    return IOTDM_OK;
}

iotdm_result outbox_set_applied(outbox *ob, const char *component, const char *property,
                                const outbox_applied *a)
{
    sqlite3_stmt *s = stmt(ob, ST_SET_APPLIED);
    if (!s)
        return IOTDM_E_STORAGE;
    bind_key(s, component, property);
    sqlite3_bind_int64(s, 3, a->version);
    sqlite3_bind_int(s, 4, a->ac);
    sqlite3_bind_text(s, 5, a->value ? a->value : "null", -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, a->ad ? a->ad : "", -1, SQLITE_STATIC);
    return step_done(s);
}

iotdm_result outbox_clear_applied(outbox *ob, const char *component, const char *property)
{
    sqlite3_stmt *s = stmt(ob, ST_CLEAR_APPLIED);
    if (!s)
        return IOTDM_E_STORAGE;
    bind_key(s, component, property);
    return step_done(s);
}

void outbox_applied_deinit(outbox_applied *a)
{
    xfree(a->value);
    xfree(a->ad);
    a->value = NULL;
    a->ad = NULL;
}
