/* PostgreSQL store: device twins, kept as the compact JSON text the hub wrote for each section
 * beside their counters. Queries reach into the sections through GIN indexes on their jsonb form
 * (pg_query.c); PostgreSQL maintains those itself. */
#include <string.h>

#include "common/alloc.h"
#include "hub/store/postgresql/pg_internal.h"

iotdm_result pg_twin_from_row(const PGresult *res, int row, int c, hub_twin *out)
{
    memset(out, 0, sizeof(*out));
    out->tags = pg_json(res, row, c + 0);
    out->desired = pg_json(res, row, c + 1);
    out->desired_meta = pg_json(res, row, c + 2);
    out->desired_version = pg_int(res, row, c + 3);
    out->reported = pg_json(res, row, c + 4);
    out->reported_meta = pg_json(res, row, c + 5);
    out->reported_version = pg_int(res, row, c + 6);
    out->version = pg_int(res, row, c + 7);
    out->etag = (uint64_t)pg_int(res, row, c + 8);
    if (out->tags && out->desired && out->desired_meta && out->reported && out->reported_meta)
        return IOTDM_OK;
    hub_twin_deinit(out);
    return IOTDM_E_STORAGE;
}

/* ---- the writer's cache of the twins its open group holds locked ---- */

void pg_twin_cache_clear(pg_store *s)
{
    for (int i = 0; i < s->ntwin_cache; i++) {
        json_decref(s->twin_cache[i].reported);
        json_decref(s->twin_cache[i].reported_meta);
    }
    s->ntwin_cache = 0;
}

static pg_twin_cached *cache_find(pg_store *s, const char *device_id)
{
    for (int i = 0; i < s->ntwin_cache; i++)
        if (strcmp(s->twin_cache[i].device_id, device_id) == 0)
            return &s->twin_cache[i];
    return NULL;
}

/* Records the reported section as the group now has it (deep copies: the caller goes on to
 * change its own). NULL sections keep what the entry has; a new entry needs both. Only for a
 * row this transaction holds locked. */
static void cache_put(pg_store *s, const char *device_id, const hub_twin *t)
{
    pg_twin_cached *c = cache_find(s, device_id);
    if (!c && (!t->reported || !t->reported_meta || s->ntwin_cache == PG_TWIN_CACHE_MAX))
        return; /* not cached: the next read goes to the database */
    json_t *rep = t->reported ? json_deep_copy(t->reported) : NULL;
    json_t *meta = t->reported_meta ? json_deep_copy(t->reported_meta) : NULL;
    if ((t->reported && !rep) || (t->reported_meta && !meta)) {
        json_decref(rep);
        json_decref(meta);
        pg_twin_cache_clear(s); /* out of memory: the database has it all */
        return;
    }
    if (!c) {
        c = &s->twin_cache[s->ntwin_cache++];
        memset(c, 0, sizeof *c);
        snprintf(c->device_id, sizeof c->device_id, "%s", device_id);
    }
    if (rep) {
        json_decref(c->reported);
        c->reported = rep;
    }
    if (meta) {
        json_decref(c->reported_meta);
        c->reported_meta = meta;
    }
    c->reported_version = t->reported_version;
    c->desired_version = t->desired_version;
    c->version = t->version;
    c->etag = t->etag;
}

/* Runs a one-row read keyed by device id; *out_res NULL (and IOTDM_E_NOT_FOUND) when no row.
 * lock_sql (may be NULL): the same read with FOR UPDATE, which the writer uses. */
static iotdm_result read_one(pg_store *s, pg_stmt_id id, const char *sql, const char *lock_sql,
                             const char *device_id, PGresult **out_res)
{
    *out_res = NULL;
    if (!pg_id_ok(device_id))
        return IOTDM_E_NOT_FOUND;
    /* A twin the writer reads, it writes back (twin_ops.c: read, merge, put). Two nodes doing so
     * at once would each write over the other's change: the row stays locked until the group
     * commits, and the other node's read waits for the committed row. */
    if (lock_sql && !s->reader) {
        iotdm_result r = pg_write_begin(s);
        if (r != IOTDM_OK)
            return r;
        sql = lock_sql;
    }
    pg_params p = {0};
    pp_text(&p, device_id);
    iotdm_result r;
    PGresult *res = pg_select(s, id, sql, &p, &r);
    if (!res)
        return r;
    if (PQntuples(res) != 1) {
        PQclear(res);
        return IOTDM_E_NOT_FOUND;
    }
    if (sql == lock_sql)
        snprintf(s->locked_twin, sizeof s->locked_twin, "%s", device_id);
    *out_res = res;
    return IOTDM_OK;
}

