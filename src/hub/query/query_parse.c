/* Recursive-descent parser of the hub query language: tokens to a syntax tree (expressions). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "hub/query/query_parse.h"

static const char *const reserved[] = {"SELECT", "TOP",   "FROM", "WHERE",    "GROUP", "BY",
                                       "AS",     "AND",   "OR",   "NOT",      "IN",    "NIN",
                                       "TRUE",   "FALSE", "NULL", "UNDEFINED"};

static const struct {
    const char *name;
    qfunc f;
    size_t min_args, max_args;
} functions[] = {
    {"IS_DEFINED", QF_IS_DEFINED, 1, 1}, {"IS_NULL", QF_IS_NULL, 1, 1},
    {"IS_BOOL", QF_IS_BOOL, 1, 1},       {"IS_NUMBER", QF_IS_NUMBER, 1, 1},
    {"IS_STRING", QF_IS_STRING, 1, 1},   {"IS_OBJECT", QF_IS_OBJECT, 1, 1},
    {"IS_ARRAY", QF_IS_ARRAY, 1, 1},     {"IS_PRIMITIVE", QF_IS_PRIMITIVE, 1, 1},
    {"STARTSWITH", QF_STARTSWITH, 2, 3}, {"ENDSWITH", QF_ENDSWITH, 2, 3},
    {"CONTAINS", QF_CONTAINS, 2, 3},     {"LOWER", QF_LOWER, 1, 1},
    {"UPPER", QF_UPPER, 1, 1},           {"LENGTH", QF_LENGTH, 1, 1},
};

static const char *const aggregates[] = {"COUNT", "SUM", "AVG", "MIN", "MAX"};

/* The position is what a user needs most: the message is cut short to keep it. */
void qry_fail(qparser *p, size_t pos, const char *fmt, ...)
{
    if (p->rc != IOTDM_OK)
        return;
    p->rc = IOTDM_E_MALFORMED;
    if (!p->err || p->err_cap == 0)
        return;
    char where[48];
    int wl = snprintf(where, sizeof(where), " at position %zu", pos);
    size_t room = p->err_cap > (size_t)wl ? p->err_cap - (size_t)wl : 1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->err, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    size_t used = (size_t)n < room ? (size_t)n : room - 1;
    snprintf(p->err + used, p->err_cap - used, "%s", where);
}

void qry_oom(qparser *p)
{
    if (p->rc != IOTDM_OK)
        return;
    p->rc = -ENOMEM;
    qry_set_err(p->err, p->err_cap, "out of memory");
}

const qtok *qry_peek(const qparser *p)
{
    return &p->t->v[p->i];
}

const qtok *qry_next(qparser *p)
{
    const qtok *t = &p->t->v[p->i];
    if (t->kind != QT_EOF)
        p->i++;
    return t;
}

bool qry_is_kw(const qtok *t, const char *kw)
{
    return t->kind == QT_IDENT && strlen(kw) == t->len && strncasecmp(t->text, kw, t->len) == 0;
}

bool qry_accept_kw(qparser *p, const char *kw)
{
    if (!qry_is_kw(qry_peek(p), kw))
        return false;
    qry_next(p);
    return true;
}

bool qry_accept(qparser *p, qtok_kind kind)
{
    if (qry_peek(p)->kind != kind)
        return false;
    qry_next(p);
    return true;
}

bool qry_expect(qparser *p, qtok_kind kind, const char *what)
{
    if (qry_accept(p, kind))
        return true;
    qry_fail(p, qry_peek(p)->pos, "expected %s", what);
    return false;
}

bool qry_is_reserved(const qtok *t)
{
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (qry_is_kw(t, reserved[i]))
            return true;
    return false;
}

int qry_aggregate_of(const qtok *t)
{
    for (size_t i = 0; i < sizeof(aggregates) / sizeof(aggregates[0]); i++)
        if (qry_is_kw(t, aggregates[i]))
            return (int)i;
    return -1;
}

void qry_node_free(qnode *n)
{
    if (!n)
        return;
    json_decref(n->lit);
    for (size_t i = 0; i < n->nsegs; i++)
        xfree(n->segs[i].name);
    xfree(n->segs);
    for (size_t i = 0; i < n->nkids; i++)
        qry_node_free(n->kids[i]);
    xfree(n->kids);
    xfree(n);
}

qnode *qry_node_new(qparser *p, qnode_kind kind, int op, size_t pos)
{
    qnode *n = xcalloc(1, sizeof(*n));
    if (!n) {
        qry_oom(p);
        return NULL;
    }
    n->kind = kind;
    n->op = op;
    n->pos = pos;
    n->depth = 1;
    return n;
}

