/* Parser state and helpers shared by the expression parser and the statement parser. */
#ifndef IOTDM_HUB_QUERY_PARSE_H
#define IOTDM_HUB_QUERY_PARSE_H

#include "hub/query/query_int.h"

typedef struct {
    const qtoks *t;
    size_t i;       /* the current token */
    unsigned depth; /* recursion depth of the expression parser */
    hub_query_source source;
    char *err;
    size_t err_cap;
    iotdm_result rc; /* the first error; later ones keep its message */
} qparser;

void qry_fail(qparser *p, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void qry_oom(qparser *p);

const qtok *qry_peek(const qparser *p);
const qtok *qry_next(qparser *p);
bool qry_is_kw(const qtok *t, const char *kw);
bool qry_is_reserved(const qtok *t);
bool qry_accept_kw(qparser *p, const char *kw);
bool qry_accept(qparser *p, qtok_kind kind);
bool qry_expect(qparser *p, qtok_kind kind, const char *what);
/* The qagg of an aggregate function name, or -1. */
int qry_aggregate_of(const qtok *t);

qnode *qry_node_new(qparser *p, qnode_kind kind, int op, size_t pos);
/* Appends kid (consumed even on failure) and enforces HUB_QUERY_MAX_DEPTH. */
bool qry_add_kid(qparser *p, qnode *n, qnode *kid);

/* An expression without aggregates. NULL on error (p->rc set). */
qnode *qry_parse_expr(qparser *p);
/* A property path at the current identifier, canonicalised for p->source. */
qnode *qry_parse_path(qparser *p);

#endif
