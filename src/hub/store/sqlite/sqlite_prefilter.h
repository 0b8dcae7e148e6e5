/* SQLite store: a query's WHERE clause compiled into the statement that lists its candidates
 * (sqlite_prefilter.c says what compiles and why the result is always a superset). */
#ifndef IOTDM_HUB_STORE_SQLITE_PREFILTER_H
#define IOTDM_HUB_STORE_SQLITE_PREFILTER_H

#include "hub/query/query_int.h"
#include "hub/store/sqlite/sqlite_internal.h"

typedef struct store_prefilter store_prefilter;

typedef enum {
    STORE_PF_ALL,  /* nothing compiled: every twin is a candidate */
    STORE_PF_NONE, /* the clause holds for no twin */
    STORE_PF_SQL,  /* the candidates are what store_prefilter_sql lists */
} store_pf_kind;

/* Two statements come of one clause, which find the same candidates in two ways:
 * - LIST: "SELECT device_id ... ORDER BY device_id": SQLite lists the candidates from the index of
 *   the clause's most selective side (the others are probed on each), collecting and sorting
 *   their ids first where it must. Cheap when they are few.
 * - PROBE: "SELECT device_id, <candidate?> ... LIMIT STORE_PF_PROBE_BATCH": the devices in id
 * order, each with whether it is a candidate (its index rows probed by key). Streams: cheap when
 *   candidates are many, since a page stops after a few of them. */
typedef enum { STORE_PF_LIST, STORE_PF_PROBE } store_pf_form;

/* Compiles q's WHERE clause. With STORE_PF_SQL, *out owns a statement of the given form, from
 * after ?1 (bind it, and the PROBE form's ?2, then store_prefilter_bind for the rest). -ENOMEM, or
 * IOTDM_OK. The statement borrows q's literals: q must outlive it. */
iotdm_result store_prefilter_new(const hub_query *q, store_pf_form form, store_prefilter **out,
                                 store_pf_kind *kind);
const char *store_prefilter_sql(const store_prefilter *p);
void store_prefilter_bind(const store_prefilter *p, sqlite3_stmt *st);
void store_prefilter_free(store_prefilter *p);

/* ---- between sqlite_prefilter.c (clauses) and sqlite_prefilter_leaf.c (leaves) ---- */

#define PF_SQL_MAX    16384
#define PF_MAX_PARAMS 400 /* SQLite allows 32766 */
#define PF_MAX_OWNED  64  /* constants computed while compiling (negated numbers, ...) */
#define PF_SCRATCH    2048

struct store_prefilter {
    char sql[PF_SQL_MAX];
    size_t len;
    store_ix_value params[PF_MAX_PARAMS];
    int nparams;
    int base; /* the number of params[0]: the parameters before it are the caller's */
    json_t *owned[PF_MAX_OWNED];
    size_t nowned;
    char scratch[PF_SCRATCH];
    size_t used;
};

typedef enum { PF_ALL, PF_NONE, PF_SQL } pf_result;

typedef enum {
    COL_NONE,
    COL_DEVICE_ID,
    COL_MODEL_ID,
    COL_STATUS,
    COL_CONNECTION,
    COL_ACTIVITY,
    COL_INDEX,
} pf_column;

/* A leaf of the clause: path <op> constant(s), normalised with the path on the left. */
typedef struct {
    const qnode *node;
    const qnode *path;
    qnode_kind kind;   /* QN_CMP, QN_IN or QN_CALL */
    int op;            /* qcmp_op, or the qfunc */
    const json_t *lit; /* QN_CMP: the constant (NULL: undefined); STARTSWITH: the prefix */
    const qnode *list; /* QN_IN: the QN_ARRAY */
    pf_column column;
    int section; /* COL_INDEX */
    sqlite3_int64 path_id;
} pf_leaf;

/* Appends text; false (and nothing appended) when the statement would grow past its cap. */
bool pf_put(store_prefilter *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends the placeholder of a new parameter. */
bool pf_put_param(store_prefilter *p, const store_ix_value *v);
store_ix_value pf_int_value(sqlite3_int64 i);
/* A device column's string, compared whole. */
store_ix_value pf_text_value(const char *text, size_t len);
/* The smallest string above every string starting with prefix, in p's scratch space; false when
 * there is none (the prefix is all 0xFF bytes, or empty) or no room. */
bool pf_successor(store_prefilter *p, const char *prefix, size_t len, store_ix_value *out);
/* The value of a subtree without paths (NULL when undefined); false when it has paths or the
 * value cannot be kept. Computed values live as long as p. */
bool pf_constant(store_prefilter *p, const qnode *n, const json_t **out);
/* Appends the condition of one leaf (sqlite_prefilter_leaf.c). drive: the leaf may list the
 * candidates (an IN list SQLite walks); otherwise it tests each candidate SQLite walks. PF_SQL
 * when it appended a condition; otherwise the caller drops whatever it appended. */
pf_result pf_leaf_sql(store_prefilter *p, const pf_leaf *l, bool drive);

#endif
