/* SQLite store: device twins, kept as compact JSON text per section beside their counters, and
 * their index (sqlite_index.c) kept up to date in the same savepoint. */
#include <string.h>

#include "common/alloc.h"
#include "hub/store/sqlite/sqlite_internal.h"

iotdm_result store_twin_from_row(sqlite3_stmt *st, int c, hub_twin *out)
{
    memset(out, 0, sizeof(*out));
    out->tags = store_load(st, c + 0);
    out->desired = store_load(st, c + 1);
    out->desired_meta = store_load(st, c + 2);
    out->desired_version = sqlite3_column_int64(st, c + 3);
    out->reported = store_load(st, c + 4);
    out->reported_meta = store_load(st, c + 5);
    out->reported_version = sqlite3_column_int64(st, c + 6);
    out->version = sqlite3_column_int64(st, c + 7);
    out->etag = (uint64_t)sqlite3_column_int64(st, c + 8);
    if (out->tags && out->desired && out->desired_meta && out->reported && out->reported_meta)
        return IOTDM_OK;
    hub_twin_deinit(out);
    return IOTDM_E_STORAGE;
}

iotdm_result sq_twin_get(hub_store *base, const char *device_id, hub_twin *out_twin)
{
    sq_store *store = (sq_store *)base;
    memset(out_twin, 0, sizeof(*out_twin));
    if (!store_id_ok(device_id))
        return IOTDM_E_NOT_FOUND;
    sqlite3_stmt *st = stmt_take(
        store, ST_TWIN_GET, "SELECT " STORE_TWIN_COLUMNS " FROM twins t WHERE t.device_id = ?1");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, device_id);
    int rc = sqlite3_step(st);
    iotdm_result r = IOTDM_E_NOT_FOUND;
    if (rc == SQLITE_ROW)
        r = store_twin_from_row(st, 0, out_twin);
    else if (rc != SQLITE_DONE)
        r = store_sqlite_result(store, rc, "twin get");
    stmt_give(store, ST_TWIN_GET, st);
    return r;
}

/* Only what a reported patch needs: its section, its metadata and the counters. */
iotdm_result sq_twin_get_sections(hub_store *base, const char *device_id, unsigned sections,
                                  hub_twin *out_twin)
{
    if (sections & (HUB_TWIN_TAGS | HUB_TWIN_DESIRED))
        return sq_twin_get(base, device_id, out_twin);
    sq_store *store = (sq_store *)base;
    memset(out_twin, 0, sizeof(*out_twin));
    if (!store_id_ok(device_id))
        return IOTDM_E_NOT_FOUND;
    sqlite3_stmt *st = stmt_take(store, ST_TWIN_GET_REPORTED,
                                 "SELECT reported, reported_meta, reported_version, "
                                 "desired_version, version, etag FROM twins WHERE device_id = ?1");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, device_id);
    int rc = sqlite3_step(st);
    iotdm_result r = IOTDM_E_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        out_twin->reported = store_load(st, 0);
        out_twin->reported_meta = store_load(st, 1);
        out_twin->reported_version = sqlite3_column_int64(st, 2);
        out_twin->desired_version = sqlite3_column_int64(st, 3);
        out_twin->version = sqlite3_column_int64(st, 4);
        out_twin->etag = (uint64_t)sqlite3_column_int64(st, 5);
        r = out_twin->reported && out_twin->reported_meta ? IOTDM_OK : IOTDM_E_STORAGE;
        if (r != IOTDM_OK)
            hub_twin_deinit(out_twin);
    } else if (rc != SQLITE_DONE) {
        r = store_sqlite_result(store, rc, "twin get");
    }
    stmt_give(store, ST_TWIN_GET_REPORTED, st);
    return r;
}

static char *column_dup(sqlite3_stmt *st, int col, size_t *out_len)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    char *copy = text ? xmalloc(len + 1) : NULL;
    if (copy) {
        memcpy(copy, text, len);
        copy[len] = '\0';
        *out_len = len;
    }
    return copy;
}

/* The device view's sections as stored: no JSON is parsed here. */
iotdm_result sq_twin_texts(hub_store *base, const char *device_id, hub_twin_texts *out)
{
    sq_store *store = (sq_store *)base;
    memset(out, 0, sizeof(*out));
    if (!store_id_ok(device_id))
        return IOTDM_E_NOT_FOUND;
    sqlite3_stmt *st =
        stmt_take(store, ST_TWIN_TEXTS,
                  "SELECT desired, desired_version, reported, reported_version FROM twins "
                  "WHERE device_id = ?1");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, device_id);
    int rc = sqlite3_step(st);
    iotdm_result r = IOTDM_E_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        out->desired = column_dup(st, 0, &out->desired_len);
        out->desired_version = sqlite3_column_int64(st, 1);
        out->reported = column_dup(st, 2, &out->reported_len);
        out->reported_version = sqlite3_column_int64(st, 3);
        r = out->desired && out->reported ? IOTDM_OK : -ENOMEM;
        if (r != IOTDM_OK)
            hub_twin_texts_free(out);
    } else if (rc != SQLITE_DONE) {
        r = store_sqlite_result(store, rc, "twin texts");
    }
    stmt_give(store, ST_TWIN_TEXTS, st);
    return r;
}

