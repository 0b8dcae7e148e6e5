/* Query pages over the store: the store lists candidate twins in device-id order (narrowed by its
 * indexes, hub_store_query_page), each is evaluated exactly here, and a page stops as soon as it is
 * full. The continuation carries where the next page starts (keyset paging: the last device id
 * looked at) and how many rows earlier pages returned (for TOP). */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "common/base64.h"
#include "hub/query/query_int.h"
#include "hub/store/store.h"
#include "hub/twin_ops.h"

/* ---- continuation tokens ----
 * base64 of: check (CHECK_LEN bytes) | version | rows returned so far (8 bytes, big-endian) | the
 * device id to start after. check is a SHA-256 over the query's fingerprint and the rest, so a
 * token altered, truncated or made for another query is refused. It is not a secret: a client that
 * forges one only starts its own query elsewhere, which a WHERE clause lets it do anyway. */
#define CHECK_LEN     12
#define TOKEN_VERSION 1
#define TOKEN_HEAD    (CHECK_LEN + 1 + 8)
/* Where a page starts after: a device id, or for devices.jobs "<job id>\n<device id>". */
#define CURSOR_MAX (2 * HUB_ID_MAX)

typedef struct {
    uint64_t returned;
    char after[CURSOR_MAX];
} page_cursor;

typedef struct {
    EVP_MD_CTX *ctx;
} digest;

static void put_u64(unsigned char *b, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (unsigned char)(v & 0xff);
}

static void feed(digest *d, const void *p, size_t n)
{
    EVP_DigestUpdate(d->ctx, p, n);
}

static void feed_u64(digest *d, uint64_t v)
{
    unsigned char b[8];
    put_u64(b, v);
    feed(d, b, sizeof b);
}

static void feed_lit(digest *d, const json_t *v)
{
    feed_u64(d, v ? (uint64_t)json_typeof(v) : UINT64_MAX);
    if (json_is_string(v)) {
        feed_u64(d, json_string_length(v));
        feed(d, json_string_value(v), json_string_length(v));
    } else if (json_is_integer(v)) {
        feed_u64(d, (uint64_t)json_integer_value(v));
    } else if (json_is_real(v)) {
        double x = json_real_value(v);
        feed(d, &x, sizeof x);
    }
}

/* Recursion is bounded: trees are at most HUB_QUERY_MAX_DEPTH deep. */
static void feed_node(digest *d, const qnode *n)
{
    if (!n) {
        feed_u64(d, UINT64_MAX);
        return;
    }
    feed_u64(d, (uint64_t)n->kind << 32 | (uint32_t)n->op);
    if (n->kind == QN_LIT)
        feed_lit(d, n->lit);
    feed_u64(d, n->nsegs);
    for (size_t i = 0; i < n->nsegs; i++) {
        const qseg *s = &n->segs[i];
        feed_u64(d, s->is_index ? s->index : s->len);
        feed(d, s->is_index ? "" : s->name, s->is_index ? 1 : s->len);
    }
    feed_u64(d, n->nkids);
    for (size_t i = 0; i < n->nkids; i++)
        feed_node(d, n->kids[i]);
}

/* What a token is bound to: the parsed query (two spellings of one query share it). */
static void feed_query(digest *d, const hub_query *q)
{
    feed_u64(d, (uint64_t)q->source << 16 | (uint64_t)q->select_all << 8 | q->aggregate);
    feed_u64(d, q->top);
    feed_u64(d, q->nproj);
    for (size_t i = 0; i < q->nproj; i++) {
        feed_node(d, q->proj[i].expr);
        feed(d, q->proj[i].key, strlen(q->proj[i].key) + 1);
    }
    feed_node(d, q->where);
    feed_u64(d, q->ngroup);
    for (size_t g = 0; g < q->ngroup; g++)
        feed_node(d, q->group_by[g]);
}

