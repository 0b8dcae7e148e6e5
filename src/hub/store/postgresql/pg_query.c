/* PostgreSQL store: the candidates of a query page, in device-id order, narrowed in SQL.
 *
 * A query's WHERE clause is compiled into a condition on the devices (alias d) and twins (alias
 * t) that holds for every device whose twin matches it, and for as few others as the compiled
 * part allows: a superset. The caller evaluates the exact clause on each candidate
 * (hub_query_matches), so a result never depends on the SQL being exact, only on it never leaving
 * a match out. Hence the rules (the same as the SQLite prefilter's):
 * - AND keeps the sides it can compile (dropping one only widens the set); OR compiles only when
 *   every side does; NOT is never compiled (the complement of a superset is not one).
 * - Equality of a twin path with a constant is containment, `(t.tags::jsonb) @> {"a":{"b":v}}`,
 *   which the GIN indexes on the sections answer (migration 1). Containment holds whenever the
 *   query language's equality does: equal primitives are contained in each other, numbers compare
 *   as numbers in both (1 and 1.0 are equal), and an object or array constant never equals
 *   anything in the language, so it may match what it likes here.
 * - Orderings of a twin path with a number compare jsonb values: between numbers that is numeric
 *   order; values of other types land on one side or the other, which only widens the set. Strings
 *   are not compiled: jsonb orders them by the database's collation, not ordinally as the
 *   language does.
 * - deviceId and modelId compare as columns (equality, IN, ordering in byte order, STARTSWITH
 *   without case folding); status and connectionState as the booleans they are stored as.
 * - The type functions (IS_DEFINED, IS_STRING, ...) of a twin path test jsonb_typeof of the node.
 * - Every other path (lastActivityTime among them), function or expression is left to the
 *   caller.
 * The page walks candidates in id order in growing batches, each one statement; PostgreSQL picks
 * the plan (the GIN index for a selective containment, the primary key walk otherwise). */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "hub/query/query_int.h"
#include "hub/store/postgresql/pg_internal.h"

#define QF_SQL_MAX    16384
#define QF_MAX_PARAMS 200

typedef enum { QF_ALL, QF_NONE, QF_SQL } qf_result;

#define QF_MAX_OWNED 64

typedef struct {
    char sql[QF_SQL_MAX];
    size_t len;
    char *values[QF_MAX_PARAMS]; /* owned texts */
    int nvalues;
    json_t *owned[QF_MAX_OWNED]; /* constants computed while compiling (negated numbers) */
    size_t nowned;
} qfilter;

typedef struct {
    size_t len;
    int nvalues;
} qf_mark;

static qf_mark mark(const qfilter *f)
{
    return (qf_mark){f->len, f->nvalues};
}

static void restore(qfilter *f, qf_mark m)
{
    while (f->nvalues > m.nvalues)
        xfree(f->values[--f->nvalues]);
    f->len = m.len;
    f->sql[f->len] = '\0';
}

