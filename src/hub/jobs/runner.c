/* The jobs runner (docs/jobs.md). Everything here runs on loop 0; the store is reached through
 * units of work. A job is run by the node holding its lease, one step at a time: expand the query
 * condition a page at a time into device records, then list pending records and run them a batch
 * at a time, then finish. Each step's unit first checks that the job document is still the one
 * this node last wrote (its etag): if another node took the job over, or the job was cancelled,
 * this node lets it go. */
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "hub/errors.h"
#include "hub/events.h"
#include "hub/jobs/job_doc.h"
#include "hub/jobs/jobs.h"
#include "hub/methods.h"
#include "hub/query/query.h"
#include "hub/twin_ops.h"

enum {
    EXPAND_PAGE = 500,       /* matching twins read per expansion step */
    LIST_BATCH = 256,        /* device records listed per step */
    TWIN_INFLIGHT = 256,     /* twin updates of one job in flight */
    METHOD_INFLIGHT = 100,   /* method calls of one job in flight */
    RETRY_OFFLINE_MS = 5000, /* a device that was not online is tried again after this */
    TICK_MS = 1000,
};

typedef enum { PHASE_EXPAND, PHASE_RUN, PHASE_FINISH } run_phase;

typedef struct job_run {
    struct job_run *next;
    char id[JOB_ID_MAX + 1];
    json_t *doc;    /* as this node last wrote it */
    uint64_t etag;  /* its etag then */
    char token[96]; /* names this node's hold on the job in the records it runs */
    job_type type;
    run_phase phase;
    bool stepping;                    /* a step's unit is in flight */
    int inflight;                     /* device units and method calls in flight */
    char cursor[HUB_DOC_KEY_MAX + 1]; /* the listing goes on after this device */
    bool pass_active;                 /* this walk over the records found one pending or running */
    bool lost;                        /* dropped once nothing is in flight */
} job_run;

struct hub_jobs {
    hub *h;
    hub_loop *loop;
    struct event *timer;
    job_run *runs;
    bool scanning;
};

/* ---- units ---- */

typedef struct {
    hub_work w;
    hub_jobs *jobs;
    char id[JOB_ID_MAX + 1];
    char device[HUB_DOC_KEY_MAX + 1];
    json_t *doc;   /* in: the job as last written (a copy); out: as written by the unit */
    uint64_t etag; /* in: its etag; out: the new one */
    char token[96];
    int64_t now_ms;
    /* out */
    bool lost;    /* the job is no longer this node's to run */
    bool started; /* method: the record went running */
    json_t *list; /* listings: device ids, or scan candidates */
    bool more;    /* the listing stopped at its batch size */
    bool active;  /* in: the walk so far found work; out: so far, this batch included */
    char continuation[HUB_QUERY_CONTINUATION_MAX];
    hub_query_page page;
    /* a method's outcome */
    iotdm_result call_result;
    int call_status;
    json_t *call_payload;
} job_unit;

/* A unit for run (NULL: for no job yet). A step's unit gets its own copy of the job, which it
 * changes and writes; a device's unit only reads it, and shares the run's (never changed in
 * place: a new version replaces it; jansson's reference counts are atomic). */
static job_unit *unit_new_for(hub_jobs *j, const job_run *run, bool shared)
{
    job_unit *u = xcalloc(1, sizeof *u);
    if (!u)
        return NULL;
    u->jobs = j;
    u->now_ms = time_now_ms();
    if (run) {
        snprintf(u->id, sizeof u->id, "%s", run->id);
        snprintf(u->token, sizeof u->token, "%s", run->token);
        u->doc = shared ? json_incref(run->doc) : json_deep_copy(run->doc);
        u->etag = run->etag;
        if (!u->doc) {
            xfree(u);
            return NULL;
        }
    }
    return u;
}

static job_unit *unit_new(hub_jobs *j, const job_run *run)
{
    return unit_new_for(j, run, false);
}

static void unit_free(job_unit *u)
{
    json_decref(u->doc);
    json_decref(u->list);
    json_decref(u->page.items);
    json_decref(u->call_payload);
    xfree(u);
}

