/* SQLite store: per-device cloud-to-device queues and the retained telemetry stream. */
#include <string.h>

#include "common/alloc.h"
#include "hub/store/sqlite/sqlite_internal.h"

/* SQLite wants a non-NULL pointer for an empty blob, or it stores NULL. */
static int bind_body(sqlite3_stmt *st, int idx, const unsigned char *body, size_t len)
{
    return sqlite3_bind_blob64(st, idx, len ? (const void *)body : (const void *)"", len,
                               SQLITE_STATIC);
}

/* ---- cloud-to-device ---- */

static iotdm_result c2d_live_count(sq_store *s, const hub_c2d *msg, size_t *out_count)
{
    /* Messages already expired at the new one's enqueue time do not hold a quota slot: they can
     * never be delivered, and the periodic expiry sweep may simply not have run yet. */
    sqlite3_stmt *st = stmt_take(s, ST_C2D_COUNT_LIVE,
                                 "SELECT COUNT(*) FROM c2d WHERE device_id = ?1 "
                                 "AND (expiry_ms = 0 OR expiry_ms > ?2)");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_field(st, 1, msg->device_id, sizeof(msg->device_id));
    sqlite3_bind_int64(st, 2, msg->enqueued_ms);
    int rc = sqlite3_step(st);
    *out_count = rc == SQLITE_ROW ? (size_t)sqlite3_column_int64(st, 0) : 0;
    iotdm_result r = store_sqlite_result(s, rc, "c2d count");
    stmt_give(s, ST_C2D_COUNT_LIVE, st);
    return r;
}

iotdm_result sq_c2d_enqueue(hub_store *base, hub_c2d *msg, size_t max_pending)
{
    sq_store *store = (sq_store *)base;
    if (!store_id_ok(msg->device_id))
        return IOTDM_E_NOT_FOUND;
    if (msg->body_len > INT32_MAX || (msg->body_len && !msg->body))
        return IOTDM_E_TOO_LARGE;
    if (msg->properties && !json_is_object(msg->properties))
        return IOTDM_E_MALFORMED;
    const char *props;
    size_t props_len;
    iotdm_result r = store_dump(store, 0, msg->properties, &props, &props_len);
    if (r != IOTDM_OK)
        return r;
    size_t pending;
    r = c2d_live_count(store, msg, &pending);
    if (r != IOTDM_OK)
        return r;
    if (pending >= max_pending)
        return IOTDM_E_QUOTA;
    r = store_write_begin(store);
    if (r != IOTDM_OK)
        return r;
    sqlite3_stmt *st = stmt_take(store, ST_C2D_INSERT,
                                 "INSERT INTO c2d(device_id, message_id, properties, body, "
                                 "enqueued_ms, expiry_ms, delivery_count) "
                                 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, 0)");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_field(st, 1, msg->device_id, sizeof(msg->device_id));
    bind_field(st, 2, msg->message_id, sizeof(msg->message_id));
    sqlite3_bind_text(st, 3, props, (int)props_len, SQLITE_STATIC);
    bind_body(st, 4, msg->body, msg->body_len);
    sqlite3_bind_int64(st, 5, msg->enqueued_ms);
    sqlite3_bind_int64(st, 6, msg->expiry_ms);
    r = stmt_exec(store, st); /* unknown device: the foreign key fails, IOTDM_E_NOT_FOUND */
    if (r == IOTDM_OK) {
        msg->seq = sqlite3_last_insert_rowid(store->db);
        msg->delivery_count = 0;
    }
    stmt_give(store, ST_C2D_INSERT, st);
    return r;
}