#define TWIN_GET_SQL "SELECT " PG_TWIN_COLUMNS " FROM twins t WHERE t.device_id = $1"
#define TWIN_GET_REPORTED_SQL                                                                      \
    "SELECT reported, reported_meta, reported_version, desired_version, version, etag "            \
    "FROM twins WHERE device_id = $1"

iotdm_result pg_twin_get(hub_store *base, const char *device_id, hub_twin *out_twin)
{
    memset(out_twin, 0, sizeof(*out_twin));
    PGresult *res;
    iotdm_result r = read_one((pg_store *)base, PQ_TWIN_GET, TWIN_GET_SQL,
                              TWIN_GET_SQL " FOR UPDATE", device_id, &res);
    if (r != IOTDM_OK)
        return r;
    r = pg_twin_from_row(res, 0, 0, out_twin);
    PQclear(res);
    pg_store *s = (pg_store *)base;
    if (r == IOTDM_OK && !s->reader)
        cache_put(s, device_id, out_twin); /* read FOR UPDATE: the group holds it */
    return r;
}

/* Only what a reported patch needs: its section, its metadata and the counters. On the writer,
 * from the cache when the group already read the twin (and holds its lock). */
iotdm_result pg_twin_get_sections(hub_store *base, const char *device_id, unsigned sections,
                                  hub_twin *out_twin)
{
    if (sections & (HUB_TWIN_TAGS | HUB_TWIN_DESIRED))
        return pg_twin_get(base, device_id, out_twin);
    memset(out_twin, 0, sizeof(*out_twin));
    pg_store *s = (pg_store *)base;
    pg_twin_cached *c = s->reader ? NULL : cache_find(s, device_id);
    if (c) {
        iotdm_result r = pg_write_begin(s); /* the unit writes next: its savepoint goes first */
        if (r != IOTDM_OK)
            return r;
        out_twin->reported = json_deep_copy(c->reported);
        out_twin->reported_meta = json_deep_copy(c->reported_meta);
        out_twin->reported_version = c->reported_version;
        out_twin->desired_version = c->desired_version;
        out_twin->version = c->version;
        out_twin->etag = c->etag;
        if (out_twin->reported && out_twin->reported_meta)
            return IOTDM_OK;
        hub_twin_deinit(out_twin);
        return -ENOMEM;
    }
    PGresult *res;
    iotdm_result r = read_one((pg_store *)base, PQ_TWIN_GET_REPORTED, TWIN_GET_REPORTED_SQL,
                              TWIN_GET_REPORTED_SQL " FOR UPDATE", device_id, &res);
    if (r != IOTDM_OK)
        return r;
    out_twin->reported = pg_json(res, 0, 0);
    out_twin->reported_meta = pg_json(res, 0, 1);
    out_twin->reported_version = pg_int(res, 0, 2);
    out_twin->desired_version = pg_int(res, 0, 3);
    out_twin->version = pg_int(res, 0, 4);
    out_twin->etag = (uint64_t)pg_int(res, 0, 5);
    PQclear(res);
    if (out_twin->reported && out_twin->reported_meta) {
        if (!s->reader)
            cache_put(s, device_id, out_twin);
        return IOTDM_OK;
    }
    hub_twin_deinit(out_twin);
    return IOTDM_E_STORAGE;
}

static char *column_dup(const PGresult *res, int col, size_t *out_len)
{
    size_t len = (size_t)PQgetlength(res, 0, col);
    char *copy = xmalloc(len + 1);
    if (copy) {
        memcpy(copy, PQgetvalue(res, 0, col), len);
        copy[len] = '\0';
        *out_len = len;
    }
    return copy;
}

/* The device view's sections as stored: no JSON is parsed here. */
iotdm_result pg_twin_texts(hub_store *base, const char *device_id, hub_twin_texts *out)
{
    memset(out, 0, sizeof(*out));
    PGresult *res;
    iotdm_result r = read_one((pg_store *)base, PQ_TWIN_TEXTS,
                              "SELECT desired, desired_version, reported, reported_version "
                              "FROM twins WHERE device_id = $1",
                              NULL, device_id, &res);
    if (r != IOTDM_OK)
        return r;
    out->desired = column_dup(res, 0, &out->desired_len);
    out->desired_version = pg_int(res, 0, 1);
    out->reported = column_dup(res, 2, &out->reported_len);
    out->reported_version = pg_int(res, 0, 3);
    PQclear(res);
    if (out->desired && out->reported)
        return IOTDM_OK;
    hub_twin_texts_free(out);
    return -ENOMEM;
}