static job_run *find_run(hub_jobs *j, const char *id)
{
    for (job_run *r = j->runs; r; r = r->next)
        if (strcmp(r->id, id) == 0)
            return r;
    return NULL;
}

static void run_free(job_run *r)
{
    json_decref(r->doc);
    xfree(r);
}

static void drop_run(hub_jobs *j, job_run *run)
{
    for (job_run **pp = &j->runs; *pp; pp = &(*pp)->next) {
        if (*pp == run) {
            *pp = run->next;
            run_free(run);
            return;
        }
    }
}

/* In a unit: the job is still as this node wrote it (nobody cancelled it or took it over). */
static iotdm_result still_ours(job_unit *u, hub_store *store)
{
    json_t *doc = NULL;
    uint64_t etag = 0;
    iotdm_result r = hub_store_doc_get(store, HUB_DOC_JOB, "", u->id, &doc, &etag);
    json_decref(doc);
    if (r == IOTDM_E_NOT_FOUND || (r == IOTDM_OK && etag != u->etag)) {
        u->lost = true;
        return IOTDM_E_PRECONDITION;
    }
    return r;
}

/* In a unit: writes the job (lease renewed), conditional on this node's last write. */
static iotdm_result put_job(job_unit *u, hub_store *store)
{
    job_private_set(u->doc, "leaseUntil", json_integer(u->now_ms + HUB_JOB_LEASE_MS));
    iotdm_result r = hub_store_doc_put(store, HUB_DOC_JOB, "", u->id, u->doc, u->etag, &u->etag);
    if (r == IOTDM_E_PRECONDITION || r == IOTDM_E_NOT_FOUND)
        u->lost = true;
    return r;
}

static void step(hub_jobs *j, job_run *run);

/* Takes what a step's unit wrote and goes on. */
static void step_done(job_unit *u)
{
    hub_jobs *j = u->jobs;
    job_run *run = find_run(j, u->id);
    if (run) {
        run->stepping = false;
        if (u->lost) {
            run->lost = true;
            log_info("jobs", "job no longer run by this node job=%s", run->id);
        } else if (u->w.result == IOTDM_OK && u->doc && u->etag != run->etag) {
            json_decref(run->doc);
            run->doc = u->doc;
            run->etag = u->etag;
            u->doc = NULL;
        }
        if (run->lost && run->inflight == 0)
            drop_run(j, run);
        else if (u->w.result == IOTDM_OK)
            step(j, run);
    }
    unit_free(u);
}

/* ---- expansion: the query condition into device records ---- */

static iotdm_result expand_page_run(hub_work *w, hub_store *store)
{
    job_unit *u = (job_unit *)w;
    const char *cond = json_string_value(json_object_get(u->doc, "queryCondition"));
    hub_query *q = NULL;
    iotdm_result r = hub_query_parse_condition(cond, strlen(cond), &q, NULL, 0);
    if (r == IOTDM_OK)
        r = hub_query_page_run(store, q, job_private_str(u->doc, "continuation"), EXPAND_PAGE,
                               &u->page);
    hub_query_free(q);
    return r;
}

static iotdm_result expand_write_run(hub_work *w, hub_store *store)
{
    job_unit *u = (job_unit *)w;
    iotdm_result r = still_ours(u, store);
    size_t i;
    json_t *twin;
    json_array_foreach(u->page.items, i, twin)
    {
        const char *device = json_string_value(json_object_get(twin, "deviceId"));
        if (r != IOTDM_OK || !device)
            continue;
        json_t *rec = device_job_new(u->doc, device, u->now_ms);
        r = hub_store_doc_put(store, HUB_DOC_DEVICE_JOB, u->id, device, rec, HUB_DOC_CREATE, NULL);
        json_decref(rec);
        if (r == IOTDM_E_EXISTS)
            r = IOTDM_OK; /* written before this node took the job over */
    }
    if (r != IOTDM_OK)
        return r;
    job_private_set(u->doc, "continuation", json_string(u->page.continuation));
    if (!u->page.continuation[0])
        job_private_set(u->doc, "expanded", json_true());
    return put_job(u, store);
}

