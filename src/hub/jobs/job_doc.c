/* Jobs v2 as documents: what a request must hold, and what is served (docs/jobs.md). */
#include "hub/jobs/job_doc.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/iso8601.h"
#include "common/timeutil.h"
#include "hub/query/query.h"
#include "proto/azure_topics.h"

#define METHOD_MIN_TIMEOUT_S     5
#define METHOD_MAX_TIMEOUT_S     300
#define METHOD_DEFAULT_TIMEOUT_S 30

bool job_id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > JOB_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && id[i] != '-')
            return false;
    return true;
}

static iotdm_result refuse(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static iotdm_result refuse(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return IOTDM_E_MALFORMED;
}

/* An integer member in [min, max], dflt when absent or null. */
static bool int_member(const json_t *obj, const char *name, int64_t dflt, int64_t min, int64_t max,
                       int64_t *out)
{
    const json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return true;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return false;
    *out = json_integer_value(v);
    return true;
}

/* updateTwin: tags and/or properties.desired, merged into every matching twin. Its etag can only
 * be "*": a job writes whatever version each twin is at. properties.reported is the device's and
 * is left out. */
static iotdm_result check_update_twin(const json_t *body, json_t **out, char *err, size_t cap)
{
    const json_t *ut = json_object_get(body, "updateTwin");
    if (!json_is_object(ut))
        return refuse(err, cap, "a scheduleUpdateTwin job needs updateTwin (an object)");
    const json_t *etag = json_object_get(ut, "etag");
    if (etag && !json_is_null(etag) &&
        !(json_is_string(etag) && strcmp(json_string_value(etag), "*") == 0))
        return refuse(err, cap, "updateTwin.etag can only be \"*\": a job updates every twin");
    const json_t *tags = json_object_get(ut, "tags");
    const json_t *desired = json_object_get(json_object_get(ut, "properties"), "desired");
    if (tags && !json_is_null(tags) && !json_is_object(tags))
        return refuse(err, cap, "updateTwin.tags must be an object");
    if (desired && !json_is_null(desired) && !json_is_object(desired))
        return refuse(err, cap, "updateTwin.properties.desired must be an object");
    bool has_tags = json_is_object(tags) && json_object_size(tags) > 0;
    bool has_desired = json_is_object(desired) && json_object_size(desired) > 0;
    if (!has_tags && !has_desired)
        return refuse(err, cap, "updateTwin changes nothing: give tags or properties.desired");
    json_t *copy = json_object();
    json_object_set_new(copy, "etag", json_string("*"));
    if (has_tags)
        json_object_set_new(copy, "tags", json_deep_copy(tags));
    if (has_desired)
        json_object_set_new(copy, "properties",
                            json_pack("{s:o}", "desired", json_deep_copy(desired)));
    *out = copy;
    return IOTDM_OK;
}

static iotdm_result check_method(const json_t *body, json_t **out, char *err, size_t cap)
{
    const json_t *m = json_object_get(body, "cloudToDeviceMethod");
    if (!json_is_object(m))
        return refuse(err, cap, "a scheduleDeviceMethod job needs cloudToDeviceMethod (an object)");
    const json_t *name = json_object_get(m, "methodName");
    if (!json_is_string(name) ||
        !az_valid_method_name(json_string_value(name), json_string_length(name)))
        return refuse(err, cap, "cloudToDeviceMethod.methodName is missing or not valid");
    int64_t response, connect;
    if (!int_member(m, "responseTimeoutInSeconds", METHOD_DEFAULT_TIMEOUT_S, METHOD_MIN_TIMEOUT_S,
                    METHOD_MAX_TIMEOUT_S, &response))
        return refuse(err, cap, "responseTimeoutInSeconds must be an integer from %d to %d",
                      METHOD_MIN_TIMEOUT_S, METHOD_MAX_TIMEOUT_S);
    if (!int_member(m, "connectTimeoutInSeconds", 0, 0, METHOD_MAX_TIMEOUT_S, &connect))
        return refuse(err, cap, "connectTimeoutInSeconds must be an integer from 0 to %d",
                      METHOD_MAX_TIMEOUT_S);
    const json_t *payload = json_object_get(m, "payload");
    char *text = json_dumps(payload ? payload : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    size_t len = text ? strlen(text) : 0;
    free(text);
    if (!text)
        return -ENOMEM;
    if (len > JOB_METHOD_PAYLOAD_MAX)
        return refuse(err, cap, "the payload is larger than 128 KB");
    *out = json_pack("{s:O, s:O, s:I, s:I}", "methodName", name, "payload",
                     payload ? payload : json_null(), "responseTimeoutInSeconds",
                     (json_int_t)response, "connectTimeoutInSeconds", (json_int_t)connect);
    return *out ? IOTDM_OK : -ENOMEM;
}

static void set_time(json_t *doc, const char *name, int64_t ms)
{
    char text[40];
    time_format_iso(ms, text, sizeof text);
    json_object_set_new(doc, name, json_string(text));
}

iotdm_result job_from_request(const char *id, const json_t *body, int64_t now_ms, json_t **out_doc,
                              char *err, size_t cap)
{
    *out_doc = NULL;
    if (!job_id_ok(id))
        return refuse(err, cap, "a job id has 1 to %d ASCII letters, digits and '-'", JOB_ID_MAX);
    if (!json_is_object(body))
        return refuse(err, cap, "the body must be a JSON object");
    /* Node's JobClient may send the id as a number; it must name the same job as the path. */
    const json_t *body_id = json_object_get(body, "jobId");
    char id_text[32];
    const char *given = NULL;
    if (json_is_string(body_id)) {
        given = json_string_value(body_id);
    } else if (json_is_integer(body_id)) {
        snprintf(id_text, sizeof id_text, "%" JSON_INTEGER_FORMAT, json_integer_value(body_id));
        given = id_text;
    } else if (body_id && !json_is_null(body_id)) {
        return refuse(err, cap, "jobId must be a string");
    }
    if (given && strcmp(given, id) != 0)
        return refuse(err, cap, "jobId in the body is not the job id of the path");
    const char *type = json_string_value(json_object_get(body, "type"));
    bool twin = type && strcmp(type, "scheduleUpdateTwin") == 0;
    bool method = type && strcmp(type, "scheduleDeviceMethod") == 0;
    if (!twin && !method)
        return refuse(err, cap, "type must be scheduleUpdateTwin or scheduleDeviceMethod");
    const json_t *cond = json_object_get(body, "queryCondition");
    if (!json_is_string(cond) || json_string_length(cond) == 0)
        return refuse(err, cap, "queryCondition is missing (\"*\" names every device)");
    hub_query *q = NULL;
    char qerr[200];
    iotdm_result r = hub_query_parse_condition(json_string_value(cond), json_string_length(cond),
                                               &q, qerr, sizeof qerr);
    hub_query_free(q);
    if (r < 0)
        return refuse(err, cap, "queryCondition: %s", qerr);
    int64_t start_ms = now_ms;
    const json_t *start = json_object_get(body, "startTime");
    if (start && !json_is_null(start)) {
        char terr[120];
        if (!json_is_string(start) ||
            iso8601_parse(json_string_value(start), &start_ms, terr, sizeof terr) < 0)
            return refuse(err, cap, "startTime is not an ISO 8601 date-time in UTC");
    }
    int64_t max_s;
    if (!int_member(body, "maxExecutionTimeInSeconds", JOB_DEFAULT_MAX_EXECUTION_S, 1,
                    JOB_MAX_EXECUTION_S, &max_s))
        return refuse(err, cap, "maxExecutionTimeInSeconds must be an integer from 1 to %d",
                      JOB_MAX_EXECUTION_S);
    json_t *what = NULL;
    r = twin ? check_update_twin(body, &what, err, cap) : check_method(body, &what, err, cap);
    if (r < 0)
        return r;
    json_t *doc = json_object();
    json_object_set_new(doc, "jobId", json_string(id));
    json_object_set_new(doc, "type", json_string(type));
    json_object_set_new(doc, "status", json_string("queued"));
    json_object_set(doc, "queryCondition", (json_t *)cond);
    set_time(doc, "createdTime", now_ms);
    set_time(doc, "startTime", start_ms);
    json_object_set_new(doc, "maxExecutionTimeInSeconds", json_integer(max_s));
    json_object_set_new(doc, twin ? "updateTwin" : "cloudToDeviceMethod", what);
    json_t *own =
        json_pack("{s:I, s:I, s:I, s:s, s:I, s:s, s:b}", "createdMs", (json_int_t)now_ms, "startMs",
                  (json_int_t)start_ms, "deadlineMs", (json_int_t)(start_ms + max_s * 1000),
                  "runner", "", "leaseUntil", (json_int_t)0, "continuation", "", "expanded", 0);
    json_object_set_new(doc, JOB_PRIVATE, own);
    if (!own || !what) {
        json_decref(doc);
        return -ENOMEM;
    }
    *out_doc = doc;
    return IOTDM_OK;
}

job_type job_type_of(const json_t *doc)
{
    const char *t = json_string_value(json_object_get(doc, "type"));
    return t && strcmp(t, "scheduleDeviceMethod") == 0 ? JOB_METHOD : JOB_TWIN;
}

const char *job_status(const json_t *doc)
{
    const char *s = json_string_value(json_object_get(doc, "status"));
    return s ? s : "unknown";
}

bool job_is_final(const json_t *doc)
{
    const char *s = job_status(doc);
    return strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0;
}

int64_t job_private_int(const json_t *doc, const char *member)
{
    return json_integer_value(json_object_get(json_object_get(doc, JOB_PRIVATE), member));
}

const char *job_private_str(const json_t *doc, const char *member)
{
    const char *s = json_string_value(json_object_get(json_object_get(doc, JOB_PRIVATE), member));
    return s ? s : "";
}

void job_private_set(json_t *doc, const char *member, json_t *value)
{
    json_t *own = json_object_get(doc, JOB_PRIVATE);
    if (!own) {
        own = json_object();
        json_object_set_new(doc, JOB_PRIVATE, own);
    }
    json_object_set_new(own, member, value);
}

void job_set_status(json_t *doc, const char *status, int64_t now_ms)
{
    json_object_set_new(doc, "status", json_string(status));
    if (job_is_final(doc))
        set_time(doc, "endTime", now_ms);
}

void job_stats_add(job_stats *s, const json_t *device_job)
{
    const char *st = json_string_value(json_object_get(device_job, "status"));
    s->device++;
    if (!st || strcmp(st, "pending") == 0 || strcmp(st, "scheduled") == 0)
        s->pending++;
    else if (strcmp(st, "running") == 0)
        s->running++;
    else if (strcmp(st, "completed") == 0)
        s->succeeded++;
    else if (strcmp(st, "failed") == 0)
        s->failed++;
    else
        s->canceled++;
}

json_t *job_stats_json(const job_stats *s)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "deviceCount", (json_int_t)s->device,
                     "failedCount", (json_int_t)s->failed, "succeededCount",
                     (json_int_t)s->succeeded, "runningCount", (json_int_t)s->running,
                     "pendingCount", (json_int_t)s->pending);
}

