/* Internals of the hub query language shared by its lexer, parser, evaluator and runner. */
#ifndef IOTDM_HUB_QUERY_INT_H
#define IOTDM_HUB_QUERY_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "hub/query/query.h"

/* ---- tokens ---- */

typedef enum {
    QT_EOF,
    QT_IDENT,
    QT_NUMBER,
    QT_STRING,
    QT_DOT,
    QT_COMMA,
    QT_LPAREN,
    QT_RPAREN,
    QT_LBRACKET,
    QT_RBRACKET,
    QT_STAR,
    QT_PLUS,
    QT_MINUS,
    QT_SLASH,
    QT_PERCENT,
    QT_EQ,
    QT_NE,
    QT_LT,
    QT_GT,
    QT_LE,
    QT_GE,
} qtok_kind;

typedef struct {
    qtok_kind kind;
    size_t pos;       /* byte offset in the query text */
    const char *text; /* points into the query text */
    size_t len;
    json_t *value; /* QT_NUMBER, QT_STRING: the decoded literal (owned by the token list) */
} qtok;

typedef struct {
    qtok *v;
    size_t n, cap;
} qtoks;

/* Splits text into tokens, ending with one QT_EOF. IOTDM_E_MALFORMED with a message in err. */
IOTDM_NODISCARD iotdm_result qry_lex(const char *text, size_t len, qtoks *out, char *err,
                                     size_t err_cap);
void qry_toks_free(qtoks *t);

/* Formats an error message into err (if any). */
void qry_set_err(char *err, size_t err_cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- syntax tree ---- */

typedef enum {
    QN_LIT,   /* lit; NULL for the literal undefined */
    QN_PATH,  /* segs */
    QN_ARRAY, /* kids: the elements */
    QN_NOT,   /* kids[0] */
    QN_NEG,   /* kids[0] */
    QN_AND,   /* kids (n-ary, so long chains stay shallow) */
    QN_OR,    /* kids (n-ary) */
    QN_CMP,   /* op: qcmp_op; kids[0], kids[1] */
    QN_ARITH, /* op: qarith_op; kids[0], kids[1] */
    QN_IN,    /* kids[0] IN kids[1]; op 1 for NIN */
    QN_CALL,  /* op: qfunc; kids: the arguments */
    QN_AGG,   /* op: qagg; kids[0] or no kid (COUNT()) */
} qnode_kind;

typedef enum { QOP_EQ, QOP_NE, QOP_LT, QOP_GT, QOP_LE, QOP_GE } qcmp_op;
typedef enum { QOP_ADD, QOP_SUB, QOP_MUL, QOP_DIV, QOP_MOD } qarith_op;

typedef enum {
    QF_IS_DEFINED,
    QF_IS_NULL,
    QF_IS_BOOL,
    QF_IS_NUMBER,
    QF_IS_STRING,
    QF_IS_OBJECT,
    QF_IS_ARRAY,
    QF_IS_PRIMITIVE,
    QF_STARTSWITH,
    QF_ENDSWITH,
    QF_CONTAINS,
    QF_LOWER,
    QF_UPPER,
    QF_LENGTH,
} qfunc;

typedef enum { QA_COUNT, QA_SUM, QA_AVG, QA_MIN, QA_MAX } qagg;

typedef struct {
    char *name; /* object member (may hold NUL bytes, hence len) */
    size_t len;
    size_t index; /* array element, when is_index */
    bool is_index;
} qseg;

typedef struct qnode {
    qnode_kind kind;
    int op;
    size_t pos;
    unsigned depth; /* height of this subtree, bounded by HUB_QUERY_MAX_DEPTH */
    json_t *lit;
    qseg *segs;
    size_t nsegs;
    struct qnode **kids;
    size_t nkids;
} qnode;

void qry_node_free(qnode *n);

typedef struct {
    qnode *expr;
    char *key;    /* output member name */
    int group_ix; /* the GROUP BY path this projects, or -1 */
} qproj;

struct hub_query {
    hub_query_source source;
    bool select_all;
    bool aggregate; /* the select list holds aggregates: rows are groups */
    size_t top;     /* SIZE_MAX without TOP */
    qproj *proj;
    size_t nproj;
    qnode *where;
    qnode **group_by;
    char **group_keys; /* output member name of each GROUP BY value */
    size_t ngroup;
};

/* ---- evaluation ---- */

/* A value: v NULL means undefined. owned is set (and equals v) when the value was computed and
 * must be released with qval_drop; otherwise v is borrowed from the document or the query. */
typedef struct {
    const json_t *v;
    json_t *owned;
} qval;

qval qry_eval(const qnode *n, const json_t *doc);
/* A QN_CALL node: the built-in functions. */
qval qry_eval_call(const qnode *n, const json_t *doc);
void qval_drop(qval *val);
/* A new reference holding val's value (val is consumed). NULL when undefined or out of memory. */
json_t *qval_take(qval *val);
/* A number as jansson would best hold it: integral values as integers. NULL if not finite. */
json_t *qry_number(double d);

#endif
