/* The jobs runner (docs/jobs.md "Running a job, once, on any node"): on loop 0 of every node, it
 * finds the jobs that are due, takes the lease of one that no node holds, expands its query
 * condition into device records and runs them, a bounded number at a time. */
#ifndef IOTDM_HUB_JOBS_JOBS_H
#define IOTDM_HUB_JOBS_JOBS_H

#include "hub/hub.h"
#include "hub/jobs/job_doc.h"

typedef struct hub_jobs hub_jobs;

/* Lease of a job: renewed while a node runs it; another node takes over a lease this old. */
#define HUB_JOB_LEASE_MS 15000
/* Jobs not yet ended at once, across the hub (JobQuotaExceeded beyond). */
#define HUB_JOBS_MAX_ACTIVE 100
/* Jobs kept, ended ones included; the oldest ended go first. */
#define HUB_JOBS_MAX_KEPT 1000
/* How long an ended job and its device records are kept. */
#define HUB_JOB_RETENTION_MS (30LL * 24 * 3600 * 1000)

/* On loop 0, after the executor and the methods of loop 0 exist. NULL when out of memory. */
hub_jobs *hub_jobs_new(hub *h);
void hub_jobs_free(hub_jobs *j);
/* Once a second from loop 0's timer (on loop 0 only: the runner's state is loop 0's). */
void hub_jobs_tick(hub_jobs *j);
/* From any loop: a job was created, look for due jobs now rather than at the next tick. */
void hub_jobs_poke(hub *h);

/* In a unit: the counts of a job's device records (read a batch at a time). */
IOTDM_NODISCARD iotdm_result hub_job_count_records(hub_store *store, const char *job_id,
                                                   job_stats *out);

#endif
