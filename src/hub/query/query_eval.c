/* Evaluation of query expressions over one JSON document, with SQL-like undefined semantics. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "hub/query/query_int.h"

static qval undef(void)
{
    return (qval){NULL, NULL};
}

static qval borrowed(const json_t *v)
{
    return (qval){v, NULL};
}

/* A computed value; allocation failure (v NULL) degrades to undefined. */
static qval owned(json_t *v)
{
    return (qval){v, v};
}

static qval boolean(bool b)
{
    return borrowed(b ? json_true() : json_false());
}

void qval_drop(qval *val)
{
    json_decref(val->owned);
    val->v = NULL;
    val->owned = NULL;
}

json_t *qval_take(qval *val)
{
    json_t *out = val->owned ? val->owned : val->v ? json_deep_copy(val->v) : NULL;
    val->v = NULL;
    val->owned = NULL;
    return out;
}

json_t *qry_number(double d)
{
    if (!isfinite(d))
        return NULL;
    /* Integral results print as integers, as a JavaScript-based service would print them. */
    if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && (double)(json_int_t)d == d)
        return json_integer((json_int_t)d);
    return json_real(d);
}

/* fmod without libm (the hub does not link it): subtract y scaled by powers of two, largest
 * first. Every step is exact (t <= r < 2t), so this is the exact remainder, sign of x. */
static double remainder_of(double x, double y)
{
    double r = x < 0 ? -x : x, ay = y < 0 ? -y : y, t = ay;
    while (t + t <= r)
        t += t;
    while (r >= ay) {
        if (r >= t)
            r -= t;
        t /= 2;
    }
    return x < 0 ? -r : r;
}

static qval eval_path(const qnode *n, const json_t *doc)
{
    const json_t *cur = doc;
    for (size_t i = 0; i < n->nsegs && cur; i++) {
        const qseg *s = &n->segs[i];
        if (s->is_index)
            cur = json_is_array(cur) ? json_array_get(cur, s->index) : NULL;
        else
            cur = json_is_object(cur) ? json_object_getn(cur, s->name, s->len) : NULL;
    }
    return borrowed(cur);
}

/* Compares two values of the same primitive type. Numbers and strings (ordinal) order; booleans
 * and nulls only compare for equality. False when the pair is not comparable. */
static bool compare(const json_t *a, const json_t *b, bool ordering, int *out)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        *out = (x > y) - (x < y);
    } else if (json_is_number(a) && json_is_number(b)) {
        double x = json_number_value(a), y = json_number_value(b);
        *out = (x > y) - (x < y);
    } else if (json_is_string(a) && json_is_string(b)) {
        size_t la = json_string_length(a), lb = json_string_length(b);
        int c = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
        *out = c != 0 ? c : (la > lb) - (la < lb);
    } else if (!ordering && json_is_boolean(a) && json_is_boolean(b)) {
        *out = json_is_true(a) != json_is_true(b);
    } else if (!ordering && json_is_null(a) && json_is_null(b)) {
        *out = 0;
    } else {
        return false;
    }
    return true;
}

static qval eval_cmp(const qnode *n, const json_t *doc)
{
    qval a = qry_eval(n->kids[0], doc), b = qry_eval(n->kids[1], doc);
    int c = 0;
    bool ordering = n->op != QOP_EQ && n->op != QOP_NE;
    bool ok = a.v && b.v && compare(a.v, b.v, ordering, &c);
    qval_drop(&a);
    qval_drop(&b);
    if (!ok)
        return undef();
    switch ((qcmp_op)n->op) {
    case QOP_EQ:
        return boolean(c == 0);
    case QOP_NE:
        return boolean(c != 0);
    case QOP_LT:
        return boolean(c < 0);
    case QOP_GT:
        return boolean(c > 0);
    case QOP_LE:
        return boolean(c <= 0);
    case QOP_GE:
        return boolean(c >= 0);
    }
    return undef();
}

/* Three-valued logic: false decides an AND, true an OR; anything not boolean is undefined. */
static qval eval_logic(const qnode *n, const json_t *doc)
{
    bool decisive = n->kind == QN_OR, unknown = false;
    for (size_t i = 0; i < n->nkids; i++) {
        qval v = qry_eval(n->kids[i], doc);
        bool is_bool = v.v && json_is_boolean(v.v), value = v.v && json_is_true(v.v);
        qval_drop(&v);
        if (is_bool && value == decisive)
            return boolean(decisive);
        unknown = unknown || !is_bool;
    }
    return unknown ? undef() : boolean(!decisive);
}

static qval eval_not(const qnode *n, const json_t *doc)
{
    qval v = qry_eval(n->kids[0], doc);
    qval out = v.v && json_is_boolean(v.v) ? boolean(!json_is_true(v.v)) : undef();
    qval_drop(&v);
    return out;
}

