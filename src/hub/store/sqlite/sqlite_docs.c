/* SQLite store: fleet documents (jobs, their per-device records, configurations; docs/jobs.md).
 * store.c has checked the arguments: keys are short UTF-8, documents objects within the limit. */
#include <stdint.h>
#include <string.h>

#include "common/log.h"
#include "hub/store/sqlite/sqlite_internal.h"

/* Binds ?1 collection and, when given, ?2 scope and ?3 id. */
static void bind_address(sqlite3_stmt *st, hub_doc_collection coll, const char *scope,
                         const char *id)
{
    sqlite3_bind_int(st, 1, (int)coll);
    if (scope)
        bind_text(st, 2, scope);
    if (id)
        bind_text(st, 3, id);
}

static sqlite3_int64 limit_of(size_t max)
{
    return max > INT64_MAX ? INT64_MAX : (sqlite3_int64)max;
}

/* The document in column col: NULL when it is not a JSON object (logged), which only a damaged
 * database or a hand edit can make. */
static json_t *load_doc(sqlite3_stmt *st, int col, hub_doc_collection coll, const char *scope,
                        const char *id)
{
    return hub_doc_loaded(store_load(st, col), coll, scope, id);
}

iotdm_result sq_doc_put(hub_store *base, hub_doc_collection coll, const char *scope, const char *id,
                        const json_t *doc, uint64_t if_match, uint64_t *out_etag)
{
    sq_store *s = (sq_store *)base;
    /* Each kind of put is one statement that returns the new etag, or no row when its condition
     * does not hold; what that means depends on the kind. */
    store_stmt_id sid;
    const char *sql;
    iotdm_result refused;
    if (if_match == 0) {
        sid = ST_DOC_UPSERT;
        sql = "INSERT INTO fleet_docs(collection, scope, id, etag, body) VALUES(?1, ?2, ?3, 1, ?4) "
              "ON CONFLICT(collection, scope, id) DO UPDATE SET etag = etag + 1, "
              "body = excluded.body RETURNING etag";
        refused = IOTDM_E_STORAGE; /* an upsert always returns its row */
    } else if (if_match == HUB_DOC_CREATE) {
        sid = ST_DOC_CREATE;
        sql = "INSERT INTO fleet_docs(collection, scope, id, etag, body) VALUES(?1, ?2, ?3, 1, ?4) "
              "ON CONFLICT DO NOTHING RETURNING etag";
        refused = IOTDM_E_EXISTS;
    } else {
        sid = ST_DOC_REPLACE;
        sql = "UPDATE fleet_docs SET etag = etag + 1, body = ?4 "
              "WHERE collection = ?1 AND scope = ?2 AND id = ?3 AND etag = ?5 RETURNING etag";
        refused = IOTDM_E_PRECONDITION; /* another etag, or no document at all */
    }
    const char *text;
    size_t len;
    iotdm_result r = store_dump(s, 0, doc, &text, &len);
    if (r != IOTDM_OK)
        return r;
    sqlite3_stmt *st = store_write_stmt(s, sid, sql, &r);
    if (!st)
        return r;
    bind_address(st, coll, scope, id);
    sqlite3_bind_text(st, 4, text, (int)len, SQLITE_STATIC);
    if (sid == ST_DOC_REPLACE)
        sqlite3_bind_int64(st, 5, (sqlite3_int64)if_match); /* above INT64_MAX: matches none */
    int rc = sqlite3_step(st);
    bool written = rc == SQLITE_ROW;
    uint64_t etag = written ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(st);
    r = store_sqlite_result(s, rc, "doc put");
    stmt_give(s, sid, st);
    if (r != IOTDM_OK)
        return r;
    if (!written)
        return refused;
    if (out_etag)
        *out_etag = etag;
    return IOTDM_OK;
}

iotdm_result sq_doc_get(hub_store *base, hub_doc_collection coll, const char *scope, const char *id,
                        json_t **out_doc, uint64_t *out_etag)
{
    sq_store *s = (sq_store *)base;
    sqlite3_stmt *st = stmt_take(s, ST_DOC_GET,
                                 "SELECT etag, body FROM fleet_docs "
                                 "WHERE collection = ?1 AND scope = ?2 AND id = ?3");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_address(st, coll, scope, id);
    int rc = sqlite3_step(st);
    iotdm_result r = IOTDM_E_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        *out_doc = load_doc(st, 1, coll, scope, id);
        r = *out_doc ? IOTDM_OK : IOTDM_E_STORAGE;
        if (*out_doc && out_etag)
            *out_etag = (uint64_t)sqlite3_column_int64(st, 0);
    } else if (rc != SQLITE_DONE) {
        r = store_sqlite_result(s, rc, "doc get");
    }
    stmt_give(s, ST_DOC_GET, st);
    return r;
}