bool qry_add_kid(qparser *p, qnode *n, qnode *kid)
{
    if (!kid)
        return false;
    qnode **kids = xrealloc(n->kids, (n->nkids + 1) * sizeof(*kids));
    if (!kids) {
        qry_node_free(kid);
        qry_oom(p);
        return false;
    }
    n->kids = kids;
    n->kids[n->nkids++] = kid;
    if (kid->depth + 1 > n->depth)
        n->depth = kid->depth + 1;
    if (n->depth > HUB_QUERY_MAX_DEPTH) {
        qry_fail(p, n->pos, "expression nested deeper than %d", HUB_QUERY_MAX_DEPTH);
        return false;
    }
    return true;
}

/* Builds a node of the given kind over one or two operands; consumes them even on failure. */
static qnode *make_node(qparser *p, qnode_kind kind, int op, size_t pos, qnode *a, qnode *b)
{
    qnode *n = qry_node_new(p, kind, op, pos);
    if (!n) {
        qry_node_free(a);
        qry_node_free(b);
        return NULL;
    }
    if (!qry_add_kid(p, n, a)) {
        qry_node_free(b);
        qry_node_free(n);
        return NULL;
    }
    if (b && !qry_add_kid(p, n, b)) {
        qry_node_free(n);
        return NULL;
    }
    return n;
}

static bool enter(qparser *p, size_t pos)
{
    if (++p->depth > HUB_QUERY_MAX_DEPTH) {
        qry_fail(p, pos, "expression nested deeper than %d", HUB_QUERY_MAX_DEPTH);
        return false;
    }
    return true;
}

static qnode *parse_literal(qparser *p)
{
    const qtok *t = qry_next(p);
    qnode *n = qry_node_new(p, QN_LIT, 0, t->pos);
    if (!n)
        return NULL;
    if (t->kind == QT_NUMBER || t->kind == QT_STRING)
        n->lit = json_incref(t->value);
    else if (qry_is_kw(t, "TRUE"))
        n->lit = json_true();
    else if (qry_is_kw(t, "FALSE"))
        n->lit = json_false();
    else if (qry_is_kw(t, "NULL"))
        n->lit = json_null();
    return n; /* UNDEFINED: lit stays NULL */
}

/* Elements up to the closing bracket (opening one already consumed) become kids of n. */
static qnode *parse_list(qparser *p, qnode *n, qtok_kind close, const char *what)
{
    if (qry_accept(p, close))
        return n;
    do {
        if (!qry_add_kid(p, n, qry_parse_expr(p))) {
            qry_node_free(n);
            return NULL;
        }
    } while (qry_accept(p, QT_COMMA));
    if (!qry_expect(p, close, what)) {
        qry_node_free(n);
        return NULL;
    }
    return n;
}

static qnode *parse_call(qparser *p)
{
    const qtok *name = qry_next(p);
    qry_next(p); /* ( */
    if (qry_aggregate_of(name) >= 0) {
        qry_fail(p, name->pos, "aggregate %.*s is allowed only in the SELECT list", (int)name->len,
                 name->text); /* at most 5 characters */
        return NULL;
    }
    size_t f = 0, nf = sizeof(functions) / sizeof(functions[0]);
    while (f < nf && !qry_is_kw(name, functions[f].name))
        f++;
    if (f == nf) {
        qry_fail(p, name->pos, "unknown function '%.*s'", name->len > 40 ? 40 : (int)name->len,
                 name->text);
        return NULL;
    }
    qnode *n = qry_node_new(p, QN_CALL, (int)functions[f].f, name->pos);
    if (!n || !parse_list(p, n, QT_RPAREN, "')'"))
        return NULL;
    if (n->nkids < functions[f].min_args || n->nkids > functions[f].max_args) {
        qry_fail(p, name->pos, "wrong number of arguments to %s", functions[f].name);
        qry_node_free(n);
        return NULL;
    }
    return n;
}

static qnode *parse_primary(qparser *p)
{
    const qtok *t = qry_peek(p);
    if (t->kind == QT_NUMBER || t->kind == QT_STRING || qry_is_kw(t, "TRUE") ||
        qry_is_kw(t, "FALSE") || qry_is_kw(t, "NULL") || qry_is_kw(t, "UNDEFINED"))
        return parse_literal(p);
    if (t->kind == QT_LPAREN) {
        qry_next(p);
        qnode *n = qry_parse_expr(p);
        if (n && !qry_expect(p, QT_RPAREN, "')'")) {
            qry_node_free(n);
            return NULL;
        }
        return n;
    }
    if (t->kind == QT_LBRACKET) {
        qry_next(p);
        qnode *n = qry_node_new(p, QN_ARRAY, 0, t->pos);
        return n ? parse_list(p, n, QT_RBRACKET, "']'") : NULL;
    }
    if (t->kind == QT_IDENT && p->t->v[p->i + 1].kind == QT_LPAREN && !qry_is_reserved(t))
        return parse_call(p);
    if (t->kind == QT_IDENT && !qry_is_reserved(t))
        return qry_parse_path(p);
    qry_fail(p, t->pos, "expected an expression");
    return NULL;
}

