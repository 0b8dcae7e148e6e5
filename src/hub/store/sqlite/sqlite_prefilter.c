/* SQLite store: the WHERE clause of a query compiled into a prefilter over the twin index.
 *
 * The prefilter is a SQL condition on the devices table (alias d) that holds for every device
 * whose twin matches the clause, and for as few others as the indexes allow: a superset. The exact
 * clause is then evaluated in C on each candidate (hub_query_matches), so a result never depends
 * on the SQL being exact, only on it never leaving a match out. Hence the rules:
 * - AND keeps the sides it can compile (dropping one only widens the set); OR compiles only when
 *   every side does; NOT is never compiled (the complement of a superset is not one).
 * - != and NIN are never compiled (they would match almost everything anyway).
 * - A leaf compiles when it compares one path with constants: comparisons, IN, STARTSWITH
 *   without case folding, the type functions. Paths are deviceId, modelId, status,
 *   connectionState and lastActivityTime (device columns) and the members of tags,
 *   properties.desired and properties.reported (the twin index, sqlite_index.c). Paths through an
 *   array element, and every other member of the service view, do not compile.
 * - Index values are compared the way they are stored: strings by their first STORE_IX_TEXT_MAX
 *   bytes, numbers as doubles, so strict comparisons are widened to <= and >=; booleans, objects
 *   and arrays are BLOB tags that no number or string comparison reaches.
 * - Sections a twin has too many nodes in are not indexed: such twins are candidates of every
 *   condition on the section. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "hub/store/sqlite/sqlite_prefilter.h"

typedef struct {
    size_t len;
    int nparams;
} pf_mark;

static pf_mark mark(const store_prefilter *p)
{
    return (pf_mark){p->len, p->nparams};
}

static void restore(store_prefilter *p, pf_mark m)
{
    p->len = m.len;
    p->nparams = m.nparams;
    p->sql[p->len] = '\0';
}

bool pf_put(store_prefilter *p, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->sql + p->len, sizeof p->sql - p->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof p->sql - p->len) {
        p->sql[p->len] = '\0';
        return false;
    }
    p->len += (size_t)n;
    return true;
}

bool pf_put_param(store_prefilter *p, const store_ix_value *v)
{
    if (p->nparams == PF_MAX_PARAMS || !pf_put(p, "?%d", p->base + p->nparams))
        return false;
    p->params[p->nparams++] = *v;
    return true;
}

store_ix_value pf_int_value(sqlite3_int64 i)
{
    return (store_ix_value){.type = SQLITE_INTEGER, .i = i};
}

store_ix_value pf_text_value(const char *text, size_t len)
{
    return (store_ix_value){.type = SQLITE_TEXT, .text = text, .len = len};
}

bool pf_successor(store_prefilter *p, const char *prefix, size_t len, store_ix_value *out)
{
    while (len && (unsigned char)prefix[len - 1] == 0xFF)
        len--;
    if (!len || len > sizeof p->scratch - p->used)
        return false;
    char *s = p->scratch + p->used;
    memcpy(s, prefix, len);
    s[len - 1] = (char)((unsigned char)s[len - 1] + 1);
    p->used += len;
    *out = pf_text_value(s, len);
    return true;
}

/* ---- leaves ---- */

static bool has_path(const qnode *n)
{
    if (n->kind == QN_PATH || n->kind == QN_AGG)
        return true;
    for (size_t i = 0; i < n->nkids; i++)
        if (has_path(n->kids[i]))
            return true;
    return false;
}

bool pf_constant(store_prefilter *p, const qnode *n, const json_t **out)
{
    if (has_path(n))
        return false;
    qval v = qry_eval(n, NULL);
    if (v.owned) {
        if (p->nowned == PF_MAX_OWNED) {
            qval_drop(&v);
            return false;
        }
        p->owned[p->nowned++] = v.owned;
    }
    *out = v.v;
    return true;
}

static bool seg_is(const qnode *path, size_t i, const char *name)
{
    return !path->segs[i].is_index && strcmp(path->segs[i].name, name) == 0;
}

