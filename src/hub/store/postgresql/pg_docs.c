/* PostgreSQL store: fleet documents (jobs, their per-device records, configurations;
 * docs/jobs.md). store.c has checked the arguments: keys are short UTF-8, documents objects within
 * the limit. Every expected outcome (a document that exists, one that does not, another etag) is
 * a row count, never an SQL error, which would fail the whole transaction (pg_internal.h). */
#include <stdint.h>
#include <string.h>

#include "common/log.h"
#include "hub/store/postgresql/pg_internal.h"

/* Documents fetched per round trip by a listing: a visitor that stops early leaves the rest
 * unread, and a long walk holds no more than this many at a time. */
enum { DOC_BATCH = 100 };

static void pp_address(pg_params *p, hub_doc_collection coll, const char *scope, const char *id)
{
    pp_int(p, (int64_t)coll);
    pp_text(p, scope);
    if (id)
        pp_text(p, id);
}

/* The document in column col: NULL when it is not a JSON object (logged), which only a damaged
 * database or a hand edit can make. */
static json_t *load_doc(const PGresult *res, int row, int col, hub_doc_collection coll,
                        const char *scope, const char *id)
{
    return hub_doc_loaded(pg_json(res, row, col), coll, scope, id);
}

iotdm_result pg_doc_put(hub_store *base, hub_doc_collection coll, const char *scope, const char *id,
                        const json_t *doc, uint64_t if_match, uint64_t *out_etag)
{
    pg_store *s = (pg_store *)base;
    /* Each kind of put is one statement, so that two writers (two nodes) cannot both replace the
     * same etag; it returns the new etag, or no row when its condition does not hold. */
    pg_stmt_id sid;
    const char *sql;
    iotdm_result refused;
    if (if_match == 0) {
        sid = PQ_DOC_UPSERT;
        sql = "INSERT INTO fleet_docs AS d(collection, scope, id, etag, body) "
              "VALUES($1::integer, $2::text, $3::text, 1, $4::text) "
              "ON CONFLICT (collection, scope, id) DO UPDATE SET etag = d.etag + 1, "
              "body = excluded.body RETURNING etag";
        refused = IOTDM_E_STORAGE; /* an upsert always returns its row */
    } else if (if_match == HUB_DOC_CREATE) {
        sid = PQ_DOC_CREATE;
        sql = "INSERT INTO fleet_docs(collection, scope, id, etag, body) "
              "VALUES($1::integer, $2::text, $3::text, 1, $4::text) "
              "ON CONFLICT DO NOTHING RETURNING etag";
        refused = IOTDM_E_EXISTS;
    } else {
        sid = PQ_DOC_REPLACE;
        sql = "UPDATE fleet_docs SET etag = etag + 1, body = $4::text "
              "WHERE collection = $1::integer AND scope = $2::text AND id = $3::text "
              "AND etag = $5::bigint RETURNING etag";
        refused = IOTDM_E_PRECONDITION; /* another etag, or no document at all */
    }
    const char *text;
    size_t len;
    iotdm_result r = pg_dump(s, 0, doc, &text, &len);
    if (r == IOTDM_OK)
        r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_address(&p, coll, scope, id);
    pp_textn(&p, text, len);
    if (sid == PQ_DOC_REPLACE)
        pp_int(&p, (int64_t)if_match); /* above INT64_MAX: negative, matches none */
    PGresult *res = pg_run(s, sid, sql, &p, &r);
    if (!res)
        return r;
    r = refused;
    if (PQntuples(res) == 1) {
        if (out_etag)
            *out_etag = (uint64_t)pg_int(res, 0, 0);
        r = IOTDM_OK;
    }
    PQclear(res);
    return r;
}

iotdm_result pg_doc_get(hub_store *base, hub_doc_collection coll, const char *scope, const char *id,
                        json_t **out_doc, uint64_t *out_etag)
{
    pg_store *s = (pg_store *)base;
    pg_params p = {0};
    pp_address(&p, coll, scope, id);
    iotdm_result r;
    PGresult *res = pg_select(s, PQ_DOC_GET,
                              "SELECT etag, body FROM fleet_docs "
                              "WHERE collection = $1::integer AND scope = $2 AND id = $3",
                              &p, &r);
    if (!res)
        return r;
    r = IOTDM_E_NOT_FOUND;
    if (PQntuples(res) == 1) {
        *out_doc = load_doc(res, 0, 1, coll, scope, id);
        r = *out_doc ? IOTDM_OK : IOTDM_E_STORAGE;
        if (*out_doc && out_etag)
            *out_etag = (uint64_t)pg_int(res, 0, 0);
    }
    PQclear(res);
    return r;
}