static qnode *parse_unary(qparser *p)
{
    const qtok *t = qry_peek(p);
    if (t->kind != QT_MINUS && t->kind != QT_PLUS)
        return parse_primary(p);
    qry_next(p);
    if (!enter(p, t->pos))
        return NULL;
    qnode *operand = parse_unary(p);
    p->depth--;
    if (!operand || t->kind == QT_PLUS)
        return operand;
    return make_node(p, QN_NEG, 0, t->pos, operand, NULL);
}

/* The arithmetic operator of a token at the multiplicative or the additive level, or -1. */
static int arith_op_of(qtok_kind k, bool multiplicative)
{
    if (multiplicative)
        return k == QT_STAR ? QOP_MUL : k == QT_SLASH ? QOP_DIV : k == QT_PERCENT ? QOP_MOD : -1;
    return k == QT_PLUS ? QOP_ADD : k == QT_MINUS ? QOP_SUB : -1;
}

static qnode *parse_mul(qparser *p)
{
    qnode *left = parse_unary(p);
    while (left) {
        const qtok *t = qry_peek(p);
        int op = arith_op_of(t->kind, true);
        if (op < 0)
            break;
        qry_next(p);
        qnode *right = parse_unary(p);
        left =
            right ? make_node(p, QN_ARITH, op, t->pos, left, right) : (qry_node_free(left), NULL);
    }
    return left;
}

static qnode *parse_add(qparser *p)
{
    qnode *left = parse_mul(p);
    while (left) {
        const qtok *t = qry_peek(p);
        int op = arith_op_of(t->kind, false);
        if (op < 0)
            break;
        qry_next(p);
        qnode *right = parse_mul(p);
        left =
            right ? make_node(p, QN_ARITH, op, t->pos, left, right) : (qry_node_free(left), NULL);
    }
    return left;
}

static int cmp_op_of(qtok_kind k)
{
    switch (k) {
    case QT_EQ:
        return QOP_EQ;
    case QT_NE:
        return QOP_NE;
    case QT_LT:
        return QOP_LT;
    case QT_GT:
        return QOP_GT;
    case QT_LE:
        return QOP_LE;
    case QT_GE:
        return QOP_GE;
    default:
        return -1;
    }
}

/* One comparison or membership test; these do not chain (a = b = c is an error). */
static qnode *parse_cmp(qparser *p)
{
    qnode *left = parse_add(p);
    if (!left)
        return NULL;
    const qtok *t = qry_peek(p);
    int op = cmp_op_of(t->kind);
    if (op >= 0) {
        qry_next(p);
        qnode *right = parse_add(p);
        return right ? make_node(p, QN_CMP, op, t->pos, left, right) : (qry_node_free(left), NULL);
    }
    bool negate = qry_is_kw(t, "NIN");
    if (qry_is_kw(t, "NOT") && qry_is_kw(&p->t->v[p->i + 1], "IN")) {
        qry_next(p);
        negate = true;
    } else if (!negate && !qry_is_kw(t, "IN")) {
        return left;
    }
    qry_next(p);
    qnode *set = parse_add(p);
    if (set && set->kind == QN_LIT) {
        /* A path may hold an array; a literal string or number never does. */
        qry_fail(p, set->pos, "expected an array");
        qry_node_free(set);
        set = NULL;
    }
    return set ? make_node(p, QN_IN, negate, t->pos, left, set) : (qry_node_free(left), NULL);
}

static qnode *parse_not(qparser *p)
{
    const qtok *t = qry_peek(p);
    if (!qry_is_kw(t, "NOT"))
        return parse_cmp(p);
    qry_next(p);
    if (!enter(p, t->pos))
        return NULL;
    qnode *operand = parse_not(p);
    p->depth--;
    return operand ? make_node(p, QN_NOT, 0, t->pos, operand, NULL) : NULL;
}

/* AND and OR are n-ary so that a long OR chain of device ids stays one level deep. */
static qnode *parse_logical(qparser *p, qnode_kind kind)
{
    const char *kw = kind == QN_OR ? "OR" : "AND";
    qnode *first = kind == QN_OR ? parse_logical(p, QN_AND) : parse_not(p);
    if (!first || !qry_is_kw(qry_peek(p), kw))
        return first;
    qnode *n = qry_node_new(p, kind, 0, qry_peek(p)->pos);
    if (!n || !qry_add_kid(p, n, first)) {
        if (!n)
            qry_node_free(first);
        qry_node_free(n);
        return NULL;
    }
    while (qry_accept_kw(p, kw)) {
        qnode *next = kind == QN_OR ? parse_logical(p, QN_AND) : parse_not(p);
        if (!qry_add_kid(p, n, next)) {
            qry_node_free(n);
            return NULL;
        }
    }
    return n;
}

qnode *qry_parse_expr(qparser *p)
{
    if (!enter(p, qry_peek(p)->pos))
        return NULL;
    qnode *n = parse_logical(p, QN_OR);
    p->depth--;
    return n;
}
