/* Running a query over documents: filtering, projection, TOP, GROUP BY and aggregates. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/alloc.h"
#include "hub/query/query_int.h"

/* The running state of one aggregate within one group. */
typedef struct {
    size_t count;
    json_int_t isum;
    double dsum;
    bool real;    /* the sum left the integers (a real value or an overflow) */
    bool invalid; /* SUM/AVG saw a value that is not a number: the result is undefined */
    json_t *best; /* MIN/MAX so far (owned) */
} qacc;

typedef struct {
    json_t *key; /* one [value] or [] (undefined) per GROUP BY path */
    qacc *accs;  /* one per projection; used by the aggregates */
} qgroup;

struct hub_query_run {
    const hub_query *q;
    json_t *rows;  /* plain queries: the result so far */
    json_t *index; /* aggregate queries: serialized group key -> group number */
    qgroup *groups;
    size_t ngroups, cap;
    bool failed;
    bool too_many; /* a document would have made group HUB_QUERY_MAX_GROUPS + 1 */
};

void hub_query_run_free(hub_query_run *run)
{
    if (!run)
        return;
    for (size_t g = 0; g < run->ngroups; g++) {
        json_decref(run->groups[g].key);
        for (size_t i = 0; i < run->q->nproj; i++)
            json_decref(run->groups[g].accs[i].best);
        xfree(run->groups[g].accs);
    }
    xfree(run->groups);
    json_decref(run->rows);
    json_decref(run->index);
    xfree(run);
}

static qgroup *new_group(hub_query_run *run, json_t *key)
{
    if (run->ngroups == HUB_QUERY_MAX_GROUPS) {
        run->too_many = true;
        return NULL;
    }
    if (run->ngroups == run->cap) {
        size_t cap = run->cap ? run->cap * 2 : 8;
        qgroup *groups = xrealloc(run->groups, cap * sizeof(*groups));
        if (!groups)
            return NULL;
        run->groups = groups;
        run->cap = cap;
    }
    qacc *accs = xcalloc(run->q->nproj, sizeof(*accs));
    if (!accs)
        return NULL;
    qgroup *g = &run->groups[run->ngroups++];
    g->key = json_incref(key);
    g->accs = accs;
    return g;
}

hub_query_run *hub_query_run_new(const hub_query *q)
{
    hub_query_run *run = xcalloc(1, sizeof(*run));
    if (!run)
        return NULL;
    run->q = q;
    if (!q->aggregate) {
        run->rows = json_array();
        if (!run->rows)
            goto fail;
    } else if (q->ngroup > 0) {
        run->index = json_object();
        if (!run->index)
            goto fail;
    } else {
        /* Aggregates without GROUP BY give one row even over no documents (COUNT() = 0). */
        json_t *key = json_array();
        qgroup *g = key ? new_group(run, key) : NULL;
        json_decref(key);
        if (!g)
            goto fail;
    }
    return run;
fail:
    hub_query_run_free(run);
    return NULL;
}

/* A defined value that cannot be copied is an allocation failure, not an undefined value. */
static iotdm_result take_value(qval *v, json_t **out)
{
    bool defined = v->v != NULL;
    *out = qval_take(v);
    return defined && !*out ? -ENOMEM : IOTDM_OK;
}

json_t *hub_query_project(const hub_query *q, const json_t *doc)
{
    json_t *row = q->select_all ? json_deep_copy(doc) : json_object();
    for (size_t i = 0; row && !q->select_all && i < q->nproj; i++) {
        qval v = qry_eval(q->proj[i].expr, doc);
        json_t *val;
        if (take_value(&v, &val) != IOTDM_OK ||
            (val && json_object_set_new(row, q->proj[i].key, val) != 0)) {
            json_decref(row);
            row = NULL;
        }
    }
    return row;
}

static iotdm_result add_row(hub_query_run *run, const json_t *doc)
{
    json_t *row = hub_query_project(run->q, doc);
    return row && json_array_append_new(run->rows, row) == 0 ? IOTDM_OK : -ENOMEM;
}

