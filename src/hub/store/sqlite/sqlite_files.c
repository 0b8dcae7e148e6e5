/* SQLite store: file-upload records. */
#include <string.h>

#include "common/alloc.h"

#include "hub/store/sqlite/sqlite_internal.h"

#define FILE_COLUMNS                                                                               \
    "correlation_id, device_id, blob_name, state, size, created_ms, updated_ms, status_code, "     \
    "status_description"

static void file_from_row(sqlite3_stmt *st, hub_file *f)
{
    memset(f, 0, sizeof *f);
    column_copy(st, 0, f->correlation_id, sizeof f->correlation_id);
    column_copy(st, 1, f->device_id, sizeof f->device_id);
    column_copy(st, 2, f->blob_name, sizeof f->blob_name);
    f->state = (hub_file_state)sqlite3_column_int(st, 3);
    f->size = sqlite3_column_int64(st, 4);
    f->created_ms = sqlite3_column_int64(st, 5);
    f->updated_ms = sqlite3_column_int64(st, 6);
    f->status_code = sqlite3_column_int(st, 7);
    column_copy(st, 8, f->status_description, sizeof f->status_description);
}

static void bind_file(sqlite3_stmt *st, const hub_file *f)
{
    bind_field(st, 1, f->correlation_id, sizeof f->correlation_id);
    bind_field(st, 2, f->device_id, sizeof f->device_id);
    bind_field(st, 3, f->blob_name, sizeof f->blob_name);
    sqlite3_bind_int(st, 4, (int)f->state);
    sqlite3_bind_int64(st, 5, f->size);
    sqlite3_bind_int64(st, 6, f->created_ms);
    sqlite3_bind_int64(st, 7, f->updated_ms);
    sqlite3_bind_int(st, 8, f->status_code);
    bind_field(st, 9, f->status_description, sizeof f->status_description);
}

static iotdm_result write_file_row(sq_store *s, store_stmt_id id, const char *sql,
                                   const hub_file *f)
{
    iotdm_result r = store_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    sqlite3_stmt *st = stmt_take(s, id, sql);
    if (!st)
        return IOTDM_E_STORAGE;
    bind_file(st, f);
    r = stmt_exec(s, st);
    if (r == IOTDM_OK && id == ST_FILE_UPDATE && sqlite3_changes(s->db) == 0)
        r = IOTDM_E_NOT_FOUND;
    stmt_give(s, id, st);
    return r;
}

iotdm_result sq_file_create(hub_store *base, const hub_file *file)
{
    sq_store *store = (sq_store *)base;
    return write_file_row(
        store, ST_FILE_INSERT,
        "INSERT INTO files(" FILE_COLUMNS ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", file);
}

iotdm_result sq_file_update(hub_store *base, const hub_file *file)
{
    sq_store *store = (sq_store *)base;
    return write_file_row(store, ST_FILE_UPDATE,
                          "UPDATE files SET device_id = ?2, blob_name = ?3, state = ?4, size = ?5, "
                          "created_ms = ?6, updated_ms = ?7, status_code = ?8, "
                          "status_description = ?9 WHERE correlation_id = ?1",
                          file);
}

static iotdm_result read_one(sq_store *s, sqlite3_stmt *st, store_stmt_id id, hub_file *out)
{
    int rc = sqlite3_step(st);
    iotdm_result r = IOTDM_E_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        file_from_row(st, out);
        r = IOTDM_OK;
    } else if (rc != SQLITE_DONE) {
        r = store_sqlite_result(s, rc, "file read");
    }
    stmt_give(s, id, st);
    return r;
}

iotdm_result sq_file_get(hub_store *base, const char *correlation_id, hub_file *out_file)
{
    sq_store *store = (sq_store *)base;
    sqlite3_stmt *st = stmt_take(store, ST_FILE_GET,
                                 "SELECT " FILE_COLUMNS " FROM files WHERE correlation_id = ?1");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, correlation_id);
    return read_one(store, st, ST_FILE_GET, out_file);
}

iotdm_result sq_file_find(hub_store *base, const char *device_id, const char *blob_name,
                          hub_file *out_file)
{
    sq_store *store = (sq_store *)base;
    sqlite3_stmt *st = stmt_take(store, ST_FILE_FIND,
                                 "SELECT " FILE_COLUMNS " FROM files WHERE device_id = ?1 AND "
                                 "blob_name = ?2 AND state != 0 "
                                 "ORDER BY created_ms DESC LIMIT 1");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, device_id);
    bind_text(st, 2, blob_name);
    return read_one(store, st, ST_FILE_FIND, out_file);
}