static void expand_page_done(hub_work *w)
{
    job_unit *u = (job_unit *)w;
    if (w->result != IOTDM_OK) {
        log_warn("jobs", "job query page failed job=%s: %s", u->id,
                 iotdm_result_message(w->result));
        step_done(u); /* tried again at the next tick */
        return;
    }
    memset(&u->w, 0, sizeof u->w);
    hub_work_submit(u->jobs->loop, &u->w, expand_write_run, (hub_work_done_fn)step_done,
                    HUB_WORK_GROWS);
}

/* ---- running device records ---- */

static json_t *twin_patch_of(const json_t *job)
{
    const json_t *ut = json_object_get(job, "updateTwin");
    json_t *patch = json_object();
    const json_t *tags = json_object_get(ut, "tags");
    const json_t *props = json_object_get(ut, "properties");
    /* Copies: the job is shared with the other units, and the twin update may work on its
     * patch. */
    if (tags)
        json_object_set_new(patch, "tags", json_deep_copy(tags));
    if (props)
        json_object_set_new(patch, "properties", json_deep_copy(props));
    return patch;
}

/* A device's record of the job, with its etag (put_record writes it back on that etag). */
static iotdm_result get_record(hub_store *store, const job_unit *u, const char *device,
                               json_t **out_rec, uint64_t *out_etag)
{
    return hub_store_doc_get(store, HUB_DOC_DEVICE_JOB, u->id, device, out_rec, out_etag);
}

/* Writes the record back, conditional on the etag it was read with; drops the reference. A
 * record that reached its end is announced on the live stream (in the same unit: undone with
 * it). */
static iotdm_result put_record(hub_store *store, const job_unit *u, const char *device, json_t *rec,
                               uint64_t etag)
{
    iotdm_result r = hub_store_doc_put(store, HUB_DOC_DEVICE_JOB, u->id, device, rec, etag, NULL);
    const char *status = json_string_value(json_object_get(rec, "status"));
    if (r == IOTDM_OK && status && (!strcmp(status, "completed") || !strcmp(status, "failed")))
        hub_events_job(store, HUB_EVENT_DEVICE_JOB, device, device_job_view(rec));
    json_decref(rec);
    return r;
}

/* Announces the job's new status on the live stream. */
static void job_event(hub_store *store, const json_t *doc)
{
    hub_events_job(store, HUB_EVENT_JOB, "", job_view(doc, NULL));
}

static bool record_is(const json_t *rec, const char *status)
{
    const char *s = json_string_value(json_object_get(rec, "status"));
    return s && strcmp(s, status) == 0;
}

/* Fails the record for a reason the device or the job gave (not the store's). */
static void fail_record(json_t *rec, int64_t now_ms, iotdm_result r, const char *why)
{
    hub_error_info e = hub_error_for(r);
    if (r == IOTDM_E_NOT_FOUND)
        e = HUB_ERR_DEVICE_NOT_FOUND;
    device_job_set(rec, "failed", now_ms, e.name, why && why[0] ? why : iotdm_result_message(r));
}

/* One device of a twin job: the twin update and the record in the same transaction, so that a
 * device is updated once even when two nodes believe they run the job (the conditional write of
 * the record fails for the second, which undoes its twin update). */
static iotdm_result twin_device_run(hub_work *w, hub_store *store)
{
    job_unit *u = (job_unit *)w;
    json_t *rec = NULL;
    uint64_t etag;
    iotdm_result r = get_record(store, u, u->device, &rec, &etag);
    if (r != IOTDM_OK)
        return r;
    if (!record_is(rec, "pending")) {
        json_decref(rec);
        return IOTDM_OK; /* done already */
    }
    json_t *patch = twin_patch_of(u->doc);
    twin_error err = {0};
    r = hub_twin_update_service(store, w, u->device, patch, false, 0, NULL, &err);
    json_decref(patch);
    if (r == IOTDM_OK)
        device_job_set(rec, "completed", u->now_ms, NULL, NULL);
    else if (r == IOTDM_E_NOT_FOUND || r == IOTDM_E_MALFORMED || r == IOTDM_E_TOO_LARGE ||
             r == IOTDM_E_TOO_DEEP)
        fail_record(rec, u->now_ms, r, err.message);
    else {
        json_decref(rec);
        return r; /* the store's: the record stays pending, tried again */
    }
    return put_record(store, u, u->device, rec, etag);
}

