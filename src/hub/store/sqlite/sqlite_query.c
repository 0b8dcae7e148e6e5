/* SQLite store: the candidates of a query page, in device-id order, narrowed by the twin index.
 *
 * Without a prefilter (sqlite_prefilter.c), one statement walks devices and twins in key order
 * from the page's starting point. With one, a first statement walks the devices in id order and
 * says which are candidates (the PROBE form); while candidates are dense that is cheapest, since
 * the page fills after a few of them. When a batch of devices held few, the rest is listed from
 * the index instead (the LIST form), which may collect and sort candidate ids but never twins. A
 * second statement reads each candidate's device and twin. Rows are read only as the visitor asks
 * for them. */
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

/* A probe batch in which fewer than one device in PROBE_SPARSE was a candidate hands over to the
 * list: a page would walk more devices than the list has candidates. Batches start small, so that
 * a clause with few candidates wastes little, and grow while candidates stay dense. */
#define PROBE_SPARSE    32
#define PROBE_FIRST     64
#define PROBE_BATCH_MAX 4096

typedef struct {
    hub_twin_visitor visit;
    void *ctx;
    bool more;              /* the visitor wants another twin */
    char after[HUB_ID_MAX]; /* the last device looked at */
    int batch;              /* devices the next probe batch walks */
    int rows, hits;         /* of the last probe batch */
} probe_walk;

static iotdm_result probe_batch(sq_store *s, sqlite3_stmt *st, probe_walk *w)
{
    sqlite3_reset(st);
    /* A copy: w->after changes while the statement runs. */
    sqlite3_bind_text(st, 1, w->after, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(st, 2, w->batch);
    w->rows = w->hits = 0;
    iotdm_result r = IOTDM_OK;
    int rc = SQLITE_DONE;
    while (r == IOTDM_OK && w->more && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        w->rows++;
        column_copy(st, 0, w->after, sizeof w->after);
        if (sqlite3_column_int(st, 1)) {
            w->hits++;
            r = fetch(s, w->after, w->visit, w->ctx, &w->more);
        }
    }
    if (r == IOTDM_OK && w->more)
        r = store_sqlite_result(s, rc, "query probe");
    return r;
}

/* Probes while candidates are dense; lists the rest once they are not. */
static iotdm_result scan_prefiltered(sq_store *s, const hub_query *q, const store_prefilter *list,
                                     const char *after_id, hub_twin_visitor visit, void *ctx)
{
    store_prefilter *probe;
    store_pf_kind kind;
    iotdm_result r = store_prefilter_new(q, STORE_PF_PROBE, &probe, &kind);
    if (r != IOTDM_OK || kind != STORE_PF_SQL) {
        store_prefilter_free(probe);
        return r != IOTDM_OK ? r : scan_candidates(s, list, after_id, visit, ctx);
    }
    probe_walk w = {.visit = visit, .ctx = ctx, .more = true, .batch = PROBE_FIRST};
    snprintf(w.after, sizeof w.after, "%s", after_id ? after_id : "");
    sqlite3_stmt *st = NULL;
    r = prepare(s, probe, "", NULL, &st);
    bool dense = true;
    while (r == IOTDM_OK && w.more && dense) {
        r = probe_batch(s, st, &w);
        if (w.rows < w.batch)
            w.more = false; /* every device walked */
        dense = w.hits * PROBE_SPARSE >= w.rows;
        w.batch = w.batch * 4 < PROBE_BATCH_MAX ? w.batch * 4 : PROBE_BATCH_MAX;
    }
    sqlite3_finalize(st);
    store_prefilter_free(probe);
    if (r == IOTDM_OK && w.more)
        r = scan_candidates(s, list, w.after, visit, ctx);
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
    return store_prefilter_new(q, STORE_PF_LIST, out, kind);
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
        r = scan_prefiltered(s, q, p, after_id, visit, ctx);
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
