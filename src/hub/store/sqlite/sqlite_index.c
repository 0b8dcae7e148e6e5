/* SQLite store: the twin index that queries narrow their candidates with (sqlite_query.c).
 *
 * One row per node of the tags, desired and reported sections: (device_id, section, path_id,
 * value), keyed by the first three, with an index on (path_id, value, device_id) for the queries.
 * A twin put compares each section's new text with the stored one and diffs only the sections that
 * changed, node by node against their index rows, so a reported patch that changes two leaves
 * writes two rows. */
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "hub/store/sqlite/sqlite_internal.h"

/* Deeper sections (the hub accepts 10 levels) are left unindexed rather than walked. */
#define IX_MAX_DEPTH 32

struct store_ix_node {
    sqlite3_int64 path_id;
    store_ix_value v;
};

typedef enum { IX_INSERT, IX_UPDATE, IX_DELETE } ix_op_kind;

struct store_ix_op {
    ix_op_kind kind;
    sqlite3_int64 path_id;
    size_t node; /* IX_INSERT, IX_UPDATE: the new node */
};

static const unsigned char blob_tags[] = {STORE_IX_FALSE, STORE_IX_TRUE, STORE_IX_OBJECT,
                                          STORE_IX_ARRAY};

void store_ix_value_of(const json_t *v, store_ix_value *out)
{
    memset(out, 0, sizeof *out);
    /* 2^53: every integer up to it is exactly a double, so storing it as an integer keeps the
     * numeric order SQLite applies between integers and reals. */
    const json_int_t exact = (json_int_t)1 << 53;
    switch (json_typeof(v)) {
    case JSON_OBJECT:
    case JSON_ARRAY:
    case JSON_TRUE:
    case JSON_FALSE:
        out->type = SQLITE_BLOB;
        out->i = json_is_object(v)  ? STORE_IX_OBJECT
                 : json_is_array(v) ? STORE_IX_ARRAY
                 : json_is_true(v)  ? STORE_IX_TRUE
                                    : STORE_IX_FALSE;
        break;
    case JSON_INTEGER:
        out->i = json_integer_value(v);
        out->type = out->i >= -exact && out->i <= exact ? SQLITE_INTEGER : SQLITE_FLOAT;
        out->d = (double)out->i;
        break;
    case JSON_REAL:
        out->type = SQLITE_FLOAT;
        out->d = json_real_value(v);
        break;
    case JSON_STRING:
        out->type = SQLITE_TEXT;
        out->text = json_string_value(v);
        out->len = json_string_length(v);
        if (out->len > STORE_IX_TEXT_MAX)
            out->len = STORE_IX_TEXT_MAX;
        break;
    default:
        out->type = SQLITE_NULL;
        break;
    }
}

int store_ix_bind(sqlite3_stmt *st, int idx, const store_ix_value *v)
{
    switch (v->type) {
    case SQLITE_INTEGER:
        return sqlite3_bind_int64(st, idx, v->i);
    case SQLITE_FLOAT:
        return sqlite3_bind_double(st, idx, v->d);
    case SQLITE_TEXT:
        return sqlite3_bind_text(st, idx, v->text, (int)v->len, SQLITE_STATIC);
    case SQLITE_BLOB:
        return sqlite3_bind_blob(st, idx, &blob_tags[v->i], 1, SQLITE_STATIC);
    default:
        return sqlite3_bind_null(st, idx);
    }
}

/* Whether column col of st holds v as store_ix_bind would have stored it. */
static bool ix_same(sqlite3_stmt *st, int col, const store_ix_value *v)
{
    if (sqlite3_column_type(st, col) != v->type)
        return false;
    switch (v->type) {
    case SQLITE_INTEGER:
        return sqlite3_column_int64(st, col) == v->i;
    case SQLITE_FLOAT:
        return sqlite3_column_double(st, col) == v->d;
    case SQLITE_TEXT:
        return (size_t)sqlite3_column_bytes(st, col) == v->len &&
               memcmp(sqlite3_column_text(st, col), v->text, v->len) == 0;
    case SQLITE_BLOB:
        return sqlite3_column_bytes(st, col) == 1 &&
               *(const unsigned char *)sqlite3_column_blob(st, col) == blob_tags[v->i];
    default:
        return true;
    }
}

/* FNV-1a: cheap on the short strings paths are made of. Path ids need not be unique (see
 * sqlite_query.c): a collision between devices only adds candidates, and one within a twin
 * section leaves that section unindexed. */