static void device_done(hub_work *w)
{
    job_unit *u = (job_unit *)w;
    job_run *run = find_run(u->jobs, u->id);
    if (run) {
        run->inflight--;
        if (run->lost && run->inflight == 0 && !run->stepping)
            drop_run(u->jobs, run);
        else if (run->inflight == 0 && !run->stepping)
            step(u->jobs, run);
    }
    unit_free(u);
}

/* Method jobs: the record goes running (durably) before the call, so that a node taking the job
 * over never calls the method a second time. */
static iotdm_result method_start_run(hub_work *w, hub_store *store)
{
    job_unit *u = (job_unit *)w;
    json_t *rec = NULL;
    uint64_t etag;
    iotdm_result r = get_record(store, u, u->device, &rec, &etag);
    if (r != IOTDM_OK)
        return r;
    int64_t next = json_integer_value(json_object_get(json_object_get(rec, JOB_PRIVATE), "nextMs"));
    if (!record_is(rec, "pending") || next > u->now_ms) {
        json_decref(rec);
        return IOTDM_OK; /* started by an earlier listing, or not yet due */
    }
    device_job_set(rec, "running", u->now_ms, NULL, NULL);
    json_object_set_new(rec, JOB_PRIVATE, json_pack("{s:s}", "by", u->token));
    r = put_record(store, u, u->device, rec, etag);
    u->started = r == IOTDM_OK;
    return r;
}

static iotdm_result method_result_run(hub_work *w, hub_store *store)
{
    job_unit *u = (job_unit *)w;
    json_t *rec = NULL;
    uint64_t etag;
    iotdm_result r = get_record(store, u, u->device, &rec, &etag);
    if (r != IOTDM_OK)
        return r;
    const char *by = json_string_value(json_object_get(json_object_get(rec, JOB_PRIVATE), "by"));
    if (!record_is(rec, "running") || !by || strcmp(by, u->token) != 0) {
        json_decref(rec);
        return IOTDM_OK; /* cancelled meanwhile, or no longer this node's */
    }
    int64_t deadline = job_private_int(u->doc, "deadlineMs");
    if (u->call_result == IOTDM_OK) {
        device_job_set(rec, "completed", u->now_ms, NULL, NULL);
        json_object_set_new(rec, "outcome",
                            json_pack("{s:{s:i, s:O}}", "deviceMethodResponse", "status",
                                      u->call_status, "payload",
                                      u->call_payload ? u->call_payload : json_null()));
    } else if (u->call_result == IOTDM_E_NOT_ONLINE && u->now_ms + RETRY_OFFLINE_MS < deadline) {
        device_job_set(rec, "pending", u->now_ms, NULL, NULL);
        json_object_set_new(
            rec, JOB_PRIVATE,
            json_pack("{s:I}", "nextMs", (json_int_t)(u->now_ms + RETRY_OFFLINE_MS)));
    } else if (u->call_result == IOTDM_E_NOT_ONLINE) {
        device_job_set(rec, "failed", u->now_ms, HUB_ERR_DEVICE_NOT_ONLINE.name,
                       "the device was not online before the job's time ran out");
    } else if (u->call_result == IOTDM_E_TIMEOUT) {
        device_job_set(rec, "failed", u->now_ms, HUB_ERR_GATEWAY_TIMEOUT.name,
                       "the device did not answer in time");
    } else {
        fail_record(rec, u->now_ms, u->call_result, NULL);
    }
    return put_record(store, u, u->device, rec, etag);
}

static void method_called(void *ctx, iotdm_result r, int status, const char *payload, size_t len)
{
    job_unit *u = ctx;
    u->call_result = r;
    u->call_status = status;
    if (r == IOTDM_OK && len) {
        json_error_t jerr;
        u->call_payload = json_loadb(payload, len, JSON_DECODE_ANY, &jerr);
        if (!u->call_payload)
            u->call_payload = json_stringn(payload, len); /* the device answered with non-JSON */
    }
    u->now_ms = time_now_ms();
    memset(&u->w, 0, sizeof u->w);
    hub_work_submit(u->jobs->loop, &u->w, method_result_run, device_done, 0);
}

