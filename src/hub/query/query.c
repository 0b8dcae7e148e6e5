/* Statement level of the hub query language: SELECT, FROM, WHERE, GROUP BY, paths, validation. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/alloc.h"
#include "hub/query/query_parse.h"

/* Top-level members of device and module twins: Azure matches them case-insensitively and
 * answers with this spelling. */
/* clang-format off */
static const char *const twin_members[] = {
    "deviceId", "moduleId", "etag", "deviceEtag", "status", "statusReason", "statusUpdateTime",
    "connectionState", "connectionStateUpdatedTime", "lastActivityTime",
    "cloudToDeviceMessageCount", "authenticationType", "x509Thumbprint", "modelId", "version",
    "capabilities", "deviceScope", "parentScopes", "managedBy", "generationId", "tags",
    "properties", NULL,
};

static const char *const job_members[] = {
    "deviceId", "moduleId", "jobId", "jobType", "status", "startTimeUtc", "endTimeUtc",
    "createdDateTimeUtc", "lastUpdatedDateTimeUtc", "outcome", "error", NULL,
};
/* clang-format on */

static bool add_seg(qparser *p, qnode *n, const char *name, size_t len, size_t index)
{
    qseg *segs = xrealloc(n->segs, (n->nsegs + 1) * sizeof(*segs));
    if (!segs) {
        qry_oom(p);
        return false;
    }
    n->segs = segs;
    qseg *s = &segs[n->nsegs];
    memset(s, 0, sizeof(*s));
    if (name) {
        s->name = xstrndup(name, len);
        if (!s->name) {
            qry_oom(p);
            return false;
        }
        s->len = len;
    } else {
        s->is_index = true;
        s->index = index;
    }
    n->nsegs++;
    return true;
}

/* tags['a b'] names a member that is not an identifier; tags.list[0] an array element. */
static bool parse_bracket(qparser *p, qnode *n)
{
    const qtok *t = qry_next(p);
    if (t->kind == QT_STRING) {
        const char *s = json_string_value(t->value);
        size_t len = json_string_length(t->value);
        if (memchr(s, '\0', len)) {
            qry_fail(p, t->pos, "property name contains a NUL character");
            return false;
        }
        if (!add_seg(p, n, s, len, 0))
            return false;
    } else if (t->kind == QT_NUMBER && json_is_integer(t->value) &&
               json_integer_value(t->value) >= 0) {
        if (!add_seg(p, n, NULL, 0, (size_t)json_integer_value(t->value)))
            return false;
    } else {
        qry_fail(p, t->pos, "expected a quoted property name or an array index");
        return false;
    }
    return qry_expect(p, QT_RBRACKET, "']'");
}

qnode *qry_parse_path(qparser *p)
{
    const qtok *t = qry_next(p);
    qnode *n = qry_node_new(p, QN_PATH, 0, t->pos);
    bool ok = n && add_seg(p, n, t->text, t->len, 0);
    while (ok) {
        if (qry_accept(p, QT_DOT)) {
            t = qry_next(p);
            if (t->kind != QT_IDENT) {
                qry_fail(p, t->pos, "expected a property name");
                ok = false;
            } else {
                ok = add_seg(p, n, t->text, t->len, 0);
            }
        } else if (qry_accept(p, QT_LBRACKET)) {
            ok = parse_bracket(p, n);
        } else {
            break;
        }
    }
    if (!ok) {
        qry_node_free(n);
        return NULL;
    }
    return n;
}

static bool seg_is(const qnode *n, size_t i, const char *name)
{
    return i < n->nsegs && !n->segs[i].is_index && strcasecmp(n->segs[i].name, name) == 0;
}

/* Rewrites a member to its canonical spelling; same length, so in place. */
static void canonical_case(qseg *s, const char *const *names)
{
    for (size_t i = 0; !s->is_index && names[i]; i++) {
        if (strcasecmp(s->name, names[i]) == 0) {
            memcpy(s->name, names[i], s->len);
            return;
        }
    }
}

