/* SQLite store: the prefilter's leaves, each a condition on one column of the devices table or
 * on the twin index (sqlite_prefilter.c has the rules that keep the prefilter a superset). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "hub/store/sqlite/sqlite_prefilter.h"

/* The last millisecond time_format_iso writes with a four-digit year: up to it, its strings sort
 * as the times do. */
#define PF_ACTIVITY_MAX_MS INT64_C(253402300799999)

/* status and connectionState hold one of two strings: evaluate the leaf on both. */
static pf_result two_valued(store_prefilter *p, const pf_leaf *l, const char *member,
                            const char *col, const char *const names[2])
{
    bool holds[2];
    for (int v = 0; v < 2; v++) {
        json_t *doc = json_pack("{s:s}", member, names[v]);
        if (!doc)
            return PF_ALL;
        qval r = qry_eval(l->node, doc);
        holds[v] = r.v && json_is_true(r.v);
        qval_drop(&r);
        json_decref(doc);
    }
    if (holds[0] == holds[1])
        return holds[0] ? PF_ALL : PF_NONE;
    return pf_put(p, "%s = %d", col, holds[1] ? 1 : 0) ? PF_SQL : PF_ALL;
}

static pf_result type_check_always(int f)
{
    return f == QF_IS_DEFINED || f == QF_IS_STRING || f == QF_IS_PRIMITIVE ? PF_ALL : PF_NONE;
}

/* deviceId, modelId: always a string, stored whole, so comparisons are exact. */
static pf_result text_column(store_prefilter *p, const pf_leaf *l, const char *col)
{
    static const char *const ops[] = {"=", "!=", "<", ">", "<=", ">="};
    store_ix_value v, next;
    if (l->kind == QN_CALL && l->op != QF_STARTSWITH)
        return type_check_always(l->op);
    if (l->kind == QN_IN) {
        bool any = false;
        if (!pf_put(p, "%s IN (", col))
            return PF_ALL;
        for (size_t i = 0; i < l->list->nkids; i++) {
            const json_t *e = NULL;
            if (!pf_constant(p, l->list->kids[i], &e))
                return PF_ALL;
            if (!json_is_string(e))
                continue; /* never equal to a string */
            v = pf_text_value(json_string_value(e), json_string_length(e));
            if ((any && !pf_put(p, ", ")) || !pf_put_param(p, &v))
                return PF_ALL;
            any = true;
        }
        return !any ? PF_NONE : pf_put(p, ")") ? PF_SQL : PF_ALL;
    }
    if (!json_is_string(l->lit))
        return PF_NONE; /* a string compares with strings only */
    v = pf_text_value(json_string_value(l->lit), json_string_length(l->lit));
    if (l->kind == QN_CMP)
        return pf_put(p, "%s %s ", col, ops[l->op]) && pf_put_param(p, &v) ? PF_SQL : PF_ALL;
    if (!pf_put(p, "%s >= ", col) || !pf_put_param(p, &v))
        return PF_ALL;
    if (pf_successor(p, v.text, v.len, &next) &&
        (!pf_put(p, " AND %s < ", col) || !pf_put_param(p, &next)))
        return PF_ALL;
    return PF_SQL;
}

/* ---- lastActivityTime: strings of a fixed format, compared as the times they print ---- */

/* The first millisecond in [1, PF_ACTIVITY_MAX_MS] whose string is >= text (> text when
 * strictly), or PF_ACTIVITY_MAX_MS + 1. */