static void method_start_done(hub_work *w)
{
    job_unit *u = (job_unit *)w;
    job_run *run = find_run(u->jobs, u->id);
    if (w->result != IOTDM_OK || !u->started || !run || run->lost) {
        device_done(w);
        return;
    }
    const json_t *m = json_object_get(u->doc, "cloudToDeviceMethod");
    char *payload = json_dumps(json_object_get(m, "payload"), JSON_COMPACT | JSON_ENCODE_ANY);
    uint64_t call_id;
    iotdm_result r =
        payload ? hub_methods_invoke(
                      u->jobs->loop->methods, u->device,
                      json_string_value(json_object_get(m, "methodName")), payload, strlen(payload),
                      (int)json_integer_value(json_object_get(m, "responseTimeoutInSeconds")),
                      (int)json_integer_value(json_object_get(m, "connectTimeoutInSeconds")),
                      method_called, u, &call_id)
                : -ENOMEM;
    free(payload);
    if (r < 0)
        method_called(u, r, 0, NULL, 0); /* recorded like any failed call */
}

/* ---- listing: what to run next, the deadline, the end ---- */

typedef struct {
    job_unit *u;
    size_t listed;
    bool active; /* some record is pending or running */
} list_ctx;

static bool list_visit(void *ctx, const char *scope, const char *id, const json_t *doc,
                       uint64_t etag)
{
    (void)scope;
    (void)etag;
    list_ctx *lc = ctx;
    job_unit *u = lc->u;
    snprintf(u->device, sizeof u->device, "%s", id); /* the cursor: the last one seen */
    lc->listed++;
    const char *status = json_string_value(json_object_get(doc, "status"));
    const json_t *own = json_object_get(doc, JOB_PRIVATE);
    if (status && strcmp(status, "pending") == 0) {
        lc->active = true;
        if (json_integer_value(json_object_get(own, "nextMs")) <= u->now_ms)
            json_array_append_new(u->list, json_string(id));
    } else if (status && strcmp(status, "running") == 0) {
        lc->active = true;
        const char *by = json_string_value(json_object_get(own, "by"));
        /* Left running by a node that lost the job: its call may have reached the device, so
         * it is not made again. */
        if (!by || strcmp(by, u->token) != 0)
            json_array_append_new(u->list, json_pack("{s:s}", "lost", id));
    }
    return true;
}

/* Fails what a node that lost the job left running, and, past the deadline, what is still
 * pending. */
static iotdm_result settle(job_unit *u, hub_store *store, const char *device, bool lost)
{
    json_t *rec = NULL;
    uint64_t etag;
    iotdm_result r = get_record(store, u, device, &rec, &etag);
    if (r != IOTDM_OK)
        return r;
    if (lost)
        device_job_set(rec, "failed", u->now_ms, "JobRunnerLost",
                       "the node running the job stopped while the method was in flight");
    else if (job_type_of(u->doc) == JOB_METHOD)
        device_job_set(rec, "failed", u->now_ms, HUB_ERR_DEVICE_NOT_ONLINE.name,
                       "the device was not online before the job's time ran out");
    else
        device_job_set(rec, "failed", u->now_ms, "JobExpired",
                       "the job's time ran out before the device was updated");
    return put_record(store, u, device, rec, etag);
}

typedef struct {
    job_stats *stats;
    char last[HUB_DOC_KEY_MAX + 1];
    size_t n;
} count_ctx;

static bool count_visit(void *ctx, const char *scope, const char *id, const json_t *doc,
                        uint64_t etag)
{
    (void)scope;
    (void)etag;
    count_ctx *c = ctx;
    job_stats_add(c->stats, doc);
    snprintf(c->last, sizeof c->last, "%s", id);
    c->n++;
    return true;
}