static json_t *arith_int(int op, json_int_t x, json_int_t y)
{
    json_int_t r;
    switch ((qarith_op)op) {
    case QOP_ADD:
        return __builtin_add_overflow(x, y, &r) ? qry_number((double)x + (double)y)
                                                : json_integer(r);
    case QOP_SUB:
        return __builtin_sub_overflow(x, y, &r) ? qry_number((double)x - (double)y)
                                                : json_integer(r);
    case QOP_MUL:
        return __builtin_mul_overflow(x, y, &r) ? qry_number((double)x * (double)y)
                                                : json_integer(r);
    case QOP_DIV:
        if (y == 0)
            return NULL;
        if (y == -1 || x % y != 0) /* -1: INT64_MIN / -1 overflows */
            return qry_number((double)x / (double)y);
        return json_integer(x / y);
    case QOP_MOD:
        if (y == 0)
            return NULL;
        return json_integer(y == -1 ? 0 : x % y);
    }
    return NULL;
}

static json_t *arith_real(int op, double x, double y)
{
    switch ((qarith_op)op) {
    case QOP_ADD:
        return qry_number(x + y);
    case QOP_SUB:
        return qry_number(x - y);
    case QOP_MUL:
        return qry_number(x * y);
    case QOP_DIV:
        return y == 0 ? NULL : qry_number(x / y);
    case QOP_MOD:
        return y == 0 ? NULL : qry_number(remainder_of(x, y));
    }
    return NULL;
}

static qval eval_arith(const qnode *n, const json_t *doc)
{
    qval a = qry_eval(n->kids[0], doc), b = qry_eval(n->kids[1], doc);
    json_t *r = NULL;
    if (json_is_integer(a.v) && json_is_integer(b.v))
        r = arith_int(n->op, json_integer_value(a.v), json_integer_value(b.v));
    else if (json_is_number(a.v) && json_is_number(b.v))
        r = arith_real(n->op, json_number_value(a.v), json_number_value(b.v));
    qval_drop(&a);
    qval_drop(&b);
    return owned(r);
}

static qval eval_neg(const qnode *n, const json_t *doc)
{
    qval a = qry_eval(n->kids[0], doc);
    json_t *r = NULL;
    if (json_is_integer(a.v) && json_integer_value(a.v) != INT64_MIN)
        r = json_integer(-json_integer_value(a.v));
    else if (json_is_number(a.v))
        r = qry_number(-json_number_value(a.v));
    qval_drop(&a);
    return owned(r);
}

static bool equal_to(const json_t *x, const json_t *y)
{
    int c;
    return x && y && compare(x, y, false, &c) && c == 0;
}

/* x IN [..]: literal lists are walked element by element, without building an array. */
static qval eval_in(const qnode *n, const json_t *doc)
{
    qval x = qry_eval(n->kids[0], doc);
    if (!x.v)
        return undef();
    const qnode *set = n->kids[1];
    bool found = false, is_array = true;
    if (set->kind == QN_ARRAY) {
        for (size_t i = 0; i < set->nkids && !found; i++) {
            qval e = qry_eval(set->kids[i], doc);
            found = equal_to(x.v, e.v);
            qval_drop(&e);
        }
    } else {
        qval arr = qry_eval(set, doc);
        is_array = json_is_array(arr.v);
        for (size_t i = 0; is_array && i < json_array_size(arr.v) && !found; i++)
            found = equal_to(x.v, json_array_get(arr.v, i));
        qval_drop(&arr);
    }
    qval_drop(&x);
    return is_array ? boolean(found != (n->op != 0)) : undef();
}

static qval eval_array(const qnode *n, const json_t *doc)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n->nkids; i++) {
        qval e = qry_eval(n->kids[i], doc);
        bool defined = e.v != NULL;
        json_t *v = qval_take(&e);
        if (defined && json_array_append_new(arr, v) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    return owned(arr);
}

/* Recursion is bounded: trees are at most HUB_QUERY_MAX_DEPTH deep. */
qval qry_eval(const qnode *n, const json_t *doc)
{
    switch (n->kind) {
    case QN_LIT:
        return borrowed(n->lit);
    case QN_PATH:
        return eval_path(n, doc);
    case QN_ARRAY:
        return eval_array(n, doc);
    case QN_NOT:
        return eval_not(n, doc);
    case QN_NEG:
        return eval_neg(n, doc);
    case QN_AND:
    case QN_OR:
        return eval_logic(n, doc);
    case QN_CMP:
        return eval_cmp(n, doc);
    case QN_ARITH:
        return eval_arith(n, doc);
    case QN_IN:
        return eval_in(n, doc);
    case QN_CALL:
        return qry_eval_call(n, doc);
    case QN_AGG:
        break; /* the runner evaluates aggregates */
    }
    return undef();
}

bool hub_query_matches(const hub_query *q, const json_t *doc)
{
    if (!q->where)
        return true;
    qval v = qry_eval(q->where, doc);
    bool match = v.v && json_is_true(v.v);
    qval_drop(&v);
    return match;
}