/* The group key as JSON: 1 and 1.0 must fall into one group, so integral numbers are integers. */
static json_t *group_key(const hub_query *q, const json_t *doc)
{
    json_t *key = json_array();
    for (size_t g = 0; key && g < q->ngroup; g++) {
        qval v = qry_eval(q->group_by[g], doc);
        json_t *val, *slot = json_array();
        if (json_is_real(v.v)) {
            json_t *num = qry_number(json_real_value(v.v));
            qval_drop(&v);
            v.v = v.owned = num;
        }
        if (!slot || take_value(&v, &val) != IOTDM_OK ||
            (val && json_array_append_new(slot, val) != 0) ||
            json_array_append_new(key, slot) != 0) {
            json_decref(key);
            key = NULL;
        }
    }
    return key;
}

static qgroup *find_group(hub_query_run *run, const json_t *doc)
{
    if (run->q->ngroup == 0)
        return &run->groups[0];
    json_t *key = group_key(run->q, doc);
    char *text = key ? json_dumps(key, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    qgroup *g = NULL;
    if (text) {
        json_t *ix = json_object_get(run->index, text);
        if (ix) {
            g = &run->groups[json_integer_value(ix)];
        } else if (json_object_set_new(run->index, text, json_integer((json_int_t)run->ngroups)) ==
                   0) {
            g = new_group(run, key);
            if (!g)
                json_object_del(run->index, text);
        }
    }
    if (text) {
        json_free_t free_fn;
        json_get_alloc_funcs(NULL, &free_fn); /* json_dumps allocates with jansson's allocator */
        free_fn(text);
    }
    json_decref(key);
    return g;
}

/* Orders values for MIN and MAX: null < booleans < numbers < strings. */
static int type_rank(const json_t *v)
{
    return json_is_null(v) ? 0 : json_is_boolean(v) ? 1 : json_is_number(v) ? 2 : 3;
}

static bool less_than(const json_t *a, const json_t *b)
{
    int ra = type_rank(a), rb = type_rank(b);
    if (ra != rb)
        return ra < rb;
    if (ra == 1)
        return !json_is_true(a) && json_is_true(b);
    if (ra == 2)
        return json_is_integer(a) && json_is_integer(b)
                   ? json_integer_value(a) < json_integer_value(b)
                   : json_number_value(a) < json_number_value(b);
    if (ra == 3) {
        size_t la = json_string_length(a), lb = json_string_length(b);
        int c = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
        return c < 0 || (c == 0 && la < lb);
    }
    return false;
}

static void add_to_sum(qacc *acc, const json_t *v)
{
    json_int_t r;
    if (!json_is_number(v)) {
        acc->invalid = true; /* as in Cosmos DB: a non-number makes SUM and AVG undefined */
        return;
    }
    acc->count++;
    if (!acc->real && json_is_integer(v) &&
        !__builtin_add_overflow(acc->isum, json_integer_value(v), &r)) {
        acc->isum = r;
        return;
    }
    if (!acc->real)
        acc->dsum = (double)acc->isum;
    acc->real = true;
    acc->dsum += json_number_value(v);
}

static iotdm_result accumulate(qacc *acc, const qnode *agg, const json_t *doc)
{
    if (agg->nkids == 0) {
        acc->count++; /* COUNT() */
        return IOTDM_OK;
    }
    qval v = qry_eval(agg->kids[0], doc);
    iotdm_result rc = IOTDM_OK;
    if (!v.v) {
        /* undefined values are left out of every aggregate */
    } else if (agg->op == QA_COUNT) {
        acc->count++;
    } else if (agg->op == QA_SUM || agg->op == QA_AVG) {
        add_to_sum(acc, v.v);
    } else if (!json_is_object(v.v) && !json_is_array(v.v)) {
        bool better = !acc->best ||
                      (agg->op == QA_MIN ? less_than(v.v, acc->best) : less_than(acc->best, v.v));
        json_t *copy = NULL;
        if (better && (rc = take_value(&v, &copy)) == IOTDM_OK) {
            json_decref(acc->best);
            acc->best = copy;
        }
    }
    qval_drop(&v);
    return rc;
}

static iotdm_result add_to_group(hub_query_run *run, const json_t *doc)
{
    qgroup *g = find_group(run, doc);
    if (!g)
        return run->too_many ? IOTDM_E_TOO_LARGE : -ENOMEM;
    for (size_t i = 0; i < run->q->nproj; i++) {
        const qnode *e = run->q->proj[i].expr;
        if (e->kind == QN_AGG && accumulate(&g->accs[i], e, doc) != IOTDM_OK)
            return -ENOMEM;
    }
    return IOTDM_OK;
}

iotdm_result hub_query_run_add(hub_query_run *run, const json_t *doc)
{
    if (!run || !doc)
        return -EINVAL;
    if (run->failed)
        return run->too_many ? IOTDM_E_TOO_LARGE : -ENOMEM;
    const hub_query *q = run->q;
    /* Plain rows past TOP are never returned: skip the work. */
    if (!q->aggregate && json_array_size(run->rows) >= q->top)
        return IOTDM_OK;
    if (!hub_query_matches(q, doc))
        return IOTDM_OK;
    iotdm_result rc = q->aggregate ? add_to_group(run, doc) : add_row(run, doc);
    if (rc != IOTDM_OK)
        run->failed = true;
    return rc;
}

/* The value of one aggregate; NULL when undefined (the member is then left out of the row). */
static json_t *aggregate_value(const qacc *acc, qagg agg, bool *oom)
{
    json_t *v = NULL;
    bool defined = true;
    switch (agg) {
    case QA_COUNT:
        v = json_integer((json_int_t)acc->count);
        break;
    case QA_SUM:
        defined = !acc->invalid;
        v = !defined ? NULL : acc->real ? qry_number(acc->dsum) : json_integer(acc->isum);
        break;
    case QA_AVG:
        defined = !acc->invalid && acc->count > 0;
        v = defined ? qry_number((acc->real ? acc->dsum : (double)acc->isum) / (double)acc->count)
                    : NULL;
        break;
    case QA_MIN:
    case QA_MAX:
        defined = acc->best != NULL;
        v = json_incref(acc->best);
        break;
    }
    /* A sum of finite reals can overflow to infinity: undefined, not out of memory. */
    if (defined && !v && !(acc->real && (agg == QA_SUM || agg == QA_AVG)))
        *oom = true;
    return v;
}

static bool group_projected(const hub_query *q, size_t g)
{
    for (size_t i = 0; i < q->nproj; i++)
        if (q->proj[i].group_ix == (int)g)
            return true;
    return false;
}

static json_t *group_row(const hub_query *q, const qgroup *g)
{
    json_t *row = json_object();
    bool oom = !row;
    for (size_t i = 0; !oom && i < q->nproj; i++) {
        const qproj *pr = &q->proj[i];
        json_t *v =
            pr->expr->kind == QN_AGG
                ? aggregate_value(&g->accs[i], (qagg)pr->expr->op, &oom)
                : json_incref(json_array_get(json_array_get(g->key, (size_t)pr->group_ix), 0));
        oom = oom || (v && json_object_set_new(row, pr->key, v) != 0);
    }
    for (size_t k = 0; !oom && k < q->ngroup; k++) {
        json_t *v = json_array_get(json_array_get(g->key, k), 0);
        if (v && !group_projected(q, k))
            oom = json_object_set(row, q->group_keys[k], v) != 0;
    }
    if (oom) {
        json_decref(row);
        return NULL;
    }
    return row;
}

json_t *hub_query_run_finish(hub_query_run *run)
{
    if (!run)
        return NULL;
    json_t *out = NULL;
    if (run->failed) {
        /* the caller learnt of the failure from hub_query_run_add */
    } else if (!run->q->aggregate) {
        out = json_incref(run->rows);
    } else {
        out = json_array();
        for (size_t g = 0; out && g < run->ngroups && g < run->q->top; g++) {
            json_t *row = group_row(run->q, &run->groups[g]);
            if (!row || json_array_append_new(out, row) != 0) {
                json_decref(out);
                out = NULL;
            }
        }
    }
    hub_query_run_free(run);
    return out;
}
