/* PostgreSQL store: file-upload records. */
#include <string.h>

#include "hub/store/postgresql/pg_internal.h"

#define FILE_COLUMNS                                                                               \
    "correlation_id, device_id, blob_name, state, size, created_ms, updated_ms, status_code, "     \
    "status_description"

/* Records fetched per round trip by the listings (a record is about 1.5 KiB at most). */
enum { FILE_BATCH = 64 };

static void file_from_row(const PGresult *res, int row, hub_file *f)
{
    memset(f, 0, sizeof *f);
    pg_copy(res, row, 0, f->correlation_id, sizeof f->correlation_id);
    pg_copy(res, row, 1, f->device_id, sizeof f->device_id);
    pg_copy(res, row, 2, f->blob_name, sizeof f->blob_name);
    f->state = (hub_file_state)pg_int(res, row, 3);
    f->size = pg_int(res, row, 4);
    f->created_ms = pg_int(res, row, 5);
    f->updated_ms = pg_int(res, row, 6);
    f->status_code = (int)pg_int(res, row, 7);
    pg_copy(res, row, 8, f->status_description, sizeof f->status_description);
}

/* The record's columns as $1..$9, in FILE_COLUMNS order. */
static void file_params(pg_params *p, const hub_file *f)
{
    pp_field(p, f->correlation_id, sizeof f->correlation_id);
    pp_field(p, f->device_id, sizeof f->device_id);
    pp_field(p, f->blob_name, sizeof f->blob_name);
    pp_int(p, (int64_t)f->state);
    pp_int(p, f->size);
    pp_int(p, f->created_ms);
    pp_int(p, f->updated_ms);
    pp_int(p, f->status_code);
    pp_field(p, f->status_description, sizeof f->status_description);
}

iotdm_result pg_file_create(hub_store *base, const hub_file *file)
{
    pg_store *s = (pg_store *)base;
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    file_params(&p, file);
    /* Neither outcome the caller expects raises an error (which would fail the transaction): the
     * insert takes no row for an unknown device and none for a taken id, and the second column
     * tells them apart. It reads the snapshot from before the insert, so it is true only for a
     * record that was already there; a taken id wins over an unknown device, as in SQLite. */
    PGresult *res =
        pg_run(s, PQ_FILE_INSERT,
               "WITH ins AS (INSERT INTO files(" FILE_COLUMNS ") "
               "SELECT $1::text, device_id, $3::text, $4::integer, $5::bigint, $6::bigint, "
               "$7::bigint, $8::integer, $9::text FROM devices WHERE device_id = $2::text "
               "ON CONFLICT (correlation_id) DO NOTHING RETURNING 1) "
               "SELECT (SELECT COUNT(*) FROM ins), "
               "EXISTS (SELECT 1 FROM files WHERE correlation_id = $1::text)",
               &p, &r);
    if (!res)
        return r;
    if (pg_int(res, 0, 0) == 1)
        r = IOTDM_OK;
    else
        r = pg_bool(res, 0, 1) ? IOTDM_E_EXISTS : IOTDM_E_NOT_FOUND;
    PQclear(res);
    return r;
}

iotdm_result pg_file_update(hub_store *base, const hub_file *file)
{
    pg_store *s = (pg_store *)base;
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    file_params(&p, file);
    /* A record moved to an unknown device matches no row (SQLite's failed foreign key, also
     * IOTDM_E_NOT_FOUND) instead of failing the transaction. */
    return pg_exec_row(s, PQ_FILE_UPDATE,
                       "UPDATE files SET device_id = $2::text, blob_name = $3::text, "
                       "state = $4::integer, size = $5::bigint, created_ms = $6::bigint, "
                       "updated_ms = $7::bigint, status_code = $8::integer, "
                       "status_description = $9::text WHERE correlation_id = $1::text "
                       "AND EXISTS (SELECT 1 FROM devices WHERE device_id = $2::text)",
                       &p);
}

/* Runs a statement that reads at most one record. */
static iotdm_result read_one(pg_store *s, pg_stmt_id id, const char *sql, const pg_params *p,
                             hub_file *out)
{
    iotdm_result r;
    PGresult *res = pg_select(s, id, sql, p, &r);
    if (!res)
        return r;
    r = IOTDM_E_NOT_FOUND;
    if (PQntuples(res) == 1) {
        file_from_row(res, 0, out);
        r = IOTDM_OK;
    }
    PQclear(res);
    return r;
}