iotdm_result sq_c2d_foreach(hub_store *base, const char *device_id, int64_t now_ms,
                            hub_c2d_visitor visit, void *ctx)
{
    sq_store *store = (sq_store *)base;
    if (!store_id_ok(device_id))
        return IOTDM_E_NOT_FOUND;
    sqlite3_stmt *st = stmt_take(store, ST_C2D_LIST,
                                 "SELECT seq, device_id, message_id, properties, body, "
                                 "enqueued_ms, expiry_ms, delivery_count FROM c2d "
                                 "WHERE device_id = ?1 AND (expiry_ms = 0 OR expiry_ms > ?2) "
                                 "ORDER BY seq");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, device_id);
    sqlite3_bind_int64(st, 2, now_ms);
    int rc;
    iotdm_result r = IOTDM_OK;
    hub_c2d m;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&m, 0, sizeof(m));
        m.seq = sqlite3_column_int64(st, 0);
        column_copy(st, 1, m.device_id, sizeof(m.device_id));
        column_copy(st, 2, m.message_id, sizeof(m.message_id));
        m.properties = store_load(st, 3);
        if (!m.properties) {
            r = IOTDM_E_STORAGE;
            break;
        }
        /* The body is lent to the visitor straight from SQLite's row: no copy per message. */
        m.body = (unsigned char *)sqlite3_column_blob(st, 4);
        m.body_len = (size_t)sqlite3_column_bytes(st, 4);
        m.enqueued_ms = sqlite3_column_int64(st, 5);
        m.expiry_ms = sqlite3_column_int64(st, 6);
        m.delivery_count = sqlite3_column_int(st, 7);
        bool more = visit(ctx, &m);
        json_decref(m.properties);
        if (!more)
            break;
    }
    if (r == IOTDM_OK && rc != SQLITE_ROW)
        r = store_sqlite_result(store, rc, "c2d list");
    stmt_give(store, ST_C2D_LIST, st);
    return r;
}

static iotdm_result c2d_by_seq(sq_store *s, store_stmt_id id, const char *sql, int64_t seq)
{
    iotdm_result r = store_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    sqlite3_stmt *st = stmt_take(s, id, sql);
    if (!st)
        return IOTDM_E_STORAGE;
    sqlite3_bind_int64(st, 1, seq);
    r = stmt_exec_row(s, st);
    stmt_give(s, id, st);
    return r;
}

iotdm_result sq_c2d_mark_delivered(hub_store *base, int64_t seq)
{
    sq_store *store = (sq_store *)base;
    return c2d_by_seq(store, ST_C2D_DELIVERED,
                      "UPDATE c2d SET delivery_count = delivery_count + 1 WHERE seq = ?1", seq);
}

iotdm_result sq_c2d_complete(hub_store *base, int64_t seq)
{
    sq_store *store = (sq_store *)base;
    return c2d_by_seq(store, ST_C2D_COMPLETE, "DELETE FROM c2d WHERE seq = ?1", seq);
}

iotdm_result sq_c2d_purge(hub_store *base, const char *device_id, size_t *out_purged)
{
    sq_store *store = (sq_store *)base;
    if (out_purged)
        *out_purged = 0;
    hub_device d;
    iotdm_result r = sq_device_get(&store->base, device_id, &d);
    if (r == IOTDM_OK)
        r = store_write_begin(store);
    if (r != IOTDM_OK)
        return r;
    sqlite3_stmt *st = stmt_take(store, ST_C2D_PURGE, "DELETE FROM c2d WHERE device_id = ?1");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, device_id);
    r = stmt_exec(store, st);
    if (r == IOTDM_OK && out_purged)
        *out_purged = (size_t)sqlite3_changes(store->db);
    stmt_give(store, ST_C2D_PURGE, st);
    return r;
}

size_t sq_c2d_count(hub_store *base, const char *device_id)
{
    sq_store *store = (sq_store *)base;
    if (!store_id_ok(device_id))
        return 0;
    sqlite3_stmt *st =
        stmt_take(store, ST_C2D_COUNT, "SELECT COUNT(*) FROM c2d WHERE device_id = ?1");
    if (!st)
        return 0;
    bind_text(st, 1, device_id);
    size_t n = sqlite3_step(st) == SQLITE_ROW ? (size_t)sqlite3_column_int64(st, 0) : 0;
    stmt_give(store, ST_C2D_COUNT, st);
    return n;
}

size_t sq_c2d_expire(hub_store *base, int64_t now_ms)
{
    sq_store *store = (sq_store *)base;
    if (store_write_begin(store) != IOTDM_OK)
        return 0;
    sqlite3_stmt *st =
        stmt_take(store, ST_C2D_EXPIRE, "DELETE FROM c2d WHERE expiry_ms != 0 AND expiry_ms <= ?1");
    if (!st)
        return 0;
    sqlite3_bind_int64(st, 1, now_ms);
    size_t n = stmt_exec(store, st) == IOTDM_OK ? (size_t)sqlite3_changes(store->db) : 0;
    stmt_give(store, ST_C2D_EXPIRE, st);
    return n;
}