/* Which column or index section a path reads. */
static void classify(pf_leaf *l)
{
    static const struct {
        const char *name;
        pf_column column;
    } columns[] = {{"deviceId", COL_DEVICE_ID},
                   {"modelId", COL_MODEL_ID},
                   {"status", COL_STATUS},
                   {"connectionState", COL_CONNECTION},
                   {"lastActivityTime", COL_ACTIVITY}};
    const qnode *path = l->path;
    l->column = COL_NONE;
    for (size_t i = 0; i < path->nsegs; i++)
        if (path->segs[i].is_index)
            return; /* array elements are not indexed */
    for (size_t i = 0; path->nsegs == 1 && i < sizeof columns / sizeof columns[0]; i++)
        if (seg_is(path, 0, columns[i].name))
            l->column = columns[i].column;
    size_t first;
    if (path->nsegs >= 2 && seg_is(path, 0, "tags")) {
        l->section = STORE_IX_TAGS;
        first = 1;
    } else if (path->nsegs >= 3 && seg_is(path, 0, "properties") &&
               (seg_is(path, 1, "desired") || seg_is(path, 1, "reported")) &&
               !seg_is(path, 2, "$version") && !seg_is(path, 2, "$metadata")) {
        l->section = seg_is(path, 1, "desired") ? STORE_IX_DESIRED : STORE_IX_REPORTED;
        first = 2;
    } else {
        return;
    }
    uint64_t h = store_ix_path_start(l->section);
    for (size_t i = first; i < path->nsegs; i++)
        h = store_ix_path_step(h, path->segs[i].name, path->segs[i].len);
    l->path_id = store_ix_path_id(h);
    l->column = COL_INDEX;
}

static int flip(int op)
{
    switch ((qcmp_op)op) {
    case QOP_LT:
        return QOP_GT;
    case QOP_GT:
        return QOP_LT;
    case QOP_LE:
        return QOP_GE;
    case QOP_GE:
        return QOP_LE;
    default:
        return op;
    }
}

static bool analyze_call(store_prefilter *p, const qnode *n, pf_leaf *l)
{
    if (n->nkids == 0 || n->kids[0]->kind != QN_PATH)
        return false;
    l->path = n->kids[0];
    if (n->op <= QF_IS_PRIMITIVE)
        return true;
    if (n->op != QF_STARTSWITH || !pf_constant(p, n->kids[1], &l->lit))
        return false;
    const json_t *fold = NULL;
    /* STARTSWITH(x, p, true) folds case: no range of the index holds those strings. */
    return n->nkids == 2 || (pf_constant(p, n->kids[2], &fold) && json_is_false(fold));
}

/* Recognises a leaf the prefilter can translate; false for anything else. */
static bool analyze(store_prefilter *p, const qnode *n, pf_leaf *l)
{
    memset(l, 0, sizeof *l);
    l->node = n;
    l->kind = n->kind;
    l->op = n->op;
    bool ok = false;
    if (n->kind == QN_PATH) {
        /* A bare path holds when it is true. */
        l->path = n;
        l->kind = QN_CMP;
        l->op = QOP_EQ;
        l->lit = json_true();
        ok = true;
    } else if (n->kind == QN_CMP && n->op != QOP_NE) {
        bool left = n->kids[0]->kind == QN_PATH;
        l->path = left ? n->kids[0] : n->kids[1];
        l->op = left ? n->op : flip(n->op);
        ok = l->path->kind == QN_PATH && pf_constant(p, n->kids[left ? 1 : 0], &l->lit);
    } else if (n->kind == QN_IN && n->op == 0 && n->kids[0]->kind == QN_PATH &&
               n->kids[1]->kind == QN_ARRAY) {
        l->path = n->kids[0];
        l->list = n->kids[1];
        ok = true;
        for (size_t i = 0; ok && i < l->list->nkids; i++)
            ok = !has_path(l->list->kids[i]);
    } else if (n->kind == QN_CALL) {
        ok = analyze_call(p, n, l);
    }
    if (ok)
        classify(l);
    return ok && l->column != COL_NONE;
}
/* ---- AND, OR ---- */

/* How few candidates a subtree is expected to leave, lower is fewer; 9 when it does not compile.
 * AND is driven by its best side, the others probe each candidate. */
static int rank(store_prefilter *p, const qnode *n)
{
    pf_leaf l;
    int best = n->kind == QN_AND ? 9 : 0;
    if (n->kind == QN_AND || n->kind == QN_OR) {
        for (size_t i = 0; i < n->nkids; i++) {
            int r = rank(p, n->kids[i]);
            best = n->kind == QN_AND ? (r < best ? r : best) : (r > best ? r : best);
        }
        return best;
    }
    if (!analyze(p, n, &l))
        return 9;
    bool equality = l.kind == QN_IN || (l.kind == QN_CMP && l.op == QOP_EQ);
    switch (l.column) {
    case COL_DEVICE_ID:
        return equality ? 0 : 2;
    case COL_MODEL_ID:
        return equality ? 1 : 2;
    case COL_INDEX:
        return equality && !json_is_boolean(l.lit) && !json_is_null(l.lit) ? 1
               : l.kind == QN_CALL && l.op <= QF_IS_PRIMITIVE              ? 3
                                                                           : 2;
    case COL_ACTIVITY:
        return 2;
    default:
        return 3;
    }
}

