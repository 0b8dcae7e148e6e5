/* Jobs v2: PUT/GET /jobs/v2/{id}, POST /jobs/v2/{id}/cancel, GET /jobs/v2/query, and the v1
 * list GET /jobs, which has nothing (docs/jobs.md). The runner (jobs/runner.c) does the work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "hub/events.h"
#include "hub/http/internal.h"
#include "hub/jobs/job_doc.h"
#include "hub/jobs/jobs.h"

#define JOBS_DEFAULT_PAGE 100
#define JOBS_MAX_PAGE     1000

typedef struct {
    http_ctx cx;
    const char *id;
    json_t *doc;  /* the job to create, or the job read */
    json_t *view; /* the answer */
    char err[256];
    int64_t now_ms;
    /* listing */
    const char *type_filter, *status_filter;
    size_t offset, page_size, total;
} jobs_ctx;

static void jobs_cleanup(http_ctx *cx)
{
    jobs_ctx *jc = (jobs_ctx *)cx;
    json_decref(jc->doc);
    json_decref(jc->view);
}

/* The served job: with the counts of its records while it runs, with those stored once ended. */
static iotdm_result view_of(hub_store *store, const json_t *doc, json_t **out)
{
    job_stats stats;
    bool count = !job_is_final(doc);
    iotdm_result r =
        count
            ? hub_job_count_records(store, json_string_value(json_object_get(doc, "jobId")), &stats)
            : IOTDM_OK;
    if (r != IOTDM_OK)
        return r;
    *out = job_view(doc, count ? &stats : NULL);
    return *out ? IOTDM_OK : -ENOMEM;
}

/* ---- create ---- */

typedef struct {
    size_t active, kept;
    char oldest_ended[JOB_ID_MAX + 1];
    int64_t oldest_ended_ms;
    int64_t expired_before_ms;
    json_t *expired; /* ids of ended jobs past the retention */
} census;

static bool census_visit(void *ctx, const char *scope, const char *id, const json_t *doc,
                         uint64_t etag)
{
    (void)scope;
    (void)etag;
    census *c = ctx;
    c->kept++;
    if (!job_is_final(doc)) {
        c->active++;
        return true;
    }
    int64_t created = job_private_int(doc, "createdMs");
    if (created < c->expired_before_ms)
        json_array_append_new(c->expired, json_string(id));
    else if (!c->oldest_ended[0] || created < c->oldest_ended_ms) {
        snprintf(c->oldest_ended, sizeof c->oldest_ended, "%s", id);
        c->oldest_ended_ms = created;
    }
    return true;
}

static iotdm_result forget_job(hub_store *store, const char *id)
{
    iotdm_result r = hub_store_doc_delete_scope(store, HUB_DOC_DEVICE_JOB, id, NULL);
    if (r == IOTDM_OK)
        r = hub_store_doc_delete(store, HUB_DOC_JOB, "", id, 0);
    return r == IOTDM_E_NOT_FOUND ? IOTDM_OK : r;
}

static iotdm_result create_run(hub_work *w, hub_store *store)
{
    jobs_ctx *jc = (jobs_ctx *)w;
    /* Ended jobs go after the retention, and the oldest ended one when the hub keeps as many as
     * it may: the limits hold without a sweep of their own. */
    census c = {.expired_before_ms = jc->now_ms - HUB_JOB_RETENTION_MS, .expired = json_array()};
    iotdm_result r = hub_store_doc_foreach(store, HUB_DOC_JOB, "", NULL, NULL,
                                           HUB_JOBS_MAX_KEPT + 1, census_visit, &c);
    size_t i;
    json_t *id;
    json_array_foreach(c.expired, i, id)
    {
        if (r == IOTDM_OK)
            r = forget_job(store, json_string_value(id));
    }
    c.kept -= r == IOTDM_OK ? json_array_size(c.expired) : 0;
    json_decref(c.expired);
    if (r != IOTDM_OK)
        return r;
    if (c.active >= HUB_JOBS_MAX_ACTIVE)
        return IOTDM_E_QUOTA;
    if (c.kept >= HUB_JOBS_MAX_KEPT && c.oldest_ended[0])
        r = forget_job(store, c.oldest_ended);
    if (r == IOTDM_OK)
        r = hub_store_doc_put(store, HUB_DOC_JOB, "", jc->id, jc->doc, HUB_DOC_CREATE, NULL);
    if (r == IOTDM_OK)
        r = view_of(store, jc->doc, &jc->view);
    if (r == IOTDM_OK)
        hub_events_job(store, HUB_EVENT_JOB, "", json_deep_copy(jc->view));
    return r;
}