static void canonicalize_path(hub_query_source source, qnode *n)
{
    /* devices.jobs.status is how Azure spells a job's status; the document is the job itself. */
    const char *coll = source == HUB_QUERY_FROM_JOBS ? "jobs" : "modules";
    if (source != HUB_QUERY_FROM_DEVICES && n->nsegs > 2 && seg_is(n, 0, "devices") &&
        seg_is(n, 1, coll)) {
        xfree(n->segs[0].name);
        xfree(n->segs[1].name);
        memmove(n->segs, n->segs + 2, (n->nsegs - 2) * sizeof(*n->segs));
        n->nsegs -= 2;
    }
    canonical_case(&n->segs[0], source == HUB_QUERY_FROM_JOBS ? job_members : twin_members);
    if (source != HUB_QUERY_FROM_JOBS && seg_is(n, 0, "properties") && n->nsegs > 1) {
        static const char *const sections[] = {"desired", "reported", NULL};
        canonical_case(&n->segs[1], sections);
    }
}

/* Recursion is bounded: trees are at most HUB_QUERY_MAX_DEPTH deep. */
static void canonicalize_tree(hub_query_source source, qnode *n)
{
    if (!n)
        return;
    if (n->kind == QN_PATH)
        canonicalize_path(source, n);
    for (size_t i = 0; i < n->nkids; i++)
        canonicalize_tree(source, n->kids[i]);
}

static qnode *parse_aggregate(qparser *p)
{
    const qtok *name = qry_next(p);
    qry_next(p); /* ( */
    int agg = qry_aggregate_of(name);
    qnode *n = qry_node_new(p, QN_AGG, agg, name->pos);
    if (!n)
        return NULL;
    const qtok *t = qry_peek(p);
    bool star = t->kind == QT_STAR && p->t->v[p->i + 1].kind == QT_RPAREN;
    if (agg == QA_COUNT && star)
        qry_next(p); /* COUNT(*) is COUNT() */
    else if ((agg != QA_COUNT || t->kind != QT_RPAREN) && !qry_add_kid(p, n, qry_parse_expr(p)))
        goto fail;
    if (qry_expect(p, QT_RPAREN, "')'"))
        return n;
fail:
    qry_node_free(n);
    return NULL;
}

/* The member name of an unaliased projection: the path's last name, the aggregate's name, or
 * "$n" for the nth other expression. */
static char *default_key(const qnode *e, unsigned *unnamed)
{
    static const char *const agg_keys[] = {"count", "sum", "avg", "min", "max"};
    char buf[32];
    if (e->kind == QN_AGG)
        return xstrdup(agg_keys[e->op]);
    for (size_t i = e->kind == QN_PATH ? e->nsegs : 0; i > 0; i--)
        if (!e->segs[i - 1].is_index)
            return xstrdup(e->segs[i - 1].name);
    snprintf(buf, sizeof(buf), "$%u", ++*unnamed);
    return xstrdup(buf);
}

static bool parse_projection(qparser *p, hub_query *q)
{
    const qtok *t = qry_peek(p);
    qnode *e = qry_aggregate_of(t) >= 0 && p->t->v[p->i + 1].kind == QT_LPAREN ? parse_aggregate(p)
                                                                               : qry_parse_expr(p);
    if (!e)
        return false;
    qproj *proj = xrealloc(q->proj, (q->nproj + 1) * sizeof(*proj));
    if (!proj) {
        qry_node_free(e);
        qry_oom(p);
        return false;
    }
    q->proj = proj;
    qproj *pr = &q->proj[q->nproj++];
    pr->expr = e;
    pr->group_ix = -1;
    pr->key = NULL; /* without AS, named once paths are canonical */
    if (!qry_accept_kw(p, "AS"))
        return true;
    t = qry_next(p);
    if (t->kind != QT_IDENT || qry_is_reserved(t)) {
        qry_fail(p, t->pos, "expected an alias");
        return false;
    }
    pr->key = xstrndup(t->text, t->len);
    if (!pr->key)
        qry_oom(p);
    return pr->key != NULL;
}

static bool parse_select(qparser *p, hub_query *q)
{
    if (!qry_accept_kw(p, "SELECT")) {
        qry_fail(p, qry_peek(p)->pos, "expected SELECT");
        return false;
    }
    if (qry_accept_kw(p, "TOP")) {
        const qtok *t = qry_next(p);
        if (t->kind != QT_NUMBER || !json_is_integer(t->value) ||
            json_integer_value(t->value) < 0) {
            qry_fail(p, t->pos, "expected a non-negative integer after TOP");
            return false;
        }
        q->top = (size_t)json_integer_value(t->value);
    }
    if (qry_accept(p, QT_STAR)) {
        q->select_all = true;
        return true;
    }
    do {
        if (!parse_projection(p, q))
            return false;
    } while (qry_accept(p, QT_COMMA));
    return true;
}