static int64_t first_time(const char *text, size_t len, bool strictly)
{
    int64_t lo = 1, hi = PF_ACTIVITY_MAX_MS + 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        char buf[32];
        time_format_iso(mid, buf, sizeof buf);
        size_t bl = strlen(buf);
        int c = memcmp(buf, text, bl < len ? bl : len);
        c = c != 0 ? c : (bl > len) - (bl < len);
        if (strictly ? c > 0 : c >= 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* The times a leaf on lastActivityTime holds for, as intervals of milliseconds. */
#define PF_MAX_SPANS 64

typedef struct {
    int64_t lo, hi;
} pf_span;

typedef struct {
    pf_span v[PF_MAX_SPANS];
    size_t n;
    bool full;
} pf_spans;

static void add_span(pf_spans *s, int64_t lo, int64_t hi)
{
    if (lo > hi)
        return;
    if (s->n == PF_MAX_SPANS)
        s->full = true;
    else
        s->v[s->n++] = (pf_span){lo, hi};
}

/* The times whose string compares with the string lit as op says. */
static void compare_spans(pf_spans *s, int op, const json_t *lit)
{
    if (!json_is_string(lit))
        return; /* times are strings: nothing else compares */
    const char *t = json_string_value(lit);
    size_t n = json_string_length(lit);
    const int64_t max = PF_ACTIVITY_MAX_MS;
    switch ((qcmp_op)op) {
    case QOP_EQ:
        add_span(s, first_time(t, n, false), first_time(t, n, true) - 1);
        break;
    case QOP_LT:
        add_span(s, 1, first_time(t, n, false) - 1);
        break;
    case QOP_LE:
        add_span(s, 1, first_time(t, n, true) - 1);
        break;
    case QOP_GT:
        add_span(s, first_time(t, n, true), max);
        break;
    case QOP_GE:
        add_span(s, first_time(t, n, false), max);
        break;
    default:
        s->full = true;
        break;
    }
}

static void prefix_spans(store_prefilter *p, pf_spans *s, const json_t *lit)
{
    if (!json_is_string(lit))
        return;
    store_ix_value next;
    const char *t = json_string_value(lit);
    size_t n = json_string_length(lit);
    int64_t end = pf_successor(p, t, n, &next) ? first_time(next.text, next.len, false) - 1
                                               : PF_ACTIVITY_MAX_MS;
    add_span(s, first_time(t, n, false), end);
}

static int by_start(const void *a, const void *b)
{
    int64_t x = ((const pf_span *)a)->lo, y = ((const pf_span *)b)->lo;
    return (x > y) - (x < y);
}

/* Sorts the spans and joins those that touch, so that SQLite gets as few ranges as possible. */
static void merge_spans(pf_spans *s)
{
    qsort(s->v, s->n, sizeof s->v[0], by_start);
    size_t out = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (out && (s->v[out - 1].hi == INT64_MAX || s->v[i].lo <= s->v[out - 1].hi + 1)) {
            if (s->v[i].hi > s->v[out - 1].hi)
                s->v[out - 1].hi = s->v[i].hi;
        } else {
            s->v[out++] = s->v[i];
        }
    }
    s->n = out;
}

static bool put_span(store_prefilter *p, const pf_span *sp, const char *col)
{
    store_ix_value lo = pf_int_value(sp->lo), hi = pf_int_value(sp->hi);
    if (sp->lo == INT64_MIN)
        return pf_put(p, "%s <= ", col) && pf_put_param(p, &hi);
    if (sp->hi == INT64_MAX)
        return pf_put(p, "%s >= ", col) && pf_put_param(p, &lo);
    return pf_put(p, "%s BETWEEN ", col) && pf_put_param(p, &lo) && pf_put(p, " AND ") &&
           pf_put_param(p, &hi);
}

static pf_result put_spans(store_prefilter *p, pf_spans *s, bool drive)
{
    merge_spans(s);
    if (s->n == 0)
        return PF_NONE;
    if (s->n == 1 && s->v[0].lo == INT64_MIN && s->v[0].hi == INT64_MAX)
        return PF_ALL;
    /* Driving, the index on the column lists the ids (SQLite then needs to sort ids only); as a
     * probe, the device's own column is tested. */
    const char *col = drive ? "last_activity_ms" : "d.last_activity_ms";
    bool ok = pf_put(p, drive ? "d.device_id IN (SELECT device_id FROM devices WHERE " : "(");
    for (size_t i = 0; ok && i < s->n; i++)
        ok = (i == 0 || pf_put(p, " OR ")) && put_span(p, &s->v[i], col);
    return ok && pf_put(p, ")") ? PF_SQL : PF_ALL;
}

static pf_result activity_column(store_prefilter *p, const pf_leaf *l, bool drive)
{
    if (l->kind == QN_CALL && l->op != QF_STARTSWITH)
        return type_check_always(l->op);
    pf_spans s = {.n = 0};
    if (l->kind == QN_IN) {
        for (size_t i = 0; i < l->list->nkids; i++) {
            const json_t *e = NULL;
            if (!pf_constant(p, l->list->kids[i], &e))
                return PF_ALL;
            compare_spans(&s, QOP_EQ, e);
        }
    } else if (l->kind == QN_CALL) {
        prefix_spans(p, &s, l->lit);
    } else {
        compare_spans(&s, l->op, l->lit);
    }
    /* "Never" prints as year 1, and times past year 9999 do not sort: test the first, always
     * take the others. */
    json_t *never = json_pack("{s:s}", "lastActivityTime", "0001-01-01T00:00:00Z");
    qval r = never ? qry_eval(l->node, never) : (qval){NULL, NULL};
    if (!never || (r.v && json_is_true(r.v)))
        add_span(&s, INT64_MIN, 0);
    qval_drop(&r);
    json_decref(never);
    add_span(&s, PF_ACTIVITY_MAX_MS + 1, INT64_MAX);
    return s.full ? PF_ALL : put_spans(p, &s, drive);
}

/* ---- the twin index ---- */

/* Appends " AND <condition on x.value>" for a comparison with one constant. */
static pf_result index_compare(store_prefilter *p, int op, const json_t *lit)
{
    store_ix_value v;
    if (!lit || json_is_object(lit) || json_is_array(lit))
        return PF_NONE; /* only primitives compare */
    store_ix_value_of(lit, &v);
    if (op == QOP_EQ) {
        if (v.type == SQLITE_NULL)
            return pf_put(p, " AND x.value IS NULL") ? PF_SQL : PF_ALL;
        return pf_put(p, " AND x.value = ") && pf_put_param(p, &v) ? PF_SQL : PF_ALL;
    }
    bool below = op == QOP_LT || op == QOP_LE, ok;
    if (v.type == SQLITE_INTEGER || v.type == SQLITE_FLOAT)
        ok = below ? pf_put(p, " AND x.value <= ") && pf_put_param(p, &v)
                   : pf_put(p, " AND x.value >= ") && pf_put_param(p, &v) &&
                         pf_put(p, " AND x.value < ''");
    else if (v.type == SQLITE_TEXT)
        ok = below ? pf_put(p, " AND x.value >= '' AND x.value <= ") && pf_put_param(p, &v)
                   : pf_put(p, " AND x.value >= ") && pf_put_param(p, &v) &&
                         pf_put(p, " AND x.value < x''");
    else
        return PF_NONE; /* booleans and null do not order */
    return ok ? PF_SQL : PF_ALL;
}

static pf_result index_in(store_prefilter *p, const pf_leaf *l)
{
    bool values = false, null = false;
    if (!pf_put(p, " AND (x.value IN ("))
        return PF_ALL;
    for (size_t i = 0; i < l->list->nkids; i++) {
        const json_t *e = NULL;
        store_ix_value v;
        if (!pf_constant(p, l->list->kids[i], &e))
            return PF_ALL;
        if (!e || json_is_object(e) || json_is_array(e))
            continue; /* never equal to anything */
        store_ix_value_of(e, &v);
        if (v.type == SQLITE_NULL) {
            null = true;
            continue;
        }
        if ((values && !pf_put(p, ", ")) || !pf_put_param(p, &v))
            return PF_ALL;
        values = true;
    }
    if (!values && !null)
        return PF_NONE;
    return pf_put(p, ")%s)", null ? " OR x.value IS NULL" : "") ? PF_SQL : PF_ALL;
}

static pf_result index_call(store_prefilter *p, const pf_leaf *l)
{
    static const char *const checks[] = {
        [QF_IS_DEFINED] = "",
        [QF_IS_NULL] = " AND x.value IS NULL",
        [QF_IS_BOOL] = " AND x.value IN (x'00', x'01')",
        [QF_IS_NUMBER] = " AND x.value < ''",
        [QF_IS_STRING] = " AND x.value >= '' AND x.value < x''",
        [QF_IS_OBJECT] = " AND x.value = x'02'",
        [QF_IS_ARRAY] = " AND x.value = x'03'",
        [QF_IS_PRIMITIVE] = " AND (x.value IS NULL OR x.value < x'02')",
    };
    if (l->op <= QF_IS_PRIMITIVE)
        return pf_put(p, "%s", checks[l->op]) ? PF_SQL : PF_ALL;
    if (!json_is_string(l->lit))
        return PF_NONE;
    store_ix_value v, next;
    store_ix_value_of(l->lit, &v); /* the prefix as stored: at most STORE_IX_TEXT_MAX bytes */
    if (!pf_put(p, " AND x.value >= ") || !pf_put_param(p, &v))
        return PF_ALL;
    bool bounded = pf_successor(p, v.text, v.len, &next);
    bool ok = bounded ? pf_put(p, " AND x.value < ") && pf_put_param(p, &next)
                      : pf_put(p, " AND x.value < x''");
    return ok ? PF_SQL : PF_ALL;
}

static pf_result index_condition(store_prefilter *p, const pf_leaf *l)
{
    if (l->kind == QN_IN)
        return index_in(p, l);
    if (l->kind == QN_CALL)
        return index_call(p, l);
    return index_compare(p, l->op, l->lit);
}

/* A leaf on the index. drive: as an IN list SQLite can walk (the candidates come from the index);
 * otherwise as a probe of the device's own rows (the candidates come from elsewhere). Either way
 * the twins whose section is not indexed are candidates too. */
static pf_result index_leaf(store_prefilter *p, const pf_leaf *l, bool drive)
{
    store_ix_value id = pf_int_value(l->path_id);
    bool ok = drive ? pf_put(p, "d.device_id IN (SELECT x.device_id FROM twin_index x "
                                "WHERE x.path_id = ")
                    : pf_put(p,
                             "(EXISTS (SELECT 1 FROM twin_index x WHERE x.device_id = d.device_id"
                             " AND x.section = %d AND x.path_id = ",
                             l->section);
    if (!ok || !pf_put_param(p, &id))
        return PF_ALL;
    pf_result r = index_condition(p, l);
    if (r != PF_SQL)
        return r;
    if (drive)
        ok = pf_put(p,
                    " UNION ALL SELECT x.device_id FROM twin_index x WHERE x.path_id = %d "
                    "AND x.value = %d)",
                    STORE_IX_UNINDEXED, l->section);
    else
        ok = pf_put(p,
                    ") OR EXISTS (SELECT 1 FROM twin_index x WHERE x.device_id = d.device_id "
                    "AND x.section = %d AND x.path_id = %d))",
                    l->section, STORE_IX_UNINDEXED);
    return ok ? PF_SQL : PF_ALL;
}

pf_result pf_leaf_sql(store_prefilter *p, const pf_leaf *l, bool drive)
{
    static const char *const enabled[] = {"disabled", "enabled"};
    static const char *const connected[] = {"Disconnected", "Connected"};
    switch (l->column) {
    case COL_DEVICE_ID:
        return text_column(p, l, "d.device_id");
    case COL_MODEL_ID:
        return text_column(p, l, "d.model_id");
    case COL_STATUS:
        return two_valued(p, l, "status", "d.enabled", enabled);
    case COL_CONNECTION:
        return two_valued(p, l, "connectionState", "d.connected", connected);
    case COL_ACTIVITY:
        return activity_column(p, l, drive);
    case COL_INDEX:
        return index_leaf(p, l, drive);
    default:
        return PF_ALL;
    }
}