static void send_view(http_ctx *cx)
{
    jobs_ctx *jc = (jobs_ctx *)cx;
    json_t *view = jc->view;
    jc->view = NULL;
    http_send_json(cx, 200, view);
}

static void create_done(http_ctx *cx)
{
    jobs_ctx *jc = (jobs_ctx *)cx;
    iotdm_result r = cx->w.result;
    if (r == IOTDM_E_EXISTS) {
        http_send_error(cx, HUB_ERR_JOB_EXISTS, "A job with id '%s' already exists.", jc->id);
    } else if (r == IOTDM_E_QUOTA) {
        http_send_error(cx, HUB_ERR_JOB_QUOTA, "%d jobs are already queued or running.",
                        HUB_JOBS_MAX_ACTIVE);
    } else if (r < 0) {
        http_send_result_error(cx, r, "cannot create the job");
    } else {
        send_view(cx);
        hub_jobs_poke(cx->h); /* start it now if it is due */
    }
}

static void create(http_ctx *cx)
{
    jobs_ctx *jc = (jobs_ctx *)cx;
    json_t *body = http_body_json(cx);
    if (!body)
        return;
    jc->now_ms = time_now_ms();
    iotdm_result r = job_from_request(jc->id, body, jc->now_ms, &jc->doc, jc->err, sizeof jc->err);
    json_decref(body);
    if (r == IOTDM_E_MALFORMED)
        http_send_error(cx, HUB_ERR_ARGUMENT_INVALID, "%s", jc->err);
    else if (r < 0)
        http_send_result_error(cx, r, "cannot create the job");
    else
        http_run(cx, create_run, create_done, HUB_WORK_GROWS);
}

/* ---- get and cancel ---- */

static iotdm_result get_run(hub_work *w, hub_store *store)
{
    jobs_ctx *jc = (jobs_ctx *)w;
    iotdm_result r = hub_store_doc_get(store, HUB_DOC_JOB, "", jc->id, &jc->doc, NULL);
    if (r == IOTDM_OK)
        r = view_of(store, jc->doc, &jc->view);
    return r;
}

typedef struct {
    json_t *pending; /* [{id, etag, doc}] of this batch */
    char last[HUB_DOC_KEY_MAX + 1];
    size_t n;
} cancel_walk;

static bool cancel_visit(void *ctx, const char *scope, const char *id, const json_t *doc,
                         uint64_t etag)
{
    (void)scope;
    cancel_walk *c = ctx;
    snprintf(c->last, sizeof c->last, "%s", id);
    c->n++;
    const char *status = json_string_value(json_object_get(doc, "status"));
    if (status && strcmp(status, "pending") == 0) /* a call in flight records its outcome */
        json_array_append_new(c->pending, json_pack("{s:s, s:I, s:O}", "id", id, "etag",
                                                    (json_int_t)etag, "doc", doc));
    return true;
}

/* Cancels the job and its records not yet run, in the same transaction. A job that ended is left
 * as it is. The runner of the job sees the job changed and lets it go. */