static iotdm_result twin_row_put(sq_store *store, const char *device_id, const hub_twin *twin,
                                 const char *const text[], const size_t len[]);

iotdm_result sq_twin_put(hub_store *base, const char *device_id, const hub_twin *twin)
{
    sq_store *store = (sq_store *)base;
    if (!store_id_ok(device_id))
        return IOTDM_E_NOT_FOUND;
    const json_t *sections[STORE_JSON_BUFS] = {twin->tags, twin->desired, twin->desired_meta,
                                               twin->reported, twin->reported_meta};
    const char *text[STORE_JSON_BUFS];
    size_t len[STORE_JSON_BUFS];
    for (int i = 0; i < STORE_JSON_BUFS; i++) {
        if (sections[i] && !json_is_object(sections[i]))
            return IOTDM_E_MALFORMED;
        if (!sections[i]) { /* kept as stored */
            text[i] = NULL;
            len[i] = 0;
            continue;
        }
        iotdm_result r = store_dump(store, i, sections[i], &text[i], &len[i]);
        if (r != IOTDM_OK)
            return r;
        if (len[i] > INT32_MAX)
            return IOTDM_E_TOO_LARGE;
    }
    if (store->ix.off)
        return twin_row_put(store, device_id, twin, text, len);
    /* The row and its index rows change together or not at all: a twin whose index rows
     * described another version of it could be left out of a query it matches. */
    iotdm_result r = store_savepoint(store);
    if (r == IOTDM_OK)
        r = store_ix_twin_put(store, device_id, twin, text, len);
    if (r == IOTDM_OK)
        r = twin_row_put(store, device_id, twin, text, len);
    return store_savepoint_end(store, r);
}

static iotdm_result twin_row_put(sq_store *store, const char *device_id, const hub_twin *twin,
                                 const char *const text[], const size_t len[])
{
    iotdm_result r;
    sqlite3_stmt *st = store_write_stmt(
        store, ST_TWIN_PUT,
        "UPDATE twins SET tags = COALESCE(?2, tags), "
        "desired = COALESCE(?3, desired), desired_meta = COALESCE(?4, desired_meta), "
        "desired_version = ?5, reported = COALESCE(?6, reported), "
        "reported_meta = COALESCE(?7, reported_meta), "
        "reported_version = ?8, version = ?9, etag = ?10 "
        "WHERE device_id = ?1",
        &r);
    if (!st)
        return r;
    bind_text(st, 1, device_id);
    static const int columns[STORE_JSON_BUFS] = {2, 3, 4, 6, 7};
    for (int i = 0; i < STORE_JSON_BUFS; i++) {
        if (text[i])
            sqlite3_bind_text(st, columns[i], text[i], (int)len[i], SQLITE_STATIC);
        else
            sqlite3_bind_null(st, columns[i]);
    }
    sqlite3_bind_int64(st, 5, twin->desired_version);
    sqlite3_bind_int64(st, 8, twin->reported_version);
    sqlite3_bind_int64(st, 9, twin->version);
    sqlite3_bind_int64(st, 10, (sqlite3_int64)twin->etag);
    r = stmt_exec_row(store, st);
    stmt_give(store, ST_TWIN_PUT, st);
    return r;
}

iotdm_result sq_twin_foreach(hub_store *base, hub_twin_visitor visit, void *ctx)
{
    sq_store *store = (sq_store *)base;
    sqlite3_stmt *st = stmt_take(store, ST_TWIN_LIST,
                                 "SELECT " STORE_DEVICE_COLUMNS ", " STORE_TWIN_COLUMNS
                                 " FROM devices d JOIN twins t ON t.device_id = d.device_id "
                                 "ORDER BY d.device_id");
    if (!st)
        return IOTDM_E_STORAGE;
    hub_device d;
    hub_twin t;
    int rc;
    iotdm_result r = IOTDM_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_device_from_row(st, 0, &d);
        r = store_twin_from_row(st, STORE_DEVICE_NCOLUMNS, &t);
        if (r != IOTDM_OK)
            break;
        bool more = visit(ctx, &d, &t);
        hub_twin_deinit(&t);
        if (!more)
            break;
    }
    if (r == IOTDM_OK && rc != SQLITE_ROW)
        r = store_sqlite_result(store, rc, "twin list");
    stmt_give(store, ST_TWIN_LIST, st);
    return r;
}