iotdm_result pg_twin_put(hub_store *base, const char *device_id, const hub_twin *twin)
{
    pg_store *s = (pg_store *)base;
    if (!pg_id_ok(device_id))
        return IOTDM_E_NOT_FOUND;
    const json_t *sections[PG_JSON_BUFS] = {twin->tags, twin->desired, twin->desired_meta,
                                            twin->reported, twin->reported_meta};
    const char *text[PG_JSON_BUFS];
    size_t len[PG_JSON_BUFS];
    for (int i = 0; i < PG_JSON_BUFS; i++) {
        text[i] = NULL; /* NULL: kept as stored (COALESCE below) */
        len[i] = 0;
        if (!sections[i])
            continue;
        if (!json_is_object(sections[i]))
            return IOTDM_E_MALFORMED;
        iotdm_result r = pg_dump(s, i, sections[i], &text[i], &len[i]);
        if (r != IOTDM_OK)
            return r;
    }
    iotdm_result r = pg_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    /* A row the group holds locked: read FOR UPDATE in this unit, or cached by an earlier one. */
    bool locked =
        s->unit_open && (strcmp(s->locked_twin, device_id) == 0 || cache_find(s, device_id));
    pg_params p = {0};
    pp_text(&p, device_id);
    for (int i = 0; i < PG_JSON_BUFS; i++) {
        if (text[i])
            pp_textn(&p, text[i], len[i]);
        else
            pp_text(&p, NULL);
    }
    pp_int(&p, twin->desired_version);
    pp_int(&p, twin->reported_version);
    pp_int(&p, twin->version);
    pp_int(&p, (int64_t)twin->etag);
    /* The usual write-back of a twin the unit read FOR UPDATE (twin_ops.c): the row exists and
     * is ours until the commit, so only the server can fail it, and the write goes with the next
     * round trip (a reported patch then costs one round trip, not two). */
    iotdm_result (*exec)(pg_store *, pg_stmt_id, const char *, const pg_params *) =
        locked ? pg_exec_deferred : pg_exec_row;
    r = exec(s, PQ_TWIN_PUT,
             "UPDATE twins SET tags = COALESCE($2, tags), "
             "desired = COALESCE($3, desired), desired_meta = COALESCE($4, desired_meta), "
             "reported = COALESCE($5, reported), "
             "reported_meta = COALESCE($6, reported_meta), desired_version = $7, "
             "reported_version = $8, version = $9, etag = $10 WHERE device_id = $1",
             &p);
    if (r == IOTDM_OK && locked)
        cache_put(s, device_id, twin);
    return r;
}

iotdm_result pg_twin_foreach(hub_store *base, hub_twin_visitor visit, void *ctx)
{
    pg_store *s = (pg_store *)base;
    /* In batches by device id: a fleet's twins are never held in memory at once. */
    enum { BATCH = 200 };
    char after[HUB_ID_MAX] = ""; /* ids are never empty: "" sorts first */
    iotdm_result r = pg_read_begin(s);
    bool more = true;
    while (r == IOTDM_OK && more) {
        pg_params p = {0};
        pp_text(&p, after);
        pp_int(&p, BATCH);
        PGresult *res = pg_run(s, PQ_TWIN_LIST,
                               "SELECT " PG_DEVICE_COLUMNS ", " PG_TWIN_COLUMNS
                               " FROM devices d JOIN twins t ON t.device_id = d.device_id "
                               "WHERE d.device_id > $1 ORDER BY d.device_id LIMIT $2",
                               &p, &r);
        if (!res)
            break;
        int rows = PQntuples(res);
        for (int i = 0; i < rows && more && r == IOTDM_OK; i++) {
            hub_device d;
            hub_twin t;
            pg_device_from_row(res, i, 0, &d);
            r = pg_twin_from_row(res, i, PG_DEVICE_NCOLUMNS, &t);
            if (r != IOTDM_OK)
                break;
            more = visit(ctx, &d, &t);
            hub_twin_deinit(&t);
            snprintf(after, sizeof after, "%s", d.device_id);
        }
        PQclear(res);
        if (rows < BATCH)
            break;
    }
    return r;
}