static bool parse_from(qparser *p, hub_query *q)
{
    if (!qry_accept_kw(p, "FROM")) {
        qry_fail(p, qry_peek(p)->pos, "expected FROM");
        return false;
    }
    const qtok *t = qry_next(p);
    if (!qry_is_kw(t, "devices")) {
        qry_fail(p, t->pos, "expected devices, devices.modules or devices.jobs");
        return false;
    }
    q->source = HUB_QUERY_FROM_DEVICES;
    if (qry_accept(p, QT_DOT)) {
        t = qry_next(p);
        if (qry_is_kw(t, "modules")) {
            q->source = HUB_QUERY_FROM_MODULES;
        } else if (qry_is_kw(t, "jobs")) {
            q->source = HUB_QUERY_FROM_JOBS;
        } else {
            qry_fail(p, t->pos, "expected modules or jobs");
            return false;
        }
    }
    p->source = q->source;
    return true;
}

static bool parse_group_by(qparser *p, hub_query *q)
{
    if (!qry_accept_kw(p, "BY")) {
        qry_fail(p, qry_peek(p)->pos, "expected BY");
        return false;
    }
    do {
        const qtok *t = qry_peek(p);
        if (t->kind != QT_IDENT || qry_is_reserved(t)) {
            qry_fail(p, t->pos, "expected a property path");
            return false;
        }
        qnode *n = qry_parse_path(p);
        if (!n)
            return false;
        qnode **g = xrealloc(q->group_by, (q->ngroup + 1) * sizeof(*g));
        if (!g) {
            qry_node_free(n);
            qry_oom(p);
            return false;
        }
        q->group_by = g;
        q->group_by[q->ngroup++] = n;
    } while (qry_accept(p, QT_COMMA));
    return true;
}

static bool same_path(const qnode *a, const qnode *b)
{
    if (a->kind != QN_PATH || b->kind != QN_PATH || a->nsegs != b->nsegs)
        return false;
    for (size_t i = 0; i < a->nsegs; i++) {
        const qseg *x = &a->segs[i], *y = &b->segs[i];
        if (x->is_index != y->is_index ||
            (x->is_index ? x->index != y->index : strcmp(x->name, y->name) != 0))
            return false;
    }
    return true;
}

/* Ties each plain projection of an aggregate query to its GROUP BY path and names the groups. */
static bool bind_groups(qparser *p, hub_query *q)
{
    unsigned unnamed = 0;
    q->group_keys = xcalloc(q->ngroup, sizeof(*q->group_keys));
    if (!q->group_keys) {
        qry_oom(p);
        return false;
    }
    for (size_t i = 0; i < q->nproj; i++) {
        qproj *pr = &q->proj[i];
        for (size_t g = 0; pr->expr->kind != QN_AGG && g < q->ngroup && pr->group_ix < 0; g++)
            if (same_path(pr->expr, q->group_by[g]))
                pr->group_ix = (int)g;
        if (pr->expr->kind != QN_AGG && pr->group_ix < 0) {
            qry_fail(p, pr->expr->pos, "'%s' is neither an aggregate nor in GROUP BY", pr->key);
            return false;
        }
        if (pr->group_ix >= 0 && !q->group_keys[pr->group_ix])
            q->group_keys[pr->group_ix] = xstrdup(pr->key);
    }
    for (size_t g = 0; g < q->ngroup; g++) {
        if (!q->group_keys[g])
            q->group_keys[g] = default_key(q->group_by[g], &unnamed);
        if (!q->group_keys[g]) {
            qry_oom(p);
            return false;
        }
    }
    return true;
}

static bool validate(qparser *p, hub_query *q, size_t select_pos)
{
    for (size_t i = 0; i < q->nproj; i++)
        q->aggregate = q->aggregate || q->proj[i].expr->kind == QN_AGG;
    q->aggregate = q->aggregate || q->ngroup > 0;
    if (q->source == HUB_QUERY_FROM_JOBS && (!q->select_all || q->ngroup > 0)) {
        qry_fail(p, select_pos, "FROM devices.jobs supports only SELECT *");
        return false;
    }
    if (q->select_all && q->ngroup > 0) {
        qry_fail(p, q->group_by[0]->pos, "GROUP BY cannot be used with SELECT *");
        return false;
    }
    for (size_t i = 0; i < q->nproj; i++)
        canonicalize_tree(q->source, q->proj[i].expr);
    canonicalize_tree(q->source, q->where);
    for (size_t g = 0; g < q->ngroup; g++)
        canonicalize_tree(q->source, q->group_by[g]);
    unsigned unnamed = 0;
    for (size_t i = 0; i < q->nproj; i++) {
        if (!q->proj[i].key && !(q->proj[i].key = default_key(q->proj[i].expr, &unnamed))) {
            qry_oom(p);
            return false;
        }
    }
    return !q->aggregate || bind_groups(p, q);
}

