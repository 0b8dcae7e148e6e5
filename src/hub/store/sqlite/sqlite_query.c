/* SQLite store: the candidates of a query page, in device-id order, narrowed by the twin index.
 *
 * With a prefilter (sqlite_prefilter.c) one statement lists the candidates' ids and a second reads
 * each candidate's device and twin: the first may need SQLite to sort, and sorting ids only keeps
 * that small, while twins stream one at a time. Without one, a single statement walks devices and
 * twins in key order from the page's starting point. Either way rows are read only as the visitor
 * asks for them. */
#include <stdio.h>
#include <string.h>

#include "hub/query/query.h"
#include "hub/store/sqlite/sqlite_prefilter.h"

#define QUERY_ROW_COLUMNS "SELECT " STORE_DEVICE_COLUMNS ", " STORE_TWIN_COLUMNS " "

/* Hands the device and twin of the current row to the visitor; *more: whether it wants another. */
static iotdm_result visit_row(sqlite3_stmt *st, hub_twin_visitor visit, void *ctx, bool *more)
{
    hub_device d;
    hub_twin t;
    store_device_from_row(st, 0, &d);
    iotdm_result r = store_twin_from_row(st, STORE_DEVICE_NCOLUMNS, &t);
    if (r != IOTDM_OK)
        return r;
    *more = visit(ctx, &d, &t);
    hub_twin_deinit(&t);
    return IOTDM_OK;
}

static iotdm_result scan_all(sq_store *s, const char *after_id, hub_twin_visitor visit, void *ctx)
{
    sqlite3_stmt *st =
        stmt_take(s, ST_QUERY_SCAN,
                  QUERY_ROW_COLUMNS "FROM devices d JOIN twins t ON t.device_id = d.device_id "
                                    "WHERE d.device_id > ?1 ORDER BY d.device_id");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, after_id ? after_id : "");
    iotdm_result r = IOTDM_OK;
    bool more = true;
    int rc = SQLITE_DONE;
    while (r == IOTDM_OK && more && (rc = sqlite3_step(st)) == SQLITE_ROW)
        r = visit_row(st, visit, ctx, &more);
    if (r == IOTDM_OK && more)
        r = store_sqlite_result(s, rc, "query scan");
    stmt_give(s, ST_QUERY_SCAN, st);
    return r;
}

/* Visits one candidate; one that went away since the id was listed is skipped. */
static iotdm_result fetch(sq_store *s, const char *device_id, hub_twin_visitor visit, void *ctx,
                          bool *more)
{
    sqlite3_stmt *st =
        stmt_take(s, ST_QUERY_FETCH,
                  QUERY_ROW_COLUMNS "FROM devices d JOIN twins t ON t.device_id = d.device_id "
                                    "WHERE d.device_id = ?1");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, device_id);
    int rc = sqlite3_step(st);
    iotdm_result r = rc == SQLITE_ROW    ? visit_row(st, visit, ctx, more)
                     : rc == SQLITE_DONE ? IOTDM_OK
                                         : store_sqlite_result(s, rc, "query fetch");
    stmt_give(s, ST_QUERY_FETCH, st);
    return r;
}

static iotdm_result prepare(sq_store *s, const store_prefilter *p, const char *prefix,
                            const char *after_id, sqlite3_stmt **out)
{
    char *sql = sqlite3_mprintf("%s%s", prefix, store_prefilter_sql(p));
    if (!sql)
        return -ENOMEM;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, out, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK)
        return store_sqlite_result(s, rc, "query prepare");
    bind_text(*out, 1, after_id ? after_id : "");
    store_prefilter_bind(p, *out);
    return IOTDM_OK;
}

static iotdm_result scan_candidates(sq_store *s, const store_prefilter *p, const char *after_id,
                                    hub_twin_visitor visit, void *ctx)
{
    sqlite3_stmt *st = NULL;
    iotdm_result r = prepare(s, p, "", after_id, &st);
    bool more = true;
    int rc = SQLITE_DONE;
    while (r == IOTDM_OK && more && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        char id[HUB_ID_MAX];
        column_copy(st, 0, id, sizeof id);
        r = fetch(s, id, visit, ctx, &more);
    }
    if (r == IOTDM_OK && more)
        r = store_sqlite_result(s, rc, "query candidates");
    sqlite3_finalize(st);
    return r;
}

/* The prefilter of q, or none (*kind STORE_PF_ALL) while the index is not built. */
static iotdm_result plan(sq_store *s, const hub_query *q, store_prefilter **out,
                         store_pf_kind *kind)
{
    *out = NULL;
    *kind = STORE_PF_ALL;
    if (!store_ix_built(s))
        return IOTDM_OK;
    return store_prefilter_new(q, out, kind);
}

iotdm_result sq_query_page(hub_store *base, const hub_query *q, const char *after_id,
                           hub_twin_visitor visit, void *ctx)
{
    sq_store *s = (sq_store *)base;
    if (hub_query_source_of(q) != HUB_QUERY_FROM_DEVICES)
        return IOTDM_OK; /* modules and jobs are not stored yet */
    store_prefilter *p;
    store_pf_kind kind;
    iotdm_result r = plan(s, q, &p, &kind);
    if (r == IOTDM_OK && kind == STORE_PF_ALL)
        r = scan_all(s, after_id, visit, ctx);
    else if (r == IOTDM_OK && kind == STORE_PF_SQL)
        r = scan_candidates(s, p, after_id, visit, ctx);
    store_prefilter_free(p);
    return r;
}

static void append_plan(sqlite3_stmt *st, char *out, size_t cap)
{
    while (sqlite3_step(st) == SQLITE_ROW) {
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s", len ? "\n" : "",
                 (const char *)sqlite3_column_text(st, 3));
    }
}

iotdm_result hub_store_sqlite_explain(hub_store *store, const hub_query *q, char *out, size_t cap)
{
    if (strcmp(store->ops->name, "sqlite") != 0)
        return IOTDM_E_UNSUPPORTED;
    sq_store *s = (sq_store *)store;
    if (cap)
        out[0] = '\0';
    store_prefilter *p;
    store_pf_kind kind;
    iotdm_result r = plan(s, q, &p, &kind);
    if (r != IOTDM_OK || kind != STORE_PF_SQL) {
        if (r == IOTDM_OK && cap)
            snprintf(out, cap, "%s", kind == STORE_PF_NONE ? "no candidates" : "");
        return r;
    }
    sqlite3_stmt *st = NULL;
    r = prepare(s, p, "EXPLAIN QUERY PLAN ", NULL, &st);
    if (r == IOTDM_OK && cap)
        append_plan(st, out, cap);
    sqlite3_finalize(st);
    store_prefilter_free(p);
    return r;
}