/* ---- telemetry ---- */

iotdm_result sq_telemetry_append(hub_store *base, hub_telemetry *msg)
{
    sq_store *store = (sq_store *)base;
    const char *sys, *app;
    size_t sys_len, app_len;
    iotdm_result r =
        hub_telemetry_texts(msg, &store->json[0], &store->json[1], &sys, &sys_len, &app, &app_len);
    if (r == IOTDM_OK)
        r = store_write_begin(store);
    if (r != IOTDM_OK)
        return r;
    sqlite3_stmt *st = stmt_take(store, ST_TELEMETRY_INSERT,
                                 "INSERT INTO telemetry(device_id, module_id, enqueued_ms, "
                                 "system_properties, properties, body, body_len, row_bytes) "
                                 "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_field(st, 1, msg->device_id, sizeof(msg->device_id));
    bind_field(st, 2, msg->module_id, sizeof(msg->module_id));
    sqlite3_bind_int64(st, 3, msg->enqueued_ms);
    sqlite3_bind_text(st, 4, sys, (int)sys_len, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, app, (int)app_len, SQLITE_STATIC);
    bind_body(st, 6, msg->body, msg->body_len);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)msg->body_len);
    /* What the row costs on the disk, near enough: retention bounds this, not just the bodies
     * (small messages with large property bags once grew the database to four times the limit). */
    int64_t row = (int64_t)(msg->body_len + sys_len + app_len +
                            strnlen(msg->device_id, sizeof msg->device_id) +
                            strnlen(msg->module_id, sizeof msg->module_id)) +
                  STORE_TELEMETRY_ROW_OVERHEAD;
    sqlite3_bind_int64(st, 8, row);
    r = stmt_exec(store, st);
    if (r == IOTDM_OK) {
        msg->seq = sqlite3_last_insert_rowid(store->db);
        if (store->telemetry_bytes >= 0)
            store->telemetry_bytes += row;
    }
    stmt_give(store, ST_TELEMETRY_INSERT, st);
    return r;
}

iotdm_result sq_telemetry_foreach(hub_store *base, int64_t from_seq, size_t max,
                                  hub_telemetry_visitor visit, void *ctx)
{
    sq_store *store = (sq_store *)base;
    sqlite3_stmt *st = stmt_take(store, ST_TELEMETRY_LIST,
                                 "SELECT seq, device_id, module_id, enqueued_ms, "
                                 "system_properties, properties, body FROM telemetry "
                                 "WHERE seq >= ?1 ORDER BY seq LIMIT ?2");
    if (!st)
        return IOTDM_E_STORAGE;
    sqlite3_bind_int64(st, 1, from_seq);
    sqlite3_bind_int64(st, 2, max > INT64_MAX ? INT64_MAX : (sqlite3_int64)max);
    int rc;
    iotdm_result r = IOTDM_OK;
    hub_telemetry m;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&m, 0, sizeof(m));
        m.seq = sqlite3_column_int64(st, 0);
        column_copy(st, 1, m.device_id, sizeof(m.device_id));
        column_copy(st, 2, m.module_id, sizeof(m.module_id));
        m.enqueued_ms = sqlite3_column_int64(st, 3);
        m.system_properties = store_load(st, 4);
        m.properties = store_load(st, 5);
        if (!m.system_properties || !m.properties) {
            json_decref(m.system_properties);
            json_decref(m.properties);
            r = IOTDM_E_STORAGE;
            break;
        }
        m.body = (unsigned char *)sqlite3_column_blob(st, 6); /* lent, as for C2D */
        m.body_len = (size_t)sqlite3_column_bytes(st, 6);
        bool more = visit(ctx, &m);
        json_decref(m.system_properties);
        json_decref(m.properties);
        if (!more)
            break;
    }
    if (r == IOTDM_OK && rc != SQLITE_ROW)
        r = store_sqlite_result(store, rc, "telemetry list");
    stmt_give(store, ST_TELEMETRY_LIST, st);
    return r;
}