static pf_result compile(store_prefilter *p, const qnode *n, bool drive);

static pf_result compile_and(store_prefilter *p, const qnode *n, bool drive)
{
    size_t driver = n->nkids;
    int best = 9;
    for (size_t i = 0; drive && i < n->nkids; i++) {
        int r = rank(p, n->kids[i]);
        if (r < best) {
            best = r;
            driver = i;
        }
    }
    pf_mark start = mark(p);
    bool any = false;
    if (!pf_put(p, "("))
        return PF_ALL;
    for (size_t i = 0; i < n->nkids; i++) {
        pf_mark kid = mark(p);
        if (any && !pf_put(p, " AND "))
            break;
        pf_result r = compile(p, n->kids[i], i == driver);
        if (r == PF_NONE) {
            restore(p, start);
            return PF_NONE;
        }
        if (r == PF_ALL)
            restore(p, kid); /* dropping a side of an AND only widens it */
        any = any || r == PF_SQL;
    }
    if (!any || !pf_put(p, ")")) {
        restore(p, start);
        return PF_ALL;
    }
    return PF_SQL;
}

static pf_result compile_or(store_prefilter *p, const qnode *n, bool drive)
{
    pf_mark start = mark(p);
    bool any = false;
    if (!pf_put(p, "("))
        return PF_ALL;
    for (size_t i = 0; i < n->nkids; i++) {
        pf_mark kid = mark(p);
        pf_result r = any && !pf_put(p, " OR ") ? PF_ALL : compile(p, n->kids[i], drive);
        if (r == PF_ALL) {
            restore(p, start);
            return PF_ALL;
        }
        if (r == PF_NONE)
            restore(p, kid);
        any = any || r == PF_SQL;
    }
    if (!any) {
        restore(p, start);
        return PF_NONE;
    }
    if (!pf_put(p, ")")) {
        restore(p, start);
        return PF_ALL;
    }
    return PF_SQL;
}

/* Appends a condition that holds for (at least) the devices on which n is true. */
static pf_result compile(store_prefilter *p, const qnode *n, bool drive)
{
    const json_t *c = NULL;
    pf_leaf l;
    if (n->kind == QN_AND)
        return compile_and(p, n, drive);
    if (n->kind == QN_OR)
        return compile_or(p, n, drive);
    if (pf_constant(p, n, &c))
        return json_is_true(c) ? PF_ALL : PF_NONE;
    if (!analyze(p, n, &l))
        return PF_ALL;
    pf_mark start = mark(p);
    pf_result r = pf_leaf_sql(p, &l, drive);
    if (r != PF_SQL)
        restore(p, start);
    return r;
}

/* ---- the interface ---- */

iotdm_result store_prefilter_new(const hub_query *q, store_pf_form form, store_prefilter **out,
                                 store_pf_kind *kind)
{
    *out = NULL;
    *kind = STORE_PF_ALL;
    if (!q->where)
        return IOTDM_OK;
    store_prefilter *p = xcalloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    bool list = form == STORE_PF_LIST;
    p->base = list ? 2 : 3;
    pf_put(p, list ? "SELECT d.device_id FROM devices d WHERE d.device_id > ?1 AND "
                   : "SELECT d.device_id, ");
    pf_result r = compile(p, q->where, list);
    const char *tail = list
                           ? " ORDER BY d.device_id"
                           : " FROM devices d WHERE d.device_id > ?1 ORDER BY d.device_id LIMIT ?2";
    if (r == PF_SQL && pf_put(p, "%s", tail)) {
        *kind = STORE_PF_SQL;
        *out = p;
        return IOTDM_OK;
    }
    *kind = r == PF_NONE ? STORE_PF_NONE : STORE_PF_ALL;
    store_prefilter_free(p);
    return IOTDM_OK;
}

const char *store_prefilter_sql(const store_prefilter *p)
{
    return p->sql;
}

void store_prefilter_bind(const store_prefilter *p, sqlite3_stmt *st)
{
    for (int i = 0; i < p->nparams; i++)
        store_ix_bind(st, p->base + i, &p->params[i]);
}

void store_prefilter_free(store_prefilter *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nowned; i++)
        json_decref(p->owned[i]);
    xfree(p);
}