static bool put(qfilter *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool put(qfilter *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(f->sql + f->len, sizeof f->sql - f->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof f->sql - f->len) {
        f->sql[f->len] = '\0';
        return false;
    }
    f->len += (size_t)n;
    return true;
}

/* Appends the placeholder of a new parameter holding text (taken over, even on failure). The
 * caller's statement has two parameters before these. */
static bool put_param(qfilter *f, char *text, const char *cast)
{
    if (!text || f->nvalues == QF_MAX_PARAMS || !put(f, "$%d%s", f->nvalues + 3, cast)) {
        xfree(text);
        return false;
    }
    f->values[f->nvalues++] = text;
    return true;
}

static void qfilter_clear(qfilter *f)
{
    restore(f, (qf_mark){0, 0});
    while (f->nowned)
        json_decref(f->owned[--f->nowned]);
}

/* The value of a constant operand: a literal (NULL: undefined), or a negated number literal.
 * false when n is not one. Computed values live as long as f. */
static bool constant(qfilter *f, const qnode *n, const json_t **out)
{
    if (n->kind == QN_LIT) {
        *out = n->lit;
        return true;
    }
    if (n->kind != QN_NEG || n->nkids != 1 || n->kids[0]->kind != QN_LIT ||
        !json_is_number(n->kids[0]->lit) || f->nowned == QF_MAX_OWNED)
        return false;
    const json_t *v = n->kids[0]->lit;
    json_t *neg = json_is_integer(v) && json_integer_value(v) > INT64_MIN
                      ? json_integer(-json_integer_value(v))
                      : json_real(-json_number_value(v));
    if (!neg)
        return false;
    f->owned[f->nowned++] = neg;
    *out = neg;
    return true;
}

static char *dup_text(const char *s, size_t n)
{
    char *c = xmalloc(n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

/* ---- leaves ---- */

typedef enum {
    PATH_NONE,
    PATH_DEVICE_ID,
    PATH_MODEL_ID,
    PATH_STATUS,
    PATH_CONNECTION,
    PATH_TWIN
} path_kind;

typedef struct {
    path_kind kind;
    const char *column; /* PATH_TWIN: "t.tags", "t.desired" or "t.reported" */
    const qseg *segs;   /* PATH_TWIN: the members inside the section */
    size_t nsegs;
} path_ref;

static bool seg_is(const qseg *s, const char *name)
{
    return !s->is_index && s->len == strlen(name) && memcmp(s->name, name, s->len) == 0;
}

/* What a path names (canonical spellings: query.c rewrote the top-level members). */
static path_ref classify(const qnode *n)
{
    path_ref p = {.kind = PATH_NONE};
    if (!n || n->kind != QN_PATH || n->nsegs == 0)
        return p;
    const qseg *s = n->segs;
    if (n->nsegs == 1) {
        p.kind = seg_is(&s[0], "deviceId")          ? PATH_DEVICE_ID
                 : seg_is(&s[0], "modelId")         ? PATH_MODEL_ID
                 : seg_is(&s[0], "status")          ? PATH_STATUS
                 : seg_is(&s[0], "connectionState") ? PATH_CONNECTION
                                                    : PATH_NONE;
        return p;
    }
    size_t first = 0;
    if (seg_is(&s[0], "tags")) {
        p.column = "t.tags";
        first = 1;
    } else if (n->nsegs > 2 && seg_is(&s[0], "properties") && seg_is(&s[1], "desired")) {
        p.column = "t.desired";
        first = 2;
    } else if (n->nsegs > 2 && seg_is(&s[0], "properties") && seg_is(&s[1], "reported")) {
        p.column = "t.reported";
        first = 2;
    } else {
        return p;
    }
    /* The view adds $version and $metadata to desired and reported; they are not in the text. */
    if (first == 2 && !s[2].is_index && s[2].len > 0 && s[2].name[0] == '$')
        return p;
    for (size_t i = first; i < n->nsegs; i++)
        if (s[i].is_index || memchr(s[i].name, '\0', s[i].len))
            return p; /* array elements, and names jsonb cannot hold, stay with the caller */
    p.kind = PATH_TWIN;
    p.segs = s + first;
    p.nsegs = n->nsegs - first;
    return p;
}

/* {"a":{"b":value}} for the path's members: the document a matching section contains. */
static char *containment_doc(const path_ref *p, const json_t *value)
{
    json_t *doc = json_deep_copy(value);
    for (size_t i = p->nsegs; doc && i-- > 0;) {
        json_t *outer = json_object();
        if (!outer || json_object_setn_new(outer, p->segs[i].name, p->segs[i].len, doc) != 0) {
            json_decref(outer);
            return NULL; /* doc was stolen by setn_new, even on failure */
        }
        doc = outer;
    }
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(doc);
    return text;
}

/* '{a,b}' as a text[] literal for #>, every member double-quoted. */
static char *path_array(const path_ref *p)
{
    size_t cap = 3;
    for (size_t i = 0; i < p->nsegs; i++)
        cap += 2 * p->segs[i].len + 3;
    char *out = xmalloc(cap);
    if (!out)
        return NULL;
    size_t n = 0;
    out[n++] = '{';
    for (size_t i = 0; i < p->nsegs; i++) {
        if (i)
            out[n++] = ',';
        out[n++] = '"';
        for (size_t j = 0; j < p->segs[i].len; j++) {
            char c = p->segs[i].name[j];
            if (c == '"' || c == '\\')
                out[n++] = '\\';
            out[n++] = c;
        }
        out[n++] = '"';
    }
    out[n++] = '}';
    out[n] = '\0';
    return out;
}

static qf_result text_equals(qfilter *f, const char *column, const json_t *v)
{
    if (!json_is_string(v))
        return QF_ALL; /* left to the caller, whatever the language makes of it */
    return put(f, "%s = ", column) &&
                   put_param(f, dup_text(json_string_value(v), json_string_length(v)), "::text")
               ? QF_SQL
               : QF_ALL;
}

static qf_result two_valued(qfilter *f, const char *column, const json_t *v, const char *no,
                            const char *yes)
{
    if (!json_is_string(v))
        return QF_ALL;
    const char *s = json_string_value(v);
    if (strcmp(s, yes) == 0)
        return put(f, "%s", column) ? QF_SQL : QF_ALL;
    if (strcmp(s, no) == 0)
        return put(f, "NOT %s", column) ? QF_SQL : QF_ALL;
    return QF_NONE; /* the member only ever holds one of the two */
}

/* path = v */
static qf_result equals(qfilter *f, const path_ref *p, const json_t *v)
{
    switch (p->kind) {
    case PATH_DEVICE_ID:
        return text_equals(f, "d.device_id", v);
    case PATH_MODEL_ID:
        return text_equals(f, "d.model_id", v);
    case PATH_STATUS:
        return two_valued(f, "d.enabled", v, "disabled", "enabled");
    case PATH_CONNECTION:
        return two_valued(f, "d.connected", v, "Disconnected", "Connected");
    case PATH_TWIN:
        if (!v)
            return QF_NONE; /* undefined equals nothing */
        return put(f, "(%s::jsonb) @> ", p->column) &&
                       put_param(f, containment_doc(p, v), "::jsonb")
                   ? QF_SQL
                   : QF_ALL;
    default:
        return QF_ALL;
    }
}

static const char *const sql_op[] = {
    [QOP_LT] = "<", [QOP_GT] = ">", [QOP_LE] = "<=", [QOP_GE] = ">="};

/* A device column's string in ordinal order (byte order: COLLATE "C"). */
static qf_result text_ordering(qfilter *f, const char *column, qcmp_op op, const json_t *v)
{
    if (!json_is_string(v))
        return QF_NONE; /* a string orders against strings only */
    return put(f, "%s COLLATE \"C\" %s ", column, sql_op[op]) &&
                   put_param(f, dup_text(json_string_value(v), json_string_length(v)), "::text")
               ? QF_SQL
               : QF_ALL;
}

static qf_result ordering(qfilter *f, const path_ref *p, qcmp_op op, const json_t *v)
{
    if (p->kind == PATH_DEVICE_ID)
        return text_ordering(f, "d.device_id", op, v);
    if (p->kind == PATH_MODEL_ID)
        return text_ordering(f, "d.model_id", op, v);
    if (p->kind != PATH_TWIN || !json_is_number(v))
        return QF_ALL;
    char *num = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    return put(f, "((%s::jsonb) #> ", p->column) && put_param(f, path_array(p), "::text[]") &&
                   put(f, ") %s ", sql_op[op]) && put_param(f, num, "::jsonb")
               ? QF_SQL
               : QF_ALL;
}

static qf_result compare(qfilter *f, const qnode *n)
{
    const qnode *path = n->kids[0], *other = n->kids[1];
    qcmp_op op = (qcmp_op)n->op;
    const json_t *v;
    if (path->kind != QN_PATH) { /* constant on the left: swap, mirroring the operator */
        const qnode *t = path;
        path = other;
        other = t;
        static const qcmp_op mirror[] = {[QOP_EQ] = QOP_EQ, [QOP_NE] = QOP_NE, [QOP_LT] = QOP_GT,
                                         [QOP_GT] = QOP_LT, [QOP_LE] = QOP_GE, [QOP_GE] = QOP_LE};
        op = mirror[op];
    }
    if (path->kind != QN_PATH || !constant(f, other, &v))
        return QF_ALL;
    path_ref p = classify(path);
    if (op == QOP_EQ)
        return equals(f, &p, v);
    if (op == QOP_NE)
        return QF_ALL; /* matches almost everything anyway */
    return ordering(f, &p, op, v);
}

/* path IN [constants]: the OR of the equalities. */
static qf_result in_list(qfilter *f, const qnode *n)
{
    if (n->op != 0 || n->kids[1]->kind != QN_ARRAY)
        return QF_ALL; /* NIN: never compiled */
    path_ref p = classify(n->kids[0]);
    const qnode *list = n->kids[1];
    if (p.kind == PATH_NONE)
        return QF_ALL;
    qf_mark start = mark(f);
    bool any = false;
    if (!put(f, "("))
        return QF_ALL;
    for (size_t i = 0; i < list->nkids; i++) {
        const json_t *v;
        if (!constant(f, list->kids[i], &v)) {
            restore(f, start);
            return QF_ALL;
        }
        qf_mark m = mark(f);
        if (any && !put(f, " OR ")) {
            restore(f, start);
            return QF_ALL;
        }
        qf_result r = equals(f, &p, v);
        if (r == QF_ALL) {
            restore(f, start);
            return QF_ALL;
        }
        if (r == QF_NONE)
            restore(f, m);
        else
            any = true;
    }
    if (!any) {
        restore(f, start);
        return QF_NONE;
    }
    if (!put(f, ")")) {
        restore(f, start);
        return QF_ALL;
    }
    return QF_SQL;
}

/* IS_DEFINED, IS_STRING, ... of a twin path: the type jsonb gives the node. */
static qf_result type_check(qfilter *f, const path_ref *p, qfunc fn)
{
    static const char *const checks[] = {
        [QF_IS_DEFINED] = "IS NOT NULL",
        [QF_IS_NULL] = "= 'null'",
        [QF_IS_BOOL] = "= 'boolean'",
        [QF_IS_NUMBER] = "= 'number'",
        [QF_IS_STRING] = "= 'string'",
        [QF_IS_OBJECT] = "= 'object'",
        [QF_IS_ARRAY] = "= 'array'",
        [QF_IS_PRIMITIVE] = "IN ('null', 'boolean', 'number', 'string')",
    };
    if (p->kind != PATH_TWIN)
        return QF_ALL; /* device members: left to the caller */
    return put(f, "jsonb_typeof((%s::jsonb) #> ", p->column) &&
                   put_param(f, path_array(p), "::text[]") && put(f, ") %s", checks[fn])
               ? QF_SQL
               : QF_ALL;
}

/* STARTSWITH(path, 'prefix'), case-sensitive: a range the device column's index walks, or the
 * twin node's text. */
static qf_result starts_with(qfilter *f, const qnode *n)
{
    if (n->nkids < 2 || n->kids[1]->kind != QN_LIT || !json_is_string(n->kids[1]->lit))
        return QF_ALL;
    if (n->nkids > 2 && !(n->kids[2]->kind == QN_LIT && json_is_false(n->kids[2]->lit)))
        return QF_ALL; /* case folding */
    const json_t *v = n->kids[1]->lit;
    path_ref p = classify(n->kids[0]);
    const char *column = p.kind == PATH_DEVICE_ID  ? "d.device_id"
                         : p.kind == PATH_MODEL_ID ? "d.model_id"
                                                   : NULL;
    const char *text = json_string_value(v);
    size_t len = json_string_length(v);
    if (column)
        return put(f, "%s COLLATE \"C\" >= ", column) &&
                       put_param(f, dup_text(text, len), "::text") &&
                       put(f, " AND starts_with(%s, ", column) &&
                       put_param(f, dup_text(text, len), "::text") && put(f, ")")
                   ? QF_SQL
                   : QF_ALL;
    if (p.kind != PATH_TWIN)
        return QF_ALL;
    return put(f, "starts_with((%s::jsonb) #>> ", p.column) &&
                   put_param(f, path_array(&p), "::text[]") && put(f, ", ") &&
                   put_param(f, dup_text(text, len), "::text") && put(f, ")")
               ? QF_SQL
               : QF_ALL;
}

static qf_result call(qfilter *f, const qnode *n)
{
    if (n->op == QF_STARTSWITH)
        return starts_with(f, n);
    if (n->op > QF_IS_PRIMITIVE || n->nkids != 1)
        return QF_ALL;
    path_ref p = classify(n->kids[0]);
    return type_check(f, &p, (qfunc)n->op);
}

/* ---- clauses ---- */

static qf_result compile(qfilter *f, const qnode *n);

/* AND keeps the sides that compile (dropping one only widens the set) and is nothing if one side
 * is; OR compiles only when every side does, and drops the sides that match nothing. */
static qf_result compile_junction(qfilter *f, const qnode *n, bool and)
{
    qf_mark start = mark(f);
    bool any = false;
    for (size_t i = 0; i < n->nkids; i++) {
        qf_mark m = mark(f);
        if (any && !put(f, and? " AND " : " OR ")) {
            if (and)
                break; /* out of room: what is there is still a superset */
            restore(f, start);
            return QF_ALL;
        }
        qf_result r = compile(f, n->kids[i]);
        if (r == (and? QF_NONE : QF_ALL)) {
            restore(f, start);
            return r;
        }
        if (r == QF_SQL)
            any = true;
        else
            restore(f, m); /* AND of everything, OR of nothing: the side drops out */
    }
    if (!any) {
        restore(f, start);
        return and? QF_ALL : QF_NONE;
    }
    return QF_SQL;
}

static qf_result compile(qfilter *f, const qnode *n)
{
    if (!n)
        return QF_ALL;
    qf_mark start = mark(f);
    if (!put(f, "("))
        return QF_ALL;
    qf_result r;
    switch (n->kind) {
    case QN_AND:
    case QN_OR:
        r = compile_junction(f, n, n->kind == QN_AND);
        break;
    case QN_CMP:
        r = compare(f, n);
        break;
    case QN_IN:
        r = in_list(f, n);
        break;
    case QN_CALL:
        r = call(f, n);
        break;
    case QN_LIT:
        r = n->lit && json_is_true(n->lit) ? QF_ALL : QF_NONE; /* only true matches */
        break;
    default:
        r = QF_ALL;
        break;
    }
    if (r != QF_SQL || !put(f, ")")) {
        restore(f, start);
        return r == QF_SQL ? QF_ALL : r;
    }
    return r;
}

/* ---- the page ---- */

#define QUERY_COLUMNS                                                                              \
    "SELECT " PG_DEVICE_COLUMNS ", " PG_TWIN_COLUMNS                                               \
    " FROM devices d JOIN twins t ON t.device_id = d.device_id WHERE d.device_id > $1 "

/* Batches start small (a page of a selective query wastes little) and grow while the visitor
 * keeps asking. */
#define BATCH_FIRST 64
#define BATCH_MAX   1024

static iotdm_result run_batch(pg_store *s, const qfilter *f, const char *after, int limit,
                              PGresult **out)
{
    char sql[QF_SQL_MAX + 1024];
    int n = snprintf(sql, sizeof sql, "%s%s%s ORDER BY d.device_id LIMIT $2", QUERY_COLUMNS,
                     f->len ? "AND " : "", f->sql);
    if (n < 0 || (size_t)n >= sizeof sql)
        return IOTDM_E_TOO_LARGE; /* cannot happen: the condition is at most QF_SQL_MAX */
    const char *values[QF_MAX_PARAMS + 2];
    char limit_text[16];
    snprintf(limit_text, sizeof limit_text, "%d", limit);
    values[0] = after;
    values[1] = limit_text;
    for (int i = 0; i < f->nvalues; i++)
        values[i + 2] = f->values[i];
    /* Unnamed statement: the text differs per query. Text parameters, cast in the SQL. */
    iotdm_result r;
    *out = pg_run_text(s, sql, f->nvalues + 2, values, &r);
    return r;
}

iotdm_result pg_query_page(hub_store *base, const hub_query *q, const char *after_id,
                           hub_twin_visitor visit, void *ctx)
{
    pg_store *s = (pg_store *)base;
    qfilter *f = xcalloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    qf_result kind = q->source == HUB_QUERY_FROM_DEVICES ? compile(f, q->where) : QF_ALL;
    if (kind == QF_NONE) {
        qfilter_clear(f);
        xfree(f);
        return IOTDM_OK;
    }
    /* A plain read of committed rows: on the writer it joins the open group, like any read. */
    iotdm_result r = pg_read_begin(s);
    char after[HUB_ID_MAX];
    snprintf(after, sizeof after, "%s", after_id ? after_id : "");
    int limit = BATCH_FIRST;
    bool more = true;
    while (r == IOTDM_OK && more) {
        PGresult *res = NULL;
        r = run_batch(s, f, after, limit, &res);
        if (r != IOTDM_OK)
            break;
        int rows = PQntuples(res);
        for (int i = 0; i < rows && more; i++) {
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
        if (rows < limit)
            break;
        if (limit < BATCH_MAX)
            limit *= 2;
    }
    qfilter_clear(f);
    xfree(f);
    return r;
}

iotdm_result hub_store_postgresql_explain(hub_store *store, const hub_query *q, char *out,
                                          size_t cap)
{
    if (strcmp(store->ops->name, "postgresql") != 0)
        return IOTDM_E_UNSUPPORTED;
    pg_store *s = (pg_store *)store;
    out[0] = '\0';
    qfilter *f = xcalloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    qf_result kind = q->source == HUB_QUERY_FROM_DEVICES ? compile(f, q->where) : QF_ALL;
    iotdm_result r = IOTDM_OK;
    if (kind == QF_SQL) {
        char sql[QF_SQL_MAX + 1024];
        int len = snprintf(sql, sizeof sql, "EXPLAIN %sAND %s ORDER BY d.device_id LIMIT $2",
                           QUERY_COLUMNS, f->sql);
        if (len < 0 || (size_t)len >= sizeof sql)
            snprintf(sql, sizeof sql, "SELECT 1 WHERE false"); /* cannot happen */
        const char *values[QF_MAX_PARAMS + 2] = {"", "100"};
        for (int i = 0; i < f->nvalues; i++)
            values[i + 2] = f->values[i];
        PGresult *res = pg_run_text(s, sql, f->nvalues + 2, values, &r);
        size_t n = 0;
        for (int i = 0; res && i < PQntuples(res); i++) {
            int w = snprintf(out + n, cap - n, "%s\n", PQgetvalue(res, i, 0));
            if (w < 0 || (size_t)w >= cap - n)
                break; /* truncated: the first steps are the ones that matter */
            n += (size_t)w;
        }
        PQclear(res);
    } else {
        snprintf(out, cap, "%s", kind == QF_NONE ? "none" : "");
    }
    qfilter_clear(f);
    xfree(f);
    return r;
}