static iotdm_result cancel_run(hub_work *w, hub_store *store)
{
    enum { BATCH = 1000 };
    jobs_ctx *jc = (jobs_ctx *)w;
    uint64_t etag;
    iotdm_result r = hub_store_doc_get(store, HUB_DOC_JOB, "", jc->id, &jc->doc, &etag);
    if (r != IOTDM_OK || job_is_final(jc->doc))
        return r == IOTDM_OK ? view_of(store, jc->doc, &jc->view) : r;
    job_set_status(jc->doc, "cancelled", jc->now_ms);
    job_private_set(jc->doc, "runner", json_string(""));
    r = hub_store_doc_put(store, HUB_DOC_JOB, "", jc->id, jc->doc, etag, NULL);
    cancel_walk c = {.n = 0};
    while (r == IOTDM_OK) {
        char after[HUB_DOC_KEY_MAX + 1];
        snprintf(after, sizeof after, "%s", c.last);
        c.n = 0;
        c.pending = json_array();
        r = hub_store_doc_foreach(store, HUB_DOC_DEVICE_JOB, jc->id, NULL, after[0] ? after : NULL,
                                  BATCH, cancel_visit, &c);
        size_t i;
        json_t *p;
        json_array_foreach(c.pending, i, p)
        {
            if (r != IOTDM_OK)
                break;
            json_t *rec = json_object_get(p, "doc");
            device_job_set(rec, "canceled", jc->now_ms, NULL, NULL);
            r = hub_store_doc_put(store, HUB_DOC_DEVICE_JOB, jc->id,
                                  json_string_value(json_object_get(p, "id")), rec,
                                  (uint64_t)json_integer_value(json_object_get(p, "etag")), NULL);
        }
        json_decref(c.pending);
        if (c.n < BATCH)
            break;
    }
    if (r == IOTDM_OK) {
        job_stats stats;
        r = hub_job_count_records(store, jc->id, &stats);
        if (r == IOTDM_OK) {
            job_private_set(jc->doc, "statistics", job_stats_json(&stats));
            r = hub_store_doc_put(store, HUB_DOC_JOB, "", jc->id, jc->doc, 0, NULL);
        }
    }
    if (r == IOTDM_OK)
        r = view_of(store, jc->doc, &jc->view);
    if (r == IOTDM_OK)
        hub_events_job(store, HUB_EVENT_JOB, "", json_deep_copy(jc->view));
    return r;
}

static void job_done(http_ctx *cx)
{
    jobs_ctx *jc = (jobs_ctx *)cx;
    iotdm_result r = cx->w.result;
    if (r == IOTDM_E_NOT_FOUND)
        http_send_error(cx, HUB_ERR_JOB_NOT_FOUND, "Job with id '%s' was not found.", jc->id);
    else if (r == IOTDM_E_PRECONDITION)
        http_send_error(cx, HUB_ERR_PRECONDITION, "the job changed meanwhile; try again");
    else if (r < 0)
        http_send_result_error(cx, r, "cannot read the job");
    else
        send_view(cx);
}

static void job(http_ctx *cx)
{
    jobs_ctx *jc = (jobs_ctx *)cx;
    cx->cleanup = jobs_cleanup;
    jc->id = cx->segments[2];
    if (!job_id_ok(jc->id)) {
        /* No job can have such an id: a GET finds nothing, a PUT is refused. */
        if (cx->method == HTTPD_PUT)
            http_send_error(cx, HUB_ERR_ARGUMENT_INVALID,
                            "a job id has 1 to %d ASCII letters, digits and '-'", JOB_ID_MAX);
        else
            http_send_error(cx, HUB_ERR_JOB_NOT_FOUND, "Job with id '%s' was not found.", jc->id);
        return;
    }
    if (cx->method == HTTPD_PUT)
        create(cx);
    else
        http_run(cx, get_run, job_done, HUB_WORK_READ);
}

static void cancel(http_ctx *cx)
{
    jobs_ctx *jc = (jobs_ctx *)cx;
    cx->cleanup = jobs_cleanup;
    jc->id = cx->segments[2];
    jc->now_ms = time_now_ms();
    if (!job_id_ok(jc->id)) {
        http_send_error(cx, HUB_ERR_JOB_NOT_FOUND, "Job with id '%s' was not found.", jc->id);
        return;
    }
    http_run(cx, cancel_run, job_done, 0);
}

/* ---- listing ---- */

static bool list_visit(void *ctx, const char *scope, const char *id, const json_t *doc,
                       uint64_t etag)
{
    (void)scope;
    (void)id;
    (void)etag;
    jobs_ctx *jc = ctx;
    const char *type = json_string_value(json_object_get(doc, "type"));
    if (jc->type_filter && (!type || strcmp(type, jc->type_filter) != 0))
        return true;
    if (jc->status_filter && strcmp(job_status(doc), jc->status_filter) != 0)
        return true;
    json_array_append(jc->doc, (json_t *)doc);
    return true;
}

/* Newest first; jobs created in the same millisecond by id, descending, so that the order (and
 * so the paging) is the same from one page to the next. */
static int newest_first(const void *a, const void *b)
{
    const json_t *ja = *(json_t *const *)a, *jb = *(json_t *const *)b;
    int64_t ta = job_private_int(ja, "createdMs"), tb = job_private_int(jb, "createdMs");
    if (ta != tb)
        return ta < tb ? 1 : -1;
    return -strcmp(json_string_value(json_object_get(ja, "jobId")),
                   json_string_value(json_object_get(jb, "jobId")));
}