/* Counts a job's records, a batch at a time. */
static iotdm_result count_records(hub_store *store, const char *job_id, job_stats *out)
{
    enum { BATCH = 1000 };
    memset(out, 0, sizeof *out);
    count_ctx c = {.stats = out};
    for (;;) {
        char after[HUB_DOC_KEY_MAX + 1];
        snprintf(after, sizeof after, "%s", c.last);
        c.n = 0;
        iotdm_result r = hub_store_doc_foreach(store, HUB_DOC_DEVICE_JOB, job_id, NULL,
                                               after[0] ? after : NULL, BATCH, count_visit, &c);
        if (r != IOTDM_OK || c.n < BATCH)
            return r;
    }
}

iotdm_result hub_job_count_records(hub_store *store, const char *job_id, job_stats *out)
{
    return count_records(store, job_id, out);
}

/* A listing step: renews the lease, settles what must be, and lists the next records to run
 * (u->list: device ids). With nothing left to run or wait for, and the expansion done, the job
 * is finished in the same unit. */
static iotdm_result list_run(hub_work *w, hub_store *store)
{
    job_unit *u = (job_unit *)w;
    iotdm_result r = still_ours(u, store);
    if (r != IOTDM_OK)
        return r;
    u->list = json_array();
    list_ctx lc = {.u = u, .active = u->active};
    char after[HUB_DOC_KEY_MAX + 1];
    snprintf(after, sizeof after, "%s", u->device); /* the cursor, given in device */
    u->device[0] = '\0';
    r = hub_store_doc_foreach(store, HUB_DOC_DEVICE_JOB, u->id, NULL, after[0] ? after : NULL,
                              LIST_BATCH, list_visit, &lc);
    if (r != IOTDM_OK)
        return r;
    u->more = lc.listed == LIST_BATCH;
    bool past_deadline = u->now_ms > job_private_int(u->doc, "deadlineMs");
    json_t *keep = json_array();
    size_t i;
    json_t *item;
    json_array_foreach(u->list, i, item)
    {
        if (r != IOTDM_OK)
            break;
        if (json_is_object(item))
            r = settle(u, store, json_string_value(json_object_get(item, "lost")), true);
        else if (past_deadline)
            r = settle(u, store, json_string_value(item), false);
        else
            json_array_append(keep, item);
    }
    json_decref(u->list);
    u->list = keep;
    if (r != IOTDM_OK)
        return r;
    /* The end: a whole walk over the records, from the first to the last, found nothing pending
     * or running. */
    u->active = lc.active;
    bool expanded = json_is_true(json_object_get(json_object_get(u->doc, JOB_PRIVATE), "expanded"));
    if (expanded && !u->more && !lc.active) {
        job_stats stats;
        r = count_records(store, u->id, &stats);
        if (r != IOTDM_OK)
            return r;
        job_set_status(u->doc, "completed", u->now_ms);
        job_private_set(u->doc, "statistics", job_stats_json(&stats));
        job_private_set(u->doc, "runner", json_string(""));
        job_event(store, u->doc);
    }
    return put_job(u, store);
}

static void list_done(hub_work *w)
{
    job_unit *u = (job_unit *)w;
    hub_jobs *j = u->jobs;
    job_run *run = find_run(j, u->id);
    if (!run || u->lost || w->result != IOTDM_OK) {
        step_done(u);
        return;
    }
    json_decref(run->doc);
    run->doc = u->doc;
    run->etag = u->etag;
    u->doc = NULL;
    run->stepping = false;
    snprintf(run->cursor, sizeof run->cursor, "%s", u->more ? u->device : "");
    run->pass_active = u->more && u->active; /* a new walk starts from nothing found */
    if (job_is_final(run->doc)) {
        log_info("jobs", "job completed job=%s", run->id);
        run->lost = true; /* nothing more to do: let it go */
        if (run->inflight == 0)
            drop_run(j, run);
        unit_free(u);
        return;
    }
    size_t i;
    json_t *item;
    json_array_foreach(u->list, i, item)
    {
        job_unit *d = unit_new_for(j, run, true);
        if (!d)
            break;
        snprintf(d->device, sizeof d->device, "%s", json_string_value(item));
        run->inflight++;
        if (run->type == JOB_TWIN)
            hub_work_submit(j->loop, &d->w, twin_device_run, device_done, HUB_WORK_GROWS);
        else
            hub_work_submit(j->loop, &d->w, method_start_run, method_start_done, 0);
    }
    /* Nothing started, and more records after these: list on at once; otherwise the next step
     * comes when this batch is done, or at the next tick. */
    if (run->inflight == 0 && run->cursor[0])
        step(j, run);
    unit_free(u);
}

