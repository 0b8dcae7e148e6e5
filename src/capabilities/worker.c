/* One worker thread with a bounded FIFO of jobs. */
#include "capabilities/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct {
    cap_job_fn fn;
    void *ctx;
} job;

struct cap_worker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job queue[CAP_WORKER_QUEUE];
    size_t first, len;
    atomic_bool stopping;
};

static void *worker_main(void *arg)
{
    cap_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->len == 0 && !atomic_load(&w->stopping))
            pthread_cond_wait(&w->cv, &w->mu);
        if (atomic_load(&w->stopping))
            break;
        job j = w->queue[w->first];
        w->first = (w->first + 1) % CAP_WORKER_QUEUE;
        w->len--;
        pthread_mutex_unlock(&w->mu);
        j.fn(j.ctx);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

iotdm_result cap_worker_start(cap_worker **out_worker)
{
    cap_worker *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    atomic_init(&w->stopping, false);
    int e = pthread_create(&w->thread, NULL, worker_main, w);
    if (e) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return -e;
    }
    *out_worker = w;
    return IOTDM_OK;
}

iotdm_result cap_worker_submit(cap_worker *w, cap_job_fn fn, void *ctx)
{
    iotdm_result r = IOTDM_OK;
    pthread_mutex_lock(&w->mu);
    if (atomic_load(&w->stopping)) {
        r = -ECANCELED;
    } else if (w->len == CAP_WORKER_QUEUE) {
        r = IOTDM_E_TOO_LARGE;
    } else {
        w->queue[(w->first + w->len++) % CAP_WORKER_QUEUE] = (job){fn, ctx};
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return r;
}

bool cap_worker_stopping(cap_worker *w)
{
    return w && atomic_load(&w->stopping);
}

void cap_worker_stop(cap_worker *w, void (*cancel)(void *ctx), void *cancel_ctx)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->stopping, true);
    w->len = 0;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (cancel)
        cancel(cancel_ctx);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