static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

uint64_t store_ix_path_start(int section)
{
    unsigned char b = (unsigned char)section;
    return fnv(0xcbf29ce484222325ULL, &b, 1);
}

uint64_t store_ix_path_step(uint64_t h, const char *name, size_t len)
{
    /* The length first, so that names never run into each other. */
    uint32_t n = (uint32_t)len;
    return fnv(fnv(h, &n, sizeof n), name, len);
}

sqlite3_int64 store_ix_path_id(uint64_t h)
{
    /* A final mix, then 47 bits: a positive integer SQLite stores in 6 bytes. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    sqlite3_int64 id = (sqlite3_int64)(h & ((UINT64_C(1) << 47) - 1));
    return id == STORE_IX_UNINDEXED ? 1 : id;
}

static bool grow(void **array, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need)
        n *= 2;
    void *p = xrealloc(*array, n * size);
    if (!p)
        return false;
    *array = p;
    *cap = n;
    return true;
}

typedef struct {
    store_ix *ix;
    size_t n;
    bool unindexed; /* too many nodes, too deep, or a path id twice */
} ix_walk;

/* Appends the members of obj (and, for objects, theirs) as nodes. -ENOMEM, else IOTDM_OK. */
static iotdm_result walk(ix_walk *w, const json_t *obj, uint64_t h, unsigned depth)
{
    const char *key;
    size_t klen;
    const json_t *v;
    json_object_keylen_foreach((json_t *)obj, key, klen, v)
    {
        /* A section's own "$version" and "$metadata" are not data (the service view overrides
         * them), and queries on them are never narrowed. */
        if (depth == 0 && key[0] == '$' &&
            (strcmp(key, "$version") == 0 || strcmp(key, "$metadata") == 0))
            continue;
        if (w->n >= STORE_IX_MAX_NODES || depth >= IX_MAX_DEPTH) {
            w->unindexed = true;
            return IOTDM_OK;
        }
        if (!grow((void **)&w->ix->nodes, &w->ix->nodes_cap, w->n + 1, sizeof(store_ix_node)))
            return -ENOMEM;
        uint64_t hh = store_ix_path_step(h, key, klen);
        store_ix_node *node = &w->ix->nodes[w->n++];
        node->path_id = store_ix_path_id(hh);
        store_ix_value_of(v, &node->v);
        if (json_is_object(v)) {
            iotdm_result r = walk(w, v, hh, depth + 1);
            if (r != IOTDM_OK || w->unindexed)
                return r;
        }
    }
    return IOTDM_OK;
}

static int by_path_id(const void *a, const void *b)
{
    sqlite3_int64 x = ((const store_ix_node *)a)->path_id, y = ((const store_ix_node *)b)->path_id;
    return (x > y) - (x < y);
}

/* The rows a section should have, sorted by path id, in s->ix.nodes; *out_n of them. A section
 * that cannot be indexed gets the single marker row. */
static iotdm_result section_nodes(sq_store *s, int section, const json_t *obj, size_t *out_n)
{
    ix_walk w = {&s->ix, 0, false};
    iotdm_result r = obj ? walk(&w, obj, store_ix_path_start(section), 0) : IOTDM_OK;
    if (r != IOTDM_OK)
        return r;
    if (w.n > 1)
        qsort(s->ix.nodes, w.n, sizeof(store_ix_node), by_path_id);
    for (size_t i = 1; i < w.n && !w.unindexed; i++)
        w.unindexed = s->ix.nodes[i].path_id == s->ix.nodes[i - 1].path_id;
    if (w.unindexed) {
        if (!grow((void **)&s->ix.nodes, &s->ix.nodes_cap, 1, sizeof(store_ix_node)))
            return -ENOMEM;
        memset(&s->ix.nodes[0], 0, sizeof(store_ix_node));
        s->ix.nodes[0].path_id = STORE_IX_UNINDEXED;
        s->ix.nodes[0].v.type = SQLITE_INTEGER;
        s->ix.nodes[0].v.i = section;
        w.n = 1;
    }
    *out_n = w.n;
    return IOTDM_OK;
}

static bool add_op(store_ix *ix, size_t *nops, ix_op_kind kind, sqlite3_int64 path_id, size_t node)
{
    if (!grow((void **)&ix->ops, &ix->ops_cap, *nops + 1, sizeof(store_ix_op)))
        return false;
    ix->ops[(*nops)++] = (store_ix_op){kind, path_id, node};
    return true;
}