iotdm_result pg_file_get(hub_store *base, const char *correlation_id, hub_file *out_file)
{
    pg_store *s = (pg_store *)base;
    pg_params p = {0};
    pp_text(&p, correlation_id);
    return read_one(s, PQ_FILE_GET, "SELECT " FILE_COLUMNS " FROM files WHERE correlation_id = $1",
                    &p, out_file);
}

iotdm_result pg_file_find(hub_store *base, const char *device_id, const char *blob_name,
                          hub_file *out_file)
{
    pg_store *s = (pg_store *)base;
    pg_params p = {0};
    pp_text(&p, device_id);
    pp_text(&p, blob_name);
    /* Ties on created_ms go by correlation id, the order SQLite's walk of its index gives. */
    return read_one(s, PQ_FILE_FIND,
                    "SELECT " FILE_COLUMNS " FROM files WHERE device_id = $1 AND "
                    "blob_name = $2 AND state <> 0 "
                    "ORDER BY created_ms DESC, correlation_id DESC LIMIT 1",
                    &p, out_file);
}

iotdm_result pg_file_delete(hub_store *base, const char *correlation_id)
{
    pg_store *s = (pg_store *)base;
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_text(&p, correlation_id);
    return pg_exec_row(s, PQ_FILE_DELETE, "DELETE FROM files WHERE correlation_id = $1", &p);
}

iotdm_result pg_file_foreach(hub_store *base, const char *device_id, size_t max,
                             hub_file_visitor visit, void *ctx)
{
    pg_store *s = (pg_store *)base;
    /* In batches, newest first, each after the last record seen: (created_ms, correlation_id)
     * orders the records totally, so no record is visited twice or skipped between batches. The
     * first batch has no position yet (NULL). */
    int64_t last_ms = 0;
    char last_id[HUB_CORRELATION_MAX] = "";
    bool first = true, more = true;
    iotdm_result r = pg_read_begin(s);
    while (r == IOTDM_OK && more && max > 0) {
        int64_t want = max < FILE_BATCH ? (int64_t)max : FILE_BATCH;
        pg_params p = {0};
        if (device_id)
            pp_text(&p, device_id);
        pp_int(&p, last_ms);
        pp_text(&p, first ? NULL : last_id);
        pp_int(&p, want);
        PGresult *res =
            device_id
                ? pg_run(s, PQ_FILE_LIST,
                         "SELECT " FILE_COLUMNS " FROM files WHERE device_id = $1 AND "
                         "($3::text IS NULL OR (created_ms, correlation_id) < ($2::bigint, $3)) "
                         "ORDER BY created_ms DESC, correlation_id DESC LIMIT $4::bigint",
                         &p, &r)
                : pg_run(s, PQ_FILE_LIST_ALL,
                         "SELECT " FILE_COLUMNS " FROM files WHERE "
                         "($2::text IS NULL OR (created_ms, correlation_id) < ($1::bigint, $2)) "
                         "ORDER BY created_ms DESC, correlation_id DESC LIMIT $3::bigint",
                         &p, &r);
        if (!res)
            break;
        int rows = PQntuples(res);
        hub_file f;
        for (int i = 0; i < rows && more; i++) {
            file_from_row(res, i, &f);
            last_ms = f.created_ms;
            memcpy(last_id, f.correlation_id, sizeof last_id);
            first = false;
            max--;
            more = visit(ctx, &f);
        }
        PQclear(res);
        if (rows < want)
            break;
    }
    return r;
}

size_t pg_file_active(hub_store *base, const char *device_id, int64_t since_ms)
{
    pg_store *s = (pg_store *)base;
    pg_params p = {0};
    pp_text(&p, device_id);
    pp_int(&p, since_ms);
    iotdm_result r;
    PGresult *res = pg_select(s, PQ_FILE_ACTIVE,
                              "SELECT COUNT(*) FROM files WHERE device_id = $1 AND "
                              "state IN (0, 1) AND created_ms > $2::bigint",
                              &p, &r);
    if (!res)
        return 0;
    size_t n = (size_t)pg_int(res, 0, 0);
    PQclear(res);
    return n;
}

