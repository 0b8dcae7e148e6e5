/* The capabilities' background worker: one thread that runs long work (downloads, installs) away
 * from the thread serving the hub connection, one job at a time, in the order submitted. */
#ifndef IOTDM_CAPABILITIES_WORKER_H
#define IOTDM_CAPABILITIES_WORKER_H

#include <stdbool.h>

#include "iotdm/result.h"

#define CAP_WORKER_QUEUE 16 /* jobs waiting; each capability keeps at most one waiting */

typedef struct cap_worker cap_worker;
typedef void (*cap_job_fn)(void *ctx);

IOTDM_NODISCARD iotdm_result cap_worker_start(cap_worker **out_worker);

/* Queues fn(ctx) to run on the worker's thread after the jobs queued before it. IOTDM_E_TOO_LARGE
 * when CAP_WORKER_QUEUE jobs already wait, -ECANCELED once the worker is stopping. */
IOTDM_NODISCARD iotdm_result cap_worker_submit(cap_worker *w, cap_job_fn fn, void *ctx);

/* True once cap_worker_stop began: a job that sees it leaves its work for the next start instead
 * of reporting an outcome the shutdown caused. Any thread may ask. */
bool cap_worker_stopping(cap_worker *w);

/* Stops the worker: jobs not started are dropped (capabilities keep what they owe in their durable
 * state), cancel(cancel_ctx) (may be NULL) cuts the running job short, and the running job is
 * waited for. Frees the worker; NULL is ignored. */
void cap_worker_stop(cap_worker *w, void (*cancel)(void *ctx), void *cancel_ctx);

#endif
