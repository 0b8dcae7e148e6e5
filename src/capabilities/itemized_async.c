/* Item-by-item sections applied on the worker: 202 at once, the outcome when the work is done.
 * Downloads and installs take as long as the network and the device make them; the thread that
 * serves the hub connection must keep answering keep-alives and methods meanwhile. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capabilities/itemized.h"
#include "common/log.h"

static void run_pending(void *arg);

/* Durable before the 202 goes out: a restart in between resumes the value instead of leaving the
 * twin at 202 for good (the full twin read after a restart skips a value already acknowledged). */
static void save_pending(cap_items_async *a)
{
    json_t *state = a->pending ? json_incref(a->pending) : json_object();
    if (cap_state_save(a->env, a->pending_name, state) < 0)
        log_error("agent", "%s: the value being applied is not saved; a restart would lose it",
                  a->property);
    json_decref(state);
}

/* With a->lock held: makes sure a job will take a->pending. */
static iotdm_result queue_job(cap_items_async *a)
{
    if (a->queued)
        return IOTDM_OK;
    if (!a->env->worker) {
        /* No worker (tests, simple hosts): the same job, on this thread, after the 202 (an ack
         * that comes while on_desired runs is reported after its own). */
        a->queued = true;
        pthread_mutex_unlock(&a->lock);
        run_pending(a);
        pthread_mutex_lock(&a->lock);
        return IOTDM_OK;
    }
    iotdm_result r = cap_worker_submit(a->env->worker, run_pending, a);
    a->queued = r == IOTDM_OK;
    return r;
}

iotdm_result cap_items_async_init(cap_items_async *a, const cap_items_section *section,
                                  cap_env *env, void *ctx, const char *property)
{
    memset(a, 0, sizeof *a);
    a->section = section;
    a->env = env;
    a->ctx = ctx;
    a->property = property;
    snprintf(a->pending_name, sizeof a->pending_name, "%s-pending", section->state_name);
    pthread_mutex_init(&a->lock, NULL);
    json_t *left = cap_state_load(env, a->pending_name);
    if (!json_is_object(json_object_get(left, "desired"))) {
        json_decref(left);
        return IOTDM_OK;
    }
    log_info("agent", "%s: resuming $version %lld, not applied before the last stop", property,
             (long long)json_integer_value(json_object_get(left, "version")));
    pthread_mutex_lock(&a->lock);
    a->pending = left;
    iotdm_result r = queue_job(a);
    pthread_mutex_unlock(&a->lock);
    return r;
}

void cap_items_async_deinit(cap_items_async *a)
{
    json_decref(a->pending);
    free(a->value_text);
    free(a->accepted_text);
    pthread_mutex_destroy(&a->lock);
}

void cap_items_async_desired(cap_items_async *a, const char *value_json, int64_t version,
                             iotdm_ack *ack)
{
    json_t *desired = cap_parse_object(value_json, ack);
    if (!desired)
        return;
    pthread_mutex_lock(&a->lock);
    json_decref(a->pending);
    a->pending = json_pack("{s:I, s:o}", "version", (json_int_t)version, "desired", desired);
    save_pending(a);
    iotdm_result r = queue_job(a);
    pthread_mutex_unlock(&a->lock);
    if (r < 0) {
        /* The value stays saved: the next start applies it. */
        log_error("agent", "%s: cannot queue $version %lld: %s", a->property, (long long)version,
                  iotdm_result_message(r));
        ack->code = 503;
        ack->description = "the device is too busy to apply it now; it will at its next start";
        return;
    }
    /* A string now, the whole map later: a reported patch merges, so only replacing the value
     * makes removed items vanish. */
    cap_ack_value(ack, &a->accepted_text, json_string("applying"));
    ack->code = 202;
    ack->description = "applying";
}

char *cap_items_async_read(cap_items_async *a)
{
    return cap_items_read(a->section, a->env, &a->lock);
}

/* The worker's job: the latest value waiting, applied with the worker's own configd line. */
static void run_pending(void *arg)
{
    cap_items_async *a = arg;
    pthread_mutex_lock(&a->lock);
    json_t *job = a->pending;
    a->pending = NULL;
    a->queued = false;
    pthread_mutex_unlock(&a->lock);
    if (!job)
        return;
    int64_t version = json_integer_value(json_object_get(job, "version"));
    cap_env env = *a->env;
    if (env.configd_worker_ctx)
        env.configd_ctx = env.configd_worker_ctx;
    iotdm_ack ack = {0, NULL, NULL};
    cap_items_apply(a->section, &env, a->ctx, json_object_get(job, "desired"), &ack, a->ack_text,
                    sizeof a->ack_text, &a->value_text, &a->lock);
    if (cap_worker_stopping(a->env->worker)) {
        /* Cut short by the shutdown: what failed failed because of it. Still saved: the next
         * start applies it again (only the differences). */
        json_decref(job);
        return;
    }
    cap_ack_later(a->env, a->property, version, &ack);
    pthread_mutex_lock(&a->lock);
    if (!a->pending)
        save_pending(a); /* nothing waits any more */
    pthread_mutex_unlock(&a->lock);
    json_decref(job);
}