iotdm_result pg_file_usage(hub_store *base, const char *device_id, size_t *out_count,
                           uint64_t *out_bytes)
{
    pg_store *s = (pg_store *)base;
    *out_count = 0;
    *out_bytes = 0;
    pg_params p = {0};
    pp_text(&p, device_id);
    iotdm_result r;
    PGresult *res = pg_select(s, PQ_FILE_USAGE,
                              "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM files "
                              "WHERE device_id = $1",
                              &p, &r);
    if (!res)
        return r;
    *out_count = (size_t)pg_int(res, 0, 0);
    *out_bytes = (uint64_t)pg_int(res, 0, 1);
    PQclear(res);
    return IOTDM_OK;
}

iotdm_result pg_file_prune(hub_store *base, int64_t done_before_ms, int64_t open_before_ms,
                           size_t max, hub_file_visitor visit, void *ctx, size_t *out_deleted)
{
    pg_store *s = (pg_store *)base;
    size_t deleted = 0;
    if (out_deleted)
        *out_deleted = 0;
    /* A batch at a time, each deleted by one statement that returns the records it took: deleted
     * records leave the candidates, so the next batch needs no position. A record another node's
     * open transaction holds is skipped (a later run takes it) rather than waited for. */
    iotdm_result r = pg_write_begin(s);
    while (r == IOTDM_OK && deleted < max) {
        size_t left = max - deleted;
        int64_t want = left < FILE_BATCH ? (int64_t)left : FILE_BATCH;
        pg_params p = {0};
        pp_int(&p, done_before_ms);
        pp_int(&p, open_before_ms);
        pp_int(&p, want);
        PGresult *res =
            pg_run(s, PQ_FILE_PRUNE,
                   "DELETE FROM files WHERE correlation_id IN (SELECT correlation_id FROM files "
                   "WHERE (state IN (2, 3) AND updated_ms < $1::bigint) OR "
                   "(state IN (0, 1) AND created_ms < $2::bigint) "
                   "LIMIT $3::bigint FOR UPDATE SKIP LOCKED) RETURNING " FILE_COLUMNS,
                   &p, &r);
        if (!res)
            break;
        int rows = PQntuples(res);
        hub_file f;
        for (int i = 0; i < rows; i++) {
            file_from_row(res, i, &f);
            if (visit)
                visit(ctx, &f); /* its answer does not matter: the record is gone */
            deleted++;
        }
        PQclear(res);
        if (rows < want)
            break;
    }
    if (out_deleted)
        *out_deleted = deleted;
    return r;
}

/* ---- the bytes (cluster stores keep them with the record) ---- */

iotdm_result pg_file_bytes_put(hub_store *base, const char *correlation_id, const void *bytes,
                               size_t len)
{
    pg_store *s = (pg_store *)base;
    if (!correlation_id || !correlation_id[0] || strlen(correlation_id) >= HUB_CORRELATION_MAX)
        return IOTDM_E_NOT_FOUND;
    if (len > INT32_MAX)
        return IOTDM_E_TOO_LARGE;
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_text(&p, correlation_id);
    pp_bytes(&p, bytes, len);
    /* Only for a record that exists: an unknown id is a count, not a failed key. */
    uint64_t n = 0;
    r = pg_exec(s, PQ_FILE_BYTES_PUT,
                "INSERT INTO file_blobs(correlation_id, body) SELECT correlation_id, $2::bytea "
                "FROM files WHERE correlation_id = $1 "
                "ON CONFLICT (correlation_id) DO UPDATE SET body = excluded.body",
                &p, &n);
    return r == IOTDM_OK && n == 0 ? IOTDM_E_NOT_FOUND : r;
}

iotdm_result pg_file_bytes_get(hub_store *base, const char *correlation_id,
                               unsigned char **out_bytes, size_t *out_len)
{
    pg_store *s = (pg_store *)base;
    *out_bytes = NULL;
    *out_len = 0;
    if (!correlation_id || !correlation_id[0] || strlen(correlation_id) >= HUB_CORRELATION_MAX)
        return IOTDM_E_NOT_FOUND;
    pg_params p = {0};
    pp_text(&p, correlation_id);
    iotdm_result r;
    PGresult *res = pg_select(s, PQ_FILE_BYTES_GET,
                              "SELECT body FROM file_blobs WHERE correlation_id = $1", &p, &r);
    if (!res)
        return r;
    r = IOTDM_E_NOT_FOUND;
    if (PQntuples(res) == 1) {
        bool ok;
        *out_bytes = pg_bytes(res, 0, 0, out_len, &ok);
        r = ok ? IOTDM_OK : -ENOMEM;
    }
    PQclear(res);
    return r;
}