/* Why a conditional write touched no row: the document is there (another etag) or is not. */
static iotdm_result why_no_doc(sq_store *s, hub_doc_collection coll, const char *scope,
                               const char *id)
{
    sqlite3_stmt *st = stmt_take(s, ST_DOC_EXISTS,
                                 "SELECT 1 FROM fleet_docs "
                                 "WHERE collection = ?1 AND scope = ?2 AND id = ?3");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_address(st, coll, scope, id);
    int rc = sqlite3_step(st);
    iotdm_result r = rc == SQLITE_ROW    ? IOTDM_E_PRECONDITION
                     : rc == SQLITE_DONE ? IOTDM_E_NOT_FOUND
                                         : store_sqlite_result(s, rc, "doc exists");
    stmt_give(s, ST_DOC_EXISTS, st);
    return r;
}

iotdm_result sq_doc_delete(hub_store *base, hub_doc_collection coll, const char *scope,
                           const char *id, uint64_t if_match)
{
    sq_store *s = (sq_store *)base;
    iotdm_result r;
    sqlite3_stmt *st = store_write_stmt(s, ST_DOC_DELETE,
                                        "DELETE FROM fleet_docs WHERE collection = ?1 AND "
                                        "scope = ?2 AND id = ?3 AND (?4 = 0 OR etag = ?4)",
                                        &r);
    if (!st)
        return r;
    bind_address(st, coll, scope, id);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)if_match);
    r = stmt_exec(s, st);
    bool deleted = sqlite3_changes(s->db) > 0;
    stmt_give(s, ST_DOC_DELETE, st);
    if (r != IOTDM_OK || deleted)
        return r;
    return if_match == 0 ? IOTDM_E_NOT_FOUND : why_no_doc(s, coll, scope, id);
}

iotdm_result sq_doc_foreach(hub_store *base, hub_doc_collection coll, const char *scope,
                            const char *after_scope, const char *after_id, size_t max,
                            hub_fleet_doc_visitor visit, void *ctx)
{
    sq_store *s = (sq_store *)base;
    /* Both walk the primary key in its order: no sort, and stopping early reads no further. */
    store_stmt_id sid = scope ? ST_DOC_LIST_SCOPE : ST_DOC_LIST_ALL;
    sqlite3_stmt *st =
        scope ? stmt_take(s, sid,
                          "SELECT scope, id, etag, body FROM fleet_docs WHERE collection = ?1 "
                          "AND scope = ?2 AND id > ?3 ORDER BY id LIMIT ?4")
              : stmt_take(s, sid,
                          "SELECT scope, id, etag, body FROM fleet_docs WHERE collection = ?1 "
                          "AND (scope, id) > (?2, ?3) ORDER BY scope, id LIMIT ?4");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_address(st, coll, scope ? scope : after_scope, after_id);
    sqlite3_bind_int64(st, 4, limit_of(max));
    iotdm_result r = IOTDM_OK;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *row_scope = (const char *)sqlite3_column_text(st, 0);
        const char *row_id = (const char *)sqlite3_column_text(st, 1);
        json_t *doc = load_doc(st, 3, coll, row_scope, row_id);
        if (!doc) {
            r = IOTDM_E_STORAGE;
            break;
        }
        bool more = visit(ctx, row_scope, row_id, doc, (uint64_t)sqlite3_column_int64(st, 2));
        json_decref(doc);
        if (!more)
            break;
    }
    if (r == IOTDM_OK && rc != SQLITE_ROW && rc != SQLITE_DONE)
        r = store_sqlite_result(s, rc, "doc list");
    stmt_give(s, sid, st);
    return r;
}

iotdm_result sq_doc_delete_scope(hub_store *base, hub_doc_collection coll, const char *scope,
                                 size_t *out_deleted)
{
    sq_store *s = (sq_store *)base;
    iotdm_result r;
    sqlite3_stmt *st = store_write_stmt(
        s, ST_DOC_DELETE_SCOPE, "DELETE FROM fleet_docs WHERE collection = ?1 AND scope = ?2", &r);
    if (!st)
        return r;
    bind_address(st, coll, scope, NULL);
    r = stmt_exec(s, st);
    if (r == IOTDM_OK && out_deleted)
        *out_deleted = (size_t)sqlite3_changes(s->db);
    stmt_give(s, ST_DOC_DELETE_SCOPE, st);
    return r;
}

iotdm_result sq_doc_count(hub_store *base, hub_doc_collection coll, const char *scope,
                          size_t *out_count)
{
    sq_store *s = (sq_store *)base;
    store_stmt_id sid = scope ? ST_DOC_COUNT_SCOPE : ST_DOC_COUNT;
    sqlite3_stmt *st =
        scope ? stmt_take(s, sid,
                          "SELECT COUNT(*) FROM fleet_docs WHERE collection = ?1 AND scope = ?2")
              : stmt_take(s, sid, "SELECT COUNT(*) FROM fleet_docs WHERE collection = ?1");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_address(st, coll, scope, NULL);
    int rc = sqlite3_step(st);
    iotdm_result r = IOTDM_OK;
    if (rc == SQLITE_ROW)
        *out_count = (size_t)sqlite3_column_int64(st, 0);
    else
        r = store_sqlite_result(s, rc, "doc count");
    stmt_give(s, sid, st);
    return r;
}
