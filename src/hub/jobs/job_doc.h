/* Jobs v2 as documents (docs/jobs.md): a job request checked and turned into the stored job, the
 * JobResponse the service API serves from it, and the per-device records. */
#ifndef IOTDM_HUB_JOBS_JOB_DOC_H
#define IOTDM_HUB_JOBS_JOB_DOC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "iotdm/result.h"

#define JOB_ID_MAX                  64   /* Azure: ASCII letters, digits and '-' */
#define JOB_DEFAULT_MAX_EXECUTION_S 3600 /* what both official clients fill in */
#define JOB_MAX_EXECUTION_S         (7 * 24 * 3600)
#define JOB_METHOD_PAYLOAD_MAX      (128 * 1024)

/* The hub's own members of a stored job or device record, never served. */
#define JOB_PRIVATE "$iotdm"

typedef enum { JOB_TWIN, JOB_METHOD } job_type;

/* Whether id can name a job. */
bool job_id_ok(const char *id);

/* Checks a PUT /jobs/v2/{id} body (docs/jobs.md) and makes the job to store, queued, in *out_doc
 * (new reference). IOTDM_E_MALFORMED with the reason in err when the request cannot be run. */
IOTDM_NODISCARD iotdm_result job_from_request(const char *id, const json_t *body, int64_t now_ms,
                                              json_t **out_doc, char *err, size_t err_cap);

/* The job's type and times, from a stored job. */
job_type job_type_of(const json_t *doc);
const char *job_status(const json_t *doc);
bool job_is_final(const json_t *doc); /* completed, failed or cancelled */
int64_t job_private_int(const json_t *doc, const char *member);
const char *job_private_str(const json_t *doc, const char *member);
/* Sets a member of the hub's own part (steals value). */
void job_private_set(json_t *doc, const char *member, json_t *value);
/* Sets status and, for a final one, endTime. */
void job_set_status(json_t *doc, const char *status, int64_t now_ms);

/* Per-device counts (deviceJobStatistics). */
typedef struct {
    int64_t device, failed, succeeded, running, pending, canceled;
} job_stats;
/* Counts one device record into s. */
void job_stats_add(job_stats *s, const json_t *device_job);
json_t *job_stats_json(const job_stats *s);

/* The JobResponse served for a stored job: the stored members without the hub's own, and
 * deviceJobStatistics (stats, or those stored with a finished job when stats is NULL). New
 * reference; NULL when out of memory. */
json_t *job_view(const json_t *doc, const job_stats *stats);

/* A device's record of a job, pending. New reference. */
json_t *device_job_new(const json_t *job, const char *device_id, int64_t now_ms);
/* The served DeviceJob (without the hub's own members). New reference. */
json_t *device_job_view(const json_t *device_job);
/* Moves a device record to status; error_code/description for failed (may be NULL). */
void device_job_set(json_t *device_job, const char *status, int64_t now_ms, const char *error_code,
                    const char *error_description);

#endif