/* ---- stepping ---- */

static void step(hub_jobs *j, job_run *run)
{
    if (run->stepping || run->lost || j->loop->stopping)
        return;
    int limit = run->type == JOB_TWIN ? TWIN_INFLIGHT : METHOD_INFLIGHT;
    if (run->inflight > 0 && (run->type == JOB_TWIN || run->inflight >= limit))
        return; /* the batch in flight first (twin jobs), or room for more calls (methods) */
    job_unit *u = unit_new(j, run);
    if (!u)
        return;
    run->stepping = true;
    bool expanded =
        json_is_true(json_object_get(json_object_get(run->doc, JOB_PRIVATE), "expanded"));
    if (!expanded) {
        hub_work_submit(j->loop, &u->w, expand_page_run, expand_page_done, HUB_WORK_SNAPSHOT);
        return;
    }
    snprintf(u->device, sizeof u->device, "%s", run->cursor);
    u->active = run->cursor[0] && run->pass_active;
    hub_work_submit(j->loop, &u->w, list_run, list_done, 0);
}

/* ---- finding due jobs and taking their lease ---- */

static bool scan_visit(void *ctx, const char *scope, const char *id, const json_t *doc,
                       uint64_t etag)
{
    (void)scope;
    (void)etag;
    job_unit *u = ctx;
    if (!job_is_final(doc))
        json_array_append_new(u->list,
                              json_pack("{s:s, s:I, s:s, s:I, s:s}", "id", id, "startMs",
                                        (json_int_t)job_private_int(doc, "startMs"), "runner",
                                        job_private_str(doc, "runner"), "leaseUntil",
                                        (json_int_t)job_private_int(doc, "leaseUntil"), "status",
                                        job_status(doc)));
    return true;
}

static iotdm_result scan_run(hub_work *w, hub_store *store)
{
    job_unit *u = (job_unit *)w;
    u->list = json_array();
    return hub_store_doc_foreach(store, HUB_DOC_JOB, "", NULL, NULL, HUB_JOBS_MAX_KEPT, scan_visit,
                                 u);
}

/* Takes the job if no node holds it (or its lease ran out): runner, lease and status running
 * (scheduled while its start time is ahead), written on the etag read. */
static iotdm_result claim_run(hub_work *w, hub_store *store)
{
    job_unit *u = (job_unit *)w;
    json_t *doc = NULL;
    iotdm_result r = hub_store_doc_get(store, HUB_DOC_JOB, "", u->id, &doc, &u->etag);
    if (r != IOTDM_OK)
        return r;
    u->doc = doc;
    const char *runner = job_private_str(doc, "runner");
    bool held = runner[0] && strcmp(runner, u->token) != 0 &&
                job_private_int(doc, "leaseUntil") > u->now_ms;
    if (job_is_final(doc) || held) {
        u->lost = true;
        return IOTDM_OK;
    }
    if (job_private_int(doc, "startMs") > u->now_ms) {
        u->lost = true; /* not yet: shown as scheduled */
        if (strcmp(job_status(doc), "scheduled") == 0)
            return IOTDM_OK;
        job_set_status(doc, "scheduled", u->now_ms);
        r = hub_store_doc_put(store, HUB_DOC_JOB, "", u->id, doc, u->etag, &u->etag);
        if (r == IOTDM_OK)
            job_event(store, doc);
        return r == IOTDM_E_PRECONDITION ? IOTDM_OK : r;
    }
    bool was_running = strcmp(job_status(doc), "running") == 0;
    job_set_status(doc, "running", u->now_ms);
    job_private_set(doc, "runner", json_string(u->token));
    job_private_set(doc, "leaseUntil", json_integer(u->now_ms + HUB_JOB_LEASE_MS));
    r = hub_store_doc_put(store, HUB_DOC_JOB, "", u->id, doc, u->etag, &u->etag);
    if (r == IOTDM_E_PRECONDITION) {
        u->lost = true; /* another node was quicker */
        return IOTDM_OK;
    }
    if (r == IOTDM_OK && !was_running)
        job_event(store, doc); /* not again when another node takes it over */
    return r;
}