/* Merges the stored rows of the section (in path id order) with the n new nodes into the writes
 * that turn one into the other. The writes wait until the scan is over: SQLite does not promise
 * what a scan sees of rows changed under it. */
static iotdm_result diff_rows(sq_store *s, const char *device_id, int section, size_t n,
                              size_t *out_nops)
{
    sqlite3_stmt *st = stmt_take(s, ST_INDEX_LIST,
                                 "SELECT path_id, value FROM twin_index "
                                 "WHERE device_id = ?1 AND section = ?2 ORDER BY path_id");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, device_id);
    sqlite3_bind_int(st, 2, section);
    size_t i = 0, nops = 0;
    bool ok = true;
    int rc = SQLITE_DONE;
    while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        sqlite3_int64 id = sqlite3_column_int64(st, 0);
        for (; ok && i < n && s->ix.nodes[i].path_id < id; i++)
            ok = add_op(&s->ix, &nops, IX_INSERT, s->ix.nodes[i].path_id, i);
        if (!ok)
            break;
        if (i < n && s->ix.nodes[i].path_id == id) {
            if (!ix_same(st, 1, &s->ix.nodes[i].v))
                ok = add_op(&s->ix, &nops, IX_UPDATE, id, i);
            i++;
        } else {
            ok = add_op(&s->ix, &nops, IX_DELETE, id, 0);
        }
    }
    for (; ok && i < n; i++)
        ok = add_op(&s->ix, &nops, IX_INSERT, s->ix.nodes[i].path_id, i);
    iotdm_result r = !ok ? -ENOMEM : store_sqlite_result(s, rc, "twin index list");
    stmt_give(s, ST_INDEX_LIST, st);
    *out_nops = nops;
    return r;
}

static iotdm_result apply_op(sq_store *s, const char *device_id, int section, const store_ix_op *op)
{
    static const char *const sql[] = {
        [IX_INSERT] = "INSERT INTO twin_index(device_id, section, path_id, value) "
                      "VALUES(?1, ?2, ?3, ?4)",
        [IX_UPDATE] = "UPDATE twin_index SET value = ?4 "
                      "WHERE device_id = ?1 AND section = ?2 AND path_id = ?3",
        [IX_DELETE] = "DELETE FROM twin_index "
                      "WHERE device_id = ?1 AND section = ?2 AND path_id = ?3",
    };
    static const store_stmt_id ids[] = {[IX_INSERT] = ST_INDEX_INSERT,
                                        [IX_UPDATE] = ST_INDEX_UPDATE,
                                        [IX_DELETE] = ST_INDEX_DELETE};
    sqlite3_stmt *st = stmt_take(s, ids[op->kind], sql[op->kind]);
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, device_id);
    sqlite3_bind_int(st, 2, section);
    sqlite3_bind_int64(st, 3, op->path_id);
    if (op->kind != IX_DELETE)
        store_ix_bind(st, 4, &s->ix.nodes[op->node].v);
    iotdm_result r = stmt_exec(s, st);
    stmt_give(s, ids[op->kind], st);
    return r;
}

/* Rewrites the index rows of one section of a twin to describe obj. fresh: it has none yet. */
static iotdm_result index_section(sq_store *s, const char *device_id, int section,
                                  const json_t *obj, bool fresh)
{
    size_t n, nops = 0;
    iotdm_result r = section_nodes(s, section, obj, &n);
    if (r != IOTDM_OK)
        return r;
    if (fresh) {
        for (size_t i = 0; r == IOTDM_OK && i < n; i++) {
            store_ix_op op = {IX_INSERT, s->ix.nodes[i].path_id, i};
            r = apply_op(s, device_id, section, &op);
        }
        return r;
    }
    r = diff_rows(s, device_id, section, n, &nops);
    for (size_t i = 0; r == IOTDM_OK && i < nops; i++)
        r = apply_op(s, device_id, section, &s->ix.ops[i]);
    return r;
}

/* Where each indexed section sits among the texts twin_put serialised. */
static const int section_text[STORE_IX_SECTIONS] = {0, 1, 3};