iotdm_result pg_doc_delete(hub_store *base, hub_doc_collection coll, const char *scope,
                           const char *id, uint64_t if_match)
{
    pg_store *s = (pg_store *)base;
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_address(&p, coll, scope, id);
    pp_int(&p, (int64_t)if_match);
    uint64_t deleted = 0;
    r = pg_exec(s, PQ_DOC_DELETE,
                "DELETE FROM fleet_docs WHERE collection = $1::integer AND scope = $2 AND id = $3 "
                "AND ($4::bigint = 0 OR etag = $4::bigint)",
                &p, &deleted);
    if (r != IOTDM_OK || deleted > 0)
        return r;
    if (if_match == 0)
        return IOTDM_E_NOT_FOUND;
    /* No row went: a second read tells a document under another etag from none at all. */
    pg_params key = {0};
    pp_address(&key, coll, scope, id);
    PGresult *res = pg_select(s, PQ_DOC_EXISTS,
                              "SELECT 1 FROM fleet_docs "
                              "WHERE collection = $1::integer AND scope = $2 AND id = $3",
                              &key, &r);
    if (!res)
        return r;
    r = PQntuples(res) > 0 ? IOTDM_E_PRECONDITION : IOTDM_E_NOT_FOUND;
    PQclear(res);
    return r;
}

iotdm_result pg_doc_foreach(hub_store *base, hub_doc_collection coll, const char *scope,
                            const char *after_scope, const char *after_id, size_t max,
                            hub_fleet_doc_visitor visit, void *ctx)
{
    pg_store *s = (pg_store *)base;
    /* The cursor: the caller's for the first batch, then the last row of each. Both statements
     * walk the primary key in its order (the row comparison is an index bound), so a batch reads
     * only the rows it returns. */
    char last_scope[HUB_DOC_KEY_MAX + 1], last_id[HUB_DOC_KEY_MAX + 1];
    const char *from_scope = scope ? scope : after_scope, *from_id = after_id;
    bool more = true;
    iotdm_result r = pg_read_begin(s);
    while (r == IOTDM_OK && more && max > 0) {
        int64_t want = max < DOC_BATCH ? (int64_t)max : DOC_BATCH;
        pg_params p = {0};
        pp_address(&p, coll, from_scope, from_id);
        pp_int(&p, want);
        PGresult *res =
            scope ? pg_run(s, PQ_DOC_LIST_SCOPE,
                           "SELECT scope, id, etag, body FROM fleet_docs "
                           "WHERE collection = $1::integer AND scope = $2::text AND id > $3::text "
                           "ORDER BY id LIMIT $4::bigint",
                           &p, &r)
                  : pg_run(s, PQ_DOC_LIST_ALL,
                           "SELECT scope, id, etag, body FROM fleet_docs "
                           "WHERE collection = $1::integer AND (scope, id) > ($2::text, $3::text) "
                           "ORDER BY scope, id LIMIT $4::bigint",
                           &p, &r);
        if (!res)
            break;
        int rows = PQntuples(res);
        for (int i = 0; i < rows && more; i++) {
            const char *row_scope = PQgetvalue(res, i, 0), *row_id = PQgetvalue(res, i, 1);
            json_t *doc = load_doc(res, i, 3, coll, row_scope, row_id);
            if (!doc) {
                r = IOTDM_E_STORAGE;
                break;
            }
            max--;
            more = visit(ctx, row_scope, row_id, doc, (uint64_t)pg_int(res, i, 2));
            json_decref(doc);
        }
        if (rows > 0) {
            pg_copy(res, rows - 1, 0, last_scope, sizeof last_scope);
            pg_copy(res, rows - 1, 1, last_id, sizeof last_id);
            from_scope = last_scope;
            from_id = last_id;
        }
        PQclear(res);
        if (rows < want)
            break;
    }
    return r;
}

iotdm_result pg_doc_delete_scope(hub_store *base, hub_doc_collection coll, const char *scope,
                                 size_t *out_deleted)
{
    pg_store *s = (pg_store *)base;
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    pg_params p = {0};
    pp_address(&p, coll, scope, NULL);
    uint64_t deleted = 0;
    r = pg_exec(s, PQ_DOC_DELETE_SCOPE,
                "DELETE FROM fleet_docs WHERE collection = $1::integer AND scope = $2", &p,
                &deleted);
    if (r == IOTDM_OK && out_deleted)
        *out_deleted = (size_t)deleted;
    return r;
}

iotdm_result pg_doc_count(hub_store *base, hub_doc_collection coll, const char *scope,
                          size_t *out_count)
{
    pg_store *s = (pg_store *)base;
    pg_params p = {0};
    pp_int(&p, (int64_t)coll);
    iotdm_result r;
    PGresult *res;
    if (scope) {
        pp_text(&p, scope);
        res = pg_select(s, PQ_DOC_COUNT_SCOPE,
                        "SELECT COUNT(*) FROM fleet_docs WHERE collection = $1::integer "
                        "AND scope = $2",
                        &p, &r);
    } else {
        res = pg_select(s, PQ_DOC_COUNT,
                        "SELECT COUNT(*) FROM fleet_docs WHERE collection = $1::integer", &p, &r);
    }
    if (!res)
        return r;
    *out_count = (size_t)pg_int(res, 0, 0);
    PQclear(res);
    return IOTDM_OK;
}