static void claim_done(hub_work *w)
{
    job_unit *u = (job_unit *)w;
    hub_jobs *j = u->jobs;
    if (w->result == IOTDM_OK && !u->lost && !find_run(j, u->id)) {
        job_run *run = xcalloc(1, sizeof *run);
        if (run) {
            snprintf(run->id, sizeof run->id, "%s", u->id);
            snprintf(run->token, sizeof run->token, "%s", u->token);
            run->doc = u->doc;
            run->etag = u->etag;
            run->type = job_type_of(run->doc);
            u->doc = NULL;
            run->next = j->runs;
            j->runs = run;
            log_info("jobs", "running job=%s type=%s", run->id,
                     run->type == JOB_TWIN ? "scheduleUpdateTwin" : "scheduleDeviceMethod");
            step(j, run);
        }
    }
    unit_free(u);
}

static void scan_done(hub_work *w)
{
    job_unit *u = (job_unit *)w;
    hub_jobs *j = u->jobs;
    j->scanning = false;
    size_t i;
    json_t *c;
    json_array_foreach(w->result == IOTDM_OK ? u->list : NULL, i, c)
    {
        const char *id = json_string_value(json_object_get(c, "id"));
        if (find_run(j, id))
            continue;
        const char *runner = json_string_value(json_object_get(c, "runner"));
        int64_t lease = json_integer_value(json_object_get(c, "leaseUntil"));
        if (runner && runner[0] && lease > u->now_ms)
            continue; /* held by a node */
        const char *status = json_string_value(json_object_get(c, "status"));
        if (json_integer_value(json_object_get(c, "startMs")) > u->now_ms && status &&
            strcmp(status, "scheduled") == 0)
            continue; /* not yet, and already shown as scheduled */
        job_unit *claim = unit_new(j, NULL);
        if (!claim)
            break;
        snprintf(claim->id, sizeof claim->id, "%s", id);
        /* The token names this node and the moment of the claim: records a previous hold of
         * this node left running are told apart from this hold's. */
        snprintf(claim->token, sizeof claim->token, "%s/%lld", j->h->cfg.node_id,
                 (long long)claim->now_ms);
        hub_work_submit(j->loop, &claim->w, claim_run, claim_done, 0);
    }
    unit_free(u);
}

void hub_jobs_tick(hub_jobs *j)
{
    if (!j || j->loop->stopping)
        return;
    if (!j->scanning) {
        job_unit *u = unit_new(j, NULL);
        if (u) {
            j->scanning = true;
            hub_work_submit(j->loop, &u->w, scan_run, scan_done, HUB_WORK_READ);
        }
    }
    for (job_run *run = j->runs, *next; run; run = next) {
        next = run->next;
        if (run->lost && run->inflight == 0 && !run->stepping)
            drop_run(j, run);
        else
            step(j, run);
    }
}

static void poke_task(hub_loop *loop, void *arg)
{
    (void)loop;
    hub_jobs_tick(arg);
}

void hub_jobs_poke(hub *h)
{
    if (h->jobs)
        (void)!hub_loop_post(&h->loops[0], poke_task, h->jobs); /* the next tick does it anyway */
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hub_jobs_tick(arg);
}

hub_jobs *hub_jobs_new(hub *h)
{
    hub_jobs *j = xcalloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->h = h;
    j->loop = &h->loops[0];
    j->timer = event_new(j->loop->base, -1, EV_PERSIST, timer_cb, j);
    struct timeval tv = {TICK_MS / 1000, (TICK_MS % 1000) * 1000};
    if (!j->timer || event_add(j->timer, &tv) != 0) {
        hub_jobs_free(j);
        return NULL;
    }
    return j;
}

void hub_jobs_free(hub_jobs *j)
{
    if (!j)
        return;
    if (j->timer)
        event_free(j->timer);
    while (j->runs) {
        job_run *r = j->runs;
        j->runs = r->next;
        run_free(r);
    }
    xfree(j);
}