json_t *job_view(const json_t *doc, const job_stats *stats)
{
    json_t *view = json_deep_copy(doc);
    if (!view)
        return NULL;
    const json_t *final = json_object_get(json_object_get(doc, JOB_PRIVATE), "statistics");
    json_object_del(view, JOB_PRIVATE);
    if (stats)
        json_object_set_new(view, "deviceJobStatistics", job_stats_json(stats));
    else if (final)
        json_object_set(view, "deviceJobStatistics", (json_t *) final);
    return view;
}

json_t *device_job_new(const json_t *job, const char *device_id, int64_t now_ms)
{
    json_t *d = json_object();
    json_object_set_new(d, "deviceId", json_string(device_id));
    json_object_set(d, "jobId", json_object_get(job, "jobId"));
    json_object_set(d, "jobType", json_object_get(job, "type"));
    json_object_set_new(d, "status", json_string("pending"));
    set_time(d, "createdDateTimeUtc", now_ms);
    set_time(d, "lastUpdatedDateTimeUtc", now_ms);
    return d;
}

json_t *device_job_view(const json_t *device_job)
{
    json_t *view = json_deep_copy(device_job);
    if (view)
        json_object_del(view, JOB_PRIVATE);
    return view;
}

void device_job_set(json_t *d, const char *status, int64_t now_ms, const char *error_code,
                    const char *error_description)
{
    const char *was = json_string_value(json_object_get(d, "status"));
    if (strcmp(status, "running") == 0 ||
        (was && strcmp(was, "pending") == 0 && strcmp(status, "pending") != 0 &&
         !json_object_get(d, "startTimeUtc")))
        set_time(d, "startTimeUtc", now_ms);
    json_object_set_new(d, "status", json_string(status));
    set_time(d, "lastUpdatedDateTimeUtc", now_ms);
    bool final = strcmp(status, "completed") == 0 || strcmp(status, "failed") == 0 ||
                 strcmp(status, "canceled") == 0;
    if (final)
        set_time(d, "endTimeUtc", now_ms);
    if (error_code)
        json_object_set_new(d, "error",
                            json_pack("{s:s, s:s}", "code", error_code, "description",
                                      error_description ? error_description : ""));
}