static bool parse_statement(qparser *p, hub_query *q)
{
    size_t select_pos = qry_peek(p)->pos;
    if (!parse_select(p, q) || !parse_from(p, q))
        return false;
    if (qry_accept_kw(p, "WHERE") && !(q->where = qry_parse_expr(p)))
        return false;
    if (qry_accept_kw(p, "GROUP") && !parse_group_by(p, q))
        return false;
    if (qry_peek(p)->kind != QT_EOF) {
        qry_fail(p, qry_peek(p)->pos, "expected %s",
                 q->ngroup  ? "',' or the end of the query"
                 : q->where ? "GROUP BY or the end of the query"
                            : "WHERE, GROUP BY or the end of the query");
        return false;
    }
    return validate(p, q, select_pos);
}

static bool parse_condition(qparser *p, hub_query *q)
{
    q->select_all = true;
    q->source = HUB_QUERY_FROM_DEVICES;
    if (qry_peek(p)->kind == QT_STAR && p->t->v[p->i + 1].kind == QT_EOF)
        return true; /* "*": every device */
    if (!(q->where = qry_parse_expr(p)))
        return false;
    if (qry_peek(p)->kind != QT_EOF) {
        qry_fail(p, qry_peek(p)->pos, "expected the end of the condition");
        return false;
    }
    canonicalize_tree(q->source, q->where);
    return true;
}

/* Azure counts characters, not bytes: skip UTF-8 continuation bytes. */
static size_t count_chars(const char *text, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)text[i] & 0xC0) != 0x80;
    return n;
}

static iotdm_result parse_with(bool (*parse)(qparser *, hub_query *), const char *text, size_t len,
                               hub_query **out_query, char *err, size_t err_cap)
{
    if (err && err_cap)
        err[0] = '\0';
    if (!out_query || (!text && len))
        return -EINVAL;
    *out_query = NULL;
    if (len > 4 * (size_t)HUB_QUERY_MAX_LEN || count_chars(text, len) > HUB_QUERY_MAX_LEN) {
        qry_set_err(err, err_cap, "query longer than %d characters", HUB_QUERY_MAX_LEN);
        return IOTDM_E_TOO_LARGE;
    }
    qtoks toks;
    iotdm_result rc = qry_lex(text ? text : "", len, &toks, err, err_cap);
    if (rc != IOTDM_OK)
        return rc;
    hub_query *q = xcalloc(1, sizeof(*q));
    qparser p = {.t = &toks, .err = err, .err_cap = err_cap};
    if (!q)
        qry_oom(&p);
    else
        q->top = SIZE_MAX;
    if (q && !parse(&p, q) && p.rc == IOTDM_OK)
        qry_oom(&p); /* every other failure has set p.rc */
    qry_toks_free(&toks);
    if (p.rc != IOTDM_OK) {
        hub_query_free(q);
        return p.rc;
    }
    *out_query = q;
    return IOTDM_OK;
}

iotdm_result hub_query_parse(const char *text, size_t len, hub_query **out_query, char *err,
                             size_t err_cap)
{
    return parse_with(parse_statement, text, len, out_query, err, err_cap);
}

iotdm_result hub_query_parse_condition(const char *text, size_t len, hub_query **out_query,
                                       char *err, size_t err_cap)
{
    return parse_with(parse_condition, text, len, out_query, err, err_cap);
}

void hub_query_free(hub_query *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->nproj; i++) {
        qry_node_free(q->proj[i].expr);
        xfree(q->proj[i].key);
    }
    xfree(q->proj);
    qry_node_free(q->where);
    for (size_t g = 0; g < q->ngroup; g++) {
        qry_node_free(q->group_by[g]);
        if (q->group_keys)
            xfree(q->group_keys[g]);
    }
    xfree(q->group_by);
    xfree(q->group_keys);
    xfree(q);
}

hub_query_source hub_query_source_of(const hub_query *q)
{
    return q->source;
}

const char *hub_query_item_type(const hub_query *q)
{
    if (q->source == HUB_QUERY_FROM_JOBS)
        return "deviceJob";
    return q->select_all ? "twin" : "raw";
}