iotdm_result sq_file_delete(hub_store *base, const char *correlation_id)
{
    sq_store *store = (sq_store *)base;
    iotdm_result r;
    sqlite3_stmt *st =
        store_write_stmt(store, ST_FILE_DELETE, "DELETE FROM files WHERE correlation_id = ?1", &r);
    if (!st)
        return r;
    bind_text(st, 1, correlation_id);
    r = stmt_exec_row(store, st);
    stmt_give(store, ST_FILE_DELETE, st);
    return r;
}

iotdm_result sq_file_foreach(hub_store *base, const char *device_id, size_t max,
                             hub_file_visitor visit, void *ctx)
{
    sq_store *store = (sq_store *)base;
    sqlite3_stmt *st = stmt_take(store, ST_FILE_LIST,
                                 "SELECT " FILE_COLUMNS " FROM files WHERE ?1 IS NULL OR "
                                 "device_id = ?1 ORDER BY created_ms DESC LIMIT ?2");
    if (!st)
        return IOTDM_E_STORAGE;
    if (device_id)
        bind_text(st, 1, device_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)(max > INT64_MAX ? INT64_MAX : max));
    int rc;
    hub_file f;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        file_from_row(st, &f);
        if (!visit(ctx, &f))
            break;
    }
    iotdm_result r =
        rc == SQLITE_ROW || rc == SQLITE_DONE ? IOTDM_OK : store_sqlite_result(store, rc, "files");
    stmt_give(store, ST_FILE_LIST, st);
    return r;
}

size_t sq_file_active(hub_store *base, const char *device_id, int64_t since_ms)
{
    sq_store *store = (sq_store *)base;
    sqlite3_stmt *st = stmt_take(store, ST_FILE_ACTIVE,
                                 "SELECT COUNT(*) FROM files WHERE device_id = ?1 AND state IN "
                                 "(0, 1) AND created_ms > ?2");
    if (!st)
        return 0;
    bind_text(st, 1, device_id);
    sqlite3_bind_int64(st, 2, since_ms);
    size_t n = sqlite3_step(st) == SQLITE_ROW ? (size_t)sqlite3_column_int64(st, 0) : 0;
    stmt_give(store, ST_FILE_ACTIVE, st);
    return n;
}

iotdm_result sq_file_usage(hub_store *base, const char *device_id, size_t *out_count,
                           uint64_t *out_bytes)
{
    sq_store *store = (sq_store *)base;
    *out_count = 0;
    *out_bytes = 0;
    sqlite3_stmt *st = stmt_take(store, ST_FILE_USAGE,
                                 "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files "
                                 "WHERE device_id = ?1");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, device_id);
    int rc = sqlite3_step(st);
    iotdm_result r = IOTDM_OK;
    if (rc == SQLITE_ROW) {
        *out_count = (size_t)sqlite3_column_int64(st, 0);
        *out_bytes = (uint64_t)sqlite3_column_int64(st, 1);
    } else {
        r = store_sqlite_result(store, rc, "file usage");
    }
    stmt_give(store, ST_FILE_USAGE, st);
    return r;
}

iotdm_result sq_file_prune(hub_store *base, int64_t done_before_ms, int64_t open_before_ms,
                           size_t max, hub_file_visitor visit, void *ctx, size_t *out_deleted)
{
    sq_store *store = (sq_store *)base;
    if (out_deleted)
        *out_deleted = 0;
    /* Collected first, deleted after: the list statement must not see its own deletions. */
    hub_file *doomed = xcalloc(max ? max : 1, sizeof *doomed);
    if (!doomed)
        return -ENOMEM;
    sqlite3_stmt *st = stmt_take(store, ST_FILE_PRUNE_LIST,
                                 "SELECT " FILE_COLUMNS " FROM files WHERE "
                                 "(state IN (2, 3) AND updated_ms < ?1) OR "
                                 "(state IN (0, 1) AND created_ms < ?2) LIMIT ?3");
    if (!st) {
        xfree(doomed);
        return IOTDM_E_STORAGE;
    }
    sqlite3_bind_int64(st, 1, done_before_ms);
    sqlite3_bind_int64(st, 2, open_before_ms);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)max);
    size_t n = 0;
    int rc;
    while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW)
        file_from_row(st, &doomed[n++]);
    stmt_give(store, ST_FILE_PRUNE_LIST, st);
    iotdm_result r = IOTDM_OK;
    for (size_t i = 0; i < n && r == IOTDM_OK; i++) {
        r = sq_file_delete(base, doomed[i].correlation_id);
        if (r == IOTDM_OK) {
            if (visit)
                visit(ctx, &doomed[i]);
            if (out_deleted)
                (*out_deleted)++;
        }
    }
    xfree(doomed);
    return r;
}