static iotdm_result list_run(hub_work *w, hub_store *store)
{
    jobs_ctx *jc = (jobs_ctx *)w;
    jc->doc = json_array();
    iotdm_result r = hub_store_doc_foreach(store, HUB_DOC_JOB, "", NULL, NULL, HUB_JOBS_MAX_KEPT,
                                           list_visit, jc);
    if (r != IOTDM_OK)
        return r;
    size_t n = json_array_size(jc->doc);
    json_t **jobs = malloc((n ? n : 1) * sizeof *jobs);
    if (!jobs)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        jobs[i] = json_array_get(jc->doc, i);
    qsort(jobs, n, sizeof *jobs, newest_first);
    jc->view = json_array();
    jc->total = n;
    for (size_t i = jc->offset; i < n && i < jc->offset + jc->page_size && r == IOTDM_OK; i++) {
        json_t *view = NULL;
        r = view_of(store, jobs[i], &view);
        if (r == IOTDM_OK)
            json_array_append_new(jc->view, view);
    }
    free(jobs);
    return r;
}

static void list_done(http_ctx *cx)
{
    jobs_ctx *jc = (jobs_ctx *)cx;
    if (cx->w.result < 0) {
        http_send_result_error(cx, cx->w.result, "cannot list the jobs");
        return;
    }
    http_add_header(cx, "x-ms-item-type", "jobResponse");
    /* Left out on the last page: Node's SDK reads its presence as "more". */
    if (jc->offset + jc->page_size < jc->total) {
        char next[32];
        snprintf(next, sizeof next, "%zu", jc->offset + jc->page_size);
        http_add_header(cx, "x-ms-continuation", next);
    }
    json_t *view = jc->view;
    jc->view = NULL;
    http_send_json(cx, 200, view);
}

static void list(http_ctx *cx)
{
    jobs_ctx *jc = (jobs_ctx *)cx;
    cx->cleanup = jobs_cleanup;
    jc->type_filter = http_query_param(cx, "jobType");
    jc->status_filter = http_query_param(cx, "jobStatus");
    const char *size = http_header(cx, "x-ms-max-item-count");
    if (!size)
        size = http_query_param(cx, "pageSize");
    long n = size ? strtol(size, NULL, 10) : JOBS_DEFAULT_PAGE;
    jc->page_size = n <= 0 ? JOBS_DEFAULT_PAGE : n > JOBS_MAX_PAGE ? JOBS_MAX_PAGE : (size_t)n;
    const char *cont = http_header(cx, "x-ms-continuation");
    if (!cont)
        cont = http_query_param(cx, "continuationToken");
    if (cont && cont[0]) {
        char *end;
        unsigned long long off = strtoull(cont, &end, 10);
        if (*end || off > HUB_JOBS_MAX_KEPT) {
            http_send_error(cx, HUB_ERR_ARGUMENT_INVALID,
                            "x-ms-continuation is not one this hub made");
            return;
        }
        jc->offset = (size_t)off;
    }
    http_run(cx, list_run, list_done, HUB_WORK_READ);
}

/* The v1 jobs (import and export) are not served: the list is empty. The Azure CLI's job list
 * reads it after the v2 list. */
static void list_v1(http_ctx *cx)
{
    http_send_json(cx, 200, json_array());
}

const http_route http_jobs_routes[] = {
    {"jobs/v2/query", HTTPD_GET, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT, HTTP_BODY_NONE, false,
     NULL, list, sizeof(jobs_ctx)},
    {"jobs/v2/*/cancel", HTTPD_POST, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT, HTTP_BODY_NONE,
     false, NULL, cancel, sizeof(jobs_ctx)},
    {"jobs/v2/*", HTTPD_GET | HTTPD_PUT, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT,
     HTTP_BODY_JSON, false, NULL, job, sizeof(jobs_ctx)},
    {"jobs", HTTPD_GET, HTTP_AUTH_POLICY, HUB_RIGHT_SERVICE_CONNECT, HTTP_BODY_NONE, false, NULL,
     list_v1, 0},
    {NULL, 0, 0, 0, 0, false, NULL, NULL, 0},
};