/* check = SHA-256(query, body) cut to CHECK_LEN bytes. */
static bool token_check(const hub_query *q, const unsigned char *body, size_t len,
                        unsigned char out[CHECK_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    digest d = {EVP_MD_CTX_new()};
    bool ok = d.ctx && EVP_DigestInit_ex(d.ctx, EVP_sha256(), NULL) == 1;
    if (ok) {
        feed_query(&d, q);
        feed(&d, body, len);
        ok = EVP_DigestFinal_ex(d.ctx, md, &md_len) == 1 && md_len >= CHECK_LEN;
    }
    EVP_MD_CTX_free(d.ctx);
    if (ok)
        memcpy(out, md, CHECK_LEN);
    return ok;
}

static iotdm_result token_encode(const hub_query *q, const page_cursor *c,
                                 char out[HUB_QUERY_CONTINUATION_MAX])
{
    unsigned char raw[TOKEN_HEAD + CURSOR_MAX];
    size_t id_len = strlen(c->after);
    raw[CHECK_LEN] = TOKEN_VERSION;
    put_u64(raw + CHECK_LEN + 1, c->returned);
    memcpy(raw + TOKEN_HEAD, c->after, id_len);
    if (!token_check(q, raw + CHECK_LEN, TOKEN_HEAD - CHECK_LEN + id_len, raw))
        return -ENOMEM;
    long n = base64_encode(raw, TOKEN_HEAD + id_len, out, HUB_QUERY_CONTINUATION_MAX);
    return n < 0 ? (iotdm_result)n : IOTDM_OK;
}

static iotdm_result token_decode(const hub_query *q, const char *text, page_cursor *out)
{
    unsigned char raw[TOKEN_HEAD + CURSOR_MAX], check[CHECK_LEN];
    long n = base64_decode(text, strlen(text), raw, sizeof raw);
    if (n <= TOKEN_HEAD || n >= TOKEN_HEAD + CURSOR_MAX || raw[CHECK_LEN] != TOKEN_VERSION)
        return IOTDM_E_MALFORMED;
    size_t id_len = (size_t)n - TOKEN_HEAD;
    if (!token_check(q, raw + CHECK_LEN, (size_t)n - CHECK_LEN, check))
        return -ENOMEM;
    if (memcmp(check, raw, CHECK_LEN) != 0 || memchr(raw + TOKEN_HEAD, '\0', id_len))
        return IOTDM_E_MALFORMED;
    out->returned = 0;
    for (int i = 0; i < 8; i++)
        out->returned = out->returned << 8 | raw[CHECK_LEN + 1 + i];
    memcpy(out->after, raw + TOKEN_HEAD, id_len);
    out->after[id_len] = '\0';
    return IOTDM_OK;
}

/* ---- pages ---- */

typedef struct {
    const hub_query *q;
    json_t *items;
    size_t want;           /* rows this page may hold */
    bool look_ahead;       /* rows may follow it: find out whether one does before saying so */
    bool more;             /* one does */
    char last[CURSOR_MAX]; /* the last document looked at that the next page need not see again */
    iotdm_result result;
} page_fill;

/* Evaluates one candidate; false stops the store's walk. */
static bool fill(void *ctx, const hub_device *d, const hub_twin *t)
{
    page_fill *f = ctx;
    json_t *doc = hub_twin_service_view(d, t);
    if (!doc) {
        f->result = -ENOMEM;
        return false;
    }
    bool full = json_array_size(f->items) == f->want;
    if (hub_query_matches(f->q, doc)) {
        if (full) {
            f->more = true;
            json_decref(doc);
            return false;
        }
        /* SELECT *: the view is the row, no copy needed. */
        json_t *row = f->q->select_all ? json_incref(doc) : hub_query_project(f->q, doc);
        if (!row || json_array_append_new(f->items, row) != 0)
            f->result = -ENOMEM;
    }
    json_decref(doc);
    snprintf(f->last, sizeof f->last, "%s", d->device_id);
    return f->result == IOTDM_OK && (f->look_ahead || json_array_size(f->items) < f->want);
}

/* devices.jobs: the device records of every job, in (job id, device id) order, each evaluated
 * here. The served record leaves out the hub's own members. */
static bool fill_device_job(void *ctx, const char *scope, const char *id, const json_t *doc,
                            uint64_t etag)
{
    (void)etag;
    page_fill *f = ctx;
    json_t *view = json_deep_copy(doc);
    if (!view) {
        f->result = -ENOMEM;
        return false;
    }
    json_object_del(view, "$iotdm");
    bool full = json_array_size(f->items) == f->want;
    if (hub_query_matches(f->q, view)) {
        if (full) {
            f->more = true;
            json_decref(view);
            return false;
        }
        if (json_array_append(f->items, view) != 0)
            f->result = -ENOMEM;
    }
    json_decref(view);
    snprintf(f->last, sizeof f->last, "%s\n%s", scope, id);
    return f->result == IOTDM_OK && (f->look_ahead || json_array_size(f->items) < f->want);
}

static iotdm_result device_jobs_page(hub_store *store, const char *after, page_fill *f)
{
    enum { BATCH = 500 };
    char scope[CURSOR_MAX] = "", id[CURSOR_MAX] = "";
    const char *nl = strchr(after, '\n');
    if (nl) {
        snprintf(scope, sizeof scope, "%.*s", (int)(nl - after), after);
        snprintf(id, sizeof id, "%s", nl + 1);
    }
    for (;;) {
        char last_before[CURSOR_MAX];
        snprintf(last_before, sizeof last_before, "%s", f->last);
        iotdm_result r =
            hub_store_doc_foreach(store, HUB_DOC_DEVICE_JOB, NULL, scope[0] ? scope : NULL,
                                  scope[0] ? id : NULL, BATCH, fill_device_job, f);
        if (r != IOTDM_OK || f->result != IOTDM_OK || f->more)
            return r;
        bool stopped = json_array_size(f->items) == f->want && !f->look_ahead;
        if (stopped || strcmp(last_before, f->last) == 0)
            return IOTDM_OK; /* the page is full, or the walk reached the end */
        nl = strchr(f->last, '\n');
        snprintf(scope, sizeof scope, "%.*s", (int)(nl - f->last), f->last);
        snprintf(id, sizeof id, "%s", nl + 1);
    }
}

static iotdm_result plain_page(hub_store *store, const hub_query *q, const page_cursor *from,
                               size_t max_items, hub_query_page *out)
{
    uint64_t left = q->top == SIZE_MAX        ? UINT64_MAX
                    : q->top > from->returned ? q->top - from->returned
                                              : 0;
    page_fill f = {.q = q, .items = json_array(), .want = max_items};
    if (!f.items)
        return -ENOMEM;
    if (left < f.want)
        f.want = (size_t)left;
    f.look_ahead = f.want < left;
    iotdm_result r = IOTDM_OK;
    if (f.want > 0 && q->source == HUB_QUERY_FROM_DEVICES)
        r = hub_store_query_page(store, q, from->after[0] ? from->after : NULL, fill, &f);
    else if (f.want > 0 && q->source == HUB_QUERY_FROM_JOBS)
        r = device_jobs_page(store, from->after, &f);
    if (r == IOTDM_OK)
        r = f.result;
    if (r == IOTDM_OK && f.more) {
        page_cursor next = {from->returned + json_array_size(f.items), ""};
        snprintf(next.after, sizeof next.after, "%s", f.last);
        r = token_encode(q, &next, out->continuation);
    }
    if (r != IOTDM_OK) {
        json_decref(f.items);
        out->continuation[0] = '\0';
        return r;
    }
    out->items = f.items;
    return IOTDM_OK;
}

typedef struct {
    hub_query_run *run;
    iotdm_result result;
} group_fill;

static bool add_to_run(void *ctx, const hub_device *d, const hub_twin *t)
{
    group_fill *f = ctx;
    json_t *doc = hub_twin_service_view(d, t);
    f->result = doc ? hub_query_run_add(f->run, doc) : -ENOMEM;
    json_decref(doc);
    return f->result == IOTDM_OK;
}

/* Groups keep only their keys and running aggregates, so every matching twin is fed in one
 * walk and the groups come back in one page. */
static iotdm_result group_page(hub_store *store, const hub_query *q, hub_query_page *out)
{
    group_fill f = {hub_query_run_new(q), IOTDM_OK};
    if (!f.run)
        return -ENOMEM;
    iotdm_result r = IOTDM_OK;
    if (q->source == HUB_QUERY_FROM_DEVICES)
        r = hub_store_query_page(store, q, NULL, add_to_run, &f);
    if (r == IOTDM_OK)
        r = f.result;
    if (r != IOTDM_OK) {
        hub_query_run_free(f.run);
        return r;
    }
    out->items = hub_query_run_finish(f.run);
    return out->items ? IOTDM_OK : -ENOMEM;
}

iotdm_result hub_query_page_run(hub_store *store, const hub_query *q, const char *continuation,
                                size_t max_items, hub_query_page *out)
{
    memset(out, 0, sizeof *out);
    page_cursor from = {0, ""};
    if (continuation && *continuation) {
        iotdm_result r = token_decode(q, continuation, &from);
        /* Aggregates come in one page: no token was made for them. */
        if (r == IOTDM_OK && q->aggregate)
            r = IOTDM_E_MALFORMED;
        if (r != IOTDM_OK)
            return r;
    }
    if (q->aggregate)
        return group_page(store, q, out);
    return plain_page(store, q, &from, max_items ? max_items : 1, out);
}