iotdm_result store_ix_twin_put(sq_store *s, const char *device_id, const hub_twin *twin,
                               const char *const text[], const size_t len[])
{
    sqlite3_stmt *st = stmt_take(s, ST_INDEX_OLD_SECTIONS,
                                 "SELECT tags, desired, reported FROM twins WHERE device_id = ?1");
    if (!st)
        return IOTDM_E_STORAGE;
    bind_text(st, 1, device_id);
    int rc = sqlite3_step(st);
    bool changed[STORE_IX_SECTIONS] = {false, false, false};
    for (int k = 0; rc == SQLITE_ROW && k < STORE_IX_SECTIONS; k++) {
        size_t i = (size_t)section_text[k];
        if (!text[i])
            continue; /* a section the put keeps as stored */
        const void *old = sqlite3_column_blob(st, k);
        size_t n = (size_t)sqlite3_column_bytes(st, k);
        changed[k] = n != len[i] || (n && memcmp(old, text[i], n) != 0);
    }
    iotdm_result r = rc == SQLITE_ROW    ? IOTDM_OK
                     : rc == SQLITE_DONE ? IOTDM_E_NOT_FOUND
                                         : store_sqlite_result(s, rc, "twin index sections");
    stmt_give(s, ST_INDEX_OLD_SECTIONS, st);
    const json_t *objs[STORE_IX_SECTIONS] = {twin->tags, twin->desired, twin->reported};
    for (int k = 0; r == IOTDM_OK && k < STORE_IX_SECTIONS; k++)
        if (changed[k])
            r = index_section(s, device_id, k, objs[k], false);
    return r;
}

bool store_ix_built(sq_store *s)
{
    sqlite3_stmt *st = stmt_take(s, ST_INDEX_STATE, "SELECT built FROM twin_index_state");
    bool built = st && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
    stmt_give(s, ST_INDEX_STATE, st);
    return built;
}

static iotdm_result set_built(sq_store *s, bool built)
{
    sqlite3_stmt *st = stmt_take(s, ST_INDEX_SET_STATE, "UPDATE twin_index_state SET built = ?1");
    if (!st)
        return IOTDM_E_STORAGE;
    sqlite3_bind_int(st, 1, built);
    iotdm_result r = stmt_exec(s, st);
    stmt_give(s, ST_INDEX_SET_STATE, st);
    return r;
}

/* Indexes one twin row (device_id, tags, desired, reported) of the rebuild. */
static iotdm_result index_row(sq_store *s, sqlite3_stmt *st)
{
    const char *id = (const char *)sqlite3_column_text(st, 0);
    iotdm_result r = IOTDM_OK;
    for (int k = 0; r == IOTDM_OK && k < STORE_IX_SECTIONS; k++) {
        json_t *obj = store_load(st, k + 1);
        r = obj ? index_section(s, id, k, obj, true) : IOTDM_E_STORAGE;
        json_decref(obj);
    }
    return r;
}

iotdm_result store_ix_ensure_built(sq_store *s)
{
    if (store_ix_built(s))
        return IOTDM_OK;
    iotdm_result r = store_sqlite_result(
        s, sqlite3_exec(s->db, "DELETE FROM twin_index", NULL, NULL, NULL), "twin index clear");
    sqlite3_stmt *st = NULL;
    if (r == IOTDM_OK)
        r = store_sqlite_result(
            s,
            sqlite3_prepare_v2(s->db, "SELECT device_id, tags, desired, reported FROM twins", -1,
                               &st, NULL),
            "twin index rebuild");
    size_t twins = 0;
    int rc = SQLITE_DONE;
    while (r == IOTDM_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        r = index_row(s, st);
        twins++;
    }
    if (r == IOTDM_OK)
        r = store_sqlite_result(s, rc, "twin index rebuild");
    sqlite3_finalize(st);
    if (r == IOTDM_OK)
        r = set_built(s, true);
    if (r == IOTDM_OK)
        log_info("store", "twin index built twins=%zu", twins);
    return r;
}

iotdm_result hub_store_sqlite_twin_index(hub_store *store, bool enabled)
{
    if (strcmp(store->ops->name, "sqlite") != 0)
        return IOTDM_E_UNSUPPORTED;
    sq_store *s = (sq_store *)store;
    iotdm_result r = store_write_begin(s);
    if (r != IOTDM_OK)
        return r;
    s->ix.off = !enabled;
    /* Stale from this group on, so that neither a reader nor a restart trusts it. */
    return enabled ? store_ix_ensure_built(s) : set_built(s, false);
}

void store_ix_deinit(sq_store *s)
{
    xfree(s->ix.nodes);
    xfree(s->ix.ops);
    memset(&s->ix, 0, sizeof s->ix);
}