int64_t sq_telemetry_last_seq(hub_store *base)
{
    sq_store *store = (sq_store *)base;
    /* sqlite_sequence keeps the highest seq ever assigned, even when trimming emptied the table,
     * so a reader positioned "after the last" never sees an old seq come round again. */
    sqlite3_stmt *st = stmt_take(store, ST_TELEMETRY_LAST_SEQ,
                                 "SELECT seq FROM sqlite_sequence WHERE name = 'telemetry'");
    if (!st)
        return 0;
    int64_t seq = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    stmt_give(store, ST_TELEMETRY_LAST_SEQ, st);
    return seq;
}

static iotdm_result telemetry_bytes(sq_store *s, int64_t *out)
{
    if (s->telemetry_bytes >= 0) {
        *out = s->telemetry_bytes;
        return IOTDM_OK;
    }
    sqlite3_stmt *st =
        stmt_take(s, ST_TELEMETRY_BYTES, "SELECT COALESCE(SUM(row_bytes), 0) FROM telemetry");
    if (!st)
        return IOTDM_E_STORAGE;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        s->telemetry_bytes = sqlite3_column_int64(st, 0);
    iotdm_result r = store_sqlite_result(s, rc, "telemetry bytes");
    stmt_give(s, ST_TELEMETRY_BYTES, st);
    *out = s->telemetry_bytes;
    return r;
}

/* Sums the retained bytes now, so that the first trim does not scan the table on a busy writer. */
iotdm_result store_telemetry_count(sq_store *s)
{
    int64_t total;
    return telemetry_bytes(s, &total);
}

/* Walks from the oldest message while it must go, at most max_rows; finds the last seq to delete,
 * what remains, and whether more must go after those. */
static iotdm_result trim_point(sq_store *s, int64_t total, uint64_t max_bytes, int64_t cutoff,
                               size_t max_rows, int64_t *out_last, int64_t *out_remaining,
                               bool *out_more)
{
    sqlite3_stmt *st = stmt_take(s, ST_TELEMETRY_OLDEST,
                                 "SELECT seq, enqueued_ms, row_bytes FROM telemetry ORDER BY seq");
    if (!st)
        return IOTDM_E_STORAGE;
    int rc;
    size_t rows = 0;
    *out_last = 0;
    *out_more = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        bool too_big = (uint64_t)total > max_bytes;
        if (!too_big && sqlite3_column_int64(st, 1) >= cutoff)
            break;
        if (rows == max_rows) {
            *out_more = true;
            break;
        }
        *out_last = sqlite3_column_int64(st, 0);
        total -= sqlite3_column_int64(st, 2);
        rows++;
    }
    if (rc == SQLITE_ROW)
        rc = SQLITE_DONE; /* stopped on purpose */
    *out_remaining = total;
    iotdm_result r = store_sqlite_result(s, rc, "telemetry oldest");
    stmt_give(s, ST_TELEMETRY_OLDEST, st);
    return r;
}

iotdm_result sq_telemetry_trim(hub_store *base, uint64_t max_bytes, int64_t max_age_ms,
                               int64_t now_ms, size_t max_rows, bool *out_more)
{
    sq_store *store = (sq_store *)base;
    bool more = false;
    if (out_more)
        *out_more = false;
    int64_t total;
    iotdm_result r = telemetry_bytes(store, &total);
    if (r != IOTDM_OK)
        return r;
    int64_t cutoff = max_age_ms > 0 ? now_ms - max_age_ms : INT64_MIN;
    int64_t last, remaining;
    r = trim_point(store, total, max_bytes, cutoff, max_rows, &last, &remaining, &more);
    if (r != IOTDM_OK || last == 0)
        return r; /* nothing to delete: no write transaction */
    if (out_more)
        *out_more = more;
    r = store_write_begin(store);
    if (r != IOTDM_OK)
        return r;
    sqlite3_stmt *st =
        stmt_take(store, ST_TELEMETRY_DELETE_UPTO, "DELETE FROM telemetry WHERE seq <= ?1");
    if (!st)
        return IOTDM_E_STORAGE;
    sqlite3_bind_int64(st, 1, last);
    r = stmt_exec(store, st);
    stmt_give(store, ST_TELEMETRY_DELETE_UPTO, st);
    store->telemetry_bytes = r == IOTDM_OK ? remaining : -1;
    return r;
}
